"""utils/new_recipe.sh: a new corpus from a folder of audio + a transcript table is a recipe
and an adapter made from utils/templates/; the recipe runs stages 0-7 (tiny model), and a
transcript fixed afterwards reaches the training cuts when stages 0-2 run again."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from lhotse import load_manifest

from corpus_fixtures import graft_tree, make_folder, run_recipe


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path, Path]:
    corpus = tmp_path_factory.mktemp("mycorpus")
    audio, table = make_folder(corpus)
    root = graft_tree(tmp_path_factory.mktemp("graft"))
    p = subprocess.run(["bash", str(root / "utils/new_recipe.sh"), "--audio-dir", str(audio),
                        "--transcripts", str(table), "--lang", "en", "mycorpus"],
                       capture_output=True, text=True, check=True)
    assert "made" in p.stdout
    return root, audio, table


def _new_recipe(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "utils/new_recipe.sh"), *args], capture_output=True, text=True)


def test_new_recipe_makes_two_files_from_the_templates(made):
    root, audio, table = made
    run_sh, adapter = root / "egs/mycorpus/ASR/run.sh", root / "local/mycorpus.py"
    text = run_sh.read_text()
    assert f"audio_dir={audio} " in text and f"transcripts={table} " in text and "corpus=mycorpus " in text
    assert "@" not in text.replace("$@", "") and "@" not in adapter.read_text()
    assert run_sh.stat().st_mode & 0o111 and adapter.stat().st_mode & 0o111
    help_text = subprocess.run(["bash", str(run_sh), "--help"], capture_output=True, text=True).stdout
    assert "--audio-dir" in help_text and "--dev-fraction" in help_text


def test_new_recipe_refuses_to_overwrite_or_a_bad_name(made):
    root, _, _ = made
    before = (root / "local/mycorpus.py").read_text()
    p = _new_recipe(root, "mycorpus")
    assert p.returncode == 1 and "exists: not overwriting" in p.stderr
    assert (root / "local/mycorpus.py").read_text() == before
    p = _new_recipe(root, "My-Corpus")
    assert p.returncode == 1 and "lowercase letters" in p.stderr
    p = _new_recipe(root, "folder")  # the shared adapter module's name
    assert p.returncode == 1 and "not overwriting" in p.stderr


OPTS = ["--nj", 1, "--vocab-size", 40, "--train-subsets", "0.1", "--model-conf", "tiny", "--num-epochs", 1,
        "--max-duration", 30, "--decode-methods", "greedy ctc-hlg"]


def test_new_recipe_runs_stages_0_to_7(made):
    root, _, _ = made
    r = run_recipe(root, "mycorpus", *OPTS)
    assert "stage 5 skipped: no source model" in r.stderr
    recipe = root / "egs/mycorpus/ASR"
    corpus = json.loads((recipe / "data/corpus/en/report.json").read_text())
    assert corpus["utterances"] == {"train": 12, "dev": 2, "test": 2}
    assert corpus["skipped"] == {"missing audio (transcript without audio)": 1,
                                 "audio without transcript": 1, "unreadable audio": 1}
    manifests = json.loads((recipe / "data/manifests/en/report.json").read_text())
    assert manifests["resampled"] == 4 and "train_0.1m" in manifests["train_subsets"]
    assert all(c.sampling_rate == 16000 for c in load_manifest(recipe / "data/fbank/en/cuts_train.jsonl.gz"))
    assert (recipe / "data/lang/en_bpe40/lang.json").exists()
    assert (recipe / "exp/en_tiny/epoch-1.pt").exists()
    assert (recipe / "exp/en_tiny/decode_epoch1_avg1/ctc-hlg/test/scoring/best_wer").is_file()
    assert "| en_tiny | - | greedy |" in (recipe / "RESULTS.md").read_text()


def test_fixed_transcript_reaches_the_training_cuts(made):
    root, _, table = made
    recipe = root / "egs/mycorpus/ASR"
    text = table.read_text(encoding="utf-8")
    assert "The cat sat on the mat." in text
    table.write_text(text.replace("The cat sat on the mat.", "The cat sat on the hat."), encoding="utf-8")
    try:
        r = run_recipe(root, "mycorpus", *OPTS, "--stop-stage", 2)
        assert "'stage0_mycorpus_download' runs again:" in r.stderr and "transcripts.tsv changed" in r.stderr
        assert "'stage1_manifests_en' runs again:" in r.stderr and "'stage2_fbank_en' runs again:" in r.stderr
        texts = {c.supervisions[0].text for c in load_manifest(recipe / "data/fbank/en/cuts_train.jsonl.gz")}
        texts |= {c.supervisions[0].text for c in load_manifest(recipe / "data/fbank/en/cuts_dev.jsonl.gz")}
        texts |= {c.supervisions[0].text for c in load_manifest(recipe / "data/fbank/en/cuts_test.jsonl.gz")}
        assert "the cat sat on the hat" in texts and "the cat sat on the mat" not in texts
    finally:
        table.write_text(text, encoding="utf-8")
