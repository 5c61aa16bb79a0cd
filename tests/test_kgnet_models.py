"""KGNet and the 002 benchmark nets: sizes against Table IV, shapes, initialisation, losses, metrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from losses.mse import MSELoss, NMSELoss
from models.kgnet import CNN1D, FNN, AdvancedFNN, KGNet, dense_flops, parameter_count

L = 64  # subcarriers in 002 Sec. VII-A: features are 2L = 128 reals
NETS = {"kgnet": KGNet, "fnn": FNN, "afnn": AdvancedFNN, "cnn1d": CNN1D}


def _dense_params(widths):
    """Weights + biases of a chain of fully connected layers, counted by hand."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


@pytest.mark.parametrize(
    ("name", "table_iv"),
    [("kgnet", 2_231_424), ("fnn", 1_181_824), ("afnn", 1_181_824), ("cnn1d", 1_362_120)],
)
def test_parameter_counts_match_table_iv(name, table_iv):
    net = NETS[name](2 * L, 2 * L)
    assert parameter_count(net) == table_iv


def test_parameter_counts_by_hand():
    # Independent count: KGNet 128-512-1024-1024-512-128; CNN1D conv 8x(1x8)+8, valid length 121, pool
    # floor(121/2)=60, flatten 8*60 = 480, then 480-512-1024-512-128.
    assert parameter_count(KGNet(128, 128)) == _dense_params([128, 512, 1024, 1024, 512, 128])
    assert parameter_count(FNN(128, 128)) == _dense_params([128, 512, 1024, 512, 128])
    conv = 8 * 8 + 8
    flat = 8 * ((128 - 8 + 1) // 2)
    assert parameter_count(CNN1D(128, 128)) == conv + _dense_params([flat, 512, 1024, 512, 128])
    # other input sizes work too (e.g. L = 32)
    assert parameter_count(KGNet(64, 64)) == _dense_params([64, 512, 1024, 1024, 512, 64])


def test_flops_match_table_iv_for_dense_nets():
    # Table IV: KGNet 4,453,248 and FNN / Advanced-FNN 2,357,120 = sum over layers of (2 in - 1) out.
    assert dense_flops(KGNet(128, 128)) == 4_453_248
    assert dense_flops(FNN(128, 128)) == 2_357_120
    assert dense_flops(AdvancedFNN(128, 128)) == 2_357_120
    # 1D-CNN: same convention gives 2,732,088 (Table IV says 2,850,688; see models/kgnet.py docstring)
    assert dense_flops(CNN1D(128, 128)) == 15 * 8 * 121 + sum(
        (2 * a - 1) * b for a, b in [(480, 512), (512, 1024), (1024, 512), (512, 128)]
    )


@pytest.mark.parametrize("name", list(NETS))
def test_forward_backward_shapes_and_ranges(name):
    torch.manual_seed(0)
    net = NETS[name](2 * L, 2 * L)
    x = torch.rand(5, 2 * L, requires_grad=True)
    y = net(x)
    assert y.shape == (5, 2 * L)
    assert y.dtype == torch.float32
    if name == "fnn":
        assert (y.abs() < 1).all()  # tanh output
    else:
        assert ((y > 0) & (y < 1)).all()  # sigmoid output
    MSELoss()(y, torch.rand_like(y)).backward()
    assert x.grad is not None and x.grad.shape == x.shape
    for p in net.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    # single-sample batches (inference of one user) work
    assert net(torch.rand(1, 2 * L)).shape == (1, 2 * L)


def test_activations_are_the_papers():
    def acts(net):
        return [type(m) for m in net.modules() if isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid))]

    assert acts(KGNet()) == [nn.ReLU] * 4 + [nn.Sigmoid]
    assert acts(FNN()) == [nn.Tanh] * 4
    assert acts(AdvancedFNN()) == [nn.ReLU] * 3 + [nn.Sigmoid]
    cnn = CNN1D()
    assert acts(cnn.body) == [nn.ReLU] * 3 + [nn.Sigmoid]
    assert (cnn.conv.in_channels, cnn.conv.out_channels, cnn.conv.kernel_size, cnn.conv.padding) == (
        1,
        8,
        (8,),
        (0,),
    )
    assert (cnn.pool.kernel_size, cnn.pool.stride) == (2, 2)


@pytest.mark.parametrize("name", list(NETS))
def test_glorot_uniform_weights_and_zero_biases(name):
    torch.manual_seed(1)
    net = NETS[name](2 * L, 2 * L)
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    assert layers
    for m in layers:
        assert torch.count_nonzero(m.bias) == 0
        w = m.weight.detach().double()
        receptive = w[0, 0].numel() if w.dim() == 3 else 1
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert w.abs().max() <= bound + 1e-7
        n = w.numel()
        if n >= 50_000:
            # U(-a, a): variance a^2 / 3 = 2 / (fan_in + fan_out). The sample variance of n uniform draws has
            # relative standard deviation sqrt(0.8 / n) <= 0.4 % here, so 3 % is > 7 sigma.
            assert w.var().item() == pytest.approx(bound**2 / 3, rel=0.03)
            # the extreme draws reach the bound to within a few times a / n
            assert w.abs().max() >= bound * (1 - 20 / n)
            # mean near 0: standard error a / sqrt(3 n)
            assert abs(w.mean().item()) < 6 * bound / math.sqrt(3 * n)


def test_losses_against_direct_formulas():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(7, 10, generator=g), torch.rand(7, 10, generator=g)
    # 002 (17): 1/(V Nx) sum ||.||^2
    expected_mse = sum(((pred[v] - target[v]) ** 2).sum() for v in range(7)) / (7 * 10)
    assert MSELoss()(pred, target).item() == pytest.approx(expected_mse.item(), rel=1e-6)
    # 002 (21): E[||x2_hat - x2||^2 / ||x2||^2]
    expected_nmse = sum(((pred[v] - target[v]) ** 2).sum() / (target[v] ** 2).sum() for v in range(7)) / 7
    assert NMSELoss()(pred, target).item() == pytest.approx(expected_nmse.item(), rel=1e-6)
    with pytest.raises(ValueError):
        MSELoss()(pred, target[:, :5])
