"""Unit conversions and link-budget helpers (papers 000 and 001).

All functions accept Python floats or tensors and return float64 tensors (evaluation precision,
docs/architecture.md section 5). Names carry units: ``_db``, ``_dbm``, ``_w``, ``_hz``, ``_m``.
"""

from __future__ import annotations

import math

import torch

from physics.checks import value_checks_on

SPEED_OF_LIGHT_M_S = 299_792_458.0
THERMAL_NOISE_DBM_PER_HZ = -174.0  # 001 Sec. VII-A
LN2 = math.log(2.0)  # nats per bit


def as_float64(x) -> torch.Tensor:
    """``x`` as a float64 tensor (a tensor keeps its device)."""
    if isinstance(x, torch.Tensor):
        return x.to(torch.float64)
    return torch.as_tensor(x, dtype=torch.float64)


def db_to_linear(x_db) -> torch.Tensor:
    """10^(x/10)."""
    return torch.pow(10.0, as_float64(x_db) / 10.0)


def linear_to_db(x) -> torch.Tensor:
    """10 log10(x)."""
    return 10.0 * torch.log10(as_float64(x))


def dbm_to_w(x_dbm) -> torch.Tensor:
    """Power in dBm to watts: 10^((x - 30)/10)."""
    return torch.pow(10.0, (as_float64(x_dbm) - 30.0) / 10.0)


def w_to_dbm(x_w) -> torch.Tensor:
    """Power in watts to dBm."""
    return 10.0 * torch.log10(as_float64(x_w)) + 30.0


def noise_power_w(bandwidth_hz, noise_figure_db=0.0, psd_dbm_per_hz=THERMAL_NOISE_DBM_PER_HZ):
    """Receiver noise power, 001 Sec. VII-A: delta^2 = -174 dBm/Hz + 10 log10(W) + NF.

    With W = 20 MHz and NF = 10 dB this is -91.0 dBm = 7.96e-13 W.
    """
    bandwidth_hz = as_float64(bandwidth_hz)
    if value_checks_on() and (torch.any(bandwidth_hz <= 0) or not torch.all(torch.isfinite(bandwidth_hz))):
        raise ValueError(f"bandwidth_hz must be finite and > 0, got {bandwidth_hz.tolist()}")
    return dbm_to_w(psd_dbm_per_hz + linear_to_db(bandwidth_hz) + as_float64(noise_figure_db))


def path_loss_linear(distance_m, beta0_db, exponent, reference_m: float = 1.0) -> torch.Tensor:
    """Large-scale path gain, 001 (57) / 000 (30): beta[dB] = beta0 - 10 alpha log10(d / d0).

    Returns the linear gain (<= 1 beyond the reference distance).
    """
    d = as_float64(distance_m)
    if value_checks_on() and (torch.any(d <= 0) or not torch.all(torch.isfinite(d))):
        raise ValueError(f"distance_m must be finite and > 0, got min {d.min().item()}")
    return db_to_linear(as_float64(beta0_db) - 10.0 * as_float64(exponent) * torch.log10(d / reference_m))


def wavelength_m(carrier_hz) -> torch.Tensor:
    """lambda = c / f."""
    f = as_float64(carrier_hz)
    if value_checks_on() and torch.any(f <= 0):
        raise ValueError(f"carrier_hz must be > 0, got {f.tolist()}")
    return SPEED_OF_LIGHT_M_S / f
