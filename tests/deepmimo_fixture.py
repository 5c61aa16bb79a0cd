"""Write tiny DeepMIMO 4 scenarios on disk, for testing the exporter without the real I1 files.

The on-disk format follows the installed deepmimo 4.0.5 loader (``deepmimo/datasets/load.py``,
``deepmimo/utils/scenarios.py``, ``deepmimo/utils/io.py``): a folder ``<root>/<name>/`` (lower-case
name) with

- ``params.json``: sections ``version``, ``rt_params`` (``frequency`` in Hz, ray-tracer fields),
  ``txrx_sets`` (``txrx_set_<id>`` -> ``id``, ``is_tx``, ``is_rx``, ``num_points``, ...),
  ``materials`` and ``scene`` (``num_scenes``);
- one ``.npz`` per matrix, TX set/index and RX set: ``{key}_t{txset:03}_tx{txidx:03}_r{rxset:03}.npz``
  holding the array under ``key``: ``power`` (dBW), ``phase`` (degrees), ``delay`` (s), ``aoa_az``,
  ``aoa_el``, ``aod_az``, ``aod_el`` (degrees), ``inter`` ``[N, P]`` (NaN = no path),
  ``inter_pos`` ``[N, P, I, 3]``, ``rx_pos`` ``[N, 3]`` and ``tx_pos`` ``[n_tx, 3]``;
- ``objects.json`` and ``vertices.npz``: the (here empty) scene.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class FixturePaths:
    """The path parameters written for one (TX, RX set) pair; NaN marks a missing path."""

    power_dbw: np.ndarray  # [N, P]
    phase_deg: np.ndarray  # [N, P]
    delay_s: np.ndarray  # [N, P]
    rx_pos_m: np.ndarray  # [N, 3]


def _params(carrier_hz: float, num_tx: int, rx_counts: dict[int, int]) -> dict:
    txrx = {"txrx_set_0": {"name": "ceiling_ap", "id_orig": 1, "id": 0, "is_tx": True, "is_rx": False,
                           "num_points": num_tx, "num_active_points": num_tx, "num_ant": 1,
                           "dual_pol": False}}
    for rx_id, count in rx_counts.items():
        txrx[f"txrx_set_{rx_id}"] = {"name": f"grid{rx_id}", "id_orig": rx_id + 1, "id": rx_id,
                                     "is_tx": False, "is_rx": True, "num_points": count,
                                     "num_active_points": count, "num_ant": 1, "dual_pol": False}
    return {
        "version": "4.0.5",
        "rt_params": {"raytracer_name": "Remcom Wireless Insite", "raytracer_version": "3.3.0",
                      "frequency": carrier_hz, "max_path_depth": 2, "max_reflections": 2,
                      "max_diffractions": 0, "max_scattering": 0, "max_transmissions": 0},
        "txrx_sets": txrx,
        "materials": {},
        "scene": {"num_scenes": 1},
    }


def write_scenario(root: Path, name: str, *, carrier_hz: float, tx_pos_m: np.ndarray,
                   grids: dict[int, FixturePaths], rng: np.random.Generator) -> Path:
    """Write scenario ``name`` with one TX set (id 0, ``len(tx_pos_m)`` points) and RX sets ``grids``.

    Every TX index gets the same paths (enough for the tests); angles are random (they do not enter
    a 1x1-antenna channel with isotropic patterns).
    """
    folder = Path(root) / name.lower()
    folder.mkdir(parents=True, exist_ok=False)
    tx_pos_m = np.asarray(tx_pos_m, dtype=np.float32).reshape(-1, 3)
    rx_counts = {rx_id: int(g.rx_pos_m.shape[0]) for rx_id, g in grids.items()}
    (folder / "params.json").write_text(json.dumps(_params(carrier_hz, tx_pos_m.shape[0], rx_counts)))
    (folder / "objects.json").write_text("[]")
    np.savez_compressed(folder / "vertices.npz", vertices=np.zeros((0, 3), dtype=np.float32))
    for rx_id, g in grids.items():
        n, p = g.power_dbw.shape
        missing = np.isnan(g.power_dbw)

        def angles(lo: float, hi: float, n=n, p=p, missing=missing) -> np.ndarray:
            return np.where(missing, np.nan, rng.uniform(lo, hi, (n, p)))

        inter = np.where(missing, np.nan, 1.0)
        inter[:, 0] = np.where(missing[:, 0], np.nan, 0.0)  # first path line of sight
        matrices = {
            "power": g.power_dbw, "phase": g.phase_deg, "delay": g.delay_s,
            "aoa_az": angles(-180, 180), "aoa_el": angles(0, 180),
            "aod_az": angles(-180, 180), "aod_el": angles(0, 180),
            "inter": inter, "inter_pos": np.zeros((n, p, 1, 3)),
            "rx_pos": g.rx_pos_m, "tx_pos": tx_pos_m,
        }
        for tx_idx in range(tx_pos_m.shape[0]):
            for key, value in matrices.items():
                filename = f"{key}_t000_tx{tx_idx:03}_r{rx_id:03}.npz"
                np.savez_compressed(folder / filename, **{key: np.asarray(value, dtype=np.float32)})
    return folder


def random_paths(rng: np.random.Generator, rx_pos_m: np.ndarray, num_paths: int,
                 max_delay_s: float) -> FixturePaths:
    """Random path powers (-100..-60 dBW), phases and delays, with some users missing late paths."""
    n = rx_pos_m.shape[0]
    power = rng.uniform(-100.0, -60.0, (n, num_paths))
    count = rng.integers(1, num_paths + 1, n)
    count[0] = num_paths
    power[np.arange(num_paths)[None, :] >= count[:, None]] = np.nan
    missing = np.isnan(power)
    phase = np.where(missing, np.nan, rng.uniform(-180.0, 180.0, (n, num_paths)))
    delay = np.where(missing, np.nan, np.sort(rng.uniform(5e-9, max_delay_s, (n, num_paths)), axis=1))
    return FixturePaths(power_dbw=power, phase_deg=phase, delay_s=delay, rx_pos_m=rx_pos_m)
