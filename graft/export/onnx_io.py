"""torch -> ONNX for one export module, and the metadata sherpa-onnx reads.

torch 2.13's default exporter (torch.export/dynamo) needs `onnxscript`; the legacy
TorchScript exporter (`dynamo=False`, opset 17) needs nothing more than `onnx` and handles
graft's encoder once `rel_shift` and the positions trace (graft.model.attention). It is
deprecated in torch but still shipped; its warnings are silenced here.

Usage:
    path = export_onnx(EncoderModule(model), "encoder", out_dir / "encoder.onnx",
                       example_inputs("encoder", model))
    add_metadata(path, {"model_type": "conformer", "vocab_size": 150})
    read_metadata(path)        # {"model_type": "conformer", "vocab_size": "150"}
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from graft.export.modules import DYNAMIC_AXES, ONNX_NAMES
from graft.utils.errors import GraftError

OPSET = 17


def export_onnx(module: nn.Module, name: str, path: str | os.PathLike, args: tuple[torch.Tensor, ...],
                opset: int = OPSET) -> Path:
    """Trace `module` on `args` and write `path` with the names and dynamic axes of `name`."""
    path = Path(path)
    inputs, outputs = ONNX_NAMES[name]
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")          # TracerWarning (asserts), DeprecationWarning
        try:
            torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=DYNAMIC_AXES[name], opset_version=opset, dynamo=False,
                              do_constant_folding=True)
        except Exception as e:  # an exporter failure names the module, not only torch internals
            raise GraftError(f"ONNX export of the {name} failed: {type(e).__name__}: {e}") from e
    module.eval()
    return path


def add_metadata(path: str | os.PathLike, meta: Mapping[str, object]) -> None:
    """Set `metadata_props` of an ONNX file (values stored as strings), rewriting it in place."""
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in meta.items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = str(key), str(value)
    onnx.save(model, str(path))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
