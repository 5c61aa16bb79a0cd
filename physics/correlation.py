"""Bob-Eve channel correlation (001 Theorem 1)."""

from __future__ import annotations

import torch

from physics.checks import value_checks_on
from physics.units import as_float64, wavelength_m


def bob_eve_correlation(distance_m, carrier_hz) -> torch.Tensor:
    """rho = J0(2 pi d / lambda), 001 Theorem 1 (Jakes' isotropic scattering model).

    distance_m: ``[...]`` Bob-Eve distance; returns ``[...]`` float64 in [-0.403, 1].
    """
    d = as_float64(distance_m)
    if value_checks_on() and (torch.any(d < 0) or not torch.all(torch.isfinite(d))):
        raise ValueError(f"Bob-Eve distance_m must be finite and >= 0, got min {d.min().item()}")
    return torch.special.bessel_j0(2.0 * torch.pi * d / wavelength_m(carrier_hz).to(d.device))
