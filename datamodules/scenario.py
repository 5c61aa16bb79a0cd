"""ScenarioDataModule: draws scenario statistics on the fly from seeded generators.

Training: a fresh set of draws every epoch (001 Sec. VII-A: 1000 draws per epoch, batch 100). The
draws of epoch e, batch i come from a generator seeded by (seed, "train", e, i), so they depend on
the epoch number only: an interrupted run resumed from a checkpoint sees exactly the draws an
uninterrupted run would, and DDP ranks share one stream (each rank takes its share of batch indices).
Validation and test: fixed seeded sets. Batches are ``dict[str, Tensor]`` of physical statistics.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from physics.scenarios import Batch, Scenario, generator_for

_STREAM = {"train": 1, "val": 2, "test": 3}  # generator streams (callbacks/baselines.py uses 4, 5)


def _chunks(batch: Batch, size: int) -> list[Batch]:
    n = next(iter(batch.values())).shape[0]
    return [{k: v[i:i + size] for k, v in batch.items()} for i in range(0, n, size)]


class _FixedBatches(Dataset):
    def __init__(self, batches: list[Batch]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        return self.batches[i]


class _EpochDraws(Dataset):
    """Item i = training batch i of the current epoch, drawn on access (no per-sample Python)."""

    def __init__(self, dm: ScenarioDataModule):
        self.dm = dm

    def __len__(self) -> int:
        return self.dm.num_train_batches

    def __getitem__(self, i: int) -> Batch:
        dm = self.dm
        epoch = dm.trainer.current_epoch if dm.trainer is not None else 0
        g = generator_for(dm.seed, _STREAM["train"], epoch, i)
        size = min(dm.batch_size, dm.train_draws_per_epoch - i * dm.batch_size)
        return dm.scenario.sample(size, g)


class ScenarioDataModule(pl.LightningDataModule):
    """Draws of ``scenario`` for training (fresh per epoch), validation and test (fixed, seeded).

    ``scenario`` may be omitted when the LightningModule carries one (``PKGNetModule.scenario``):
    the datamodule then draws from the model's scenario at ``setup``.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        train_draws_per_epoch: int = 1000,
        batch_size: int = 100,
        val_draws: int = 1000,
        test_draws: int = 1000,
        eval_batch_size: int = 1000,
        seed: int = 0,
    ):
        super().__init__()
        for name, v in (("train_draws_per_epoch", train_draws_per_epoch), ("val_draws", val_draws),
                        ("test_draws", test_draws)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.scenario = scenario
        self.train_draws_per_epoch = int(train_draws_per_epoch)
        self.batch_size = int(batch_size)
        self.val_draws, self.test_draws = int(val_draws), int(test_draws)
        self.eval_batch_size = int(eval_batch_size)
        self.seed = int(seed)
        self._val: list[Batch] | None = None
        self._test: list[Batch] | None = None

    @property
    def num_train_batches(self) -> int:
        return -(-self.train_draws_per_epoch // self.batch_size)

    def setup(self, stage: str | None = None) -> None:
        if self.scenario is None:
            model = self.trainer.lightning_module if self.trainer is not None else None
            self.scenario = getattr(model, "scenario", None)
            if self.scenario is None:
                raise ValueError("ScenarioDataModule needs a scenario (its own or the LightningModule's)")
        if self._val is None:
            self._val = _chunks(self.fixed_set("val"), self.eval_batch_size)
            self._test = _chunks(self.fixed_set("test"), self.eval_batch_size)

    def fixed_set(self, split: str) -> Batch:
        """The seeded validation or test draws as one batch."""
        n = {"val": self.val_draws, "test": self.test_draws}[split]
        return self.scenario.sample(n, generator_for(self.seed, _STREAM[split]))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_EpochDraws(self), batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_FixedBatches(self._val), batch_size=None, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_FixedBatches(self._test), batch_size=None, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    # -- named evaluation sets for the paper figures ---------------------------------------
    def sweep(self, field: str, values, **fixed) -> Batch:
        """One draw per value of ``field`` at the paper's evaluation point (Bob (10,10,0), Eve at Bob
        minus half a wavelength in x, P_max 25 dBm, eta 0.4, kappa 1), other fields from ``fixed``.

        ``field`` in {"P_max_dbm", "eta", "kappa", "bob_eve_distance_m"}; M and L sweeps need a
        scenario per value (``IRSScenario.with_dims``) and a net trained for it.
        """
        values = torch.as_tensor(values, dtype=torch.float64)
        n = values.shape[0]
        if field == "bob_eve_distance_m":
            batch = self.scenario.point(n, **fixed)
            eve = batch["bob_m"].clone()
            eve[:, 0] -= values
            batch["eve_m"] = eve
            return batch
        if field not in ("P_max_dbm", "eta", "kappa"):
            raise ValueError(f"unknown sweep field {field!r}; allowed: P_max_dbm, eta, kappa, bob_eve_distance_m")
        return self.scenario.point(n, **{field: values, **fixed})
