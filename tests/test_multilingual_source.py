"""A multilingual source through the commands bench/source_language.sh runs: a tiny English +
Polish corpus, stages 1-2 per language, steps/combine_languages.py, then stage 3 on the combined
language.

Usage: .venv/bin/python -m pytest -q tests/test_multilingual_source.py
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus_fixtures import graft_tree, run_recipe
from lhotse import load_manifest

ROOT = Path(__file__).resolve().parents[1]


def _run(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """A recipe dir with stages 0-2 done for English and Polish (tiny)."""
    d = tmp_path_factory.mktemp("multi")
    _run(d, str(ROOT / "local/demo.py"), "download", "--dl-dir", "data/corpus", "--languages", "en", "pl",
         "--jobs", "1", "--en-train-minutes", "0.4", "--en-dev-minutes", "0.2", "--en-test-minutes", "0.2",
         "--en-unseen-minutes", "0.2", "--pl-train-minutes", "0.4", "--pl-dev-minutes", "0.2",
         "--pl-test-minutes", "0.2")
    for lang in ("en", "pl"):
        _run(d, str(ROOT / "local/demo.py"), "prepare", "--dl-dir", "data/corpus", "--language", lang,
             "--out-dir", f"data/manifests/{lang}", "--train-subsets", "", "--seed", "0")
        splits = "train dev test test_unseen" if lang == "en" else "train dev test"  # English holds voices out
        _run(d, str(ROOT / "steps/compute_fbank.py"), "--manifest-dir", f"data/manifests/{lang}",
             "--out-dir", f"data/fbank/{lang}", "--splits", splits, "--jobs", "1")
    return d


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_combined_language_holds_both_and_stage_3_builds_on_it(recipe, monkeypatch):
    _run(recipe, str(ROOT / "steps/combine_languages.py"), "--languages", "en", "pl", "--name", "en_pl")
    report = json.loads((recipe / "data/fbank/en_pl/report.json").read_text())
    assert report["languages"] == ["en", "pl"] and sorted(report["splits"]) == ["dev", "test", "test_unseen", "train"]
    # test_unseen: the held-out voices of the languages that have them (English here), not dropped
    unseen = [c.id for c in load_manifest(recipe / "data/fbank/en/cuts_test_unseen.jsonl.gz")]
    assert unseen and list(report["splits"]["test_unseen"]) == ["en"]
    assert report["splits"]["test_unseen"]["en"]["cuts"] == len(unseen)
    assert sorted(c.id for c in load_manifest(recipe / "data/fbank/en_pl/cuts_test_unseen.jsonl.gz")) == sorted(unseen)
    assert len(load_manifest(recipe / "data/manifests/en_pl/supervisions_test_unseen.jsonl.gz")) == len(unseen)
    for split in ("train", "dev", "test"):
        own = {lang: [c.id for c in load_manifest(recipe / f"data/fbank/{lang}/cuts_{split}.jsonl.gz")]
               for lang in ("en", "pl")}
        combined = [c.id for c in load_manifest(recipe / f"data/fbank/en_pl/cuts_{split}.jsonl.gz")]
        assert sorted(combined) == sorted(own["en"] + own["pl"])
        assert {lang: v["cuts"] for lang, v in report["splits"][split].items()} == {k: len(v) for k, v in own.items()}
        sups = load_manifest(recipe / f"data/manifests/en_pl/supervisions_{split}.jsonl.gz")
        assert sorted(s.language for s in sups) == sorted(["en"] * len(own["en"]) + ["pl"] * len(own["pl"]))
    train = list(load_manifest(recipe / "data/fbank/en_pl/cuts_train.jsonl.gz"))
    first = [c.supervisions[0].language for c in train[: len(train) // 2]]
    assert set(first) == {"en", "pl"}  # shuffled: not one language after the other
    by_lang = {c.supervisions[0].language: c for c in train}
    monkeypatch.chdir(recipe)  # the manifests' paths are relative to the recipe dir, as stage 2 wrote them
    for cut in by_lang.values():  # the features stay where stage 2 wrote them, and load
        assert cut.load_features().shape == (cut.num_frames, 80)
    lm_text = (recipe / "data/manifests/en_pl/lm_text.txt").read_text(encoding="utf-8")
    assert lm_text == ((recipe / "data/corpus/en/lm_text.txt").read_text(encoding="utf-8")
                       + (recipe / "data/corpus/pl/lm_text.txt").read_text(encoding="utf-8"))

    _run(recipe, str(ROOT / "steps/prepare_lang.py"), "--language", "en_pl", "--manifest-dir", "data/manifests/en_pl",
         "--lm-text", "data/manifests/en_pl/lm_text.txt", "--vocab-size", "60", "--lm-order", "2",
         "--out-dir", "data/lang/en_pl_bpe60")
    lang = json.loads((recipe / "data/lang/en_pl_bpe60/lang.json").read_text())
    assert lang["language"] == "en_pl" and lang["vocab_size"] == 60
    words = {line.split()[0] for line in (recipe / "data/lang/en_pl_bpe60/lm_2gram/lexicon.txt").read_text(
        encoding="utf-8").splitlines()}
    en_word = by_lang["en"].supervisions[0].text.split()[0]
    pl_word = by_lang["pl"].supervisions[0].text.split()[0]
    assert en_word in words and pl_word in words


def test_combining_again_keeps_what_did_not_change_and_drops_a_stale_test_unseen(recipe):
    """A re-run writes every file again; those with the same content stay byte for byte (gzip
    headers carry a write time, and the training step's stamp hashes bytes), and a test_unseen no
    language has any more is removed rather than left from the earlier run."""
    combine = [str(ROOT / "steps/combine_languages.py"), "--languages", "en", "pl", "--name", "en_pl"]
    _run(recipe, *combine)
    files = [recipe / "data/fbank/en_pl/cuts_train.jsonl.gz", recipe / "data/manifests/en_pl/cuts_dev.jsonl.gz",
             recipe / "data/fbank/en_pl/cuts_test_unseen.jsonl.gz"]
    before = {f: (_sha(f), f.stat().st_mtime_ns) for f in files}
    time.sleep(1.1)  # a rewrite would carry another gzip time
    _run(recipe, *combine)
    assert {f: (_sha(f), f.stat().st_mtime_ns) for f in files} == before
    held = recipe / "held"
    held.mkdir()
    for d in ("manifests", "fbank"):  # English without its test_unseen, as with --en-unseen-minutes 0
        for f in (recipe / f"data/{d}/en").glob("*_test_unseen.jsonl.gz"):
            f.rename(held / f"{d}-{f.name}")
    try:
        _run(recipe, *combine)
        report = json.loads((recipe / "data/fbank/en_pl/report.json").read_text())
        assert "test_unseen" not in report["splits"]
        assert not list((recipe / "data/fbank/en_pl").glob("*test_unseen*"))
        assert not list((recipe / "data/manifests/en_pl").glob("*test_unseen*"))
        assert _sha(files[0]) == before[files[0]][0]
    finally:
        for f in held.iterdir():
            d, name = f.name.split("-", 1)
            f.rename(recipe / f"data/{d}/en" / name)
        _run(recipe, *combine)


def test_combining_needs_two_languages_with_their_stages_done(recipe):
    one = _run(recipe, str(ROOT / "steps/combine_languages.py"), "--languages", "en", "--name", "x", ok=False)
    assert one.returncode == 1 and "combining needs two or more languages, got en" in one.stderr
    assert "Traceback" not in one.stderr
    missing = _run(recipe, str(ROOT / "steps/combine_languages.py"), "--languages", "en", "cs", "--name", "x", ok=False)
    assert missing.returncode == 1 and "data/manifests/cs/report.json is missing: run stage 1 for cs first" in missing.stderr
    assert not (recipe / "data/fbank/x").exists()
    # a required split one language lacks: an error naming it, not a combined language without it
    test = recipe / "data/manifests/pl/cuts_test.jsonl.gz"
    test.rename(test.with_name("held.jsonl.gz"))
    try:
        lacks = _run(recipe, str(ROOT / "steps/combine_languages.py"), "--languages", "en", "pl", "--name", "y", ok=False)
    finally:
        test.with_name("held.jsonl.gz").rename(test)
    assert lacks.returncode == 1 and "Traceback" not in lacks.stderr
    assert "data/manifests/pl/cuts_test.jsonl.gz is missing: every language needs its test split " \
        "(run stage 1 for pl)" in lacks.stderr
    assert not (recipe / "data/fbank/y").exists()


def test_demo_recipe_trains_and_transfers_from_an_english_polish_source(tmp_path):
    """`./run.sh --source-langs "en pl"`: stage 0 makes Polish in its own step, stage 2 combines the
    two languages, stage 3 builds one lang dir over both, stage 4 trains exp/en_pl_<preset> on both
    and stage 5 transfers from it; a second run skips every step; a language the recipe cannot
    synthesize stops with one line."""
    root = graft_tree(tmp_path / "graft", ["demo"])
    asr = root / "egs/demo/ASR"
    opts = ["--source-langs", "en pl", "--en-train-minutes", 1.5, "--en-dev-minutes", 0.4, "--en-test-minutes", 0.4,
            "--cs-train-minutes", 1.5, "--cs-dev-minutes", 0.4, "--cs-test-minutes", 0.4, "--en-unseen-minutes", 0,
            "--cs-unseen-minutes", 0, "--pl-train-minutes", 0.8, "--pl-dev-minutes", 0.3, "--pl-test-minutes", 0.3,
            "--pl-train-reads", 1, "--extra-lm-text", "none", "--cs-train-subsets", "0.5", "--vocab-size", 60,
            "--model-conf", "tiny", "--num-epochs", 1, "--max-duration", 20,
            "--train-opts", "--ctc-weight 0.2 --warm-steps 5 --spec-augment false --num-buckets 2",
            "--grid-opts", "--sizes 0.5m --budget-minutes 0.5 --speed-perturb false"]
    r = run_recipe(root, "demo", *opts, "--stop-stage", 5, timeout=900)
    assert (asr / "exp/log/stage0_demo_download_pl.log").is_file()    # Polish: a step of its own
    assert json.loads((asr / "data/corpus/pl/report.json").read_text())["utterances"]["train"] > 0
    report = json.loads((asr / "data/fbank/en_pl/report.json").read_text())
    assert report["languages"] == ["en", "pl"]
    lang = json.loads((asr / "data/lang/en_pl_bpe60/lang.json").read_text())
    assert lang["language"] == "en_pl" and (asr / "data/lang/en_pl_bpe60/lm_3gram/HLG.fst").stat().st_size > 0
    assert not (asr / "data/lang/en_bpe60").exists()                  # no English-only lang dir is made
    params = json.loads((asr / "exp/en_pl_tiny/params.json").read_text())
    assert params["train_conf"]["cuts_train"] == "data/fbank/en_pl/cuts_train.jsonl.gz"
    assert (asr / "exp/en_pl_tiny/epoch-1.pt").is_file() and not (asr / "exp/en_tiny").exists()
    # stage 5's transfer starts from the bilingual source (its own lang dir comes with it)
    assert (asr / "exp/cs_transfer_encoder_decoder_0.5m/epoch-1.pt").is_file()
    assert re.search(r"--source-exp exp/en_pl_tiny ", r.stderr)
    again = run_recipe(root, "demo", *opts, "--stop-stage", 5)
    assert "run '" not in again.stderr, again.stderr[-2000:]
    bad = subprocess.run(["bash", str(asr / "run.sh"), "--source-langs", "en de", "--stop-stage", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "ERROR: --source-langs 'en de': this recipe synthesizes en and pl sources " \
        "only (got 'de')" in bad.stderr and "Traceback" not in bad.stderr
