"""Beam-domain multi-user key generation (paper 003): the analytic designs.

Theorem 2's optimum (the top eigenvectors of the full Lambda, docs/architecture.md section 1) and the printed unit
vectors of (38); beam selection, Algorithm 1, with its overlap rule made explicit; Fig. 8's strongest
(overlapping) beams; eigen beams (ours); Haar-random semi-unitary designs; the projection onto semi-unitary
matrices and the downlink pilot-power budget the design space adds to (30).
"""

from __future__ import annotations

import math
import numbers

import torch

from physics.checks import as_tensor, check_finite, check_hermitian, check_int, check_shape
from physics.multiuser.rates import _check_lambda, _check_n, _eye
from physics.seeding import check_generator

__all__ = ["algorithm1_design", "algorithm1_from_powers", "apply_budget", "eigen_beams_design",
           "eigen_beams_from_paths", "kron_design", "random_semi_unitary", "semi_unitary", "strongest_beams_design",
           "strongest_beams_from_powers", "theorem2_design", "unit_vector_design"]


def theorem2_design(Lambda: torch.Tensor, n: int) -> torch.Tensor:
    """Theorem 2's optimum: the eigenvectors of the n largest eigenvalues of the full Lambda
    ``[..., D, n]`` (attains :func:`optimal_rate`). Not separable as conj(P~) kron C~ in general."""
    Lam = _check_lambda(Lambda)
    n = _check_n(n, Lam.shape[-1])
    _, V = torch.linalg.eigh(Lam)
    return V[..., -n:].flip(-1)


def unit_vector_design(Lambda: torch.Tensor, n: int) -> torch.Tensor:
    """The printed rule of (38)/Remark 7: unit vectors e_i at the n largest diagonal entries of Lambda.
    Optimal exactly when Lambda is diagonal (path angles on the DFT grid). ``[..., D, n]``."""
    Lam = _check_lambda(Lambda)
    n = _check_n(n, Lam.shape[-1])
    idx = torch.diagonal(Lam, dim1=-2, dim2=-1).real.topk(n, dim=-1).indices
    eye = _eye(Lam.shape[-1], Lam)
    return eye[idx].movedim(-2, -1)


def kron_design(P: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """U = conj(P~) kron C~ ``[..., M N_k, M_e N_e]`` (003 after (36))."""
    P, C = P.to(torch.complex128), C.to(torch.complex128)
    U = P.conj()[..., :, None, :, None] * C[..., None, :, None, :]
    return U.reshape(*P.shape[:-2], P.shape[-2] * C.shape[-2], P.shape[-1] * C.shape[-1])


def _select_columns(idx: torch.Tensor, size: int, dtype=torch.complex128) -> torch.Tensor:
    """Unit-vector columns e_idx: ``idx [..., n]`` -> ``[..., size, n]``."""
    eye = torch.eye(size, dtype=dtype, device=idx.device)
    return eye[idx].movedim(-2, -1)


def _check_beam_covariance(name: str, R) -> torch.Tensor:
    """A beam-domain covariance ``[..., D, D]`` (R~_BS,k or R~_UT,k): square with D >= 1, finite, Hermitian and
    with a non-negative diagonal (the beam powers), relative tolerance 1e-8 of the largest |entry| as in
    :func:`_check_lambda` (1e-5 for single precision). Returned as it is (numpy / lists: float64 or complex128)."""
    R = as_tensor(name, R)
    if R.ndim < 2 or R.shape[-1] != R.shape[-2] or R.shape[-1] == 0:
        raise ValueError(f"{name} must be a square [..., D, D] covariance with D >= 1, got shape {tuple(R.shape)}")
    check_finite(name, R)
    if R.numel() == 0:  # an empty batch
        return R
    tol = 1e-8 if R.dtype in (torch.float64, torch.complex128) else 1e-5
    scale = check_hermitian(name, R, tol, "R")
    diag = torch.diagonal(R, dim1=-2, dim2=-1).real
    if (diag / scale[..., None]).min().item() < -tol:
        raise ValueError(f"{name} must have a non-negative diagonal (beam powers), got {diag.min().item():.6g}")
    return R


def strongest_beams_design(R_bs: torch.Tensor, R_ut: torch.Tensor, M_e: int, N_e: int):
    """(40)-(41) with the beam-domain diagonal (docs/architecture.md section 1): each UT takes its M_e
    strongest BS beams and N_e strongest UT beams, overlapping other UTs' beams or not (Fig. 8's "overlapping" scheme).
    ``R_bs [..., K, M, M]``, ``R_ut [..., K, N_k, N_k]`` -> P ``[..., K, M, M_e]``, C ``[..., K, N_k, N_e]``."""
    R_bs, R_ut = _check_beam_covariance("R_bs", R_bs), _check_beam_covariance("R_ut", R_ut)
    return strongest_beams_from_powers(torch.diagonal(R_bs, dim1=-2, dim2=-1).real,
                                       torch.diagonal(R_ut, dim1=-2, dim2=-1).real, M_e, N_e)


def strongest_beams_from_powers(d_bs: torch.Tensor, d_ut: torch.Tensor, M_e: int, N_e: int):
    """:func:`strongest_beams_design` from the beam powers diag(R~_BS) ``[..., K, M]`` and diag(R~_UT)
    ``[..., K, N_k]``."""
    M_e, N_e = check_int("M_e", M_e), check_int("N_e", N_e)
    M, N_k = d_bs.shape[-1], d_ut.shape[-1]
    if M_e > M or N_e > N_k:
        raise ValueError(f"need M_e <= M and N_e <= N_k, got M_e={M_e}, M={M}, N_e={N_e}, N_k={N_k}")
    P = _select_columns(d_bs.topk(M_e, -1).indices, M)
    C = _select_columns(d_ut.topk(N_e, -1).indices, N_k)
    return P, C


def algorithm1_design(R_bs: torch.Tensor, R_ut: torch.Tensor, M_e: int, N_e: int,
                      overlap_threshold_db: float = -20.0):
    """003 Algorithm 1 with its overlap rule made explicit (docs/architecture.md section 1).

    Beam m "belongs to" UT k' when [R~_BS,k']_mm >= 10^(t/10) max_m [R~_BS,k']_mm (t =
    ``overlap_threshold_db``, default -20 dB: 003 Sec. VI reports about 20 dB between adjacent UTs). UTs
    are served in order k = 1..K; UT k takes the M_e strongest beams of its own diagonal among the beams
    that no other UT owns and that no earlier UT took ((40) and (47)); if fewer than M_e such beams exist
    it fills up with the strongest untaken beams (then (47) cannot hold). The receive side is (41): the N_e
    strongest UT beams. Beams are disjoint across UTs, so the downlink power is exactly K M_e.
    Raises ValueError when K M_e > M (no disjoint allocation exists).
    """
    R_bs, R_ut = _check_beam_covariance("R_bs", R_bs), _check_beam_covariance("R_ut", R_ut)
    if R_bs.ndim < 3:
        raise ValueError(f"R_bs must be [..., K, M, M] (one covariance per UT), got shape {tuple(R_bs.shape)}")
    return algorithm1_from_powers(torch.diagonal(R_bs, dim1=-2, dim2=-1).real,
                                  torch.diagonal(R_ut, dim1=-2, dim2=-1).real, M_e, N_e, overlap_threshold_db)


def algorithm1_from_powers(d: torch.Tensor, d_ut: torch.Tensor, M_e: int, N_e: int,
                           overlap_threshold_db: float = -20.0):
    """:func:`algorithm1_design` from the beam powers diag(R~_BS) ``[..., K, M]`` and diag(R~_UT) ``[..., K, N_k]``."""
    M_e, N_e = check_int("M_e", M_e), check_int("N_e", N_e)
    K, M, N_k = d.shape[-2], d.shape[-1], d_ut.shape[-1]
    if K * M_e > M:
        raise ValueError(f"non-overlapping beams need K M_e <= M, got K={K}, M_e={M_e}, M={M}")
    if N_e > N_k:
        raise ValueError(f"need N_e <= N_k, got N_e={N_e}, N_k={N_k}")
    t = overlap_threshold_db
    if isinstance(t, torch.Tensor) and t.numel() == 1 and not t.is_complex() and t.dtype != torch.bool:
        t = t.item()
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise ValueError(f"overlap_threshold_db must be a real number (dB) <= 0, got {overlap_threshold_db!r}")
    t = float(t)
    if not math.isfinite(t) or t > 0:
        raise ValueError(f"overlap_threshold_db must be finite and <= 0 dB, got {overlap_threshold_db!r}")
    owned = d >= (10.0 ** (t / 10.0)) * d.amax(-1, keepdim=True)
    taken = torch.zeros(d.shape[:-2] + (M,), dtype=torch.bool, device=d.device)
    cols = []
    for k in range(K):
        others = torch.cat([owned[..., :k, :], owned[..., k + 1:, :]], -2).any(-2)
        free = ~taken
        # key: free and not owned by others first, then free, each by UT k's beam power
        score = d[..., k, :] / d[..., k, :].amax(-1, keepdim=True).clamp_min(1e-300)  # in [0, 1]
        key = torch.where(free & ~others, 2.0 + score, torch.where(free, score, torch.full_like(score, -1.0)))
        idx = key.topk(M_e, -1).indices
        cols.append(idx)
        taken = taken.scatter(-1, idx, True)
    P = _select_columns(torch.stack(cols, -2), M)
    C = _select_columns(d_ut.topk(N_e, -1).indices, N_k)
    return P, C


def eigen_beams_from_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor, M_e: int, N_e: int):
    """:func:`eigen_beams_design` from path vectors: R~_BS = V^T diag(g) conj(V) has rank N_P, so its top
    eigenvectors are V^T G^1/2 w_i / sqrt(lambda_i) with (lambda_i, w_i) the eigenpairs of the N_P x N_P
    matrix G^1/2 conj(V) V^T G^1/2. Directions beyond the rank are completed by QR (any orthonormal
    complement gives the same rate up to the budget). Same for R~_UT."""
    def top(X, k):  # X [..., P, D] rows = path vectors; R = X^T diag(g) conj(X)
        sg = torch.sqrt(g.to(torch.float64)).to(X.dtype)
        Bm = sg[..., :, None] * (X.conj() @ X.mT) * sg[..., None, :]
        lam, W = torch.linalg.eigh(0.5 * (Bm + Bm.mH))
        lam, W = lam.flip(-1), W.flip(-1)
        vecs = X.mT @ (sg[..., :, None] * W) / lam.clamp_min(1e-300).sqrt().to(X.dtype)[..., None, :]
        r = min(k, vecs.shape[-1])
        out = vecs[..., :r]
        if k > r:  # complete with the DFT beams of largest power outside the span, then re-orthonormalise
            extra = torch.eye(X.shape[-1], dtype=X.dtype, device=X.device).expand(*out.shape[:-1], X.shape[-1])
            return semi_unitary(torch.cat([out, extra], -1))[..., :k]
        # a column of a tiny eigenvalue carries a relative error ~ eps lam_max / lam_i (two paths at almost the
        # same angle: 1e-3 seen in 1000 draws, so the "semi-unitary" design had more than unit power); QR keeps
        # the accurate leading columns (positive diagonal: same phases) and re-orthonormalises the tail
        return semi_unitary(out)

    return top(v, check_int("M_e", M_e)), top(u, check_int("N_e", N_e))


def eigen_beams_design(R_bs: torch.Tensor, R_ut: torch.Tensor, M_e: int, N_e: int):
    """Top-M_e eigenvectors of each UT's beam-domain R~_BS,k and top-N_e of R~_UT,k (ours, not in 003)."""
    M_e, N_e = check_int("M_e", M_e), check_int("N_e", N_e)
    R_bs, R_ut = _check_beam_covariance("R_bs", R_bs), _check_beam_covariance("R_ut", R_ut)
    M, N_k = R_bs.shape[-1], R_ut.shape[-1]
    if M_e > M or N_e > N_k:
        raise ValueError(f"need M_e <= M and N_e <= N_k, got M_e={M_e}, M={M}, N_e={N_e}, N_k={N_k}")
    _, Vb = torch.linalg.eigh(R_bs.to(torch.complex128))
    _, Vu = torch.linalg.eigh(R_ut.to(torch.complex128))
    return Vb[..., -M_e:].flip(-1), Vu[..., -N_e:].flip(-1)


def random_semi_unitary(shape: tuple[int, ...], rows: int, cols: int, generator: torch.Generator,
                        device=None) -> torch.Tensor:
    """Haar-distributed semi-unitary ``[*shape, rows, cols]`` (QR of a complex Gaussian, phases fixed)."""
    rows, cols = check_int("rows", rows), check_int("cols", cols)
    shape = check_shape("shape", shape)
    check_generator(generator)
    if cols > rows:
        raise ValueError(f"a semi-unitary matrix needs cols <= rows, got rows = {rows}, cols = {cols}")
    z = torch.randn(*shape, rows, cols, 2, generator=generator, dtype=torch.float64)
    Z = torch.view_as_complex(z).to(device)
    Qm, R = torch.linalg.qr(Z)
    ph = torch.diagonal(R, dim1=-2, dim2=-1)
    ph = ph / ph.abs().clamp_min(1e-300)
    return Qm * ph[..., None, :]


def semi_unitary(X: torch.Tensor) -> torch.Tensor:
    """Projection onto semi-unitary matrices by QR with positive diagonal (differentiable)."""
    Qm, R = torch.linalg.qr(X)
    ph = torch.diagonal(R, dim1=-2, dim2=-1)
    ph = ph / ph.abs().clamp_min(1e-300)
    return Qm * ph[..., None, :]


def apply_budget(P: torch.Tensor, budget: float | None) -> torch.Tensor:
    """Downlink pilot-power budget: scale every UT's precoder by min(1, sqrt(budget) / ||sum_k P_k||_F).

    The BS transmits (sum_k P_k) S with S S^H = I, i.e. power ||sum_k P_k||_F^2; disjoint semi-unitary
    beams use K M_e. The uplink rate is invariant to the scale (signal and noise P_k^T scale together), so
    the budget only lowers the downlink SNR when precoders add coherently. ``budget=None``: (30) as printed;
    otherwise a finite number > 0. ``P [..., K, M, M_e]``. Checks on Python values and shapes only (traced).
    """
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, numbers.Real)
                               or not (math.isfinite(budget) and budget > 0)):
        raise ValueError(f"budget must be None or a finite number > 0 (the downlink pilot power, e.g. K M_e), "
                         f"got {budget!r}")
    P = as_tensor("P", P)
    if P.ndim < 3:
        raise ValueError(f"P must be [..., K, M, M_e] (one precoder per UT), got shape {tuple(P.shape)}")
    if budget is None:
        return P
    power = (P.sum(-3).abs() ** 2).sum((-1, -2))
    scale = torch.clamp(torch.sqrt(float(budget) / power.clamp_min(1e-300)), max=1.0)  # no tensor constant: traceable
    return P * scale[..., None, None, None].to(P.dtype)
