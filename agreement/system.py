"""The adapter contract between a physical system and the key pipeline, and the run that joins them.

A *system* (:class:`System`) is built from a training config's scenario (or, for KGNet, its data module and
module), an operating point and a design (an analytic one by name, or a trained net: a checkpoint's module or
a ``.pt2`` export). It simulates probing rounds of Alice, Bob and Eve (:meth:`System.observations`) and states
what only the model knows: the SKR bound and, where there is one, a closed-form bound on Eve's information per
probe. :func:`run_system` hands two independent runs (calibration and key run) to
:func:`keygen.pipeline.run_pipeline` and returns its report with the system's description in front.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import torch

from keygen.pipeline import Observations, quantiser_settings, run_pipeline

__all__ = ["Learned", "System", "check_export_scenario", "learned_from_export", "learned_from_module", "run_system"]

#: a trained design: raw features ``[n, d]`` float32 -> the design space's outputs (real tensors, by name)
Learned = Callable[[torch.Tensor], dict[str, torch.Tensor]]


class System:
    """Adapter contract: sample observations for the chosen design, state the SKR bound and Eve's leak.

    ``observations(n, seed)`` -> :class:`keygen.pipeline.Observations`; ``skr_bound()`` -> ``dict`` with at
    least ``skr_bound_bits`` (bits per probe) and ``kind``; ``eve_leak_bits_per_probe()`` -> a closed-form upper
    bound on ``I(Alice's observation; Eve's observation)`` per probe, or ``None`` (then the pipeline estimates
    it); ``describe()`` -> plain-type description (``system``, ``design``, ...); ``default_quantiser`` -> dict.
    """

    name = "system"
    default_quantiser: dict[str, Any] = {}
    #: the default probe counts of a run (calibration, key run); ``None``: the system's own (KGNet: every user)
    default_probes: int | None = 20000

    def observations(self, n: int, seed: int) -> Observations:
        raise NotImplementedError

    def skr_bound(self) -> dict[str, Any]:
        raise NotImplementedError

    def eve_leak_bits_per_probe(self) -> float | None:
        return None

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


def run_system(system: System, *, probes: int = 20000, calibration_probes: int = 20000, seed: int = 0,
               method: str = "cascade", block_bits: int | None = None, eps: float = 1e-10,
               quantiser: dict[str, Any] | None = None, symbol_width: int = 8, progress: bool = False,
               nist: bool = True) -> dict[str, Any]:
    """Simulate a calibration run (seed ``2 seed + 1``) and a key run (seed ``2 seed``) of ``system`` and run the
    key pipeline on them; the report (:func:`keygen.pipeline.run_pipeline`) with ``system`` and ``design`` first
    and ``time_s`` covering the simulation too."""
    t0 = time.perf_counter()
    q = quantiser_settings(system.default_quantiser, quantiser)
    cal = system.observations(calibration_probes, 2 * seed + 1)
    obs = system.observations(probes, 2 * seed)
    bound = system.skr_bound()
    res = run_pipeline(obs, cal, bound=bound, quantiser=q, method=method, block_bits=block_bits, eps=eps,
                       symbol_width=symbol_width, eve_leak_bits_per_probe=system.eve_leak_bits_per_probe(),
                       seed=seed, nist=nist, progress=progress, label=f"{system.name} {method} frames")
    desc = system.describe()
    report = {"system": desc, "design": desc.get("design"), **res.report}
    report["time_s"] = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------------------------
# trained designs: a checkpoint's module or a .pt2 export, checked against the config's scenario
# ---------------------------------------------------------------------------------------------


def learned_from_module(module: torch.nn.Module) -> Learned:
    """The design of a PKG-Net module whose weights are loaded (evaluation mode: refinement steps included)."""
    module.eval()

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {k: v.to(torch.float64) for k, v in module.net(x.to(torch.float32)).items()}

    return run


def learned_from_export(program, meta: dict[str, Any]) -> Learned:
    """The design of a ``.pt2`` PKG-Net export (:func:`models.export.load_program`)."""
    net = program.module()
    names = meta["outputs_order"]

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {k: v.to(torch.float64) for k, v in zip(names, net(x.to(torch.float32)), strict=True)}

    return run


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def check_export_scenario(meta: dict[str, Any], scenario, path: str) -> None:
    """Refuse a ``.pt2`` whose metadata is not a PKG-Net of the config's scenario (its name and every setting of
    its description). One ValueError naming both."""
    desc = _plain(scenario.describe())
    family = meta.get("family")
    if family != "pkgnet":
        raise ValueError(f"--export {path!r} holds a {family!r} net; the config builds a PKG-Net on "
                         f"{desc.get('scenario')!r}")
    if meta.get("scenario") != desc.get("scenario"):
        raise ValueError(f"--export {path!r} is a PKG-Net of scenario {meta.get('scenario')!r}; the config's "
                         f"scenario is {desc.get('scenario')!r} (export the config's checkpoint, or give the config "
                         "the export was trained with)")
    diff = sorted(k for k in desc if meta.get(k) != desc[k])
    if diff:
        shown = ", ".join(f"{k}: {meta.get(k)!r} vs {desc[k]!r}" for k in diff[:4])
        raise ValueError(f"--export {path!r} was trained on another {desc.get('scenario')!r} scenario than the "
                         f"config's; (export, config) differ in {shown}" + (" ..." if len(diff) > 4 else ""))
