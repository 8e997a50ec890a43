"""Kill-anywhere: stage 2 (steps/compute_fbank.py) and stage 4 (steps/train.py) are SIGKILLed,
whole process group, at seeded random moments, started again, and in the end must equal an
uninterrupted run bit for bit (features and chunk files; the final model state_dict, its
running average, progress and loss history). After every kill, every output left on disk must
already equal the uninterrupted run's file of the same name (a kept chunk or checkpoint is a
complete one). Stage 6 (decoding) is left out while steps/decode.py is being reworked.

Usage:
    .venv/bin/python -m pytest tests/test_kill_anywhere.py -q -s     # -s prints the counts
    GRAFT_KILLS=10 .venv/bin/python -m pytest tests/test_kill_anywhere.py -q -s   # kills per stage

Each stage runs chains of up to 3 kills: a fresh output dir; the step is killed at a random
moment (once a random number of its outputs have appeared, plus a random delay), started
again and killed again, ...; a run that ends before its kill ends the chain; then it is run
to the end and compared.
"""
from __future__ import annotations

import gzip
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tiny_asr import tiny_asr_session

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
KILLS = int(os.environ.get("GRAFT_KILLS", "3"))   # per stage
PER_CHAIN = 3
CHAINS = -(-KILLS // PER_CHAIN)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_asr_session(tmp_path_factory)


@dataclass
class Counts:
    """What the kill-anywhere runs did, printed at the end of each test."""

    stage: str
    kills: int = 0                 # SIGKILLs of a running process group
    ended_before_kill: int = 0     # runs that finished before their kill moment
    resumed: int = 0               # runs after a kill that continued from kept work
    restarted: int = 0             # runs after a kill that found nothing kept yet
    checked_after_kill: int = 0    # kills after which every kept output equalled the reference
    identical: int = 0             # chains whose final outputs equal the uninterrupted run
    chains: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"kill-anywhere {self.stage}: {self.kills} kills in {self.chains} chains "
                f"({self.ended_before_kill} runs ended before their kill), {self.resumed} resumed "
                f"from kept work, {self.restarted} restarted with nothing kept yet, "
                f"{self.checked_after_kill}/{self.kills} left only complete outputs, "
                f"{self.identical}/{self.chains} identical to the uninterrupted run")


def start(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    try:
        return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        out.close()


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group and wait until none of it is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.time() + 20
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        assert time.time() < deadline, "processes of the killed group are still alive"
        time.sleep(0.05)


def run_to_end(cmd: list[str], cwd: Path, log: Path) -> str:
    proc = start(cmd, cwd, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    return log.read_text()


def kill_chain(cmd: list[str], cwd: Path, rng: random.Random, kills: int, outputs: str, n_outputs: int,
               counts: Counts, check_kept, resumed_re: str) -> None:
    """Start `cmd`, SIGKILL its process group at a random moment, check what is kept, start it
    again, ... `kills` times; then run it to the end. A moment is: once a random number of new
    files matching `outputs` (a glob under cwd; 0 = during start-up) have appeared, a random
    delay more; so the kills land anywhere in the run, whatever the machine's load."""
    counts.chains += 1
    after_kill: list[Path] = []      # logs of the runs started right after a kill
    killed = False
    for k in range(kills):
        log = cwd / f"run-{k}.log"
        present = len(list(cwd.glob(outputs)))
        proc = start(cmd, cwd, log)
        if killed:
            after_kill.append(log)
        target = rng.randint(0, max(0, n_outputs - present))
        delay = rng.uniform(0.0, 0.5)
        while proc.poll() is None and len(list(cwd.glob(outputs))) - present < target:
            time.sleep(0.01)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            counts.kills += 1
            killed = True
            check_kept()
            counts.checked_after_kill += 1
            continue
        assert proc.returncode == 0, log.read_text()[-3000:]
        counts.ended_before_kill += 1
        killed = False
        break
    final = cwd / "final.log"
    run_to_end(cmd, cwd, final)
    if killed:
        after_kill.append(final)
    for log in after_kill:
        if re.search(resumed_re, log.read_text()):
            counts.resumed += 1
        else:
            counts.restarted += 1


# ---- stage 2 -------------------------------------------------------------------------------

def fbank_command() -> list[str]:
    return [sys.executable, str(ROOT / "steps" / "compute_fbank.py"), "--manifest-dir", "man",
            "--out-dir", "fb", "--splits", "train", "--jobs", "2", "--chunk-size", "2"]


def make_stage1(tiny, work: Path) -> None:
    from lhotse import load_manifest

    (work / "man").mkdir(parents=True)
    load_manifest(tiny.cuts_train).drop_features().to_file(work / "man" / "cuts_train.jsonl.gz")


def gunzip(p: Path) -> bytes:
    with gzip.open(p, "rb") as f:
        return f.read()


def test_stage2_killed_anywhere_resumes_bit_identical(tmp_path, tiny):
    rng = random.Random(12)
    ref = tmp_path / "reference"
    make_stage1(tiny, ref)
    run_to_end(fbank_command(), ref, ref / "reference.log")
    n_outputs = len(list(ref.glob("fb/feats_train/chunk-*.jsonl.gz")))
    ref_feats = ref / "fb" / "feats_train"

    counts = Counts("stage 2 (steps/compute_fbank.py --jobs 2)")
    for chain in range(CHAINS):
        work = tmp_path / f"chain{chain}"
        make_stage1(tiny, work)
        feats = work / "fb" / "feats_train"

        def check_kept() -> None:
            # a chunk manifest is written last: every one kept must have its final features
            for m in feats.glob("chunk-*.jsonl.gz"):
                lca = m.with_name(m.name.replace(".jsonl.gz", ".lca"))
                assert lca.read_bytes() == (ref_feats / lca.name).read_bytes(), lca
                assert gunzip(m) == gunzip(ref_feats / m.name), m
            out = work / "fb" / "cuts_train.jsonl.gz"
            if out.exists():
                assert gunzip(out) == gunzip(ref / "fb" / "cuts_train.jsonl.gz")

        kill_chain(fbank_command(), work, rng, min(PER_CHAIN, KILLS - counts.kills),
                   "fb/feats_train/chunk-*.jsonl.gz", n_outputs, counts, check_kept,
                   r"resuming, \d+ of \d+ chunks already done")
        assert gunzip(work / "fb" / "cuts_train.jsonl.gz") == gunzip(ref / "fb" / "cuts_train.jsonl.gz")
        for f in sorted(ref_feats.iterdir()):
            if f.suffix == ".lca":
                assert (feats / f.name).read_bytes() == f.read_bytes(), f.name
        assert not list(feats.glob(".tmp-*")) and not list((work / "fb").glob(".tmp-*")), \
            "temporaries of killed runs were left behind"
        counts.identical += 1
    print("\n" + counts.line())
    assert counts.identical == counts.chains


# ---- stage 4 -------------------------------------------------------------------------------

def train_command(tiny) -> list[str]:
    return [sys.executable, str(ROOT / "steps" / "train.py"),
            "--cuts-train", str(tiny.cuts_train), "--cuts-dev", str(tiny.cuts_dev),
            "--lang-dir", str(tiny.lang_dir), "--exp-dir", "exp", "--model-conf", "tiny",
            "--num-epochs", "2", "--max-duration", "8", "--warm-steps", "10",
            "--save-every-n", "2", "--keep-last-k", "100", "--log-interval", "5", "--seed", "3",
            "--num-workers", "0"]


def load(p: Path) -> dict:
    return torch.load(p, weights_only=False, map_location="cpu")


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stage4_killed_anywhere_resumes_bit_identical(tmp_path, tiny):
    rng = random.Random(34)
    ref = tmp_path / "reference"
    ref.mkdir()
    run_to_end(train_command(tiny), ref, ref / "reference.log")
    n_outputs = len(list(ref.glob("exp/*.pt")))
    ref_exp = ref / "exp"
    final_ref = load(ref_exp / "epoch-2.pt")

    counts = Counts("stage 4 (steps/train.py, tiny model, --num-workers 0)")
    for chain in range(CHAINS):
        work = tmp_path / f"chain{chain}"
        work.mkdir()
        exp = work / "exp"

        def check_kept() -> None:
            # every checkpoint kept is complete and holds what the uninterrupted run saved there
            for p in list(exp.glob("checkpoint-*.pt")) + list(exp.glob("epoch-*.pt")):
                a, b = load(p), load(ref_exp / p.name)
                assert a["progress"] == b["progress"] and same_state(a["model"], b["model"]), p.name

        kill_chain(train_command(tiny), work, rng, min(PER_CHAIN, KILLS - counts.kills),
                   "exp/*.pt", n_outputs, counts, check_kept,
                   r"resuming from \S+: step \d+")
        got = load(exp / "epoch-2.pt")
        assert got["progress"] == final_ref["progress"]
        assert same_state(got["model"], final_ref["model"]), "final model differs"
        assert same_state(got["model_avg"], final_ref["model_avg"]), "running average differs"
        assert got["history"]["valid"] == final_ref["history"]["valid"]
        assert not list(exp.glob(".tmp-*")), "temporaries of killed runs were left behind"
        counts.identical += 1
    print("\n" + counts.line())
    assert counts.identical == counts.chains
