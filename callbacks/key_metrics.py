"""Key metrics of paper 002 at the end of validation and test: KER, KGR and NVD (Alice, Bob, Eve).

:class:`KeyMetricsCallback` observes; it never touches the loss or the optimiser. At the end of every
validation epoch (and of a test run) it takes the split of that stage -- for ``DualBandDataModule``
the validation split (cut from the training side) at ``val`` and the untouched test split at
``test`` -- and

1. maps Alice's band-1 features with the model, ``x2_hat = net(x1)`` (002 Sec. VI-B);
2. quantises Alice's ``x2_hat`` and Bob's ``x2`` with GDQG (002 Alg. 1, ``levels`` K and ``epsilon``),
   exchanges the guard-band positions and encodes (``keygen.quantize``);
3. logs, with the stage prefix (``val/`` or ``test/``):

   - ``ker``: key error rate between Alice's and Bob's initial keys;
   - ``kgr``: key generation ratio (key bits per subcarrier);
   - ``nvd_alice_bob_before``: NVD(x1, x2), Alice's own band-1 features against Bob's (no mapping);
   - ``nvd_alice_bob_after``: NVD(net(x1), x2);
   - ``nvd_eve_bob``: NVD(x_E, x2), with ``x_E`` Eve's own band-2 features measured next to Bob: her
     best guess of Bob's features is her own measurement (002 Sec. VII-C-4, Figs 11-12);
   - ``ker_eve``, ``kgr_eve``: the same GDQG keys built from Eve's features against Bob's (extra).

NVD is 002 (22) with Bob's features as the reference (denominator). Eve's metrics are skipped when the
data has no Eve. With ``snr_db`` set, the features are the datamodule's
``evaluation_set(split, snr_db)`` (AWGN on both bands, the same noise draw every epoch, derived from
the data seed); ``None`` uses the noise-free split. A datamodule without ``evaluation_set`` is read
batch by batch from the trainer's validation/test loaders (no Eve then).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from keygen.quantize import exchange_and_encode, gdqg_indices
from models.metrics import NVD, KeyErrorRate, KeyGenerationRatio

__all__ = ["KeyMetricsCallback", "key_metrics"]


def _keys(x_a: np.ndarray, x_b: np.ndarray, levels: int, epsilon: float, strict: bool):
    idx_a = gdqg_indices(x_a, levels, epsilon, strict_epsilon=strict)
    idx_b = gdqg_indices(x_b, levels, epsilon, strict_epsilon=strict)
    return exchange_and_encode(idx_a, idx_b, levels)


def _ker_kgr(x_a: Tensor, x_b: Tensor, levels: int, epsilon: float, strict: bool) -> tuple[float, float]:
    bits_a, bits_b, kept = _keys(x_a.double().numpy(), x_b.double().numpy(), levels, epsilon, strict)
    ker, kgr = KeyErrorRate(), KeyGenerationRatio(levels, x_b.shape[1] // 2)
    ker.update(bits_a, bits_b, kept)
    kgr.update(kept)
    return float(ker.compute()), float(kgr.compute())


def _nvd(a: Tensor, b: Tensor) -> float:
    metric = NVD()
    metric.update(a, b)
    return float(metric.compute())


def key_metrics(
    x1: Tensor,
    x2: Tensor,
    x2_hat: Tensor,
    eve_x2: Tensor | None = None,
    levels: int = 2,
    epsilon: float = 0.1,
    strict_epsilon: bool = True,
) -> dict[str, float]:
    """The callback's numbers for given features (CPU ``[n, 2L]`` tensors); keys without stage prefix."""
    x1, x2, x2_hat = (t.detach().cpu().float() for t in (x1, x2, x2_hat))
    ker, kgr = _ker_kgr(x2_hat, x2, levels, epsilon, strict_epsilon)
    out = {
        "ker": ker,
        "kgr": kgr,
        "nvd_alice_bob_before": _nvd(x1, x2),
        "nvd_alice_bob_after": _nvd(x2_hat, x2),
    }
    if eve_x2 is not None:
        eve_x2 = eve_x2.detach().cpu().float()
        out["nvd_eve_bob"] = _nvd(eve_x2, x2)
        out["ker_eve"], out["kgr_eve"] = _ker_kgr(eve_x2, x2, levels, epsilon, strict_epsilon)
    return out


class KeyMetricsCallback(Callback):
    """Logs ``{stage}/ker``, ``/kgr``, ``/nvd_alice_bob_before``, ``/nvd_alice_bob_after``, ``/nvd_eve_bob``
    (plus ``/ker_eve``, ``/kgr_eve``) at validation-epoch end and test end (see module docstring).

    Args:
        levels: GDQG quantisation levels K (power of two; 002 uses 2).
        epsilon: GDQG quantisation factor (guard-band probability per boundary side; 002: 0.1).
        snr_db: evaluate on the datamodule's noisy split at this SNR (dB); ``None`` = noise-free.
        max_samples: use at most this many users of the split (``None`` = all).
        strict_epsilon: ``False`` allows ``epsilon`` up to 1/2 for K = 2 (002 Fig. 10 uses 0.3).
        on_validation: compute at every validation-epoch end (not during the sanity check).
        on_test: compute at the end of ``trainer.test``.
        chunk_size: users per forward pass.
    """

    def __init__(
        self,
        levels: int = 2,
        epsilon: float = 0.1,
        snr_db: float | None = None,
        max_samples: int | None = None,
        strict_epsilon: bool = True,
        on_validation: bool = True,
        on_test: bool = True,
        chunk_size: int = 8192,
    ) -> None:
        super().__init__()
        # validate early, with the quantiser's own messages
        gdqg_indices(np.array([[0.0, 1.0]]), levels, epsilon, strict_epsilon=strict_epsilon)
        if snr_db is not None and not math.isfinite(snr_db):
            raise ValueError(f"snr_db={snr_db!r} must be finite or None")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples={max_samples!r} must be positive or None")
        self.levels = int(levels)
        self.epsilon = float(epsilon)
        self.snr_db = snr_db
        self.max_samples = max_samples
        self.strict_epsilon = strict_epsilon
        self.on_validation = on_validation
        self.on_test = on_test
        self.chunk_size = int(chunk_size)
        self.last_metrics: dict[str, float] = {}

    # -- features ------------------------------------------------------------------------------

    def _features(self, trainer: Trainer, stage: str) -> tuple[Tensor, Tensor, Tensor | None]:
        dm = getattr(trainer, "datamodule", None)
        eve_x2 = None
        if dm is not None and hasattr(dm, "evaluation_set"):
            x1, x2, eve_x2 = dm.evaluation_set("val" if stage == "val" else "test", self.snr_db)
        else:
            if self.snr_db is not None:
                raise RuntimeError("KeyMetricsCallback(snr_db=...) needs a datamodule with evaluation_set()")
            loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
            if isinstance(loaders, (list, tuple)):
                loaders = loaders[0]
            batches = [(b[0], b[1]) for b in loaders]
            x1 = torch.cat([b[0] for b in batches])
            x2 = torch.cat([b[1] for b in batches])
        if self.max_samples is not None:
            x1, x2 = x1[: self.max_samples], x2[: self.max_samples]
            eve_x2 = None if eve_x2 is None else eve_x2[: self.max_samples]
        return x1, x2, eve_x2

    @torch.no_grad()
    def _map(self, pl_module: LightningModule, x1: Tensor) -> Tensor:
        was_training = pl_module.training
        pl_module.eval()
        try:
            outs = [pl_module(chunk.to(pl_module.device)).cpu() for chunk in x1.split(self.chunk_size)]
        finally:
            pl_module.train(was_training)
        return torch.cat(outs)

    def compute(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> dict[str, float]:
        x1, x2, eve_x2 = self._features(trainer, stage)
        x2_hat = self._map(pl_module, x1)
        return key_metrics(x1, x2, x2_hat, eve_x2, self.levels, self.epsilon, self.strict_epsilon)

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        metrics = self.compute(trainer, pl_module, stage)
        self.last_metrics = {f"{stage}/{k}": v for k, v in metrics.items()}
        for name, value in self.last_metrics.items():
            pl_module.log(name, value, on_step=False, on_epoch=True, prog_bar=name.endswith("/ker"))

    # -- hooks ---------------------------------------------------------------------------------

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.on_validation and not trainer.sanity_checking:
            self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.on_test:
            self._log(trainer, pl_module, "test")
