"""GPU engines on a CUDA machine (``pytest -m gpu``): parity with the CPU on real images, CUDA graphs.

Skipped where PyTorch sees no CUDA device (every CI machine of ours).
"""

import numpy as np
import pytest

from upscaler import Upscaler
from upscaler.metrics import psnr

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model", ["x4-fast", "x4-quality"])
def test_torch_cuda_matches_the_cpu_engine_on_real_images(set5, model, precision):
    cpu = Upscaler(model, "onnxruntime-cpu", tile=0)
    gpu = Upscaler(model, "torch-cuda", tile=0, precision=precision)
    assert gpu.engine.name == "torch-cuda" and gpu.engine.precision == precision
    for image in set5.values():
        a, b = cpu.upscale(image), gpu.upscale(image)
        diff = np.abs(a.astype(int) - b).max()
        assert diff <= (1 if precision == "fp32" else 3), diff
        assert psnr(a, b) > (55 if precision == "fp32" else 45)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_cuda_8_bit_frames_equal_the_float_path(set5, precision):
    from upscaler import pipeline

    gpu = Upscaler("x4-fast", "torch-cuda", tile=0, precision=precision)
    assert gpu.rgb8
    frames = np.stack([set5["woman"][:64, :80], set5["bird"][:64, :80]])
    for _ in range(3):  # eager, capture, replay
        got = gpu.infer_rgb8(frames)
        planes = gpu.infer(pipeline.color_batch(list(frames)))
        expected = np.stack([pipeline.planes_to_image(o, np.uint8) for o in planes])
        assert got.shape == expected.shape and np.abs(got.astype(int) - expected).max() <= 1


def test_cuda_graph_replays_give_the_eager_result(photo):
    from upscaler.models import get_model
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.torch_engine import TorchCudaEngine

    eager = TorchCudaEngine(get_model("x4-fast"), EngineOptions(precision="fp32"), graph_after=0)
    graphed = TorchCudaEngine(get_model("x4-fast"), EngineOptions(precision="fp32"), graph_after=2)
    batch = (photo.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
    expected = eager.run(batch)
    outs = [graphed.run(batch) for _ in range(4)]  # the 2nd call captures, then replays
    assert len(graphed._graphs) == 1
    for out in outs:
        np.testing.assert_allclose(out, expected, atol=1e-4)
    other = graphed.run(batch[:, :, :64, :80])  # a new shape runs eagerly first
    assert other.shape == (1, 3, 256, 320)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model", ["x4-temporal", "x4-temporal-quality", "x2-temporal"])
def test_torch_cuda_temporal_steps_match_the_cpu_engine_over_a_sequence(photo, model, precision):
    from upscaler import TemporalUpscaler
    from upscaler.models import get_model
    from upscaler.runtime.base import EngineOptions
    from upscaler.runtime.temporal_torch import TorchTemporalEngine
    from upscaler.sequences import Camera, SequenceSpec, make_sequence

    descriptor = get_model(model)
    camera = Camera(center=(128, 128), velocity=(1.7, 0.6))
    frames = make_sequence(photo, SequenceSpec(descriptor.scale, (96, 64), 10, camera))
    cpu = TemporalUpscaler(model, backend="onnxruntime-cpu")
    gpu = TemporalUpscaler(descriptor, engine=TorchTemporalEngine(descriptor, EngineOptions(precision=precision),
                                                                  cuda=True))  # fmt: skip
    for i, f in enumerate(frames):
        reset = i == 5  # a reset mid-sequence too
        a, b = cpu.upscale(f.lr, f.jitter, f.motion, reset=reset), gpu.upscale(f.lr, f.jitter, f.motion, reset=reset)
        diff = np.abs(a.astype(int) - b).max()
        assert diff <= (1 if precision == "fp32" else 4), (i, diff)
        assert psnr(a, b) > (55 if precision == "fp32" else 42)
