"""Reproduce 004 Figs 3-5 (near-field XL-MIMO key generation) with every design on the same axes.

    python -m experiments.nearfield_figures --ckpt runs/pkgnet/nearfield/checkpoints/last.ckpt
    python -m experiments.nearfield_figures --pt2 nearfield.pt2 [--out results/nearfield_004]

Designs: MRC (random scalar on Bob's beam), SVD w/o PA (P_S = P_a/2), SVD w/ PA (Dinkelbach, 004 Alg. 1 with
the budget check), the closed-form optimal beam, and PKG-Net (a checkpoint of configs/pkgnet/nearfield.yaml
or its exported .pt2). The paper gives no axis ranges; ours:
  Fig. 3: SKR vs P_t in [0, 40] dBm, r_b 12.2 m, r_e 12 m, psi_b = psi_e = 0.2 rad;
  Fig. 4: SKR vs r_e in [8, 20] m, r_b 14 m, psi_b = psi_e = 0.2 rad, P_t 30 dBm;
  Fig. 5: SKR vs psi_e in [-1.5, 1.5] rad, r_b = r_e = 15 m, psi_b = 0, P_t 30 dBm (and a zoom on
          |psi_e| <= 0.05 rad in 0.5 mrad steps, where the designs differ);
N 256, 30 GHz, -105 dBm noise everywhere (004 Sec. V-A). Writes PNGs, ``curves.json`` and ``results.md``
(tables, the optimal beam's gain over SVD w/ PA along each axis, PKG-Net's margin over SVD w/ PA at every
point, and the held-out test-set means) into ``--out``.
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
import torch  # noqa: E402

from experiments.cli_args import Parser, check_out_folder, checkpoint_arg, fail, positive_int  # noqa: E402
from physics.nearfield import NearFieldScenario  # noqa: E402
from physics.seeding import generator_for  # noqa: E402

NAMES = {"mrc": "MRC", "svd_equal": "SVD w/o PA", "svd_dinkelbach": "SVD w/ PA", "optimal_beam": "optimal beam",
         "pkgnet": "PKG-Net"}
STYLE = {"MRC": dict(color="C7", marker="x"), "SVD w/o PA": dict(color="C2", marker="^"),
         "SVD w/ PA": dict(color="C3", marker="v"), "optimal beam": dict(color="k", linewidth=3.5, alpha=0.35),
         "PKG-Net": dict(color="C0", linestyle="--")}


def load_net(args) -> tuple[callable, NearFieldScenario, str]:
    """The learned design as ``x [n, 5] float32 -> {"F": ...}`` and the scenario it was trained on."""
    if args.pt2 is not None:
        if not args.pt2.is_file():
            fail(f"--pt2 {str(args.pt2)!r} is not a file")
        from models.export import load_program

        try:
            prog, meta = load_program(args.pt2)
        except ValueError as e:
            fail(f"--pt2 {e}")
        if meta.get("scenario") != "nearfield":
            fail(f"--pt2 holds scenario {meta.get('scenario')!r}, not 'nearfield'")
        module = prog.module()
        names = meta["outputs_order"]

        def net(x):
            out = module(x)
            return dict(zip(names, out, strict=True))

        return net, NearFieldScenario.from_description(meta), f"exported {args.pt2}"
    from models.pkgnet import PKGNet

    ckpt = checkpoint_arg(args.ckpt, "ckpt")
    rec = ckpt.get("phykey")
    if rec is None or rec["scenario"].get("scenario") != "nearfield":
        fail(f"--ckpt {str(args.ckpt)!r} is not a PKG-Net checkpoint of the nearfield config")
    sc = NearFieldScenario.from_description(rec["scenario"])
    pk = PKGNet(rec["hidden"]).build(5, *sc.feature_bounds(), sc.design_space())
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    pk.load_state_dict(state)
    pk.eval()
    return pk, sc, f"checkpoint {args.ckpt} (epoch {ckpt.get('epoch')})"


@torch.no_grad()
def evaluate(sc: NearFieldScenario, net, batch) -> dict[str, list[float]]:
    out = {NAMES[k]: sc.skr(batch, d).tolist() for k, d in sc.baselines(batch, generator_for(0)).items()}
    out["PKG-Net"] = sc.skr(batch, {k: v.to(torch.float64) for k, v in net(sc.features(batch).float()).items()}
                            ).tolist()
    return {k: out[k] for k in ("MRC", "SVD w/o PA", "SVD w/ PA", "optimal beam", "PKG-Net")}


def plot(path: Path, x, curves, xlabel: str, title: str, logy: bool = False) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    many = len(x) > 60
    for name, ys in curves.items():
        style = dict(STYLE[name])
        if many:
            style.pop("marker", None)
        ax.plot(x, ys, label=name, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SKR (bits/channel probe)")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(x_name: str, x, curves, every: int = 1) -> list[str]:
    names = list(curves)
    lines = [f"| {x_name} | " + " | ".join(names) + " | optimal / SVD w/ PA |", "|---" * (len(names) + 2) + "|"]
    for i in range(0, len(x), every):
        ratio = curves["optimal beam"][i] / curves["SVD w/ PA"][i]
        lines.append(f"| {x[i]:g} | " + " | ".join(f"{curves[n][i]:.4f}" for n in names) + f" | {ratio:.2f}x |")
    return lines


def summary(x_name: str, x, curves) -> list[str]:
    opt, svd, net = (torch.tensor(curves[k]) for k in ("optimal beam", "SVD w/ PA", "PKG-Net"))
    margin = net - svd
    gain = opt / svd
    i_min = int(margin.argmin())
    return [f"- optimal beam / SVD w/ PA: min {gain.min():.2f}x, median {gain.median():.2f}x, max {gain.max():.2f}x "
            f"(at {x_name} = {x[int(gain.argmax())]:g});",
            f"- PKG-Net minus SVD w/ PA: min {margin.min():+.4f} bits (at {x_name} = {x[i_min]:g}); "
            f"PKG-Net >= SVD w/ PA - 1e-3 at every point: {'yes' if bool((margin >= -1e-3).all()) else 'NO'};",
            f"- PKG-Net / optimal beam: min {(net / opt).min():.4f}, mean {(net / opt).mean():.4f}."]


def main(argv=None) -> None:
    parser = Parser(description="Reproduce 004 Figs 3-5 with MRC, SVD w/o PA, SVD w/ PA, the "
                                                 "optimal beam and PKG-Net.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", type=Path, help="checkpoint of configs/pkgnet/nearfield.yaml")
    src.add_argument("--pt2", type=Path, help="exported PKG-Net (.pt2) of the nearfield config")
    parser.add_argument("--out", type=Path, default=Path("results/nearfield_004"), help="output folder (created)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--pt-points", default=41, type=positive_int,
                        help="points on Fig. 3's P_t axis (default 41: 1 dB steps)")
    parser.add_argument("--re-points", default=121, type=positive_int,
                        help="points on Fig. 4's r_e axis (default 121: 0.1 m)")
    parser.add_argument("--psi-points", default=601, type=positive_int,
                        help="points on Fig. 5's psi_e axis (default 601: 5 mrad)")
    parser.add_argument("--test-draws", default=2000, type=positive_int,
                        help="held-out draws of the training distribution")
    args = parser.parse_args(argv)
    n_pt = args.pt_points
    n_re = args.re_points
    n_psi = args.psi_points
    n_test = args.test_draws
    for name, n in (("--pt-points", n_pt), ("--re-points", n_re), ("--psi-points", n_psi)):
        if n < 2:
            fail(f"{name} must be >= 2 (an axis needs two points), got {n}")
    check_out_folder(args.out, "results.md", args.overwrite)
    net, sc, source = load_net(args)
    if sc.N != 256 or sc.carrier_hz != 30e9 or any(s != -105.0 for s in sc.sigma_dbm):
        print(f"note: the net's scenario (N {sc.N}, {sc.carrier_hz:g} Hz, noise {sc.sigma_dbm} dBm) is not 004's "
              "Sec. V-A setting; the figures use the net's", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def lin(lo, hi, n):
        # rounded to 1e-9 so the grid hits 0 rad and 14 m exactly (Eve on Bob) when the step allows
        return torch.round(torch.linspace(lo, hi, n, dtype=torch.float64) * 1e9) / 1e9 + 0.0  # no -0

    figs = {}
    P_t = lin(0.0, 40.0, n_pt)
    figs["fig3"] = ("P_t (dBm)", P_t, sc.point(n_pt, P_t_dbm=P_t),
                    "004 Fig. 3: SKR vs P_t (N 256, r_b 12.2 m, r_e 12 m, psi_b = psi_e = 0.2 rad)",
                    "fig3_skr_vs_pt.png")
    r_e = lin(8.0, 20.0, n_re)
    figs["fig4"] = ("r_e (m)", r_e, sc.point(n_re, r_b_m=14.0, r_e_m=r_e, P_t_dbm=30.0),
                    "004 Fig. 4: SKR vs r_e (P_t 30 dBm, N 256, r_b 14 m, psi_b = psi_e = 0.2 rad)",
                    "fig4_skr_vs_re.png")
    psi_e = lin(-1.5, 1.5, n_psi)
    figs["fig5"] = ("psi_e (rad)", psi_e, sc.point(n_psi, r_b_m=15.0, r_e_m=15.0, psi_b_rad=0.0, psi_e_rad=psi_e,
                                                     P_t_dbm=30.0),
                    "004 Fig. 5: SKR vs psi_e (P_t 30 dBm, N 256, r_b = r_e = 15 m, psi_b = 0)", "fig5_skr_vs_psie.png")
    psi_z = lin(-0.05, 0.05, 201)
    figs["fig5_zoom"] = ("psi_e (rad)", psi_z, sc.point(201, r_b_m=15.0, r_e_m=15.0, psi_b_rad=0.0, psi_e_rad=psi_z,
                                                         P_t_dbm=30.0),
                         "004 Fig. 5, zoom on Eve near Bob's angle (|psi_e| <= 0.05 rad, 0.5 mrad steps)",
                         "fig5_zoom_skr_vs_psie.png")
    md = ["# Paper 004 (near-field XL-MIMO key generation): Figs 3-5 reproduced", "",
          f"PKG-Net: {source}. SKR = 004 (23) in bits per channel probe, effective noises of (11) at -105 dBm, "
          "P_a = P_b = P_t, N = 256, 30 GHz (c = 299 792 458 m/s), conventions of docs/architecture.md section 1. "
          "MRC carries a random scalar pilot on Bob's beam; SVD w/ PA is 004 Alg. 1 with the stationary point used "
          "only inside [0, P_a]; the optimal beam is the closed form W* = P_a v v^H/|v|^2, v = f - t* h.", ""]
    all_curves = {}
    for key, (xlabel, x, batch, title, fname) in figs.items():
        curves = evaluate(sc, net, batch)
        all_curves[key] = {"x": x.tolist(), "xlabel": xlabel, **curves}
        plot(args.out / fname, x.tolist(), curves, xlabel, title)
        every = max(1, len(x) // 20)
        if key == "fig4":
            every = max(1, (len(x) - 1) // 24)
        md += [f"## {title}", "", f"![{key}]({fname})", ""] + summary(xlabel, x.tolist(), curves) + [""]
        md += table(xlabel, x.tolist(), curves, every) + [""]
        if key == "fig3":
            i30 = int((x - 30.0).abs().argmin())
            i0 = int(x.abs().argmin())
            md += [f"At P_t = {x[i30]:g} dBm: optimal beam {curves['optimal beam'][i30]:.4f} bits, SVD w/ PA "
                   f"{curves['SVD w/ PA'][i30]:.4f} ({curves['optimal beam'][i30] / curves['SVD w/ PA'][i30]:.2f}x), "
                   f"PKG-Net {curves['PKG-Net'][i30]:.4f} ({curves['PKG-Net'][i30] / curves['SVD w/ PA'][i30]:.2f}x "
                   f"SVD w/ PA); at {x[i0]:g} dBm the optimal beam is "
                   f"{curves['optimal beam'][i0] / curves['SVD w/ PA'][i0]:.1f}x SVD w/ PA. MRC stays at "
                   f"{min(curves['MRC']):.4f}-{max(curves['MRC']):.4f} bits over the whole axis (saturated: no "
                   "artificial noise, alpha -> noise_e |f|^4/|h^H f|^2).", ""]
    # held-out draws of the training distribution
    test = sc.sample(n_test, generator_for(2024, 99))
    with torch.no_grad():
        res = {k: torch.tensor(v) for k, v in evaluate(sc, net, test).items()}
    masks = {"all": torch.ones(n_test, dtype=torch.bool), **sc.subsets(test)}
    md += [f"## Held-out draws of the training distribution ({n_test} draws, seed (2024, 99))", "",
           "| subset | draws | " + " | ".join(res) + " | PKG-Net / optimal |", "|---" * (len(res) + 3) + "|"]
    for name, m in masks.items():
        means = {k: v[m].mean().item() for k, v in res.items()}
        md.append(f"| {name} | {int(m.sum())} | " + " | ".join(f"{means[k]:.4f}" for k in res)
                  + f" | {100 * means['PKG-Net'] / means['optimal beam']:.2f}% |")
    all_curves["test"] = {name: {k: v[m].mean().item() for k, v in res.items()} for name, m in masks.items()}
    md += ["", f"_Generated by `python -m experiments.nearfield_figures {' '.join(argv or sys.argv[1:])}` in "
           f"{time.perf_counter() - t0:.0f} s._"]
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    (args.out / "curves.json").write_text(json.dumps(all_curves))
    print(f"wrote {args.out / 'results.md'} and {len(list(args.out.glob('*.png')))} figures")
    for key in figs:
        c = all_curves[key]
        margin = min(a - b for a, b in zip(c["PKG-Net"], c["SVD w/ PA"], strict=True))
        print(f"{key}: min(PKG-Net - SVD w/ PA) = {margin:+.5f} bits")
    if not math.isfinite(sum(sum(v) for c in (all_curves[k] for k in figs) for kk, v in c.items()
                             if kk not in ("x", "xlabel"))):
        fail("non-finite SKR in the curves")


if __name__ == "__main__":
    main()
