"""Model weight averaging: a running mean kept during training, and checkpoint averages.

Usage:
    avg = RunningAverage.from_model(model)           # at step 0
    avg.update(model)                                 # every `average_period` batches
    state = {"model_avg": avg.state, "avg_count": avg.count}   # stored in each checkpoint
    sd = average_state_dicts([sd1, sd2, sd3])         # plain mean of epoch checkpoints
    sd = interval_average(avg_e4, n_e4, avg_e2, n_e2) # mean of the snapshots after e2, up to e4

Choice (icefall-style running mean, not an EMA): `RunningAverage` is the exact arithmetic mean,
in float64, of the model snapshots taken every `average_period` batches since the start of
training. Because every checkpoint stores (mean, count), the mean over any interval between two
checkpoints is recovered exactly: (mean_b * n_b - mean_a * n_a) / (n_b - n_a); decoding with
`--epoch E --avg A --use-averaged-model` uses that for epochs E-A+1..E. The loop also takes a
snapshot at the end of every epoch (when the period did not just do so), so every epoch
interval holds at least one. Floating-point
tensors (parameters and float buffers) are averaged; integer buffers take the latest value.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from graft.utils.errors import GraftError

StateDict = dict[str, torch.Tensor]


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class RunningAverage:
    """The float64 mean of model snapshots; `count` snapshots so far."""

    def __init__(self, state: StateDict, count: int) -> None:
        self.state = state
        self.count = count

    @classmethod
    def from_model(cls, model: nn.Module) -> "RunningAverage":
        sd = _unwrap(model).state_dict()
        return cls({k: v.detach().to("cpu", torch.float64 if v.is_floating_point() else v.dtype, copy=True)
                    for k, v in sd.items()}, 0)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Add one snapshot of `model` to the mean."""
        self.count += 1
        w = 1.0 / self.count
        for k, v in _unwrap(model).state_dict().items():
            cur = self.state[k]
            if cur.is_floating_point():
                cur.add_(v.detach().to("cpu", torch.float64) - cur, alpha=w)
            else:
                cur.copy_(v.detach().cpu())


def _cast_like(avg: Mapping[str, torch.Tensor], like: Mapping[str, torch.Tensor] | None) -> StateDict:
    out = {}
    for k, v in avg.items():
        dtype = like[k].dtype if like is not None and k in like else (torch.float32 if v.is_floating_point() else v.dtype)
        out[k] = v.to(dtype)
    return out


def average_state_dicts(states: list[Mapping[str, torch.Tensor]]) -> StateDict:
    """Element-wise mean (float64 accumulation) of model state dicts with the same keys."""
    if not states:
        raise GraftError("no checkpoints to average")
    keys = list(states[-1].keys())
    out: StateDict = {}
    for k in keys:
        last = states[-1][k]
        if last.is_floating_point():
            acc = torch.zeros_like(last, dtype=torch.float64)
            for sd in states:
                acc += sd[k].to(torch.float64)
            out[k] = (acc / len(states)).to(last.dtype)
        else:
            out[k] = last.clone()
    return out


def interval_average(avg_end: Mapping[str, torch.Tensor], count_end: int,
                     avg_start: Mapping[str, torch.Tensor] | None, count_start: int,
                     like: Mapping[str, torch.Tensor] | None = None) -> StateDict:
    """Mean of the snapshots taken after the start checkpoint, up to the end checkpoint.

    `avg_start` None (or count_start 0) means "from the beginning of training". The result is
    cast to the dtypes of `like` (a model state dict) or float32.
    """
    if count_end <= count_start:
        raise GraftError(f"no averaged snapshots between the checkpoints (counts {count_start} -> {count_end}); "
                         "train longer or lower --average-period")
    if avg_start is None or count_start == 0:
        return _cast_like(avg_end, like)
    out: StateDict = {}
    for k, end in avg_end.items():
        if end.is_floating_point():
            out[k] = (end * count_end - avg_start[k].to(torch.float64) * count_start) / (count_end - count_start)
        else:
            out[k] = end.clone()
    return _cast_like(out, like)
