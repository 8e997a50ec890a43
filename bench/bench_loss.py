"""Benchmark: pruned vs full-lattice RNN-T training step, and encoder cost per second of audio.

Usage:
    .venv/bin/python bench/bench_loss.py                 # writes bench/results/loss.{md,json}
    .venv/bin/python bench/bench_loss.py --runs 3 --rounds 1 --no-write

Loss step (same batch for every variant; default batch 16, T=100 encoder frames, U=30 tokens,
vocab 500, joiner/encoder/decoder dims of the `small` preset): forward + backward of
  pruned      the training recipe: simple loss (fast_rnnt, smoothed) -> prune ranges ->
              joiner on `prune_range` symbols per frame -> fast_rnnt.rnnt_loss_pruned
  full        joiner on the whole (T, U+1) lattice -> fast_rnnt.rnnt_loss
  full_torch  joiner on the whole lattice -> graft's pure-PyTorch loss (the fallback)
The encoder and decoder outputs are leaf tensors (their cost is measured separately).

Encoder: forward + backward of the preset's encoder, and a whole training step of the model
(encoder, decoder, pruned loss, CTC with weight 0.1, backward), per second of audio.

How it is measured: every variant runs in its own fresh child process (so memory peaks do
not mask each other), `--warmup` untimed steps (the first steps pay page faults for
fresh memory) then `--runs` timed steps, and the rounds alternate the variants; the table shows the median over all timed steps. Memory is the growth of the
child's peak resident set (VmHWM) during the steps over its resident set (VmRSS) just before
them: it counts what the allocator really took from the OS, including caching, not tensor
bytes. Other processes on the machine add noise: the load average is recorded.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOSS_VARIANTS = ("pruned", "full", "full_torch")


def _proc_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _measure(step, runs: int, warmup: int) -> dict:
    """Run step() `warmup` times, then `runs` timed times; times in s, peak RSS growth in MB."""
    gc.collect()
    rss0 = _proc_kb("VmRSS")
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"times": times, "peak_mb": (_proc_kb("VmHWM") - rss0) / 1024}


def child_loss(variant: str, a: argparse.Namespace) -> dict:
    import torch
    from graft.model.build import load_model_conf
    from graft.model.joiner import Joiner
    from graft.model.loss import full_rnnt_loss, make_boundary, pruned_rnnt_loss

    conf = load_model_conf(a.preset)
    torch.manual_seed(0)
    n, t, u, v = a.batch, a.frames, a.tokens, a.vocab
    joiner = Joiner(conf["encoder_dim"], conf["decoder_dim"], conf["joiner_dim"], v)
    am_proj = torch.nn.Linear(conf["encoder_dim"], v)
    lm_proj = torch.nn.Linear(conf["decoder_dim"], v)
    enc = torch.randn(n, t, conf["encoder_dim"], requires_grad=True)
    dec = torch.randn(n, u + 1, conf["decoder_dim"], requires_grad=True)
    symbols = torch.randint(1, v, (n, u))
    boundary = make_boundary(torch.full((n,), u), torch.full((n,), t))

    def step() -> None:
        if variant == "pruned":
            simple, pruned = pruned_rnnt_loss(joiner, enc, dec, am_proj(enc), lm_proj(dec),
                                              symbols, boundary, prune_range=a.prune_range)
            loss = 0.5 * simple + pruned
        else:
            logits = joiner(enc.unsqueeze(2), dec.unsqueeze(1))          # (N, T, U+1, V)
            backend = "fast_rnnt" if variant == "full" else "torch"
            loss = full_rnnt_loss(logits, symbols, boundary, backend=backend)
        loss.backward()
        for p in (enc, dec, *joiner.parameters(), *am_proj.parameters(), *lm_proj.parameters()):
            p.grad = None

    return _measure(step, a.runs, a.warmup)


def child_encoder(kind: str, preset: str, a: argparse.Namespace) -> dict:
    """kind "encoder": encoder forward + backward; kind "step": the model's whole loss step."""
    import torch
    from graft.model.build import build_model, count_parameters, load_model_conf

    torch.manual_seed(0)
    model = build_model(load_model_conf(preset), a.vocab).train()
    n, frames = a.enc_batch, int(a.enc_seconds * 100)
    lens = torch.tensor([frames - (i % 4) * frames // 8 for i in range(n)])   # 100%..62% long
    x = torch.randn(n, frames, 80)
    targets = [torch.randint(1, a.vocab, (int(l) // 25,)).tolist() for l in lens]  # 4 tokens/s
    audio_seconds = lens.sum().item() / 100

    def encoder_step() -> None:
        out, _ = model.encoder(x, lens)
        out.sum().backward()
        model.zero_grad(set_to_none=True)

    def model_step() -> None:
        loss, _ = model(x, lens, targets, prune_range=a.prune_range, ctc_weight=0.1)
        loss.backward()
        model.zero_grad(set_to_none=True)

    res = _measure(encoder_step if kind == "encoder" else model_step, a.runs, a.warmup)
    return {**res, "audio_seconds": audio_seconds, "params": count_parameters(model)["total"]}


def run_child(kind: str, what: str, a: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, what, *a.passthrough]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=100, help="encoder frames T")
    p.add_argument("--tokens", type=int, default=30, help="tokens U")
    p.add_argument("--vocab", type=int, default=500)
    p.add_argument("--prune-range", type=int, default=5)
    p.add_argument("--preset", default="small", help="dims of the loss bench, encoder bench")
    p.add_argument("--enc-presets", default="tiny,small", help="presets for the encoder bench")
    p.add_argument("--enc-batch", type=int, default=8)
    p.add_argument("--enc-seconds", type=float, default=6.0, help="longest utterance")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per child first")
    p.add_argument("--runs", type=int, default=5, help="timed steps per child")
    p.add_argument("--rounds", type=int, default=2, help="children per variant, alternating")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    a.passthrough = [arg for arg in sys.argv[1:]]

    if a.child:
        import torch
        torch.set_num_threads(a.threads)
        kind, what = a.child
        result = child_loss(what, a) if kind == "loss" else child_encoder(kind, what, a)
        print(json.dumps(result))
        return

    import torch
    load_start = os.getloadavg()
    loss_res: dict[str, dict] = {v: {"times": [], "peak_mb": []} for v in LOSS_VARIANTS}
    for r in range(a.rounds):
        for v in LOSS_VARIANTS:
            res = run_child("loss", v, a)
            loss_res[v]["times"] += res["times"]
            loss_res[v]["peak_mb"].append(res["peak_mb"])
            print(f"round {r + 1} {v}: {statistics.median(res['times']) * 1000:.0f} ms, "
                  f"+{res['peak_mb']:.0f} MB", flush=True)
    enc_res = {}
    for preset in a.enc_presets.split(","):
        e = enc_res[preset] = {k: run_child(k, preset, a) for k in ("encoder", "step")}
        e["audio_seconds"], e["params"] = e["step"]["audio_seconds"], e["step"]["params"]
        print(f"{preset}: encoder {statistics.median(e['encoder']['times']) / e['audio_seconds'] * 1000:.1f}"
              f" ms/s audio, step {statistics.median(e['step']['times']) / e['audio_seconds'] * 1000:.1f}"
              " ms/s audio", flush=True)
    load_end = os.getloadavg()

    from graft.model.build import load_model_conf
    conf = load_model_conf(a.preset)
    pruned_ms = statistics.median(loss_res["pruned"]["times"]) * 1000
    pruned_min = min(loss_res["pruned"]["times"])
    rows = []
    for v in LOSS_VARIANTS:
        ms = statistics.median(loss_res[v]["times"]) * 1000
        rows.append({"variant": v, "median_ms": round(ms, 1),
                     "min_ms": round(min(loss_res[v]["times"]) * 1000, 1),
                     "peak_rss_growth_mb": round(max(loss_res[v]["peak_mb"]), 1),
                     "vs_pruned": round(ms / pruned_ms, 2),
                     "vs_pruned_min": round(min(loss_res[v]["times"]) / pruned_min, 2),
                     "timed_steps": len(loss_res[v]["times"])})
    enc_rows = []
    for preset, e in enc_res.items():
        sec = e["audio_seconds"]
        enc_s = statistics.median(e["encoder"]["times"]) / sec
        step_s = statistics.median(e["step"]["times"]) / sec
        step_min = min(e["step"]["times"]) / sec
        enc_rows.append({"preset": preset, "params_m": round(e["params"] / 1e6, 2),
                         "batch_audio_s": sec, "encoder_fwd_bwd_s_per_audio_s": round(enc_s, 4),
                         "train_step_s_per_audio_s": round(step_s, 4),
                         "train_step_min_s_per_audio_s": round(step_min, 4),
                         "encoder_min_s_per_audio_s": round(min(e["encoder"]["times"]) / sec, 4),
                         "train_step_peak_rss_growth_mb": round(e["step"]["peak_mb"], 1)})
    meta = {"batch": a.batch, "frames": a.frames, "tokens": a.tokens, "vocab": a.vocab,
            "prune_range": a.prune_range, "preset": a.preset,
            "dims": {k: conf[k] for k in ("encoder_dim", "decoder_dim", "joiner_dim")},
            "threads": a.threads, "warmup_per_child": a.warmup, "runs_per_child": a.runs,
            "rounds": a.rounds,
            "torch": torch.__version__, "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in load_end],
            "date": time.strftime("%Y-%m-%d %H:%M")}

    md = [f"# Transducer loss benchmark ({meta['date']})", "",
          f"One training step of the loss (forward + backward, joiner included): batch {a.batch}, "
          f"T={a.frames} encoder frames, U={a.tokens} tokens, vocab {a.vocab}, dims of preset "
          f"`{a.preset}` (encoder {conf['encoder_dim']}, decoder {conf['decoder_dim']}, joiner "
          f"{conf['joiner_dim']}), prune range {a.prune_range}; torch {torch.__version__}, "
          f"{a.threads} threads, {os.cpu_count()} CPUs. Median of {a.rounds} x {a.runs} timed steps "
          f"after {a.warmup} untimed ones, each variant in fresh child processes, rounds alternating.",
          "Memory: growth of the child's peak resident set (VmHWM) during the steps over its "
          "resident set just before them (max over children): what the allocator took from "
          "the OS, not tensor bytes.",
          f"Load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']} "
          "(other users of the 2 cores add noise).", "",
          "| variant | median ms | min ms | peak RSS growth MB | median vs pruned | min vs pruned |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]
    names = {"pruned": "pruned (simple loss + pruned loss, fast_rnnt)",
             "full": "full lattice, fast_rnnt.rnnt_loss",
             "full_torch": "full lattice, graft pure-PyTorch fallback"}
    for r in rows:
        md.append(f"| {names[r['variant']]} | {r['median_ms']:.0f} | {r['min_ms']:.0f} | "
                  f"{r['peak_rss_growth_mb']:.0f} | {r['vs_pruned']:.2f}x | {r['vs_pruned_min']:.2f}x |")
    md += ["", f"## Encoder and whole training step per second of audio",
           "",
           f"Batch of {a.enc_batch} utterances of {a.enc_seconds:g} s down to 62% of that "
           "(random 80-dim features), 4 tokens per second, vocab "
           f"{a.vocab}; train mode. Encoder = encoder forward + backward; step = the model's "
           "forward (encoder, decoder, simple + pruned loss, CTC weight 0.1) + backward, "
           "no optimizer. Seconds of compute per second of audio, median (min):", "",
           "| preset | params (M) | audio per batch (s) | encoder fwd+bwd s/s | train step s/s | "
           "step peak RSS growth MB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in enc_rows:
        md.append(f"| {r['preset']} | {r['params_m']} | {r['batch_audio_s']:g} | "
                  f"{r['encoder_fwd_bwd_s_per_audio_s']:.4f} ({r['encoder_min_s_per_audio_s']:.4f}) | "
                  f"{r['train_step_s_per_audio_s']:.4f} ({r['train_step_min_s_per_audio_s']:.4f}) | "
                  f"{r['train_step_peak_rss_growth_mb']:.0f} |")
    text = "\n".join(md) + "\n"
    print()
    print(text)
    if not a.no_write:
        from graft.utils.io import atomic_write
        out = Path(a.out)
        with atomic_write(out / "loss.md") as f:
            f.write(text)
        with atomic_write(out / "loss.json") as f:
            json.dump({"meta": meta, "loss": rows, "encoder": enc_rows,
                       "raw_loss_times_s": {k: v["times"] for k, v in loss_res.items()}}, f, indent=1)
        print(f"wrote {out / 'loss.md'} and {out / 'loss.json'}")


if __name__ == "__main__":
    main()
