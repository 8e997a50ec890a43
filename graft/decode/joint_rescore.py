"""The n-best of HLG lattices re-scored by both heads of the model: CTC and the transducer.

The CTC head with HLG finds word sequences the lexicon and LM allow; the transducer, trained
beside it on the same encoder, is a second opinion on each. For every utterance:
  1. the `n` best distinct word sequences of its lattice at w0 (`distinct_word_nbest`),
  2. each spelled with the lexicon's pieces (the spelling HLG used),
  3. its CTC log-prob summed over all alignments (`ctc_sequence_log_probs`) and its transducer
     log-prob summed over all alignments (`transducer_sequence_log_probs`, the full RNN-T loss),
  4. acoustic score `am = (1 - rnnt_weight) * ctc + rnnt_weight * transducer`.
The lists are saved as n-best files (graft.decode.nbest_rescore), so stage 7 adds the word LM at
every weight and insertion penalty and picks them on dev, as for the `beam` method's lists.

Usage:
    arrays = LatticeArrays.from_lattice(read_lattice("exp/m/decode/ctc-hlg-rnnt/dev/hlg/lats/000000.lat"))
    spell = lexicon_spellings("data/lang/cs_bpe150/lm_3gram", lang.tokens)
    hyps = joint_nbest(model, arrays, w0=0.75, n=20, encoder_out=enc[0], ctc_log_probs=lp[0],
                       spell=spell, id2word=id2word, rnnt_weight=0.5)   # [NbestHyp], best first
    # its parts:
    seqs = distinct_word_nbest(arrays, w0=0.75, n=20)                 # [[word id, ...], ...]
    ctc = ctc_sequence_log_probs(ctc_log_probs, token_seqs)           # (H,) float64
    rnnt = transducer_sequence_log_probs(model, encoder_out, token_seqs)
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from graft.decode.lattice_rescore import LatticeArrays
from graft.decode.nbest_rescore import NbestHyp
from graft.lang.lexicon import read_lexicon
from graft.utils.errors import GraftError, require_file


def lexicon_spellings(lm_dir: str | os.PathLike, tokens: dict[str, int]) -> dict[str, list[int]]:
    """word -> token ids, from the LM dir's lexicon (the spelling HLG was built with); read once."""
    return _spellings(str(lm_dir), tuple(sorted(tokens.items())))


@functools.lru_cache(maxsize=1)
def _spellings(lm_dir: str, tokens: tuple[tuple[str, int], ...]) -> dict[str, list[int]]:
    token_ids = dict(tokens)
    path = require_file(Path(lm_dir) / "lexicon.txt", stage=3, what="the lexicon")
    try:
        return {word: [token_ids[p] for p in pieces] for word, pieces in read_lexicon(path)}
    except KeyError as e:
        raise GraftError(f"{path}: piece {e.args[0]!r} is not in the model's tokens: the LM dir was built for "
                         "another lang dir (re-run stage 3)") from None


def joint_nbest(model, arrays: LatticeArrays, w0: float, n: int, encoder_out: torch.Tensor,
                ctc_log_probs: torch.Tensor, spell: dict[str, list[int]], id2word: dict[int, str],
                rnnt_weight: float = 0.5, bf16: bool = False) -> list[NbestHyp]:
    """One utterance: its lattice's `n` best distinct word sequences, each with
    `am = (1 - rnnt_weight) * CTC + rnnt_weight * transducer` log-prob, best am first (sequences
    the frames cannot hold, am = -inf, are left out)."""
    seqs = distinct_word_nbest(arrays, w0, n)
    words = [ws for ws in ([id2word[w] for w in s] for s in seqs) if all(w in spell for w in ws)]
    tokens = [[t for w in ws for t in spell[w]] for ws in words]
    ctc = ctc_sequence_log_probs(ctc_log_probs, tokens, blank=model.blank_id)
    rnnt = transducer_sequence_log_probs(model, encoder_out, tokens, bf16=bf16)
    am = (1.0 - rnnt_weight) * ctc + rnnt_weight * rnnt
    keep = [k for k in np.argsort(-am, kind="stable") if np.isfinite(am[k])]
    return [NbestHyp(tokens[k], words[k], float(am[k])) for k in keep]


def distinct_word_nbest(arrays: LatticeArrays, w0: float, n: int, beam: float = 8.0,
                        max_states: int = 100_000) -> list[list[int]]:
    """Up to `n` distinct word-id sequences of a lattice, best first at cost `w0 * graph + acoustic`.

    The lattice repeats a word sequence with many alignments: it is projected on its words (a
    tropical acceptor), epsilon-removed and determinized, so its n shortest paths differ in words.
    The determinization keeps only paths within `beam` of the best and at most `max_states`
    states: the lattice of a model that has not learnt much can hold so many word sequences
    that an unpruned one does not finish (seen: > 17 GB on a 6k-arc lattice).
    """
    import kaldifst

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if arrays.num_states == 0 or arrays.start < 0:
        return []
    cost = w0 * arrays.graph + arrays.acoustic
    # OpenFst text: the start state must come first, so states are renumbered with it as 0
    order = np.arange(arrays.num_states)
    order[[0, arrays.start]] = order[[arrays.start, 0]]
    src, dst = order[arrays.src], order[arrays.dst]
    lines = [f"{s} {d} {o} {o} {c:.6f}" for s, d, o, c in zip(src.tolist(), dst.tolist(),
                                                              arrays.olabel.tolist(), cost.tolist())]
    finals = np.nonzero(np.isfinite(arrays.final_graph))[0]
    if finals.size == 0:
        return []
    lines += [f"{order[s]} {w0 * arrays.final_graph[s] + arrays.final_acoustic[s]:.6f}" for s in finals.tolist()]
    fst = kaldifst.compile("\n".join(lines) + "\n")
    kaldifst.rmepsilon(fst)
    fst = kaldifst.determinize(fst, weight=f"{float(beam):g}", nstate=int(max_states))
    best = kaldifst.shortest_path(fst, n=n)
    out: list[list[int]] = []
    for path in kaldifst.convert_nbest_to_vector(best):
        ok, _, words, _ = kaldifst.get_linear_symbol_sequence(path)
        if ok:
            out.append([w for w in words if w != 0])
    return out


def ctc_sequence_log_probs(log_probs: torch.Tensor, token_seqs: Sequence[Sequence[int]], blank: int = 0) -> np.ndarray:
    """log P(tokens | audio) of the CTC head for each sequence (sum over alignments); (T, V) in.

    A sequence too long for the frames gets -inf.
    """
    if not token_seqs:
        return np.zeros(0)
    t = log_probs.shape[0]
    h = len(token_seqs)
    lp = log_probs.float()[:, None, :].expand(t, h, log_probs.shape[1])
    targets = torch.tensor([x for s in token_seqs for x in s], dtype=torch.long)
    lens = torch.tensor([len(s) for s in token_seqs], dtype=torch.long)
    loss = torch.nn.functional.ctc_loss(lp, targets, torch.full((h,), t, dtype=torch.long), lens,
                                        blank=blank, reduction="none", zero_infinity=False)
    return (-loss).double().numpy()


@torch.no_grad()
def transducer_sequence_log_probs(model, encoder_out: torch.Tensor, token_seqs: Sequence[Sequence[int]],
                                  bf16: bool = False) -> np.ndarray:
    """log P(tokens | audio) of the transducer for each sequence: the RNN-T sum over alignments
    (the full lattice, no pruning). `encoder_out` is (T, D) of one utterance.

    The stateless decoder sees only the last `context_size` tokens, so the n-best's positions
    share few distinct contexts: the joiner runs once per (frame, distinct context), not per
    (hypothesis, frame, position), and each hypothesis gathers its blank and next-symbol
    log-probs from that table before the lattice recursion (graft.model.loss.rnnt_log_likelihood).
    `bf16`: the joiner under bf16 autocast (for CPUs that multiply bf16 natively).
    """
    from graft.model.loss import rnnt_log_likelihood

    if not token_seqs:
        return np.zeros(0)
    if encoder_out.dim() != 2:
        raise GraftError(f"encoder_out must be (T, D) of one utterance, got shape {tuple(encoder_out.shape)}")
    blank = int(model.decoder.blank_id)
    cs = int(model.decoder.context_size)
    t = encoder_out.shape[0]
    h = len(token_seqs)
    s_max = max(1, max(len(x) for x in token_seqs))
    symbols = torch.full((h, s_max), blank, dtype=torch.long)
    for row, seq in enumerate(token_seqs):
        if seq:
            symbols[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
    # the context of position s (s = 0..S): the last cs tokens of [blank] * cs + tokens[:s]
    padded = torch.cat([torch.full((h, cs), blank, dtype=torch.long), symbols], dim=1)  # (H, cs + S)
    windows = padded.unfold(1, cs, 1)  # (H, S + 1, cs)
    contexts, inverse = torch.unique(windows.reshape(-1, cs), dim=0, return_inverse=True)
    inverse = inverse.view(h, s_max + 1)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        enc = model.joiner.encoder_proj(encoder_out.float())                     # (T, J)
        dec = model.joiner.decoder_proj(model.decoder(contexts, need_pad=False))  # (U, 1, J)
        logits = model.joiner(enc[:, None, :], dec[None, :, 0, :], project_input=False)  # (T, U, V)
    table = logits.float().log_softmax(dim=-1)
    u, vocab = table.shape[1], table.shape[2]
    py = table[:, :, blank][:, inverse].permute(1, 2, 0)                          # (H, S + 1, T)
    flat = table.reshape(t, u * vocab)
    px = flat[:, (inverse[:, :-1] * vocab + symbols).reshape(-1)].view(t, h, s_max).permute(1, 2, 0)
    px = torch.cat([px, px.new_full((h, s_max, 1), float("-inf"))], dim=2)      # (H, S, T + 1)
    boundary = torch.zeros(h, 4, dtype=torch.long)
    boundary[:, 2] = torch.tensor([len(x) for x in token_seqs])
    boundary[:, 3] = t
    return rnnt_log_likelihood(px.contiguous(), py.contiguous(), boundary).double().numpy()
