"""HLG lattice decoding, lattice re-scoring and n-best re-scoring on hand-made inputs.

A tiny HLG (tokens x y z w, words xy xz w, a unigram G) is built from text FSTs; peaked
posteriors with one ambiguous frame make the best path flip at a known LM weight.

Usage:
    .venv/bin/python -m pytest -q tests/test_decode_lattice.py
"""
from __future__ import annotations

import math
from pathlib import Path

import kaldifst
import numpy as np
import pytest

from graft.decode.ctc_lattice import (
    LatticeDecodeConfig,
    LatticeDecoder,
    decode_lattices,
    middle_lm_weight,
)
from graft.decode.lattice_rescore import LatticeArrays, best_paths, read_scp, rescore_lattices
from graft.decode.nbest_rescore import (
    NbestEntry,
    NbestHyp,
    WordLm,
    nbest_entry,
    read_nbest,
    rescore_nbest,
    write_nbest,
)
from graft.decode.search import Hypothesis
from graft.lang.symbols import invert, pieces_to_words
from graft.data.kaldi_text import read_text
from graft.utils.errors import GraftError

TOKENS = {"<blk>": 0, "x": 1, "y": 2, "z": 3, "w": 4}
V = len(TOKENS)
WORDS = {"<eps>": 0, "xy": 1, "xz": 2, "w": 3, "#0": 4, "<s>": 5, "</s>": 6}
SPELLING = {"xy": [1, 2], "xz": [1, 3], "w": [4]}
G_COST = {"xy": 3.0, "xz": 1.0, "w": 1.0}


def make_hlg() -> kaldifst.StdVectorFst:
    """H (CTC topology, input label = token + 1) o L (word loop) o G (unigram word loop)."""
    h = []
    for s in range(V):  # state 0: after blank; state t: inside token t
        h.append(f"{s} 0 1 0")
        for t in range(1, V):
            h.append(f"{s} {t} {t + 1} {0 if t == s else t}")
        h.append(f"{s}")
    H = kaldifst.compile("\n".join(h) + "\n")
    lines, nxt = [], 1
    for word, toks in SPELLING.items():
        src = 0
        for i, tok in enumerate(toks):
            dst = 0 if i == len(toks) - 1 else nxt
            if dst:
                nxt += 1
            lines.append(f"{src} {dst} {tok} {WORDS[word] if i == 0 else 0}")
            src = dst
    lines.append("0")
    L = kaldifst.compile("\n".join(lines) + "\n")
    G = kaldifst.compile("".join(f"0 0 {WORDS[w]} {WORDS[w]} {c}\n" for w, c in G_COST.items()) + "0\n")
    kaldifst.arcsort(L, sort_type="olabel")
    LG = kaldifst.compose(L, G)
    kaldifst.arcsort(LG, sort_type="ilabel")
    return kaldifst.compose(H, LG)


def posteriors(frames: list[dict[int, float]]) -> np.ndarray:
    """(T, V) log-probs: each frame's given probabilities, the rest spread evenly."""
    out = np.zeros((len(frames), V))
    for t, probs in enumerate(frames):
        rest = (1.0 - sum(probs.values())) / (V - len(probs))
        out[t] = [probs.get(k, rest) for k in range(V)]
    return np.log(out).astype(np.float32)


# x, blank, (y 0.6 | z 0.38), blank, w: "xy w" acoustically, "xz w" with the LM
AMBIGUOUS = [{1: 0.96}, {0: 0.96}, {2: 0.6, 3: 0.38}, {0: 0.96}, {4: 0.96}]
FLIP = math.log(0.6 / 0.38) / (G_COST["xy"] - G_COST["xz"])  # about 0.228


@pytest.fixture(scope="module")
def lang(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lang")
    make_hlg().write(str(d / "HLG.fst"))
    (d / "words.txt").write_text("".join(f"{w} {i}\n" for w, i in WORDS.items()))
    return d


def test_decoded_lattice_keeps_costs_apart_and_flips(lang: Path) -> None:
    graph = kaldifst.StdConstFst(kaldifst.StdVectorFst.read(str(lang / "HLG.fst")))
    lp = posteriors(AMBIGUOUS)
    lat, reached_final = LatticeDecoder(graph, LatticeDecodeConfig(lm_weight=0.3)).decode(lp)
    assert reached_final
    arrays = LatticeArrays.from_lattice(lat)
    paths = best_paths(arrays, [FLIP - 0.05, FLIP + 0.05], [0.0])
    low, high = paths[(FLIP - 0.05, 0.0)], paths[(FLIP + 0.05, 0.0)]
    assert low.word_ids == [WORDS["xy"], WORDS["w"]]
    assert high.word_ids == [WORDS["xz"], WORDS["w"]]
    # costs come back in natural units, whatever the decode weight was
    peaked = -4 * math.log(0.96)
    assert math.isclose(low.graph_cost, 4.0, abs_tol=1e-4)
    assert math.isclose(low.acoustic_cost, peaked - math.log(0.6), abs_tol=1e-3)
    assert math.isclose(high.graph_cost, 2.0, abs_tol=1e-4)
    assert math.isclose(high.acoustic_cost, peaked - math.log(0.38), abs_tol=1e-3)


def test_decode_lattices_writes_rescorable_lattices(lang: Path, tmp_path: Path) -> None:
    weights = [0.1, 0.3, 0.5]
    cfg = LatticeDecodeConfig(lm_weight=middle_lm_weight(weights), beam=12.0, lattice_beam=6.0)
    clear = [{1: 0.96}, {0: 0.96}, {3: 0.96}, {0: 0.96}]  # "xz"
    items = [("u1", posteriors(AMBIGUOUS), 0.2), ("u2", posteriors(clear), 0.16)]
    set_dir = tmp_path / "ctc-hlg" / "dev"
    stats = decode_lattices(iter(items), lang / "HLG.fst", lang / "words.txt", set_dir, cfg, total=2)
    assert stats.num_utts == 2 and stats.num_empty == 0 and stats.rtf >= 0
    assert math.isclose(stats.audio_seconds, 0.36)
    scp = read_scp(set_dir / "lats" / "lattices.scp")
    assert list(scp) == ["u1", "u2"] and all(p.is_file() for p in scp.values())
    # the 1-best at w0 = 0.3 (above the flip) comes from the same lattices
    assert read_text(set_dir / "onebest.txt") == {"u1": ["xz", "w"], "u2": ["xz"]}
    res = rescore_lattices(scp, [0.1, 0.5], [0.0], invert(WORDS))
    assert res[(0.1, 0.0)]["u1"] == ["xy", "w"]
    assert res[(0.5, 0.0)]["u1"] == ["xz", "w"]
    assert res[(0.1, 0.0)]["u2"] == ["xz"]
    assert (set_dir / "lattice_decode.json").is_file()

    # two worker processes give the same lattices' best paths
    set2 = tmp_path / "ctc-hlg" / "dev2"
    cfg2 = LatticeDecodeConfig(lm_weight=0.3, num_jobs=2)
    many = [(f"u{i}", posteriors(AMBIGUOUS if i % 2 else clear), 0.2) for i in range(5)]
    decode_lattices(iter(many), lang / "HLG.fst", lang / "words.txt", set2, cfg2, total=5)
    one = read_text(set2 / "onebest.txt")
    assert list(one) == [f"u{i}" for i in range(5)]
    assert all(one[f"u{i}"] == (["xz", "w"] if i % 2 else ["xz"]) for i in range(5))

    # a failing run (bad input mid-way) leaves the earlier lattices in place
    before = sorted(p.name for p in (set_dir / "lats").iterdir())
    bad = [("u1", posteriors(AMBIGUOUS), 0.2), ("u1", posteriors(clear), 0.2)]  # repeated id
    with pytest.raises(GraftError, match="repeated utterance id"):
        decode_lattices(iter(bad), lang / "HLG.fst", lang / "words.txt", set_dir, cfg)
    assert sorted(p.name for p in (set_dir / "lats").iterdir()) == before
    (lang / "tokens.txt").write_text("".join(f"{t} {i}\n" for t, i in TOKENS.items()))
    try:
        with pytest.raises(GraftError, match="log-probs have 4 columns but .*tokens.txt has 5"):
            decode_lattices(iter([("u1", posteriors(clear)[:, :4], 0.2)]), lang / "HLG.fst", lang / "words.txt",
                            set_dir, cfg)
    finally:
        (lang / "tokens.txt").unlink()
    assert sorted(p.name for p in (set_dir / "lats").iterdir()) == before
    assert not [p for p in set_dir.iterdir() if p.name.startswith(".tmp")]


def hand_lattice() -> kaldifst.Lattice:
    """Two paths: word 1 (graph 1, acoustic 5) or words 2 3 (graph 3, acoustic 4)."""
    W, A = kaldifst.LatticeWeight, kaldifst.LatticeArc
    lat = kaldifst.Lattice()
    for _ in range(4):
        lat.add_state()
    lat.start = 0
    lat.add_arc(0, A(1, 1, W(1.0, 5.0), 1))
    lat.add_arc(0, A(2, 2, W(3.0, 4.0), 2))
    lat.add_arc(2, A(3, 3, W(0.0, 0.0), 1))
    lat.add_arc(1, A(0, 0, W(0.0, 0.0), 3))
    lat.set_final(3, W(0.0, 0.0))
    return lat


def test_hand_lattice_flip_and_insertion_penalty(tmp_path: Path) -> None:
    # cost(1) = w + 5 (+ p), cost(2 3) = 3w + 4 (+ 2p): equal at w = 0.5 when p = 0
    lat = hand_lattice()
    lat.write(str(tmp_path / "a.lat"))
    arrays = LatticeArrays.from_lattice(kaldifst.Lattice.read(str(tmp_path / "a.lat")))
    r = best_paths(arrays, [0.4, 0.6], [0.0, 0.3, -0.3])
    assert r[(0.4, 0.0)].word_ids == [2, 3]
    assert r[(0.6, 0.0)].word_ids == [1]
    assert r[(0.4, 0.3)].word_ids == [1]  # 5.2 + 0.6 > 5.4 + 0.3: the penalty removes a word
    assert r[(0.6, -0.3)].word_ids == [2, 3]  # 5.8 - 0.6 < 5.6 - 0.3: a bonus adds one
    assert (r[(0.4, 0.0)].graph_cost, r[(0.4, 0.0)].acoustic_cost) == (3.0, 4.0)
    empty = best_paths(LatticeArrays.from_lattice(kaldifst.Lattice()), [0.5], [0.0])[(0.5, 0.0)]
    assert not empty.found and empty.word_ids == []
    lat.add_arc(1, kaldifst.LatticeArc(1, 0, kaldifst.LatticeWeight(0.0, 0.0), 2))  # 2 -> 1 -> 2
    with pytest.raises(GraftError, match="cycle"):
        LatticeArrays.from_lattice(lat)


ARPA = """\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0 </s>
-99 <s> -0.5
-0.5 a -0.3
-0.7 b -0.2
-0.9 c -0.1

\\2-grams:
-0.2 <s> a
-0.3 a b
-0.4 b </s>

\\end\\
"""
LN10 = math.log(10)


@pytest.fixture(scope="module")
def word_lm(tmp_path_factory) -> WordLm:
    d = tmp_path_factory.mktemp("lm")
    (d / "lm.arpa").write_text(ARPA)
    (d / "words.txt").write_text("<eps> 0\na 1\nb 2\nc 3\nd 4\n#0 5\n<s> 6\n</s> 7\n")
    return WordLm.from_arpa(d / "lm.arpa", d / "words.txt", oov_cost=20.0)


def test_word_lm_costs_are_arpa_costs(word_lm: WordLm) -> None:
    assert math.isclose(word_lm.cost(["a", "b"]), 0.9 * LN10, abs_tol=1e-4)  # -0.2 -0.3 -0.4
    # "<s> c": back-off -0.5 + -0.9; "c </s>": back-off -0.1 + -1.0
    assert math.isclose(word_lm.cost(["c"]), 2.5 * LN10, abs_tol=1e-4)
    assert math.isclose(word_lm.cost(["a", "zzz", "b"]), 0.9 * LN10 + 20.0, abs_tol=1e-4)  # OOV
    # "d" is in words.txt but not in the ARPA: unreachable in G, so it costs oov_cost too
    assert math.isclose(word_lm.cost(["a", "d", "b"]), 0.9 * LN10 + 20.0, abs_tol=1e-4)


def test_nbest_rescoring_flip_penalty_and_round_trip(word_lm: WordLm, tmp_path: Path) -> None:
    lm_ab, lm_c = 0.9 * LN10, 2.5 * LN10
    flip = 1.0 / (lm_c - lm_ab)  # (-2 - w*lm_ab) = (-1 - w*lm_c)
    entry = NbestEntry("u1", [NbestHyp([1, 2], ["a", "b"], -2.0), NbestHyp([3], ["c"], -1.0)])
    path = tmp_path / "nbest.jsonl"
    write_nbest(path, [entry, NbestEntry("u2", [])])
    entries = read_nbest(path)
    assert entries[0] == entry and entries[1].hyps == []
    best = rescore_nbest(entries, word_lm, [flip - 0.02, flip + 0.02], [0.0])
    assert best[(flip - 0.02, 0.0)]["u1"] == ["c"]
    assert best[(flip + 0.02, 0.0)]["u1"] == ["a", "b"]
    assert best[(flip + 0.02, 0.0)]["u2"] == []
    # at LM weight 0: "c" (am -1) beats "a b" (am -2) unless words get a bonus of > 1 each
    pen = rescore_nbest(entries, None, [0.0], [0.5, -1.5])
    assert pen[(0.0, 0.5)]["u1"] == ["c"] and pen[(0.0, -1.5)]["u1"] == ["a", "b"]
    with pytest.raises(GraftError, match="needs G"):
        rescore_nbest(entries, None, [0.5], [0.0])


def test_hypotheses_with_the_same_words_are_log_added(word_lm: WordLm) -> None:
    id2token = {0: "<blk>", 1: "\u2581a", 2: "\u2581b", 3: "\u2581c", 4: "\u2581", 5: "c"}
    e = nbest_entry("u", [Hypothesis([3], -1.0), Hypothesis([4, 5], -1.2), Hypothesis([1, 2], -0.9)], id2token)
    assert [h.words for h in e.hyps] == [["c"], ["c"], ["a", "b"]]
    best = rescore_nbest([e], word_lm, [0.0], [0.0])
    assert best[(0.0, 0.0)]["u"] == ["c"]  # log(e^-1 + e^-1.2) = -0.40 > -0.9
    assert pieces_to_words(["\u2581he", "llo", "<unk>", "\u2581world"]) == ["hello", "world"]
