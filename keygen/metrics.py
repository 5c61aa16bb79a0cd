"""Key-generation metrics of 002 Sec. VII-B on numpy arrays: NMSE (21), KER, KGR, NVD (22).

Plain functions (numpy only) for notebooks and for the Lightning callbacks; inputs may be anything
``np.asarray`` accepts (torch CPU tensors included). Every function returns a Python ``float``
(``nvd(..., reduce=False)`` and ``nmse(..., reduce=False)`` return ``[n]`` float64 arrays).
"""

from __future__ import annotations

import numpy as np

from .quantize import check_levels

__all__ = ["key_error_rate", "key_generation_ratio", "nmse", "nvd"]


def _as_vectors(x, name: str) -> np.ndarray:
    """``[n, D]`` (or ``[D]``, read as one sample) finite numeric -> ``[n, D]``."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [n, D] (or [D] for one sample), got shape {np.shape(x)}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {np.shape(x)}); need n >= 1 samples and D >= 1 entries")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values (nan or inf)")
    return arr.astype(np.complex128) if np.iscomplexobj(arr) else arr.astype(np.float64)


def _ratio_per_sample(num_vec, den_vec, names: tuple[str, str]) -> np.ndarray:
    a = _as_vectors(num_vec, names[0])
    b = _as_vectors(den_vec, names[1])
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} has shape {np.shape(num_vec)} but {names[1]} has shape {np.shape(den_vec)}; they must match"
        )
    den = np.sum(np.abs(b) ** 2, axis=1)
    zero = np.flatnonzero(den == 0)
    if zero.size:
        raise ValueError(f"{names[1]} row {zero[0]} is all zeros; the ratio divides by ||{names[1]}||^2")
    return np.sum(np.abs(a - b) ** 2, axis=1) / den


def nmse(pred, target, *, reduce: bool = True):
    """Normalised mean square error, 002 (21): ``E[ ||x_hat - x||_2^2 / ||x||_2^2 ]``.

    The expectation is the mean over samples (rows) of the per-sample ratio (not the ratio of sums).

    Args:
        pred: ``[n, D]`` predicted features ``x_hat_2`` (real or complex; ``[D]`` = one sample).
        target: ``[n, D]`` true features ``x_2``; no all-zero row.
        reduce: ``False`` returns the ``[n]`` per-sample ratios.

    Returns:
        ``float`` (or ``[n]`` float64). Linear scale; ``10 log10`` of it is NMSE in dB.
    """
    per = _ratio_per_sample(pred, target, ("pred", "target"))
    return float(per.mean()) if reduce else per


def nvd(k1, k2, *, reduce: bool = True):
    """Normalised vector distance, 002 (22): ``NVD(K1, K2) = ||K1 - K2||_2^2 / ||K2||_2^2`` per sample.

    002 Sec. VII-C uses it to compare Eve's and Alice's/Bob's feature vectors (or keys); K2 is the
    reference. Not symmetric: ``nvd(a, b) != nvd(b, a)`` in general.

    Args:
        k1: ``[n, D]`` (or ``[D]``) vectors.
        k2: ``[n, D]`` (or ``[D]``) reference vectors; no all-zero row.
        reduce: ``True`` (default) returns the mean over samples; ``False`` the ``[n]`` values.
    """
    per = _ratio_per_sample(k1, k2, ("k1", "k2"))
    return float(per.mean()) if reduce else per


def _as_bit_array(bits, name: str) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape [n, D, log2K] (or [n, D]), got shape {np.shape(bits)}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {np.shape(bits)})")
    if not np.all((arr == 0) | (arr == 1)):
        bad = arr[(arr != 0) & (arr != 1)].flat[0].item()
        raise ValueError(f"{name} must be binary (only 0 and 1 allowed), found {bad!r}")
    return arr.astype(np.uint8)


def _as_kept(kept, shape: tuple[int, int]) -> np.ndarray:
    kk = np.asarray(kept)
    if kk.shape != shape:
        raise ValueError(f"kept has shape {kk.shape}; it must be [n, D] = {shape}")
    if kk.dtype != np.bool_:
        if not np.all((kk == 0) | (kk == 1)):
            raise ValueError("kept must be boolean (or 0/1)")
        kk = kk.astype(bool)
    return kk


def key_error_rate(bits_a, bits_b, kept) -> float:
    """Key error rate (KER), 002 Sec. VII-B: mismatched key bits / total key bits.

    Counted over the whole batch: ``sum(kept & (bits_a != bits_b)) / (log2K * sum(kept))``, i.e. the
    bit error rate of the concatenated initial keys ``Q_A``, ``Q_B`` (before reconciliation).

    Args:
        bits_a, bits_b: ``[n, D, log2K]`` (or ``[n, D]``) 0/1, from
            :func:`keygen.quantize.exchange_and_encode`.
        kept: ``[n, D]`` bool; only kept positions count.

    Returns:
        KER in [0, 1]; ``nan`` when no position is kept (no key bits, KER undefined).
    """
    a = _as_bit_array(bits_a, "bits_a")
    b = _as_bit_array(bits_b, "bits_b")
    if a.shape != b.shape:
        raise ValueError(f"bits_a has shape {a.shape} but bits_b has shape {b.shape}; they must match")
    kk = _as_kept(kept, a.shape[:2])
    total = int(kk.sum()) * a.shape[2]
    if total == 0:
        return float("nan")
    errors = int(np.count_nonzero((a != b) & kk[..., None]))
    return errors / total


def key_generation_ratio(kept, levels: int, num_subcarriers: int) -> float:
    """Key generation ratio (KGR), 002 Sec. VII-B: initial key bits / number of subcarriers L.

    Per sample ``KGR_i = log2(K) * sum_l kept[i, l] / L``, averaged over samples. With all
    ``2L`` features kept the maximum is ``2 log2 K`` (002 quotes 2, its K = 2 case); a Gaussian fit
    with guard band eps drops about ``2 eps (K-1)`` of the features, so ``KGR ~ 2 log2K (1 - 2 eps (K-1))``
    (002 Sec. VII-C: eps = 0.1, K = 2 gives 1.6).

    Args:
        kept: ``[n, 2L]`` bool, from :func:`keygen.quantize.exchange_and_encode`.
        levels: ``K`` used by the quantiser (power of two >= 2).
        num_subcarriers: ``L``; ``kept`` must have ``2L`` columns (real and imaginary parts).
    """
    K = check_levels(levels)
    L = num_subcarriers
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"num_subcarriers (L) = {L!r} is not allowed; it must be an integer >= 1")
    kk = np.asarray(kept)
    if kk.ndim != 2:
        raise ValueError(f"kept must have shape [n, 2L], got shape {kk.shape}")
    if kk.size == 0:
        raise ValueError(f"kept is empty (shape {kk.shape})")
    if kk.shape[1] != 2 * num_subcarriers:
        raise ValueError(
            f"kept has D = {kk.shape[1]} columns but num_subcarriers L = {num_subcarriers} "
            f"needs D = 2L = {2 * num_subcarriers} (real and imaginary part per subcarrier)"
        )
    kk = _as_kept(kk, kk.shape)
    bits_per_sample = kk.sum(axis=1) * (K.bit_length() - 1)
    return float(np.mean(bits_per_sample / num_subcarriers))
