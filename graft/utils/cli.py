"""Entry-point wrapper for steps: a GraftError becomes one `ERROR: ...` line and exit 1.

Usage:
    if __name__ == "__main__":
        run_main(main)
"""
from __future__ import annotations

import sys
from typing import Callable

from graft.utils.errors import GraftError


def run_main(main: Callable[[], object]) -> None:
    """Call `main()`; print a GraftError without a traceback and exit 1."""
    try:
        main()
    except GraftError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(1)
