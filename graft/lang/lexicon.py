"""Words, symbol tables and the BPE lexicon (word -> its pieces), with Kaldi disambiguation.

words.txt is `<eps> 0`, the words sorted by code point, then `#0`, `<s>`, `</s>`.
The lexicon spells each word with the pieces sentencepiece gives it on its own; with the
`▁` word-start marker these are exactly the pieces the word gets inside a sentence.

Usage:
    words = collect_words(train_texts + lm_texts)
    word_ids = write_words(words, "words.txt")
    lexicon = bpe_lexicon(words, sp)
    write_lexicon(lexicon, "lexicon.txt")
    lexicon_disambig, max_disambig = add_disambig(lexicon)
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from graft.utils.errors import GraftError
from graft.utils.io import atomic_write

EPS = "<eps>"
BACKOFF = "#0"
BOS = "<s>"
EOS = "</s>"
RESERVED = frozenset({EPS, BACKOFF, BOS, EOS, "<unk>", "<blk>", "<sos/eos>"})

Lexicon = list[tuple[str, list[str]]]


def collect_words(texts: Iterable[str]) -> list[str]:
    """Sorted distinct words of `texts` (whitespace-separated). Rejects reserved symbols."""
    words: set[str] = set()
    for text in texts:
        words.update(text.split())
    bad = sorted(w for w in words if w in RESERVED or w.startswith("#"))
    if bad:
        raise GraftError(f"the text contains reserved symbols {bad[:5]}: normalize it first")
    return sorted(words)


def write_words(words: Sequence[str], path: str | os.PathLike) -> dict[str, int]:
    """Write words.txt (`<eps>` 0, `words`, `#0`, `<s>`, `</s>`); return word -> id."""
    symbols = [EPS, *words, BACKOFF, BOS, EOS]
    table = {w: i for i, w in enumerate(symbols)}
    if len(table) != len(symbols):
        raise GraftError("duplicate words given to write_words")
    write_symbol_table(table, path)
    return table


def write_symbol_table(table: dict[str, int], path: str | os.PathLike) -> None:
    """Write `<symbol> <id>` lines in id order."""
    with atomic_write(path) as f:
        for sym, i in sorted(table.items(), key=lambda kv: kv[1]):
            f.write(f"{sym} {i}\n")


def bpe_lexicon(words: Iterable[str], sp) -> Lexicon:
    """Each word with its BPE pieces (as in tokens.txt; a character the model lacks is `<unk>`)."""
    return [(w, [sp.id_to_piece(i) for i in sp.encode(w)]) for w in words]


def write_lexicon(lexicon: Lexicon, path: str | os.PathLike) -> None:
    """Write `word piece1 piece2 ...` lines."""
    with atomic_write(path) as f:
        for word, pieces in lexicon:
            f.write(f"{word} {' '.join(pieces)}\n")


def read_lexicon(path: str | os.PathLike) -> Lexicon:
    """Read lexicon.txt back into [(word, pieces)]."""
    lexicon: Lexicon = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) < 2:
            raise GraftError(f"{path}:{n}: expected 'word piece ...', got {line!r}")
        lexicon.append((parts[0], parts[1:]))
    return lexicon


def add_disambig(lexicon: Lexicon) -> tuple[Lexicon, int]:
    """Append `#1`, `#2`, ... to spellings that are shared or a prefix of another (Kaldi's rule).

    Returns the new lexicon and the highest disambiguation index used (0 when only `#0`,
    the LM back-off symbol, is needed). With `▁`-marked BPE pieces two words never share a
    spelling, but a word can be a prefix of another (`▁the` / `▁the re`).
    """
    counts = Counter(tuple(p) for _, p in lexicon)
    prefixes = set()
    for spelling in counts:
        for k in range(1, len(spelling)):
            prefixes.add(spelling[:k])
    last: dict[tuple[str, ...], int] = defaultdict(int)
    out: Lexicon = []
    max_disambig = 0
    for word, pieces in lexicon:
        key = tuple(pieces)
        if key in prefixes or counts[key] > 1:
            last[key] += 1
            max_disambig = max(max_disambig, last[key])
            pieces = [*pieces, f"#{last[key]}"]
        out.append((word, list(pieces)))
    return out, max_disambig
