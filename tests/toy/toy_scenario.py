"""A toy second scenario that proves the contract is closed: K parallel single-antenna Gaussian links.

Alice and Bob probe K reciprocal links; link k has a gain-to-noise ratio g_k (the feature, in dB) and
gets probing power p_k with sum_k p_k = P (a fixed budget). Alice and Bob observe the common Gaussian
source through independent unit noises, so link k yields I(A;B) = log2((1 + s)^2 / (1 + 2 s)) bits with
s = p_k g_k (two observations of CN(0, s) in unit complex noise; no Eve). The rate is sigmoidal in
s (zero slope at 0), so the equal split is not optimal at low SNR and the optimum (found by a fine
grid over the split for K = 2) is known exactly. ``skr`` is per user ``[n, K]``.

Nothing in models/, datamodules/, callbacks/ or train.py knows this class.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from physics.scenario import Batch, Scenario


def link_rate_bits(s: torch.Tensor) -> torch.Tensor:
    """log2((1+s)^2 / (1+2s)): mutual information of two unit-noise observations of CN(0, s)."""
    return (2.0 * torch.log1p(s) - torch.log1p(2.0 * s)) / math.log(2.0)


class SplitDesign(nn.Module):
    """Softmax over K raw outputs: a feasible power split p >= 0, sum p = P."""

    def __init__(self, K: int, total_power: float):
        super().__init__()
        self.K, self.total_power = K, total_power
        self.heads = {"p": K}

    def forward(self, raw: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"p": self.total_power * torch.softmax(raw["p"], dim=-1)}


class ToyScenario(Scenario):
    def __init__(self, K: int = 2, total_power: float = 1.0, gain_db_range: tuple[float, float] = (-10.0, 10.0)):
        if int(K) != K or K < 2:
            raise ValueError(f"K must be an integer >= 2, got {K!r}")
        self.K, self.total_power = int(K), float(total_power)
        self.gain_db_range = tuple(float(v) for v in gain_db_range)
        self.name = "toy_parallel_links"
        self.feature_names = tuple(f"g{k}_db" for k in range(self.K))
        self.feature_units = ("dB",) * self.K

    def num_users(self) -> int:
        return self.K

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        lo, hi = self.gain_db_range
        return {"g_db": lo + (hi - lo) * torch.rand(n, self.K, generator=generator, dtype=torch.float64)}

    def features(self, batch: Batch) -> torch.Tensor:
        return batch["g_db"]

    def feature_bounds(self):
        return [self.gain_db_range[0]] * self.K, [self.gain_db_range[1]] * self.K

    def design_space(self) -> nn.Module:
        return SplitDesign(self.K, self.total_power)

    def skr(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        g = torch.pow(10.0, batch["g_db"].to(torch.float64) / 10.0)
        return link_rate_bits(outputs["p"].to(torch.float64) * g)

    def baselines(self, batch: Batch, generator: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
        n = batch["g_db"].shape[0]
        equal = torch.full((n, self.K), self.total_power / self.K, dtype=torch.float64)
        strongest = torch.nn.functional.one_hot(batch["g_db"].argmax(-1), self.K).to(torch.float64) * self.total_power
        return {"equal_split": {"p": equal}, "all_to_strongest": {"p": strongest}}

    def optimum(self, batch: Batch, generator: torch.Generator, grid_points: int = 2001) -> dict[str, torch.Tensor]:
        if self.K != 2:
            raise ValueError("the toy optimum is a grid search for K = 2 only")
        f = torch.linspace(0.0, 1.0, grid_points, dtype=torch.float64)
        p = torch.stack([f, 1 - f], -1) * self.total_power  # [G, 2]
        g = torch.pow(10.0, batch["g_db"] / 10.0)  # [n, 2]
        total = link_rate_bits(p[None] * g[:, None]).sum(-1)  # [n, G]
        return {"p": p[total.argmax(-1)]}

    def subsets(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"weak": batch["g_db"].max(-1).values < 0.0}

    def describe(self) -> dict[str, Any]:
        return {"scenario": self.name, "K": self.K, "total_power": self.total_power,
                "feature_names": list(self.feature_names), "feature_units": list(self.feature_units),
                "outputs": {"p": [self.K]}}
