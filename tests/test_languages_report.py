"""WER per language of a model scored on mixed-language dev/test (and test_unseen) sets (graft.score.languages,
`steps/report.py --language-of`), on hand-made greedy hypotheses scored by steps/score.py's code.

Usage:
    .venv/bin/python -m pytest -q tests/test_languages_report.py
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from graft.data.kaldi_text import write_text
from graft.score.languages import language_rows, languages_markdown, split_by_language, compile_language_pattern
from graft.score.report import Experiment
from graft.score.run import ScoreConfig, score_method
from graft.utils.errors import GraftError
from test_bootstrap import PYTHON, REPO, lm_kwargs, make_lang

REF = ["a", "b", "c", "d"]


def greedy_root(root: Path, lang: Path, errors: dict[str, dict[str, int]]) -> Path:
    """A decode root with greedy hypotheses of dev and test: errors[set][utt id] substitutions out of
    4 words, scored (LM weight 0 only: greedy has no LM)."""
    dec = root / "decode"
    for set_name, utts in errors.items():
        g = dec / "greedy" / set_name
        write_text(g / "ref.txt", {u: REF for u in utts})
        write_text(g / "hyp.txt", {u: ["x"] * e + REF[e:] for u, e in utts.items()})
    others = [s for s in errors if s not in ("dev", "test")]
    score_method(ScoreConfig(decode_root=dec, method="greedy", lm_weights=[0.0], other_test_sets=others,
                             **lm_kwargs(lang)))
    return dec


def mixed(tmp_path: Path) -> Experiment:
    """en: dev 1 error of 8 words, test 2 of 12; pl: dev 4 of 4, test 3 of 8."""
    dec = greedy_root(tmp_path / "mixed", make_lang(tmp_path), {
        "dev": {"en-espeak-f1-000": 1, "en-flite-m2-001": 0, "pl-espeak-m1-002": 4},
        "test": {"en-espeak-f1-003": 0, "en-espeak-f1-004": 2, "en-flite-m2-005": 0,
                 "pl-espeak-m1-006": 1, "pl-espeak-m3-007": 2}})
    return Experiment("en_pl_small", "trained", None, dec)


def test_rows_split_the_errors_by_the_language_of_each_utterance(tmp_path: Path) -> None:
    rows = language_rows([mixed(tmp_path)], ["greedy", "ctc-hlg"], r"^([a-z]+)-")  # ctc-hlg: not scored, no rows
    assert [(r["language"], r["dev_utts"], r["test_utts"]) for r in rows] == [("en", 2, 3), ("pl", 1, 2)]
    assert rows[0]["dev_wer"] == pytest.approx(100 * 1 / 8) and rows[0]["test_wer"] == pytest.approx(100 * 2 / 12)
    assert rows[1]["dev_wer"] == pytest.approx(100.0) and rows[1]["test_wer"] == pytest.approx(100 * 3 / 8)
    md = languages_markdown(rows)
    assert "| en_pl_small | greedy | en | 12.50 | 2 | 16.67 | 3 |" in md
    assert "| en_pl_small | greedy | pl | 100.00 | 1 | 37.50 | 2 |" in md
    assert languages_markdown([]) == ""


def test_a_further_test_set_of_only_some_languages_gets_its_columns(tmp_path: Path) -> None:
    """A source's test_unseen held by English only (the languages that hold voices out): its WER,
    utterances and ratio to test per language, '-' where a language has no utterance in it."""
    dec = greedy_root(tmp_path / "unseen", make_lang(tmp_path), {
        "dev": {"en-espeak-f1-000": 1, "pl-espeak-m1-002": 4},
        "test": {"en-espeak-f1-003": 1, "pl-espeak-m1-006": 1},
        "test_unseen": {"en-festival-m9-008": 2, "en-festival-m9-009": 1}})
    rows = language_rows([Experiment("en_pl_small", "trained", None, dec)], ["greedy"], r"^([a-z]+)-")
    assert [(r["language"], r["others"]) for r in rows] == [
        ("en", {"test_unseen": (pytest.approx(100 * 3 / 8), 2)}), ("pl", {"test_unseen": (None, 0)})]
    md = languages_markdown(rows)
    assert "| test_unseen WER | test_unseen utterances | test_unseen / test |" in md
    assert "| en_pl_small | greedy | en | 25.00 | 1 | 25.00 | 1 | 37.50 | 2 | 1.50x |" in md
    assert "| en_pl_small | greedy | pl | 100.00 | 1 | 25.00 | 1 | - | 0 | - |" in md


def test_a_model_of_one_language_gets_no_rows(tmp_path: Path) -> None:
    dec = greedy_root(tmp_path / "cs", make_lang(tmp_path), {"dev": {"cs-espeak-f1-000": 1},
                                                             "test": {"cs-espeak-f1-001": 0}})
    assert language_rows([Experiment("cs", "transfer", 15, dec)], ["greedy"], r"^([a-z]+)-") == []
    # ids the pattern does not match are left out, not counted as a language
    assert split_by_language({"1089-0001": (1, 4), "en-x": (0, 4)}, compile_language_pattern(r"^([a-z]+)-")) == \
        {"en": (0, 4, 1)}


@pytest.mark.parametrize("pattern, why", [("^([a-z]+", "is not a regular expression"),
                                          ("^[a-z]+-", "needs exactly one group")])
def test_a_bad_pattern_is_one_clear_line(tmp_path: Path, pattern: str, why: str) -> None:
    with pytest.raises(GraftError, match=why):
        compile_language_pattern(pattern)
    p = subprocess.run([PYTHON, str(REPO / "steps/report.py"), "--out", str(tmp_path / "R.md"),
                        "--language-of", pattern], capture_output=True, text=True)
    assert p.returncode == 1 and why in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "R.md").exists()


def test_the_report_has_the_per_language_table(tmp_path: Path) -> None:
    e = mixed(tmp_path)
    out = tmp_path / "RESULTS.md"
    args = [PYTHON, str(REPO / "steps/report.py"), "--out", str(out), "--methods", "greedy", "--bootstrap", "0",
            "--experiment", f"{e.label}|{e.group}|-|{e.decode_root}"]
    p = subprocess.run([*args, "--language-of", "^([a-z]+)-"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "## Per language" in text and "| en_pl_small | greedy | pl | 100.00 | 1 | 37.50 | 2 |" in text
    # the overall row is the pooled one: (1 + 4) / 12 dev, (2 + 3) / 20 test
    assert "| en_pl_small | - | greedy | 0.0 | 0.0 | 41.67 | 25.00 |" in text
    p = subprocess.run(args, capture_output=True, text=True)                     # without the option: no section
    assert p.returncode == 0 and "## Per language" not in out.read_text()
