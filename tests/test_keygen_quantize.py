"""GDQG quantiser (002 Algorithm 1, (18)-(20)), index exchange and encoding (keygen.quantize)."""

from __future__ import annotations

import math
import statistics
from statistics import NormalDist

import numpy as np
import pytest

from keygen.metrics import key_error_rate, key_generation_ratio
from keygen.quantize import exchange_and_encode, gdqg_edges, gdqg_indices, key_bits

STD_NORMAL = NormalDist()  # stdlib normal, independent of scipy


def _reference_indices(x: np.ndarray, K: int, eps: float) -> np.ndarray:
    """Independent GDQG in the probability domain, one feature at a time with the stdlib.

    (18)-(19) via statistics.fmean / statistics.stdev (denominator 2L - 1); u = F(x) with
    F the CDF of N(mu, sigma^2); interval k (20) is u in [(k-1)/K + eps, k/K - eps] (first/last open
    to 0/1); u within eps of an inner boundary j/K is the guard band.
    """
    out = np.empty(x.shape, dtype=np.int64)
    for i, row in enumerate(x):
        fit = NormalDist(statistics.fmean(row), statistics.stdev(row))
        for l, v in enumerate(row):
            u = fit.cdf(float(v))
            if any(abs(u - j / K) < eps for j in range(1, K)):
                out[i, l] = -1
            else:
                out[i, l] = min(int(u * K), K - 1)
    return out


def test_edges_k2_table_value():
    lower, upper = gdqg_edges(2, 0.1)
    # Phi^-1(0.6) = 0.2533471031 (normal table); 1e-9 is far above float64 ppf error (~1e-15)
    assert lower == pytest.approx([-0.2533471031], abs=1e-9)
    assert upper == pytest.approx([0.2533471031], abs=1e-9)


def test_edges_match_stdlib_inverse_cdf():
    for K, eps in [(4, 0.05), (8, 0.02), (16, 0.01)]:
        lower, upper = gdqg_edges(K, eps)
        # stdlib inv_cdf and scipy ppf are separate implementations, both accurate to ~1e-15 here
        assert lower == pytest.approx([STD_NORMAL.inv_cdf(j / K - eps) for j in range(1, K)], abs=1e-12)
        assert upper == pytest.approx([STD_NORMAL.inv_cdf(j / K + eps) for j in range(1, K)], abs=1e-12)


def test_hand_worked_example():
    # x = -2..5: mu = 1.5 (18), sigma^2 = 42/7 = 6 (19), z = (x - 1.5)/sqrt(6)
    # = -1.43, -1.02, -0.61, -0.20, 0.20, 0.61, 1.02, 1.43
    x = np.arange(-2.0, 6.0)[None, :]
    # K = 2, eps = 0.1: guard band |z| < Phi^-1(0.6) = 0.253 -> x = 1 and x = 2 are dropped
    np.testing.assert_array_equal(gdqg_indices(x, 2, 0.1), [[0, 0, 0, -1, -1, 1, 1, 1]])
    # K = 4, eps = 0.05: edges +-0.842 / +-0.524 (guard around j = 1, 3), +-0.126 (around j = 2)
    # -0.61 lies in (-0.842, -0.524) and 0.61 in (0.524, 0.842): dropped; -0.20 -> level 1, 0.20 -> 2
    np.testing.assert_array_equal(gdqg_indices(x, 4, 0.05), [[0, 0, -1, 1, 2, -1, 3, 3]])


@pytest.mark.parametrize(("K", "eps"), [(2, 0.1), (2, 0.2), (4, 0.05), (8, 0.03), (8, 0.001)])
def test_matches_independent_probability_domain_reference(K, eps):
    rng = np.random.default_rng(100 + K)
    x = rng.normal(size=(40, 64)) * rng.uniform(0.1, 3.0, (40, 1)) + rng.normal(size=(40, 1))
    x[::7] = rng.standard_t(3, size=(6, 64))  # heavy-tailed rows: the fit need not be good
    got = gdqg_indices(x, K, eps)
    # exact equality: a disagreement needs a feature within ~1e-15 of an edge, probability ~0 here
    np.testing.assert_array_equal(got, _reference_indices(x, K, eps))


def test_affine_equivariance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 32))
    idx = gdqg_indices(x, 8, 0.02)
    # (18)-(20) move with the data: a*x + b (a > 0) gives the same levels ...
    np.testing.assert_array_equal(gdqg_indices(3.7 * x - 11.0, 8, 0.02), idx)
    # ... and a < 0 mirrors them; the guard bands are symmetric, so -1 stays -1
    np.testing.assert_array_equal(gdqg_indices(-x, 8, 0.02), np.where(idx >= 0, 7 - idx, -1))


@pytest.mark.parametrize(("K", "eps"), [(2, 0.1), (4, 0.05), (8, 0.01)])
def test_drop_fraction_and_kgr_of_gaussian_features(K, eps):
    # 002 Sec. VII-C: each inner boundary's guard band holds 2 eps, so 2 eps (K-1) of the features are
    # dropped (eps = 0.1, K = 2: 20 %, KGR = 1.6).
    rng = np.random.default_rng(7)
    L = 64
    x = rng.normal(size=(2000, 2 * L))
    idx = gdqg_indices(x, K, eps)
    dropped = np.mean(idx == -1)
    # Tolerance 0.005: the sampling sd over 256,000 features in 2,000 rows is ~0.001, and standardising
    # with the sample mean/std (E[z^2] = (D-1)/D) biases the fraction by ~+0.4 % of itself (<= 0.0012).
    assert dropped == pytest.approx(2 * eps * (K - 1), abs=0.005)
    _, _, kept = exchange_and_encode(idx, idx, K)
    kgr = key_generation_ratio(kept, K, L)
    # KGR = 2 log2K (1 - dropped): the same 0.005 on the fraction is 0.01 * log2 K here
    assert kgr == pytest.approx(2 * math.log2(K) * (1 - 2 * eps * (K - 1)), abs=0.01 * math.log2(K))
    # Level probabilities under the fit: the two outer levels lose one guard half-band (1/K - eps), the
    # inner ones two (1/K - 2 eps); so for K > 2 the kept levels are NOT equiprobable. Same tolerance.
    kept_levels = idx[idx >= 0]
    expected = np.full(K, 1 / K - 2 * eps)
    expected[[0, -1]] = 1 / K - eps
    expected /= expected.sum()
    assert np.bincount(kept_levels, minlength=K) / kept_levels.size == pytest.approx(expected, abs=0.005)


def test_epsilon_trades_ker_against_kgr():
    # Alice's feature estimate = Bob's + noise. A wider guard band drops more features (KGR falls) and
    # leaves fewer near-boundary disagreements (KER falls). 002 Sec. VII-C says "when epsilon is
    # higher, the KER becomes smaller and the KGR becomes larger"; the KGR half of that is a slip
    # (its own Fig. 9 text: eps = 0.1 drops 20 %, KGR 2 -> 1.6).
    rng = np.random.default_rng(3)
    xb = rng.normal(size=(500, 128))
    xa = xb + 0.5 * rng.normal(size=xb.shape)  # ~6 dB feature SNR
    kers, kgrs = [], []
    for eps in (0.02, 0.1, 0.2):
        ba, bb, kept = exchange_and_encode(gdqg_indices(xa, 2, eps), gdqg_indices(xb, 2, eps), 2)
        kers.append(key_error_rate(ba, bb, kept))
        kgrs.append(key_generation_ratio(kept, 2, 64))
    # margins are large (KER ~0.12 -> 0.04 -> 0.003; KGR ~1.85 -> 1.37 -> 0.95), far above their
    # sampling sd (< 0.002 over 64,000 features)
    assert kers[0] > kers[1] > kers[2]
    assert kgrs[0] > kgrs[1] > kgrs[2]


def test_encoding_tables():
    idx = np.array([[0, 1, 2, 3]])
    ba, _, kept = exchange_and_encode(idx, idx, 4, code="binary")
    assert kept.all()
    np.testing.assert_array_equal(ba[0], [[0, 0], [0, 1], [1, 0], [1, 1]])
    ga, _, _ = exchange_and_encode(idx, idx, 4, code="gray")
    np.testing.assert_array_equal(ga[0], [[0, 0], [0, 1], [1, 1], [1, 0]])
    # K = 2: one bit, both codes identical
    b2, _, _ = exchange_and_encode(np.array([[0, 1]]), np.array([[0, 1]]), 2)
    assert b2.shape == (1, 2, 1)
    np.testing.assert_array_equal(b2[0, :, 0], [0, 1])


@pytest.mark.parametrize("K", [2, 4, 8, 16, 32])
def test_gray_code_properties(K):
    idx = np.arange(K)[None, :]
    g, _, _ = exchange_and_encode(idx, idx, K, code="gray")
    b, _, _ = exchange_and_encode(idx, idx, K, code="binary")
    nbits = int(math.log2(K))
    assert g.shape == (1, K, nbits) and g.dtype == np.uint8
    words = [tuple(w) for w in g[0]]
    assert len(set(words)) == K  # a bijection onto all log2K-bit words
    for k in range(K - 1):  # neighbours differ in exactly one bit
        assert sum(a != c for a, c in zip(words[k], words[k + 1], strict=True)) == 1
    # binary code: the bits read back as k (MSB first)
    assert [int("".join(map(str, w)), 2) for w in b[0]] == list(range(K))


def test_bit_balance_binary_versus_gray():
    # With guard bands the K levels are not equiprobable (outer 1/K - eps, inner 1/K - 2 eps). The
    # binary code stays balanced bit by bit (k -> K-1-k complements every bit and the level
    # probabilities are symmetric); the Gray code's low bit is 1 on the inner levels 1, 2 only:
    # P = 2 (1/4 - 2 eps) / (1 - 6 eps) = 0.3 / 0.7 = 0.4286 for K = 4, eps = 0.05.
    rng = np.random.default_rng(12)
    idx = gdqg_indices(rng.normal(size=(2000, 128)), 4, 0.05)
    b, _, kept = exchange_and_encode(idx, idx, 4, code="binary")
    g, _, _ = exchange_and_encode(idx, idx, 4, code="gray")
    # ~180,000 kept features: sd of a bit mean ~0.0015 (plus the small fit bias, see the drop test)
    assert b[kept].mean(axis=0) == pytest.approx([0.5, 0.5], abs=0.005)
    assert g[kept].mean(axis=0) == pytest.approx([0.5, 0.3 / 0.7], abs=0.005)


def test_exchange_keeps_positions_neither_side_dropped():
    ia = np.array([[0, -1, 3, 2, -1], [1, 1, 0, -1, 2]])
    ib = np.array([[0, 2, -1, 1, -1], [1, 0, 0, 3, 2]])
    ba, bb, kept = exchange_and_encode(ia, ib, 4)
    np.testing.assert_array_equal(kept, [[1, 0, 0, 1, 0], [1, 1, 1, 0, 1]])
    assert ba.shape == bb.shape == (2, 5, 2)
    assert not ba[~kept].any() and not bb[~kept].any()  # dropped positions carry zero bits
    keys_a = key_bits(ba, kept)
    keys_b = key_bits(bb, kept)
    # by hand: sample 0 keeps levels (0, 2) / (0, 1); sample 1 keeps (1, 1, 0, 2) / (1, 0, 0, 2)
    np.testing.assert_array_equal(keys_a[0], [0, 0, 1, 0])
    np.testing.assert_array_equal(keys_b[0], [0, 0, 0, 1])
    np.testing.assert_array_equal(keys_a[1], [0, 1, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(keys_b[1], [0, 1, 0, 0, 0, 0, 1, 0])
    assert key_error_rate(ba, bb, kept) == pytest.approx(3 / 12)  # 2 + 1 mismatched of 12 kept bits


def test_gray_code_lowers_ker_for_adjacent_level_errors():
    # K = 4 with noise: nearly all disagreements are between neighbouring levels; the binary code
    # flips 2 bits for 1 <-> 2 (01 <-> 10), Gray only 1 (01 <-> 11). So the Gray KER equals
    # (adjacent level mismatches) / (2 * kept), computed independently below.
    rng = np.random.default_rng(9)
    xb = rng.normal(size=(400, 64))
    xa = xb + 0.2 * rng.normal(size=xb.shape)
    ia, ib = gdqg_indices(xa, 4, 0.02), gdqg_indices(xb, 4, 0.02)
    ga, gb, kept = exchange_and_encode(ia, ib, 4, code="gray")
    ba, bb, _ = exchange_and_encode(ia, ib, 4, code="binary")
    diff = np.abs(ia - ib)[kept]
    assert np.all(diff <= 1)  # for this seed every disagreement is adjacent
    assert key_error_rate(ga, gb, kept) == pytest.approx(np.count_nonzero(diff) / (2 * kept.sum()))
    assert key_error_rate(ga, gb, kept) < key_error_rate(ba, bb, kept)


def test_key_bits_matches_loop():
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 2, size=(6, 10, 3)).astype(np.uint8)
    kept = rng.random((6, 10)) < 0.5
    kept[2] = False  # a sample with no kept feature -> empty key
    keys = key_bits(bits, kept)
    for i in range(6):
        expected = [int(bits[i, l, b]) for l in range(10) if kept[i, l] for b in range(3)]
        assert keys[i].tolist() == expected
    assert keys[2].size == 0


def test_torch_tensor_input():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 16))
    np.testing.assert_array_equal(gdqg_indices(torch.from_numpy(x), 4, 0.05), gdqg_indices(x, 4, 0.05))


def test_wide_epsilon_for_k2_only_when_asked():
    x = np.random.default_rng(0).normal(size=(3, 32))
    with pytest.raises(ValueError, match=r"epsilon = 0.3 .*K = 2.*\(0, 0.25\)"):
        gdqg_indices(x, 2, 0.3)
    idx = gdqg_indices(x, 2, 0.3, strict_epsilon=False)  # 002 Fig. 10 setting
    lower, upper = gdqg_edges(2, 0.3, strict_epsilon=False)
    z = (x - x.mean(1, keepdims=True)) / x.std(1, ddof=1, keepdims=True)
    np.testing.assert_array_equal(idx == -1, (z > lower[0]) & (z < upper[0]))
    with pytest.raises(ValueError, match=r"epsilon"):
        gdqg_indices(x, 4, 0.13, strict_epsilon=False)  # inner interval of K = 4 would be empty


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda x: gdqg_indices(x, 3), r"levels \(K\) = 3"),
        (lambda x: gdqg_indices(x, 1), r"levels \(K\) = 1"),
        (lambda x: gdqg_indices(x, 2.0), r"levels"),
        (lambda x: gdqg_indices(x, 2, 0.0), r"epsilon = 0.0"),
        (lambda x: gdqg_indices(x, 2, 0.25), r"epsilon = 0.25"),
        (lambda x: gdqg_indices(x, 4, 0.125), r"epsilon = 0.125 .*K = 4"),
        (lambda x: gdqg_indices(x, 2, -0.1), r"epsilon"),
        (lambda x: gdqg_indices(x[0], 2), r"shape \[n, D\]"),
        (lambda x: gdqg_indices(x[:, :1], 2), r"D = 1"),
        (lambda x: gdqg_indices(x[:0], 2), r"empty"),
        (lambda x: gdqg_indices(x + 1j, 2), r"complex"),
        (lambda x: gdqg_indices(np.where(np.eye(4, 8) > 0, np.nan, x), 2), r"non-finite"),
        (lambda x: gdqg_indices(np.vstack([x, np.ones((1, 8))]), 2), r"row 4 is constant"),
        (lambda x: exchange_and_encode(np.zeros((2, 3), int), np.zeros((2, 4), int), 2), r"shape"),
        (lambda x: exchange_and_encode(np.full((2, 3), 4), np.zeros((2, 3), int), 4), r"value 4"),
        (lambda x: exchange_and_encode(np.full((2, 3), -2), np.zeros((2, 3), int), 4), r"value -2"),
        (lambda x: exchange_and_encode(np.zeros((2, 3), int), np.zeros((2, 3), int), 4, "natural"), r"code"),
        (lambda x: exchange_and_encode(np.zeros((0, 3), int), np.zeros((0, 3), int), 4), r"empty"),
        (lambda x: key_bits(np.full((2, 3, 1), 2), np.ones((2, 3), bool)), r"binary"),
        (lambda x: key_bits(np.zeros((2, 3, 1)), np.ones((2, 4), bool)), r"kept"),
    ],
)
def test_bad_input(call, pattern):
    x = np.random.default_rng(0).normal(size=(4, 8))
    with pytest.raises(ValueError, match=pattern):
        call(x)


# ---------------------------------------------------------------------------------------------
# Equiprobable multi-bit quantiser with guard bands, guard-band exchange, Eve's view
# ---------------------------------------------------------------------------------------------


def test_equiprobable_edges():
    from keygen.quantize import equiprobable_edges

    lo, up = equiprobable_edges(4, 0.0)
    ref = [STD_NORMAL.inv_cdf(j / 4) for j in (1, 2, 3)]
    assert np.allclose(lo, ref) and np.allclose(up, ref)
    lo, up = equiprobable_edges(4, 0.3)  # kept cells 0.175 wide, guards 0.1 wide
    assert np.allclose([STD_NORMAL.cdf(v) for v in lo], [0.175, 0.45, 0.725])
    assert np.allclose([STD_NORMAL.cdf(v) for v in up], [0.275, 0.55, 0.825])
    with pytest.raises(ValueError, match="guard"):
        equiprobable_edges(4, 1.0)
    with pytest.raises(ValueError, match="guard"):
        equiprobable_edges(4, -0.1)
    with pytest.raises(ValueError, match="power of two"):
        equiprobable_edges(3, 0.1)


@pytest.mark.parametrize("K, guard", [(2, 0.2), (4, 0.3), (8, 0.1)])
def test_equiprobable_levels_are_uniform_and_guard_fraction_dropped(K, guard):
    from keygen.quantize import equiprobable_indices

    rng = np.random.default_rng(K)
    x = 3.0 + 2.0 * rng.normal(size=(100_000, 4))
    idx = equiprobable_indices(x, K, guard, mean=3.0, std=2.0)
    n = idx.size
    assert abs(np.mean(idx < 0) - guard) < 5 * math.sqrt(guard * (1 - guard) / n) + 1e-12
    counts = np.bincount(idx[idx >= 0], minlength=K) / n
    p = (1 - guard) / K
    assert np.all(np.abs(counts - p) < 5 * math.sqrt(p * (1 - p) / n))


def test_quantise_pair_transcript_and_gray_balance():
    from keygen.quantize import quantise_eve, quantise_pair

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 6))
    y = 0.95 * x + math.sqrt(1 - 0.95**2) * rng.normal(size=x.shape)
    ka, kb, tr = quantise_pair(x, y, "equiprobable", 4, guard=0.2, code="gray")
    assert tr.method == "equiprobable" and tr.public_bits == 2 * x.size
    assert np.array_equal(tr.kept, ~tr.dropped_alice & ~tr.dropped_bob)
    assert [k.size for k in ka] == [2 * int(r.sum()) for r in tr.kept] == [k.size for k in kb]
    a, b = np.concatenate(ka), np.concatenate(kb)
    assert 0.45 < a.mean() < 0.55
    kdr_gray = np.mean(a != b)
    na, nb, _ = quantise_pair(x, y, "equiprobable", 4, guard=0.2, code="binary")
    assert kdr_gray < 0.9 * np.mean(np.concatenate(na) != np.concatenate(nb))  # Gray: a one-level slip costs one bit
    # Eve: same rules, her own data; independent data agrees on about half the bits
    ke = quantise_eve(rng.normal(size=x.shape), tr)
    assert [k.size for k in ke] == [k.size for k in ka]
    assert abs(np.mean(np.concatenate(ke) == a) - 0.5) < 0.01
    # Bob's own observations through Eve's path give Bob's bits wherever he kept them
    kbb = quantise_eve(y, tr)
    assert np.array_equal(np.concatenate(kbb), b)
    # GDQG through the same interface matches the existing functions
    ga, gb, gtr = quantise_pair(x, y, "gdqg", 2, epsilon=0.1, code="binary")
    ia, ib = gdqg_indices(x, 2, 0.1), gdqg_indices(y, 2, 0.1)
    bits_a, _, kept = exchange_and_encode(ia, ib, 2)
    assert np.array_equal(gtr.kept, kept)
    assert all(np.array_equal(u, v) for u, v in zip(ga, key_bits(bits_a, kept), strict=True))


def test_equiprobable_bad_input():
    from keygen.quantize import equiprobable_indices, quantise_pair

    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="complex"):
        equiprobable_indices(x + 1j, 4, 0.1)
    with pytest.raises(ValueError, match="std"):
        equiprobable_indices(x, 4, 0.1, std=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        equiprobable_indices(np.array([[np.nan, 1.0]]), 4, 0.1)
    with pytest.raises(ValueError, match="shape"):
        equiprobable_indices(np.zeros(3), 4, 0.1)
    with pytest.raises(ValueError, match="method"):
        quantise_pair(x, x, "lloyd", 4)
    with pytest.raises(ValueError, match="must match"):
        quantise_pair(np.zeros((3, 2)), np.zeros((4, 2)), "equiprobable", 4)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(mean=float("nan")), r"mean holds nan"),
        (dict(mean=float("inf")), r"mean holds inf"),
        (dict(mean=1j), r"mean = 1j .*finite real number"),
        (dict(mean="0"), r"mean = '0' is not allowed"),
        (dict(mean=True), r"mean = True is not allowed"),
        (dict(mean=np.zeros((2, 2))), r"mean has shape \(2, 2\)"),
        (dict(mean=np.zeros(3)), r"mean has 3 entries; x has D = 2"),
        (dict(std="1"), r"std = '1' is not allowed; it must be a finite real number > 0"),
        (dict(std=float("nan")), r"std holds nan"),
        (dict(std=[1.0, -1.0]), r"std holds -1.0"),
    ],
)
def test_equiprobable_model_statistics_checked(kwargs, pattern):
    from keygen.quantize import equiprobable_indices

    x = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match=pattern):
        equiprobable_indices(x, 4, 0.1, **kwargs)


def test_equiprobable_array_statistics_still_work():
    from keygen.quantize import equiprobable_indices

    x = np.random.default_rng(1).normal(size=(50, 3))
    ref = equiprobable_indices(x, 4, 0.1)
    assert np.array_equal(equiprobable_indices(x, 4, 0.1, mean=[0, 0, 0], std=np.ones(3)), ref)
    assert np.array_equal(equiprobable_indices(x, 4, 0.1, mean=np.array([0.0]), std=1), ref)


def test_quantise_pair_and_eve_check_model_statistics():
    from keygen.quantize import quantise_eve, quantise_pair

    x = np.random.default_rng(2).normal(size=(5, 4))
    with pytest.raises(ValueError, match=r"mean_bob holds nan"):
        quantise_pair(x, x, mean_bob=float("nan"))
    with pytest.raises(ValueError, match=r"std_bob = '1' is not allowed"):
        quantise_pair(x, x, std_bob="1")
    with pytest.raises(ValueError, match=r"mean holds inf"):
        quantise_pair(x, x, mean=float("inf"))
    with pytest.raises(ValueError, match=r"std holds 0.0"):
        quantise_pair(x, x, std=0.0)
    _, _, tr = quantise_pair(x, x)
    with pytest.raises(ValueError, match=r"mean holds nan"):
        quantise_eve(x, tr, mean=float("nan"))
    with pytest.raises(ValueError, match=r"std = '2' is not allowed"):
        quantise_eve(x, tr, std="2")
    with pytest.raises(ValueError, match=r"transcript must be a QuantiserTranscript"):
        quantise_eve(x, {"kept": None})
