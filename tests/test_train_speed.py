"""Tests of the fast training path: graft's dropout, bf16 autocast (graft.train.amp), the fused
optimizer and clipping, and that a resumed bf16 run repeats an uninterrupted one exactly.
Speed itself is measured in bench/bench_train.py, not here.

Usage:
    .venv/bin/python -m pytest tests/test_train_speed.py -q
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn


from graft.lang.langdir import load_lang_dir
from graft.model.dropout import Dropout, dropout, keep_threshold, set_dropout_impl
from graft.train.amp import cpu_bf16_flags, cpu_fast_bf16, parse_amp, resolve_amp
from graft.train.loop import Trainer, train
from graft.train.optim import build_optimizer, clip_grad_norm
from graft.train.options import load_train_conf
from graft.utils.errors import GraftError


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_model(vocab_size: int, seed: int = 0):
    from graft.model.build import build_model, load_model_conf

    torch.manual_seed(seed)
    conf = load_model_conf("tiny")
    return build_model(conf, vocab_size), conf


# ---- dropout ---------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_keep_rate_and_scaling(p):
    torch.manual_seed(1)
    n = 1_000_000
    x = torch.ones(n)
    y = Dropout(p).train()(x)
    kept = y != 0
    rate = kept.float().mean().item()
    assert keep_threshold(p) / 2**16 == pytest.approx(1 - p, abs=2**-17)
    assert abs(rate - (1 - p)) < 5 * ((p * (1 - p) / n) ** 0.5)           # 5 sigma
    assert torch.all(y[kept] == torch.tensor(1 / (1 - p)))               # nn.Dropout's scaling
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_dropout_is_off_in_eval_and_at_p0_and_drops_all_at_p1():
    x = torch.randn(4, 5, 6)
    d = Dropout(0.2).eval()
    assert d(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.all(Dropout(1.0).train()(x) == 0)
    with pytest.raises(ValueError):
        Dropout(1.5)


def test_dropout_masks_are_independent_reproducible_and_shaped():
    torch.manual_seed(3)
    x = torch.ones(200, 300)
    a = dropout(x, 0.5)
    b = dropout(x, 0.5)
    assert a.shape == x.shape and not torch.equal(a, b)                   # a fresh mask per call
    rows_equal = (a[0] != 0) == (a[1] != 0)
    assert 0.4 < rows_equal.float().mean().item() < 0.6                 # not shared across rows
    cols_equal = (a[:, 0] != 0) == (a[:, 1] != 0)
    assert 0.4 < cols_equal.float().mean().item() < 0.6                 # nor across columns
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.5), a)                               # the torch generator's


def test_dropout_mask_shared_over_a_dimension():
    torch.manual_seed(5)
    x = torch.ones(40, 50, 60)                                            # (N, T, D)
    y = dropout(x, 0.3, shared_dim=1)
    kept = y != 0
    assert torch.equal(kept, kept[:, :1, :].expand_as(kept))              # every frame the same mask
    assert 0.6 < kept[:, 0, :].float().mean().item() < 0.8                # keep rate 0.7 over (N, D)
    assert torch.all(y[kept] == torch.tensor(1 / 0.7))
    per_channel = kept[0, 0, :]
    assert 0 < per_channel.sum() < per_channel.numel()                    # independent over channels
    assert not torch.equal(kept[0, 0], kept[1, 0])                        # ... and utterances
    xg = torch.randn(3, 7, 5, requires_grad=True)
    yg = Dropout(0.5, shared_dim=1).train()(xg)
    yg.sum().backward()
    assert torch.equal(xg.grad, (yg.detach() != 0).float() * 2.0)
    assert Dropout(0.5, shared_dim=1).eval()(xg) is xg
    assert "shared_dim=1" in repr(Dropout(0.5, shared_dim=1))


def test_model_conf_shares_dropout_masks_over_time():
    from graft.model.attention import SelfAttention
    from graft.model.build import build_model, load_model_conf

    conf = load_model_conf("tiny")
    assert conf["dropout_shared_time"] is False
    per_element = build_model(conf, 30)
    assert all(m.shared_dim is None for m in per_element.modules() if isinstance(m, Dropout))
    shared = build_model({**conf, "dropout_shared_time": True}, 30)
    drops = {n: m for n, m in shared.named_modules() if isinstance(m, Dropout)}
    attn = {f"{n}.dropout" for n, m in shared.named_modules() if isinstance(m, SelfAttention)}
    assert attn and attn <= set(drops)
    assert all(m.shared_dim == (2 if n in attn else 1) for n, m in drops.items())   # (N,H,Tq,Tk): queries
    legacy = {k: v for k, v in conf.items() if k != "dropout_shared_time"}        # an older checkpoint's conf
    assert build_model(legacy, 30).encoder.layers[0].dropout.shared_dim is None
    with pytest.raises(GraftError, match="dropout_shared_time must be true or false"):
        build_model({**conf, "dropout_shared_time": "yes"}, 30)
    torch.manual_seed(0)
    feats, lens = torch.randn(2, 120, 80), torch.tensor([120, 90])
    shared.train()
    enc, enc_lens = shared.encoder(feats, lens)
    assert torch.isfinite(enc).all() and enc.shape[0] == 2


def test_dropout_gradient_and_dtype():
    torch.manual_seed(0)
    x = torch.randn(50, 40, requires_grad=True)
    y = dropout(x, 0.25)
    y.sum().backward()
    mask = y.detach() != 0
    assert torch.equal(x.grad, mask.float() / 0.75)
    xb = torch.randn(10, 10, dtype=torch.bfloat16)
    assert dropout(xb, 0.1).dtype == torch.bfloat16
    # kept elements are scaled by 1/(1-p) rounded once to the input's dtype (as where(keep, scale, 0))
    ones = torch.ones(100_000, dtype=torch.bfloat16)
    kept = dropout(ones, 0.1)
    assert set(kept.unique().tolist()) == {0.0, torch.tensor(1 / 0.9, dtype=torch.bfloat16).item()}


def test_every_model_dropout_is_graft_s_and_can_use_torch_s():
    model, _ = tiny_model(64)
    assert not [m for m in model.modules() if type(m) is nn.Dropout]
    n = set_dropout_impl(model, "torch")
    assert n == sum(isinstance(m, Dropout) for m in model.modules()) > 0
    assert all(m.impl == "torch" for m in model.modules() if isinstance(m, Dropout))
    set_dropout_impl(model, "fast")
    with pytest.raises(ValueError):
        set_dropout_impl(model, "cuda")


# ---- mixed precision -------------------------------------------------------------------------
def test_amp_option_and_detection(tmp_path):
    assert parse_amp("auto") == "auto" and parse_amp(True) == "true" and parse_amp("off") == "false"
    with pytest.raises(GraftError, match="--amp"):
        parse_amp("fp8")
    with pytest.raises(GraftError, match="--amp"):
        load_train_conf(amp="maybe")
    assert load_train_conf().amp == "auto"
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n\nflags : x\n")
    assert cpu_bf16_flags(info) == ["amx_bf16"]
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_bf16_flags(info) == [] and cpu_bf16_flags(tmp_path / "missing") == []
    fast, why = cpu_fast_bf16()
    auto = resolve_amp("auto", "cpu")
    assert auto.enabled == fast and auto.reason == why and why in auto.describe()
    assert not resolve_amp("false", "cpu").enabled
    on = resolve_amp("true", "cpu")
    assert on.enabled and "bf16 autocast" in on.describe()
    with on.autocast():
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    with auto.autocast() if not auto.enabled else resolve_amp("false", "cpu").autocast():
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32


def _batch(vocab: int):
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(3, 220, 80, generator=g)
    lens = torch.tensor([220, 200, 160])
    tokens = [torch.randint(1, vocab, (n,), generator=g).tolist() for n in (12, 9, 7)]
    return feats, lens, tokens


def test_bf16_autocast_losses_match_fp32():
    model, _ = tiny_model(64)
    model.eval()                        # no dropout: the same function in both precisions
    feats, lens, tokens = _batch(64)
    kw = dict(prune_range=5, simple_loss_scale=0.5, ctc_weight=0.2)
    results = {}
    for name in ("fp32", "bf16"):
        amp = resolve_amp(name == "bf16", "cpu")
        model.zero_grad()
        with amp.autocast():
            loss, info = model(feats, lens, tokens, **kw)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[name] = (loss.detach(), info, grad)
    (l32, i32, g32), (l16, i16, g16) = results["fp32"], results["bf16"]
    assert l16.dtype == torch.float32 and i16["ctc"].dtype == torch.float32
    for k in ("simple", "pruned", "ctc"):
        assert i16[k].item() == pytest.approx(i32[k].item(), rel=0.005), k
    assert l16.item() == pytest.approx(l32.item(), rel=0.005)
    cos = torch.nn.functional.cosine_similarity(g16, g32, dim=0).item()
    assert cos > 0.995 and torch.isfinite(g16).all()


# ---- depthwise convolution layout ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_depthwise_equals_the_planar_convolution(dtype):
    from graft.model.convolution import ConvModule

    torch.manual_seed(0)
    conv = ConvModule(dim=24, kernel_size=7)
    x = torch.randn(3, 40, 24, dtype=dtype)
    outs, grads = {}, {}
    for planar in (True, False):
        conv.planar = planar
        conv.zero_grad()
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            y = conv._depthwise(xi)
        (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outs[planar], grads[planar] = y, (xi.grad, conv.depthwise.weight.grad, conv.depthwise.bias.grad)
    assert outs[False].shape == (3, 40, 24) and outs[False].dtype == outs[True].dtype
    # the same function: oneDNN's two kernels may sum in another order (at the `small` model's
    # shapes the loss and all but the bias gradients are bit-equal: bench/bench_depthwise.py)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(outs[False], outs[True], **tol)
    for g_last, g_planar in zip(grads[False], grads[True]):      # input, weight, bias
        torch.testing.assert_close(g_last, g_planar, **tol)
    # frame t sees frames t-3 .. t+3 only (kernel 7): a change at frame 20 moves outputs 17..23
    conv.planar = False
    x = x.float()
    x2 = x.clone()
    x2[:, 20] += 1.0
    with torch.no_grad():
        moved = (conv._depthwise(x2) != conv._depthwise(x)).any(dim=2).any(dim=0)
    assert moved.nonzero().flatten().tolist() == list(range(17, 24))


# ---- optimizer and clipping ------------------------------------------------------------------
def test_fused_optimizer_and_clipping_match_torch():
    model, _ = tiny_model(64)
    assert build_optimizer(model, 1e-3, 1e-6).defaults["fused"]
    assert not build_optimizer(model, 1e-3, 1e-6, fused=False).defaults["fused"]
    params = [p for p in model.parameters()]
    torch.manual_seed(0)
    for p in params:
        p.grad = torch.randn_like(p)
    before = [p.grad.clone() for p in params]
    norm = clip_grad_norm(params, 5.0)
    clipped = [p.grad.clone() for p in params]
    for p, g in zip(params, before):
        p.grad = g.clone()
    ref = float(torch.nn.utils.clip_grad_norm_(params, 5.0))
    assert norm == pytest.approx(ref, rel=1e-6) and norm > 5.0
    for a, p in zip(clipped, params):
        assert torch.allclose(a, p.grad, rtol=1e-6, atol=0)
    small = [g * 1e-4 for g in before]
    for p, g in zip(params, small):
        p.grad = g.clone()
    clip_grad_norm(params, 5.0)                                   # within bounds: untouched
    assert all(torch.equal(p.grad, g) for p, g in zip(params, small))


# ---- resume under bf16 -----------------------------------------------------------------------
class StopAfter(Trainer):
    """The real loop, stopped cleanly (a checkpoint, as --max-minutes does) after `steps` batches."""

    def __init__(self, *args, steps: int, **kw) -> None:
        super().__init__(*args, **kw)
        self.stop_at = steps

    def _budget_reached(self) -> bool:
        return self.step >= self.stop_at


def test_resumed_bf16_run_equals_the_uninterrupted_one(tmp_path, tiny):
    lang = load_lang_dir(tiny.lang_dir)

    def conf(exp: Path):
        return load_train_conf(cuts_train=str(tiny.cuts_train), cuts_dev=str(tiny.cuts_dev),
                               lang_dir=str(tiny.lang_dir), exp_dir=str(exp), model_conf="tiny",
                               num_epochs=2, max_duration=10.0, warm_steps=5, save_every_n=0,
                               log_interval=2, average_period=2, amp="true", seed=7)

    model, mconf = tiny_model(lang.vocab_size)
    ref = train(model, conf(tmp_path / "ref"), lang, mconf)
    assert ref.finished and ref.step > 4
    exp = tmp_path / "resumed"
    model, _ = tiny_model(lang.vocab_size)
    first = StopAfter(model, conf(exp), lang, mconf, steps=3).run()
    assert first.stopped_by_budget and first.step == 3 and (exp / "checkpoint-3.pt").exists()
    model, _ = tiny_model(lang.vocab_size, seed=99)                # the checkpoint must win
    again = train(model, conf(exp), lang, mconf)
    assert again.finished and again.resumed_from.endswith("checkpoint-3.pt")
    assert any("mixed precision: bf16 autocast" in f.read_text() for f in (exp / "log").glob("train-*.log"))
    a = torch.load(tmp_path / "ref" / "epoch-2.pt", weights_only=False)
    b = torch.load(exp / "epoch-2.pt", weights_only=False)
    assert a["progress"] == b["progress"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for k, v in a["model_avg"].items():
        assert torch.equal(v, b["model_avg"][k]), k
    assert a["history"]["valid"] == b["history"]["valid"]


# ---- fewer batch shapes: padded frames and the kernel cache ---------------------------------
def test_padding_to_a_multiple_keeps_lengths_and_losses(tiny):
    """pad_frames_to rounds the batch's frames up; the lengths stay the cuts' own and the model
    masks the extra frames, so the losses are those of the unpadded batch."""
    from lhotse import CutSet
    from lhotse.utils import LOG_EPSILON

    from graft.train.data import AsrDataset

    lang = load_lang_dir(tiny.lang_dir)
    cuts = CutSet.from_file(tiny.cuts_train).subset(first=4)
    plain, padded = AsrDataset(lang)[cuts], AsrDataset(lang, pad_frames_to=32)[cuts]
    longest = int(plain["feature_lens"].max())
    assert plain["features"].shape[1] == longest
    assert padded["features"].shape[1] == -(-longest // 32) * 32 > longest
    assert torch.equal(padded["feature_lens"], plain["feature_lens"])
    assert torch.equal(padded["features"][:, :longest], plain["features"])
    assert torch.all(padded["features"][:, longest:] == LOG_EPSILON)
    model, _ = tiny_model(lang.vocab_size)
    model.eval()
    with torch.no_grad():
        a = model(plain["features"], plain["feature_lens"], plain["tokens"], ctc_weight=0.2)[1]
        b = model(padded["features"], padded["feature_lens"], padded["tokens"], ctc_weight=0.2)[1]
    for k in ("simple", "pruned", "ctc"):
        assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-4), k
    with pytest.raises(GraftError, match="pad_frames_to"):
        AsrDataset(lang, pad_frames_to=0)


def test_kernel_cache_is_enlarged_unless_the_user_set_it(monkeypatch):
    from graft.train.kernels import CACHE_VARIABLE, enlarge_kernel_cache

    monkeypatch.delenv(CACHE_VARIABLE, raising=False)
    assert "16384" in enlarge_kernel_cache() and os.environ[CACHE_VARIABLE] == "16384"
    monkeypatch.setenv(CACHE_VARIABLE, "99")
    assert "set by the user" in enlarge_kernel_cache() and os.environ[CACHE_VARIABLE] == "99"
