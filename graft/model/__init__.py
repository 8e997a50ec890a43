"""graft.model: the Conformer transducer (pruned RNN-T + CTC) and its losses.

Usage:
    from graft.model import build_model, load_model_conf
    model = build_model(load_model_conf("small"), vocab_size=500, blank_id=0)
"""
from graft.model.build import build_model, load_model_conf
from graft.model.transducer import Transducer

__all__ = ["build_model", "load_model_conf", "Transducer"]
