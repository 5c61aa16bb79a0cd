"""Second-order tools on a joint covariance: canonical correlation pairs and the Gaussian mutual information.

Alice and Bob know the public second-order statistics of their observations (the statistical CSI and the
design are public). :func:`canonical_pairs` turns a joint covariance into the linear maps that make their
observations ``M`` independent pairs with correlations ``rho_i`` (complex canonical correlation analysis;
``sum_i -log2(1 - rho_i^2) = I(y_a; y_b)`` for Gaussian observations), so each pair can be quantised on
its own. :func:`gaussian_mi_bits` is the one Gaussian mutual information of :mod:`keygen`.

numpy only.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["canonical_pairs", "gaussian_mi_bits"]


def _square(C, name: str) -> np.ndarray:
    arr = np.asarray(C)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be a square numeric matrix, got shape {arr.shape} and dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _inv_sqrt(X: np.ndarray) -> np.ndarray:
    """Pseudo-inverse square root of a Hermitian PSD matrix: directions with eigenvalue below ``1e-9`` of the
    largest (a singular precoder leaves Alice fewer dimensions) get 0."""
    lam, U = np.linalg.eigh(0.5 * (X + X.conj().T))
    keep = lam > 1e-9 * lam.max()
    inv = np.where(keep, 1.0 / np.sqrt(np.maximum(lam, 1e-300)), 0.0)
    return (U * inv[None, :]) @ U.conj().T


def canonical_pairs(C, M: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complex canonical correlation analysis of a joint covariance ``E{y y^H}`` of ``y = (y_a, y_b, ...)``.

    Args:
        C: ``[D, D]`` Hermitian covariance, ``D >= 2 M``; the first ``M`` rows are Alice's observation, the next
            ``M`` Bob's (rows beyond, e.g. Eve's, are ignored).
        M: the dimension of Alice's and of Bob's observation.

    Returns:
        ``A, B`` (``[M, M]``) and ``rho`` (``[M]``, descending) with ``A^H C_aa A = I`` (on the range of
        ``C_aa``; directions a singular precoder removes get ``rho = 0``), ``B^H C_bb B = I`` and
        ``A^H C_ab B = diag(rho)``; the canonical variables are ``u = A^H y_a`` and ``v = B^H y_b``.
    """
    C = _square(C, "C")
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1 or 2 * M > C.shape[0]:
        raise ValueError(f"M = {M!r} is not allowed; it must be an integer in 1..{C.shape[0] // 2} for a "
                         f"{C.shape[0]} x {C.shape[0]} covariance")
    Caa, Cbb, Cab = C[:M, :M], C[M:2 * M, M:2 * M], C[:M, M:2 * M]
    Wa, Wb = _inv_sqrt(Caa), _inv_sqrt(Cbb)
    U, S, Vh = np.linalg.svd(Wa @ Cab @ Wb)
    return Wa @ U, Wb @ Vh.conj().T, S


def gaussian_mi_bits(R, d1: int, d2: int, *, field: str = "complex") -> float:
    """``I(x; y)`` in bits of a Gaussian pair with joint covariance ``R [d1 + d2, d1 + d2]`` (leading block).

    ``field="complex"`` (circularly-symmetric complex x, y): ``log2 det R_xx + log2 det R_yy - log2 det R``;
    ``field="real"`` (real x, y): half of it, ``1/2 log2(det R_xx det R_yy / det R)`` (a real Gaussian carries half
    the entropy of a complex one of the same covariance; one real pair with correlation rho gives
    ``-1/2 log2(1 - rho^2)``). Log-determinants by LU on the Hermitian part; clipped at 0.
    """
    if field not in ("complex", "real"):
        raise ValueError(f"field = {field!r} is not allowed; use 'complex' or 'real'")
    R = _square(R, "R")
    for name, d in (("d1", d1), ("d2", d2)):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"{name} = {d!r} is not allowed; it must be an integer >= 1")
    if d1 + d2 > R.shape[0]:
        raise ValueError(f"d1 + d2 = {d1 + d2} is more than the {R.shape[0]} rows of R")

    def logdet(S):
        return float(np.linalg.slogdet(0.5 * (S + S.conj().T))[1])

    n = d1 + d2
    bits = (logdet(R[:d1, :d1]) + logdet(R[d1:n, d1:n]) - logdet(R[:n, :n])) / math.log(2)
    return max(0.0, 0.5 * bits if field == "real" else bits)
