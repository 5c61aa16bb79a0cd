"""Beam-domain multi-user key generation (paper 003): the key rates.

Theorem 1 with orthogonal pilots (31), Theorem 2's optimum (39), Theorem 1 with pilot reuse (30) and the
leakage-aware rate (27), in two equivalent evaluations: the full-Lambda form (the literal matrices of Theorem 1,
O((M N_k)^2) per user pair) and the path form used by :class:`~physics.multiuser.MultiUserScenario` (Lambda is
rank N_P, so the K = 6, M = 128 sum rate costs O(K^2 M M_e N_P) instead of O(K^2 (M N_k)^2 M_e)). They agree to
1e-10 (tests/test_multiuser_physics.py); ``benchmarks/multiuser_cost.py`` measures the ratio. Also the leakage
ratio (43) and the unit SKR (48). Every closed form is evaluated by Cholesky log-determinants of Hermitian
positive-definite matrices (:mod:`physics.gaussian`); rates are real float64 bits, unit noise.
"""

from __future__ import annotations

import numbers

import torch

from physics.checks import (
    as_real,
    as_tensor,
    check_broadcast,
    check_finite,
    check_hermitian,
    check_int,
    check_semi_unitary,
    value_checks_on,
)
from physics.gaussian import conditional_covariance, gaussian_mi_bits, gaussian_mi_nats_from_blocks, logdet_hpd
from physics.units import LN2

__all__ = ["leakage_ratio", "optimal_rate", "pilot_overhead", "skr_leakage_aware", "skr_leakage_aware_paths",
           "skr_orthogonal_pilots", "skr_pilot_reuse", "skr_pilot_reuse_paths", "theorem2_rate_paths",
           "training_rates", "unit_skr"]


def _eye(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def _check_lambda(Lam: torch.Tensor, name: str = "Lambda") -> torch.Tensor:
    """Hermitian PSD check (relative tolerance 1e-8 of the largest |entry| / eigenvalue, float64 roundoff
    of sums of 6 rank-one terms is ~1e-15, so 1e-8 only rejects matrices that are not Hermitian/PSD)."""
    Lam = as_tensor(name, Lam)
    if Lam.ndim < 2 or Lam.shape[-1] != Lam.shape[-2] or Lam.shape[-1] == 0:
        raise ValueError(f"{name} must be [..., D, D] with D >= 1, got shape {tuple(Lam.shape)}")
    Lam = Lam.to(torch.complex128)
    check_finite(name, Lam)
    check_hermitian(name, Lam, 1e-8, "L")
    Lam = 0.5 * (Lam + Lam.mH)
    ev = torch.linalg.eigvalsh(Lam)
    rel = ev[..., 0] / ev[..., -1].abs().clamp_min(1e-300)
    if torch.any(rel < -1e-8):
        raise ValueError(f"{name} must be positive semi-definite, got smallest eigenvalue "
                         f"{ev[..., 0].min().item():.6g} (largest {ev[..., -1].max().item():.6g})")
    return Lam


# --------------------------------------------------------------------------------------------
# Theorem 1 with orthogonal pilots (31) and Theorem 2 ((37)-(39))
# --------------------------------------------------------------------------------------------


def _pair_rate_nats(B: torch.Tensor) -> torch.Tensor:
    """sum_i log((1+mu_i)^2 / (1+2 mu_i)) = 2 logdet(I+B) - logdet(I+2B) for B = U^H Lambda U (PSD).

    This is (31): the nonzero eigenvalues of Lambda^1/2 U (I+B)^-1 B (I+B)^-1 U^H Lambda^1/2 are
    mu^2/(1+mu)^2, and -log(1 - mu^2/(1+mu)^2) = log((1+mu)^2/(1+2mu)).
    """
    eye = _eye(B.shape[-1], B)
    return 2.0 * logdet_hpd(eye + B) - logdet_hpd(eye + 2.0 * B)


def skr_orthogonal_pilots(U: torch.Tensor, Lambda: torch.Tensor) -> torch.Tensor:
    """003 (31): the key rate of one UT with orthogonal pilots (no inter-user interference), bits.

    ``U [..., M N_k, n]`` semi-unitary (U = conj(P~) kron C~ for a separable design), ``Lambda [..., M N_k,
    M N_k]`` Hermitian PSD; unit noise. Returns ``[...]`` float64.
    """
    Lam = _check_lambda(Lambda)
    U = as_tensor("U", U).to(torch.complex128)
    check_semi_unitary("U", U)
    if U.shape[-2] != Lam.shape[-1]:
        raise ValueError(f"U has {U.shape[-2]} rows but Lambda is {Lam.shape[-1]} x {Lam.shape[-1]}")
    check_broadcast(U=U.shape[:-2], Lambda=Lam.shape[:-2])
    B = U.mH @ Lam @ U
    return (_pair_rate_nats(B) / LN2).real.to(torch.float64)


def _check_n(n, D: int) -> int:
    n = check_int("n (number of effective channel dimensions)", n)
    if n > D:
        raise ValueError(f"n = {n} exceeds the channel dimension M N_k = {D}")
    return n


def optimal_rate(Lambda: torch.Tensor, n: int) -> torch.Tensor:
    """003 (39), corrected (docs/architecture.md section 1): the largest (31) over semi-unitary U with n columns,
    sum over the n largest eigenvalues mu_i of the full Lambda of log2((1+mu_i)^2 / (1+2 mu_i)).
    ``Lambda [..., D, D]`` -> ``[...]`` float64 bits."""
    Lam = _check_lambda(Lambda)
    n = _check_n(n, Lam.shape[-1])
    mu = torch.linalg.eigvalsh(Lam)[..., -n:].clamp_min(0.0)
    return ((2.0 * torch.log1p(mu) - torch.log1p(2.0 * mu)).sum(-1) / LN2).to(torch.float64)


# --------------------------------------------------------------------------------------------
# Theorem 1 with pilot reuse (30) and the leakage-aware rate (27), full-Lambda form
# --------------------------------------------------------------------------------------------


def _sandwich(X1: torch.Tensor, Y1: torch.Tensor, Lam4: torch.Tensor, X2: torch.Tensor,
              Y2: torch.Tensor) -> torch.Tensor:
    """(X1 kron Y1) Lambda (X2 kron Y2)^H with Lambda given as ``Lam4 [..., M, N, M, N]`` (vec index m N + n).

    X ``[..., a, M]``, Y ``[..., b, N]``; returns ``[..., a b, a' b']`` (vec index a b_dim + b).
    """
    T = torch.einsum("...bn,...mnpq,...cq->...mbpc", Y1, Lam4, Y2.conj())
    T = torch.einsum("...am,...mbpc,...dp->...abdc", X1, T, X2.conj())
    a, b, d, c = T.shape[-4:]
    return T.reshape(*T.shape[:-4], a * b, d * c)


def _check_design_power(name: str, X: torch.Tensor, tol: float = 1e-3) -> None:
    """``X [..., D, n]`` must satisfy X^H X <= I: semi-unitary, or scaled down (the downlink budget). 003 (30)
    takes P~_k^H P~_k = I and C~_k^H C~_k = I (C~_k^* is also the UT's uplink beamformer); more power raises
    the rate, e.g. an unnormalised DFT matrix. ``tol`` 1e-3 admits designs made in float32 (errors ~1e-6)."""
    if X.shape[-1] == 0 or X.shape[-2] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(X.shape)}): every UT needs at least one beam")
    if X.numel() == 0 or not value_checks_on():  # an empty batch (no draws): nothing to check, the rates are empty too
        return
    with torch.no_grad():
        ev = torch.linalg.eigvalsh(X.detach().mH @ X.detach())  # [..., n] ascending
    top = ev[..., -1].amax().item()
    if top > 1 + tol:
        raise ValueError(f"{name} carries more than unit pilot power: the largest eigenvalue of {name}^H {name} is "
                         f"{top:.6g}, allowed <= 1 (semi-unitary columns, or scaled down by a power budget)")
    # a UT with a zero or rank-deficient design has observations with no signal and no noise in some direction:
    # (30)/(27) are then undefined (singular covariances), not zero. 1e-10 relative keeps Cholesky well posed.
    low = (ev[..., 0] / ev[..., -1].clamp_min(1e-300)).amin().item()
    if not low > 1e-10:
        raise ValueError(f"{name} must have full column rank for every UT (no zero-power UT, no repeated beam): the "
                         f"smallest eigenvalue of {name}^H {name} is {low:.3g} of the largest, need > 1e-10")


def _check_design_shapes(P: torch.Tensor, C: torch.Tensor, K: int, M: int, N_k: int) -> tuple[int, int]:
    if P.ndim < 3 or P.shape[-3] != K or P.shape[-2] != M:
        raise ValueError(f"P must be [..., K={K}, M={M}, M_e], got shape {tuple(P.shape)}")
    if C.ndim < 3 or C.shape[-3] != K or C.shape[-2] != N_k:
        raise ValueError(f"C must be [..., K={K}, N_k={N_k}, N_e], got shape {tuple(C.shape)}")
    check_finite("P", P)
    check_finite("C", C)
    _check_design_power("P", P)
    _check_design_power("C", C)
    return P.shape[-1], C.shape[-1]


def _reuse_blocks(P: torch.Tensor, C: torch.Tensor, Lam4: torch.Tensor, cross: torch.Tensor | None):
    """Covariance blocks of the pilot-reuse observations of every UT (003 (25)-(26), (58)-(60)).

    ``Lam4 [..., K, K, M, N, M, N]`` the joint correlation E{vec(H~_j) vec(H~_l)^H} (zeros off the block
    diagonal for independent UTs; ``cross`` = None means block-diagonal and only ``[..., K, M, N, M, N]``
    is given). Returns dict of ``DD [..., K, K, d, d]`` Cov(z_D,k, z_D,i), ``UU [..., K, d, d]``
    Cov(z_U,k, z_U,k), ``DU [..., K, K, d, d]`` Cov(z_D,i, z_U,k) with d = M_e N_e, noise included.
    """
    K = P.shape[-3]
    Q = P.sum(-3)  # [..., M, M_e] the sum of all precoders: what reaches every UT in the downlink
    QT = Q.mT[..., None, :, :].expand(*P.shape[:-3], K, *Q.mT.shape[-2:])  # [..., K, M_e, M]
    PT = P.mT  # [..., K, M_e, M]
    CH = C.mH  # [..., K, N_e, N_k]
    Me, Ne = P.shape[-1], C.shape[-1]
    d = Me * Ne
    eyeMe = _eye(Me, P)
    noise_D = torch.kron(eyeMe, C.mH @ C)  # I_{M_e} kron C^H C   [..., K, d, d]
    noise_U = torch.kron(P.mT @ P.conj(), _eye(Ne, P))  # P^T P^* kron I_{N_e}

    def L(j, l):
        if cross is None:
            return Lam4[..., j, :, :, :, :] if j == l else None
        return Lam4[..., j, l, :, :, :, :]

    DD = torch.zeros(*P.shape[:-3], K, K, d, d, dtype=P.dtype, device=P.device)
    UU = torch.zeros(*P.shape[:-3], K, d, d, dtype=P.dtype, device=P.device)
    DU = torch.zeros(*P.shape[:-3], K, K, d, d, dtype=P.dtype, device=P.device)
    for i in range(K):
        for k in range(K):
            Lik = L(i, k)
            if Lik is not None:  # z_D,i = (Q^T kron C_i^H) h_i
                DD[..., i, k, :, :] = _sandwich(QT[..., i, :, :], CH[..., i, :, :], Lik, QT[..., k, :, :],
                                                CH[..., k, :, :])
        DD[..., i, i, :, :] += noise_D[..., i, :, :]
    for k in range(K):  # z_U,k = sum_j (P_k^T kron C_j^H) h_j
        for j in range(K):
            for l in range(K):  # noqa: E741
                Ljl = L(j, l)
                if Ljl is not None:
                    UU[..., k, :, :] += _sandwich(PT[..., k, :, :], CH[..., j, :, :], Ljl, PT[..., k, :, :],
                                                  CH[..., l, :, :])
        UU[..., k, :, :] += noise_U[..., k, :, :]
        for i in range(K):
            for j in range(K):
                Lij = L(i, j)
                if Lij is not None:
                    DU[..., i, k, :, :] += _sandwich(QT[..., i, :, :], CH[..., i, :, :], Lij, PT[..., k, :, :],
                                                     CH[..., j, :, :])
    return {"DD": DD, "UU": UU, "DU": DU}


def _as_lam4(Lambda: torch.Tensor, M: int, N: int, lead: int) -> torch.Tensor:
    return Lambda.reshape(*Lambda.shape[:lead], M, N, M, N)


def skr_pilot_reuse(P: torch.Tensor, C: torch.Tensor, Lambda: torch.Tensor) -> torch.Tensor:
    """003 (30): each UT's key rate with pilot reuse (same pilots S, S S^H = I), UTs independent, bits.

    ``P [..., K, M, M_e]`` beam-domain precoders P~_k (P^H P <= I: semi-unitary, or scaled down by a budget;
    the uplink noise covariance is P^T P^* kron I),
    ``C [..., K, N_k, N_e]`` beam-domain receive matrices C~_k, ``Lambda [..., K, M N_k, M N_k]``; unit
    noise. No downlink power budget here (docs/architecture.md section 4). Returns ``[..., K]`` float64.
    """
    Lambda = as_tensor("Lambda", Lambda)
    if Lambda.ndim < 3 or Lambda.shape[-3] == 0:
        raise ValueError(f"Lambda must be [..., K, M N_k, M N_k] with K >= 1, got shape {tuple(Lambda.shape)}")
    Lam = _check_lambda(Lambda)
    K = Lam.shape[-3]
    P, C = as_tensor("P", P).to(torch.complex128), as_tensor("C", C).to(torch.complex128)
    if P.ndim < 3:
        raise ValueError(f"P must be [..., K, M, M_e], got shape {tuple(P.shape)}")
    M = P.shape[-2]
    N_k = C.shape[-2] if C.ndim >= 2 else 0
    if M * N_k != Lam.shape[-1]:
        raise ValueError(f"Lambda is {Lam.shape[-1]} x {Lam.shape[-1]} but M N_k = {M} x {N_k} = {M * N_k}")
    _check_design_shapes(P, C, K, M, N_k)
    shape = check_broadcast(P=P.shape[:-3], C=C.shape[:-3], Lambda=Lam.shape[:-3])
    P = P.expand(*shape, *P.shape[-3:])
    C = C.expand(*shape, *C.shape[-3:])
    Lam4 = _as_lam4(Lam.expand(*shape, *Lam.shape[-3:]), M, N_k, len(shape) + 1)
    blocks = _reuse_blocks(P, C, Lam4, None)
    d = P.shape[-1] * C.shape[-1]
    out = []
    for k in range(K):
        RD, RU, RDU = blocks["DD"][..., k, k, :, :], blocks["UU"][..., k, :, :], blocks["DU"][..., k, k, :, :]
        joint = torch.cat([torch.cat([RD, RDU], -1), torch.cat([RDU.mH, RU], -1)], -2)
        out.append(gaussian_mi_bits(joint, slice(0, d), slice(d, 2 * d)))
    return torch.stack(out, -1).real.to(torch.float64)


def skr_leakage_aware(P: torch.Tensor, C: torch.Tensor, Lambda_joint: torch.Tensor) -> torch.Tensor:
    """003 (27) with pilot reuse: R_k = min_{i != k} I(z_k^DL; z_k^UL | z_i^DL), bits, ``[..., K]``.

    ``Lambda_joint [..., K, K, M N_k, M N_k]``: block (j, l) = E{vec(H~_j) vec(H~_l)^H} (UTs that share
    scatterers have nonzero off-diagonal blocks). Curious UTs do not collude (003 footnote 1). K >= 2.
    """
    Lambda_joint = as_tensor("Lambda_joint", Lambda_joint)
    if Lambda_joint.ndim < 4 or Lambda_joint.shape[-4] != Lambda_joint.shape[-3]:
        raise ValueError(f"Lambda_joint must be [..., K, K, D, D], got shape {tuple(Lambda_joint.shape)}")
    K, D = Lambda_joint.shape[-4], Lambda_joint.shape[-1]
    if K < 2:
        raise ValueError(f"the leakage-aware rate (27) needs K >= 2 UTs, got K = {K}")
    full = Lambda_joint.to(torch.complex128).movedim(-3, -2).reshape(*Lambda_joint.shape[:-4], K * D, K * D)
    _check_lambda(full, "Lambda_joint (as a K D x K D matrix)")
    P, C = as_tensor("P", P).to(torch.complex128), as_tensor("C", C).to(torch.complex128)
    if P.ndim < 3:
        raise ValueError(f"P must be [..., K, M, M_e], got shape {tuple(P.shape)}")
    if C.ndim < 3:
        raise ValueError(f"C must be [..., K, N_k, N_e], got shape {tuple(C.shape)}")
    M, N_k = P.shape[-2], C.shape[-2]
    if M * N_k != D:
        raise ValueError(f"Lambda_joint blocks are {D} x {D} but M N_k = {M * N_k}")
    _check_design_shapes(P, C, K, M, N_k)
    shape = check_broadcast(P=P.shape[:-3], C=C.shape[:-3], Lambda_joint=Lambda_joint.shape[:-4])
    P, C = P.expand(*shape, *P.shape[-3:]), C.expand(*shape, *C.shape[-3:])
    Lam4 = Lambda_joint.to(torch.complex128).expand(*shape, K, K, D, D).reshape(*shape, K, K, M, N_k, M, N_k)
    b = _reuse_blocks(P, C, Lam4, Lam4)
    d = P.shape[-1] * C.shape[-1]
    rates = []
    for k in range(K):
        vals = []
        for i in range(K):
            if i == k:
                continue
            # order (z_D,k, z_U,k, z_D,i)
            RDk, RUk, RDi = b["DD"][..., k, k, :, :], b["UU"][..., k, :, :], b["DD"][..., i, i, :, :]
            DkUk, DkDi, DiUk = b["DU"][..., k, k, :, :], b["DD"][..., k, i, :, :], b["DU"][..., i, k, :, :]
            row1 = torch.cat([RDk, DkUk, DkDi], -1)
            row2 = torch.cat([DkUk.mH, RUk, DiUk.mH], -1)
            row3 = torch.cat([DkDi.mH, DiUk, RDi], -1)
            cov = torch.cat([row1, row2, row3], -2)
            vals.append(gaussian_mi_bits(cov, slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d)))
        rates.append(torch.stack(vals, -1).amin(-1))
    return torch.stack(rates, -1).real.to(torch.float64)


# --------------------------------------------------------------------------------------------
# structured (path-domain) evaluation: what the scenario trains on
# --------------------------------------------------------------------------------------------


def _kron(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Batched Kronecker product of square matrices, (A kron B)[i n + k, j n + l] = A[i, j] B[k, l] for
    ``A [..., m, m]``, ``B [..., n, n]``, by broadcasting (``torch.kron`` treats batch dimensions as
    Kronecker dimensions too, and its shape arithmetic fixes the batch size when traced)."""
    m, n = A.shape[-1], B.shape[-1]
    T = A[..., :, None, :, None] * B[..., None, :, None, :]
    return T.reshape(*T.shape[:-4], m * n, m * n)


def _path_observations(P: torch.Tensor, C: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """Mixing matrices from the stacked path gains a = [alpha_11 .. alpha_KP] to the observations.

    P ``[..., K, M, M_e]``, C ``[..., K, N_k, N_e]``, u ``[..., K, N_P, N_k]``, v ``[..., K, N_P, M]``.
    Returns D ``[..., K, d, K N_P]`` (z_D,k = D_k a + n), E ``[..., K, d, K N_P]`` (z_U,k = E_k a + n), and
    the noise covariances ``noise_D``, ``noise_U`` ``[..., K, d, d]``; d = M_e N_e.
    Column (j, p) of E_k is (P_k^T conj v_jp) kron (C_j^H u_jp); of D_k: (Q^T conj v_kp) kron (C_k^H u_kp)
    in user k's block only.
    """
    K, Np = u.shape[-3], u.shape[-2]
    Me, Ne = P.shape[-1], C.shape[-1]
    Q = P.sum(-3)
    cu = torch.einsum("...jnf,...jpn->...jpf", C.conj(), u)  # C_j^H u_jp  [..., K, Np, Ne]
    qv = torch.einsum("...me,...kpm->...kpe", Q, v.conj())  # Q^T conj v_kp [..., K, Np, Me]
    pv = torch.einsum("...kme,...jpm->...kjpe", P, v.conj())  # P_k^T conj v_jp [..., K, K, Np, Me]
    dcol = (qv[..., :, None] * cu[..., None, :]).reshape(*qv.shape[:-1], Me * Ne)  # [..., K, Np, d]
    eye = torch.eye(K, dtype=P.dtype, device=P.device)
    D = (eye[:, :, None, None] * dcol[..., None, :, :, :]).reshape(*dcol.shape[:-3], K, K * Np, Me * Ne).mT
    ecol = (pv[..., :, None] * cu[..., None, :, :, None, :]).reshape(*pv.shape[:-1], Me * Ne)
    E = ecol.reshape(*ecol.shape[:-4], K, K * Np, Me * Ne).mT
    noise_D = _kron(_eye(Me, P), C.mH @ C)
    noise_U = _kron(P.mT @ P.conj(), _eye(Ne, P))
    return D, E, noise_D, noise_U


def skr_pilot_reuse_paths(P, C, u, v, G) -> torch.Tensor:
    """(30) (``G`` block-diagonal) or its correlated generalisation, per UT, from path vectors.

    ``G [..., K N_P, K N_P]`` covariance of the stacked path gains (diag(g) for independent UTs).
    Equals :func:`skr_pilot_reuse` with Lambda from :func:`lambda_from_paths` (tested). ``[..., K]`` bits.
    """
    D, E, nD, nU = _path_observations(P, C, u, v)
    G = G.to(D.dtype)[..., None, :, :]
    DG = D @ G
    RD = DG @ D.mH + nD
    RU = E @ G @ E.mH + nU
    RDU = DG @ E.mH
    return (gaussian_mi_nats_from_blocks(RD, RU, RDU) / LN2).real.to(torch.float64)


def _check_curious(curious, K: int) -> None:
    """``curious[k]``: the UTs i != k whose downlink observation (27) conditions UT k's rate on; K lists of
    indices in [0, K). Pure Python (no tensor op): :func:`skr_leakage_aware_paths` is traced in training."""
    if isinstance(curious, str | bytes) or not isinstance(curious, list | tuple) or len(curious) != K:
        raise ValueError(f"curious must be a list of K = {K} lists of UT indices (one per UT), got {curious!r}")
    for k, row in enumerate(curious):
        if isinstance(row, str | bytes) or not isinstance(row, list | tuple):
            raise ValueError(f"curious[{k}] must be a list of UT indices, got {row!r}")
        for i in row:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < K or i == k:
                raise ValueError(f"curious[{k}] must hold UT indices in [0, {K}) other than {k} itself (UT {k} "
                                 f"does not eavesdrop on its own key), got {i!r}")


def skr_leakage_aware_paths(P, C, u, v, G, curious: list[list[int]] | None = None) -> torch.Tensor:
    """(27) from path vectors: min over curious UTs i != k of I(z_D,k; z_U,k | z_D,i). ``[..., K]`` bits.

    Equals :func:`skr_leakage_aware` with the joint Lambda of :func:`lambda_joint_from_paths` (tested).
    ``curious[k]``: restrict the minimum to these UTs and add (30) itself to it. Conditioning on the
    downlink observation of a UT whose channel is independent of UT k's can only raise the rate above
    (30) (I(x; y | w) = I(x; (y, w)) >= I(x; y) when w is independent of x: it tells about the uplink
    interference), so min(I(.|z_D,i) for i sharing scatterers with k, (30)) is a lower bound on (27)
    that equals it whenever a sharing UT leaks at all; it costs one conditioning per UT instead of K - 1.
    """
    if curious is not None:  # Python lists only, checked before any tensor op (this function is traced)
        _check_curious(curious, P.shape[-3])
    D, E, nD, nU = _path_observations(P, C, u, v)
    K = D.shape[-3]
    G = G.to(D.dtype)
    out = []
    for k in range(K):
        Dk, Ek = D[..., k, :, :], E[..., k, :, :]
        vals = []
        if curious is not None:
            DkG = Dk @ G
            vals.append(gaussian_mi_nats_from_blocks(DkG @ Dk.mH + nD[..., k, :, :], Ek @ G @ Ek.mH + nU[..., k, :, :],
                                        DkG @ Ek.mH) / LN2)
        for i in (range(K) if curious is None else curious[k]):
            if i == k:
                continue
            Di = D[..., i, :, :]
            DiG = Di @ G
            Rw = DiG @ Di.mH + nD[..., i, :, :]
            RD = conditional_covariance(Dk @ G @ Dk.mH + nD[..., k, :, :], Rw, Dk @ G @ Di.mH)
            RU = conditional_covariance(Ek @ G @ Ek.mH + nU[..., k, :, :], Rw, Ek @ G @ Di.mH)
            # cross block given w: R_DU - R_Dw R_w^-1 R_wU
            L = torch.linalg.cholesky(0.5 * (Rw + Rw.mH))
            XD = torch.linalg.solve_triangular(L, DiG @ Dk.mH, upper=False)
            XU = torch.linalg.solve_triangular(L, DiG @ Ek.mH, upper=False)
            RDU = Dk @ G @ Ek.mH - XD.mH @ XU
            vals.append(gaussian_mi_nats_from_blocks(RD, RU, RDU) / LN2)
        out.append(torch.stack(vals, -1).amin(-1))
    return torch.stack(out, -1).real.to(torch.float64)


def theorem2_rate_paths(u: torch.Tensor, v: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
    """Theorem 2's rate (39) per UT from path vectors: Lambda_k's nonzero eigenvalues are those of the
    N_P x N_P matrix G^1/2 X^H X G^1/2 (X = [x_p]), so no M N_k x M N_k matrix is formed. ``[..., K]``.
    ``n`` >= 1: the number of effective channel dimensions (above N_P, only N_P eigenvalues are nonzero)."""
    n = check_int("n (number of effective channel dimensions)", n)
    g = as_real("path powers g", g, nonneg=True)
    # x_p^H x_q = (conj(v_p) kron u_p)^H (conj(v_q) kron u_q) = (v_p^T conj(v_q)) (u_p^H u_q)
    gram = (v @ v.conj().mT) * (u.conj() @ u.mT)
    sg = torch.sqrt(g.to(torch.float64)).to(gram.dtype)
    Bm = sg[..., :, None] * gram * sg[..., None, :]
    mu = torch.linalg.eigvalsh(0.5 * (Bm + Bm.mH)).clamp_min(0.0)
    mu = mu[..., -min(n, mu.shape[-1]):]
    return ((2.0 * torch.log1p(mu) - torch.log1p(2.0 * mu)).sum(-1) / LN2).to(torch.float64)


def training_rates(objective: str, P: torch.Tensor, C: torch.Tensor, pth: dict[str, torch.Tensor],
                   curious: list[list[int]]) -> torch.Tensor:
    """The per-UT rate ``[n, K]`` bits a design is trained on: ``"reuse"`` (30) (UTs independent: the gain
    covariance's diagonal only) or ``"leakage"`` (27) against the UTs in ``curious`` (min'ed with (30)).
    ``P``, ``C`` complex beam-domain designs; ``pth`` from :func:`path_tensors`."""
    if objective == "reuse":
        return skr_pilot_reuse_paths(P, C, pth["u"], pth["v"], torch.diag_embed(pth["g"].flatten(-2)))
    return skr_leakage_aware_paths(P, C, pth["u"], pth["v"], pth["G"], curious)


# --------------------------------------------------------------------------------------------
# leakage ratio (43) and unit SKR (48)
# --------------------------------------------------------------------------------------------


def leakage_ratio(rho, noise_var) -> torch.Tensor:
    """003 (43): gamma = 1 - R_l / R_h for one overlapping beam with unit-power channels h_1, h_2.

    ``rho`` real in [-1, 1] (pass |rho| for complex channels, docs/architecture.md section 1: (43) depends on rho^2),
    ``noise_var`` = sigma^2 > 0 linear. R_h = log((1+s)^2 / (s(2+s))) (rho = 0) and
    R_l = log(((1+s)^2 - rho^2)^2 / ((1+s)(s^3 + 3 s^2 - 2 s rho^2 + 2 s))). At rho = +-1 this is
    log[(1+s)^3 (3+s) / (s (2+s)^3)] / log[(1+s)^2 / (s (2+s))] (used instead of the garbled (45)).
    Returns float64, broadcast of the inputs.
    """
    # (43) depends on |rho|^2 only; a complex value is a caller's slip, never cast silently
    rho = as_real("rho", rho, complex_note=" (pass |rho| for complex channels)")
    s = as_real("noise_var", noise_var)
    check_broadcast(rho=rho.shape, noise_var=s.shape)
    check_finite("rho", rho)
    if torch.any(rho.abs() > 1.0):
        raise ValueError(f"rho must lie in [-1, 1], got {rho[rho.abs() > 1].flatten()[0].item():.6g}")
    if not torch.all(torch.isfinite(s)) or torch.any(s <= 0):
        bad = s[~(torch.isfinite(s) & (s > 0))].flatten()[0].item()
        raise ValueError(f"noise_var must be finite and > 0, got {bad:.6g}")
    if torch.any((s < 1e-150) | (s > 1e150)):  # +-1500 dB: beyond it float64 cannot hold s (2 + s) or 1 / s^2
        bad = s[(s < 1e-150) | (s > 1e150)].flatten()[0].item()
        raise ValueError(f"noise_var must lie in [1e-150, 1e150] (a linear noise-to-signal ratio), got {bad:.6g}")
    r2 = rho * rho
    # log((1+s)^2/(s(2+s))) = log1p(1/(s(2+s))) without cancellation at small or large s
    R_h = torch.log1p(1.0 / (s * (2.0 + s)))
    # R_l = log(a^2 / ((1+s) s b)) with a = (1+s)^2 - r2, b = s^2 + 3s + 2 - 2 r2; a^2 - (1+s) s b = (s + 1 - r2)^2
    # exactly, so R_l = log1p((s + c)^2 / (s (1+s) b)), c = 1 - r2: no cancellation at any s
    c = 1.0 - r2
    # factored as ((s + c)/s) ((s + c)/(1 + s)) / (s (s + 3) + 2c): no s^4 overflow for 1e-150 <= s <= 1e150
    R_l = torch.log1p(((s + c) / s) * ((s + c) / (1.0 + s)) / (s * (s + 3.0) + 2.0 * c))
    return 1.0 - R_l / R_h


def pilot_overhead(M_e: int, N_e: int, K: int, scheme: str = "reuse", M: int | None = None,
                   N_k: int | None = None, beam_sharing: int = 1) -> int:
    """Pilot symbols of one probing round (003 Remark 3, (48)).

    ``reuse``: M_e + N_e (every UT uses the same pilots); ``orthogonal``: K (M_e + N_e) (CDR with
    orthogonal pilots between UTs); ``full``: M + K N_k (Sec. III-B, full CSI); ``overlapping``: Fig. 8's
    scheme, beams shared by up to ``beam_sharing`` UTs need that many orthogonal downlink pilots:
    beam_sharing M_e + N_e.
    """
    M_e, N_e, K = check_int("M_e", M_e), check_int("N_e", N_e), check_int("K", K)
    if scheme == "reuse":
        return M_e + N_e
    if scheme == "orthogonal":
        return K * (M_e + N_e)
    if scheme == "full":
        if M is None or N_k is None:
            raise ValueError("scheme 'full' needs M and N_k")
        return check_int("M", M) + K * check_int("N_k", N_k)
    if scheme == "overlapping":
        return check_int("beam_sharing", beam_sharing) * M_e + N_e
    raise ValueError(f"scheme must be one of 'reuse', 'orthogonal', 'full', 'overlapping', got {scheme!r}")


def unit_skr(sum_rate_bits, overhead_symbols) -> torch.Tensor:
    """003 (48): R_unit = R_sum / T, bits per pilot symbol. Real numbers or tensors that broadcast."""
    T = as_real("overhead_symbols (pilot overhead T)", overhead_symbols)
    bad_T = ~(T > 0) | ~torch.isfinite(T)
    if torch.any(bad_T):
        raise ValueError(f"pilot overhead T must be finite and > 0, got {T[bad_T].flatten()[0].item()}")
    R = as_real("sum_rate_bits", sum_rate_bits)
    check_broadcast(sum_rate_bits=R.shape, overhead_symbols=T.shape)
    bad = ~(R >= 0) | ~torch.isfinite(R)
    if torch.any(bad):
        raise ValueError(f"sum_rate_bits must be finite and >= 0 (a key rate), got {R[bad].flatten()[0].item()!r}")
    return R / T
