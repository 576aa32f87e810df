"""Small fakes of GPU libraries (TensorRT, onnxruntime-gpu) and of a CUDA device, for the adapters' tests.

Each fake implements only what our adapters call, under the documented names
and signatures, records the calls, and computes outputs with ONNX Runtime's
CPU engine. They check how the adapters use the libraries and what values
come back; they say nothing about the real libraries' behaviour or speed.
"""


def install_fake_tensorrt(monkeypatch):
    """A fake CUDA device and a fake ``tensorrt`` module wired into the TensorRT adapter (``.device``, ``.trt``)."""
    import sys
    from types import SimpleNamespace

    from tests.fakes.cuda import FakeCudaDevice
    from tests.fakes.tensorrt import make_tensorrt
    from upscaler.runtime import tensorrt as trt_adapter

    device = FakeCudaDevice()
    trt = make_tensorrt(device)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_adapter, "cuda_device", lambda device_id: device)
    return SimpleNamespace(device=device, trt=trt)
