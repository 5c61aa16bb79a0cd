"""DeepMIMO exporter: two DeepMIMO 4 scenarios (e.g. I1 at 2.4 and 2.5 GHz) -> one dual-band HDF5 file.

Needs the optional ``deepmimo`` package (``pip install phykey[deepmimo]``) and the scenario folders
on disk (nothing is downloaded).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from channeldata.dualband_file import SOURCE_DEEPMIMO_PREFIX, DualBandData, is_int, write_dual_band
from physics.multipath import (
    PAPER_002_BANDWIDTH_HZ,
    PAPER_002_EVE_DISTANCE_M,
    PAPER_002_NUM_PATHS,
    PAPER_002_NUM_SUBCARRIERS,
    eve_positions,
)

# ---------------------------------------------------------------------------------------------
# DeepMIMO exporter
# ---------------------------------------------------------------------------------------------


def _deepmimo_params(folder: Path, name: str) -> dict[str, Any]:
    """``params.json`` of scenario ``name``; checked here because deepmimo calls input() if missing."""
    lname = name.lower()
    params_path = folder / lname / "params.json"
    if not params_path.is_file():
        hint = ""
        if lname != name and (folder / name / "params.json").is_file():
            hint = (f" A folder '{name}' exists, but deepmimo 4 looks scenarios up by lower-case "
                    f"name: rename it to '{lname}'.")
        raise ValueError(
            f"DeepMIMO scenario '{name}' not found: expected {params_path}.{hint} Download the "
            f"scenario (deepmimo 4 format) and unzip it into {folder}.")
    with params_path.open() as handle:
        params = json.load(handle)
    for key in ("rt_params", "txrx_sets", "scene"):
        if key not in params:
            raise ValueError(f"{params_path}: missing section '{key}' (not a deepmimo 4 params.json)")
    if int(params["scene"].get("num_scenes", 1)) != 1:
        raise ValueError(f"{params_path}: num_scenes={params['scene']['num_scenes']}; only static "
                         "(single-scene) scenarios are supported")
    return params


def _txrx_sets(params: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(params["txrx_sets"].values(), key=lambda s: int(s["id"]))


def _choose_sets(params: dict[str, Any], where: str, tx_set: int | None, tx_index: int,
                 rx_sets: Sequence[int] | None) -> tuple[int, list[int]]:
    sets = _txrx_sets(params)
    tx_ids = [int(s["id"]) for s in sets if s["is_tx"]]
    if not tx_ids:
        raise ValueError(f"{where}: no transmitter set in txrx_sets")
    tx_set = tx_ids[0] if tx_set is None else tx_set
    if tx_set not in tx_ids:
        raise ValueError(f"{where}: tx_set={tx_set} is not a transmitter set; available: {tx_ids}")
    tx_points = int(next(s for s in sets if int(s["id"]) == tx_set)["num_points"])
    if not (0 <= tx_index < tx_points):
        raise ValueError(f"{where}: tx_index={tx_index} outside [0, {tx_points}) for tx set {tx_set}")
    rx_only = [int(s["id"]) for s in sets if s["is_rx"] and not s["is_tx"]]
    rx_all = [int(s["id"]) for s in sets if s["is_rx"]]
    chosen = list(rx_only if rx_sets is None else rx_sets)
    bad = [r for r in chosen if r not in rx_all]
    if not chosen or bad:
        raise ValueError(f"{where}: rx_sets={chosen} must be a non-empty list of receiver sets "
                         f"from {rx_all}")
    return tx_set, chosen


def _nearest_eve(position_m: np.ndarray, num_bob: int, distance_m: float, seed: int) -> np.ndarray:
    """Index of the grid user nearest to ``Bob + distance`` in a random horizontal direction."""
    from scipy.spatial import cKDTree

    generator = torch.Generator().manual_seed(int(seed))
    bob = torch.as_tensor(position_m[:num_bob], dtype=torch.float64)
    target = eve_positions(bob, distance_m, generator=generator).numpy()
    tree = cKDTree(position_m)
    k = min(2, position_m.shape[0])
    _, idx = tree.query(target, k=k)
    idx = np.asarray(idx).reshape(num_bob, k)
    own = idx[:, 0] == np.arange(num_bob)
    if k == 1 and own.any():
        raise ValueError("need at least two users to place Eve")
    return np.where(own, idx[:, -1], idx[:, 0]).astype(np.int64)


def export_deepmimo(
    scenario_folder: str | os.PathLike,
    band1: str,
    band2: str,
    out: str | os.PathLike,
    *,
    max_users: int = 100_000,
    tx_set: int | None = None,
    tx_index: int = 0,
    rx_sets: Sequence[int] | None = None,
    num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS,
    bandwidth_hz: float = PAPER_002_BANDWIDTH_HZ,
    num_paths: int = PAPER_002_NUM_PATHS,
    eve_distance_m: float | None = PAPER_002_EVE_DISTANCE_M,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Build the dual-band file from two DeepMIMO 4 scenarios of the same environment (002 VII-A).

    Channels come from ``deepmimo.Dataset.compute_channels`` with 002's OFDM settings (``K = 64``
    subcarriers, all of them selected, 0.5 GHz bandwidth, ``num_paths = 5``, single-antenna BS and
    UE, no receive filter), for one transmitter (``tx_set``, ``tx_index``; default: the first
    antenna of the first transmitter set) and the receiver sets ``rx_sets`` (default: all
    receive-only sets, concatenated in id order). Bob is the first ``max_users`` users (002 takes
    the first 100,000; 0 = all). With ``eve_distance_m``, Eve for user ``i`` is the grid user nearest
    to ``position_i + eve_distance_m`` in a random horizontal direction (seeded), never user ``i``.

    deepmimo conventions kept as they are: power in dBW -> amplitude ``sqrt(10^(P/10) / K)``, the
    ray-traced phase (degrees) already holds the carrier term, subcarrier ``l`` at offset ``l B / K``,
    paths with delay ``>= K / B`` dropped.
    """
    folder = Path(scenario_folder).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"scenario folder {folder} does not exist")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    if not (is_int(max_users) and max_users >= 0):
        raise ValueError(f"max_users={max_users!r} must be a non-negative integer (0 = all users)")
    if eve_distance_m is not None and not (math.isfinite(eve_distance_m) and eve_distance_m > 0):
        raise ValueError(f"eve_distance_m={eve_distance_m!r} must be positive (or None for no Eve)")
    names = (band1.lower(), band2.lower())
    params = [_deepmimo_params(folder, name) for name in (band1, band2)]
    choices = [_choose_sets(p, str(folder / n / "params.json"), tx_set, tx_index, rx_sets)
               for p, n in zip(params, names, strict=True)]
    if choices[0] != choices[1]:
        raise ValueError(f"band1 and band2 scenarios have different transmitter/receiver sets: "
                         f"{choices[0]} vs {choices[1]}")
    tx_set_id, rx_set_ids = choices[0]
    listed = {int(s["id"]): int(s["num_points"]) for s in _txrx_sets(params[0])}
    total_listed = sum(listed[r] for r in rx_set_ids)
    if max_users > total_listed:
        raise ValueError(f"max_users={max_users} but the scenarios hold only {total_listed} users in "
                         f"receiver sets {rx_set_ids} (use --max-users 0 for all)")

    import deepmimo  # lazy: ~2 s and a warning on import

    channel_params = deepmimo.ChannelParameters(
        bs_antenna={"shape": np.array([1, 1])},
        ue_antenna={"shape": np.array([1, 1])},
        num_paths=num_paths,
        freq_domain=1,
        ofdm={"subcarriers": num_subcarriers, "selected_subcarriers": np.arange(num_subcarriers),
              "bandwidth": bandwidth_hz, "rx_filter": 0},
    )
    previous = deepmimo.config.get("scenarios_folder")
    cfrs, positions, tx_positions = [], [], []
    try:
        deepmimo.config.set("scenarios_folder", str(folder))
        for name in names:
            band_cfr, band_pos, band_tx = [], [], None
            for rx in rx_set_ids:
                ds = deepmimo.load(name, tx_sets={tx_set_id: [tx_index]}, rx_sets={rx: "all"},
                                   max_paths=num_paths)
                channel = np.asarray(ds.compute_channels(channel_params))  # [n, 1, 1, K]
                band_cfr.append(channel.reshape(channel.shape[0], num_subcarriers).astype(np.complex64))
                band_pos.append(np.asarray(ds.rx_pos, dtype=np.float64))
                band_tx = np.asarray(ds.tx_pos, dtype=np.float64).reshape(-1, 3)[0]
            cfrs.append(np.concatenate(band_cfr))
            positions.append(np.concatenate(band_pos))
            tx_positions.append(band_tx)
    finally:
        deepmimo.config.set("scenarios_folder", previous)

    if positions[0].shape != positions[1].shape:
        raise ValueError(f"{names[0]} has {positions[0].shape[0]} users but {names[1]} has "
                         f"{positions[1].shape[0]}; the bands must share the user grid")
    mismatch = np.flatnonzero(np.abs(positions[0] - positions[1]).max(axis=1) > 1e-3)
    if mismatch.size:
        i = int(mismatch[0])
        raise ValueError(f"user {i} is at {positions[0][i].tolist()} m in {names[0]} but at "
                         f"{positions[1][i].tolist()} m in {names[1]}; the bands must share the grid")
    if np.abs(tx_positions[0] - tx_positions[1]).max() > 1e-3:
        raise ValueError(f"transmitter at {tx_positions[0].tolist()} m in {names[0]} but at "
                         f"{tx_positions[1].tolist()} m in {names[1]}")
    total = positions[0].shape[0]
    num_bob = total if max_users == 0 else max_users
    if num_bob > total:
        raise ValueError(f"max_users={max_users} but the scenarios hold only {total} users "
                         "(use --max-users 0 for all)")
    attrs: dict[str, Any] = {
        "band1_carrier_hz": float(params[0]["rt_params"]["frequency"]),
        "band2_carrier_hz": float(params[1]["rt_params"]["frequency"]),
        "bandwidth_hz": float(bandwidth_hz),
        "num_subcarriers": int(num_subcarriers),
        "source": f"{SOURCE_DEEPMIMO_PREFIX}{names[0]}+{names[1]}",
        "generator_version": f"deepmimo {deepmimo.__version__}",
        "seed": int(seed),
        "subcarrier_convention": "deepmimo: offset l * bandwidth / num_subcarriers, l = 0..K-1; "
                                 "carrier phase inside the ray-traced path phase",
        "num_paths": int(num_paths),
        "tx_set": int(tx_set_id),
        "tx_index": int(tx_index),
        "rx_sets": np.asarray(rx_set_ids, dtype=np.int64),
        "tx_position_m": tx_positions[0],
    }
    data = DualBandData(cfr_band1=cfrs[0][:num_bob], cfr_band2=cfrs[1][:num_bob],
                        position_m=positions[0][:num_bob], attrs=attrs)
    if eve_distance_m is not None:
        idx = _nearest_eve(positions[0], num_bob, eve_distance_m, seed)
        data.eve_cfr_band1, data.eve_cfr_band2 = cfrs[0][idx], cfrs[1][idx]
        data.eve_position_m = positions[0][idx]
        data.extra["eve_user_index"] = idx
        attrs["eve_distance_m"] = float(eve_distance_m)
        achieved = np.linalg.norm(data.eve_position_m - data.position_m, axis=1)
        print(f"Eve: nearest grid user to Bob + {eve_distance_m} m; achieved distance median "
              f"{np.median(achieved):.3f} m, max {achieved.max():.3f} m")
    silent = int((np.abs(data.cfr_band1).max(axis=1) == 0).sum())
    if silent:
        print(f"note: {silent} of {num_bob} users have no path (all-zero CFR)")
    return write_dual_band(out, data, overwrite=overwrite)


