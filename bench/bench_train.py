#!/usr/bin/env python3
"""Training throughput of a model preset: seconds of audio trained per wall second.

Usage:
    .venv/bin/python bench/bench_train.py [--preset small] [--steps 30] [--max-duration 30]
        [--vocab-size 150] [--spec-augment] [--no-ddp] [--no-speed-perturb]

The defaults are the demo's stage 4 (BPE 150, 30 s batches, no SpecAugment). Uses the demo's
English features and lang dir (egs/demo/ASR/data/fbank/en, data/lang/en_bpe<V>) when stages
2-3 have run; otherwise synthesizes espeak-ng speech with tests/tiny_asr.py and trains a
BPE of that size on fortune text (so the output layer has the demo's size). Two
duration buckets, so batches are full --max-duration batches even on little data. Each setting runs
the real training loop (graft.train.loop: data loading, SpecAugment, pruned RNN-T + warm-up,
AdamW, clipping, averaging); the rate is measured between the end of the first step and the
end of the last one (set-up, start-up and the first step excluded). Settings:
  1 process x 1 thread; 1 x 2 threads; 1 x 1 with speed perturbation (2/3 of the cuts get
  fbank on the fly); torchrun 2 processes x 1 thread (gloo DDP; the rate the loop logs, all
  ranks; --max-duration is per process, so its batches are twice as large).
Writes bench/results/train.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from graft.train.data import Lang, load_lang  # noqa: E402
from graft.train.loop import Trainer  # noqa: E402
from graft.train.options import load_train_conf  # noqa: E402
from graft.utils.io import atomic_write  # noqa: E402

DEMO = ROOT / "egs/demo/ASR/data"


class TimedTrainer(Trainer):
    """The real loop, recording (end time, audio seconds) of every batch."""

    def __init__(self, *args, max_steps: int, **kw) -> None:
        super().__init__(*args, **kw)
        self.marks: list[tuple[float, float]] = []
        self.max_steps = max_steps

    def _train_step(self, batch, stats):
        out = super()._train_step(batch, stats)
        self.marks.append((time.perf_counter(), batch["duration"]))
        if len(self.marks) >= self.max_steps:
            self.conf.max_minutes = 0.0           # the loop's own clean stop
        return out


def dataset(workdir: Path, vocab: int) -> tuple[Path, Lang, str]:
    demo_lang = DEMO / f"lang/en_bpe{vocab}"
    if (DEMO / "fbank/en/cuts_train.jsonl.gz").exists() and (demo_lang / "tokens.txt").exists():
        os.chdir(DEMO.parent)   # the manifests' feature paths are relative to the recipe dir
        return DEMO / "fbank/en/cuts_train.jsonl.gz", load_lang(demo_lang), f"demo en train, BPE {vocab}"
    from tiny_asr import SENTENCES, _train_bpe, build_tiny_asr

    tiny = build_tiny_asr(workdir / "tiny", num_train=30, num_dev=6, repeat=12)
    lang_dir = workdir / f"lang_bpe{vocab}"
    if not (lang_dir / "tokens.txt").exists():
        # A BPE of the demo's size, trained on fortune text plus the synthesized sentences.
        texts = list(SENTENCES)
        for f in sorted(Path("/usr/share/games/fortunes").glob("*.u8"))[:20]:
            for line in f.read_text(encoding="utf-8", errors="ignore").lower().splitlines():
                words = re.sub(r"[^a-z' ]+", " ", line).split()
                if 3 <= len(words) <= 20:
                    texts.append(" ".join(words))
        _train_bpe(texts, lang_dir, vocab)
    return tiny.cuts_train, load_lang(lang_dir), f"espeak-ng synthesized (tests/tiny_asr.py), BPE {vocab} from fortunes"


def run_in_process(cuts: Path, lang: Lang, preset: str, steps: int, max_duration: float, threads: int,
                   speed_perturb: bool, workdir: Path, spec_augment: bool = False) -> dict:
    from graft.model.build import build_model, load_model_conf

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mconf = load_model_conf(preset)
    model = build_model(mconf, lang.vocab_size)
    exp = Path(tempfile.mkdtemp(dir=workdir, prefix="exp-"))
    conf = load_train_conf(cuts_train=str(cuts), lang_dir=str(lang.lang_dir), exp_dir=str(exp),
                           model_conf=preset, num_epochs=1000, max_duration=max_duration, save_every_n=0,
                           log_interval=10**9, speed_perturb=speed_perturb, device="cpu", num_buckets=2,
                           spec_augment=spec_augment)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    trainer = TimedTrainer(model, conf, lang, mconf, max_steps=steps)
    trainer.run()
    marks = trainer.marks
    wall = marks[-1][0] - marks[0][0]
    audio = sum(d for _, d in marks[1:])
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"processes": 1, "threads": threads, "load_avg": round(os.getloadavg()[0], 1), "speed_perturb": speed_perturb, "vocab": lang.vocab_size,
            "steps_timed": len(marks) - 1,
            "audio_seconds": round(audio, 1), "wall_seconds": round(wall, 2),
            "audio_sec_per_sec": round(audio / wall, 2), "sec_per_step": round(wall / (len(marks) - 1), 2),
            "cpu_seconds": round((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime), 1),
            "max_rss_mb": round(ru1.ru_maxrss / 1024)}


def run_ddp(cuts: Path, lang: Lang, preset: str, steps: int, max_duration: float, workdir: Path,
            spec_augment: bool = False) -> dict:
    """torchrun 2 x 1 thread; the loop logs the all-rank rate every step (first excluded)."""
    vocab = lang.vocab_size
    exp = Path(tempfile.mkdtemp(dir=workdir, prefix="ddp-"))
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "--master_port", "29561",
           str(ROOT / "steps/train.py"), "--cuts-train", str(cuts), "--lang-dir", str(lang.lang_dir),
           "--exp-dir", str(exp), "--model-conf", preset, "--max-duration", str(max_duration),
           "--num-epochs", "1000", "--save-every-n", "0", "--log-interval", "1", "--max-minutes", "4",
           "--num-buckets", "2", "--spec-augment", str(spec_augment).lower()]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)
    rates = []
    for line in proc.stderr:
        m = re.search(r"([\d.]+) audio s/s", line)
        if m:
            rates.append(float(m.group(1)))
            if len(rates) > steps:
                proc.terminate()
                break
    proc.wait()
    rates = rates[1:]
    return {"processes": 2, "threads": 1, "load_avg": round(os.getloadavg()[0], 1), "speed_perturb": False, "vocab": vocab, "steps_timed": len(rates),
            "audio_sec_per_sec": round(sum(rates) / max(len(rates), 1), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--max-duration", type=float, default=30.0)
    ap.add_argument("--vocab-size", type=int, default=150, help="BPE size (the demo's run.sh vocab_size)")
    ap.add_argument("--spec-augment", action="store_true", help="SpecAugment on (off in the demo)")
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--no-speed-perturb", action="store_true")
    ap.add_argument("--workdir", default=None, help="keep the data here (default: a temporary dir)")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cuts, lang, source = dataset(workdir, args.vocab_size)
    rows = []
    settings = [(1, False), (2, False)] + ([] if args.no_speed_perturb else [(1, True)])
    for threads, sp in settings:
        rows.append(run_in_process(cuts, lang, args.preset, args.steps + 1, args.max_duration, threads, sp, workdir,
                                   args.spec_augment))
        print(rows[-1], flush=True)
    if not args.no_ddp:
        rows.append(run_ddp(cuts, lang, args.preset, args.steps, args.max_duration, workdir, args.spec_augment))
        print(rows[-1], flush=True)
    from graft.model.build import build_model, load_model_conf

    n_params = sum(p.numel() for p in build_model(load_model_conf(args.preset), lang.vocab_size).parameters())
    result = {"preset": args.preset, "params_m": round(n_params / 1e6, 2), "vocab_size": lang.vocab_size,
              "max_duration": args.max_duration, "spec_augment": args.spec_augment, "data": source, "rows": rows,
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    out = ROOT / "bench/results"
    with atomic_write(out / "train.json") as f:
        json.dump(result, f, indent=2)
    lines = [f"# Training throughput: preset `{args.preset}` ({result['params_m']} M params, vocab "
             f"{lang.vocab_size})", "",
             f"{result['date']}, {result['cores']} cores, torch {result['torch']}, data: {source}, "
             f"--max-duration {args.max_duration:g} s per batch (per process). Real training loop "
             f"(SpecAugment {'on' if args.spec_augment else 'off'}, pruned RNN-T, AdamW); first step "
             "excluded. `bench/bench_train.py`.", "",
             "| processes x threads | speed perturb | audio s / wall s | s per step | steps timed | load avg |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['processes']} x {r['threads']} | {'yes' if r['speed_perturb'] else 'no'} | "
                     f"{r['audio_sec_per_sec']} | {r.get('sec_per_step', '-')} | {r['steps_timed']} | {r['load_avg']} |")
    lines += ["", "The machine is shared: `load avg` is the 1-minute load when the row ended (2 cores; "
              "above 2, other jobs competed and the row is pessimistic; more threads suffer most).",
              "Speed perturbation computes fbank on the fly for the 0.9x/1.1x copies (2/3 of the cuts).",
              "Epoch time = training audio x epochs / rate (x3 audio with speed perturbation)."]
    with atomic_write(out / "train.md") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
