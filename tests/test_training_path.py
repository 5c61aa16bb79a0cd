"""The training loss reads no tensor value back to the host (issue 21: the SKR checks used to call ``.item()``,
``bool(tensor)`` or ``eigvalsh`` on every step, one GPU synchronisation each).

``losses.skr.NegativeMeanSKR`` evaluates the scenario's SKR inside ``physics.checks.trusted_inputs()``: the
draws come from the scenario's own sampler and the design from its projection, so the data-dependent checks
are skipped there and run everywhere else. Here every way of reading a tensor value on the host raises, and
the loss of every scenario must still be computed, equal to the checked SKR outside the block.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from losses.skr import NegativeMeanSKR
from physics.checks import check_finite, trusted_inputs
from physics.irs import IRSScenario
from physics.multiuser import MultiUserScenario
from physics.nearfield import NearFieldScenario
from physics.scenario import total_skr

HOST_READS = ("item", "__bool__", "tolist", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def no_host_reads():
    saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def refuse(self, *args, **kwargs):
        raise AssertionError("a tensor value was read on the host inside the training loss")

    for name in HOST_READS:
        setattr(torch.Tensor, name, refuse)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


SCENARIOS = {
    "irs_case1": lambda: IRSScenario(setting="case1"),
    "irs_case2": lambda: IRSScenario(setting="case2"),
    "nearfield": lambda: NearFieldScenario(),
    "multiuser": lambda: MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2),
    "multiuser_shared": lambda: MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2, shared_paths=1,
                                                  objective="leakage"),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_training_loss_reads_no_value_on_the_host(name):
    sc = SCENARIOS[name]()
    g = torch.Generator().manual_seed(0)
    batch = sc.sample(6, g)
    space = sc.design_space()
    raw = {k: torch.randn(6, n, generator=g) for k, n in space.heads.items()}
    design = space(raw, sc.features(batch).float())
    with no_host_reads():
        loss = NegativeMeanSKR()(sc, batch, design)
    checked = -total_skr(sc.skr(batch, {k: v.double() for k, v in design.items()})).mean()
    assert torch.equal(loss, checked)  # the same arithmetic, only the checks differ


def test_value_checks_run_outside_the_trusted_block_only():
    bad = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="x must be finite"):
        check_finite("x", bad)
    with trusted_inputs():
        check_finite("x", bad)  # skipped: the caller vouches for the values
    with pytest.raises(ValueError, match="x must be finite"):
        check_finite("x", bad)  # and back on after the block, also after an exception inside it
