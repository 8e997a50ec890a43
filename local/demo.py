#!/usr/bin/env python3
"""The demo corpus adapter: English and Czech speech synthesized offline from fortune texts.

Usage:
    local/demo.py download --dl-dir data/corpus --seed 0 --jobs 2 \\
        --en-train-minutes 130 --en-dev-minutes 15 --en-test-minutes 15 \\
        --cs-train-minutes 100 --cs-dev-minutes 10 --cs-test-minutes 15 \\
        --en-unseen-minutes 10 --cs-unseen-minutes 10
    local/demo.py prepare --dl-dir data/corpus --language cs --out-dir data/manifests/cs \\
        --train-subsets "15 30 60" --seed 0
    local/demo.py download --languages pl --train-reads 2 --pl-train-minutes 240 --pl-unseen-minutes 0
        # Polish (not part of the demo; bench/source_language.sh): ~2,400 sentences, read twice

`download` (also called `synthesize`; stage 0) writes a folder corpus per language (CONVENTIONS.md): <out-dir>/<lang>/
transcripts.tsv (id audio text speaker language split), wav/<id>.wav (16 kHz mono), lm_text.txt
(the clean sentences not in the corpus) and report.json (counts, hours per split and voice,
skipped items by reason, generation time).

How: the clean fortune sentences of a language are shuffled with the seed and cut into
disjoint candidate pools for dev, test, test_unseen and train; candidates of train/dev/test get
the language's training voices in turn, those of test_unseen (the voice-disjoint test set; 0
minutes = none) the held-out voices (graft.data.tts VOICES, held_out=True), which never read
a sentence of the other splits. Every utterance is read with its own speed and pitch, drawn
from its id (graft.data.tts.utterance_settings). Each split is the shortest prefix of its pool whose synthesized audio reaches the
requested minutes, so ids, texts and speakers depend only on the seed and the minutes (the
engines are deterministic). Synthesis runs in waves (estimate, synthesize, top up) on --jobs
processes. Each wav is written atomically, so a killed run resumes and skips finished
utterances; transcripts.tsv and report.json are written at the end.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import multiprocessing
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from graft.data import adapter  # the machinery every corpus adapter shares (stage 1: prepare)
from graft.data.corpus import Utterance, write_transcripts
from graft.data.extra_text import extra_lm_sentences
from graft.data.fortunes import Sentence, fortune_sentences
from graft.data.tts import (BatchResult, SynthItem, Voice, check_voices, seconds_per_word,
                            synthesize_batch, utterance_settings, voices_for)
from graft.utils.cli import run_main
from graft.utils.errors import GraftError
from graft.utils.io import atomic_write
from graft.utils.logging import get_logger

log = get_logger("local.demo")

LANGUAGES = ("en", "cs", "pl")  # pl: only on request (--languages), a source closer to Czech
DEMO_LANGUAGES = ("en", "cs")
SPLITS = ("dev", "test", "test_unseen", "train")  # pools are cut in this order: dev/test do not move with train
UNSEEN = "test_unseen"  # read by the held-out voices only
DEFAULT_MINUTES = {"en": {"train": 130, "dev": 15, "test": 15, UNSEEN: 10},
                   "cs": {"train": 100, "dev": 10, "test": 15, UNSEEN: 10},
                   "pl": {"train": 120, "dev": 10, "test": 10, UNSEEN: 0}}
OPTION_NAME = {UNSEEN: "unseen"}  # --en-unseen-minutes
# A first guess of seconds per word (measured: 0.30-0.42 en, 0.41-0.52 cs per voice);
# corrected per voice from what is synthesized.
GUESS_SECONDS_PER_WORD = {"en": 0.35, "cs": 0.48, "pl": 0.45}
POOL_SLACK = 1.35  # a pool holds candidates for this many times its minutes (estimated)
MAX_WAVES = 8
CHUNK = {"festival": 60, "espeak": 30, "flite": 20}  # utterances per task


@dataclass(frozen=True)
class Candidate:
    """A sentence a split may use, with its speaker and utterance id."""

    id: str
    index: int  # position in the seeded shuffle of the language's sentences
    split: str
    sentence: Sentence
    voice: Voice

    @property
    def words(self) -> int:
        return len(self.sentence.text.split())

    @property
    def key(self) -> str:
        """What the audio depends on: a wav made for another key is stale."""
        raw = json.dumps([self.sentence.speak, self.voice.settings, self.voice.speaker,
                          utterance_settings(self.voice, self.id).to_json()])
        return hashlib.sha1(raw.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _sentences(language: str) -> tuple[tuple[Sentence, ...], tuple[tuple[str, int], ...]]:
    sentences, stats = fortune_sentences(language)
    return tuple(sentences), tuple(sorted(stats.items()))


def plan_language(language: str, sentences: list[Sentence], minutes: dict[str, float], seed: int,
                  voices: list[Voice], train_reads: int = 1) -> dict[str, list[Candidate]]:
    """Disjoint candidate pools per split (in the order to use them), from a seeded shuffle.
    test_unseen is read by the held-out voices of `voices`, every other split by the rest.
    train_reads > 1: when the sentences run out, train reads its own sentences again, each time
    with the next voice (a language with little text, e.g. Polish); dev and test stay disjoint."""
    seen = [v for v in voices if not v.held_out]
    unseen = [v for v in voices if v.held_out]
    if not seen:
        raise GraftError(f"no {language} training voices (all are held_out in graft/data/tts.py VOICES)")
    if not 1 <= train_reads <= len(seen):
        raise GraftError(f"--train-reads must be between 1 and the {len(seen)} {language} training voices, "
                         f"got {train_reads}")
    if minutes.get(UNSEEN, 0) > 0 and not unseen:
        raise GraftError(f"{language} {UNSEEN} needs held-out voices: none is marked held_out in "
                         f"graft/data/tts.py VOICES; set --{language}-unseen-minutes 0 or mark some")
    order = list(range(len(sentences)))
    random.Random(f"graft-demo-{language}-{seed}").shuffle(order)
    spw = GUESS_SECONDS_PER_WORD.get(language, 0.45)
    pools: dict[str, list[Candidate]] = {}
    pos = 0
    for split in SPLITS:
        want = minutes.get(split, 0) * 60
        pool: list[Candidate] = []
        est = 0.0
        start, read, in_read = pos, 0, 0  # read: how many times train has wrapped around its sentences
        while want > 0 and est < want * POOL_SLACK:
            if pos >= len(order):
                if split == "train" and read + 1 < train_reads and pos > start:
                    pos, read, in_read = start, read + 1, 0
                    continue
                if est < want:
                    raise GraftError(
                        f"not enough {language} sentences for {sum(minutes.values()):g} minutes: "
                        f"{len(sentences)} clean fortune sentences give about "
                        f"{_estimate_minutes(sentences, spw):.0f} minutes read once; ask for fewer minutes"
                        + (" or more --train-reads" if split == "train" else ""))
                break
            i = order[pos]
            split_voices = unseen if split == UNSEEN else seen
            voice = split_voices[(in_read + read) % len(split_voices)]  # a new voice on each read
            s = sentences[i]
            pool.append(Candidate(f"{voice.speaker}-{pos:05d}", pos, split, s, voice))
            est += len(s.text.split()) * spw
            pos += 1
            in_read += 1
        pools[split] = pool
    return pools


def _estimate_minutes(sentences: list[Sentence], spw: float) -> float:
    return sum(len(s.text.split()) for s in sentences) * spw / 60


class _State:
    """Durations and failures of a language's candidates, and the selection they give."""

    def __init__(self, language: str, pools: dict[str, list[Candidate]], minutes: dict[str, float]):
        self.language = language
        self.pools = pools
        self.minutes = minutes
        self.seconds: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.by_id = {c.id: c for pool in pools.values() for c in pool}
        self.resumed = 0
        self.synthesized = 0
        self.batch_seconds = 0.0

    def spw(self) -> dict[Voice, float]:
        """Seconds per word of each voice so far (until five of a voice are done: the
        language's so far, or the guess before five of any voice are done)."""
        done: dict[Voice, list[tuple[float, int]]] = defaultdict(list)
        for c in self.by_id.values():
            if c.id in self.seconds:
                done[c.voice].append((self.seconds[c.id], c.words))
        every = [x for d in done.values() for x in d]
        guess = GUESS_SECONDS_PER_WORD.get(self.language, 0.45)
        if len(every) >= 5:
            guess = sum(s for s, _ in every) / sum(w for _, w in every)
        return defaultdict(lambda: guess, {v: sum(s for s, _ in d) / sum(w for _, w in d)
                                           for v, d in done.items() if len(d) >= 5})

    def todo(self, margin: float) -> list[Candidate]:
        """Candidates to synthesize so each split reaches its minutes: walking its pool, stop
        when the audio made reaches them, or with the estimate for the rest, `margin` times them."""
        spw = self.spw()
        out = []
        for split, pool in self.pools.items():
            want, made, guess = self.minutes.get(split, 0) * 60, 0.0, 0.0
            for c in pool:
                if made >= want or made + guess >= want * margin:
                    break
                if c.id in self.failed:
                    continue
                if c.id in self.seconds:
                    made += self.seconds[c.id]
                else:
                    out.append(c)
                    guess += c.words * spw[c.voice]
        return out

    def selection(self) -> dict[str, list[Candidate]]:
        """Per split, the shortest prefix of synthesized candidates reaching its minutes."""
        out = {}
        for split, pool in self.pools.items():
            want, acc, chosen = self.minutes.get(split, 0) * 60, 0.0, []
            for c in pool:
                if acc >= want:
                    break
                if c.id in self.seconds:
                    chosen.append(c)
                    acc += self.seconds[c.id]
            out[split] = chosen
        return out


def _resume(state: _State, lang_dir: Path) -> None:
    """Reuse wavs a previous run wrote for the same candidates; delete stale and partial ones."""
    wav_dir = lang_dir / "wav"
    plan_file = lang_dir / ".plan.tsv"
    previous = {}
    if plan_file.exists():
        for line in plan_file.read_text(encoding="utf-8").splitlines():
            uid, _, key = line.partition("\t")
            previous[uid] = key
    with atomic_write(plan_file) as f:
        for c in state.by_id.values():
            f.write(f"{c.id}\t{c.key}\n")
    if not wav_dir.is_dir():
        return
    for p in sorted(wav_dir.iterdir()):
        if p.name.startswith(".tmp-"):
            p.unlink()
            continue
        c = state.by_id.get(p.stem)
        if c is None or previous.get(c.id) != c.key:
            p.unlink()
            continue
        try:
            info = sf.info(str(p))
            state.seconds[c.id] = info.frames / info.samplerate
            state.resumed += 1
        except RuntimeError:
            p.unlink()


def _work(task: tuple[str, Voice, list[SynthItem]]) -> tuple[str, BatchResult]:
    language, voice, items = task
    return language, synthesize_batch(voice, items)


def _chunks(cands: list[Candidate], lang_dir: Path) -> list[tuple[str, Voice, list[SynthItem]]]:
    by_voice: dict[Voice, list[Candidate]] = defaultdict(list)
    for c in cands:
        by_voice[c.voice].append(c)
    tasks = []
    for voice, cs in by_voice.items():
        size = CHUNK.get(voice.engine, 30)
        for i in range(0, len(cs), size):
            items = [SynthItem(c.id, c.sentence.speak, lang_dir / "wav" / f"{c.id}.wav") for c in cs[i:i + size]]
            tasks.append((voice.language, voice, items))
    return tasks


def _run_tasks(tasks: list, jobs: int, total: int, desc: str):
    """Yield (language, BatchResult) as tasks finish, on `jobs` processes."""
    # Festival tasks first (longest), so the processes end together.
    tasks = sorted(tasks, key=lambda t: (t[1].engine != "festival", -len(t[2])))
    bar = tqdm(total=total, desc=desc, unit="utt", mininterval=1.0, file=sys.stderr)
    try:
        if jobs <= 1:
            for t in tasks:
                lang, res = _work(t)
                bar.update(len(t[2]))
                yield lang, res
        else:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for lang, res in pool.imap_unordered(_work, tasks):
                    bar.update(len(res.seconds) + len(res.failed))
                    yield lang, res
    finally:
        bar.close()


def synthesize_corpus(out_dir: str | Path, minutes: dict[str, dict[str, float]], seed: int = 0,
                      jobs: int = 2, extra_lm_text: str = "none", train_reads: int = 1) -> dict[str, dict]:
    """Synthesize the demo corpus into `out_dir/<lang>/`; return the report per language.
    `extra_lm_text` (none, text, forms, thesaurus) adds Debian text to lm_text.txt (graft.data.extra_text)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    states: dict[str, _State] = {}
    for lang, mins in minutes.items():
        voices = voices_for(lang, held_out=None if mins.get(UNSEEN, 0) > 0 else False)
        check_voices(voices)
        sentences, _ = _sentences(lang)
        pools = plan_language(lang, list(sentences), mins, seed, voices, train_reads)
        states[lang] = _State(lang, pools, mins)
        _resume(states[lang], out_dir / lang)
        if states[lang].resumed:
            log.info(f"{lang}: resuming, {states[lang].resumed} utterances already synthesized")

    for wave in range(1, MAX_WAVES + 1):
        margin = 1.0 if wave == 1 else 1.04  # later waves know each voice's rate
        todo = {lang: st.todo(margin) for lang, st in states.items()}
        total = sum(len(v) for v in todo.values())
        if not total:
            break
        tasks = [t for lang, cands in todo.items() for t in _chunks(cands, out_dir / lang)]
        for lang, res in _run_tasks(tasks, jobs, total, f"synthesize (wave {wave})"):
            st = states[lang]
            st.seconds.update(res.seconds)
            st.failed.update(res.failed)
            st.synthesized += len(res.seconds)
            st.batch_seconds += res.wall_seconds
    else:
        log.warning(f"stopped after {MAX_WAVES} synthesis waves")

    generation_seconds = time.perf_counter() - t0
    return {lang: _write_language(st, out_dir / lang, seed, generation_seconds, extra_lm_text)
            for lang, st in states.items()}


def _written_splits(st: _State) -> list[str]:
    """train, dev, test, and test_unseen when it was asked for."""
    return ["train", "dev", "test"] + ([UNSEEN] if st.minutes.get(UNSEEN, 0) > 0 else [])


def _lm_lines(st: _State, selection: dict[str, list[Candidate]], extra: str) -> tuple[list[str], dict]:
    """lm_text.txt: the clean sentences not synthesized, then (extra: text or forms) Debian text of
    the language whose lines are not dev/test sentences; word forms are seeded with train and LM
    words only, never with dev or test words."""
    sentences, _ = _sentences(st.language)
    chosen = {c.sentence.text for cands in selection.values() for c in cands}
    lines = [s.text for s in sentences if s.text not in chosen]
    if extra == "none":
        return lines, {}
    held_out = {c.sentence.text for split, cands in selection.items() if split != "train" for c in cands}
    vocabulary = {w for s in lines for w in s.split()} | {w for c in selection.get("train", [])
                                                          for w in c.sentence.text.split()}
    more, stats = extra_lm_sentences(st.language, vocabulary=vocabulary, word_forms_too=extra in ("forms", "thesaurus"),
                                     seed_lists=extra == "thesaurus")
    known = set(lines)
    lines += [s for s in more if s not in held_out and s not in known]
    return lines, {"setting": extra, **stats}


def _write_language(st: _State, lang_dir: Path, seed: int, generation_seconds: float,
                    extra_lm_text: str = "none") -> dict:
    lang = st.language
    selection = st.selection()
    chosen = {c.id for cands in selection.values() for c in cands}
    unused = [uid for uid in st.seconds if uid not in chosen]
    for uid in unused:  # synthesized beyond the minutes: not part of the corpus
        (lang_dir / "wav" / f"{uid}.wav").unlink(missing_ok=True)

    write_transcripts(lang_dir / "transcripts.tsv", [
        Utterance(id=c.id, audio=lang_dir / "wav" / f"{c.id}.wav", text=c.sentence.text, speaker=c.voice.speaker,
                  language=lang, split=split)
        for split in _written_splits(st) for c in sorted(selection.get(split, []), key=lambda c: c.id)], lang)

    sentences, text_stats = _sentences(lang)
    lm_lines, extra_stats = _lm_lines(st, selection, extra_lm_text)
    with atomic_write(lang_dir / "lm_text.txt") as f:
        f.writelines(line + "\n" for line in lm_lines)

    speakers: dict[str, dict] = {}
    for v in voices_for(lang, held_out=None if st.minutes.get(UNSEEN, 0) > 0 else False):
        cands = [c for cands in selection.values() for c in cands if c.voice == v]
        secs = [st.seconds[c.id] for c in cands]
        speakers[v.speaker] = {**v.settings, "utterances": len(cands), "hours": round(sum(secs) / 3600, 4),
                               "seconds_per_word": round(seconds_per_word(secs, [c.words for c in cands]), 3)}
    attempted = [uid for cands in st.pools.values() for uid in (c.id for c in cands) if uid in st.failed]
    seconds = {split: sum(st.seconds[c.id] for c in cands) for split, cands in selection.items()}
    shortfall = {split: round((st.minutes.get(split, 0) * 60 - s) / 60, 2)
                 for split, s in seconds.items() if s < st.minutes.get(split, 0) * 60}
    if shortfall:
        log.warning(f"{lang}: candidate pools ran out; minutes missing per split: {shortfall}")
    report = {
        "language": lang,
        "seed": seed,
        "target_minutes": {split: st.minutes.get(split, 0) for split in _written_splits(st)},
        "utterances": {split: len(selection.get(split, [])) for split in _written_splits(st)},
        "hours": {split: round(seconds.get(split, 0) / 3600, 4) for split in _written_splits(st)},
        "held_out_speakers": sorted({c.voice.speaker for c in selection.get(UNSEEN, [])}),
        "total_utterances": len(chosen),
        "total_hours": round(sum(seconds.values()) / 3600, 4),
        "speakers": speakers,
        "skipped": {
            "utterances": dict(Counter(st.failed[uid] for uid in attempted)),
            "utterance_ids": {uid: st.failed[uid] for uid in sorted(attempted)},
            "sentences": dict(text_stats),
        },
        "sentences": {"clean": len(sentences), "in_corpus": len(chosen), "lm_text": len(lm_lines),
                      "extra_lm_text": extra_stats},
        "shortfall_minutes": shortfall,
        "resumed_utterances": st.resumed,
        "synthesized_utterances": st.synthesized,
        "unused_synthesized": len(unused),
        "synthesis_seconds": round(st.batch_seconds, 1),
        "generation_seconds": round(generation_seconds, 1),
    }
    with atomic_write(lang_dir / "report.json") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    log.info(f"{lang}: {report['total_utterances']} utterances, {report['total_hours']:.2f} h "
             f"({', '.join(f'{k} {v:.2f} h' for k, v in report['hours'].items())}) -> {lang_dir}")
    return report


# ---- command line ----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The CLI: one subcommand per stage of the adapter (`synthesize`; more are added alike)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_synthesize_command(sub)
    adapter.add_prepare_command(sub)
    return parser


def add_synthesize_command(sub: argparse._SubParsersAction) -> None:
    """Add `synthesize` (stage 0: the folder corpus per language) to the subcommands."""
    syn = sub.add_parser("download", aliases=["synthesize"], help="stage 0: synthesize the folder corpus per language")
    syn.add_argument("--dl-dir", "--out-dir", dest="out_dir", type=Path, default=Path("data/corpus"),
                     help="default: %(default)s")
    syn.add_argument("--seed", type=int, default=0, help="sentence selection seed (default: %(default)s)")
    syn.add_argument("--jobs", type=int, default=2, help="parallel processes (default: %(default)s)")
    syn.add_argument("--languages", nargs="+", default=list(DEMO_LANGUAGES), choices=LANGUAGES,
                     help="default: %(default)s")
    syn.add_argument("--train-reads", type=int, default=1,
                     help="times train may read each of its sentences, each time in another voice, when the "
                          "language's sentences run out (Polish has ~2,400) (default: %(default)s)")
    for lang, mins in DEFAULT_MINUTES.items():
        for split, m in mins.items():
            syn.add_argument(f"--{lang}-{OPTION_NAME.get(split, split)}-minutes", type=float, default=m,
                             help=f"{lang} {split} audio in minutes (default: %(default)s)"
                             + ("; read by the held-out voices only, 0 = no voice-disjoint test set"
                                if split == UNSEEN else ""))
    syn.add_argument("--extra-lm-text", choices=("none", "text", "forms", "thesaurus"), default="none",
                     help="add Debian text of the language to lm_text.txt: none, text (running text), forms "
                          "(running text and the inflected forms of its words; graft.data.extra_text), "
                          "thesaurus (forms, also of the words of the language's thesaurus: Czech 97 %% dev "
                          "coverage instead of 95, a 1.7x larger lexicon) (default: %(default)s)")
    syn.set_defaults(func=_cmd_synthesize)


def _cmd_synthesize(args: argparse.Namespace) -> None:
    minutes = {lang: {split: getattr(args, f"{lang}_{OPTION_NAME.get(split, split)}_minutes")
                      for split in DEFAULT_MINUTES[lang]} for lang in args.languages}
    for lang, mins in minutes.items():
        for split, m in mins.items():
            if m < 0:
                raise GraftError(f"--{lang}-{OPTION_NAME.get(split, split)}-minutes must be >= 0, got {m:g}")
    if args.jobs < 1:
        raise GraftError(f"--jobs must be >= 1, got {args.jobs}")
    synthesize_corpus(args.out_dir, minutes, seed=args.seed, jobs=args.jobs, extra_lm_text=args.extra_lm_text,
                      train_reads=args.train_reads)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the subcommand."""
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    run_main(main)
