"""Golden outputs of phykey: what today's code computes, pinned before the layout refactor.

Every function here computes one group of outputs from the project's *public* API and returns plain JSON
types (floats, ints, strings, lists, dicts). ``tests/test_golden.py`` recomputes them with the code under test
and compares with ``tests/golden/golden_v1.json``, recorded from the original commit (9d24b02) with

    cd <checkout of 9d24b02> && PYTHONPATH=$PWD python <this file> --record golden_v1.json

Rules of this file (so that it runs unchanged before and after the refactor):

* Every import of the project sits inside the function that needs it. Where a module moves, the import is a
  small ``try: <new path> except ImportError: <old path>`` adapter: :func:`_scenario_base` and
  :func:`_total_skr` (``physics.scenario`` / ``physics.scenarios``), :func:`_irs_scenario_class`
  (``physics.irs`` / ``physics.scenarios``). The docs/architecture.md section 4 names keep their module paths
  (``physics.irs``, ``physics.nearfield``, ``physics.multiuser`` become packages that re-export them).
* Where the new path is not known yet, the old-path call sits in one function per output, named for what it
  holds, so it can be re-pointed later:
    - key agreement (recorded with ``keygen/agree.py``, now ``python train.py agree``):
      :func:`agreement_report_irs`, :func:`agreement_report_nearfield`, :func:`agreement_report_multiuser`,
      :func:`agreement_report_kgnet` (all through :func:`_agree`);
    - the multi-user refinement setting, a scenario argument today (``refine_steps``) and a model component to
      come: :func:`export_overrides`.
* Scenarios, modules and data modules are built by the same ``train.main`` the command line uses, from the
  configs under ``configs/`` (``--config`` plus flag overrides), never by restating their arguments here.
* Every random draw comes from an explicitly seeded ``torch.Generator`` (or the config's ``seed_everything``);
  torch runs on one intra-op thread while a golden output is computed (:func:`_one_thread`), so the numbers do
  not depend on the machine's core count.
* Arrays with more than :data:`FULL_LIMIT` numbers are stored as a summary (:func:`summary`).

The project root is the folder of the imported ``physics`` package (not this file's checkout), so recording
from another checkout reads that checkout's configs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Version of the golden file layout (the file is golden_v<N>.json).
GOLDEN_VERSION = 1
#: Fixed draws: ``scenario.sample(N_DRAWS, torch.Generator().manual_seed(SEED_DRAWS))``.
N_DRAWS = 8
SEED_DRAWS = 1234
#: Generator of ``scenario.baselines`` (the random baselines draw from it).
SEED_BASELINES = 1235
#: Generator of ``scenario.optimum`` (its random restarts draw from it).
SEED_OPTIMUM = 1236
#: Draws the per-instance optimum runs on: ``batch[:N_OPTIMUM]``.
N_OPTIMUM = 2
#: Arrays up to this many numbers are stored whole; larger ones as a summary.
FULL_LIMIT = 64
#: Leading entries kept in a summary.
SUMMARY_HEAD = 16

#: Every config under configs/pkgnet/ (the SKR of every scenario and baseline).
PKGNET_CONFIGS = ("irs_case1", "irs_case2", "irs_conference", "multiuser", "multiuser_shared", "nearfield")

#: Options of ``scenario.optimum`` per config: the ``optimum_options`` of each config's BaselineCallback
#: (configs/pkgnet/*.yaml), so the optimum is the one training reports. Near-field: a closed form, no options.
OPTIMUM_OPTIONS: dict[str, dict[str, Any]] = {
    "irs_case1": {"steps": 100, "restarts": 4},
    "irs_case2": {"steps": 100, "restarts": 4},
    "nearfield": {},
    "multiuser": {"steps": 100, "restarts": 4, "lr": 0.02},
}

#: Short fits through ``train.main(["fit", ...])``: flags added to the config (1 epoch, few draws, CPU, no
#: logger, checkpoints into a throw-away working directory).
FIT_COMMON = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
              "--trainer.max_epochs=1", "--trainer.accelerator=cpu", "--trainer.devices=1"]
FIT_OVERRIDES: dict[str, list[str]] = {
    # 2 training steps of 100 draws, 50 validation draws (the optimum callback runs on all 50)
    "irs_case1": ["--data.init_args.train_draws_per_epoch=200", "--data.init_args.batch_size=100",
                  "--data.init_args.val_draws=50", "--data.init_args.test_draws=50",
                  "--data.init_args.eval_batch_size=50"],
    # 2 training steps of 10 draws, 6 validation draws (each refined in evaluation; optimum on all 6)
    "multiuser": ["--data.init_args.train_draws_per_epoch=20", "--data.init_args.batch_size=10",
                  "--data.init_args.val_draws=6", "--data.init_args.test_draws=6",
                  "--data.init_args.eval_batch_size=6"],
}

#: Key agreement: probes / calibration probes per system, one fixed seed.
AGREE_SEED = 7
AGREE_SETTINGS: dict[str, dict[str, Any]] = {
    "irs": {"probes": 2000, "calibration_probes": 2000, "seed": AGREE_SEED, "nist": True},
    "nearfield": {"probes": 2000, "calibration_probes": 4000, "seed": AGREE_SEED, "nist": True},
    "multiuser": {"probes": 1500, "calibration_probes": 1500, "seed": AGREE_SEED, "nist": True},
    # the test split of KGNET_USERS synthetic users has 400 users (one probe each), the validation split 160
    "kgnet": {"probes": 400, "calibration_probes": 160, "seed": AGREE_SEED, "nist": True},
}
#: Fields of an agreement report that are wall-clock times (dropped, at any depth).
TIMING_FIELDS = ("time_s", "time_per_frame_s")

#: KGNet recipe: configs/kgnet/kgnet.yaml on a synthetic file of KGNET_USERS users (generated by the data module,
#: its seed 0), trained KGNET_EPOCHS epochs (an untrained KGNet maps so badly that Cascade refuses the
#: disagreement, and the no-mapping baseline too: ~0.4-0.5 KDR), CSV logger (the config's LearningRateMonitor
#: needs one; W&B stays out).
KGNET_USERS = 2000
KGNET_EPOCHS = 8

#: Exported PKG-Nets (and a KGNet): the module as ``train.main`` builds it from the config (its
#: ``seed_everything`` seeds the initial weights), exported through ``models.export.export_module``, loaded with
#: ``torch.export.load`` and run on the float32 features of the fixed draws.
EXPORT_CONFIGS = ("irs_case1", "nearfield", "multiuser")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def repo_root() -> Path:
    """The checkout whose code is imported (the parent of the ``physics`` package)."""
    import physics

    return Path(physics.__file__).resolve().parents[1]


def config_path(family: str, name: str) -> str:
    return str(repo_root() / "configs" / family / f"{name}.yaml")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One torch intra-op thread (results independent of the core count), restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _deterministic_state_kept() -> Iterator[None]:
    """Restore ``torch.use_deterministic_algorithms`` after a fit (the configs' ``deterministic: true`` sets it)."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@contextlib.contextmanager
def _scratch_dir() -> Iterator[Path]:
    """A throw-away working directory (configs write runs/ relative to it), HOME and W&B kept inside/offline."""
    old_cwd = os.getcwd()
    old_env = {k: os.environ.get(k) for k in ("HOME", "WANDB_MODE", "WANDB_SILENT")}
    with tempfile.TemporaryDirectory(prefix="phykey-golden-") as d:
        os.chdir(d)
        os.environ.update({"HOME": d, "WANDB_MODE": "offline", "WANDB_SILENT": "true"})
        try:
            yield Path(d)
        finally:
            os.chdir(old_cwd)
            for k, v in old_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _quiet_main(args: list[str], run: bool = True):
    """``train.main(args, run)`` with Lightning's and the tables' chatter kept off the terminal."""
    import io
    import logging
    import warnings

    import train

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return train.main(args, run=run)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def build_cli(config: str, overrides: list[str] | None = None):
    """The LightningCLI of ``config`` with classes instantiated and nothing run (``train.main(..., run=False)``):
    model, data module and trainer exactly as ``fit`` would build them (``seed_everything`` applied)."""
    return _quiet_main(["--config", config, "--trainer.logger=false", *(overrides or [])], run=False)


def _float_list(t) -> list:
    """Nested list of Python floats (float64 values of any real tensor)."""
    import torch

    return torch.as_tensor(t).detach().cpu().to(torch.float64).tolist()


def summary(t) -> dict[str, Any]:
    """A real array as JSON: ``{"shape", "values"}`` when it has <= FULL_LIMIT numbers, else ``{"shape", "sum",
    "sum_abs", "sum_sq", "weighted_sum", "head"}`` in float64: sum, sum of |x|, sum of squares, a sum weighted by
    the fixed pattern w_i = ((7919 i) mod 1009) / 1009 (catches permutations), and the first SUMMARY_HEAD entries
    of the row-major flattening. Complex arrays are stored as their real view (real, imaginary last)."""
    import torch

    t = torch.as_tensor(t).detach().cpu()
    if t.is_complex():
        t = torch.view_as_real(t.resolve_conj().contiguous())
    x = t.to(torch.float64).reshape(-1)
    out: dict[str, Any] = {"shape": list(t.shape)}
    if x.numel() <= FULL_LIMIT:
        out["values"] = _float_list(t)
        return out
    w = (torch.arange(x.numel(), dtype=torch.float64) * 7919 % 1009) / 1009
    out.update(sum=float(x.sum()), sum_abs=float(x.abs().sum()), sum_sq=float((x * x).sum()),
               weighted_sum=float((w * x).sum()), head=x[:SUMMARY_HEAD].tolist())
    return out


def _fixed_draws(scenario, n: int = N_DRAWS):
    import torch

    return scenario.sample(n, torch.Generator().manual_seed(SEED_DRAWS))


def _scenario_base():
    """The scenario contract's base class: ``physics.scenario`` (new) or ``physics.scenarios`` (old)."""
    from physics.scenario import Scenario
    return Scenario


def _total_skr():
    """``total_skr`` (per-user rates summed): ``physics.scenario`` (new) or ``physics.scenarios`` (old)."""
    from physics.scenario import total_skr
    return total_skr


def _irs_scenario_class():
    """``IRSScenario``: ``physics.irs`` (new package) or ``physics.scenarios`` (old)."""
    from physics.irs import IRSScenario
    return IRSScenario


def pkgnet_scenario(name: str):
    """The scenario of ``configs/pkgnet/<name>.yaml``, built as ``train.py`` builds it (the model's scenario)."""
    with _scratch_dir():
        cli = build_cli(config_path("pkgnet", name))
    scenario = cli.model.scenario
    base = _scenario_base()
    if not isinstance(scenario, base):
        raise TypeError(f"{name}: the model's scenario {type(scenario).__name__} is not a {base.__module__}.Scenario")
    if name.startswith("irs_") and not isinstance(scenario, _irs_scenario_class()):
        raise TypeError(f"{name}: the model's scenario {type(scenario).__name__} is not the IRSScenario")
    return scenario


# ---------------------------------------------------------------------------------------------
# 1. SKR of every scenario and baseline on fixed draws, and the features
# ---------------------------------------------------------------------------------------------


def scenario_skr(name: str) -> dict[str, Any]:
    """Config ``name``: features of the fixed draws and ``scenario.skr`` (float64) of every baseline design
    ``scenario.baselines(batch, torch.Generator().manual_seed(SEED_BASELINES))``."""
    import torch

    with _one_thread():
        sc = pkgnet_scenario(name)
        batch = _fixed_draws(sc)
        feats = sc.features(batch)
        designs = sc.baselines(batch, torch.Generator().manual_seed(SEED_BASELINES))
        skr = {k: sc.skr(batch, d).detach() for k, d in designs.items()}
    for k, v in skr.items():
        if v.dtype != torch.float64:
            raise TypeError(f"{name}: skr of {k} is {v.dtype}, not float64")
    return {"features": summary(feats), "features_dtype": str(feats.dtype).replace("torch.", ""),
            "baseline_names": sorted(designs), "skr_bits": {k: summary(v) for k, v in sorted(skr.items())}}


# ---------------------------------------------------------------------------------------------
# 2. docs/architecture.md section 4 public functions on small fixed inputs
# ---------------------------------------------------------------------------------------------


def _irs_inputs():
    """Small fixed IRS statistics (3 draws, M = 3, L = 4; physical magnitudes: gains ~1e-9..1e-6, noise 1e-12 W),
    a random precoder at P_max = 0.1 W and random unit-modulus phases."""
    import torch

    from physics.irs import IRSStats

    g = torch.Generator().manual_seed(101)
    M, L = 3, 4

    def expo(eta, n):
        i = torch.arange(n, dtype=torch.float64)
        return torch.as_tensor(eta, dtype=torch.float64)[:, None, None] ** (i[:, None] - i[None, :]).abs()

    eta_b, eta_i = [0.2, 0.5, 0.9], [0.3, 0.6, 0.1]
    stats = IRSStats(
        R_B=expo(eta_b, M), R_I=expo(eta_i, L),
        beta_h=torch.tensor([2e-9, 5e-10, 1e-9], dtype=torch.float64),
        beta_G=torch.tensor([1e-6, 3e-7, 8e-7], dtype=torch.float64),
        beta_f=torch.tensor([4e-7, 1e-6, 2e-7], dtype=torch.float64),
        kappa=torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64),
        P_b=torch.tensor([0.01, 0.01, 0.02], dtype=torch.float64),
        noise_power=torch.tensor([1e-12, 1e-12, 2e-12], dtype=torch.float64),
        beta_h_eve=torch.tensor([1e-9, 2e-9, 5e-10], dtype=torch.float64),
        beta_f_eve=torch.tensor([3e-7, 5e-7, 1e-6], dtype=torch.float64),
        rho=torch.tensor([0.1, 0.5, 0.95], dtype=torch.float64),
    )
    P_max = torch.tensor([0.1, 0.1, 0.05], dtype=torch.float64)
    P = torch.randn(3, M, M, generator=g, dtype=torch.complex128)
    P = P * torch.sqrt(P_max / (P.abs() ** 2).sum((-1, -2)))[:, None, None]
    phase = 2 * math.pi * torch.rand(3, L, generator=g, dtype=torch.float64)
    theta = torch.polar(torch.ones_like(phase), phase)
    return stats, P_max, P, theta


def physics_api_irs() -> dict[str, Any]:
    """``physics.irs.skr_case1 / skr_case2 / water_filling`` (docs/architecture.md section 4) on :func:`_irs_inputs`.
    Water-filling precoders are stored as P P^H (invariant to the eigenvectors' phases) and by their SKR with
    equal IRS phases."""
    import torch

    from physics.irs import skr_case1, skr_case2, water_filling

    with _one_thread():
        stats, P_max, P, theta = _irs_inputs()
        ones = torch.ones(3, stats.R_I.shape[-1], dtype=torch.complex128)
        out: dict[str, Any] = {"skr_case1": summary(skr_case1(P, theta, stats)),
                               "skr_case2": summary(skr_case2(P, theta, stats))}
        for case in (1, 2):
            Pw = water_filling(stats, P_max, case=case)
            out[f"water_filling_case{case}_PPH"] = summary(Pw @ Pw.mH)
            out[f"water_filling_case{case}_skr_case1"] = summary(skr_case1(Pw, ones, stats))
            out[f"water_filling_case{case}_skr_case2"] = summary(skr_case2(Pw, ones, stats))
    return out


def physics_api_nearfield() -> dict[str, Any]:
    """``physics.nearfield.near_field_channel / skr / dinkelbach_power_split / optimal_design`` on 3 fixed
    Bob/Eve positions (N = 8, 30 GHz, P_a = 1 W, noise -105 dBm)."""
    import torch

    from physics.nearfield import dinkelbach_power_split, near_field_channel, optimal_design, skr

    with _one_thread():
        N, fc = 8, 30e9
        f = near_field_channel(N, torch.tensor([3.0, 5.0, 8.0], dtype=torch.float64),
                               torch.tensor([-0.3, 0.1, 0.7], dtype=torch.float64), fc)
        h = near_field_channel(N, torch.tensor([4.0, 5.2, 8.0], dtype=torch.float64),
                               torch.tensor([0.2, 0.1, 0.69], dtype=torch.float64), fc)
        P_a = torch.tensor([1.0, 1.0, 0.01], dtype=torch.float64)
        sigma2 = 10 ** ((-105.0 - 30.0) / 10)
        na = nb = ne = sigma2
        P_S = dinkelbach_power_split(f, h, P_a, na, nb, ne)
        W_opt = optimal_design(f, h, P_a, ne)
        g = torch.Generator().manual_seed(202)
        X = torch.randn(3, N, 3, generator=g, dtype=torch.complex128)
        W_rand = X @ X.mH
        W_rand = W_rand * (P_a / W_rand.diagonal(dim1=-2, dim2=-1).real.sum(-1))[:, None, None]
        W_mrc = P_a[:, None, None] * (f[:, :, None] @ f[:, None, :].conj()) / (f.abs() ** 2).sum(-1)[:, None, None]
        out = {
            "f": summary(f), "h": summary(h),
            "dinkelbach_P_S": summary(P_S),
            "optimal_design_W": summary(W_opt),
            "skr_optimal_design": summary(skr(W_opt, f, h, na, nb, ne)),
            "skr_random_psd": summary(skr(W_rand, f, h, na, nb, ne)),
            "skr_mrc": summary(skr(W_mrc, f, h, na, nb, ne)),
        }
    return out


def physics_api_multiuser() -> dict[str, Any]:
    """``physics.multiuser.skr_orthogonal_pilots / optimal_rate / leakage_ratio / skr_pilot_reuse`` on small
    fixed inputs: 2 draws, K = 2 UTs, M = 4, N_k = 2 (M N_k = 8), random Hermitian PD Lambda (~10 dB),
    semi-unitary designs from QR of fixed Gaussian matrices."""
    import torch

    from physics.multiuser import leakage_ratio, optimal_rate, skr_orthogonal_pilots, skr_pilot_reuse

    with _one_thread():
        g = torch.Generator().manual_seed(303)
        B, K, M, N_k, M_e, N_e, n = 2, 2, 4, 2, 2, 1, 3
        D = M * N_k
        X = torch.randn(B, K, D, 4, generator=g, dtype=torch.complex128)
        Lam = 10.0 * (X @ X.mH) / 4 + 0.01 * torch.eye(D, dtype=torch.complex128)
        Lam = 0.5 * (Lam + Lam.mH)
        U = torch.linalg.qr(torch.randn(B, D, n, generator=g, dtype=torch.complex128)).Q
        P = torch.linalg.qr(torch.randn(B, K, M, M_e, generator=g, dtype=torch.complex128)).Q
        C = torch.linalg.qr(torch.randn(B, K, N_k, N_e, generator=g, dtype=torch.complex128)).Q
        rho = torch.tensor([0.0, 0.3, 0.7, 1.0, -0.5], dtype=torch.float64)[:, None]
        s = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
        out = {
            "skr_orthogonal_pilots": summary(skr_orthogonal_pilots(U, Lam[:, 0])),
            "optimal_rate_n3": summary(optimal_rate(Lam, n)),
            "optimal_rate_n8": summary(optimal_rate(Lam, D)),
            "leakage_ratio": summary(leakage_ratio(rho, s)),
            "skr_pilot_reuse": summary(skr_pilot_reuse(P, C, Lam)),
        }
    return out


# ---------------------------------------------------------------------------------------------
# 3. the per-instance optimum
# ---------------------------------------------------------------------------------------------


def optimum_skr(name: str) -> dict[str, Any]:
    """``scenario.optimum(batch[:2], torch.Generator().manual_seed(SEED_OPTIMUM), **OPTIMUM_OPTIONS[name])`` and
    its SKR per draw (``[2]``, or ``[2, K]`` per user), float64."""
    import torch

    opts = OPTIMUM_OPTIONS[name]
    with _one_thread():
        sc = pkgnet_scenario(name)
        batch = {k: v[:N_OPTIMUM] for k, v in _fixed_draws(sc).items()}
        design = sc.optimum(batch, torch.Generator().manual_seed(SEED_OPTIMUM), **opts)
        skr = sc.skr(batch, design).detach()
    return {"options": opts, "skr_bits": summary(skr), "total_skr_bits": summary(_total_skr()(skr))}


# ---------------------------------------------------------------------------------------------
# 4. a short fit's validation metrics
# ---------------------------------------------------------------------------------------------


def fit_args(name: str) -> list[str]:
    return ["fit", "--config", config_path("pkgnet", name), *FIT_COMMON, *FIT_OVERRIDES[name]]


def fit_metrics(name: str) -> dict[str, Any]:
    """``train.main(fit_args(name))`` (the command line's entry point) in a scratch directory; every scalar of
    ``trainer.callback_metrics`` as a float, and the steps/epochs run."""
    with _one_thread(), _deterministic_state_kept(), _scratch_dir():
        cli = _quiet_main(fit_args(name))
        trainer = cli.trainer
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items())
                   if getattr(v, "numel", lambda: 1)() == 1}
    return {"args": fit_args(name)[3:], "global_step": int(trainer.global_step),
            "current_epoch": int(trainer.current_epoch), "metrics": metrics}


# ---------------------------------------------------------------------------------------------
# 5. key agreement reports (recorded with keygen/agree.py; computed with `train.py agree`)
# ---------------------------------------------------------------------------------------------


def _clean_report(obj, scratch: str | None = None):
    """The JSON report as ``--json`` writes it (``json.dumps(default=float)``), without wall-clock fields, with the
    scratch directory's path replaced by ``<scratch>``."""
    def walk(o):
        if isinstance(o, dict):
            return {k: walk(v) for k, v in o.items() if k not in TIMING_FIELDS}
        if isinstance(o, list):
            return [walk(v) for v in o]
        if isinstance(o, str) and scratch and scratch in o:
            return o.replace(scratch, "<scratch>")
        return o

    return walk(json.loads(json.dumps(obj, default=float)))


def _agree(config: str, settings: dict[str, Any], *flags: str) -> dict[str, Any]:
    """``python train.py agree --config <config> ...`` through ``train.main`` (the command line's entry point), its
    ``--json`` report read back. The reports were recorded with ``keygen.agree`` before key agreement moved to the
    top floor; ``flags`` state the old command's defaults where a config's differ."""
    with _scratch_dir() as scratch:
        out = scratch / "report.json"
        args = ["agree", "--config", config, "--probes", str(settings["probes"]),
                "--calibration_probes", str(settings["calibration_probes"]), "--seed", str(settings["seed"]),
                "--progress", "false", "--json", str(out), *flags]
        _quiet_main(args)
        return json.loads(out.read_text())


def agreement_report_irs() -> dict[str, Any]:
    """IRS system with the 001 case 2 bound (``irs_case2.yaml``), design ``water_filling``."""
    with _one_thread():
        return _clean_report(_agree(config_path("pkgnet", "irs_case2"), AGREE_SETTINGS["irs"],
                                    "--design", "water_filling"))


def agreement_report_nearfield() -> dict[str, Any]:
    """Near-field system at 004 Fig. 3's point (``nearfield.yaml``), design ``optimal_beam``."""
    with _one_thread():
        return _clean_report(_agree(config_path("pkgnet", "nearfield"), AGREE_SETTINGS["nearfield"],
                                    "--design", "optimal_beam"))


def agreement_report_multiuser() -> dict[str, Any]:
    """Multi-user system (``multiuser.yaml``: M = 128, K = 6), design ``beam_selection``, all UTs, at the old
    command's 20 dB point (the scenario's ``point()`` default is 10 dB)."""
    with _one_thread():
        return _clean_report(_agree(config_path("pkgnet", "multiuser"), AGREE_SETTINGS["multiuser"],
                                    "--design", "beam_selection", "--point", '{"snr_db": 20}'))


def kgnet_fit_args(scratch: Path) -> list[str]:
    """The KGNet recipe: configs/kgnet/kgnet.yaml, data generated into ``scratch`` (KGNET_USERS users, seed 0 of
    the config), KGNET_EPOCHS epochs, CSV logger in ``scratch``."""
    return ["fit", "--config", config_path("kgnet", "kgnet"),
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            f"--trainer.logger.init_args.save_dir={scratch}/csv",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            f"--trainer.max_epochs={KGNET_EPOCHS}", f"--data.init_args.h5_path={scratch}/room.h5",
            f"--data.init_args.synthetic_users={KGNET_USERS}"]


def agreement_report_kgnet() -> dict[str, Any]:
    """KGNet system on a synthetic file, with a KGNet trained by :func:`kgnet_fit_args` (through ``train.main``).
    Also returns that fit's validation metrics."""
    with _one_thread(), _deterministic_state_kept(), _scratch_dir() as scratch:
        cli = _quiet_main(kgnet_fit_args(scratch))
        metrics = {k: float(v) for k, v in sorted(cli.trainer.callback_metrics.items())
                   if getattr(v, "numel", lambda: 1)() == 1}
        ckpt = cli.trainer.checkpoint_callback.last_model_path
        ckpt = str(Path(ckpt).resolve())  # _agree runs in a scratch folder of its own
        report = _agree(config_path("kgnet", "kgnet"), AGREE_SETTINGS["kgnet"], "--ckpt_path", ckpt,
                        f"--data.init_args.h5_path={scratch}/room.h5",
                        f"--data.init_args.synthetic_users={KGNET_USERS}")
        report = _clean_report(report, str(scratch))
    return {"fit_metrics": metrics, "report": report}


# ---------------------------------------------------------------------------------------------
# 6. exported .pt2 outputs
# ---------------------------------------------------------------------------------------------


def export_overrides(name: str) -> list[str]:
    """CLI flags that make an export quick: 2 multi-user refinement steps (recorded when they were the scenario's
    ``refine_steps``; now the model's refinement component, the same steps)."""
    if name == "multiuser":
        return ["--model.init_args.refinement.init_args.steps=2"]
    return []


def _param_checksum(module) -> dict[str, Any]:
    """Count, sum and sum of squares of the trainable parameters (float64): tells a changed initialisation from a
    changed graph when an export's outputs differ."""
    import torch

    ps = [p.detach().to(torch.float64).reshape(-1) for p in module.parameters()]
    x = torch.cat(ps) if ps else torch.zeros(0, dtype=torch.float64)
    return {"numel": int(x.numel()), "sum": float(x.sum()), "sum_sq": float((x * x).sum())}


def _run_program(path: Path, x):
    import torch

    extra = {"metadata.json": ""}
    program = torch.export.load(str(path), extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    with torch.no_grad():
        outs = program.module()(x)
    if isinstance(outs, torch.Tensor):
        outs = (outs,)
    return meta, outs


def export_outputs(name: str) -> dict[str, Any]:
    """PKG-Net of ``configs/pkgnet/<name>.yaml`` (+ :func:`export_overrides`) as ``train.main`` builds it (initial
    weights from the config's ``seed_everything``), exported by ``models.export.export_module``, loaded with
    ``torch.export.load`` and run on the float32 features of the fixed draws. Also the eager net's outputs on the
    same input (the export must match it) and a parameter checksum."""
    import torch

    from models.export import export_module

    with _one_thread(), _scratch_dir() as scratch:
        cli = build_cli(config_path("pkgnet", name), export_overrides(name))
        module = cli.model.eval()
        sc = module.scenario
        x = sc.features(_fixed_draws(sc)).to(torch.float32)
        path = scratch / f"{name}.pt2"
        export_module(module, {}, path)
        meta, outs = _run_program(path, x)
        with torch.no_grad():
            eager = module(x)
    names = list(meta["outputs_order"])
    return {"outputs_order": names, "input_feature_names": list(meta["input"]["feature_names"]),
            "params": _param_checksum(module),
            "outputs": {k: summary(v) for k, v in zip(names, outs, strict=True)},
            "eager_outputs": {k: summary(eager[k]) for k in names}}


def export_outputs_kgnet() -> dict[str, Any]:
    """KGNet of configs/kgnet/kgnet.yaml as ``train.main`` builds it (initial weights from the config's
    ``seed_everything``, untrained), with the training-split normaliser of the KGNET_USERS-user synthetic file
    (data module ``setup``), exported by ``models.export.export_module``; run on the raw Band-1 CFR of the first
    N_DRAWS test users, ``[n, K, 2]`` float32."""
    import torch

    from models.export import export_module

    with _one_thread(), _scratch_dir() as scratch:
        cli = build_cli(config_path("kgnet", "kgnet"), [f"--data.init_args.h5_path={scratch}/room.h5",
                                                        f"--data.init_args.synthetic_users={KGNET_USERS}"])
        module, dm = cli.model.eval(), cli.datamodule
        dm.prepare_data()
        dm.setup("fit")
        h1 = torch.view_as_real(dm.test_cfr_band1[:N_DRAWS].contiguous()).to(torch.float32)
        path = scratch / "kgnet.pt2"
        export_module(module, {type(dm).__name__: dm.state_dict()}, path)
        meta, outs = _run_program(path, h1)
    return {"input": summary(h1), "params": _param_checksum(module), "outputs": {"h2": summary(outs[0])},
            "num_subcarriers": int(meta["num_subcarriers"])}


# ---------------------------------------------------------------------------------------------
# everything
# ---------------------------------------------------------------------------------------------


def _env() -> dict[str, Any]:
    import platform

    import numpy
    import torch

    try:
        import lightning

        lv = lightning.__version__
    except ImportError:  # pragma: no cover
        lv = None
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "lightning": lv, "machine": platform.machine()}


#: name -> zero-argument callable; the golden file's top-level keys.
def computations() -> dict[str, Any]:
    from functools import partial

    comps: dict[str, Any] = {}
    for name in PKGNET_CONFIGS:
        comps[f"scenario_skr/{name}"] = partial(scenario_skr, name)
    comps["physics_api/irs"] = physics_api_irs
    comps["physics_api/nearfield"] = physics_api_nearfield
    comps["physics_api/multiuser"] = physics_api_multiuser
    for name in OPTIMUM_OPTIONS:
        comps[f"optimum/{name}"] = partial(optimum_skr, name)
    for name in FIT_OVERRIDES:
        comps[f"fit/{name}"] = partial(fit_metrics, name)
    comps["agree/irs"] = agreement_report_irs
    comps["agree/nearfield"] = agreement_report_nearfield
    comps["agree/multiuser"] = agreement_report_multiuser
    comps["agree/kgnet"] = agreement_report_kgnet
    for name in EXPORT_CONFIGS:
        comps[f"export/{name}"] = partial(export_outputs, name)
    comps["export/kgnet"] = export_outputs_kgnet
    return comps


def record(only: list[str] | None = None) -> dict[str, Any]:
    import subprocess
    import time

    root = repo_root()
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    out: dict[str, Any] = {"_meta": {"golden_version": GOLDEN_VERSION, "commit": commit, "env": _env(),
                                     "n_draws": N_DRAWS, "seed_draws": SEED_DRAWS, "seed_baselines": SEED_BASELINES,
                                     "seed_optimum": SEED_OPTIMUM, "n_optimum": N_OPTIMUM,
                                     "timing_fields_dropped": list(TIMING_FIELDS)}}
    for key, fn in computations().items():
        if only and not any(key.startswith(o) for o in only):
            continue
        t0 = time.perf_counter()
        out[key] = fn()
        print(f"{key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", metavar="OUT.json", required=True, help="write every golden output to this file")
    p.add_argument("--only", nargs="*", default=None, help="key prefixes to compute (default: all)")
    args = p.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    data = record(args.only)
    Path(args.record).write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.record} ({Path(args.record).stat().st_size} bytes) from {repo_root()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
