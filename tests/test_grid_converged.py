"""The grid's scratch_converged model (steps/grid.py) and how the recipe stages treat it
(utils/recipe_stages.sh): its grid line (epochs from the budget factor, --early-stop-patience in
its train options), the --scratch-converged option, the yaml checks, and the epoch stages 6-8
decode (the best dev-WER epoch).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_grid_converged.py -q
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import load_manifest_lazy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "steps"))

import grid as grid_step  # noqa: E402  steps/grid.py

from graft.utils.errors import GraftError  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
       "GRAFT_ROOT": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def fbank(tmp_path, tiny) -> tuple[Path, float]:
    """A stage-2 dir with one train subset (the tiny corpus's train cuts) and its minutes."""
    d = tmp_path / "fbank"
    d.mkdir()
    shutil.copy(tiny.cuts_train, d / "cuts_train_0.5m.jsonl.gz")
    return d, sum(c.duration for c in load_manifest_lazy(tiny.cuts_train)) / 60


def grid_yaml(tmp_path: Path, converged: str) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(f"budget_minutes: 3\nsizes: [0.5m]\npresets: [encoder_decoder]\nscratch: true\n"
                    f"ablation: {{size: 0.5m, presets: []}}\nmethods: greedy ctc-hlg\nablation_methods: greedy\n"
                    f"train_opts: \"--ctc-weight 0.2\"\n{converged}")
    return path


def run_grid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "steps/grid.py"), *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=120)


def test_converged_line_has_its_epochs_and_patience(tmp_path, fbank):
    fb, minutes = fbank
    path = grid_yaml(tmp_path, "scratch_converged: {size: 0.5m, max_budget_factor: 8, patience: 2}\n")
    models = grid_step.expand(grid_step.load_grid(str(path)), fb)
    assert [m.name for m in models] == ["scratch_0.5m", "transfer_encoder_decoder_0.5m", "scratch_converged_0.5m"]
    scratch, conv = models[0], models[-1]
    assert scratch.epochs == math.ceil(3 / minutes)
    assert conv.epochs == math.ceil(8 * 3 / minutes) and conv.group == "scratch_converged"
    assert conv.train_opts == "--ctc-weight 0.2 --early-stop-patience 2" and conv.preset == "-"
    assert conv.methods == ["greedy", "ctc-hlg"] and conv.split == "train_0.5m"   # the grid's methods, as the transfer
    # absent or null: no such model; the line format of the others is unchanged
    for text in ("", "scratch_converged: null\n", "scratch_converged: {size: null, max_budget_factor: 8, patience: 2}\n"):
        names = [m.name for m in grid_step.expand(grid_step.load_grid(str(grid_yaml(tmp_path, text))), fb)]
        assert names == ["scratch_0.5m", "transfer_encoder_decoder_0.5m"], text


def test_the_option_turns_it_on_and_off(tmp_path, fbank):
    fb, minutes = fbank
    off = grid_yaml(tmp_path, "scratch_converged: {size: null, max_budget_factor: 4, patience: 3}\n")
    p = run_grid("--grid", off, "--fbank-dir", fb, "--scratch-converged", "0.5m")
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip().splitlines()[-1].split("\t")
    assert line[:2] == ["scratch_converged_0.5m", "scratch_converged"] and int(line[4]) == math.ceil(4 * 3 / minutes)
    assert line[7].endswith("--early-stop-patience 3")
    p = run_grid("--grid", off, "--fbank-dir", fb, "--scratch-converged", "0.5m:2:1")
    assert p.stdout.strip().splitlines()[-1].split("\t")[4] == str(math.ceil(2 * 3 / minutes))
    p = run_grid("--grid", off, "--fbank-dir", fb, "--scratch-converged", "none")
    assert "scratch_converged" not in p.stdout
    null = grid_yaml(tmp_path, "scratch_converged: null\n")
    p = run_grid("--grid", null, "--fbank-dir", fb, "--scratch-converged", "0.5m")
    assert p.returncode == 1 and "give them, e.g. --scratch-converged 0.5m:8:2" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("value", ["{size: 15m}", "{size: 15m, max_budget_factor: 0.5, patience: 2}",
                                   "{size: 15m, max_budget_factor: 8, patience: 0}", "15m",
                                   "{size: 15m, max_budget_factor: x, patience: 2}"])
def test_bad_values_name_the_file(tmp_path, value):
    with pytest.raises(GraftError, match="g.yaml: scratch_converged"):
        grid_step.load_grid(str(grid_yaml(tmp_path, f"scratch_converged: {value}\n")))


def test_repository_grids():
    assert grid_step.load_grid("demo")["scratch_converged"]["size"] is None          # make demo stays short
    assert grid_step.load_grid("demo_full")["scratch_converged"] == {"size": "15m", "max_budget_factor": 8.0,
                                                                      "patience": 2}


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `script` with utils/recipe_stages.sh sourced (`step` stubbed: it prints its outputs)."""
    prelude = (f'log() {{ echo "$*" >&2; }}\nstep() {{ echo "STEP $1 OUT $2"; }}\n'
               f'. {ROOT}/utils/recipe_stages.sh\n')
    return subprocess.run(["bash", "-c", prelude + script], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=120)


def recipe_dir(tmp_path: Path, fb: Path, epochs: tuple[int, ...] = (3,)) -> Path:
    """A recipe folder for the grid stages: data/fbank/cs (the fixture's features) and a source
    model exp/en with empty epoch-<e>.pt files and a model.yaml; returns exp/en."""
    (tmp_path / "data/fbank").mkdir(parents=True)
    (tmp_path / "data/fbank/cs").symlink_to(fb)
    src = tmp_path / "exp/en"
    src.mkdir(parents=True)
    for e in epochs:
        (src / f"epoch-{e}.pt").write_bytes(b"")
    (src / "model.yaml").write_text("name: tiny\n")
    return src


def test_stages_train_until_done_and_decode_the_best_epoch(tmp_path, fbank):
    fb, _ = fbank
    recipe_dir(tmp_path, fb)
    grid = grid_yaml(tmp_path, "scratch_converged: {size: 0.5m, max_budget_factor: 8, patience: 2}\n")
    p = shell(f"grid_stage exp/en cs 40 cs {grid} '' 2 ''", tmp_path)
    assert p.returncode == 0, p.stderr
    conv = [line for line in p.stdout.splitlines() if "scratch_converged" in line]
    assert conv == ["STEP stage4_train_cs_scratch_converged_0.5m OUT exp/cs_scratch_converged_0.5m/dev_wer.json"]
    p = shell(f"recipe_models exp/en en greedy exp/en cs {grid} cs", tmp_path)
    rows = [r.split("\t") for r in p.stdout.strip().splitlines()]
    assert rows[-1][:3] == ["exp/cs_scratch_converged_0.5m", "cs", "scratch_converged"]

    exp = tmp_path / "exp/cs_scratch_converged_0.5m"
    exp.mkdir()
    for e in range(1, 6):
        (exp / f"epoch-{e}.pt").write_bytes(b"")
    assert shell("decode_root exp/cs_scratch_converged_0.5m 2", tmp_path).stdout.strip().endswith("decode_epoch5_avg2")
    (exp / "dev_wer.json").write_text(json.dumps({"best": {"epoch": 3}, "done": True}))
    p = shell("decode_root exp/cs_scratch_converged_0.5m 2; decode_stage exp/cs_scratch_converged_0.5m cs 40 3 greedy 4",
              tmp_path)
    out = p.stdout.strip().splitlines()
    assert out[0] == "exp/cs_scratch_converged_0.5m/decode_epoch3_avg2"
    assert out[1] == "STEP stage6_decode_cs_scratch_converged_0.5m OUT exp/cs_scratch_converged_0.5m/decode_epoch3_avg3/rtf.json"


def test_grid_stage_transfers_from_the_chosen_source_epoch(tmp_path, fbank):
    """SOURCE_EPOCH (the recipes' --source-epoch): empty = the source's last epoch; a number =
    that epoch (the average ends there); an epoch the source lacks = a one-line error."""
    fb, _ = fbank
    recipe_dir(tmp_path, fb, epochs=(1, 2, 3))
    grid = grid_yaml(tmp_path, "")
    show = 'step() { echo "STEP $*"; }\n'                                 # the whole command

    def transfer_cmd(src_epoch: str) -> str:
        p = shell(f"{show}grid_stage exp/en cs 40 cs {grid} '' 2 '{src_epoch}'", tmp_path)
        assert p.returncode == 0, p.stderr
        return next(line for line in p.stdout.splitlines() if "stage5_transfer_" in line)

    assert transfer_cmd("").endswith("--source-epoch 3 --source-avg 2")
    assert transfer_cmd("2").endswith("--source-epoch 2 --source-avg 2")
    assert transfer_cmd("1").endswith("--source-epoch 1 --source-avg 1")   # no epoch 0 to average
    p = shell(f"{show}grid_stage exp/en cs 40 cs {grid} '' 2 7", tmp_path)
    assert p.returncode == 1 and "STEP" not in p.stdout
    assert p.stderr.strip().splitlines()[-1] == (
        "ERROR: --source-epoch 7: exp/en/epoch-7.pt does not exist (its last epoch is 3): "
        "choose an epoch it has, or train it that far")
