"""Tier 1: beam-domain multi-user PKG physics (paper 003) against independent references.

References: the literal DFT formula (16), sample covariances of channels drawn by (1)-(3), the literal
Kronecker/matrix-square-root forms of (31) and of Theorem 1 / Appendix B with explicit pilot covariance
matrices, brute force over random semi-unitary designs, a 3 x 3 joint-covariance evaluation of the
leakage ratio, and a Monte Carlo of the probing itself (pilots, noise, LS estimates) with the mutual
information estimated from samples.
"""

from __future__ import annotations

import math

import pytest
import torch

from physics import multiuser as mu
from physics.checks import check_semi_unitary
from physics.multiuser.scenario import _complex

LN2 = math.log(2.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_paths(K, P, M, N, seed, power_db=(0.0, 10.0), on_grid=False, centres=None, spread=1.0):
    g = gen(seed)
    if on_grid:
        aod = mu.beam_grid(M)[torch.randint(0, M, (K, P), generator=g)]
        aoa = mu.beam_grid(N)[torch.randint(0, N, (K, P), generator=g)]
    else:
        if centres is None:
            aod = 1.98 * torch.rand(K, P, generator=g, dtype=torch.float64) - 0.99
        else:
            aod = torch.as_tensor(centres, dtype=torch.float64)[:, None] + spread * (
                2 * torch.rand(K, P, generator=g, dtype=torch.float64) - 1)
        aoa = 1.98 * torch.rand(K, P, generator=g, dtype=torch.float64) - 0.99
    lo, hi = power_db
    pw = 10 ** ((lo + (hi - lo) * torch.rand(K, P, generator=g, dtype=torch.float64)) / 10)
    return aoa, aod, pw


def sqrtm_psd(A):
    lam, V = torch.linalg.eigh(A)
    return (V * lam.clamp_min(0).sqrt().to(V.dtype)[..., None, :]) @ V.mH


def logdet(A):
    return torch.linalg.slogdet(A)[1]


# --------------------------------------------------------------------------------------------
# channel model and beam domain
# --------------------------------------------------------------------------------------------


def test_dft_matrix_is_the_literal_16_and_unitary():
    for N in (4, 7, 16):
        A = mu.dft_matrix(N)
        lit = torch.empty(N, N, dtype=torch.complex128)
        for m1 in range(1, N + 1):  # 1-based indices exactly as printed in (16)
            for m2 in range(1, N + 1):
                lit[m1 - 1, m2 - 1] = complex(math.cos(-2 * math.pi * (m1 - 1) * (m2 - N / 2) / N),
                                              math.sin(-2 * math.pi * (m1 - 1) * (m2 - N / 2) / N)) / math.sqrt(N)
        assert torch.allclose(A, lit, atol=1e-14)
        assert torch.allclose(A.mH @ A, torch.eye(N, dtype=A.dtype), atol=1e-13)
        # column m is the ULA response (2) at sin = 2 m / N - 1 (003 after (15))
        assert torch.allclose(A, mu.ula_response(N, mu.beam_grid(N)).mT, atol=1e-13)


def test_beam_domain_channel_is_sum_of_path_outer_products():
    aoa, aod, pw = random_paths(2, 4, 16, 4, seed=1)
    g = gen(2)
    alpha = torch.view_as_complex(torch.randn(2, 4, 2, generator=g, dtype=torch.float64))
    H = mu.geometric_channel(alpha, aoa, aod, 4, 16)
    # literal (1)-(3): sum of alpha a_UT a_BS^H with explicit loops
    for k in range(2):
        Hk = torch.zeros(4, 16, dtype=torch.complex128)
        for p in range(4):
            a_ut = torch.tensor([complex(math.cos(-math.pi * i * aoa[k, p]), math.sin(-math.pi * i * aoa[k, p]))
                                 for i in range(4)]) / 2.0
            a_bs = torch.tensor([complex(math.cos(-math.pi * i * aod[k, p]), math.sin(-math.pi * i * aod[k, p]))
                                 for i in range(16)]) / 4.0
            Hk += alpha[k, p] * torch.outer(a_ut, a_bs.conj())
        assert torch.allclose(H[k], Hk, atol=1e-13)
    u, v = mu.beam_vectors(aoa, aod, 4, 16)
    Ht = mu.beam_domain_channel(H)
    assert torch.allclose(Ht, torch.einsum("kp,kpn,kpm->knm", alpha.to(torch.complex128), u, v.conj()), atol=1e-13)
    assert torch.allclose(u.norm(dim=-1), torch.ones(2, 4, dtype=torch.float64), atol=1e-13)


def test_lambda_and_beam_covariances_match_sample_covariance_of_drawn_channels():
    M, N, P, n = 8, 2, 3, 40000
    aoa, aod, pw = random_paths(1, P, M, N, seed=3, power_db=(0, 6))
    u, v = mu.beam_vectors(aoa, aod, N, M)
    Lam = mu.lambda_from_paths(u, v, pw)[0]
    a = mu.draw_path_gains(torch.diag(pw[0]), n, gen(4))
    Ht = mu.beam_domain_channel(mu.geometric_channel(a, aoa[0], aod[0], N, M))  # [n, N, M]
    h = Ht.mT.reshape(n, -1)  # vec stacks columns
    emp = h.T @ h.conj() / n
    # entries of a sample covariance of Gaussian data have sd <= max_p g_p * sum... ~ trace/sqrt(n);
    # 6 standard errors of the largest entry
    tol = 6 * Lam.diagonal().real.max().item() * P / math.sqrt(n)
    assert (emp - Lam).abs().max().item() < tol
    R_bs, R_ut = mu.beam_covariances(u, v, pw)
    emp_bs = torch.einsum("snm,snq->mq", Ht.conj(), Ht) / n  # E{H~^H H~}
    emp_ut = torch.einsum("snm,sqm->nq", Ht, Ht.conj()) / n  # E{H~ H~^H}
    assert (emp_bs - R_bs[0]).abs().max().item() < tol
    assert (emp_ut - R_ut[0]).abs().max().item() < tol * 4
    # (19)-(20) are partial traces of the full Lambda (exact)
    L4 = Lam.reshape(M, N, M, N)
    assert torch.allclose(R_bs[0], torch.einsum("qnmn->mq", L4), atol=1e-12)
    assert torch.allclose(R_ut[0], torch.einsum("mnmq->nq", L4), atol=1e-12)


def test_beam_covariances_tend_to_diagonal_on_the_grid_and_spread_off_it():
    M, N = 32, 4
    aoa, aod, pw = random_paths(1, 3, M, N, seed=5, on_grid=True)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    R_bs, _ = mu.beam_covariances(u, v, pw)
    off = R_bs[0] - torch.diag(R_bs[0].diagonal())
    assert off.abs().max() < 1e-12  # (20): on the DFT grid the beam-domain covariance is diagonal
    aoa2, aod2, pw2 = random_paths(1, 3, M, N, seed=5)
    u2, v2 = mu.beam_vectors(aoa2, aod2, N, M)
    R2, _ = mu.beam_covariances(u2, v2, pw2)
    assert (R2[0] - torch.diag(R2[0].diagonal())).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------
# (31), (39), Theorem 2
# --------------------------------------------------------------------------------------------


def literal_31(U, Lam):
    """(31) exactly as printed, with the matrix square root of Lambda (bits)."""
    S = sqrtm_psd(Lam)
    B = U.mH @ Lam @ U
    Inv = torch.linalg.inv(torch.eye(B.shape[-1], dtype=B.dtype) + B)
    X = S @ U @ Inv @ U.mH @ Lam @ U @ Inv @ U.mH @ S
    return -logdet(torch.eye(Lam.shape[-1], dtype=Lam.dtype) - X) / LN2


def test_skr_orthogonal_pilots_equals_literal_31():
    M, N = 8, 2
    aoa, aod, pw = random_paths(3, 4, M, N, seed=6)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    Lam = mu.lambda_from_paths(u, v, pw)
    P = mu.random_semi_unitary((3,), M, 3, gen(7))
    C = mu.random_semi_unitary((3,), N, 2, gen(8))
    U = mu.kron_design(P, C)
    got = mu.skr_orthogonal_pilots(U, Lam)
    ref = torch.stack([literal_31(U[k], Lam[k]) for k in range(3)])
    assert got.dtype == torch.float64 and got.shape == (3,)
    assert torch.allclose(got, ref, rtol=1e-9, atol=1e-10)  # float64 roundoff of a 16 x 16 inverse


def test_kron_design_is_the_literal_kronecker_product():
    P = mu.random_semi_unitary((), 5, 2, gen(1))
    C = mu.random_semi_unitary((), 3, 2, gen(2))
    assert torch.allclose(mu.kron_design(P, C), torch.kron(P.conj(), C), atol=0)


def test_theorem2_bounds_random_designs_and_eigenvectors_attain_39():
    M, N, n = 16, 2, 6
    aoa, aod, pw = random_paths(4, 6, M, N, seed=9)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    Lam = mu.lambda_from_paths(u, v, pw)
    best = mu.optimal_rate(Lam, n)
    U_opt = mu.theorem2_design(Lam, n)
    # the eigenvector design attains (39) (float64 roundoff of a 32 x 32 eigendecomposition)
    assert torch.allclose(mu.skr_orthogonal_pilots(U_opt, Lam), best, rtol=1e-10)
    assert torch.allclose(literal_31(U_opt, Lam), best, rtol=1e-8)
    # brute force: 300 Haar-random semi-unitary U (general, not only Kronecker) never exceed it
    Ur = mu.random_semi_unitary((300, 4), M * N, n, gen(10))
    rates = mu.skr_orthogonal_pilots(Ur, Lam)
    assert torch.all(rates <= best + 1e-10)
    # and Kronecker-structured random designs neither
    Ur2 = mu.kron_design(mu.random_semi_unitary((300, 4), M, 3, gen(11)),
                         mu.random_semi_unitary((300, 4), N, 2, gen(12)))
    assert torch.all(mu.skr_orthogonal_pilots(Ur2, Lam) <= best + 1e-10)
    # the other eigenvalue order of (39) (n smallest) gives about 0 (docs/architecture.md section 1): rank 6 < 32 - 6
    mu_all = torch.linalg.eigvalsh(Lam).clamp_min(0)[..., :n]
    assert torch.all(((2 * torch.log1p(mu_all) - torch.log1p(2 * mu_all)).sum(-1) / LN2) < 1e-9)
    # path-domain evaluation (N_P x N_P Gram matrix) equals the full eigendecomposition
    assert torch.allclose(mu.theorem2_rate_paths(u, v, pw, n), best, rtol=1e-10)


def test_unit_vector_rule_is_optimal_on_grid_and_falls_short_off_grid():
    M, N, n = 32, 4, 8
    aoa, aod, pw = random_paths(20, 6, M, N, seed=13, on_grid=True)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    Lam = mu.lambda_from_paths(u, v, pw)
    assert (Lam - torch.diag_embed(Lam.diagonal(dim1=-2, dim2=-1))).abs().max() < 1e-12
    on = mu.skr_orthogonal_pilots(mu.unit_vector_design(Lam, n), Lam)
    assert torch.allclose(on, mu.optimal_rate(Lam, n), rtol=1e-10)
    aoa, aod, pw = random_paths(20, 6, M, N, seed=14)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    Lam = mu.lambda_from_paths(u, v, pw)
    ratio = mu.skr_orthogonal_pilots(mu.unit_vector_design(Lam, n), Lam) / mu.optimal_rate(Lam, n)
    assert torch.all(ratio <= 1 + 1e-12)
    # off the grid the power leaks over neighbouring beams: docs/architecture.md section 1 reports ~0.8 of (39)
    # on average
    assert ratio.mean() < 0.95


# --------------------------------------------------------------------------------------------
# Theorem 1 (30) vs the literal Kronecker form of Appendix B with explicit pilot covariances
# --------------------------------------------------------------------------------------------


def literal_theorem1(P, C, Lams, SD, SU):
    """Appendix B (58)-(66) literally. ``SD[k'][k]`` = S_k'k^DL = S_k' S_k^H, ``SU[k'][k]`` likewise.
    Noise: I_{T_D} kron C^H C (downlink) and P^T P^* kron I (uplink) (58), (60). Returns [K] bits."""
    K = P.shape[0]
    rates = []
    for k in range(K):
        # z_D,k = sum_k' ((P_k' S_k'k)^T kron C_k^H) vec(H_k) + noise (25)
        A = sum(torch.kron((P[kp] @ SD[kp][k]).mT.contiguous(), C[k].mH.contiguous()) for kp in range(K))
        RD = A @ Lams[k] @ A.mH + torch.kron(torch.eye(P.shape[-1], dtype=P.dtype), C[k].mH @ C[k])
        # z_U,k = sum_k' (P_k^T kron (S_k'k^UL)^T C_k'^H) vec(H_k') + noise (26)
        Bs = [torch.kron(P[k].mT.contiguous(), SU[kp][k].mT @ C[kp].mH) for kp in range(K)]
        RU = sum(Bs[kp] @ Lams[kp] @ Bs[kp].mH for kp in range(K)) + torch.kron(
            P[k].mT @ P[k].conj(), torch.eye(C.shape[-1], dtype=P.dtype))
        RDU = A @ Lams[k] @ Bs[k].mH
        # (56)/(64): I = -log det(I - R_U^-1 R_UD R_D^-1 R_DU)
        X = torch.linalg.solve(RU, RDU.mH) @ torch.linalg.solve(RD, RDU)
        rates.append(-logdet(torch.eye(X.shape[-1], dtype=X.dtype) - X) / LN2)
    return torch.stack(rates)


@pytest.fixture(scope="module")
def small_system():
    K, M, N, Np, Me, Ne = 3, 8, 2, 3, 2, 2
    aoa, aod, pw = random_paths(K, Np, M, N, seed=20, power_db=(0, 10))
    u, v = mu.beam_vectors(aoa, aod, N, M)
    Lam = mu.lambda_from_paths(u, v, pw)
    P = mu.random_semi_unitary((K,), M, Me, gen(21))
    C = mu.random_semi_unitary((K,), N, Ne, gen(22))
    return dict(K=K, M=M, N=N, Np=Np, Me=Me, Ne=Ne, aoa=aoa, aod=aod, pw=pw, u=u, v=v, Lam=Lam, P=P, C=C)


def test_pilot_reuse_30_equals_literal_theorem1(small_system):
    s = small_system
    K, Me, Ne = s["K"], s["Me"], s["Ne"]
    eye = [[torch.eye(Me, dtype=torch.complex128)] * K for _ in range(K)]
    eyeU = [[torch.eye(Ne, dtype=torch.complex128)] * K for _ in range(K)]
    # (30) holds for any precoder scale too (budget-scaled designs): scale P by 0.7
    for scale in (1.0, 0.7):
        P = s["P"] * scale
        ref = literal_theorem1(P, s["C"], s["Lam"], eye, eyeU)
        got = mu.skr_pilot_reuse(P, s["C"], s["Lam"])
        assert got.dtype == torch.float64 and got.shape == (K,)
        assert torch.allclose(got, ref, rtol=1e-9, atol=1e-11)  # float64 solves of 4 x 4 systems
        # the path-domain form the scenario trains on
        G = torch.diag(s["pw"].reshape(-1))
        assert torch.allclose(mu.skr_pilot_reuse_paths(P, s["C"], s["u"], s["v"], G), ref, rtol=1e-9, atol=1e-11)


def test_30_reduces_to_31_with_orthogonal_pilots(small_system):
    s = small_system
    K, Me, Ne = s["K"], s["Me"], s["Ne"]
    zD, zU = torch.zeros(Me, Me, dtype=torch.complex128), torch.zeros(Ne, Ne, dtype=torch.complex128)
    SD = [[torch.eye(Me, dtype=torch.complex128) if i == j else zD for j in range(K)] for i in range(K)]
    SU = [[torch.eye(Ne, dtype=torch.complex128) if i == j else zU for j in range(K)] for i in range(K)]
    ref = literal_theorem1(s["P"], s["C"], s["Lam"], SD, SU)
    got31 = mu.skr_orthogonal_pilots(mu.kron_design(s["P"], s["C"]), s["Lam"])
    assert torch.allclose(got31, ref, rtol=1e-9, atol=1e-11)
    # K = 1: (30) is (31) (Remark 5)
    one = mu.skr_pilot_reuse(s["P"][:1], s["C"][:1], s["Lam"][:1])
    assert torch.allclose(one, got31[:1], rtol=1e-10)


def test_interference_neutralisation_makes_30_equal_31():
    # Remark 6: P~_k^H R~_BS,k' = 0 for k' != k (non-overlapping beams on the grid) -> (30) = (31)
    M, N, Me, Ne = 16, 2, 3, 2
    grid = mu.beam_grid(M)
    aod = torch.stack([grid[[0, 1, 2]], grid[[5, 6, 7]], grid[[10, 11, 12]]])
    aoa = 1.98 * torch.rand(3, 3, generator=gen(30), dtype=torch.float64) - 0.99
    pw = 10 ** (torch.rand(3, 3, generator=gen(31), dtype=torch.float64))
    u, v = mu.beam_vectors(aoa, aod, N, M)
    Lam = mu.lambda_from_paths(u, v, pw)
    R_bs, R_ut = mu.beam_covariances(u, v, pw)
    P, C = mu.algorithm1_design(R_bs, R_ut, Me, Ne, overlap_threshold_db=-30)
    r30 = mu.skr_pilot_reuse(P, C, Lam)
    r31 = mu.skr_orthogonal_pilots(mu.kron_design(P, C), Lam)
    assert torch.allclose(r30, r31, rtol=1e-10)
    # Algorithm 1 on the grid, users not overlapping: Theorem 2's rate (n = M_e N_e) per user
    assert torch.allclose(r30, mu.optimal_rate(Lam, Me * Ne), rtol=1e-10)


def test_algorithm1_equals_theorem2_on_grid_for_separated_users_at_paper_size():
    # 003 Sec. VI: M = 128, K = 6, N_k = 4, 6 paths, M_e = 6, N_e = 4; paths on the DFT grid, each
    # user's 6 BS beams inside its own block of 12 beams and the blocks 9 beams apart
    M, K, N, Np, Me, Ne = 128, 6, 4, 6, 6, 4
    g = gen(40)
    grid, grid_ut = mu.beam_grid(M), mu.beam_grid(N)
    aod = torch.stack([grid[21 * k + torch.randperm(12, generator=g)[:Np]] for k in range(K)])
    aoa = grid_ut[torch.randint(0, N, (K, Np), generator=g)]
    pw = 10 ** (2 * torch.rand(K, Np, generator=g, dtype=torch.float64))
    u, v = mu.beam_vectors(aoa, aod, N, M)
    R_bs, R_ut = mu.beam_covariances(u, v, pw)
    P, C = mu.algorithm1_design(R_bs, R_ut, Me, Ne)
    G = torch.diag(pw.reshape(-1))
    r30 = mu.skr_pilot_reuse_paths(P, C, u, v, G)
    assert torch.allclose(r30, mu.theorem2_rate_paths(u, v, pw, Me * Ne), rtol=1e-10)
    # disjoint beams: downlink power exactly K M_e, untouched by the budget
    assert math.isclose(float((P.sum(-3).abs() ** 2).sum()), K * Me, rel_tol=1e-12)
    assert torch.equal(mu.apply_budget(P, K * Me), P)


def test_pilot_reuse_full_lambda_matches_paths_at_paper_size():
    M, K, N, Np, Me, Ne = 128, 6, 4, 6, 6, 4
    aoa, aod, pw = random_paths(K, Np, M, N, seed=41)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    P = mu.random_semi_unitary((K,), M, Me, gen(42))
    C = mu.random_semi_unitary((K,), N, Ne, gen(43))
    full = mu.skr_pilot_reuse(P, C, mu.lambda_from_paths(u, v, pw))
    paths = mu.skr_pilot_reuse_paths(P, C, u, v, torch.diag(pw.reshape(-1)))
    assert torch.allclose(full, paths, rtol=1e-9, atol=1e-11)


def test_leakage_aware_27_full_lambda_matches_paths():
    K, M, N, Np, Me, Ne = 3, 8, 2, 3, 2, 2
    aoa, aod, pw = random_paths(K, Np, M, N, seed=44)
    aod[1, 0] = aod[0, 0]  # UT 0 and UT 1 share a scatterer: same AoD, correlated gains
    G = torch.diag(pw.reshape(-1))
    G[0 * Np + 0, 1 * Np + 0] = G[1 * Np + 0, 0 * Np + 0] = 0.9 * math.sqrt(pw[0, 0] * pw[1, 0])
    u, v = mu.beam_vectors(aoa, aod, N, M)
    P = mu.random_semi_unitary((K,), M, Me, gen(45))
    C = mu.random_semi_unitary((K,), N, Ne, gen(46))
    full = mu.skr_leakage_aware(P, C, mu.lambda_joint_from_paths(u, v, G))
    paths = mu.skr_leakage_aware_paths(P, C, u, v, G)
    assert torch.allclose(full, paths, rtol=1e-9, atol=1e-11)
    # a block-diagonal joint Lambda gives back the per-user Lambda of (30)
    Lj = mu.lambda_joint_from_paths(u, v, torch.diag(pw.reshape(-1)))
    assert torch.allclose(Lj[..., range(K), range(K), :, :], mu.lambda_from_paths(u, v, pw), atol=1e-13)


# --------------------------------------------------------------------------------------------
# leakage ratio (43)
# --------------------------------------------------------------------------------------------


def leakage_from_covariance(rho, s):
    """gamma = 1 - R_l/R_h with R = I(x_D; x_U | w) of unit-power complex channels h1, h2 with
    E{h1 h2^*} = rho, x_D = h1 + n, x_U = h1 + n', w = h2 + n'' (noises of variance s): 3 x 3 logdets."""
    def cond_mi(r):
        C = torch.tensor([[1 + s, 1, r], [1, 1 + s, r], [r, r, 1 + s]], dtype=torch.float64)
        return logdet(C[[0, 2]][:, [0, 2]]) + logdet(C[[1, 2]][:, [1, 2]]) - logdet(C) - math.log(1 + s)
    return float(1 - cond_mi(rho) / cond_mi(0.0))  # a plain float: pytest >= 9.2 iterates a tensor given to approx


def test_leakage_ratio_against_joint_covariance_and_limits():
    for rho in (0.0, 0.3, -0.6, 0.9, 1.0):
        for s in (1e-3, 0.1, 1.0, 10.0):
            assert float(mu.leakage_ratio(rho, s)) == pytest.approx(leakage_from_covariance(rho, s), abs=1e-10)
    s = torch.logspace(-6, 2, 30, dtype=torch.float64)
    assert torch.all(mu.leakage_ratio(0.0, s).abs() < 1e-14)
    for rho in (0.2, 0.7, 1.0):
        assert torch.equal(mu.leakage_ratio(rho, s), mu.leakage_ratio(-rho, s))  # even in rho
    closed = torch.log((1 + s) ** 3 * (3 + s) / (s * (2 + s) ** 3)) / torch.log((1 + s) ** 2 / (s * (2 + s)))
    assert torch.allclose(mu.leakage_ratio(1.0, s), closed, rtol=1e-10)  # docs/architecture.md's rho = 1 form
    assert float(mu.leakage_ratio(1.0, 1e-6)) == pytest.approx(0.978, abs=5e-4)  # docs/architecture.md's number
    # -> 1 logarithmically: 1 - gamma ~ log(4/3) / log(1/(2 s)); relative error O(s + 1/log(1/s))
    for s0 in (1e-8, 1e-12, 1e-16):
        gap = 1 - float(mu.leakage_ratio(1.0, s0))
        assert gap * math.log(1 / (2 * s0)) == pytest.approx(math.log(4 / 3), rel=1e-6)
    # large noise: gamma = 2 rho^2 / s + O(1/s^2) (expanding R_l / R_h in 1/s); the factored form keeps it
    # finite where the literal s^4 overflowed (it returned -1e100 at s = 1e100 before)
    for rho in (0.3, 0.9, 1.0):
        assert float(mu.leakage_ratio(rho, 1e6)) * 1e6 / (2 * rho**2) == pytest.approx(1.0, rel=1e-4)
        assert 0.0 <= float(mu.leakage_ratio(rho, 1e100)) <= 1e-90
    # rho < 1: leakage falls again at high SNR (003 Fig. 9)
    assert float(mu.leakage_ratio(0.9, 1e-8)) < float(mu.leakage_ratio(0.9, 1e-2))


# --------------------------------------------------------------------------------------------
# Monte Carlo of the probing: pilots, noise, LS estimates, MI from samples
# --------------------------------------------------------------------------------------------


def mc_tolerance(se, d_x, d_y, n_batch):
    """4 standard errors plus the plug-in estimator's bias bound: the Gaussian MI estimate from n samples
    of a complex d_x + d_y vector is biased by about d_x d_y / n nats (first-order term of the
    log-det bias), here converted to bits."""
    return 4 * se + d_x * d_y / n_batch / LN2


@pytest.mark.parametrize("pilots", ["reuse", "orthogonal"])
def test_monte_carlo_probing_matches_30_and_31(small_system, pilots):
    s = small_system
    K, d = s["K"], s["Me"] * s["Ne"]
    G = torch.diag(s["pw"].reshape(-1))
    n, batches = 60000, 20
    obs = mu.simulate_probing(s["P"], s["C"], s["aoa"], s["aod"], G, n, gen(50), pilots=pilots)
    closed = (mu.skr_pilot_reuse(s["P"], s["C"], s["Lam"]) if pilots == "reuse"
              else mu.skr_orthogonal_pilots(mu.kron_design(s["P"], s["C"]), s["Lam"]))
    for k in range(K):
        mean, se = mu.mc_mutual_information(obs["z_D"][:, k], obs["z_U"][:, k], batches=batches)
        assert abs(mean - float(closed[k])) < mc_tolerance(se, d, d, n // batches), (k, mean, float(closed[k]), se)


def test_monte_carlo_probing_matches_27_with_shared_scatterers():
    K, M, N, Np, Me, Ne = 2, 8, 2, 3, 2, 2
    aoa, aod, pw = random_paths(K, Np, M, N, seed=60, power_db=(5, 10))
    aod[1, :2] = aod[0, :2]  # two shared scatterers
    G = torch.diag(pw.reshape(-1))
    for p in range(2):
        G[p, Np + p] = G[Np + p, p] = 0.95 * math.sqrt(pw[0, p] * pw[1, p])
    u, v = mu.beam_vectors(aoa, aod, N, M)
    P = mu.random_semi_unitary((K,), M, Me, gen(61))
    C = mu.random_semi_unitary((K,), N, Ne, gen(62))
    closed = mu.skr_leakage_aware(P, C, mu.lambda_joint_from_paths(u, v, G))
    n, batches = 60000, 20
    obs = mu.simulate_probing(P, C, aoa, aod, G, n, gen(63))
    d = Me * Ne
    for k in range(K):
        i = 1 - k
        mean, se = mu.mc_mutual_information(obs["z_D"][:, k], obs["z_U"][:, k], obs["z_D"][:, i], batches=batches)
        assert abs(mean - float(closed[k])) < mc_tolerance(se, d, 2 * d, n // batches), (k, mean, float(closed[k]))
    # sharing scatterers leaks: (27) is below the rate that ignores the curious UT (30)
    r30 = mu.skr_pilot_reuse_paths(P, C, u, v, G)
    assert torch.all(closed < r30)


# --------------------------------------------------------------------------------------------
# designs and budget
# --------------------------------------------------------------------------------------------


def test_budget_scales_coherent_precoders_only():
    e = torch.eye(8, dtype=torch.complex128)[:, :2]
    P = torch.stack([e, e])  # both UTs on the same two beams: power ||2 e||^2 = 8 > K M_e = 4
    Pb = mu.apply_budget(P, 4.0)
    assert math.isclose(float((Pb.sum(-3).abs() ** 2).sum()), 4.0, rel_tol=1e-12)
    assert torch.equal(mu.apply_budget(P, None), P)
    # the uplink rate is scale-invariant, so only the downlink loses: rate with budget <= without
    aoa, aod, pw = random_paths(2, 3, 8, 2, seed=70)
    u, v = mu.beam_vectors(aoa, aod, 2, 8)
    Lam = mu.lambda_from_paths(u, v, pw)
    C = torch.eye(2, dtype=torch.complex128).expand(2, 2, 2)
    assert torch.all(mu.skr_pilot_reuse(Pb, C, Lam) <= mu.skr_pilot_reuse(P, C, Lam) + 1e-12)


def test_algorithm1_threshold_and_disjointness():
    M, N, Me, Ne = 64, 4, 6, 4
    aoa, aod, pw = random_paths(4, 6, M, N, seed=80, centres=[-0.5, -0.45, 0.2, 0.6], spread=0.05)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    R_bs, R_ut = mu.beam_covariances(u, v, pw)
    for t in (-10.0, -20.0, -40.0):
        P, C = mu.algorithm1_design(R_bs, R_ut, Me, Ne, overlap_threshold_db=t)
        used = P.abs().sum(-1).real  # [K, M] 0/1 occupancy
        assert torch.all(used.sum(0) <= 1)  # beams disjoint across UTs
        check_semi_unitary("P", P)
    Ps, _ = mu.strongest_beams_design(R_bs, R_ut, Me, Ne)
    assert torch.any(Ps.abs().sum(-1).real.sum(0) > 1)  # the overlapping UTs 0 and 1 share beams


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


def test_bad_input_names_the_value():
    aoa, aod, pw = random_paths(2, 3, 8, 2, seed=90)
    u, v = mu.beam_vectors(aoa, aod, 2, 8)
    Lam = mu.lambda_from_paths(u, v, pw)
    R_bs, R_ut = mu.beam_covariances(u, v, pw)
    with pytest.raises(ValueError, match="K M_e <= M.*K=2, M_e=5, M=8"):
        mu.algorithm1_design(R_bs, R_ut, 5, 2)
    with pytest.raises(ValueError, match="N_k must be an integer >= 1, got 0"):
        mu.beam_vectors(aoa, aod, 0, 8)
    with pytest.raises(ValueError, match="M must be an integer >= 1, got 2.5"):
        mu.geometric_channel(torch.ones(3), aoa[0], aod[0], 2, 2.5)
    bad = Lam[0].clone()
    bad[0, 1] += 1.0
    with pytest.raises(ValueError, match="Hermitian"):
        mu.optimal_rate(bad, 2)
    with pytest.raises(ValueError, match="positive semi-definite.*smallest eigenvalue -1"):
        mu.optimal_rate(-torch.eye(4, dtype=torch.complex128), 2)
    with pytest.raises(ValueError, match="path powers g must be finite"):
        mu.lambda_from_paths(u, v, torch.tensor([[1.0, float("inf"), 1.0]] * 2))
    with pytest.raises(ValueError, match="path powers g must be >= 0"):
        mu.lambda_from_paths(u, v, -pw)
    with pytest.raises(ValueError, match=r"rho must lie in \[-1, 1\], got 1.5"):
        mu.leakage_ratio(1.5, 1.0)
    with pytest.raises(ValueError, match="noise_var must be finite and > 0, got 0"):
        mu.leakage_ratio(0.5, 0.0)
    with pytest.raises(ValueError, match="T_D = 3 is shorter than the effective channel: need T_D >= 4"):
        mu.check_pilot_lengths(3, 4, 4, 4)
    with pytest.raises(ValueError, match="T_U = 7 is shorter.*need T_U >= 8"):
        mu.check_pilot_lengths(12, 7, 6, 4, K=2, pilots="orthogonal")
    with pytest.raises(ValueError, match="n .* exceeds the channel dimension M N_k = 16"):
        mu.optimal_rate(Lam, 17)
    with pytest.raises(ValueError, match="semi-unitary"):
        mu.skr_orthogonal_pilots(2 * mu.unit_vector_design(Lam, 2), Lam)
    with pytest.raises(ValueError, match="sin_angle must lie in"):
        mu.ula_response(4, 1.2)
    with pytest.raises(ValueError, match="M_e must be an integer >= 1, got 2.5"):
        mu.strongest_beams_design(R_bs, R_ut, 2.5, 2)
    with pytest.raises(ValueError, match="cols <= rows, got rows = 2, cols = 4"):
        mu.random_semi_unitary((3,), 2, 4, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="sum_rate_bits must be finite and >= 0.*-1.0"):
        mu.unit_skr(torch.tensor([3.0, -1.0]), 10)
    with pytest.raises(ValueError, match=r"rho must be real \(pass \|rho\| for complex channels\)"):
        mu.leakage_ratio(torch.tensor(0.9j), 1.0)
    with pytest.raises(ValueError, match="rho must be a real number or a real tensor, got str '0.5'"):
        mu.leakage_ratio("0.5", 1.0)
    with pytest.raises(ValueError, match=r"do not broadcast: rho batch shape \(2,\), noise_var batch shape \(3,\)"):
        mu.leakage_ratio([0.1, 0.2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"noise_var must lie in \[1e-150, 1e150\].*1e\+160"):
        mu.leakage_ratio(0.5, 1e160)
    assert torch.equal(mu.optimal_rate(Lam[0].numpy(), 2), mu.optimal_rate(Lam[0], 2))  # numpy Lambda accepted
    with pytest.raises(ValueError, match="Lambda must be a real or complex tensor .*got str"):
        mu.optimal_rate("Lambda", 2)
    U2 = mu.unit_vector_design(Lam, 2)
    with pytest.raises(ValueError, match=r"batch dimensions do not broadcast: U batch shape \(2,\), Lambda batch shape "
                                         r"\(3,\)"):
        mu.skr_orthogonal_pilots(U2, torch.cat([Lam, Lam[:1]]))
    with pytest.raises(ValueError, match="spacing_wavelengths must be finite"):
        mu.ula_response(4, 0.5, spacing_wavelengths=float("nan"))
    with pytest.raises(ValueError, match="alpha must be finite"):
        mu.geometric_channel(torch.full((3,), float("nan")), aoa[0], aod[0], 2, 8)
    with pytest.raises(ValueError, match=r"sin_aoa and sin_aod must have the same shape.*\(2, 3\) and \(2, 2\)"):
        mu.beam_vectors(aoa, aod[:, :2], 2, 8)


def test_designs_with_more_than_unit_pilot_power_are_refused():
    """(30) takes P~_k^H P~_k = I and C~_k^H C~_k = I: an unnormalised DFT matrix (a common slip) would raise
    the rate by pilot power alone, so it is refused; scaled-down designs (the downlink budget) are feasible."""
    from physics.multiuser import MultiUserScenario

    # budget=False: these are the raw designs (before the budget), which a budgeted scenario refuses when the UTs'
    # precoders add above K M_e (tested in test_bad_input_is_refused_or_empty_gives_empty)
    sc = MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2, budget=False)
    g = torch.Generator().manual_seed(5)
    b = sc.sample(3, g)
    P, C = sc.baseline_designs(b, g)["eigen_beams"]
    base = sc.rates(b, P, C)
    assert torch.all(sc.rates(b, 0.5 * P, C) <= base + 1e-12)  # less pilot power never helps
    with pytest.raises(ValueError, match="P carries more than unit pilot power.*largest eigenvalue of P\\^H P is 4"):
        sc.rates(b, 2 * P, C)
    with pytest.raises(ValueError, match="C carries more than unit pilot power"):
        sc.rates(b, P, 3 * C, "leakage_exact")
    P0 = P.clone()
    P0[:, 1] = 0  # a UT with no pilot power: (30) is undefined (singular covariances), not a crash
    with pytest.raises(ValueError, match="P must have full column rank for every UT"):
        sc.rates(b, P0, C)
    with pytest.raises(ValueError, match="C must have full column rank"):
        mu.skr_pilot_reuse(P[0], 0 * C[0], torch.eye(32, dtype=torch.complex128).expand(2, 32, 32))
    F = torch.fft.fft(torch.eye(16, dtype=torch.complex128))[:, :2]  # unnormalised DFT columns, |f|^2 = 16
    with pytest.raises(ValueError, match="P carries more than unit pilot power.*is 16"):
        sc.rates(b, F.expand(3, 2, 16, 2), C)
    with pytest.raises(ValueError, match=r"P \[n, K, M, M_e\] = \[3, 2, 16, M_e\]"):
        sc.rates(b, P[:2], C[:2])
    Lam = torch.eye(32, dtype=torch.complex128).expand(2, 32, 32)
    with pytest.raises(ValueError, match="P carries more than unit pilot power"):
        mu.skr_pilot_reuse(2 * P[0], C[0], Lam)
    with pytest.raises(ValueError, match=r"batch dimensions do not broadcast: P batch shape \(2,\), "
                                         r"C batch shape \(2,\), Lambda batch shape \(3,\)"):
        mu.skr_pilot_reuse(P[:2], C[:2], Lam.expand(3, 2, 32, 32))
    bad = dict(b)
    bad["power_db"] = b["power_db"].clone()
    bad["power_db"][1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="power_db must be finite"):
        sc.features(bad)  # named at the input, not after a NaN loss
    with pytest.raises(ValueError, match=r"rho must be finite and lie in \[-1.0, 1.0\], got 2.0"):
        MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2, shared_paths=1).point(1, rho=2.0)


# --------------------------------------------------------------------------------------------
# the ninth NIST test of 003 Table I (keygen/randomness.py, appended for 003)
# --------------------------------------------------------------------------------------------


def test_eigen_beams_from_paths_stay_semi_unitary_when_two_paths_almost_coincide():
    """The path form of the eigen beams (eigenpairs of the small N_P x N_P Gram matrix) against eigh of the full
    beam-domain covariance R~_BS = V^T diag(g) conj(V) (the literal form): same leading subspace. Two paths 1e-9
    apart in sin(AoD) make the Gram matrix's smallest eigenvalue ~1e-16 of the largest; the design must still be
    semi-unitary (it used to carry 1.001 of unit power, found on 1 draw of 1000). Float64: the orthonormality
    tolerance 1e-12 is ~1e4 eps; the subspace overlap of the leading, well-separated eigenvalue is ~eps."""
    M, N = 32, 4
    aod = torch.tensor([[0.3, 0.3 + 1e-9, -0.4, 0.7]], dtype=torch.float64)
    aoa = torch.tensor([[0.1, 0.1 + 1e-9, 0.5, -0.2]], dtype=torch.float64)
    g = torch.tensor([[1e3, 1.0, 10.0, 1e-2]], dtype=torch.float64)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    for M_e, N_e in ((4, 4), (3, 2), (6, 4)):
        P, C = mu.eigen_beams_from_paths(u, v, g, M_e, N_e)
        for X, e in ((P, M_e), (C, N_e)):
            assert torch.allclose(X.mH @ X, torch.eye(e, dtype=X.dtype).expand_as(X.mH @ X), atol=1e-12)
        R_bs, _ = mu.beam_covariances(u, v, g)
        lam, V = torch.linalg.eigh(R_bs)
        top = V[..., -1]  # the 1e3 path's direction, far from the other eigenvalues
        assert ((top.conj()[..., None, :] @ P[..., :1]).abs().squeeze() - 1).abs().max() < 1e-9


# --------------------------------------------------------------------------------------------
# a black-box audit: bad input is a ValueError naming the argument, its value or shape and what is allowed
# (not a bare TypeError / IndexError / LinAlgError, nor a silently wrong value); an empty batch is an empty result
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit():
    from physics.multiuser import MultiUserScenario

    K, M, N, Np, Me, Ne = 2, 8, 2, 3, 2, 2
    aoa, aod, pw = random_paths(K, Np, M, N, seed=95)
    u, v = mu.beam_vectors(aoa, aod, N, M)
    G = torch.diag(pw.reshape(-1))
    R_bs, R_ut = mu.beam_covariances(u, v, pw)
    P, C = mu.random_semi_unitary((K,), M, Me, gen(96)), mu.random_semi_unitary((K,), N, Ne, gen(97))
    sc = MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2)  # budget K M_e = 4
    b = sc.sample(3, gen(98))
    over = torch.eye(16, 2, dtype=torch.complex128).expand(3, 2, 16, 2)  # both UTs on the same beams: power 8
    return dict(u=u, v=v, pw=pw, G=G, R_bs=R_bs, R_ut=R_ut, P=P, C=C, U=mu.kron_design(P, C),
                Lam=mu.lambda_from_paths(u, v, pw), Lj=mu.lambda_joint_from_paths(u, v, G), sc=sc, b=b,
                out=sc.baselines(b, gen(99))["eigen_beams"], over=over)


def _hermitian_broken(R):
    R = R.clone()
    R[..., 0, 1] += 1.0
    return R


def _budget(value):
    return lambda d: mu.apply_budget(d["P"], value)


NAN, INF = float("nan"), float("inf")
REFUSED = {
    # Theorem 1/2 closed forms: U without columns, an empty Lambda, P and C that are no arrays
    "U without columns": (lambda d: mu.skr_orthogonal_pilots(d["U"][..., :0], d["Lam"]),
                          r"U must be tall \[\.\.\., D, n\] with 1 <= n <= D, got shape \(2, 16, 0\)"),
    "empty Lambda": (lambda d: mu.optimal_rate(torch.zeros(0, 0, dtype=torch.complex128), 1),
                     r"Lambda must be \[\.\.\., D, D\] with D >= 1, got shape \(0, 0\)"),
    "P a string": (lambda d: mu.skr_pilot_reuse("abc", d["C"], d["Lam"]),
                   r"P must be a real or complex tensor \(or array\), got str"),
    "C None": (lambda d: mu.skr_pilot_reuse(d["P"], None, d["Lam"]),
               r"C must be a real or complex tensor \(or array\), got NoneType"),
    "leakage P None": (lambda d: mu.skr_leakage_aware(None, d["C"], d["Lj"]), "P must be a real or complex tensor"),
    "no UT": (lambda d: mu.skr_pilot_reuse(d["P"][:0], d["C"][:0], d["Lam"][:0]),
              r"Lambda must be \[\.\.\., K, M N_k, M N_k\] with K >= 1, got shape \(0, 16, 16\)"),
    # theorem2_rate_paths: n an integer >= 1 (0 used to slice all paths, -1 all but one), g checked
    "theorem2 n 1.5": (lambda d: mu.theorem2_rate_paths(d["u"], d["v"], d["pw"], 1.5),
                       r"n \(number of effective channel dimensions\) must be an integer >= 1, got 1.5"),
    "theorem2 n 0": (lambda d: mu.theorem2_rate_paths(d["u"], d["v"], d["pw"], 0), "integer >= 1, got 0"),
    "theorem2 n -1": (lambda d: mu.theorem2_rate_paths(d["u"], d["v"], d["pw"], -1), "integer >= 1, got -1"),
    "theorem2 g < 0": (lambda d: mu.theorem2_rate_paths(d["u"], d["v"], -d["pw"], 2), "path powers g must be >= 0"),
    "theorem2 g NaN": (lambda d: mu.theorem2_rate_paths(d["u"], d["v"], d["pw"] * NAN, 2),
                       "path powers g must be finite"),
    # apply_budget: P [..., K, M, M_e], budget None or a finite number > 0 (not a bool)
    "budget 2-D P": (lambda d: mu.apply_budget(d["P"][0], 4.0),
                     r"P must be \[\.\.\., K, M, M_e\] \(one precoder per UT\), got shape \(8, 2\)"),
    **{f"budget {val!r}": (_budget(val), rf"budget must be None or a finite number > 0 .*got {pat}")
       for val, pat in ((-1.0, "-1.0"), (NAN, "nan"), (0.0, "0.0"), (True, "True"), ("4", "'4'"))},
    # beam-domain designs: M_e <= M, N_e <= N_k; R finite, square, Hermitian, non-negative diagonal; numbers
    "eigen M_e > M": (lambda d: mu.eigen_beams_design(d["R_bs"], d["R_ut"], 40, 2),
                      "need M_e <= M and N_e <= N_k, got M_e=40, M=8, N_e=2, N_k=2"),
    "eigen N_e > N_k": (lambda d: mu.eigen_beams_design(d["R_bs"], d["R_ut"], 2, 3), "N_e=3, N_k=2"),
    "eigen NaN": (lambda d: mu.eigen_beams_design(d["R_bs"] * NAN, d["R_ut"], 2, 2), "R_bs must be finite"),
    "eigen not Hermitian": (lambda d: mu.eigen_beams_design(_hermitian_broken(d["R_bs"]), d["R_ut"], 2, 2),
                            r"R_bs must be Hermitian, got max \|R - R\^H\| / max \|R\| = "),
    "strongest NaN": (lambda d: mu.strongest_beams_design(d["R_bs"] * NAN, d["R_ut"], 2, 2), "R_bs must be finite"),
    "strongest R_ut not Hermitian": (lambda d: mu.strongest_beams_design(d["R_bs"], _hermitian_broken(d["R_ut"]),
                                                                         2, 2), "R_ut must be Hermitian"),
    "algorithm1 NaN": (lambda d: mu.algorithm1_design(d["R_bs"] * NAN, d["R_ut"], 2, 2), "R_bs must be finite"),
    "algorithm1 negative": (lambda d: mu.algorithm1_design(-d["R_bs"], d["R_ut"], 2, 2),
                            r"R_bs must have a non-negative diagonal \(beam powers\), got -"),
    "algorithm1 not square": (lambda d: mu.algorithm1_design(torch.zeros(3, 2, 16, 17), d["R_ut"], 2, 2),
                              r"R_bs must be a square \[\.\.\., D, D\] covariance with D >= 1, got shape "
                              r"\(3, 2, 16, 17\)"),
    "algorithm1 threshold str": (lambda d: mu.algorithm1_design(d["R_bs"], d["R_ut"], 2, 2, overlap_threshold_db="-20"),
                                 r"overlap_threshold_db must be a real number \(dB\) <= 0, got '-20'"),
    # unit_skr: real numbers or tensors that broadcast
    "unit_skr complex": (lambda d: mu.unit_skr(1 + 1j, 4), "sum_rate_bits must be real, got a complex value"),
    "unit_skr T str": (lambda d: mu.unit_skr(1.0, "4"),
                       r"overhead_symbols \(pilot overhead T\) must be a real number or a real tensor, got str '4'"),
    "unit_skr shapes": (lambda d: mu.unit_skr([1.0, 2.0, 3.0], [4, 5]),
                        r"batch dimensions do not broadcast: sum_rate_bits batch shape \(3,\), "
                        r"overhead_symbols batch shape \(2,\)"),
    "unit_skr T 0": (lambda d: mu.unit_skr([1.0, 2.0], [4, 0]), "pilot overhead T must be finite and > 0, got 0.0"),
    # random draws: batch shape and n >= 0, G a real symmetric PSD [D, D], an explicit generator
    "semi-unitary shape -1": (lambda d: mu.random_semi_unitary((-1,), 4, 2, gen(0)),
                              r"shape must be a tuple of integers >= 0 \(the batch dimensions\), got \(-1,\)"),
    "semi-unitary no generator": (lambda d: mu.random_semi_unitary((2,), 4, 2, None),
                                  "generator must be a torch.Generator"),
    "gains n -1": (lambda d: mu.draw_path_gains(torch.eye(3), -1, gen(0)),
                   r"n \(number of draws\) must be an integer >= 0, got -1"),
    "gains G indefinite": (lambda d: mu.draw_path_gains(-torch.eye(3), 5, gen(0)),
                           r"G must be positive semi-definite \(a covariance\), got smallest eigenvalue -1"),
    "gains G not symmetric": (lambda d: mu.draw_path_gains(torch.triu(torch.ones(3, 3)), 5, gen(0)),
                              "G must be symmetric"),
    "gains G complex": (lambda d: mu.draw_path_gains(d["G"].to(torch.complex128), 5, gen(0)),
                        r"G \(the path-gain covariance\) must be real, got dtype torch.complex128"),
    # shared scatterers and the curious UTs of (27) (validated in Python before the traced tensor code)
    "shared_paths > N_P": (lambda d: mu.shared_pair_mask(4, 2, 3), "shared_paths must be <= N_P = 2 .*got 3"),
    "curious out of range": (lambda d: mu.skr_leakage_aware_paths(d["P"], d["C"], d["u"], d["v"], d["G"],
                                                                  curious=[[5], [0]]),
                             r"curious\[0\] must hold UT indices in \[0, 2\) other than 0 itself.*got 5"),
    "curious itself": (lambda d: mu.skr_leakage_aware_paths(d["P"], d["C"], d["u"], d["v"], d["G"],
                                                            curious=[[1], [1]]), r"curious\[1\] .*got 1"),
    "curious length": (lambda d: mu.skr_leakage_aware_paths(d["P"], d["C"], d["u"], d["v"], d["G"], curious=[[1]]),
                       r"curious must be a list of K = 2 lists of UT indices"),
    "design space curious": (lambda d: mu.MultiUserDesignSpace(16, 2, 2, 2, 2, 2, 4.0, curious=[[1], [2]]),
                             r"curious\[1\] must hold UT indices in \[0, 2\)"),
    # pilot lengths: known schemes, M_e, N_e >= 1
    "pilots typo": (lambda d: mu.check_pilot_lengths(4, 4, 2, 2, 2, "orthogonl"),
                    "pilots must be 'reuse' or 'orthogonal', got 'orthogonl'"),
    "pilots M_e -1": (lambda d: mu.check_pilot_lengths(4, 4, -1, 2), "M_e must be an integer >= 1, got -1"),
    "pilots M_e 0": (lambda d: mu.check_pilot_lengths(4, 4, 0, 0), "M_e must be an integer >= 1, got 0"),
    # the scenario: features, skr (outputs, layout, budget), from_description
    "features power -inf": (lambda d: d["sc"].features({**d["b"], "power_db": torch.full_like(d["b"]["power_db"],
                                                                                              -INF)}),
                            "power_db must be finite"),
    "features complex sin": (lambda d: d["sc"].features({**d["b"], "sin_aod": d["b"]["sin_aod"] + 0j}),
                             r"sin_aod must be real, got a complex tensor \(dtype torch.complex128\)"),
    "skr without C": (lambda d: d["sc"].skr(d["b"], {"P": d["out"]["P"]}),
                      r"outputs lack \['C'\]; a 003 design has P \[n, K, M, M_e, 2\] and C \[n, K, N_k, N_e, 2\]"),
    "skr last dim 3": (lambda d: d["sc"].skr(d["b"], {"P": torch.cat([d["out"]["P"], d["out"]["P"][..., :1]], -1),
                                                      "C": d["out"]["C"]}),
                       r"outputs\['P'\] must be real with a last dimension of 2 \(real, imaginary\), got shape "
                       r"\(3, 2, 16, 2, 3\)"),
    "skr over budget": (lambda d: d["sc"].skr(d["b"], {"P": torch.view_as_real(d["over"].clone()),
                                                       "C": d["out"]["C"]}),
                        r"P exceeds the downlink pilot-power budget: \|\|sum_k P~_k\|\|_F\^2 = 8 > K M_e = 4"),
    "rates over budget": (lambda d: d["sc"].rates(d["b"], d["over"], _complex(d["out"]["C"]), "leakage_exact"),
                          "P exceeds the downlink pilot-power budget"),
    "description incomplete": (lambda d: mu.MultiUserScenario.from_description({"scenario": "multiuser_003"}),
                               r"incomplete 003 multi-user scenario description: missing \['M', 'K', 'N_k'"),
    "description without K": (lambda d: mu.MultiUserScenario.from_description(
        {k: v for k, v in d["sc"].describe().items() if k != "K"}), r"missing \['K'\]"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_input_is_refused_with_a_named_value(audit, case):
    fn, pattern = REFUSED[case]
    with pytest.raises(ValueError, match=pattern):
        fn(audit)


EMPTY = {
    # an empty batch (n = 0 draws) is an empty result, as optimal_rate always gave: the beams are fine
    "orthogonal pilots": (lambda d: mu.skr_orthogonal_pilots(d["U"][:0], d["Lam"][:0]), (0,)),
    "optimal rate": (lambda d: mu.optimal_rate(d["Lam"][:0], 2), (0,)),
    "pilot reuse": (lambda d: mu.skr_pilot_reuse(d["P"][None][:0], d["C"][None][:0], d["Lam"][None][:0]), (0, 2)),
    "leakage aware": (lambda d: mu.skr_leakage_aware(d["P"][None][:0], d["C"][None][:0], d["Lj"][None][:0]), (0, 2)),
    "scenario skr": (lambda d: d["sc"].skr({k: v[:0] for k, v in d["b"].items()},
                                           {k: v[:0] for k, v in d["out"].items()}), (0, 2)),
    "scenario theorem2": (lambda d: d["sc"].theorem2_rates({k: v[:0] for k, v in d["b"].items()}), (0, 2)),
    "features": (lambda d: d["sc"].features(d["sc"].sample(0, gen(0))), (0, 12)),
    "path gains": (lambda d: mu.draw_path_gains(d["G"], 0, gen(0)), (0, 6)),
    "semi-unitary": (lambda d: mu.random_semi_unitary((0,), 4, 2, gen(0)), (0, 4, 2)),
}


@pytest.mark.parametrize("case", list(EMPTY))
def test_empty_batch_gives_an_empty_result(audit, case):
    fn, shape = EMPTY[case]
    out = fn(audit)
    assert tuple(out.shape) == shape


def test_numpy_and_list_inputs_give_the_tensor_result(audit):
    """Numpy arrays and nested lists are accepted as tensors are, built in float64 / complex128: a list of Python
    complex numbers used to become complex64, and the rounding made a rank-deficient Lambda indefinite (~1e-7)."""
    d = audit
    aoa, aod, pw = random_paths(1, 3, 16, 4, seed=1, power_db=(0.0, 20.0))
    u, v = mu.beam_vectors(aoa, aod, 4, 16)
    Lam = mu.lambda_from_paths(u, v, pw)[0]  # 64 x 64, rank 3
    assert torch.equal(mu.optimal_rate(Lam.tolist(), 2), mu.optimal_rate(Lam, 2))
    assert torch.equal(mu.skr_pilot_reuse(d["P"].numpy(), d["C"].numpy(), d["Lam"].numpy()),
                       mu.skr_pilot_reuse(d["P"], d["C"], d["Lam"]))
    for a, b in zip(mu.algorithm1_design(d["R_bs"].numpy(), d["R_ut"].numpy(), 2, 2),
                    mu.algorithm1_design(d["R_bs"], d["R_ut"], 2, 2), strict=True):
        assert torch.equal(a, b)
    sc, b = d["sc"], d["b"]
    assert torch.equal(sc.features({k: v.numpy() for k, v in b.items()}), sc.features(b))
    assert torch.equal(mu.unit_skr([3.0, 6.0], 3), torch.tensor([1.0, 2.0], dtype=torch.float64))
    # the budgeted baselines pass the scenario's budget check (Algorithm 1 exactly at K M_e)
    assert all(sc.skr(b, des).shape == (3, 2) for des in sc.baselines(b, gen(0)).values())
