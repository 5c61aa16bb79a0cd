"""DualBandDataModule: KGNet's band-feature pairs (paper 002) from a dual-band CFR file.

The file format, its reader/writers and generators are in :mod:`channeldata`; this module holds what
turns a file into training data: the train / validation / test split (002's 80/20 split, with the
validation part cut from the training 80 %), the noise treatments of 002 Sec. VII-C, realisation
(002 (13)) and min-max normalisation (002 (14)-(15)) fitted on the training split.

Build a file with ``python -m channeldata generate --out data/indoor.h5`` (synthetic indoor room)
or ``python -m channeldata from-deepmimo ...``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import h5py
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from channeldata.dualband_file import SOURCE_SYNTHETIC, DualBandData, is_int, is_real, read_dual_band
from channeldata.synthetic import generate_synthetic, synthetic_dual_band
from physics.multipath import PAPER_002_EVE_DISTANCE_M, PAPER_002_NUM_SUBCARRIERS, add_awgn, cfr_to_features
from physics.seeding import generator_for

# ---------------------------------------------------------------------------------------------
# Normalisation (002 (13)-(15)) and the LightningDataModule
# ---------------------------------------------------------------------------------------------


class MinMaxNormalizer:
    """Per-dimension min-max normalisation of realised features, 002 (14)-(15), one per band.

    ``x = (H' - H'_min) / (H'_max - H'_min)`` with the extremes taken over the training split only
    (002 Sec. V-B); a constant dimension (max = min) is only shifted.

    ``minimum``/``maximum``: ``[2, 2K]`` float32, row 0 Band1, row 1 Band2.
    """

    def __init__(self, minimum: torch.Tensor, maximum: torch.Tensor) -> None:
        minimum = torch.as_tensor(minimum, dtype=torch.float32)
        maximum = torch.as_tensor(maximum, dtype=torch.float32)
        if minimum.ndim != 2 or minimum.shape[0] != 2 or minimum.shape != maximum.shape:
            raise ValueError(f"minimum {tuple(minimum.shape)} and maximum {tuple(maximum.shape)} must "
                             "both have shape [2, 2K]")
        if not bool((maximum >= minimum).all()):
            raise ValueError("maximum must be >= minimum in every dimension")
        self.minimum, self.maximum = minimum, maximum

    @classmethod
    def fit(cls, features_band1: torch.Tensor, features_band2: torch.Tensor) -> MinMaxNormalizer:
        """Extremes over the rows of ``[N, 2K]`` training features of each band (002 (14))."""
        stacked = [torch.as_tensor(f, dtype=torch.float32) for f in (features_band1, features_band2)]
        return cls(torch.stack([f.amin(dim=0) for f in stacked]), torch.stack([f.amax(dim=0) for f in stacked]))

    @property
    def feature_dim(self) -> int:
        return int(self.minimum.shape[1])

    def _band(self, band: int) -> tuple[torch.Tensor, torch.Tensor]:
        if band not in (1, 2):
            raise ValueError(f"band={band!r} must be 1 or 2")
        lo = self.minimum[band - 1]
        span = self.maximum[band - 1] - lo
        return lo, torch.where(span > 0, span, torch.ones_like(span))

    def transform(self, features: torch.Tensor, band: int) -> torch.Tensor:
        """002 (15): ``[..., 2K]`` realised features of ``band`` -> normalised features."""
        lo, span = self._band(band)
        return (features - lo.to(features)) / span.to(features)

    def inverse_transform(self, x: torch.Tensor, band: int) -> torch.Tensor:
        """Undo :meth:`transform` (e.g. on KGNet's output ``x_hat_2`` with ``band=2``)."""
        lo, span = self._band(band)
        return x * span.to(x) + lo.to(x)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"minimum": self.minimum.clone(), "maximum": self.maximum.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> MinMaxNormalizer:
        return cls(state["minimum"], state["maximum"])


def cross_dataset_noisy_count(cross_dataset: int, num_train: int) -> int:
    """Training samples at 0 dB in cross dataset ``cross_dataset`` (002 Sec. VII-C-2).

    002 mixes 80,000 training samples as (0 dB, noise-free) = (80k, 0), (60k, 20k), (40k, 40k),
    (20k, 60k), (0, 80k) for cross datasets 1-5, i.e. a 0 dB fraction of ``(5 - k) / 4``; scaled here
    to ``num_train``.
    """
    if not (is_int(cross_dataset) and 1 <= cross_dataset <= 5):
        raise ValueError(f"cross_dataset={cross_dataset!r} must be an integer in 1..5 (002 Sec. VII-C-2)")
    return round(num_train * (5 - cross_dataset) / 4)


class DualBandDataModule(LightningDataModule):
    """Band1/Band2 feature pairs ``(x1, x2)`` for KGNet (002 Sec. V), float32 ``[B, 2K]``.

    Args:
        h5_path: dual-band HDF5 file; ``None`` = the synthetic indoor set in memory (no file).
        generate_if_missing: if ``h5_path`` does not exist, write the synthetic set there.
        synthetic_users: users of the synthetic set (002: 100,000).
        seed: synthetic positions, split, noise and shuffling all derive from it.
        train_fraction: share of users in the training side (002: 80 %); the rest is the test split,
            untouched until ``test``.
        val_fraction: share of the training side held out (seeded) as the validation split, on which
            checkpoints and early stopping are chosen (002 has no validation split; ours: 10 %).
        batch_size: 002 Table I: 128.
        train_snr_db: SNR of the AWGN added to the training CFRs of both bands (``None`` = noise-free).
        cross_dataset: 1-5, the cross datasets of 002 Sec. VII-C-2 (0 dB / noise-free mixes); not
            together with ``train_snr_db``.
        test_snr_db: SNRs for the evaluation sweeps (default 0, 5, ..., 40 dB, 002 Fig. 5), read by
            callbacks through :meth:`noisy_test_set`.
        eve_distance_m: Eve's distance from Bob for a generated synthetic set (002 Fig. 11: 0.15 m).
        num_workers: DataLoader workers.
        num_subcarriers: ``K`` of a generated synthetic set (002: 64).

    Noise is added to the complex CFRs (SNR relative to each sample's mean subcarrier power, both
    bands independently) before realisation (002 (13)) and min-max normalisation (002 (14)-(15))
    fitted on the training split as trained on; the normaliser is in :meth:`state_dict`, so it
    travels with checkpoints. Batches are drawn by index lists (no per-sample Python).
    """

    def __init__(
        self,
        h5_path: str | None = None,
        generate_if_missing: bool = True,
        synthetic_users: int = 100_000,
        seed: int = 0,
        train_fraction: float = 0.8,
        val_fraction: float = 0.1,
        batch_size: int = 128,
        train_snr_db: float | None = None,
        cross_dataset: int | None = None,
        test_snr_db: list[float] | None = None,
        eve_distance_m: float = PAPER_002_EVE_DISTANCE_M,
        num_workers: int = 0,
        num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS,
    ) -> None:
        super().__init__()
        if not (is_int(synthetic_users) and synthetic_users >= 2):
            raise ValueError(f"synthetic_users={synthetic_users!r} must be an integer >= 2")
        if not (is_int(seed) and seed >= 0):
            raise ValueError(f"seed={seed!r} must be a non-negative integer")
        if not (isinstance(train_fraction, (int, float)) and 0.0 < train_fraction < 1.0):
            raise ValueError(f"train_fraction={train_fraction!r} must lie in (0, 1)")
        if not (is_real(val_fraction) and 0.0 < val_fraction < 1.0):
            raise ValueError(f"val_fraction={val_fraction!r} must lie in (0, 1)")
        if not (is_int(batch_size) and batch_size >= 1):
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if train_snr_db is not None and not math.isfinite(train_snr_db):
            raise ValueError(f"train_snr_db={train_snr_db!r} must be finite or None")
        if cross_dataset is not None:
            cross_dataset_noisy_count(cross_dataset, 1)  # validates 1..5
            if train_snr_db is not None:
                raise ValueError(f"give train_snr_db ({train_snr_db}) or cross_dataset ({cross_dataset}), "
                                 "not both")
        if test_snr_db is not None and not all(math.isfinite(s) for s in test_snr_db):
            raise ValueError(f"test_snr_db={test_snr_db!r} must hold finite SNRs")
        if not (is_int(num_workers) and num_workers >= 0):
            raise ValueError(f"num_workers={num_workers!r} must be a non-negative integer")
        if not (is_int(num_subcarriers) and num_subcarriers >= 1):
            raise ValueError(f"num_subcarriers={num_subcarriers!r} must be a positive integer")
        if h5_path is not None and (not isinstance(h5_path, str | Path) or not str(h5_path)):
            raise ValueError(f"h5_path={h5_path!r} must be a file path or None")
        if h5_path is not None and Path(h5_path).is_dir():
            raise ValueError(f"h5_path={str(h5_path)!r} is a directory; give the path of an HDF5 file")
        if not (is_real(eve_distance_m) and math.isfinite(eve_distance_m) and eve_distance_m > 0):
            raise ValueError(f"eve_distance_m={eve_distance_m!r} must be a finite distance > 0 (m)")
        self.save_hyperparameters()
        self.h5_path = h5_path
        self.generate_if_missing = generate_if_missing
        self.synthetic_users = synthetic_users
        self.seed = seed
        self.train_fraction = float(train_fraction)
        self.val_fraction = float(val_fraction)
        self.batch_size = batch_size
        self.train_snr_db = train_snr_db
        self.cross_dataset = cross_dataset
        self.test_snr_db = [float(s) for s in (test_snr_db if test_snr_db is not None else range(0, 41, 5))]
        self.eve_distance_m = eve_distance_m
        self.num_workers = num_workers
        self.num_subcarriers = num_subcarriers
        self.normalizer: MinMaxNormalizer | None = None
        self.data_attrs: dict[str, Any] = {}
        self._feature_dim: int | None = None
        self._loaded = False

    # -- data preparation --------------------------------------------------------------------

    @property
    def feature_dim(self) -> int:
        """``2K``, the KGNet input/output width (available before ``setup`` for model linking)."""
        if self._feature_dim is None:
            k = self.num_subcarriers
            if self.h5_path is not None and Path(self.h5_path).is_file():
                with h5py.File(self.h5_path, "r") as handle:
                    k = int(handle.attrs.get("num_subcarriers", k))
            self._feature_dim = 2 * k
        return self._feature_dim

    def prepare_data(self) -> None:
        """Write the synthetic file if ``h5_path`` is missing and ``generate_if_missing``."""
        if self.h5_path is None or Path(self.h5_path).exists():
            return
        if not self.generate_if_missing:
            raise FileNotFoundError(
                f"{self.h5_path} does not exist and generate_if_missing is false; build it with "
                f"'python -m channeldata generate --out {self.h5_path}' or 'python -m channeldata from-deepmimo'")
        generate_synthetic(self.h5_path, users=self.synthetic_users, seed=self.seed,
                           eve_distance_m=self.eve_distance_m, num_subcarriers=self.num_subcarriers)

    def _load(self) -> DualBandData:
        if self.h5_path is None:
            return synthetic_dual_band(self.synthetic_users, self.seed, eve_distance_m=self.eve_distance_m,
                                       num_subcarriers=self.num_subcarriers)
        try:
            self.prepare_data()
        except FileExistsError:  # another process wrote it meanwhile: use theirs
            pass
        data = read_dual_band(self.h5_path)
        if data.attrs["source"] == SOURCE_SYNTHETIC and (
            data.num_users != self.synthetic_users or int(data.attrs["seed"]) != self.seed
        ):
            warnings.warn(f"{self.h5_path} holds {data.num_users} synthetic users from seed "
                          f"{data.attrs['seed']}; the file is used as it is (synthetic_users="
                          f"{self.synthetic_users}, seed={self.seed} only apply when it is generated)",
                          stacklevel=2)
        return data

    def setup(self, stage: str | None = None) -> None:
        if self._loaded:
            return
        data = self._load()
        self.data_attrs = dict(data.attrs)
        n = data.num_users
        num_side = round(self.train_fraction * n)
        if not 1 <= num_side <= n - 1:
            raise ValueError(f"train_fraction={self.train_fraction} leaves an empty split of {n} users")
        num_val = round(self.val_fraction * num_side)
        if not 1 <= num_val <= num_side - 1:
            raise ValueError(f"val_fraction={self.val_fraction} leaves an empty train or validation split of the "
                             f"{num_side} training-side users")
        perm = torch.randperm(n, generator=generator_for(self.seed, "split"))
        side_index, self.test_index = perm[:num_side], perm[num_side:]
        cfr1 = torch.from_numpy(data.cfr_band1)
        cfr2 = torch.from_numpy(data.cfr_band2)
        position = torch.from_numpy(data.position_m)
        self.test_cfr_band1, self.test_cfr_band2 = cfr1[self.test_index], cfr2[self.test_index]
        self.test_positions_m = position[self.test_index]
        eve_all = (torch.from_numpy(data.eve_cfr_band1), torch.from_numpy(data.eve_cfr_band2)) if data.has_eve \
            else None
        if data.has_eve:
            self.eve_cfr_band1, self.eve_cfr_band2 = eve_all[0][self.test_index], eve_all[1][self.test_index]
            self.eve_positions_m = torch.from_numpy(data.eve_position_m)[self.test_index]
        else:
            self.eve_cfr_band1 = self.eve_cfr_band2 = self.eve_positions_m = None
        num_train = num_side  # noise treatment over the whole training side, split below

        # Training inputs as trained on: noise-free, at train_snr_db, or a cross dataset.
        h1, h2 = cfr1[side_index], cfr2[side_index]
        self.train_noisy_mask = torch.zeros(num_train, dtype=torch.bool)
        if self.train_snr_db is not None:
            self.train_noisy_mask[:] = True
        elif self.cross_dataset is not None:
            count = cross_dataset_noisy_count(self.cross_dataset, num_train)
            chosen = torch.randperm(num_train, generator=generator_for(self.seed, "cross"))[:count]
            self.train_noisy_mask[chosen] = True
        if bool(self.train_noisy_mask.any()):
            snr = 0.0 if self.cross_dataset is not None else self.train_snr_db
            gen = generator_for(self.seed, "train-noise")
            mask = self.train_noisy_mask
            h1, h2 = h1.clone(), h2.clone()
            h1[mask] = add_awgn(h1[mask], snr, gen)
            h2[mask] = add_awgn(h2[mask], snr, gen)
        # The validation split is cut from the training side after its noise treatment, so it
        # mirrors what is trained on; the normaliser is fitted on the remaining training users only.
        f1, f2 = cfr_to_features(h1).float(), cfr_to_features(h2).float()
        val_pos = torch.randperm(num_side, generator=generator_for(self.seed, "val-split"))[:num_val]
        is_val = torch.zeros(num_side, dtype=torch.bool)
        is_val[val_pos] = True
        self.val_index, self.train_index = side_index[is_val], side_index[~is_val]
        self.val_features_band1, self.val_features_band2 = f1[is_val], f2[is_val]
        self.train_features_band1, self.train_features_band2 = f1[~is_val], f2[~is_val]
        self.val_noisy_mask, self.train_noisy_mask = self.train_noisy_mask[is_val], self.train_noisy_mask[~is_val]
        self.train_cfr_band1, self.train_cfr_band2 = cfr1[self.train_index], cfr2[self.train_index]
        self.train_positions_m = position[self.train_index]
        self.val_cfr_band1, self.val_cfr_band2 = cfr1[self.val_index], cfr2[self.val_index]
        self.val_eve_cfr = None if eve_all is None else (eve_all[0][self.val_index], eve_all[1][self.val_index])
        if self.normalizer is None:  # a normaliser from a checkpoint wins
            self.normalizer = MinMaxNormalizer.fit(self.train_features_band1, self.train_features_band2)
            span = self.normalizer.maximum - self.normalizer.minimum
            if not bool(torch.isfinite(span).all()):
                raise ValueError(f"{self.h5_path or 'the synthetic data'}: the training features' min-max span "
                                 "overflows float32; the CFR values are far outside any physical range")
        self._feature_dim = 2 * data.num_subcarriers
        self._loaded = True

    # -- normalised tensors --------------------------------------------------------------------

    def _check_ready(self) -> MinMaxNormalizer:
        if not self._loaded or self.normalizer is None:
            raise RuntimeError("DualBandDataModule.setup() must run first")
        return self.normalizer

    def _features(self, cfr: torch.Tensor, band: int) -> torch.Tensor:
        return self._check_ready().transform(cfr_to_features(cfr).float(), band)

    @property
    def train_x1(self) -> torch.Tensor:
        return self._check_ready().transform(self.train_features_band1, 1)

    @property
    def train_x2(self) -> torch.Tensor:
        return self._check_ready().transform(self.train_features_band2, 2)

    @property
    def val_x1(self) -> torch.Tensor:
        return self._check_ready().transform(self.val_features_band1, 1)

    @property
    def val_x2(self) -> torch.Tensor:
        return self._check_ready().transform(self.val_features_band2, 2)

    @property
    def test_x1(self) -> torch.Tensor:
        return self._features(self.test_cfr_band1, 1)

    @property
    def test_x2(self) -> torch.Tensor:
        return self._features(self.test_cfr_band2, 2)

    @property
    def eve_x1(self) -> torch.Tensor | None:
        """Eve's normalised Band1 features, row i next to test-split Bob i (None without Eve)."""
        return None if self.eve_cfr_band1 is None else self._features(self.eve_cfr_band1, 1)

    @property
    def eve_x2(self) -> torch.Tensor | None:
        """Eve's normalised Band2 features, row i next to test-split Bob i (None without Eve)."""
        return None if self.eve_cfr_band2 is None else self._features(self.eve_cfr_band2, 2)

    def _noise_generator(self, kind: str, snr_db: float, generator: torch.Generator | None):
        if not math.isfinite(snr_db):
            raise ValueError(f"snr_db={snr_db!r} must be finite")
        return generator if generator is not None else generator_for(self.seed, kind, float(snr_db))

    def noisy_test_set(self, snr_db: float, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised test-split ``(x1, x2)`` with AWGN at ``snr_db`` on both bands (002 Fig. 5).

        Without ``generator`` the noise is derived from ``seed`` and ``snr_db`` (repeatable).
        """
        self._check_ready()
        gen = self._noise_generator("test-noise", snr_db, generator)
        return (self._features(add_awgn(self.test_cfr_band1, snr_db, gen), 1),
                self._features(add_awgn(self.test_cfr_band2, snr_db, gen), 2))

    def noisy_eve_set(self, snr_db: float, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Eve's normalised ``(x1, x2)`` with AWGN at ``snr_db`` (002 Fig. 12); None without Eve."""
        self._check_ready()
        if self.eve_cfr_band1 is None:
            return None
        gen = self._noise_generator("eve-noise", snr_db, generator)
        return (self._features(add_awgn(self.eve_cfr_band1, snr_db, gen), 1),
                self._features(add_awgn(self.eve_cfr_band2, snr_db, gen), 2))

    def evaluation_set(self, split: str, snr_db: float | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Normalised ``(x1, x2, eve_x2)`` of the ``"val"`` or ``"test"`` split (``eve_x2`` None without
        Eve); with ``snr_db``, AWGN on both bands and Eve's (repeatable, derived from the seed).

        ``"val"`` is cut from the training side (as trained on: its noise treatment included, unless
        ``snr_db`` asks for a noisy copy of its clean CFRs); ``"test"`` is the untouched test split.
        """
        self._check_ready()
        if split == "test":
            if snr_db is None:
                return self.test_x1, self.test_x2, self.eve_x2
            eve = self.noisy_eve_set(snr_db)
            return (*self.noisy_test_set(snr_db), None if eve is None else eve[1])
        if split != "val":
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        if snr_db is None:
            eve = None if self.val_eve_cfr is None else self._features(self.val_eve_cfr[1], 2)
            return self.val_x1, self.val_x2, eve
        gen = self._noise_generator("val-noise", snr_db, None)
        x1 = self._features(add_awgn(self.val_cfr_band1, snr_db, gen), 1)
        x2 = self._features(add_awgn(self.val_cfr_band2, snr_db, gen), 2)
        eve = None if self.val_eve_cfr is None else self._features(add_awgn(self.val_eve_cfr[1], snr_db, gen), 2)
        return x1, x2, eve

    # -- loaders -----------------------------------------------------------------------------

    def _loader(self, x1: torch.Tensor, x2: torch.Tensor, shuffle: bool) -> DataLoader:
        dataset = TensorDataset(x1, x2)
        base = (RandomSampler(dataset, generator=generator_for(self.seed, "shuffle"))
                if shuffle else SequentialSampler(dataset))
        # batch_size=None + a BatchSampler as sampler: each fetch indexes the tensors with a list
        # of indices, so a batch is one gather, not batch_size __getitem__ calls plus collation.
        return DataLoader(dataset, sampler=BatchSampler(base, self.batch_size, drop_last=False),
                          batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_x1, self.train_x2, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The validation split (from the training side; never the test split)."""
        return self._loader(self.val_x1, self.val_x2, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_x1, self.test_x2, shuffle=False)

    # -- checkpoint state --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        if self.normalizer is None:
            return {}
        state = {"normalizer": self.normalizer.state_dict(), "feature_dim": self.normalizer.feature_dim}
        attrs = getattr(self, "data_attrs", None) or {}
        plain = {k: (v.item() if hasattr(v, "item") and getattr(v, "size", 1) == 1 else v) for k, v in attrs.items()}
        state["data_attrs"] = {k: v for k, v in plain.items() if isinstance(v, str | int | float | bool)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        normalizer = MinMaxNormalizer.from_state_dict(state_dict["normalizer"])
        if self._loaded and normalizer.feature_dim != self.feature_dim:
            raise ValueError(f"checkpoint normaliser has feature_dim {normalizer.feature_dim}, the data "
                             f"has {self.feature_dim}")
        self.normalizer = normalizer
