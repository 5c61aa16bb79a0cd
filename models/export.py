"""Export a trained PKG-Net as an inference artefact loadable with plain torch (docs/architecture.md section 6).

Main format: ``torch.export`` program saved as ``.pt2`` (load with ``torch.export.load(path).module()``).
Input ``x [n, d]`` float32 raw physical features in ``metadata["feature_names"]`` order and units;
outputs real tensors with real/imaginary parts stacked last (``P [n, M, M, 2]``, ``theta [n, L, 2]``).
The metadata (scenario, M, L, feature order and units, output layout) is stored in the file's
``extra_files["metadata.json"]``. ONNX (dynamo exporter, needs ``onnxscript``) is optional.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

METADATA_FILE = "metadata.json"


class _TupleOutputs(nn.Module):
    """Wraps the net so the exported program returns a tuple in a documented order."""

    def __init__(self, net: nn.Module, output_names: list[str]):
        super().__init__()
        self.net = net
        self.output_names = output_names

    def forward(self, x: torch.Tensor):
        out = self.net(x)
        return tuple(out[k] for k in self.output_names)


def check_export_path(path: str | os.PathLike, suffix: str) -> Path:
    """Validate an export target before any work is done: its folder must exist, suffix must match."""
    p = Path(path)
    if p.suffix != suffix:
        raise ValueError(f"export path must end in {suffix!r}, got {str(p)!r}")
    if not p.parent.exists() or not p.parent.is_dir():
        raise ValueError(f"export folder {str(p.parent)!r} does not exist; create it first")
    return p


def export_pkgnet(net: nn.Module, scenario, path: str | os.PathLike, onnx_path: str | os.PathLike | None = None,
                  extra_metadata: dict | None = None) -> dict:
    """Write ``net`` (PKGNet, built) to ``path`` (.pt2) and optionally ``onnx_path`` (.onnx).

    Files are written to a temporary name in the same folder and renamed, so an existing artefact
    is never left half-written. Returns the metadata.
    """
    path = check_export_path(path, ".pt2")
    if onnx_path is not None:
        onnx_path = check_export_path(onnx_path, ".onnx")
    net = net.to("cpu", torch.float32).eval()
    d = len(scenario.feature_names)
    example = torch.tensor([scenario.feature_bounds()[0]], dtype=torch.float32).repeat(2, 1)
    output_names = list(scenario.describe()["outputs"])  # the contract's output names, in its order
    wrapped = _TupleOutputs(net, output_names).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(wrapped, (example,), dynamic_shapes={"x": {0: batch}})
    meta = {
        **scenario.describe(),
        "input": {"name": "x", "shape": ["n", d], "dtype": "float32", "feature_names": list(scenario.feature_names),
                  "feature_units": list(scenario.feature_units)},
        "outputs_order": output_names,
        "output_layout": "real and imaginary parts stacked in the last dimension",
        "torch_version": torch.__version__,
        **(extra_metadata or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".pt2")
    os.close(fd)
    try:
        torch.export.save(program, tmp, extra_files={METADATA_FILE: json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if onnx_path is not None:
        fd, tmp = tempfile.mkstemp(dir=onnx_path.parent, prefix=".partial-", suffix=".onnx")
        os.close(fd)
        try:
            onnx_program = torch.onnx.export(wrapped, (example,), dynamo=True, input_names=["x"],
                                             output_names=output_names, dynamic_shapes={"x": {0: batch}})
            onnx_program.save(tmp)
            os.replace(tmp, onnx_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return meta


def load_metadata(path: str | os.PathLike) -> dict:
    """Metadata stored in a .pt2 artefact (plain torch: ``torch.export.load(path, extra_files=...)``)."""
    extra = {METADATA_FILE: ""}
    torch.export.load(path, extra_files=extra)
    return json.loads(extra[METADATA_FILE])
