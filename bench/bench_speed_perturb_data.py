#!/usr/bin/env python3
"""Data time of speed-perturbed training epochs: the batches of the demo's Czech 15-minute
subset (and its 0.9x/1.1x copies) loaded as the training loop loads them, two epochs, with the
dataset's feature cache (graft.train.data.FEATURE_CACHE_MB) and without it (cache_mb=0).

Usage (after the demo's stages 1-3):
    .venv/bin/python bench/bench_speed_perturb_data.py [--cuts data/fbank/cs/cuts_train_15m.jsonl.gz]
        [--lang-dir data/lang/cs_bpe150] [--epochs 2]
Paths are relative to egs/demo/ASR. Prints a table and writes bench/results/speed_perturb_data.{md,json}.
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

import torch  # noqa: E402

from graft.lang.langdir import load_lang_dir  # noqa: E402
from graft.train.data import AsrDataset, add_speed_perturbed, load_cuts, make_loader, make_train_sampler  # noqa: E402
from graft.utils.io import atomic_write  # noqa: E402


def epoch_times(ds: AsrDataset, cuts, epochs: int, max_duration: float) -> list[tuple[float, int, float]]:
    """(seconds, batches, audio seconds) of loading every batch of each epoch."""
    out = []
    sampler = make_train_sampler(cuts, max_duration, seed=0, world_size=1, rank=0)
    for e in range(epochs):
        sampler.set_epoch(e)
        t, n, audio = time.perf_counter(), 0, 0.0
        for b in make_loader(ds, sampler, epoch=e):
            n += 1
            audio += b["duration"]
        out.append((time.perf_counter() - t, n, audio))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "egs/demo/ASR"))
    ap.add_argument("--cuts", default="data/fbank/cs/cuts_train_15m.jsonl.gz")
    ap.add_argument("--lang-dir", default="data/lang/cs_bpe150")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-duration", type=float, default=30.0)
    args = ap.parse_args()
    os.chdir(args.recipe)
    if not Path(args.cuts).is_file():
        print(f"bench_speed_perturb_data: skipped, {Path(args.recipe) / args.cuts} does not exist "
              "(run the demo's stages 0-3 first: `make demo ARGS='--stop-stage 3'`)")
        return
    torch.set_num_threads(1)
    lang = load_lang_dir(args.lang_dir)
    cuts = add_speed_perturbed(load_cuts(args.cuts, "training"))
    rows = {}
    for name, mb in (("no cache (before)", 0), ("feature cache", None)):
        ds = AsrDataset(lang, pad_frames_to=32, **({} if mb is None else {"cache_mb": mb}))
        rows[name] = {"epochs": epoch_times(ds, cuts, args.epochs, args.max_duration),
                      "cache_mb": round(ds.cache_bytes / 2**20, 1)}
    lines = [f"# Speed-perturbed data: load time per epoch ({args.cuts} + 0.9x/1.1x copies)", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}, 1 thread, 1-minute load {os.getloadavg()[0]:.1f}; "
             f"batches of {args.max_duration:g} s as the training loop builds them (`bench/bench_speed_perturb_data.py`).", "",
             "| dataset | epoch | batches | audio s | load s | ms / batch | cache MB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        for i, (sec, n, audio) in enumerate(r["epochs"]):
            lines.append(f"| {name} | {i + 1} | {n} | {audio:.0f} | {sec:.2f} | {1000 * sec / n:.1f} | {r['cache_mb']} |")
    before, after = rows["no cache (before)"]["epochs"], rows["feature cache"]["epochs"]
    lines += ["", f"Epochs after the first: {sum(x[0] for x in before[1:]):.2f} s without the cache, "
              f"{sum(x[0] for x in after[1:]):.2f} s with it "
              f"({sum(x[0] for x in before[1:]) / max(sum(x[0] for x in after[1:]), 1e-9):.1f}x less)."]
    md = "\n".join(lines) + "\n"
    print(md)
    out = ROOT / "bench/results"
    with atomic_write(out / "speed_perturb_data.md") as f:
        f.write(md)
    with atomic_write(out / "speed_perturb_data.json") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
