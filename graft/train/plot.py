"""Loss curves of a training run as a PNG (matplotlib, Agg backend).

Usage:
    plot_losses(history, "exp/en_small/loss.png")
    # history: {"train": [[step, loss], ...], "valid": [[step, loss], ...]} (per-frame losses)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from graft.utils.io import save_figure


def plot_losses(history: dict[str, Any], out_png: str | Path, title: str = "") -> Path | None:
    """Plot train (and valid, if any) loss against step; returns the path, None if no points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = history.get("train") or []
    valid = history.get("valid") or []
    if not train and not valid:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot([p[0] for p in train], [p[1] for p in train], label="train", linewidth=1)
    if valid:
        ax.plot([p[0] for p in valid], [p[1] for p in valid], "o-", label="valid", linewidth=1.5)
    ax.set_xlabel("step (batches)")
    ax.set_ylabel("loss per encoder frame")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, out_png)
