"""Knowledge distillation (graft/train/distill.py, --distill-from): the loss, the teachers'
ensemble, the checks, and a student trained on the tiny corpus that ends closer to its teacher.

Usage:
    .venv/bin/python -m pytest tests/test_distill.py -q
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch

from graft.lang.langdir import load_lang_dir as load_lang
from graft.train.data import AsrDataset, load_cuts, make_dev_sampler, make_loader
from graft.train.distill import Teacher, distill_loss
from graft.train.loop import train
from graft.train.options import load_train_conf
from graft.utils.errors import GraftError
from test_train import tiny_conf, tiny_model  # the tiny run and model of test_train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_loss_is_the_kl_over_valid_frames_only():
    g = torch.Generator().manual_seed(0)
    t = torch.log_softmax(torch.randn(2, 4, 5, generator=g), -1)
    s = torch.log_softmax(torch.randn(2, 4, 5, generator=g), -1).requires_grad_(True)
    lens = torch.tensor([4, 2])
    assert float(distill_loss(t, t, lens)) == pytest.approx(0.0, abs=1e-7)
    kd = distill_loss(t, s, lens)
    valid = [(0, i) for i in range(4)] + [(1, 0), (1, 1)]
    by_hand = sum(float((t[n, i].exp() * (t[n, i] - s[n, i])).sum().detach()) for n, i in valid) / 6
    assert float(kd.detach()) == pytest.approx(by_hand, rel=1e-5) and float(kd.detach()) > 0
    kd.backward()
    assert float(s.grad[1, 2:].abs().sum()) == 0.0                        # padding takes no part
    with pytest.raises(GraftError, match="teacher and student outputs differ in shape"):
        distill_loss(t, s[:, :, :4], lens)


def test_options_are_checked():
    with pytest.raises(GraftError, match=re.escape("--distill-from needs --ctc-weight > 0")):
        load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", distill_from="exp/x", ctc_weight=0)
    assert load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", distill_from="").distill_from is None


def dev_kl(tiny, lang, teacher: Teacher, student) -> float:
    """Mean per-frame KL(teacher || student) on the tiny dev cuts (eval mode)."""
    student.eval()
    loader = make_loader(AsrDataset(lang), make_dev_sampler(load_cuts(tiny.cuts_dev), 10.0, 1, 0))
    total, n = 0.0, 0
    with torch.no_grad():
        for b in loader:
            t, lens = teacher.log_probs(b["features"], b["feature_lens"])
            enc, enc_lens = student.encoder(b["features"], b["feature_lens"])
            total += float(distill_loss(t, student.ctc_output(enc), enc_lens)) * int(enc_lens.sum())
            n += int(enc_lens.sum())
    return total / n


def test_student_ends_closer_to_its_teachers(tiny, tmp_path):
    """A teacher that favours one token (its CTC bias raised) pulls the distilled student's
    posteriors there; the plain student stays far from it. Two teachers: their mean posteriors."""
    lang = load_lang(tiny.lang_dir)
    model, mconf = tiny_model(lang)
    plain_teacher = tmp_path / "teacher"
    assert train(model, tiny_conf(tiny, plain_teacher, cuts_dev=None, ctc_weight=0.3), lang, mconf).finished
    biased = tmp_path / "biased"
    biased.mkdir()
    ckpt = torch.load(plain_teacher / "epoch-1.pt", weights_only=False)
    ckpt["model"]["ctc_output.1.bias"][5] += 6.0                          # token 5 on most frames
    torch.save(ckpt, biased / "epoch-1.pt")
    teachers = [str(plain_teacher), str(biased)]

    feats = next(iter(make_loader(AsrDataset(lang), make_dev_sampler(load_cuts(tiny.cuts_dev), 10.0, 1, 0))))
    both, _ = Teacher.load(teachers, avg=1, lang=lang).log_probs(feats["features"], feats["feature_lens"])
    a, _ = Teacher.load(teachers[:1], avg=1, lang=lang).log_probs(feats["features"], feats["feature_lens"])
    b, _ = Teacher.load(teachers[1:], avg=1, lang=lang).log_probs(feats["features"], feats["feature_lens"])
    assert torch.allclose(both.exp(), (a.exp() + b.exp()) / 2, atol=1e-6)  # the mean of the posteriors

    teacher = Teacher.load(teachers[1:], avg=1, lang=lang)
    kls = {}
    for name, kw in (("plain", {}), ("distilled", {"distill_from": str(biased), "distill_weight": 2.0,
                                                    "distill_avg": 1})):
        model, mconf = tiny_model(lang)
        exp = tmp_path / name
        assert train(model, tiny_conf(tiny, exp, cuts_dev=None, num_epochs=2, ctc_weight=0.3, **kw),
                     lang, mconf).finished
        kls[name] = dev_kl(tiny, lang, teacher, model)
        log = "".join(p.read_text() for p in (exp / "log").glob("train-*.log"))
        if kw:
            assert f"knowledge distillation: the CTC head learns the mean posteriors of {biased} (epoch 1, " \
                   f"avg 1), weight 2" in log
            assert re.search(r"distill \d+\.\d{4}\] lr", log)
    assert kls["distilled"] < 0.5 * kls["plain"], kls


def test_a_teacher_must_exist_and_share_the_lang_dir(tiny, tmp_path):
    lang = load_lang(tiny.lang_dir)
    with pytest.raises(GraftError, match=re.escape(f"--distill-from {tmp_path}/none: no epoch-N.pt there: "
                                                   "train the teacher first")):
        Teacher.load([str(tmp_path / "none")], avg=1, lang=lang)
    model, mconf = tiny_model(lang)
    exp = tmp_path / "t"
    assert train(model, tiny_conf(tiny, exp, cuts_dev=None, ctc_weight=0.3), lang, mconf).finished
    other = SimpleNamespace(path=lang.path, vocab_size=lang.vocab_size + 1,   # a lang dir of another size
                            check_fingerprint=lang.check_fingerprint)
    with pytest.raises(GraftError, match=r"the teacher has \d+ outputs, .* has \d+ tokens: a teacher needs the "
                                         r"student's lang dir"):
        Teacher.load([str(exp)], avg=1, lang=other)
