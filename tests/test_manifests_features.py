"""Stage 1 (folder corpus -> Lhotse manifests) and stage 2 (fbank) on audio made here."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, load_manifest

from graft.data.features import compute_fbank_for_split, subset_with_features
from graft.data.manifests import folder_to_manifests, nested_subsets
from graft.utils.errors import GraftError, MissingStageError

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "she sells sea shells",
             "we went home late", "it is raining again today", "good morning to you all"]


def speak(text: str, path: Path, rate: int = 16000) -> None:
    """espeak-ng speech at `rate` Hz, mono 16-bit."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(raw)], input=text.encode(), check=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-b", "16", str(path), "gain", "-1"], check=True)
    raw.unlink()


def write_tsv(folder: Path, rows: list[tuple[str, ...]]) -> Path:
    tsv = folder / "transcripts.tsv"
    lines = ["id\taudio\ttext\tspeaker\tlanguage\tsplit"] + ["\t".join(r) for r in rows]
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tsv


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "wav").mkdir()
    rows = []
    for i, text in enumerate(SENTENCES * 2):
        split = "train" if i < 8 else ("dev" if i < 10 else "test")
        speak(text, folder / f"wav/u{i}.wav")
        rows.append((f"u{i}", f"wav/u{i}.wav", text.upper() + ".", f"spk{i % 2}", "en", split))
    # bad rows: wrong rate (kept, resampled), corrupt, empty, missing audio, empty text
    speak("hello there my friend", folder / "wav/rate.wav", rate=22050)
    rows.append(("rate", "wav/rate.wav", "hello there my friend", "spk0", "en", "train"))
    (folder / "wav/corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk" * 10)
    rows.append(("corrupt", "wav/corrupt.wav", "some words here", "spk0", "en", "train"))
    sf.write(folder / "wav/empty.wav", np.zeros(0, dtype=np.int16), 16000)
    rows.append(("empty", "wav/empty.wav", "some words here", "spk0", "en", "train"))
    rows.append(("missing", "wav/nope.wav", "some words here", "spk0", "en", "train"))
    rows.append(("notext", "wav/u0.wav", "  ", "spk0", "en", "train"))
    write_tsv(folder, rows)
    return folder


def test_manifests_keep_good_skip_bad_and_report(corpus, tmp_path):
    out = tmp_path / "manifests"
    report = folder_to_manifests(corpus / "transcripts.tsv", out, language="en",
                                 train_subsets_minutes=[0.05, 0.1, 100])
    assert report["kept_utterances"] == {"train": 9, "dev": 2, "test": 2}
    assert report["skipped"] == {"unreadable audio": 1, "empty audio": 1, "missing audio": 1,
                                 "empty or unnormalizable text": 1}
    assert report["resampled"] == 1
    assert json.loads((out / "report.json").read_text()) == report
    cuts = load_manifest(out / "cuts_train.jsonl.gz")
    assert len(cuts) == 9
    sup = cuts[0].supervisions[0]
    assert sup.text == sup.text.lower() and "." not in sup.text
    assert sup.speaker.startswith("spk") and sup.language == "en"
    rate = [c for c in cuts if c.id == "rate"][0]
    assert rate.sampling_rate == 16000
    assert rate.load_audio().shape[1] == pytest.approx(rate.duration * 16000, abs=2)
    # nested subsets: smaller inside larger; a subset larger than train is left out
    small = set(load_manifest(out / "cuts_train_0.05m.jsonl.gz").ids)
    large = set(load_manifest(out / "cuts_train_0.1m.jsonl.gz").ids)
    assert small and small < large <= set(cuts.ids)
    assert not (out / "cuts_train_100m.jsonl.gz").exists()


def test_nested_subsets_reach_their_minutes():
    from lhotse.testing.dummies import dummy_cut
    cuts = CutSet.from_cuts(dummy_cut(i, duration=10.0) for i in range(30))
    subsets = nested_subsets(cuts, [1, 2], seed=3)
    assert sum(c.duration for c in subsets["train_1m"]) == 60
    assert sum(c.duration for c in subsets["train_2m"]) == 120
    assert list(nested_subsets(cuts, [1], seed=3)["train_1m"].ids) == list(subsets["train_1m"].ids)


def test_duplicate_ids_and_missing_columns_are_errors(tmp_path):
    tsv = write_tsv(tmp_path, [("a", "x.wav", "hi there", "s", "en", "train"),
                               ("a", "y.wav", "hi there", "s", "en", "train")])
    with pytest.raises(GraftError, match="duplicate id 'a'"):
        folder_to_manifests(tsv, tmp_path / "m")
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\twav\nx\ty\n")
    with pytest.raises(GraftError, match="missing column"):
        folder_to_manifests(bad, tmp_path / "m")
    with pytest.raises(MissingStageError, match="stage 0"):
        folder_to_manifests(tmp_path / "none.tsv", tmp_path / "m")


def test_fbank_resumes_and_subsets_reuse_features(corpus, tmp_path):
    man = tmp_path / "manifests"
    folder_to_manifests(corpus / "transcripts.tsv", man, language="en", train_subsets_minutes=[0.05])
    out = tmp_path / "fbank"
    fig = compute_fbank_for_split(man / "cuts_train.jsonl.gz", out / "cuts_train.jsonl.gz",
                                  num_jobs=2, chunk_size=3)
    assert fig["cuts"] == 9 and fig["computed_seconds"] == pytest.approx(fig["audio_seconds"])
    cuts = load_manifest(out / "cuts_train.jsonl.gz")
    feats = cuts[0].load_features()
    assert feats.shape[1] == 80 and abs(feats.shape[0] - cuts[0].duration * 100) <= 2
    assert np.isfinite(feats).all()
    # a killed run: one chunk manifest lost -> only that chunk is recomputed
    (out / "feats_train/chunk-0001.jsonl.gz").unlink()
    fig2 = compute_fbank_for_split(man / "cuts_train.jsonl.gz", out / "cuts_train.jsonl.gz", chunk_size=3)
    assert 0 < fig2["computed_seconds"] < fig["computed_seconds"]
    again = load_manifest(out / "cuts_train.jsonl.gz")
    np.testing.assert_allclose(again[3].load_features(), cuts[3].load_features())
    n = subset_with_features(out / "cuts_train.jsonl.gz", man / "cuts_train_0.05m.jsonl.gz",
                             out / "cuts_train_0.05m.jsonl.gz")
    sub = load_manifest(out / "cuts_train_0.05m.jsonl.gz")
    assert len(sub) == n and all(c.has_features for c in sub)


def test_fbank_step_names_missing_stage(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "steps/compute_fbank.py"), "--manifest-dir",
                        str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "f")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("ERROR: missing the train cuts") and "stage 1" in r.stderr


def test_optional_test_unseen_split_gets_its_manifests(corpus, tmp_path):
    # the corpus plus two utterances of a speaker no other split has
    rows = [line.split("\t") for line in (corpus / "transcripts.tsv").read_text().splitlines()[1:]]
    rows = [tuple(r[:1]) + (str(corpus / r[1]),) + tuple(r[2:]) for r in rows]
    rows += [("x0", str(corpus / "wav/u0.wav"), "the cat sat on the mat", "unheard", "en", "test_unseen"),
             ("x1", str(corpus / "wav/u1.wav"), "a dog ran in the park", "unheard", "en", "test_unseen")]
    folder = tmp_path / "c"
    folder.mkdir()
    tsv = write_tsv(folder, rows)
    report = folder_to_manifests(tsv, tmp_path / "m", language="en")
    assert report["kept_utterances"]["test_unseen"] == 2
    cuts = load_manifest(tmp_path / "m/cuts_test_unseen.jsonl.gz")
    assert sorted(cuts.ids) == ["x0", "x1"] and cuts[0].supervisions[0].speaker == "unheard"
    assert (tmp_path / "m/supervisions_test_unseen.jsonl.gz").is_file()
    # features: compute_fbank.py --splits takes it like any split
    r = subprocess.run([sys.executable, str(ROOT / "steps/compute_fbank.py"), "--manifest-dir", str(tmp_path / "m"),
                        "--out-dir", str(tmp_path / "f"), "--splits", "dev test_unseen"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "f/report.json").read_text())
    assert set(report) == {"dev", "test_unseen"} and report["test_unseen"]["cuts"] == 2
    # a test_unseen speaker who also speaks in train: refused, naming the file and the speaker
    write_tsv(folder, rows + [("x2", str(corpus / "wav/u2.wav"), "she sells sea shells", "spk0", "en", "test_unseen")])
    with pytest.raises(GraftError, match=r"transcripts.tsv: test_unseen must be speaker-disjoint.*'spk0'"):
        folder_to_manifests(tsv, tmp_path / "m2", language="en")


def test_corpus_without_test_unseen_is_unchanged(corpus, tmp_path):
    report = folder_to_manifests(corpus / "transcripts.tsv", tmp_path / "m", language="en")
    assert set(report["kept_utterances"]) == {"train", "dev", "test"}
    assert not list((tmp_path / "m").glob("*test_unseen*"))
