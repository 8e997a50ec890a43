"""Domain-adversarial training: a classifier learns to tell a cut's domain (its speaker, its
language) from the encoder output, and the encoder, through a gradient-reversal layer, learns to
hide it (Ganin & Lempitsky 2015; speaker-invariant training, Meng et al. 2018).

Usage:
    domains = DomainLabels.from_cuts(train_cuts, "speaker")         # or "language", or a regex group
    adversary = DomainAdversary(encoder_dim=144, num_domains=len(domains.names))  # pool="utterance": per cut
    labels = domains.labels(batch["cut_ids"])                       # (N,) long
    loss_adv, correct = adversary(encoder_out, encoder_lens, labels, reversal=reversal_scale(step, 1000, 0.5))
    (asr_loss + loss_adv).backward()

The classifier (two Linear layers on every valid encoder frame) minimizes its cross-entropy; the
encoder receives that gradient multiplied by -reversal, so it is pushed to make frames from which
the domain cannot be read. `reversal_scale` ramps the reversal from 0 to its weight with Ganin's
2 / (1 + exp(-10 p)) - 1 over the first ramp_steps batches, so the classifier learns first. The
loss is the mean over valid frames (like the loop's per-frame ASR loss); `correct` is the number of
frames classified right (detached), for the log.

With pool="utterance" the classifier reads each cut's mean and standard deviation of its valid
frames (statistics pooling, as an x-vector extractor does) and the loss is the mean over cuts:
a voice is told from a whole utterance far better than from one frame (the demo's probe: 84 %
of test utterances against 44 % of frames), so this is the adversary of what an utterance gives away.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from graft.utils.errors import GraftError

KEYS = ("speaker", "language")
POOLS = ("frame", "utterance")   # what the classifier reads (--adversarial-pool)
_DUP = re.compile(r"_dup\d+$")   # lhotse's suffix of a cut repeated to give every rank as many


class _GradReverse(torch.autograd.Function):
    """Identity forward; gradient times -scale backward."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


def grad_reverse(x: Tensor, scale: float) -> Tensor:
    """x unchanged; in backward its gradient is multiplied by -scale."""
    return _GradReverse.apply(x, scale)


def reversal_scale(step: int, ramp_steps: int, weight: float) -> float:
    """Ganin's ramp: weight * (2 / (1 + exp(-10 p)) - 1), p = step / ramp_steps (1 from there on)."""
    if ramp_steps <= 0:
        return weight
    p = min(1.0, step / ramp_steps)
    return weight * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


def parse_adversarial(spec: str | None) -> tuple[str, str | None] | None:
    """'speaker', 'language' or 'speaker:REGEX' (the domain is REGEX's first group of the
    speaker, e.g. 'speaker:^[a-z]+-([a-z]+)-' for the demo's TTS engine) -> (key, regex); None or
    '' -> None (off). GraftError for anything else."""
    if spec is None or not spec.strip() or spec.strip().lower() in ("none", "null", "off"):
        return None
    key, _, pattern = spec.strip().partition(":")
    if key not in KEYS:
        raise GraftError(f"--adversarial {spec!r}: the domain must be one of {', '.join(KEYS)} "
                         f"(optionally KEY:REGEX with one group), e.g. --adversarial speaker")
    if not pattern:
        return key, None
    try:
        groups = re.compile(pattern).groups
    except re.error as e:
        raise GraftError(f"--adversarial {spec!r}: {pattern!r} is not a regular expression ({e})") from None
    if groups < 1:
        raise GraftError(f"--adversarial {spec!r}: the regular expression needs a group, e.g. "
                         f"'{key}:^[a-z]+-([a-z]+)-'")
    return key, pattern


@dataclass
class DomainLabels:
    """Each training cut's domain index; the sorted domain names (stored in checkpoints)."""

    spec: str
    names: list[str]
    by_cut: dict[str, int]

    @staticmethod
    def domain_of(cut, key: str, pattern: str | None) -> str | None:
        sup = cut.supervisions[0] if cut.supervisions else None
        value = getattr(sup, key, None) if sup is not None else None
        if value is None or pattern is None:
            return value
        m = re.search(pattern, value)
        return m.group(1) if m else None

    @classmethod
    def from_cuts(cls, cuts: Iterable, spec: str) -> "DomainLabels":
        """Labels of every cut; GraftError naming a cut without one, or for fewer than 2 domains."""
        parsed = parse_adversarial(spec)
        if parsed is None:
            raise GraftError("domain labels need --adversarial KEY")
        key, pattern = parsed
        values: dict[str, str] = {}
        for cut in cuts:
            v = cls.domain_of(cut, key, pattern)
            if v is None:
                what = f"no {key}" if pattern is None else f"a {key} that {pattern!r} does not match"
                raise GraftError(f"--adversarial {spec}: training cut {cut.id} has {what}: every cut needs "
                                 f"a domain (its supervision's {key})")
            values[cut.id] = v
        names = sorted(set(values.values()))
        if len(names) < 2:
            raise GraftError(f"--adversarial {spec}: the training cuts have {len(names)} domain(s) "
                             f"({', '.join(names)}); adversarial training needs at least two")
        index = {n: i for i, n in enumerate(names)}
        return cls(spec, names, {cid: index[v] for cid, v in values.items()})

    def labels(self, cut_ids: Sequence[str]) -> Tensor:
        """(N,) domain indices; a cut the DDP sampler repeated to even out the ranks (id + "_dup<k>")
        has its original's domain."""
        return torch.tensor([self.by_cut[c] if c in self.by_cut else self.by_cut[_DUP.sub("", c)]
                             for c in cut_ids], dtype=torch.long)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.names, 0)
        for i in self.by_cut.values():
            out[self.names[i]] += 1
        return out


class DomainAdversary(nn.Module):
    """Domain classifier behind a gradient-reversal layer, of every frame or of each utterance's
    pooled statistics (see the module docstring)."""

    def __init__(self, encoder_dim: int, num_domains: int, hidden_dim: int = 256, pool: str = "frame") -> None:
        super().__init__()
        if pool not in POOLS:
            raise GraftError(f"adversary pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.pool = pool
        in_dim = encoder_dim * (2 if pool == "utterance" else 1)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_domains))

    def forward(self, encoder_out: Tensor, encoder_lens: Tensor, labels: Tensor,
                reversal: float) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy (fp32) over the valid frames, or over the cuts with pool="utterance",
        and the number of frames (cuts) classified right."""
        n, t, _ = encoder_out.shape
        valid = torch.arange(t, device=encoder_out.device).unsqueeze(0) < encoder_lens.unsqueeze(1)
        x = grad_reverse(encoder_out, reversal)
        labels = labels.to(encoder_out.device)
        if self.pool == "utterance":
            mask = valid.unsqueeze(-1).to(x.dtype)                           # (N, T, 1)
            count = mask.sum(1).clamp(min=1.0)
            mean = (x * mask).sum(1) / count
            var = (((x - mean.unsqueeze(1)) * mask) ** 2).sum(1) / count
            inputs, targets = torch.cat([mean, (var + 1e-5).sqrt()], dim=-1), labels     # (N, 2D), (N,)
        else:
            inputs, targets = x[valid], labels.unsqueeze(1).expand(n, t)[valid]           # (F, D), (F,)
        logits = self.net(inputs).float()
        loss = nn.functional.cross_entropy(logits, targets)
        correct = (logits.detach().argmax(-1) == targets).sum()
        return loss, correct
