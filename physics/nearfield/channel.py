"""Near-field XL-MIMO key generation (paper 004): the spherical-wave LoS channel 004 (2)-(3).

System (004 Sec. II-III, conventions pinned in docs/architecture.md section 1): an N-element ULA (Alice, the BS)
on the x-axis, element n = 0..N-1 at x_n = delta_n d, delta_n = (2n - N + 1)/2, d = lambda/2,
lambda = c/f_c with c = 299 792 458 m/s; a single-antenna user u in {Bob, Eve} at
(r_u sin psi_u, r_u cos psi_u) (positive psi points to +x). The LoS channel is 004 (2)-(3) with the
sqrt(N) and 1/sqrt(N) cancelled:

    f_n = sqrt(beta_n) exp(-j 2 pi (r_n - r) / lambda),   beta_n = (lambda / (4 pi))^2 (r_n / 1 m)^-2,
    r_n = sqrt(r^2 + d^2 delta_n^2 - 2 r sin(psi) d delta_n),

f for Bob, h for Eve.
"""

from __future__ import annotations

import math

import torch

from physics.checks import as_real, check_broadcast, check_finite, check_int, value_checks_on
from physics.units import SPEED_OF_LIGHT_M_S

__all__ = ["CARRIER_HZ_RANGE", "R_M_MAX", "near_field_channel"]


#: Carriers outside this range are refused as absurd for an XL-MIMO near-field model (1 MHz .. 10 THz).
CARRIER_HZ_RANGE = (1e6, 1e13)


#: Largest user distance accepted by :func:`near_field_channel`, metres. Not physics (the spherical-wave model
#: holds at any distance; far beyond the Rayleigh distance it is the far field): the channel squares r, and
#: r^2 overflows float64 above ~1.3e154 m (r = 1e308 m gave NaN silently). 1e150 m keeps every step finite.
R_M_MAX = 1e150


def _check_channel(name: str, v: torch.Tensor) -> torch.Tensor:
    if not isinstance(v, torch.Tensor) or v.ndim < 1:
        raise ValueError(f"{name} must be a tensor [..., N], got {type(v).__name__}")
    if not v.is_complex():
        raise ValueError(f"{name} must be complex [..., N] (004 (2)-(3)), got dtype {v.dtype}")
    if v.shape[-1] < 2:
        raise ValueError(f"{name} must have N >= 2 entries (BS antennas, as near_field_channel requires), got "
                         f"shape {tuple(v.shape)}")
    check_finite(name, v)
    return v.to(torch.complex128)


def _channel_pair(f: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bob's and Eve's channels checked (complex, finite, N >= 2) and of the same length N."""
    f, h = _check_channel("f", f), _check_channel("h", h)
    if h.shape[-1] != f.shape[-1]:
        raise ValueError(f"f and h must have the same length N, got {f.shape[-1]} and {h.shape[-1]}")
    return f, h


def _channel_parts(N: int, r_m: torch.Tensor, psi_rad: torch.Tensor, wavelength_m: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of 004 (2)-(3), ``[..., N]`` each, in the dtype of ``r_m``.

    Real arithmetic only (no complex tensors), so the design space built on it exports with torch.export.
    r_n - r is formed as (x_n^2 - 2 r sin(psi) x_n) / (r_n + r): no cancellation, so the phase is exact
    to a few ulps of 2 pi (r_n - r)/lambda even in float32.
    """
    dtype, device = r_m.dtype, r_m.device
    n = torch.arange(N, dtype=dtype, device=device)
    delta = (2.0 * n - (N - 1)) / 2.0                                           # delta_n, Sec. II-B
    lam = wavelength_m[..., None]
    x = delta * (lam / 2.0)                                                      # x_n = delta_n d, d = lambda/2
    r = r_m[..., None]
    theta = torch.sin(psi_rad)[..., None]                                        # theta = sin psi
    num = x * x - 2.0 * r * theta * x
    r_n = torch.sqrt((r * r + num).clamp_min(0.0))                               # r_un below (3)
    diff = num / (r_n + r)                                                       # r_n - r
    amp = (lam / (4.0 * math.pi)) / r_n.clamp_min(torch.finfo(dtype).tiny)       # sqrt(beta_n), Sec. V-A
    phase = (2.0 * math.pi) * diff / lam
    return amp * torch.cos(phase), -amp * torch.sin(phase)                      # exp(-j 2 pi (r_n - r)/lambda)


def near_field_channel(N, r_m, psi_rad, carrier_hz) -> torch.Tensor:
    """LoS near-field channel of 004 (2)-(3), ``[..., N]`` complex128 (pinned conventions, module docstring).

    Args:
        N: number of BS antennas, an integer >= 2.
        r_m: distance(s) of the user from the array centre, metres, in (0, R_M_MAX]; float or real tensor
            ``[...]`` (not bool).
        psi_rad: angle(s) from the array broadside (y-axis), radians, |psi| <= pi/2; positive towards +x.
        carrier_hz: carrier frequency, Hz, in ``CARRIER_HZ_RANGE`` (1 MHz .. 10 THz).

    ``r_m``, ``psi_rad`` and ``carrier_hz`` must broadcast (ValueError naming their shapes). The result is on
    ``r_m``'s device. ``f = sqrt(N) c`` with c of (3), so entry n is sqrt(beta_n) exp(-j 2 pi (r_n - r)/lambda)
    and |f|^2 = sum_n beta_n.
    """
    N = check_int("N (number of BS antennas)", N, low=2)
    r = as_real("r_m", r_m)
    psi = as_real("psi_rad", psi_rad, like=r)
    fc = as_real("carrier_hz", carrier_hz, like=r)
    check_broadcast(r_m=("", r.shape), psi_rad=("", psi.shape), carrier_hz=("", fc.shape))
    check_finite("r_m", r, positive=True)
    if value_checks_on() and torch.any(r > R_M_MAX):
        raise ValueError(f"r_m must be <= {R_M_MAX:g} m (the float64 limit of the model, R_M_MAX), "
                         f"got {r.max().item():g}")
    check_finite("psi_rad", psi)
    if value_checks_on() and torch.any(psi.abs() > math.pi / 2):
        worst = psi.reshape(-1)[psi.abs().reshape(-1).argmax()].item()
        raise ValueError(f"psi_rad must lie in [-pi/2, pi/2], got {worst:.6g}")
    check_finite("carrier_hz", fc, positive=True)
    out_of_range = (fc < CARRIER_HZ_RANGE[0]) | (fc > CARRIER_HZ_RANGE[1])
    if value_checks_on() and torch.any(out_of_range):
        raise ValueError(f"carrier_hz must lie in [{CARRIER_HZ_RANGE[0]:g}, {CARRIER_HZ_RANGE[1]:g}] Hz, "
                         f"got {fc[out_of_range].reshape(-1)[0].item():g}")
    r, psi, fc = torch.broadcast_tensors(r, psi, fc)
    lam = SPEED_OF_LIGHT_M_S / fc
    # the user must not sit on an element (r_n = 0): only possible at |psi| = pi/2, r = |x_n|
    # r_n >= r |cos psi|, so only users (almost) on the array axis can sit on an element
    edge = r * torch.cos(psi).abs() <= 1e-9 * lam
    if value_checks_on() and torch.any(edge):
        x = (torch.arange(N, dtype=torch.float64, device=r.device) - (N - 1) / 2.0) * lam[edge][..., None] / 2.0
        r_n = (r[edge][..., None] * torch.sin(psi[edge])[..., None] - x).abs()
        if torch.any(r_n <= 1e-9 * lam[edge][..., None]):
            raise ValueError("the user sits on an array element (r_n = 0): choose r_m or psi_rad off the array")
    re, im = _channel_parts(N, r, psi, lam)
    return torch.complex(re, im)
