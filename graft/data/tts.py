"""Offline speech synthesis with Debian's TTS engines (espeak-ng, flite, festival) -> 16 kHz wav.

Usage:
    from graft.data.tts import SynthItem, check_voices, synthesize_batch, utterance_settings, voices_for
    voices = voices_for("cs")                  # the inventory: >= 9 speakers per language
    voices_for("cs", held_out=True)            # the voices kept out of train/dev/test (test_unseen)
    utterance_settings(voices[0], "cs-x-1")    # the rate/pitch/stretch this utterance is read with
    check_voices(voices)                       # GraftError naming a missing engine/voice/package
    result = synthesize_batch(voices[0], [SynthItem("cs-x-1", "Dobrý den, jak se máte?", Path("a.wav"))])
    result.seconds["cs-x-1"], result.failed    # duration of each written file; failures by id

Every output is a 16 kHz mono 16-bit wav, written atomically. espeak-ng reads its text on
stdin (a sentence starting with "-" would be an option) and is converted 22.05 -> 16 kHz with
1 dB less gain (sox, no clipping); festival runs once per batch, reading a script in the
voice's encoding (ISO-8859-2 for Czech), and is resampled from its native rate. An empty or
failed output is skipped and reported with a reason, not raised. A voice whose outputs are
mostly far too long or too short per word (a wrong text encoding gives ~4x) raises GraftError.

Prosody varies per utterance within a speaker: each utterance's speed (espeak's rate, the
inverse of flite's and festival's duration stretch, HTS's speed) and pitch (espeak's pitch,
the target mean F0, HTS's half-tone shift) are the voice's setting times factors drawn from
U(1 - jitter, 1 + jitter) with a generator seeded by the utterance id alone, so the same id
always gets the same audio (`utterance_settings`). flite's rms voice ignores the F0 target:
only its speed varies.
"""
from __future__ import annotations

import functools
import math
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from graft.utils.errors import GraftError
from graft.utils.io import atomic_path
from graft.utils.logging import get_logger

log = get_logger(__name__)

SAMPLE_RATE = 16000
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # words as normalize() counts them
# Plausible seconds per word of one utterance (with its leading and trailing silence).
MIN_SECONDS_PER_WORD = 0.12
MAX_SECONDS_PER_WORD = 1.2
# Plausible median seconds per word of a voice (measured 0.30-0.52; a wrong encoding gives >1).
VOICE_SECONDS_PER_WORD = (0.2, 0.8)
MIN_SECONDS = 0.3  # shorter (or silent) output counts as empty
# Per-utterance prosody: speed and pitch are the voice's times U(1 - JITTER, 1 + JITTER).
SPEED_JITTER = 0.12
PITCH_JITTER = 0.12
ESPEAK_PITCH_RANGE = (0, 99)

# engine -> (binary, Debian package)
ENGINES: dict[str, tuple[str, str]] = {
    "espeak": ("espeak-ng", "espeak-ng"),
    "flite": ("flite", "flite"),
    "festival": ("festival", "festival"),
}


@dataclass(frozen=True)
class Voice:
    """One speaker: an engine's voice with its settings.

    rate: espeak words per minute; pitch: espeak pitch 0-99, or the target mean F0 in Hz for
    flite and festival; stretch: duration stretch for flite and festival (1 = the voice's own).
    """

    language: str
    engine: str  # "espeak", "flite" or "festival"
    voice: str  # the engine's name: "en-us+m3", "slt", "czech_machac"
    name: str  # short name in the speaker id (letters and digits)
    rate: int | None = None
    pitch: float | None = None
    stretch: float = 1.0
    variant: int = 1  # tells apart speakers made from one voice with other settings
    package: str = ""  # the Debian package that holds the voice
    encoding: str = "utf-8"  # the text encoding the engine reads for this voice
    gain_db: float = 0.0  # applied when resampling to 16 kHz
    held_out: bool = False  # kept out of train/dev/test: reads the voice-disjoint test_unseen only
    speed_jitter: float = SPEED_JITTER  # per-utterance speed factor: U(1 - x, 1 + x); 0 = fixed
    pitch_jitter: float = PITCH_JITTER  # per-utterance pitch factor: U(1 - x, 1 + x); 0 = fixed

    @property
    def hts(self) -> bool:
        """A festival HTS voice (speed and pitch are hts_engine options, not festival parameters)."""
        return self.engine == "festival" and self.voice.endswith("_hts")

    @property
    def speaker(self) -> str:
        """Speaker id, e.g. "cs-festival-machac-s1"."""
        return f"{self.language}-{self.engine}-{self.name}-s{self.variant}"

    @property
    def settings(self) -> dict:
        """The engine, voice and settings as a dict (for reports)."""
        return {"engine": self.engine, "voice": self.voice, "rate": self.rate, "pitch": self.pitch,
                "stretch": self.stretch, "package": self.package, "held_out": self.held_out,
                "speed_jitter": self.speed_jitter, "pitch_jitter": self.pitch_jitter}


@dataclass(frozen=True)
class UttSettings:
    """The settings one utterance is read with: the voice's, moved by its prosody factors.

    rate: espeak words per minute (None: the engine's default); pitch: espeak 0-99 or the
    target mean F0 in Hz (None: the voice's own); stretch: flite/festival duration stretch;
    semitones: HTS half-tone shift; speed, pitch_factor: the factors drawn for the utterance.
    """

    speed: float
    pitch_factor: float
    rate: int | None
    pitch: float | None
    stretch: float
    semitones: float

    def to_json(self) -> dict:
        """The settings as a dict (part of what a wav depends on)."""
        return {"speed": self.speed, "pitch_factor": self.pitch_factor, "rate": self.rate,
                "pitch": self.pitch, "stretch": self.stretch, "semitones": self.semitones}


def prosody_factors(voice: Voice, uid: str) -> tuple[float, float]:
    """(speed, pitch) factors of utterance `uid`: U(1 -/+ the voice's jitters), seeded by the id
    alone (the same id always gets the same factors; rounded to 3 decimals)."""
    rng = random.Random(f"graft-prosody:{uid}")
    speed = rng.uniform(1 - voice.speed_jitter, 1 + voice.speed_jitter)
    pitch = rng.uniform(1 - voice.pitch_jitter, 1 + voice.pitch_jitter)
    return round(speed, 3), round(pitch, 3)


def utterance_settings(voice: Voice, uid: str) -> UttSettings:
    """The rate, pitch and stretch utterance `uid` of `voice` is synthesized with."""
    speed, pf = prosody_factors(voice, uid)
    rate = round(voice.rate * speed) if voice.rate else None
    pitch = None
    if voice.pitch is not None:
        pitch = voice.pitch * pf
        if voice.engine == "espeak":
            pitch = float(min(max(round(pitch), ESPEAK_PITCH_RANGE[0]), ESPEAK_PITCH_RANGE[1]))
        else:
            pitch = round(pitch, 1)
    semitones = round(12 * math.log2(pf), 2) if voice.hts else 0.0
    return UttSettings(speed, pf, rate, pitch, round(voice.stretch / speed, 3), semitones)


def _espeak(lang: str, voice: str, name: str, rate: int, pitch: int, held_out: bool = False) -> Voice:
    return Voice(lang, "espeak", voice, name, rate=rate, pitch=pitch, package="espeak-ng-data",
                 gain_db=-1.0, held_out=held_out)


def _flite(voice: str, stretch: float, pitch: float | None = None, held_out: bool = False) -> Voice:
    return Voice("en", "flite", voice, voice, pitch=pitch, stretch=stretch, package="flite", held_out=held_out)


def _festival(lang: str, voice: str, name: str, package: str, stretch: float, pitch: float | None,
              encoding: str = "latin-1", held_out: bool = False) -> Voice:
    return Voice(lang, "festival", voice, name, pitch=pitch, stretch=stretch, package=package,
                 encoding=encoding, gain_db=-1.0, held_out=held_out)


# The inventory (checked to synthesize 0.3-0.5 s per word). The Czech festival voices share one
# duration model: their stretches differ. held_out voices read only the voice-disjoint test_unseen:
# per language one or two voices of engines that ARE seen in training.
VOICES: tuple[Voice, ...] = (
    _espeak("en", "en-us+m3", "usm3", rate=165, pitch=45),
    _espeak("en", "en-gb+f2", "gbf2", rate=150, pitch=70),
    _espeak("en", "en-gb-scotland+m1", "scotm1", rate=175, pitch=35),
    _espeak("en", "en-gb-x-rp+m2", "rpm2", rate=160, pitch=50),
    _espeak("en", "en-029+m4", "carm4", rate=155, pitch=40),
    _espeak("en", "en-gb-x-gbclan+f1", "lanf1", rate=165, pitch=60),
    _espeak("en", "en-us+f4", "usf4", rate=170, pitch=75),
    _espeak("en", "en-gb-x-gbcwmd+m7", "wmdm7", rate=150, pitch=45),
    _espeak("en", "en-us-nyc+m5", "nycm5", rate=160, pitch=40, held_out=True),
    _flite("slt", stretch=1.0, pitch=175),
    _flite("rms", stretch=1.1, held_out=True),  # ignores the F0 target: only its speed varies
    _flite("awb", stretch=0.95, pitch=110),
    _flite("kal16", stretch=1.05, pitch=120),
    _festival("en", "kal_diphone", "kal", "festvox-kallpc16k", stretch=1.0, pitch=115),
    _festival("en", "ked_diphone", "ked", "festvox-kdlpc16k", stretch=1.15, pitch=95, held_out=True),
    _festival("en", "cmu_us_slt_arctic_hts", "slthts", "festvox-us-slt-hts", stretch=1.0, pitch=None),
    _festival("cs", "czech_dita", "dita", "festvox-czech-dita", 1.0, 215, "iso-8859-2"),
    _festival("cs", "czech_machac", "machac", "festvox-czech-machac", 1.12, 85, "iso-8859-2"),
    _festival("cs", "czech_krb", "krb", "festvox-czech-krb", 0.9, 240, "iso-8859-2"),
    _festival("cs", "czech_ph", "ph", "festvox-czech-ph", 1.05, 120, "iso-8859-2", held_out=True),
    _espeak("cs", "cs+m1", "m1", rate=150, pitch=40),
    _espeak("cs", "cs+f3", "f3", rate=140, pitch=65),
    _espeak("cs", "cs+m4", "m4", rate=165, pitch=30),
    _espeak("cs", "cs+f1", "f1", rate=155, pitch=70),
    _espeak("cs", "cs+m2", "m2", rate=145, pitch=50),
    _espeak("cs", "cs+f5", "f5", rate=150, pitch=60, held_out=True),
    # Polish (a source language closer to Czech; bench/source_language.sh): espeak-ng only, so
    # its voices are fewer kinds than English's three engines.
    _espeak("pl", "pl+m1", "m1", rate=155, pitch=40),
    _espeak("pl", "pl+f2", "f2", rate=145, pitch=70),
    _espeak("pl", "pl+m3", "m3", rate=170, pitch=35),
    _espeak("pl", "pl+f4", "f4", rate=160, pitch=75),
    _espeak("pl", "pl+m5", "m5", rate=150, pitch=50),
    _espeak("pl", "pl+f1", "f1", rate=165, pitch=65),
    _espeak("pl", "pl+m7", "m7", rate=145, pitch=45),
    _espeak("pl", "pl+f3", "f3", rate=155, pitch=60),
    _espeak("pl", "pl+m2", "m2", rate=160, pitch=40, held_out=True),
)


def voices_for(language: str, held_out: bool | None = False) -> list[Voice]:
    """The inventory's voices of one language: those of train/dev/test (held_out=False, the
    default), the held-out ones of test_unseen (True), or all (None). GraftError if it has none."""
    every = [v for v in VOICES if v.language == language]
    if not every:
        known = sorted({v.language for v in VOICES})
        raise GraftError(f"no TTS voices for language {language!r}: known are {', '.join(known)}")
    out = [v for v in every if held_out is None or v.held_out == held_out]
    if not out:
        raise GraftError(f"no {'held-out' if held_out else 'training'} TTS voices for language "
                         f"{language!r} in graft/data/tts.py VOICES: mark some voices held_out=True "
                         f"(or set the unseen minutes to 0)")
    return out


# ---- checks ----------------------------------------------------------------------------

def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, **kw)


@functools.lru_cache(maxsize=None)
def _installed_voices(engine: str) -> frozenset[str]:
    if engine == "espeak":
        names = set()
        for arg in ("--voices", "--voices=variant"):
            for line in _run(["espeak-ng", arg], text=True).stdout.splitlines()[1:]:
                cols = line.split()
                if len(cols) >= 5:
                    names.add(cols[1] if arg == "--voices" else "+" + cols[4].split("/")[-1])
                    if arg == "--voices":
                        names.add(cols[4].split("/")[-1])
        return frozenset(names)
    if engine == "flite":
        out = _run(["flite", "-lv"], text=True).stdout
        return frozenset(out.split(":", 1)[-1].split())
    if engine == "festival":
        out = _run(["festival", "-b", "(print (voice.list))"], text=True).stdout
        return frozenset(out.strip().strip("()").split())
    raise GraftError(f"unknown TTS engine {engine!r}: known are {', '.join(ENGINES)}")


def check_voice(voice: Voice) -> None:
    """Raise GraftError naming the engine/voice and the Debian package when it is missing."""
    if voice.engine not in ENGINES:
        raise GraftError(f"unknown TTS engine {voice.engine!r} for {voice.speaker}: "
                         f"known are {', '.join(ENGINES)}")
    binary, package = ENGINES[voice.engine]
    for b, p in ((binary, package), ("sox", "sox")):
        if shutil.which(b) is None:
            raise GraftError(f"{b} is not installed (needed by {voice.speaker}): apt-get install {p}")
    have = _installed_voices(voice.engine)
    if voice.engine == "espeak":
        lang, _, variant = voice.voice.partition("+")
        missing = lang not in have or (variant and "+" + variant not in have)
    else:
        missing = voice.voice not in have
    if missing:
        raise GraftError(f"{voice.engine} voice {voice.voice!r} ({voice.speaker}) is not installed: "
                         f"apt-get install {voice.package or package}")


def check_voices(voices: Sequence[Voice]) -> None:
    """`check_voice` for each voice."""
    for v in voices:
        check_voice(v)


# ---- synthesis -------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthItem:
    """One utterance to synthesize: id, the text to read, and the wav to write."""

    id: str
    text: str
    path: Path


@dataclass
class BatchResult:
    """What a batch wrote: seconds per written id, failure reason per failed id, wall time."""

    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0


class _Reject(Exception):
    def __init__(self, reason: str, per_word: float | None = None):
        super().__init__(reason)
        self.per_word = per_word


def _commit(raw: Path, dst: Path, n_words: int, gain_db: float) -> float:
    """Convert `raw` to a 16 kHz mono 16-bit wav at `dst` (atomically); return its duration."""
    if not raw.exists() or raw.stat().st_size <= 44:
        raise _Reject("empty audio" if raw.exists() else "no audio")
    try:
        info = sf.info(str(raw))
    except RuntimeError:
        raise _Reject("unreadable audio") from None
    with atomic_path(dst) as tmp:
        if info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16" and not gain_db:
            shutil.copyfile(raw, tmp)
        else:
            cmd = ["sox", "-V1", "-R", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(tmp)]
            if gain_db:
                cmd += ["gain", f"{gain_db:g}"]
            cmd += ["rate", "-h"]
            if _run(cmd).returncode != 0 or not tmp.exists():
                raise _Reject("conversion failed")
        audio, sr = sf.read(str(tmp), dtype="int16")
        seconds = len(audio) / sr
        if seconds < MIN_SECONDS or not np.any(np.abs(audio) > 64):
            raise _Reject("empty audio")
        per_word = seconds / max(n_words, 1)
        if not MIN_SECONDS_PER_WORD <= per_word <= MAX_SECONDS_PER_WORD:
            raise _Reject("implausible duration", per_word)
    return seconds


def _espeak_cmd(voice: Voice, out: Path, st: UttSettings) -> list[str]:
    """espeak-ng's command line for one utterance (the text comes on stdin)."""
    cmd = ["espeak-ng", "-b", "1", "-v", voice.voice, "-w", str(out)]
    if st.rate:
        cmd += ["-s", str(st.rate)]
    if st.pitch is not None:
        cmd += ["-p", str(int(st.pitch))]
    return cmd


def _flite_cmd(voice: Voice, text_file: Path, out: Path, st: UttSettings) -> list[str]:
    """flite's command line for one utterance."""
    cmd = ["flite", "-voice", voice.voice, "-f", str(text_file), "-o", str(out),
           "--setf", f"duration_stretch={st.stretch:g}"]
    if st.pitch is not None:
        cmd += ["--setf", f"int_f0_target_mean={st.pitch:g}"]
    return cmd


def _one_by_one(voice: Voice, items: Sequence[SynthItem], work: Path) -> dict[str, Path]:
    """espeak-ng and flite: one process per utterance. Returns id -> raw wav."""
    raws = {}
    for i, it in enumerate(items):
        raw = work / f"{i}.wav"
        settings = utterance_settings(voice, it.id)
        try:
            if voice.engine == "espeak":
                p = _run(_espeak_cmd(voice, raw, settings), input=it.text.encode(voice.encoding), timeout=120)
            else:
                txt = work / f"{i}.txt"
                txt.write_bytes(it.text.encode(voice.encoding))
                p = _run(_flite_cmd(voice, txt, raw, settings), timeout=120)
        except (subprocess.TimeoutExpired, UnicodeEncodeError):
            continue  # no raw audio: reported as an engine error
        if p.returncode == 0:
            raws[it.id] = raw
    return raws


def _festival_setup(voice: Voice) -> str:
    """The start of a batch script: select the voice (per-utterance settings follow each)."""
    lines = [f"(voice_{voice.voice})"]
    if voice.hts:  # keep the voice's own engine options to append the utterance's to
        lines.append("(set! graft_hts_params hts_engine_params)")
    if voice.voice.startswith("czech_"):
        lines.append("(czech-rand)")  # its first call draws 100 numbers: do it before any srand
    return "\n".join(lines) + "\n"


def _festival_utt_setup(voice: Voice, settings: UttSettings) -> str:
    """The settings of one utterance inside the batch script: duration stretch and F0 mean
    (diphone and Czech voices), or hts_engine's speed and half-tone shift (HTS voices)."""
    if voice.hts:
        speed = 1 / settings.stretch  # the voice's stretch, moved by the utterance's speed
        return (f"(set! hts_engine_params (append graft_hts_params (list (list \"-r\" {speed:.4g}) "
                f"(list \"-fm\" {settings.semitones:g}))))\n")
    lines = [f"(Parameter.set 'Duration_Stretch {settings.stretch:g})"]
    if settings.pitch is not None:
        if voice.voice.startswith("czech_"):
            lines.append(f"(set-car! (cdr (assq 'f0_mean int_general_params)) {settings.pitch:g})")
        else:
            lines.append(f"(set-car! (cdr (assq 'target_f0_mean int_lr_params)) {settings.pitch:g})")
    return "\n".join(lines) + "\n"


def _festival(voice: Voice, items: Sequence[SynthItem], work: Path, failed: dict[str, str]) -> dict[str, Path]:
    """One festival process for the batch; after a crash, go on after the utterance at fault."""
    raws: dict[str, Path] = {}
    todo = []
    for i, it in enumerate(items):
        text = it.text.replace("\\", " ").replace('"', " ").strip()
        try:
            text.encode(voice.encoding)
        except UnicodeEncodeError:
            failed[it.id] = "unencodable text"
            continue
        if not any(ch.isalpha() for ch in text):
            failed[it.id] = "empty text"  # festival crashes on an empty utterance
            continue
        todo.append((it.id, text, work / f"{i}.wav"))
    stuck = 0
    while todo:
        script = [_festival_setup(voice)]
        for uid, text, raw in todo:
            seed = zlib.crc32(uid.encode()) % 100000  # the Czech voices randomize pauses
            script.append(_festival_utt_setup(voice, utterance_settings(voice, uid)))
            script.append(f'(srand {seed})\n(unwind-protect (utt.save.wave (utt.synth '
                          f'(Utterance Text "{text}")) "{raw}" \'riff) nil)\n')
        scm = work / "batch.scm"
        scm.write_bytes("".join(script).encode(voice.encoding))
        try:
            p = _run(["festival", "-b", str(scm)], timeout=60 + 10 * len(todo))
            ok = p.returncode == 0
            err = p.stderr.decode(voice.encoding, "replace").strip() or f"exit status {p.returncode}"
        except subprocess.TimeoutExpired:
            ok, err = False, "timeout"
        rest = []
        for uid, text, raw in todo:
            if raw.exists():
                raws[uid] = raw
            elif ok:
                failed[uid] = "no audio"
            else:
                rest.append((uid, text, raw))
        if not rest:
            break
        log.warning(f"festival ({voice.speaker}) failed at {rest[0][0]}: {err[-300:]}")
        stuck = stuck + 1 if len(rest) == len(todo) else 0
        if stuck >= 2:  # nothing comes out: the voice itself is broken
            failed.update((uid, "engine error") for uid, _, _ in rest)
            break
        failed[rest[0][0]] = "engine error"  # the first missing one made festival fail
        todo = rest[1:]
    return raws


def synthesize_batch(voice: Voice, items: Sequence[SynthItem]) -> BatchResult:
    """Synthesize `items` with one voice; write each as a 16 kHz wav (atomically).

    Failed or empty outputs are reported in `result.failed` (id -> reason), not raised.
    Raises GraftError when the median seconds per word of the batch (3 or more utterances)
    is implausible: the engine reads the text in a wrong encoding or the voice is broken.
    """
    t0 = time.perf_counter()
    result = BatchResult()
    with tempfile.TemporaryDirectory(prefix="graft-tts-") as tmp:
        work = Path(tmp)
        if voice.engine == "festival":
            raws = _festival(voice, items, work, result.failed)
        elif voice.engine in ("espeak", "flite"):
            raws = _one_by_one(voice, items, work)
        else:
            raise GraftError(f"unknown TTS engine {voice.engine!r} for {voice.speaker}")
        per_word = []
        for it in items:
            if it.id in result.failed:
                continue
            n_words = len(_WORD.findall(it.text))
            try:
                if it.id not in raws:
                    raise _Reject("engine error")
                result.seconds[it.id] = _commit(raws[it.id], it.path, n_words, voice.gain_db)
                per_word.append(result.seconds[it.id] / max(n_words, 1))
            except _Reject as e:
                result.failed[it.id] = str(e)
                if e.per_word is not None:
                    per_word.append(e.per_word)
    if len(per_word) >= 3:
        median = statistics.median(per_word)
        if not VOICE_SECONDS_PER_WORD[0] <= median <= VOICE_SECONDS_PER_WORD[1]:
            for uid in result.seconds:  # do not leave audio of a broken voice behind
                next(it.path for it in items if it.id == uid).unlink(missing_ok=True)
            raise GraftError(
                f"{voice.engine} voice {voice.voice} ({voice.speaker}) speaks {median:.2f} s per word "
                f"(median of {len(per_word)}; expected {VOICE_SECONDS_PER_WORD[0]}-{VOICE_SECONDS_PER_WORD[1]}): "
                f"wrong text encoding ({voice.encoding}) for the engine, or a broken voice?")
    result.wall_seconds = time.perf_counter() - t0
    return result


def seconds_per_word(seconds: Sequence[float], words: Sequence[int]) -> float:
    """Median seconds per word over utterances (0 if none): the per-voice sanity figure."""
    vals = [s / max(w, 1) for s, w in zip(seconds, words)]
    return statistics.median(vals) if vals else 0.0
