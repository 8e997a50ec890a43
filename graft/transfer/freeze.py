"""Freezing for the first N optimizer steps: the gradients of chosen parameters are dropped.

Usage:
    freezer = StepFreezer(frozen_params, steps=500)
    freezer.attach(optimizer)            # an optimizer step pre-hook, or
    with freezer.attached_to_any():      # a global one, for optimizers built inside a trainer
        train(...)
    freezer.drop_grads(step)             # or call it yourself before optimizer.step

Freezing for the whole run is simpler: requires_grad False before the optimizer is built
(graft.transfer.plan.freeze_whole_run). For the first N steps the parameters stay trainable
(so the optimizer and DDP see the same parameter set before and after), and their gradients
are set to None while the step count is below N: AdamW skips a parameter without a gradient
entirely (no update, no weight decay, no moment update), so the weights stay bit-identical.

A hook that runs at optimizer.step comes after graft.train's gradient clipping, so while
frozen their gradients still count in the clipped global norm (the other gradients are
scaled as if they were trained); the weights themselves do not move.

The step count comes from the optimizer's own state (`step` of a trained parameter), which
the trainer checkpoints, so a resumed run unfreezes at the same step.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

import torch
from torch import nn


class StepFreezer:
    """Drop the gradients of `params` while fewer than `steps` optimizer steps were taken."""

    def __init__(self, params: Iterable[nn.Parameter], steps: int) -> None:
        self.params = list(params)
        self.steps = int(steps)
        self._ids = {id(p) for p in self.params}

    def active(self, step: int) -> bool:
        return step < self.steps

    def drop_grads(self, step: int) -> bool:
        """Set the frozen gradients to None if `step` < steps; return whether it did."""
        if not self.active(step):
            return False
        for p in self.params:
            p.grad = None
        return True

    def optimizer_steps(self, optimizer: torch.optim.Optimizer) -> int:
        """Steps the optimizer has taken: the largest `step` in its non-frozen parameters' state."""
        steps = 0
        for group in optimizer.param_groups:
            for p in group["params"]:
                state = optimizer.state.get(p)
                if id(p) not in self._ids and state and "step" in state:
                    steps = max(steps, int(state["step"]))
        return steps

    def holds(self, optimizer: torch.optim.Optimizer) -> bool:
        """Whether `optimizer` updates any of the frozen parameters."""
        return any(id(p) in self._ids for g in optimizer.param_groups for p in g["params"])

    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop the frozen gradients if `optimizer` has taken fewer than `steps` steps."""
        self.drop_grads(self.optimizer_steps(optimizer))

    def attach(self, optimizer: torch.optim.Optimizer) -> Any:
        """Register a step pre-hook on `optimizer`; returns the hook handle."""
        return optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.before_step(opt))

    @contextlib.contextmanager
    def attached_to_any(self) -> Iterator[None]:
        """While in the block, every optimizer holding the frozen parameters drops their
        gradients before its steps (for a trainer that builds its optimizer internally)."""
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            if self.holds(opt):
                self.before_step(opt)

        handle = register_optimizer_step_pre_hook(hook)
        try:
            yield
        finally:
            handle.remove()
