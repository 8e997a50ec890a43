"""utils/parse_options.sh behaves like Kaldi's: --name value, --name=value, --help, errors."""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """#!/usr/bin/env bash
stage=0            # first stage
stop_stage=100     # last stage
use_gpu=false      # a boolean
lm_weights="0.1 0.2"
. {root}/utils/parse_options.sh
echo "stage=$stage stop_stage=$stop_stage use_gpu=$use_gpu lm_weights=$lm_weights rest=$*"
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT.format(root=ROOT))
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_sets_variables_with_dashes_and_equals(tmp_path):
    r = run(tmp_path, "--stage", "2", "--stop-stage=5", "--use-gpu", "true", "--lm-weights", "0.5 1.0", "pos1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=2 stop_stage=5 use_gpu=true lm_weights=0.5 1.0 rest=pos1"


def test_defaults_kept(tmp_path):
    r = run(tmp_path)
    assert r.stdout.strip() == "stage=0 stop_stage=100 use_gpu=false lm_weights=0.1 0.2 rest="


def test_unknown_option_is_an_error_naming_it(tmp_path):
    r = run(tmp_path, "--stgae", "3")
    assert r.returncode == 1
    assert "unknown option --stgae" in r.stderr
    assert r.stdout == ""


def test_boolean_only_takes_true_or_false(tmp_path):
    r = run(tmp_path, "--use-gpu", "yes")
    assert r.returncode == 1
    assert "true or false" in r.stderr


def test_missing_value_is_an_error(tmp_path):
    r = run(tmp_path, "--stage")
    assert r.returncode == 1
    assert "needs a value" in r.stderr


def test_help_lists_variables_defaults_and_comments(tmp_path):
    r = run(tmp_path, "--help")
    assert r.returncode == 0
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip().startswith("--")}
    assert "--stop-stage" in lines and "100" in lines["--stop-stage"] and "last stage" in lines["--stop-stage"]
    assert "--use-gpu" in lines and "false" in lines["--use-gpu"]
    assert "--lm-weights" in lines


def test_config_file(tmp_path):
    conf = tmp_path / "my.conf"
    conf.write_text("stage=7\n")
    r = run(tmp_path, "--config", str(conf), "--stop-stage", "9")
    assert r.stdout.startswith("stage=7 stop_stage=9")
