"""Transducer beam search inside the word lexicon, with the word n-gram LM fused per word.

Modified beam search (one symbol per frame, as graft.decode.search) whose hypotheses may only
spell words of the lexicon: a token that starts a word (sentencepiece's `▁`) may follow only a
complete lexicon word, and a token inside a word must continue a lexicon spelling. Each
hypothesis walks a prefix tree of the lexicon's token spellings (`LexiconTrie`) and G word by
word (`graft.lang.graphs.BackoffG`, exact ARPA costs); a word's LM cost is added when the next
word starts, and at the end with `</s>`. Inside a word a hypothesis is charged the cheapest
unigram cost of the words it can still become (look-ahead), so finishing a word is not a penalty
against hypotheses still spelling one. Pruning ranks `am - lm_weight * (lm_cost + look-ahead)`.

Why: a transducer that hears the letters right still runs words together or splits them (on the
demo's Czech 15-minute model greedy test WER 66.8 at CER 17.9); the lexicon and the LM put the
word boundaries where words are, as HLG does for the CTC head.

The result is an n-best list with the transducer log-prob of each hypothesis (LM excluded), so
stage 7 re-scores it with G at every LM weight and penalty like the `beam` method's lists; the
search itself runs at one weight (`lex_lm_weight` of conf/decode.yaml, 0.3: on the demo's Czech
dev, beam 8, weights 0.6 and 1.0 in the search gave 53.7 and 68.8 % against 49.1 at 0.3, the
higher ones deleting words).

Usage:
    trie, lm = load_lexicon_search("data/lang/cs_bpe150/lm_3gram", lang.tokens)   # cached
    nbest = lexicon_beam_search(model, enc, enc_lens, trie, lm, lm_weight=0.3, beam=8)
    nbest[0][0].tokens, nbest[0][0].log_prob
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from graft.decode.search import Hypothesis, _DecoderCache, _initial_context, _log_add, _search_setup
from graft.lang.lexicon import read_lexicon
from graft.lang.symbols import WORD_BOUNDARY, read_symbols
from graft.utils.errors import GraftError, require_file
from graft.utils.logging import get_logger

log = get_logger(__name__)

ROOT = 0


class LexiconTrie:
    """The lexicon's token spellings as a prefix tree over token ids.

    Node 0 is the root; `children[n]` maps a token id to the next node and `word[n]` is the word
    id spelled by the path to `n` (-1 if none). `word_start[t]` says whether token t starts a word.
    """

    def __init__(self, spellings: list[tuple[int, list[int]]], vocab_size: int, word_start: list[bool]) -> None:
        self.children: list[dict[int, int]] = [{}]
        self.word: list[int] = [-1]
        self.parent: list[int] = [-1]
        self.vocab_size = vocab_size
        self.num_words = len(spellings)
        self.word_start = torch.tensor(word_start, dtype=torch.bool)
        for word_id, tokens in spellings:
            node = ROOT
            for t in tokens:
                nxt = self.children[node].get(t)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][t] = nxt
                    self.children.append({})
                    self.word.append(-1)
                    self.parent.append(node)
                node = nxt
            if self.word[node] < 0:  # two words with one spelling: the first one is kept
                self.word[node] = word_id
        self._masks: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.lookahead: list[float] = [0.0] * len(self.children)

    def set_lookahead(self, word_cost) -> None:
        """Give each node the least `word_cost(word id)` of the words below it (LM look-ahead:
        a hypothesis inside a word is charged the cheapest word it can still become)."""
        best = [math.inf] * len(self.children)
        for node in range(len(self.children) - 1, 0, -1):  # children come after their parents
            if self.word[node] >= 0:
                best[node] = min(best[node], float(word_cost(self.word[node])))
            p = self.parent[node]
            if best[node] < best[p]:
                best[p] = best[node]
        best[ROOT] = 0.0
        self.lookahead = [b if math.isfinite(b) else 0.0 for b in best]
        self._masks.clear()

    @classmethod
    def from_lm_dir(cls, lm_dir: str | os.PathLike, tokens: dict[str, int]) -> "LexiconTrie":
        """Build from `<lm dir>/lexicon.txt` and `words.txt` (stage 3) and the lang dir's tokens."""
        lm_dir = Path(lm_dir)
        lexicon_path = require_file(lm_dir / "lexicon.txt", stage=3, what="the lexicon")
        word_ids = read_symbols(require_file(lm_dir / "words.txt", stage=3, what="the word table"))
        spellings: list[tuple[int, list[int]]] = []
        for n, (word, pieces) in enumerate(read_lexicon(lexicon_path), start=1):
            try:
                spellings.append((word_ids[word], [tokens[p] for p in pieces]))
            except KeyError as e:
                raise GraftError(f"{lexicon_path}:{n}: {e.args[0]!r} is not in words.txt or the lang dir's "
                                 "tokens.txt: the LM dir was built for another lang dir (re-run stage 3)") from None
        if not spellings:
            raise GraftError(f"{lexicon_path} is empty")
        vocab = max(tokens.values()) + 1
        starts = [False] * vocab
        for piece, i in tokens.items():
            starts[i] = piece.startswith(WORD_BOUNDARY)
        return cls(spellings, vocab, starts)

    @property
    def num_nodes(self) -> int:
        return len(self.children)

    def continuation(self, node: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask, look-ahead), each (V,): the mask is 0 for blank (id 0) and the tokens that
        continue `node`'s spelling, -inf elsewhere; the look-ahead is the next node's (else 0)."""
        out = self._masks.get(node)
        if out is None:
            mask = torch.full((self.vocab_size,), -math.inf, dtype=torch.float64)
            la = torch.zeros(self.vocab_size, dtype=torch.float64)
            mask[0] = 0.0
            if node != ROOT:  # from ROOT words start through starts()
                for t, child in self.children[node].items():
                    mask[t] = 0.0
                    la[t] = self.lookahead[child]
            out = self._masks[node] = (mask, la)
        return out

    def starts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask, look-ahead) of the tokens that start a lexicon word."""
        out = self._masks.get(-1)
        if out is None:
            mask = torch.full((self.vocab_size,), -math.inf, dtype=torch.float64)
            la = torch.zeros(self.vocab_size, dtype=torch.float64)
            for t, child in self.children[ROOT].items():
                mask[t] = 0.0
                la[t] = self.lookahead[child]
            out = self._masks[-1] = (mask, la)
        return out


def unigram_costs(lm):
    """A function word id -> its cost from G's lowest-order state (the look-ahead's estimate)."""
    state = lm.start
    while True:  # follow back-off arcs from the start state down to the unigram state
        back = lm.arcs(state).get(lm.backoff)
        if back is None:
            break
        state = back[1]
    arcs = lm.arcs(state)
    return lambda word: arcs.get(word, (math.inf, -1))[0]


def load_backoff_g(lm_dir: str | os.PathLike):
    """G of an LM dir (stage 3's G.fst) as a BackoffG."""
    import kaldifst

    from graft.lang.graphs import BackoffG

    lm_dir = Path(lm_dir)
    g_path = require_file(lm_dir / "G.fst", stage=3, what="the word LM graph")
    g = kaldifst.StdVectorFst.read(str(g_path))
    if g is None or g.num_states == 0:
        raise GraftError(f"cannot read {g_path} as a non-empty OpenFst StdVectorFst (re-run stage 3)")
    words = read_symbols(lm_dir / "words.txt")
    if "#0" not in words:
        raise GraftError(f"{lm_dir / 'words.txt'} has no #0 (G's back-off label): re-run stage 3")
    return BackoffG(g, words["#0"])


def load_lexicon_search(lm_dir: str | os.PathLike, tokens: dict[str, int]) -> tuple[LexiconTrie, object]:
    """The lexicon trie (with the unigram look-ahead of G) and G (a BackoffG) of an LM dir, for a
    token table; loaded once per process (one LM dir kept: the demo's 491k Czech words take ~0.7 GB and
    5.5 s)."""
    return _load_lexicon_search(str(Path(lm_dir).resolve()), tuple(sorted(tokens.items())))


@functools.lru_cache(maxsize=1)
def _load_lexicon_search(lm_dir: str, tokens: tuple[tuple[str, int], ...]) -> tuple[LexiconTrie, object]:
    t0 = time.perf_counter()
    trie = LexiconTrie.from_lm_dir(lm_dir, dict(tokens))
    g = load_backoff_g(lm_dir)
    trie.set_lookahead(unigram_costs(g))
    log.info("lexicon of %s: %d words, %d trie nodes, loaded in %.1f s", lm_dir, trie.num_words,
             trie.num_nodes, time.perf_counter() - t0)
    return trie, g


@dataclass
class _Hyp:
    am: float          # transducer log-prob
    node: int          # lexicon trie node of the word being spelled (ROOT: none yet)
    lm_state: int      # G state after the completed words
    lm_cost: float     # LM cost of the completed words
    pending: float     # look-ahead cost of the word being spelled

    def score(self, w: float) -> float:
        return self.am - w * (self.lm_cost + self.pending)


def _word_end(trie: LexiconTrie, lm, h: _Hyp) -> tuple[float, int]:
    """(LM cost, next G state) of completing the word at h.node; (0, state) before any word;
    (inf, -1) if the node spells no word."""
    if h.node == ROOT:
        return 0.0, h.lm_state
    word = trie.word[h.node]
    if word < 0:
        return math.inf, -1
    if lm is None:
        return 0.0, h.lm_state
    return lm.step(h.lm_state, word)


@torch.no_grad()
def lexicon_beam_search(
    model,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    trie: LexiconTrie,
    lm=None,
    lm_weight: float = 0.0,
    beam: int = 8,
    num_best: int | None = None,
    context_pad_id: int | None = None,
) -> list[list[Hypothesis]]:
    """Batched modified beam search restricted to lexicon words, LM fused at word ends.

    `lm` is a BackoffG (None: the lexicon alone). Returns per utterance up to `num_best` (default
    `beam`) hypotheses, best first by `am - lm_weight * lm_cost` including `</s>`, each with its
    transducer log-prob only. Hypotheses that end inside a word are dropped; if every one does,
    the best of them is returned as it is.
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if trie.vocab_size != model.vocab_size:
        raise GraftError(f"the lexicon's token table has {trie.vocab_size} tokens but the model has "
                         f"{model.vocab_size}: use the LM dir of the model's lang dir")
    num_best = beam if num_best is None else num_best
    w = float(lm_weight)
    n, t_max, _ = encoder_out.shape
    device = encoder_out.device
    blank, cs, lens, enc_proj = _search_setup(model, encoder_out, encoder_out_lens)
    cache = _DecoderCache(model, device)
    start_mask, start_la = trie.starts()
    is_start = trie.word_start
    is_blank = torch.zeros(trie.vocab_size, dtype=torch.bool)
    is_blank[blank] = True
    g_start = lm.start if lm is not None else 0
    init = tuple(_initial_context(model, context_pad_id))
    beams: list[dict[tuple[int, ...], _Hyp]] = [{init: _Hyp(0.0, ROOT, g_start, 0.0, 0.0)} for _ in range(n)]
    for t in range(t_max):
        active = [i for i in range(n) if lens[i] > t]
        if not active:
            break
        rows = [(i, key, h) for i in active for key, h in beams[i].items()]
        dec_proj = cache.get([key[-cs:] for _, key, _ in rows]).to(enc_proj.dtype)
        utt_idx = torch.tensor([i for i, _, _ in rows], device=device)
        logits = model.joiner(enc_proj[utt_idx, t], dec_proj, project_input=False)
        log_probs = logits.log_softmax(dim=-1).to(torch.float64).cpu()
        ends = [_word_end(trie, lm, h) for _, _, h in rows]
        adds = []
        for (_, _, h), (end_cost, _) in zip(rows, ends):
            # score change of each token, look-ahead included: blank 0; a continuation swaps
            # the pending look-ahead for the next node's; a word start pays the ended word
            mask, la = trie.continuation(h.node)
            add = mask - w * torch.where(is_blank, 0.0, la - h.pending)
            if math.isfinite(end_cost):
                add = torch.where(is_start, start_mask - w * (end_cost - h.pending + start_la), add)
            adds.append(add)
        prev = torch.tensor([h.score(w) for _, _, h in rows], dtype=torch.float64)
        total = log_probs + torch.stack(adds) + prev[:, None]  # (H, V)
        vocab = total.shape[1]
        start = 0
        for i in active:
            count = len(beams[i])
            block = total[start: start + count].reshape(-1)
            k = min(beam, int(torch.isfinite(block).sum()))
            values, flat = block.topk(k)
            merged: dict[tuple[int, ...], _Hyp] = {}
            for f in flat.tolist():
                r = start + f // vocab
                _, key, h = rows[r]
                token = f % vocab
                am = h.am + float(log_probs[r, token])
                if token == blank:
                    new = _Hyp(am, h.node, h.lm_state, h.lm_cost, h.pending)
                elif bool(is_start[token]):
                    end_cost, g_state = ends[r]
                    node = trie.children[ROOT][token]
                    new = _Hyp(am, node, g_state, h.lm_cost + end_cost, trie.lookahead[node])
                    key = key + (token,)
                else:
                    node = trie.children[h.node][token]
                    new = _Hyp(am, node, h.lm_state, h.lm_cost, trie.lookahead[node])
                    key = key + (token,)
                old = merged.get(key)
                if old is not None:  # the same tokens: the same words, so only the am differs
                    new.am = _log_add(old.am, new.am)
                merged[key] = new
            if merged:
                beams[i] = merged
            start += count
    return [_final_nbest(trie, lm, w, beams[i], cs, num_best) for i in range(n)]


def _final_nbest(trie: LexiconTrie, lm, w: float, hyps: dict[tuple[int, ...], _Hyp], cs: int,
                 num_best: int) -> list[Hypothesis]:
    done: list[tuple[float, tuple[int, ...], float]] = []
    for key, h in hyps.items():
        end_cost, g_state = _word_end(trie, lm, h)
        if not math.isfinite(end_cost):
            continue
        final = lm.final_cost(g_state) if lm is not None else 0.0
        done.append((h.am - w * (h.lm_cost + end_cost + final), key, h.am))
    if not done:  # every hypothesis ends inside a word: give the best as it is
        done = [(h.score(w), key, h.am) for key, h in hyps.items()]
    done.sort(key=lambda x: x[0], reverse=True)
    return [Hypothesis(list(key[cs:]), am) for _, key, am in done[:num_best]]
