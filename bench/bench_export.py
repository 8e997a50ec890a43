#!/usr/bin/env python3
"""Decoding speed of one model through Graft (torch) and through sherpa-onnx (its ONNX export).

Usage:
    .venv/bin/python bench/bench_export.py [--work-dir /tmp/graft_bench_export] [--minutes 3]

Model and audio: the demo's source model (`egs/demo/ASR/exp/en_pl_small`, or `exp/en_small`; its lang dir and LM dir,
the English test wavs) when it exists; otherwise a `small`-preset model on a BPE-150 lang dir
and 3-gram HLG built from Debian's English fortunes, decoding espeak-ng speech of fortune
sentences. That model is untrained (random weights, seed 0) with two changes that give it a
trained model's search load: the joiner's blank bias is set so greedy search emits on about a
quarter of the frames, and the CTC head is made peaky and mostly blank. Its words are noise;
only the speeds mean something.

Measured in one run, on the same audio, each file decoded whole (no segmentation), after one
warm-up file, the fastest of --rounds interleaved passes per configuration: RTF = processing time / audio duration, from samples to tokens (features
included) for
    Graft greedy, beam (4), CTC + HLG (LM weight 1, beam 16), with torch at 1 and 2 threads
        (and the split into fbank, encoder and search)
    sherpa-onnx greedy, modified beam (4), CTC + HLG, float and int8, at 1 and 2 threads
and the ratios Graft / sherpa-onnx. Writes bench/results/export.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from graft.utils.io import atomic_write  # noqa: E402

DEMO = ROOT / "egs/demo/ASR"


def demo_setup() -> dict | None:
    """The demo's source model (English + Polish, or English alone), lang/LM dir and English test
    wavs, if stage 4 and stage 3 ran."""
    exp = next((e for e in (DEMO / "exp/en_pl_small", DEMO / "exp/en_small") if any(e.glob("epoch-*.pt"))), None)
    if exp is None:
        return None
    src = exp.name[: -len("_small")]
    lm = sorted((DEMO / "data/lang").glob(f"{src}_bpe*/lm_*/HLG.fst"))
    tsv = DEMO / "data/corpus/en/transcripts.tsv"
    if not lm or not tsv.is_file():
        return None
    wavs = []
    for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
        f = line.split("\t")
        if len(f) >= 6 and f[5] == "test":
            wavs.append(tsv.parent / f[1])
    return {"exp": exp, "lang": exp / "lang" if (exp / "lang").is_dir() else lm[0].parents[1],
            "lm": lm[0].parent, "wavs": wavs, "what": f"demo source model {exp.name}, English test set"}


def synthetic_setup(work: Path, minutes: float) -> dict:
    """A small-preset model (see the module docstring), its lang dir + HLG, and espeak-ng audio."""
    from graft.data.fortunes import fortune_sentences
    from graft.lang.langdir import load_lang_dir
    from graft.lang.prepare import prepare_bpe, prepare_lm
    from graft.model.build import build_model, load_model_conf
    from graft.train.checkpoint import save_checkpoint

    work.mkdir(parents=True, exist_ok=True)
    sentences = [s.text for s in fortune_sentences("en")[0]]
    lang_dir, exp = work / "lang", work / "exp"
    if not (lang_dir / "lm_3gram" / "HLG.fst").is_file():
        prepare_bpe(lang_dir, "en", sentences[:6000], vocab_size=150)
        prepare_lm(lang_dir, sentences[:6000], sentences[6000:9000], sentences[9000:9100],
                   sentences[9100:9200], lm_order=3)
    lang = load_lang_dir(lang_dir)
    if not (exp / "epoch-1.pt").is_file():
        torch.manual_seed(0)
        conf = load_model_conf("small")
        model = build_model(conf, lang.vocab_size, lang.blank_id).eval()
        sd = model.state_dict()
        sd["joiner.output_linear.bias"][0] += BLANK_BIAS
        sd["ctc_output.1.weight"] *= CTC_SCALE
        sd["ctc_output.1.bias"][0] += CTC_BLANK
        save_checkpoint(exp / "epoch-1.pt", {"model": sd, "model_conf": conf, "lang": lang.info(),
                                             "progress": {"step": 0, "epoch": 1, "batches_done": 0,
                                                          "finished": True}})
    wav_dir = work / "wav"
    wav_dir.mkdir(exist_ok=True)
    wavs, total, i = [], 0.0, 0
    voices = ["en+m1", "en+f2", "en+m3", "en+f4"]
    while total < minutes * 60:
        wav = wav_dir / f"utt{i:04d}.wav"
        if not wav.is_file():
            text = " ".join(sentences[9200 + 3 * i: 9203 + 3 * i])   # three sentences, ~8-15 s
            raw = wav.with_suffix(".raw.wav")
            subprocess.run(["espeak-ng", "-v", voices[i % 4], "-w", str(raw)], input=text.encode(),
                           check=True, capture_output=True)
            subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav), "gain", "-1"],
                           check=True, capture_output=True)
            raw.unlink()
        import soundfile as sf

        total += sf.info(str(wav)).duration
        wavs.append(wav)
        i += 1
    return {"exp": exp, "lang": lang_dir, "lm": lang_dir / "lm_3gram", "wavs": wavs,
            "what": "small preset, untrained (random weights, blank biases set), BPE 150, "
                    "3-gram HLG from Debian fortunes; espeak-ng speech of fortune sentences"}


# blank bias shift (joiner), CTC weight scale and CTC blank shift of the synthetic model
BLANK_BIAS, CTC_SCALE, CTC_BLANK = 1.2, 8.0, 12.0


def graft_pass(backend, threads: int, audio: list[np.ndarray]) -> dict:
    """One pass of Graft's decoding over `audio` at `threads` torch threads, timed in parts."""
    torch.set_num_threads(threads)
    split = {"fbank": 0.0, "encoder": 0.0, "search": 0.0}
    tokens = 0
    t0 = time.perf_counter()
    for x in audio:
        hyp, times = timed_graft_decode(backend, x)
        tokens += len(hyp)
        for k, v in times.items():
            split[k] += v
    return {"wall": time.perf_counter() - t0, "tokens": tokens, **split}


def timed_graft_decode(backend, x: np.ndarray) -> tuple[list[int], dict[str, float]]:
    """TorchBackend.decode's steps, timed apart (the CTC alignment for word times is left out)."""
    from graft.decode.lattice_rescore import LatticeArrays, best_paths
    from graft.decode.search import greedy_search, modified_beam_search

    t0 = time.perf_counter()
    feats = backend.features(x)
    t1 = time.perf_counter()
    with torch.inference_mode():
        enc, lens = backend.model.encoder(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
        if backend.method == "ctc-hlg":
            log_probs = backend.model.ctc_output(enc)
        t2 = time.perf_counter()
        if backend.method == "greedy":
            tokens = greedy_search(backend.model, enc, lens)[0]
        elif backend.method == "beam":
            tokens = modified_beam_search(backend.model, enc, lens, beam=4, num_best=1)[0][0].tokens
        else:
            lat, _ = backend.lattice.decode(log_probs[0].numpy())
            tokens = best_paths(LatticeArrays.from_lattice(lat), [1.0], [0.0])[(1.0, 0.0)].word_ids
    t3 = time.perf_counter()
    return tokens, {"fbank": t1 - t0, "encoder": t2 - t1, "search": t3 - t2}


def sherpa_pass(backend, audio: list[np.ndarray]) -> dict:
    tokens = 0
    t0 = time.perf_counter()
    for x in audio:
        tokens += len(backend.decode(x).tokens)
    return {"wall": time.perf_counter() - t0, "tokens": tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/graft_bench_export"))
    p.add_argument("--minutes", type=float, default=3.0, help="synthetic audio to decode")
    p.add_argument("--rounds", type=int, default=3, help="passes per configuration, interleaved")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/export")
    p.add_argument("--threads", default="1 2")
    args = p.parse_args()
    from graft.export.audio import load_audio
    from graft.export.bundle import export_model
    from graft.export.recognize import SherpaBackend, TorchBackend

    load_before = os.getloadavg()
    setup = demo_setup() or synthetic_setup(args.work_dir, args.minutes)
    folder = args.work_dir / "export"
    t0 = time.time()
    record = export_model(setup["exp"], folder, lang_dir=setup["lang"], lm_dir=setup["lm"])
    export_seconds = time.time() - t0
    audio = [load_audio(w) for w in setup["wavs"]]
    seconds = sum(len(x) for x in audio) / 16000
    threads = [int(t) for t in args.threads.split()]
    configs = []          # (key, run-one-pass)
    for method in ("greedy", "beam", "ctc-hlg"):
        graft = TorchBackend(setup["exp"], method, lang_dir=setup["lang"], lm_dir=setup["lm"])
        graft.decode(audio[0][:16000 * 5])                      # warm-up
        for n in threads:
            configs.append((("graft", method, n, "float"), lambda g=graft, n=n: graft_pass(g, n, audio)))
            for int8 in (False, True):
                sb = SherpaBackend(folder, method, num_threads=n, int8=int8)
                sb.decode(audio[0][:16000 * 5])
                configs.append((("sherpa-onnx", method, n, "int8" if int8 else "float"),
                                lambda b=sb: sherpa_pass(b, audio)))
    passes: dict[tuple, list[dict]] = {key: [] for key, _ in configs}
    for r in range(args.rounds):
        for key, run in configs:
            passes[key].append(run())
            print(r, key, f"RTF {passes[key][-1]['wall'] / seconds:.4f}", flush=True)
    rows = []
    for (engine, method, n, precision), ps in passes.items():
        best = min(ps, key=lambda q: q["wall"])
        row = {"engine": engine, "method": method, "threads": n, "precision": precision,
               "rtf": best["wall"] / seconds, "rtf_median": float(np.median([q["wall"] for q in ps])) / seconds,
               "tokens": best["tokens"]}
        row.update({f"rtf_{k}": best[k] / seconds for k in ("fbank", "encoder", "search") if k in best})
        rows.append(row)
    by = {(r["engine"], r["method"], r["threads"], r["precision"]): r for r in rows}
    for r in rows:
        if r["engine"] == "graft":
            r["ratio_to_sherpa_float"] = r["rtf"] / by[("sherpa-onnx", r["method"], r["threads"], "float")]["rtf"]
    loads = {"before": load_before, "after": os.getloadavg()}
    write_results(args.out, setup, record, rows, seconds, export_seconds, args.rounds, loads)


def write_results(out: Path, setup: dict, record: dict, rows: list[dict], seconds: float,
                  export_seconds: float, rounds: int, loads: dict) -> None:
    sizes = {**record["sizes_bytes"], **(record["int8"] or {}).get("sizes_bytes", {})}
    lines = [f"# Graft vs sherpa-onnx on one model ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
             f"`bench/bench_export.py`)", "",
             f"Model and audio: {setup['what']}; {len(setup['wavs'])} files, {seconds:.0f} s of audio, each "
             "decoded whole. RTF = processing time / audio duration, samples to tokens (fbank included), "
             f"the fastest of {rounds} interleaved passes (median beside it), after a warm-up. Graft runs "
             "torch (float); sherpa-onnx runs the export of the same checkpoint (exported and checked "
             f"against torch in {export_seconds:.0f} s). Load average (1, 5, 15 min) before "
             f"{', '.join(f'{x:.1f}' for x in loads['before'])}, after {', '.join(f'{x:.1f}' for x in loads['after'])} "
             "on 2 cores: other jobs shared the machine.", "",
             "| engine | method | threads | precision | RTF | median | Graft / sherpa-onnx float | fbank | encoder | search | tokens |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['ratio_to_sherpa_float']:.2f}" if "ratio_to_sherpa_float" in r else ""
        split = [f"{r[k]:.4f}" if k in r else "" for k in ("rtf_fbank", "rtf_encoder", "rtf_search")]
        lines.append(f"| {r['engine']} | {r['method']} | {r['threads']} | {r['precision']} | {r['rtf']:.4f} | "
                     f"{r['rtf_median']:.4f} | {ratio} | {' | '.join(split)} | {r['tokens']} |")
    lines += ["", "File sizes: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()) + ".",
              "Max abs difference of the float export vs torch (1, 7.3, 61 s inputs): "
              + ", ".join(f"{k} {v:.1e}" for k, v in record["checks_against_torch"]["max_abs_diff"].items()) + ".",
              "CTC + HLG: Graft's LatticeSimpleDecoder makes a lattice and takes its best path; sherpa-onnx's "
              "FasterDecoder keeps the 1-best only (same graph, beam 16). Tokens of CTC + HLG rows are words.",
              "int8 rows: onnxruntime's dynamic quantization; on a CPU without VNNI (this one has AVX2 "
              "only) it is slower than float and changes the greedy output of this untrained model "
              "(its logits are nearly flat), so it buys size (3.6x smaller), not speed, here.",
              "Greedy token counts equal between Graft and sherpa-onnx float: the same tokens. Beam "
              "differs by design (sherpa-onnx ranks by log-prob / length)."]
    with atomic_write(out.with_suffix(".md")) as f:
        f.write("\n".join(lines) + "\n")
    with atomic_write(out.with_suffix(".json")) as f:
        json.dump({"setup": {k: str(v) for k, v in setup.items() if k != "wavs"}, "files": len(setup["wavs"]),
                   "audio_seconds": seconds, "export_seconds": export_seconds, "sizes_bytes": sizes,
                   "rounds": rounds, "load_average": loads,
                   "platform": platform.platform(), "rows": rows}, f, indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
