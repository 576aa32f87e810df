"""Small fakes of GPU libraries (TensorRT, onnxruntime-gpu) and of a CUDA device, for the adapters' tests.

Each fake implements only what our adapters call, under the documented names
and signatures, records the calls, and computes outputs with ONNX Runtime's
CPU engine. They check how the adapters use the libraries and what values
come back; they say nothing about the real libraries' behaviour or speed.
"""
