"""The HTTP frame-upscale service (FastAPI + uvicorn) builds on ``upscaler``.

Not implemented yet: it arrives with the service issue. The package exists so
the fixed top-level layout holds and the core's layering tests cover it.
"""
