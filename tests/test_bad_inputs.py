"""Every bad input is one clear error and nothing is lost (issue 12).

Each command-line case asserts the exit status 2, exactly one ``error:`` line on stderr that names the
offending value, and that no existing file changed (and no checkpoint or artefact appeared). Python
API cases assert the ValueError names the value. Runs in-process (``train.main``,
``channeldata.cli.main``, the scripts' ``main(argv)``) except where an exit status of a real process
or a signal is the point.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CASE1 = str(REPO / "configs" / "pkgnet" / "irs_case1.yaml")
CASE2 = str(REPO / "configs" / "pkgnet" / "irs_case2.yaml")
KGNET = str(REPO / "configs" / "kgnet" / "kgnet.yaml")
FNN = str(REPO / "configs" / "kgnet" / "fnn.yaml")

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false"]
PKG = ["--config", CASE1, *QUIET, "--model.init_args.scenario.init_args.M=2",
       "--model.init_args.scenario.init_args.L_H=2", "--model.init_args.scenario.init_args.L_V=2",
       "--data.init_args.train_draws_per_epoch=100", "--data.init_args.val_draws=50",
       "--data.init_args.test_draws=50", "--data.init_args.eval_batch_size=50"]
KG_NET = ["--model.init_args.net.init_args.hidden=[16, 16]"]


CSV_LOGGER = REPO / "tests" / "csv_logger.yaml"  # KGNet's LearningRateMonitor needs a logger; W&B stays out


def kg_args(config: str, h5: Path) -> list[str]:
    return ["--config", config, "--config", str(CSV_LOGGER), *QUIET[:2], f"--data.init_args.h5_path={h5}",
            "--data.init_args.synthetic_users=300"]


# --------------------------------------------------------------------------------------------
# fixtures: one folder with a trained PKG-Net and KGNet checkpoint, shared by the module
# --------------------------------------------------------------------------------------------


class Evil:
    """Unpickling this creates a file: proof that a checkpoint is never unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("HOME", str(root))
        mp.setenv("WANDB_MODE", "disabled")
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("PHYKEY_DEBUG", raising=False)
        sys.path.insert(0, str(REPO))
        import train

        train.main(["fit", *PKG, "--trainer.max_epochs=1"])
        h5 = root / "kg.h5"
        train.main(["fit", *kg_args(KGNET, h5), *KG_NET, "--trainer.max_epochs=1"])
        (root / "keep").mkdir()
        (root / "keep" / "model.pt2").write_bytes(b"precious")
        (root / "keep" / "preds.pt").write_bytes(b"precious too")
        (root / "empty.ckpt").write_bytes(b"")
        (root / "random.ckpt").write_bytes(os.urandom(4096))
        (root / "text.ckpt").write_text("not a checkpoint\n")
        torch.save({"state_dict": {}, "evil": Evil(str(root / "PWNED"))}, root / "evil.ckpt")
        torch.save({"state_dict": {"w": torch.zeros(2)}}, root / "norecord.ckpt")
        (root / "truncated.ckpt").write_bytes((root / "runs/pkgnet/irs_case1/checkpoints/last.ckpt").read_bytes()[:500])
        (root / "notes.h5").write_text("not hdf5")
        (root / "a_dir.h5").mkdir()
        yield {"root": root, "train": train, "h5": h5,
               "pkg_ckpt": root / "runs/pkgnet/irs_case1/checkpoints/last.ckpt",
               "kg_ckpt": root / "runs/kgnet/kgnet/checkpoints/last.ckpt"}
        sys.path.remove(str(REPO))
        import wandb

        wandb.finish()


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and "wandb" not in p.parts}


def expect_error(capsys, root: Path, fn, *needles: str, code: int = 2) -> str:
    """Run ``fn``; it must exit with ``code`` after one ``error:`` line naming every needle; no file changed."""
    capsys.readouterr()
    before = snapshot(root)
    with pytest.raises(SystemExit) as err:
        rc = fn()
        if isinstance(rc, int):  # a main() that returns its status
            raise SystemExit(rc)
    assert err.value.code == code, err.value.code
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    after = snapshot(root)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, changed
    new = [k for k in set(after) - set(before) if k.endswith((".ckpt", ".pt2", ".onnx", ".h5", ".pt"))]
    assert not new, new
    assert not (root / "PWNED").exists()
    return errors[0]


# --------------------------------------------------------------------------------------------
# train.py: bad flags, YAML keys and values (fit)
# --------------------------------------------------------------------------------------------

FIT_CASES = [
    ("--model.init_args.scenario.init_args.M=0", ["M", "0"]),
    ("--model.init_args.scenario.init_args.M=2.5", ["M", "2.5"]),
    ("--model.init_args.scenario.init_args.Mx=3", ["Mx"]),
    ("--data.init_args.batch_size=abc", ["batch_size", "abc"]),
    ("--model.init_args.scenario.init_args.hard_eta=.nan", ["hard_eta", "nan"]),
    ("--model.init_args.scenario.init_args.P_b_dbm=.nan", ["P_b_dbm", "nan"]),
    ("--model.init_args.scenario.init_args.carrier_hz=1e-300", ["carrier_hz", "1e-300"]),
    ("--model.init_args.scenario.init_args.P_max_dbm_range=[30, 10]", ["P_max_dbm_range"]),
    ("--model.init_args.scenario.init_args.eta_range=[0, 1.0]", ["eta_range"]),
    ("--model.init_args.scenario.init_args.setting=case9", ["case9"]),
    ("--data.init_args.train_draws_per_epoch=0", ["train_draws_per_epoch", "0"]),
    ("--data.init_args.train_draws_per_epoch=-5", ["train_draws_per_epoch", "-5"]),
    ("--trainer.max_epochs=-5", ["max_epochs", "-5"]),
    ("--model.init_args.net.class_path=nowhere.Net", ["nowhere"]),
    ("--model.init_args.optimizer.init_args.lr=fast", ["lr", "fast"]),
    ("--bogus=1", ["--bogus"]),
    ("--config=missing.yaml", ["missing.yaml"]),
    ("--config=keep", ["keep"]),
]


@pytest.mark.parametrize(("override", "needles"), FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_bad_values_are_one_line(env, capsys, override, needles):
    expect_error(capsys, env["root"], lambda: env["train"].main(["fit", *PKG, override]), *needles)


MULTIUSER = str(REPO / "configs" / "pkgnet" / "multiuser.yaml")
MU_CASES = [
    ("--model.init_args.refinement.init_args.steps=-2", ["ProjectedAscentRefinement steps", "-2"]),
    ("--model.init_args.refinement.init_args.steps=2.5", ["refinement.init_args.steps", "2.5"]),
    ("--model.init_args.refinement.init_args.lr=.nan", ["ProjectedAscentRefinement lr", "nan"]),
    ("--model.init_args.refinement.init_args.lr=0", ["ProjectedAscentRefinement lr", "0"]),
    ("--model.init_args.scenario.init_args.receive_start=eigen", ["receive_start", "eigen"]),
]


@pytest.mark.parametrize(("override", "needles"), MU_CASES, ids=[c[0] for c in MU_CASES])
def test_multiuser_bad_values_are_one_line(env, capsys, override, needles):
    expect_error(capsys, env["root"], lambda: env["train"].main(["fit", "--config", MULTIUSER, *QUIET, override]),
                 *needles)


def test_no_subcommand_is_one_line(env, capsys):
    expect_error(capsys, env["root"], lambda: env["train"].main([]), "subcommand")


def test_unknown_yaml_key_is_one_line(env, capsys):
    bad = env["root"] / "bad_key.yaml"
    bad.write_text(Path(CASE1).read_text().replace("    train_draws_per_epoch: 1000",
                                                  "    train_draws_per_epoch: 1000\n    trian_draws: 5"))
    expect_error(capsys, env["root"], lambda: env["train"].main(["fit", "--config", str(bad), *QUIET]), "trian_draws")


def test_broken_yaml_is_one_line(env, capsys):
    bad = env["root"] / "broken.yaml"
    bad.write_text("trainer: [unclosed\n  max_epochs: 1\n")
    expect_error(capsys, env["root"], lambda: env["train"].main(["fit", "--config", str(bad)]), "broken.yaml")


# --------------------------------------------------------------------------------------------
# train.py: checkpoints
# --------------------------------------------------------------------------------------------

NEEDS_CKPT = ["test", "validate", "predict", "export"]


def _extra(sub: str, root: Path) -> list[str]:
    if sub == "export":
        return [f"--out={root / 'new_model.pt2'}"]
    if sub == "predict":
        return [f"--out={root / 'new_preds.pt'}"]
    return []


@pytest.mark.parametrize("sub", NEEDS_CKPT)
def test_evaluation_without_a_checkpoint_is_refused(env, capsys, sub):
    root = env["root"]
    expect_error(capsys, root, lambda: env["train"].main([sub, *PKG, *_extra(sub, root)]), "--ckpt_path", sub)


BAD_FILES = [("missing.ckpt", "does not exist"), ("empty.ckpt", "is empty"), ("random.ckpt", "not a readable"),
             ("text.ckpt", "not a readable"), ("truncated.ckpt", "truncated.ckpt"), ("keep", "not a file"),
             ("norecord.ckpt", "no phykey model record")]


@pytest.mark.parametrize("sub", ["fit", *NEEDS_CKPT, "agree"])
@pytest.mark.parametrize(("name", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_checkpoint_files_are_named(env, capsys, sub, name, message):
    root = env["root"]
    path = root / name
    expect_error(capsys, root, lambda: env["train"].main([sub, *PKG, f"--ckpt_path={path}", *_extra(sub, root)]),
                 name, message)


@pytest.mark.parametrize("sub", ["fit", *NEEDS_CKPT, "agree"])
def test_a_checkpoint_that_would_run_code_is_never_unpickled(env, capsys, sub):
    root = env["root"]
    for config in (PKG, [*kg_args(KGNET, env["h5"]), *KG_NET]):
        expect_error(capsys, root, lambda c=config: env["train"].main(
            [sub, *c, f"--ckpt_path={root / 'evil.ckpt'}", *_extra(sub, root)]), "evil.ckpt")
    assert not (root / "PWNED").exists()


@pytest.mark.parametrize("sub", [*NEEDS_CKPT, "agree"])
def test_a_crafted_checkpoint_is_refused_by_the_process(env, sub):
    """``python train.py <sub> --ckpt_path evil.ckpt`` as a real process: exit status 2, one error line naming the
    file, and the file its unpickling would create does not exist (nothing was unpickled)."""
    root = env["root"]
    for config in (PKG, [*kg_args(KGNET, env["h5"]), *KG_NET]):
        cmd = [sys.executable, str(REPO / "train.py"), sub, *config, f"--ckpt_path={root / 'evil.ckpt'}",
               *_extra(sub, root)]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=_env(root), timeout=300)
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.returncode == 2 and len(errors) == 1 and "evil.ckpt" in errors[0], res.stderr
        assert "objects phykey does not load" in errors[0] and "Traceback" not in res.stderr
        assert not (root / "PWNED").exists()


def test_scripts_never_unpickle_a_checkpoint(env, capsys):
    from benchmarks import nearfield_cost
    from experiments import multiuser_figures, nearfield_figures

    root = env["root"]
    evil = str(root / "evil.ckpt")
    expect_error(capsys, root, lambda: nearfield_cost.main(["--ckpt", evil]), "evil.ckpt")
    expect_error(capsys, root, lambda: nearfield_figures.main(["--ckpt", evil, "--out", str(root / "nf")]),
                 "evil.ckpt")
    expect_error(capsys, root, lambda: multiuser_figures.main(["--ckpt", evil, "--out", str(root / "mu")]),
                 "evil.ckpt")
    assert not (root / "PWNED").exists()


def test_kgnet_checkpoint_is_refused_by_the_fnn_config(env, capsys):
    expect_error(capsys, env["root"], lambda: env["train"].main(
        ["test", *kg_args(FNN, env["h5"]), f"--ckpt_path={env['kg_ckpt']}"]), "KGNet", "FNN")


def test_kgnet_checkpoint_is_refused_by_a_pkgnet_config(env, capsys):
    expect_error(capsys, env["root"], lambda: env["train"].main(
        ["test", *PKG, f"--ckpt_path={env['kg_ckpt']}"]), "kgnet", "pkgnet")


def test_pkgnet_checkpoint_is_refused_by_a_kgnet_config(env, capsys):
    expect_error(capsys, env["root"], lambda: env["train"].main(
        ["export", *kg_args(KGNET, env["h5"]), *KG_NET, f"--ckpt_path={env['pkg_ckpt']}",
         f"--out={env['root'] / 'x.pt2'}"]), "pkgnet", "kgnet")


def test_case1_checkpoint_is_refused_by_case2(env, capsys):
    args = [a.replace(CASE1, CASE2) for a in PKG]
    expect_error(capsys, env["root"], lambda: env["train"].main(
        ["test", *args, f"--ckpt_path={env['pkg_ckpt']}"]), "another scenario")


def test_resume_without_a_last_checkpoint_is_refused(env, capsys):
    expect_error(capsys, env["root"], lambda: env["train"].main(
        ["fit", *[a.replace(CASE1, CASE2) for a in PKG], "--ckpt_path=last"]), "last.ckpt", "does not exist")


@pytest.mark.parametrize("sub", ["test", "export"])
def test_last_is_only_for_fit(env, capsys, sub):
    root = env["root"]
    expect_error(capsys, root, lambda: env["train"].main([sub, *PKG, "--ckpt_path=last", *_extra(sub, root)]),
                 "'last'")


def test_fast_dev_run_cannot_resume(env, capsys):
    expect_error(capsys, env["root"], lambda: env["train"].main(
        ["fit", *PKG, "--trainer.fast_dev_run=true", "--ckpt_path=last"]), "fast_dev_run")


# --------------------------------------------------------------------------------------------
# train.py: outputs of export and predict
# --------------------------------------------------------------------------------------------

OUT_CASES = [("keep/model.pt2", "already exists"), ("model.onnx", "'.pt2'"), ("keep", "'.pt2'"),
             ("nowhere/model.pt2", "nowhere"), ("a_dir.h5/x.pt2", None)]


@pytest.mark.parametrize(("out", "message"), OUT_CASES[:4], ids=[c[0] for c in OUT_CASES[:4]])
def test_export_refuses_bad_or_existing_out(env, capsys, out, message):
    root = env["root"]
    expect_error(capsys, root, lambda: env["train"].main(
        ["export", *PKG, f"--ckpt_path={env['pkg_ckpt']}", f"--out={root / out}"]), out.split("/")[0], message)
    assert (root / "keep" / "model.pt2").read_bytes() == b"precious"


def test_predict_needs_out_and_refuses_existing(env, capsys):
    root = env["root"]
    expect_error(capsys, root, lambda: env["train"].main(["predict", *PKG, f"--ckpt_path={env['pkg_ckpt']}"]),
                 "--out")
    expect_error(capsys, root, lambda: env["train"].main(
        ["predict", *PKG, f"--ckpt_path={env['pkg_ckpt']}", f"--out={root / 'keep' / 'preds.pt'}"]),
        "preds.pt", "already exists")
    # an empty --out= (a shell variable that was never set) is named as empty, not as the folder "."
    expect_error(capsys, root, lambda: env["train"].main(["export", *PKG, f"--ckpt_path={env['pkg_ckpt']}", "--out="]),
                 "export path is empty")
    expect_error(capsys, root, lambda: env["train"].main(["predict", *PKG, f"--ckpt_path={env['pkg_ckpt']}", "--out="]),
                 "--out is empty")


# --------------------------------------------------------------------------------------------
# train.py agree: the design and its config must be the same system
# --------------------------------------------------------------------------------------------

NEARFIELD = str(REPO / "configs" / "pkgnet" / "nearfield.yaml")


@pytest.fixture(scope="module")
def irs_export(env):
    """The small IRS case-1 checkpoint exported once (a real .pt2 for the mismatch cases)."""
    out = env["root"] / "exports" / "irs_case1.pt2"
    out.parent.mkdir(exist_ok=True)
    env["train"].main(["export", *PKG, f"--ckpt_path={env['pkg_ckpt']}", f"--out={out}"])
    return out


def test_agree_refuses_a_design_of_another_system(env, capsys, irs_export):
    root, train = env["root"], env["train"]
    nf = ["--config", NEARFIELD, *QUIET]
    # an IRS export given to the near-field config: its metadata is checked, no shape guard traceback
    expect_error(capsys, root, lambda: train.main(["agree", *nf, f"--export={irs_export}"]),
                 "irs_case1.pt2", "'irs_case1'", "'nearfield'")
    expect_error(capsys, root, lambda: train.main(["agree", *nf, "--design", "pkgnet", f"--export={irs_export}"]),
                 "'irs_case1'", "'nearfield'")
    # the same scenario with other arrays (the export has M = 2)
    expect_error(capsys, root, lambda: train.main(["agree", "--config", CASE1, *QUIET, f"--export={irs_export}"]),
                 "irs_case1.pt2", "M: 2 vs 4")
    expect_error(capsys, root, lambda: train.main(["agree", *nf, f"--ckpt_path={env['pkg_ckpt']}"]),
                 "another scenario", "'irs_case1'", "'nearfield'")
    expect_error(capsys, root, lambda: train.main(["agree", *PKG, f"--ckpt_path={env['kg_ckpt']}"]),
                 "kgnet", "pkgnet")
    expect_error(capsys, root, lambda: train.main(["agree", *kg_args(KGNET, env["h5"]), *KG_NET,
                                                   f"--export={irs_export}"]), "irs_case1", "KGNet")
    expect_error(capsys, root, lambda: train.main(["agree", *PKG, "--export=keep/model.pt2"]),
                 "keep/model.pt2", "is not a .pt2 written by train.py export")
    expect_error(capsys, root, lambda: train.main(["agree", *PKG, f"--ckpt_path={env['pkg_ckpt']}",
                                                   f"--export={irs_export}"]), "not both")
    expect_error(capsys, root, lambda: train.main(["agree", *kg_args(KGNET, root / "missing.h5"), *KG_NET,
                                                   f"--ckpt_path={env['kg_ckpt']}"]), "missing.h5", "no such file")
    assert not (root / "missing.h5").exists()
    irs_conference = str(REPO / "configs" / "pkgnet" / "irs_conference.yaml")
    expect_error(capsys, root, lambda: train.main(["agree", "--config", irs_conference, *QUIET]), "conference")


def test_agree_reads_the_checkpoint_and_its_export_alike(env, capsys, irs_export):
    """The small IRS case-1 checkpoint and its .pt2 give the same design, hence the same keys, under the config."""
    root, train = env["root"], env["train"]
    reports = {}
    for name, flag in (("ckpt", f"--ckpt_path={env['pkg_ckpt']}"), ("pt2", f"--export={irs_export}")):
        out = root / "exports" / f"agree_{name}.json"
        train.main(["agree", *PKG, flag, "--probes=2000", "--calibration_probes=2000", "--progress=false",
                    f"--json={out}"])
        reports[name] = json.loads(out.read_text())
    ck, pt = reports["ckpt"], reports["pt2"]
    assert ck["design"] == pt["design"] == "pkgnet" and ck["system"]["setting"] == "case1"
    assert ck["system"]["checkpoint"] == str(env["pkg_ckpt"]) and pt["system"]["export"] == str(irs_export)
    for key in ("final_key_bits", "disclosed_bits", "initial_kdr", "final_key_agreement", "eve_bit_agreement"):
        assert ck[key] == pt[key], key
    assert ck["skr_bound_bits"] == pytest.approx(pt["skr_bound_bits"], rel=1e-5)  # float32 through two runtimes


# --------------------------------------------------------------------------------------------
# KGNet data files
# --------------------------------------------------------------------------------------------


def _huge_copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        ds = f["/band1/cfr"]
        row = ds[0]
        row[0] = np.complex64(3e38 + 0j)
        ds[0] = row
    return dst


def test_kgnet_data_path_bad_inputs(env, capsys):
    root = env["root"]
    train = env["train"]
    cases = [
        (root / "a_dir.h5", ["a_dir.h5", "directory"]),
        (root / "notes.h5", ["notes.h5", "HDF5"]),
    ]
    for path, needles in cases:
        expect_error(capsys, root, lambda p=path: train.main(["fit", *kg_args(KGNET, p), *KG_NET]), *needles)
    huge = _huge_copy(env["h5"], root / "huge.h5")
    expect_error(capsys, root, lambda: train.main(["fit", *kg_args(KGNET, huge), *KG_NET]), "huge.h5", "overflow")
    expect_error(capsys, root, lambda: train.main(
        ["fit", *kg_args(KGNET, root / "absent.h5"), *KG_NET, "--data.init_args.generate_if_missing=false"]),
        "absent.h5")


# --------------------------------------------------------------------------------------------
# python -m channeldata
# --------------------------------------------------------------------------------------------

GEN_CASES = [
    (["--out", "a_dir.h5"], ["a_dir.h5", "directory"]),
    (["--out", "a_dir.h5", "--overwrite"], ["a_dir.h5", "directory"]),
    (["--out", "kg.h5"], ["kg.h5", "already exists"]),
    (["--out", "n.h5", "--users", "0"], ["users", "0"]),
    (["--out", "n.h5", "--users", "-3"], ["users", "-3"]),
    (["--out", "n.h5", "--users", "2.5"], ["users", "2.5"]),
    (["--out", "n.h5", "--num_subcarriers", "0"], ["0"]),
    (["--out", "n.h5", "--eve_distance_m", "nan"], ["nan"]),
    (["--out", "n.h5", "--frobnicate", "1"], ["frobnicate"]),
]


@pytest.mark.parametrize(("args", "needles"), GEN_CASES, ids=[" ".join(c[0]) for c in GEN_CASES])
def test_channeldata_generate_bad_inputs(env, capsys, args, needles):
    from channeldata.cli import main

    expect_error(capsys, env["root"], lambda: main(["generate", *args]), *needles)


# --------------------------------------------------------------------------------------------
# experiments/ and benchmarks/: 0 and negative counts are errors, never "the default"
# --------------------------------------------------------------------------------------------

SCRIPT_CASES = [
    ("experiments.kgnet_reproduce", ["--users", "0"], ["--users", "0"]),
    ("experiments.kgnet_reproduce", ["--epochs", "0"], ["--epochs", "0"]),
    ("experiments.kgnet_reproduce", ["--epochs", "-1"], ["--epochs", "-1"]),
    ("experiments.kgnet_reproduce", ["--users", "many"], ["--users", "many"]),
    ("experiments.kgnet_reproduce", ["--fractions", "1.5"], ["--fractions", "1.5"]),
    ("experiments.kgnet_reproduce", ["--lr", "nan"], ["--lr", "nan"]),
    ("experiments.pkgnet_figures", ["--paper", "001", "--out", "f", "--epochs", "0"], ["--epochs", "0"]),
    ("experiments.pkgnet_figures", ["--paper", "002", "--out", "f"], ["--paper", "002"]),
    ("experiments.nearfield_figures", ["--ckpt", "x.ckpt", "--pt-points", "0"], ["--pt-points", "0"]),
    ("experiments.multiuser_figures", ["--draws", "0"], ["--draws", "0"]),
    ("experiments.multiuser_figures", ["--shared-refine-steps", "-1"], ["--shared-refine-steps", "-1"]),
    ("experiments.multiuser_figures", ["--refine-lr", "0"], ["--refine-lr", "0"]),
    ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt", "--steps", "10,-5"], ["--steps", "-5"]),
    ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt", "--steps", "10,10"], ["--steps", "repeated"]),
    ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt", "--steps", "20,100000"], ["--steps", "100000"]),
    ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt", "--lr", "0.03,inf"], ["--lr", "inf"]),
    ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt", "--target", "-1"], ["--target", "-1"]),
    ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt", "--heldout-draws", "0"], ["--heldout-draws"]),
    ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt", "--out", "sweep"], ["--ckpt", "x.ckpt", "not a file"]),
    ("benchmarks.skr_cost", ["--batch", "0"], ["--batch", "0"]),
    ("benchmarks.skr_cost", ["--repeats", "-1"], ["--repeats", "-1"]),
    ("benchmarks.kgnet_throughput", ["--seconds", "0"], ["--seconds", "0"]),
    ("benchmarks.kgnet_throughput", ["--threads", "0"], ["--threads", "0"]),
    ("benchmarks.kgnet_throughput", ["--batches", "128", "-4"], ["--batches", "-4"]),
    ("benchmarks.inference_vs_baseline", ["--repeats", "0"], ["--repeats", "0"]),
    ("benchmarks.multiuser_cost", ["--draws", "0"], ["draws", "0"]),
    ("benchmarks.nearfield_cost", ["--batch", "-2"], ["--batch", "-2"]),
]


@pytest.mark.parametrize(("module", "args", "needles"), SCRIPT_CASES,
                         ids=[f"{c[0].split('.')[-1]} {' '.join(c[1])}" for c in SCRIPT_CASES])
def test_scripts_refuse_zero_and_negative_counts(env, capsys, module, args, needles):
    import importlib

    mod = importlib.import_module(module)
    expect_error(capsys, env["root"], lambda: mod.main(args), *needles)


def test_scripts_never_replace_published_results_without_overwrite(env, capsys):
    """A figure script or the sweep pointed at a folder that already holds its results (the default --out is the
    published results folder) stops before any work unless --overwrite is given; an --out that is a file is
    refused before any work too (it used to fail after the whole sweep). --quick writes elsewhere by default."""
    import importlib

    root = env["root"]
    pub = root / "published"
    pub.mkdir(exist_ok=True)
    (pub / "results.md").write_text("published numbers\n")
    (pub / "sweep.json").write_text("{}\n")
    for module, args, record in (
            ("experiments.multiuser_figures", ["--quick"], "results.md"),
            ("experiments.multiuser_refine_sweep", ["--ckpt", "x.ckpt"], "sweep.json"),
            ("experiments.nearfield_figures", ["--ckpt", "x.ckpt"], "results.md"),
            ("experiments.pkgnet_figures", ["--paper", "001"], "results.md")):
        mod = importlib.import_module(module)
        expect_error(capsys, root, lambda m=mod, a=args: m.main([*a, "--out", str(pub)]), "already holds results",
                     record, "--overwrite")
        expect_error(capsys, root, lambda m=mod, a=args: m.main([*a, "--out", "keep/model.pt2"]), "keep/model.pt2",
                     "is not a folder")
    from experiments import multiuser_figures

    published = root / "results" / "multiuser_003" / "results.md"
    published.parent.mkdir(parents=True, exist_ok=True)
    published.write_text("published numbers\n")
    for _ in range(2):  # a smoke run: its default folder is not the published one, and a rerun replaces it
        multiuser_figures.main(["--quick"])
    assert published.read_text() == "published numbers\n"
    assert (root / "outputs" / "multiuser_003_quick" / "results.md").stat().st_size > 0


def test_scripts_name_a_file_that_is_not_an_exported_program(env, capsys):
    """A .pt2 that is not a torch.export archive (here 8 bytes of text) is one error line naming the file, not a
    zipfile traceback, in the figure script and the benchmark; so is a missing one in --ckpt-dir."""
    from benchmarks import inference_vs_baseline
    from experiments import nearfield_figures

    root = env["root"]
    expect_error(capsys, root, lambda: nearfield_figures.main(["--pt2", "keep/model.pt2", "--out", "nf_out"]),
                 "--pt2 'keep/model.pt2' is not a .pt2 written by train.py export")
    (root / "pt2s").mkdir(exist_ok=True)
    expect_error(capsys, root, lambda: inference_vs_baseline.main(["--ckpt-dir", "pt2s"]), "pkgnet_M2.pt2", "missing")
    (root / "pt2s" / "pkgnet_M2.pt2").write_bytes(b"not a zip")
    expect_error(capsys, root, lambda: inference_vs_baseline.main(["--ckpt-dir", "pt2s"]), "pkgnet_M2.pt2",
                 "is not a .pt2 written by train.py export")


# --------------------------------------------------------------------------------------------
# Python API: validated where it enters
# --------------------------------------------------------------------------------------------

BOB = [[10.0, 5.0, 0.0]]


def _api_cases():
    from keygen.randomness import NistResult
    from models.refine import ProjectedAscentRefinement
    from physics import irs
    from physics.irs import IRSScenario
    from physics.multiuser import MultiUserScenario
    from physics.nearfield import NearFieldScenario

    stats = irs.stats_001(torch.tensor(BOB), M=2, L_H=2, L_V=2)
    P = torch.eye(2, dtype=torch.complex128)[None]
    return {
        "M=2.5": (lambda: irs.stats_001(torch.tensor(BOB), M=2.5, L_H=2, L_V=2), "2.5"),
        "complex eta": (lambda: irs.stats_001(torch.tensor(BOB), M=2, L_H=2, L_V=2, eta=0.4 + 0.3j), "eta"),
        "complex position": (lambda: irs.stats_001(torch.tensor(BOB) + 1j, M=2, L_H=2, L_V=2), "bob_m"),
        "carrier 1e-300": (lambda: irs.stats_001(torch.tensor(BOB), M=2, L_H=2, L_V=2, eve_m=torch.tensor(BOB) + 1,
                                                 carrier_hz=1e-300), "carrier_hz"),
        "P_b_dbm nan": (lambda: irs.stats_001(torch.tensor(BOB), M=2, L_H=2, L_V=2, P_b_dbm=float("nan")), "P_b_dbm"),
        "theta 0": (lambda: irs.skr_case1(P, torch.zeros(1, 4, dtype=torch.complex128), stats), "unit-modulus"),
        "theta real": (lambda: irs.skr_case1(P, torch.ones(1, 4), stats), "complex"),
        "alpha 5": (lambda: NistResult("x", (0.5,)).passed(alpha=5.0), "alpha"),
        "alpha 0": (lambda: NistResult("x", (0.5,)).passed(alpha=0.0), "alpha"),
        "scenario hard_eta nan": (lambda: IRSScenario("case1", hard_eta=float("nan")), "hard_eta"),
        "scenario M 2.5": (lambda: IRSScenario("case1", M=2.5), "M must be an integer"),
        "scenario carrier": (lambda: IRSScenario("case1", carrier_hz=1e-300), "carrier_hz"),
        # docs/architecture.md section 5: every random draw takes an explicit generator (None: the global RNG)
        "irs sample generator None": (lambda: IRSScenario("case1").sample(2, None), "torch.Generator"),
        "multiuser sample int seed": (lambda: MultiUserScenario().sample(2, 0), "torch.Generator.*got int 0"),
        "nearfield sample generator None": (lambda: NearFieldScenario().sample(2, None), "torch.Generator"),
        "nearfield sample n None": (lambda: NearFieldScenario().sample(None, torch.Generator()), "got None"),
        "refinement steps 1e4": (lambda: ProjectedAscentRefinement(steps=10000, lr=0.03), "steps must be <= 1000"),
        "leakage without shared paths": (lambda: MultiUserScenario(objective="leakage"), "shared_paths >= 1"),
    }


@pytest.mark.parametrize("case", list(_api_cases()))
def test_python_api_rejects(case):
    fn, needle = _api_cases()[case]
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        fn()


def test_datamodule_and_reader_name_the_file(env):
    from channeldata.dualband_file import read_dual_band
    from datamodules.dualband import DualBandDataModule

    root = env["root"]
    with pytest.raises(ValueError, match="a_dir.h5.*directory"):
        DualBandDataModule(h5_path=str(root / "a_dir.h5"))
    with pytest.raises(IsADirectoryError, match="a_dir.h5"):
        read_dual_band(root / "a_dir.h5")
    huge = _huge_copy(env["h5"], root / "huge2.h5")
    with pytest.raises(ValueError, match="huge2.h5.*overflow"):
        read_dual_band(huge)


# --------------------------------------------------------------------------------------------
# what works: layout, resume, summary, export artefacts, file modes
# --------------------------------------------------------------------------------------------


def test_fit_prints_a_summary_with_the_baseline_table(env, capsys):
    root = env["root"]
    capsys.readouterr()
    env["train"].main(["fit", *[a.replace(CASE1, CASE2) for a in PKG], "--trainer.max_epochs=1"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any("best checkpoint: " in line and "runs/pkgnet/irs_case2/checkpoints/epoch" in line for line in lines)
    assert any(line.strip() == f"last checkpoint: {root}/runs/pkgnet/irs_case2/checkpoints/last.ckpt"
               for line in lines), out
    assert "final validation metrics:" in out and "val/skr_bits" in out
    assert "| water" in out.lower() or "waterfill" in out.lower() or "water_filling" in out.lower()
    assert (root / "runs/pkgnet/irs_case2/checkpoints/last.ckpt").is_file()


@pytest.fixture(autouse=True)
def _restore_process_state():
    """Scripts set torch's thread count and W&B keeps a run open: undo both for the next test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    import wandb

    wandb.finish()


def test_kgnet_resumes_from_last_in_its_run_folder(env, capsys):
    train = env["train"]
    kg_ckpts = env["root"] / "runs/kgnet/kgnet/checkpoints"
    first = torch.load(kg_ckpts / "last.ckpt", weights_only=True)
    cli = train.main(["fit", *kg_args(KGNET, env["h5"]), *KG_NET, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert cli.trainer.current_epoch == 2
    assert cli.trainer.global_step == 2 * first["global_step"]
    assert f"last checkpoint: {env['root']}/runs/kgnet/kgnet/checkpoints/last.ckpt" in capsys.readouterr().out


def test_fast_dev_run_writes_nothing_into_the_run_folder(env):
    root = env["root"]
    ckpts = root / "runs/pkgnet/irs_case1/checkpoints"
    before = snapshot(ckpts)
    env["train"].main(["fit", *PKG, "--trainer.fast_dev_run=true"])
    assert snapshot(ckpts) == before


def test_predict_writes_its_outputs(env):
    out = env["root"] / "preds.pt"
    env["train"].main(["predict", *PKG, f"--ckpt_path={env['pkg_ckpt']}", f"--out={out}"])
    preds = torch.load(out, weights_only=True)
    assert isinstance(preds, list) and len(preds) >= 1


def test_pkgnet_artefact_returns_nan_outside_the_valid_range(env):
    from models.export import load_metadata

    root = env["root"]
    out = root / "pk.pt2"
    old = os.umask(0o022)
    try:
        env["train"].main(["export", *PKG, f"--ckpt_path={env['pkg_ckpt']}", f"--out={out}"])
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == 0o644
    meta = load_metadata(out)
    ranges = meta["input"]["feature_ranges"]
    names = meta["input"]["feature_names"]
    mid = torch.tensor([[(lo + hi) / 2 for lo, hi in ranges]], dtype=torch.float32)
    bad = mid.repeat(3, 1)
    bad[0, names.index("eta")] = 1.7
    bad[1, names.index("kappa")] = -3.0
    bad[2, 0] = float("nan")
    module = torch.export.load(out).module()
    good = module(mid)
    assert all(torch.isfinite(t).all() for t in good)
    for t in module(bad):
        assert torch.isnan(t).all()
    # the same refusal of an existing file, now that it exists; --overwrite replaces it
    env["train"].main(["export", *PKG, f"--ckpt_path={env['pkg_ckpt']}", f"--out={out}", "--overwrite=true"])


def test_kgnet_artefact_matches_the_module_in_a_torch_only_process(env):
    root = env["root"]
    out = root / "kg.pt2"
    cli = env["train"].main(["export", *kg_args(KGNET, env["h5"]), *KG_NET,
                             f"--ckpt_path={env['kg_ckpt']}", f"--out={out}"])
    from channeldata.dualband_file import read_dual_band
    from datamodules.dualband import MinMaxNormalizer
    from physics.multipath import cfr_to_features, features_to_cfr

    data = read_dual_band(env["h5"])
    h1 = torch.from_numpy(data.cfr_band1[:16])
    ckpt = torch.load(env["kg_ckpt"], weights_only=True)
    norm = MinMaxNormalizer.from_state_dict(ckpt["DualBandDataModule"]["normalizer"])
    module = cli.model.eval()
    with torch.no_grad():
        f2 = norm.inverse_transform(module(norm.transform(cfr_to_features(h1).float(), 1)), 2)
    ref = torch.view_as_real(features_to_cfr(f2))
    np.save(root / "h1.npy", torch.view_as_real(h1).numpy())
    code = f"""
import json, sys
sys.modules['phykey_absent'] = None
import numpy as np, torch
extra = {{"metadata.json": ""}}
prog = torch.export.load({str(out)!r}, extra_files=extra)
h1 = torch.from_numpy(np.load({str(root / 'h1.npy')!r}))
h2 = prog.module()(h1)
bad = h1.clone(); bad[0, 0, 0] = float('nan')
print(json.dumps({{"h2": h2.tolist(), "meta": json.loads(extra["metadata.json"]),
                   "nan_row": bool(torch.isnan(prog.module()(bad)[0]).all())}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=300,
                         env={**os.environ, "PYTHONPATH": ""})
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert torch.allclose(torch.tensor(report["h2"]), ref, atol=1e-5, rtol=1e-5)
    meta = report["meta"]
    assert meta["family"] == "kgnet" and meta["input"]["shape"] == ["n", 64, 2] and meta["num_subcarriers"] == 64
    assert meta["band1_carrier_hz"] and meta["band2_carrier_hz"] and "minimum" in meta["normalisation"]
    assert report["nan_row"]


def test_generated_file_follows_the_umask_and_stale_temporaries_are_removed(env, capsys):
    from channeldata.cli import main

    root = env["root"]
    stale = root / ".g.h5.abc123.tmp"
    stale.write_bytes(b"left by a killed run")
    old = os.umask(0o022)
    try:
        assert main(["generate", "--out", str(root / "g.h5"), "--users", "20"]) == 0
    finally:
        os.umask(old)
    assert ((root / "g.h5").stat().st_mode & 0o777) == 0o644
    assert not stale.exists() and "removed" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# real processes: exit status, --debug, SIGTERM
# --------------------------------------------------------------------------------------------


def _env(root: Path) -> dict:
    return {**os.environ, "HOME": str(root), "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}


def test_python_train_py_exits_2_with_one_line_and_debug_shows_the_traceback(env):
    root = env["root"]
    cmd = [sys.executable, str(REPO / "train.py"), "fit", *PKG, "--model.init_args.scenario.init_args.M=0"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=_env(root), timeout=300)
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: M must be an integer >= 1, got 0"], res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 3, res.stderr
    res = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, cwd=root, env=_env(root), timeout=300)
    assert res.returncode != 0 and "Traceback" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_generate_stops_it_and_leaves_nothing(env, sig):
    root = env["root"] / f"sig{int(sig)}"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "channeldata", "generate", "--out", str(root / "big.h5"),
                             "--users", "400000", "--chunk_size", "4096"], cwd=root, env=_env(env["root"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(root.glob(".big.h5.*.tmp")):
        time.sleep(0.05)
    assert list(root.glob(".big.h5.*.tmp")), "generation never started"
    time.sleep(0.5)
    proc.send_signal(sig)  # once: a single Ctrl-C stops it
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert [line for line in err.splitlines() if line.startswith("error:")], err
    assert not list(root.iterdir())


def test_pickle_helper_really_creates_a_file(tmp_path):
    """The malicious checkpoint above is real: plain unpickling would create the file."""
    target = tmp_path / "created"
    pickle.loads(pickle.dumps(Evil(str(target))))
    assert target.exists()
