"""L2-SP: a penalty pulling the transferred weights toward their source values.

Usage:
    l2sp = L2SP.from_plan(plan, source_state, coef=1e-3)
    loss = loss + l2sp(model)                   # or train(..., extra_loss_fn=l2sp)

    penalty = coef * sum_w ||w - w_source||^2   gradient 2 * coef * (w - w_source)

The sum runs over every copied tensor (whole) and the copied rows of vocabulary-sized
tensors (shared BPE pieces); re-initialized weights and weights frozen for the whole run are
left out. The anchors are the source checkpoint's values, not the model's, so a resumed run
pulls toward the same point. With DDP every rank adds the same penalty.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from graft.transfer.plan import COPY, ROWS, TransferPlan


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class L2SP:
    """coef * sum ||w - w_source||^2 over anchored parameters (rows of some, see from_plan)."""

    def __init__(self, anchors: Mapping[str, torch.Tensor], coef: float,
                 rows: Mapping[str, torch.Tensor] | None = None) -> None:
        self.coef = float(coef)
        self.anchors = {k: v.detach().clone().float() for k, v in anchors.items()}
        self.rows = dict(rows or {})           # name -> target row ids of the anchored rows
        self._on: torch.device | None = None
        self.__name__ = f"l2sp(coef={self.coef:g})"       # how the trainer names the extra loss

    @classmethod
    def from_plan(cls, plan: TransferPlan, source_state: Mapping[str, torch.Tensor],
                  coef: float) -> "L2SP":
        anchors: dict[str, torch.Tensor] = {}
        rows: dict[str, torch.Tensor] = {}
        for p in plan.params:
            if p.frozen and not plan.freeze_steps:
                continue
            if p.action == COPY:
                anchors[p.name] = source_state[p.name]
            elif p.action == ROWS:
                anchors[p.name] = source_state[p.name][plan.vocab.source_ids]
                rows[p.name] = plan.vocab.target_ids
        return cls(anchors, coef, rows)

    def drop(self, prefix: str) -> list[str]:
        """Stop anchoring parameters whose name starts with `prefix`; returns their names.

        Needed under DDP for parameters the forward does not use (the CTC head when
        ctc_weight is 0): a gradient reaching them only through this penalty would mark them
        ready twice in DDP's reducer.
        """
        gone = [k for k in self.anchors if k.startswith(prefix)]
        for k in gone:
            del self.anchors[k]
            self.rows.pop(k, None)
        return gone

    @property
    def num_params(self) -> int:
        return sum(v.numel() for v in self.anchors.values())

    def _to(self, device: torch.device) -> None:
        if self._on != device:
            self.anchors = {k: v.to(device) for k, v in self.anchors.items()}
            self.rows = {k: v.to(device) for k, v in self.rows.items()}
            self._on = device

    def __call__(self, model: nn.Module, *args: object, **kwargs: object) -> torch.Tensor:
        """The penalty (a scalar with grad) for `model` (a DDP wrapper is unwrapped)."""
        params = dict(_unwrap(model).named_parameters())
        device = next(iter(params.values())).device
        total = torch.zeros((), device=device)
        if self.coef == 0 or not self.anchors:
            return total
        self._to(device)
        for name, anchor in self.anchors.items():
            w = params[name]
            if not w.requires_grad:
                continue
            if name in self.rows:
                w = w[self.rows[name]]
            total = total + (w.float() - anchor).pow(2).sum()
        return self.coef * total
