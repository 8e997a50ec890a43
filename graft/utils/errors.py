"""Errors with a message that says what is wrong and where.

Usage:
    require_file(path, stage=1, what="the Czech dev manifest")
"""
from __future__ import annotations

import os
from pathlib import Path


class GraftError(Exception):
    """A user-facing error: the message names the file or stage at fault."""


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
