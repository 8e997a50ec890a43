"""Schedules over training steps: the learning rate and the pruned RNN-T loss warm-up.

Usage:
    sched = WarmupEdenLR(optimizer, warm_steps=500, lr_steps=5000, lr_epochs=6)
    ...; optimizer.step(); sched.step_batch()        # after each optimizer step
    sched.set_epoch(epoch)                            # at the start of each epoch (0-based)
    simple_scale, pruned_scale = loss_scales(step, warm_steps=500, simple_loss_scale=0.5)

Learning rate (choice: AdamW with a warm-up and an Eden-like decay, written here):
    lr(group) = group["initial_lr"] * w(s) * ((s^2 + S^2) / S^2)^-1/4 * ((e^2 + E^2) / E^2)^-1/4
with s the number of optimizer steps taken, e the number of finished epochs, S = lr_steps,
E = lr_epochs, and w(s) = min(1, (s + 1) / warm_steps) a linear warm-up from ~0 (AdamW's
second-moment estimates are noisy in the first steps). After warm-up the rate decays like
s^-1/2 * e^-1/2 for s >> S, e >> E, and is ~flat before that. Each parameter group keeps its
own `initial_lr`, so per-group learning rates (layer transfer) scale by the same factor.

Loss warm-up (the usual pruned RNN-T recipe): the pruning bounds come from the simple loss,
which is meaningless at the start, so the simple loss starts with weight 1.0 and decays
linearly to `simple_loss_scale` over `warm_steps`, while the pruned loss ramps linearly from
0.1 to 1.0 over the same steps.
"""
from __future__ import annotations

from typing import Any

import torch


def loss_scales(step: int, warm_steps: int, simple_loss_scale: float) -> tuple[float, float]:
    """(simple_loss_scale, pruned_loss_scale) to use at batch `step` (0-based)."""
    if warm_steps <= 0 or step >= warm_steps:
        return simple_loss_scale, 1.0
    frac = step / warm_steps
    return 1.0 - frac * (1.0 - simple_loss_scale), 0.1 + 0.9 * frac


class WarmupEdenLR:
    """Sets each group's lr to initial_lr times the factor above; has state_dict/load_state_dict."""

    def __init__(self, optimizer: torch.optim.Optimizer, warm_steps: int, lr_steps: float,
                 lr_epochs: float) -> None:
        self.optimizer = optimizer
        self.warm_steps = int(warm_steps)
        self.lr_steps = float(lr_steps)
        self.lr_epochs = float(lr_epochs)
        self.num_steps = 0
        self.epoch = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self._apply()

    def factor(self, step: int | None = None, epoch: int | None = None) -> float:
        s = self.num_steps if step is None else step
        e = self.epoch if epoch is None else epoch
        warm = 1.0 if self.warm_steps <= 0 else min(1.0, (s + 1) / self.warm_steps)
        decay_s = ((s * s + self.lr_steps ** 2) / self.lr_steps ** 2) ** -0.25
        decay_e = ((e * e + self.lr_epochs ** 2) / self.lr_epochs ** 2) ** -0.25
        return warm * decay_s * decay_e

    def _apply(self) -> None:
        f = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f

    def step_batch(self) -> None:
        """Call after each optimizer step."""
        self.num_steps += 1
        self._apply()

    def set_epoch(self, epoch: int) -> None:
        """Call with the number of finished epochs when an epoch starts."""
        self.epoch = int(epoch)
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"num_steps": self.num_steps, "epoch": self.epoch, "warm_steps": self.warm_steps,
                "lr_steps": self.lr_steps, "lr_epochs": self.lr_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_steps = int(state["num_steps"])
        self.epoch = int(state["epoch"])
        self._apply()
