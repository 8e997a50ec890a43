"""BPE units: train a sentencepiece model and write its token table.

The model's output vocabulary is exactly the lines of tokens.txt: `<blk>` is id 0 (the CTC and
transducer blank), `<sos/eos>` id 1 and `<unk>` id 2 (icefall's layout), then the BPE pieces.

Usage:
    sp = train_bpe(sentences, "data/lang/cs_bpe500/bpe.model", vocab_size=500)
    write_tokens(sp, "data/lang/cs_bpe500/tokens.txt")
    sp = load_bpe("data/lang/cs_bpe500/bpe.model")
"""
from __future__ import annotations

import io
import os
from typing import Iterable

import sentencepiece as spm

from graft.lang.symbols import read_symbols
from graft.utils.errors import GraftError
from graft.utils.io import atomic_write

BLANK = "<blk>"
SOS_EOS = "<sos/eos>"
UNK = "<unk>"
BLANK_ID = 0
SOS_EOS_ID = 1
UNK_ID = 2


def train_bpe(
    sentences: Iterable[str],
    model_path: str | os.PathLike,
    vocab_size: int = 500,
    num_threads: int = 2,
) -> spm.SentencePieceProcessor:
    """Train a BPE model on `sentences` (normalized text), write it to `model_path`, return it.

    Raises GraftError when there is no text or `vocab_size` is too large for the text.
    """
    sentences = [s for s in (" ".join(x.split()) for x in sentences) if s]
    if not sentences:
        raise GraftError("cannot train BPE: the training text is empty")
    specials = [BLANK, SOS_EOS]
    if vocab_size <= len(specials) + 1:
        raise GraftError(f"BPE vocab_size {vocab_size} is too small (needs > {len(specials) + 1})")
    proto = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=proto,
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=1.0,
            user_defined_symbols=specials,
            unk_id=UNK_ID,
            bos_id=-1,
            eos_id=-1,
            # The text is already normalized; keep it byte for byte so pieces spell the words.
            normalization_rule_name="identity",
            input_sentence_size=10_000_000,
            num_threads=num_threads,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise GraftError(
            f"sentencepiece could not train a BPE model with vocab_size {vocab_size} on "
            f"{len(sentences)} sentences: {str(e).strip().splitlines()[-1]}"
        ) from e
    with atomic_write(model_path, "wb") as f:
        f.write(proto.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    _check_layout(sp, model_path)
    return sp


def load_bpe(model_path: str | os.PathLike) -> spm.SentencePieceProcessor:
    """Load a BPE model written by train_bpe and check its special ids."""
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    _check_layout(sp, model_path)
    return sp


def _check_layout(sp: spm.SentencePieceProcessor, where: str | os.PathLike) -> None:
    if sp.piece_to_id(BLANK) != BLANK_ID or sp.unk_id() != UNK_ID:
        raise GraftError(f"{where}: expected {BLANK} at id {BLANK_ID} and {UNK} at id {UNK_ID}")


def token_table(sp: spm.SentencePieceProcessor) -> dict[str, int]:
    """Piece -> id for every piece of the model (ids 0 .. vocab_size-1)."""
    return {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}


def write_tokens(sp: spm.SentencePieceProcessor, path: str | os.PathLike) -> int:
    """Write tokens.txt (`<piece> <id>`, one line per model output); return the line count."""
    table = token_table(sp)
    with atomic_write(path) as f:
        for piece, i in table.items():
            f.write(f"{piece} {i}\n")
    return len(table)


def read_tokens(path: str | os.PathLike) -> dict[str, int]:
    """Read tokens.txt into piece -> id."""
    return read_symbols(path)

