"""IRS-assisted PKG (papers 000 and 001): the SKR closed forms (000 (17), 001 (32)-(38)) and their literal reference.

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

import torch

from physics.checks import value_checks_on
from physics.gaussian import logdet_hpd
from physics.irs.stats import IRSStats
from physics.units import LN2

__all__ = ["THETA_MODULUS_TOL", "check_unit_modulus", "joint_covariance_kronecker", "kronecker_covariances", "skr",
           "skr_case1", "skr_case1_kronecker", "skr_case2", "skr_case2_parts"]


#: tolerance on |theta| = 1 accepted by the closed forms (float32 nets project to about 1e-7)
THETA_MODULUS_TOL = 1e-3


def check_unit_modulus(theta: torch.Tensor, tol: float = THETA_MODULUS_TOL) -> None:
    """ValueError unless every finite IRS coefficient has |theta| within ``tol`` of 1 (001 (5))."""
    if not isinstance(theta, torch.Tensor) or not theta.is_complex():
        kind = f"tensor {theta.dtype}" if isinstance(theta, torch.Tensor) else type(theta).__name__
        raise ValueError(f"theta must be a complex tensor of unit-modulus IRS coefficients, got {kind}")
    if not value_checks_on():
        return
    dev = (theta.detach().abs() - 1).abs()
    if bool((dev > tol).any()):
        raise ValueError(f"theta must be unit-modulus (| |theta| - 1 | <= {tol}), got |theta| off by up to "
                         f"{dev[torch.isfinite(dev)].max().item():.3g}")


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
    term_ab = logdet_hpd(joint)  # of the Hermitian part
    I_ab = term_a + term_b - term_ab
    if not need_eve:
        return I_ab, None, None
    v, det = var["v"], var["det"]
    # I(a;e) = h(e) - h(e | a): conditional covariance U diag(lambda d) U^H of Eve's cascade.
    d = (v[..., None] + P_b[..., None] * lam * det[..., None]) / (1.0 + P_b[..., None] * u[..., None] * lam)
    TdT = (T * (lam * d)[..., None, :]) @ T.conj().transpose(-1, -2)
    TdT = 0.5 * (TdT + TdT.conj().transpose(-1, -2))
    I_ae = torch.log1p(v[..., None] * g).sum(-1) - logdet_hpd(_eye(M, T) + TdT, symmetrize=False)  # Hermitian
    # I(b;e): both observe T diag(sqrt lambda) z + noise with per-mode 2x2 covariance [[u, x],[x, v]].
    I_be = (torch.log1p(u[..., None] * g) + torch.log1p(v[..., None] * g)
            - torch.log1p(g * (u + v)[..., None] + g**2 * det[..., None])).sum(-1)
    return I_ab, I_ae, I_be


def _case1_bits(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> torch.Tensor:
    I_ab, _, _ = _mutual_informations_nats(P, theta, stats, need_eve=False)
    return I_ab / LN2


def _case2_parts(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> dict[str, torch.Tensor]:
    I_ab, I_ae, I_be = _mutual_informations_nats(P, theta, stats, need_eve=True)
    out = {"I_ab": I_ab / LN2, "I_ae": I_ae / LN2, "I_be": I_be / LN2}
    out["R1"] = out["I_ab"] - out["I_ae"]
    out["R2"] = out["I_ab"] - out["I_be"]
    return out


def _skr_unchecked(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats, case: int) -> torch.Tensor:
    """:func:`skr` without the unit-modulus check: the objective of an ascent step, whose iterates are projected
    onto |theta_l| = 1 (the public functions check at the boundary)."""
    if case == 1:
        return _case1_bits(P, theta, stats)
    parts = _case2_parts(P, theta, stats)
    return torch.maximum(parts["R1"], parts["R2"])


def skr_case1(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> torch.Tensor:
    """I(y_a; y_b^T) of 001 (38) in bits (= 000 (17) with kappa = 0): the Case 1 objective.

    P ``[..., M, M]`` complex precoder (Tr(P P^H) = P_max is the caller's constraint), theta
    ``[..., L]`` complex unit-modulus IRS coefficients. Returns ``[...]`` bits per channel probe,
    differentiable in P and theta. Computes in P's precision (use complex128 for evaluation).
    """
    check_unit_modulus(theta)
    return _case1_bits(P, theta, stats)


def skr_case2_parts(P: torch.Tensor, theta: torch.Tensor, stats: IRSStats) -> dict[str, torch.Tensor]:
    """R1 = I(a;b) - I(a;e) (33), R2 = I(a;b) - I(b;e) (34) and the mutual informations, in bits."""
    if not stats.has_eve:
        raise ValueError("skr_case2 needs Eve's statistics (beta_h_eve, beta_f_eve, rho) in stats")
    check_unit_modulus(theta)
    return _case2_parts(P, theta, stats)


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
