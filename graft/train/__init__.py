"""graft.train: the transducer trainer (steps/train.py is its command line).

Usage:
    from graft.train.options import load_train_conf
    from graft.train.run import run_training
    result = run_training(load_train_conf(cuts_train=..., lang_dir=..., exp_dir=...))

    from graft.train.checkpoint import load_model_for_decoding
    model, info = load_model_for_decoding("exp/en_small", epoch=4, avg=2)

Modules, one job each:
    options     TrainConfig; defaults from conf/train.yaml, CLI parser
    data        lang dir, cut loading/filtering, speed perturbation, AsrDataset, samplers, loaders
    schedule    AdamW learning-rate schedule (warm-up + Eden-like decay), pruned-loss warm-up
    optim       AdamW over trainable parameters, per-group learning rates
    average     running float64 model mean; averaging epoch checkpoints
    checkpoint  atomic save, latest/pruning, shape-checked loading, load_model_for_decoding
    loop        train(model, conf, lang, model_conf, param_groups=, extra_loss_fn=, ...)
    ddp         torchrun process group (gloo/nccl), DDP wrapping, small collectives
    rng         save/restore all RNGs
    run_info    params.json with versions and git sha
    plot        loss curves PNG
    run         run_training(conf): lang + model + loop
"""
