"""The training loop: epochs of pruned RNN-T batches with warm-up, clipping, a non-finite guard,
running averaging, checkpoints, resume, validation, logging, and DDP.

Usage:
    conf = load_train_conf(cuts_train=..., lang_dir=..., exp_dir=...)     # graft.train.options
    lang = load_lang_dir(conf.lang_dir)
    model = build_model(load_model_conf("small"), lang.vocab_size)
    result = train(model, conf, lang, model_conf)                         # resumes if it can

Hooks for other trainers (layer transfer):
    train(model, conf, lang, model_conf,
          param_groups=[{"params": [...], "lr_scale": 0.1}, ...],   # per-group LR (optim.py)
          extra_loss_fn=lambda m: l2sp_penalty(m),   # scalar added to the per-frame loss
          checkpoint_extra={"transfer": {...}})      # stored in every checkpoint as "extra"
Transfer techniques that act inside training are options of the same loop: --adversarial (a
domain classifier behind gradient reversal, graft.train.adversarial), --meta-block (Reptile over
the cuts' languages, graft.train.meta) and --distill-from (teachers' CTC posteriors,
graft.train.distill); what they add is checkpointed beside the model, never inside it.
`model` may be pre-initialised and have frozen parameters (requires_grad False: they are left
out of the optimizer and the gradient norm). A checkpoint found in exp_dir always wins over
the given weights: that is what resuming means.

Loss: the model returns the batch sum; the loop backpropagates it divided by the number of
encoder frames (a per-frame loss, so the learning rate and an extra loss term do not depend on
the batch size), plus extra_loss_fn(model). The reported "loss" is
simple_loss_scale * simple + pruned + ctc_weight * ctc per frame (the post-warm-up weights, so
train and valid numbers are comparable from the first step).

Guard: a batch whose loss (on any rank) or gradient norm is not finite is skipped: no
optimizer step, counted in the log and the checkpoint. 50 skipped batches in a row stop the
run with an error (the model has diverged: lower --base-lr).

Resume: exp_dir's checkpoint with the highest step is loaded with the optimizer, schedule,
running average, RNG states (per rank) and the position inside the epoch (the sampler is
re-created for that epoch and the batches already done are skipped), so a killed run loses
only the steps after its last checkpoint. With --num-workers 0 a resumed run repeats the
uninterrupted one exactly; with workers, augmentation randomness in the workers differs.

Early stopping (--early-stop-patience P > 0, needs --cuts-dev): after each epoch's validation
loss, the dev cuts are decoded by transducer greedy search (the current weights, eval, fp32,
no gradients; graft.train.early_stop) and the dev WER is recorded in history["dev_wer"] as
[epoch, step, audio_minutes_seen, wer] (audio minutes: the training audio of every batch so
far, all ranks), in the log line and in exp_dir/dev_wer.json. When the WER has not improved on
its best for max(P, a quarter of the epochs to the best) epochs, counted once the best is below
95 % (graft.train.early_stop), the run stops after writing that epoch's checkpoint, finished; the best
epoch and the audio minutes up to it go to params.json ("early_stop"). The state comes from the
checkpoint's history, so a resumed run keeps its best WER and its count of epochs since.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from lhotse import CutSet
from lhotse.dataset import SpecAugment
from torch import Tensor, nn

from graft.data.features import make_extractor
from graft.train.adversarial import DomainAdversary, DomainLabels, reversal_scale
from graft.train.amp import resolve_amp
from graft.train.kernels import enlarge_kernel_cache
from graft.train.malloc import keep_freed_memory
from graft.train.average import RunningAverage
from graft.train.checkpoint import (compare_state_dict, latest_checkpoint, prune_step_checkpoints,
                                    read_checkpoint, remove_stale_temporaries, save_checkpoint)
from graft.lang.langdir import LangDir
from graft.train.corrupt import corrupted_copies, parse_corrupt
from graft.train.data import (AsrDataset, add_speed_perturbed, cut_text, filter_cuts, load_cuts,
                              make_dev_sampler, make_loader, make_train_sampler, parse_speed_factors)
from graft.train.ddp import (DistInfo, all_gather_object, all_reduce_max, all_reduce_sum,
                             init_distributed, wrap_model)
from graft.train.distill import Teacher, distill_loss, parse_teachers
from graft.train.early_stop import PLATEAU_WER, EarlyStop, greedy_hypotheses, word_errors, write_summary
from graft.train.freq_warp import FreqWarp
from graft.train.meta import LanguageBlockSampler, Reptile
from graft.train.optim import build_optimizer, clip_grad_norm
from graft.train.options import TrainConfig
from graft.train.plot import plot_losses
from graft.train.rng import rng_state, seed_everything, set_rng_state
from graft.train.run_info import update_params, write_params
from graft.train.schedule import WarmupEdenLR, loss_scales
from graft.utils.errors import GraftError
from graft.utils.io import atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

ExtraLossFn = Callable[[nn.Module], Tensor]
MAX_SKIPS_IN_A_ROW = 50


@dataclass
class TrainResult:
    """What a call to `train` did."""

    exp_dir: Path
    step: int
    epochs_done: int
    finished: bool                       # all --num-epochs done
    stopped_by_budget: bool              # --max-minutes reached (run again to continue)
    resumed_from: str | None
    skipped_batches: dict[str, int] = field(default_factory=dict)
    last_checkpoint: str | None = None
    history: dict[str, list] = field(default_factory=dict)
    stopped_early: bool = False          # --early-stop-patience: dev WER stopped improving (finished too)


# Options a run may change when it resumes: its length, checkpointing, logging, where and how
# fast it runs, and where things are (the lang dir and the model are checked on their own).
RESUMABLE_OPTIONS = frozenset({
    "num_epochs", "max_minutes", "early_stop_patience", "save_every_n", "keep_last_k", "log_interval",
    "num_workers", "device", "amp", "pad_frames_to", "cuts_train", "cuts_dev", "lang_dir", "exp_dir",
    "model_conf"})


def changed_train_options(stored: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(option, stored, current) for each option that shapes the model and differs from the
    checkpoint's; options the checkpoint predates are not compared.

    Usage: changed_train_options(ckpt["train_conf"], conf.to_dict())"""
    return [(k, stored[k], current.get(k)) for k in sorted(stored)
            if k in current and k not in RESUMABLE_OPTIONS and stored[k] != current[k]]


def encoder_frames_fn(model: nn.Module) -> Callable[[int], int]:
    """Feature frames -> encoder frames for `model` (graft.model's subsampling)."""
    from graft.model.subsampling import subsampled_lengths

    factor = getattr(getattr(model, "encoder", None), "subsampling_factor", 4)
    return lambda t: int(subsampled_lengths(t, factor))


def param_fingerprint(model: nn.Module) -> str:
    """sha256 of all parameter bytes (identical across DDP ranks when they are in sync)."""
    h = hashlib.sha256()
    for name, p in getattr(model, "module", model).named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class _Stats:
    """Sums over a log interval (or a validation pass); all-reduced across ranks."""

    KEYS = ("loss", "simple", "pruned", "ctc", "extra", "adv", "adv_right", "kd", "frames", "duration", "cuts",
            "batches")

    def __init__(self) -> None:
        self.v = dict.fromkeys(self.KEYS, 0.0)

    def add(self, **kw: float) -> None:
        for k, x in kw.items():
            self.v[k] += float(x)

    def reduced(self, dist_info: DistInfo) -> dict[str, float]:
        t = torch.tensor([self.v[k] for k in self.KEYS], dtype=torch.float64)
        t = all_reduce_sum(t, dist_info)
        return dict(zip(self.KEYS, t.tolist()))


class Trainer:
    """One training run in exp_dir (see the module docstring); `train()` is the entry point."""

    def __init__(self, model: nn.Module, conf: TrainConfig, lang: LangDir, model_conf: dict[str, Any],
                 param_groups: list[dict[str, Any]] | None = None, extra_loss_fn: ExtraLossFn | None = None,
                 dist_info: DistInfo | None = None, checkpoint_extra: dict[str, Any] | None = None) -> None:
        self.conf = conf
        self.lang = lang
        self.model_conf = dict(model_conf)
        self.extra_loss_fn = extra_loss_fn
        self.checkpoint_extra = checkpoint_extra
        self.dist = dist_info or init_distributed(conf.device)
        self.exp_dir = Path(conf.exp_dir)
        self.t_start = time.time()
        self.step = 0
        self.epoch = 0
        self.batches_done = 0
        self.skipped: Counter = Counter()
        self.skips_in_a_row = 0
        self.cuts_seen = 0
        self.history: dict[str, list] = {"train": [], "valid": []}
        self.audio_seconds_done = 0.0    # training audio of all ranks up to the last epoch end or checkpoint
        self.audio_seconds_local = 0.0   # this rank's training audio since then
        self.early = EarlyStop(conf.early_stop_patience)
        self.resumed_from: str | None = None
        self.last_checkpoint: str | None = None
        self.tb = None

        model_vocab = getattr(model, "vocab_size", lang.vocab_size)
        if model_vocab != lang.vocab_size:
            raise GraftError(f"the model's vocabulary has {model_vocab} tokens but {lang.lang_dir} has "
                             f"{lang.vocab_size}: build the model for this lang dir")
        self.model = model.to(self.dist.device)
        self.param_groups = param_groups
        self.domains: DomainLabels | None = None      # --adversarial: each training cut's domain
        self.adversary: DomainAdversary | None = None
        self.reptile: Reptile | None = None            # --meta-block: Reptile's anchor and outer step
        self.teacher: Teacher | None = None            # --distill-from: frozen models, not checkpointed

    # ---- set-up ------------------------------------------------------------------------
    def _setup_logging(self) -> None:
        graft_logger = logging.getLogger("graft")
        if not self.dist.is_main:
            graft_logger.setLevel(logging.WARNING)
            return
        log_dir = self.exp_dir / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_dir / f"train-{time.strftime('%Y%m%d-%H%M%S')}.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s", "%H:%M:%S"))
        graft_logger.addHandler(handler)
        self._log_handler = handler

    def _setup_data(self) -> None:
        c = self.conf
        cuts = load_cuts(c.cuts_train, "training")
        n_orig = len(cuts)
        feature_dim = next(iter(cuts)).num_features if n_orig else 80
        originals = cuts
        if c.speed_perturb:
            factors = parse_speed_factors(c.speed_factors)
            cuts = add_speed_perturbed(cuts, factors)
            copies = ", ".join(f"x{f:g}" for f in factors)
            log.info(f"speed perturbation: {n_orig} cuts -> {len(cuts)} ({copies} copies; fbank on the fly)")
        kinds = parse_corrupt(c.corrupt)
        if kinds:
            n = len(cuts)
            cuts = CutSet.from_cuts(list(cuts) + list(corrupted_copies(originals, kinds, c.seed)))
            log.info(f"corrupted copies: {n} cuts -> {len(cuts)} (one {' and one '.join(kinds)} copy of each of "
                     f"the {n_orig} cuts; fbank on the fly)")
        frames = encoder_frames_fn(self.model)
        cuts, report = filter_cuts(cuts, self.lang, frames, c.min_cut_duration, c.max_cut_duration,
                                   ctc=c.ctc_weight > 0)
        self.filter_report = report
        log.info(f"training cuts {c.cuts_train}: {report.summary()}")
        if report.kept == 0:
            raise GraftError(f"no training cuts left in {c.cuts_train} after filtering ({report.summary()})")
        if c.adversarial:
            self.domains = DomainLabels.from_cuts(cuts, c.adversarial)
            log.info(f"domain-adversarial training ({c.adversarial}, per {c.adversarial_pool}): "
                     f"{len(self.domains.names)} domains "
                     f"({', '.join(f'{k} {v}' for k, v in self.domains.counts().items())} cuts), reversal scale "
                     f"0 -> {c.adversarial_weight:g} over {c.adversarial_ramp_steps} batches")
        self.train_cuts = cuts
        if c.meta_block > 0:
            if self.dist.distributed:
                raise GraftError("--meta-block runs in one process (its language blocks are not split across "
                                 "ranks yet): train without torchrun, or with --meta-block 0")
            self.train_sampler = LanguageBlockSampler(
                cuts, c.meta_block, lambda part: make_train_sampler(part, c.max_duration, c.seed, 1, 0, c.num_buckets),
                c.seed)
            minutes = ", ".join(f"{k} {v / 60:.1f} min" for k, v in self.train_sampler.seconds.items())
            log.info(f"meta-learning (Reptile): blocks of {c.meta_block} batches of one language ({minutes}), "
                     f"outer step {c.meta_step:g}")
        else:
            self.train_sampler = make_train_sampler(cuts, c.max_duration, c.seed, self.dist.world_size,
                                                    self.dist.rank, c.num_buckets)
        spec = SpecAugment(time_warp_factor=80, num_feature_masks=2, features_mask_size=27,
                           num_frame_masks=10, frames_mask_size=100, max_frames_mask_fraction=0.15,
                           p=0.9) if c.spec_augment else None
        self.spec_augment = spec   # applied from epoch c.spec_augment_from_epoch on (see run)
        warp = FreqWarp(c.freq_warp) if c.freq_warp > 0 else None
        if warp:
            log.info(f"frequency warping (VTLP): each training cut's mel axis x U({1 - c.freq_warp:g}, "
                     f"{1 + c.freq_warp:g})")
        self.train_dataset = AsrDataset(self.lang, spec_augment=spec, fbank=make_extractor(feature_dim),
                                        pad_frames_to=c.pad_frames_to, freq_warp=warp)
        self.dev_sampler = None
        if c.cuts_dev:
            dev = load_cuts(c.cuts_dev, "dev")
            dev, dev_report = filter_cuts(dev, self.lang, frames, ctc=c.ctc_weight > 0)
            log.info(f"dev cuts {c.cuts_dev}: {dev_report.summary()}")
            if dev_report.kept:
                self.dev_sampler = make_dev_sampler(dev, c.max_duration, self.dist.world_size, self.dist.rank)
            self.dev_dataset = AsrDataset(self.lang, spec_augment=None, pad_frames_to=c.pad_frames_to)
            self.dev_refs = {cut.id: cut_text(cut).split() for cut in dev}
        if c.early_stop_patience > 0 and self.dev_sampler is None:
            raise GraftError(f"--early-stop-patience {c.early_stop_patience} needs dev cuts to decode, but "
                             f"{c.cuts_dev or '--cuts-dev'} gives none: pass --cuts-dev "
                             "data/fbank/<lang>/cuts_dev.jsonl.gz, or --early-stop-patience 0")

    def _setup_optim(self) -> None:
        c = self.conf
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        groups = self.param_groups
        if self.domains is not None:
            with torch.random.fork_rng():      # its initial weights from the seed, the global stream untouched
                torch.manual_seed(c.seed)
                self.adversary = DomainAdversary(self.model.encoder.output_dim, len(self.domains.names),
                                                 pool=c.adversarial_pool)
            self.adversary.to(self.dist.device)
            adv_params = list(self.adversary.parameters())
            groups = [*(self.param_groups or []), {"params": adv_params}]
            self.trainable += adv_params
        self.optimizer = build_optimizer(self.model, c.base_lr, c.weight_decay, groups, optimizer=c.optimizer)
        if c.distill_from:
            self.teacher = Teacher.load(parse_teachers(c.distill_from), c.distill_avg, self.lang, self.dist.device)
            which = ", ".join(f"{i['exp_dir']} (epoch {i['epoch']}, avg {i['avg']})" for i in self.teacher.infos)
            log.info(f"knowledge distillation: the CTC head learns the mean posteriors of {which}, weight "
                     f"{c.distill_weight:g}")
        if c.meta_block > 0:
            self.reptile = Reptile([p for p in self.model.parameters() if p.requires_grad], c.meta_step)
        self.scheduler = WarmupEdenLR(self.optimizer, c.warm_steps, c.lr_steps, c.lr_epochs)
        self.avg = RunningAverage.from_model(self.model)
        self.amp = resolve_amp(c.amp, self.dist.device)

    def _check_compatible(self, ckpt: dict[str, Any], path: Path) -> None:
        vocab = int(ckpt["lang"]["vocab_size"])
        if vocab != self.lang.vocab_size:
            raise GraftError(f"{path} was trained with vocab size {vocab} ({ckpt['lang'].get('lang_dir')}) "
                             f"but {self.lang.lang_dir} has {self.lang.vocab_size} tokens: use the "
                             "matching --lang-dir, or a new --exp-dir")
        self.lang.check_fingerprint(ckpt["lang"].get("fingerprint"), f"the checkpoint {path}")
        stored = ckpt.get("model_conf") or {}
        diff = sorted(k for k in set(stored) | set(self.model_conf)
                      if k not in ("name", "description") and stored.get(k) != self.model_conf.get(k))
        if diff:
            pairs = ", ".join(f"{k}: {stored.get(k)!r} -> {self.model_conf.get(k)!r}" for k in diff)
            raise GraftError(f"{path} was trained with another model conf ({pairs}): use a new --exp-dir")
        changed = changed_train_options(ckpt.get("train_conf") or {}, self.conf.to_dict())
        if changed:
            pairs = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed)
            raise GraftError(f"{path} was trained with other training options ({pairs}); resuming would mix "
                             f"them into one model. Use a new --exp-dir, or delete {self.exp_dir} to train it "
                             "afresh (in a recipe: run the stage with --force true)")
        mm = compare_state_dict(self.model, ckpt["model"])
        if mm:
            raise GraftError(f"{path} does not fit the model: {mm.describe()}")

    def _resume(self) -> dict[str, Any] | None:
        if self.dist.is_main:
            remove_stale_temporaries(self.exp_dir)
        path = latest_checkpoint(self.exp_dir)
        if path is None:
            return None
        ckpt = read_checkpoint(path, map_location="cpu")
        self._check_compatible(ckpt, path)
        self.model.load_state_dict(ckpt["model"])
        if self.adversary is not None:
            stored = ckpt.get("adversary") or {}
            if stored.get("names") != self.domains.names:
                raise GraftError(f"{path} was trained against the domains {stored.get('names')}, the training "
                                 f"cuts now have {self.domains.names}: use a new --exp-dir")
            if stored.get("pool", "frame") != self.adversary.pool:
                raise GraftError(f"{path} was trained with --adversarial-pool {stored.get('pool', 'frame')}, not "
                                 f"{self.adversary.pool}: use a new --exp-dir")
            self.adversary.load_state_dict(stored["state"])
        if self.reptile is not None:
            self.reptile.load_state_dict(ckpt["meta"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("model_avg") is not None:
            self.avg = RunningAverage({k: v.clone() for k, v in ckpt["model_avg"].items()}, int(ckpt["avg_count"]))
        prog = ckpt["progress"]
        self.step, self.epoch, self.batches_done = int(prog["step"]), int(prog["epoch"]), int(prog["batches_done"])
        self.skipped = Counter(ckpt.get("skipped", {}))
        self.history = ckpt.get("history") or {"train": [], "valid": []}
        self.audio_seconds_done = float(prog.get("audio_seconds", 0.0))
        self.early = EarlyStop.from_history(self.history.get("dev_wer", []), self.conf.early_stop_patience)
        if int(ckpt.get("world_size", 1)) != self.dist.world_size and self.batches_done:
            log.warning(f"{path} was written with {ckpt.get('world_size')} processes, now "
                        f"{self.dist.world_size}: epoch {self.epoch + 1} restarts from its first batch")
            self.batches_done = 0
        self.resumed_from = str(path)
        self.last_checkpoint = str(path)
        log.info(f"resuming from {path}: step {self.step}, epoch {self.epoch + 1}, "
                 f"batch {self.batches_done} of the epoch done")
        return ckpt

    def _restore_rng(self, ckpt: dict[str, Any] | None) -> None:
        """Resume: this rank's saved generators. Fresh run (or another world size): seed + rank."""
        states = (ckpt or {}).get("rng") or []
        if len(states) == self.dist.world_size:
            set_rng_state(states[self.dist.rank])
        else:
            seed_everything(self.conf.seed + self.dist.rank + 1000 * self.step)

    # ---- checkpoints -------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_avg": self.avg.state, "avg_count": self.avg.count,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "sampler": self.train_sampler.state_dict(),
            "progress": {"step": self.step, "epoch": self.epoch, "batches_done": self.batches_done,
                         "num_epochs": self.conf.num_epochs, "audio_seconds": self.audio_seconds_done},
            "skipped": dict(self.skipped), "history": self.history,
            "model_conf": self.model_conf, "lang": self.lang.info(), "train_conf": self.conf.to_dict(),
            "world_size": self.dist.world_size, "extra": self.checkpoint_extra,
            "meta": None if self.reptile is None else self.reptile.state_dict(),
            "adversary": None if self.adversary is None else {
                "spec": self.domains.spec, "names": self.domains.names, "pool": self.adversary.pool,
                "state": {k: v.detach().cpu() for k, v in self.adversary.state_dict().items()}},
        }

    def _save(self, name: str) -> None:
        """Write exp_dir/<name> (rank 0); every rank contributes its RNG state."""
        rngs = all_gather_object(rng_state(), self.dist)
        self._sum_audio_seconds()
        if self.dist.distributed:
            self._check_ranks_in_sync()
        if self.dist.is_main:
            state = self._state()
            state["rng"] = rngs
            path = save_checkpoint(self.exp_dir / name, state)
            self.last_checkpoint = str(path)
            if name.startswith("checkpoint-"):
                for old in prune_step_checkpoints(self.exp_dir, self.conf.keep_last_k):
                    log.debug(f"removed {old}")
            log.info(f"saved {path}")

    def _check_ranks_in_sync(self) -> None:
        mine = param_fingerprint(self.model)
        if self.adversary is not None:      # a module of its own beside the model (its own DDP wrapper)
            mine += "+" + param_fingerprint(self.adversary)
        prints = all_gather_object(mine, self.dist)
        seen = all_gather_object(self.cuts_seen, self.dist)
        if self.dist.is_main:
            with atomic_write(self.exp_dir / "ddp_check.json") as f:
                json.dump({"step": self.step, "fingerprints": prints, "cuts_seen": seen}, f, indent=1)
        if len(set(prints)) != 1:
            raise GraftError(f"DDP ranks hold different parameters at step {self.step}: {prints}")

    # ---- one batch ---------------------------------------------------------------------
    def _train_step(self, batch: dict[str, Any], stats: _Stats) -> float | None:
        c = self.conf
        dev = self.dist.device
        simple_s, pruned_s = loss_scales(self.step, c.warm_steps, c.simple_loss_scale)
        self.ddp_model.train()
        adv = right = kd = None
        with self.amp.autocast():
            loss_sum, info = self.ddp_model(
                batch["features"].to(dev), batch["feature_lens"].to(dev), batch["tokens"],
                prune_range=c.prune_range, am_scale=c.am_scale, lm_scale=c.lm_scale,
                simple_loss_scale=simple_s, pruned_loss_scale=pruned_s, ctc_weight=c.ctc_weight,
                keep_encoder_out=self.adversary is not None or self.teacher is not None)
            if self.teacher is not None:
                t_logp, t_lens = self.teacher.log_probs(batch["features"].to(dev), batch["feature_lens"].to(dev))
                if not torch.equal(t_lens, info["encoder_lens"]):
                    raise GraftError("the teachers give other numbers of encoder frames than the student "
                                     f"({t_lens.tolist()[:4]} vs {info['encoder_lens'].tolist()[:4]}): distil from "
                                     "teachers of the student's frame rate (subsampling)")
                kd = distill_loss(t_logp, info.pop("ctc_log_probs"), info["encoder_lens"])
            if self.adversary is not None:
                adv, right = self.ddp_adversary(info.pop("encoder_out"), info.pop("encoder_lens"),
                                            self.domains.labels(batch["cut_ids"]),
                                            reversal_scale(self.step, c.adversarial_ramp_steps, c.adversarial_weight))
        frames = max(float(info["frames"]), 1.0)
        loss = loss_sum / frames
        if adv is not None:
            loss = loss + adv
        if kd is not None:
            loss = loss + c.distill_weight * kd
        extra = None
        if self.extra_loss_fn is not None:
            extra = self.extra_loss_fn(self.model)
            loss = loss + extra
        bad = torch.tensor([0.0 if bool(torch.isfinite(loss.detach())) else 1.0])
        if all_reduce_max(bad, self.dist).item() > 0:
            self._skip("nonfinite_loss", batch)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = c.clip_grad_norm if c.clip_grad_norm > 0 else float("inf")
        norm = clip_grad_norm(self.trainable, max_norm)
        if not math.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            self._skip("nonfinite_grad", batch)
            return None
        self.optimizer.step()
        self.scheduler.step_batch()
        self.skips_in_a_row = 0
        simple, pruned, ctc = float(info["simple"]), float(info["pruned"]), float(info["ctc"])
        stats.add(loss=c.simple_loss_scale * simple + pruned + c.ctc_weight * ctc, simple=simple,
                  pruned=pruned, ctc=ctc, extra=0.0 if extra is None else float(extra.detach()) * frames,
                  adv=0.0 if adv is None else float(adv.detach()) * frames,
                  adv_right=0.0 if right is None else float(right),
                  kd=0.0 if kd is None else float(kd.detach()) * frames, frames=frames,
                  duration=batch["duration"], cuts=len(batch["cut_ids"]), batches=1)
        return norm

    def _skip(self, reason: str, batch: dict[str, Any]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped[reason] += 1
        self.skips_in_a_row += 1
        log.warning(f"step {self.step}: skipped a batch with {reason.replace('_', ' ')} "
                    f"(cuts {batch['cut_ids'][:3]}...); skipped so far: {dict(self.skipped)}")
        if self.skips_in_a_row >= MAX_SKIPS_IN_A_ROW:
            raise GraftError(f"{self.skips_in_a_row} batches in a row had a non-finite loss or gradient: "
                             "training diverged (lower --base-lr or check the data)")

    # ---- reporting ---------------------------------------------------------------------
    def _log_progress(self, stats: _Stats, t0: float, grad_norm: float | None) -> None:
        s = stats.reduced(self.dist)
        if not self.dist.is_main or s["frames"] <= 0:
            return
        wall = max(time.time() - t0, 1e-9)
        keys = ["loss", "simple", "pruned", "ctc", "extra"] + ["adv"] * (self.adversary is not None) \
            + ["kd"] * (self.teacher is not None)
        per = {k: s[k] / s["frames"] for k in keys}
        lr = self.scheduler.get_last_lr()[0]
        rate = s["duration"] / wall
        simple_s, pruned_s = loss_scales(self.step, self.conf.warm_steps, self.conf.simple_loss_scale)
        skipped = sum(self.skipped.values())
        adv_n = max(s["cuts"] if self.conf.adversarial_pool == "utterance" else s["frames"], 1.0)  # what it classifies
        log.info(f"epoch {self.epoch + 1} step {self.step} (batch {self.batches_done}): loss {per['loss']:.4f} "
                 f"[simple {per['simple']:.4f} pruned {per['pruned']:.4f} ctc {per['ctc']:.4f}"
                 + (f" extra {per['extra']:.4g}" if self.extra_loss_fn else "")
                 + (f" adversary {per['adv']:.4f} acc {s['adv_right'] / adv_n:.3f} reversal "
                    f"{reversal_scale(self.step, self.conf.adversarial_ramp_steps, self.conf.adversarial_weight):.3f}"
                    if self.adversary is not None else "")
                 + (f" distill {per['kd']:.4f}" if self.teacher is not None else "")
                 + f"] lr {lr:.3g} scales {simple_s:.2f}/{pruned_s:.2f} "
                 f"{rate:.1f} audio s/s" + (f" grad-norm {grad_norm:.3g}" if grad_norm is not None else "")
                 + (f" skipped {skipped}" if skipped else ""))
        self.history["train"].append([self.step, per["loss"]])
        if self.tb is not None:
            for k, v in per.items():
                self.tb.add_scalar(f"train/{k}", v, self.step)
            if self.adversary is not None:
                self.tb.add_scalar("train/adversary_acc", s["adv_right"] / adv_n, self.step)
            self.tb.add_scalar("train/lr", lr, self.step)
            self.tb.add_scalar("train/audio_sec_per_sec", rate, self.step)
            if grad_norm is not None:
                self.tb.add_scalar("train/grad_norm", grad_norm, self.step)

    @torch.no_grad()
    def _validate(self) -> float | None:
        if self.dev_sampler is None:
            return None
        c = self.conf
        self.model.eval()
        stats = _Stats()
        loader = make_loader(self.dev_dataset, self.dev_sampler, num_workers=c.num_workers, seed=c.seed)
        for batch in loader:
            _, info = self.model(batch["features"].to(self.dist.device), batch["feature_lens"].to(self.dist.device),
                                 batch["tokens"], prune_range=c.prune_range, am_scale=c.am_scale,
                                 lm_scale=c.lm_scale, simple_loss_scale=c.simple_loss_scale,
                                 pruned_loss_scale=1.0, ctc_weight=c.ctc_weight)
            simple, pruned, ctc = float(info["simple"]), float(info["pruned"]), float(info["ctc"])
            stats.add(loss=c.simple_loss_scale * simple + pruned + c.ctc_weight * ctc, simple=simple,
                      pruned=pruned, ctc=ctc, frames=float(info["frames"]))
        self.model.train()
        s = stats.reduced(self.dist)
        if s["frames"] <= 0:
            return None
        loss = s["loss"] / s["frames"]
        if self.dist.is_main:
            log.info(f"epoch {self.epoch + 1} validation: loss {loss:.4f} [simple {s['simple'] / s['frames']:.4f} "
                     f"pruned {s['pruned'] / s['frames']:.4f} ctc {s['ctc'] / s['frames']:.4f}] "
                     f"over {int(s['frames'])} encoder frames")
            self.history["valid"].append([self.step, loss])
            if self.tb is not None:
                self.tb.add_scalar("valid/loss", loss, self.step)
        return loss

    def _sum_audio_seconds(self) -> float:
        """Fold every rank's training audio since the last call into audio_seconds_done (all ranks
        call it together: at checkpoints); returns the total in seconds."""
        local = torch.tensor([self.audio_seconds_local], dtype=torch.float64)
        self.audio_seconds_done += float(all_reduce_sum(local, self.dist).item())
        self.audio_seconds_local = 0.0
        return self.audio_seconds_done

    @torch.no_grad()
    def _dev_wer(self) -> float:
        """Greedy-search WER (percent) of the current weights on the dev cuts, all ranks' shares."""
        loader = make_loader(self.dev_dataset, self.dev_sampler, num_workers=self.conf.num_workers,
                             seed=self.conf.seed)
        try:
            hyps = greedy_hypotheses(self.model, loader, self.lang.id2token, self.dist.device)
        finally:
            self.model.train()
        refs = {uid: self.dev_refs[uid] for uid in hyps}
        counts = torch.tensor(word_errors(refs, hyps), dtype=torch.float64)
        errors, words = all_reduce_sum(counts, self.dist).tolist()
        return 100.0 * errors / words if words else 0.0

    def _record_dev_wer(self) -> None:
        """After an epoch (self.epoch already counts it): dev WER into the history, the log,
        tensorboard and the early-stop state."""
        t0 = time.time()
        wer = self._dev_wer()
        minutes = self.audio_seconds_done / 60.0
        row = [self.epoch, self.step, round(minutes, 3), round(wer, 4)]
        self.early.add(row)
        self.history["dev_wer"] = self.early.history
        if self.dist.is_main:
            best = self.early.best
            log.info(f"epoch {self.epoch} dev WER {wer:.2f} % (greedy, {time.time() - t0:.1f} s) after "
                     f"{minutes:.1f} min of training audio; best {best[3]:.2f} % at epoch {int(best[0])}, "
                     f"{self.early.epochs_since_best} epoch(s) since (patience {self.early.effective_patience}; "
                     f"counted below {PLATEAU_WER:g} %)")
            if self.tb is not None:
                self.tb.add_scalar("valid/wer", wer, self.step)

    def _write_early_stop(self, done: bool) -> None:
        """dev_wer.json after every epoch; at the end also params.json's "early_stop" (rank 0)."""
        if not self.dist.is_main or self.conf.early_stop_patience <= 0:
            return
        write_summary(self.exp_dir, self.early, self.conf.num_epochs, done)
        if done:
            summary = self.early.summary(self.conf.num_epochs, done)
            update_params(self.exp_dir, {"early_stop": {k: v for k, v in summary.items() if k != "history"}})

    def _budget_reached(self) -> bool:
        if self.conf.max_minutes is None:
            return False
        over = (time.time() - self.t_start) / 60.0 >= self.conf.max_minutes
        return all_reduce_max(torch.tensor([float(over)]), self.dist).item() > 0

    # ---- the run -----------------------------------------------------------------------
    def run(self) -> TrainResult:
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        self._setup_logging()
        try:
            return self._run()
        finally:
            if self.tb is not None:
                self.tb.close()
            handler = getattr(self, "_log_handler", None)
            if handler is not None:
                logging.getLogger("graft").removeHandler(handler)
                handler.close()

    def _run(self) -> TrainResult:
        c = self.conf
        kernels = enlarge_kernel_cache()     # before the first bf16 product of the process
        self._setup_data()
        self._setup_optim()
        ckpt = self._resume()
        if self.epoch >= c.num_epochs:
            log.info(f"{self.exp_dir}: all {c.num_epochs} epochs are done (step {self.step}); nothing to do")
            self._write_early_stop(done=True)
            return self._result(finished=True, stopped=False)
        if self.early.should_stop:
            log.info(f"{self.exp_dir}: stopped early at epoch {self.epoch} (dev WER best at epoch "
                     f"{int(self.early.best[0])}, patience {self.early.effective_patience}); nothing to do")
            self._write_early_stop(done=True)
            return self._result(finished=True, stopped=False)
        self.ddp_model = wrap_model(self.model, self.dist)
        self.ddp_adversary = None if self.adversary is None else wrap_model(self.adversary, self.dist)
        allocator = keep_freed_memory() if self.dist.device.type == "cpu" else None
        n_params = sum(p.numel() for p in self.model.parameters())
        n_train = sum(p.numel() for p in self.trainable)
        if self.dist.is_main:
            write_params(self.exp_dir, {
                "train_conf": c.to_dict(), "model_conf": self.model_conf, "lang": self.lang.info(),
                "world_size": self.dist.world_size, "device": str(self.dist.device),
                "num_params": n_params, "num_trainable_params": n_train,
                "train_cuts": {"kept": self.filter_report.kept, "hours": self.filter_report.kept_seconds / 3600,
                               "dropped": dict(self.filter_report.dropped)},
                "resumed_from": self.resumed_from, "start_step": self.step,
                "param_groups": len(self.optimizer.param_groups),
                "extra_loss": getattr(self.extra_loss_fn, "__name__", None) if self.extra_loss_fn else None,
                "amp": {"enabled": self.amp.enabled, "reason": self.amp.reason},
                "distill": None if self.teacher is None else {
                    "teachers": [{k: i[k] for k in ("exp_dir", "epoch", "avg")} for i in self.teacher.infos],
                    "weight": c.distill_weight},
                "meta": None if self.reptile is None else {
                    "block": c.meta_block, "step": c.meta_step, "languages": self.train_sampler.languages},
                "adversarial": None if self.domains is None else {
                    "spec": self.domains.spec, "domains": self.domains.counts()},
            })
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=self.step or None)
            log.info(f"model: {n_params / 1e6:.2f} M parameters ({n_train / 1e6:.2f} M trainable); "
                     f"{self.dist.world_size} process(es) on {self.dist.device}")
            log.info(f"optimizer: {type(self.optimizer).__name__}, base lr {self.conf.base_lr:g}, "
                     f"{len(self.optimizer.param_groups)} parameter group(s)")
            log.info(self.amp.describe())
            if self.amp.enabled and self.dist.device.type == "cpu":
                log.info(kernels)
            if allocator:
                log.info(allocator)
        self._restore_rng(ckpt)
        del ckpt
        stopped = False
        grad_norm = None
        while self.epoch < c.num_epochs and not stopped:
            self.train_sampler.set_epoch(self.epoch)
            self.train_dataset.spec_augment = (
                self.spec_augment if self.epoch + 1 >= c.spec_augment_from_epoch else None)
            self.scheduler.set_epoch(self.epoch)
            loader = make_loader(self.train_dataset, self.train_sampler, c.num_workers,
                                 seed=c.seed + 7919 * self.dist.rank, epoch=self.epoch,
                                 skip_batches=self.batches_done)
            stats, t0 = _Stats(), time.time()
            t_epoch, step_epoch = time.time(), self.step
            for batch in loader:
                norm = self._train_step(batch, stats)
                grad_norm = norm if norm is not None else grad_norm
                self.cuts_seen += len(batch["cut_ids"])
                self.audio_seconds_local += float(batch["duration"])
                self.step += 1
                self.batches_done += 1
                if self.reptile is not None and self.batches_done % c.meta_block == 0:
                    self.reptile.update()      # the end of a language block
                if c.average_period > 0 and self.step % c.average_period == 0:
                    self.avg.update(self.model)
                if c.log_interval > 0 and self.step % c.log_interval == 0:
                    self._log_progress(stats, t0, grad_norm)
                    stats, t0 = _Stats(), time.time()
                saved = False
                if c.save_every_n > 0 and self.step % c.save_every_n == 0:
                    self._save(f"checkpoint-{self.step}.pt")
                    saved = True
                if self._budget_reached():
                    log.info(f"--max-minutes {c.max_minutes} reached at step {self.step}: stopping "
                             "(run again to continue)")
                    if not saved:
                        self._save(f"checkpoint-{self.step}.pt")
                    stopped = True
                    break
            if stopped:
                break
            if stats.v["batches"] and c.log_interval > 0:
                self._log_progress(stats, t0, grad_norm)
            if self.reptile is not None and self.batches_done % c.meta_block != 0:
                self.reptile.update()          # the epoch's last, shorter block
            if c.average_period <= 0 or self.step % c.average_period != 0:
                self.avg.update(self.model)     # every epoch adds at least one snapshot
            if self.dist.is_main:
                log.info(f"epoch {self.epoch + 1} done: {self.step - step_epoch} batches in "
                         f"{(time.time() - t_epoch) / 60:.1f} min")
            self._validate()
            self.epoch += 1
            self.batches_done = 0
            if c.early_stop_patience > 0:
                self._sum_audio_seconds()
                self._record_dev_wer()
            self._save(f"epoch-{self.epoch}.pt")
            self._write_early_stop(done=self.epoch >= c.num_epochs or self.early.should_stop)
            if self.early.should_stop:
                if self.dist.is_main:
                    log.info(f"early stop after epoch {self.epoch}: no dev WER below "
                             f"{self.early.best[3]:.2f} % (epoch {int(self.early.best[0])}) for "
                             f"{self.early.effective_patience} epoch(s); decode epoch {int(self.early.best[0])}")
                break
        finished = self.epoch >= c.num_epochs or self.early.should_stop
        if self.dist.is_main:
            png = plot_losses(self.history, self.exp_dir / "loss.png", title=str(self.exp_dir))
            if png:
                log.info(f"wrote {png}")
            log.info(f"{'finished' if finished else 'stopped'} at step {self.step}, epoch "
                     f"{self.epoch if finished else self.epoch + 1}; skipped batches: {dict(self.skipped) or 0}")
        return self._result(finished=finished, stopped=stopped)

    def _result(self, finished: bool, stopped: bool) -> TrainResult:
        return TrainResult(self.exp_dir, self.step, self.epoch, finished, stopped, self.resumed_from,
                           dict(self.skipped), self.last_checkpoint, self.history, self.early.should_stop)


def train(model: nn.Module, conf: TrainConfig, lang: LangDir, model_conf: dict[str, Any], *,
          param_groups: list[dict[str, Any]] | None = None, extra_loss_fn: ExtraLossFn | None = None,
          dist_info: DistInfo | None = None, checkpoint_extra: dict[str, Any] | None = None) -> TrainResult:
    """Train `model` on conf.cuts_train into conf.exp_dir (resuming from its latest checkpoint).

    param_groups: optimizer groups ({"params", "lr" or "lr_scale", "weight_decay"}, see
    graft.train.optim). extra_loss_fn(model) -> scalar tensor added to the per-frame loss.
    checkpoint_extra: stored in every checkpoint under "extra". Under torchrun, call
    graft.train.ddp.init_distributed first (or let this do it) and run on every rank.
    """
    return Trainer(model, conf, lang, model_conf, param_groups, extra_loss_fn, dist_info, checkpoint_extra).run()
