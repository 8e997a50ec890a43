"""Knowledge distillation from one or more trained teachers into the model being trained: the
student's CTC posteriors are pulled towards the teachers' (their mean, for an ensemble) on every
valid encoder frame, beside the usual losses (Hinton et al. 2015; frame-level CTC distillation as
in Takashima et al. 2018).

Usage:
    teacher = Teacher.load(["exp/cs_x_a", "exp/cs_x_b"], avg=2, lang=lang)     # same lang dir
    t_logp, t_lens = teacher.log_probs(features, feature_lens)                   # no gradients
    kd = distill_loss(t_logp, model.ctc_output(encoder_out), encoder_lens)      # mean KL per frame
    (asr_loss + 0.5 * kd).backward()

The teachers must share the student's lang dir (the same token ids: its fingerprint is checked)
and its frame rate (the same number of encoder frames; checked on the first batch). They run in
eval mode without gradients on the training batch as the student sees it (with its
augmentation), are not trained and are not in the checkpoint: the run's options name them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from graft.lang.langdir import LangDir
from graft.utils.errors import GraftError


def parse_teachers(spec: str | None) -> list[str]:
    """'exp/a exp/b' -> ['exp/a', 'exp/b']; None or '' -> [] (off)."""
    return [] if spec is None else spec.split()


@dataclass
class Teacher:
    """One or more frozen models whose mean CTC posteriors the student learns from."""

    models: list[nn.Module]
    infos: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, exp_dirs: Sequence[str | Path], avg: int, lang: LangDir,
             device: str | torch.device = "cpu") -> "Teacher":
        """Each teacher's last epoch averaged over `avg` epochs (at most all of them), as stage 6."""
        from graft.train.checkpoint import epoch_checkpoints, load_model_for_decoding

        models, infos = [], []
        for exp in exp_dirs:
            epochs = epoch_checkpoints(exp) if Path(exp).is_dir() else {}
            if not epochs:
                raise GraftError(f"--distill-from {exp}: no epoch-N.pt there: train the teacher first")
            model, info = load_model_for_decoding(exp, avg=min(avg, max(epochs)), device=device)
            if info["vocab_size"] != lang.vocab_size:
                raise GraftError(f"--distill-from {exp}: the teacher has {info['vocab_size']} outputs, "
                                 f"{lang.path} has {lang.vocab_size} tokens: a teacher needs the student's lang dir")
            lang.check_fingerprint(info.get("fingerprint"), f"the teacher {exp}")
            for p in model.parameters():
                p.requires_grad_(False)
            models.append(model)
            infos.append(info)
        if not models:
            raise GraftError("--distill-from names no teacher")
        return cls(models, infos)

    @torch.no_grad()
    def log_probs(self, features: Tensor, feature_lens: Tensor) -> tuple[Tensor, Tensor]:
        """(N, T', V) log of the teachers' mean CTC posteriors (fp32), and (N,) frame counts."""
        probs, lens = None, None
        for m in self.models:
            enc, enc_lens = m.encoder(features, feature_lens)
            p = m.ctc_output(enc).float().exp()
            probs = p if probs is None else probs + p
            if lens is not None and not torch.equal(lens, enc_lens):
                raise GraftError("the teachers give different numbers of encoder frames: distil from teachers "
                                 "of one frame rate (subsampling)")
            lens = enc_lens
        return (probs / len(self.models)).clamp_min(1e-20).log(), lens


def distill_loss(teacher_logp: Tensor, student_logp: Tensor, lens: Tensor) -> Tensor:
    """Mean over valid frames of KL(teacher || student), both (N, T, V) log-probabilities."""
    if teacher_logp.shape != student_logp.shape:
        raise GraftError(f"teacher and student outputs differ in shape ({tuple(teacher_logp.shape)} vs "
                         f"{tuple(student_logp.shape)}): a teacher needs the student's lang dir and frame rate")
    t = teacher_logp.shape[1]
    valid = torch.arange(t, device=lens.device).unsqueeze(0) < lens.unsqueeze(1)
    tl, sl = teacher_logp[valid], student_logp[valid].float()
    return (tl.exp() * (tl - sl)).sum(-1).mean()
