"""Optimisers shared by every system model: KKT water-filling and projected gradient ascent.

Both are plain batched torch (no Lightning) and know nothing about a particular paper:

* :func:`waterfill_allocation` maximises a separable sum of per-subchannel terms under a total
  budget by the KKT conditions. It handles concave terms and the sigmoidal ones of 001 (46)-(52)
  (marginal gain zero at the origin, unimodal), which plain water-filling does not.
* :func:`projected_ascent` is the per-instance ceiling every learned design is judged against:
  Adam through a differentiable projection onto the feasible set, several starting points, and the
  best feasible iterate per draw kept, so the result is never below any start.
* :func:`unrolled_ascent` is the same Adam recursion from one start with a fixed number of steps,
  written out with plain tensor operations instead of ``torch.optim``, so that it can sit inside a
  network's forward pass (a design space that refines the network's output on the true objective)
  and be traced by ``torch.fx``/``torch.export`` (no optimiser objects, no data-dependent Python
  control flow). One step is one function of the carried state, so :func:`ascent_loop_runner` can
  replace the Python loop (``models.export`` runs one traced step in ``torch.while_loop``).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator

import torch

__all__ = ["ascent_loop_runner", "projected_ascent", "unrolled_ascent", "waterfill_allocation"]

Params = dict[str, torch.Tensor]


def objective_derivatives(phi, q: torch.Tensor):
    """Elementwise d/dq and d^2/dq^2 of an elementwise function by autograd."""
    with torch.enable_grad():
        q = q.detach().requires_grad_(True)
        y = phi(q)
        (d1,) = torch.autograd.grad(y.sum(), q, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), q)
    return d1.detach(), d2.detach()


def waterfill_allocation(
    lam: torch.Tensor, phi, total: float, grid_points: int = 1025, bisection_steps: int = 60,
    newton_steps: int = 6,
) -> torch.Tensor:
    """Maximise sum_i phi(lam_i z_i) s.t. sum_i z_i = total, z >= 0, by the KKT conditions.

    lam ``[..., M]`` (descending) are the eigenvalues p_{B,i} of R_B, z_i = p_i^2 / p_{B,i}
    (001 (48a)). Stationarity: lam_i phi'(lam_i z_i) = mu on every active subchannel. phi is
    sigmoidal in q (for (46): phi'(q) = a b q (2 + c q) / ((1+aq)(1+bq)(1+cq)), zero at q = 0 and
    unimodal), so each active subchannel sits on the decreasing branch of its marginal gain and
    the multiplier mu (which may be negative) is found by bisection for each candidate active set.
    The candidates are the k strongest channels, k = 1..M, and the best is kept. For (46) this is
    exact by an exchange argument (phi is increasing in q, so a stronger eigen-channel never
    deserves less); for the Case 2 objectives (49)-(50), which need not be increasing, it is a
    restriction that tests/test_irs_physics.py checks against a brute-force simplex grid at M = 3.
    A Newton polish on the KKT system follows the bisection. Returns z ``[..., M]``.
    """
    M = lam.shape[-1]
    dtype = lam.dtype
    t = torch.linspace(0.0, 1.0, grid_points, dtype=dtype, device=lam.device)
    zg = total * t * t  # denser near 0 where the sigmoid bends
    # Grid as the leading dimension so phi's constants ([..., M]) broadcast unchanged.
    q = lam * zg.reshape(-1, *([1] * lam.ndim))  # [G, ..., M]
    d1, _ = objective_derivatives(phi, q)
    D = (lam * d1).movedim(0, -1)  # marginal gain dF_i/dz on the grid, [..., M, G]
    peak = D.argmax(-1, keepdim=True)  # [..., M, 1]
    gidx = torch.arange(grid_points, device=lam.device)
    # Decreasing branch made monotone (running minimum), and +inf before the peak.
    Ddec = torch.where(gidx >= peak, D, torch.full_like(D, float("inf")))
    Ddec = torch.cummin(Ddec, dim=-1).values
    Ddec = torch.where(gidx >= peak, Ddec, torch.full_like(D, float("inf")))
    Dpeak = D.gather(-1, peak).squeeze(-1)  # [..., M]
    negD = (-Ddec).contiguous()  # ascending: what searchsorted needs, built once

    def z_of_mu(mu: torch.Tensor) -> torch.Tensor:
        """z_i(mu) on the decreasing branch (linear interpolation of the tabulated inverse)."""
        query = (-mu)[..., None, None].expand(*Ddec.shape[:-1], 1).contiguous()
        cnt = torch.searchsorted(negD, query, right=True).squeeze(-1)  # number of grid points with D >= mu
        j = (cnt - 1).clamp(0, grid_points - 2)
        d0, d1_ = Ddec.gather(-1, j[..., None]).squeeze(-1), Ddec.gather(-1, (j + 1)[..., None]).squeeze(-1)
        # grid points are total * t^2 with t = j / (G - 1): no gather needed
        z0 = total * (j.to(dtype) / (grid_points - 1)) ** 2
        z1 = total * ((j + 1).to(dtype) / (grid_points - 1)) ** 2
        frac = torch.where(torch.isfinite(d0) & (d0 > d1_), (d0 - mu[..., None]) / (d0 - d1_),
                           torch.zeros_like(d0)).clamp(0, 1)
        z = z0 + frac * (z1 - z0)
        return torch.where(cnt >= grid_points, torch.full_like(z, total), z)

    best_val = torch.full(lam.shape[:-1], -float("inf"), dtype=dtype, device=lam.device)
    best_z = torch.zeros_like(lam)
    for k in range(1, M + 1):
        active = torch.arange(M, device=lam.device) < k
        mu_hi = torch.where(active, Dpeak, torch.full_like(Dpeak, float("inf"))).amin(-1)
        # the multiplier may be negative (e.g. Case 2 with Eve close: every extra watt helps Eve
        # more than Bob), so bracket it below by the smallest marginal gain at z = total
        d_end = torch.where(active, Ddec[..., -1], torch.full_like(Dpeak, float("inf"))).amin(-1)
        mu_lo = torch.minimum(d_end, mu_hi) - 1e-9 * (1.0 + d_end.abs())
        lo, hi = mu_lo, mu_hi
        for _ in range(bisection_steps):
            mid = 0.5 * (lo + hi)
            s = torch.where(active, z_of_mu(mid), torch.zeros_like(lam)).sum(-1)
            too_much = s > total
            lo = torch.where(too_much, mid, lo)
            hi = torch.where(too_much, hi, mid)
        mu = 0.5 * (lo + hi)
        z = torch.where(active, z_of_mu(mu), torch.zeros_like(lam))
        feasible = (z.sum(-1) - total).abs() <= 1e-3 * total
        # Newton polish of lam_i phi'(lam_i z_i) = mu, sum z_i = total on the active set.
        for _ in range(newton_steps):
            g1, g2 = objective_derivatives(phi, lam * z)
            F1, F2 = lam * g1, lam * lam * g2
            F2 = torch.where(active & (F2 < 0), F2, torch.full_like(F2, -1.0))
            inv = torch.where(active, 1.0 / F2, torch.zeros_like(F2))
            mu = (total - z.sum(-1) + (inv * F1).sum(-1)) / inv.sum(-1)
            z_new = torch.where(active, z + (mu[..., None] - F1) * inv, torch.zeros_like(z))
            ok = torch.all(torch.isfinite(z_new), -1, keepdim=True) & torch.all(z_new >= 0, -1, keepdim=True)
            z = torch.where(ok, z_new, z)
        z = torch.where(active, z.clamp_min(0.0), torch.zeros_like(z))
        z = z * (total / z.sum(-1, keepdim=True).clamp_min(1e-300))
        val = phi(lam * z).sum(-1)
        better = feasible & (val > best_val)
        best_val = torch.where(better, val, best_val)
        best_z = torch.where(better[..., None], z, best_z)
    # no feasible KKT point on the decreasing branches (not seen in practice): equal allocation
    none = ~torch.isfinite(best_val)
    return torch.where(none[..., None], torch.full_like(best_z, total / M), best_z)


def projected_ascent(
    objective: Callable[[Params], torch.Tensor],
    project: Callable[[Params], Params],
    inits: list[Params],
    steps: int = 200,
    lr: float = 0.01,
    final_lr_fraction: float = 0.01,
) -> tuple[Params, torch.Tensor]:
    """Maximise ``objective`` per draw by Adam through the projection, from several starting points.

    The loss is ``objective(project(params))``, so the gradient reaching ``params`` is the one of the
    constrained problem (for a scale-invariant normalisation it is tangent to the feasible set) and
    Adam's fixed points are constrained stationary points. Plain "Adam step, then project" is not:
    Adam rescales each coordinate, so with a gradient normal to the constraint it settles where the
    *rescaled* step is normal, e.g. at sign(c)/sqrt(d) instead of c/|c| when maximising c^T x on the
    unit sphere. After each step the parameters are replaced by their projection (which leaves the
    objective unchanged and keeps them well scaled).

    Args:
        objective: ``params -> values [...]`` (one value per draw, differentiable). ``params`` is a
            dict of tensors whose leading dimensions are ``[R, ...]``: R starting points stacked in
            front of the draws' batch shape ``[...]``.
        project: ``params -> params`` onto the feasible set, differentiable (normalisation, QR,
            softmax, ...); it must be idempotent and return new tensors.
        inits: R >= 1 starting points, each a dict with the same keys; tensors broadcast to one
            shape per key. Complex tensors are fine (Adam treats them as real pairs).
        steps: Adam steps (cosine-annealed learning rate from ``lr`` to ``lr * final_lr_fraction``).

    Returns:
        ``(best, values)``: the best feasible iterate per draw over every start and step (dict of
        ``[...]``-leading tensors, detached) and its objective ``[...]``. The starting points are
        projected first, so ``values`` is never below the objective of any projected start.
    """
    if not inits:
        raise ValueError("projected_ascent needs at least one starting point")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not (lr > 0 and torch.isfinite(torch.tensor(float(lr)))):
        raise ValueError(f"lr must be finite and > 0, got {lr!r}")
    keys = list(inits[0])
    if any(list(p) != keys for p in inits):
        raise ValueError("every starting point must have the same keys")
    with torch.inference_mode(False), torch.enable_grad():
        shapes = {k: torch.broadcast_shapes(*[p[k].shape for p in inits]) for k in keys}
        start = {k: torch.stack([p[k].detach().expand(shapes[k]) for p in inits]) for k in keys}
        with torch.no_grad():
            start = project(start)
            best_val = objective(start)
        best = {k: v.clone() for k, v in start.items()}
        params = {k: v.clone().requires_grad_(True) for k, v in start.items()}
        opt = torch.optim.Adam(list(params.values()), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(steps), 1),
                                                           eta_min=lr * final_lr_fraction)
        for _ in range(int(steps)):
            opt.zero_grad()
            (-objective(project(params)).sum()).backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                projected = project(params)
                for k in keys:
                    params[k].copy_(projected[k])
                val = objective(params)
                better = val > best_val
                best_val = torch.where(better, val, best_val)
                for k in keys:
                    mask = better.reshape(*better.shape, *([1] * (best[k].ndim - better.ndim)))
                    best[k] = torch.where(mask, params[k].detach(), best[k])
        idx = best_val.argmax(0)  # best start per draw
        out = {}
        for k in keys:
            v = best[k]
            gidx = idx.reshape(1, *idx.shape, *([1] * (v.ndim - idx.ndim - 1))).expand(1, *v.shape[1:])
            out[k] = v.gather(0, gidx)[0].detach()
        return out, best_val.gather(0, idx[None])[0].detach()


# a context variable, not a module global: a runner installed in one thread (an export) leaves others alone
_loop_runner: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("ascent_loop_runner", default=None)


@contextlib.contextmanager
def ascent_loop_runner(runner: Callable) -> Iterator[None]:
    """Run :func:`unrolled_ascent`'s steps through ``runner(step, state, context, steps) -> state`` instead of a
    Python loop while the context is open.

    ``step(*state, *context) -> state`` is one iteration on flat tuples of tensors (the carried state: step
    counter, parameters, both Adam moments, best iterate, best value; the context: the objective's
    per-draw inputs), the same function the Python loop calls ``steps`` times. ``models.export`` uses this to
    trace one step (it calls ``torch.autograd.grad``, which ``torch.export`` cannot trace) and run the traced
    graph in ``torch.while_loop``, so the exported graph does not grow with the step count.
    """
    token = _loop_runner.set(runner)
    try:
        yield
    finally:
        _loop_runner.reset(token)


def _keep_best(val: torch.Tensor, params: list[torch.Tensor], best: list[torch.Tensor],
               best_val: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Best iterate per draw so far: the current one where its value is higher (NaN never is)."""
    better = val > best_val
    masks = [better.reshape(*better.shape, *([1] * (p.ndim - better.ndim))) for p in params]
    kept = [torch.where(m, p, b) for m, p, b in zip(masks, params, best, strict=True)]
    return kept, torch.where(better, val, best_val)


def unrolled_ascent(
    objective: Callable[..., torch.Tensor],
    project: Callable[[Params], Params],
    start: Params,
    steps: int,
    lr: float,
    final_lr_fraction: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    context: dict[str, torch.Tensor] | None = None,
) -> tuple[Params, torch.Tensor]:
    """``steps`` Adam steps through ``project`` from ``start``, best projected iterate per draw kept.

    The recursion of :func:`projected_ascent` with one starting point (same loss
    ``objective(project(params))``, same cosine-annealed rate from ``lr`` to ``lr * final_lr_fraction``,
    same Adam update with bias correction, same replacement of the parameters by their projection after
    each step), written with tensor arithmetic so it can run inside ``forward`` and be traced. Gradients
    come from ``torch.autograd.grad`` on detached copies: nothing is differentiated through the steps.
    The step counter is a tensor, so one step is the same function at every iteration: a Python loop
    runs it here, and :func:`ascent_loop_runner` can hand it to ``torch.while_loop`` instead.

    Args:
        objective: ``params -> values [...]`` (one value per draw), or ``(params, context) -> values`` when
            ``context`` is given. ``params`` are real tensors (a complex design as a trailing
            real/imaginary dimension) whose leading dimensions are the draws'.
        project: ``params -> params``, differentiable and idempotent.
        start: the starting point (any values; projected first).
        steps: number of Adam steps (>= 0).
        context: tensors the objective reads besides the parameters (the draws' statistics). Pass them here
            rather than closing over them, so that a traced step takes them as inputs.

    Returns:
        ``(best, values)``: the best projected iterate per draw among the projected start and the
        ``steps`` iterates (detached), and its objective ``[...]``; never below the projected start.
    """
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not (lr > 0 and math.isfinite(float(lr))):
        raise ValueError(f"lr must be finite and > 0, got {lr!r}")
    steps = int(steps)
    keys, ctx_keys = list(start), list(context or {})
    n = len(keys)
    b1, b2 = betas
    lr_min = lr * final_lr_fraction

    def value(params: list[torch.Tensor], ctx: tuple[torch.Tensor, ...]) -> torch.Tensor:
        p = project(dict(zip(keys, params, strict=True)))
        return objective(p, dict(zip(ctx_keys, ctx, strict=True))) if context is not None else objective(p)

    def step(*flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One iteration on ``(t, params, m1, m2, best, best_val, *context)``: value and best at the current
        iterate, then one Adam step and the projection."""
        t, params, m1, m2 = flat[0], list(flat[1:1 + n]), list(flat[1 + n:1 + 2 * n]), list(flat[1 + 2 * n:1 + 3 * n])
        best, best_val, ctx = list(flat[1 + 3 * n:1 + 4 * n]), flat[1 + 4 * n], flat[2 + 4 * n:]
        with torch.enable_grad():
            leaf = [v.detach().requires_grad_(True) for v in params]
            val = value(leaf, ctx)  # the projection is idempotent: the objective of the current iterate
            grads = torch.autograd.grad(-val.sum(), leaf)
        best, best_val = _keep_best(val.detach(), params, best, best_val)
        # torch.optim.lr_scheduler.CosineAnnealingLR's closed form at step t (T_max = steps)
        rate = lr_min + (lr - lr_min) * (1 + torch.cos(math.pi * t / max(steps, 1))) / 2
        c1, c2 = 1 - torch.pow(b1, t + 1), 1 - torch.pow(b2, t + 1)
        stepped = {}
        for i, (k, g) in enumerate(zip(keys, grads, strict=True)):
            m1[i] = b1 * m1[i] + (1 - b1) * g
            m2[i] = b2 * m2[i] + (1 - b2) * g * g
            stepped[k] = params[i] - rate * (m1[i] / c1) / (torch.sqrt(m2[i] / c2) + eps)
        new = project(stepped)
        return (t + 1, *[new[k].detach() for k in keys], *[v.detach() for v in (*m1, *m2, *best)], best_val.detach())

    ctx = tuple((context or {})[k].detach() for k in ctx_keys)
    with torch.no_grad():
        projected = project({k: v.detach() for k, v in start.items()})
        params = [projected[k].detach() for k in keys]
        start_val = value(params, ctx)  # step 0 compares with this: the start is kept unless a step beats it
    t = torch.zeros((), dtype=torch.float64, device=params[0].device)
    state = (t, *params, *[torch.zeros_like(v) for v in params], *[torch.zeros_like(v) for v in params],
             *[v.clone() for v in params], start_val)  # no aliased entries: a tracer would merge them
    runner = _loop_runner.get()
    if runner is not None:
        state = tuple(runner(step, state, ctx, steps))
    else:
        for _ in range(steps):
            state = step(*state, *ctx)
    params, best, best_val = list(state[1:1 + n]), list(state[1 + 3 * n:1 + 4 * n]), state[1 + 4 * n]
    with torch.no_grad():
        best, best_val = _keep_best(value(params, ctx), params, best, best_val)
    return dict(zip(keys, best, strict=True)), best_val
