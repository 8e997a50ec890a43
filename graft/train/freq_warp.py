"""Frequency warping of log-mel features: a vocal-tract-length perturbation (VTLP) for training.

Usage:
    warp = FreqWarp(max_warp=0.1)          # alpha ~ U(0.9, 1.1) per utterance
    feats = warp(feats)                    # (T, F) log-mel features of one utterance -> same shape

A speaker's vocal tract length scales the frequencies of the formants; Kaldi's VTLN and
VTLP (Jaitly & Hinton, 2013) model it as a piecewise-linear warp of the frequency axis. Here the
warp acts on the mel-bin axis of features that are already computed (stage 2's fbank), so it
costs no audio processing: output bin k takes the value at bin position p(k) of the input,
linearly interpolated between its two neighbours, with

    p(k) = alpha * k                                  for k <= K0 = CUTOFF * (F - 1)
    p(k) = alpha * K0 + (k - K0) * (F - 1 - alpha * K0) / (F - 1 - K0)   above,

so the lowest and the highest bins keep their place (no band is lost or invented) and the warp
is monotone for alpha < 1 / CUTOFF = 1.25. alpha > 1 reads the input at higher positions: the
formants move down, as for a longer vocal tract. On the mel scale (nearly logarithmic above
1 kHz) a linear warp of the bin axis is an approximation of the warp in Hz, as in other
feature-domain VTLP implementations.

The factor is drawn from python's `random` module, whose state the training checkpoints keep
(graft.train.rng), so a resumed run draws the same factors (with --num-workers 0).
"""
from __future__ import annotations

import random

import torch

from graft.utils.errors import GraftError

CUTOFF = 0.8     # fraction of the bin axis warped by alpha; above it, the warp returns to the top bin
MAX_WARP = 1.0 / CUTOFF - 1.0   # 0.25: the largest --freq-warp that keeps the warp monotone


def warp_positions(num_bins: int, alpha: float, cutoff: float = CUTOFF) -> torch.Tensor:
    """Input bin position read by each output bin, (num_bins,) float32 (see the module docstring)."""
    top = num_bins - 1
    k = torch.arange(num_bins, dtype=torch.float32)
    k0 = cutoff * top
    low = alpha * k
    high = alpha * k0 + (k - k0) * (top - alpha * k0) / (top - k0)
    return torch.where(k <= k0, low, high).clamp(0, top)


def warp_features(feats: torch.Tensor, alpha: float, cutoff: float = CUTOFF) -> torch.Tensor:
    """(T, F) features warped by `alpha` along F (linear interpolation between bins)."""
    if alpha == 1.0:
        return feats
    pos = warp_positions(feats.shape[-1], alpha, cutoff)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=feats.shape[-1] - 1)
    frac = (pos - lo).to(feats.dtype)
    return feats[..., lo] * (1 - frac) + feats[..., hi] * frac


class FreqWarp:
    """Warp each utterance's features by alpha ~ U(1 - max_warp, 1 + max_warp) (VTLP)."""

    def __init__(self, max_warp: float = 0.1, cutoff: float = CUTOFF) -> None:
        if not 0.0 <= max_warp < MAX_WARP:
            raise GraftError(f"--freq-warp must be in [0, {MAX_WARP:g}) (a factor's largest distance from 1, "
                             f"e.g. 0.1), got {max_warp}")
        if not 0.0 < cutoff < 1.0:
            raise GraftError(f"freq warp cutoff must be in (0, 1), got {cutoff}")
        self.max_warp = max_warp
        self.cutoff = cutoff

    def draw(self) -> float:
        """A warp factor for one utterance."""
        return random.uniform(1.0 - self.max_warp, 1.0 + self.max_warp)

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        if self.max_warp == 0.0:
            return feats
        return warp_features(feats, self.draw(), self.cutoff)
