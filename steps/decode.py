#!/usr/bin/env python3
"""Stage 6: decode cut sets with a trained model (transducer searches, CTC + HLG lattices).

Usage:
    steps/decode.py --exp-dir exp/en_small --lang-dir data/lang/en_bpe500 \
        --sets "dev:data/fbank/en/cuts_dev.jsonl.gz test:data/fbank/en/cuts_test.jsonl.gz" \
        --methods "greedy beam ctc-hlg" --epoch 8 --avg 3 --lm-weights "0.1 0.2 ... 1.5"

Writes `<exp-dir>/<decode-dir>/<method>/<set>/` (default decode dir: decode_epoch<E>_avg<A>,
or decode_running_avg): ref.txt, hyp.txt / nbest.jsonl / lats/, decode.json with the RTF.
Then steps/score.py re-scores them at any LM weight without the model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from graft.decode.run import METHODS, DecodeOptions, decode_set
from graft.score.weights import parse_weights
from graft.train.checkpoint import load_model_for_decoding
from graft.utils.cli import run_main
from graft.utils.errors import GraftError
from graft.utils.io import atomic_write


def parse_sets(text: str) -> list[tuple[str, Path]]:
    """'dev:path test:path' -> [(name, path)]."""
    out = []
    for item in text.split():
        name, sep, path = item.partition(":")
        if not sep or not name or not path:
            raise GraftError(f"--sets takes 'name:cuts.jsonl.gz' items, got {item!r}")
        out.append((name, Path(path)))
    if not out:
        raise GraftError("--sets is empty")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, type=Path)
    p.add_argument("--lang-dir", required=True, type=Path)
    p.add_argument("--sets", required=True, help="space-separated name:cuts_path items")
    p.add_argument("--methods", default="greedy beam ctc-hlg", help=f"any of: {' '.join(METHODS)}")
    p.add_argument("--epoch", type=int, default=None, help="default: the last epoch")
    p.add_argument("--avg", type=int, default=1, help="average the last AVG epochs")
    p.add_argument("--use-averaged-model", default="false", choices=["true", "false"],
                   help="the running average kept during training, over the same epochs")
    p.add_argument("--decode-dir", default=None, help="name under --exp-dir")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--num-best", type=int, default=8)
    p.add_argument("--lm-weights", default=" ".join(f"{0.1 * i:.1f}" for i in range(1, 16)),
                   help="the sweep the lattices are decoded for (w0 = its middle)")
    p.add_argument("--search-beam", type=float, default=12.0)
    p.add_argument("--lattice-beam", type=float, default=6.0)
    p.add_argument("--num-jobs", type=int, default=2)
    p.add_argument("--max-duration", type=float, default=200.0)
    p.add_argument("--num-threads", type=int, default=2, help="torch threads for the encoder")
    args = p.parse_args()

    torch.set_num_threads(args.num_threads)
    sets = parse_sets(args.sets)
    opts = DecodeOptions(beam=args.beam, num_best=args.num_best,
                         lm_weights=parse_weights(args.lm_weights, "--lm-weights", minimum=0.0),
                         search_beam=args.search_beam, lattice_beam=args.lattice_beam,
                         num_jobs=args.num_jobs, max_duration=args.max_duration)
    averaged = args.use_averaged_model == "true"
    model, info = load_model_for_decoding(args.exp_dir, epoch=args.epoch, avg=args.avg,
                                          use_averaged_model=averaged)
    name = args.decode_dir or (f"decode_epoch{info['epoch']}_avg{args.avg}" + ("_running" if averaged else ""))
    root = args.exp_dir / name
    figures = []
    for set_name, cuts in sets:
        figures += decode_set(model, cuts, args.lang_dir, root, set_name, args.methods.split(), opts, info)
    lines = ["| method | set | utterances | audio (s) | RTF (encoder + search) | search RTF |",
             "|---|---|---|---|---|---|"]
    for f in figures:
        lines.append(f"| {f['method']} | {Path(f['cuts']).name} | {f['utterances']} | {f['audio_seconds']} "
                     f"| {f['rtf']:.4f} | {f['search_rtf']:.4f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    with atomic_write(root / "rtf.md") as fh:
        fh.write(f"# Real-time factors ({args.exp_dir}, {torch.get_num_threads()} torch threads, "
                 f"{args.num_jobs} lattice jobs)\n\n" + table)
    with atomic_write(root / "rtf.json") as fh:
        json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    run_main(main)
