#!/usr/bin/env python3
"""Stage 5: graft a trained source model onto a low-resource target language and fine-tune it.

Usage:
    python steps/transfer.py --source-exp exp/en_small --source-epoch 10 --source-avg 3 \
        --lang-dir data/lang/cs_bpe500 \
        --cuts-train data/fbank/cs/cuts_train_15m.jsonl.gz --cuts-dev data/fbank/cs/cuts_dev.jsonl.gz \
        --exp-dir exp/cs_transfer_15m --transfer-conf encoder [--copy 'encoder.layers.[0-3].*'] \
        [--freeze 'encoder.embed.*' --freeze-steps 500] [--l2sp 1e-3] [--copy-shared-pieces true] \
        [--dry-run] [any steps/train.py option: --num-epochs 4 --max-duration 200 ...]
    torchrun --nproc_per_node 2 steps/transfer.py ...                 # DDP, as steps/train.py

The target model is built for --lang-dir's vocabulary with the source's model conf (unless
--model-conf is given), initialized from the source checkpoint by the transfer rules
(--transfer-conf: a preset of conf/transfer/ or a yaml; the options below override its keys,
a repeatable pattern option replaces the yaml's list), and trained by graft.train (resumes
from --exp-dir's latest checkpoint). --dry-run prints the plan (copied / re-initialized /
frozen, parameter counts, learning-rate multipliers) and stops before training. Every check
runs before training; errors print one `ERROR: ...` line and exit 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graft.utils.cli import run_main  # noqa: E402
from graft.utils.errors import GraftError  # noqa: E402

# transfer options -> TransferRules keys (argparse dest = rule key)
RULE_KEYS = ("copy", "reinit", "copy_shared_pieces", "freeze", "freeze_steps", "lr_scales",
             "transferred_lr_scale", "layer_decay", "l2sp", "mix_source_cuts", "mix_source_weight",
             "mix_max_unk_ratio")
SOURCE_KEYS = ("source_exp", "source_lang_dir", "source_epoch", "source_avg", "source_use_averaged")


def build_parser(train_defaults: dict[str, Any]) -> argparse.ArgumentParser:
    """steps/train.py's options plus the layer-transfer options (one --help for both)."""
    from graft.train.options import build_parser as train_parser
    from graft.train.options import str2bool
    from graft.transfer.rules import presets

    p = train_parser(train_defaults)
    p.prog = "steps/transfer.py"
    p.description = (__doc__ or "").split("\n\n")[0] + (
        " Training options are those of steps/train.py; --model-conf defaults to the source's.")
    flag = {"nargs": "?", "const": True, "type": str2bool}
    s = p.add_argument_group("source model")
    s.add_argument("--source-exp", required=True, metavar="DIR", help="the source experiment dir (epoch-N.pt)")
    s.add_argument("--source-lang-dir", default=None, metavar="DIR",
                   help="the source's lang dir (default: the one it was trained with: <source-exp>/lang/, checked by fingerprint)")
    s.add_argument("--source-epoch", type=int, default=None, metavar="INT",
                   help="source epoch (None: the last)")
    s.add_argument("--source-avg", type=int, default=1, metavar="INT",
                   help="average this many source epochs")
    s.add_argument("--source-use-averaged", default=False, metavar="BOOL", **flag,
                   help="use the source's running average over those epochs")
    t = p.add_argument_group("layer transfer (override --transfer-conf)")
    t.add_argument("--transfer-conf", default=None, metavar="NAME|YAML",
                   help=f"a preset of conf/transfer/ ({', '.join(presets())}) or a yaml path")
    over = {"default": argparse.SUPPRESS}             # absent: the conf's value, else the built-in
    t.add_argument("--copy", action="append", metavar="PATTERN", **over,
                   help="copy matching parameters from the source (glob, or re:REGEX; repeatable)")
    t.add_argument("--reinit", action="append", metavar="PATTERN", **over,
                   help="re-initialize matching parameters even if --copy selects them")
    t.add_argument("--copy-shared-pieces", metavar="BOOL", **flag, **over,
                   help="copy the vocabulary rows of BPE pieces both tokens.txt share (false)")
    t.add_argument("--freeze", action="append", metavar="PATTERN", **over,
                   help="freeze matching parameters (repeatable)")
    t.add_argument("--freeze-steps", type=int, metavar="N", **over,
                   help="freeze for the first N optimizer steps (0, the default: the whole run)")
    t.add_argument("--lr-scale", dest="lr_scales", action="append", metavar="PATTERN=SCALE", **over,
                   help="learning-rate multiplier of matching parameters (repeatable)")
    t.add_argument("--transferred-lr-scale", type=float, metavar="FLOAT", **over,
                   help="learning-rate multiplier of every copied parameter (1)")
    t.add_argument("--layer-decay", type=float, metavar="FLOAT", **over,
                   help="d: copied encoder.layers.<i> of L get lr x d^(L-1-i), encoder.embed d^L (1)")
    t.add_argument("--l2sp", type=float, metavar="FLOAT", **over, help="L2-SP coefficient (0: off)")
    t.add_argument("--mix-source-cuts", metavar="PATH", **over,
                   help="source-language training cuts to mix in (tokenized with the TARGET BPE)")
    t.add_argument("--mix-source-weight", type=float, metavar="FLOAT", **over,
                   help="fraction of the mixed training cuts drawn from the source cuts")
    t.add_argument("--mix-max-unk-ratio", type=float, metavar="FLOAT", **over,
                   help="refuse mixing if more source tokens than this are <unk> in the target BPE (0.02)")
    t.add_argument("--dry-run", default=False, metavar="BOOL", **flag,
                   help="print the transfer plan and stop before training")
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[Any, argparse.Namespace]:
    """(TrainConfig, the transfer and source options)."""
    from graft.train.options import REQUIRED, TrainConfig, check_train_conf, load_train_conf, read_yaml_conf

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    defaults = load_train_conf(known.config).to_dict()
    if not (known.config and "model_conf" in read_yaml_conf(known.config)):
        defaults["model_conf"] = None                 # None: the source's model conf
    args = build_parser(defaults).parse_args(argv)
    values = vars(args)
    train_keys = set(TrainConfig.__dataclass_fields__)
    missing = [k for k in REQUIRED if values.get(k) in (None, "")]
    if missing:
        raise GraftError("missing required options: " + ", ".join("--" + k.replace("_", "-") for k in missing))
    conf = check_train_conf(TrainConfig(**{k: v for k, v in values.items() if k in train_keys}))
    rest = argparse.Namespace(**{k: v for k, v in values.items() if k not in train_keys})
    return conf, rest


def main(argv: Sequence[str] | None = None) -> None:
    from graft.train.ddp import cleanup_distributed, init_distributed
    from graft.transfer.finetune import (SourceSpec, add_source_mix, check_resumable, describe,
                                         prepare_transfer, run_transfer)
    from graft.transfer.rules import load_rules

    conf, opts = parse_args(argv)
    rules = load_rules(opts.transfer_conf, **{k: getattr(opts, k, None) for k in RULE_KEYS})
    source = SourceSpec(opts.source_exp, opts.source_lang_dir, opts.source_epoch, opts.source_avg,
                        bool(opts.source_use_averaged))
    if opts.dry_run:
        setup = prepare_transfer(source, rules, conf.lang_dir, conf.model_conf, conf.seed, conf.dropout)
        add_source_mix(setup, conf.cuts_train, conf.exp_dir, conf.seed, write=False)
        print(describe(setup))
        resume = check_resumable(conf.exp_dir, setup)
        if resume is not None:
            print(f"{conf.exp_dir} has {resume}: training would resume from it")
        print("dry run: nothing was trained or written")
        return
    dist_info = init_distributed(conf.device)
    try:
        setup = prepare_transfer(source, rules, conf.lang_dir, conf.model_conf, conf.seed, conf.dropout)
        if conf.model_conf is None:                   # recorded in params.json
            conf.model_conf = f"source ({setup.model_conf.get('name') or opts.source_exp})"
        result = run_transfer(setup, conf, dist_info)
    finally:
        cleanup_distributed(dist_info)
    if not (result.finished or result.stopped_by_budget):
        raise GraftError(f"training in {conf.exp_dir} stopped before the last epoch")


if __name__ == "__main__":
    run_main(main)
