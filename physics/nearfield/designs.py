"""Near-field XL-MIMO key generation (paper 004): the designs of the pilot covariance W.

The baselines of 004 Sec. IV-V (MRC with a random scalar pilot, SVD with equal power or with the Dinkelbach power
split of Alg. 1), the closed-form optimum of (23) (docs/architecture.md section 1: (P1) is concave and its
optimum is a single random beam) and the compact design format W = F F^H (+ white power orthogonal to a beam)
with its 2x2 Gram matrix G = [f h]^H W [f h].
"""

from __future__ import annotations

import math

import torch

from physics.checks import as_real, check_broadcast, check_finite, check_int, is_real_scalar, short
from physics.nearfield.channel import _channel_pair, _check_channel
from physics.nearfield.rates import _noises

__all__ = ["design_gram", "design_matrix", "dinkelbach_power_split", "mrc_design", "optimal_alpha", "optimal_beam",
           "optimal_design", "svd_design"]


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-300)


def mrc_design(f: torch.Tensor, P_a) -> dict[str, torch.Tensor]:
    """MRC with a random scalar pilot on Bob's beam (docs/architecture.md section 1: 004's deterministic w
    gives no key): W = P_a f f^H / |f|^2, i.e. SVD with P_S = P_a. Returns the factor form
    ``{"F": [..., N, 1]}``, W = F F^H."""
    f = _check_channel("f", f)
    P = as_real("P_a", P_a, like=f.real, positive=True)
    check_broadcast(f=("[..., N]", f.shape[:-1]), P_a=("", P.shape))
    return {"F": (torch.sqrt(P)[..., None] * _unit(f))[..., None]}


def svd_design(f: torch.Tensor, P_a, P_S) -> dict[str, torch.Tensor]:
    """004 Sec. IV: W = P_S u_s u_s^H + P_N/(N-1) U_n U_n^H, u_s = f/|f|, P_N = P_a - P_S.

    Returns ``{"F": [..., N, 1] = sqrt(P_S) u_s, "ortho_w": P_N [...], "ortho_to": u_s [..., N]}``: the
    compact form W = F F^H + ortho_w/(N-1) (I - u u^H) understood by :func:`design_gram`. SVD w/o PA
    is P_S = P_a/2 (Sec. V-B 2)), SVD w/ PA takes P_S from :func:`dinkelbach_power_split`.
    """
    f = _check_channel("f", f)
    P = as_real("P_a", P_a, like=f.real, positive=True)
    P_S = as_real("P_S", P_S, like=f.real)
    check_broadcast(f=("[..., N]", f.shape[:-1]), P_a=("", P.shape), P_S=("", P_S.shape))
    check_finite("P_S", P_S, nonneg=True)
    if torch.any(P_S > P * (1 + 1e-12)):
        raise ValueError(f"P_S must lie in [0, P_a], got P_S/P_a up to {(P_S / P).max().item():.6g}")
    u = _unit(f)
    P_S, P = torch.broadcast_tensors(P_S, P)
    return {"F": (torch.sqrt(P_S)[..., None] * u)[..., None], "ortho_w": (P - P_S).clamp_min(0.0), "ortho_to": u}


def _beam_inputs(f, h, P_a, noise_e) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked (f, h, P_a, noise_e) of :func:`optimal_alpha`, :func:`optimal_beam`, :func:`optimal_design`."""
    f, h = _channel_pair(f, h)
    P = as_real("P_a", P_a, like=f.real, positive=True)
    ne = as_real("noise_e", noise_e, like=f.real, positive=True)
    check_broadcast(f=("[..., N]", f.shape[:-1]), h=("[..., N]", h.shape[:-1]), P_a=("", P.shape),
                    noise_e=("", ne.shape))
    return f, h, P, ne


def optimal_alpha(f: torch.Tensor, h: torch.Tensor, P_a, noise_e) -> torch.Tensor:
    """alpha* = P_a |f|^2 - P_a^2 |h^H f|^2 / (P_a |h|^2 + noise_e), the maximum of (26) (see optimal_design)."""
    f, h, P, ne = _beam_inputs(f, h, P_a, noise_e)
    f2, h2 = (f.abs() ** 2).sum(-1), (h.abs() ** 2).sum(-1)
    hf2 = (h.conj() * f).sum(-1).abs() ** 2
    return P * f2 - P * P * hf2 / (P * h2 + ne)


def optimal_beam(f: torch.Tensor, h: torch.Tensor, P_a, noise_e) -> torch.Tensor:
    """The unit beam v/|v| of :func:`optimal_design`, v = f - t* h, t* = P_a h^H f/(P_a |h|^2 + noise_e).
    ``[..., N]`` complex128."""
    f, h, P, ne = _beam_inputs(f, h, P_a, noise_e)
    h2 = (h.abs() ** 2).sum(-1)
    t = P * (h.conj() * f).sum(-1) / (P * h2 + ne)
    return _unit(f - t[..., None] * h)


def optimal_design(f: torch.Tensor, h: torch.Tensor, P_a, noise_e) -> torch.Tensor:
    """The optimum of (23) over PSD W with Tr W <= P_a: W* = P_a v v^H / |v|^2, ``[..., N, N]`` complex128.

    v = f - t* h,  t* = P_a h^H f / (P_a |h|^2 + noise_e),
    alpha(W*) = alpha* = P_a |f|^2 - P_a^2 |h^H f|^2 / (P_a |h|^2 + noise_e).

    Derivation. (23) is increasing in alpha >= 0 ((25): df/dalpha > 0), so maximise alpha of (24)/(26).
    1. alpha is concave in W (004 calls (P1) non-concave; docs/architecture.md section 1). For any complex t,
       g(W, t) = (f - t h)^H W (f - t h) + |t|^2 noise_e
               = f^H W f - 2 Re(t f^H W h) + |t|^2 (h^H W h + noise_e),
       a convex quadratic in t minimised at t(W) = h^H W f / (h^H W h + noise_e) with minimum
       f^H W f - |f^H W h|^2 / (h^H W h + noise_e) = alpha(W). So alpha(W) = min_t g(W, t) is a pointwise
       minimum of functions affine in W: concave.
    2. Saddle point. g is affine in W on the compact convex set {W >= 0, Tr W <= P_a} and convex in t,
       so max_W min_t g = min_t max_W g (Sion). For fixed t, max_W g = P_a |f - t h|^2 + |t|^2 noise_e
       (all power on the top eigenvector of (f - t h)(f - t h)^H, which is the vector itself). This is a
       strictly convex quadratic in t (noise_e > 0) minimised at t* = P_a h^H f / (P_a |h|^2 + noise_e),
       with value alpha* = P_a |f|^2 - P_a^2 |h^H f|^2 / (P_a |h|^2 + noise_e) (substitute t*).
    3. The maximiser. A saddle point (W°, t*) exists (the t-problem is coercive, t* is its unique
       minimiser), and W° maximises g(., t*), whose unique maximiser over the set is P_a v v^H/|v|^2 with
       v = f - t* h (v != 0 unless f = 0: f = t* h would need t* = c for f = c h, but
       t* = c P_a |h|^2/(P_a |h|^2 + noise_e) != c). Hence W* = P_a v v^H/|v|^2 and alpha(W*) = alpha*.
    Remarks. v = (1 - kappa) f + kappa p with p = f - (h^H f/|h|^2) h (Bob's channel with Eve's direction
    projected out: the beam Eve cannot hear) and kappa = g_e/(1 + g_e), g_e = P_a |h|^2/noise_e Eve's
    array SNR: the optimum blends MRC and zero-forcing on Eve by Eve's SNR alone. alpha* grows with P_a,
    so the whole budget is used. With Eve on Bob (h = f) v is along f and every design in this module
    gives alpha = s noise_e/(s + noise_e), s = P |f|^2, i.e. log2(4/3) bits at equal noises and high SNR.
    Tests check the optimum against projected gradient ascent and random feasible W (independent).
    """
    v = optimal_beam(f, h, P_a, noise_e)
    P = as_real("P_a", P_a, like=v.real, positive=True)
    return P[..., None, None] * (v[..., :, None] * v[..., None, :].conj())


def dinkelbach_power_split(f: torch.Tensor, h: torch.Tensor, P_a, noise_a, noise_b, noise_e, *,
                           tol: float = 1e-12, max_iter: int = 20, unchecked_line4: bool = False,
                           return_iterations: bool = False):
    """004 Alg. 1: the power P_S in [0, P_a] on Bob's beam for the SVD design (P_N = P_a - P_S), by Dinkelbach.

    With u_s = f/|f|, a = |u_s^H h|^2, c = (|h|^2 - a)/(N - 1) (Eve's gain on the white noise of
    C = U_n U_n^H/(N-1)), (P2) on W = P_S B_bar + (P_a - P_S) C is min -alpha = (m1 P_S^2 + m2 P_S)/(m3 P_S + m4),
    (28)-(29) with the corrected numerator Tr(B_bar A B) (docs/architecture.md section 1), i.e.
        m1 = c |f|^2,  m2 = -(P_a c + noise_e) |f|^2,  m3 = a - c,  m4 = P_a c + noise_e
    (Tr(B_bar A B) = |f|^2 a and Tr(C A B) = 0). Solved in x = P_S/P_a, divided by noise_e, so the
    denominator is >= 1 on [0, 1] and the iteration is well posed.

    Alg. 1 with fixes: P_{S,0} = P_a (line 1); beta_t = N(P_{S,t-1})/D(P_{S,t-1}) (line 3); line 4 takes the
    best of y(0), y(P_a) and the stationary point of the quadratic y *only if it lies inside [0, P_a]* (as
    printed, line 4 can leave the budget; ``unchecked_line4=True`` reproduces that, for tests only); a
    vanishing m1 (Eve without gain off Bob's beam, or h = 0) drops the stationary point; stop when
    |N(x_t) - beta_t D(x_t)| <= tol (|N(x_t)| + tiny) (line 2, made relative) or after ``max_iter``
    iterations. f = 0 (no key possible) returns P_a. noise_a and noise_b do not move the maximiser
    ((23) is increasing in alpha) but are validated for a uniform signature.

    f and h must have the same length N >= 2 (004's array; with N = 1 the null space U_n does not exist).
    Returns P_S ``[...]`` float64 (and the iterations used per draw if ``return_iterations``).
    """
    f, h = _channel_pair(f, h)
    check_int("max_iter", max_iter)
    if not (is_real_scalar(tol) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite real number > 0, got {short(tol)}")
    tol = float(tol)                                                             # numpy scalars: plain float
    P = as_real("P_a", P_a, like=f.real, positive=True)
    na, nb, ne = _noises(noise_a, noise_b, noise_e, f.real)
    check_broadcast(f=("[..., N]", f.shape[:-1]), h=("[..., N]", h.shape[:-1]), P_a=("", P.shape),
                    noise_a=("", na.shape), noise_b=("", nb.shape), noise_e=("", ne.shape))
    N = f.shape[-1]
    f2 = (f.abs() ** 2).sum(-1)
    h2 = (h.abs() ** 2).sum(-1)
    a = (h.conj() * f).sum(-1).abs() ** 2 / f2.clamp_min(1e-300)
    c = (h2 - a).clamp_min(0.0) / (N - 1)
    Fs, A, C = P * f2 / ne, P * a / ne, P * c / ne                              # noise_e-normalised, x = P_S/P_a
    Fs, A, C = torch.broadcast_tensors(Fs, A, C)
    m1, m2, m3, m4 = C * Fs, -(C + 1.0) * Fs, A - C, C + 1.0                   # (29) in x, / noise_e

    def num(x):
        return m1 * x * x + m2 * x

    def den(x):
        return m3 * x + m4

    x = torch.ones_like(Fs)                                                      # line 1
    iters = torch.zeros(Fs.shape, dtype=torch.int64, device=Fs.device)
    done = Fs <= 0                                                               # f = 0: nothing to optimise
    has_stat = m1 > 1e-300 * (m2.abs() + 1.0)
    for _ in range(int(max_iter)):
        beta = num(x) / den(x)                                                   # line 3
        lin = m2 - beta * m3
        x_stat = torch.where(has_stat, -lin / (2.0 * torch.where(has_stat, m1, torch.ones_like(m1))),
                             torch.zeros_like(m1))
        if not unchecked_line4:
            x_stat = x_stat.clamp(0.0, 1.0)                                      # stationary point only inside [0, 1]

        def y(z, beta=beta, lin=lin):
            return m1 * z * z + lin * z - beta * m4

        cands = torch.stack([torch.zeros_like(x), torch.ones_like(x), x_stat], -1)   # line 4
        vals = torch.stack([y(cands[..., 0]), y(cands[..., 1]),
                            torch.where(has_stat, y(x_stat), torch.full_like(x, float("inf")))], -1)
        x_new = cands.gather(-1, vals.argmin(-1, keepdim=True)).squeeze(-1)
        x = torch.where(done, x, x_new)
        iters = iters + (~done).to(torch.int64)
        gap = (num(x) - beta * den(x)).abs()                                     # line 2
        done = done | (gap <= tol * (num(x).abs() + 1e-300))
        if bool(done.all()):
            break
    P_S = x * P
    return (P_S, iters) if return_iterations else P_S


# --------------------------------------------------------------------------------------------
# compact design format: W = F F^H (+ white power orthogonal to a beam)
# --------------------------------------------------------------------------------------------


def _as_complex(t: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` real (real, imag last) -> complex128; complex input passes through."""
    if t.is_complex():
        return t.to(torch.complex128)
    return torch.view_as_complex(t.to(torch.float64).contiguous())


def design_gram(design: dict[str, torch.Tensor], f: torch.Tensor, h: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G = [f h]^H W [f h] ``[..., 2, 2]``, det G ``[...]`` (cancellation-free) and Tr W ``[...]`` of a design.

    ``design``: ``F [..., N, r]`` complex or ``[..., N, r, 2]`` real (W = F F^H); optionally
    ``ortho_w [...]`` and ``ortho_to [..., N]`` (complex or ``[..., N, 2]``, unit norm): white power
    ortho_w spread evenly over the N - 1 dimensions orthogonal to ``ortho_to`` (004's C of Sec. IV).
    det G of F F^H is the Lagrange sum of squared 2x2 minors of X = F^H [f h] (>= 0, exactly 0 for r = 1).
    """
    F = _as_complex(design["F"])
    Y = torch.stack(torch.broadcast_tensors(f, h), -1).to(torch.complex128)  # [..., N, 2]
    X = F.mH @ Y                                                                   # [..., r, 2]
    G = X.mH @ X
    minors = X[..., :, None, 0] * X[..., None, :, 1] - X[..., None, :, 0] * X[..., :, None, 1]
    det = (minors.abs() ** 2).sum((-1, -2)) / 2.0                                 # sum over i < j
    tr = (F.abs() ** 2).sum((-1, -2))
    if "ortho_w" in design:
        w = design["ortho_w"].to(torch.float64)
        u = _as_complex(design["ortho_to"])
        N = F.shape[-2]
        Z = Y - u[..., :, None] * (u.conj()[..., :, None] * Y).sum(-2, keepdim=True)   # (I - u u^H) Y
        Gw = (w / (N - 1))[..., None, None] * (Z.mH @ Z)
        det = det + G[..., 0, 0].real * Gw[..., 1, 1].real + Gw[..., 0, 0].real * G[..., 1, 1].real \
            - 2.0 * (G[..., 0, 1] * Gw[..., 0, 1].conj()).real + (Gw[..., 0, 0].real * Gw[..., 1, 1].real
                                                                    - Gw[..., 0, 1].abs() ** 2)
        G = G + Gw
        tr = tr + w
    return G, det, tr


def design_matrix(design: dict[str, torch.Tensor]) -> torch.Tensor:
    """The full W ``[..., N, N]`` complex128 of a compact design (tests and small N only)."""
    F = _as_complex(design["F"])
    W = F @ F.mH
    if "ortho_w" in design:
        u = _as_complex(design["ortho_to"])
        N = F.shape[-2]
        eye = torch.eye(N, dtype=W.dtype, device=W.device)
        P_perp = eye - u[..., :, None] * u.conj()[..., None, :]
        W = W + (design["ortho_w"].to(torch.float64) / (N - 1))[..., None, None] * P_perp
    return W
