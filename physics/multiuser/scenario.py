"""Beam-domain multi-user key generation (paper 003) in the scenario contract (:mod:`physics.scenario`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from physics.checks import (
    as_real,
    as_tensor,
    check_choice,
    check_finite,
    check_flag,
    check_int,
    check_range,
    check_real,
    value_checks_on,
)
from physics.multiuser.channel import beam_powers_from_paths, path_tensors
from physics.multiuser.design_space import MultiUserDesignSpace
from physics.multiuser.designs import (
    algorithm1_from_powers,
    apply_budget,
    eigen_beams_from_paths,
    random_semi_unitary,
    semi_unitary,
    strongest_beams_from_powers,
)
from physics.multiuser.rates import (
    _check_design_power,
    skr_leakage_aware_paths,
    skr_pilot_reuse_paths,
    theorem2_rate_paths,
    training_rates,
)
from physics.optim import projected_ascent
from physics.scenario import Batch, Scenario
from physics.seeding import check_generator

__all__ = ["MultiUserScenario"]


def _complex(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(t.to(torch.float64).contiguous())


def _real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t.to(torch.complex128).resolve_conj()).contiguous()


class MultiUserScenario(Scenario):
    """003's beam-domain multi-user PKG as a scenario: K UTs, one BS, pilot reuse, sum SKR.

    Input (statistical CSI): each UT's path angles and powers, ``sin_aod``, ``sin_aoa`` and ``power_db``
    (per-path SNR, unit noise) for K x N_P paths, plus ``rho_shared`` when UTs share scatterers. Why: in the
    geometric model (1)-(3) with Rayleigh path gains they determine Lambda_k exactly (it is rank N_P:
    3 K N_P = 108 numbers instead of K (M N_k)^2 covariance entries), and the design space builds its
    precoders from the same steering vectors. Beam powers (the diagonals Algorithm 1 ranks) would not do:
    off the DFT grid they lose the inter-beam correlation that decides Theorem 2's optimum. Paths are
    sorted by decreasing power within a UT, UTs by increasing centre angle.

    Generator (pinned; every number is a constructor argument, values of 003 Sec. VI where it gives
    them): M = 128, K = 6, N_k = 4, N_P = 6, M_e = 6, N_e = 4. UT k's paths cluster around a centre
    c_k (sine of the AoD): sin(AoD) = c_k + U[-spread, spread], spread = 0.05 (6.4 beam widths of 2/M).
    Centres are increasing with gaps c_{k+1} - c_k ~ U[overlapping_gap_range] = U[0.02, 0.08] on an
    overlapping draw (the clusters share beams) and U[separated_gap_range] = U[0.16, 0.26] otherwise (at
    least 0.06 = 3.8 beams between clusters); a draw is overlapping with probability ``p_overlapping``;
    the first centre is uniform such that all paths lie in [-0.95, 0.95] (no wrap-around at +-1).
    sin(AoA) ~ U[-0.95, 0.95] per path (rich scattering at the UT). Path powers: SNR_db ~ U[snr_db_range]
    = U[0, 20] per draw is each UT's total; relative powers 10^(-x/10), x ~ U[0, 15] dB, normalised.
    Shared scatterers (``shared_paths`` > 0): UTs (0, 1), (2, 3), ... are pairs whose first centres are
    always ``overlapping_gap_range`` apart; the partner's ``shared_paths`` weakest... strongest paths copy
    the AoD of the same-index paths of the first UT of the pair and their gains have correlation
    rho ~ U[rho_range] = U[0.8, 1.0] (``rho_shared``, 0 for unshared paths).

    Objective: ``"reuse"``: (30) per UT (pilot reuse, UTs independent; shared correlations ignored);
    ``"leakage"``: the leakage-aware (27), min over curious UTs of I(z_k^DL; z_k^UL | z_i^DL). ``skr``
    returns ``[n, K]`` bits; the framework sums over UTs. ``budget=True``: downlink pilot-power budget
    K M_e (docs/architecture.md section 1); ``False``: (30) as printed. ``receive_start``: the start of the receive
    matrices in the design space (:class:`MultiUserDesignSpace`), ``"identity"`` or ``"eigen_shifted"``.
    """

    OBJECTIVES = ("reuse", "leakage")

    def __init__(self, M: int = 128, K: int = 6, N_k: int = 4, N_P: int = 6, M_e: int = 6, N_e: int = 4,
                 objective: str = "reuse", budget: bool = True, spread: float = 0.05,
                 overlapping_gap_range: tuple[float, float] = (0.02, 0.08),
                 separated_gap_range: tuple[float, float] = (0.16, 0.26), p_overlapping: float = 0.5,
                 snr_db_range: tuple[float, float] = (0.0, 20.0), path_power_spread_db: float = 15.0,
                 shared_paths: int = 0, rho_range: tuple[float, float] = (0.8, 1.0),
                 overlap_threshold_db: float = -20.0, receive_start: str = "identity"):
        self.M, self.K, self.N_k = check_int("M", M), check_int("K", K), check_int("N_k", N_k)
        self.receive_start = check_choice("receive_start", receive_start, MultiUserDesignSpace.RECEIVE_STARTS)
        self.N_P, self.M_e, self.N_e = check_int("N_P", N_P), check_int("M_e", M_e), check_int("N_e", N_e)
        if self.N_e > self.N_k:
            raise ValueError(f"N_e must be <= N_k, got N_e={N_e}, N_k={N_k}")
        if self.M_e > self.M:
            raise ValueError(f"M_e must be <= M, got M_e={M_e}, M={M}")
        if self.K * self.M_e > self.M:
            raise ValueError(f"non-overlapping beams (Algorithm 1) need K M_e <= M, got K={K}, M_e={M_e}, M={M}")
        check_choice("objective", objective, self.OBJECTIVES)
        budget = check_flag("budget", budget)
        self.spread = check_real("spread", spread, low=0.0, high=0.5)
        check_range("overlapping_gap_range", overlapping_gap_range, min_allowed=0.0)
        check_range("separated_gap_range", separated_gap_range, min_allowed=0.0)
        # per-UT SNR; above 80 dB the float64 observation covariances (1 + 10^(dB/10) g) lose the unit noise
        check_range("snr_db_range", snr_db_range, min_allowed=-50.0, max_allowed=80.0)
        check_range("rho_range", rho_range, min_allowed=-1.0, max_allowed=1.0)
        self.p_overlapping = check_real("p_overlapping", p_overlapping, low=0.0, high=1.0)
        self.path_power_spread_db = check_real("path_power_spread_db", path_power_spread_db, low=0.0)
        self.overlap_threshold_db = check_real("overlap_threshold_db", overlap_threshold_db, high=0.0)
        self.shared_paths = check_int("shared_paths", shared_paths, low=0)
        if self.shared_paths > self.N_P:
            raise ValueError(f"shared_paths must be <= N_P = {self.N_P}, got {shared_paths}")
        if objective == "leakage" and self.K < 2:
            raise ValueError("the leakage-aware objective (27) needs K >= 2")
        if objective == "leakage" and self.shared_paths == 0:
            raise ValueError("the leakage-aware objective (27) needs shared_paths >= 1: with no shared scatterer no UT "
                             "leaks to another and (27) is (30); use objective 'reuse'")
        self.objective, self.budget = objective, budget
        self.overlapping_gap_range = tuple(float(a) for a in overlapping_gap_range)
        self.separated_gap_range = tuple(float(a) for a in separated_gap_range)
        self.snr_db_range = tuple(float(a) for a in snr_db_range)
        self.rho_range = tuple(float(a) for a in rho_range)
        # clusters [c - spread, c + spread] of neighbouring UTs share beams iff their gap is < 2 spread
        if self.overlapping_gap_range[1] > 2 * self.spread or self.separated_gap_range[0] < 2 * self.spread:
            raise ValueError(f"overlapping_gap_range {list(self.overlapping_gap_range)} must end at <= 2 spread = "
                             f"{2 * self.spread:g} and separated_gap_range {list(self.separated_gap_range)} must start "
                             "at >= it: neighbouring clusters overlap only for gaps below 2 spread")
        span = (self.K - 1) * max(self.separated_gap_range[1], self.overlapping_gap_range[1]) + 2 * self.spread
        if span > 1.9:
            raise ValueError(f"the UTs' clusters need {span:.3g} of sine range > 1.9 available in [-0.95, 0.95]: "
                             "reduce K, the gap ranges or spread")
        self.name = "multiuser_003" + ("_shared" if self.shared_paths else "")
        KP = self.K * self.N_P
        names = [f"sin_aod_u{k}_p{p}" for k in range(self.K) for p in range(self.N_P)]
        names += [f"sin_aoa_u{k}_p{p}" for k in range(self.K) for p in range(self.N_P)]
        names += [f"power_db_u{k}_p{p}" for k in range(self.K) for p in range(self.N_P)]
        units = ["1"] * (2 * KP) + ["dB"] * KP
        if self.shared_paths:
            names += [f"rho_shared_u{k}_p{p}" for k in range(self.K) for p in range(self.N_P)]
            units += ["1"] * KP
        self.feature_names, self.feature_units = tuple(names), tuple(units)

    _INIT_KEYS = ("M", "K", "N_k", "N_P", "M_e", "N_e", "objective", "budget", "spread", "overlapping_gap_range",
                  "separated_gap_range", "p_overlapping", "snr_db_range", "path_power_spread_db", "shared_paths",
                  "rho_range", "overlap_threshold_db", "receive_start")
    # keys added later: older descriptions load with the default
    _DEFAULTS = {"receive_start": "identity"}

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> MultiUserScenario:
        """The scenario a checkpoint or an exported file was made with (inverse of :meth:`describe`)."""
        if not isinstance(desc, Mapping):
            raise ValueError(f"a scenario description must be a dict (describe()'s output), got {type(desc).__name__}")
        if not str(desc.get("scenario", "")).startswith("multiuser_003"):
            raise ValueError(f"not a 003 multi-user scenario description: scenario = {desc.get('scenario')!r}")
        desc = {**cls._DEFAULTS, **desc}
        missing = [k for k in cls._INIT_KEYS if k not in desc]
        if missing:
            raise ValueError(f"incomplete 003 multi-user scenario description: missing {missing} (describe() writes "
                             f"all of {list(cls._INIT_KEYS)})")
        return cls(**{k: tuple(desc[k]) if isinstance(desc[k], list) else desc[k] for k in cls._INIT_KEYS})

    def replace(self, **changes) -> MultiUserScenario:
        """A copy with some constructor arguments changed (e.g. ``K=3`` or ``M_e=4`` for a figure sweep)."""
        kw = {k: getattr(self, k) for k in self._INIT_KEYS}
        unknown = set(changes) - set(kw)
        if unknown:
            raise ValueError(f"unknown MultiUserScenario arguments {sorted(unknown)}; allowed: {list(kw)}")
        kw.update(changes)
        return MultiUserScenario(**kw)

    # -- contract: description -------------------------------------------------------------
    def num_users(self) -> int:
        return self.K

    @property
    def budget_value(self) -> float | None:
        return float(self.K * self.M_e) if self.budget else None

    def describe(self) -> dict[str, Any]:
        return {
            "scenario": self.name, "paper": "003", "M": self.M, "K": self.K, "N_k": self.N_k, "N_P": self.N_P,
            "M_e": self.M_e, "N_e": self.N_e, "objective": self.objective, "budget": self.budget,
            "downlink_budget": self.budget_value, "spread": self.spread,
            "overlapping_gap_range": list(self.overlapping_gap_range),
            "separated_gap_range": list(self.separated_gap_range), "p_overlapping": self.p_overlapping,
            "snr_db_range": list(self.snr_db_range), "path_power_spread_db": self.path_power_spread_db,
            "shared_paths": self.shared_paths, "rho_range": list(self.rho_range),
            "overlap_threshold_db": self.overlap_threshold_db,
            **({"receive_start": self.receive_start} if self.receive_start != "identity" else {}),
            "feature_names": list(self.feature_names), "feature_units": list(self.feature_units),
            "outputs": {"P": [self.K, self.M, self.M_e, 2], "C": [self.K, self.N_k, self.N_e, 2]},
            "output_meaning": {"P": "beam-domain precoders P~_k = A_BS^H P_k (real, imag last), budget applied",
                               "C": "beam-domain receive matrices C~_k = A_UT^H C_k (real, imag last)"},
        }

    # -- sampling ---------------------------------------------------------------------------
    def _u(self, shape, lo, hi, g):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        n = check_int("n (number of draws)", n, low=0)
        check_generator(generator)
        K, Np, s = self.K, self.N_P, self.spread
        overlapping = torch.rand(n, generator=generator, dtype=torch.float64) < self.p_overlapping
        gap_o = self._u((n, K - 1), *self.overlapping_gap_range, generator)
        gap_s = self._u((n, K - 1), *self.separated_gap_range, generator)
        gaps = torch.where(overlapping[:, None], gap_o, gap_s)
        if self.shared_paths:  # pairs (0,1), (2,3), ... always overlap
            pair = torch.arange(K - 1) % 2 == 0
            gaps = torch.where(pair, gap_o, gaps)
        offs = torch.cat([torch.zeros(n, 1, dtype=torch.float64), gaps.cumsum(-1)], -1)  # [n, K]
        span = offs[:, -1]
        lo = -0.95 + s
        c0 = lo + (0.95 - s - span - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
        centres = c0[:, None] + offs
        aod = centres[..., None] + self._u((n, K, Np), -s, s, generator)
        aoa = self._u((n, K, Np), -0.95, 0.95, generator)
        snr_db = self._u((n,), *self.snr_db_range, generator)
        rel = 10 ** (-self._u((n, K, Np), 0.0, self.path_power_spread_db, generator) / 10)
        rel, order = rel.sort(-1, descending=True)
        rel = rel / rel.sum(-1, keepdim=True)
        power_db = snr_db[:, None, None] + 10 * torch.log10(rel)
        batch = {"sin_aod": aod, "sin_aoa": aoa, "power_db": power_db, "snr_db": snr_db}
        if self.shared_paths:
            rho = torch.zeros(n, K, Np, dtype=torch.float64)
            r = self._u((n, K // 2, self.shared_paths), *self.rho_range, generator)
            for j in range(K // 2):
                a, b = 2 * j, 2 * j + 1
                aod[:, b, : self.shared_paths] = aod[:, a, : self.shared_paths]
                rho[:, a, : self.shared_paths] = r[:, j]
                rho[:, b, : self.shared_paths] = r[:, j]
            batch["rho_shared"] = rho
        return batch

    def point(self, n: int = 1, **values) -> Batch:
        """``n`` copies of a deterministic evaluation point: SNR 10 dB, centres equally spaced by ``gap``
        (default 0.24: separated; e.g. 0.05: overlapping), paths at evenly spread offsets in
        [-spread, spread], AoAs evenly spread, relative powers 0, -3, -6, ... dB; shared scatterers as in
        :meth:`sample` with rho = ``rho`` (default 0.9). Fields: ``snr_db`` (scalar or ``[n]``), ``gap``,
        ``rho``."""
        n = check_int("n", n)
        allowed = ("snr_db", "gap", "rho")
        for k in values:
            if k not in allowed:
                raise ValueError(f"unknown point field {k!r}; allowed: {', '.join(allowed)}")
        K, Np, s = self.K, self.N_P, self.spread
        snr = torch.as_tensor(values.get("snr_db", 10.0), dtype=torch.float64)
        if snr.ndim > 1 or (snr.ndim == 1 and snr.shape[0] not in (1, n)):
            raise ValueError(f"snr_db must be a scalar or [n] = [{n}], got shape {tuple(snr.shape)}")
        snr = snr.expand(n).clone()
        if not torch.all(torch.isfinite(snr)):
            raise ValueError(f"snr_db must be finite, got {values.get('snr_db')!r}")
        gap = check_real("gap", values.get("gap", 0.24), low=0.0)
        rho = check_real("rho", values.get("rho", 0.9), low=-1.0, high=1.0)
        centres = torch.arange(K, dtype=torch.float64) * gap
        centres = centres - centres.mean()
        offs = torch.linspace(-s, s, Np, dtype=torch.float64)[torch.randperm(Np, generator=torch.Generator()
                                                                             .manual_seed(0))]
        aod = (centres[:, None] + offs).expand(n, K, Np).clone()
        aoa = torch.linspace(-0.8, 0.8, Np, dtype=torch.float64).expand(n, K, Np).clone()
        rel = 10 ** (-3.0 * torch.arange(Np, dtype=torch.float64) / 10)
        rel = rel / rel.sum()
        power_db = snr[:, None, None] + 10 * torch.log10(rel)
        batch = {"sin_aod": aod, "sin_aoa": aoa, "power_db": power_db.expand(n, K, Np).clone(), "snr_db": snr}
        if self.shared_paths:
            rho_t = torch.zeros(n, K, Np, dtype=torch.float64)
            for j in range(K // 2):
                a, b = 2 * j, 2 * j + 1
                batch["sin_aod"][:, b, : self.shared_paths] = batch["sin_aod"][:, a, : self.shared_paths]
                rho_t[:, a, : self.shared_paths] = rho
                rho_t[:, b, : self.shared_paths] = rho
            batch["rho_shared"] = rho_t
        if batch["sin_aod"].abs().max() > 0.99:
            raise ValueError(f"gap = {gap} puts paths outside [-0.99, 0.99]")
        return batch

    def features(self, batch: Batch) -> torch.Tensor:
        """Raw features ``[n, d]`` in ``feature_names`` order (numpy fields accepted; n = 0 gives ``[0, d]``)."""
        f64, _ = self._checked(batch)  # a NaN, |sin| > 1 or an infinite power is named here, not after a NaN loss
        n, KP = f64["sin_aod"].shape[0], self.K * self.N_P
        keys = ("sin_aod", "sin_aoa", "power_db") + (("rho_shared",) if self.shared_paths else ())
        return torch.cat([torch.as_tensor(batch[k]).reshape(n, KP) for k in keys], -1)

    def feature_bounds(self) -> tuple[list[float], list[float]]:
        KP = self.K * self.N_P
        p_lo = self.snr_db_range[0] - self.path_power_spread_db - 10 * math.log10(self.N_P)
        low = [-0.95] * (2 * KP) + [p_lo] * KP
        high = [0.95] * (2 * KP) + [self.snr_db_range[1]] * KP
        if self.shared_paths:
            low += [min(0.0, self.rho_range[0])] * KP
            high += [max(0.0, self.rho_range[1])] * KP
        return low, high

    def design_space(self) -> MultiUserDesignSpace:
        return MultiUserDesignSpace(self.M, self.K, self.N_k, self.N_P, self.M_e, self.N_e, self.budget_value,
                                    self.receive_start, objective=self.objective,
                                    shared_paths=self.shared_paths, curious=self.curious())

    # -- physics ----------------------------------------------------------------------------
    def _checked(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The batch's path statistics in float64, refused unless sin in [-1, 1], powers finite (also in linear
        scale) and rho_shared in [-1, 1]; shapes must be ``[n, K, N_P]``."""
        if not isinstance(batch, Mapping):
            raise ValueError(f"a 003 batch is a dict of sin_aod, sin_aoa, power_db [n, K, N_P], got "
                             f"{type(batch).__name__}")
        missing = [k for k in ("sin_aod", "sin_aoa", "power_db") if k not in batch]
        if missing:
            raise ValueError(f"batch lacks {missing}; a 003 batch has sin_aod, sin_aoa, power_db [n, K, N_P]")
        f64 = {k: as_real(k, batch[k], what="a real tensor [n, K, N_P]") for k in ("sin_aod", "sin_aoa", "power_db")}
        for k, t in f64.items():
            if t.ndim != 3 or tuple(t.shape[1:]) != (self.K, self.N_P):
                raise ValueError(f"{k} must be [n, K, N_P] = [n, {self.K}, {self.N_P}], got shape {tuple(t.shape)}")
        for k in ("sin_aod", "sin_aoa"):
            check_finite(k, f64[k])
            if value_checks_on() and torch.any(f64[k].abs() > 1.0):
                raise ValueError(f"{k} must lie in [-1, 1], got max |sin| {f64[k].abs().max().item():.6g}")
        check_finite("power_db", f64["power_db"])  # -inf dB (a zero-power path) would be a -inf feature
        check_finite("power_db", 10 ** (f64["power_db"] / 10))
        rho = None
        if self.shared_paths:
            if "rho_shared" not in batch:
                raise ValueError("a shared-scatterer batch needs rho_shared [n, K, N_P] (shared_paths = "
                                 f"{self.shared_paths})")
            rho = as_real("rho_shared", batch["rho_shared"], what="a real tensor [n, K, N_P]")
            if tuple(rho.shape) != tuple(f64["sin_aod"].shape):
                raise ValueError(f"rho_shared must have the shape of sin_aod {tuple(f64['sin_aod'].shape)}, got "
                                 f"{tuple(rho.shape)}")
            if value_checks_on() and (torch.any(rho.abs() > 1) or not torch.all(torch.isfinite(rho))):
                raise ValueError("rho_shared must be finite and lie in [-1, 1], got "
                                 f"{rho[~(rho.abs() <= 1)].flatten()[0].item()!r}")
        return f64, rho

    def paths(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Beam-domain path vectors u ``[n, K, N_P, N_k]``, v ``[n, K, N_P, M]``, powers g ``[n, K, N_P]``
        (linear per-path SNR) and the stacked path-gain covariance G ``[n, K N_P, K N_P]``."""
        f64, rho = self._checked(batch)
        return path_tensors(f64["sin_aod"], f64["sin_aoa"], f64["power_db"], self.N_k, self.M, rho, self.shared_paths)

    def curious(self) -> list[list[int]]:
        """The UTs that share scatterers with each UT (its pair partner), where (27)'s minimum sits."""
        if not self.shared_paths:
            return [[] for _ in range(self.K)]
        return [[k ^ 1] if (k ^ 1) < self.K else [] for k in range(self.K)]

    def rates(self, batch: Batch, P: torch.Tensor, C: torch.Tensor, objective: str | None = None) -> torch.Tensor:
        """Per-UT rate ``[n, K]`` bits of complex beam-domain designs under ``objective``: "reuse" (30)
        (UTs taken as independent, as (30) assumes: shared-scatterer correlations are ignored);
        "leakage" (27) over the UTs sharing scatterers, min'ed with (30) (the training objective, a lower
        bound on (27) that equals it when the partner leaks: :func:`skr_leakage_aware_paths`);
        "leakage_exact" (27) over all K - 1 curious UTs; "orthogonal" (31) (no inter-user interference,
        each precoder at unit column power). With ``budget=True`` a P whose downlink power ||sum_k P~_k||_F^2
        exceeds K M_e (relative 1e-3) is refused, except under "orthogonal" (each UT alone, P rescaled)."""
        objective = objective or self.objective
        P, C = as_tensor("P", P), as_tensor("C", C)
        pth = self.paths(batch)
        n = pth["u"].shape[0]
        if tuple(P.shape) != (n, self.K, self.M, P.shape[-1]) or tuple(C.shape) != (n, self.K, self.N_k, C.shape[-1]):
            raise ValueError(f"designs must be P [n, K, M, M_e] = [{n}, {self.K}, {self.M}, M_e] and C [n, K, N_k, "
                             f"N_e] = [{n}, {self.K}, {self.N_k}, N_e], got {tuple(P.shape)} and {tuple(C.shape)}")
        P, C = P.to(torch.complex128), C.to(torch.complex128)
        check_finite("P", P)
        check_finite("C", C)
        if objective != "orthogonal":  # "orthogonal" rescales P to unit columns itself
            _check_design_power("P", P)
            self._check_budget(P)
        _check_design_power("C", C)
        if objective == "reuse":  # (30) assumes independent UTs: shared-scatterer correlations dropped
            return skr_pilot_reuse_paths(P, C, pth["u"], pth["v"], torch.diag_embed(pth["g"].flatten(-2)))
        if objective == "leakage":
            return skr_leakage_aware_paths(P, C, pth["u"], pth["v"], pth["G"], self.curious())
        if objective == "leakage_exact":
            return skr_leakage_aware_paths(P, C, pth["u"], pth["v"], pth["G"])
        if objective == "orthogonal":
            out = []
            for k in range(self.K):
                Pk, Ck = P[:, k:k + 1], C[:, k:k + 1]
                G1 = torch.diag_embed(pth["g"][:, k])
                Pk = Pk / torch.sqrt((Pk.abs() ** 2).sum((-1, -2), keepdim=True) / self.M_e)  # unit columns
                out.append(skr_pilot_reuse_paths(Pk, Ck, pth["u"][:, k:k + 1], pth["v"][:, k:k + 1], G1)[:, 0])
            return torch.stack(out, -1)
        raise ValueError(f"objective must be 'reuse', 'leakage', 'leakage_exact' or 'orthogonal', got {objective!r}")

    def _check_budget(self, P: torch.Tensor, rtol: float = 1e-3) -> None:
        """With ``budget=True`` the downlink pilot power ||sum_k P~_k||_F^2 of every draw must be <= K M_e
        (:func:`apply_budget`); ``rtol`` admits designs made in float32 (the design space's, ~1e-6)."""
        if self.budget_value is None or P.numel() == 0 or not value_checks_on():
            return
        with torch.no_grad():
            top = (P.detach().sum(-3).abs() ** 2).sum((-1, -2)).max().item()
        if not top <= self.budget_value * (1 + rtol):
            raise ValueError(f"P exceeds the downlink pilot-power budget: ||sum_k P~_k||_F^2 = {top:.6g} > K M_e = "
                             f"{self.budget_value:g} (budget=True; scale it with apply_budget(P, budget_value))")

    def skr(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-UT key rate ``[n, K]`` (bits, float64, differentiable) of the design ``outputs``: real ``P [n, K, M,
        M_e, 2]`` and ``C [n, K, N_k, N_e, 2]`` (real, imaginary last), within the budget when ``budget=True``."""
        if not isinstance(outputs, Mapping):
            raise ValueError(f"outputs must be a dict with P and C, got {type(outputs).__name__}")
        missing = [k for k in ("P", "C") if k not in outputs]
        if missing:
            raise ValueError(f"outputs lack {missing}; a 003 design has P [n, K, M, M_e, 2] and C [n, K, N_k, N_e, "
                             "2] (real, imaginary last)")
        out = {k: as_tensor(f"outputs[{k!r}]", outputs[k]) for k in ("P", "C")}
        for k, t in out.items():
            if t.is_complex() or t.ndim < 1 or t.shape[-1] != 2:
                raise ValueError(f"outputs[{k!r}] must be real with a last dimension of 2 (real, imaginary), got "
                                 f"shape {tuple(t.shape)} of dtype {t.dtype}")
        dev = out["P"].device
        b = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()} \
            if isinstance(batch, Mapping) else batch  # not a dict: _checked names it
        return self.rates(b, _complex(out["P"]), _complex(out["C"]))

    def theorem2_rates(self, batch: Batch) -> torch.Tensor:
        """Theorem 2's rate (39) per UT ``[n, K]``, n = M_e N_e: the single-user ceiling (orthogonal pilots,
        any semi-unitary U, not only Kronecker ones)."""
        pth = self.paths(batch)
        return theorem2_rate_paths(pth["u"], pth["v"], pth["g"], self.M_e * self.N_e)

    # -- designs ----------------------------------------------------------------------------
    def _finish(self, P: torch.Tensor, C: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"P": _real(apply_budget(P.to(torch.complex128), self.budget_value)), "C": _real(C)}

    def baseline_designs(self, batch: Batch,
                         generator: torch.Generator) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Complex (P~, C~) of every baseline before the budget."""
        pth = self.paths(batch)
        d_bs, d_ut = beam_powers_from_paths(pth["u"], pth["v"], pth["g"])
        n = d_bs.shape[0]
        return {
            "beam_selection": algorithm1_from_powers(d_bs, d_ut, self.M_e, self.N_e, self.overlap_threshold_db),
            "strongest_overlapping": strongest_beams_from_powers(d_bs, d_ut, self.M_e, self.N_e),
            "eigen_beams": eigen_beams_from_paths(pth["u"], pth["v"], pth["g"], self.M_e, self.N_e),
            "random_semi_unitary": (random_semi_unitary((n, self.K), self.M, self.M_e, generator),
                                    random_semi_unitary((n, self.K), self.N_k, self.N_e, generator)),
        }

    def baselines(self, batch: Batch, generator: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
        return {name: self._finish(P, C) for name, (P, C) in self.baseline_designs(batch, generator).items()}

    def optimum(self, batch: Batch, generator: torch.Generator, steps: int = 150, restarts: int = 4,
                lr: float = 0.02) -> dict[str, torch.Tensor]:
        """Per-instance projected gradient ascent (:func:`physics.optim.projected_ascent`) on the sum of the
        scenario's objective over (P~_k, C~_k): projection = QR onto semi-unitary matrices, then the budget.
        Starts: Algorithm 1, Fig. 8's strongest beams, eigen beams, and ``restarts - 3`` random designs."""
        restarts = check_int("restarts", restarts)
        if restarts < 3:
            raise ValueError(f"restarts must be >= 3 (the three analytic starts), got {restarts}")
        with torch.inference_mode(False), torch.enable_grad():  # callers may be in inference mode (test stage)
            batch = {k: v.clone() for k, v in batch.items()}
            return self._optimum(batch, generator, steps, restarts, lr)

    def _optimum(self, batch: Batch, generator: torch.Generator, steps: int, restarts: int, lr: float):
        designs = self.baseline_designs(batch, generator)
        n = batch["sin_aod"].shape[0]
        inits = [{"P": designs[k][0], "C": designs[k][1]}
                 for k in ("beam_selection", "strongest_overlapping", "eigen_beams")]
        for _ in range(restarts - 3):
            inits.append({"P": random_semi_unitary((n, self.K), self.M, self.M_e, generator),
                          "C": random_semi_unitary((n, self.K), self.N_k, self.N_e, generator)})
        pth = self.paths(batch)
        budget = self.budget_value

        def project(p):
            return {"P": apply_budget(semi_unitary(p["P"]), budget), "C": semi_unitary(p["C"])}

        def objective(p):
            return training_rates(self.objective, p["P"], p["C"], pth, self.curious()).sum(-1)

        best, _ = projected_ascent(objective, project, inits, steps=steps, lr=lr)
        return {"P": _real(best["P"]), "C": _real(best["C"])}

    def subsets(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``separated``: every pair of adjacent UTs' path clusters (sin AoD) at least 4 beam widths (8/M)
        apart; ``overlapping``: the others; ``shared_scatterers``: some path gain shared (rho != 0)."""
        aod = batch["sin_aod"]
        lo, hi = aod.amin(-1), aod.amax(-1)
        order = lo.argsort(-1)
        lo_s, hi_s = lo.gather(-1, order), hi.gather(-1, order)
        sep = (lo_s[:, 1:] - hi_s[:, :-1]).amin(-1) >= 8.0 / self.M if self.K > 1 else torch.ones(
            aod.shape[0], dtype=torch.bool)
        out = {"separated": sep, "overlapping": ~sep}
        if self.shared_paths:
            out["shared_scatterers"] = (batch["rho_shared"] != 0).flatten(1).any(-1)
        return out
