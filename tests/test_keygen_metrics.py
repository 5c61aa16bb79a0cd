"""Key metrics of 002 Sec. VII-B (keygen.metrics): NMSE (21), KER, KGR, NVD (22)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keygen.metrics import key_error_rate, key_generation_ratio, nmse, nvd


def test_nmse_hand_example():
    pred = np.array([[1.0, 2.0], [0.0, 0.0]])
    target = np.array([[1.0, 1.0], [2.0, 0.0]])
    # row 0: |(0, 1)|^2 / |(1, 1)|^2 = 1/2; row 1: |(-2, 0)|^2 / |(2, 0)|^2 = 1; mean of ratios 3/4
    assert nmse(pred, target) == pytest.approx(0.75, abs=1e-15)
    np.testing.assert_allclose(nmse(pred, target, reduce=False), [0.5, 1.0], atol=1e-15)
    # (21) is the mean of per-sample ratios, not the ratio of sums (which would be 5/6 here)
    assert nmse(pred, target) != pytest.approx(5 / 6)


def test_nmse_matches_loop_and_limits():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 128))
    pred = target + 0.1 * rng.normal(size=target.shape)
    ref = (
        sum(
            sum((p - t) ** 2 for p, t in zip(pr, tr, strict=True)) / sum(t * t for t in tr)
            for pr, tr in zip(pred.tolist(), target.tolist(), strict=True)
        )
        / 50
    )
    # float64 sums of 128 terms: relative rounding ~1e-14
    assert nmse(pred, target) == pytest.approx(ref, rel=1e-12)
    assert nmse(target, target) == 0.0
    assert nmse(np.zeros_like(target), target) == pytest.approx(1.0, abs=1e-15)


def test_nmse_complex_and_single_sample():
    t = np.array([1 + 1j, 2 - 1j])
    p = np.array([1 + 0j, 2 - 1j])
    # |p - t|^2 = 1, |t|^2 = 2 + 5 = 7
    assert nmse(p, t) == pytest.approx(1 / 7, abs=1e-15)


def test_nvd_hand_example_and_asymmetry():
    k1 = np.array([1.0, 0.0, 1.0, 1.0])
    k2 = np.array([1.0, 1.0, 1.0, 1.0])
    assert nvd(k1, k2) == pytest.approx(0.25, abs=1e-15)  # ||k1 - k2||^2 = 1, ||k2||^2 = 4
    assert nvd(k2, k1) == pytest.approx(1 / 3, abs=1e-15)  # reference is the 2nd argument
    both = nvd(np.stack([k1, k2]), np.stack([k2, k2]), reduce=False)
    np.testing.assert_allclose(both, [0.25, 0.0], atol=1e-15)
    assert nvd(np.stack([k1, k2]), np.stack([k2, k2])) == pytest.approx(0.125, abs=1e-15)


def test_ker_hand_example():
    bits_a = np.array([[[0, 1], [1, 1], [0, 0]], [[1, 0], [0, 1], [1, 1]]], dtype=np.uint8)
    bits_b = np.array([[[0, 0], [1, 1], [1, 1]], [[0, 1], [0, 1], [1, 0]]], dtype=np.uint8)
    kept = np.array([[True, True, False], [False, True, True]])
    # kept positions: (0,0) 1 error, (0,1) 0, (1,1) 0, (1,2) 1 -> 2 errors / 8 bits
    assert key_error_rate(bits_a, bits_b, kept) == pytest.approx(0.25)
    # the dropped positions' disagreements do not count; with everything kept: 1+0+2+2+0+1 = 6 / 12
    assert key_error_rate(bits_a, bits_b, np.ones((2, 3), bool)) == pytest.approx(6 / 12)
    # [n, D] bits (one bit per feature) are accepted: second bits at the kept positions 1/0, 1/1, 1/1, 1/0
    assert key_error_rate(bits_a[..., 1], bits_b[..., 1], kept) == pytest.approx(2 / 4)


def test_ker_matches_loop_and_empty_key():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, size=(30, 20, 3))
    b = np.where(rng.random(a.shape) < 0.1, 1 - a, a)
    kept = rng.random((30, 20)) < 0.7
    errors = total = 0
    for i in range(30):
        for l in range(20):
            if kept[i, l]:
                total += 3
                errors += sum(int(a[i, l, k] != b[i, l, k]) for k in range(3))
    assert key_error_rate(a, b, kept) == errors / total
    assert math.isnan(key_error_rate(a, b, np.zeros((30, 20), bool)))


def test_kgr_hand_example_and_maximum():
    kept = np.array([[True, True, False, True], [False, False, False, False]])
    # K = 4: sample 0 has 3 features x 2 bits over L = 2 subcarriers -> 3; sample 1 -> 0; mean 1.5
    assert key_generation_ratio(kept, 4, 2) == pytest.approx(1.5)
    # 002: all 2L features kept, no guard band, K = 2 -> the maximum of 2 (2 log2 K in general)
    assert key_generation_ratio(np.ones((5, 128), bool), 2, 64) == pytest.approx(2.0)
    assert key_generation_ratio(np.ones((5, 128), bool), 8, 64) == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: nmse(np.ones((2, 3)), np.ones((2, 4))), r"shape"),
        (lambda: nmse(np.ones((2, 3)), np.array([[1, 1, 1], [0, 0, 0]])), r"row 1 is all zeros"),
        (lambda: nmse(np.ones((0, 3)), np.ones((0, 3))), r"empty"),
        (lambda: nmse(np.ones((2, 2, 2)), np.ones((2, 2, 2))), r"shape \[n, D\]"),
        (lambda: nvd([1.0, np.nan], [1.0, 1.0]), r"non-finite"),
        (
            lambda: key_error_rate(np.full((2, 3, 1), 2), np.zeros((2, 3, 1)), np.ones((2, 3), bool)),
            r"binary .* found 2",
        ),
        (lambda: key_error_rate(np.zeros((2, 3, 1)), np.zeros((2, 3, 2)), np.ones((2, 3), bool)), r"shape"),
        (lambda: key_error_rate(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), np.ones((3, 2), bool)), r"kept"),
        (lambda: key_generation_ratio(np.ones((2, 128), bool), 2, 128), r"D = 128 .* 2L = 256"),
        (lambda: key_generation_ratio(np.ones((2, 8), bool), 6, 4), r"levels \(K\) = 6"),
        (lambda: key_generation_ratio(np.ones((2, 8), bool), 2, 0), r"num_subcarriers"),
        (lambda: key_generation_ratio(np.ones((0, 8), bool), 2, 4), r"empty"),
    ],
)
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
