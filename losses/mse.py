"""Thin regression losses for the band-feature map (paper 002).

- :class:`MSELoss` is 002 (17): ``1 / (V N_x) sum_v ||x2_hat^(v) - x2^(v)||^2``, the mean over the batch
  *and* the feature dimension (what ``torch.nn.functional.mse_loss`` computes with ``reduction="mean"``).
- :class:`NMSELoss` is 002 (21) as a loss: the mean over samples of ``||x2_hat - x2||^2 / ||x2||^2``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MSELoss", "NMSELoss", "nmse_per_sample"]


def nmse_per_sample(pred: Tensor, target: Tensor, eps: float = 1e-12) -> Tensor:
    """``||pred - target||^2 / ||target||^2`` over the last dimension, ``[..., D] -> [...]``."""
    err = (pred - target).pow(2).sum(-1)
    ref = target.pow(2).sum(-1)
    return err / ref.clamp_min(eps)


class MSELoss(nn.Module):
    """002 (17): mean squared error over batch and features."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        return torch.nn.functional.mse_loss(pred, target, reduction="mean")


class NMSELoss(nn.Module):
    """002 (21) as a training loss: mean over samples of the per-sample normalised squared error."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        return nmse_per_sample(pred, target, self.eps).mean()
