"""The machinery every corpus adapter shares (`local/<corpus>.py`): get a corpus, list its
utterances, normalize and check them, draw splits, write the folder corpus (stage 0), and the
shared `prepare` command (stage 1) with the adapter command line.

Usage (an adapter):
    from graft.data import adapter

    def download(args):
        utts = [adapter.Utterance(id=..., audio=Path(...), text=..., speaker=..., split="train")]
        return adapter.write_corpus(utts, args.dl_dir, args.language)

    if __name__ == "__main__":
        adapter.main(__doc__, add_download_args, download)

`local/folder.py` is the bring-your-own-corpus adapter (`add_folder_args`, `download_folder`).
Stage 0 writes `<dl-dir>/<lang>/transcripts.tsv` (graft.data.corpus), an optional normalized
`lm_text.txt`, and `report.json` last. The transcript table a user gives is tab-separated
(`.csv`: comma-separated) with a header: `id` and `text` required; `audio`, `speaker`,
`language` and `split` optional. Counted and reported, not fatal: audio files no row names,
rows whose audio is missing or unreadable, texts that cannot be normalized, rows of another
language. Fatal, with the line named: duplicate ids, a row with more fields than the header,
an id matching two audio files, an unknown split name, a byte that is not in the table's
`--encoding` (default utf-8; the line, column and byte are named). Paths in messages are
absolute; a relative `--transcripts`/`--audio-dir` is shown with the folder it was resolved
from.
"""
from __future__ import annotations

import argparse
import codecs
import csv
import hashlib
import http.client
import json
import logging
import os
import socket
import sys
import tarfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

from graft.data.corpus import REQUIRED_SPLITS, SPLIT_NAMES, SPLITS, Utterance, present_splits, write_transcripts
from graft.data.manifests import ManifestReport, folder_to_manifests
from graft.data.text import normalize_verbose
from graft.utils.cli import run_main
from graft.utils.errors import GraftError, disk_error, require_file
from graft.utils.io import atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".sph", ".aiff", ".aif", ".au")


def new_report() -> ManifestReport:
    """The counters of stage 0 (the same shape as stage 1's report)."""
    return ManifestReport()


def count_skips(report: ManifestReport, reason: str, where: Iterable[str]) -> None:
    """Count many skipped items under one reason with one warning (not one per item)."""
    where = list(where)
    if not where:
        return
    report.skipped[reason] += len(where)
    examples = report.skipped_examples.setdefault(reason, [])
    examples.extend(where[: max(0, 5 - len(examples))])
    log.warning("skipped %d (%s), e.g. %s", len(where), reason, where[0])


# ---- getting a corpus ------------------------------------------------------------------

def extract_archive(archive: Path, target_dir: Path) -> None:
    """Unpack a .tar.gz into `target_dir`; GraftError naming the archive if it is broken."""
    from lhotse.utils import safe_extract

    log.info("extracting %s into %s", archive, target_dir)
    try:
        with tarfile.open(archive) as tar:
            safe_extract(tar, path=target_dir)
    except (tarfile.TarError, EOFError, OSError) as e:
        full = disk_error(e, target_dir, "then run stage 0 again: it unpacks the archive again")
        if full is not None:
            raise full from None
        raise GraftError(f"cannot unpack {archive} ({e}): an incomplete download? "
                         f"Delete it and run stage 0 again") from e


def fetch(what: str, download: Callable[[], object], place: str,
          partial_files: Iterable[Path] = ()) -> None:
    """Run a (lhotse) download function; on a network error raise a GraftError that says what
    to place where. Empty files the failed attempt left in `partial_files` are removed (lhotse
    creates the archive file before it connects). A full or read-only disk is not a network
    error: its own one-line GraftError, and the partial files the attempt made are removed."""
    existed = {Path(p): Path(p).exists() for p in partial_files}
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        download()
    except (OSError, http.client.HTTPException) as e:
        full = disk_error(e, after="then run stage 0 again") if isinstance(e, OSError) else None
        if full is not None:  # not a network error: do not tell the user to fetch it by hand
            for p, before in existed.items():
                if not before and p.is_file():  # cut short by the full disk: not an archive
                    p.unlink()
            raise full from None
        for p, before in existed.items():
            if not before and p.is_file() and p.stat().st_size == 0:
                p.unlink()
        raise GraftError(f"could not download {what} ({type(e).__name__}: {e}). "
                         f"Without network: {place}; then run stage 0 again") from None
    finally:
        socket.setdefaulttimeout(previous)


# ---- the folder corpus: reading a transcript table and a folder of audio ----------------

def shown_path(path: str | os.PathLike, option: str = "") -> str:
    """`path` as a message shows it: absolute, and for a relative path given as `option`, what
    it was resolved from (a recipe runs in its own folder, not where the user typed it)."""
    path = Path(path)
    resolved = os.path.abspath(path)
    if path.is_absolute() or not option:
        return resolved
    return f"{resolved} ({option} {path}, resolved from {os.getcwd()})"


def check_encoding(encoding: str) -> str:
    """The codec name of `encoding`; GraftError for an unknown one."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise GraftError(f"--encoding {encoding!r} is not an encoding Python knows (e.g. utf-8, cp1250, "
                         f"iso-8859-2, utf-16)") from None


def _decode_error(path: Path, encoding: str) -> GraftError:
    """Where a text file stops being `encoding`: the line, the column and the byte."""
    raw = path.read_bytes()
    if encoding.replace("_", "-").lower() in ("utf-8", "utf-8-sig", "utf8") and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return GraftError(f"{path}: the file is UTF-16 (it starts with a UTF-16 byte order mark; "
                          f"spreadsheets save \"Unicode text\" so): pass --encoding utf-16, or convert it: "
                          f"iconv -f utf-16 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}")
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        try:
            decoder.decode(line + b"\n")
        except UnicodeDecodeError as e:
            byte = line[e.start]
            return GraftError(
                f"{path}:{lineno}: byte 0x{byte:02x} at column {e.start + 1} (file offset {offset + e.start}) "
                f"is not valid {encoding}: the table is in another encoding (a Czech table from "
                f"Windows is often cp1250, or iso-8859-2): pass --encoding cp1250 (the recipe's "
                f"--encoding option), or convert it to UTF-8: iconv -f cp1250 -t utf-8")
        offset += len(line) + 1
    return GraftError(f"{path}: not valid {encoding} text: pass the right --encoding")


def read_table(path: Path, encoding: str = "utf-8", option: str = "--transcripts") -> list[dict[str, str]]:
    """Rows of a transcript table (tsv, or csv by extension) in `encoding`; GraftError naming
    the file (absolute) and line on a malformed file, and the byte when it is not `encoding`."""
    given = Path(path)
    path = Path(os.path.abspath(given))
    if not path.exists():
        raise GraftError(f"missing the transcript table {shown_path(given, option)}")
    if not path.is_file():
        raise GraftError(f"the transcript table {shown_path(given, option)} is not a file")
    codec = check_encoding(encoding)
    if codec == "utf-8":
        codec = "utf-8-sig"  # a BOM (Windows editors write one) is not part of the header
    is_csv = path.suffix.lower() == ".csv"
    rows: list[dict[str, str]] = []
    first_line: dict[str, int] = {}
    try:
        with open(path, encoding=codec, newline="") as f:
            reader = csv.DictReader(f, delimiter="," if is_csv else "\t",
                                    quoting=csv.QUOTE_MINIMAL if is_csv else csv.QUOTE_NONE)
            header = [(c or "").strip().lower() for c in (reader.fieldnames or [])]
            reader.fieldnames = header
            missing = [c for c in ("id", "text") if c not in header]
            if missing:
                sep = "comma" if is_csv else "tab"
                raise GraftError(f"{path}: the header lacks {', '.join(missing)} (a {sep}-separated "
                                 f"header with id, text and optionally audio, speaker, language, split; "
                                 f"found: {', '.join(header) or 'nothing'})")
            for r in reader:
                lineno = reader.line_num
                if None in r:
                    raise GraftError(f"{path}:{lineno}: more fields than the header has "
                                     f"(a {'comma' if is_csv else 'tab'} inside the text? quote it or remove it)")
                row = {k: (v or "").strip() for k, v in r.items()}
                uid = row.get("id", "")
                if not uid:
                    raise GraftError(f"{path}:{lineno}: empty id")
                if uid in first_line:
                    raise GraftError(f"{path}:{lineno}: duplicate id '{uid}' (first on line {first_line[uid]})")
                first_line[uid] = lineno
                rows.append(row)
    except UnicodeDecodeError:
        raise _decode_error(path, codec) from None
    except csv.Error as e:
        raise GraftError(f"{path}: not a readable {'csv' if is_csv else 'tab-separated'} table "
                         f"({e}): is it a text file?") from None
    if not rows:
        raise GraftError(f"{path}: no rows under the header")
    return rows


def scan_audio(audio_dir: Path, option: str = "--audio-dir") -> dict[str, list[Path]]:
    """Audio files under `audio_dir` (recursively) by file name without extension."""
    if not audio_dir.is_dir():
        what = "not a folder" if audio_dir.exists() else "not found"
        raise GraftError(f"audio folder {what}: {shown_path(audio_dir, option)}")
    found: dict[str, list[Path]] = {}
    for p in sorted(audio_dir.rglob("*")):
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            found.setdefault(p.stem, []).append(p)
    return found


def folder_utterances(audio_dir: Path, table: Path, language: str,
                      report: ManifestReport | None = None,
                      encoding: str = "utf-8") -> tuple[list[Utterance], ManifestReport]:
    """Match the rows of a transcript table (in `encoding`) with the audio files of a folder.
    Relative paths are resolved from the working directory (the recipe folder), and logged so."""
    report = report or new_report()
    audio_dir, table = Path(audio_dir), Path(table)
    for option, p in (("--audio-dir", audio_dir), ("--transcripts", table)):
        if not p.is_absolute():
            log.info("%s %s is %s", option, p, shown_path(p, option))
    rows = read_table(table, encoding)
    table = Path(os.path.abspath(table))
    by_stem = scan_audio(audio_dir)
    used: set[Path] = set()
    utts: list[Utterance] = []
    no_audio, other_lang = [], []
    for row in rows:
        uid = row["id"]
        if row.get("audio"):
            audio = audio_dir / row["audio"]
        else:
            candidates = by_stem.get(uid, [])
            if len(candidates) > 1:
                raise GraftError(f"{table}: id '{uid}' matches {len(candidates)} audio files "
                                 f"({', '.join(map(str, candidates[:3]))}): add an audio column to choose")
            audio = candidates[0] if candidates else audio_dir / f"{uid}.wav"
        used.add(audio.resolve())
        row_lang = row.get("language") or language
        if row_lang != language:
            other_lang.append(f"{table} id={uid} language={row_lang}")
            continue
        if not audio.is_file():
            no_audio.append(f"{table} id={uid}: {audio}")
            continue
        split = row.get("split", "").lower()
        if split and split not in SPLITS:
            raise GraftError(f"{table}: id '{uid}' has split '{row['split']}': use {SPLIT_NAMES}")
        utts.append(Utterance(id=uid, audio=audio, text=row.get("text", ""), speaker=row.get("speaker", ""),
                              language=language, split=split))
    count_skips(report, "missing audio (transcript without audio)", no_audio)
    count_skips(report, "other language", other_lang)
    unlisted = [str(p) for paths in by_stem.values() for p in paths if p.resolve() not in used]
    count_skips(report, "audio without transcript", unlisted)
    return utts, report


# ---- splits ------------------------------------------------------------------------------

def _hash_order(keys: Iterable[str], seed: int) -> list[str]:
    return sorted(set(keys), key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())


def assign_splits(utts: list[Utterance], dev_fraction: float, test_fraction: float,
                  seed: int = 0, split_by: str = "utterance") -> None:
    """Give every utterance a split: dev and test are the first keys (utterance ids or
    speakers) in a seeded hash order, at least one each when the fraction is > 0. The order of
    a key does not depend on the others, so adding files moves few utterances."""
    if split_by not in ("utterance", "speaker"):
        raise GraftError(f"--split-by must be utterance or speaker, not {split_by!r}")
    for name, value in (("--dev-fraction", dev_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= value < 1:  # also nan
            raise GraftError(f"{name} must be a share between 0 and 1 (e.g. 0.1), not {value}")
    key = (lambda u: u.speaker or u.id) if split_by == "speaker" else (lambda u: u.id)
    order = _hash_order((key(u) for u in utts), seed)
    n = len(order)
    n_dev = max(1, round(n * dev_fraction)) if dev_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    if n_dev + n_test >= n:
        raise GraftError(f"{n} {split_by}s are too few for dev fraction {dev_fraction} and test "
                         f"fraction {test_fraction}: train would be empty")
    split_of = {k: "dev" for k in order[:n_dev]}
    split_of.update({k: "test" for k in order[n_dev:n_dev + n_test]})
    for u in utts:
        u.split = split_of.get(key(u), "train")


# ---- writing the folder corpus -------------------------------------------------------------

def _probe(u: Utterance) -> str:
    """Fill in the sample rate and duration from the file header; "" or why it is unusable."""
    if u.sampling_rate and u.duration is not None:
        return ""
    from lhotse import Recording

    try:
        rec = Recording.from_file(u.audio, recording_id=u.id)
    except Exception as e:  # soundfile / audioread raise many types
        return f"({type(e).__name__}: {' '.join(str(e).split())[:300]})"
    u.sampling_rate, u.duration = rec.sampling_rate, rec.duration
    return ""


def write_lm_text(src: Path, dst: Path, language: str, encoding: str = "utf-8") -> dict:
    """Normalize an extra LM text (one sentence a line, in `encoding`) into `dst`; return
    counts. Lines with bytes that are not `encoding` are rejected and counted ("undecodable")."""
    src = require_file(src, what="the extra LM text")
    kept, rejected = 0, Counter()
    codec = check_encoding(encoding)
    with open(src, encoding=codec, errors="replace") as f, atomic_write(dst) as out:
        for line in f:
            if "\ufffd" in line:
                rejected[f"undecodable (not {codec}: see --encoding)"] += 1
                continue
            norm, reason = normalize_verbose(line, language)
            if norm is None:
                rejected[reason] += 1
                continue
            out.write(norm + "\n")
            kept += 1
    log.info("%s: %d LM sentences, rejected %s", dst, kept, dict(rejected))
    return {"source": str(src), "sentences": kept, "rejected": dict(rejected)}


def write_corpus(
    utts: list[Utterance],
    dl_dir: str | os.PathLike,
    language: str,
    report: ManifestReport | None = None,
    source: dict | None = None,
    dev_fraction: float = 0.0,
    test_fraction: float = 0.0,
    split_by: str = "utterance",
    seed: int = 0,
    lm_text: str | os.PathLike | None = None,
    encoding: str = "utf-8",
) -> dict:
    """Stage 0's output: normalize the texts, check the audio headers, give splits where none
    are set, and write `<dl_dir>/<language>/transcripts.tsv` (+ lm_text.txt) and report.json
    last. Return the report. GraftError if a split ends up empty."""
    report = report or new_report()
    corpus_dir = Path(dl_dir) / language
    kept: list[Utterance] = []
    skipped: dict[str, list[str]] = {}
    for u in utts:
        text, reason = normalize_verbose(u.text, language)
        if text is None:
            skipped.setdefault(f"text rejected ({reason})", []).append(f"id={u.id} text={u.text!r}")
            continue
        if not u.audio.is_file():
            skipped.setdefault("missing audio (transcript without audio)", []).append(f"id={u.id}: {u.audio}")
            continue
        error = _probe(u)
        if error:
            skipped.setdefault("unreadable audio", []).append(f"{u.audio} {error}")
            continue
        if u.duration <= 0:
            skipped.setdefault("empty audio", []).append(str(u.audio))
            continue
        u.text, u.language = text, language
        kept.append(u)
    for reason, where in skipped.items():
        count_skips(report, reason, where)
    if not kept:
        raise GraftError(f"{corpus_dir}: no usable utterance (skipped: {dict(report.skipped)})")

    with_split = [u for u in kept if u.split]
    if not with_split:
        assign_splits(kept, dev_fraction, test_fraction, seed, split_by)
    elif len(with_split) < len(kept):
        u = next(u for u in kept if not u.split)
        raise GraftError(f"{corpus_dir}: some utterances have a split and some (e.g. id '{u.id}') "
                         f"do not: give every row a split, or none (then --dev-fraction/--test-fraction)")
    counts = Counter(u.split for u in kept)
    empty = [s for s in REQUIRED_SPLITS if not counts[s]]
    if empty:
        raise GraftError(f"{corpus_dir}: no {' or '.join(empty)} utterances (have {dict(counts)}); every "
                         f"recipe needs train, dev and test: set the split column, or drop it and use "
                         f"--dev-fraction/--test-fraction")

    rates = Counter(u.sampling_rate for u in kept)
    if len(rates) > 1 or 16000 not in rates:
        log.warning("%s: sample rates %s: stage 1 resamples to 16 kHz", corpus_dir, dict(rates))
    corpus_dir.mkdir(parents=True, exist_ok=True)
    write_transcripts(corpus_dir / "transcripts.tsv", kept, language)
    for u in kept:
        report.kept[u.split] += 1
        report.seconds[u.split] += u.duration
    splits = present_splits(counts)  # train, dev, test (+ test_unseen when the corpus has it)
    result = {
        "source": source or {},
        "utterances": {s: report.kept[s] for s in splits},
        "hours": {s: round(report.seconds[s] / 3600, 4) for s in splits},
        "speakers": {s: len({u.speaker or u.id for u in kept if u.split == s}) for s in splits},
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "skipped": dict(report.skipped),
        "skipped_examples": report.skipped_examples,
    }
    if lm_text:
        result["lm_text"] = write_lm_text(Path(lm_text), corpus_dir / "lm_text.txt", language, encoding)
    with atomic_write(corpus_dir / "report.json") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
        f.write("\n")
    log.info("%s: %s utterances, %s h, skipped %s", corpus_dir, result["utterances"],
             result["hours"], result["skipped"])
    return result


# ---- stage 1 and the command line -----------------------------------------------------------

def prepare(args: argparse.Namespace) -> dict:
    """Stage 1: Lhotse manifests from the folder corpus that stage 0 wrote."""
    try:
        minutes = [float(m) for m in (args.train_subsets or "").split()]
    except ValueError:
        raise GraftError(f"--train-subsets must be minutes separated by spaces, not {args.train_subsets!r}") from None
    if any(not m > 0 for m in minutes):
        raise GraftError(f"--train-subsets must be positive minutes, not {args.train_subsets!r}")
    tsv = args.dl_dir / args.language / "transcripts.tsv"
    require_file(tsv, stage=0, what=f"the {args.language} corpus index")
    return folder_to_manifests(tsv, args.out_dir, language=args.language,
                               train_subsets_minutes=minutes, seed=args.seed)


def add_prepare_command(sub: argparse._SubParsersAction) -> None:
    """Add the shared `prepare` subcommand (stage 1) to an adapter's command line."""
    r = sub.add_parser("prepare", help="stage 1: Lhotse manifests from <dl-dir>/<lang>/transcripts.tsv")
    r.add_argument("--dl-dir", required=True, type=Path)
    r.add_argument("--language", required=True)
    r.add_argument("--out-dir", required=True, type=Path)
    r.add_argument("--train-subsets", default="", help='nested train subsets in minutes, e.g. "15 30"')
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=prepare)


def main(doc: str, add_download_args: Callable[[argparse.ArgumentParser], None],
         download: Callable[[argparse.Namespace], object]) -> None:
    """The adapter command line: `download` (stage 0) and `prepare` (stage 1)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="stage 0: get the corpus, write <dl-dir>/<lang>/transcripts.tsv")
    d.add_argument("--dl-dir", required=True, type=Path, help="where the folder corpus index goes")
    d.add_argument("--lm-text", type=Path, default=None,
                   help="extra LM text, one sentence a line (normalized into <dl-dir>/<lang>/lm_text.txt)")
    add_download_args(d)
    add_prepare_command(sub)
    args = p.parse_args()
    _log_library_warnings_once()
    run_main(lambda: download(args) if args.command == "download" else prepare(args))


def _log_library_warnings_once() -> None:
    """lhotse's recipes log on the root logger, which then configures itself and repeats every
    graft message; give the root a handler that prints the library's warnings only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: not record.name.startswith("graft"))
    logging.getLogger().addHandler(handler)


def add_split_args(p: argparse.ArgumentParser) -> None:
    """Options for drawing dev/test when the corpus has no split of its own."""
    p.add_argument("--dev-fraction", type=float, default=0.1, help="share of utterances (or speakers) for dev")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share for test")
    p.add_argument("--split-by", choices=("utterance", "speaker"), default="utterance",
                   help="draw dev/test by utterance or by speaker (speaker-disjoint)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dev/test draw")


def add_folder_args(p: argparse.ArgumentParser) -> None:
    """Options of a folder corpus: where the audio and the transcript table are, its language."""
    p.add_argument("--audio-dir", required=True, type=Path, help="folder of audio files (searched recursively)")
    p.add_argument("--transcripts", required=True, type=Path, help="transcript table (.tsv or .csv)")
    p.add_argument("--language", required=True, help="language code (graft.data.text.LANGUAGES)")
    p.add_argument("--encoding", default="utf-8",
                   help="encoding of the transcript table and --lm-text (e.g. cp1250, iso-8859-2, utf-16)")
    add_split_args(p)


def download_folder(args: argparse.Namespace) -> dict:
    """Stage 0 of a folder corpus: nothing to download; index the folder."""
    utts, report = folder_utterances(args.audio_dir, args.transcripts, args.language,
                                     encoding=args.encoding)
    source = {"audio_dir": os.path.abspath(args.audio_dir), "transcripts": os.path.abspath(args.transcripts)}
    return write_corpus(utts, args.dl_dir, args.language, report=report, source=source,
                        dev_fraction=args.dev_fraction, test_fraction=args.test_fraction,
                        split_by=args.split_by, seed=args.seed, lm_text=args.lm_text,
                        encoding=args.encoding)
