"""steps/recognize.py and graft.export.{audio,segment,align,recognize}: files -> text and word times.

Usage:
    .venv/bin/python -m pytest -q tests/test_recognize.py
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus_fixtures import speak
from test_export import build_exported

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    return build_exported(tmp_path_factory)


def test_audio_any_format_and_rate_becomes_16k_mono(tmp_path):
    from graft.export.audio import load_audio

    mp3 = speak("the cat sat on the mat", tmp_path / "a.mp3", rate=44100)
    flac = speak("the cat sat on the mat", tmp_path / "a.flac", rate=8000)
    wav = speak("the cat sat on the mat", tmp_path / "a.wav", rate=16000)
    ref = load_audio(wav)
    for path in (mp3, flac):
        x = load_audio(path)
        assert x.dtype == np.float32 and x.ndim == 1
        assert abs(len(x) - len(ref)) < 0.05 * 16000 + 1200       # mp3 adds codec padding
    stereo = tmp_path / "st.wav"
    sf.write(stereo, np.stack([ref, ref], axis=1), 16000)
    assert np.allclose(load_audio(stereo), ref, atol=1e-4)


def _bursts(pattern: list[tuple[float, bool]], seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Noise bursts (speech stand-ins) and near-silence, with the bursts' (start, end)."""
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0.0
    for seconds, loud in pattern:
        n = int(seconds * 16000)
        parts.append(rng.normal(0, 0.2 if loud else 0.001, n).astype(np.float32))
        if loud:
            spans.append((t, t + seconds))
        t += seconds
    return np.concatenate(parts), spans


def test_short_files_are_not_cut_and_long_ones_are_cut_in_pauses():
    from graft.export.segment import SegmentOptions, segment_audio

    x, _ = _bursts([(3.0, True), (1.0, False), (2.0, True)])
    assert segment_audio(x) == [(0.0, 6.0)]
    # 10 minutes: 20 s of "speech" then 2 s of silence, and one 75 s stretch without a pause
    pattern = [(20.0, True), (2.0, False)] * 24 + [(75.0, True), (3.0, False)]
    x, bursts = _bursts(pattern)
    assert len(x) / 16000 > 600
    spans = segment_audio(x, SegmentOptions(max_seconds=30.0))
    assert all(b - a <= 30.0 + 1e-6 for a, b in spans)
    assert spans == sorted(spans) and all(a2 >= b1 - 1e-6 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    for a, b in bursts:                                    # every burst is covered by segments
        covered = sum(max(0.0, min(b, e) - max(a, s)) for s, e in spans)
        assert covered >= (b - a) - 0.05
    silent = [(b1, a2) for (_, b1), (a2, _) in zip(bursts, bursts[1:])]
    cuts_in_silence = sum(any(lo - 0.3 <= e <= hi + 0.3 for lo, hi in silent) for _, e in spans[:-1])
    assert cuts_in_silence >= 24                           # the pauses are where it cuts
    assert len(spans) >= 24 + 3                            # the 75 s stretch is split too


def test_ctc_alignment_gives_first_frames():
    from graft.export.align import ctc_align

    lp = np.log(np.full((10, 4), 0.01))
    for t, k in enumerate([0, 1, 1, 0, 2, 2, 0, 2, 0, 3]):
        lp[t, k] = np.log(0.97)
    assert ctc_align(lp, [1, 2, 2, 3]) == [1, 4, 7, 9]
    assert ctc_align(lp[:3], [1, 2, 2, 3]) == [0, 0, 1, 2]          # cannot fit: spread evenly
    assert ctc_align(lp, []) == []


def test_words_with_times_groups_pieces():
    from graft.export.recognize import Hyp, words_with_times

    id2 = {0: "<blk>", 1: "\u2581the", 2: "\u2581ca", 3: "t", 4: "<unk>"}
    words = words_with_times(Hyp([1, 2, 4, 3], [0.0, 0.4, 0.5, 0.6]), id2, 0.04, offset=10.0)
    assert [(w.word, w.start, w.end) for w in words] == [("the", 10.0, 10.04), ("cat", 10.4, 10.64)]


def test_recognize_step_prints_one_line_per_file_and_writes_json(exported, tmp_path):
    mp3 = speak("the sun is hot today", tmp_path / "sun.mp3", rate=22050)
    flac = speak("we like green tea", tmp_path / "tea.flac", rate=8000)
    out = tmp_path / "out.json"
    cmd = [PY, str(ROOT / "steps/recognize.py"), "--model", str(exported.export), "--json", str(out),
           str(mp3), str(flac), str(tmp_path / "missing.wav")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and "missing.wav" in proc.stderr and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(mp3), str(flac)]
    info = json.loads(out.read_text())
    assert [f["file"] for f in info["files"]] == [str(mp3), str(flac)]
    for f in info["files"]:
        assert f["text"] == " ".join(w["word"] for w in f["words"])
        starts = [w["start"] for w in f["words"]]
        assert starts == sorted(starts) and all(0 <= w["start"] <= w["end"] <= f["duration"] + 0.1
                                                for w in f["words"])
    # the same files through Graft's own search (the exp dir), with the beam method
    proc = subprocess.run([PY, str(ROOT / "steps/recognize.py"), "--model", str(exported.exp), "--lang-dir",
                           str(exported.lang), "--method", "beam", str(mp3)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{mp3}\t")


def test_lexicon_and_joint_methods_run_on_an_exp_dir_only(exported, tmp_path):
    wav = exported.wavs[0]
    lm_dir = next(exported.lang.glob("lm_*"))
    lexicon = {line.split()[0] for line in (lm_dir / "lexicon.txt").read_text(encoding="utf-8").splitlines()}
    for method in ("beam-lex", "ctc-hlg-rnnt"):
        out = tmp_path / f"{method}.json"
        proc = subprocess.run([PY, str(ROOT / "steps/recognize.py"), "--model", str(exported.exp), "--lang-dir",
                               str(exported.lang), "--method", method, "--json", str(out), str(wav)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        words = json.loads(out.read_text())["files"][0]["text"].split()
        assert words and set(words) <= lexicon, (method, words)  # both spell lexicon words only
    proc = subprocess.run([PY, str(ROOT / "steps/recognize.py"), "--model", str(exported.export),
                           "--method", "beam-lex", str(wav)], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "beam-lex runs with a training exp dir (--model exp/<model>), not with an export folder" in proc.stderr


def test_a_long_file_is_decoded_in_segments_on_one_time_line(exported):
    from graft.export.audio import load_audio
    from graft.export.recognize import SherpaBackend, recognize_samples
    from graft.export.segment import SegmentOptions

    gap = np.zeros(16000, dtype=np.float32)
    pieces = []
    for wav in exported.wavs:
        pieces += [load_audio(wav), gap]
    x = np.concatenate(pieces)                               # ~70 s with 1 s pauses
    backend = SherpaBackend(exported.export, "greedy")
    result = recognize_samples(backend, x, "long", SegmentOptions(max_seconds=10.0))
    assert len(result.segments) > len(x) / 16000 / 10
    assert all(b - a <= 10.0 for a, b in result.segments)
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and starts[-1] > 0.8 * len(x) / 16000
    with pytest.raises(Exception, match="unknown method"):
        SherpaBackend(exported.export, "viterbi")
