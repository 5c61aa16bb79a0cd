"""PKG-Net (000 Sec. V, 001 Sec. VI) and its LightningModule.

The network is scenario-agnostic: raw physical features in, raw head outputs through the scenario's
design-space projection out. Input normalisation lives inside the net (buffers), so the exported
model takes the raw features in the documented order and units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from losses.skr import NegativeMeanSKR
from physics.scenarios import Scenario


class PKGNet(nn.Module):
    """MLP with projection heads: normalise -> hidden FC+ReLU layers -> one FC head per design output
    -> feasibility projection (001 Fig. 3: two hidden layers; width 200 in 000, 100 in 001).

    Built in two steps so it can be injected from YAML: ``PKGNet(hidden=[100, 100])``, then
    ``build(...)`` with the scenario's input size, feature bounds and design space.
    """

    def __init__(self, hidden: Sequence[int] = (100, 100), activation: str = "relu"):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive widths, got {hidden}")
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        self.hidden, self.activation = hidden, activation
        self._act = acts[activation]
        self.built = False

    def build(self, in_features: int, feature_low: Sequence[float], feature_high: Sequence[float],
              design_space: nn.Module) -> PKGNet:
        low = torch.tensor(feature_low, dtype=torch.float32)
        high = torch.tensor(feature_high, dtype=torch.float32)
        if low.shape != (in_features,) or high.shape != (in_features,):
            raise ValueError(f"feature bounds must have {in_features} entries, got {low.shape}, {high.shape}")
        # map [low, high] to [-1, 1]; constant features (e.g. z = 0) are only centred
        self.register_buffer("center", (low + high) / 2)
        self.register_buffer("half_range", torch.where(high > low, (high - low) / 2, torch.ones_like(low)))
        layers: list[nn.Module] = []
        width = in_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), self._act()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({k: nn.Linear(width, n) for k, n in design_space.heads.items()})
        self.design_space = design_space
        self.in_features = in_features
        self.built = True
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x ``[n, d]`` raw features -> feasible design, real tensors (e.g. ``P [n,M,M,2]``, ``theta [n,L,2]``)."""
        h = self.trunk((x - self.center) / self.half_range)
        raw = {k: head(h) for k, head in self.heads.items()}
        return self.design_space(raw, x)


class PKGNetModule(pl.LightningModule):
    """Unsupervised training of PKG-Net on any scenario (loss, net, optimiser injected from YAML).

    Logs ``{stage}/loss`` and ``{stage}/skr_bits``; ``validation_step``/``test_step`` return the
    per-draw SKR so callbacks (baselines) compare on the same draws.
    """

    def __init__(
        self,
        scenario: Scenario,
        net: PKGNet,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        # No save_hyperparameters(): the scenario, net and loss are objects, and LightningCLI reloads
        # checkpoint hyperparameters with weights_only=True. The YAML config is the record of a run;
        # on_save_checkpoint stores the scenario description so a checkpoint cannot load into another.
        self.scenario = scenario
        low, high = scenario.feature_bounds()
        if not net.built:
            net.build(len(scenario.feature_names), low, high, scenario.design_space())
        self.net = net
        self.loss_fn = loss if loss is not None else NegativeMeanSKR()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    def design(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.scenario.features(batch).to(self.dtype)
        return self.net(x)

    def _step(self, batch: dict[str, torch.Tensor], stage: str):
        outputs = self.design(batch)
        loss = self.loss_fn(self.scenario, batch, outputs)
        n = next(iter(batch.values())).shape[0]
        sync = stage != "train"
        self.log(f"{stage}/loss", loss.float(), prog_bar=sync, batch_size=n, sync_dist=sync)
        if stage == "train":
            self.log("train/skr_bits", -loss.float(), prog_bar=True, batch_size=n)
            return loss
        # evaluation: the per-draw SKR (float64) for the mean and for callbacks comparing baselines
        skr = self.scenario.skr(batch, {k: v.detach().to(torch.float64) for k, v in outputs.items()})
        self.log(f"{stage}/skr_bits", skr.mean().float(), prog_bar=True, batch_size=n, sync_dist=sync)
        return {"loss": loss, "skr": skr}

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx):
        out = self.design(batch)
        out["skr_bits"] = self.scenario.skr(batch, out)
        return out

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.parameters())
        if self.lr_scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.lr_scheduler_factory(opt), "monitor": "val/loss"}}

    # -- checkpoint guard: a checkpoint only loads into the scenario it was trained on -----------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["phykey"] = {"scenario": self.scenario.describe(), "hidden": self.net.hidden}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_checkpoint_scenario(checkpoint, self.scenario, self.net)


def check_checkpoint_scenario(checkpoint: dict[str, Any], scenario: Scenario, net: PKGNet) -> None:
    """Raise ValueError when a checkpoint was trained on another scenario or net shape."""
    saved = checkpoint.get("phykey")
    if saved is None:
        raise ValueError("checkpoint has no phykey scenario record: it was not written by PKGNetModule")
    here = scenario.describe()
    if saved["scenario"] != here:
        diff = {k: (saved["scenario"].get(k), here.get(k)) for k in set(saved["scenario"]) | set(here)
                if saved["scenario"].get(k) != here.get(k)}
        raise ValueError(f"checkpoint was trained on another scenario; (checkpoint, config) differ in {diff}")
    if list(saved["hidden"]) != list(net.hidden):
        raise ValueError(f"checkpoint net has hidden={saved['hidden']}, config has hidden={net.hidden}")
