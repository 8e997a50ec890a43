"""Tests of graft.data.tts: the voice inventory, real synthesis per engine, errors and skips.

Usage: .venv/bin/python -m pytest -q tests/test_tts.py
"""
from __future__ import annotations

import dataclasses
import re

import pytest
import soundfile as sf

from graft.data.tts import VOICES, SynthItem, Voice, check_voice, check_voices, synthesize_batch, voices_for
from graft.utils.errors import GraftError

SENTENCE = {
    "en": "A man must always be in love, that is the reason he should not marry.",
    "cs": "Příliš žluťoučký kůň úpěl ďábelské ódy, řekl čestný muž.",
}


def _voice(engine: str, language: str) -> Voice:
    return next(v for v in voices_for(language) if v.engine == engine)


@pytest.mark.parametrize("language", ["en", "cs"])
def test_inventory(language):
    voices = voices_for(language)
    speakers = [v.speaker for v in voices]
    assert len(set(speakers)) == len(speakers) >= 6
    for s in speakers:
        assert re.fullmatch(rf"{language}-(espeak|flite|festival)-[a-z0-9]+-s\d+", s)
    festival_cs = [v for v in voices if v.engine == "festival" and v.language == "cs"]
    assert len({v.stretch for v in festival_cs}) == len(festival_cs)  # shared duration model
    assert len({(v.rate, v.pitch, v.stretch) for v in voices}) == len(voices)


def test_inventory_uses_every_engine_and_is_installed():
    assert {v.engine for v in VOICES} == {"espeak", "flite", "festival"}
    check_voices(VOICES)


@pytest.mark.parametrize("engine, language", [("espeak", "en"), ("flite", "en"), ("festival", "en"),
                                              ("espeak", "cs"), ("festival", "cs")])
def test_engine_synthesizes_16k(tmp_path, engine, language):
    voice = _voice(engine, language)
    text = SENTENCE[language]
    item = SynthItem("u1", text, tmp_path / "u1.wav")
    result = synthesize_batch(voice, [item])
    assert result.failed == {}
    info = sf.info(str(item.path))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    seconds = info.frames / info.samplerate
    assert result.seconds["u1"] == pytest.approx(seconds)
    words = len(text.split())
    assert 0.2 * words < seconds < 0.8 * words
    assert not list(tmp_path.glob(".tmp-*"))


def test_espeak_reads_text_starting_with_a_dash(tmp_path):
    voice = _voice("espeak", "en")
    result = synthesize_batch(voice, [SynthItem("d", "-v nothing is an option here, my friend.", tmp_path / "d.wav")])
    assert result.failed == {} and result.seconds["d"] > 1.5


@pytest.mark.parametrize("voice, package", [
    (Voice("en", "flite", "nosuchvoice", "x", package="flite"), "flite"),
    (Voice("cs", "festival", "czech_nosuch", "x", package="festvox-czech-nosuch"), "festvox-czech-nosuch"),
    (Voice("en", "espeak", "en-us+nosuch", "x", package="espeak-ng-data"), "espeak-ng-data"),
    (Voice("zz", "espeak", "zz", "x", package="espeak-ng-data"), "espeak-ng-data"),
])
def test_missing_voice_is_a_clear_error(voice, package):
    with pytest.raises(GraftError, match=rf"{voice.engine} voice '{re.escape(voice.voice)}'.*apt-get install {package}"):
        check_voice(voice)


def test_unknown_engine_and_language():
    with pytest.raises(GraftError, match="unknown TTS engine 'nosuch'"):
        check_voice(Voice("en", "nosuch", "x", "x"))
    with pytest.raises(GraftError, match="no TTS voices for language 'zz'"):
        voices_for("zz")


def test_empty_audio_is_skipped_and_counted(tmp_path):
    espeak = _voice("espeak", "en")
    items = [SynthItem("empty", "...", tmp_path / "empty.wav"),
             SynthItem("ok", "Here is a real sentence to read.", tmp_path / "ok.wav")]
    result = synthesize_batch(espeak, items)
    assert result.failed == {"empty": "empty audio"} and set(result.seconds) == {"ok"}
    assert not (tmp_path / "empty.wav").exists() and (tmp_path / "ok.wav").exists()

    festival = _voice("festival", "cs")  # festival crashes on an empty utterance: never sent
    items = [SynthItem("a", "Dobrý den, jak se dnes máte?", tmp_path / "a.wav"),
             SynthItem("b", " ", tmp_path / "b.wav"),
             SynthItem("c", "Mějte se hezky a na shledanou.", tmp_path / "c.wav")]
    result = synthesize_batch(festival, items)
    assert result.failed == {"b": "empty text"} and set(result.seconds) == {"a", "c"}


def test_wrong_encoding_is_caught_by_seconds_per_word(tmp_path):
    voice = dataclasses.replace(_voice("festival", "cs"), encoding="utf-8")  # festival Czech wants ISO-8859-2
    items = [SynthItem(f"u{i}", t, tmp_path / f"u{i}.wav") for i, t in enumerate([
        "Příliš žluťoučký kůň úpěl ďábelské ódy.",
        "Čestní muži se žení rychle, moudří nikdy.",
        "Člověk má být stále zamilován, to je důvod, proč se nemá ženit."])]
    with pytest.raises(GraftError, match=r"s per word.*wrong text encoding"):
        synthesize_batch(voice, items)
    assert not list(tmp_path.glob("*.wav"))
