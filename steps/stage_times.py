#!/usr/bin/env python3
"""Wall time of a recipe's stages, from its step logs: a markdown table, JSON and a PNG.

Usage:
    steps/stage_times.py --log-dir exp/log --out $GRAFT_ROOT/bench/results/demo_stage_times.md \
        [--title "Demo (egs/demo/ASR)"] [--stage-of "stage4_train_cs_*=5"]

Reads every `<log-dir>/*.log` that utils/stage.sh wrote (first lines `# <date> <description>`
and `# <command>`, last line `# done in N s` once the step finished) and writes, for --out
PATH (its .md/.json suffix dropped): PATH.md (every step with its stage, start, seconds and
minutes; a total per stage and the grand total; steps without `# done in` marked as not
finished and left out of the totals), PATH.json (the same figures) and PATH.png (a bar per
stage, its steps stacked). The stage is the number in the description's `stage<N>_` prefix;
--stage-of GLOB=N (repeatable, first match wins) puts the steps whose description matches
GLOB in stage N instead. A log dir without step logs is an error.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from graft.score.report import parse_stage_of, plot_stage_times, read_step_logs, stage_times_json, stage_times_markdown
from graft.utils.cli import run_main
from graft.utils.io import atomic_write


def out_stem(out: Path) -> Path:
    """`bench/results/x.md` (or .json, or no suffix) -> `bench/results/x`."""
    return out.with_suffix("") if out.suffix in (".md", ".json", ".png") else out


def main() -> None:
    p = argparse.ArgumentParser(prog="steps/stage_times.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-dir", type=Path, default=Path("exp/log"), help="the recipe's step logs (default exp/log)")
    p.add_argument("--out", type=Path, required=True, help="PATH.md; PATH.json and PATH.png are written beside it")
    p.add_argument("--title", default=None, help="heading of the markdown (default: from the log dir)")
    p.add_argument("--stage-of", action="append", default=[], metavar="GLOB=N",
                   help="steps whose description matches GLOB belong to stage N")
    args = p.parse_args()

    stage_of = parse_stage_of(args.stage_of)
    steps = read_step_logs(args.log_dir, stage_of)
    stem = out_stem(args.out)
    title = args.title or f"Wall time per stage: {args.log_dir}"
    md, js, png = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".png")
    text = stage_times_markdown(steps, heading=f"# {title}", log_dir=args.log_dir)
    if plot_stage_times(steps, png, title="Wall time per stage"):
        text += f"\n![wall time per stage]({png.name})\n"
    info = stage_times_json(steps, args.log_dir)
    info["title"] = title
    with atomic_write(js) as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    with atomic_write(md) as f:
        f.write(text)
    print(text)
    print(f"wrote {md}, {js}" + (f", {png}" if png.is_file() else ""))


if __name__ == "__main__":
    run_main(main)
