#!/usr/bin/env python3
"""Czech LM vocabulary coverage of the demo's dev/test by extra-text source, and the LM/HLG cost.

Usage:
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_lm_coverage.py [--no-build] [--language cs]

The demo's dev/test sentences are taken from its plan (local/demo.py `plan_language`, default
minutes, seed 0): every candidate of the held-out pools (a few more sentences than the chosen
ones; no audio is synthesized). The LM text of each variant is the other fortune sentences
(what stage 3 gets: train transcripts + lm_text.txt) plus the extra lines of
`graft.data.extra_text`, with exact dev/test sentences removed. For each variant: lines, word
types, dev/test word coverage; with building, stage 3's own `prepare_bpe`/`prepare_lm` (3-gram)
in a temporary dir: LM perplexity, build seconds and graph sizes.
Writes bench/results/lm_coverage.md and .json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graft.data.extra_text import TEXT_SOURCES, extra_lm_sentences, source_sentences  # noqa: E402
from graft.data.tts import voices_for  # noqa: E402
from graft.lang.prepare import prepare_bpe, prepare_lm  # noqa: E402
from graft.utils.errors import GraftError  # noqa: E402

RESULTS = REPO / "bench" / "results"


def load_demo():
    """local/demo.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("local_demo", REPO / "local" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_demo"] = module
    spec.loader.exec_module(module)
    return module


def demo_splits(language: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(all clean fortune sentences, held-out texts per split, train-pool texts) of the demo plan."""
    demo = load_demo()
    sentences, _ = demo._sentences(language)
    minutes = dict(demo.DEFAULT_MINUTES[language])
    try:
        pools = demo.plan_language(language, list(sentences), minutes, 0, voices_for(language))
    except GraftError as e:  # no held-out voices for test_unseen yet: plan without it
        print(f"planning without test_unseen: {e}", file=sys.stderr)
        minutes = {k: (0 if k == "test_unseen" else v) for k, v in minutes.items()}
        pools = demo.plan_language(language, list(sentences), minutes, 0, voices_for(language))
    held = {split: [c.sentence.text for c in pool] for split, pool in pools.items() if split != "train" and pool}
    return [s.text for s in sentences], held, [c.sentence.text for c in pools.get("train", [])]


def coverage(vocab: set[str], texts: list[str]) -> float:
    """The share of running words of `texts` in `vocab`."""
    words = [w for s in texts for w in s.split()]
    return round(sum(w in vocab for w in words) / max(1, len(words)), 4)


def variants(language: str, base: list[str], held_out: set[str]) -> dict[str, list[str]]:
    """Extra lines per variant (exact held-out sentences removed)."""
    per_source = {}
    for source in TEXT_SOURCES.get(language, ()):
        seen: dict[str, None] = {}
        for s in source_sentences(source, language, stats=Counter()):
            seen.setdefault(s)
        per_source[source.name] = list(seen)
    base_words = {w for s in base for w in s.split()}
    out: dict[str, list[str]] = {"fortunes": []}
    for name, lines in per_source.items():
        out[f"+{name}"] = lines
    running, _ = extra_lm_sentences(language, word_forms_too=False)
    out["+" + "+".join(per_source)] = running
    out["+all (text + hunspell forms)"], _ = extra_lm_sentences(language, vocabulary=base_words)
    return {k: [s for s in v if s not in held_out] for k, v in out.items()}


def build(language: str, train: list[str], extra: list[str], held: dict[str, list[str]], tmp: Path) -> dict:
    """Stage 3's BPE (500) and 3-gram LM dir on this text: seconds, sizes, perplexity."""
    lang_dir = tmp / f"{language}_bpe500"
    prepare_bpe(lang_dir, language, train, 500)
    t = time.time()
    info = prepare_lm(lang_dir, train, extra, held.get("dev", []), held.get("test", []), 3)
    cov = json.loads((lang_dir / "lm_3gram" / "coverage.json").read_text(encoding="utf-8"))
    out = {"build_seconds": round(time.time() - t, 1), "seconds": info["seconds"], "num_words": info["num_words"],
           "ngrams": info["lm_ngrams"], "HLG_mb": info["graphs"]["HLG"]["mb"], "HLG_arcs": info["graphs"]["HLG"]["arcs"],
           "perplexity": {k: cov[k]["perplexity"] for k in ("dev", "test")}}
    for p in sorted((lang_dir / "lm_3gram").iterdir()):
        p.unlink()
    return out


def to_markdown(rows: list[dict], meta: dict) -> str:
    """The results table."""
    lines = [f"# LM word coverage of the demo's {meta['language']} dev/test by extra-text source", "",
             f"Made by `bench/bench_lm_coverage.py` ({meta['date']}). Held-out sentences: "
             + ", ".join(f"{k} {v}" for k, v in meta["held_out"].items())
             + f"; fortune LM text (train + lm_text): {meta['base_sentences']} sentences. "
             "Builds: stage 3's prepare_bpe (500) + prepare_lm (3-gram, unpruned) on 2 cores beside other work.", "",
             "| LM text | extra lines | word types | dev coverage | test coverage | dev ppl | LM+HLG build s | HLG MB | HLG arcs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = r.get("build") or {}
        lines.append(f"| {r['variant']} | {r['extra_lines']} | {r['word_types']} | {r['coverage']['dev']:.4f} | "
                     f"{r['coverage']['test']:.4f} | {b.get('perplexity', {}).get('dev', '')} | "
                     f"{b.get('build_seconds', '')} | {b.get('HLG_mb', '')} | {b.get('HLG_arcs', '')} |")
    lines += ["", "Perplexity leaves OOV words out (SRILM convention), so it does not compare across "
              "vocabularies: the word-form lines (one word each) spread unigram mass over ~440k words."]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure every variant, print the table, write bench/results/lm_coverage.{md,json}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--language", default="cs")
    parser.add_argument("--no-build", action="store_true", help="coverage only (no LM/HLG builds)")
    args = parser.parse_args()
    everything, held, train = demo_splits(args.language)
    held_out = {s for texts in held.values() for s in texts}
    base = [s for s in everything if s not in held_out]
    train_set = set(train)
    rest = [s for s in base if s not in train_set]
    built = {"fortunes", "+" + "+".join(s.name for s in TEXT_SOURCES.get(args.language, ())),
             "+all (text + hunspell forms)"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_lm_coverage-") as tmp:
        for name, extra in variants(args.language, base, held_out).items():
            vocab = {w for s in base + extra for w in s.split()}
            row = {"variant": name, "extra_lines": len(extra), "word_types": len(vocab),
                   "coverage": {split: coverage(vocab, texts) for split, texts in held.items()}}
            if not args.no_build and name in built:
                row["build"] = build(args.language, train, rest + extra, held, Path(tmp))
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    meta = {"language": args.language, "date": time.strftime("%Y-%m-%d"), "base_sentences": len(base),
            "held_out": {k: len(v) for k, v in held.items()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = to_markdown(rows, meta)
    (RESULTS / "lm_coverage.md").write_text(md, encoding="utf-8")
    (RESULTS / "lm_coverage.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
