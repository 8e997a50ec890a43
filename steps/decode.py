#!/usr/bin/env python3
"""Stage 6: decode cut sets with a trained model (transducer searches, CTC + HLG lattices).

Usage:
    steps/decode.py --exp-dir exp/en_small --lm-dir data/lang/en_bpe150/lm_3gram \
        --sets "dev:data/fbank/en/cuts_dev.jsonl.gz test:data/fbank/en/cuts_test.jsonl.gz" \
        [--methods "greedy beam ctc-hlg" --epoch 8 --avg 3 --lm-weights "0.1 0.2 ... 1.5"]

Defaults come from conf/decode.yaml. The model's lang dir is its own (`<exp-dir>/lang/`, or
--lang-dir), checked against the checkpoint's token fingerprint. Writes
`<exp-dir>/<decode-dir>/<method>/<set>/` (default decode dir: decode_epoch<E>_avg<A>, or
..._running): ref.txt, hyp.txt / nbest.jsonl / lats/, decode.json; and `<decode-dir>/decode.json`,
the record of how it was decoded (checkpoints, epoch/avg, beams, the lattice LM weight w0, the
LM dir). Decoding again into a decode dir with other settings first empties it (saying what
changed), so old and new outputs never mix. Then steps/score.py re-scores at any LM weight.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from graft.utils.cli import run_main
from graft.utils.conf import apply_conf_defaults
from graft.utils.errors import GraftError
from graft.utils.io import atomic_write
from graft.utils.logging import get_logger

log = get_logger("steps.decode")

OWN = ("exp_dir", "lang_dir", "lm_dir", "sets", "decode_dir")
# the settings a decode dir is made with: outputs decoded with other values must not mix
RECORD_KEYS = ("checkpoints", "epoch", "avg", "use_averaged_model", "fingerprint", "lm_dir", "beam",
               "num_best", "search_beam", "lattice_beam", "w0", "lex", "joint")
# settings of some methods only (None when none of them is decoded) -> those methods
METHOD_KEYS = {"w0": ("ctc-hlg", "ctc-hlg-rnnt"), "lex": ("beam-lex",), "joint": ("ctc-hlg-rnnt",)}


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steps/decode.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, type=Path)
    p.add_argument("--lang-dir", type=Path, help="the model's lang dir (default: <exp-dir>/lang/)")
    p.add_argument("--lm-dir", type=Path, help="LM dir with HLG.fst and words.txt (ctc-hlg; recorded for scoring)")
    p.add_argument("--sets", required=True, help="space-separated name:cuts_path items")
    p.add_argument("--decode-dir", help="name under --exp-dir (default: decode_epoch<E>_avg<A>)")
    p.add_argument("--methods", help="any of: greedy beam beam-lex ctc-greedy ctc-hlg ctc-hlg-rnnt")
    p.add_argument("--epoch", type=int, help="epoch to decode (null: the last)")
    p.add_argument("--avg", type=int, help="average the last AVG epochs")
    p.add_argument("--use-averaged-model", type=lambda s: {"true": True, "false": False}[s.lower()],
                   help="the running average kept during training, over the same epochs (true/false)")
    p.add_argument("--beam", type=int, help="modified beam search width")
    p.add_argument("--num-best", type=int, help="n-best list length")
    p.add_argument("--lex-beam", type=int, help="beam-lex: hypotheses kept per frame")
    p.add_argument("--lex-lm-weight", type=float, help="beam-lex: LM weight inside the search")
    p.add_argument("--hlg-nbest", type=int, help="ctc-hlg-rnnt: distinct word sequences taken from each lattice")
    p.add_argument("--rnnt-weight", type=float, help="ctc-hlg-rnnt: the transducer's share of the acoustic score")
    p.add_argument("--decode-bf16", choices=("auto", "on", "off"), help="ctc-hlg-rnnt's joiner in bf16")
    p.add_argument("--lm-weights", help="the sweep the lattices are decoded for (w0 = its middle)")
    p.add_argument("--search-beam", type=float, help="lattice decoding beam")
    p.add_argument("--lattice-beam", type=float, help="lattice beam")
    p.add_argument("--num-jobs", type=int, help="lattice decoding processes")
    p.add_argument("--max-duration", type=float, help="seconds of audio per encoder batch")
    p.add_argument("--num-threads", type=int, help="torch threads for the encoder")
    apply_conf_defaults(p, "decode", own=OWN)
    return p


def _outputs(root: Path) -> list[Path]:
    """What `root` holds but the stage stamps (`.<step>.stamp`, utils/stage.sh writes its running
    stamp there before this step starts)."""
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if not (p.name.startswith(".") and p.name.endswith(".stamp"))]


def _empty(root: Path) -> None:
    """Remove the outputs in `root`, keeping the stage stamps."""
    for p in _outputs(root):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def prepare_decode_dir(root: Path, record: dict) -> None:
    """Make `root` agree with `record`, then write it: a changed shared setting (the checkpoints,
    the beams, ...) empties `root`; a changed setting of one method (METHOD_KEYS) removes only the
    outputs of the methods that use it. Says which setting changed."""
    path = root / "decode.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        changed = [k for k in RECORD_KEYS if k not in METHOD_KEYS and old.get(k) != record.get(k)]
        # a method's own settings (None when it is not decoded) conflict only when both runs have them
        stale = [k for k in METHOD_KEYS if old.get(k) is not None and record.get(k) is not None
                 and old.get(k) != record.get(k)]
        if changed:
            log.warning("%s was decoded with other settings (%s): emptying it first", root,
                        ", ".join(f"{k}: {old.get(k)!r} -> {record.get(k)!r}" for k in changed))
            _empty(root)
        else:
            methods = set(old.get("methods", []))
            for k in stale:
                gone = sorted(m for m in METHOD_KEYS[k] if (root / m).exists())
                log.warning("%s: %s changed (%r -> %r): removing the outputs of %s", root, k, old.get(k),
                            record.get(k), ", ".join(gone) or "no method")
                for m in METHOD_KEYS[k]:
                    shutil.rmtree(root / m, ignore_errors=True)
                    methods.discard(m)
            record["methods"] = sorted(methods | set(record["methods"]))
            for k in METHOD_KEYS:
                if record.get(k) is None and k not in stale:
                    record[k] = old.get(k)
            record["sets"] = {**old.get("sets", {}), **record["sets"]}
    elif _outputs(root):
        log.warning("%s holds outputs without a decode.json (an older Graft?): emptying it first", root)
        _empty(root)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(record, f, indent=2)
        f.write("\n")


def main() -> None:
    args = build_parser().parse_args()
    import torch

    from graft.decode.ctc_lattice import middle_lm_weight
    from graft.decode.layout import decode_dir_name
    from graft.decode.run import METHODS, NEEDS_LM_DIR, DecodeOptions, decode_set
    from graft.lang.langdir import model_lang_dir
    from graft.score.weights import parse_weights
    from graft.train.checkpoint import load_model_for_decoding

    torch.set_num_threads(args.num_threads)
    sets = parse_sets(args.sets)
    methods = args.methods.split()
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise GraftError(f"unknown decoding method(s) {', '.join(bad)} (choose from {', '.join(METHODS)})")
    needs = [m for m in methods if m in NEEDS_LM_DIR]
    if needs and args.lm_dir is None:
        raise GraftError(f"{' and '.join(needs)} need{'s' if len(needs) == 1 else ''} --lm-dir "
                         "(e.g. data/lang/en_bpe150/lm_3gram, written by stage 3)")
    if args.lex_beam < 1 or not args.lex_lm_weight >= 0:
        raise GraftError(f"--lex-beam must be >= 1 and --lex-lm-weight >= 0, got {args.lex_beam} and {args.lex_lm_weight}")
    if args.hlg_nbest < 1 or not 0.0 <= args.rnnt_weight <= 1.0:
        raise GraftError(f"--hlg-nbest must be >= 1 and --rnnt-weight in [0, 1], got {args.hlg_nbest} and {args.rnnt_weight}")
    weights = parse_weights(args.lm_weights, "--lm-weights", minimum=0.0)
    opts = DecodeOptions(beam=args.beam, num_best=args.num_best, lm_weights=weights,
                         search_beam=args.search_beam, lattice_beam=args.lattice_beam,
                         num_jobs=args.num_jobs, max_duration=args.max_duration,
                         lex_beam=args.lex_beam, lex_lm_weight=args.lex_lm_weight,
                         hlg_nbest=args.hlg_nbest, rnnt_weight=args.rnnt_weight, bf16=args.decode_bf16)
    model, info = load_model_for_decoding(args.exp_dir, epoch=args.epoch, avg=args.avg,
                                          use_averaged_model=args.use_averaged_model)
    lang = model_lang_dir(args.exp_dir, info, args.lang_dir)
    name = args.decode_dir or decode_dir_name(info["epoch"], args.avg, args.use_averaged_model)
    root = args.exp_dir / name
    record = {k: info.get(k) for k in ("checkpoints", "epoch", "avg", "use_averaged_model", "fingerprint", "step")}
    record.update({"exp_dir": str(args.exp_dir), "lang_dir": str(lang.path),
                   "lm_dir": str(args.lm_dir) if args.lm_dir else None, "methods": methods,
                   "beam": args.beam, "num_best": args.num_best, "search_beam": args.search_beam,
                   "lattice_beam": args.lattice_beam, "lm_weights": weights,
                   "w0": middle_lm_weight(weights) if {"ctc-hlg", "ctc-hlg-rnnt"} & set(methods) else None,
                   "lex": ({"beam": args.lex_beam, "lm_weight": args.lex_lm_weight}
                           if "beam-lex" in methods else None),
                   "joint": ({"hlg_nbest": args.hlg_nbest, "rnnt_weight": args.rnnt_weight, "bf16": args.decode_bf16}
                             if "ctc-hlg-rnnt" in methods else None),
                   "sets": {n: str(c) for n, c in sets}})
    prepare_decode_dir(root, record)
    figures = []
    for set_name, cuts in sets:
        figures += decode_set(model, cuts, lang, args.lm_dir, root, set_name, methods, opts, info)
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
    print(f"decoded into {root}")


if __name__ == "__main__":
    run_main(main)
