"""Privacy amplification (keygen.privacy) and the entropy estimators (keygen.entropy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from keygen.channel import PublicChannel
from keygen.entropy import bits_to_symbols, mcv_min_entropy, plugin_mutual_information
from keygen.privacy import (
    leftover_hash_length,
    privacy_amplify,
    shake_extract,
    toeplitz_hash,
    toeplitz_seed,
)


def _toeplitz_dense(seed: np.ndarray, n: int, m: int) -> np.ndarray:
    return np.array([[seed[i - j + n - 1] for j in range(n)] for i in range(m)], dtype=np.int64)


def test_toeplitz_fft_matches_dense_matrix():
    rng = np.random.default_rng(0)
    for n, m in ((1, 1), (7, 3), (64, 64), (300, 17), (1000, 999)):
        x = rng.integers(0, 2, n, dtype=np.uint8)
        s = toeplitz_seed(n, m, rng)
        assert np.array_equal(toeplitz_hash(x, s, m), (_toeplitz_dense(s, n, m) @ x) % 2)
    # batched rows use the same matrix
    X = rng.integers(0, 2, (5, 100), dtype=np.uint8)
    s = toeplitz_seed(100, 20, rng)
    assert np.array_equal(toeplitz_hash(X, s, 20), np.stack([toeplitz_hash(r, s, 20) for r in X]))


def test_toeplitz_is_two_universal():
    """Pr_seed[T x = T x'] = 2^-m for fixed x != x' (checked with a binomial test at m = 3)."""
    rng = np.random.default_rng(1)
    n, m, trials = 256, 3, 4000
    x = rng.integers(0, 2, n, dtype=np.uint8)
    for diff in ("one bit", "last bit", "random"):
        y = x.copy()
        if diff == "one bit":
            y[0] ^= 1
        elif diff == "last bit":
            y[-1] ^= 1
        else:
            y = rng.integers(0, 2, n, dtype=np.uint8)
        hits = 0
        for _ in range(trials):
            s = toeplitz_seed(n, m, rng)
            hits += np.array_equal(toeplitz_hash(x, s, m), toeplitz_hash(y, s, m))
        assert binomtest(hits, trials, 2.0**-m).pvalue > 1e-3, (diff, hits / trials)
    # output of a fixed input over random seeds is uniform over the 2^m values
    outs = np.array([int("".join(map(str, toeplitz_hash(x, toeplitz_seed(n, m, rng), m))), 2) for _ in range(trials)])
    counts = np.bincount(outs, minlength=2**m)
    from scipy.stats import chisquare

    assert chisquare(counts).pvalue > 1e-3


def test_alice_and_bob_derive_identical_keys():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, 4096, dtype=np.uint8)
    ch = PublicChannel()
    ka = privacy_amplify(x, entropy_bits=3500, disclosed_bits=1000, eps=1e-10, rng=rng, channel=ch)
    kb = privacy_amplify(x.copy(), entropy_bits=3500, disclosed_bits=1000, eps=1e-10, seed_bits=ka.seed_bits)
    assert np.array_equal(ka.key, kb.key)
    assert ka.out_len == math.floor(3500 - 1000 - 2 * math.log2(1e10)) == 2433
    assert ch.public_bits == 4096 + 2433 - 1 and ch.disclosed_bits == 0  # the seed is public, not leakage
    # one differing input bit: about half of the output bits differ
    y = x.copy()
    y[100] ^= 1
    kc = privacy_amplify(y, entropy_bits=3500, disclosed_bits=1000, eps=1e-10, seed_bits=ka.seed_bits)
    assert 0.45 < np.mean(kc.key != ka.key) < 0.55


def test_leftover_hash_length_and_refusal():
    assert leftover_hash_length(1000, 200, 2.0**-20) == 760
    assert leftover_hash_length(1000.9, 200, 0.5) == 798
    with pytest.raises(ValueError, match="not positive"):
        leftover_hash_length(300, 240, 1e-10)  # 300 - 240 - 66.4 < 0
    with pytest.raises(ValueError, match="not positive"):
        leftover_hash_length(100, 34, 2.0**-33)  # exactly 0
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, 512, dtype=np.uint8)
    with pytest.raises(ValueError, match="not positive"):
        privacy_amplify(x, entropy_bits=400, disclosed_bits=350, eps=1e-10, rng=rng)
    with pytest.raises(ValueError, match="inconsistent"):
        privacy_amplify(x, entropy_bits=5000, disclosed_bits=0, eps=0.1, rng=rng)


@pytest.mark.parametrize("eps", [0, 1, -0.5, 1.5, float("nan"), True, "1e-10"])
def test_eps_outside_unit_interval(eps):
    with pytest.raises(ValueError, match="eps"):
        leftover_hash_length(1000, 10, eps)


def test_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="binary"):
        toeplitz_hash(np.array([0, 1, 2]), toeplitz_seed(3, 2, rng), 2)
    with pytest.raises(ValueError, match="seed_bits"):
        toeplitz_hash(np.array([0, 1, 1]), np.ones(3, np.uint8), 2)
    with pytest.raises(ValueError, match="binary"):
        privacy_amplify(np.array([0.5] * 100), entropy_bits=90, disclosed_bits=0, eps=0.5, rng=rng)
    with pytest.raises(ValueError, match="entropy_bits"):
        leftover_hash_length(-1, 0, 0.1)
    with pytest.raises(ValueError, match="seed_bits"):
        privacy_amplify(np.ones(100, np.uint8), entropy_bits=90, disclosed_bits=0, eps=0.5)


def test_shake_alternative_is_labelled_and_deterministic():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, 1000, dtype=np.uint8)
    r = privacy_amplify(x, entropy_bits=900, disclosed_bits=100, eps=1e-6, method="shake256")
    assert r.method == "shake256" and r.seed_bits is None and r.key.size == r.out_len
    assert np.array_equal(r.key, shake_extract(x, r.out_len))
    assert not np.array_equal(shake_extract(x, 64), shake_extract(x[:-1], 64))


def test_mcv_min_entropy():
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 2, 8 * 50_000, dtype=np.uint8)
    est = mcv_min_entropy(bits_to_symbols(bits, 8), 8)
    assert 0.9 < est.h_bit < 1.0 and est.n == 50_000
    # SP 800-90B 6.3.1 arithmetic: p_u = p_hat + 2.576 sqrt(p_hat (1 - p_hat) / (N - 1))
    s = np.array([0] * 60 + [1] * 40)
    e = mcv_min_entropy(s)
    pu = 0.6 + 2.576 * math.sqrt(0.24 / 99)
    assert e.p_upper == pytest.approx(pu) and e.h_symbol == pytest.approx(-math.log2(pu))
    assert mcv_min_entropy(np.zeros(100, int)).h_bit == 0.0
    # correlated bits (each bit repeated): 8-bit symbols see it, 1-bit symbols do not
    rep = np.repeat(rng.integers(0, 2, 200_000, dtype=np.uint8), 2)
    assert mcv_min_entropy(bits_to_symbols(rep, 8), 8).h_bit < 0.55 < mcv_min_entropy(rep, 1).h_bit


def test_plugin_mutual_information():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2, 100_000)
    flip = rng.random(x.size) < 0.1
    mi, se = plugin_mutual_information(x, x ^ flip)
    assert mi == pytest.approx(1 - 0.469, abs=0.01) and se < 0.01
    mi0, _ = plugin_mutual_information(x, rng.integers(0, 2, x.size))
    assert mi0 < 1e-3


def test_shake_context_str_is_utf8_and_other_types_refused():
    x = np.random.default_rng(6).integers(0, 2, 200, dtype=np.uint8)
    assert np.array_equal(shake_extract(x, 64, context="abc"), shake_extract(x, 64, context=b"abc"))
    assert np.array_equal(shake_extract(x, 64, context="é"), shake_extract(x, 64, context="é".encode()))
    assert np.array_equal(shake_extract(x, 64, context=bytearray(b"phykey-pa")), shake_extract(x, 64))
    with pytest.raises(ValueError, match=r"context = 5 is not allowed; it must be bytes or a str"):
        shake_extract(x, 64, context=5)


def test_privacy_amplify_channel_checked():
    x = np.random.default_rng(7).integers(0, 2, 200, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"channel = 5 is not allowed; it must be a keygen.channel.PublicChannel"):
        privacy_amplify(x, entropy_bits=180, disclosed_bits=0, eps=0.01, rng=np.random.default_rng(0), channel=5)


@pytest.mark.parametrize(
    "width, pattern",
    [
        (0, r"width = 0 is not allowed; it must be an integer >= 1"),
        (-1, r"width = -1 is not allowed"),
        (2.5, r"width = 2.5 is not allowed"),
        (True, r"width = True is not allowed"),
        ("8", r"width = '8' is not allowed"),
    ],
)
def test_mcv_width_checked(width, pattern):
    with pytest.raises(ValueError, match=pattern):
        mcv_min_entropy(np.array([0, 1, 1, 0]), width)


@pytest.mark.parametrize(
    "symbols, width, pattern",
    [
        (np.array([0.0, np.nan, 1.0]), 1, r"symbols must hold finite integer symbols, found nan"),
        (np.array([0.0, 0.5, 1.0]), 1, r"symbols must hold finite integer symbols, found 0.5"),
        (np.array([0, 5, 1]), 1, r"symbols holds 5, outside the range 0 .. 2\^width - 1 = 1 for width = 1"),
        (np.array([0, -1, 3]), 2, r"symbols holds -1, outside the range 0 .. 2\^width - 1 = 3 for width = 2"),
        (np.zeros((2, 3), int), 1, r"symbols must be a 1-D array of integer symbols, got shape \(2, 3\)"),
        (np.array(["a", "b"]), 1, r"symbols must hold integer symbols, got dtype <U1"),
    ],
)
def test_mcv_symbols_checked(symbols, width, pattern):
    with pytest.raises(ValueError, match=pattern):
        mcv_min_entropy(symbols, width)


def test_mcv_accepts_whole_floats_bools_and_wide_symbols():
    s = np.array([0] * 60 + [1] * 40)
    ref = mcv_min_entropy(s)
    assert mcv_min_entropy(s.astype(float)) == ref == mcv_min_entropy(s.astype(bool))
    assert mcv_min_entropy(np.array([2**62, 0, 0]), 63).p_hat == pytest.approx(2 / 3)


@pytest.mark.parametrize("batches", [0, 1, 2.5, True, "10"])
def test_plugin_mi_batches_checked(batches):
    x = np.arange(40) % 2
    with pytest.raises(ValueError, match=rf"batches = {batches!r} is not allowed; it must be an integer >= 2"):
        plugin_mutual_information(x, x, batches=batches)


def test_plugin_mi_symbols_checked():
    x = np.arange(40) % 2
    with pytest.raises(ValueError, match=r"x must be a 1-D array of integer symbols, got shape \(4, 10\)"):
        plugin_mutual_information(x.reshape(4, 10), x)
    with pytest.raises(ValueError, match=r"y must be a 1-D array of integer symbols, got shape \(4, 10\)"):
        plugin_mutual_information(x, x.reshape(4, 10))
    with pytest.raises(ValueError, match=r"x must hold finite integer symbols, found nan"):
        plugin_mutual_information(np.full(40, np.nan), x)
    with pytest.raises(ValueError, match=r"y must hold finite integer symbols, found 0.5"):
        plugin_mutual_information(x, x * 0.5)
    with pytest.raises(ValueError, match=r"paired 1-D symbol arrays of >= 20 entries, got \(40,\), \(39,\)"):
        plugin_mutual_information(x, x[:-1])
    mi, se = plugin_mutual_information(x, x, batches=2)
    assert mi == pytest.approx(1.0) and se == pytest.approx(0.0)
    assert plugin_mutual_information(x.astype(float), x) == plugin_mutual_information(x, x)
