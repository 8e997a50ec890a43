"""Audio files -> words (and per-word timestamps), with a Graft checkpoint or an export folder.

Two backends, one interface (`decode(samples) -> Hyp`):
    TorchBackend   a training exp dir (epoch/avg or the running average): Graft's own searches
                   (graft.decode.search; CTC + HLG with graft.decode.ctc_lattice at LM weight 1);
                   fbank with lhotse's extractor (as in training). Token times come from a CTC
                   forced alignment of the result (graft.export.align).
    SherpaBackend  an export folder (steps/export_onnx.py): sherpa-onnx's OfflineRecognizer, with
                   its own fbank and its own token times (emission frames).
Methods: greedy, beam (modified beam search), ctc-greedy, ctc-hlg; with a training exp dir also
beam-lex (beam search inside the lexicon, LM weight `lex_lm_weight`) and ctc-hlg-rnnt (the HLG
lattice's n-best re-scored by CTC + transducer, LM weight 1). A file longer than
`SegmentOptions.max_seconds` is cut at quiet points first (graft.export.segment); each segment
is decoded alone and the words are put back on the file's time line.

Usage:
    backend = open_backend("exp/en_small/export/epoch9_avg3", method="greedy", num_threads=2)
    result = recognize_file(backend, "talk.mp3")
    print(result.text); result.words[0]      # Word(word="hello", start=0.52, end=0.84)
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from graft.export.audio import SAMPLE_RATE, load_audio
from graft.export.segment import SegmentOptions, segment_audio
from graft.lang.symbols import WORD_BOUNDARY, invert, pieces_to_words, read_symbols
from graft.utils.errors import GraftError
from graft.utils.logging import get_logger

log = get_logger(__name__)

METHODS = ("greedy", "beam", "beam-lex", "ctc-greedy", "ctc-hlg", "ctc-hlg-rnnt")
TORCH_ONLY = ("beam-lex", "ctc-hlg-rnnt")  # searches sherpa-onnx does not have


@dataclass
class Word:
    """A word and its time span in seconds (start: its first token; end: after its last token)."""

    word: str
    start: float
    end: float


@dataclass
class Hyp:
    """One segment's result: token ids with their times (s, from the segment start); words if
    the search produced words itself (CTC + HLG), else they are made from the tokens."""

    tokens: list[int]
    times: list[float]
    words: list[str] | None = None


@dataclass
class FileResult:
    """What one audio file gave."""

    path: str
    duration: float
    text: str
    words: list[Word] = field(default_factory=list)
    segments: list[tuple[float, float]] = field(default_factory=list)
    seconds: float = 0.0          # processing time (decode only, audio reading excluded)

    def to_json(self) -> dict:
        return {"file": self.path, "duration": round(self.duration, 3), "text": self.text,
                "words": [asdict(w) for w in self.words], "segments": [list(s) for s in self.segments],
                "seconds": round(self.seconds, 3)}


class Backend(Protocol):
    method: str
    id2token: dict[int, str]
    frame_shift: float

    def decode(self, samples: np.ndarray) -> Hyp: ...


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise GraftError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")


class TorchBackend:
    """Graft's model and searches on CPU (see the module docstring)."""

    def __init__(self, exp_dir: str | os.PathLike, method: str = "greedy", epoch: int | None = None,
                 avg: int = 1, use_averaged_model: bool = False, lang_dir: str | os.PathLike | None = None,
                 lm_dir: str | os.PathLike | None = None, beam: int = 4, num_threads: int = 1,
                 search_beam: float = 16.0, lex_beam: int = 8, lex_lm_weight: float = 0.3,
                 hlg_nbest: int = 20, rnnt_weight: float = 0.5) -> None:
        import torch

        from graft.data.features import make_extractor
        from graft.export.bundle import find_lm_dir
        from graft.lang.langdir import model_lang_dir
        from graft.train.checkpoint import load_model_for_decoding

        _check_method(method)
        torch.set_num_threads(num_threads)
        self.method, self.beam = method, beam
        self.model, self.info = load_model_for_decoding(exp_dir, epoch=epoch, avg=avg,
                                                        use_averaged_model=use_averaged_model)
        self.lang = model_lang_dir(Path(exp_dir), self.info, lang_dir)
        self.id2token = self.lang.id2token
        self.frame_shift = 0.01 * self.model.encoder.subsampling_factor
        self.extractor = make_extractor()
        self.lattice = None
        self.lex_beam, self.lex_lm_weight, self.hlg_nbest, self.rnnt_weight = lex_beam, lex_lm_weight, hlg_nbest, rnnt_weight
        if method in ("ctc-hlg", "beam-lex", "ctc-hlg-rnnt"):
            lm = find_lm_dir(self.lang.path, lm_dir)
            if lm is None:
                raise GraftError(f"{method} needs an LM dir: {self.lang.path} has none (pass --lm-dir)")
            self.id2word = invert(read_symbols(lm / "words.txt"))
        if method in ("ctc-hlg", "ctc-hlg-rnnt"):
            from graft.decode.ctc_lattice import LatticeDecodeConfig, LatticeDecoder, load_graph

            # beam 16: the default of kaldi's FasterDecoder, which sherpa-onnx's HLG decoding uses
            self.lattice = LatticeDecoder(load_graph(lm / "HLG.fst"),
                                          LatticeDecodeConfig(lm_weight=1.0, beam=search_beam))
        if method == "beam-lex":
            from graft.decode.lexicon_search import load_lexicon_search

            self.trie, self.g = load_lexicon_search(lm, self.lang.tokens)
        if method == "ctc-hlg-rnnt":
            from graft.decode.joint_rescore import lexicon_spellings
            from graft.decode.nbest_rescore import WordLm
            from graft.train.amp import cpu_fast_bf16

            self.spell = lexicon_spellings(lm, self.lang.tokens)
            self.word_lm = WordLm.from_lm_dir(lm)
            self.bf16 = cpu_fast_bf16()[0]

    def features(self, samples: np.ndarray):
        """(T, 80) fbank of 16 kHz samples, as training computed it."""
        import torch

        return torch.from_numpy(np.asarray(self.extractor.extract(samples, SAMPLE_RATE), dtype=np.float32))

    def decode(self, samples: np.ndarray) -> Hyp:
        import torch

        from graft.decode.joint_rescore import joint_nbest
        from graft.decode.lattice_rescore import LatticeArrays, best_paths
        from graft.decode.lexicon_search import lexicon_beam_search
        from graft.decode.search import ctc_greedy_search, greedy_search, modified_beam_search
        from graft.export.align import ctc_align

        feats = self.features(samples)
        with torch.inference_mode():
            enc, lens = self.model.encoder(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
            if int(lens[0]) < 1:
                return Hyp([], [])
            log_probs = self.model.ctc_output(enc)
            words = None
            if self.method == "greedy":
                tokens = greedy_search(self.model, enc, lens)[0]
            elif self.method == "beam":
                tokens = modified_beam_search(self.model, enc, lens, beam=self.beam, num_best=1)[0][0].tokens
            elif self.method == "beam-lex":
                hyps = lexicon_beam_search(self.model, enc, lens, self.trie, self.g, lm_weight=self.lex_lm_weight,
                                           beam=self.lex_beam, num_best=1)[0]
                tokens = hyps[0].tokens if hyps else []
            elif self.method == "ctc-greedy":
                tokens = ctc_greedy_search(log_probs, lens, blank_id=self.model.blank_id)[0]
            elif self.method == "ctc-hlg-rnnt":
                lat, _ = self.lattice.decode(log_probs[0].numpy())
                hyps = joint_nbest(self.model, LatticeArrays.from_lattice(lat), 1.0, self.hlg_nbest, enc[0],
                                   log_probs[0], self.spell, self.id2word, self.rnnt_weight, self.bf16)
                best = max(hyps, key=lambda h: h.am - self.word_lm.cost(h.words), default=None)
                words = best.words if best else []
                tokens = best.tokens if best else []
            else:
                lat, _ = self.lattice.decode(log_probs[0].numpy())
                best = best_paths(LatticeArrays.from_lattice(lat), [1.0], [0.0])[(1.0, 0.0)]
                words = [self.id2word[i] for i in best.word_ids]
                tokens = self.lang.encode([" ".join(words)])[0] if words else []
        frames = ctc_align(log_probs[0].numpy(), tokens, self.model.blank_id)
        return Hyp(list(tokens), [f * self.frame_shift for f in frames], words)


class SherpaBackend:
    """sherpa-onnx's OfflineRecognizer on an export folder."""

    def __init__(self, folder: str | os.PathLike, method: str = "greedy", beam: int = 4,
                 num_threads: int = 1, int8: bool = False) -> None:
        import json

        try:
            import sherpa_onnx
        except ImportError:
            raise GraftError("sherpa-onnx is not installed: pip install -r requirements.txt") from None
        _check_method(method)
        if method in TORCH_ONLY:
            raise GraftError(f"{method} runs with a training exp dir (--model exp/<model>), not with an export "
                             f"folder: sherpa-onnx has no such search")
        folder = Path(folder)
        info_path = folder / "export.json"
        if not info_path.is_file():
            raise GraftError(f"{folder} is not an export folder (no export.json): run steps/export_onnx.py")
        self.info = json.loads(info_path.read_text(encoding="utf-8"))
        self.method = method
        self.frame_shift = float(self.info.get("frame_shift_seconds", 0.04))
        tokens = read_symbols(folder / "tokens.txt")
        self.id2token = invert(tokens)
        # sherpa-onnx's results spell the word boundary '▁' as a space
        self.token2id = {piece.replace(WORD_BOUNDARY, " "): i for piece, i in tokens.items()}
        suffix = ".int8" if int8 else ""

        def need(name: str) -> str:
            path = folder / name
            if not path.is_file():
                raise GraftError(f"missing {path}" + (" (export with --int8 true)" if int8 else ""))
            return str(path)

        if method in ("greedy", "beam"):
            self.rec = sherpa_onnx.OfflineRecognizer.from_transducer(
                need(f"encoder{suffix}.onnx"), need(f"decoder{suffix}.onnx"), need(f"joiner{suffix}.onnx"),
                need("tokens.txt"), num_threads=num_threads,
                decoding_method="greedy_search" if method == "greedy" else "modified_beam_search",
                max_active_paths=beam)
        else:
            graph = need("HLG.fst") if method == "ctc-hlg" else ""
            self.rec = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
                need(f"ctc{suffix}.onnx"), need("tokens.txt"), num_threads=num_threads, ctc_graph=graph)

    def decode(self, samples: np.ndarray) -> Hyp:
        stream = self.rec.create_stream()
        stream.accept_waveform(SAMPLE_RATE, samples)
        self.rec.decode_stream(stream)
        r = stream.result
        try:
            ids = [self.token2id[t] for t in r.tokens]
        except KeyError as e:
            raise GraftError(f"sherpa-onnx returned token {e.args[0]!r}, which is not in tokens.txt") from None
        return Hyp(ids, [float(t) for t in r.timestamps])


def open_backend(model: str | os.PathLike, method: str = "greedy", **kw) -> Backend:
    """An export folder (has export.json) -> SherpaBackend; a training exp dir -> TorchBackend.

    Keyword arguments go to the backend (TorchBackend: epoch, avg, use_averaged_model, lang_dir,
    lm_dir, beam, num_threads; SherpaBackend: beam, num_threads, int8).
    """
    model = Path(model)
    if (model / "export.json").is_file():
        keep = {k: v for k, v in kw.items() if k in ("beam", "num_threads", "int8")}
        return SherpaBackend(model, method, **keep)
    if model.is_dir() and (any(model.glob("epoch-*.pt")) or any(model.glob("checkpoint-*.pt"))):
        kw.pop("int8", None)
        return TorchBackend(model, method, **kw)
    raise GraftError(f"{model} is neither an export folder (export.json) nor an exp dir with checkpoints")


def words_with_times(hyp: Hyp, id2token: dict[int, str], frame_shift: float, offset: float = 0.0) -> list[Word]:
    """Group tokens into words (a piece starting with '▁' starts one) with start/end times."""
    pieces = [id2token[t] for t in hyp.tokens]
    groups: list[tuple[list[str], float, float]] = []
    for piece, t in zip(pieces, hyp.times):
        if piece.startswith("<") and piece.endswith(">"):
            continue
        if piece.startswith(WORD_BOUNDARY) or not groups:
            groups.append(([piece], t, t + frame_shift))
        else:
            groups[-1][0].append(piece)
            groups[-1] = (groups[-1][0], groups[-1][1], t + frame_shift)
    words: list[Word] = []
    for ps, start, end in groups:
        for w in pieces_to_words(ps):
            words.append(Word(w, round(offset + start, 3), round(offset + end, 3)))
    if hyp.words is not None and [w.word for w in words] != hyp.words:
        # CTC + HLG gave words whose BPE spelling did not split the same way: keep the words,
        # and spread each group's times over them in order.
        times = [(w.start, w.end) for w in words] or [(offset, offset)]
        words = [Word(w, *times[min(i, len(times) - 1)]) for i, w in enumerate(hyp.words)]
    return words


def recognize_samples(backend: Backend, samples: np.ndarray, path: str = "",
                      seg: SegmentOptions | None = None) -> FileResult:
    """Segment (if long), decode each segment, and join the words on the file's time line."""
    duration = len(samples) / SAMPLE_RATE
    spans = segment_audio(samples, seg)
    t0 = time.perf_counter()
    words: list[Word] = []
    for a, b in spans:
        piece = samples[int(round(a * SAMPLE_RATE)): int(round(b * SAMPLE_RATE))]
        if len(piece) < SAMPLE_RATE // 10:      # under 0.1 s: nothing to recognize
            continue
        hyp = backend.decode(piece)
        words += words_with_times(hyp, backend.id2token, backend.frame_shift, offset=a)
    return FileResult(path, duration, " ".join(w.word for w in words), words, spans, time.perf_counter() - t0)


def recognize_file(backend: Backend, path: str | os.PathLike, seg: SegmentOptions | None = None) -> FileResult:
    """Read `path` (any format libsndfile reads, any rate) and recognize it."""
    return recognize_samples(backend, load_audio(path), str(path), seg)
