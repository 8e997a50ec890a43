"""Tests of the word list in the LM (graft.lang.word_list, prepare_lm's word_list_weight): the
mixed model is a normalized back-off model, its listed n-grams are the mixture exactly, a listed
word gets the unigram's share, and stage 3 builds G/HLG from it with the list's words.

Usage:
    .venv/bin/python -m pytest tests/test_word_list_lm.py -q
"""
from __future__ import annotations

import json
import math
import random

import pytest

from graft.lang.ngram import BOS, EOS, ArpaLM, evaluate_text, train_arpa
from graft.lang.prepare import prepare_bpe, prepare_lm
from graft.lang.word_list import mix_unigram, split_word_list, unigram_probs, write_arpa
from graft.utils.errors import GraftError

WORDS = "the cat sat on a mat dog ran to park big small red house tree bird sang song".split()
LISTED = ["zebra", "quokka", "walrus", "cats", "parks"]          # word-list entries


def _text(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))) for _ in range(n)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("wl")
    sentences = _text(60, 0)
    (d / "s.txt").write_text("\n".join(sentences) + "\n")
    train_arpa(d / "s.txt", d / "s.arpa", 3)
    lm = ArpaLM.read(d / "s.arpa")
    uni = unigram_probs(sentences, LISTED)
    return lm, uni, mix_unigram(lm, uni, 0.2), d


def _prob(lm: ArpaLM, w: str, hist: tuple[str, ...]) -> float:
    return 10.0 ** lm.logprob(w, hist)


def test_split_word_list_and_unigram():
    sents, words = split_word_list(["a b c", "zebra", "  ", "d e", "quokka "])
    assert sents == ["a b c", "d e"] and words == ["zebra", "quokka"]
    uni = unigram_probs(["a b", "b c"], ["zebra", "zebra", "b"])
    # counts: a 1, b 2 + 1 (listed), c 1, zebra 1 (listed twice = once), </s> 2: total 8
    assert uni == pytest.approx({"a": 1 / 8, "b": 3 / 8, "c": 1 / 8, "zebra": 1 / 8, EOS: 2 / 8})


def test_mixed_model_is_normalized_for_every_history(models):
    lm, uni, mixed, _ = models
    vocab = sorted(mixed.vocab | {EOS})
    assert set(LISTED) <= mixed.vocab and not set(LISTED) & lm.vocab
    hists = [(), (BOS,), ("the",), ("zebra",), (BOS, "the"), ("the", "cat"), ("cat", "zebra"), ("sat", "on")]
    for h in hists:
        assert sum(_prob(mixed, w, h) for w in vocab) == pytest.approx(1.0, abs=1e-6), h


def test_listed_ngrams_are_the_mixture_and_listed_words_get_the_unigram_share(models):
    lm, uni, mixed, _ = models
    for ngram in [g for g in lm.probs if len(g) > 1][:200]:
        want = 0.8 * 10.0 ** lm.probs[ngram] + 0.2 * uni[ngram[-1]]
        assert 10.0 ** mixed.probs[ngram] == pytest.approx(want, rel=1e-9)
    for w in LISTED:
        assert 10.0 ** mixed.probs[(w,)] == pytest.approx(0.2 * uni[w], rel=1e-9)
    # a sentence of the text keeps most of its probability; one with a listed word gets one
    s = ["the", "cat", "sat"]
    assert mixed.score(s)[0] > lm.score(s)[0] + 3 * math.log10(0.8) - 1e-9
    assert mixed.score(["the", "zebra", "sat"])[2] == 0 and lm.score(["the", "zebra", "sat"])[2] == 1
    with pytest.raises(GraftError, match=r"weight must be in \[0, 1\]"):
        mix_unigram(lm, uni, 1.5)


def test_write_arpa_round_trip(models):
    _, _, mixed, d = models
    counts = write_arpa(mixed, d / "mixed.arpa")
    back = ArpaLM.read(d / "mixed.arpa")
    assert counts == {str(n): sum(len(g) == n for g in mixed.probs) for n in (1, 2, 3)}
    assert back.probs.keys() == mixed.probs.keys()
    assert all(back.probs[g] == pytest.approx(mixed.probs[g], abs=1e-6) for g in mixed.probs)
    assert all(back.bows.get(g, 0.0) == pytest.approx(b, abs=1e-6) for g, b in mixed.bows.items())


def _grammar(n: int, seed: int) -> list[str]:
    """Sentences with structure an n-gram learns: 'the <adj> <noun> <verb> on the <noun>'."""
    rng = random.Random(seed)
    adj, noun, verb = ["big", "small", "red"], ["cat", "dog", "bird", "tree", "house"], ["sat", "ran", "sang"]
    return [f"the {rng.choice(adj)} {rng.choice(noun)} {rng.choice(verb)} on the {rng.choice(noun)}" for _ in range(n)]


def test_prepare_lm_mixes_the_word_list_and_lowers_perplexity(tmp_path):
    train = _grammar(60, 1)
    listed = LISTED + [f"form{i}" for i in range(300)]           # a word list 10x the sentences
    lm_lines = _grammar(30, 2) + listed
    dev = _grammar(10, 3) + ["the big zebra sat on the quokka"]
    built = {}
    for name, weight in (("pooled", 0.0), ("mixed", 0.1)):
        out = tmp_path / name / "en_bpe40"
        prepare_bpe(out, "en", train, vocab_size=40)
        info = prepare_lm(out, train, lm_lines, dev, dev[:3], lm_order=3, word_list_weight=weight)
        cov = json.loads((out / "lm_3gram" / "coverage.json").read_text())
        words = (out / "lm_3gram" / "words.txt").read_text().split()
        built[name] = (info, cov, words)
        assert (out / "lm_3gram" / "HLG.fst").is_file() and {"zebra", "quokka", "form299"} <= set(words)
    (pi, pc, pw), (mi, mc, mw) = built["pooled"], built["mixed"]
    assert pw == mw and pc["dev"]["oov_words"] == mc["dev"]["oov_words"] == 0     # same vocabulary
    assert mi["word_list_entries"] == len(listed) and mi["word_list_weight"] == 0.1
    assert mi["lm_text_sentences"] == 30 and pi["word_list_entries"] == 0 and pi["lm_text_sentences"] == len(lm_lines)
    # pooled, the 305 one-word lines make "<s> w </s>" the likeliest sentence shape
    assert mc["dev"]["perplexity"] < 0.85 * pc["dev"]["perplexity"]          # 2.94 against 3.68
    with pytest.raises(GraftError, match="word_list_weight"):
        prepare_lm(tmp_path / "mixed" / "en_bpe40", train, lm_lines, dev, dev, word_list_weight=1.0)


def test_stage3_step_mixes_by_default_and_not_at_weight_0(tmp_path):
    """steps/prepare_lang.py, as stage 3 runs it: conf/lang.yaml's word_list_weight applies."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml
    from lhotse import SupervisionSegment, SupervisionSet

    root = Path(__file__).resolve().parents[1]
    default = yaml.safe_load((root / "conf/lang.yaml").read_text())["word_list_weight"]
    texts = {"train": _grammar(60, 1), "dev": _grammar(8, 3), "test": _grammar(8, 4)}
    for split, lines in texts.items():
        sups = [SupervisionSegment(id=f"u{i}", recording_id=f"r{i}", start=0.0, duration=1.0, text=t)
                for i, t in enumerate(lines)]
        SupervisionSet.from_segments(sups).to_file(tmp_path / f"supervisions_{split}.jsonl.gz")
    (tmp_path / "lm_text.txt").write_text("\n".join(_grammar(30, 2) + LISTED) + "\n")
    for extra, want in (([], default), (["--word-list-weight", "0"], 0.0)):
        out = tmp_path / f"lang{want}" / "en_bpe40"
        proc = subprocess.run([sys.executable, str(root / "steps/prepare_lang.py"), "--language", "en",
                               "--manifest-dir", str(tmp_path), "--lm-text", str(tmp_path / "lm_text.txt"),
                               "--vocab-size", "40", "--out-dir", str(out), *extra],
                              capture_output=True, text=True, cwd=root)
        assert proc.returncode == 0, proc.stderr
        info = json.loads((out / "lm_3gram" / "lm.json").read_text())
        assert info["word_list_weight"] == want
        assert info["word_list_entries"] == (len(LISTED) if want else 0)
    proc = subprocess.run([sys.executable, str(root / "steps/prepare_lang.py"), "--language", "en",
                           "--manifest-dir", str(tmp_path), "--lm-text", str(tmp_path / "lm_text.txt"),
                           "--vocab-size", "40", "--out-dir", str(tmp_path / "bad"), "--word-list-weight", "1"],
                          capture_output=True, text=True, cwd=root)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "word-list weight must be in [0, 1)" in proc.stderr and "word_list_weight" in proc.stderr
