"""utils/stage.sh: stage ranges (and their errors), skipping steps whose inputs and options are
unchanged, re-running those that changed (clearing partial outputs), --force, logs, failures."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """#!/usr/bin/env bash
# Stages:
#   1  make out/a.txt from in.txt
#   2  a step that fails
set -euo pipefail
cd "$(dirname "$0")"
stage=1
stop_stage=2
force=false
greeting=hello
log_dir=exp/log
stages="1 2"
. {root}/utils/parse_options.sh
. {root}/utils/stage.sh
if stage_in 1; then
  step "stage1_make" "out/a.txt" --inputs "in.txt" --clear "out/partial" \\
    bash -c "echo ran >> count.txt; mkdir -p out; cat in.txt > out/a.txt; echo $greeting >> out/a.txt"
fi
if stage_in 2; then
  step "stage2_fail" "out/b.txt" bash -c 'echo boom; exit 3'
fi
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT.format(root=ROOT))
    if not (tmp_path / "in.txt").exists():
        (tmp_path / "in.txt").write_text("one\n")
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def count(tmp_path: Path) -> int:
    return (tmp_path / "count.txt").read_text().count("ran")


def test_runs_logs_then_skips_unchanged(tmp_path):
    r = run(tmp_path, "--stop-stage", "1")
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "exp/log/stage1_make.log").read_text()
    assert "cat in.txt" in log and "# done in" in log
    assert (tmp_path / "out/.stage1_make.stamp").is_file()
    r = run(tmp_path, "--stop-stage", "1")
    assert "skip 'stage1_make': done, inputs and options unchanged" in r.stderr
    assert count(tmp_path) == 1


def test_changed_input_or_option_reruns_and_clears(tmp_path):
    run(tmp_path, "--stop-stage", "1")
    (tmp_path / "out/partial").mkdir()
    (tmp_path / "in.txt").write_text("two\n")
    r = run(tmp_path, "--stop-stage", "1")
    assert "'stage1_make' runs again: in.txt changed" in r.stderr
    assert not (tmp_path / "out/partial").exists()
    assert (tmp_path / "out/a.txt").read_text() == "two\nhello\n" and count(tmp_path) == 2
    r = run(tmp_path, "--stop-stage", "1", "--greeting", "hi")
    assert "'stage1_make' runs again: options" in r.stderr and "hi" in r.stderr
    assert (tmp_path / "out/a.txt").read_text() == "two\nhi\n" and count(tmp_path) == 3


def test_unfinished_run_resumes_and_deleted_output_reruns(tmp_path):
    run(tmp_path, "--stop-stage", "1")
    (tmp_path / "out/a.txt").unlink()
    r = run(tmp_path, "--stop-stage", "1")
    assert "run 'stage1_make'" in r.stderr and count(tmp_path) == 2
    stamp = tmp_path / "out/.stage1_make.stamp"
    stamp.write_text(stamp.read_text().replace('"state": "done"', '"state": "running"'))
    r = run(tmp_path, "--stop-stage", "1")
    assert "resumes: an earlier run with the same inputs did not finish" in r.stderr and count(tmp_path) == 3


def test_force_reruns(tmp_path):
    run(tmp_path, "--stop-stage", "1")
    run(tmp_path, "--stop-stage", "1", "--force", "true")
    assert count(tmp_path) == 2


def test_stage_range_selects_stages(tmp_path):
    r = run(tmp_path, "--stage", "2", "--stop-stage", "2")
    assert not (tmp_path / "count.txt").exists()
    assert r.returncode == 1  # stage 2 fails


def test_stage_outside_or_empty_range_is_an_error(tmp_path):
    for args, message in ((["--stage", "9"], "names one it does not have"),
                          (["--stage", "2", "--stop-stage", "1"], "--stage 2 is after --stop-stage 1"),
                          (["--stage", "x"], "take stage numbers, got 'x'")):
        r = run(tmp_path, *args)
        assert r.returncode == 1 and message in r.stderr, r.stderr
        assert "1  make out/a.txt from in.txt" in r.stderr  # the stages are listed
    assert not (tmp_path / "count.txt").exists()


def test_failure_stops_with_log_path(tmp_path):
    r = run(tmp_path)
    assert r.returncode == 1
    assert "FAILED 'stage2_fail'" in r.stderr and "stage2_fail.log" in r.stderr
    assert "boom" in (tmp_path / "exp/log/stage2_fail.log").read_text()
