"""Transfer rules: which parameters to copy, re-initialize, freeze, and how fast each one learns.

Usage:
    rules = load_rules("encoder")                          # conf/transfer/encoder.yaml
    rules = load_rules("my_rules.yaml", copy=["encoder.*"], l2sp=1e-3)   # yaml, then overrides
    select(["encoder.embed.*"], names)                     # the names a pattern list matches

Patterns name parameters (`model.named_parameters()` names, e.g. `encoder.layers.3.conv.
depthwise.weight`). A pattern is a glob (fnmatch: `*`, `?`, `[0-7]`; `*` also crosses dots),
or a regular expression when it starts with `re:` (matched against the whole name). A glob
also matches every parameter under a module of that name, so `encoder.embed` is the same as
`encoder.embed.*`. Examples: `encoder.layers.[0-7].*` (layers 0..7), `re:encoder\\.layers\\.
(1[0-1]|[89])\\..*` (layers 8..11).

Rule keys (yaml or keyword overrides; every key is optional, see DEFAULTS):
    copy                 patterns of parameters copied from the source checkpoint
    reinit               patterns excluded from `copy` (fresh initialization wins)
    copy_shared_pieces   for copied vocabulary-sized parameters (decoder embedding, joiner
                         output, CTC head, simple-loss projections) whose vocabularies differ:
                         copy the rows of the BPE pieces both tokens.txt share (by piece string)
    freeze               patterns of parameters that are not updated ...
    freeze_steps         ... for the first N optimizer steps (0: the whole run)
    lr_scales            [{pattern, scale}]: learning-rate multiplier of matching parameters
                         (the first matching entry applies)
    transferred_lr_scale multiplier for every parameter copied whole
    layer_decay          d: copied encoder.layers.<i> of L layers get d^(L-1-i), encoder.embed d^L
    l2sp                 coefficient of the L2-SP penalty coef * sum ||w - w_source||^2 over
                         copied weights (0: off)
    mix_source_cuts      source-language training cuts to mix into the target batches
    mix_source_weight    the fraction of mixed cuts drawn from the source set (CutSet.mux)
    mix_max_unk_ratio    refuse to mix when more source tokens than this are `<unk>` under the
                         target BPE (the source text is tokenized with the target vocabulary)
The multipliers multiply: lr = base_lr * lr_scales * transferred_lr_scale * layer_decay factor.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from graft.utils.errors import GraftError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "transfer"
REGEX_PREFIX = "re:"


@dataclass
class LrScale:
    """A learning-rate multiplier for the parameters a pattern matches."""

    pattern: str
    scale: float


@dataclass
class TransferRules:
    """Every transfer option; `load_rules` fills it from yaml and overrides."""

    copy: list[str] = field(default_factory=list)
    reinit: list[str] = field(default_factory=list)
    copy_shared_pieces: bool = False
    freeze: list[str] = field(default_factory=list)
    freeze_steps: int = 0
    lr_scales: list[LrScale] = field(default_factory=list)
    transferred_lr_scale: float = 1.0
    layer_decay: float = 1.0
    l2sp: float = 0.0
    mix_source_cuts: str | None = None
    mix_source_weight: float = 0.0
    mix_max_unk_ratio: float = 0.02
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULTS = TransferRules().to_dict()


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A predicate on parameter names for one pattern (glob, or regex after `re:`)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise GraftError(f"empty or non-string parameter pattern {pattern!r}")
    if pattern.startswith(REGEX_PREFIX):
        try:
            rx = re.compile(pattern[len(REGEX_PREFIX):])
        except re.error as e:
            raise GraftError(f"bad regular expression in pattern {pattern!r}: {e}") from None
        return lambda name: rx.fullmatch(name) is not None
    under = pattern.rstrip(".") + ".*"
    return lambda name: fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, under)


def select(patterns: Iterable[str], names: Iterable[str], what: str = "pattern") -> list[str]:
    """The names (in order) matched by any pattern; GraftError naming a pattern that matches none."""
    names = list(names)
    chosen: set[str] = set()
    for pattern in patterns:
        match = compile_pattern(pattern)
        hits = [n for n in names if match(n)]
        if not hits:
            raise GraftError(f"{what} {pattern!r} matches no parameter of the target model "
                             f"(names look like {_examples(names)})")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def first_match(entries: list[LrScale], name: str) -> LrScale | None:
    """The first lr_scales entry whose pattern matches `name`."""
    for e in entries:
        if compile_pattern(e.pattern)(name):
            return e
    return None


def _examples(names: list[str]) -> str:
    picks = [n for n in names if n.startswith("encoder.embed.")][:1]
    picks += [n for n in names if n.startswith("encoder.layers.0.")][:1]
    picks += [n for n in names if n.startswith("decoder.")][:1]
    return ", ".join(picks or names[:3])


def _as_list(key: str, value: Any, source: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise GraftError(f"{source}: {key} must be a pattern or a list of patterns, got {value!r}")


def _lr_scales(value: Any, source: str) -> list[LrScale]:
    if value is None:
        return []
    if isinstance(value, dict):                      # {pattern: scale} shorthand
        value = [{"pattern": k, "scale": v} for k, v in value.items()]
    out = []
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, LrScale):
            out.append(item)
        elif isinstance(item, str) and "=" in item:  # "PATTERN=SCALE" from the command line
            pattern, scale = item.rsplit("=", 1)
            out.append(LrScale(pattern, _float("lr_scales", scale, source)))
        elif isinstance(item, dict) and set(item) == {"pattern", "scale"}:
            out.append(LrScale(str(item["pattern"]), _float("lr_scales", item["scale"], source)))
        else:
            raise GraftError(f"{source}: lr_scales entries are {{pattern: P, scale: S}} or "
                             f"'P=S', got {item!r}")
    return out


def _float(key: str, value: Any, source: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GraftError(f"{source}: {key} must be a number, got {value!r}") from None


def _bool(key: str, value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise GraftError(f"{source}: {key} must be true or false, got {value!r}")


def make_rules(values: dict[str, Any], source: str = "transfer rules") -> TransferRules:
    """Check and convert a mapping of rule keys into TransferRules (GraftError naming `source`)."""
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise GraftError(f"{source}: unknown transfer keys {unknown}; known: {sorted(DEFAULTS)}")
    v = {**DEFAULTS, **{k: x for k, x in values.items() if x is not None}}
    rules = TransferRules(
        copy=_as_list("copy", v["copy"], source),
        reinit=_as_list("reinit", v["reinit"], source),
        copy_shared_pieces=_bool("copy_shared_pieces", v["copy_shared_pieces"], source),
        freeze=_as_list("freeze", v["freeze"], source),
        freeze_steps=int(_float("freeze_steps", v["freeze_steps"], source)),
        lr_scales=_lr_scales(v["lr_scales"], source),
        transferred_lr_scale=_float("transferred_lr_scale", v["transferred_lr_scale"], source),
        layer_decay=_float("layer_decay", v["layer_decay"], source),
        l2sp=_float("l2sp", v["l2sp"], source),
        mix_source_cuts=None if v["mix_source_cuts"] in (None, "") else str(v["mix_source_cuts"]),
        mix_source_weight=_float("mix_source_weight", v["mix_source_weight"], source),
        mix_max_unk_ratio=_float("mix_max_unk_ratio", v["mix_max_unk_ratio"], source),
        description=str(v["description"] or ""),
    )
    for p in rules.copy + rules.reinit + rules.freeze + [e.pattern for e in rules.lr_scales]:
        compile_pattern(p)
    if rules.freeze_steps < 0:
        raise GraftError(f"{source}: freeze_steps must be >= 0 (0 = the whole run), got {rules.freeze_steps}")
    if rules.l2sp < 0:
        raise GraftError(f"{source}: l2sp must be >= 0, got {rules.l2sp}")
    for key in ("transferred_lr_scale", "layer_decay"):
        if getattr(rules, key) <= 0:
            raise GraftError(f"{source}: {key} must be > 0, got {getattr(rules, key)}")
    for e in rules.lr_scales:
        if e.scale < 0:
            raise GraftError(f"{source}: lr scale of {e.pattern!r} must be >= 0, got {e.scale}")
    if not 0.0 <= rules.mix_source_weight < 1.0:
        raise GraftError(f"{source}: mix_source_weight must be in [0, 1), got {rules.mix_source_weight}")
    if rules.mix_source_weight > 0 and not rules.mix_source_cuts:
        raise GraftError(f"{source}: mix_source_weight {rules.mix_source_weight} needs mix_source_cuts")
    if rules.mix_source_cuts and rules.mix_source_weight == 0:
        raise GraftError(f"{source}: mix_source_cuts is set but mix_source_weight is 0")
    return rules


def presets() -> list[str]:
    """Names of the presets in conf/transfer/."""
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def resolve_conf(name_or_path: str | os.PathLike) -> Path:
    """A preset name ("encoder") or a yaml path -> the yaml path (GraftError when missing)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise GraftError(f"transfer conf {path} does not exist (presets: {presets()})")
        return path
    preset = CONF_DIR / f"{name_or_path}.yaml"
    if not preset.is_file():
        raise GraftError(f"unknown transfer preset {str(name_or_path)!r} (no {preset}); presets: {presets()}")
    return preset


def load_rules(conf: str | os.PathLike | None = None, **overrides: Any) -> TransferRules:
    """Rules from a preset or yaml (optional), then keyword overrides (None = keep the yaml's)."""
    values: dict[str, Any] = {}
    source = "transfer options"
    if conf is not None:
        path = resolve_conf(conf)
        source = str(path)
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise GraftError(f"{path}: a transfer conf must be a mapping of keys to values")
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            raise GraftError(f"{path}: unknown transfer keys {unknown}; known: {sorted(DEFAULTS)}")
        values.update(data)
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise GraftError(f"unknown transfer options {unknown}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return make_rules(values, source)
