"""Tier 2/3: the scenario contract is closed and the framework around it is honest.

* a toy second scenario (tests/toy/toy_scenario.py, per-user SKR [n, K]) runs fit, test with its own
  baseline table, and export through the real CLI with no change to the module, data module,
  callback or export code;
* the contract is an abstract base class with required describe() keys;
* constant tensors follow their inputs' device and dtype (a CUDA test runs where a GPU exists);
* BaselineCallback's DDP means equal a single process's on the same draws;
* PKGNetModule.load_from_checkpoint rebuilds the module from the checkpoint alone.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from callbacks.baselines import BaselineCallback, format_table
from models.export import load_metadata
from models.pkgnet import PKGNet, PKGNetModule
from physics import irs
from physics.arrays import irs_correlation
from physics.irs import IRSScenario
from physics.optim import ascent_loop_runner, projected_ascent, unrolled_ascent
from physics.scenario import Scenario, check_description, generator_for, total_skr

REPO = Path(__file__).resolve().parents[1]
TOY_DIR = Path(__file__).resolve().parent / "toy"
TOY = str(TOY_DIR / "toy.yaml")
CASE1 = str(REPO / "configs" / "pkgnet" / "irs_case1.yaml")
sys.path.insert(0, str(TOY_DIR))

from toy_scenario import ToyScenario, link_rate_bits  # noqa: E402

FRAMEWORK_FILES = ["models/pkgnet.py", "datamodules/scenario.py", "callbacks/baselines.py", "models/export.py",
                   "train.py", "losses/skr.py"]


@pytest.fixture
def toy_env(cli_env, monkeypatch):
    monkeypatch.syspath_prepend(str(TOY_DIR))
    return cli_env


# --------------------------------------------------------------------------------------------
# the contract
# --------------------------------------------------------------------------------------------


def test_scenario_is_an_abstract_base_class():
    class Half(Scenario):
        def sample(self, n, generator):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_describe_must_hold_the_required_keys():
    check_description(IRSScenario("case2").describe())
    check_description(ToyScenario().describe())
    with pytest.raises(ValueError, match="lacks the required keys"):
        check_description({"scenario": "x", "feature_names": []})
    with pytest.raises(ValueError, match="plain JSON"):
        check_description({"scenario": "x", "feature_names": [], "feature_units": [], "outputs": {"p": [1]},
                           "bad": torch.zeros(1)})


def test_framework_code_names_no_scenario():
    """The module, data module, callback, loss and export never name a particular system."""
    for f in FRAMEWORK_FILES:
        text = (REPO / f).read_text()
        for word in ("water_filling", "IRSScenario", "physics.irs", "meta['M']", 'meta["M"]', "NearField", "MultiUser",
                     "Toy", "identity"):
            assert word not in text, (f, word)


def test_total_skr_sums_users_and_rejects_other_shapes():
    assert torch.equal(total_skr(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))
    assert torch.equal(total_skr(torch.tensor([[1.0, 2.0], [3.0, 4.0]])), torch.tensor([3.0, 7.0]))
    with pytest.raises(ValueError, match=r"\[n\] or \[n, K\]"):
        total_skr(torch.zeros(2, 2, 2))


def test_toy_rate_matches_the_gaussian_mutual_information():
    """log2((1+s)^2/(1+2s)) against the 2x2 complex-Gaussian covariance form I = log2(det C_a det C_b / det C)."""
    s = torch.tensor([0.01, 0.5, 3.0, 40.0], dtype=torch.float64)
    C = torch.stack([torch.stack([1 + s, s], -1), torch.stack([s, 1 + s], -1)], -2)
    ref = torch.log2((1 + s) ** 2 / torch.linalg.det(C))
    assert torch.allclose(link_rate_bits(s), ref, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# proof of extensibility: the toy scenario through the real CLI
# --------------------------------------------------------------------------------------------


def test_toy_scenario_fit_test_export_through_the_cli(toy_env, tmp_path, capsys):
    toy_env.main(["fit", "--config", TOY])
    ckpt = tmp_path / "runs/toy/checkpoints/last.ckpt"
    assert ckpt.is_file()
    capsys.readouterr()
    cli = toy_env.main(["test", "--config", TOY, f"--ckpt_path={ckpt}"])
    table = capsys.readouterr().out
    # the scenario's own baseline names, per-user columns and its subset appear in the table
    assert "| equal_split |" in table and "| all_to_strongest |" in table and "per user (bits)" in table
    assert "test set (weak)" in table
    m = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    for key in ("test/skr_bits_equal_split", "test/skr_bits_all_to_strongest", "test/skr_bits_user0",
                "test/skr_bits_user1", "test/skr_bits_optimum", "test/fraction_of_optimum", "test/weak/skr_bits"):
        assert key in m, key
    assert m["test/skr_bits_user0"] + m["test/skr_bits_user1"] == pytest.approx(m["test/skr_bits"], rel=1e-6)
    # the grid optimum is the ceiling of every design on the same draws
    assert m["test/fraction_of_optimum"] <= 1.0 + 1e-6
    out = tmp_path / "toy.pt2"
    toy_env.main(["export", "--config", TOY, f"--ckpt_path={ckpt}", f"--out={out}"])
    extra = {"metadata.json": ""}
    prog = torch.export.load(str(out), extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    assert meta["scenario"] == "toy_parallel_links" and meta["outputs"] == {"p": [2]}
    assert load_metadata(out) == meta
    x = torch.tensor([[-3.0, 5.0], [8.0, -8.0]])
    (p,) = prog.module()(x)
    with torch.no_grad():
        ref = cli.model.eval()(x)["p"]
    assert torch.allclose(p, ref, atol=1e-6) and torch.allclose(p.sum(-1), torch.ones(2), atol=1e-6)


def test_pkgnet_module_loads_from_its_checkpoint_alone(cli_env, tmp_path):
    cli_env.main(["fit", "--config", CASE1, "--trainer.max_epochs=1", "--trainer.logger=false",
                  "--trainer.enable_progress_bar=false", "--model.init_args.scenario.init_args.M=2",
                  "--model.init_args.scenario.init_args.L_H=2", "--model.init_args.scenario.init_args.L_V=2",
                  "--data.init_args.train_draws_per_epoch=100", "--data.init_args.val_draws=50",
                  "--data.init_args.test_draws=50"])
    ckpt = tmp_path / "runs/pkgnet/irs_case1/checkpoints/last.ckpt"
    module = PKGNetModule.load_from_checkpoint(ckpt)
    assert isinstance(module.scenario, IRSScenario) and module.scenario.M == 2 and module.net.hidden == [100, 100]
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(v, state[k]) for k, v in module.state_dict().items())


# --------------------------------------------------------------------------------------------
# device and dtype
# --------------------------------------------------------------------------------------------


def test_constant_tensors_follow_the_inputs_dtype_and_device():
    R = irs_correlation(2, 3, device="cpu", dtype=torch.float32)
    assert R.dtype == torch.float32 and R.shape == (6, 6)
    sc = IRSScenario("case1", M=2, L_H=2, L_V=2)
    ds = sc.design_space()
    for dtype in (torch.float32, torch.float64):
        x = sc.features(sc.sample(3, generator_for(0))).to(dtype)
        raw = {k: torch.randn(3, n, dtype=dtype) for k, n in ds.heads.items()}
        out = ds(raw, x)
        assert all(v.dtype == dtype for v in out.values())


def _small_scenarios():
    from physics.multiuser import MultiUserScenario
    from physics.nearfield import NearFieldScenario

    return {"irs_case2": IRSScenario("case2", M=2, L_H=2, L_V=2), "nearfield": NearFieldScenario(N=16),
            "multiuser": MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2)}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["irs_case2", "nearfield", "multiuser"])
def test_cuda_batch_gives_the_cpu_skr(name):
    """Every tensor a scenario builds follows the batch's device: a CUDA batch gives the CPU numbers."""
    sc = _small_scenarios()[name]
    batch = sc.sample(16, generator_for(3))
    for design in sc.baselines(batch, generator_for(4)).values():
        cpu = sc.skr(batch, design)
        gpu = sc.skr({k: v.cuda() for k, v in batch.items()}, {k: v.cuda() for k, v in design.items()})
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12)  # float64 on both: reduction order only
    net = PKGNet([8]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()).cuda()
    out = net(sc.features({k: v.cuda() for k, v in batch.items()}).float())
    assert all(v.device.type == "cuda" for v in out.values())


@pytest.mark.parametrize("name", ["irs_case2", "nearfield", "multiuser"])
def test_every_scenario_honours_the_contract(name):
    """describe() keys, feature shapes, the design space's outputs as described, skr shape and dtype."""
    sc = _small_scenarios()[name]
    desc = check_description(sc.describe())
    batch = sc.sample(5, generator_for(8))
    x = sc.features(batch)
    assert x.shape == (5, len(sc.feature_names)) == (5, len(desc["feature_names"]))
    low, high = sc.feature_bounds()
    assert len(low) == len(high) == x.shape[1]
    ds = sc.design_space()
    out = ds({k: torch.randn(5, n, dtype=torch.float64) for k, n in ds.heads.items()}, x)
    assert {k: list(v.shape[1:]) for k, v in out.items()} == desc["outputs"]
    skr = sc.skr(batch, out)
    assert skr.dtype == torch.float64 and skr.shape[0] == 5 and skr.ndim in (1, 2)
    assert (skr.ndim == 2) == (sc.num_users() > 1)
    for d in sc.baselines(batch, generator_for(9)).values():
        assert sc.skr(batch, d).shape == skr.shape


# --------------------------------------------------------------------------------------------
# the shared optimiser
# --------------------------------------------------------------------------------------------


def test_projected_ascent_finds_a_known_constrained_maximum():
    """max c^T x on the unit sphere is |c| at x = c/|c| (hand-checkable), for a batch of c."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(5, 3, generator=g, dtype=torch.float64)
    starts = [{"x": torch.randn(5, 3, generator=g, dtype=torch.float64)} for _ in range(3)]
    best, val = projected_ascent(lambda p: (p["x"] * c).sum(-1), lambda p: {"x": p["x"] / p["x"].norm(dim=-1,
                                 keepdim=True)}, starts, steps=300, lr=0.05)
    assert torch.allclose(val, c.norm(dim=-1), rtol=1e-6)
    assert torch.allclose(best["x"].norm(dim=-1), torch.ones(5, dtype=torch.float64))


def test_unrolled_ascent_is_the_optimisers_recursion_written_out():
    """The in-graph recursion equals torch.optim.Adam + CosineAnnealingLR through the projection (the
    per-instance optimum's code) step for step, from one start: same iterates, hence the same best one.
    Float64 and a smooth objective, so the only difference is operation order (~1e-15 per step)."""
    g = torch.Generator().manual_seed(3)
    A = torch.randn(4, 3, 3, generator=g, dtype=torch.float64)
    A = A + A.mT  # max x^T A x on the unit sphere: non-convex, several steps matter

    def objective(p):
        return torch.einsum("...i,...ij,...j->...", p["x"], A, p["x"])

    def project(p):
        return {"x": p["x"] / p["x"].norm(dim=-1, keepdim=True)}

    start = {"x": torch.randn(4, 3, generator=g, dtype=torch.float64)}
    for steps in (0, 1, 7, 40):
        ref, ref_val = projected_ascent(objective, project, [start], steps=steps, lr=0.05)
        got, val = unrolled_ascent(objective, project, start, steps=steps, lr=0.05)
        assert torch.allclose(val, ref_val, rtol=0, atol=1e-12), steps
        assert torch.allclose(got["x"], ref["x"], rtol=0, atol=1e-10), steps
    # hand-checkable end point: the top eigenvalue of A, and never below the projected start
    _, val = unrolled_ascent(objective, project, start, steps=400, lr=0.05)
    assert torch.allclose(val, torch.linalg.eigvalsh(A)[:, -1], atol=1e-6)
    assert torch.all(val >= objective(project(start)))


def test_unrolled_ascent_runs_one_step_function_under_any_loop_runner():
    """With a context the objective takes it as an argument; a runner installed by ascent_loop_runner gets the
    step function, the carried state and the context, and stepping by hand gives the Python loop's result
    exactly. The runner is removed when the block ends, also after an error."""
    g = torch.Generator().manual_seed(4)
    A = torch.randn(3, 4, 4, generator=g, dtype=torch.float64)
    A = A + A.mT
    start = {"x": torch.randn(3, 4, generator=g, dtype=torch.float64)}

    def objective(p, ctx):
        return torch.einsum("...i,...ij,...j->...", p["x"], ctx["A"], p["x"])

    def project(p):
        return {"x": p["x"] / p["x"].norm(dim=-1, keepdim=True)}

    ref, ref_val = unrolled_ascent(lambda p: objective(p, {"A": A}), project, start, steps=6, lr=0.05)
    seen = []

    def by_hand(step, state, context, steps):
        seen.append((len(state), len(context), steps))
        for _ in range(steps):
            state = step(*state, *context)
        return state

    with ascent_loop_runner(by_hand):
        got, val = unrolled_ascent(objective, project, start, steps=6, lr=0.05, context={"A": A})
    # state: step counter, parameters, both Adam moments, best iterate, best value; context: A
    assert seen == [(6, 1, 6)]
    assert torch.equal(val, ref_val) and torch.equal(got["x"], ref["x"])

    def broken(step, state, context, steps):
        raise RuntimeError("runner failed")

    with pytest.raises(RuntimeError, match="runner failed"), ascent_loop_runner(broken):
        unrolled_ascent(objective, project, start, steps=2, lr=0.05, context={"A": A})
    again, _ = unrolled_ascent(lambda p: objective(p, {"A": A}), project, start, steps=6, lr=0.05)
    assert torch.equal(again["x"], ref["x"])


@pytest.mark.parametrize("bad", [{"steps": -1}, {"steps": 2.5}, {"lr": 0.0}, {"lr": float("nan")}])
def test_unrolled_ascent_rejects_bad_settings(bad):
    kw = {"steps": 3, "lr": 0.1, **bad}
    with pytest.raises(ValueError, match="steps" if "steps" in bad else "lr"):
        unrolled_ascent(lambda p: p["x"].sum(-1), lambda p: p, {"x": torch.zeros(2, 2)}, **kw)


def test_irs_optimum_is_never_below_its_starts():
    sc = IRSScenario("case2", M=2, L_H=2, L_V=2)
    batch = sc.sample(8, generator_for(5))
    opt = sc.skr(batch, sc.optimum(batch, generator_for(6), steps=20, restarts=4))
    for name, d in sc.baselines(batch, generator_for(7)).items():
        if name != "random":  # the optimum starts from water-filling and identity, not this random draw
            assert torch.all(opt >= sc.skr(batch, d) - 1e-12), name


# --------------------------------------------------------------------------------------------
# the callback's reductions
# --------------------------------------------------------------------------------------------


def test_format_table_lists_what_the_scenario_returned():
    table = {"test/skr_bits": 2.0, "test/num_draws": 10, "test/skr_bits_foo": 1.5, "test/gain_over_foo": 0.5}
    text = format_table(table, "test", learned_name="PKGNet")
    assert "| foo | 1.5000 | +0.5000 |" in text and "| PKGNet | 2.0000 |" in text


def test_callback_rejects_bad_settings():
    with pytest.raises(ValueError, match="optimum_draws"):
        BaselineCallback(optimum_draws=-1)
    with pytest.raises(ValueError, match="optimum_options"):
        BaselineCallback(optimum_options=[1, 2])


def _metrics_csv(root: Path) -> dict[str, float]:
    files = sorted(root.rglob("metrics.csv"))
    assert files, f"no metrics.csv under {root}"
    out: dict[str, float] = {}
    with open(files[-1]) as fh:
        for row in csv.DictReader(fh):
            out.update({k: float(v) for k, v in row.items() if v not in ("", None) and k.startswith("val/")})
    return out


@pytest.mark.slow
def test_ddp_validation_means_equal_a_single_process(tmp_path):
    """2 gloo processes, 3 validation batches (uneven shares, a subset that is empty on one rank):
    every logged validation mean equals the single-process value on the same draws."""
    env = {**os.environ, "WANDB_MODE": "offline", "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    small = ["--config", CASE1, "--trainer.enable_progress_bar=false", "--model.init_args.scenario.init_args.M=2",
             "--model.init_args.scenario.init_args.L_H=2", "--model.init_args.scenario.init_args.L_V=2",
             "--data.init_args.train_draws_per_epoch=200", "--data.init_args.val_draws=250",
             "--data.init_args.eval_batch_size=100", "--trainer.callbacks+=callbacks.baselines.BaselineCallback"]
    fit = subprocess.run([sys.executable, str(REPO / "train.py"), "fit", *small, "--trainer.max_epochs=1",
                          "--trainer.logger=false"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = tmp_path / "runs/pkgnet/irs_case1/checkpoints/last.ckpt"
    results = {}
    for name, extra in (("single", ["--trainer.devices=1"]),
                        ("ddp", ["--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.accelerator=cpu"])):
        logger = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger",
                  f"--trainer.logger.save_dir={tmp_path / name}"]
        res = subprocess.run([sys.executable, str(REPO / "train.py"), "validate", *small, *extra, *logger,
                              f"--ckpt_path={ckpt}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        results[name] = _metrics_csv(tmp_path / name)
    single, ddp = results["single"], results["ddp"]
    assert single["val/num_draws"] == 250 and ddp["val/num_draws"] == 250
    assert "val/hard/skr_bits" in single and "val/skr_bits_water_filling" in single
    assert set(single) == set(ddp)
    for key, v in single.items():
        # float32 metric states and a different summation order: agree to float32 rounding
        assert ddp[key] == pytest.approx(v, rel=1e-5, abs=1e-6), key


def test_irs_physics_still_uses_the_shared_optimisers():
    assert irs.waterfill_allocation.__module__ == "physics.optim"


SCRIPTS = sorted(str(p.relative_to(REPO)) for p in [*(REPO / "benchmarks").glob("*.py"),
                                                     *(REPO / "experiments").glob("*.py")]
                 if p.name not in ("__init__.py", "cli_args.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_runs_as_a_file_from_the_installed_package(script, tmp_path):
    """``python benchmarks/x.py`` / ``python experiments/x.py`` as the README writes them: the shared
    imports (experiments.cli_args, physics, ...) come from the installed package, not from the cwd."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, str(REPO / script), "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "usage" in res.stdout.lower()


def test_checkpoint_record_mismatch_names_the_deciding_keys_first():
    """Another scenario by name is said in one short line; within one scenario the differing settings come before
    long lists (feature names), which are cut, so the keys that decide are never hidden behind them."""
    from models.checkpoints import RECORD_KEY, check_record

    names = [f"sin_aod_u{k}_p{p}" for k in range(6) for p in range(6)]
    here = {"family": "pkgnet", "net": "PKGNet", "scenario": {"scenario": "multiuser_003", "K": 6,
                                                               "feature_names": names, "shared_paths": 0}}
    other = {**here, "scenario": {**here["scenario"], "scenario": "nearfield"}}
    with pytest.raises(ValueError, match="holds a 'nearfield' model, the config builds 'multiuser_003'$"):
        check_record({RECORD_KEY: other}, here)
    shared = {**here, "scenario": {**here["scenario"], "feature_names": [*names, "rho"], "shared_paths": 2}}
    with pytest.raises(ValueError) as err:
        check_record({RECORD_KEY: shared}, here)
    msg = str(err.value)
    assert "another scenario" in msg and msg.index("'shared_paths': (2, 0)") < msg.index("'feature_names'")
    assert len(msg) < 300 and "..." in msg
