"""End-to-end key agreement: the system-free pipeline (keygen.pipeline), the system adapters (agreement/) and
``python train.py agree`` (report contents, determinism, bad input)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agreement.irs import IRSScenario, IRSSystem
from agreement.system import run_system
from keygen.pipeline import Observations, run_pipeline

REPO = Path(__file__).resolve().parents[1]
CASE2 = str(REPO / "configs" / "pkgnet" / "irs_case2.yaml")
NEARFIELD = str(REPO / "configs" / "pkgnet" / "nearfield.yaml")
MULTIUSER = str(REPO / "configs" / "pkgnet" / "multiuser.yaml")
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false"]
MU_SMALL_FLAGS = ["--model.init_args.scenario.init_args.M=32", "--model.init_args.scenario.init_args.K=3"]

REQUIRED = ("final_key_agreement", "eve_bit_agreement", "nist_pass_ratio", "secret_bits_per_probe", "skr_bound_bits",
            "disclosed_bits", "design", "reconciliation", "entropy_budget")


@pytest.fixture(scope="module")
def irs_wf():
    return IRSSystem(IRSScenario("case2"), "water_filling")


@pytest.fixture(scope="module")
def train_main():
    sys.path.insert(0, str(REPO))
    import train

    yield train.main
    sys.path.remove(str(REPO))


def _strip(r):
    r = dict(r)
    r.pop("time_s")
    r["reconciliation"] = {k: v for k, v in r["reconciliation"].items() if k != "time_per_frame_s"}
    return r


# ---------------------------------------------------------------------------------------------
# keygen.pipeline: arrays in, keys and a report out; no system
# ---------------------------------------------------------------------------------------------


def _gaussian_triple(n, rho, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    bob = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal((n, 4))
    return Observations(x, bob, rng.standard_normal((n, 4)), {"mean": 0.0, "std": 1.0})


def test_pipeline_on_plain_arrays_returns_agreed_keys():
    """Correlated Gaussian arrays (rho = 0.95 per column) and an independent Eve: the keys Alice and Bob end with
    are equal, Eve's agree on about half the bits, and the report adds up."""
    bound = {"skr_bound_bits": 4 * -0.5 * np.log2(1 - 0.95**2), "kind": "stated by the test"}
    res = run_pipeline(_gaussian_triple(6000, 0.95, 0), _gaussian_triple(6000, 0.95, 1), bound=bound,
                       quantiser={"method": "equiprobable", "levels": 2, "guard": 0.2}, eve_leak_bits_per_probe=0.0,
                       nist=False)
    r = res.report
    assert len(res.keys_alice) == len(res.keys_bob) == len(res.keys_eve) == r["final_keys"] >= 1
    assert all(np.array_equal(a, b) for a, b in zip(res.keys_alice, res.keys_bob, strict=True))
    assert sum(k.size for k in res.keys_alice) == r["final_key_bits"]
    assert r["final_key_agreement"] == 1.0 and abs(r["eve_bit_agreement"] - 0.5) < 0.05
    assert r["skr_bound_bits"] == bound["skr_bound_bits"] and r["skr"] == bound
    assert "system" not in r and "design" not in r  # the caller's: the pipeline knows no system
    with pytest.raises(ValueError, match="eps"):
        run_pipeline(_gaussian_triple(200, 0.9, 0), _gaussian_triple(200, 0.9, 1), bound=bound, eps=0.0)
    with pytest.raises(ValueError, match="one shape"):
        Observations(np.zeros((5, 2)), np.zeros((5, 3)), None)


# ---------------------------------------------------------------------------------------------
# the IRS adapter and the run
# ---------------------------------------------------------------------------------------------


def test_pipeline_deterministic_per_seed(irs_wf):
    kw = dict(probes=2000, calibration_probes=2000, nist=False)
    r1 = run_system(irs_wf, seed=3, **kw)
    r2 = run_system(irs_wf, seed=3, **kw)
    assert _strip(r1) == _strip(r2)
    r3 = run_system(irs_wf, seed=4, **kw)
    assert r3["disclosed_bits"] != r1["disclosed_bits"] or r3["initial_kdr"] != r1["initial_kdr"]
    for key in REQUIRED:
        assert key in r1
    assert r1["final_key_agreement"] == 1.0 and r1["final_keys"] >= 1
    assert 0 < r1["secret_bits_per_probe"] < r1["skr_bound_bits"]
    assert r1["reconciliation"]["frame_success_rate"] == 1.0


def test_canonical_pairs_reproduce_the_closed_form(irs_wf):
    """sum_i -log2(1 - rho_i^2) of the CCA equals I(y_a; y_b) of 001 (38)."""
    rho = np.array(irs_wf.describe()["canonical_correlations"])
    assert -np.log2(1 - rho**2).sum() == pytest.approx(irs_wf.skr_bound()["I_ab"], rel=1e-6)
    obs = irs_wf.observations(20000, 0)
    assert obs.alice.shape == obs.bob.shape == obs.eve.shape == (20000, 2 * len(rho))
    assert np.allclose(obs.alice.var(0), 1.0, atol=0.05) and np.allclose(obs.bob.var(0), 1.0, atol=0.05)
    c = np.mean(obs.alice * obs.bob, 0)
    assert np.allclose(c, np.tile(rho, 2), atol=0.03)


def test_disagreement_above_method_limit_is_refused(irs_wf):
    with pytest.raises(ValueError, match="above what"):  # 16 levels, no guard band: KDR ~ 0.3
        run_system(irs_wf, probes=500, calibration_probes=500, quantiser={"levels": 16, "guard": 0.0}, nist=False)


def test_irs_case1_config_bounds_with_38_and_simulates_eve():
    s = IRSSystem(IRSScenario("case1"), "water_filling")
    b = s.skr_bound()
    assert "(38)" in b["kind"] and b["skr_bound_bits"] == b["I_ab"]
    assert s.observations(200, 0).eve.shape == (200, 2 * len(s.modes))
    with pytest.raises(ValueError, match="conference"):
        IRSSystem(IRSScenario("conference"), "water_filling")


@pytest.mark.slow
def test_irs_default_operating_point_numbers(irs_wf):
    """At the default point: blocks agree, Eve is at chance, NIST ratios >= 0.96 (rank: few groups)."""
    r = run_system(irs_wf, probes=20000, calibration_probes=20000, seed=0)
    assert r["final_key_agreement"] >= 0.999 and r["block_success_rate"] >= 0.999
    assert abs(r["eve_bit_agreement"] - 0.5) <= 0.01
    for name, ratio in r["nist_pass_ratio"].items():
        if name != "rank":
            assert ratio >= 0.96, (name, ratio)
    assert r["secret_bits_per_probe"] < r["skr_bound_bits"]


# ---------------------------------------------------------------------------------------------
# python train.py agree
# ---------------------------------------------------------------------------------------------


def test_cli_json_report(tmp_path, capsys, train_main):
    out = tmp_path / "r.json"
    train_main(["agree", "--config", CASE2, *QUIET, "--design", "random", "--probes", "1500",
                "--calibration_probes", "1500", "--progress", "false", "--json", str(out),
                "--point", '{"P_max_dbm": 20, "eta": 0.5}'])
    rep = json.loads(out.read_text())
    for key in REQUIRED:
        assert key in rep
    assert rep["design"] == "random" and rep["system"]["setting"] == "case2"
    assert rep["system"]["point"]["P_max_dbm"] == [20.0] and rep["system"]["point"]["eta"] == [0.5]
    assert rep["system"]["point"]["kappa"] == [1.0]  # the scenario's point() default
    assert set(rep["nist_pass_ratio"]) == {"approximate_entropy", "block_frequency", "cumulative_sums", "dft",
                                          "frequency", "rank", "runs", "serial"}
    printed = capsys.readouterr().out
    assert "final secret bits per probe" in printed and "SKR bound" in printed
    # an existing report is not replaced without --overwrite
    with pytest.raises(SystemExit) as exc:
        train_main(["agree", "--config", CASE2, *QUIET, "--json", str(out)])
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [
    (["--probes", "0"], "--probes 0"),
    (["--calibration_probes", "99"], "--calibration_probes 99"),
    (["--eps", "1.5"], "--eps 1.5"),
    (["--eps", "0"], "--eps 0"),
    (["--levels", "3"], "--levels 3"),
    (["--guard", "1"], "--guard 1"),
    (["--symbol_bits", "17"], "--symbol_bits 17"),
    (["--block_bits", "100"], "--block_bits 100"),
    (["--design", "nope"], "--design 'nope' is not allowed for the irs system"),
    (["--design", "optimal_beam"], "water_filling"),
    (["--design", "pkgnet"], "--ckpt_path"),
    (["--export", "/nonexistent.pt2"], "no such file"),
    (["--ckpt_path", "/nonexistent.ckpt"], "does not exist"),
    (["--design", "random", "--export", "x.pt2"], "analytic design"),
    (["--point", '{"P_max": 15}'], "allowed: bob_m, eve_m, P_max_dbm"),
    (["--point", '{"eta": 1.5}'], "eta"),
    (["--user", "1"], "--user applies to a multi-user config only"),
    (["--max_mode_leak", "0.5"], "--max_mode_leak"),
    (["--rho_min", "1"], "--rho_min 1"),
    (["--method", "bch"], "bch"),
    (["--quantiser", "lloyd"], "lloyd"),
    (["--json", "/nonexistent/dir/r.json"], "does not exist"),
    (["--probes", "many"], "--probes"),
])
def test_cli_bad_input_one_line_exit_2(args, needle, capsys, train_main):
    with pytest.raises(SystemExit) as exc:
        train_main(["agree", "--config", CASE2, *QUIET, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("config, args, needle", [
    (NEARFIELD, ["--design", "water_filling"], "not allowed for the nearfield system"),
    (NEARFIELD, ["--point", '{"P_t": 20}'], "allowed: ['P_t_dbm'"),
    (NEARFIELD, ["--rho_min", "0.5"], "--rho_min applies to irs and multi-user"),
    (MULTIUSER, ["--design", "theorem2"], "theorem2"),
    (MULTIUSER, ["--design", "pkgnet"], "--ckpt_path"),
    (MULTIUSER, [*MU_SMALL_FLAGS, "--user", "3"], "--user 3 is not allowed; choose a UT in 0..2"),
    (MULTIUSER, ["--model.init_args.scenario.init_args.K=1"], "K >= 2"),
    (MULTIUSER, [*MU_SMALL_FLAGS, "--point", '{"snr": 20}'], "allowed: snr_db, gap, rho"),
    (MULTIUSER, [*MU_SMALL_FLAGS, "--user", "0", "--rho_min", "0.9999", "--point", '{"snr_db": 20}'],
     "no canonical pair"),
])
def test_cli_bad_input_other_systems(config, args, needle, capsys, train_main):
    with pytest.raises(SystemExit) as exc:
        train_main(["agree", "--config", config, *QUIET, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], err


def test_cli_as_a_process_no_traceback():
    res = subprocess.run([sys.executable, "train.py", "agree", "--config", CASE2, "--probes", "-5"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert "--probes -5" in res.stderr


# ---------------------------------------------------------------------------------------------
# KGNet (002): a small synthetic file, a checkpoint of a small net, its export
# ---------------------------------------------------------------------------------------------


def test_kgnet_adapter_checkpoint_export_and_no_mapping(tmp_path, capsys, train_main):
    """KGNet system: GDQG keys of HDF5 users from a checkpoint of the config (read with weights_only and checked
    against it), the same band map from its .pt2, the no-mapping baseline, and a refused missing file."""
    torch = pytest.importorskip("torch")
    synthetic = pytest.importorskip("channeldata.synthetic")
    import dataclasses

    from agreement.kgnet import KGNetSystem, band_map_from_export, band_map_from_module
    from channeldata.dualband_file import write_dual_band
    from datamodules.dualband import DualBandDataModule
    from models.export import export_kgnet, load_program
    from models.kgnet import KGNet, KGNetModule

    # Band 2 = Band 1 (a reciprocal file): the trivial maps below then give keys, as a trained KGNet would
    data = synthetic.synthetic_dual_band(1500, 0)
    data = dataclasses.replace(data, cfr_band2=data.cfr_band1.copy(), eve_cfr_band2=data.eve_cfr_band1.copy())
    h5 = write_dual_band(tmp_path / "room.h5", data)
    dm = DualBandDataModule(h5_path=str(h5), generate_if_missing=False, seed=0)
    net = KGNet(in_dim=128, out_dim=128, hidden=(128,))
    with torch.no_grad():  # an almost linear band map: Band-2 estimate = sigmoid(x1 - 1/2), x1 in [0, 1]
        net.layers[0].weight.copy_(torch.eye(128))
        net.layers[0].bias.zero_()
        net.layers[2].weight.copy_(torch.eye(128))
        net.layers[2].bias.fill_(-0.5)
    module = KGNetModule(net)
    dm.setup("fit")
    ckpt = tmp_path / "k.ckpt"
    torch.save({"state_dict": module.state_dict(), "phykey": module.checkpoint_record(),
                "DualBandDataModule": dm.state_dict()}, ckpt)
    sys_k = KGNetSystem(dm, "kgnet", band_map=band_map_from_module(module), source={"checkpoint": str(ckpt)})
    obs = sys_k.observations(50, 0)
    assert obs.alice.shape == obs.bob.shape == obs.eve.shape == (50, 128)
    assert sys_k.describe()["test_users"] == 300 and sys_k.describe()["calibration_users"] == 120
    with pytest.raises(ValueError, match="more than the 300 users"):
        sys_k.observations(301, 0)
    pt2 = tmp_path / "k.pt2"
    export_kgnet(module.net, dm.state_dict(), pt2)
    program, _ = load_program(pt2)
    from_export = KGNetSystem(dm, "kgnet", band_map=band_map_from_export(program, dm), source={"export": str(pt2)})
    assert np.allclose(from_export.observations(50, 0).alice, obs.alice, atol=1e-5)
    # Alice uses her Band1 features directly (no mapping): FDD without KGNet
    sys_n = KGNetSystem(dm, "no_mapping", point={"snr_db": None})
    assert sys_n.eve_leak_bits_per_probe() is None  # no closed form: estimated from symbols
    assert "estimate" in sys_n.skr_bound()["kind"] and sys_n.describe()["design"] == "no-mapping"

    config = REPO / "configs" / "kgnet" / "kgnet.yaml"
    base = ["agree", "--config", str(config), "--config", str(REPO / "tests" / "csv_logger.yaml"), *QUIET[:2],
            f"--data.init_args.h5_path={h5}", "--model.init_args.net.init_args.hidden=[128]", "--progress", "false"]
    out = tmp_path / "kg.json"
    train_main([*base, "--ckpt_path", str(ckpt), "--json", str(out)])
    rep = json.loads(out.read_text())
    assert rep["design"] == "kgnet" and rep["probes"] == 300 and rep["system"]["checkpoint"] == str(ckpt)
    assert rep["system"]["snr_db"] == 30.0 and rep["final_key_agreement"] == 1.0
    train_main([*base, "--export", str(pt2), "--json", str(tmp_path / "kg_export.json")])
    assert json.loads((tmp_path / "kg_export.json").read_text())["final_key_bits"] == rep["final_key_bits"]
    capsys.readouterr()
    for args, needle in ((["--design", "no_mapping", "--probes", "400"], "400 probes are more than the 300 users"),
                         ([], "needs --ckpt_path or --export"),
                         (["--design", "water_filling"], "not allowed for the kgnet system"),
                         (["--point", '{"snr": 10}'], "allowed: snr_db"),
                         (["--ckpt_path", str(ckpt), "--model.init_args.net.init_args.hidden=[16]"], "differ"),
                         ([f"--data.init_args.h5_path={tmp_path / 'missing.h5'}", "--design", "no_mapping"],
                          "missing.h5")):
        with pytest.raises(SystemExit) as exc:
            train_main([*base, *args])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("error: ") == 1 and needle in err, err
    assert not (tmp_path / "missing.h5").exists()  # never generated


# ---------------------------------------------------------------------------------------------
# near-field (004)
# ---------------------------------------------------------------------------------------------


def test_nearfield_plugs_in(tmp_path, train_main):
    from agreement.nearfield import NearFieldSystem
    from physics.nearfield import NearFieldScenario

    s = NearFieldSystem(NearFieldScenario(), "optimal_beam")
    r = run_system(s, probes=2000, calibration_probes=4000, nist=False)
    assert r["final_key_agreement"] == 1.0 and 0 < r["secret_bits_per_probe"] < r["skr_bound_bits"]
    out = tmp_path / "nf.json"
    train_main(["agree", "--config", NEARFIELD, *QUIET, "--design", "mrc", "--probes", "2000",
                "--calibration_probes", "4000", "--point", '{"P_t_dbm": 20}', "--block_bits", "4096",
                "--progress", "false", "--json", str(out)])
    rep = json.loads(out.read_text())
    assert rep["design"] == "mrc" and rep["system"]["point"]["P_t_dbm"] == [20.0]
    assert rep["reconciliation"]["frame_bits"] == 4096  # (Eve near Bob sees the MRC beam: every frame refused)


# ---------------------------------------------------------------------------------------------
# a PKG-Net checkpoint of the near-field and the multi-user config (untrained weights: the plumbing)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, over, flags", [
    ("nearfield", {}, ["--block_bits", "4096"]),
    ("multiuser", {"M": 32, "K": 3}, [*MU_SMALL_FLAGS, "--point", '{"snr_db": 20}']),
])
def test_pkgnet_checkpoint_of_the_config(tmp_path, train_main, name, over, flags):
    """A checkpoint of the config's PKG-Net (its record: the config's scenario) is read with weights_only, its net
    (with the multi-user refinement steps of the config) gives the design, and the report names the checkpoint."""
    torch = pytest.importorskip("torch")
    import yaml

    from models.pkgnet import PKGNet, PKGNetModule
    from physics.multiuser import MultiUserScenario
    from physics.nearfield import NearFieldScenario

    config = REPO / "configs" / "pkgnet" / f"{name}.yaml"
    init = yaml.safe_load(config.read_text())["model"]["init_args"]["scenario"]["init_args"]
    init = {k: tuple(v) if isinstance(v, list) else v for k, v in {**init, **over}.items()}
    torch.manual_seed(0)
    module = PKGNetModule((NearFieldScenario if name == "nearfield" else MultiUserScenario)(**init), PKGNet([16]))
    ckpt = tmp_path / f"{name}.ckpt"
    torch.save({"state_dict": module.state_dict(), "phykey": module.checkpoint_record()}, ckpt)
    out = tmp_path / f"{name}.json"
    train_main(["agree", "--config", str(config), *QUIET, "--model.init_args.net.init_args.hidden=[16]", *flags,
                "--ckpt_path", str(ckpt), "--probes", "2000", "--calibration_probes", "2000", "--progress", "false",
                "--json", str(out)])
    rep = json.loads(out.read_text())
    assert rep["design"] == "pkgnet" and rep["system"]["checkpoint"] == str(ckpt)
    assert rep["system"]["export"] is None and rep["reconciliation"]["frames"] >= 1


# ---------------------------------------------------------------------------------------------
# multiuser (003): small sizes (M = 32, K = 3) so the whole block runs in seconds
# ---------------------------------------------------------------------------------------------

MU_POINT = {"snr_db": 20.0}


@pytest.fixture(scope="module")
def mu_small():
    from agreement.multiuser import MultiUserSystem
    from physics.multiuser import MultiUserScenario

    return MultiUserSystem(MultiUserScenario(M=32, K=3), "eigen_beams", point=MU_POINT)


def test_multiuser_closed_form_and_monte_carlo_agree(mu_small):
    """Alice-Bob Gaussian MI of the adapter's covariance = 003 (30) of the scenario; the simulated canonical
    variables have unit variance and the predicted correlations; Eve is another UT."""
    for k in range(3):
        s = mu_small.for_user(k)
        b = s.skr_bound()
        assert b["I_ab"] == pytest.approx(b["skr_30_bits"], rel=1e-6) and b["skr_bound_bits"] == b["skr_30_bits"]
        assert s.eve != k and s.I_ae == max(s.leaks.values())
        assert b["theorem2_ceiling_bits"] > 0
    obs = mu_small.observations(6000, 0)
    m = len(mu_small.modes)
    assert obs.alice.shape == obs.bob.shape == obs.eve.shape == (6000, 2 * m)
    assert np.allclose(obs.alice.var(0), 1.0, atol=0.08) and np.allclose(obs.bob.var(0), 1.0, atol=0.08)
    rho = np.array(mu_small.describe()["canonical_correlations"])[mu_small.modes]
    assert np.allclose(np.mean(obs.alice * obs.bob, 0), np.tile(rho, 2), atol=0.04)


def test_multiuser_deterministic_agreement_and_eve(mu_small):
    s = mu_small.for_user(1)
    kw = dict(probes=3000, calibration_probes=3000, nist=False)
    r1 = run_system(s, seed=3, **kw)
    r2 = run_system(s, seed=3, **kw)
    assert _strip(r1) == _strip(r2)
    r3 = run_system(s, seed=4, **kw)
    assert r3["disclosed_bits"] != r1["disclosed_bits"] or r3["initial_kdr"] != r1["initial_kdr"]
    for key in REQUIRED:
        assert key in r1
    assert r1["final_key_agreement"] == 1.0 and r1["final_keys"] >= 1
    assert abs(r1["eve_bit_agreement"] - 0.5) < 0.03  # a few thousand final bits
    assert 0 < r1["secret_bits_per_probe"] < r1["skr_bound_bits"]
    assert r1["system"]["user"] == 1 and r1["system"]["eve_ut"] != 1


def test_multiuser_cli_all_users_json(tmp_path, capsys, train_main):
    out = tmp_path / "mu.json"
    base = ["agree", "--config", MULTIUSER, *QUIET, *MU_SMALL_FLAGS, "--point", json.dumps(MU_POINT),
            "--progress", "false"]
    train_main([*base, "--design", "beam_selection", "--probes", "1500", "--calibration_probes", "1500",
                "--json", str(out)])
    rep = json.loads(out.read_text())
    for key in REQUIRED:  # the totals; entropy budgets are per UT
        assert key in rep or key == "entropy_budget"
        assert all(key in r for r in rep["per_user"])
    assert rep["design"] == "beam_selection" and len(rep["per_user"]) == 3 and rep["users"] == [0, 1, 2]
    per = rep["per_user"]
    assert rep["secret_bits_per_probe"] == pytest.approx(sum(r["secret_bits_per_probe"] for r in per))
    assert rep["skr_bound_bits"] == pytest.approx(sum(r["skr_bound_bits"] for r in per))
    assert rep["skr_bound_bits"] == pytest.approx(rep["skr"]["sum_skr_30_bits"], rel=1e-9)
    assert rep["final_key_agreement"] == 1.0 and abs(rep["eve_bit_agreement"] - 0.5) < 0.03
    assert set(rep["nist_pass_ratio"]) >= {"frequency", "runs", "serial"}
    assert rep["system"]["point"]["snr_db"] == [20.0]
    assert "total: final secret bits per probe" in capsys.readouterr().out
    # one stated UT: the ordinary report
    train_main([*base, "--user", "2", "--probes", "1000", "--calibration_probes", "1000", "--json", str(out),
                "--overwrite", "true"])
    one = json.loads(out.read_text())
    assert one["system"]["user"] == 2 and "per_user" not in one


def test_multiuser_shared_scatterers_eve_is_the_partner():
    """UT pairs share their two strongest scatterers: Eve is the partner, the bound is (27), the two canonical
    pairs the partner sees as well as Bob are dropped, and the remaining ones still give agreed keys."""
    from agreement.multiuser import MultiUserSystem
    from physics.multiuser import MultiUserScenario

    sc = MultiUserScenario(M=32, K=4, objective="leakage", p_overlapping=1.0, shared_paths=2)
    s = MultiUserSystem(sc, "eigen_beams", point={"gap": 0.05, **MU_POINT})
    for k in range(4):
        v = s.for_user(k)
        b = v.skr_bound()
        assert v.eve == k ^ 1 and "(27)" in b["kind"] and b["skr_bound_bits"] == b["skr_27_bits"]
        assert b["skr_27_bits"] <= b["I_ab_given_eve"] + 1e-9  # (27) is the min over curious UTs
        assert 0 not in v.modes and 1 not in v.modes and v.mode_leak[0] > 2.0  # the shared scatterers
        assert v.modes and v.I_ae < 0.5
    r = run_system(s.for_user(0), probes=3000, calibration_probes=3000, nist=False)
    assert r["final_keys"] >= 1 and r["final_key_agreement"] == 1.0 and abs(r["eve_bit_agreement"] - 0.5) < 0.03
    assert 0 < r["secret_bits_per_probe"] < r["skr_bound_bits"]


def test_gaussian_mi_real_and_complex_against_hand_values():
    """Issue 22: KGNet's real features went through the complex formula, doubling the bound. Four independent
    real pairs with correlation 0.9: I = 4 * (-1/2 log2(1 - 0.81)) = 2 log2(1/0.19) = 4.7919 bits (9.5838 for
    four complex pairs with the same correlation)."""
    import math as _math

    from keygen.canonical import gaussian_mi_bits

    rho, d = 0.9, 4
    R = np.block([[np.eye(d), rho * np.eye(d)], [rho * np.eye(d), np.eye(d)]])
    assert gaussian_mi_bits(R, d, d, field="real") == pytest.approx(2 * _math.log2(1 / 0.19), rel=1e-12)
    assert gaussian_mi_bits(R, d, d) == pytest.approx(4 * _math.log2(1 / 0.19), rel=1e-12)
    # Monte Carlo on real samples: the sample MI of 2e5 draws is within 0.01 bits of the real formula
    # (its bias is about d^2 / (2 n ln 2) = 6e-5 bits; the spread about sqrt(2 d rho^2 / n) / ln 2 = 0.004)
    g = np.random.default_rng(0)
    x = g.standard_normal((200_000, d))
    y = rho * x + _math.sqrt(1 - rho**2) * g.standard_normal((200_000, d))
    z = np.concatenate([x, y], 1)
    assert gaussian_mi_bits(z.T @ z / z.shape[0], d, d, field="real") == pytest.approx(2 * _math.log2(1 / 0.19),
                                                                                       abs=0.01)
    with pytest.raises(ValueError, match="field = 'quaternion' is not allowed"):
        gaussian_mi_bits(R, d, d, field="quaternion")
