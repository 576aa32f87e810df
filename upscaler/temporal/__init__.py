"""Temporal super-sampling: jittered frames, motion vectors and history in, reconstructed frames out.

``TemporalUpscaler`` (one per stream) is the API; ``PlainAccumulator`` is the
no-network baseline it is measured against; ``engines`` run one step each.
"""

from upscaler.temporal.accumulate import PlainAccumulator
from upscaler.temporal.facade import TemporalUpscaler, check_temporal_inputs, check_temporal_size

__all__ = ["PlainAccumulator", "TemporalUpscaler", "check_temporal_inputs", "check_temporal_size"]
