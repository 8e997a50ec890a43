#!/usr/bin/env python3
"""Decoding methods of the same models side by side: paired-bootstrap WER differences per model,
pair of methods and set, with a plot of the intervals.

Usage:
    .venv/bin/python bench/compare_methods.py --exp egs/demo/ASR/exp/en_small \
        --exp egs/demo/ASR/exp/cs_transfer_encoder_decoder_15m \
        --pairs "ctc-hlg-rnnt:ctc-hlg beam-lex:beam" --sets "dev test test_unseen" \
        --out bench/results/decoding_methods

Each model must be decoded (stage 6) and scored (stage 7) with every method named. For a pair
A:B, the difference is WER(A) - WER(B) in points over the set's utterances, each method at its
LM weight and penalty chosen on dev (`selection.json`), with the paired bootstrap 95 % interval
(graft.score.bootstrap, 1000 resamples; negative = A better). Writes <out>.md, .json and .png.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare_models import decode_root  # noqa: E402
from graft.score.bootstrap import compare, scored_utterances  # noqa: E402
from graft.utils.io import atomic_write, save_figure  # noqa: E402


def plot(rows: list[dict], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.5), dpi=100)
    for y, r in enumerate(rows):
        color = "tab:green" if r["hi"] < 0 else ("tab:red" if r["lo"] > 0 else "tab:gray")
        ax.plot([r["lo"], r["hi"]], [y, y], color=color, lw=3)
        ax.plot([r["delta"]], [y], "o", color="black", ms=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['model']} {r['set']}: {r['a']} - {r['b']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("WER difference, points (95 % paired bootstrap interval; left = first method better)")
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, out_png)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", type=Path, action="append", required=True, help="a decoded model (repeatable)")
    ap.add_argument("--pairs", required=True, help='"A:B ..." pairs of methods')
    ap.add_argument("--sets", default="dev test")
    ap.add_argument("--out", type=Path, required=True, help="output path without extension")
    args = ap.parse_args()
    pairs = [tuple(p.split(":")) for p in args.pairs.split()]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"ERROR: --pairs takes A:B items, got {args.pairs!r}")
    rows = []
    for exp in args.exp:
        root = decode_root(exp)
        for a, b in pairs:
            if not (root / a / "selection.json").exists() or not (root / b / "selection.json").exists():
                print(f"skip {exp.name} {a}:{b}: not both scored in {root}", file=sys.stderr)
                continue
            for set_name in args.sets.split():
                sa, sb = scored_utterances(root, a, set_name), scored_utterances(root, b, set_name)
                r = compare(sa, sb, n=1000, seed=0)
                rows.append({"model": exp.name, "decode_root": str(root), "a": a, "b": b, "set": set_name,
                             "lm_a": [sa.lm_weight, sa.penalty], "lm_b": [sb.lm_weight, sb.penalty],
                             "utterances": r.utterances, "wer_a": r.wer_a, "wer_b": r.wer_b,
                             "delta": r.delta, "lo": r.lo, "hi": r.hi, "p_a_better": r.p_better})
    if not rows:
        raise SystemExit("ERROR: no pair of methods was scored for any --exp")
    with atomic_write(args.out.with_suffix(".json")) as f:
        json.dump({"rows": rows}, f, indent=2)
    plot(rows, args.out.with_suffix(".png"))
    lines = ["# Decoding methods compared on the same models", "",
             "WER of each method at its LM weight and penalty chosen on dev; difference = WER(A) - WER(B) in "
             "points with its paired bootstrap 95 % interval over the set's utterances (1000 resamples; "
             "negative = A better). `bench/compare_methods.py`.", "",
             "| model | A | B | set | WER A | WER B | difference | 95 % interval | P(A better) |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['a']} | {r['b']} | {r['set']} | {r['wer_a']:.2f} | {r['wer_b']:.2f} | "
                     f"{r['delta']:+.2f} | [{r['lo']:+.2f}, {r['hi']:+.2f}] | {r['p_a_better']:.3f} |")
    lines += ["", f"![differences]({args.out.with_suffix('.png').name})", ""]
    md = "\n".join(lines)
    with atomic_write(args.out.with_suffix(".md")) as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
