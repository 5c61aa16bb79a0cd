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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

__all__ = [
    "QuantiserTranscript",
    "check_levels",
    "equiprobable_edges",
    "equiprobable_indices",
    "exchange_and_encode",
    "gdqg_edges",
    "gdqg_indices",
    "key_bits",
    "quantise_eve",
    "quantise_pair",
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


# ---------------------------------------------------------------------------------------------
# Equiprobable multi-bit quantiser with guard bands (Gaussian observations)
# ---------------------------------------------------------------------------------------------


def _check_guard(guard) -> float:
    if isinstance(guard, bool) or not isinstance(guard, numbers.Real) or not (0.0 <= float(guard) < 1.0):
        raise ValueError(f"guard = {guard!r} is not allowed; the guard-band probability must lie in [0, 1)")
    return float(guard)


def _check_stat(value, name: str, *, positive: bool) -> np.ndarray:
    """A model mean or std: a finite real scalar or 1-D array (``> 0`` everywhere if ``positive``).

    Returns it as float64 (0-d or 1-d); broadcasting to the ``D`` columns is left to the caller.
    """
    allowed = "a finite real number > 0" if positive else "a finite real number"
    allowed += " (or a 1-D array of them, one per column)"
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{name} = {value!r} is not allowed; it must be {allowed}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and other objects numpy cannot turn into an array
        raise ValueError(f"{name} = {value!r} is not allowed; it must be {allowed}") from exc
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} = {value!r} (dtype {arr.dtype}) is not allowed; it must be {allowed}")
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape}; it must be {allowed}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr) | (arr <= 0) if positive else ~np.isfinite(arr)
    if np.any(bad):
        raise ValueError(f"{name} holds {arr[bad].flat[0].item()!r}; it must be {allowed}")
    return arr


def equiprobable_edges(levels: int = 4, guard: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal edges of the equiprobable quantiser with guard bands: ``(lower, upper)``, ``[K-1]``.

    In probability (CDF) space the unit interval is cut into ``K`` kept cells of width
    ``w = (1 - guard) / K`` separated by ``K - 1`` guard bands of width ``g = guard / (K - 1)``:
    level ``k`` keeps ``u in [k (w + g), k (w + g) + w]``, guard band ``j = 1 .. K-1`` is the open
    interval ``(j w + (j-1) g, j (w + g))``. Every kept level has the same probability ``w``, so the
    level index is uniform given that the value is kept and a Gray code gives balanced bits (unlike
    GDQG's guard bands, which shrink the inner levels). This is the multi-bit adaptive quantiser
    of Jana et al., "On the effectiveness of secret key extraction from wireless signal measurements
    on real environments", MobiCom 2009 (equal-probability intervals, guard bands between them),
    applied with the model's CDF instead of the empirical one. ``lower[j-1] = Phi^-1(j w + (j-1) g)``,
    ``upper[j-1] = Phi^-1(j (w + g))``; with ``guard = 0`` both are ``Phi^-1(j / K)``.
    """
    K = check_levels(levels)
    gp = _check_guard(guard)
    w = (1.0 - gp) / K
    g = gp / (K - 1)
    j = np.arange(1, K, dtype=np.float64)
    return norm.ppf(j * w + (j - 1) * g), norm.ppf(j * (w + g))


def equiprobable_indices(x, levels: int = 4, guard: float = 0.1, *, mean=0.0, std=1.0) -> np.ndarray:
    """Level index (``0 .. K-1``, ``-1`` in a guard band) of Gaussian observations ``x ~ N(mean, std^2)``.

    Args:
        x: ``[n, D]`` real finite observations (``n`` probes, ``D`` real components, e.g. real and
            imaginary parts of decorrelated channel coefficients), each column ``N(mean, std^2)``.
        levels: ``K`` (power of two >= 2); ``log2 K`` bits per kept value.
        guard: total guard-band probability in [0, 1) (fraction of values dropped on one side).
        mean, std: scalars or ``[D]`` column statistics; public model statistics (both sides use
            their own model variance), not fitted per probe.

    Returns:
        ``[n, D]`` int64.
    """
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise ValueError("x is complex; stack real and imaginary parts as separate real columns")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"x must have shape [n, D] with n, D >= 1, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"x must be numeric, got dtype {arr.dtype}")
    xf = arr.astype(np.float64)
    if not np.all(np.isfinite(xf)):
        raise ValueError("x has non-finite values (nan or inf)")
    D = xf.shape[1]
    mu = _check_stat(mean, "mean", positive=False)
    sd = _check_stat(std, "std", positive=True)
    for name, arr in (("mean", mu), ("std", sd)):
        if arr.ndim == 1 and arr.size not in (1, D):
            raise ValueError(f"{name} has {arr.size} entries; x has D = {D} columns, so give a scalar or {D} values")
    mu = np.broadcast_to(mu, (D,))
    sd = np.broadcast_to(sd, (D,))
    lower, upper = equiprobable_edges(levels, guard)
    z = (xf - mu) / sd
    idx = np.sum(z[:, :, None] >= upper[None, None, :], axis=2)
    right = np.concatenate([lower, [np.inf]])
    return np.where(z <= right[idx], idx, -1).astype(np.int64)


@dataclass
class QuantiserTranscript:
    """What a quantiser run puts on the public channel, and the rules Eve needs to mimic it.

    Attributes:
        method: ``"equiprobable"`` or ``"gdqg"``.
        params: the public parameters (levels, guard/epsilon, code, model mean/std).
        dropped_alice, dropped_bob: ``[n, D]`` bool, the guard-band positions each side announces
            (the guard-band index exchange).
        kept: ``[n, D]`` bool, positions neither side dropped.
        public_bits: bits sent: one ``D``-bit position mask per probe and side (``2 n D``). They are
            key-independent for the equiprobable quantiser (kept levels stay uniform) and are not
            subtracted as leakage; the pipeline's entropy estimate is taken on kept positions only.
    """

    method: str
    params: dict[str, Any]
    dropped_alice: np.ndarray
    dropped_bob: np.ndarray
    kept: np.ndarray
    public_bits: int
    extra: dict[str, Any] = field(default_factory=dict)


def _indices(method: str, x, params: dict[str, Any]) -> np.ndarray:
    if method == "equiprobable":
        return equiprobable_indices(x, params["levels"], params["guard"], mean=params["mean"], std=params["std"])
    if method == "gdqg":
        return gdqg_indices(x, params["levels"], params["epsilon"], strict_epsilon=params["strict_epsilon"])
    raise ValueError(f"method = {method!r} is not allowed; use 'equiprobable' or 'gdqg'")


def quantise_pair(x_alice, x_bob, method: str = "equiprobable", levels: int = 4, *, guard: float = 0.1,
                  epsilon: float = 0.1, code: str = "gray", mean=0.0, std=1.0, mean_bob=None, std_bob=None,
                  strict_epsilon: bool = True) -> tuple[list[np.ndarray], list[np.ndarray], QuantiserTranscript]:
    """Quantise Alice's and Bob's observations, exchange guard-band positions, encode the kept levels.

    Args:
        x_alice, x_bob: ``[n, D]`` real observations (one probe per row).
        method: ``"equiprobable"`` (:func:`equiprobable_indices`, model statistics ``mean``/``std``,
            Bob's ``mean_bob``/``std_bob`` if they differ) or ``"gdqg"`` (002 Algorithm 1, per-row fit).
        levels: ``K``; ``code``: ``"gray"`` (default) or ``"binary"`` (see :func:`exchange_and_encode`).
        guard: equiprobable guard probability; ``epsilon``/``strict_epsilon``: GDQG's.

    Returns:
        ``keys_alice``, ``keys_bob``: ``n`` 1-D uint8 arrays (the initial keys, per probe), and the
        :class:`QuantiserTranscript` of what was made public.
    """
    K = check_levels(levels)
    params: dict[str, Any] = {"levels": K, "code": code}
    if method == "equiprobable":
        # check the model statistics here, so a bad one is named as given (mean_bob, not mean)
        _check_stat(mean, "mean", positive=False)
        _check_stat(std, "std", positive=True)
        if mean_bob is not None:
            _check_stat(mean_bob, "mean_bob", positive=False)
        if std_bob is not None:
            _check_stat(std_bob, "std_bob", positive=True)
        params.update(guard=_check_guard(guard), mean=mean, std=std)
        pb = dict(params, mean=mean if mean_bob is None else mean_bob, std=std if std_bob is None else std_bob)
    elif method == "gdqg":
        params.update(epsilon=epsilon, strict_epsilon=strict_epsilon)
        pb = params
    else:
        raise ValueError(f"method = {method!r} is not allowed; use 'equiprobable' or 'gdqg'")
    idx_a = _indices(method, x_alice, params)
    idx_b = _indices(method, x_bob, pb)
    bits_a, bits_b, kept = exchange_and_encode(idx_a, idx_b, K, code)
    tr = QuantiserTranscript(method, params, idx_a < 0, idx_b < 0, kept, 2 * kept.size, {"bob_params": pb})
    return key_bits(bits_a, kept), key_bits(bits_b, kept), tr


def quantise_eve(x_eve, transcript: QuantiserTranscript, mean=None, std=None) -> list[np.ndarray]:
    """Eve applies the public quantiser rules to her own observations and keeps the announced positions.

    Args:
        x_eve: ``[n, D]`` Eve's observations aligned with Bob's (same probes and components).
        transcript: Alice's and Bob's :class:`QuantiserTranscript`.
        mean, std: Eve's own model statistics (default: Bob's).

    Returns:
        ``n`` 1-D uint8 arrays, the same lengths as Alice's initial keys.
    """
    if not isinstance(transcript, QuantiserTranscript):
        raise ValueError(
            f"transcript must be a QuantiserTranscript (from quantise_pair), got {type(transcript).__name__}"
        )
    if mean is not None:
        _check_stat(mean, "mean", positive=False)
    if std is not None:
        _check_stat(std, "std", positive=True)
    params = dict(transcript.extra.get("bob_params", transcript.params))
    if mean is not None:
        params["mean"] = mean
    if std is not None:
        params["std"] = std
    # Eve has no reason to drop anything: she decides every value with the guard bands closed.
    if transcript.method == "equiprobable":
        params["guard"] = 0.0
    else:
        params["epsilon"] = 1e-12
    idx = _indices(transcript.method, x_eve, params)
    if idx.shape != transcript.kept.shape:
        raise ValueError(f"x_eve has shape {idx.shape}; the transcript is for {transcript.kept.shape}")
    K = params["levels"]
    nbits = K.bit_length() - 1
    v = np.where(transcript.kept, np.maximum(idx, 0), 0)
    if params["code"] == "gray":
        v = v ^ (v >> 1)
    shifts = np.arange(nbits - 1, -1, -1, dtype=np.int64)
    bits = ((v[..., None] >> shifts) & 1).astype(np.uint8)
    return key_bits(bits, transcript.kept)
