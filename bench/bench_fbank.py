#!/usr/bin/env python3
"""Feature-extraction speed: seconds of audio per wall second at 1 and 2 jobs, side by side.

Usage:
    .venv/bin/python bench/bench_fbank.py [--cuts egs/demo/ASR/data/manifests/en/cuts_dev.jsonl.gz]

Uses the demo's English dev cuts when they exist (stage 1), else synthesizes 200 espeak-ng
utterances. Each setting runs the real stage-2 code (resumable chunks, spawned workers,
one torch thread each) into a fresh directory, start-up included. Writes
bench/results/fbank.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graft.data.features import compute_fbank_for_split  # noqa: E402
from graft.utils.io import atomic_write  # noqa: E402

RECIPE = ROOT / "egs/demo/ASR"  # manifests hold audio paths relative to their recipe folder
DEFAULT_CUTS = RECIPE / "data/manifests/en/cuts_dev.jsonl.gz"


def synthetic_cuts(workdir: Path, n: int = 200) -> Path:
    """espeak-ng utterances at 16 kHz -> a cuts manifest (when the demo corpus is absent)."""
    from lhotse import CutSet, Recording
    words = "the quick brown fox jumps over a lazy dog while seven cats sleep in warm sun".split()
    recs = []
    for i in range(n):
        text = " ".join(words[(i + k) % len(words)] for k in range(6 + i % 8))
        raw, wav = workdir / f"{i}.raw.wav", workdir / f"{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(raw)], input=text.encode(), check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", str(wav), "gain", "-1"], check=True)
        recs.append(Recording.from_file(wav, recording_id=f"u{i}"))
    path = workdir / "cuts.jsonl.gz"
    CutSet.from_manifests(recordings=__import__("lhotse").RecordingSet.from_recordings(recs)).to_file(path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", type=Path, default=DEFAULT_CUTS)
    p.add_argument("--jobs", default="1 2")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/fbank")
    args = p.parse_args()
    args.out = args.out.resolve()
    if args.cuts.exists():
        args.cuts = args.cuts.resolve()
        os.chdir(RECIPE)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cuts = args.cuts if args.cuts.exists() else synthetic_cuts(tmp)
        rows = []
        for jobs in [int(j) for j in args.jobs.split()]:
            t0 = time.time()
            fig = compute_fbank_for_split(cuts, tmp / f"j{jobs}/cuts.jsonl.gz", num_jobs=jobs, chunk_size=50)
            wall = time.time() - t0
            rows.append({"jobs": jobs, "audio_seconds": round(fig["audio_seconds"], 1),
                         "wall_seconds": round(wall, 2),
                         "audio_seconds_per_second": round(fig["audio_seconds"] / wall, 1)})
    base = rows[0]["audio_seconds_per_second"]
    lines = [f"# Feature extraction (80-dim fbank, lilcom), {platform.node()}, {os.cpu_count()} cores",
             f"cuts: {cuts if cuts == args.cuts else 'synthetic espeak-ng (200 utterances)'}", "",
             "| jobs | audio (s) | wall (s) | audio s / wall s | vs 1 job |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['jobs']} | {r['audio_seconds']} | {r['wall_seconds']} | "
                     f"{r['audio_seconds_per_second']} | {r['audio_seconds_per_second'] / base:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out.with_suffix(".md")) as f:
        f.write(text)
    with atomic_write(args.out.with_suffix(".json")) as f:
        json.dump({"rows": rows, "cuts": str(cuts)}, f, indent=2)


if __name__ == "__main__":
    main()
