"""The transducer: Conformer encoder + stateless decoder + joiner, trained with pruned RNN-T
(+ optional CTC on the encoder).

Usage:
    model = build_model(load_model_conf("small"), vocab_size=500)     # graft.model.build
    loss, info = model(features, feature_lens, targets, prune_range=5,
                       simple_loss_scale=0.5, pruned_loss_scale=1.0, ctc_weight=0.1)
    loss.backward()     # info: "simple", "pruned", "ctc" (summed, detached), "frames"

Besides the interface modules (`encoder`, `decoder`, `joiner`, `ctc_output`) the model owns
`simple_am_proj` / `simple_lm_proj`, the Linear layers of the simple loss. Parameters whose
shape depends on the vocabulary are listed in `VOCAB_DEPENDENT` (for transfer learning).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from graft.model.decoder import StatelessDecoder
from graft.model.dropout import Dropout
from graft.model.encoder import ConformerEncoder
from graft.model.joiner import Joiner
from graft.model.loss import ctc_loss, make_boundary, pad_targets, pruned_rnnt_loss
from graft.model.subsampling import min_input_frames

# Name prefixes of the parameters whose shape depends on the output vocabulary.
VOCAB_DEPENDENT = ("decoder.embedding.", "joiner.output_linear.", "ctc_output.1.",
                   "simple_am_proj.", "simple_lm_proj.")


class LogSoftmaxFp32(nn.LogSoftmax):
    """nn.LogSoftmax computed in fp32 whatever the input dtype (the CTC head under bf16 autocast)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.log_softmax(x.float(), dim=self.dim)


class Transducer(nn.Module):
    """Encoder/decoder/joiner transducer with a CTC head (`ctc_output`: Dropout, Linear, LogSoftmax)."""

    def __init__(self, encoder: ConformerEncoder, decoder: StatelessDecoder, joiner: Joiner,
                 vocab_size: int, blank_id: int = 0, ctc_dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.joiner = joiner
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.ctc_output = nn.Sequential(Dropout(ctc_dropout),
                                        nn.Linear(encoder.output_dim, vocab_size),
                                        LogSoftmaxFp32(dim=-1))
        self.simple_am_proj = nn.Linear(encoder.output_dim, vocab_size)
        self.simple_lm_proj = nn.Linear(decoder.output_dim, vocab_size)

    def forward(self, features: Tensor, feature_lens: Tensor, targets: list[list[int]],
                prune_range: int = 5, am_scale: float = 0.0, lm_scale: float = 0.25,
                simple_loss_scale: float = 0.5, pruned_loss_scale: float = 1.0,
                ctc_weight: float = 0.0, keep_encoder_out: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss summed over the batch, and the separate summed losses.

        features (N, T, feature_dim), feature_lens (N,), targets: N lists of token ids
        (without blank). Returns (simple_loss_scale*simple + pruned_loss_scale*pruned +
        ctc_weight*ctc, {"simple", "pruned", "ctc", "frames"}). The CTC loss is only
        computed when ctc_weight > 0 (else reported as 0). Utterances with no tokens add
        nothing to the transducer losses (fast_rnnt needs at least one symbol). keep_encoder_out:
        info also holds "encoder_out" (N, T', D, in the graph: a loss on it trains the encoder)
        and "encoder_lens" (graft.train.adversarial uses them), and with ctc_weight > 0
        "ctc_log_probs" (N, T', V; graft.train.distill).
        """
        if len(targets) != features.size(0):
            raise ValueError(f"{len(targets)} targets for a batch of {features.size(0)}")
        encoder_out, encoder_lens = self.encoder(features, feature_lens)
        if int(encoder_lens.min()) < 1:
            need = min_input_frames(self.encoder.subsampling_factor)
            raise ValueError(f"an utterance has fewer than {need} feature frames "
                             f"(lengths {feature_lens.tolist()}): filter out such short cuts")
        symbols, target_lens = pad_targets(targets, pad_id=self.blank_id)
        symbols, target_lens = symbols.to(features.device), target_lens.to(features.device)

        keep = target_lens > 0
        if bool(keep.all()):
            simple, pruned = self._transducer_losses(encoder_out, encoder_lens, symbols,
                                                     target_lens, prune_range, am_scale, lm_scale)
        elif bool(keep.any()):
            simple, pruned = self._transducer_losses(encoder_out[keep], encoder_lens[keep],
                                                     symbols[keep], target_lens[keep],
                                                     prune_range, am_scale, lm_scale)
        else:
            simple = pruned = encoder_out.sum() * 0.0

        if ctc_weight > 0:
            log_probs = self.ctc_output(encoder_out)
            ctc = ctc_loss(log_probs, encoder_lens, symbols, target_lens, self.blank_id)
        else:
            ctc = torch.zeros((), device=encoder_out.device)
        total = simple_loss_scale * simple + pruned_loss_scale * pruned
        if ctc_weight > 0:
            total = total + ctc_weight * ctc
        info = {"simple": simple.detach(), "pruned": pruned.detach(), "ctc": ctc.detach(),
                "frames": encoder_lens.sum().detach()}
        if keep_encoder_out:
            info.update(encoder_out=encoder_out, encoder_lens=encoder_lens)
            if ctc_weight > 0:
                info["ctc_log_probs"] = log_probs
        return total, info

    def _transducer_losses(self, encoder_out: Tensor, encoder_lens: Tensor, symbols: Tensor,
                           target_lens: Tensor, prune_range: int, am_scale: float,
                           lm_scale: float) -> tuple[Tensor, Tensor]:
        symbols = symbols[:, : int(target_lens.max())]
        blank_col = symbols.new_full((symbols.size(0), 1), self.blank_id)
        decoder_out = self.decoder(torch.cat([blank_col, symbols], dim=1))     # (N, S+1, D_dec)
        boundary = make_boundary(target_lens, encoder_lens)
        return pruned_rnnt_loss(self.joiner, encoder_out, decoder_out,
                                self.simple_am_proj(encoder_out), self.simple_lm_proj(decoder_out),
                                symbols, boundary, self.blank_id, prune_range, am_scale, lm_scale)
