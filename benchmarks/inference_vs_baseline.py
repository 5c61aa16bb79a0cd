"""Latency per draw: the exported PKG-Net (torch.export .pt2) vs the water-filling baseline.

001 Table I setting: P_max = 25 dBm, kappa = 1, L = 36, Bob uniform in [5, 15]^2, M in {2, 4, 8}.
Latency does not depend on the trained weights, so each M uses a freshly initialised PKG-Net
(hidden 100-100) exported to a temporary .pt2 and loaded back with plain torch; pass
``--ckpt-dir`` to time your own exported files instead (``pkgnet_M{M}.pt2``). Prints, in one run,
ms per draw at batch 1 and batch 1000 and the ratio water-filling / PKG-Net.

    python benchmarks/inference_vs_baseline.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from experiments.cli_args import Parser, fail, positive_int
from models.export import export_pkgnet, load_program
from models.pkgnet import PKGNet
from physics import irs
from physics.irs import IRSScenario
from physics.scenario import generator_for


def median_time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=7)
    parser.add_argument("--ckpt-dir", type=Path, default=None, help="folder with pkgnet_M{M}.pt2 files")
    args = parser.parse_args(argv)
    if args.ckpt_dir is not None and not args.ckpt_dir.is_dir():
        parser.error(f"argument --ckpt-dir: {str(args.ckpt_dir)!r} is not a folder")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'M':>2} {'batch':>6} {'PKG-Net ms/draw':>16} {'water-filling ms/draw':>22} {'ratio':>8}")
    tmp = tempfile.TemporaryDirectory()
    for M in (2, 4, 8):
        sc = IRSScenario("case1", M=M, L_H=6, L_V=6)
        path = (args.ckpt_dir / f"pkgnet_M{M}.pt2") if args.ckpt_dir else Path(tmp.name) / f"pkgnet_M{M}.pt2"
        if args.ckpt_dir is None:
            torch.manual_seed(0)
            net = PKGNet([100, 100]).build(len(sc.feature_names), *sc.feature_bounds(), sc.design_space())
            export_pkgnet(net, sc, path)
        if not path.is_file():
            fail(f"--ckpt-dir: {str(path)!r} is missing (export pkgnet_M2/4/8.pt2 there, or leave --ckpt-dir out)")
        try:
            model = load_program(path)[0].module()
        except ValueError as e:
            fail(f"--ckpt-dir: {e}")
        for batch in (1, 1000):
            draws = sc.sample(batch, generator_for(0, M, batch))
            draws["P_max_dbm"].fill_(25.0)
            draws["kappa"].fill_(1.0)
            draws["eta"].fill_(0.4)
            x = sc.features(draws).float()
            stats, P_max = sc.stats(draws), sc.P_max_w(draws)
            with torch.no_grad():
                t_net = median_time(lambda x=x, model=model: model(x), args.repeats)
                t_wf = median_time(lambda s=stats, p=P_max: irs.water_filling(s, p), max(3, args.repeats // 2))
            print(f"{M:>2} {batch:>6} {1e3 * t_net / batch:>16.4f} {1e3 * t_wf / batch:>22.4f} {t_wf / t_net:>7.0f}x")
    tmp.cleanup()


if __name__ == "__main__":
    main()
