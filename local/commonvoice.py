#!/usr/bin/env python3
"""Mozilla Common Voice adapter (read sentences, crowd-sourced, one language per archive).

Usage:
    local/commonvoice.py download --dl-dir data/corpus --raw-dir download --language cs \
        [--release cv-corpus-13.0-2023-03-09] [--train-part train] [--jobs 2]
    local/commonvoice.py prepare --dl-dir data/corpus --language cs \
        --out-dir data/manifests/cs --train-subsets "15 30 60" --seed 0

Layout (as Common Voice archives unpack): `<raw-dir>/<release>/<lang>/` with `train.tsv`,
`dev.tsv`, `test.tsv`, `validated.tsv` (columns client_id, path, sentence, up_votes,
down_votes, age, gender, accents, variant, locale, segment) and `clips/*.mp3`.

Splits: dev = dev.tsv, test = test.tsv (Common Voice's official, speaker-disjoint splits);
train = train.tsv (--train-part train, the default) or validated.tsv (--train-part validated:
more clips per sentence) minus every clip, speaker and sentence of dev and test (counted).

Stage 0 uses the unpacked folder if it is there, else an archive `<raw-dir>/<lang>.tar.gz` or
`<raw-dir>/<release>-<lang>.tar.gz`, else lhotse's download_commonvoice; without network it
stops and says what to place where (Common Voice downloads need accepting its terms on its web
site: usually a manual step). The clips are listed with lhotse's prepare_commonvoice, the
sentences normalized with graft.data.text (a language needs an entry there), and the folder
corpus `<dl-dir>/<lang>/` written (graft.data.adapter). The mp3 clips (48 kHz or 32 kHz) are
resampled to 16 kHz in stage 1.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from graft.data import adapter  # the machinery every corpus adapter shares
from graft.utils.errors import GraftError, require_file

RELEASE = "cv-corpus-13.0-2023-03-09"
BASE_URL = "https://mozilla-common-voice-datasets.s3.dualstack.us-west-2.amazonaws.com"
# The columns lhotse's Common Voice reader needs (`variant` appeared in release 13.0).
READER_COLUMNS = ("client_id", "path", "sentence", "age", "gender", "accents", "variant")
TRAIN_PARTS = ("train", "validated")


def _present(lang_dir: Path) -> bool:
    return (lang_dir / "train.tsv").is_file() and (lang_dir / "clips").is_dir()


def get_language(raw_dir: Path, release: str, language: str, base_url: str = BASE_URL) -> Path:
    """Make sure `<raw_dir>/<release>/<language>/` is unpacked; return it."""
    lang_dir = raw_dir / release / language
    if not _present(lang_dir):
        for archive in (raw_dir / f"{language}.tar.gz", raw_dir / f"{release}-{language}.tar.gz"):
            if archive.is_file():
                adapter.extract_archive(archive, raw_dir)
                break
    if not _present(lang_dir):
        from lhotse.recipes.commonvoice import download_commonvoice

        adapter.fetch(
            f"Common Voice {release} {language}",
            lambda: download_commonvoice(raw_dir, languages=[language], release=release, base_url=base_url),
            place=(f"download {release}-{language}.tar.gz from https://commonvoice.mozilla.org/datasets "
                   f"(accept the terms there) into {raw_dir}/, or unpack it so that "
                   f"{lang_dir}/train.tsv and {lang_dir}/clips/ exist"),
            partial_files=[raw_dir / f"{language}.tar.gz"],
        )
        if not _present(lang_dir):
            raise GraftError(f"{lang_dir}: no train.tsv and clips/ after unpacking the archive: "
                             f"is --release {release} the archive's release?")
    return lang_dir


def _check_columns(tsv: Path) -> None:
    require_file(tsv, what="a Common Voice split table")
    with open(tsv, encoding="utf-8", newline="") as f:
        header = next(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), [])
    missing = [c for c in READER_COLUMNS if c not in header]
    if missing:
        raise GraftError(f"{tsv}: no column(s) {', '.join(missing)}: lhotse's Common Voice reader "
                         f"needs {', '.join(READER_COLUMNS)} (releases 13.0 and later)")


def commonvoice_utterances(lang_dir: Path, language: str, train_part: str = "train",
                           jobs: int = 1) -> tuple[list[adapter.Utterance], adapter.ManifestReport]:
    """Utterances of train (train.tsv or validated.tsv), dev and test, read with lhotse."""
    from lhotse.recipes import prepare_commonvoice

    if train_part not in TRAIN_PARTS:
        raise GraftError(f"--train-part must be {' or '.join(TRAIN_PARTS)}, not {train_part!r}")
    parts = {"train": train_part, "dev": "dev", "test": "test"}
    for part in parts.values():
        _check_columns(lang_dir / f"{part}.tsv")
    with tempfile.TemporaryDirectory(prefix="cv-manifests-") as tmp, _in_process(jobs):
        manifests = prepare_commonvoice(lang_dir.parent, tmp, languages=[lang_dir.name],  # it insists on writing
                                        splits=list(parts.values()), num_jobs=jobs)[lang_dir.name]
    report = adapter.new_report()
    held_out = {"ids": set(), "speakers": set(), "sentences": set()}
    for split in ("dev", "test"):
        for sup in manifests[split]["supervisions"]:
            held_out["ids"].add(sup.id)
            held_out["speakers"].add(sup.speaker)
            held_out["sentences"].add(sup.text)
    utts: list[adapter.Utterance] = []
    overlap: dict[str, list[str]] = {}
    for split, part in parts.items():
        recordings, supervisions = manifests[part]["recordings"], manifests[part]["supervisions"]
        have = {sup.id for sup in supervisions}
        lost = [c for c in _clip_ids(lang_dir / f"{part}.tsv") if c not in have]
        adapter.count_skips(report, "missing audio (transcript without audio)",  # lhotse drops them
                           [f"{part}.tsv: {c}" for c in lost])
        for sup in supervisions:
            if split == "train" and part == "validated":
                why = ("clip of dev/test" if sup.id in held_out["ids"] else
                       "speaker of dev/test" if sup.speaker in held_out["speakers"] else
                       "sentence of dev/test" if sup.text in held_out["sentences"] else "")
                if why:
                    overlap.setdefault(f"validated.tsv: {why}", []).append(sup.id)
                    continue
            rec = recordings[sup.recording_id]
            utts.append(adapter.Utterance(
                id=sup.id, audio=Path(rec.sources[0].source), text=sup.text, speaker=sup.speaker or "",
                language=language, split=split, sampling_rate=rec.sampling_rate, duration=rec.duration))
    for why, ids in overlap.items():
        adapter.count_skips(report, why, ids)
    return utts, report


def _clip_ids(tsv: Path) -> list[str]:
    """The clip ids (file names without .mp3) a split table lists."""
    with open(tsv, encoding="utf-8", newline="") as f:
        return [Path(r["path"]).stem for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


@contextlib.contextmanager
def _in_process(jobs: int) -> Iterator[None]:
    """With one job, run lhotse's Common Voice reader in this process: it starts a spawned
    process pool per split even for one worker, which costs seconds of start-up each."""
    import lhotse.recipes.commonvoice as cv

    if jobs > 1:
        yield
        return
    original = cv.ProcessPoolExecutor
    cv.ProcessPoolExecutor = lambda max_workers=1, mp_context=None: ThreadPoolExecutor(max_workers)
    try:
        yield
    finally:
        cv.ProcessPoolExecutor = original


def add_download_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw-dir", type=Path, default=Path("download"),
                   help="where the archive and <release>/<lang>/ are (or go)")
    p.add_argument("--language", required=True, help="Common Voice language code, e.g. cs")
    p.add_argument("--release", default=RELEASE, help="Common Voice release (the archive's top folder)")
    p.add_argument("--train-part", default="train", help=" or ".join(TRAIN_PARTS))
    p.add_argument("--jobs", type=int, default=1, help="processes reading the clip headers")
    p.add_argument("--base-url", default=BASE_URL, help="download server")


def download(args: argparse.Namespace) -> dict:
    """Stage 0: get the language's archive if missing, then write the folder corpus."""
    lang_dir = get_language(args.raw_dir, args.release, args.language, args.base_url)
    utts, report = commonvoice_utterances(lang_dir, args.language, args.train_part, args.jobs)
    source = {"corpus": "Common Voice", "dir": str(lang_dir), "release": args.release,
              "train": f"{args.train_part}.tsv", "dev": "dev.tsv", "test": "test.tsv"}
    return adapter.write_corpus(utts, args.dl_dir, args.language, report=report, source=source,
                               lm_text=args.lm_text)


if __name__ == "__main__":
    adapter.main(__doc__, add_download_args, download)
