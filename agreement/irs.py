"""IRS-assisted PKG (papers 000/001) as a key-agreement system.

Monte-Carlo channels of the IRS probing model at one operating point of the config's scenario (default
:meth:`IRSScenario.point`: 001 Sec. VII-B, Bob (10, 10, 0) m, Eve half a wavelength from Bob, P_max 25 dBm,
eta 0.4, kappa 1). Alice and Bob apply the canonical-correlation transform of their observations (computed
from the public second-order statistics, 001 (59)-(72); :func:`keygen.canonical.canonical_pairs`) so each
probe gives ``M`` independent complex pairs with correlations ``rho_i`` (``sum_i -log2(1 - rho_i^2) =
I(y_a; y_b)``); Eve forms the linear MMSE estimate of Alice's canonical variables from her own observation.
Eve's leak is bounded by the closed form ``I(y_a; y_e)`` (001 Theorem 1); SKR bound = 001 (32) (case 2) or
(38) (case 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from keygen.canonical import canonical_pairs
from keygen.pipeline import Observations
from physics import irs
from physics.irs import IRSScenario, draw_nlos_channels, observations
from physics.seeding import generator_for

from .system import Learned, System

__all__ = ["IRSSystem"]


class IRSSystem(System):
    """IRS-assisted PKG (000/001) at one operating point of ``scenario``; see the module docstring.

    Args:
        scenario: the config's :class:`IRSScenario` (setting ``case1`` or ``case2``; the setting decides the
            SKR bound and the water-filling case). Eve is simulated in both settings, at the point's place.
        design: ``"pkgnet"`` (needs ``learned``), ``"water_filling"``, ``"exact"``, ``"identity"``, ``"random"``.
        learned: the trained design (checkpoint module or export), fed ``scenario.features`` of the point.
        source: where the trained design came from (``{"export": path}`` or ``{"checkpoint": path}``).
        point: overrides of :meth:`IRSScenario.point` (``P_max_dbm``, ``eta``, ``kappa``, ``bob_m``, ``eve_m``,
            ``bob_eve_distance_m``).
        rho_min: canonical pairs with correlation below this are not used for keys (default 0.7: a pair
            at rho = 0.7 already disagrees on about 20 % of its sign bits; weaker pairs would push the
            frame's disagreement past what Cascade corrects).
        design_seed: seed of the random design.
    """

    name = "irs"
    DESIGNS = ("pkgnet", "water_filling", "exact", "identity", "random")
    DEFAULT_DESIGN = "water_filling"
    # Sweep at the default point (water-filling, 8000 probes, Cascade), final secret bits per probe:
    # K=2 guard 0/0.1/0.2/0.3/0.4: 1.42/2.73/3.23/3.26/2.28; K=4 guard 0.3/0.5: 2.45/1.61; K=8: budget <= 0.
    default_quantiser = {"method": "equiprobable", "levels": 2, "guard": 0.2, "code": "gray"}

    @staticmethod
    def physics_scenario(scenario) -> Any:
        """The case-2 scenario of the config's arrays, carrier and Bob's power: Eve's statistics for the probing
        (a case-1 design is judged against the same Eve). The conference setting (000) models no Eve."""
        if not isinstance(scenario, IRSScenario):
            raise ValueError(f"the irs system needs an IRSScenario, got {type(scenario).__name__}")
        if scenario.setting not in ("case1", "case2"):
            raise ValueError(f"the config's IRS setting {scenario.setting!r} has no Eve model; key agreement needs "
                             "setting case1 or case2 (configs/pkgnet/irs_case1.yaml, irs_case2.yaml)")
        return IRSScenario(setting="case2", M=scenario.M, L_H=scenario.L_H, L_V=scenario.L_V,
                           P_b_dbm=scenario.P_b_dbm, carrier_hz=scenario.carrier_hz)

    def __init__(self, scenario, design: str = "water_filling", *, learned: Learned | None = None,
                 source: dict[str, Any] | None = None, point: dict[str, Any] | None = None, rho_min: float = 0.7,
                 design_seed: int = 0):
        if design not in self.DESIGNS:
            raise ValueError(f"design = {design!r} is not allowed for irs; choose one of {self.DESIGNS}")
        if (design == "pkgnet") != (learned is not None):
            raise ValueError("design 'pkgnet' needs a trained net (--ckpt_path or --export), and only it")
        if not 0.0 <= rho_min < 1.0:
            raise ValueError(f"rho_min = {rho_min!r} is not allowed; it must lie in [0, 1)")
        self.design, self.source, self.setting = design, dict(source or {}), scenario.setting
        self.rho_min = float(rho_min)
        self.scenario = self.physics_scenario(scenario)
        M = self.scenario.M
        point = {} if point is None else dict(point)
        self.point = self.scenario.point(1, **point)
        self.stats = self.scenario.stats(self.point)
        P_max = self.scenario.P_max_w(self.point)
        if design == "pkgnet":
            x = scenario.features(scenario.point(1, **point))
            out = learned(x)
            P = torch.view_as_complex(out["P"].contiguous()).reshape(M, M)
            theta = torch.view_as_complex(out["theta"].contiguous()).reshape(-1)
            if not bool(torch.isfinite(P).all() and torch.isfinite(theta).all()):
                raise ValueError("the trained net gave non-finite outputs at this point (outside its feature ranges?)")
            self.P, self.theta = P, theta
        else:
            st = self.stats
            if design == "water_filling":
                d = irs.water_filling_design(st, P_max, 2 if self.setting == "case2" else 1)
            elif design == "exact":
                d = irs.exact_design(st, P_max, 2 if self.setting == "case2" else 1)
            elif design == "identity":
                d = irs.identity_design(st, P_max)
            else:
                g = torch.Generator().manual_seed(int(design_seed))
                d = irs.random_design(st, P_max, g)
            self.P, self.theta = d.P.reshape(M, M).to(torch.complex128), d.theta.reshape(-1).to(torch.complex128)
        C = irs.joint_covariance_kronecker(self.P, self.theta, self.stats)
        self.C = C.reshape(C.shape[-2:])
        A, B, rho = canonical_pairs(self.C.numpy(), M)
        self.A, self.B, self.rho = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(rho)
        self.modes = [i for i in range(M) if float(self.rho[i]) >= self.rho_min]
        if not self.modes:
            raise ValueError(f"no canonical pair reaches rho_min = {rho_min}; largest rho = {float(self.rho[0]):.3f}")
        # Eve's linear MMSE estimate of Alice's canonical variables u = A^H y_a from y_e.
        Cae, Cee = self.C[:M, 2 * M:], self.C[2 * M:, 2 * M:]
        self.E = torch.linalg.solve(Cee, Cae.mH @ self.A)  # u_hat = E^H y_e  ([M, M])
        self.eve_var = torch.real(torch.diagonal(self.E.mH @ Cee @ self.E)).clamp_min(1e-300)
        parts = irs.skr_case2_parts(self.P, self.theta, self.stats)
        self.parts = {k: float(v.reshape(())) for k, v in parts.items()}

    def observations(self, n: int, seed: int) -> Observations:
        g = generator_for(seed, "irs-observations")
        noise = math.sqrt(float(self.stats.noise_power.reshape(())))
        modes = torch.tensor(self.modes)
        out = {"a": [], "b": [], "e": []}
        for start in range(0, n, 20000):
            m = min(20000, n - start)
            ch = draw_nlos_channels(self.stats, m, g)
            y = observations(ch, self.P, self.theta, self.stats, g)
            u = (y["y_a"] / noise) @ self.A.conj()
            v = (y["y_b"] / noise) @ self.B.conj()
            w = (y["y_e"] / noise) @ self.E.conj() / self.eve_var.sqrt()
            for key, z in (("a", u), ("b", v), ("e", w)):
                z = z[:, modes] * math.sqrt(2.0)  # unit-variance real and imaginary parts
                out[key].append(torch.cat([z.real, z.imag], -1).numpy())
        a, b, e = (np.concatenate(out[k]) for k in "abe")
        return Observations(a, b, e, {"method": "equiprobable", "mean": 0.0, "std": 1.0})

    def skr_bound(self) -> dict[str, Any]:
        p = self.parts
        case2 = self.setting == "case2"
        return {"skr_bound_bits": max(p["R1"], p["R2"]) if case2 else p["I_ab"], "I_ab": p["I_ab"],
                "I_ae": p["I_ae"], "I_be": p["I_be"], "R1_forward": p["R1"], "R2_reverse": p["R2"],
                "kind": "001 (32) R_sk = max(R1, R2)" if case2 else "001 (38) I(y_a; y_b)"}

    def eve_leak_bits_per_probe(self) -> float:
        return self.parts["I_ae"]

    def describe(self) -> dict[str, Any]:
        pt = {k: v.reshape(-1).tolist() for k, v in self.point.items()}
        return {"system": "irs", "design": self.design, "export": self.source.get("export"),
                **({"checkpoint": self.source["checkpoint"]} if "checkpoint" in self.source else {}),
                "setting": self.setting, "M": self.scenario.M, "L": self.scenario.L, "point": pt,
                "canonical_correlations": [float(r) for r in self.rho], "modes_used": self.modes}
