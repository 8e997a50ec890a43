"""Check exported ONNX files against the torch model they came from (onnxruntime, CPU).

The encoder and CTC model are run on random 80-dim features of several lengths, one of them
over 60 s (6100 frames), and on a padded batch of two; the decoder on contexts that include
blank, -1 (icefall/sherpa-onnx's padding) and the largest token id; the joiner on random
vectors. For each output the largest absolute difference is recorded, and a float export
passes when every element is within `atol + rtol * |torch|`.

Usage:
    rows = verify_export(model, {"encoder": p_enc, "decoder": p_dec, "joiner": p_join, "ctc": p_ctc})
    rows[0]  # {"model": "encoder", "case": "T=100", "output": "encoder_out", "max_abs_diff": 2e-06, "ok": True}
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

import numpy as np
import torch

from graft.export.modules import ONNX_NAMES, export_modules
from graft.model.transducer import Transducer
from graft.utils.errors import GraftError

# feature frames (100 per second): 1 s, 7.33 s, 61 s
DEFAULT_LENGTHS = (100, 733, 6100)


def ort_session(path: str | os.PathLike, num_threads: int = 1):
    """An onnxruntime CPU session with `num_threads` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _cases(name: str, model: Transducer, lengths: Iterable[int]) -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(1)
    feat_dim = model.encoder.feature_dim
    if name in ("encoder", "ctc"):
        lengths = list(lengths)
        cases = [(f"T={t}", (torch.randn(1, t, feat_dim, generator=g) * 3 - 10, torch.tensor([t])))
                 for t in lengths]
        short, long_ = min(lengths), sorted(lengths)[len(lengths) // 2]
        batch = torch.randn(2, long_, feat_dim, generator=g) * 3 - 10
        cases.append((f"batch T={long_},{short}", (batch, torch.tensor([long_, short]))))
        return cases
    if name == "decoder":
        cs, v = model.decoder.context_size, model.vocab_size
        rows = [[0] * cs, [-1] * (cs - 1) + [0], [v - 1] * cs,
                *torch.randint(1, v, (5, cs), generator=g).tolist()]
        return [("contexts", (torch.tensor(rows, dtype=torch.int64),))]
    if name == "joiner":
        dim = model.joiner.output_linear.in_features
        return [("random", (torch.randn(16, dim, generator=g), torch.randn(16, dim, generator=g)))]
    raise ValueError(f"unknown export module {name!r}")


@torch.no_grad()
def verify_export(model: Transducer, paths: Mapping[str, str | os.PathLike],
                  lengths: Iterable[int] = DEFAULT_LENGTHS, atol: float = 1e-3, rtol: float = 1e-3,
                  strict: bool = True) -> list[dict]:
    """Compare each ONNX file in `paths` ({module name: file}) with torch; rows of figures.

    strict: raise GraftError naming the model, case and difference when one is out of tolerance
    (use strict=False for quantized files, whose differences are expected and only reported).
    """
    modules = export_modules(model)
    rows: list[dict] = []
    for name, path in paths.items():
        session = ort_session(path)
        inputs, outputs = ONNX_NAMES[name]
        for case, args in _cases(name, model, lengths):
            ref = modules[name](*args)
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = session.run(outputs, {k: a.numpy() for k, a in zip(inputs, args)})
            for out_name, r, o in zip(outputs, ref, got):
                r = r.numpy()
                if r.shape != o.shape:
                    raise GraftError(f"{path}: {out_name} has shape {o.shape} for {case}, torch gives {r.shape}")
                diff = np.abs(o.astype(np.float64) - r.astype(np.float64))
                ok = bool(np.all(diff <= atol + rtol * np.abs(r)))
                rows.append({"model": name, "case": case, "output": out_name,
                             "max_abs_diff": float(diff.max()) if diff.size else 0.0, "ok": ok})
                if strict and not ok:
                    raise GraftError(f"{path}: {out_name} differs from torch by up to {diff.max():.3g} "
                                     f"for {case} (tolerance {atol} + {rtol} * |value|): the export is wrong")
    return rows
