"""Paired bootstrap confidence interval of a WER difference between two systems on one test set.

Both systems decoded the same utterances; each utterance has its word errors under system A
and under system B, and its number of reference words. A resample draws as many utterances as
the set has, with replacement (the same draw for both systems: that is what makes it paired),
and computes

    difference = 100 * (sum errors_a - sum errors_b) / sum ref_words      (WER points)

Sign convention: the difference is WER(A) - WER(B), so **negative means A makes fewer errors**
(A better); "A better on every utterance" gives an interval entirely below 0. `p_better` is the
share of resamples in which A is better (difference < 0), ties counted as half.
The interval is the percentile interval of the resampled differences; `delta` is the difference
on the full set. Deterministic for a given seed (numpy's default_rng).

Per-utterance errors come from the `per_utt_<lmwt>_<wip>` files steps/score.py writes
(graft.score.kaldi_files.read_per_utt); `scored_utterances` finds the test set's file at the
(LM weight, penalty) chosen on dev, as `<method>/selection.json` records it.

Usage:
    a = scored_utterances("exp/cs_transfer_15m/decode_epoch12_avg2", "ctc-hlg")
    b = scored_utterances("exp/cs_scratch_15m/decode_epoch12_avg2", "ctc-hlg")
    r = compare(a, b, n=1000, seed=0)        # or paired_bootstrap(errs_a, errs_b, ref_lens)
    print(f"{r.delta:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}], P(A better) = {r.p_better:.3f}")
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from graft.score.kaldi_files import read_per_utt
from graft.score.weights import weight_label
from graft.utils.errors import GraftError, MissingStageError

CHUNK_CELLS = 2_000_000  # resampled utterance draws held in memory at once


class BootstrapResult(NamedTuple):
    """WER(A) - WER(B) in points on the full set, its 95 % (or other) interval, P(A better)."""

    delta: float
    lo: float
    hi: float
    p_better: float
    n: int = 0  # resamples
    utterances: int = 0
    wer_a: float = 0.0
    wer_b: float = 0.0
    level: float = 0.95

    def format(self, digits: int = 2) -> str:
        """E.g. `-12.34 [-15.02, -9.71]`."""
        return f"{self.delta + 0.0:+.{digits}f} [{self.lo + 0.0:+.{digits}f}, {self.hi + 0.0:+.{digits}f}]"  # no "-0.00"


def paired_bootstrap(
    errors_a: Sequence[int] | np.ndarray,
    errors_b: Sequence[int] | np.ndarray,
    ref_lens: Sequence[int] | np.ndarray,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapResult:
    """Paired bootstrap of WER(A) - WER(B) (points) over utterances (see module docstring)."""
    ea = np.asarray(errors_a, dtype=np.int64)
    eb = np.asarray(errors_b, dtype=np.int64)
    rl = np.asarray(ref_lens, dtype=np.int64)
    if not (ea.ndim == eb.ndim == rl.ndim == 1) or not (len(ea) == len(eb) == len(rl)):
        raise GraftError(f"paired bootstrap: errors_a, errors_b and ref_lens must be 1-D and of one length "
                         f"(got {ea.shape}, {eb.shape}, {rl.shape})")
    if len(rl) == 0:
        raise GraftError("paired bootstrap: no utterances")
    if (ea < 0).any() or (eb < 0).any() or (rl < 0).any():
        raise GraftError("paired bootstrap: error counts and reference lengths cannot be negative")
    total = int(rl.sum())
    if total == 0:
        raise GraftError("paired bootstrap: the references have no words")
    if n < 1:
        raise GraftError(f"paired bootstrap: the number of resamples must be at least 1, got {n}")
    if not 0.0 < level < 1.0:
        raise GraftError(f"paired bootstrap: the level must be between 0 and 1, got {level}")
    diff = ea - eb
    m = len(diff)
    rng = np.random.default_rng(seed)
    deltas = np.empty(n, dtype=np.float64)
    rows = max(1, CHUNK_CELLS // m)
    for start in range(0, n, rows):
        k = min(rows, n - start)
        idx = rng.integers(0, m, size=(k, m))
        d = diff[idx].sum(axis=1)
        r = rl[idx].sum(axis=1)
        # a resample of only empty references has no WER: count it as no difference
        deltas[start:start + k] = np.where(r > 0, 100.0 * d / np.maximum(r, 1), 0.0)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(deltas, [alpha, 1.0 - alpha])
    p_better = float(np.mean(deltas < 0) + 0.5 * np.mean(deltas == 0))
    return BootstrapResult(delta=100.0 * float(diff.sum()) / total, lo=float(lo), hi=float(hi),
                           p_better=p_better, n=n, utterances=m,
                           wer_a=100.0 * float(ea.sum()) / total, wer_b=100.0 * float(eb.sum()) / total, level=level)


@dataclass
class ScoredUtterances:
    """Per-utterance (errors, reference words) of one method on one set at one (LM weight, penalty)."""

    decode_root: Path
    method: str
    set_name: str
    lm_weight: float
    penalty: float
    counts: dict[str, tuple[int, int]]  # utt id -> (word errors, reference words)
    path: Path

    @property
    def wer(self) -> float:
        ref = sum(r for _, r in self.counts.values())
        return 100.0 * sum(e for e, _ in self.counts.values()) / ref if ref else 0.0


def per_utt_path(decode_root: str | os.PathLike, method: str, set_name: str, lm_weight: float,
                 penalty: float) -> Path:
    """`<decode_root>/<method>/<set>/scoring/per_utt_<lmwt>_<wip>`."""
    return (Path(decode_root) / method / set_name / "scoring"
            / f"per_utt_{weight_label(lm_weight)}_{weight_label(penalty)}")


def read_selection(decode_root: str | os.PathLike, method: str) -> dict:
    """`<decode_root>/<method>/selection.json` (MissingStageError naming stage 7 when absent)."""
    path = Path(decode_root) / method / "selection.json"
    if not path.is_file():
        raise MissingStageError(f"missing {path} (written by steps/score.py: run stage 7)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise GraftError(f"{path}: not valid JSON ({e})") from None


def scored_utterances(
    decode_root: str | os.PathLike,
    method: str,
    set_name: str | None = None,
    pair: tuple[float, float] | None = None,
) -> ScoredUtterances:
    """Per-utterance errors of `method`'s test set (or `set_name`) at the pair selection.json
    records for that set (the test set's `test_pair`, a further test set's `other_tests` pair,
    else the dev-chosen one), or at `pair` (e.g. (0.0, 0.0) for no LM), from its per_utt file."""
    sel = read_selection(decode_root, method)
    set_name = set_name or sel.get("test_set")
    if not set_name:
        raise GraftError(f"{Path(decode_root) / method / 'selection.json'} records no test set")
    if pair is None:
        if set_name == sel.get("test_set"):
            chosen = sel.get("test_pair")
        else:
            chosen = ((sel.get("other_tests") or {}).get(set_name) or {}).get("pair")
        chosen = chosen or sel.get("chosen_on_dev")
        try:
            pair = (float(chosen["lm_weight"]), float(chosen["word_ins_penalty"]))
        except (TypeError, KeyError, ValueError):
            raise GraftError(f"{Path(decode_root) / method / 'selection.json'} records no chosen "
                             f"(lm_weight, word_ins_penalty)") from None
    path = per_utt_path(decode_root, method, set_name, *pair)
    counts = read_per_utt(path)
    if not counts:
        raise GraftError(f"{path} has no '#csid' lines")
    return ScoredUtterances(Path(decode_root), method, set_name, pair[0], pair[1], counts, path)


def compare(a: ScoredUtterances | Mapping[str, tuple[int, int]], b: ScoredUtterances | Mapping[str, tuple[int, int]],
            n: int = 1000, seed: int = 0, level: float = 0.95) -> BootstrapResult:
    """Paired bootstrap of WER(A) - WER(B) over the utterances both were scored on; their
    reference lengths must agree (same test set)."""
    ca = a.counts if isinstance(a, ScoredUtterances) else a
    cb = b.counts if isinstance(b, ScoredUtterances) else b
    ids = [u for u in ca if u in cb]
    name_a = a.path if isinstance(a, ScoredUtterances) else "A"
    name_b = b.path if isinstance(b, ScoredUtterances) else "B"
    if len(ids) != len(ca) or len(ids) != len(cb):
        raise GraftError(f"{name_a} and {name_b} score different utterances ({len(ca)} and {len(cb)}, "
                         f"{len(ids)} in common): not the same test set")
    bad = [u for u in ids if ca[u][1] != cb[u][1]]
    if bad:
        raise GraftError(f"{name_a} and {name_b} disagree on the reference length of {len(bad)} utterances "
                         f"(e.g. {bad[0]}: {ca[bad[0]][1]} vs {cb[bad[0]][1]} words): not the same references")
    return paired_bootstrap([ca[u][0] for u in ids], [cb[u][0] for u in ids], [ca[u][1] for u in ids],
                            n=n, seed=seed, level=level)
