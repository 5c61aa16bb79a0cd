"""Unsupervised SKR losses (000 (29), 001 (55)-(56))."""

from __future__ import annotations

import torch
from torch import nn

from physics.checks import trusted_inputs
from physics.scenario import total_skr


class NegativeMeanSKR(nn.Module):
    """L = -(1/K) sum_k R_k: minus the mean over draws k of the scenario's secret key rate (bits);
    for a multi-user scenario (``skr`` of shape ``[n, K_users]``) R_k is the sum over users.

    The objective is evaluated by ``scenario.skr`` in float64 whatever the network's precision
    (docs/architecture.md section 5; the float32 path agrees to 1e-3 relative, tested in tests/test_irs_physics.py,
    but float64 costs nothing noticeable at these matrix sizes).
    """

    def forward(self, scenario, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss. ``batch`` comes from the scenario's own ``sample`` and ``outputs`` from its design
        space's projection, both valid by construction: the SKR runs without its value checks
        (:func:`physics.checks.trusted_inputs`), so a training step never waits on a host read for a check."""
        with trusted_inputs():
            return self.from_skr(scenario.skr(batch, {k: v.to(torch.float64) for k, v in outputs.items()}))

    def from_skr(self, skr: torch.Tensor) -> torch.Tensor:
        """The loss of an SKR already evaluated (``[n]`` or ``[n, K]`` bits): evaluation computes it once."""
        return -total_skr(skr).mean()
