#!/usr/bin/env python3
"""LibriSpeech adapter (English read audiobooks, openslr.org/12; mini: openslr.org/31).

Usage:
    local/librispeech.py download --dl-dir data/corpus --raw-dir download --subset 100 \
        [--test-part test-clean] [--jobs 2]
    local/librispeech.py prepare --dl-dir data/corpus --language en \
        --out-dir data/manifests/en --train-subsets "" --seed 0

Subsets onto the recipe's splits (--subset; --test-part chooses test-clean or test-other):

    subset  train                                            dev          test
    mini    train-clean-5 (5 h)                              dev-clean-2  test-clean
    100     train-clean-100                                  dev-clean    test-clean
    460     train-clean-100 + train-clean-360                dev-clean    test-clean
    960     train-clean-100 + train-clean-360 + train-other-500  dev-clean  test-clean

Stage 0 gets only the parts that are missing from `<raw-dir>/LibriSpeech/<part>/`: from an
archive `<raw-dir>/<part>.tar.gz` if one is there, else with lhotse's download_librispeech;
without network it stops and says what to place where. It then lists the utterances with
lhotse's prepare_librispeech (the `<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac` tree and
its `<spk>-<chapter>.trans.txt` files), normalizes the UPPERCASE transcripts and writes the
folder corpus `<dl-dir>/en/` (graft.data.adapter). Stage 1 is the shared folder `prepare`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from graft.data import adapter  # the machinery every corpus adapter shares
from graft.utils.errors import GraftError

SUBSETS: dict[str, tuple[list[str], str]] = {
    "mini": (["train-clean-5"], "dev-clean-2"),
    "100": (["train-clean-100"], "dev-clean"),
    "460": (["train-clean-100", "train-clean-360"], "dev-clean"),
    "960": (["train-clean-100", "train-clean-360", "train-other-500"], "dev-clean"),
}
TEST_PARTS = ("test-clean", "test-other")
BASE_URL = "http://www.openslr.org/resources"


def parts_of(subset: str, test_part: str = "test-clean") -> dict[str, list[str]]:
    """LibriSpeech parts of each split for a subset name."""
    if subset not in SUBSETS:
        raise GraftError(f"unknown LibriSpeech subset {subset!r}: use one of {', '.join(SUBSETS)}")
    if test_part not in TEST_PARTS:
        raise GraftError(f"unknown test part {test_part!r}: use {' or '.join(TEST_PARTS)}")
    train, dev = SUBSETS[subset]
    return {"train": train, "dev": [dev], "test": [test_part]}


def _present(corpus_dir: Path, part: str) -> bool:
    part_dir = corpus_dir / part
    return part_dir.is_dir() and next(part_dir.rglob("*.trans.txt"), None) is not None


def get_parts(raw_dir: Path, parts: list[str], base_url: str = BASE_URL) -> Path:
    """Make sure `<raw_dir>/LibriSpeech/<part>/` exists for every part; return the LibriSpeech dir."""
    corpus_dir = raw_dir / "LibriSpeech"
    for part in parts:
        archive = raw_dir / f"{part}.tar.gz"
        if not _present(corpus_dir, part) and archive.is_file():
            adapter.extract_archive(archive, raw_dir)
    missing = [p for p in parts if not _present(corpus_dir, p)]
    if missing:
        from lhotse.recipes import download_librispeech

        where = ", ".join(f"{p}.tar.gz" for p in missing)
        adapter.fetch(
            f"LibriSpeech {' '.join(missing)} from {base_url}",
            lambda: download_librispeech(raw_dir, dataset_parts=missing, base_url=base_url),
            place=(f"get {where} (https://www.openslr.org/12, mini parts https://www.openslr.org/31) "
                   f"into {raw_dir}/, or unpack them so that {corpus_dir}/<part>/ holds the "
                   f"<spk>/<chapter>/*.flac and *.trans.txt files"),
            partial_files=[raw_dir / f"{p}.tar.gz" for p in missing],
        )
        still = [p for p in missing if not _present(corpus_dir, p)]
        if still:
            raise GraftError(f"LibriSpeech parts still missing after the download: {', '.join(still)}")
    return corpus_dir


def _transcript_lines(part_dir: Path) -> int:
    return sum(1 for t in part_dir.rglob("*.trans.txt")
               for line in t.read_text(encoding="utf-8").splitlines() if line.strip())


def librispeech_utterances(corpus_dir: Path, split_parts: dict[str, list[str]], language: str = "en",
                           jobs: int = 1) -> tuple[list[adapter.Utterance], adapter.ManifestReport]:
    """Utterances of the chosen parts, read with lhotse's prepare_librispeech."""
    from lhotse.recipes import prepare_librispeech

    parts = [p for ps in split_parts.values() for p in ps]
    manifests = prepare_librispeech(corpus_dir, dataset_parts=parts, output_dir=None, num_jobs=jobs)
    report = adapter.new_report()
    utts: list[adapter.Utterance] = []
    for split, split_ps in split_parts.items():
        for part in split_ps:
            recordings, supervisions = manifests[part]["recordings"], manifests[part]["supervisions"]
            lost = _transcript_lines(corpus_dir / part) - len(supervisions)
            if lost > 0:  # prepare_librispeech drops transcript lines whose flac is missing
                report.skipped["missing audio (transcript without audio)"] += lost
                report.skipped_examples.setdefault("missing audio (transcript without audio)", []).append(
                    f"{lost} in {corpus_dir / part}")
            for sup in supervisions:
                rec = recordings[sup.recording_id]
                utts.append(adapter.Utterance(
                    id=sup.id, audio=Path(rec.sources[0].source), text=sup.text, speaker=sup.speaker or "",
                    language=language, split=split, sampling_rate=rec.sampling_rate, duration=rec.duration))
    return utts, report


def add_download_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw-dir", type=Path, default=Path("download"),
                   help="where the archives and LibriSpeech/<part>/ are (or go)")
    p.add_argument("--subset", default="100", help=f"training data: {', '.join(SUBSETS)}")
    p.add_argument("--test-part", default="test-clean", help=" or ".join(TEST_PARTS))
    p.add_argument("--language", default="en", help="language code of the folder corpus")
    p.add_argument("--jobs", type=int, default=1, help="threads reading the audio headers")
    p.add_argument("--base-url", default=BASE_URL, help="OpenSLR mirror")


def download(args: argparse.Namespace) -> dict:
    """Stage 0: get the missing parts, then write the folder corpus <dl-dir>/<language>/."""
    split_parts = parts_of(args.subset, args.test_part)
    corpus_dir = get_parts(args.raw_dir, [p for ps in split_parts.values() for p in ps], args.base_url)
    utts, report = librispeech_utterances(corpus_dir, split_parts, args.language, args.jobs)
    source = {"corpus": "LibriSpeech", "dir": str(corpus_dir), "subset": args.subset, **split_parts}
    return adapter.write_corpus(utts, args.dl_dir, args.language, report=report, source=source,
                               lm_text=args.lm_text)


if __name__ == "__main__":
    adapter.main(__doc__, add_download_args, download)
