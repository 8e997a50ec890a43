"""Early stopping on the dev WER: the greedy dev WER after each epoch, the best epoch so far,
and the stop rule; plus the epoch a recipe decodes for such a run.

The state is derived from the history the checkpoints carry (`history["dev_wer"]`: one
[epoch, step, audio_minutes_seen, wer] per epoch), so a resumed run knows the best WER and
the epochs since it without any other record. A run stops when its WER has not improved on its
best (strictly lower) for `patience` epochs in a row, once its best is below PLATEAU_WER: a model
still on the blank plateau (nearly all words deleted, ~100 % WER) is learning (its dev loss
falls) while its WER cannot show it, so those epochs do not count (measured on the demo: the
15-minute Czech scratch model sat at 100 % for its first epochs while its dev loss fell 10 %;
patience 2 stopped it after 3 epochs). A model that leaves the plateau late is still noisy there, so
the patience also grows with the epochs it took to reach its best (a quarter of them: with
patience 2 the same model stopped at epoch 24, two epochs after its first 94 %). The epoch cap
(max_budget_factor) still bounds the run.

exp_dir/dev_wer.json (written after every epoch of a run with --early-stop-patience > 0):
    {"patience", "max_epochs", "history": [[epoch, step, minutes, wer], ...],
     "best": {"epoch", "step", "audio_minutes", "wer"}, "epochs_since_best",
     "stopped_early", "done"}

Usage:
    state = EarlyStop.from_history(history.get("dev_wer", []), patience=2)
    wer = dev_wer(model, loader, refs, id2token, device)    # percent, this rank's share summed by the caller
    state.add([epoch, step, minutes, wer]); state.should_stop
    write_summary(exp_dir, state, max_epochs=96, done=True)
    python -m graft.train.early_stop decode-epoch exp/cs_scratch_converged_15m   # prints the best epoch
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from graft.utils.errors import GraftError
from graft.utils.io import atomic_write

SUMMARY = "dev_wer.json"
PLATEAU_WER = 95.0  # percent: at or above, the model has not started to transcribe
RELATIVE_PATIENCE = 0.25  # the patience grows to this share of the epochs it took to reach the best


@dataclass
class EarlyStop:
    """The dev-WER record of one run and the stop rule (patience 0: never stops)."""

    patience: int
    history: list[list[float]] = field(default_factory=list)  # [epoch, step, minutes, wer]

    @classmethod
    def from_history(cls, rows: Iterable[Sequence[float]], patience: int) -> "EarlyStop":
        """The state after the epochs of `rows` (a checkpoint's history["dev_wer"])."""
        return cls(patience, [list(r) for r in rows])

    def add(self, row: Sequence[float]) -> None:
        """Record one epoch: [epoch, step, audio_minutes_seen, wer]."""
        if len(row) != 4:
            raise GraftError(f"a dev WER record is [epoch, step, minutes, wer], got {list(row)}")
        self.history.append(list(row))

    @property
    def best(self) -> list[float] | None:
        """The first epoch with the lowest WER (None before the first epoch)."""
        best = None
        for row in self.history:
            if best is None or row[3] < best[3]:
                best = row
        return best

    @property
    def epochs_since_best(self) -> int:
        best = self.best
        return 0 if best is None else sum(1 for r in self.history if r[0] > best[0])

    @property
    def effective_patience(self) -> int:
        """`patience`, or a quarter of the epochs it took to reach the best, whichever is more."""
        best = self.best
        return max(self.patience, math.ceil(RELATIVE_PATIENCE * best[0])) if best else self.patience

    @property
    def should_stop(self) -> bool:
        """No better WER for `effective_patience` epochs, counted once the best is below
        PLATEAU_WER."""
        best = self.best
        if self.patience <= 0 or best is None or best[3] >= PLATEAU_WER:
            return False
        return self.epochs_since_best >= self.effective_patience

    def summary(self, max_epochs: int, done: bool) -> dict[str, Any]:
        """What dev_wer.json holds (see the module docstring)."""
        best = self.best
        return {"patience": self.patience, "max_epochs": max_epochs, "history": self.history,
                "best": None if best is None else {"epoch": int(best[0]), "step": int(best[1]),
                                                   "audio_minutes": best[2], "wer": best[3]},
                "epochs_since_best": self.epochs_since_best, "stopped_early": self.should_stop,
                "done": done}


def write_summary(exp_dir: str | Path, state: EarlyStop, max_epochs: int, done: bool) -> Path:
    """Write exp_dir/dev_wer.json atomically; returns its path."""
    path = Path(exp_dir) / SUMMARY
    with atomic_write(path) as f:
        json.dump(state.summary(max_epochs, done), f, indent=1)
        f.write("\n")
    return path


def read_summary(exp_dir: str | Path) -> dict[str, Any] | None:
    """exp_dir/dev_wer.json, or None when the run did not stop on dev WER."""
    path = Path(exp_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise GraftError(f"{path} is not valid JSON ({e}): delete it and run the training step again "
                         "(it resumes and writes it after the next epoch)") from None


def decode_epoch(exp_dir: str | Path) -> int | None:
    """The epoch to decode: the best dev-WER epoch of an early-stopping run when its checkpoint
    exists, else the last epoch-N.pt (None when there is none)."""
    from graft.train.checkpoint import epoch_checkpoints

    epochs = list(epoch_checkpoints(exp_dir))
    summary = read_summary(exp_dir)
    best = (summary or {}).get("best") or {}
    if best.get("epoch") in epochs:
        return int(best["epoch"])
    return epochs[-1] if epochs else None


def word_errors(refs: Mapping[str, Sequence[str]], hyps: Mapping[str, Sequence[str]]) -> tuple[int, int]:
    """(errors, reference words) of `hyps` against `refs` (graft.score.wer; a missing hyp is empty)."""
    from graft.score.wer import edit_counts

    errors = words = 0
    for uid, ref in refs.items():
        errors += int(edit_counts(ref, hyps.get(uid, []))["total"])
        words += len(ref)
    return errors, words


def greedy_hypotheses(model: Any, loader: Iterable[dict], id2token: Mapping[int, str],
                      device: Any) -> dict[str, list[str]]:
    """Transducer greedy search over the batches of `loader` (AsrDataset batches): cut id ->
    words. The model is put in eval mode, in fp32 and without gradients; the caller restores
    train mode."""
    import torch

    from graft.decode.search import greedy_search
    from graft.lang.symbols import tokens_to_words

    model.eval()
    hyps: dict[str, list[str]] = {}
    with torch.no_grad(), torch.autocast(device_type=torch.device(device).type, enabled=False):
        for batch in loader:
            enc, enc_lens = model.encoder(batch["features"].to(device), batch["feature_lens"].to(device))
            for uid, tokens in zip(batch["cut_ids"], greedy_search(model, enc, enc_lens)):
                hyps[uid] = tokens_to_words(tokens, id2token)
    return hyps


def main(argv: Sequence[str]) -> int:
    """`decode-epoch EXP_DIR`: print the epoch stage 6 decodes (nothing when there is none)."""
    if len(argv) != 2 or argv[0] != "decode-epoch":
        print("usage: python -m graft.train.early_stop decode-epoch EXP_DIR", file=sys.stderr)
        return 2
    try:
        epoch = decode_epoch(argv[1])
    except GraftError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    if epoch is not None:
        print(epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
