#!/usr/bin/env python3
"""Stage 2: 80-dim fbank for the cuts of one language, lilcom storage, one thread per worker.

Usage:
    steps/compute_fbank.py --manifest-dir data/manifests/en --out-dir data/fbank/en \
        --splits "train dev test" --jobs 2

Nested train subsets (`cuts_train_<N>m.jsonl.gz` in the manifest dir) take their features
from the train split's, without recomputing. Writes `<out-dir>/report.json` last.
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

from graft.data.features import compute_fbank_for_split, subset_with_features  # noqa: E402
from graft.utils.cli import run_main  # noqa: E402
from graft.utils.errors import require_file  # noqa: E402
from graft.utils.io import atomic_write  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest-dir", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--splits", default="train dev test", help="space-separated splits")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--chunk-size", type=int, default=100, help="cuts per resumable chunk")
    args = p.parse_args()

    report = {}
    for split in args.splits.split():
        src = require_file(args.manifest_dir / f"cuts_{split}.jsonl.gz", stage=1, what=f"the {split} cuts")
        report[split] = compute_fbank_for_split(src, args.out_dir / f"cuts_{split}.jsonl.gz",
                                                num_jobs=args.jobs, chunk_size=args.chunk_size)
    for subset in sorted(args.manifest_dir.glob("cuts_train_*m.jsonl.gz")):
        n = subset_with_features(args.out_dir / "cuts_train.jsonl.gz", subset, args.out_dir / subset.name)
        report[subset.name.removesuffix(".jsonl.gz").removeprefix("cuts_")] = {"cuts": n}
    with atomic_write(args.out_dir / "report.json") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    run_main(main)
