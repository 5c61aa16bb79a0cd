"""Cost of the 003 sum-SKR objective per draw: the path-domain form vs a direct evaluation from the full covariance.

At 003 Sec. VI's size (M = 128, K = 6, N_k = 4, N_P = 6, M_e = 6, N_e = 4) prints, in one run, the time per
draw of the sum over UTs of (30) evaluated

* structured (``skr_pilot_reuse_paths``): Lambda_k is rank N_P, so every observation is a K N_P-dimensional
  Gaussian source seen through small mixing matrices, O(K^2 M M_e N_P + K d^3), d = M_e N_e;
* direct (``skr_pilot_reuse``): from the full Lambda_k ``[M N_k, M N_k]`` = [512, 512] per UT, the literal
  (P_k^T kron C_j^H) Lambda_j (P_k^T kron C_j^H)^H sandwiches of Theorem 1, O(K^2 (M N_k)^2 M_e);

with and without the gradient (training needs it for the structured form only), and their ratio, plus the
largest relative difference of the two values (they are the same quantity).

Then the cost of a design per draw: PKG-Net in evaluation mode (``multiuser.yaml``'s net and its refinement,
``--refine-steps`` in-graph ascent steps at rate ``--refine-lr``; the cost does not depend on the weights, so
the net is untrained here) against the per-instance optimum with the configs' test settings (100 steps, 4
starts), as a ratio.

    python benchmarks/multiuser_cost.py [--draws 32] [--direct-draws 4] [--design-draws 16] [--repeats 3]
                                        [--threads 1] [--refine-steps 20] [--refine-lr 0.03]
"""

from __future__ import annotations

import time

import torch

from experiments.cli_args import Parser, best_time, positive_float, positive_int
from physics import multiuser as mu
from physics.multiuser import MultiUserScenario
from physics.scenario import generator_for


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", default=32, type=positive_int, help="draws for the structured timing")
    parser.add_argument("--direct-draws", default=4, type=positive_int, help="draws for the direct timing (slow)")
    parser.add_argument("--repeats", default=3, type=positive_int)
    parser.add_argument("--threads", default=1, type=positive_int, help="torch intra-op threads")
    parser.add_argument("--design-draws", default=16, type=positive_int, help="draws for the design timings")
    parser.add_argument("--refine-steps", default=20, type=positive_int, help="PKG-Net's in-graph ascent steps")
    parser.add_argument("--refine-lr", default=0.03, type=positive_float, help="and their rate")
    args = parser.parse_args(argv)
    n = args.draws
    nd = args.direct_draws
    repeats = args.repeats
    torch.set_num_threads(args.threads)
    sc = MultiUserScenario()
    b = sc.sample(max(n, nd), generator_for(0, 1))
    pth = sc.paths(b)
    g = generator_for(0, 2)
    P = mu.apply_budget(mu.random_semi_unitary((max(n, nd), sc.K), sc.M, sc.M_e, g), sc.budget_value)
    C = mu.random_semi_unitary((max(n, nd), sc.K), sc.N_k, sc.N_e, g)
    G = torch.diag_embed(pth["g"].flatten(-2))

    def structured(k, grad=False):
        Pk = P[:k].clone().requires_grad_(grad)
        r = mu.skr_pilot_reuse_paths(Pk, C[:k], pth["u"][:k], pth["v"][:k], G[:k]).sum(-1)
        if grad:
            r.sum().backward()
        return r.detach()

    Lam = mu.lambda_from_paths(pth["u"][:nd], pth["v"][:nd], pth["g"][:nd])  # [nd, K, 512, 512]

    def direct():
        return mu.skr_pilot_reuse(P[:nd], C[:nd], Lam).sum(-1)

    with torch.no_grad():
        t_s = best_time(lambda: structured(n), repeats) / n
        t_d = best_time(direct, repeats) / nd
        a, d = structured(nd), direct()
    t_g = best_time(lambda: structured(n, True), repeats) / n
    rel = float(((a - d).abs() / d.abs()).max())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float64/complex128; "
          f"M={sc.M}, K={sc.K}, N_k={sc.N_k}, N_P={sc.N_P}, M_e={sc.M_e}, N_e={sc.N_e}")
    print("| evaluation of sum_k (30) | ms per draw |")
    print("|---|---:|")
    print(f"| structured (path domain), forward | {1e3 * t_s:.2f} |")
    print(f"| structured, forward + gradient | {1e3 * t_g:.2f} |")
    print(f"| direct from the full Lambda_k [512, 512], forward | {1e3 * t_d:.2f} |")
    print(f"ratio direct / structured (forward): {t_d / t_s:.0f}x; max relative difference of the values: {rel:.1e}")
    design_cost(sc, args.design_draws, args.refine_steps, args.refine_lr)


def design_cost(sc: MultiUserScenario, n: int, refine_steps: int, refine_lr: float) -> None:
    """Time per draw of PKG-Net (net + in-graph refinement) against the per-instance optimum (one run each)."""
    from models.pkgnet import PKGNet
    from models.refine import ProjectedAscentRefinement, RefinedNet

    torch.manual_seed(0)
    net = PKGNet([256, 256]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space())
    net = RefinedNet(net, ProjectedAscentRefinement(refine_steps, refine_lr)).eval()
    b = sc.sample(n, generator_for(0, 3))
    x = sc.features(b).float()
    with torch.inference_mode():
        net(x[:2])  # warm-up
        t0 = time.perf_counter()
        out = net(x)
        t_net = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    opt = sc.optimum(b, generator_for(0, 4), steps=100, restarts=4)
    t_opt = (time.perf_counter() - t0) / n
    r_net, r_opt = sc.skr(b, out).sum(-1).mean().item(), sc.skr(b, opt).sum(-1).mean().item()
    print(f"| design per draw ({n} draws) | ms per draw | mean sum (30), untrained net |")
    print("|---|---:|---:|")
    print(f"| PKG-Net, net + {refine_steps} in-graph ascent steps | {1e3 * t_net:.1f} | {r_net:.2f} |")
    print(f"| per-instance optimum, 100 steps x 4 starts | {1e3 * t_opt:.1f} | {r_opt:.2f} |")
    print(f"ratio optimum / PKG-Net: {t_opt / t_net:.1f}x")


if __name__ == "__main__":
    main()
