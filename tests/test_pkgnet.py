"""Tier 2/3: PKG-Net nets, the scenario DataModule, the CLI (fit/test/export), resume, W&B offline,
bad input. Configs run through ``train.main``, the function the command line calls."""

from __future__ import annotations

import glob
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from datamodules.scenario import ScenarioDataModule
from models.pkgnet import PKGNet, PKGNetModule
from physics import irs
from physics.irs import IRSScenario
from physics.scenario import generator_for

REPO = Path(__file__).resolve().parents[1]
# the IRS configs (the near-field and multi-user configs run fast_dev_run in their own test modules,
# with their own small overrides)
PKG_CONFIGS = sorted((REPO / "configs" / "pkgnet").glob("irs_*.yaml"))
CASE1 = str(REPO / "configs" / "pkgnet" / "irs_case1.yaml")

# A small, fast version of a config: M = 2, L = 4, few draws, cheap baselines.
SMALL = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--model.init_args.scenario.init_args.M=2",
    "--model.init_args.scenario.init_args.L_H=2",
    "--model.init_args.scenario.init_args.L_V=2",
    "--data.init_args.train_draws_per_epoch=200",
    "--data.init_args.val_draws=100",
    "--data.init_args.test_draws=100",
]


def small_module(setting="case1", M=2, LH=2, LV=2, hidden=(32, 32)) -> PKGNetModule:
    return PKGNetModule(IRSScenario(setting, M=M, L_H=LH, L_V=LV), PKGNet(hidden))


# --------------------------------------------------------------------------------------------
# net and scenario
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", IRSScenario.SETTINGS)
def test_pkgnet_outputs_are_feasible_designs(setting):
    torch.manual_seed(0)
    module = small_module(setting, M=3, LH=2, LV=3)
    sc = module.scenario
    batch = sc.sample(50, generator_for(0, 1))
    x = sc.features(batch).float()
    assert x.shape == (50, len(sc.feature_names))
    out = module(x)
    assert out["P"].shape == (50, 3, 3, 2) and out["theta"].shape == (50, 6, 2)
    P = torch.view_as_complex(out["P"].double().contiguous())
    theta = torch.view_as_complex(out["theta"].double().contiguous())
    # 001 (53): Tr(P P^H) = P_max (float32 network: 1e-5 relative); (54): |theta_l| = 1
    assert torch.allclose((P.abs() ** 2).sum((-1, -2)), sc.P_max_w(batch), rtol=1e-5)
    assert torch.allclose(theta.abs(), torch.ones_like(theta.abs()), atol=1e-6)
    # the loss is the scenario's exact SKR and gradients reach every parameter
    loss = module.loss_fn(sc, batch, out)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    stats = sc.stats(batch)
    expect = irs.skr(P, theta, stats, sc.case)
    assert torch.allclose(-loss.double(), expect.mean(), rtol=1e-9)


def test_feature_order_and_units_are_documented():
    sc = IRSScenario("case2")
    assert sc.feature_names == ("x_b_m", "y_b_m", "z_b_m", "P_max_dbm", "eta", "kappa", "x_e_m", "y_e_m", "z_e_m")
    assert len(sc.feature_units) == 9
    assert len(IRSScenario("conference").feature_names) == 3
    assert len(IRSScenario("case1").feature_names) == 6


def test_training_distribution_matches_paper():
    sc = IRSScenario("case2")
    b = sc.sample(4000, generator_for(1))
    for k in ("bob_m", "eve_m"):
        assert b[k][:, :2].min() >= 5 and b[k][:, :2].max() <= 15 and torch.all(b[k][:, 2] == 0)
    assert 10 <= b["P_max_dbm"].min() and b["P_max_dbm"].max() <= 30
    assert 0 <= b["eta"].min() and b["eta"].max() < 1
    assert 0 <= b["kappa"].min() and b["kappa"].max() <= 10
    # uniform: mean within 4 standard errors (sd of U(10, 30) = 20/sqrt(12); n = 4000)
    assert abs(b["P_max_dbm"].mean().item() - 20) < 4 * (20 / math.sqrt(12)) / math.sqrt(4000)


def test_datamodule_draws_depend_on_seed_and_epoch_only():
    class FakeTrainer:
        current_epoch = 0
        lightning_module = None

    dm = ScenarioDataModule(IRSScenario("case1"), train_draws_per_epoch=250, batch_size=100, seed=3)
    dm.trainer = FakeTrainer()
    dm.setup("fit")
    e0 = [b["eta"].clone() for b in dm.train_dataloader()]
    assert [t.shape[0] for t in e0] == [100, 100, 50]
    again = [b["eta"].clone() for b in dm.train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(e0, again, strict=True))
    dm.trainer.current_epoch = 1
    e1 = [b["eta"] for b in dm.train_dataloader()]
    assert not torch.equal(e0[0], e1[0])
    val = next(iter(dm.val_dataloader()))
    dm2 = ScenarioDataModule(IRSScenario("case1"), seed=3)
    dm2.setup("fit")
    assert torch.equal(val["eta"], next(iter(dm2.val_dataloader()))["eta"][: val["eta"].shape[0]])
    assert not torch.equal(val["eta"], next(iter(dm.test_dataloader()))["eta"])


# --------------------------------------------------------------------------------------------
# CLI: every config, W&B offline, resume, export
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", PKG_CONFIGS, ids=lambda p: p.stem)
def test_every_pkgnet_config_runs_fast_dev_run(cli_env, config):
    cli = cli_env.main(["fit", "--config", str(config), "--trainer.fast_dev_run=true", *SMALL])
    assert cli.trainer.state.finished
    m = cli.trainer.callback_metrics
    for key in ("train/loss", "val/skr_bits", "val/skr_bits_water_filling", "val/gain_over_water_filling",
                "val/skr_bits_random", "val/skr_bits_identity", "val/skr_bits_optimum"):
        assert math.isfinite(float(m[key])), key


def test_wandb_offline_run_logs_val_skr(cli_env, tmp_path):
    cli_env.main(["fit", "--config", CASE1, "--trainer.max_epochs=1", *SMALL,
                  f"--trainer.logger.init_args.save_dir={tmp_path / 'wb'}"])
    runs = glob.glob(str(tmp_path / "wb" / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(runs) == 1, runs
    import wandb

    wandb.finish()
    # the W&B service process writes the run file asynchronously: under a full suite on 2 cores the records
    # were seen to land after finish() returned (the file held only its 7-byte header), so wait for them
    keys = (b"val/skr_bits", b"val/gain_over_water_filling")
    deadline = time.monotonic() + 60
    blob = Path(runs[0]).read_bytes()
    while not all(k in blob for k in keys) and time.monotonic() < deadline:
        time.sleep(0.5)
        blob = Path(runs[0]).read_bytes()
    assert all(k in blob for k in keys), blob[:200]


def in_run_dir(monkeypatch, root: Path, config: str = CASE1) -> tuple[list[str], Path]:
    """cd into ``root`` (the configs write runs/ relative to cwd); return CLI args and the
    checkpoint folder of the config."""
    root.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(root)
    name = Path(config).stem
    return ["--config", config, *SMALL, "--trainer.logger=false"], root / "runs" / "pkgnet" / name / "checkpoints"


def _fit_then_test(cli_env, monkeypatch, root: Path, extra: list[str], resume_only: bool = False) -> dict:
    common, ckpts = in_run_dir(monkeypatch, root)
    cli_env.main(["fit", *common, *extra])
    cli = cli_env.main(["test", *common, f"--ckpt_path={ckpts / 'last.ckpt'}"])
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items()}


def test_resume_from_last_matches_uninterrupted_run(cli_env, tmp_path, monkeypatch):
    full = _fit_then_test(cli_env, monkeypatch, tmp_path / "full", ["--trainer.max_epochs=4"])
    common, _ = in_run_dir(monkeypatch, tmp_path / "part")
    cli_env.main(["fit", *common, "--trainer.max_epochs=2"])  # "interrupted" after epoch 2
    resumed = _fit_then_test(cli_env, monkeypatch, tmp_path / "part", ["--trainer.max_epochs=4", "--ckpt_path=last"])
    for key in ("test/skr_bits", "test/loss", "test/skr_bits_water_filling"):
        # same seed, same per-epoch draws, restored Adam state: identical up to float32 rounding
        assert resumed[key] == pytest.approx(full[key], rel=1e-6, abs=1e-6), key


def test_export_roundtrip_in_fresh_process(cli_env, tmp_path, monkeypatch):
    common, ckpts = in_run_dir(monkeypatch, tmp_path / "run")
    cli = cli_env.main(["fit", *common, "--trainer.max_epochs=1"])
    module = cli.model.eval()
    ckpt = ckpts / "last.ckpt"
    out = tmp_path / "pkgnet.pt2"
    cli_env.main(["export", *common, f"--ckpt_path={ckpt}", f"--out={out}"])
    assert out.is_file()
    x = module.scenario.features(module.scenario.sample(7, generator_for(9))).float()
    with torch.no_grad():
        ref = module(x)
    torch.save({"x": x, "P": ref["P"], "theta": ref["theta"]}, tmp_path / "ref.pt")
    script = f"""
import json, sys, torch
assert not any(m.split('.')[0] in ('physics', 'models', 'lightning', 'train') for m in sys.modules)
extra = {{"metadata.json": ""}}
prog = torch.export.load({str(out)!r}, extra_files=extra)
meta = json.loads(extra["metadata.json"])
ref = torch.load({str(tmp_path / 'ref.pt')!r})
P, theta = prog.module()(ref["x"])
assert meta["outputs_order"] == ["P", "theta"]
print(json.dumps({{"dP": (P - ref["P"]).abs().max().item(), "dth": (theta - ref["theta"]).abs().max().item(),
                   "meta": meta}}))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": ""}, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["dP"] == 0.0 and report["dth"] == 0.0
    meta = report["meta"]
    assert meta["scenario"] == "irs_case1" and meta["M"] == 2 and meta["L"] == 4
    assert meta["input"]["feature_names"][3] == "P_max_dbm" and meta["input"]["feature_units"][3] == "dBm"


# --------------------------------------------------------------------------------------------
# bad input: clear errors before training or writing, nothing lost
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.init_args.scenario.init_args.M=0", "M must be an integer >= 1"),
        ("--model.init_args.scenario.init_args.P_max_dbm_range=[30, 10]", "P_max_dbm_range range is inverted"),
        ("--data.init_args.train_draws_per_epoch=-5", "train_draws_per_epoch must be an integer >= 1"),
        ("--model.init_args.scenario.init_args.eta_range=[0, 1.0]", "eta_range range must end at < 1.0"),
        ("--model.init_args.scenario.init_args.P_max_dbm_range=[3000, 4000]",
         "P_max_dbm_range range must end at <= 100.0, got 4000.0"),
        ("--model.init_args.scenario.init_args.area_m=[0, 0]", "area_m must start at > 0 m"),
    ],
)
def test_bad_values_fail_before_training(cli_env, tmp_path, capsys, override, message):
    with pytest.raises(SystemExit) as err:
        cli_env.main(["fit", "--config", CASE1, *SMALL, override])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ckpt"))


def test_unknown_yaml_key_is_rejected(cli_env, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(CASE1).read_text().replace("    train_draws_per_epoch: 1000",
                                                  "    train_draws_per_epoch: 1000\n    trian_draws: 5"))
    with pytest.raises(SystemExit) as err:
        cli_env.main(["fit", "--config", str(bad), *SMALL])
    assert err.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "trian_draws" in last


def test_checkpoint_from_another_scenario_is_refused_and_kept(cli_env, tmp_path, monkeypatch, capsys):
    common, ckpts = in_run_dir(monkeypatch, tmp_path / "run")
    cli_env.main(["fit", *common, "--trainer.max_epochs=1"])
    ckpt = ckpts / "last.ckpt"
    before = {p.name: p.read_bytes() for p in ckpts.iterdir()}
    case2 = str(REPO / "configs" / "pkgnet" / "irs_case2.yaml")
    # the case-2 config writes to its own folder; point it at the case-1 folder to prove nothing is lost
    case2_common = ["--config", case2, *SMALL, "--trainer.logger=false"]
    with pytest.raises(SystemExit):
        cli_env.main(["fit", *case2_common, "--trainer.max_epochs=2", f"--ckpt_path={ckpt}"])
    assert "another scenario" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == before  # nothing overwritten or lost
    assert not list((tmp_path / "run" / "runs" / "pkgnet" / "irs_case2").rglob("*.ckpt"))  # refused before training
    with pytest.raises(SystemExit):
        cli_env.main(["export", *case2_common, f"--ckpt_path={ckpt}", f"--out={tmp_path / 'x.pt2'}"])
    assert "another scenario" in capsys.readouterr().err
    assert not (tmp_path / "x.pt2").exists()


def test_export_to_missing_folder_fails_before_writing(cli_env, tmp_path, monkeypatch, capsys):
    common, ckpts = in_run_dir(monkeypatch, tmp_path / "run")
    cli_env.main(["fit", *common, "--trainer.max_epochs=1"])
    with pytest.raises(SystemExit) as err:
        cli_env.main(["export", *common, f"--ckpt_path={ckpts / 'last.ckpt'}",
                      f"--out={tmp_path / 'nope' / 'model.pt2'}"])
    assert err.value.code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


# --------------------------------------------------------------------------------------------
# slow tier: training quality and distributed training
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_small_case1_training_beats_the_best_baseline_on_hard_draws(cli_env, tmp_path):
    """On the whole distribution the identity design already reaches ~99.5 % of the optimum, so a
    bar there proves nothing. On the hard subset (P_max <= 15 dBm, eta >= 0.8) the best analytic
    baseline (water-filling, 3.57 bits on these draws) is clearly below the optimum (3.70 bits):
    the trained net must beat it there, and stay near the optimum."""
    cli = cli_env.main(["fit", "--config", CASE1, *SMALL, "--data.init_args.train_draws_per_epoch=1000",
                        "--trainer.max_epochs=60", "--trainer.logger=false"])
    module = cli.model.eval()
    sc = module.scenario
    batch = sc.sample(3000, generator_for(2024, 7))  # fixed draws, not seen in training
    hard = sc.subsets(batch)["hard"]
    batch = {k: v[hard] for k, v in batch.items()}
    assert hard.sum() >= 100
    with torch.no_grad():
        learned = sc.skr(batch, module.design(batch)).mean()
    baselines = {k: sc.skr(batch, d).mean() for k, d in sc.baselines(batch, generator_for(1)).items()}
    best_name = max(baselines, key=lambda k: baselines[k])
    best = sc.skr(batch, sc.optimum(batch, generator_for(2), steps=200, restarts=4)).mean()
    assert baselines[best_name] < 0.98 * best  # the bar is meaningful: the baseline leaves > 2 % on the table
    assert learned > baselines[best_name], (learned.item(), best_name, baselines[best_name].item())
    assert learned >= 0.98 * best, (learned.item(), best.item())


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "train.py"), "fit", "--config", CASE1, *SMALL, "--trainer.max_epochs=2",
           "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--trainer.logger=false"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = torch.load(tmp_path / "runs/pkgnet/irs_case1/checkpoints/last.ckpt", weights_only=False)
    cb = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert math.isfinite(float(cb["best_model_score"]))
    # 200 draws / batch 100 = 2 batches per epoch, one per rank: 1 optimiser step per epoch, 2 epochs
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2


def test_named_evaluation_sweeps_hold_other_fields_at_the_paper_point():
    from physics.units import wavelength_m

    dm = ScenarioDataModule(IRSScenario("case2"))
    dm.setup()
    b = dm.sweep("P_max_dbm", [10.0, 20.0, 30.0])
    assert b["P_max_dbm"].tolist() == [10.0, 20.0, 30.0]
    assert torch.all(b["eta"] == 0.4) and torch.all(b["kappa"] == 1.0)
    assert torch.equal(b["bob_m"], torch.tensor([[10.0, 10.0, 0.0]] * 3, dtype=torch.float64))
    # 001 Sec. VII-B: Eve at Bob minus half a wavelength in x
    lam = float(wavelength_m(2.4e9))
    assert torch.allclose(b["eve_m"][:, 0], torch.full((3,), 10.0 - lam / 2, dtype=torch.float64))
    d = dm.sweep("bob_eve_distance_m", [0.01, 0.1])
    assert torch.allclose((d["bob_m"] - d["eve_m"]).norm(dim=-1), torch.tensor([0.01, 0.1], dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown point field"):
        dm.sweep("M", [2, 4])


def test_onnx_export_matches_the_net(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from models.export import export_pkgnet

    torch.manual_seed(0)
    sc = IRSScenario("case2", M=3, L_H=2, L_V=2)
    net = PKGNet([32, 32]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()).eval()
    export_pkgnet(net, sc, tmp_path / "m.pt2", tmp_path / "m.onnx")
    x = sc.features(sc.sample(9, generator_for(4))).float()
    P, theta = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["P", "theta"], {"x": x.numpy()})
    with torch.no_grad():
        ref = net(x)
    # float32 through two runtimes: agreement to a few float32 ulps of O(sqrt(P_max)) entries
    assert P.shape == (9, 3, 3, 2) and theta.shape == (9, 4, 2)
    assert torch.allclose(torch.from_numpy(P), ref["P"], rtol=1e-5, atol=1e-6)
    assert torch.allclose(torch.from_numpy(theta), ref["theta"], rtol=1e-5, atol=1e-6)


def test_irs_scenario_refuses_truthy_strings_and_fractional_draw_counts():
    """``bool("no")`` is True: a string flag would silently switch Eve's position; 2.5 draws is not a count."""
    from physics.irs import IRSScenario

    with pytest.raises(ValueError, match="eve_at_bob_minus_half_wavelength must be true or false, got 'no'"):
        IRSScenario("case2", eve_at_bob_minus_half_wavelength="no")
    with pytest.raises(ValueError, match="number of draws n must be an integer >= 0, got 2.5"):
        IRSScenario("case1").sample(2.5, torch.Generator().manual_seed(0))


def test_evaluation_computes_the_skr_once_per_batch_and_the_loss_from_it():
    """An evaluation batch calls scenario.skr once (for the SKR mean, the loss and the callbacks); the sums it adds
    are the loss function's and the SKR of the counted rows (the DDP padding rows, index -1, left out), as when the
    loss evaluated the SKR again; and a loss that cannot be derived from an SKR is refused at construction."""
    from physics.scenario import INDEX_KEY, strip_index, total_skr

    module = small_module().eval()
    sc = module.scenario
    batch = sc.sample(6, generator_for(5))
    batch[INDEX_KEY] = torch.tensor([0, 1, 2, 3, -1, -1])
    real_skr, calls = sc.skr, []
    sc.skr = lambda b, o: calls.append(1) or real_skr(b, o)
    module._start_eval()
    with torch.no_grad():
        out = module.validation_step(batch, 0)
    del sc.skr
    assert len(calls) == 1 and out["skr"].shape[0] == 6
    kept = {k: v[:4] for k, v in strip_index(batch).items()}
    with torch.no_grad():
        design = module(sc.features(kept).float())
        loss = module.loss_fn(sc, kept, design).double()
        per_draw = total_skr(sc.skr(kept, {k: v.double() for k, v in design.items()}))
    expected = torch.stack([loss * 4, per_draw.sum(), torch.tensor(4.0, dtype=torch.float64)])
    assert torch.allclose(module._eval_sums, expected, rtol=1e-12, atol=0), (module._eval_sums, expected)
    from losses.mse import MSELoss

    with pytest.raises(ValueError, match="loss must be an SKR loss with from_skr"):
        PKGNetModule(IRSScenario("case1", M=2, L_H=2, L_V=2), PKGNet([8]), loss=MSELoss())
