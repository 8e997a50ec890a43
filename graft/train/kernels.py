"""Keep oneDNN's kernels for many batch shapes: a larger primitive cache for bf16 training.

Usage:
    from graft.train.kernels import enlarge_kernel_cache
    log.info(enlarge_kernel_cache())     # before the process runs its first bf16 product

Why: under bf16 autocast on a CPU, torch runs matrix products and convolutions through oneDNN,
which builds (JIT-compiles) a kernel, a "primitive", for every shape it meets and keeps the last
1024 in a cache. A training step of the `small` model needs a few dozen primitives, and the
bucketed batches take many shapes, so with the default capacity the cache thrashes and every
step pays for new kernels: on the project's machine a new shape cost ~0.6 ms per product
against ~0.8 ms for the product itself, and the demo's loop ran no faster in bf16 than in fp32
(bench/bench_train.py). A capacity of 16384, with batch frames padded to a multiple of 32
(`pad_frames_to`, graft.train.data.AsrDataset), lets the shapes of an epoch stay cached.
fp32 products go through other kernels and are not affected.

oneDNN reads ONEDNN_PRIMITIVE_CACHE_CAPACITY when it first uses its cache, so the variable is
set here (unless the user set it) and works when this runs before the first oneDNN product of
the process; after that it changes nothing.
"""
from __future__ import annotations

import os

CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
CACHE_CAPACITY = 16384


def enlarge_kernel_cache(capacity: int = CACHE_CAPACITY) -> str:
    """Set oneDNN's primitive cache capacity (unless already set); returns a line for the log."""
    if CACHE_VARIABLE in os.environ:
        return f"oneDNN kernel cache: {os.environ[CACHE_VARIABLE]} shapes ({CACHE_VARIABLE} set by the user)"
    os.environ[CACHE_VARIABLE] = str(capacity)
    return f"oneDNN kernel cache: {capacity} primitives (default 1024; batches take many shapes)"
