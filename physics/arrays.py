"""Spatial correlation of the BS uniform linear array and the IRS uniform planar array (001 (8)-(9))."""

from __future__ import annotations

import torch

from physics.checks import value_checks_on
from physics.units import as_float64


def bs_correlation(eta, num_antennas: int) -> torch.Tensor:
    """Exponential BS correlation, 001 (9): [R_B]_{m,n} = eta^|m-n|.

    eta: scalar or ``[...]`` in [0, 1). Returns ``[..., M, M]`` float64.
    """
    if int(num_antennas) < 1:
        raise ValueError(f"num_antennas (M) must be >= 1, got {num_antennas}")
    eta = as_float64(eta)
    if value_checks_on() and (not torch.all(torch.isfinite(eta)) or torch.any(eta < 0) or torch.any(eta >= 1)):
        raise ValueError(f"eta must lie in [0, 1), got values in [{eta.min().item()}, {eta.max().item()}]")
    idx = torch.arange(num_antennas, dtype=torch.float64, device=eta.device)
    dist = (idx[:, None] - idx[None, :]).abs()
    # eta^0 = 1 also for eta = 0 (torch.pow(0, 0) == 1).
    return torch.pow(eta[..., None, None], dist)


def irs_element_positions(L_H: int, L_V: int, spacing_wavelengths: float = 0.5, *, device=None,
                          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Element positions in wavelengths, 001 Sec. II-B: u_n = [0, y_n Delta, z_n Delta],
    y_n = mod(n-1, L_H), z_n = floor((n-1)/L_H). Returns ``[L, 3]`` on ``device`` in ``dtype``."""
    if int(L_H) < 1 or int(L_V) < 1:
        raise ValueError(f"L_H and L_V must be >= 1, got L_H={L_H}, L_V={L_V}")
    if not spacing_wavelengths > 0:
        raise ValueError(f"spacing_wavelengths must be > 0, got {spacing_wavelengths}")
    n = torch.arange(L_H * L_V, dtype=dtype, device=device)
    y = torch.remainder(n, L_H)
    z = torch.div(n, L_H, rounding_mode="floor")
    return torch.stack([torch.zeros_like(n), y, z], dim=-1) * spacing_wavelengths


def irs_correlation(L_H: int, L_V: int, spacing_wavelengths: float = 0.5, *, device=None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Isotropic-scattering IRS correlation, 001 (8): sin(2 pi d/lambda) / (2 pi d/lambda).

    Only the element spacing in wavelengths matters (the carrier cancels). Returns ``[L, L]`` on
    ``device`` in ``dtype`` (callers pass their inputs' device, so no CPU constant meets a GPU batch).
    """
    u = irs_element_positions(L_H, L_V, spacing_wavelengths, device=device, dtype=dtype)
    d_wl = torch.cdist(u, u)  # distance in wavelengths
    # torch.sinc(x) = sin(pi x)/(pi x), so sin(2 pi d)/(2 pi d) = sinc(2 d).
    return torch.sinc(2.0 * d_wl)
