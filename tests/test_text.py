"""Tests of graft.data.text (normalization, sentences) and graft.data.fortunes (cleaning).

Usage: .venv/bin/python -m pytest -q tests/test_text.py
"""
from __future__ import annotations

import re
import unicodedata

import pytest

from graft.data.fortunes import BLOCKLIST, entry_sentences, fortune_files, fortune_sentences, read_entries
from graft.data.text import (LANGUAGES, alphabet, clean_sentence, normalize, normalize_verbose, speakable,
                             split_sentences)
from graft.utils.errors import GraftError


@pytest.mark.parametrize("text, lang, expected", [
    ("Don't panic, it's only a test!", "en", "don't panic it's only a test"),
    ("Don\u2019t   panic \u2014 please.", "en", "don't panic please"),
    ("Don't PANIC.", "en", None),  # shouting inside lower case reads like an acronym
    ("'Tis the dogs' bone, ``said he''.", "en", "tis the dogs bone said he"),
    ("A well-known fact (mostly).", "en", "a well known fact mostly"),
    ("I AM THE LAW", "en", "i am the law"),  # all capitals (LibriSpeech style) is not an acronym
    ("Příliš žluťoučký kůň úpěl ďábelské ódy.", "cs", "příliš žluťoučký kůň úpěl ďábelské ódy"),
    ("ČLOVĚK MÁ BÝT STÁLE ZAMILOVÁN", "cs", "člověk má být stále zamilován"),
    ("A'Tuin přichází odnikud.", "cs", "atuin přichází odnikud"),  # no apostrophe in Czech words
    ("Zklame-li se v lásce žena, vdá se.", "cs", "zklame li se v lásce žena vdá se"),
    ("Prˇ", "cs", None),  # a spacing caron is not a Czech letter
    ("Zażółć gęślą jaźń, w źródle!", "pl", "zażółć gęślą jaźń w źródle"),
    ("ŻÓŁW IDZIE DO DOMU", "pl", "żółw idzie do domu"),
])
def test_normalize(text, lang, expected):
    assert normalize(text, lang) == expected


def test_czech_decomposed_diacritics_are_composed():
    decomposed = unicodedata.normalize("NFD", "Žluťoučký kůň")
    assert normalize(decomposed, "cs") == "žluťoučký kůň"


@pytest.mark.parametrize("text, lang, reason", [
    ("", "en", "empty"),
    ("  ... !", "en", "empty"),
    ("I have 3 cats.", "en", "digits"),
    ("Half is \u00bd of it.", "en", "digits"),
    ("Tom & Jerry are here.", "en", "symbols"),
    ("That is *really* bad.", "en", "symbols"),
    ("I work at IBM all day.", "en", "acronym"),
    ("He bought two TVs today.", "en", "acronym"),
    ("Mr. Smith went home.", "en", "abbreviation"),
    ("Bring food, e.g. bread.", "en", "abbreviation"),
    ("Visit www.debian.org now.", "en", "abbreviation"),
    ("T. Pratchett wrote it.", "en", "abbreviation"),
    ("Der Himmel über mir.", "en", "foreign letters"),
    ("Привет мир", "cs", "foreign letters"),
    ("Len dotiaľ človek žije.", "cs", "foreign letters"),  # Slovak ľ
    ("Jablka, hrušky atd. jsou ovoce.", "cs", "abbreviation"),
    ("Pracuje v NATO.", "cs", "acronym"),
    ("Kupił jabłka, gruszki itp. na targu.", "pl", "abbreviation"),
    ("Příliš žluťoučký kůň.", "pl", "foreign letters"),  # Czech ř, ů
])
def test_rejected(text, lang, reason):
    assert normalize(text, lang) is None
    assert normalize_verbose(text, lang) == (None, reason)


@pytest.mark.parametrize("text, lang", [
    ("Don't panic, it's only a test!", "en"),
    ("O'Brien's dog can't swim.", "en"),
    ("Příliš žluťoučký kůň úpěl ďábelské ódy.", "cs"),
])
def test_idempotent(text, lang):
    once = normalize(text, lang)
    assert once and normalize(once, lang) == once


def test_alphabets():
    assert set("áčďéěíňóřšťúůýž") <= set(alphabet("cs"))
    assert alphabet("en") == "abcdefghijklmnopqrstuvwxyz"
    for lang, spec in LANGUAGES.items():
        assert spec.letters == spec.letters.lower() == unicodedata.normalize("NFC", spec.letters)
    assert LANGUAGES["en"].apostrophe and not LANGUAGES["cs"].apostrophe
    with pytest.raises(GraftError, match="xx"):
        normalize("hello", "xx")


def test_split_sentences():
    text = "Hello there.  How are\nyou? Mr. Smith is here! \"Quoted.\" Fine"
    assert split_sentences(text, "en") == ["Hello there.", "How are you?", "Mr. Smith is here!",
                                           "\"Quoted.\"", "Fine"]
    assert split_sentences("Napsal to T. Pratchett. Je to dobré.", "cs") == [
        "Napsal to T. Pratchett.", "Je to dobré."]


def test_clean_sentence():
    assert clean_sentence("Short one.", "en") == (None, "too short")
    assert clean_sentence(" ".join(["word"] * 21), "en") == (None, "too long")
    assert clean_sentence("Q: what is it that you want?", "en") == (None, "stray letter")
    assert clean_sentence("What is the meaning of this thing?", "cs") == (None, "other language")
    assert clean_sentence("Like modern sex, any number can play.", "en", blocklist=BLOCKLIST["en"]) == (
        None, "blocklist")
    assert clean_sentence("A little experience often upsets a lot of theory.", "en",
                          blocklist=BLOCKLIST["en"]) == ("a little experience often upsets a lot of theory", "")
    # Czech stems must not hit innocent words (knihovna contains "hovn")
    assert clean_sentence("Knihovník šel do knihovny.", "cs", blocklist=BLOCKLIST["cs"])[0]


def test_speakable_keeps_the_words():
    for text, lang in [('- "Hello," she said -- and left...', "en"),
                       ("»Dobrý den,« řekl – a odešel…", "cs"),
                       ("I AM THE LAW!", "en")]:
        s = speakable(text)
        assert not s.startswith("-") and '"' not in s
        assert normalize(s, lang) == normalize(text, lang)
    assert speakable("I AM THE LAW!") == "i am the law!"
    # punctuation glued between two words (a missing space, an ellipsis) parts them for the engine
    assert speakable("I thought of something funny.your mother.") == "I thought of something funny. your mother."
    assert speakable("Tajny język naukowców ...o wielkim znaczeniu") == "Tajny język naukowców. o wielkim znaczeniu"
    assert speakable("programow,bo bylem") == "programow, bo bylem"


def test_fortune_file_parsing(tmp_path):
    f = tmp_path / "tiny"
    f.write_text("First line of it\ncontinues here. Second sentence is here!\n\t\t-- Some Author\n%\n"
                 "Q: Why?\nA: Because.\n%\n- item one\n- item two\n%\n", encoding="utf-8")
    entries, enc = read_entries(f)
    assert enc == "utf-8" and len(entries) == 3
    assert "Author" not in entries[0]
    assert entry_sentences(entries[0], "en") == (
        ["First line of it continues here.", "Second sentence is here!"], "")
    assert entry_sentences(entries[1], "en") == ([], "dialogue")
    assert entry_sentences(entries[2], "en") == ([], "list")
    latin2 = tmp_path / "latin2"
    latin2.write_bytes("Člověk má být stále zamilován.\n%\n".encode("iso-8859-2"))
    entries, enc = read_entries(latin2, "iso-8859-2")
    assert enc == "iso-8859-2" and entries == ["Člověk má být stále zamilován."]


def test_fortune_sentences_real():
    files = fortune_files("cs")
    assert files and all("klasik-sk" != p.name for p in files)
    sentences, stats = fortune_sentences("cs")
    assert len(sentences) > 3000 and stats["kept"] == len(sentences)
    texts = [s.text for s in sentences]
    assert len(set(texts)) == len(texts)
    for s in sentences[:: max(1, len(sentences) // 300)]:
        assert 4 <= len(s.text.split()) <= 20
        assert normalize(s.text, "cs") == s.text
        assert normalize(s.speak, "cs") == s.text
    again, _ = fortune_sentences("cs")
    assert [s.text for s in again] == texts  # deterministic


def test_polish_fortune_sentences_real():
    """fortunes-pl (utils/setup.sh installs it): ~2,400 clean sentences in Polish letters."""
    sentences, stats = fortune_sentences("pl")
    assert 2000 < len(sentences) == stats["kept"] and stats["dialogue"] > 0 and stats["blocklist"] > 0
    letters = set(alphabet("pl")) | {" "}
    assert sum(any(ch in "ąćęłńóśźż" for ch in s.text) for s in sentences) > len(sentences) // 2
    for s in sentences:
        assert 4 <= len(s.text.split()) <= 20 and set(s.text) <= letters
        assert not any(BLOCKLIST["pl"].fullmatch(w) for w in s.text.split())
        assert not re.search(r"\w[,.!?;:]\w", s.speak)  # no "programow,bo" read as one word
    # what the engine reads normalizes to the transcript (one exception: "Z. pięknego", an initial)
    assert sum(normalize(s.speak, "pl") != s.text for s in sentences) <= 1
