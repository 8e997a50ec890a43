"""The graphs sherpa-onnx runs, as thin nn.Modules around a graft Transducer.

sherpa-onnx's offline transducer (`OfflineRecognizer.from_transducer`) takes three models:
    encoder  x (N, T, 80) float, x_lens (N,) int64 -> encoder_out (N, T', J), encoder_out_lens (N,)
             (encoder_out is already through the joiner's encoder projection)
    decoder  y (N, context_size) int64 -> decoder_out (N, J)   (through the decoder projection)
    joiner   encoder_out (N, J), decoder_out (N, J) -> logit (N, V)
and its CTC model (`from_zipformer_ctc`, also with an HLG graph):
    ctc      x (N, T, 80), x_lens (N,) -> log_probs (N, T', V), log_probs_len (N,)
The input features are raw 80-dim fbank; graft's per-utterance normalization is inside the
encoder, so it travels with the model. Every module is put in eval mode here, and `export`
keeps it there (torch.onnx.export restores the mode the wrapper had).

Usage:
    enc = EncoderModule(model); out, lens = enc(feats, feat_lens)
    names = ONNX_NAMES["encoder"]          # (input names, output names)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from graft.model.transducer import Transducer

ONNX_NAMES: dict[str, tuple[list[str], list[str]]] = {
    "encoder": (["x", "x_lens"], ["encoder_out", "encoder_out_lens"]),
    "decoder": (["y"], ["decoder_out"]),
    "joiner": (["encoder_out", "decoder_out"], ["logit"]),
    "ctc": (["x", "x_lens"], ["log_probs", "log_probs_len"]),
}

# Dynamic axes per model: N (batch) and T (frames) vary; dims of features/vocabulary do not.
DYNAMIC_AXES: dict[str, dict[str, dict[int, str]]] = {
    "encoder": {"x": {0: "N", 1: "T"}, "x_lens": {0: "N"}, "encoder_out": {0: "N", 1: "T_out"},
                "encoder_out_lens": {0: "N"}},
    "decoder": {"y": {0: "N"}, "decoder_out": {0: "N"}},
    "joiner": {"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}},
    "ctc": {"x": {0: "N", 1: "T"}, "x_lens": {0: "N"}, "log_probs": {0: "N", 1: "T_out"},
            "log_probs_len": {0: "N"}},
}


class EncoderModule(nn.Module):
    """Encoder + the joiner's encoder projection."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.encoder_proj = model.joiner.encoder_proj
        self.eval()

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        out, lens = self.encoder(x, x_lens)
        return self.encoder_proj(out), lens.to(torch.int64)


class DecoderModule(nn.Module):
    """Stateless decoder on the last context_size tokens + the joiner's decoder projection."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.decoder_proj = model.joiner.decoder_proj
        self.eval()

    def forward(self, y: Tensor) -> Tensor:
        out = self.decoder(y, need_pad=False)             # (N, 1, D_dec)
        return self.decoder_proj(out.squeeze(1))


class JoinerModule(nn.Module):
    """The joiner on projected inputs: output_linear(tanh(encoder_out + decoder_out))."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.joiner = model.joiner
        self.eval()

    def forward(self, encoder_out: Tensor, decoder_out: Tensor) -> Tensor:
        return self.joiner(encoder_out, decoder_out, project_input=False)


class CtcModule(nn.Module):
    """Encoder + CTC head: log-probs over the vocabulary per encoder frame."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.ctc_output = model.ctc_output
        self.eval()

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        out, lens = self.encoder(x, x_lens)
        return self.ctc_output(out), lens.to(torch.int64)


def export_modules(model: Transducer) -> dict[str, nn.Module]:
    """{"encoder", "decoder", "joiner", "ctc"} -> its export module (eval mode)."""
    return {"encoder": EncoderModule(model), "decoder": DecoderModule(model),
            "joiner": JoinerModule(model), "ctc": CtcModule(model)}


def example_inputs(name: str, model: Transducer, frames: int = 400) -> tuple[Tensor, ...]:
    """Inputs to trace `name` with: a batch of two lengths, so no size is baked in as 1."""
    feat_dim = model.encoder.feature_dim
    if name in ("encoder", "ctc"):
        g = torch.Generator().manual_seed(0)
        return (torch.randn(2, frames, feat_dim, generator=g), torch.tensor([frames, frames - 37]))
    joiner_dim = model.joiner.output_linear.in_features
    if name == "decoder":
        return (torch.tensor([[0] * model.decoder.context_size, [1] * model.decoder.context_size]),)
    if name == "joiner":
        return (torch.randn(2, joiner_dim), torch.randn(2, joiner_dim))
    raise ValueError(f"unknown export module {name!r}")
