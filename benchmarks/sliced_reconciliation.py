"""Sliced soft-decision reconciliation: per-slice efficiency and the share of I(X;Y) it keeps.

For each correlation ``rho`` (one real Gaussian pair per symbol, unit variances), draws ``n``
symbols, lets Alice quantise into ``2^q`` equiprobable levels (``q`` by the public rule of
``keygen.slicing.choose_bits``) and reconciles the slices with ``keygen.sliced_reconcile``. Prints per
slice the exact conditional entropy ``H(S | Y, earlier slices)``, what was done with it (disclosed,
coded), the designed code rate, the syndrome/extra/hash bits, the efficiency
``f = disclosed / (n H)``, the attempts and BP iterations; then ``I(X;Y)``, ``I(Q;Y)``, the
reconciled-and-disclosure-subtracted bits per symbol and their share of ``I(X;Y)``, and the
throughput. Code construction (PEG, cacheable with ``--code-cache``) is timed apart from the
reconciliation itself.

    python benchmarks/sliced_reconciliation.py [--rho 0.99,0.95,0.9,0.8,0.7] [--n 100000]
        [--decoder numpy|ldpc] [--efficiency 1.04] [--backoff 2] [--code-cache DIR] [--eve-rho 0.5]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from keygen import slicing as sl
from keygen.sliced_reconcile import SlicedReconciler


def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from exc
    if not vals or any(not -1 < v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: every rho must lie in (-1, 1)")
    return vals


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rho", type=_floats, default=[0.99, 0.95, 0.9, 0.8, 0.7])
    p.add_argument("--n", type=int, default=100_000, help="symbols (real pairs) per rho")
    p.add_argument("--decoder", choices=("numpy", "ldpc"), default="numpy")
    p.add_argument("--efficiency", type=float, default=1.04)
    p.add_argument("--backoff", type=float, default=2.0)
    p.add_argument("--min-rate", type=float, default=0.02, help="slices whose code rate would be lower are disclosed")
    p.add_argument("--fraction", type=float, default=0.97, help="bits rule: I(Q;Y) >= fraction I(X;Y)")
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--code-cache", default=None, help="folder for the (public) parity-check matrices")
    p.add_argument("--eve-rho", type=float, default=None, help="also replay as an Eve with this correlation")
    a = p.parse_args(argv)
    if a.n < 100:
        p.error("--n must be at least 100")
    rec = SlicedReconciler(efficiency=a.efficiency, backoff=a.backoff, min_rate=a.min_rate, fraction=a.fraction,
                           decoder=a.decoder,
                           max_iter=a.max_iter, code_cache_dir=a.code_cache)
    print(f"sliced reconciliation: n = {a.n} symbols per rho, decoder {a.decoder}, efficiency {a.efficiency}, "
          f"backoff {a.backoff}, min rate {a.min_rate}, bits rule fraction {a.fraction}, natural labelling, lsb first")
    summary = []
    for rho in a.rho:
        rng = np.random.default_rng([a.seed, int(round(rho * 1e6))])
        x = rng.standard_normal(a.n)
        y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal(a.n)
        res = rec.reconcile(x, y, rho, seed=a.seed)
        q = int(res.bits[0])
        order = sl.decoding_order(q, rec.order)
        print(f"\nrho = {rho}: q = {q} bits ({1 << q} levels); I(X;Y) = {sl.gaussian_mutual_information(rho):.4f}, "
              f"I(Q;Y) = {sl.quantised_mutual_information(rho, 1 << q):.4f} bits/symbol")
        print(f"{'stage':>5} {'bit':>3} {'mode':>8} {'H':>7} {'rate':>7} {'synd':>7} {'extra':>6} {'hash':>5} "
              f"{'disclosed':>9} {'f':>7} {'att':>3} {'BP iters':>12} {'decode s':>8} {'code s':>7} {'ok':>3}")
        for s in res.slices:
            its = ",".join(str(i) for i in s.bp_iterations) or "-"
            rate = f"{s.designed_rate:.4f}" if not math.isnan(s.designed_rate) else "-"
            print(f"{s.stage:>5} {order[s.stage]:>3} {s.modes[0]:>8} {s.entropy_per_symbol[0]:>7.4f} {rate:>7} "
                  f"{s.syndrome_bits:>7} {s.extra_bits:>6} {s.hash_bits:>5} {s.disclosed_bits:>9} "
                  f"{s.efficiency:>7.4f} {s.attempts:>3} {its:>12} {s.decode_time_s:>8.2f} {s.code_time_s:>7.1f} "
                  f"{'yes' if s.success else 'NO':>3}")
        recon_time = res.time_s - res.code_time_s
        line = (f"  success {res.success}; net {res.net_bits_per_symbol:.4f} bits/symbol = "
                f"{100 * res.share_of_mutual_information:.1f} % of I(X;Y) "
                f"({100 * res.net_bits / res.quantised_information_bits:.1f} % of I(Q;Y)); "
                f"reconciliation {recon_time:.1f} s ({res.net_bits / recon_time:,.0f} net bits/s), "
                f"code construction {res.code_time_s:.1f} s")
        print(line)
        if a.eve_rho is not None and res.success:
            z = a.eve_rho * x + math.sqrt(1 - a.eve_rho**2) * rng.standard_normal(a.n)
            eve = rec.replay(z, a.eve_rho, res.transcript, alice_key=res.key())
            print("  Eve (rho_e = {}): bit error rate per stage {}".format(
                a.eve_rho, ", ".join(f"{b:.3f}" for b in eve.stage_bit_error_rate)))
        summary.append((rho, q, sl.gaussian_mutual_information(rho), res.quantised_information_bits / res.n_symbols,
                        res.net_bits_per_symbol, res.share_of_mutual_information, recon_time, res.code_time_s,
                        res.success))
    print(f"\n{'rho':>5} {'q':>2} {'I(X;Y)':>7} {'I(Q;Y)':>7} {'net':>7} {'share':>6} {'recon s':>8} {'code s':>7} "
          f"{'net bits/s':>11} ok")
    for rho, q, mi, qmi, net, share, rt, ct, ok in summary:
        print(f"{rho:>5} {q:>2} {mi:>7.4f} {qmi:>7.4f} {net:>7.4f} {100 * share:>5.1f}% {rt:>8.1f} {ct:>7.1f} "
              f"{net * a.n / rt:>11,.0f} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\ntotal wall time {time.perf_counter() - t0:.1f} s")
