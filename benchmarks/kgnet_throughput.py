"""KGNet training throughput on this machine's CPU, and the fraction of its fp32 matmul rate it reaches.

    python benchmarks/kgnet_throughput.py [--batches 128 1024 4096] [--seconds 3] [--threads N]

One training step = forward + MSE loss + backward + Adam step (002 Table I: lr 1e-3). The FLOP count
is the matmul work only, counted exactly for KGNet's five Linear layers ``in_i -> out_i``
(weights W = sum in_i out_i = 2,228,224 for L = 64):

- forward ``2 W`` per sample;
- backward, weight gradients ``2 W`` per sample;
- backward, input gradients ``2 (W - in_0 out_0)`` per sample (no gradient w.r.t. the data is needed).

That is ``6 W - 2 in_0 out_0 = 13,238,272`` FLOP per sample, ~5.93 x the parameter count. Bias adds,
activations and the Adam update (~10 FLOP per parameter per *step*) are left out; they are memory-bound
and are what the matmul fraction loses to at small batches.

The reference rate is a large square ``torch.matmul`` (fp32) timed in the same run with the same thread
count. The last column times only the step's GEMMs (same shapes, ``torch.mm`` into preallocated
outputs): the gap between it and the full step is autograd, bias/activation and optimiser work; the gap
between it and 100 % is the GEMM library's efficiency on these small shapes. All rates are best-of over
short chunks, the least disturbed by other processes on a shared machine; the median column shows the
disturbance. The script prints a table; nothing is asserted (tests never check wall-clock times).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.cli_args import Parser, positive_float, positive_int  # noqa: E402
from models.kgnet import KGNet  # noqa: E402


def matmul_flops_per_sample(net: torch.nn.Module) -> int:
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    w = sum(m.in_features * m.out_features for m in linears)
    first = linears[0].in_features * linears[0].out_features
    return 6 * w - 2 * first


def peak_matmul_flops(n: int = 4096, seconds: float = 2.0) -> float:
    """Best-of fp32 GEMM rate (FLOP/s) of an ``n x n`` by ``n x n`` product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(2):
        torch.matmul(a, b, out=out)
    best = float("inf")
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def train_rate(batch: int, seconds: float, fused: bool, seed: int = 0) -> tuple[float, float]:
    """Training samples/s of KGNet(128 -> 128) with Adam: (best, median) over timed chunks of ~0.25 s.

    The best chunk is the least disturbed by other processes on a shared machine (the same best-of rule
    as the matmul reference); the median shows how much disturbance there was.
    """
    torch.manual_seed(seed)
    net = KGNet(128, 128)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=fused, foreach=None if fused else True)
    x = torch.rand(batch, 128)
    y = torch.rand(batch, 128)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    # steps per chunk: about 0.25 s of work each
    t0 = time.perf_counter()
    step()
    per_step = time.perf_counter() - t0
    chunk = max(1, int(0.25 / max(per_step, 1e-6)))
    rates = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(rates) < 3:
        t0 = time.perf_counter()
        for _ in range(chunk):
            step()
        rates.append(chunk * batch / (time.perf_counter() - t0))
    rates.sort()
    return rates[-1], rates[len(rates) // 2]


def _best_rate(work, seconds: float) -> float:
    """Best calls/s of ``work()`` over chunks of ~0.1 s within ``seconds``."""
    for _ in range(3):
        work()
    t0 = time.perf_counter()
    work()
    chunk = max(1, int(0.1 / max(time.perf_counter() - t0, 1e-6)))
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or best == 0.0:
        t0 = time.perf_counter()
        for _ in range(chunk):
            work()
        best = max(best, chunk / (time.perf_counter() - t0))
    return best


def gemm_only_rate(batch: int, seconds: float) -> float:
    """FLOP/s of just the GEMMs of one KGNet training step at this batch (same shapes, no autograd,
    no elementwise work, no optimiser): the ceiling the full step could reach at this batch size."""
    widths = [128, 512, 1024, 1024, 512, 128]
    ws = [torch.randn(o, i) for i, o in zip(widths[:-1], widths[1:], strict=True)]
    acts = [torch.randn(batch, w) for w in widths]
    outs_f = [torch.empty(batch, o) for o in widths[1:]]
    outs_gx = [torch.empty(batch, i) for i in widths[:-1]]
    outs_gw = [torch.empty(o, i) for i, o in zip(widths[:-1], widths[1:], strict=True)]

    def step() -> None:
        for k, w in enumerate(ws):
            torch.mm(acts[k], w.t(), out=outs_f[k])  # forward
        for k in range(len(ws) - 1, -1, -1):
            torch.mm(acts[k + 1].t(), acts[k], out=outs_gw[k])  # weight gradient
            if k > 0:
                torch.mm(acts[k + 1], ws[k], out=outs_gx[k])  # input gradient

    flops = batch * matmul_flops_per_sample(KGNet(128, 128))
    return flops * _best_rate(step, seconds)


def main(argv: list[str] | None = None) -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=positive_int, nargs="+", default=[128, 1024, 4096])
    p.add_argument("--seconds", type=positive_float, default=3.0, help="timed seconds per configuration")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    flops_sample = matmul_flops_per_sample(KGNet(128, 128))
    peaks = [peak_matmul_flops(seconds=args.seconds)]
    rows = []
    for batch in args.batches:
        gemm = gemm_only_rate(batch, args.seconds / 2)
        for fused in (False, True):
            rows.append((batch, "fused" if fused else "foreach", *train_rate(batch, args.seconds, fused), gemm))
    peaks.append(peak_matmul_flops(seconds=args.seconds))
    peak = max(peaks)  # best of a measurement before and one after the table

    print(f"# KGNet training throughput ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"matmul FLOP per training sample: {flops_sample:,} (6 W - 2 x 128 x 512, W = matmul weights)")
    print(f"fp32 matmul reference (4096^3 torch.matmul, best of before/after the table): {peak / 1e9:.1f} GFLOP/s "
          f"(before {peaks[0] / 1e9:.1f}, after {peaks[1] / 1e9:.1f})")
    print()
    print("| batch | Adam | samples/s (best) | samples/s (median) | GFLOP/s (best) | fraction of matmul rate "
          "| the step's GEMMs alone |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for batch, name, best, median, gemm in rows:
        achieved = best * flops_sample
        print(f"| {batch} | {name} | {best:,.0f} | {median:,.0f} | {achieved / 1e9:.1f} | {achieved / peak:.1%} "
              f"| {gemm / peak:.1%} |")
    print(f"\n1-min load average after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(above the CPU count: other processes shared the cores; the best-of numbers are least affected)")


if __name__ == "__main__":
    main()
