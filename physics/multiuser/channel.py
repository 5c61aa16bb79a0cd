"""Beam-domain multi-user key generation in massive MIMO (paper 003): the channel model and its beam domain.

System (003 Sec. III-IV): a BS with an M-antenna half-wavelength ULA generates a separate key with each
of K user terminals (UTs), UT k having an N_k-antenna ULA. The downlink channel of UT k is the
geometric multipath channel (1)-(3), H_k = sum_p alpha_kp a_UT(theta_kp) a_BS(phi_kp)^H ``[N_k, M]``,
with independent complex Gaussian path gains alpha_kp ~ CN(0, g_kp) and fixed angles (the statistical
CSI). Its beam-domain form is H~_k = A_UT^H H_k A_BS (13) with the DFT matrices (16). Conventions: see
:mod:`physics.multiuser`.
"""

from __future__ import annotations

import math

import torch

from physics.checks import as_real, check_finite, check_int, check_real

__all__ = ["beam_covariances", "beam_domain_channel", "beam_grid", "beam_powers_from_paths", "beam_vectors",
           "dft_matrix", "geometric_channel", "lambda_from_paths", "lambda_joint_from_paths", "path_tensors",
           "shared_pair_mask", "ula_response"]


def ula_response(num_antennas: int, sin_angle, spacing_wavelengths: float = 0.5) -> torch.Tensor:
    """ULA response of 003 (2): [a(theta)]_i = exp(-j 2 pi d/lambda i sin theta) / sqrt(N), i = 0..N-1.

    ``sin_angle [...]`` real (finite, in [-1, 1]); returns ``[..., N]`` complex128.
    """
    N = check_int("num_antennas", num_antennas)
    spacing_wavelengths = check_real("spacing_wavelengths", spacing_wavelengths, low=0.0, low_inclusive=False)
    s = torch.as_tensor(sin_angle, dtype=torch.float64)
    check_finite("sin_angle", s)
    if torch.any(s.abs() > 1.0):
        raise ValueError(f"sin_angle must lie in [-1, 1], got max |sin| {s.abs().max().item():.6g}")
    i = torch.arange(N, dtype=torch.float64, device=s.device)
    phase = -2.0 * math.pi * spacing_wavelengths * s[..., None] * i
    return torch.polar(torch.full_like(phase, 1.0 / math.sqrt(N)), phase)


def dft_matrix(N: int, device=None) -> torch.Tensor:
    """Sampling matrix of 003 (14)-(16) for d = lambda/2: [A]_{i,m} = exp(-j 2 pi i (m+1 - N/2)/N) / sqrt(N)
    (0-based i, m), i.e. column m is the ULA response at sin(angle) = 2(m+1)/N - 1. Unitary. ``[N, N]``."""
    N = check_int("N", N)
    i = torch.arange(N, dtype=torch.float64, device=device)
    m = torch.arange(1, N + 1, dtype=torch.float64, device=device)
    phase = -2.0 * math.pi * i[:, None] * (m[None, :] - N / 2.0) / N
    return torch.polar(torch.full_like(phase, 1.0 / math.sqrt(N)), phase)


def beam_grid(N: int) -> torch.Tensor:
    """The sines of the DFT beams of (16): 2 m / N - 1, m = 1..N. ``[N]`` float64."""
    N = check_int("N", N)
    return 2.0 * torch.arange(1, N + 1, dtype=torch.float64) / N - 1.0


def geometric_channel(alpha: torch.Tensor, sin_aoa: torch.Tensor, sin_aod: torch.Tensor, N_k: int,
                      M: int) -> torch.Tensor:
    """003 (1)-(3): H = sum_p alpha_p a_UT(theta_p) a_BS(phi_p)^H. ``alpha, sin_aoa, sin_aod [..., P]``;
    returns ``[..., N_k, M]`` complex128."""
    N_k, M = check_int("N_k", N_k), check_int("M", M)
    a_ut = ula_response(N_k, sin_aoa)  # [..., P, N_k]
    a_bs = ula_response(M, sin_aod)  # [..., P, M]
    alpha = torch.as_tensor(alpha).to(torch.complex128)
    check_finite("alpha", alpha)
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
    N_k, M = check_int("N_k", N_k), check_int("M", M)
    if torch.as_tensor(sin_aoa).shape != torch.as_tensor(sin_aod).shape:
        raise ValueError(f"sin_aoa and sin_aod must have the same shape [..., P] (one AoA and one AoD per path), got "
                         f"{tuple(torch.as_tensor(sin_aoa).shape)} and {tuple(torch.as_tensor(sin_aod).shape)}")
    u = ula_response(N_k, sin_aoa) @ dft_matrix(N_k, torch.as_tensor(sin_aoa).device).conj()
    v = ula_response(M, sin_aod) @ dft_matrix(M, torch.as_tensor(sin_aod).device).conj()
    return u, v


def shared_pair_mask(K: int, N_P: int, shared_paths: int) -> torch.Tensor:
    """``[K N_P, K N_P]`` float64 with 1 at ((a, p), (b, p)) for the UT pairs (a, b) = (0, 1), (2, 3), ...
    and their first ``shared_paths`` paths (upper triangle only). ``0 <= shared_paths <= N_P``."""
    K, N_P = check_int("K", K), check_int("N_P", N_P)
    shared_paths = check_int("shared_paths", shared_paths, low=0)
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


def lambda_from_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Full beam-domain correlation Lambda = sum_p g_p x_p x_p^H, x_p = conj(v_p) kron u_p.

    ``u [..., P, N_k]``, ``v [..., P, M]``, ``g [..., P]`` (path powers, unit noise) ->
    ``[..., M N_k, M N_k]`` complex128.
    """
    g = as_real("path powers g", g, nonneg=True)
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
    g = as_real("path powers g", g, nonneg=True).to(torch.complex128)
    R_bs = torch.einsum("...p,...pi,...pj->...ij", g * (u.abs() ** 2).sum(-1), v, v.conj())
    R_ut = torch.einsum("...p,...pi,...pj->...ij", g * (v.abs() ** 2).sum(-1), u, u.conj())
    return R_bs, R_ut


def beam_powers_from_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonals of (19)-(20) without forming the matrices: sum_p g_p |v_pm|^2 and sum_p g_p |u_pn|^2."""
    g = g.to(torch.float64)
    return (g[..., None] * v.abs() ** 2).sum(-2), (g[..., None] * u.abs() ** 2).sum(-2)
