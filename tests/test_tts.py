"""Tests of graft.data.tts: the voice inventory, real synthesis per engine, errors and skips.

Usage: .venv/bin/python -m pytest -q tests/test_tts.py
"""
from __future__ import annotations

import dataclasses
import re

import pytest
import soundfile as sf

from graft.data import tts
from graft.data.tts import (PITCH_JITTER, SPEED_JITTER, VOICES, SynthItem, Voice, check_voice, check_voices,
                            prosody_factors, synthesize_batch, utterance_settings, voices_for)
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
    assert len(set(speakers)) == len(speakers) >= 8
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


# ---- per-utterance prosody ---------------------------------------------------------------

def test_prosody_is_deterministic_per_id_within_range_and_differs_across_ids():
    for voice in VOICES:
        a = utterance_settings(voice, f"{voice.speaker}-00001")
        assert a == utterance_settings(voice, f"{voice.speaker}-00001")
        assert 1 - SPEED_JITTER <= a.speed <= 1 + SPEED_JITTER
        assert 1 - PITCH_JITTER <= a.pitch_factor <= 1 + PITCH_JITTER
    voice = _voice("espeak", "en")
    factors = {prosody_factors(voice, f"u{i}") for i in range(50)}
    assert len(factors) == 50
    speeds = [f[0] for f in factors]
    assert min(speeds) < 0.95 and max(speeds) > 1.05  # spread over the range
    fixed = dataclasses.replace(voice, speed_jitter=0.0, pitch_jitter=0.0)
    st = utterance_settings(fixed, "u1")
    assert (st.rate, st.pitch, st.stretch) == (voice.rate, voice.pitch, voice.stretch)


def test_prosody_reaches_the_engine_command_lines(tmp_path):
    espeak = _voice("espeak", "en")
    st = utterance_settings(espeak, "u7")
    cmd = tts._espeak_cmd(espeak, tmp_path / "o.wav", st)
    assert cmd[cmd.index("-s") + 1] == str(round(espeak.rate * st.speed))
    assert cmd[cmd.index("-p") + 1] == str(int(st.pitch)) and st.pitch != espeak.pitch
    flite = next(v for v in voices_for("en") if v.engine == "flite" and v.pitch is not None)
    st = utterance_settings(flite, "u7")
    cmd = " ".join(tts._flite_cmd(flite, tmp_path / "t.txt", tmp_path / "o.wav", st))
    assert f"duration_stretch={flite.stretch / st.speed:.3f}".rstrip("0") in cmd
    assert f"int_f0_target_mean={st.pitch:g}" in cmd
    czech = _voice("festival", "cs")
    st = utterance_settings(czech, "u7")
    script = tts._festival_utt_setup(czech, st)
    assert f"'Duration_Stretch {st.stretch:g})" in script and f"int_general_params)) {st.pitch:g})" in script
    hts = next(v for v in VOICES if v.hts)
    st = utterance_settings(hts, "u7")
    script = tts._festival_utt_setup(hts, st)
    assert f'"-fm" {st.semitones:g}' in script and '"-r"' in script and st.semitones != 0


@pytest.mark.parametrize("engine, language", [("espeak", "en"), ("flite", "en"), ("festival", "cs")])
def test_prosody_changes_the_audio_of_one_sentence(tmp_path, engine, language):
    voice = _voice(engine, language)
    ids = ["p1", "p2", "p3"]
    result = synthesize_batch(voice, [SynthItem(i, SENTENCE[language], tmp_path / f"{i}.wav") for i in ids])
    assert result.failed == {}
    assert len({round(result.seconds[i], 3) for i in ids}) > 1  # other speeds: other lengths


def test_hts_voice_varies_per_utterance(tmp_path):
    hts = next(v for v in VOICES if v.hts)
    result = synthesize_batch(hts, [SynthItem(i, SENTENCE["en"], tmp_path / f"{i}.wav") for i in ("h1", "h2")])
    assert result.failed == {} and result.seconds["h1"] != result.seconds["h2"]


def test_held_out_voices():
    for language in ("en", "cs"):
        held = voices_for(language, held_out=True)
        seen = voices_for(language)
        assert held and not set(held) & set(seen)
        assert {v.engine for v in held} <= {v.engine for v in seen}  # engines heard in training
        assert set(voices_for(language, held_out=None)) == set(held) | set(seen)
