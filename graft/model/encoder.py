"""Conformer encoder: conv front end (`embed`), then `layers[i]` of macaron Conformer blocks.

Usage:
    enc = ConformerEncoder(feature_dim=80, dim=144, num_layers=6, num_heads=4, ff_dim=576)
    out, out_lens = enc(features, feature_lens)     # (N, T, 80) -> (N, T', 144), (N,)

Parameter names are `embed.*`, `layers.<i>.{ff_macaron,self_attn,conv,ff,norm_*}.*` and
(norm_style "pre") `norm_out.*`, so transfer learning can select layers by name. Each block
(pre-LayerNorm, residual):
    x += 1/2 FF(x); x += MHSA(x); x += Conv(x); x += 1/2 FF(x); [x = LayerNorm(x)]
where the last LayerNorm is per block (norm_style "conformer") or once after the last block
(norm_style "pre", see NORM_STYLES).
Encoder outputs at padded frames are set to zero.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from graft.model.attention import AbsPositionalEncoding, RelPositionalEncoding, SelfAttention
from graft.model.convolution import ConvModule
from graft.model.dropout import Dropout
from graft.model.subsampling import Conv2dSubsampling

# "conformer": every block ends with its own LayerNorm (`layers.<i>.norm_final`), as in the
# Conformer paper. "pre": pure pre-LayerNorm blocks (an identity path from the front end to
# the output) and one LayerNorm at the end (`norm_out`). On the 2 h demo data (small preset,
# character targets, 20 s batches) "pre" left the CTC all-blank plateau after ~200-300 steps;
# "conformer" had not after 400-450 (dev pruned loss per frame at step 400: 0.81 vs 1.61).
NORM_STYLES = ("conformer", "pre")


def make_pad_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(N,) lengths -> (N, max_len) bool, True at padded positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


class FeedForward(nn.Module):
    """Linear -> SiLU -> dropout -> Linear -> dropout."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.SiLU(), Dropout(dropout),
                                 nn.Linear(hidden_dim, dim), Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def normalize_per_utterance(features: Tensor, lens: Tensor, eps: float = 1e-5) -> Tensor:
    """Mean 0, variance 1 per utterance and feature dimension, over the valid frames.

    Raw log-mel fbank has a large offset (mean about -13, std 9 here) that dominated the front
    end's output: without this, the demo's encoder learned to ignore its input (CTC stuck at
    the all-blank plateau). Padded frames are set to 0 (the normalized mean).
    """
    valid = (~make_pad_mask(lens, features.size(1))).unsqueeze(-1).to(features.dtype)   # (N, T, 1)
    count = valid.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (features * valid).sum(dim=1, keepdim=True) / count
    var = (((features - mean) * valid) ** 2).sum(dim=1, keepdim=True) / count
    return (features - mean) / (var + eps).sqrt() * valid


class ConformerLayer(nn.Module):
    """One macaron Conformer block (see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, conv_kernel: int,
                 dropout: float = 0.1, relative: bool = True, final_norm: bool = True) -> None:
        super().__init__()
        self.ff_macaron = FeedForward(dim, ff_dim, dropout)
        self.self_attn = SelfAttention(dim, num_heads, dropout, relative=relative)
        self.conv = ConvModule(dim, conv_kernel, dropout)
        self.ff = FeedForward(dim, ff_dim, dropout)
        self.norm_ff_macaron = nn.LayerNorm(dim)
        self.norm_attn = nn.LayerNorm(dim)
        self.norm_conv = nn.LayerNorm(dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.norm_final = nn.LayerNorm(dim) if final_norm else None
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, pos_emb: Tensor | None, key_padding_mask: Tensor | None) -> Tensor:
        """x (N, T, D); pos_emb (2T-1, D) or None; key_padding_mask (N, T) True = padding."""
        x = x + 0.5 * self.ff_macaron(self.norm_ff_macaron(x))
        x = x + self.dropout(self.self_attn(self.norm_attn(x), pos_emb, key_padding_mask))
        x = x + self.conv(self.norm_conv(x), key_padding_mask)
        x = x + 0.5 * self.ff(self.norm_ff(x))
        return x if self.norm_final is None else self.norm_final(x)


def share_dropout_over_time(encoder: nn.Module) -> None:
    """Every Dropout of `encoder` draws one mask for all frames: (N, T, D) activations share it
    over T; attention weights (N, H, T_query, T_key) over the queries (a dropped key is dropped
    for every query of that head)."""
    for m in encoder.modules():
        if isinstance(m, Dropout):
            m.shared_dim = 1
    for m in encoder.modules():
        if isinstance(m, SelfAttention):
            m.dropout.shared_dim = 2


class ConformerEncoder(nn.Module):
    """Front end `embed` + positional encoding + `layers` (nn.ModuleList of ConformerLayer)."""

    def __init__(self, feature_dim: int = 80, dim: int = 144, num_layers: int = 6,
                 num_heads: int = 4, ff_dim: int = 576, conv_kernel: int = 15,
                 subsampling_factor: int = 4, embed_channels: int = 32, dropout: float = 0.1,
                 pos_enc: str = "rel", input_norm: str = "utterance",
                 norm_style: str = "conformer", dropout_shared_time: bool = False) -> None:
        super().__init__()
        self.input_norm = input_norm
        if pos_enc not in ("rel", "abs"):
            raise ValueError(f"pos_enc must be 'rel' or 'abs', got {pos_enc!r}")
        if norm_style not in NORM_STYLES:
            raise ValueError(f"norm_style must be one of {NORM_STYLES}, got {norm_style!r}")
        self.norm_style = norm_style
        self.feature_dim = feature_dim
        self.output_dim = dim
        self.subsampling_factor = subsampling_factor
        self.relative = pos_enc == "rel"
        self.embed = Conv2dSubsampling(feature_dim, dim, embed_channels, subsampling_factor, dropout)
        self.pos_enc = RelPositionalEncoding(dim) if self.relative else AbsPositionalEncoding(dim)
        self.layers = nn.ModuleList(
            ConformerLayer(dim, num_heads, ff_dim, conv_kernel, dropout, self.relative,
                           final_norm=norm_style == "conformer")
            for _ in range(num_layers))
        self.norm_out = nn.LayerNorm(dim) if norm_style == "pre" else None
        if dropout_shared_time:
            share_dropout_over_time(self)

    def forward(self, features: Tensor, feature_lens: Tensor) -> tuple[Tensor, Tensor]:
        """(N, T, feature_dim) fbank and (N,) lengths -> (N, T', dim) and (N,) lengths."""
        if self.input_norm == "utterance":
            features = normalize_per_utterance(features, feature_lens)
        x, lens = self.embed(features, feature_lens)
        mask = make_pad_mask(lens, x.size(1))
        if self.relative:
            pos_emb = self.pos_enc(x.size(1))
        else:
            x, pos_emb = self.pos_enc(x), None
        for layer in self.layers:
            x = layer(x, pos_emb, mask)
        if self.norm_out is not None:
            x = self.norm_out(x)
        return x * (~mask).unsqueeze(-1).to(x.dtype), lens   # padding frames to 0
