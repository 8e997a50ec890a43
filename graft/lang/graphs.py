"""Decoding graphs with kaldifst: G (kaldilm), L with disambiguation, LG, H (CTC topology), HLG.

Labels. Graph input labels are *token id + 1* (kaldi_decoder reads acoustic column
ilabel - 1; label 0 is epsilon), so the blank `<blk>` (id 0) is label 1. Disambiguation
symbols `#0..#K` on the token side are labels V+1 .. V+1+K (V = vocab size); they are turned
into epsilon in the final HLG. Output labels are word ids of words.txt. G's back-off arcs
carry the word-side `#0` on input; L has a `#0:#0` self-loop so they pass through L.

Recipe (Kaldi style; see shared notes lattices.md): LG = minimize_encoded(determinize_star(
L o G)); HLG = arcsort(minimize_encoded(relabel_disambig_to_eps(determinize_star(H o LG)))),
with H the standard CTC topology carrying `#k:#k` self-loops on every state.

Back-off arcs are plain arcs once `#0` is epsilon, so a path may back off even where the
n-gram exists; with Kneser-Ney that path is often cheaper. The best graph path's LM cost is
then below the ARPA cost (sentence_cost gives the exact one).

Usage:
    G = make_g("lm_3gram.arpa", "words.txt", "G.fst")
    L = make_lexicon_fst(lexicon_disambig, token_ids, word_ids, vocab_size)
    LG = compose_lg(L, G)
    H = make_ctc_topo(vocab_size, num_disambig)
    HLG = compose_hlg(H, LG, first_disambig=vocab_size + 1)
    HLG.write("HLG.fst"); print(fst_size(HLG))
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from typing import Mapping, Sequence

import kaldifst

from graft.utils.errors import GraftError


def token_label(token_id: int) -> int:
    """Graph input label of a token (its id + 1)."""
    return token_id + 1


def disambig_label(k: int, vocab_size: int) -> int:
    """Graph input label of the token-side disambiguation symbol `#k`."""
    return vocab_size + 1 + k


_NUM = r"\d{1,9}"  # states and labels: non-negative, far below OpenFst's int32 limit
_WEIGHT = r"-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|Infinity|inf"
_LINE = rf"{_NUM}(?:[ \t]+{_NUM}[ \t]+{_NUM}[ \t]+{_NUM})?(?:[ \t]+(?:{_WEIGHT}))?[ \t]*"
_BAD_LINE = re.compile(rf"^(?!{_LINE}$).*$", re.M)


def validate_fst_text(text: str) -> None:
    """Check OpenFst text format (integer labels) before compiling; raise GraftError if bad.

    Each line is `src dst ilabel olabel [weight]` or `state [final weight]`.
    kaldifst.compile aborts the whole process on bad input, so nothing reaches it unchecked.
    """
    if not text.strip():
        raise GraftError("FST text is empty")
    body = text[:-1] if text.endswith("\n") else text
    bad = _BAD_LINE.search(body)
    if bad is not None:
        n = body.count("\n", 0, bad.start()) + 1
        raise GraftError(f"bad FST text at line {n}: {bad.group(0)[:200]!r}")


def compile_fst(text: str) -> kaldifst.StdVectorFst:
    """Validate, then compile OpenFst text (integer labels) into a StdVectorFst."""
    validate_fst_text(text)
    return kaldifst.compile(text)


def make_g(
    arpa_path: str | os.PathLike,
    words_path: str | os.PathLike,
    g_path: str | os.PathLike,
) -> kaldifst.StdVectorFst:
    """Write G.fst from the ARPA LM with kaldilm (back-off arcs `#0:<eps>`) and load it.

    words.txt must hold every ARPA word (kaldilm drops missing ones silently: the caller
    checks), plus `#0`, `<s>`, `</s>`.
    """
    # In a child process: kaldilm prints progress on C++ stderr that Python cannot silence,
    # and a FATAL on a bad ARPA would otherwise end this process.
    code = (
        "import sys, kaldilm; kaldilm.arpa2fst(input_arpa=sys.argv[1], output_fst=sys.argv[2], "
        "disambig_symbol='#0', read_symbol_table=sys.argv[3])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(arpa_path), str(g_path), str(words_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if proc.returncode != 0 or not os.path.exists(g_path):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise GraftError(f"kaldilm.arpa2fst failed on {arpa_path}: " + " | ".join(tail))
    g = kaldifst.StdVectorFst.read(str(g_path))
    if g is None or g.num_states == 0:
        raise GraftError(f"kaldilm wrote an empty G from {arpa_path}")
    return g


def make_lexicon_fst(
    lexicon: Sequence[tuple[str, Sequence[str]]],
    token_ids: Mapping[str, int],
    word_ids: Mapping[str, int],
    vocab_size: int,
) -> kaldifst.StdVectorFst:
    """L: token labels (+ `#k`) in, word ids out; one loop state; `#0:#0` self-loop for G's back-off.

    `lexicon` spellings may end in disambiguation symbols `#1..#K` (lexicon.add_disambig).
    """

    def in_label(sym: str) -> int:
        if sym.startswith("#") and sym[1:].isdigit():
            return disambig_label(int(sym[1:]), vocab_size)
        if sym not in token_ids:
            raise GraftError(f"lexicon piece {sym!r} is not in tokens.txt")
        return token_label(token_ids[sym])

    lines = []
    next_state = 1
    for word, pieces in lexicon:
        if word not in word_ids:
            raise GraftError(f"lexicon word {word!r} is not in words.txt")
        labels = [in_label(p) for p in pieces]
        if not labels:
            raise GraftError(f"lexicon word {word!r} has no pieces")
        src, out = 0, word_ids[word]
        for i, label in enumerate(labels):
            dst = 0 if i == len(labels) - 1 else next_state
            if dst:
                next_state += 1
            lines.append(f"{src} {dst} {label} {out}")
            src, out = dst, 0
    lines.append(f"0 0 {disambig_label(0, vocab_size)} {word_ids['#0']}")
    lines.append("0")
    return compile_fst("\n".join(lines) + "\n")


def make_ctc_topo(vocab_size: int, num_disambig: int) -> kaldifst.StdVectorFst:
    """H: the standard CTC topology over `vocab_size` tokens (blank 0), labels token id + 1.

    State s = last token read (0: blank or start). Reading t: t == s stays (a repeat, no
    output); otherwise go to state t and output t (nothing for blank). Every state is final
    and carries `#k:#k` self-loops for k < num_disambig.
    """
    lines = []
    for s in range(vocab_size):
        for t in range(vocab_size):
            if t == s:
                lines.append(f"{s} {s} {t + 1} 0")
            else:
                lines.append(f"{s} {t} {t + 1} {t + 1 if t else 0}")
        for k in range(num_disambig):
            d = disambig_label(k, vocab_size)
            lines.append(f"{s} {s} {d} {d}")
    lines.extend(str(s) for s in range(vocab_size))
    return compile_fst("\n".join(lines) + "\n")


def _determinize(fst: kaldifst.StdVectorFst, what: str) -> None:
    if kaldifst.determinize_star(fst):
        raise GraftError(f"determinization of {what} stopped early")


def compose_lg(L: kaldifst.StdVectorFst, G: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    """LG = arcsort(minimize_encoded(determinize_star(L o G))). Sorts L and G in place."""
    kaldifst.arcsort(L, sort_type="olabel")
    kaldifst.arcsort(G, sort_type="ilabel")
    lg = kaldifst.compose(L, G)
    _determinize(lg, "LG")
    kaldifst.minimize_encoded(lg)
    kaldifst.arcsort(lg, sort_type="ilabel")
    return lg


def compose_hlg(
    H: kaldifst.StdVectorFst, LG: kaldifst.StdVectorFst, first_disambig: int
) -> kaldifst.StdVectorFst:
    """HLG from H and LG: compose, determinize_star, disambig labels -> eps, minimize, arcsort."""
    kaldifst.arcsort(H, sort_type="olabel")
    kaldifst.arcsort(LG, sort_type="ilabel")
    hlg = kaldifst.compose(H, LG)
    _determinize(hlg, "HLG")
    hlg = remove_input_labels(hlg, first_disambig)
    kaldifst.minimize_encoded(hlg)
    kaldifst.arcsort(hlg, sort_type="ilabel")
    return hlg


def remove_input_labels(fst: kaldifst.StdFst, first: int) -> kaldifst.StdVectorFst:
    """A copy of `fst` whose input labels >= `first` are epsilon.

    Goes through text on purpose: editing arcs in place leaves stale property bits
    (shared notes, pitfall 2), and a freshly compiled FST has none.
    """

    def relabel(m: re.Match) -> str:
        return m.group(1) + "0" if int(m.group(2)) >= first else m.group(0)

    return compile_fst(_ARC_ILABEL.sub(relabel, fst.to_str()))


_ARC_ILABEL = re.compile(r"^(\d+[ \t]+\d+[ \t]+)(\d+)(?=[ \t]+\d)", re.M)


class BackoffG:
    """Walk G word by word as the ARPA model does (exact costs, natural log, negated).

    From a state, a word takes its arc if the state has one; otherwise the back-off arc is
    followed (its cost added) and the word is tried again from there. The end of the sentence
    takes the state's final weight the same way. Arcs of a state are read once and cached.
    The cheapest path through G (what composition or a decoder finds) can be cheaper: with
    Kneser-Ney, backing off past a seen n-gram often costs less than the n-gram itself.

    Usage:
        g = BackoffG(kaldifst.StdVectorFst.read("lm_3gram/G.fst"), backoff_label=words["#0"])
        cost, state = g.step(g.start, words["dobrý"])    # inf, -1 if G cannot take the word
        total = cost + g.final_cost(state)
    """

    def __init__(self, G: kaldifst.StdFst, backoff_label: int) -> None:
        self.G = G
        self.backoff = int(backoff_label)
        self.start = int(G.start)
        self._arcs: dict[int, dict[int, tuple[float, int]]] = {}

    def arcs(self, state: int) -> dict[int, tuple[float, int]]:
        """{input label: (cost, next state)} of a state (the first arc of each label)."""
        out = self._arcs.get(state)
        if out is None:
            out = {}
            it = kaldifst.ArcIterator(self.G, state)
            while not it.done:
                a = it.value
                out.setdefault(a.ilabel, (a.weight.value, a.nextstate))
                it.next()
            self._arcs[state] = out
        return out

    def step(self, state: int, word_id: int) -> tuple[float, int]:
        """(cost, next state) of one word from `state`; (inf, -1) if G cannot take it."""
        total = 0.0
        while True:
            here = self.arcs(state)
            hit = here.get(word_id)
            if hit is not None:
                return total + hit[0], hit[1]
            back = here.get(self.backoff)
            if back is None:
                return math.inf, -1
            total += back[0]
            state = back[1]

    def final_cost(self, state: int) -> float:
        """Cost of ending the sentence in `state` (backing off as needed); inf if it cannot."""
        total = 0.0
        while True:
            final = self.G.final(state).value
            if math.isfinite(final):
                return total + final
            back = self.arcs(state).get(self.backoff)
            if back is None:
                return math.inf
            total += back[0]
            state = back[1]


def sentence_cost(G: kaldifst.StdFst, word_ids: Sequence[int], backoff_label: int) -> float:
    """The exact ARPA cost (natural log, negated) of a sentence in G, or inf if G rejects it.

    Follows a back-off arc only when the state has no arc for the word (or no final weight
    for the end), as the ARPA model does (see BackoffG). Meant for checks and n-best
    rescoring, not for speed.
    """
    g = BackoffG(G, backoff_label)
    state, total = g.start, 0.0
    for w in word_ids:
        cost, state = g.step(state, w)
        if not math.isfinite(cost):
            return math.inf
        total += cost
    return total + g.final_cost(state)


def fst_size(fst: kaldifst.StdFst, path: str | os.PathLike | None = None) -> dict:
    """States, arcs and (if `path` is given, the file's) MB of an FST."""
    n = fst.num_states
    info = {"states": n, "arcs": sum(fst.num_arcs(s) for s in range(n))}
    if path is not None:
        info["mb"] = round(os.path.getsize(path) / 2**20, 2)
    return info
