# GPU image: CUDA, TensorRT and onnxruntime-gpu, with PyTorch for the CUDA engine.
#   docker build -f docker/gpu.Dockerfile -t upscaler:gpu .
#   docker run --rm --gpus all -p 8000:8000 upscaler:gpu
# Not built or run here (no Docker engine and no GPU on our machines). NVIDIA's TensorRT image
# brings CUDA, cuDNN and TensorRT's Python bindings; onnxruntime-gpu replaces the CPU build
# (both install the same 'onnxruntime' module, so the CPU one is removed first).
# 25.01 is the first TensorRT image on Ubuntu 24.04, with Python 3.12 (24.08-24.11 have 3.10, which
# pyproject.toml's requires-python refuses); tests/test_packaging.py checks the two agree.
FROM nvcr.io/nvidia/tensorrt:25.01-py3

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/upscaler
COPY pyproject.toml README.md ./
COPY upscaler ./upscaler
COPY training ./training
COPY export ./export
COPY server ./server
# The accumulating models' CPU kernels (Numba; the CPU engine's) compiled at build time, readable by the user
ENV NUMBA_CACHE_DIR=/opt/upscaler/numba-cache
RUN pip install '.[torch]' \
    && pip uninstall -y onnxruntime \
    && pip install onnxruntime-gpu \
    && useradd --create-home --uid 10001 upscaler \
    && python -c "from upscaler.runtime import accum_cpu, fold_cpu, hold; accum_cpu.warm(); fold_cpu.warm(); hold.warm()" && chmod -R a+rwX /opt/upscaler/numba-cache
USER upscaler
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["upscaler"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
