"""Choose (LM weight, insertion penalty) on dev, apply it to test; summary table in markdown.

The dev choice is the pair with the fewest dev word errors (ties: smaller LM weight, then
smaller penalty). The test WER at that pair is the honest figure; the test oracle (the best
pair chosen on test itself) is reported separately, as an upper bound. Further test sets
(e.g. test_unseen, read by voices no other split has) get the same dev-chosen pair, and their
WER is also given as a ratio to the test WER (`wer_ratio`).

Usage:
    sel = select_weights(dev_scores, test_scores, others={"test_unseen": unseen_scores})
    text = summary_markdown("ctc-hlg", "dev", "test", dev_scores, test_scores, sel,
                            others={"test_unseen": unseen_scores})
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

from graft.score.weights import weight_label
from graft.score.wer import ErrorCounts
from graft.utils.errors import GraftError

Pair = tuple[float, float]


@dataclass
class SetScore:
    """WER and CER counts of one set at one pair."""

    wer: ErrorCounts
    cer: ErrorCounts


@dataclass
class Selection:
    chosen: Pair  # chosen on dev
    dev: SetScore
    test: SetScore | None  # test at the chosen pair
    test_pair: Pair | None  # the pair used on test (the chosen one, or the only one test has)
    oracle: Pair | None  # best pair on test
    oracle_test: SetScore | None
    others: dict[str, tuple[Pair, SetScore]] = field(default_factory=dict)  # set -> (pair used, score)

    def to_json(self) -> dict:
        def pair(p):
            return None if p is None else {"lm_weight": p[0], "word_ins_penalty": p[1]}

        def score(s):
            return None if s is None else {
                "wer": s.wer.rate, "cer": s.cer.rate, "wer_line": s.wer.kaldi_line("WER"),
                "cer_line": s.cer.kaldi_line("CER"), "wer_counts": asdict(s.wer), "cer_counts": asdict(s.cer),
            }

        out = {"chosen_on_dev": pair(self.chosen), "dev": score(self.dev), "test_pair": pair(self.test_pair),
               "test": score(self.test), "test_oracle": pair(self.oracle), "test_oracle_score": score(self.oracle_test)}
        if self.others:  # absent without further test sets: selection.json stays as it was
            out["other_tests"] = {
                name: {"pair": pair(pr), **score(sc),
                       "wer_ratio_to_test": wer_ratio(sc, self.test)}
                for name, (pr, sc) in self.others.items()}
        return out


def _best(scores: Mapping[Pair, SetScore]) -> Pair:
    if not scores:
        raise GraftError("no scores to choose from")
    return min(scores, key=lambda p: (scores[p].wer.errors, p[0], p[1]))


def wer_ratio(other: SetScore | None, test: SetScore | None) -> float | None:
    """other's WER / test's WER, rounded to 3 decimals (None when either is missing or test's is 0)."""
    if other is None or test is None or test.wer.rate == 0:
        return None
    return round(other.wer.rate / test.wer.rate, 3)


def pair_on(chosen: Pair, scores: Mapping[Pair, SetScore], name: str = "test") -> Pair:
    """The pair to report `scores` at: the dev-chosen one, or the only one a set without an LM
    sweep has (hypotheses scored once). GraftError when the chosen pair was not scored."""
    if chosen in scores:
        return chosen
    if len(scores) == 1:
        return next(iter(scores))
    raise GraftError(f"the pair chosen on dev {chosen} was not scored on {name} ({sorted(scores)})")


def select_weights(dev: Mapping[Pair, SetScore], test: Mapping[Pair, SetScore] | None,
                   others: Mapping[str, Mapping[Pair, SetScore]] | None = None) -> Selection:
    """Pick on dev, look up test (and each further test set of `others`) there, and find the
    test oracle."""
    chosen = _best(dev)
    test_pair = oracle = None
    test_score = oracle_score = None
    if test:
        test_pair = pair_on(chosen, test)
        test_score = test[test_pair]
        oracle = _best(test)
        oracle_score = test[oracle]
    chosen_others = {}
    for name, scores in (others or {}).items():
        pr = pair_on(chosen, scores, name)
        chosen_others[name] = (pr, scores[pr])
    return Selection(chosen, dev[chosen], test_score, test_pair, oracle, oracle_score, chosen_others)


def _fmt(s: SetScore | None, attr: str) -> str:
    if s is None:
        return "-"
    return f"{getattr(s, attr).rate:.2f}"


def summary_markdown(
    method: str,
    dev_name: str,
    test_name: str | None,
    dev: Mapping[Pair, SetScore],
    test: Mapping[Pair, SetScore] | None,
    sel: Selection,
    plot_name: str | None = None,
    others: Mapping[str, Mapping[Pair, SetScore]] | None = None,
) -> str:
    """The per-method summary: the choice, its test result (and each further test set's, with
    its ratio to test), the oracle, then the full table."""
    others = others or {}
    w, p = sel.chosen
    lines = [f"# Scoring: {method}", ""]
    lines.append(f"- LM weight chosen on {dev_name}: **{weight_label(w)}**, insertion penalty **{weight_label(p)}**")
    lines.append(f"- {dev_name} at that weight: `{sel.dev.wer.kaldi_line('WER')}` `{sel.dev.cer.kaldi_line('CER')}`")
    if test_name and sel.test is not None and sel.test_pair is not None:
        tw, tp = sel.test_pair
        lines.append(
            f"- **{test_name} at the {dev_name}-chosen weight** ({weight_label(tw)}, {weight_label(tp)}): "
            f"`{sel.test.wer.kaldi_line('WER')}` `{sel.test.cer.kaldi_line('CER')}`"
        )
    for name, (pr, sc) in sel.others.items():
        ratio = wer_ratio(sc, sel.test)
        lines.append(
            f"- **{name} at the {dev_name}-chosen weight** ({weight_label(pr[0])}, {weight_label(pr[1])}): "
            f"`{sc.wer.kaldi_line('WER')}` `{sc.cer.kaldi_line('CER')}`"
            + (f"; {name} / {test_name} WER: **{ratio:.2f}x**" if ratio is not None and test_name else "")
        )
    if test_name and sel.oracle is not None and sel.oracle_test is not None:
        ow, op = sel.oracle
        lines.append(
            f"- {test_name} oracle (best on {test_name} itself, not a fair figure): LM weight {weight_label(ow)}, "
            f"penalty {weight_label(op)}: `{sel.oracle_test.wer.kaldi_line('WER')}`"
        )
    lines += ["", f"| LM weight | ins. penalty | {dev_name} WER | {dev_name} CER |"
              + (f" {test_name} WER | {test_name} CER |" if test_name else "")
              + "".join(f" {name} WER | {name} CER |" for name in others),
              "| ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if test_name else "")
              + " ---: | ---: |" * len(others)]
    pairs = sorted(set(dev) | set(test or {}))
    for pair in pairs:
        mark = " ←" if pair == sel.chosen else ""
        row = f"| {weight_label(pair[0])}{mark} | {weight_label(pair[1])} | {_fmt(dev.get(pair), 'wer')} | {_fmt(dev.get(pair), 'cer')} |"
        if test_name:
            t = (test or {}).get(pair)
            row += f" {_fmt(t, 'wer')} | {_fmt(t, 'cer')} |"
        for scores in others.values():
            o = scores.get(pair)
            row += f" {_fmt(o, 'wer')} | {_fmt(o, 'cer')} |"
        lines.append(row)
    if plot_name:
        lines += ["", f"![WER against LM weight]({plot_name})"]
    return "\n".join(lines) + "\n"
