"""Stage 3, the language side of one language: the BPE lang dir, then an LM dir inside it.

`prepare_bpe` writes the lang dir `data/lang/<lang>_bpe<V>/`: bpe.model, tokens.txt and
lang.json (vocab size, token fingerprint, a hash of the training text; written last). It is
left as it is when lang.json says it was made from the same text and size, so re-building an
LM never rewrites the bpe.model that trained models depend on.

`prepare_lm` writes one LM dir per (order, pruning) below it, `<lang dir>/lm_<order>gram[_prune<t>]/`:
words.txt, lexicon.txt, lm.arpa, G.fst, L_disambig.fst, LG.fst, HLG.fst, coverage.json and
lm.json (order, pruning, hashes of the LM text and of the token table it was built for). Each
dir is filled in a temporary sibling and renamed into place: a killed run leaves no half-written dir.

OOV policy: the LM is trained on the training transcripts plus the extra LM text, and every
word of that text is in words.txt, G and the lexicon. Dev/test words outside it are OOV: they
are counted in coverage.json and excluded from the perplexity (SRILM convention; see
graft.lang.ngram). The BPE model is trained on the training transcripts only (the acoustic
model's targets); a character of the LM text it lacks is spelled `<unk>` in the lexicon
(counted in lang.json as lexicon_words_with_unk).

Usage:
    bpe_info = prepare_bpe("data/lang/cs_bpe500", "cs", train_texts, vocab_size=500)
    lm_info = prepare_lm("data/lang/cs_bpe500", train_texts, lm_texts, dev_texts, test_texts,
                         lm_order=3)                  # -> data/lang/cs_bpe500/lm_3gram/
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable

from graft.lang import bpe, graphs, lexicon, ngram
from graft.lang import word_list as word_list_mod
from graft.lang.langdir import LangDir, load_lang_dir, lm_dir_name
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


def text_hash(lines: Iterable[str]) -> str:
    """A short hash of a list of sentences (what a BPE model or an LM was made from)."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


def prepare_bpe(lang_dir: str | os.PathLike, language: str, train_texts: Iterable[str],
                vocab_size: int = 500) -> dict:
    """Train the BPE model of `lang_dir` (unless lang.json says it is up to date); return lang.json."""
    lang_dir = Path(lang_dir)
    train = clean_lines(train_texts)
    if not train:
        raise GraftError(f"the training text for {language} is empty: nothing to build {lang_dir} from")
    digest = text_hash(train)
    lang_json = lang_dir / "lang.json"
    if lang_json.is_file():
        old = json.loads(lang_json.read_text(encoding="utf-8"))
        if old.get("train_text_sha") == digest and int(old.get("vocab_size", -1)) == vocab_size \
                and old.get("fingerprint"):
            log.info("%s is up to date (same %d training sentences, vocab %d): kept", lang_dir, len(train), vocab_size)
            return old
        log.info("%s: the training text or vocab size changed: training a new BPE model", lang_dir)
    t = time.time()
    lang_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lang_dir.parent, prefix=f".tmp-{lang_dir.name}-") as tmp_name:
        tmp = Path(tmp_name)
        sp = bpe.train_bpe(train, tmp / "bpe.model", vocab_size)
        num_tokens = bpe.write_tokens(sp, tmp / "tokens.txt")
        if num_tokens != vocab_size:
            raise GraftError(f"BPE model has {num_tokens} pieces, asked for {vocab_size}")
        lang_json.unlink(missing_ok=True)  # the dir is incomplete until lang.json is back
        for name in ("bpe.model", "tokens.txt"):
            os.replace(tmp / name, lang_dir / name)
    fingerprint = load_lang_dir(lang_dir).fingerprint
    info = {
        "language": language,
        "vocab_size": vocab_size,
        "blank_id": bpe.BLANK_ID,
        "sos_eos_id": bpe.SOS_EOS_ID,
        "unk_id": bpe.UNK_ID,
        "num_tokens": num_tokens,
        "fingerprint": fingerprint,
        "train_sentences": len(train),
        "train_text_sha": digest,
        "build_seconds": round(time.time() - t, 2),
    }
    _write_json(info, lang_json)
    log.info("wrote %s (token fingerprint %s)", lang_dir, fingerprint)
    return info


def prepare_lm(
    lang_dir: str | os.PathLike,
    train_texts: Iterable[str],
    lm_texts: Iterable[str],
    dev_texts: Iterable[str],
    test_texts: Iterable[str],
    lm_order: int = 3,
    prune_threshold: float | None = None,
    extra_eval_texts: dict[str, Iterable[str]] | None = None,
    word_list_weight: float = 0.0,
) -> dict:
    """Build the LM dir of (lm_order, prune_threshold) below the BPE lang dir; return its lm.json.

    `word_list_weight` > 0: the one-word lines of `lm_texts` are a word list (e.g. inflected
    forms), not sentences: the n-gram is trained on the other lines and the transcripts, then
    interpolated with a unigram over every word at this weight (graft.lang.word_list); 0, or
    no one-word line: every line is a sentence of one n-gram model.

    `extra_eval_texts` (e.g. {"test_unseen": [...]}) get a coverage entry beside dev and test
    (evaluated only, never trained on).

    `prune_threshold` (e.g. 1e-7) entropy-prunes the LM's orders >= 2 to make smaller graphs.
    Raises GraftError when the text is empty or the vocabulary cannot be built.
    """
    start = time.time()
    seconds: dict[str, float] = {}
    lang: LangDir = load_lang_dir(lang_dir)
    sp = lang.sp
    language, vocab_size = lang.language, lang.vocab_size
    train, extra = clean_lines(train_texts), clean_lines(lm_texts)
    dev, test = clean_lines(dev_texts), clean_lines(test_texts)
    if not train:
        raise GraftError(f"the training text for {language} is empty: nothing to build an LM from")
    if not 1 <= lm_order <= 5:
        raise GraftError(f"LM order must be 1..5 (kaldingram), got {lm_order}")
    if not 0.0 <= word_list_weight < 1.0:
        raise GraftError(f"the word-list weight must be in [0, 1) (conf/lang.yaml word_list_weight), "
                         f"got {word_list_weight}")
    out_dir = lang.path / lm_dir_name(lm_order, prune_threshold)

    with atomic_dir(out_dir) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        t = time.time()
        words = lexicon.collect_words(train + extra)
        word_ids = lexicon.write_words(words, tmp / "words.txt")
        lex = lexicon.bpe_lexicon(words, sp)
        lexicon.write_lexicon(lex, tmp / "lexicon.txt")
        with_unk = sum(bpe.UNK in pieces for _, pieces in lex)
        if with_unk:
            log.warning("%d lexicon words hold characters the BPE model lacks (spelled <unk>)", with_unk)
        seconds["lexicon"] = round(time.time() - t, 2)

        t = time.time()
        sentences, word_list = (word_list_mod.split_word_list(extra) if word_list_weight > 0
                                else (extra, []))
        lm_text = tmp / "lm_train_text.txt"
        lm_text.write_text("\n".join(train + sentences) + "\n", encoding="utf-8")
        arpa = tmp / "lm.arpa"
        ngram_counts = ngram.train_arpa(lm_text, arpa, lm_order, prune_threshold)
        lm_text.unlink()
        lm = ngram.ArpaLM.read(arpa)
        if word_list:
            unigram = word_list_mod.unigram_probs(train + sentences, word_list)
            lm = word_list_mod.mix_unigram(lm, unigram, word_list_weight)
            ngram_counts = word_list_mod.write_arpa(lm, arpa)
            log.info("%s LM: %d word-list entries mixed in as a unigram at weight %g",
                     language, len(word_list), word_list_weight)
        missing = lm.vocab - set(words)
        if missing:
            raise GraftError(f"{len(missing)} ARPA words are not in words.txt, e.g. {sorted(missing)[:5]}")
        eval_sets = {"dev": dev, "test": test}
        eval_sets.update({name: clean_lines(t) for name, t in (extra_eval_texts or {}).items()})
        coverage = _coverage(lm, language, set(train) | set(extra), eval_sets)
        _write_json(coverage, tmp / "coverage.json")
        del lm
        seconds["lm"] = round(time.time() - t, 2)

        sizes, num_disambig = _graphs(tmp, lex, bpe.token_table(sp), word_ids, vocab_size, arpa, seconds)
        log.info("%s graphs: %s", language, sizes)

        info = {
            "language": language,
            "lang_dir": str(lang.path),
            "token_fingerprint": lang.fingerprint,
            "vocab_size": vocab_size,
            "num_words": len(words),
            "lexicon_words_with_unk": with_unk,
            "lm_order": lm_order,
            "lm_prune_threshold": prune_threshold,
            "lm_ngrams": ngram_counts,
            "train_sentences": len(train),
            "lm_text_sentences": len(extra) - len(word_list),
            "word_list_entries": len(word_list),
            "word_list_weight": word_list_weight if word_list else 0.0,
            "lm_text_sha": text_hash(train + extra),
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
        _write_json(info, tmp / "lm.json")
    log.info("wrote %s in %.1f s", out_dir, info["build_seconds"])
    return info


def load_lm_dir(lm_dir: str | os.PathLike, lang: LangDir | None = None) -> dict:
    """lm.json of an LM dir; GraftError when it was built for another token table than `lang`'s."""
    lm_dir = Path(lm_dir)
    lm_json = lm_dir / "lm.json"
    if not lm_json.is_file():
        raise GraftError(f"missing LM dir {lm_dir} (its lm.json; written by stage 3: run ./run.sh --stage 3)")
    info = json.loads(lm_json.read_text(encoding="utf-8"))
    if lang is not None and info.get("token_fingerprint") != lang.fingerprint:
        raise GraftError(f"{lm_dir} was built for token fingerprint {info.get('token_fingerprint')} but "
                         f"{lang.path} has {lang.fingerprint}: re-run stage 3")
    return info
