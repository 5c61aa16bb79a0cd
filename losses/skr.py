"""Unsupervised SKR losses (000 (29), 001 (55)-(56))."""

from __future__ import annotations

import torch
from torch import nn


class NegativeMeanSKR(nn.Module):
    """L = -(1/K) sum_k R_k: minus the mean secret key rate (bits) of the scenario's objective.

    The objective is evaluated by ``scenario.skr`` in float64 whatever the network's precision
    (DESIGN.md section 5; the float32 path agrees to 1e-3 relative, tested in tests/test_irs_physics.py,
    but float64 costs nothing noticeable at these matrix sizes).
    """

    def forward(self, scenario, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        skr = scenario.skr(batch, {k: v.to(torch.float64) for k, v in outputs.items()})
        return -skr.mean()
