"""Beam-domain multi-user key generation in massive MIMO (paper 003): channel, closed forms, baselines.

System (003 Sec. III-IV): a BS with an M-antenna half-wavelength ULA generates a separate key with each
of K user terminals (UTs), UT k having an N_k-antenna ULA. The downlink channel of UT k is the
geometric multipath channel (1)-(3), H_k = sum_p alpha_kp a_UT(theta_kp) a_BS(phi_kp)^H ``[N_k, M]``,
with independent complex Gaussian path gains alpha_kp ~ CN(0, g_kp) and fixed angles (the statistical
CSI). Its beam-domain form is H~_k = A_UT^H H_k A_BS (13) with the DFT matrices (16).

Conventions (pinned; docs/architecture.md section 4)
-----------------------------------------
* sin-angles: every angle enters only through its sine (``sin_aod``, ``sin_aoa``); element i of the
  ULA response is exp(-j pi i s) / sqrt(N) (d = lambda/2, (2)).
* vec stacks columns: vec(H~)[m N_k + n] = H~[n, m], so (X kron Y) vec(H~) = vec(Y H~ X^T).
* Lambda_k = E{vec(H~_k) vec(H~_k)^H} ``[M N_k, M N_k]`` (the "full correlation" of Theorem 1). With
  u_kp = A_UT^H a_UT(theta_kp) and v_kp = A_BS^H a_BS(phi_kp) (unit vectors), vec(H~_k) =
  sum_p alpha_kp conj(v_kp) kron u_kp, so Lambda_k = sum_p g_kp x_kp x_kp^H, x_kp = conj(v_kp) kron u_kp:
  rank N_P. R~_BS,k = sum_p g_kp v_kp v_kp^H and R~_UT,k = sum_p g_kp u_kp u_kp^H ((19)-(20)).
* Beam-domain precoders P~_k = A_BS^H P_k ``[M, M_e]`` and receive matrices C~_k = A_UT^H C_k
  ``[N_k, N_e]``; U_k = conj(P~_k) kron C~_k.
* Unit noise (noise-normalised units): path powers g_kp are per-path SNRs. Rates are in bits (log2),
  real float64.

Observations under pilot reuse (003 (21)-(26), every UT sends the same pilots S, S S^H = I): UT k's
downlink estimate is Z_k^DL = C~_k^H H~_k Q + noise with Q = sum_k' P~_k' (all precoded pilots reach UT k
through its own channel); the BS's uplink estimate for UT k is (Z_k^UL)^T = sum_k' C~_k'^H H~_k' P~_k +
noise with covariance P_k^T P_k^* kron I (003 (26)). Theorem 1 (30) is the Gaussian mutual information
of these two; with orthogonal pilots between users the interference vanishes and (30) becomes (31).

Numerics: every closed form is evaluated as log det of Hermitian positive-definite matrices by
Cholesky (docs/architecture.md section 5). Two equivalent evaluations exist: the public functions take the full
Lambda (the literal matrices of Theorem 1, O((M N_k)^2) per user pair), and the ``*_paths`` functions
used by :class:`MultiUserScenario` work on the N_P path vectors (Lambda is rank N_P), so one draw of the
K = 6, M = 128 sum rate costs O(K^2 M M_e N_P) instead of O(K^2 (M N_k)^2 M_e). They agree to 1e-10
(tests/test_multiuser_physics.py) and ``benchmarks/multiuser_cost.py`` measures the ratio.

Paper slips resolved here (docs/architecture.md section 1): Theorem 2's optimum is the top-n eigenvectors of the
full Lambda (the unit vectors of (38)/Remark 7 only when Lambda is diagonal); beam selection ranks the
diagonal of the beam-domain R~_BS (not the eigenvalues of the antenna-domain R_BS as (40) prints);
Algorithm 1's "non-overlapping" needs a threshold (``overlap_threshold_db``); (43) uses |rho|^2 and (45)
is replaced by (43) at rho = 1; (30) has no downlink power budget (the design space adds one).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from physics.montecarlo import gaussian_mi_bits_from_samples
from physics.optim import projected_ascent
from physics.scenarios import Batch, Scenario, _check_range, check_real
from physics.seeding import check_generator
from physics.units import LN2

__all__ = [
    "MultiUserScenario",
    "algorithm1_design",
    "beam_covariances",
    "beam_domain_channel",
    "beam_vectors",
    "dft_matrix",
    "eigen_beams_design",
    "geometric_channel",
    "kron_design",
    "lambda_from_paths",
    "lambda_joint_from_paths",
    "leakage_ratio",
    "optimal_rate",
    "skr_leakage_aware",
    "skr_orthogonal_pilots",
    "skr_pilot_reuse",
    "strongest_beams_design",
    "theorem2_design",
    "unit_skr",
    "unit_vector_design",
    "ula_response",
]

# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if not (isinstance(value, float) and value.is_integer()):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return value


def _check_finite(name: str, t: torch.Tensor) -> None:
    if not torch.all(torch.isfinite(torch.view_as_real(t) if t.is_complex() else t)):
        raise ValueError(f"{name} must be finite, got non-finite values")


def _as_tensor(name: str, X) -> torch.Tensor:
    """A tensor (returned as it is), or a numpy array / nested list turned into a float64 or complex128 one
    (integers too, not bools); ValueError naming ``name`` otherwise. Lists of Python numbers would default to
    float32 / complex64: rounding a rank-deficient Lambda to single precision makes it indefinite by ~1e-8."""
    if isinstance(X, torch.Tensor):
        return X
    try:
        t = None if isinstance(X, str | bytes) else torch.as_tensor(X)
        if t is not None and t.dtype != torch.bool and not t.is_complex():
            t = torch.as_tensor(X, dtype=torch.float64)
        elif t is not None and t.is_complex():
            t = torch.as_tensor(X, dtype=torch.complex128)
    except (TypeError, ValueError, RuntimeError):
        t = None
    if t is None or not (t.is_floating_point() or t.is_complex()):
        raise ValueError(f"{name} must be a real or complex tensor (or array), got {type(X).__name__}"
                         + (f" of dtype {t.dtype}" if t is not None else ""))
    return t


def _as_real(name: str, x, what: str = "a real number or a real tensor", complex_note: str = "") -> torch.Tensor:
    """``x`` (a real number, array or tensor) as a float64 tensor; ValueError naming ``name`` for strings, None,
    bools and complex values (a cast would drop the imaginary part silently). ``what`` says what is allowed."""
    try:
        t = None if isinstance(x, str | bytes) else torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        t = None
    if t is None or t.dtype == torch.bool:
        got = f"of dtype {t.dtype}" if t is not None and t.ndim else repr(x)  # never the repr of a whole array
        raise ValueError(f"{name} must be {what}, got {type(x).__name__} {got}")
    if t.is_complex():
        kind = "tensor" if isinstance(x, torch.Tensor) else "value"
        raise ValueError(f"{name} must be real{complex_note}, got a complex {kind} (dtype {t.dtype})")
    # Python floats straight to float64 (as_tensor alone would round them to float32 first)
    return x.to(torch.float64) if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)


def _broadcast(**batch_shapes: torch.Size) -> torch.Size:
    """The common batch shape of the named arguments; ValueError naming them all when they do not broadcast."""
    try:
        return torch.broadcast_shapes(*batch_shapes.values())
    except RuntimeError:
        parts = ", ".join(f"{k} {tuple(v)}" for k, v in batch_shapes.items())
        raise ValueError(f"batch dimensions do not broadcast: {parts}") from None


def _check_hermitian(name: str, X: torch.Tensor, tol: float, symbol: str, word: str = "Hermitian",
                    adjoint: str = "H") -> torch.Tensor:
    """Refuse ``X [..., D, D]`` unless max |X - X^H| <= ``tol`` max |X| for every matrix; returns max |X| per
    matrix (the scale the callers' other relative checks use)."""
    scale = X.abs().amax((-1, -2)).clamp_min(1e-300)
    asym = (X - X.mH).abs().amax((-1, -2)) / scale
    if torch.any(asym > tol):
        raise ValueError(f"{name} must be {word}, got max |{symbol} - {symbol}^{adjoint}| / max |{symbol}| = "
                         f"{asym.max().item():.3g}")
    return scale


def _check_lambda(Lam: torch.Tensor, name: str = "Lambda") -> torch.Tensor:
    """Hermitian PSD check (relative tolerance 1e-8 of the largest |entry| / eigenvalue, float64 roundoff
    of sums of 6 rank-one terms is ~1e-15, so 1e-8 only rejects matrices that are not Hermitian/PSD)."""
    Lam = _as_tensor(name, Lam)
    if Lam.ndim < 2 or Lam.shape[-1] != Lam.shape[-2] or Lam.shape[-1] == 0:
        raise ValueError(f"{name} must be [..., D, D] with D >= 1, got shape {tuple(Lam.shape)}")
    Lam = Lam.to(torch.complex128)
    _check_finite(name, Lam)
    _check_hermitian(name, Lam, 1e-8, "L")
    Lam = 0.5 * (Lam + Lam.mH)
    ev = torch.linalg.eigvalsh(Lam)
    rel = ev[..., 0] / ev[..., -1].abs().clamp_min(1e-300)
    if torch.any(rel < -1e-8):
        raise ValueError(f"{name} must be positive semi-definite, got smallest eigenvalue "
                         f"{ev[..., 0].min().item():.6g} (largest {ev[..., -1].max().item():.6g})")
    return Lam


def _check_semi_unitary(name: str, U: torch.Tensor, tol: float = 1e-6) -> None:
    if U.ndim < 2 or U.shape[-1] > U.shape[-2] or U.shape[-1] == 0:
        raise ValueError(f"{name} must be tall [..., D, n] with 1 <= n <= D, got shape {tuple(U.shape)}")
    _check_finite(name, U)
    if U.numel() == 0:  # an empty batch: nothing to check, the rate is empty too
        return
    eye = torch.eye(U.shape[-1], dtype=U.dtype, device=U.device)
    err = (U.mH @ U - eye).abs().amax().item()
    if err > tol:
        raise ValueError(f"{name} must be semi-unitary ({name}^H {name} = I), got max deviation {err:.3g}")


def _logdet_hpd(A: torch.Tensor) -> torch.Tensor:
    """log det of Hermitian positive-definite matrices by Cholesky (nats, real)."""
    L = torch.linalg.cholesky(0.5 * (A + A.mH))
    return 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1).real).sum(-1)


def _eye(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def _cmi_bits(cov: torch.Tensor, ix: slice, iy: slice, iw: slice | None = None) -> torch.Tensor:
    """I(x; y | w) in bits of a zero-mean complex Gaussian vector with covariance ``cov`` (blocks)."""
    def sub(*sl):
        idx = torch.cat([torch.arange(s.start, s.stop, device=cov.device) for s in sl])
        return cov[..., idx[:, None], idx[None, :]]

    if iw is None:
        val = _logdet_hpd(sub(ix)) + _logdet_hpd(sub(iy)) - _logdet_hpd(sub(ix, iy))
    else:
        val = (_logdet_hpd(sub(ix, iw)) + _logdet_hpd(sub(iy, iw)) - _logdet_hpd(sub(ix, iy, iw))
               - _logdet_hpd(sub(iw)))
    return val / LN2


# --------------------------------------------------------------------------------------------
# channel model (003 (1)-(3)) and beam domain ((13)-(20))
# --------------------------------------------------------------------------------------------


def ula_response(num_antennas: int, sin_angle, spacing_wavelengths: float = 0.5) -> torch.Tensor:
    """ULA response of 003 (2): [a(theta)]_i = exp(-j 2 pi d/lambda i sin theta) / sqrt(N), i = 0..N-1.

    ``sin_angle [...]`` real (finite, in [-1, 1]); returns ``[..., N]`` complex128.
    """
    N = _check_int("num_antennas", num_antennas)
    spacing_wavelengths = check_real("spacing_wavelengths", spacing_wavelengths, low=0.0, low_inclusive=False)
    s = torch.as_tensor(sin_angle, dtype=torch.float64)
    _check_finite("sin_angle", s)
    if torch.any(s.abs() > 1.0):
        raise ValueError(f"sin_angle must lie in [-1, 1], got max |sin| {s.abs().max().item():.6g}")
    i = torch.arange(N, dtype=torch.float64, device=s.device)
    phase = -2.0 * math.pi * spacing_wavelengths * s[..., None] * i
    return torch.polar(torch.full_like(phase, 1.0 / math.sqrt(N)), phase)


def dft_matrix(N: int, device=None) -> torch.Tensor:
    """Sampling matrix of 003 (14)-(16) for d = lambda/2: [A]_{i,m} = exp(-j 2 pi i (m+1 - N/2)/N) / sqrt(N)
    (0-based i, m), i.e. column m is the ULA response at sin(angle) = 2(m+1)/N - 1. Unitary. ``[N, N]``."""
    N = _check_int("N", N)
    i = torch.arange(N, dtype=torch.float64, device=device)
    m = torch.arange(1, N + 1, dtype=torch.float64, device=device)
    phase = -2.0 * math.pi * i[:, None] * (m[None, :] - N / 2.0) / N
    return torch.polar(torch.full_like(phase, 1.0 / math.sqrt(N)), phase)


def beam_grid(N: int) -> torch.Tensor:
    """The sines of the DFT beams of (16): 2 m / N - 1, m = 1..N. ``[N]`` float64."""
    N = _check_int("N", N)
    return 2.0 * torch.arange(1, N + 1, dtype=torch.float64) / N - 1.0


def geometric_channel(alpha: torch.Tensor, sin_aoa: torch.Tensor, sin_aod: torch.Tensor, N_k: int,
                      M: int) -> torch.Tensor:
    """003 (1)-(3): H = sum_p alpha_p a_UT(theta_p) a_BS(phi_p)^H. ``alpha, sin_aoa, sin_aod [..., P]``;
    returns ``[..., N_k, M]`` complex128."""
    N_k, M = _check_int("N_k", N_k), _check_int("M", M)
    a_ut = ula_response(N_k, sin_aoa)  # [..., P, N_k]
    a_bs = ula_response(M, sin_aod)  # [..., P, M]
    alpha = torch.as_tensor(alpha).to(torch.complex128)
    _check_finite("alpha", alpha)
    try:  # one gain, AoA and AoD per path; leading dims broadcast (e.g. [n, P] gains with [P] angles)
        torch.broadcast_shapes(alpha.shape, a_ut.shape[:-1], a_bs.shape[:-1])
        ok = alpha.shape[-1:] == a_ut.shape[-2:-1] == a_bs.shape[-2:-1]
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"alpha, sin_aoa and sin_aod must be [..., P] with the same P and broadcastable leading "
                         f"dims, got {tuple(alpha.shape)}, {tuple(a_ut.shape[:-1])} and {tuple(a_bs.shape[:-1])}")
    return torch.einsum("...p,...pn,...pm->...nm", alpha, a_ut, a_bs.conj())


def beam_domain_channel(H: torch.Tensor) -> torch.Tensor:
    """003 (13): H~ = A_UT^H H A_BS for ``H [..., N_k, M]``."""
    N_k, M = H.shape[-2], H.shape[-1]
    A_ut, A_bs = dft_matrix(N_k, H.device), dft_matrix(M, H.device)
    return A_ut.mH @ H.to(torch.complex128) @ A_bs


def beam_vectors(sin_aoa: torch.Tensor, sin_aod: torch.Tensor, N_k: int, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam-domain path vectors u_p = A_UT^H a_UT(theta_p) ``[..., P, N_k]`` and v_p = A_BS^H a_BS(phi_p)
    ``[..., P, M]`` (unit norm), so that H~ = sum_p alpha_p u_p v_p^H."""
    N_k, M = _check_int("N_k", N_k), _check_int("M", M)
    if torch.as_tensor(sin_aoa).shape != torch.as_tensor(sin_aod).shape:
        raise ValueError(f"sin_aoa and sin_aod must have the same shape [..., P] (one AoA and one AoD per path), got "
                         f"{tuple(torch.as_tensor(sin_aoa).shape)} and {tuple(torch.as_tensor(sin_aod).shape)}")
    u = ula_response(N_k, sin_aoa) @ dft_matrix(N_k, torch.as_tensor(sin_aoa).device).conj()
    v = ula_response(M, sin_aod) @ dft_matrix(M, torch.as_tensor(sin_aod).device).conj()
    return u, v


def shared_pair_mask(K: int, N_P: int, shared_paths: int) -> torch.Tensor:
    """``[K N_P, K N_P]`` float64 with 1 at ((a, p), (b, p)) for the UT pairs (a, b) = (0, 1), (2, 3), ...
    and their first ``shared_paths`` paths (upper triangle only). ``0 <= shared_paths <= N_P``."""
    K, N_P = _check_int("K", K), _check_int("N_P", N_P)
    shared_paths = _check_int("shared_paths", shared_paths, low=0)
    if shared_paths > N_P:
        raise ValueError(f"shared_paths must be <= N_P = {N_P} (a UT has N_P paths to share), got {shared_paths}")
    pair = torch.zeros(K * N_P, K * N_P, dtype=torch.float64)
    for j in range(K // 2):
        for q in range(shared_paths):
            pair[2 * j * N_P + q, (2 * j + 1) * N_P + q] = 1.0
    return pair


def path_tensors(sin_aod: torch.Tensor, sin_aoa: torch.Tensor, power_db: torch.Tensor, N_k: int, M: int,
                 rho_shared: torch.Tensor | None = None, shared_paths: int = 0,
                 pair_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Beam-domain path vectors and gain covariance of K UTs, with no checks (the caller validates; this is
    also the in-graph form a design space traces: no data-dependent Python control flow).

    ``sin_aod``, ``sin_aoa``, ``power_db`` ``[n, K, N_P]`` real (power_db the per-path SNR in dB).
    Returns u ``[n, K, N_P, N_k]``, v ``[n, K, N_P, M]`` (u_p = A_UT^H a_UT, v_p = A_BS^H a_BS as in
    :func:`beam_vectors`), g ``[n, K, N_P]`` (linear) and the stacked gain covariance G ``[n, K N_P, K N_P]``:
    diag(g), plus, for UT pairs (0, 1), (2, 3), ... and their first ``shared_paths`` paths,
    G[(a,p),(b,p)] = G[(b,p),(a,p)] = rho_shared[a, p] sqrt(g_ap g_bp) (003 Sec. V-B). ``pair_mask``: the
    :func:`shared_pair_mask` to use (a traced caller passes a buffer: building it here is not traceable)."""
    n, K, Np = power_db.shape
    dt = power_db.dtype
    cdt = torch.complex128 if dt == torch.float64 else torch.complex64

    def vectors(s: torch.Tensor, N: int) -> torch.Tensor:
        i = torch.arange(N, dtype=dt, device=s.device)
        ph = -math.pi * s[..., None] * i  # (2), d = lambda / 2
        a = torch.complex(torch.cos(ph), torch.sin(ph)) / math.sqrt(N)
        return a @ dft_matrix(N, s.device).to(cdt).conj()

    u, v = vectors(sin_aoa, N_k), vectors(sin_aod, M)
    g = torch.pow(10.0, power_db / 10)
    gf = g.reshape(n, K * Np)
    G = torch.diag_embed(gf)
    if shared_paths and rho_shared is not None:
        pair = (shared_pair_mask(K, Np, shared_paths) if pair_mask is None else pair_mask).to(g)
        sq = torch.sqrt(gf)
        upper = pair * (rho_shared.reshape(n, K * Np) * sq)[:, :, None] * sq[:, None, :]
        G = G + upper + upper.mT
    return {"u": u, "v": v, "g": g, "G": G}


def _check_powers(name: str, g: torch.Tensor) -> torch.Tensor:
    g = torch.as_tensor(g, dtype=torch.float64)
    _check_finite(name, g)
    if torch.any(g < 0):
        raise ValueError(f"{name} must be >= 0, got min {g.min().item():.6g}")
    return g


def lambda_from_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Full beam-domain correlation Lambda = sum_p g_p x_p x_p^H, x_p = conj(v_p) kron u_p.

    ``u [..., P, N_k]``, ``v [..., P, M]``, ``g [..., P]`` (path powers, unit noise) ->
    ``[..., M N_k, M N_k]`` complex128.
    """
    g = _check_powers("path powers g", g)
    x = (v.conj()[..., :, :, None] * u[..., :, None, :]).reshape(*u.shape[:-1], -1)  # [..., P, M N_k]
    return torch.einsum("...p,...pi,...pj->...ij", g.to(x.dtype), x, x.conj())


def lambda_joint_from_paths(u: torch.Tensor, v: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Joint correlation of all UTs, block (j, l) = E{vec(H~_j) vec(H~_l)^H} = sum_{p,q} G[(j,p),(l,q)]
    x_jp x_lq^H, for stacked path gains with covariance ``G [..., K N_P, K N_P]`` (UTs sharing a scatterer
    have correlated gains). ``u [..., K, N_P, N_k]``, ``v [..., K, N_P, M]`` -> ``[..., K, K, M N_k, M N_k]``."""
    K, Np = u.shape[-3], u.shape[-2]
    x = (v.conj()[..., :, :, None] * u[..., :, None, :]).reshape(*u.shape[:-1], -1)  # [..., K, Np, D]
    Gr = G.to(x.dtype).reshape(*G.shape[:-2], K, Np, K, Np)
    return torch.einsum("...jpi,...jplq,...lqk->...jlik", x, Gr, x.conj())


def beam_covariances(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """003 (19): R~_BS = E{H~^H H~} = sum_p g_p |u_p|^2 v_p v_p^H ``[..., M, M]`` and R~_UT = E{H~ H~^H}
    = sum_p g_p |v_p|^2 u_p u_p^H ``[..., N_k, N_k]`` (|u_p| = |v_p| = 1)."""
    g = _check_powers("path powers g", g).to(torch.complex128)
    R_bs = torch.einsum("...p,...pi,...pj->...ij", g * (u.abs() ** 2).sum(-1), v, v.conj())
    R_ut = torch.einsum("...p,...pi,...pj->...ij", g * (v.abs() ** 2).sum(-1), u, u.conj())
    return R_bs, R_ut


# --------------------------------------------------------------------------------------------
# Theorem 1 with orthogonal pilots (31) and Theorem 2 ((37)-(39))
# --------------------------------------------------------------------------------------------


def _pair_rate_nats(B: torch.Tensor) -> torch.Tensor:
    """sum_i log((1+mu_i)^2 / (1+2 mu_i)) = 2 logdet(I+B) - logdet(I+2B) for B = U^H Lambda U (PSD).

    This is (31): the nonzero eigenvalues of Lambda^1/2 U (I+B)^-1 B (I+B)^-1 U^H Lambda^1/2 are
    mu^2/(1+mu)^2, and -log(1 - mu^2/(1+mu)^2) = log((1+mu)^2/(1+2mu)).
    """
    eye = _eye(B.shape[-1], B)
    return 2.0 * _logdet_hpd(eye + B) - _logdet_hpd(eye + 2.0 * B)


def skr_orthogonal_pilots(U: torch.Tensor, Lambda: torch.Tensor) -> torch.Tensor:
    """003 (31): the key rate of one UT with orthogonal pilots (no inter-user interference), bits.

    ``U [..., M N_k, n]`` semi-unitary (U = conj(P~) kron C~ for a separable design), ``Lambda [..., M N_k,
    M N_k]`` Hermitian PSD; unit noise. Returns ``[...]`` float64.
    """
    Lam = _check_lambda(Lambda)
    U = _as_tensor("U", U).to(torch.complex128)
    _check_semi_unitary("U", U)
    if U.shape[-2] != Lam.shape[-1]:
        raise ValueError(f"U has {U.shape[-2]} rows but Lambda is {Lam.shape[-1]} x {Lam.shape[-1]}")
    _broadcast(U=U.shape[:-2], Lambda=Lam.shape[:-2])
    B = U.mH @ Lam @ U
    return (_pair_rate_nats(B) / LN2).real.to(torch.float64)


def _check_n(n, D: int) -> int:
    n = _check_int("n (number of effective channel dimensions)", n)
    if n > D:
        raise ValueError(f"n = {n} exceeds the channel dimension M N_k = {D}")
    return n


def optimal_rate(Lambda: torch.Tensor, n: int) -> torch.Tensor:
    """003 (39), corrected (docs/architecture.md section 1): the largest (31) over semi-unitary U with n columns,
    sum over the n largest eigenvalues mu_i of the full Lambda of log2((1+mu_i)^2 / (1+2 mu_i)).
    ``Lambda [..., D, D]`` -> ``[...]`` float64 bits."""
    Lam = _check_lambda(Lambda)
    n = _check_n(n, Lam.shape[-1])
    mu = torch.linalg.eigvalsh(Lam)[..., -n:].clamp_min(0.0)
    return ((2.0 * torch.log1p(mu) - torch.log1p(2.0 * mu)).sum(-1) / LN2).to(torch.float64)


def theorem2_design(Lambda: torch.Tensor, n: int) -> torch.Tensor:
    """Theorem 2's optimum: the eigenvectors of the n largest eigenvalues of the full Lambda
    ``[..., D, n]`` (attains :func:`optimal_rate`). Not separable as conj(P~) kron C~ in general."""
    Lam = _check_lambda(Lambda)
    n = _check_n(n, Lam.shape[-1])
    _, V = torch.linalg.eigh(Lam)
    return V[..., -n:].flip(-1)


def unit_vector_design(Lambda: torch.Tensor, n: int) -> torch.Tensor:
    """The printed rule of (38)/Remark 7: unit vectors e_i at the n largest diagonal entries of Lambda.
    Optimal exactly when Lambda is diagonal (path angles on the DFT grid). ``[..., D, n]``."""
    Lam = _check_lambda(Lambda)
    n = _check_n(n, Lam.shape[-1])
    idx = torch.diagonal(Lam, dim1=-2, dim2=-1).real.topk(n, dim=-1).indices
    eye = _eye(Lam.shape[-1], Lam)
    return eye[idx].movedim(-2, -1)


def kron_design(P: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """U = conj(P~) kron C~ ``[..., M N_k, M_e N_e]`` (003 after (36))."""
    P, C = P.to(torch.complex128), C.to(torch.complex128)
    U = P.conj()[..., :, None, :, None] * C[..., None, :, None, :]
    return U.reshape(*P.shape[:-2], P.shape[-2] * C.shape[-2], P.shape[-1] * C.shape[-1])


# --------------------------------------------------------------------------------------------
# Theorem 1 with pilot reuse (30) and the leakage-aware rate (27), full-Lambda form
# --------------------------------------------------------------------------------------------


def _sandwich(X1: torch.Tensor, Y1: torch.Tensor, Lam4: torch.Tensor, X2: torch.Tensor,
              Y2: torch.Tensor) -> torch.Tensor:
    """(X1 kron Y1) Lambda (X2 kron Y2)^H with Lambda given as ``Lam4 [..., M, N, M, N]`` (vec index m N + n).

    X ``[..., a, M]``, Y ``[..., b, N]``; returns ``[..., a b, a' b']`` (vec index a b_dim + b).
    """
    T = torch.einsum("...bn,...mnpq,...cq->...mbpc", Y1, Lam4, Y2.conj())
    T = torch.einsum("...am,...mbpc,...dp->...abdc", X1, T, X2.conj())
    a, b, d, c = T.shape[-4:]
    return T.reshape(*T.shape[:-4], a * b, d * c)


def _check_design_power(name: str, X: torch.Tensor, tol: float = 1e-3) -> None:
    """``X [..., D, n]`` must satisfy X^H X <= I: semi-unitary, or scaled down (the downlink budget). 003 (30)
    takes P~_k^H P~_k = I and C~_k^H C~_k = I (C~_k^* is also the UT's uplink beamformer); more power raises
    the rate, e.g. an unnormalised DFT matrix. ``tol`` 1e-3 admits designs made in float32 (errors ~1e-6)."""
    if X.shape[-1] == 0 or X.shape[-2] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(X.shape)}): every UT needs at least one beam")
    if X.numel() == 0:  # an empty batch (no draws): nothing to check, the rates are empty too
        return
    with torch.no_grad():
        ev = torch.linalg.eigvalsh(X.detach().mH @ X.detach())  # [..., n] ascending
    top = ev[..., -1].amax().item()
    if top > 1 + tol:
        raise ValueError(f"{name} carries more than unit pilot power: the largest eigenvalue of {name}^H {name} is "
                         f"{top:.6g}, allowed <= 1 (semi-unitary columns, or scaled down by a power budget)")
    # a UT with a zero or rank-deficient design has observations with no signal and no noise in some direction:
    # (30)/(27) are then undefined (singular covariances), not zero. 1e-10 relative keeps Cholesky well posed.
    low = (ev[..., 0] / ev[..., -1].clamp_min(1e-300)).amin().item()
    if not low > 1e-10:
        raise ValueError(f"{name} must have full column rank for every UT (no zero-power UT, no repeated beam): the "
                         f"smallest eigenvalue of {name}^H {name} is {low:.3g} of the largest, need > 1e-10")


def _check_design_shapes(P: torch.Tensor, C: torch.Tensor, K: int, M: int, N_k: int) -> tuple[int, int]:
    if P.ndim < 3 or P.shape[-3] != K or P.shape[-2] != M:
        raise ValueError(f"P must be [..., K={K}, M={M}, M_e], got shape {tuple(P.shape)}")
    if C.ndim < 3 or C.shape[-3] != K or C.shape[-2] != N_k:
        raise ValueError(f"C must be [..., K={K}, N_k={N_k}, N_e], got shape {tuple(C.shape)}")
    _check_finite("P", P)
    _check_finite("C", C)
    _check_design_power("P", P)
    _check_design_power("C", C)
    return P.shape[-1], C.shape[-1]


def _reuse_blocks(P: torch.Tensor, C: torch.Tensor, Lam4: torch.Tensor, cross: torch.Tensor | None):
    """Covariance blocks of the pilot-reuse observations of every UT (003 (25)-(26), (58)-(60)).

    ``Lam4 [..., K, K, M, N, M, N]`` the joint correlation E{vec(H~_j) vec(H~_l)^H} (zeros off the block
    diagonal for independent UTs; ``cross`` = None means block-diagonal and only ``[..., K, M, N, M, N]``
    is given). Returns dict of ``DD [..., K, K, d, d]`` Cov(z_D,k, z_D,i), ``UU [..., K, d, d]``
    Cov(z_U,k, z_U,k), ``DU [..., K, K, d, d]`` Cov(z_D,i, z_U,k) with d = M_e N_e, noise included.
    """
    K = P.shape[-3]
    Q = P.sum(-3)  # [..., M, M_e] the sum of all precoders: what reaches every UT in the downlink
    QT = Q.mT[..., None, :, :].expand(*P.shape[:-3], K, *Q.mT.shape[-2:])  # [..., K, M_e, M]
    PT = P.mT  # [..., K, M_e, M]
    CH = C.mH  # [..., K, N_e, N_k]
    Me, Ne = P.shape[-1], C.shape[-1]
    d = Me * Ne
    eyeMe = _eye(Me, P)
    noise_D = torch.kron(eyeMe, C.mH @ C)  # I_{M_e} kron C^H C   [..., K, d, d]
    noise_U = torch.kron(P.mT @ P.conj(), _eye(Ne, P))  # P^T P^* kron I_{N_e}

    def L(j, l):
        if cross is None:
            return Lam4[..., j, :, :, :, :] if j == l else None
        return Lam4[..., j, l, :, :, :, :]

    DD = torch.zeros(*P.shape[:-3], K, K, d, d, dtype=P.dtype, device=P.device)
    UU = torch.zeros(*P.shape[:-3], K, d, d, dtype=P.dtype, device=P.device)
    DU = torch.zeros(*P.shape[:-3], K, K, d, d, dtype=P.dtype, device=P.device)
    for i in range(K):
        for k in range(K):
            Lik = L(i, k)
            if Lik is not None:  # z_D,i = (Q^T kron C_i^H) h_i
                DD[..., i, k, :, :] = _sandwich(QT[..., i, :, :], CH[..., i, :, :], Lik, QT[..., k, :, :],
                                                CH[..., k, :, :])
        DD[..., i, i, :, :] += noise_D[..., i, :, :]
    for k in range(K):  # z_U,k = sum_j (P_k^T kron C_j^H) h_j
        for j in range(K):
            for l in range(K):  # noqa: E741
                Ljl = L(j, l)
                if Ljl is not None:
                    UU[..., k, :, :] += _sandwich(PT[..., k, :, :], CH[..., j, :, :], Ljl, PT[..., k, :, :],
                                                  CH[..., l, :, :])
        UU[..., k, :, :] += noise_U[..., k, :, :]
        for i in range(K):
            for j in range(K):
                Lij = L(i, j)
                if Lij is not None:
                    DU[..., i, k, :, :] += _sandwich(QT[..., i, :, :], CH[..., i, :, :], Lij, PT[..., k, :, :],
                                                     CH[..., j, :, :])
    return {"DD": DD, "UU": UU, "DU": DU}


def _as_lam4(Lambda: torch.Tensor, M: int, N: int, lead: int) -> torch.Tensor:
    return Lambda.reshape(*Lambda.shape[:lead], M, N, M, N)


def skr_pilot_reuse(P: torch.Tensor, C: torch.Tensor, Lambda: torch.Tensor) -> torch.Tensor:
    """003 (30): each UT's key rate with pilot reuse (same pilots S, S S^H = I), UTs independent, bits.

    ``P [..., K, M, M_e]`` beam-domain precoders P~_k (P^H P <= I: semi-unitary, or scaled down by a budget;
    the uplink noise covariance is P^T P^* kron I),
    ``C [..., K, N_k, N_e]`` beam-domain receive matrices C~_k, ``Lambda [..., K, M N_k, M N_k]``; unit
    noise. No downlink power budget here (docs/architecture.md section 4). Returns ``[..., K]`` float64.
    """
    Lambda = _as_tensor("Lambda", Lambda)
    if Lambda.ndim < 3 or Lambda.shape[-3] == 0:
        raise ValueError(f"Lambda must be [..., K, M N_k, M N_k] with K >= 1, got shape {tuple(Lambda.shape)}")
    Lam = _check_lambda(Lambda)
    K = Lam.shape[-3]
    P, C = _as_tensor("P", P).to(torch.complex128), _as_tensor("C", C).to(torch.complex128)
    if P.ndim < 3:
        raise ValueError(f"P must be [..., K, M, M_e], got shape {tuple(P.shape)}")
    M = P.shape[-2]
    N_k = C.shape[-2] if C.ndim >= 2 else 0
    if M * N_k != Lam.shape[-1]:
        raise ValueError(f"Lambda is {Lam.shape[-1]} x {Lam.shape[-1]} but M N_k = {M} x {N_k} = {M * N_k}")
    _check_design_shapes(P, C, K, M, N_k)
    shape = _broadcast(P=P.shape[:-3], C=C.shape[:-3], Lambda=Lam.shape[:-3])
    P = P.expand(*shape, *P.shape[-3:])
    C = C.expand(*shape, *C.shape[-3:])
    Lam4 = _as_lam4(Lam.expand(*shape, *Lam.shape[-3:]), M, N_k, len(shape) + 1)
    blocks = _reuse_blocks(P, C, Lam4, None)
    d = P.shape[-1] * C.shape[-1]
    out = []
    for k in range(K):
        RD, RU, RDU = blocks["DD"][..., k, k, :, :], blocks["UU"][..., k, :, :], blocks["DU"][..., k, k, :, :]
        joint = torch.cat([torch.cat([RD, RDU], -1), torch.cat([RDU.mH, RU], -1)], -2)
        out.append(_cmi_bits(joint, slice(0, d), slice(d, 2 * d)))
    return torch.stack(out, -1).real.to(torch.float64)


def skr_leakage_aware(P: torch.Tensor, C: torch.Tensor, Lambda_joint: torch.Tensor) -> torch.Tensor:
    """003 (27) with pilot reuse: R_k = min_{i != k} I(z_k^DL; z_k^UL | z_i^DL), bits, ``[..., K]``.

    ``Lambda_joint [..., K, K, M N_k, M N_k]``: block (j, l) = E{vec(H~_j) vec(H~_l)^H} (UTs that share
    scatterers have nonzero off-diagonal blocks). Curious UTs do not collude (003 footnote 1). K >= 2.
    """
    Lambda_joint = _as_tensor("Lambda_joint", Lambda_joint)
    if Lambda_joint.ndim < 4 or Lambda_joint.shape[-4] != Lambda_joint.shape[-3]:
        raise ValueError(f"Lambda_joint must be [..., K, K, D, D], got shape {tuple(Lambda_joint.shape)}")
    K, D = Lambda_joint.shape[-4], Lambda_joint.shape[-1]
    if K < 2:
        raise ValueError(f"the leakage-aware rate (27) needs K >= 2 UTs, got K = {K}")
    full = Lambda_joint.to(torch.complex128).movedim(-3, -2).reshape(*Lambda_joint.shape[:-4], K * D, K * D)
    _check_lambda(full, "Lambda_joint (as a K D x K D matrix)")
    P, C = _as_tensor("P", P).to(torch.complex128), _as_tensor("C", C).to(torch.complex128)
    if P.ndim < 3:
        raise ValueError(f"P must be [..., K, M, M_e], got shape {tuple(P.shape)}")
    if C.ndim < 3:
        raise ValueError(f"C must be [..., K, N_k, N_e], got shape {tuple(C.shape)}")
    M, N_k = P.shape[-2], C.shape[-2]
    if M * N_k != D:
        raise ValueError(f"Lambda_joint blocks are {D} x {D} but M N_k = {M * N_k}")
    _check_design_shapes(P, C, K, M, N_k)
    shape = _broadcast(P=P.shape[:-3], C=C.shape[:-3], Lambda_joint=Lambda_joint.shape[:-4])
    P, C = P.expand(*shape, *P.shape[-3:]), C.expand(*shape, *C.shape[-3:])
    Lam4 = Lambda_joint.to(torch.complex128).expand(*shape, K, K, D, D).reshape(*shape, K, K, M, N_k, M, N_k)
    b = _reuse_blocks(P, C, Lam4, Lam4)
    d = P.shape[-1] * C.shape[-1]
    rates = []
    for k in range(K):
        vals = []
        for i in range(K):
            if i == k:
                continue
            # order (z_D,k, z_U,k, z_D,i)
            RDk, RUk, RDi = b["DD"][..., k, k, :, :], b["UU"][..., k, :, :], b["DD"][..., i, i, :, :]
            DkUk, DkDi, DiUk = b["DU"][..., k, k, :, :], b["DD"][..., k, i, :, :], b["DU"][..., i, k, :, :]
            row1 = torch.cat([RDk, DkUk, DkDi], -1)
            row2 = torch.cat([DkUk.mH, RUk, DiUk.mH], -1)
            row3 = torch.cat([DkDi.mH, DiUk, RDi], -1)
            cov = torch.cat([row1, row2, row3], -2)
            vals.append(_cmi_bits(cov, slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d)))
        rates.append(torch.stack(vals, -1).amin(-1))
    return torch.stack(rates, -1).real.to(torch.float64)


# --------------------------------------------------------------------------------------------
# structured (path-domain) evaluation: what the scenario trains on
# --------------------------------------------------------------------------------------------


def _kron(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Batched Kronecker product of square matrices, (A kron B)[i n + k, j n + l] = A[i, j] B[k, l] for
    ``A [..., m, m]``, ``B [..., n, n]``, by broadcasting (``torch.kron`` treats batch dimensions as
    Kronecker dimensions too, and its shape arithmetic fixes the batch size when traced)."""
    m, n = A.shape[-1], B.shape[-1]
    T = A[..., :, None, :, None] * B[..., None, :, None, :]
    return T.reshape(*T.shape[:-4], m * n, m * n)


def _path_observations(P: torch.Tensor, C: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """Mixing matrices from the stacked path gains a = [alpha_11 .. alpha_KP] to the observations.

    P ``[..., K, M, M_e]``, C ``[..., K, N_k, N_e]``, u ``[..., K, N_P, N_k]``, v ``[..., K, N_P, M]``.
    Returns D ``[..., K, d, K N_P]`` (z_D,k = D_k a + n), E ``[..., K, d, K N_P]`` (z_U,k = E_k a + n), and
    the noise covariances ``noise_D``, ``noise_U`` ``[..., K, d, d]``; d = M_e N_e.
    Column (j, p) of E_k is (P_k^T conj v_jp) kron (C_j^H u_jp); of D_k: (Q^T conj v_kp) kron (C_k^H u_kp)
    in user k's block only.
    """
    K, Np = u.shape[-3], u.shape[-2]
    Me, Ne = P.shape[-1], C.shape[-1]
    Q = P.sum(-3)
    cu = torch.einsum("...jnf,...jpn->...jpf", C.conj(), u)  # C_j^H u_jp  [..., K, Np, Ne]
    qv = torch.einsum("...me,...kpm->...kpe", Q, v.conj())  # Q^T conj v_kp [..., K, Np, Me]
    pv = torch.einsum("...kme,...jpm->...kjpe", P, v.conj())  # P_k^T conj v_jp [..., K, K, Np, Me]
    dcol = (qv[..., :, None] * cu[..., None, :]).reshape(*qv.shape[:-1], Me * Ne)  # [..., K, Np, d]
    eye = torch.eye(K, dtype=P.dtype, device=P.device)
    D = (eye[:, :, None, None] * dcol[..., None, :, :, :]).reshape(*dcol.shape[:-3], K, K * Np, Me * Ne).mT
    ecol = (pv[..., :, None] * cu[..., None, :, :, None, :]).reshape(*pv.shape[:-1], Me * Ne)
    E = ecol.reshape(*ecol.shape[:-4], K, K * Np, Me * Ne).mT
    noise_D = _kron(_eye(Me, P), C.mH @ C)
    noise_U = _kron(P.mT @ P.conj(), _eye(Ne, P))
    return D, E, noise_D, noise_U


def _mi_blocks_nats(Rx: torch.Tensor, Ry: torch.Tensor, Rxy: torch.Tensor) -> torch.Tensor:
    """I(x; y) of a Gaussian pair from its covariance blocks by the Schur complement:
    log det R_y - log det(R_y - R_xy^H R_x^-1 R_xy), with Cholesky of R_x (nats). Equals
    log det R_x + log det R_y - log det R (the joint), at a third of the cost."""
    L = torch.linalg.cholesky(0.5 * (Rx + Rx.mH))
    X = torch.linalg.solve_triangular(L, Rxy, upper=False)
    return _logdet_hpd(Ry) - _logdet_hpd(Ry - X.mH @ X)


def _condition(R: torch.Tensor, Rw: torch.Tensor, Rxw: torch.Tensor) -> torch.Tensor:
    """Covariance of x given w: R - R_xw R_w^-1 R_xw^H (Cholesky of R_w)."""
    L = torch.linalg.cholesky(0.5 * (Rw + Rw.mH))
    X = torch.linalg.solve_triangular(L, Rxw.mH, upper=False)
    return R - X.mH @ X


def skr_pilot_reuse_paths(P, C, u, v, G) -> torch.Tensor:
    """(30) (``G`` block-diagonal) or its correlated generalisation, per UT, from path vectors.

    ``G [..., K N_P, K N_P]`` covariance of the stacked path gains (diag(g) for independent UTs).
    Equals :func:`skr_pilot_reuse` with Lambda from :func:`lambda_from_paths` (tested). ``[..., K]`` bits.
    """
    D, E, nD, nU = _path_observations(P, C, u, v)
    G = G.to(D.dtype)[..., None, :, :]
    DG = D @ G
    RD = DG @ D.mH + nD
    RU = E @ G @ E.mH + nU
    RDU = DG @ E.mH
    return (_mi_blocks_nats(RD, RU, RDU) / LN2).real.to(torch.float64)


def _check_curious(curious, K: int) -> None:
    """``curious[k]``: the UTs i != k whose downlink observation (27) conditions UT k's rate on; K lists of
    indices in [0, K). Pure Python (no tensor op): :func:`skr_leakage_aware_paths` is traced in training."""
    if isinstance(curious, str | bytes) or not isinstance(curious, list | tuple) or len(curious) != K:
        raise ValueError(f"curious must be a list of K = {K} lists of UT indices (one per UT), got {curious!r}")
    for k, row in enumerate(curious):
        if isinstance(row, str | bytes) or not isinstance(row, list | tuple):
            raise ValueError(f"curious[{k}] must be a list of UT indices, got {row!r}")
        for i in row:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < K or i == k:
                raise ValueError(f"curious[{k}] must hold UT indices in [0, {K}) other than {k} itself (UT {k} "
                                 f"does not eavesdrop on its own key), got {i!r}")


def skr_leakage_aware_paths(P, C, u, v, G, curious: list[list[int]] | None = None) -> torch.Tensor:
    """(27) from path vectors: min over curious UTs i != k of I(z_D,k; z_U,k | z_D,i). ``[..., K]`` bits.

    Equals :func:`skr_leakage_aware` with the joint Lambda of :func:`lambda_joint_from_paths` (tested).
    ``curious[k]``: restrict the minimum to these UTs and add (30) itself to it. Conditioning on the
    downlink observation of a UT whose channel is independent of UT k's can only raise the rate above
    (30) (I(x; y | w) = I(x; (y, w)) >= I(x; y) when w is independent of x: it tells about the uplink
    interference), so min(I(.|z_D,i) for i sharing scatterers with k, (30)) is a lower bound on (27)
    that equals it whenever a sharing UT leaks at all; it costs one conditioning per UT instead of K - 1.
    """
    if curious is not None:  # Python lists only, checked before any tensor op (this function is traced)
        _check_curious(curious, P.shape[-3])
    D, E, nD, nU = _path_observations(P, C, u, v)
    K = D.shape[-3]
    G = G.to(D.dtype)
    out = []
    for k in range(K):
        Dk, Ek = D[..., k, :, :], E[..., k, :, :]
        vals = []
        if curious is not None:
            DkG = Dk @ G
            vals.append(_mi_blocks_nats(DkG @ Dk.mH + nD[..., k, :, :], Ek @ G @ Ek.mH + nU[..., k, :, :],
                                        DkG @ Ek.mH) / LN2)
        for i in (range(K) if curious is None else curious[k]):
            if i == k:
                continue
            Di = D[..., i, :, :]
            DiG = Di @ G
            Rw = DiG @ Di.mH + nD[..., i, :, :]
            RD = _condition(Dk @ G @ Dk.mH + nD[..., k, :, :], Rw, Dk @ G @ Di.mH)
            RU = _condition(Ek @ G @ Ek.mH + nU[..., k, :, :], Rw, Ek @ G @ Di.mH)
            # cross block given w: R_DU - R_Dw R_w^-1 R_wU
            L = torch.linalg.cholesky(0.5 * (Rw + Rw.mH))
            XD = torch.linalg.solve_triangular(L, DiG @ Dk.mH, upper=False)
            XU = torch.linalg.solve_triangular(L, DiG @ Ek.mH, upper=False)
            RDU = Dk @ G @ Ek.mH - XD.mH @ XU
            vals.append(_mi_blocks_nats(RD, RU, RDU) / LN2)
        out.append(torch.stack(vals, -1).amin(-1))
    return torch.stack(out, -1).real.to(torch.float64)


def theorem2_rate_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
    """Theorem 2's rate (39) per UT from path vectors: Lambda_k's nonzero eigenvalues are those of the
    N_P x N_P matrix G^1/2 X^H X G^1/2 (X = [x_p]), so no M N_k x M N_k matrix is formed. ``[..., K]``.
    ``n`` >= 1: the number of effective channel dimensions (above N_P, only N_P eigenvalues are nonzero)."""
    n = _check_int("n (number of effective channel dimensions)", n)
    g = _check_powers("path powers g", g)
    # x_p^H x_q = (conj(v_p) kron u_p)^H (conj(v_q) kron u_q) = (v_p^T conj(v_q)) (u_p^H u_q)
    gram = (v @ v.conj().mT) * (u.conj() @ u.mT)
    sg = torch.sqrt(g.to(torch.float64)).to(gram.dtype)
    Bm = sg[..., :, None] * gram * sg[..., None, :]
    mu = torch.linalg.eigvalsh(0.5 * (Bm + Bm.mH)).clamp_min(0.0)
    mu = mu[..., -min(n, mu.shape[-1]):]
    return ((2.0 * torch.log1p(mu) - torch.log1p(2.0 * mu)).sum(-1) / LN2).to(torch.float64)


# --------------------------------------------------------------------------------------------
# leakage ratio (43) and unit SKR (48)
# --------------------------------------------------------------------------------------------


def leakage_ratio(rho, noise_var) -> torch.Tensor:
    """003 (43): gamma = 1 - R_l / R_h for one overlapping beam with unit-power channels h_1, h_2.

    ``rho`` real in [-1, 1] (pass |rho| for complex channels, docs/architecture.md section 1: (43) depends on rho^2),
    ``noise_var`` = sigma^2 > 0 linear. R_h = log((1+s)^2 / (s(2+s))) (rho = 0) and
    R_l = log(((1+s)^2 - rho^2)^2 / ((1+s)(s^3 + 3 s^2 - 2 s rho^2 + 2 s))). At rho = +-1 this is
    log[(1+s)^3 (3+s) / (s (2+s)^3)] / log[(1+s)^2 / (s (2+s))] (used instead of the garbled (45)).
    Returns float64, broadcast of the inputs.
    """
    # (43) depends on |rho|^2 only; a complex value is a caller's slip, never cast silently
    rho = _as_real("rho", rho, complex_note=" (pass |rho| for complex channels)")
    s = _as_real("noise_var", noise_var)
    try:
        torch.broadcast_shapes(rho.shape, s.shape)
    except RuntimeError:
        raise ValueError(f"rho {tuple(rho.shape)} and noise_var {tuple(s.shape)} do not broadcast") from None
    if not torch.all(torch.isfinite(rho)):
        raise ValueError("rho must be finite, got non-finite values")
    if torch.any(rho.abs() > 1.0):
        raise ValueError(f"rho must lie in [-1, 1], got {rho[rho.abs() > 1].flatten()[0].item():.6g}")
    if not torch.all(torch.isfinite(s)) or torch.any(s <= 0):
        bad = s[~(torch.isfinite(s) & (s > 0))].flatten()[0].item()
        raise ValueError(f"noise_var must be finite and > 0, got {bad:.6g}")
    if torch.any((s < 1e-150) | (s > 1e150)):  # +-1500 dB: beyond it float64 cannot hold s (2 + s) or 1 / s^2
        bad = s[(s < 1e-150) | (s > 1e150)].flatten()[0].item()
        raise ValueError(f"noise_var must lie in [1e-150, 1e150] (a linear noise-to-signal ratio), got {bad:.6g}")
    r2 = rho * rho
    # log((1+s)^2/(s(2+s))) = log1p(1/(s(2+s))) without cancellation at small or large s
    R_h = torch.log1p(1.0 / (s * (2.0 + s)))
    # R_l = log(a^2 / ((1+s) s b)) with a = (1+s)^2 - r2, b = s^2 + 3s + 2 - 2 r2; a^2 - (1+s) s b = (s + 1 - r2)^2
    # exactly, so R_l = log1p((s + c)^2 / (s (1+s) b)), c = 1 - r2: no cancellation at any s
    c = 1.0 - r2
    # factored as ((s + c)/s) ((s + c)/(1 + s)) / (s (s + 3) + 2c): no s^4 overflow for 1e-150 <= s <= 1e150
    R_l = torch.log1p(((s + c) / s) * ((s + c) / (1.0 + s)) / (s * (s + 3.0) + 2.0 * c))
    return 1.0 - R_l / R_h


def pilot_overhead(M_e: int, N_e: int, K: int, scheme: str = "reuse", M: int | None = None,
                   N_k: int | None = None, beam_sharing: int = 1) -> int:
    """Pilot symbols of one probing round (003 Remark 3, (48)).

    ``reuse``: M_e + N_e (every UT uses the same pilots); ``orthogonal``: K (M_e + N_e) (CDR with
    orthogonal pilots between UTs); ``full``: M + K N_k (Sec. III-B, full CSI); ``overlapping``: Fig. 8's
    scheme, beams shared by up to ``beam_sharing`` UTs need that many orthogonal downlink pilots:
    beam_sharing M_e + N_e.
    """
    M_e, N_e, K = _check_int("M_e", M_e), _check_int("N_e", N_e), _check_int("K", K)
    if scheme == "reuse":
        return M_e + N_e
    if scheme == "orthogonal":
        return K * (M_e + N_e)
    if scheme == "full":
        if M is None or N_k is None:
            raise ValueError("scheme 'full' needs M and N_k")
        return _check_int("M", M) + K * _check_int("N_k", N_k)
    if scheme == "overlapping":
        return _check_int("beam_sharing", beam_sharing) * M_e + N_e
    raise ValueError(f"scheme must be one of 'reuse', 'orthogonal', 'full', 'overlapping', got {scheme!r}")


def unit_skr(sum_rate_bits, overhead_symbols) -> torch.Tensor:
    """003 (48): R_unit = R_sum / T, bits per pilot symbol. Real numbers or tensors that broadcast."""
    T = _as_real("overhead_symbols (pilot overhead T)", overhead_symbols)
    bad_T = ~(T > 0) | ~torch.isfinite(T)
    if torch.any(bad_T):
        raise ValueError(f"pilot overhead T must be finite and > 0, got {T[bad_T].flatten()[0].item()}")
    R = _as_real("sum_rate_bits", sum_rate_bits)
    _broadcast(sum_rate_bits=R.shape, overhead_symbols=T.shape)
    bad = ~(R >= 0) | ~torch.isfinite(R)
    if torch.any(bad):
        raise ValueError(f"sum_rate_bits must be finite and >= 0 (a key rate), got {R[bad].flatten()[0].item()!r}")
    return R / T


# --------------------------------------------------------------------------------------------
# designs: Algorithm 1, strongest (overlapping) beams, eigen beams, random; budget
# --------------------------------------------------------------------------------------------


def _select_columns(idx: torch.Tensor, size: int, dtype=torch.complex128) -> torch.Tensor:
    """Unit-vector columns e_idx: ``idx [..., n]`` -> ``[..., size, n]``."""
    eye = torch.eye(size, dtype=dtype, device=idx.device)
    return eye[idx].movedim(-2, -1)


def _check_beam_covariance(name: str, R) -> torch.Tensor:
    """A beam-domain covariance ``[..., D, D]`` (R~_BS,k or R~_UT,k): square with D >= 1, finite, Hermitian and
    with a non-negative diagonal (the beam powers), relative tolerance 1e-8 of the largest |entry| as in
    :func:`_check_lambda` (1e-5 for single precision). Returned as it is (numpy / lists: float64 or complex128)."""
    R = _as_tensor(name, R)
    if R.ndim < 2 or R.shape[-1] != R.shape[-2] or R.shape[-1] == 0:
        raise ValueError(f"{name} must be a square [..., D, D] covariance with D >= 1, got shape {tuple(R.shape)}")
    _check_finite(name, R)
    if R.numel() == 0:  # an empty batch
        return R
    tol = 1e-8 if R.dtype in (torch.float64, torch.complex128) else 1e-5
    scale = _check_hermitian(name, R, tol, "R")
    diag = torch.diagonal(R, dim1=-2, dim2=-1).real
    if (diag / scale[..., None]).min().item() < -tol:
        raise ValueError(f"{name} must have a non-negative diagonal (beam powers), got {diag.min().item():.6g}")
    return R


def strongest_beams_design(R_bs: torch.Tensor, R_ut: torch.Tensor, M_e: int, N_e: int):
    """(40)-(41) with the beam-domain diagonal (docs/architecture.md section 1): each UT takes its M_e
    strongest BS beams and N_e strongest UT beams, overlapping other UTs' beams or not (Fig. 8's "overlapping" scheme).
    ``R_bs [..., K, M, M]``, ``R_ut [..., K, N_k, N_k]`` -> P ``[..., K, M, M_e]``, C ``[..., K, N_k, N_e]``."""
    R_bs, R_ut = _check_beam_covariance("R_bs", R_bs), _check_beam_covariance("R_ut", R_ut)
    return strongest_beams_from_powers(torch.diagonal(R_bs, dim1=-2, dim2=-1).real,
                                       torch.diagonal(R_ut, dim1=-2, dim2=-1).real, M_e, N_e)


def strongest_beams_from_powers(d_bs: torch.Tensor, d_ut: torch.Tensor, M_e: int, N_e: int):
    """:func:`strongest_beams_design` from the beam powers diag(R~_BS) ``[..., K, M]`` and diag(R~_UT)
    ``[..., K, N_k]``."""
    M_e, N_e = _check_int("M_e", M_e), _check_int("N_e", N_e)
    M, N_k = d_bs.shape[-1], d_ut.shape[-1]
    if M_e > M or N_e > N_k:
        raise ValueError(f"need M_e <= M and N_e <= N_k, got M_e={M_e}, M={M}, N_e={N_e}, N_k={N_k}")
    P = _select_columns(d_bs.topk(M_e, -1).indices, M)
    C = _select_columns(d_ut.topk(N_e, -1).indices, N_k)
    return P, C


def algorithm1_design(R_bs: torch.Tensor, R_ut: torch.Tensor, M_e: int, N_e: int,
                      overlap_threshold_db: float = -20.0):
    """003 Algorithm 1 with its overlap rule made explicit (docs/architecture.md section 1).

    Beam m "belongs to" UT k' when [R~_BS,k']_mm >= 10^(t/10) max_m [R~_BS,k']_mm (t =
    ``overlap_threshold_db``, default -20 dB: 003 Sec. VI reports about 20 dB between adjacent UTs). UTs
    are served in order k = 1..K; UT k takes the M_e strongest beams of its own diagonal among the beams
    that no other UT owns and that no earlier UT took ((40) and (47)); if fewer than M_e such beams exist
    it fills up with the strongest untaken beams (then (47) cannot hold). The receive side is (41): the N_e
    strongest UT beams. Beams are disjoint across UTs, so the downlink power is exactly K M_e.
    Raises ValueError when K M_e > M (no disjoint allocation exists).
    """
    R_bs, R_ut = _check_beam_covariance("R_bs", R_bs), _check_beam_covariance("R_ut", R_ut)
    if R_bs.ndim < 3:
        raise ValueError(f"R_bs must be [..., K, M, M] (one covariance per UT), got shape {tuple(R_bs.shape)}")
    return algorithm1_from_powers(torch.diagonal(R_bs, dim1=-2, dim2=-1).real,
                                  torch.diagonal(R_ut, dim1=-2, dim2=-1).real, M_e, N_e, overlap_threshold_db)


def algorithm1_from_powers(d: torch.Tensor, d_ut: torch.Tensor, M_e: int, N_e: int,
                           overlap_threshold_db: float = -20.0):
    """:func:`algorithm1_design` from the beam powers diag(R~_BS) ``[..., K, M]`` and diag(R~_UT) ``[..., K, N_k]``."""
    M_e, N_e = _check_int("M_e", M_e), _check_int("N_e", N_e)
    K, M, N_k = d.shape[-2], d.shape[-1], d_ut.shape[-1]
    if K * M_e > M:
        raise ValueError(f"non-overlapping beams need K M_e <= M, got K={K}, M_e={M_e}, M={M}")
    if N_e > N_k:
        raise ValueError(f"need N_e <= N_k, got N_e={N_e}, N_k={N_k}")
    t = overlap_threshold_db
    if isinstance(t, torch.Tensor) and t.numel() == 1 and not t.is_complex() and t.dtype != torch.bool:
        t = t.item()
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise ValueError(f"overlap_threshold_db must be a real number (dB) <= 0, got {overlap_threshold_db!r}")
    t = float(t)
    if not math.isfinite(t) or t > 0:
        raise ValueError(f"overlap_threshold_db must be finite and <= 0 dB, got {overlap_threshold_db!r}")
    owned = d >= (10.0 ** (t / 10.0)) * d.amax(-1, keepdim=True)
    taken = torch.zeros(d.shape[:-2] + (M,), dtype=torch.bool, device=d.device)
    cols = []
    for k in range(K):
        others = torch.cat([owned[..., :k, :], owned[..., k + 1:, :]], -2).any(-2)
        free = ~taken
        # key: free and not owned by others first, then free, each by UT k's beam power
        score = d[..., k, :] / d[..., k, :].amax(-1, keepdim=True).clamp_min(1e-300)  # in [0, 1]
        key = torch.where(free & ~others, 2.0 + score, torch.where(free, score, torch.full_like(score, -1.0)))
        idx = key.topk(M_e, -1).indices
        cols.append(idx)
        taken = taken.scatter(-1, idx, True)
    P = _select_columns(torch.stack(cols, -2), M)
    C = _select_columns(d_ut.topk(N_e, -1).indices, N_k)
    return P, C


def beam_powers_from_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonals of (19)-(20) without forming the matrices: sum_p g_p |v_pm|^2 and sum_p g_p |u_pn|^2."""
    g = g.to(torch.float64)
    return (g[..., None] * v.abs() ** 2).sum(-2), (g[..., None] * u.abs() ** 2).sum(-2)


def eigen_beams_from_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor, M_e: int, N_e: int):
    """:func:`eigen_beams_design` from path vectors: R~_BS = V^T diag(g) conj(V) has rank N_P, so its top
    eigenvectors are V^T G^1/2 w_i / sqrt(lambda_i) with (lambda_i, w_i) the eigenpairs of the N_P x N_P
    matrix G^1/2 conj(V) V^T G^1/2. Directions beyond the rank are completed by QR (any orthonormal
    complement gives the same rate up to the budget). Same for R~_UT."""
    def top(X, k):  # X [..., P, D] rows = path vectors; R = X^T diag(g) conj(X)
        sg = torch.sqrt(g.to(torch.float64)).to(X.dtype)
        Bm = sg[..., :, None] * (X.conj() @ X.mT) * sg[..., None, :]
        lam, W = torch.linalg.eigh(0.5 * (Bm + Bm.mH))
        lam, W = lam.flip(-1), W.flip(-1)
        vecs = X.mT @ (sg[..., :, None] * W) / lam.clamp_min(1e-300).sqrt().to(X.dtype)[..., None, :]
        r = min(k, vecs.shape[-1])
        out = vecs[..., :r]
        if k > r:  # complete with the DFT beams of largest power outside the span, then re-orthonormalise
            extra = torch.eye(X.shape[-1], dtype=X.dtype, device=X.device).expand(*out.shape[:-1], X.shape[-1])
            return semi_unitary(torch.cat([out, extra], -1))[..., :k]
        # a column of a tiny eigenvalue carries a relative error ~ eps lam_max / lam_i (two paths at almost the
        # same angle: 1e-3 seen in 1000 draws, so the "semi-unitary" design had more than unit power); QR keeps
        # the accurate leading columns (positive diagonal: same phases) and re-orthonormalises the tail
        return semi_unitary(out)

    return top(v, _check_int("M_e", M_e)), top(u, _check_int("N_e", N_e))


def eigen_beams_design(R_bs: torch.Tensor, R_ut: torch.Tensor, M_e: int, N_e: int):
    """Top-M_e eigenvectors of each UT's beam-domain R~_BS,k and top-N_e of R~_UT,k (ours, not in 003)."""
    M_e, N_e = _check_int("M_e", M_e), _check_int("N_e", N_e)
    R_bs, R_ut = _check_beam_covariance("R_bs", R_bs), _check_beam_covariance("R_ut", R_ut)
    M, N_k = R_bs.shape[-1], R_ut.shape[-1]
    if M_e > M or N_e > N_k:
        raise ValueError(f"need M_e <= M and N_e <= N_k, got M_e={M_e}, M={M}, N_e={N_e}, N_k={N_k}")
    _, Vb = torch.linalg.eigh(R_bs.to(torch.complex128))
    _, Vu = torch.linalg.eigh(R_ut.to(torch.complex128))
    return Vb[..., -M_e:].flip(-1), Vu[..., -N_e:].flip(-1)


def _check_batch_shape(name: str, shape) -> tuple[int, ...]:
    """A batch shape: a tuple (list, torch.Size) of integers >= 0."""
    ok = not isinstance(shape, str | bytes) and isinstance(shape, tuple | list | torch.Size)
    if ok:
        ok = all(not isinstance(d, bool) and isinstance(d, numbers.Integral) and d >= 0 for d in shape)
    if not ok:
        raise ValueError(f"{name} must be a tuple of integers >= 0 (the batch dimensions), got {shape!r}")
    return tuple(int(d) for d in shape)


def random_semi_unitary(shape: tuple[int, ...], rows: int, cols: int, generator: torch.Generator,
                        device=None) -> torch.Tensor:
    """Haar-distributed semi-unitary ``[*shape, rows, cols]`` (QR of a complex Gaussian, phases fixed)."""
    rows, cols = _check_int("rows", rows), _check_int("cols", cols)
    shape = _check_batch_shape("shape", shape)
    check_generator(generator)
    if cols > rows:
        raise ValueError(f"a semi-unitary matrix needs cols <= rows, got rows = {rows}, cols = {cols}")
    z = torch.randn(*shape, rows, cols, 2, generator=generator, dtype=torch.float64)
    Z = torch.view_as_complex(z).to(device)
    Qm, R = torch.linalg.qr(Z)
    ph = torch.diagonal(R, dim1=-2, dim2=-1)
    ph = ph / ph.abs().clamp_min(1e-300)
    return Qm * ph[..., None, :]


def semi_unitary(X: torch.Tensor) -> torch.Tensor:
    """Projection onto semi-unitary matrices by QR with positive diagonal (differentiable)."""
    Qm, R = torch.linalg.qr(X)
    ph = torch.diagonal(R, dim1=-2, dim2=-1)
    ph = ph / ph.abs().clamp_min(1e-300)
    return Qm * ph[..., None, :]


def apply_budget(P: torch.Tensor, budget: float | None) -> torch.Tensor:
    """Downlink pilot-power budget: scale every UT's precoder by min(1, sqrt(budget) / ||sum_k P_k||_F).

    The BS transmits (sum_k P_k) S with S S^H = I, i.e. power ||sum_k P_k||_F^2; disjoint semi-unitary
    beams use K M_e. The uplink rate is invariant to the scale (signal and noise P_k^T scale together), so
    the budget only lowers the downlink SNR when precoders add coherently. ``budget=None``: (30) as printed;
    otherwise a finite number > 0. ``P [..., K, M, M_e]``. Checks on Python values and shapes only (traced).
    """
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, numbers.Real)
                               or not (math.isfinite(budget) and budget > 0)):
        raise ValueError(f"budget must be None or a finite number > 0 (the downlink pilot power, e.g. K M_e), "
                         f"got {budget!r}")
    P = _as_tensor("P", P)
    if P.ndim < 3:
        raise ValueError(f"P must be [..., K, M, M_e] (one precoder per UT), got shape {tuple(P.shape)}")
    if budget is None:
        return P
    power = (P.sum(-3).abs() ** 2).sum((-1, -2))
    scale = torch.clamp(torch.sqrt(float(budget) / power.clamp_min(1e-300)), max=1.0)  # no tensor constant: traceable
    return P * scale[..., None, None, None].to(P.dtype)


# --------------------------------------------------------------------------------------------
# Monte Carlo: simulate the probing of (21)-(26) and estimate the MI from samples
# --------------------------------------------------------------------------------------------


def draw_path_gains(G: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of the stacked path gains a ~ CN(0, G) ``[n, D]`` (G real PSD ``[D, D]``)."""
    n = _check_int("n (number of draws)", n, low=0)
    check_generator(generator)
    G = _as_tensor("G", G)
    if G.is_complex():
        raise ValueError(f"G (the path-gain covariance) must be real, got dtype {G.dtype}")
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] == 0:
        raise ValueError(f"G (the path-gain covariance) must be [D, D] with D >= 1, got shape {tuple(G.shape)}")
    _check_finite("G", G)
    _check_hermitian("G", G, 1e-8, "G", word="symmetric", adjoint="T")  # real: G^H = G^T
    lam, V = torch.linalg.eigh(G.to(torch.float64))
    if lam[0].item() < -1e-8 * max(lam[-1].abs().item(), 1e-300):
        raise ValueError(f"G must be positive semi-definite (a covariance), got smallest eigenvalue "
                         f"{lam[0].item():.6g} (largest {lam[-1].item():.6g})")
    S = V * lam.clamp_min(0).sqrt()
    w = torch.view_as_complex(torch.randn(n, G.shape[-1], 2, generator=generator, dtype=torch.float64)) / math.sqrt(2)
    return w @ S.to(torch.complex128).mT


def check_pilot_lengths(T_D: int, T_U: int, M_e: int, N_e: int, K: int = 1, pilots: str = "reuse") -> None:
    """S S^H = I needs at least as many pilot symbols as pilot streams: T_D >= M_e and T_U >= N_e with pilot
    reuse, T_D >= K M_e and T_U >= K N_e with orthogonal pilots between UTs."""
    T_D, T_U = _check_int("T_D (downlink pilot length)", T_D), _check_int("T_U (uplink pilot length)", T_U)
    M_e, N_e, K = _check_int("M_e", M_e), _check_int("N_e", N_e), _check_int("K", K)
    if pilots not in ("reuse", "orthogonal"):
        raise ValueError(f"pilots must be 'reuse' or 'orthogonal', got {pilots!r}")
    need_D, need_U = (M_e, N_e) if pilots == "reuse" else (K * M_e, K * N_e)
    if T_D < need_D:
        raise ValueError(f"downlink pilot length T_D = {T_D} is shorter than the effective channel: "
                         f"need T_D >= {need_D} ({pilots} pilots, M_e = {M_e}, K = {K})")
    if T_U < need_U:
        raise ValueError(f"uplink pilot length T_U = {T_U} is shorter than the effective channel: "
                         f"need T_U >= {need_U} ({pilots} pilots, N_e = {N_e}, K = {K})")


def simulate_probing(P: torch.Tensor, C: torch.Tensor, sin_aoa: torch.Tensor, sin_aod: torch.Tensor,
                     G: torch.Tensor, n: int, generator: torch.Generator, pilots: str = "reuse",
                     pilot_lengths: tuple[int, int] | None = None) -> dict:
    """Monte Carlo of one probing round for ``n`` channel draws (003 (21)-(26)), unit noise.

    Draws the path gains, builds H_k by (1)-(3) (antenna domain), transmits unitary pilot matrices (random,
    from ``generator``), applies the antenna-domain P_k = A_BS P~_k, C_k = A_UT C~_k, and LS-estimates.
    ``pilots="reuse"``: every UT uses the same pilots; ``"orthogonal"``: UT k's pilots occupy their own
    block of a K-times longer unitary pilot (no interference). Returns ``z_D``, ``z_U`` ``[n, K, d]``
    (vec of Z_k^DL and of (Z_k^UL)^T).
    """
    n = _check_int("n (number of channel draws)", n)
    K, M, Me = P.shape[-3], P.shape[-2], P.shape[-1]
    N_k, Ne = C.shape[-2], C.shape[-1]
    A_bs, A_ut = dft_matrix(M), dft_matrix(N_k)
    Pa, Ca = A_bs @ P.to(torch.complex128), A_ut @ C.to(torch.complex128)  # antenna domain
    Np = sin_aod.shape[-1]
    a = draw_path_gains(G, n, generator).reshape(n, K, Np)
    H = geometric_channel(a, sin_aoa, sin_aod, N_k, M)  # [n, K, N_k, M]

    def cn(*shape):
        return torch.view_as_complex(torch.randn(*shape, 2, generator=generator, dtype=torch.float64)) / math.sqrt(2)

    if pilots not in ("reuse", "orthogonal"):
        raise ValueError(f"pilots must be 'reuse' or 'orthogonal', got {pilots!r}")
    reuse = pilots == "reuse"
    TD, TU = (Me, Ne) if reuse else (K * Me, K * Ne)
    if pilot_lengths is not None:
        check_pilot_lengths(*pilot_lengths, Me, Ne, K, pilots)
        TD, TU = int(pilot_lengths[0]), int(pilot_lengths[1])
    # pilots: the first rows of a random unitary T x T matrix (S S^H = I), one block of rows per stream set
    SD = random_semi_unitary((), TD, TD, generator).mH
    SU = random_semi_unitary((), TU, TU, generator).mH
    zD, zU = [], []
    # downlink: X = sum_k P_k S_k, S_k = rows of S_D (reuse: all the same Me rows)
    Sk = [SD[:Me] if reuse else SD[k * Me:(k + 1) * Me] for k in range(K)]
    X = sum(Pa[k] @ Sk[k] for k in range(K))  # [M, TD]
    for k in range(K):
        Y = Ca[k].mH @ (H[:, k] @ X + cn(n, N_k, TD))  # [n, Ne, TD]
        Z = Y @ Sk[k].mH  # LS
        zD.append(Z.mT.reshape(n, -1))  # vec stacks columns: Z^T rows
    # uplink: UT j sends C_j^* S'_j through H_j^T; BS receives Y = sum_j H_j^T C_j^* S'_j + N
    Su = [SU[:Ne] if reuse else SU[j * Ne:(j + 1) * Ne] for j in range(K)]
    Yb = sum(H[:, j].mT @ Ca[j].conj() @ Su[j] for j in range(K)) + cn(n, M, TU)
    for k in range(K):
        Z = Pa[k].mT @ Yb @ Su[k].mH  # [n, Me, Ne]
        zU.append(Z.reshape(n, -1))  # vec((Z^UL)^T) = vec of Z^T's columns = rows of Z
    return {"z_D": torch.stack(zD, 1), "z_U": torch.stack(zU, 1)}


def mc_mutual_information(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None,
                          batches: int = 20) -> tuple[float, float]:
    """Gaussian MI (bits) I(x; y) or I(x; y | w) = I(x; (y, w)) - I(x; w) estimated from samples
    ``[n, d]`` in ``batches`` equal parts: returns (mean, standard error of the mean)."""
    n = x.shape[0]
    size = n // batches
    vals = []
    for b in range(batches):
        sl = slice(b * size, (b + 1) * size)
        if w is None:
            v = gaussian_mi_bits_from_samples(x[sl], y[sl])
        else:
            v = (gaussian_mi_bits_from_samples(x[sl], torch.cat([y[sl], w[sl]], -1))
                 - gaussian_mi_bits_from_samples(x[sl], w[sl]))
        vals.append(float(v))
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std() / math.sqrt(batches))


# --------------------------------------------------------------------------------------------
# the scenario (docs/architecture.md section 3)
# --------------------------------------------------------------------------------------------


def _gram_schmidt(re: torch.Tensor, im: torch.Tensor, passes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormalise the columns of the complex matrix re + j im ``[..., D, n]`` (modified Gram-Schmidt,
    twice: the QR factor with positive diagonal), real arithmetic only so that torch.export can trace it."""
    cols_r = [re[..., :, j] for j in range(re.shape[-1])]
    cols_i = [im[..., :, j] for j in range(im.shape[-1])]
    for _ in range(passes):
        for j in range(len(cols_r)):
            vr, vi = cols_r[j], cols_i[j]
            for i in range(j):
                qr, qi = cols_r[i], cols_i[i]
                cr = (qr * vr + qi * vi).sum(-1, keepdim=True)  # <q, v> = q^H v
                ci = (qr * vi - qi * vr).sum(-1, keepdim=True)
                vr, vi = vr - (cr * qr - ci * qi), vi - (cr * qi + ci * qr)
            norm = torch.sqrt((vr * vr + vi * vi).sum(-1, keepdim=True)).clamp_min(1e-12)
            cols_r[j], cols_i[j] = vr / norm, vi / norm
    return torch.stack(cols_r, -1), torch.stack(cols_i, -1)


def training_rates(objective: str, P: torch.Tensor, C: torch.Tensor, pth: dict[str, torch.Tensor],
                   curious: list[list[int]]) -> torch.Tensor:
    """The per-UT rate ``[n, K]`` bits a design is trained on: ``"reuse"`` (30) (UTs independent: the gain
    covariance's diagonal only) or ``"leakage"`` (27) against the UTs in ``curious`` (min'ed with (30)).
    ``P``, ``C`` complex beam-domain designs; ``pth`` from :func:`path_tensors`."""
    if objective == "reuse":
        return skr_pilot_reuse_paths(P, C, pth["u"], pth["v"], torch.diag_embed(pth["g"].flatten(-2)))
    return skr_leakage_aware_paths(P, C, pth["u"], pth["v"], pth["G"], curious)


class MultiUserDesignSpace(nn.Module):
    """Projection of raw network outputs onto the 003 design set, with an optional downlink budget.

    Precoders are built in the span of the steering vectors of *every* UT's paths (the only directions a
    precoder can excite or avoid; components orthogonal to all of them carry neither signal nor
    interference): P_k = GS(a_BS(own strongest M_e paths of UT k) + 0.1 A W_k), A ``[M, K N_P]`` the
    antenna-domain steering vectors of all paths, computed in the graph from the sin(AoD) features, W_k
    ``[K N_P, M_e]`` complex from head ``P``; GS is the Gram-Schmidt QR projection onto semi-unitary
    matrices. With W = 0 this is the eigen-beam design (the span of the UT's own paths). The beam-domain
    precoder is P~_k = A_BS^H P_k. C~_k = GS(E_k + 0.1 R_k) with R_k from head ``C`` and the start E_k:
    ``receive_start="identity"`` E_k = I; ``"eigen_shifted"`` UT k's eigenvectors of R~_UT,k, column j the
    ((j - k) mod N_k)-th (:meth:`_receive_start`). Downlink budget
    (default K M_e, what disjoint beams use): every P~_k is scaled by min(1, sqrt(budget) / ||sum_k P~_k||_F);
    ``budget=None`` reproduces (30) as printed. Outputs ``P [n, K, M, M_e, 2]``, ``C [n, K, N_k, N_e, 2]``.

    Refinement: :meth:`refinement_problem` states the problem a model-level refinement (``models.refine``)
    solves from the network's design: the training objective (``objective``, the scenario's (30) or (27)) over
    the full beam-domain design set (QR onto semi-unitary matrices, then the budget), with the draws' path
    tensors computed from the features in float64. The steps themselves belong to the model, not the physics.
    """

    RECEIVE_STARTS = ("identity", "eigen_shifted")

    def __init__(self, M: int, K: int, N_k: int, N_P: int, M_e: int, N_e: int, budget: float | None,
                 receive_start: str = "identity", power_iterations: int = 30, objective: str = "reuse",
                 shared_paths: int = 0, curious: list[list[int]] | None = None):
        super().__init__()
        self.objective, self.shared_paths = objective, int(shared_paths)
        if curious is not None:
            _check_curious(curious, K)
        self.curious = curious if curious is not None else [[] for _ in range(K)]
        self.register_buffer("pair_mask", shared_pair_mask(K, N_P, self.shared_paths).float(), persistent=False)
        self.M, self.K, self.N_k, self.N_P, self.M_e, self.N_e = M, K, N_k, N_P, M_e, N_e
        if receive_start not in self.RECEIVE_STARTS:
            raise ValueError(f"receive_start must be one of {self.RECEIVE_STARTS}, got {receive_start!r}")
        self.receive_start, self.power_iterations = receive_start, int(power_iterations)
        F = dft_matrix(N_k)
        self.register_buffer("F_re", F.real.to(torch.float32).contiguous(), persistent=False)
        self.register_buffer("F_im", F.imag.to(torch.float32).contiguous(), persistent=False)
        self.budget = None if budget is None else float(budget)
        self.heads = {"P": K * K * N_P * M_e * 2, "C": K * N_k * N_e * 2}  # raw head names = output names (export)
        A = dft_matrix(M)
        self.register_buffer("A_re", A.real.to(torch.float32).contiguous(), persistent=False)
        self.register_buffer("A_im", A.imag.to(torch.float32).contiguous(), persistent=False)
        self.register_buffer("idx", torch.arange(M, dtype=torch.float32), persistent=False)
        base = torch.zeros(K, K * N_P, M_e)  # selects each UT's own strongest min(N_P, M_e) paths
        for k in range(K):
            for j in range(min(N_P, M_e)):
                base[k, k * N_P + j, j] = 1.0
        if M_e > N_P:  # no own path left: start those columns on fixed DFT beams (made orthogonal by GS)
            pass
        self.register_buffer("base", base, persistent=False)

    def forward(self, raw: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        n = x.shape[0]
        K, Np, M, Me, Nk, Ne = self.K, self.N_P, self.M, self.M_e, self.N_k, self.N_e
        dt = raw["P"].dtype
        s = x[:, : K * Np].to(dt)  # sin(AoD) of every path, [n, K Np]
        phase = -math.pi * s[:, :, None] * self.idx.to(dt)  # [n, K Np, M]
        a_re, a_im = torch.cos(phase) / math.sqrt(M), torch.sin(phase) / math.sqrt(M)
        w = raw["P"].reshape(n, K, K * Np, Me, 2)  # W_k
        wr = 0.1 * w[..., 0] + self.base.to(dt)
        wi = 0.1 * w[..., 1]
        # P_k = A (w_r + j w_i), A = a^T: [n, K, M, Me]
        ar, ai = a_re.transpose(1, 2)[:, None], a_im.transpose(1, 2)[:, None]
        pr = ar @ wr - ai @ wi
        pi = ar @ wi + ai @ wr
        if Me > Np:  # columns without an own path: add a fixed DFT beam per column so GS never sees zeros
            extra = torch.zeros(M, Me, dtype=dt, device=x.device)
            for j in range(Np, Me):
                extra[(j * 7) % M, j] = 1.0
            pr = pr + extra
        pr, pi = _gram_schmidt(pr, pi)
        # beam domain P~ = A_BS^H P
        Ar, Ai = self.A_re.to(dt), self.A_im.to(dt)
        br = Ar.T @ pr + Ai.T @ pi
        bi = Ar.T @ pi - Ai.T @ pr
        if self.budget is not None:
            power = (br.sum(1) ** 2 + bi.sum(1) ** 2).sum((-1, -2))  # ||sum_k P~_k||_F^2, [n]
            scale = torch.clamp(torch.sqrt(self.budget / power.clamp_min(1e-12)), max=1.0)[:, None, None, None]
            br, bi = br * scale, bi * scale
        c = raw["C"].reshape(n, K, Nk, Ne, 2)
        if self.receive_start == "eigen_shifted":
            e_r, e_i = self._receive_start(x, dt)
        else:
            e_r = torch.eye(Nk, Ne, dtype=dt, device=x.device)
            e_i = torch.zeros_like(e_r)
        cr, ci = _gram_schmidt(e_r + 0.1 * c[..., 0], e_i + 0.1 * c[..., 1])
        return {"P": torch.stack([br, bi], -1), "C": torch.stack([cr, ci], -1)}

    def refinement_problem(self, design: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, Any]:
        """The problem a refinement (``models.refine``) solves from ``design`` (real ``P``, ``C`` as returned by
        :meth:`forward`) for the draws with raw features ``x``: maximise the sum over UTs of the training
        objective over the feasible set. Returns a dict of

        * ``start``: the design in float64, detached (a stand-in on the rows ``ok`` leaves out);
        * ``project(params) -> params``: QR onto semi-unitary matrices, then the budget (differentiable);
        * ``objective(params, context) -> [n]``: the sum over UTs of (30) or (27);
        * ``context``: the draws' path tensors from the features (float64; inputs of a traced step, not constants);
        * ``ok`` ``[n]`` bool: the rows the objective can evaluate. The others (non-finite features or start,
          |sin| > 1, |rho| > 1, a path power above 100 dB) must keep the network's design: a batch is never
          stopped by one bad row (the exported wrapper then sets rows outside the training ranges to NaN). Their
          ``start`` and ``context`` are a stand-in row (all features 0, a fixed semi-unitary start) whose result
          is discarded.

        Call it with autograd enabled (outside inference mode): the tensors it returns are used in gradient steps.
        """
        n, K, Np = x.shape[0], self.K, self.N_P
        f = x.detach().clone().to(torch.float64)
        start = {k: v.detach().clone().to(torch.float64) for k, v in design.items()}
        KP = K * Np
        ok = (torch.isfinite(f).all(-1) & (f[:, :2 * KP].abs() <= 1).all(-1) & (f[:, 2 * KP:3 * KP] <= 100).all(-1)
              & (f[:, 3 * KP:].abs() <= 1).all(-1))
        for v in start.values():
            ok = ok & torch.isfinite(v).flatten(1).all(-1)
        f = torch.where(ok[:, None], f, torch.zeros_like(f))
        stand_in = {"P": torch.eye(self.M, self.M_e, dtype=f.dtype, device=f.device),
                    "C": torch.eye(self.N_k, self.N_e, dtype=f.dtype, device=f.device)}
        start = {k: torch.where(ok.reshape(-1, 1, 1, 1, 1), v,
                                torch.stack([stand_in[k], torch.zeros_like(stand_in[k])], -1).expand_as(v))
                 for k, v in start.items()}
        rho = f[:, 3 * KP:4 * KP].reshape(n, K, Np) if self.shared_paths else None
        pth = path_tensors(f[:, :KP].reshape(n, K, Np), f[:, KP:2 * KP].reshape(n, K, Np),
                           f[:, 2 * KP:3 * KP].reshape(n, K, Np), self.N_k, self.M, rho, self.shared_paths,
                           self.pair_mask)
        budget, objective_name, curious = self.budget, self.objective, self.curious

        def cplx(t: torch.Tensor) -> torch.Tensor:
            return torch.complex(t[..., 0], t[..., 1])

        def project(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            P = apply_budget(semi_unitary(cplx(p["P"])), budget)
            C = semi_unitary(cplx(p["C"]))
            return {"P": torch.stack([P.real, P.imag], -1), "C": torch.stack([C.real, C.imag], -1)}

        def objective(p: dict[str, torch.Tensor], paths: dict[str, torch.Tensor]) -> torch.Tensor:
            return training_rates(objective_name, cplx(p["P"]), cplx(p["C"]), paths, curious).sum(-1)

        return {"start": start, "project": project, "objective": objective, "context": pth, "ok": ok}

    def _receive_start(self, x: torch.Tensor, dt: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """UT k's eigenvectors of R~_UT,k (19)-(20) from the sin(AoA) and power features, by subspace iteration
        in real arithmetic (exportable), columns cyclically shifted by k: ``[n, K, N_k, N_e]`` real and imag.

        With pilot reuse the BS's uplink observation for UT k carries every UT's H_j^T C_j^*; what matters is the
        rotation C_j^* C_k^T between UTs. Eigen receive beams in the same order for every UT (or the identity)
        line up the UTs' strong UT-side directions on the same uplink streams; shifting UT k's by k spreads them.
        """
        n = x.shape[0]
        K, Np, Nk, Ne = self.K, self.N_P, self.N_k, self.N_e
        KP = K * Np
        s = x[:, KP:2 * KP].to(dt).reshape(n, K, Np)
        g = torch.pow(10.0, x[:, 2 * KP:3 * KP].to(dt).reshape(n, K, Np) / 10)
        g = g / g.sum(-1, keepdim=True)  # only the directions matter
        ph = -math.pi * s[..., None] * torch.arange(Nk, dtype=dt, device=x.device)  # ULA response (2)
        ar, ai = torch.cos(ph) / math.sqrt(Nk), torch.sin(ph) / math.sqrt(Nk)  # [n, K, Np, Nk]
        Fr, Fi = self.F_re.to(dt), self.F_im.to(dt)
        ur, ui = ar @ Fr + ai @ Fi, ai @ Fr - ar @ Fi  # u = a conj(F): beam-domain UT vectors
        gr, gi = g[..., None] * ur, g[..., None] * ui
        Rr = gr.transpose(-1, -2) @ ur + gi.transpose(-1, -2) @ ui  # R = sum_p g_p u_p u_p^H  [n, K, Nk, Nk]
        Ri = gi.transpose(-1, -2) @ ur - gr.transpose(-1, -2) @ ui
        Xr = torch.eye(Nk, dtype=dt, device=x.device).expand(n, K, Nk, Nk)
        Xi = torch.zeros_like(Xr)
        for _ in range(self.power_iterations):  # subspace iteration: columns -> eigenvectors, descending
            Xr, Xi = _gram_schmidt(Rr @ Xr - Ri @ Xi, Rr @ Xi + Ri @ Xr, passes=1)
        idx = [[(j - k) % Nk for j in range(Ne)] for k in range(K)]  # UT k: column j = eigenvector j - k
        # columns picked by slicing, not by an index tensor (a traced constant that make_fx cannot export)
        Er = torch.stack([torch.stack([Xr[:, k, :, i] for i in idx[k]], -1) for k in range(K)], 1)
        Ei = torch.stack([torch.stack([Xi[:, k, :, i] for i in idx[k]], -1) for k in range(K)], 1)
        return Er, Ei


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
        self.M, self.K, self.N_k = _check_int("M", M), _check_int("K", K), _check_int("N_k", N_k)
        if receive_start not in MultiUserDesignSpace.RECEIVE_STARTS:
            raise ValueError(f"receive_start must be one of {MultiUserDesignSpace.RECEIVE_STARTS}, "
                             f"got {receive_start!r}")
        self.receive_start = receive_start
        self.N_P, self.M_e, self.N_e = _check_int("N_P", N_P), _check_int("M_e", M_e), _check_int("N_e", N_e)
        if self.N_e > self.N_k:
            raise ValueError(f"N_e must be <= N_k, got N_e={N_e}, N_k={N_k}")
        if self.M_e > self.M:
            raise ValueError(f"M_e must be <= M, got M_e={M_e}, M={M}")
        if self.K * self.M_e > self.M:
            raise ValueError(f"non-overlapping beams (Algorithm 1) need K M_e <= M, got K={K}, M_e={M_e}, M={M}")
        if objective not in self.OBJECTIVES:
            raise ValueError(f"objective must be one of {self.OBJECTIVES}, got {objective!r}")
        if not isinstance(budget, bool):
            raise ValueError(f"budget must be true or false, got {budget!r}")
        self.spread = check_real("spread", spread, low=0.0, high=0.5)
        _check_range("overlapping_gap_range", overlapping_gap_range, min_allowed=0.0)
        _check_range("separated_gap_range", separated_gap_range, min_allowed=0.0)
        # per-UT SNR; above 80 dB the float64 observation covariances (1 + 10^(dB/10) g) lose the unit noise
        _check_range("snr_db_range", snr_db_range, min_allowed=-50.0, max_allowed=80.0)
        _check_range("rho_range", rho_range, min_allowed=-1.0, max_allowed=1.0)
        self.p_overlapping = check_real("p_overlapping", p_overlapping, low=0.0, high=1.0)
        self.path_power_spread_db = check_real("path_power_spread_db", path_power_spread_db, low=0.0)
        self.overlap_threshold_db = check_real("overlap_threshold_db", overlap_threshold_db, high=0.0)
        self.shared_paths = _check_int("shared_paths", shared_paths, low=0)
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
        n = _check_int("n (number of draws)", n, low=0)
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
        n = _check_int("n", n)
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
        f64 = {k: _as_real(k, batch[k], "a real tensor [n, K, N_P]") for k in ("sin_aod", "sin_aoa", "power_db")}
        for k, t in f64.items():
            if t.ndim != 3 or tuple(t.shape[1:]) != (self.K, self.N_P):
                raise ValueError(f"{k} must be [n, K, N_P] = [n, {self.K}, {self.N_P}], got shape {tuple(t.shape)}")
        for k in ("sin_aod", "sin_aoa"):
            _check_finite(k, f64[k])
            if torch.any(f64[k].abs() > 1.0):
                raise ValueError(f"{k} must lie in [-1, 1], got max |sin| {f64[k].abs().max().item():.6g}")
        _check_finite("power_db", f64["power_db"])  # -inf dB (a zero-power path) would be a -inf feature
        _check_finite("power_db", 10 ** (f64["power_db"] / 10))
        rho = None
        if self.shared_paths:
            if "rho_shared" not in batch:
                raise ValueError("a shared-scatterer batch needs rho_shared [n, K, N_P] (shared_paths = "
                                 f"{self.shared_paths})")
            rho = _as_real("rho_shared", batch["rho_shared"], "a real tensor [n, K, N_P]")
            if tuple(rho.shape) != tuple(f64["sin_aod"].shape):
                raise ValueError(f"rho_shared must have the shape of sin_aod {tuple(f64['sin_aod'].shape)}, got "
                                 f"{tuple(rho.shape)}")
            if torch.any(rho.abs() > 1) or not torch.all(torch.isfinite(rho)):
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
        P, C = _as_tensor("P", P), _as_tensor("C", C)
        pth = self.paths(batch)
        n = pth["u"].shape[0]
        if tuple(P.shape) != (n, self.K, self.M, P.shape[-1]) or tuple(C.shape) != (n, self.K, self.N_k, C.shape[-1]):
            raise ValueError(f"designs must be P [n, K, M, M_e] = [{n}, {self.K}, {self.M}, M_e] and C [n, K, N_k, "
                             f"N_e] = [{n}, {self.K}, {self.N_k}, N_e], got {tuple(P.shape)} and {tuple(C.shape)}")
        P, C = P.to(torch.complex128), C.to(torch.complex128)
        _check_finite("P", P)
        _check_finite("C", C)
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
        if self.budget_value is None or P.numel() == 0:
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
        out = {k: _as_tensor(f"outputs[{k!r}]", outputs[k]) for k in ("P", "C")}
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
        restarts = _check_int("restarts", restarts)
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
