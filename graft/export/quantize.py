"""int8 dynamic quantization of exported ONNX files (onnxruntime), with size and speed figures.

Dynamic quantization stores MatMul/Gemm weights as int8 and quantizes activations at run
time; convolutions stay float. The metadata sherpa-onnx needs is copied to the new file.

Usage:
    q = quantize_int8("export/encoder.onnx")                  # -> export/encoder.int8.onnx
    speed = time_encoder("export/encoder.onnx", feature_dim=80, seconds=10.0)   # seconds per run
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from graft.export.onnx_io import add_metadata, read_metadata


def int8_name(path: str | os.PathLike) -> Path:
    """encoder.onnx -> encoder.int8.onnx"""
    path = Path(path)
    return path.with_name(path.stem + ".int8" + path.suffix)


def quantize_int8(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the int8 dynamic quantization of `path` (default name: <stem>.int8.onnx)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out) if out is not None else int8_name(path)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)       # the quantizer logs per node, and a pre-processing hint
    try:
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().setLevel(level)
    meta = read_metadata(path)
    if meta:
        add_metadata(out, {**meta, "quantization": "int8 dynamic (onnxruntime)"})
    return out


def time_encoder(path: str | os.PathLike, feature_dim: int = 80, seconds: float = 10.0,
                 num_threads: int = 1, repeats: int = 3) -> float:
    """Median wall time (s) of one run of an encoder/CTC file on `seconds` of random features."""
    from graft.export.verify import ort_session

    session = ort_session(path, num_threads)
    frames = int(seconds * 100)
    x = np.random.default_rng(0).normal(-10, 3, (1, frames, feature_dim)).astype(np.float32)
    feed = {session.get_inputs()[0].name: x, session.get_inputs()[1].name: np.array([frames], np.int64)}
    session.run(None, feed)                       # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
