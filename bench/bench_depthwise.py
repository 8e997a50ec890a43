#!/usr/bin/env python3
"""The conformer's depthwise convolution in two memory layouts: the training step and the
operator alone, side by side in one run, and whether the two give the same numbers.

Usage:
    .venv/bin/python bench/bench_depthwise.py [--preset small] [--reps 20] [--threads 2]

planar         the (N, T, D) activations transposed to (N, D, T) for nn.Conv1d and back (two
               copies, oneDNN's planar kernel): the layout before 2026-12-07
channels-last  the same activations seen as a channels-last (N, D, 1, T) image, no copy
               (graft.model.convolution.ConvModule._depthwise)
Rows: the bare training step of bench_train.py (6 x 5 s, forward + backward, pruned RNN-T +
0.2 CTC, the preset's dropout; bf16 autocast where the CPU has it), the variants taking turns;
and the depthwise convolution alone (forward + backward at the step's shape, all layers' worth).
Exactness: one step's loss and every gradient, planar against channels-last, from one seed.
Writes bench/results/depthwise_layout.{md,json}.
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

LAYOUTS = {"planar": True, "channels-last": False}


def exactness(preset: str, vocab: int, batch, amp) -> dict[str, object]:
    """One step of each layout from the same weights and seed: loss equal? gradients equal?"""
    grads, losses = {}, {}
    for name, planar in LAYOUTS.items():
        model = bt.make_model(preset, vocab, "fast", planar=planar)
        feats, lens, tokens = batch
        torch.manual_seed(1)
        with amp.autocast():
            loss, _ = model(feats, lens, tokens, prune_range=5, simple_loss_scale=0.5, ctc_weight=0.2)
        loss.backward()
        losses[name] = loss.detach()
        grads[name] = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    a, b = grads["planar"], grads["channels-last"]
    differ = {k: float(((a[k] - b[k]).abs().max() / a[k].abs().max().clamp(min=1e-30)).item())
              for k in a if not torch.equal(a[k], b[k])}
    return {"loss_equal": bool(torch.equal(losses["planar"], losses["channels-last"])),
            "gradients": len(a), "gradients_equal": len(a) - len(differ),
            "differing": sorted(differ), "max_relative_difference": max(differ.values(), default=0.0)}


def op_steps(model, shape: tuple[int, int, int], layers: int) -> dict[str, callable]:
    """Forward + backward of the depthwise convolution alone, `layers` times, each layout."""
    conv = model.encoder.layers[0].conv
    x = torch.randn(*shape, requires_grad=True)

    def run(planar: bool):
        def step() -> None:
            conv.planar = planar
            for _ in range(layers):
                conv._depthwise(x).sum().backward()
        return step
    return {name: run(planar) for name, planar in LAYOUTS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bt.add_step_args(ap, reps=20)
    args = ap.parse_args()
    batch, vocab, amp, source = bt.step_setup(args, "bench-depthwise-")
    audio = batch[0].shape[0] * batch[0].shape[1] / 100

    exact = exactness(args.preset, vocab, batch, amp)
    print("exactness:", exact, flush=True)
    steps = {name: bt.step_fn(bt.make_model(args.preset, vocab, "fast", planar=planar), batch, amp)
             for name, planar in LAYOUTS.items()}
    step_times = bt.time_interleaved(steps, args.reps)
    model = bt.make_model(args.preset, vocab, "fast")
    from graft.model.subsampling import subsampled_lengths
    frames = int(subsampled_lengths(batch[1][:1], model.encoder.embed.factor)[0])
    n_layers = len(model.encoder.layers)
    shape = (batch[0].shape[0], frames, model.encoder.layers[0].conv.depthwise.in_channels)
    op_times = bt.time_interleaved(op_steps(model, shape, n_layers), args.reps * 2)
    rows = []
    for name in LAYOUTS:
        s, o = statistics.median(step_times[name]), statistics.median(op_times[name])
        rows.append({"layout": name, "step_s": s, "audio_sec_per_sec": audio / s, "op_ms": o * 1000})
        print(rows[-1], flush=True)
    ratio = {"step speed, channels-last / planar": rows[0]["step_s"] / rows[1]["step_s"],
             "depthwise alone, channels-last / planar (speed)": rows[0]["op_ms"] / rows[1]["op_ms"]}
    result = bt.step_record(args, amp, source, batch, op_shape=list(shape), layers=n_layers, rows=rows,
                            ratios=ratio, exactness=exact)
    lines = [f"# Depthwise convolution layout: preset `{args.preset}`", "",
             f"{result['date']}, {result['cpu']} ({args.threads} threads, torch {result['torch']}, {result['amp']}). "
             f"Bare training step of {result['batch']} (forward + backward, pruned RNN-T + 0.2 CTC, the preset's "
             f"dropout), median of {args.reps} steps, the layouts taking turns; the depthwise convolution alone: "
             f"forward + backward at {tuple(shape)} x {n_layers} layers, median of {args.reps * 2}. Data: {source}. "
             "`bench/bench_depthwise.py`.", "",
             "| layout | s / step | audio s / s | depthwise alone (ms, all layers) |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['layout']} | {r['step_s']:.3f} | {r['audio_sec_per_sec']:.1f} | {r['op_ms']:.1f} |" for r in rows]
    lines += ["", "Ratios:", ""] + [f"- {k}: {v:.2f}" for k, v in ratio.items()]
    lines += ["", f"Exactness (one step, same weights and seed): loss equal: {exact['loss_equal']}; "
              f"{exact['gradients_equal']} of {exact['gradients']} gradients equal to the last bit; differing: "
              f"{', '.join(exact['differing']) or 'none'} (largest relative difference "
              f"{exact['max_relative_difference']:.1e})."]
    print(bt.save_results("depthwise_layout", result, lines))


if __name__ == "__main__":
    main()
