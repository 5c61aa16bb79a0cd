"""Gaussian distribution-based quantisation with guard band (GDQG), 002 Sec. VI-C and Algorithm 1.

Pipeline for one batch of ``n`` channel-feature vectors (Alice's ``x_hat_2`` and Bob's ``x_2``, each
``[n, 2L]``: real and imaginary parts of the ``L`` subcarriers, 002 Sec. VI-B)::

    idx_a = gdqg_indices(x_alice, levels=K, epsilon=eps)      # Algorithm 1, (18)-(20)
    idx_b = gdqg_indices(x_bob, levels=K, epsilon=eps)
    bits_a, bits_b, kept = exchange_and_encode(idx_a, idx_b, K)  # index exchange + encoding
    keys_a = key_bits(bits_a, kept)                            # initial keys Q_A, one per sample

numpy/scipy only; inputs may be anything ``np.asarray`` accepts (torch CPU tensors included).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.stats import norm

__all__ = [
    "check_levels",
    "exchange_and_encode",
    "gdqg_edges",
    "gdqg_indices",
    "key_bits",
]


def check_levels(levels) -> int:
    """Validate the quantisation level ``K`` (a power of two ``>= 2``); return it as ``int``."""
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral):
        raise ValueError(f"levels (K) must be an integer power of two >= 2, got {levels!r}")
    K = int(levels)
    if K < 2 or K & (K - 1):
        raise ValueError(f"levels (K) = {K} is not allowed; it must be a power of two >= 2 (2, 4, 8, ...)")
    return K


def _check_epsilon(epsilon, K: int, strict: bool) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise ValueError(f"epsilon must be a real number, got {epsilon!r}")
    eps = float(epsilon)
    upper = 1.0 / (2 * K) if (strict or K > 2) else 0.5
    if not (0.0 < eps < upper):
        if K == 2 and strict:
            hint = (
                " (002 states epsilon in (0, 1/(2K)) below (20); for K = 2 only, every interval of (20)"
                " stays non-empty up to 1/2, and 002 Fig. 10 uses epsilon = 0.3: pass"
                " strict_epsilon=False to allow it)"
            )
        elif K == 2:
            hint = " (K = 2 with strict_epsilon=False)"
        else:
            hint = " (002, below (20): every inner interval of (20) must be non-empty)"
        raise ValueError(f"epsilon = {eps!r} is not allowed for K = {K}; it must lie in (0, {upper:g}){hint}")
    return eps


def _as_features(x, name: str) -> np.ndarray:
    """``[n, D]`` real finite float64, ``n >= 1``, ``D >= 2``."""
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise ValueError(
            f"{name} is complex; GDQG takes real features [n, 2L] (stack the real and "
            "imaginary parts of the L subcarriers, 002 Sec. V-B)"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must have shape [n, D] (one feature vector per row), got shape "
            f"{arr.shape}; use x[None, :] for a single vector"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need n >= 1 rows and D >= 2 features")
    if arr.shape[1] < 2:
        raise ValueError(f"{name} has D = {arr.shape[1]} feature; the unbiased variance (19) needs D >= 2")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} has a non-finite value at row {bad[0]}, column {bad[1]}: {arr[tuple(bad)]}")
    return arr


def gdqg_edges(levels: int = 2, epsilon: float = 0.1, *, strict_epsilon: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal interval edges of (20): ``(lower, upper)``, each ``[K-1]`` float64.

    For inner boundary ``j = 1 .. K-1``: ``lower[j-1] = Phi^-1(j/K - eps)`` closes interval ``j``
    (1-based) and ``upper[j-1] = Phi^-1(j/K + eps)`` opens interval ``j + 1``; the open gap
    ``(lower, upper)`` is the guard band. For ``N(mu, sigma^2)`` the edges are ``mu + sigma * edge``
    (``F^-1(p) = mu + sigma Phi^-1(p)``).
    """
    K = check_levels(levels)
    eps = _check_epsilon(epsilon, K, strict_epsilon)
    j = np.arange(1, K, dtype=np.float64)
    return norm.ppf(j / K - eps), norm.ppf(j / K + eps)


def gdqg_indices(x, levels: int = 2, epsilon: float = 0.1, *, strict_epsilon: bool = True) -> np.ndarray:
    """GDQG level index of every feature, 002 Algorithm 1 with (18)-(20).

    Per sample (row) ``x = [x_0 .. x_{2L-1}]``:

    * mean (18): ``mu = 1/(2L) sum_l x_l``;
    * unbiased variance (19): ``sigma^2 = 1/(2L - 1) sum_l (x_l - mu)^2``;
    * with ``F`` the CDF of ``N(mu, sigma^2)``, interval ``k`` (20) is
      ``[F^-1((k-1)/K + eps), F^-1(k/K - eps)]`` for ``k = 2 .. K-1``, the first is
      ``(-inf, F^-1(1/K - eps)]`` and the K-th ``[F^-1((K-1)/K + eps), +inf)``.

    002 writes the first interval as ``[0, F^-1(1/K - eps)]`` and the K-th as
    ``[F^-1((K-1)/K + eps), 1]``: the 0 and 1 are the CDF ends ``F^-1(0) = -inf`` and
    ``F^-1(1) = +inf`` (the features are real and often negative), so they are read as
    ``(-inf, ...]`` and ``[..., +inf)`` here.

    A feature inside interval ``k`` gets index ``k - 1`` (0 .. K-1); one in a guard band
    ``(F^-1(j/K - eps), F^-1(j/K + eps))`` around an inner boundary gets ``-1`` ("coded as -1",
    Algorithm 1 line 10). Each boundary's guard band holds probability ``2 eps`` under the fit, so a
    fraction ``2 eps (K - 1)`` of Gaussian features is dropped (002 Sec. VII-C: ``eps = 0.1``,
    ``K = 2`` drops 20 %).

    Args:
        x: ``[n, D]`` real features, ``D = 2L >= 2``, finite; a row with zero variance is rejected
            (the Gaussian fit is degenerate).
        levels: ``K``, a power of two ``>= 2``.
        epsilon: guard-band probability ``eps`` on each side of each inner boundary; 002 requires
            ``eps in (0, 1/(2K))``. With ``strict_epsilon=False`` and ``K = 2`` (no inner interval,
            so every interval stays non-empty up to 1/2) ``eps in (0, 1/2)`` is allowed, which
            002 Fig. 10 needs (``eps = 0.3``).

    Returns:
        ``[n, D]`` int64 level indices in ``{-1, 0, .., K-1}``.
    """
    xf = _as_features(x, "x")
    lower, upper = gdqg_edges(levels, epsilon, strict_epsilon=strict_epsilon)
    mu = xf.mean(axis=1, keepdims=True)  # (18)
    sigma = np.sqrt(np.sum((xf - mu) ** 2, axis=1, keepdims=True) / (xf.shape[1] - 1))  # (19)
    flat = np.flatnonzero(sigma[:, 0] <= 0.0)
    if flat.size:
        raise ValueError(
            f"x row {flat[0]} is constant (sigma = 0 in (19)); the Gaussian fit N(mu, sigma^2) "
            "of Algorithm 1 needs a row with at least two distinct values"
        )
    lo = mu + sigma * lower  # [n, K-1]  F^-1(j/K - eps), (20)
    up = mu + sigma * upper  # [n, K-1]  F^-1(j/K + eps), (20)
    # index = number of intervals whose left edge is at or below x (0-based level k-1)
    idx = np.sum(xf[:, :, None] >= up[:, None, :], axis=2)
    # x belongs to level idx only if it is also at or below that interval's right edge
    right = np.concatenate([lo, np.full((xf.shape[0], 1), np.inf)], axis=1)  # [n, K]
    inside = xf <= np.take_along_axis(right, idx, axis=1)
    return np.where(inside, idx, -1).astype(np.int64)


def _as_indices(idx, name: str, K: int) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [n, D] (from gdqg_indices), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.integer):
        whole = np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
        if whole and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer level indices, got dtype {arr.dtype}")
    bad = (arr < -1) | (arr >= K)
    if np.any(bad):
        raise ValueError(
            f"{name} holds the value {arr[bad].flat[0].item()}; allowed are -1 (guard band) and "
            f"0 .. {K - 1} for K = {K}"
        )
    return arr.astype(np.int64)


def exchange_and_encode(idx_a, idx_b, levels: int, code: str = "binary") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Public exchange of dropped positions, then encoding of the kept level indices (002 Sec. VI-C).

    Alice and Bob send each other the positions coded -1 and both delete them: a position is kept
    only if neither side dropped it. Each kept level index ``k`` in ``0 .. K-1`` becomes
    ``log2 K`` bits, most significant bit first:

    * ``code="binary"`` (default): natural binary code of ``k`` -- 002's "common binary encoding";
    * ``code="gray"``: binary-reflected Gray code ``k XOR (k >> 1)``, where neighbouring levels differ
      in one bit, so an off-by-one-level disagreement costs one bit error instead of up to
      ``log2 K`` (K = 4: 00, 01, 11, 10).

    For ``K = 2`` both codes are the same (level 0 -> 0, level 1 -> 1).

    Bit balance: with guard bands the levels are not equiprobable (the outer two keep
    ``1/K - eps``, the inner ones ``1/K - 2 eps``). The binary code still gives balanced bits
    (``k -> K-1-k`` complements every bit), but Gray's lower bits are biased, e.g. ``K = 4``,
    ``eps = 0.05``: the low bit is 1 with probability 0.3/0.7 = 0.43, which the NIST frequency
    test will see. Gray buys a lower KER at that price.

    Args:
        idx_a, idx_b: ``[n, D]`` int level indices from :func:`gdqg_indices` (``-1`` = dropped).
        levels: ``K``, the value used for both index arrays.
        code: ``"binary"`` or ``"gray"``.

    Returns:
        ``bits_a``, ``bits_b``: ``[n, D, log2 K]`` uint8 (all-zero at positions not kept);
        ``kept``: ``[n, D]`` bool.
    """
    K = check_levels(levels)
    if code not in ("binary", "gray"):
        raise ValueError(f"code = {code!r} is not allowed; use 'binary' (002) or 'gray'")
    a = _as_indices(idx_a, "idx_a", K)
    b = _as_indices(idx_b, "idx_b", K)
    if a.shape != b.shape:
        raise ValueError(f"idx_a has shape {a.shape} but idx_b has shape {b.shape}; they must match")
    kept = (a >= 0) & (b >= 0)
    nbits = K.bit_length() - 1
    shifts = np.arange(nbits - 1, -1, -1, dtype=np.int64)  # MSB first

    def encode(idx: np.ndarray) -> np.ndarray:
        v = np.where(kept, idx, 0)
        if code == "gray":
            v = v ^ (v >> 1)
        return ((v[..., None] >> shifts) & 1).astype(np.uint8)

    return encode(a), encode(b), kept


def key_bits(bits, kept) -> list[np.ndarray]:
    """Each sample's initial key: its kept positions' bits, in feature order, MSB first.

    Args:
        bits: ``[n, D, b]`` (or ``[n, D]`` for one bit per feature) 0/1, from :func:`exchange_and_encode`.
        kept: ``[n, D]`` bool.

    Returns:
        ``n`` 1-D uint8 arrays; sample ``i`` has ``b * kept[i].sum()`` bits (possibly none).
    """
    bb = np.asarray(bits)
    kk = np.asarray(kept)
    if bb.ndim == 2:
        bb = bb[..., None]
    if bb.ndim != 3:
        raise ValueError(f"bits must have shape [n, D, b] or [n, D], got shape {np.asarray(bits).shape}")
    if bb.shape[0] == 0 or bb.shape[1] == 0 or bb.shape[2] == 0:
        raise ValueError(f"bits is empty (shape {bb.shape}); need n >= 1 samples, D >= 1 features, b >= 1 bits")
    if kk.shape != bb.shape[:2]:
        raise ValueError(f"kept has shape {kk.shape}; it must be [n, D] = {bb.shape[:2]} to match bits")
    if kk.dtype != np.bool_:
        if not np.all((kk == 0) | (kk == 1)):
            raise ValueError("kept must be boolean (or 0/1)")
        kk = kk.astype(bool)
    if not np.all((bb == 0) | (bb == 1)):
        bad = bb[(bb != 0) & (bb != 1)].flat[0].item()
        raise ValueError(f"bits must be binary (only 0 and 1 allowed), found {bad!r}")
    bb = bb.astype(np.uint8)
    return [bb[i][kk[i]].reshape(-1) for i in range(bb.shape[0])]
