"""Distributed data parallel under torchrun, through torch.distributed (no home-made scheduler).

`torchrun --nproc-per-node N -m deblur train ...` sets WORLD_SIZE, RANK and LOCAL_RANK; each process
then trains on its own batches (seeded by its rank) and DDP averages the gradients. Only the first
process validates and writes files. Without torchrun this is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def wrap(self, network: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled:
            return network
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if next(network.parameters()).device.type == "cuda" else None
        return DistributedDataParallel(network, device_ids=device_ids)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start() -> Context:
    """Join the process group torchrun prepared (NCCL on CUDA, Gloo on the CPU)."""
    import torch.distributed as dist

    if not launched_by_torchrun():
        return Context()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return current()


def current() -> Context:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(context: Context, requested: str) -> str:
    """Each process on its own GPU under torchrun; the requested device otherwise."""
    if context.enabled and torch.cuda.is_available() and requested in ("auto", "cuda"):
        return f"cuda:{context.local_rank}"
    return requested


def stop() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
