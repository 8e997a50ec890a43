"""Convolutional front end: 100 Hz fbank frames in, 1/4 (or 1/6, 1/8) rate encoder frames out.

Usage:
    embed = Conv2dSubsampling(feature_dim=80, out_dim=144, channels=32, factor=4)
    x, x_lens = embed(features, feature_lens)     # (N, T, 80) -> (N, T', 144)
    subsampled_lengths(torch.tensor([100]), 4)    # tensor([24])

The time axis is never padded, so an output frame inside an utterance's length only sees
input frames inside that length: padding a batch does not change the valid outputs.
Output length per layer is `(L - kernel) // stride + 1`; for factor 4 that is
`((L - 1) // 2 - 1) // 2`.
"""
from __future__ import annotations

from torch import Tensor, nn

from graft.model.dropout import Dropout

# (time kernel, time stride) per conv layer; frequency always uses kernel 3, stride 2.
_TIME_LAYERS: dict[int, list[tuple[int, int]]] = {
    4: [(3, 2), (3, 2)],
    6: [(3, 2), (5, 3)],
    8: [(3, 2), (3, 2), (3, 2)],
}
_FREQ_KERNEL, _FREQ_STRIDE = 3, 2

SUBSAMPLING_FACTORS = tuple(sorted(_TIME_LAYERS))


def _out_len(length: Tensor | int, kernel: int, stride: int) -> Tensor | int:
    return (length - kernel) // stride + 1


def subsampled_lengths(lengths: Tensor, factor: int) -> Tensor:
    """Number of encoder frames for `lengths` input frames (non-positive when too short)."""
    for kernel, stride in _TIME_LAYERS[factor]:
        lengths = _out_len(lengths, kernel, stride)
    return lengths


def min_input_frames(factor: int) -> int:
    """The fewest input frames that give one output frame."""
    n = 1
    for kernel, stride in reversed(_TIME_LAYERS[factor]):
        n = (n - 1) * stride + kernel
    return n


class Conv2dSubsampling(nn.Module):
    """Stacked strided Conv2d + SiLU over (time, frequency), then a Linear to `out_dim`."""

    def __init__(self, feature_dim: int, out_dim: int, channels: int, factor: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if factor not in _TIME_LAYERS:
            raise ValueError(f"subsampling factor must be one of {SUBSAMPLING_FACTORS}, got {factor}")
        self.factor = factor
        layers: list[nn.Module] = []
        in_ch, freq = 1, feature_dim
        for kernel, stride in _TIME_LAYERS[factor]:
            layers += [nn.Conv2d(in_ch, channels, (kernel, _FREQ_KERNEL), (stride, _FREQ_STRIDE)),
                       nn.SiLU()]
            in_ch = channels
            freq = _out_len(freq, _FREQ_KERNEL, _FREQ_STRIDE)
        if freq < 1:
            raise ValueError(f"feature_dim {feature_dim} is too small for this front end")
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(channels * freq, out_dim)
        self.norm = nn.LayerNorm(out_dim)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        """(N, T, F) features and (N,) lengths -> (N, T', out_dim) and (N,) lengths T'."""
        x = self.conv(x.unsqueeze(1))                  # (N, C, T', F')
        n, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(n, t, c * f))
        x = self.dropout(self.norm(x))
        lens = subsampled_lengths(x_lens, self.factor).clamp(min=0)
        return x, lens
