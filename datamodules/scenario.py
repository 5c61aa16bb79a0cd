"""ScenarioDataModule: draws scenario statistics on the fly from seeded generators.

Training: a fresh set of draws every epoch (001 Sec. VII-A: 1000 draws per epoch, batch 100). The
draws of epoch e, batch i come from a generator seeded by (seed, "train", e, i), so they depend on
the epoch number only: an interrupted run resumed from a checkpoint sees exactly the draws an
uninterrupted run would, and DDP ranks share one stream (each rank takes its share of batch indices).
Validation and test: fixed seeded sets, each batch carrying its draws' global indices
(``draw_index``), served as an iterable dataset that gives each DDP rank its own batches (no
padding duplicates). Batches are ``dict[str, Tensor]`` of physical statistics.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from physics.checks import check_int
from physics.scenario import INDEX_KEY, STREAMS, Batch, Scenario, generator_for


def _chunks(batch: Batch, size: int) -> list[Batch]:
    n = next(iter(batch.values())).shape[0]
    return [{k: v[i:i + size] for k, v in batch.items()} for i in range(0, n, size)]


class _RankBatches(IterableDataset):
    """The fixed evaluation batches of this DDP rank: batch i goes to rank i mod world size.

    Every rank must run the same number of steps (DDP's forward is a collective), so a rank with
    fewer batches is topped up with a *padding* batch whose ``draw_index`` is -1: the module and
    the callbacks ignore those rows, so no draw is counted twice (a DistributedSampler would repeat
    real batches instead)."""

    def __init__(self, batches: list[Batch], dm: ScenarioDataModule):
        self.batches, self.dm = batches, dm

    def __iter__(self):
        trainer = self.dm.trainer
        rank, world = getattr(trainer, "global_rank", 0), getattr(trainer, "world_size", 1)
        mine = self.batches[rank::world]
        yield from mine
        for _ in range(-(-len(self.batches) // world) - len(mine)):
            pad = dict(self.batches[0])
            pad[INDEX_KEY] = torch.full_like(pad[INDEX_KEY], -1)
            yield pad


class _EpochDraws(Dataset):
    """Item i = training batch i of the current epoch, drawn on access (no per-sample Python)."""

    def __init__(self, dm: ScenarioDataModule):
        self.dm = dm

    def __len__(self) -> int:
        return self.dm.num_train_batches

    def __getitem__(self, i: int) -> Batch:
        dm = self.dm
        epoch = dm.trainer.current_epoch if dm.trainer is not None else 0
        g = generator_for(dm.seed, STREAMS["train"], epoch, i)
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
                        ("test_draws", test_draws), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            check_int(name, v)
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
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
            self._val = _chunks(self.fixed_set("val", with_index=True), self.eval_batch_size)
            self._test = _chunks(self.fixed_set("test", with_index=True), self.eval_batch_size)

    def fixed_set(self, split: str, with_index: bool = False) -> Batch:
        """The seeded validation or test draws as one batch (``with_index``: plus ``draw_index``)."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        n = {"val": self.val_draws, "test": self.test_draws}[split]
        batch = self.scenario.sample(n, generator_for(self.seed, STREAMS[split]))
        if with_index:
            batch[INDEX_KEY] = torch.arange(n, dtype=torch.int64)
        return batch

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_EpochDraws(self), batch_size=None, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_RankBatches(self._val, self), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_RankBatches(self._test, self), batch_size=None)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    # -- named evaluation sets for the paper figures ---------------------------------------
    def sweep(self, field: str, values, **fixed) -> Batch:
        """One draw per value of ``field`` at the scenario's evaluation point (``Scenario.point``),
        the other fields from ``fixed``; which fields exist is the scenario's to say."""
        values = torch.as_tensor(values, dtype=torch.float64)
        if values.ndim != 1 or values.numel() < 1:
            raise ValueError(f"sweep values must be a non-empty 1-D sequence, got shape {tuple(values.shape)}")
        return self.scenario.point(values.shape[0], **{field: values, **fixed})
