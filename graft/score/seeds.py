"""Models trained with several seeds: each run's test WER, the seed mean and spread, and the
paired bootstrap of the difference of two variants' seed means over the test utterances.

Why: a paired bootstrap between two single trainings holds the test set's sampling noise only;
a second seed of the demo's Czech transfer moved its WER by 1-5 points. Here each utterance's
errors are summed over a variant's runs before the bootstrap, so the difference is between seed
means (training noise shrinks with the number of runs; the runs' spread shows what is left).

In a report, the runs of a model are the first experiment of its group at a size (seed 0) and
every experiment of the group `<group>_seed` at that size (steps/grid.py's `seeds: N` lines).

Usage:
    runs_a = [scored_utterances(d, "ctc-hlg") for d in ("exp/a/decode...", "exp/a_seed1/decode...")]
    result = compare_seed_means(runs_a, runs_b)        # BootstrapResult: wer_a, wer_b are the seed means
    rows = seed_rows(exps, ["greedy", "ctc-hlg"])       # graft.score.report.Experiment list
    text = seeds_markdown(rows)
"""
from __future__ import annotations

import statistics
from typing import Sequence

from graft.score.bootstrap import BootstrapResult, ScoredUtterances, compare, scored_utterances
from graft.score.report import Experiment, _mins
from graft.utils.errors import GraftError
from graft.utils.logging import get_logger

log = get_logger(__name__)

SEED_SUFFIX = "_seed"                         # group of the extra runs: "<group>_seed"
SEED_PAIRINGS = (("transfer", "scratch"),)    # seed means compared, A vs B


def pooled_counts(runs: Sequence[ScoredUtterances]) -> dict[str, tuple[int, int]]:
    """Per utterance: (errors summed over the runs, reference words); the runs must score the
    same utterances with the same references."""
    if not runs:
        raise GraftError("no runs to pool")
    first = runs[0].counts
    for r in runs[1:]:
        if set(r.counts) != set(first) or any(r.counts[u][1] != first[u][1] for u in first):
            raise GraftError(f"{r.path} and {runs[0].path} score different utterances or references: "
                             f"not the same set")
    return {u: (sum(r.counts[u][0] for r in runs), first[u][1]) for u in first}


def on_one_scale(a: dict[str, tuple[int, int]], ka: int, b: dict[str, tuple[int, int]], kb: int
                 ) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Summed counts of ka and kb runs on one integer scale (as the bootstrap counts them): errors
    x the other side's run count, references x both; each side's WER is then its seed mean."""
    return ({u: (e * kb, r * ka * kb) for u, (e, r) in a.items()},
            {u: (e * ka, r * ka * kb) for u, (e, r) in b.items()})


def compare_seed_means(runs_a: Sequence[ScoredUtterances], runs_b: Sequence[ScoredUtterances],
                       n: int = 1000, seed: int = 0, level: float = 0.95) -> BootstrapResult:
    """Paired bootstrap of mean WER(A runs) - mean WER(B runs) over the utterances."""
    a, b = on_one_scale(pooled_counts(runs_a), len(runs_a), pooled_counts(runs_b), len(runs_b))
    return compare(a, b, n=n, seed=seed, level=level)


def seed_runs(exps: Sequence[Experiment], group: str) -> dict[float | None, list[Experiment]]:
    """Per training size: the runs of `group`'s main model (its first experiment at that size,
    then the `<group>_seed` ones), only where there is more than one."""
    out: dict[float | None, list[Experiment]] = {}
    for e in exps:
        if e.group == group and e.minutes not in out:
            extra = [x for x in exps if x.group == group + SEED_SUFFIX and x.minutes == e.minutes]
            if extra:
                out[e.minutes] = [e, *extra]
    return out


def _scored_runs(runs: Sequence[Experiment], method: str) -> list[ScoredUtterances] | None:
    scored = []
    for e in runs:
        try:
            scored.append(scored_utterances(e.decode_root, method))
        except GraftError as err:
            log.info("seed runs of %s, %s: %s has no test errors (%s): left out", runs[0].label, method, e.label, err)
            return None
    return scored


def seed_rows(exps: Sequence[Experiment], methods: Sequence[str], n: int = 1000, seed: int = 0, level: float = 0.95,
              pairings: Sequence[tuple[str, str]] = SEED_PAIRINGS) -> list[dict]:
    """Rows of the seeds section: kind "runs" (group, minutes, method, labels, each run's test WER,
    mean, sd) for every group with several runs at a size, and kind "A vs B" (the seed means
    compared: result = BootstrapResult) for each pairing where both sides have several runs."""
    rows: list[dict] = []
    groups = list(dict.fromkeys(e.group for e in exps if not e.group.endswith(SEED_SUFFIX)))
    runs_of = {g: seed_runs(exps, g) for g in groups}
    scored: dict[tuple[str, float | None, str], list[ScoredUtterances] | None] = {}
    for g in groups:
        for mins, runs in runs_of[g].items():
            for m in methods:
                s = scored[(g, mins, m)] = _scored_runs(runs, m)
                if s is None:
                    continue
                wers = [r.wer for r in s]
                rows.append({"kind": "runs", "group": g, "minutes": mins, "method": m,
                             "labels": [e.label for e in runs], "wers": wers, "mean": statistics.fmean(wers),
                             "sd": statistics.stdev(wers)})
    for ga, gb in pairings:
        for mins in runs_of.get(ga, {}):
            if mins not in runs_of.get(gb, {}):
                continue
            for m in methods:
                a, b = scored.get((ga, mins, m)), scored.get((gb, mins, m))
                if not a or not b:
                    continue
                try:
                    r = compare_seed_means(a, b, n=n, seed=seed, level=level)
                except GraftError as err:
                    log.warning("seed-mean comparison skipped: %s", err)
                    continue
                rows.append({"kind": f"{ga} vs {gb}", "minutes": mins, "method": m, "runs_a": len(a),
                             "runs_b": len(b), "result": r})
    return rows


def seeds_markdown(rows: Sequence[dict], digits: int = 2) -> str:
    """`## Training seeds`: the runs table and the seed-mean differences ("" without rows)."""
    runs = [r for r in rows if r["kind"] == "runs"]
    if not runs:
        return ""
    out = ["## Training seeds", "",
           "The main models trained again with other seeds (`seeds` in the grid; initialization, batch "
           "order and dropout change): test WER of each run at its own dev-chosen LM weight, their mean "
           "and standard deviation. The paired bootstrap intervals elsewhere in this file hold the test "
           "set's noise only; this table shows the training noise beside them.", "",
           "| model | train min | method | runs | test WER per run | mean | sd |",
           "|---|---:|---|---:|---|---:|---:|"]
    for r in runs:
        out.append(f"| {r['labels'][0]} | {_mins(r['minutes'])} | {r['method']} | {len(r['wers'])} | "
                   + " / ".join(f"{w:.{digits}f}" for w in r["wers"]) + f" | {r['mean']:.{digits}f} | {r['sd']:.{digits}f} |")
    diffs = [r for r in rows if r["kind"] != "runs"]
    if diffs:
        level = f"{100 * diffs[0]['result'].level:g} %"
        out += ["", f"Seed means compared: per utterance the errors are summed over each side's runs, then the "
                    f"paired bootstrap ({diffs[0]['result'].n} resamples) gives the difference of the means with "
                    f"its {level} interval (negative: the first has fewer errors).", "",
                "| comparison | train min | method | runs | mean WER | mean WER, against "
                f"| difference [{level} CI] | P(better) |",
                "|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in diffs:
            res = r["result"]
            out.append(f"| {r['kind']} | {_mins(r['minutes'])} | {r['method']} | {r['runs_a']} vs {r['runs_b']} | "
                       f"{res.wer_a:.{digits}f} | {res.wer_b:.{digits}f} | {res.format(digits)} | {res.p_better:.3f} |")
    out.append("")
    return "\n".join(out)
