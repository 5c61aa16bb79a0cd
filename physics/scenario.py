"""The scenario contract (docs/architecture.md, "Scenario contract"): what makes PKG-Net generic.

A scenario is one system model with an SKR objective. PKG-Net is the same LightningModule for every
scenario; only this object changes. :class:`Scenario` is an abstract base class: a subclass must
implement every abstract method below, and ``PKGNetModule``, ``ScenarioDataModule``,
``BaselineCallback`` and export then serve it unchanged. For a batch of ``n`` draws:

* ``sample(n, generator)`` -> a batch: ``dict[str, Tensor]`` of statistics in physical units
  (leading dim ``n``);
* ``features(batch)`` -> ``[n, d]`` raw physical network inputs, in ``feature_names`` order/units;
* ``feature_bounds()`` -> low/high of each feature over the training distribution;
* ``design_space()`` -> an ``nn.Module`` with ``heads`` (raw output sizes) that projects raw network
  outputs onto the feasible set and returns real tensors with real/imaginary parts stacked last
  (exportable: no complex outputs). Optionally the design space states the problem a model-level
  refinement (``models.refine``) solves from the network's design: ``refinement_problem(design, x)``
  (see ``MultiUserDesignSpace``);
* ``skr(batch, outputs)`` -> ``[n]`` bits, or ``[n, K]`` bits per user for a multi-user system
  (the objective is then the sum over users, :func:`total_skr`), differentiable, float64;
* ``baselines(batch, generator)`` -> named analytic designs (the names are the scenario's own and
  are reported as they are); ``optimum(batch, generator, **options)`` the per-instance ceiling
  (``options`` are the scenario's own solver settings, passed through unchanged from the callback);
* ``subsets(batch)`` -> named ``[n]`` bool masks for reporting (default: none);
* ``point(n, **values)`` -> a named evaluation point for figure sweeps (optional);
* ``describe()`` -> plain JSON types with at least :data:`REQUIRED_DESCRIPTION_KEYS`; stored in
  checkpoints and export metadata.

No Lightning here: a researcher can use a scenario from a notebook. The contract alone lives here; each system
model implements it in its own package (``physics.irs.IRSScenario``, ``physics.nearfield.NearFieldScenario``,
``physics.multiuser.MultiUserScenario``).
"""

from __future__ import annotations

import abc
import json
from typing import Any

import torch
from torch import nn

from physics.seeding import STREAMS, generator_for

__all__ = ["INDEX_KEY", "REQUIRED_DESCRIPTION_KEYS", "STREAMS", "Batch", "Design", "Scenario", "check_description",
           "generator_for", "strip_index", "total_skr"]


Batch = dict[str, torch.Tensor]
Design = dict[str, torch.Tensor]


#: Keys every ``Scenario.describe()`` must return (checked by :func:`check_description`).
REQUIRED_DESCRIPTION_KEYS = ("scenario", "feature_names", "feature_units", "outputs")


#: Batches served by ``ScenarioDataModule`` for validation/test carry each draw's global index under
#: this key (``[n]`` int64), so reports are identical across DDP ranks; scenarios never see it.
INDEX_KEY = "draw_index"


def strip_index(batch: Batch) -> Batch:
    """``batch`` without :data:`INDEX_KEY` (what a scenario is given)."""
    return {k: v for k, v in batch.items() if k != INDEX_KEY}


def total_skr(skr_bits: torch.Tensor) -> torch.Tensor:
    """The objective per draw: ``[n]`` as is, ``[n, K]`` (per user) summed over users -> ``[n]``."""
    if skr_bits.ndim == 1:
        return skr_bits
    if skr_bits.ndim == 2:
        return skr_bits.sum(-1)
    raise ValueError(f"a scenario's skr must be [n] or [n, K] (per user), got shape {tuple(skr_bits.shape)}")


def check_description(desc: dict[str, Any], scenario_name: str = "scenario") -> dict[str, Any]:
    """Raise ValueError unless ``desc`` holds the required keys with plain JSON types."""
    missing = [k for k in REQUIRED_DESCRIPTION_KEYS if k not in desc]
    if missing:
        raise ValueError(f"{scenario_name}.describe() lacks the required keys {missing}")
    if not isinstance(desc["outputs"], dict) or not desc["outputs"]:
        raise ValueError(f"{scenario_name}.describe()['outputs'] must map output names to shapes")
    if len(desc["feature_names"]) != len(desc["feature_units"]):
        raise ValueError(f"{scenario_name}.describe(): feature_names and feature_units differ in length")
    try:
        json.dumps(desc)
    except TypeError as e:
        raise ValueError(f"{scenario_name}.describe() must hold plain JSON types only: {e}") from None
    return desc


class Scenario(abc.ABC):
    """Abstract base of the scenario contract (see the module docstring)."""

    name: str = "scenario"
    feature_names: tuple[str, ...] = ()
    feature_units: tuple[str, ...] = ()

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` draws of the training distribution, physical units, leading dim ``n``."""

    @abc.abstractmethod
    def features(self, batch: Batch) -> torch.Tensor:
        """``[n, d]`` raw network inputs in ``feature_names`` order and ``feature_units``."""

    @abc.abstractmethod
    def feature_bounds(self) -> tuple[list[float], list[float]]:
        """Low/high of each raw feature over the training distribution (for in-net normalisation)."""

    @abc.abstractmethod
    def design_space(self) -> nn.Module:
        """Module with ``heads: dict[str, int]``; ``forward(raw, x)`` -> feasible real-valued design."""

    @abc.abstractmethod
    def skr(self, batch: Batch, outputs: Design) -> torch.Tensor:
        """``[n]`` (or ``[n, K]`` per user) secret key rate in bits, float64, differentiable."""

    @abc.abstractmethod
    def baselines(self, batch: Batch, generator: torch.Generator) -> dict[str, Design]:
        """Named analytic designs for ``batch`` (same layout as the design space's outputs)."""

    @abc.abstractmethod
    def optimum(self, batch: Batch, generator: torch.Generator, **options) -> Design:
        """Per-instance ceiling (``options``: the scenario's own solver settings)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Plain-type description with at least :data:`REQUIRED_DESCRIPTION_KEYS`."""

    def subsets(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Named ``[n]`` bool masks of draws worth reporting apart (default: none)."""
        return {}

    def point(self, n: int = 1, **values) -> Batch:
        """``n`` copies of a named evaluation point, fields overridable (for figure sweeps)."""
        raise NotImplementedError(f"{type(self).__name__} defines no evaluation point for sweeps")

    def num_users(self) -> int:
        """K when ``skr`` returns ``[n, K]`` per user; 1 for a single link."""
        return 1
