"""Errors with a message that says what is wrong, where, and what to do.

Usage:
    require_file(path, stage=1, what="the Czech dev manifest")
    try:
        write_chunk(path)
    except OSError as e:
        raise disk_error(e, path, "run stage 2 again: finished chunks are kept") or e

`disk_error` turns the OSErrors a full, read-only or unwritable disk raises (ENOSPC, EDQUOT,
EROFS, EACCES, EPERM, EFBIG) into one GraftError line naming the path, the cause and the
remedy; graft.utils.cli.run_main applies it to every step.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path


class GraftError(Exception):
    """A user-facing error: the message names the file or stage at fault.

    A GraftError raised in a torch DataLoader worker comes back to the main process wrapped
    ("Caught GraftError in DataLoader worker process 0. Original Traceback ..."): the wrapper
    is removed again, so that the user sees the one line the worker meant.
    """

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if text.startswith("Caught ") and "Original Traceback" in text:
            m = re.search(r"\n[\w.]*GraftError: (.*)\s*$", text, flags=re.S)
            if m:
                text = m.group(1).strip()
        super().__init__(text)


class MissingStageError(GraftError):
    """An input an earlier stage should have written is missing."""


def require_file(path: str | os.PathLike, stage: int | None = None, what: str = "") -> Path:
    """Return `path` if it exists, else raise MissingStageError naming the stage that writes it."""
    path = Path(path)
    if path.exists():
        return path
    label = f"{what} " if what else ""
    hint = f" (written by stage {stage}: run ./run.sh --stage {stage})" if stage is not None else ""
    raise MissingStageError(f"missing {label}{path}{hint}")


# errno -> (what happened, what to do)
_DISK_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the disk", "free space there (or write elsewhere)"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space there (or write elsewhere)"),
    errno.EFBIG: ("the file is larger than allowed (ulimit -f, or the file system's limit)",
                  "raise the limit (or write elsewhere)"),
    errno.EROFS: ("the file system is read-only", "make it writable (or write elsewhere)"),
    errno.EACCES: ("permission denied", "make it writable for this user (or write elsewhere)"),
    errno.EPERM: ("operation not permitted", "make it writable for this user (or write elsewhere)"),
}


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def free_space(path: str | os.PathLike) -> str:
    """Free space of the file system holding `path` (its nearest existing parent), or ""."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return f"{_human(shutil.disk_usage(p).free)} free"
    except OSError:
        return ""


def is_disk_error(e: BaseException) -> bool:
    """True for an OSError of a full, read-only or unwritable disk."""
    return isinstance(e, OSError) and e.errno in _DISK_ERRNOS


def disk_error(e: BaseException, path: str | os.PathLike | None = None,
               after: str = "then run it again") -> GraftError | None:
    """A one-line GraftError for a disk-full/read-only/permission OSError, else None.

    `path` names what was being written when the error does not (e.filename wins);
    `after` says what the user does once the disk is fixed (e.g. that a re-run resumes).
    """
    if not is_disk_error(e):
        return None
    assert isinstance(e, OSError)
    what, remedy = _DISK_ERRNOS[e.errno]
    where = e.filename if e.filename else path
    where_text = f" {where}" if where else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT) and where:
        free = free_space(where)
        if free:
            what = f"{what} ({free})"
    return GraftError(f"cannot write{where_text}: {what}: {remedy}, {after}")
