"""Export a trained phykey LightningModule as an inference artefact loadable with plain torch
(docs/architecture.md section 6, docs/errors_and_runs.md).

One path for every family (:func:`export_module`): a ``torch.export`` program saved as ``.pt2``
(load with ``torch.export.load(path).module()``), metadata in the file's ``extra_files["metadata.json"]``
and optionally ONNX (dynamo exporter, needs ``onnxscript``).

* PKG-Net: input ``x [n, d]`` float32 raw physical features in ``metadata["input"]["feature_names"]``
  order and units; outputs real tensors with real/imaginary parts stacked last (``P [n, M, M, 2]``,
  ``theta [n, L, 2]``). ``metadata["input"]["feature_ranges"]`` holds each feature's valid range;
  a row with a non-finite or out-of-range feature gets NaN in every output (a check inside the
  graph), so it never comes back as a plausible design. The module's refinement (``models.refine``, gradient
  steps from the net's design) is exported with the net: one traced step run in ``torch.while_loop``
  (:func:`_trace_refinement_step`), so the graph's size does not grow with the steps; ``metadata["refinement"]``
  records it.
* KGNet (and its benchmark nets): input ``h1 [n, K, 2]`` float32, Alice's raw Band-1 CFR in the HDF5
  file's units with real and imaginary parts in the last dimension; the graph applies the realisation
  of 002 (13), the training split's min-max normalisation (002 (15), stored in the checkpoint), the
  net and the inverse normalisation, and returns ``h2 [n, K, 2]``, the predicted Band-2 CFR in the
  same units and layout. Non-finite input rows give NaN outputs.

Files are written to a temporary name in the target folder and renamed; they get the permissions
the user's umask gives a new file (not mkstemp's 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

METADATA_FILE = "metadata.json"


class _TupleOutputs(nn.Module):
    """PKG-Net wrapper: returns a tuple in a documented order; NaN for rows outside ``[low, high]``."""

    def __init__(self, net: nn.Module, output_names: list[str], low=None, high=None):
        super().__init__()
        self.net = net
        self.output_names = output_names
        self.check = low is not None
        if self.check:
            self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, x: torch.Tensor):
        out = self.net(x)
        if not self.check:
            return tuple(out[k] for k in self.output_names)
        ok = ((x >= self.low) & (x <= self.high)).all(dim=-1)  # NaN compares False
        res = []
        for k in self.output_names:
            v = out[k]
            mask = ok.reshape(ok.shape + (1,) * (v.dim() - 1))
            res.append(torch.where(mask, v, torch.full_like(v, float("nan"))))
        return tuple(res)


class _BandMap(nn.Module):
    """KGNet wrapper: raw Band-1 CFR ``[n, K, 2]`` -> predicted raw Band-2 CFR ``[n, K, 2]``."""

    def __init__(self, net: nn.Module, minimum: torch.Tensor, maximum: torch.Tensor):
        super().__init__()
        self.net = net
        lo = torch.as_tensor(minimum, dtype=torch.float32)
        span = torch.as_tensor(maximum, dtype=torch.float32) - lo
        span = torch.where(span > 0, span, torch.ones_like(span))
        self.register_buffer("lo", lo)
        self.register_buffer("span", span)

    def forward(self, h1: torch.Tensor) -> torch.Tensor:
        f1 = torch.cat((h1[..., 0], h1[..., 1]), dim=-1)  # 002 (13): (Re H, Im H)
        x1 = (f1 - self.lo[0]) / self.span[0]
        f2 = self.net(x1) * self.span[1] + self.lo[1]
        k = f2.shape[-1] // 2
        h2 = torch.stack((f2[..., :k], f2[..., k:]), dim=-1)
        ok = torch.isfinite(h1).all(dim=-1).all(dim=-1)
        return torch.where(ok[:, None, None], h2, torch.full_like(h2, float("nan")))


def _register_constants(graph: nn.Module) -> nn.Module:
    """Constants a ``make_fx`` trace captured (small tensors built in forward) are plain attributes of the graph
    module; ``torch.export`` keeps only registered state, so register them as buffers."""
    for name, value in list(vars(graph).items()):
        if isinstance(value, torch.Tensor) and name.startswith("_tensor_constant"):
            delattr(graph, name)
            graph.register_buffer(name, value)
    return graph


def _trace_refinement_step(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """One step of the in-graph refinement (:func:`physics.optim.unrolled_ascent`) as a graph.

    ``torch.export`` cannot trace a forward that calls ``torch.autograd.grad``; ``make_fx`` traces below
    autograd, so the step's gradient becomes ordinary aten nodes. The step is traced once, with a symbolic
    batch size, on the state and context the module's own forward builds, and :class:`_LoopedRefinement`
    runs it in ``torch.while_loop``: the exported graph holds one step whatever the step count (tracing the
    unrolled steps cost about 30 s per step of (27) and did not finish in 45 min for 40 steps)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from physics.optim import ascent_loop_runner

    graphs = []

    def capture(step, state, context, steps):
        if not graphs:
            # fresh tensors: make_fx gives one input to tensors that alias, and the step must keep them apart
            inputs = [v.clone() for v in (*state, *context)]
            graphs.append(make_fx(step, tracing_mode="symbolic")(*inputs))
        return state  # the forward's values are discarded: only the trace is wanted

    # symbolic tracing gives equal sizes one symbol ("duck sizing"): a batch of 2 would be tied to, and
    # specialised with, any design dimension of size 2. 1031 (prime) is the size of no dimension here.
    wide = example[:1].expand(1031, *example.shape[1:]).contiguous()
    with ascent_loop_runner(capture), torch.no_grad():
        module(wide)
    if not graphs:
        raise RuntimeError("the refinement is active, but the net's forward ran no refinement step")
    return _register_constants(graphs[0])


class _LoopedRefinement(nn.Module):
    """``module`` with its refinement steps run by ``torch.while_loop`` on the traced ``step`` graph."""

    def __init__(self, module: nn.Module, step: nn.Module):
        super().__init__()
        self.module = module
        self.step = step

    def forward(self, x: torch.Tensor):
        from physics.optim import ascent_loop_runner

        with ascent_loop_runner(self._loop):
            return self.module(x)

    def _loop(self, step, state, context, steps):
        from torch._higher_order_ops.while_loop import while_loop

        def cond(t, *rest):
            return t < steps

        def body(*carried):
            return tuple(self.step(*carried, *context))

        return while_loop(cond, body, tuple(state))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 minus the umask); nothing is
    left behind if ``write`` fails.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_export_path(path: str | os.PathLike, suffix: str, overwrite: bool = True) -> Path:
    """Validate an export target before any work is done: its folder must exist, suffix must match,
    and an existing file is refused unless ``overwrite``."""
    if not str(path).strip():
        raise ValueError(f"export path is empty; give a file name ending in {suffix!r}")
    p = Path(path)
    if p.suffix != suffix:
        raise ValueError(f"export path must end in {suffix!r}, got {str(p)!r}")
    if p.is_dir():
        raise ValueError(f"export path {str(p)!r} is a directory; give a file name ending in {suffix!r}")
    if not p.parent.exists() or not p.parent.is_dir():
        raise ValueError(f"export folder {str(p.parent)!r} does not exist; create it first")
    if p.exists() and not overwrite:
        raise ValueError(f"export path {str(p)!r} already exists; pass --overwrite true to replace it")
    return p


def _save(program, wrapped, example, dynamic, meta, path: Path, onnx_path: Path | None, input_name: str,
          output_names: list[str]) -> None:
    atomic_write(path, lambda tmp: torch.export.save(program, tmp, extra_files={METADATA_FILE: json.dumps(meta)}))
    if onnx_path is not None:
        def write_onnx(tmp: str) -> None:
            onnx_program = torch.onnx.export(wrapped, (example,), dynamo=True, input_names=[input_name],
                                             output_names=output_names, dynamic_shapes=dynamic)
            onnx_program.save(tmp)

        atomic_write(onnx_path, write_onnx)


def export_pkgnet(net: nn.Module, scenario, path: str | os.PathLike, onnx_path: str | os.PathLike | None = None,
                  extra_metadata: dict | None = None, refinement: nn.Module | None = None) -> dict:
    """Write ``net`` (PKGNet, built) followed by ``refinement`` (``models.refine``; None: the net alone) to ``path``
    (.pt2) and optionally ``onnx_path`` (.onnx); returns the metadata."""
    from models.refine import RefinedNet, describe_record

    path = check_export_path(path, ".pt2")
    refines = refinement is not None and refinement.active
    record = refinement.describe() if refinement is not None else None
    if onnx_path is not None:
        onnx_path = check_export_path(onnx_path, ".onnx")
        if refines:
            raise ValueError(f"ONNX export is not available for a net with in-graph refinement "
                             f"({describe_record(record)}): the ONNX exporter refuses the traced gradient steps' "
                             "complex linear algebra; export the .pt2 only (torch.export)")
    if refines:
        refinement.check(net.design_space, scenario)
    net = net.to("cpu", torch.float32).eval()
    if refines:
        net = RefinedNet(net, refinement).eval()
    d = len(scenario.feature_names)
    low, high = scenario.feature_bounds()
    example = torch.tensor([low], dtype=torch.float32).repeat(2, 1)
    output_names = list(scenario.describe()["outputs"])  # the contract's output names, in its order
    wrapped = _TupleOutputs(net, output_names, low, high).eval()
    batch = torch.export.Dim("batch")
    dynamic = {"x": {0: batch}}
    if refines:
        wrapped = _LoopedRefinement(wrapped, _trace_refinement_step(wrapped, example)).eval()
    program = torch.export.export(wrapped, (example,), dynamic_shapes=dynamic, strict=False)
    described = scenario.describe()
    shapes = ", ".join(f"{k} {['n', *v]}" for k, v in described.get("outputs", {}).items())
    meta = {
        **described,
        "family": "pkgnet",
        "input": {"name": "x", "shape": ["n", d], "dtype": "float32", "feature_names": list(scenario.feature_names),
                  "feature_units": list(scenario.feature_units),
                  "feature_ranges": [[float(a), float(b)] for a, b in zip(low, high, strict=True)]},
        "outputs_order": output_names,
        "output_layout": "real and imaginary parts stacked in the last dimension",
        "invalid_input": "a row with a non-finite feature or one outside feature_ranges gets NaN in every output",
        "torch_version": torch.__version__,
        "refinement": record,
        "summary": f"{described.get('scenario')}: input x [n, {d}] {list(scenario.feature_names)}; outputs {shapes}"
                   + (f"; refined in the graph by {describe_record(record)}" if refines else "")
                   + "; NaN outputs for out-of-range inputs",
        **(extra_metadata or {}),
    }
    _save(program, wrapped, example, dynamic, meta, path, onnx_path, "x", output_names)
    return meta


def export_kgnet(net: nn.Module, datamodule_state: dict, path: str | os.PathLike,
                 onnx_path: str | os.PathLike | None = None, extra_metadata: dict | None = None) -> dict:
    """Write a band map (KGNet or a benchmark net) with its realisation and normalisation to ``path``."""
    path = check_export_path(path, ".pt2")
    if onnx_path is not None:
        onnx_path = check_export_path(onnx_path, ".onnx")
    if not datamodule_state or "normalizer" not in datamodule_state:
        raise ValueError("the checkpoint holds no training-split normaliser (datamodule state); "
                         "it was not written by fit with DualBandDataModule")
    norm = datamodule_state["normalizer"]
    feature_dim = int(norm["minimum"].shape[1])
    k = feature_dim // 2
    net = net.to("cpu", torch.float32).eval()
    wrapped = _BandMap(net, norm["minimum"], norm["maximum"]).eval()
    example = torch.zeros(2, k, 2)
    dynamic = {"h1": {0: torch.export.Dim("batch")}}
    program = torch.export.export(wrapped, (example,), dynamic_shapes=dynamic)
    attrs = dict(datamodule_state.get("data_attrs") or {})
    meta = {
        "family": "kgnet",
        "net": type(net).__name__,
        "input": {"name": "h1", "shape": ["n", k, 2], "dtype": "float32",
                  "meaning": "Alice's raw Band-1 CFR in the HDF5 file's units; last dimension (real, imaginary)"},
        "output": {"name": "h2", "shape": ["n", k, 2], "dtype": "float32",
                   "meaning": "predicted Band-2 CFR in the same units and layout"},
        "num_subcarriers": k,
        "band1_carrier_hz": attrs.get("band1_carrier_hz"),
        "band2_carrier_hz": attrs.get("band2_carrier_hz"),
        "bandwidth_hz": attrs.get("bandwidth_hz"),
        "data_attrs": attrs,
        "realisation": "002 (13): features = (Re H_1..K, Im H_1..K)",
        "normalisation": {"kind": "min-max over the training split, 002 (14)-(15); span 0 -> 1",
                          "minimum": norm["minimum"].tolist(), "maximum": norm["maximum"].tolist()},
        "invalid_input": "a row with a non-finite value gets NaN in every output",
        "torch_version": torch.__version__,
        "summary": f"KGNet family ({type(net).__name__}): input h1 [n, {k}, 2] raw Band-1 CFR (real, imag); "
                   f"output h2 [n, {k}, 2] predicted Band-2 CFR in the same units",
        **(extra_metadata or {}),
    }
    _save(program, wrapped, example, dynamic, meta, path, onnx_path, "h1", ["h2"])
    return meta


def export_module(module, checkpoint: dict, path: str | os.PathLike, onnx_path: str | os.PathLike | None = None,
                  extra_metadata: dict | None = None) -> dict:
    """Export any phykey LightningModule (its weights already loaded) by its checkpoint record's family."""
    family = module.checkpoint_record().get("family") if hasattr(module, "checkpoint_record") else None
    if family == "kgnet":
        state = next((v for k, v in checkpoint.items() if k.endswith("DataModule") and isinstance(v, dict)), None)
        return export_kgnet(module.net, state or {}, path, onnx_path, extra_metadata)
    if hasattr(module, "scenario") and hasattr(module, "net"):
        return export_pkgnet(module.net, module.scenario, path, onnx_path, extra_metadata,
                             getattr(module, "refinement", None))
    raise ValueError(f"export supports phykey modules (PKG-Net, KGNet); {type(module).__name__} is neither")


def load_program(path: str | os.PathLike):
    """``(program, metadata)`` of a .pt2 artefact written by :func:`export_module` (plain torch:
    ``torch.export.load(path, extra_files=...)``). A file that is not one (another archive, text, a truncated
    copy, one without phykey metadata) is a ValueError naming the path, not a zipfile or JSON traceback."""
    extra = {METADATA_FILE: ""}
    try:
        program = torch.export.load(path, extra_files=extra)
        meta = json.loads(extra[METADATA_FILE])
    except Exception as e:  # BadZipFile, RuntimeError, KeyError, JSONDecodeError: all mean "not our artefact"
        raise ValueError(f"{str(path)!r} is not a .pt2 written by train.py export ({type(e).__name__}: "
                         f"{str(e)[:120]})") from e
    if not isinstance(meta, dict):
        raise ValueError(f"{str(path)!r} is not a .pt2 written by train.py export (no phykey metadata)")
    return program, meta


def load_metadata(path: str | os.PathLike) -> dict:
    """Metadata stored in a .pt2 artefact (see :func:`load_program`)."""
    return load_program(path)[1]
