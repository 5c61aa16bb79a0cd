"""Per-draw cost of the near-field (004) designs, measured in one run: the learned design (PKG-Net), SVD with
Dinkelbach power allocation (004 Alg. 1) and the closed-form optimal beam.

Every design starts from the raw features (r_b, psi_b, r_e, psi_e, P_t) and ends with the design W as a factor
(PKG-Net computes the channels inside its graph; the analytic designs compute f, h with
``near_field_channel`` first), N = 256, 30 GHz, float64 physics. Prints microseconds per draw at batch 1 and
at a large batch, and the ratios to the closed form.

    python benchmarks/nearfield_cost.py [--ckpt runs/pkgnet/nearfield/checkpoints/last.ckpt] [--batch 1000]

Without ``--ckpt`` the net is an untrained PKG-Net of the config's size (same cost).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from experiments.cli_args import Parser, checkpoint_arg, fail, positive_int
from models.pkgnet import PKGNet
from physics.nearfield import NearFieldScenario, dinkelbach_power_split, optimal_beam, svd_design
from physics.seeding import generator_for


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best of ``repeats`` wall times per function, measured round-robin (one call of each in turn), so a
    busy machine slows every design alike and the ratios stay meaningful."""
    for fn in fns.values():
        fn()                                                                     # warm-up
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint of configs/pkgnet/nearfield.yaml")
    parser.add_argument("--batch", default=1000, type=positive_int, help="large batch size (default 1000)")
    parser.add_argument("--repeats", default=5, type=positive_int, help="timed repeats, best kept (default 5)")
    args = parser.parse_args(argv)
    batch = args.batch
    repeats = args.repeats
    sc = NearFieldScenario()
    hidden = [64, 64]
    state = None
    if args.ckpt is not None:
        ckpt = checkpoint_arg(args.ckpt, "ckpt")
        rec = ckpt.get("phykey") or {}
        if rec.get("scenario", {}).get("scenario") != "nearfield":
            fail(f"--ckpt {str(args.ckpt)!r} is not a checkpoint of the nearfield config")
        sc = NearFieldScenario.from_description(rec["scenario"])
        hidden = rec["hidden"]
        state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net = PKGNet(hidden).build(5, *sc.feature_bounds(), sc.design_space()).eval()
    if state is not None:
        net.load_state_dict(state)
    draws = sc.sample(batch, generator_for(3, 1))

    def learned(b):
        with torch.no_grad():
            return net(sc.features(b).float())["F"]

    def dinkelbach(b):
        f, h = sc.channels(b)
        P = sc.P_a_w(b)
        na, nb, ne = sc.noises_w(b)
        return svd_design(f, P, dinkelbach_power_split(f, h, P, na, nb, ne))

    def closed_form(b):
        f, h = sc.channels(b)
        P = sc.P_a_w(b)
        return torch.sqrt(P)[:, None] * optimal_beam(f, h, P, sc.noises_w(b)[2])

    fns = {"PKG-Net (learned)": learned, "SVD w/ PA (Dinkelbach)": dinkelbach,
           "optimal beam (closed form)": closed_form}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, N {sc.N}, "
          f"net {'from ' + str(args.ckpt) if args.ckpt else 'untrained'} hidden {hidden}")
    print(f"{'design':<28} {'batch 1 (us/draw)':>18} {f'batch {batch} (us/draw)':>22} {'ratio to closed form':>22}")
    one = {k: v[:1] for k, v in draws.items()}
    t1 = best_times({name: (lambda fn=fn: fn(one)) for name, fn in fns.items()}, repeats * 4)
    tb = best_times({name: (lambda fn=fn: fn(draws)) for name, fn in fns.items()}, repeats)
    times = {name: (t1[name], tb[name] / batch) for name in fns}
    ref = times["optimal beam (closed form)"]
    for name, (t1, tb) in times.items():
        print(f"{name:<28} {1e6 * t1:>18.1f} {1e6 * tb:>22.2f} {t1 / ref[0]:>10.2f}x / {tb / ref[1]:.2f}x")
    _, iters = dinkelbach_power_split(*sc.channels(draws), sc.P_a_w(draws), *sc.noises_w(draws),
                                      return_iterations=True)
    print(f"Dinkelbach iterations: mean {iters.double().mean():.2f}, max {int(iters.max())} (cap 20)")


if __name__ == "__main__":
    main()
