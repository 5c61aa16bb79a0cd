"""keygen.slicing: equiprobable multi-bit quantisation, exact slice entropies and LLRs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from keygen import slicing as sl


def _pairs(rho: float, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
    return x, y


def test_gaussian_mutual_information():
    assert sl.gaussian_mutual_information(0.0) == 0.0
    assert sl.gaussian_mutual_information(0.9) == pytest.approx(-0.5 * math.log2(1 - 0.81))
    assert sl.gaussian_mutual_information(-0.9) == sl.gaussian_mutual_information(0.9)


def test_levels_are_equiprobable_and_labelled():
    K = 16
    t = sl.level_edges(K)
    assert t[0] == -np.inf and t[-1] == np.inf
    np.testing.assert_allclose(norm.cdf(t[1:-1]), np.arange(1, K) / K, rtol=0, atol=1e-12)
    x, _ = _pairs(0.5, 160_000, 0)
    counts = np.bincount(sl.quantise(x, K), minlength=K)
    # each count is Binomial(n, 1/K): within 5 standard deviations
    assert np.all(np.abs(counts - 10_000) < 5 * math.sqrt(160_000 / K * (1 - 1 / K)))
    nat = sl.level_labels(K, "natural")
    assert np.array_equal((nat * (1 << np.arange(4))).sum(1), np.arange(K))
    gray = sl.level_labels(K, "gray").astype(int)
    assert np.all(np.abs(np.diff(gray, axis=0)).sum(1) == 1)  # neighbours differ in one bit
    assert sl.decoding_order(4) == (0, 1, 2, 3)
    assert sl.decoding_order(4, "msb_first") == (3, 2, 1, 0)


@pytest.mark.parametrize("rho", [0.99, 0.9, 0.7, -0.8])
@pytest.mark.parametrize("labelling", ["natural", "gray"])
def test_slice_entropies_converged_and_consistent(rho, labelling):
    K = 32
    H = sl.slice_entropies(rho, K, labelling)
    fine = sl.slice_entropies(rho, K, labelling, resolution=4)
    np.testing.assert_allclose(H, fine, rtol=0, atol=1e-9)  # the quadrature has converged
    # the chain rule: any labelling and order sum to H(Q | Y)
    total = sl.slice_entropies(rho, K, "natural", "msb_first").sum()
    assert H.sum() == pytest.approx(total, abs=1e-10)
    assert sl.quantised_mutual_information(rho, K) == pytest.approx(5 - total, abs=1e-10)
    assert 0 < sl.quantised_mutual_information(rho, K) < sl.gaussian_mutual_information(rho)
    for s in range(5):
        ch = sl.slice_channel(rho, K, s, labelling)
        assert ch.entropy == pytest.approx(H[s], abs=1e-9)  # binning keeps the entropy exact
        assert ch.weight.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("rho,K", [(0.9, 16), (0.97, 32)])
def test_exact_entropies_against_monte_carlo(rho, K):
    n = 200_000
    x, y = _pairs(rho, n, 1)
    bits = sl.slice_bits(sl.quantise(x, K), K)
    lp = sl.level_log_posteriors(y, rho, K)
    H = sl.slice_entropies(rho, K)
    q = K.bit_length() - 1
    for s in range(q):
        llr = sl.slice_llrs(y, rho, K, s, bits[:, :s], log_posteriors=lp)
        # -log2 P(S = s_true | y, earlier slices): an unbiased sample of the conditional entropy
        v = np.logaddexp(0.0, -(1.0 - 2.0 * bits[:, s]) * llr) / math.log(2)
        tol = 5 * v.std() / math.sqrt(n) + 1e-4
        assert abs(v.mean() - H[s]) < tol, (s, v.mean(), H[s], tol)
        err = np.mean((llr < 0) != bits[:, s].astype(bool))
        p = sl.slice_channel(rho, K, s).error_rate
        assert abs(err - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-4
    # I(Q; Y) = q - H(Q | Y) against the same estimator on the whole level
    v = -lp[np.arange(n), sl.quantise(x, K)] / math.log(2)
    assert abs((q - v.mean()) - sl.quantised_mutual_information(rho, K)) < 5 * v.std() / math.sqrt(n)


def _brute_posterior(y: float, rho: float, K: int) -> np.ndarray:
    """P(Q = k | y) by integrating the bivariate normal density over each level."""
    s = math.sqrt(1 - rho * rho)
    t = sl.level_edges(K)
    out = []
    for k in range(K):
        lo, hi = max(t[k], rho * y - 30 * s), min(t[k + 1], rho * y + 30 * s)  # mass beyond 30 s: < 1e-190
        if lo >= hi:
            out.append(0.0)
            continue
        inside = [rho * y] if lo < rho * y < hi else None
        val, _ = integrate.quad(lambda u: math.exp(-0.5 * ((u - rho * y) / s) ** 2) / (s * math.sqrt(2 * math.pi)),
                                lo, hi, epsabs=0.0, epsrel=1e-12, points=inside, limit=200)
        out.append(val)
    return np.array(out)


@pytest.mark.parametrize("labelling,order", [("natural", "lsb_first"), ("gray", "msb_first")])
def test_llrs_against_brute_force_posterior(labelling, order):
    rho, K = 0.95, 16
    ys = np.array([-2.3, -0.41, 0.0, 0.07, 1.3, 2.9])
    P = np.stack([_brute_posterior(v, rho, K) for v in ys])
    np.testing.assert_allclose(np.exp(sl.level_log_posteriors(ys, rho, K)), P, rtol=1e-7, atol=1e-13)
    lab = sl.level_labels(K, labelling)
    seq = sl.decoding_order(4, order)
    rng = np.random.default_rng(3)
    for stage in range(4):
        known = rng.integers(0, 2, size=(ys.size, stage))
        llr = sl.slice_llrs(ys, rho, K, stage, known, labelling=labelling, order=order)
        for i in range(ys.size):
            ok = np.all(lab[:, list(seq[:stage])] == known[i], axis=1)
            p0 = P[i][ok & (lab[:, seq[stage]] == 0)].sum()
            p1 = P[i][ok & (lab[:, seq[stage]] == 1)].sum()
            if p0 > 1e-150 and p1 > 1e-150:
                assert llr[i] == pytest.approx(math.log(p0 / p1), rel=1e-6, abs=1e-6)


def test_llrs_stay_finite_in_the_tails():
    llr = sl.slice_llrs(np.array([-40.0, -9.0, 9.0, 40.0]), 0.999, 64, 5,
                        np.zeros((4, 5), dtype=int))
    assert np.all(np.isfinite(llr))


def test_choose_bits_rule():
    for rho in (0.99, 0.9, 0.7, 0.3):
        q = sl.choose_bits(rho, fraction=0.95)
        target = 0.95 * sl.gaussian_mutual_information(rho)
        assert sl.quantised_mutual_information(rho, 1 << q) >= target
        if q > 1:
            assert sl.quantised_mutual_information(rho, 1 << (q - 1)) < target
    assert sl.choose_bits(0.9, fraction=0.999, max_bits=3) == 3


@pytest.mark.parametrize("call,needle", [
    (lambda: sl.level_edges(12), "levels = 12"),
    (lambda: sl.level_edges(1), "levels = 1"),
    (lambda: sl.level_edges(4.0), "levels = 4.0"),
    (lambda: sl.level_edges(True), "levels = True"),
    (lambda: sl.slice_entropies(1.0, 4), "rho = 1.0"),
    (lambda: sl.slice_entropies(-1.0, 4), "rho = -1.0"),
    (lambda: sl.slice_entropies(float("nan"), 4), "rho = nan"),
    (lambda: sl.gaussian_mutual_information("0.5"), "rho = '0.5'"),
    (lambda: sl.slice_llrs(np.array([0.1, np.nan]), 0.9, 4), "y[1] = nan"),
    (lambda: sl.slice_llrs(np.array([np.inf]), 0.9, 4), "y[0] = inf"),
    (lambda: sl.slice_llrs(np.array([]), 0.9, 4), "y is empty"),
    (lambda: sl.quantise([], 4), "x is empty"),
    (lambda: sl.slice_llrs(np.zeros(3), 0.9, 4, stage=2), "stage = 2"),
    (lambda: sl.slice_entropies(0.5, 4, labelling="binary"), "labelling = 'binary'"),
    (lambda: sl.choose_bits(0.5, fraction=1.5), "fraction = 1.5"),
])
def test_bad_inputs_name_the_value(call, needle):
    with pytest.raises(ValueError) as info:
        call()
    assert needle in str(info.value)
    assert "allowed" in str(info.value) or "must" in str(info.value)
