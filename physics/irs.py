"""IRS-assisted multi-antenna PKG (papers 000 and 001): statistics, SKR closed forms, baselines.

System (001 Sec. II): an M-antenna BS (Alice), a single-antenna UE (Bob), a single-antenna
eavesdropper (Eve) and an L = L_H x L_V element IRS. Only the NLoS parts of the channels carry
randomness (001 (21)-(24)); their second-order statistics are collected in :class:`IRSStats`.

Numerics (docs/architecture.md section 5)
------------------------------
* Everything is computed in noise-normalised units: variances are divided by the noise power.
* 001 Lemma 1: E{(h + G O f)(h + G O f)^H} = delta_U^2 R_B with
  delta_U^2 = beta_h + beta_G beta_f / (1+kappa)^2 * theta^H (R_I o R_I) theta, so the covariance
  R_Z = (theta~ (x) P)^T R_c (theta~ (x) P)^* of Theorem 1 equals delta_U^2 P^T R_B P^*. One SKR
  evaluation is O(M^3 + L^2) instead of O((M(L+1))^2 M). The literal Kronecker form is kept in
  :func:`kronecker_covariances` as a test and benchmark reference.
* Alice's uplink observation is P^T (sqrt(P_b) c + n_a) (001 (21)). For invertible P, P^T is a
  bijection and the mutual information equals that of the whitened observation sqrt(P_b) c + n_a.
  With R_B = U diag(lambda) U^H and T = P^T U, (38) becomes

      I(a;b) = sum_i ln(1 + P_b u lambda_i) + sum_i ln(1 + u g_i)
               - ln det(I + u diag(sqrt lambda) (P_b I + T^H T) diag(sqrt lambda)),

  g = eig(T diag(lambda) T^H), u = delta_U^2 / delta^2. Every determinant is of the form
  det(I + Hermitian PSD) (Cholesky / eigenvalues, no cancellation). For singular P, (38) is 0/0
  and this form is its continuous extension. Equality with (38) and (33)-(34) for random P is
  tested against the literal Kronecker form and against the full joint covariance.
* Eve (001 Theorem 1, with the square-root form of (37); (69) drops the square root, a slip):
  with v = delta_E^2/delta^2, x = delta_UE^2/delta^2, the conditional covariance of Eve's cascade
  given Alice's whitened observation is U diag(lambda d) U^H,
  d_i = (v + P_b lambda_i (u v - x^2)) / (1 + P_b u lambda_i), and
  u v - x^2 = (1 - rho^2) u v + rho^2 s (sqrt(a_b g_e) - sqrt(a_e g_b))^2 is formed without
  cancellation (a: direct-link variances, g: reflected-link variances per unit IRS gain s).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import torch

from physics.arrays import bs_correlation, irs_correlation
from physics.correlation import bob_eve_correlation
from physics.optim import projected_ascent, waterfill_allocation
from physics.units import LN2, as_float64, dbm_to_w, noise_power_w, path_loss_linear

# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def _check_finite_nonneg(name: str, value: torch.Tensor, strictly_positive: bool = False) -> None:
    if not torch.all(torch.isfinite(value)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    bad = value <= 0 if strictly_positive else value < 0
    if torch.any(bad):
        allowed = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be {allowed}, got min {value.min().item():.6g}")


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
            _check_finite_nonneg(name, getattr(self, name), strictly_positive=True)
        _check_finite_nonneg("kappa", self.kappa)
        eve = [self.beta_h_eve, self.beta_f_eve, self.rho]
        if any(v is not None for v in eve) and not all(v is not None for v in eve):
            raise ValueError("Case 2 needs all of beta_h_eve, beta_f_eve and rho (or none of them)")
        if self.has_eve:
            _check_finite_nonneg("beta_h_eve", self.beta_h_eve, strictly_positive=True)
            _check_finite_nonneg("beta_f_eve", self.beta_f_eve, strictly_positive=True)
            if not torch.all(torch.isfinite(self.rho)) or torch.any(self.rho.abs() > 1):
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


def _real(name: str, x) -> torch.Tensor:
    """``x`` as float64, refusing complex input (a complex value is never silently cast to its real part)."""
    if (isinstance(x, torch.Tensor) and x.is_complex()) or isinstance(x, complex) or \
            (not isinstance(x, torch.Tensor) and torch.as_tensor(x).is_complex()):
        raise ValueError(f"{name} must be real, got a complex value")
    return as_float64(x)


#: tolerance on |theta| = 1 accepted by the closed forms (float32 nets project to about 1e-7)
THETA_MODULUS_TOL = 1e-3


def check_unit_modulus(theta: torch.Tensor, tol: float = THETA_MODULUS_TOL) -> None:
    """ValueError unless every finite IRS coefficient has |theta| within ``tol`` of 1 (001 (5))."""
    if not isinstance(theta, torch.Tensor) or not theta.is_complex():
        kind = f"tensor {theta.dtype}" if isinstance(theta, torch.Tensor) else type(theta).__name__
        raise ValueError(f"theta must be a complex tensor of unit-modulus IRS coefficients, got {kind}")
    dev = (theta.detach().abs() - 1).abs()
    if bool((dev > tol).any()):
        raise ValueError(f"theta must be unit-modulus (| |theta| - 1 | <= {tol}), got |theta| off by up to "
                         f"{dev[torch.isfinite(dev)].max().item():.3g}")


def _check_positions(name: str, pos: torch.Tensor) -> None:
    if pos.shape[-1:] != (3,):
        raise ValueError(f"{name} must have shape [..., 3] (x, y, z in m), got {tuple(pos.shape)}")
    if not torch.all(torch.isfinite(pos)):
        raise ValueError(f"{name} must be finite")


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
    from physics.scenarios import check_positive_int, check_real

    M, L_H, L_V = (check_positive_int(nm, v) for nm, v in (("M", M), ("L_H", L_H), ("L_V", L_V)))
    check_real("carrier_hz", geometry.carrier_hz, low=1e6, high=1e12)
    if L is not None and L != L_H * L_V:
        raise ValueError(f"L must equal L_H * L_V = {L_H} * {L_V} = {L_H * L_V}, got L={L}")
    bob = _real("bob_m", bob_m)
    _check_positions("bob_m", bob)
    eta = _real("eta", eta)
    if not torch.all(torch.isfinite(eta)) or torch.any(eta < 0) or torch.any(eta >= 1):
        raise ValueError(f"eta must be finite and in [0, 1), got {eta.flatten()[:4].tolist()}")
    kappa = _real("kappa", kappa)
    if not torch.all(torch.isfinite(kappa)) or torch.any(kappa < 0):
        raise ValueError(f"kappa must be finite and >= 0, got min {kappa.min().item()}")
    P_b = _real("P_b_w", P_b_w)
    if not torch.all(torch.isfinite(P_b)) or torch.any(P_b <= 0):
        raise ValueError(f"P_b_w must be finite and > 0, got min {P_b.min().item()}")
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
        eve = _real("eve_m", eve_m)
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
    from physics.scenarios import check_real

    if not isinstance(P_b_dbm, torch.Tensor):
        check_real("P_b_dbm", P_b_dbm)
    elif P_b_dbm.is_complex() or not bool(torch.isfinite(P_b_dbm).all()):
        raise ValueError("P_b_dbm must be finite and real")
    geometry = replace(GEOMETRY_001, carrier_hz=carrier_hz)
    return irs_stats_from_geometry(geometry, bob_m, M=M, L_H=L_H, L_V=L_V, eta=eta, kappa=kappa,
                                   P_b_w=dbm_to_w(P_b_dbm), eve_m=eve_m)


def stats_000(bob_m, *, M: int, L_H: int, L_V: int, P_dbm, eta=0.3) -> IRSStats:
    """000 Sec. VI-A setup: Rayleigh (kappa = 0), no Eve, P_a = P_b = P (so P_max = M P)."""
    return irs_stats_from_geometry(GEOMETRY_000, bob_m, M=M, L_H=L_H, L_V=L_V, eta=eta, kappa=0.0,
                                   P_b_w=dbm_to_w(P_dbm))


# --------------------------------------------------------------------------------------------
# Designs and their validation
# --------------------------------------------------------------------------------------------


class Design(NamedTuple):
    """A joint design: precoder ``P [..., M, M]`` complex and IRS phases ``theta [..., L]`` complex."""

    P: torch.Tensor
    theta: torch.Tensor


def _check_design(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> None:
    M, L = stats.M, stats.L
    if P.ndim < 2 or P.shape[-2:] != (M, M):
        raise ValueError(f"P must have shape [..., M, M] with M = {M}, got {tuple(P.shape)}")
    if theta.ndim < 1 or theta.shape[-1] != L:
        raise ValueError(f"theta must have shape [..., L] with L = {L}, got {tuple(theta.shape)}")
    if not (P.is_complex() and theta.is_complex()):
        raise ValueError(f"P and theta must be complex tensors, got {P.dtype} and {theta.dtype}")


def _real_dtype(P: torch.Tensor) -> torch.dtype:
    return P.real.dtype


def _logdet_hpd(A: torch.Tensor) -> torch.Tensor:
    """ln det of a Hermitian positive-definite matrix by Cholesky (real result)."""
    Lc = torch.linalg.cholesky(A)
    return 2.0 * torch.log(torch.diagonal(Lc, dim1=-2, dim2=-1).real).sum(-1)


def _eye(M: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(M, dtype=like.dtype, device=like.device)


def _mutual_informations_nats(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats, need_eve: bool):
    """I(a;b) and, with Eve, I(a;e) and I(b;e) in nats (structured O(M^3 + L^2) form)."""
    _check_design(P, theta, stats)
    rdt = _real_dtype(P)
    s = stats.irs_gain(theta)
    var = {k: t.to(rdt) for k, t in stats.variances(s.to(torch.float64)).items()}
    lam, U = stats.rb_eig()
    lam, U = lam.to(rdt), U.to(P.dtype)
    P_b = stats.P_b.to(rdt)
    M = stats.M
    T = P.transpose(-1, -2) @ U  # P^T U (the cascade variances u, v, x are already per noise power)
    u = var["u"]
    sq = torch.sqrt(lam)
    # I(a;b): three log-determinants of I + PSD.
    term_a = torch.log1p(P_b[..., None] * u[..., None] * lam).sum(-1)
    TlamT = (T * lam[..., None, :]) @ T.conj().transpose(-1, -2)  # T diag(lambda) T^H
    TlamT = 0.5 * (TlamT + TlamT.conj().transpose(-1, -2))
    g = torch.linalg.eigvalsh(TlamT).clamp_min(0.0)
    term_b = torch.log1p(u[..., None] * g).sum(-1)
    inner = P_b[..., None, None] * _eye(M, T) + T.conj().transpose(-1, -2) @ T
    joint = _eye(M, T) + u[..., None, None] * (sq[..., :, None] * inner * sq[..., None, :])
    term_ab = _logdet_hpd(0.5 * (joint + joint.conj().transpose(-1, -2)))
    I_ab = term_a + term_b - term_ab
    if not need_eve:
        return I_ab, None, None
    v, det = var["v"], var["det"]
    # I(a;e) = h(e) - h(e | a): conditional covariance U diag(lambda d) U^H of Eve's cascade.
    d = (v[..., None] + P_b[..., None] * lam * det[..., None]) / (1.0 + P_b[..., None] * u[..., None] * lam)
    TdT = (T * (lam * d)[..., None, :]) @ T.conj().transpose(-1, -2)
    TdT = 0.5 * (TdT + TdT.conj().transpose(-1, -2))
    I_ae = torch.log1p(v[..., None] * g).sum(-1) - _logdet_hpd(_eye(M, T) + TdT)
    # I(b;e): both observe T diag(sqrt lambda) z + noise with per-mode 2x2 covariance [[u, x],[x, v]].
    I_be = (torch.log1p(u[..., None] * g) + torch.log1p(v[..., None] * g)
            - torch.log1p(g * (u + v)[..., None] + g**2 * det[..., None])).sum(-1)
    return I_ab, I_ae, I_be


def skr_case1(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> torch.Tensor:
    """I(y_a; y_b^T) of 001 (38) in bits (= 000 (17) with kappa = 0): the Case 1 objective.

    P ``[..., M, M]`` complex precoder (Tr(P P^H) = P_max is the caller's constraint), theta
    ``[..., L]`` complex unit-modulus IRS coefficients. Returns ``[...]`` bits per channel probe,
    differentiable in P and theta. Computes in P's precision (use complex128 for evaluation).
    """
    check_unit_modulus(theta)
    I_ab, _, _ = _mutual_informations_nats(P, theta, stats, need_eve=False)
    return I_ab / LN2


def skr_case2_parts(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> dict[str, torch.Tensor]:
    """R1 = I(a;b) - I(a;e) (33), R2 = I(a;b) - I(b;e) (34) and the mutual informations, in bits."""
    if not stats.has_eve:
        raise ValueError("skr_case2 needs Eve's statistics (beta_h_eve, beta_f_eve, rho) in stats")
    check_unit_modulus(theta)
    I_ab, I_ae, I_be = _mutual_informations_nats(P, theta, stats, need_eve=True)
    out = {"I_ab": I_ab / LN2, "I_ae": I_ae / LN2, "I_be": I_be / LN2}
    out["R1"] = out["I_ab"] - out["I_ae"]
    out["R2"] = out["I_ab"] - out["I_be"]
    return out


def skr_case2(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> torch.Tensor:
    """R_sk = max(R1, R2) of 001 (32)-(37) in bits (square-root cross term of (37)); ``[...]``."""
    parts = skr_case2_parts(P, theta, stats)
    return torch.maximum(parts["R1"], parts["R2"])


def skr(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats, case: int = 1) -> torch.Tensor:
    """Case 1 objective (38) or Case 2 SKR (32), in bits."""
    if case == 1:
        return skr_case1(P, theta, stats)
    if case == 2:
        return skr_case2(P, theta, stats)
    raise ValueError(f"case must be 1 (Eve unknown) or 2 (Eve known), got {case!r}")


# --------------------------------------------------------------------------------------------
# Literal Kronecker reference (tests and benchmarks only)
# --------------------------------------------------------------------------------------------


def _cascade_covariance(stats: IRSStats, direct: torch.Tensor, reflect: torch.Tensor) -> torch.Tensor:
    """[[direct R_B, 0], [0, reflect (R_I o R_I) (x) R_B]] of 001 (35)-(37), ``[..., M(L+1), M(L+1)]``."""
    R_B, A = stats.R_B, stats.R_I * stats.R_I
    M, L = stats.M, stats.L
    batch = torch.broadcast_shapes(R_B.shape[:-2], A.shape[:-2], direct.shape, reflect.shape)
    top = direct[..., None, None] * R_B
    kron = A[..., :, None, :, None] * R_B[..., None, :, None, :]  # [..., L, M, L, M]
    kron = kron.reshape(*kron.shape[:-4], L * M, L * M)
    kron = reflect[..., None, None] * kron
    out = torch.zeros(*batch, M * (L + 1), M * (L + 1), dtype=torch.float64, device=R_B.device)
    out[..., :M, :M] = top
    out[..., M:, M:] = kron
    return out


def kronecker_covariances(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> dict[str, torch.Tensor]:
    """R_Z^U, R_Z^E, R_Z^{U,E} of 001 Theorem 1 by the literal (theta~ (x) P)^T R_c (theta~ (x) P)^*.

    O((M(L+1))^2 M) per draw: a reference for tests and ``benchmarks/skr_cost.py``, not for training.
    Values in W-gain units (not noise-normalised).
    """
    _check_design(P, theta, stats)
    k2 = (1.0 + stats.kappa) ** 2
    ones = torch.ones(*theta.shape[:-1], 1, dtype=theta.dtype, device=theta.device)
    theta_t = torch.cat([ones, theta], dim=-1)  # theta~ = [1, theta^T]^T
    A = (theta_t[..., :, None, None] * P[..., None, :, :]).reshape(*torch.broadcast_shapes(
        theta_t.shape[:-1], P.shape[:-2]), -1, stats.M)  # theta~ (x) P: [..., M(L+1), M]
    out = {}
    blocks = {"U": (stats.beta_h, stats.beta_G * stats.beta_f / k2)}
    if stats.has_eve:
        blocks["E"] = (stats.beta_h_eve, stats.beta_G * stats.beta_f_eve / k2)
        blocks["UE"] = (stats.rho * torch.sqrt(stats.beta_h * stats.beta_h_eve),
                        stats.rho * stats.beta_G / (1 + stats.kappa)
                        * torch.sqrt(stats.beta_f * stats.beta_f_eve / k2))
    for key, (direct, reflect) in blocks.items():
        Rc = _cascade_covariance(stats, direct, reflect).to(P.dtype)
        out[key] = A.transpose(-1, -2) @ Rc @ A.conj()
    return out


def joint_covariance_kronecker(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> torch.Tensor:
    """Noise-normalised covariance of (y_a, y_b^T[, y_e^T]) from 001 (59)-(72), ``[..., 3M, 3M]``
    (``2M`` without Eve), built from the literal Kronecker R_Z's. Test reference."""
    Z = kronecker_covariances(P, theta, stats)
    n = stats.noise_power[..., None, None].to(P.dtype)
    P_b = stats.P_b[..., None, None].to(P.dtype)
    M = stats.M
    eye = _eye(M, P)
    PtPc = P.transpose(-1, -2) @ P.conj()
    R_a = (P_b * Z["U"] + n * PtPc) / n
    R_b = Z["U"] / n + eye
    R_ab = torch.sqrt(P_b) * Z["U"] / n
    rows = [[R_a, R_ab], [R_ab.conj().transpose(-1, -2), R_b]]
    if stats.has_eve:
        R_e = Z["E"] / n + eye
        R_ae = torch.sqrt(P_b) * Z["UE"] / n
        R_be = Z["UE"] / n
        rows = [[R_a, R_ab, R_ae],
                [R_ab.conj().transpose(-1, -2), R_b, R_be],
                [R_ae.conj().transpose(-1, -2), R_be.conj().transpose(-1, -2), R_e]]
    shape = torch.broadcast_shapes(*[blk.shape[:-2] for row in rows for blk in row])
    return torch.cat([torch.cat([blk.expand(*shape, M, M) for blk in row], -1) for row in rows], -2)


def gaussian_mi_bits(cov: torch.Tensor, idx_x: slice, idx_y: slice) -> torch.Tensor:
    """I(X;Y) = log2(|R_x||R_y| / |R_xy|) for jointly circular Gaussian blocks of ``cov`` (001 (58))."""
    def ld(C):
        return torch.linalg.slogdet(C)[1]

    start, stop = min(idx_x.start, idx_y.start), max(idx_x.stop, idx_y.stop)
    if idx_x.stop == idx_y.start or idx_y.stop == idx_x.start:
        joint = cov[..., start:stop, start:stop]
    else:
        sel = list(range(idx_x.start, idx_x.stop)) + list(range(idx_y.start, idx_y.stop))
        joint = cov[..., sel, :][..., :, sel]
    return (ld(cov[..., idx_x, idx_x]) + ld(cov[..., idx_y, idx_y]) - ld(joint)) / LN2


def skr_case1_kronecker(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> torch.Tensor:
    """001 (38) literally, in SI units: log2(|P_b R_Z + d^2 P^T P^*| |R_Z + d^2 I| /
    |P_b d^2 R_Z + d^2 P^T P^* (R_Z + d^2 I)|) with the Kronecker R_Z and slogdet.
    Test and benchmark reference."""
    RZ = kronecker_covariances(P, theta, stats.without_eve())["U"]
    n = stats.noise_power[..., None, None].to(P.dtype)
    P_b = stats.P_b[..., None, None].to(P.dtype)
    Q = P.transpose(-1, -2) @ P.conj()
    eye = _eye(stats.M, P)
    num1 = torch.linalg.slogdet(P_b * RZ + n * Q)[1]
    num2 = torch.linalg.slogdet(RZ + n * eye)[1]
    den = torch.linalg.slogdet(P_b * n * RZ + n * Q @ (RZ + n * eye))[1]
    return (num1 + num2 - den) / LN2


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


def equal_phases(stats: IRSStats, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """theta = 1 for every element (001 Corollary 1), ``[..., L]``."""
    return torch.ones(*stats.batch_shape, stats.L, dtype=dtype, device=stats.R_B.device)


def _check_pmax(P_max, stats: IRSStats) -> torch.Tensor:
    P_max = as_float64(P_max).to(stats.R_B.device)
    if not torch.all(torch.isfinite(P_max)) or torch.any(P_max <= 0):
        raise ValueError(f"P_max (W) must be finite and > 0, got min {P_max.min().item()}")
    return P_max


def normalise_power(P: torch.Tensor, P_max) -> torch.Tensor:
    """Scale P so that Tr(P P^H) = P_max exactly (001 (40a), (53))."""
    P_max = as_float64(P_max).to(P.device).to(P.real.dtype)
    fro2 = (P.abs() ** 2).sum((-1, -2))
    return P * torch.sqrt(P_max / fro2)[..., None, None]


def identity_design(stats: IRSStats, P_max) -> Design:
    """P = sqrt(P_max / M) I with equal IRS phases (the Corollary 2/3 design)."""
    P_max = _check_pmax(P_max, stats)
    M = stats.M
    shape = torch.broadcast_shapes(stats.batch_shape, P_max.shape)
    eye = torch.eye(M, dtype=torch.complex128, device=P_max.device).expand(*shape, M, M)
    P = eye * torch.sqrt(P_max / M).expand(shape)[..., None, None]
    return Design(P, equal_phases(stats).expand(*shape, stats.L))


def random_design(stats: IRSStats, P_max, generator: torch.Generator) -> Design:
    """Random configuration of 001 Sec. VII: i.i.d. complex Gaussian P scaled to Tr(P P^H) = P_max
    exactly, and phases uniform in [0, 2 pi). Draws from ``generator`` only."""
    P_max = _check_pmax(P_max, stats)
    M, L = stats.M, stats.L
    shape = torch.broadcast_shapes(stats.batch_shape, P_max.shape)
    dev = P_max.device
    P = torch.complex(torch.randn(*shape, M, M, generator=generator, dtype=torch.float64, device=dev),
                      torch.randn(*shape, M, M, generator=generator, dtype=torch.float64, device=dev))
    phase = 2 * torch.pi * torch.rand(*shape, L, generator=generator, dtype=torch.float64, device=dev)
    return Design(normalise_power(P, P_max), torch.polar(torch.ones_like(phase), phase))


def _autograd_ready(stats: IRSStats, P_max) -> tuple[IRSStats, torch.Tensor]:
    """Copies of the inputs usable by autograd even when the caller runs under ``torch.inference_mode``
    (Lightning's validation loop): call inside ``torch.inference_mode(False)``."""
    return stats.map(lambda t: t.clone()), as_float64(P_max).clone()


def _per_channel_objective(case_objective: str, q: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-subchannel terms (nats) of 001 (46)/(48), (49)/(51), (50)/(52) in q = p_i^2.

    c: noise-normalised a = P_b u, b = P_a u, e = P_a v, and for Eve w1 = P_b P_a det,
    w2 = P_a^2 det (det = u v - x^2), all broadcast against q.
    (46): (1 + a q)(1 + b q) / (1 + (a + b) q)
    (49): (1 + b q)(1 + (a + e) q + w1 q^2) / ((1 + (a + b) q)(1 + e q))
    (50): (1 + a q)(1 + (b + e) q + w2 q^2) / ((1 + (a + b) q)(1 + e q))
    """
    # Exact objectives restricted to P^T U_B = V diag(sqrt q) (see exact_design): per eigen-channel
    # constants A = P_b u lam_i, su = u lam_i, sv = v lam_i, sd = lam_i d_i, sdet = lam_i^2 (u v - x^2).
    if case_objective in ("exact_I", "exact_R1", "exact_R2"):
        I_exact = torch.log1p(c["A"]) + torch.log1p(c["su"] * q) - torch.log1p(c["A"] + c["su"] * q)
        if case_objective == "exact_I":
            return I_exact
        if case_objective == "exact_R1":  # I(a;b) - I(a;e)
            return I_exact - torch.log1p(c["sv"] * q) + torch.log1p(c["sd"] * q)
        return I_exact - (torch.log1p(c["su"] * q) + torch.log1p(c["sv"] * q)
                          - torch.log1p((c["su"] + c["sv"]) * q + c["sdet"] * q * q))
    if case_objective not in ("I", "R1", "R2"):
        raise ValueError(f"unknown objective {case_objective!r}")
    a, b = c["a"], c["b"]
    base = -torch.log1p((a + b) * q)
    if case_objective == "I":
        return torch.log1p(a * q) + torch.log1p(b * q) + base
    e = c["e"]
    if case_objective == "R1":
        return torch.log1p(b * q) + torch.log1p((a + e) * q + c["w1"] * q * q) - torch.log1p(e * q) + base
    return torch.log1p(a * q) + torch.log1p((b + e) * q + c["w2"] * q * q) - torch.log1p(e * q) + base


def waterfill_objective_constants(stats: IRSStats, P_max) -> dict[str, torch.Tensor]:
    """Noise-normalised constants of (46)/(49)/(50) with equal IRS phases (Corollary 1)."""
    P_max = _check_pmax(P_max, stats)
    var = stats.variances(stats.equal_phase_gain())
    P_a = P_max / stats.M
    c = {"a": stats.P_b * var["u"], "b": P_a * var["u"]}
    if stats.has_eve:
        c.update(e=P_a * var["v"], w1=stats.P_b * P_a * var["det"], w2=P_a * P_a * var["det"])
    return {k: v[..., None] for k, v in c.items()}  # broadcast over subchannels


def waterfill_z(stats: IRSStats, P_max, objective: str = "I") -> torch.Tensor:
    """z_i = p_i^2 / p_{B,i} maximising (48) ("I"), (51) ("R1") or (52) ("R2"); ``[..., M]``."""
    with torch.inference_mode(False):
        stats, P_max = _autograd_ready(stats, P_max)
        return _waterfill_z(stats, P_max, objective)


def _waterfill_z(stats: IRSStats, P_max, objective: str) -> torch.Tensor:
    c = waterfill_objective_constants(stats, P_max)
    lam, _ = stats.rb_eig()
    shape = torch.broadcast_shapes(lam.shape, *[v.shape for v in c.values()])
    c = {k: v.expand(shape) for k, v in c.items()}
    lam = lam.expand(shape)

    def phi(q):
        return _per_channel_objective(objective, q, c)

    return waterfill_allocation(lam, phi, float(stats.M))


def precoder_from_allocation(stats: IRSStats, z: torch.Tensor, P_max, basis: str = "eigen") -> torch.Tensor:
    """P = sqrt(P_max/M) P_e with P_e = (R_B^{-1/2} U Lambda U^H)^* (001 after (48)).

    ``basis="eigen"``: U = U_B (docs/architecture.md section 1: only then does (48a) equal
    Tr(P_e P_e^H) = M), which gives P_e = U_B diag(sqrt z) U_B^H. ``basis="identity"``: U = I as
    printed in 001; P_e is then rescaled. Either way Tr(P P^H) = P_max exactly.
    """
    lam, U = stats.rb_eig()
    P_max = _check_pmax(P_max, stats)
    if basis == "eigen":
        Pe = (U * torch.sqrt(z)[..., None, :]) @ U.transpose(-1, -2)
    elif basis == "identity":
        p = torch.sqrt(lam * z)
        inv_sqrt = (U * lam.clamp_min(1e-300).rsqrt()[..., None, :]) @ U.transpose(-1, -2)
        Pe = inv_sqrt * p[..., None, :]  # R_B^{-1/2} I diag(p) I^H
    else:
        raise ValueError(f"basis must be 'eigen' (U = U_B) or 'identity' (U = I), got {basis!r}")
    return normalise_power(Pe.to(torch.complex128).conj(), P_max)


def water_filling_design(stats: IRSStats, P_max, case: int = 1, basis: str = "eigen") -> Design:
    """Water-filling baseline of 001 Sec. V with equal IRS phases (Corollary 1).

    case 1: (P1.1) / 000 (P2). case 2: solves (P2.1) and (P2.2) and keeps, per draw, the design
    with the larger exact SKR (32).
    """
    theta = equal_phases(stats)
    if case == 1:
        P = precoder_from_allocation(stats, waterfill_z(stats, P_max, "I"), P_max, basis)
        return Design(P, theta.expand(*P.shape[:-2], stats.L))
    if case == 2:
        if not stats.has_eve:
            raise ValueError("water_filling case=2 needs Eve's statistics in stats")
        P1 = precoder_from_allocation(stats, waterfill_z(stats, P_max, "R1"), P_max, basis)
        P2 = precoder_from_allocation(stats, waterfill_z(stats, P_max, "R2"), P_max, basis)
        theta = theta.expand(*P1.shape[:-2], stats.L)
        better1 = skr_case2(P1, theta, stats) >= skr_case2(P2, theta, stats)
        return Design(torch.where(better1[..., None, None], P1, P2), theta)
    raise ValueError(f"case must be 1 or 2, got {case!r}")


def water_filling(stats: IRSStats, P_max, case: int = 1, basis: str = "eigen") -> torch.Tensor:
    """The water-filling baseline precoder P ``[..., M, M]`` complex128 (001 Sec. V-A/V-B); use it
    with equal IRS phases :func:`equal_phases` (001 Corollary 1). Tr(P P^H) = P_max exactly."""
    return water_filling_design(stats, P_max, case, basis).P


def exact_design(stats: IRSStats, P_max, case: int = 1) -> Design:
    """Exact-objective water-filling in the eigenbasis of R_B (ours, not in 001), equal IRS phases.

    Restricting P^T U_B = V diag(sqrt q) (V any unitary; we take P = conj(U_B) diag(sqrt q)) makes
    T^H T = diag(q) and T diag(lambda) T^H = V diag(q lambda) V^H, so the exact I(a;b) of (38) splits
    into per-eigen-channel terms ln((1 + A_i)(1 + u lambda_i q_i) / (1 + A_i + u lambda_i q_i)),
    A_i = P_b u lambda_i, which are concave in q_i (no noise-term approximation as in (43)); Eve's
    terms split the same way. The KKT water-filling over q (sum q = P_max) then gives the optimum
    within that family; on the 001 training distribution it was never beaten by projected gradient
    ascent from other starts (tests/test_irs_physics.py), so :func:`optimum` starts from it.
    Case 2 solves R1 and R2 and keeps the design with the larger exact R_sk per draw.
    """
    with torch.inference_mode(False):
        stats, P_max = _autograd_ready(stats, P_max)
        P_max = _check_pmax(P_max, stats)
        lam, U = stats.rb_eig()
        var = stats.variances(stats.equal_phase_gain())
        u = var["u"][..., None]
        c = {"A": stats.P_b[..., None] * u * lam, "su": u * lam}
        if stats.has_eve:
            v, det = var["v"][..., None], var["det"][..., None]
            d = (v + stats.P_b[..., None] * lam * det) / (1.0 + stats.P_b[..., None] * u * lam)
            c.update(sv=v * lam, sd=lam * d, sdet=lam * lam * det)
        M = stats.M
        shape = torch.broadcast_shapes(lam.shape, P_max[..., None].shape, *[t.shape for t in c.values()])
        c = {k: t.expand(shape) for k, t in c.items()}
        P_a = (P_max / M)[..., None].expand(shape)

        def design_for(objective: str) -> torch.Tensor:
            def phi(q):
                return _per_channel_objective(objective, q, c)

            z = waterfill_allocation(P_a, phi, float(M))
            q = P_a * z
            P = U.to(torch.complex128).conj() * torch.sqrt(q).to(torch.complex128)[..., None, :]
            return normalise_power(P, P_max)

        theta = equal_phases(stats)
        if case == 1:
            P = design_for("exact_I")
            return Design(P, theta.expand(*P.shape[:-2], stats.L))
        if case == 2:
            if not stats.has_eve:
                raise ValueError("exact_design case=2 needs Eve's statistics in stats")
            P1, P2 = design_for("exact_R1"), design_for("exact_R2")
            theta = theta.expand(*P1.shape[:-2], stats.L)
            better1 = skr_case2(P1, theta, stats) >= skr_case2(P2, theta, stats)
            return Design(torch.where(better1[..., None, None], P1, P2), theta)
        raise ValueError(f"case must be 1 or 2, got {case!r}")


# --------------------------------------------------------------------------------------------
# Per-instance optimum (the ceiling for learned designs)
# --------------------------------------------------------------------------------------------


class OptimumResult(NamedTuple):
    P: torch.Tensor
    theta: torch.Tensor
    skr_bits: torch.Tensor


def optimum(
    stats: IRSStats,
    P_max,
    case: int = 1,
    *,
    generator: torch.Generator,
    restarts: int = 4,
    steps: int = 200,
    lr: float = 0.01,
) -> OptimumResult:
    """Per-instance projected gradient ascent on the exact SKR over (P, theta), float64.

    Restarts: the exact-objective water-filling (:func:`exact_design`), water-filling,
    identity/equal-phase, and ``restarts - 3`` random designs (drawn from ``generator``). Each step
    is an Adam step on (P, theta) followed by the projection onto the feasible set
    (Tr(P P^H) = P_max, |theta_l| = 1); the best iterate per draw is kept, so the result is never
    below any starting design. Batched over draws.
    """
    if restarts < 3:
        raise ValueError(f"restarts must be >= 3 (exact, water-filling and identity starts), got {restarts}")
    with torch.inference_mode(False), torch.enable_grad():
        stats, P_max = _autograd_ready(stats, P_max)
        return _optimum(stats, P_max, case, generator, restarts, steps, lr)


def _optimum(stats, P_max, case, generator, restarts, steps, lr) -> OptimumResult:
    P_max = _check_pmax(P_max, stats)
    inits = [exact_design(stats, P_max, case), water_filling_design(stats, P_max, case),
             identity_design(stats, P_max)]
    inits += [random_design(stats, P_max, generator) for _ in range(restarts - 3)]
    return _optimum_from(stats, P_max, case, inits, steps, lr)


def _optimum_from(stats: IRSStats, P_max, case: int, inits: list[Design], steps: int, lr: float) -> OptimumResult:
    """Projected gradient ascent from the given starting designs; best iterate per draw."""
    with torch.inference_mode(False), torch.enable_grad():
        stats, P_max = _autograd_ready(stats, P_max)
        return _ascend(stats, P_max, case, inits, steps, lr)


def _ascend(stats, P_max, case, inits, steps, lr) -> OptimumResult:
    """Projected gradient ascent (:func:`physics.optim.projected_ascent`) on (P / sqrt(P_max), theta):
    the unit-Frobenius-norm precoder and the unit-modulus phases are projected after every step."""
    shape = torch.broadcast_shapes(*[d.P.shape[:-2] for d in inits])
    scale = torch.sqrt(P_max).expand(shape)[..., None, None]
    starts = [{"P": d.P.expand(*shape, stats.M, stats.M) / scale, "theta": d.theta.expand(*shape, stats.L)}
              for d in inits]

    def project(p):
        return {"P": p["P"] / torch.sqrt((p["P"].abs() ** 2).sum((-1, -2)))[..., None, None],
                "theta": p["theta"] / p["theta"].abs()}

    def objective(p):
        return skr(p["P"] * scale, p["theta"], stats, case)

    best, _ = projected_ascent(objective, project, starts, steps=steps, lr=lr)
    P_best, theta_best = best["P"] * scale, best["theta"]
    return OptimumResult(P_best, theta_best, skr(P_best, theta_best, stats, case).detach())
