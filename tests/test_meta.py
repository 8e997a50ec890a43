"""Meta-learned initialization (Reptile over language blocks, graft/train/meta.py, --meta-block):
the block sampler, the outer step, and training runs on the tiny corpus with its female voices
relabelled as a second language (tests/tiny_asr.py two_language_cuts).

Usage:
    .venv/bin/python -m pytest tests/test_meta.py -q
"""
from __future__ import annotations

import re

import pytest
import torch

from graft.lang.langdir import load_lang_dir as load_lang
from graft.train.data import load_cuts, make_train_sampler
from graft.train.loop import train
from graft.train.meta import LanguageBlockSampler, Reptile, cut_language
from graft.train.options import load_train_conf
from graft.utils.errors import GraftError
from test_train import tiny_conf, tiny_model  # the tiny run and model of test_train
from tiny_asr import two_language_cuts

pytestmark = pytest.mark.usefixtures("one_thread")


def blocks_of(tiny, tmp_path, block: int, epoch: int):
    cuts = load_cuts(two_language_cuts(tiny, tmp_path))
    s = LanguageBlockSampler(cuts, block, lambda part: make_train_sampler(part, 6.0, 0, 1, 0), seed=0)
    s.set_epoch(epoch)
    batches = list(s)
    return cuts, [[cut_language(c) for c in b] for b in batches], [[c.id for c in b] for b in batches]


def test_blocks_are_one_language_and_an_epoch_is_every_cut_once(tiny, tmp_path):
    cuts, langs, ids = blocks_of(tiny, tmp_path, block=2, epoch=0)
    flat = [i for b in ids for i in b]
    assert sorted(flat) == sorted(c.id for c in cuts)                 # every cut once
    assert all(len(set(b)) == 1 for b in langs)                       # every batch is one language
    per_block = [set(x for b in langs[i: i + 2] for x in b) for i in range(0, len(langs), 2)]
    mixed = sum(len(p) > 1 for p in per_block)
    assert mixed <= 1                                                 # only where a language ran out
    assert {"en", "xx"} == set(x for b in langs for x in b)
    assert blocks_of(tiny, tmp_path, 2, 0)[2] == ids                  # the same epoch draws the same blocks
    assert blocks_of(tiny, tmp_path, 2, 1)[2] != ids


def test_one_language_is_refused_with_the_way_out(tiny):
    cuts = load_cuts(tiny.cuts_train)
    with pytest.raises(GraftError, match=re.escape("--meta-block needs training cuts of two or more languages, "
                                                   "these have en: combine languages first")):
        LanguageBlockSampler(cuts, 2, lambda part: make_train_sampler(part, 6.0, 0, 1, 0))


def test_outer_step_moves_part_of_the_way():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    r = Reptile([p], step_size=0.25)
    with torch.no_grad():
        p.add_(torch.tensor([4.0, -8.0]))                             # a block's change
    r.update()
    assert torch.equal(p.data, torch.tensor([2.0, 0.0]))              # 1 + 0.25 * 4, 2 - 0.25 * 8
    assert torch.equal(r.anchor[0], p.data)
    with pytest.raises(GraftError, match=re.escape("--meta-step must be <= 1 (the share of a block's change kept), got 2.0")):
        load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e", meta_step=2)


def test_training_meta_learns_and_step_one_is_plain_block_training(tiny, tmp_path):
    lang = load_lang(tiny.lang_dir)
    cuts = str(two_language_cuts(tiny, tmp_path))
    states = {}
    for name, step in (("half", 0.5), ("one", 1.0)):
        model, mconf = tiny_model(lang)
        exp = tmp_path / name
        conf = tiny_conf(tiny, exp, cuts_train=cuts, cuts_dev=None, meta_block=3, meta_step=step, num_epochs=2)
        assert train(model, conf, lang, mconf).finished
        states[name] = model.state_dict()
        log = "".join(p.read_text() for p in (exp / "log").glob("train-*.log"))
        assert re.search(rf"meta-learning \(Reptile\): blocks of 3 batches of one language \(en \d+\.\d min, "
                         rf"xx \d+\.\d min\), outer step {step:g}", log), log[:1500]
        ckpt = torch.load(exp / "epoch-2.pt", weights_only=False, map_location="cpu")
        assert all(torch.equal(a, m) for a, m in zip(ckpt["meta"]["anchor"], model.parameters()))  # epoch end = block end
    key = "encoder.embed.out.weight"
    assert not torch.equal(states["half"][key], states["one"][key])
    # step 1 keeps every block's change: the weights of ordinary training on the same blocks, so
    # they moved farther from the initial weights than with step 0.5
    init, _ = tiny_model(lang)
    dist = {n: float((s[key] - init.state_dict()[key]).norm()) for n, s in states.items()}
    assert dist["half"] < dist["one"]
