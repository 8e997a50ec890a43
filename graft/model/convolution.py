"""Conformer convolution module: pointwise GLU, depthwise conv over time, LayerNorm, SiLU, pointwise.

Usage:
    conv = ConvModule(dim=144, kernel_size=15)
    y = conv(x, key_padding_mask)     # x (N, T, 144); mask (N, T) True = padding

Padded frames are zeroed before the depthwise convolution so they cannot leak into valid
frames. LayerNorm (not BatchNorm) keeps every frame independent of the rest of the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graft.model.dropout import Dropout


class ConvModule(nn.Module):
    """Pointwise (GLU) -> depthwise Conv1d -> LayerNorm -> SiLU -> pointwise -> dropout."""

    def __init__(self, dim: int, kernel_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"conv kernel size must be odd, got {kernel_size}")
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.glu = nn.GLU(dim=-1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.activation = nn.SiLU()
        self.pointwise_out = nn.Linear(dim, dim)
        self.dropout = Dropout(dropout)
        self.planar = False        # True: the reference layout (transposing copies; benchmarks)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """x (N, T, D) -> (N, T, D)."""
        x = self.glu(self.pointwise_in(x))
        if key_padding_mask is not None:
            x = x * (~key_padding_mask).unsqueeze(-1).to(x.dtype)   # padding frames to 0 (masked_fill is slower)
        x = self._depthwise(x)
        x = self.activation(self.norm(x))
        return self.dropout(self.pointwise_out(x))

    def _depthwise(self, x: Tensor) -> Tensor:
        """The depthwise convolution over time of x (N, T, D), in x's own memory layout.

        x seen as (N, D, 1, T) is a channels-last 2-D image without a copy, and oneDNN's
        channels-last depthwise kernel takes it as it is, without the two transposing copies
        and the slower planar kernel of `self.depthwise(x.transpose(1, 2))` (the fp32 training
        step 1.06-1.11x as fast on an AVX2 host: bench/results/depthwise_layout.md). Outputs, losses
        and gradients are those of the planar path to the last bit, except the bias gradient,
        summed in another order (relative difference ~2e-7). The parameters stay those of
        `self.depthwise`; `planar = True` takes the planar reference path.
        """
        if self.planar:
            return self.depthwise(x.transpose(1, 2)).transpose(1, 2)
        n, t, d = x.shape
        conv = self.depthwise
        w = conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)    # (D, 1, 1, K)
        y = F.conv2d(x.unsqueeze(1).permute(0, 3, 1, 2), w, conv.bias, padding=(0, conv.padding[0]),
                     groups=d)
        return y.permute(0, 2, 3, 1).reshape(n, t, d)
