"""HLG lattice decoding of CTC log-probs (kaldi_decoder), lattices saved for LM-weight sweeps.

The model part (features -> CTC log-probs) stays with the caller; this module takes
`(utt_id, log_probs (T, V) float32, duration_seconds)` items and:
  1. decodes each with `LatticeSimpleDecoder` + `DecodableCtc` at acoustic scale 1/w0
     (w0 = `LatticeDecodeConfig.lm_weight`, normally the middle of the sweep), with the beams
     given in natural log-prob units and divided by w0 for the decoder;
  2. undoes the scale on the raw lattice, so every arc keeps its graph cost (value1: LM +
     lexicon, natural log) and acoustic cost (value2: minus the CTC log-prob) apart;
  3. writes one binary `kaldifst.Lattice` per utterance plus an index, as one directory that
     appears atomically:
         <set_dir>/lats/lattices.scp          "<utt-id> <file>" (file relative to lats/)
         <set_dir>/lats/000000.lat ...        kaldifst Lattice (OpenFst binary, lattice4 arcs)
     and, beside it, `<set_dir>/onebest.txt` (the 1-best of the same lattices at w0, penalty 0)
     and `<set_dir>/lattice_decode.json` (settings and speed figures).
`graft.decode.lattice_rescore` then picks the best path at any (LM weight, penalty) with no model.

Decoding runs in `num_jobs` processes (the FST decoders hold the GIL); at most
`2 * num_jobs` utterances are in flight, so the items can be produced lazily by a model.

Usage:
    cfg = LatticeDecodeConfig(lm_weight=middle_lm_weight([0.1, 0.2, ..., 1.5]), num_jobs=2)
    stats = decode_lattices(items, "data/lang/en_bpe500/HLG.fst",
                            "data/lang/en_bpe500/words.txt", "exp/m/decode/ctc-hlg/dev", cfg,
                            total=len(cuts))
    print(stats.rtf)
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from graft.decode.lattice_rescore import LatticeArrays, best_paths
from graft.lang.symbols import invert, read_symbols
from graft.utils.errors import GraftError
from graft.utils.io import atomic_dir, atomic_write
from graft.utils.logging import get_logger

if TYPE_CHECKING:
    import kaldifst

log = get_logger(__name__)

LATS_DIR = "lats"
SCP_NAME = "lattices.scp"
ONEBEST_NAME = "onebest.txt"
INFO_NAME = "lattice_decode.json"


@dataclass
class LatticeDecodeConfig:
    """Lattice decoding settings. Beams are in natural log-prob units (cost = w0*graph + acoustic)."""

    lm_weight: float = 0.6  # w0: decode at acoustic scale 1/w0
    beam: float = 12.0
    lattice_beam: float = 6.0
    num_jobs: int = 1
    prune_interval: int = 25


@dataclass
class LatticeDecodeStats:
    """What a decoding run did and how fast (RTF = seconds of work per second of audio)."""

    num_utts: int = 0
    audio_seconds: float = 0.0
    search_seconds: float = 0.0  # summed over workers: lattice search + lattice write
    wall_seconds: float = 0.0  # includes the time the items iterator takes (e.g. the model)
    num_not_final: int = 0  # utterances where no final state was reached (lattice uses all ends)
    num_empty: int = 0  # utterances with an empty lattice (no surviving path)
    mean_lattice_arcs: float = 0.0

    @property
    def rtf(self) -> float:
        """Search real-time factor: summed decoder time / audio duration."""
        return self.search_seconds / self.audio_seconds if self.audio_seconds else float("nan")

    @property
    def wall_rtf(self) -> float:
        """End-to-end real-time factor: elapsed time / audio duration."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else float("nan")


def middle_lm_weight(lm_weights: Sequence[float]) -> float:
    """The decode weight w0 for a sweep: the median of the weights (must be > 0)."""
    if not lm_weights:
        raise GraftError("empty LM-weight list: cannot choose a decode weight")
    w0 = float(statistics.median(lm_weights))
    if w0 <= 0:
        raise GraftError(f"decode LM weight must be > 0, got {w0} (median of {list(lm_weights)})")
    return w0


def load_graph(path: str | os.PathLike) -> "kaldifst.StdConstFst":
    """Load HLG.fst as a `kaldifst.StdConstFst` (faster to decode than a VectorFst)."""
    import kaldifst

    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing decoding graph {path} (written by the lang stage)")
    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise GraftError(f"cannot read decoding graph {path} (not an OpenFst StdVectorFst)")
    return kaldifst.StdConstFst(fst)


class LatticeDecoder:
    """One graph, one decoder config: log-probs in, natural-unit lattice out."""

    def __init__(self, graph: "kaldifst.StdFst", config: LatticeDecodeConfig) -> None:
        import kaldi_decoder

        if not config.lm_weight > 0:
            raise GraftError(f"decode LM weight must be > 0, got {config.lm_weight}")
        self.graph = graph  # the decoder keeps a C++ reference only: keep the Python object alive
        self.config = config
        self.decoder_config = kaldi_decoder.LatticeSimpleDecoderConfig(
            beam=config.beam / config.lm_weight,
            lattice_beam=config.lattice_beam / config.lm_weight,
            prune_interval=config.prune_interval,
        )
        self.decoder = kaldi_decoder.LatticeSimpleDecoder(graph, self.decoder_config)

    def decode(self, log_probs: np.ndarray) -> tuple["kaldifst.Lattice", bool]:
        """Return `(lattice, reached_final)`; lattice weights are (graph, acoustic) natural log."""
        import kaldi_decoder
        import kaldifst

        w0 = float(self.config.lm_weight)
        if log_probs.ndim != 2:
            raise GraftError(f"CTC log-probs must be (T, V), got shape {log_probs.shape}")
        scaled = np.ascontiguousarray(log_probs, dtype=np.float32) / np.float32(w0)
        lat = kaldifst.Lattice()
        if scaled.shape[0] == 0:
            return lat, False
        self.decoder.decode(kaldi_decoder.DecodableCtc(scaled))
        reached_final = math.isfinite(self.decoder.final_relative_cost())
        _, lat = self.decoder.get_raw_lattice(use_final_probs=True)
        if lat.num_states == 0:
            _, lat = self.decoder.get_raw_lattice(use_final_probs=False)
        # undo the acoustic scale: value2 := w0 * value2
        kaldifst.scale_lattice(kaldifst.lattice_scale(lmwt=1.0, acwt=w0), lat)
        return lat, reached_final


# Per-process state of the worker pool.
_WORKER: LatticeDecoder | None = None


def _init_worker(graph_path: str, config: LatticeDecodeConfig) -> None:
    global _WORKER
    _WORKER = LatticeDecoder(load_graph(graph_path), config)


def _decode_task(index: int, utt_id: str, log_probs: np.ndarray, out_file: str) -> dict:
    assert _WORKER is not None
    return _decode_with(_WORKER, index, utt_id, log_probs, out_file)


def _decode_with(decoder: LatticeDecoder, index: int, utt_id: str, log_probs: np.ndarray, out_file: str) -> dict:
    t0 = time.perf_counter()
    lat, reached_final = decoder.decode(log_probs)
    if not lat.write(out_file):
        raise GraftError(f"cannot write lattice {out_file}")
    seconds = time.perf_counter() - t0
    arrays = LatticeArrays.from_lattice(lat)
    w0 = float(decoder.config.lm_weight)
    best = best_paths(arrays, [w0], [0.0])[(w0, 0.0)]
    return {
        "index": index,
        "utt_id": utt_id,
        "seconds": seconds,
        "reached_final": reached_final,
        "empty": not best.found,
        "num_arcs": arrays.num_arcs,
        "word_ids": best.word_ids,
    }


def decode_lattices(
    items: Iterable[tuple[str, np.ndarray, float]],
    graph_path: str | os.PathLike,
    words_path: str | os.PathLike,
    set_dir: str | os.PathLike,
    config: LatticeDecodeConfig,
    total: int | None = None,
) -> LatticeDecodeStats:
    """Decode `(utt_id, log_probs (T, V), duration_s)` items; write lattices + 1-best (see module doc).

    `graph_path` is HLG.fst (graph input label = token id + 1). When `tokens.txt` sits beside
    `words_path` (a lang dir), every log-prob matrix must have one column per token. The `lats/`
    directory is replaced only when every utterance decoded; on failure the previous one stays.
    """
    from tqdm import tqdm

    set_dir = Path(set_dir)
    id2word = invert(read_symbols(words_path))
    tokens_path = Path(words_path).parent / "tokens.txt"  # the lang dir's, when there is one
    vocab_size = len(read_symbols(tokens_path)) if tokens_path.is_file() else None
    graph = load_graph(graph_path)  # fail early, with a clear message, before any worker starts
    stats = LatticeDecodeStats()
    results: list[dict] = []
    seen: set[str] = set()
    t_start = time.perf_counter()
    with atomic_dir(set_dir / LATS_DIR) as tmp_dir, \
            tqdm(total=total, desc=f"lattices {set_dir.name}", unit="utt") as progress:

        def tasks():
            for index, (utt_id, log_probs, duration) in enumerate(items):
                if utt_id in seen or not utt_id or any(c.isspace() for c in utt_id):
                    raise GraftError(f"bad or repeated utterance id {utt_id!r} while decoding {set_dir}")
                seen.add(utt_id)
                if vocab_size is not None and np.shape(log_probs)[-1] != vocab_size:
                    raise GraftError(f"{utt_id}: log-probs have {np.shape(log_probs)[-1]} columns but "
                                     f"{tokens_path} has {vocab_size} tokens (model and lang dir differ?)")
                stats.audio_seconds += float(duration)
                yield index, utt_id, np.asarray(log_probs, dtype=np.float32), str(tmp_dir / f"{index:06d}.lat")

        def collect(res: dict) -> None:
            results.append(res)
            progress.update(1)

        if config.num_jobs <= 1:
            decoder = LatticeDecoder(graph, config)
            for task in tasks():
                collect(_decode_with(decoder, *task))
        else:
            del graph  # each worker loads its own
            _decode_in_pool(tasks(), graph_path, config, collect)
        results.sort(key=lambda r: r["index"])
        with open(tmp_dir / SCP_NAME, "w", encoding="utf-8") as f:
            for r in results:
                f.write(f"{r['utt_id']} {r['index']:06d}.lat\n")
    stats.wall_seconds = time.perf_counter() - t_start
    stats.num_utts = len(results)
    stats.search_seconds = sum(r["seconds"] for r in results)
    stats.num_not_final = sum(not r["reached_final"] for r in results)
    stats.num_empty = sum(r["empty"] for r in results)
    stats.mean_lattice_arcs = float(np.mean([r["num_arcs"] for r in results])) if results else 0.0
    with atomic_write(set_dir / ONEBEST_NAME) as f:
        for r in results:
            words = [id2word.get(i, f"<id{i}>") for i in r["word_ids"]]
            f.write(" ".join([r["utt_id"], *words]) + "\n")
    info = {"config": asdict(config), "graph": str(graph_path), "words": str(words_path),
            "stats": asdict(stats), "rtf": stats.rtf, "wall_rtf": stats.wall_rtf}
    with atomic_write(set_dir / INFO_NAME) as f:
        json.dump(info, f, indent=2)
    if stats.num_not_final:
        log.warning("%d of %d utterances reached no final state of %s", stats.num_not_final, stats.num_utts, graph_path)
    if stats.num_empty:
        log.warning("%d of %d lattices are empty (beam too small?)", stats.num_empty, stats.num_utts)
    log.info("decoded %d utterances (%.1f s of audio) into %s: search RTF %.4f, wall RTF %.4f",
             stats.num_utts, stats.audio_seconds, set_dir / LATS_DIR, stats.rtf, stats.wall_rtf)
    return stats


def _decode_in_pool(tasks, graph_path, config: LatticeDecodeConfig, collect) -> None:
    """Run tasks in `config.num_jobs` forked processes, at most 2 per process in flight."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    max_pending = 2 * config.num_jobs
    with ProcessPoolExecutor(
        config.num_jobs,
        mp_context=mp.get_context("fork"),
        initializer=_init_worker,
        initargs=(str(graph_path), config),
    ) as ex:
        pending: set = set()
        try:
            for task in tasks:
                pending.add(ex.submit(_decode_task, *task))
                while len(pending) >= max_pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        collect(fut.result())
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    collect(fut.result())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
