"""Folder corpus -> Lhotse manifests (stage 1 of every recipe).

The folder corpus is stage 0's `transcripts.tsv` (read by graft.data.corpus).

Usage:
    report = folder_to_manifests("data/corpus/cs/transcripts.tsv", "data/manifests/cs",
                                 language="cs", train_subsets_minutes=[15, 30, 60])

Per split (train, dev, test, and test_unseen when the corpus has it: graft.data.corpus.SPLITS)
it writes `recordings_<split>`, `supervisions_<split>` and `cuts_<split>.jsonl.gz`,
and nested train subsets `cuts_train_<N>m.jsonl.gz` (a seeded shuffle of train, then the
shortest prefix reaching N minutes, so a smaller subset is contained in a larger one).
Bad rows are skipped and counted in `report.json` with a warning naming the file: missing,
unreadable, corrupt or empty audio, empty or unnormalizable text. Duplicate ids are an error.
Audio at another sample rate is resampled to 16 kHz (and counted, `resampled`). Audio with
more than one channel is downmixed to mono (the mean of the channels) into
`<out_dir>/downmix/<id>.flac`, which the recording then points to (counted, `downmixed`):
every cut is one channel.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.qa import validate_recordings_and_supervisions
from lhotse.utils import fastcopy
from tqdm import tqdm

from graft.data.corpus import Utterance, read_transcripts
from graft.data.text import normalize
from graft.utils.errors import GraftError, require_file
from graft.utils.io import atomic_path, atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

SAMPLE_RATE = 16000


@dataclass
class ManifestReport:
    """What stage 1 kept and skipped, written as report.json beside the manifests."""

    kept: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    skipped_examples: dict = field(default_factory=dict)
    resampled: int = 0
    downmixed: int = 0
    subsets: dict = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        self.skipped_examples.setdefault(reason, [])
        if len(self.skipped_examples[reason]) < 5:
            self.skipped_examples[reason].append(where)
        log.warning("skipped (%s): %s", reason, where)

    def to_dict(self) -> dict:
        return {
            "kept_utterances": dict(self.kept),
            "hours": {k: round(v / 3600, 4) for k, v in self.seconds.items()},
            "skipped": dict(self.skipped),
            "skipped_examples": self.skipped_examples,
            "resampled": self.resampled,
            "downmixed": self.downmixed,
            "train_subsets": self.subsets,
        }


def _downmix(rec: Recording, samples, out: Path) -> Recording:
    """Write the mean of the channels of `samples` to `out` (16-bit FLAC); its Recording."""
    mono = samples.mean(axis=0)
    with atomic_path(out) as tmp:
        sf.write(tmp, mono, rec.sampling_rate, subtype="PCM_16", format="FLAC")
    return Recording.from_file(out, recording_id=rec.id)


def _load_recording(row: Utterance, report: ManifestReport, downmix_dir: Path | None = None) -> Recording | None:
    """A Recording for the row's audio, checked to decode and be non-empty, downmixed to mono
    into `downmix_dir` when it has several channels; None if skipped."""
    if not row.audio.is_file():
        report.skip("missing audio", str(row.audio))
        return None
    try:
        rec = Recording.from_file(row.audio, recording_id=row.id)
        if rec.duration <= 0 or rec.num_samples == 0:
            report.skip("empty audio", str(row.audio))
            return None
        samples = rec.load_audio()  # full decode: catches truncated / corrupt payloads
    except Exception as e:  # soundfile / audioread raise many types
        report.skip("unreadable audio", f"{row.audio} ({type(e).__name__}: {e})")
        return None
    if samples.size == 0 or not abs(samples).max() > 0:
        report.skip("silent audio", str(row.audio))
        return None
    if rec.num_channels > 1:
        if downmix_dir is None:
            raise GraftError(f"{row.audio} has {rec.num_channels} channels: no folder to downmix it into")
        log.info("downmixing %s from %d channels to mono", row.audio, rec.num_channels)
        rec = _downmix(rec, samples, downmix_dir / f"{row.id}.flac")
        report.downmixed += 1
    if rec.sampling_rate != SAMPLE_RATE:
        log.info("resampling %s from %d Hz to %d Hz", row.audio, rec.sampling_rate, SAMPLE_RATE)
        rec = rec.resample(SAMPLE_RATE)
        report.resampled += 1
    return rec


def nested_subsets(cuts: CutSet, minutes: list[float], seed: int = 0) -> dict[str, CutSet]:
    """Nested train subsets: a seeded shuffle, then the shortest prefix reaching N minutes.

    A subset larger than the whole set is left out (it would only repeat the full set).
    """
    order = sorted(cuts.ids)
    random.Random(seed).shuffle(order)
    by_id = {c.id: c for c in cuts}
    total = sum(c.duration for c in cuts)
    out: dict[str, CutSet] = {}
    for m in sorted(minutes):
        if m * 60 > total:
            log.warning("train subset of %g min left out: train has only %.1f min", m, total / 60)
            continue
        acc, chosen = 0.0, []
        for uid in order:
            if acc >= m * 60:
                break
            chosen.append(by_id[uid])
            acc += by_id[uid].duration
        out[f"train_{m:g}m"] = CutSet.from_cuts(chosen)
    return out


def folder_to_manifests(
    tsv: str | Path,
    out_dir: str | Path,
    language: str | None = None,
    train_subsets_minutes: list[float] | None = None,
    seed: int = 0,
) -> dict:
    """Write Lhotse manifests for every split of a folder corpus; return the report dict."""
    out_dir = Path(out_dir)
    rows = read_transcripts(tsv, language)
    report = ManifestReport()
    by_split: dict[str, tuple[list[Recording], list[SupervisionSegment]]] = {}
    for row in tqdm(rows, desc=f"manifests {Path(tsv).parent.name}", unit="utt"):
        lang = row.language or language or ""
        text = normalize(row.text, lang) if lang else " ".join(row.text.split())
        if not text:
            report.skip("empty or unnormalizable text", f"{tsv} id={row.id} text={row.text!r}")
            continue
        rec = _load_recording(row, report, out_dir / "downmix")
        if rec is None:
            continue
        sup = SupervisionSegment(id=row.id, recording_id=row.id, start=0.0, duration=rec.duration,
                                 channel=0, text=text, speaker=row.speaker, language=lang or None)
        recs, sups = by_split.setdefault(row.split, ([], []))
        recs.append(rec)
        sups.append(sup)
        report.kept[row.split] += 1
        report.seconds[row.split] += rec.duration
    if not by_split:
        raise GraftError(f"{tsv}: every utterance was skipped: {dict(report.skipped)}")

    for split, (recs, sups) in sorted(by_split.items()):
        recordings, supervisions = RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups)
        validate_recordings_and_supervisions(recordings, supervisions)
        # one cut per utterance, with the utterance's id (lhotse appends the channel otherwise)
        cuts = CutSet.from_cuts(
            fastcopy(c, id=c.recording_id)
            for c in CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
        )
        for name, manifest in (("recordings", recordings), ("supervisions", supervisions), ("cuts", cuts)):
            with atomic_path(out_dir / f"{name}_{split}.jsonl.gz") as tmp:
                manifest.to_file(tmp)
        if split == "train" and train_subsets_minutes:
            for name, subset in nested_subsets(cuts, train_subsets_minutes, seed).items():
                with atomic_path(out_dir / f"cuts_{name}.jsonl.gz") as tmp:
                    subset.to_file(tmp)
                report.subsets[name] = {"utterances": len(subset),
                                        "minutes": round(sum(c.duration for c in subset) / 60, 2)}
    result = report.to_dict()
    with atomic_write(out_dir / "report.json") as f:
        json.dump(result, f, indent=2)
    log.info("%s: kept %s, skipped %s, resampled %d, downmixed %d", out_dir, dict(report.kept),
             dict(report.skipped), report.resampled, report.downmixed)
    return result
