"""The grid's speed_perturb key (steps/grid.py): every model's train options get
--speed-perturb true, and the budget counts the perturbed copies' audio (an epoch is
1 + 1/0.9 + 1/1.1 times the manifest's minutes), so equal budgets stay equal compute; the
--speed-perturb option overrides the yaml; a value that is not a boolean is a clear error; the
--train-opts option adds training options to every model's, after the grid's own.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/test_grid_speed_perturb.py -q
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from test_grid_converged import fbank, grid_yaml, run_grid  # noqa: F401  (fbank: a fixture)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "steps"))

import grid as grid_step  # noqa: E402  steps/grid.py

from graft.utils.errors import GraftError  # noqa: E402

COPIES = 1 + 1 / 0.9 + 1 / 1.1


def test_speed_perturb_in_options_and_budget(tmp_path, fbank):  # noqa: F811
    fb, minutes = fbank
    plain = grid_step.expand(grid_step.load_grid(str(grid_yaml(tmp_path, ""))), fb)
    sp = grid_step.expand(grid_step.load_grid(str(grid_yaml(tmp_path, "speed_perturb: true\n"))), fb)
    assert [m.name for m in sp] == [m.name for m in plain] == ["scratch_0.5m", "transfer_encoder_decoder_0.5m"]
    for a, b in zip(plain, sp):
        assert a.train_opts == "--ctc-weight 0.2" and b.train_opts == "--ctc-weight 0.2 --speed-perturb true"
        assert a.epochs == math.ceil(3 / minutes)
        assert b.epochs == math.ceil(3 / (minutes * COPIES)) and b.epochs < a.epochs
        assert b.minutes == a.minutes          # the size's own minutes, not the copies'


def test_option_overrides_and_bad_value(tmp_path, fbank):  # noqa: F811
    fb, minutes = fbank
    on = grid_yaml(tmp_path, "speed_perturb: true\n")
    p = run_grid("--grid", on, "--fbank-dir", fb, "--speed-perturb", "false")
    assert p.returncode == 0, p.stderr
    for line in p.stdout.strip().splitlines():
        fields = line.split("\t")
        assert "--speed-perturb" not in fields[7] and int(fields[4]) == math.ceil(3 / minutes)
    bad = grid_yaml(tmp_path, "speed_perturb: often\n")
    with pytest.raises(GraftError, match="speed_perturb must be true or false, got 'often'"):
        grid_step.load_grid(str(bad))
    p = run_grid("--grid", bad, "--fbank-dir", fb)
    assert p.returncode != 0 and "speed_perturb must be true or false" in p.stderr and "Traceback" not in p.stderr


def test_other_speed_factors_in_options_and_budget(tmp_path, fbank):  # noqa: F811
    fb, minutes = fbank
    yaml_path = grid_yaml(tmp_path, "speed_perturb: true\nspeed_factors: '0.8 0.9 1.1 1.2'\n")
    models = grid_step.expand(grid_step.load_grid(str(yaml_path)), fb)
    copies = 1 + 1 / 0.8 + 1 / 0.9 + 1 / 1.1 + 1 / 1.2
    for m in models:
        assert m.train_opts == "--ctc-weight 0.2 --speed-perturb true --speed-factors 0.8,0.9,1.1,1.2"
        assert m.epochs == math.ceil(3 / (minutes * copies))
    # the option overrides the yaml; without speed perturbation the factors are not passed
    p = run_grid("--grid", grid_yaml(tmp_path, "speed_perturb: true\n"), "--fbank-dir", fb, "--speed-factors", "0.85 1.15")
    assert p.returncode == 0, p.stderr
    assert all(line.endswith("--speed-perturb true --speed-factors 0.85,1.15") for line in p.stdout.strip().splitlines())
    p = run_grid("--grid", grid_yaml(tmp_path, "speed_factors: '0.8 1.2'\n"), "--fbank-dir", fb)
    assert p.returncode == 0 and "--speed-factors" not in p.stdout
    bad = grid_yaml(tmp_path, "speed_factors: '0.9 1'\n")
    p = run_grid("--grid", bad, "--fbank-dir", fb)
    assert p.returncode != 0 and "speed_factors: --speed-factors: 1 must be in (0.5, 2) and not 1" in p.stderr
    assert "Traceback" not in p.stderr


def test_train_opts_option_adds_to_every_model(tmp_path, fbank):  # noqa: F811
    fb, minutes = fbank
    on = grid_yaml(tmp_path, "speed_perturb: true\n")
    p = run_grid("--grid", on, "--fbank-dir", fb, "--train-opts", " --adversarial speaker --adversarial-ramp-steps 200 ")
    assert p.returncode == 0, p.stderr
    lines = [line.split("\t") for line in p.stdout.strip().splitlines()]
    assert [f[0] for f in lines] == ["scratch_0.5m", "transfer_encoder_decoder_0.5m"]
    for fields in lines:
        assert fields[7] == ("--ctc-weight 0.2 --adversarial speaker --adversarial-ramp-steps 200"
                             " --speed-perturb true")
        assert int(fields[4]) == math.ceil(3 / (minutes * COPIES))   # the budget is the grid's
