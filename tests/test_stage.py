"""utils/stage.sh: stage ranges, skipping complete outputs, --force, logs, failures."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=100
force=false
log_dir=exp/log
. {root}/utils/parse_options.sh
. {root}/utils/stage.sh
if stage_in 1; then
  step "stage1_make" "out/a.txt" bash -c 'echo ran >> count.txt; mkdir -p out; echo hello > out/a.txt'
fi
if stage_in 2; then
  step "stage2_fail" "out/b.txt" bash -c 'echo boom; exit 3'
fi
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT.format(root=ROOT))
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_runs_logs_then_skips_complete_outputs(tmp_path):
    r = run(tmp_path, "--stop-stage", "1")
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "exp/log/stage1_make.log").read_text()
    assert "echo hello" in log and "# done in" in log
    r = run(tmp_path, "--stop-stage", "1")
    assert "skip 'stage1_make'" in r.stderr
    assert (tmp_path / "count.txt").read_text().count("ran") == 1


def test_force_reruns(tmp_path):
    run(tmp_path, "--stop-stage", "1")
    run(tmp_path, "--stop-stage", "1", "--force", "true")
    assert (tmp_path / "count.txt").read_text().count("ran") == 2


def test_stage_range_selects_stages(tmp_path):
    r = run(tmp_path, "--stage", "2", "--stop-stage", "2")
    assert not (tmp_path / "count.txt").exists()
    assert r.returncode == 1  # stage 2 fails


def test_failure_stops_with_log_path(tmp_path):
    r = run(tmp_path)
    assert r.returncode == 1
    assert "FAILED 'stage2_fail'" in r.stderr and "stage2_fail.log" in r.stderr
    assert "boom" in (tmp_path / "exp/log/stage2_fail.log").read_text()
