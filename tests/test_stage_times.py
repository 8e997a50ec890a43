"""steps/stage_times.py and report.py --stage-times: wall time per stage from the step logs.

Usage:
    .venv/bin/python -m pytest -q tests/test_stage_times.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graft.score.report import parse_stage_of, read_step_logs, stage_times_json, stage_times_markdown
from graft.utils.errors import GraftError

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def write_log(log_dir: Path, name: str, started: str, desc: str, seconds: int | None, body: str = "working\n") -> Path:
    """A step log as utils/stage.sh writes it (`# done in N s` only when the step finished)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}.log"
    text = f"# {started} {desc}\n# python steps/{name}.py --opt 1\n{body}"
    if seconds is not None:
        text += f"# done in {seconds} s\n"
    path.write_text(text)
    return path


def make_logs(log_dir: Path) -> None:
    write_log(log_dir, "stage0_demo_download", "2026-12-01 10:00:00", "stage0_demo_download", 150)
    write_log(log_dir, "stage2_fbank_en", "2026-12-01 10:03:00", "stage2_fbank_en", 60)
    write_log(log_dir, "stage2_fbank_cs", "2026-12-01 10:04:00", "stage2_fbank_cs", 30)
    write_log(log_dir, "stage4_train_en_small", "2026-12-01 10:05:00", "stage4_train_en_small", 900,
              body="epoch 1\n# not the end\nepoch 2\n")
    write_log(log_dir, "stage4_train_cs_scratch_15m", "2026-12-01 10:20:00", "stage4_train_cs_scratch_15m", 200)
    write_log(log_dir, "stage5_transfer_cs_transfer_15m", "2026-12-01 10:24:00", "stage5_transfer_cs_transfer_15m", 190)
    # killed (or still running): no "# done in" line
    running = write_log(log_dir, "stage6_decode_cs_transfer_15m", "2026-12-01 10:30:00",
                        "stage6_decode_cs_transfer_15m", None, body="decoding...\n")
    os.utime(running, (running.stat().st_atime, _local("2026-12-01 10:31:40")))
    (log_dir / "notes.log").write_text("some other log\n")  # not a step log: skipped


def _local(stamp: str) -> float:
    import time

    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))


def test_read_step_logs_and_totals(tmp_path: Path) -> None:
    make_logs(tmp_path / "log")
    steps = read_step_logs(tmp_path / "log")
    assert [s.step for s in steps] == ["stage0_demo_download", "stage2_fbank_en", "stage2_fbank_cs",
                                       "stage4_train_en_small", "stage4_train_cs_scratch_15m",
                                       "stage5_transfer_cs_transfer_15m", "stage6_decode_cs_transfer_15m"]
    assert [s.stage for s in steps] == [0, 2, 2, 4, 4, 5, 6]
    assert steps[3].seconds == 900 and steps[3].command == "python steps/stage4_train_en_small.py --opt 1"
    last = steps[-1]
    assert not last.finished and last.seconds is None and last.elapsed_s == pytest.approx(100.0)
    info = stage_times_json(steps, tmp_path / "log")
    assert info["total_s"] == 150 + 60 + 30 + 900 + 200 + 190 and info["unfinished"] == 1
    assert [(t["stage"], t["seconds"], t["steps"], t["unfinished"]) for t in info["stages"]] == [
        (0, 150, 1, 0), (2, 90, 2, 0), (4, 1100, 2, 0), (5, 190, 1, 0), (6, 0, 1, 1)]
    text = stage_times_markdown(steps)
    assert "| 2 | stage2_fbank_en | 2026-12-01 10:03:00 | 60 | 1.0 |" in text
    assert "| **2** | **stage 2 total** | | **90** | **1.5** |" in text
    assert "| 6 | stage6_decode_cs_transfer_15m | 2026-12-01 10:30:00 | *not finished*, ≥ 100 s by its last write | - |" in text
    assert "| **6** | **stage 6 total** (+1 not finished) | | **0** | **0.0** |" in text
    assert "| | **total** (+1 not finished) | | **1530** | **25.5** |" in text
    # the Czech scratch baselines train in stage 5 under a stage-4 name: --stage-of moves them
    moved = read_step_logs(tmp_path / "log", parse_stage_of(["stage4_train_cs_*=5"]))
    assert {s.step: s.stage for s in moved}["stage4_train_cs_scratch_15m"] == 5
    assert {t["stage"]: t["seconds"] for t in stage_times_json(moved)["stages"]}[5] == 390
    with pytest.raises(GraftError, match="--stage-of"):
        parse_stage_of(["stage4_train"])
    with pytest.raises(GraftError, match="no step logs"):
        read_step_logs(_empty(tmp_path))
    with pytest.raises(GraftError, match="no log dir"):
        read_step_logs(tmp_path / "missing")


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "x.log").write_text("")
    return d


def test_stage_times_step_writes_md_json_png(tmp_path: Path) -> None:
    make_logs(tmp_path / "exp" / "log")
    out = tmp_path / "bench" / "results" / "demo_stage_times.md"
    ok = subprocess.run([PYTHON, str(REPO / "steps" / "stage_times.py"), "--log-dir", str(tmp_path / "exp" / "log"),
                         "--out", str(out), "--title", "Demo"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    text = out.read_text()
    assert text.startswith("# Demo\n") and "![wall time per stage](demo_stage_times.png)" in text
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["title"] == "Demo" and info["total_s"] == 1530 and info["total_min"] == 25.5
    assert info["steps"][0]["stage"] == 0 and info["steps"][-1]["finished"] is False
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([PYTHON, str(REPO / "steps" / "stage_times.py"), "--log-dir", str(tmp_path / "nope"),
                          "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 1 and "no log dir" in bad.stderr and "Traceback" not in bad.stderr


def test_logs_of_a_real_stage_sh_run(tmp_path: Path) -> None:
    """The format contract: logs written by utils/stage.sh's `step` itself."""
    script = tmp_path / "run.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")"
stage=1
stop_stage=2
force=false
log_dir=exp/log
stages="1 2"
. {REPO}/utils/parse_options.sh
. {REPO}/utils/stage.sh
if stage_in 1; then step "stage1_make" "out/a.txt" bash -c "mkdir -p out; echo a > out/a.txt"; fi
if stage_in 2; then step "stage2_fail" "out/b.txt" bash -c 'echo boom; exit 3'; fi
""")
    env = {**os.environ, "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode != 0 and "stage2_fail" in run.stderr
    steps = read_step_logs(tmp_path / "exp" / "log")
    assert [(s.stage, s.step, s.finished) for s in steps] == [(1, "stage1_make", True), (2, "stage2_fail", False)]
    assert steps[0].seconds is not None and steps[0].seconds >= 0 and "mkdir -p out" in steps[0].command


def test_report_appends_the_stage_times(tmp_path: Path) -> None:
    make_logs(tmp_path / "exp" / "log")
    out = tmp_path / "RESULTS.md"
    ok = subprocess.run([PYTHON, str(REPO / "steps" / "report.py"), "--out", str(out), "--stage-times",
                         str(tmp_path / "exp" / "log"), "--stage-of", "stage4_train_cs_*=5"],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    text = out.read_text()
    assert "## Wall time per stage" in text and "| **5** | **stage 5 total** | | **390** | **6.5** |" in text
    assert "![wall time per stage](RESULTS_stage_times.png)" in text
    assert (tmp_path / "RESULTS_stage_times.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
