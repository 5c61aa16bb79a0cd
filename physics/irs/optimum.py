"""IRS-assisted PKG (papers 000 and 001): the per-instance optimum, the ceiling a learned design is judged against."""

from __future__ import annotations

from typing import NamedTuple

import torch

from physics.checks import as_real, check_choice
from physics.irs.designs import (
    Design,
    _autograd_ready,
    exact_design,
    identity_design,
    random_design,
    water_filling_design,
)
from physics.irs.rates import _skr_unchecked, skr
from physics.irs.stats import IRSStats
from physics.optim import projected_ascent

__all__ = ["OptimumResult", "optimum"]


class OptimumResult(NamedTuple):
    P: torch.Tensor
    theta: torch.Tensor
    skr_bits: torch.Tensor


def optimum(
    stats: IRSStats,
    P_max,
    case: int = 1,
    *,
    generator: torch.Generator,
    restarts: int = 4,
    steps: int = 200,
    lr: float = 0.01,
) -> OptimumResult:
    """Per-instance projected gradient ascent on the exact SKR over (P, theta), float64.

    Restarts: the exact-objective water-filling (:func:`exact_design`), water-filling,
    identity/equal-phase, and ``restarts - 3`` random designs (drawn from ``generator``). Each step
    is an Adam step on (P, theta) followed by the projection onto the feasible set
    (Tr(P P^H) = P_max, |theta_l| = 1); the best iterate per draw is kept, so the result is never
    below any starting design. Batched over draws.
    """
    if restarts < 3:
        raise ValueError(f"restarts must be >= 3 (exact, water-filling and identity starts), got {restarts}")
    with torch.inference_mode(False), torch.enable_grad():
        stats, P_max = _autograd_ready(stats, P_max)
        return _optimum(stats, P_max, case, generator, restarts, steps, lr)


def _optimum(stats, P_max, case, generator, restarts, steps, lr) -> OptimumResult:
    P_max = as_real("P_max (W)", P_max, like=stats.R_B, positive=True)
    inits = [exact_design(stats, P_max, case), water_filling_design(stats, P_max, case),
             identity_design(stats, P_max)]
    inits += [random_design(stats, P_max, generator) for _ in range(restarts - 3)]
    return _optimum_from(stats, P_max, case, inits, steps, lr)


def _optimum_from(stats: IRSStats, P_max, case: int, inits: list[Design], steps: int, lr: float) -> OptimumResult:
    """Projected gradient ascent from the given starting designs; best iterate per draw."""
    with torch.inference_mode(False), torch.enable_grad():
        stats, P_max = _autograd_ready(stats, P_max)
        return _ascend(stats, P_max, case, inits, steps, lr)


def _ascend(stats, P_max, case, inits, steps, lr) -> OptimumResult:
    """Projected gradient ascent (:func:`physics.optim.projected_ascent`) on (P / sqrt(P_max), theta):
    the unit-Frobenius-norm precoder and the unit-modulus phases are projected after every step, so the steps
    evaluate the SKR without the unit-modulus check (the result is checked once at the end)."""
    check_choice("case", case, (1, 2))
    shape = torch.broadcast_shapes(*[d.P.shape[:-2] for d in inits])
    scale = torch.sqrt(P_max).expand(shape)[..., None, None]
    starts = [{"P": d.P.expand(*shape, stats.M, stats.M) / scale, "theta": d.theta.expand(*shape, stats.L)}
              for d in inits]

    def project(p):
        return {"P": p["P"] / torch.sqrt((p["P"].abs() ** 2).sum((-1, -2)))[..., None, None],
                "theta": p["theta"] / p["theta"].abs()}

    def objective(p):
        return _skr_unchecked(p["P"] * scale, p["theta"], stats, case)

    best, _ = projected_ascent(objective, project, starts, steps=steps, lr=lr)
    P_best, theta_best = best["P"] * scale, best["theta"]
    return OptimumResult(P_best, theta_best, skr(P_best, theta_best, stats, case).detach())
