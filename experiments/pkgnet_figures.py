"""Regenerate the PKG-Net figures and tables of papers 001 (Figs 5-9, Table I) and 000 (Figs 3-6).

    python -m experiments.pkgnet_figures --paper 001 --out results/pkgnet_001 [--quick]
    python -m experiments.pkgnet_figures --paper 000 --out results/pkgnet_000 [--quick]

Every figure shows PKG-Net, water-filling, random and the per-instance optimum on the same draws.
The nets' output sizes depend on M and L, so the M and L sweeps train one PKG-Net per value (as the
papers do); trained checkpoints are cached under ``--runs`` and reused. ``--quick`` trains 30 epochs
instead of the papers' up-to-100 (EarlyStopping, patience 10) and sweeps fewer points.

001 figures evaluate the SKR lower bound R_sk of (32) with Eve at Bob - lambda/2 in x (001 Sec.
VII-B); "w/o Eve info" designs are the Case 1 net / water-filling (P1.1), "w/ Eve info" the Case 2
net / water-filling (P2.1/P2.2). 000 figures evaluate I(y_a; y_b) of 000 (17). 000's figure captions
are missing from our copy of the paper: its fixed settings (P = 10 dBm, M = 4, L = 36, eta = 0.3)
are ours and stated on each figure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning.pytorch as pl
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping  # noqa: E402

from datamodules.scenario import ScenarioDataModule  # noqa: E402
from experiments.cli_args import Parser, check_out_folder, nonnegative_int, positive_int  # noqa: E402
from models.checkpoints import check_record, load_checkpoint  # noqa: E402
from models.pkgnet import PKGNet, PKGNetModule  # noqa: E402
from physics import irs  # noqa: E402
from physics.correlation import bob_eve_correlation  # noqa: E402
from physics.irs import IRSScenario, design_to_real  # noqa: E402
from physics.scenario import generator_for  # noqa: E402
from physics.units import wavelength_m  # noqa: E402

SIDE = {16: 4, 36: 6, 64: 8, 100: 10}
LAMBDA = float(wavelength_m(2.4e9))
STYLE = {
    "PKG-Net w/o Eve info": dict(color="C0", marker="o"),
    "PKG-Net w/ Eve info": dict(color="C1", marker="s", linestyle="--"),
    "PKG-Net": dict(color="C0", marker="o"),
    "water-filling w/o Eve info": dict(color="C2", marker="^"),
    "water-filling w/ Eve info": dict(color="C3", marker="v", linestyle="--"),
    "water-filling": dict(color="C2", marker="^"),
    "random": dict(color="C7", marker="x"),
    "optimum": dict(color="k", marker="", linestyle=":"),
}


class Runner:
    def __init__(self, runs: Path, epochs: int, hidden: list[int], seed: int = 0):
        self.runs, self.epochs, self.hidden, self.seed = runs, epochs, hidden, seed
        runs.mkdir(parents=True, exist_ok=True)
        self.train_seconds: dict[str, float] = {}

    def model(self, setting: str, **kw) -> PKGNetModule:
        """A PKG-Net trained on ``IRSScenario(setting, **kw)``, from the cache when present."""
        sc = IRSScenario(setting, **kw)
        key = f"{setting}_" + "_".join(f"{k}{v}" for k, v in sorted(kw.items()))
        key += f"_h{'-'.join(map(str, self.hidden))}"
        key += f"_e{self.epochs}_s{self.seed}"
        path = self.runs / f"{key}.ckpt"
        pl.seed_everything(self.seed, verbose=False)
        module = PKGNetModule(sc, PKGNet(self.hidden))
        if path.is_file():
            ckpt = load_checkpoint(path)
            check_record(ckpt, module.checkpoint_record(), path)
            module.load_state_dict(ckpt["state_dict"])
            return module.eval()
        dm = ScenarioDataModule(sc, train_draws_per_epoch=1000, batch_size=100, val_draws=500, test_draws=100,
                                eval_batch_size=500, seed=self.seed)
        trainer = pl.Trainer(max_epochs=self.epochs, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                             callbacks=[EarlyStopping("val/loss", patience=10)])
        t0 = time.perf_counter()
        trainer.fit(module, dm)
        self.train_seconds[key] = time.perf_counter() - t0
        trainer.save_checkpoint(path)
        print(f"  trained {key} in {self.train_seconds[key]:.1f} s ({trainer.current_epoch} epochs)")
        return module.eval()


@torch.no_grad()
def net_skr(module: PKGNetModule, eval_sc: IRSScenario, batch) -> torch.Tensor:
    out = module.net(module.scenario.features(batch).float())
    return eval_sc.skr(batch, out)


def baseline_skr(eval_sc: IRSScenario, batch, eve: bool, random_draws: int = 50, seed: int = 0) -> dict:
    """Water-filling (both cases when ``eve``), random (mean of ``random_draws`` designs), optimum."""
    stats, P_max = eval_sc.stats(batch), eval_sc.P_max_w(batch)
    out = {}
    if eve:
        for case, name in ((1, "water-filling w/o Eve info"), (2, "water-filling w/ Eve info")):
            out[name] = eval_sc.skr(batch, design_to_real(irs.water_filling_design(stats, P_max, case)))
    else:
        out["water-filling"] = eval_sc.skr(batch, design_to_real(irs.water_filling_design(stats, P_max, 1)))
    g = generator_for(seed, 77)
    out["random"] = torch.stack([eval_sc.skr(batch, design_to_real(irs.random_design(stats, P_max, g)))
                                 for _ in range(random_draws)]).mean(0)
    res = irs.optimum(stats, P_max, eval_sc.case, generator=generator_for(seed, 78), restarts=4, steps=200)
    out["optimum"] = res.skr_bits
    return out


def plot(path: Path, x, curves: dict[str, list[float]], xlabel: str, title: str, extra=None) -> None:
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for name, ys in curves.items():
        base = name.split(" @ ")[0]
        style = dict(STYLE.get(base, {}))
        if " @ " in name:
            style["alpha"] = 0.6
        ax.plot(x, ys, label=name, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SKR (bits/channel probe)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if extra is not None:
        extra(ax)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02 if extra is None else 1.12, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(x_name: str, x, curves: dict[str, list[float]]) -> str:
    names = list(curves)
    lines = [f"| {x_name} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for i, xv in enumerate(x):
        lines.append(f"| {xv:g} | " + " | ".join(f"{curves[n][i]:.3f}" for n in names) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# 001
# --------------------------------------------------------------------------------------------


def point_batch(eval_sc: IRSScenario, n: int, **values):
    return eval_sc.point(n, **values)


def sweep_dims_001(runner, sweep, values, fixed_dims, point, title, out: Path, fname: str, md: list):
    curves: dict[str, list[float]] = {}
    for v in values:
        dims = dict(fixed_dims, **{sweep: v}) if sweep == "M" else dict(fixed_dims, L_H=SIDE[v], L_V=SIDE[v])
        eval_sc = IRSScenario("case2", **dims)
        batch = point_batch(eval_sc, 1, **point)
        res = {"PKG-Net w/o Eve info": net_skr(runner.model("case1", **dims), eval_sc, batch),
               "PKG-Net w/ Eve info": net_skr(runner.model("case2", **dims), eval_sc, batch),
               **baseline_skr(eval_sc, batch, eve=True)}
        for k, t in res.items():
            curves.setdefault(k, []).append(float(t.mean()))
    plot(out / fname, values, curves, "M (BS antennas)" if sweep == "M" else "L (IRS elements)", title)
    md += [f"### {title}", "", f"![{fname}]({fname})", "", table(sweep, values, curves), ""]
    return curves


def paper_001(runner: Runner, out: Path, quick: bool) -> list[str]:
    md = ["# Paper 001 (PKG-Net, journal version): reproduced figures", "",
          "SKR = R_sk of 001 (32) with Eve at Bob - lambda/2 in x (carrier 2.4 GHz), Bob at (10,10,0)",
          f"unless stated. PKG-Net trained {runner.epochs} epochs max (EarlyStopping patience 10), 1000 draws",
          "per epoch, batch 100, Adam 1e-3, hidden 100-100. Optimum: per-instance projected gradient ascent",
          "from the exact-objective water-filling, water-filling, identity and a random start.", ""]
    Ms = [2, 4, 8] if quick else [2, 4, 6, 8]
    Ls = [16, 36] if quick else [16, 36, 64, 100]
    # Fig. 5: SKR vs M, P_max = 25 dBm, kappa = 1, L = 36
    sweep_dims_001(runner, "M", Ms, dict(L_H=6, L_V=6), dict(P_max_dbm=25.0, kappa=1.0, eta=0.4),
                   "001 Fig. 5: SKR vs M (P_max 25 dBm, kappa 1, L 36, eta 0.4)", out, "fig5_skr_vs_M.png", md)
    # Fig. 6: SKR vs L, P_max = 20 dBm, kappa = 0, M = 6
    sweep_dims_001(runner, "L", Ls, dict(M=6), dict(P_max_dbm=20.0, kappa=0.0, eta=0.4),
                   "001 Fig. 6: SKR vs L (P_max 20 dBm, kappa 0, M 6, eta 0.4)", out, "fig6_skr_vs_L.png", md)
    # Fig. 7: SKR vs P_max, kappa = 1, M = 4, L = 36
    dims = dict(M=4, L_H=6, L_V=6)
    eval_sc = IRSScenario("case2", **dims)
    Ps = torch.arange(10.0, 30.1, 5.0 if quick else 2.5)
    batch = eval_sc.point(len(Ps), P_max_dbm=Ps, kappa=1.0, eta=0.4)
    curves = {"PKG-Net w/o Eve info": net_skr(runner.model("case1", **dims), eval_sc, batch).tolist(),
              "PKG-Net w/ Eve info": net_skr(runner.model("case2", **dims), eval_sc, batch).tolist(),
              **{k: v.tolist() for k, v in baseline_skr(eval_sc, batch, eve=True).items()}}
    plot(out / "fig7_skr_vs_P.png", Ps.tolist(), curves, "P_max (dBm)", "001 Fig. 7: SKR vs P_max (kappa 1, M 4, L 36)")
    md += ["### 001 Fig. 7: SKR vs P_max (kappa 1, M 4, L 36, eta 0.4)", "", "![fig7](fig7_skr_vs_P.png)", "",
           table("P_max_dbm", Ps.tolist(), curves), ""]
    # Fig. 8: SKR vs eta for several UE locations, P_max = 20 dBm, kappa = 1, M = 8, L = 36
    dims = dict(M=8, L_H=6, L_V=6)
    eval_sc = IRSScenario("case2", **dims)
    etas = torch.tensor([0.0, 0.3, 0.6, 0.9] if quick else [0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9],
                        dtype=torch.float64)
    m1, m2 = runner.model("case1", **dims), runner.model("case2", **dims)
    curves = {}
    for bob in ((10.0, 10.0, 0.0), (5.0, 15.0, 0.0)):
        batch = eval_sc.point(len(etas), eta=etas, P_max_dbm=20.0, kappa=1.0, bob_m=torch.tensor(bob))
        eve = batch["bob_m"].clone()
        eve[:, 0] -= 0.5 * LAMBDA
        batch["eve_m"] = eve
        tag = f" @ Bob ({bob[0]:g},{bob[1]:g})"
        res = {"PKG-Net w/o Eve info": net_skr(m1, eval_sc, batch), "PKG-Net w/ Eve info": net_skr(m2, eval_sc, batch),
               **baseline_skr(eval_sc, batch, eve=True)}
        curves.update({k + tag: v.tolist() for k, v in res.items()})
    plot(out / "fig8_skr_vs_eta.png", etas.tolist(), curves, "eta (BS correlation)",
         "001 Fig. 8: SKR vs eta (P_max 20 dBm, kappa 1, M 8, L 36)")
    md += ["### 001 Fig. 8: SKR vs eta (P_max 20 dBm, kappa 1, M 8, L 36), two UE locations", "",
           "![fig8](fig8_skr_vs_eta.png)", "", table("eta", etas.tolist(), curves), ""]
    # Fig. 9: SKR and |rho| vs Bob-Eve distance, P_max = 25 dBm, kappa = 1, M = 6, L = 36
    dims = dict(M=6, L_H=6, L_V=6)
    eval_sc = IRSScenario("case2", **dims)
    d_wl = torch.linspace(0.05, 1.0, 8 if quick else 20, dtype=torch.float64)
    batch = eval_sc.point(len(d_wl), P_max_dbm=25.0, kappa=1.0, eta=0.4)
    batch["eve_m"] = batch["bob_m"].clone()
    batch["eve_m"][:, 0] -= d_wl * LAMBDA
    curves = {"PKG-Net w/o Eve info": net_skr(runner.model("case1", **dims), eval_sc, batch).tolist(),
              "PKG-Net w/ Eve info": net_skr(runner.model("case2", **dims), eval_sc, batch).tolist(),
              **{k: v.tolist() for k, v in baseline_skr(eval_sc, batch, eve=True).items()}}
    rho = bob_eve_correlation(d_wl * LAMBDA, 2.4e9).abs()

    def add_rho(ax):
        ax2 = ax.twinx()
        ax2.plot(d_wl.tolist(), rho.tolist(), color="C5", alpha=0.6, label="|rho|")
        ax2.set_ylabel("|rho|", color="C5")

    plot(out / "fig9_skr_vs_distance.png", d_wl.tolist(), curves, "Bob-Eve distance (wavelengths)",
         "001 Fig. 9: SKR and |rho| vs Bob-Eve distance (P_max 25 dBm, kappa 1, M 6, L 36)", extra=add_rho)
    curves_t = dict(curves, **{"|rho|": rho.tolist()})
    md += ["### 001 Fig. 9: SKR and |rho| vs Bob-Eve distance (P_max 25 dBm, kappa 1, M 6, L 36)", "",
           "![fig9](fig9_skr_vs_distance.png)", "", table("distance_wl", d_wl.tolist(), curves_t), ""]
    # Table I: run time per draw, 100 draws, P_max 25 dBm, kappa 1, L 36
    md += ["### 001 Table I: run time per draw (100 draws, P_max 25 dBm, kappa 1, L 36, this CPU)", "",
           "| algorithm | M = 2 | M = 4 | M = 8 |", "|---|---:|---:|---:|"]
    rows = {"water-filling (batch 1, ms)": [], "PKG-Net eager (batch 1, ms)": [],
            "paper baseline (ms)": [74.86, 106, 163], "paper PKG-Net (ms)": [0.46, 0.91, 2.48]}
    for M in (2, 4, 8):
        sc = IRSScenario("case1", M=M, L_H=6, L_V=6)
        draws = sc.sample(100, generator_for(5, M))
        draws["P_max_dbm"].fill_(25.0)
        draws["kappa"].fill_(1.0)
        m = runner.model("case1", M=M, L_H=6, L_V=6)
        x = sc.features(draws).float()
        t0 = time.perf_counter()
        for i in range(100):
            with torch.no_grad():
                m.net(x[i:i + 1])
        rows["PKG-Net eager (batch 1, ms)"].append(1e3 * (time.perf_counter() - t0) / 100)
        t0 = time.perf_counter()
        for i in range(20):
            one = {k: v[i:i + 1] for k, v in draws.items()}
            irs.water_filling(sc.stats(one), sc.P_max_w(one))
        rows["water-filling (batch 1, ms)"].append(1e3 * (time.perf_counter() - t0) / 20)
    for name, vals in rows.items():
        md.append(f"| {name} | " + " | ".join(f"{v:.3g}" for v in vals) + " |")
    md.append("")
    # Test-set comparison: w/ vs w/o Eve info on the same 1000 Case 2 draws (001 Sec. VII notes ~equal)
    dims = dict(M=4, L_H=6, L_V=6)
    eval_sc = IRSScenario("case2", **dims)
    dm = ScenarioDataModule(eval_sc, test_draws=1000, seed=0)
    dm.setup()
    batch = dm.fixed_set("test")
    w = net_skr(runner.model("case2", **dims), eval_sc, batch)
    wo = net_skr(runner.model("case1", **dims), eval_sc, batch)
    base = baseline_skr(eval_sc, {k: v[:200] for k, v in batch.items()}, eve=True)
    md += ["### Case 2 test set: PKG-Net w/ vs w/o Eve info (1000 draws of the 001 Case 2 distribution, M 4, L 36)",
           "", "| design | mean R_sk (bits) |", "|---|---:|",
           f"| PKG-Net w/ Eve info | {w.mean():.4f} |", f"| PKG-Net w/o Eve info | {wo.mean():.4f} |",
           f"| PKG-Net w/ Eve info, first 200 draws | {w[:200].mean():.4f} |"]
    md += [f"| {k}, first 200 draws | {v.mean():.4f} |" for k, v in base.items()]
    md.append("")
    return md


# --------------------------------------------------------------------------------------------
# 000
# --------------------------------------------------------------------------------------------


def paper_000(runner: Runner, out: Path, quick: bool) -> list[str]:
    md = ["# Paper 000 (PKG-Net, conference version): reproduced figures", "",
          "SKR = I(y_a; y_b) of 000 (17); Rayleigh, no Eve, P_a = P_b = P; PKG-Net input = Bob's location,",
          f"hidden 200-200, trained {runner.epochs} epochs max. 000's figure captions are missing from our copy:",
          "fixed settings P = 10 dBm, M = 4, L = 36, eta = 0.3 (000 Sec. VI-A), Bob (10,10,0) are ours.", ""]
    base_kw = dict(M=4, L_H=6, L_V=6, power_dbm=10.0, eta=0.3)

    def at_point(kw, bob=(10.0, 10.0, 0.0)):
        sc = IRSScenario("conference", **kw)
        batch = sc.point(1, bob_m=torch.tensor(bob))
        return {"PKG-Net": net_skr(runner.model("conference", **kw), sc, batch), **baseline_skr(sc, batch, eve=False)}

    sweeps = [
        ("fig3_skr_vs_M.png", "000 Fig. 3: SKR vs M (P 10 dBm, L 36, eta 0.3)", "M",
         [2, 4, 8] if quick else [2, 4, 6, 8], lambda v: dict(base_kw, M=v)),
        ("fig4_skr_vs_L.png", "000 Fig. 4: SKR vs L (P 10 dBm, M 4, eta 0.3)", "L",
         [16, 36] if quick else [16, 36, 64, 100], lambda v: dict(base_kw, L_H=SIDE[v], L_V=SIDE[v])),
        ("fig5_skr_vs_P.png", "000 Fig. 5: SKR vs P (M 4, L 36, eta 0.3)", "P (dBm)",
         [0.0, 10.0, 20.0] if quick else [0.0, 5.0, 10.0, 15.0, 20.0], lambda v: dict(base_kw, power_dbm=v)),
    ]
    for fname, title, xname, values, kw_of in sweeps:
        curves: dict[str, list[float]] = {}
        for v in values:
            for k, t in at_point(kw_of(v)).items():
                curves.setdefault(k, []).append(float(t.mean()))
        plot(out / fname, values, curves, xname, title)
        md += [f"### {title}", "", f"![{fname}]({fname})", "", table(xname, values, curves), ""]
    etas = [0.0, 0.45, 0.9] if quick else [0.0, 0.3, 0.6, 0.9]
    curves = {}
    for bob in ((10.0, 10.0, 0.0), (5.0, 15.0, 0.0)):
        for v in etas:
            for k, t in at_point(dict(base_kw, eta=v), bob).items():
                curves.setdefault(f"{k} @ Bob ({bob[0]:g},{bob[1]:g})", []).append(float(t.mean()))
    plot(out / "fig6_skr_vs_eta.png", etas, curves, "eta",
         "000 Fig. 6: SKR vs eta (P 10 dBm, M 4, L 36), two UE locations")
    md += ["### 000 Fig. 6: SKR vs eta (P 10 dBm, M 4, L 36), two UE locations", "", "![fig6](fig6_skr_vs_eta.png)", "",
           table("eta", etas, curves), ""]
    return md


def main(argv=None) -> None:
    parser = Parser(description="Regenerate the PKG-Net figures of papers 000 and 001.")
    parser.add_argument("--paper", choices=["000", "001"], required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    parser.add_argument("--runs", type=Path, default=Path("runs/figures"), help="checkpoint cache folder")
    parser.add_argument("--quick", action="store_true", help="30 epochs and fewer sweep points")
    parser.add_argument("--epochs", type=positive_int, default=None, help="override the max epochs")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (30 if args.quick else 100)
    check_out_folder(args.out, "results.md", args.overwrite)
    args.out.mkdir(parents=True, exist_ok=True)
    hidden = [100, 100] if args.paper == "001" else [200, 200]
    runner = Runner(args.runs / f"paper{args.paper}", epochs, hidden, args.seed)
    t0 = time.perf_counter()
    md = paper_001(runner, args.out, args.quick) if args.paper == "001" else paper_000(runner, args.out, args.quick)
    md.append(f"_Generated by `python -m experiments.pkgnet_figures --paper {args.paper}"
              f"{' --quick' if args.quick else ''}` in {time.perf_counter() - t0:.0f} s "
              f"(training {sum(runner.train_seconds.values()):.0f} s of it)._")
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    (args.out / "train_seconds.json").write_text(json.dumps(runner.train_seconds, indent=1))
    print(f"wrote {args.out / 'results.md'} and {len(list(args.out.glob('*.png')))} figures")


if __name__ == "__main__":
    main()
