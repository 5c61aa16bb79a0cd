"""Near-field XL-MIMO key generation (paper 004) in the scenario contract (:mod:`physics.scenario`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from physics.checks import (
    as_real,
    check_broadcast,
    check_choice,
    check_finite,
    check_int,
    check_range,
    check_real,
    value_checks_on,
)
from physics.nearfield.channel import CARRIER_HZ_RANGE, R_M_MAX, _channel_parts, near_field_channel
from physics.nearfield.designs import (
    _as_complex,
    design_gram,
    dinkelbach_power_split,
    mrc_design,
    optimal_beam,
    svd_design,
)
from physics.nearfield.rates import skr_from_gram
from physics.scenario import Batch, Design, Scenario
from physics.seeding import check_generator
from physics.units import SPEED_OF_LIGHT_M_S

__all__ = ["FRAMES", "NOISE_DBM_LIMITS", "N_MAX_SCENARIO", "P_T_DBM_LIMITS", "NearFieldDesignSpace",
           "NearFieldScenario"]


#: Transmit powers accepted by :class:`NearFieldScenario` (``P_t_dbm_range`` and the ``P_t_dbm`` of a batch),
#: dBm. 100 dBm is 10 MW, far above any radio a key-generation link would use (base stations radiate
#: ~1e2 W = 50 dBm, broadcast towers ~1e6 W = 90 dBm); -200 dBm (1e-23 W) is far below any receiver noise
#: floor (-105 dBm here). Outside these bounds 10^((P - 30)/10) W leaves float64 (inf above ~3100 dBm,
#: 0 below ~-3200 dBm) and the error would surface later as an unnamed "design over budget: inf > inf".
P_T_DBM_LIMITS = (-200.0, 100.0)


#: Noise powers accepted for ``sigma_a_dbm``, ``sigma_b_dbm``, ``sigma_e_dbm``, dBm: the same float64-safe span
#: (thermal noise in 1 Hz is -174 dBm; 5000 dBm overflowed 10^((s - 30)/10) W with an unnamed OverflowError).
NOISE_DBM_LIMITS = (-200.0, 100.0)


#: Largest array :class:`NearFieldScenario` takes (004 uses 256; extremely large arrays have a few thousand
#: elements): every draw carries two N-element complex channels through batches of thousands of draws, and
#: N = 1e8 ended in an 80 GB allocation traceback. The channel functions themselves take any N.
N_MAX_SCENARIO = 4096


FRAMES = ("plain", "snr_scaled")


class NearFieldDesignSpace(nn.Module):
    """Raw net outputs -> a feasible W = F F^H, a 2x2 PSD matrix in span{f, h}, built inside the graph.

    From the raw features x (``r_b_m, psi_b_rad, r_e_m, psi_e_rad, P_t_dbm``) the module computes Bob's
    and Eve's channels f, h (004 (2)-(3), real arithmetic, float64), Eve's array SNR
    g_e = P_a |h|^2 / sigma_e^2 and a frame of span{f, h}:
        p = f - (h^H f / |h|^2) h          (Bob's channel with Eve's direction projected out: Eve hears nothing),
        ``frame="plain"`` (default):  b1 = f / |f|,       b2 = p / |f|;
        ``frame="snr_scaled"``:       b1 = f / (g_e |f|), b2 = p / |f|.
    The net's head ``F`` (8 raw numbers) is a complex 2x2 matrix L (real parts row-major, then imaginary
    parts); the factor is F = sqrt(P_a) [b1 b2] L / ||[b1 b2] L||_F (so Tr W = P_a exactly: alpha* grows
    with P_a), returned as ``F [n, N, 2, 2]`` float64 (real, imag last). Every PSD W in span{f, h} with
    Tr W = P_a is reachable when h is not parallel to f; with Eve exactly on Bob p = 0 and W falls back to
    Bob's beam, the optimum there.
    Why these frames: the optimum is v = (1 - kappa) f + kappa p, kappa = g_e/(1 + g_e) (see
    :func:`optimal_design`). In the plain frame that is L = [[1 - kappa, 0], [kappa, 0]]: the MRC coefficient
    1 - kappa ~ 1/g_e is 1e-4..1e-9 over the training distribution and matters when Eve is close to Bob
    (|p| small): the net has to learn it from the features (an untrained net reaches 82-89 % of the optimum
    here, a trained one 99.9 %). Scaling b1 by 1/g_e makes the optimum L = [[1, 0], [1, 0]] for every
    instance and almost every L near-optimal (b1 is then negligible unless L's second row vanishes): an
    untrained net already reaches 99.99 % of the optimum in that frame, so it shows the physics, not
    learning. In either frame the oscillating phase of h^H f (Eve's sidelobes) is absorbed by p, which a
    net could not learn from raw positions.
    """

    def __init__(self, N: int, carrier_hz: float, feature_index: dict[str, int], sigma_e_dbm: float = -105.0,
                 frame: str = "plain"):
        super().__init__()
        self.N = check_int("N (number of BS antennas)", N, low=2)
        self.carrier_hz = check_real("carrier_hz", carrier_hz, low=CARRIER_HZ_RANGE[0], high=CARRIER_HZ_RANGE[1])
        self.wavelength_m = SPEED_OF_LIGHT_M_S / self.carrier_hz
        self.frame = check_choice("frame", frame, FRAMES)
        sigma_e_dbm = check_real("sigma_e_dbm", sigma_e_dbm, low=NOISE_DBM_LIMITS[0], high=NOISE_DBM_LIMITS[1])
        self.sigma_e_w = 10.0 ** ((sigma_e_dbm - 30.0) / 10.0)
        self.idx = dict(feature_index)
        self.heads = {"F": 8}   # raw head of output F: the 8 real numbers of the complex 2x2 L

    def channels(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(f_re, f_im, h_re, h_im) ``[n, N]`` float64 from raw features ``x [n, 5]``."""
        x = x.to(torch.float64)
        lam = torch.full_like(x[..., 0], self.wavelength_m)
        fr, fi = _channel_parts(self.N, x[..., self.idx["r_b_m"]], x[..., self.idx["psi_b_rad"]], lam)
        hr, hi = _channel_parts(self.N, x[..., self.idx["r_e_m"]], x[..., self.idx["psi_e_rad"]], lam)
        return fr, fi, hr, hi

    def forward(self, raw: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        fr, fi, hr, hi = self.channels(x)
        P_a = torch.pow(10.0, (x[..., self.idx["P_t_dbm"]].to(torch.float64) - 30.0) / 10.0)
        f_norm = torch.sqrt((fr * fr + fi * fi).sum(-1, keepdim=True))
        h2 = (hr * hr + hi * hi).sum(-1, keepdim=True)
        # c = h^H f / |h|^2 (real arithmetic): (hr - j hi)(fr + j fi)
        c_re = (hr * fr + hi * fi).sum(-1, keepdim=True) / h2
        c_im = (hr * fi - hi * fr).sum(-1, keepdim=True) / h2
        b1r, b1i = fr / f_norm, fi / f_norm
        if self.frame == "snr_scaled":
            g_e = (P_a[..., None] * h2 / self.sigma_e_w).clamp_min(1e-30)            # Eve's array SNR
            b1r, b1i = b1r / g_e, b1i / g_e
        b2r = (fr - (c_re * hr - c_im * hi)) / f_norm                             # p = f - c h
        b2i = (fi - (c_re * hi + c_im * hr)) / f_norm
        L = raw["F"].to(torch.float64)
        Lr, Li = L[..., 0:4].reshape(*L.shape[:-1], 2, 2), L[..., 4:8].reshape(*L.shape[:-1], 2, 2)
        # F = [b1 b2] L: F[:, k] = b1 L[0, k] + b2 L[1, k]
        Fr = b1r[..., :, None] * Lr[..., None, 0, :] - b1i[..., :, None] * Li[..., None, 0, :] \
            + b2r[..., :, None] * Lr[..., None, 1, :] - b2i[..., :, None] * Li[..., None, 1, :]
        Fi = b1r[..., :, None] * Li[..., None, 0, :] + b1i[..., :, None] * Lr[..., None, 0, :] \
            + b2r[..., :, None] * Li[..., None, 1, :] + b2i[..., :, None] * Lr[..., None, 1, :]
        fro = torch.sqrt((Fr * Fr + Fi * Fi).sum((-1, -2))).clamp_min(1e-150)
        s = (torch.sqrt(P_a) / fro)[..., None, None]
        return {"F": torch.stack([Fr * s, Fi * s], -1)}


class NearFieldScenario(Scenario):
    """004's near-field XL-MIMO key generation as a scenario (docs/architecture.md section 3).

    Features (raw, physical units): ``r_b_m, psi_b_rad, r_e_m, psi_e_rad, P_t_dbm`` (P_a = P_b = P_t, Sec. V-A).
    Training distribution: Bob uniform in ``r_m_range`` x ``psi_rad_range``; P_t uniform in ``P_t_dbm_range``
    (inside ``P_T_DBM_LIMITS`` = [-200, 100] dBm);
    Eve from a mixture, weights ``eve_mixture`` = (independent, same angle, same range, close):
      independent: uniform like Bob;  same angle: r_e uniform, psi_e = psi_b + U(-d_psi, d_psi) (Fig. 4);
      same range: r_e = r_b + U(-d_r, d_r), psi_e uniform (Fig. 5);  close: r_e = r_b + U(-d_r, d_r),
      psi_e = psi_b + U(-d_psi, d_psi) (Eve close to Bob, where designs differ most), with d_r = ``close_r_m``
      (0.5 m) and d_psi = ``close_psi_rad`` (0.01 rad), which also define the ``eve_close`` subset.
    Eve's draws are clipped to the ranges. Noise powers ``sigma_a_dbm``, ``sigma_b_dbm``, ``sigma_e_dbm``
    (-105 dBm each); effective noises (11): noise_a = (P_a/P_b) sigma_a^2 = sigma_a^2, noise_b, noise_e.
    Design: ``F [n, N, 2, 2]`` (W = F F^H), see :class:`NearFieldDesignSpace` (``design_frame``).
    """

    FEATURES = ("r_b_m", "psi_b_rad", "r_e_m", "psi_e_rad", "P_t_dbm")

    def __init__(
        self,
        N: int = 256,
        carrier_hz: float = 30e9,
        r_m_range: tuple[float, float] = (5.0, 25.0),
        psi_rad_range: tuple[float, float] = (-1.5, 1.5),
        P_t_dbm_range: tuple[float, float] = (0.0, 40.0),
        sigma_a_dbm: float = -105.0,
        sigma_b_dbm: float = -105.0,
        sigma_e_dbm: float = -105.0,
        eve_mixture: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25),
        close_r_m: float = 0.5,
        close_psi_rad: float = 0.01,
        design_frame: str = "plain",
    ):
        self.N = check_int("N (number of BS antennas)", N, low=2)
        if self.N > N_MAX_SCENARIO:
            raise ValueError(f"N (number of BS antennas) must be <= {N_MAX_SCENARIO} for the scenario, got {self.N} "
                             "(004 uses 256): every draw carries two N-element channels through batches of "
                             "thousands of draws")
        self.carrier_hz = check_real("carrier_hz", carrier_hz, low=CARRIER_HZ_RANGE[0], high=CARRIER_HZ_RANGE[1])
        r_m_range = check_range("r_m_range", r_m_range)
        if not r_m_range[0] > 0:
            raise ValueError(f"r_m_range must start at > 0 m, got {r_m_range[0]}")
        psi_rad_range = check_range("psi_rad_range", psi_rad_range, min_allowed=-math.pi / 2,
                                    max_allowed=math.pi / 2)
        # bounded to P_T_DBM_LIMITS (10 MW at most, see there): beyond, P_a = 10^((P - 30)/10) W overflows
        P_t_dbm_range = check_range("P_t_dbm_range", P_t_dbm_range, min_allowed=P_T_DBM_LIMITS[0],
                                    max_allowed=P_T_DBM_LIMITS[1])
        self.sigma_dbm = tuple(check_real(nm, v, low=NOISE_DBM_LIMITS[0], high=NOISE_DBM_LIMITS[1]) for nm, v in
                               (("sigma_a_dbm", sigma_a_dbm), ("sigma_b_dbm", sigma_b_dbm),
                                ("sigma_e_dbm", sigma_e_dbm)))
        mix = [check_real(f"eve_mixture[{i}]", v, low=0.0) for i, v in enumerate(eve_mixture)]
        if len(mix) != 4 or sum(mix) <= 0:
            raise ValueError(f"eve_mixture must be 4 weights >= 0 with a positive sum, got {list(eve_mixture)}")
        self.eve_mixture = tuple(m / sum(mix) for m in mix)
        self.close_r_m = check_real("close_r_m", close_r_m, low=0.0, low_inclusive=False)
        self.close_psi_rad = check_real("close_psi_rad", close_psi_rad, low=0.0, low_inclusive=False)
        self.design_frame = check_choice("design_frame", design_frame, FRAMES)
        self.r_m_range = tuple(float(v) for v in r_m_range)
        self.psi_rad_range = tuple(float(v) for v in psi_rad_range)
        self.P_t_dbm_range = tuple(float(v) for v in P_t_dbm_range)
        self.name = "nearfield"
        self.feature_names = self.FEATURES
        self.feature_units = ("m", "rad", "m", "rad", "dBm")

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> NearFieldScenario:
        """The scenario a checkpoint or an exported file was made with (inverse of :meth:`describe`)."""
        if desc.get("scenario") != "nearfield":
            raise ValueError(f"not a near-field scenario description: scenario = {desc.get('scenario')!r}")
        keys = ("N", "carrier_hz", "r_m_range", "psi_rad_range", "P_t_dbm_range", "sigma_a_dbm", "sigma_b_dbm",
                "sigma_e_dbm", "eve_mixture", "close_r_m", "close_psi_rad", "design_frame")
        return cls(**{k: tuple(desc[k]) if isinstance(desc[k], list) else desc[k] for k in keys})

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "scenario": self.name, "paper": "004", "N": self.N, "carrier_hz": self.carrier_hz,
            "feature_names": list(self.feature_names), "feature_units": list(self.feature_units),
            "r_m_range": list(self.r_m_range), "psi_rad_range": list(self.psi_rad_range),
            "P_t_dbm_range": list(self.P_t_dbm_range), "sigma_a_dbm": self.sigma_dbm[0],
            "sigma_b_dbm": self.sigma_dbm[1], "sigma_e_dbm": self.sigma_dbm[2],
            "eve_mixture": list(self.eve_mixture), "close_r_m": self.close_r_m, "close_psi_rad": self.close_psi_rad,
            "design_frame": self.design_frame,
            "outputs": {"F": [self.N, 2, 2]},
            "design": "W = F F^H, F [n, N, 2] complex (real, imag last); Tr W = P_a = 10^((P_t_dbm - 30)/10) W",
        }

    # -- sampling ------------------------------------------------------------------------------
    def _u(self, n, lo, hi, g):
        return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        n = check_int("number of draws", n, low=0)
        (r0, r1), (p0, p1) = self.r_m_range, self.psi_rad_range
        g = check_generator(generator)
        r_b, psi_b = self._u(n, r0, r1, g), self._u(n, p0, p1, g)
        P_t = self._u(n, *self.P_t_dbm_range, g)
        comp = torch.multinomial(torch.tensor(self.eve_mixture, dtype=torch.float64), max(n, 1), replacement=True,
                                 generator=g)[:n]
        r_ind, psi_ind = self._u(n, r0, r1, g), self._u(n, p0, p1, g)
        dr = self._u(n, -self.close_r_m, self.close_r_m, g)
        dpsi = self._u(n, -self.close_psi_rad, self.close_psi_rad, g)
        same_angle = (comp == 1) | (comp == 3)
        same_range = (comp == 2) | (comp == 3)
        r_e = torch.where(same_range, r_b + dr, r_ind).clamp(r0, r1)
        psi_e = torch.where(same_angle, psi_b + dpsi, psi_ind).clamp(p0, p1)
        return {"r_b_m": r_b, "psi_b_rad": psi_b, "r_e_m": r_e, "psi_e_rad": psi_e, "P_t_dbm": P_t}

    def point(self, n: int = 1, **values) -> Batch:
        """``n`` copies of 004 Fig. 3's setting (r_b 12.2 m, r_e 12 m, psi 0.2 rad both, P_t 30 dBm);
        any field overridable by a float or a tensor of length n (sweeps)."""
        n = check_int("n", n)
        base = {"r_b_m": 12.2, "psi_b_rad": 0.2, "r_e_m": 12.0, "psi_e_rad": 0.2, "P_t_dbm": 30.0}
        for k in values:
            if k not in base:
                raise ValueError(f"unknown point field {k!r}; allowed: {sorted(base)}")
        base.update(values)
        return {k: torch.as_tensor(v, dtype=torch.float64).expand(n).clone() for k, v in base.items()}

    def features(self, batch: Batch) -> torch.Tensor:
        """Raw features ``[n, 5]`` float64 in ``FEATURES`` order; the batch is checked as :meth:`skr` checks it
        (every field, real, distances in (0, R_M_MAX] m, angles in [-pi/2, pi/2] rad, P_t_dbm in
        ``P_T_DBM_LIMITS``), so that degrees or a missing field are named here, not met by the net."""
        self._check_batch(batch)
        cols = {k: as_real(k, batch[k]) for k in self.FEATURES}
        for k in ("r_b_m", "r_e_m"):
            if not torch.all((cols[k] > 0) & (cols[k] <= R_M_MAX)):      # one reduction; NaN fails too
                check_finite(k, cols[k], positive=True)
                raise ValueError(f"{k} must lie in (0, {R_M_MAX:g}] m, got max {cols[k].max().item():.6g}")
        for k in ("psi_b_rad", "psi_e_rad"):
            if not torch.all(cols[k].abs() <= math.pi / 2):
                check_finite(k, cols[k])
                raise ValueError(f"{k} must lie in [-pi/2, pi/2] rad (radians, not degrees), got "
                                 f"{cols[k][cols[k].abs() > math.pi / 2].reshape(-1)[0].item():.6g}")
        self.P_a_w(cols)
        return torch.stack(torch.broadcast_tensors(*[cols[k] for k in self.FEATURES]), -1)

    def feature_bounds(self) -> tuple[list[float], list[float]]:
        (r0, r1), (p0, p1), (q0, q1) = self.r_m_range, self.psi_rad_range, self.P_t_dbm_range
        return [r0, p0, r0, p0, q0], [r1, p1, r1, p1, q1]

    def design_space(self) -> NearFieldDesignSpace:
        return NearFieldDesignSpace(self.N, self.carrier_hz, {k: i for i, k in enumerate(self.FEATURES)},
                                    self.sigma_dbm[2], self.design_frame)

    # -- physics -------------------------------------------------------------------------------
    def channels(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, h) ``[n, N]`` complex128."""
        self._check_batch(batch, self.FEATURES[:4])
        f = near_field_channel(self.N, batch["r_b_m"], batch["psi_b_rad"], self.carrier_hz)
        h = near_field_channel(self.N, batch["r_e_m"], batch["psi_e_rad"], self.carrier_hz)
        return f, h

    def P_a_w(self, batch: Batch) -> torch.Tensor:
        """P_a = P_b = 10^((P_t_dbm - 30)/10) W; ValueError naming P_t_dbm if it is not real, not finite or
        outside ``P_T_DBM_LIMITS`` (where P_a would overflow to inf or underflow to 0)."""
        self._check_batch(batch, ("P_t_dbm",))
        P_t = as_real("P_t_dbm", batch["P_t_dbm"])
        lo, hi = P_T_DBM_LIMITS
        # one reduction; NaN fails too
        if value_checks_on() and not torch.all((P_t >= lo) & (P_t <= hi)):
            check_finite("P_t_dbm", P_t)
            bad = P_t[(P_t < lo) | (P_t > hi)].reshape(-1)[0].item()
            raise ValueError(f"P_t_dbm must lie in [{lo:g}, {hi:g}] dBm (P_T_DBM_LIMITS), got {bad:g}")
        return torch.pow(10.0, (P_t - 30.0) / 10.0)

    def noises_w(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Effective noise variances of (11): (P_a/P_b) sigma_a^2 (= sigma_a^2, P_a = P_b), sigma_b^2, sigma_e^2."""
        dev = batch["P_t_dbm"].device
        sa, sb, se = (torch.tensor(10.0 ** ((s - 30.0) / 10.0), dtype=torch.float64, device=dev)
                      for s in self.sigma_dbm)
        ratio = torch.ones_like(batch["P_t_dbm"], dtype=torch.float64)             # P_a / P_b = 1 (Sec. V-A)
        return sa * ratio, sb * ratio, se * ratio

    def skr(self, batch: Batch, outputs: Design) -> torch.Tensor:
        """Exact (23) in bits of the design (float64), through the 2x2 G; checks Tr W <= P_a (1e-5 relative:
        the net sees P_t_dbm in float32, rounded by up to 6e-8 relative, i.e. ~1e-6 of the power at 40 dBm;
        the design space meets the budget of its own input to float64 rounding, baselines exactly)."""
        self._check_batch(batch)
        self._check_design(outputs)
        batch = {k: as_real(k, batch[k]) for k in self.FEATURES}
        P_a = self.P_a_w(batch)
        f, h = self.channels(batch)
        F = outputs["F"]
        check_broadcast(F=("[..., N, r, 2]" if not F.is_complex() else "[..., N, r]",
                           F.shape[:-3] if not F.is_complex() else F.shape[:-2]),
                        **{"the batch's fields": ("", f.shape[:-1])})
        dev = outputs["F"].device
        f, h = f.to(dev), h.to(dev)
        G, det, tr = design_gram(outputs, f, h)
        P_a = P_a.to(dev)
        if value_checks_on() and torch.any(tr.detach() > P_a * (1 + 1e-5)):
            i = (tr.detach() / P_a).argmax()
            raise ValueError(f"design over budget: Tr W = {tr[i].item():.6g} W > P_a = {P_a[i].item():.6g} W")
        na, nb, ne = (t.to(dev) for t in self.noises_w(batch))
        return skr_from_gram(G, na, nb, ne, det=det)

    def _check_batch(self, batch: Batch, fields: tuple[str, ...] | None = None) -> None:
        """The batch has the ``fields`` (default: all features), as tensors whose shapes broadcast (no
        per-element work)."""
        fields = self.FEATURES if fields is None else fields
        if not isinstance(batch, dict):
            raise ValueError(f"batch must be a dict of tensors with keys {list(self.FEATURES)}, got "
                             f"{type(batch).__name__}")
        missing = [k for k in fields if k not in batch]
        if missing:
            raise ValueError(f"batch is missing field(s) {missing}; a near-field batch needs {list(self.FEATURES)}")
        for k in fields:
            if not isinstance(batch[k], torch.Tensor):
                raise ValueError(f"batch field {k} must be a tensor [n], got {type(batch[k]).__name__}")
        check_broadcast(**{k: ("", batch[k].shape) for k in fields})

    def _check_design(self, design: Design) -> None:
        """``design["F"]`` is ``[..., N, r, 2]`` real (or ``[..., N, r]`` complex) for this N and finite; the
        optional ``ortho_w``/``ortho_to`` come together. One reduction (the finiteness of F)."""
        if not isinstance(design, dict) or "F" not in design:
            keys = sorted(design) if isinstance(design, dict) else type(design).__name__
            raise ValueError(f"design must be a dict with key 'F' (the factor, W = F F^H), got {keys}")
        F = design["F"]
        if not isinstance(F, torch.Tensor) or F.dtype == torch.bool:
            raise ValueError(f"design F must be a real tensor [n, N, r, 2] (real, imag last), got "
                             f"{type(F).__name__ if not isinstance(F, torch.Tensor) else F.dtype}")
        ok = F.ndim >= 2 and F.shape[-2] == self.N if F.is_complex() else \
            F.ndim >= 3 and F.shape[-1] == 2 and F.shape[-3] == self.N
        if not ok:
            raise ValueError(f"design F must be [n, N, r, 2] real (real, imag last; W = F F^H) with N = {self.N}, "
                             f"got shape {tuple(F.shape)}{' complex' if F.is_complex() else ''}")
        if ("ortho_w" in design) != ("ortho_to" in design):
            raise ValueError("design keys ortho_w and ortho_to come together (white power orthogonal to a beam), "
                             f"got only {'ortho_w' if 'ortho_w' in design else 'ortho_to'}")
        if value_checks_on() and not bool(torch.isfinite(F).all()):
            raise ValueError("design F must be finite, got NaN or inf entries (a diverged net?)")
        if "ortho_w" in design:  # W = F F^H + ortho_w/(N-1) (I - u u^H): PSD needs ortho_w >= 0 and a unit u
            w, u = design["ortho_w"], design["ortho_to"]
            if not isinstance(w, torch.Tensor) or w.is_complex() or (value_checks_on() and not bool((w >= 0).all())):
                raise ValueError("design ortho_w (white power orthogonal to a beam, W) must be a real tensor >= 0, "
                                 f"got {w if not isinstance(w, torch.Tensor) else 'negative, NaN or complex values'}")
            ok = isinstance(u, torch.Tensor) and u.ndim >= 1 and (
                u.shape[-1] == self.N if u.is_complex() else u.ndim >= 2 and u.shape[-2:] == (self.N, 2))
            if not ok:
                got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
                raise ValueError(f"design ortho_to must be [n, N] complex or [n, N, 2] real with N = {self.N}, "
                                 f"got {got}")
            u = _as_complex(u)
            # float32 input: ~1e-7 rounding
            if value_checks_on() and not bool(((u.abs() ** 2).sum(-1) - 1).abs().le(1e-6).all()):
                raise ValueError("design ortho_to must have unit norm (the beam the white power is orthogonal to)")

    @staticmethod
    def _real(design: dict[str, torch.Tensor]) -> Design:
        out = {"F": torch.view_as_real(design["F"].to(torch.complex128))}
        if "ortho_w" in design:
            out["ortho_w"] = design["ortho_w"]
            out["ortho_to"] = torch.view_as_real(design["ortho_to"].to(torch.complex128))
        return out

    def baselines(self, batch: Batch, generator: torch.Generator) -> dict[str, Design]:
        """MRC (random scalar on Bob's beam), SVD w/o PA (P_S = P_a/2), SVD w/ PA (Dinkelbach), optimal beam.
        All deterministic given the batch (``generator`` unused)."""
        f, h = self.channels(batch)
        P_a = self.P_a_w(batch)
        na, nb, ne = self.noises_w(batch)
        P_S = dinkelbach_power_split(f, h, P_a, na, nb, ne)
        v = optimal_beam(f, h, P_a, ne)
        return {
            "mrc": self._real(mrc_design(f, P_a)),
            "svd_equal": self._real(svd_design(f, P_a, P_a / 2)),
            "svd_dinkelbach": self._real(svd_design(f, P_a, P_S)),
            "optimal_beam": self._real({"F": (torch.sqrt(P_a)[..., None] * v)[..., None]}),
        }

    def optimum(self, batch: Batch, generator: torch.Generator, **options) -> Design:
        """The closed-form optimum W* (:func:`optimal_design`) as a factor; solver ``options`` are ignored
        (there is nothing to iterate)."""
        f, h = self.channels(batch)
        P_a = self.P_a_w(batch)
        v = optimal_beam(f, h, P_a, self.noises_w(batch)[2])
        return self._real({"F": (torch.sqrt(P_a)[..., None] * v)[..., None]})

    def subsets(self, batch: Batch) -> dict[str, torch.Tensor]:
        close = ((batch["r_e_m"] - batch["r_b_m"]).abs() <= self.close_r_m) & \
            ((batch["psi_e_rad"] - batch["psi_b_rad"]).abs() <= self.close_psi_rad)
        return {"eve_close": close, "eve_nearer": batch["r_e_m"] < batch["r_b_m"]}
