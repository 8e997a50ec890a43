"""Frequency warping (VTLP, graft/train/freq_warp.py): the warp, its draws, its option and the
training batches it changes, on the tiny synthesized corpus (tests/tiny_asr.py)."""
from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest
import torch
from lhotse.utils import LOG_EPSILON

from graft.lang.langdir import load_lang_dir as load_lang
from graft.train.data import AsrDataset, load_cuts
from graft.train.freq_warp import FreqWarp, warp_features, warp_positions
from graft.train.options import load_train_conf
from graft.utils.errors import GraftError
from test_train import tiny_conf, tiny_model  # the tiny run and model of test_train

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def centroid(feats: torch.Tensor) -> float:
    """Mean over frames of the energy-weighted mel-bin centroid of (T, F) log-mel features."""
    energy = feats.exp()
    bins = torch.arange(feats.shape[1], dtype=torch.float32)
    return float(((energy * bins).sum(1) / energy.sum(1)).mean())


def test_positions_keep_the_band_edges_and_are_monotone():
    for alpha in (0.8, 0.9, 1.0, 1.1, 1.2):
        p = warp_positions(80, alpha)
        assert p[0] == 0 and p[-1] == pytest.approx(79, abs=1e-4)
        assert bool((p[1:] > p[:-1]).all()), alpha
        assert p[40] == pytest.approx(40 * alpha)         # below the cutoff: alpha times the bin
    assert torch.equal(warp_positions(80, 1.0), torch.arange(80, dtype=torch.float32))


def test_a_peak_moves_down_for_alpha_above_one_and_up_below():
    x = torch.full((3, 80), -10.0)
    x[:, 40] = 5.0                                          # one "formant" at bin 40
    assert torch.equal(warp_features(x, 1.0), x)
    up, down = warp_features(x, 0.9), warp_features(x, 1.1)
    assert int(down[0].argmax()) in (36, 37)                # 40 / 1.1 = 36.4
    assert int(up[0].argmax()) in (44, 45)                  # 40 / 0.9 = 44.4
    assert up.shape == down.shape == x.shape


def test_draws_stay_in_range_and_follow_the_python_rng():
    warp = FreqWarp(0.1)
    random.seed(5)
    a = [warp.draw() for _ in range(200)]
    random.seed(5)
    assert a == [warp.draw() for _ in range(200)]           # the checkpointed RNG decides them
    assert 0.9 <= min(a) < 0.92 and 1.08 < max(a) <= 1.1
    x = torch.randn(4, 80)
    assert FreqWarp(0.0)(x) is x
    with pytest.raises(GraftError, match=re.escape("--freq-warp must be in [0, 0.25)")):
        FreqWarp(0.3)


def test_option_range_is_checked():
    assert load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e").freq_warp == 0.0   # off by default
    with pytest.raises(GraftError, match=re.escape("--freq-warp must be < 0.25 (the warp stays monotone), got 0.3")):
        load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", freq_warp=0.3)
    with pytest.raises(GraftError, match=re.escape("--freq-warp must be >= 0, got -0.1")):
        load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", freq_warp=-0.1)


def test_option_error_through_the_step(tiny, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "steps"))
    try:
        import importlib

        step = importlib.import_module("train")
    finally:
        sys.path.pop(0)
    args = ["--cuts-train", str(tiny.cuts_train), "--lang-dir", str(tiny.lang_dir), "--model-conf", "tiny",
            "--exp-dir", str(tmp_path / "exp"), "--freq-warp", "0.5"]
    assert step.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "ERROR: --freq-warp must be < 0.25 (the warp stays monotone), got 0.5"


def test_dataset_warps_real_utterances_before_padding(tiny):
    lang = load_lang(tiny.lang_dir)
    cuts = load_cuts(tiny.cuts_dev)
    ids = [c.id for c in cuts][:3]
    plain = AsrDataset(lang)[cuts.subset(cut_ids=ids)]
    warp = FreqWarp(0.1)
    warp.draw = lambda: 1.1                                  # every cut read 10 % higher: formants move down
    warped = AsrDataset(lang, freq_warp=warp)[cuts.subset(cut_ids=ids)]
    assert warped["cut_ids"] == plain["cut_ids"] and torch.equal(warped["feature_lens"], plain["feature_lens"])
    assert warped["tokens"] == plain["tokens"]
    for i, n in enumerate(plain["feature_lens"].tolist()):
        a, b = plain["features"][i, :n], warped["features"][i, :n]
        assert not torch.allclose(a, b)
        assert centroid(b) < centroid(a) - 0.5              # the spectrum's centre of mass moved down
        assert torch.allclose(b[:, 0], a[:, 0])              # the lowest bin keeps its place
        assert bool((warped["features"][i, n:] == LOG_EPSILON).all())   # padding stays padding


def test_training_with_freq_warp_says_so(tiny, tmp_path):
    """--freq-warp reaches the loop: the log names the range, and the run finishes."""
    from graft.train.loop import train

    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    assert train(model, tiny_conf(tiny, exp, cuts_dev=None, freq_warp=0.15), lang, mconf).finished
    log = "".join(p.read_text() for p in (exp / "log").glob("train-*.log"))
    assert "frequency warping (VTLP): each training cut's mel axis x U(0.85, 1.15)" in log
