"""upscaler: real-time neural super-sampling.

    >>> from upscaler import Upscaler, read_image, write_image
    >>> up = Upscaler("x4-fast")              # ONNX Runtime on the CPU by default
    >>> write_image("out.png", up.upscale(read_image("in.png")))

Heavy libraries load lazily: ONNX Runtime when an engine is made, torch only
for the PyTorch engine. ``StreamClient`` (the client of the service's
temporal stream) needs only the standard library and numpy.
"""

from upscaler.client import StreamClient, StreamError
from upscaler.facade import DEFAULT_TILE, GPU_TILE, Upscaler
from upscaler.io import ImageError, decode_image, encode_image, read_image, write_image
from upscaler.models import ModelDescriptor, ModelError, default_model, get_model, list_models
from upscaler.runtime import Engine, EngineUnavailable, create_engine
from upscaler.temporal import TemporalUpscaler

__all__ = [
    "DEFAULT_TILE",
    "GPU_TILE",
    "Engine",
    "EngineUnavailable",
    "ImageError",
    "ModelDescriptor",
    "ModelError",
    "StreamClient",
    "StreamError",
    "TemporalUpscaler",
    "Upscaler",
    "create_engine",
    "decode_image",
    "default_model",
    "encode_image",
    "get_model",
    "list_models",
    "read_image",
    "write_image",
]
