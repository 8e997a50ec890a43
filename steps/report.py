#!/usr/bin/env python3
"""Write a recipe's RESULTS.md from scored decode dirs: one table per group, and a PNG of test
WER against target-language training minutes (scratch vs transfer).

Usage:
    steps/report.py --out RESULTS.md --title "Demo results" --methods "greedy beam ctc-hlg" \
        --experiment "en small|source|-|exp/en_small/decode_epoch8_avg3" \
        --experiment "cs 15m scratch|scratch|15|exp/cs_scratch_15m/decode_epoch20_avg3" ...
        [--preamble notes.md] [--figure "English training loss|exp/en_small/loss.png"]

The text of --preamble (how the results were measured) goes above the tables. Each --figure
"caption|png" is copied beside --out (as <out stem>_<png's parent dir>_<png name>) and shown
below the tables; a missing PNG is an error.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from graft.score.report import Experiment, plot_wer_vs_size, results_markdown
from graft.utils.cli import run_main
from graft.utils.errors import GraftError, require_file
from graft.utils.io import atomic_path, atomic_write


def copy_figure(spec: str, out: Path) -> str:
    """Copy the PNG of a "caption|path" spec beside `out`; return its markdown image line."""
    caption, sep, path = spec.partition("|")
    if not sep:
        raise GraftError(f"a --figure is 'caption|png path', got {spec!r}")
    src = require_file(Path(path.strip()), what="figure")
    dest = out.with_name(f"{out.stem}_{src.parent.name}_{src.name}")
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return f"![{caption.strip()}]({dest.name})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--title", default="Results")
    p.add_argument("--methods", default="greedy beam ctc-hlg")
    p.add_argument("--plot-methods", default=None, help="methods of the size plot (default: all of --methods)")
    p.add_argument("--experiment", action="append", default=[], help="label|group|minutes|decode_root")
    p.add_argument("--preamble", type=Path, default=None)
    p.add_argument("--figure", action="append", default=[], help='"caption|png": copied beside --out')
    args = p.parse_args()

    exps = [Experiment.parse(e) for e in args.experiment]
    methods = args.methods.split()
    plot_methods = args.plot_methods.split() if args.plot_methods else methods
    png = args.out.with_name(args.out.stem + "_wer_vs_size.png")
    parts = [f"# {args.title}", ""]
    if args.preamble and args.preamble.is_file():
        parts += [args.preamble.read_text(encoding="utf-8").strip(), ""]
    parts.append(results_markdown(exps, methods))
    if plot_wer_vs_size(exps, plot_methods, png):
        parts += [f"![test WER against training minutes]({png.name})", ""]
    for spec in args.figure:
        parts += [copy_figure(spec, args.out), ""]
    text = "\n".join(parts)
    with atomic_write(args.out) as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    run_main(main)
