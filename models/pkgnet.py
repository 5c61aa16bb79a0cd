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
from models.checkpoints import RECORD_KEY, SETTINGS_KEY, check_record
from models.hparams import save_plain_hyperparameters
from models.refine import Refinement
from physics.scenario import INDEX_KEY, Scenario, check_description, strip_index, total_skr


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

    Logs ``{stage}/loss`` and ``{stage}/skr_bits`` (for a multi-user scenario, the sum over users);
    ``validation_step``/``test_step`` return the per-draw SKR (``[n]`` or ``[n, K]``) so callbacks
    (baselines) compare on the same draws. Validation/test means are sums and counts all-reduced at
    the end of the epoch (on every rank, also one whose share of the draws is empty), so DDP reports
    the mean over all draws, not a mean of per-rank means.

    ``refinement`` (optional, ``models.refine``): a model component that refines the net's design at evaluation
    (validation, test, predict, export) on the problem the scenario's design space states; training optimises
    the net's direct output. It holds no weights, so a checkpoint may be evaluated with another one.

    The validation/test loss is derived from the one SKR evaluation of the batch (``loss.from_skr``).

    Hyper-parameters are stored as plain types (the YAML's ``class_path``/``init_args`` under
    LightningCLI), so ``PKGNetModule.load_from_checkpoint(path)`` rebuilds the module; the scenario's
    description is stored too, so a checkpoint never loads into another scenario or net shape.
    """

    def __init__(
        self,
        scenario: Scenario,
        net: PKGNet,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        refinement: Refinement | None = None,
    ):
        super().__init__()
        save_plain_hyperparameters(self)
        if not isinstance(scenario, Scenario):
            raise ValueError(f"scenario must be a physics.scenario.Scenario, got {type(scenario).__name__}")
        check_description(scenario.describe(), type(scenario).__name__)
        self.scenario = scenario
        low, high = scenario.feature_bounds()
        if not net.built:
            net.build(len(scenario.feature_names), low, high, scenario.design_space())
        self.net = net
        if refinement is not None:
            if not isinstance(refinement, Refinement):
                raise ValueError(f"refinement must be a models.refine.Refinement, got {type(refinement).__name__}")
            refinement.check(net.design_space, scenario)
        self.refinement = refinement
        self.loss_fn = loss if loss is not None else NegativeMeanSKR()
        if not callable(getattr(self.loss_fn, "from_skr", None)):
            raise ValueError(f"loss must be an SKR loss with from_skr(skr) (the evaluation loss of the SKR the module "
                             f"already computed, e.g. losses.skr.NegativeMeanSKR), got {type(self.loss_fn).__name__}")
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self._eval_sums = torch.zeros(3, dtype=torch.float64)  # loss * n, sum of SKR, n

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The net's design, refined in evaluation mode when the module has a refinement (as ``RefinedNet``)."""
        design = self.net(x)
        if self.refinement is None:
            return design
        return self.refinement(self.net.design_space, design, x)

    def design(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.scenario.features(strip_index(batch)).to(self.dtype)
        return self(x)

    def _step(self, batch: dict[str, torch.Tensor], stage: str):
        # evaluation batches carry draw indices; -1 marks DDP padding rows, which are not counted
        valid = batch[INDEX_KEY] >= 0 if INDEX_KEY in batch else None
        batch = strip_index(batch)
        outputs = self.design(batch)  # on the whole batch: under DDP the forward is a collective
        if stage == "train":
            loss = self.loss_fn(self.scenario, batch, outputs)
            n = next(iter(batch.values())).shape[0]
            self.log("train/loss", loss.float(), batch_size=n)
            self.log("train/skr_bits", -loss.float(), prog_bar=True, batch_size=n)
            return loss
        # evaluation: the per-draw SKR (float64), computed once: for the mean, the loss and the callbacks comparing
        # baselines (on every row; the padding rows are left out of the sums)
        skr = self.scenario.skr(batch, {k: v.detach().to(torch.float64) for k, v in outputs.items()})
        counted = (skr if valid is None else skr[valid.to(skr.device)]).detach()
        n = counted.shape[0]
        if n > 0:
            loss = self.loss_fn.from_skr(counted).double().cpu()
            per_draw = total_skr(counted).double().cpu()
            self._eval_sums += torch.stack([loss * n, per_draw.sum(), torch.tensor(float(n), dtype=torch.float64)])
        return {"skr": skr}

    def _start_eval(self) -> None:
        self._eval_sums = torch.zeros(3, dtype=torch.float64)

    def _log_eval(self, stage: str) -> None:
        sums = self.trainer.strategy.reduce(self._eval_sums.to(self.device), reduce_op="sum").double().cpu()
        if sums[2] > 0:
            self.log(f"{stage}/loss", sums[0] / sums[2], prog_bar=True, sync_dist=False)
            self.log(f"{stage}/skr_bits", sums[1] / sums[2], prog_bar=True, sync_dist=False)

    def on_validation_epoch_start(self) -> None:
        self._start_eval()

    def on_test_epoch_start(self) -> None:
        self._start_eval()

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx):
        batch = strip_index(batch)
        out = self.design(batch)
        out["skr_bits"] = self.scenario.skr(batch, out)
        return out

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.parameters())
        if self.lr_scheduler_factory is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.lr_scheduler_factory(opt), "monitor": "val/loss"}}

    # -- checkpoint guard: a checkpoint only loads into the scenario and net it was trained as ------
    def checkpoint_record(self) -> dict[str, Any]:
        """Plain-type record stored in checkpoints (see :mod:`models.checkpoints`); the refinement is a setting
        (``SETTINGS_KEY``): it changes no weight, so a checkpoint may be evaluated with another one."""
        refinement = self.refinement.describe() if self.refinement is not None else None
        return {"family": "pkgnet", "net": type(self.net).__name__, "hidden": list(self.net.hidden),
                "activation": self.net.activation, "scenario": self.scenario.describe(),
                SETTINGS_KEY: {"refinement": refinement}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RECORD_KEY] = self.checkpoint_record()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # settings (the refinement) may differ: train.py says so, and refuses them before fit resumes
        check_record(checkpoint, self.checkpoint_record())
