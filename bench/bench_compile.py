#!/usr/bin/env python3
"""Does torch.compile speed up the training step? The bare step of bench_train.py (6 x 5 s,
pruned RNN-T + 0.2 CTC, forward + backward, bf16 autocast where the CPU has it), eager against
the encoder compiled by TorchInductor (dynamic shapes), and where the eager step's time goes.

Usage:
    .venv/bin/python bench/bench_compile.py [--preset small] [--reps 12] [--threads 2] [--workdir DIR]

Rows, the variants taking turns (median of --reps steps after two untimed ones):
  eager, graft dropout          the demo's step (fast masks; the preset's dropout)
  eager, --dropout 0            no dropout at all
  compiled, torch dropout       the encoder compiled; dropout by torch's kernel, which Inductor
                                turns into its own fused random numbers (graft's fast masks view
                                int64 random bits as int16, which Inductor cannot trace)
  compiled, --dropout 0         the encoder compiled, no dropout
plus the seconds a compiled encoder takes for its first two steps and for the first step of a
batch of another shape (the loop's batches take many), and a profile of the eager step by
operator (self CPU time). Writes bench/results/compile.{md,json}.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

import bench_train as bt  # noqa: E402

# operator -> group of the profile table
GROUPS = {"matrix products": ("aten::mm", "aten::addmm", "aten::bmm"),
          "convolutions": ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_convolution"),
          "copies and casts": ("aten::copy_", "aten::_to_copy", "aten::clone"),
          "elementwise (mul, add, silu, where, masked_fill, exp, ...)": (
              "aten::mul", "aten::add", "aten::add_", "aten::sub", "aten::silu", "aten::silu_backward",
              "aten::where", "aten::masked_fill_", "aten::exp", "aten::tanh", "aten::div", "aten::fill_"),
          "normalization and softmax": ("aten::native_layer_norm", "aten::native_layer_norm_backward",
                                        "aten::_softmax", "aten::_softmax_backward_data"),
          "losses (pruned RNN-T, CTC)": ("MutualInformationRecursionFunction", "aten::_ctc_loss",
                                         "aten::_ctc_loss_backward")}


def profile_groups(step, reps: int = 5) -> dict[str, float]:
    """Self CPU ms per step of each operator group (the rest as 'other')."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            step()
    by_op = {e.key: e.self_cpu_time_total / 1000 / reps for e in prof.key_averages()}
    out = {g: sum(by_op.get(op, 0.0) for op in ops) for g, ops in GROUPS.items()}
    out["other"] = sum(by_op.values()) - sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bt.add_step_args(ap, reps=12)
    args = ap.parse_args()
    batch, vocab, amp, source = bt.step_setup(args, "bench-compile-")
    models = {"eager, graft dropout": bt.make_model(args.preset, vocab, "fast"),
              "eager, --dropout 0": bt.make_model(args.preset, vocab, "fast", dropout=0.0),
              "compiled, torch dropout": bt.make_model(args.preset, vocab, "torch"),
              "compiled, --dropout 0": bt.make_model(args.preset, vocab, "fast", dropout=0.0)}
    first_steps = {}
    for name, m in models.items():
        if name.startswith("compiled"):
            m.encoder = torch.compile(m.encoder, dynamic=True)
        step = bt.step_fn(m, batch, amp)
        t0 = time.perf_counter()
        step()
        step()
        first_steps[name] = time.perf_counter() - t0
        print(f"{name}: first two steps {first_steps[name]:.1f} s", flush=True)
    steps = {k: bt.step_fn(m, batch, amp) for k, m in models.items()}
    times = bt.time_interleaved(steps, args.reps, warmup=1)
    audio = batch[0].shape[0] * batch[0].shape[1] / 100
    rows = []
    for name, t in times.items():
        s = statistics.median(t)
        rows.append({"row": name, "sec_per_step": s, "audio_sec_per_sec": audio / s,
                     "first_two_steps_s": first_steps[name]})
        print(rows[-1], flush=True)
    feats, lens, toks = batch                     # another shape: 5 utterances of 4.3 s
    other = (feats[:5, :430].contiguous(), torch.full((5,), 430), [t[: max(1, len(t) * 43 // 50)] for t in toks[:5]])
    new_shape = {}
    for name in ("eager, graft dropout", "compiled, torch dropout"):
        step = bt.step_fn(models[name], other, amp)
        t0 = time.perf_counter()
        step()
        new_shape[name] = time.perf_counter() - t0
    prof = profile_groups(steps["eager, graft dropout"])
    base = statistics.median(times["eager, graft dropout"])
    base0 = statistics.median(times["eager, --dropout 0"])
    ratios = {"compiled torch dropout / eager graft dropout (speed)": base / statistics.median(times["compiled, torch dropout"]),
              "compiled --dropout 0 / eager --dropout 0 (speed)": base0 / statistics.median(times["compiled, --dropout 0"])}
    result = bt.step_record(args, amp, source, batch, rows=rows, new_shape_first_step_s=new_shape,
                            profile_ms_per_step=prof, ratios=ratios)
    lines = [f"# torch.compile on the training step: preset `{args.preset}`", "",
             f"{result['date']}, {result['cpu']} ({args.threads} threads, torch {result['torch']}, "
             f"{result['amp']}). Bare step of {result['batch']} (forward + backward, pruned RNN-T + 0.2 CTC, "
             f"no optimizer), median of {args.reps} steps, the variants taking turns. Compiled: "
             "`torch.compile(model.encoder, dynamic=True)` (TorchInductor, C++ kernels). Data: "
             f"{source}. `bench/bench_compile.py`.", "",
             "| step | s / step | audio s / s | first two steps (s) |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['row']} | {r['sec_per_step']:.3f} | {r['audio_sec_per_sec']:.1f} | {r['first_two_steps_s']:.1f} |"
              for r in rows]
    lines += ["", "Ratios:", ""] + [f"- {k}: {v:.2f}" for k, v in ratios.items()]
    lines += ["", "First step of a batch of another shape (5 x 4.3 s), seconds: "
              + "; ".join(f"{k} {v:.2f}" for k, v in new_shape.items()), "",
              "Where the eager step's time goes (profiler, self CPU ms per step, 5 steps; the profiler "
              "itself adds some):", "", "| operators | ms / step | share |", "| --- | ---: | ---: |"]
    total = sum(prof.values())
    lines += [f"| {g} | {v:.1f} | {v / total:.0%} |" for g, v in sorted(prof.items(), key=lambda kv: -kv[1])]
    print(bt.save_results("compile", result, lines))


if __name__ == "__main__":
    main()
