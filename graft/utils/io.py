"""Atomic writes: a reader never sees a half-written file or directory.

Usage:
    with atomic_write("data/lang/en/words.txt") as f:
        f.write("...")
    with atomic_path("data/fbank/en/cuts_train.jsonl.gz") as tmp:
        cuts.to_file(tmp)          # any writer that takes a path
    with atomic_path("data/fbank/en_pl/cuts_train.jsonl.gz", keep_same=True) as tmp:
        cuts.to_file(tmp)          # the same content again: the old file (and its hash) stays
    with atomic_dir("data/lang/en_bpe500") as tmp_dir:
        ...                        # fill tmp_dir; it is renamed into place on success
"""
from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _tmp_name(path: Path) -> Path:
    # Keep the suffixes (e.g. ".jsonl.gz") so writers that infer the format still work.
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def same_content(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two files hold the same bytes, read through gzip when they end in .gz (a gzip
    header records its write time, so two writes of the same manifest differ as files)."""
    a, b = Path(a), Path(b)
    if not (a.is_file() and b.is_file()):
        return False
    opener = gzip.open if a.suffix == ".gz" else open
    try:
        with opener(a, "rb") as fa, opener(b, "rb") as fb:
            while True:
                ca, cb = fa.read(1 << 20), fb.read(1 << 20)
                if ca != cb:
                    return False
                if not ca:
                    return True
    except (OSError, EOFError):  # a truncated or foreign file is not the same content
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_same: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.
    keep_same: when `path` already holds the same content (same_content), keep it as it is, so
    a step that writes it again does not make later steps' content-hashed inputs look changed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        if not (keep_same and same_content(tmp, path)):
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; it replaces `path` only when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces the directory `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".tmp-{path.name}-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".old-{os.getpid()}-{path.name}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out a matplotlib figure, write it as PNG atomically, close it; return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
