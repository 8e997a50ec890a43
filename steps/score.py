#!/usr/bin/env python3
"""Stage 7: score saved lattices / n-best lists at many LM weights, Kaldi-style, without a model.

Usage:
    steps/score.py --decode-root exp/en_conformer/decode --method ctc-hlg beam4 \
        --dev-set dev --test-set test --lm-weights "0.1 0.2 0.3 0.5 0.7 1.0 1.5" \
        --word-ins-penalties "0.0 0.5" --lang-dir data/lang/en_bpe500

For each method, reads `<decode-root>/<method>/<set>/` (ref.txt plus lats/lattices.scp,
nbest.jsonl or hyp.txt), writes `<set>/scoring/` (hyp_/wer_/cer_/per_utt_/errors_<lmwt>_<wip>,
wer_summary.tsv, best_wer) and `<method>/summary.md`, `wer_vs_lmwt.png`, `selection.json`:
the (LM weight, penalty) chosen on dev, the test WER there, and the test oracle.
The full layout is in graft/score/run.py. Cost at LM weight w and penalty p:
w * LM cost + acoustic cost + p * number of words (a positive penalty removes words).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from graft.utils.cli import run_main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decode-root", required=True, type=Path, help="e.g. exp/<model>/decode")
    p.add_argument("--method", required=True, nargs="+", help="decode method dir name(s) under the root")
    p.add_argument("--dev-set", default="dev", help="set the weights are chosen on")
    p.add_argument("--test-set", default="test", help="set the chosen weights are applied to ('' for none)")
    p.add_argument("--lm-weights", default="0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0 1.1 1.2 1.3 1.4 1.5",
                   help="LM weights, separated by spaces or commas")
    p.add_argument("--word-ins-penalties", default="0.0 0.5", help="word insertion penalties (natural log)")
    p.add_argument("--lang-dir", type=Path, default=None, help="lang dir: words.txt (lattices), G.fst (n-best)")
    p.add_argument("--oov-cost", type=float, default=20.0, help="n-best: LM cost of a word G does not know")
    p.add_argument("--num-jobs", type=int, default=1, help="processes for lattice re-scoring")
    p.add_argument("--top-errors", type=int, default=30, help="entries per list in errors_* files")
    args = p.parse_args()

    from graft.score.run import ScoreConfig, score_method
    from graft.score.weights import parse_weights, weight_label

    weights = parse_weights(args.lm_weights, "--lm-weights", minimum=0.0)
    penalties = parse_weights(args.word_ins_penalties, "--word-ins-penalties")
    for method in args.method:
        sel = score_method(ScoreConfig(
            decode_root=args.decode_root, method=method, lm_weights=weights, penalties=penalties,
            dev_set=args.dev_set, test_set=args.test_set or None, lang_dir=args.lang_dir,
            oov_cost=args.oov_cost, num_jobs=args.num_jobs, top_errors=args.top_errors,
        ))
        w, pen = sel.chosen
        line = f"{method}: {args.dev_set} chooses LM weight {weight_label(w)}, penalty {weight_label(pen)}: " \
               f"{sel.dev.wer.kaldi_line()}"
        if sel.test is not None:
            line += f"; {args.test_set} there: {sel.test.wer.kaldi_line()}"
        if sel.oracle_test is not None and sel.oracle is not None:
            line += f" (oracle {weight_label(sel.oracle[0])}/{weight_label(sel.oracle[1])}: {sel.oracle_test.wer.rate:.2f})"
        print(line)
        print(f"  {args.decode_root / method / 'summary.md'}")


if __name__ == "__main__":
    run_main(main)
