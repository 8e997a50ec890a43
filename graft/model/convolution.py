"""Conformer convolution module: pointwise GLU, depthwise conv over time, LayerNorm, SiLU, pointwise.

Usage:
    conv = ConvModule(dim=144, kernel_size=15)
    y = conv(x, key_padding_mask)     # x (N, T, 144); mask (N, T) True = padding

Padded frames are zeroed before the depthwise convolution so they cannot leak into valid
frames. LayerNorm (not BatchNorm) keeps every frame independent of the rest of the batch.
"""
from __future__ import annotations

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

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """x (N, T, D) -> (N, T, D)."""
        x = self.glu(self.pointwise_in(x))
        if key_padding_mask is not None:
            x = x * (~key_padding_mask).unsqueeze(-1).to(x.dtype)   # padding frames to 0 (masked_fill is slower)
        x = self.depthwise(x.transpose(1, 2)).transpose(1, 2)
        x = self.activation(self.norm(x))
        return self.dropout(self.pointwise_out(x))
