#!/usr/bin/env python3
"""Write a recipe's RESULTS.md from scored decode dirs: one table per group, and a PNG of test
WER against target-language training minutes (scratch vs transfer).

Usage:
    steps/report.py --out RESULTS.md --title "Demo results" --methods "greedy beam ctc-hlg" \
        --experiment "en small|source|-|exp/en_small/decode_epoch8_avg3" \
        --experiment "cs 15m scratch|scratch|15|exp/cs_scratch_15m/decode_epoch20_avg3" ...
        [--preamble notes.md]

The text of --preamble (how the results were measured) goes above the tables.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from graft.score.report import Experiment, plot_wer_vs_size, results_markdown
from graft.utils.cli import run_main
from graft.utils.io import atomic_write


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--title", default="Results")
    p.add_argument("--methods", default="greedy beam ctc-hlg")
    p.add_argument("--plot-method", default=None, help="method of the size plot (default: the first)")
    p.add_argument("--experiment", action="append", default=[], help="label|group|minutes|decode_root")
    p.add_argument("--preamble", type=Path, default=None)
    args = p.parse_args()

    exps = [Experiment.parse(e) for e in args.experiment]
    methods = args.methods.split()
    plot_method = args.plot_method or methods[0]
    png = args.out.with_name(args.out.stem + "_wer_vs_size.png")
    parts = [f"# {args.title}", ""]
    if args.preamble and args.preamble.is_file():
        parts += [args.preamble.read_text(encoding="utf-8").strip(), ""]
    parts.append(results_markdown(exps, methods))
    if plot_wer_vs_size(exps, plot_method, png):
        parts += [f"![test WER against training minutes]({png.name})", ""]
    text = "\n".join(parts)
    with atomic_write(args.out) as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    run_main(main)
