"""Several languages' manifests as one training "language": a multilingual source model.

Usage:
    from graft.data.combine import combine_languages
    report = combine_languages(["en", "pl"], "en_pl")   # in a recipe dir, after stages 0-2 of each

Writes data/manifests/<name>/ (recordings_, supervisions_, cuts_<split>.jsonl.gz of train, dev
and test, which every language must have, and of the optional test_unseen, combined from the
languages that have one: a voice-disjoint test of the source in the languages that hold voices
out), data/fbank/<name>/cuts_<split>.jsonl.gz (the features stay where stage 2 wrote them: the
cuts point at them), data/manifests/<name>/lm_text.txt (the languages' LM texts one after the
other) and report.json (what was combined, cuts and hours per language and split) last, so
stages 3 and 4 run on <name> as on any language. Train cuts are shuffled with a fixed seed, so a
sampler that reads them lazily does not see one language after the other. A file written again
with the same content is left as it was (graft.utils.io.atomic_path keep_same), so a re-run that
only adds a split does not make the training step see a changed input.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from lhotse import CutSet, load_manifest

from graft.utils.errors import GraftError, require_file
from graft.utils.io import atomic_path, atomic_write

KINDS = ("recordings", "supervisions", "cuts")


REQUIRED_SPLITS = ("train", "dev", "test")
OPTIONAL_SPLITS = ("test_unseen",)


def _split_languages(languages: Sequence[str], manifest_root: Path) -> dict[str, list[str]]:
    """split -> the languages whose stage-1 manifests hold it: the required splits when every
    language has them, an optional split when at least one has it."""
    out: dict[str, list[str]] = {}
    for split in (*REQUIRED_SPLITS, *OPTIONAL_SPLITS):
        have = [lang for lang in languages if (manifest_root / lang / f"cuts_{split}.jsonl.gz").is_file()]
        if split in REQUIRED_SPLITS and len(have) < len(languages):
            missing = sorted(set(languages) - set(have))
            raise GraftError(f"{manifest_root}/{missing[0]}/cuts_{split}.jsonl.gz is missing: every language "
                             f"needs its {split} split (run stage 1 for {' '.join(missing)})")
        if have:
            out[split] = have
    return out


def combine_languages(languages: Sequence[str], name: str, manifest_root: str | Path = "data/manifests",
                      fbank_root: str | Path = "data/fbank", corpus_root: str | Path = "data/corpus",
                      seed: int = 0) -> dict:
    """Combine the stage-1 and stage-2 manifests of `languages` into `name`; return the report."""
    if len(set(languages)) < 2:
        raise GraftError(f"combining needs two or more languages, got {' '.join(languages) or 'none'}")
    manifest_root, fbank_root, corpus_root = Path(manifest_root), Path(fbank_root), Path(corpus_root)
    for lang in languages:
        for d, stage in ((manifest_root / lang, 1), (fbank_root / lang, 2)):
            if not (d / "report.json").is_file():
                raise GraftError(f"{d}/report.json is missing: run stage {stage} for {lang} first")
    splits = _split_languages(languages, manifest_root)
    out_m, out_f = manifest_root / name, fbank_root / name
    report: dict = {"languages": list(languages), "seed": seed, "splits": {}}
    for split, langs in splits.items():
        for lang in langs:
            require_file(fbank_root / lang / f"cuts_{split}.jsonl.gz", stage=2,
                         what=f"{lang} {split} features")
        for kind in KINDS:  # RecordingSet, SupervisionSet, CutSet: one of each kind of all languages
            parts = [load_manifest(manifest_root / lang / f"{kind}_{split}.jsonl.gz") for lang in langs]
            with atomic_path(out_m / f"{kind}_{split}.jsonl.gz", keep_same=True) as tmp:  # tmp keeps .jsonl.gz
                type(parts[0]).from_items([x for part in parts for x in part]).to_file(tmp)
        per_lang = {lang: list(load_manifest(fbank_root / lang / f"cuts_{split}.jsonl.gz")) for lang in langs}
        cuts = [c for lang in langs for c in per_lang[lang]]
        if len({c.id for c in cuts}) != len(cuts):
            raise GraftError(f"{split}: the languages {' '.join(langs)} share cut ids; they cannot be combined")
        if split == "train":
            random.Random(seed).shuffle(cuts)
        with atomic_path(out_f / f"cuts_{split}.jsonl.gz", keep_same=True) as tmp:
            CutSet.from_cuts(cuts).to_file(tmp)
        report["splits"][split] = {lang: {"cuts": len(own), "hours": round(sum(c.duration for c in own) / 3600, 3)}
                                   for lang, own in per_lang.items()}
    for split in OPTIONAL_SPLITS:  # no language has it any more: an earlier run's copy would be stale
        if split not in splits:
            for path in [out_m / f"{kind}_{split}.jsonl.gz" for kind in KINDS] + [out_f / f"cuts_{split}.jsonl.gz"]:
                path.unlink(missing_ok=True)
    with atomic_write(out_m / "lm_text.txt") as f:
        for lang in languages:
            path = corpus_root / lang / "lm_text.txt"
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            f.write(text if not text or text.endswith("\n") else text + "\n")
    for d in (out_f, out_m):
        with atomic_write(d / "report.json") as f:
            json.dump(report, f, indent=1)
    return report

