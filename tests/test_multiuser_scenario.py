"""Tier 2/3: the beam-domain multi-user scenario (003) in the scenario contract: sampling, design space
(feasibility, torch.export round trip), the structured objective against the full-Lambda closed forms,
baselines, optimum, subsets, both configs through ``train.main`` and a slow learned-design run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from models.pkgnet import PKGNet
from models.refine import ProjectedAscentRefinement, RefinedNet
from physics import multiuser as mu
from physics.multiuser import MultiUserScenario
from physics.scenario import Scenario, check_description, generator_for

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [str(REPO / "configs" / "pkgnet" / f"{n}.yaml") for n in ("multiuser", "multiuser_shared")]
SMALL_DIMS = dict(M=32, K=4, N_k=2, N_P=3, M_e=3, N_e=2, spread=0.08, separated_gap_range=(0.3, 0.4),
                  overlapping_gap_range=(0.02, 0.1))
FAST = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--model.init_args.scenario.init_args.M=32",
    "--model.init_args.scenario.init_args.K=4",
    "--model.init_args.scenario.init_args.N_k=2",
    "--model.init_args.scenario.init_args.N_P=3",
    "--model.init_args.scenario.init_args.M_e=3",
    "--model.init_args.scenario.init_args.N_e=2",
    "--model.init_args.scenario.init_args.separated_gap_range=[0.2, 0.3]",
    "--model.init_args.net.init_args.hidden=[32]",
    "--data.init_args.train_draws_per_epoch=40",
    "--data.init_args.batch_size=20",
    "--data.init_args.val_draws=20",
    "--data.init_args.test_draws=20",
    "--data.init_args.eval_batch_size=20",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cplx(t):
    return torch.view_as_complex(t.double().contiguous())


# --------------------------------------------------------------------------------------------
# contract, sampling, features
# --------------------------------------------------------------------------------------------


def test_contract_names_and_description():
    sc = MultiUserScenario()
    assert isinstance(sc, Scenario) and sc.num_users() == 6
    desc = check_description(sc.describe(), "MultiUserScenario")
    json.dumps(desc)
    assert desc["outputs"] == {"P": [6, 128, 6, 2], "C": [6, 4, 4, 2]}
    assert len(sc.feature_names) == 108 == len(sc.feature_units)
    assert sc.feature_names[0] == "sin_aod_u0_p0" and sc.feature_names[72] == "power_db_u0_p0"
    sh = MultiUserScenario(shared_paths=2, objective="leakage")
    assert len(sh.feature_names) == 144 and sh.feature_names[-1] == "rho_shared_u5_p5"
    assert sh.describe()["scenario"] == "multiuser_003_shared"


def test_training_distribution_is_the_pinned_generator():
    sc = MultiUserScenario()
    b = sc.sample(2000, generator_for(0, 1))
    aod, p = b["sin_aod"], b["power_db"]
    assert aod.shape == (2000, 6, 6) and b["sin_aoa"].shape == (2000, 6, 6)
    assert aod.abs().max() <= 0.95 and b["sin_aoa"].abs().max() <= 0.95
    centre = (aod.amax(-1) + aod.amin(-1)) / 2
    assert torch.all(centre[:, 1:] > centre[:, :-1] - 2 * sc.spread)  # UTs ordered by centre angle
    assert torch.all((aod - aod.mean(-1, keepdim=True)).abs() <= 2 * sc.spread)
    assert torch.all(p[..., 1:] <= p[..., :-1])  # paths sorted by power
    total = 10 * torch.log10((10 ** (p / 10)).sum(-1))  # each UT's total = the draw's SNR
    assert torch.allclose(total, b["snr_db"][:, None].expand(-1, 6), atol=1e-9)
    sub = sc.subsets(b)
    # p_overlapping = 0.5: about half the draws in each subset (4 standard errors of a binomial mean)
    assert abs(sub["overlapping"].double().mean().item() - 0.5) < 4 * 0.5 / math.sqrt(2000)
    x = sc.features(b)
    low, high = (torch.tensor(v, dtype=torch.float64) for v in sc.feature_bounds())
    assert torch.all(x >= low - 1e-9) and torch.all(x <= high + 1e-9)
    sh = MultiUserScenario(shared_paths=2, objective="leakage", p_overlapping=1.0)
    bs = sh.sample(500, generator_for(0, 2))
    assert torch.equal(bs["sin_aod"][:, 1, :2], bs["sin_aod"][:, 0, :2])  # shared scatterers: same AoD
    r = bs["rho_shared"]
    assert torch.all((r[:, :, :2] >= 0.8) & (r[:, :, :2] <= 1.0)) and torch.all(r[:, :, 2:] == 0)
    assert sh.subsets(bs)["shared_scatterers"].all()


def test_point_and_bad_constructor_values():
    sc = MultiUserScenario()
    pt = sc.point(5, snr_db=torch.linspace(0, 20, 5))
    assert pt["power_db"].shape == (5, 6, 6) and sc.subsets(pt)["separated"].all()
    assert sc.subsets(sc.point(2, gap=0.05))["overlapping"].all()
    with pytest.raises(ValueError, match="unknown point field 'snr'"):
        sc.point(1, snr=3)
    bad = [
        (dict(K=22, M_e=6), "need K M_e <= M, got K=22, M_e=6, M=128"),
        (dict(N_k=0), "N_k must be an integer >= 1, got 0"),
        (dict(M_e=2.5), "M_e must be an integer >= 1, got 2.5"),
        (dict(N_e=5), "N_e must be <= N_k, got N_e=5, N_k=4"),
        (dict(objective="sum"), "objective must be one of"),
        (dict(budget="yes"), "budget must be true or false"),
        (dict(spread=float("nan")), "spread must be finite"),
        (dict(shared_paths=7), "shared_paths must be <= N_P = 6, got 7"),
        (dict(rho_range=(0.5, 1.5)), "rho_range range must end at <= 1.0"),
        (dict(K=12, M_e=2), "clusters need"),
        (dict(rho_range=(0.1, 0.2, 0.3)), "rho_range must be a range [low, high] of two numbers, got (0.1, 0.2, 0.3)"),
        (dict(rho_range=0.5), "rho_range must be a range [low, high] of two numbers, got 0.5"),
        (dict(snr_db_range=(150.0, 170.0)), "snr_db_range range must end at <= 80.0, got 170.0"),
        (dict(overlapping_gap_range=(0.3, 0.4), separated_gap_range=(0.0, 0.01)),
         "overlapping_gap_range [0.3, 0.4] must end at <= 2 spread = 0.1"),
    ]
    for kw, msg in bad:
        with pytest.raises(ValueError) as err:
            MultiUserScenario(**kw)
        assert msg in str(err.value), (kw, str(err.value))
    with pytest.raises(ValueError, match=r"snr_db must be a scalar or \[n\] = \[2\], got shape \(3,\)"):
        sc.point(2, snr_db=torch.zeros(3))
    import numpy as np

    assert MultiUserScenario(rho_range=(np.float32(0.8), np.float64(1.0))).rho_range == (0.800000011920929, 1.0)
    with pytest.raises(ValueError, match="power_db must be finite"):
        b = sc.point(1)
        b["power_db"][0, 0, 0] = float("inf")
        sc.skr(b, sc.baselines(b, generator_for(0))["eigen_beams"])


# --------------------------------------------------------------------------------------------
# design space and objective
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [True, False])
def test_design_space_outputs_are_feasible(budget):
    sc = MultiUserScenario(budget=budget)
    torch.manual_seed(0)
    net = PKGNet([32]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space())
    b = sc.sample(16, generator_for(3))
    out = net(sc.features(b).float())
    assert out["P"].shape == (16, 6, 128, 6, 2) and out["C"].shape == (16, 6, 4, 4, 2)
    assert out["P"].dtype == torch.float32 and not out["P"].is_complex()
    P, C = cplx(out["P"]), cplx(out["C"])
    gram = P.mH @ P  # c^2 I: orthonormal columns times the common budget scale c <= 1
    c2 = gram.diagonal(dim1=-2, dim2=-1).real.mean(-1)
    eye = torch.eye(6, dtype=torch.complex128)
    assert torch.allclose(gram, c2[..., None, None] * eye, atol=1e-5)  # float32 Gram-Schmidt, 128 rows
    assert torch.allclose(C.mH @ C, torch.eye(4, dtype=torch.complex128).expand(16, 6, 4, 4), atol=1e-5)
    power = (P.sum(1).abs() ** 2).sum((-1, -2))
    if budget:
        assert torch.all(power <= 36 * (1 + 1e-5)) and torch.all(c2 <= 1 + 1e-5)
    else:
        assert torch.allclose(c2, torch.ones_like(c2), atol=1e-5)
    # the scenario's objective is the structured (30) and gradients reach the net
    r = sc.skr(b, out)
    assert r.shape == (16, 6) and r.dtype == torch.float64
    (-r.sum(-1).mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_skr_equals_full_lambda_closed_forms():
    sc = MultiUserScenario(**SMALL_DIMS, shared_paths=2, objective="leakage", p_overlapping=1.0)
    b = sc.sample(3, generator_for(4))
    d = sc.baselines(b, generator_for(5))["eigen_beams"]
    P, C = cplx(d["P"]), cplx(d["C"])
    pth = sc.paths(b)
    Lj = mu.lambda_joint_from_paths(pth["u"], pth["v"], pth["G"])
    exact = mu.skr_leakage_aware(P, C, Lj)  # literal (27) over all curious UTs, full Lambda
    assert torch.allclose(sc.rates(b, P, C, "leakage_exact"), exact, rtol=1e-9, atol=1e-10)
    # training objective: partner only, min'ed with (30): a lower bound that is tight where the partner leaks
    lb = sc.skr(b, d)
    assert torch.all(lb <= exact + 1e-9)
    Lam = Lj[..., range(sc.K), range(sc.K), :, :]
    r30 = mu.skr_pilot_reuse(P, C, Lam)  # (30) ignores the shared correlation
    assert torch.allclose(sc.rates(b, P, C, "reuse"), r30, rtol=1e-9, atol=1e-10)
    # the bound is min'ed with the true I(z_D; z_U) of the correlated channels (not with (30))
    true_mi = mu.skr_pilot_reuse_paths(P, C, pth["u"], pth["v"], pth["G"])
    assert torch.all(lb <= true_mi + 1e-9)
    assert torch.any(lb < true_mi - 1e-3)  # the partner does leak here
    # with orthogonal pilots each UT gets (31); eigen beams (M_e = N_P) attain Theorem 2 there
    r31 = mu.skr_orthogonal_pilots(mu.kron_design(P / P[..., :, :1].norm(dim=-2, keepdim=True), C), Lam)
    assert torch.allclose(sc.rates(b, P, C, "orthogonal"), r31, rtol=1e-9)
    assert torch.allclose(r31, sc.theorem2_rates(b), rtol=1e-8)


def test_design_space_at_zero_output_is_eigen_beams():
    """W = 0, C-head 0: the span of each UT's own paths, i.e. eigen beams (M_e = N_P): Theorem 2's rate
    with orthogonal pilots."""
    sc = MultiUserScenario()
    b = sc.sample(4, generator_for(6))
    ds = sc.design_space()
    out = ds({k: torch.zeros(4, n) for k, n in ds.heads.items()}, sc.features(b).float())
    r = sc.rates(b, cplx(out["P"]), cplx(out["C"]), "orthogonal")
    assert torch.allclose(r, sc.theorem2_rates(b), rtol=1e-4)  # float32 design, float64 rate


@pytest.mark.parametrize("shared", [False, True], ids=["reuse", "leakage"])
def test_refinement_is_the_optimisers_ascent_from_the_nets_design(shared):
    """In evaluation mode the refinement (``models.refine``) runs ``steps`` Adam steps of projected ascent on the
    design space's objective from the net's design; in training mode it returns the net's design. Checked against the
    per-instance optimiser's own code (torch.optim.Adam through QR + budget, on the scenario's float64
    batch, not the float32 features) from the same start: the same rate to float32 rounding of the
    features and outputs (1e-4 relative), never below the start, and feasible."""
    from physics.optim import projected_ascent

    kw = dict(shared_paths=2, objective="leakage", p_overlapping=1.0) if shared else {}
    sc = MultiUserScenario(**SMALL_DIMS, **kw)
    torch.manual_seed(1)
    net = RefinedNet(PKGNet([32]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()),
                     ProjectedAscentRefinement(steps=6, lr=0.05))
    b = sc.sample(6, generator_for(40))
    x = sc.features(b).float()
    net.train()
    start = net(x)
    net.eval()
    with torch.inference_mode():  # as Lightning evaluates
        refined = net(x)
    r0, r1 = sc.skr(b, start).sum(-1), sc.skr(b, refined).sum(-1)
    assert torch.all(r1 >= r0 - 1e-4 * r0.abs()) and torch.all(r1 > r0 + 1e-3)  # it climbs on every draw
    pth = sc.paths(b)

    def objective(p):
        return mu.training_rates(sc.objective, p["P"], p["C"], pth, sc.curious()).sum(-1)

    def project(p):
        return {"P": mu.apply_budget(mu.semi_unitary(p["P"]), sc.budget_value), "C": mu.semi_unitary(p["C"])}

    _, ref = projected_ascent(objective, project, [{"P": cplx(start["P"]), "C": cplx(start["C"])}],
                              steps=6, lr=0.05)
    assert torch.allclose(r1, ref, rtol=1e-4), (r1, ref)
    P, C = cplx(refined["P"]), cplx(refined["C"])
    assert (P.sum(1).abs() ** 2).sum((-1, -2)).max() <= sc.K * sc.M_e * (1 + 1e-5)
    assert torch.allclose(C.mH @ C, torch.eye(sc.N_e, dtype=C.dtype).expand_as(C.mH @ C), atol=1e-5)
    assert MultiUserScenario.from_description(sc.describe()).describe() == sc.describe()


# Recorded from the code before the refinement became a model component (commit 9d24b02, where it was
# MultiUserScenario(refine_steps, refine_lr)): for each case and net dtype, (checksums of the refined P and C:
# sum, sum of squares, sum weighted by sin(flat index), all in float64) and the per-draw sum SKR (bits).
_MU = dict(M=128, K=6, N_k=4, N_P=6, M_e=6, N_e=4, objective="reuse", budget=True, spread=0.05,
           overlapping_gap_range=(0.02, 0.08), separated_gap_range=(0.16, 0.26), p_overlapping=0.5,
           snr_db_range=(0.0, 20.0), path_power_spread_db=15.0, shared_paths=0, overlap_threshold_db=-20.0,
           receive_start="eigen_shifted")  # configs/pkgnet/multiuser.yaml's scenario
_REFINE_CASES = {  # scenario, steps, lr, hidden, draws
    "multiuser": (_MU, 20, 0.03, [256, 256], 4),  # multiuser.yaml
    "multiuser_shared": (dict(_MU, objective="leakage", p_overlapping=1.0, shared_paths=2, rho_range=(0.8, 1.0),
                              receive_start="identity"), 40, 0.03, [256, 256], 4),  # multiuser_shared.yaml
    "small_reuse": (dict(SMALL_DIMS, receive_start="eigen_shifted"), 6, 0.05, [32], 6),
    "small_leakage": (dict(SMALL_DIMS, shared_paths=2, objective="leakage", p_overlapping=1.0), 5, 0.05, [32], 6),
}
_REFINE_RECORDED = {
    "multiuser": {
        "float32": ({"P": (86.12667822218398, 96.43153543776937, -2.490852262625527),
                     "C": (17.61199344677152, 95.99999986999035, 2.37284637567891)},
                    (81.08174875857861, 33.70895758705633, 44.919470534875714, 8.661837763827942)),
        "float64": ({"P": (86.1249074405348, 96.42675367138862, -2.4707868608550214),
                     "C": (17.617814900950844, 96.0, 2.3723937156668287)},
                    (81.08175150709454, 33.70878920348164, 44.9194703885979, 8.661832754994666)),
    },
    "multiuser_shared": {
        "float32": ({"P": (53.98672165537332, 96.81460217679043, -3.7896163053258416),
                     "C": (75.85021157481242, 95.999999748213, -0.5918173354983209)},
                    (64.48410388168234, 26.506648882668372, 36.3791101357776, 7.554248848415176)),
        "float64": ({"P": (53.9867548428865, 96.8147649027073, -3.807245819043001),
                     "C": (75.85306014606878, 96.0, -0.5931280265996444)},
                    (64.48410445468252, 26.506647164028962, 36.379166035552984, 7.554226542985496)),
    },
    "small_reuse": {
        "float32": ({"P": (47.4737823447424, 61.504244467435335, 0.5917379430539418),
                     "C": (26.509923596509907, 47.99999991746291, 1.1320815291217672)},
                    (10.657465998350151, 16.680856979628718, 39.425684912708924, 3.17116508066315, 1.9799350516775394,
                     2.5339837639751965)),
        "float64": ({"P": (47.47380235923491, 61.504241132379974, 0.5917000156518331),
                     "C": (26.509911955438607, 48.00000000000001, 1.132087607415453)},
                    (10.657465801262807, 16.68085756279536, 39.42568386205997, 3.1711649114638414, 1.9799350866204726,
                     2.5339838378046986)),
    },
    "small_leakage": {
        "float32": ({"P": (48.561652832328036, 39.90832774456358, -3.1594162313572367),
                     "C": (46.08317601494491, 48.00000009124203, 1.2156303819708079)},
                    (6.238411487436693, 8.955066282612353, 25.52373287589987, 2.9006236430445744, 1.9347646967903145,
                     1.8241763260155444)),
        "float64": ({"P": (48.56170223944334, 39.90833856224971, -3.159407150191133),
                     "C": (46.08317781065849, 48.000000000000014, 1.2156312749240112)},
                    (6.2384116508184695, 8.955067569323164, 25.523732547908605, 2.9006235617292355, 1.934764682290931,
                     1.824176404794392)),
    },
}


def _design_checksums(out):
    res = {}
    for k, v in out.items():
        v = v.double()
        w = torch.sin(torch.arange(v.numel(), dtype=torch.float64)).reshape(v.shape)
        res[k] = ((v.sum()).item(), (v * v).sum().item(), (v * w).sum().item())
    return res


@pytest.mark.parametrize("case", list(_REFINE_CASES))
def test_refinement_component_reproduces_the_scenario_refinement_it_replaces(case):
    """Multi-user results stay the same: for the same weights (seed 0) and draws (generator_for(2024, 3)), the
    refinement component on the design space's refinement_problem gives the refined design the scenario's own
    refine_steps/refine_lr gave before (numbers recorded from that code above; both configs' settings included).
    A float64 net: to 1e-12 (relative, bit-identical on the machine that recorded them); the float32 net Lightning
    evaluates: to 1e-5 (bit-identical there too, but a float32 forward may round differently on another CPU)."""
    kw, steps, lr, hidden, n = _REFINE_CASES[case]
    sc = MultiUserScenario(**kw)
    b = sc.sample(n, generator_for(2024, 3))
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        torch.manual_seed(0)
        net = RefinedNet(PKGNet(hidden).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()),
                         ProjectedAscentRefinement(steps, lr)).to(dtype).eval()
        x = sc.features(b).to(dtype)
        with torch.inference_mode():
            out = net(x)
            direct = net.net(x)
        sums, skr = _REFINE_RECORDED[case][str(dtype).split(".")[-1]]
        got = _design_checksums(out)
        for k in ("P", "C"):
            for g, r in zip(got[k], sums[k], strict=True):
                assert abs(g - r) <= tol * max(1.0, abs(r)), (case, dtype, k, g, r)
        r_out = sc.skr(b, {k: v.double() for k, v in out.items()}).sum(-1)
        ref = torch.tensor(skr, dtype=torch.float64)
        assert torch.allclose(r_out, ref, rtol=tol, atol=0), (case, dtype, r_out - ref)
        r_direct = sc.skr(b, {k: v.double() for k, v in direct.items()}).sum(-1)
        assert torch.all(r_out >= r_direct - 1e-6 * r_direct.abs()) and torch.any(r_out > r_direct + 1e-3)


def test_baselines_budget_optimum_and_subsets():
    sc = MultiUserScenario(**SMALL_DIMS)
    b = sc.sample(6, generator_for(7))
    base = sc.baselines(b, generator_for(8))
    assert set(base) == {"beam_selection", "strongest_overlapping", "eigen_beams", "random_semi_unitary"}
    for name, d in base.items():
        P = cplx(d["P"])
        assert (P.sum(1).abs() ** 2).sum((-1, -2)).max() <= sc.K * sc.M_e * (1 + 1e-12), name
    occ = cplx(base["beam_selection"]["P"]).abs().sum(-1)  # [n, K, M] beam occupancy
    assert torch.all(occ.sum(1) <= 1 + 1e-12)  # Algorithm 1: disjoint beams
    rates = {k: sc.skr(b, d).sum(-1) for k, d in base.items()}
    opt = sc.optimum(b, generator_for(9), steps=15, restarts=4)
    r_opt = sc.skr(b, opt).sum(-1)
    for k in ("beam_selection", "strongest_overlapping", "eigen_beams"):  # the optimum starts from them
        assert torch.all(r_opt >= rates[k] - 1e-9), k
    P = cplx(opt["P"])
    assert (P.sum(1).abs() ** 2).sum((-1, -2)).max() <= sc.K * sc.M_e * (1 + 1e-9)
    with pytest.raises(ValueError, match="restarts must be >= 3"):
        sc.optimum(b, generator_for(9), steps=1, restarts=2)


def test_without_budget_coherent_precoders_are_not_scaled():
    sc, sc_nb = MultiUserScenario(**SMALL_DIMS), MultiUserScenario(**SMALL_DIMS, budget=False)
    b = sc.point(2, gap=0.02)  # strongly overlapping: the strongest beams coincide
    d, d_nb = (s.baselines(b, generator_for(0))["strongest_overlapping"] for s in (sc, sc_nb))
    p, p_nb = ((cplx(x["P"]).sum(1).abs() ** 2).sum((-1, -2)) for x in (d, d_nb))
    assert torch.all(p_nb > sc.K * sc.M_e) and torch.allclose(p, torch.full_like(p, sc.K * sc.M_e))
    assert torch.all(sc_nb.skr(b, d_nb).sum(-1) >= sc.skr(b, d).sum(-1))


def test_receive_start_is_shifted_eigen_beams():
    """receive_start="eigen_shifted": at zero C-head output, UT k's C~_k column j spans the ((j - k) mod N_k)-th
    eigenvector of R~_UT,k (subspace iteration in real arithmetic against torch.linalg.eigh); the precoders are
    unchanged; the key only appears in the description when not the default."""
    sc = MultiUserScenario(receive_start="eigen_shifted")
    assert sc.describe()["receive_start"] == "eigen_shifted" and "receive_start" not in MultiUserScenario().describe()
    assert MultiUserScenario.from_description(sc.describe()).receive_start == "eigen_shifted"
    b = sc.sample(6, generator_for(11))
    ds = sc.design_space()
    x = sc.features(b).float()
    out = ds({k: torch.zeros(6, n) for k, n in ds.heads.items()}, x)
    ref = MultiUserScenario().design_space()({k: torch.zeros(6, n) for k, n in ds.heads.items()}, x)
    assert torch.allclose(out["P"], ref["P"])
    pth = sc.paths(b)
    R = torch.einsum("nkp,nkpa,nkpb->nkab", pth["g"].to(torch.complex128), pth["u"], pth["u"].conj())
    lam, E = torch.linalg.eigh(R)
    E, lam = E.flip(-1), lam.flip(-1)
    C = cplx(out["C"])
    checked = 0
    for k in range(sc.K):
        for j in range(sc.N_e):
            i = (j - k) % sc.N_k
            e = E[:, k, :, i]
            # 30 subspace iterations converge like (lambda_{i+1} / lambda_i)^30: check well-separated eigenvalues
            ratio = lam[:, k, 1:] / lam[:, k, :-1]
            sep = torch.ones(6, dtype=torch.bool)
            if i > 0:
                sep &= ratio[:, i - 1] < 0.8
            if i < sc.N_k - 1:
                sep &= ratio[:, i] < 0.8
            overlap = (e.conj() * C[:, k, :, j]).sum(-1).abs()
            assert torch.all(overlap[sep] > 0.999), (k, j, overlap)
            checked += int(sep.sum())
    assert checked >= 40
    with pytest.raises(ValueError, match="receive_start"):
        MultiUserScenario(receive_start="eigen")


# refinement with (30) round-trips in test_exported_refinement_is_one_step_in_a_loop (2 and 9 steps)
@pytest.mark.parametrize("receive_start,scenario_kw,steps", [("identity", {}, 0), ("eigen_shifted", {}, 0),
                                                             pytest.param("identity", {"shared_paths": 1,
                                                                                       "objective": "leakage"}, 1,
                                                                          marks=pytest.mark.slow)])
def test_design_space_exports_and_round_trips(tmp_path, receive_start, scenario_kw, steps):
    """torch.export of the whole net (raw features -> P, C), save/load, same outputs; no complex outputs.
    With a refinement one gradient step is traced (make_fx) and run in torch.while_loop inside the graph."""
    from models.export import export_pkgnet

    sc = MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2,  # tracing unrolls Gram-Schmidt: keep it small
                           receive_start=receive_start, **scenario_kw)
    torch.manual_seed(0)
    net = PKGNet([16]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()).eval()
    refinement = ProjectedAscentRefinement(steps, 0.03) if steps else None
    meta = export_pkgnet(net, sc, tmp_path / "mu.pt2", refinement=refinement)
    assert meta["scenario"] == sc.name and meta["outputs"]["P"] == [2, 16, 2, 2]
    assert meta["refinement"] == (refinement.describe() if refinement else None)
    prog = torch.export.load(tmp_path / "mu.pt2")
    x = sc.features(sc.sample(5, generator_for(10))).float()
    outs = prog.module()(x)
    with torch.no_grad():
        ref = RefinedNet(net, refinement).eval()(x)
    got = dict(zip(meta["outputs_order"], outs, strict=True))
    for k in ("P", "C"):
        assert not got[k].is_complex() and got[k].shape == ref[k].shape
        assert torch.allclose(got[k], ref[k], atol=1e-6)


def test_exported_refinement_is_one_step_in_a_loop(tmp_path):
    """The exported graph holds one traced step inside torch.while_loop, so its size does not depend on the
    refinement's steps; with 2 and 9 steps the program equals the module exactly (same float64 operations in the
    same order), and the two step counts give different designs, so the loop really runs 2 and 9 steps."""
    from models.export import export_pkgnet

    x = None
    nodes, outs = {}, {}
    sc = MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2)
    for steps in (2, 9):
        torch.manual_seed(0)
        net = RefinedNet(PKGNet([16]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()),
                         ProjectedAscentRefinement(steps, 0.03)).eval()
        meta = export_pkgnet(net.net, sc, tmp_path / f"mu{steps}.pt2", refinement=net.refinement)
        assert f"refined in the graph by ProjectedAscentRefinement(steps={steps}, lr=0.03)" in meta["summary"]
        prog = torch.export.load(tmp_path / f"mu{steps}.pt2")
        graphs = [m.graph for m in prog.graph_module.modules() if isinstance(m, torch.fx.GraphModule)]
        nodes[steps] = sum(len(g.nodes) for g in graphs)
        assert any(n.target is torch.ops.higher_order.while_loop for g in graphs for n in g.nodes)
        x = sc.features(sc.sample(5, generator_for(12))).float() if x is None else x
        got = dict(zip(("P", "C"), prog.module()(x), strict=True))
        with torch.no_grad():
            ref = net(x)
        for k in ("P", "C"):
            assert torch.equal(got[k], ref[k]), (steps, k)
        outs[steps] = got["P"]
    assert nodes[2] == nodes[9]
    assert (outs[2] - outs[9]).abs().max() > 1e-3


def test_path_tensors_match_the_steering_vectors_and_the_pair_covariance():
    """The in-graph builder against the checked public forms: u, v as :func:`beam_vectors` (ula_response by
    torch.polar, then the DFT), and G written out entry by entry for the shared pairs."""
    sc = MultiUserScenario(**SMALL_DIMS, shared_paths=2, objective="leakage", p_overlapping=1.0)
    b = sc.sample(3, generator_for(42))
    pth = sc.paths(b)
    u, v = mu.beam_vectors(b["sin_aoa"], b["sin_aod"], sc.N_k, sc.M)
    assert torch.allclose(pth["u"], u, atol=1e-12) and torch.allclose(pth["v"], v, atol=1e-12)
    g = 10 ** (b["power_db"] / 10)
    Np = sc.N_P
    G = torch.diag_embed(g.flatten(1))
    for a in range(0, sc.K - 1, 2):
        for q in range(2):
            c = b["rho_shared"][:, a, q] * torch.sqrt(g[:, a, q] * g[:, a + 1, q])
            G[:, a * Np + q, (a + 1) * Np + q] = c
            G[:, (a + 1) * Np + q, a * Np + q] = c
    assert torch.allclose(pth["G"], G, rtol=1e-12, atol=0)


def test_refinement_keeps_bad_rows_out_of_the_batch():
    """A NaN row or a row the objective cannot evaluate (power 1e30 dB, |sin| > 1) does not stop the batch:
    it keeps the net's design (NaN stays NaN), and the other rows get what they get when refined alone."""
    sc = MultiUserScenario(**SMALL_DIMS)
    torch.manual_seed(2)
    net = RefinedNet(PKGNet([16]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()),
                     ProjectedAscentRefinement(3, 0.03)).eval()
    x = sc.features(sc.sample(5, generator_for(41))).float()
    KP = sc.K * sc.N_P
    bad = x.clone()
    bad[1, 0] = float("nan")
    bad[2, 2 * KP] = 1e30
    bad[3, 0] = 1.5
    with torch.inference_mode():
        out = net(bad)
        alone = net(x[[0, 4]])
        net.train()
        direct = net(bad)
        net.eval()
    for k in ("P", "C"):
        assert torch.isnan(out[k][1]).all()
        assert torch.equal(out[k][2:4], direct[k][2:4])
        assert torch.allclose(out[k][[0, 4]], alone[k], atol=1e-6)


def test_onnx_export_of_a_refining_design_space_is_refused_before_writing(tmp_path):
    from models.export import export_pkgnet

    sc = MultiUserScenario(M=16, K=2, N_k=2, N_P=2, M_e=2, N_e=2)
    net = PKGNet([8]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space())
    with pytest.raises(ValueError, match=r"ONNX export is not available .*Refinement\(steps=3, lr=0.03\)"):
        export_pkgnet(net, sc, tmp_path / "m.pt2", tmp_path / "m.onnx", refinement=ProjectedAscentRefinement(3, 0.03))
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# the configs through the CLI
# --------------------------------------------------------------------------------------------


def small_config(config: str, tmp_path: Path) -> str:
    """The config with a cheap per-instance optimum (list items cannot be overridden on the command line)."""
    import yaml

    cfg = yaml.safe_load(Path(config).read_text())
    for cb in cfg["trainer"]["callbacks"]:
        if cb["class_path"].endswith("BaselineCallback"):
            cb["init_args"].update(optimum_draws=2, test_optimum_draws=2, optimum_options={"steps": 2, "restarts": 3})
    out = tmp_path / Path(config).name
    out.write_text(yaml.safe_dump(cfg))
    return str(out)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: Path(p).stem)
def test_config_fast_dev_run(cli_env, config, tmp_path):
    cli = cli_env.main(["fit", "--config", small_config(config, tmp_path), "--trainer.fast_dev_run=true", *FAST])
    assert cli.trainer.state.finished
    m = cli.trainer.callback_metrics
    assert math.isfinite(float(m["train/loss"])) and math.isfinite(float(m["val/skr_bits"]))
    for name in ("beam_selection", "strongest_overlapping", "eigen_beams", "random_semi_unitary"):
        key = f"val/skr_bits_{name}"
        if key in m:  # the callback names the scenario's baselines
            assert math.isfinite(float(m[key])), key


def _train_small_and_score(sc: MultiUserScenario, refinement: ProjectedAscentRefinement):
    """The slow tier's training run: 8 epochs of 500 draws (batch 50, Adam 1e-3, seed 0), then 300 held-out
    draws (seed stream 2024, never seen in training). Returns (draws, the net's own design's sum SKR [300]
    (training-mode forward, reported only), the learned design's [300] (evaluation mode: with the refinement),
    each baseline's [300])."""
    torch.manual_seed(0)
    net = RefinedNet(PKGNet([128, 128]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space()),
                     refinement)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for ep in range(8):
        for i in range(10):
            b = sc.sample(50, generator_for(0, 1, ep, i))
            loss = -sc.skr(b, net(sc.features(b).float())).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    test = sc.sample(300, generator_for(2024, 7))
    x = sc.features(test).float()
    with torch.no_grad():
        direct = sc.skr(test, net(x)).sum(-1)
    net.eval()
    with torch.inference_mode():
        learned = sc.skr(test, net(x)).sum(-1)
    base = {k: sc.skr(test, d).sum(-1) for k, d in sc.baselines(test, generator_for(1)).items()}
    return test, direct, learned, base


@pytest.mark.slow
def test_learned_design_beats_analytic_baselines_on_overlapping_users():
    """8 epochs of 500 draws at K = 4, M = 64 (receive_start and refinement as in multiuser.yaml), then 300
    held-out draws. On overlapping users the best analytic baseline (eigen beams) is clearly below the
    per-instance optimum (checked: <= 0.85 of it), so a trivial design cannot clear the bars, which are
    issue 14's: the learned sum SKR (30) (net + 20 in-graph ascent steps, evaluation mode) is >= 1.05x
    the best analytic baseline on the overlapping draws, >= 0.97 of the per-instance optimum (150 steps,
    4 restarts, as the configs' test optimum) on the mean of 12 of them and >= 0.90 on every one; on
    separated users >= 0.99x the sum of Theorem 2's single-user rates. Measured (one thread): 1.29x, 0.985
    mean, 0.972 worst draw, 1.133x Theorem 2, eigen beams 0.806 of the optimum. The net's own design
    (training mode: 0.893 mean, 0.797 worst) is reported in the assertion messages, not judged."""
    sc = MultiUserScenario(M=64, K=4, N_k=4, N_P=4, M_e=4, N_e=4, spread=0.06,
                           separated_gap_range=(0.2, 0.3), overlapping_gap_range=(0.02, 0.08),
                           receive_start="eigen_shifted")
    test, direct, learned, base = _train_small_and_score(sc, ProjectedAscentRefinement(steps=20, lr=0.03))
    sub = sc.subsets(test)
    ov = sub["overlapping"]
    names = ("beam_selection", "strongest_overlapping", "eigen_beams")
    best_name = max(names, key=lambda k: base[k][ov].mean())
    best = base[best_name][ov].mean()
    assert learned[ov].mean() >= 1.05 * best, (learned[ov].mean(), best, direct[ov].mean())
    idx = torch.nonzero(ov)[:12, 0]
    sb = {k: v[idx] for k, v in test.items()}
    r_opt = sc.skr(sb, sc.optimum(sb, generator_for(2024, 8), steps=150, restarts=4)).sum(-1)
    assert base[best_name][idx].mean() <= 0.85 * r_opt.mean(), (base[best_name][idx].mean(), r_opt.mean())
    ratio = learned[idx] / r_opt
    assert ratio.mean() >= 0.97, (ratio, direct[idx] / r_opt)
    assert ratio.min() >= 0.90, (ratio, direct[idx] / r_opt)
    th = sc.theorem2_rates(test).sum(-1)
    assert learned[sub["separated"]].mean() >= 0.99 * th[sub["separated"]].mean()


@pytest.mark.slow
def test_learned_design_beats_analytic_baselines_under_shared_scatterer_leakage():
    """The shared-scatterer target of issue 14 at K = 4, M = 64 (pairs (0, 1), (2, 3) share 2 scatterers, as
    multiuser_shared.yaml: loss (27), 40 refinement steps): 8 epochs of 500 draws, then 300 held-out draws. The
    best analytic baseline (eigen beams) is clearly below the per-instance optimum of (27) (checked: <= 0.85 of
    it on 12 draws), so the bars cannot be cleared by a trivial design: the learned sum (27) is >= 1.25x the best
    analytic baseline's and >= 0.97 of the optimum on the mean. Measured (one thread, 39 s): 1.280x, eigen beams
    0.780 of the optimum, PKG-Net 0.985 (worst draw 0.945; the net alone 0.801)."""
    sc = MultiUserScenario(M=64, K=4, N_k=4, N_P=4, M_e=4, N_e=4, spread=0.06, separated_gap_range=(0.2, 0.3),
                           overlapping_gap_range=(0.02, 0.08), p_overlapping=1.0, shared_paths=2,
                           objective="leakage")
    test, direct, learned, base = _train_small_and_score(sc, ProjectedAscentRefinement(steps=40, lr=0.03))
    best_name = max(("beam_selection", "strongest_overlapping", "eigen_beams"), key=lambda k: base[k].mean())
    best = base[best_name]
    assert learned.mean() >= 1.25 * best.mean(), (learned.mean(), best.mean(), best_name, direct.mean())
    sb = {k: v[:12] for k, v in test.items()}
    r_opt = sc.skr(sb, sc.optimum(sb, generator_for(2024, 8), steps=150, restarts=4)).sum(-1)
    assert best[:12].mean() <= 0.85 * r_opt.mean(), (best[:12].mean(), r_opt.mean())
    ratio = learned[:12] / r_opt
    assert ratio.mean() >= 0.97, (ratio, direct[:12] / r_opt)


def test_checkpoint_is_evaluated_with_the_configs_refinement_but_resumes_only_with_its_own(cli_env, tmp_path,
                                                                                           capsys):
    """The refinement is a model component that holds no weights: validate and test use the config's refinement
    with a checkpoint validated with another one and say so in one note line (with the checkpoint's own refinement,
    validate gives the fit's validation score and says nothing); fit refuses to resume with another (its
    best-checkpoint choice would mix two scores); any scenario difference is still refused. (Export: the slow
    test_checkpoint_is_exported_with_the_configs_refinement.)"""
    from experiments import multiuser_refine_sweep

    config = small_config(CONFIGS[0], tmp_path)
    steps = "--model.init_args.refinement.init_args.steps"
    cli_env.main(["fit", "--config", config, *FAST, f"{steps}=2", "--trainer.max_epochs=1"])
    ckpts = tmp_path / "runs" / "pkgnet" / "multiuser" / "checkpoints"
    last = ckpts / "last.ckpt"
    before = {p.name: p.read_bytes() for p in ckpts.iterdir()}
    record = (ckpts.parent / "config.yaml").read_bytes()
    fit_score = float(next(p.stem for p in ckpts.iterdir() if p.stem.startswith("epoch")).split("skr")[-1])
    capsys.readouterr()
    cli = cli_env.main(["validate", "--config", config, *FAST, f"{steps}=2", f"--ckpt_path={last}"])
    assert "note:" not in capsys.readouterr().err
    own = float(cli.trainer.callback_metrics["val/skr_bits"])
    assert abs(own - fit_score) <= 5e-5, (own, fit_score)  # the file name rounds to 4 decimals
    cli = cli_env.main(["validate", "--config", config, *FAST, "--model.init_args.refinement=null",
                        f"--ckpt_path={last}"])
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "config's refinement none" in err
    assert cli.model.refinement is None
    assert float(cli.trainer.callback_metrics["val/skr_bits"]) <= own + 1e-9  # the refinement keeps the best iterate
    cli = cli_env.main(["test", "--config", config, *FAST, f"{steps}=5", f"--ckpt_path={last}",
                        "--data.init_args.val_draws=10"])
    err = capsys.readouterr().err
    assert err.count("note:") == 1
    assert "validated with refinement ProjectedAscentRefinement(steps=2, lr=0.03)" in err
    assert "config's refinement ProjectedAscentRefinement(steps=5, lr=0.03)" in err
    # the fit's config.yaml is the run's record: test writes its own config_test.yaml beside it
    assert (ckpts.parent / "config.yaml").read_bytes() == record
    assert "steps: 5" in (ckpts.parent / "config_test.yaml").read_text()
    assert cli.model.refinement.steps == 5 and math.isfinite(float(cli.trainer.callback_metrics["test/skr_bits"]))
    with pytest.raises(SystemExit):
        cli_env.main(["fit", "--config", config, *FAST, f"{steps}=5", "--trainer.max_epochs=2", "--ckpt_path=last"])
    err = capsys.readouterr().err
    assert "fit cannot resume with the config's refinement ProjectedAscentRefinement(steps=5" in err
    other = "--model.init_args.scenario.init_args.overlap_threshold_db=-10"
    with pytest.raises(SystemExit):
        cli_env.main(["test", "--config", config, *FAST, f"{steps}=5", other, f"--ckpt_path={last}"])
    err = capsys.readouterr().err
    assert "another scenario" in err and "overlap_threshold_db" in err
    assert "refinement" not in err.split("differ in")[-1]
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == before  # nothing overwritten
    # the sweep reads the validation split (20 draws, seed 0) from the config.yaml saved beside the checkpoints
    out = tmp_path / "sweep"
    multiuser_refine_sweep.main(["--ckpt", str(last), "--steps", "0,3", "--lr", "0.03,0.1", "--target", "0.5",
                                 "--out", str(out)])
    res = json.loads((out / "sweep.json").read_text())
    assert res["val_draws"] == 20 and res["seed"] == 0
    assert [(r["steps"], r["lr"]) for r in res["rows"]] == [(0, 0.03), (3, 0.03), (3, 0.1)]
    assert all(r["ratio_se"] > 0 and math.isfinite(r["ratio_to_best_baseline"]) for r in res["rows"])
    # the best iterate is kept, so refinement never lowers a draw's rate: the means cannot drop below the net's
    assert min(r["mean_sum_skr_bits"] for r in res["rows"][1:]) >= res["rows"][0]["mean_sum_skr_bits"] - 1e-9
    assert (out / "sweep.png").stat().st_size > 0 and "Chosen" in (out / "sweep.md").read_text()
    # another run's config would define another validation split: refused before any scoring
    capsys.readouterr()
    with pytest.raises(SystemExit):
        multiuser_refine_sweep.main(["--ckpt", str(last), "--config", CONFIGS[1], "--out", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert "describes another scenario than --ckpt" in err and "shared_paths" in err
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_checkpoint_is_exported_with_the_configs_refinement(cli_env, tmp_path, capsys):
    """train.py export of a checkpoint validated with 2 refinement steps, with the config's 3: one note line, the
    metadata records the config's refinement, and the program gives the module's refined design (the checkpoint's
    net followed by the config's refinement). About a minute: the export traces one refinement step."""
    from models.export import load_program

    config = small_config(CONFIGS[0], tmp_path)
    # smaller still than FAST, with identity receive starts: the export traces the whole net (Gram-Schmidt and the
    # receive start's subspace iterations unrolled), which costs minutes at FAST's size with eigen_shifted
    scenario = "--model.init_args.scenario.init_args"
    tiny = [*FAST, f"{scenario}.M=16", f"{scenario}.K=2", f"{scenario}.N_P=2", f"{scenario}.M_e=2",
            f"{scenario}.receive_start=identity"]
    steps = "--model.init_args.refinement.init_args.steps"
    cli_env.main(["fit", "--config", config, *tiny, f"{steps}=2", "--trainer.max_epochs=1"])
    last = tmp_path / "runs" / "pkgnet" / "multiuser" / "checkpoints" / "last.ckpt"
    out_pt2 = tmp_path / "mu.pt2"
    capsys.readouterr()
    cli = cli_env.main(["export", "--config", config, *tiny, f"{steps}=3", f"--ckpt_path={last}",
                        f"--out={out_pt2}"])
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "validated with refinement ProjectedAscentRefinement(steps=2, lr=0.03)" in err
    assert "config's refinement ProjectedAscentRefinement(steps=3, lr=0.03)" in err
    program, meta = load_program(out_pt2)
    assert meta["refinement"] == {"class_path": "models.refine.ProjectedAscentRefinement",
                                  "init_args": {"steps": 3, "lr": 0.03}}
    module, sc = cli.model.eval(), cli.model.scenario
    x = sc.features(sc.sample(4, generator_for(2024, 9))).float()
    with torch.no_grad():
        ref, direct = module(x), module.net(x)
    got = dict(zip(meta["outputs_order"], program.module()(x), strict=True))
    for k in ("P", "C"):
        assert torch.allclose(got[k], ref[k], atol=1e-6), k
    assert (got["P"] - direct["P"]).abs().max() > 1e-4  # the program refines


def test_sweep_ratio_standard_error_matches_a_bootstrap_and_the_rule_picks_the_smallest_safe_count():
    """The sweep's delta-method SE of mean(a) / mean(b) (paired draws) against a bootstrap of the same data, and its
    choice rule on hand-made rows. Tolerance: the bootstrap SE from 4000 resamples has a relative sampling error of
    about 1 / sqrt(2 * 4000) = 1.1 %, the delta method's bias at n = 400 is O(1/n); 5 % covers both."""
    from experiments.multiuser_refine_sweep import choose, ratio_and_se

    g = torch.Generator().manual_seed(3)
    b = 20 + 4 * torch.randn(400, generator=g, dtype=torch.float64)
    a = 1.25 * b + 2 * torch.randn(400, generator=g, dtype=torch.float64)  # correlated, as PKG-Net vs a baseline
    r, se = ratio_and_se(a, b)
    idx = torch.randint(0, 400, (4000, 400), generator=g)
    boot = a[idx].mean(1) / b[idx].mean(1)
    assert abs(r - (a.mean() / b.mean()).item()) < 1e-15
    assert abs(se / boot.std().item() - 1) < 0.05, (se, boot.std().item())
    rows = [{"steps": s, "lr": 0.03, "mean_sum_skr_bits": m, "ratio_to_best_baseline": q, "ratio_se": 0.007}
            for s, m, q in ((10, 27.5, 1.216), (20, 28.3, 1.2515), (40, 28.8, 1.2726), (60, 29.0, 1.2795))]
    # 20 steps: 1.2515 - 1.96 * 0.007 * sqrt(2) = 1.232 < 1.25; 40 steps: 1.2726 - 0.0194 = 1.2532 >= 1.25
    assert choose(rows, 1.25, math.sqrt(2))["steps"] == 40
    assert choose(rows, 1.25, 1.0)["steps"] == 40  # 1.2515 - 0.0137 < 1.25 still
    assert choose(rows, 1.20, 1.0)["steps"] == 10
    assert choose(rows, 1.30, 1.0) is None
    assert choose(rows, None)["steps"] == 60


def test_figure_script_names_the_flag_for_a_shared_scatterer_checkpoint(cli_env, tmp_path, capsys):
    """The shared config's checkpoint given as --ckpt (the overlapping-users figures) is refused in one line that
    says which flags take it (it used to end in an unrelated ValueError from inside a figure)."""
    from experiments import multiuser_figures

    config = small_config(CONFIGS[1], tmp_path)
    cli_env.main(["fit", "--config", config, *FAST, "--trainer.max_epochs=1"])
    last = tmp_path / "runs" / "pkgnet" / "multiuser_shared" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    with pytest.raises(SystemExit) as err:
        multiuser_figures.main(["--ckpt", str(last), "--quick", "--out", str(tmp_path / "figs")])
    assert err.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: --ckpt") and "shared-scatterer checkpoint" in line and "--shared-ckpt" in line
    assert not (tmp_path / "figs").exists()
