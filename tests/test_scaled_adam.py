"""Tests of graft.train.scaled_adam.ScaledAdam and of `--optimizer scaled_adam` in training.

Usage:
    .venv/bin/python -m pytest tests/test_scaled_adam.py -q
"""
from __future__ import annotations

import copy
import json
import logging

import pytest
import torch
from torch import nn

from graft.lang.langdir import load_lang_dir
from graft.train.loop import train
from graft.train.optim import build_optimizer
from graft.train.options import load_train_conf
from graft.train.scaled_adam import ScaledAdam
from graft.utils.errors import GraftError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_first_step_is_relative_to_each_tensors_rms():
    big = nn.Parameter(torch.full((4, 5), 2.0))         # rms 2
    small = nn.Parameter(torch.full((3, 3), -0.1))      # rms 0.1
    zero = nn.Parameter(torch.zeros(6))                 # rms 0: floored at param_min_rms
    scalar = nn.Parameter(torch.tensor(0.5))
    opt = ScaledAdam([big, small, zero, scalar], lr=0.05, betas=(0.9, 0.98), param_min_rms=0.01)
    before = [p.detach().clone() for p in (big, small, zero, scalar)]
    for p in (big, small, zero, scalar):
        p.grad = torch.randn_like(p).abs() + 0.1        # positive: the first Adam step is -1 per element
    opt.step()
    # first step: m / sqrt(v) = g / |g| = 1, times (1 - beta1) (momentum of one step)
    expected = {0: 0.05 * 0.1 * 2.0, 1: 0.05 * 0.1 * 0.1, 2: 0.05 * 0.1 * 0.01, 3: 0.05 * 0.1 * 0.1}
    for i, p in enumerate((big, small, zero, scalar)):
        change = before[i] - p.detach()
        torch.testing.assert_close(change, torch.full_like(change, expected[i]), rtol=1e-4, atol=1e-9)


def test_it_minimizes_a_regression_and_the_momentum_carries():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    w_true = torch.randn(8, 3)
    y = x @ w_true
    model = nn.Linear(8, 3)
    opt = ScaledAdam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(300):
        loss = (model(x) - y).pow(2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.01 * losses[0]


def test_a_tensor_above_param_max_rms_is_shrunk():
    p = nn.Parameter(torch.full((10, 10), 5.0))         # rms 5 > param_max_rms 3
    opt = ScaledAdam([p], lr=0.05, param_max_rms=3.0, size_update_period=2)
    rms = []
    for _ in range(20):
        p.grad = torch.zeros_like(p)                    # no loss gradient: only the size update moves it
        opt.step()
        rms.append(float(p.detach().pow(2).mean().sqrt()))
    assert rms[1] == pytest.approx(5.0)                 # the first period only measures
    assert rms[-1] < rms[3] < 5.0 and all(b <= a + 1e-6 for a, b in zip(rms[3:], rms[4:]))


def test_the_size_follows_the_gradient_of_the_scale():
    torch.manual_seed(0)
    direction = torch.randn(16, 16)
    p = nn.Parameter(direction * 0.1)
    opt = ScaledAdam([p], lr=0.05, size_update_period=4)
    for _ in range(60):
        opt.zero_grad()
        loss = (p.norm() - 3.0) ** 2                   # wants the same direction, a larger norm
        loss.backward()
        opt.step()
    assert float(p.detach().norm()) == pytest.approx(3.0, abs=0.3)


def test_clipping_against_the_median_of_recent_norms(caplog):
    p = nn.Parameter(torch.ones(4, 4))
    opt = ScaledAdam([p], lr=1e-6, clipping_scale=2.0, clipping_update_period=10)   # p stays ~1
    first = opt.state[p]
    with caplog.at_level(logging.INFO, logger="graft.train.scaled_adam"):
        for _ in range(10):
            p.grad = torch.ones_like(p)                 # norm 4 x rms 1
            opt.step()
        p.grad = torch.full_like(p, 100.0)              # 100x the usual norm at the period's end
        opt.step()
    assert first["model_norm_threshold"] == pytest.approx(2.0 * 4.0, rel=1e-4)
    assert first["num_clipped"] == 1
    assert "threshold 8" in caplog.text and "clipped 0.0 %" in caplog.text
    # the clipped gradient went into Adam's second moment: 100 scaled down to 8 / 16 per element
    g_clipped = 100.0 * 8.0 / 400.0
    v = 0.98 * (1.0 - 0.98 ** 10) + 0.02 * g_clipped ** 2
    torch.testing.assert_close(first["exp_avg_sq"], torch.full((4, 4), v), rtol=1e-4, atol=0)


def test_state_dict_resumes_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    x, y = torch.randn(32, 6), torch.randn(32, 2)
    opt = ScaledAdam(model.parameters(), lr=0.03, size_update_period=3, clipping_update_period=5)

    def run(m, o, n):
        for _ in range(n):
            o.zero_grad()
            (m(x) - y).pow(2).mean().backward()
            o.step()

    run(model, opt, 7)
    model2 = copy.deepcopy(model)
    opt2 = ScaledAdam(model2.parameters(), lr=0.03, size_update_period=3, clipping_update_period=5)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    run(model, opt, 9)
    run(model2, opt2, 9)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_scalars_are_clamped():
    s = nn.Parameter(torch.tensor(9.99))
    opt = ScaledAdam([s], lr=1.0, scalar_lr_scale=1.0, scalar_max=10.0)
    for _ in range(5):
        s.grad = torch.tensor(-1.0)                     # pushes it up
        opt.step()
    assert float(s.detach()) == 10.0


def test_build_optimizer_choice_and_errors():
    model = nn.Linear(4, 4)
    assert isinstance(build_optimizer(model, 0.045, 0.0, optimizer="scaled_adam"), ScaledAdam)
    assert isinstance(build_optimizer(model, 0.002, 0.0), torch.optim.AdamW)
    with pytest.raises(GraftError, match="unknown optimizer 'sgd'"):
        build_optimizer(model, 0.1, 0.0, optimizer="sgd")
    with pytest.raises(GraftError, match="--optimizer 'sgd' is not one of: adamw, scaled_adam"):
        load_train_conf(optimizer="sgd")


def test_training_with_scaled_adam_learns_and_says_so(tmp_path, tiny):
    from graft.model.build import build_model, load_model_conf

    lang = load_lang_dir(tiny.lang_dir)
    torch.manual_seed(0)
    mconf = load_model_conf("tiny")
    model = build_model(mconf, lang.vocab_size, lang.blank_id)
    exp = tmp_path / "exp"
    conf = load_train_conf(cuts_train=str(tiny.cuts_train), cuts_dev=None, lang_dir=str(tiny.lang_dir),
                           exp_dir=str(exp), model_conf="tiny", num_epochs=3, max_duration=10.0,
                           warm_steps=5, save_every_n=0, log_interval=2, optimizer="scaled_adam",
                           base_lr=0.03)
    result = train(model, conf, lang, mconf)
    assert result.finished and not result.skipped_batches
    assert result.history["train"][-1][1] < 0.8 * result.history["train"][0][1]
    log_text = next((exp / "log").glob("train-*.log")).read_text()
    assert "optimizer: ScaledAdam, base lr 0.03" in log_text
    params = json.loads((exp / "params.json").read_text())
    assert params["train_conf"]["optimizer"] == "scaled_adam"
    ckpt = torch.load(exp / "epoch-3.pt", weights_only=False)
    assert any("param_rms" in s for s in ckpt["optimizer"]["state"].values())
