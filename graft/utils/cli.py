"""Entry-point wrapper for steps: a GraftError becomes one `ERROR: ...` line and exit 1.

Usage:
    if __name__ == "__main__":
        run_main(main)

A full, read-only or unwritable disk (OSError ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EFBIG),
anywhere in the step, becomes one line too (graft.utils.errors.disk_error): the path, the
cause, and that running the step again after fixing it continues (outputs are written
atomically, so whatever exists is complete). Ctrl-C prints one line and exits 130. Any other
exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Callable

from graft.utils.errors import GraftError, disk_error

AFTER_DISK_ERROR = "then run the step again: what is finished is kept (atomic writes) and it continues"


def error_message(e: BaseException) -> str | None:
    """The `ERROR: ...` text for a user-facing exception, or None for a bug."""
    if isinstance(e, GraftError):
        return f"ERROR: {e}"
    translated = disk_error(e, after=AFTER_DISK_ERROR)
    if translated is not None:
        return f"ERROR: {translated}"
    # A library may wrap the OSError of a full disk in an exception of its own.
    for inner in (e.__cause__, e.__context__):
        translated = disk_error(inner, after=AFTER_DISK_ERROR) if inner is not None else None
        if translated is not None:
            return f"ERROR: {translated}"
    return None


def run_main(main: Callable[[], object]) -> None:
    """Call `main()`; print a GraftError (or a disk error) without a traceback and exit 1."""
    try:
        main()
    except KeyboardInterrupt:
        print("ERROR: interrupted (Ctrl-C); run the step again to continue", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        message = error_message(e)
        if message is None:
            raise
        print(message, file=sys.stderr)
        sys.exit(1)
