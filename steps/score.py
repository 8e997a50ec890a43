#!/usr/bin/env python3
"""Stage 7: score saved lattices / n-best lists at many LM weights, Kaldi-style, without a model.

Usage:
    steps/score.py --exp-dir exp/en_small [--methods "greedy beam ctc-hlg"] \
        [--lm-weights "0.1 0.2 0.3 0.5 0.7 1.0 1.5" --word-ins-penalties "0.0 0.5"]
    steps/score.py --decode-root exp/en_small/decode_epoch9_avg2 --methods ctc-hlg
    steps/score.py --decode-root exp/en_small/decode_epoch9_avg2 --methods ctc-hlg --test-sets "test test_unseen"

Defaults come from conf/decode.yaml (the same epoch/avg rule as steps/decode.py finds the
decode dir; the LM dir is the one the decode dir records). For each method, reads
`<decode-root>/<method>/<set>/` (ref.txt plus lats/lattices.scp, nbest.jsonl or hyp.txt), writes
`<set>/scoring/` (hyp_/wer_/cer_/per_utt_/errors_<lmwt>_<wip>, wer_summary.tsv, best_wer) and
`<method>/summary.md`, `wer_vs_lmwt.png`, `selection.json`: the (LM weight, penalty) chosen on
dev, the test WER there, and the test oracle. `--test-sets "test test_unseen"`: the first is
the test set, the others get the same dev-chosen pair and their WER ratio to test's (e.g. the
voice-disjoint test_unseen of the demo). The full layout is in graft/score/run.py. Cost at
LM weight w and penalty p: w * LM cost + acoustic cost + p * number of words.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from graft.utils.cli import run_main
from graft.utils.conf import apply_conf_defaults
from graft.utils.errors import GraftError

OWN = ("exp_dir", "decode_root", "dev_set", "test_set", "test_sets", "lm_dir")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steps/score.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, help="the model's exp dir (decode dir from --epoch/--avg)")
    p.add_argument("--decode-root", type=Path, help="the decode dir itself, e.g. exp/<model>/decode_epoch9_avg2")
    p.add_argument("--methods", help="decode method dir name(s) under the decode dir")
    p.add_argument("--epoch", type=int, help="epoch the decode dir was made from (null: the last)")
    p.add_argument("--avg", type=int, help="epochs averaged")
    p.add_argument("--use-averaged-model", type=lambda s: {"true": True, "false": False}[s.lower()],
                   help="the running-average decode dir (true/false)")
    p.add_argument("--dev-set", default="dev", help="set the weights are chosen on")
    p.add_argument("--test-set", default="test", help="set the chosen weights are applied to ('' for none)")
    p.add_argument("--test-sets", default=None,
                   help="test sets the chosen weights are applied to, e.g. 'test test_unseen': the first "
                        "is the test set (replaces --test-set), the others are reported beside it")
    p.add_argument("--lm-weights", help="LM weights, separated by spaces or commas")
    p.add_argument("--word-ins-penalties", help="word insertion penalties (natural log)")
    p.add_argument("--lm-dir", type=Path, default=None,
                   help="LM dir: words.txt (lattices), G.fst (n-best); default: the one the decode dir records")
    p.add_argument("--oov-cost", type=float, help="n-best: LM cost of a word G does not know")
    p.add_argument("--num-jobs", type=int, help="processes for lattice re-scoring")
    p.add_argument("--top-errors", type=int, help="entries per list in errors_* files")
    apply_conf_defaults(p, "decode", own=OWN)
    return p


def main() -> None:
    args = build_parser().parse_args()
    from graft.decode.layout import decode_root
    from graft.score.run import ScoreConfig, score_method
    from graft.score.weights import parse_weights, weight_label

    if args.decode_root is None:
        if args.exp_dir is None:
            raise GraftError("give --exp-dir (the model) or --decode-root (its decode dir)")
        args.decode_root = decode_root(args.exp_dir, args.epoch, args.avg, args.use_averaged_model)
    others: list[str] = []
    if args.test_sets is not None:
        names = args.test_sets.split()
        if not names:
            raise GraftError("--test-sets is empty: give e.g. 'test' or 'test test_unseen'")
        args.test_set, others = names[0], names[1:]
    weights = parse_weights(args.lm_weights, "--lm-weights", minimum=0.0)
    penalties = parse_weights(args.word_ins_penalties, "--word-ins-penalties")
    for method in args.methods.split():
        sel = score_method(ScoreConfig(
            decode_root=args.decode_root, method=method, lm_weights=weights, penalties=penalties,
            dev_set=args.dev_set, test_set=args.test_set or None, other_test_sets=others, lm_dir=args.lm_dir,
            oov_cost=args.oov_cost, num_jobs=args.num_jobs, top_errors=args.top_errors,
        ))
        w, pen = sel.chosen
        line = f"{method}: {args.dev_set} chooses LM weight {weight_label(w)}, penalty {weight_label(pen)}: " \
               f"{sel.dev.wer.kaldi_line()}"
        if sel.test is not None:
            line += f"; {args.test_set} there: {sel.test.wer.kaldi_line()}"
        for name, (_, sc) in sel.others.items():
            line += f"; {name} there: {sc.wer.kaldi_line()}"
        if sel.oracle_test is not None and sel.oracle is not None:
            line += f" (oracle {weight_label(sel.oracle[0])}/{weight_label(sel.oracle[1])}: {sel.oracle_test.wer.rate:.2f})"
        print(line)
        print(f"  {args.decode_root / method / 'summary.md'}")


if __name__ == "__main__":
    run_main(main)
