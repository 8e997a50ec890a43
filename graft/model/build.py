"""Build a Transducer from a model conf (a preset in conf/model/ or a yaml file).

Usage:
    conf = load_model_conf("small")                  # conf/model/small.yaml
    conf = load_model_conf("exp/my_model.yaml")      # any yaml path: every key, or `base: <preset>`
    model = build_model(conf, vocab_size=500, blank_id=0)

The code has no architecture defaults: a conf names every key below (the presets do, and a
test checks it), or starts from a preset with `base: small` and overrides some keys. So a
preset that omitted a key cannot silently get another architecture from the code.

Conf keys:
    feature_dim         input fbank dimension (80)
    subsampling_factor  4, 6 or 8: 100 Hz frames -> 25, 16.7 or 12.5 Hz encoder frames
    embed_channels      channels of the front end's Conv2d layers
    encoder_dim         Conformer model dimension
    num_layers          number of Conformer blocks (encoder.layers.0 .. N-1)
    num_heads           attention heads (must divide encoder_dim)
    ff_dim              hidden size of the two macaron feed-forward modules
    conv_kernel         depthwise conv kernel over encoder frames (odd)
    pos_enc             "rel" (relative-position attention) or "abs" (sinusoids added once)
    dropout             dropout inside the encoder
    dropout_shared_time true: each dropout mask of the encoder (and the CTC head) is drawn once per
                        utterance and channel and shared by all frames (attention weights: once
                        per key, shared by all queries), as icefall's Zipformer does in its
                        feed-forward modules; ~1/T of the random numbers (the masks cost ~25 % of a
                        bf16 training step drawn per element). false: a mask per element (optional
                        key: checkpoints saved before it existed were built with false)
    decoder_dim         stateless decoder embedding dimension
    context_size        tokens of left context the decoder sees (2 = bigram-like)
    joiner_dim          joiner hidden dimension
    ctc_dropout         dropout before the CTC head's Linear
    input_norm          "utterance" (mean/variance normalization of each utterance's valid
                        frames, inside the encoder) or "none"
    norm_style          "conformer" (a LayerNorm ending every block; the default, which
                        checkpoints saved before this key existed were built with) or "pre"
                        (pre-LN blocks + one final LayerNorm `encoder.norm_out`; the presets:
                        it leaves the CTC all-blank plateau sooner on small data)
    base                a preset this conf starts from (its keys are overridden by the others)
    name, description   free text, ignored
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from graft.model.decoder import StatelessDecoder
from graft.model.encoder import NORM_STYLES, ConformerEncoder
from graft.model.joiner import Joiner
from graft.model.subsampling import SUBSAMPLING_FACTORS
from graft.model.transducer import Transducer
from graft.utils.errors import GraftError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"

KEYS = ("feature_dim", "subsampling_factor", "embed_channels", "encoder_dim", "num_layers", "num_heads",
        "ff_dim", "conv_kernel", "pos_enc", "dropout", "decoder_dim", "context_size", "joiner_dim",
        "ctc_dropout", "input_norm", "norm_style", "dropout_shared_time")
# Keys added after checkpoints were written without them: a conf that lacks one gets the value
# those checkpoints were built with (the presets name every key all the same).
LEGACY_DEFAULTS = {"dropout_shared_time": False}
_FREE_TEXT = ("name", "description")


def presets() -> list[str]:
    """Names of the presets in conf/model/."""
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def _check(conf: dict[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(set(conf) - set(KEYS) - set(_FREE_TEXT) - {"base"})
    if unknown:
        raise GraftError(f"{source}: unknown model conf keys {unknown}; known: {sorted(KEYS)}")
    conf = dict(conf)
    base = conf.pop("base", None)
    if base is not None:
        if str(base) not in presets():
            raise GraftError(f"{source}: base {base!r} is not a preset ({presets()})")
        conf = {**load_model_conf(str(base)), **conf}
    conf = {**LEGACY_DEFAULTS, **conf}
    missing = [k for k in KEYS if k not in conf]
    if missing:
        raise GraftError(f"{source}: model conf lacks {missing}: give every key, or start from a preset "
                         f"with `base: small` (presets: {presets()})")
    full = conf
    if full["subsampling_factor"] not in SUBSAMPLING_FACTORS:
        raise GraftError(f"{source}: subsampling_factor must be one of {SUBSAMPLING_FACTORS}, "
                         f"got {full['subsampling_factor']}")
    if full["encoder_dim"] % full["num_heads"] or full["encoder_dim"] % 2:
        raise GraftError(f"{source}: encoder_dim {full['encoder_dim']} must be even and "
                         f"divisible by num_heads {full['num_heads']}")
    if full["conv_kernel"] % 2 != 1:
        raise GraftError(f"{source}: conv_kernel must be odd, got {full['conv_kernel']}")
    if full["pos_enc"] not in ("rel", "abs"):
        raise GraftError(f"{source}: pos_enc must be 'rel' or 'abs', got {full['pos_enc']!r}")
    if full["norm_style"] not in NORM_STYLES:
        raise GraftError(f"{source}: norm_style must be one of {NORM_STYLES}, got {full['norm_style']!r}")
    if full["input_norm"] not in ("utterance", "none"):
        raise GraftError(f"{source}: input_norm must be 'utterance' or 'none', got {full['input_norm']!r}")
    if not isinstance(full["dropout_shared_time"], bool):
        raise GraftError(f"{source}: dropout_shared_time must be true or false, got {full['dropout_shared_time']!r}")
    if full["context_size"] < 1:
        raise GraftError(f"{source}: context_size must be >= 1, got {full['context_size']}")
    return full


def load_model_conf(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """A preset name ("tiny", "small", ...) or a yaml path -> the full conf (defaults filled in).

    A bare name (no directory part, no .yaml/.yml suffix) is a preset when conf/model/ has
    it, so a folder or file named `small` in the current directory does not shadow the preset;
    otherwise a bare name is read as a file if one exists there.
    """
    text = str(name_or_path)
    path = Path(text)
    bare = path.suffix not in (".yaml", ".yml") and len(path.parts) == 1
    if bare:
        preset = CONF_DIR / f"{text}.yaml"
        if preset.is_file():
            path = preset
        elif not path.is_file():
            raise GraftError(f"unknown model preset {text!r} (no {preset}); presets: {presets()}")
    if path.is_dir():
        raise GraftError(f"model conf {path} is a directory, not a yaml file")
    if not path.exists():
        raise GraftError(f"model conf {path} does not exist")
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    if not isinstance(conf, dict):
        raise GraftError(f"{path}: a model conf must be a mapping of keys to values")
    return _check(conf, str(path))


def with_dropout(conf: dict[str, Any], dropout: float | None) -> dict[str, Any]:
    """`conf` with its dropout and ctc_dropout set to `dropout` (a copy; None: `conf` unchanged).
    The training option `--dropout` (graft.train.options) goes through here."""
    if dropout is None:
        return conf
    return {**conf, "dropout": float(dropout), "ctc_dropout": float(dropout)}


def build_model(conf: dict[str, Any], vocab_size: int, blank_id: int = 0) -> Transducer:
    """A freshly initialised Transducer for `conf` (every key of KEYS, or `base`)."""
    c = _check(dict(conf), "model conf")
    encoder = ConformerEncoder(
        feature_dim=c["feature_dim"], dim=c["encoder_dim"], num_layers=c["num_layers"],
        num_heads=c["num_heads"], ff_dim=c["ff_dim"], conv_kernel=c["conv_kernel"],
        subsampling_factor=c["subsampling_factor"], embed_channels=c["embed_channels"],
        dropout=c["dropout"], pos_enc=c["pos_enc"], input_norm=c["input_norm"],
        norm_style=c["norm_style"], dropout_shared_time=c["dropout_shared_time"])
    decoder = StatelessDecoder(vocab_size, c["decoder_dim"], blank_id, c["context_size"])
    joiner = Joiner(c["encoder_dim"], c["decoder_dim"], c["joiner_dim"], vocab_size)
    model = Transducer(encoder, decoder, joiner, vocab_size, blank_id, c["ctc_dropout"])
    if c["dropout_shared_time"]:
        model.ctc_output[0].shared_dim = 1                 # (N, T, D): one mask for all frames
    return model


def count_parameters(model: Transducer) -> dict[str, int]:
    """Parameter counts: total and per top-level module."""
    counts = {name: sum(p.numel() for p in module.parameters())
              for name, module in model.named_children()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
