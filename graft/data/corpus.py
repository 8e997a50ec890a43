"""The folder corpus index `transcripts.tsv` (stage 0's output): its one writer and one reader.

Usage:
    write_transcripts("data/corpus/cs/transcripts.tsv", utterances, "cs")
    rows = read_transcripts("data/corpus/cs/transcripts.tsv")   # list[Utterance]

The file is tab-separated with the header `id audio text speaker language split`; `audio` is
relative to the tsv's folder (or absolute); every row has a split (train, dev or test, or the
optional test_unseen: a test set of speakers heard in no other split): stage 0 assigns them.
The reader refuses a file that breaks this contract, naming the line, and both refuse a
test_unseen speaker who also speaks in train, dev or test.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from graft.utils.errors import GraftError, require_file
from graft.utils.io import atomic_write

REQUIRED_SPLITS = ("train", "dev", "test")  # every corpus has these
OPTIONAL_SPLITS = ("test_unseen",)  # a corpus may have these: a test set of voices no other split has
SPLITS = REQUIRED_SPLITS + OPTIONAL_SPLITS
SPLIT_NAMES = "train, dev, test or test_unseen"


def present_splits(splits) -> list[str]:
    """The required splits, then the optional ones among `splits` (in SPLITS order)."""
    have = set(splits)
    return list(REQUIRED_SPLITS) + [s for s in OPTIONAL_SPLITS if s in have]
TSV_COLUMNS = ("id", "audio", "text", "speaker", "language", "split")


@dataclass
class Utterance:
    """One utterance of a corpus: a whole audio file and its transcript."""

    id: str
    audio: Path
    text: str
    speaker: str = ""
    language: str = ""
    split: str = ""
    sampling_rate: int | None = None  # known from the corpus reader; else probed
    duration: float | None = None


def _tsv_audio(audio: Path, corpus_dir: Path) -> str:
    """Audio path as written in transcripts.tsv: relative to it when the audio is inside the
    corpus dir or given relative (to the working dir); otherwise absolute as given."""
    inside = Path(os.path.abspath(audio)).is_relative_to(os.path.abspath(corpus_dir))
    return os.path.relpath(audio, corpus_dir) if inside or not audio.is_absolute() else str(audio)


def check_unseen_speakers(utts: Iterable[Utterance], where: str | os.PathLike) -> None:
    """GraftError when a speaker of test_unseen also speaks in train, dev or test."""
    unseen = {u.speaker or u.id for u in utts if u.split == "test_unseen"}
    shared = sorted({u.speaker or u.id for u in utts if u.split in REQUIRED_SPLITS} & unseen)
    if shared:
        raise GraftError(f"{where}: test_unseen must be speaker-disjoint from train/dev/test, but "
                         f"{len(shared)} speaker(s) are in both, e.g. {shared[0]!r}: move them out "
                         f"of test_unseen or out of the other splits")


def write_transcripts(path: str | os.PathLike, utts: Iterable[Utterance], language: str) -> None:
    """Write the index atomically; a missing speaker becomes the id. GraftError on a bad split
    or a test_unseen speaker who also speaks in another split."""
    path = Path(path)
    utts = list(utts)
    check_unseen_speakers(utts, path)
    with atomic_write(path) as f:
        f.write("\t".join(TSV_COLUMNS) + "\n")
        for u in utts:
            for name, value in (("id", u.id), ("text", u.text), ("speaker", u.speaker)):
                if "\t" in value or "\n" in value:
                    raise GraftError(f"{path}: the {name} of utterance {u.id!r} contains a tab or newline")
            if u.split not in SPLITS:
                raise GraftError(f"{path}: utterance {u.id!r} has split {u.split!r} ({SPLIT_NAMES})")
            f.write("\t".join([u.id, _tsv_audio(Path(u.audio), path.parent), u.text, u.speaker or u.id,
                               u.language or language, u.split]) + "\n")


def read_transcripts(tsv: str | os.PathLike, language: str | None = None) -> list[Utterance]:
    """Read the index; GraftError naming the line on a missing column, id or split, or a duplicate id."""
    tsv = require_file(tsv, stage=0, what="the corpus index (transcripts.tsv)")
    rows: list[Utterance] = []
    seen: dict[str, int] = {}
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in TSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GraftError(f"{tsv}: missing column(s) {', '.join(missing)} in the header "
                             f"(need {' '.join(TSV_COLUMNS)}): re-run stage 0")
        for lineno, r in enumerate(reader, start=2):
            if None in r:
                raise GraftError(f"{tsv}:{lineno}: more fields than the header has")
            uid = (r.get("id") or "").strip()
            if not uid:
                raise GraftError(f"{tsv}:{lineno}: empty id")
            if uid in seen:
                raise GraftError(f"{tsv}:{lineno}: duplicate id '{uid}' (first on line {seen[uid]})")
            seen[uid] = lineno
            split = (r.get("split") or "").strip()
            if split not in SPLITS:
                raise GraftError(f"{tsv}:{lineno}: id '{uid}' has split {split!r}: every row needs "
                                 f"{SPLIT_NAMES} (stage 0 assigns them; re-run it)")
            rows.append(Utterance(
                id=uid,
                audio=tsv.parent / (r.get("audio") or "").strip(),
                text=r.get("text") or "",
                speaker=(r.get("speaker") or "").strip() or uid,
                language=(r.get("language") or "").strip() or (language or ""),
                split=split,
            ))
    if not rows:
        raise GraftError(f"{tsv}: no utterances: re-run stage 0")
    check_unseen_speakers(rows, tsv)
    return rows
