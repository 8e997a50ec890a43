"""Distributed data parallel set-up for torchrun: process group, device, small collectives.

Usage:
    dist_info = init_distributed("auto")     # reads torchrun's RANK/WORLD_SIZE/LOCAL_RANK
    model = wrap_model(model, dist_info)      # DistributedDataParallel when world_size > 1
    flags = all_reduce_max(torch.tensor([bad, time_up]), dist_info)
    cleanup_distributed(dist_info)

Backend: gloo on CPU, nccl on CUDA. Without torchrun (no WORLD_SIZE, or 1) nothing is set up
and every helper is a no-op, so the same training code runs on one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from graft.utils.errors import GraftError


@dataclass
class DistInfo:
    """Where this process sits: world size, rank, local rank and its device."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(device: str, local_rank: int = 0) -> torch.device:
    """auto -> cuda:<local_rank> if CUDA is available else cpu; cpu; cuda."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GraftError("--device cuda but CUDA is not available")
        return torch.device("cuda", local_rank) if device == "cuda" else torch.device(device)
    return torch.device(device)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join torchrun's process group if there is one; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    return DistInfo(world_size, rank, local_rank, dev)


def cleanup_distributed(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo) -> nn.Module:
    """DDP-wrap `model` (already on its device) when distributed; parameters are broadcast
    from rank 0 at construction. Unused parameters (e.g. the CTC head with ctc_weight 0,
    frozen layers) are allowed."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=True)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] (a one-element list when not distributed)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
