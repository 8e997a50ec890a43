#!/usr/bin/env python3
"""Write a recipe's RESULTS.md from scored decode dirs: one table per group, and a PNG of test
WER against target-language training minutes (scratch vs transfer).

Usage:
    steps/report.py --out RESULTS.md --title "Demo results" --methods "greedy beam ctc-hlg" \
        --experiment "en small|source|-|exp/en_small/decode_epoch8_avg3" \
        --experiment "cs 15m scratch|scratch|15|exp/cs_scratch_15m/decode_epoch20_avg3" ...
        [--preamble notes.md] [--figure "English training loss|exp/en_small/loss.png"] \
        [--bootstrap 1000 --bootstrap-seed 0 --compare transfer:scratch --compare ablation:transfer] \
        [--stage-times exp/log [--stage-of "stage4_train_cs_*=5"]]

The text of --preamble (how the results were measured) goes above the tables. Each --figure
"caption|png" is copied beside --out (as <out stem>_<png's parent dir>_<png name>) and shown
below the tables; a missing PNG is an error.

Below the tables, "Differences": every comparison's test WER difference with a paired
bootstrap 95 % confidence interval over the test utterances (graft.score.report.comparison_rows;
--bootstrap 0 leaves them out): each --compare GROUP_A:GROUP_B at the same training minutes and
method (default: transfer:scratch, transfer:scratch_converged and ablation:transfer), and LM vs no LM (LM weight 0.0) for
the methods with an LM sweep (--no-lm-comparison leaves that out). Pairings whose models or
per-utterance files are missing are skipped.

Models trained with several seeds (the grid's `seeds: N`: groups transfer_seed and scratch_seed)
get a "Training seeds" section (graft.score.seeds): each run's test WER, the seed mean and sd, and
the paired bootstrap of the difference of the seed means, transfer against scratch (with
--bootstrap > 0).

Each model of group scratch_converged (trained until its dev WER stopped improving; the grid's
scratch_converged key) gets a section (graft.score.converged): its dev WER per epoch against the
training audio seen (a table, and <out stem>_<label>_dev_wer.png beside --out), the transfer
model of the same minutes as the reference, transfer's gain at equal compute, and the compute
scratch needed to reach the transfer's dev WER, or that it never did within its cap.

--language-of REGEX adds "Per language" below the tables: each model scored on dev/test sets of
several languages (a multilingual source) gets its WER per language, the regex's group over the
utterance ids naming the language (graft.score.languages).

--stage-times LOG_DIR appends the wall time of every step and stage, from the step logs
(steps/stage_times.py writes the same table as markdown + JSON + PNG elsewhere), with its bar
chart beside --out (<out stem>_stage_times.png). A step that is still running (e.g. the one
running this report) is marked as not finished.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from graft.score.report import (DEFAULT_PAIRINGS, Experiment, comparison_rows, comparisons_markdown,
                                parse_pairing, parse_stage_of, plot_stage_times, plot_wer_vs_size,
                                read_step_logs, results_markdown, stage_times_markdown)
from graft.score.converged import converged_markdown
from graft.score.languages import compile_language_pattern, language_rows, languages_markdown
from graft.score.seeds import SEED_PAIRINGS, seed_rows, seeds_markdown
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
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="paired bootstrap resamples of the differences (0: no differences section)")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--compare", action="append", default=[], metavar="GROUP_A:GROUP_B",
                   help="compare each model of group A with group B's at the same minutes "
                        "(default: transfer:scratch, transfer:scratch_converged and ablation:transfer)")
    p.add_argument("--language-of", default=None, metavar="REGEX",
                   help="split the WER of models scored on several languages by the regex's group over "
                        "utterance ids, e.g. '^([a-z]+)-' (a multilingual source's dev/test)")
    p.add_argument("--no-lm-comparison", action="store_true", help="leave out LM vs no LM")
    p.add_argument("--stage-times", type=Path, default=None, metavar="LOG_DIR",
                   help="append the wall time per stage from the step logs in LOG_DIR (e.g. exp/log)")
    p.add_argument("--stage-of", action="append", default=[], metavar="GLOB=N",
                   help="with --stage-times: steps whose description matches GLOB belong to stage N")
    args = p.parse_args()

    if args.bootstrap < 0:
        raise GraftError(f"--bootstrap takes a number of resamples (0: none), got {args.bootstrap}")
    pairings = [parse_pairing(c) for c in args.compare] or list(DEFAULT_PAIRINGS)
    stage_of = parse_stage_of(args.stage_of)
    exps = [Experiment.parse(e) for e in args.experiment]
    methods = args.methods.split()
    plot_methods = args.plot_methods.split() if args.plot_methods else methods
    png = args.out.with_name(args.out.stem + "_wer_vs_size.png")
    parts = [f"# {args.title}", ""]
    if args.preamble and args.preamble.is_file():
        parts += [args.preamble.read_text(encoding="utf-8").strip(), ""]
    if args.language_of is not None:
        compile_language_pattern(args.language_of)  # a bad pattern stops before any work
    parts.append(results_markdown(exps, methods))
    if args.language_of is not None:
        per_language = languages_markdown(language_rows(exps, methods, args.language_of))
        if per_language:
            parts.append(per_language)
    if args.bootstrap > 0:
        rows = comparison_rows(exps, methods, n=args.bootstrap, seed=args.bootstrap_seed, pairings=pairings,
                               lm=not args.no_lm_comparison)
        if rows:
            parts.append(comparisons_markdown(rows))
    seeds = seeds_markdown(seed_rows(exps, methods, n=max(args.bootstrap, 1), seed=args.bootstrap_seed,
                                     pairings=() if args.bootstrap == 0 else SEED_PAIRINGS))
    if seeds:
        parts.append(seeds)
    converged = converged_markdown(exps, args.out)
    if converged:
        parts.append(converged)
    if plot_wer_vs_size(exps, plot_methods, png):
        parts += [f"![test WER against training minutes]({png.name})", ""]
    for spec in args.figure:
        parts += [copy_figure(spec, args.out), ""]
    if args.stage_times is not None:
        steps = read_step_logs(args.stage_times, stage_of)
        parts.append(stage_times_markdown(steps, log_dir=args.stage_times))
        times_png = args.out.with_name(args.out.stem + "_stage_times.png")
        if plot_stage_times(steps, times_png):
            parts += [f"![wall time per stage]({times_png.name})", ""]
    text = "\n".join(parts)
    with atomic_write(args.out) as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    run_main(main)
