"""Monte Carlo simulation of the IRS-assisted channel probing (001 (1)-(7), (21)-(24)).

Used to verify the closed forms of :mod:`physics.irs.rates` independently (draw the correlated NLoS
channels, form the noisy observations of Alice, Bob and Eve; :func:`physics.gaussian.sample_mi_bits` estimates
their mutual information from samples) and by the key pipeline, which quantises these observations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from physics.checks import check_int
from physics.irs.stats import IRSStats

__all__ = ["NLoSChannels", "draw_nlos_channels", "observations"]


class NLoSChannels(NamedTuple):
    """One batch of NLoS channel draws (001 (5)-(7)); leading dim ``n`` = draws.

    h_ab ``[n, M]``, G ``[n, M, L]``, f_b ``[n, L]``; with Eve also h_ae ``[n, M]``, f_e ``[n, L]``.
    """

    h_ab: torch.Tensor
    G: torch.Tensor
    f_b: torch.Tensor
    h_ae: torch.Tensor | None
    f_e: torch.Tensor | None


def _cn(shape, generator, dtype=torch.complex128) -> torch.Tensor:
    """i.i.d. CN(0, 1) samples."""
    real = torch.randn(*shape, 2, generator=generator, dtype=torch.float64) / math.sqrt(2.0)
    return torch.view_as_complex(real).to(dtype)


def _sqrtm_psd(R: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a real PSD matrix (eigenvalues clamped at 0)."""
    lam, U = torch.linalg.eigh(R)
    return (U * lam.clamp_min(0).sqrt()[..., None, :]) @ U.transpose(-1, -2)


def _scalar(t: torch.Tensor, name: str) -> float:
    if t.numel() != 1:
        raise ValueError(f"Monte Carlo needs single-point statistics; {name} has shape {tuple(t.shape)}")
    return float(t.reshape(()))


def draw_nlos_channels(stats: IRSStats, n: int, generator: torch.Generator) -> NLoSChannels:
    """Draw ``n`` NLoS channel sets for one statistics point (001 (5)-(7)).

    G^NL = R_B^1/2 G~ R_I^1/2, f^NL = R_I^1/2 f~, h^NL = R_B^1/2 h~ with G~ ~ CN(0, beta_G/(1+kappa)),
    f~ ~ CN(0, beta_f/(1+kappa)), h~ ~ CN(0, beta_h) (direct links NLoS: kappa_h = 0). Eve's
    whitened channels are correlated with Bob's element-wise with coefficient rho (001 Theorem 1):
    x_e = rho x_b + sqrt(1 - rho^2) w (both unit variance before scaling).
    """
    n = check_int("n (number of draws)", n)
    M, L = stats.M, stats.L
    RB = stats.R_B.reshape(M, M) if stats.R_B.numel() == M * M else None
    RI = stats.R_I.reshape(L, L) if stats.R_I.numel() == L * L else None
    if RB is None or RI is None:
        raise ValueError("Monte Carlo needs single-point statistics (unbatched R_B and R_I)")
    kappa = _scalar(stats.kappa, "kappa")
    sB, sI = _sqrtm_psd(RB).to(torch.complex128), _sqrtm_psd(RI).to(torch.complex128)
    k1 = 1.0 + kappa
    hb_w = _cn((n, M), generator)
    fb_w = _cn((n, L), generator)
    G_w = _cn((n, M, L), generator)
    h_ab = math.sqrt(_scalar(stats.beta_h, "beta_h")) * hb_w @ sB.T
    f_b = math.sqrt(_scalar(stats.beta_f, "beta_f") / k1) * fb_w @ sI.T
    G = math.sqrt(_scalar(stats.beta_G, "beta_G") / k1) * sB @ G_w @ sI
    h_ae = f_e = None
    if stats.has_eve:
        rho = _scalar(stats.rho, "rho")
        c = math.sqrt(max(0.0, 1.0 - rho * rho))
        he_w = rho * hb_w + c * _cn((n, M), generator)
        fe_w = rho * fb_w + c * _cn((n, L), generator)
        h_ae = math.sqrt(_scalar(stats.beta_h_eve, "beta_h_eve")) * he_w @ sB.T
        f_e = math.sqrt(_scalar(stats.beta_f_eve, "beta_f_eve") / k1) * fe_w @ sI.T
    return NLoSChannels(h_ab, G, f_b, h_ae, f_e)


def observations(
    channels: NLoSChannels, P: torch.Tensor, theta: torch.Tensor, stats: IRSStats, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Noisy NLoS channel observations of 001 (21), (23), (24), each ``[n, M]`` complex.

    y_a = sqrt(P_b) P^T (h_ab + G O f_b) + P^T n_a (uplink, after LS with |s_u| = 1),
    y_b = P^T (h_ab + G O f_b) + S_d^T n_b^T (downlink; S_d unitary, so S_d^T n_b^T ~ CN(0, d^2 I)),
    y_e = P^T (h_ae + G O f_e) + noise (Eve's downlink observation).
    P ``[M, M]``, theta ``[L]`` complex.
    """
    n, M = channels.h_ab.shape
    noise = math.sqrt(_scalar(stats.noise_power, "noise_power"))
    P_b = _scalar(stats.P_b, "P_b")
    PT = P.reshape(M, M).transpose(0, 1).to(torch.complex128)
    th = theta.reshape(-1).to(torch.complex128)

    def cascade(h, f):
        return h + torch.einsum("nml,nl->nm", channels.G, th * f)  # h + G diag(theta) f

    c_b = cascade(channels.h_ab, channels.f_b)
    out = {
        "y_a": math.sqrt(P_b) * c_b @ PT.T + noise * _cn((n, M), generator) @ PT.T,
        "y_b": c_b @ PT.T + noise * _cn((n, M), generator),
    }
    if channels.h_ae is not None:
        c_e = cascade(channels.h_ae, channels.f_e)
        out["y_e"] = c_e @ PT.T + noise * _cn((n, M), generator)
    return out
