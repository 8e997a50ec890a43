"""Mix some source-language cuts into the target training cuts (to limit forgetting).

Usage:
    report = mix_cuts("data/fbank/cs/cuts_train_15m.jsonl.gz", "data/fbank/en/cuts_train.jsonl.gz",
                      weight=0.2, out_path="exp/cs_mix/cuts_train_mix.jsonl.gz",
                      target_lang_dir="data/lang/cs_bpe500", seed=0)
    report.num_source, report.unk_ratio

The mixed set is `CutSet.mux(target, shuffled source repeated, weights=[1 - w, w],
stop_early=True)`: every target cut once, and about w of all mixed cuts (by count) from the
source, interleaved. It is written once to the experiment dir, so the trainer reads one
cut manifest as usual (its sampler shuffles and buckets; resume and DDP work unchanged).

Decided limitation: the model has one output vocabulary, the target's. Source cuts are
therefore transcribed with the *target* BPE: the encoder keeps seeing source-language audio
(which is what limits forgetting of the transferred acoustic layers), and the decoder and
joiner also learn to spell source words in target pieces. That is harmless for languages in
the same script (English in Czech BPE pieces: letters Czech lacks, such as w, q, x, become
`<unk>`) and wrong otherwise; `max_unk_ratio` refuses a mix whose source text is too badly
covered. Keep the weight small. (An encoder-only CTC loss on source cuts through a second
head would avoid this, but needs per-cut loss routing the trainer does not have.)
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet

from graft.utils.errors import GraftError, require_file
from graft.utils.io import atomic_path
from graft.utils.logging import get_logger

log = get_logger(__name__)


@dataclass
class MixReport:
    """What went into the mixed training cuts."""

    path: Path
    num_target: int
    num_source: int
    source_seconds: float
    unk_ratio: float

    def describe(self) -> str:
        total = self.num_target + self.num_source
        return (f"{self.num_source} source cuts ({self.source_seconds / 60:.1f} min, "
                f"{self.num_source / max(total, 1):.1%} of {total}) mixed into {self.num_target} "
                f"target cuts; {self.unk_ratio:.2%} of source tokens are <unk> in the target BPE")


def unk_ratio(texts: list[str], sp) -> float:
    """Fraction of the tokens of `texts` that the sentencepiece model `sp` spells as <unk>."""
    ids = [i for seq in sp.encode(texts, out_type=int) for i in seq]
    return sum(i == sp.unk_id() for i in ids) / max(len(ids), 1)


def _texts(cuts: CutSet) -> list[str]:
    return [" ".join(s.text for s in c.supervisions if s.text) for c in cuts]


def mix_cuts(target_cuts: str | os.PathLike, source_cuts: str | os.PathLike, weight: float,
             out_path: str | os.PathLike, target_lang_dir: str | os.PathLike, seed: int = 0,
             max_unk_ratio: float = 0.02, dry_run: bool = False) -> MixReport:
    """Write the mixed cuts to `out_path` (atomically) and report; see the module docstring."""
    import sentencepiece as spm

    if not 0.0 < weight < 1.0:
        raise GraftError(f"the source mixing weight must be in (0, 1), got {weight}")
    target = CutSet.from_file(require_file(target_cuts, stage=2, what="target training cuts")).to_eager()
    source = CutSet.from_file(require_file(source_cuts, stage=2, what="source cuts to mix")).to_eager()
    if not len(source):
        raise GraftError(f"{source_cuts} has no cuts to mix")
    if not len(target):
        raise GraftError(f"{target_cuts} has no cuts")
    bpe = require_file(Path(target_lang_dir) / "bpe.model", stage=3, what="target BPE model")
    sp = spm.SentencePieceProcessor(model_file=str(bpe))
    ratio = unk_ratio(_texts(source), sp)
    if ratio > max_unk_ratio:
        raise GraftError(f"{ratio:.1%} of the tokens of {source_cuts} are <unk> under the target BPE "
                         f"{bpe} (limit {max_unk_ratio:.1%}, mix_max_unk_ratio): the source text is "
                         "not spellable in the target vocabulary, so mixing it would teach <unk>")
    shuffled = source.shuffle(random.Random(seed))
    mixed = CutSet.mux(target, shuffled.repeat(), weights=[1.0 - weight, weight],
                       stop_early=True, seed=seed)
    target_ids = {c.id for c in target}
    cuts = list(mixed)
    picked = [c for c in cuts if c.id not in target_ids]
    if len(cuts) - len(picked) != len(target):
        raise GraftError(f"source and target cut ids overlap ({source_cuts}, {target_cuts}): "
                         "cannot mix them")
    out_path = Path(out_path)
    if not dry_run:
        with atomic_path(out_path) as tmp:
            CutSet.from_cuts(cuts).to_file(tmp)
    report = MixReport(out_path, len(target), len(picked), sum(c.duration for c in picked), ratio)
    log.info("source mixing: %s", report.describe())
    return report
