"""Layer transfer: graft a trained source-language model onto a target language.

Usage:
    from graft.transfer.finetune import SourceSpec, prepare_transfer, run_transfer
    from graft.transfer.rules import load_rules
    setup = prepare_transfer(SourceSpec("exp/en_small", "data/lang/en_bpe500"),
                             load_rules("encoder"), "data/lang/cs_bpe500")

Modules: rules (patterns and options), vocab (shared BPE pieces), plan (what happens to each
parameter, checks, LR groups), freeze (freezing for the first N steps), regularize (L2-SP),
mix (source cuts mixed into the target data), finetune (the whole stage on graft.train).
The executable is steps/transfer.py.
"""
