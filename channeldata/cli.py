"""``python -m channeldata``: build dual-band CFR files for KGNet (paper 002).

    python -m channeldata generate --out data/indoor.h5 --users 100000 --seed 0
    python -m channeldata from-deepmimo --scenario_folder ~/deepmimo_scenarios \\
        --band1 i1_2p4 --band2 i1_2p5 --out data/i1.h5

The flags come from the signatures below (jsonargparse): defaults are stated once, here. Every user
error prints one line ``error: ...`` on stderr and exits with status 2, before anything is written;
``--debug`` (or ``PHYKEY_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from physics.multipath import (
    PAPER_002_BANDWIDTH_HZ,
    PAPER_002_EVE_DISTANCE_M,
    PAPER_002_NUM_PATHS,
    PAPER_002_NUM_SUBCARRIERS,
)


def generate(out: str, users: int = 100_000, seed: int = 0, eve_distance_m: float = PAPER_002_EVE_DISTANCE_M,
             num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS, chunk_size: int = 8192,
             overwrite: bool = False) -> Path:
    """Synthetic indoor room (the embedded default; no download).

    Args:
        out: output HDF5 path, e.g. data/indoor.h5 (its folder must exist).
        users: number of users (002: 100000).
        seed: seed of user positions and Eve's directions.
        eve_distance_m: Eve's distance from each user (002 Fig. 11: 0.15 m).
        num_subcarriers: OFDM subcarriers K (002: 64).
        chunk_size: users computed and written per chunk.
        overwrite: replace an existing file.
    """
    from channeldata.synthetic import generate_synthetic

    return generate_synthetic(out, users=users, seed=seed, overwrite=overwrite, eve_distance_m=eve_distance_m,
                              num_subcarriers=num_subcarriers, chunk_size=chunk_size)


def from_deepmimo(scenario_folder: str, band1: str, band2: str, out: str, max_users: int = 100_000,
                  tx_set: int | None = None, tx_index: int = 0, rx_sets: list[int] | None = None,
                  num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS, bandwidth_hz: float = PAPER_002_BANDWIDTH_HZ,
                  num_paths: int = PAPER_002_NUM_PATHS, eve_distance_m: float = PAPER_002_EVE_DISTANCE_M,
                  no_eve: bool = False, seed: int = 0, overwrite: bool = False) -> Path:
    """Export two DeepMIMO 4 scenarios of one environment (e.g. I1 at 2.4 / 2.5 GHz).

    Args:
        scenario_folder: folder holding <name>/params.json for both scenarios.
        band1: Band1 (uplink) scenario, e.g. i1_2p4.
        band2: Band2 (downlink) scenario, e.g. i1_2p5.
        out: output HDF5 path.
        max_users: first N users (0 = all; 002: 100000).
        tx_set: transmitter set id (default: the first).
        tx_index: transmitter within the set.
        rx_sets: receiver set ids (default: every receive-only set).
        num_subcarriers: OFDM subcarriers K.
        bandwidth_hz: OFDM bandwidth.
        num_paths: strongest paths kept per user.
        eve_distance_m: Eve's distance from each user.
        no_eve: do not store Eve.
        seed: seed of Eve's random directions.
        overwrite: replace an existing file.
    """
    from channeldata.deepmimo import export_deepmimo

    return export_deepmimo(scenario_folder, band1, band2, out, max_users=max_users, tx_set=tx_set,
                           tx_index=tx_index, rx_sets=rx_sets, num_subcarriers=num_subcarriers,
                           bandwidth_hz=bandwidth_hz, num_paths=num_paths,
                           eve_distance_m=None if no_eve else eve_distance_m, seed=seed, overwrite=overwrite)


_BOOL_FLAGS = {"--overwrite", "--no_eve"}


def _normalise_flags(argv: list[str], bool_flags: set[str]) -> list[str]:
    """``--scenario-folder`` as ``--scenario_folder`` (both spellings work), and a bare boolean flag
    (``--overwrite``) as ``--overwrite=true``."""
    out = []
    for i, a in enumerate(argv):
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            a = "--" + name[2:].replace("-", "_") + eq + value
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if a in bool_flags and (nxt is None or nxt.startswith("--") or nxt in ("generate", "from-deepmimo")):
                a += "=true"
        out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 after a one-line ``error:``)."""
    from jsonargparse import ArgumentError, ArgumentParser

    from channeldata.dualband_file import read_dual_band

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("PHYKEY_DEBUG") == "1"
    argv = _normalise_flags([a for a in argv if a != "--debug"], _BOOL_FLAGS)
    parser = ArgumentParser(exit_on_error=False, prog="python -m channeldata",
                            description="Build dual-band CFR files for KGNet (002).")
    sub = parser.add_subcommands(dest="command")
    commands = {"generate": generate, "from-deepmimo": from_deepmimo}
    for name, fn in commands.items():
        p = ArgumentParser(exit_on_error=False)
        p.add_function_arguments(fn)
        sub.add_subcommand(name, p, help=fn.__doc__.splitlines()[0])
    try:
        cfg = parser.parse_args(argv)
    except ArgumentError as err:  # bad flags or values: one line, exit 2
        if debug:
            raise
        print("error: " + " ".join(line.strip() for line in str(err).splitlines() if line.strip()), file=sys.stderr)
        return 2
    name = cfg.command
    kwargs = {k: v for k, v in cfg[name].items() if k != "__path__"}
    import signal

    from channeldata.dualband_file import clear_stop, request_stop

    def _terminate(signum, frame):  # SIGTERM and Ctrl-C: the writer removes its temporary file
        request_stop()  # checked by the writer at every chunk and before committing
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, _terminate) for s in (signal.SIGTERM, signal.SIGINT)} if _main_thread() else {}
    try:
        out = commands[name](**kwargs)
    except (ValueError, OSError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written (the partial file was removed)", file=sys.stderr)
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        clear_stop()
    data = read_dual_band(out)
    print(f"wrote {out}: {data.num_users} users x {data.num_subcarriers} subcarriers, "
          f"source {data.attrs['source']}, Eve {'stored' if data.has_eve else 'not stored'}")
    return 0


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
