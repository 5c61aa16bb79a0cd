"""keygen.sliced_reconcile: sliced soft-decision reconciliation, counted disclosure, retries, Eve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keygen import slicing as sl
from keygen.reconcile import PublicChannel
from keygen.sliced_reconcile import SlicedReconciler


def _pairs(rho, n, seed, d=None):
    rng = np.random.default_rng(seed)
    shape = (n,) if d is None else (n, d)
    r = np.asarray(rho)
    x = rng.standard_normal(shape)
    y = r * x + np.sqrt(1 - r * r) * rng.standard_normal(shape)
    return x, y, rng


def test_disclosed_bits_counted_by_hand():
    # rho = 0.9, 16 levels, n = 2000, efficiency 1.2, no backoff. Exact slice entropies (lsb first):
    # 0.96725, 0.91557, 0.75901, 0.21408. Slices 0 and 1 would need rates 1 - 1.2 H < 0.05: disclosed
    # (2 x 2000 bits). Slice 2: ceil(1.2 * 2000 * 0.7590070) = ceil(1821.6) = 1822 syndrome bits;
    # slice 3: ceil(1.2 * 2000 * 0.2140785) = ceil(513.8) = 514; one 64-bit hash each.
    H = sl.slice_entropies(0.9, 16)
    np.testing.assert_allclose(H, [0.96725, 0.91557, 0.75901, 0.21408], atol=1e-5)
    x, y, _ = _pairs(0.9, 2000, 0)
    ch = PublicChannel()
    rec = SlicedReconciler(bits=4, efficiency=1.2, backoff=0.0, decoder="numpy")
    res = rec.reconcile(x, y, 0.9, ch, seed=0)
    assert res.success
    assert [s.modes for s in res.slices] == [("disclose",), ("disclose",), ("code",), ("code",)]
    assert [s.syndrome_bits for s in res.slices] == [0, 0, 1822, 514]
    assert [s.attempts for s in res.slices] == [0, 0, 1, 1]
    assert [s.disclosed_bits for s in res.slices] == [2000, 2000, 1822 + 64, 514 + 64]
    assert res.disclosed_bits == ch.disclosed_bits == 2000 + 2000 + 1822 + 514 + 2 * 64
    assert res.key_bits == 4 * 2000 and res.net_bits == 8000 - 6464
    # the efficiency of a slice is its disclosure over n H
    assert res.slices[3].efficiency == pytest.approx(578 / (2000 * H[3]))
    assert res.slices[0].efficiency == pytest.approx(1 / H[0])
    assert res.mutual_information_bits == pytest.approx(2000 * sl.gaussian_mutual_information(0.9))
    np.testing.assert_array_equal(res.key(), res.bob_key())
    # the key is Alice's slices, stage by stage
    bits = sl.slice_bits(sl.quantise(x, 16), 16)
    np.testing.assert_array_equal(res.key(), bits.T.reshape(-1))


def test_retry_sends_counted_extra_syndrome_bits():
    # efficiency 1 without backoff puts the first syndrome at n H exactly: at n = 2000 it cannot decode.
    # Each retry splits max(16, ceil(0.02 n H + sqrt(n V) / 2)) checks (V the slice's dispersion); a
    # hash is sent only after an attempt whose BP satisfied the syndrome.
    n = 2000
    H = sl.slice_entropies(0.9, 16)
    x, y, _ = _pairs(0.9, n, 1)
    rec = SlicedReconciler(bits=4, efficiency=1.0, backoff=0.0, min_rate=0.2, decoder="numpy", max_iter=150)
    res = rec.reconcile(x, y, 0.9, seed=1)
    assert res.success
    s3 = res.slices[3]
    V = sl.slice_channel(0.9, 16, 3).dispersion
    step = max(16, math.ceil(0.02 * n * H[3] + 0.5 * math.sqrt(n * V)))
    assert step == 24
    assert s3.syndrome_bits == math.ceil(n * H[3]) == 429
    assert s3.attempts > 1 and s3.bp_iterations[0] == 150
    assert s3.extra_bits == step * (s3.attempts - 1)
    converged = sum(it < 150 for it in s3.bp_iterations)
    assert s3.hash_bits == 64 * converged
    assert s3.disclosed_bits == 429 + s3.extra_bits + s3.hash_bits
    assert s3.designed_rate == pytest.approx(1 - 429 / n)
    assert s3.efficiency == pytest.approx(s3.disclosed_bits / (n * H[3]))


def test_failure_yields_no_key():
    x, y, _ = _pairs(0.9, 2000, 1)
    rec = SlicedReconciler(bits=4, efficiency=1.0, backoff=0.0, max_retries=0, decoder="numpy", max_iter=60)
    ch = PublicChannel()
    res = rec.reconcile(x, y, 0.9, ch, seed=0)
    assert not res.success
    assert not res.slices[-1].success
    assert res.disclosed_bits == ch.disclosed_bits == sum(s.disclosed_bits for s in res.slices) > 0
    with pytest.raises(RuntimeError, match="no key"):
        res.key()
    with pytest.raises(RuntimeError):
        res.bob_key()


@pytest.mark.parametrize("rho", [0.95, 0.9, 0.8])
def test_each_slice_decodes_at_its_designed_rate(rho):
    x, y, _ = _pairs(rho, 4000, 0)
    rec = SlicedReconciler(bits=4, efficiency=1.15, backoff=2.0, decoder="numpy")
    res = rec.reconcile(x, y, rho, seed=0)
    assert res.success
    for s, st in zip(res.slices, rec.plan(rho, 4000), strict=True):
        if "code" in s.modes:
            assert s.attempts == 1 and s.extra_bits == 0 and s.residual_errors == 0
            assert s.syndrome_bits == st.syndrome_bits
            assert s.designed_rate == pytest.approx(1 - st.syndrome_bits / 4000)
            assert s.code_margin > 0
    assert 0.5 < res.share_of_mutual_information < 1
    assert res.net_bits_per_symbol < res.quantised_information_bits / res.n_symbols


def test_ldpc_decoder_path_and_eve():
    x, y, rng = _pairs(0.9, 3000, 2)
    rec = SlicedReconciler(bits=4, efficiency=1.1, decoder="ldpc")
    res = rec.reconcile(x, y, 0.9, seed=3)
    assert res.success
    # Bob's own observation replayed from the transcript gives the key
    same = rec.replay(y, 0.9, res.transcript, alice_key=res.key())
    np.testing.assert_array_equal(same.estimate, res.key())
    # Eve with correlation 0.3 learns the disclosed slices and little else
    z = 0.3 * x + math.sqrt(1 - 0.09) * rng.standard_normal(x.shape)
    eve = rec.replay(z, 0.3, res.transcript, alice_key=res.key())
    for s, ber in zip(res.slices, eve.stage_bit_error_rate, strict=True):
        if s.modes == ("disclose",):
            assert ber == 0.0
        else:
            assert ber > 0.2


def test_components_with_different_correlations():
    rhos = np.array([0.95, 0.9, 0.8])
    x, y, _ = _pairs(rhos, 3000, 4, d=3)
    # the public rule gives one q per correlation; here explicit bits make the stages differ
    assert SlicedReconciler().component_bits(rhos).tolist() == [sl.choose_bits(r) for r in rhos]
    rec = SlicedReconciler(bits=[5, 4, 4], efficiency=1.1, decoder="numpy")
    q = rec.component_bits(rhos)
    assert q.tolist() == [5, 4, 4]
    plan = rec.plan(rhos, 3000)
    assert len(plan) == 5
    assert [c.component for c in plan[0].components] == [0]  # the 5-bit component starts alone
    assert [c.component for c in plan[4].components] == [0, 1, 2]  # every last slice in the last stage
    assert all(c.stage == c.bits - 1 for c in plan[4].components)
    res = rec.reconcile(x, y, rhos, seed=0)
    assert res.success
    assert res.key_bits == 3000 * 13 == res.key().size
    assert res.n_symbols == 9000
    expected_mi = 3000 * sum(sl.gaussian_mutual_information(r) for r in rhos)
    assert res.mutual_information_bits == pytest.approx(expected_mi)


@pytest.mark.parametrize("call,needle", [
    (lambda r: r.reconcile(np.zeros(5), np.zeros(6), 0.9), "x_alice has shape (5, 1) but y_bob has (6, 1)"),
    (lambda r: r.reconcile(np.zeros(5), np.array([0, 0, np.nan, 0, 0]), 0.9), "y_bob[2] = nan"),
    (lambda r: r.reconcile(np.array([]), np.array([]), 0.9), "x_alice is empty"),
    (lambda r: r.reconcile(np.zeros(5), np.zeros(5), 1.2), "rho = 1.2"),
    (lambda r: r.reconcile(np.zeros((5, 2)), np.zeros((5, 2)), [0.9, 0.8, 0.7]), "rho has shape (3,)"),
    (lambda r: r.reconcile(np.zeros(5), np.zeros(5), 0.9, seed=-1), "seed = -1"),
    (lambda r: SlicedReconciler(decoder="osd"), "decoder = 'osd'"),
    (lambda r: SlicedReconciler(efficiency=0.9), "efficiency = 0.9"),
    (lambda r: SlicedReconciler(bits=0), "bits = 0"),
    (lambda r: SlicedReconciler(bits=3).reconcile(np.zeros(4), np.zeros(4), 0.9, channel="c"), "channel = 'c'"),
])
def test_bad_inputs_name_the_value(call, needle):
    with pytest.raises(ValueError) as info:
        call(SlicedReconciler(bits=3, decoder="numpy"))
    assert needle in str(info.value)
