"""Layer transfer end to end: load the source, build the target model, plan and apply the
transfer, then fine-tune with graft.train (resume, atomic checkpoints, logging, DDP as usual).

Usage:
    source = SourceSpec("exp/en_small", epoch=10, avg=3)   # its lang dir: exp/en_small/lang/
    rules = load_rules("encoder", l2sp=1e-3)
    setup = prepare_transfer(source, rules, "data/lang/cs_bpe500")      # every check, no training
    print(describe(setup))                                              # the --dry-run report
    result = run_transfer(setup, train_conf)                            # graft.train.loop.train

What `run_transfer` hands to the trainer: the initialized model (parameters frozen for the
whole run have requires_grad False), `param_groups` with the learning-rate multipliers,
`extra_loss_fn` = the L2-SP penalty (per-frame scale, like the loss), and the plan summary as
`checkpoint_extra["transfer"]`. Freezing for the first N steps is an optimizer step pre-hook
that drops the frozen gradients (graft.transfer.freeze). A resumed run (a checkpoint in the
exp dir) must use the same rules, source and lang dir: the checkpoint's weights replace the
transferred ones, and the rules decide the optimizer's groups.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graft.lang.langdir import LangDir, copy_lang_dir, load_lang_dir, model_lang_dir
from graft.transfer.freeze import StepFreezer
from graft.transfer.mix import MixReport, mix_cuts
from graft.transfer.plan import (TransferPlan, apply_plan, format_plan, freeze_whole_run,
                                 lr_param_groups, make_plan, plan_summary)
from graft.transfer.regularize import L2SP
from graft.transfer.rules import TransferRules
from graft.transfer.vocab import match_vocab
from graft.utils.errors import GraftError, require_file
from graft.utils.io import atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

MIXED_CUTS_NAME = "cuts_train_mix.jsonl.gz"


@dataclass
class SourceSpec:
    """Which source model: an experiment dir, the checkpoint choice, and (optionally) its lang
    dir; by default the model's own (graft.lang.langdir.model_lang_dir)."""

    exp_dir: str
    lang_dir: str | None = None
    epoch: int | None = None
    avg: int = 1
    use_averaged_model: bool = False

    def describe(self) -> str:
        which = f"epoch {self.epoch}" if self.epoch is not None else "last epoch"
        return (f"{self.exp_dir} ({which}, avg {self.avg}"
                + (", running average" if self.use_averaged_model else "") + ")")


@dataclass
class Source:
    """The loaded source: its weights, model conf and token table."""

    spec: SourceSpec
    state: dict[str, torch.Tensor]
    model_conf: dict[str, Any]
    info: dict[str, Any]
    tokens: Path


@dataclass
class TransferSetup:
    """Everything `run_transfer` needs; built (and checked) by `prepare_transfer`."""

    model: nn.Module
    model_conf: dict[str, Any]
    lang: LangDir
    plan: TransferPlan
    source: Source
    param_groups: list[dict[str, Any]]
    l2sp: L2SP | None
    freezer: StepFreezer | None
    mix: MixReport | None = None


def load_source(spec: SourceSpec) -> Source:
    """Load the source checkpoint (epoch averaging as in decoding) and check its lang dir."""
    from graft.train.checkpoint import load_model_for_decoding

    model, info = load_model_for_decoding(spec.exp_dir, epoch=spec.epoch, avg=spec.avg,
                                          use_averaged_model=spec.use_averaged_model)
    lang = model_lang_dir(spec.exp_dir, info, spec.lang_dir)
    if int(info["vocab_size"]) != lang.vocab_size:
        raise GraftError(f"the source model in {spec.exp_dir} has a {info['vocab_size']}-token vocabulary "
                         f"but {lang.path}/tokens.txt has {lang.vocab_size} lines: pass the source's own "
                         f"--source-lang-dir (it was trained with {info.get('lang_dir')})")
    spec.lang_dir = str(lang.path)
    tokens = lang.path / "tokens.txt"
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Source(spec, state, dict(info["model_conf"]), info, tokens)


def _model_conf(conf: str | dict[str, Any] | None, source: Source) -> dict[str, Any]:
    from graft.model.build import load_model_conf

    if conf is None:
        return dict(source.model_conf)
    if isinstance(conf, dict):
        return dict(conf)
    return load_model_conf(conf)


def prepare_transfer(source: SourceSpec | Source, rules: TransferRules, lang_dir: str | Path,
                     model_conf: str | dict[str, Any] | None = None, seed: int = 0,
                     dropout: float | None = None) -> TransferSetup:
    """Load and check everything, build the target model and apply the transfer (no training).

    model_conf None: the source's own conf (the usual case: same architecture, new vocabulary).
    dropout: the target's dropout and ctc_dropout instead of that conf's (None: the conf's).
    The fresh parts are initialized after seeding with `seed`, as steps/train.py does.
    """
    from graft.model.build import build_model, with_dropout
    from graft.train.rng import seed_everything

    lang = load_lang_dir(lang_dir)                       # MissingStageError naming stage 3
    src = source if isinstance(source, Source) else load_source(source)
    conf = with_dropout(_model_conf(model_conf, src), dropout)
    vocab = match_vocab(src.tokens, Path(lang_dir) / "tokens.txt")
    seed_everything(seed)
    model = build_model(conf, vocab_size=lang.vocab_size, blank_id=lang.blank_id)
    plan = make_plan(model, src.state, rules, vocab)
    apply_plan(model, src.state, plan)
    freeze_whole_run(model, plan)
    groups = lr_param_groups(model, plan)
    l2sp = L2SP.from_plan(plan, src.state, rules.l2sp) if rules.l2sp > 0 else None
    freezer = None
    if rules.freeze_steps > 0 and rules.freeze:
        params = dict(model.named_parameters())
        freezer = StepFreezer([params[n] for n in plan.names(frozen=True)], rules.freeze_steps)
    return TransferSetup(model, conf, lang, plan, src, groups, l2sp, freezer)


def describe(setup: TransferSetup) -> str:
    """The plan as text, with a header naming the source and target."""
    used = setup.source.info.get("checkpoints") or []
    header = (f"transfer: source {setup.source.spec.describe()} = {' + '.join(map(str, used))}, "
              f"vocab {setup.plan.vocab.source_size} "
              f"({setup.source.tokens}) -> target vocab {setup.lang.vocab_size} ({setup.lang.lang_dir})"
              + (f"\nrules: {setup.plan.rules.description}" if setup.plan.rules.description else ""))
    text = format_plan(setup.plan, header, setup.l2sp.num_params if setup.l2sp is not None else None)
    if setup.mix is not None:
        text += f"\nsource mixing:   {setup.mix.describe()}"
    return text


def transfer_record(setup: TransferSetup) -> dict[str, Any]:
    """What a checkpoint stores under extra["transfer"] (and exp_dir/transfer.json holds)."""
    spec = dataclasses.asdict(setup.source.spec)
    return {"source": {**spec, "checkpoints": setup.source.info.get("checkpoints")},
            "target_lang_dir": str(setup.lang.lang_dir), **plan_summary(setup.plan),
            "mix": None if setup.mix is None else {"path": str(setup.mix.path),
                                                   "num_source": setup.mix.num_source,
                                                   "num_target": setup.mix.num_target}}


def check_resumable(exp_dir: str | Path, setup: TransferSetup) -> Path | None:
    """If exp_dir has a checkpoint, it must come from a transfer with the same rules and lang dir."""
    from graft.train.checkpoint import latest_checkpoint, read_checkpoint

    path = latest_checkpoint(exp_dir)
    if path is None:
        return None
    extra = read_checkpoint(path, mmap=True).get("extra") or {}
    old = extra.get("transfer")
    if not old:
        raise GraftError(f"{path} is not from a layer transfer (steps/train.py run?): use a new --exp-dir")
    new = transfer_record(setup)
    diff = sorted(k for k in new["rules"]
                  if k != "description" and (old.get("rules") or {}).get(k) != new["rules"][k])
    if diff:
        raise GraftError(f"{path} was trained with other transfer rules (differ in {diff}): "
                         "use the same rules to resume, or a new --exp-dir")
    return path


def _write_records(exp_dir: Path, setup: TransferSetup) -> None:
    exp_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(exp_dir / "transfer.json") as f:
        json.dump(transfer_record(setup), f, indent=1)
        f.write("\n")
    with atomic_write(exp_dir / "transfer_plan.txt") as f:
        f.write(describe(setup) + "\n")


def add_source_mix(setup: TransferSetup, cuts_train: str | Path, exp_dir: str | Path,
                   seed: int = 0, write: bool = True) -> Path:
    """Mix the rules' source cuts into `cuts_train` (exp_dir/cuts_train_mix.jsonl.gz); the path."""
    rules = setup.plan.rules
    if not rules.mix_source_cuts:
        return Path(cuts_train)
    setup.mix = mix_cuts(cuts_train, rules.mix_source_cuts, rules.mix_source_weight,
                         Path(exp_dir) / MIXED_CUTS_NAME, setup.lang.lang_dir, seed=seed,
                         max_unk_ratio=rules.mix_max_unk_ratio, dry_run=not write)
    return setup.mix.path


def run_transfer(setup: TransferSetup, conf, dist_info=None):
    """Fine-tune `setup.model` with graft.train.loop.train on `conf` (a TrainConfig).

    Source mixing (if the rules ask) replaces conf.cuts_train by the mixed cuts. Returns the
    trainer's TrainResult.
    """
    from graft.train.ddp import barrier, init_distributed
    from graft.train.loop import train

    dist_info = dist_info or init_distributed(conf.device)
    exp_dir = Path(conf.exp_dir)
    check_resumable(exp_dir, setup)
    if setup.plan.rules.mix_source_cuts:
        # every rank runs the same checks (so an error stops all of them); rank 0 writes
        path = add_source_mix(setup, conf.cuts_train, exp_dir, conf.seed, write=dist_info.is_main)
        barrier(dist_info)
        conf = dataclasses.replace(conf, cuts_train=str(path))
    if setup.l2sp is not None and conf.ctc_weight <= 0:
        dropped = setup.l2sp.drop("ctc_output.")      # unused by the forward without CTC
        if dropped:
            log.info("L2-SP: the CTC head is not trained (ctc_weight 0): not anchoring %s", dropped)
    if dist_info.is_main:
        _write_records(exp_dir, setup)
        copy_lang_dir(setup.lang, exp_dir / "lang")
        from graft.train.run import write_model_conf

        write_model_conf(setup.model_conf, exp_dir / "model.yaml")
        log.info("layer transfer plan:\n%s", describe(setup))
    with setup.freezer.attached_to_any() if setup.freezer else contextlib.nullcontext():
        return train(setup.model, conf, setup.lang, setup.model_conf, param_groups=setup.param_groups,
                     extra_loss_fn=setup.l2sp, dist_info=dist_info,
                     checkpoint_extra={"transfer": transfer_record(setup)})
