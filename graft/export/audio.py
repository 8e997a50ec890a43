"""Read an audio file (wav, flac, mp3, ogg: whatever libsndfile reads) as 16 kHz mono float32.

Multi-channel audio is averaged to mono; other sample rates are resampled with a polyphase
filter (scipy.signal.resample_poly). MP3 needs libsndfile >= 1.1 (soundfile's wheels have it).

Usage:
    samples = load_audio("talk.mp3")          # np.float32 in [-1, 1], 16 kHz
    seconds = len(samples) / SAMPLE_RATE
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from graft.utils.errors import GraftError

SAMPLE_RATE = 16000


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of a 1-D signal from `rate` to `target` Hz."""
    if rate == target:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), int(target))
    return resample_poly(samples, target // g, int(rate) // g).astype(np.float32)


def load_audio(path: str | os.PathLike, target: int = SAMPLE_RATE) -> np.ndarray:
    """The samples of `path` as float32 mono at `target` Hz; GraftError naming the file if unreadable."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing audio file {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors are RuntimeError/LibsndfileError
        raise GraftError(f"cannot read audio {path}: {e} (readable: wav, flac, mp3, ogg)") from None
    if data.shape[0] == 0:
        raise GraftError(f"{path} holds no samples")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(resample(mono, rate, target), dtype=np.float32)
