"""The HTTP frame-upscale service (FastAPI + uvicorn), built on ``upscaler``.

``server.app.create_app(settings)`` is the ASGI application; ``upscaler serve``
runs it. Nothing heavy is imported here: the ``serve`` command registers
through this package on every ``upscaler`` invocation.
"""
