#!/usr/bin/env python3
"""Two trained models of one recipe side by side: paired-bootstrap WER differences per method and
set, and their loss curves overlaid (e.g. the bf16 fast path against fp32, issue 15).

Usage:
    .venv/bin/python bench/compare_models.py --a egs/demo/ASR/exp/en_small --a-name "bf16" \
        --b egs/demo/ASR/exp/en_small_fp32 --b-name "fp32" --out bench/results/amp_accuracy \
        [--methods "greedy beam ctc-hlg"] [--sets "dev test"]

Both experiments must be decoded (stage 6) and scored (stage 7) with the same epoch/avg. For
every method and set the WER of each (at the LM weight chosen on dev, `selection.json`) and the
paired bootstrap of WER(A) - WER(B) over the set's utterances (graft.score.bootstrap: negative =
A better; 1000 resamples) go to <out>.md and <out>.json; <out>.png overlays the training and
validation losses of both (from the last epoch checkpoint's history) and their training rates.
With --decode-only (one trained model decoded two ways, e.g. bench/lm_ablation.sh) there are no
training figures and <out>.png shows the two WERs of every method and set instead.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graft.score.bootstrap import compare, scored_utterances  # noqa: E402
from graft.utils.io import atomic_write, save_figure  # noqa: E402


def decode_root(exp: Path) -> Path:
    """The newest decode_epoch*_avg* dir of `exp` that has decode.json."""
    roots = sorted((p for p in exp.glob("decode_epoch*_avg*") if (p / "decode.json").exists()),
                   key=lambda p: p.stat().st_mtime)
    if not roots:
        raise SystemExit(f"ERROR: {exp} has no decoded dir (run stages 6-7 for it)")
    return roots[-1]


def history(exp: Path) -> dict:
    """The training history of the last epoch checkpoint (train/valid losses against step)."""
    import torch

    epochs = sorted(exp.glob("epoch-*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))
    if not epochs:
        raise SystemExit(f"ERROR: {exp} has no epoch-N.pt")
    ckpt = torch.load(epochs[-1], map_location="cpu", weights_only=False)
    return ckpt.get("history") or {}


def train_rates(exp: Path) -> list[float]:
    """The audio s/s figures the training log printed (every log interval)."""
    rates: list[float] = []
    for log in sorted((exp / "log").glob("train-*.log")):
        rates += [float(x) for x in re.findall(r"([\d.]+) audio s/s", log.read_text(errors="replace"))]
    return rates


def plot(ha: dict, hb: dict, name_a: str, name_b: str, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for h, name, color in ((ha, name_a, "tab:blue"), (hb, name_b, "tab:orange")):
        if h.get("train"):
            s, v = zip(*h["train"])
            ax.plot(s, v, color=color, alpha=0.5, lw=1, label=f"{name} train")
        if h.get("valid"):
            s, v = zip(*h["valid"])
            ax.plot(s, v, color=color, marker="o", lw=2, label=f"{name} valid")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per frame")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{name_a} vs {name_b}: training curves")
    save_figure(fig, out_png)


def plot_wer(rows: list[dict], name_a: str, name_b: str, out_png: Path) -> None:
    """Grouped bars: the WER of A and B for every (method, set) row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(rows) + 2), 4.5), dpi=100)
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["wer_a"] for r in rows], width=0.4, color="tab:blue", label=name_a)
    ax.bar([x + 0.2 for x in xs], [r["wer_b"] for r in rows], width=0.4, color="tab:orange", label=name_b)
    ax.set_xticks(list(xs), [f"{r['method']}\n{r['set']}" for r in rows], fontsize=8)
    ax.set_ylabel("WER (%)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_png)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, required=True)
    ap.add_argument("--a-name", default="A")
    ap.add_argument("--b-name", default="B")
    ap.add_argument("--methods", default="greedy beam ctc-hlg")
    ap.add_argument("--sets", default="dev test")
    ap.add_argument("--out", type=Path, required=True, help="output path without extension")
    ap.add_argument("--decode-only", action="store_true",
                    help="A and B are one trained model decoded two ways: no training figures, WER bars")
    args = ap.parse_args()
    ra, rb = decode_root(args.a), decode_root(args.b)
    rows = []
    for method in args.methods.split():
        for set_name in args.sets.split():
            a = scored_utterances(ra, method, set_name)
            b = scored_utterances(rb, method, set_name)
            r = compare(a, b, n=1000, seed=0)
            rows.append({"method": method, "set": set_name, "utterances": r.utterances,
                         "wer_a": r.wer_a, "wer_b": r.wer_b, "delta": r.delta, "lo": r.lo, "hi": r.hi,
                         "p_a_better": r.p_better})
    if args.decode_only:
        med, valid = {}, {}
        plot_wer(rows, args.a_name, args.b_name, args.out.with_suffix(".png"))
    else:
        ha, hb = history(args.a), history(args.b)
        rates = {args.a_name: train_rates(args.a), args.b_name: train_rates(args.b)}
        med = {k: (sorted(v)[len(v) // 2] if v else None) for k, v in rates.items()}
        valid = {args.a_name: ha.get("valid", []), args.b_name: hb.get("valid", [])}
        plot(ha, hb, args.a_name, args.b_name, args.out.with_suffix(".png"))
    result = {"a": str(args.a), "b": str(args.b), "a_name": args.a_name, "b_name": args.b_name,
              "decode_a": str(ra), "decode_b": str(rb), "rows": rows, "median_train_rate": med, "valid": valid}
    with atomic_write(args.out.with_suffix(".json")) as f:
        json.dump(result, f, indent=2)
    lines = [f"# {args.a_name} vs {args.b_name}", "",
             f"A = `{args.a}` ({args.a_name}), B = `{args.b}` ({args.b_name}); decoded in `{ra.name}` / `{rb.name}`. "
             "WER at the LM weight chosen on dev; difference = WER(A) - WER(B) in points with its paired "
             "bootstrap 95 % interval over the set's utterances (1000 resamples; negative = A better). "
             "`bench/compare_models.py`.", "",
             f"| method | set | WER {args.a_name} | WER {args.b_name} | difference | 95 % interval | P(A better) |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['set']} | {r['wer_a']:.2f} | {r['wer_b']:.2f} | {r['delta']:+.2f} | "
                     f"[{r['lo']:+.2f}, {r['hi']:+.2f}] | {r['p_a_better']:.3f} |")
    if args.decode_only:
        lines += ["", "One trained model decoded two ways: no training figures.", "",
                  f"![WER per method and set]({args.out.with_suffix('.png').name})", ""]
    else:
        lines += ["", "Validation loss per epoch (step, loss): "
                  + "; ".join(f"{k}: " + ", ".join(f"{v:.3f}" for _, v in vals) for k, vals in valid.items()),
                  "", "Median training rate logged (audio s/s): "
                  + ", ".join(f"{k} {v:.1f}" if v else f"{k} -" for k, v in med.items()), "",
                  f"![training curves]({args.out.with_suffix('.png').name})", ""]
    md = "\n".join(lines)
    with atomic_write(args.out.with_suffix(".md")) as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
