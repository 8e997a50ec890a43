"""Small corpora in the real layouts of LibriSpeech, Common Voice, yesno and a plain folder,
with speech synthesized here (espeak-ng, sox; mp3 and flac written with soundfile), and a
throw-away Graft tree to run recipes in.

Usage (in a test file):
    from corpus_fixtures import make_librispeech, graft_tree, run_recipe
    raw = make_librispeech(tmp_path / "download")        # LibriSpeech/<part>/<spk>/<chapter>/...
    root = graft_tree(tmp_path / "graft", recipes=["librispeech"])
    run_recipe(root, "librispeech", "--raw-dir", raw, "--stop-stage", "3")

The Graft tree links graft/, steps/, conf/ and .venv to this checkout and copies utils/,
local/ and the chosen egs/<name>/ASR/run.sh, so recipe outputs (data/, exp/) and new recipes
land in the temporary tree, never in the checkout.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]

EN_SENTENCES = [
    "the cat sat on the mat", "a dog ran in the park", "don't walk on the grass",
    "open the door please", "the sun is hot today", "we like green tea",
    "my hat is red", "the bird can sing", "turn the light off", "he reads a book",
    "the fish swims fast", "put the cup on the table", "it is cold at night",
    "they play ball after school", "the car is very old", "i see a big tree",
    "she sells sea shells", "the baby is asleep",
]
CS_SENTENCES = [
    "Dobrý den, jak se máte?", "Venku dnes prší.", "Kočka spí na okně.",
    "Mám rád horký čaj.", "Vlak přijede brzy ráno.", "Děti si hrají na zahradě.",
    "Kniha leží na stole.", "Zítra pojedeme k moři.", "Pes štěká na pošťáka.",
    "Řeka teče pomalu.", "V lese roste mnoho hub.", "Babička peče koláč.",
    "Na nebi svítí hvězdy.", "Otevři prosím okno.",
]


def speak(text: str, out: Path, rate: int = 16000, voice: str = "en") -> Path:
    """espeak-ng speech of `text` in `out` (.wav, .flac or .mp3) at `rate` Hz, mono."""
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_name(out.name + ".espeak.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw)], input=text.encode(),
                   check=True, capture_output=True)
    if out.suffix == ".mp3":  # this sox cannot write mp3; libsndfile (soundfile) can
        wav = out.with_name(out.name + ".tmp.wav")
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(wav), "gain", "-1"],
                       check=True, capture_output=True)
        data, sr = sf.read(wav, dtype="float32")
        sf.write(out, data, sr, format="MP3")
        wav.unlink()
    else:
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out), "gain", "-1"],
                       check=True, capture_output=True)
    raw.unlink()
    return out


# ---- LibriSpeech ---------------------------------------------------------------------------

# part -> (speaker, chapter, number of utterances)
LIBRISPEECH_PARTS = {
    "train-clean-5": [("19", "198", 5), ("26", "495", 5)],
    "dev-clean-2": [("84", "121123", 2)],
    "test-clean": [("1089", "134686", 3)],
}


def make_librispeech(raw_dir: Path) -> Path:
    """`raw_dir/LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac` and
    `<spk>-<chapter>.trans.txt` (UPPERCASE) for mini_librispeech + test-clean. One transcript
    line of test-clean has no flac. Returns raw_dir."""
    sentences = iter(EN_SENTENCES * 2)
    voices = iter(["en+m1", "en+f2", "en+m3", "en+f4"] * 4)
    for part, chapters in LIBRISPEECH_PARTS.items():
        for spk, chapter, n in chapters:
            d = raw_dir / "LibriSpeech" / part / spk / chapter
            voice = next(voices)
            lines = []
            for i in range(n):
                uid = f"{spk}-{chapter}-{i:04d}"
                text = next(sentences)
                speak(text, d / f"{uid}.flac", voice=voice)
                lines.append(f"{uid} {text.upper()}")
            if part == "test-clean":
                lines.append(f"{spk}-{chapter}-{n:04d} THIS LINE HAS NO AUDIO")
            (d / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return raw_dir


# ---- Common Voice --------------------------------------------------------------------------

CV_COLUMNS = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender",
              "accents", "variant", "locale", "segment"]


def make_commonvoice(raw_dir: Path, release: str = "cv-corpus-13.0-2023-03-09", lang: str = "cs") -> Path:
    """`raw_dir/<release>/<lang>/{train,dev,test,validated,invalidated,other}.tsv` with Common
    Voice's columns and `clips/*.mp3` (48 kHz). train: 6 clips of 2 speakers + a sentence with
    digits + a row whose clip is missing; dev, test: 2 clips each of their own speaker;
    validated: all of those plus 2 more train clips and one clip of the dev speaker.
    Returns the language dir."""
    lang_dir = raw_dir / release / lang
    clips = lang_dir / "clips"
    voices = {"aa11": "cs+m1", "bb22": "cs+f2", "cc33": "cs+m3", "dd44": "cs+f4"}
    sentences = iter(CS_SENTENCES)
    counter = iter(range(1000))

    def clip(client: str, text: str | None = None, make: bool = True) -> dict:
        name = f"common_voice_{lang}_{next(counter):05d}.mp3"
        text = text or next(sentences)
        if make:
            speak(text, clips / name, rate=48000, voice=voices[client])
        return {"client_id": client * 8, "path": name, "sentence": text, "up_votes": "2",
                "down_votes": "0", "age": "twenties", "gender": "male", "accents": "",
                "variant": "", "locale": lang, "segment": ""}

    train = [clip("aa11") for _ in range(3)] + [clip("bb22") for _ in range(3)]
    train.append(clip("aa11", text="Mám 3 psy."))  # digits: rejected by normalization
    train.append(clip("bb22", text="Tento klip chybí.", make=False))  # missing clip
    dev = [clip("cc33"), clip("cc33")]
    test = [clip("dd44"), clip("dd44")]
    extra = [clip("aa11"), clip("bb22"), clip("cc33")]  # validated only; the last: a dev speaker
    tables = {"train": train, "dev": dev, "test": test, "validated": train + dev + test + extra,
              "invalidated": [], "other": []}
    for name, rows in tables.items():
        lines = ["\t".join(CV_COLUMNS)] + ["\t".join(r[c] for c in CV_COLUMNS) for r in rows]
        (lang_dir / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lang_dir


# ---- yesno ---------------------------------------------------------------------------------

def make_yesno(raw_dir: Path) -> Path:
    """`raw_dir/waves_yesno/` with 60 8 kHz files like `0_1_0_0_1_0_1_1.wav` (8 words each,
    0 = "no", 1 = "yes", spoken by espeak-ng). Returns the wave dir."""
    wav_dir = raw_dir / "waves_yesno"
    wav_dir.mkdir(parents=True, exist_ok=True)
    words = {}
    for bit, word in (("0", "no"), ("1", "yes")):
        path = speak(word, raw_dir / f"{word}.wav", rate=8000)
        words[bit], _ = sf.read(path, dtype="int16")
        path.unlink()
    gap = np.zeros(800, dtype=np.int16)
    for n in random.Random(0).sample(range(256), 60):
        bits = format(n, "08b")
        audio = np.concatenate([np.concatenate([gap, words[b]]) for b in bits] + [gap])
        sf.write(wav_dir / f"{'_'.join(bits)}.wav", audio, 8000, subtype="PCM_16")
    return wav_dir


# ---- a plain folder ------------------------------------------------------------------------

def make_folder(root: Path, n: int = 16) -> tuple[Path, Path]:
    """`root/audio/` with n utterances (wav, every 4th at 22.05 kHz, one flac in a subfolder)
    plus odd files, and `root/transcripts.tsv` (id, text, speaker; no split column).
    Odd cases: audio no row names (extra.wav), a row without audio (ghost), a row whose audio
    is not audio (broken). Returns (audio dir, table)."""
    audio = root / "audio"
    rows = ["id\ttext\tspeaker"]
    voices = ["en+m1", "en+f2", "en+m3", "en+f4"]
    for i in range(n):
        uid = f"utt{i:02d}"
        text = EN_SENTENCES[i % len(EN_SENTENCES)]
        rate = 22050 if i % 4 == 3 else 16000
        out = audio / "sub" / f"{uid}.flac" if i == 5 else audio / f"{uid}.wav"
        speak(text, out, rate=rate, voice=voices[i % 4])
        rows.append(f"{uid}\t{text.capitalize()}.\tspk{i % 4}")
    speak("nobody wrote this down", audio / "extra.wav")
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    rows += ["ghost\tthere is no audio for this\tspk0", "broken\tthis file is broken\tspk1"]
    table = root / "transcripts.tsv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return audio, table


# ---- a throw-away Graft tree ---------------------------------------------------------------

def graft_tree(dest: Path, recipes: list[str] = ()) -> Path:
    """A Graft tree in `dest` for running recipes without writing into the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("graft", "steps", "conf", ".venv"):
        os.symlink(ROOT / name, dest / name)
    shutil.copytree(ROOT / "utils", dest / "utils")
    shutil.copytree(ROOT / "local", dest / "local", ignore=shutil.ignore_patterns("__pycache__"))
    for r in recipes:
        (dest / "egs" / r / "ASR").mkdir(parents=True)
        shutil.copy2(ROOT / "egs" / r / "ASR" / "run.sh", dest / "egs" / r / "ASR" / "run.sh")
    return dest


def run_recipe(root: Path, name: str, *args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run egs/<name>/ASR/run.sh of a Graft tree with the options `args`; raise with its
    output if it fails."""
    cmd = ["bash", str(root / "egs" / name / "ASR" / "run.sh"), *map(str, args)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p
