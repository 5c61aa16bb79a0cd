"""Information reconciliation (keygen.reconcile): Cascade and LDPC syndrome decoding."""

from __future__ import annotations

import numpy as np
import pytest

from keygen.channel import PublicChannel
from keygen.reconcile import Cascade, LDPCSyndrome, binary_entropy, regular_parity_check_matrix


def _pair(n: int, errors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Alice's uniform string and Bob's copy with exactly ``errors`` flipped bits."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    b = a.copy()
    b[rng.choice(n, errors, replace=False)] ^= 1
    return a, b


@pytest.mark.parametrize("rate", [0.01, 0.03, 0.05, 0.10])
def test_cascade_corrects_every_error(rate):
    n = 4096
    for seed in range(5):
        a, b = _pair(n, round(rate * n), seed)
        ch = PublicChannel()
        res = Cascade().reconcile(a, b, ch, error_rate=rate, seed=seed)
        assert res.success and res.residual_errors == 0
        assert np.array_equal(res.key(), a) and np.array_equal(res.bob_key(), a)
        assert res.error_rate == pytest.approx(round(rate * n) / n)
        # efficiency of the original protocol, verification hash included (literature: ~1.13-1.18 without it)
        assert 1.0 < res.efficiency < 1.6


def test_cascade_disclosure_counted_exactly():
    n, rate = 4096, 0.03
    a, b = _pair(n, round(rate * n), 7)
    ch = PublicChannel()
    cas = Cascade()
    res = cas.reconcile(a, b, ch, error_rate=rate, seed=3)
    parities = res.transcript["parities"]
    # every distinct Alice parity revealed + the 64 verification-hash bits, nothing else
    assert res.disclosed_bits == len(parities) + cas.verify_bits == ch.disclosed_bits
    kinds = {k for k, _, d in ch.log if d}
    assert kinds == {"cascade_parity", "verify_hash"}
    assert sum(nb for k, nb, d in ch.log if d and k == "cascade_parity") == len(parities)
    # the published parities are Alice's true parities of the announced ranges
    perms = res.transcript["permutations"]
    for (p, s, e), v in list(parities.items())[:500]:
        assert v == int(a[perms[p][s:e]].sum()) & 1
    # no errors: exactly one parity per top-level block of every pass, one round per pass + verification
    ch0 = PublicChannel()
    r0 = cas.reconcile(a, a.copy(), ch0, error_rate=rate, seed=3)
    ks = cas.block_sizes(n, rate)
    assert ks == [25, 50, 100, 200]  # k1 = ceil(0.73 / 0.03), doubling
    assert r0.disclosed_bits == sum(-(-n // k) for k in ks) + 64
    assert r0.rounds == cas.passes + 1
    assert np.isnan(r0.efficiency) and r0.success


def test_cascade_deterministic_per_seed():
    a, b = _pair(2048, 60, 1)
    r1 = Cascade().reconcile(a, b, error_rate=0.03, seed=5)
    r2 = Cascade().reconcile(a, b, error_rate=0.03, seed=5)
    assert (r1.disclosed_bits, r1.rounds) == (r2.disclosed_bits, r2.rounds)
    assert r1.transcript["parities"] == r2.transcript["parities"]


def test_cascade_eve_replay_uses_only_the_transcript():
    n = 4096
    a, b = _pair(n, 120, 2)
    res = Cascade().reconcile(a, b, error_rate=0.03, seed=2)
    # Bob replaying the transcript on his own string reproduces his correction exactly
    assert np.array_equal(Cascade().replay(b, res.transcript), a)
    # an independent string gains nothing: still about half the bits wrong
    eve = np.random.default_rng(9).integers(0, 2, n, dtype=np.uint8)
    assert 0.4 < np.mean(Cascade().replay(eve, res.transcript) == a) < 0.6


def test_failed_verification_never_returns_a_key():
    a, b = _pair(1024, 2, 0)  # two errors in one block: parity cannot see them with a single pass
    res = Cascade(passes=1).reconcile(a, b, error_rate=0.0, seed=0)
    assert not res.success and res.residual_errors == 2
    with pytest.raises(RuntimeError, match="failed verification"):
        res.key()
    with pytest.raises(RuntimeError):
        res.bob_key()
    # LDPC designed for 1 % but facing 12 %: decoding fails, verification catches it
    a, b = _pair(2048, 245, 1)
    res = LDPCSyndrome().reconcile(a, b, error_rate=0.01, seed=0)
    assert not res.success and res.residual_errors > 0
    with pytest.raises(RuntimeError):
        res.key()


@pytest.mark.parametrize("method", [Cascade(), LDPCSyndrome()])
def test_bad_input(method):
    a, b = _pair(512, 5, 0)
    with pytest.raises(ValueError, match="equal lengths"):
        method.reconcile(a, b[:-1], error_rate=0.01)
    with pytest.raises(ValueError, match="binary"):
        method.reconcile(a, b * 2, error_rate=0.01)
    with pytest.raises(ValueError, match="binary"):
        method.reconcile(a.astype(float) + 0.5, b, error_rate=0.01)
    with pytest.raises(ValueError, match="1-D"):
        method.reconcile(a.reshape(2, -1), b.reshape(2, -1), error_rate=0.01)
    with pytest.raises(ValueError, match="error_rate"):
        method.reconcile(a, b, error_rate=-0.1)
    with pytest.raises(ValueError, match="error_rate"):
        method.reconcile(a, b, error_rate=float("nan"))
    with pytest.raises(ValueError, match="above what"):
        method.reconcile(a, b, error_rate=0.3)


def test_ldpc_matrix_is_regular():
    H = regular_parity_check_matrix(1024, 300, 3, 0)
    assert H.shape == (300, 1024)
    assert np.all(np.asarray(H.sum(0)).ravel() == 3)
    rows = np.asarray(H.sum(1)).ravel()
    assert rows.max() - rows.min() <= 1
    assert H.max() == 1  # no repeated entry in a column


@pytest.mark.parametrize("rate, frames, min_success", [(0.01, 20, 19), (0.03, 20, 19), (0.05, 20, 19)])
def test_ldpc_success_rates(rate, frames, min_success):
    """Frame success of syndrome decoding at n = 2048, f_design = 2.5 (measured: 20/20 at each rate)."""
    n = 2048
    rec = LDPCSyndrome()
    ok, eff = 0, []
    for seed in range(frames):
        a, b = _pair(n, round(rate * n), 100 + seed)
        ch = PublicChannel()
        res = rec.reconcile(a, b, ch, error_rate=rate, seed=seed)
        m = rec.syndrome_length(n, rate)
        assert res.disclosed_bits == m + rec.verify_bits == ch.disclosed_bits  # syndrome + hash, counted exactly
        assert res.rounds == 2
        ok += res.success
        eff.append(res.efficiency)
    assert ok >= min_success, f"{ok}/{frames} frames at {rate:.0%}"
    e_true = round(rate * n) / n
    assert np.mean(eff) == pytest.approx((rec.syndrome_length(n, rate) + 64) / (n * binary_entropy(e_true)))


def test_ldpc_eve_replay():
    a, b = _pair(2048, 60, 3)
    rec = LDPCSyndrome()
    res = rec.reconcile(a, b, error_rate=0.03, seed=0)
    assert res.success
    assert np.array_equal(rec.replay(b, res.transcript), a)
    eve = np.random.default_rng(4).integers(0, 2, 2048, dtype=np.uint8)
    assert np.mean(rec.replay(eve, res.transcript) == a) < 0.6


def test_binary_entropy():
    assert binary_entropy(0.0) == 0.0 and binary_entropy(1.0) == 0.0
    assert binary_entropy(0.5) == pytest.approx(1.0)
    assert binary_entropy(0.11) == pytest.approx(0.4999, abs=1e-3)


@pytest.mark.parametrize("p", [float("nan"), 1.5, -0.2, [0.1, 2.0]])
def test_binary_entropy_refuses_non_probabilities(p):
    with pytest.raises(ValueError, match=r"p = .* is not allowed; binary_entropy needs probabilities in \[0, 1\]"):
        binary_entropy(p)


def test_binary_entropy_refuses_non_numbers():
    with pytest.raises(ValueError, match=r"p = 'a' .*real probabilities"):
        binary_entropy("a")
    with pytest.raises(ValueError, match=r"p = 0.5j .*real probabilities"):
        binary_entropy(0.5j)


def test_binary_entropy_arrays_and_ends():
    assert binary_entropy(0) == 0.0 and binary_entropy(1) == 0.0
    h = binary_entropy(np.array([0.0, 0.11, 0.5, 1.0]))
    assert h.shape == (4,) and h[0] == 0.0 and h[3] == 0.0 and h[2] == pytest.approx(1.0)


def test_ldpc_replay_refuses_wrong_length():
    a, b = _pair(256, 3, 1)
    rec = LDPCSyndrome()
    res = rec.reconcile(a, b, error_rate=0.02)
    assert res.transcript["n"] == 256
    with pytest.raises(ValueError, match=r"eve has 100 bits but the transcript is for n = 256"):
        rec.replay(a[:100], res.transcript)
    with pytest.raises(ValueError, match=r"transcript has no frame length 'n'"):
        rec.replay(a, {k: v for k, v in res.transcript.items() if k != "n"})


@pytest.mark.parametrize("method", [Cascade(), LDPCSyndrome()])
@pytest.mark.parametrize("seed", [1.5, "x", -1, True, None])
def test_reconcile_seed_checked(method, seed):
    a, b = _pair(256, 3, 2)
    with pytest.raises(ValueError, match=rf"seed = {seed!r} is not allowed; it must be an integer >= 0 or a numpy"):
        method.reconcile(a, b, error_rate=0.02, seed=seed)


@pytest.mark.parametrize("method", [Cascade(), LDPCSyndrome()])
def test_reconcile_seed_accepts_numpy_int_and_generator(method):
    a, b = _pair(512, 5, 3)
    r1 = method.reconcile(a, b, error_rate=0.02, seed=np.int64(4))
    r2 = method.reconcile(a, b, error_rate=0.02, seed=4)
    assert np.array_equal(r1.transcript["verify_seed"], r2.transcript["verify_seed"])
    assert method.reconcile(a, b, error_rate=0.02, seed=np.random.default_rng(4)).n == 512


@pytest.mark.parametrize("method", [Cascade(), LDPCSyndrome()])
def test_reconcile_channel_checked(method):
    a, b = _pair(256, 3, 2)
    with pytest.raises(ValueError, match=r"channel = 5 is not allowed; it must be a keygen.channel.PublicChannel"):
        method.reconcile(a, b, channel=5, error_rate=0.02)


def test_parity_check_matrix_seed_checked():
    for seed in ("a", -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"seed = {seed!r} is not allowed; it must be an integer >= 0"):
            regular_parity_check_matrix(10, 5, 3, seed)
    assert (regular_parity_check_matrix(10, 5, 3, np.int64(2)) != regular_parity_check_matrix(10, 5, 3, 2)).nnz == 0


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(k1_factor=float("inf")), r"k1_factor = inf is not allowed; it must be a finite number > 0"),
        (dict(k1_factor=float("nan")), r"k1_factor = nan is not allowed"),
        (dict(k1_factor=True), r"k1_factor = True is not allowed"),
    ],
)
def test_cascade_constructor_checked(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Cascade(**kwargs)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(f_design=float("inf")), r"f_design = inf is not allowed; it must be a finite number >= 1"),
        (dict(f_design=True), r"f_design = True is not allowed"),
        (dict(column_weight=2.5), r"column_weight = 2.5 is not allowed; it must be an integer >= 1"),
        (dict(column_weight="3"), r"column_weight = '3' is not allowed"),
        (dict(column_weight=0), r"column_weight = 0 is not allowed"),
        (dict(max_iter=0), r"max_iter = 0 is not allowed; it must be an integer >= 1"),
        (dict(max_iter=10.0), r"max_iter = 10.0 is not allowed"),
        (dict(osd_order=-1), r"osd_order = -1 is not allowed; it must be an integer >= 0"),
        (dict(code_seed=-1), r"code_seed = -1 is not allowed; it must be an integer >= 0"),
        (dict(code_seed="0"), r"code_seed = '0' is not allowed"),
    ],
)
def test_ldpc_constructor_checked(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        LDPCSyndrome(**kwargs)


@pytest.mark.parametrize("nbits", [-5, 2.5, "3", True])
def test_public_channel_counts_checked(nbits):
    ch = PublicChannel()
    with pytest.raises(ValueError, match=rf"nbits = {nbits!r} \(message 'x'\) is not allowed; it must be an integer"):
        ch.disclose("x", nbits)
    with pytest.raises(ValueError, match=rf"nbits = {nbits!r} \(message 'y'\) is not allowed"):
        ch.announce("y", nbits)
    assert ch.disclosed_bits == 0 and ch.public_bits == 0 and ch.rounds == 0 and not ch.log
    ch.disclose("x", np.int64(3))
    ch.announce("y", 0)
    assert ch.disclosed_bits == 3 and ch.public_bits == 0 and ch.rounds == 2
