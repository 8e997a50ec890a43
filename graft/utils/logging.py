"""One logging format for every step.

Usage:
    from graft.utils.logging import get_logger
    log = get_logger(__name__)
"""
from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def get_logger(name: str) -> logging.Logger:
    """A logger that prints to stderr in the common format (configured once)."""
    root = logging.getLogger("graft")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False  # libraries that configure the root logger would repeat every line
    if not name.startswith("graft"):
        name = f"graft.{name}"
    return logging.getLogger(name)
