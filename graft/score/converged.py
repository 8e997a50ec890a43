"""RESULTS.md's section on a from-scratch model trained until its dev WER stopped improving
(the grid's scratch_converged model, group "scratch_converged"): its greedy dev WER per epoch
against the training audio it had seen, beside the transfer model of the same size, and the
two findings: transfer's gain at equal compute, and how much compute scratch needed to reach
the transfer's dev WER (or that it never did within the cap).

Inputs: the model's exp dir (the parent of its decode dir) holds dev_wer.json
(graft.train.early_stop); the transfer at the same minutes gives its greedy dev WER
(`<decode_root>/greedy/selection.json`, as decoded in stage 6) and its budget (params.json:
epochs x minutes of its training cuts, the audio it saw). The scratch curve is each epoch's
own weights (no averaging), computed during training.

Usage:
    text = converged_markdown(exps, Path("RESULTS.md"))   # "" when no experiment is in the group
    sentences = findings(history, transfer_wer=52.1, budget=180.0, cap_minutes=1440.0, done=True, stopped=True)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from graft.train.early_stop import read_summary
from graft.utils.io import save_figure
from graft.utils.logging import get_logger

log = get_logger(__name__)

GROUP = "scratch_converged"
REFERENCE_GROUP = "transfer"
METHOD = "greedy"  # the search the training loop scores dev with


def budget_minutes(exp_dir: str | Path) -> float | None:
    """Training audio a finished run saw, from params.json: epochs x minutes of its kept cuts."""
    path = Path(exp_dir) / "params.json"
    if not path.is_file():
        return None
    params = json.loads(path.read_text(encoding="utf-8"))
    try:
        return float(params["train_conf"]["num_epochs"]) * float(params["train_cuts"]["hours"]) * 60.0
    except (KeyError, TypeError, ValueError):
        return None


def first_reaching(history: Sequence[Sequence[float]], target: float) -> list[float] | None:
    """The first [epoch, step, minutes, wer] with wer <= target (None: never)."""
    return next((list(r) for r in history if r[3] <= target), None)


def at_budget(history: Sequence[Sequence[float]], budget: float, tolerance: float = 0.01) -> list[float] | None:
    """The first epoch whose audio minutes reach `budget` (within `tolerance`, relative)."""
    return next((list(r) for r in history if r[2] >= budget * (1 - tolerance)), None)


def _x(minutes: float, budget: float) -> str:
    return f"{minutes / budget:.1f} x"


def findings(history: Sequence[Sequence[float]], transfer_wer: float, budget: float, cap_minutes: float,
             done: bool, stopped: bool) -> list[str]:
    """The section's two sentences: transfer's gain at equal compute, and scratch's compute to
    reach the transfer's dev WER (or "never within the cap of N x")."""
    out = []
    eq = at_budget(history, budget)
    if eq is None:
        out.append(f"At equal compute ({budget:.0f} min of training audio) there is no scratch epoch yet.")
    else:
        gain = eq[3] - transfer_wer
        out.append(f"At equal compute ({budget:.0f} min of training audio each), the transfer's greedy dev WER is "
                   f"{transfer_wer:.2f} % against scratch's {eq[3]:.2f} % (epoch {int(eq[0])} of this run): transfer is "
                   f"{abs(gain):.2f} points {'lower' if gain >= 0 else 'higher'}.")
    reached = first_reaching(history, transfer_wer)
    best = min(history, key=lambda r: r[3]) if history else None
    if reached is not None:
        out.append(f"Scratch reached the transfer's dev WER ({transfer_wer:.2f} %) after {reached[2]:.0f} min of "
                   f"training audio (epoch {int(reached[0])}, {reached[3]:.2f} %): {_x(reached[2], budget)} the "
                   f"transfer's budget.")
    elif best is None:
        out.append("Scratch has no dev WER yet.")
    else:
        cap = cap_minutes / budget
        why = (f"its dev WER stopped improving at epoch {int(best[0])} ({best[3]:.2f} % after {best[2]:.0f} min, "
               f"{_x(best[2], budget)})" if stopped else
               f"its best was {best[3]:.2f} % after {best[2]:.0f} min ({_x(best[2], budget)})")
        out.append(f"Scratch never reached the transfer's dev WER ({transfer_wer:.2f} %) within the cap of "
                   f"{cap:.1f} x the transfer's budget: {why}."
                   + ("" if done else f" (Training is not finished: {len(history)} epochs so far.)"))
    return out


def history_table(history: Sequence[Sequence[float]], budget: float | None, best_epoch: int | None) -> list[str]:
    """Markdown rows of the dev WER per epoch (the best one in bold)."""
    lines = ["| epoch | step | training audio (min) | x transfer budget | dev WER (greedy) |",
             "|---:|---:|---:|---:|---:|"]
    for epoch, step, minutes, wer in history:
        mark = "**" if int(epoch) == best_epoch else ""
        times = "-" if not budget else f"{minutes / budget:.2f}"
        lines.append(f"| {int(epoch)} | {int(step)} | {minutes:.1f} | {times} | {mark}{wer:.2f}{mark} |")
    return lines


def plot_converged(history: Sequence[Sequence[float]], path: str | Path, title: str,
                   transfer_wer: float | None = None, budget: float | None = None) -> bool:
    """PNG of dev WER against training audio minutes, with the transfer's dev WER and budget as
    reference lines; False when there is nothing to plot."""
    if not history:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    ax.plot([r[2] for r in history], [r[3] for r in history], "o-", color="C0", label="scratch, per epoch")
    best = min(history, key=lambda r: r[3])
    ax.plot([best[2]], [best[3]], "*", color="C0", markersize=14, label=f"best (epoch {int(best[0])})")
    if transfer_wer is not None:
        ax.axhline(transfer_wer, color="C1", linestyle="--", label=f"transfer dev WER {transfer_wer:.1f} %")
    if budget:
        ax.axvline(budget, color="C1", linestyle=":", label=f"transfer budget {budget:.0f} min")
    ax.set_xlabel("training audio seen (minutes)")
    ax.set_ylabel("greedy dev WER (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, path)
    return True


def _transfer_reference(exps: Sequence[Any], e: Any) -> tuple[Any, float | None, float | None]:
    """(the transfer experiment at e's minutes, its greedy dev WER, its budget in minutes)."""
    partner = next((t for t in exps if t.group == REFERENCE_GROUP and t.minutes == e.minutes), None)
    if partner is None:
        return None, None, None
    sel = partner.selection(METHOD)
    wer = None if sel is None else float(sel["dev"]["wer"])
    return partner, wer, budget_minutes(partner.decode_root.parent)


def model_section(exps: Sequence[Any], e: Any, out: Path) -> list[str]:
    """The markdown lines of one scratch_converged experiment (its PNG is written beside `out`)."""
    summary = read_summary(e.decode_root.parent)
    head = [f"### {e.label}", ""]
    if not summary or not summary.get("history"):
        return head + [f"No dev WER history in {e.decode_root.parent}/dev_wer.json (trained with "
                       "--early-stop-patience?).", ""]
    history = summary["history"]
    partner, transfer_wer, budget = _transfer_reference(exps, e)
    best = (summary.get("best") or {}).get("epoch")
    per_epoch = history[0][2] / history[0][0] if history[0][0] else 0.0
    cap = per_epoch * int(summary["max_epochs"])
    lines = head + [f"Trained from scratch until its greedy dev WER had not improved for max({summary['patience']}, "
                    f"a quarter of the epochs to its best) epochs (epochs at or above the blank plateau's "
                    f"95 % not counted), at most {summary['max_epochs']} epochs ({cap:.0f} min of training audio); decoded "
                    f"above at its best epoch ({best}). Its curve is each epoch's own weights, scored during training.",
                    ""]
    if partner is None or transfer_wer is None or not budget:
        lines += [f"No {REFERENCE_GROUP} model at {e.minutes:g} min scored with {METHOD} search (and its "
                  "params.json): no reference to compare with.", ""]
    else:
        lines += [f"Reference: {partner.label}, greedy dev WER {transfer_wer:.2f} % as decoded in stage 6 "
                  f"({partner.decode_root.name}), after {budget:.0f} min of training audio.", ""]
        lines += [" ".join(findings(history, transfer_wer, budget, cap, bool(summary.get("done")),
                                    bool(summary.get("stopped_early")))), ""]
    lines += history_table(history, budget, best) + [""]
    png = out.with_name(f"{out.stem}_{e.label}_dev_wer.png")
    if plot_converged(history, png, f"{e.label}: dev WER against compute", transfer_wer, budget):
        lines += [f"![{e.label}: dev WER against training audio]({png.name})", ""]
    return lines


def converged_markdown(exps: Sequence[Any], out: str | Path) -> str:
    """`## From scratch until converged` with one section per scratch_converged experiment
    ("" when there is none); experiments are graft.score.report.Experiment."""
    models = [e for e in exps if e.group == GROUP]
    if not models:
        return ""
    lines = ["## From scratch until converged", ""]
    for e in models:
        lines += model_section(exps, e, Path(out))
    return "\n".join(lines)
