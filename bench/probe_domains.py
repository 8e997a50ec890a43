#!/usr/bin/env python
"""How much of the voice (or another domain) can still be read from a model's encoder output: a
linear probe per model, trained on the encoder frames of half of each voice's utterances and
tested on the other half (frame accuracy, and utterance accuracy from the mean of the frames'
log-probabilities). Domain-adversarial training (--adversarial) aims to lower it; chance is the
share of the largest domain.

Usage (in a recipe dir, e.g. egs/demo/ASR):
    python bench/probe_domains.py --exp "default=exp/en_small" --exp "adversarial=exp/en_small_dat_speaker" \\
        --cuts data/fbank/en/cuts_dev.jsonl.gz data/fbank/en/cuts_test.jsonl.gz --domain speaker \\
        --out bench/results/en_small_dat_speaker_probe
    --domain: speaker, language or KEY:REGEX (graft/train/adversarial.py); --avg: epochs averaged (2)

Writes OUT.md and OUT.json (and prints the table).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from lhotse import CutSet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graft.decode.run import encode_set  # noqa: E402
from graft.train.adversarial import DomainLabels  # noqa: E402
from graft.train.checkpoint import load_model_for_decoding  # noqa: E402
from graft.utils.errors import GraftError  # noqa: E402
from graft.utils.io import atomic_write  # noqa: E402


def split_halves(ids: list[str], labels: dict[str, int]) -> tuple[set[str], set[str]]:
    """Every other utterance of each domain (in id order) to the probe's training half."""
    train, test = set(), set()
    for d in sorted(set(labels.values())):
        own = sorted(i for i in ids if labels[i] == d)
        train.update(own[0::2])
        test.update(own[1::2])
    return train, test


def fit_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, iters: int = 200) -> torch.nn.Linear:
    """Multinomial logistic regression (L-BFGS, a little L2) on standardized features."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], num_classes)
    opt = torch.optim.LBFGS(probe.parameters(), lr=0.5, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), y) + 1e-4 * probe.weight.pow(2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return probe


def probe_model(exp: str, cuts_paths: list[str], spec: str, avg: int) -> dict:
    model, info = load_model_for_decoding(exp, avg=avg)
    enc: dict[str, torch.Tensor] = {}
    cuts = []
    for path in cuts_paths:
        encoded = encode_set(model, path)
        enc.update(zip(encoded.ids, encoded.enc))
        cuts.extend(CutSet.from_file(path))
    domains = DomainLabels.from_cuts(cuts, spec)
    labels = {c.id: domains.by_cut[c.id] for c in cuts}
    train_ids, test_ids = split_halves(sorted(enc), labels)

    def frames(ids):
        ids = sorted(ids)
        x = torch.cat([enc[i].float() for i in ids])
        y = torch.cat([torch.full((len(enc[i]),), labels[i]) for i in ids])
        return ids, x, y
    _, xtr, ytr = frames(train_ids)
    ids_te, xte, yte = frames(test_ids)
    mean, std = xtr.mean(0), xtr.std(0).clamp(min=1e-5)
    probe = fit_probe((xtr - mean) / std, ytr, len(domains.names))
    with torch.no_grad():
        logp = torch.log_softmax(probe((xte - mean) / std), -1)
    frame_acc = float((logp.argmax(-1) == yte).float().mean())
    right, start = 0, 0
    for i in ids_te:
        n = len(enc[i])
        right += int(int(logp[start: start + n].mean(0).argmax()) == labels[i])
        start += n
    counts = torch.bincount(yte, minlength=len(domains.names)).float()
    return {"exp": exp, "epoch": info["epoch"], "avg": info["avg"], "domains": len(domains.names),
            "train_utts": len(train_ids), "test_utts": len(ids_te), "test_frames": len(yte),
            "frame_acc": round(100 * frame_acc, 2), "utt_acc": round(100 * right / len(ids_te), 2),
            "chance": round(100 * float(counts.max() / counts.sum()), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exp", action="append", required=True, help="NAME=EXP_DIR (repeat)")
    p.add_argument("--cuts", nargs="+", required=True, help="feature manifests of the probed utterances")
    p.add_argument("--domain", default="speaker", help="speaker, language or KEY:REGEX")
    p.add_argument("--avg", type=int, default=2, help="epochs averaged, as stage 6")
    p.add_argument("--out", required=True, help="bench/results/<name> (without .md/.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    try:
        for item in args.exp:
            name, _, exp = item.partition("=")
            if not exp:
                raise GraftError(f"--exp {item!r}: give NAME=EXP_DIR")
            rows.append({"name": name, **probe_model(exp, args.cuts, args.domain, args.avg)})
    except GraftError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    lines = [f"# Linear probe of the encoder output: {args.domain}", "",
             f"Utterances of {', '.join(args.cuts)}: every other utterance of each {args.domain} trains a "
             "multinomial logistic regression on the encoder frames (standardized, L-BFGS), the others "
             "test it; utterance accuracy = the argmax of the mean frame log-probability. Chance = the "
             "largest domain's share of the test frames. `bench/probe_domains.py`.", "",
             "| model | exp | epoch (avg) | domains | test utterances (frames) | frame accuracy % | "
             "utterance accuracy % | chance % |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['name']} | `{r['exp']}` | {r['epoch']} ({r['avg']}) | {r['domains']} | "
                     f"{r['test_utts']} ({r['test_frames']}) | {r['frame_acc']:.2f} | {r['utt_acc']:.2f} | "
                     f"{r['chance']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    with atomic_write(out.with_suffix(".md")) as f:
        f.write(text)
    with atomic_write(out.with_suffix(".json")) as f:
        json.dump({"domain": args.domain, "cuts": args.cuts, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
