#!/usr/bin/env python3
"""Train a pruned RNN-T transducer on stage-2 fbank cuts (the training stage of a recipe).

Usage:
    python steps/train.py --cuts-train data/fbank/en/cuts_train.jsonl.gz \
        --cuts-dev data/fbank/en/cuts_dev.jsonl.gz --lang-dir data/lang/en_bpe500 \
        --exp-dir exp/en_small --model-conf small --num-epochs 4 --max-duration 200
    torchrun --nproc_per_node 2 steps/train.py ...        # DDP (gloo on CPU, nccl on GPU)

Defaults: conf/train.yaml (see --help). Running it again on the same --exp-dir resumes from
the latest checkpoint; a finished run does nothing. Errors print one `ERROR: ...` line, exit 1.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graft.utils.cli import error_message  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from graft.train.kernels import enlarge_kernel_cache
    enlarge_kernel_cache()           # before torch runs its first oneDNN product
    from graft.train.options import parse_train_args
    from graft.train.run import run_training

    try:
        conf = parse_train_args(argv)
        result = run_training(conf)
    except KeyboardInterrupt:
        print("ERROR: interrupted (Ctrl-C); run the step again to resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as e:  # a GraftError or a disk error is one line; anything else is a bug
        message = error_message(e)
        if message is None:
            raise
        rank = os.environ.get("RANK")
        prefix = f"[rank {rank}] " if rank not in (None, "0") else ""
        print(message.replace("ERROR: ", f"ERROR: {prefix}", 1), file=sys.stderr)
        return 1
    return 0 if (result.finished or result.stopped_by_budget) else 1


if __name__ == "__main__":
    sys.exit(main())
