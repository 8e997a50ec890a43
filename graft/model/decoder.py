"""Stateless transducer decoder: embeddings of the last `context_size` tokens, mixed by a
depthwise Conv1d, then ReLU.

Usage:
    dec = StatelessDecoder(vocab_size=500, dim=256, blank_id=0, context_size=2)
    out = dec(sos_y)                        # training: (N, U) -> (N, U, 256), left-padded
    out = dec(last_tokens, need_pad=False)  # search: (N, context_size) -> (N, 1, 256)

The blank embedding is fixed at zero (padding_idx), so left padding with zeros is the same
as a context of blanks, which is how search starts. Negative token ids are treated as blank.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class StatelessDecoder(nn.Module):
    """Embedding (named `embedding`) + depthwise context conv (named `conv`) + ReLU."""

    def __init__(self, vocab_size: int, dim: int, blank_id: int = 0, context_size: int = 2) -> None:
        super().__init__()
        if context_size < 1:
            raise ValueError(f"context_size must be >= 1, got {context_size}")
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.context_size = context_size
        self.output_dim = dim
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=blank_id)
        self.conv = (nn.Conv1d(dim, dim, context_size, groups=dim, bias=False)
                     if context_size > 1 else None)

    def forward(self, y: Tensor, need_pad: bool = True) -> Tensor:
        """y (N, U) token ids -> (N, U, dim); with need_pad=False, U' = U - context_size + 1."""
        y = y.masked_fill(y < 0, self.blank_id)
        x = self.embedding(y)
        if self.conv is not None:
            x = x.transpose(1, 2)                                   # (N, dim, U)
            if need_pad:
                x = F.pad(x, (self.context_size - 1, 0))
            else:
                assert y.size(1) >= self.context_size, y.shape
            x = self.conv(x).transpose(1, 2)
        return F.relu(x)
