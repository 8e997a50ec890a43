#!/usr/bin/env python3
"""yesno adapter (Kaldi's sanity-check corpus, openslr.org/1): 60 files of 8 Hebrew words
"yes"/"no" by one speaker, 8 kHz; the transcript is the file name (0 = NO, 1 = YES).

Usage:
    local/yesno.py download --dl-dir data/corpus --raw-dir download [--language en]
    local/yesno.py prepare --dl-dir data/corpus --language en --out-dir data/manifests/en \
        --train-subsets "" --seed 0

Layout: `<raw-dir>/waves_yesno/<w1>_<w2>_..._<w8>.wav`, e.g. `0_1_0_0_1_0_1_1.wav`.
Splits: lhotse's prepare_yesno gives train = the even files and test = the odd files of the
sorted list (30 each; icefall's yesno test set). Here test is those 30 files (240 words), and
every 5th file of lhotse's train half is dev: train 24 files, dev 6.
The transcripts are written in English letters (YES NO), so they are normalized as --language
en although the speech is Hebrew. Stage 1 resamples the 8 kHz audio to 16 kHz.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from graft.data import adapter  # the machinery every corpus adapter shares
from graft.utils.errors import GraftError

URL = "http://www.openslr.org/resources/1/waves_yesno.tar.gz"
NUM_FILES = 60
DEV_EVERY = 5


def _present(wav_dir: Path) -> bool:
    return len(list(wav_dir.glob("*.wav"))) == NUM_FILES


def get_waves(raw_dir: Path, url: str = URL) -> Path:
    """Make sure `<raw_dir>/waves_yesno/` holds the 60 files; return it."""
    wav_dir = raw_dir / "waves_yesno"
    archive = raw_dir / "waves_yesno.tar.gz"
    if not _present(wav_dir) and archive.is_file():
        adapter.extract_archive(archive, raw_dir)
    if not _present(wav_dir):
        from lhotse.recipes import download_yesno

        adapter.fetch(f"yesno from {url}", lambda: download_yesno(raw_dir, url=url),
                     place=(f"get waves_yesno.tar.gz (https://www.openslr.org/1) into {raw_dir}/, or "
                            f"unpack it so that {wav_dir}/ holds the {NUM_FILES} files like 0_1_0_0_1_0_1_1.wav"),
                     partial_files=[archive])
    if not _present(wav_dir):
        found = len(list(wav_dir.glob("*.wav")))
        raise GraftError(f"{wav_dir}: {found} .wav files, expected {NUM_FILES} (named like 0_1_0_0_1_0_1_1.wav)")
    return wav_dir


def yesno_utterances(wav_dir: Path, language: str = "en") -> list[adapter.Utterance]:
    """The 60 utterances, read with lhotse's prepare_yesno, with train/dev/test splits."""
    from lhotse.recipes import prepare_yesno

    try:
        manifests = prepare_yesno(wav_dir)
    except AssertionError as e:
        raise GraftError(f"{wav_dir}: not the yesno layout (60 files named like 0_1_0_0_1_0_1_1.wav): {e}") from None
    utts: list[adapter.Utterance] = []
    for part in ("train", "test"):
        recordings, supervisions = manifests[part]["recordings"], manifests[part]["supervisions"]
        for i, sup in enumerate(sorted(supervisions, key=lambda s: s.id)):
            split = "dev" if part == "train" and i % DEV_EVERY == DEV_EVERY - 1 else part
            rec = recordings[sup.recording_id]
            utts.append(adapter.Utterance(
                id=sup.id, audio=Path(rec.sources[0].source), text=sup.text, speaker="yesno",
                language=language, split=split, sampling_rate=rec.sampling_rate, duration=rec.duration))
    return utts


def add_download_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw-dir", type=Path, default=Path("download"),
                   help="where waves_yesno.tar.gz and waves_yesno/ are (or go)")
    p.add_argument("--language", default="en", help="language of the written transcripts (YES, NO)")
    p.add_argument("--url", default=URL, help="where to download waves_yesno.tar.gz")


def download(args: argparse.Namespace) -> dict:
    """Stage 0: get waves_yesno if missing, then write the folder corpus <dl-dir>/<language>/."""
    wav_dir = get_waves(args.raw_dir, args.url)
    utts = yesno_utterances(wav_dir, args.language)
    source = {"corpus": "yesno", "dir": str(wav_dir), "train": "lhotse train (even files) minus dev",
              "dev": f"every {DEV_EVERY}th file of lhotse train", "test": "lhotse test (odd files)"}
    return adapter.write_corpus(utts, args.dl_dir, args.language, source=source, lm_text=args.lm_text)


if __name__ == "__main__":
    adapter.main(__doc__, add_download_args, download)
