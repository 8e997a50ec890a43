"""A word list in the word LM: the n-gram model of the running text, interpolated with a
unigram over every word (the text's and the list's), written as one back-off ARPA model.

Usage:
    sentences, words = split_word_list(lines)        # one-word lines are the word list
    ngram.train_arpa("sentences.txt", "sentences.arpa", order=3)
    mixed = mix_unigram(ArpaLM.read("sentences.arpa"), unigram_probs(sentences, words), weight=0.1)
    write_arpa(mixed, "lm.arpa")

Why: a word list (the demo's 443k inflected Czech forms from hunspell-cs) pooled with the
sentences as one-word lines teaches the n-gram that a sentence is often one word long:
`<s> w </s>` for every listed form takes probability from the real sentence starts and ends and
spreads the unigram over forms seen once. Mixed in as a unigram, the list adds its words to the
vocabulary (and to G, so HLG decoding can output them) without touching the text's contexts.
On the Czech demo's dev text, with the same vocabulary and OOVs, the perplexity is 5218 pooled
and 2045 mixed at weight 0.1 (bench/results/lm_word_list.md).

Model: P(w | h) = (1 - weight) P_ngram(w | h) + weight P_uni(w) for every n-gram the sentence
model lists and for every unigram of either model; each history's back-off weight is then
recomputed so that its distribution sums to 1. That is the static interpolation SRILM's
`ngram -mix-lm -lambda` writes: exact for the listed n-grams, and for the rest the mixed
model's own back-off (an approximation of the exact mixture). P_uni is the relative frequency
of each word in the sentences plus one count per word-list entry, `</s>` once per sentence.
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from typing import Iterable

from graft.lang.ngram import BOS, EOS, ArpaLM
from graft.utils.errors import GraftError
from graft.utils.io import atomic_write

_LOG0 = -99.0           # ARPA's log10 "zero" (the <s> unigram)


def split_word_list(lines: Iterable[str]) -> tuple[list[str], list[str]]:
    """(sentences: lines of two or more words, word list: the one-word lines' words)."""
    sentences, words = [], []
    for line in lines:
        toks = line.split()
        if len(toks) > 1:
            sentences.append(line)
        elif toks:
            words.append(toks[0])
    return sentences, words


def unigram_probs(sentences: Iterable[str], words: Iterable[str]) -> dict[str, float]:
    """Relative frequencies: the sentences' words and one `</s>` each, plus one per listed word."""
    counts: Counter[str] = Counter()
    n_sent = 0
    for s in sentences:
        counts.update(s.split())
        n_sent += 1
    counts.update(set(words))
    counts[EOS] += n_sent
    total = sum(counts.values())
    if not total:
        raise GraftError("cannot make a unigram from an empty text and word list")
    return {w: c / total for w, c in counts.items()}


def mix_unigram(lm: ArpaLM, unigram: dict[str, float], weight: float) -> ArpaLM:
    """The back-off model of (1 - weight) x `lm` + weight x `unigram` (static interpolation)."""
    if not 0.0 <= weight <= 1.0:
        raise GraftError(f"the word-list weight must be in [0, 1], got {weight}")
    keep = 1.0 - weight
    probs: dict[tuple[str, ...], float] = {}
    for w in (set(lm.vocab) | {EOS} | set(unigram)) - {BOS}:       # every unigram of either model
        p1 = lm.probs.get((w,))
        p = keep * (10.0 ** p1 if p1 is not None else 0.0) + weight * unigram.get(w, 0.0)
        probs[(w,)] = math.log10(p) if p > 0 else _LOG0
    probs[(BOS,)] = _LOG0
    children: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for ngram, lp in lm.probs.items():
        if len(ngram) > 1:
            w = ngram[-1]
            probs[ngram] = math.log10(keep * 10.0 ** lp + weight * unigram.get(w, 0.0))
            children[ngram[:-1]].append(w)
    mixed = ArpaLM(probs, {}, lm.order)
    for hist in sorted(children, key=len):       # shorter histories first: their weights are used below
        kids = children[hist]
        num = 1.0 - sum(10.0 ** probs[hist + (w,)] for w in kids)
        den = 1.0 - sum(10.0 ** mixed.logprob(w, hist[1:]) for w in kids)
        mixed.bows[hist] = math.log10(max(num, 1e-12) / max(den, 1e-12))
    return mixed


def write_arpa(lm: ArpaLM, path: str | os.PathLike) -> dict[str, int]:
    """Write `lm` as an ARPA file (atomically); return its n-gram counts as {"N": count}."""
    by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for ngram in lm.probs:
        by_order[len(ngram)].append(ngram)
    counts = {str(n): len(by_order[n]) for n in range(1, lm.order + 1)}
    with atomic_write(path) as f:
        f.write("\\data\\\n")
        for n in range(1, lm.order + 1):
            f.write(f"ngram {n}={counts[str(n)]}\n")
        for n in range(1, lm.order + 1):
            f.write(f"\n\\{n}-grams:\n")
            for ngram in sorted(by_order[n]):
                bow = lm.bows.get(ngram)
                tail = f"\t{bow:.7f}" if bow is not None and n < lm.order else ""
                f.write(f"{lm.probs[ngram]:.7f}\t{' '.join(ngram)}{tail}\n")
        f.write("\n\\end\\\n")
    return counts
