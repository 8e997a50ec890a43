"""ScaledAdam: Adam whose step of each tensor is proportional to that tensor's size (RMS).

Usage:
    opt = ScaledAdam(model.parameters(), lr=0.045)           # or param groups with their own lr
    loss.backward(); opt.step(); opt.zero_grad()
    sched = WarmupEdenLR(opt, warm_steps=500, lr_steps=5000, lr_epochs=6)   # graft.train.schedule

The idea of icefall's optimizer for its Zipformer (Povey et al. 2023), written here for Graft's
Conformer; selected with `--optimizer scaled_adam` (graft.train.optim.build_optimizer):

- Relative updates. A tensor of more than one element moves by
  lr * rms(tensor) * m / (sqrt(v) + eps) per step (Adam's direction, m and v its moments), so
  `lr` is the fraction of a tensor's size it may change in one step, the same for a 144 x 576
  weight as for an embedding. rms(tensor) is re-measured every `size_update_period` steps and
  floored at `param_min_rms`.
- Learned size. Every `size_update_period` steps each tensor's overall scale takes an
  Adam-normalized step along d loss / d log(scale) = sum(param * grad), at
  lr * scalar_lr_scale, through the same momentum; a tensor whose RMS exceeds `param_max_rms`
  is shrunk instead. This replaces weight decay (`weight_decay` of a group is ignored).
- Scalars (one element) take plain Adam steps at lr * scalar_lr_scale, clamped to
  [-scalar_max, scalar_max].
- Clipping relative to the recent past. The gradient norm, with each tensor's gradient
  weighted by its RMS (the size of the change it asks for), is kept for
  `clipping_update_period` steps; from then on a step whose norm exceeds `clipping_scale` times
  the median of the last period is scaled down to it (a log line gives the quartiles and the
  share of clipped steps each period). No clipping before the first period ends.

Differences from icefall's ScaledAdam: tensors are not stacked by shape (torch's _foreach ops
do the batching on CPU), `param_min_rms` defaults to 0.01 instead of 1e-5 (this model has
zero-initialized biases and norm offsets, which a floor of 1e-5 would keep at zero), and the
momentum of Adam's second moment is bias-corrected at every step.
The state (moments, sizes, the clipping history) is in state_dict(): resume is exact.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Iterable

import torch
from torch import Tensor

log = logging.getLogger(__name__)


class ScaledAdam(torch.optim.Optimizer):
    """Adam with updates relative to each tensor's RMS, a learned size per tensor and
    clipping against the median of recent gradient norms (see the module docstring)."""

    def __init__(self, params: Iterable[Any], lr: float = 0.045, betas: tuple[float, float] = (0.9, 0.98),
                 eps: float = 1e-8, scalar_lr_scale: float = 0.1, param_min_rms: float = 0.01,
                 param_max_rms: float = 3.0, scalar_max: float = 10.0, size_update_period: int = 4,
                 clipping_scale: float = 2.0, clipping_update_period: int = 100) -> None:
        if lr <= 0:
            raise ValueError(f"ScaledAdam: lr must be > 0, got {lr}")
        if not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1:
            raise ValueError(f"ScaledAdam: betas must be in [0, 1), got {betas}")
        if size_update_period < 1 or clipping_update_period < 1:
            raise ValueError("ScaledAdam: size_update_period and clipping_update_period must be >= 1")
        defaults = dict(lr=lr, betas=betas, eps=eps, scalar_lr_scale=scalar_lr_scale,
                        param_min_rms=param_min_rms, param_max_rms=param_max_rms, scalar_max=scalar_max)
        super().__init__(params, defaults)
        self.size_update_period = int(size_update_period)
        self.clipping_scale = float(clipping_scale)
        self.clipping_update_period = int(clipping_update_period)

    # ---- state ------------------------------------------------------------------------------
    def _first_state(self) -> dict[str, Any]:
        """The optimizer-wide state (step count, clipping history), kept in the state of the
        first parameter so that state_dict() saves it."""
        return self.state[self.param_groups[0]["params"][0]]

    def _init_state(self, p: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if "delta" not in state:
            state["delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if p.numel() > 1:
                state["param_rms"] = p.detach().float().pow(2).mean().sqrt()
                state["scale_grads"] = torch.zeros(self.size_update_period, dtype=torch.float32, device=p.device)
                state["scale_exp_avg_sq"] = torch.zeros((), dtype=torch.float32, device=p.device)
        return state

    def _sizes(self, ps: list[Tensor], group: dict[str, Any]) -> Tensor:
        """Each tensor's RMS floored at param_min_rms (1 for scalars): the scale of its step."""
        return torch.stack([self.state[p]["param_rms"].clamp(min=group["param_min_rms"]) if p.numel() > 1
                            else torch.ones((), device=p.device) for p in ps])

    # ---- clipping ---------------------------------------------------------------------------
    def _clip_factor(self, groups: list[tuple[dict[str, Any], list[Tensor]]]) -> float:
        first = self._first_state()
        step = int(first.get("step", 0))
        period = self.clipping_update_period
        grads = [p.grad for _, ps in groups for p in ps]
        norms = torch.stack([n.float() for n in torch._foreach_norm(grads)])
        weights = torch.cat([self._sizes(ps, g) for g, ps in groups])
        norm = float((norms * weights).pow(2).sum().sqrt())
        history = first.setdefault("model_norms", torch.zeros(period))
        if step > 0 and step % period == 0:
            q = torch.quantile(history, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
            first["model_norm_threshold"] = self.clipping_scale * float(q[2])
            clipped = int(first.get("num_clipped", 0))
            log.info("ScaledAdam: grad-norm quartiles " + " ".join(f"{float(x):.3g}" for x in q)
                     + f", threshold {first['model_norm_threshold']:.3g}, clipped {100.0 * clipped / period:.1f} %"
                     " of the last steps")
            first["num_clipped"] = 0
        history[step % period] = norm
        threshold = first.get("model_norm_threshold")
        if threshold is None or not math.isfinite(norm) or norm <= threshold:
            return 1.0
        first["num_clipped"] = int(first.get("num_clipped", 0)) + 1
        return threshold / (norm + 1e-20)

    # ---- the step -----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = [(g, [p for p in g["params"] if p.grad is not None]) for g in self.param_groups]
        groups = [(g, ps) for g, ps in groups if ps]
        if not groups:
            return loss
        if sparse := sum(p.grad.is_sparse for _, ps in groups for p in ps):
            raise RuntimeError(f"ScaledAdam does not support sparse gradients ({sparse} tensors)")
        for _, ps in groups:
            for p in ps:
                self._init_state(p)
        clip = self._clip_factor(groups)
        first = self._first_state()
        step = int(first.get("step", 0))
        for group, ps in groups:
            self._step_group(group, ps, step, clip)
        first["step"] = step + 1
        return loss

    def _step_group(self, group: dict[str, Any], ps: list[Tensor], step: int, clip: float) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        grads = [p.grad for p in ps]
        if clip != 1.0:
            grads = torch._foreach_mul(grads, clip)
        states = [self.state[p] for p in ps]
        deltas = [s["delta"] for s in states]
        sqs = [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(deltas, beta1)

        tensors = [i for i, p in enumerate(ps) if p.numel() > 1]
        if tensors:
            self._size_update(group, [ps[i] for i in tensors], [grads[i] for i in tensors],
                              [states[i] for i in tensors], step)

        # Adam's direction, scaled per tensor: -lr (1 - beta1) rms(p) for tensors,
        # -lr scalar_lr_scale (1 - beta1) for scalars
        torch._foreach_mul_(sqs, beta2)
        torch._foreach_addcmul_(sqs, grads, grads, value=1.0 - beta2)
        bias2 = 1.0 - beta2 ** (step + 1)
        denom = torch._foreach_sqrt(torch._foreach_div(sqs, bias2))
        torch._foreach_add_(denom, eps)
        direction = torch._foreach_div(grads, denom)
        sizes = self._sizes(ps, group).tolist()          # one read of the RMS values a step
        alphas = [-lr * (1.0 - beta1) * (size if p.numel() > 1 else group["scalar_lr_scale"])
                  for p, size in zip(ps, sizes)]
        torch._foreach_mul_(direction, alphas)
        torch._foreach_add_(deltas, direction)
        torch._foreach_add_(ps, deltas)
        for p in ps:
            if p.numel() == 1:
                p.clamp_(-group["scalar_max"], group["scalar_max"])

    def _size_update(self, group: dict[str, Any], ps: list[Tensor], grads: list[Tensor],
                     states: list[dict[str, Any]], step: int) -> None:
        """Record d loss / d log(scale) each step; every size_update_period steps re-measure
        the RMS and move each tensor's scale (added to its momentum buffer)."""
        period = self.size_update_period
        slot = step % period
        dots = torch._foreach_mul(ps, grads)
        for s, d in zip(states, dots):
            s["scale_grads"][slot] = d.sum().float()
        if slot != period - 1:
            return
        beta1, beta2 = group["betas"]
        rms = torch.stack([n.float() for n in torch._foreach_norm(ps)])
        rms = rms / torch.tensor([math.sqrt(p.numel()) for p in ps], device=rms.device)
        for s, r in zip(states, rms):
            s["param_rms"].copy_(r)
        if step < period:        # the first period only measures
            return
        scale_grads = torch.stack([s["scale_grads"] for s in states])          # (n, period)
        avg_sq = torch.stack([s["scale_exp_avg_sq"] for s in states])           # (n,)
        beta2_p = beta2 ** period
        avg_sq = avg_sq * beta2_p + scale_grads.pow(2).mean(dim=1) * (1.0 - beta2_p)
        for s, v in zip(states, avg_sq):
            s["scale_exp_avg_sq"].copy_(v)
        size_steps = (step + 1) // period
        bias2 = 1.0 - beta2_p ** size_steps
        size_lr = group["lr"] * group["scalar_lr_scale"]
        scale_step = -size_lr * scale_grads.sum(dim=1) / ((avg_sq / bias2).sqrt() + group["eps"])
        scale_step = torch.where(rms < group["param_min_rms"], scale_step.clamp(min=0.0), scale_step)
        scale_step = torch.where(rms > group["param_max_rms"], torch.full_like(scale_step, -size_lr * period),
                                 scale_step)
        deltas = [s["delta"] for s in states]
        torch._foreach_add_(deltas, torch._foreach_mul(ps, [(1.0 - beta1) * float(x) for x in scale_step]))
