"""Kaldi-style text tables: one `<utt-id> word word ...` line per utterance.

Usage:
    refs = read_text("exp/m/decode/ctc-hlg/dev/ref.txt")   # {"utt1": ["hello", "world"]}
    write_text("exp/m/decode/ctc-hlg/dev/ref.txt", refs)   # atomic
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

from graft.utils.errors import GraftError
from graft.utils.io import atomic_write


def read_text(path: str | os.PathLike, what: str = "text") -> dict[str, list[str]]:
    """Read a text table (order kept); GraftError on a missing file or a repeated id."""
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing {what} {path}")
    out: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if fields[0] in out:
            raise GraftError(f"{path}:{n}: utterance id {fields[0]!r} appears twice")
        out[fields[0]] = fields[1:]
    return out


def format_text(table: Mapping[str, Iterable[str]], order: Iterable[str] | None = None) -> str:
    """The table as text lines, in `order` (default: the table's own order)."""
    keys = list(table) if order is None else list(order)
    return "".join(" ".join([k, *table.get(k, [])]) + "\n" for k in keys)


def write_text(path: str | os.PathLike, table: Mapping[str, Iterable[str]], order: Iterable[str] | None = None) -> None:
    """Write a text table atomically; ids must have no white space."""
    for k in table:
        if not k or any(c.isspace() for c in k):
            raise GraftError(f"utterance id {k!r} is empty or has white space (writing {path})")
    with atomic_write(path) as f:
        f.write(format_text(table, order))
