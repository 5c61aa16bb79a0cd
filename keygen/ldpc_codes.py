"""LDPC syndrome codes: progressive-edge-growth construction, check splitting, belief propagation.

* :func:`peg_parity_check_matrix` -- progressive edge growth (Hu, Eleftheriou, Arnold, "Regular and
  irregular progressive edge-growth Tanner graphs", IEEE Trans. IT 51(1), 2005), depth-limited for
  speed: each edge of a variable node goes to a random lowest-degree check that shares no variable
  with the node's distance-2 neighbourhood, so no 4-cycle is closed (``girth=8`` also avoids
  6-cycles where it can); degree-2 nodes are kept cycle-free among themselves (a cycle of them is a
  low-weight codeword). Variable nodes are taken in random order by default (measured better here
  than the non-decreasing degree order of Hu et al.). :func:`count_four_cycles` counts pairs of
  columns sharing more than one row.
* :func:`split_checks` -- incremental redundancy for syndrome coding: a check of degree ``d`` is
  split into two of degrees ``ceil(d/2)``, ``floor(d/2)``; Alice sends the syndrome bit of the new
  half (one disclosed bit per split), Bob recovers the other by XOR with the old bit. Splitting
  closes no cycle, keeps the variable degrees and lowers the code rate a little per bit sent.
* :func:`syndrome_bp` -- sum-product decoding of a syndrome with per-bit prior LLRs (numpy).

The degree distributions come from :mod:`keygen.ldpc_design` (re-exported here). numpy/scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .ldpc_design import (
    RSU_RATE_HALF,
    BSCMixture,
    DegreeDistribution,
    _check_int,
    biawgn_mixture,
    concentrated_check,
    design_distribution,
    exit_converges,
    exit_threshold_biawgn,
)

__all__ = [
    "RSU_RATE_HALF",
    "BSCMixture",
    "DegreeDistribution",
    "PEGStats",
    "biawgn_mixture",
    "concentrated_check",
    "count_four_cycles",
    "design_distribution",
    "exit_converges",
    "exit_threshold_biawgn",
    "peg_parity_check_matrix",
    "split_checks",
    "syndrome_bp",
]


# ---------------------------------------------------------------------------------------------
# progressive edge growth
# ---------------------------------------------------------------------------------------------


@dataclass
class PEGStats:
    """What :func:`peg_parity_check_matrix` achieved: relaxed edges (closed a cycle shorter than
    the target girth), of which four-cycle edges, and the check degree range."""

    relaxed_edges: int
    four_cycle_edges: int
    check_degree_min: int
    check_degree_max: int
    girth_target: int


def peg_parity_check_matrix(n: int, m: int, var_degrees, *, seed: int = 0, girth: int = 6,
                            order: str = "random", degree2_forest: bool = True, return_stats: bool = False):
    """``m x n`` parity-check matrix with the given column degrees by depth-limited PEG.

    Args:
        n, m: columns (frame bits) and rows (syndrome bits).
        var_degrees: ``[n]`` integer column degrees in ``[1, m]`` (e.g.
            :meth:`DegreeDistribution.variable_degrees`).
        seed: integer ``>= 0`` for the tie-breaks (the matrix is public: same arguments, same matrix).
        girth: 6 (no 4-cycles) or 8 (no 4- or 6-cycles, where the graph allows).
        order: the order in which variable nodes receive their edges: ``"random"`` (default) or
            ``"ascending"`` (non-decreasing degree, as Hu et al. recommend). Measured here (slice
            channel of rho = 0.9, 16 levels, last slice, n = 10^5, rate 0.775, f = 1.05): the
            random order decoded 2/2 frames in 76-77 iterations, the ascending order 1/2; with
            ascending order the degree-2 nodes, placed first on empty checks, form long chains and
            the high-degree nodes, placed last, meet the tightest neighbourhood constraints.
        degree2_forest: keep the subgraph of the degree-2 variable nodes a forest (needs fewer
            degree-2 nodes than checks; ignored otherwise). A cycle of degree-2 nodes is a codeword
            of the cycle's length, a low-weight error pattern BP can converge to (seen here without
            this rule: BP satisfied the syndrome 10 bits off the true word at n = 10^5).

    Returns:
        ``scipy.sparse.csr_matrix`` ``[m, n]`` uint8 (and :class:`PEGStats` if ``return_stats``).
    """
    n = _check_int(n, "n", 2)
    m = _check_int(m, "m", 1)
    if girth not in (6, 8):
        raise ValueError(f"girth = {girth!r} is not allowed; it must be 6 or 8")
    if order not in ("random", "ascending"):
        raise ValueError(f"order = {order!r} is not allowed; it must be 'random' or 'ascending'")
    seed = _check_int(seed, "seed", 0)
    dv = np.asarray(var_degrees)
    if dv.shape != (n,) or not np.issubdtype(dv.dtype, np.integer) or dv.min() < 1 or dv.max() > m:
        raise ValueError(f"var_degrees must be {n} integers in [1, m = {m}]")
    dv = dv.astype(np.int64)
    rng = np.random.default_rng(seed)
    keys = rng.random(n)
    order = np.argsort(keys) if order == "random" else np.lexsort((keys, dv))
    # plain Python lists: the per-edge work is on sets of tens to hundreds of nodes, where list
    # operations cost a fraction of numpy's per-call overhead
    deg_of = dv.tolist()
    vchk: list[list[int]] = [[] for _ in range(n)]
    cvar: list[list[int]] = [[] for _ in range(m)]
    # where checks get very dense (rows of more than 1000 ones: a few rows for a whole frame, as for a
    # slice with almost no errors), no short-cycle rule is applied: each test would cost a row
    constrained = int(dv.sum()) <= 1000 * m
    if girth == 8 and not constrained:
        girth = 6
    if girth == 8:
        vchk_np = np.full((n, int(dv.max())), -1, dtype=np.int64)
        cvar_np = np.full((m, max(4, -(-int(dv.sum()) // m) + 4)), -1, dtype=np.int64)
        stamp3 = stamp3_np = np.zeros(m, dtype=np.int64)
    else:
        stamp3 = [0] * m
    # bucket queue of checks by current degree (swap-remove lists); cdeg[c] == len(cvar[c])
    perm = rng.permutation(m).tolist()
    buckets: list[list[int]] = [perm]
    pos = [0] * m
    for i, c in enumerate(perm):
        pos[c] = i
    forest = bool(degree2_forest) and int(np.count_nonzero(dv == 2)) < m
    comp = list(range(m))
    members: list[list[int]] = [[c] for c in range(m)] if forest else []
    E = int(dv.sum())
    rnd = rng.random(4 * E + 64).tolist()
    nr = len(rnd)
    ri = 0
    relaxed = 0
    four = 0
    low = 0  # lowest possibly non-empty bucket

    def allowed(c: int, near: set, tag: int, comp0: int, deep: bool) -> bool:
        return ((not constrained or near.isdisjoint(cvar[c])) and (not deep or stamp3[c] != tag)
                and (comp0 < 0 or comp[c] != comp0))

    def select(near: set, tag: int, comp0: int, deep: bool) -> int:
        """A random lowest-degree check sharing no variable with ``near`` (the variables within distance
        2 of the node: such a check would close a 4-cycle), outside the depth-3 neighbourhood when
        ``deep``, and, for a degree-2 node's second edge, outside its first check's degree-2 tree."""
        nonlocal ri
        for lev in range(low, len(buckets)):
            B = buckets[lev]
            nb = len(B)
            if not nb:
                continue
            if nb > 48:
                for _ in range(256):  # random probes first; a full scan of the bucket costs a row per check
                    cand = B[int(rnd[ri] * nb)]
                    ri = ri + 1 if ri + 1 < nr else 0
                    if allowed(cand, near, tag, comp0, deep):
                        return cand
            ok = [c for c in B if allowed(c, near, tag, comp0, deep)]
            if ok:
                c = ok[int(rnd[ri] * len(ok))]
                ri = ri + 1 if ri + 1 < nr else 0
                return c
        return -1

    for step, v in enumerate(order.tolist()):
        tag = step + 1
        mine = vchk[v]
        dvv = deg_of[v]
        near = {v}  # variables within distance 2 of v (v and those sharing a check with it)
        for e in range(dvv):
            while not buckets[low]:
                low += 1
            # a degree-2 node never joins two checks already linked by degree-2 nodes: the degree-2
            # subgraph stays a forest, so no codeword is made of degree-2 nodes alone
            comp0 = comp[mine[0]] if (forest and e == 1 and dvv == 2) else -1
            c = select(near, tag, comp0, girth == 8)
            if c < 0 and girth == 8:
                c = select(near, tag, comp0, False)  # settle for no 4-cycle
                relaxed += c >= 0
            if c < 0 and comp0 >= 0:
                c = select(near, tag, -1, False)  # settle for a cycle of degree-2 nodes
            if c < 0:
                # every check lies within the depth-2 neighbourhood: close a 4-cycle, but never repeat an
                # edge; pick a lowest-degree check not yet attached to v
                c = next(cc for lev in range(low, len(buckets)) for cc in buckets[lev] if cc not in mine)
                relaxed += 1
                four += 1
            elif not constrained and len(mine) > 0:
                four += 1  # not checked: counted as possibly closing one
            # connect v - c and move c one bucket up
            d = len(cvar[c])
            B = buckets[d]
            i = pos[c]
            last = B[-1]
            B[i] = last
            pos[last] = i
            B.pop()
            if d + 1 == len(buckets):
                buckets.append([])
            buckets[d + 1].append(c)
            pos[c] = len(buckets[d + 1]) - 1
            cvar[c].append(v)
            mine.append(c)
            if comp0 >= 0 and comp[c] != comp0:  # union of the two degree-2 trees (relabel the smaller)
                a_, b_ = comp0, comp[c]
                if len(members[a_]) < len(members[b_]):
                    a_, b_ = b_, a_
                for cc in members[b_]:
                    comp[cc] = a_
                members[a_].extend(members[b_])
                members[b_] = []
            if constrained:
                near.update(cvar[c])
            if girth == 8:  # forbid the checks at depth 3 (6-cycle); thousands of them: numpy mirrors of the graph
                if len(cvar[c]) > cvar_np.shape[1]:
                    cvar_np = np.hstack([cvar_np, np.full(cvar_np.shape, -1, dtype=np.int64)])
                cvar_np[c, len(cvar[c]) - 1] = v
                vchk_np[v, e] = c
                us = cvar_np[c]
                cs = vchk_np[us[us >= 0]].ravel()
                cs = cs[cs >= 0]
                us2 = cvar_np[cs].ravel()
                cs2 = vchk_np[us2[us2 >= 0]].ravel()
                stamp3_np[cs2[cs2 >= 0]] = tag
    cdeg = np.fromiter((len(x) for x in cvar), dtype=np.int64, count=m)
    cols = np.repeat(np.arange(n), dv)
    rows = np.fromiter((c for v in range(n) for c in vchk[v]), dtype=np.int64, count=E)
    H = sp.csr_matrix((np.ones(E, dtype=np.uint8), (rows, cols)), shape=(m, n))
    H.sort_indices()
    if return_stats:
        return H, PEGStats(relaxed, four, int(cdeg.min()), int(cdeg.max()), girth)
    return H


def count_four_cycles(H) -> int:
    """Number of (unordered) column pairs sharing two or more rows: zero iff the Tanner graph has no 4-cycle."""
    A = sp.csr_matrix(H, dtype=np.int64)
    A.data[:] = 1
    rowsq = int((np.diff(A.indptr) ** 2).sum())
    colsq = int((np.diff(A.tocsc().indptr) ** 2).sum())
    if rowsq <= colsq:
        G = (A.T @ A).tocoo()  # column-column overlaps, n x n
    else:
        G = (A @ A.T).tocoo()  # row-row overlaps: a pair of rows sharing >= 2 columns is a 4-cycle too
    off = G.row < G.col
    over = G.data[off]
    return int(((over * (over - 1)) // 2).sum())


def split_checks(H, count: int, *, seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Split ``count`` of the highest-degree rows of ``H`` in two (incremental syndrome bits).

    Row ``r`` keeps a random half of its columns; a new row (appended at the end, in the order of
    the returned ``parents``) takes the other half. For any ``x``: ``(H x)_r = (H' x)_r xor (H' x)_new``,
    so the receiver of the new rows' syndrome bits recovers the split rows' from the old ones.

    Returns:
        ``(H', parents)``: the ``(m + count) x n`` matrix and ``[count]`` the row each new row came from.
    """
    A = sp.csr_matrix(H, dtype=np.uint8)
    m, n = A.shape
    count = _check_int(count, "count", 0, m)
    seed = _check_int(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    deg = np.diff(A.indptr)
    parents = np.lexsort((rng.random(m), -deg))[:count]
    parents = parents[deg[parents] >= 2]
    rows = np.repeat(np.arange(m), deg)
    cols = A.indices.copy()
    for k, r in enumerate(parents):
        s, e = A.indptr[r], A.indptr[r + 1]
        seg = rng.permutation(np.arange(s, e))
        rows[seg[: (e - s) // 2]] = m + k
    Hn = sp.csr_matrix((np.ones(cols.size, dtype=np.uint8), (rows, cols)), shape=(m + parents.size, n))
    Hn.sort_indices()
    return Hn, parents


# ---------------------------------------------------------------------------------------------
# belief propagation (syndrome form), numpy
# ---------------------------------------------------------------------------------------------


def syndrome_bp(H, llr, syndrome, *, max_iter: int = 200) -> tuple[np.ndarray, bool, int]:
    """Sum-product decoding of ``x`` from ``H x = syndrome`` and the prior LLRs ``log P(x=0)/P(x=1)``.

    Flooding schedule in the log domain (``tanh`` rule, the same message updates as
    ``ldpc.BpDecoder(bp_method="product_sum", schedule="parallel")``: on the frames checked here both
    stop after the same number of iterations with the same output), vectorised over the edges.
    Stops as soon as the hard decision satisfies the syndrome.

    Args:
        H: ``[m, n]`` sparse 0/1 parity-check matrix.
        llr: ``[n]`` prior LLRs (finite; clipped to +-30).
        syndrome: ``[m]`` 0/1.
        max_iter: iteration limit (>= 1).

    Returns:
        ``(x_hat [n] uint8, converged, iterations)``.
    """
    A = sp.csr_matrix(H, dtype=np.int64)
    m, n = A.shape
    lam = np.clip(np.asarray(llr, dtype=np.float64), -30.0, 30.0)
    s = np.asarray(syndrome).astype(np.uint8)
    if lam.shape != (n,) or s.shape != (m,):
        raise ValueError(f"llr must have shape ({n},) and syndrome ({m},), got {lam.shape} and {s.shape}")
    max_iter = _check_int(max_iter, "max_iter", 1)
    deg = np.diff(A.indptr)
    live = deg > 0
    rows = np.repeat(np.arange(m), deg)
    cols = A.indices.astype(np.int64)
    starts = A.indptr[:-1][live]
    row_of_live = np.cumsum(live) - 1  # index of each live row among the live rows
    erow = row_of_live[rows]
    ssign = (1.0 - 2.0 * s)[rows]
    Mcv = np.zeros(cols.size)
    x = (lam < 0).astype(np.uint8)
    for it in range(max_iter + 1):
        tot = lam + np.bincount(cols, weights=Mcv, minlength=n)
        x = (tot < 0).astype(np.uint8)
        if np.array_equal((A @ x.astype(np.int64)) & 1, s):
            return x, True, it
        if it == max_iter:
            break
        T = np.tanh(np.clip(tot[cols] - Mcv, -40.0, 40.0) * 0.5)
        la = np.log(np.clip(np.abs(T), 1e-300, 1.0 - 1e-16))
        neg = (T < 0).astype(np.int64)
        rest = np.add.reduceat(la, starts)[erow] - la
        par = (np.add.reduceat(neg, starts)[erow] - neg) & 1
        Mcv = ssign * (1.0 - 2.0 * par) * 2.0 * np.arctanh(np.minimum(np.exp(rest), 1.0 - 1e-15))
    return x, False, max_iter
