"""WER and CER with kaldialign: counts, per-utterance alignments, frequent errors.

Word error rate counts words; character error rate counts the characters of the words joined
by single spaces, the spaces included (so a split or joined word costs one error).
A reference id with no hypothesis is scored against an empty hypothesis (all deletions) and
counted as "not present in hyp", as Kaldi's `compute-wer --mode=all` does; hypotheses without
a reference are ignored.

Usage:
    detail = score_utterances(refs, hyps)                 # words
    detail.counts.kaldi_line()                            # "%WER 12.34 [ 56 / 454, 7 ins, 8 del, 41 sub ]"
    cer = score_utterances(refs, hyps, unit="char").counts
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import kaldialign

_EPS = "\x00eps"  # cannot occur in a word


@dataclass
class ErrorCounts:
    """Edit counts over a set; `rate` is in percent."""

    ref_len: int = 0
    ins: int = 0
    dels: int = 0
    subs: int = 0
    sentences: int = 0
    sentence_errors: int = 0
    missing: int = 0  # references with no hypothesis

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def rate(self) -> float:
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_len

    def kaldi_line(self, label: str = "WER") -> str:
        """Kaldi's summary line, e.g. `%WER 12.34 [ 56 / 454, 7 ins, 8 del, 41 sub ]`."""
        return f"%{label} {self.rate:.2f} [ {self.errors} / {self.ref_len}, {self.ins} ins, {self.dels} del, {self.subs} sub ]"

    def ser_line(self) -> str:
        rate = 100.0 * self.sentence_errors / self.sentences if self.sentences else 0.0
        return f"%SER {rate:.2f} [ {self.sentence_errors} / {self.sentences} ]"


@dataclass
class UttAlignment:
    """One utterance: aligned (ref, hyp) pairs, None marking a gap."""

    utt_id: str
    pairs: list[tuple[str | None, str | None]]

    def ops(self) -> list[str]:
        """Kaldi op codes per pair: C(orrect), S(ubstitution), I(nsertion), D(eletion)."""
        out = []
        for r, h in self.pairs:
            out.append("I" if r is None else "D" if h is None else "C" if r == h else "S")
        return out

    def csid(self) -> tuple[int, int, int, int]:
        ops = self.ops()
        return ops.count("C"), ops.count("S"), ops.count("I"), ops.count("D")


@dataclass
class ScoreDetail:
    """Counts plus what is needed for Kaldi's per-utterance and frequent-error files."""

    counts: ErrorCounts
    alignments: list[UttAlignment] = field(default_factory=list)
    substitutions: Counter = field(default_factory=Counter)  # (ref, hyp) -> count
    insertions: Counter = field(default_factory=Counter)  # hyp word -> count
    deletions: Counter = field(default_factory=Counter)  # ref word -> count


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[str | None, str | None]]:
    """Levenshtein alignment (kaldialign); None marks an insertion or deletion gap."""
    pairs = kaldialign.align(list(ref), list(hyp), _EPS)
    return [(None if r == _EPS else r, None if h == _EPS else h) for r, h in pairs]


def _units(words: Sequence[str], unit: str) -> list[str]:
    if unit == "word":
        return list(words)
    if unit == "char":
        return list(" ".join(words))
    raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")


def score_utterances(
    refs: Mapping[str, Sequence[str]],
    hyps: Mapping[str, Sequence[str]],
    unit: str = "word",
    with_details: bool = True,
    cache: dict | None = None,
) -> ScoreDetail:
    """Score every reference utterance (see module docstring); `cache` memoizes alignments."""
    counts = ErrorCounts()
    detail = ScoreDetail(counts)
    for utt_id, ref_words in refs.items():
        hyp_words = hyps.get(utt_id)
        if hyp_words is None:
            counts.missing += 1
            hyp_words = []
        ref_u, hyp_u = _units(ref_words, unit), _units(hyp_words, unit)
        key = (tuple(ref_u), tuple(hyp_u))
        pairs = cache.get(key) if cache is not None else None
        if pairs is None:
            pairs = align(ref_u, hyp_u)
            if cache is not None:
                cache[key] = pairs
        counts.ref_len += len(ref_u)
        counts.sentences += 1
        utt_err = 0
        for r, h in pairs:
            if r is None:
                counts.ins += 1
                utt_err += 1
                if with_details:
                    detail.insertions[h] += 1
            elif h is None:
                counts.dels += 1
                utt_err += 1
                if with_details:
                    detail.deletions[r] += 1
            elif r != h:
                counts.subs += 1
                utt_err += 1
                if with_details:
                    detail.substitutions[(r, h)] += 1
        counts.sentence_errors += utt_err > 0
        if with_details:
            detail.alignments.append(UttAlignment(utt_id, pairs))
    return detail


def edit_counts(ref: Sequence[str], hyp: Sequence[str]) -> dict[str, int]:
    """kaldialign's edit distance (ins, del, sub, total, ref_len) of one pair of sequences."""
    return dict(kaldialign.edit_distance(list(ref), list(hyp)))
