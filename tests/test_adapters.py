"""Corpus adapters (local/*.py) and the recipes that use them, on small corpora built here in
each corpus's real layout (tests/corpus_fixtures.py). LibriSpeech, Common Voice and yesno run
stages 0-3 of their recipe (stage 2, fbank, only for Common Voice: its mp3 at 48 kHz is the
case that exercises decoding and resampling; the others would only add start-up time); the
folder adapter's odd cases are checked in-process.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from lhotse import load_manifest

from corpus_fixtures import (ROOT, graft_tree, make_commonvoice, make_folder, make_librispeech,
                             make_yesno, run_recipe)

sys.path.insert(0, str(ROOT / "local"))
import commonvoice  # noqa: E402
import librispeech  # noqa: E402
import yesno  # noqa: E402

from graft.data import adapter  # noqa: E402
from graft.data.corpus import read_transcripts  # noqa: E402
from graft.utils.errors import GraftError  # noqa: E402

CLOSED_URL = "http://127.0.0.1:9"  # nothing listens there: a download fails at once


def _cached(tmp_path_factory, name: str, build) -> Path:
    """Build a corpus once per session under the session's temp dir."""
    d = tmp_path_factory.getbasetemp() / "corpora" / name
    if not (d / ".done").exists():
        shutil.rmtree(d, ignore_errors=True)
        build(d)
        (d / ".done").touch()
    return d


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return graft_tree(tmp_path_factory.mktemp("graft"), recipes=["librispeech", "commonvoice", "yesno"])


# ---- LibriSpeech -----------------------------------------------------------------------------

def test_librispeech_parts_map_onto_splits():
    assert librispeech.parts_of("mini") == {"train": ["train-clean-5"], "dev": ["dev-clean-2"],
                                            "test": ["test-clean"]}
    assert librispeech.parts_of("100", "test-other")["test"] == ["test-other"]
    assert librispeech.parts_of("960")["train"][-1] == "train-other-500"
    with pytest.raises(GraftError, match="unknown LibriSpeech subset"):
        librispeech.parts_of("50")


def test_librispeech_recipe_stages_0_1_3(tmp_path_factory, tree):
    raw = _cached(tmp_path_factory, "librispeech", make_librispeech)
    opts = ["--raw-dir", raw, "--subset", "mini", "--vocab-size", 40, "--nj", 1, "--train-subsets", "0.05"]
    run_recipe(tree, "librispeech", *opts, "--stop-stage", 1)
    run_recipe(tree, "librispeech", *opts, "--stage", 3, "--stop-stage", 3)  # fbank: see the Common Voice test
    recipe = tree / "egs/librispeech/ASR"
    corpus = _json(recipe / "data/corpus/en/report.json")
    assert corpus["utterances"] == {"train": 10, "dev": 2, "test": 3}
    assert corpus["skipped"] == {"missing audio (transcript without audio)": 1}
    assert corpus["source"]["train"] == ["train-clean-5"] and corpus["source"]["dev"] == ["dev-clean-2"]
    cuts = load_manifest(recipe / "data/manifests/en/cuts_train.jsonl.gz")
    texts = {c.supervisions[0].text for c in cuts}
    assert "don't walk on the grass" in texts and all(t == t.lower() for t in texts)
    assert {c.supervisions[0].speaker for c in cuts} == {"19", "26"}
    assert (recipe / "data/manifests/en/cuts_train_0.05m.jsonl.gz").exists()
    assert _json(recipe / "data/lang/en_bpe40/lang.json")["vocab_size"] == 40


# ---- Common Voice ----------------------------------------------------------------------------

def test_commonvoice_recipe_stages_0_to_3(tmp_path_factory, tree):
    raw = _cached(tmp_path_factory, "commonvoice", make_commonvoice)
    run_recipe(tree, "commonvoice", "--raw-dir", raw, "--lang", "cs", "--stop-stage", 3,
               "--vocab-size", 40, "--nj", 1, "--train-subsets", "0.05")
    recipe = tree / "egs/commonvoice/ASR"
    corpus = _json(recipe / "data/corpus/cs/report.json")
    assert corpus["utterances"] == {"train": 6, "dev": 2, "test": 2}
    assert corpus["skipped"] == {"missing audio (transcript without audio)": 1, "text rejected (digits)": 1}
    assert corpus["sample_rates"] == {"48000": 10}
    manifests = _json(recipe / "data/manifests/cs/report.json")
    assert manifests["resampled"] == 10 and "train_0.05m" in manifests["train_subsets"]
    cut = load_manifest(recipe / "data/fbank/cs/cuts_dev.jsonl.gz")[0]
    assert cut.sampling_rate == 16000 and cut.has_features
    texts = {c.supervisions[0].text for c in load_manifest(recipe / "data/manifests/cs/cuts_train.jsonl.gz")}
    assert "dobrý den jak se máte" in texts
    assert (recipe / "data/lang/cs_bpe40/lm_3gram/HLG.fst").exists()


def test_commonvoice_validated_as_train_drops_dev_test_overlap(tmp_path_factory):
    raw = _cached(tmp_path_factory, "commonvoice", make_commonvoice)
    lang_dir = raw / commonvoice.RELEASE / "cs"
    utts, report = commonvoice.commonvoice_utterances(lang_dir, "cs", train_part="validated", jobs=1)
    splits = {s: [u for u in utts if u.split == s] for s in ("train", "dev", "test")}
    assert len(splits["dev"]) == 2 and len(splits["test"]) == 2
    assert len(splits["train"]) == 9  # 6 + the digits row + 2 more clips of train speakers
    held_out = {u.speaker for u in splits["dev"] + splits["test"]}
    assert not held_out & {u.speaker for u in splits["train"]}
    assert report.skipped["validated.tsv: clip of dev/test"] == 4
    assert report.skipped["validated.tsv: speaker of dev/test"] == 1


# ---- yesno -----------------------------------------------------------------------------------

def test_yesno_recipe_stages_0_1_3(tmp_path_factory, tree):
    raw = _cached(tmp_path_factory, "yesno", make_yesno)
    run_recipe(tree, "yesno", "--raw-dir", raw, "--stop-stage", 1)
    run_recipe(tree, "yesno", "--raw-dir", raw, "--stage", 3, "--stop-stage", 3)
    recipe = tree / "egs/yesno/ASR"
    corpus = _json(recipe / "data/corpus/en/report.json")
    assert corpus["utterances"] == {"train": 24, "dev": 6, "test": 30}
    assert corpus["sample_rates"] == {"8000": 60}
    assert _json(recipe / "data/manifests/en/report.json")["resampled"] == 60
    cut = [c for c in load_manifest(recipe / "data/manifests/en/cuts_test.jsonl.gz")][0]
    bits = cut.id.split("_")
    assert cut.supervisions[0].text == " ".join("yes" if b == "1" else "no" for b in bits)
    lang = _json(recipe / "data/lang/en_bpe12/lang.json")
    assert lang["vocab_size"] == 12


def test_yesno_recipe_stages_4_to_8_sanity_check(tmp_path_factory, tree):
    """yesno as the classic sanity check: the rest of the recipe with its defaults (a tiny
    model, 20 epochs); CTC + HLG must reach at most 1 % test WER (icefall: 0.42 %)."""
    raw = _cached(tmp_path_factory, "yesno", make_yesno)
    r = run_recipe(tree, "yesno", "--raw-dir", raw, timeout=900)  # stages 0-3 are done: skipped
    assert "skip 'stage3_lang_en_bpe12_lm2'" in r.stderr and "stage 5 skipped" in r.stderr
    recipe = tree / "egs/yesno/ASR"
    best = (recipe / "exp/en_tiny/decode_epoch20_avg4/ctc-hlg/test/scoring/best_wer").read_text()
    m = re.match(r"%WER ([0-9.]+) \[ (\d+) / 240,", best)
    assert m and float(m.group(1)) <= 1.0, best
    assert f"| en_tiny | - | ctc-hlg |" in (recipe / "RESULTS.md").read_text()
    assert (recipe / "exp/en_tiny/export/epoch20_avg4/export.json").is_file()


def test_yesno_archive_is_unpacked_without_network(tmp_path_factory, tmp_path):
    wav_dir = _cached(tmp_path_factory, "yesno", make_yesno) / "waves_yesno"
    with tarfile.open(tmp_path / "waves_yesno.tar.gz", "w:gz") as tar:
        tar.add(wav_dir, arcname="waves_yesno")
    got = yesno.get_waves(tmp_path, url=f"{CLOSED_URL}/waves_yesno.tar.gz")
    assert len(list(got.glob("*.wav"))) == 60


# ---- no network: stage 0 says what to place where ----------------------------------------------

def test_download_without_network_says_what_to_place_where(tmp_path):
    raw = tmp_path / "raw"
    p = subprocess.run([sys.executable, str(ROOT / "local" / "yesno.py"), "download", "--dl-dir",
                        str(tmp_path / "corpus"), "--raw-dir", str(raw), "--url", f"{CLOSED_URL}/waves_yesno.tar.gz"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: could not download yesno") and f"waves_yesno.tar.gz (https://www.openslr.org/1) into {raw}/" in last
    assert not any(raw.rglob("*.tar.gz")), "the failed attempt left an empty archive behind"


@pytest.mark.parametrize("get,expect", [
    (lambda raw: librispeech.get_parts(raw, ["train-clean-5", "test-clean"], base_url=CLOSED_URL),
     "get train-clean-5.tar.gz, test-clean.tar.gz (https://www.openslr.org/12"),
    (lambda raw: commonvoice.get_language(raw, commonvoice.RELEASE, "cs", base_url=CLOSED_URL),
     f"download {commonvoice.RELEASE}-cs.tar.gz from https://commonvoice.mozilla.org/datasets"),
], ids=["librispeech", "commonvoice"])
def test_missing_corpus_without_network_is_a_clear_error(tmp_path, get, expect):
    with pytest.raises(GraftError, match="could not download") as e:
        get(tmp_path)
    assert expect in str(e.value) and str(tmp_path) in str(e.value)
    assert not any(tmp_path.rglob("*.tar.gz"))


# ---- the folder adapter ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder_corpus(tmp_path_factory) -> tuple[Path, Path]:
    d = _cached(tmp_path_factory, "folder", make_folder)
    return d / "audio", d / "transcripts.tsv"


def _index(audio: Path, table: Path, out: Path, **kw) -> dict:
    utts, report = adapter.folder_utterances(audio, table, "en")
    return adapter.write_corpus(utts, out, "en", report=report, **kw)


def test_folder_counts_odd_files_and_draws_splits(folder_corpus, tmp_path):
    audio, table = folder_corpus
    result = _index(audio, table, tmp_path / "a", dev_fraction=0.1, test_fraction=0.1)
    assert result["utterances"] == {"train": 12, "dev": 2, "test": 2}
    assert result["skipped"] == {"missing audio (transcript without audio)": 1,
                                 "audio without transcript": 1, "unreadable audio": 1}
    assert result["skipped_examples"]["audio without transcript"] == [str(audio / "extra.wav")]
    assert result["sample_rates"] == {"16000": 12, "22050": 4}
    rows = read_transcripts(tmp_path / "a/en/transcripts.tsv")
    assert all(r.audio.is_file() for r in rows)
    assert any(r.audio.suffix == ".flac" for r in rows)  # found in a subfolder
    assert rows[0].text == "the cat sat on the mat"  # normalized
    # deterministic: the same draw again; by speaker: dev/test speakers not in train
    again = _index(audio, table, tmp_path / "b", dev_fraction=0.1, test_fraction=0.1)
    assert again["utterances"] == result["utterances"]
    assert (tmp_path / "a/en/transcripts.tsv").read_text() == (tmp_path / "b/en/transcripts.tsv").read_text()
    _index(audio, table, tmp_path / "c", dev_fraction=0.25, test_fraction=0.25, split_by="speaker")
    rows = read_transcripts(tmp_path / "c/en/transcripts.tsv")
    spk = {s: {r.speaker for r in rows if r.split == s} for s in ("train", "dev", "test")}
    assert spk["dev"] and spk["test"] and not (spk["dev"] | spk["test"]) & spk["train"]


def test_folder_relative_paths_stay_relative_to_the_index(folder_corpus, tmp_path, monkeypatch):
    audio, table = folder_corpus
    shutil.copytree(audio, tmp_path / "audio")
    monkeypatch.chdir(tmp_path)
    _index(Path("audio"), table, Path("data/corpus"), dev_fraction=0.1, test_fraction=0.1)
    line = (tmp_path / "data/corpus/en/transcripts.tsv").read_text().splitlines()[1]
    assert line.split("\t")[1].startswith("../../../audio/")
    assert all(r.audio.is_file() for r in read_transcripts(tmp_path / "data/corpus/en/transcripts.tsv"))


def _table(tmp_path: Path, *lines: str) -> Path:
    t = tmp_path / "t.tsv"
    t.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return t


@pytest.mark.parametrize("lines,message", [
    (["id\ttext", "utt00\ta", "utt01\tb", "utt00\tc"], "duplicate id 'utt00' \\(first on line 2\\)"),
    (["id\ttext", "utt00\ta\tb"], "more fields than the header"),
    (["name\twords", "utt00\ta"], "the header lacks id, text"),
    (["id\ttext\tsplit", "utt00\ta\tvalid"], "split 'valid': use train, dev, test or test_unseen"),
])
def test_folder_table_errors_name_the_line(folder_corpus, tmp_path, lines, message):
    audio, _ = folder_corpus
    with pytest.raises(GraftError, match=message):
        adapter.folder_utterances(audio, _table(tmp_path, *lines), "en")


def test_folder_split_errors(folder_corpus, tmp_path):
    audio, _ = folder_corpus
    only_train_test = _table(tmp_path, "id\ttext\tsplit", "utt00\tone\ttrain", "utt01\ttwo\ttest")
    utts, _ = adapter.folder_utterances(audio, only_train_test, "en")
    with pytest.raises(GraftError, match="no dev utterances"):
        adapter.write_corpus(utts, tmp_path / "x", "en")
    mixed = _table(tmp_path, "id\ttext\tsplit", "utt00\tone\ttrain", "utt01\ttwo\t")
    utts, _ = adapter.folder_utterances(audio, mixed, "en")
    with pytest.raises(GraftError, match="some utterances have a split"):
        adapter.write_corpus(utts, tmp_path / "x", "en")
    for twin in ("a", "b"):
        (tmp_path / "twins" / twin).mkdir(parents=True)
        shutil.copy(audio / "utt00.wav", tmp_path / "twins" / twin / "utt00.wav")
    with pytest.raises(GraftError, match="matches 2 audio files"):
        adapter.folder_utterances(tmp_path / "twins", _table(tmp_path, "id\ttext", "utt00\tone"), "en")


def test_folder_rows_of_another_language_are_counted_not_kept(folder_corpus, tmp_path):
    audio, _ = folder_corpus
    table = _table(tmp_path, "id\ttext\tlanguage", "utt00\tthe cat\ten", "utt01\tkočka spí\tcs", "utt02\ta dog\t")
    utts, report = adapter.folder_utterances(audio, table, "en")
    assert [u.id for u in utts] == ["utt00", "utt02"]
    assert report.skipped["other language"] == 1
    assert str(audio / "utt01.wav") not in report.skipped_examples["audio without transcript"]
