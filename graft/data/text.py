"""Text normalization for transcripts and LM text, per language; sentence splitting and cleaning.

Usage:
    from graft.data.text import normalize, split_sentences, clean_sentence
    normalize("Příliš žluťoučký kůň!", "cs")      # -> "příliš žluťoučký kůň"
    normalize("Don't panic.", "en")               # -> "don't panic"
    normalize("Call IBM at 5pm", "en")            # -> None (acronym, digits)
    for s in split_sentences(paragraph, "en"):
        text, reason = clean_sentence(s, "en", min_words=4, max_words=20)

A normalized text is lowercase, holds only the language's letters (and, for languages that
use it, the apostrophe inside words), words separated by single spaces; punctuation is
dropped. A text is rejected (None) when it cannot be normalized faithfully: empty, digits,
symbols a speaker would read aloud (&, %, +, ...), acronyms, abbreviations, or letters outside
the language's alphabet. Normalizing a normalized text returns it unchanged.

Adding a language is one entry in `LANGUAGES`.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from graft.utils.errors import GraftError


@dataclass(frozen=True)
class Language:
    """What normalization needs to know about a language."""

    letters: str  # the lowercase letters of the alphabet (precomposed, NFC)
    apostrophe: bool = False  # keep an apostrophe inside words (English "don't")
    # Abbreviations (lowercase, without the dot) a reader would expand: "mr." -> "mister".
    abbreviations: frozenset[str] = frozenset()
    # Words of one letter that are real words; any other single letter is a stray letter name.
    one_letter_words: frozenset[str] = frozenset()
    # A few very frequent function words: to tell a sentence in another language apart.
    function_words: frozenset[str] = frozenset()


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


LANGUAGES: dict[str, Language] = {
    "en": Language(
        letters="abcdefghijklmnopqrstuvwxyz",
        apostrophe=True,
        abbreviations=_words("mr mrs ms dr jr sr st vs etc prof eg ie inc ltd corp dept approx "
                             "esq gov sgt capt lt col gen rev hon messrs"),
        one_letter_words=_words("a i o"),
        function_words=_words("the and of is you that it was for with this are be have not "
                              "what your they will he she we his"),
    ),
    "cs": Language(
        letters="aábcčdďeéěfghiíjklmnňoópqrřsštťuúůvwxyýzž",
        abbreviations=_words("např atd tzv tj tzn resp apod mj aj př ing mudr judr phdr rndr "
                             "doc prof dr str sv čes hod min viz cca popř pozn"),
        one_letter_words=_words("a i k o s u v z"),
        function_words=_words("je se že na ale jak jsem jsou není když tak co už jen "
                              "který která které aby nebo také jeho"),
    ),
    # Polish: a third language for a source closer to Czech (bench/source_language.sh); q, v, x
    # occur in loanwords.
    "pl": Language(
        letters="aąbcćdeęfghijklłmnńoópqrsśtuvwxyzźż",
        abbreviations=_words("np itd itp tzn tj tzw dr prof godz ul św ok mgr inż wg ds nr str "
                             "godz jw zob ks pt sp ww"),
        one_letter_words=_words("a i o u w z"),
        function_words=_words("nie się że na jest to jak do co ale tak za czy po już tylko "
                              "jestem był jego może"),
    ),
}

# Symbols a reader speaks ("and", "percent", "plus", ...): a transcript cannot drop them.
_SPOKEN_SYMBOLS = set("&@#%*/\\_|~^+=<>$§°")
# Typographic variants of the apostrophe and quotes, mapped before anything else.
_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"}
_DIGIT_CATEGORIES = {"Nd", "Nl", "No"}
_SYMBOL_CATEGORIES = {"Sm", "Sc", "Sk", "So"}

_DOTTED = re.compile(r"[^\W\d_]\.[^\W\d_]")  # e.g., i.e., U.S., www.debian.org
_INITIAL = re.compile(r"(?<![^\W\d_])[^\W\d_]\.\s+[^\W\d_]")  # T. Pratchett (a letter, dot, word)
_WORD_DOT = re.compile(r"(?<![^\W\d_'])([^\W\d_]+)\.")  # a word and its dot: "etc."
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # letters, apostrophes inside only

REASONS = ("empty", "digits", "symbols", "acronym", "abbreviation", "foreign letters")


def language_spec(language: str) -> Language:
    """The `Language` entry for a language code; GraftError for an unknown code."""
    try:
        return LANGUAGES[language]
    except KeyError:
        raise GraftError(f"no text normalization for language {language!r}: "
                         f"known are {', '.join(sorted(LANGUAGES))} (graft.data.text.LANGUAGES)") from None


def alphabet(language: str) -> str:
    """The lowercase letters of a language's alphabet."""
    return language_spec(language).letters


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = text.replace("``", '"').replace("''", '"')  # LaTeX-style quotes in old fortunes
    for a, b in _APOSTROPHES.items():
        text = text.replace(a, b)
    return text


def _is_acronym(word: str) -> bool:
    """Two or more letters with a capital after the first (IBM, TVs, PhD); O'Brien is fine."""
    letters = word.replace("'", "")
    if len(letters) < 2:
        return False
    for i, ch in enumerate(word):
        if i > 0 and ch.isupper() and word[i - 1] != "'":
            return True
    return False


def normalize_verbose(text: str, language: str) -> tuple[str | None, str]:
    """Like `normalize`, and say why a text was rejected: (normalized, "") or (None, reason)."""
    spec = language_spec(language)
    if not text or not text.strip():
        return None, "empty"
    text = _prepare(text)
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in _DIGIT_CATEGORIES:
            return None, "digits"
        if ch in _SPOKEN_SYMBOLS or cat in _SYMBOL_CATEGORIES:
            return None, "symbols"
    if _DOTTED.search(text):
        return None, "abbreviation"
    if spec.abbreviations:
        for m in _WORD_DOT.finditer(text):
            if m.group(1).lower() in spec.abbreviations:
                return None, "abbreviation"
    if any(m.group(0)[0].isupper() for m in _INITIAL.finditer(text)):
        return None, "abbreviation"
    if any(ch.islower() for ch in text):  # an all-capitals text (LibriSpeech) has no acronyms to see
        if any(_is_acronym(w) for w in _WORD.findall(text)):
            return None, "acronym"

    letters = set(spec.letters)
    out = []
    for ch in text.lower():
        if ch in letters:
            out.append(ch)
        elif ch == "'":
            out.append("'" if spec.apostrophe else "")
        elif ch.isalpha() or unicodedata.category(ch).startswith("M"):
            return None, "foreign letters"
        elif unicodedata.category(ch) == "Cf":  # soft hyphen, zero-width space: not a boundary
            continue
        else:  # whitespace, punctuation, control characters: a word boundary
            out.append(" ")
    words = []
    for w in "".join(out).split():
        if spec.apostrophe:
            w = re.sub(r"'+", "'", w).strip("'")
        if w:
            words.append(w)
    if not words:
        return None, "empty"
    return " ".join(words), ""


def normalize(text: str, language: str) -> str | None:
    """Lowercase, the language's letters (+ apostrophe inside English words), single spaces.

    Returns None when the text cannot be normalized faithfully (empty, digits, spoken symbols,
    acronyms, abbreviations, letters outside the alphabet). Raises GraftError for a language
    without an entry in `LANGUAGES`.
    """
    return normalize_verbose(text, language)[0]


# ---- sentences -------------------------------------------------------------------------

_END = re.compile(r"""([.!?\u2026]+)(["'\u201c\u201d\u201e\u00bb\u00ab)\]]*)\s+(?=["'\u201e\u201c\u00ab(\[-]*[^\W\d_])""")


def split_sentences(text: str, language: str) -> list[str]:
    """Split running text (lines joined) into sentences at . ! ? followed by a capital.

    Does not split after the language's abbreviations or single-letter initials, so such
    sentences stay whole (and `normalize` rejects them).
    """
    spec = language_spec(language)
    text = " ".join(text.split())
    out, start = [], 0
    for m in _END.finditer(text):
        nxt = text[m.end():].lstrip("\"'\u201e\u201c\u00ab([-")
        if not nxt or not nxt[0].isupper():
            continue
        before = text[start:m.start()].split()
        last = before[-1].strip("\"'(\u201e\u201c") if before else ""
        if m.group(1) == "." and (last.lower() in spec.abbreviations or (len(last) == 1 and last.isalpha())):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def other_language(words: list[str], language: str) -> str | None:
    """The code of another known language the words look like (by function words), or None."""
    own = language_spec(language).function_words
    n_own = sum(w in own for w in words)
    for code, spec in LANGUAGES.items():
        if code == language or not spec.function_words:
            continue
        foreign = spec.function_words - own
        n = sum(w in foreign for w in words)
        if n >= 2 and n > n_own:
            return code
    return None


def clean_sentence(text: str, language: str, min_words: int = 4, max_words: int = 20,
                   blocklist: re.Pattern | None = None) -> tuple[str | None, str]:
    """Normalize one sentence and check it is usable as a prompt: (normalized, "") or (None, reason).

    Reasons beyond `normalize`'s: "too short", "too long", "stray letter" (a single letter
    that is not a word of the language, e.g. "Q:"), "other language", "blocklist".
    """
    norm, reason = normalize_verbose(text, language)
    if norm is None:
        return None, reason
    words = norm.split()
    if len(words) < min_words:
        return None, "too short"
    if len(words) > max_words:
        return None, "too long"
    spec = language_spec(language)
    if spec.one_letter_words and any(len(w) == 1 and w not in spec.one_letter_words for w in words):
        return None, "stray letter"
    if other_language(words, language):
        return None, "other language"
    if blocklist is not None and any(blocklist.fullmatch(w) for w in words):
        return None, "blocklist"
    return norm, ""


def speakable(text: str) -> str:
    """The sentence as a TTS engine should read it: the words of `normalize`, with the
    punctuation that shapes prosody (, . ! ? ; : and inner hyphens) kept, quotes and brackets
    dropped. Text written all in capitals is lowercased so no engine spells it out."""
    text = _prepare(text)
    if not any(ch.islower() for ch in text):
        text = text.lower()
    out = []
    for ch in text:
        if ch.isalpha() or ch in "',.!?;:-" or ch.isspace():
            out.append(ch)
        elif ch in "\u2026":
            out.append(",")
        elif ch in "\u2013\u2014":
            out.append(",")
        else:
            out.append(" ")
    s = " ".join("".join(out).split())
    s = re.sub(r"(^|\s)[-']+|[-']+(?=\s|$)", r"\1", s)  # dashes and quotes at word edges
    s = re.sub(r"\s+([,.!?;:])", r"\1", s)
    s = re.sub(r"([,.!?;:])[,.;:]+", r"\1", s)
    s = re.sub(r"([,.!?;:])(?=[^\W\d_])", r"\1 ", s)  # "funny.your", "naukowców...o": two words, not one
    s = s.strip(" ,;:")
    return s
