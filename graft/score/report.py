"""A recipe's RESULTS.md: tables over many experiments, from their scored decode dirs.

Each experiment is `label|group|minutes|decode_root` (group e.g. "source", "scratch",
"transfer", "ablation"; minutes: the training data size, or "-"). For each experiment and
method it reads `<decode_root>/<method>/selection.json` (steps/score.py) and, for the "no LM"
column, the LM-weight-0 row of `<decode_root>/<method>/test/scoring/wer_summary.tsv`.

Usage:
    exps = [Experiment.parse("en small|source|-|exp/en_small/decode_epoch8_avg3"), ...]
    text = results_markdown(exps, methods=["greedy", "beam", "ctc-hlg"])
    plot_wer_vs_size(exps, ["beam", "ctc-hlg"], "RESULTS_wer_vs_size.png")
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from graft.score.weights import weight_label
from graft.utils.errors import GraftError
from graft.utils.io import atomic_path


@dataclass
class Experiment:
    """One trained model's decode dir, with how to place it in the tables."""

    label: str
    group: str
    minutes: float | None
    decode_root: Path

    @classmethod
    def parse(cls, text: str) -> "Experiment":
        parts = text.split("|")
        if len(parts) != 4:
            raise GraftError(f"an experiment is 'label|group|minutes|decode_root', got {text!r}")
        label, group, minutes, root = (p.strip() for p in parts)
        try:
            mins = None if minutes in ("", "-") else float(minutes)
        except ValueError:
            raise GraftError(f"experiment {label!r}: minutes {minutes!r} is not a number") from None
        return cls(label, group, mins, Path(root))

    def selection(self, method: str) -> dict | None:
        path = self.decode_root / method / "selection.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def no_lm_test(self, method: str) -> float | None:
        """Test WER at LM weight 0, penalty 0 (None if that point was not scored)."""
        path = self.decode_root / method / "test" / "scoring" / "wer_summary.tsv"
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if float(row.get("lm_weight", "nan")) == 0.0 and float(row.get("word_ins_penalty", "nan")) == 0.0:
                    return float(row["wer"])
        return None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def results_rows(exps: Sequence[Experiment], methods: Sequence[str]) -> list[dict]:
    """One row per (experiment, method) that has been scored."""
    rows = []
    for e in exps:
        for m in methods:
            sel = e.selection(m)
            if sel is None:
                continue
            test = sel.get("test") or {}
            rows.append({"label": e.label, "group": e.group, "minutes": e.minutes, "method": m,
                         "lm_weight": sel["chosen_on_dev"]["lm_weight"],
                         "penalty": sel["chosen_on_dev"]["word_ins_penalty"],
                         "dev_wer": sel["dev"]["wer"], "test_wer": test.get("wer"), "test_cer": test.get("cer"),
                         "oracle_wer": (sel.get("test_oracle_score") or {}).get("wer"),
                         "no_lm_test_wer": e.no_lm_test(m)})
    return rows


def results_markdown(exps: Sequence[Experiment], methods: Sequence[str]) -> str:
    """Markdown tables, one per group, of the dev-chosen weights and the test WER/CER there."""
    rows = results_rows(exps, methods)
    out = []
    for group in dict.fromkeys(e.group for e in exps):
        grows = [r for r in rows if r["group"] == group]
        if not grows:
            continue
        out += [f"### {group}", "",
                "| model | train min | method | LM weight (dev) | penalty | dev WER | test WER | test CER "
                "| test WER, no LM | test oracle WER |",
                "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in grows:
            mins = "-" if r["minutes"] is None else f"{r['minutes']:g}"
            out.append(f"| {r['label']} | {mins} | {r['method']} | {weight_label(r['lm_weight'])} | "
                       f"{weight_label(r['penalty'])} | {_fmt(r['dev_wer'])} | {_fmt(r['test_wer'])} | "
                       f"{_fmt(r['test_cer'])} | {_fmt(r['no_lm_test_wer'])} | {_fmt(r['oracle_wer'])} |")
        out.append("")
    return "\n".join(out)


def plot_wer_vs_size(exps: Sequence[Experiment], methods: str | Sequence[str], path: str | Path,
                     groups: Sequence[str] = ("scratch", "transfer")) -> bool:
    """PNG of test WER against training minutes, one line per (group, method); False if nothing
    to plot. A group keeps its colour; methods differ by line style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [methods] if isinstance(methods, str) else list(methods)
    rows = [r for r in results_rows(exps, methods) if r["minutes"] is not None and r["test_wer"] is not None]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    styles = ["-", "--", ":", "-."]
    for gi, g in enumerate(groups):
        for mi, m in enumerate(methods):
            pts = sorted((r["minutes"], r["test_wer"]) for r in rows if r["group"] == g and r["method"] == m)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=f"C{gi}",
                        linestyle=styles[mi % len(styles)], label=f"{g}, {m}")
    sizes = sorted({r["minutes"] for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{x:g}" for x in sizes])
    ax.minorticks_off()
    ax.set_xlabel("target-language training audio (minutes)")
    ax.set_ylabel("test WER (%) at the dev-chosen LM weight")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True
