"""A trained model -> an export folder that sherpa-onnx (and `steps/recognize.py`) runs.

The folder (written in a temporary sibling and renamed into place, export.json last):
    encoder.onnx decoder.onnx joiner.onnx   the transducer, for OfflineRecognizer.from_transducer
    ctc.onnx                                encoder + CTC head, for from_zipformer_ctc (greedy or HLG)
    *.int8.onnx                             int8 dynamic quantization of each (with --int8)
    tokens.txt bpe.model                    the model's lang dir (tokens.txt is sherpa-onnx's too)
    HLG.fst words.txt                       the decoding graph of an LM dir, when there is one
    export.json                             what it is: checkpoints, lang fingerprint, languages,
                                            transfer source, test WER, checks against torch,
                                            sizes, int8 speed
    README.md                               the same for people, with the commands to run it
Every file is checked against torch before the folder appears (graft.export.verify), and the
folder is loaded once with sherpa-onnx when it is installed.

Usage:
    info = export_model("exp/en_small", "exp/en_small/export/epoch9_avg3", epoch=9, avg=3,
                        lang_dir="data/lang/en_bpe150", lm_dir="data/lang/en_bpe150/lm_3gram")
"""
from __future__ import annotations

import json
import os
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from graft.export.modules import example_inputs, export_modules
from graft.export.onnx_io import OPSET, add_metadata, export_onnx
from graft.export.quantize import int8_name, quantize_int8, time_encoder
from graft.export.verify import DEFAULT_LENGTHS, verify_export
from graft.decode.layout import decode_dir_name
from graft.lang.langdir import LangDir, model_lang_dir
from graft.utils.errors import GraftError
from graft.utils.io import atomic_dir, atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

FORMAT = "graft-export-1"
MODELS = ("encoder", "decoder", "joiner", "ctc")
INFO_NAME = "export.json"


def default_export_dir(exp_dir: str | os.PathLike, epoch: int | None, avg: int, use_averaged_model: bool,
                       step: int | None = None) -> Path:
    """`<exp_dir>/export/epoch<E>_avg<A>[_running]` (named like the decode dirs), or
    `step<S>` for a model from a mid-epoch checkpoint-<S>.pt."""
    name = f"epoch{epoch}_avg{avg}" if epoch is not None else f"step{step}"
    return Path(exp_dir) / "export" / (name + ("_running" if use_averaged_model else ""))


def find_lm_dir(lang_dir: Path, lm_dir: str | os.PathLike | None = None) -> Path | None:
    """The dir holding HLG.fst and words.txt: `lm_dir`, else the lang dir itself (older layout),
    else its only `lm_*` subdir holding an HLG.fst; None when there is none."""
    if lm_dir is not None:
        lm_dir = Path(lm_dir)
        for name in ("HLG.fst", "words.txt"):
            if not (lm_dir / name).is_file():
                raise GraftError(f"--lm-dir {lm_dir} has no {name} (written by stage 3)")
        return lm_dir
    if (lang_dir / "HLG.fst").is_file() and (lang_dir / "words.txt").is_file():
        return lang_dir
    found = sorted(p.parent for p in lang_dir.glob("lm_*/HLG.fst") if (p.parent / "words.txt").is_file())
    if len(found) > 1:
        raise GraftError(f"{lang_dir} has several LM dirs ({', '.join(p.name for p in found)}): "
                         f"choose the one to ship with --lm-dir")
    return found[0] if found else None


def scored_results(decode_root: Path) -> dict[str, dict]:
    """{method: dev/test WER at the dev-chosen LM weight} from the stage-7 selection.json files."""
    out: dict[str, dict] = {}
    for path in sorted(decode_root.glob("*/selection.json")):
        try:
            sel = json.loads(path.read_text(encoding="utf-8"))
            test = sel.get("test") or {}
            out[path.parent.name] = {
                "dev_wer": sel["dev"]["wer"], "test_wer": test.get("wer"), "test_cer": test.get("cer"),
                "lm_weight": sel["chosen_on_dev"]["lm_weight"],
                "word_ins_penalty": sel["chosen_on_dev"]["word_ins_penalty"], "from": str(path)}
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring %s: %s", path, e)
    return out


def _versions() -> dict[str, Any]:
    from graft.train.run_info import versions

    out = versions()
    for name in ("onnx", "onnxruntime", "sherpa-onnx"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _metadata(name: str, model, info: dict, lang: LangDir) -> dict[str, object]:
    common = {"model_author": "graft", "version": "1", "graft_format": FORMAT,
              "vocab_size": model.vocab_size, "blank_id": model.blank_id,
              "lang_fingerprint": lang.fingerprint, "language": lang.language,
              "checkpoints": ",".join(Path(c).name for c in info["checkpoints"])}
    if name == "encoder":
        return {**common, "model_type": "conformer", "subsampling_factor": model.encoder.subsampling_factor,
                "comment": "graft Conformer encoder + joiner encoder_proj; input: 80-dim fbank (unnormalized)"}
    if name == "decoder":
        return {**common, "context_size": model.decoder.context_size, "comment": "stateless decoder + decoder_proj"}
    if name == "joiner":
        return {**common, "joiner_dim": model.joiner.output_linear.in_features, "comment": "joiner on projected inputs"}
    return {**common, "model_type": "conformer_ctc", "subsampling_factor": model.encoder.subsampling_factor,
            "comment": "graft Conformer encoder + CTC head (log-softmax)"}


def _max_by_model(rows: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rows:
        out[r["model"]] = max(out.get(r["model"], 0.0), r["max_abs_diff"])
    return out


def _sherpa_load_check(folder: Path, suffix: str, has_hlg: bool) -> dict[str, Any]:
    """Load the folder with sherpa-onnx and decode 1 s of silence (catches missing metadata)."""
    try:
        import sherpa_onnx
    except ImportError:
        return {"checked": False, "why": "sherpa-onnx is not installed"}
    import numpy as np

    rec = sherpa_onnx.OfflineRecognizer.from_transducer(
        str(folder / f"encoder{suffix}.onnx"), str(folder / f"decoder{suffix}.onnx"),
        str(folder / f"joiner{suffix}.onnx"), str(folder / "tokens.txt"), num_threads=1)
    stream = rec.create_stream()
    stream.accept_waveform(16000, np.zeros(16000, dtype=np.float32))
    rec.decode_stream(stream)
    ctc = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(
        str(folder / f"ctc{suffix}.onnx"), str(folder / "tokens.txt"), num_threads=1,
        ctc_graph=str(folder / "HLG.fst") if has_hlg else "")
    stream = ctc.create_stream()
    stream.accept_waveform(16000, np.zeros(16000, dtype=np.float32))
    ctc.decode_stream(stream)
    return {"checked": True}


def export_model(exp_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 epoch: int | None = None, avg: int = 1, use_averaged_model: bool = False,
                 lang_dir: str | os.PathLike | None = None, lm_dir: str | os.PathLike | None = None,
                 int8: bool = True, check_lengths: Iterable[int] = DEFAULT_LENGTHS) -> dict[str, Any]:
    """Export the (averaged) model of `exp_dir` into `out_dir`; return the content of export.json."""
    from graft.model.build import count_parameters
    from graft.train.checkpoint import load_model_for_decoding, read_checkpoint

    exp_dir = Path(exp_dir)
    t_start = time.time()
    model, info = load_model_for_decoding(exp_dir, epoch=epoch, avg=avg, use_averaged_model=use_averaged_model)
    lang = model_lang_dir(exp_dir, info, lang_dir)
    lm = find_lm_dir(lang.path, lm_dir)
    if lm is None:
        log.warning("%s has no HLG.fst: the CTC model is exported without a decoding graph", lang.path)
    out_dir = Path(out_dir) if out_dir else default_export_dir(exp_dir, info["epoch"], avg, use_averaged_model,
                                                                    info["step"])
    ckpt = read_checkpoint(info["checkpoints"][-1], mmap=True)
    transfer = (ckpt.get("extra") or {}).get("transfer")
    modules = export_modules(model)
    check_lengths = tuple(check_lengths)

    with atomic_dir(out_dir) as tmp:
        os.chmod(tmp, 0o755)
        paths: dict[str, Path] = {}
        for name in MODELS:
            t0 = time.time()
            paths[name] = export_onnx(modules[name], name, tmp / f"{name}.onnx", example_inputs(name, model))
            add_metadata(paths[name], _metadata(name, model, info, lang))
            log.info("exported %s (%.1f MB) in %.1f s", paths[name].name, paths[name].stat().st_size / 1e6,
                     time.time() - t0)
        t0 = time.time()
        checks = verify_export(model, paths, check_lengths)
        log.info("checked against torch in %.1f s: max abs diff %s", time.time() - t0,
                 {k: f"{v:.2g}" for k, v in _max_by_model(checks).items()})
        for name in ("tokens.txt", "bpe.model"):
            if (lang.path / name).is_file():
                shutil.copy2(lang.path / name, tmp / name)
        if lm is not None:
            shutil.copy2(lm / "HLG.fst", tmp / "HLG.fst")
            shutil.copy2(lm / "words.txt", tmp / "words.txt")
        files: dict[str, Any] = {name: p.name for name, p in paths.items()}
        sizes = {p.name: p.stat().st_size for p in paths.values()}
        quant: dict[str, Any] | None = None
        if int8:
            qpaths = {name: quantize_int8(p) for name, p in paths.items()}
            qchecks = verify_export(model, qpaths, check_lengths[:2], strict=False)
            feat_dim = model.encoder.feature_dim
            speed = {"encoder_float_s": time_encoder(paths["encoder"], feat_dim, 10.0),
                     "encoder_int8_s": time_encoder(qpaths["encoder"], feat_dim, 10.0)}
            speed["int8_speedup"] = round(speed["encoder_float_s"] / speed["encoder_int8_s"], 2)
            quant = {"files": {n: p.name for n, p in qpaths.items()},
                     "sizes_bytes": {p.name: p.stat().st_size for p in qpaths.values()},
                     "max_abs_diff_vs_torch": _max_by_model(qchecks),
                     "encoder_seconds_per_10s_audio_1_thread": speed}
            log.info("int8: %s; encoder on 10 s: float %.3f s, int8 %.3f s", quant["sizes_bytes"],
                     speed["encoder_float_s"], speed["encoder_int8_s"])
        sherpa = _sherpa_load_check(tmp, "", lm is not None)
        if int8 and sherpa.get("checked"):
            _sherpa_load_check(tmp, ".int8", lm is not None)
        record = {
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "out_dir": str(out_dir),
            "model": {"exp_dir": str(exp_dir), "epoch": info["epoch"], "avg": avg,
                      "use_averaged_model": use_averaged_model, "step": info["step"],
                      "checkpoints": info["checkpoints"], "model_conf": info["model_conf"],
                      "parameters": count_parameters(model)["total"]},
            "lang": {"lang_dir": str(lang.path), "language": lang.language, "vocab_size": lang.vocab_size,
                     "blank_id": lang.blank_id, "fingerprint": lang.fingerprint,
                     "checkpoint_fingerprint": (ckpt.get("lang") or {}).get("fingerprint")},
            "lm": None if lm is None else {"lm_dir": str(lm), "files": ["HLG.fst", "words.txt"]},
            "transferred_from": None if not transfer else transfer.get("source"),
            "results": scored_results(exp_dir / decode_dir_name(info["epoch"], avg, use_averaged_model)),
            "features": {"type": "fbank", "num_bins": model.encoder.feature_dim, "sample_rate": 16000,
                         "frame_shift_ms": 10, "dither": 0.0, "snip_edges": False,
                         "normalization": "per utterance, inside the encoder"},
            "frame_shift_seconds": 0.01 * model.encoder.subsampling_factor,
            "files": files, "sizes_bytes": sizes, "int8": quant,
            "checks_against_torch": {"lengths_frames": list(check_lengths), "max_abs_diff": _max_by_model(checks),
                                     "rows": checks},
            "sherpa_onnx_load": sherpa, "onnx_opset": OPSET, "versions": _versions(),
            "seconds": round(time.time() - t_start, 1),
        }
        with atomic_write(tmp / "README.md") as f:
            f.write(readme_text(record, out_dir))
        with atomic_write(tmp / INFO_NAME) as f:
            json.dump(record, f, indent=2, ensure_ascii=False)
            f.write("\n")
    log.info("wrote %s in %.0f s", out_dir, time.time() - t_start)
    return record


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def readme_text(record: dict[str, Any], out_dir: Path) -> str:
    """README.md of an export folder: what the model is and how to run it."""
    m, lang = record["model"], record["lang"]
    lines = [f"# Graft model export: {Path(m['exp_dir']).name}, epoch {m['epoch']} avg {m['avg']}"
             + (" (running average)" if m["use_averaged_model"] else ""), "",
             f"- language: {lang['language'] or 'unknown'}; {lang['vocab_size']} BPE tokens "
             f"(fingerprint {lang['fingerprint']}, from {lang['lang_dir']})",
             f"- {m['parameters'] / 1e6:.2f} M parameters, step {m['step']}; checkpoints: "
             + ", ".join(Path(c).name for c in m["checkpoints"])]
    src = record.get("transferred_from")
    if src:
        lines.append(f"- transferred from: {src.get('exp_dir') or src.get('checkpoints')}")
    if record["results"]:
        lines.append("- results (stage 7, LM weight chosen on dev):")
        for method, r in record["results"].items():
            test = "-" if r["test_wer"] is None else f"{r['test_wer']:.2f}"
            lines.append(f"  - {method}: test WER {test}, dev WER {r['dev_wer']:.2f} (LM weight {r['lm_weight']})")
    else:
        lines.append("- results: not scored (run stages 6-7 for this epoch/avg)")
    checks = record["checks_against_torch"]
    lines += ["", "## Files", "", "| file | size |", "|---|---:|"]
    lines += [f"| {name} | {_mb(size)} |" for name, size in record["sizes_bytes"].items()]
    if record["int8"]:
        lines += [f"| {name} | {_mb(size)} |" for name, size in record["int8"]["sizes_bytes"].items()]
    lines += ["| tokens.txt, bpe.model | |"] + (["| HLG.fst, words.txt | |"] if record["lm"] else [])
    lines += ["", f"Checked against torch on {', '.join(str(t / 100) + ' s' for t in checks['lengths_frames'])} "
              "of input: max abs difference " + ", ".join(f"{k} {v:.1e}" for k, v in checks["max_abs_diff"].items())
              + "."]
    if record["int8"]:
        s = record["int8"]["encoder_seconds_per_10s_audio_1_thread"]
        lines.append(f"int8: encoder {s['encoder_int8_s']:.3f} s vs float {s['encoder_float_s']:.3f} s per 10 s "
                     f"of audio on 1 thread ({s['int8_speedup']}x).")
    d = str(out_dir)
    lines += ["", "## Run it", "", "With Graft (`steps/recognize.py`, sherpa-onnx underneath):", "", "```bash",
              f"steps/recognize.py --model {d} --method greedy audio1.wav audio2.flac",
              f"steps/recognize.py --model {d} --method ctc-hlg --json out.json long_talk.mp3", "```", "",
              "With sherpa-onnx alone (Python):", "", "```python", "import sherpa_onnx",
              "rec = sherpa_onnx.OfflineRecognizer.from_transducer(",
              f"    '{d}/encoder.onnx', '{d}/decoder.onnx', '{d}/joiner.onnx', '{d}/tokens.txt',",
              "    num_threads=2, decoding_method='greedy_search')   # or 'modified_beam_search'",
              f"ctc = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc('{d}/ctc.onnx', '{d}/tokens.txt',"
              + (f" ctc_graph='{d}/HLG.fst')" if record["lm"] else ")"),
              "stream = rec.create_stream(); stream.accept_waveform(16000, samples)   # float32 in [-1, 1]",
              "rec.decode_stream(stream); print(stream.result.text)", "```", "",
              "Input: mono audio; sherpa-onnx computes the 80-dim fbank itself (16 kHz, dither 0). "
              "Segment long recordings first (steps/recognize.py does): the encoder attends over the whole input.",
              ""]
    return "\n".join(lines)
