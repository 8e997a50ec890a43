"""Cut long audio into segments at quiet points (frame energy), so no model attends over minutes.

The encoder's self-attention is quadratic in the input length: a 10-minute file in one piece
would need (4 heads x 15000 x 29999) relative-position scores per layer, about 7 GB of float32
for one tensor. So a file longer than `max_seconds` is cut first:
  1. log-energy of 25 ms frames every 10 ms;
  2. speech = frames above a threshold between the quiet and loud ends of the file's own
     energy distribution (10th and 95th percentiles), so gain does not matter;
  3. speech regions closer than `min_gap` are joined, padded by `pad` on each side; very short
     regions (< `min_speech`) are dropped as clicks;
  4. a region longer than `max_seconds` is split at the quietest frame of its last third
     before the limit (a pause between words, where there is one).
Files up to `max_seconds` are not cut: they are decoded whole, like an utterance in training.

Usage:
    spans = segment_audio(samples, max_seconds=30.0)     # [(start_s, end_s), ...]
    pieces = [samples[int(a * 16000):int(b * 16000)] for a, b in spans]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graft.export.audio import SAMPLE_RATE

HOP = 0.01
WIN = 0.025


@dataclass
class SegmentOptions:
    """Segmentation settings (seconds)."""

    max_seconds: float = 30.0
    min_gap: float = 0.4
    pad: float = 0.2
    min_speech: float = 0.15
    threshold: float = 0.25   # fraction of the way from the quiet to the loud percentile


def frame_energy_db(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-energy (dB) of WIN-second frames every HOP seconds."""
    hop, win = int(HOP * rate), int(WIN * rate)
    if len(samples) < win:
        return np.array([10 * np.log10(np.mean(samples ** 2) + 1e-10)])
    n = 1 + (len(samples) - win) // hop
    power = np.square(samples.astype(np.float64))
    csum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(n) * hop
    return 10 * np.log10((csum[starts + win] - csum[starts]) / win + 1e-10)


def _regions(speech: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (first, last + 1) frame indices."""
    edges = np.diff(np.concatenate([[0], speech.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _split_long(a: int, b: int, energy: np.ndarray, max_frames: int) -> list[tuple[int, int]]:
    out = []
    while b - a > max_frames:
        lo, hi = a + (2 * max_frames) // 3, a + max_frames
        smooth = np.convolve(energy[lo:hi], np.ones(11) / 11, mode="same")
        cut = lo + int(np.argmin(smooth))
        out.append((a, cut))
        a = cut
    out.append((a, b))
    return out


def segment_audio(samples: np.ndarray, opts: SegmentOptions | None = None,
                  rate: int = SAMPLE_RATE) -> list[tuple[float, float]]:
    """(start, end) seconds of the segments to decode; the whole file if it is short enough."""
    opts = opts or SegmentOptions()
    duration = len(samples) / rate
    if opts.max_seconds <= 0 or duration <= opts.max_seconds:
        return [(0.0, duration)]
    energy = frame_energy_db(samples, rate)
    quiet, loud = np.percentile(energy, 10), np.percentile(energy, 95)
    speech = energy > quiet + opts.threshold * (loud - quiet)
    regions = _regions(speech)
    if not regions:
        return []
    gap, pad = int(opts.min_gap / HOP), int(opts.pad / HOP)
    merged = [list(regions[0])]
    for a, b in regions[1:]:
        if a - merged[-1][1] < gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    n = len(energy)
    max_frames = int(opts.max_seconds / HOP)
    spans: list[tuple[int, int]] = []
    for a, b in merged:
        if (b - a) * HOP < opts.min_speech:
            continue
        a, b = max(0, a - pad), min(n, b + pad)
        if spans and a < spans[-1][1]:          # padding made two regions touch
            a = spans[-1][1]
        spans += _split_long(a, b, energy, max_frames)
    return [(round(a * HOP, 3), round(duration if b >= n else b * HOP, 3)) for a, b in spans]
