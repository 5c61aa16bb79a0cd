"""IRS-assisted multi-antenna PKG (papers 000 and 001): second-order statistics and the paper geometries.

System (001 Sec. II): an M-antenna BS (Alice), a single-antenna UE (Bob), a single-antenna
eavesdropper (Eve) and an L = L_H x L_V element IRS. Only the NLoS parts of the channels carry
randomness (001 (21)-(24)); their second-order statistics are collected in :class:`IRSStats`, built
for a batch of locations by :func:`irs_stats_from_geometry` (:func:`stats_001`, :func:`stats_000`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from physics.arrays import bs_correlation, irs_correlation
from physics.checks import as_real, check_finite, check_int, check_real, value_checks_on
from physics.correlation import bob_eve_correlation
from physics.units import as_float64, dbm_to_w, noise_power_w, path_loss_linear

__all__ = ["GEOMETRY_000", "GEOMETRY_001", "IRSGeometry", "IRSStats", "irs_stats_from_geometry", "stats_000",
           "stats_001"]


@dataclass
class IRSStats:
    """Second-order statistics of one IRS-assisted link set (names as in 001, linear units).

    Shapes (broadcastable over leading batch dimensions ``...``):
      R_B ``[..., M, M]`` BS correlation (001 (9)); R_I ``[..., L, L]`` IRS correlation (001 (8));
      beta_h, beta_G, beta_f ``[...]`` path gains of the Alice-Bob, Alice-IRS and IRS-Bob links;
      kappa ``[...]`` Rician factor of G and f (001 Sec. II-B); P_b ``[...]`` Bob's power in W;
      noise_power ``[...]`` delta^2 in W. Case 2 (Eve's statistics known): beta_h_eve, beta_f_eve
      ``[...]`` and rho ``[...]`` the Bob-Eve correlation (001 Theorem 1).
    """

    R_B: torch.Tensor
    R_I: torch.Tensor
    beta_h: torch.Tensor
    beta_G: torch.Tensor
    beta_f: torch.Tensor
    kappa: torch.Tensor
    P_b: torch.Tensor
    noise_power: torch.Tensor
    beta_h_eve: torch.Tensor | None = None
    beta_f_eve: torch.Tensor | None = None
    rho: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                setattr(self, f.name, as_float64(v))
        if self.R_B.ndim < 2 or self.R_B.shape[-1] != self.R_B.shape[-2]:
            raise ValueError(f"R_B must be [..., M, M], got shape {tuple(self.R_B.shape)}")
        if self.R_I.ndim < 2 or self.R_I.shape[-1] != self.R_I.shape[-2]:
            raise ValueError(f"R_I must be [..., L, L], got shape {tuple(self.R_I.shape)}")
        for name in ("beta_h", "beta_G", "beta_f", "P_b", "noise_power"):
            check_finite(name, getattr(self, name), positive=True)
        check_finite("kappa", self.kappa, nonneg=True)
        eve = [self.beta_h_eve, self.beta_f_eve, self.rho]
        if any(v is not None for v in eve) and not all(v is not None for v in eve):
            raise ValueError("Case 2 needs all of beta_h_eve, beta_f_eve and rho (or none of them)")
        if self.has_eve:
            check_finite("beta_h_eve", self.beta_h_eve, positive=True)
            check_finite("beta_f_eve", self.beta_f_eve, positive=True)
            if value_checks_on() and (not torch.all(torch.isfinite(self.rho)) or torch.any(self.rho.abs() > 1)):
                raise ValueError(f"rho must lie in [-1, 1], got max |rho| {self.rho.abs().max().item()}")

    # -- shape helpers ---------------------------------------------------------------------
    @property
    def M(self) -> int:
        return self.R_B.shape[-1]

    @property
    def L(self) -> int:
        return self.R_I.shape[-1]

    @property
    def has_eve(self) -> bool:
        return self.rho is not None

    @property
    def batch_shape(self) -> torch.Size:
        shapes = [self.R_B.shape[:-2], self.R_I.shape[:-2]]
        shapes += [getattr(self, f.name).shape for f in fields(self)
                   if f.name not in ("R_B", "R_I") and getattr(self, f.name) is not None]
        return torch.broadcast_shapes(*shapes)

    def map(self, fn) -> IRSStats:
        """Apply ``fn`` to every tensor field (e.g. ``.to(device)`` or indexing after ``expand``)."""
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self)
                                if getattr(self, f.name) is not None})

    def to(self, device) -> IRSStats:
        return self.map(lambda t: t.to(device))

    def without_eve(self) -> IRSStats:
        return replace(self, beta_h_eve=None, beta_f_eve=None, rho=None)

    # -- derived quantities ----------------------------------------------------------------
    def rb_eig(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigen-decomposition of R_B with eigenvalues in descending order (001 (47)).

        Returns ``lambda [..., M]`` (clamped at 0) and ``U_B [..., M, M]`` (real, columns = vectors).
        """
        lam, U = torch.linalg.eigh(self.R_B)
        return lam.flip(-1).clamp_min(0.0), U.flip(-1)

    def irs_gain(self, theta: torch.Tensor) -> torch.Tensor:
        """s = theta^H (R_I o R_I) theta (001 Lemma 1 / (80)); ``[...]`` real. Max is sum(R_I o R_I)
        at equal phases (Corollary 1): R_I o R_I is elementwise non-negative."""
        A = (self.R_I * self.R_I).to(theta.real.dtype)  # real symmetric
        # A theta for real A as two real products (much faster than a broadcast complex einsum)
        if A.ndim == 2:
            Are, Aim = theta.real @ A, theta.imag @ A
        else:
            Are = (A @ theta.real.unsqueeze(-1)).squeeze(-1)
            Aim = (A @ theta.imag.unsqueeze(-1)).squeeze(-1)
        return (theta.real * Are + theta.imag * Aim).sum(-1)

    def equal_phase_gain(self) -> torch.Tensor:
        """sum_{i,j} [R_I o R_I]_{ij}: the IRS gain with equal phases."""
        return (self.R_I * self.R_I).sum((-1, -2))

    def variances(self, s: torch.Tensor) -> dict[str, torch.Tensor]:
        """Noise-normalised cascade variances for IRS gain ``s`` (001 Lemma 1, (49)-(50)).

        u = delta_U^2/delta^2 always; with Eve also v = delta_E^2/delta^2, x = delta_UE^2/delta^2
        (square-root form of 001 (37)) and det = u v - x^2 >= 0 without cancellation.
        """
        k2 = (1.0 + self.kappa) ** 2
        n = self.noise_power
        a_b, g_b = self.beta_h, self.beta_G * self.beta_f / k2
        out = {"u": (a_b + g_b * s) / n}
        if self.has_eve:
            a_e, g_e = self.beta_h_eve, self.beta_G * self.beta_f_eve / k2
            rho = self.rho
            v = (a_e + g_e * s) / n
            x = rho * (torch.sqrt(a_b * a_e) + torch.sqrt(g_b * g_e) * s) / n
            det = (1.0 - rho**2) * out["u"] * v + rho**2 * s * (
                torch.sqrt(a_b * g_e) - torch.sqrt(a_e * g_b)) ** 2 / n**2
            out.update(v=v, x=x, det=det)
        return out


@dataclass(frozen=True)
class IRSGeometry:
    """Fixed geometry and link budget of a paper's simulation setup (positions in m)."""

    bs_m: tuple[float, float, float]
    irs_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    beta0_direct_db: float = -32.6
    exponent_direct: float = 3.67
    beta0_reflect_db: float = -30.0
    exponent_reflect: float = 2.2
    bandwidth_hz: float | None = 20e6
    noise_figure_db: float = 10.0
    noise_power_dbm: float | None = None  # overrides the bandwidth/NF budget (000 gives delta^2)
    carrier_hz: float = 2.4e9  # not given by 001 (docs/architecture.md section 1); only sets Eve's rho
    spacing_wavelengths: float = 0.5

    def noise_power_w(self) -> torch.Tensor:
        if self.noise_power_dbm is not None:
            return dbm_to_w(self.noise_power_dbm)
        return noise_power_w(self.bandwidth_hz, self.noise_figure_db)


#: 001 Sec. VII-A: BS (5,-30,0), IRS (0,0,0), direct beta0 -32.6 dB exponent 3.67, reflecting
#: beta0 -30 dB exponent 2.2, W = 20 MHz, NF = 10 dB, P_b = 10 dBm (passed separately).
GEOMETRY_001 = IRSGeometry(bs_m=(5.0, -30.0, 0.0))


#: 000 Sec. VI-A: BS (5,-35,0), beta0 -30 dB for all links, exponents 3.67 / 2, delta^2 = -90 dBm.
GEOMETRY_000 = IRSGeometry(bs_m=(5.0, -35.0, 0.0), beta0_direct_db=-30.0, exponent_direct=3.67,
                           beta0_reflect_db=-30.0, exponent_reflect=2.0, bandwidth_hz=None,
                           noise_power_dbm=-90.0)


def _distance(a: torch.Tensor, b) -> torch.Tensor:
    return torch.linalg.vector_norm(a - as_float64(b).to(a.device), dim=-1)


def _check_positions(name: str, pos: torch.Tensor) -> None:
    if pos.shape[-1:] != (3,):
        raise ValueError(f"{name} must have shape [..., 3] (x, y, z in m), got {tuple(pos.shape)}")
    check_finite(name, pos)


def irs_stats_from_geometry(
    geometry: IRSGeometry,
    bob_m,
    *,
    M: int,
    L_H: int,
    L_V: int,
    eta,
    kappa,
    P_b_w,
    eve_m=None,
    L: int | None = None,
) -> IRSStats:
    """Statistics of a batch of Bob (and Eve) locations for a paper geometry.

    bob_m, eve_m ``[..., 3]``; eta ``[...]`` in [0, 1); kappa ``[...]`` >= 0; P_b_w ``[...]`` > 0.
    Path gains follow 001 (57) / 000 (30); rho = J0(2 pi |bob - eve| / lambda) (001 Theorem 1).
    """
    M, L_H, L_V = (check_int(nm, v) for nm, v in (("M", M), ("L_H", L_H), ("L_V", L_V)))
    check_real("carrier_hz", geometry.carrier_hz, low=1e6, high=1e12)
    if L is not None and L != L_H * L_V:
        raise ValueError(f"L must equal L_H * L_V = {L_H} * {L_V} = {L_H * L_V}, got L={L}")
    bob = as_real("bob_m", bob_m)
    _check_positions("bob_m", bob)
    eta = as_real("eta", eta)
    if value_checks_on() and (not torch.all(torch.isfinite(eta)) or torch.any(eta < 0) or torch.any(eta >= 1)):
        raise ValueError(f"eta must be finite and in [0, 1), got {eta.flatten()[:4].tolist()}")
    kappa = as_real("kappa", kappa)
    check_finite("kappa", kappa, nonneg=True)
    P_b = as_real("P_b_w", P_b_w)
    check_finite("P_b_w", P_b, positive=True)
    g = geometry
    dev = bob.device  # every constant below is built on the batch's device
    kappa, P_b = kappa.to(dev), P_b.to(dev)
    bs_irs = _distance(as_float64(g.bs_m).to(dev), g.irs_m)
    stats = dict(
        R_B=bs_correlation(as_float64(eta).to(dev), M),
        R_I=irs_correlation(L_H, L_V, g.spacing_wavelengths, device=dev),
        beta_h=path_loss_linear(_distance(bob, g.bs_m), g.beta0_direct_db, g.exponent_direct),
        beta_G=path_loss_linear(bs_irs, g.beta0_reflect_db, g.exponent_reflect),
        beta_f=path_loss_linear(_distance(bob, g.irs_m), g.beta0_reflect_db, g.exponent_reflect),
        kappa=kappa,
        P_b=P_b,
        noise_power=g.noise_power_w().to(dev),
    )
    if eve_m is not None:
        eve = as_real("eve_m", eve_m)
        _check_positions("eve_m", eve)
        stats.update(
            beta_h_eve=path_loss_linear(_distance(eve, g.bs_m), g.beta0_direct_db, g.exponent_direct),
            beta_f_eve=path_loss_linear(_distance(eve, g.irs_m), g.beta0_reflect_db, g.exponent_reflect),
            rho=bob_eve_correlation(torch.linalg.vector_norm(bob - eve, dim=-1), g.carrier_hz),
        )
    return IRSStats(**stats)


def stats_001(bob_m, *, M: int, L_H: int, L_V: int, eta=0.4, kappa=1.0, P_b_dbm=10.0, eve_m=None,
              carrier_hz: float = 2.4e9) -> IRSStats:
    """001 Sec. VII-A setup (Case 1 without ``eve_m``, Case 2 with it)."""
    if isinstance(P_b_dbm, torch.Tensor):
        check_finite("P_b_dbm", as_real("P_b_dbm", P_b_dbm))
    else:
        check_real("P_b_dbm", P_b_dbm)
    geometry = replace(GEOMETRY_001, carrier_hz=carrier_hz)
    return irs_stats_from_geometry(geometry, bob_m, M=M, L_H=L_H, L_V=L_V, eta=eta, kappa=kappa,
                                   P_b_w=dbm_to_w(P_b_dbm), eve_m=eve_m)


def stats_000(bob_m, *, M: int, L_H: int, L_V: int, P_dbm, eta=0.3) -> IRSStats:
    """000 Sec. VI-A setup: Rayleigh (kappa = 0), no Eve, P_a = P_b = P (so P_max = M P)."""
    return irs_stats_from_geometry(GEOMETRY_000, bob_m, M=M, L_H=L_H, L_V=L_V, eta=eta, kappa=0.0,
                                   P_b_w=dbm_to_w(P_dbm))
