"""Step defaults from one YAML file in conf/, applied to an argparse parser (checked both ways).

Usage:
    p = argparse.ArgumentParser()
    p.add_argument("--beam", type=int, help="...")          # no default here
    apply_conf_defaults(p, "decode")                        # defaults from conf/decode.yaml

Every option of the parser (but the ones a step owns alone, passed in `own`: paths, the sets to
decode) must have a key, and the parser must declare no default of its own, so a default lives
in exactly one place. A file may serve several steps (conf/decode.yaml: decoding and scoring):
a step reads the keys it has options for.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterable

import yaml

from graft.utils.errors import GraftError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def load_conf(name: str) -> dict[str, Any]:
    """conf/<name>.yaml as a dict; GraftError naming the file when it is missing or malformed."""
    path = CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        raise GraftError(f"missing configuration {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise GraftError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise GraftError(f"{path} must be a mapping of option: value")
    return data


def apply_conf_defaults(parser: argparse.ArgumentParser, name: str, own: Iterable[str] = ()) -> dict[str, Any]:
    """Set the parser's defaults from conf/<name>.yaml; return the keys it used. An option (not in
    `own`) without a key, or with a default of its own, is a GraftError (a programming slip)."""
    conf = load_conf(name)
    own = set(own)
    actions = [a for a in parser._actions if a.dest != "help" and a.dest not in own]
    missing = sorted(a.dest for a in actions if a.dest not in conf)
    coded = sorted(a.dest for a in actions if a.default not in (None, argparse.SUPPRESS))
    if missing or coded:
        raise GraftError(f"conf/{name}.yaml and {parser.prog} disagree: options without a key {missing}, "
                         f"options with a default in the code {coded}")
    used = {a.dest: conf[a.dest] for a in actions}
    parser.set_defaults(**used)
    for a in actions:
        a.help = (a.help or "") + f" (default: {conf[a.dest]}, conf/{name}.yaml)"
    return used
