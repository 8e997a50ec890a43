"""The BPE lang dir (stage 3): its one reader, with a content fingerprint.

Usage:
    lang = load_lang_dir("data/lang/cs_bpe150")
    ids = lang.encode(["dobrý den"])            # token ids (sentencepiece ids, <blk> = 0)
    lang.check_fingerprint(ckpt["lang"]["fingerprint"], "the model in exp/cs_small")
    lm = lang.lm_dir(order=3)                   # data/lang/cs_bpe150/lm_3gram (words, G, HLG)

A lang dir holds `bpe.model`, `tokens.txt` (`<piece> <id>`, `<blk>` = 0; the lines are exactly
the model's output vocabulary) and `lang.json` (written last). The fingerprint is a hash of the
token table (every piece with its id): two lang dirs with the same fingerprint give token ids
the same meaning, whatever their paths; checkpoints record it, and decoding and transfer refuse
a lang dir whose fingerprint differs from the model's. The word LM and decoding graphs live in
LM dirs below it, one per (order, pruning): see graft.lang.prepare.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graft.lang.symbols import invert, read_symbols
from graft.utils.errors import GraftError, MissingStageError, require_file

BLANK = "<blk>"


def token_fingerprint(tokens: dict[str, int]) -> str:
    """A short hash of a token table (piece -> id): equal iff every id means the same piece."""
    text = "".join(f"{p} {i}\n" for p, i in sorted(tokens.items(), key=lambda kv: kv[1]))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def lm_dir_name(order: int, prune_threshold: float | None = None) -> str:
    """The LM dir of an order and pruning, e.g. `lm_3gram` or `lm_4gram_prune1e-07`."""
    return f"lm_{order}gram" + (f"_prune{prune_threshold:g}" if prune_threshold else "")


@dataclass
class LangDir:
    """A BPE lang dir: token ids are sentencepiece ids, `<blk>` is blank (id 0)."""

    path: Path
    tokens: dict[str, int]
    blank_id: int
    fingerprint: str
    meta: dict = field(default_factory=dict, repr=False)
    _sp: Any = field(default=None, repr=False)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def lang_dir(self) -> Path:  # the name checkpoints and older callers use
        return self.path

    @property
    def language(self) -> str:
        return str(self.meta.get("language", ""))

    @property
    def id2token(self) -> dict[int, str]:
        return invert(self.tokens)

    @property
    def sp(self):
        """The sentencepiece model (loaded on first use)."""
        if self._sp is None:
            import sentencepiece as spm

            bpe = require_file(self.path / "bpe.model", stage=3, what="BPE model")
            self._sp = spm.SentencePieceProcessor(model_file=str(bpe))
            if self._sp.get_piece_size() != self.vocab_size:
                raise GraftError(f"{bpe} has {self._sp.get_piece_size()} pieces but {self.path}/tokens.txt "
                                 f"has {self.vocab_size} lines: the lang dir is inconsistent, re-run stage 3")
        return self._sp

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts, out_type=int)

    def info(self) -> dict[str, Any]:
        """What a checkpoint records of its lang dir."""
        return {"lang_dir": str(self.path.resolve()), "vocab_size": self.vocab_size,
                "blank_id": self.blank_id, "fingerprint": self.fingerprint, "language": self.language}

    def check_fingerprint(self, expected: str | None, whose: str) -> None:
        """GraftError naming both fingerprints when `expected` (a model's) differs from this dir's."""
        if expected and expected != self.fingerprint:
            raise GraftError(
                f"{self.path} (token fingerprint {self.fingerprint}) is not the lang dir {whose} was "
                f"trained with (fingerprint {expected}): its token ids mean other pieces. Use that "
                f"model's own lang dir (it is copied into its exp dir as lang/), or retrain")

    def lm_dir(self, order: int, prune_threshold: float | None = None) -> Path:
        """The LM dir below this lang dir for an order and pruning (may not exist yet)."""
        return self.path / lm_dir_name(order, prune_threshold)


def load_lang_dir(path: str | os.PathLike) -> LangDir:
    """Read a lang dir's token table and lang.json; GraftError naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise MissingStageError(f"missing lang dir {path} (written by stage 3: run ./run.sh --stage 3)")
    tokens_txt = require_file(path / "tokens.txt", stage=3, what="token list")
    tokens = read_symbols(tokens_txt)
    if sorted(tokens.values()) != list(range(len(tokens))):
        raise GraftError(f"{tokens_txt}: ids must be 0..{len(tokens) - 1}, each once: re-run stage 3")
    blank_id = tokens.get(BLANK, -1)
    if blank_id != 0:
        raise GraftError(f"{tokens_txt}: <blk> must be id 0 (found {blank_id}): re-run stage 3")
    meta: dict = {}
    lang_json = path / "lang.json"
    if lang_json.exists():
        try:
            meta = json.loads(lang_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise GraftError(f"{lang_json} is not valid JSON ({e}): re-run stage 3") from None
        if int(meta.get("vocab_size", len(tokens))) != len(tokens):
            raise GraftError(f"{lang_json} says vocab_size {meta['vocab_size']} but {tokens_txt} "
                             f"has {len(tokens)} lines: re-run stage 3")
    fingerprint = token_fingerprint(tokens)
    if meta.get("fingerprint") and meta["fingerprint"] != fingerprint:
        raise GraftError(f"{lang_json} records token fingerprint {meta['fingerprint']} but {tokens_txt} "
                         f"hashes to {fingerprint}: the dir was edited by hand; re-run stage 3")
    return LangDir(path, tokens, blank_id, fingerprint, meta)


def copy_lang_dir(lang: LangDir, dest: str | os.PathLike) -> Path:
    """Copy the BPE side (bpe.model, tokens.txt, lang.json) into `dest` (a model's exp dir
    `lang/`), so that the model carries its own lang dir; kept when it already holds the same tokens."""
    import shutil

    from graft.utils.io import atomic_dir

    dest = Path(dest)
    if (dest / "tokens.txt").is_file():
        try:
            if load_lang_dir(dest).fingerprint == lang.fingerprint:
                return dest
        except GraftError:
            pass
    with atomic_dir(dest) as tmp:
        for name in ("bpe.model", "tokens.txt", "lang.json"):
            if (lang.path / name).is_file():
                shutil.copy2(lang.path / name, tmp / name)
    return dest


def model_lang_dir(exp_dir: str | os.PathLike, recorded: dict | None = None,
                   override: str | os.PathLike | None = None) -> LangDir:
    """The lang dir a trained model in `exp_dir` was trained with: `override` if given, else the
    copy in `<exp_dir>/lang/`, else the path its checkpoint records; its fingerprint is checked
    against the checkpoint's (`recorded`: {"lang_dir", "fingerprint"})."""
    recorded = recorded or {}
    candidates = [Path(override)] if override else [Path(exp_dir) / "lang"] + (
        [Path(recorded["lang_dir"])] if recorded.get("lang_dir") else [])
    for path in candidates:
        if (path / "tokens.txt").is_file():
            lang = load_lang_dir(path)
            lang.check_fingerprint(recorded.get("fingerprint"), f"the model in {exp_dir}")
            if recorded.get("vocab_size") is not None and lang.vocab_size != int(recorded["vocab_size"]):
                raise GraftError(f"{path}/tokens.txt has {lang.vocab_size} tokens but the model in {exp_dir} "
                                 f"has {recorded['vocab_size']} outputs: pass the lang dir it was trained with")
            return lang
    raise GraftError(f"cannot find the lang dir of the model in {exp_dir}: looked in "
                     f"{', '.join(map(str, candidates))}; pass it (--source-lang-dir / --lang-dir)")
