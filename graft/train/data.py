"""Training data: lang dir, cut loading and filtering, speed perturbation, the batch dataset,
and the samplers/loaders.

Usage:
    lang = load_lang("data/lang/en_bpe500")                         # stage 3 output
    cuts = load_cuts("data/fbank/en/cuts_train.jsonl.gz", "training")  # stage 2 output, files checked
    cuts = add_speed_perturbed(cuts)                                  # optional, see below
    cuts, report = filter_cuts(cuts, lang, encoder_frames=lambda t: (t - 7) // 4)
    dataset = AsrDataset(lang, spec_augment=SpecAugment(), freq_warp=FreqWarp(0.1))  # augmentations optional
    sampler = make_train_sampler(cuts, max_duration=200, seed=0, world_size=1, rank=0)
    loader = make_loader(dataset, sampler, num_workers=0, seed=0, epoch=0, skip_batches=0)
    for batch in loader: batch["features"], batch["feature_lens"], batch["tokens"], ...

Speed perturbation (choice): the stage-2 features are computed once, on unperturbed audio, so
`add_speed_perturbed` adds a 0.9x and a 1.1x copy of every cut (ids `<id>_sp0.9`, `<id>_sp1.1`,
three times the data per epoch as in the usual Kaldi recipe; other factors with the option
`speed_factors`) whose features are *not*
precomputed: `AsrDataset` computes them on the fly, from the perturbed audio, with stage 2's
own extractor (graft.data.features.make_extractor), so both kinds of cuts match. This needs
the cuts' recordings (audio files) readable at training time. Reading, resampling and the
fbank cost 21-35 ms per 30 s batch on the demo's machine, up to a sixth of a step, so the
dataset keeps each copy's features (float32, exactly what it computed) for the later epochs, up
to FEATURE_CACHE_MB per process; beyond that it computes them again each epoch. The noisy and
reverberant copies of graft.train.corrupt (`--corrupt`) take the same path: a cut whose
`custom["corrupt"]` holds a recipe gets it applied to its audio before the fbank.

Filtering: a cut is dropped (and counted by reason) when it has no supervision or no tokens,
is shorter/longer than the duration limits, or has fewer encoder frames (after subsampling)
than its tokens need: U for the transducer, U plus the number of repeated adjacent tokens
when the CTC loss is on.
"""
from __future__ import annotations

import json
import random
import warnings
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from lhotse import CutSet, Fbank
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler, SpecAugment
from lhotse.utils import LOG_EPSILON

from graft.data.features import make_extractor
from graft.lang.langdir import LangDir
from graft.train.corrupt import corrupt_audio
from graft.train.freq_warp import FreqWarp
from graft.utils.errors import GraftError, MissingStageError, require_file
from graft.utils.logging import get_logger

log = get_logger(__name__)

SPEED_FACTORS = (0.9, 1.1)


def parse_speed_factors(text: str | None) -> tuple[float, ...]:
    """"0.9 1.1" (spaces or commas) -> (0.9, 1.1); None or "" -> SPEED_FACTORS. A GraftError names
    a factor that is not a number, not in (0.5, 2), 1 itself (the original is always kept) or repeated."""
    if text is None or not str(text).replace(",", " ").split():
        return SPEED_FACTORS
    out = []
    for tok in str(text).replace(",", " ").split():
        try:
            f = float(tok)
        except ValueError:
            raise GraftError(f"--speed-factors: {tok!r} is not a number (give e.g. '0.9 1.1')") from None
        if not 0.5 < f < 2.0 or f == 1.0:
            raise GraftError(f"--speed-factors: {tok} must be in (0.5, 2) and not 1 (the original cut is "
                             "always kept)")
        if f in out:
            raise GraftError(f"--speed-factors: {tok} is given twice")
        out.append(f)
    return tuple(out)


def speed_audio_factor(factors: tuple[float, ...]) -> float:
    """Audio of an epoch with the copies over the original's: 1 + sum(1 / factor)."""
    return 1.0 + sum(1.0 / f for f in factors)


TOKEN_CACHE_TEXTS = 2_000_000   # texts whose token ids the dataset keeps (~4 bytes a token)
FEATURE_CACHE_MB = 2048    # on-the-fly features kept per process (the demo's English copies: ~1.5 GB)


def rebuild_hint(path: str | Path) -> str:
    """What to do when stage 2's features (the manifest or feature file `path`) are gone."""
    return (f"they are written by stage 2 (steps/compute_fbank.py, under {Path(path).parent}): rebuild "
            f"them with `./run.sh --stage 2 --stop-stage 2 --force true` (it recomputes only what is "
            f"missing), then run this stage again: training resumes from its last checkpoint")


def check_feature_files(cuts: CutSet, path: str | Path) -> None:
    """GraftError naming the stage that writes them if feature files of `cuts` are missing."""
    missing: dict[str, str] = {}
    seen: set[str] = set()
    for c in cuts:
        if not c.has_features:
            continue
        f = str(c.features.storage_path)
        if f in seen:
            continue
        seen.add(f)
        if c.features.storage_type in ("lilcom_chunky", "lilcom_files", "numpy_files", "lilcom_hdf5",
                                       "numpy_hdf5", "chunked_lilcom_hdf5") and not Path(f).exists():
            missing[f] = c.id
    if missing:
        f, cut_id = next(iter(missing.items()))
        raise MissingStageError(f"the features {path} points to are missing: {len(missing)} of "
                                f"{len(seen)} feature files, e.g. {f} (cut {cut_id}); {rebuild_hint(path)}")


def load_cuts(path: str | Path, what: str = "training") -> CutSet:
    """Read a features cut manifest written by stage 2 (eagerly: filtering counts every cut);
    MissingStageError (naming stage 2 and how to rebuild) if its feature files are gone."""
    path = require_file(path, stage=2, what=f"{what} features manifest")
    try:
        cuts = CutSet.from_file(path).to_eager()
    except (OSError, EOFError, ValueError, KeyError) as e:
        raise GraftError(f"cannot read {path} ({type(e).__name__}: {e}); {rebuild_hint(path)}") from None
    if len(cuts) and not next(iter(cuts)).has_features:
        raise GraftError(f"{path} has no features: pass the stage-2 cuts (data/fbank/...), not stage-1 manifests")
    check_feature_files(cuts, path)
    return cuts


def add_speed_perturbed(cuts: CutSet, factors: tuple[float, ...] = SPEED_FACTORS) -> CutSet:
    """`cuts` plus one copy per factor, speed-perturbed (features dropped: computed on the fly)."""
    first = next(iter(cuts), None)
    if first is None:
        return cuts
    if not first.has_recording:
        raise GraftError("speed perturbation needs the cuts' recordings, but the training cuts have none")
    missing = [s for s in first.recording.sources if s.type == "file" and not Path(s.source).exists()]
    if missing:
        raise GraftError(f"speed perturbation needs the audio, missing {missing[0].source}")
    out = list(cuts)
    for factor in factors:
        out.extend(c.drop_features().perturb_speed(factor) for c in cuts)
    return CutSet.from_cuts(out)


def _ctc_repeats(tokens: list[int]) -> int:
    return sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)


@dataclass
class FilterReport:
    """Cuts kept and dropped (by reason) by `filter_cuts`."""

    kept: int = 0
    kept_seconds: float = 0.0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v} (e.g. {self.examples[k]})" for k, v in sorted(self.dropped.items()))
        return (f"kept {self.kept} cuts ({self.kept_seconds / 3600:.2f} h); "
                f"dropped {sum(self.dropped.values())}" + (f" [{parts}]" if parts else ""))


def cut_text(cut) -> str:
    return " ".join(s.text for s in cut.supervisions if s.text).strip()


def cut_num_frames(cut) -> int:
    """Feature frames of a cut (10 ms frame shift when the features are computed on the fly)."""
    if cut.has_features:
        return int(cut.num_frames)
    return int(round(cut.duration * 100))


def filter_cuts(cuts: CutSet, lang: LangDir, encoder_frames: Callable[[int], int],
                min_duration: float = 0.0, max_duration: float = float("inf"),
                ctc: bool = False) -> tuple[CutSet, FilterReport]:
    """Drop unusable cuts (see the module docstring); returns the kept cuts and the counts."""
    report = FilterReport()
    kept = []
    cut_list = list(cuts)
    texts = [cut_text(c) for c in cut_list]
    token_lists = lang.encode(texts)
    for cut, text, tokens in zip(cut_list, texts, token_lists):
        reason = None
        if not cut.supervisions:
            reason = "no_supervision"
        elif not tokens:
            reason = "empty_text"
        elif cut.duration < min_duration:
            reason = "shorter_than_min_duration"
        elif cut.duration > max_duration:
            reason = "longer_than_max_duration"
        else:
            need = len(tokens) + (_ctc_repeats(tokens) if ctc else 0)
            if encoder_frames(cut_num_frames(cut)) < max(need, 1):
                reason = "too_short_for_tokens"
        if reason:
            report.dropped[reason] += 1
            report.examples.setdefault(reason, cut.id)
        else:
            kept.append(cut)
            report.kept += 1
            report.kept_seconds += cut.duration
    return CutSet.from_cuts(kept), report


class AsrDataset(torch.utils.data.Dataset):
    """Map a CutSet batch to padded features, lengths and token id lists.

    Returns {"features": (N, T, F) float32 padded with log(eps), "feature_lens": (N,) int64,
    "tokens": list of N token id lists, "cut_ids": list[str], "duration": audio seconds}.
    Cuts are sorted by length, longest first. Cuts without precomputed features (speed
    perturbed copies) get features on the fly from `fbank` (default: stage 2's extractor,
    graft.data.features.make_extractor, so both kinds match). `freq_warp` (VTLP, see
    graft.train.freq_warp) warps each cut's features before padding, SpecAugment the padded
    batch. T is the longest cut's frames
    rounded up to a multiple of `pad_frames_to`: batches then take fewer distinct shapes, and
    oneDNN's bf16 kernels, made per shape, are reused (graft.train.kernels); the lengths stay
    the cuts' own, so the model masks the extra frames like any padding.
    """

    def __init__(self, lang: LangDir, spec_augment: SpecAugment | None = None,
                 fbank: Fbank | None = None, pad_frames_to: int = 1,
                 cache_mb: float = FEATURE_CACHE_MB, freq_warp: FreqWarp | None = None) -> None:
        if pad_frames_to < 1:
            raise GraftError(f"pad_frames_to must be at least 1, got {pad_frames_to}")
        self.pad_frames_to = pad_frames_to
        self.cache: dict[str, np.ndarray] = {}     # cut id -> features computed on the fly
        self.cache_bytes, self.cache_limit = 0, int(cache_mb * 2**20)
        self.lang = lang
        self.spec_augment = spec_augment
        self.freq_warp = freq_warp
        self.token_cache: dict[str, array] = {}
        self.fbank = fbank or make_extractor()

    def _features(self, cut) -> np.ndarray:
        if cut.has_features:
            try:
                return cut.load_features()
            except Exception as e:  # deleted, truncated or corrupt: lhotse and lilcom raise many types
                where = cut.features.storage_path
                raise GraftError(
                    f"cannot read the features of cut {cut.id} from {where} ({type(e).__name__}: "
                    f"{' '.join(str(e).split())[:200]}): were they deleted or overwritten while this "
                    f"stage ran? {rebuild_hint(where)}") from None
        hit = self.cache.get(cut.id)
        if hit is not None:
            return hit
        try:
            audio = cut.load_audio()
        except Exception as e:  # the audio of a speed-perturbed copy: soundfile raises many types
            raise GraftError(f"cannot read the audio of cut {cut.id} ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:200]}): speed perturbation and --corrupt read "
                             f"the corpus audio the stage-1 manifests name; restore it, or train without "
                             f"--speed-perturb and --corrupt") from None
        recipe = (cut.custom or {}).get("corrupt")
        if recipe:
            audio = corrupt_audio(audio, cut.sampling_rate, recipe)
        feats = np.asarray(self.fbank.extract(audio, cut.sampling_rate), dtype=np.float32)
        if self.cache_bytes + feats.nbytes <= self.cache_limit:
            self.cache[cut.id] = feats
            self.cache_bytes += feats.nbytes
        return feats

    def _tokens(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, encoded once per text while the cache holds fewer than
        TOKEN_CACHE_TEXTS (sentencepiece took ~2 ms a batch; ids kept as int32 arrays)."""
        new = [t for t in dict.fromkeys(texts) if t not in self.token_cache]
        encoded: dict[str, list[int]] = {}
        if new:
            encoded = dict(zip(new, self.lang.encode(new)))
            room = TOKEN_CACHE_TEXTS - len(self.token_cache)
            self.token_cache.update((t, array("i", encoded[t])) for t in new[:max(room, 0)])
        return [self.token_cache[t].tolist() if t in self.token_cache else encoded[t] for t in texts]

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        cut_list = sorted(cuts, key=lambda c: c.duration, reverse=True)
        feats = [torch.from_numpy(np.asarray(self._features(c), dtype=np.float32)) for c in cut_list]
        if self.freq_warp is not None:
            feats = [self.freq_warp(f) for f in feats]
        lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
        dim = feats[0].shape[1]
        frames = -(-int(lens.max()) // self.pad_frames_to) * self.pad_frames_to
        batch = torch.full((len(feats), frames, dim), LOG_EPSILON, dtype=torch.float32)
        for i, f in enumerate(feats):
            batch[i, : f.shape[0]] = f
        if self.spec_augment is not None:
            segments = torch.stack([torch.arange(len(feats)), torch.zeros(len(feats), dtype=torch.int64), lens],
                                   dim=1).to(torch.int32)
            batch = self.spec_augment(batch, segments)
        tokens = self._tokens([cut_text(c) for c in cut_list])
        return {"features": batch, "feature_lens": lens, "tokens": tokens,
                "cut_ids": [c.id for c in cut_list], "duration": float(sum(c.duration for c in cut_list))}


def make_train_sampler(cuts: CutSet, max_duration: float, seed: int, world_size: int, rank: int,
                       num_buckets: int = 10) -> DynamicBucketingSampler:
    """Shuffled duration-bucketed batches; each rank gets its own share (same count per rank)."""
    buckets = max(2, min(num_buckets, len(cuts) // 4))     # lhotse needs >= 2
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        return DynamicBucketingSampler(cuts, max_duration=max_duration, shuffle=True, num_buckets=buckets,
                                       seed=seed, world_size=world_size, rank=rank, drop_last=False)


def make_dev_sampler(cuts: CutSet, max_duration: float, world_size: int, rank: int) -> SimpleCutSampler:
    """Unshuffled batches for the validation loss, split across ranks."""
    return SimpleCutSampler(cuts, max_duration=max_duration, shuffle=False, world_size=world_size, rank=rank)


class SkipBatches(torch.utils.data.Sampler):
    """Iterate `sampler`, dropping its first `skip` batches once (resuming inside an epoch).

    The lhotse samplers are deterministic given (seed, epoch), so skipping the batches already
    trained on puts the data order exactly where the interrupted run left it, whatever the
    DataLoader prefetched.
    """

    def __init__(self, sampler, skip: int = 0) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        # lhotse samplers are their own iterators and restart on iter(): use next() only.
        it = iter(self.sampler)
        skip, self.skip = self.skip, 0
        for _ in range(skip):
            if next(it, None) is None:
                return
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            yield batch


def make_loader(dataset: AsrDataset, sampler, num_workers: int = 0, seed: int = 0, epoch: int = 0,
                skip_batches: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over CutSet batches that does not touch the global torch RNG."""
    gen = torch.Generator()
    gen.manual_seed(seed * 100003 + epoch)
    return torch.utils.data.DataLoader(
        dataset, sampler=SkipBatches(sampler, skip_batches), batch_size=None, collate_fn=_as_is,
        num_workers=num_workers, persistent_workers=False, generator=gen,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
    )


def _as_is(batch: dict[str, Any]) -> dict[str, Any]:
    """The dataset's batch unchanged (the default conversion walked every token list: ~0.5 ms a batch)."""
    return batch


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)
