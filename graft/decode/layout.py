"""Where a model's decoding outputs go: `<exp-dir>/decode_epoch<E>_avg<A>[_running]/` (no torch).

Usage:
    root = decode_root("exp/en_small", epoch=None, avg=2)   # None: the last epoch-N.pt there
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from graft.utils.errors import GraftError


def last_epoch(exp_dir: str | os.PathLike) -> int | None:
    """The highest N of the `epoch-N.pt` files in `exp_dir` (None when there is none)."""
    epochs = [int(m.group(1)) for p in Path(exp_dir).glob("epoch-*.pt")
              if (m := re.fullmatch(r"epoch-(\d+)\.pt", p.name))]
    return max(epochs) if epochs else None


def decode_dir_name(epoch: int, avg: int, use_averaged_model: bool = False) -> str:
    return f"decode_epoch{epoch}_avg{avg}" + ("_running" if use_averaged_model else "")


def decode_root(exp_dir: str | os.PathLike, epoch: int | None, avg: int, use_averaged_model: bool = False) -> Path:
    """The decode dir of (epoch or the last one, avg); GraftError when the model has no epoch yet."""
    if epoch is None:
        epoch = last_epoch(exp_dir)
        if epoch is None:
            raise GraftError(f"no epoch-N.pt in {exp_dir}: train the model first (stage 4 or 5)")
    return Path(exp_dir) / decode_dir_name(epoch, avg, use_averaged_model)
