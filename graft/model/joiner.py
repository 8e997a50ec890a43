"""Transducer joiner: project encoder and decoder outputs, add, tanh, Linear to the vocabulary.

Usage:
    joiner = Joiner(encoder_dim=144, decoder_dim=256, joiner_dim=256, vocab_size=500)
    logits = joiner(encoder_out, decoder_out)            # broadcasting shapes (..., D_enc/D_dec)
    enc_p, dec_p = joiner.encoder_proj(enc), joiner.decoder_proj(dec)    # project once ...
    logits = joiner(enc_p, dec_p, project_input=False)                   # ... then join
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Joiner(nn.Module):
    """`output_linear(tanh(encoder_proj(enc) + decoder_proj(dec)))`."""

    def __init__(self, encoder_dim: int, decoder_dim: int, joiner_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, joiner_dim)
        self.decoder_proj = nn.Linear(decoder_dim, joiner_dim)
        self.output_linear = nn.Linear(joiner_dim, vocab_size)

    def forward(self, encoder_out: Tensor, decoder_out: Tensor, project_input: bool = True) -> Tensor:
        """Logits (..., vocab_size); inputs broadcast against each other."""
        if project_input:
            encoder_out = self.encoder_proj(encoder_out)
            decoder_out = self.decoder_proj(decoder_out)
        return self.output_linear(torch.tanh(encoder_out + decoder_out))
