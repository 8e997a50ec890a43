"""Paired bootstrap of WER differences, the per_utt reader, and the comparisons in RESULTS.md.

Usage:
    .venv/bin/python -m pytest -q tests/test_bootstrap.py
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graft.score.bootstrap as bootstrap
from graft.data.kaldi_text import write_text
from graft.score.bootstrap import compare, paired_bootstrap, per_utt_path, scored_utterances
from graft.score.kaldi_files import per_utt_text, read_per_utt
from graft.score.report import Experiment, comparison_rows, comparisons_markdown
from graft.score.run import ScoreConfig, score_method
from graft.score.wer import score_utterances
from graft.utils.errors import GraftError
from test_score import WORDS, two_path_lattice  # the same hand-made lattices

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# --- the bootstrap on hand-made error counts -------------------------------------------------

def test_identical_systems_give_an_interval_around_zero() -> None:
    rng = np.random.default_rng(1)
    refs = rng.integers(3, 15, size=200)
    errs = rng.integers(0, 4, size=200)
    r = paired_bootstrap(errs, errs, refs, n=500, seed=0)
    assert r.delta == 0.0 and r.lo == 0.0 and r.hi == 0.0 and r.p_better == 0.5
    # same total errors, spread differently over the utterances: the interval straddles 0
    other = np.roll(errs, 1)
    r = paired_bootstrap(errs, other, refs, n=500, seed=0)
    assert r.delta == 0.0 and r.lo < 0.0 < r.hi and 0.2 < r.p_better < 0.8
    assert r.utterances == 200 and r.n == 500


def test_better_on_every_utterance_gives_an_interval_below_zero() -> None:
    rng = np.random.default_rng(2)
    refs = rng.integers(3, 15, size=50)
    errs_b = rng.integers(1, 4, size=50)
    errs_a = errs_b - 1  # A makes one error fewer on every utterance
    r = paired_bootstrap(errs_a, errs_b, refs, n=1000, seed=0)
    assert r.delta == pytest.approx(-100.0 * 50 / refs.sum())
    assert r.lo <= r.delta <= r.hi < 0.0 and r.p_better == 1.0
    assert r.wer_a < r.wer_b
    # the other way round: above 0, never better
    r = paired_bootstrap(errs_b, errs_a, refs, n=1000, seed=0)
    assert 0.0 < r.lo <= r.delta <= r.hi and r.p_better == 0.0
    assert r.format().startswith("+")


def test_seeded_and_independent_of_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    refs = rng.integers(1, 10, size=80)
    a, b = rng.integers(0, 5, size=80), rng.integers(0, 5, size=80)
    r1 = paired_bootstrap(a, b, refs, n=300, seed=7)
    assert paired_bootstrap(list(a), list(b), list(refs), n=300, seed=7) == r1
    assert paired_bootstrap(a, b, refs, n=300, seed=8) != r1
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 80 * 7)  # 7 resamples per chunk
    assert paired_bootstrap(a, b, refs, n=300, seed=7) == r1
    # a wider level gives a wider interval around the same point
    r99 = paired_bootstrap(a, b, refs, n=300, seed=7, level=0.99)
    assert r99.lo <= r1.lo and r99.hi >= r1.hi and r99.delta == r1.delta


def test_bad_input_is_a_graft_error() -> None:
    with pytest.raises(GraftError, match="one length"):
        paired_bootstrap([1, 2], [1], [3, 3])
    with pytest.raises(GraftError, match="no utterances"):
        paired_bootstrap([], [], [])
    with pytest.raises(GraftError, match="no words"):
        paired_bootstrap([0], [0], [0])
    with pytest.raises(GraftError, match="at least 1"):
        paired_bootstrap([1], [0], [2], n=0)
    with pytest.raises(GraftError, match="different utterances"):
        compare({"u1": (1, 2), "u2": (0, 1)}, {"u1": (0, 2)})
    with pytest.raises(GraftError, match="reference length"):
        compare({"u1": (1, 2)}, {"u1": (0, 3)})


def test_per_utt_reader_reads_what_the_writer_writes(tmp_path: Path) -> None:
    refs = {"u1": "a b c d e".split(), "u2": "a b".split(), "u3": ["x"], "u4": []}
    hyps = {"u1": "a x c e f".split(), "u2": "a b".split(), "u4": ["y", "z"]}  # u3 has no hypothesis
    detail = score_utterances(refs, hyps)
    path = tmp_path / "per_utt_0.5_0.0"
    path.write_text(per_utt_text(detail.alignments))
    assert read_per_utt(path) == {"u1": (3, 5), "u2": (0, 2), "u3": (1, 1), "u4": (2, 0)}
    assert sum(e for e, _ in read_per_utt(path).values()) == detail.counts.errors
    path.write_text("u1 #csid 1 2 x 0\n")
    with pytest.raises(GraftError, match=r"per_utt_0.5_0.0:1: a #csid line"):
        read_per_utt(path)
    with pytest.raises(GraftError, match="per_utt_9"):
        read_per_utt(tmp_path / "per_utt_9")


# --- scored decode dirs made here ------------------------------------------------------------

# Lattice utterances, every one with the reference "a b", by what they give at LM weight 0 and 1
# (penalty 0; path cost = w * graph + acoustic):
#   "lm":    "a b" (graph 1, ac. 5) vs "c" (3, 4): right only for w > 0.5 (the LM helps): 2 errors at w = 0
#   "right": "a b" (1, 1) vs "c" (1, 3): right at every weight
#   "wrong": "c" (1, 1) vs "d" (2, 3): "c" at every weight: 2 errors
LATTICE_REF = ["a", "b"]
LATTICE_UTTS = {
    "lm": ((["a", "b"], (1.0, 5.0)), (["c"], (3.0, 4.0))),
    "right": ((["a", "b"], (1.0, 1.0)), (["c"], (1.0, 3.0))),
    "wrong": ((["c"], (1.0, 1.0)), (["d"], (2.0, 3.0))),
}


def lm_kwargs(lang: Path) -> dict:
    """The LM/lang dir option of ScoreConfig, whichever name this checkout's ScoreConfig uses."""
    fields = ScoreConfig.__dataclass_fields__
    return {"lm_dir": lang} if "lm_dir" in fields else {"lang_dir": lang}


def make_lang(root: Path) -> Path:
    lang = root / "lang"
    lang.mkdir(parents=True, exist_ok=True)
    (lang / "words.txt").write_text("".join(f"{w} {i}\n" for w, i in WORDS.items()))
    return lang


def make_scored_root(root: Path, lang: Path, test_kinds: list[str], greedy_errors: list[int]) -> Path:
    """A decode root with ctc-hlg (lattices; dev = one "lm" utterance, so dev chooses weight 1.0;
    test = one utterance of each kind in `test_kinds`) and greedy (hyp.txt; test utterance i has
    greedy_errors[i] substitutions out of 3 words), scored at LM weights 0.0 and 1.0."""
    dec = root / "decode"
    for set_name, kinds in (("dev", ["lm"]), ("test", test_kinds)):
        d = dec / "ctc-hlg" / set_name
        refs, scp = {}, []
        for i, kind in enumerate(kinds):
            (wa, ca), (wb, cb) = LATTICE_UTTS[kind]
            two_path_lattice(d / "lats" / f"{i:06d}.lat", wa, ca, wb, cb)
            refs[f"{set_name}{i:03d}"] = LATTICE_REF
            scp.append(f"{set_name}{i:03d} {i:06d}.lat")
        (d / "lats" / "lattices.scp").write_text("\n".join(scp) + "\n")
        write_text(d / "ref.txt", refs)
        g = dec / "greedy" / set_name
        n = 1 if set_name == "dev" else len(greedy_errors)
        errs = [0] if set_name == "dev" else greedy_errors
        write_text(g / "ref.txt", {f"{set_name}{i:03d}": ["a", "b", "c"] for i in range(n)})
        write_text(g / "hyp.txt", {f"{set_name}{i:03d}": ["d"] * errs[i] + ["a", "b", "c"][errs[i]:] for i in range(n)})
    for m in ("ctc-hlg", "greedy"):
        score_method(ScoreConfig(decode_root=dec, method=m, lm_weights=[0.0, 1.0], **lm_kwargs(lang)))
    return dec


def test_reader_at_the_dev_chosen_pair(tmp_path: Path) -> None:
    lang = make_lang(tmp_path)
    dec = make_scored_root(tmp_path / "m", lang, ["lm", "right", "wrong"], [0, 1, 3])
    s = scored_utterances(dec, "ctc-hlg")
    assert (s.set_name, s.lm_weight, s.penalty) == ("test", 1.0, 0.0)
    assert s.path == per_utt_path(dec, "ctc-hlg", "test", 1.0, 0.0) and s.path.is_file()
    assert s.counts == {"test000": (0, 2), "test001": (0, 2), "test002": (2, 2)}
    assert s.wer == pytest.approx(100.0 / 3)
    sel = json.loads((dec / "ctc-hlg" / "selection.json").read_text())
    assert s.wer == pytest.approx(sel["test"]["wer"])
    no_lm = scored_utterances(dec, "ctc-hlg", pair=(0.0, 0.0))
    assert no_lm.counts == {"test000": (2, 2), "test001": (0, 2), "test002": (2, 2)}
    dev = scored_utterances(dec, "ctc-hlg", set_name="dev")
    assert dev.counts == {"dev000": (0, 2)} and dev.lm_weight == 1.0
    # fixed hypotheses: the only pair there is
    g = scored_utterances(dec, "greedy")
    assert (g.lm_weight, g.penalty) == (0.0, 0.0) and g.counts["test002"] == (3, 3)
    # the LM's gain: WER(LM) - WER(no LM) is negative
    r = compare(s, no_lm, n=200)
    assert r.delta == pytest.approx(-100.0 / 3) and r.hi <= 0.0
    with pytest.raises(GraftError, match=r"missing .*beam/selection.json.*stage 7"):
        scored_utterances(dec, "beam")
    with pytest.raises(GraftError, match=r"per_utt_0.5_0.0"):
        scored_utterances(dec, "ctc-hlg", pair=(0.5, 0.0))
    # a further test set (test_unseen) is read at the pair its selection records for it, not the dev's
    shutil.copytree(dec / "ctc-hlg" / "test", dec / "ctc-hlg" / "test_unseen")
    sel["other_tests"] = {"test_unseen": {"pair": {"lm_weight": 0.0, "word_ins_penalty": 0.0}}}
    (dec / "ctc-hlg" / "selection.json").write_text(json.dumps(sel))
    unseen = scored_utterances(dec, "ctc-hlg", set_name="test_unseen")
    assert (unseen.lm_weight, unseen.penalty) == (0.0, 0.0) and unseen.counts == no_lm.counts


# --- the comparisons of RESULTS.md ------------------------------------------------------------

def make_grid(tmp_path: Path) -> dict[str, Path]:
    """Scratch, transfer and one ablation model at 15 min (transfer better than scratch on every
    utterance; the ablation equal to transfer), and a transfer at 30 min with no scratch."""
    lang = make_lang(tmp_path)
    n = 24
    return {
        "scratch": make_scored_root(tmp_path / "scratch", lang, ["wrong"] * n, [3] * n),
        "transfer": make_scored_root(tmp_path / "transfer", lang, ["lm"] * (n // 2) + ["right"] * (n // 2), [1] * n),
        "ablation": make_scored_root(tmp_path / "ablation", lang, ["lm"] * (n // 2) + ["right"] * (n // 2),
                                     [0, 2] * (n // 2)),
        "transfer30": make_scored_root(tmp_path / "transfer30", lang, ["right"] * n, [0] * n),
    }


def test_comparison_rows(tmp_path: Path) -> None:
    roots = make_grid(tmp_path)
    exps = [Experiment("s15", "scratch", 15.0, roots["scratch"]),
            Experiment("t15", "transfer", 15.0, roots["transfer"]),
            Experiment("a15", "ablation", 15.0, roots["ablation"]),
            Experiment("t30", "transfer", 30.0, roots["transfer30"]),
            Experiment("gone", "scratch", 30.0, tmp_path / "not_decoded")]
    rows = comparison_rows(exps, ["greedy", "ctc-hlg"], n=300, seed=0)
    by = {(r["kind"], r["a"], r["b"], r["method"]): r for r in rows}
    # transfer vs scratch at 15 min only (t30 has no decoded scratch partner: skipped)
    t = by[("transfer vs scratch", "t15", "s15", "greedy")]["result"]
    assert t.delta == pytest.approx(100.0 * (1 - 3) / 3) and t.hi < 0 and t.p_better == 1.0
    t = by[("transfer vs scratch", "t15", "s15", "ctc-hlg")]["result"]
    assert t.hi < 0
    assert not any(r["a"] == "t30" and r["kind"] == "transfer vs scratch" for r in rows)
    # ablation vs the main preset: greedy equal in total, spread differently: interval around 0
    a = by[("ablation vs transfer", "a15", "t15", "greedy")]["result"]
    assert a.delta == 0.0 and a.lo < 0 < a.hi
    assert by[("ablation vs transfer", "a15", "t15", "ctc-hlg")]["result"].delta == 0.0
    # LM vs no LM: ctc-hlg only (greedy has no sweep), for every model scored
    lm = [r for r in rows if r["kind"] == "LM vs no LM"]
    assert {r["method"] for r in lm} == {"ctc-hlg"} and {r["a"] for r in lm} == {"s15", "t15", "a15", "t30"}
    t = next(r for r in lm if r["a"] == "t15")
    assert t["pair_a"] == (1.0, 0.0) and t["pair_b"] == (0.0, 0.0)
    assert t["result"].delta == pytest.approx(-50.0) and t["result"].hi < 0
    s = next(r for r in lm if r["a"] == "s15")["result"]
    assert s.delta == 0.0 and s.lo == s.hi == 0.0
    text = comparisons_markdown(rows)
    assert "negative: the first model has fewer errors" in text
    line = next(x for x in text.splitlines() if x.startswith("| t15 | s15 | 15 | greedy"))
    assert "-66.67 [" in line and "| 1.000 |" in line


def test_report_step_keeps_its_command_line_and_adds_comparisons(tmp_path: Path) -> None:
    roots = make_grid(tmp_path)
    out = tmp_path / "recipe" / "RESULTS.md"
    args = [PYTHON, str(REPO / "steps" / "report.py"), "--out", str(out), "--methods", "greedy ctc-hlg",
            "--experiment", f"s15|scratch|15|{roots['scratch']}", "--experiment", f"t15|transfer|15|{roots['transfer']}",
            "--experiment", f"a15|ablation|15|{roots['ablation']}", "--experiment", f"t30|transfer|30|{roots['transfer30']}"]
    ok = subprocess.run([*args, "--bootstrap", "200"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    text = out.read_text()
    assert "### transfer" in text and "| t15 | 15 | greedy |" in text  # the tables as before
    assert "## Differences" in text and "| t15 | s15 | 15 | ctc-hlg |" in text
    assert "| a15 | t15 | 15 | greedy |" in text and "| t30 | 30 | ctc-hlg | 1.0 |" in text
    # --bootstrap 0: the tables only; a group pairing of the user's own
    off = subprocess.run([*args, "--bootstrap", "0"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert off.returncode == 0 and "## Differences" not in out.read_text()
    own = subprocess.run([*args, "--compare", "ablation:scratch", "--no-lm-comparison"], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert own.returncode == 0, own.stderr
    text = out.read_text()
    assert "| a15 | s15 | 15 | greedy |" in text and "| t15 | s15 |" not in text and "LM vs no LM" not in text
    bad = subprocess.run([*args, "--compare", "transfer"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 1 and "--compare" in bad.stderr and "Traceback" not in bad.stderr


def test_seed_means_put_runs_of_two_variants_on_one_scale():
    """graft.score.seeds (bench/compare_seeds.py, the report's seeds): summed errors of 2 and 3
    runs become each variant's seed-mean WER."""
    from graft.score.seeds import on_one_scale as seed_means

    refs = {"u1": 10, "u2": 20, "u3": 5}
    runs_a = [{"u1": 1, "u2": 4, "u3": 0}, {"u1": 3, "u2": 2, "u3": 1}]                    # WER 14.29, 17.14
    runs_b = [{"u1": 2, "u2": 2, "u3": 2}, {"u1": 0, "u2": 6, "u3": 1}, {"u1": 1, "u2": 1, "u3": 0}]
    summed = lambda runs: {u: (sum(r[u] for r in runs), refs[u]) for u in refs}
    a, b = seed_means(summed(runs_a), len(runs_a), summed(runs_b), len(runs_b))
    wer = lambda runs: [100.0 * sum(r.values()) / sum(refs.values()) for r in runs]
    r = compare(a, b, n=200, seed=0)
    assert r.wer_a == pytest.approx(np.mean(wer(runs_a))) and r.wer_b == pytest.approx(np.mean(wer(runs_b)))
    assert r.delta == pytest.approx(np.mean(wer(runs_a)) - np.mean(wer(runs_b)))
    same = compare(*seed_means(summed(runs_a), 2, summed(runs_a), 2), n=200, seed=0)
    assert same.delta == 0 and same.lo == same.hi == 0


def test_compare_seeds_per_group_of_utterances(tmp_path):
    """bench/compare_seeds.py --group-by: the demo's TTS engine from the utterance id, and one row
    per group whose WERs and difference are those of the group's utterances only."""
    import importlib.util
    import re
    from pathlib import Path

    from graft.score.bootstrap import ScoredUtterances

    path = Path(__file__).resolve().parents[1] / "bench" / "compare_seeds.py"
    spec = importlib.util.spec_from_file_location("compare_seeds", path)
    cs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cs)
    pattern = re.compile("^[a-z]+-([a-z]+)-")
    assert cs.utterance_group(pattern, "cs-festival-dita-s1-00012") == "festival"
    assert cs.utterance_group(pattern, "oddname") is None and cs.utterance_group(None, "cs-espeak-m1") is None

    ids = [f"cs-espeak-m1-s1-{i:05d}" for i in range(20)] + [f"cs-festival-dita-s1-{i:05d}" for i in range(20)]
    def run(espeak_errors: int, festival_errors: int) -> ScoredUtterances:
        counts = {u: (espeak_errors if "espeak" in u else festival_errors, 10) for u in ids}
        return ScoredUtterances(tmp_path, "ctc-hlg", "test", 0.5, 0.0, counts, tmp_path / "per_utt")
    a = [run(1, 5), run(2, 6)]   # A: better on espeak (15 %), worse on festival (55 %)
    b = [run(4, 2), run(4, 2)]   # B: 40 % and 20 %
    whole = cs.compare_row("ctc-hlg", "test", a, b)
    assert whole["mean_a"] == pytest.approx(35.0) and whole["mean_b"] == pytest.approx(30.0)
    espeak = cs.compare_row("ctc-hlg", "test: espeak", cs.only(a, pattern, "espeak"), cs.only(b, pattern, "espeak"))
    festival = cs.compare_row("ctc-hlg", "test: festival", cs.only(a, pattern, "festival"), cs.only(b, pattern, "festival"))
    assert espeak["runs_a"] == pytest.approx([10.0, 20.0]) and espeak["mean_b"] == pytest.approx(40.0)
    assert espeak["delta"] == pytest.approx(-25.0) and espeak["hi"] < 0      # A better there
    assert festival["delta"] == pytest.approx(35.0) and festival["lo"] > 0   # B better there
    assert espeak["utterances"] == festival["utterances"] == 20
