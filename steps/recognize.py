#!/usr/bin/env python3
"""Recognize audio files: one line per file (`<file>\\t<text>`), optionally a JSON with word times.

Usage:
    steps/recognize.py --model exp/en_small/export/epoch9_avg3 a.wav b.flac c.mp3     # sherpa-onnx
    steps/recognize.py --model exp/en_small --epoch 9 --avg 3 --method beam a.wav      # Graft, torch
    steps/recognize.py --model EXPORT --method ctc-hlg --json words.json --num-threads 2 talk.mp3

--model is an export folder (steps/export_onnx.py: decoded by sherpa-onnx, --int8 true for the
quantized files) or a training exp dir (decoded by Graft's own searches; --epoch/--avg/
--use-averaged-model/--lang-dir/--lm-dir as in steps/decode.py). Methods: greedy, beam
(modified beam search, --beam), ctc-greedy, ctc-hlg (CTC + the HLG graph at LM weight 1); with a
training exp dir also beam-lex (beam search inside the lexicon, word LM at weight 0.3) and
ctc-hlg-rnnt (the HLG lattice's 20 best re-scored by CTC + transducer, LM weight 1).
Audio: wav, flac, mp3, ogg, any sample rate, mono or not (averaged). Files longer than
--max-segment-seconds (30) are cut at quiet points and decoded piece by piece, so a 10-minute
recording costs ten times a 1-minute one and never attends over 10 minutes at once; 0 decodes
every file whole (the encoder's attention memory grows with the square of the length).
A file that cannot be read prints an ERROR line; the others are still decoded (exit code 1).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from graft.utils.cli import run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steps/recognize.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", type=Path, help="audio files")
    p.add_argument("--model", required=True, type=Path, help="export folder or training exp dir")
    from graft.export.recognize import METHODS

    p.add_argument("--method", default="greedy", choices=list(METHODS))
    p.add_argument("--file-list", type=Path, help="a text file with one audio path per line (added to FILES)")
    p.add_argument("--json", type=Path, help="write every file's text, words with start/end times and segments")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--int8", default="false", choices=["true", "false"], help="export folder: the int8 files")
    p.add_argument("--max-segment-seconds", type=float, default=30.0,
                   help="cut longer files at quiet points (0: never cut)")
    p.add_argument("--epoch", type=int, default=None, help="exp dir: default the last epoch")
    p.add_argument("--avg", type=int, default=1)
    p.add_argument("--use-averaged-model", default="false", choices=["true", "false"])
    p.add_argument("--lang-dir", type=Path, help="exp dir: the model's lang dir (default <exp-dir>/lang/)")
    p.add_argument("--lm-dir", type=Path, help="exp dir, ctc-hlg: the LM dir with HLG.fst and words.txt")
    return p


def main() -> None:
    args = build_parser().parse_args()
    from tqdm import tqdm

    from graft.export.recognize import open_backend, recognize_file
    from graft.export.segment import SegmentOptions
    from graft.utils.errors import GraftError
    from graft.utils.io import atomic_write

    files = list(args.files)
    if args.file_list:
        if not args.file_list.is_file():
            raise GraftError(f"missing --file-list {args.file_list}")
        files += [Path(line.strip()) for line in args.file_list.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not files:
        raise GraftError("no audio files given")
    backend = open_backend(args.model, args.method, epoch=args.epoch, avg=args.avg,
                           use_averaged_model=args.use_averaged_model == "true", lang_dir=args.lang_dir,
                           lm_dir=args.lm_dir, beam=args.beam, num_threads=args.num_threads,
                           int8=args.int8 == "true")
    seg = SegmentOptions(max_seconds=args.max_segment_seconds)
    results, failed = [], 0
    for path in tqdm(files, desc="recognize", unit="file", disable=len(files) < 2, file=sys.stderr):
        try:
            r = recognize_file(backend, path, seg)
        except GraftError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}\t{r.text}", flush=True)
        results.append(r)
    audio = sum(r.duration for r in results)
    work = sum(r.seconds for r in results)
    if audio:
        print(f"{len(results)} files, {audio:.1f} s of audio, RTF {work / audio:.4f} ({args.method}, "
              f"{type(backend).__name__}, {args.num_threads} threads)", file=sys.stderr)
    if args.json:
        with atomic_write(args.json) as f:
            json.dump({"model": str(args.model), "method": args.method,
                       "files": [r.to_json() for r in results]}, f, indent=2, ensure_ascii=False)
            f.write("\n")
    if failed:
        raise GraftError(f"{failed} of {len(files)} files could not be recognized (see above)")


if __name__ == "__main__":
    run_main(main)
