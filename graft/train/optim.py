"""The optimizer: AdamW over the trainable parameters, with optional caller-given groups.

Usage:
    opt = build_optimizer(model, base_lr=2e-3, weight_decay=1e-6)
    opt = build_optimizer(model, base_lr=2e-3, weight_decay=1e-6, param_groups=[
        {"params": encoder_low, "lr_scale": 0.1},          # lr = 0.1 * base_lr
        {"params": joiner_params, "lr": 5e-3, "weight_decay": 0.0},
    ])

Without `param_groups`, matrices get weight decay and 1-D tensors (biases, norm scales) do
not. With `param_groups`, each group may give `lr` (absolute) or `lr_scale` (times base_lr)
and its own `weight_decay`; trainable parameters not named in any group get a default group.
Frozen parameters (requires_grad False) are left out in both cases. The LR schedule
(graft.train.schedule.WarmupEdenLR) scales each group's own initial lr.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from graft.utils.errors import GraftError


def _default_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in params:
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, base_lr: float, weight_decay: float,
                    param_groups: list[dict[str, Any]] | None = None,
                    betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over `model`'s trainable parameters (see the module docstring for groups)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise GraftError("the model has no trainable parameters (all are frozen)")
    groups: list[dict[str, Any]] = []
    if param_groups:
        seen: set[int] = set()
        for g in param_groups:
            g = dict(g)
            ps = [p for p in g.pop("params") if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in ps)
            if not ps:
                continue
            lr = g.pop("lr", None)
            scale = g.pop("lr_scale", 1.0)
            g["lr"] = base_lr * scale if lr is None else lr
            g.setdefault("weight_decay", weight_decay)
            groups.append({"params": ps, **g})
        rest = [p for p in trainable if id(p) not in seen]
        for g in _default_groups(rest, weight_decay):
            groups.append({**g, "lr": base_lr})
    else:
        groups = [{**g, "lr": base_lr} for g in _default_groups(trainable, weight_decay)]
    return torch.optim.AdamW(groups, lr=base_lr, betas=betas, eps=eps, weight_decay=weight_decay)
