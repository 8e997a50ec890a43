"""Token timestamps from a CTC forced alignment (Viterbi) of a known token sequence.

Graft's own searches return tokens without frames; the CTC head's log-probs place them:
the best CTC path that spells exactly `tokens` gives each token its first frame.

Usage:
    frames = ctc_align(log_probs, tokens, blank_id=0)     # log_probs (T, V) numpy; one frame per token
"""
from __future__ import annotations

import numpy as np


def ctc_align(log_probs: np.ndarray, tokens: list[int], blank_id: int = 0) -> list[int]:
    """First frame of each token on the best CTC alignment; evenly spread if none fits in T frames."""
    t_max = log_probs.shape[0]
    u = len(tokens)
    if u == 0:
        return []
    ext = np.full(2 * u + 1, blank_id, dtype=np.int64)
    ext[1::2] = tokens
    s_max = len(ext)
    skip = np.zeros(s_max, dtype=bool)                   # s may come from s-2
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    neg = -np.inf
    alpha = np.full(s_max, neg)
    alpha[0] = log_probs[0, blank_id]
    alpha[1] = log_probs[0, ext[1]]
    back = np.zeros((t_max, s_max), dtype=np.int8)
    for t in range(1, t_max):
        stay = alpha
        one = np.concatenate([[neg], alpha[:-1]])
        two = np.where(skip, np.concatenate([[neg, neg], alpha[:-2]]), neg)
        cand = np.stack([stay, one, two])
        step = cand.argmax(axis=0)
        alpha = cand[step, np.arange(s_max)] + log_probs[t, ext]
        back[t] = step
    ends = [s_max - 1, s_max - 2]
    s = max(ends, key=lambda k: alpha[k])
    if not np.isfinite(alpha[s]):
        return [int(i * t_max / u) for i in range(u)]
    path = np.empty(t_max, dtype=np.int64)
    for t in range(t_max - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    first = [-1] * u
    for t, s in enumerate(path.tolist()):
        if s % 2 == 1 and first[s // 2] < 0:
            first[s // 2] = t
    return first
