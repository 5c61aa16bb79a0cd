"""The model-level refinement component (models/refine.py): its settings, where it may be used, its record in
checkpoints (another one may evaluate a checkpoint; records written before it existed are read), and that it is
the identity in training mode. Its results on the multi-user problem are checked in tests/test_multiuser_scenario.py
(against the numbers of the code it replaces, and through export)."""

from __future__ import annotations

import pytest
import torch

from models.checkpoints import RECORD_KEY, SETTINGS_KEY, check_record
from models.pkgnet import PKGNet, PKGNetModule
from models.refine import (
    ProjectedAscentRefinement,
    RefinedNet,
    describe_record,
    refinement_from_record,
)
from physics.irs import IRSScenario
from physics.multiuser import MultiUserScenario
from physics.seeding import generator_for

SMALL = dict(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2)


@pytest.mark.parametrize(("kw", "message"), [
    (dict(steps=-1, lr=0.03), "steps must be an integer >= 0, got -1"),
    (dict(steps=2.5, lr=0.03), "steps must be an integer >= 0, got 2.5"),
    (dict(steps=True, lr=0.03), "steps must be an integer >= 0, got True"),
    (dict(steps=10000, lr=0.03), "steps must be <= 1000, got 10000: each step is one gradient"),
    (dict(steps=3, lr=0.0), "lr must be finite and lie in (0.0, inf), got 0.0"),
    (dict(steps=3, lr=float("nan")), "lr must be finite"),
    (dict(steps=3, lr=float("inf")), "lr must be finite"),
    (dict(steps=3, lr="fast"), "lr must be a real number, got 'fast'"),
])
def test_bad_settings_are_refused_at_construction(kw, message):
    """The messages of the scenario settings this component replaces (refine_steps, refine_lr), named with it."""
    with pytest.raises(ValueError) as err:
        ProjectedAscentRefinement(**kw)
    assert f"ProjectedAscentRefinement {message}" in str(err.value)


def test_settings_record_and_text():
    r = ProjectedAscentRefinement(steps=20.0, lr=0.03)
    assert r.steps == 20 and isinstance(r.steps, int) and r.active and not ProjectedAscentRefinement(0, 0.1).active
    rec = r.describe()
    assert rec == {"class_path": "models.refine.ProjectedAscentRefinement", "init_args": {"steps": 20, "lr": 0.03}}
    again = refinement_from_record(rec)
    assert isinstance(again, ProjectedAscentRefinement) and again.describe() == rec
    assert refinement_from_record(None) is None
    assert describe_record(rec) == "ProjectedAscentRefinement(steps=20, lr=0.03)" and describe_record(None) == "none"
    with pytest.raises(ValueError, match="unknown refinement record"):
        refinement_from_record({"class_path": "os.system", "init_args": {}})


def test_a_scenario_without_a_refinement_problem_is_refused_in_one_line():
    with pytest.raises(ValueError) as err:
        PKGNetModule(IRSScenario("case1", M=2, L_H=2, L_V=2), PKGNet([8]),
                     refinement=ProjectedAscentRefinement(3, 0.03))
    msg = str(err.value)
    assert "\n" not in msg and "scenario 'irs_case1' (IRSScenario) states none" in msg
    assert "refinement_problem" in msg and "model.init_args.refinement" in msg


def test_the_cli_names_the_scenario_that_cannot_be_refined(cli_env, capsys):
    from pathlib import Path

    config = str(Path(__file__).resolve().parents[1] / "configs" / "pkgnet" / "irs_case1.yaml")
    with pytest.raises(SystemExit) as err:
        cli_env.main(["fit", "--config", config, "--trainer.logger=false", "--trainer.fast_dev_run=true",
                      "--model.init_args.refinement=models.refine.ProjectedAscentRefinement",
                      "--model.init_args.refinement.init_args.steps=3",
                      "--model.init_args.refinement.init_args.lr=0.03"])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "'irs_case1'" in lines[0]


def test_identity_in_training_mode_and_with_no_steps():
    sc = MultiUserScenario(**SMALL)
    torch.manual_seed(0)
    net = PKGNet([8]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space())
    x = sc.features(sc.sample(3, generator_for(1))).float()
    with torch.no_grad():
        direct = net.eval()(x)
        trained = RefinedNet(net, ProjectedAscentRefinement(3, 0.03)).train()(x)
        none = RefinedNet(net, ProjectedAscentRefinement(0, 0.03)).eval()(x)
        refined = RefinedNet(net, ProjectedAscentRefinement(3, 0.03)).eval()(x)
    for k in ("P", "C"):
        assert torch.equal(trained[k], direct[k]) and torch.equal(none[k], direct[k])
        assert refined[k].dtype == direct[k].dtype and refined[k].shape == direct[k].shape
    assert (refined["P"] - direct["P"]).abs().max() > 1e-4
    module = PKGNetModule(sc, PKGNet([8]), refinement=ProjectedAscentRefinement(3, 0.03))
    module.net.load_state_dict(net.state_dict())
    assert module.state_dict().keys() == {f"net.{k}" for k in net.state_dict()}  # the refinement holds no weights
    with torch.no_grad():
        assert torch.equal(module.train()(x)["P"], direct["P"]) and torch.equal(module.eval()(x)["P"], refined["P"])


def _record(refinement):
    return {"family": "pkgnet", "net": "PKGNet", "hidden": [8], "activation": "relu",
            "scenario": {"scenario": "multiuser_003", "K": 2}, SETTINGS_KEY: {"refinement": refinement}}


def test_records_may_differ_in_the_refinement_only():
    a = ProjectedAscentRefinement(2, 0.03).describe()
    b = ProjectedAscentRefinement(5, 0.03).describe()
    assert check_record({RECORD_KEY: _record(a)}, _record(a)) == {}
    assert check_record({RECORD_KEY: _record(a)}, _record(b)) == {"refinement": (a, b)}
    assert check_record({RECORD_KEY: _record(a)}, _record(None)) == {"refinement": (a, None)}
    old = {k: v for k, v in _record(None).items() if k != SETTINGS_KEY}  # written before settings existed
    assert check_record({RECORD_KEY: old}, _record(None)) == {}
    other = _record(a)
    other["scenario"] = {"scenario": "multiuser_003", "K": 3}
    with pytest.raises(ValueError, match=r"another scenario; \(checkpoint, config\) differ in \{'K': \(3, 2\)\}$"):
        check_record({RECORD_KEY: other}, _record(b))


def test_a_record_from_before_the_component_reads_its_refinement_from_the_scenario_description():
    """Multi-user checkpoints written while the refinement was a scenario setting (refine_steps, refine_lr in the
    scenario description, absent when off) load into today's config; the note names their refinement."""
    legacy = _record(None)
    del legacy[SETTINGS_KEY]
    legacy["scenario"] = {**legacy["scenario"], "refine_steps": 20, "refine_lr": 0.03}
    here = _record(ProjectedAscentRefinement(40, 0.03).describe())
    assert check_record({RECORD_KEY: legacy}, here) == {
        "refinement": (ProjectedAscentRefinement(20, 0.03).describe(), here[SETTINGS_KEY]["refinement"])}
    assert check_record({RECORD_KEY: legacy}, _record(ProjectedAscentRefinement(20, 0.03).describe())) == {}
    off = {k: v for k, v in _record(None).items() if k != SETTINGS_KEY}
    assert check_record({RECORD_KEY: off}, here) == {"refinement": (None, here[SETTINGS_KEY]["refinement"])}
