"""keygen.ldpc_codes: published tables, EXIT design, PEG construction, check splitting, BP."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from keygen import ldpc_codes as lc
from keygen import slicing as sl


@pytest.mark.parametrize("dl", sorted(lc.RSU_RATE_HALF))
def test_published_tables_are_consistent(dl):
    d = lc.RSU_RATE_HALF[dl]
    assert sum(d.variable.values()) == pytest.approx(1.0, abs=2e-5)
    assert sum(d.check.values()) == pytest.approx(1.0, abs=2e-5)
    assert d.design_rate == pytest.approx(0.5, abs=2e-4)
    assert max(d.variable) == dl
    assert "Richardson, Shokrollahi, Urbanke" in d.source


@pytest.mark.parametrize("dl", [5, 20])
def test_exit_threshold_reproduces_published_density_evolution(dl):
    # EXIT (Gaussian a-priori messages) is slightly optimistic against exact density evolution
    d = lc.RSU_RATE_HALF[dl]
    th = lc.exit_threshold_biawgn(d, tol=2e-3)
    assert d.threshold_sigma <= th + 2e-3
    assert th == pytest.approx(d.threshold_sigma, rel=0.01)


def test_node_degree_sequence():
    d = lc.RSU_RATE_HALF[8]
    deg = d.variable_degrees(10_000)
    assert deg.size == 10_000
    fr = d.variable_node_fractions()
    for k, f in fr.items():
        assert abs(np.count_nonzero(deg == k) - f * 10_000) <= 1
    # edges / checks of a rate-1/2 frame give the published average check degree
    assert deg.sum() / 5000 == pytest.approx(1 / sum(r / k for k, r in d.check.items()), rel=1e-3)


def test_design_for_a_slice_channel():
    ch = sl.slice_channel(0.9, 16, 3)
    rate = 1 - 1.1 * ch.entropy
    d = lc.design_distribution(ch, rate)
    assert d.design_rate == pytest.approx(rate, abs=1e-6)
    assert d.margin > 0
    assert lc.exit_converges(d, ch)
    assert not lc.exit_converges(d, sl.slice_channel(0.85, 16, 3))  # a worse channel closes the tunnel
    # above capacity nothing works
    assert lc.design_distribution(ch, 1 - 0.97 * ch.entropy).margin < 0


@pytest.mark.parametrize("girth", [6, pytest.param(8, marks=pytest.mark.slow)])
def test_peg_has_the_stated_degrees_and_no_four_cycles(girth):
    d = lc.RSU_RATE_HALF[20]
    n, m = (4000, 2000) if girth == 6 else (2000, 1000)
    deg = d.variable_degrees(n)
    H, stats = lc.peg_parity_check_matrix(n, m, deg, seed=3, girth=girth, return_stats=True)
    assert H.shape == (m, n)
    assert set(np.unique(H.data)) == {1}
    np.testing.assert_array_equal(np.diff(H.tocsc().indptr), deg)  # column j has degree deg[j]
    rows = np.diff(H.indptr)
    # concentrated check degrees (girth 8 at this short length must reach into fuller checks)
    assert rows.max() - rows.min() <= (1 if girth == 6 else 3)
    assert stats.four_cycle_edges == 0
    if girth == 6:
        assert stats.relaxed_edges == 0
    assert lc.count_four_cycles(H) == 0
    # the degree-2 columns form a forest: as many of them as checks minus trees
    H2 = H[:, deg == 2]
    ncomp, _ = sp.csgraph.connected_components((H2 @ H2.T) > 0, directed=False)
    assert H2.shape[1] == m - ncomp
    # same arguments, same public matrix
    assert (lc.peg_parity_check_matrix(n, m, deg, seed=3, girth=girth) != H).nnz == 0


def test_count_four_cycles_by_hand():
    # columns 0 and 1 share rows 0 and 1 (one 4-cycle); columns 2 and 3 share rows 1, 2, 3 (three 4-cycles)
    H = np.array([[1, 1, 0, 0],
                  [1, 1, 1, 1],
                  [0, 0, 1, 1],
                  [0, 0, 1, 1]])
    assert lc.count_four_cycles(sp.csr_matrix(H)) == 1 + 3 + 0
    assert lc.count_four_cycles(sp.csr_matrix(np.eye(3, dtype=int))) == 0


def test_split_checks_keeps_the_syndrome_relation():
    d = lc.RSU_RATE_HALF[8]
    n, m = 2000, 1000
    H = lc.peg_parity_check_matrix(n, m, d.variable_degrees(n), seed=1)
    H2, parents = lc.split_checks(H, 50, seed=4)
    assert H2.shape == (m + 50, n) and parents.size == 50
    np.testing.assert_array_equal(np.diff(H2.tocsc().indptr), np.diff(H.tocsc().indptr))  # column degrees kept
    assert H2.nnz == H.nnz
    assert lc.count_four_cycles(H2) == 0
    x = np.random.default_rng(0).integers(0, 2, n)
    s_old = (H @ x) % 2
    s_new = (H2 @ x) % 2
    s_rec = s_new[:m].copy()
    s_rec[parents] ^= s_new[m:]
    np.testing.assert_array_equal(s_rec, s_old)
    # the split rows were the heaviest
    assert np.diff(H.indptr)[parents].min() >= np.median(np.diff(H.indptr))


def test_numpy_bp_matches_ldpc():
    from ldpc import BpDecoder

    rho, K, stage, n = 0.9, 16, 3, 3000
    rng = np.random.default_rng(7)
    x = rng.standard_normal(n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    bits = sl.slice_bits(sl.quantise(x, K), K)
    a = bits[:, stage].astype(np.uint8)
    llr = sl.slice_llrs(y, rho, K, stage, bits[:, :stage])
    ch = sl.slice_channel(rho, K, stage)
    m = int(np.ceil(1.25 * n * ch.entropy))
    d = lc.design_distribution(ch, 1 - m / n)
    H = lc.peg_parity_check_matrix(n, m, d.variable_degrees(n), seed=2)
    s = ((H @ a) % 2).astype(np.uint8)
    xa, conv, it = lc.syndrome_bp(H, llr, s, max_iter=100)
    assert conv and np.array_equal(xa, a)
    hard = (llr < 0).astype(np.uint8)
    p = np.clip(1 / (1 + np.exp(np.abs(llr))), 1e-15, 0.5)
    dec = BpDecoder(H, error_channel=p, max_iter=100, bp_method="product_sum", schedule="parallel")
    e = dec.decode((s ^ (H @ hard) % 2).astype(np.uint8))
    assert dec.converge and np.array_equal(hard ^ e, a)
    assert abs(dec.iter - it) <= 1


@pytest.mark.parametrize("call,needle", [
    (lambda: lc.peg_parity_check_matrix(10, 5, np.full(10, 6)), "var_degrees"),
    (lambda: lc.peg_parity_check_matrix(10, 5, np.full(10, 2), girth=4), "girth = 4"),
    (lambda: lc.peg_parity_check_matrix(10, 0, np.full(10, 2)), "m = 0"),
    (lambda: lc.design_distribution(sl.slice_channel(0.9, 4, 1), 1.2), "rate = 1.2"),
    (lambda: lc.design_distribution(object(), 0.5), "channel"),
    (lambda: lc.split_checks(sp.eye(4, format="csr"), 5), "count = 5"),
    (lambda: lc.DegreeDistribution({2: 0.5}, {6: 1.0}), "sums to 0.5"),
])
def test_bad_inputs_name_the_value(call, needle):
    with pytest.raises(ValueError) as info:
        call()
    assert needle in str(info.value)
