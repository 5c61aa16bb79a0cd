"""LDPC degree distributions near capacity: published tables, EXIT-chart design for slice channels.

* :class:`DegreeDistribution` -- edge-perspective variable/check degree distributions
  ``lambda(x) = sum lambda_d x^(d-1)``, ``rho(x) = sum rho_d x^(d-1)``, their design rate
  ``1 - int rho / int lambda`` and the node degree sequence for a frame of ``n`` bits.
* :data:`RSU_RATE_HALF` -- published density-evolution-optimised distributions of rate 1/2 for the
  binary-input AWGN channel, from Richardson, Shokrollahi, Urbanke, "Design of capacity-approaching
  irregular low-density parity-check codes", IEEE Trans. IT 47(2), 619-637, 2001 (Table I for
  maximum variable degree 4, 5, 8; Table II for 20), with their published thresholds ``sigma*``.
* :func:`design_distribution` -- a variable-degree distribution for *any* rate and *any* binary-input
  symmetric channel given as a mixture of BSCs (the exact slice channels of :mod:`keygen.slicing`),
  by the EXIT-chart linear program of ten Brink, Kramer, Ashikhmin ("Design of low-density
  parity-check codes for modulation and detection", IEEE Trans. Commun. 52(4), 2004): with a
  concentrated check distribution (Chung, Forney, Richardson, Urbanke, IEEE Commun. Lett. 5(2), 2001)
  it maximises the smallest opening of the decoding tunnel at the exact rate, under the stability
  condition ``lambda_2 rho'(1) < 1/B`` (B the channel's Bhattacharyya parameter; Richardson,
  Shokrollahi, Urbanke 2001). The variable-node curve is computed exactly for the mixture channel
  (Gauss-Hermite quadrature over Gaussian a-priori messages); the check-node curve uses the duality
  approximation ``I_E,C = 1 - J(sqrt(d_c - 1) J^-1(1 - I_A))``. :func:`exit_threshold_biawgn`
  checks the machinery: it reproduces the published thresholds of :data:`RSU_RATE_HALF` to within
  about 1 % in ``sigma`` (tests).

numpy/scipy only (``scipy.optimize.linprog`` for the design); the codes themselves are built by
:mod:`keygen.ldpc_codes`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.optimize import linprog

__all__ = [
    "RSU_RATE_HALF",
    "BSCMixture",
    "DegreeDistribution",
    "biawgn_mixture",
    "concentrated_check",
    "design_distribution",
    "exit_converges",
    "exit_threshold_biawgn",
]

_LN2 = math.log(2.0)


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low or (
            high is not None and value > high):
        rng = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{name} = {value!r} is not allowed; it must be {rng}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# degree distributions
# ---------------------------------------------------------------------------------------------


def concentrated_check(avg_degree: float) -> dict[int, float]:
    """Edge-perspective check distribution on ``floor(a)``, ``floor(a)+1`` with node-average degree ``a``."""
    a = float(avg_degree)
    d = int(math.floor(a))
    if d < 2:
        raise ValueError(f"average check degree = {a} is not allowed; it must be >= 2")
    r = d * (d + 1 - a) / a  # edge fraction on degree d (Chung et al. 2001)
    out = {d: r, d + 1: 1.0 - r}
    return {k: v for k, v in out.items() if v > 1e-12}


@dataclass(frozen=True)
class DegreeDistribution:
    """Edge-perspective degree distributions of an LDPC ensemble.

    Attributes:
        variable: ``{degree: lambda_d}`` (fraction of edges attached to variable nodes of that degree).
        check: ``{degree: rho_d}``.
        source: where the table comes from (publication, or the design method and its inputs).
        threshold_sigma: published BIAWGN threshold (noise standard deviation), where known.
        margin: for designed distributions, the smallest relative opening of the EXIT tunnel on the
            design channel (``> 0``: decoding converges asymptotically).
    """

    variable: dict[int, float]
    check: dict[int, float]
    source: str = ""
    threshold_sigma: float | None = None
    margin: float | None = None

    def __post_init__(self):
        for name, dist in (("variable", self.variable), ("check", self.check)):
            if not dist or any((not isinstance(d, numbers.Integral)) or d < 1 or w < 0 for d, w in dist.items()):
                raise ValueError(f"{name} distribution {dist!r} is not allowed; it needs degrees >= 1 and "
                                 "non-negative fractions")
            if abs(sum(dist.values()) - 1.0) > 1e-3:
                raise ValueError(f"{name} distribution sums to {sum(dist.values())}; it must sum to 1")

    @property
    def design_rate(self) -> float:
        """``1 - (sum rho_d / d) / (sum lambda_d / d)``."""
        return 1.0 - sum(w / d for d, w in self.check.items()) / sum(w / d for d, w in self.variable.items())

    def variable_node_fractions(self) -> dict[int, float]:
        """Node perspective: fraction of variable nodes of each degree, ``(lambda_d/d) / sum(lambda_j/j)``."""
        tot = sum(w / d for d, w in self.variable.items())
        return {d: (w / d) / tot for d, w in sorted(self.variable.items())}

    def variable_degrees(self, n: int) -> np.ndarray:
        """Degree of each of ``n`` variable nodes (largest-remainder rounding of the node fractions), sorted."""
        n = _check_int(n, "n", 1)
        fr = self.variable_node_fractions()
        degs = np.array(list(fr), dtype=np.int64)
        exact = np.array([fr[d] for d in degs]) * n
        cnt = np.floor(exact).astype(np.int64)
        short = n - int(cnt.sum())
        if short > 0:
            cnt[np.argsort(-(exact - cnt), kind="stable")[:short]] += 1
        return np.repeat(degs, cnt)


def _rsu(variable, check, sigma, table) -> DegreeDistribution:
    return DegreeDistribution(variable, check, source=f"Richardson, Shokrollahi, Urbanke, IEEE Trans. IT 47(2), "
                              f"2001, {table}: rate 1/2, BIAWGN, max variable degree {max(variable)}",
                              threshold_sigma=sigma)


RSU_RATE_HALF: dict[int, DegreeDistribution] = {
    4: _rsu({2: 0.38354, 3: 0.04237, 4: 0.57409}, {5: 0.24123, 6: 0.75877}, 0.9114, "Table I"),
    5: _rsu({2: 0.32660, 3: 0.11960, 4: 0.18393, 5: 0.36988}, {6: 0.78555, 7: 0.21445}, 0.9194, "Table I"),
    8: _rsu({2: 0.30013, 3: 0.28395, 8: 0.41592}, {6: 0.22919, 7: 0.77081}, 0.9497, "Table I"),
    20: _rsu({2: 0.21991, 3: 0.23328, 4: 0.02058, 6: 0.08543, 7: 0.06540, 8: 0.04767, 9: 0.01912,
              19: 0.08064, 20: 0.22798}, {8: 0.64854, 9: 0.34747, 10: 0.00399}, 0.9669, "Table II"),
}


# ---------------------------------------------------------------------------------------------
# EXIT machinery for mixtures of BSCs
# ---------------------------------------------------------------------------------------------

_GH_X, _GH_W = np.polynomial.hermite.hermgauss(64)
_GH_W = _GH_W / math.sqrt(math.pi)
_MU_GRID = np.concatenate([[0.0], np.logspace(-4, 3.3, 200)])
_BINS = 160  # BSC-mixture points kept for EXIT computations (merged at equal h(p), entropy preserved)


def _softplus2(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z) / _LN2


def _f_of_mu(a: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``F(mu) = I(S; L_ch + G)``, ``G ~ N(mu, 2 mu)``, for the BSC mixture ``(|LLR| a, p, weight w)``,
    on ``_MU_GRID``."""
    g = _MU_GRID[:, None] + 2.0 * np.sqrt(_MU_GRID)[:, None] * _GH_X[None, :]  # nodes of N(mu, 2 mu), [M, G]
    out = np.empty(_MU_GRID.size)
    step = max(1, 200_000 // max(1, a.size * _GH_X.size))
    for i in range(0, _MU_GRID.size, step):
        gg = g[i:i + step, None, :]
        plus = _softplus2(-(a[None, :, None] + gg)) @ _GH_W  # [chunk, N]
        minus = _softplus2(-(-a[None, :, None] + gg)) @ _GH_W
        out[i:i + step] = 1.0 - ((1.0 - p) * plus + p * minus) @ w
    return np.maximum.accumulate(np.clip(out, 0.0, 1.0))


_J_TABLE = _f_of_mu(np.zeros(1), np.full(1, 0.5), np.ones(1))  # J as a function of mu = sigma^2/2


def _J_of_mu(mu: np.ndarray) -> np.ndarray:
    return np.interp(np.log1p(mu), np.log1p(_MU_GRID), _J_TABLE)


def _Jinv_mu(i: np.ndarray) -> np.ndarray:
    """Inverse of ``J`` in terms of ``mu`` (``J(mu)`` strictly increasing on the grid)."""
    jt, idx = np.unique(_J_TABLE, return_index=True)
    return np.expm1(np.interp(np.clip(i, 0.0, jt[-1]), jt, np.log1p(_MU_GRID[idx])))


def _h2(p: np.ndarray) -> np.ndarray:
    pc = np.clip(p, 1e-300, 0.5)
    return np.where(p > 0, -(pc * np.log2(pc) + (1 - pc) * np.log1p(-pc) / _LN2), 0.0)


def _merge_bins(p: np.ndarray, w: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge BSC-mixture points into ``bins`` bins of equal width in ``|LLR|`` over ``[0, 40]`` (the last
    bin open); each bin's crossover is the one whose entropy is the bin's weighted mean, so the
    mixture's entropy is kept exactly."""
    h = _h2(p)
    a = np.log1p(-np.clip(p, 1e-300, 0.5)) - np.log(np.clip(p, 1e-300, 0.5))
    idx = np.minimum((a * (bins - 1) / 40.0).astype(np.int64), bins - 1)
    wb = np.bincount(idx, weights=w, minlength=bins)
    hb = np.bincount(idx, weights=w * h, minlength=bins)
    nz = wb > 0
    target = np.clip(hb[nz] / wb[nz], 0.0, 1.0)
    lo, hi = np.zeros_like(target), np.full_like(target, 0.5)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = _h2(mid) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi), wb[nz]


class _Channel:
    """A BSC mixture prepared for EXIT computations."""

    def __init__(self, p, weight):
        p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 0.5)
        w = np.asarray(weight, dtype=np.float64)
        w = w / w.sum()
        if p.size > _BINS:
            p, w = _merge_bins(p, w, _BINS)
        p = np.clip(p, 1e-300, 0.5)
        self.p, self.w = p, w
        self.a = np.log1p(-p) - np.log(p)
        self.F = _f_of_mu(self.a, p, w)
        self.bhattacharyya = float(w @ (2.0 * np.sqrt(p * (1.0 - p))))
        self.capacity = float(self.F[0])

    def vnd(self, deg: np.ndarray, i_a: np.ndarray) -> np.ndarray:
        """``I_E,V`` for variable degree(s) ``deg`` (broadcast) at a-priori information ``i_a``."""
        mu = (np.asarray(deg) - 1) * _Jinv_mu(np.asarray(i_a))
        return np.interp(np.log1p(mu), np.log1p(_MU_GRID), self.F)


def _cnd(i_a: np.ndarray, check: dict[int, float]) -> np.ndarray:
    """Check-node EXIT curve (duality approximation), edge-averaged over the check distribution."""
    mu_in = _Jinv_mu(1.0 - np.asarray(i_a))
    return sum(r * (1.0 - _J_of_mu((d - 1) * mu_in)) for d, r in check.items())


@lru_cache(maxsize=64)
def _channel_cached(key: bytes, pbytes: bytes, wbytes: bytes) -> _Channel:
    return _Channel(np.frombuffer(pbytes), np.frombuffer(wbytes))


def _as_channel(channel) -> _Channel:
    if isinstance(channel, _Channel):
        return channel
    try:
        p, w = np.ascontiguousarray(channel.p, dtype=np.float64), np.ascontiguousarray(channel.weight, dtype=np.float64)
    except AttributeError as exc:
        raise ValueError(f"channel = {channel!r} is not allowed; it must have arrays .p (crossover "
                         "probabilities in [0, 1/2]) and .weight (keygen.slicing.SliceChannel)") from exc
    if p.ndim != 1 or p.shape != w.shape or p.size == 0 or np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(
            p > 0.5) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("channel must have equal-length 1-D arrays p in [0, 1/2] and weight >= 0 (not all zero)")
    return _channel_cached(b"", p.tobytes(), w.tobytes())


@dataclass(frozen=True)
class BSCMixture:
    """A binary-input symmetric channel as a mixture of BSCs (same fields as ``keygen.slicing.SliceChannel``)."""

    p: np.ndarray
    weight: np.ndarray = field(repr=False)


def biawgn_mixture(sigma: float, points: int = 601) -> BSCMixture:
    """The BPSK/AWGN channel with noise standard deviation ``sigma`` as a mixture of BSCs (``|LLR| = 2|y|/sigma^2``)."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < 100:
        raise ValueError(f"sigma = {sigma!r} is not allowed; it must be a number in (0, 100)")
    y = np.linspace(1 - 12 * sigma, 1 + 12 * sigma, points)
    w = np.exp(-0.5 * ((y - 1) / sigma) ** 2)
    llr = 2.0 * np.abs(y) / sigma**2
    return BSCMixture(1.0 / (1.0 + np.exp(llr)), w / w.sum())


def exit_converges(dist: DegreeDistribution, channel, *, points: int = 4000) -> bool:
    """Whether the EXIT tunnel is open: ``I_E,V(I_E,C(x)) > x`` for every ``x`` in ``[0, 1 - 1e-6]``
    (so the recursion ``x <- I_E,V(I_E,C(x))`` from 0 converges to 1), checked on ``points`` values."""
    ch = _as_channel(channel)
    degs = np.array(list(dist.variable))
    lam = np.array([dist.variable[d] for d in degs])
    xs = np.concatenate([np.linspace(0.0, 0.99, points // 2, endpoint=False), 1.0 - np.logspace(-2, -6, points // 2)])
    out = ch.vnd(degs[None, :], _cnd(xs, dist.check)[:, None]) @ lam
    return bool(np.all(out > xs))


def exit_threshold_biawgn(dist: DegreeDistribution, *, tol: float = 1e-3) -> float:
    """EXIT-chart threshold ``sigma*`` of an ensemble on the BIAWGN channel (bisection)."""
    lo, hi = 0.3, 2.5
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if exit_converges(dist, biawgn_mixture(mid)):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def design_distribution(channel, rate: float, *, max_degree: int = 20, check_degrees: int = 48,
                        grid: int = 160, degree2_forest: bool | None = None,
                        forest_tolerance: float = 0.01, checks: int | None = None) -> DegreeDistribution:
    """Variable-degree distribution (degrees ``2..max_degree``) and concentrated check distribution of the
    given ``rate`` that open the EXIT tunnel widest on ``channel`` (a BSC mixture, e.g.
    :func:`keygen.slicing.slice_channel`).

    For each average check degree ``a`` on a grid (``check_degrees`` values between the smallest and
    largest that the rate allows), a linear program in ``(lambda_2..lambda_dmax, t)`` maximises ``t``
    subject to ``sum lambda_d I_E,V(d; I_E,C(x)) >= x + t (1 - x)`` on ``grid`` points ``x`` in
    ``[0, 0.999]``, ``sum lambda_d = 1``, ``sum lambda_d / d = 1 / (a (1 - rate))`` (the rate) and
    ``lambda_2 rho'(1) <= 0.95 / B`` (stability). The best ``a`` wins; ``margin = t`` (negative: the rate
    is above what this degree range reaches on the channel).

    ``degree2_forest``: ``True`` adds ``lambda_2 <= 1.96 / a`` (fewer degree-2 nodes than checks, so that
    :func:`peg_parity_check_matrix` can keep them cycle-free); ``False`` leaves it out; ``None`` (default)
    solves both and keeps the bound unless it narrows the tunnel by more than ``forest_tolerance``
    (it binds at high rates, where few checks can host few degree-2 nodes).

    ``checks``: the number of rows ``m`` the code will have. When given, the pairs of rows that share
    a column, ``sum_v C(d_v, 2) = m a sum lambda_d (d - 1) / 2``, are kept below half of the
    ``C(m, 2)`` pairs (``sum lambda_d (d - 1) <= m / (2 a)``): without 4-cycles no two rows share two
    columns, so a code with fewer row pairs than that cannot be free of them (at rate 0.95 and
    ``n = 2 10^4`` the unconstrained design put a fifth of its edges on degree-20 columns and PEG
    had to close 4-cycles on 24 000 edges). Where even degree 2 everywhere cannot meet the bound
    (a few rows for a whole frame) it is left out.
    """
    ch = _as_channel(channel)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 < rate < 1.0:
        raise ValueError(f"rate = {rate!r} is not allowed; it must be a number in (0, 1)")
    dmax = _check_int(max_degree, "max_degree", 3, 200)
    if checks is not None:
        checks = _check_int(checks, "checks", 1)
    if degree2_forest not in (None, True, False):
        raise ValueError(f"degree2_forest = {degree2_forest!r} is not allowed; it must be True, False or None")
    R = float(rate)
    degs = np.arange(2, dmax + 1)
    D = degs.size
    xs = np.concatenate([np.linspace(0.0, 0.9, grid // 2, endpoint=False), 1.0 - np.logspace(-1, -3, grid - grid // 2)])
    lo_a = 2.0 / (1.0 - R) * 1.0001
    hi_a = dmax / (1.0 - R) * 0.9999
    variants = (True, False) if degree2_forest is None else (degree2_forest,)
    best: dict[bool, tuple] = {}
    obj = np.zeros(D + 1)
    obj[-1] = -1.0  # variables lambda_2..lambda_dmax, t: maximise t
    bounds = [(0.0, 1.0)] * D + [(-1.0, 1.0)]
    for a in np.geomspace(lo_a, hi_a, check_degrees):
        if a < 2.0:
            continue
        chk = concentrated_check(a)
        V = ch.vnd(degs[None, :], _cnd(xs, chk)[:, None])  # [grid, D]
        rho_prime = sum(r * (d - 1) for d, r in chk.items())
        A_ub = np.vstack([np.hstack([-V, (1.0 - xs)[:, None]]), np.eye(1, D + 1)])  # -(V lam) + t (1-x) <= -x
        extra_b = []
        if checks is not None and checks >= 2.0 * a:  # room for a 4-cycle-free graph: sum lambda_d (d-1) <= m/(2a)
            A_ub = np.vstack([A_ub, np.append(degs - 1.0, 0.0)])
            extra_b = [checks / (2.0 * a)]
        A_eq = np.vstack([np.append(np.ones(D), 0.0), np.append(1.0 / degs, 0.0)])
        b_eq = np.array([1.0, 1.0 / (a * (1.0 - R))])
        for forest in variants:
            cap = 0.95 / max(ch.bhattacharyya, 1e-12) / rho_prime  # stability
            if forest:
                cap = min(cap, 1.96 / a)
            res = linprog(obj, A_ub=A_ub, b_ub=np.concatenate([-xs, [cap], extra_b]), A_eq=A_eq, b_eq=b_eq,
                          bounds=bounds, method="highs")
            if res.status != 0:
                continue
            t = float(res.x[-1])
            if forest not in best or t > best[forest][0]:
                best[forest] = (t, res.x[:-1].copy(), chk, a)
    if not best:
        raise ValueError(f"rate = {R} admits no distribution with variable degrees 2..{dmax}")
    if True in best and (False not in best or best[True][0] >= best[False][0] - forest_tolerance):
        forest, (t, lam, chk, a) = True, best[True]
    else:
        forest, (t, lam, chk, a) = False, best[False]
    lam[lam < 1e-6] = 0.0
    lam = lam / lam.sum()
    variable = {int(d): float(v) for d, v in zip(degs, lam, strict=True) if v > 0}
    src = (f"EXIT-chart LP design (ten Brink, Kramer, Ashikhmin 2004) for the given channel "
           f"(capacity {ch.capacity:.4f}), rate {R:.4f}, variable degrees 2..{dmax}, concentrated checks, "
           f"average check degree {a:.3f}, degree-2 forest bound {'on' if forest else 'off'}")
    return DegreeDistribution(variable, chk, source=src, margin=t)
