"""RESULTS.md's section on the from-scratch model trained until converged (graft.score.converged,
steps/report.py), from hand-made histories: the sentences when scratch reaches the transfer's
dev WER and when it never does within the cap, the table, the plot, and the whole report.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_converged_report.py -q
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from graft.score.converged import at_budget, converged_markdown, findings, first_reaching
from graft.score.report import Experiment

ROOT = Path(__file__).resolve().parents[1]

# 15 minutes per epoch; the transfer's budget is 2 epochs (30 min)
REACHES = [[1, 10, 15.0, 99.0], [2, 20, 30.0, 95.0], [3, 30, 45.0, 70.0], [4, 40, 60.0, 58.0], [5, 50, 75.0, 61.0]]
NEVER = [[1, 10, 15.0, 99.0], [2, 20, 30.0, 95.0], [3, 30, 45.0, 80.0], [4, 40, 60.0, 82.0], [5, 50, 75.0, 81.0]]


def test_sentence_when_scratch_reaches_the_transfer():
    assert first_reaching(REACHES, 60.0)[0] == 4 and at_budget(REACHES, 30.0)[0] == 2
    equal, reach = findings(REACHES, transfer_wer=60.0, budget=30.0, cap_minutes=240.0, done=True, stopped=True)
    assert equal == ("At equal compute (30 min of training audio each), the transfer's greedy dev WER is 60.00 % "
                     "against scratch's 95.00 % (epoch 2 of this run): transfer is 35.00 points lower.")
    assert reach == ("Scratch reached the transfer's dev WER (60.00 %) after 60 min of training audio (epoch 4, "
                     "58.00 %): 2.0 x the transfer's budget.")


def test_sentence_when_scratch_never_reaches_it():
    _, stopped = findings(NEVER, transfer_wer=60.0, budget=30.0, cap_minutes=240.0, done=True, stopped=True)
    assert stopped == ("Scratch never reached the transfer's dev WER (60.00 %) within the cap of 8.0 x the "
                       "transfer's budget: its dev WER stopped improving at epoch 3 (80.00 % after 45 min, 1.5 x).")
    _, capped = findings(NEVER[:3], transfer_wer=60.0, budget=30.0, cap_minutes=45.0, done=True, stopped=False)
    assert capped.startswith("Scratch never reached the transfer's dev WER (60.00 %) within the cap of 1.5 x")
    assert "its best was 80.00 % after 45 min (1.5 x)" in capped
    _, running = findings(NEVER[:2], transfer_wer=60.0, budget=30.0, cap_minutes=240.0, done=False, stopped=False)
    assert running.endswith("(Training is not finished: 2 epochs so far.)")


def make_results(tmp_path: Path, history: list, transfer_dev: float = 60.0) -> list[Experiment]:
    """Decode dirs of a transfer and a converged scratch model at 15 minutes, as stages 5-7 leave them."""
    def model(name: str, dev: float) -> Path:
        root = tmp_path / "exp" / name / "decode_epoch2_avg2"
        (root / "greedy").mkdir(parents=True)
        sel = {"chosen_on_dev": {"lm_weight": 0.0, "word_ins_penalty": 0.0}, "dev": {"wer": dev},
               "test": {"wer": dev + 1, "cer": dev / 2}}
        (root / "greedy/selection.json").write_text(json.dumps(sel))
        return root

    transfer = model("cs_transfer_encoder_decoder_15m", transfer_dev)
    (transfer.parent / "params.json").write_text(json.dumps({"train_conf": {"num_epochs": 2},
                                                             "train_cuts": {"hours": 0.25}}))
    scratch = model("cs_scratch_converged_15m", 80.0)
    summary = {"patience": 2, "max_epochs": 16, "history": history, "best": {"epoch": 3}, "done": True,
               "stopped_early": True}
    (scratch.parent / "dev_wer.json").write_text(json.dumps(summary))
    return [Experiment("cs_transfer_encoder_decoder_15m", "transfer", 15.0, transfer),
            Experiment("cs_scratch_converged_15m", "scratch_converged", 15.0, scratch)]


def test_section_table_and_plot(tmp_path):
    exps = make_results(tmp_path, NEVER)
    out = tmp_path / "RESULTS.md"
    text = converged_markdown(exps, out)
    assert text.startswith("## From scratch until converged") and "### cs_scratch_converged_15m" in text
    assert "within the cap of 8.0 x the transfer's budget" in text                # 16 epochs x 15 min / 30 min
    assert "| 3 | 30 | 45.0 | 1.50 | **80.00** |" in text
    assert "transfer is 35.00 points lower" in text
    png = tmp_path / "RESULTS_cs_scratch_converged_15m_dev_wer.png"
    assert png.stat().st_size > 1000 and f"]({png.name})" in text
    assert converged_markdown(exps[:1], out) == ""
    # without a transfer at that size: said so, the table is still there
    alone = converged_markdown(exps[1:], out)
    assert "No transfer model at 15 min scored with greedy search" in alone and "| 5 | 50 |" in alone


def test_report_step_writes_the_section(tmp_path):
    exps = make_results(tmp_path, REACHES)
    out = tmp_path / "RESULTS.md"
    args = [a for e in exps for a in ("--experiment", f"{e.label}|{e.group}|{e.minutes:g}|{e.decode_root}")]
    p = subprocess.run([sys.executable, str(ROOT / "steps/report.py"), "--out", str(out), "--methods", "greedy",
                        "--bootstrap", "0", *args], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "### scratch_converged" in text                                         # its row in the tables
    assert "Scratch reached the transfer's dev WER (60.00 %) after 60 min of training audio" in text
