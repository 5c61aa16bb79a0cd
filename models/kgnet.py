"""KGNet (paper 002) and its three benchmark networks, plus the LightningModule that trains any of them.

Paper 002 maps Alice's band-1 features ``x1`` (2L real values: real parts then imaginary parts of the
band-1 CFR, min-max normalised to [0, 1]) to an estimate of Bob's band-2 features ``x2``:

- :class:`KGNet` (Sec. V-C, Table I): four ReLU hidden layers (512, 1024, 1024, 512), sigmoid output.
- :class:`FNN` (Sec. VII-C-1, "FNN in [41]"): hidden (512, 1024, 512), tanh in *every* layer,
  the output included.
- :class:`AdvancedFNN`: the FNN widths with KGNet's activations (ReLU hidden, sigmoid output).
- :class:`CNN1D`: a Conv1d with 8 kernels of size 8 and a max-pool (kernel 2, stride 2) placed between
  the input and the first hidden layer of the Advanced-FNN.

All weights are Glorot-uniform and all biases zero (Table I; also the Keras defaults the paper's
TensorFlow 2.1 implementation used for the benchmark nets).

Parameter counts for L = 64 subcarriers (in/out dim 128) reproduce Table IV exactly:
KGNet 2,231,424; FNN 1,181,824; Advanced-FNN 1,181,824; 1D-CNN 1,362,120. The 1D-CNN count pins the
reading down: the feature vector enters as *one* channel of length 2L = 128, the convolution has no
padding ("valid", output length 121, 8 x 8 + 8 = 72 parameters), the pool floors 121 to 60, and the
flattened 8 x 60 = 480 values feed the 512-wide layer (480 x 512 + 512 = 246,272 parameters).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from losses.mse import MSELoss
from models.checkpoints import RECORD_KEY, check_record
from models.hparams import save_plain_hyperparameters
from models.metrics import NMSE

__all__ = [
    "KGNet",
    "FNN",
    "AdvancedFNN",
    "CNN1D",
    "KGNetModule",
    "glorot_zero_init",
    "parameter_count",
    "dense_flops",
    "inference_time_s",
]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "none": nn.Identity,
}


def _activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}") from None


def glorot_zero_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every Linear / Conv1d inside ``module``.

    ``torch.nn.init.xavier_uniform_`` uses fan_in = in_channels x kernel and fan_out = out_channels x
    kernel for a convolution, the same fans as Keras' ``glorot_uniform``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int, hidden_act: str, out_act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, int(h)), _activation(hidden_act)]
        width = int(h)
    layers += [nn.Linear(width, out_dim), _activation(out_act)]
    return nn.Sequential(*layers)


class _FeatureMLP(nn.Module):
    """Fully connected feature map ``[B, in_dim] -> [B, out_dim]``."""

    def __init__(
        self, in_dim: int, out_dim: int, hidden: Sequence[int], hidden_activation: str, output_activation: str
    ) -> None:
        super().__init__()
        if in_dim <= 0 or out_dim <= 0 or any(int(h) <= 0 for h in hidden):
            raise ValueError(f"dimensions must be positive, got in={in_dim}, out={out_dim}, hidden={hidden}")
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.layers = _mlp(self.in_dim, self.hidden, self.out_dim, hidden_activation, output_activation)
        glorot_zero_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class KGNet(_FeatureMLP):
    """002 KGNet: ReLU hidden layers (512, 1024, 1024, 512), sigmoid output (Sec. V-C, Table I)."""

    def __init__(self, in_dim: int = 128, out_dim: int = 128, hidden: Sequence[int] = (512, 1024, 1024, 512)):
        super().__init__(in_dim, out_dim, hidden, "relu", "sigmoid")


class FNN(_FeatureMLP):
    """002's "FNN in [41]": hidden (512, 1024, 512) with tanh in every layer, the output included.

    A tanh output spans (-1, 1) while the targets are in [0, 1]; that is the paper's benchmark as written.
    """

    def __init__(self, in_dim: int = 128, out_dim: int = 128, hidden: Sequence[int] = (512, 1024, 512)):
        super().__init__(in_dim, out_dim, hidden, "tanh", "tanh")


class AdvancedFNN(_FeatureMLP):
    """002's "Advanced-FNN": FNN widths (512, 1024, 512) with ReLU hidden layers and a sigmoid output."""

    def __init__(self, in_dim: int = 128, out_dim: int = 128, hidden: Sequence[int] = (512, 1024, 512)):
        super().__init__(in_dim, out_dim, hidden, "relu", "sigmoid")


class CNN1D(nn.Module):
    """002's "1D-CNN": Conv1d(1 -> channels, kernel_size, no padding) -> activation -> MaxPool1d(pool, pool)
    -> flatten -> the Advanced-FNN body (ReLU hidden layers, sigmoid output).

    The feature vector is one channel of length ``in_dim``. ``conv_activation`` defaults to ReLU; the
    paper does not name one (Keras' Conv1D default would be linear). It does not change the parameter count.
    The flatten is channel-major (PyTorch's ``[B, C, L]`` layout); Keras flattens ``[B, L, C]``
    position-major, which only permutes the rows of the next layer's weight matrix.
    """

    def __init__(
        self,
        in_dim: int = 128,
        out_dim: int = 128,
        channels: int = 8,
        kernel_size: int = 8,
        pool: int = 2,
        hidden: Sequence[int] = (512, 1024, 512),
        conv_activation: str = "relu",
    ) -> None:
        super().__init__()
        conv_len = in_dim - kernel_size + 1
        if conv_len < pool:
            raise ValueError(f"in_dim={in_dim} is too short for kernel_size={kernel_size} and pool={pool}")
        self.in_dim = int(in_dim)
        self.out_dim = int(out_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.conv = nn.Conv1d(1, channels, kernel_size)  # padding=0 ("valid")
        self.conv_act = _activation(conv_activation)
        self.pool = nn.MaxPool1d(pool, stride=pool)  # floor, as Keras' MaxPooling1D(padding="valid")
        self.flat_dim = channels * (conv_len // pool)
        self.body = _mlp(self.flat_dim, self.hidden, self.out_dim, "relu", "sigmoid")
        glorot_zero_init(self)

    def forward(self, x: Tensor) -> Tensor:
        z = self.pool(self.conv_act(self.conv(x.unsqueeze(-2))))  # [B, C, (in - k + 1) // pool]
        return self.body(z.flatten(-2))


def parameter_count(net: nn.Module) -> int:
    """Number of trainable parameters (Table IV's last column)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def dense_flops(net: nn.Module) -> int:
    """Inference FLOPs per sample counted as Table IV counts its fully connected nets.

    A Linear layer ``in -> out`` costs ``(2 in - 1) out`` (in multiplies and in - 1 adds per output,
    bias and activations not counted); this reproduces Table IV for KGNet (4,453,248) and FNN /
    Advanced-FNN (2,357,120) exactly. A Conv1d is counted the same way per output position,
    ``(2 C_in k - 1) C_out L_out``; for the 1D-CNN this gives 2,732,088 against Table IV's 2,850,688
    (the paper does not say how it counted the convolution and pooling).
    """
    total = 0
    for m in net.modules():
        if isinstance(m, nn.Linear):
            total += (2 * m.in_features - 1) * m.out_features
        elif isinstance(m, nn.Conv1d):
            if not isinstance(net, CNN1D):
                raise ValueError("dense_flops needs the input length of a Conv1d; only CNN1D is supported")
            l_out = net.in_dim - m.kernel_size[0] + 1
            total += (2 * m.in_channels * m.kernel_size[0] - 1) * m.out_channels * l_out
    return total


@torch.no_grad()
def inference_time_s(net: nn.Module, in_dim: int, batch: int = 1, repeats: int = 200, warmup: int = 20) -> float:
    """Median wall time of one forward pass of ``batch`` samples (seconds), eval mode, no grad."""
    was_training = net.training
    net.eval()
    x = torch.rand(batch, in_dim)
    for _ in range(warmup):
        net(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t0)
    net.train(was_training)
    times.sort()
    return times[len(times) // 2]


class KGNetModule(LightningModule):
    """Trains a band-feature map ``x1 -> x2`` (KGNet or a benchmark net) on ``(x1, x2)`` batches.

    Args:
        net: the feature map, e.g. :class:`KGNet` (injected from YAML by ``class_path``).
        loss: training loss; default :class:`losses.mse.MSELoss`, 002 (17).
        optimizer: optimiser factory (``torch.optim.Adam`` with lr 1e-3 in 002, Table I).
        scheduler: optional learning-rate scheduler factory (stepped per epoch; a ``ReduceLROnPlateau``
            watches ``val/loss``).

    Logs ``train/loss`` every step, ``{val,test}/loss`` per epoch and ``{train,val,test}/nmse`` per epoch
    (002 (21), mean over samples of ``||x2_hat - x2||^2 / ||x2||^2``). Hyperparameters are stored as plain
    types only: under LightningCLI they are the YAML's ``class_path``/``init_args`` dictionaries; when the
    module is built in Python the injected objects are left out.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        save_plain_hyperparameters(self)
        self.net = net
        self.loss_fn = loss if loss is not None else MSELoss()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.train_nmse = NMSE()
        self.val_nmse = NMSE()
        self.test_nmse = NMSE()

    def checkpoint_record(self) -> dict:
        """Plain-type record stored in checkpoints (see :mod:`models.checkpoints`): the net's class and
        every parameter's shape, so an FNN config never loads an Advanced-FNN of the same size."""
        return {"family": "kgnet", "net": type(self.net).__name__,
                "shapes": {k: list(v.shape) for k, v in self.net.state_dict().items()}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[RECORD_KEY] = self.checkpoint_record()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_record(checkpoint, self.checkpoint_record())

    def forward(self, x1: Tensor) -> Tensor:
        return self.net(x1)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        feature_dim = getattr(dm, "feature_dim", None)
        in_dim = getattr(self.net, "in_dim", None)
        if feature_dim is not None and in_dim is not None and int(feature_dim) != int(in_dim):
            raise ValueError(
                f"net.in_dim={in_dim} does not match the datamodule's feature_dim={feature_dim} "
                "(2 x number of subcarriers); set model.init_args.net.init_args.in_dim/out_dim"
            )

    def _step(self, batch: Sequence[Tensor], stage: str, metric: NMSE) -> Tensor:
        x1, x2 = batch[0], batch[1]
        x2_hat = self.net(x1)
        loss = self.loss_fn(x2_hat, x2)
        metric.update(x2_hat.detach(), x2)
        # train/loss per step; val/loss and test/loss as epoch means (one key each, no _step/_epoch suffix)
        training = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=training, on_epoch=not training, batch_size=len(x1))
        self.log(f"{stage}/nmse", metric, prog_bar=stage != "train", on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train", self.train_nmse)

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val", self.val_nmse)

    def test_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test", self.test_nmse)

    def predict_step(self, batch: Sequence[Tensor] | Tensor, batch_idx: int) -> Tensor:
        x1 = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.net(x1)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}
