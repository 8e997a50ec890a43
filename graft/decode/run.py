"""Decode one cut set with a trained model by several methods; write what scoring reads.

Methods:
    greedy     transducer greedy search                  -> <set>/hyp.txt
    beam       transducer modified beam search (n-best)  -> <set>/nbest.jsonl (LM re-scoring)
    beam-lex   the same inside the word lexicon, word LM  -> <set>/nbest.jsonl (LM re-scoring)
               fused at lex_lm_weight (graft.decode.lexicon_search)
    ctc-hlg-rnnt  HLG lattices' n-best, re-scored by CTC  -> <set>/nbest.jsonl (LM re-scoring),
               and transducer (graft.decode.joint_rescore)   <set>/hlg/ (the lattices)
    ctc-greedy CTC head, best path                       -> <set>/hyp.txt
    ctc-hlg    CTC head, HLG lattices (kaldi-decoder)    -> <set>/lats/ (LM-weight sweeps)
Each `<decode_root>/<method>/<set>/` also gets `ref.txt` and `decode.json` (settings, RTF).
The encoder runs once per set; its time is shared by every method's RTF (encoder + search).
A method's set dir is built aside and replaces the old one only on success.

Usage:
    model, info = load_model_for_decoding("exp/en_small", epoch=8, avg=3)
    decode_set(model, "data/fbank/en/cuts_dev.jsonl.gz", load_lang_dir("data/lang/en_bpe500"),
               "data/lang/en_bpe500/lm_3gram", "exp/en_small/decode_epoch8_avg3", "dev",
               ["greedy", "beam", "ctc-hlg"], DecodeOptions(lm_weights=[0.1, 0.3, 0.5], num_jobs=2), info)
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset.collation import collate_features
from tqdm import tqdm

from graft.decode.ctc_lattice import LATS_DIR, SCP_NAME, LatticeDecodeConfig, decode_lattices, middle_lm_weight
from graft.decode.joint_rescore import joint_nbest, lexicon_spellings
from graft.decode.lexicon_search import lexicon_beam_search, load_lexicon_search
from graft.decode.lattice_rescore import LatticeArrays, read_lattice, read_scp
from graft.decode.nbest_rescore import NbestEntry, nbest_entry, write_nbest
from graft.decode.search import ctc_greedy_search, greedy_search, modified_beam_search
from graft.lang.langdir import LangDir
from graft.lang.symbols import invert, read_symbols, tokens_to_words
from graft.train.amp import cpu_fast_bf16
from graft.data.kaldi_text import write_text
from graft.utils.errors import GraftError, require_file
from graft.utils.io import atomic_dir, atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

METHODS = ("greedy", "beam", "beam-lex", "ctc-greedy", "ctc-hlg", "ctc-hlg-rnnt")
NEEDS_LM_DIR = ("beam-lex", "ctc-hlg", "ctc-hlg-rnnt")


@dataclass
class DecodeOptions:
    """Search settings shared by the methods."""

    beam: int = 4
    num_best: int = 8
    lm_weights: list[float] = field(default_factory=lambda: [0.1 * i for i in range(1, 16)])
    search_beam: float = 12.0
    lattice_beam: float = 6.0
    num_jobs: int = 2
    max_duration: float = 200.0
    lex_beam: int = 8
    lex_lm_weight: float = 0.3
    hlg_nbest: int = 20
    rnnt_weight: float = 0.5
    bf16: str = "auto"   # ctc-hlg-rnnt's joiner: auto (where the CPU has bf16), on, off


@dataclass
class EncodedSet:
    """Encoder outputs of a cut set, kept in memory for every method."""

    ids: list[str]
    refs: dict[str, list[str]]
    durations: dict[str, float]
    enc: list[torch.Tensor]  # (T', D) per utterance
    ctc_log_probs: list[torch.Tensor]  # (T', V) per utterance
    encoder_seconds: float

    @property
    def audio_seconds(self) -> float:
        return sum(self.durations.values())


def check_lang_matches(lang: LangDir, vocab_size: int, info: dict | None) -> dict[int, str]:
    """id -> token of the lang dir; GraftError when it is not the one the model was trained with."""
    source = str((info or {}).get("exp_dir") or (info or {}).get("checkpoints") or "the model")
    lang.check_fingerprint((info or {}).get("fingerprint"), f"the model in {source}")
    if lang.vocab_size != vocab_size:
        raise GraftError(f"{lang.path}/tokens.txt has {lang.vocab_size} tokens but the model in {source} "
                         f"has {vocab_size} outputs: decode with the lang dir the model was trained on")
    return lang.id2token


@torch.no_grad()
def encode_set(model, cuts_path: str | Path, max_duration: float = 200.0) -> EncodedSet:
    """Run the encoder (and CTC head) over every cut of `cuts_path`, in duration-sorted batches."""
    cuts = CutSet.from_file(require_file(cuts_path, stage=2, what="the features manifest")).to_eager()
    if len(cuts) == 0:
        raise GraftError(f"{cuts_path}: no cuts to decode")
    missing = [c.id for c in cuts if not c.has_features]
    if missing:
        raise GraftError(f"{cuts_path}: {len(missing)} cuts have no features (e.g. {missing[0]}): run stage 2")
    ordered = sorted(cuts, key=lambda c: c.duration, reverse=True)
    out = EncodedSet([], {}, {}, [], [], 0.0)
    batch: list = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(ordered), desc=f"encode {Path(cuts_path).name}", unit="utt")

    def flush() -> None:
        feats, lens = collate_features(CutSet.from_cuts(batch))
        enc, enc_lens = model.encoder(feats, lens)
        logp = model.ctc_output(enc)
        for i, cut in enumerate(batch):
            n = int(enc_lens[i])
            out.ids.append(cut.id)
            out.refs[cut.id] = " ".join(s.text for s in cut.supervisions).split()
            out.durations[cut.id] = cut.duration
            out.enc.append(enc[i, :n].clone())
            out.ctc_log_probs.append(logp[i, :n].clone())
        bar.update(len(batch))
        batch.clear()

    for cut in ordered:
        if batch and sum(c.duration for c in batch) + cut.duration > max_duration:
            flush()
        batch.append(cut)
    flush()
    bar.close()
    out.encoder_seconds = time.perf_counter() - t0
    return out


def _batches(encoded: EncodedSet, size: int = 32):
    for i in range(0, len(encoded.ids), size):
        idx = range(i, min(i + size, len(encoded.ids)))
        encs = [encoded.enc[j] for j in idx]
        lens = torch.tensor([e.shape[0] for e in encs])
        padded = torch.nn.utils.rnn.pad_sequence(encs, batch_first=True)
        yield [encoded.ids[j] for j in idx], padded, lens


def _write_nbest(set_dir: Path, entries: list[NbestEntry], order: list[str]) -> None:
    """`nbest.jsonl` (stage 7 re-scores it) and `hyp.txt` (each list's first hypothesis)."""
    write_nbest(set_dir / "nbest.jsonl", entries)
    write_text(set_dir / "hyp.txt", {e.utt_id: e.hyps[0].words if e.hyps else [] for e in entries}, order=order)


@torch.no_grad()
def _run_method(method: str, model, encoded: EncodedSet, lm_dir: Path | None, set_dir: Path,
                id2token: dict[int, str], opts: DecodeOptions) -> dict:
    t0 = time.perf_counter()
    extra: dict = {}
    if method in ("greedy", "ctc-greedy"):
        hyps: dict[str, list[str]] = {}
        for ids, enc, lens in _batches(encoded):
            if method == "greedy":
                tokens = greedy_search(model, enc, lens)
            else:
                tokens = ctc_greedy_search(model.ctc_output(enc), lens, blank_id=model.blank_id)
            for uid, tok in zip(ids, tokens):
                hyps[uid] = tokens_to_words(tok, id2token)
        write_text(set_dir / "hyp.txt", hyps, order=encoded.ids)
    elif method == "beam":
        entries = []
        for ids, enc, lens in _batches(encoded, size=16):
            nbest = modified_beam_search(model, enc, lens, beam=opts.beam, num_best=opts.num_best)
            entries += [nbest_entry(uid, hyps, id2token) for uid, hyps in zip(ids, nbest)]
        _write_nbest(set_dir, entries, encoded.ids)
    elif method == "beam-lex":
        trie, g = load_lexicon_search(lm_dir, {piece: i for i, piece in id2token.items()})
        entries = []
        for ids, enc, lens in _batches(encoded, size=16):
            nbest = lexicon_beam_search(model, enc, lens, trie, g, lm_weight=opts.lex_lm_weight,
                                        beam=opts.lex_beam, num_best=opts.num_best)
            entries += [nbest_entry(uid, hyps, id2token) for uid, hyps in zip(ids, nbest)]
        _write_nbest(set_dir, entries, encoded.ids)
        extra = {"lexicon": {"words": trie.num_words, "trie_nodes": trie.num_nodes,
                             "lm_weight": opts.lex_lm_weight}}
    elif method == "ctc-hlg-rnnt":
        entries, extra = _joint_nbest(model, encoded, lm_dir, set_dir, id2token, opts)
        _write_nbest(set_dir, entries, encoded.ids)
    elif method == "ctc-hlg":
        cfg = LatticeDecodeConfig(lm_weight=middle_lm_weight(opts.lm_weights), beam=opts.search_beam,
                                  lattice_beam=opts.lattice_beam, num_jobs=opts.num_jobs)
        items = ((uid, lp.numpy().astype("float32"), encoded.durations[uid])
                 for uid, lp in zip(encoded.ids, encoded.ctc_log_probs))
        stats = decode_lattices(items, require_file(lm_dir / "HLG.fst", stage=3, what="the decoding graph"),
                                lm_dir / "words.txt", set_dir, cfg, total=len(encoded.ids))
        extra = {"lattice": {"w0": cfg.lm_weight, "search_rtf": stats.rtf, "not_final": stats.num_not_final,
                             "empty": stats.num_empty, "mean_lattice_arcs": stats.mean_lattice_arcs}}
    else:
        raise GraftError(f"unknown decoding method '{method}' (choose from {', '.join(METHODS)})")
    search = time.perf_counter() - t0
    audio = encoded.audio_seconds
    return {"method": method, "utterances": len(encoded.ids), "audio_seconds": round(audio, 2),
            "encoder_seconds": round(encoded.encoder_seconds, 3), "search_seconds": round(search, 3),
            "rtf": round((encoded.encoder_seconds + search) / audio, 5),
            "search_rtf": round(search / audio, 5), **extra}


def _joint_nbest(model, encoded: EncodedSet, lm_dir: Path, set_dir: Path, id2token: dict[int, str],
                 opts: DecodeOptions) -> tuple[list[NbestEntry], dict]:
    """ctc-hlg-rnnt: HLG lattices into `<set>/hlg/`, then each one's n-best scored by both heads."""
    w0 = middle_lm_weight(opts.lm_weights)
    cfg = LatticeDecodeConfig(lm_weight=w0, beam=opts.search_beam, lattice_beam=opts.lattice_beam,
                              num_jobs=opts.num_jobs)
    items = ((uid, lp.numpy().astype("float32"), encoded.durations[uid])
             for uid, lp in zip(encoded.ids, encoded.ctc_log_probs))
    words_path = lm_dir / "words.txt"
    stats = decode_lattices(items, require_file(lm_dir / "HLG.fst", stage=3, what="the decoding graph"),
                            words_path, set_dir / "hlg", cfg, total=len(encoded.ids))
    spell = lexicon_spellings(lm_dir, {piece: i for i, piece in id2token.items()})
    id2word = invert(read_symbols(words_path))
    scp = read_scp(set_dir / "hlg" / LATS_DIR / SCP_NAME)
    bf16, why = cpu_fast_bf16() if opts.bf16 == "auto" else (opts.bf16 == "on", "asked")
    log.info("ctc-hlg-rnnt: transducer joiner in %s (%s)", "bf16" if bf16 else "fp32", why)
    entries: list[NbestEntry] = []
    for i, uid in enumerate(tqdm(encoded.ids, desc=f"n-best re-scoring {set_dir.name}", unit="utt")):
        arrays = LatticeArrays.from_lattice(read_lattice(scp[uid]))
        entries.append(NbestEntry(uid, joint_nbest(model, arrays, w0, opts.hlg_nbest, encoded.enc[i],
                                                   encoded.ctc_log_probs[i], spell, id2word, opts.rnnt_weight, bf16)))
    counts = [len(e.hyps) for e in entries]
    extra = {"lattice": {"w0": w0, "search_rtf": stats.rtf, "not_final": stats.num_not_final,
                         "empty": stats.num_empty, "mean_lattice_arcs": stats.mean_lattice_arcs},
             "nbest": {"n": opts.hlg_nbest, "mean_distinct": round(float(np.mean(counts)), 2) if counts else 0.0,
                       "rnnt_weight": opts.rnnt_weight, "bf16": bf16}}
    return entries, extra


def decode_set(model, cuts_path: str | Path, lang: LangDir, lm_dir: str | Path | None, decode_root: str | Path,
               set_name: str, methods: Sequence[str], opts: DecodeOptions, info: dict | None = None) -> list[dict]:
    """Decode one set by each method into `<decode_root>/<method>/<set_name>/`; return figures.

    `lang` must be the lang dir the model was trained with (its fingerprint is checked); `lm_dir`
    (an LM dir of graft.lang.prepare: HLG.fst, G.fst, lexicon.txt, words.txt) is needed by the
    methods of NEEDS_LM_DIR only."""
    decode_root = Path(decode_root)
    lm_dir = Path(lm_dir) if lm_dir is not None else None
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise GraftError(f"unknown decoding method(s) {', '.join(bad)} (choose from {', '.join(METHODS)})")
    id2token = check_lang_matches(lang, model.vocab_size, info)
    needs = [m for m in methods if m in NEEDS_LM_DIR]
    if needs and lm_dir is None:
        raise GraftError(f"{' and '.join(needs)} decoding needs an LM dir (--lm-dir data/lang/<lang>_bpe<V>/lm_<N>gram)")
    if "ctc-hlg" in methods or "ctc-hlg-rnnt" in methods:
        require_file(lm_dir / "HLG.fst", stage=3, what="the decoding graph")
    if "ctc-hlg-rnnt" in methods or "beam-lex" in methods:
        require_file(lm_dir / "lexicon.txt", stage=3, what="the lexicon")
    if "beam-lex" in methods:
        require_file(lm_dir / "G.fst", stage=3, what="the word LM graph")
    encoded = encode_set(model, cuts_path, opts.max_duration)
    results = []
    for method in methods:
        final = decode_root / method / set_name
        with atomic_dir(final) as tmp:
            write_text(tmp / "ref.txt", encoded.refs, order=encoded.ids)
            fig = _run_method(method, model, encoded, lm_dir, tmp, id2token, opts)
            fig.update({"cuts": str(cuts_path), "lang_dir": str(lang.path),
                        "lm_dir": str(lm_dir) if lm_dir else None, "options": asdict(opts),
                        "model": {k: v for k, v in (info or {}).items() if k != "model_conf"}})
            with atomic_write(tmp / "decode.json") as f:
                json.dump(fig, f, indent=2)
        log.info("%s %s: RTF %.4f (encoder %.1f s + search %.1f s for %.0f s of audio)", method, set_name,
                 fig["rtf"], fig["encoder_seconds"], fig["search_seconds"], fig["audio_seconds"])
        results.append(fig)
    return results
