"""Choose (LM weight, insertion penalty) on dev, apply it to test; summary table in markdown.

The dev choice is the pair with the fewest dev word errors (ties: smaller LM weight, then
smaller penalty). The test WER at that pair is the honest figure; the test oracle (the best
pair chosen on test itself) is reported separately, as an upper bound.

Usage:
    sel = select_weights(dev_scores, test_scores)
    text = summary_markdown("ctc-hlg", "dev", "test", dev_scores, test_scores, sel)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
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

    def to_json(self) -> dict:
        def pair(p):
            return None if p is None else {"lm_weight": p[0], "word_ins_penalty": p[1]}

        def score(s):
            return None if s is None else {
                "wer": s.wer.rate, "cer": s.cer.rate, "wer_line": s.wer.kaldi_line("WER"),
                "cer_line": s.cer.kaldi_line("CER"), "wer_counts": asdict(s.wer), "cer_counts": asdict(s.cer),
            }

        return {"chosen_on_dev": pair(self.chosen), "dev": score(self.dev), "test_pair": pair(self.test_pair),
                "test": score(self.test), "test_oracle": pair(self.oracle), "test_oracle_score": score(self.oracle_test)}


def _best(scores: Mapping[Pair, SetScore]) -> Pair:
    if not scores:
        raise GraftError("no scores to choose from")
    return min(scores, key=lambda p: (scores[p].wer.errors, p[0], p[1]))


def select_weights(dev: Mapping[Pair, SetScore], test: Mapping[Pair, SetScore] | None) -> Selection:
    """Pick on dev, look up test there, and find the test oracle."""
    chosen = _best(dev)
    test_pair = oracle = None
    test_score = oracle_score = None
    if test:
        if chosen in test:
            test_pair = chosen
        elif len(test) == 1:
            test_pair = next(iter(test))
        else:
            raise GraftError(f"the pair chosen on dev {chosen} was not scored on test ({sorted(test)})")
        test_score = test[test_pair]
        oracle = _best(test)
        oracle_score = test[oracle]
    return Selection(chosen, dev[chosen], test_score, test_pair, oracle, oracle_score)


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
) -> str:
    """The per-method summary: the choice, its test result, the oracle, then the full table."""
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
    if test_name and sel.oracle is not None and sel.oracle_test is not None:
        ow, op = sel.oracle
        lines.append(
            f"- {test_name} oracle (best on {test_name} itself, not a fair figure): LM weight {weight_label(ow)}, "
            f"penalty {weight_label(op)}: `{sel.oracle_test.wer.kaldi_line('WER')}`"
        )
    lines += ["", f"| LM weight | ins. penalty | {dev_name} WER | {dev_name} CER |"
              + (f" {test_name} WER | {test_name} CER |" if test_name else ""),
              "| ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if test_name else "")]
    pairs = sorted(set(dev) | set(test or {}))
    for pair in pairs:
        mark = " ←" if pair == sel.chosen else ""
        row = f"| {weight_label(pair[0])}{mark} | {weight_label(pair[1])} | {_fmt(dev.get(pair), 'wer')} | {_fmt(dev.get(pair), 'cer')} |"
        if test_name:
            t = (test or {}).get(pair)
            row += f" {_fmt(t, 'wer')} | {_fmt(t, 'cer')} |"
        lines.append(row)
    if plot_name:
        lines += ["", f"![WER against LM weight]({plot_name})"]
    return "\n".join(lines) + "\n"
