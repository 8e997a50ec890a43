"""80-dim fbank features with lhotse's Fbank, lilcom storage, in resumable chunks (stage 2).

Usage:
    compute_fbank_for_split("data/manifests/en/cuts_train.jsonl.gz",
                            "data/fbank/en/cuts_train.jsonl.gz", num_jobs=2)
    subset_with_features("data/fbank/en/cuts_train.jsonl.gz",
                         "data/manifests/cs/cuts_train_15m.jsonl.gz",
                         "data/fbank/cs/cuts_train_15m.jsonl.gz")

The cuts are cut into chunks of `chunk_size`; each chunk is computed by one worker process
(torch limited to one thread, which the stack notes measured 3-6x faster than the default)
into `<storage_dir>/chunk-NNNN.lca` plus a chunk manifest written last, atomically. A killed
run resumes: finished chunks (manifest and .lca both present) are not recomputed, and the
temporaries a killed run left (`.tmp-<pid>-*` of a process that is gone) are removed. The
split's manifest is written at the end.

Faults: the workers die with the process that started them (PR_SET_PDEATHSIG on Linux, a
parent watch elsewhere), so a killed stage leaves no orphan holding the recipe's log pipe; a
worker that dies is a GraftError (not a BrokenProcessPool); a full, read-only or unwritable
disk is one line naming the path. In every case a re-run resumes from the finished chunks.
"""
from __future__ import annotations

import errno
import os
import re
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter, load_manifest_lazy
from tqdm import tqdm

from graft.utils.errors import GraftError, disk_error, require_file
from graft.utils.io import atomic_path
from graft.utils.logging import get_logger

log = get_logger(__name__)

NUM_MEL_BINS = 80


def make_extractor(num_mel_bins: int = NUM_MEL_BINS) -> Fbank:
    """The feature extractor every recipe uses (Kaldi-compatible 25 ms / 10 ms fbank)."""
    return Fbank(FbankConfig(num_filters=num_mel_bins))


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker when the process that started it ends.

    Linux: the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG). Elsewhere
    a daemon thread polls the parent pid. Either way an orphan never outlives a killed stage
    (it would keep the recipe's log pipe open, and `run.sh` would never return).
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if not armed:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="graft-parent-watch").start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _compute_chunk(cuts_path: str, first: int, last: int, storage: str, manifest: str,
                   num_mel_bins: int) -> float:
    """Worker: compute features of cuts[first:last]; return the seconds of audio done."""
    import torch

    torch.set_num_threads(1)
    cuts = CutSet.from_cuts(list(load_manifest_lazy(cuts_path))[first:last])
    extractor = make_extractor(num_mel_bins)
    with LilcomChunkyWriter(storage) as writer:
        done = CutSet.from_cuts(_features_of(cut, extractor, writer, cuts_path) for cut in cuts)
    with atomic_path(manifest) as tmp:
        done.to_file(tmp)
    return sum(c.duration for c in done)


def _features_of(cut, extractor: Fbank, writer: LilcomChunkyWriter, cuts_path: str):
    """One cut's features; GraftError naming the cut and its audio when the audio is unreadable
    (stage 1 decoded every file, so it went missing or changed since). A full or read-only
    disk (writing the features) passes through."""
    try:
        return cut.compute_and_store_features(extractor=extractor, storage=writer)
    except Exception as e:  # soundfile / audioread / lhotse raise many types
        if isinstance(e, GraftError) or (isinstance(e, OSError) and e.errno in _WRITE_ERRNOS):
            raise
        where = ", ".join(str(s.source) for s in cut.recording.sources) if cut.has_recording else "?"
        raise GraftError(f"cannot read the audio of cut {cut.id} ({where}) listed in {cuts_path}: "
                         f"{type(e).__name__}: {' '.join(str(e).split())[:200]}; stage 1 decoded it, so "
                         f"it was moved or changed since: restore it, or run stages 0 and 1 again "
                         f"(`./run.sh --stage 0 --stop-stage 1 --force true`), which skip and count "
                         f"unreadable audio") from None


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
_TMP_RE = re.compile(r"^\.tmp-(\d+)-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(*dirs: Path) -> list[Path]:
    """Delete `.tmp-<pid>-*` files (graft.utils.io's temporaries) whose process is gone."""
    removed = []
    for d in dirs:
        if not d.is_dir():
            continue
        for p in d.glob(".tmp-*"):
            m = _TMP_RE.match(p.name)
            if m and p.is_file() and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                p.unlink(missing_ok=True)
                removed.append(p)
    if removed:
        log.info("removed %d temporary file(s) a killed run left, e.g. %s", len(removed), removed[0])
    return removed


def read_cuts(path: str | Path, stage: int, what: str) -> CutSet:
    """CutSet.from_file with a GraftError naming the file and the stage that writes it when
    the file is missing, truncated or not a cut manifest."""
    path = require_file(path, stage=stage, what=what)
    try:
        return CutSet.from_file(path).to_eager()
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise GraftError(f"cannot read {what} {path} ({type(e).__name__}: {' '.join(str(e).split())[:200]}): "
                         f"it is written by stage {stage}: run it again with "
                         f"`./run.sh --stage {stage} --stop-stage {stage} --force true`") from None


def _chunk_done(storage: str, manifest: str) -> bool:
    """A chunk is finished when its manifest (written last) and its feature file both exist."""
    lca = Path(storage)
    return Path(manifest).is_file() and lca.is_file() and lca.stat().st_size > 0


RESUME_HINT = "then run stage 2 again (steps/compute_fbank.py): the finished chunks are kept and it resumes"


def compute_fbank_for_split(
    cuts_in: str | Path,
    cuts_out: str | Path,
    num_jobs: int = 1,
    chunk_size: int = 100,
    num_mel_bins: int = NUM_MEL_BINS,
) -> dict:
    """Compute and store fbank for every cut of `cuts_in`; write `cuts_out`. Return figures."""
    cuts_in = require_file(cuts_in, stage=1, what="the cuts manifest")
    cuts_out = Path(cuts_out)
    if chunk_size < 1 or num_jobs < 1:
        raise GraftError(f"--chunk-size and --jobs must be >= 1 (got {chunk_size} and {num_jobs})")
    name = cuts_out.name.removesuffix(".jsonl.gz").removeprefix("cuts_")
    storage_dir = cuts_out.parent / f"feats_{name}"
    try:
        storage_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_error(e, storage_dir, RESUME_HINT) or e
    remove_stale_temporaries(storage_dir, cuts_out.parent)
    cuts = read_cuts(cuts_in, 1, "the cuts manifest")
    if len(cuts) == 0:
        raise GraftError(f"{cuts_in}: no cuts")
    durations = [c.duration for c in cuts]
    total_seconds = sum(durations)
    chunks = []
    for i, first in enumerate(range(0, len(cuts), chunk_size)):
        stem = storage_dir / f"chunk-{i:04d}"
        chunks.append((first, min(first + chunk_size, len(cuts)), f"{stem}.lca", f"{stem}.jsonl.gz"))
    todo = [c for c in chunks if not _chunk_done(c[2], c[3])]
    if len(todo) < len(chunks):
        log.info("%s: resuming, %d of %d chunks already done", cuts_out, len(chunks) - len(todo), len(chunks))

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers
    t0 = time.time()
    done_seconds = 0.0
    bar = tqdm(total=round(total_seconds), desc=f"fbank {name}", unit="s audio", smoothing=0.1)
    bar.update(round(total_seconds - sum(sum(durations[c[0]:c[1]]) for c in todo)))
    current = storage_dir
    try:
        if num_jobs <= 1 or len(todo) <= 1:
            for first, last, storage, manifest in todo:
                current = Path(storage)
                sec = _compute_chunk(str(cuts_in), first, last, storage, manifest, num_mel_bins)
                done_seconds += sec
                bar.update(round(sec))
        else:
            with ProcessPoolExecutor(num_jobs, mp_context=get_context("spawn"),
                                     initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_compute_chunk, str(cuts_in), *c, num_mel_bins) for c in todo]
                for c, fut in zip(todo, futures):
                    current = Path(c[2])
                    sec = fut.result()
                    done_seconds += sec
                    bar.update(round(sec))
    except BrokenProcessPool:
        finished = sum(_chunk_done(c[2], c[3]) for c in chunks)
        raise GraftError(
            f"a feature worker process died while computing {storage_dir} (killed by a signal, "
            f"or by the kernel when memory ran out: see `dmesg`; fewer --jobs need less memory); "
            f"{finished} of {len(chunks)} chunks are finished and kept: run stage 2 again to "
            f"resume") from None
    except OSError as e:
        translated = disk_error(e, current, RESUME_HINT)
        if translated is None:
            raise
        raise translated from None
    finally:
        bar.close()
    elapsed = time.time() - t0

    parts = []
    for c in chunks:
        try:
            parts.append(CutSet.from_file(c[3]))
        except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
            Path(c[3]).unlink(missing_ok=True)  # so that the next run recomputes the chunk
            raise GraftError(f"the chunk manifest {c[3]} was unreadable ({type(e).__name__}: {e}) and "
                             f"is removed: run stage 2 again to recompute that chunk") from None
    combined = CutSet.from_cuts(cut for part in parts for cut in part)
    if len(combined) != len(cuts):
        raise GraftError(f"{storage_dir}: chunk manifests hold {len(combined)} cuts, expected {len(cuts)}")
    try:
        with atomic_path(cuts_out) as tmp:
            combined.to_file(tmp)
    except OSError as e:
        raise disk_error(e, cuts_out, RESUME_HINT) or e
    rate = done_seconds / elapsed if elapsed > 0 else float("nan")
    log.info("%s: %d cuts, %.2f h of audio; computed %.0f s of audio in %.1f s (%.0f s/s, %d jobs)",
             cuts_out, len(combined), total_seconds / 3600, done_seconds, elapsed, rate, num_jobs)
    return {"cuts": len(combined), "audio_seconds": total_seconds, "computed_seconds": done_seconds,
            "wall_seconds": elapsed, "audio_seconds_per_second": rate, "num_jobs": num_jobs}


def subset_with_features(full_with_feats: str | Path, subset_cuts: str | Path, out: str | Path) -> int:
    """Write the cuts of `subset_cuts` taken from `full_with_feats` (no recomputation)."""
    full = read_cuts(full_with_feats, 2, "the train features manifest")
    ids = set(read_cuts(subset_cuts, 1, "the subset manifest").ids)
    chosen = full.filter(lambda c: c.id in ids).to_eager()
    if len(chosen) != len(ids):
        raise GraftError(f"{out}: {len(ids) - len(chosen)} cuts of {subset_cuts} have no features in {full_with_feats}")
    with atomic_path(out) as tmp:
        chosen.to_file(tmp)
    return len(chosen)
