"""NIST SP 800-22 rev1a tests (keygen.randomness) against the document's worked examples.

Reference values are the ones printed in SP 800-22 rev1a: the short examples of Sections 2.x.4, the
100-bit examples of 2.x.8 (the first 100 bits of pi, printed there in full), the 2.5.8 rank example
(first 100,000 bits of e), the 2.11.8 serial example and Appendix B (first 10^6 bits of e). The bits of
e are regenerated here exactly with Python integers (binary splitting of sum 1/k!), the way the
document defines that input.

Tolerances: the document prints p-values with 6 decimals (rounding error <= 5e-7), computed by the NIST
reference C code with Cephes special functions (relative accuracy ~1e-7 or better); an absolute
tolerance of 1e-6 covers both and still pins every printed digit but the last.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import pytest

from keygen.randomness import (
    _rank_probabilities,
    approximate_entropy,
    binary_matrix_rank,
    bits_from_string,
    block_frequency,
    cumulative_sums,
    frequency,
    nist_pass_ratios,
    runs,
    serial,
    spectral,
)

TOL = 1e-6  # see module docstring: 6 printed decimals + reference-code special-function accuracy

# SP 800-22 rev1a 2.1.8 etc.: "the first 100 bits of pi" as printed in the document. The test below
# rebuilds it from pi with integer arithmetic, so a typo here would be caught.
PI_100 = "1100100100001111110110101010001000100001011010001100001000110100110001001100011001100010100010111000"


def _pi_bits(n: int) -> str:
    """First n bits of pi's binary expansion (integer part "11" included), Machin's formula."""
    guard = 64
    one = 1 << (n + guard)

    def arctan_inv(x: int) -> int:  # arctan(1/x) * one
        total, term, k, sign = 0, one // x, 1, 1
        x2 = x * x
        while term:
            total += sign * (term // k)
            term //= x2
            k += 2
            sign = -sign
        return total

    pi = 4 * (4 * arctan_inv(5) - arctan_inv(239))
    return bin(pi >> (guard + 2))[2:][:n]


def _e_bits(n: int) -> np.ndarray:
    """First n bits of e = 10.1011011111...b (integer part "10" included), as 0/1 uint8.

    e = sum_{k>=0} 1/k! by binary splitting on Python integers: exact up to the truncation of the
    series, whose tail after N terms is < 2/(N+1)! and is made smaller than 2^-(n+64).
    """
    N, log2_fact = 1, 0.0
    while log2_fact < n + 64:
        N += 1
        log2_fact += math.log2(N)

    def split(a: int, b: int) -> tuple[int, int]:  # sum_{k=a+1}^{b} a!/k! = p/q
        if b - a == 1:
            return 1, b
        m = (a + b) // 2
        p1, q1 = split(a, m)
        p2, q2 = split(m, b)
        return p1 * q2 + p2, q1 * q2

    p, q = split(0, N)  # sum_{k=1}^{N} 1/k!
    value = ((q + p) << (n - 2)) // q  # floor(e * 2^(n-2)): n bits, "10" first
    s = bin(value)[2:]
    assert len(s) == n
    return np.frombuffer(s.encode("ascii"), dtype=np.uint8) - ord("0")


@pytest.fixture(scope="module")
def e_million() -> np.ndarray:
    return _e_bits(1_000_000)


def test_input_strings_are_the_documented_constants():
    assert _pi_bits(100) == PI_100
    e = _e_bits(130)
    # e - 2 = 0.B7E151628AED2A6A... (hex), the constant behind the RC5/RC6 "P" magic numbers.
    frac = int("".join(map(str, e[2:66])), 2)
    assert e[0] == 1 and e[1] == 0
    assert frac == 0xB7E151628AED2A6A


# ------------------------------------------------------------------------------------------ frequency


def test_frequency_short_example_2_1_4():
    r = frequency(bits_from_string("1011010101"))
    assert r.stats["S_n"] == 2
    assert r.stats["s_obs"] == pytest.approx(0.632455532, abs=1e-9)
    assert r.p_value == pytest.approx(0.527089, abs=TOL)
    assert not r.meets_recommendation  # n = 10 < 100 (SP 2.1.7)


def test_frequency_pi_example_2_1_8():
    r = frequency(bits_from_string(PI_100))
    assert r.stats["S_n"] == -16
    assert r.stats["s_obs"] == pytest.approx(1.6, abs=1e-12)
    assert r.p_value == pytest.approx(0.109599, abs=TOL)
    assert r.meets_recommendation


# ---------------------------------------------------------------------------------- block frequency


def test_block_frequency_short_example_2_2_4():
    r = block_frequency(bits_from_string("0110011010"), block_size=3)
    assert r.stats["N"] == 3
    assert r.stats["chi2"] == pytest.approx(1.0, abs=1e-12)
    assert r.p_value == pytest.approx(0.801252, abs=TOL)


def test_block_frequency_pi_example_2_2_8():
    r = block_frequency(bits_from_string(PI_100), block_size=10)
    assert r.stats["N"] == 10
    assert r.stats["chi2"] == pytest.approx(7.2, abs=1e-12)
    assert r.p_value == pytest.approx(0.706438, abs=TOL)


# --------------------------------------------------------------------------------------------- runs


def test_runs_short_example_2_3_4():
    r = runs(bits_from_string("1001101011"))
    assert r.stats["pi"] == pytest.approx(0.6)
    assert r.stats["V_n"] == 7
    assert r.p_value == pytest.approx(0.147232, abs=TOL)


def test_runs_pi_example_2_3_8():
    r = runs(bits_from_string(PI_100))
    assert r.stats["pi"] == pytest.approx(0.42)
    assert r.stats["V_n"] == 52
    assert r.p_value == pytest.approx(0.500798, abs=TOL)


def test_runs_prerequisite_and_detection():
    # all ones: pi = 1, |pi - 1/2| >= tau = 2/sqrt(n) -> test not run, p = 0 (SP 2.3.4 (2))
    r = runs(np.ones(200, dtype=int))
    assert not r.stats["prerequisite_passed"] and r.p_value == 0.0
    # balanced but alternating: V_n = n, expected ~ n/2 -> fails although frequency passes
    alt = np.tile([0, 1], 500)
    assert frequency(alt).p_value == 1.0
    assert runs(alt).p_value < 1e-10
    # constant sequence shorter than 16 bits passes the pre-test; p is defined as 0 (see docstring)
    assert runs([1, 1, 1, 1]).p_value == 0.0


# --------------------------------------------------------------------------------- cumulative sums


def test_cusum_short_example_2_13_4():
    r = cumulative_sums(bits_from_string("1011010111"))
    assert r.stats["z_forward"] == 4
    # printed as 0.4116588; exact normal CDF gives 0.41165862 (2e-7 away: Cephes accuracy)
    assert r.p_values[0] == pytest.approx(0.4116588, abs=TOL)


def test_cusum_pi_example_2_13_8():
    r = cumulative_sums(bits_from_string(PI_100))
    assert (r.stats["z_forward"], r.stats["z_backward"]) == (16, 19)
    assert r.p_values[0] == pytest.approx(0.219194, abs=TOL)
    assert r.p_values[1] == pytest.approx(0.114866, abs=TOL)


# ------------------------------------------------------------------------------------------- serial


def test_serial_short_example_2_11_4():
    r = serial(bits_from_string("0011011101"), m=3)
    assert r.stats["psi2_m"] == pytest.approx(2.8, abs=1e-12)
    assert r.stats["psi2_m-1"] == pytest.approx(1.2, abs=1e-12)
    assert r.stats["psi2_m-2"] == pytest.approx(0.4, abs=1e-12)
    assert r.p_values[0] == pytest.approx(0.808792, abs=TOL)
    assert r.p_values[1] == pytest.approx(0.670320, abs=TOL)


# ----------------------------------------------------------------------------- approximate entropy


def test_approximate_entropy_short_example_2_12_4():
    r = approximate_entropy(bits_from_string("0100110101"), m=3)
    assert r.stats["chi2"] == pytest.approx(10.043859, abs=TOL)
    assert r.p_value == pytest.approx(0.261961, abs=TOL)


def test_approximate_entropy_pi_example_2_12_8():
    r = approximate_entropy(bits_from_string(PI_100), m=2)
    assert r.stats["ApEn"] == pytest.approx(0.665393, abs=TOL)
    assert r.stats["chi2"] == pytest.approx(5.550792, abs=TOL)
    assert r.p_value == pytest.approx(0.235301, abs=TOL)


# -------------------------------------------------------------------------------------------- rank


def test_rank_short_example_2_5_4_counts():
    # SP 2.5.4: two 3x3 matrices, ranks 2 and 3 -> F_M = 1, F_{M-1} = 1. (The document then uses the
    # 32x32 class probabilities in its chi^2; this implementation uses the exact 3x3 ones, so only the
    # counts are compared.)
    r = binary_matrix_rank(bits_from_string("01011001001010101101"), rows=3, cols=3)
    assert (r.stats["N"], r.stats["F_M"], r.stats["F_M-1"], r.stats["N-F_M-F_M-1"]) == (2, 1, 1, 0)


def test_rank_probabilities_32_and_exhaustive_3x3():
    p32, p31, p30 = _rank_probabilities(32, 32)
    # SP 2.5.4 (4) prints 0.2888, 0.5776, 0.1336 (4 decimals -> 5e-5)
    assert (p32, p31, p30) == pytest.approx((0.2888, 0.5776, 0.1336), abs=5e-5)
    # independent: enumerate all 2^9 binary 3x3 matrices and their GF(2) rank
    counts = [0, 0, 0, 0]
    for v in range(512):
        rows = [(v >> (3 * i)) & 7 for i in range(3)]
        counts[_xor_basis_rank(rows)] += 1
    p3, p2, p_le1 = _rank_probabilities(3, 3)
    assert p3 == pytest.approx(counts[3] / 512, abs=1e-15)
    assert p2 == pytest.approx(counts[2] / 512, abs=1e-15)
    assert p_le1 == pytest.approx((counts[0] + counts[1]) / 512, abs=1e-15)


def _xor_basis_rank(rows: list[int]) -> int:
    """GF(2) rank of integer-packed rows by a linear (xor) basis; independent of the numpy code."""
    basis: list[int] = []
    for r in rows:
        for b in basis:
            r = min(r, r ^ b)
        if r:
            basis.append(r)
    return len(basis)


def test_rank_counts_match_independent_rank():
    rng = np.random.default_rng(11)
    # mostly random rows, plus matrices with a duplicated row (rank deficient) to populate all classes
    mats = rng.integers(0, 2, size=(60, 32, 32))
    mats[::3, 5] = mats[::3, 7]
    mats[::5, 1] = mats[::5, 2] ^ mats[::5, 3]
    mats[::5, 9] = mats[::5, 10]
    ranks = [_xor_basis_rank([int("".join(map(str, row)), 2) for row in m]) for m in mats]
    r = binary_matrix_rank(mats.reshape(-1))
    assert r.stats["N"] == 60
    assert r.stats["F_M"] == sum(k == 32 for k in ranks)
    assert r.stats["F_M-1"] == sum(k == 31 for k in ranks)
    assert r.stats["N-F_M-F_M-1"] == sum(k <= 30 for k in ranks)


def test_rank_e_example_2_5_8(e_million):
    r = binary_matrix_rank(e_million[:100_000])
    assert (r.stats["N"], r.stats["F_M"], r.stats["F_M-1"], r.stats["N-F_M-F_M-1"]) == (97, 23, 60, 14)
    assert r.stats["chi2"] == pytest.approx(1.2619656, abs=TOL)
    assert r.p_value == pytest.approx(0.532069, abs=TOL)


# ------------------------------------------------------------------------ first 10^6 bits of e


def test_e_million_appendix_b_and_2_11_8(e_million):
    e = e_million
    assert frequency(e).p_value == pytest.approx(0.953749, abs=TOL)
    assert runs(e).p_value == pytest.approx(0.561917, abs=TOL)
    assert binary_matrix_rank(e).p_value == pytest.approx(0.306156, abs=TOL)
    assert spectral(e).p_value == pytest.approx(0.847187, abs=TOL)
    cs = cumulative_sums(e)
    assert cs.p_values == pytest.approx((0.669886, 0.724265), abs=TOL)
    s2 = serial(e, m=2)  # SP 2.11.8
    assert s2.stats["del_psi2"] == pytest.approx(0.339764, abs=TOL)
    assert s2.stats["del2_psi2"] == pytest.approx(0.336400, abs=TOL)
    assert s2.p_values == pytest.approx((0.843764, 0.561915), abs=TOL)
    assert serial(e, m=16).p_values == pytest.approx((0.766182, 0.462921), abs=TOL)


# --------------------------------------------------------------------------------------------- DFT


def test_spectral_statistic_matches_direct_dft():
    # Independent of np.fft: the moduli by the O(n^2) DFT sum, then SP 2.6.4 (4)-(8) by hand.
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, 256)
    x = 2.0 * bits - 1.0
    n = x.size
    j = np.arange(n)
    mod = [abs(np.sum(x * np.exp(-2j * np.pi * k * j / n))) for k in range(n // 2)]
    T = math.sqrt(math.log(20.0) * n)
    n1 = sum(m < T for m in mod)
    d = (n1 - 0.95 * n / 2) / math.sqrt(n * 0.95 * 0.05 / 4)
    r = spectral(bits)
    assert r.stats["N_1"] == n1
    assert r.stats["d"] == pytest.approx(d, abs=1e-12)
    assert r.p_value == pytest.approx(math.erfc(abs(d) / math.sqrt(2)), abs=1e-12)


def test_spectral_detects_periodicity():
    rng = np.random.default_rng(6)
    period = rng.integers(0, 2, 32)
    bits = np.tile(period, 64)  # 2048 bits, all energy on 1/32 of the frequencies
    assert spectral(bits).p_value < 1e-10


# ----------------------------------------------------------------------------- random vs biased


def test_true_random_bits_pass_every_test():
    # 10^5 bits from the OS CSPRNG (no seed, on purpose). Under H0 each p-value is (close to) uniform,
    # so requiring p > 1e-5 instead of >= 0.01 keeps the false-failure rate of this test below
    # 11 p-values x 1e-5 ~ 1e-4 per run, while any real defect (bias, correlation) gives p ~ 0.
    n = 100_000
    word = secrets.randbits(n)
    bits = np.frombuffer(word.to_bytes(n // 8, "little"), dtype=np.uint8)
    bits = np.unpackbits(bits)
    assert bits.size == n
    results = [
        frequency(bits),
        block_frequency(bits, block_size=1280),  # M >= 20, M > 0.01 n, N = 78 < 100 (SP 2.2.7)
        runs(bits),
        binary_matrix_rank(bits),  # N = 97 >= 38
        spectral(bits),
        serial(bits, m=10),  # m < floor(log2 n) - 2 = 14
        approximate_entropy(bits, m=8),  # m < floor(log2 n) - 5 = 11
        cumulative_sums(bits),
    ]
    for r in results:
        assert r.meets_recommendation, r.name
        assert min(r.p_values) > 1e-5, (r.name, r.p_values)


def test_biased_stream_fails_frequency_cusum_runs():
    rng = np.random.default_rng(2024)
    bits = (rng.random(10_000) < 0.6).astype(np.uint8)  # P(1) = 0.6
    # Expected S_n = 0.2 n = 2000, sd sqrt(n * 0.96) ~ 98: s_obs ~ 20 -> p ~ 1e-88, far below 0.01
    assert frequency(bits).p_value < 1e-10
    assert max(cumulative_sums(bits).p_values) < 1e-10
    # |pi - 1/2| ~ 0.1 >= tau = 2/sqrt(n) = 0.02: the runs pre-test rejects, p = 0
    assert runs(bits).p_value == 0.0


def test_sticky_markov_stream_fails_runs_but_not_frequency():
    # balanced first-order Markov chain with P(repeat) = 0.6: too few runs, fair marginal
    rng = np.random.default_rng(7)
    n = 20_000
    flips = rng.random(n) < 0.4
    bits = (np.cumsum(flips) % 2).astype(np.uint8)
    assert frequency(bits).p_value > 1e-3  # marginal is fair: p uniform-ish; 1e-3 is a loose floor
    assert runs(bits).p_value < 1e-10  # expected V_n ~ 0.4 n vs 0.5 n under H0: z ~ 28
    assert min(serial(bits, m=3).p_values) < 1e-10


# -------------------------------------------------------------------------- 002 Table III protocol


def test_pass_ratios_protocol_by_hand():
    alt = np.tile([0, 1], 64)  # 128 bits: frequency p = 1, runs fails (V_n = 128)
    ones = np.ones(128, dtype=np.uint8)  # frequency fails, runs pre-test fails
    stream = np.concatenate([alt, ones, alt, np.ones(100, dtype=np.uint8)])  # last 100 bits: tail
    # splice back from keys of uneven length, one of them empty
    cuts = [0, 7, 7, 200, 301, stream.size]
    keys = [stream[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    r = nist_pass_ratios(keys)
    assert list(r) == [
        "approximate_entropy",
        "block_frequency",
        "cumulative_sums",
        "dft",
        "frequency",
        "rank",
        "runs",
        "serial",
    ]
    assert r["frequency"] == pytest.approx(2 / 3)  # the tail does not form a 4th block
    assert r["runs"] == 0.0
    assert math.isnan(r["rank"])  # 384 bits < one 32x32 matrix
    # the same stream as one array gives the same answer
    assert nist_pass_ratios(stream) == pytest.approx(r, nan_ok=True)


def test_pass_ratios_random_and_biased():
    rng = np.random.default_rng(3)
    keys = [rng.integers(0, 2, rng.integers(80, 130)) for _ in range(6000)]  # uneven lengths like 002
    r = nist_pass_ratios(keys)
    # ~4,700 blocks. Under H0 each test rejects ~1 % (DFT and serial ~1.7 % at n = 128: their
    # chi^2/normal approximations are loose there); binomial sd ~ 0.002, so 0.97 is > 5 sd below.
    for name, ratio in r.items():
        if name != "rank":
            assert ratio > 0.97, (name, ratio)
    # rank: 15 groups of 38,912 bits; P(>= 2 of 15 fail at alpha = 0.01) ~ 1 %, for this seed none do
    assert r["rank"] >= 14 / 15
    biased = [(rng.random(100) < 0.6).astype(np.uint8) for _ in range(2000)]
    rb = nist_pass_ratios(biased)
    # 128-bit blocks with P(1) = 0.6: S_n ~ N(25.6, 11.1^2), a block fails when |S_n| >= 2.576 sqrt(128)
    # = 29.1, i.e. with probability ~0.37: expected ratio ~0.63, binomial sd over 1,562 blocks ~0.012
    assert rb["frequency"] < 0.7
    assert rb["frequency"] < r["frequency"] - 0.3


# --------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda: frequency([]),
        lambda: frequency([[0, 1], [1, 0]]),
        lambda: frequency([0, 1, 2]),
        lambda: frequency([0.5, 1.0]),
        lambda: frequency(["a", "b"]),
        lambda: block_frequency([0, 1, 1], block_size=4),
        lambda: block_frequency([0, 1, 1], block_size=0),
        lambda: binary_matrix_rank(np.zeros(1000, dtype=int)),
        lambda: binary_matrix_rank(np.zeros(100, dtype=int), rows=1, cols=4),
        lambda: serial([0, 1, 1, 0], m=1),
        lambda: serial([0, 1, 1, 0], m=5),
        lambda: approximate_entropy([0, 1, 1, 0], m=0),
        lambda: approximate_entropy([0, 1, 1, 0], m=4),
        lambda: spectral([1]),
        lambda: bits_from_string("0102"),
        lambda: nist_pass_ratios([np.ones(100, dtype=int)]),
        lambda: nist_pass_ratios([np.ones(200, dtype=int)], alpha=0.0),
        lambda: nist_pass_ratios([np.array([0, 1, 3])]),
        lambda: nist_pass_ratios([]),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_error_message_names_value():
    with pytest.raises(ValueError, match=r"found value 2"):
        frequency([0, 1, 2])
    with pytest.raises(ValueError, match=r"m = 1 .*\[2, 4\]"):
        serial([0, 1, 1, 0], m=1)


def test_accepts_bool_float_and_torch():
    ref = frequency(bits_from_string(PI_100)).p_value
    as_bool = bits_from_string(PI_100).astype(bool)
    assert frequency(as_bool).p_value == ref
    assert frequency(as_bool.astype(float)).p_value == ref
    torch = pytest.importorskip("torch")
    assert frequency(torch.tensor(as_bool.astype(np.int64))).p_value == ref


def test_longest_run_of_ones_against_sp800_22_example():
    """SP 800-22 rev1a 2.4.8: the 128-bit example, M = 8: nu = (4, 9, 3, 0), chi^2 = 4.882605 (6 printed
    decimals), P-value 0.180609 as printed (igamc(3/2, chi^2/2) of the printed chi^2 is 0.180598: the
    document's last digits come from its rounded pi_i; 2e-5 covers both)."""
    import numpy as np
    import scipy.special

    from keygen.randomness import bits_from_string, longest_run_of_ones, nist_pass_ratios_003

    eps = ("11001100000101010110110001001100111000000000001001001101010100010001001111010110100000001101011111"
           "001100111001101101100010110010")
    r = longest_run_of_ones(bits_from_string(eps))
    assert [r.stats[f"nu_{i}"] for i in range(4)] == [4, 9, 3, 0]
    assert r.stats["chi2"] == pytest.approx(4.882605, abs=1e-6)
    assert r.p_value == pytest.approx(scipy.special.gammaincc(1.5, r.stats["chi2"] / 2), abs=1e-15)
    assert r.p_value == pytest.approx(0.180609, abs=2e-5)
    with pytest.raises(ValueError, match="n = 100 bits; SP 2.4.7 needs n >= 128"):
        longest_run_of_ones(np.ones(100, dtype=int))
    # nine ratios; fair coin flips pass each test in about 1 - alpha of the 256-bit keys
    ratios = nist_pass_ratios_003(np.random.default_rng(0).integers(0, 2, (2000, 256)))
    assert len(ratios) == 9 and all(v > 0.97 for v in ratios.values())


@pytest.mark.parametrize("value", [101, b"0101", None, ["0", "1"]])
def test_bits_from_string_refuses_non_strings(value):
    with pytest.raises(ValueError, match=r"bits_from_string: s must be a str of '0' and '1' characters, got"):
        bits_from_string(value)
