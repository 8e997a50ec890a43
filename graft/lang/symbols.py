"""Symbol tables (`words.txt`, `tokens.txt`) and BPE pieces to words.

Usage:
    word2id = read_symbols("data/lang/en_bpe500/words.txt")
    id2word = invert(word2id)
    words = pieces_to_words(["▁he", "llo", "▁world"])   # ["hello", "world"]
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from graft.utils.errors import GraftError

WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁"


def read_symbols(path: str | os.PathLike) -> dict[str, int]:
    """Read a `<symbol> <id>` table; GraftError naming the file and line when malformed."""
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing symbol table {path}")
    table: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise GraftError(f"{path}:{n}: expected '<symbol> <id>', got {line!r}")
        table[fields[0]] = int(fields[1])
    return table


def invert(table: dict[str, int]) -> dict[int, str]:
    """id -> symbol."""
    return {i: s for s, i in table.items()}


def pieces_to_words(pieces: Iterable[str]) -> list[str]:
    """Join sentencepiece pieces into words ("▁" starts a word); special `<...>` pieces dropped."""
    text = "".join(p for p in pieces if not (p.startswith("<") and p.endswith(">")))
    return text.replace(WORD_BOUNDARY, " ").split()


def tokens_to_words(token_ids: Iterable[int], id2token: dict[int, str]) -> list[str]:
    """Token ids (model output ids, as in tokens.txt) to words."""
    try:
        return pieces_to_words(id2token[int(t)] for t in token_ids)
    except KeyError as e:
        raise GraftError(f"token id {e.args[0]} is not in tokens.txt") from None
