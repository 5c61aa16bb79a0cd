"""physics.multipath: 002 (4) CFR, the synthetic indoor room, user/Eve positions and AWGN.

References are independent computations: Python loops with ``cmath`` over paths and subcarriers,
and image sources found by mirroring the access point across explicit wall sequences.
"""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
import torch

from physics.multipath import (
    DEFAULT_ROOM,
    IndoorRoom,
    add_awgn,
    cfr_from_paths,
    cfr_to_features,
    eve_positions,
    features_to_cfr,
    image_sources,
    indoor_dual_band,
    indoor_paths,
    normal_incidence_reflection,
    sample_user_positions,
    subcarrier_freqs_hz,
)
from physics.units import SPEED_OF_LIGHT_M_S


def loop_cfr(gain, delay_s, phase_rad, freqs_hz) -> np.ndarray:
    """002 (4) one path and one subcarrier at a time."""
    out = np.zeros(len(freqs_hz), dtype=complex)
    for k, f in enumerate(freqs_hz):
        for a, tau, phi in zip(gain, delay_s, phase_rad, strict=True):
            out[k] += a * cmath.exp(-2j * math.pi * f * tau + 1j * phi)
    return out


def test_subcarrier_freqs_follow_the_deepmimo_convention():
    f = subcarrier_freqs_hz(2.4e9, 0.5e9, 64)
    assert f.dtype == torch.float64 and f.shape == (64,)
    assert f[0].item() == 2.4e9
    assert f[1].item() - f[0].item() == pytest.approx(0.5e9 / 64)
    assert f[-1].item() == pytest.approx(2.4e9 + 63 * 0.5e9 / 64)
    centred = subcarrier_freqs_hz(2.4e9, 0.5e9, 64, centered=True)
    assert centred[32].item() == 2.4e9 and centred[0].item() == pytest.approx(2.4e9 - 0.25e9)
    for bad in (dict(num_subcarriers=0), dict(carrier_hz=-1.0), dict(bandwidth_hz=float("nan"))):
        args = dict(carrier_hz=2.4e9, bandwidth_hz=0.5e9, num_subcarriers=64) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            subcarrier_freqs_hz(**args)


def test_cfr_from_paths_equals_a_loop_over_paths_and_subcarriers():
    rng = np.random.default_rng(1)
    gain = rng.uniform(0.0, 1e-3, (3, 2, 5))
    delay = rng.uniform(1e-9, 100e-9, (3, 2, 5))
    phase = rng.uniform(-math.pi, math.pi, (3, 2, 5))
    freqs = subcarrier_freqs_hz(2.5e9, 0.5e9, 16)
    got = cfr_from_paths(torch.tensor(gain), torch.tensor(delay), torch.tensor(phase), freqs)
    assert got.shape == (3, 2, 16) and got.dtype == torch.complex128
    for i in range(3):
        for j in range(2):
            ref = loop_cfr(gain[i, j], delay[i, j], phase[i, j], freqs.numpy())
            # float64 throughout; phases reach 2 pi * 3e9 * 1e-7 ~ 2e3 rad, so the angle error is
            # ~2e3 * 1e-16 and 1e-10 relative to the largest entry is a wide margin.
            np.testing.assert_allclose(got[i, j].numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    # a zero-gain (padded) path changes nothing
    padded = cfr_from_paths(torch.tensor(np.concatenate([gain, np.zeros((3, 2, 1))], -1)),
                            torch.tensor(np.concatenate([delay, np.zeros((3, 2, 1))], -1)),
                            torch.tensor(np.concatenate([phase, np.zeros((3, 2, 1))], -1)), freqs)
    torch.testing.assert_close(padded, got)
    with pytest.raises(ValueError, match="delay_s"):
        cfr_from_paths(torch.ones(2), torch.tensor([1e-9, float("nan")]), torch.zeros(2), freqs)


def test_features_realise_as_real_then_imaginary_parts():
    h = torch.tensor([[1 + 2j, 3 - 4j]], dtype=torch.complex64)
    x = cfr_to_features(h)
    assert x.tolist() == [[1.0, 3.0, 2.0, -4.0]]  # 002 (13): (Re H, Im H)
    torch.testing.assert_close(features_to_cfr(x), h)


# --- image sources --------------------------------------------------------------------------

WALLS = [(0, 0.0), (0, "L"), (1, 0.0), (1, "L"), (2, 0.0), (2, "L")]  # SURFACES order


def mirrored_images(room: IndoorRoom, max_order: int) -> dict[tuple[float, float, float], float]:
    """Image -> coefficient product, by mirroring the AP across every wall sequence (no wall twice
    in a row); sequences giving the same image (orthogonal walls commute) count once."""
    images = {tuple(round(c, 9) for c in room.ap_position_m): 1.0}
    frontier = [(np.array(room.ap_position_m, dtype=float), 1.0, None)]
    for _ in range(max_order):
        nxt = []
        for pos, coeff, last in frontier:
            for w, (axis, plane) in enumerate(WALLS):
                if w == last:
                    continue
                coord = room.size_m[axis] if plane == "L" else plane
                new = pos.copy()
                new[axis] = 2 * coord - new[axis]
                new_coeff = coeff * room.reflection_coeff[w]
                key = tuple(round(c, 9) for c in new)
                if key not in images:
                    images[key] = new_coeff
                nxt.append((new, new_coeff, w))
        frontier = nxt
    return images


@pytest.mark.parametrize("max_order", [0, 1, 2])
def test_image_sources_match_explicit_mirroring(max_order):
    pos, coeff = image_sources(DEFAULT_ROOM, max_order)
    ref = mirrored_images(DEFAULT_ROOM, max_order)
    assert pos.shape[0] == len(ref) == {0: 1, 1: 7, 2: 25}[max_order]
    got = {tuple(round(c, 9) for c in p.tolist()): g for p, g in zip(pos, coeff.tolist(), strict=True)}
    assert set(got) == set(ref)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-12)
    assert pos[0].tolist() == list(DEFAULT_ROOM.ap_position_m) and coeff[0].item() == 1.0


def test_default_reflection_coefficients_are_normal_incidence_fresnel():
    assert normal_incidence_reflection(1.0) == 0.0
    assert normal_incidence_reflection(4.0) == pytest.approx(-1.0 / 3.0)
    assert DEFAULT_ROOM.reflection_coeff[0] == pytest.approx((1 - 5.24**0.5) / (1 + 5.24**0.5))
    with pytest.raises(ValueError, match="eps_r"):
        normal_incidence_reflection(0.5)


def reference_paths(user, room, carrier_hz, num_paths):
    """Strongest paths by |Gamma| / d from the mirrored images, one user at a time."""
    lam = SPEED_OF_LIGHT_M_S / carrier_hz
    rows = []
    for image, coeff in mirrored_images(room, 2).items():
        d = math.dist(image, user)
        rows.append((abs(coeff) / d, abs(coeff) * lam / (4 * math.pi * d), d / SPEED_OF_LIGHT_M_S,
                     math.pi if coeff < 0 else 0.0))
    rows.sort(key=lambda r: -r[0])
    return [r[1:] for r in rows[:num_paths]]


def test_indoor_dual_band_equals_a_per_user_loop():
    users = torch.tensor([[2.0, 3.0, 1.0], [7.5, 2.25, 1.0], [1.2, 9.8, 1.0], [8.9, 6.1, 1.0]],
                         dtype=torch.float64)
    cfr1, cfr2 = indoor_dual_band(users)
    assert cfr1.shape == cfr2.shape == (4, 64) and cfr1.dtype == torch.complex64
    for band, (cfr, carrier) in enumerate(((cfr1, 2.4e9), (cfr2, 2.5e9))):
        gain, delay, phase = indoor_paths(users, carrier_hz=carrier)
        freqs = [carrier + l * 0.5e9 / 64 for l in range(64)]
        for u in range(4):
            ref_paths = reference_paths(users[u].tolist(), DEFAULT_ROOM, carrier, 5)
            np.testing.assert_allclose(gain[u].numpy(), [r[0] for r in ref_paths], rtol=1e-12)
            np.testing.assert_allclose(delay[u].numpy(), [r[1] for r in ref_paths], rtol=1e-12)
            np.testing.assert_allclose(phase[u].numpy(), [r[2] for r in ref_paths], atol=0)
            ref = loop_cfr(*zip(*ref_paths, strict=True), freqs)
            # complex64 output: rounding ~6e-8 relative to |H|; 1e-6 of the largest entry is ample.
            np.testing.assert_allclose(cfr[u].numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max(),
                                       err_msg=f"band {band + 1}, user {u}")


def test_channel_is_deterministic_per_position_and_independent_of_batch():
    g = torch.Generator().manual_seed(3)
    users = sample_user_positions(300, g)
    a1, a2 = indoor_dual_band(users)
    b1, b2 = indoor_dual_band(users.flip(0), chunk_size=7)
    # per-user float64 arithmetic, no randomness: identical bits whatever the batch
    assert torch.equal(a1, b1.flip(0)) and torch.equal(a2, b2.flip(0))
    c1, _ = indoor_dual_band(users[:1].repeat(3, 1))
    assert torch.equal(c1, a1[:1].repeat(3, 1))


def test_reciprocity_and_band_difference():
    user = (7.2, 3.3, 1.0)
    # float64 positions: a float32 7.2 m is off by 1e-7 m, a 6e-6 rad phase error at 3 GHz
    forward = indoor_dual_band(torch.tensor([user], dtype=torch.float64), room=DEFAULT_ROOM)
    swapped_room = IndoorRoom(ap_position_m=user)
    backward = indoor_dual_band(torch.tensor([DEFAULT_ROOM.ap_position_m], dtype=torch.float64),
                                room=swapped_room)
    for f, b in zip(forward, backward, strict=True):  # same band, AP and user swapped
        torch.testing.assert_close(f, b, rtol=0, atol=1e-6 * f.abs().max().item())
    cfr1, cfr2 = forward
    assert (cfr1 - cfr2).abs().max() > 0.3 * cfr1.abs().max()  # 2.4 and 2.5 GHz CFRs differ


def test_positions_outside_the_room_are_refused():
    with pytest.raises(ValueError, match=r"positions_m\[1\]"):
        indoor_dual_band(torch.tensor([[1.0, 1.0, 1.0], [10.5, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        indoor_dual_band(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="num_paths"):
        indoor_paths(torch.tensor([[1.0, 1.0, 1.0]]), num_paths=26)
    with pytest.raises(ValueError, match="ap_position_m"):
        IndoorRoom(ap_position_m=(3.0, 4.0, 3.4))


def test_user_positions_are_seeded_distinct_lattice_points_on_the_grids():
    a = sample_user_positions(5000, torch.Generator().manual_seed(0))
    b = sample_user_positions(5000, torch.Generator().manual_seed(0))
    c = sample_user_positions(5000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float64 and a.shape == (5000, 3)
    assert bool((a[:, 2] == 1.0).all())
    assert torch.unique(a, dim=0).shape[0] == 5000
    on_grid = torch.zeros(5000, dtype=torch.bool)
    for (x0, x1), (y0, y1) in DEFAULT_ROOM.grids_m:
        inside = (a[:, 0] >= x0 - 1e-9) & (a[:, 0] <= x1 + 1e-9) & (a[:, 1] >= y0 - 1e-9) & (a[:, 1] <= y1 + 1e-9)
        lattice = ((a[:, 0] - x0) / 0.01 - ((a[:, 0] - x0) / 0.01).round()).abs() < 1e-6
        on_grid |= inside & lattice
    assert bool(on_grid.all())
    counts = [sum(1 for p in a.tolist() if p[0] < 5.0), sum(1 for p in a.tolist() if p[0] > 5.0)]
    # grid areas 3x9 and 3x5 m (271,201 and 150,801 points): expected share 0.643; binomial
    # std over 5000 draws is 0.0068, so 0.03 is > 4 sigma
    assert counts[0] / 5000 == pytest.approx(271201 / 422002, abs=0.03)
    with pytest.raises(ValueError, match="n="):
        sample_user_positions(DEFAULT_ROOM.num_grid_points + 1, torch.Generator())


def test_eve_is_at_the_given_horizontal_distance():
    bob = sample_user_positions(1000, torch.Generator().manual_seed(0))
    eve = eve_positions(bob, 0.15, generator=torch.Generator().manual_seed(5))
    again = eve_positions(bob, 0.15, generator=torch.Generator().manual_seed(5))
    assert torch.equal(eve, again)
    torch.testing.assert_close(torch.linalg.vector_norm(eve - bob, dim=-1),
                               torch.full((1000,), 0.15, dtype=torch.float64))
    assert torch.equal(eve[:, 2], bob[:, 2])
    angles = torch.atan2(eve[:, 1] - bob[:, 1], eve[:, 0] - bob[:, 0])
    assert angles.min() < -2.8 and angles.max() > 2.8  # directions cover the circle
    with pytest.raises(ValueError, match="distance_m"):
        eve_positions(bob, -0.1, generator=torch.Generator())


def test_awgn_has_the_requested_power():
    g = torch.Generator().manual_seed(0)
    users = sample_user_positions(4000, g)
    cfr, _ = indoor_dual_band(users)
    for snr_db in (0.0, 10.0):
        noisy = add_awgn(cfr, snr_db, torch.Generator().manual_seed(1))
        assert noisy.dtype == torch.complex64
        noise = (noisy - cfr).to(torch.complex128)
        sigma2 = cfr.to(torch.complex128).abs().square().mean(-1, keepdim=True) / 10 ** (snr_db / 10)
        ratio = noise.abs().square() / sigma2  # Exp(1) per entry if the power is right
        # 256,000 entries: the mean of Exp(1) has std 1/sqrt(256000) = 0.002; allow 5 std
        assert ratio.mean().item() == pytest.approx(1.0, abs=0.01)
        # circular: each part carries half (its mean of 2 Re^2/sigma^2 has std sqrt(2)*0.002)
        assert (2 * noise.real.square() / sigma2).mean().item() == pytest.approx(1.0, abs=0.015)
        assert (2 * noise.imag.square() / sigma2).mean().item() == pytest.approx(1.0, abs=0.015)
    same = add_awgn(cfr, 5.0, torch.Generator().manual_seed(2))
    assert torch.equal(same, add_awgn(cfr, 5.0, torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError, match="snr_db"):
        add_awgn(cfr, float("inf"), torch.Generator())
