#!/usr/bin/env python3
"""Stage 8: export a trained model to ONNX for sherpa-onnx (and steps/recognize.py).

Usage:
    steps/export_onnx.py --exp-dir exp/en_small --epoch 9 --avg 3 \
        [--use-averaged-model true] [--lang-dir exp/en_small/lang] \
        [--lm-dir data/lang/en_bpe150/lm_3gram] [--out-dir exp/en_small/export/epoch9_avg3] [--int8 true]

Writes `<out-dir>` (default `<exp-dir>/export/epoch<E>_avg<A>[_running]`): encoder/decoder/joiner
.onnx (sherpa-onnx's offline transducer), ctc.onnx (encoder + CTC head, for greedy CTC or
HLG decoding), their int8 versions (--int8 true), tokens.txt, bpe.model, HLG.fst + words.txt
(from the LM dir: --lm-dir, or the only lm_* dir of the lang dir), README.md and export.json
(written last; the folder appears atomically, so its export.json marks the stage complete).
Every ONNX file is compared with torch before the folder appears (inputs of 1, 7.3 and 61 s
and a padded batch): a difference over 1e-3 (+1e-3 relative) is an error.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from graft.utils.cli import run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steps/export_onnx.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, type=Path)
    p.add_argument("--epoch", type=int, default=None, help="default: the last epoch")
    p.add_argument("--avg", type=int, default=1, help="average the last AVG epochs")
    p.add_argument("--use-averaged-model", default="false", choices=["true", "false"],
                   help="the running average kept during training, over the same epochs")
    p.add_argument("--lang-dir", type=Path, help="the model's lang dir (default: <exp-dir>/lang/)")
    p.add_argument("--lm-dir", type=Path, help="LM dir whose HLG.fst and words.txt to ship "
                   "(default: the only lm_* dir of the lang dir; none: no HLG)")
    p.add_argument("--out-dir", type=Path, help="default: <exp-dir>/export/epoch<E>_avg<A>[_running]")
    p.add_argument("--int8", default="true", choices=["true", "false"], help="also write *.int8.onnx")
    p.add_argument("--check-seconds", default="1 7.33 61",
                   help="input lengths (s) the ONNX files are compared with torch on")
    p.add_argument("--num-threads", type=int, default=2, help="torch threads")
    return p


def main() -> None:
    args = build_parser().parse_args()
    import torch

    from graft.export.bundle import export_model
    from graft.utils.errors import GraftError

    torch.set_num_threads(args.num_threads)
    try:
        lengths = [int(round(float(s) * 100)) for s in args.check_seconds.split()]
    except ValueError:
        raise GraftError(f"--check-seconds takes numbers, got {args.check_seconds!r}") from None
    if not lengths or min(lengths) < 10:
        raise GraftError("--check-seconds needs at least one length of 0.1 s or more")
    record = export_model(args.exp_dir, args.out_dir, epoch=args.epoch, avg=args.avg,
                          use_averaged_model=args.use_averaged_model == "true", lang_dir=args.lang_dir,
                          lm_dir=args.lm_dir, int8=args.int8 == "true", check_lengths=lengths)
    summary = {"out_dir": record["out_dir"],
               "max_abs_diff_vs_torch": record["checks_against_torch"]["max_abs_diff"],
               "sizes_bytes": record["sizes_bytes"],
               "int8": record["int8"] and {"sizes_bytes": record["int8"]["sizes_bytes"],
                                           **record["int8"]["encoder_seconds_per_10s_audio_1_thread"]}}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    run_main(main)
