"""Tests of local/demo.py synthesize: a tiny real corpus, disjoint splits, determinism, resume.

Usage: .venv/bin/python -m pytest -q tests/test_demo_corpus.py
"""
from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from graft.data.text import normalize

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "local" / "demo.py"
TINY = ["--en-train-minutes", "0.5", "--en-dev-minutes", "0.3", "--en-test-minutes", "0.3",
        "--cs-train-minutes", "0.5", "--cs-dev-minutes", "0.3", "--cs-test-minutes", "0.3",
        "--en-unseen-minutes", "0.3", "--cs-unseen-minutes", "0.3"]
HEADER = ["id", "audio", "text", "speaker", "language", "split"]


def _load_demo():
    name = "graft_local_demo"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DEMO)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # the worker processes find _work by this name
        spec.loader.exec_module(module)
    return sys.modules[name]


def _rows(lang_dir: Path) -> list[dict]:
    with open(lang_dir / "transcripts.tsv", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        assert header == HEADER
        return [dict(zip(header, r)) for r in reader]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    _load_demo().main(["synthesize", "--out-dir", str(out), "--seed", "0", "--jobs", "2", *TINY])
    return out


@pytest.mark.parametrize("lang", ["en", "cs"])
def test_folder_corpus(corpus, lang):
    lang_dir = corpus / lang
    rows = _rows(lang_dir)
    report = json.loads((lang_dir / "report.json").read_text(encoding="utf-8"))
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    by_split: dict[str, set[str]] = {"train": set(), "dev": set(), "test": set(), "test_unseen": set()}
    speakers: dict[str, set[str]] = {split: set() for split in by_split}
    for r in rows:
        assert r["language"] == lang and r["split"] in by_split
        assert re.fullmatch(rf"{lang}-(espeak|flite|festival)-[a-z0-9]+-s\d+", r["speaker"])
        assert re.fullmatch(rf"{re.escape(r['speaker'])}-\d{{5}}", r["id"])
        assert r["audio"] == f"wav/{r['id']}.wav"
        assert normalize(r["text"], lang) == r["text"]
        info = sf.info(str(lang_dir / r["audio"]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        by_split[r["split"]].add(r["text"])
        speakers[r["split"]].add(r["speaker"])
    # disjoint splits, and LM text disjoint from all of them
    splits = list(by_split)
    assert all(not by_split[a] & by_split[b] for i, a in enumerate(splits) for b in splits[i + 1:])
    # test_unseen: read by the held-out voices only, none of which speaks in another split
    held_out = {v.speaker for v in _load_demo().voices_for(lang, held_out=True)}
    assert speakers["test_unseen"] and speakers["test_unseen"] <= held_out
    assert not (speakers["train"] | speakers["dev"] | speakers["test"]) & held_out
    assert report["held_out_speakers"] == sorted(speakers["test_unseen"])
    lm = set((lang_dir / "lm_text.txt").read_text(encoding="utf-8").splitlines())
    assert len(lm) > 1000 and not lm & set().union(*by_split.values())
    # no stray files: every wav is in the transcripts
    assert sorted(p.name for p in (lang_dir / "wav").iterdir()) == sorted(f"{i}.wav" for i in ids)
    # report
    for split, minutes in report["target_minutes"].items():
        assert report["hours"][split] * 60 >= minutes
        assert report["utterances"][split] == len([r for r in rows if r["split"] == split])
    assert report["total_utterances"] == len(rows)
    assert sum(s["utterances"] for s in report["speakers"].values()) == len(rows)
    assert len(report["speakers"]) >= 9
    assert {"utterances", "sentences"} <= set(report["skipped"])
    assert report["generation_seconds"] > 0


def test_deterministic_for_a_seed(corpus, tmp_path):
    other = tmp_path / "corpus"
    _load_demo().main(["synthesize", "--out-dir", str(other), "--seed", "0", "--jobs", "1", *TINY])
    for lang in ("en", "cs"):
        assert _rows(other / lang) == _rows(corpus / lang)
        assert (other / lang / "lm_text.txt").read_text() == (corpus / lang / "lm_text.txt").read_text()


def test_seeds_give_other_disjoint_pools():
    demo = _load_demo()
    sentences = list(demo._sentences("cs")[0])
    voices = demo.voices_for("cs")
    minutes = {"train": 2, "dev": 1, "test": 1}
    a = demo.plan_language("cs", sentences, minutes, 0, voices)
    b = demo.plan_language("cs", sentences, minutes, 1, voices)
    assert [c.id for c in a["dev"]] != [c.id for c in b["dev"]]
    texts = {split: {c.sentence.text for c in pool} for split, pool in a.items()}
    assert not (texts["train"] & texts["dev"] or texts["train"] & texts["test"] or texts["dev"] & texts["test"])


def test_unseen_pool_uses_held_out_voices_and_disjoint_sentences():
    demo = _load_demo()
    sentences = list(demo._sentences("en")[0])
    voices = demo.voices_for("en", held_out=None)
    pools = demo.plan_language("en", sentences, {"train": 2, "dev": 1, "test": 1, "test_unseen": 1}, 0, voices)
    held_out = {v for v in voices if v.held_out}
    assert pools["test_unseen"] and {c.voice for c in pools["test_unseen"]} == held_out
    assert not any(c.voice in held_out for split in ("train", "dev", "test") for c in pools[split])
    texts = {split: {c.sentence.text for c in pool} for split, pool in pools.items()}
    assert not texts["test_unseen"] & (texts["train"] | texts["dev"] | texts["test"])
    # without unseen minutes there is no test_unseen pool, and dev/test do not move
    plain = demo.plan_language("en", sentences, {"train": 2, "dev": 1, "test": 1}, 0, voices)
    assert plain["test_unseen"] == [] and [c.id for c in plain["dev"]] == [c.id for c in pools["dev"]]
    with pytest.raises(demo.GraftError, match="held-out voices"):
        demo.plan_language("en", sentences, {"train": 2, "test_unseen": 1}, 0, demo.voices_for("en"))


def test_train_reads_its_sentences_again_in_other_voices():
    demo = _load_demo()
    sentences = list(demo._sentences("pl")[0])[:120]  # about 12 minutes read once
    voices = demo.voices_for("pl")
    minutes = {"train": 8, "dev": 1, "test": 1}
    with pytest.raises(demo.GraftError, match=r"not enough pl sentences .* or more --train-reads"):
        demo.plan_language("pl", sentences, minutes, 0, voices)
    pools = demo.plan_language("pl", sentences, minutes, 0, voices, train_reads=2)
    train = pools["train"]
    assert len({c.id for c in train}) == len(train)
    by_text: dict[str, list] = {}
    for c in train:
        by_text.setdefault(c.sentence.text, []).append(c.voice)
    assert max(len(v) for v in by_text.values()) == 2  # read twice at most
    assert all(len(set(v)) == len(v) for v in by_text.values())  # each time by another voice
    assert sum(len(v) == 2 for v in by_text.values()) > 10
    texts = {split: {c.sentence.text for c in pool} for split, pool in pools.items()}
    assert not texts["train"] & (texts["dev"] | texts["test"])  # dev and test are never read again
    # one read is the plan without reads: the demo's own corpora do not move
    # the first read is the plan of one read (a pool may only grow by the second): ids do not move
    small = {"train": 4, "dev": 1, "test": 1}
    once = [c.id for c in demo.plan_language("pl", sentences, small, 0, voices)["train"]]
    twice = [c.id for c in demo.plan_language("pl", sentences, small, 0, voices, train_reads=2)["train"]]
    assert once and twice[:len(once)] == once
    with pytest.raises(demo.GraftError, match="--train-reads must be between 1 and the 8 pl training voices"):
        demo.plan_language("pl", sentences, minutes, 0, voices, train_reads=9)


def test_polish_corpus_synthesized(tmp_path):
    """`--languages pl`: a tiny Polish corpus in espeak-ng's voices, no Czech or English."""
    out = tmp_path / "pl_corpus"
    _load_demo().main(["synthesize", "--out-dir", str(out), "--jobs", "1", "--languages", "pl",
                       "--pl-train-minutes", "0.3", "--pl-dev-minutes", "0.2", "--pl-test-minutes", "0.2"])
    assert sorted(p.name for p in out.iterdir()) == ["pl"]
    rows = _rows(out / "pl")
    assert {r["split"] for r in rows} == {"train", "dev", "test"} and {r["language"] for r in rows} == {"pl"}
    assert all(r["speaker"].startswith("pl-espeak-") for r in rows)
    report = json.loads((out / "pl" / "report.json").read_text())
    assert report["total_utterances"] == len(rows)
    for r in rows[:5]:
        info = sf.info(out / "pl" / r["audio"])
        assert info.samplerate == 16000 and 0.25 < info.duration / len(r["text"].split()) < 0.8


def test_candidate_key_depends_on_the_utterance_prosody():
    demo = _load_demo()
    sentence = demo._sentences("en")[0][0]
    voice = demo.voices_for("en")[0]
    a = demo.Candidate(f"{voice.speaker}-00001", 1, "train", sentence, voice)
    b = demo.Candidate(f"{voice.speaker}-00002", 1, "train", sentence, voice)
    assert a.key != b.key  # same text and voice, another id: other speed/pitch, another wav
    assert a.key == demo.Candidate(a.id, 1, "train", sentence, voice).key


def test_resume_after_deleting_wavs(corpus):
    lang_dir = corpus / "cs"
    before = _rows(lang_dir)
    wavs = sorted((lang_dir / "wav").iterdir())
    deleted = wavs[:3]
    kept = {p: p.stat().st_mtime_ns for p in wavs[3:]}
    for p in deleted:
        p.unlink()
    (lang_dir / "wav" / ".tmp-999-partial.wav").write_bytes(b"RIFF")  # a killed run's leftover
    _load_demo().main(["synthesize", "--out-dir", str(corpus), "--seed", "0", "--jobs", "2", *TINY])
    assert _rows(lang_dir) == before
    assert all(p.exists() for p in deleted)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished wavs were not redone
    assert not list((lang_dir / "wav").glob(".tmp-*"))
    report = json.loads((lang_dir / "report.json").read_text(encoding="utf-8"))
    assert report["resumed_utterances"] >= len(before) - 3
    # the 3 deleted ones again (and maybe a spare beyond the minutes, removed as unused)
    assert report["synthesized_utterances"] - report["unused_synthesized"] == 3


def test_cli_error_is_one_line():
    p = subprocess.run([sys.executable, str(DEMO), "synthesize", "--jobs", "0"], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr.strip() == "ERROR: --jobs must be >= 1, got 0"
