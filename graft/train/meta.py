"""A source initialization meta-learned over several languages: Reptile (Nichol, Achiam &
Schulman 2018) on language blocks.

Usage:
    sampler = LanguageBlockSampler(cuts, block=8, seed=0,                    # one language per block
                                   make_sampler=lambda part: make_train_sampler(part, 30.0, 0, 1, 0))
    reptile = Reptile(trainable_params, step_size=0.5)
    for i, batch in enumerate(loader, 1):       # ... an ordinary optimizer step per batch ...
        if i % 8 == 0:
            reptile.update()                     # params <- anchor + 0.5 (params - anchor); anchor <- params

Each block of `block` batches comes from one language (a task), so the optimizer's steps inside
a block adapt the weights to that language; at the end of the block the weights move only
`step_size` of the way from where the block started towards where it ended. Over many blocks of
different languages this follows Reptile's meta-gradient: weights from which a few steps on any
one language go far, which is what a transfer to a new language starts with. `step_size` 1 is
ordinary training on language-pure blocks.

The sampler draws each block's language at random with a probability proportional to the audio
that language has left in the epoch (seeded by seed and epoch, so a resumed run draws the same
blocks); a language that runs out inside a block hands the rest of the block to the next one
drawn. An epoch ends when every language's sampler is exhausted.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Sequence

import torch
from lhotse import CutSet

from graft.utils.errors import GraftError


def cut_language(cut) -> str | None:
    sup = cut.supervisions[0] if cut.supervisions else None
    return getattr(sup, "language", None) if sup is not None else None


def split_by_language(cuts: CutSet) -> dict[str, CutSet]:
    """{language: its cuts}; GraftError for a cut without a language or fewer than 2 languages."""
    parts: dict[str, list] = {}
    for cut in cuts:
        lang = cut_language(cut)
        if not lang:
            raise GraftError(f"--meta-block: training cut {cut.id} has no language (its supervision's "
                             "`language`): meta-learning draws its tasks by language")
        parts.setdefault(lang, []).append(cut)
    if len(parts) < 2:
        raise GraftError(f"--meta-block needs training cuts of two or more languages, these have "
                         f"{', '.join(parts) or 'none'}: combine languages first (steps/combine_languages.py)")
    return {lang: CutSet.from_cuts(own) for lang, own in sorted(parts.items())}


class LanguageBlockSampler(torch.utils.data.Sampler):
    """Batches (CutSets) in blocks of `block` from one language each (see the module docstring)."""

    def __init__(self, cuts: CutSet, block: int, make_sampler: Callable[[CutSet], Any], seed: int = 0) -> None:
        """make_sampler(CutSet) -> a lhotse sampler of one language's batches (graft.train.data's
        make_train_sampler)."""
        if block < 1:
            raise GraftError(f"--meta-block must be >= 1, got {block}")
        self.block, self.seed, self.epoch = block, seed, 0
        self.parts = split_by_language(cuts)
        self.samplers = {lang: make_sampler(part) for lang, part in self.parts.items()}
        self.seconds = {lang: sum(c.duration for c in part) for lang, part in self.parts.items()}

    @property
    def languages(self) -> list[str]:
        return list(self.parts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for s in self.samplers.values():
            s.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "block": self.block, "seed": self.seed,
                "samplers": {lang: s.state_dict() for lang, s in self.samplers.items()}}

    def __iter__(self) -> Iterator[CutSet]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        its = {lang: iter(s) for lang, s in self.samplers.items()}   # lhotse samplers restart on iter()
        left = dict(self.seconds)
        while its:
            langs = sorted(its)
            lang = rng.choices(langs, weights=[max(left[x], 1e-6) for x in langs])[0]
            n = 0
            while n < self.block and its:
                try:
                    batch = next(its[lang])
                except StopIteration:
                    del its[lang]
                    if not its:
                        return
                    langs = sorted(its)
                    lang = rng.choices(langs, weights=[max(left[x], 1e-6) for x in langs])[0]
                    continue
                left[lang] -= sum(c.duration for c in batch)
                n += 1
                yield batch


class Reptile:
    """Reptile's outer step over `params` (see the module docstring)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], step_size: float) -> None:
        if not 0 < step_size <= 1:
            raise GraftError(f"--meta-step must be in (0, 1], got {step_size}")
        self.params = list(params)
        self.step_size = step_size
        self.anchor = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """params <- anchor + step_size (params - anchor); the anchor moves there too."""
        for p, a in zip(self.params, self.anchor):
            p.sub_(a).mul_(self.step_size).add_(a)
            a.copy_(p)

    def state_dict(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "anchor": [a.detach().cpu().clone() for a in self.anchor]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        anchor = state["anchor"]
        if len(anchor) != len(self.anchor) or any(a.shape != b.shape for a, b in zip(anchor, self.anchor)):
            raise GraftError("the checkpoint's Reptile anchor does not fit the model's trainable parameters")
        for a, b in zip(self.anchor, anchor):
            a.copy_(b)
