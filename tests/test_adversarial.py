"""Domain-adversarial training (graft/train/adversarial.py, --adversarial): the reversal layer,
its ramp, the domain labels, the classifier's masking, and training runs on the tiny synthesized
corpus (tests/tiny_asr.py, five espeak-ng voices as speakers).

Usage:
    .venv/bin/python -m pytest tests/test_adversarial.py -q
"""
from __future__ import annotations

import json
import re

import pytest
import torch

from graft.lang.langdir import load_lang_dir as load_lang
from graft.train.adversarial import (DomainAdversary, DomainLabels, grad_reverse, parse_adversarial,
                                     reversal_scale)
from graft.train.data import load_cuts
from graft.train.loop import train
from graft.train.options import load_train_conf
from graft.utils.errors import GraftError
from test_train import tiny_conf, tiny_model  # the tiny run and model of test_train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gradient_reversal_is_identity_forward_and_negated_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(4.0).expand(3, 4))


def test_reversal_ramps_from_zero_to_its_weight():
    scales = [reversal_scale(s, 100, 0.5) for s in range(0, 201, 10)]
    assert scales[0] == 0.0
    assert all(b > a for a, b in zip(scales[:10], scales[1:11]))          # rises over the ramp
    assert scales[10] == scales[-1] == pytest.approx(0.5 * (2 / (1 + torch.e ** -10) - 1))
    assert reversal_scale(0, 0, 0.5) == 0.5                                # no ramp: the weight at once


def test_spec_is_parsed_or_refused_with_the_reason():
    assert parse_adversarial(None) is None and parse_adversarial("") is None and parse_adversarial("none") is None
    assert parse_adversarial("speaker") == ("speaker", None)
    assert parse_adversarial("speaker:^[a-z]+-([a-z]+)-") == ("speaker", "^[a-z]+-([a-z]+)-")
    with pytest.raises(GraftError, match=re.escape("--adversarial 'gender': the domain must be one of speaker, language")):
        parse_adversarial("gender")
    with pytest.raises(GraftError, match=re.escape("the regular expression needs a group")):
        parse_adversarial("speaker:^en")
    with pytest.raises(GraftError, match=re.escape("--adversarial-weight must be >= 0, got -1.0")):
        load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", adversarial="speaker", adversarial_weight=-1)
    assert load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e").adversarial is None   # off by default


def test_domain_labels_of_the_tiny_corpus(tiny):
    cuts = load_cuts(tiny.cuts_train)
    speakers = DomainLabels.from_cuts(cuts, "speaker")
    assert speakers.names == sorted({c.supervisions[0].speaker for c in cuts})
    assert len(speakers.names) == 5 and sum(speakers.counts().values()) == len(cuts)
    first = next(iter(cuts))
    assert speakers.names[int(speakers.labels([first.id])[0])] == first.supervisions[0].speaker
    assert torch.equal(speakers.labels([first.id + "_dup0"]), speakers.labels([first.id]))  # DDP's repeats
    # a regex group merges speakers: "en+m1" -> "m", "en+f2" -> "f"
    sex = DomainLabels.from_cuts(cuts, r"speaker:\+([mf])")
    assert sex.names == ["f", "m"]
    with pytest.raises(GraftError, match=re.escape("--adversarial language: the training cuts have 1 domain(s) (en); "
                                                   "adversarial training needs at least two")):
        DomainLabels.from_cuts(cuts, "language")
    with pytest.raises(GraftError, match=r"training cut \S+ has a speaker that '\^x\(y\)' does not match"):
        DomainLabels.from_cuts(cuts, "speaker:^x(y)")


def test_classifier_ignores_padding_and_reverses_into_the_encoder():
    torch.manual_seed(0)
    adv = DomainAdversary(encoder_dim=8, num_domains=3, hidden_dim=16)
    x = torch.randn(2, 5, 8)
    lens, labels = torch.tensor([5, 3]), torch.tensor([2, 0])
    loss, right = adv(x, lens, labels, reversal=1.0)
    garbage = x.clone()
    garbage[1, 3:] = 1e3                                                   # padded frames of utterance 2
    loss2, right2 = adv(garbage, lens, labels, reversal=1.0)
    assert torch.equal(loss, loss2) and int(right) == int(right2) and 0 <= int(right) <= 8
    # the encoder's gradient is the classifier's own gradient times -reversal
    a = x.clone().requires_grad_(True)
    adv(a, lens, labels, reversal=0.25)[0].backward()
    b = x.clone().requires_grad_(True)
    frames = b[torch.arange(5).unsqueeze(0) < lens.unsqueeze(1)]
    torch.nn.functional.cross_entropy(adv.net(frames), torch.tensor([2] * 5 + [0] * 3)).backward()
    assert torch.allclose(a.grad, -0.25 * b.grad, atol=1e-7)
    assert float(a.grad[1, 3:].abs().sum()) == 0.0


def test_utterance_pooling_classifies_each_cut_from_its_frames_mean_and_std():
    torch.manual_seed(0)
    adv = DomainAdversary(encoder_dim=8, num_domains=3, hidden_dim=16, pool="utterance")
    assert adv.net[0].in_features == 16                                    # mean and std of each dimension
    x = torch.randn(2, 5, 8)
    lens, labels = torch.tensor([5, 3]), torch.tensor([2, 0])
    loss, right = adv(x, lens, labels, reversal=1.0)
    garbage = x.clone()
    garbage[1, 3:] = 1e3                                                   # padding does not enter the statistics
    loss2, right2 = adv(garbage, lens, labels, reversal=1.0)
    assert torch.allclose(loss, loss2) and int(right) == int(right2) and 0 <= int(right) <= 2  # cuts, not frames
    # the loss is the cross-entropy of each cut's pooled statistics, and the encoder gets it reversed
    a = x.clone().requires_grad_(True)
    adv(a, lens, labels, reversal=0.5)[0].backward()
    b = x.clone().requires_grad_(True)
    stats = torch.stack([torch.cat([u.mean(0), (u.var(0, unbiased=False) + 1e-5).sqrt()])
                         for u in (b[0, :5], b[1, :3])])
    torch.nn.functional.cross_entropy(adv.net(stats), labels).backward()
    assert torch.allclose(a.grad, -0.5 * b.grad, atol=1e-6)
    assert float(a.grad[1, 3:].abs().sum()) == 0.0
    with pytest.raises(GraftError, match="adversary pool must be one of frame, utterance, got 'cut'"):
        DomainAdversary(8, 3, pool="cut")


def test_training_with_the_utterance_adversary(tiny, tmp_path):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    conf = tiny_conf(tiny, exp, cuts_dev=None, adversarial="speaker", adversarial_pool="utterance")
    assert train(model, conf, lang, mconf).finished
    log = "".join(p.read_text() for p in (exp / "log").glob("train-*.log"))
    assert "domain-adversarial training (speaker, per utterance): 5 domains" in log
    accs = [float(a) for a in re.findall(r"adversary \d+\.\d+ acc (\d\.\d+) reversal", log)]
    assert accs and all(0 <= a <= 1 for a in accs)                         # right cuts over cuts
    ckpt = torch.load(exp / "epoch-1.pt", weights_only=False, map_location="cpu")
    assert ckpt["adversary"]["pool"] == "utterance"
    assert ckpt["adversary"]["state"]["net.0.weight"].shape == (256, 2 * model.encoder.output_dim)
    # resuming with the frame classifier is refused, naming the option
    model, mconf = tiny_model(lang)
    with pytest.raises(GraftError, match=re.escape("adversarial_pool: 'utterance' -> 'frame'")):
        train(model, tiny_conf(tiny, exp, cuts_dev=None, num_epochs=2, adversarial="speaker"), lang, mconf)
    with pytest.raises(GraftError, match="--adversarial-pool must be one of frame, utterance, got 'cut'"):
        tiny_conf(tiny, exp, adversarial="speaker", adversarial_pool="cut")


def test_training_says_so_and_checkpoints_the_adversary(tiny, tmp_path):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    conf = tiny_conf(tiny, exp, num_epochs=2, adversarial="speaker", adversarial_ramp_steps=4)
    assert train(model, conf, lang, mconf).finished
    log = "".join(p.read_text() for p in (exp / "log").glob("train-*.log"))
    assert re.search(r"domain-adversarial training \(speaker, per frame\): 5 domains \(en\+f2 \d+, en\+f4 \d+, en\+m1 \d+, "
                     r"en\+m3 \d+, en\+m5 \d+ cuts\), reversal scale 0 -> 0.2 over 4 batches", log), log[:2000]
    lines = re.findall(r"adversary (\d+\.\d+) acc (\d\.\d+) reversal (\d\.\d+)\]", log)
    assert lines and all(0 <= float(acc) <= 1 for _, acc, _ in lines)
    assert float(lines[-1][2]) == pytest.approx(reversal_scale(10**6, 4, 0.2), abs=1e-3)
    ckpt = torch.load(exp / "epoch-2.pt", weights_only=False, map_location="cpu")
    assert ckpt["adversary"]["names"] == ["en+f2", "en+f4", "en+m1", "en+m3", "en+m5"]
    assert ckpt["adversary"]["state"]["net.2.weight"].shape == (5, 256)
    assert set(ckpt["model"]) == set(model.state_dict())                  # the model itself is unchanged
    params = json.loads((exp / "params.json").read_text())
    assert params["adversarial"]["spec"] == "speaker" and sum(params["adversarial"]["domains"].values()) > 0


def test_zero_reversal_leaves_the_model_exactly_as_without_it(tiny, tmp_path):
    """The classifier reaches the model only through the reversal: at weight 0 (and no clipping,
    whose global norm would count the classifier's gradients) the model trains bit-identically."""
    lang = load_lang(tiny.lang_dir)
    states = []
    for name, kw in (("plain", {}), ("adv0", {"adversarial": "speaker", "adversarial_weight": 0.0})):
        model, mconf = tiny_model(lang)
        conf = tiny_conf(tiny, tmp_path / name, cuts_dev=None, clip_grad_norm=1e9, **kw)
        assert train(model, conf, lang, mconf).finished
        states.append(model.state_dict())
    for k, v in states[0].items():
        assert torch.equal(v, states[1][k]), k
    model, mconf = tiny_model(lang)
    conf = tiny_conf(tiny, tmp_path / "adv", cuts_dev=None, clip_grad_norm=1e9, adversarial="speaker",
                     adversarial_weight=1.0, adversarial_ramp_steps=0)
    assert train(model, conf, lang, mconf).finished
    assert not torch.equal(model.state_dict()["encoder.embed.out.weight"], states[0]["encoder.embed.out.weight"])


def test_with_the_transfer_s_parameter_groups_and_resume_refusals(tiny, tmp_path):
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "exp"
    groups = [{"params": list(model.encoder.parameters()), "lr_scale": 0.5}]
    conf = tiny_conf(tiny, exp, cuts_dev=None, adversarial="speaker")
    assert train(model, conf, lang, mconf, param_groups=groups).finished
    ckpt = torch.load(exp / "epoch-1.pt", weights_only=False, map_location="cpu")
    lrs = sorted(g["initial_lr"] for g in ckpt["optimizer"]["param_groups"])
    assert lrs[0] == pytest.approx(0.5 * conf.base_lr) and len(lrs) == 4   # encoder, adversary, 2 defaults
    model, mconf = tiny_model(lang)
    with pytest.raises(GraftError, match=re.escape("adversarial: 'speaker' -> None")):
        train(model, tiny_conf(tiny, exp, cuts_dev=None, num_epochs=2), lang, mconf)


def test_probe_reads_a_separable_domain_and_not_a_hidden_one():
    """bench/probe_domains.py's halves and linear probe on made-up frames."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        from probe_domains import fit_probe, split_halves
    finally:
        sys.path.pop(0)
    labels = {f"u{i:02d}": i % 3 for i in range(12)}
    train, test = split_halves(sorted(labels), labels)
    assert len(train) == len(test) == 6 and not train & test
    assert sorted(labels[i] for i in train) == [0, 0, 1, 1, 2, 2]
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(200)
    shown = torch.randn(600, 8, generator=g) + 3 * torch.nn.functional.one_hot(y, 8).float()
    hidden = torch.randn(600, 8, generator=g)
    for x, low, high in ((shown, 0.95, 1.0), (hidden, 0.0, 0.6)):
        probe = fit_probe(x[0::2], y[0::2], 3)
        acc = float((probe(x[1::2]).argmax(-1) == y[1::2]).float().mean())
        assert low <= acc <= high, acc
