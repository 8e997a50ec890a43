"""Train from a TrainConfig: join DDP, read the lang dir, build the model, run the loop.

Usage:
    from graft.train.options import load_train_conf
    result = run_training(load_train_conf(cuts_train=..., lang_dir=..., exp_dir=...))

steps/train.py is this plus argument parsing. The model is built with the seed set (so every
fresh run starts from the same weights); under torchrun, DDP copies rank 0's weights.
"""
from __future__ import annotations

from pathlib import Path

from graft.lang.langdir import copy_lang_dir, load_lang_dir
from graft.train.ddp import cleanup_distributed, init_distributed
from graft.train.loop import TrainResult, train
from graft.train.options import TrainConfig
from graft.train.rng import seed_everything


def write_model_conf(model_conf: dict, path: Path) -> None:
    """The model's conf as a yaml (`--model-conf exp/<model>/model.yaml` builds the same model)."""
    import yaml

    from graft.utils.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        yaml.safe_dump(model_conf, f, sort_keys=False)


def run_training(conf: TrainConfig) -> TrainResult:
    """The whole training stage for `conf` (see graft.train.loop for what it writes)."""
    from graft.model.build import build_model, load_model_conf, with_dropout

    dist_info = init_distributed(conf.device)
    try:
        lang = load_lang_dir(conf.lang_dir)
        model_conf = with_dropout(load_model_conf(conf.model_conf), conf.dropout)
        seed_everything(conf.seed)
        model = build_model(model_conf, vocab_size=lang.vocab_size, blank_id=lang.blank_id)
        if dist_info.is_main:  # the model carries its lang dir and conf (decoding, transfer, baselines)
            copy_lang_dir(lang, Path(conf.exp_dir) / "lang")
            write_model_conf(model_conf, Path(conf.exp_dir) / "model.yaml")
        return train(model, conf, lang, model_conf, dist_info=dist_info)
    finally:
        cleanup_distributed(dist_info)
