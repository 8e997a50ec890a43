"""Stage 3, the language side of one language: build a whole lang dir, atomically.

Writes bpe.model, tokens.txt, words.txt, lexicon.txt, lm_<order>gram.arpa, G.fst,
L_disambig.fst, LG.fst, HLG.fst, coverage.json and lang.json (see CONVENTIONS.md). The dir is
filled in a temporary sibling and renamed into place at the end: a killed run leaves no
half-written lang dir.

OOV policy: the LM is trained on the training transcripts plus the extra LM text, and every
word of that text is in words.txt, G and the lexicon. Dev/test words outside it are OOV: they
are counted in coverage.json and excluded from the perplexity (SRILM convention; see
graft.lang.ngram). The BPE model is trained on the training transcripts only (the acoustic
model's targets); a character of the LM text it lacks is spelled `<unk>` in the lexicon
(counted in lang.json as lexicon_words_with_unk).

Usage:
    info = prepare_lang("data/lang/cs_bpe500", "cs", train_texts, lm_texts, dev_texts,
                        test_texts, vocab_size=500, lm_order=3)
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable

from graft.lang import bpe, graphs, lexicon, ngram
from graft.utils.errors import GraftError
from graft.utils.io import atomic_dir, atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)


def clean_lines(texts: Iterable[str]) -> list[str]:
    """Collapse whitespace and drop empty lines (the texts are already normalized)."""
    return [s for s in (" ".join(t.split()) for t in texts) if s]


def _write_json(obj: dict, path: Path) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _coverage(lm: ngram.ArpaLM, language: str, lm_sentences: set[str], splits: dict[str, list[str]]) -> dict:
    coverage: dict = {
        "lm_vocabulary": len(lm.vocab),
        "oov_policy": "OOV words are excluded from perplexity (SRILM convention) and counted in oov_words",
    }
    for split, texts in splits.items():
        c = coverage[split] = ngram.evaluate_text(lm, texts)
        c["sentences_in_lm_text"] = sum(s in lm_sentences for s in texts)
        log.info("%s %s: %d words, coverage %s (%d OOV), perplexity %s", language, split,
                 c["words"], c["word_coverage"], c["oov_words"], c["perplexity"])
        if c["sentences_in_lm_text"]:
            log.warning("%d %s sentences are in the LM training text", c["sentences_in_lm_text"], split)
    return coverage


def _graphs(d: Path, lex: lexicon.Lexicon, token_ids: dict[str, int], word_ids: dict[str, int],
            vocab_size: int, arpa: Path, seconds: dict[str, float]) -> tuple[dict, int]:
    """Write G, L_disambig, LG, HLG into `d`; return their sizes and the number of `#k`."""
    t = time.time()
    G = graphs.make_g(arpa, d / "words.txt", d / "G.fst")
    lex_disambig, max_disambig = lexicon.add_disambig(lex)
    L = graphs.make_lexicon_fst(lex_disambig, token_ids, word_ids, vocab_size)
    L.write(str(d / "L_disambig.fst"))
    sizes = {"G": graphs.fst_size(G, d / "G.fst"), "L_disambig": graphs.fst_size(L, d / "L_disambig.fst")}
    LG = graphs.compose_lg(L, G)
    del L, G
    LG.write(str(d / "LG.fst"))
    sizes["LG"] = graphs.fst_size(LG, d / "LG.fst")
    seconds["LG"] = round(time.time() - t, 2)

    t = time.time()
    H = graphs.make_ctc_topo(vocab_size, max_disambig + 1)
    HLG = graphs.compose_hlg(H, LG, first_disambig=graphs.disambig_label(0, vocab_size))
    del H, LG
    HLG.write(str(d / "HLG.fst"))
    sizes["HLG"] = graphs.fst_size(HLG, d / "HLG.fst")
    seconds["HLG"] = round(time.time() - t, 2)
    return sizes, max_disambig + 1


def prepare_lang(
    out_dir: str | os.PathLike,
    language: str,
    train_texts: Iterable[str],
    lm_texts: Iterable[str],
    dev_texts: Iterable[str],
    test_texts: Iterable[str],
    vocab_size: int = 500,
    lm_order: int = 3,
    prune_threshold: float | None = None,
) -> dict:
    """Build the lang dir `out_dir` for `language`; return the content of its lang.json.

    `prune_threshold` (e.g. 1e-7) entropy-prunes the LM's orders >= 2 to make smaller graphs.
    Raises GraftError when the training text is empty or the vocabulary cannot be built.
    """
    start = time.time()
    seconds: dict[str, float] = {}
    train, extra = clean_lines(train_texts), clean_lines(lm_texts)
    dev, test = clean_lines(dev_texts), clean_lines(test_texts)
    if not train:
        raise GraftError(f"the training text for {language} is empty: nothing to build {out_dir} from")
    if not 1 <= lm_order <= 5:
        raise GraftError(f"LM order must be 1..5 (kaldingram), got {lm_order}")

    with atomic_dir(out_dir) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        t = time.time()
        sp = bpe.train_bpe(train, tmp / "bpe.model", vocab_size)
        num_tokens = bpe.write_tokens(sp, tmp / "tokens.txt")
        if num_tokens != vocab_size:
            raise GraftError(f"BPE model has {num_tokens} pieces, asked for {vocab_size}")
        words = lexicon.collect_words(train + extra)
        word_ids = lexicon.write_words(words, tmp / "words.txt")
        lex = lexicon.bpe_lexicon(words, sp)
        lexicon.write_lexicon(lex, tmp / "lexicon.txt")
        with_unk = sum(bpe.UNK in pieces for _, pieces in lex)
        if with_unk:
            log.warning("%d lexicon words hold characters the BPE model lacks (spelled <unk>)", with_unk)
        seconds["bpe_lexicon"] = round(time.time() - t, 2)

        t = time.time()
        lm_text = tmp / "lm_train_text.txt"
        lm_text.write_text("\n".join(train + extra) + "\n", encoding="utf-8")
        arpa = tmp / f"lm_{lm_order}gram.arpa"
        ngram_counts = ngram.train_arpa(lm_text, arpa, lm_order, prune_threshold)
        lm_text.unlink()
        lm = ngram.ArpaLM.read(arpa)
        missing = lm.vocab - set(words)
        if missing:
            raise GraftError(f"{len(missing)} ARPA words are not in words.txt, e.g. {sorted(missing)[:5]}")
        coverage = _coverage(lm, language, set(train) | set(extra), {"dev": dev, "test": test})
        _write_json(coverage, tmp / "coverage.json")
        del lm
        seconds["lm"] = round(time.time() - t, 2)

        sizes, num_disambig = _graphs(tmp, lex, bpe.token_table(sp), word_ids, vocab_size, arpa, seconds)
        log.info("%s graphs: %s", language, sizes)

        info = {
            "language": language,
            "vocab_size": vocab_size,
            "blank_id": bpe.BLANK_ID,
            "sos_eos_id": bpe.SOS_EOS_ID,
            "unk_id": bpe.UNK_ID,
            "num_tokens": num_tokens,
            "num_words": len(words),
            "lexicon_words_with_unk": with_unk,
            "lm_order": lm_order,
            "lm_prune_threshold": prune_threshold,
            "lm_ngrams": ngram_counts,
            "train_sentences": len(train),
            "lm_text_sentences": len(extra),
            "graph_labels": {
                "input": "token id + 1 (0 is epsilon)",
                "output": "word id in words.txt",
                "disambig_first_label": graphs.disambig_label(0, vocab_size),
                "num_disambig": num_disambig,
            },
            "graphs": sizes,
            "seconds": seconds,
            "build_seconds": round(time.time() - start, 2),
        }
        _write_json(info, tmp / "lang.json")
    log.info("wrote %s in %.1f s", out_dir, info["build_seconds"])
    return info
