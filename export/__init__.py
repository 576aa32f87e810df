"""Export: ONNX graphs of the models (TensorRT and Triton arrive with the engines issue)."""
