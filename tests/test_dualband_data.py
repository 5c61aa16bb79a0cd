"""channeldata (HDF5 contract, all-or-nothing writes, CLI, DeepMIMO exporter) and datamodules.dualband."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import channeldata.synthetic as synthetic
from channeldata.cli import main
from channeldata.deepmimo import export_deepmimo
from channeldata.dualband_file import DATASETS, DualBandData, DualBandWriter, read_dual_band, write_dual_band
from channeldata.synthetic import generate_synthetic, synthetic_dual_band
from datamodules.dualband import DualBandDataModule, MinMaxNormalizer, cross_dataset_noisy_count
from physics.multipath import cfr_from_paths, indoor_dual_band
from tests.deepmimo_fixture import random_paths, write_scenario

REPO = Path(__file__).resolve().parents[1]
USERS = 240


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "indoor.h5"
    generate_synthetic(path, users=USERS, seed=0, progress=False, chunk_size=100)
    return path


def make_copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


# --- file contract --------------------------------------------------------------------------


def test_round_trip_and_layout(small_file, tmp_path):
    data = read_dual_band(small_file)
    assert data.num_users == USERS and data.num_subcarriers == 64 and data.has_eve
    with h5py.File(small_file, "r") as f:
        for name in DATASETS.values():
            assert isinstance(f[name], h5py.Dataset)
        assert f["/band1/cfr"].dtype == np.complex64 and f["/users/position_m"].dtype == np.float64
        assert f.attrs["source"] == "synthetic-indoor" and f.attrs["seed"] == 0
        assert f.attrs["band1_carrier_hz"] == 2.4e9 and f.attrs["band2_carrier_hz"] == 2.5e9
        assert f.attrs["bandwidth_hz"] == 0.5e9 and f.attrs["num_subcarriers"] == 64
    # the file holds what the generator computes for the stored positions
    c1, c2 = indoor_dual_band(torch.from_numpy(data.position_m))
    assert np.array_equal(c1.numpy(), data.cfr_band1) and np.array_equal(c2.numpy(), data.cfr_band2)
    e1, _ = indoor_dual_band(torch.from_numpy(data.eve_position_m))
    assert np.array_equal(e1.numpy(), data.eve_cfr_band1)
    # chunked file == in-memory set for the same seed; write/read returns the same arrays
    memory = synthetic_dual_band(USERS, 0)
    for name in DATASETS:
        assert np.array_equal(getattr(memory, name), getattr(data, name)), name
    out = write_dual_band(tmp_path / "copy.h5", memory)
    again = read_dual_band(out)
    for name in DATASETS:
        assert np.array_equal(getattr(again, name), getattr(memory, name)), name
    assert again.attrs["generator_version"] == memory.attrs["generator_version"]


def test_same_seed_same_file_other_seed_other_file(small_file, tmp_path):
    again = generate_synthetic(tmp_path / "again.h5", users=USERS, seed=0, progress=False)
    other = generate_synthetic(tmp_path / "other.h5", users=USERS, seed=1, progress=False)
    a, b, c = (read_dual_band(p) for p in (small_file, again, other))
    assert np.array_equal(a.cfr_band1, b.cfr_band1) and np.array_equal(a.eve_position_m, b.eve_position_m)
    assert not np.array_equal(a.position_m, c.position_m)


def _drop(name):
    def mutate(f):
        del f[name]
    return mutate


def _replace(name, fn):
    def mutate(f):
        value = fn(f[name][()])
        del f[name]
        f[name] = value
    return mutate


def _set_entry(name, value):
    def mutate(f):
        data = f[name][()]
        data[3, 1] = value
        f[name][...] = data
    return mutate


def _del_attr(name):
    def mutate(f):
        del f.attrs[name]
    return mutate


BAD_FILES = {
    "missing band2": (_drop("/band2/cfr"), "/band2/cfr"),
    "missing positions": (_drop("/users/position_m"), "/users/position_m"),
    "positions wrong shape": (_replace("/users/position_m", lambda a: a[:, :2]), "/users/position_m"),
    "band1 wrong dtype": (_replace("/band1/cfr", lambda a: a.astype(np.complex128)), "/band1/cfr"),
    "positions wrong dtype": (_replace("/users/position_m", lambda a: a.astype(np.float32)),
                              "/users/position_m"),
    "band1 NaN": (_set_entry("/band1/cfr", complex(np.nan, 0.0)), "/band1/cfr"),
    "eve Inf": (_set_entry("/eve/band2/cfr", complex(0.0, np.inf)), "/eve/band2/cfr"),
    "band sizes differ (subcarriers)": (_replace("/band2/cfr", lambda a: a[:, :32]), "/band2/cfr"),
    "band sizes differ (users)": (_replace("/band2/cfr", lambda a: a[:-1]), "/band2/cfr"),
    "eve incomplete": (_drop("/eve/position_m"), "/eve/position_m"),
    "missing attribute": (_del_attr("bandwidth_hz"), "bandwidth_hz"),
    "bad source": (lambda f: f.attrs.__setitem__("source", "measured"), "source"),
    "num_subcarriers disagrees": (lambda f: f.attrs.__setitem__("num_subcarriers", 32), "num_subcarriers"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_name_the_offending_dataset(case, small_file, tmp_path):
    mutate, name = BAD_FILES[case]
    path = make_copy(small_file, tmp_path / "bad.h5")
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(ValueError, match=name):
        read_dual_band(path)


def test_not_hdf5_and_missing_file(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(ValueError, match="HDF5"):
        read_dual_band(junk)
    with pytest.raises(FileNotFoundError):
        read_dual_band(tmp_path / "nothing.h5")


def test_refuses_overwrite_and_keeps_the_old_file(small_file, tmp_path):
    path = make_copy(small_file, tmp_path / "x.h5")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_synthetic(path, users=20, seed=3, progress=False)
    assert path.read_bytes() == before
    generate_synthetic(path, users=20, seed=3, progress=False, overwrite=True)
    assert read_dual_band(path).num_users == 20


def test_interrupted_writes_leave_nothing_behind(small_file, tmp_path, monkeypatch):
    data = read_dual_band(small_file)
    target = tmp_path / "new.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with DualBandWriter(target, num_users=data.num_users, num_subcarriers=64, attrs=data.attrs,
                            with_eve=False) as writer:
            writer.write(0, cfr_band1=data.cfr_band1[:10], cfr_band2=data.cfr_band2[:10],
                         position_m=data.position_m[:10])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # rows never written: refused, nothing left
    with pytest.raises(ValueError, match="never written"):
        with DualBandWriter(target, num_users=data.num_users, num_subcarriers=64, attrs=data.attrs,
                            with_eve=False) as writer:
            writer.write(0, cfr_band1=data.cfr_band1[:10], cfr_band2=data.cfr_band2[:10],
                         position_m=data.position_m[:10])
    assert list(tmp_path.iterdir()) == []
    # a bad chunk (NaN) is refused before it is written
    bad = data.cfr_band1[:10].copy()
    bad[2, 2] = np.nan
    with pytest.raises(ValueError, match="/band1/cfr"):
        with DualBandWriter(target, num_users=10, num_subcarriers=64, attrs=data.attrs,
                            with_eve=False) as writer:
            writer.write(0, cfr_band1=bad, cfr_band2=data.cfr_band2[:10], position_m=data.position_m[:10])
    assert list(tmp_path.iterdir()) == []
    # the generator failing on its second chunk while replacing an existing file
    existing = make_copy(small_file, tmp_path / "keep.h5")
    before = existing.read_bytes()
    calls = {"n": 0}
    real = synthetic.indoor_dual_band

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # Bob and Eve of chunk 1 succeed, chunk 2 fails
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "indoor_dual_band", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(existing, users=50, seed=0, chunk_size=20, progress=False, overwrite=True)
    assert existing.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]


def test_writer_validates_attributes(small_file, tmp_path):
    data = read_dual_band(small_file)
    attrs = dict(data.attrs)
    attrs["band1_carrier_hz"] = -1.0
    with pytest.raises(ValueError, match="band1_carrier_hz"):
        write_dual_band(tmp_path / "a.h5", DualBandData(data.cfr_band1, data.cfr_band2, data.position_m, attrs))
    assert list(tmp_path.iterdir()) == []


def test_cli_generate(tmp_path, capsys):
    out = tmp_path / "sub" / "cli.h5"
    assert main(["generate", "--out", str(out), "--users", "30", "--seed", "2"]) == 0
    assert read_dual_band(out).attrs["seed"] == 2
    assert main(["generate", "--out", str(out), "--users", "30"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["generate", "--out", str(out), "--users", "12", "--overwrite"]) == 0
    assert read_dual_band(out).num_users == 12
    assert main(["generate", "--out", str(tmp_path / "y.h5"), "--users", "0"]) == 2
    assert "users=0" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    out = tmp_path / "m.h5"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "channeldata", "generate", "--out", str(out),
                           "--users", "10"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert read_dual_band(out).num_users == 10


# --- DataModule -----------------------------------------------------------------------------


def make_dm(path, **kwargs) -> DualBandDataModule:
    kwargs.setdefault("synthetic_users", USERS)
    dm = DualBandDataModule(h5_path=str(path), **kwargs)
    dm.setup("fit")
    return dm


def test_split_is_seeded_and_normalisation_uses_train_statistics(small_file):
    dm = make_dm(small_file, batch_size=32)
    again = make_dm(small_file, batch_size=32)
    assert torch.equal(dm.train_index, again.train_index)
    # 002's 80/20 split; 10 % of the training 80 % is held out for validation
    assert dm.train_index.numel() + dm.val_index.numel() == round(0.8 * USERS)
    assert dm.val_index.numel() == round(0.1 * round(0.8 * USERS))
    assert sorted(torch.cat([dm.train_index, dm.val_index, dm.test_index]).tolist()) == list(range(USERS))
    other = DualBandDataModule(h5_path=str(small_file), synthetic_users=USERS, seed=5)
    with pytest.warns(UserWarning, match="seed"):
        other.setup("fit")
    assert not torch.equal(dm.train_index, other.train_index)

    raw = read_dual_band(small_file)
    h1 = torch.from_numpy(raw.cfr_band1)[dm.train_index]
    feats = torch.cat([h1.real, h1.imag], dim=1)  # 002 (13), computed here independently
    torch.testing.assert_close(dm.normalizer.minimum[0], feats.amin(0), rtol=0, atol=0)
    torch.testing.assert_close(dm.normalizer.maximum[0], feats.amax(0), rtol=0, atol=0)
    x1 = dm.train_x1
    torch.testing.assert_close(x1.amin(0), torch.zeros(128), rtol=0, atol=1e-6)
    torch.testing.assert_close(x1.amax(0), torch.ones(128), rtol=0, atol=1e-6)
    # the test split is scaled with the training extremes, not its own
    h1t = torch.from_numpy(raw.cfr_band1)[dm.test_index]
    expected = (torch.cat([h1t.real, h1t.imag], 1) - feats.amin(0)) / (feats.amax(0) - feats.amin(0))
    torch.testing.assert_close(dm.test_x1, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dm.normalizer.inverse_transform(dm.test_x1, 1),
                               torch.cat([h1t.real, h1t.imag], 1), rtol=1e-5, atol=1e-7)
    assert dm.feature_dim == 128


def test_batches_and_eve_tensors(small_file):
    dm = make_dm(small_file, batch_size=50)
    batches = list(dm.train_dataloader())
    assert len(batches) == math.ceil(dm.train_index.numel() / 50)
    x1, x2 = batches[0]
    assert x1.dtype == x2.dtype == torch.float32 and x1.shape == x2.shape == (50, 128)
    assert sorted(torch.cat([b[0] for b in batches]).sum(1).tolist()) == pytest.approx(
        sorted(dm.train_x1.sum(1).tolist()))  # every training sample once per epoch
    val = torch.cat([b[1] for b in dm.val_dataloader()])
    torch.testing.assert_close(val, dm.val_x2)  # in order, noise-free: the validation split, not the test split
    test = torch.cat([b[1] for b in dm.test_dataloader()])
    torch.testing.assert_close(test, dm.test_x2)
    assert dm.eve_x2.shape == dm.test_x2.shape and dm.eve_x1.dtype == torch.float32
    dist = torch.linalg.vector_norm(dm.eve_positions_m - dm.test_positions_m, dim=1)
    torch.testing.assert_close(dist, torch.full_like(dist, 0.15))


def test_training_noise_and_cross_datasets(small_file):
    n_train = round(0.8 * USERS)
    assert [cross_dataset_noisy_count(k, 80_000) for k in range(1, 6)] == [80_000, 60_000, 40_000, 20_000, 0]
    clean = make_dm(small_file)
    for k in (1, 4, 5):
        dm = make_dm(small_file, cross_dataset=k)
        # 002's share of noisy users holds over the training side (train + validation users)
        assert int(dm.train_noisy_mask.sum() + dm.val_noisy_mask.sum()) == round(n_train * (5 - k) / 4)
        mask = dm.train_noisy_mask
        assert torch.equal(dm.train_features_band1[~mask], clean.train_features_band1[~mask])
        assert bool((dm.train_features_band1[mask] != clean.train_features_band1[mask]).any(1).all())
    noisy = make_dm(small_file, train_snr_db=10.0)
    assert bool(noisy.train_noisy_mask.all())
    diff = (noisy.train_features_band2 - clean.train_features_band2).double()
    power = clean.train_features_band2.double().square().sum(1)  # = sum_k |H_k|^2
    # noise power over K subcarriers relative to signal: 10 dB -> 0.1; 192 users x 64 subcarriers
    # of Exp(1)-distributed noise powers: std of the ratio ~ 0.1/sqrt(12288), 0.01 is > 10 std
    assert (diff.square().sum(1) / power).mean().item() == pytest.approx(0.1, abs=0.01)
    with pytest.raises(ValueError, match="cross_dataset"):
        DualBandDataModule(cross_dataset=6)
    with pytest.raises(ValueError, match="not both"):
        DualBandDataModule(cross_dataset=4, train_snr_db=0.0)


def test_noisy_test_set(small_file):
    dm = make_dm(small_file)
    a1, a2 = dm.noisy_test_set(5.0)
    b1, _ = dm.noisy_test_set(5.0)
    c1, _ = dm.noisy_test_set(5.0, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a1, b1) and not torch.equal(a1, c1)
    assert a1.shape == dm.test_x1.shape and a2.dtype == torch.float32
    err = {snr: (dm.noisy_test_set(snr)[1] - dm.test_x2).square().mean().item() for snr in (0.0, 20.0)}
    assert err[0.0] > 10 * err[20.0]  # 20 dB apart: the error power differs by ~100x
    e1, e2 = dm.noisy_eve_set(10.0)
    assert e2.shape == dm.eve_x2.shape
    assert dm.test_snr_db == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]


def test_generate_if_missing_and_in_memory(tmp_path):
    path = tmp_path / "fresh" / "indoor.h5"
    dm = DualBandDataModule(h5_path=str(path), synthetic_users=60, seed=0)
    assert dm.feature_dim == 128  # known before the file exists, for model linking
    dm.prepare_data()
    dm.setup("fit")
    assert read_dual_band(path).num_users == 60
    memory = DualBandDataModule(h5_path=None, synthetic_users=60, seed=0)
    memory.setup("fit")
    torch.testing.assert_close(memory.test_x1, dm.test_x1, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="generate"):
        DualBandDataModule(h5_path=str(tmp_path / "none.h5"), generate_if_missing=False).setup("fit")


def test_normaliser_travels_with_a_checkpoint(small_file, tmp_path):
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Tiny(LightningModule):
        def __init__(self, feature_dim: int = 128):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(feature_dim, feature_dim)

        def training_step(self, batch, batch_idx):
            x1, x2 = batch
            return torch.nn.functional.mse_loss(self.net(x1), x2)

        def validation_step(self, batch, batch_idx):
            x1, x2 = batch
            self.log("val/loss", torch.nn.functional.mse_loss(self.net(x1), x2))

        test_step = validation_step

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = DualBandDataModule(h5_path=str(small_file), synthetic_users=USERS, batch_size=64)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    kwargs = dict(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                  enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    Trainer(callbacks=[checkpoint], **kwargs).fit(Tiny(dm.feature_dim), datamodule=dm)
    state = torch.load(checkpoint.last_model_path, weights_only=True)
    assert "DualBandDataModule" in state
    other = DualBandDataModule(h5_path=str(small_file), synthetic_users=USERS, train_fraction=0.5)
    other.setup("test")
    assert not torch.equal(other.normalizer.minimum, dm.normalizer.minimum)
    Trainer(**kwargs).test(Tiny(), datamodule=other, ckpt_path=checkpoint.last_model_path)
    assert torch.equal(other.normalizer.minimum, dm.normalizer.minimum)
    assert torch.equal(other.normalizer.maximum, dm.normalizer.maximum)
    # plain-type hyperparameters
    torch.save(dict(dm.hparams), tmp_path / "hp.pt")
    assert torch.load(tmp_path / "hp.pt", weights_only=True)["batch_size"] == 64


def test_normalizer_guards():
    norm = MinMaxNormalizer.fit(torch.tensor([[1.0, 5.0], [3.0, 5.0]]), torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
    assert norm.transform(torch.tensor([[2.0, 5.0]]), 1).tolist() == [[0.5, 0.0]]  # constant dim: shifted
    with pytest.raises(ValueError, match="band"):
        norm.transform(torch.zeros(1, 2), 3)


# --- DeepMIMO exporter ----------------------------------------------------------------------

K, B = 64, 0.5e9


@pytest.fixture(scope="module")
def deepmimo_scenarios(tmp_path_factory):
    pytest.importorskip("deepmimo")
    root = tmp_path_factory.mktemp("deepmimo")
    rng = np.random.default_rng(0)
    grid1 = np.array([[x, y, 1.0] for x in (1.0, 1.1, 1.2) for y in (2.0, 2.1, 2.2)])
    grid2 = np.array([[x, 5.0, 1.0] for x in (6.0, 6.1, 6.2, 6.3)])
    paths = {}
    for name, carrier in (("tiny_2p4", 2.4e9), ("tiny_2p5", 2.5e9)):
        # delays up to 150 ns: some beyond the OFDM symbol K/B = 128 ns, which deepmimo drops
        grids = {1: random_paths(rng, grid1, 5, 150e-9), 2: random_paths(rng, grid2, 5, 150e-9)}
        write_scenario(root, name, carrier_hz=carrier, tx_pos_m=np.array([5.0, 5.0, 3.3]), grids=grids, rng=rng)
        paths[name] = grids
    return root, paths


def expected_cfr(grids) -> np.ndarray:
    """deepmimo's documented conventions applied to the stored path table, via cfr_from_paths."""
    rows = []
    for rx in sorted(grids):
        g = grids[rx]
        power = g.power_dbw.astype(np.float32).astype(np.float64)  # stored as float32
        delay = g.delay_s.astype(np.float32).astype(np.float64)
        phase = g.phase_deg.astype(np.float32).astype(np.float64)
        valid = ~np.isnan(power) & (delay < K / B)
        amp = np.where(valid, np.sqrt(10 ** (np.nan_to_num(power) / 10) / K), 0.0)  # dBW -> amplitude
        rows.append(cfr_from_paths(torch.tensor(amp), torch.tensor(np.nan_to_num(delay)),
                                   torch.tensor(np.deg2rad(np.nan_to_num(phase))),
                                   torch.arange(K, dtype=torch.float64) * B / K).numpy())
    return np.concatenate(rows)


def test_deepmimo_export_matches_the_path_table(deepmimo_scenarios, tmp_path, monkeypatch):
    root, paths = deepmimo_scenarios
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("deepmimo asked for input"))
    out = export_deepmimo(root, "tiny_2p4", "TINY_2P5", tmp_path / "i1.h5", max_users=0, seed=0)
    data = read_dual_band(out)
    assert data.attrs["source"] == "deepmimo:tiny_2p4+tiny_2p5"
    assert data.attrs["band1_carrier_hz"] == 2.4e9 and data.attrs["band2_carrier_hz"] == 2.5e9
    assert data.num_users == 13 and data.num_subcarriers == K
    np.testing.assert_allclose(data.position_m[:9], paths["tiny_2p4"][1].rx_pos_m, atol=1e-6)
    np.testing.assert_allclose(data.position_m[9:], paths["tiny_2p4"][2].rx_pos_m, atol=1e-6)
    for got, grids in ((data.cfr_band1, paths["tiny_2p4"]), (data.cfr_band2, paths["tiny_2p5"])):
        ref = expected_cfr(grids)
        scale = np.abs(ref).max(axis=1, keepdims=True)
        # deepmimo works in complex64 (float32 amplitudes and angles): ~1e-6 relative per user
        assert (np.abs(got - ref) <= 2e-5 * scale).all()
    # Eve: another grid user, the nearest to Bob + 0.15 m in a random direction
    idx = data.extra["eve_user_index"]
    assert (idx != np.arange(13)).all()
    assert np.array_equal(data.eve_cfr_band2, data.cfr_band2[idx])
    assert np.array_equal(data.eve_position_m, data.position_m[idx])


def test_deepmimo_export_options_and_errors(deepmimo_scenarios, tmp_path, monkeypatch):
    root, _ = deepmimo_scenarios
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("deepmimo asked for input"))
    assert main(["from-deepmimo", "--scenario_folder", str(root), "--band1", "tiny_2p4", "--band2",
                 "tiny_2p5", "--out", str(tmp_path / "a.h5"), "--max_users", "5", "--no_eve",
                 "--rx_sets", "[1]"]) == 0
    data = read_dual_band(tmp_path / "a.h5")
    assert data.num_users == 5 and not data.has_eve
    with pytest.raises(ValueError, match=r"i1_2p4[/\\]params.json"):
        export_deepmimo(root, "i1_2p4", "tiny_2p5", tmp_path / "b.h5")
    with pytest.raises(ValueError, match="hold only 13 users"):
        export_deepmimo(root, "tiny_2p4", "tiny_2p5", tmp_path / "b.h5", max_users=100)
    with pytest.raises(ValueError, match="rx_sets"):
        export_deepmimo(root, "tiny_2p4", "tiny_2p5", tmp_path / "b.h5", rx_sets=[7])
    with pytest.raises(FileExistsError):
        export_deepmimo(root, "tiny_2p4", "tiny_2p5", tmp_path / "a.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]


def test_deepmimo_bands_must_share_the_grid(tmp_path):
    pytest.importorskip("deepmimo")
    rng = np.random.default_rng(1)
    for name, shift in (("g_2p4", 0.0), ("g_2p5", 0.5)):
        pos = np.array([[1.0 + shift, 2.0, 1.0], [1.5, 2.0, 1.0]])
        write_scenario(tmp_path, name, carrier_hz=2.4e9, tx_pos_m=np.array([5.0, 5.0, 3.3]),
                       grids={1: random_paths(rng, pos, 3, 50e-9)}, rng=rng)
    with pytest.raises(ValueError, match="user 0"):
        export_deepmimo(tmp_path, "g_2p4", "g_2p5", tmp_path / "out.h5", max_users=0)
    assert not (tmp_path / "out.h5").exists()
