"""Entropy budget of a key-generation system: how many bits privacy amplification may keep.

The leftover hash lemma (:mod:`keygen.privacy`) needs a lower bound on ``H_min(X_A | E)``, the
min-entropy of Alice's reconciled string given Eve's side information. The pipeline estimates it per
key bit, on a *calibration* simulation independent of the run, as

    h_secret = h_min(X_A) - i_E,

* ``h_min(X_A)``: the most-common-value (MCV) min-entropy estimate of NIST SP 800-90B Sec. 6.3.1 on
  ``width``-bit symbols of Alice's initial-key stream (the 99 % upper confidence bound of the most
  likely symbol's probability, ``p_u = min(1, p_hat + 2.576 sqrt(p_hat (1 - p_hat) / (N - 1)))``,
  ``h = -log2(p_u) / width`` per bit). Grouping ``width`` consecutive bits lets the estimate see
  correlation inside a symbol (neighbouring subcarriers, bits of one level index); correlation
  longer than ``width`` bits is not seen, so ``width`` should cover it.
* ``i_E``: what Eve's observation tells about a key bit. Where the system has a closed form for the
  mutual information between Alice's and Eve's observations (IRS, 001 Theorem 1: ``I(y_a; y_e)``),
  the data-processing inequality gives ``I(X_A; Y_E) <= I(y_a; y_e)`` per probe, divided by the key
  bits per probe. Otherwise a plug-in estimate of ``I(X_A; X_E)`` per bit from Alice's and Eve's
  quantised symbols, plus three standard errors (batch means), is used: an estimate, not a bound.

This is Shannon information for ``i_E`` (an asymptotic, i.i.d.-probe argument), and SP 800-90B MCV is
a heuristic estimator; the budget is defended, not proven. The SKR closed forms are reported next to
it as the upper bound no quantised key can beat.

numpy only.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EntropyBudget",
    "MCVEstimate",
    "bits_to_symbols",
    "mcv_min_entropy",
    "plugin_mutual_information",
]

Z_99 = 2.576  # SP 800-90B Sec. 6.3.1: the 99 % upper bound uses Z_(1 - 0.005) = 2.576


@dataclass(frozen=True)
class MCVEstimate:
    """SP 800-90B most-common-value estimate.

    Attributes:
        n: number of symbols; width: bits per symbol; p_hat: frequency of the most common symbol;
        p_upper: its 99 % upper confidence bound; h_symbol: ``-log2 p_upper`` bits per symbol;
        h_bit: ``h_symbol / width`` bits per bit.
    """

    n: int
    width: int
    p_hat: float
    p_upper: float
    h_symbol: float
    h_bit: float


def _as_symbols(values, name: str) -> np.ndarray:
    """A 1-D array of finite integer symbols (integer, bool or whole-valued float dtype) as ``int64``."""
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged lists and other objects numpy cannot turn into an array
        raise ValueError(f"{name} must be a 1-D array of integer symbols, got {type(values).__name__}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer symbols, got shape {arr.shape}")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must hold integer symbols, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr) | (arr != np.round(arr))
    if np.any(bad):
        raise ValueError(f"{name} must hold finite integer symbols, found {arr[bad].flat[0].item()!r}")
    return arr.astype(np.int64)


def bits_to_symbols(bits, width: int) -> np.ndarray:
    """Cut a 0/1 stream into ``width``-bit symbols (MSB first); the tail shorter than ``width`` is dropped."""
    b = np.asarray(bits).reshape(-1)
    if b.size and not np.all((b == 0) | (b == 1)):
        raise ValueError("bits must be binary (only 0 and 1 allowed)")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= 30:
        raise ValueError(f"width = {width!r} is not allowed; it must be an integer in [1, 30]")
    t = b.size // width
    if t == 0:
        raise ValueError(f"{b.size} bits are fewer than one symbol of width {width}")
    w = 1 << np.arange(width - 1, -1, -1, dtype=np.int64)
    return b[: t * width].reshape(t, width).astype(np.int64) @ w


def mcv_min_entropy(symbols, width: int = 1) -> MCVEstimate:
    """Most-common-value min-entropy estimate, NIST SP 800-90B Sec. 6.3.1.

    Args:
        symbols: 1-D integer symbols in ``0 .. 2^width - 1`` (e.g. :func:`bits_to_symbols`), at least 2.
        width: bits per symbol, an integer ``>= 1`` (sets the symbol range and the per-bit value).
    """
    if isinstance(width, (bool, np.bool_)) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"width = {width!r} is not allowed; it must be an integer >= 1 (bits per symbol)")
    s = _as_symbols(symbols, "symbols")
    top = 2 ** int(width) - 1 if width < 63 else np.iinfo(np.int64).max  # int64 symbols cannot exceed 2^63 - 1
    out = (s < 0) | (s > top)
    if np.any(out):
        raise ValueError(f"symbols holds {int(s[out][0])}, outside the range 0 .. 2^width - 1 = {2 ** int(width) - 1} "
                         f"for width = {int(width)}")
    if s.size < 2:
        raise ValueError(f"MCV needs at least 2 symbols, got {s.size}")
    _, counts = np.unique(s, return_counts=True)
    n = s.size
    p_hat = counts.max() / n
    p_u = min(1.0, p_hat + Z_99 * math.sqrt(p_hat * (1.0 - p_hat) / (n - 1)))
    h = -math.log2(p_u)
    return MCVEstimate(int(n), int(width), float(p_hat), float(p_u), float(h), float(h / width))


def plugin_mutual_information(x, y, *, batches: int = 10) -> tuple[float, float]:
    """Plug-in mutual information ``I(X; Y)`` in bits between paired discrete symbols, and its standard error.

    The standard error comes from ``batches`` batch means (the spread of the estimate over disjoint
    tenths of the data divided by sqrt(batches)). The plug-in estimator is biased upwards by about
    ``(|X| - 1)(|Y| - 1) / (2 N ln 2)`` bits (Miller 1955), which this does not remove (a conservative
    direction when the value is used as Eve's information).

    Args:
        x, y: paired 1-D arrays of finite integer symbols, the same length, at least ``2 * batches``.
        batches: number of batches for the standard error, an integer ``>= 2``.
    """
    if isinstance(batches, (bool, np.bool_)) or not isinstance(batches, numbers.Integral) or batches < 2:
        raise ValueError(f"batches = {batches!r} is not allowed; it must be an integer >= 2 (the standard error "
                         "needs the spread of at least two batch estimates)")
    batches = int(batches)
    a = _as_symbols(x, "x")
    b = _as_symbols(y, "y")
    if a.shape != b.shape or a.size < 2 * batches:
        raise ValueError(f"x and y must be paired 1-D symbol arrays of >= {2 * batches} entries, "
                         f"got {a.shape}, {b.shape}")

    def mi(u, v):
        _, ui = np.unique(u, return_inverse=True)
        _, vi = np.unique(v, return_inverse=True)
        joint = np.zeros((ui.max() + 1, vi.max() + 1))
        np.add.at(joint, (ui, vi), 1.0)
        joint /= joint.sum()
        pu, pv = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
        nz = joint > 0
        return float(np.sum(joint[nz] * np.log2(joint[nz] / (pu @ pv)[nz])))

    full = mi(a, b)
    parts = np.array_split(np.arange(a.size), batches)
    vals = np.array([mi(a[p], b[p]) for p in parts])
    return full, float(vals.std(ddof=1) / math.sqrt(batches))


@dataclass(frozen=True)
class EntropyBudget:
    """Secret entropy per key bit that privacy amplification may use.

    Attributes:
        h_min_per_bit: SP 800-90B MCV estimate of Alice's min-entropy per key bit.
        eve_leak_per_bit: Eve's information per key bit (closed-form bound or estimate).
        eve_leak_source: how ``eve_leak_per_bit`` was obtained.
        mcv: the underlying :class:`MCVEstimate`.
        key_bits_per_probe: mean initial-key bits per probe in the calibration run.
    """

    h_min_per_bit: float
    eve_leak_per_bit: float
    eve_leak_source: str
    mcv: MCVEstimate
    key_bits_per_probe: float

    @property
    def secret_per_bit(self) -> float:
        """``max(0, h_min_per_bit - eve_leak_per_bit)``."""
        return max(0.0, self.h_min_per_bit - self.eve_leak_per_bit)
