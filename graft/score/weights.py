"""LM-weight and insertion-penalty lists: parsing and the labels used in file names.

Usage:
    weights = parse_weights("0.1 0.2 0.3", "--lm-weights", minimum=0.0)
    penalties = parse_weights("0.0,0.5", "--word-ins-penalties")
    weight_label(0.5)   # "0.5" (so files are wer_0.5_0.0)
"""
from __future__ import annotations

import math

from graft.utils.errors import GraftError


def weight_label(x: float) -> str:
    """A short, stable label: up to 4 decimals, at least one ("1.0", "0.25", "-0.5")."""
    x = float(x)
    if x == 0:
        x = 0.0  # no "-0.0"
    s = f"{x:.4f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def parse_weights(text: str, what: str, minimum: float | None = None) -> list[float]:
    """Parse numbers separated by spaces or commas; GraftError naming `what` on bad input."""
    items = [t for t in text.replace(",", " ").split() if t]
    if not items:
        raise GraftError(f"{what}: empty list {text!r}")
    out: list[float] = []
    labels: dict[str, float] = {}
    for item in items:
        try:
            x = float(item)
        except ValueError:
            raise GraftError(f"{what}: cannot parse {item!r} as a number (in {text!r})") from None
        if not math.isfinite(x):
            raise GraftError(f"{what}: {item!r} is not a finite number (in {text!r})")
        if minimum is not None and x < minimum:
            raise GraftError(f"{what}: {item!r} is below the minimum {minimum} (in {text!r})")
        label = weight_label(x)
        if label in labels:
            if labels[label] != x:
                raise GraftError(f"{what}: {item!r} and {labels[label]!r} share the label {label} (use at most 4 decimals)")
            continue
        labels[label] = x
        out.append(x)
    return out
