"""Training: data, degradations on the device, the loop, and ``upscaler train``."""
