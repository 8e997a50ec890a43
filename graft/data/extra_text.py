"""Extra LM text for a language from installed Debian packages: running text, then word forms.

Usage:
    from graft.data.extra_text import extra_lm_sentences
    lines, stats = extra_lm_sentences("cs", vocabulary=lm_words)   # normalized, one per line
    held_out = set(dev_texts) | set(test_texts)
    lines = [s for s in lines if s not in held_out]                 # the caller's job

Czech (issue 13): the fortunes alone leave ~16 % of dev words out of the LM vocabulary; Czech
is highly inflected, so more running text helps little and inflected forms help most.
  - running text: the Czech dialogues of the game Fish Fillets (`fillets-ng-data`, the game's
    original language: conversational sentences) and the definitions of the dictionary of
    foreign words (`stardict-czech`);
  - word forms (`hunspell-cs`): every form of each hunspell entry (stem + affix rules) that
    produces a word of the running text or of `vocabulary` (the caller's LM words: train
    transcripts and lm_text.txt, never dev/test), one word a line, words the text already holds
    left out. This adds the other cases and persons of the words the LM knows. With
    `seed_lists`, also every form of the entries producing a word of a seed word list (the ~44k
    words of the LibreOffice Czech thesaurus, `mythes-cs`: headwords and synonyms, everyday
    lemmas): common words the text never met. A seed word hunspell does not know adds nothing.
    Measured on the demo (bench/results/demo_cs_lm_thesaurus_forms.md): dev coverage 94.9 ->
    97.1 %, 491k -> 851k words, HLG 126 -> 203 MB, CTC + HLG WER within noise (test -1.1,
    test_unseen +1.0): an option, not the demo's default.

Every line goes through `graft.data.text.clean_sentence` (so `normalize`): lowercase letters of
the alphabet, single spaces. The order is deterministic (sources, files in name order, first
occurrence; word forms sorted). The function does not know the corpus splits: the caller drops
exact-sentence overlaps with dev/test transcripts. A language without sources gives ([], stats).
"""
from __future__ import annotations

import bisect
import gzip
import html
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from graft.data.fortunes import BLOCKLIST
from graft.data.text import clean_sentence, language_spec, normalize, split_sentences
from graft.utils.errors import GraftError
from graft.utils.logging import get_logger

log = get_logger(__name__)

MIN_WORDS = 2  # a one-word line of running text adds no n-gram context
MAX_WORDS = 40


@dataclass(frozen=True)
class TextSource:
    """A file set of one Debian package and how to read paragraphs from it."""

    name: str
    package: str
    pattern: str  # a glob below the root, e.g. "usr/share/games/fillets-ng/script/*/*dialogs_cs.lua"
    read: Callable[[Path], list[str]]  # one file -> its paragraphs (raw text)


@dataclass(frozen=True)
class WordFormSource:
    """A hunspell dictionary (.dic + .aff) of one Debian package."""

    package: str
    dic: str  # below the root
    aff: str


_LUA_STRING = re.compile(r'dialogStr\("((?:[^"\\]|\\.)*)"\)')
_LUA_ESCAPE = re.compile(r"\\(.)")
_BOLD = re.compile(r"<b>(.*?)</b>", re.S)
_TAG = re.compile(r"<[^>]+>")


def read_fillets_dialogs(path: Path) -> list[str]:
    """The translated lines (`dialogStr("...")`) of one Fish Fillets dialogue script."""
    text = path.read_text(encoding="utf-8", errors="replace")
    unescape = lambda m: " " if m.group(1) in "nt" else m.group(1)  # noqa: E731
    return [_LUA_ESCAPE.sub(unescape, m.group(1)) for m in _LUA_STRING.finditer(text)]


def read_stardict_definitions(path: Path) -> list[str]:
    """The definitions (the bold parts) of a StarDict .dict.dz (dictzip is gzip) in HTML."""
    with gzip.open(path) as f:
        text = f.read().decode("utf-8", errors="replace")
    return [html.unescape(_TAG.sub(" ", m.group(1))) for m in _BOLD.finditer(text)]


TEXT_SOURCES: dict[str, tuple[TextSource, ...]] = {
    "cs": (
        TextSource("fillets", "fillets-ng-data", "usr/share/games/fillets-ng/script/*/*dialogs_cs.lua",
                   read_fillets_dialogs),
        TextSource("stardict", "stardict-czech", "usr/share/stardict/dic/czech-cizi.dict.dz",
                   read_stardict_definitions),
    ),
}


def read_mythes_words(path: Path) -> list[str]:
    """Every word of a MyThes thesaurus .dat (entries `word|n`, then n lines `(pos)|syn|syn...`)."""
    words: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        next(f, None)  # the encoding line
        for line in f:
            fields = line.rstrip("\n").split("|")
            if len(fields) == 2 and fields[1].strip().isdigit():
                fields = fields[:1]                     # an entry line: the word, its meaning count
            elif fields and (not fields[0] or fields[0].startswith("(")):
                fields = fields[1:]                     # a meaning line: its part of speech first
            words.extend(w for field in fields for w in field.split())
    return words


@dataclass(frozen=True)
class SeedWordSource:
    """A word list of one Debian package whose words seed the hunspell word forms."""

    name: str
    package: str
    path: str  # below the root
    read: Callable[[Path], list[str]]


SEED_WORD_SOURCES: dict[str, tuple[SeedWordSource, ...]] = {
    "cs": (SeedWordSource("thesaurus", "mythes-cs", "usr/share/mythes/th_cs_CZ_v2.dat", read_mythes_words),),
}

WORD_FORM_SOURCES: dict[str, WordFormSource] = {
    "cs": WordFormSource("hunspell-cs", "usr/share/hunspell/cs_CZ.dic", "usr/share/hunspell/cs_CZ.aff"),
}


def source_files(source: TextSource, root: str | Path = "/") -> list[Path]:
    """The files of a text source in name order; GraftError naming the package when none."""
    files = sorted(p for p in Path(root).glob(source.pattern) if p.is_file())
    if not files:
        raise GraftError(f"extra LM text {source.name!r}: no files match {Path(root) / source.pattern}: "
                         f"install the Debian package: apt-get install {source.package}")
    return files


def source_sentences(source: TextSource, language: str, root: str | Path = "/",
                     stats: Counter | None = None) -> Iterator[str]:
    """Clean, normalized sentences of one source (not de-duplicated), counting rejections in `stats`."""
    stats = Counter() if stats is None else stats
    blocklist = BLOCKLIST.get(language)
    for path in source_files(source, root):
        stats["files"] += 1
        for paragraph in source.read(path):
            for raw in split_sentences(paragraph, language):
                norm, reason = clean_sentence(raw, language, MIN_WORDS, MAX_WORDS, blocklist)
                if norm is None:
                    stats[f"rejected {reason}"] += 1
                else:
                    yield norm


# ---- hunspell word forms ---------------------------------------------------------------

@dataclass(frozen=True)
class Affix:
    """One affix rule: remove `strip`, add `add`, where `condition` matches."""

    strip: str
    add: str
    condition: re.Pattern


@dataclass
class AffixTable:
    """The PFX/SFX rules of a hunspell .aff file, by flag (single-character flags)."""

    suffixes: dict[str, list[Affix]]
    prefixes: dict[str, list[Affix]]
    cross: dict[str, bool]  # a prefix and a suffix combine when both flags say Y
    max_strip: dict[str, int] = field(default_factory=dict)  # the longest stripped suffix per flag


def read_affixes(aff: str | Path) -> AffixTable:
    """Parse the affix rules of a UTF-8 hunspell .aff file (flags of one character)."""
    table = AffixTable({}, {}, {})
    for line in Path(aff).read_text(encoding="utf-8", errors="replace").splitlines():
        f = line.split()
        if len(f) < 4 or f[0] not in ("SFX", "PFX"):
            continue
        kind, flag = f[0], f[1]
        if len(f) == 4 and f[3].isdigit():  # the header: SFX flag cross count
            table.cross[flag] = f[2] == "Y"
            continue
        strip, add = ("" if f[2] == "0" else f[2]), ("" if f[3] == "0" else f[3].split("/")[0])
        cond = f[4] if len(f) > 4 else "."
        pattern = re.compile(cond + "$" if kind == "SFX" else "^" + cond)
        (table.suffixes if kind == "SFX" else table.prefixes).setdefault(flag, []).append(Affix(strip, add, pattern))
    if not table.suffixes and not table.prefixes:
        raise GraftError(f"no affix rules in {aff}: not a hunspell .aff file")
    table.max_strip = {flag: max(len(a.strip) for a in rules) for flag, rules in table.suffixes.items()}
    return table


def expand_entry(stem: str, flags: str, table: AffixTable) -> set[str]:
    """All forms of one .dic entry: the stem, its suffixed and prefixed forms, and cross products."""
    forms = {stem}
    suffixed: list[tuple[str, bool]] = []
    for flag in flags:
        for a in table.suffixes.get(flag, ()):
            if stem.endswith(a.strip) and a.condition.search(stem):
                form = stem[:len(stem) - len(a.strip)] + a.add
                forms.add(form)
                suffixed.append((form, table.cross.get(flag, False)))
    for flag in flags:
        bases = [stem] + ([s for s, ok in suffixed if ok] if table.cross.get(flag, False) else [])
        for a in table.prefixes.get(flag, ()):
            for base in bases:
                if base.startswith(a.strip) and a.condition.search(base):
                    forms.add(a.add + base[len(a.strip):])
    return forms


def _may_match(stem: str, flags: str, table: AffixTable, starts: Callable[[str], bool]) -> bool:
    """A cheap test: could an entry produce a word of the vocabulary (a shared beginning)?

    Every suffixed form starts with the stem less its longest stripped suffix among the
    entry's rules; a prefixed form starts with the prefix, then that."""
    strip = max((table.max_strip.get(f, 0) for f in flags), default=0)
    head = stem.lower()[:max(1, len(stem) - strip)]
    if starts(head):
        return True
    prefixes = [a for f in flags for a in table.prefixes.get(f, ())]
    return any(a.strip or starts(a.add + head) for a in prefixes)


def word_forms(vocabulary: Iterable[str], dic: str | Path, aff: str | Path,
               letters: str) -> tuple[list[str], Counter]:
    """The forms (lowercase, of `letters` only) of every .dic entry producing a vocabulary word, sorted."""
    vocab = sorted(set(vocabulary))
    if not vocab:
        return [], Counter()
    table = read_affixes(aff)

    def starts(prefix: str) -> bool:
        i = bisect.bisect_left(vocab, prefix)
        return i < len(vocab) and vocab[i].startswith(prefix)

    known, alphabet = set(vocab), set(letters)
    out: set[str] = set()
    stats: Counter = Counter()
    with open(dic, encoding="utf-8", errors="replace") as f:
        next(f, None)  # the entry count
        for line in f:
            stem, _, flags = line.strip().partition("/")
            if not stem or not _may_match(stem, flags, table, starts):
                continue
            forms = {w.lower() for w in expand_entry(stem, flags, table)}
            if forms & known:
                stats["entries matched"] += 1
                out |= {w for w in forms if set(w) <= alphabet}
    stats["forms"] = len(out)
    return sorted(out), stats


# ---- the extra text of a language ------------------------------------------------------

def seed_words(language: str, root: str | Path = "/") -> set[str]:
    """The normalized single words of the language's seed word lists (SEED_WORD_SOURCES);
    GraftError naming the Debian package when one is not installed."""
    spec = language_spec(language)
    alphabet = set(spec.letters)
    out: set[str] = set()
    for source in SEED_WORD_SOURCES.get(language, ()):
        path = Path(root) / source.path
        if not path.is_file():
            raise GraftError(f"extra LM word forms: missing {path} (seed words {source.name!r}): "
                             f"install the Debian package: apt-get install {source.package}")
        for raw in source.read(path):
            w = normalize(raw, language)
            if w and " " not in w and set(w) <= alphabet:
                out.add(w)
    return out


def extra_lm_sentences(language: str, vocabulary: Iterable[str] = (), word_forms_too: bool = True,
                       root: str | Path = "/", seed_lists: bool = False) -> tuple[list[str], dict]:
    """Normalized extra LM lines of a language from its installed Debian sources, and stats.

    Running-text sentences first (de-duplicated, in source and file order), then, with
    `word_forms_too`, the inflected forms of the words of that text and of `vocabulary` (the
    caller's LM words) that the text does not hold, one a line; with `seed_lists` also the forms
    of the words of the language's seed word lists (SEED_WORD_SOURCES). Raises GraftError naming the
    Debian package when a source is not installed. Languages without sources: ([], stats).
    """
    spec = language_spec(language)
    stats: dict = {"language": language, "sources": {}}
    seen: set[str] = set()
    lines: list[str] = []
    for source in TEXT_SOURCES.get(language, ()):
        counts: Counter = Counter()
        before = len(lines)
        for s in source_sentences(source, language, root, counts):
            if s not in seen:
                seen.add(s)
                lines.append(s)
        new = lines[before:]
        stats["sources"][source.name] = {"package": source.package, "sentences": len(new),
                                         "words": sum(len(s.split()) for s in new), **dict(sorted(counts.items()))}
    text_words = {w for s in lines for w in s.split()}
    stats["sentences"] = len(lines)
    stats["word_types"] = len(text_words)
    wf = WORD_FORM_SOURCES.get(language)
    if word_forms_too and wf is not None:
        dic, aff = Path(root) / wf.dic, Path(root) / wf.aff
        if not dic.is_file() or not aff.is_file():
            raise GraftError(f"extra LM word forms: missing {dic} or {aff}: "
                             f"install the Debian package: apt-get install {wf.package}")
        known = text_words | {w for w in vocabulary if w}
        seeds = seed_words(language, root) if seed_lists else set()
        forms, counts = word_forms(known | seeds, dic, aff, spec.letters)
        added = [w for w in forms if w not in known]
        lines.extend(added)
        stats["word_forms"] = {"package": wf.package, "seed_words": len(known),
                               "list_seed_words": len(seeds - known),
                               "entries_matched": counts["entries matched"], "forms_added": len(added)}
    log.info("%s extra LM text: %d lines (%s)", language, len(lines),
             ", ".join(f"{k} {v['sentences']}" for k, v in stats["sources"].items()) or "no sources")
    return lines, stats
