"""NIST SP 800-22 rev1a statistical tests used for the key randomness of 002 (Table III).

The eight tests of 002 Table III, written from the test descriptions in NIST SP 800-22 rev1a
("A Statistical Test Suite for Random and Pseudorandom Number Generators for Cryptographic
Applications", Rukhin et al., 2010), Sections 2.1-2.13 and 3.1-3.13. Section numbers below refer to
that document ("SP 2.x"); the symbols (``S_n``, ``V_n``, ``psi^2_m``, ...) are the ones it uses.

=======================  ==================================  =============================================
function                 SP 800-22 section                   p-value(s)
=======================  ==================================  =============================================
``frequency``            2.1  Frequency (Monobit)            ``erfc(|S_n| / sqrt(2 n))``
``block_frequency``      2.2  Frequency within a Block       ``igamc(N/2, chi^2/2)``
``runs``                 2.3  Runs                           ``erfc(|V_n - 2n pi(1-pi)| / ...)``
``binary_matrix_rank``   2.5  Binary Matrix Rank             ``exp(-chi^2/2)``
``spectral``             2.6  Discrete Fourier Transform     ``erfc(|d| / sqrt 2)``
``serial``               2.11 Serial                         ``igamc(2^(m-2), .)``, ``igamc(2^(m-3), .)``
``approximate_entropy``  2.12 Approximate Entropy            ``igamc(2^(m-1), chi^2/2)``
``cumulative_sums``      2.13 Cumulative Sums                forward and backward
=======================  ==================================  =============================================

``igamc`` is the regularised upper incomplete gamma function Q(a, x) (``scipy.special.gammaincc``)
and ``erfc`` the complementary error function (``scipy.special.erfc``).

Every test takes a 1-D 0/1 array (anything ``np.asarray`` accepts: lists, bool/int/float arrays,
torch CPU tensors; :func:`bits_from_string` turns ``"0110 1..."`` into one) and returns a
:class:`NistResult`. A sequence passes at level ``alpha`` when every p-value is ``>= alpha``
(SP 4.2.1: "If the computed P-value is < 0.01, then conclude that the sequence is non-random").

Input sizes: where a sequence is shorter than the size SP 800-22 recommends (SP 2.x.7), the test is
still computed and ``NistResult.meets_recommendation`` is ``False``; the p-value then rests on an
asymptotic approximation used outside its range. Where the statistic cannot be formed at all
(fewer bits than one block, one matrix, or one pattern), a ``ValueError`` is raised.

Internally every test is vectorised over a batch of equal-length sequences ``[t, n]``; the public
functions call it with ``t = 1`` and :func:`nist_pass_ratios` with all 128-bit blocks at once.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.special import erfc, gammaincc, ndtr

__all__ = [
    "NistResult",
    "approximate_entropy",
    "binary_matrix_rank",
    "bits_from_string",
    "block_frequency",
    "cumulative_sums",
    "frequency",
    "longest_run_of_ones",
    "nist_pass_ratios",
    "nist_pass_ratios_003",
    "runs",
    "serial",
    "spectral",
    "TABLE_I_003_TESTS",
]

# Largest pattern length for the serial / approximate-entropy tests: the pattern counts are a
# table of 2^m integers per sequence. An implementation limit, far above any recommended m.
_MAX_PATTERN_BITS = 24


@dataclass(frozen=True)
class NistResult:
    """Outcome of one SP 800-22 test on one sequence.

    Attributes:
        name: test name (``"frequency"``, ``"serial"``, ...).
        p_values: the test's p-value(s): one for most tests; ``(p1, p2)`` for ``serial``
            (SP 2.11.4 (5)); ``(forward, backward)`` for ``cumulative_sums`` (SP 2.13.4 (1)).
        stats: intermediate values named as in SP 800-22 (``s_obs``, ``chi2``, ``V_n``, ``z``, ...),
            so a run can be compared step by step with the document's worked examples.
        n: number of bits tested.
        meets_recommendation: ``False`` when the input is below SP 800-22's recommended size
            (SP 2.x.7); the p-value is computed anyway.
    """

    name: str
    p_values: tuple[float, ...]
    stats: Mapping[str, float] = field(default_factory=dict)
    n: int = 0
    meets_recommendation: bool = True

    @property
    def p_value(self) -> float:
        """The p-value; for two-p-value tests the smaller one (it alone decides pass/fail)."""
        return min(self.p_values)

    def passed(self, alpha: float = 0.01) -> bool:
        """``True`` when every p-value is ``>= alpha`` (SP 4.2.1); alpha must lie in (0, 1)."""
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
            raise ValueError(f"alpha (significance level) must be a number in (0, 1), got {alpha!r}")
        return all(p >= alpha for p in self.p_values)


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def bits_from_string(s: str) -> np.ndarray:
    """``"0110 1011"`` -> ``array([0, 1, 1, 0, 1, 0, 1, 1], dtype=uint8)`` (whitespace ignored)."""
    if not isinstance(s, str):
        raise ValueError(f"bits_from_string: s must be a str of '0' and '1' characters, got {type(s).__name__} "
                         f"{s!r}")
    cleaned = "".join(s.split())
    bad = set(cleaned) - {"0", "1"}
    if bad:
        raise ValueError(f"bits_from_string: characters {sorted(bad)!r} found; only '0' and '1' are allowed")
    if not cleaned:
        raise ValueError("bits_from_string: empty string; need at least one '0' or '1'")
    return np.frombuffer(cleaned.encode("ascii"), dtype=np.uint8) - ord("0")


def _as_bits(bits, name: str = "bits") -> np.ndarray:
    """Validate a 1-D 0/1 sequence; return it as ``uint8``."""
    arr = np.asarray(bits)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D 0/1 array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; need at least one bit")
    return _check_binary(arr, name)


def _check_binary(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold the numbers 0 and 1, got dtype {arr.dtype}")
    ok = (arr == 0) | (arr == 1)
    if not np.all(ok):
        first = arr[~ok].flat[0].item()
        raise ValueError(f"{name} must be binary (only 0 and 1 allowed), found value {first!r}")
    return arr.astype(np.uint8)


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} = {value} is not allowed; it must be {allowed}")
    return value


def _pm1(b: np.ndarray) -> np.ndarray:
    """0/1 -> -1/+1 as float64 (SP 2.1.4 (1): X_i = 2 eps_i - 1)."""
    return 2.0 * b.astype(np.float64) - 1.0


# --------------------------------------------------------------------------------------------
# batched cores: b is [t, n] uint8, every row one sequence
# --------------------------------------------------------------------------------------------


def _frequency_core(b: np.ndarray) -> dict[str, np.ndarray]:
    n = b.shape[1]
    s_n = 2 * b.sum(axis=1, dtype=np.int64) - n  # SP 2.1.4 (1): S_n = sum(2 eps_i - 1)
    s_obs = np.abs(s_n) / math.sqrt(n)  # SP 2.1.4 (2)
    p = erfc(s_obs / math.sqrt(2.0))  # SP 2.1.4 (3)
    return {"S_n": s_n, "s_obs": s_obs, "p": p}


def _block_frequency_core(b: np.ndarray, M: int) -> dict[str, np.ndarray]:
    n = b.shape[1]
    N = n // M  # SP 2.2.4 (1): N = floor(n/M) blocks, the rest is discarded
    pi = b[:, : N * M].reshape(b.shape[0], N, M).mean(axis=2)  # SP 2.2.4 (2)
    chi2 = 4.0 * M * np.sum((pi - 0.5) ** 2, axis=1)  # SP 2.2.4 (3)
    p = gammaincc(N / 2.0, chi2 / 2.0)  # SP 2.2.4 (4)
    return {"N": np.full(b.shape[0], N), "chi2": chi2, "p": p}


def _runs_core(b: np.ndarray) -> dict[str, np.ndarray]:
    n = b.shape[1]
    pi = b.mean(axis=1)  # SP 2.3.4 (1)
    tau = 2.0 / math.sqrt(n)  # SP 2.3.4 (2): frequency pre-test
    prereq_ok = np.abs(pi - 0.5) < tau
    v_n = 1 + np.count_nonzero(b[:, 1:] != b[:, :-1], axis=1)  # SP 2.3.4 (3)
    q = pi * (1.0 - pi)
    # pi in {0, 1} (a constant sequence, only possible past the pre-test when n < 16) makes the
    # denominator zero; it is as non-random as a sequence gets, so it is scored like a failed
    # pre-test (p = 0), which is what SP 2.3.4 (2) does for every n >= 16.
    valid = prereq_ok & (q > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = erfc(np.abs(v_n - 2.0 * n * q) / (2.0 * math.sqrt(2.0 * n) * q))  # SP 2.3.4 (4)
    p = np.where(valid, p, 0.0)
    return {"pi": pi, "tau": np.full(b.shape[0], tau), "V_n": v_n, "prerequisite_passed": valid, "p": p}


def _rank_probabilities(M: int, Q: int) -> tuple[float, float, float]:
    """P(rank = m), P(rank = m - 1), P(rank <= m - 2) of a random M x Q GF(2) matrix, m = min(M, Q).

    SP 3.5: p_r = 2^(r(Q+M-r) - MQ) prod_{i=0}^{r-1} (1 - 2^(i-Q)) (1 - 2^(i-M)) / (1 - 2^(i-r)).
    For M = Q = 32 these are the SP 2.5.4 (4) constants 0.2888, 0.5776, 0.1336.
    """

    def p_r(r: int) -> float:
        log2p = r * (Q + M - r) - M * Q
        prod = 1.0
        for i in range(r):
            prod *= (1.0 - 2.0 ** (i - Q)) * (1.0 - 2.0 ** (i - M)) / (1.0 - 2.0 ** (i - r))
        return 2.0**log2p * prod

    m = min(M, Q)
    p_full = p_r(m)
    p_minus1 = p_r(m - 1) if m >= 1 else 0.0
    return p_full, p_minus1, 1.0 - p_full - p_minus1


def _gf2_rank(mats: np.ndarray) -> np.ndarray:
    """Rank over GF(2) of a batch of 0/1 matrices ``[N, M, Q]`` (Q <= 63) -> ``[N]`` int64.

    Rows are packed into integers; Gauss-Jordan elimination runs column by column on all matrices
    at once (SP Appendix F.1 describes the same elimination for one matrix).
    """
    N, M, Q = mats.shape
    weights = np.left_shift(np.uint64(1), np.arange(Q - 1, -1, -1, dtype=np.uint64))
    rows = (mats.astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)  # [N, M]
    rank = np.zeros(N, dtype=np.int64)
    row_ids = np.arange(M)
    all_n = np.arange(N)
    for col in range(Q):
        bit = weights[col]
        has = (rows & bit) != 0
        candidates = has & (row_ids[None, :] >= rank[:, None])
        found = candidates.any(axis=1)
        piv = np.argmax(candidates, axis=1)
        idx = all_n[found]
        if idx.size == 0:
            continue
        target = rank[idx]
        # swap the pivot row into position `rank`
        piv_rows = rows[idx, piv[idx]].copy()
        rows[idx, piv[idx]] = rows[idx, target]
        rows[idx, target] = piv_rows
        # clear the column in every other row of the matrices that found a pivot
        sub = rows[idx]
        clear = ((sub & bit) != 0) & (row_ids[None, :] != target[:, None])
        sub ^= np.where(clear, piv_rows[:, None], np.uint64(0))
        rows[idx] = sub
        rank[idx] += 1
    return rank


def _rank_core(b: np.ndarray, M: int, Q: int) -> dict[str, np.ndarray]:
    t, n = b.shape
    N = n // (M * Q)  # SP 2.5.4 (1); the rest is discarded
    mats = b[:, : N * M * Q].reshape(t * N, M, Q)  # row-wise filling, SP 2.5.4 (1)
    ranks = _gf2_rank(mats).reshape(t, N)
    m = min(M, Q)
    f_m = np.count_nonzero(ranks == m, axis=1)  # SP 2.5.4 (3)
    f_m1 = np.count_nonzero(ranks == m - 1, axis=1)
    rest = N - f_m - f_m1
    p_full, p_m1, p_rest = _rank_probabilities(M, Q)
    chi2 = (
        (f_m - p_full * N) ** 2 / (p_full * N)
        + (f_m1 - p_m1 * N) ** 2 / (p_m1 * N)
        + (rest - p_rest * N) ** 2 / (p_rest * N)
    )  # SP 2.5.4 (4)
    p = np.exp(-chi2 / 2.0)  # SP 2.5.4 (5): igamc(1, chi2/2)
    return {"N": np.full(t, N), "F_M": f_m, "F_M-1": f_m1, "N-F_M-F_M-1": rest, "chi2": chi2, "p": p}


def _spectral_core(b: np.ndarray) -> dict[str, np.ndarray]:
    n = b.shape[1]
    x = _pm1(b)  # SP 2.6.4 (1)
    mod = np.abs(np.fft.fft(x, axis=1))[:, : n // 2]  # SP 2.6.4 (2)-(3): |S'| for j = 0 .. n/2 - 1
    T = math.sqrt(math.log(1.0 / 0.05) * n)  # SP 2.6.4 (4): 95 % peak height threshold
    N0 = 0.95 * n / 2.0  # SP 2.6.4 (5)
    N1 = np.count_nonzero(mod < T, axis=1)  # SP 2.6.4 (6)
    d = (N1 - N0) / math.sqrt(n * 0.95 * 0.05 / 4.0)  # SP 2.6.4 (7)
    p = erfc(np.abs(d) / math.sqrt(2.0))  # SP 2.6.4 (8)
    return {"T": np.full(b.shape[0], T), "N_0": np.full(b.shape[0], N0), "N_1": N1, "d": d, "p": p}


def _pattern_counts(b: np.ndarray, m: int) -> np.ndarray:
    """Counts of the 2^m overlapping m-bit patterns of each row, wrapping around (SP 2.11.4 (1)).

    Returns ``[t, 2^m]`` int64; ``m = 0`` gives ``[t, 1]`` holding ``n``.
    """
    t, n = b.shape
    if m == 0:
        return np.full((t, 1), n, dtype=np.int64)
    aug = np.concatenate([b, b[:, : m - 1]], axis=1).astype(np.int64)  # append first m-1 bits
    vals = np.zeros((t, n), dtype=np.int64)
    for j in range(m):
        vals = (vals << 1) | aug[:, j : j + n]
    offsets = (np.arange(t, dtype=np.int64) << m)[:, None]
    return np.bincount((vals + offsets).ravel(), minlength=t << m).reshape(t, 1 << m)


def _psi2(b: np.ndarray, m: int) -> np.ndarray:
    """SP 2.11.4 (2): psi^2_m = 2^m / n * sum(nu^2) - n, with psi^2_0 = psi^2_-1 = 0."""
    n = b.shape[1]
    if m <= 0:
        return np.zeros(b.shape[0])
    counts = _pattern_counts(b, m)
    return (2.0**m / n) * np.sum(counts * counts, axis=1) - n


def _serial_core(b: np.ndarray, m: int) -> dict[str, np.ndarray]:
    psi_m, psi_m1, psi_m2 = _psi2(b, m), _psi2(b, m - 1), _psi2(b, m - 2)
    d1 = psi_m - psi_m1  # SP 2.11.4 (3): del psi^2_m
    d2 = psi_m - 2.0 * psi_m1 + psi_m2  # SP 2.11.4 (3): del^2 psi^2_m
    p1 = gammaincc(2.0 ** (m - 2), d1 / 2.0)  # SP 2.11.4 (4)
    p2 = gammaincc(2.0 ** (m - 3), d2 / 2.0)
    return {
        "psi2_m": psi_m,
        "psi2_m-1": psi_m1,
        "psi2_m-2": psi_m2,
        "del_psi2": d1,
        "del2_psi2": d2,
        "p1": p1,
        "p2": p2,
    }


def _phi(b: np.ndarray, m: int) -> np.ndarray:
    """SP 2.12.4 (4)-(5): phi^(m) = sum_i C_i^m ln C_i^m over the wrapped m-bit patterns."""
    n = b.shape[1]
    c = _pattern_counts(b, m) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(c > 0, c * np.log(np.where(c > 0, c, 1.0)), 0.0)
    return terms.sum(axis=1)


def _apen_core(b: np.ndarray, m: int) -> dict[str, np.ndarray]:
    n = b.shape[1]
    apen = _phi(b, m) - _phi(b, m + 1)  # SP 2.12.4 (6)
    chi2 = 2.0 * n * (math.log(2.0) - apen)  # SP 2.12.4 (6)
    p = gammaincc(2.0 ** (m - 1), chi2 / 2.0)  # SP 2.12.4 (7)
    return {"ApEn": apen, "chi2": chi2, "p": p}


def _trunc_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero), as in the NIST reference code."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _cusum_p_single(z: int, n: int) -> float:
    """SP 2.13.4 (4) for one maximal excursion ``z`` of a walk of ``n`` steps.

    The summation limits (-n/z + 1)/4 ... (n/z - 1)/4 and (-n/z - 3)/4 ... are evaluated with C
    integer division, as in the NIST reference implementation whose output is the document's worked
    examples (with real-valued floors the 2.13.4 example would give 0.41158 instead of 0.4116588).
    """
    sq = math.sqrt(n)
    nz = n // z
    k1 = np.arange(_trunc_div(-nz + 1, 4), _trunc_div(nz - 1, 4) + 1)
    k2 = np.arange(_trunc_div(-nz - 3, 4), _trunc_div(nz - 1, 4) + 1)
    s1 = np.sum(ndtr((4 * k1 + 1) * z / sq) - ndtr((4 * k1 - 1) * z / sq))
    s2 = np.sum(ndtr((4 * k2 + 3) * z / sq) - ndtr((4 * k2 + 1) * z / sq))
    return float(min(1.0, max(0.0, 1.0 - s1 + s2)))


def _cusum_core(b: np.ndarray) -> dict[str, np.ndarray]:
    n = b.shape[1]
    x = _pm1(b)
    z_fwd = np.max(np.abs(np.cumsum(x, axis=1)), axis=1).astype(np.int64)  # SP 2.13.4 (2)-(3), mode 0
    z_bwd = np.max(np.abs(np.cumsum(x[:, ::-1], axis=1)), axis=1).astype(np.int64)  # mode 1
    cache = {int(z): _cusum_p_single(int(z), n) for z in np.unique(np.concatenate([z_fwd, z_bwd]))}
    p_fwd = np.array([cache[int(z)] for z in z_fwd])
    p_bwd = np.array([cache[int(z)] for z in z_bwd])
    return {"z_forward": z_fwd, "z_backward": z_bwd, "p_forward": p_fwd, "p_backward": p_bwd}


def _stats0(core: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> dict[str, float]:
    """Row 0 of a batched core result as plain Python numbers."""
    out: dict[str, float] = {}
    for k, v in core.items():
        if k in skip:
            continue
        x = v[0]
        if isinstance(x, np.bool_):
            out[k] = bool(x)
        else:
            out[k] = int(x) if np.issubdtype(type(x), np.integer) else float(x)
    return out


# --------------------------------------------------------------------------------------------
# public single-sequence tests
# --------------------------------------------------------------------------------------------


def frequency(bits) -> NistResult:
    """Frequency (monobit) test, SP 2.1: is the fraction of ones close to 1/2?

    ``S_n = sum(2 eps_i - 1)``, ``s_obs = |S_n| / sqrt(n)``, ``p = erfc(s_obs / sqrt 2)`` (SP 2.1.4).

    Args:
        bits: ``[n]`` 0/1, ``n >= 1``. Recommended ``n >= 100`` (SP 2.1.7).
    """
    b = _as_bits(bits)[None, :]
    core = _frequency_core(b)
    n = b.shape[1]
    return NistResult("frequency", (float(core["p"][0]),), _stats0(core, ("p",)), n, n >= 100)


def block_frequency(bits, block_size: int = 128) -> NistResult:
    """Frequency test within a block, SP 2.2.

    ``N = floor(n/M)`` blocks of ``M`` bits (the tail is discarded), ``pi_i`` = fraction of ones in
    block i, ``chi^2 = 4M sum (pi_i - 1/2)^2``, ``p = igamc(N/2, chi^2/2)`` (SP 2.2.4).

    Args:
        bits: ``[n]`` 0/1 with ``n >= block_size`` (otherwise there is no block: ValueError).
        block_size: ``M >= 1``; 128 is the NIST reference code's default. Recommended (SP 2.2.7):
            ``n >= 100``, ``M >= 20``, ``M > 0.01 n`` and ``N < 100``.
    """
    b = _as_bits(bits)[None, :]
    n = b.shape[1]
    M = _check_int(block_size, "block_size", 1)
    if n < M:
        raise ValueError(f"block_frequency: n = {n} bits is fewer than one block of block_size = {M} bits")
    core = _block_frequency_core(b, M)
    N = n // M
    ok = n >= 100 and M >= 20 and M > 0.01 * n and N < 100
    return NistResult("block_frequency", (float(core["p"][0]),), _stats0(core, ("p",)), n, ok)


def runs(bits) -> NistResult:
    """Runs test, SP 2.3: is the number of runs ``V_n`` what a random sequence gives?

    Pre-test (SP 2.3.4 (2)): if ``|pi - 1/2| >= tau = 2/sqrt(n)`` the test is not run and
    ``p = 0`` (``stats["prerequisite_passed"]`` is then ``False``); otherwise
    ``p = erfc(|V_n - 2n pi (1-pi)| / (2 sqrt(2n) pi (1-pi)))`` (SP 2.3.4 (4)).
    A constant sequence (``pi`` in {0, 1}; past the pre-test only when ``n < 16``) also gets ``p = 0``.

    Args:
        bits: ``[n]`` 0/1, ``n >= 1``. Recommended ``n >= 100`` (SP 2.3.7).
    """
    b = _as_bits(bits)[None, :]
    core = _runs_core(b)
    n = b.shape[1]
    return NistResult("runs", (float(core["p"][0]),), _stats0(core, ("p",)), n, n >= 100)


def binary_matrix_rank(bits, rows: int = 32, cols: int = 32) -> NistResult:
    """Binary matrix rank test, SP 2.5.

    The sequence fills ``N = floor(n / (M Q))`` matrices of ``M = rows`` by ``Q = cols`` bits row by
    row (the tail is discarded); ``F_M``, ``F_{M-1}`` count the matrices of full rank and of rank one
    less over GF(2); ``chi^2 = sum (F - p N)^2 / (p N)`` over the three classes and
    ``p = exp(-chi^2/2)`` (SP 2.5.4). The class probabilities are the exact ones for ``M x Q``
    matrices (SP 3.5); for 32 x 32 they are SP 2.5.4's 0.2888, 0.5776, 0.1336.

    Note: the short example of SP 2.5.4 (3 x 3 matrices) plugs the 32 x 32 probabilities into its
    chi^2 (0.596953); this function uses the 3 x 3 probabilities there, so only its rank counts agree
    with that example.

    Args:
        bits: ``[n]`` 0/1 with ``n >= rows * cols`` (at least one matrix, otherwise ValueError).
            Recommended (SP 2.5.7): ``n >= 38 M Q`` (38,912 bits for 32 x 32).
        rows, cols: matrix size, ``1..63`` each; NIST uses 32 x 32.
    """
    b = _as_bits(bits)[None, :]
    n = b.shape[1]
    M = _check_int(rows, "rows", 1, 63)
    Q = _check_int(cols, "cols", 1, 63)
    if min(M, Q) < 2:
        raise ValueError(
            f"binary_matrix_rank: rows = {M}, cols = {Q}; need min(rows, cols) >= 2 "
            "so that the three rank classes (m, m-1, <= m-2) exist"
        )
    if n < M * Q:
        raise ValueError(f"binary_matrix_rank: n = {n} bits is fewer than one {M}x{Q} matrix ({M * Q} bits)")
    core = _rank_core(b, M, Q)
    return NistResult("binary_matrix_rank", (float(core["p"][0]),), _stats0(core, ("p",)), n, n >= 38 * M * Q)


def spectral(bits) -> NistResult:
    """Discrete Fourier transform (spectral) test, SP 2.6 (rev1a form).

    ``X = 2 eps - 1``, ``S = DFT(X)``, moduli of ``S_0 .. S_{n/2-1}``; ``T = sqrt(ln(1/0.05) n)``;
    ``N_0 = 0.95 n / 2`` expected and ``N_1`` observed moduli below ``T``;
    ``d = (N_1 - N_0) / sqrt(n 0.95 0.05 / 4)``, ``p = erfc(|d| / sqrt 2)`` (SP 2.6.4).

    Args:
        bits: ``[n]`` 0/1, ``n >= 2``. Recommended ``n >= 1000`` (SP 2.6.7).
    """
    b = _as_bits(bits)[None, :]
    n = b.shape[1]
    if n < 2:
        raise ValueError(f"spectral: n = {n}; need n >= 2 bits so that there is at least one DFT modulus")
    core = _spectral_core(b)
    return NistResult("spectral", (float(core["p"][0]),), _stats0(core, ("p",)), n, n >= 1000)


def serial(bits, m: int = 16) -> NistResult:
    """Serial test, SP 2.11: are all overlapping m-bit patterns equally frequent?

    ``psi^2_m = 2^m/n sum nu^2 - n`` over the ``2^m`` wrapped patterns (SP 2.11.4 (2)),
    ``del psi^2_m = psi^2_m - psi^2_{m-1}``, ``del^2 psi^2_m = psi^2_m - 2 psi^2_{m-1} + psi^2_{m-2}``,
    ``p1 = igamc(2^(m-2), del psi^2_m / 2)``, ``p2 = igamc(2^(m-3), del^2 psi^2_m / 2)`` (SP 2.11.4).
    Both p-values are returned; the sequence passes when both pass (002 Sec. VII-C says the same).

    Args:
        bits: ``[n]`` 0/1 with ``n >= m``.
        m: pattern length, ``2 <= m <= min(n, 24)`` (16 is the NIST reference code's default).
            Recommended (SP 2.11.7): ``m < floor(log2 n) - 2``.
    """
    b = _as_bits(bits)[None, :]
    n = b.shape[1]
    m = _check_int(m, "m", 2, min(n, _MAX_PATTERN_BITS))
    core = _serial_core(b, m)
    ok = m < math.floor(math.log2(n)) - 2
    return NistResult("serial", (float(core["p1"][0]), float(core["p2"][0])), _stats0(core, ("p1", "p2")), n, ok)


def approximate_entropy(bits, m: int = 10) -> NistResult:
    """Approximate entropy test, SP 2.12: frequency of m-bit versus (m+1)-bit wrapped patterns.

    ``phi^(m) = sum C_i ln C_i`` (SP 2.12.4 (4)-(5)), ``ApEn(m) = phi^(m) - phi^(m+1)``,
    ``chi^2 = 2n (ln 2 - ApEn(m))``, ``p = igamc(2^(m-1), chi^2/2)`` (SP 2.12.4 (6)-(7)).

    Args:
        bits: ``[n]`` 0/1 with ``n > m``.
        m: block length, ``1 <= m <= min(n - 1, 23)`` (10 is the NIST reference code's default).
            Recommended (SP 2.12.7): ``m < floor(log2 n) - 5``.
    """
    b = _as_bits(bits)[None, :]
    n = b.shape[1]
    if n < 2:
        raise ValueError(f"approximate_entropy: n = {n}; need n >= 2 bits (m >= 1 and m + 1 <= n)")
    m = _check_int(m, "m", 1, min(n - 1, _MAX_PATTERN_BITS - 1))
    core = _apen_core(b, m)
    ok = m < math.floor(math.log2(n)) - 5
    return NistResult("approximate_entropy", (float(core["p"][0]),), _stats0(core, ("p",)), n, ok)


def cumulative_sums(bits) -> NistResult:
    """Cumulative sums (cusum) test, SP 2.13, in both modes.

    ``z = max_k |S_k|`` of the random walk ``S_k = sum_{i<=k} (2 eps_i - 1)``, forward (mode 0) and
    over the reversed sequence (mode 1);
    ``p = 1 - sum_k [Phi((4k+1)z/sqrt n) - Phi((4k-1)z/sqrt n)]
    + sum_k [Phi((4k+3)z/sqrt n) - Phi((4k+1)z/sqrt n)]`` (SP 2.13.4 (4)).

    Returns ``p_values = (forward, backward)``; the sequence passes when both pass.

    Args:
        bits: ``[n]`` 0/1, ``n >= 1``. Recommended ``n >= 100`` (SP 2.13.7).
    """
    b = _as_bits(bits)[None, :]
    core = _cusum_core(b)
    n = b.shape[1]
    return NistResult(
        "cumulative_sums",
        (float(core["p_forward"][0]), float(core["p_backward"][0])),
        _stats0(core, ("p_forward", "p_backward")),
        n,
        n >= 100,
    )


# --------------------------------------------------------------------------------------------
# 002 Table III protocol
# --------------------------------------------------------------------------------------------

TABLE_III_TESTS = (
    "approximate_entropy",
    "block_frequency",
    "cumulative_sums",
    "dft",
    "frequency",
    "rank",
    "runs",
    "serial",
)


def nist_pass_ratios(
    keys,
    alpha: float = 0.01,
    block_bits: int = 128,
    *,
    block_frequency_m: int = 32,
    serial_m: int = 4,
    approximate_entropy_m: int = 1,
    rank_group_bits: int = 38 * 1024,
) -> dict[str, float]:
    """Pass ratio of each 002 Table III test, following 002 Sec. VII-C.

    002: the keys are too short for NIST, so they are spliced into one stream and cut into
    ``t`` blocks of 128 bits; each test is run on every block and the pass ratio is
    (blocks passed) / t, a block passing when its p-value is ``>= alpha`` (serial: both p-values).

    Protocol and the choices 002 leaves open:

    * Keys are concatenated in order; the last ``len(stream) % block_bits`` bits are dropped.
    * Frequency, runs, cusum (both modes must pass, as 002 says for serial), DFT, block frequency,
      serial and approximate entropy run on each ``block_bits`` block. With 128-bit blocks the DFT
      is below its recommended ``n >= 1000`` (computed anyway); the pattern parameters are the
      largest SP 800-22 recommends for ``n = 128``: serial ``m = 4`` (``m < log2 n - 2``),
      approximate entropy ``m = 1`` (``m < log2 n - 5``), block frequency ``M = 32``
      (``M >= 20``, ``M > 0.01 n``).
    * The rank test is not defined on a 128-bit block (a 32 x 32 matrix needs 1024 bits), and on a
      single matrix it cannot fail: with ``N = 1`` the smallest possible p-value is
      ``exp(-6.485/2) = 0.039 > 0.01``. It therefore runs on consecutive groups of
      ``rank_group_bits`` bits of the same block stream (default 38 matrices = 38,912 bits = 304
      blocks, the SP 2.5.7 minimum), and its ratio is over those groups; if the stream is shorter
      than one group but holds at least one matrix, one test on all whole matrices is run (below the
      recommendation); with fewer than 1024 bits the ratio is ``nan``.

    Args:
        keys: a sequence of 1-D 0/1 arrays (e.g. :func:`keygen.quantize.key_bits`; empty keys are
            allowed), or one 1-D 0/1 array (already a stream).
        alpha: significance level in (0, 1).
        block_bits: block length (002: 128); at least 2.

    Returns:
        ``{test: pass ratio}`` for the eight tests, keys in 002 Table III order:
        ``approximate_entropy, block_frequency, cumulative_sums, dft, frequency, rank, runs, serial``.
    """
    if not (isinstance(alpha, numbers.Real) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha = {alpha!r} is not allowed; it must be in (0, 1)")
    alpha = float(alpha)
    block_bits = _check_int(block_bits, "block_bits", 2)
    stream = _concat_keys(keys)
    t = stream.size // block_bits
    if t == 0:
        raise ValueError(
            f"nist_pass_ratios: the keys hold {stream.size} bits, fewer than one block of block_bits = {block_bits}"
        )
    M = _check_int(block_frequency_m, "block_frequency_m", 1, block_bits)
    sm = _check_int(serial_m, "serial_m", 2, min(block_bits, _MAX_PATTERN_BITS))
    am = _check_int(approximate_entropy_m, "approximate_entropy_m", 1, min(block_bits - 1, _MAX_PATTERN_BITS - 1))
    rank_group_bits = _check_int(rank_group_bits, "rank_group_bits", 1024)

    blocks = stream[: t * block_bits].reshape(t, block_bits)

    def ratio(passed: np.ndarray) -> float:
        return float(np.mean(passed))

    serial_core = _serial_core(blocks, sm)
    cusum = _cusum_core(blocks)
    out = {
        "approximate_entropy": ratio(_apen_core(blocks, am)["p"] >= alpha),
        "block_frequency": ratio(_block_frequency_core(blocks, M)["p"] >= alpha),
        "cumulative_sums": ratio((cusum["p_forward"] >= alpha) & (cusum["p_backward"] >= alpha)),
        "dft": ratio(_spectral_core(blocks)["p"] >= alpha),
        "frequency": ratio(_frequency_core(blocks)["p"] >= alpha),
        "rank": float("nan"),
        "runs": ratio(_runs_core(blocks)["p"] >= alpha),
        "serial": ratio((serial_core["p1"] >= alpha) & (serial_core["p2"] >= alpha)),
    }
    used = blocks.ravel()
    groups = used.size // rank_group_bits
    if groups >= 1:
        g = used[: groups * rank_group_bits].reshape(groups, rank_group_bits)
        out["rank"] = ratio(_rank_core(g, 32, 32)["p"] >= alpha)
    elif used.size >= 1024:
        out["rank"] = ratio(_rank_core(used[None, :], 32, 32)["p"] >= alpha)
    return out


def _concat_keys(keys) -> np.ndarray:
    """Splice keys into one 0/1 stream: a list/tuple of 1-D keys, a 2-D array (rows), or one 1-D stream."""
    if isinstance(keys, (str, bytes)):
        raise ValueError("keys must be 0/1 arrays, got a string (use bits_from_string)")
    if isinstance(keys, (list, tuple)):
        if keys and all(np.ndim(k) == 0 for k in keys):  # a plain list of bits
            return _as_bits(keys, "keys")
        items = list(keys)
    elif isinstance(keys, Iterable) and not hasattr(keys, "__array__") and not hasattr(keys, "shape"):
        items = list(keys)  # a generator of keys
    else:
        arr = np.asarray(keys)
        if arr.ndim == 1:
            return _as_bits(arr, "keys")
        if arr.ndim != 2:
            raise ValueError(f"keys must be 1-D (one stream) or 2-D (one key per row), got shape {arr.shape}")
        items = list(arr)
    parts = []
    for i, k in enumerate(items):
        arr = np.asarray(k)
        if arr.ndim != 1:
            raise ValueError(f"keys[{i}] must be a 1-D 0/1 array, got shape {arr.shape}")
        if arr.size:
            parts.append(_check_binary(arr, f"keys[{i}]"))
    if not parts:
        raise ValueError("keys hold no bits; need at least one block of key bits")
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------
# SP 2.4 Longest Run of Ones in a Block: the ninth test of 003 Table I
# --------------------------------------------------------------------------------------------

# SP 2.4.4 / 3.4: class probabilities pi_i of the longest run of ones in an M-bit block, and the classes'
# bounds, for the three block sizes of SP 2.4.2 (K + 1 classes; the first and last are open-ended).
_LONGEST_RUN_TABLE = {
    8: {"K": 3, "low": 1, "pi": (0.2148, 0.3672, 0.2305, 0.1875)},
    128: {"K": 5, "low": 4, "pi": (0.1174, 0.2430, 0.2493, 0.1752, 0.1027, 0.1124)},
    10000: {"K": 6, "low": 10, "pi": (0.0882, 0.2092, 0.2483, 0.1933, 0.1208, 0.0675, 0.0727)},
}


def _longest_run_block_size(n: int) -> int:
    """SP 2.4.2: M = 8 for 128 <= n < 6272, M = 128 for 6272 <= n < 750,000, else M = 10^4."""
    if n < 128:
        raise ValueError(f"longest_run_of_ones: n = {n} bits; SP 2.4.7 needs n >= 128")
    return 8 if n < 6272 else 128 if n < 750_000 else 10_000


def _longest_run_core(b: np.ndarray, M: int) -> dict[str, np.ndarray]:
    t, n = b.shape
    tab = _LONGEST_RUN_TABLE[M]
    K, low, pi = tab["K"], tab["low"], np.asarray(tab["pi"])
    N = n // M  # SP 2.4.4 (1): N blocks, the rest discarded
    blocks = b[:, : N * M].reshape(t, N, M).astype(np.int64)
    # longest run of ones in each block: run length ending at j, max over j
    run = np.zeros((t, N), dtype=np.int64)
    longest = np.zeros((t, N), dtype=np.int64)
    for j in range(M):
        run = (run + 1) * blocks[:, :, j]
        longest = np.maximum(longest, run)
    cls = np.clip(longest - low, 0, K)  # class 0: <= low, ..., class K: >= low + K
    nu = np.stack([np.count_nonzero(cls == i, axis=1) for i in range(K + 1)], axis=1)  # SP 2.4.4 (2)
    chi2 = np.sum((nu - N * pi) ** 2 / (N * pi), axis=1)  # SP 2.4.4 (3)
    p = gammaincc(K / 2.0, chi2 / 2.0)  # SP 2.4.4 (4)
    out = {"N": np.full(t, N), "chi2": chi2, "p": p}
    for i in range(K + 1):
        out[f"nu_{i}"] = nu[:, i]
    return out


def longest_run_of_ones(bits) -> NistResult:
    """Longest run of ones in a block, SP 2.4 (the test 003 Table I adds to 002's eight).

    Blocks of M bits (M = 8, 128 or 10^4 by ``n``, SP 2.4.2), the longest run of ones in each block is
    tallied into K + 1 classes ``nu_i``, ``chi^2 = sum (nu_i - N pi_i)^2 / (N pi_i)`` with the SP 2.4.4
    class probabilities, ``p = igamc(K/2, chi^2/2)``.

    Args:
        bits: ``[n]`` 0/1 with ``n >= 128`` (SP 2.4.7; otherwise ValueError).
    """
    b = _as_bits(bits)[None, :]
    n = b.shape[1]
    M = _longest_run_block_size(n)
    core = _longest_run_core(b, M)
    return NistResult("longest_run_of_ones", (float(core["p"][0]),), {"M": M, **_stats0(core, ("p",))}, n, True)


#: 003 Table I runs nine tests: 002 Table III's eight plus the longest run of ones.
TABLE_I_003_TESTS = TABLE_III_TESTS + ("longest_run_of_ones",)


def nist_pass_ratios_003(keys, alpha: float = 0.01, block_bits: int = 256, **kwargs) -> dict[str, float]:
    """Pass ratios of the nine tests of 003 Table I on ``block_bits``-bit blocks of the spliced keys (003:
    256-bit initial keys, one block per key): :func:`nist_pass_ratios` (same protocol and parameters, see
    there) plus :func:`longest_run_of_ones` on every block (M = 8 for blocks of 128..6271 bits)."""
    out = nist_pass_ratios(keys, alpha, block_bits, **kwargs)
    stream = _concat_keys(keys)
    block_bits = _check_int(block_bits, "block_bits", 128)
    t = stream.size // block_bits
    blocks = stream[: t * block_bits].reshape(t, block_bits)
    core = _longest_run_core(blocks, _longest_run_block_size(block_bits))
    out["longest_run_of_ones"] = float(np.mean(core["p"] >= float(alpha)))
    return out
