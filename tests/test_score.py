"""Scoring: WER/CER counts, Kaldi-style files, weight choice on dev, steps/score.py, no model loaded.

Usage:
    .venv/bin/python -m pytest -q tests/test_score.py
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldifst
import pytest

from graft.decode.nbest_rescore import NbestEntry, NbestHyp, write_nbest
from graft.score.kaldi_files import errors_text, per_utt_text, wer_file_text
from graft.score.run import ScoreConfig, score_method
from graft.data.kaldi_text import read_text, write_text
from graft.score.weights import parse_weights, weight_label
from graft.score.wer import align, edit_counts, score_utterances
from graft.utils.errors import GraftError

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
WORDS = {"<eps>": 0, "a": 1, "b": 2, "c": 3, "d": 4, "#0": 5, "<s>": 6, "</s>": 7}
ARPA = """\\data\\
ngram 1=6
ngram 2=2

\\1-grams:
-1.0 </s>
-99 <s> -0.5
-0.5 a -0.3
-0.7 b -0.2
-0.9 c -0.1
-1.2 d -0.1

\\2-grams:
-0.2 <s> a
-0.3 a b

\\end\\
"""


def test_wer_counts_match_a_hand_count() -> None:
    ref = "a b c d e".split()
    hyp = "a x c e f".split()  # b->x substituted, d deleted, f inserted
    d = score_utterances({"u1": ref}, {"u1": hyp})
    c = d.counts
    assert (c.ins, c.dels, c.subs, c.ref_len) == (1, 1, 1, 5)
    assert c.kaldi_line() == "%WER 60.00 [ 3 / 5, 1 ins, 1 del, 1 sub ]"
    assert edit_counts(ref, hyp)["total"] == 3
    assert align(["a", "b"], ["a"]) == [("a", "a"), ("b", None)]
    # a second utterance, one missing hypothesis, one extra hypothesis (ignored)
    refs = {"u1": ref, "u2": ["g", "h"], "u3": ["k"]}
    hyps = {"u1": hyp, "u2": ["g", "h"], "zz": ["q"]}
    c = score_utterances(refs, hyps).counts
    assert (c.errors, c.ref_len, c.dels, c.sentences, c.sentence_errors, c.missing) == (4, 8, 2, 3, 2, 1)
    assert c.kaldi_line() == "%WER 50.00 [ 4 / 8, 1 ins, 2 del, 1 sub ]"
    assert wer_file_text(c).splitlines() == [
        "%WER 50.00 [ 4 / 8, 1 ins, 2 del, 1 sub ]", "%SER 66.67 [ 2 / 3 ]", "Scored 3 sentences, 1 not present in hyp."]
    # CER counts characters with the spaces: "ab cd" -> "abcd" is one deletion in 5
    cer = score_utterances({"u": ["ab", "cd"]}, {"u": ["abcd"]}, unit="char").counts
    assert cer.kaldi_line("CER") == "%CER 20.00 [ 1 / 5, 0 ins, 1 del, 0 sub ]"


def test_per_utt_and_errors_files() -> None:
    d = score_utterances({"u1": "a b c d e".split(), "u2": "a b".split()}, {"u1": "a x c e f".split(), "u2": "a x".split()})
    lines = per_utt_text(d.alignments).splitlines()
    assert lines[0].split() == ["u1", "ref", "a", "b", "c", "d", "e", "***"]
    assert lines[1].split() == ["u1", "hyp", "a", "x", "c", "***", "e", "f"]
    assert lines[2].split() == ["u1", "op", "C", "S", "C", "D", "C", "I"]
    assert lines[3] == "u1 #csid 3 1 1 1"
    # columns line up
    assert lines[0].index("d") == lines[1].index("***") == lines[2].index("D")
    text = errors_text(d)
    assert "      2  b -> x" in text and "      1  d" in text and "      1  f" in text


def test_weights_parse_and_label() -> None:
    assert parse_weights("0.1 0.2,0.3", "--lm-weights") == [0.1, 0.2, 0.3]
    assert [weight_label(x) for x in (1, 0.5, -0.0, 0.25, -1.5)] == ["1.0", "0.5", "0.0", "0.25", "-1.5"]
    with pytest.raises(GraftError, match=r"--lm-weights: cannot parse 'x'"):
        parse_weights("0.1 x", "--lm-weights")
    with pytest.raises(GraftError, match="below the minimum"):
        parse_weights("-0.1", "--lm-weights", minimum=0.0)
    with pytest.raises(GraftError, match="empty"):
        parse_weights(" ", "--lm-weights")


def two_path_lattice(path: Path, words_a: list[str], cost_a: tuple[float, float],
                     words_b: list[str], cost_b: tuple[float, float]) -> None:
    """A lattice with two word paths; each path's (graph, acoustic) cost sits on its first arc."""
    W, A = kaldifst.LatticeWeight, kaldifst.LatticeArc
    lat = kaldifst.Lattice()
    start, final = lat.add_state(), lat.add_state()
    lat.start = start
    for words, (g, a) in ((words_a, cost_a), (words_b, cost_b)):
        prev = start
        for i, w in enumerate(words):
            nxt = final if i == len(words) - 1 else lat.add_state()
            lat.add_arc(prev, A(i + 1, WORDS[w], W(g, a) if i == 0 else W(0.0, 0.0), nxt))
            prev = nxt
    lat.set_final(final, W(0.0, 0.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert lat.write(str(path))


def make_decode_root(root: Path) -> tuple[Path, Path]:
    """Decode root with methods ctc-hlg (lattices), beam4 (n-best), greedy (hyp.txt); a lang dir."""
    lang = root / "lang"
    lang.mkdir(parents=True)
    (lang / "words.txt").write_text("".join(f"{w} {i}\n" for w, i in WORDS.items()))
    (lang / "lm.arpa").write_text(ARPA)
    dec = root / "decode"
    # dev: ref "a"; path "a" costs w + 5, path "b c" costs 3w + 4: right for w > 0.5
    # test: ref "b c"; path "a" costs w + 5.5, path "b c" costs 2w + 4.5: right for w < 1
    for set_name, ref, a_cost, bc_cost in (("dev", ["a"], (1.0, 5.0), (3.0, 4.0)),
                                           ("test", ["b", "c"], (1.0, 5.5), (2.0, 4.5))):
        d = dec / "ctc-hlg" / set_name
        two_path_lattice(d / "lats" / "000000.lat", ["a"], a_cost, ["b", "c"], bc_cost)
        (d / "lats" / "lattices.scp").write_text("utt1 000000.lat\n")
        write_text(d / "ref.txt", {"utt1": ref, "utt2": ["d"]})
        two_path_lattice(d / "lats" / "000001.lat", ["d"], (1.0, 1.0), ["c"], (1.0, 3.0))
        with open(d / "lats" / "lattices.scp", "a") as f:
            f.write("utt2 000001.lat\n")
        b = dec / "beam4" / set_name
        write_text(b / "ref.txt", {"utt1": ["a", "b"]})
        write_nbest(b / "nbest.jsonl", [NbestEntry("utt1", [NbestHyp([3], ["c"], -1.0), NbestHyp([1, 2], ["a", "b"], -2.0)])])
        g = dec / "greedy" / set_name
        write_text(g / "ref.txt", {"utt1": ref})
        write_text(g / "hyp.txt", {"utt1": ["a"]})
    return dec, lang


def test_score_method_end_to_end(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    cfg = ScoreConfig(decode_root=dec, method="ctc-hlg", lm_weights=[0.25, 0.75, 1.25], penalties=[0.0, 0.4],
                      lm_dir=lang)
    sel = score_method(cfg)
    assert sel.chosen == (0.75, 0.0)
    assert sel.dev.wer.errors == 0
    assert sel.test is not None and sel.test.wer.errors == 0 and sel.test_pair == (0.75, 0.0)
    assert sel.oracle == (0.25, 0.0)
    scoring = dec / "ctc-hlg" / "dev" / "scoring"
    names = {p.name for p in scoring.iterdir()}
    for kind in ("wer", "cer", "per_utt", "errors"):
        assert {f"{kind}_{w}_{p}" for w in ("0.25", "0.75", "1.25") for p in ("0.0", "0.4")} <= names
    assert "hyp_0.25_0.0.txt" in names and "best_wer" in names and "wer_summary.tsv" in names
    assert read_text(scoring / "hyp_0.25_0.0.txt") == {"utt1": ["b", "c"], "utt2": ["d"]}
    assert (scoring / "wer_0.25_0.0").read_text().splitlines()[0] == "%WER 100.00 [ 2 / 2, 1 ins, 0 del, 1 sub ]"
    assert (scoring / "wer_0.75_0.0").read_text().startswith("%WER 0.00 [ 0 / 2, 0 ins, 0 del, 0 sub ]")
    assert (scoring / "cer_0.75_0.0").read_text().startswith("%CER 0.00 ")
    summary = (dec / "ctc-hlg" / "summary.md").read_text()
    assert "LM weight chosen on dev: **0.75**" in summary and "test at the dev-chosen weight" in summary
    assert "test oracle" in summary and "| 0.75 ← | 0.0 |" in summary
    assert (dec / "ctc-hlg" / "wer_vs_lmwt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((dec / "ctc-hlg" / "selection.json").read_text())
    assert info["chosen_on_dev"] == {"lm_weight": 0.75, "word_ins_penalty": 0.0}
    assert info["kinds"] == {"dev": "lattice", "test": "lattice"}

    # n-best: "c" (am -1, LM cost 2.5 ln 10) vs "a b" (am -2, LM cost 1.7 ln 10): "a b" from w = 0.54
    sel = score_method(ScoreConfig(decode_root=dec, method="beam4", lm_weights=[0.1, 1.0], lm_dir=lang))
    hyp = read_text(dec / "beam4" / "dev" / "scoring" / "hyp_1.0_0.0.txt")
    assert hyp == {"utt1": ["a", "b"]} and sel.chosen == (1.0, 0.0)
    assert read_text(dec / "beam4" / "dev" / "scoring" / "hyp_0.1_0.0.txt") == {"utt1": ["c"]}
    # fixed hypotheses are scored once
    sel = score_method(ScoreConfig(decode_root=dec, method="greedy", lm_weights=[0.1, 0.5]))
    assert sel.chosen == (0.0, 0.0) and sel.test is not None and sel.test.wer.kaldi_line().startswith("%WER 100.00")


def test_failed_run_overwrites_nothing(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    score_method(ScoreConfig(decode_root=dec, method="ctc-hlg", lm_weights=[0.25, 0.75], lm_dir=lang))
    dev_scoring = dec / "ctc-hlg" / "dev" / "scoring"
    before = {p.name: p.read_bytes() for p in dev_scoring.iterdir()}
    summary = (dec / "ctc-hlg" / "summary.md").read_bytes()
    os.unlink(dec / "ctc-hlg" / "test" / "lats" / "000001.lat")
    with pytest.raises(GraftError, match=r"missing.*000001\.lat"):
        score_method(ScoreConfig(decode_root=dec, method="ctc-hlg", lm_weights=[0.5, 1.0], lm_dir=lang))
    assert {p.name: p.read_bytes() for p in dev_scoring.iterdir()} == before
    assert (dec / "ctc-hlg" / "summary.md").read_bytes() == summary
    # a set dir with nothing decoded in it
    (dec / "empty" / "dev").mkdir(parents=True)
    write_text(dec / "empty" / "dev" / "ref.txt", {"u": ["a"]})
    with pytest.raises(GraftError, match=r"no saved lattices.*empty/dev"):
        score_method(ScoreConfig(decode_root=dec, method="empty", lm_weights=[0.5], lm_dir=lang))
    with pytest.raises(GraftError, match=r"missing decode dir .*nothing"):
        score_method(ScoreConfig(decode_root=dec, method="nothing", lm_weights=[0.5], lm_dir=lang))


def run_step(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(REPO / "steps" / "score.py"), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cli_scores_and_reports_bad_input(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    ok = run_step("--decode-root", str(dec), "--methods", "ctc-hlg beam4", "--lm-weights", "0.25 0.75 1.25",
                  "--word-ins-penalties", "0.0", "--lm-dir", str(lang))
    assert ok.returncode == 0, ok.stderr
    assert "ctc-hlg: dev chooses LM weight 0.75, penalty 0.0: %WER 0.00" in ok.stdout
    assert (dec / "beam4" / "summary.md").is_file()
    root_summary = (dec / "summary.md").read_text()
    assert "| [ctc-hlg](ctc-hlg/summary.md) | lattice | 0.75 | 0.0 | 0.00 | 0.00 |" in root_summary
    assert "[beam4](beam4/summary.md)" in root_summary
    bad = run_step("--decode-root", str(dec), "--methods", "ctc-hlg", "--lm-weights", "0.1 abc", "--lm-dir", str(lang))
    assert bad.returncode == 1
    assert bad.stderr.startswith("ERROR: --lm-weights: cannot parse 'abc'") and "Traceback" not in bad.stderr
    missing = run_step("--decode-root", str(dec), "--methods", "ctc-hlg", "--lm-dir", str(tmp_path / "nolang"))
    assert missing.returncode == 1 and "nolang/words.txt" in missing.stderr


def test_scoring_loads_no_model(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    code = (
        "import json, sys\n"
        "from graft.score.run import ScoreConfig, score_method\n"
        f"for m in ('ctc-hlg', 'beam4', 'greedy'):\n"
        f"    score_method(ScoreConfig(decode_root={str(dec)!r}, method=m, lm_weights=[0.5, 1.0],"
        f" penalties=[0.0, 0.5], lm_dir={str(lang)!r}, num_jobs=2))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'graft.model',"
        " 'graft.train', 'graft.decode.search')))))\n"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_report_tables_and_figures(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    for m in ("ctc-hlg", "greedy"):
        score_method(ScoreConfig(decode_root=dec, method=m, lm_weights=[0.0, 0.25, 0.75], lm_dir=lang))
    curve = tmp_path / "exp_src" / "loss.png"
    curve.parent.mkdir()
    curve.write_bytes((dec / "ctc-hlg" / "wer_vs_lmwt.png").read_bytes())
    out = tmp_path / "recipe" / "RESULTS.md"
    out.parent.mkdir()
    args = [PYTHON, str(REPO / "steps" / "report.py"), "--out", str(out), "--methods", "ctc-hlg greedy",
            "--experiment", f"src|source|-|{dec}", "--experiment", f"tiny|transfer|15|{dec}"]
    ok = subprocess.run([*args, "--figure", f"Loss of the source|{curve}"], capture_output=True, text=True,
                        cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    text = out.read_text()
    # ctc-hlg: dev picks 0.75 (0 errors); test at 0.75 is right too; at LM weight 0 test is wrong
    row = next(line for line in text.splitlines() if line.startswith("| tiny | 15 | ctc-hlg"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "0.75" and float(cells[5]) == 0.0 and float(cells[6]) == 0.0   # dev, test WER
    assert "![Loss of the source](RESULTS_exp_src_loss.png)" in text
    assert (out.parent / "RESULTS_exp_src_loss.png").read_bytes() == curve.read_bytes()
    before = out.read_bytes()
    bad = subprocess.run([*args, "--figure", f"gone|{tmp_path / 'none.png'}"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert bad.returncode == 1 and "none.png" in bad.stderr and "Traceback" not in bad.stderr
    assert out.read_bytes() == before


def add_unseen_set(dec: Path) -> None:
    """A test_unseen set beside test: ctc-hlg's utt1 reads "a" (right only for w > 1), greedy's
    utt1 reads "a b" (hypothesis "a": 50 % WER, half of test's 100 %)."""
    src = dec / "ctc-hlg" / "test"
    d = dec / "ctc-hlg" / "test_unseen"
    shutil.copytree(src, d)
    write_text(d / "ref.txt", {"utt1": ["a"], "utt2": ["d"]})
    g = dec / "greedy" / "test_unseen"
    write_text(g / "ref.txt", {"utt1": ["a", "b"]})
    write_text(g / "hyp.txt", {"utt1": ["a"]})


def test_other_test_set_gets_the_dev_chosen_pair(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    add_unseen_set(dec)
    sel = score_method(ScoreConfig(decode_root=dec, method="ctc-hlg", lm_weights=[0.25, 0.75, 1.25],
                                   lm_dir=lang, other_test_sets=("test_unseen",)))
    pair, unseen = sel.others["test_unseen"]
    assert sel.chosen == (0.75, 0.0) and pair == (0.75, 0.0)  # not test_unseen's own best (1.25)
    assert unseen.wer.errors == 2 and unseen.wer.rate == 100.0
    assert (dec / "ctc-hlg" / "test_unseen" / "scoring" / "wer_1.25_0.0").read_text().startswith("%WER 0.00")
    info = json.loads((dec / "ctc-hlg" / "selection.json").read_text())
    assert info["other_tests"]["test_unseen"]["pair"] == {"lm_weight": 0.75, "word_ins_penalty": 0.0}
    assert info["other_tests"]["test_unseen"]["wer_ratio_to_test"] is None  # test WER is 0
    assert info["kinds"] == {"dev": "lattice", "test": "lattice", "test_unseen": "lattice"}
    summary = (dec / "ctc-hlg" / "summary.md").read_text()
    assert "**test_unseen at the dev-chosen weight** (0.75, 0.0): `%WER 100.00" in summary
    assert "| test_unseen WER | test_unseen CER |" in summary

    sel = score_method(ScoreConfig(decode_root=dec, method="greedy", lm_weights=[0.5],
                                   other_test_sets=("test_unseen",)))
    assert sel.others["test_unseen"][1].wer.rate == 50.0 and sel.test.wer.rate == 100.0
    summary = (dec / "greedy" / "summary.md").read_text()
    assert "test_unseen / test WER: **0.50x**" in summary
    root = (dec / "summary.md").read_text()
    assert "| test_unseen WER | test_unseen / test |" in root
    assert "| [greedy](greedy/summary.md) | hyp | 0.0 | 0.0 | 0.00 | 100.00 | 100.00 | 50.00 | 0.50x |" in root


def test_cli_test_sets_and_report_columns(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    add_unseen_set(dec)
    ok = run_step("--decode-root", str(dec), "--methods", "greedy ctc-hlg", "--lm-weights", "0.25 0.75 1.25",
                  "--word-ins-penalties", "0.0", "--lm-dir", str(lang), "--test-sets", "test test_unseen")
    assert ok.returncode == 0, ok.stderr
    assert "greedy: dev chooses LM weight 0.0, penalty 0.0: %WER 0.00" in ok.stdout
    assert "; test_unseen there: %WER 50.00" in ok.stdout
    out = tmp_path / "RESULTS.md"
    rep = subprocess.run([PYTHON, str(REPO / "steps" / "report.py"), "--out", str(out), "--methods", "greedy ctc-hlg",
                          "--experiment", f"src|source|-|{dec}"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert rep.returncode == 0, rep.stderr
    text = out.read_text()
    assert "| test_unseen WER | test_unseen / test |" in text
    row = next(line for line in text.splitlines() if line.startswith("| src | - | greedy"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2:] == ["50.00", "0.50x"]


def test_without_other_test_sets_nothing_changes(tmp_path: Path) -> None:
    dec, lang = make_decode_root(tmp_path)
    add_unseen_set(dec)  # decoded, but not asked for: scored as before
    sel = score_method(ScoreConfig(decode_root=dec, method="greedy", lm_weights=[0.5]))
    assert sel.others == {}
    info = json.loads((dec / "greedy" / "selection.json").read_text())
    assert "other_tests" not in info and set(info["kinds"]) == {"dev", "test"}
    assert "test_unseen" not in (dec / "greedy" / "summary.md").read_text()
    assert "test_unseen" not in (dec / "summary.md").read_text()
    assert not (dec / "greedy" / "test_unseen" / "scoring").exists()
