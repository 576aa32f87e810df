# CPU image: the HTTP service on ONNX Runtime with the shipped models (no torch).
#   docker build -f docker/cpu.Dockerfile -t upscaler:cpu .
#   docker run --rm -p 8000:8000 upscaler:cpu
#   curl -s -H "Content-Type: image/png" --data-binary @in.png localhost:8000/v1/upscale -o out.png
# The command line works too: docker run --rm -v "$PWD:/data" upscaler:cpu upscale /data/in.png -o /data/out.png
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/upscaler
COPY pyproject.toml README.md ./
COPY upscaler ./upscaler
COPY training ./training
COPY export ./export
COPY server ./server
# The README's install: the package with its base dependencies (ONNX Runtime, FastAPI, uvicorn).
# The accumulating models' CPU kernels (Numba) compiled at build time, in a cache the service's user can read
ENV NUMBA_CACHE_DIR=/opt/upscaler/numba-cache
RUN pip install . && useradd --create-home --uid 10001 upscaler \
    && python -c "from upscaler.runtime import accum_cpu, fold_cpu, hold; accum_cpu.warm(); fold_cpu.warm(); hold.warm()" && chmod -R a+rwX /opt/upscaler/numba-cache
USER upscaler
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["upscaler"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
