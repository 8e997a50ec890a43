"""Transducer beam search inside the lexicon (beam-lex) on a fake model with known answers.

The fake model's joiner returns the encoder frame as the logits (the decoder adds nothing), so
each test writes the per-frame token scores by hand; G is a one-state unigram FST.

Usage:
    .venv/bin/python -m pytest -q tests/test_lexicon_search.py
"""
from __future__ import annotations

import math
from pathlib import Path

import kaldifst
import pytest
import torch

from graft.decode.lexicon_search import LexiconTrie, lexicon_beam_search, load_backoff_g, unigram_costs
from graft.decode.search import greedy_search
from graft.lang.symbols import tokens_to_words
from graft.utils.errors import GraftError

TOKENS = {"<blk>": 0, "▁ab": 1, "c": 2, "▁c": 3, "▁x": 4, "y": 5}
ID2TOKEN = {i: p for p, i in TOKENS.items()}
V = len(TOKENS)
WORDS = {"<eps>": 0, "ab": 1, "abc": 2, "x": 3, "xy": 4, "#0": 5, "<s>": 6, "</s>": 7}
LEXICON = {"ab": "▁ab", "abc": "▁ab c", "x": "▁x", "xy": "▁x y"}


class ZeroDecoder:
    context_size = 2
    blank_id = 0

    def __call__(self, y: torch.Tensor, need_pad: bool = False) -> torch.Tensor:
        return torch.zeros(y.shape[0], 1, V)


class FrameJoiner:
    def encoder_proj(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decoder_proj(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def __call__(self, enc: torch.Tensor, dec: torch.Tensor, project_input: bool = True) -> torch.Tensor:
        return enc + dec


class FakeModel:
    vocab_size = V
    blank_id = 0

    def __init__(self) -> None:
        self.decoder = ZeroDecoder()
        self.joiner = FrameJoiner()


def frames(*rows: dict[int, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, T, V) log-probs: each row gives some tokens' probabilities, blank takes the rest."""
    out = torch.full((1, len(rows), V), 1e-6)
    for t, row in enumerate(rows):
        for token, p in row.items():
            out[0, t, token] = p
        out[0, t, 0] = max(1e-6, 1.0 - sum(row.values()))
    return (out / out.sum(-1, keepdim=True)).log(), torch.tensor([len(rows)])


def write_lm_dir(root: Path, unigram: dict[str, float]) -> Path:
    """words.txt, lexicon.txt and a one-state unigram G.fst (costs = -ln p) in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "words.txt").write_text("".join(f"{w} {i}\n" for w, i in WORDS.items()), encoding="utf-8")
    (root / "lexicon.txt").write_text("".join(f"{w} {s}\n" for w, s in LEXICON.items()), encoding="utf-8")
    lines = [f"0 0 {WORDS[w]} {WORDS[w]} {-math.log(p)}" for w, p in unigram.items()]
    lines.append(f"0 {-math.log(0.1)}")
    fst = kaldifst.compile("\n".join(lines) + "\n")
    fst.write(str(root / "G.fst"))
    return root


@pytest.fixture
def lm_dir(tmp_path: Path) -> Path:
    return write_lm_dir(tmp_path / "lm", {"ab": 0.2, "abc": 0.2, "x": 0.5, "xy": 0.01})


def words_of(hyps) -> list[str]:
    return tokens_to_words(hyps[0].tokens, ID2TOKEN) if hyps else []


def test_trie_masks_and_lookahead(lm_dir: Path) -> None:
    trie = LexiconTrie.from_lm_dir(lm_dir, TOKENS)
    assert trie.num_nodes == 5  # root, ▁ab, ▁ab c, ▁x, ▁x y
    start_mask, _ = trie.starts()
    assert torch.isfinite(start_mask).nonzero().flatten().tolist() == [1, 4]  # ▁c starts no word
    ab = trie.children[0][1]
    mask, _ = trie.continuation(ab)
    assert torch.isfinite(mask).nonzero().flatten().tolist() == [0, 2]  # blank, c
    assert trie.word[ab] == WORDS["ab"] and trie.word[trie.children[ab][2]] == WORDS["abc"]
    trie.set_lookahead(unigram_costs(load_backoff_g(lm_dir)))
    x = trie.children[0][4]
    assert trie.lookahead[x] == pytest.approx(-math.log(0.5))  # the cheaper of x and xy
    assert trie.lookahead[trie.children[x][5]] == pytest.approx(-math.log(0.01))


def test_lexicon_repairs_a_word_boundary_greedy_gets_wrong(lm_dir: Path) -> None:
    model = FakeModel()
    enc, lens = frames({1: 0.9}, {3: 0.6, 2: 0.3}, {})  # ▁ab, then ▁c (no word) over c
    assert tokens_to_words(greedy_search(model, enc, lens)[0], ID2TOKEN) == ["ab", "c"]
    trie = LexiconTrie.from_lm_dir(lm_dir, TOKENS)
    nbest = lexicon_beam_search(model, enc, lens, trie, lm=None, beam=4)[0]
    assert words_of(nbest) == ["abc"]
    for h in nbest:  # every hypothesis spells lexicon words, and its log-prob is the transducer's
        assert all(w in LEXICON for w in tokens_to_words(h.tokens, ID2TOKEN))
    best = nbest[0]
    assert best.log_prob == pytest.approx(float(enc[0, 0, 1] + enc[0, 1, 2] + enc[0, 2, 0]), abs=1e-5)


def test_the_lm_weight_decides_between_words(lm_dir: Path) -> None:
    model = FakeModel()
    enc, lens = frames({4: 0.9}, {5: 0.55}, {})  # ▁x, then y slightly over blank: "xy" acoustically
    trie = LexiconTrie.from_lm_dir(lm_dir, TOKENS)
    g = load_backoff_g(lm_dir)
    trie.set_lookahead(unigram_costs(g))
    assert words_of(lexicon_beam_search(model, enc, lens, trie, g, lm_weight=0.0, beam=4)[0]) == ["xy"]
    # P(x) = 0.5 against P(xy) = 0.01: at weight 1 the LM wins
    assert words_of(lexicon_beam_search(model, enc, lens, trie, g, lm_weight=1.0, beam=4)[0]) == ["x"]


def test_lm_costs_add_up_per_word_and_at_the_end(lm_dir: Path) -> None:
    g = load_backoff_g(lm_dir)
    cost, state = g.step(g.start, WORDS["ab"])
    assert cost == pytest.approx(-math.log(0.2)) and state == 0
    assert g.final_cost(state) == pytest.approx(-math.log(0.1))
    assert g.step(g.start, WORDS["<s>"]) == (math.inf, -1)  # no arc and no back-off


def test_a_lexicon_of_another_token_table_is_a_clear_error(lm_dir: Path) -> None:
    with pytest.raises(GraftError, match=r"lexicon.txt:2: 'c' is not in words.txt or the lang dir's tokens.txt"):
        LexiconTrie.from_lm_dir(lm_dir, {p: i for p, i in TOKENS.items() if p != "c"})
    trie = LexiconTrie.from_lm_dir(lm_dir, {**TOKENS, "z": 6})
    enc, lens = frames({1: 0.9})
    with pytest.raises(GraftError, match="the lexicon's token table has 7 tokens but the model has 6"):
        lexicon_beam_search(FakeModel(), enc, lens, trie)


def test_missing_lm_pieces_are_clear_errors(lm_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from graft.decode.lexicon_search import load_lexicon_search

    (lm_dir / "G.fst").unlink()
    with pytest.raises(GraftError, match=r"G\.fst.*stage 3|stage 3.*G\.fst"):
        load_lexicon_search(lm_dir, TOKENS)
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(repo / "steps/decode.py"), "--exp-dir", str(tmp_path / "exp"),
                           "--sets", "dev:cuts.jsonl.gz", "--methods", "greedy beam-lex ctc-hlg-rnnt"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "beam-lex and ctc-hlg-rnnt need --lm-dir (e.g. data/lang/en_bpe150/lm_3gram, written by stage 3)" in proc.stderr
