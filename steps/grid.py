#!/usr/bin/env python3
"""The transfer grid of a target recipe (conf/grid/*.yaml), expanded into one line per model.

Usage:
    steps/grid.py --grid demo --fbank-dir data/fbank/cs [--sizes "15m 30m"] [--budget-minutes 90]

Prints tab-separated lines `name group preset split epochs minutes methods train_opts` for
every model of the grid (group: transfer, scratch, transfer_seed, scratch_seed, scratch_converged
or ablation; preset `-` for scratch; methods comma-separated), read by utils/recipe_stages.sh's
grid stages. Epochs come from the train manifest's duration: ceil(budget_minutes / minutes of
cuts_<split>), at least 1, so every model sees the same minutes of audio. A size whose manifest is missing is an error
naming stage 1-2.

The optional key `scratch_converged: {size: 15m, max_budget_factor: 8, patience: 2}` (null or
absent: none; size null: none unless --scratch-converged names one) adds the model
`scratch_converged_<size>` (decoded with the grid's methods): from scratch, trained until its
greedy dev WER stops improving (`--early-stop-patience`, graft.train.early_stop: `patience`
epochs or more), at most max_budget_factor x the budget, i.e.
ceil(factor x budget_minutes / minutes of cuts_<split>) epochs.

`seeds: N` (optional, default 1; `--seeds N`) trains the main transfer (the first preset) and
the scratch model of every size N times: the lines `transfer_<preset>_<size>_seed<k>` (group
transfer_seed) and `scratch_<size>_seed<k>` (group scratch_seed) for k = 1 .. N - 1, with
`--seed k` (the training seed: initialization, batch order, dropout); seed 0 is the model without
the suffix. The report (graft.score.seeds) gives each run, the seed mean and spread, and the
paired bootstrap of the difference of seed means, transfer against scratch.

`speed_perturb: true` trains every model of the grid with `--speed-perturb true` (a 0.9x and a
1.1x copy of every cut, graft.train.data) and counts the copies' audio in the budget: an epoch
is then ~3.02 x the manifest's minutes. `speed_factors: "0.8 0.9 1.1 1.2"` (optional) chooses
other copies (`--speed-factors 0.8,0.9,1.1,1.2`; an epoch is then 1 + sum(1 / factor) x).
`corrupt: "reverb noise"` (optional; `--corrupt`) adds a reverberant and/or a noisy copy of every
cut (graft.train.corrupt), each counted as one more manifest's audio in the budget.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from graft.utils.cli import run_main
from graft.utils.conf import CONF_DIR
from graft.utils.errors import GraftError, require_file

KEYS = {"budget_minutes", "sizes", "presets", "scratch", "ablation", "methods", "ablation_methods", "train_opts"}
OPTIONAL_KEYS = {"scratch_converged", "speed_perturb", "speed_factors", "seeds", "corrupt"}   # absent = null / false / 1
CONVERGED_KEYS = {"size", "max_budget_factor", "patience"}


@dataclass
class GridModel:
    name: str
    group: str
    preset: str
    split: str
    epochs: int
    minutes: float
    methods: list[str]
    train_opts: str

    def line(self) -> str:
        return "\t".join([self.name, self.group, self.preset, self.split, str(self.epochs),
                          f"{self.minutes:g}", ",".join(self.methods), self.train_opts])


def load_grid(name: str) -> dict:
    """conf/grid/<name>.yaml (or a path); every key checked."""
    path = Path(name) if name.endswith(".yaml") else CONF_DIR / "grid" / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in (CONF_DIR / "grid").glob("*.yaml"))
        raise GraftError(f"no grid {path} (grids: {', '.join(choices)})")
    grid = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown, missing = set(grid) - KEYS - OPTIONAL_KEYS, KEYS - set(grid)
    if unknown or missing:
        raise GraftError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    if not grid["presets"]:
        raise GraftError(f"{path}: presets is empty (the first preset is the main transfer)")
    grid["scratch_converged"] = check_converged(grid.get("scratch_converged"), str(path))
    grid["speed_perturb"] = grid.get("speed_perturb") or False
    if not isinstance(grid["speed_perturb"], bool):
        raise GraftError(f"{path}: speed_perturb must be true or false, got {grid['speed_perturb']!r}")
    grid["speed_factors"] = check_speed_factors(grid.get("speed_factors"), f"{path}: speed_factors: ")
    grid["corrupt"] = check_corrupt(grid.get("corrupt"), f"{path}: corrupt")
    grid["seeds"] = check_seeds(grid.get("seeds", 1), f"{path}: seeds")
    return grid


def check_seeds(value: object, where: str) -> int:
    """The number of training seeds (an integer >= 1); GraftError naming `where` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() \
            or int(value) < 1:
        raise GraftError(f"{where} must be an integer >= 1 (training runs per model, seeds 0 .. N-1), got {value!r}")
    return int(value)


def check_speed_factors(value: object, where: str = "") -> tuple[float, ...] | None:
    """The grid's speed_factors as a tuple (None when absent: the trainer's default); a GraftError
    starting with `where` names a bad factor."""
    if value is None:
        return None
    from graft.train.data import parse_speed_factors

    try:
        return parse_speed_factors(str(value))
    except GraftError as e:
        raise GraftError(f"{where}{e}") from None


def check_converged(value: object, where: str) -> dict | None:
    """The grid's scratch_converged mapping checked (None when null); GraftError naming `where`.

    Usage: check_converged({"size": "15m", "max_budget_factor": 8, "patience": 2}, "conf/grid/x.yaml")"""
    if value is None:
        return None
    example = "{size: 15m, max_budget_factor: 8, patience: 2}"
    if not isinstance(value, dict) or set(value) != CONVERGED_KEYS:
        raise GraftError(f"{where}: scratch_converged must be null or {example}, got {value!r}")
    try:
        factor, patience = float(value["max_budget_factor"]), int(value["patience"])
    except (TypeError, ValueError):
        raise GraftError(f"{where}: scratch_converged needs a number max_budget_factor and an integer "
                         f"patience, e.g. {example}; got {value!r}") from None
    if not factor >= 1 or patience < 1 or patience != value["patience"]:
        raise GraftError(f"{where}: scratch_converged needs max_budget_factor >= 1 and an integer "
                         f"patience >= 1, got {value!r}")
    size = None if value["size"] in (None, "", "none") else str(value["size"])
    return {"size": size, "max_budget_factor": factor, "patience": patience}


def apply_converged_option(grid: dict, spec: str) -> None:
    """--scratch-converged SPEC into `grid`: "none", "SIZE" (the grid's factor and patience) or
    "SIZE:FACTOR:PATIENCE".

    Usage: apply_converged_option(grid, "15m")"""
    parts = spec.strip().split(":")
    if parts == ["none"]:
        grid["scratch_converged"] = None
        return
    if len(parts) == 3:
        value = {"size": parts[0], "max_budget_factor": parts[1], "patience": parts[2]}
        try:
            value["patience"] = int(parts[2])
        except ValueError:
            pass
        grid["scratch_converged"] = check_converged(value, "--scratch-converged")
        return
    if len(parts) != 1 or not parts[0]:
        raise GraftError(f"--scratch-converged takes none, SIZE or SIZE:FACTOR:PATIENCE (e.g. 15m or 15m:8:2), "
                         f"got {spec!r}")
    conv = grid.get("scratch_converged")
    if conv is None:
        raise GraftError(f"--scratch-converged {spec}: this grid has scratch_converged: null, so it has no "
                         f"max_budget_factor and patience: give them, e.g. --scratch-converged {parts[0]}:8:2")
    grid["scratch_converged"] = {**conv, "size": parts[0]}


def split_of(size: str) -> str:
    return "train" if size == "all" else f"train_{size}"


def train_minutes(fbank_dir: Path, split: str) -> float:
    from lhotse import load_manifest_lazy

    path = require_file(fbank_dir / f"cuts_{split}.jsonl.gz", stage=2,
                        what=f"the {split} features manifest (train subsets come from stage 1)")
    return sum(c.duration for c in load_manifest_lazy(path)) / 60


def check_corrupt(value: object, what: str = "--corrupt") -> tuple[str, ...]:
    """The grid's corrupt kinds as a tuple (() when absent); a GraftError naming `what` otherwise."""
    from graft.train.corrupt import parse_corrupt

    return parse_corrupt(None if value is None else str(value), what)


def epoch_audio_factor(speed_perturb: bool, factors: tuple[float, ...] | None = None,
                       corrupt: tuple[str, ...] = ()) -> float:
    """Audio of an epoch over the manifest's: 1, with the speed-perturbed copies 1 + sum(1 / factor)
    (1 + 1/0.9 + 1/1.1 by default), plus 1 for each kind of corrupted copy (graft.train.corrupt)."""
    extra = float(len(corrupt))
    if not speed_perturb:
        return 1.0 + extra
    from graft.train.data import SPEED_FACTORS, speed_audio_factor

    return speed_audio_factor(factors or SPEED_FACTORS) + extra


def expand(grid: dict, fbank_dir: Path, allow_missing: bool = False) -> list[GridModel]:
    """Every model of the grid, in training order (scratch then transfer at each size, then the
    ablation). `allow_missing`: leave out sizes whose features do not exist yet (with a note)."""
    budget = float(grid["budget_minutes"])
    if budget <= 0:
        raise GraftError(f"budget_minutes must be > 0, got {budget}")
    methods, ab_methods = grid["methods"].split(), grid["ablation_methods"].split()
    perturb = bool(grid.get("speed_perturb"))
    factors = grid.get("speed_factors")
    corrupt = tuple(grid.get("corrupt") or ())
    copies = epoch_audio_factor(perturb, factors, corrupt)
    opts = grid["train_opts"] + (" --speed-perturb true" if perturb else "")
    if perturb and factors:
        opts += " --speed-factors " + ",".join(f"{f:g}" for f in factors)
    if corrupt:
        opts += " --corrupt " + ",".join(corrupt)
    minutes_cache: dict[str, float] = {}

    def model(name: str, group: str, preset: str, size: str, meth: list[str],
              factor: float = 1.0, extra_opts: str = "") -> GridModel | None:
        split = split_of(size)
        if split not in minutes_cache:
            try:
                minutes_cache[split] = train_minutes(fbank_dir, split)
            except GraftError as e:
                if not allow_missing:
                    raise
                print(f"note: {e}: the grid's {size} models are left out", file=sys.stderr)
                minutes_cache[split] = 0.0
        mins = minutes_cache[split]
        if mins <= 0:
            return None
        epochs = max(1, math.ceil(round(factor * budget / (mins * copies), 6)))
        return GridModel(name, group, preset, split, epochs, round(mins, 1), meth, (opts + extra_opts).strip())

    out: list[GridModel] = []
    for size in [str(s) for s in grid["sizes"]]:
        if grid["scratch"]:
            out.append(model(f"scratch_{size}", "scratch", "-", size, methods))
        for preset in grid["presets"]:
            out.append(model(f"transfer_{preset}_{size}", "transfer", preset, size, methods))
        for k in range(1, int(grid.get("seeds", 1))):   # more training seeds of the main models
            if grid["scratch"]:
                out.append(model(f"scratch_{size}_seed{k}", "scratch_seed", "-", size, methods,
                                 extra_opts=f" --seed {k}"))
            preset = grid["presets"][0]
            out.append(model(f"transfer_{preset}_{size}_seed{k}", "transfer_seed", preset, size, methods,
                             extra_opts=f" --seed {k}"))
    conv = grid.get("scratch_converged")
    if conv and conv["size"]:  # after the equal-budget models: it trains longest
        # decoded with the grid's methods, as the transfer it is compared with (a model still on
        # the all-blank plateau made ~12 s lattices per utterance on the 491k-word Czech HLG; with
        # speed perturbation the scratch models leave it)
        out.append(model(f"scratch_converged_{conv['size']}", "scratch_converged", "-", conv["size"], methods,
                         conv["max_budget_factor"], f" --early-stop-patience {conv['patience']}"))
    out = [m for m in out if m is not None]
    ab = grid["ablation"] or {}
    for preset in ab.get("presets") or []:
        name = f"transfer_{preset}_{ab['size']}"
        if all(m.name != name for m in out):
            m = model(name, "ablation", preset, str(ab["size"]), ab_methods)
            if m is not None:
                out.append(m)
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="steps/grid.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", required=True, help="a conf/grid/*.yaml name (demo, demo_full, ...) or a path")
    p.add_argument("--fbank-dir", required=True, type=Path, help="the target's stage-2 features, e.g. data/fbank/cs")
    p.add_argument("--sizes", default="", help="override the grid's sizes, e.g. '15m all'")
    p.add_argument("--budget-minutes", type=float, default=None, help="override the grid's budget")
    p.add_argument("--scratch-converged", default=None, metavar="SPEC",
                   help="the from-scratch model trained until its dev WER stops improving: none, SIZE (with the "
                        "grid's max_budget_factor and patience) or SIZE:FACTOR:PATIENCE, e.g. 15m or 15m:8:2")
    p.add_argument("--speed-perturb", choices=["true", "false"], default=None,
                   help="override the grid's speed_perturb (0.9x/1.1x copies, counted in the budget)")
    p.add_argument("--speed-factors", default=None, metavar="FACTORS",
                   help="override the grid's speed_factors, e.g. '0.8 0.9 1.1 1.2' (with speed_perturb)")
    p.add_argument("--corrupt", default=None, metavar="KINDS",
                   help="override the grid's corrupt: 'reverb', 'noise', 'reverb noise' or none (copies counted "
                        "in the budget)")
    p.add_argument("--seeds", default=None, metavar="N",
                   help="override the grid's seeds: train the main transfer and the scratch model of every size "
                        "with seeds 0 .. N-1 (the report gives the seed means and spread)")
    p.add_argument("--train-opts", default="", metavar="OPTS",
                   help="training options after the grid's train_opts, for every model, e.g. "
                        "'--adversarial speaker --adversarial-ramp-steps 200' (values without spaces)")
    p.add_argument("--allow-missing", action="store_true", help="leave out sizes without features (listing for stages 6-7)")
    args = p.parse_args()
    grid = load_grid(args.grid)
    if args.sizes:
        grid["sizes"] = args.sizes.split()
    if args.budget_minutes is not None:
        grid["budget_minutes"] = args.budget_minutes
    if args.scratch_converged is not None:
        apply_converged_option(grid, args.scratch_converged)
    if args.speed_perturb is not None:
        grid["speed_perturb"] = args.speed_perturb == "true"
    if args.speed_factors is not None:
        grid["speed_factors"] = check_speed_factors(args.speed_factors)
    if args.corrupt is not None:
        grid["corrupt"] = check_corrupt(args.corrupt)
    if args.seeds is not None:
        grid["seeds"] = check_seeds(args.seeds, "--seeds")
    if args.train_opts.strip():
        grid["train_opts"] = f"{grid['train_opts']} {args.train_opts.strip()}"
    for m in expand(grid, args.fbank_dir, args.allow_missing):
        print(m.line())


if __name__ == "__main__":
    run_main(main)
