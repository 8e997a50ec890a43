#!/usr/bin/env python3
"""Stage 3: the language side of one language: the BPE lang dir, then the LM dir inside it
(words, lexicon, n-gram LM, G, L, LG, HLG).

Usage:
    steps/prepare_lang.py --language cs --manifest-dir data/manifests/cs \
        --lm-text data/corpus/cs/lm_text.txt --vocab-size 500 --lm-order 3 \
        --out-dir data/lang/cs_bpe500          # -> data/lang/cs_bpe500/lm_3gram/

Reads the normalized transcripts of the Lhotse supervision manifests
`supervisions_{train,dev,test}.jsonl.gz` (stage 1). The LM is trained on the train
transcripts plus the optional extra LM text (one normalized sentence a line); dev and test
(and test_unseen when stage 1 wrote it) give coverage.json (word coverage and perplexity). The BPE model is kept when it was made from
the same training text and size (graft.lang.prepare), so `--lm-order 4` only adds lm_4gram/.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from graft.utils.cli import run_main
from graft.utils.conf import apply_conf_defaults
from graft.utils.errors import GraftError, require_file

SPLITS = ("train", "dev", "test")
OPTIONAL_SPLITS = ("test_unseen",)  # coverage reported when stage 1 wrote it; never trained on


def read_transcripts(manifest_dir: Path, split: str) -> list[str]:
    """The texts of `supervisions_<split>.jsonl.gz` in `manifest_dir` (stage 1's output)."""
    from lhotse import load_manifest

    path = require_file(manifest_dir / f"supervisions_{split}.jsonl.gz", stage=1,
                        what=f"the {split} supervision manifest")
    try:
        sups = load_manifest(path)
    except Exception as e:  # a truncated or foreign file
        raise GraftError(f"cannot read {path}: {e}") from e
    return [s.text for s in sups if s.text and s.text.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--language", required=True, help="language code, e.g. en, cs")
    p.add_argument("--manifest-dir", required=True, type=Path, help="stage 1 manifests of the language")
    p.add_argument("--lm-text", type=Path, default=None, help="extra LM text (optional)")
    p.add_argument("--vocab-size", type=int, help="BPE vocabulary = model outputs")
    p.add_argument("--lm-order", type=int, help="n-gram order (1..5)")
    p.add_argument("--prune-threshold", type=float,
                   help="entropy-prune the LM (orders >= 2) at this threshold, e.g. 1e-7")
    p.add_argument("--word-list-weight", type=float,
                   help="one-word lines of --lm-text are a word list, mixed in as a unigram at this weight (0: sentences)")
    p.add_argument("--out-dir", required=True, type=Path, help="the lang dir to write")
    apply_conf_defaults(p, "lang", own=("language", "manifest_dir", "lm_text", "out_dir"))
    args = p.parse_args()

    texts = {split: read_transcripts(args.manifest_dir, split) for split in SPLITS}
    optional = {split: read_transcripts(args.manifest_dir, split) for split in OPTIONAL_SPLITS
                if (args.manifest_dir / f"supervisions_{split}.jsonl.gz").is_file()}
    if not texts["train"]:
        raise GraftError(f"no training transcripts in {args.manifest_dir / 'supervisions_train.jsonl.gz'}")
    lm_texts: list[str] = []
    if args.lm_text is not None:
        path = require_file(args.lm_text, stage=0, what="the extra LM text")
        lm_texts = path.read_text(encoding="utf-8").splitlines()

    from graft.lang.prepare import prepare_bpe, prepare_lm

    bpe_info = prepare_bpe(args.out_dir, args.language, texts["train"], vocab_size=args.vocab_size)
    info = prepare_lm(args.out_dir, texts["train"], lm_texts, texts["dev"], texts["test"],
                      lm_order=args.lm_order, prune_threshold=args.prune_threshold,
                      extra_eval_texts=optional, word_list_weight=args.word_list_weight)
    from graft.lang.langdir import lm_dir_name

    lm_dir = args.out_dir / lm_dir_name(args.lm_order, args.prune_threshold)
    coverage = json.loads((lm_dir / "coverage.json").read_text(encoding="utf-8"))
    print(f"{args.out_dir}: {bpe_info['num_tokens']} tokens (fingerprint {bpe_info['fingerprint']}); "
          f"{lm_dir}: {info['num_words']} words, LM {info['lm_ngrams']}, HLG {info['graphs']['HLG']}, "
          f"{info['build_seconds']} s")
    for split in ("dev", "test", *optional):
        c = coverage[split]
        print(f"  {split}: {c['words']} words, coverage {c['word_coverage']} ({c['oov_words']} OOV), "
              f"perplexity {c['perplexity']} (OOVs excluded)")


if __name__ == "__main__":
    run_main(main)
