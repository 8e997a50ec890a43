"""Transducer greedy / modified beam search on a deterministic fake model with known answers.

Usage:
    .venv/bin/python -m pytest -q tests/test_search.py
"""
from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import torch

from graft.decode.search import Hypothesis, ctc_greedy_search, greedy_search, modified_beam_search

V = 4
BLANK = 0
PENALTY = 2.0


class FakeDecoder:
    """Output (N, 1, V): -PENALTY on the last emitted token (so a token is not repeated at once)."""

    context_size = 2
    blank_id = BLANK

    def __call__(self, y: torch.Tensor, need_pad: bool = False) -> torch.Tensor:
        assert not need_pad and y.shape[1] == self.context_size
        out = torch.zeros(y.shape[0], 1, V)
        last = y[:, -1]
        rows = torch.nonzero(last != BLANK).flatten()
        out[rows, 0, last[rows]] = -PENALTY
        return out


class FakeJoiner:
    """logits = encoder row + decoder row; the projections are the identity."""

    def encoder_proj(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decoder_proj(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __call__(self, enc: torch.Tensor, dec: torch.Tensor, project_input: bool = True) -> torch.Tensor:
        assert not project_input
        return enc + dec


class FakeModel:
    vocab_size = V
    blank_id = BLANK

    def __init__(self) -> None:
        self.decoder = FakeDecoder()
        self.joiner = FakeJoiner()

    def encoder(self, features: torch.Tensor, feature_lens: torch.Tensor):
        return features[..., :V], feature_lens

    def ctc_output(self, encoder_out: torch.Tensor) -> torch.Tensor:
        return encoder_out.log_softmax(-1)


# frame rows: logits before the decoder's contribution
TABLE = torch.tensor([
    [0.0, 3.0, 1.5, 0.0],   # emit 1; a second symbol here would be 2
    [1.0, 2.5, 0.0, 0.0],   # 1 again only if the last token is not 1
    [0.5, 0.0, 0.0, 2.0],   # emit 3
    [0.5, 0.0, 2.0, 0.0],   # emit 2
])


def run_encoder(model, rows: list[torch.Tensor]):
    t_max = max(r.shape[0] for r in rows)
    feats = torch.full((len(rows), t_max, 80), -50.0)
    for i, r in enumerate(rows):
        feats[i, : r.shape[0], :V] = r
    return model.encoder(feats, torch.tensor([r.shape[0] for r in rows]))


def test_greedy_known_sequence() -> None:
    model = FakeModel()
    enc, lens = run_encoder(model, [TABLE])
    assert greedy_search(model, enc, lens) == [[1, 3, 2]]
    assert greedy_search(model, enc, lens, max_sym_per_frame=2) == [[1, 2, 1, 3, 2]]


def test_greedy_batch_equals_single() -> None:
    model = FakeModel()
    short = TABLE[[2, 0, 1]]
    enc, lens = run_encoder(model, [TABLE, short])
    batch = greedy_search(model, enc, lens)
    singles = [greedy_search(model, *run_encoder(model, [r]))[0] for r in (TABLE, short)]
    assert batch == singles == [[1, 3, 2], [3, 1]]


def brute_force(table: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Sum over all alignments (<= 1 symbol a frame) of the fake model: exact sequence log-probs."""
    model = FakeModel()
    totals: dict[tuple[int, ...], float] = {}
    for choice in itertools.product(range(V), repeat=table.shape[0]):
        ctx = [BLANK, BLANK]
        seq: list[int] = []
        lp = 0.0
        for t, y in enumerate(choice):
            dec = model.decoder(torch.tensor([ctx[-2:]]))[0, 0]
            lp += float((table[t] + dec).log_softmax(-1)[y])
            if y != BLANK:
                seq.append(y)
                ctx.append(y)
        key = tuple(seq)
        totals[key] = float(torch.logaddexp(torch.tensor(totals[key]), torch.tensor(lp))) if key in totals else lp
    return totals


def test_beam_search_exact_when_nothing_is_pruned() -> None:
    model = FakeModel()
    table = TABLE[:3]
    exact = brute_force(table)  # 1 + 3 + 9 + 27 = 40 sequences
    assert len(exact) == 40
    enc, lens = run_encoder(model, [table])
    hyps = modified_beam_search(model, enc, lens, beam=64)[0]
    assert len(hyps) == 40
    assert all(isinstance(h, Hypothesis) for h in hyps)
    got = {tuple(h.tokens): h.log_prob for h in hyps}
    assert set(got) == set(exact)
    for key, lp in exact.items():
        assert math.isclose(got[key], lp, abs_tol=1e-5), (key, got[key], lp)
    # best first, and the probabilities of all sequences sum to one
    assert [h.log_prob for h in hyps] == sorted((h.log_prob for h in hyps), reverse=True)
    assert math.isclose(sum(math.exp(h.log_prob) for h in hyps), 1.0, abs_tol=1e-5)


def test_beam_one_is_greedy_and_batching_is_transparent() -> None:
    model = FakeModel()
    short = TABLE[[2, 0, 1]]
    enc, lens = run_encoder(model, [TABLE, short])
    assert [h[0].tokens for h in modified_beam_search(model, enc, lens, beam=1)] == greedy_search(model, enc, lens)
    batch = modified_beam_search(model, enc, lens, beam=3)
    for i, rows in enumerate((TABLE, short)):
        single = modified_beam_search(model, *run_encoder(model, [rows]), beam=3)[0]
        assert [h.tokens for h in batch[i]] == [h.tokens for h in single]
        assert all(math.isclose(a.log_prob, b.log_prob, abs_tol=1e-6) for a, b in zip(batch[i], single))
    assert batch[0][0].tokens == [1, 3, 2]
    assert len(batch[0]) == 3


def test_ctc_greedy() -> None:
    lp = torch.log_softmax(torch.tensor([[[0.0, 5, 0, 0], [0, 5, 0, 0], [5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 0, 5]]]), -1)
    assert ctc_greedy_search(lp, torch.tensor([5])) == [[1, 1, 3]]
    assert ctc_greedy_search(lp, torch.tensor([2])) == [[1]]


def test_searches_run_on_the_real_decoder_and_joiner() -> None:
    """Shape contract with graft.model's stateless decoder and joiner (random weights)."""
    from graft.model.decoder import StatelessDecoder
    from graft.model.joiner import Joiner

    torch.manual_seed(0)
    vocab, enc_dim = 6, 5
    model = SimpleNamespace(decoder=StatelessDecoder(vocab, 8, blank_id=0, context_size=2),
                            joiner=Joiner(enc_dim, 8, 8, vocab), vocab_size=vocab, blank_id=0)
    enc = torch.randn(2, 7, enc_dim) * 3
    lens = torch.tensor([7, 4])
    greedy = greedy_search(model, enc, lens, max_sym_per_frame=2)
    beam = modified_beam_search(model, enc, lens, beam=4)
    assert len(greedy) == 2 and len(beam) == 2
    assert all(0 < t < vocab for seq in greedy for t in seq)
    assert all(h.log_prob <= 0 for hyps in beam for h in hyps)
    assert [h[0].tokens for h in modified_beam_search(model, enc, lens, beam=1)] == greedy_search(model, enc, lens)
