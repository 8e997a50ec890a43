"""Two CPU processes under torchrun (gloo DDP) train a few steps and hold identical weights.

Usage:
    .venv/bin/python -m pytest tests/test_train_ddp.py -q
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from tiny_asr import tiny_asr_session

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_asr_session(tmp_path_factory)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("extra", [(), ("--adversarial", "speaker", "--adversarial-ramp-steps", "2")],
                         ids=["plain", "adversarial"])
def test_two_gloo_ranks_stay_identical(tmp_path, tiny, extra):
    """Also with the domain adversary, whose gradients the loop averages itself (its fingerprint
    joins the model's)."""
    exp = tmp_path / "exp"
    cmd = [str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(ROOT / "steps" / "train.py"), "--cuts-train", str(tiny.cuts_train), "--cuts-dev", str(tiny.cuts_dev),
           "--lang-dir", str(tiny.lang_dir), "--exp-dir", str(exp), "--model-conf", "tiny", "--num-epochs", "2",
           "--max-duration", "8", "--warm-steps", "5", "--save-every-n", "3", "--log-interval", "2", *extra]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    # Every rank hashed its own parameters at each checkpoint (rank 0 gathered them).
    check = json.loads((exp / "ddp_check.json").read_text())
    assert len(check["fingerprints"]) == 2 and len(set(check["fingerprints"])) == 1
    assert ("+" in check["fingerprints"][0]) == bool(extra)
    # The ranks shared the data: each saw about half of it.
    n = len(CutSet.from_file(tiny.cuts_train)) * 2
    assert sum(check["cuts_seen"]) >= n and max(check["cuts_seen"]) < n
    ckpt = torch.load(exp / "epoch-2.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert (exp / "loss.png").exists()
