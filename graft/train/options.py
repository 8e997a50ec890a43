"""Training options: defaults from conf/train.yaml, overridden by a recipe yaml and the CLI.

Usage:
    conf = load_train_conf(cuts_train="data/fbank/en/cuts_train.jsonl.gz", lang_dir=...,
                           exp_dir="exp/en_small")          # library use
    conf = parse_train_args(sys.argv[1:])                     # steps/train.py

conf/train.yaml is the one place defaults live: `TrainConfig` has no defaults of its own, and
every yaml key must be a field (and the reverse), so the two cannot drift apart silently.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from graft.utils.errors import GraftError

DEFAULT_CONF = Path(__file__).resolve().parents[2] / "conf" / "train.yaml"
REQUIRED = ("cuts_train", "lang_dir", "exp_dir")


@dataclass
class TrainConfig:
    """Every training option; see conf/train.yaml for the meaning and the default of each."""

    cuts_train: str | None
    cuts_dev: str | None
    lang_dir: str | None
    exp_dir: str | None
    model_conf: str
    dropout: float | None
    num_epochs: int
    max_duration: float
    max_minutes: float | None
    early_stop_patience: int
    optimizer: str
    base_lr: float
    weight_decay: float
    warm_steps: int
    lr_steps: int
    lr_epochs: float
    clip_grad_norm: float
    prune_range: int
    am_scale: float
    lm_scale: float
    simple_loss_scale: float
    ctc_weight: float
    adversarial: str | None
    adversarial_weight: float
    adversarial_ramp_steps: int
    adversarial_pool: str
    meta_block: int
    meta_step: float
    distill_from: str | None
    distill_weight: float
    distill_avg: int
    spec_augment: bool
    spec_augment_from_epoch: int
    speed_perturb: bool
    speed_factors: str
    corrupt: str
    freq_warp: float
    min_cut_duration: float
    max_cut_duration: float
    num_buckets: int
    pad_frames_to: int
    num_workers: int
    save_every_n: int
    keep_last_k: int
    average_period: int
    seed: int
    log_interval: int
    device: str
    amp: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# One-line help of each option (the defaults and longer notes are in conf/train.yaml).
HELP: dict[str, str] = {
    "cuts_train": "training cuts with fbank features (stage 2), e.g. data/fbank/en/cuts_train.jsonl.gz",
    "cuts_dev": "dev cuts: the validation loss is computed on them after each epoch",
    "lang_dir": "BPE lang dir (stage 3) with bpe.model and tokens.txt, e.g. data/lang/en_bpe500",
    "exp_dir": "experiment dir: checkpoints, log/, tensorboard/, params.json, loss.png",
    "model_conf": "model preset of conf/model/*.yaml (tiny, small, ...) or a yaml path",
    "dropout": "this run's dropout and ctc_dropout, instead of the model conf's (default: the conf's)",
    "num_epochs": "number of epochs",
    "max_duration": "seconds of audio per batch (per process)",
    "max_minutes": "wall-clock budget in minutes: stop cleanly with a checkpoint; run again to continue",
    "early_stop_patience": "stop when the greedy dev WER (computed after each epoch on --cuts-dev) has not "
                           "improved on its best for this many epochs (0: off, no dev WER)",
    "optimizer": "adamw, or scaled_adam (steps relative to each tensor's RMS, learned sizes, clipping "
                 "against the median of recent grad norms; graft/train/scaled_adam.py; base_lr ~0.045)",
    "base_lr": "peak learning rate (AdamW: absolute; scaled_adam: a fraction of each tensor's RMS)",
    "weight_decay": "AdamW weight decay (not applied to biases and norms; scaled_adam ignores it)",
    "warm_steps": "batches of linear LR warm-up and of pruned-loss warm-up",
    "lr_steps": "batch scale of the LR decay",
    "lr_epochs": "epoch scale of the LR decay",
    "clip_grad_norm": "gradient clipping: max global norm",
    "prune_range": "pruned RNN-T prune range",
    "am_scale": "acoustic scale of the pruned RNN-T simple loss",
    "lm_scale": "LM scale of the pruned RNN-T simple loss",
    "simple_loss_scale": "final weight of the simple loss (1.0 before warm-up ends)",
    "ctc_weight": "weight of the auxiliary CTC loss (0 disables it)",
    "adversarial": "domain-adversarial training: the domain the encoder learns to hide: speaker, language or "
                   "KEY:REGEX (the regex's first group; graft/train/adversarial.py); none: off",
    "adversarial_weight": "gradient-reversal scale of the domain classifier's gradient into the encoder",
    "adversarial_ramp_steps": "batches over which the reversal scale rises from 0 to --adversarial-weight",
    "adversarial_pool": "what the domain classifier reads: frame (each encoder frame) or utterance (each cut's "
                        "mean and std over its frames)",
    "meta_block": "meta-learned initialization (Reptile over the training cuts' languages, graft/train/meta.py): "
                  "batches per one-language block (0: off; one process only)",
    "meta_step": "Reptile's outer step size: the share of each block's weight change kept (1: plain training)",
    "distill_from": "knowledge distillation: teacher exp dirs (same lang dir; several: their mean posteriors) "
                    "whose CTC posteriors the student's CTC head learns (graft/train/distill.py; needs --ctc-weight > 0)",
    "distill_weight": "weight of the per-frame KL(teachers || student) in the loss",
    "distill_avg": "epochs averaged for each teacher (its last ones)",
    "spec_augment": "apply SpecAugment to training batches (true/false)",
    "spec_augment_from_epoch": "first epoch (1-based) with SpecAugment, when spec_augment is true",
    "speed_perturb": "add speed-perturbed copies of training cuts (--speed-factors), fbank on the fly (true/false)",
    "speed_factors": "speeds of the --speed-perturb copies, e.g. '0.9 1.1' (each adds 1/factor of the audio)",
    "corrupt": "add corrupted copies of training cuts: 'reverb', 'noise' or 'reverb noise' (synthetic room "
               "reverberation, coloured noise at 10-30 dB SNR; graft/train/corrupt.py), fbank on the fly",
    "freq_warp": "vocal-tract-length perturbation: warp each training utterance's mel axis by a factor "
                 "~ U(1 - x, 1 + x) (graft/train/freq_warp.py; 0: off, e.g. 0.1)",
    "min_cut_duration": "drop training cuts shorter than this (seconds)",
    "max_cut_duration": "drop training cuts longer than this (seconds)",
    "num_buckets": "duration buckets of the DynamicBucketingSampler",
    "pad_frames_to": "pad each batch's frames up to a multiple of this (fewer distinct shapes; 1: no extra padding)",
    "num_workers": "DataLoader workers (0: load batches in the training process)",
    "save_every_n": "write checkpoint-<step>.pt every N batches (0: epoch checkpoints only)",
    "keep_last_k": "keep the last K checkpoint-<step>.pt files",
    "average_period": "batches between updates of the running model average",
    "seed": "random seed (model init, sampler shuffling, augmentation)",
    "log_interval": "batches between progress lines and tensorboard points",
    "device": "auto, cpu or cuda (torchrun: cuda:<local rank>)",
    "amp": "mixed precision (bf16 autocast; the losses stay fp32): auto (on where the CPU has "
           "AMX-BF16/AVX512-BF16 or the GPU supports bf16, off elsewhere; the log says which), true, false",
}


def str2bool(value: str | bool) -> bool:
    """Parse true/false, yes/no, 1/0 (argparse type)."""
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def _converter(type_name: str):
    base = type_name.replace(" | None", "")
    conv = {"str": str, "int": int, "float": float, "bool": str2bool}[base]
    if "None" in type_name:
        def optional(value):
            if isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
                return None
            return conv(value)
        return optional
    return conv


def read_yaml_conf(path: str | Path) -> dict[str, Any]:
    """Read a training yaml; unknown keys are an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing training config {path}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise GraftError(f"{path}: expected a mapping of option: value")
    unknown = sorted(set(data) - set(_field_types()))
    if unknown:
        raise GraftError(f"{path}: unknown training options {unknown}")
    return data


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    types = _field_types()
    out = {}
    for k, v in values.items():
        try:
            out[k] = None if v is None else _converter(types[k])(v)
        except (ValueError, argparse.ArgumentTypeError) as e:
            raise GraftError(f"training option {k}: {e}") from None
    return out


# option -> (lowest allowed, whether the lowest itself is allowed): malformed values are errors.
_RANGES: dict[str, tuple[float, bool]] = {
    "num_epochs": (1, True), "dropout": (0, True), "max_duration": (0, False), "max_minutes": (0, False),
    "early_stop_patience": (0, True),
    "base_lr": (0, False), "weight_decay": (0, True), "warm_steps": (0, True), "lr_steps": (0, False),
    "lr_epochs": (0, False), "clip_grad_norm": (0, False), "prune_range": (1, True),
    "am_scale": (0, True), "lm_scale": (0, True), "simple_loss_scale": (0, True),
    "ctc_weight": (0, True), "adversarial_weight": (0, True), "adversarial_ramp_steps": (0, True),
    "meta_block": (0, True), "meta_step": (0, False), "distill_weight": (0, True), "distill_avg": (1, True),
    "freq_warp": (0, True), "spec_augment_from_epoch": (1, True), "min_cut_duration": (0, True),
    "max_cut_duration": (0, False), "num_buckets": (1, True), "pad_frames_to": (1, True), "num_workers": (0, True),
    "save_every_n": (0, True), "keep_last_k": (0, True), "average_period": (0, True),
    "log_interval": (0, True),
}


def check_train_conf(conf: TrainConfig) -> TrainConfig:
    """GraftError naming the option for a value out of its range (e.g. --num-epochs 0) or not
    finite (nan); returns `conf`."""
    import math

    for name, (low, inclusive) in _RANGES.items():
        value = getattr(conf, name)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and math.isnan(value):
            raise GraftError(f"{flag} is nan: give a number")
        if value < low or (value == low and not inclusive):
            bound = f">= {low}" if inclusive else f"> {low}"
            raise GraftError(f"{flag} must be {bound}, got {value}")
    from graft.train.amp import parse_amp
    from graft.train.data import parse_speed_factors

    conf.speed_factors = " ".join(f"{f:g}" for f in parse_speed_factors(conf.speed_factors))  # one spelling
    from graft.train.corrupt import parse_corrupt

    conf.corrupt = " ".join(parse_corrupt(conf.corrupt))     # one spelling ("" when off)
    from graft.train.freq_warp import MAX_WARP

    if conf.freq_warp >= MAX_WARP:
        raise GraftError(f"--freq-warp must be < {MAX_WARP:g} (the warp stays monotone), got {conf.freq_warp}")
    if conf.distill_from is not None and not conf.distill_from.strip():
        conf.distill_from = None
    if conf.distill_from and conf.ctc_weight <= 0:
        raise GraftError("--distill-from needs --ctc-weight > 0: the student's CTC head is what learns the "
                         "teachers' posteriors")
    if conf.meta_step > 1:
        raise GraftError(f"--meta-step must be <= 1 (the share of a block's change kept), got {conf.meta_step}")
    if conf.dropout is not None and conf.dropout >= 1:
        raise GraftError(f"--dropout must be < 1, got {conf.dropout}")
    conf.amp = parse_amp(conf.amp)
    from graft.train.adversarial import POOLS, parse_adversarial

    conf.adversarial = conf.adversarial.strip() if parse_adversarial(conf.adversarial) else None  # one spelling of off
    if conf.adversarial_pool not in POOLS:
        raise GraftError(f"--adversarial-pool must be one of {', '.join(POOLS)}, got {conf.adversarial_pool!r}")
    from graft.train.optim import OPTIMIZERS

    if conf.optimizer not in OPTIMIZERS:
        raise GraftError(f"--optimizer {conf.optimizer!r} is not one of: {', '.join(OPTIMIZERS)}")
    return conf


def load_train_conf(config: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """conf/train.yaml, then `config` (a yaml with a subset of keys), then keyword overrides."""
    values = read_yaml_conf(DEFAULT_CONF)
    missing = sorted(set(_field_types()) - set(values))
    if missing:
        raise GraftError(f"{DEFAULT_CONF} lacks training options {missing}")
    if config is not None:
        values.update(read_yaml_conf(config))
    unknown = sorted(set(overrides) - set(_field_types()))
    if unknown:
        raise GraftError(f"unknown training options {unknown}")
    values.update(overrides)
    return check_train_conf(TrainConfig(**_coerce(values)))


def build_parser(defaults: dict[str, Any]) -> argparse.ArgumentParser:
    """The steps/train.py parser: one --option per TrainConfig field, defaults from yaml."""
    p = argparse.ArgumentParser(
        prog="steps/train.py",
        description=(
            "Train a pruned RNN-T transducer (graft.model) on lhotse fbank cuts. Resumes from the "
            "latest checkpoint in --exp-dir when there is one. Works under "
            "`torchrun --nproc_per_node N` (DDP; gloo on CPU, nccl on GPU). Writes epoch-N.pt, "
            "checkpoint-<step>.pt, params.json, log/, tensorboard/ and loss.png in --exp-dir. "
            f"Defaults come from {DEFAULT_CONF} (shown below)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=(
            "Choices: AdamW (or --optimizer scaled_adam); lr = base_lr * min(1, (step+1)/warm_steps) * "
            "((step^2+lr_steps^2)/lr_steps^2)^-0.25 * ((epoch^2+lr_epochs^2)/lr_epochs^2)^-0.25. "
            "Pruned RNN-T warm-up over warm_steps: simple-loss weight 1.0 -> simple_loss_scale, "
            "pruned-loss weight 0.1 -> 1.0. Batches with a non-finite loss or gradient are skipped "
            "and counted. Running average: float64 mean of snapshots every average_period batches "
            "(decode with --use-averaged-model). Speed perturbation: 0.9x/1.1x copies with fbank "
            "computed on the fly (needs the audio). Resume: automatic from the newest checkpoint "
            "in --exp-dir (exact with --num-workers 0). Details: graft/train/*.py docstrings."
        ),
    )
    p.add_argument("--config", default=None,
                   help="a yaml with a subset of the options below (applied before the command line)")
    types = _field_types()
    for name, type_name in types.items():
        p.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=_converter(type_name),
            default=defaults.get(name), help=HELP.get(name, ""),
            metavar=type_name.replace(" | None", "").upper(),
        )
    return p


def parse_train_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse steps/train.py's command line into a TrainConfig (required options checked)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    base = load_train_conf(known.config).to_dict()
    args = build_parser(base).parse_args(argv)
    values = {k: v for k, v in vars(args).items() if k != "config"}
    missing = [k for k in REQUIRED if values.get(k) in (None, "")]
    if missing:
        raise GraftError("missing required options: " + ", ".join("--" + k.replace("_", "-") for k in missing))
    return check_train_conf(TrainConfig(**values))
