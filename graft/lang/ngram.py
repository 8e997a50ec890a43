"""The word n-gram LM: train (and prune) an ARPA model with kaldingram, score text with it.

kaldingram trains back-off (not interpolated) Kneser-Ney models as SRILM's
`ngram-count -ukndiscount` does. Every word of its training text is in the unigram table.

Perplexity follows SRILM: each sentence scores its words and `</s>`; a word missing from
the LM vocabulary is an OOV: it is not scored (it has no probability mass), it is counted,
and the next word is scored without history (as SRILM does, whose contexts holding an
OOV back off to the unigram).

Usage:
    stats = train_arpa("lm_text.txt", "lm_3gram.arpa", order=3, prune_threshold=None)
    lm = ArpaLM.read("lm_3gram.arpa")
    report = evaluate_text(lm, ["a dev sentence", ...])   # coverage and perplexity
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Sequence

from graft.utils.errors import GraftError
from graft.utils.logging import get_logger

log = get_logger(__name__)

BOS = "<s>"
EOS = "</s>"


def _kaldingram(args: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "kaldingram.cli", *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise GraftError(f"kaldingram {what} failed ({' '.join(cmd[3:])}): " + " | ".join(tail))


def train_arpa(
    text_path: str | os.PathLike,
    arpa_path: str | os.PathLike,
    order: int = 3,
    prune_threshold: float | None = None,
) -> dict[str, int]:
    """Train a Kneser-Ney ARPA LM of `order` on `text_path` (one sentence a line).

    With `prune_threshold` (e.g. 1e-7), entropy-prune orders >= 2 (unigrams are kept, so the
    vocabulary does not change). Returns the n-gram counts of the written model.
    """
    if not 1 <= order <= 5:
        raise GraftError(f"LM order must be 1..5 (kaldingram), got {order}")
    if not Path(text_path).stat().st_size:
        raise GraftError(f"cannot train an LM: {text_path} is empty")
    arpa_path = Path(arpa_path)
    raw = arpa_path if prune_threshold is None else arpa_path.with_suffix(".unpruned.arpa")
    _kaldingram(["train", "--ngram-order", str(order), "--text", str(text_path), "--lm", str(raw)], "train")
    if prune_threshold is not None:
        before = arpa_counts(raw)
        _kaldingram(["prune", "--threshold", str(prune_threshold), "--lm", str(raw),
                     "--write-lm", str(arpa_path), "--verbose", "3"], "prune")
        raw.unlink()
        log.info("pruned the LM at %g: %s -> %s", prune_threshold, before, arpa_counts(arpa_path))
    return arpa_counts(arpa_path)


def arpa_counts(arpa_path: str | os.PathLike) -> dict[str, int]:
    """The `ngram N=count` header of an ARPA file as {"N": count}."""
    counts: dict[str, int] = {}
    with open(arpa_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("ngram ") and "=" in line:
                n, c = line[6:].split("=")
                counts[n.strip()] = int(c)
            elif line.startswith("\\1-grams"):
                break
    return counts


class ArpaLM:
    """A back-off n-gram model read from ARPA (log10 probabilities, as in the file)."""

    def __init__(self, probs: dict[tuple[str, ...], float], bows: dict[tuple[str, ...], float], order: int):
        self.probs = probs
        self.bows = bows
        self.order = order
        self.vocab = frozenset(ng[0] for ng in probs if len(ng) == 1) - {BOS, EOS}

    @classmethod
    def read(cls, path: str | os.PathLike) -> "ArpaLM":
        """Parse an ARPA file."""
        probs: dict[tuple[str, ...], float] = {}
        bows: dict[tuple[str, ...], float] = {}
        order = 0
        n = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                if line.startswith("\\"):
                    if line.endswith("-grams:"):
                        n = int(line[1:].split("-")[0])
                        order = max(order, n)
                    else:
                        n = 0
                    continue
                if n == 0:
                    continue
                parts = line.split()
                if len(parts) not in (n + 1, n + 2):
                    raise GraftError(f"{path}: bad {n}-gram line {line!r}")
                ngram = tuple(parts[1 : n + 1])
                probs[ngram] = float(parts[0])
                if len(parts) == n + 2:
                    bows[ngram] = float(parts[-1])
        if not probs:
            raise GraftError(f"{path}: no n-grams found (not an ARPA file?)")
        return cls(probs, bows, order)

    def logprob(self, word: str, history: Sequence[str]) -> float:
        """log10 P(word | history) with back-off; `word` must be in the vocabulary (or `</s>`)."""
        hist = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        while True:
            ngram = hist + (word,)
            p = self.probs.get(ngram)
            if p is not None:
                return backoff + p
            if not hist:
                raise KeyError(word)
            backoff += self.bows.get(hist, 0.0)
            hist = hist[1:]

    def score(self, words: Sequence[str]) -> tuple[float, int, int]:
        """Score one sentence (with `</s>`): (log10 prob, scored tokens incl. `</s>`, OOV words)."""
        hist: tuple[str, ...] = (BOS,)
        total, scored, oov = 0.0, 0, 0
        for w in [*words, EOS]:
            if w != EOS and w not in self.vocab:
                oov += 1
                hist = ()
                continue
            total += self.logprob(w, hist)
            scored += 1
            hist = (hist + (w,))[-(self.order - 1):] if self.order > 1 else ()
        return total, scored, oov


def evaluate_text(lm: ArpaLM, sentences: Iterable[str]) -> dict:
    """Word coverage of the LM vocabulary and the LM's perplexity on `sentences`.

    `perplexity` = 10 ** (-log10 prob / scored), scored = in-vocabulary words + one `</s>`
    per sentence; OOV words are excluded (and counted in `oov_words`). Ratios are None
    when there is no text.
    """
    n_sent = n_words = n_oov = n_scored = 0
    logprob = 0.0
    types: set[str] = set()
    oov_types: set[str] = set()
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        n_sent += 1
        n_words += len(words)
        types.update(words)
        oov_types.update(w for w in words if w not in lm.vocab)
        lp, scored, oov = lm.score(words)
        logprob += lp
        n_scored += scored
        n_oov += oov
    ppl = round(10 ** (-logprob / n_scored), 3) if n_scored else None
    return {
        "sentences": n_sent,
        "words": n_words,
        "oov_words": n_oov,
        "word_coverage": round(1 - n_oov / n_words, 6) if n_words else None,
        "word_types": len(types),
        "oov_types": len(oov_types),
        "type_coverage": round(1 - len(oov_types) / len(types), 6) if types else None,
        "logprob10": round(logprob, 4),
        "scored_tokens": n_scored,
        "perplexity": ppl,
    }
