"""KGNetModule training, the torchmetrics classes, KeyMetricsCallback, and every configs/kgnet YAML
through ``train.main`` (the CLI entry point)."""

from __future__ import annotations

import glob
import math
import sys
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from callbacks.key_metrics import KeyMetricsCallback, key_metrics
from datamodules.dualband import DualBandDataModule
from keygen import metrics as kmetrics
from keygen.quantize import exchange_and_encode, gdqg_indices
from models.kgnet import CNN1D, FNN, AdvancedFNN, KGNet, KGNetModule
from models.metrics import NMSE, NVD, KeyErrorRate, KeyGenerationRatio

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs" / "kgnet").glob("*.yaml"))
KEY_NAMES = ("ker", "kgr", "nvd_alice_bob_before", "nvd_alice_bob_after", "nvd_eve_bob")


def _trainer(**kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    defaults.update(kwargs)
    return L.Trainer(**defaults)


@pytest.fixture(scope="module")
def small_dm() -> DualBandDataModule:
    """In-memory synthetic indoor set (no file), 600 users: 432 train, 48 validation, 120 test, with Eve."""
    dm = DualBandDataModule(h5_path=None, synthetic_users=600, seed=3, batch_size=64)
    dm.setup("fit")
    return dm


# ---------------------------------------------------------------------------------------------
# metric classes against their keygen.metrics twins
# ---------------------------------------------------------------------------------------------


def test_nmse_nvd_classes_equal_twins_over_several_batches():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(50, 16, generator=g), torch.rand(50, 16, generator=g) + 0.1
    for cls, twin in ((NMSE, kmetrics.nmse), (NVD, kmetrics.nvd)):
        m = cls()
        for lo, hi in ((0, 7), (7, 30), (30, 50)):  # uneven batches: mean over samples, not of batches
            m.update(a[lo:hi], b[lo:hi])
        # float32 output of a float64 accumulation: relative error ~1e-7
        assert m.compute().item() == pytest.approx(twin(a.numpy(), b.numpy()), rel=1e-6)
    # direct formula, 002 (21)/(22), one sample
    m = NVD()
    m.update(torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 2.0]]))
    assert m.compute().item() == pytest.approx(1.0 / 8.0)


def test_ker_kgr_classes_equal_twins():
    rng = np.random.default_rng(1)
    xa = rng.normal(size=(40, 32))
    xb = xa + 0.3 * rng.normal(size=(40, 32))
    for levels, eps in ((2, 0.1), (4, 0.05)):
        bits_a, bits_b, kept = exchange_and_encode(gdqg_indices(xa, levels, eps), gdqg_indices(xb, levels, eps),
                                                   levels)
        ker, kgr = KeyErrorRate(), KeyGenerationRatio(levels, num_subcarriers=16)
        for sl in (slice(0, 13), slice(13, 40)):
            ker.update(bits_a[sl], bits_b[sl], kept[sl])
            kgr.update(kept[sl])
        assert ker.compute().item() == pytest.approx(kmetrics.key_error_rate(bits_a, bits_b, kept), rel=1e-6)
        assert kgr.compute().item() == pytest.approx(kmetrics.key_generation_ratio(kept, levels, 16), rel=1e-6)
        # by hand: errors / bits
        n_bits = kept.sum() * int(math.log2(levels))
        n_err = ((bits_a != bits_b) & kept[..., None]).sum()
        assert ker.compute().item() == pytest.approx(n_err / n_bits, rel=1e-6)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(KeyErrorRate().compute().item())  # no key bits: undefined, as the twin


# ---------------------------------------------------------------------------------------------
# module
# ---------------------------------------------------------------------------------------------


def test_hparams_are_plain_when_built_in_python(tmp_path):
    module = KGNetModule(KGNet(16, 16, hidden=(8,)), optimizer=partial(torch.optim.Adam, lr=1e-3))
    # net and optimizer are objects: left out; what stays survives torch.load(weights_only=True)
    assert "net" not in module.hparams and "optimizer" not in module.hparams
    torch.save(dict(module.hparams), tmp_path / "hp.pt")
    assert torch.load(tmp_path / "hp.pt", weights_only=True) == dict(module.hparams)


def test_validation_split_comes_from_the_training_side(small_dm):
    """002's 80/20 split has no validation part: ours is 10 % of the training 80 %, seeded; the test
    20 % is never served before ``test`` and no user is in two splits."""
    train, val, test = (set(small_dm.train_index.tolist()), set(small_dm.val_index.tolist()),
                        set(small_dm.test_index.tolist()))
    assert (len(train), len(val), len(test)) == (432, 48, 120)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(600))
    served = torch.cat([b[0] for b in small_dm.val_dataloader()])
    assert torch.equal(served, small_dm.val_x1)
    assert not any(torch.equal(row, t) for row in served[:5] for t in small_dm.test_x1)
    again = DualBandDataModule(h5_path=None, synthetic_users=600, seed=3, batch_size=64)
    again.setup("fit")
    assert torch.equal(again.val_index, small_dm.val_index)  # seeded
    with pytest.raises(ValueError, match="val_fraction"):
        DualBandDataModule(h5_path=None, val_fraction=1.0)


def test_setup_rejects_mismatched_feature_dim(small_dm):
    module = KGNetModule(KGNet(64, 64))
    with pytest.raises(ValueError, match="feature_dim=128"):
        _trainer(max_steps=1).fit(module, small_dm)


@pytest.mark.parametrize("net_cls", [KGNet, FNN, AdvancedFNN, CNN1D])
def test_short_training_lowers_the_loss(small_dm, net_cls):
    torch.manual_seed(0)
    module = KGNetModule(net_cls(128, 128), optimizer=partial(torch.optim.Adam, lr=1e-3))
    before = _trainer().validate(module, small_dm, verbose=False)[0]
    _trainer(max_epochs=4, num_sanity_val_steps=0).fit(module, small_dm)
    after = _trainer().validate(module, small_dm, verbose=False)[0]
    # Glorot-initialised nets start near "predict 0.5 everywhere" (MSE ~ feature variance ~0.04);
    # 30 Adam steps on 480 samples should at least halve that: a loose bound, the measured drop is 3-10x.
    assert after["val/loss"] < 0.5 * before["val/loss"]
    assert after["val/nmse"] < 0.5 * before["val/nmse"]
    # logged NMSE is 002 (21) on the validation split, recomputed here independently
    with torch.no_grad():
        module.eval()
        x2_hat = module(small_dm.val_x1)
    direct = (((x2_hat - small_dm.val_x2) ** 2).sum(1) / (small_dm.val_x2**2).sum(1)).mean().item()
    assert after["val/nmse"] == pytest.approx(direct, rel=1e-4)
    assert after["val/loss"] == pytest.approx(torch.mean((x2_hat - small_dm.val_x2) ** 2).item(), rel=1e-4)


# ---------------------------------------------------------------------------------------------
# KeyMetricsCallback
# ---------------------------------------------------------------------------------------------


def test_callback_logs_key_metrics_matching_independent_computation(small_dm):
    torch.manual_seed(0)
    module = KGNetModule(KGNet(128, 128), optimizer=partial(torch.optim.Adam, lr=1e-3))
    cb = KeyMetricsCallback(levels=2, epsilon=0.1)
    trainer = _trainer(max_epochs=1, callbacks=[cb], num_sanity_val_steps=1)
    trainer.fit(module, small_dm)
    logged = trainer.callback_metrics
    for name in KEY_NAMES + ("ker_eve", "kgr_eve"):
        assert f"val/{name}" in logged, name
        assert math.isfinite(float(logged[f"val/{name}"])), name

    # independent recomputation with keygen's functions on the same features
    with torch.no_grad():
        module.eval()
        x2_hat = module(small_dm.val_x1).double().numpy()
    x1, x2, xe = (t.double().numpy() for t in small_dm.evaluation_set("val"))
    bits_a, bits_b, kept = exchange_and_encode(gdqg_indices(x2_hat, 2, 0.1), gdqg_indices(x2, 2, 0.1), 2)
    # float32 logging of float64 values: 1e-5 relative
    assert float(logged["val/ker"]) == pytest.approx(kmetrics.key_error_rate(bits_a, bits_b, kept), rel=1e-5)
    assert float(logged["val/kgr"]) == pytest.approx(kmetrics.key_generation_ratio(kept, 2, 64), rel=1e-5)
    assert float(logged["val/nvd_alice_bob_before"]) == pytest.approx(kmetrics.nvd(x1, x2), rel=1e-5)
    # mapped features: the module ran in float32 in both places
    assert float(logged["val/nvd_alice_bob_after"]) == pytest.approx(kmetrics.nvd(x2_hat, x2), rel=1e-4)
    assert float(logged["val/nvd_eve_bob"]) == pytest.approx(kmetrics.nvd(xe, x2), rel=1e-5)
    assert float(logged["val/nvd_alice_bob_after"]) == pytest.approx(float(logged["val/nmse"]), rel=1e-4)

    # test stage too; the callback observes only: weights unchanged by the callback
    state = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.test(module, small_dm, verbose=False)
    for name in KEY_NAMES:
        assert math.isfinite(float(trainer.callback_metrics[f"test/{name}"]))
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())


def test_callback_noisy_split_and_other_levels(small_dm):
    torch.manual_seed(0)
    module = KGNetModule(AdvancedFNN(128, 128))
    cb = KeyMetricsCallback(levels=4, epsilon=0.05, snr_db=10.0, max_samples=50)
    trainer = _trainer(max_epochs=1, limit_train_batches=1, callbacks=[cb], num_sanity_val_steps=0)
    trainer.fit(module, small_dm)
    assert set(f"val/{n}" for n in KEY_NAMES) <= set(cb.last_metrics)
    x1, x2, _ = small_dm.evaluation_set("val", 10.0)
    x1, x2 = x1[:50], x2[:50]
    assert cb.last_metrics["val/nvd_alice_bob_before"] == pytest.approx(kmetrics.nvd(x1, x2), rel=1e-5)
    # K = 4: 2 bits per kept feature, KGR <= 2 log2 K = 4
    assert 0 < cb.last_metrics["val/kgr"] <= 4
    with pytest.raises(ValueError):
        KeyMetricsCallback(levels=4, epsilon=0.2)  # 002: eps < 1/(2K)


def test_key_metrics_perfect_mapping_gives_zero_ker():
    g = torch.Generator().manual_seed(5)
    x1, x2 = torch.rand(30, 128, generator=g), torch.rand(30, 128, generator=g)
    out = key_metrics(x1, x2, x2.clone())
    assert out["ker"] == 0.0 and out["nvd_alice_bob_after"] == 0.0
    # uniform features: GDQG drops what falls in (Phi^-1(0.4), Phi^-1(0.6)) of the Gaussian fit;
    # KGR = 2 x (kept fraction) lies between 0 and 2
    assert 0 < out["kgr"] < 2


# ---------------------------------------------------------------------------------------------
# configs through the CLI
# ---------------------------------------------------------------------------------------------


def test_config_directory_holds_the_expected_files():
    assert {p.name for p in CONFIGS} >= {
        "kgnet.yaml",
        "kgnet_paper.yaml",
        "fnn.yaml",
        "afnn.yaml",
        "cnn1d.yaml",
        "kgnet_i1.yaml",
    }


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_fast_dev_run(cli_env, tmp_path, config):
    cli = cli_env.main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.fast_dev_run=true",
            "--trainer.enable_progress_bar=false",
            f"--data.init_args.h5_path={tmp_path / 'data' / 'indoor.h5'}",
            "--data.init_args.generate_if_missing=true",
            "--data.init_args.synthetic_users=300",
        ]
    )
    assert cli.trainer.state.finished
    logged = cli.trainer.callback_metrics
    assert math.isfinite(float(logged["train/loss"]))
    for name in KEY_NAMES:
        assert math.isfinite(float(logged[f"val/{name}"])), name


def test_kgnet_config_writes_offline_wandb_run_and_resumable_checkpoint(cli_env, tmp_path):
    import wandb

    h5 = tmp_path / "indoor.h5"
    common = [
        "--config",
        str(REPO / "configs" / "kgnet" / "kgnet.yaml"),
        "--trainer.enable_progress_bar=false",
        f"--data.init_args.h5_path={h5}",
        "--data.init_args.synthetic_users=400",
    ]
    try:
        cli_env.main(["fit", *common, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    finally:
        wandb.finish()
    runs = glob.glob(str(tmp_path / "runs/kgnet/kgnet/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    last = glob.glob(str(tmp_path / "runs/kgnet/kgnet/checkpoints/last.ckpt"))
    assert len(last) == 1
    # hyperparameters are plain types: the CLI reloads them with torch.load(weights_only=True)
    ckpt = torch.load(last[0], weights_only=True)
    assert ckpt["hyper_parameters"]["net"]["class_path"] == "models.kgnet.KGNet"
    try:
        cli = cli_env.main(["test", *common, f"--ckpt_path={last[0]}"])
    finally:
        wandb.finish()
    assert math.isfinite(float(cli.trainer.callback_metrics["test/nmse"]))
    assert math.isfinite(float(cli.trainer.callback_metrics["test/ker"]))
    reloaded = KGNetModule.load_from_checkpoint(last[0])
    assert isinstance(reloaded.net, KGNet)


# ---------------------------------------------------------------------------------------------
# slow: a small model actually learns the band map and the keys agree
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kgnet_learns_band_map_and_keys_agree(tmp_path):
    L.seed_everything(0)
    dm = DualBandDataModule(h5_path=None, synthetic_users=5000, seed=1, batch_size=128)
    module = KGNetModule(KGNet(128, 128), optimizer=partial(torch.optim.Adam, lr=1e-3, fused=True))
    cb = KeyMetricsCallback(levels=2, epsilon=0.1)
    trainer = _trainer(max_epochs=8, callbacks=[cb], num_sanity_val_steps=0)
    trainer.fit(module, dm)
    m = trainer.callback_metrics
    # measured 7e-3 (KER 5e-3) after 8 epochs on 4,000 users; the band-1 features alone are at NVD ~0.17
    assert float(m["val/nmse"]) < 2e-2
    assert float(m["val/nvd_alice_bob_after"]) < 0.2 * float(m["val/nvd_alice_bob_before"])
    # Eve's own features are no closer to Bob's than Alice's unmapped ones; her keys are near coin flips
    assert float(m["val/nvd_eve_bob"]) > 5 * float(m["val/nvd_alice_bob_after"])
    assert float(m["val/ker"]) < 0.05
    assert float(m["val/ker_eve"]) > 0.3
    # KGR near 2 (1 - 2 eps) = 1.6 for Gaussian features (002 Sec. VII-C-3)
    assert 1.4 < float(m["val/kgr"]) < 1.9


# ---------------------------------------------------------------------------------------------
# experiments/kgnet_reproduce.py
# ---------------------------------------------------------------------------------------------


def _reproduce_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("kgnet_reproduce", REPO / "experiments" / "kgnet_reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_snr_threshold_interpolates_in_log_ker():
    threshold = _reproduce_module().snr_threshold
    # KER 0.2 at 0 dB, 0.05 at 10 dB: log-linear crossing of 0.1 is half way, 5 dB
    assert threshold([0.0, 10.0, 20.0], [0.2, 0.05, 0.01]) == pytest.approx(5.0)
    assert threshold([0.0, 10.0], [0.05, 0.01]) == 0.0  # below target everywhere
    assert threshold([0.0, 10.0], [0.3, 0.2]) is None  # never reached
    # a dip below target that comes back up does not count
    assert threshold([0.0, 10.0, 20.0, 30.0], [0.2, 0.05, 0.2, 0.05]) == pytest.approx(25.0)


@pytest.mark.slow
def test_reproduce_script_tiny_run_writes_figures_and_report(tmp_path):
    mod = _reproduce_module()
    out = tmp_path / "repro"
    mod.main(["--users", "400", "--epochs", "1", "--fractions", "0.5", "--out", str(out)])
    for name in (
        "fig3_nmse_vs_train_size.png",
        "fig5_nmse_vs_snr.png",
        "fig6_nmse_vs_snr_train_snr.png",
        "fig7_nmse_vs_snr_cross.png",
        "fig8_nmse_vs_snr_cross4.png",
        "fig9_ker_kgr_vs_snr.png",
        "fig10_ker_kgr_vs_snr_eps.png",
        "fig12_nvd_vs_snr.png",
        "results.md",
        "results.json",
    ):
        assert (out / name).is_file(), name
    report = (out / "results.md").read_text()
    assert "Table IV" in report and "2,231,424" in report and "1,362,120" in report


def test_kgnet_onnx_export_matches_the_torch_artefact(tmp_path):
    """The optional ONNX file of a KGNet export (raw Band-1 CFR in, Band-2 CFR out) gives the same numbers
    in onnxruntime as the module's own realisation -> normalisation -> net -> inverse normalisation."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from models.export import export_kgnet

    torch.manual_seed(0)
    k = 8
    net = FNN(2 * k, 2 * k, hidden=(16, 16)).eval()
    g = torch.Generator().manual_seed(1)
    lo = -torch.rand(2, 2 * k, generator=g)
    hi = torch.rand(2, 2 * k, generator=g) + 0.1
    export_kgnet(net, {"normalizer": {"minimum": lo, "maximum": hi}}, tmp_path / "k.pt2", tmp_path / "k.onnx")
    h1 = torch.randn(5, k, 2, generator=g) * 0.3
    (h2,) = ort.InferenceSession(str(tmp_path / "k.onnx")).run(["h2"], {"h1": h1.numpy()})
    # independent recomputation: 002 (13) realisation, (14)-(15) min-max with the stored extremes, inverse
    x1 = (torch.cat([h1[..., 0], h1[..., 1]], -1) - lo[0]) / (hi[0] - lo[0])
    with torch.no_grad():
        x2 = net(x1) * (hi[1] - lo[1]) + lo[1]
    ref = torch.stack([x2[:, :k], x2[:, k:]], -1)
    assert h2.shape == (5, k, 2)
    assert torch.allclose(torch.from_numpy(h2), ref, rtol=1e-5, atol=1e-6)  # float32 through two runtimes
