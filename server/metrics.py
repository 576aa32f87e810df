"""Prometheus metrics of one service instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

__all__ = ["Metrics"]

_LATENCY = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Request counts by route and status; latency, queue and compute time; batch sizes; queue depth;
    client disconnects; tiles of large images; open streams (and, of them, temporal ones)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("upscaler_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram("upscaler_request_seconds", "Request latency", ["route"], buckets=_LATENCY, registry=r)
        self.queue = Histogram("upscaler_queue_seconds", "Time waiting for the engine", buckets=_LATENCY, registry=r)
        self.compute = Histogram("upscaler_compute_seconds", "Engine time per batch", buckets=_LATENCY, registry=r)
        self.batch_size = Histogram(
            "upscaler_batch_size", "Requests per engine call", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32), registry=r
        )
        self.queued = Gauge("upscaler_queued_requests", "Requests waiting or running", registry=r)
        self.frames = Counter("upscaler_stream_frames", "Frames answered on WebSocket streams", registry=r)
        self.streams = Gauge("upscaler_streams_open", "WebSocket streams open (their tasks not yet ended)", registry=r)
        self.temporal_streams = Gauge(
            "upscaler_temporal_streams_open", "Temporal WebSocket streams open, each holding a history", registry=r
        )
        self.tiles = Counter("upscaler_tiles", "Tiles of large images run through the engine", registry=r)
        self.large = Gauge("upscaler_large_requests", "Large (tiled) images being upscaled or waiting", registry=r)
        # Not errors of the service: the client left before its answer (status 499 in ``upscaler_requests``).
        self.disconnects = Counter(
            "upscaler_client_disconnects", "Requests whose client went away before the answer", ["route"], registry=r
        )
        ProcessCollector(registry=r)  # process_resident_memory_bytes, CPU seconds, open fds

    def observe_batch(self, size: int, seconds: float) -> None:
        """One engine call."""
        self.batch_size.observe(size)
        self.compute.observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
