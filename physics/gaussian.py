"""Gaussian information measures shared by every system model: the package's one log-determinant.

Every closed-form rate of the five papers is a mutual information of jointly circular-symmetric complex Gaussian
observations, I(x; y) = log2(|R_x| |R_y| / |R_xy|) (001 (58), 003 (30)), or a conditional one,
I(x; y | w) = log2(|R_xw| |R_yw| / (|R_xyw| |R_w|)) (003 (27), 004 (13)). Here they are evaluated once:

* :func:`logdet_hpd`: ln det of Hermitian positive-definite matrices by Cholesky (docs/architecture.md section 5:
  never ``det``; path gains ~1e-10 over noise ~1e-12 W underflow a raw float32 determinant);
* :func:`gaussian_mi_bits`: I(x; y) or I(x; y | w) from a joint covariance and the index blocks of x, y, w;
* :func:`gaussian_mi_nats_from_blocks`: I(x; y) from the blocks R_x, R_y, R_xy by the Schur complement (a third
  of the cost of three log-determinants), with :func:`conditional_covariance` for conditioning on w;
* :func:`sample_covariance` and :func:`sample_mi_bits`: the same measures of the sample covariance of zero-mean
  observations (the Monte-Carlo checks of the closed forms).

``method="lu"`` evaluates the log-determinants by LU (``torch.linalg.slogdet``) instead of Cholesky: the test
references and the sample estimators use it, so that they stay independent of the Cholesky path of the closed
forms they check (and accept an indefinite sample covariance, which Cholesky would refuse).
"""

from __future__ import annotations

import itertools

import torch

from physics.units import LN2

__all__ = ["conditional_covariance", "gaussian_mi_bits", "gaussian_mi_nats_from_blocks", "logdet_hpd",
           "sample_covariance", "sample_mi_bits"]

METHODS = ("cholesky", "lu")


def logdet_hpd(A: torch.Tensor, *, symmetrize: bool = True) -> torch.Tensor:
    """ln det of Hermitian positive-definite matrices ``A [..., D, D]`` by Cholesky (nats, real ``[...]``).

    ``symmetrize=True`` factors the Hermitian part 0.5 (A + A^H) (rounding leaves a computed covariance Hermitian
    only to ~1e-16); ``False`` factors A's lower triangle as it is, for a matrix Hermitian by construction.
    """
    if symmetrize:
        A = 0.5 * (A + A.mH)
    L = torch.linalg.cholesky(A)
    return 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1).real).sum(-1)


def _logdet(A: torch.Tensor, method: str) -> torch.Tensor:
    if method == "cholesky":
        return logdet_hpd(A)
    return torch.linalg.slogdet(A)[1]


def _indices(s) -> list[int]:
    return list(range(s.start, s.stop)) if isinstance(s, slice) else [int(i) for i in s]


def _sub(cov: torch.Tensor, *blocks) -> torch.Tensor:
    """The joint covariance of ``blocks`` (slices or index lists): one contiguous range in index order when the
    blocks are back to back, otherwise the blocks in the order given."""
    idx = [_indices(b) for b in blocks]
    flat = [i for ix in idx for i in ix]
    ordered = sorted(idx, key=lambda ix: ix[0] if ix else 0)
    if all(a and b and a[-1] + 1 == b[0] for a, b in zip(ordered, ordered[1:], strict=False)) and all(
            ix == list(range(ix[0], ix[-1] + 1)) for ix in idx if ix):
        lo = min(ix[0] for ix in idx)
        return cov[..., lo:lo + len(flat), lo:lo + len(flat)]
    t = torch.tensor(flat, dtype=torch.long, device=cov.device)
    return cov[..., t[:, None], t[None, :]]


def gaussian_mi_bits(cov: torch.Tensor, ix, iy, iw=None, *, method: str = "cholesky") -> torch.Tensor:
    """I(x; y) or, with ``iw``, I(x; y | w) in bits of a zero-mean circular-symmetric complex Gaussian vector.

    ``cov [..., D, D]`` its covariance; ``ix``, ``iy``, ``iw`` the index blocks (slices or lists of indices) of
    x, y and w. I(x; y) = log2(|R_x| |R_y| / |R_xy|) (001 (58)); I(x; y | w) = log2(|R_xw| |R_yw| / (|R_xyw|
    |R_w|)) (003 (27), 004 (13)). ``method``: ``"cholesky"`` (:func:`logdet_hpd`, default) or ``"lu"``
    (``slogdet``). Returns ``[...]`` real.
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'cholesky' or 'lu', got {method!r}")
    if iw is None:
        val = _logdet(_sub(cov, ix), method) + _logdet(_sub(cov, iy), method) - _logdet(_sub(cov, ix, iy), method)
    else:
        val = (_logdet(_sub(cov, ix, iw), method) + _logdet(_sub(cov, iy, iw), method)
               - _logdet(_sub(cov, ix, iy, iw), method) - _logdet(_sub(cov, iw), method))
    return val / LN2


def gaussian_mi_nats_from_blocks(Rx: torch.Tensor, Ry: torch.Tensor, Rxy: torch.Tensor) -> torch.Tensor:
    """I(x; y) in nats of a Gaussian pair from its covariance blocks by the Schur complement:
    log det R_y - log det(R_y - R_xy^H R_x^-1 R_xy), with Cholesky of R_x. Equals log det R_x + log det R_y
    - log det R (the joint), at a third of the cost."""
    L = torch.linalg.cholesky(0.5 * (Rx + Rx.mH))
    X = torch.linalg.solve_triangular(L, Rxy, upper=False)
    return logdet_hpd(Ry) - logdet_hpd(Ry - X.mH @ X)


def conditional_covariance(R: torch.Tensor, Rw: torch.Tensor, Rxw: torch.Tensor) -> torch.Tensor:
    """Covariance of x given w: R - R_xw R_w^-1 R_xw^H (Cholesky of R_w)."""
    L = torch.linalg.cholesky(0.5 * (Rw + Rw.mH))
    X = torch.linalg.solve_triangular(L, Rxw.mH, upper=False)
    return R - X.mH @ X


def sample_covariance(*blocks: torch.Tensor) -> torch.Tensor:
    """Sample covariance E{y y^H} of the stacked zero-mean observations ``[n, d_i]`` -> ``[D, D]``, D = sum d_i.

    The observations are zero-mean by construction (the random parts of the channels), so no mean is subtracted.
    """
    y = torch.cat(blocks, dim=-1)
    return y.T @ y.conj() / y.shape[0]


def sample_mi_bits(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian I(x; y) (or I(x; y | w)) in bits of the sample covariance of zero-mean samples ``[n, d]`` (or
    ``[n]`` for scalar observations), by :func:`gaussian_mi_bits` with LU log-determinants."""
    parts = [t[:, None] if t.ndim == 1 else t for t in ((x, y) if w is None else (x, y, w))]
    C = sample_covariance(*parts)
    ends = list(itertools.accumulate(p.shape[-1] for p in parts))
    blocks = [slice(a, b) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    return gaussian_mi_bits(C, *blocks, method="lu")
