"""Sentences from Debian's fortune files, cleaned and normalized, per language.

Usage:
    from graft.data.fortunes import fortune_sentences
    sentences, stats = fortune_sentences("cs")   # list[Sentence], Counter of rejections
    sentences[0].text     # normalized transcript
    sentences[0].speak    # the same words with punctuation, for a TTS engine

Fortune files (packages `fortunes`, `fortunes-cs`) hold entries separated by lines "%".
Attributions ("-- Author") are dropped, entries that are dialogues or lists are skipped,
the rest is split into sentences, and each sentence is kept when `clean_sentence` accepts it
(4-20 words, no digits, acronyms, abbreviations, foreign letters or blocked words).
Slovak files inside fortunes-cs and the offensive "off" sets are skipped. The result is
de-duplicated on the normalized text and deterministic (files in name order).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from graft.data.text import clean_sentence, language_spec, speakable, split_sentences
from graft.utils.errors import GraftError

FORTUNE_ROOT = Path("/usr/share/games/fortunes")


@dataclass(frozen=True)
class FortuneSource:
    """Where a language's fortunes are and what to skip there."""

    folder: str  # relative to the fortune root ("" for the top level)
    package: str  # the Debian package that installs them
    fallback_encoding: str  # for a file that is not UTF-8
    skip: frozenset[str] = frozenset()  # file names that are another language or not text


SOURCES: dict[str, FortuneSource] = {
    "en": FortuneSource("", "fortunes", "latin-1",
                        skip=frozenset({"translate-me", "ascii-art", "art"})),
    "cs": FortuneSource("cs", "fortunes-cs", "iso-8859-2", skip=frozenset({"klasik-sk"})),
    # IRC logs and chat quotes are mostly dialogues, which entry_sentences skips.
    "pl": FortuneSource("pl", "fortunes-pl", "iso-8859-2"),
}

# Offensive words: a word is blocked when it fully matches. Small on purpose; it backs up
# skipping the "off" sets, which are not the only place such entries occur.
BLOCKLIST: dict[str, re.Pattern] = {
    "en": re.compile(
        r"(?:fuck|shit|cunt|bitch|bastard|whore|slut|nigg|faggot|retard|porn|orgasm|masturbat"
        r"|penis|vagina|wank|dildo|prostitut|asshole|horny)\w*"
        r"|ass|asses|arse|tit|tits|boob|boobs|sex|sexy|sexual|dick|dicks|cock|cocks|pussy|prick"
        r"|crap|rape|raped|rapes|raping|rapist|fag|fags|dyke|kike|chink|spic|gook|wop|hooker"),
    "cs": re.compile(
        r"\w*(?:jeb|kurv|prdel|prdl|sračk|posra|zasra|vysra|mrd)\w*"
        r"|(?:hovn|srát|sere|seru|kokot|čurák|píč|zmrd|šuk|kund|buzn|buzer|negr|cikán|teplouš|děvk"
        r"|šlapk|sex|porno|penis|vagín|orgasm|debil|idiot|kretén)\w*"),
    "pl": re.compile(
        r"\w*(?:kurw|chuj|pierd|jeb|pizd|skurw)\w*"
        r"|(?:dup|cip|kutas|seks|porno|pedał|pedal|ciot|dziwk|penis|orgazm|debil|idiot|kretyn"
        r"|murzyn|cygan|żyd)\w*"),
}

_ATTRIBUTION = re.compile(r"^\s*(--|\u2014|\u2013)")
_DIALOGUE = re.compile(r"^\s*[\w .'\-]{1,25}:\s")  # "Q: ...", "Kirk: ...", "A: ..."
_LIST_ITEM = re.compile(r"^\s*([-*+\u2022o]|\d+[.)])\s")
_OVERSTRIKE = re.compile(r".\x08")


@dataclass(frozen=True)
class Sentence:
    """One clean sentence: normalized transcript, text for TTS, and the file it came from."""

    text: str
    speak: str
    source: str


def read_entries(path: str | Path, fallback_encoding: str = "latin-1") -> tuple[list[str], str]:
    """The entries of one fortune file (attributions dropped) and the encoding it was read with."""
    raw = Path(path).read_bytes()
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode(fallback_encoding, errors="replace"), fallback_encoding
    text = _OVERSTRIKE.sub("", text).replace("\r", "")
    entries = []
    for block in re.split(r"^%\s*$", text, flags=re.M):
        lines = []
        for line in block.split("\n"):
            if _ATTRIBUTION.match(line):
                break  # the attribution and anything after it (notes, translations)
            lines.append(line)
        entry = "\n".join(lines).strip()
        if entry:
            entries.append(entry)
    return entries, encoding


def entry_sentences(entry: str, language: str) -> tuple[list[str], str]:
    """The sentences of one entry, or ([], reason) for an entry that is a dialogue or a list."""
    lines = [ln for ln in entry.split("\n") if ln.strip()]
    if any(_DIALOGUE.match(ln) for ln in lines):
        return [], "dialogue"
    if any(_LIST_ITEM.match(ln) for ln in lines):
        return [], "list"
    return split_sentences(" ".join(lines), language), ""


def fortune_files(language: str, root: str | Path = FORTUNE_ROOT) -> list[Path]:
    """The fortune files of a language, in name order (skipping .dat/.u8 and skipped names)."""
    if language not in SOURCES:
        raise GraftError(f"no fortune source for language {language!r}: known are "
                         f"{', '.join(sorted(SOURCES))} (graft.data.fortunes.SOURCES)")
    src = SOURCES[language]
    folder = Path(root) / src.folder
    files = []
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if (p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
                    and p.name not in src.skip and "off" not in p.relative_to(root).parts):
                files.append(p)
    if not files:
        raise GraftError(f"no fortune files for {language!r} in {folder}: "
                         f"install the Debian package: apt-get install {src.package}")
    return files


def fortune_sentences(language: str, root: str | Path = FORTUNE_ROOT, min_words: int = 4,
                      max_words: int = 20) -> tuple[list[Sentence], Counter]:
    """Clean, normalized, de-duplicated sentences of a language's fortunes, and rejection counts."""
    language_spec(language)
    src = SOURCES.get(language)
    blocklist = BLOCKLIST.get(language)
    stats: Counter = Counter()
    seen: set[str] = set()
    out: list[Sentence] = []
    for path in fortune_files(language, root):
        entries, encoding = read_entries(path, src.fallback_encoding)
        if encoding != "utf-8":
            stats[f"files read as {encoding}"] += 1
        for entry in entries:
            sentences, reason = entry_sentences(entry, language)
            if reason:
                stats[reason] += 1
                continue
            for s in sentences:
                first = next((ch for ch in s if ch.isalpha()), "")
                if not first.isupper():  # a fragment of a poem or of a badly split sentence
                    stats["fragment"] += 1
                    continue
                norm, reason = clean_sentence(s, language, min_words, max_words, blocklist)
                if norm is None:
                    stats[reason] += 1
                elif norm in seen:
                    stats["duplicate"] += 1
                else:
                    seen.add(norm)
                    out.append(Sentence(norm, speakable(s), path.name))
    stats["kept"] = len(out)
    return out, stats
