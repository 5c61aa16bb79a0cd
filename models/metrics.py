"""torchmetrics classes for paper 002's metrics; each has a functional twin in :mod:`keygen.metrics`.

| class | twin | 002 |
|---|---|---|
| :class:`NMSE` | ``keygen.metrics.nmse`` | (21), mean over samples of ``||x2_hat - x2||^2 / ||x2||^2`` |
| :class:`NVD` | ``keygen.metrics.nvd`` | (22), mean over samples of ``||K1 - K2||^2 / ||K2||^2`` |
| :class:`KeyErrorRate` | ``keygen.metrics.key_error_rate`` | KER: mismatched key bits / key bits |
| :class:`KeyGenerationRatio` | ``keygen.metrics.key_generation_ratio`` | KGR: key bits / subcarriers |

The twins are numpy functions that validate and return one number for one batch. The classes are their
stateful, accumulate-over-batches form for Lightning: NMSE and NVD are computed in torch on the
metric's device (no host round trip in the training loop; a non-finite prediction gives a non-finite
value instead of an exception), KER and KGR take the quantiser's numpy/torch outputs. Sums are kept
in float64, so ``compute()`` after several ``update()`` calls equals the twin applied to the
concatenated batches: a per-sample mean for NMSE / NVD / KGR, bit-weighted for KER (tests check both).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from keygen.quantize import check_levels
from losses.mse import nmse_per_sample

__all__ = ["NMSE", "NVD", "KeyErrorRate", "KeyGenerationRatio"]


class _PerSampleMean(Metric):
    """Mean over all samples seen of a per-sample ratio ``||a - b||^2 / ||b||^2``."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, a: Tensor, b: Tensor) -> None:
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        if a.shape != b.shape or a.dim() != 2:
            raise ValueError(f"expected two [n, D] tensors of equal shape, got {tuple(a.shape)}, {tuple(b.shape)}")
        per = nmse_per_sample(a.detach().to(torch.float64), b.detach().to(torch.float64), eps=0.0)
        self.total = self.total + per.sum().to(self.total.device)
        self.count = self.count + per.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count).to(torch.float32)


class NMSE(_PerSampleMean):
    """002 (21): ``update(x2_hat, x2)``; twin ``keygen.metrics.nmse``."""


class NVD(_PerSampleMean):
    """002 (22): ``update(k1, k2)`` with ``k2`` (Bob's features) the reference in the denominator;
    twin ``keygen.metrics.nvd``."""


# States are updated out of place (``a = a + b``): after a ``trainer.validate`` the states were reset
# inside ``torch.inference_mode`` and are inference tensors, which refuse in-place updates outside it.


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


class KeyErrorRate(Metric):
    """KER over all key bits seen: ``update(bits_a, bits_b, kept)`` with the arrays returned by
    ``keygen.quantize.exchange_and_encode`` (``[n, D, log2 K]`` or ``[n, D]`` bits, ``[n, D]`` kept).
    ``nan`` while no key bit was seen (as the twin ``keygen.metrics.key_error_rate``)."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("bits", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, bits_a, bits_b, kept) -> None:
        a, b, k = _as_numpy(bits_a), _as_numpy(bits_b), _as_numpy(kept).astype(bool)
        if a.ndim == 2:
            a, b = a[..., None], b[..., None]
        if a.shape != b.shape or a.shape[:2] != k.shape:
            raise ValueError(f"bits_a {a.shape}, bits_b {b.shape} and kept {k.shape} do not match")
        self.errors = self.errors + int(np.count_nonzero((a != b) & k[..., None]))
        self.bits = self.bits + int(k.sum()) * a.shape[2]

    def compute(self) -> Tensor:
        if int(self.bits) == 0:
            return torch.tensor(float("nan"))
        return (self.errors.double() / self.bits.double()).to(torch.float32)


class KeyGenerationRatio(Metric):
    """KGR: mean over samples of ``log2(K) * (kept features) / L``; ``update(kept)`` with ``kept`` the
    ``[n, 2L]`` mask from ``exchange_and_encode``. Twin ``keygen.metrics.key_generation_ratio``."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, levels: int, num_subcarriers: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.levels = check_levels(levels)
        self.num_subcarriers = int(num_subcarriers)
        self.add_state("kept", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, kept) -> None:
        k = _as_numpy(kept)
        if k.ndim != 2 or k.shape[1] != 2 * self.num_subcarriers:
            raise ValueError(f"kept has shape {k.shape}; expected [n, 2L] = [n, {2 * self.num_subcarriers}]")
        self.kept = self.kept + int(k.astype(bool).sum())
        self.count = self.count + k.shape[0]

    def compute(self) -> Tensor:
        bits_per_feature = self.levels.bit_length() - 1
        value = self.kept.double() * bits_per_feature / (self.count.double() * self.num_subcarriers)
        return value.to(torch.float32)
