"""The transfer plan: for every target parameter, copied / shared rows / re-initialized, frozen
or not, and its learning-rate multiplier; checked against the source before anything trains.

Usage:
    plan = make_plan(target_model, source_state, rules, vocab_match)   # GraftError on bad input
    print(format_plan(plan))                                           # the --dry-run report
    apply_plan(target_model, source_state, plan, vocab_match)          # copy the weights
    groups = lr_param_groups(target_model, plan)   # for graft.train.optim.build_optimizer

Actions:
    copy    the source tensor, whole (shapes must be equal)
    rows    a vocabulary-sized tensor of a changed vocabulary: fresh, except the rows of the
            BPE pieces both vocabularies share (rules.copy_shared_pieces)
    reinit  the fresh initialization of graft.model.build (not selected by `copy`, excluded
            by `reinit`, or vocabulary-sized with a changed vocabulary and no row copy)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from graft.model.transducer import VOCAB_DEPENDENT
from graft.transfer.rules import TransferRules, first_match, select
from graft.transfer.vocab import VocabMatch, copy_shared_rows
from graft.utils.errors import GraftError

COPY, ROWS, REINIT = "copy", "rows", "reinit"
_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.")


@dataclass
class ParamPlan:
    """What happens to one target parameter."""

    name: str
    shape: tuple[int, ...]
    action: str
    rows: int = 0                  # shared rows copied (action "rows")
    frozen: bool = False           # frozen for the whole run or the first freeze_steps
    lr_scale: float = 1.0

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def copied_numel(self) -> int:
        """Elements that come from the source."""
        if self.action == COPY:
            return self.numel
        if self.action == ROWS:
            return self.rows * math.prod(self.shape[1:])
        return 0


@dataclass
class TransferPlan:
    """The per-parameter plan plus the rules and vocabulary match it came from."""

    params: list[ParamPlan]
    rules: TransferRules
    vocab: VocabMatch

    def __getitem__(self, name: str) -> ParamPlan:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def names(self, action: str | None = None, frozen: bool | None = None) -> list[str]:
        return [p.name for p in self.params
                if (action is None or p.action == action) and (frozen is None or p.frozen == frozen)]

    @property
    def freeze_steps(self) -> int:
        return self.rules.freeze_steps

    def totals(self) -> dict[str, Any]:
        """Counts (tensors, elements) per action and for the frozen set: the plan's summary."""
        out: dict[str, Any] = {}
        for action in (COPY, ROWS, REINIT):
            ps = [p for p in self.params if p.action == action]
            out[action] = {"tensors": len(ps), "params": sum(p.numel for p in ps),
                           "copied_params": sum(p.copied_numel for p in ps)}
        frozen = [p for p in self.params if p.frozen]
        out["frozen"] = {"tensors": len(frozen), "params": sum(p.numel for p in frozen),
                         "steps": self.freeze_steps or "all"}
        out["total_params"] = sum(p.numel for p in self.params)
        out["shared_pieces"] = self.vocab.num_shared
        out["target_vocab"] = self.vocab.target_size
        out["source_vocab"] = self.vocab.source_size
        out["lr_scales"] = sorted({p.lr_scale for p in self.params})
        return out


def is_vocab_param(name: str) -> bool:
    """Whether the parameter's dim 0 is the output vocabulary (graft.model.VOCAB_DEPENDENT)."""
    return name.startswith(VOCAB_DEPENDENT)


def num_encoder_layers(names: list[str]) -> int:
    """Number of encoder.layers.<i> blocks among parameter names."""
    idx = [int(m.group(1)) for m in map(_LAYER.match, names) if m]
    return max(idx) + 1 if idx else 0


def layer_decay_factor(name: str, decay: float, num_layers: int) -> float:
    """decay^(L-1-i) for encoder.layers.<i>, decay^L for encoder.embed, 1 elsewhere."""
    if decay == 1.0:
        return 1.0
    m = _LAYER.match(name)
    if m:
        return decay ** (num_layers - 1 - int(m.group(1)))
    if name.startswith("encoder.embed."):
        return decay ** num_layers
    return 1.0


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


def make_plan(model: nn.Module, source_state: Mapping[str, torch.Tensor], rules: TransferRules,
              vocab: VocabMatch) -> TransferPlan:
    """Check the rules against the target model and the source checkpoint; build the plan.

    GraftError (before any weight moves) when: there is nothing to copy, a pattern matches no
    parameter, a copied parameter is missing from the source or has another shape (each one
    named), every parameter would be frozen, or a parameter frozen for the whole run would
    keep a fresh initialization.
    """
    params = dict(model.named_parameters())
    names = list(params)
    if not rules.copy:
        raise GraftError("no copy patterns: give --copy PATTERN or a --transfer-conf with `copy:` "
                         "(without copying, train from scratch with steps/train.py)")
    copy = set(select(rules.copy, names, "copy pattern"))
    copy -= set(select(rules.reinit, names, "reinit pattern"))
    if not copy:
        raise GraftError(f"the reinit patterns {rules.reinit} exclude every parameter the copy "
                         f"patterns {rules.copy} select: nothing would be copied")
    frozen = set(select(rules.freeze, names, "freeze pattern"))
    select([e.pattern for e in rules.lr_scales], names, "lr_scales pattern")
    num_layers = num_encoder_layers(names)

    plan: list[ParamPlan] = []
    problems: list[str] = []
    for name, p in params.items():
        shape = tuple(p.shape)
        action, rows = REINIT, 0
        if name in copy:
            src = source_state.get(name)
            if src is None:
                problems.append(f"{name} is not in the source checkpoint")
            elif is_vocab_param(name) and not vocab.identical:
                if src.shape[0] != vocab.source_size:
                    problems.append(f"{name}: source {_shape(src)} has dim 0 {src.shape[0]}, "
                                    f"not the source vocabulary size {vocab.source_size}")
                elif src.shape[1:] != p.shape[1:]:
                    problems.append(f"{name}: source {_shape(src)} vs target {_shape(p)}")
                elif rules.copy_shared_pieces and vocab.num_shared:
                    action, rows = ROWS, vocab.num_shared
            elif src.shape != p.shape:
                problems.append(f"{name}: source {_shape(src)} vs target {_shape(p)}")
            else:
                action = COPY
        scale = 1.0
        entry = first_match(rules.lr_scales, name)
        if entry is not None:
            scale *= entry.scale
        if action == COPY:                             # partly fresh "rows" tensors keep 1
            scale *= rules.transferred_lr_scale * layer_decay_factor(name, rules.layer_decay, num_layers)
        plan.append(ParamPlan(name, shape, action, rows, name in frozen, scale))

    if rules.copy_shared_pieces and not vocab.identical and not any(
            is_vocab_param(n) for n in copy):
        raise GraftError("copy_shared_pieces is set but the copy patterns select no vocabulary-sized "
                         f"parameter ({', '.join(p.rstrip('.') for p in VOCAB_DEPENDENT)}): add e.g. "
                         "--copy 'ctc_output.*' or use a preset such as encoder_decoder")
    if problems:
        raise GraftError(f"the source checkpoint does not fit the target model (another "
                         f"architecture or model conf?): {len(problems)} parameter(s) differ: "
                         + "; ".join(problems))
    if frozen and len(frozen) == len(names):
        raise GraftError(f"the freeze patterns {rules.freeze} freeze every parameter of the model: "
                         "nothing would train")
    if rules.freeze_steps == 0:
        fresh = [p.name for p in plan if p.frozen and p.action != COPY]
        if fresh:
            raise GraftError(f"{len(fresh)} parameter(s) frozen for the whole run are not copied "
                             f"from the source and would keep their random initialization: "
                             f"{', '.join(fresh[:8])}{' ...' if len(fresh) > 8 else ''} "
                             "(narrow the freeze patterns, or use --freeze-steps N)")
    return TransferPlan(plan, rules, vocab)


@torch.no_grad()
def apply_plan(model: nn.Module, source_state: Mapping[str, torch.Tensor], plan: TransferPlan) -> dict[str, int]:
    """Copy the planned tensors and rows from `source_state` into `model`; return counts."""
    params = dict(model.named_parameters())
    copied = rows = 0
    for p in plan.params:
        if p.action == COPY:
            params[p.name].copy_(source_state[p.name].to(params[p.name].dtype))
            copied += 1
        elif p.action == ROWS:
            rows += copy_shared_rows(params[p.name], source_state[p.name], plan.vocab)
    return {"copied_tensors": copied, "copied_rows": rows}


def freeze_whole_run(model: nn.Module, plan: TransferPlan) -> list[str]:
    """requires_grad False on the frozen parameters when freeze_steps is 0; returns their names."""
    if plan.freeze_steps:
        return []
    frozen = set(plan.names(frozen=True))
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    return sorted(frozen)


def lr_param_groups(model: nn.Module, plan: TransferPlan) -> list[dict[str, Any]]:
    """Optimizer groups (`lr_scale`) for the parameters whose multiplier is not 1.

    Each multiplier gives a matrix group (the optimizer's weight decay) and a group of 1-D
    tensors without weight decay, like graft.train.optim's default groups; the parameters
    left out fall into those default groups. The order is deterministic, so a resumed run
    rebuilds the same groups as its optimizer state.
    """
    scale = {p.name: p.lr_scale for p in plan.params}
    by_key: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        s = scale[name]
        if s != 1.0 and p.requires_grad:
            by_key.setdefault((s, p.ndim >= 2), []).append(p)
    groups = []
    for (s, is_matrix), ps in sorted(by_key.items(), key=lambda kv: (-kv[0][0], not kv[0][1])):
        group: dict[str, Any] = {"params": ps, "lr_scale": s, "group_name": f"lr_x{s:g}"}
        if not is_matrix:
            group["weight_decay"] = 0.0
        groups.append(group)
    return groups


def _module_key(name: str) -> str:
    parts = name.split(".")
    if parts[:2] == ["encoder", "layers"] and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def _fmt_scales(scales: set[float]) -> str:
    if len(scales) == 1:
        return f"{next(iter(scales)):.3g}"
    return f"{min(scales):.3g}..{max(scales):.3g}"


def format_plan(plan: TransferPlan, header: str = "", l2sp_params: int | None = None) -> str:
    """The human-readable plan: a row per module, then the totals (the --dry-run output).

    l2sp_params: the number of anchored L2-SP weights, if known (default: from the plan).
    """
    rows: dict[str, list[ParamPlan]] = {}
    for p in plan.params:
        rows.setdefault(_module_key(p.name), []).append(p)
    when = f"first {plan.freeze_steps} steps" if plan.freeze_steps else "whole run"
    lines = [header] if header else []
    lines.append(f"{'module':<26} {'action':<14} {'params':>11} {'copied':>11} {'frozen':>7} {'lr x':>9}")
    for key, ps in rows.items():
        actions = sorted({p.action for p in ps})
        action = actions[0] if len(actions) == 1 else "+".join(actions)
        frozen = sum(p.frozen for p in ps)
        fz = "-" if not frozen else ("yes" if frozen == len(ps) else f"{frozen}/{len(ps)}")
        lines.append(f"{key:<26} {action:<14} {sum(p.numel for p in ps):>11,} "
                     f"{sum(p.copied_numel for p in ps):>11,} {fz:>7} "
                     f"{_fmt_scales({p.lr_scale for p in ps}):>9}")
    t = plan.totals()
    lines.append("")
    lines.append(f"copied:          {t[COPY]['params']:>11,} params in {t[COPY]['tensors']} tensors")
    lines.append(f"shared rows:     {t[ROWS]['copied_params']:>11,} params copied in {t[ROWS]['tensors']} "
                 f"tensors of {t[ROWS]['params']:,} params")
    lines.append(f"re-initialized:  {t[REINIT]['params'] + t[ROWS]['params'] - t[ROWS]['copied_params']:>11,} "
                 f"params ({t[REINIT]['tensors']} tensors whole, {t[ROWS]['tensors']} apart from shared rows)")
    lines.append(f"frozen:          {t['frozen']['params']:>11,} params in {t['frozen']['tensors']} tensors"
                 + (f" ({when})" if t["frozen"]["tensors"] else ""))
    lines.append(f"total:           {t['total_params']:>11,} params")
    lines.append(f"vocabulary:      {plan.vocab.describe()}; shared-piece rows "
                 + ("copied" if plan.rules.copy_shared_pieces else "not copied (copy_shared_pieces false)"))
    l2sp = plan.rules.l2sp
    if l2sp > 0:
        n = l2sp_params if l2sp_params is not None else sum(
            p.copied_numel for p in plan.params if not (p.frozen and not plan.freeze_steps))
        lines.append(f"L2-SP:           coef {l2sp:g} on {n:,} transferred params")
    else:
        lines.append("L2-SP:           off")
    return "\n".join(lines)


def plan_summary(plan: TransferPlan) -> dict[str, Any]:
    """A JSON-able record of the plan (stored as transfer.json in the experiment dir)."""
    return {"rules": plan.rules.to_dict(), "totals": plan.totals(),
            "vocab": {"identical": plan.vocab.identical, "shared": plan.vocab.num_shared,
                      "shared_specials": plan.vocab.num_shared_specials},
            "params": {p.name: {"action": p.action, "frozen": p.frozen, "lr_scale": p.lr_scale,
                                "rows": p.rows} for p in plan.params}}

