"""Several languages' manifests as one training "language": a multilingual source model.

Usage:
    from graft.data.combine import combine_languages
    report = combine_languages(["en", "pl"], "en_pl")   # in a recipe dir, after stages 0-2 of each

Writes data/manifests/<name>/ (recordings_, supervisions_, cuts_<split>.jsonl.gz of the splits
every language has), data/fbank/<name>/cuts_<split>.jsonl.gz (the features stay where stage 2
wrote them: the cuts point at them), data/manifests/<name>/lm_text.txt (the languages' LM texts
one after the other) and report.json (what was combined, cuts and hours per language and split)
last, so stages 3 and 4 run on <name> as on any language. Train cuts are shuffled with a fixed
seed, so a sampler that reads them lazily does not see one language after the other.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from lhotse import CutSet, load_manifest

from graft.utils.errors import GraftError
from graft.utils.io import atomic_path, atomic_write

KINDS = ("recordings", "supervisions", "cuts")


def _splits(manifest_dirs: Sequence[Path], optional: Sequence[str] = ("test_unseen",)) -> list[str]:
    splits = ["train", "dev", "test", *optional]
    return [s for s in splits if all((d / f"cuts_{s}.jsonl.gz").is_file() for d in manifest_dirs)]


def combine_languages(languages: Sequence[str], name: str, manifest_root: str | Path = "data/manifests",
                      fbank_root: str | Path = "data/fbank", corpus_root: str | Path = "data/corpus",
                      seed: int = 0) -> dict:
    """Combine the stage-1 and stage-2 manifests of `languages` into `name`; return the report."""
    if len(set(languages)) < 2:
        raise GraftError(f"combining needs two or more languages, got {' '.join(languages) or 'none'}")
    manifest_root, fbank_root, corpus_root = Path(manifest_root), Path(fbank_root), Path(corpus_root)
    mdirs = [manifest_root / lang for lang in languages]
    for lang in languages:
        for d, stage in ((manifest_root / lang, 1), (fbank_root / lang, 2)):
            if not (d / "report.json").is_file():
                raise GraftError(f"{d}/report.json is missing: run stage {stage} for {lang} first")
    splits = _splits(mdirs)
    out_m, out_f = manifest_root / name, fbank_root / name
    report: dict = {"languages": list(languages), "seed": seed, "splits": {}}
    for split in splits:
        for kind in KINDS:  # RecordingSet, SupervisionSet, CutSet: one of each kind of all languages
            parts = [load_manifest(d / f"{kind}_{split}.jsonl.gz") for d in mdirs]
            with atomic_path(out_m / f"{kind}_{split}.jsonl.gz") as tmp:  # tmp keeps .jsonl.gz for lhotse
                type(parts[0]).from_items([x for part in parts for x in part]).to_file(tmp)
        per_lang = {lang: list(load_manifest(fbank_root / lang / f"cuts_{split}.jsonl.gz")) for lang in languages}
        cuts = [c for lang in languages for c in per_lang[lang]]
        if len({c.id for c in cuts}) != len(cuts):
            raise GraftError(f"{split}: the languages {' '.join(languages)} share cut ids; they cannot be combined")
        if split == "train":
            random.Random(seed).shuffle(cuts)
        with atomic_path(out_f / f"cuts_{split}.jsonl.gz") as tmp:
            CutSet.from_cuts(cuts).to_file(tmp)
        report["splits"][split] = {lang: {"cuts": len(own), "hours": round(sum(c.duration for c in own) / 3600, 3)}
                                   for lang, own in per_lang.items()}
    with atomic_write(out_m / "lm_text.txt") as f:
        for lang in languages:
            path = corpus_root / lang / "lm_text.txt"
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            f.write(text if not text or text.endswith("\n") else text + "\n")
    for d in (out_f, out_m):
        with atomic_write(d / "report.json") as f:
            json.dump(report, f, indent=1)
    return report

