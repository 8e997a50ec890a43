"""Save transducer n-best lists and re-score them with the word n-gram G at many weights.

Score of a hypothesis at LM weight `w` and word insertion penalty `p` (natural log):

    score = am_logprob - w * lm_cost - p * num_words        (the highest score wins)

`am_logprob` is the transducer log-prob of the token sequence (hypotheses that spell the same
words are merged first by log-add); `lm_cost` is the cost of `<s> words </s>` in G: the cheapest
path, back-off arcs taken as epsilons, i.e. the tropical cost a decoder on HLG sees, so n-best
and lattice results are comparable. With Kneser-Ney it can be below the exact ARPA cost (which
follows a back-off only when the n-gram is missing; graft.lang.graphs.sentence_cost computes
that one). A positive penalty removes words, as Kaldi's `--word-ins-penalty` does; a negative
one is a length bonus.

OOV words (not in words.txt, or unreachable in G) would cost infinity; instead each costs a
fixed `oov_cost` (default 20.0 natural-log units, about a 1e-9 probability) and is left out of
the word string G sees.

Saved n-best file (`nbest.jsonl`, one JSON object per line, written atomically):
    {"id": "utt1", "hyps": [{"tokens": [5, 9], "words": ["hello"], "am": -1.25}, ...]}

Usage:
    write_nbest("exp/m/decode/beam4/dev/nbest.jsonl", entries)
    lm = WordLm.from_lm_dir("data/lang/en_bpe500/lm_3gram")
    best = rescore_nbest(read_nbest(path), lm, lm_weights=[0.1, 0.3], penalties=[0.0])
    best[(0.3, 0.0)]["utt1"]          # ["hello", "world"]
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from graft.lang.symbols import read_symbols, tokens_to_words
from graft.utils.errors import GraftError
from graft.utils.io import atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

NBEST_NAME = "nbest.jsonl"
DEFAULT_OOV_COST = 20.0


@dataclass
class NbestHyp:
    """One hypothesis: token ids, its words and the acoustic (transducer) log-prob."""

    tokens: list[int]
    words: list[str]
    am: float


@dataclass
class NbestEntry:
    """The n-best list of one utterance."""

    utt_id: str
    hyps: list[NbestHyp] = field(default_factory=list)


def nbest_entry(utt_id: str, hyps: Iterable, id2token: dict[int, str]) -> NbestEntry:
    """Build an entry from search hypotheses (objects with `.tokens` and `.log_prob`)."""
    return NbestEntry(
        utt_id,
        [NbestHyp(list(map(int, h.tokens)), tokens_to_words(h.tokens, id2token), float(h.log_prob)) for h in hyps],
    )


def write_nbest(path: str | os.PathLike, entries: Iterable[NbestEntry]) -> int:
    """Write entries as JSON lines (atomic); returns how many were written."""
    n = 0
    with atomic_write(path) as f:
        for e in entries:
            obj = {"id": e.utt_id, "hyps": [{"tokens": h.tokens, "words": h.words, "am": h.am} for h in e.hyps]}
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_nbest(path: str | os.PathLike) -> list[NbestEntry]:
    """Read `nbest.jsonl`; GraftError naming the file and line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing n-best file {path}")
    out: list[NbestEntry] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                hyps = [NbestHyp([int(t) for t in h.get("tokens", [])], [str(w) for w in h["words"]], float(h["am"]))
                        for h in obj["hyps"]]
                out.append(NbestEntry(str(obj["id"]), hyps))
            except (ValueError, KeyError, TypeError) as e:
                raise GraftError(f"{path}:{n}: bad n-best line ({type(e).__name__}: {e})") from None
    return out


class WordLm:
    """G as a scorer of word strings: `cost(words)` = natural-log cost of `<s> words </s>`."""

    def __init__(self, g_text: str, word2id: dict[str, int], oov_cost: float = DEFAULT_OOV_COST):
        import kaldifst

        if not math.isfinite(oov_cost) or oov_cost < 0:
            raise GraftError(f"oov_cost must be a finite number >= 0, got {oov_cost}")
        self.word2id = word2id
        self.oov_cost = float(oov_cost)
        disambig = {i for w, i in word2id.items() if w.startswith("#")}
        lines = []
        for n, line in enumerate(g_text.splitlines(), start=1):
            fields = line.split()
            if len(fields) in (4, 5):  # an arc: backoff "#0:<eps>" becomes "<eps>:<eps>"
                if not all(x.isdigit() for x in fields[:4]):
                    raise GraftError(f"G text line {n}: bad arc {line!r}")
                if int(fields[2]) in disambig:
                    fields[2] = "0"
                if int(fields[3]) in disambig:
                    fields[3] = "0"
                _check_float(fields[4:], n, line)
            elif len(fields) in (1, 2):
                if not fields[0].isdigit():
                    raise GraftError(f"G text line {n}: bad final state {line!r}")
                _check_float(fields[1:], n, line)
            elif fields:
                raise GraftError(f"G text line {n}: unexpected {line!r}")
            if fields:
                lines.append(" ".join(fields))
        if not lines:
            raise GraftError("G is empty")
        self.g = kaldifst.compile("\n".join(lines) + "\n")
        kaldifst.arcsort(self.g, sort_type="ilabel")
        self._cache: dict[tuple[str, ...], float] = {}

    @classmethod
    def from_lm_dir(cls, lm_dir: str | os.PathLike, oov_cost: float = DEFAULT_OOV_COST) -> "WordLm":
        """Use `<lm dir>/G.fst` (the G that built HLG), else `lm.arpa` there."""
        import kaldifst

        lang_dir = Path(lm_dir)
        words_path = lang_dir / "words.txt"
        word2id = read_symbols(words_path)
        g_path = lang_dir / "G.fst"
        if g_path.is_file():
            g = kaldifst.StdVectorFst.read(str(g_path))
            if g is None:
                raise GraftError(f"cannot read {g_path} as an OpenFst StdVectorFst")
            return cls(g.to_str(show_weight_one=False), word2id, oov_cost)
        arpa = lang_dir / "lm.arpa"
        if not arpa.is_file():
            raise GraftError(f"no G.fst and no lm.arpa in {lang_dir} (written by stage 3)")
        return cls.from_arpa(arpa, words_path, oov_cost)

    @classmethod
    def from_arpa(cls, arpa: str | os.PathLike, words_path: str | os.PathLike,
                  oov_cost: float = DEFAULT_OOV_COST) -> "WordLm":
        """Build from an ARPA file with kaldilm (`#0` backoff, then turned into epsilon)."""
        import kaldilm

        word2id = read_symbols(words_path)
        if "#0" not in word2id:
            raise GraftError(f"{words_path} has no #0 (needed to read the ARPA backoff arcs)")
        text = kaldilm.arpa2fst(str(arpa), disambig_symbol="#0", read_symbol_table=str(words_path))
        return cls(text, word2id, oov_cost)

    def split_oov(self, words: Sequence[str]) -> tuple[list[int], int]:
        """In-vocabulary word ids and the number of OOV words."""
        ids, oov = [], 0
        for w in words:
            i = self.word2id.get(w)
            if i is None or i == 0 or w.startswith("#") or w in ("<s>", "</s>"):
                oov += 1
            else:
                ids.append(i)
        return ids, oov

    def cost(self, words: Sequence[str]) -> float:
        """Natural-log cost of the sentence; each OOV word adds `oov_cost` (see module doc)."""
        key = tuple(words)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        ids, oov = self.split_oov(words)
        value = self._g_cost(ids) + oov * self.oov_cost
        self._cache[key] = value
        return value

    def _g_cost(self, ids: list[int]) -> float:
        import kaldifst

        acceptor = kaldifst.make_linear_acceptor(ids)
        composed = kaldifst.compose(acceptor, self.g)
        if composed.num_states == 0:
            # some word is unreachable in G (not in the ARPA): drop such words one by one
            return self._cost_dropping_unreachable(ids)
        best = kaldifst.shortest_path(composed, n=1)
        ok, _, _, weight = kaldifst.get_linear_symbol_sequence(best)
        if not ok or not math.isfinite(weight.value):
            return self._cost_dropping_unreachable(ids)
        return float(weight.value)

    def _cost_dropping_unreachable(self, ids: list[int]) -> float:
        import kaldifst

        kept: list[int] = []
        dropped = 0
        for i in ids:
            trial = kaldifst.compose(kaldifst.make_linear_acceptor(kept + [i]), self.g)
            if trial.num_states:
                kept.append(i)
            else:
                dropped += 1
        composed = kaldifst.compose(kaldifst.make_linear_acceptor(kept), self.g)
        best = kaldifst.shortest_path(composed, n=1)
        ok, _, _, weight = kaldifst.get_linear_symbol_sequence(best)
        if not ok or not math.isfinite(weight.value):
            raise GraftError("G accepts no sentence (is G.fst empty or without final states?)")
        return float(weight.value) + dropped * self.oov_cost


def _check_float(values: list[str], n: int, line: str) -> None:
    for v in values:
        try:
            float(v)
        except ValueError:
            raise GraftError(f"G text line {n}: bad weight in {line!r}") from None


def merged_word_hyps(entry: NbestEntry) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Distinct word sequences of an entry and their log-added acoustic log-probs."""
    merged: dict[tuple[str, ...], float] = {}
    for h in entry.hyps:
        key = tuple(h.words)
        merged[key] = float(np.logaddexp(merged[key], h.am)) if key in merged else h.am
    keys = list(merged)
    return keys, np.array([merged[k] for k in keys], dtype=np.float64)


def rescore_nbest(
    entries: Sequence[NbestEntry],
    lm: WordLm | None,
    lm_weights: Sequence[float],
    penalties: Sequence[float] = (0.0,),
) -> dict[tuple[float, float], dict[str, list[str]]]:
    """The best word sequence per utterance at every (w, p): {(w, p): {utt: words}}.

    `lm` may be None only when every weight is 0 (acoustic score and penalty only).
    """
    weights = np.array([float(w) for w in lm_weights])
    pens = np.array([float(p) for p in penalties])
    if lm is None and np.any(weights != 0):
        raise GraftError("n-best re-scoring at a non-zero LM weight needs G (give the lang dir)")
    out: dict[tuple[float, float], dict[str, list[str]]] = {
        (float(w), float(p)): {} for w in weights for p in pens
    }
    for e in entries:
        if not e.hyps:
            for d in out.values():
                d[e.utt_id] = []
            continue
        keys, am = merged_word_hyps(e)
        lm_cost = np.array([lm.cost(k) for k in keys]) if lm is not None else np.zeros(len(keys))
        n_words = np.array([len(k) for k in keys], dtype=np.float64)
        # score[h, w, p]
        score = am[:, None, None] - weights[None, :, None] * lm_cost[:, None, None] - pens[None, None, :] * n_words[:, None, None]
        best = np.argmax(score, axis=0)
        for wi, w in enumerate(weights):
            for pi, p in enumerate(pens):
                out[(float(w), float(p))][e.utt_id] = list(keys[best[wi, pi]])
    return out
