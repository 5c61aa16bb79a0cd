"""Multipath OFDM channel frequency responses (paper 002): subcarriers, the CFR 002 (4), features, AWGN.

Paper 002 (KGNet, FDD key generation) models the channel between Alice (a single-antenna access
point) and Bob (a single-antenna user) as ``N`` paths with magnitude ``alpha_n``, delay ``tau_n``
and phase shift ``phi_n`` (002 (3)); the CFR of subcarrier ``l`` is 002 (4):

    H(f, l) = sum_n alpha_n exp(-j 2 pi f tau_n + j phi_n) exp(-j 2 pi tau_n f_l)
            = sum_n alpha_n exp(j phi_n) exp(-j 2 pi (f + f_l) tau_n),

with ``f`` the carrier and ``f_l`` the offset of subcarrier ``l``. :func:`cfr_from_paths` evaluates
the second form at absolute frequencies ``f + f_l``; :func:`subcarrier_freqs_hz` builds them.

Subcarrier convention: ``f_l = l * B / L`` for ``l = 0 .. L-1`` (the carrier is subcarrier 0).
This is what DeepMIMO computes (``exp(-j 2 pi tau k B / N)``, k = 0..N-1) and therefore what 002
used for its I1 data (002 Sec. VII-A); ``centered=True`` gives the symmetric alternative.
With 002's numbers (L = 64, B = 0.5 GHz, carriers 2.4 and 2.5 GHz) the two bands overlap: Band1
spans 2.4-2.9 GHz and Band2 2.5-3.0 GHz.

The synthetic indoor room that produces the paths is :mod:`physics.multipath.room`.
"""

from __future__ import annotations

import math

import torch

__all__ = ["PAPER_002_BAND1_CARRIER_HZ", "PAPER_002_BAND2_CARRIER_HZ", "PAPER_002_BANDWIDTH_HZ",
           "PAPER_002_EVE_DISTANCE_M", "PAPER_002_NUM_PATHS", "PAPER_002_NUM_SUBCARRIERS", "add_awgn",
           "cfr_from_paths", "cfr_to_features", "features_to_cfr", "subcarrier_freqs_hz"]


# 002 Sec. VII-A: 64 subcarriers, 5 paths, 0.5 GHz bandwidth, carriers 2.4 GHz (Band1) and
# 2.5 GHz (Band2).
PAPER_002_BAND1_CARRIER_HZ = 2.4e9
PAPER_002_BAND2_CARRIER_HZ = 2.5e9
PAPER_002_BANDWIDTH_HZ = 0.5e9
PAPER_002_NUM_SUBCARRIERS = 64
PAPER_002_NUM_PATHS = 5
PAPER_002_EVE_DISTANCE_M = 0.15  # 002 Sec. VII-C, Fig. 11


def subcarrier_freqs_hz(
    carrier_hz: float, bandwidth_hz: float, num_subcarriers: int, *, centered: bool = False
) -> torch.Tensor:
    """Absolute subcarrier frequencies ``f + f_l`` of 002 (4), float64 ``[L]``.

    ``f_l = l * B / L`` for ``l = 0 .. L-1`` (carrier at subcarrier 0, the DeepMIMO convention 002
    used); with ``centered=True``, ``f_l = (l - L/2) * B / L`` (carrier at the band centre).
    """
    if not (isinstance(num_subcarriers, int) and num_subcarriers >= 1):
        raise ValueError(f"num_subcarriers={num_subcarriers!r} must be a positive integer")
    if not (math.isfinite(carrier_hz) and carrier_hz > 0):
        raise ValueError(f"carrier_hz={carrier_hz!r} must be a finite positive frequency")
    if not (math.isfinite(bandwidth_hz) and bandwidth_hz > 0):
        raise ValueError(f"bandwidth_hz={bandwidth_hz!r} must be a finite positive bandwidth")
    index = torch.arange(num_subcarriers, dtype=torch.float64)
    if centered:
        index = index - num_subcarriers / 2
    return carrier_hz + index * (bandwidth_hz / num_subcarriers)


def cfr_from_paths(
    gain: torch.Tensor, delay_s: torch.Tensor, phase_rad: torch.Tensor, freqs_hz: torch.Tensor
) -> torch.Tensor:
    """Multipath channel frequency response, 002 (4).

    ``H[..., k] = sum_n gain[..., n] exp(j phase_rad[..., n]) exp(-j 2 pi freqs_hz[..., k] delay_s[..., n])``

    Args:
        gain: ``[..., P]`` path magnitudes ``alpha_n`` (linear amplitude; 0 for padded paths).
        delay_s: ``[..., P]`` path delays ``tau_n`` in seconds.
        phase_rad: ``[..., P]`` path phase shifts ``phi_n`` in radians (interaction phases; the
            propagation phase ``-2 pi f tau`` is added here).
        freqs_hz: ``[..., K]`` absolute frequencies ``f + f_l`` (e.g. :func:`subcarrier_freqs_hz`);
            to reproduce DeepMIMO, whose ray-traced phase already holds the carrier term, pass the
            baseband offsets ``f_l`` only.

    Leading dimensions broadcast. Computed in float64 (delay x frequency products reach ~10^3 rad)
    and returned as complex128.

    Returns:
        ``[..., K]`` complex128.
    """
    gain, delay_s, phase_rad, freqs_hz = (torch.as_tensor(t, dtype=torch.float64)
                                           for t in (gain, delay_s, phase_rad, freqs_hz))
    if not (gain.shape[-1:] == delay_s.shape[-1:] == phase_rad.shape[-1:]):
        raise ValueError(f"gain {tuple(gain.shape)}, delay_s {tuple(delay_s.shape)} and phase_rad "
                         f"{tuple(phase_rad.shape)} must share the last (path) dimension")
    for name, t in (("gain", gain), ("delay_s", delay_s), ("phase_rad", phase_rad),
                    ("freqs_hz", freqs_hz)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds non-finite values; pad missing paths with gain 0")
    # Total phase phi_n - 2 pi f_k tau_n, [..., P, K]; real and imaginary parts summed over paths
    # (two real reductions are cheaper than a complex exp and a complex product).
    angle = phase_rad.unsqueeze(-1) - 2.0 * math.pi * delay_s.unsqueeze(-1) * freqs_hz.unsqueeze(-2)
    weight = gain.unsqueeze(-1)
    return torch.complex((weight * torch.cos(angle)).sum(dim=-2), (weight * torch.sin(angle)).sum(dim=-2))


def cfr_to_features(cfr: torch.Tensor) -> torch.Tensor:
    """Realisation of 002 (13): ``[..., K]`` complex -> ``[..., 2K]`` real ``(Re H, Im H)``."""
    if not torch.is_complex(cfr):
        raise ValueError(f"cfr must be complex, got dtype {cfr.dtype}")
    return torch.cat((cfr.real, cfr.imag), dim=-1)


def features_to_cfr(features: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`cfr_to_features`: ``[..., 2K]`` real -> ``[..., K]`` complex."""
    if features.shape[-1] % 2:
        raise ValueError(f"features last dimension {features.shape[-1]} must be even (2K)")
    k = features.shape[-1] // 2
    return torch.complex(features[..., :k], features[..., k:])


def add_awgn(cfr: torch.Tensor, snr_db: float | torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Add complex white Gaussian noise at ``snr_db`` relative to each sample's mean subcarrier power.

    ``sigma^2 = mean_k |H[..., k]|^2 / 10^(snr_db / 10)`` per sample; the noise is circular,
    ``CN(0, sigma^2)`` (variance ``sigma^2 / 2`` per real part), drawn from ``generator``
    (002 Sec. VII-C: "complex white Gaussian noise" at a given SNR).

    Args:
        cfr: ``[..., K]`` complex.
        snr_db: scalar or tensor broadcastable to ``cfr.shape[:-1]``.
        generator: the only source of randomness.

    Returns:
        ``[..., K]`` noisy CFR, same dtype as ``cfr``.
    """
    if not torch.is_complex(cfr):
        raise ValueError(f"cfr must be complex, got dtype {cfr.dtype}")
    snr = torch.as_tensor(snr_db, dtype=torch.float64)
    if not bool(torch.isfinite(snr).all()):
        raise ValueError(f"snr_db={snr_db!r} must be finite")
    power = cfr.abs().to(torch.float64).square().mean(dim=-1, keepdim=True)
    sigma = torch.sqrt(power / torch.pow(10.0, snr / 10.0).unsqueeze(-1) / 2.0)
    draws = torch.randn((2, *cfr.shape), generator=generator, dtype=torch.float64)
    noise = torch.complex(sigma * draws[0], sigma * draws[1])
    return cfr + noise.to(cfr.dtype)
