"""The synthetic indoor dual-band data set (the embedded default of paper 002's KGNet data).

Draws users in the room of :mod:`physics.multipath`, computes both bands' CFRs (and Eve's next to each
user) chunk by chunk, and writes the HDF5 file of :mod:`channeldata.dualband_file`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from channeldata.dualband_file import DATASETS, SOURCE_SYNTHETIC, DualBandData, DualBandWriter, is_int
from physics.multipath import (
    DEFAULT_ROOM,
    GENERATOR_VERSION,
    PAPER_002_BAND1_CARRIER_HZ,
    PAPER_002_BAND2_CARRIER_HZ,
    PAPER_002_BANDWIDTH_HZ,
    PAPER_002_EVE_DISTANCE_M,
    PAPER_002_NUM_PATHS,
    PAPER_002_NUM_SUBCARRIERS,
    SURFACES,
    IndoorRoom,
    eve_positions,
    indoor_dual_band,
    sample_user_positions,
)

# ---------------------------------------------------------------------------------------------
# Synthetic indoor data (embedded default)
# ---------------------------------------------------------------------------------------------


def synthetic_attrs(seed: int, eve_distance_m: float, room: IndoorRoom = DEFAULT_ROOM,
                    num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS) -> dict[str, Any]:
    """File attributes of the synthetic indoor data set (required ones plus provenance)."""
    return {
        "band1_carrier_hz": PAPER_002_BAND1_CARRIER_HZ,
        "band2_carrier_hz": PAPER_002_BAND2_CARRIER_HZ,
        "bandwidth_hz": PAPER_002_BANDWIDTH_HZ,
        "num_subcarriers": int(num_subcarriers),
        "source": SOURCE_SYNTHETIC,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "subcarrier_convention": "f = carrier + l * bandwidth / num_subcarriers, l = 0..K-1",
        "num_paths": PAPER_002_NUM_PATHS,
        "max_reflection_order": 2,
        "room_size_m": np.asarray(room.size_m, dtype=np.float64),
        "ap_position_m": np.asarray(room.ap_position_m, dtype=np.float64),
        "reflection_coeff": np.asarray(room.reflection_coeff, dtype=np.float64),
        "reflection_surfaces": ",".join(SURFACES),
        "user_grids_m": np.asarray([[x0, x1, y0, y1] for (x0, x1), (y0, y1) in room.grids_m]),
        "user_height_m": room.user_height_m,
        "grid_spacing_m": room.grid_spacing_m,
        "eve_distance_m": float(eve_distance_m),
    }


def _synthetic_chunks(users: int, seed: int, eve_distance_m: float, chunk_size: int,
                      num_subcarriers: int, progress: bool) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Positions (Bob, then Eve) from one seeded generator, then CFRs chunk by chunk."""
    if not (is_int(seed) and seed >= 0):
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    if not (is_int(chunk_size) and chunk_size >= 1):
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer")
    generator = torch.Generator().manual_seed(int(seed))
    bob = sample_user_positions(users, generator)
    eve = eve_positions(bob, eve_distance_m, generator=generator)
    starts = range(0, users, chunk_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="synthetic indoor CFRs", unit="chunk")
    for start in starts:
        sl = slice(start, start + chunk_size)
        c1, c2 = indoor_dual_band(bob[sl], num_subcarriers=num_subcarriers)
        e1, e2 = indoor_dual_band(eve[sl], num_subcarriers=num_subcarriers)
        yield start, {"cfr_band1": c1, "cfr_band2": c2, "position_m": bob[sl],
                      "eve_cfr_band1": e1, "eve_cfr_band2": e2, "eve_position_m": eve[sl]}


def synthetic_dual_band(users: int, seed: int, *, eve_distance_m: float = PAPER_002_EVE_DISTANCE_M,
                        num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS, chunk_size: int = 8192,
                        progress: bool = False) -> DualBandData:
    """The synthetic indoor data set in memory (same content as :func:`generate_synthetic` writes)."""
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in DATASETS}
    for _, chunk in _synthetic_chunks(users, seed, eve_distance_m, chunk_size, num_subcarriers, progress):
        for name, value in chunk.items():
            parts[name].append(value)
    arrays = {name: torch.cat(values).numpy() for name, values in parts.items()}
    return DualBandData(attrs=synthetic_attrs(seed, eve_distance_m, num_subcarriers=num_subcarriers),
                        **arrays)


def generate_synthetic(path: str | os.PathLike, *, users: int, seed: int, overwrite: bool = False,
                       eve_distance_m: float = PAPER_002_EVE_DISTANCE_M,
                       num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS, chunk_size: int = 8192,
                       progress: bool = True) -> Path:
    """Write the synthetic indoor data set (Bob and Eve) to ``path``, chunk by chunk."""
    if not (is_int(users) and users >= 1):
        raise ValueError(f"users={users!r} must be a positive integer")
    attrs = synthetic_attrs(seed, eve_distance_m, num_subcarriers=num_subcarriers)
    with DualBandWriter(path, num_users=users, num_subcarriers=num_subcarriers, attrs=attrs,
                        with_eve=True, overwrite=overwrite) as writer:
        for start, chunk in _synthetic_chunks(users, seed, eve_distance_m, chunk_size, num_subcarriers,
                                              progress):
            writer.write(start, **chunk)
    return Path(path)


