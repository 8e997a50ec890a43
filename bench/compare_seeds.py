#!/usr/bin/env python3
"""Two variants of a model, each trained with several seeds: WER per run, the seed mean and spread,
and the paired bootstrap of the difference of the seed means over the test utterances.

Usage:
    .venv/bin/python bench/compare_seeds.py \
        --a "from the x6 source=egs/demo/ASR/exp/cs_transfer_encoder_decoder_15m egs/demo/ASR/exp/cs_x_seed1" \
        --b "from the x8 source=egs/demo/ASR/exp/cs_x_ep8 egs/demo/ASR/exp/cs_x_ep8_seed1" \
        --methods "ctc-hlg ctc-hlg-rnnt" --sets "dev test" --out bench/results/NAME \
        [--group-by '^[a-z]+-([a-z]+)-']    # also per group of utterances (the demo's TTS engine)

Why: bench/compare_models.py compares two single trainings; its interval holds the test set's
sampling noise only, and a second seed of the demo's Czech transfer moved its WER by 1-5 points.
Here each utterance's errors are summed over a variant's runs before the paired bootstrap
(graft.score.seeds, which the recipes' RESULTS.md uses for the grid's `seeds`), so
the difference is between seed means (training noise shrinks with the number of seeds; with 2-3
seeds it is still there: the table gives each run and the spread). Every run must be decoded
(stage 6) and scored (stage 7) on the same sets; the LM weight is each run's own dev choice.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graft.score.bootstrap import ScoredUtterances, scored_utterances  # noqa: E402
from graft.score.seeds import compare_seed_means  # noqa: E402
from graft.utils.errors import GraftError  # noqa: E402
from graft.utils.io import atomic_write  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from compare_models import decode_root  # noqa: E402


def parse_group(spec: str) -> tuple[str, list[Path]]:
    """"NAME=EXP EXP ..." -> (NAME, [EXP, ...])."""
    name, sep, exps = spec.partition("=")
    if not sep or not exps.split():
        raise SystemExit(f"ERROR: --a/--b take 'NAME=EXP_DIR EXP_DIR ...', got {spec!r}")
    return name.strip(), [Path(e) for e in exps.split()]


def runs_of(exps: list[Path], method: str, set_name: str):
    """Each run's per-utterance errors of `method` on `set_name` (graft.score.bootstrap)."""
    return [scored_utterances(decode_root(e), method, set_name) for e in exps]


def utterance_group(pattern: re.Pattern | None, uid: str) -> str | None:
    """The group of an utterance id: the first capture of `pattern` (None: no match, or no pattern)."""
    m = pattern.search(uid) if pattern else None
    return m.group(1) if m else None


def only(runs: list[ScoredUtterances], pattern: re.Pattern, group: str) -> list[ScoredUtterances]:
    """The runs restricted to the utterances of one group."""
    return [replace(r, counts={u: c for u, c in r.counts.items() if utterance_group(pattern, u) == group})
            for r in runs]


def compare_row(method: str, set_name: str, a: list[ScoredUtterances], b: list[ScoredUtterances]) -> dict:
    """One table row: each run's WER, the seed means and the paired bootstrap of their difference."""
    r = compare_seed_means(a, b, n=1000, seed=0)
    return {"method": method, "set": set_name, "runs_a": [x.wer for x in a], "runs_b": [x.wer for x in b],
            "mean_a": r.wer_a, "mean_b": r.wer_b, "delta": r.delta, "lo": r.lo, "hi": r.hi,
            "p_a_better": r.p_better, "utterances": r.utterances}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="'NAME=EXP_DIR EXP_DIR ...' (one dir per seed)")
    ap.add_argument("--b", required=True, help="the same for the other variant")
    ap.add_argument("--methods", default="greedy ctc-hlg")
    ap.add_argument("--sets", default="dev test")
    ap.add_argument("--out", type=Path, required=True, help="output path without extension")
    ap.add_argument("--group-by", default=None, metavar="REGEX",
                    help="also compare per group of utterances: the first capture of REGEX in the utterance id, "
                         "e.g. '^[a-z]+-([a-z]+)-' for the demo's TTS engine (cs-festival-dita-s1-00012 -> festival)")
    args = ap.parse_args()
    try:
        pattern = re.compile(args.group_by) if args.group_by else None
    except re.error as e:
        raise SystemExit(f"ERROR: --group-by {args.group_by!r} is not a regular expression: {e}") from None
    if pattern is not None and pattern.groups < 1:
        raise SystemExit(f"ERROR: --group-by {args.group_by!r} has no capture group: put the group's part in (...)")
    (name_a, exps_a), (name_b, exps_b) = parse_group(args.a), parse_group(args.b)
    rows = []
    try:
        for method in args.methods.split():
            for set_name in args.sets.split():
                a, b = runs_of(exps_a, method, set_name), runs_of(exps_b, method, set_name)
                rows.append(compare_row(method, set_name, a, b))
                groups = sorted({g for u in a[0].counts if (g := utterance_group(pattern, u)) is not None})
                for g in groups:
                    rows.append(compare_row(method, f"{set_name}: {g}", only(a, pattern, g), only(b, pattern, g)))
    except GraftError as e:
        raise SystemExit(f"ERROR: {e}") from None
    result = {"a_name": name_a, "a": [str(e) for e in exps_a], "b_name": name_b, "b": [str(e) for e in exps_b],
              "rows": rows}
    with atomic_write(args.out.with_suffix(".json")) as f:
        json.dump(result, f, indent=2)

    def runs(v: list[float]) -> str:
        spread = f", sd {statistics.stdev(v):.2f}" if len(v) > 1 else ""
        return " / ".join(f"{w:.2f}" for w in v) + spread

    lines = [f"# {name_a} vs {name_b}, {len(exps_a)} and {len(exps_b)} seeds", "",
             f"A = {name_a}: " + ", ".join(f"`{e}`" for e in exps_a) + f"; B = {name_b}: "
             + ", ".join(f"`{e}`" for e in exps_b) + ". WER of each run at its dev-chosen LM weight; "
             "mean = WER of the errors summed over the runs per utterance (the runs' mean); difference = mean(A) - "
             "mean(B) in points with its paired bootstrap 95 % interval over the set's utterances (1000 "
             "resamples; negative = A better). The interval holds the test set's noise and, through the "
             "averaging, part of the training noise; the runs' spread shows what is left. "
             "`bench/compare_seeds.py`.", "",
             f"| method | set | runs {name_a} | runs {name_b} | mean A | mean B | difference | 95 % interval | P(A better) |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['set']} | {runs(r['runs_a'])} | {runs(r['runs_b'])} | "
                     f"{r['mean_a']:.2f} | {r['mean_b']:.2f} | {r['delta']:+.2f} | [{r['lo']:+.2f}, {r['hi']:+.2f}] | "
                     f"{r['p_a_better']:.3f} |")
    md = "\n".join(lines + [""])
    with atomic_write(args.out.with_suffix(".md")) as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
