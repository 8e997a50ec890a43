"""Score one decoding method on dev and test at many (LM weight, insertion penalty) pairs.

The pair is chosen on dev and applied to test and to every further test set (`other_test_sets`,
e.g. test_unseen: voices no other split has); their WER is also given relative to test's.

Re-scores saved lattices or n-best lists, so no model (and no torch) is loaded.

Decode dir layout (`<decode-root>` is usually `exp/<model>/decode`):

    <decode-root>/summary.md               written here: one row per scored method (from selection.json)
    <decode-root>/<method>/                method: e.g. ctc-hlg, beam4, greedy
        summary.md                         written here: choice on dev, test (and further test sets,
                                           with their WER ratio to test) at it, test oracle, table
        wer_vs_lmwt.png                    written here: WER against LM weight, dev and test
        selection.json                     written here: the same figures, machine-readable
        <set>/                             set: dev, test, ...
            ref.txt                        "<utt-id> words..." (written by the decode step)
            one of the decoding outputs (the first found is used):
              lats/lattices.scp + lats/*.lat   lattices (graft.decode.ctc_lattice), re-scored
                                               with cost = w*graph + acoustic + p*num_words
              nbest.jsonl                      n-best lists (graft.decode.nbest_rescore), re-scored
                                               with G: am - w*lm_cost - p*num_words
              hyp.txt                          fixed hypotheses (e.g. greedy search): scored once,
                                               as LM weight 0.0, penalty 0.0
            onebest.txt, lattice_decode.json   (from lattice decoding; not read here)
            scoring/                       written here, replaced as a whole on success:
                hyp_<lmwt>_<wip>.txt wer_<lmwt>_<wip> cer_<lmwt>_<wip>
                per_utt_<lmwt>_<wip> errors_<lmwt>_<wip>   (see graft.score.kaldi_files)
                wer_summary.tsv                every pair: WER, CER, counts
                best_wer                       Kaldi-style: the best %WER line on this set and its file

All inputs are read and re-scored before anything is written; a failed run leaves earlier
results as they were.

Usage:
    sel = score_method(ScoreConfig(decode_root="exp/m/decode", method="ctc-hlg",
                                   lm_weights=[0.3, 0.5, 0.7], penalties=[0.0, 0.5],
                                   lm_dir="data/lang/en_bpe500/lm_3gram",
                                   other_test_sets=("test_unseen",)))

The LM dir (words.txt for lattices, G.fst for n-best lists) defaults to the one the decode dir
records in its decode.json (steps/decode.py writes it). Sweeping LM weights far from the w0 the
lattices were decoded at gets a warning (their beams were tuned for w0).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from graft.decode.lattice_rescore import read_scp, rescore_lattices
from graft.decode.nbest_rescore import DEFAULT_OOV_COST, NBEST_NAME, WordLm, read_nbest, rescore_nbest
from graft.lang.symbols import invert, read_symbols
from graft.score.kaldi_files import result_files
from graft.score.select import Pair, Selection, SetScore, select_weights, summary_markdown
from graft.data.kaldi_text import read_text
from graft.score.wer import score_utterances
from graft.score.weights import weight_label
from graft.utils.errors import GraftError, MissingStageError
from graft.utils.io import atomic_dir, atomic_write
from graft.utils.logging import get_logger

log = get_logger(__name__)

SCP_PATH = "lats/lattices.scp"
HYP_NAME = "hyp.txt"
REF_NAME = "ref.txt"
SCORING_DIR = "scoring"


@dataclass
class ScoreConfig:
    decode_root: str | os.PathLike
    method: str
    lm_weights: Sequence[float]
    penalties: Sequence[float] = (0.0,)
    dev_set: str = "dev"
    test_set: str | None = "test"
    other_test_sets: Sequence[str] = ()  # further test sets at the dev-chosen pair (e.g. test_unseen)
    lm_dir: str | os.PathLike | None = None
    oov_cost: float = DEFAULT_OOV_COST
    num_jobs: int = 1
    top_errors: int = 30


@dataclass
class SetResult:
    """Everything computed for one set, ready to be written."""

    name: str
    set_dir: Path
    kind: str
    scores: dict[Pair, SetScore] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def detect_kind(set_dir: Path) -> str:
    """'lattice', 'nbest' or 'hyp': which decoding output the set dir holds."""
    if not set_dir.is_dir():
        raise MissingStageError(f"missing decode dir {set_dir} (run the decode stage for this method and set)")
    if (set_dir / SCP_PATH).is_file():
        return "lattice"
    if (set_dir / NBEST_NAME).is_file():
        return "nbest"
    if (set_dir / HYP_NAME).is_file():
        return "hyp"
    raise MissingStageError(
        f"no saved lattices ({SCP_PATH}), n-best lists ({NBEST_NAME}) or hypotheses ({HYP_NAME}) "
        f"in {set_dir} (run the decode stage)"
    )


def recorded_lm_dir(decode_root: str | os.PathLike) -> Path | None:
    """The LM dir a decode dir records in its decode.json (None when it records none)."""
    path = Path(decode_root) / "decode.json"
    if not path.is_file():
        return None
    lm_dir = json.loads(path.read_text(encoding="utf-8")).get("lm_dir")
    return Path(lm_dir) if lm_dir else None


def _lang_file(config: ScoreConfig, name: str, why: str) -> Path:
    lm_dir = config.lm_dir or recorded_lm_dir(config.decode_root)
    if lm_dir is None:
        raise GraftError(f"{why} needs the LM dir (--lm-dir) for {name}: {config.decode_root}/decode.json records none")
    path = Path(lm_dir) / name
    if not path.is_file():
        raise MissingStageError(f"missing {path} ({why}; written by stage 3)")
    return path


def warn_far_from_w0(set_dir: Path, weights: Sequence[float]) -> float | None:
    """Warn when the sweep reaches LM weights far (beyond 2x either way) from the lattices' w0."""
    path = set_dir / "decode.json"
    if not path.is_file():
        return None
    w0 = (json.loads(path.read_text(encoding="utf-8")).get("lattice") or {}).get("w0")
    if not w0:
        return None
    far = [w for w in weights if w > 0 and not w0 / 2 <= w <= 2 * w0]
    if far:
        log.warning("%s: lattices were decoded at LM weight w0=%s; the sweep's %s are more than 2x away "
                    "(their pruning beams were set for w0): decode again with --lm-weights centred on "
                    "the weights you score at", set_dir, weight_label(w0),
                    ", ".join(weight_label(w) for w in far[:5]) + (" ..." if len(far) > 5 else ""))
    return float(w0)


def load_hypotheses(set_dir: Path, kind: str, config: ScoreConfig, lm_cache: dict) -> dict[Pair, dict[str, list[str]]]:
    """Best word sequences per pair for one set (re-scoring lattices / n-best lists)."""
    weights = [float(w) for w in config.lm_weights]
    pens = [float(p) for p in config.penalties]
    if kind == "lattice":
        id2word = invert(read_symbols(_lang_file(config, "words.txt", f"re-scoring lattices in {set_dir}")))
        warn_far_from_w0(set_dir, weights)
        scp = read_scp(set_dir / SCP_PATH)
        if not scp:
            raise GraftError(f"{set_dir / SCP_PATH} lists no lattices")
        missing = [str(p) for p in scp.values() if not p.is_file()]
        if missing:
            raise GraftError(f"{len(missing)} lattice files listed in {set_dir / SCP_PATH} are missing, e.g. {missing[0]}")
        return rescore_lattices(scp, weights, pens, id2word, num_jobs=config.num_jobs, desc=f"rescore {set_dir.name}")
    if kind == "nbest":
        entries = read_nbest(set_dir / NBEST_NAME)
        lm = None
        if any(w != 0 for w in weights):
            if "lm" not in lm_cache:
                words = _lang_file(config, "words.txt", f"re-scoring n-best lists in {set_dir}")
                lm_cache["lm"] = WordLm.from_lm_dir(words.parent, oov_cost=config.oov_cost)
            lm = lm_cache["lm"]
        return rescore_nbest(entries, lm, weights, pens)
    if kind == "hyp":
        return {(0.0, 0.0): read_text(set_dir / HYP_NAME, "hypotheses")}
    raise ValueError(kind)


def score_set(name: str, set_dir: Path, config: ScoreConfig, lm_cache: dict) -> SetResult:
    """Re-score and score one set at every pair; returns the files to write (writes nothing)."""
    kind = detect_kind(set_dir)
    refs = read_text(set_dir / REF_NAME, "reference text (ref.txt, written by the decode step)")
    if not refs:
        raise GraftError(f"{set_dir / REF_NAME} is empty")
    log.info("scoring %s (%s, %d utterances)", set_dir, kind, len(refs))
    hyps_by_pair = load_hypotheses(set_dir, kind, config, lm_cache)
    result = SetResult(name, set_dir, kind)
    word_cache: dict = {}
    char_cache: dict = {}
    order = list(refs)
    summary_rows = ["lm_weight\tword_ins_penalty\twer\tcer\tins\tdel\tsub\tref_words\tsentences\tmissing"]
    for (w, p), hyps in sorted(hyps_by_pair.items()):
        words = score_utterances(refs, hyps, "word", cache=word_cache)
        chars = score_utterances(refs, hyps, "char", with_details=False, cache=char_cache)
        result.scores[(w, p)] = SetScore(words.counts, chars.counts)
        result.files.update(result_files(weight_label(w), weight_label(p), hyps, order, words, chars, config.top_errors))
        c = words.counts
        summary_rows.append(f"{weight_label(w)}\t{weight_label(p)}\t{c.rate:.2f}\t{chars.counts.rate:.2f}\t"
                            f"{c.ins}\t{c.dels}\t{c.subs}\t{c.ref_len}\t{c.sentences}\t{c.missing}")
    best = min(result.scores, key=lambda pr: (result.scores[pr].wer.errors, pr[0], pr[1]))
    tag = f"{weight_label(best[0])}_{weight_label(best[1])}"
    result.files["wer_summary.tsv"] = "\n".join(summary_rows) + "\n"
    result.files["best_wer"] = f"{result.scores[best].wer.kaldi_line('WER')} {set_dir / SCORING_DIR / ('wer_' + tag)}\n"
    return result


def write_set(result: SetResult) -> Path:
    """Replace `<set>/scoring/` with the computed files."""
    out = result.set_dir / SCORING_DIR
    with atomic_dir(out) as tmp:
        for fname, text in result.files.items():
            (tmp / fname).write_text(text, encoding="utf-8")
    return out


def score_method(config: ScoreConfig) -> Selection:
    """Score dev (and test), choose the pair on dev, write every file (see module docstring)."""
    if not list(config.lm_weights):
        raise GraftError("no LM weights given")
    if not list(config.penalties):
        raise GraftError("no word insertion penalties given")
    method_dir = Path(config.decode_root) / config.method
    if not method_dir.is_dir():
        raise MissingStageError(f"missing decode dir {method_dir} (no decoding with method {config.method!r} "
                                f"under {config.decode_root})")
    lm_cache: dict = {}
    dev = score_set(config.dev_set, method_dir / config.dev_set, config, lm_cache)
    test = None
    if config.test_set:
        test = score_set(config.test_set, method_dir / config.test_set, config, lm_cache)
    others = {name: score_set(name, method_dir / name, config, lm_cache)
              for name in config.other_test_sets if name not in (config.dev_set, config.test_set)}
    sel = select_weights(dev.scores, test.scores if test else None,
                         {name: res.scores for name, res in others.items()})
    # everything is computed: now write
    results = [r for r in (dev, test, *others.values()) if r is not None]
    for res in results:
        write_set(res)
    plot_name = "wer_vs_lmwt.png"
    wer_series = {r.name: {pr: s.wer.rate for pr, s in r.scores.items()} for r in results}
    from graft.score.plot import plot_wer_vs_lm_weight

    plot_wer_vs_lm_weight(method_dir / plot_name, f"{config.method}: WER against LM weight", wer_series, sel.chosen)
    text = summary_markdown(config.method, dev.name, test.name if test else None, dev.scores,
                            test.scores if test else None, sel, plot_name,
                            others={name: res.scores for name, res in others.items()})
    with atomic_write(method_dir / "summary.md") as f:
        f.write(text)
    info = {"method": config.method, "dev_set": dev.name, "test_set": test.name if test else None,
            "kinds": {r.name: r.kind for r in results}, **sel.to_json()}
    with atomic_write(method_dir / "selection.json") as f:
        json.dump(info, f, indent=2)
    write_root_summary(Path(config.decode_root))
    log.info("%s: chosen on %s: LM weight %s, penalty %s: %s", config.method, dev.name,
             weight_label(sel.chosen[0]), weight_label(sel.chosen[1]), sel.dev.wer.kaldi_line())
    if sel.test is not None:
        log.info("%s: %s at that weight: %s", config.method, test.name, sel.test.wer.kaldi_line())
    for name, (_, sc) in sel.others.items():
        log.info("%s: %s at that weight: %s", config.method, name, sc.wer.kaldi_line())
    return sel


def write_root_summary(decode_root: Path) -> Path:
    """`<decode-root>/summary.md`: one row per method that has a selection.json (with columns
    for each further test set, e.g. test_unseen, and its WER ratio to test, when any has one)."""
    infos = []
    for sel_path in sorted(decode_root.glob("*/selection.json")):
        try:
            infos.append((sel_path, json.loads(sel_path.read_text(encoding="utf-8"))))
        except ValueError as e:
            log.warning("skipping %s in the summary: %s", sel_path, e)
    other_names = list(dict.fromkeys(n for _, info in infos for n in (info.get("other_tests") or {})))
    rows = ["| method | outputs | LM weight | ins. penalty | dev WER | test WER (dev-chosen weight) | test oracle WER |"
            + "".join(f" {n} WER | {n} / test |" for n in other_names),
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |" + " ---: | ---: |" * len(other_names)]
    for sel_path, info in infos:
        try:
            chosen = info["chosen_on_dev"]
            dev = info["dev"]
            test, oracle = info.get("test"), info.get("test_oracle_score")
            kinds = "/".join(sorted(set(info.get("kinds", {}).values())))
            test_wer = "-" if not test else f"{test['wer']:.2f}"
            oracle_wer = "-" if not oracle else f"{oracle['wer']:.2f}"
            row = (
                f"| [{sel_path.parent.name}]({sel_path.parent.name}/summary.md) | {kinds} | "
                f"{weight_label(chosen['lm_weight'])} | {weight_label(chosen['word_ins_penalty'])} | "
                f"{dev['wer']:.2f} | {test_wer} | {oracle_wer} |"
            )
            for n in other_names:
                o = (info.get("other_tests") or {}).get(n) or {}
                ratio = o.get("wer_ratio_to_test")
                row += (f" {o['wer']:.2f} |" if "wer" in o else " - |") + (f" {ratio:.2f}x |" if ratio is not None else " - |")
            rows.append(row)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("skipping %s in the summary: %s", sel_path, e)
    path = decode_root / "summary.md"
    with atomic_write(path) as f:
        f.write(f"# Decoding results under {decode_root}\n\n" + "\n".join(rows) + "\n")
    return path
