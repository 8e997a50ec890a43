"""Noisy and reverberant copies of training cuts: TTS speech made less of a clean room.

Usage:
    kinds = parse_corrupt("reverb noise")                 # --corrupt (conf/train.yaml)
    copies = corrupted_copies(cuts, kinds, seed=0)        # one copy per cut and kind: <id>_reverb, <id>_noise
    audio = corrupt_audio(audio, 16000, copy.custom["corrupt"])   # AsrDataset does this before its fbank

Each copy carries its recipe in `cut.custom["corrupt"]`, drawn once from its cut id, kind and
the seed, so a copy sounds the same in every epoch, on every rank and after a resume (as copies
made offline would; AsrDataset computes its fbank on the fly and keeps it, like the
speed-perturbed copies'):

- reverb: a synthetic room impulse response, the direct sound then an exponentially decaying
  Gaussian tail (the statistical model of late reverberation) with a reverberation time
  T60 ~ U(0.2, 0.8) s and a direct-to-reverberant energy ratio ~ U(0, 10) dB; the output keeps
  the input's RMS. (lhotse's simulated RIRs need torchaudio, which this stack does not have.)
- noise: stationary white, pink (1/f power) or brown (1/f^2) Gaussian noise at an SNR
  ~ U(10, 30) dB over the utterance's power.

Both are numpy on one utterance (an FFT convolution / an FFT-shaped noise): ~5 ms for 5 s.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
from lhotse import CutSet

from graft.utils.errors import GraftError

KINDS = ("reverb", "noise")
T60_RANGE = (0.2, 0.8)        # seconds
DRR_RANGE_DB = (0.0, 10.0)    # direct-to-reverberant energy ratio
SNR_RANGE_DB = (10.0, 30.0)
COLORS = ("white", "pink", "brown")
PRE_DELAY_S = 0.0025          # first reflection after the direct sound


def parse_corrupt(text: str | None, what: str = "--corrupt") -> tuple[str, ...]:
    """'reverb noise' (or 'reverb,noise') -> ('reverb', 'noise'); '' / None / 'none' -> ();
    a GraftError starting with `what` otherwise."""
    if text is None or text.strip().lower() in ("", "none", "false"):
        return ()
    kinds = tuple(text.replace(",", " ").split())
    for k in kinds:
        if k not in KINDS:
            raise GraftError(f"{what}: {k!r} is not one of {', '.join(KINDS)} (give e.g. 'reverb noise')")
    if len(set(kinds)) != len(kinds):
        raise GraftError(f"{what}: a kind is given twice in {text!r}")
    return kinds


def draw_recipe(cut_id: str, kind: str, seed: int) -> dict[str, Any]:
    """The parameters of one copy, a function of (seed, cut id, kind) only."""
    rng = random.Random(f"{seed}:{cut_id}:{kind}")
    recipe: dict[str, Any] = {"kind": kind, "seed": rng.randrange(2**31)}
    if kind == "reverb":
        recipe.update(t60=round(rng.uniform(*T60_RANGE), 3), drr_db=round(rng.uniform(*DRR_RANGE_DB), 2))
    elif kind == "noise":
        recipe.update(color=rng.choice(COLORS), snr_db=round(rng.uniform(*SNR_RANGE_DB), 2))
    else:
        raise GraftError(f"unknown corruption {kind!r} (one of {', '.join(KINDS)})")
    return recipe


def corrupted_copies(cuts: CutSet, kinds: tuple[str, ...], seed: int = 0) -> CutSet:
    """One copy of every cut per kind (ids `<id>_<kind>`, features dropped: computed on the fly)."""
    first = next(iter(cuts), None)
    if first is None or not kinds:
        return CutSet.from_cuts([])
    if not first.has_recording:
        raise GraftError("--corrupt needs the cuts' recordings (audio files), but the training cuts have none")
    out = []
    for kind in kinds:
        for c in cuts:
            copy = c.drop_features().with_id(f"{c.id}_{kind}")
            copy.custom = {**(copy.custom or {}), "corrupt": draw_recipe(c.id, kind, seed)}
            out.append(copy)
    return CutSet.from_cuts(out)


def room_impulse_response(sr: int, t60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Direct sound (1.0 at t=0) then a Gaussian tail decaying by 60 dB in t60 seconds, whose
    energy is the direct sound's times 10^(-drr_db / 10)."""
    n = max(2, int(t60 * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.907755 * t / t60)     # ln(1000): 60 dB of amplitude
    tail[: int(PRE_DELAY_S * sr) + 1] = 0.0
    energy = float(np.sum(tail**2))
    if energy > 0:
        tail *= np.sqrt(10 ** (-drr_db / 10) / energy)
    tail[0] = 1.0
    return tail


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power Gaussian noise whose power falls as f^0 (white), f^-1 (pink) or f^-2 (brown)."""
    white = rng.standard_normal(n)
    if color != "white":
        power = {"pink": 1.0, "brown": 2.0}[color]
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        white = np.fft.irfft(spec / f ** (power / 2), n)
    return white / max(float(np.sqrt(np.mean(white**2))), 1e-12)


def corrupt_audio(audio: np.ndarray, sr: int, recipe: dict[str, Any]) -> np.ndarray:
    """`audio` ((channels, samples) or (samples,)) with the copy's reverberation or noise; same shape and dtype."""
    x = np.asarray(audio, dtype=np.float64)
    rng = np.random.default_rng(recipe["seed"])
    power = float(np.mean(x**2))
    if recipe["kind"] == "reverb":
        h = room_impulse_response(sr, recipe["t60"], recipe["drr_db"], rng)
        n = x.shape[-1] + len(h) - 1
        size = 1 << (n - 1).bit_length()
        y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[..., : x.shape[-1]]
        out_power = float(np.mean(y**2))
        if out_power > 0:
            y *= np.sqrt(power / out_power)
    elif recipe["kind"] == "noise":
        noise = colored_noise(x.shape[-1], recipe["color"], rng)
        y = x + noise * np.sqrt(power / 10 ** (recipe["snr_db"] / 10))
    else:
        raise GraftError(f"unknown corruption {recipe['kind']!r} (one of {', '.join(KINDS)})")
    return y.astype(np.asarray(audio).dtype, copy=False)
