"""Tests of graft.model: shapes, masking, names, losses (fast_rnnt vs pure PyTorch), overfitting.

Usage:
    .venv/bin/python -m pytest tests/test_model.py -q
"""
from __future__ import annotations

import pytest
import torch

from graft.model import loss as loss_mod
from graft.model.attention import rel_shift
from graft.model.build import build_model, count_parameters, load_model_conf, presets
from graft.model.loss import (full_rnnt_loss, make_boundary, pad_targets, pruned_rnnt_loss,
                              reference_rnnt_loss, reference_simple_loss)
from graft.model.subsampling import min_input_frames, subsampled_lengths
from graft.model.transducer import VOCAB_DEPENDENT, Transducer
from graft.utils.errors import GraftError

VOCAB = 20


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads; one thread keeps the shared cores free."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(vocab: int = VOCAB, **over) -> Transducer:
    torch.manual_seed(0)
    conf = {**load_model_conf("tiny"), "dropout": 0.0, "ctc_dropout": 0.0, **over}
    return build_model(conf, vocab_size=vocab, blank_id=0)


def batch(lens: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lens), max(lens), 80, generator=g)
    for i, n in enumerate(lens):
        x[i, n:] = 0.0
    return x, torch.tensor(lens)


# ------------------------------------------------------------------------- shapes and masks
@pytest.mark.parametrize("factor", [4, 6, 8])
def test_subsampling_lengths(factor):
    model = tiny(subsampling_factor=factor).eval()
    assert subsampled_lengths(torch.tensor(min_input_frames(factor)), factor) == 1
    assert subsampled_lengths(torch.tensor(min_input_frames(factor) - 1), factor) == 0
    lens = [min_input_frames(factor), 57, 100, 101, 203]
    x, x_lens = batch(lens)
    with torch.no_grad():
        out, out_lens = model.encoder(x, x_lens)
        for i, n in enumerate(lens):                    # each alone: its own full length
            alone, alone_len = model.encoder(x[i:i + 1, :n], x_lens[i:i + 1])
            assert alone.shape[1] == alone_len.item() == out_lens[i].item()
    assert out.shape == (len(lens), int(out_lens.max()), 64)
    assert out_lens.tolist() == subsampled_lengths(x_lens, factor).tolist()
    if factor == 4:
        assert out_lens.tolist() == [((n - 1) // 2 - 1) // 2 for n in lens]


@pytest.mark.parametrize("pos_enc", ["rel", "abs"])
def test_padding_does_not_change_valid_outputs(pos_enc):
    model = tiny(pos_enc=pos_enc).eval()
    lens = [90, 143, 61]
    x, x_lens = batch(lens)
    x_noisy = x.clone()
    for i, n in enumerate(lens):                        # garbage in the padding
        x_noisy[i, n:] = 100.0 * torch.randn_like(x_noisy[i, n:])
    x_long = torch.cat([x_noisy, torch.randn(3, 40, 80)], dim=1)   # and more of it
    with torch.no_grad():
        out, out_lens = model.encoder(x_noisy, x_lens)
        out_long, out_lens_long = model.encoder(x_long, x_lens)
        assert torch.equal(out_lens, out_lens_long)
        for i, n in enumerate(lens):
            alone, _ = model.encoder(x[i:i + 1, :n], x_lens[i:i + 1])
            t = out_lens[i]
            torch.testing.assert_close(out[i, :t], alone[0], atol=2e-5, rtol=1e-4)
            torch.testing.assert_close(out_long[i, :t], alone[0], atol=2e-5, rtol=1e-4)
            assert not out[i, t:].any()                 # padded outputs are zero
        other, _ = model.encoder(torch.randn_like(x), x_lens)      # and the input matters
        assert (other - out).abs().max() > 0.1


def test_rel_shift_picks_offset_i_minus_j():
    t = 5
    offsets = torch.arange(t - 1, -t, -1).float()        # column c holds offset T-1-c
    scores = offsets.expand(2, 3, t, 2 * t - 1)
    shifted = rel_shift(scores)
    i, j = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
    assert torch.equal(shifted[1, 2], (i - j).float())


def test_decoder_and_joiner_search_interface():
    model = tiny().eval()
    dec = model.decoder
    assert dec.context_size == 2 and dec.blank_id == 0 and dec.vocab_size == VOCAB
    y = torch.tensor([[0, 5, 7, 3], [0, 2, 2, 9]])
    with torch.no_grad():
        full = dec(y)                                   # (N, U, D), left padded with blanks
        last = dec(y[:, -2:], need_pad=False)           # (N, 1, D)
        first = dec(torch.zeros(2, 2, dtype=torch.long), need_pad=False)
        assert full.shape == (2, 4, 64) and last.shape == (2, 1, 64)
        torch.testing.assert_close(last[:, 0], full[:, -1])
        torch.testing.assert_close(first[:, 0], full[:, 0])       # blank context == padding
        enc, _ = model.encoder(*batch([60]))
        logits = model.joiner(enc.unsqueeze(2), full[:1].unsqueeze(1))
        proj = model.joiner(model.joiner.encoder_proj(enc).unsqueeze(2),
                            model.joiner.decoder_proj(full[:1]).unsqueeze(1), project_input=False)
        assert logits.shape == (1, enc.shape[1], 4, VOCAB)
        torch.testing.assert_close(logits, proj)
        ctc = model.ctc_output(enc)
        assert ctc.shape == (1, enc.shape[1], VOCAB)
        torch.testing.assert_close(ctc.exp().sum(-1), torch.ones(1, enc.shape[1]))


def test_parameter_names():
    model = tiny()
    names = {n for n, _ in model.named_parameters()}
    for expected in ["encoder.embed.out.weight", "encoder.layers.1.self_attn.in_proj.weight",
                     "encoder.layers.0.self_attn.linear_pos.weight", "encoder.layers.1.conv.depthwise.weight",
                     "encoder.layers.0.ff_macaron.net.0.weight", "decoder.embedding.weight",
                     "joiner.encoder_proj.weight", "joiner.decoder_proj.weight",
                     "joiner.output_linear.weight", "ctc_output.1.weight"]:
        assert expected in names, expected
    assert "encoder.norm_out.weight" in names                      # norm_style "pre" (presets)
    assert not any(".norm_final." in n for n in names)
    conformer = {n for n, _ in tiny(norm_style="conformer").named_parameters()}
    assert "encoder.layers.1.norm_final.weight" in conformer and "encoder.norm_out.weight" not in conformer
    assert isinstance(model.ctc_output[1], torch.nn.Linear)
    assert len(model.encoder.layers) == 2 and model.vocab_size == VOCAB and model.blank_id == 0
    vocab_shaped = {n for n, p in model.named_parameters() if VOCAB in p.shape}
    assert vocab_shaped == {n for n in names if n.startswith(VOCAB_DEPENDENT)}


def test_confs():
    assert {"tiny", "small", "medium", "large"} <= set(presets())
    small = load_model_conf("small")
    assert small["feature_dim"] == 80 and small["subsampling_factor"] in (4, 6, 8)
    assert 3e6 <= count_parameters(build_model(small, 500))["total"] <= 6e6
    with pytest.raises(GraftError, match="unknown model preset"):
        load_model_conf("huge")
    with pytest.raises(GraftError, match="unknown model conf keys"):
        build_model({"encoder_dims": 10}, 10)


def test_conf_from_path(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("base: tiny\nencoder_dim: 32\nnum_layers: 1\nsubsampling_factor: 6\n")
    conf = load_model_conf(str(path))
    assert conf["encoder_dim"] == 32 and conf["subsampling_factor"] == 6 and conf["feature_dim"] == 80
    assert conf["norm_style"] == load_model_conf("tiny")["norm_style"] == "pre"  # from the base preset
    assert build_model(conf, 7).encoder.subsampling_factor == 6
    # a partial conf without a base is an error naming the missing keys (no defaults in the code)
    path.write_text("encoder_dim: 32\n")
    with pytest.raises(GraftError, match=r"lacks \['feature_dim'.*base: small"):
        load_model_conf(str(path))


def test_presets_name_every_key():
    import yaml

    from graft.model.build import CONF_DIR, KEYS

    for name in presets():
        conf = yaml.safe_load((CONF_DIR / f"{name}.yaml").read_text())
        assert set(KEYS) <= set(conf), (name, sorted(set(KEYS) - set(conf)))


# ------------------------------------------------------------------------- losses
def random_lattice(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, t, s, v = 3, 14, 6, 9
    logits = torch.randn(n, t, s + 1, v, generator=g, requires_grad=True)
    symbols = torch.randint(1, v, (n, s), generator=g)
    boundary = make_boundary(torch.tensor([6, 4, 1]), torch.tensor([14, 9, 3]))
    return logits, symbols, boundary


@pytest.mark.skipif(not loss_mod.HAVE_FAST_RNNT, reason="fast_rnnt not importable")
def test_fallback_full_loss_equals_fast_rnnt():
    logits, symbols, boundary = random_lattice()
    ref = full_rnnt_loss(logits, symbols, boundary, reduction="none", backend="fast_rnnt")
    ours = full_rnnt_loss(logits, symbols, boundary, reduction="none", backend="torch")
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)
    g_ref, = torch.autograd.grad(ref.sum(), logits)
    g_ours, = torch.autograd.grad(ours.sum(), logits)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not loss_mod.HAVE_FAST_RNNT, reason="fast_rnnt not importable")
def test_fallback_simple_loss_equals_fast_rnnt():
    g = torch.Generator().manual_seed(1)
    _, symbols, boundary = random_lattice()
    am = torch.randn(3, 14, 9, generator=g)
    lm = torch.randn(3, 7, 9, generator=g)
    for lm_scale, am_scale in [(0.0, 0.0), (0.25, 0.0), (0.1, 0.2)]:
        ref = loss_mod.fast_rnnt.rnnt_loss_smoothed(lm, am, symbols, 0, lm_only_scale=lm_scale,
                                                    am_only_scale=am_scale, boundary=boundary,
                                                    reduction="none")
        ours = reference_simple_loss(lm, am, symbols, boundary, 0, lm_scale, am_scale, "none")
        torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-5)


@pytest.mark.skipif(not loss_mod.HAVE_FAST_RNNT, reason="fast_rnnt not importable")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prune_am_lm_equals_fast_rnnt_pruning(dtype):
    """Our index_select pruning gives fast_rnnt.do_rnnt_pruning's tensors and gradients exactly."""
    g = torch.Generator().manual_seed(2)
    n, t, s1, c, r = 3, 11, 6, 8, 4
    ranges = torch.randint(0, s1, (n, t, r), generator=g)
    out_grad = torch.randn(n, t, r, c, generator=g).to(dtype)
    results = []
    for fn in (loss_mod.prune_am_lm, loss_mod.fast_rnnt.do_rnnt_pruning):
        am = torch.randn(n, t, c, generator=torch.Generator().manual_seed(3)).to(dtype).requires_grad_()
        lm = torch.randn(n, s1, c, generator=torch.Generator().manual_seed(4)).to(dtype).requires_grad_()
        am_p, lm_p = fn(am, lm, ranges)
        ((am_p + lm_p) * out_grad).sum().backward()
        results.append((am_p.detach(), lm_p.detach(), am.grad, lm.grad))
    for ours, ref in zip(*results):
        assert ours.shape == ref.shape and ours.dtype == ref.dtype
        assert torch.equal(ours, ref)


def test_pruned_loss_bounds_full_loss():
    model = tiny().eval()
    x, x_lens = batch([120, 100])
    targets = [[3, 4, 5, 6, 7], [8, 9, 10]]
    symbols, target_lens = pad_targets(targets)
    with torch.no_grad():
        enc, enc_lens = model.encoder(x, x_lens)
        dec = model.decoder(torch.cat([torch.zeros(2, 1, dtype=torch.long), symbols], 1))
        boundary = make_boundary(target_lens, enc_lens)
        full = reference_rnnt_loss(model.joiner(enc.unsqueeze(2), dec.unsqueeze(1)), symbols, boundary)
        args = (model.joiner, enc, dec, model.simple_am_proj(enc), model.simple_lm_proj(dec),
                symbols, boundary)
        _, everything = pruned_rnnt_loss(*args, prune_range=6)    # nothing pruned
        _, pruned = pruned_rnnt_loss(*args, prune_range=2)
    torch.testing.assert_close(everything, full, rtol=1e-4, atol=1e-3)
    assert pruned >= full - 1e-3


def test_forward_info_and_edge_cases():
    model = tiny().train()
    x, x_lens = batch([100, 80, 64])
    targets = [[1, 2, 3], [4], []]                      # an empty transcript is skipped
    total, info = model(x, x_lens, targets, simple_loss_scale=0.5, pruned_loss_scale=1.0,
                        ctc_weight=0.3)
    assert set(info) == {"simple", "pruned", "ctc", "frames"}
    assert all(torch.isfinite(v) and not v.requires_grad for v in info.values())
    torch.testing.assert_close(total.detach(), 0.5 * info["simple"] + info["pruned"] + 0.3 * info["ctc"])
    assert info["frames"].item() == subsampled_lengths(x_lens, 4).sum().item()
    total.backward()
    assert model.ctc_output[1].weight.grad is not None
    _, info = model(x, x_lens, targets)                 # ctc_weight 0: not computed
    assert info["ctc"].item() == 0.0
    with pytest.raises(ValueError, match="short"):
        model(*batch([100, 5]), [[1], [2]])


def test_pure_torch_path_without_fast_rnnt(monkeypatch):
    model = tiny().eval()
    x, x_lens = batch([90, 70])
    targets = [[1, 2, 3, 4], [5, 6]]
    with torch.no_grad():
        _, fast = model(x, x_lens, targets, prune_range=5, lm_scale=0.25)
        monkeypatch.setattr(loss_mod, "HAVE_FAST_RNNT", False)
        _, slow = model(x, x_lens, targets, prune_range=5, lm_scale=0.25)
    torch.testing.assert_close(slow["simple"], fast["simple"], rtol=1e-4, atol=1e-3)
    assert slow["pruned"] <= fast["pruned"] + 1e-3     # the fallback uses the full lattice


# ------------------------------------------------------------------------- training
def test_overfits_a_tiny_batch():
    model = tiny().train()
    x, x_lens = batch([160, 140, 120], seed=3)
    targets = [[1, 5, 9, 13, 17, 2], [3, 7, 11, 15], [4, 8, 12]]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        total, info = model(x, x_lens, targets, ctc_weight=0.1)
        opt.zero_grad()
        total.backward()
        opt.step()
        assert torch.isfinite(total)
        losses.append(info["pruned"].item())
    assert losses[-1] < 0.1 * losses[0], losses
    # on a (nearly) learned alignment the pruned loss is close to the full-lattice loss
    model.eval()
    symbols, target_lens = pad_targets(targets)
    with torch.no_grad():
        _, info = model(x, x_lens, targets, prune_range=5)
        enc, enc_lens = model.encoder(x, x_lens)
        dec = model.decoder(torch.cat([torch.zeros(3, 1, dtype=torch.long), symbols], 1))
        full = full_rnnt_loss(model.joiner(enc.unsqueeze(2), dec.unsqueeze(1)), symbols,
                              make_boundary(target_lens, enc_lens))
    assert full - 1e-3 <= info["pruned"] <= 1.05 * full + 0.1, (info["pruned"], full)
