"""Noisy and reverberant copies of training cuts (graft/train/corrupt.py, `--corrupt`): the copies'
recipes are fixed by (seed, cut id, kind); the noise is at its SNR and of its colour; the room
response has its direct-to-reverberant ratio and decay; the dataset computes a copy's features
from the corrupted audio and keeps them; the loop and the grid take the option (the grid counts
the copies in its budget); bad values are clear errors.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_corrupt.py -q
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_grid_converged import fbank, grid_yaml, run_grid  # noqa: F401  (fbank: a fixture)

from graft.lang.langdir import load_lang_dir
from graft.train.corrupt import (colored_noise, corrupt_audio, corrupted_copies, draw_recipe, parse_corrupt,
                                 room_impulse_response)
from graft.train.data import AsrDataset, load_cuts
from graft.train.loop import train
from graft.train.options import load_train_conf
from graft.utils.errors import GraftError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "steps"))

import grid as grid_step  # noqa: E402  steps/grid.py

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
SR = 16000


def speech_like(seconds: float = 2.0) -> np.ndarray:
    """A 200 Hz harmonic tone switched on and off at 4 Hz (syllable-like), float32, (1, n)."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 6))
    return (0.3 * tone * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)[None, :]


def test_parse_and_errors():
    assert parse_corrupt(None) == parse_corrupt("") == parse_corrupt("none") == ()
    assert parse_corrupt("reverb noise") == parse_corrupt("reverb,noise") == ("reverb", "noise")
    assert parse_corrupt("noise") == ("noise",)
    with pytest.raises(GraftError, match=re.escape("--corrupt: 'echo' is not one of reverb, noise")):
        parse_corrupt("reverb echo")
    with pytest.raises(GraftError, match="given twice"):
        parse_corrupt("noise noise")
    conf = load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", corrupt="noise,reverb")
    assert conf.corrupt == "noise reverb"                     # one spelling in params.json
    assert load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e").corrupt == ""   # off by default
    with pytest.raises(GraftError, match="'babble' is not one of"):
        load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", corrupt="babble")


def test_recipes_are_fixed_by_seed_id_and_kind():
    a = draw_recipe("utt1", "noise", 0)
    assert a == draw_recipe("utt1", "noise", 0)
    assert a != draw_recipe("utt2", "noise", 0) and a != draw_recipe("utt1", "noise", 1)
    assert 10 <= a["snr_db"] <= 30 and a["color"] in ("white", "pink", "brown")
    r = draw_recipe("utt1", "reverb", 0)
    assert 0.2 <= r["t60"] <= 0.8 and 0 <= r["drr_db"] <= 10
    colors = {draw_recipe(f"u{i}", "noise", 0)["color"] for i in range(40)}
    assert colors == {"white", "pink", "brown"}


def test_noise_is_at_its_snr_and_colour():
    x = speech_like()
    for color in ("white", "pink", "brown"):
        recipe = {"kind": "noise", "color": color, "snr_db": 15.0, "seed": 7}
        y = corrupt_audio(x, SR, recipe)
        assert y.shape == x.shape and y.dtype == np.float32
        noise = (y - x).astype(np.float64)
        snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
        assert snr == pytest.approx(15.0, abs=0.05)
        assert np.array_equal(y, corrupt_audio(x, SR, recipe))            # the same copy every epoch
    rng = np.random.default_rng(0)
    spectra = {}
    for color in ("white", "pink", "brown"):
        p = np.abs(np.fft.rfft(colored_noise(2**16, color, rng))) ** 2
        spectra[color] = p[100:1000].mean() / p[10000:30000].mean()   # low band over high band power
    assert spectra["white"] == pytest.approx(1.0, rel=0.2)
    assert 10 < spectra["pink"] < spectra["brown"]


def test_room_response_and_reverberation():
    rng = np.random.default_rng(3)
    h = room_impulse_response(SR, t60=0.5, drr_db=6.0, rng=rng)
    assert len(h) == 8000 and h[0] == 1.0 and not h[1:40].any()        # direct sound, then the 2.5 ms gap
    assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(6.0, abs=1e-6)
    early, late = np.sum(h[41:800] ** 2), np.sum(h[-800:] ** 2)
    assert late < early * 1e-4                                           # ~60 dB down at the end
    x = speech_like()
    recipe = {"kind": "reverb", "t60": 0.6, "drr_db": 2.0, "seed": 11}
    y = corrupt_audio(x, SR, recipe)
    assert y.shape == x.shape and np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-3)
    off = x[0] == 0                                                      # the pauses of the input
    assert np.mean(y[0, off] ** 2) > 100 * np.mean(x[0, off] ** 2) + 1e-6   # reverberation fills them
    assert np.corrcoef(x[0], y[0])[0, 1] > 0.3
    assert np.array_equal(y, corrupt_audio(x, SR, recipe))
    with pytest.raises(GraftError, match="unknown corruption 'echo'"):
        corrupt_audio(x, SR, {"kind": "echo", "seed": 1})


def test_copies_and_their_features(tiny):
    lang = load_lang_dir(tiny.lang_dir)
    cuts = load_cuts(tiny.cuts_dev)
    copies = corrupted_copies(cuts, ("reverb", "noise"), seed=0)
    assert len(copies) == 2 * len(cuts)
    orig = next(iter(cuts))
    noisy = copies[f"{orig.id}_noise"]
    assert not noisy.has_features and noisy.duration == orig.duration
    assert noisy.custom["corrupt"] == draw_recipe(orig.id, "noise", 0)
    assert noisy.supervisions[0].text == orig.supervisions[0].text
    assert len(corrupted_copies(cuts, (), 0)) == 0
    ds = AsrDataset(lang)
    clean = ds._features(orig.drop_features())
    for kind in ("noise", "reverb"):
        f = ds._features(copies[f"{orig.id}_{kind}"])
        assert f.shape == clean.shape and not np.allclose(f, clean, atol=0.5)
        assert ds.cache[f"{orig.id}_{kind}"] is f                         # kept for the next epochs
    # noise raises the energy of the quietest frames (the pauses) far more than of the loud ones
    fn = ds.cache[f"{orig.id}_noise"]
    quiet = clean.mean(axis=1) < np.percentile(clean.mean(axis=1), 20)
    assert (fn[quiet] - clean[quiet]).mean() > 2 * max((fn[~quiet] - clean[~quiet]).mean(), 0.1)


def test_training_with_corrupted_copies(tiny, tmp_path):
    """--corrupt reaches the loop: one copy per kind of every cut, said in the log."""
    from test_train import tiny_conf, tiny_model

    exp = tmp_path / "exp"
    lang = load_lang_dir(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    conf = tiny_conf(tiny, exp, cuts_dev=None, corrupt="reverb noise", num_epochs=1)
    assert train(model, conf, lang, mconf).finished
    n = len(load_cuts(tiny.cuts_train))
    log = "".join(p.read_text() for p in (exp / "log").glob("train-*.log"))
    assert (f"corrupted copies: {n} cuts -> {3 * n} (one reverb and one noise copy of each of the {n} cuts; "
            "fbank on the fly)") in log
    assert torch.load(exp / "epoch-1.pt", weights_only=False)["train_conf"]["corrupt"] == "reverb noise"


def test_grid_counts_the_copies_in_its_budget(tmp_path, fbank):  # noqa: F811
    fb, minutes = fbank
    plain = grid_step.expand(grid_step.load_grid(str(grid_yaml(tmp_path, ""))), fb)
    both = grid_step.expand(grid_step.load_grid(str(grid_yaml(tmp_path, "corrupt: reverb noise\n"))), fb)
    for a, b in zip(plain, both):
        assert b.train_opts == a.train_opts + " --corrupt reverb,noise"
        assert b.epochs == math.ceil(3 / (minutes * 3)) and a.epochs == math.ceil(3 / minutes)
    sp = grid_yaml(tmp_path, "speed_perturb: true\n")
    p = run_grid("--grid", sp, "--fbank-dir", fb, "--corrupt", "noise")
    assert p.returncode == 0, p.stderr
    for line in p.stdout.strip().splitlines():
        fields = line.split("\t")
        assert fields[7].endswith("--speed-perturb true --corrupt noise")
        assert int(fields[4]) == math.ceil(3 / (minutes * (2 + 1 / 0.9 + 1 / 1.1)))
    p = run_grid("--grid", sp, "--fbank-dir", fb, "--corrupt", "wind")
    assert p.returncode != 0 and "--corrupt: 'wind' is not one of reverb, noise" in p.stderr
    assert "Traceback" not in p.stderr
    with pytest.raises(GraftError, match=r"\.yaml: corrupt: 'hum' is not one of reverb, noise"):
        grid_step.load_grid(str(grid_yaml(tmp_path, "corrupt: hum\n")))
