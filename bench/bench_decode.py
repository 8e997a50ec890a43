#!/usr/bin/env python3
"""Decoding speed on the demo models: real-time factor per method, and one LM-weight sweep.

Usage:
    .venv/bin/python bench/bench_decode.py [--recipe egs/demo/ASR] [--sweep-model cs_transfer_encoder_decoder_15m]

Reads the RTF figures that stage 6 measured (`<exp>/<decode dir>/rtf.json`: encoder + search
time over audio duration, on this machine, 2 torch threads and 2 lattice jobs), and times a
sweep over 15 LM weights of the saved Czech dev lattices of one model (1 and 2 jobs), side by
side. Goals (issue 5): greedy RTF <= 0.02, HLG lattice decoding <= 0.05, sweep < 5 s.
Writes bench/results/decode.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graft.decode.lattice_rescore import read_scp, rescore_lattices  # noqa: E402
from graft.lang.symbols import invert, read_symbols  # noqa: E402
from graft.utils.io import atomic_write  # noqa: E402

WEIGHTS = [round(0.1 * i, 1) for i in range(1, 16)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, default=ROOT / "egs/demo/ASR")
    p.add_argument("--sweep-model", default="cs_transfer_encoder_decoder_15m")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/decode")
    args = p.parse_args()

    rows = []
    for rtf_file in sorted(args.recipe.glob("exp/*/decode_*/rtf.json")):
        for f in json.loads(rtf_file.read_text()):
            rows.append({"model": rtf_file.parts[-3], "method": f["method"], "set": Path(f["cuts"]).name,
                         "audio_s": f["audio_seconds"], "rtf": f["rtf"], "search_rtf": f["search_rtf"]})
    if not rows:
        sys.exit(f"no rtf.json under {args.recipe}/exp: run stage 6 first")
    lines = [f"# Decoding speed ({os.cpu_count()} cores)", "",
             "RTF = (encoder + search seconds) / audio seconds, measured by stage 6.", "",
             "| model | method | set | audio (s) | RTF | search-only RTF |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['method']} | {r['set']} | {r['audio_s']} | {r['rtf']:.4f} | {r['search_rtf']:.4f} |"
              for r in rows]
    sweep = []
    dev = next(iter(sorted(args.recipe.glob(f"exp/{args.sweep_model}/decode_*/ctc-hlg/dev/lats/lattices.scp"))), None)
    if dev is not None:
        scp = read_scp(dev)
        # the LM dir the lattices were decoded with (recorded by stage 6, relative to the recipe)
        record = json.loads((dev.parent.parent / "decode.json").read_text())
        lang = args.recipe / record["lm_dir"]
        id2word = invert(read_symbols(lang / "words.txt"))
        for jobs in (1, 2):
            t0 = time.perf_counter()
            rescore_lattices(scp, WEIGHTS, [0.0], id2word, num_jobs=jobs)
            sweep.append({"jobs": jobs, "lattices": len(scp), "weights": len(WEIGHTS),
                          "seconds": round(time.perf_counter() - t0, 2)})
        lines += ["", f"LM-weight sweep: {len(WEIGHTS)} weights x 1 penalty over {len(scp)} dev "
                  f"lattices of {args.sweep_model}", "", "| jobs | seconds |", "|---:|---:|"]
        lines += [f"| {s['jobs']} | {s['seconds']} |" for s in sweep]
    text = "\n".join(lines) + "\n"
    print(text)
    with atomic_write(args.out.with_suffix(".md")) as f:
        f.write(text)
    with atomic_write(args.out.with_suffix(".json")) as f:
        json.dump({"rtf": rows, "sweep": sweep}, f, indent=2)


if __name__ == "__main__":
    main()
