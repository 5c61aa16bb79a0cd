"""Model-level refinement of a PKG-Net design (docs/architecture.md section 2: a model component, not physics).

A refinement improves the network's design for the draws at hand at *evaluation* (validation, test, predict and
the exported graph); training optimises the network's direct output. It is injected into ``PKGNetModule`` from
YAML and exported with the net::

    model:
      class_path: models.pkgnet.PKGNetModule
      init_args:
        refinement:
          class_path: models.refine.ProjectedAscentRefinement
          init_args: {steps: 20, lr: 0.03}

The physics states the problem, the component solves it: the scenario's design space provides
``refinement_problem(design, x)`` (the feasible-set projection, the objective, the per-draw context computed
from the raw features ``x``, the float64 start and the mask of rows the objective can evaluate; see
``physics.multiuser.MultiUserDesignSpace.refinement_problem``). A design space without it cannot be refined, and
the module refuses the component at construction.

A refinement holds no weights: a checkpoint may be tested, predicted or exported with another one than it was
validated with (``models.checkpoints.check_record`` returns the difference, ``train.py`` says it in one line).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from physics.checks import check_int, check_real
from physics.optim import unrolled_ascent

#: Upper bound on the refinement steps: a typo (an extra zero) must not turn an evaluation into hours that one
#: validation batch never returns from (Lightning's SIGTERM handler acts between batches only).
MAX_STEPS = 1000

Design = dict[str, torch.Tensor]


def check_steps(value, name: str = "steps") -> int:
    """``value`` as an int in [0, :data:`MAX_STEPS`]; ValueError naming it otherwise (2.5, True refused)."""
    steps = check_int(name, value, low=0)
    if steps > MAX_STEPS:
        raise ValueError(f"{name} must be <= {MAX_STEPS}, got {value!r}: each step is one gradient of the objective "
                         "per draw (~4 ms at M = 128, K = 6), run in every evaluation; the per-instance optimum uses "
                         "100-400")
    return steps


class Refinement(nn.Module):
    """Base of the model-level refinements: ``forward(design_space, design, x) -> design`` (same keys, shapes and
    dtypes), the identity in training mode. Subclasses hold no parameters or persistent buffers."""

    #: whether forward runs gradient steps (``models.export`` then traces one step and loops it in the graph)
    active: bool = False

    def check(self, design_space: nn.Module, scenario: Any) -> None:
        """Refuse a design space that states no refinement problem, naming the scenario (called by
        ``PKGNetModule`` at construction)."""
        if not callable(getattr(design_space, "refinement_problem", None)):
            name = getattr(scenario, "name", type(scenario).__name__)
            raise ValueError(f"{type(self).__name__} refines a design on the problem its scenario's design space "
                             f"states (refinement_problem(design, x)); scenario {name!r} ({type(scenario).__name__}) "
                             "states none: remove model.init_args.refinement from the config")

    def describe(self) -> dict[str, Any]:
        """Plain-type record (stored in checkpoints and export metadata): the YAML form of the component."""
        raise NotImplementedError

    def forward(self, design_space: nn.Module, design: Design, x: torch.Tensor) -> Design:
        raise NotImplementedError


class ProjectedAscentRefinement(Refinement):
    """``steps`` Adam steps of projected gradient ascent (rate ``lr``, cosine-annealed to ``lr / 100``) on the
    design space's objective, started from the network's design: :func:`physics.optim.unrolled_ascent`, the
    per-instance optimum's recursion with one start and a fixed step count. The best iterate is kept, so a draw
    never falls below the network's own design. Rows the objective cannot evaluate (the problem's ``ok`` mask)
    keep the network's design. Runs in float64 whatever the net's precision and returns the design's dtype.

    In the exported graph (``models.export``) one step is traced (gradient included) and run in
    ``torch.while_loop``: the graph does not grow with ``steps``. ``steps = 0`` is the network alone.
    """

    def __init__(self, steps: int, lr: float):
        super().__init__()
        # named with the component: the config has other steps and lr (the optimiser's, the optimum's)
        self.steps = check_steps(steps, f"{type(self).__name__} steps")
        self.lr = check_real(f"{type(self).__name__} lr", lr, low=0.0, low_inclusive=False)

    @property
    def active(self) -> bool:  # type: ignore[override]
        return self.steps > 0

    def describe(self) -> dict[str, Any]:
        return {"class_path": f"{__name__}.{type(self).__name__}", "init_args": {"steps": self.steps, "lr": self.lr}}

    def extra_repr(self) -> str:
        return f"steps={self.steps}, lr={self.lr!r}"

    def forward(self, design_space: nn.Module, design: Design, x: torch.Tensor) -> Design:
        if self.training or not self.active:
            return design
        with torch.inference_mode(False):  # Lightning evaluates in inference mode; the steps need autograd
            problem = design_space.refinement_problem(design, x)
            # the context (the draws' statistics) goes in as the ascent's context: inputs of a traced step
            best, _ = unrolled_ascent(problem["objective"], problem["project"], problem["start"], self.steps,
                                      self.lr, context=problem["context"])
            ok = problem["ok"]
        out = {}
        for k, v in design.items():
            keep = ok.reshape(ok.shape + (1,) * (v.dim() - 1))
            out[k] = torch.where(keep, best[k].to(v.dtype), v)
        return out


#: the refinements a checkpoint's record may name (records are data: nothing is imported by name from them)
REFINEMENTS = {cls.__name__: cls for cls in (ProjectedAscentRefinement,)}


def refinement_from_record(record: dict[str, Any] | None) -> Refinement | None:
    """The component a record of :meth:`Refinement.describe` describes (None for None)."""
    if record is None:
        return None
    name = str(record.get("class_path", "")).rsplit(".", 1)[-1] if isinstance(record, dict) else ""
    if name not in REFINEMENTS:
        raise ValueError(f"unknown refinement record {record!r}; known: {sorted(REFINEMENTS)}")
    return REFINEMENTS[name](**(record.get("init_args") or {}))


def describe_record(record: dict[str, Any] | None) -> str:
    """``ProjectedAscentRefinement(steps=20, lr=0.03)`` for a record, ``none`` for None (for one-line notes)."""
    if record is None:
        return "none"
    if isinstance(record, dict) and "class_path" in record:
        args = ", ".join(f"{k}={v!r}" for k, v in (record.get("init_args") or {}).items())
        return f"{str(record['class_path']).rsplit('.', 1)[-1]}({args})"
    return repr(record)


class RefinedNet(nn.Module):
    """A built net followed by a refinement: ``x -> refinement(net.design_space, net(x), x)`` (``refinement`` None:
    the net alone). What ``models.export`` exports and the figure scripts evaluate; ``PKGNetModule.forward`` does
    the same with its own ``net`` and ``refinement``."""

    def __init__(self, net: nn.Module, refinement: Refinement | None):
        super().__init__()
        self.net = net
        self.refinement = refinement

    def forward(self, x: torch.Tensor) -> Design:
        design = self.net(x)
        if self.refinement is None:
            return design
        return self.refinement(self.net.design_space, design, x)
