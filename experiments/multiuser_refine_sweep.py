"""Choose a multi-user PKG-Net's refinement steps on its validation split (never the test split).

    python -m experiments.multiuser_refine_sweep \\
        --ckpt runs/pkgnet/multiuser_shared/checkpoints/epoch019-skr28.3330.ckpt \\
        [--config runs/pkgnet/multiuser_shared/config.yaml] [--steps 0,10,20,30,40,60] [--lr 0.03] \\
        [--target 1.25] [--out results/multiuser_003/refine_sweep]

The refinement (the model component ``models.refine.ProjectedAscentRefinement(steps, lr)``) runs only in
evaluation and holds no weights, so one trained net can be scored with any number of steps. This script
scores the checkpoint's net on the validation draws of its training config (``data.init_args.val_draws`` and
``seed``, read from ``--config``; by default the ``config.yaml`` LightningCLI saved beside the ``checkpoints``
folder) for every (steps, lr) of the grid, next to the analytic baselines (Algorithm 1, Fig. 8's strongest
beams, eigen beams, all with the downlink budget), on the net's own training objective ((30), or (27) for
``objective: leakage``).

For each setting it reports the mean sum SKR, its ratio to the best baseline with the paired standard error
of that ratio (delta method: psi_i = (a_i - r b_i) / mean(b)), and the cost per draw on this machine. With
``--target`` it names the smallest step count (then the smallest lr) whose ratio is expected to clear the
target on a held-out set of ``--heldout-draws`` draws with probability 97.5 %: validation ratio - 1.96 SE
sqrt(1 + val_draws / heldout_draws) >= target (a prediction interval: the validation and the held-out means
both carry sampling noise; the held-out SE is scaled from the validation one). Otherwise it names the setting
with the highest mean. The choice goes into the config (``model.init_args.refinement``: ``steps``, ``lr``); a
checkpoint can then be tested or exported with it (``train.py`` uses the config's refinement and says so).
Steps 0 is the net alone. Writes ``sweep.md``, ``sweep.json`` and ``sweep.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from experiments.cli_args import Parser, check_out_folder, fail, positive_float, positive_int  # noqa: E402
from experiments.multiuser_figures import BASE, LABEL, cplx, designs, load_net, net_direct_design  # noqa: E402
from models.refine import MAX_STEPS, ProjectedAscentRefinement  # noqa: E402


def _number_list(text: str, convert, valid, what: str) -> list:
    """Comma-separated values of ``convert``; each must pass ``valid``; no repeats (argparse ``type=`` errors)."""
    out = []
    for part in text.split(","):
        try:
            v = convert(part)
        except ValueError:
            v = None
        if v is None or not valid(v):
            raise argparse.ArgumentTypeError(f"must be comma-separated {what}, got {part!r} in {text!r}")
        out.append(v)
    if len(set(out)) < len(out):
        raise argparse.ArgumentTypeError(f"has a repeated value: {text!r}")
    return out


def int_list(text: str) -> list[int]:
    """``type=`` for ``--steps``: comma-separated integers in [0, MAX_STEPS], no repeats."""
    return _number_list(text, int, lambda v: 0 <= v <= MAX_STEPS, f"integers in [0, {MAX_STEPS}]")


def float_list(text: str) -> list[float]:
    """``type=`` for ``--lr``: comma-separated finite numbers > 0, no repeats."""
    return _number_list(text, float, lambda v: math.isfinite(v) and v > 0, "finite numbers > 0")


def validation_split(config: Path, sc=None) -> tuple[int, int]:
    """(val_draws, seed) of ``data.init_args`` in a saved config (ScenarioDataModule's defaults where absent).
    With ``sc`` (the checkpoint's scenario) the config's ``model.init_args.scenario`` must build the same one
    (the refinement aside): another run's config would define another validation split."""
    import yaml

    from datamodules.scenario import ScenarioDataModule

    try:
        cfg = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as e:
        fail(f"--config {str(config)!r} is not a readable YAML file: {type(e).__name__}")
    data = (cfg or {}).get("data") if isinstance(cfg, dict) else None
    init = (data or {}).get("init_args") if isinstance(data, dict) else None
    if not isinstance(init, dict) or "ScenarioDataModule" not in str(data.get("class_path", "")):
        fail(f"--config {str(config)!r} has no data: ScenarioDataModule section with init_args")
    import inspect

    defaults = inspect.signature(ScenarioDataModule).parameters
    val_draws = init.get("val_draws", defaults["val_draws"].default)
    seed = init.get("seed", defaults["seed"].default)
    if isinstance(val_draws, bool) or not isinstance(val_draws, int) or val_draws < 2:
        fail(f"--config {str(config)!r}: data val_draws must be an integer >= 2, got {val_draws!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        fail(f"--config {str(config)!r}: data seed must be an integer >= 0, got {seed!r}")
    if sc is not None:
        _check_same_scenario(cfg, sc, config)
    return val_draws, seed


def _check_same_scenario(cfg: dict, sc, config: Path) -> None:
    from physics.multiuser import MultiUserScenario

    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    scen = (model.get("init_args") or {}).get("scenario") if isinstance(model.get("init_args"), dict) else None
    path = scen.get("class_path", "") if isinstance(scen, dict) else ""
    if not str(path).endswith("MultiUserScenario"):
        fail(f"--config {str(config)!r} builds scenario {path or 'none'!r}, but --ckpt holds a {sc.name} net; give "
             "the run's config.yaml")
    # a run saved before the refinement became a model component has it among the scenario's arguments
    init = {k: v for k, v in (scen.get("init_args") or {}).items() if k not in ("refine_steps", "refine_lr")}
    try:
        other = MultiUserScenario(**init)
    except (TypeError, ValueError) as e:
        fail(f"--config {str(config)!r}: its scenario does not build: {e}")
    mine, theirs = sc.describe(), other.describe()
    differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    if differ:
        fail(f"--config {str(config)!r} describes another scenario than --ckpt (they differ in {differ}); its "
             "validation split would not be the run's: give the run's config.yaml")


def ratio_and_se(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """mean(a) / mean(b) for paired per-draw values and its delta-method standard error."""
    r = a.mean() / b.mean()
    psi = (a - r * b) / b.mean()
    return r.item(), (psi.std(unbiased=True) / math.sqrt(a.numel())).item()


def choose(rows: list[dict], target: float | None, inflate: float = 1.0) -> dict | None:
    """The smallest steps (then lr) whose ratio - 1.96 SE ``inflate`` >= target; without a target the highest mean.

    ``inflate`` = sqrt(1 + val_draws / heldout_draws) turns the validation SE into the spread of the difference
    between the validation and a held-out mean."""
    if target is None:
        return max(rows, key=lambda r: r["mean_sum_skr_bits"])
    ok = [r for r in rows if r["ratio_to_best_baseline"] - 1.96 * inflate * r["ratio_se"] >= target]
    return min(ok, key=lambda r: (r["steps"], r["lr"])) if ok else None


def main(argv=None) -> None:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", type=Path, required=True, help="PKG-Net checkpoint of a multiuser config")
    p.add_argument("--config", type=Path, default=None,
                   help="the run's config (default: config.yaml beside the checkpoints folder)")
    p.add_argument("--steps", type=int_list, default=[0, 10, 20, 30, 40, 60])
    p.add_argument("--lr", type=float_list, default=[0.03])
    p.add_argument("--target", type=positive_float, default=None,
                   help="ratio to the best analytic baseline the chosen setting must clear")
    p.add_argument("--heldout-draws", type=positive_int, default=None,
                   help="size of the held-out set the target must hold on (default: as many as validation)")
    p.add_argument("--out", type=Path, default=Path("results/multiuser_003/refine_sweep"))
    p.add_argument("--overwrite", action="store_true", help="replace a sweep already in --out")
    p.add_argument("--threads", type=positive_int, default=1)
    args = p.parse_args(argv)
    check_out_folder(args.out, "sweep.json", args.overwrite)
    net, sc = load_net(args.ckpt, "ckpt")
    config = args.config if args.config is not None else args.ckpt.parent.parent / "config.yaml"
    if not config.is_file():
        fail(f"--config {str(config)!r} is not a file (give the run's config.yaml with --config)")
    val_draws, seed = validation_split(config, sc)
    torch.set_num_threads(args.threads)

    from datamodules.scenario import ScenarioDataModule

    val = ScenarioDataModule(scenario=sc, val_draws=val_draws, seed=seed).fixed_set("val")
    objective = sc.objective
    base = {k: sc.rates(val, P, C, objective).sum(-1) for k, (P, C) in designs(sc, val).items() if k in BASE}
    best = max(base, key=lambda k: base[k].mean().item())
    rows = []
    grid = [(s, lr) for s in args.steps for lr in ([args.lr[0]] if s == 0 else args.lr)]
    t_all = time.time()
    for i, (steps, lr) in enumerate(grid):
        t0 = time.perf_counter()
        if steps == 0:
            P, C = net_direct_design(net, sc, val)
        else:
            net.refinement = ProjectedAscentRefinement(steps, lr).eval()
            with torch.no_grad():
                out = net(sc.features(val).float())
            P, C = cplx(out["P"]), cplx(out["C"])
        ms = 1e3 * (time.perf_counter() - t0) / val_draws
        a = sc.rates(val, P, C, objective).sum(-1)
        r, se = ratio_and_se(a, base[best])
        rows.append({"steps": steps, "lr": lr, "mean_sum_skr_bits": a.mean().item(), "ratio_to_best_baseline": r,
                     "ratio_se": se, "ms_per_draw": ms})
        print(f"[{i + 1}/{len(grid)}] steps {steps:>3} lr {lr:g}: sum SKR {a.mean().item():.3f} bits, "
              f"{r:.4f} +- {se:.4f} x {LABEL[best]}, {ms:.0f} ms per draw", file=sys.stderr, flush=True)
    heldout = args.heldout_draws if args.heldout_draws is not None else val_draws
    inflate = math.sqrt(1 + val_draws / heldout)
    pick = choose(rows, args.target, inflate)

    args.out.mkdir(exist_ok=True)
    md = ["# Refinement steps chosen on the validation split", "",
          f"`python -m experiments.multiuser_refine_sweep {' '.join(argv if argv is not None else sys.argv[1:])}`",
          "", f"Checkpoint `{args.ckpt}`, objective {'(27)' if objective == 'leakage' else '(30)'}; validation split "
          f"of `{config}`: {val_draws} draws, seed {seed}. {torch.get_num_threads()} thread(s), "
          f"{time.time() - t_all:.0f} s.", "",
          "Baselines (mean sum SKR, bits): " + ", ".join(f"{LABEL[k]} {v.mean().item():.3f}" for k, v in base.items())
          + f"; best: {LABEL[best]}.", "",
          "| steps | lr | mean sum SKR (bits) | / best baseline | SE | ms per draw |",
          "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['steps']} | {r['lr']:g} | {r['mean_sum_skr_bits']:.3f} | {r['ratio_to_best_baseline']:.4f} "
                  f"| {r['ratio_se']:.4f} | {r['ms_per_draw']:.0f} |")
    rule = (f"smallest steps (then lr) with ratio - 1.96 SE sqrt(1 + {val_draws}/{heldout}) >= {args.target:g} "
            f"(clears it on {heldout} held-out draws with probability 97.5 %)" if args.target is not None
            else "highest mean")
    md += ["", f"Rule: {rule}. Chosen: " + (f"refinement steps {pick['steps']}, lr {pick['lr']:g}" if pick
                                           else "none of the grid clears the target")]
    (args.out / "sweep.md").write_text("\n".join(md) + "\n")
    (args.out / "sweep.json").write_text(json.dumps({"checkpoint": str(args.ckpt), "config": str(config),
                                                     "val_draws": val_draws, "seed": seed, "objective": objective,
                                                     "baselines": {k: v.mean().item() for k, v in base.items()},
                                                     "best_baseline": best, "rows": rows, "rule": rule,
                                                     "heldout_draws": heldout,
                                                     "chosen": pick}, indent=1))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for lr in args.lr:
        sel = [r for r in rows if r["lr"] == lr or r["steps"] == 0]
        ax.errorbar([r["steps"] for r in sel], [r["ratio_to_best_baseline"] for r in sel],
                    yerr=[1.96 * inflate * r["ratio_se"] for r in sel], marker="o", capsize=3,
                    label=f"PKG-Net, lr {lr:g}")
    if args.target is not None:
        ax.axhline(args.target, color="k", ls="--", lw=1, label=f"target {args.target:g}")
    ax.set_xlabel("refinement steps (0: the net alone)")
    ax.set_ylabel(f"mean sum SKR / {LABEL[best]}")
    ax.set_title(f"validation split ({val_draws} draws); bars: 95 % prediction interval for {heldout} held-out "
                 "draws", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "sweep.png", dpi=120)
    plt.close(fig)
    print("\n".join(md))


if __name__ == "__main__":
    main()
