"""Tier 1: the closed forms against a Monte Carlo simulation of 001 (1)-(7), (21)-(24)."""

from __future__ import annotations

import math

import torch

from physics.gaussian import sample_covariance, sample_mi_bits
from physics.irs import (
    draw_nlos_channels,
    joint_covariance_kronecker,
    observations,
    random_design,
    skr_case2_parts,
    stats_001,
)
from physics.units import dbm_to_w, wavelength_m

N_DRAWS = 100_000
N_BATCHES = 10


def _simulate(seed: int, eta: float, kappa: float, eve_dx_wl: float, P_max_dbm: float):
    g = torch.Generator().manual_seed(seed)
    lam = float(wavelength_m(2.4e9))
    st = stats_001(torch.tensor([9.0, 11.0, 0.0]), M=2, L_H=2, L_V=2, eta=eta, kappa=kappa,
                   eve_m=torch.tensor([9.0 - eve_dx_wl * lam, 11.0, 0.0]))
    P, theta = random_design(st, dbm_to_w(P_max_dbm), g)
    ch = draw_nlos_channels(st, N_DRAWS, g)
    obs = observations(ch, P, theta, st, g)
    d = math.sqrt(float(st.noise_power))
    y = {k: v / d for k, v in obs.items()}  # noise-normalised, as the model covariance
    return st, P, theta, y


def test_empirical_covariance_matches_model_within_sampling_error():
    st, P, theta, y = _simulate(0, eta=0.5, kappa=1.0, eve_dx_wl=0.3, P_max_dbm=20.0)
    Y = torch.cat([y["y_a"], y["y_b"], y["y_e"]], -1)
    C = sample_covariance(y["y_a"], y["y_b"], y["y_e"])
    C_model = joint_covariance_kronecker(P, theta, st)
    # Standard error of each entry from the samples themselves: std(y_i y_j^*) / sqrt(N). The cascade
    # G O f is a product of Gaussians (heavier tails), which the sample std accounts for. 6M^2 = 36
    # complex entries (72 real numbers) at 5 sigma: family-wise false-alarm probability < 5e-5.
    prods = Y[:, :, None] * Y[:, None, :].conj()
    se_re = prods.real.std(0) / math.sqrt(N_DRAWS)
    se_im = prods.imag.std(0) / math.sqrt(N_DRAWS)
    diff = C - C_model
    assert torch.all(diff.real.abs() <= 5 * se_re + 1e-12)
    assert torch.all(diff.imag.abs() <= 5 * se_im + 1e-12)


def test_gaussian_mi_of_samples_matches_closed_form():
    st, P, theta, y = _simulate(1, eta=0.3, kappa=2.0, eve_dx_wl=0.2, P_max_dbm=15.0)
    parts = skr_case2_parts(P, theta, st)
    pairs = {"I_ab": ("y_a", "y_b"), "I_ae": ("y_a", "y_e"), "I_be": ("y_b", "y_e")}
    n_b = N_DRAWS // N_BATCHES
    for key, (x, z) in pairs.items():
        full = sample_mi_bits(y[x], y[z])
        # Tolerance from the sample size: batch means over 10 batches of 1e4 draws give the spread
        # of the estimator at N/10; the full-sample standard error is that spread / sqrt(10).
        # The plug-in log-det bias is O(d^2 / N) = O(16 / 1e5) nats (<= 2.5e-4 bits), added on top.
        batch = torch.stack([sample_mi_bits(y[x][i * n_b:(i + 1) * n_b], y[z][i * n_b:(i + 1) * n_b])
                             for i in range(N_BATCHES)])
        se = float(batch.std() / math.sqrt(N_BATCHES))
        tol = 5 * se + 16 / N_DRAWS / math.log(2)
        assert abs(float(full) - float(parts[key])) <= tol, (key, float(full), float(parts[key]), tol)
