"""Early stopping on the dev WER (graft.train.early_stop, graft.train.loop): the stop rule, a
run driven by a made-up WER sequence, resuming (after an epoch and inside one) with the best WER
and the epochs since it kept, and one run whose WER is computed by greedy search.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_early_stop.py -q
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graft.lang.langdir import load_lang_dir as load_lang
from graft.train import loop
from graft.train.early_stop import PLATEAU_WER, EarlyStop, decode_epoch, read_summary, word_errors
from graft.train.loop import train
from graft.utils.errors import GraftError
from test_train import tiny_conf as train_conf, tiny_model  # the tiny run and model of test_train

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_conf(tiny, exp_dir: Path, **kw):
    """test_train's tiny run, with 10 epochs and early stopping after 2 epochs without a gain."""
    return train_conf(tiny, exp_dir, **{"num_epochs": 10, "save_every_n": 0, "log_interval": 0,
                                        "early_stop_patience": 2, **kw})


def fake_wers(monkeypatch, wers: list[float]) -> list[float]:
    """Make Trainer._dev_wer return `wers` in turn (the calls left are what remains)."""
    left = list(wers)
    monkeypatch.setattr(loop.Trainer, "_dev_wer", lambda self: left.pop(0))
    return left


# ---- the rule -------------------------------------------------------------------------------
def test_epochs_on_the_blank_plateau_do_not_count():
    """A model at ~100 % WER (all blank) is not stopped however long it stays there; once its best
    is below PLATEAU_WER the usual patience applies."""
    s = EarlyStop(patience=2)
    for epoch, wer in enumerate([100.0, 100.0, 100.0, 99.5, 100.0, 99.7], start=1):
        s.add([epoch, epoch, 15.0 * epoch, wer])
    assert PLATEAU_WER <= 99.5 and s.epochs_since_best == 2 and not s.should_stop
    for epoch, wer in ((7, 90.0), (8, 91.0), (9, 92.0)):
        s.add([epoch, epoch, 15.0 * epoch, wer])
    assert s.best[0] == 7 and s.should_stop


def test_patience_grows_with_the_epochs_to_the_best():
    """Best at epoch 20: the patience is max(2, ceil(0.25 * 20)) = 5 epochs."""
    s = EarlyStop(patience=2)
    for epoch in range(1, 20):
        s.add([epoch, epoch, 15.0 * epoch, 100.0])
    s.add([20, 20, 300.0, 90.0])
    for epoch in range(21, 25):
        s.add([epoch, epoch, 15.0 * epoch, 91.0])
        assert not s.should_stop, epoch
    s.add([25, 25, 375.0, 91.0])
    assert s.epochs_since_best == 5 and s.effective_patience == 5 and s.should_stop


def test_rule_counts_epochs_since_the_strictly_best():
    s = EarlyStop(patience=2)
    assert s.best is None and not s.should_stop
    for epoch, wer in enumerate([90.0, 80.0, 80.0], start=1):
        s.add([epoch, 10 * epoch, 1.5 * epoch, wer])
    assert s.best[0] == 2 and s.epochs_since_best == 1 and not s.should_stop   # a tie is no improvement
    s.add([4, 40, 6.0, 85.0])
    assert s.should_stop
    again = EarlyStop.from_history(s.history, patience=3)                       # a larger patience goes on
    assert again.best[0] == 2 and not again.should_stop
    assert not EarlyStop.from_history(s.history, patience=0).should_stop
    with pytest.raises(GraftError, match="epoch, step, minutes, wer"):
        s.add([5, 50.0])


def test_word_errors_counts_missing_hypotheses_as_deletions():
    refs = {"a": ["x", "y"], "b": ["z"]}
    assert word_errors(refs, {"a": ["x", "q", "y"]}) == (2, 3)


def test_decode_epoch_is_the_best_with_a_checkpoint(tmp_path):
    for e in (1, 2, 3):
        (tmp_path / f"epoch-{e}.pt").write_bytes(b"")
    assert decode_epoch(tmp_path) == 3                                          # no dev_wer.json: the last
    (tmp_path / "dev_wer.json").write_text(json.dumps({"best": {"epoch": 2}}))
    assert decode_epoch(tmp_path) == 2
    p = subprocess.run([sys.executable, "-m", "graft.train.early_stop", "decode-epoch", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0 and p.stdout.strip() == "2"
    (tmp_path / "dev_wer.json").write_text("{")
    with pytest.raises(GraftError, match="dev_wer.json is not valid JSON"):
        decode_epoch(tmp_path)


# ---- the loop ------------------------------------------------------------------------------
def test_stops_after_patience_epochs_without_improvement(tmp_path, tiny, monkeypatch):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    left = fake_wers(monkeypatch, [90.0, 70.0, 75.0, 71.0, 10.0])
    result = train(model, tiny_conf(tiny, exp), lang, mconf)
    assert result.finished and result.stopped_early and result.epochs_done == 4
    assert left == [10.0]                                                        # epoch 5 never ran
    assert sorted(p.name for p in exp.glob("epoch-*.pt")) == [f"epoch-{e}.pt" for e in (1, 2, 3, 4)]
    rows = result.history["dev_wer"]
    assert [r[0] for r in rows] == [1, 2, 3, 4] and [r[3] for r in rows] == [90.0, 70.0, 75.0, 71.0]
    minutes = [r[2] for r in rows]
    assert minutes[0] > 0 and minutes[1] == pytest.approx(2 * minutes[0], rel=1e-3)
    summary = read_summary(exp)
    assert summary["done"] and summary["stopped_early"] and summary["best"]["epoch"] == 2
    assert summary["best"]["audio_minutes"] == minutes[1] and summary["max_epochs"] == 10
    params = json.loads((exp / "params.json").read_text())
    assert params["early_stop"]["best"]["epoch"] == 2 and "history" not in params["early_stop"]
    assert decode_epoch(exp) == 2
    ckpt = torch.load(exp / "epoch-4.pt", weights_only=False)
    assert ckpt["history"]["dev_wer"] == rows
    assert ckpt["progress"]["audio_seconds"] == pytest.approx(60 * minutes[3], abs=0.1)
    log = next((exp / "log").glob("train-*.log")).read_text()
    assert "epoch 2 dev WER 70.00 %" in log and "early stop after epoch 4" in log

    again = train(model, tiny_conf(tiny, exp), lang, mconf)                      # nothing left to do
    assert again.finished and again.stopped_early and again.step == result.step and left == [10.0]


def test_resume_keeps_the_best_and_the_epochs_since(tmp_path, tiny, monkeypatch):
    lang = load_lang(tiny.lang_dir)
    exp = tmp_path / "exp"
    fake_wers(monkeypatch, [80.0, 60.0, 65.0])
    r1 = train(tiny_model(lang)[0], tiny_conf(tiny, exp, num_epochs=3), lang, tiny_model(lang)[1])
    assert r1.finished and not r1.stopped_early and read_summary(exp)["epochs_since_best"] == 1
    # more epochs: one more without improvement reaches the patience of 2 (60 at epoch 2 stays best)
    left = fake_wers(monkeypatch, [61.0, 1.0])
    r2 = train(tiny_model(lang)[0], tiny_conf(tiny, exp), lang, tiny_model(lang)[1])
    assert r2.resumed_from.endswith("epoch-3.pt") and r2.stopped_early and r2.epochs_done == 4
    assert left == [1.0] and read_summary(exp)["best"]["epoch"] == 2


def test_resume_inside_an_epoch_counts_the_audio_and_the_state(tmp_path, tiny, monkeypatch):
    lang = load_lang(tiny.lang_dir)
    reference = tmp_path / "reference"
    fake_wers(monkeypatch, [50.0, 55.0, 56.0])
    ref = train(tiny_model(lang)[0], tiny_conf(tiny, reference), lang, tiny_model(lang)[1])
    assert ref.stopped_early and ref.epochs_done == 3

    exp = tmp_path / "killed"
    fake_wers(monkeypatch, [50.0])
    steps_per_epoch = ref.history["dev_wer"][0][1]
    budget = iter([False] * (steps_per_epoch + 2) + [True])   # stop 3 batches into epoch 2
    monkeypatch.setattr(loop.Trainer, "_budget_reached", lambda self: next(budget))
    r1 = train(tiny_model(lang)[0], tiny_conf(tiny, exp), lang, tiny_model(lang)[1])
    assert r1.stopped_by_budget and not r1.finished and r1.step == steps_per_epoch + 3
    monkeypatch.setattr(loop.Trainer, "_budget_reached", lambda self: False)
    fake_wers(monkeypatch, [55.0, 56.0])
    r2 = train(tiny_model(lang)[0], tiny_conf(tiny, exp), lang, tiny_model(lang)[1])
    assert r2.stopped_early and r2.epochs_done == 3
    for a, b in zip(r2.history["dev_wer"], ref.history["dev_wer"]):
        assert a[:2] == b[:2] and a[2] == pytest.approx(b[2], abs=1e-3) and a[3] == b[3]


def test_real_dev_wer_and_the_missing_dev_set(tmp_path, tiny):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    result = train(model, tiny_conf(tiny, exp, num_epochs=2, early_stop_patience=5), lang, mconf)
    rows = result.history["dev_wer"]
    assert result.finished and not result.stopped_early and [r[0] for r in rows] == [1, 2]
    assert all(r[3] >= 0 and r[3] == r[3] for r in rows)                       # a number, not nan
    assert model.training                                                       # train mode is back
    assert read_summary(exp)["done"] and decode_epoch(exp) in (1, 2)
    with pytest.raises(GraftError, match="--early-stop-patience 2 needs dev cuts"):
        train(model, tiny_conf(tiny, tmp_path / "nodev", cuts_dev=None), lang, mconf)
    with pytest.raises(GraftError, match="--early-stop-patience must be >= 0"):
        tiny_conf(tiny, exp, early_stop_patience=-1)
