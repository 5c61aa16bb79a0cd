"""Reproduce 003 Figs 4, 6-10 and Table I (beam-domain multi-user key generation), learned designs included.

    python -m experiments.multiuser_figures --ckpt runs/pkgnet/multiuser/checkpoints/last.ckpt \\
        --shared-ckpt runs/pkgnet/multiuser_shared/checkpoints/last.ckpt \\
        [--shared-reuse-ckpt <(30)-trained on the shared distribution>] [--out results/multiuser_003] \\
        [--draws 200] [--optimum-draws 16] [--optimum-steps 100] [--keys 10000] [--quick]

003 gives no axis ranges or draw counts; ours (every curve averages ``--draws`` draws of the scenario's pinned
generator, physics/multiuser/scenario.py, at each x):
  Fig. 4: one UT, rate vs SNR in [0, 20] dB: perfect CSI (all M N_k dimensions), Theorem 2's optimal U,
          eigen beams and the strongest (unit-vector) beams, M_e = 4 and 6, C~ = I (N_e = N_k = 4);
  Fig. 6: sum SKR vs number of UTs K = 1..6 at 10 dB: sum of Theorem 2's rates (orthogonal pilots), and
          (30) with pilot reuse for Algorithm 1, Fig. 8's strongest beams, eigen beams, PKG-Net (K = 6);
  Fig. 7: unit SKR (48) vs SNR: pilot reuse (T = M_e + N_e) for M_e = 4, 6 vs orthogonal pilots
          (T = K (M_e + N_e), rate (31)), Algorithm 1 designs, and PKG-Net (reuse, M_e = 6);
  Fig. 8: overlapping UTs only: unit SKR of the overlapping scheme (strongest beams, orthogonal pilots among
          UTs sharing a beam: rate (31), T = s M_e + N_e with s the most UTs on one beam) vs non-overlapping
          beams (Algorithm 1, (30), T = M_e + N_e), M_e = 4, 6, and PKG-Net;
  Fig. 9: leakage ratio (43) vs SNR = 1/sigma^2 for several rho, with Monte Carlo points;
  Fig. 10: bit disagreement ratio vs SNR: BS vs UT (legitimate), UT vs its nearest other UT (curious), and
          the single-UT case, Algorithm 1 and PKG-Net designs;
  Table I: NIST pass ratios (nine tests, keygen.randomness.nist_pass_ratios_003) of ``--keys`` 256-bit
          initial keys.
Quantiser (003 uses CQA [22], not specified further): each side forms the MMSE estimate of the reciprocal
component r_k = (P~_k^T kron C~_k^H) vec(H~_k) from its observation, rotates it into the eigenbasis of Cov(r_k)
(known statistics) and keeps the signs of the real and imaginary parts of the N_P strongest coordinates:
2 N_P = 12 bits per probing round; a 256-bit key takes 22 rounds (independent channel realisations).
Also the learned-design results table (held-out draws): targets of issue 14, with/without the downlink
budget, and the shared-scatterer rates (27). Writes PNGs, ``curves.json`` and ``results.md`` into ``--out``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from experiments.cli_args import (  # noqa: E402
    Parser,
    check_out_folder,
    checkpoint_arg,
    fail,
    nonnegative_int,
    positive_float,
    positive_int,
)
from keygen.randomness import TABLE_I_003_TESTS, nist_pass_ratios_003  # noqa: E402
from physics import multiuser as mu  # noqa: E402
from physics.multiuser import MultiUserScenario  # noqa: E402
from physics.multiuser.rates import _path_observations  # noqa: E402
from physics.scenario import generator_for  # noqa: E402

BASE = ("beam_selection", "strongest_overlapping", "eigen_beams")
LABEL = {"beam_selection": "Algorithm 1 (beam selection)", "strongest_overlapping": "strongest beams (Fig. 8)",
         "eigen_beams": "eigen beams", "random_semi_unitary": "random semi-unitary", "learned": "PKG-Net",
         "net_direct": "PKG-Net's net alone (no refinement steps)",
         "eigen_refined": "eigen beams + the same refinement steps (no net)",
         "optimum": "per-instance optimum"}


#: the refinement rate when a checkpoint has none and only --refine-steps is given (the configs' value)
DEFAULT_REFINE_LR = 0.03


def load_net(path: Path | None, flag: str, refine_steps: int | None = None, refine_lr: float | None = None):
    """(net: x -> {"P", "C"} float32, scenario) from a PKGNetModule checkpoint of a multiuser config: a
    ``models.refine.RefinedNet`` (``.net``, ``.refinement``) with the refinement the checkpoint was validated with.

    ``refine_steps``/``refine_lr`` replace that refinement's settings (None: keep; a refinement holds no weights)."""
    if path is None:
        return None, None
    from models.checkpoints import SETTINGS_KEY, read_record
    from models.pkgnet import PKGNet
    from models.refine import ProjectedAscentRefinement, RefinedNet, refinement_from_record

    ckpt = checkpoint_arg(path, flag)
    rec = read_record(ckpt) or {}
    desc = rec.get("scenario") or {}
    if not str(desc.get("scenario", "")).startswith("multiuser_003"):
        fail(f"--{flag} {str(path)!r} is not a PKG-Net checkpoint of a multiuser config")
    sc = MultiUserScenario.from_description(desc)
    refinement = refinement_from_record((rec.get(SETTINGS_KEY) or {}).get("refinement"))
    if refine_steps is not None or refine_lr is not None:
        steps = refine_steps if refine_steps is not None else getattr(refinement, "steps", 0)
        lr = refine_lr if refine_lr is not None else getattr(refinement, "lr", DEFAULT_REFINE_LR)
        refinement = ProjectedAscentRefinement(steps, lr)
    net = PKGNet(rec["hidden"], rec.get("activation", "relu")).build(len(sc.feature_names), *sc.feature_bounds(),
                                                                      sc.design_space())
    net.load_state_dict({k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    return RefinedNet(net, refinement).eval(), sc


def refine_steps_of(net) -> int:
    """The refinement steps a loaded net runs in evaluation (0: the net alone)."""
    refinement = getattr(net, "refinement", None)
    return refinement.steps if refinement is not None and refinement.active else 0


def cplx(t):
    return torch.view_as_complex(t.double().contiguous())


@torch.no_grad()
def learned_design(net, sc: MultiUserScenario, batch, budget: bool = True):
    """PKG-Net's (P~, C~) complex; ``budget=False`` re-projects the same raw outputs without the budget."""
    if not budget:
        saved = net.net.design_space
        net.net.design_space = sc.replace(budget=False).design_space().train(net.training)
        try:
            out = net(sc.features(batch).float())
        finally:
            net.net.design_space = saved
    else:
        out = net(sc.features(batch).float())
    return cplx(out["P"]), cplx(out["C"])


@torch.no_grad()
def net_direct_design(net, sc: MultiUserScenario, batch):
    """The network's own design, without the refinement steps (training-mode forward)."""
    net.train()
    try:
        out = net(sc.features(batch).float())
    finally:
        net.eval()
    return cplx(out["P"]), cplx(out["C"])


def refined_from(net, sc: MultiUserScenario, batch, P, C):
    """The net's refinement steps started from another design (P~, C~ complex, budget applied)."""
    real = {"P": torch.view_as_real(P.resolve_conj()).float(), "C": torch.view_as_real(C.resolve_conj()).float()}
    out = net.refinement(net.net.design_space, real, sc.features(batch).float())
    return cplx(out["P"]), cplx(out["C"])


def at_snr(batch, snr_db: float):
    b = dict(batch)
    b["power_db"] = batch["power_db"] - batch["snr_db"][:, None, None] + snr_db
    b["snr_db"] = torch.full_like(batch["snr_db"], snr_db)
    return b


def designs(sc: MultiUserScenario, batch, seed: int = 0):
    return {k: (mu.apply_budget(P, sc.budget_value), C) for k, (P, C) in
            sc.baseline_designs(batch, generator_for(seed, 4)).items()}


def plot(path: Path, x, curves: dict, xlabel: str, ylabel: str, title: str, points: dict | None = None,
         logy: bool = False) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (name, y) in enumerate(curves.items()):
        ax.plot(x, y, marker="os^vDx<>p*"[i % 10], markersize=4, label=name)
    for name, (px, py) in (points or {}).items():
        ax.plot(px, py, "k*", markersize=12, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def md_table(x_name: str, x, curves: dict, fmt: str = "{:.3f}") -> list[str]:
    names = list(curves)
    lines = ["| " + x_name + " | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for i, xv in enumerate(x):
        lines.append(f"| {xv:g} | " + " | ".join(fmt.format(curves[n][i]) for n in names) + " |")
    return lines


# --------------------------------------------------------------------------------------------
# key bits (Fig. 10, Table I)
# --------------------------------------------------------------------------------------------


def key_bits(sc: MultiUserScenario, batch, P, C, rounds: int, gen: torch.Generator, users=(0,)):
    """Quantised probing of ``rounds`` channel realisations per draw (path-domain Monte Carlo of (25)-(26)).

    Returns per user k in ``users``: bits of the BS, of UT k and of the curious UT nearest to k (its own
    reciprocal component, same procedure), each ``[n, rounds, 2 N_P]`` uint8.
    """
    pth = sc.paths(batch)
    D, E, nD, nU = _path_observations(P, C, pth["u"], pth["v"])
    G = pth["G"].to(D.dtype)
    n, K, d, S = D.shape[0], D.shape[1], D.shape[2], G.shape[-1]
    lam, V = torch.linalg.eigh(G)
    sqG = V * lam.clamp_min(0).sqrt().to(V.dtype)[..., None, :]

    def cn(*shape):
        return torch.view_as_complex(torch.randn(*shape, 2, generator=gen, dtype=torch.float64)) / math.sqrt(2)

    a = (sqG[:, None] @ cn(n, rounds, S, 1))[..., 0]  # [n, rounds, S] path gains
    zD = torch.einsum("nkds,nrs->nkrd", D, a)
    zU = torch.einsum("nkds,nrs->nkrd", E, a)
    # noises with covariances nD (I kron C^H C = I) and nU (P^T P^* kron I)
    LD, LU = torch.linalg.cholesky(nD), torch.linalg.cholesky(nU)
    zD = zD + (LD[:, :, None] @ cn(n, K, rounds, d, 1))[..., 0]
    zU = zU + (LU[:, :, None] @ cn(n, K, rounds, d, 1))[..., 0]
    Np = sc.N_P
    out = {}
    for k in users:
        # r_k = (P_k^T kron C_k^H) h_k: the own-path columns of E_k
        Er = torch.zeros_like(E[:, k])
        Er[..., k * Np:(k + 1) * Np] = E[:, k][..., k * Np:(k + 1) * Np]
        Rr = Er @ G @ Er.mH
        w, B = torch.linalg.eigh(Rr)
        B = B[..., -Np:]  # the N_P strongest directions of Cov(r_k)

        def quant(z, M_obs, R_obs, Er=Er, B=B):  # MMSE estimate of r_k from z = M a + noise, KLT, signs
            Crz = Er @ G @ M_obs.mH
            est = torch.linalg.solve(R_obs, Crz.mH)  # [n, d, d]: r_hat = Crz R^-1 z
            rh = torch.einsum("nde,nre->nrd", est.mH, z)
            c = torch.einsum("ndm,nrd->nrm", B.conj(), rh)
            return torch.cat([(c.real > 0), (c.imag > 0)], -1).to(torch.uint8)

        RD = D[:, k] @ G @ D[:, k].mH + nD[:, k]
        RU = E[:, k] @ G @ E[:, k].mH + nU[:, k]
        bits_ut = quant(zD[:, k], D[:, k], RD)
        bits_bs = quant(zU[:, k], E[:, k], RU)
        entry = {"bs": bits_bs, "ut": bits_ut}
        if K > 1:  # curious UT: the one whose cluster centre is nearest to k's
            centre = batch["sin_aod"].mean(-1)
            dist = (centre - centre[:, k:k + 1]).abs()
            dist[:, k] = float("inf")
            i = dist.argmin(-1)
            cur = []
            for j in range(K):
                if j == k:
                    continue
                Ej = torch.zeros_like(E[:, j])
                Ej[..., j * Np:(j + 1) * Np] = E[:, j][..., j * Np:(j + 1) * Np]
                wj, Bj = torch.linalg.eigh(Ej @ G @ Ej.mH)
                Bj = Bj[..., -Np:]
                RDj = D[:, j] @ G @ D[:, j].mH + nD[:, j]
                est = torch.linalg.solve(RDj, (Ej @ G @ D[:, j].mH).mH)
                rh = torch.einsum("nde,nre->nrd", est.mH, zD[:, j])
                c = torch.einsum("ndm,nrd->nrm", Bj.conj(), rh)
                cur.append(torch.cat([(c.real > 0), (c.imag > 0)], -1).to(torch.uint8))
            cur = torch.stack(cur, 1)  # [n, K-1, rounds, bits]
            idx = torch.where(i > k, i - 1, i)
            entry["curious"] = cur[torch.arange(n), idx]
        out[k] = entry
    return out


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


def fig4(sc, out, md, curves_json, draws):
    sc1 = sc.replace(K=1)
    base = sc1.sample(draws, generator_for(4, 1))
    snrs = [0, 4, 8, 12, 16, 20]
    curves = {k: [] for k in ("perfect CSI", "optimal U, M_e=6", "eigen beams P~, M_e=6", "strongest beams P~, M_e=6",
                              "optimal U, M_e=4", "eigen beams P~, M_e=4", "strongest beams P~, M_e=4")}
    for s in snrs:
        b = at_snr(base, s)
        pth = sc1.paths(b)
        u, v, g = pth["u"], pth["v"], pth["g"]
        curves["perfect CSI"].append(mu.theorem2_rate_paths(u, v, g, sc.M * sc.N_k).mean().item())
        for Me in (6, 4):
            scm = sc1.replace(M_e=Me)
            curves[f"optimal U, M_e={Me}"].append(mu.theorem2_rate_paths(u, v, g, Me * sc.N_k).mean().item())
            des = designs(scm, b)
            for key, name in (("eigen_beams", "eigen beams"), ("strongest_overlapping", "strongest beams")):
                P, C = des[key]
                C = torch.eye(sc.N_k, dtype=torch.complex128).expand_as(C)  # C~ = I as in 003 Fig. 4
                curves[f"{name} P~, M_e={Me}"].append(scm.rates(b, P, C, "orthogonal").mean().item())
    plot(out / "fig4_single_user.png", snrs, curves, "SNR (dB)", "SKR (bits per probing round)",
         "003 Fig. 4: one UT, M = 128, N_k = 4, 6 paths, C~ = I")
    md += ["## Fig. 4: single UT", "", *md_table("SNR dB", snrs, curves), ""]
    curves_json["fig4"] = {"snr_db": snrs, **curves}


def fig6(sc, net, out, md, curves_json, draws):
    Ks = [1, 2, 3, 4, 5, 6]
    curves = {"sum of Theorem 2 (orthogonal pilots)": []}
    for key in BASE:
        curves[LABEL[key] + ", (30)"] = []
    learned_pt = None
    for K in Ks:
        scK = sc.replace(K=K)
        b = at_snr(scK.sample(draws, generator_for(6, K)), 10.0)
        curves["sum of Theorem 2 (orthogonal pilots)"].append(scK.theorem2_rates(b).sum(-1).mean().item())
        des = designs(scK, b)
        for key in BASE:
            curves[LABEL[key] + ", (30)"].append(scK.rates(b, *des[key], "reuse").sum(-1).mean().item())
        if K == sc.K and net is not None:
            learned_pt = sc.rates(b, *learned_design(net, sc, b), "reuse").sum(-1).mean().item()
    pts = {"PKG-Net, (30) (K = 6)": ([sc.K], [learned_pt])} if learned_pt is not None else None
    plot(out / "fig6_sum_skr_vs_users.png", Ks, curves, "number of UTs K", "sum SKR (bits)",
         "003 Fig. 6: sum SKR vs K, SNR 10 dB, pilot reuse, budget K M_e", pts)
    md += ["## Fig. 6: sum SKR vs number of UTs (10 dB)", "", *md_table("K", Ks, curves)]
    if learned_pt is not None:
        md += ["", f"PKG-Net at K = 6: {learned_pt:.3f} bits."]
    md.append("")
    curves_json["fig6"] = {"K": Ks, **curves, "learned_K6": learned_pt}


def fig7_8(sc, net, out, md, curves_json, draws):
    snrs = [0, 5, 10, 15, 20]
    c7 = {"reuse, M_e=6 (Alg. 1)": [], "reuse, M_e=4 (Alg. 1)": [], "orthogonal pilots, M_e=6 (Alg. 1)": [],
          "orthogonal pilots, M_e=4 (Alg. 1)": []}
    c8 = {"non-overlapping, M_e=6 (Alg. 1)": [], "non-overlapping, M_e=4 (Alg. 1)": [],
          "overlapping, M_e=6 (strongest)": [], "overlapping, M_e=4 (strongest)": []}
    if net is not None:
        c7["PKG-Net, reuse, M_e=6"] = []
        c8["PKG-Net, reuse, M_e=6"] = []
    base7 = sc.sample(draws, generator_for(7, 1))
    base8 = sc.replace(p_overlapping=1.0).sample(draws, generator_for(8, 1))
    for s in snrs:
        b7, b8 = at_snr(base7, s), at_snr(base8, s)
        for Me in (6, 4):
            scm = sc.replace(M_e=Me)
            T_reuse = mu.pilot_overhead(Me, sc.N_e, sc.K, "reuse")
            T_orth = mu.pilot_overhead(Me, sc.N_e, sc.K, "orthogonal")
            d7 = designs(scm, b7)
            c7[f"reuse, M_e={Me} (Alg. 1)"].append(
                mu.unit_skr(scm.rates(b7, *d7["beam_selection"], "reuse").sum(-1), T_reuse).mean().item())
            c7[f"orthogonal pilots, M_e={Me} (Alg. 1)"].append(
                mu.unit_skr(scm.rates(b7, *d7["beam_selection"], "orthogonal").sum(-1), T_orth).mean().item())
            d8 = designs(scm, b8)
            c8[f"non-overlapping, M_e={Me} (Alg. 1)"].append(
                mu.unit_skr(scm.rates(b8, *d8["beam_selection"], "reuse").sum(-1), T_reuse).mean().item())
            P, C = d8["strongest_overlapping"]
            sharing = (P.abs() > 0.5).sum(1).amax(-1).amax(-1)  # most UTs on one beam, per draw
            T = torch.tensor([mu.pilot_overhead(Me, sc.N_e, sc.K, "overlapping", beam_sharing=int(s_))
                              for s_ in sharing], dtype=torch.float64)
            Pn = P / P.abs().pow(2).sum(-2, keepdim=True).sqrt()  # orthogonal pilots: each UT at unit power
            c8[f"overlapping, M_e={Me} (strongest)"].append(
                mu.unit_skr(scm.rates(b8, Pn, C, "orthogonal").sum(-1), T).mean().item())
        if net is not None:
            T = mu.pilot_overhead(sc.M_e, sc.N_e, sc.K, "reuse")
            c7["PKG-Net, reuse, M_e=6"].append(
                mu.unit_skr(sc.rates(b7, *learned_design(net, sc, b7), "reuse").sum(-1), T).mean().item())
            c8["PKG-Net, reuse, M_e=6"].append(
                mu.unit_skr(sc.rates(b8, *learned_design(net, sc, b8), "reuse").sum(-1), T).mean().item())
    plot(out / "fig7_unit_skr_pilots.png", snrs, c7, "SNR (dB)", "unit SKR (bits per pilot symbol)",
         "003 Fig. 7: unit SKR (48), orthogonal vs reused pilots, K = 6")
    plot(out / "fig8_unit_skr_overlap.png", snrs, c8, "SNR (dB)", "unit SKR (bits per pilot symbol)",
         "003 Fig. 8: overlapping UTs, overlapping vs non-overlapping beams")
    md += ["## Fig. 7: unit SKR, orthogonal vs reused pilots", "", *md_table("SNR dB", snrs, c7), "",
           "## Fig. 8: unit SKR on overlapping draws, overlapping vs non-overlapping beams", "",
           *md_table("SNR dB", snrs, c8), ""]
    curves_json["fig7"] = {"snr_db": snrs, **c7}
    curves_json["fig8"] = {"snr_db": snrs, **c8}


def fig9(out, md, curves_json, mc_samples: int):
    snrs = list(range(-10, 41, 5))
    rhos = [0.0, 0.5, 0.8, 0.9, 0.99, 1.0]
    curves = {f"rho={r:g}": [float(mu.leakage_ratio(r, 10 ** (-s / 10))) for s in snrs] for r in rhos}
    # Monte Carlo: h1, h2 CN(0,1) with correlation rho; x_D = h1 + n, x_U = h1 + n', w = h2 + n''
    g = generator_for(9, 1)
    pts_x, pts_y = [], []
    for r in (0.9, 1.0):
        for s in (0, 10, 20):
            s2 = 10 ** (-s / 10)

            def cn(m):
                return torch.view_as_complex(torch.randn(m, 1, 2, generator=g, dtype=torch.float64)) / math.sqrt(2)

            h1 = cn(mc_samples)
            h2 = r * h1 + math.sqrt(max(0.0, 1 - r * r)) * cn(mc_samples)
            xD, xU, w = (h1 + math.sqrt(s2) * cn(mc_samples), h1 + math.sqrt(s2) * cn(mc_samples),
                         h2 + math.sqrt(s2) * cn(mc_samples))
            Rl, _ = mu.mc_mutual_information(xD, xU, w)
            Rh, _ = mu.mc_mutual_information(xD, xU)
            pts_x.append(s)
            pts_y.append(1 - Rl / Rh)
    plot(out / "fig9_leakage_ratio.png", snrs, curves, "SNR = 1/sigma^2 (dB)", "leakage ratio gamma",
         "003 Fig. 9: information leakage ratio (43) (stars: Monte Carlo, rho = 0.9 and 1)",
         {"Monte Carlo": (pts_x, pts_y)})
    md += ["## Fig. 9: leakage ratio (43)", "", *md_table("SNR dB", snrs, curves),
           "", "Monte Carlo (rho = 0.9 at 0/10/20 dB, then rho = 1): " + ", ".join(f"{y:.3f}" for y in pts_y), ""]
    curves_json["fig9"] = {"snr_db": snrs, **curves, "mc": {"snr_db": pts_x, "gamma": pts_y}}


def fig10(sc, net, out, md, curves_json, draws, rounds):
    snrs = [0, 5, 10, 15, 20]
    curves = {"legitimate (Alg. 1)": [], "curious (Alg. 1)": [], "single UT": []}
    if net is not None:
        curves["legitimate (PKG-Net)"] = []
        curves["curious (PKG-Net)"] = []
    base = sc.sample(draws, generator_for(10, 1))
    base1 = sc.replace(K=1).sample(draws, generator_for(10, 2))
    g = generator_for(10, 3)
    for s in snrs:
        b = at_snr(base, s)
        P, C = designs(sc, b)["beam_selection"]
        kb = key_bits(sc, b, P, C, rounds, g)[0]
        curves["legitimate (Alg. 1)"].append((kb["bs"] != kb["ut"]).double().mean().item())
        curves["curious (Alg. 1)"].append((kb["curious"] != kb["ut"]).double().mean().item())
        b1 = at_snr(base1, s)
        sc1 = sc.replace(K=1)
        P1, C1 = designs(sc1, b1)["eigen_beams"]
        kb1 = key_bits(sc1, b1, P1, C1, rounds, g)[0]
        curves["single UT"].append((kb1["bs"] != kb1["ut"]).double().mean().item())
        if net is not None:
            kl = key_bits(sc, b, *learned_design(net, sc, b), rounds, g)[0]
            curves["legitimate (PKG-Net)"].append((kl["bs"] != kl["ut"]).double().mean().item())
            curves["curious (PKG-Net)"].append((kl["curious"] != kl["ut"]).double().mean().item())
    plot(out / "fig10_bdr.png", snrs, curves, "SNR (dB)", "bit disagreement ratio",
         "003 Fig. 10: BDR of legitimate and curious UTs (12 bits per round)", logy=True)
    md += ["## Fig. 10: bit disagreement ratio (UT 0; curious = the UT with the nearest cluster)", "",
           *md_table("SNR dB", snrs, curves, "{:.4f}"), ""]
    curves_json["fig10"] = {"snr_db": snrs, **curves}


def table1(sc, net, md, curves_json, n_keys):
    """NIST pass ratios of n_keys 256-bit initial keys (UT side, UT 0), one key per statistics draw."""
    rows = {}
    key_len, per_round = 256, 2 * sc.N_P
    rounds = math.ceil(key_len / per_round)
    for name in ("Algorithm 1", "PKG-Net") if net is not None else ("Algorithm 1",):
        keys = []
        g = generator_for(11, 1)
        done = 0
        while done < n_keys:
            m = min(250, n_keys - done)
            b = sc.sample(m, generator_for(11, 2, done))
            P, C = designs(sc, b)["beam_selection"] if name == "Algorithm 1" else learned_design(net, sc, b)
            kb = key_bits(sc, b, P, C, rounds, g)[0]["ut"].reshape(m, -1)[:, :key_len]
            keys.append(kb.numpy())
            done += m
        rows[name] = nist_pass_ratios_003(np.concatenate(keys), block_bits=key_len)
    md += [f"## Table I: NIST pass ratios of {n_keys} initial keys of 256 bits (UT side, alpha = 0.01)", "",
           "| test | " + " | ".join(rows) + " |", "|---|" + "---:|" * len(rows)]
    for t in TABLE_I_003_TESTS:
        md.append(f"| {t} | " + " | ".join(f"{rows[r][t]:.4f}" for r in rows) + " |")
    md += ["", "Rank: 32 x 32 matrices need 1024 bits, so it runs on groups of 38,912 bits of the key stream "
           "(keygen.randomness.nist_pass_ratios); the other eight tests run on each 256-bit key.", ""]
    curves_json["table1"] = rows


# --------------------------------------------------------------------------------------------
# learned-design results
# --------------------------------------------------------------------------------------------


def learned_results(sc, net, sh_sc, sh_net, shr_net, md, curves_json, draws, opt_draws, opt_steps):
    res = {}
    test = sc.sample(max(draws, 2 * opt_draws), generator_for(2024, 7))  # held out (seeds differ from training)
    sub = sc.subsets(test)
    des = designs(sc, test)
    r = {k: sc.rates(test, *des[k], "reuse").sum(-1) for k in des}
    r["learned"] = sc.rates(test, *learned_design(net, sc, test), "reuse").sum(-1)
    refine = refine_steps_of(net)
    if refine:  # what the net and the refinement steps each contribute
        r["net_direct"] = sc.rates(test, *net_direct_design(net, sc, test), "reuse").sum(-1)
        r["eigen_refined"] = sc.rates(test, *refined_from(net, sc, test, *des["eigen_beams"]), "reuse").sum(-1)
    th = sc.theorem2_rates(test).sum(-1)
    ov, se = sub["overlapping"], sub["separated"]
    best_name = max(BASE, key=lambda k: r[k][ov].mean().item())
    res["overlapping"] = {k: r[k][ov].mean().item() for k in r}
    res["separated"] = {k: r[k][se].mean().item() for k in r}
    res["separated"]["theorem2_sum"] = th[se].mean().item()
    res["overlapping"]["theorem2_sum"] = th[ov].mean().item()
    res["gain_over_best_baseline_overlapping"] = r["learned"][ov].mean().item() / r[best_name][ov].mean().item()
    res["best_baseline_overlapping"] = best_name
    res["fraction_of_theorem2_separated"] = r["learned"][se].mean().item() / th[se].mean().item()
    # Algorithm 1's overlap threshold is not in 003: its effect on the same overlapping draws
    res["algorithm1_threshold_sweep_overlapping"] = {}
    for t in (-3.0, -10.0, -20.0, -30.0, -40.0):
        P, C = sc.replace(overlap_threshold_db=t).baseline_designs(test, generator_for(0, 4))["beam_selection"]
        res["algorithm1_threshold_sweep_overlapping"][t] = sc.rates(test, P, C, "reuse").sum(-1)[ov].mean().item()
    # per-instance optimum on the first overlapping draws (budget on), and without the budget
    idx = torch.nonzero(ov)[:opt_draws, 0]
    sub_b = {k: v[idx] for k, v in test.items()}
    t0 = time.time()
    opt = sc.optimum(sub_b, generator_for(2024, 8), steps=opt_steps, restarts=4)
    t_opt = time.time() - t0
    r_opt = sc.skr(sub_b, opt).sum(-1)
    r_l = r["learned"][idx]
    res["optimum"] = {"draws": len(idx), "steps": opt_steps, "restarts": 4, "seconds": t_opt,
                      "mean_optimum": r_opt.mean().item(), "mean_learned": r_l.mean().item(),
                      "fraction_of_optimum_mean": (r_l.mean() / r_opt.mean()).item(),
                      "fraction_of_optimum_min_draw": (r_l / r_opt).min().item()}
    for k in ("net_direct", "eigen_refined"):
        if k in r:
            res["optimum"][f"fraction_of_optimum_mean_{k}"] = (r[k][idx].mean() / r_opt.mean()).item()
            res["optimum"][f"fraction_of_optimum_min_draw_{k}"] = (r[k][idx] / r_opt).min().item()
    sc_nb = sc.replace(budget=False)
    opt_nb = sc_nb.optimum(sub_b, generator_for(2024, 9), steps=opt_steps, restarts=4)
    r_opt_nb = sc_nb.skr(sub_b, opt_nb).sum(-1)
    P_nb = cplx(opt_nb["P"])
    des_nb = {k: (P, C) for k, (P, C) in sc_nb.baseline_designs(sub_b, generator_for(0, 4)).items()}
    res["no_budget"] = {
        "mean_optimum": r_opt_nb.mean().item(),
        "optimum_gain_over_budgeted_optimum": (r_opt_nb.mean() / r_opt.mean()).item(),
        "optimum_downlink_power_over_budget": ((P_nb.sum(1).abs() ** 2).sum((-1, -2)) / sc.budget_value).mean().item(),
        "learned_reprojected_without_budget": sc_nb.rates(sub_b, *learned_design(net, sc, sub_b, budget=False),
                                                          "reuse").sum(-1).mean().item(),
        **{k: sc_nb.rates(sub_b, *des_nb[k], "reuse").sum(-1).mean().item() for k in BASE},
    }
    md += ["## Learned design (held-out draws, budget K M_e on)", "",
           f"{int(ov.sum())} overlapping and {int(se.sum())} separated draws of the training distribution "
           "(seed stream 2024, never used in training).", "",
           "| design | overlapping: mean sum (30) | separated: mean sum (30) |", "|---|---:|---:|"]
    for k in (*BASE, "random_semi_unitary", "eigen_refined", "net_direct", "learned"):
        if k in r:
            md.append(f"| {LABEL[k]} | {res['overlapping'][k]:.3f} | {res['separated'][k]:.3f} |")
    md += [f"| sum of Theorem 2 (orthogonal pilots) | {res['overlapping']['theorem2_sum']:.3f} | "
           f"{res['separated']['theorem2_sum']:.3f} |", "",
           f"* overlapping: PKG-Net / best analytic baseline ({LABEL[best_name]}) = "
           f"{res['gain_over_best_baseline_overlapping']:.3f} (target >= 1.05)",
           f"* per-instance optimum on {len(idx)} overlapping draws ({opt_steps} steps, 4 restarts, "
           f"{t_opt:.0f} s): optimum {res['optimum']['mean_optimum']:.3f}, PKG-Net "
           f"{res['optimum']['mean_learned']:.3f}: {100 * res['optimum']['fraction_of_optimum_mean']:.1f} % on the "
           f"mean (target >= 97 %), worst draw {100 * res['optimum']['fraction_of_optimum_min_draw']:.1f} % "
           "(target >= 90 %)",
           *([f"* PKG-Net = its net's design + {refine} in-graph Adam steps of projected ascent on (30) "
              "(evaluation and export). On the same draws: the net alone "
              f"{100 * res['optimum']['fraction_of_optimum_mean_net_direct']:.1f} % (worst "
              f"{100 * res['optimum']['fraction_of_optimum_min_draw_net_direct']:.1f} %), the same steps from eigen "
              f"beams {100 * res['optimum']['fraction_of_optimum_mean_eigen_refined']:.1f} % (worst "
              f"{100 * res['optimum']['fraction_of_optimum_min_draw_eigen_refined']:.1f} %)"] if refine else []),
           f"* separated: PKG-Net / sum of Theorem 2's rates = {res['fraction_of_theorem2_separated']:.3f} "
           "(target >= 0.99)",
           "* Algorithm 1's overlap threshold (not in 003) on the same overlapping draws, mean sum (30): "
           + ", ".join(f"{t:g} dB: {v:.2f}" for t, v in res["algorithm1_threshold_sweep_overlapping"].items()),
           f"* (30) as printed (no budget), same {len(idx)} draws: optimum {res['no_budget']['mean_optimum']:.3f} "
           f"= {res['no_budget']['optimum_gain_over_budgeted_optimum']:.3f} x the budgeted optimum, at "
           f"{res['no_budget']['optimum_downlink_power_over_budget']:.2f} x the budget's downlink power; "
           "PKG-Net's raw outputs re-projected without the budget (and, with refinement steps, refined on (30) as "
           f"printed) {res['no_budget']['learned_reprojected_without_budget']:.3f}; "
           + ", ".join(f"{LABEL[k]} {res['no_budget'][k]:.3f}" for k in BASE), ""]
    if sh_net is not None:
        st = sh_sc.sample(draws, generator_for(2024, 17))
        dsh = designs(sh_sc, st)
        rs = {k: sh_sc.rates(st, *dsh[k], "leakage").sum(-1) for k in dsh}
        rs_ex = {k: sh_sc.rates(st, *dsh[k], "leakage_exact").sum(-1) for k in BASE}
        Pl, Cl = learned_design(sh_net, sh_sc, st)
        rs["learned"] = sh_sc.rates(st, Pl, Cl, "leakage").sum(-1)
        rs_ex["learned"] = sh_sc.rates(st, Pl, Cl, "leakage_exact").sum(-1)
        if refine_steps_of(sh_net):
            rs["net_direct"] = sh_sc.rates(st, *net_direct_design(sh_net, sh_sc, st), "leakage").sum(-1)
            rs["eigen_refined"] = sh_sc.rates(st, *refined_from(sh_net, sh_sc, st, *dsh["eigen_beams"]),
                                              "leakage").sum(-1)
        best = max(BASE, key=lambda k: rs[k].mean().item())
        shres = {k: v.mean().item() for k, v in rs.items()}
        shres["exact"] = {k: v.mean().item() for k, v in rs_ex.items()}
        shres["gain_over_best_baseline"] = (rs["learned"].mean() / rs[best].mean()).item()
        shres["best_baseline"] = best
        lines = ["## Shared scatterers: leakage-aware rate (27)", "",
                 f"{draws} held-out draws; UT pairs share 2 scatterers (rho ~ U[0.8, 1]). (27) as trained: against "
                 "the pair partner, min'ed with (30)-style MI; exact: min over all K - 1 curious UTs.", "",
                 "| design | sum (27), training form | sum (27), exact |", "|---|---:|---:|"]
        for k in BASE:
            lines.append(f"| {LABEL[k]} | {shres[k]:.3f} | {shres['exact'][k]:.3f} |")
        for k in ("eigen_refined", "net_direct"):
            if k in rs:
                lines.append(f"| {LABEL[k]} | {shres[k]:.3f} | |")
        lines.append(f"| PKG-Net, trained on (27) | {shres['learned']:.3f} | {shres['exact']['learned']:.3f} |")
        if shr_net is not None:
            Pr, Cr = learned_design(shr_net, sh_sc, st)
            shres["reuse_trained_under_27"] = sh_sc.rates(st, Pr, Cr, "leakage").sum(-1).mean().item()
            shres["reuse_trained_under_30"] = sh_sc.rates(st, Pr, Cr, "reuse").sum(-1).mean().item()
            shres["leakage_trained_under_30"] = sh_sc.rates(st, Pl, Cl, "reuse").sum(-1).mean().item()
            lines.append(f"| PKG-Net, trained on (30) | {shres['reuse_trained_under_27']:.3f} | |")
            lines += ["", f"Under (30) (leakage ignored): (30)-trained {shres['reuse_trained_under_30']:.3f}, "
                      f"(27)-trained {shres['leakage_trained_under_30']:.3f}: ignoring leakage costs "
                      f"{shres['learned'] - shres['reuse_trained_under_27']:.3f} bits of (27)."]
        # the same draws with every shared scatterer fully correlated (rho = 1: literally the same path)
        st1 = dict(st)
        st1["rho_shared"] = torch.where(st["rho_shared"] != 0, torch.ones_like(st["rho_shared"]), st["rho_shared"])
        d1 = designs(sh_sc, st1)
        r1 = {k: sh_sc.rates(st1, *d1[k], "leakage").sum(-1).mean().item() for k in BASE}
        r1["learned"] = sh_sc.rates(st1, *learned_design(sh_net, sh_sc, st1), "leakage").sum(-1).mean().item()
        shres["rho_one"] = r1
        lines += ["", "Same draws with rho = 1 on the shared scatterers (sum (27), training form): "
                  + ", ".join(f"{LABEL[k]} {v:.3f}" for k, v in r1.items())
                  + f"; PKG-Net / best baseline = {r1['learned'] / max(r1[k] for k in BASE):.3f}"]
        idx = torch.arange(min(opt_draws, draws))
        sb = {k: v[idx] for k, v in st.items()}
        o = sh_sc.optimum(sb, generator_for(2024, 18), steps=opt_steps, restarts=4)
        shres["optimum_mean"] = sh_sc.skr(sb, o).sum(-1).mean().item()
        shres["learned_on_optimum_draws"] = rs["learned"][idx].mean().item()
        shres["learned_fraction_of_optimum_min_draw"] = (rs["learned"][idx] / sh_sc.skr(sb, o).sum(-1)).min().item()
        lines += ["", f"* PKG-Net / best baseline ({LABEL[best]}) under (27): {shres['gain_over_best_baseline']:.3f} "
                  "(target >= 1.25)",
                  f"* per-instance optimum of (27) on {len(idx)} draws: {shres['optimum_mean']:.3f}, PKG-Net on the "
                  f"same draws {shres['learned_on_optimum_draws']:.3f} "
                  f"({100 * shres['learned_on_optimum_draws'] / shres['optimum_mean']:.1f} %, worst draw "
                  f"{100 * shres['learned_fraction_of_optimum_min_draw']:.1f} %)", ""]
        md += lines
        res["shared"] = shres
    curves_json["learned"] = res


def main(argv=None) -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, default=None, help="checkpoint of configs/pkgnet/multiuser.yaml")
    p.add_argument("--shared-ckpt", type=Path, default=None, help="checkpoint of configs/pkgnet/multiuser_shared.yaml")
    p.add_argument("--shared-reuse-ckpt", type=Path, default=None,
                   help="checkpoint of multiuser_shared.yaml trained with objective: reuse")
    p.add_argument("--refine-steps", type=nonnegative_int, default=None,
                   help="evaluate --ckpt with this many refinement steps (default: the checkpoint's)")
    p.add_argument("--refine-lr", type=positive_float, default=None, help="and this step size")
    p.add_argument("--shared-refine-steps", type=nonnegative_int, default=None,
                   help="evaluate --shared-ckpt (and --shared-reuse-ckpt) with this many refinement steps, e.g. "
                        "the value chosen on the validation split by experiments.multiuser_refine_sweep")
    p.add_argument("--shared-refine-lr", type=positive_float, default=None, help="and this step size")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default results/multiuser_003; with --quick outputs/multiuser_003_quick)")
    p.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    p.add_argument("--draws", default=200, type=positive_int)
    p.add_argument("--optimum-draws", default=16, type=positive_int)
    p.add_argument("--optimum-steps", default=100, type=positive_int)
    p.add_argument("--keys", default=10000, type=positive_int)
    p.add_argument("--rounds", default=50, type=positive_int, help="probing rounds per draw for the BDR")
    p.add_argument("--threads", default=1, type=positive_int)
    p.add_argument("--quick", action="store_true", help="a few draws everywhere (smoke run)")
    args = p.parse_args(argv)
    draws = args.draws
    opt_draws = args.optimum_draws
    opt_steps = args.optimum_steps
    n_keys = args.keys
    rounds = args.rounds
    torch.set_num_threads(args.threads)
    if args.quick:
        draws, opt_draws, opt_steps, n_keys, rounds = 8, 2, 3, 100, 5
    if args.out is None:
        args.out = Path("outputs/multiuser_003_quick" if args.quick else "results/multiuser_003")
        if args.quick:  # a scratch folder for smoke runs: rerunning replaces the last one
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.overwrite = True
    check_out_folder(args.out, "results.md", args.overwrite)
    net, sc = load_net(args.ckpt, "ckpt", args.refine_steps, args.refine_lr)
    sh_net, sh_sc = load_net(args.shared_ckpt, "shared-ckpt", args.shared_refine_steps, args.shared_refine_lr)
    shr_net, shr_sc = load_net(args.shared_reuse_ckpt, "shared-reuse-ckpt")
    if sc is not None and sc.shared_paths:
        fail(f"--ckpt {str(args.ckpt)!r} is a shared-scatterer checkpoint (shared_paths = {sc.shared_paths}, objective "
             f"{sc.objective!r}); pass it as --shared-ckpt (trained on (27)) or --shared-reuse-ckpt (on (30))")
    if sh_sc is not None and sh_sc.objective != "leakage":
        fail(f"--shared-ckpt was trained with objective {sh_sc.objective!r}, expected 'leakage'")
    if shr_sc is not None and (shr_sc.objective != "reuse" or not shr_sc.shared_paths):
        fail("--shared-reuse-ckpt must be a shared-scatterer scenario trained with objective 'reuse'")
    from models.refine import describe_record

    def describe(n):
        return n.refinement.describe() if n.refinement is not None else None

    if shr_net is not None and sh_net is not None and describe(shr_net) != describe(sh_net):
        # compare like with like: the (30)-trained net gets the same refinement, on (30) (its own objective; the
        # refinement holds no weights, so the trained net is unchanged)
        from models.refine import refinement_from_record

        shr_net.refinement = refinement_from_record(describe(sh_net))
        shr_net.eval()
        print(f"--shared-reuse-ckpt: evaluated with {refine_steps_of(sh_net)} refinement steps on (30), as "
              "--shared-ckpt's design on (27)", file=sys.stderr)
    if sc is None:
        sc = MultiUserScenario()
    args.out.mkdir(exist_ok=True)
    t0 = time.time()
    md = ["# 003 beam-domain multi-user key generation: reproduced figures", "",
          f"`python -m experiments.multiuser_figures {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
          "Scenario: " + json.dumps({k: v for k, v in sc.describe().items()
                                     if k not in ("feature_names", "feature_units", "output_meaning")}), "",
          *([f"PKG-Net's refinement (--ckpt): {describe_record(describe(net))}", ""] if net is not None else [])]
    curves: dict = {}
    fig4(sc, args.out, md, curves, draws)
    fig6(sc, net, args.out, md, curves, draws)
    fig7_8(sc, net, args.out, md, curves, draws)
    fig9(args.out, md, curves, 20000 if not args.quick else 2000)
    fig10(sc, net, args.out, md, curves, max(2, draws // 4), rounds)
    table1(sc, net, md, curves, n_keys)
    if net is not None:
        learned_results(sc, net, sh_sc, sh_net, shr_net, md, curves, draws, opt_draws, opt_steps)
    md += [f"Wall time: {time.time() - t0:.0f} s ({torch.get_num_threads()} thread(s))."]
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    (args.out / "curves.json").write_text(json.dumps(curves, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
