"""End-to-end key agreement (keygen.agree): pipeline determinism, report contents, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from keygen.agree import IRSSystem, main, run_agreement

REQUIRED = ("final_key_agreement", "eve_bit_agreement", "nist_pass_ratio", "secret_bits_per_probe", "skr_bound_bits",
            "disclosed_bits", "design")


@pytest.fixture(scope="module")
def irs_wf():
    return IRSSystem("water_filling")


def _strip(r):
    r = dict(r)
    r.pop("time_s")
    r["reconciliation"] = {k: v for k, v in r["reconciliation"].items() if k != "time_per_frame_s"}
    return r


def test_pipeline_deterministic_per_seed(irs_wf):
    kw = dict(probes=2000, calibration_probes=2000, nist=False)
    r1 = run_agreement(irs_wf, seed=3, **kw)
    r2 = run_agreement(irs_wf, seed=3, **kw)
    assert _strip(r1) == _strip(r2)
    r3 = run_agreement(irs_wf, seed=4, **kw)
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
        run_agreement(irs_wf, probes=500, calibration_probes=500, quantiser={"levels": 16, "guard": 0.0}, nist=False)


def test_cli_json_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--system", "irs", "--design", "random", "--probes", "1500", "--calibration-probes", "1500",
                 "--no-progress", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    for key in REQUIRED:
        assert key in rep
    assert rep["design"] == "random"
    assert set(rep["nist_pass_ratio"]) == {"approximate_entropy", "block_frequency", "cumulative_sums", "dft",
                                          "frequency", "rank", "runs", "serial"}
    printed = capsys.readouterr().out
    assert "final secret bits per probe" in printed and "SKR bound" in printed


@pytest.mark.parametrize("args, needle", [
    (["--system", "bogus"], "--system"),
    (["--system", "irs", "--probes", "0"], "--probes 0"),
    (["--system", "irs", "--eps", "1.5"], "--eps 1.5"),
    (["--system", "irs", "--eps", "0"], "--eps 0"),
    (["--system", "irs", "--levels", "3"], "--levels 3"),
    (["--system", "irs", "--guard", "1"], "--guard 1"),
    (["--system", "irs", "--design", "nope"], "design = 'nope'"),
    (["--system", "irs", "--design", "pkgnet"], "--export"),
    (["--system", "irs", "--design", "pkgnet", "--export", "/nonexistent.pt2"], "no such file"),
    (["--system", "kgnet"], "--data"),
    (["--system", "multiuser"], "not yet available"),
    (["--system", "irs", "--method", "bch"], "--method"),
    (["--system", "irs", "--json", "/nonexistent/dir/r.json"], "does not exist"),
])
def test_cli_bad_input_one_line_exit_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err
    assert "Traceback" not in err


def test_cli_as_module_no_traceback():
    res = subprocess.run([sys.executable, "-m", "keygen.agree", "--system", "irs", "--probes", "-5"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr


@pytest.mark.slow
def test_irs_default_operating_point_numbers(irs_wf):
    """At the default point: blocks agree, Eve is at chance, NIST ratios >= 0.96 (rank: few groups)."""
    r = run_agreement(irs_wf, probes=20000, calibration_probes=20000, seed=0)
    assert r["final_key_agreement"] >= 0.999 and r["block_success_rate"] >= 0.999
    assert abs(r["eve_bit_agreement"] - 0.5) <= 0.01
    for name, ratio in r["nist_pass_ratio"].items():
        if name != "rank":
            assert ratio >= 0.96, (name, ratio)
    assert r["secret_bits_per_probe"] < r["skr_bound_bits"]


def test_kgnet_adapter_on_a_small_file(tmp_path):
    """KGNet system: GDQG keys of HDF5 users, checkpoint loading, plug-in Eve leak, no-mapping baseline."""
    torch = pytest.importorskip("torch")
    synthetic = pytest.importorskip("channeldata.synthetic")
    from keygen.agree import KGNetSystem
    from models.kgnet import KGNet

    h5 = synthetic.generate_synthetic(tmp_path / "room.h5", users=800, seed=0, progress=False)
    net = KGNet(in_dim=128, out_dim=128, hidden=(8,))
    ckpt = tmp_path / "k.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    sys_k = KGNetSystem(str(h5), str(ckpt), hidden=(8,))
    obs = sys_k.observations(50, 0)
    assert obs.alice.shape == obs.bob.shape == obs.eve.shape == (50, 128)
    with pytest.raises(ValueError, match="hidden"):
        KGNetSystem(str(h5), str(ckpt))  # the default widths do not match this checkpoint
    # Alice uses her Band1 features directly (no mapping): FDD without KGNet
    sys_n = KGNetSystem(str(h5), mapping="none", snr_db=None)
    assert sys_n.eve_leak_bits_per_probe() is None  # no closed form: estimated from symbols
    assert "estimate" in sys_n.skr_bound()["kind"]


def test_nearfield_plugs_in():
    nf = pytest.importorskip("physics.nearfield")
    if not all(hasattr(nf, f) for f in ("probe", "NearFieldScenario", "design_matrix")):
        pytest.skip("physics.nearfield lacks the observation sampler")
    from keygen.agree import make_system

    s = make_system("nearfield")
    r = run_agreement(s, probes=2000, calibration_probes=4000, nist=False)
    assert r["final_key_agreement"] == 1.0 and 0 < r["secret_bits_per_probe"] < r["skr_bound_bits"]
