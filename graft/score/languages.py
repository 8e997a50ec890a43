"""WER per language of a model scored on mixed-language sets (a multilingual source's dev and
test, and further test sets such as test_unseen): its per-utterance errors at the dev-chosen LM
weight and penalty, split by a regular expression over utterance ids whose first group names
the language.

    rows = language_rows(exps, ["greedy", "ctc-hlg"], r"^([a-z]+)-")   # "en-espeak-f1-..." -> en
    print(languages_markdown(rows))

A model whose dev and test utterances all fall in one language (or match nothing) gets no rows.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from graft.score.bootstrap import scored_utterances
from graft.utils.errors import GraftError
from graft.utils.logging import get_logger

log = get_logger(__name__)


def compile_language_pattern(pattern: str) -> re.Pattern:
    """The regex of `--language-of`, checked: it must compile and have one group."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise GraftError(f"--language-of {pattern!r} is not a regular expression ({e})") from None
    if rx.groups != 1:
        raise GraftError(f"--language-of {pattern!r} needs exactly one group (the language), e.g. '^([a-z]+)-'")
    return rx


def split_by_language(counts: dict[str, tuple[int, int]], rx: re.Pattern) -> dict[str, tuple[int, int, int]]:
    """utt id -> (errors, ref words) summed per language: language -> (errors, ref words, utterances).
    Utterances the pattern does not match are left out."""
    out: dict[str, list[int]] = {}
    for utt, (err, ref) in counts.items():
        m = rx.search(utt)
        if not m:
            continue
        acc = out.setdefault(m.group(1), [0, 0, 0])
        acc[0] += err
        acc[1] += ref
        acc[2] += 1
    return {k: (v[0], v[1], v[2]) for k, v in sorted(out.items())}


def _wer(errors: int, ref: int) -> float | None:
    return 100.0 * errors / ref if ref else None


def _scored_sets(sel: dict) -> list[tuple[str, str]]:
    """(kind, set name) of dev, test and the further test sets (test_unseen) a selection scored."""
    out = [(kind, sel[f"{kind}_set"]) for kind in ("dev", "test") if sel.get(f"{kind}_set")]
    return out + [(name, name) for name in sel.get("other_tests") or {}]


def language_rows(exps: Sequence[Any], methods: Sequence[str], pattern: str) -> list[dict]:
    """One row per (experiment, method, language) of models scored on more than one language:
    dicts with label, method, language, dev_wer, dev_utts, test_wer, test_utts (WERs in %) and
    others: {test set: (WER or None, utterances)} for the further test sets scored (test_unseen),
    which may hold only some of the languages."""
    rx = compile_language_pattern(pattern)
    rows: list[dict] = []
    for e in exps:
        for m in methods:
            sel = e.selection(m)
            if sel is None:
                continue
            split: dict[str, dict[str, tuple[int, int, int]]] = {}
            for kind, name in _scored_sets(sel):  # each set at the pair its selection records
                try:
                    split[kind] = split_by_language(scored_utterances(e.decode_root, m, name).counts, rx)
                except GraftError as err:
                    log.info("no per-language %s WER for %s, %s: %s", kind, e.label, m, err)
            langs = sorted({lang for kind in ("dev", "test") for lang in split.get(kind, {})})
            if len(langs) < 2:
                continue
            for lang in langs:
                dev = split.get("dev", {}).get(lang, (0, 0, 0))
                test = split.get("test", {}).get(lang, (0, 0, 0))
                others = {}
                for kind, by_lang in split.items():
                    if kind not in ("dev", "test"):
                        err, ref, utts = by_lang.get(lang, (0, 0, 0))
                        others[kind] = (_wer(err, ref), utts)
                rows.append({"label": e.label, "method": m, "language": lang,
                             "dev_wer": _wer(dev[0], dev[1]), "dev_utts": dev[2],
                             "test_wer": _wer(test[0], test[1]), "test_utts": test[2], "others": others})
    return rows


def languages_markdown(rows: Sequence[dict]) -> str:
    """`## Per language` with one table of every row ("" when there are none)."""
    if not rows:
        return ""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    others = list(dict.fromkeys(name for r in rows for name in r.get("others", {})))
    head = "| model | method | language | dev WER | dev utterances | test WER | test utterances |"
    rule = "|---|---|---|---:|---:|---:|---:|"
    for name in others:
        head += f" {name} WER | {name} utterances | {name} / test |"
        rule += "---:|---:|---:|"
    out = ["## Per language", "",
           "Models scored on sets of several languages (a multilingual source), split by language: "
           "the same hypotheses at the same dev-chosen LM weight and penalty as the tables above, "
           "errors summed over each language's utterances"
           + (" ('-': the language has no utterance in that set)." if others else "."), "", head, rule]
    for r in rows:
        line = (f"| {r['label']} | {r['method']} | {r['language']} | {f(r['dev_wer'])} | {r['dev_utts']} | "
                f"{f(r['test_wer'])} | {r['test_utts']} |")
        for name in others:
            wer, utts = r.get("others", {}).get(name, (None, 0))
            ratio = "-" if wer is None or not r["test_wer"] else f"{wer / r['test_wer']:.2f}x"
            line += f" {f(wer)} | {utts} | {ratio} |"
        out.append(line)
    out.append("")
    return "\n".join(out)
