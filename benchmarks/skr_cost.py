"""Cost of one SKR evaluation: the structured form (001 Lemma 1) vs the literal Kronecker form.

Prints, in one run, the time per draw of ``skr_case1`` (O(M^3 + L^2)) and of
``skr_case1_kronecker`` ((theta~ (x) P)^T R_c (theta~ (x) P)^*, O((M(L+1))^2 M)) for a batch of
draws of the 001 training distribution, and their ratio.

    python benchmarks/skr_cost.py [--batch 1000] [--repeats 3]
"""

from __future__ import annotations

import torch

from experiments.cli_args import Parser, best_time, positive_int
from physics.irs import random_design, skr_case1, skr_case1_kronecker, stats_001
from physics.units import dbm_to_w

SIDES = {16: 4, 36: 6, 64: 8}


def draws(n: int, M: int, L: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    bob = torch.cat([5 + 10 * torch.rand(n, 2, generator=g, dtype=torch.float64),
                     torch.zeros(n, 1, dtype=torch.float64)], -1)
    st = stats_001(bob, M=M, L_H=SIDES[L], L_V=SIDES[L], eta=torch.rand(n, generator=g, dtype=torch.float64) * 0.99,
                   kappa=10 * torch.rand(n, generator=g, dtype=torch.float64))
    P, theta = random_design(st, dbm_to_w(10 + 20 * torch.rand(n, generator=g, dtype=torch.float64)), g)
    return st, P, theta


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=positive_int, default=1000)
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, float64")
    print(f"{'M':>3} {'L':>4} {'structured us/draw':>19} {'kronecker us/draw':>18} {'ratio':>8} {'max rel diff':>13}")
    for M in (2, 4, 8):
        for L in (16, 36, 64):
            st, P, theta = draws(args.batch, M, L)
            with torch.no_grad():
                t_s = best_time(lambda P=P, theta=theta, st=st: skr_case1(P, theta, st), args.repeats)
                t_k = best_time(lambda P=P, theta=theta, st=st: skr_case1_kronecker(P, theta, st), args.repeats)
                a, b = skr_case1(P, theta, st), skr_case1_kronecker(P, theta, st)
            rel = float(((a - b).abs() / b.abs()).max())
            print(f"{M:>3} {L:>4} {1e6 * t_s / args.batch:>19.2f} {1e6 * t_k / args.batch:>18.2f} "
                  f"{t_k / t_s:>7.1f}x {rel:>13.1e}")


if __name__ == "__main__":
    main()
