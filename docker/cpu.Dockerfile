# CPU image of the upscaler command line (ONNX Runtime, no torch).
#   docker build -f docker/cpu.Dockerfile -t upscaler:cpu .
#   docker run --rm -v "$PWD:/data" upscaler:cpu upscale /data/in.png -o /data/out.png
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/upscaler
COPY pyproject.toml README.md ./
COPY upscaler ./upscaler
COPY training ./training
COPY export ./export
RUN pip install . && useradd --create-home --uid 10001 upscaler
USER upscaler
WORKDIR /data
ENTRYPOINT ["upscaler"]
CMD ["--help"]
