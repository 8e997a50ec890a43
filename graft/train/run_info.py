"""What a training run was: parameters and software versions, written as exp_dir/params.json.

Usage:
    write_params(exp_dir, {"train_conf": conf.to_dict(), "model_conf": model_conf, ...})
    versions()   # {"python", "torch", "lhotse", ..., "git_sha", "git_dirty", "hostname", ...}
"""
from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from graft.utils.io import atomic_write

_PACKAGES = ("torch", "lhotse", "sentencepiece", "fast_rnnt", "numpy", "graft")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def versions() -> dict[str, Any]:
    """Python, package versions, the git commit of the graft checkout (and if it is dirty)."""
    out: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    root = Path(__file__).resolve().parents[2]
    out["git_sha"] = _git(["rev-parse", "HEAD"], root)
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    out["git_dirty"] = None if status is None else bool(status)
    out["hostname"] = socket.gethostname()
    out["command"] = " ".join(sys.argv)
    out["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return out


def write_params(exp_dir: str | Path, params: dict[str, Any]) -> Path:
    """Write {"versions": versions(), **params} to exp_dir/params.json (atomically)."""
    path = Path(exp_dir) / "params.json"
    with atomic_write(path) as f:
        json.dump({"versions": versions(), **params}, f, indent=2, default=str)
        f.write("\n")
    return path


def update_params(exp_dir: str | Path, extra: dict[str, Any]) -> Path:
    """Merge `extra` into exp_dir/params.json (atomically); e.g. a run's result when it ends.

    Usage: update_params("exp/cs_scratch_converged_15m", {"early_stop": {...}})"""
    path = Path(exp_dir) / "params.json"
    params = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    params.update(extra)
    with atomic_write(path) as f:
        json.dump(params, f, indent=2, default=str)
        f.write("\n")
    return path
