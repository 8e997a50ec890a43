"""The vocabulary change: which BPE pieces a source and a target tokens.txt share, row copies.

Usage:
    match = match_vocab("data/lang/en_bpe500/tokens.txt", "data/lang/cs_bpe500/tokens.txt")
    match.num_shared, match.identical            # e.g. 87, False
    copy_shared_rows(target_weight, source_weight, match)   # rows along dim 0, in place

Pieces are matched by their string (`▁the`, `a`, `<blk>`, ...), so the special symbols
(`<blk>` 0, `<sos/eos>` 1, `<unk>` 2) are shared whenever both tables have them. Every
vocabulary-sized parameter of graft.model (decoder embedding, joiner output, CTC head,
simple-loss projections) has the vocabulary on dim 0, so a shared piece is one row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from graft.lang.bpe import read_tokens
from graft.utils.errors import GraftError

SPECIALS = ("<blk>", "<sos/eos>", "<unk>")


@dataclass
class VocabMatch:
    """Target id -> source id of every piece both inventories share."""

    source_size: int
    target_size: int
    target_ids: torch.Tensor      # (S,) int64
    source_ids: torch.Tensor      # (S,) int64, same order
    shared_pieces: list[str]

    @property
    def num_shared(self) -> int:
        return len(self.shared_pieces)

    @property
    def num_shared_specials(self) -> int:
        return sum(p in SPECIALS for p in self.shared_pieces)

    @property
    def identical(self) -> bool:
        """Same pieces with the same ids: vocabulary-sized parameters can be copied whole."""
        return (self.source_size == self.target_size == self.num_shared
                and bool(torch.equal(self.target_ids, self.source_ids)))

    def describe(self) -> str:
        if self.identical:
            return f"identical vocabularies ({self.target_size} pieces)"
        return (f"{self.num_shared} of {self.target_size} target pieces are shared with the "
                f"{self.source_size}-piece source vocabulary ({self.num_shared_specials} of them "
                f"special symbols)")


def _table(path: str | os.PathLike, which: str) -> dict[str, int]:
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing {which} token table {path}")
    table = read_tokens(path)
    ids = sorted(table.values())
    if ids != list(range(len(ids))):
        raise GraftError(f"{path}: token ids must be 0..{len(ids) - 1} without gaps")
    return table


def match_tables(source: dict[str, int], target: dict[str, int]) -> VocabMatch:
    """Match two piece -> id tables by piece string."""
    shared = sorted((p for p in target if p in source), key=lambda p: target[p])
    return VocabMatch(
        source_size=len(source), target_size=len(target),
        target_ids=torch.tensor([target[p] for p in shared], dtype=torch.int64),
        source_ids=torch.tensor([source[p] for p in shared], dtype=torch.int64),
        shared_pieces=shared)


def match_vocab(source_tokens: str | os.PathLike, target_tokens: str | os.PathLike) -> VocabMatch:
    """Read both tokens.txt files and match their pieces."""
    return match_tables(_table(source_tokens, "source"), _table(target_tokens, "target"))


@torch.no_grad()
def copy_shared_rows(target: torch.Tensor, source: torch.Tensor, match: VocabMatch) -> int:
    """target[t] = source[s] for every shared (t, s) along dim 0; returns the rows copied."""
    if target.shape[0] != match.target_size or source.shape[0] != match.source_size:
        raise GraftError(f"vocabulary dims {tuple(source.shape)} (source) / {tuple(target.shape)} "
                         f"(target) do not match the token tables ({match.source_size} / "
                         f"{match.target_size} pieces)")
    if target.shape[1:] != source.shape[1:]:
        raise GraftError(f"row shapes differ: source {tuple(source.shape)}, target {tuple(target.shape)}")
    target[match.target_ids] = source[match.source_ids].to(target.dtype)
    return match.num_shared
