"""Mixed precision for training: bf16 autocast where the hardware multiplies bf16 natively.

Usage:
    amp = resolve_amp("auto", torch.device("cpu"))   # the `amp` training option: auto, true, false
    log.info(amp.describe())            # e.g. "mixed precision: off (auto: this CPU has no ...)"
    with amp.autocast():
        loss, info = model(features, feature_lens, tokens)   # the losses run in fp32 inside
    loss.backward()                     # outside autocast, as torch recommends

`auto` turns bf16 autocast on where it is fast: a CPU with AMX-BF16 or AVX512-BF16 (torch's own
checks, then the /proc/cpuinfo flags amx_bf16 / avx512_bf16), or a CUDA GPU that supports
bf16; elsewhere it stays off, because without those units bf16 products are emulated and
*slower* than fp32 (measured on an AVX2-only AMD EPYC: 3 GFLOPS against 140 in fp32, 2 threads).
`true` forces it on anyway (with a warning on such a CPU), `false` forces it off.

What runs in bf16: the matrix products and convolutions (torch's autocast lists); the residual
stream, LayerNorm inputs and the parameters stay fp32, and graft.model.loss runs the pruned
RNN-T losses (fast_rnnt) and the CTC loss with autocast disabled, on fp32 inputs. bf16 has
fp32's exponent range, so no loss scaling is needed. Autocast is deterministic on CPU, so a
resumed bf16 run repeats an uninterrupted one exactly. The training loop autocasts the training
forward pass only: validation losses are computed in fp32, comparable between runs with and
without mixed precision.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager

import torch

from graft.utils.errors import GraftError

AMP_CHOICES = ("auto", "true", "false")
_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The bf16 flags (amx_bf16, avx512_bf16) the first CPU of `cpuinfo` lists ([] if none)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return [f for f in _CPU_FLAGS if f in flags]
    return []


def cpu_fast_bf16() -> tuple[bool, str]:
    """(whether this CPU multiplies bf16 natively, why), from torch's checks and /proc/cpuinfo."""
    checks = (("AMX-BF16", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
    for name, fn in checks:
        check = getattr(torch.cpu, fn, None)
        try:
            if check is not None and check():
                return True, f"this CPU has {name}"
        except Exception:    # a private torch helper: never let it break training
            pass
    flags = cpu_bf16_flags()
    if flags:
        return True, f"this CPU lists {', '.join(flags)} in /proc/cpuinfo"
    return False, (f"this CPU has neither AMX-BF16 nor AVX512-BF16 (torch: {cpu_capability()}), "
                   "so bf16 products would be emulated and slower than fp32")


def cpu_capability() -> str:
    """torch's name for the CPU's vector instruction set (e.g. AVX2, AVX512)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:
        return "unknown"


@dataclass(frozen=True)
class AmpChoice:
    """Whether training autocasts to bf16 on `device`, and why."""

    enabled: bool
    device_type: str
    setting: str
    reason: str

    def autocast(self) -> ContextManager:
        """torch.autocast to bf16 when enabled, else a no-op context."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=torch.bfloat16)

    def describe(self) -> str:
        state = "bf16 autocast" if self.enabled else "off (fp32)"
        return f"mixed precision: {state} (amp {self.setting}: {self.reason})"


def parse_amp(value: str | bool) -> str:
    """Normalize an `amp` option value to auto/true/false (GraftError otherwise)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    v = str(value).strip().lower()
    v = {"yes": "true", "on": "true", "1": "true", "bf16": "true",
         "no": "false", "off": "false", "0": "false"}.get(v, v)
    if v not in AMP_CHOICES:
        raise GraftError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {value!r}")
    return v


def resolve_amp(setting: str | bool, device: torch.device | str) -> AmpChoice:
    """The `amp` option ("auto", "true", "false") on `device` -> an AmpChoice."""
    setting = parse_amp(setting)
    device = torch.device(device)
    if device.type == "cuda":
        fast = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        why = "this GPU supports bf16" if fast else "this GPU does not support bf16"
    elif device.type == "cpu":
        fast, why = cpu_fast_bf16()
    else:
        fast, why = False, f"no bf16 check for device {device.type}"
    if setting == "auto":
        return AmpChoice(fast, device.type, setting, why)
    if setting == "false":
        return AmpChoice(False, device.type, setting, "turned off")
    return AmpChoice(True, device.type, setting, "turned on" + ("" if fast else f", although {why}"))
