"""Data parallelism under ``torchrun``: one process per device, gradients averaged by DDP.

Outside ``torchrun`` (no ``WORLD_SIZE`` above 1 in the environment) every
function here is a cheap no-op, so the trainer has one code path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "setup"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The process that logs, validates and writes files."""
        return self.rank == 0

    def device(self, requested: str) -> str:
        """The device name for this process: ``cuda:<local rank>`` in a CUDA job, else ``requested``."""
        if self.enabled and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested

    def mean(self, value: float) -> float:
        """Mean of ``value`` over the processes (the loss to log)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def weight_digests(self, net: torch.nn.Module) -> list[str]:
        """A digest of ``net``'s weights from every process (all equal when the replicas agree)."""
        h = hashlib.sha256()
        for value in net.state_dict().values():
            h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
        mine = h.hexdigest()
        if not self.enabled:
            return [mine]
        gathered: list[str | None] = [None] * self.world
        dist.all_gather_object(gathered, mine)
        return [str(d) for d in gathered]

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str) -> Dist:
    """Join the ``torchrun`` job described by the environment, if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = (device in ("auto", "cuda") and torch.cuda.is_available()) or device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank)
