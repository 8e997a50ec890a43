"""Kaldi-style result files for one (LM weight, insertion penalty) of one decode set.

In `<set>/scoring/` (labels from `graft.score.weights.weight_label`):
    hyp_<lmwt>_<wip>.txt   "<utt-id> words..."
    wer_<lmwt>_<wip>       %WER line, %SER line, "Scored N sentences, M not present in hyp."
    cer_<lmwt>_<wip>       the same for characters (%CER)
    per_utt_<lmwt>_<wip>   per utterance: ref / hyp / op / #csid lines, "***" for gaps (Kaldi's
                           wer_per_utt_details.pl layout)
    errors_<lmwt>_<wip>    the most frequent substitutions, deletions and insertions

Usage:
    files = result_files("0.7", "0.0", hyps, refs, word_detail, char_detail)
    for name, text in files.items(): ...
    counts = read_per_utt("exp/m/decode/ctc-hlg/test/scoring/per_utt_0.7_0.0")  # id -> (errors, ref words)
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from graft.data.kaldi_text import format_text
from graft.score.wer import ErrorCounts, ScoreDetail, UttAlignment
from graft.utils.errors import GraftError, require_file

GAP = "***"


def wer_file_text(counts: ErrorCounts, label: str = "WER") -> str:
    """The body of a Kaldi `wer_N` file."""
    return (
        f"{counts.kaldi_line(label)}\n{counts.ser_line()}\n"
        f"Scored {counts.sentences} sentences, {counts.missing} not present in hyp.\n"
    )


def per_utt_text(alignments: Sequence[UttAlignment]) -> str:
    """ref/hyp/op/#csid lines per utterance, columns padded to the widest entry."""
    lines: list[str] = []
    for a in alignments:
        refs = [GAP if r is None else r for r, _ in a.pairs]
        hyps = [GAP if h is None else h for _, h in a.pairs]
        ops = a.ops()
        widths = [max(len(r), len(h), len(o)) for r, h, o in zip(refs, hyps, ops)]

        def row(tag: str, cells: list[str]) -> str:
            body = "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
            return f"{a.utt_id} {tag:<4} {body}".rstrip()

        lines += [row("ref", refs), row("hyp", hyps), row("op", ops)]
        c, s, i, d = a.csid()
        lines.append(f"{a.utt_id} #csid {c} {s} {i} {d}")
    return "\n".join(lines) + ("\n" if lines else "")


def read_per_utt(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Utterance id -> (word errors, reference words) from the `#csid` lines of a per_utt file
    (errors = S + I + D, reference words = C + S + D), in file order."""
    path = require_file(path, what="per-utterance scoring file (written by steps/score.py, stage 7)")
    out: dict[str, tuple[int, int]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) < 2 or parts[1] != "#csid":
                continue
            try:
                if len(parts) != 6:
                    raise ValueError
                c, s, i, d = (int(x) for x in parts[2:])
            except ValueError:
                raise GraftError(f"{path}:{n}: a #csid line is '<utt-id> #csid C S I D', got {line.strip()!r}") from None
            if parts[0] in out:
                raise GraftError(f"{path}:{n}: utterance {parts[0]} appears twice")
            out[parts[0]] = (s + i + d, c + s + d)
    return out


def errors_text(detail: ScoreDetail, top: int = 30) -> str:
    """The `top` most frequent substitutions, deletions and insertions with their counts."""
    c = detail.counts
    out = [f"# {c.kaldi_line()}", "", f"SUBSTITUTIONS ({c.subs} in all): count  ref -> hyp"]
    for (r, h), n in _most_common(detail.substitutions, top):
        out.append(f"{n:7d}  {r} -> {h}")
    out += ["", f"DELETIONS ({c.dels} in all): count  ref"]
    for w, n in _most_common(detail.deletions, top):
        out.append(f"{n:7d}  {w}")
    out += ["", f"INSERTIONS ({c.ins} in all): count  hyp"]
    for w, n in _most_common(detail.insertions, top):
        out.append(f"{n:7d}  {w}")
    return "\n".join(out) + "\n"


def _most_common(counter, top: int):
    # ties broken by the item itself, so the files are reproducible
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def result_files(
    lmwt: str,
    wip: str,
    hyps: Mapping[str, Sequence[str]],
    ref_order: Sequence[str],
    words: ScoreDetail,
    chars: ScoreDetail,
    top_errors: int = 30,
) -> dict[str, str]:
    """File name -> contents for one (lmwt, wip) label pair."""
    tag = f"{lmwt}_{wip}"
    return {
        f"hyp_{tag}.txt": format_text({k: hyps.get(k, []) for k in ref_order}, ref_order),
        f"wer_{tag}": wer_file_text(words.counts, "WER"),
        f"cer_{tag}": wer_file_text(chars.counts, "CER"),
        f"per_utt_{tag}": per_utt_text(words.alignments),
        f"errors_{tag}": errors_text(words, top_errors),
    }
