"""A recipe's RESULTS.md: tables over many experiments, from their scored decode dirs, the
paired-bootstrap differences between them, and the recipe's wall time per stage.

Each experiment is `label|group|minutes|decode_root` (group e.g. "source", "scratch",
"transfer", "ablation"; minutes: the training data size, or "-"). For each experiment and
method it reads `<decode_root>/<method>/selection.json` (steps/score.py) and, for the "no LM"
column, the LM-weight-0 row of `<decode_root>/<method>/test/scoring/wer_summary.tsv`. Further
test sets scored at the dev-chosen pair (e.g. test_unseen, the demo's voice-disjoint test set)
get two columns: their WER and its ratio to the test WER; without them the tables are as before.

Differences (`comparison_rows`): test WER of model A minus model B in points, with a paired
bootstrap 95 % interval over the test utterances (graft.score.bootstrap; negative: A has fewer
errors), from the per_utt files at each model's dev-chosen (LM weight, penalty):
  - group A vs group B at the same training minutes, per method (by default transfer vs
    scratch, transfer vs the from-scratch model trained until its dev WER stopped improving
    (group scratch_converged, graft.score.converged), and each ablation model vs the main
    transfer model); B is the first model of its
    group at that size in the experiment list (the main preset when several are listed);
  - LM vs no LM for every method with an LM sweep (lattices or n-best lists): the dev-chosen
    pair against LM weight 0.0, penalty 0.0 (the "no LM" column), when 0.0 was in the sweep.
A pairing whose models or files are missing is skipped (logged), not an error.

Stage wall times (`read_step_logs`): the step logs utils/stage.sh writes (`<log_dir>/*.log`:
`# <date> <description>`, `# <command>`, the output, and `# done in N s` when the step
finished); the stage is the number in the description's `stage<N>_` prefix.

Usage:
    exps = [Experiment.parse("en small|source|-|exp/en_small/decode_epoch8_avg3"), ...]
    text = results_markdown(exps, methods=["greedy", "beam", "ctc-hlg"])
    plot_wer_vs_size(exps, ["beam", "ctc-hlg"], "RESULTS_wer_vs_size.png")
    text += comparisons_markdown(comparison_rows(exps, ["greedy", "beam", "ctc-hlg"], n=1000, seed=0))
    steps = read_step_logs("exp/log")
    text += stage_times_markdown(steps); plot_stage_times(steps, "RESULTS_stage_times.png")
"""
from __future__ import annotations

import csv
import fnmatch
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from graft.score.bootstrap import BootstrapResult, ScoredUtterances, compare, per_utt_path, scored_utterances
from graft.score.weights import weight_label
from graft.utils.errors import GraftError
from graft.utils.io import save_figure
from graft.utils.logging import get_logger

log = get_logger(__name__)

DEFAULT_PAIRINGS = (("transfer", "scratch"), ("transfer", "scratch_converged"), ("ablation", "transfer"))
LM_KINDS = ("lattice", "nbest")  # decoding outputs re-scored with the LM (an LM-weight sweep)
NO_LM: tuple[float, float] = (0.0, 0.0)


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
                         "no_lm_test_wer": e.no_lm_test(m),
                         "other_tests": {name: {"wer": o.get("wer"), "ratio": o.get("wer_ratio_to_test")}
                                         for name, o in (sel.get("other_tests") or {}).items()}})
    return rows


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def results_markdown(exps: Sequence[Experiment], methods: Sequence[str]) -> str:
    """Markdown tables, one per group, of the dev-chosen weights and the test WER/CER there."""
    rows = results_rows(exps, methods)
    others = list(dict.fromkeys(n for r in rows for n in r["other_tests"]))
    out = []
    for group in dict.fromkeys(e.group for e in exps):
        grows = [r for r in rows if r["group"] == group]
        if not grows:
            continue
        out += [f"### {group}", "",
                "| model | train min | method | LM weight (dev) | penalty | dev WER | test WER | test CER "
                "| test WER, no LM | test oracle WER |" + "".join(f" {n} WER | {n} / test |" for n in others),
                "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|---:|" * len(others)]
        for r in grows:
            mins = "-" if r["minutes"] is None else f"{r['minutes']:g}"
            extra = "".join(f" {_fmt(r['other_tests'].get(n, {}).get('wer'))} | "
                            f"{_ratio(r['other_tests'].get(n, {}).get('ratio'))} |" for n in others)
            out.append(f"| {r['label']} | {mins} | {r['method']} | {weight_label(r['lm_weight'])} | "
                       f"{weight_label(r['penalty'])} | {_fmt(r['dev_wer'])} | {_fmt(r['test_wer'])} | "
                       f"{_fmt(r['test_cer'])} | {_fmt(r['no_lm_test_wer'])} | {_fmt(r['oracle_wer'])} |" + extra)
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
    save_figure(fig, path)
    return True


# --- paired-bootstrap differences --------------------------------------------------------------

def parse_pairing(text: str) -> tuple[str, str]:
    """"transfer:scratch" -> ("transfer", "scratch"): group A compared with group B."""
    a, sep, b = text.partition(":")
    if not sep or not a.strip() or not b.strip() or ":" in b:
        raise GraftError(f"--compare takes 'GROUP_A:GROUP_B' (e.g. transfer:scratch), got {text!r}")
    return a.strip(), b.strip()


def _scored(e: Experiment, method: str, pair: tuple[float, float] | None = None) -> ScoredUtterances | None:
    """The test set's per-utterance errors, or None (logged) when they are not there."""
    try:
        return scored_utterances(e.decode_root, method, pair=pair)
    except GraftError as err:
        log.info("no per-utterance test errors for %s, %s%s: %s", e.label, method,
                 "" if pair is None else f" at {weight_label(pair[0])}, {weight_label(pair[1])}", err)
        return None


def _compare(a: ScoredUtterances, b: ScoredUtterances, n: int, seed: int, level: float) -> BootstrapResult | None:
    try:
        return compare(a, b, n=n, seed=seed, level=level)
    except GraftError as err:
        log.warning("comparison skipped: %s", err)
        return None


def comparison_rows(
    exps: Sequence[Experiment],
    methods: Sequence[str],
    n: int = 1000,
    seed: int = 0,
    pairings: Sequence[tuple[str, str]] = DEFAULT_PAIRINGS,
    lm: bool = True,
    level: float = 0.95,
) -> list[dict]:
    """Paired-bootstrap rows (see module docstring): dicts with kind ("transfer vs scratch",
    ..., "LM vs no LM"), a, b (labels), minutes, method, pair_a, pair_b, wer_a, wer_b, result."""
    rows: list[dict] = []
    cache: dict = {}

    def scored(e: Experiment, m: str, pair: tuple[float, float] | None = None) -> ScoredUtterances | None:
        key = (str(e.decode_root), m, pair)
        if key not in cache:
            cache[key] = _scored(e, m, pair)
        return cache[key]

    for ga, gb in pairings:
        for ea in (e for e in exps if e.group == ga):
            # the first model of group B at this size: the main one (e.g. the grid's first preset)
            partners = [e for e in exps if e.group == gb and e.minutes == ea.minutes and e is not ea][:1]
            if not partners:
                log.info("%s (%s): no %s model at the same size to compare with", ea.label, ga, gb)
            for eb in partners:
                for m in methods:
                    a, b = scored(ea, m), scored(eb, m)
                    if a is None or b is None:
                        continue
                    r = _compare(a, b, n, seed, level)
                    if r is not None:
                        rows.append({"kind": f"{ga} vs {gb}", "a": ea.label, "b": eb.label, "minutes": ea.minutes,
                                     "method": m, "pair_a": (a.lm_weight, a.penalty), "pair_b": (b.lm_weight, b.penalty),
                                     "wer_a": r.wer_a, "wer_b": r.wer_b, "result": r})
    if lm:
        for e in exps:
            for m in methods:
                sel = e.selection(m)
                if not sel or (sel.get("kinds") or {}).get(sel.get("test_set") or "") not in LM_KINDS:
                    continue  # not scored, or fixed hypotheses (no LM sweep)
                if not per_utt_path(e.decode_root, m, sel["test_set"], *NO_LM).is_file():
                    log.info("%s, %s: LM weight 0.0 was not in the sweep: no LM-vs-no-LM comparison", e.label, m)
                    continue
                a, b = scored(e, m), scored(e, m, NO_LM)
                if a is None or b is None:
                    continue
                r = _compare(a, b, n, seed, level)
                if r is not None:
                    rows.append({"kind": "LM vs no LM", "a": e.label, "b": e.label, "minutes": e.minutes, "method": m,
                                 "pair_a": (a.lm_weight, a.penalty), "pair_b": NO_LM,
                                 "wer_a": r.wer_a, "wer_b": r.wer_b, "result": r})
    return rows


def _mins(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def comparisons_markdown(rows: Sequence[dict], digits: int = 2) -> str:
    """`## Differences` with one table per kind of comparison ("" when there are no rows)."""
    if not rows:
        return ""
    r0 = rows[0]["result"]
    level = f"{100 * r0.level:g} %"
    out = ["## Differences (paired bootstrap over test utterances)", "",
           f"Each difference is the test WER of the first model minus that of the second, in WER points, "
           f"with its {level} confidence interval from {r0.n} paired bootstrap resamples of the test "
           f"utterances (graft.score.bootstrap); negative: the first model has fewer errors. P(better) is "
           f"the share of resamples in which the first model has fewer errors (ties count half). An "
           f"interval that contains 0 is not a finding. Each model is at its dev-chosen LM weight and "
           f"penalty; \"no LM\" is LM weight 0.0, penalty 0.0.", ""]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        krows = [r for r in rows if r["kind"] == kind]
        out += [f"### {kind}", ""]
        if kind == "LM vs no LM":
            out += ["| model | train min | method | LM weight (dev) | penalty | test WER | test WER, no LM "
                    f"| difference [{level} CI] | P(LM better) | utterances |",
                    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
            for r in krows:
                res = r["result"]
                out.append(f"| {r['a']} | {_mins(r['minutes'])} | {r['method']} | {weight_label(r['pair_a'][0])} | "
                           f"{weight_label(r['pair_a'][1])} | {r['wer_a']:.{digits}f} | {r['wer_b']:.{digits}f} | "
                           f"{res.format(digits)} | {res.p_better:.3f} | {res.utterances} |")
        else:
            out += ["| model | against | train min | method | test WER | test WER, against "
                    f"| difference [{level} CI] | P(better) | utterances |",
                    "|---|---|---:|---|---:|---:|---:|---:|---:|"]
            for r in krows:
                res = r["result"]
                out.append(f"| {r['a']} | {r['b']} | {_mins(r['minutes'])} | {r['method']} | "
                           f"{r['wer_a']:.{digits}f} | {r['wer_b']:.{digits}f} | {res.format(digits)} | "
                           f"{res.p_better:.3f} | {res.utterances} |")
        out.append("")
    return "\n".join(out)


# --- stage wall times from the step logs ---------------------------------------------------------

_HEAD = re.compile(r"^# (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$")
_DONE = re.compile(r"^# done in (\d+) s$")
_STAGE = re.compile(r"^stage(\d+)(?:[_\W]|$)")


@dataclass
class StepTime:
    """One step's last run, from its log."""

    stage: int | None  # None: the description names no stage
    step: str  # the step's description
    log: str  # path of the log
    started: str  # "YYYY-MM-DD HH:MM:SS" (local time of the machine that ran it)
    seconds: int | None  # None: not finished (running, failed or killed)
    command: str = ""
    elapsed_s: float | None = None  # not finished: from its start to the log's last write

    @property
    def finished(self) -> bool:
        return self.seconds is not None


def _last_line(path: Path, tail: int = 4096) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - tail))
        lines = f.read().decode("utf-8", errors="replace").rstrip("\n").split("\n")
    return lines[-1].strip() if lines else ""


def parse_stage_of(specs: Sequence[str]) -> list[tuple[str, int]]:
    """"GLOB=N" items (e.g. "stage4_train_cs_*=5") -> [(glob, N)]."""
    out = []
    for spec in specs:
        glob, sep, num = spec.rpartition("=")
        if not sep or not glob or not num.strip().isdigit():
            raise GraftError(f"--stage-of takes 'STEP_GLOB=STAGE' (e.g. 'stage4_train_cs_*=5'), got {spec!r}")
        out.append((glob.strip(), int(num)))
    return out


def read_step_logs(log_dir: str | os.PathLike, stage_of: Sequence[tuple[str, int]] = ()) -> list[StepTime]:
    """Every step log in `log_dir`, by stage then start time. `stage_of`: (glob on the step's
    description, stage) overrides, the first match winning. Files that are not step logs are
    skipped (logged); no step log at all is a GraftError."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise GraftError(f"no log dir {log_dir} (the recipe's steps write their logs there: run ./run.sh)")
    steps = []
    for path in sorted(log_dir.glob("*.log")):
        with open(path, encoding="utf-8", errors="replace") as f:
            head, cmd = f.readline().rstrip("\n"), f.readline().rstrip("\n")
        m = _HEAD.match(head)
        if not m:
            log.info("%s is not a step log (its first line is not '# <date> <description>'): skipped", path)
            continue
        started, desc = m.group(1), m.group(2).strip()
        stage = next((n for glob, n in stage_of if fnmatch.fnmatchcase(desc, glob)), None)
        if stage is None:
            sm = _STAGE.match(desc) or _STAGE.match(path.stem)
            stage = int(sm.group(1)) if sm else None
        done = _DONE.match(_last_line(path))
        seconds = int(done.group(1)) if done else None
        elapsed = None
        if seconds is None:
            try:
                t0 = time.mktime(time.strptime(started, "%Y-%m-%d %H:%M:%S"))
                elapsed = max(0.0, path.stat().st_mtime - t0)
            except (ValueError, OverflowError):
                elapsed = None
        steps.append(StepTime(stage, desc, str(path), started, seconds,
                              cmd[2:] if cmd.startswith("# ") else "", elapsed))
    if not steps:
        raise GraftError(f"no step logs ('# <date> <description>' first line) in {log_dir}")
    steps.sort(key=lambda s: (s.stage is None, s.stage if s.stage is not None else 0, s.started, s.step))
    return steps


def stage_totals(steps: Sequence[StepTime]) -> list[dict]:
    """Per stage (in order): finished seconds, steps, unfinished steps."""
    out: dict = {}
    for s in steps:
        t = out.setdefault(s.stage, {"stage": s.stage, "seconds": 0, "steps": 0, "unfinished": 0})
        t["steps"] += 1
        if s.finished:
            t["seconds"] += s.seconds
        else:
            t["unfinished"] += 1
    for t in out.values():
        t["minutes"] = round(t["seconds"] / 60.0, 2)
    return list(out.values())


def stage_times_json(steps: Sequence[StepTime], log_dir: str | os.PathLike | None = None) -> dict:
    """Machine-readable form of the stage-time table."""
    totals = stage_totals(steps)
    total = sum(t["seconds"] for t in totals)
    return {"log_dir": None if log_dir is None else str(log_dir),
            "steps": [{**asdict(s), "finished": s.finished,
                       "minutes": None if s.seconds is None else round(s.seconds / 60.0, 2)} for s in steps],
            "stages": totals, "total_s": total, "total_min": round(total / 60.0, 2),
            "unfinished": sum(t["unfinished"] for t in totals)}


def _stage_label(stage: int | None) -> str:
    return "-" if stage is None else str(stage)


def stage_times_markdown(steps: Sequence[StepTime], heading: str = "## Wall time per stage",
                         log_dir: str | os.PathLike | None = None) -> str:
    """A markdown table: every step, a total per stage, the grand total; unfinished steps marked."""
    totals = stage_totals(steps)
    total = sum(t["seconds"] for t in totals)
    unfinished = sum(t["unfinished"] for t in totals)
    where = f" in `{log_dir}`" if log_dir is not None else ""
    out = [heading, "",
           f"From the step logs{where} (each step's last run; utils/stage.sh writes `# done in N s` when a step "
           f"finishes). Totals add the finished steps' wall times (the steps of a recipe run one after "
           f"another); a step marked *not finished* was running, failed or was killed, and is not counted."
           + (f" {unfinished} step(s) not finished." if unfinished else ""), "",
           "| stage | step | started | seconds | minutes |", "|---:|---|---|---:|---:|"]
    by_stage: dict = {}
    for s in steps:
        by_stage.setdefault(s.stage, []).append(s)
    for t in totals:
        for s in by_stage[t["stage"]]:
            if s.finished:
                secs, mins = str(s.seconds), f"{s.seconds / 60.0:.1f}"
            else:
                so_far = "" if s.elapsed_s is None else f", ≥ {s.elapsed_s:.0f} s by its last write"
                secs, mins = f"*not finished*{so_far}", "-"
            out.append(f"| {_stage_label(s.stage)} | {s.step} | {s.started} | {secs} | {mins} |")
        note = f" (+{t['unfinished']} not finished)" if t["unfinished"] else ""
        out.append(f"| **{_stage_label(t['stage'])}** | **stage {_stage_label(t['stage'])} total**{note} | | "
                   f"**{t['seconds']}** | **{t['seconds'] / 60.0:.1f}** |")
    note = f" (+{unfinished} not finished)" if unfinished else ""
    out += [f"| | **total**{note} | | **{total}** | **{total / 60.0:.1f}** |", ""]
    return "\n".join(out)


def plot_stage_times(steps: Sequence[StepTime], path: str | os.PathLike, title: str = "Wall time per stage") -> bool:
    """PNG: one horizontal bar per stage, its steps stacked (finished steps; an unfinished step's
    time so far hatched); False if there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = stage_totals(steps)
    if not any(s.finished or s.elapsed_s for s in steps):
        return False
    fig, ax = plt.subplots(figsize=(7.0, 0.5 * len(totals) + 1.6), dpi=100)
    labels = []
    for y, t in enumerate(totals):
        left = so_far = 0.0
        for i, s in enumerate(x for x in steps if x.stage == t["stage"]):
            mins = (s.seconds if s.finished else (s.elapsed_s or 0.0)) / 60.0
            if not s.finished:
                so_far += mins
            if mins <= 0:
                continue
            ax.barh(y, mins, left=left, color=f"C{y % 10}", alpha=0.55 + 0.45 * (i % 2), edgecolor="white",
                    hatch=None if s.finished else "//")
            left += mins
        note = f" + {so_far:.1f} not finished (hatched)" if t["unfinished"] else ""
        ax.text(left, y, f" {t['seconds'] / 60.0:.1f} min{note}", va="center", fontsize=8)
        labels.append(f"stage {_stage_label(t['stage'])}")
    ax.set_yticks(range(len(totals)), labels)
    ax.invert_yaxis()
    total = sum(t["seconds"] for t in totals)
    ax.set_xlabel("wall time (minutes); one segment per step")
    ax.set_title(f"{title}: {total / 60.0:.1f} min in all")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.15)
    save_figure(fig, path)
    return True
