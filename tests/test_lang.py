"""Tests of stage 3 (graft.lang and steps/prepare_lang.py) on a tiny made-up corpus.

Usage:
    .venv/bin/python -m pytest tests/test_lang.py -q
"""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graft.lang import graphs
from graft.lang.bpe import load_bpe, read_tokens
from graft.lang.lexicon import add_disambig, read_lexicon
from graft.lang.symbols import read_symbols as read_symbol_table
from graft.lang.ngram import ArpaLM, evaluate_text
from graft.lang.prepare import prepare_bpe, prepare_lm
from graft.utils.errors import GraftError

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 60

WORDS = ("the cat sat on a mat dog ran to park big small red blue house tree bird sang "
         "song we saw there then they their over under green old new man woman child").split()


def _sentences(rng: random.Random, n: int, words=WORDS) -> list[str]:
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    rng = random.Random(0)
    train = ["the cat sat on the mat", "the dog ran to the park"] + _sentences(rng, 80)
    lm = ["a big red house", "their child sang a song"] + _sentences(rng, 40)
    dev = ["the cat sat on a zebra", "a dog ran to the quokka park"] + _sentences(rng, 6)
    test = _sentences(rng, 8)
    return {"train": train, "lm": lm, "dev": dev, "test": test}


@pytest.fixture(scope="module")
def lang_dir(tmp_path_factory, corpus) -> Path:
    """The LM dir (lm_3gram) of a BPE lang dir (its parent)."""
    out = tmp_path_factory.mktemp("lang") / "en_bpe60"
    prepare_bpe(out, "en", corpus["train"], vocab_size=VOCAB)
    prepare_lm(out, corpus["train"], corpus["lm"], corpus["dev"], corpus["test"], lm_order=3)
    return out / "lm_3gram"


def test_layout_and_lang_json(lang_dir):
    for name in ("bpe.model", "tokens.txt", "lang.json"):
        assert (lang_dir.parent / name).is_file(), name
    for name in ("words.txt", "lexicon.txt", "lm.arpa", "G.fst", "L_disambig.fst", "LG.fst", "HLG.fst",
                 "lm.json", "coverage.json"):
        assert (lang_dir / name).is_file(), name
    info = json.loads((lang_dir.parent / "lang.json").read_text())
    assert info["vocab_size"] == VOCAB and info["blank_id"] == 0 and len(info["fingerprint"]) == 16
    assert info["language"] == "en" and info["num_tokens"] == VOCAB
    lm = json.loads((lang_dir / "lm.json").read_text())
    assert lm["lm_order"] == 3 and lm["token_fingerprint"] == info["fingerprint"]
    assert not list(lang_dir.parent.parent.glob(".tmp-*")) and not list(lang_dir.parent.glob(".tmp-*"))


def test_tokens_match_model(lang_dir):
    sp = load_bpe(lang_dir.parent / "bpe.model")
    lines = (lang_dir.parent / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "<blk> 0"
    assert len(lines) == sp.get_piece_size() == VOCAB
    for i, line in enumerate(lines):
        piece, idx = line.split()
        assert int(idx) == i and sp.id_to_piece(i) == piece


def test_words_txt_layout(lang_dir, corpus):
    table = read_symbol_table(lang_dir / "words.txt")
    symbols = sorted(table, key=table.get)
    assert list(table.values()) == list(range(len(table)))
    words = sorted({w for s in corpus["train"] + corpus["lm"] for w in s.split()})
    assert symbols == ["<eps>", *words, "#0", "<s>", "</s>"]


def test_lexicon_pieces_spell_words(lang_dir, corpus):
    sp = load_bpe(lang_dir.parent / "bpe.model")
    tokens = read_tokens(lang_dir.parent / "tokens.txt")
    lexicon = dict(read_lexicon(lang_dir / "lexicon.txt"))
    for word, pieces in lexicon.items():
        assert "".join(pieces) == "\u2581" + word
        assert all(p in tokens for p in pieces)
    # a sentence's pieces are its words' pieces, one after the other
    sentence = corpus["train"][0]
    assert sp.encode(sentence, out_type=str) == [p for w in sentence.split() for p in lexicon[w]]


def test_add_disambig_prefix_and_homophones():
    lex = [("a", ["x"]), ("b", ["x", "y"]), ("c", ["z"]), ("d", ["z"]), ("e", ["q"])]
    out, max_disambig = add_disambig(lex)
    assert out == [("a", ["x", "#1"]), ("b", ["x", "y"]), ("c", ["z", "#1"]), ("d", ["z", "#2"]),
                   ("e", ["q"])]
    assert max_disambig == 2


def test_g_accepts_training_sentence_with_arpa_cost(lang_dir, corpus):
    import kaldifst

    words = read_symbol_table(lang_dir / "words.txt")
    lm = ArpaLM.read(lang_dir / "lm.arpa")
    G = kaldifst.StdVectorFst.read(str(lang_dir / "G.fst"))
    for sentence in corpus["train"][:3]:
        ids = [words[w] for w in sentence.split()]
        arpa_cost = -lm.score(sentence.split())[0] * math.log(10)
        assert graphs.sentence_cost(G, ids, words["#0"]) == pytest.approx(arpa_cost, abs=1e-3)
        # the cheapest path (back-off arcs free to compete) is never dearer than the ARPA one
        n = len(ids)
        lines = [f"{i} {i + 1} {w} {w}" for i, w in enumerate(ids)]
        lines += [f"{i} {i} {words['#0']} {words['#0']}" for i in range(n + 1)] + [str(n)]
        acceptor = graphs.compile_fst("\n".join(lines) + "\n")
        kaldifst.arcsort(acceptor, sort_type="olabel")
        best = kaldifst.shortest_path(kaldifst.compose(acceptor, G))
        ok, _, out, weight = kaldifst.get_linear_symbol_sequence(best)
        assert ok and [o for o in out if o != words["#0"]] == ids
        assert weight.value <= arpa_cost + 1e-3
    assert graphs.sentence_cost(G, [words["cat"], 10**6], words["#0"]) == math.inf


def _peaked_logprobs(token_ids: list[int], vocab: int) -> np.ndarray:
    """CTC-style frames: each token then a blank (a blank between repeats), log-probs peaked."""
    frames, prev = [0], None
    for t in token_ids:
        if t == prev:
            frames.append(0)
        frames += [t, t, 0]
        prev = t
    logp = np.full((len(frames), vocab), -20.0, dtype=np.float32)
    logp[np.arange(len(frames)), frames] = 0.0
    return logp


@pytest.mark.parametrize("which", ["train", "new"])
def test_hlg_decodes_peaked_posterior(lang_dir, corpus, which):
    import kaldi_decoder
    import kaldifst

    sentence = corpus["train"][1] if which == "train" else "the old woman saw their green tree"
    sp = load_bpe(lang_dir.parent / "bpe.model")
    words = read_symbol_table(lang_dir / "words.txt")
    id2word = {i: w for w, i in words.items()}
    hlg = kaldifst.StdConstFst.read(str(lang_dir / "HLG.fst"))  # kept alive while decoding
    decoder = kaldi_decoder.FasterDecoder(hlg, kaldi_decoder.FasterDecoderOptions(beam=12.0))
    decoder.decode(kaldi_decoder.DecodableCtc(_peaked_logprobs(sp.encode(sentence), VOCAB)))
    _, best = decoder.get_best_path()
    ok, _, out, weight = kaldifst.get_linear_symbol_sequence(best)
    assert ok and " ".join(id2word[o] for o in out) == sentence
    lm = ArpaLM.read(lang_dir / "lm.arpa")
    assert weight.value1 <= -lm.score(sentence.split())[0] * math.log(10) + 1e-2


def test_perplexity_matches_kaldingram(lang_dir, corpus):
    from kaldingram.prune import ArpaParser

    ref = ArpaParser().loadf(str(lang_dir / "lm.arpa"), encoding="utf-8")[0]
    lm = ArpaLM.read(lang_dir / "lm.arpa")
    for sentence in corpus["test"] + corpus["train"][:5]:
        assert lm.score(sentence.split())[0] == pytest.approx(ref.log_s(sentence), abs=1e-4)


HAND_ARPA = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.5
-0.5\ta\t-0.3
-0.7\tb\t-0.2

\\2-grams:
-0.2\t<s> a
-0.1\ta b

\\end\\
"""


def test_coverage_and_perplexity_hand_made(tmp_path):
    (tmp_path / "lm.arpa").write_text(HAND_ARPA)
    lm = ArpaLM.read(tmp_path / "lm.arpa")
    assert lm.vocab == {"a", "b"}
    # "a b":   -0.2 (<s> a) -0.1 (a b) + (-0.2 bow(b) - 1.0 </s>)      = -1.5
    # "a c b": -0.2, c is OOV (history reset), -0.7 (b), -0.2 - 1.0   = -2.1
    r = evaluate_text(lm, ["a b", "a  c b", ""])
    assert r["sentences"] == 2 and r["words"] == 5 and r["oov_words"] == 1
    assert r["word_coverage"] == pytest.approx(0.8)
    assert r["word_types"] == 3 and r["oov_types"] == 1
    assert r["type_coverage"] == pytest.approx(2 / 3, abs=1e-6)
    assert r["logprob10"] == pytest.approx(-3.6)
    assert r["scored_tokens"] == 6
    assert r["perplexity"] == pytest.approx(10 ** 0.6, abs=1e-3)
    assert evaluate_text(lm, [])["perplexity"] is None


def test_coverage_json(lang_dir, corpus):
    cov = json.loads((lang_dir / "coverage.json").read_text())
    assert cov["dev"]["sentences"] == len(corpus["dev"])
    assert cov["dev"]["oov_words"] == 2 and cov["dev"]["oov_types"] == 2  # zebra, quokka
    assert cov["test"]["oov_words"] == 0 and cov["test"]["word_coverage"] == 1.0
    assert cov["dev"]["perplexity"] > 1


def test_validate_fst_text_rejects_bad_input():
    graphs.validate_fst_text("0 1 2 3 0.5\n1\n")
    for bad in ("", "0 1 2\n1\n", "0 1 x 3\n", "0 1 2 3 nan\n", "-1 0 1 1\n", "0 1 2 3\n\n1\n"):
        with pytest.raises(GraftError):
            graphs.compile_fst(bad)


def test_empty_training_text_is_an_error(tmp_path):
    with pytest.raises(GraftError, match="training text .* empty"):
        prepare_bpe(tmp_path / "lang", "en", ["", "  "], vocab_size=VOCAB)
    assert not (tmp_path / "lang").exists()


def test_failed_build_leaves_no_dir(tmp_path, corpus):
    with pytest.raises(GraftError, match="vocab_size"):
        prepare_bpe(tmp_path / "lang", "en", corpus["train"][:3], vocab_size=5000)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def _run_step(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "steps" / "prepare_lang.py"), *args],
                          capture_output=True, text=True, cwd=ROOT)


def _write_supervisions(path: Path, texts: list[str]) -> None:
    from lhotse import SupervisionSegment, SupervisionSet

    sups = [SupervisionSegment(id=f"u{i}", recording_id=f"r{i}", start=0.0, duration=1.0, text=t)
            for i, t in enumerate(texts)]
    SupervisionSet.from_segments(sups).to_file(path)


def test_step_missing_manifest_names_stage_1(tmp_path):
    proc = _run_step("--language", "cs", "--manifest-dir", str(tmp_path / "nowhere"),
                     "--out-dir", str(tmp_path / "lang"))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("ERROR: missing the train supervision manifest")
    assert "stage 1" in last[0] and "supervisions_train.jsonl.gz" in last[0]


def test_step_empty_training_text(tmp_path):
    for split in ("train", "dev", "test"):
        texts = [""] if split == "train" else ["a b"]
        _write_supervisions(tmp_path / f"supervisions_{split}.jsonl.gz", texts)
    proc = _run_step("--language", "en", "--manifest-dir", str(tmp_path), "--out-dir", str(tmp_path / "lang"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("ERROR: no training transcripts")
    assert not (tmp_path / "lang").exists()


def test_step_builds_lang_dir(tmp_path, corpus):
    for split in ("train", "dev", "test"):
        _write_supervisions(tmp_path / f"supervisions_{split}.jsonl.gz", corpus[split])
    (tmp_path / "lm_text.txt").write_text("\n".join(corpus["lm"]) + "\n")
    out = tmp_path / "en_bpe60"
    proc = _run_step("--language", "en", "--manifest-dir", str(tmp_path), "--lm-text",
                     str(tmp_path / "lm_text.txt"), "--vocab-size", str(VOCAB), "--lm-order", "2",
                     "--prune-threshold", "1e-3", "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "lm_2gram_prune0.001" / "lm.json").read_text())
    assert info["lm_order"] == 2 and info["lm_prune_threshold"] == 1e-3
    # another LM order: a new LM dir beside the first, and the BPE model is not rewritten
    bpe_bytes, bpe_mtime = (out / "bpe.model").read_bytes(), (out / "bpe.model").stat().st_mtime_ns
    proc = _run_step("--language", "en", "--manifest-dir", str(tmp_path), "--lm-text",
                     str(tmp_path / "lm_text.txt"), "--vocab-size", str(VOCAB), "--lm-order", "3",
                     "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "lm_3gram" / "lm.json").read_text())["lm_order"] == 3
    assert (out / "lm_2gram_prune0.001" / "HLG.fst").is_file()
    assert (out / "bpe.model").read_bytes() == bpe_bytes and (out / "bpe.model").stat().st_mtime_ns == bpe_mtime
    assert (out / "lm_2gram_prune0.001" / "lm.arpa").is_file() and "coverage" in proc.stdout
