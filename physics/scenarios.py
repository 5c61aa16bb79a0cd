"""The scenario contract (docs/architecture.md, "Scenario contract") and the IRS scenarios of 000/001.

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

No Lightning here: a researcher can use a scenario from a notebook.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from physics import irs
from physics.seeding import STREAMS, check_generator, generator_for  # noqa: F401 - re-exported: the one seeding scheme
from physics.units import dbm_to_w, wavelength_m

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
    import json

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


def _check_range(name: str, *bounds, min_allowed: float | None = None, max_allowed: float | None = None,
                 max_inclusive: bool = True) -> None:
    """A ``[low, high]`` range: ``_check_range(name, rng)`` or ``_check_range(name, lo, hi)``; ValueError naming it
    unless it is two finite real numbers (numpy scalars too, never bools), low <= high, inside the allowed bounds."""
    if len(bounds) == 1:
        rng = bounds[0]
        if isinstance(rng, str | bytes) or not hasattr(rng, "__len__") or len(rng) != 2:
            raise ValueError(f"{name} must be a range [low, high] of two numbers, got {rng!r}")
        bounds = tuple(rng)
    if len(bounds) != 2:
        raise ValueError(f"{name} must be a range [low, high] of two numbers, got {list(bounds)!r}")
    lo, hi = bounds
    for v in (lo, hi):
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(f"{name} range must be two real numbers, got [{lo!r}, {hi!r}]")
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} range must be finite, got [{lo}, {hi}]")
    if lo > hi:
        raise ValueError(f"{name} range is inverted: low {lo} > high {hi}")
    if min_allowed is not None and lo < min_allowed:
        raise ValueError(f"{name} range must start at >= {min_allowed}, got {lo}")
    if max_allowed is not None and (hi > max_allowed or (not max_inclusive and hi >= max_allowed)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} range must end at {op} {max_allowed}, got {hi}")


def check_positive_int(name: str, value) -> int:
    """``value`` as an int; ValueError naming it unless it is an integer >= 1 (2.5 and True are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer) or int(value) != value \
            or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """``value`` as a finite float inside the stated bounds; ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v >= low if low_inclusive else v > low
    if ok and high is not None:
        ok = v <= high if high_inclusive else v < high
    if not ok:
        left = "[" if low_inclusive and low is not None else "("
        right = "]" if high_inclusive and high is not None else ")"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be finite and lie in {interval}, got {value!r}")
    return v


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


class IRSDesignSpace(nn.Module):
    """Projection of raw outputs onto the IRS design set (001 (53)-(54), 000 (27)-(28)).

    P = sqrt(P_max) P'' / ||P''||_F with P'' = p'[:M^2] + j p'[M^2:] (row-major), so Tr(P P^H) = P_max
    (001 writes sqrt(M P_a) with P_a = P_max / M); theta_l = (theta'_l + j theta'_{l+L}) / |.|.
    P_max comes from the raw features (``power_feature`` holds P_max in dBm) or is fixed.
    Outputs: ``P [n, M, M, 2]``, ``theta [n, L, 2]`` float (real, imag last).
    """

    def __init__(self, M: int, L: int, power_feature: int | None, fixed_power_w: float | None):
        super().__init__()
        if (power_feature is None) == (fixed_power_w is None):
            raise ValueError("give exactly one of power_feature (index of P_max in dBm) and fixed_power_w")
        self.M, self.L = int(M), int(L)
        self.power_feature = power_feature
        self.fixed_power_w = fixed_power_w
        self.heads = {"P": 2 * self.M * self.M, "theta": 2 * self.L}

    def forward(self, raw: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        M, L = self.M, self.L
        p = raw["P"]
        P = torch.stack([p[..., : M * M], p[..., M * M:]], dim=-1).reshape(*p.shape[:-1], M, M, 2)
        if self.power_feature is not None:
            P_max = torch.pow(10.0, (x[..., self.power_feature] - 30.0) / 10.0)
        else:
            P_max = torch.full(x.shape[:-1], float(self.fixed_power_w), dtype=x.dtype, device=x.device)
        fro = torch.sqrt((P * P).sum((-1, -2, -3))).clamp_min(1e-20)
        P = P * (torch.sqrt(P_max) / fro)[..., None, None, None]
        t = raw["theta"]
        th = torch.stack([t[..., :L], t[..., L:]], dim=-1)
        th = th / torch.sqrt((th * th).sum(-1, keepdim=True)).clamp_min(1e-20)
        return {"P": P, "theta": th}


def _complex(x: torch.Tensor) -> torch.Tensor:
    """[..., 2] real -> complex128."""
    return torch.view_as_complex(x.to(torch.float64).contiguous())


def design_to_real(design: irs.Design) -> dict[str, torch.Tensor]:
    return {"P": torch.view_as_real(design.P.to(torch.complex128)),
            "theta": torch.view_as_real(design.theta.to(torch.complex128))}


class IRSScenario(Scenario):
    """IRS-assisted multi-antenna PKG in the three paper settings.

    ``setting``:
      * ``"conference"`` (000): input Bob's location (3 features); Rayleigh (kappa = 0), no Eve,
        P_a = P_b = P fixed (``power_dbm``), so P_max = M P; eta fixed (``eta``, 000 default 0.3);
        objective 000 (17), loss (29).
      * ``"case1"`` (001 Case 1): Bob's location, P_max (dBm), eta, kappa (6 features);
        objective 001 (38), loss (55).
      * ``"case2"`` (001 Case 2): plus Eve's location (9 features); objective 001 (32), loss (56).
    Training distribution (001 Sec. VII-A): Bob and Eve uniform in [5,15]^2 on z = 0, P_max uniform
    in [10, 30] dBm, eta uniform in [0, 1) (capped at ``eta_range[1]`` < 1: R_B is singular at 1),
    kappa uniform in [0, 10]; Bob's power ``P_b_dbm`` = 10 dBm.
    """

    SETTINGS = ("conference", "case1", "case2")

    def __init__(
        self,
        setting: str = "case1",
        M: int = 4,
        L_H: int = 6,
        L_V: int = 6,
        area_m: tuple[float, float] = (5.0, 15.0),
        P_max_dbm_range: tuple[float, float] = (10.0, 30.0),
        eta_range: tuple[float, float] = (0.0, 0.99),
        kappa_range: tuple[float, float] = (0.0, 10.0),
        P_b_dbm: float = 10.0,
        power_dbm: float = 10.0,
        eta: float = 0.3,
        carrier_hz: float = 2.4e9,
        eve_at_bob_minus_half_wavelength: bool = False,
        hard_P_max_dbm: float = 15.0,
        hard_eta: float = 0.8,
    ):
        if setting not in self.SETTINGS:
            raise ValueError(f"setting must be one of {self.SETTINGS}, got {setting!r}")
        M, L_H, L_V = (check_positive_int(nm, v) for nm, v in (("M", M), ("L_H", L_H), ("L_V", L_V)))
        _check_range("area_m", area_m)
        if float(area_m[0]) <= 0:
            raise ValueError(f"area_m must start at > 0 m (a distance), got {list(area_m)!r}")
        # 100 dBm = 10 MW: far above any transmitter; beyond it the float64 SNR terms lose the noise
        _check_range("P_max_dbm_range", P_max_dbm_range, max_allowed=100.0)
        _check_range("eta_range", eta_range, min_allowed=0.0, max_allowed=1.0, max_inclusive=False)
        _check_range("kappa_range", kappa_range, min_allowed=0.0)
        check_real("eta", eta, low=0.0, high=1.0, high_inclusive=False)
        check_real("P_b_dbm", P_b_dbm)
        check_real("power_dbm", power_dbm)
        # 1 MHz .. 1 THz: outside it Eve's correlation J0(2 pi d / lambda) means nothing for these models
        check_real("carrier_hz", carrier_hz, low=1e6, high=1e12)
        check_real("hard_P_max_dbm", hard_P_max_dbm)
        check_real("hard_eta", hard_eta, low=0.0, high=1.0)
        self.setting = setting
        self.M, self.L_H, self.L_V = int(M), int(L_H), int(L_V)
        self.L = self.L_H * self.L_V
        self.area_m = tuple(float(a) for a in area_m)
        self.P_max_dbm_range = tuple(float(a) for a in P_max_dbm_range)
        self.eta_range = tuple(float(a) for a in eta_range)
        self.kappa_range = tuple(float(a) for a in kappa_range)
        self.P_b_dbm = float(P_b_dbm)
        self.power_dbm = float(power_dbm)
        self.eta = float(eta)
        self.carrier_hz = float(carrier_hz)
        if not isinstance(eve_at_bob_minus_half_wavelength, bool | np.bool_):
            raise ValueError("eve_at_bob_minus_half_wavelength must be true or false, got "
                             f"{eve_at_bob_minus_half_wavelength!r}")
        self.eve_at_bob_minus_half_wavelength = bool(eve_at_bob_minus_half_wavelength)
        self.hard_P_max_dbm = float(hard_P_max_dbm)
        self.hard_eta = float(hard_eta)
        self.name = f"irs_{setting}"
        names = ["x_b_m", "y_b_m", "z_b_m"]
        units = ["m", "m", "m"]
        if setting in ("case1", "case2"):
            names += ["P_max_dbm", "eta", "kappa"]
            units += ["dBm", "1", "1"]
        if setting == "case2":
            names += ["x_e_m", "y_e_m", "z_e_m"]
            units += ["m", "m", "m"]
        self.feature_names, self.feature_units = tuple(names), tuple(units)

    @property
    def case(self) -> int:
        return 2 if self.setting == "case2" else 1

    def describe(self) -> dict[str, Any]:
        return {
            "scenario": self.name, "setting": self.setting, "M": self.M, "L": self.L, "L_H": self.L_H,
            "L_V": self.L_V, "feature_names": list(self.feature_names), "feature_units": list(self.feature_units),
            "carrier_hz": self.carrier_hz, "P_b_dbm": self.P_b_dbm,
            "power_dbm": self.power_dbm if self.setting == "conference" else None,
            "outputs": {"P": [self.M, self.M, 2], "theta": [self.L, 2]},
        }

    # -- sampling ---------------------------------------------------------------------------
    def _uniform(self, n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"number of draws n must be an integer >= 0, got {n!r}")
        check_generator(generator)
        lo, hi = self.area_m
        bob = torch.stack([self._uniform(n, lo, hi, generator), self._uniform(n, lo, hi, generator),
                           torch.zeros(n, dtype=torch.float64)], -1)
        batch: Batch = {"bob_m": bob}
        if self.setting == "conference":
            batch["P_max_dbm"] = torch.full((n,), self.power_dbm + 10 * math.log10(self.M), dtype=torch.float64)
            batch["eta"] = torch.full((n,), self.eta, dtype=torch.float64)
            batch["kappa"] = torch.zeros(n, dtype=torch.float64)
        else:
            batch["P_max_dbm"] = self._uniform(n, *self.P_max_dbm_range, generator)
            batch["eta"] = self._uniform(n, *self.eta_range, generator)
            batch["kappa"] = self._uniform(n, *self.kappa_range, generator)
        if self.setting == "case2":
            if self.eve_at_bob_minus_half_wavelength:
                eve = bob.clone()
                eve[:, 0] -= 0.5 * float(wavelength_m(self.carrier_hz))
            else:
                eve = torch.stack([self._uniform(n, lo, hi, generator), self._uniform(n, lo, hi, generator),
                                   torch.zeros(n, dtype=torch.float64)], -1)
            batch["eve_m"] = eve
        return batch

    def point(self, n: int = 1, **values) -> Batch:
        """``n`` copies of one evaluation point: Bob (10,10,0), Eve at Bob - lambda/2 in x (001 Sec.
        VII-B), P_max 25 dBm, eta 0.4, kappa 1; override any field (tensors of length n sweep).

        Fields: ``bob_m``, ``eve_m``, ``P_max_dbm``, ``eta``, ``kappa``, and ``bob_eve_distance_m``
        (Eve at Bob minus that distance in x; 001 Fig. 9).
        """
        n = check_positive_int("n", n)
        bob = torch.tensor([10.0, 10.0, 0.0], dtype=torch.float64).expand(n, 3).clone()
        batch: Batch = {"bob_m": bob}
        if self.setting == "conference":
            batch.update(P_max_dbm=torch.full((n,), self.power_dbm + 10 * math.log10(self.M), dtype=torch.float64),
                         eta=torch.full((n,), self.eta, dtype=torch.float64), kappa=torch.zeros(n, dtype=torch.float64))
        else:
            batch.update(P_max_dbm=torch.full((n,), 25.0, dtype=torch.float64),
                         eta=torch.full((n,), 0.4, dtype=torch.float64), kappa=torch.ones(n, dtype=torch.float64))
        distance = values.pop("bob_eve_distance_m", None)
        allowed = ("bob_m", "eve_m", "P_max_dbm", "eta", "kappa", "bob_eve_distance_m")
        for k, v in values.items():
            if k not in allowed:
                raise ValueError(f"unknown point field {k!r}; allowed: {', '.join(allowed)}")
            batch[k] = torch.as_tensor(v, dtype=torch.float64).expand_as(batch[k]).clone() if k in batch \
                else torch.as_tensor(v, dtype=torch.float64).expand(n, 3).clone()
        if self.setting == "case2" and "eve_m" not in batch:
            eve = batch["bob_m"].clone()
            eve[:, 0] -= 0.5 * float(wavelength_m(self.carrier_hz)) if distance is None \
                else torch.as_tensor(distance, dtype=torch.float64).expand(n)
            batch["eve_m"] = eve
        elif distance is not None:
            raise ValueError("bob_eve_distance_m needs the case2 setting and no explicit eve_m")
        return batch

    def features(self, batch: Batch) -> torch.Tensor:
        cols = [batch["bob_m"]]
        if self.setting in ("case1", "case2"):
            cols += [batch["P_max_dbm"][:, None], batch["eta"][:, None], batch["kappa"][:, None]]
        if self.setting == "case2":
            cols.append(batch["eve_m"])
        return torch.cat(cols, -1)

    def feature_bounds(self) -> tuple[list[float], list[float]]:
        lo, hi = self.area_m
        low, high = [lo, lo, 0.0], [hi, hi, 0.0]
        if self.setting in ("case1", "case2"):
            low += [self.P_max_dbm_range[0], self.eta_range[0], self.kappa_range[0]]
            high += [self.P_max_dbm_range[1], self.eta_range[1], self.kappa_range[1]]
        if self.setting == "case2":
            low += [lo, lo, 0.0]
            high += [hi, hi, 0.0]
        return low, high

    def design_space(self) -> IRSDesignSpace:
        if self.setting == "conference":
            return IRSDesignSpace(self.M, self.L, None, float(dbm_to_w(self.power_dbm)) * self.M)
        return IRSDesignSpace(self.M, self.L, self.feature_names.index("P_max_dbm"), None)

    # -- physics ----------------------------------------------------------------------------
    def stats(self, batch: Batch) -> irs.IRSStats:
        kw = dict(M=self.M, L_H=self.L_H, L_V=self.L_V, eta=batch["eta"], kappa=batch["kappa"])
        if self.setting == "conference":
            return irs.irs_stats_from_geometry(irs.GEOMETRY_000, batch["bob_m"], P_b_w=dbm_to_w(self.power_dbm), **kw)
        return irs.stats_001(batch["bob_m"], P_b_dbm=self.P_b_dbm, carrier_hz=self.carrier_hz,
                             eve_m=batch.get("eve_m") if self.setting == "case2" else None, **kw)

    def P_max_w(self, batch: Batch) -> torch.Tensor:
        return dbm_to_w(batch["P_max_dbm"])

    def skr(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Exact SKR (bits) of the design ``outputs`` (real/imag stacked), evaluated in float64."""
        stats = self.stats({k: v.to(torch.float64) for k, v in batch.items()})
        if stats.R_B.device != outputs["P"].device:
            stats = stats.to(outputs["P"].device)
        return irs.skr(_complex(outputs["P"]), _complex(outputs["theta"]), stats, self.case)

    def baselines(self, batch: Batch, generator: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
        stats, P_max = self.stats(batch), self.P_max_w(batch)
        return {
            "water_filling": design_to_real(irs.water_filling_design(stats, P_max, self.case)),
            "random": design_to_real(irs.random_design(stats, P_max, generator)),
            "identity": design_to_real(irs.identity_design(stats, P_max)),
        }

    def optimum(self, batch: Batch, generator: torch.Generator, **options) -> dict[str, torch.Tensor]:
        """:func:`physics.irs.optimum`; ``options``: ``steps``, ``restarts``, ``lr``."""
        allowed = {"steps", "restarts", "lr"}
        if set(options) - allowed:
            raise ValueError(f"unknown IRS optimum options {sorted(set(options) - allowed)}; "
                             f"allowed: {sorted(allowed)}")
        res = irs.optimum(self.stats(batch), self.P_max_w(batch), self.case, generator=generator, **options)
        return design_to_real(irs.Design(res.P, res.theta))

    def subsets(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.setting == "conference":
            return {}
        return {"hard": (batch["P_max_dbm"] <= self.hard_P_max_dbm) & (batch["eta"] >= self.hard_eta)}
