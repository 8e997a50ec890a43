"""Unit tests of the layer-transfer rules, plan, vocabulary rows, freezing, LR groups, L2-SP
and source mixing, on tiny models and made-up token tables (no audio).

Usage:
    .venv/bin/python -m pytest -q tests/test_transfer.py
"""
from __future__ import annotations

import math

import pytest
import torch

from graft.model.build import build_model, load_model_conf
from graft.train.optim import build_optimizer
from graft.train.schedule import WarmupEdenLR
from graft.transfer.freeze import StepFreezer
from graft.transfer.plan import (COPY, REINIT, ROWS, apply_plan, format_plan, freeze_whole_run,
                                 lr_param_groups, make_plan)
from graft.transfer.regularize import L2SP
from graft.transfer.rules import load_rules, make_rules, presets, select
from graft.transfer.vocab import match_tables
from graft.utils.errors import GraftError

SRC_PIECES = ["<blk>", "<sos/eos>", "<unk>", "▁the", "▁a", "s", "t", "e", "▁cat", "o", "n", "▁is"]
TGT_PIECES = ["<blk>", "<sos/eos>", "<unk>", "▁je", "a", "e", "o", "n", "▁a", "t", "š", "č", "ř", "▁to"]
SHARED = ["<blk>", "<sos/eos>", "<unk>", "e", "o", "n", "▁a", "t"]        # "a" is only in the target


def conf(**over) -> dict:
    return {**load_model_conf("tiny"), "dropout": 0.0, "ctc_dropout": 0.0, **over}


def tiny(vocab: int, seed: int = 0, **over):
    torch.manual_seed(seed)
    return build_model(conf(**over), vocab_size=vocab)


def tables() -> tuple[dict[str, int], dict[str, int]]:
    return ({p: i for i, p in enumerate(SRC_PIECES)}, {p: i for i, p in enumerate(TGT_PIECES)})


@pytest.fixture()
def pair():
    """A source model (source vocab), a target model (target vocab, other init) and the match."""
    src_tab, tgt_tab = tables()
    source = tiny(len(SRC_PIECES), seed=1, num_layers=3)
    target = tiny(len(TGT_PIECES), seed=2, num_layers=3)
    return source, target, match_tables(src_tab, tgt_tab)


def names_of(model) -> list[str]:
    return [n for n, _ in model.named_parameters()]


# ---------------------------------------------------------------- patterns and rules
def test_patterns_select_the_right_params(pair):
    _, target, _ = pair
    names = names_of(target)
    low = select(["encoder.layers.[0-1].*"], names)
    assert low and all(n.startswith(("encoder.layers.0.", "encoder.layers.1.")) for n in low)
    assert len(low) == 2 * len([n for n in names if n.startswith("encoder.layers.2.")])
    assert select(["encoder.embed"], names) == select(["encoder.embed.*"], names) != []
    assert all(n.startswith("encoder.embed.") for n in select(["encoder.embed"], names))
    rx = select([r"re:encoder\.layers\.(1|2)\..*"], names)
    assert rx == [n for n in names if n.startswith(("encoder.layers.1.", "encoder.layers.2."))]
    assert select(["joiner.output_linear.*"], names) == ["joiner.output_linear.weight",
                                                         "joiner.output_linear.bias"]
    with pytest.raises(GraftError, match=r"'encoder\.layers\.9\.\*' matches no parameter"):
        select(["encoder.layers.9.*"], names, "copy pattern")


def test_rules_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("copy: [encoder.*]\nl2sp: 0.01\nlr_scales:\n  - {pattern: encoder.embed.*, scale: 0.1}\n")
    rules = load_rules(path, freeze=["encoder.embed"], l2sp=None, lr_scales=["decoder.*=2"])
    assert rules.copy == ["encoder.*"] and rules.l2sp == 0.01 and rules.freeze == ["encoder.embed"]
    assert [(e.pattern, e.scale) for e in rules.lr_scales] == [("decoder.*", 2.0)]
    with pytest.raises(GraftError, match="unknown transfer keys"):
        make_rules({"cpy": ["x"]})
    with pytest.raises(GraftError, match="bad regular expression"):
        make_rules({"copy": ["re:encoder.(("]})
    with pytest.raises(GraftError, match="unknown transfer preset"):
        load_rules("no_such_preset")


def test_every_preset_plans_on_the_tiny_model(pair):
    source, target, match = pair
    assert {"encoder", "encoder_decoder", "encoder_decoder_noshared", "encoder_frozen",
            "encoder_l2sp", "encoder_shared"} <= set(presets())
    for name in presets():
        plan = make_plan(target, source.state_dict(), load_rules(name), match)
        assert plan.names(COPY), name
        assert "copied:" in format_plan(plan)


# ---------------------------------------------------------------- the plan's checks
def test_shape_mismatch_names_each_param():
    src_tab, tgt_tab = tables()
    source = tiny(len(SRC_PIECES), encoder_dim=64)
    target = tiny(len(TGT_PIECES), encoder_dim=32, ff_dim=128)
    rules = make_rules({"copy": ["encoder.*"]})
    with pytest.raises(GraftError) as e:
        make_plan(target, source.state_dict(), rules, match_tables(src_tab, tgt_tab))
    msg = str(e.value)
    tgt, src = dict(target.named_parameters()), source.state_dict()
    bad = [n for n in tgt if n.startswith("encoder.") and tgt[n].shape != src[n].shape]
    assert len(bad) > 10
    for n in bad:
        assert f"{n}: source ({', '.join(map(str, src[n].shape))}) vs target" in msg
    assert f"{len(bad)} parameter(s) differ" in msg
    assert "\n" not in msg                                   # one ERROR line


def test_missing_in_source_is_named(pair):
    _, target, match = pair
    source = tiny(len(SRC_PIECES), num_layers=2)
    with pytest.raises(GraftError, match=r"encoder\.layers\.2\.conv\.depthwise\.weight is not in the source"):
        make_plan(target, source.state_dict(), make_rules({"copy": ["encoder.*"]}), match)


def test_bad_rules_fail_before_training(pair):
    source, target, match = pair
    sd = source.state_dict()
    with pytest.raises(GraftError, match="no copy patterns"):
        make_plan(target, sd, make_rules({}), match)
    with pytest.raises(GraftError, match="freeze every parameter"):
        make_plan(target, sd, make_rules({"copy": ["*"], "freeze": ["*"], "freeze_steps": 10}), match)
    with pytest.raises(GraftError, match="keep their random initialization: decoder.conv.weight"):
        make_plan(target, sd, make_rules({"copy": ["encoder.*"], "freeze": ["decoder.conv"]}), match)
    with pytest.raises(GraftError, match="exclude every parameter"):
        make_plan(target, sd, make_rules({"copy": ["encoder.embed"], "reinit": ["encoder.*"]}), match)
    with pytest.raises(GraftError, match="copy_shared_pieces is set but the copy patterns select no"):
        make_plan(target, sd, make_rules({"copy": ["encoder.*"], "copy_shared_pieces": True}), match)
    with pytest.raises(GraftError, match="freeze pattern 'decoder.nothing' matches no parameter"):
        make_plan(target, sd, make_rules({"copy": ["encoder.*"], "freeze": ["decoder.nothing"]}), match)


# ---------------------------------------------------------------- copying and vocabulary rows
def test_copy_and_reinit_values(pair):
    source, target, match = pair
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    rules = make_rules({"copy": ["encoder.*", "decoder.*"], "reinit": ["encoder.layers.2.*"]})
    plan = make_plan(target, source.state_dict(), rules, match)
    apply_plan(target, source.state_dict(), plan)
    src = source.state_dict()
    for name, p in target.named_parameters():
        if name.startswith("encoder.") and not name.startswith("encoder.layers.2."):
            assert plan[name].action == COPY and torch.equal(p, src[name]), name
        elif name == "decoder.conv.weight":
            assert plan[name].action == COPY and torch.equal(p, src[name])
        else:                                                  # incl. decoder.embedding: vocab changed
            assert plan[name].action == REINIT and torch.equal(p, fresh[name]), name


def test_shared_rows_copied_exactly_others_reinitialized(pair):
    source, target, match = pair
    assert match.num_shared == len(SHARED) and sorted(match.shared_pieces) == sorted(SHARED)
    assert match.num_shared_specials == 3 and not match.identical
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    rules = make_rules({"copy": ["*"], "copy_shared_pieces": True})
    plan = make_plan(target, source.state_dict(), rules, match)
    apply_plan(target, source.state_dict(), plan)
    src_tab, tgt_tab = tables()
    vocab_params = ["decoder.embedding.weight", "joiner.output_linear.weight", "joiner.output_linear.bias",
                    "ctc_output.1.weight", "ctc_output.1.bias", "simple_am_proj.weight",
                    "simple_lm_proj.bias"]
    got = dict(target.named_parameters())
    src = source.state_dict()
    for name in vocab_params:
        assert plan[name].action == ROWS and plan[name].rows == len(SHARED)
        for piece, t in tgt_tab.items():
            if piece in src_tab:
                assert torch.equal(got[name][t], src[name][src_tab[piece]]), (name, piece)
            else:
                assert torch.equal(got[name][t], fresh[name][t]), (name, piece)
    assert f"{len(SHARED)} of {len(TGT_PIECES)} target pieces are shared" in format_plan(plan)

    # without the option: the vocabulary-sized tensors stay fresh
    target2 = tiny(len(TGT_PIECES), seed=2, num_layers=3)
    plan2 = make_plan(target2, src, make_rules({"copy": ["*"]}), match)
    apply_plan(target2, src, plan2)
    for name in vocab_params:
        assert plan2[name].action == REINIT and torch.equal(dict(target2.named_parameters())[name], fresh[name])


def test_identical_vocabulary_copies_whole():
    tab = {p: i for i, p in enumerate(SRC_PIECES)}
    source, target = tiny(len(tab), seed=1), tiny(len(tab), seed=2)
    match = match_tables(tab, tab)
    assert match.identical
    plan = make_plan(target, source.state_dict(), make_rules({"copy": ["*"]}), match)
    apply_plan(target, source.state_dict(), plan)
    assert plan.names(COPY) == names_of(target)
    for k, v in target.state_dict().items():
        assert torch.equal(v, source.state_dict()[k])


# ---------------------------------------------------------------- freezing
def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, 60, 80, generator=g)
    return feats, torch.tensor([60, 50]), [[3, 4, 5], [6, 7]]


def _steps(model, opt, n: int, freezer: StepFreezer | None = None) -> None:
    model.train()
    for i in range(n):
        f, fl, y = _batch(i)
        loss, _ = model(f, fl, y, ctc_weight=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def test_frozen_parameters_unchanged_after_optimizer_steps(pair):
    source, target, match = pair
    rules = make_rules({"copy": ["encoder.*"], "freeze": ["encoder.embed", "encoder.layers.0.*"]})
    plan = make_plan(target, source.state_dict(), rules, match)
    apply_plan(target, source.state_dict(), plan)
    frozen = freeze_whole_run(target, plan)
    assert frozen and all(n.startswith(("encoder.embed.", "encoder.layers.0.")) for n in frozen)
    before = {k: v.detach().clone() for k, v in target.named_parameters()}
    opt = build_optimizer(target, 1e-3, 1e-2, lr_param_groups(target, plan))
    _steps(target, opt, 3)
    for name, p in target.named_parameters():
        if name in frozen:
            assert torch.equal(p, before[name]) and torch.equal(p, source.state_dict()[name]), name
    assert not torch.equal(dict(target.named_parameters())["encoder.layers.1.ff.net.0.weight"],
                           before["encoder.layers.1.ff.net.0.weight"])


def test_frozen_for_first_steps_then_trained(pair):
    source, target, match = pair
    rules = make_rules({"copy": ["encoder.*"], "freeze": ["encoder.layers.0.*"], "freeze_steps": 2})
    plan = make_plan(target, source.state_dict(), rules, match)
    assert freeze_whole_run(target, plan) == []              # stays trainable
    params = dict(target.named_parameters())
    freezer = StepFreezer([params[n] for n in plan.names(frozen=True)], 2)
    opt = build_optimizer(target, 1e-3, 1e-2)                # weight decay must not move them either
    freezer.attach(opt)
    name = "encoder.layers.0.self_attn.in_proj.weight"
    before = params[name].detach().clone()
    _steps(target, opt, 2)
    assert freezer.optimizer_steps(opt) == 2
    assert torch.equal(params[name], before)
    assert not opt.state.get(params[name])                   # no moments built while frozen
    # "resume": a new optimizer loads the state; the count goes on from 2 (frozen up to 3 steps)
    opt2 = build_optimizer(target, 1e-3, 1e-2)
    opt2.load_state_dict(opt.state_dict())
    StepFreezer(freezer.params, 3).attach(opt2)
    _steps(target, opt2, 1)
    assert torch.equal(params[name], before)
    _steps(target, opt2, 1)
    assert not torch.equal(params[name], before)


# ---------------------------------------------------------------- learning rates
def test_lr_multipliers_reach_the_optimizer(pair):
    source, target, match = pair
    rules = make_rules({"copy": ["encoder.*"], "transferred_lr_scale": 0.5, "layer_decay": 0.5,
                        "lr_scales": [{"pattern": "joiner.*", "scale": 2.0}]})
    plan = make_plan(target, source.state_dict(), rules, match)
    base = 1e-3
    opt = build_optimizer(target, base, 1e-2, lr_param_groups(target, plan))
    WarmupEdenLR(opt, warm_steps=0, lr_steps=5000, lr_epochs=6)        # keeps the ratios
    lr_of = {id(p): (g["initial_lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    expect = {"encoder.layers.2.conv.pointwise_in.weight": 0.5 * 1,
              "encoder.layers.1.conv.pointwise_in.weight": 0.5 * 0.5,
              "encoder.layers.0.norm_ff.bias": 0.5 * 0.25,
              "encoder.embed.out.weight": 0.5 * 0.125,
              "joiner.output_linear.weight": 2.0,
              "decoder.embedding.weight": 1.0}
    params = dict(target.named_parameters())
    for name, scale in expect.items():
        lr, wd = lr_of[id(params[name])]
        assert math.isclose(lr, base * scale), (name, lr)
        assert wd == (0.0 if params[name].ndim < 2 else 1e-2), name
    assert math.isclose(plan["encoder.embed.out.weight"].lr_scale, 0.0625)


# ---------------------------------------------------------------- L2-SP
def test_l2sp_gradient_points_to_the_source(pair):
    source, target, match = pair
    coef = 1e-2
    rules = make_rules({"copy": ["encoder.*", "ctc_output.*"], "copy_shared_pieces": True, "l2sp": coef})
    src = source.state_dict()
    plan = make_plan(target, src, rules, match)
    apply_plan(target, src, plan)
    l2sp = L2SP.from_plan(plan, src, coef)
    assert float(l2sp(target).detach()) == 0.0              # at the source point
    with torch.no_grad():
        for p in target.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    penalty = l2sp(target)
    penalty.backward()
    params = dict(target.named_parameters())
    name = "encoder.layers.1.self_attn.in_proj.weight"
    w = params[name]
    assert torch.allclose(w.grad, 2 * coef * (w.detach() - src[name]), atol=1e-7)
    assert float((w.grad * (w.detach() - src[name])).sum()) > 0      # descent moves toward the source
    # the shared rows of the CTC head are pulled to their source rows; the other rows are free
    ctc = params["ctc_output.1.weight"]
    t, s = match.target_ids, match.source_ids
    assert torch.allclose(ctc.grad[t], 2 * coef * (ctc.detach()[t] - src["ctc_output.1.weight"][s]), atol=1e-7)
    others = [i for i in range(len(TGT_PIECES)) if i not in set(t.tolist())]
    assert torch.count_nonzero(ctc.grad[others]) == 0
    assert params["joiner.output_linear.weight"].grad is None           # re-initialized: no pull
    expected = sum(((params[n].detach() - src[n]) ** 2).sum() for n in plan.names(COPY))
    expected += ((ctc.detach()[t] - src["ctc_output.1.weight"][s]) ** 2).sum()
    expected += ((params["ctc_output.1.bias"].detach()[t] - src["ctc_output.1.bias"][s]) ** 2).sum()
    assert math.isclose(float(penalty), coef * float(expected), rel_tol=1e-4)


# ---------------------------------------------------------------- source mixing
def _cuts(prefix: str, texts: list[str]):
    from lhotse import CutSet, MonoCut, SupervisionSegment

    return CutSet.from_cuts(
        MonoCut(id=f"{prefix}{i}", start=0.0, duration=1.0, channel=0,
                supervisions=[SupervisionSegment(id=f"{prefix}{i}", recording_id=f"{prefix}{i}", start=0.0,
                                                 duration=1.0, text=t)])
        for i, t in enumerate(texts))


def test_mix_source_cuts(tmp_path):
    from lhotse import CutSet

    from graft.lang.bpe import train_bpe
    from graft.transfer.mix import mix_cuts

    lang = tmp_path / "lang"
    lang.mkdir()
    train_bpe(["ahoj jak se máte", "to je dobré", "kočka sedí na okně"] * 5, lang / "bpe.model", vocab_size=30)
    _cuts("cs", ["to je dobré"] * 200).to_file(tmp_path / "cs.jsonl.gz")
    _cuts("en", ["a cat is on the mat"] * 500).to_file(tmp_path / "en.jsonl.gz")
    out = tmp_path / "exp" / "mix.jsonl.gz"
    rep = mix_cuts(tmp_path / "cs.jsonl.gz", tmp_path / "en.jsonl.gz", 0.25, out, lang, seed=3,
                   max_unk_ratio=0.5)
    mixed = CutSet.from_file(out).to_eager()
    ids = [c.id for c in mixed]
    assert sum(i.startswith("cs") for i in ids) == 200 == rep.num_target
    assert rep.num_source == sum(i.startswith("en") for i in ids)
    assert 0.15 < rep.num_source / len(ids) < 0.35
    assert 0 < rep.unk_ratio < 0.5                                    # "c", "i", "m" are unknown
    with pytest.raises(GraftError, match="are <unk> under the target BPE"):
        mix_cuts(tmp_path / "cs.jsonl.gz", tmp_path / "en.jsonl.gz", 0.25, out, lang, max_unk_ratio=0.01)
