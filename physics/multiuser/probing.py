"""Beam-domain multi-user key generation (paper 003): Monte Carlo of the probing of (21)-(26) and the mutual
information estimated from its samples (what the closed forms are checked against and the key pipeline
consumes)."""

from __future__ import annotations

import math

import torch

from physics.checks import as_tensor, check_finite, check_hermitian, check_int
from physics.gaussian import sample_mi_bits
from physics.multiuser.channel import dft_matrix, geometric_channel
from physics.multiuser.designs import random_semi_unitary
from physics.seeding import check_generator

__all__ = ["check_pilot_lengths", "draw_path_gains", "mc_mutual_information", "simulate_probing"]


def draw_path_gains(G: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of the stacked path gains a ~ CN(0, G) ``[n, D]`` (G real PSD ``[D, D]``)."""
    n = check_int("n (number of draws)", n, low=0)
    check_generator(generator)
    G = as_tensor("G", G)
    if G.is_complex():
        raise ValueError(f"G (the path-gain covariance) must be real, got dtype {G.dtype}")
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] == 0:
        raise ValueError(f"G (the path-gain covariance) must be [D, D] with D >= 1, got shape {tuple(G.shape)}")
    check_finite("G", G)
    check_hermitian("G", G, 1e-8, "G", word="symmetric", adjoint="T")  # real: G^H = G^T
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
    T_D, T_U = check_int("T_D (downlink pilot length)", T_D), check_int("T_U (uplink pilot length)", T_U)
    M_e, N_e, K = check_int("M_e", M_e), check_int("N_e", N_e), check_int("K", K)
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
    n = check_int("n (number of channel draws)", n)
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
            v = sample_mi_bits(x[sl], y[sl])
        else:
            v = (sample_mi_bits(x[sl], torch.cat([y[sl], w[sl]], -1))
                 - sample_mi_bits(x[sl], w[sl]))
        vals.append(float(v))
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std() / math.sqrt(batches))
