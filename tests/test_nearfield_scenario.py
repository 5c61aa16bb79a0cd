"""Tier 2/3: the near-field scenario (004) in the scenario contract: sampling, design space (feasibility,
torch.export round trip), baselines, subsets, the config through ``train.main`` and a slow training run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.export import export_pkgnet
from models.pkgnet import PKGNet
from physics.nearfield import (
    NearFieldDesignSpace,
    NearFieldScenario,
    design_matrix,
    near_field_channel,
    skr,
)
from physics.scenario import Scenario, check_description
from physics.seeding import generator_for

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "pkgnet" / "nearfield.yaml")
FAST = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--data.init_args.train_draws_per_epoch=200",
    "--data.init_args.val_draws=100",
    "--data.init_args.test_draws=100",
]


def test_contract_names_and_description():
    sc = NearFieldScenario()
    assert isinstance(sc, Scenario)
    assert sc.feature_names == ("r_b_m", "psi_b_rad", "r_e_m", "psi_e_rad", "P_t_dbm")
    assert sc.feature_units == ("m", "rad", "m", "rad", "dBm")
    d = check_description(sc.describe(), "NearFieldScenario")
    assert d["scenario"] == "nearfield" and d["outputs"] == {"F": [256, 2, 2]}
    json.dumps(d)
    ds = sc.design_space()
    assert ds.heads == {"F": 8}
    low, high = sc.feature_bounds()
    assert len(low) == len(high) == 5 and all(lo <= hi for lo, hi in zip(low, high, strict=True))


def test_training_distribution_covers_figs_3_to_5_and_eve_close():
    sc = NearFieldScenario()
    b = sc.sample(20_000, generator_for(1))
    x = sc.features(b)
    low, high = (torch.tensor(v, dtype=torch.float64) for v in sc.feature_bounds())
    assert torch.all(x >= low) and torch.all(x <= high)
    # Figs 3-5 points lie inside: r 12-15 m (Fig. 4 sweep 8-20 m), psi in [-1.5, 1.5], P_t 0-40 dBm
    assert low[0] <= 8 and high[0] >= 20 and low[1] <= -1.5 and high[1] >= 1.5 and low[4] <= 0 and high[4] >= 40
    close = sc.subsets(b)["eve_close"]
    # mixture weight 1/4 on "close" (plus a few same-angle/same-range draws near Bob): ~26 % +- 1 %
    assert 0.22 < close.double().mean() < 0.32
    nearer = sc.subsets(b)["eve_nearer"].double().mean()
    assert 0.35 < nearer < 0.65
    # same seed, same draws; different seed, different draws
    assert torch.equal(sc.sample(5, generator_for(3))["r_e_m"], sc.sample(5, generator_for(3))["r_e_m"])
    assert not torch.equal(sc.sample(5, generator_for(3))["r_e_m"], sc.sample(5, generator_for(4))["r_e_m"])


def test_design_space_is_feasible_in_span_and_matches_skr():
    """Random raw outputs -> W = F F^H PSD of rank <= 2, Tr W = P_a (float64 rounding), range in span{f, h};
    the scenario's fast SKR equals skr() of the full matrix (N = 16, so W fits)."""
    sc = NearFieldScenario(N=16)
    b = sc.sample(50, generator_for(2))
    ds = sc.design_space()
    raw = {"F": torch.randn(50, 8, generator=torch.Generator().manual_seed(0))}
    out = ds(raw, sc.features(b).float())
    assert out["F"].shape == (50, 16, 2, 2) and out["F"].dtype == torch.float64
    W = design_matrix(out)
    P = sc.P_a_w(b)
    P32 = 10 ** ((sc.features(b).float()[:, 4].double() - 30) / 10)              # the budget the net was given
    f, h = sc.channels(b)
    assert torch.allclose(torch.diagonal(W, dim1=-2, dim2=-1).real.sum(-1), P32, rtol=1e-12)
    assert torch.allclose(P32, P, rtol=1e-6)
    Q, _ = torch.linalg.qr(torch.stack([f, h], -1))
    resid = W - Q @ (Q.mH @ W @ Q) @ Q.mH                                         # part outside span{f, h}
    # float32 features -> channels at float32-rounded positions: the frame is off by ~1e-6 relative
    assert (resid.abs().amax((-1, -2)) / P).max() < 1e-5
    na, nb, ne = sc.noises_w(b)
    full = skr(W, f, h, na, nb, ne, budget_w=P32)
    # same W, G from the factor vs from the N x N matrix: float64 rounding, amplified by at most the SNR
    # (~1e8 at 40 dBm) in the cancellation of alpha -> 1e-6 relative on the rate covers it
    assert torch.allclose(sc.skr(b, out), full, rtol=1e-6)
    # gradients reach the raw outputs through the projection
    raw = {"F": torch.randn(8, 8, requires_grad=True)}
    sub = {k: v[:8] for k, v in b.items()}
    sc.skr(sub, ds(raw, sc.features(sub).float())).sum().backward()
    assert torch.isfinite(raw["F"].grad).all() and raw["F"].grad.abs().sum() > 0


def test_design_space_with_eve_on_bob_falls_back_to_bobs_beam():
    sc = NearFieldScenario()
    b = sc.point(2, r_e_m=12.2)                                                   # Eve exactly on Bob
    out = sc.design_space()({"F": torch.randn(2, 8)}, sc.features(b).float())
    assert torch.allclose(sc.skr(b, out), torch.full((2,), math.log2(4 / 3), dtype=torch.float64), atol=1e-6)


def test_optimal_frame_coefficients_reach_the_closed_form():
    """The plain frame [f, p]/|f| holds the optimum at L = [[1 - kappa, 0], [kappa, 0]], kappa = g_e/(1+g_e);
    the SNR-scaled frame [f/g_e, p]/|f| at the constant L = [[1, 0], [1, 0]]."""
    for frame in ("plain", "snr_scaled"):
        sc = NearFieldScenario(design_frame=frame)
        b = sc.sample(64, generator_for(7))
        f, h = sc.channels(b)
        P = sc.P_a_w(b)
        ne = sc.noises_w(b)[2]
        g_e = P * (h.abs() ** 2).sum(-1) / ne
        kappa = g_e / (1 + g_e)
        raw = torch.zeros(64, 8, dtype=torch.float64)
        if frame == "plain":
            raw[:, 0], raw[:, 2] = 1 - kappa, kappa                               # real parts of L[0,0], L[1,0]
        else:
            raw[:, 0], raw[:, 2] = 1.0, 1.0
        out = sc.design_space()({"F": raw}, sc.features(b))
        opt = sc.skr(b, sc.optimum(b, generator_for(0)))
        assert torch.allclose(sc.skr(b, out), opt, rtol=1e-9), frame


def test_baselines_optimum_and_subsets():
    sc = NearFieldScenario()
    b = sc.sample(150, generator_for(5))
    base = sc.baselines(b, generator_for(6))
    assert set(base) == {"mrc", "svd_equal", "svd_dinkelbach", "optimal_beam"}
    vals = {k: sc.skr(b, d) for k, d in base.items()}
    opt = sc.skr(b, sc.optimum(b, generator_for(7), steps=10, restarts=2))       # options ignored
    for k, v in vals.items():
        assert v.shape == (150,) and v.dtype == torch.float64
        assert torch.all(v <= opt * (1 + 1e-12)), k
    assert torch.all(vals["svd_dinkelbach"] >= vals["svd_equal"] * (1 - 1e-12))  # Dinkelbach >= its P_S = P_a/2
    assert torch.all(vals["svd_dinkelbach"] >= vals["mrc"] * (1 - 1e-12))        # ... and >= P_S = P_a
    m = sc.subsets(b)
    assert set(m) == {"eve_close", "eve_nearer"} and all(v.dtype == torch.bool and v.shape == (150,)
                                                         for v in m.values())


def test_skr_refuses_an_over_budget_design():
    sc = NearFieldScenario(N=8)
    b = sc.point(1)
    d = sc.optimum(b, generator_for(0))
    with pytest.raises(ValueError, match="design over budget"):
        sc.skr(b, {"F": 1.01 * d["F"]})


def test_bad_draws_are_refused_with_the_field_named():
    sc = NearFieldScenario(N=8)
    d = sc.optimum(sc.point(1), generator_for(0))
    for field, value, msg in (("P_t_dbm", float("inf"), "P_t_dbm must be finite"),
                              ("P_t_dbm", float("nan"), "P_t_dbm must be finite"),
                              ("r_e_m", -1.0, "r_m must be > 0"),
                              ("psi_b_rad", 2.0, "psi_rad must lie in [-pi/2, pi/2], got 2")):
        with pytest.raises(ValueError) as err:
            sc.skr(sc.point(1, **{field: value}), d)
        assert msg in str(err.value), (field, str(err.value))
        with pytest.raises(ValueError):
            sc.baselines(sc.point(1, **{field: value}), generator_for(0))


def test_skr_refuses_malformed_designs_and_batches():
    sc = NearFieldScenario(N=8)
    b = sc.point(2)
    d = sc.optimum(b, generator_for(0))
    ref = sc.skr(b, d)
    for design, msg in (
            ({"F": d["F"] * float("nan")}, "design F must be finite"),
            ({"F": d["F"].clone().index_fill_(1, torch.tensor([3]), float("inf"))}, "design F must be finite"),
            (NearFieldScenario(N=16).optimum(b, generator_for(0)), r"with N = 8, got shape \(2, 16, 1, 2\)"),
            ({"F": d["F"][..., 0]}, r"design F must be \[n, N, r, 2\] real .* got shape \(2, 8, 1\)"),
            ({"F": d["F"].bool()}, "design F must be a real tensor"),
            ({"F": d["F"][:1].expand(3, -1, -1, -1)}, r"do not broadcast: F \[\.\.\., N, r, 2\] batch shape \(3,\), "
                                                      r"the batch's fields batch shape \(2,\)"),
            ({}, "design must be a dict with key 'F'"),
            ({"G": d["F"]}, r"design must be a dict with key 'F' .*got \['G'\]"),
            ({"F": d["F"], "ortho_w": torch.zeros(2)}, "ortho_w and ortho_to come together")):
        with pytest.raises(ValueError, match=msg):
            sc.skr(b, design)
    for field in sc.FEATURES:
        partial = {k: v for k, v in b.items() if k != field}
        with pytest.raises(ValueError, match=rf"batch is missing field\(s\) \['{field}'\]"):
            sc.skr(partial, d)
    with pytest.raises(ValueError, match=r"do not broadcast: .*P_t_dbm batch shape \(3,\)"):
        sc.skr({**b, "P_t_dbm": torch.full((3,), 30.0, dtype=torch.float64)}, d)
    with pytest.raises(ValueError, match="batch field r_b_m must be a tensor"):
        sc.skr({**b, "r_b_m": 12.2}, d)
    with pytest.raises(ValueError, match=r"batch is missing field\(s\) \['r_e_m'\]"):
        sc.baselines({k: v for k, v in b.items() if k != "r_e_m"}, generator_for(0))
    # transmit powers where P_a = 10^((P - 30)/10) W would leave float64 are named as P_t_dbm
    for P_t in (3000.0, -4000.0):
        with pytest.raises(ValueError, match=r"P_t_dbm must lie in \[-200, 100\] dBm .*got " + f"{P_t:g}"):
            sc.skr(sc.point(1, P_t_dbm=P_t), sc.optimum(sc.point(1), generator_for(0)))
    # valid designs unchanged: complex F and the compact SVD form still pass
    assert torch.equal(sc.skr(b, {"F": torch.view_as_complex(d["F"])}), ref)
    base = sc.baselines(b, generator_for(0))
    assert torch.all(torch.isfinite(sc.skr(b, base["svd_dinkelbach"])))


def test_features_check_the_batch_and_skr_checks_the_compact_svd_form():
    """features() refuses what skr() refuses (a missing field, numpy fields, degrees, r <= 0, P_t outside its
    limits) instead of handing the net a row it never saw; the compact SVD form W = F F^H + ortho_w/(N-1)
    (I - u u^H) is PSD only for ortho_w >= 0 and a unit u of length N (a negative ortho_w gave NaN rates)."""
    sc = NearFieldScenario(N=8)
    b = sc.sample(3, generator_for(1))
    x = sc.features(b)
    assert x.shape == (3, 5) and torch.equal(x[:, 4], b["P_t_dbm"])
    for batch, msg in (({k: v for k, v in b.items() if k != "P_t_dbm"}, r"missing field\(s\) \['P_t_dbm'\]"),
                       ({k: v.numpy() for k, v in b.items()}, "r_b_m must be a tensor"),
                       ({**b, "psi_e_rad": b["psi_e_rad"] * 180 / math.pi}, "psi_e_rad must lie in .*not degrees"),
                       ({**b, "r_b_m": -b["r_b_m"]}, "r_b_m must be > 0"),
                       ({**b, "r_e_m": b["r_e_m"] * float("nan")}, "r_e_m must be finite"),
                       ({**b, "P_t_dbm": b["P_t_dbm"] + 500}, r"P_t_dbm must lie in \[-200, 100\] dBm")):
        with pytest.raises(ValueError, match=msg):
            sc.features(batch)
    svd = sc.baselines(b, generator_for(0))["svd_equal"]
    assert torch.all(torch.isfinite(sc.skr(b, svd)))
    for change, msg in (({"ortho_w": -svd["ortho_w"] - 1}, "ortho_w .* must be a real tensor >= 0"),
                        ({"ortho_w": svd["ortho_w"] * float("nan")}, "ortho_w .* must be a real tensor >= 0"),
                        ({"ortho_to": svd["ortho_to"][:, :4]}, r"ortho_to must be .* N = 8, got \(3, 4, 2\)"),
                        ({"ortho_to": 2 * svd["ortho_to"]}, "ortho_to must have unit norm")):
        with pytest.raises(ValueError, match=msg):
            sc.skr(b, {**svd, **change})
    for kw in ({"sigma_e_dbm": 5000.0}, {"sigma_a_dbm": -5000.0}):
        with pytest.raises(ValueError, match=rf"{next(iter(kw))} must be finite and lie in \[-200.0, 100.0\]"):
            NearFieldScenario(N=8, **kw)


def test_constructor_accepts_numpy_scalars_and_bounds_the_power():
    sc = NearFieldScenario(N=np.int64(8), carrier_hz=np.float64(30e9), r_m_range=(np.float32(5), np.float32(25)),
                           psi_rad_range=[np.float64(-1.0), np.int64(1)], P_t_dbm_range=(np.int32(0), 40.0))
    assert sc.N == 8 and type(sc.N) is int
    assert sc.r_m_range == (5.0, 25.0) and sc.psi_rad_range == (-1.0, 1.0) and sc.P_t_dbm_range == (0.0, 40.0)
    assert sc.describe() == NearFieldScenario(N=8, r_m_range=(5.0, 25.0), psi_rad_range=(-1.0, 1.0)).describe()
    for kw, msg in [(dict(P_t_dbm_range=(3000.0, 4000.0)), "P_t_dbm_range range must end at <= 100"),
                    (dict(P_t_dbm_range=(-4000.0, 0.0)), "P_t_dbm_range range must start at >= -200"),
                    (dict(r_m_range=(5.0, 10.0, 20.0)), "r_m_range must be a range [low, high] of two numbers"),
                    (dict(r_m_range=5.0), "r_m_range must be a range [low, high] of two numbers"),
                    (dict(r_m_range=(np.bool_(True), 5.0)), "r_m_range range must be two real numbers"),
                    (dict(N=np.float64("inf")), "N (number of BS antennas) must be an integer >= 2, got"),
                    (dict(N=np.bool_(True)), "N (number of BS antennas) must be an integer >= 2, got")]:
        with pytest.raises(ValueError) as err:
            NearFieldScenario(**kw)
        assert msg in str(err.value), (kw, str(err.value))


def test_point_and_bad_constructor_values():
    sc = NearFieldScenario()
    p = sc.point(3, P_t_dbm=torch.tensor([0.0, 10.0, 20.0]))
    assert p["P_t_dbm"].tolist() == [0.0, 10.0, 20.0] and torch.all(p["r_b_m"] == 12.2)
    with pytest.raises(ValueError, match="unknown point field 'x_b_m'"):
        sc.point(1, x_b_m=3.0)
    for kw, msg in [(dict(N=1), "N (number of BS antennas) must be an integer >= 2"),
                    (dict(N=3.5), "must be an integer >= 2, got 3.5"),
                    (dict(carrier_hz=-1.0), "carrier_hz must be finite and lie in"),
                    (dict(r_m_range=(0.0, 5.0)), "r_m_range must start at > 0 m"),
                    (dict(psi_rad_range=(-2.0, 1.0)), "psi_rad_range range must start at >= -1.57"),
                    (dict(P_t_dbm_range=(0.0, float("inf"))), "P_t_dbm_range range must be finite"),
                    (dict(sigma_e_dbm=float("nan")), "sigma_e_dbm must be finite"),
                    (dict(eve_mixture=(0, 0, 0, 0)), "eve_mixture must be 4 weights"),
                    (dict(design_frame="orthonormal"), "design_frame must be one of ('plain', 'snr_scaled')")]:
        with pytest.raises(ValueError) as err:
            NearFieldScenario(**kw)
        assert msg in str(err.value), (kw, str(err.value))


def test_design_space_exports_and_round_trips(tmp_path):
    """torch.export of the whole net (raw features -> F), save/load, same outputs; no complex outputs."""
    sc = NearFieldScenario(N=32)
    torch.manual_seed(0)
    net = PKGNet([16, 16]).build(5, *sc.feature_bounds(), sc.design_space()).eval()
    meta = export_pkgnet(net, sc, tmp_path / "nf.pt2")
    assert meta["scenario"] == "nearfield" and meta["input"]["feature_units"] == list(sc.feature_units)
    prog = torch.export.load(tmp_path / "nf.pt2")
    x = sc.features(sc.sample(7, generator_for(9))).float()
    (F,) = prog.module()(x)
    with torch.no_grad():
        ref = net(x)["F"]
    assert F.shape == (7, 32, 2, 2) and not F.is_complex()
    assert torch.equal(F, ref)
    # feasible as returned: Tr F F^H = P_a
    P = 10 ** ((x[:, 4].double() - 30) / 10)
    assert torch.allclose((F.double() ** 2).sum((1, 2, 3)), P, rtol=1e-9)


def test_design_space_rejects_bad_config():
    with pytest.raises(ValueError, match="N \\(number of BS antennas\\)"):
        NearFieldDesignSpace(1, 30e9, {})


# --------------------------------------------------------------------------------------------
# the config through the CLI
# --------------------------------------------------------------------------------------------


def test_config_fast_dev_run(cli_env):
    cli = cli_env.main(["fit", "--config", CONFIG, "--trainer.fast_dev_run=true", *FAST])
    assert cli.trainer.state.finished
    m = cli.trainer.callback_metrics
    assert math.isfinite(float(m["train/loss"])) and math.isfinite(float(m["val/skr_bits"]))
    # BaselineCallback takes the names from scenario.baselines(): every analytic design is logged beside PKG-Net
    for name in ("mrc", "svd_equal", "svd_dinkelbach", "optimal_beam", "optimum"):
        for key in (f"val/skr_bits_{name}", f"val/eve_close/skr_bits_{name}"):
            assert math.isfinite(float(m[key])), key


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.init_args.scenario.init_args.N=1", "N (number of BS antennas) must be an integer >= 2"),
        ("--model.init_args.scenario.init_args.P_t_dbm_range=[40, 0]", "P_t_dbm_range range is inverted"),
        ("--model.init_args.scenario.init_args.psi_rad_range=[-2, 2]", "psi_rad_range range must start at"),
        # 10^((P - 30)/10) W is inf here: named at construction, not as "design over budget: inf > inf" later
        ("--model.init_args.scenario.init_args.P_t_dbm_range=[3000, 4000]", "P_t_dbm_range range must end at <= 100"),
        # jsonargparse's own refusal of nan in a float list is reworded (it read "Expected a float. Got value: nan")
        ("--model.init_args.scenario.init_args.P_t_dbm_range=[.nan, 40]",
         "P_t_dbm_range: got nan: numbers here must be finite"),
        ("--model.init_args.scenario.init_args.N=100000000", "N (number of BS antennas) must be <= 4096"),
        ("--model.init_args.scenario.init_args.sigma_e_dbm=5000",
         "sigma_e_dbm must be finite and lie in [-200.0, 100.0]"),
    ],
)
def test_bad_config_values_fail_before_training(cli_env, tmp_path, capsys, override, message):
    with pytest.raises((ValueError, SystemExit)) as err:
        cli_env.main(["fit", "--config", CONFIG, *FAST, override])
    assert message in str(err.value) + capsys.readouterr().err
    assert not list(tmp_path.rglob("*.ckpt"))                                   # nothing written


@pytest.mark.slow
def test_small_training_beats_svd_with_power_allocation(cli_env, tmp_path):
    """A few epochs at N = 256: on held-out draws the learned design beats SVD w/ PA, the best analytic
    design below the optimum, and reaches >= 97 % of the optimal beam."""
    cli = cli_env.main(["fit", "--config", CONFIG, *FAST, "--data.init_args.train_draws_per_epoch=2000",
                        "--trainer.max_epochs=4"])
    module = cli.model.eval()
    sc = module.scenario
    b = sc.sample(500, generator_for(2024, 7))                                   # not seen in training
    with torch.no_grad():
        learned = sc.skr(b, module.net(sc.features(b).float()))
    base = {k: sc.skr(b, d) for k, d in sc.baselines(b, generator_for(1)).items()}
    assert learned.mean() > base["svd_dinkelbach"].mean()
    close = sc.subsets(b)["eve_close"]
    assert close.sum() > 50 and learned[close].mean() > base["svd_dinkelbach"][close].mean()
    assert learned.mean() >= 0.97 * base["optimal_beam"].mean(), (learned.mean(), base["optimal_beam"].mean())


def test_exported_file_loads_with_plain_torch(tmp_path):
    sc = NearFieldScenario(N=8)
    torch.manual_seed(1)
    net = PKGNet([8]).build(5, *sc.feature_bounds(), sc.design_space()).eval()
    export_pkgnet(net, sc, tmp_path / "m.pt2")
    script = f"""
import json, sys, torch
assert not any(m.split('.')[0] in ('physics', 'models', 'lightning') for m in sys.modules)
extra = {{"metadata.json": ""}}
prog = torch.export.load({str(tmp_path / 'm.pt2')!r}, extra_files=extra)
meta = json.loads(extra["metadata.json"])
(F,) = prog.module()(torch.tensor([[12.2, 0.2, 12.0, 0.2, 30.0]]))
print(json.dumps({{"shape": list(F.shape), "trace": float((F.double() ** 2).sum()), "names": meta["feature_names"]}}))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": ""}, timeout=300)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    assert rep["shape"] == [1, 8, 2, 2] and rep["trace"] == pytest.approx(1.0, rel=1e-9)
    assert rep["names"] == list(sc.feature_names)
    assert near_field_channel(8, 12.2, 0.2, 30e9).shape == (8,)
