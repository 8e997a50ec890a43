"""Checkpoints: atomic save, finding the latest, pruning, shape-checked loading, and loading
a model for decoding (with epoch averaging or the running average).

Usage:
    save_checkpoint(exp_dir / "checkpoint-400.pt", state)        # atomic; disk full -> GraftError
    path = latest_checkpoint(exp_dir)           # highest step that loads (skips a corrupt one), or None
    ckpt = read_checkpoint(path)
    load_state_dict_checked(model, ckpt["model"], source=str(path))   # names each mismatch
    model, info = load_model_for_decoding("exp/en_small", epoch=4, avg=2)
    model, info = load_model_for_decoding("exp/en_small", use_averaged_model=True)

A checkpoint (epoch-N.pt after epoch N, checkpoint-<step>.pt every --save-every-n batches) is a
dict: "model" (state dict), "model_avg" + "avg_count" (the running mean, graft.train.average),
"optimizer", "scheduler", "sampler" (lhotse state_dict), "rng" (per rank), "progress"
({"step", "epoch", "batches_done", "finished"}), "history" (loss curves), "model_conf",
"lang" ({"vocab_size", "blank_id", "lang_dir"}), "train_conf", "world_size", "format".
`progress.epoch` is the 0-based epoch in progress and `batches_done` how many of its batches
are done; epoch-N.pt holds epoch N (0-based), batches_done 0, i.e. "start epoch N+1".
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from graft.train.average import average_state_dicts, interval_average
from graft.utils.errors import GraftError, disk_error, free_space
from graft.utils.io import atomic_path
from graft.utils.logging import get_logger

log = get_logger(__name__)

FORMAT = "graft-train-1"
_EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")
_STEP_RE = re.compile(r"^checkpoint-(\d+)\.pt$")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """torch.save `state` to `path` atomically (a reader never sees a partial file).

    A full, read-only or unwritable disk is a GraftError naming the path (torch's own message
    would be "enforce fail ... unexpected pos"): torch writes through a Python file, whose
    OSError keeps its errno; the temporary is removed and older checkpoints stay.
    """
    path = Path(path)
    after = f"then run training again: it resumes from the newest checkpoint in {path.parent}"
    try:
        with atomic_path(path) as tmp:
            try:
                with open(tmp, "wb") as f:
                    torch.save({"format": FORMAT, **state}, f)
                    f.flush()
                    os.fsync(f.fileno())
            except RuntimeError as e:  # torch's writer saw a short write: "unexpected pos"
                raise _torch_write_error(e, path, tmp, after) from None
    except OSError as e:
        translated = disk_error(e, path, after)
        if translated is None:
            raise
        raise translated from None
    return path


def _torch_write_error(e: RuntimeError, path: Path, tmp: Path, after: str) -> Exception:
    """The error to raise when torch.save failed inside its zip writer."""
    for inner in (e.__cause__, e.__context__):
        if isinstance(inner, OSError):
            return inner
    written = tmp.stat().st_size if tmp.exists() else 0
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < max(written, 1 << 20):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    short = " ".join(str(e).split())[:200]
    return GraftError(f"cannot write {path} (torch: {short}); {free_space(path)} on its disk: {after}")


def read_checkpoint(path: str | Path, map_location: str = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint dict; a GraftError names the file if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing checkpoint {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as e:  # corrupt or foreign file
        raise GraftError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise GraftError(f"{path} is not a graft training checkpoint (no 'model' entry)")
    return ckpt


def epoch_checkpoints(exp_dir: str | Path) -> dict[int, Path]:
    """{N: exp_dir/epoch-N.pt}"""
    exp_dir = Path(exp_dir)
    out = {}
    for p in exp_dir.glob("epoch-*.pt"):
        m = _EPOCH_RE.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def step_checkpoints(exp_dir: str | Path) -> dict[int, Path]:
    """{step: exp_dir/checkpoint-<step>.pt}"""
    exp_dir = Path(exp_dir)
    out = {}
    for p in exp_dir.glob("checkpoint-*.pt"):
        m = _STEP_RE.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def checkpoint_step(path: Path) -> int:
    """The training step stored in a checkpoint (its tensors are memory-mapped, not read)."""
    m = _STEP_RE.match(path.name)
    if m:
        return int(m.group(1))
    return int(read_checkpoint(path, mmap=True)["progress"]["step"])


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be resumed from (truncated, corrupt, foreign), or
    None when it loads (its tensors are memory-mapped, not read)."""
    try:
        ckpt = read_checkpoint(path, mmap=True)
    except GraftError as e:
        return str(e)
    prog = ckpt.get("progress")
    if not isinstance(prog, dict) or "step" not in prog:
        return f"{path} has no training progress (not a graft training checkpoint)"
    return None


def latest_checkpoint(exp_dir: str | Path) -> Path | None:
    """The newest checkpoint that loads: highest step first (an epoch checkpoint wins a tie).

    A checkpoint that does not load (truncated, corrupt, not a checkpoint) is skipped with a
    warning naming it and why, and the next older one is tried. None when exp_dir has no
    checkpoint; GraftError when it has some and none of them loads (nothing is deleted).
    """
    candidates: list[tuple[int, int, Path]] = []
    skipped: list[tuple[Path, str]] = []
    for p in epoch_checkpoints(exp_dir).values():
        try:
            candidates.append((checkpoint_step(p), 1, p))
        except (GraftError, KeyError, TypeError, ValueError) as e:
            skipped.append((p, str(e) if isinstance(e, GraftError) else f"{p} has no training progress"))
    candidates += [(s, 0, p) for s, p in step_checkpoints(exp_dir).items()]
    chosen = None
    for _, _, p in sorted(candidates, key=lambda c: (c[0], c[1]), reverse=True):
        problem = checkpoint_problem(p)
        if problem is None:
            chosen = p
            break
        skipped.append((p, problem))
    for p, why in skipped:
        log.warning(f"skipping checkpoint {p}, it does not load ({why}); "
                    + (f"using {chosen} instead" if chosen else "trying older ones"))
    if chosen is None and skipped:
        names = ", ".join(str(p) for p, _ in skipped)
        raise GraftError(f"no checkpoint in {exp_dir} loads ({names}; first: {skipped[0][1]}): "
                         f"move them away to start from scratch, or use a new --exp-dir")
    return chosen


def prune_step_checkpoints(exp_dir: str | Path, keep_last_k: int) -> list[Path]:
    """Delete all but the newest `keep_last_k` checkpoint-<step>.pt; returns the deleted."""
    steps = step_checkpoints(exp_dir)
    old = list(steps.values())[: max(0, len(steps) - max(keep_last_k, 0))]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def remove_stale_temporaries(exp_dir: str | Path) -> None:
    """Remove half-written checkpoint temporaries left by a killed run."""
    for p in Path(exp_dir).glob(".tmp-*-*.pt"):
        p.unlink(missing_ok=True)


@dataclass
class StateMismatch:
    """How a state dict differs from a model's: missing/unexpected keys and shape mismatches."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def describe(self, limit: int = 20) -> str:
        lines = [f"shape of {k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.shapes]
        lines += [f"missing in checkpoint: {k}" for k in self.missing]
        lines += [f"not in model: {k}" for k in self.unexpected]
        more = f"; ... {len(lines) - limit} more" if len(lines) > limit else ""
        return "; ".join(lines[:limit]) + more


def compare_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> StateMismatch:
    """Compare `state` with `model.state_dict()` name by name and shape by shape."""
    own = getattr(model, "module", model).state_dict()
    mm = StateMismatch()
    for k, v in own.items():
        if k not in state:
            mm.missing.append(k)
        elif tuple(state[k].shape) != tuple(v.shape):
            mm.shapes.append((k, tuple(state[k].shape), tuple(v.shape)))
    mm.unexpected = [k for k in state if k not in own]
    return mm


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                            strict: bool = True, skip: tuple[str, ...] = ()) -> StateMismatch:
    """Load `state` into `model`, naming every mismatching parameter.

    strict=True: any mismatch raises GraftError listing each one (nothing is loaded).
    strict=False: loads the entries that match in name and shape, leaves the rest of the model
    as it is, and returns the mismatch (what was not loaded). Keys starting with a prefix in
    `skip` are not loaded and not reported.
    """
    target = getattr(model, "module", model)
    state = {k: v for k, v in state.items() if not k.startswith(skip)} if skip else dict(state)
    mm = compare_state_dict(target, state)
    if skip:
        mm.missing = [k for k in mm.missing if not k.startswith(skip)]
    if mm and strict:
        raise GraftError(f"{source} does not fit the model: {mm.describe()}")
    bad = {k for k, _, _ in mm.shapes}
    loadable = {k: v for k, v in state.items() if k not in bad and k not in mm.unexpected}
    target.load_state_dict(loadable, strict=False)
    return mm


def _model_average(exp_dir: Path, epoch: int, avg: int, use_averaged_model: bool,
                   like: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    epochs = epoch_checkpoints(exp_dir)
    if use_averaged_model:
        end = read_checkpoint(epochs[epoch])
        if end.get("model_avg") is None:
            raise GraftError(f"{epochs[epoch]} has no running average (model_avg)")
        start_epoch = epoch - avg
        if start_epoch <= 0:
            return interval_average(end["model_avg"], end["avg_count"], None, 0, like), [str(epochs[epoch])]
        if start_epoch not in epochs:
            raise GraftError(f"--use-averaged-model with --epoch {epoch} --avg {avg} needs "
                             f"{exp_dir / f'epoch-{start_epoch}.pt'}, which is missing")
        start = read_checkpoint(epochs[start_epoch])
        sd = interval_average(end["model_avg"], end["avg_count"], start["model_avg"], start["avg_count"], like)
        return sd, [str(epochs[start_epoch]), str(epochs[epoch])]
    wanted = list(range(epoch - avg + 1, epoch + 1))
    missing = [e for e in wanted if e not in epochs]
    if missing:
        raise GraftError(f"--epoch {epoch} --avg {avg} needs epoch checkpoints {wanted}; missing "
                         + ", ".join(str(exp_dir / f"epoch-{e}.pt") for e in missing))
    states = [read_checkpoint(epochs[e])["model"] for e in wanted]
    return average_state_dicts(states), [str(epochs[e]) for e in wanted]


def load_model_for_decoding(exp_dir: str | Path, epoch: int | None = None, avg: int = 1,
                            use_averaged_model: bool = False, device: str | torch.device = "cpu"):
    """Build the model stored in `exp_dir` and load (averaged) weights; returns (model, info).

    epoch None: the last epoch-N.pt; if there is none, the latest checkpoint-<step>.pt (then
    avg must be 1). use_averaged_model False: the mean of the weights of epochs
    epoch-avg+1..epoch. True: the running average over the training steps of those epochs
    (avg >= epoch: since the start of training). info: {"model_conf", "vocab_size",
    "blank_id", "lang_dir", "epoch", "avg", "use_averaged_model", "step", "checkpoints"}.
    The model is in eval mode on `device`.
    """
    from graft.model.build import build_model

    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise GraftError(f"missing experiment dir {exp_dir} (written by the training stage)")
    if avg < 1:
        raise GraftError(f"--avg must be >= 1, got {avg}")
    epochs = epoch_checkpoints(exp_dir)
    if epoch is None and epochs:
        epoch = max(epochs)
    if epoch is None:
        latest = latest_checkpoint(exp_dir)
        if latest is None:
            raise GraftError(f"no checkpoints in {exp_dir} (epoch-N.pt or checkpoint-<step>.pt)")
        if avg != 1:
            raise GraftError(f"{exp_dir} has no epoch checkpoints to average (--avg {avg})")
        ckpt = read_checkpoint(latest)
        if use_averaged_model:
            if ckpt.get("model_avg") is None or not ckpt.get("avg_count"):
                raise GraftError(f"{latest} has no running average yet")
            state = interval_average(ckpt["model_avg"], ckpt["avg_count"], None, 0, ckpt["model"])
        else:
            state = ckpt["model"]
        used = [str(latest)]
    else:
        if epoch not in epochs:
            raise GraftError(f"missing checkpoint {exp_dir / f'epoch-{epoch}.pt'} "
                             f"(epochs present: {sorted(epochs) or 'none'})")
        ckpt = read_checkpoint(epochs[epoch])
        state, used = _model_average(exp_dir, epoch, avg, use_averaged_model, ckpt["model"])
    lang = ckpt["lang"]
    model = build_model(ckpt["model_conf"], vocab_size=int(lang["vocab_size"]), blank_id=int(lang["blank_id"]))
    load_state_dict_checked(model, state, source=", ".join(used))
    model.to(device).eval()
    info = {"model_conf": ckpt["model_conf"], "vocab_size": int(lang["vocab_size"]),
            "blank_id": int(lang["blank_id"]), "lang_dir": lang.get("lang_dir"),
            "fingerprint": lang.get("fingerprint"), "exp_dir": str(exp_dir), "epoch": epoch,
            "avg": avg, "use_averaged_model": use_averaged_model,
            "step": int(ckpt["progress"]["step"]), "checkpoints": used}
    return model, info
