"""PNG plot of WER against LM weight for dev and test, one line per insertion penalty.

Usage:
    plot_wer_vs_lm_weight("exp/m/decode/ctc-hlg/wer_vs_lmwt.png", "ctc-hlg",
                          {"dev": {(0.1, 0.0): 12.3, ...}, "test": {...}}, chosen=(0.5, 0.0))
"""
from __future__ import annotations

import os
from typing import Mapping

from graft.score.weights import weight_label
from graft.utils.io import save_figure


def plot_wer_vs_lm_weight(
    path: str | os.PathLike,
    title: str,
    wer: Mapping[str, Mapping[tuple[float, float], float]],
    chosen: tuple[float, float] | None = None,
) -> None:
    """Write the plot atomically (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "D", "v", "x"]
    for si, (set_name, scores) in enumerate(wer.items()):
        penalties = sorted({p for _, p in scores})
        for pi, pen in enumerate(penalties):
            pts = sorted((w, v) for (w, p), v in scores.items() if p == pen)
            ax.plot([w for w, _ in pts], [v for _, v in pts], linestyle=styles[si % len(styles)],
                    marker=markers[pi % len(markers)], label=f"{set_name}, penalty {weight_label(pen)}")
    if chosen is not None:
        ax.axvline(chosen[0], color="grey", linewidth=0.8)
        ax.annotate(f"chosen {weight_label(chosen[0])}", (chosen[0], ax.get_ylim()[1]), fontsize=8,
                    ha="left", va="top")
    ax.set_xlabel("LM weight")
    ax.set_ylabel("WER (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
