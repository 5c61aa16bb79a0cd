"""Near-field XL-MIMO key generation (paper 004): the probing rounds of Sec. III, for Monte Carlo."""

from __future__ import annotations

import math

import torch

from physics.checks import check_int
from physics.gaussian import sample_mi_bits

__all__ = ["conditional_mi_bits_from_samples", "probe"]


def _cn(shape, generator: torch.Generator, device=None) -> torch.Tensor:
    re = torch.randn(*shape, 2, generator=generator, dtype=torch.float64, device=device) / math.sqrt(2.0)
    return torch.view_as_complex(re)


def probe(W: torch.Tensor, f: torch.Tensor, h: torch.Tensor, sigma_a2_w: float, sigma_b2_w: float,
          sigma_e2_w: float, P_b_w: float, rounds: int, generator: torch.Generator,
          literal_uplink: bool = True) -> dict[str, torch.Tensor]:
    """Simulate ``rounds`` probing rounds of Sec. III for one instance (``W [N, N]``, ``f``, ``h`` ``[N]``).

    Each round: Alice draws w = W^(1/2) s, s ~ CN(0, I) (pilot covariance W); Bob gets
    z_b = f^H w + n_b, n_b ~ CN(0, sigma_b^2) (5); Eve z_ae = h^H w + n_e, n_e ~ CN(0, sigma_e^2) (7);
    Alice estimates f from Bob's uplink with power P_b, z_a_vec = f + n_hat_a, n_hat_a ~ CN(0, sigma_a^2/P_b I)
    (9), and forms z_a = z_a_vec^H w = f^H w + n_hat_a^H w (10)-(11). ``literal_uplink=True`` keeps that
    product noise (variance sigma_a^2 |w|^2 / P_b, i.e. (11)'s effective noise_a = sigma_a^2 Tr W / P_b on
    average, not Gaussian jointly); ``False`` draws the Gaussian of (11) with that variance. Each round
    uses a fresh uplink (Sec. III: the probing steps alternate). Returns ``{"z_a", "z_b", "z_ae"}``
    ``[rounds]`` complex128.
    """
    rounds = check_int("rounds", rounds)
    Wc = W.to(torch.complex128)
    N = Wc.shape[-1]
    lam, U = torch.linalg.eigh(0.5 * (Wc + Wc.mH))
    root = U * lam.clamp_min(0.0).sqrt()[None, :]                                   # W^(1/2) up to a unitary
    w = _cn((rounds, N), generator) @ root.T                                        # [rounds, N], E w w^H = W
    f, h = f.to(torch.complex128), h.to(torch.complex128)
    z_b = w @ f.conj() + math.sqrt(sigma_b2_w) * _cn((rounds,), generator)
    z_ae = w @ h.conj() + math.sqrt(sigma_e2_w) * _cn((rounds,), generator)
    if literal_uplink:
        n_hat = math.sqrt(sigma_a2_w / P_b_w) * _cn((rounds, N), generator)
        z_a = w @ f.conj() + (n_hat.conj() * w).sum(-1)
    else:
        tr = float(torch.diagonal(Wc).real.sum())
        z_a = w @ f.conj() + math.sqrt(sigma_a2_w * tr / P_b_w) * _cn((rounds,), generator)
    return {"z_a": z_a, "z_b": z_b, "z_ae": z_ae}


def conditional_mi_bits_from_samples(z_a: torch.Tensor, z_b: torch.Tensor, z_e: torch.Tensor) -> torch.Tensor:
    """Gaussian I(z_a; z_b | z_e) of (13) in bits from the sample covariance of zero-mean samples ``[rounds]``
    each (:func:`physics.gaussian.sample_mi_bits`)."""
    return sample_mi_bits(z_a, z_b, z_e)
