"""Best paths of saved lattices at many (LM weight, insertion penalty) pairs, without a model.

A lattice here is a `kaldifst.Lattice` whose arc weights keep the graph cost (`value1`, the
LM + lexicon cost from HLG) and the acoustic cost (`value2`, minus the CTC log-prob) apart, both
in natural-log units (`graft.decode.ctc_lattice` writes them so). The cost of a path at LM weight
`w` and word insertion penalty `p` is

    cost = w * graph_cost + acoustic_cost + p * num_words

(Kaldi's sign: a positive penalty makes words dearer, so fewer insertions; a negative one is a
bonus). All pairs are solved in one vectorized Viterbi pass over the topologically sorted arcs.

Usage:
    lat = read_lattice("exp/m/decode/ctc-hlg/dev/lats/000000.lat")
    arrays = LatticeArrays.from_lattice(lat)
    paths = best_paths(arrays, lm_weights=[0.3, 0.6], penalties=[0.0, 0.5])
    paths[(0.6, 0.0)].word_ids
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from graft.utils.errors import GraftError

if TYPE_CHECKING:
    import kaldifst


@dataclass
class PathResult:
    """The best path at one (LM weight, penalty): word ids and its two costs (natural log)."""

    word_ids: list[int]
    graph_cost: float
    acoustic_cost: float
    found: bool = True  # False when the lattice has no successful path


@dataclass
class LatticeArrays:
    """Arcs of one lattice as numpy arrays, plus a wave schedule for topological relaxation.

    `waves[i]` holds the arcs leaving the states that become final (all predecessors done) in
    step i of Kahn's algorithm; relaxing the waves in order is a Viterbi pass.
    """

    num_states: int
    start: int
    src: np.ndarray  # (E,) int64
    dst: np.ndarray  # (E,) int64
    olabel: np.ndarray  # (E,) int64, word ids (0 = epsilon)
    graph: np.ndarray  # (E,) float64
    acoustic: np.ndarray  # (E,) float64
    final_graph: np.ndarray  # (S,) float64, inf where not final
    final_acoustic: np.ndarray  # (S,) float64
    waves: list[np.ndarray]

    @classmethod
    def from_lattice(cls, lat: "kaldifst.Lattice") -> "LatticeArrays":
        """Parse a `kaldifst.Lattice` (through its text form: kaldifst cannot iterate Lattice arcs)."""
        text = lat.to_str(show_weight_one=True, fst_field_separator="\t")
        return cls.from_text(text, num_states=lat.num_states, start=lat.start)

    @classmethod
    def from_text(cls, text: str, num_states: int, start: int) -> "LatticeArrays":
        """Parse tab-separated OpenFst text: `src dst ilabel olabel g,a` and `state g,a` lines."""
        arc_lines: list[str] = []
        finals: list[list[str]] = []
        for line in text.splitlines():
            tabs = line.count("\t")
            if tabs == 4:
                arc_lines.append(line)
            elif tabs in (0, 1) and line.strip():
                finals.append(line.replace(",", "\t").split())
            elif line.strip():
                raise GraftError(f"unexpected lattice text line {line!r}")
        flat = np.fromstring(" ".join(arc_lines).replace(",", " ").replace("\t", " "), dtype=np.float64, sep=" ")
        if flat.size % 6:
            raise GraftError("lattice arcs without a (graph,acoustic) weight pair")
        table = flat.reshape(-1, 6)
        src = table[:, 0].astype(np.int64)
        dst = table[:, 1].astype(np.int64)
        olabel = table[:, 3].astype(np.int64)
        graph = np.ascontiguousarray(table[:, 4])
        acoustic = np.ascontiguousarray(table[:, 5])
        final_graph = np.full(num_states, np.inf)
        final_acoustic = np.full(num_states, np.inf)
        for fields in finals:
            s = int(fields[0])
            if len(fields) not in (1, 3):
                raise GraftError(f"unexpected lattice final-state line {fields!r}")
            final_graph[s] = float(fields[1]) if len(fields) == 3 else 0.0
            final_acoustic[s] = float(fields[2]) if len(fields) == 3 else 0.0
        waves = _waves(num_states, src, dst) if num_states else []
        return cls(num_states, start, src, dst, olabel, graph, acoustic, final_graph, final_acoustic, waves)

    @property
    def num_arcs(self) -> int:
        return int(self.src.shape[0])


def _waves(num_states: int, src: np.ndarray, dst: np.ndarray) -> list[np.ndarray]:
    """Kahn's algorithm, vectorized: the arcs leaving each successive wave of ready states."""
    order = np.argsort(src, kind="stable")
    out_deg = np.bincount(src, minlength=num_states)
    offsets = np.concatenate([[0], np.cumsum(out_deg)])
    indeg = np.bincount(dst, minlength=num_states)
    ready = np.nonzero(indeg == 0)[0]
    waves: list[np.ndarray] = []
    processed = 0
    while ready.size:
        processed += ready.size
        counts = out_deg[ready]
        total = int(counts.sum())
        if total == 0:
            break
        # the arc indices offsets[s] .. offsets[s] + deg(s) - 1 of every ready state, concatenated
        shift = offsets[ready] - np.concatenate([[0], np.cumsum(counts)[:-1]])
        arcs = order[np.repeat(shift, counts) + np.arange(total)]
        waves.append(arcs)
        uniq, dec = np.unique(dst[arcs], return_counts=True)
        indeg[uniq] -= dec
        ready = uniq[indeg[uniq] == 0]
    if processed < num_states:
        raise GraftError("lattice has a cycle: cannot find best paths on it")
    return waves


def best_paths(
    arrays: LatticeArrays, lm_weights: Sequence[float], penalties: Sequence[float] = (0.0,)
) -> dict[tuple[float, float], PathResult]:
    """The best path for every (LM weight, penalty) pair, solved together (see module docstring)."""
    pairs = [(float(w), float(p)) for w in lm_weights for p in penalties]
    if not pairs:
        return {}
    w = np.array([x[0] for x in pairs])
    p = np.array([x[1] for x in pairs])
    k = len(pairs)
    s_count = arrays.num_states
    empty = {pair: PathResult([], float("inf"), float("inf"), found=False) for pair in pairs}
    if s_count == 0 or arrays.start < 0:
        return empty
    is_word = (arrays.olabel != 0).astype(np.float64)
    cost = arrays.graph[:, None] * w[None, :] + arrays.acoustic[:, None] + is_word[:, None] * p[None, :]
    dist = np.full((s_count, k), np.inf)
    dist[arrays.start] = 0.0
    for arcs in arrays.waves:
        cand = dist[arrays.src[arcs]] + cost[arcs]
        np.minimum.at(dist, arrays.dst[arcs], cand)
    with np.errstate(invalid="ignore"):
        final_cost = arrays.final_graph[:, None] * w[None, :] + arrays.final_acoustic[:, None]
    final_cost = np.where(np.isfinite(arrays.final_graph)[:, None], final_cost, np.inf)
    total = dist + final_cost
    best_state = np.argmin(total, axis=0)  # (K,)
    cols = np.arange(k)
    found = np.isfinite(total[best_state, cols])
    # Back-pointers: an arc is tight when it reproduces its destination's distance exactly
    # (the forward pass computed that minimum with the very same float operations).
    back = np.full((s_count, k), -1, dtype=np.int64)
    tight_arc, tight_col = np.nonzero(
        (dist[arrays.src] + cost == dist[arrays.dst]) & np.isfinite(dist[arrays.dst])
    )
    back[arrays.dst[tight_arc], tight_col] = tight_arc
    back[arrays.start] = -1
    labels: list[list[int]] = [[] for _ in range(k)]
    graph_cost = np.where(found, arrays.final_graph[best_state], np.inf)
    ac_cost = np.where(found, arrays.final_acoustic[best_state], np.inf)
    cur = best_state.copy()
    alive = found.copy()
    steps = 0
    while alive.any():
        arc = back[cur, cols]
        alive &= arc >= 0
        if not alive.any():
            break
        idx = np.nonzero(alive)[0]
        a = arc[idx]
        for col, lab in zip(idx.tolist(), arrays.olabel[a].tolist()):
            if lab:
                labels[col].append(lab)
        graph_cost[idx] += arrays.graph[a]
        ac_cost[idx] += arrays.acoustic[a]
        cur[idx] = arrays.src[a]
        steps += 1
        if steps > arrays.num_arcs + 1:
            raise GraftError("lattice back-trace did not terminate (corrupt lattice?)")
    out: dict[tuple[float, float], PathResult] = {}
    for col, pair in enumerate(pairs):
        if not found[col]:
            out[pair] = empty[pair]
        else:
            out[pair] = PathResult(labels[col][::-1], float(graph_cost[col]), float(ac_cost[col]))
    return out


def read_lattice(path: str | os.PathLike) -> "kaldifst.Lattice":
    """Read one binary `kaldifst.Lattice`; GraftError naming the file when it is missing or bad."""
    import kaldifst

    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing lattice file {path}")
    lat = kaldifst.Lattice.read(str(path))
    if lat is None:
        raise GraftError(f"cannot read lattice {path} (not a kaldifst Lattice file)")
    return lat


def read_scp(path: str | os.PathLike) -> dict[str, Path]:
    """Read `<utt-id> <relative path>` lines; paths are resolved against the scp's folder."""
    path = Path(path)
    if not path.is_file():
        raise GraftError(f"missing lattice index {path}")
    out: dict[str, Path] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise GraftError(f"{path}:{n}: expected '<utt-id> <file>', got {line!r}")
        out[fields[0]] = path.parent / fields[1].strip()
    return out


def rescore_lattice_file(
    path: str | os.PathLike, lm_weights: Sequence[float], penalties: Sequence[float]
) -> dict[tuple[float, float], PathResult]:
    """Read one saved lattice and return its best paths at every pair."""
    return best_paths(LatticeArrays.from_lattice(read_lattice(path)), lm_weights, penalties)


def _rescore_task(args: tuple[str, str, list[float], list[float]]):
    utt_id, path, weights, penalties = args
    res = rescore_lattice_file(path, weights, penalties)
    return utt_id, {pair: r.word_ids for pair, r in res.items()}


def rescore_lattices(
    scp: dict[str, Path],
    lm_weights: Sequence[float],
    penalties: Sequence[float],
    id2word: dict[int, str],
    num_jobs: int = 1,
    desc: str = "rescore lattices",
) -> dict[tuple[float, float], dict[str, list[str]]]:
    """Best word sequence of every lattice in `scp` at every pair: {(w, p): {utt: words}}."""
    from tqdm import tqdm

    weights = [float(x) for x in lm_weights]
    pens = [float(x) for x in penalties]
    tasks = [(utt, str(path), weights, pens) for utt, path in scp.items()]
    results: dict[str, dict[tuple[float, float], list[int]]] = {}
    if num_jobs <= 1 or len(tasks) < 2:
        for task in tqdm(tasks, desc=desc, unit="lat", leave=False):
            utt, res = _rescore_task(task)
            results[utt] = res
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(num_jobs, mp_context=mp.get_context("fork")) as ex:
            it = ex.map(_rescore_task, tasks, chunksize=max(1, len(tasks) // (8 * num_jobs)))
            for utt, res in tqdm(it, total=len(tasks), desc=desc, unit="lat", leave=False):
                results[utt] = res
    out: dict[tuple[float, float], dict[str, list[str]]] = {}
    for w in weights:
        for p in pens:
            out[(w, p)] = {
                utt: [_word(id2word, i) for i in results[utt][(w, p)]] for utt in scp
            }
    return out


def _word(id2word: dict[int, str], i: int) -> str:
    try:
        return id2word[i]
    except KeyError:
        raise GraftError(f"lattice word id {i} is not in words.txt (lattices from another lang dir?)")
