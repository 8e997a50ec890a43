"""ctc-hlg-rnnt's parts: distinct n-best of a lattice, CTC and transducer sequence log-probs,
and the decode dir that keeps other methods' outputs when one method's settings change.

Usage:
    .venv/bin/python -m pytest -q tests/test_joint_rescore.py
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path

import kaldifst
import numpy as np
import pytest
import torch

from graft.decode.joint_rescore import ctc_sequence_log_probs, distinct_word_nbest, transducer_sequence_log_probs
from graft.decode.lattice_rescore import LatticeArrays
from graft.model.build import build_model, load_model_conf
from graft.model.loss import full_rnnt_loss

REPO = Path(__file__).resolve().parents[1]


def lattice(start: int) -> kaldifst.Lattice:
    """Word 7 by two alignments (acoustic 2 and 3), words 8 9 (graph 2, acoustic 1), word 6 (graph 5);
    states numbered so that the start is `start`."""
    W, A = kaldifst.LatticeWeight, kaldifst.LatticeArc
    lat = kaldifst.Lattice()
    for _ in range(5):
        lat.add_state()
    names = [start] + [s for s in range(5) if s != start]  # names[i]: the id of logical state i
    s0, a, b, c, f = names
    lat.start = s0
    lat.add_arc(s0, A(1, 7, W(1.0, 2.0), f))
    lat.add_arc(s0, A(2, 0, W(0.0, 1.0), a))
    lat.add_arc(a, A(1, 7, W(1.0, 2.0), f))      # word 7 again: acoustic 3 in all
    lat.add_arc(s0, A(3, 8, W(1.0, 0.5), b))
    lat.add_arc(b, A(3, 9, W(1.0, 0.5), f))
    lat.add_arc(s0, A(4, 6, W(5.0, 0.0), c))
    lat.add_arc(c, A(0, 0, W(0.0, 0.0), f))
    lat.set_final(f, W(0.0, 0.0))
    return lat


@pytest.mark.parametrize("start", [0, 3])
def test_distinct_word_nbest_merges_alignments_and_ranks_at_w0(start: int) -> None:
    arrays = LatticeArrays.from_lattice(lattice(start))
    # costs at w0 = 1: [7] 1 + 2 = 3 (its second alignment, 4, is merged), [8 9] 2 + 1 = 3, [6] 5
    at1 = distinct_word_nbest(arrays, w0=1.0, n=10)
    assert sorted(map(tuple, at1[:2])) == [(7,), (8, 9)] and at1[2:] == [[6]]
    # at w0 = 0 the graph is free: [6] (0) first, then [8 9] (1), then [7] (2)
    assert distinct_word_nbest(arrays, w0=0.0, n=10) == [[6], [8, 9], [7]]
    assert distinct_word_nbest(arrays, w0=0.0, n=2) == [[6], [8, 9]]
    assert distinct_word_nbest(LatticeArrays.from_lattice(kaldifst.Lattice()), 1.0, 5) == []


def test_ctc_log_prob_is_the_sum_over_alignments() -> None:
    torch.manual_seed(0)
    lp = torch.randn(4, 3).log_softmax(-1)  # T = 4, blank 0 and tokens 1, 2

    def brute(seq: list[int]) -> float:
        total = -math.inf
        for path in itertools.product(range(3), repeat=4):
            collapsed = [k for k, _ in itertools.groupby(path) if k != 0]
            if collapsed == seq:
                total = np.logaddexp(total, float(sum(lp[t, k] for t, k in enumerate(path))))
        return total

    seqs = [[1], [1, 2], [2, 2], [], [1, 2, 1]]
    got = ctc_sequence_log_probs(lp, seqs)
    assert got == pytest.approx([brute(s) for s in seqs], abs=1e-4)
    assert ctc_sequence_log_probs(lp, [[1, 1, 1]])[0] == -math.inf  # needs 5 frames


@torch.no_grad()
def test_transducer_log_prob_equals_the_full_rnnt_loss() -> None:
    torch.manual_seed(0)
    model = build_model(load_model_conf("tiny"), vocab_size=20).eval()
    enc = torch.randn(30, model.joiner.encoder_proj.in_features)
    seqs = [[3, 4, 5], [3, 4], [], [7, 8, 9, 10, 3], [3, 4, 6]]
    want = []
    for seq in seqs:
        sym = torch.tensor([seq or [0]])
        dec = model.joiner.decoder_proj(model.decoder(torch.cat([torch.zeros(1, 1, dtype=torch.long), sym], 1)))
        logits = model.joiner(model.joiner.encoder_proj(enc)[None, :, None], dec[:, None], project_input=False)
        if not seq:  # blank at every frame from the start context
            want.append(float(logits[0, :, 0].log_softmax(-1)[:, 0].sum()))
            continue
        boundary = torch.tensor([[0, 0, len(seq), 30]])
        want.append(-float(full_rnnt_loss(logits, sym, boundary, reduction="none")))
    got = transducer_sequence_log_probs(model, enc, seqs)
    assert got == pytest.approx(want, abs=1e-3)
    assert transducer_sequence_log_probs(model, enc, seqs, bf16=True) == pytest.approx(want, rel=2e-3)


def load_decode_step():
    spec = importlib.util.spec_from_file_location("decode_step", REPO / "steps" / "decode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_changed_method_setting_removes_only_that_methods_outputs(tmp_path: Path) -> None:
    step = load_decode_step()
    root = tmp_path / "decode_epoch2_avg1"
    base = {k: None for k in step.RECORD_KEYS} | {"checkpoints": ["epoch-2.pt"], "beam": 4, "methods": [], "sets": {}}
    first = base | {"methods": ["greedy", "beam-lex", "ctc-hlg-rnnt"], "w0": 0.75,
                    "lex": {"beam": 8, "lm_weight": 0.3}, "joint": {"hlg_nbest": 20, "rnnt_weight": 0.5}}
    step.prepare_decode_dir(root, dict(first))
    for m in first["methods"]:
        (root / m / "dev").mkdir(parents=True)
    # only beam-lex again, with another LM weight: its outputs go, the others stay and stay recorded
    step.prepare_decode_dir(root, base | {"methods": ["beam-lex"], "lex": {"beam": 8, "lm_weight": 0.5}})
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["ctc-hlg-rnnt", "greedy"]
    record = json.loads((root / "decode.json").read_text())
    assert record["methods"] == ["beam-lex", "ctc-hlg-rnnt", "greedy"]
    assert record["lex"] == {"beam": 8, "lm_weight": 0.5} and record["joint"] == first["joint"]
    assert record["w0"] == 0.75
    # greedy alone: no method setting given, nothing removed
    step.prepare_decode_dir(root, base | {"methods": ["greedy"]})
    assert (root / "ctc-hlg-rnnt" / "dev").is_dir()
    # another checkpoint: everything goes
    step.prepare_decode_dir(root, base | {"checkpoints": ["epoch-3.pt"], "methods": ["greedy"]})
    assert [p.name for p in root.iterdir()] == ["decode.json"]


def test_the_stage_stamp_is_no_output_and_survives_emptying(tmp_path: Path, caplog) -> None:
    """utils/stage.sh writes its running stamp into the decode dir before steps/decode.py starts:
    a fresh dir holding only that stamp is not "outputs of an older Graft", and emptying a dir
    for changed settings keeps the stamp (a killed decode then resumes as the stamp says)."""
    step = load_decode_step()
    root = tmp_path / "decode_epoch2_avg1"
    root.mkdir()
    stamp = root / ".stage6_decode_m.stamp"
    stamp.write_text("running\n")
    base = {k: None for k in step.RECORD_KEYS} | {"checkpoints": ["epoch-2.pt"], "beam": 4, "methods": ["greedy"], "sets": {}}
    with caplog.at_level("WARNING"):
        step.prepare_decode_dir(root, dict(base))
    assert "older Graft" not in caplog.text and stamp.read_text() == "running\n"
    (root / "greedy" / "dev").mkdir(parents=True)
    (root / ".tmp-dev-x").mkdir()                                    # a killed run's temporary dir
    with caplog.at_level("WARNING"):
        step.prepare_decode_dir(root, base | {"checkpoints": ["epoch-3.pt"]})
    assert "decoded with other settings (checkpoints" in caplog.text
    assert sorted(p.name for p in root.iterdir()) == [".stage6_decode_m.stamp", "decode.json"]
    (root / "decode.json").unlink()
    (root / "greedy").mkdir()
    with caplog.at_level("WARNING"):
        step.prepare_decode_dir(root, dict(base))
    assert "holds outputs without a decode.json" in caplog.text and stamp.is_file()
    assert not (root / "greedy").exists()
