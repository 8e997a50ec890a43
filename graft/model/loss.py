"""Transducer and CTC losses: pruned RNN-T (fast_rnnt), full-lattice RNN-T, pure-PyTorch fallback.

Usage:
    symbols, target_lens = pad_targets(targets)                 # list[list[int]] -> (N, S), (N,)
    boundary = make_boundary(target_lens, encoder_out_lens)     # (N, 4): [0, 0, S_n, T_n]
    simple, pruned = pruned_rnnt_loss(joiner, encoder_out, decoder_out, am_simple, lm_simple,
                                      symbols, boundary, blank_id=0, prune_range=5)
    loss = full_rnnt_loss(logits, symbols, boundary, blank_id=0)   # logits (N, T, S+1, V)
    ctc = ctc_loss(ctc_log_probs, encoder_out_lens, symbols, target_lens, blank_id=0)

The pruned recipe: a "simple" transducer loss whose joint is `am[t] + lm[u]` (no joiner,
cheap: fast_rnnt computes it without the (T, U, V) lattice) gives, through its gradients,
the band of symbol positions each frame probably aligns to; the real joiner is then run only
on `prune_range` symbols per frame and the exact RNN-T loss is computed on that band. All
losses are summed over the batch (reduction="sum").

Without fast_rnnt (not importable), `pruned_rnnt_loss` falls back to pure PyTorch: the
simple loss with the same smoothing, and the *full-lattice* loss in place of the pruned one
(exact, but it runs the joiner on every (t, u): memory O(N T U V)).

Mixed precision: inside a bf16 autocast region (graft.train.amp) the losses still run in fp32:
their inputs are cast to float and autocast is off while they run; only the joiner and the
projections that feed them follow autocast.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

try:
    import fast_rnnt
    HAVE_FAST_RNNT = True
except ImportError:  # the pure-PyTorch fallback below is used instead
    fast_rnnt = None
    HAVE_FAST_RNNT = False

_NEG = -1.0e30   # a finite "log 0": -inf would turn into NaN gradients in logaddexp


def fp32_region(t: Tensor):
    """A context with autocast off on t's device: the losses' arithmetic stays fp32."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def pad_targets(targets: list[list[int]], pad_id: int = 0, min_width: int = 1) -> tuple[Tensor, Tensor]:
    """Token id lists -> (N, S) LongTensor padded with `pad_id` (S >= min_width) and (N,) lengths."""
    lens = torch.tensor([len(t) for t in targets], dtype=torch.long)
    width = max(int(lens.max()) if len(targets) else 0, min_width)
    symbols = torch.full((len(targets), width), pad_id, dtype=torch.long)
    for i, t in enumerate(targets):
        if t:
            symbols[i, : len(t)] = torch.as_tensor(t, dtype=torch.long)
    return symbols, lens


def make_boundary(target_lens: Tensor, frame_lens: Tensor) -> Tensor:
    """(N, 4) LongTensor [begin_symbol=0, begin_frame=0, S_n, T_n], as fast_rnnt expects."""
    boundary = torch.zeros(target_lens.numel(), 4, dtype=torch.long, device=frame_lens.device)
    boundary[:, 2] = target_lens.to(frame_lens.device)
    boundary[:, 3] = frame_lens
    return boundary


def _reduce(per_seq: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return per_seq.sum()
    if reduction == "mean":
        return per_seq.mean()
    if reduction == "none":
        return per_seq
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


# ---------------------------------------------------------------- pure-PyTorch lattice forward
def lattice_log_likelihood(px: Tensor, py: Tensor, boundary: Tensor) -> Tensor:
    """Total log-probability of all paths through an RNN-T lattice, per sequence: (N,).

    px (N, S, T+1): log-prob of emitting symbol s+1 from node (s, t) -> (s+1, t);
    py (N, S+1, T): log-prob of blank from node (s, t) -> (s, t+1).
    The answer for sequence n is alpha at node (S_n, T_n), where
        alpha(s, t) = logaddexp(alpha(s-1, t) + px(s-1, t), alpha(s, t-1) + py(s, t-1)).
    The recursion runs over anti-diagonals d = s + t (all nodes of one diagonal at once);
    autograd gives the gradient. Cells outside a sequence's lengths must hold log 0.
    """
    n, s1, t = py.shape
    t1 = t + 1
    device = px.device
    # Skew both into (N, D, S+1), D = S+T+1 diagonals: entry [d, s] is the arc *into* (s, d-s).
    px_in = torch.cat([px.new_full((n, 1, t1), _NEG), px], dim=1)        # [s, t] = px[s-1, t]
    py_in = torch.cat([py.new_full((n, s1, 1), _NEG), py], dim=2)        # [s, t] = py[s, t-1]
    num_diag = s1 + t1 - 1
    tt = torch.arange(num_diag, device=device).unsqueeze(0) - torch.arange(s1, device=device).unsqueeze(1)
    valid = (tt >= 0) & (tt < t1)                                         # (S+1, D)
    index = tt.clamp(0, t1 - 1).unsqueeze(0).expand(n, s1, num_diag)
    px_diag = px_in.gather(2, index).masked_fill(~valid, _NEG).transpose(1, 2)
    py_diag = py_in.gather(2, index).masked_fill(~valid, _NEG).transpose(1, 2)

    alpha = px.new_full((n, s1), _NEG)
    alpha = torch.cat([alpha.new_zeros(n, 1), alpha[:, 1:]], dim=1)       # alpha(0, 0) = 0
    alphas = [alpha]
    neg_col = px.new_full((n, 1), _NEG)
    for d in range(1, num_diag):
        from_below = torch.cat([neg_col, alphas[-1][:, :-1]], dim=1) + px_diag[:, d]
        from_left = alphas[-1] + py_diag[:, d]
        alphas.append(torch.logaddexp(from_below, from_left))
    stacked = torch.stack(alphas, dim=1)                                  # (N, D, S+1)
    s_end, t_end = boundary[:, 2], boundary[:, 3]
    rows = torch.arange(n, device=device)
    return stacked[rows, s_end + t_end, s_end]


def _mask_beyond_frames(px: Tensor, boundary: Tensor) -> Tensor:
    """Log 0 for emissions at frames t >= T_n (px is (N, S, T+1))."""
    frames = torch.arange(px.size(2), device=px.device)
    return px.masked_fill(frames.view(1, 1, -1) >= boundary[:, 3].view(-1, 1, 1), _NEG)


def reference_rnnt_loss(logits: Tensor, symbols: Tensor, boundary: Tensor, blank_id: int = 0,
                        reduction: str = "sum") -> Tensor:
    """Full-lattice RNN-T loss in pure PyTorch. logits (N, T, S+1, V), symbols (N, S)."""
    n, t, s1, _ = logits.shape
    log_probs = logits.float().log_softmax(dim=-1)
    py = log_probs[..., blank_id].transpose(1, 2)                          # (N, S+1, T)
    index = symbols.view(n, 1, s1 - 1, 1).expand(n, t, s1 - 1, 1)
    px = log_probs[:, :, : s1 - 1].gather(3, index).squeeze(3).transpose(1, 2)   # (N, S, T)
    px = _mask_beyond_frames(torch.cat([px, px.new_full((n, s1 - 1, 1), _NEG)], dim=2), boundary)
    return _reduce(-lattice_log_likelihood(px, py, boundary), reduction)


def reference_simple_loss(lm: Tensor, am: Tensor, symbols: Tensor, boundary: Tensor,
                          blank_id: int = 0, lm_only_scale: float = 0.0, am_only_scale: float = 0.0,
                          reduction: str = "sum") -> Tensor:
    """Pure-PyTorch "simple" (joint = am + lm) transducer loss with fast_rnnt's smoothing.

    lm (N, S+1, V), am (N, T, V). Smoothing interpolates the transition log-probs with an
    LM-only model (log_softmax(lm)) and an AM-only model (am with a batch unigram prior).
    """
    lm, am = lm.float(), am.float()
    n, t, v = am.shape
    s = lm.size(1) - 1
    am_max = am.max(dim=2, keepdim=True).values
    lm_max = lm.max(dim=2, keepdim=True).values
    am_p, lm_p = (am - am_max).exp(), (lm - lm_max).exp()
    tiny = torch.finfo(am.dtype).tiny
    # log sum_v exp(am[t, v] + lm[s, v]) as (N, S+1, T), without the (S, T, V) tensor
    joint_norm = (lm_p @ am_p.transpose(1, 2) + tiny).log() + lm_max + am_max.transpose(1, 2)
    lm_norm = lm.logsumexp(dim=2, keepdim=True)                            # (N, S+1, 1)
    unigram = (lm_p / lm_p.sum(dim=2, keepdim=True)).mean(dim=(0, 1)) + tiny   # (V,)
    am_norm = ((am_p @ unigram).log().unsqueeze(2) + am_max).transpose(1, 2)   # (N, 1, T)
    log_unigram = unigram.log()

    am_sym = am.transpose(1, 2).gather(1, symbols.unsqueeze(2).expand(n, s, t))   # (N, S, T)
    lm_sym = lm[:, :s].gather(2, symbols.unsqueeze(2))                          # (N, S, 1)
    px_joint = am_sym + lm_sym - joint_norm[:, :s]
    px_lm = (lm_sym - lm_norm[:, :s]).expand(n, s, t)
    px_am = am_sym + log_unigram[symbols].unsqueeze(2) - am_norm
    py_am = am[:, :, blank_id].unsqueeze(1)                                     # (N, 1, T)
    py_lm = lm[:, :, blank_id].unsqueeze(2)                                     # (N, S+1, 1)
    py_joint = py_am + py_lm - joint_norm
    py_lmonly = (py_lm - lm_norm).expand(n, s + 1, t)
    py_amonly = (py_am + log_unigram[blank_id] - am_norm).expand(n, s + 1, t)

    w = 1.0 - lm_only_scale - am_only_scale
    px = w * px_joint + lm_only_scale * px_lm + am_only_scale * px_am
    py = w * py_joint + lm_only_scale * py_lmonly + am_only_scale * py_amonly
    px = _mask_beyond_frames(torch.cat([px, px.new_full((n, s, 1), _NEG)], dim=2), boundary)
    return _reduce(-lattice_log_likelihood(px, py, boundary), reduction)


# ---------------------------------------------------------------- losses used by the model
def rnnt_log_likelihood(px: Tensor, py: Tensor, boundary: Tensor, backend: str = "auto") -> Tensor:
    """Log-probability of all alignments per sequence, (N,), from the symbol and blank log-probs
    (px (N, S, T+1) with log 0 at T, py (N, S+1, T); see lattice_log_likelihood) in fp32: fast_rnnt's
    recursion, or the pure-PyTorch one. For callers that build px/py themselves (n-best scoring)."""
    if backend == "auto":
        backend = "fast_rnnt" if HAVE_FAST_RNNT else "torch"
    with fp32_region(px):
        if backend == "fast_rnnt":
            return fast_rnnt.mutual_information_recursion(px.float(), py.float(), boundary)
        if backend == "torch":
            return lattice_log_likelihood(px.float().clamp(min=_NEG), py.float().clamp(min=_NEG), boundary)
    raise ValueError(f"backend must be 'auto', 'fast_rnnt' or 'torch', got {backend!r}")


def full_rnnt_loss(logits: Tensor, symbols: Tensor, boundary: Tensor, blank_id: int = 0,
                   reduction: str = "sum", backend: str = "auto") -> Tensor:
    """Full-lattice RNN-T loss; logits (N, T, S+1, V). backend: "auto", "fast_rnnt" or "torch"."""
    if backend == "auto":
        backend = "fast_rnnt" if HAVE_FAST_RNNT else "torch"
    if backend == "fast_rnnt":
        with fp32_region(logits):
            return fast_rnnt.rnnt_loss(logits.float(), symbols, termination_symbol=blank_id,
                                       boundary=boundary, reduction=reduction)
    if backend == "torch":
        with fp32_region(logits):
            return reference_rnnt_loss(logits, symbols, boundary, blank_id, reduction)
    raise ValueError(f"backend must be 'auto', 'fast_rnnt' or 'torch', got {backend!r}")


def prune_am_lm(am: Tensor, lm: Tensor, ranges: Tensor) -> tuple[Tensor, Tensor]:
    """The joiner's inputs on the pruned band: am (N, T, C) and lm (N, S+1, C) -> both (N, T, R, C),
    lm's row ranges[n, t, r] at [n, t, r] (ranges (N, T, R) from fast_rnnt.get_rnnt_prune_ranges).

    The same tensors as fast_rnnt.do_rnnt_pruning, but lm's rows are picked with index_select on
    (N * (S+1), C) instead of a gather along S with an index expanded over C: on CPU that gather
    and its backward copied the expanded index (2 copies of ~1 M elements a step, 5 % of the
    demo's step); index_select + index_add are ~4-10x faster here, with equal values and gradients.
    """
    n, t, r = ranges.shape
    s1, c = lm.shape[1], lm.shape[2]
    rows = (ranges + torch.arange(n, device=ranges.device).view(n, 1, 1) * s1).reshape(-1)
    lm_pruned = lm.reshape(n * s1, c).index_select(0, rows).view(n, t, r, c)
    return am.unsqueeze(2).expand(n, t, r, c), lm_pruned


def pruned_rnnt_loss(joiner: Callable[..., Tensor], encoder_out: Tensor, decoder_out: Tensor,
                     am_simple: Tensor, lm_simple: Tensor, symbols: Tensor, boundary: Tensor,
                     blank_id: int = 0, prune_range: int = 5, am_scale: float = 0.0,
                     lm_scale: float = 0.25) -> tuple[Tensor, Tensor]:
    """(simple, pruned) summed losses.

    joiner: a `Joiner` (its encoder_proj, decoder_proj and forward(project_input=False) are
    used); encoder_out (N, T, D_enc); decoder_out (N, S+1, D_dec); am_simple (N, T, V) and
    lm_simple (N, S+1, V) are the simple loss's linear projections; symbols (N, S).
    """
    if not HAVE_FAST_RNNT:
        with fp32_region(encoder_out):
            simple = reference_simple_loss(lm_simple, am_simple, symbols, boundary, blank_id,
                                           lm_only_scale=lm_scale, am_only_scale=am_scale)
        logits = joiner(encoder_out.unsqueeze(2), decoder_out.unsqueeze(1))
        with fp32_region(logits):
            return simple, reference_rnnt_loss(logits, symbols, boundary, blank_id)

    with fp32_region(encoder_out):
        simple, (px_grad, py_grad) = fast_rnnt.rnnt_loss_smoothed(
            lm=lm_simple.float(), am=am_simple.float(), symbols=symbols, termination_symbol=blank_id,
            lm_only_scale=lm_scale, am_only_scale=am_scale, boundary=boundary, reduction="sum",
            return_grad=True)
        ranges = fast_rnnt.get_rnnt_prune_ranges(px_grad=px_grad, py_grad=py_grad,
                                                 boundary=boundary, s_range=prune_range)
    am_pruned, lm_pruned = prune_am_lm(joiner.encoder_proj(encoder_out), joiner.decoder_proj(decoder_out),
                                       ranges)
    logits = joiner(am_pruned, lm_pruned, project_input=False)          # (N, T, prune_range, V)
    with fp32_region(logits):
        pruned = fast_rnnt.rnnt_loss_pruned(logits.float(), symbols, ranges, termination_symbol=blank_id,
                                            boundary=boundary, reduction="sum")
    return simple, pruned


def ctc_loss(log_probs: Tensor, frame_lens: Tensor, symbols: Tensor, target_lens: Tensor,
             blank_id: int = 0) -> Tensor:
    """Summed CTC loss; log_probs (N, T, V) log-softmax outputs, symbols (N, S) padded.

    Impossible alignments (more tokens than frames allow) give 0, not inf (zero_infinity).
    """
    with fp32_region(log_probs):
        return F.ctc_loss(log_probs.transpose(0, 1).float(), symbols, frame_lens, target_lens,
                          blank=blank_id, reduction="sum", zero_infinity=True)
