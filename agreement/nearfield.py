"""Near-field XL-MIMO PKG (paper 004) as a key-agreement system.

:func:`physics.nearfield.probe` at one operating point of the config's scenario (default
:meth:`NearFieldScenario.point`: 004 Fig. 3's setting); one complex observation per probe and party, each
scaled to unit variance (public model statistics). SKR bound (23) ``I(z_a; z_b | z_ae)``; Eve's leak bound:
the Gaussian ``I(z_a; z_ae)`` of the model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from keygen.pipeline import Observations
from physics import nearfield as nf
from physics.seeding import generator_for

from .system import Learned, System

__all__ = ["NearFieldSystem"]


class NearFieldSystem(System):
    """Near-field XL-MIMO PKG (004) at one point of ``scenario``; see the module docstring.

    Args:
        scenario: the config's :class:`physics.nearfield.NearFieldScenario`.
        design: one of the scenario's baselines (e.g. ``optimal_beam``, ``mrc``, ``svd``, ``dinkelbach``) or
            ``pkgnet`` (needs ``learned``).
        learned, source: the trained design and where it came from (``{"export": path}`` or
            ``{"checkpoint": path}``).
        point: overrides of :meth:`NearFieldScenario.point` (``r_b_m``, ``psi_b_rad``, ``r_e_m``, ``psi_e_rad``,
            ``P_t_dbm``).
    """

    name = "nearfield"
    DEFAULT_DESIGN = "optimal_beam"
    # 004's point has a very high SNR (SKR ~15 bits per probe): 64 levels per real component
    default_quantiser = {"method": "equiprobable", "levels": 64, "guard": 0.2, "code": "gray"}

    @staticmethod
    def designs(scenario, point: dict[str, Any] | None = None) -> tuple[str, ...]:
        """The design names: the scenario's baselines at the point, and ``pkgnet``."""
        batch = scenario.point(1, **(point or {}))
        return (*scenario.baselines(batch, torch.Generator().manual_seed(0)), "pkgnet")

    def __init__(self, scenario, design: str = "optimal_beam", *, learned: Learned | None = None,
                 source: dict[str, Any] | None = None, point: dict[str, Any] | None = None):
        if not isinstance(scenario, nf.NearFieldScenario):
            raise ValueError(f"the nearfield system needs a NearFieldScenario, got {type(scenario).__name__}")
        if (design == "pkgnet") != (learned is not None):
            raise ValueError("design 'pkgnet' needs a trained net (--ckpt_path or --export), and only it")
        self.scenario = scenario
        self.point = self.scenario.point(1, **({} if point is None else point))
        g = torch.Generator().manual_seed(0)
        if design == "pkgnet":
            des = learned(self.scenario.features(self.point))
            if not all(bool(torch.isfinite(t).all()) for t in des.values()):
                raise ValueError("the trained net gave non-finite outputs at this point (outside its feature ranges?)")
        else:
            base = self.scenario.baselines(self.point, g)
            if design not in base:
                raise ValueError(f"design = {design!r} is not allowed for nearfield; choose one of "
                                 f"{tuple(base) + ('pkgnet',)}")
            des = base[design]
        self.design, self.source = design, dict(source or {})
        self.design_real = des
        self.bound = float(self.scenario.skr(self.point, des).reshape(-1)[0])
        self.W = nf.design_matrix(des).reshape(self.scenario.N, self.scenario.N)
        f, h = self.scenario.channels(self.point)
        self.f, self.h = f.reshape(-1), h.reshape(-1)
        na, nb, ne = (float(t.reshape(-1)[0]) for t in self.scenario.noises_w(self.point))
        self.noise_w = (na, nb, ne)
        # Model second-order statistics (public): var z_b = f^H W f + n_b, var z_a = f^H W f + n_a (the
        # Gaussian uplink form below), var z_ae = h^H W h + n_e, E{z_a z_ae^*} = f^H W h.
        Wc = self.W.to(torch.complex128)
        sB = float((self.f.conj() @ Wc @ self.f).real)
        sE = float((self.h.conj() @ Wc @ self.h).real)
        sAE = complex(self.f.conj() @ Wc @ self.h)
        self.var = np.array([sB + na, sB + nb, sE + ne])
        self.I_ae = max(0.0, math.log2(self.var[0] * self.var[2] / (self.var[0] * self.var[2] - abs(sAE) ** 2)))

    def _probe(self, n: int, seed: int) -> dict[str, np.ndarray]:
        na, nb, ne = self.noise_w
        # (11)'s effective noise_a = sigma_a^2 Tr W / P_b: noises_w already gives the effective variance,
        # so the Gaussian form of the uplink noise is used (literal_uplink=False) with P_b = Tr W.
        tr = float(self.W.diagonal().real.sum())
        out = nf.probe(self.W, self.f, self.h, na, nb, ne, tr, n, generator_for(seed, "nearfield-probe"),
                       literal_uplink=False)
        return {k: v.numpy() for k, v in out.items()}

    def observations(self, n: int, seed: int) -> Observations:
        z = self._probe(n, seed)
        cols = []
        for k, var in zip(("z_a", "z_b", "z_ae"), self.var, strict=True):
            s = z[k] / math.sqrt(var / 2.0)
            cols.append(np.stack([s.real, s.imag], 1))
        return Observations(cols[0], cols[1], cols[2], {"method": "equiprobable", "mean": 0.0, "std": 1.0})

    def skr_bound(self) -> dict[str, Any]:
        return {"skr_bound_bits": self.bound, "I_ae": self.I_ae, "kind": "004 (23) I(z_a; z_b | z_ae)"}

    def eve_leak_bits_per_probe(self) -> float:
        return self.I_ae

    def describe(self) -> dict[str, Any]:
        return {"system": "nearfield", "design": self.design, "export": self.source.get("export"),
                **({"checkpoint": self.source["checkpoint"]} if "checkpoint" in self.source else {}),
                "point": {k: v.reshape(-1).tolist() for k, v in self.point.items()}}
