#!/usr/bin/env python3
"""Several languages' stage-1/2 manifests as one training language (a multilingual source).

Usage (in a recipe dir, after stages 0-2 of each language):
    steps/combine_languages.py --languages en pl --name en_pl

Writes data/manifests/<name>/ (and its lm_text.txt), data/fbank/<name>/ and report.json last;
graft.data.combine says what each holds. Stages 3 and 4 then take <name> as a language.
"""
from __future__ import annotations

import argparse
import json

from graft.data.combine import combine_languages
from graft.utils.cli import run_main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--languages", nargs="+", required=True, help="language codes, e.g. en pl")
    p.add_argument("--name", required=True, help="the combined language's name, e.g. en_pl")
    p.add_argument("--manifest-root", default="data/manifests")
    p.add_argument("--fbank-root", default="data/fbank")
    p.add_argument("--corpus-root", default="data/corpus", help="where each language's lm_text.txt is")
    p.add_argument("--seed", type=int, default=0, help="the train cuts' shuffle")
    args = p.parse_args()
    report = combine_languages(args.languages, args.name, args.manifest_root, args.fbank_root,
                               args.corpus_root, args.seed)
    print(json.dumps(report["splits"], indent=1))


if __name__ == "__main__":
    run_main(main)
