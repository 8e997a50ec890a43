"""Kill steps/train.py with SIGKILL after a checkpoint appears, start it again, and check it
resumes from that checkpoint and ends exactly where an uninterrupted run ends.

Usage:
    .venv/bin/python -m pytest tests/test_train_resume.py -q
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tiny_asr import tiny_asr_session, two_language_cuts

ROOT = Path(__file__).resolve().parents[1]
NUM_EPOCHS = 3


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_asr_session(tmp_path_factory)


def command(tiny, exp: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(ROOT / "steps" / "train.py"),
            "--cuts-train", str(tiny.cuts_train), "--cuts-dev", str(tiny.cuts_dev),
            "--lang-dir", str(tiny.lang_dir), "--exp-dir", str(exp), "--model-conf", "tiny",
            "--num-epochs", str(NUM_EPOCHS), "--max-duration", "8", "--warm-steps", "10",
            "--save-every-n", "4", "--keep-last-k", "2", "--log-interval", "5", "--seed", "3", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("extra", [(), ("--freq-warp", "0.1"), ("--adversarial", "speaker"),
                                   ("--meta-block", "3", "--cuts-train", "TWO_LANGUAGES")],
                         ids=["plain", "freq-warp", "adversarial", "meta"])
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, tiny, extra):
    """Also with frequency warping (its factors come from the checkpointed python RNG), with the
    domain adversary (its weights and optimizer state are in the checkpoint) and with Reptile's
    language blocks (checkpoint-8 falls inside a block of 3: its anchor is in the checkpoint)."""
    if "TWO_LANGUAGES" in extra:
        two = str(two_language_cuts(tiny, tmp_path / "data"))
        extra = tuple(two if x == "TWO_LANGUAGES" else x for x in extra)
    reference = tmp_path / "uninterrupted"
    ref = subprocess.run(command(tiny, reference, extra), env=ENV, capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]

    exp = tmp_path / "killed"
    log1 = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(command(tiny, exp, extra), env=ENV, stdout=log1, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not (exp / "checkpoint-8.pt").exists():
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        assert time.time() < deadline, "no checkpoint-8.pt after 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log1.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (exp / f"epoch-{NUM_EPOCHS}.pt").exists(), "the run ended before it was killed"
    # The newest checkpoint on disk, by its step (epoch-N.pt store theirs inside).
    saved = {p.name: int(p.stem.split("-")[1]) for p in exp.glob("checkpoint-*.pt")}
    for p in exp.glob("epoch-*.pt"):
        saved[p.name] = torch.load(p, weights_only=False, mmap=True)["progress"]["step"]
    last = max(saved.values())
    assert last >= 8

    again = subprocess.run(command(tiny, exp, extra), env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    m = re.search(r"resuming from (\S+): step (\d+), epoch (\d+)", again.stderr)
    assert m, again.stderr[-2000:]
    assert int(m.group(2)) == last and saved[Path(m.group(1)).name] == last
    first_logged = int(re.search(r"step (\d+) \(batch", again.stderr).group(1))
    assert last < first_logged <= last + 5                     # no step before the checkpoint redone
    assert (exp / f"epoch-{NUM_EPOCHS}.pt").exists() and (exp / "loss.png").exists()

    # With --num-workers 0 the resumed run repeats the uninterrupted one exactly.
    a = torch.load(reference / f"epoch-{NUM_EPOCHS}.pt", weights_only=False, map_location="cpu")
    b = torch.load(exp / f"epoch-{NUM_EPOCHS}.pt", weights_only=False, map_location="cpu")
    assert a["progress"] == b["progress"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for k, v in a["model_avg"].items():
        assert torch.equal(v, b["model_avg"][k]), k
    assert a["history"]["valid"] == b["history"]["valid"]
