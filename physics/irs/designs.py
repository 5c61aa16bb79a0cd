"""IRS-assisted PKG (papers 000 and 001): the analytic designs (the baselines of 001 Sec. V and VII).

Water-filling with equal IRS phases (001 (P1.1) / 000 (P2) for Case 1, (P2.1)/(P2.2) for Case 2, KKT
allocation of :func:`physics.optim.waterfill_allocation`), the exact-objective water-filling in the eigenbasis of
R_B (ours), the identity precoder with equal phases (Corollaries 2-3) and the random configuration of Sec. VII.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from physics.checks import as_real
from physics.irs.rates import skr_case2
from physics.irs.stats import IRSStats
from physics.optim import waterfill_allocation
from physics.units import as_float64

__all__ = ["Design", "equal_phases", "exact_design", "identity_design", "normalise_power", "precoder_from_allocation",
           "random_design", "water_filling", "water_filling_design", "waterfill_objective_constants", "waterfill_z"]


class Design(NamedTuple):
    """A joint design: precoder ``P [..., M, M]`` complex and IRS phases ``theta [..., L]`` complex."""

    P: torch.Tensor
    theta: torch.Tensor


def equal_phases(stats: IRSStats, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """theta = 1 for every element (001 Corollary 1), ``[..., L]``."""
    return torch.ones(*stats.batch_shape, stats.L, dtype=dtype, device=stats.R_B.device)


def normalise_power(P: torch.Tensor, P_max) -> torch.Tensor:
    """Scale P so that Tr(P P^H) = P_max exactly (001 (40a), (53))."""
    P_max = as_float64(P_max).to(P.device).to(P.real.dtype)
    fro2 = (P.abs() ** 2).sum((-1, -2))
    return P * torch.sqrt(P_max / fro2)[..., None, None]


def identity_design(stats: IRSStats, P_max) -> Design:
    """P = sqrt(P_max / M) I with equal IRS phases (the Corollary 2/3 design)."""
    P_max = as_real("P_max (W)", P_max, like=stats.R_B, positive=True)
    M = stats.M
    shape = torch.broadcast_shapes(stats.batch_shape, P_max.shape)
    eye = torch.eye(M, dtype=torch.complex128, device=P_max.device).expand(*shape, M, M)
    P = eye * torch.sqrt(P_max / M).expand(shape)[..., None, None]
    return Design(P, equal_phases(stats).expand(*shape, stats.L))


def random_design(stats: IRSStats, P_max, generator: torch.Generator) -> Design:
    """Random configuration of 001 Sec. VII: i.i.d. complex Gaussian P scaled to Tr(P P^H) = P_max
    exactly, and phases uniform in [0, 2 pi). Draws from ``generator`` only."""
    P_max = as_real("P_max (W)", P_max, like=stats.R_B, positive=True)
    M, L = stats.M, stats.L
    shape = torch.broadcast_shapes(stats.batch_shape, P_max.shape)
    dev = P_max.device
    P = torch.complex(torch.randn(*shape, M, M, generator=generator, dtype=torch.float64, device=dev),
                      torch.randn(*shape, M, M, generator=generator, dtype=torch.float64, device=dev))
    phase = 2 * torch.pi * torch.rand(*shape, L, generator=generator, dtype=torch.float64, device=dev)
    return Design(normalise_power(P, P_max), torch.polar(torch.ones_like(phase), phase))


def _autograd_ready(stats: IRSStats, P_max) -> tuple[IRSStats, torch.Tensor]:
    """Copies of the inputs usable by autograd even when the caller runs under ``torch.inference_mode``
    (Lightning's validation loop): call inside ``torch.inference_mode(False)``."""
    return stats.map(lambda t: t.clone()), as_float64(P_max).clone()


def _per_channel_objective(case_objective: str, q: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-subchannel terms (nats) of 001 (46)/(48), (49)/(51), (50)/(52) in q = p_i^2.

    c: noise-normalised a = P_b u, b = P_a u, e = P_a v, and for Eve w1 = P_b P_a det,
    w2 = P_a^2 det (det = u v - x^2), all broadcast against q.
    (46): (1 + a q)(1 + b q) / (1 + (a + b) q)
    (49): (1 + b q)(1 + (a + e) q + w1 q^2) / ((1 + (a + b) q)(1 + e q))
    (50): (1 + a q)(1 + (b + e) q + w2 q^2) / ((1 + (a + b) q)(1 + e q))
    """
    # Exact objectives restricted to P^T U_B = V diag(sqrt q) (see exact_design): per eigen-channel
    # constants A = P_b u lam_i, su = u lam_i, sv = v lam_i, sd = lam_i d_i, sdet = lam_i^2 (u v - x^2).
    if case_objective in ("exact_I", "exact_R1", "exact_R2"):
        I_exact = torch.log1p(c["A"]) + torch.log1p(c["su"] * q) - torch.log1p(c["A"] + c["su"] * q)
        if case_objective == "exact_I":
            return I_exact
        if case_objective == "exact_R1":  # I(a;b) - I(a;e)
            return I_exact - torch.log1p(c["sv"] * q) + torch.log1p(c["sd"] * q)
        return I_exact - (torch.log1p(c["su"] * q) + torch.log1p(c["sv"] * q)
                          - torch.log1p((c["su"] + c["sv"]) * q + c["sdet"] * q * q))
    if case_objective not in ("I", "R1", "R2"):
        raise ValueError(f"unknown objective {case_objective!r}")
    a, b = c["a"], c["b"]
    base = -torch.log1p((a + b) * q)
    if case_objective == "I":
        return torch.log1p(a * q) + torch.log1p(b * q) + base
    e = c["e"]
    if case_objective == "R1":
        return torch.log1p(b * q) + torch.log1p((a + e) * q + c["w1"] * q * q) - torch.log1p(e * q) + base
    return torch.log1p(a * q) + torch.log1p((b + e) * q + c["w2"] * q * q) - torch.log1p(e * q) + base


def waterfill_objective_constants(stats: IRSStats, P_max) -> dict[str, torch.Tensor]:
    """Noise-normalised constants of (46)/(49)/(50) with equal IRS phases (Corollary 1)."""
    P_max = as_real("P_max (W)", P_max, like=stats.R_B, positive=True)
    var = stats.variances(stats.equal_phase_gain())
    P_a = P_max / stats.M
    c = {"a": stats.P_b * var["u"], "b": P_a * var["u"]}
    if stats.has_eve:
        c.update(e=P_a * var["v"], w1=stats.P_b * P_a * var["det"], w2=P_a * P_a * var["det"])
    return {k: v[..., None] for k, v in c.items()}  # broadcast over subchannels


def waterfill_z(stats: IRSStats, P_max, objective: str = "I") -> torch.Tensor:
    """z_i = p_i^2 / p_{B,i} maximising (48) ("I"), (51) ("R1") or (52) ("R2"); ``[..., M]``."""
    with torch.inference_mode(False):
        stats, P_max = _autograd_ready(stats, P_max)
        return _waterfill_z(stats, P_max, objective)


def _waterfill_z(stats: IRSStats, P_max, objective: str) -> torch.Tensor:
    c = waterfill_objective_constants(stats, P_max)
    lam, _ = stats.rb_eig()
    shape = torch.broadcast_shapes(lam.shape, *[v.shape for v in c.values()])
    c = {k: v.expand(shape) for k, v in c.items()}
    lam = lam.expand(shape)

    def phi(q):
        return _per_channel_objective(objective, q, c)

    return waterfill_allocation(lam, phi, float(stats.M))


def precoder_from_allocation(stats: IRSStats, z: torch.Tensor, P_max, basis: str = "eigen") -> torch.Tensor:
    """P = sqrt(P_max/M) P_e with P_e = (R_B^{-1/2} U Lambda U^H)^* (001 after (48)).

    ``basis="eigen"``: U = U_B (docs/architecture.md section 1: only then does (48a) equal
    Tr(P_e P_e^H) = M), which gives P_e = U_B diag(sqrt z) U_B^H. ``basis="identity"``: U = I as
    printed in 001; P_e is then rescaled. Either way Tr(P P^H) = P_max exactly.
    """
    lam, U = stats.rb_eig()
    P_max = as_real("P_max (W)", P_max, like=stats.R_B, positive=True)
    if basis == "eigen":
        Pe = (U * torch.sqrt(z)[..., None, :]) @ U.transpose(-1, -2)
    elif basis == "identity":
        p = torch.sqrt(lam * z)
        inv_sqrt = (U * lam.clamp_min(1e-300).rsqrt()[..., None, :]) @ U.transpose(-1, -2)
        Pe = inv_sqrt * p[..., None, :]  # R_B^{-1/2} I diag(p) I^H
    else:
        raise ValueError(f"basis must be 'eigen' (U = U_B) or 'identity' (U = I), got {basis!r}")
    return normalise_power(Pe.to(torch.complex128).conj(), P_max)


def water_filling_design(stats: IRSStats, P_max, case: int = 1, basis: str = "eigen") -> Design:
    """Water-filling baseline of 001 Sec. V with equal IRS phases (Corollary 1).

    case 1: (P1.1) / 000 (P2). case 2: solves (P2.1) and (P2.2) and keeps, per draw, the design
    with the larger exact SKR (32).
    """
    theta = equal_phases(stats)
    if case == 1:
        P = precoder_from_allocation(stats, waterfill_z(stats, P_max, "I"), P_max, basis)
        return Design(P, theta.expand(*P.shape[:-2], stats.L))
    if case == 2:
        if not stats.has_eve:
            raise ValueError("water_filling case=2 needs Eve's statistics in stats")
        P1 = precoder_from_allocation(stats, waterfill_z(stats, P_max, "R1"), P_max, basis)
        P2 = precoder_from_allocation(stats, waterfill_z(stats, P_max, "R2"), P_max, basis)
        theta = theta.expand(*P1.shape[:-2], stats.L)
        better1 = skr_case2(P1, theta, stats) >= skr_case2(P2, theta, stats)
        return Design(torch.where(better1[..., None, None], P1, P2), theta)
    raise ValueError(f"case must be 1 or 2, got {case!r}")


def water_filling(stats: IRSStats, P_max, case: int = 1, basis: str = "eigen") -> torch.Tensor:
    """The water-filling baseline precoder P ``[..., M, M]`` complex128 (001 Sec. V-A/V-B); use it
    with equal IRS phases :func:`equal_phases` (001 Corollary 1). Tr(P P^H) = P_max exactly."""
    return water_filling_design(stats, P_max, case, basis).P


def exact_design(stats: IRSStats, P_max, case: int = 1) -> Design:
    """Exact-objective water-filling in the eigenbasis of R_B (ours, not in 001), equal IRS phases.

    Restricting P^T U_B = V diag(sqrt q) (V any unitary; we take P = conj(U_B) diag(sqrt q)) makes
    T^H T = diag(q) and T diag(lambda) T^H = V diag(q lambda) V^H, so the exact I(a;b) of (38) splits
    into per-eigen-channel terms ln((1 + A_i)(1 + u lambda_i q_i) / (1 + A_i + u lambda_i q_i)),
    A_i = P_b u lambda_i, which are concave in q_i (no noise-term approximation as in (43)); Eve's
    terms split the same way. The KKT water-filling over q (sum q = P_max) then gives the optimum
    within that family; on the 001 training distribution it was never beaten by projected gradient
    ascent from other starts (tests/test_irs_physics.py), so :func:`optimum` starts from it.
    Case 2 solves R1 and R2 and keeps the design with the larger exact R_sk per draw.
    """
    with torch.inference_mode(False):
        stats, P_max = _autograd_ready(stats, P_max)
        P_max = as_real("P_max (W)", P_max, like=stats.R_B, positive=True)
        lam, U = stats.rb_eig()
        var = stats.variances(stats.equal_phase_gain())
        u = var["u"][..., None]
        c = {"A": stats.P_b[..., None] * u * lam, "su": u * lam}
        if stats.has_eve:
            v, det = var["v"][..., None], var["det"][..., None]
            d = (v + stats.P_b[..., None] * lam * det) / (1.0 + stats.P_b[..., None] * u * lam)
            c.update(sv=v * lam, sd=lam * d, sdet=lam * lam * det)
        M = stats.M
        shape = torch.broadcast_shapes(lam.shape, P_max[..., None].shape, *[t.shape for t in c.values()])
        c = {k: t.expand(shape) for k, t in c.items()}
        P_a = (P_max / M)[..., None].expand(shape)

        def design_for(objective: str) -> torch.Tensor:
            def phi(q):
                return _per_channel_objective(objective, q, c)

            z = waterfill_allocation(P_a, phi, float(M))
            q = P_a * z
            P = U.to(torch.complex128).conj() * torch.sqrt(q).to(torch.complex128)[..., None, :]
            return normalise_power(P, P_max)

        theta = equal_phases(stats)
        if case == 1:
            P = design_for("exact_I")
            return Design(P, theta.expand(*P.shape[:-2], stats.L))
        if case == 2:
            if not stats.has_eve:
                raise ValueError("exact_design case=2 needs Eve's statistics in stats")
            P1, P2 = design_for("exact_R1"), design_for("exact_R2")
            theta = theta.expand(*P1.shape[:-2], stats.L)
            better1 = skr_case2(P1, theta, stats) >= skr_case2(P2, theta, stats)
            return Design(torch.where(better1[..., None, None], P1, P2), theta)
        raise ValueError(f"case must be 1 or 2, got {case!r}")
