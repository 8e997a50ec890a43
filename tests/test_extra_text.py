"""Tests of graft.data.extra_text: extra Czech LM text from installed Debian packages.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_extra_text.py
"""
from __future__ import annotations

from pathlib import Path

import pytest

from graft.data import extra_text
from graft.data.extra_text import (WORD_FORM_SOURCES, expand_entry, extra_lm_sentences, read_affixes,
                                   read_mythes_words, seed_words, word_forms)
from graft.data.text import alphabet, normalize
from graft.utils.errors import GraftError

ROOT = Path("/")


def test_czech_running_text_is_normalized_and_deterministic():
    lines, stats = extra_lm_sentences("cs", word_forms_too=False)
    again, _ = extra_lm_sentences("cs", word_forms_too=False)
    assert lines == again
    assert stats["sources"]["fillets"]["sentences"] > 1000
    assert stats["sources"]["stardict"]["sentences"] > 10000
    letters = set(alphabet("cs")) | {" "}
    assert all(set(s) <= letters for s in lines)
    assert all(normalize(s, "cs") == s and len(s.split()) >= 2 for s in lines)
    assert len(set(lines)) == len(lines)
    assert "co je to za divnou loď" in lines  # a Fish Fillets dialogue line


def test_czech_word_forms_inflect_the_vocabulary(monkeypatch):
    monkeypatch.setitem(extra_text.TEXT_SOURCES, "cs", ())  # the forms of `vocabulary` alone: fast
    lines, stats = extra_lm_sentences("cs", vocabulary=["kočka", "hrad"])
    # other cases of the vocabulary words (and their negated forms), one word a line, sorted
    assert {"kočky", "kočce", "kočkou", "koček", "hradu", "hradem", "hradech"} <= set(lines)
    assert "kočka" not in lines and "hrad" not in lines  # already in the caller's LM text
    assert "kanceláře" not in lines                      # the thesaurus seeds only with seed_lists=True
    assert lines == sorted(lines) and stats["word_forms"]["forms_added"] == len(lines)
    letters = set(alphabet("cs"))
    assert all(set(w) <= letters for w in lines)
    wf = WORD_FORM_SOURCES["cs"]
    assert word_forms(["kočky"], ROOT / wf.dic, ROOT / wf.aff, alphabet("cs"))[0] == \
        word_forms(["kočka"], ROOT / wf.dic, ROOT / wf.aff, alphabet("cs"))[0]


def test_thesaurus_words_seed_forms_of_words_the_text_lacks(monkeypatch):
    seeds = seed_words("cs")
    assert len(seeds) > 30000 and {"prodávat", "kancelář", "zápasník"} <= seeds
    monkeypatch.setitem(extra_text.TEXT_SOURCES, "cs", ())
    monkeypatch.setattr(extra_text, "seed_words", lambda language, root="/": {"kancelář"})
    lines, stats = extra_lm_sentences("cs", vocabulary=["hrad"], seed_lists=True)
    assert {"kanceláře", "kanceláří", "kancelářemi", "hradu"} <= set(lines)
    assert "kancelář" in lines and "hrad" not in lines      # a seed word is not LM text: it is added
    assert stats["word_forms"]["list_seed_words"] == 1


def test_read_mythes_words(tmp_path):
    dat = tmp_path / "th.dat"
    dat.write_text("UTF-8\n(jednací) sál|1\n|dutina|kancelář|komnata\nboxer|2\n(podst. jm.)|rváč\n|zápasník\n",
                   encoding="utf-8")
    assert read_mythes_words(dat) == ["(jednací)", "sál", "dutina", "kancelář", "komnata", "boxer", "rváč",
                                      "zápasník"]


def test_missing_seed_list_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(extra_text.TEXT_SOURCES, "cs", ())
    monkeypatch.setattr(extra_text, "WORD_FORM_SOURCES", {"cs": extra_text.WordFormSource(
        "hunspell-cs", str(ROOT / WORD_FORM_SOURCES["cs"].dic), str(ROOT / WORD_FORM_SOURCES["cs"].aff))})
    with pytest.raises(GraftError, match="apt-get install mythes-cs"):
        extra_lm_sentences("cs", vocabulary=["hrad"], root=tmp_path, seed_lists=True)


def test_missing_source_names_the_package(tmp_path):
    with pytest.raises(GraftError, match="apt-get install fillets-ng-data"):
        extra_lm_sentences("cs", root=tmp_path)


def test_missing_hunspell_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(extra_text.TEXT_SOURCES, "cs", ())
    with pytest.raises(GraftError, match="apt-get install hunspell-cs"):
        extra_lm_sentences("cs", root=tmp_path)


def test_english_has_no_sources():
    assert extra_lm_sentences("en") == ([], {"language": "en", "sources": {}, "sentences": 0, "word_types": 0})


def test_affix_expansion_on_a_tiny_dictionary(tmp_path):
    aff = tmp_path / "x.aff"
    aff.write_text("SET UTF-8\nPFX N Y 1\nPFX N 0 ne .\nSFX A Y 2\nSFX A a y a\nSFX A a ou a\n"
                   "SFX B N 1\nSFX B 0 i [^a]\n", encoding="utf-8")
    dic = tmp_path / "x.dic"
    dic.write_text("3\nkočka/AN\nhrad/B\nPraha/A\n", encoding="utf-8")
    table = read_affixes(aff)
    assert expand_entry("kočka", "AN", table) == {"kočka", "kočky", "kočkou", "nekočka", "nekočky", "nekočkou"}
    assert expand_entry("hrad", "B", table) == {"hrad", "hradi"}
    forms, stats = word_forms(["kočkou", "praha"], dic, aff, alphabet("cs"))
    assert forms == sorted({"kočka", "kočky", "kočkou", "nekočka", "nekočky", "nekočkou", "praha", "prahy", "prahou"})
    assert stats["entries matched"] == 2


def test_read_affixes_rejects_a_file_without_rules(tmp_path):
    aff = tmp_path / "bad.aff"
    aff.write_text("SET UTF-8\n", encoding="utf-8")
    with pytest.raises(GraftError, match="no affix rules"):
        read_affixes(aff)
