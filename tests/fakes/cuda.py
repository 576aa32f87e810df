"""A fake ``upscaler.runtime.tensorrt.CudaDevice``: host arrays play device buffers, found again by address."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np


class FakeCudaDevice:
    """Buffers are float32 numpy arrays registered by their data address; ``stream`` is a made-up handle."""

    def __init__(self, name: str = "NVIDIA H100 80GB HBM3", compute_capability: str = "9.0") -> None:
        self.name = name
        self.compute_capability = compute_capability
        self.stream = 0x5EED
        self.active = 0  #: how deep inside ``current()`` we are
        self.buffers: dict[int, np.ndarray] = {}
        self.uploads: list[tuple[int, ...]] = []
        self.downloads: list[tuple[int, ...]] = []

    @contextmanager
    def current(self):
        self.active += 1
        try:
            yield self
        finally:
            self.active -= 1

    def _register(self, array: np.ndarray) -> np.ndarray:
        self.buffers[array.ctypes.data] = array
        return array

    def upload(self, array: np.ndarray) -> np.ndarray:
        assert array.dtype == np.float32 and array.flags.c_contiguous, "uploads must be contiguous float32"
        self.uploads.append(array.shape)
        return self._register(np.array(array, copy=True))

    def empty(self, shape: tuple[int, ...]) -> np.ndarray:
        return self._register(np.full(shape, np.nan, np.float32))  # NaN: a buffer never written shows

    def address(self, buffer: np.ndarray) -> int:
        return buffer.ctypes.data

    def download(self, buffer: np.ndarray) -> np.ndarray:
        self.downloads.append(buffer.shape)
        return buffer.copy()

    def lookup(self, address: int) -> np.ndarray:
        """The buffer at ``address`` (what a kernel would read or write)."""
        if address not in self.buffers:
            raise AssertionError(f"no device buffer at address {address:#x}")
        return self.buffers[address]
