#!/usr/bin/env python3
"""Training speed side by side: the bare model step (fp32 and the fast path), the full training
loop on demo-like batches, DDP 2 x 1 thread, and each one's share of a matmul roofline.

Usage:
    .venv/bin/python bench/bench_train.py [--preset small] [--steps 20] [--threads 2]
        [--vocab-size 150] [--no-ddp] [--workdir DIR] [--out train]

Rows (one run, the same model preset and batch sizes; the first step of each is excluded):
  matmul roofline   fp32 and bf16 products at the model's sizes (N*T frames x 144 x 576, ...)
  bare step         forward + backward of a 6 x 5 s batch (the demo's 30 s batches), pruned
                    RNN-T + 0.2 CTC, no optimizer: "fp32" with torch's dropout (the step before
                    issue 15), "fast path" with graft's dropout and mixed precision as `amp:
                    auto` decides on this machine (`bf16 forced` is also shown when auto is off);
                    "shared masks": the fast path with dropout masks shared over time (model conf
                    dropout_shared_time)
  loop              graft.train.loop.Trainer as stage 4 runs it (lilcom features from disk,
                    bucketed 30 s batches with their padding, AdamW, clipping, running average,
                    logging, the guard), before and after issue 15, with shared masks, and with
                    one DataLoader worker process; the padded seconds a step and the batch fill
                    split the loop/bare ratio in two, and each loop step is split into the time
                    outside the step (next batch, averaging, logging), forward + backward, and
                    the update (clipping + optimizer), beside a bare replay of the loop's own
                    batches (the model's speed on those sizes and shapes, without the loop)
  DDP 2 x 1         torchrun, 2 processes of 1 thread, gloo (rate over all ranks; the preset's masks),
                    at --max-duration a process (twice the audio an update) and at half of it
                    (the same audio an update as the 1 x 2 loop: the fair comparison)
Audio s/s is audio seconds trained per wall second; GFLOPS counts the matrix products and
convolutions of one step (torch.utils.flop_counter), and "of fp32 / of bf16" is that rate over
the roofline matmul's. Data: the demo's English fbank and lang dir when stages 2-3 have run;
otherwise ~15 minutes of espeak-ng speech of fortune sentences (the demo's text source,
2-7 s each), stage-2 style lilcom fbank, and a BPE of --vocab-size (built once in --workdir).
Writes bench/results/train.{md,json} (--out NAME: <NAME>.{md,json}).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from graft.utils.io import atomic_write  # noqa: E402

DEMO = ROOT / "egs/demo/ASR/data"
VOICES = ("en+m1", "en+f2", "en+m3", "en+f4", "en+m5", "en-us+m2", "en-us+f3")


# ---------------------------------------------------------------------------- data
def demo_like_data(workdir: Path, vocab: int, minutes: float = 15.0) -> tuple[Path, Path, str]:
    """(cuts with lilcom fbank, lang dir, description): the demo source's when they exist (English
    + Polish, the default, or English alone), else built."""
    for src, what in (("en_pl", "English + Polish"), ("en", "English")):
        demo_cuts, demo_lang = DEMO / f"fbank/{src}/cuts_train.jsonl.gz", DEMO / f"lang/{src}_bpe{vocab}"
        if demo_cuts.exists() and (demo_lang / "tokens.txt").exists():
            os.chdir(DEMO.parent)    # the manifests' feature paths are relative to the recipe dir
            return demo_cuts, demo_lang, f"demo {what} train (egs/demo/ASR), BPE {vocab}"
    root = workdir / "data"
    cuts_path, lang_dir = root / "cuts_train.jsonl.gz", root / f"lang_bpe{vocab}"
    desc = f"espeak-ng speech of fortune sentences ({minutes:g} min, lilcom fbank), BPE {vocab}"
    if cuts_path.exists() and (lang_dir / "tokens.txt").exists():
        return cuts_path, lang_dir, desc
    from lhotse import (CutSet, LilcomChunkyWriter, Recording, RecordingSet, SupervisionSegment,
                        SupervisionSet)
    from tiny_asr import _synthesize, _train_bpe

    from graft.data.features import make_extractor
    from graft.data.fortunes import fortune_sentences

    sentences = [s.text for s in fortune_sentences("en")[0]]
    random.Random(0).shuffle(sentences)
    wav_dir = root / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    recs, sups, total = [], [], 0.0
    for i, text in enumerate(sentences):
        if total >= minutes * 60:
            break
        utt = f"bench{i:04d}"
        wav = wav_dir / f"{utt}.wav"
        if not wav.exists():
            _synthesize(text, VOICES[i % len(VOICES)], 150 + 10 * (i % 4), wav)
        rec = Recording.from_file(wav, recording_id=utt)
        if not 1.0 <= rec.duration <= 12.0:
            continue
        recs.append(rec)
        sups.append(SupervisionSegment(id=utt, recording_id=utt, start=0.0, duration=rec.duration,
                                       text=text, language="en", speaker=VOICES[i % len(VOICES)]))
        total += rec.duration
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cuts = CutSet.from_manifests(recordings=RecordingSet.from_recordings(recs),
                                     supervisions=SupervisionSet.from_segments(sups))
        cuts = cuts.compute_and_store_features(extractor=make_extractor(), storage_path=root / "feats",
                                               storage_type=LilcomChunkyWriter, num_jobs=1)
    finally:
        torch.set_num_threads(threads)
    _train_bpe(sentences[:5000], lang_dir, vocab)
    cuts.to_file(cuts_path)
    return cuts_path, lang_dir, desc


def bare_batch(lang_dir: Path, cuts_path: Path, batch: int = 6, seconds: float = 5.0,
               feature_dim: int = 80) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
    """A batch of `batch` x `seconds` (no padding): fbank-like features, and tokens at the data's
    own tokens-per-second rate (so the losses see demo-sized targets)."""
    from lhotse import CutSet

    from graft.lang.langdir import load_lang_dir

    lang = load_lang_dir(lang_dir)
    cuts = list(CutSet.from_file(cuts_path).subset(first=200))
    texts = [" ".join(s.text for s in c.supervisions) for c in cuts]
    rate = sum(len(t) for t in lang.encode(texts)) / sum(c.duration for c in cuts)
    frames, n_tokens = int(seconds * 100), max(1, round(rate * seconds))
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(batch, frames, feature_dim, generator=g) * 3.0 - 8.0
    tokens = [torch.randint(3, lang.vocab_size, (n_tokens,), generator=g).tolist() for _ in range(batch)]
    return feats, torch.full((batch,), frames, dtype=torch.int64), tokens


def add_step_args(ap, reps: int) -> None:
    """The options of the bare-step benchmarks (bench_compile.py, bench_depthwise.py)."""
    ap.add_argument("--preset", default="small")
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=150)
    ap.add_argument("--workdir", default=None, help="keep the generated data here (default: a temporary dir)")


def step_setup(args, prefix: str):
    """(batch, vocab size, amp, data description) for a bare-step benchmark: the demo's data (or
    data made in --workdir), the threads, the kernel cache and allocator the trainer sets."""
    from graft.lang.langdir import load_lang_dir
    from graft.train.amp import resolve_amp
    from graft.train.kernels import enlarge_kernel_cache
    from graft.train.malloc import keep_freed_memory

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=prefix)).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cuts, lang_dir, source = demo_like_data(workdir, args.vocab_size)
    torch.set_num_threads(args.threads)
    enlarge_kernel_cache()
    keep_freed_memory()
    batch = bare_batch(lang_dir, cuts)
    return batch, load_lang_dir(lang_dir).vocab_size, resolve_amp("auto", "cpu"), source


def step_record(args, amp, source: str, batch, **fields) -> dict:
    """The header of a bare-step benchmark's JSON: when, where, what, then `fields`."""
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": _cpu_name(), "torch": torch.__version__,
            "threads": args.threads, "amp": "bf16 autocast" if amp.enabled else "fp32", "data": source,
            "preset": args.preset, "batch": f"{batch[0].shape[0]} x {batch[0].shape[1] / 100:g} s", **fields}


def save_results(name: str, result: dict, lines: list[str]) -> str:
    """bench/results/<name>.json (`result`) and <name>.md (`lines`), atomically; returns the markdown."""
    out = ROOT / "bench/results"
    with atomic_write(out / f"{name}.json") as f:
        json.dump(result, f, indent=2)
    md = "\n".join(lines) + "\n"
    with atomic_write(out / f"{name}.md") as f:
        f.write(md)
    return md


# ---------------------------------------------------------------------------- roofline
def matmul_roofline(frames: int, dims: list[tuple[int, int]], dtype: torch.dtype,
                    budget_s: float = 1.0) -> dict[str, Any]:
    """GFLOPS of (frames x k) @ (k x n) products at the model's sizes: the best shape and each."""
    out = {}
    for k, n in dims:
        a, b = torch.randn(frames, k).to(dtype), torch.randn(k, n).to(dtype)
        a @ b
        times, t_end = [], time.perf_counter() + budget_s
        while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 200):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        out[f"{frames}x{k}x{n}"] = 2 * frames * k * n / statistics.median(times) / 1e9
    return {"gflops": max(out.values()), "shapes": {s: round(v, 1) for s, v in out.items()}}


# ---------------------------------------------------------------------------- bare steps
def make_model(preset: str, vocab: int, dropout_impl: str, shared: bool | None = None,
               dropout: float | None = None, planar: bool = False):
    """The preset's model; `shared` overrides its dropout_shared_time, `dropout` its dropout and
    ctc_dropout (the training option --dropout; None: the preset's); `planar`: the depthwise
    convolutions in their transposing reference layout (the step before issue 15)."""
    from graft.model.build import build_model, load_model_conf, with_dropout
    from graft.model.dropout import set_dropout_impl

    torch.manual_seed(0)
    conf = with_dropout(load_model_conf(preset), dropout)
    if shared is not None:
        conf["dropout_shared_time"] = shared
    model = build_model(conf, vocab)
    set_dropout_impl(model, dropout_impl)
    for layer in model.encoder.layers:
        layer.conv.planar = planar
    return model.train()


def step_fn(model, batch, amp) -> Callable[[], None]:
    """One forward + backward (pruned RNN-T + 0.2 CTC, the demo's loss), no optimizer."""
    feats, lens, tokens = batch

    def step() -> None:
        with amp.autocast():
            loss, info = model(feats, lens, tokens, prune_range=5, simple_loss_scale=0.5, ctc_weight=0.2)
        (loss / float(info["frames"])).backward()
        model.zero_grad(set_to_none=True)
    return step


def step_flops(step: Callable[[], None]) -> float:
    """FLOPs of one step (matrix products and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def time_interleaved(steps: dict[str, Callable[[], None]], reps: int, warmup: int = 2) -> dict[str, list[float]]:
    """Wall seconds of each step, the variants taking turns (so a load change hits all alike)."""
    for _ in range(warmup):
        for f in steps.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(reps):
        for k, f in steps.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------------------- the loop
def time_optimizers(model: torch.nn.Module, reps: int = 30) -> dict[str, float]:
    """Median ms of one optimizer step over `model`'s parameters (random gradients): fused AdamW
    (graft.train.optim's default) and ScaledAdam, taking turns."""
    from graft.train.optim import build_optimizer

    opts = {"AdamW (fused)": build_optimizer(model, 0.002, 1e-6),
            "ScaledAdam": build_optimizer(model, 0.045, 0.0, optimizer="scaled_adam")}
    torch.manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    times: dict[str, list[float]] = {k: [] for k in opts}
    with torch.no_grad():
        for i in range(reps + 5):
            for name, opt in opts.items():
                t0 = time.perf_counter()
                opt.step()
                if i >= 5:
                    times[name].append(time.perf_counter() - t0)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def loop_conf(cuts: Path, lang_dir: Path, exp: Path, preset: str, max_duration: float, **kw):
    """The demo's stage-4 options (run.sh train_opts), no checkpoints inside the timed steps."""
    from graft.train.options import load_train_conf

    return load_train_conf(cuts_train=str(cuts), lang_dir=str(lang_dir), exp_dir=str(exp), model_conf=preset,
                           num_epochs=1000, max_duration=max_duration, ctc_weight=0.2, warm_steps=200,
                           lr_steps=1000, lr_epochs=5, spec_augment=False, save_every_n=0, device="cpu", **kw)


def run_loop(cuts: Path, lang_dir: Path, preset: str, steps: int, max_duration: float, threads: int,
             workdir: Path, before: bool, warmup: int = 1, shared: bool | None = None,
             dropout: float | None = None, num_workers: int = 0, num_buckets: int | None = None) -> dict[str, Any]:
    """The real training loop for `warmup` + `steps` batches, the first `warmup` not timed
    (oneDNN builds its bf16 kernels for the shapes it meets first); `before`: the code paths
    issue 15 replaced (torch's dropout, the per-parameter AdamW loop and clipping, fp32, batches
    padded to their longest cut only)."""
    import graft.train.loop as loop_mod
    from graft.lang.langdir import load_lang_dir
    from graft.model.build import load_model_conf
    from graft.train.optim import build_optimizer

    class TimedTrainer(loop_mod.Trainer):
        marks: list[tuple[float, float, float, float]] = []
        spans: list[tuple[float, float, float]] = []    # (step entry, step exit, clip + optimizer seconds)
        kept: list[dict[str, Any]] = []                 # the timed batches, replayed bare afterwards
        update_s = 0.0
        epoch_end: list[tuple[float, float, float]] = []  # saves and validations: (wall start, wall, cpu seconds)

        def _save(self, name):
            t, c = time.perf_counter(), time.process_time()
            try:
                return super()._save(name)
            finally:
                self.epoch_end.append((t, time.perf_counter() - t, time.process_time() - c))

        def _validate(self):
            t, c = time.perf_counter(), time.process_time()
            try:
                return super()._validate()
            finally:
                self.epoch_end.append((t, time.perf_counter() - t, time.process_time() - c))

        def _setup_optim(self) -> None:
            super()._setup_optim()
            if before:
                self.optimizer = build_optimizer(self.model, self.conf.base_lr, self.conf.weight_decay,
                                                 self.param_groups, fused=False)
                self.scheduler = type(self.scheduler)(self.optimizer, self.conf.warm_steps,
                                                      self.conf.lr_steps, self.conf.lr_epochs)
            step = self.optimizer.step

            def timed_step(*a, **kw):
                t = time.perf_counter()
                try:
                    return step(*a, **kw)
                finally:
                    TimedTrainer.update_s += time.perf_counter() - t
            self.optimizer.step = timed_step

        def _train_step(self, batch, stats):
            TimedTrainer.update_s = 0.0
            t_in = time.perf_counter()
            out = super()._train_step(batch, stats)
            t_out = time.perf_counter()
            self.spans.append((t_in, t_out, TimedTrainer.update_s))
            feats = batch["features"]
            self.marks.append((t_out, time.process_time(), batch["duration"],
                               feats.shape[0] * feats.shape[1] / 100.0))     # padded seconds (100 frames/s)
            if len(self.marks) > warmup:
                self.kept.append(batch)
            if len(self.marks) >= warmup + steps:
                self.conf.max_minutes = 0.0              # the loop's own clean stop
            return out

    torch.set_num_threads(threads)
    lang = load_lang_dir(lang_dir)
    model = make_model(preset, lang.vocab_size, "torch" if before else "fast", shared=False if before else shared,
                       dropout=dropout, planar=before)
    exp = Path(tempfile.mkdtemp(dir=workdir, prefix="exp-"))
    conf = loop_conf(cuts, lang_dir, exp, preset, max_duration, amp="false" if before else "auto",
                     num_workers=num_workers, **({"num_buckets": num_buckets} if num_buckets else {}),
                     **({"pad_frames_to": 1} if before else {}))
    saved_clip = loop_mod.clip_grad_norm
    clip = ((lambda ps, max_norm: float(torch.nn.utils.clip_grad_norm_(ps, max_norm))) if before else saved_clip)

    def timed_clip(ps, max_norm):
        t = time.perf_counter()
        try:
            return clip(ps, max_norm)
        finally:
            TimedTrainer.update_s += time.perf_counter() - t
    loop_mod.clip_grad_norm = timed_clip
    try:
        trainer = TimedTrainer(model, conf, lang, load_model_conf(preset))
        trainer.run()
    finally:
        loop_mod.clip_grad_norm = saved_clip
    m = trainer.marks[warmup - 1:]
    # the timed window without the epoch ends inside it (the demo's 900-batch epochs have none;
    # a small bench corpus's ~40-batch epochs would charge a checkpoint save to the steps)
    inside = [e for e in trainer.epoch_end if m[0][0] <= e[0] < m[-1][0]]
    excluded = sum(e[1] for e in inside)
    wall, cpu = m[-1][0] - m[0][0] - excluded, m[-1][1] - m[0][1] - sum(e[2] for e in inside)
    audio = sum(x[2] for x in m[1:])
    padded = sum(x[3] for x in m[1:])
    n = len(m) - 1
    spans = trainer.spans[warmup - 1:]
    outside = (sum(b[0] - a[1] for a, b in zip(spans, spans[1:])) - excluded) / n  # next batch, averaging, logging
    update = sum(s[2] for s in spans[1:]) / n                            # clipping + optimizer step
    fwd_bwd = sum(s[1] - s[0] - s[2] for s in spans[1:]) / n            # the rest of the step
    replay = replay_batches(trainer.model, trainer.kept, trainer.amp)
    return {"steps_timed": n, "audio_per_step": audio / n, "sec_per_step": wall / n,
            "padded_per_step": padded / n,
            "audio_sec_per_sec": audio / wall, "cpu_per_wall": cpu / wall, "amp": trainer.amp.enabled,
            "outside_step_s": outside, "update_s": update, "fwd_bwd_s": fwd_bwd,
            "replay_sec_per_step": replay, "replay_audio_sec_per_sec": audio / n / replay}


def batch_fill(cuts_path: Path, max_duration: float, buckets: tuple[int, ...], pad_frames_to: int,
               seed: int = 0) -> list[dict[str, Any]]:
    """One epoch of the training sampler per bucket count (no model): batches, audio and padded
    seconds a batch (frames rounded up to pad_frames_to), and the fill (audio / padded)."""
    from graft.train.data import load_cuts, make_train_sampler

    cuts = load_cuts(cuts_path).filter(lambda c: 0.3 <= c.duration <= 30.0).to_eager()
    out = []
    for nb in buckets:
        sampler = make_train_sampler(cuts, max_duration, seed, 1, 0, nb)
        sampler.set_epoch(0)
        n = audio = padded = 0
        for b in sampler:
            frames = max(c.num_frames for c in b)
            n, audio = n + 1, audio + sum(c.duration for c in b)
            padded += len(b) * -(-frames // pad_frames_to) * pad_frames_to / 100.0
        out.append({"num_buckets": nb, "effective_buckets": max(2, min(nb, len(cuts) // 4)), "batches": n,
                    "audio_per_batch": audio / n, "padded_per_batch": padded / n, "fill": audio / padded})
    return out


def replay_batches(model: torch.nn.Module, batches: list[dict[str, Any]], amp, passes: int = 2) -> float:
    """Mean seconds of a bare forward + backward (the loop's loss options, no optimizer) on the
    loop's own timed batches, already in memory; the last of `passes` passes is timed (the first
    meets every shape again, as the loop did)."""
    model.train()
    for p in range(passes):
        t0 = time.perf_counter()
        for b in batches:
            with amp.autocast():
                loss, info = model(b["features"], b["feature_lens"], b["tokens"], prune_range=5,
                                   simple_loss_scale=0.5, ctc_weight=0.2)
            (loss / max(float(info["frames"]), 1.0)).backward()
            model.zero_grad(set_to_none=True)
        wall = time.perf_counter() - t0
    return wall / max(len(batches), 1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(cuts: Path, lang_dir: Path, preset: str, steps: int, max_duration: float, workdir: Path,
            warmup: int = 5) -> dict:
    """torchrun 2 x 1 thread of steps/train.py (the fast path, amp auto): the rate the loop logs
    over all ranks, per 5-batch interval, the intervals of the first `warmup` batches excluded."""
    exp = Path(tempfile.mkdtemp(dir=workdir, prefix="ddp-"))
    interval = 5
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(ROOT / "steps/train.py"), "--cuts-train", str(cuts), "--lang-dir", str(lang_dir),
           "--exp-dir", str(exp), "--model-conf", preset, "--max-duration", str(max_duration),
           "--num-epochs", "1000", "--save-every-n", "0", "--log-interval", str(interval), "--max-minutes", "10",
           "--ctc-weight", "0.2", "--warm-steps", "200", "--lr-steps", "1000", "--lr-epochs", "5",
           "--spec-augment", "false", "--amp", "auto"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    rates: list[float] = []
    tail: list[str] = []
    skip = max(1, -(-warmup // interval))
    assert proc.stderr is not None
    for line in proc.stderr:
        tail = (tail + [line])[-20:]
        m = re.search(r"([\d.]+) audio s/s", line)
        if m:
            rates.append(float(m.group(1)))
            if len(rates) >= skip + -(-steps // interval):  # the warm-up intervals, then `steps` batches
                proc.terminate()
                break
    proc.wait()
    if len(rates) <= skip:
        raise RuntimeError("the DDP run logged too few rates:\n" + "".join(tail))
    rates = rates[skip:]
    return {"steps_timed": len(rates) * interval, "audio_per_step": None,
            "audio_sec_per_sec": sum(rates) / len(rates)}


# ---------------------------------------------------------------------------- report
def _row(name: str, threads: str, audio_per_step: float | None, sec_per_step: float | None, rate: float,
         gflops: float, roof32: float, roof16: float, note: str = "", padded_per_step: float | None = None
         ) -> dict[str, Any]:
    return {"row": name, "threads": threads, "audio_per_step": audio_per_step, "padded_per_step": padded_per_step,
            "sec_per_step": sec_per_step,
            "audio_sec_per_sec": rate, "gflops": gflops, "of_fp32_roofline": gflops / roof32,
            "of_bf16_roofline": gflops / roof16, "note": note}


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def write_results(result: dict[str, Any], name: str = "train") -> str:
    """bench/results/<name>.{json,md}; returns the markdown."""
    r = result
    lines = [f"# Training speed: preset `{r['preset']}` ({r['params_m']} M parameters, vocab {r['vocab_size']})", "",
             f"{r['date']}, {r['cpu']} ({r['cores']} cores, torch {r['torch']}, {r['capability']}), "
             f"1-minute load {r['load_before']} before / {r['load_after']} after. Data: {r['data']}. "
             f"`bench/bench_train.py`. {r['amp']}.", "",
             f"Bare step: forward + backward of {r['batch']} x {r['seconds']:g} s (pruned RNN-T + 0.2 CTC, "
             f"no optimizer), {r['flops_per_step'] / 1e9:.1f} GFLOP a step ({r['flops_per_audio_s'] / 1e9:.2f} per "
             "second of audio, matrix products and convolutions), median of "
             f"{r['bare_reps']} steps, the variants taking turns. Loop: graft.train.loop on demo-like batches "
             f"(--max-duration {r['max_duration']:g}, lilcom features from disk, padding, AdamW, clipping, "
             f"averaging, logging, the guard), {r['loop_steps']} steps after {r.get('loop_warmup', 1)} untimed ones. GFLOPS of a loop = its "
             "audio rate x the bare step's GFLOP per audio second (padding is extra work, not counted).", "",
             "| row | threads | audio s / step | padded s / step | s / step | audio s / s | GFLOPS | of fp32 roofline | of bf16 roofline |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for x in r["rows"]:
        padded = x.get("padded_per_step", x["audio_per_step"])
        bf16 = f"{x['of_bf16_roofline']:.1%}" if r.get("bf16_native", True) else "-"
        lines.append(f"| {x['row']} | {x['threads']} | {_fmt(x['audio_per_step'], '.1f')} | {_fmt(padded, '.1f')} | "
                     f"{_fmt(x['sec_per_step'], '.3f')} | {x['audio_sec_per_sec']:.1f} | {x['gflops']:.1f} | "
                     f"{x['of_fp32_roofline']:.0%} | {bf16} |")
    lines += ["", "Roofline (matrix products at the model's sizes, GFLOPS): "
              + "; ".join(f"{dt} best {v['gflops']:.1f} ({', '.join(f'{s}: {g}' for s, g in v['shapes'].items())})"
                          for dt, v in r["roofline"].items()) + ".", "", "Ratios:", ""]
    lines += [f"- {k}: {v:.2f}" for k, v in r["ratios"].items()]
    if r.get("optimizer_ms"):
        lines += ["", f"Optimizer step over the {r['params_m']} M parameters ({r['cores']} cores, median ms, "
                  "taking turns): " + "; ".join(f"{k} {v:.1f}" for k, v in r["optimizer_ms"].items()) + "."]
    if r.get("loop_parts"):
        lines += ["", "Where a loop step goes (mean ms over the timed steps): outside the step = waiting for the "
                  "next batch (lilcom reads, collation, tokens) + averaging + logging; update = clipping + "
                  "optimizer step; replay = forward + backward alone on the same batches, in memory, after the loop:", "",
                  "| loop | s / step | outside the step | forward + backward | update | replay | replay audio s / s |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for k, v in r["loop_parts"].items():
            lines.append(f"| {k} | {1000 * v['sec_per_step']:.0f} | {1000 * v['outside_step_s']:.0f} | "
                         f"{1000 * v['fwd_bwd_s']:.0f} | {1000 * v['update_s']:.0f} | "
                         f"{1000 * v['replay_sec_per_step']:.0f} | {v['replay_audio_sec_per_sec']:.1f} |")
    if r.get("batch_fill"):
        lines += ["", f"Batch fill of the training sampler (one epoch, --max-duration {r['max_duration']:g}, frames "
                  f"padded to a multiple of {r['pad_frames_to']}): more buckets mean cuts of closer lengths in a batch, "
                  "less padding and fuller batches:", "",
                  "| num_buckets | batches | audio s / batch | padded s / batch | fill (audio / padded) |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        for x in r["batch_fill"]:
            nb = f"{x['num_buckets']}" + ("" if x["effective_buckets"] == x["num_buckets"]
                                          else f" ({x['effective_buckets']} used: 4 cuts a bucket at least)")
            lines.append(f"| {nb} | {x['batches']} | {x['audio_per_batch']:.1f} | {x['padded_per_batch']:.1f} | "
                         f"{x['fill']:.3f} |")
    notes = r["notes"] + ([] if r.get("bf16_native", True) else
                          ["of bf16 roofline: '-' as this CPU has no native bf16 (its bf16 products are emulated, "
                           "so that roofline is no ceiling for the fp32 rows)"])
    lines += [""] + [f"- {n}" for n in notes]
    return save_results(name, result, lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=40, help="timed loop steps per loop row")
    ap.add_argument("--loop-warmup", type=int, default=40,
                    help="loop steps before the timed ones (bf16 kernels are built for new shapes)")
    ap.add_argument("--bare-steps", type=int, default=12, help="timed bare steps per variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=6, help="utterances in a bare-step batch")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per utterance of a bare-step batch")
    ap.add_argument("--max-duration", type=float, default=30.0, help="loop batches (the demo's)")
    ap.add_argument("--vocab-size", type=int, default=150, help="BPE size (the demo's)")
    ap.add_argument("--bf16-step", action="store_true",
                    help="also time a bf16 bare step where amp auto leaves it off (slow: emulated bf16)")
    ap.add_argument("--more-buckets", type=int, default=40,
                    help="bucket count of the extra loop row and the batch-fill table (conf/train.yaml: num_buckets)")
    ap.add_argument("--no-ddp", action="store_true")
    ap.add_argument("--out", default="train", help="results name: bench/results/<out>.{md,json}")
    ap.add_argument("--workdir", default=None, help="keep the generated data here (default: a temporary dir)")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cuts, lang_dir, source = demo_like_data(workdir, args.vocab_size)
    load_before = round(os.getloadavg()[0], 1)

    from graft.model.build import load_model_conf
    from graft.train.amp import cpu_capability, resolve_amp
    from graft.train.kernels import enlarge_kernel_cache
    from graft.train.malloc import keep_freed_memory

    torch.set_num_threads(args.threads)
    kernels = enlarge_kernel_cache()     # process-wide, before the first bf16 product (as steps/train.py)
    allocator = keep_freed_memory()      # process-wide: every row has it (the loop sets it anyway)
    mconf = load_model_conf(args.preset)
    batch = bare_batch(lang_dir, cuts, args.batch, args.seconds, mconf["feature_dim"])
    from graft.lang.langdir import load_lang_dir

    vocab = load_lang_dir(lang_dir).vocab_size
    fp32_model = make_model(args.preset, vocab, "torch", shared=False, planar=True)
    fast_model = make_model(args.preset, vocab, "fast", shared=False)
    off, auto = resolve_amp("false", "cpu"), resolve_amp("auto", "cpu")
    shared_model = make_model(args.preset, vocab, "fast", shared=True)
    nodrop_model = make_model(args.preset, vocab, "fast", shared=False, dropout=0.0)
    steps = {"fp32": step_fn(fp32_model, batch, off), "fast": step_fn(fast_model, batch, auto),
             "shared": step_fn(shared_model, batch, auto), "nodrop": step_fn(nodrop_model, batch, auto)}
    flops = step_flops(steps["fast"])
    frames = args.batch * int(fast_model.encoder.embed(batch[0][:1], batch[1][:1])[1][0])
    d, ff = mconf["encoder_dim"], mconf["ff_dim"]
    dims = [(d, ff), (ff, d), (d, 3 * d)]
    roof = {"fp32": matmul_roofline(frames, dims, torch.float32),
            "bf16": matmul_roofline(frames, dims, torch.bfloat16, budget_s=0.3)}
    r32, r16 = roof["fp32"]["gflops"], roof["bf16"]["gflops"]
    print("roofline", roof, flush=True)
    times = time_interleaved(steps, args.bare_steps)
    audio = args.batch * args.seconds
    rows, notes = [], []
    dt = 'bf16' if auto.enabled else 'fp32'
    for key, label in (("fp32", "bare step, fp32 (torch dropout; before)"),
                       ("fast", f"bare step, fast path (graft dropout, {dt})"),
                       ("shared", f"bare step, fast path, dropout masks shared over time ({dt})"),
                       ("nodrop", f"bare step, fast path, --dropout 0 ({dt})")):
        t = statistics.median(times[key])
        rows.append(_row(label, str(args.threads), audio, t, audio / t, flops / t / 1e9, r32, r16))
        print(rows[-1], flush=True)
    if not auto.enabled:
        if args.bf16_step:
            forced = step_fn(fast_model, batch, resolve_amp("true", "cpu"))
            t = statistics.median(time_interleaved({"bf16": forced}, 2, warmup=1)["bf16"])
            rows.append(_row("bare step, bf16 forced (emulated here)", str(args.threads), audio, t, audio / t,
                             flops / t / 1e9, r32, r16))
        else:
            notes.append("bf16 forced was not timed (--bf16-step): this CPU has no native bf16, a step took "
                         "17-37 s in a trial (100x slower than fp32)")
    optimizer_ms = time_optimizers(fast_model)
    print("optimizer step (ms)", optimizer_ms, flush=True)
    del fp32_model, fast_model, shared_model, nodrop_model, steps
    per_audio = flops / audio
    loops = {}
    for key, before, shared, dropout, workers, label in (
            ("before", True, False, None, 0, "loop, before (torch dropout, AdamW loop, fp32)"),
            ("fast", False, False, None, 0, f"loop, fast path ({dt})"),
            ("shared", False, True, None, 0, f"loop, fast path, dropout masks shared over time ({dt})"),
            ("nodrop", False, False, 0.0, 0, f"loop, fast path, --dropout 0 ({dt})"),
            ("shared_worker", False, True, None, 1, f"loop, fast path, shared masks, --num-workers 1 ({dt})"),
            ("buckets", False, False, None, 0, f"loop, fast path, --num-buckets {args.more_buckets} ({dt})")):
        res = run_loop(cuts, lang_dir, args.preset, args.steps, args.max_duration, args.threads, workdir, before,
                       args.loop_warmup, shared=shared, dropout=dropout, num_workers=workers,
                       num_buckets=args.more_buckets if key == "buckets" else None)
        loops[key] = res
        g = per_audio * res["audio_sec_per_sec"] / 1e9
        rows.append(_row(label, str(args.threads), res["audio_per_step"], res["sec_per_step"],
                         res["audio_sec_per_sec"], g, r32, r16, f"cpu/wall {res['cpu_per_wall']:.2f}",
                         padded_per_step=res["padded_per_step"]))
        print(rows[-1], flush=True)
    ddp: dict[int, dict] = {}     # 1: --max-duration a process, 2: half of it -> the run
    if not args.no_ddp:
        # at --max-duration a process (twice the audio an update of the 1 x 2 loop), then at half of it
        # (the same audio an update: the fair comparison)
        for share, label in ((1, "twice the audio a step"), (2, "the same audio a step as the 1 x 2 loop")):
            res = run_ddp(cuts, lang_dir, args.preset, args.steps, args.max_duration / share, workdir,
                          args.loop_warmup)
            g = per_audio * res["audio_sec_per_sec"] / 1e9
            rows.append(_row(f"DDP loop, fast path, --max-duration {args.max_duration / share:g} a process ({label})",
                             "2 x 1", None, None, res["audio_sec_per_sec"], g, r32, r16))
            print(rows[-1], flush=True)
            ddp[share] = res
    bare = {k: audio / statistics.median(v) for k, v in times.items()}
    fast = loops["fast"]
    ratios = {"bare step: fast path / fp32": bare["fast"] / bare["fp32"],
              "bare step: shared masks / fast path": bare["shared"] / bare["fast"],
              "bare step: shared masks / fp32 (goal >= 2)": bare["shared"] / bare["fp32"],
              "bare step: --dropout 0 / fp32 with dropout": bare["nodrop"] / bare["fp32"],
              "loop fast path / bare step fast path (goal >= 0.85)": fast["audio_sec_per_sec"] / bare["fast"],
              "  of which batch fill (audio / padded seconds a step)": fast["audio_per_step"] / fast["padded_per_step"],
              "  and the loop's padded seconds per second / the bare step's":
                  fast["padded_per_step"] / fast["sec_per_step"] / bare["fast"],
              "loop, shared masks / bare step, shared masks": loops["shared"]["audio_sec_per_sec"] / bare["shared"],
              "loop fast path / loop before": fast["audio_sec_per_sec"] / loops["before"]["audio_sec_per_sec"],
              "loop shared masks / loop fast path": loops["shared"]["audio_sec_per_sec"] / fast["audio_sec_per_sec"],
              "loop --dropout 0 / loop fast path": loops["nodrop"]["audio_sec_per_sec"] / fast["audio_sec_per_sec"],
              "loop --dropout 0 / loop before": loops["nodrop"]["audio_sec_per_sec"] / loops["before"]["audio_sec_per_sec"],
              "loop before / bare step fp32": loops["before"]["audio_sec_per_sec"] / bare["fp32"]}
    for key in ("fast", "shared"):
        lp = loops[key]
        ratios[f"loop {key} / its own batches replayed bare (the loop's cost around the model)"] = (
            lp["audio_sec_per_sec"] / lp["replay_audio_sec_per_sec"])
        ratios[f"  its batches replayed bare / bare step {key} (the cost of the batches' sizes and shapes)"] = (
            lp["replay_audio_sec_per_sec"] / bare[key])
    more = loops["buckets"]
    ratios[f"loop fast path, {args.more_buckets} buckets / bare step fast path (goal >= 0.85)"] = (
        more["audio_sec_per_sec"] / bare["fast"])
    ratios[f"loop fast path, {args.more_buckets} buckets / loop fast path"] = (
        more["audio_sec_per_sec"] / fast["audio_sec_per_sec"])
    ratios["loop shared masks, --num-workers 1 / the same in the training process"] = (
        loops["shared_worker"]["audio_sec_per_sec"] / loops["shared"]["audio_sec_per_sec"])
    if ddp:
        ratios["DDP 2 x 1 / loop fast path 1 x 2"] = ddp[1]["audio_sec_per_sec"] / fast["audio_sec_per_sec"]
        ratios["DDP 2 x 1, half the batch a process / loop fast path 1 x 2 (same audio a step)"] = (
            ddp[2]["audio_sec_per_sec"] / fast["audio_sec_per_sec"])
    notes.append("loop batches are the sampler's (lhotse's bucketing: cuts x the longest cut <= --max-duration, "
                 "so a batch holds less audio than that; the last batches of buckets are smaller), with their "
                 "padding; the bare step's batch is full and unpadded")
    notes.append(allocator + "; process-wide, so the 'before' rows have it too")
    notes.append(kernels + "; process-wide (fp32 products do not use it)")
    notes.append(f"loop rows: {args.loop_warmup} steps run before the {args.steps} timed ones (the kernels of "
                 "new shapes are built then, as in the first part of a training run); the fast path pads "
                 "batch frames to a multiple of pad_frames_to (conf/train.yaml), the 'before' row to the longest cut")
    notes.append("checkpoints (every 200 steps in the demo) and the epoch-end validation are outside the timed steps "
                 "(taken out of the timed window when an epoch ends inside it)")
    from graft.train.options import load_train_conf

    pad_to = load_train_conf(cuts_train="c", lang_dir="l", exp_dir="e").pad_frames_to
    fill = batch_fill(cuts, args.max_duration, tuple(sorted({10, 20, args.more_buckets})), pad_to)
    n_params = sum(p.numel() for p in make_model(args.preset, vocab, "fast").parameters())
    result = {"preset": args.preset, "params_m": round(n_params / 1e6, 2), "vocab_size": vocab,
              "batch": args.batch, "seconds": args.seconds, "max_duration": args.max_duration,
              "flops_per_step": flops, "flops_per_audio_s": per_audio, "bare_reps": args.bare_steps,
              "loop_steps": args.steps, "loop_warmup": args.loop_warmup, "data": source, "amp": auto.describe(), "roofline": roof, "rows": rows,
              "ratios": ratios, "notes": notes, "cpu": _cpu_name(), "cores": os.cpu_count(),
              "capability": cpu_capability(), "bf16_native": auto.enabled, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
              "load_before": load_before, "load_after": round(os.getloadavg()[0], 1),
              "bare_times": {k: [round(x, 4) for x in v] for k, v in times.items()},
              "optimizer_ms": optimizer_ms, "batch_fill": fill, "pad_frames_to": pad_to,
              "loop_parts": {k: {f: round(v[f], 4) for f in ("sec_per_step", "outside_step_s", "fwd_bwd_s", "update_s",
                                                               "replay_sec_per_step", "replay_audio_sec_per_sec")}
                             for k, v in loops.items()}}
    print(write_results(result, args.out))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    main()
