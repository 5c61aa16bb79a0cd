"""Dual-band CFR data for KGNet (paper 002): the HDF5 file, its writers and the LightningDataModule.

File layout (DESIGN.md section 6), one file per environment:

- ``/band1/cfr`` ``[N, K]`` complex64: Band1 (uplink, Bob -> Alice) CFR per user;
- ``/band2/cfr`` ``[N, K]`` complex64: Band2 (downlink, Alice -> Bob) CFR;
- ``/users/position_m`` ``[N, 3]`` float64;
- optional Eve: ``/eve/band1/cfr``, ``/eve/band2/cfr`` ``[N, K]`` complex64 and ``/eve/position_m``
  ``[N, 3]`` float64, row ``i`` being the eavesdropper next to user ``i`` (002 Sec. VII-C);
- attributes ``band1_carrier_hz``, ``band2_carrier_hz``, ``bandwidth_hz``, ``num_subcarriers``,
  ``source`` (``synthetic-indoor`` or ``deepmimo:<band1 scenario>+<band2 scenario>``),
  ``generator_version`` and ``seed``, plus free-form provenance attributes.

Files are written to a temporary file in the target folder and moved into place with
``os.replace`` only once complete, so an interrupted write leaves nothing behind and never damages
an existing file; an existing file is only replaced with ``overwrite=True``.

Command line::

    python -m datamodules.dualband generate --out data/indoor.h5 --users 100000 --seed 0
    python -m datamodules.dualband from-deepmimo --scenario-folder ~/deepmimo_scenarios \\
        --band1 i1_2p4 --band2 i1_2p5 --out data/i1.h5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from physics.ofdm import (
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
    add_awgn,
    cfr_to_features,
    eve_positions,
    indoor_dual_band,
    sample_user_positions,
)

SOURCE_SYNTHETIC = "synthetic-indoor"
SOURCE_DEEPMIMO_PREFIX = "deepmimo:"

#: field of :class:`DualBandData` -> HDF5 dataset path
DATASETS = {
    "cfr_band1": "/band1/cfr",
    "cfr_band2": "/band2/cfr",
    "position_m": "/users/position_m",
    "eve_cfr_band1": "/eve/band1/cfr",
    "eve_cfr_band2": "/eve/band2/cfr",
    "eve_position_m": "/eve/position_m",
}
_EVE_FIELDS = ("eve_cfr_band1", "eve_cfr_band2", "eve_position_m")
_DTYPES = {name: (np.dtype(np.float64) if name.endswith("position_m") else np.dtype(np.complex64))
           for name in DATASETS}
REQUIRED_ATTRS = ("band1_carrier_hz", "band2_carrier_hz", "bandwidth_hz", "num_subcarriers", "source",
                  "generator_version", "seed")


# ---------------------------------------------------------------------------------------------
# In-memory form and validation
# ---------------------------------------------------------------------------------------------


@dataclass
class DualBandData:
    """The content of one dual-band file (numpy arrays, HDF5 dtypes).

    ``cfr_band1``/``cfr_band2`` ``[N, K]`` complex64, ``position_m`` ``[N, 3]`` float64, ``attrs`` the
    file attributes; the ``eve_*`` arrays are all present or all ``None``.
    """

    cfr_band1: np.ndarray
    cfr_band2: np.ndarray
    position_m: np.ndarray
    attrs: dict[str, Any]
    eve_cfr_band1: np.ndarray | None = None
    eve_cfr_band2: np.ndarray | None = None
    eve_position_m: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # other datasets, e.g. /eve/user_index

    @property
    def num_users(self) -> int:
        return int(self.cfr_band1.shape[0])

    @property
    def num_subcarriers(self) -> int:
        return int(self.cfr_band1.shape[1])

    @property
    def has_eve(self) -> bool:
        return self.eve_cfr_band1 is not None


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def validate_attrs(attrs: dict[str, Any], where: str, num_subcarriers: int | None = None) -> None:
    """Check the required attributes; ValueError naming the attribute and what is allowed."""
    for name in REQUIRED_ATTRS:
        if name not in attrs:
            raise ValueError(f"{where}: missing attribute '{name}' (required: {', '.join(REQUIRED_ATTRS)})")
    for name in ("band1_carrier_hz", "band2_carrier_hz", "bandwidth_hz"):
        value = attrs[name]
        if not (_is_real(value) and math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"{where}: attribute '{name}'={value!r} must be a finite positive number (Hz)")
    k = attrs["num_subcarriers"]
    if not (_is_int(k) and int(k) >= 1):
        raise ValueError(f"{where}: attribute 'num_subcarriers'={k!r} must be a positive integer")
    if num_subcarriers is not None and int(k) != num_subcarriers:
        raise ValueError(f"{where}: attribute 'num_subcarriers'={int(k)} disagrees with dataset "
                         f"{DATASETS['cfr_band1']} which has {num_subcarriers} subcarriers")
    source = attrs["source"]
    if not (isinstance(source, str) and (source == SOURCE_SYNTHETIC
                                         or (source.startswith(SOURCE_DEEPMIMO_PREFIX)
                                             and len(source) > len(SOURCE_DEEPMIMO_PREFIX)))):
        raise ValueError(f"{where}: attribute 'source'={source!r} must be '{SOURCE_SYNTHETIC}' or "
                         f"'{SOURCE_DEEPMIMO_PREFIX}<scenario>'")
    version = attrs["generator_version"]
    if not (isinstance(version, str) and version):
        raise ValueError(f"{where}: attribute 'generator_version'={version!r} must be a non-empty string")
    if not _is_int(attrs["seed"]):
        raise ValueError(f"{where}: attribute 'seed'={attrs['seed']!r} must be an integer")


def _check_array(name: str, array: Any, expected_shape: tuple[int | None, ...], where: str,
                 check_finite: bool = True) -> None:
    path = DATASETS.get(name, name)
    dtype = _DTYPES[name]
    if array.dtype != dtype:
        raise ValueError(f"{where}: dataset {path} has dtype {array.dtype}; expected {dtype}")
    shape = tuple(array.shape)
    if len(shape) != len(expected_shape) or any(
        e is not None and s != e for s, e in zip(shape, expected_shape, strict=True)
    ):
        want = tuple("*" if e is None else e for e in expected_shape)
        raise ValueError(f"{where}: dataset {path} has shape {shape}; expected {want}")
    if check_finite:
        finite = np.isfinite(np.asarray(array))
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            raise ValueError(f"{where}: dataset {path} holds NaN or Inf (first at row {row})")


def validate_data(data: DualBandData, where: str = "dual-band data") -> None:
    """Validate shapes, dtypes, finiteness, equal band sizes and attributes of ``data``."""
    cfr1 = data.cfr_band1
    _check_array("cfr_band1", cfr1, (None, None), where)
    n, k = cfr1.shape
    if n < 1 or k < 1:
        raise ValueError(f"{where}: dataset {DATASETS['cfr_band1']} has shape {cfr1.shape}; "
                         "expected at least one user and one subcarrier")
    _check_array("cfr_band2", data.cfr_band2, (n, k), where)
    _check_array("position_m", data.position_m, (n, 3), where)
    present = [name for name in _EVE_FIELDS if getattr(data, name) is not None]
    if present and len(present) != len(_EVE_FIELDS):
        missing = [DATASETS[name] for name in _EVE_FIELDS if name not in present]
        raise ValueError(f"{where}: Eve datasets are incomplete, missing {', '.join(missing)} "
                         f"(store all of {', '.join(DATASETS[f] for f in _EVE_FIELDS)} or none)")
    if present:
        _check_array("eve_cfr_band1", data.eve_cfr_band1, (n, k), where)
        _check_array("eve_cfr_band2", data.eve_cfr_band2, (n, k), where)
        _check_array("eve_position_m", data.eve_position_m, (n, 3), where)
    validate_attrs(data.attrs, where, num_subcarriers=k)


# ---------------------------------------------------------------------------------------------
# HDF5 reader and writers
# ---------------------------------------------------------------------------------------------


def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def read_dual_band(path: str | os.PathLike) -> DualBandData:
    """Read and validate a dual-band HDF5 file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not HDF5, or a dataset/attribute is missing, has the wrong shape or
            dtype, holds NaN/Inf, or the band sizes differ; the message names the dataset/attribute.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"dual-band file {where} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{where} is not a readable HDF5 file ({err})") from err
    arrays: dict[str, np.ndarray | None] = {}
    extra: dict[str, np.ndarray] = {}
    with handle:
        has_eve = "eve" in handle
        for name, ds_path in DATASETS.items():
            if name in _EVE_FIELDS and not has_eve:
                arrays[name] = None
                continue
            obj = handle.get(ds_path)
            if obj is None and name in _EVE_FIELDS:
                arrays[name] = None  # reported by validate_data as an incomplete Eve group
                continue
            if not isinstance(obj, h5py.Dataset):
                raise ValueError(f"{where}: missing dataset {ds_path}")
            arrays[name] = obj[()]
        if has_eve and isinstance(handle.get("/eve/user_index"), h5py.Dataset):
            extra["eve_user_index"] = handle["/eve/user_index"][()]
        attrs = {key: _attr_value(value) for key, value in handle.attrs.items()}
    data = DualBandData(attrs=attrs, extra=extra, **arrays)
    validate_data(data, where)
    return data


class DualBandWriter:
    """Chunked, all-or-nothing writer of a dual-band HDF5 file.

    Use as a context manager; call :meth:`write` for consecutive row ranges. The file appears at
    ``path`` only if the block exits without an exception and every row was written.
    """

    def __init__(self, path: str | os.PathLike, *, num_users: int, num_subcarriers: int,
                 attrs: dict[str, Any], with_eve: bool, overwrite: bool = False,
                 extra_datasets: dict[str, np.dtype] | None = None) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        if not (_is_int(num_users) and num_users >= 1):
            raise ValueError(f"num_users={num_users!r} must be a positive integer")
        validate_attrs(attrs, self.where, num_subcarriers=num_subcarriers)
        self.num_users, self.num_subcarriers = int(num_users), int(num_subcarriers)
        self.attrs, self.with_eve, self.overwrite = dict(attrs), with_eve, overwrite
        self.extra_datasets = dict(extra_datasets or {})
        self._written = np.zeros(self.num_users, dtype=bool)
        self._tmp: Path | None = None
        self._file: h5py.File | None = None

    def _refuse_existing(self) -> None:
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.where} already exists; pass overwrite=True (--overwrite on "
                                  "the command line) to replace it")

    def __enter__(self) -> DualBandWriter:
        self._refuse_existing()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._file = h5py.File(self._tmp, "w")
            n, k = self.num_users, self.num_subcarriers
            chunk_rows = max(1, min(n, 4096))
            names = [name for name in DATASETS if self.with_eve or name not in _EVE_FIELDS]
            for name in names:
                cols = 3 if name.endswith("position_m") else k
                self._file.create_dataset(DATASETS[name], shape=(n, cols), dtype=_DTYPES[name],
                                          chunks=(chunk_rows, cols))
            for ds_path, dtype in self.extra_datasets.items():
                self._file.create_dataset(ds_path, shape=(n,), dtype=dtype)
            for key, value in self.attrs.items():
                self._file.attrs[key] = value
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, start: int, **arrays: Any) -> None:
        """Write rows ``start:start+m`` of every dataset (keyword = :data:`DATASETS` field name or
        an extra dataset path); complex input is stored as complex64, positions as float64."""
        if self._file is None:
            raise RuntimeError("DualBandWriter.write called outside its 'with' block")
        expected = {name for name in DATASETS if self.with_eve or name not in _EVE_FIELDS}
        expected |= set(self.extra_datasets)
        if set(arrays) != expected:
            raise ValueError(f"write() needs exactly the datasets {sorted(expected)}, got {sorted(arrays)}")
        converted: dict[str, np.ndarray] = {}
        m = int(np.shape(arrays["cfr_band1"])[0])
        if not (_is_int(start) and 0 <= start and start + m <= self.num_users):
            raise ValueError(f"rows {start}:{start + m} fall outside [0, {self.num_users})")
        for name, value in arrays.items():
            value = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if name in DATASETS:
                value = value.astype(_DTYPES[name], copy=False)
                cols = 3 if name.endswith("position_m") else self.num_subcarriers
                _check_array(name, value, (m, cols), f"{self.where} (rows from {start})")
            elif value.shape != (m,):
                raise ValueError(f"{self.where}: dataset {name} rows have shape {value.shape}; expected ({m},)")
            converted[name] = value
        for name, value in converted.items():
            self._file[DATASETS.get(name, name)][start:start + m] = value
        self._written[start:start + m] = True

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._discard()
            return False
        try:
            if not self._written.all():
                missing = int(np.flatnonzero(~self._written)[0])
                raise ValueError(f"{self.where}: rows from {missing} were never written; "
                                 "the file was not created")
            self._file.close()
            self._file = None
            self._refuse_existing()  # someone may have created it meanwhile
            os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self._discard()
            raise
        return False


def write_dual_band(path: str | os.PathLike, data: DualBandData, *, overwrite: bool = False) -> Path:
    """Validate ``data`` and write it to ``path`` (all-or-nothing, see :class:`DualBandWriter`)."""
    validate_data(data, str(path))
    extra_paths = {"/eve/user_index": data.extra["eve_user_index"].dtype} if (
        data.has_eve and "eve_user_index" in data.extra) else {}
    with DualBandWriter(path, num_users=data.num_users, num_subcarriers=data.num_subcarriers,
                        attrs=data.attrs, with_eve=data.has_eve, overwrite=overwrite,
                        extra_datasets=extra_paths) as writer:
        arrays = {name: getattr(data, name) for name in DATASETS
                  if data.has_eve or name not in _EVE_FIELDS}
        if extra_paths:
            arrays["/eve/user_index"] = data.extra["eve_user_index"]
        writer.write(0, **arrays)
    return Path(path)


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
    if not (_is_int(seed) and seed >= 0):
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    if not (_is_int(chunk_size) and chunk_size >= 1):
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
    if not (_is_int(users) and users >= 1):
        raise ValueError(f"users={users!r} must be a positive integer")
    attrs = synthetic_attrs(seed, eve_distance_m, num_subcarriers=num_subcarriers)
    with DualBandWriter(path, num_users=users, num_subcarriers=num_subcarriers, attrs=attrs,
                        with_eve=True, overwrite=overwrite) as writer:
        for start, chunk in _synthetic_chunks(users, seed, eve_distance_m, chunk_size, num_subcarriers,
                                              progress):
            writer.write(start, **chunk)
    return Path(path)


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
    if not (_is_int(max_users) and max_users >= 0):
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


# ---------------------------------------------------------------------------------------------
# Normalisation (002 (13)-(15)) and the LightningDataModule
# ---------------------------------------------------------------------------------------------


class MinMaxNormalizer:
    """Per-dimension min-max normalisation of realised features, 002 (14)-(15), one per band.

    ``x = (H' - H'_min) / (H'_max - H'_min)`` with the extremes taken over the training split only
    (002 Sec. V-B); a constant dimension (max = min) is only shifted.

    ``minimum``/``maximum``: ``[2, 2K]`` float32, row 0 Band1, row 1 Band2.
    """

    def __init__(self, minimum: torch.Tensor, maximum: torch.Tensor) -> None:
        minimum = torch.as_tensor(minimum, dtype=torch.float32)
        maximum = torch.as_tensor(maximum, dtype=torch.float32)
        if minimum.ndim != 2 or minimum.shape[0] != 2 or minimum.shape != maximum.shape:
            raise ValueError(f"minimum {tuple(minimum.shape)} and maximum {tuple(maximum.shape)} must "
                             "both have shape [2, 2K]")
        if not bool((maximum >= minimum).all()):
            raise ValueError("maximum must be >= minimum in every dimension")
        self.minimum, self.maximum = minimum, maximum

    @classmethod
    def fit(cls, features_band1: torch.Tensor, features_band2: torch.Tensor) -> MinMaxNormalizer:
        """Extremes over the rows of ``[N, 2K]`` training features of each band (002 (14))."""
        stacked = [torch.as_tensor(f, dtype=torch.float32) for f in (features_band1, features_band2)]
        return cls(torch.stack([f.amin(dim=0) for f in stacked]), torch.stack([f.amax(dim=0) for f in stacked]))

    @property
    def feature_dim(self) -> int:
        return int(self.minimum.shape[1])

    def _band(self, band: int) -> tuple[torch.Tensor, torch.Tensor]:
        if band not in (1, 2):
            raise ValueError(f"band={band!r} must be 1 or 2")
        lo = self.minimum[band - 1]
        span = self.maximum[band - 1] - lo
        return lo, torch.where(span > 0, span, torch.ones_like(span))

    def transform(self, features: torch.Tensor, band: int) -> torch.Tensor:
        """002 (15): ``[..., 2K]`` realised features of ``band`` -> normalised features."""
        lo, span = self._band(band)
        return (features - lo.to(features)) / span.to(features)

    def inverse_transform(self, x: torch.Tensor, band: int) -> torch.Tensor:
        """Undo :meth:`transform` (e.g. on KGNet's output ``x_hat_2`` with ``band=2``)."""
        lo, span = self._band(band)
        return x * span.to(x) + lo.to(x)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"minimum": self.minimum.clone(), "maximum": self.maximum.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> MinMaxNormalizer:
        return cls(state["minimum"], state["maximum"])


def _derived_generator(seed: int, *stream: Any) -> torch.Generator:
    """A generator for one purpose (split, noise, shuffle, ...), derived from ``seed`` by hashing."""
    digest = hashlib.sha256(repr((int(seed), *stream)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def cross_dataset_noisy_count(cross_dataset: int, num_train: int) -> int:
    """Training samples at 0 dB in cross dataset ``cross_dataset`` (002 Sec. VII-C-2).

    002 mixes 80,000 training samples as (0 dB, noise-free) = (80k, 0), (60k, 20k), (40k, 40k),
    (20k, 60k), (0, 80k) for cross datasets 1-5, i.e. a 0 dB fraction of ``(5 - k) / 4``; scaled here
    to ``num_train``.
    """
    if not (_is_int(cross_dataset) and 1 <= cross_dataset <= 5):
        raise ValueError(f"cross_dataset={cross_dataset!r} must be an integer in 1..5 (002 Sec. VII-C-2)")
    return round(num_train * (5 - cross_dataset) / 4)


class DualBandDataModule(LightningDataModule):
    """Band1/Band2 feature pairs ``(x1, x2)`` for KGNet (002 Sec. V), float32 ``[B, 2K]``.

    Args:
        h5_path: dual-band HDF5 file; ``None`` = the synthetic indoor set in memory (no file).
        generate_if_missing: if ``h5_path`` does not exist, write the synthetic set there.
        synthetic_users: users of the synthetic set (002: 100,000).
        seed: synthetic positions, split, noise and shuffling all derive from it.
        train_fraction: share of users in the training side (002: 80 %); the rest is the test split,
            untouched until ``test``.
        val_fraction: share of the training side held out (seeded) as the validation split, on which
            checkpoints and early stopping are chosen (002 has no validation split; ours: 10 %).
        batch_size: 002 Table I: 128.
        train_snr_db: SNR of the AWGN added to the training CFRs of both bands (``None`` = noise-free).
        cross_dataset: 1-5, the cross datasets of 002 Sec. VII-C-2 (0 dB / noise-free mixes); not
            together with ``train_snr_db``.
        test_snr_db: SNRs for the evaluation sweeps (default 0, 5, ..., 40 dB, 002 Fig. 5), read by
            callbacks through :meth:`noisy_test_set`.
        eve_distance_m: Eve's distance from Bob for a generated synthetic set (002 Fig. 11: 0.15 m).
        num_workers: DataLoader workers.
        num_subcarriers: ``K`` of a generated synthetic set (002: 64).

    Noise is added to the complex CFRs (SNR relative to each sample's mean subcarrier power, both
    bands independently) before realisation (002 (13)) and min-max normalisation (002 (14)-(15))
    fitted on the training split as trained on; the normaliser is in :meth:`state_dict`, so it
    travels with checkpoints. Batches are drawn by index lists (no per-sample Python).
    """

    def __init__(
        self,
        h5_path: str | None = None,
        generate_if_missing: bool = True,
        synthetic_users: int = 100_000,
        seed: int = 0,
        train_fraction: float = 0.8,
        val_fraction: float = 0.1,
        batch_size: int = 128,
        train_snr_db: float | None = None,
        cross_dataset: int | None = None,
        test_snr_db: list[float] | None = None,
        eve_distance_m: float = PAPER_002_EVE_DISTANCE_M,
        num_workers: int = 0,
        num_subcarriers: int = PAPER_002_NUM_SUBCARRIERS,
    ) -> None:
        super().__init__()
        if not (_is_int(synthetic_users) and synthetic_users >= 2):
            raise ValueError(f"synthetic_users={synthetic_users!r} must be an integer >= 2")
        if not (_is_int(seed) and seed >= 0):
            raise ValueError(f"seed={seed!r} must be a non-negative integer")
        if not (isinstance(train_fraction, (int, float)) and 0.0 < train_fraction < 1.0):
            raise ValueError(f"train_fraction={train_fraction!r} must lie in (0, 1)")
        if not (_is_real(val_fraction) and 0.0 < val_fraction < 1.0):
            raise ValueError(f"val_fraction={val_fraction!r} must lie in (0, 1)")
        if not (_is_int(batch_size) and batch_size >= 1):
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if train_snr_db is not None and not math.isfinite(train_snr_db):
            raise ValueError(f"train_snr_db={train_snr_db!r} must be finite or None")
        if cross_dataset is not None:
            cross_dataset_noisy_count(cross_dataset, 1)  # validates 1..5
            if train_snr_db is not None:
                raise ValueError(f"give train_snr_db ({train_snr_db}) or cross_dataset ({cross_dataset}), "
                                 "not both")
        if test_snr_db is not None and not all(math.isfinite(s) for s in test_snr_db):
            raise ValueError(f"test_snr_db={test_snr_db!r} must hold finite SNRs")
        if not (_is_int(num_workers) and num_workers >= 0):
            raise ValueError(f"num_workers={num_workers!r} must be a non-negative integer")
        if not (_is_int(num_subcarriers) and num_subcarriers >= 1):
            raise ValueError(f"num_subcarriers={num_subcarriers!r} must be a positive integer")
        self.save_hyperparameters()
        self.h5_path = h5_path
        self.generate_if_missing = generate_if_missing
        self.synthetic_users = synthetic_users
        self.seed = seed
        self.train_fraction = float(train_fraction)
        self.val_fraction = float(val_fraction)
        self.batch_size = batch_size
        self.train_snr_db = train_snr_db
        self.cross_dataset = cross_dataset
        self.test_snr_db = [float(s) for s in (test_snr_db if test_snr_db is not None else range(0, 41, 5))]
        self.eve_distance_m = eve_distance_m
        self.num_workers = num_workers
        self.num_subcarriers = num_subcarriers
        self.normalizer: MinMaxNormalizer | None = None
        self.data_attrs: dict[str, Any] = {}
        self._feature_dim: int | None = None
        self._loaded = False

    # -- data preparation --------------------------------------------------------------------

    @property
    def feature_dim(self) -> int:
        """``2K``, the KGNet input/output width (available before ``setup`` for model linking)."""
        if self._feature_dim is None:
            k = self.num_subcarriers
            if self.h5_path is not None and Path(self.h5_path).is_file():
                with h5py.File(self.h5_path, "r") as handle:
                    k = int(handle.attrs.get("num_subcarriers", k))
            self._feature_dim = 2 * k
        return self._feature_dim

    def prepare_data(self) -> None:
        """Write the synthetic file if ``h5_path`` is missing and ``generate_if_missing``."""
        if self.h5_path is None or Path(self.h5_path).exists():
            return
        if not self.generate_if_missing:
            raise FileNotFoundError(
                f"{self.h5_path} does not exist and generate_if_missing is false; build it with "
                f"'python -m datamodules.dualband generate --out {self.h5_path}' or 'from-deepmimo'")
        generate_synthetic(self.h5_path, users=self.synthetic_users, seed=self.seed,
                           eve_distance_m=self.eve_distance_m, num_subcarriers=self.num_subcarriers)

    def _load(self) -> DualBandData:
        if self.h5_path is None:
            return synthetic_dual_band(self.synthetic_users, self.seed, eve_distance_m=self.eve_distance_m,
                                       num_subcarriers=self.num_subcarriers)
        try:
            self.prepare_data()
        except FileExistsError:  # another process wrote it meanwhile: use theirs
            pass
        data = read_dual_band(self.h5_path)
        if data.attrs["source"] == SOURCE_SYNTHETIC and (
            data.num_users != self.synthetic_users or int(data.attrs["seed"]) != self.seed
        ):
            warnings.warn(f"{self.h5_path} holds {data.num_users} synthetic users from seed "
                          f"{data.attrs['seed']}; the file is used as it is (synthetic_users="
                          f"{self.synthetic_users}, seed={self.seed} only apply when it is generated)",
                          stacklevel=2)
        return data

    def setup(self, stage: str | None = None) -> None:
        if self._loaded:
            return
        data = self._load()
        self.data_attrs = dict(data.attrs)
        n = data.num_users
        num_side = round(self.train_fraction * n)
        if not 1 <= num_side <= n - 1:
            raise ValueError(f"train_fraction={self.train_fraction} leaves an empty split of {n} users")
        num_val = round(self.val_fraction * num_side)
        if not 1 <= num_val <= num_side - 1:
            raise ValueError(f"val_fraction={self.val_fraction} leaves an empty train or validation split of the "
                             f"{num_side} training-side users")
        perm = torch.randperm(n, generator=_derived_generator(self.seed, "split"))
        side_index, self.test_index = perm[:num_side], perm[num_side:]
        cfr1 = torch.from_numpy(data.cfr_band1)
        cfr2 = torch.from_numpy(data.cfr_band2)
        position = torch.from_numpy(data.position_m)
        self.test_cfr_band1, self.test_cfr_band2 = cfr1[self.test_index], cfr2[self.test_index]
        self.test_positions_m = position[self.test_index]
        eve_all = (torch.from_numpy(data.eve_cfr_band1), torch.from_numpy(data.eve_cfr_band2)) if data.has_eve \
            else None
        if data.has_eve:
            self.eve_cfr_band1, self.eve_cfr_band2 = eve_all[0][self.test_index], eve_all[1][self.test_index]
            self.eve_positions_m = torch.from_numpy(data.eve_position_m)[self.test_index]
        else:
            self.eve_cfr_band1 = self.eve_cfr_band2 = self.eve_positions_m = None
        num_train = num_side  # noise treatment over the whole training side, split below

        # Training inputs as trained on: noise-free, at train_snr_db, or a cross dataset.
        h1, h2 = cfr1[side_index], cfr2[side_index]
        self.train_noisy_mask = torch.zeros(num_train, dtype=torch.bool)
        if self.train_snr_db is not None:
            self.train_noisy_mask[:] = True
        elif self.cross_dataset is not None:
            count = cross_dataset_noisy_count(self.cross_dataset, num_train)
            chosen = torch.randperm(num_train, generator=_derived_generator(self.seed, "cross"))[:count]
            self.train_noisy_mask[chosen] = True
        if bool(self.train_noisy_mask.any()):
            snr = 0.0 if self.cross_dataset is not None else self.train_snr_db
            gen = _derived_generator(self.seed, "train-noise")
            mask = self.train_noisy_mask
            h1, h2 = h1.clone(), h2.clone()
            h1[mask] = add_awgn(h1[mask], snr, gen)
            h2[mask] = add_awgn(h2[mask], snr, gen)
        # The validation split is cut from the training side after its noise treatment, so it
        # mirrors what is trained on; the normaliser is fitted on the remaining training users only.
        f1, f2 = cfr_to_features(h1).float(), cfr_to_features(h2).float()
        val_pos = torch.randperm(num_side, generator=_derived_generator(self.seed, "val-split"))[:num_val]
        is_val = torch.zeros(num_side, dtype=torch.bool)
        is_val[val_pos] = True
        self.val_index, self.train_index = side_index[is_val], side_index[~is_val]
        self.val_features_band1, self.val_features_band2 = f1[is_val], f2[is_val]
        self.train_features_band1, self.train_features_band2 = f1[~is_val], f2[~is_val]
        self.val_noisy_mask, self.train_noisy_mask = self.train_noisy_mask[is_val], self.train_noisy_mask[~is_val]
        self.train_cfr_band1, self.train_cfr_band2 = cfr1[self.train_index], cfr2[self.train_index]
        self.train_positions_m = position[self.train_index]
        self.val_cfr_band1, self.val_cfr_band2 = cfr1[self.val_index], cfr2[self.val_index]
        self.val_eve_cfr = None if eve_all is None else (eve_all[0][self.val_index], eve_all[1][self.val_index])
        if self.normalizer is None:  # a normaliser from a checkpoint wins
            self.normalizer = MinMaxNormalizer.fit(self.train_features_band1, self.train_features_band2)
        self._feature_dim = 2 * data.num_subcarriers
        self._loaded = True

    # -- normalised tensors --------------------------------------------------------------------

    def _check_ready(self) -> MinMaxNormalizer:
        if not self._loaded or self.normalizer is None:
            raise RuntimeError("DualBandDataModule.setup() must run first")
        return self.normalizer

    def _features(self, cfr: torch.Tensor, band: int) -> torch.Tensor:
        return self._check_ready().transform(cfr_to_features(cfr).float(), band)

    @property
    def train_x1(self) -> torch.Tensor:
        return self._check_ready().transform(self.train_features_band1, 1)

    @property
    def train_x2(self) -> torch.Tensor:
        return self._check_ready().transform(self.train_features_band2, 2)

    @property
    def val_x1(self) -> torch.Tensor:
        return self._check_ready().transform(self.val_features_band1, 1)

    @property
    def val_x2(self) -> torch.Tensor:
        return self._check_ready().transform(self.val_features_band2, 2)

    @property
    def test_x1(self) -> torch.Tensor:
        return self._features(self.test_cfr_band1, 1)

    @property
    def test_x2(self) -> torch.Tensor:
        return self._features(self.test_cfr_band2, 2)

    @property
    def eve_x1(self) -> torch.Tensor | None:
        """Eve's normalised Band1 features, row i next to test-split Bob i (None without Eve)."""
        return None if self.eve_cfr_band1 is None else self._features(self.eve_cfr_band1, 1)

    @property
    def eve_x2(self) -> torch.Tensor | None:
        """Eve's normalised Band2 features, row i next to test-split Bob i (None without Eve)."""
        return None if self.eve_cfr_band2 is None else self._features(self.eve_cfr_band2, 2)

    def _noise_generator(self, kind: str, snr_db: float, generator: torch.Generator | None):
        if not math.isfinite(snr_db):
            raise ValueError(f"snr_db={snr_db!r} must be finite")
        return generator if generator is not None else _derived_generator(self.seed, kind, float(snr_db))

    def noisy_test_set(self, snr_db: float, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised test-split ``(x1, x2)`` with AWGN at ``snr_db`` on both bands (002 Fig. 5).

        Without ``generator`` the noise is derived from ``seed`` and ``snr_db`` (repeatable).
        """
        self._check_ready()
        gen = self._noise_generator("test-noise", snr_db, generator)
        return (self._features(add_awgn(self.test_cfr_band1, snr_db, gen), 1),
                self._features(add_awgn(self.test_cfr_band2, snr_db, gen), 2))

    def noisy_eve_set(self, snr_db: float, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Eve's normalised ``(x1, x2)`` with AWGN at ``snr_db`` (002 Fig. 12); None without Eve."""
        self._check_ready()
        if self.eve_cfr_band1 is None:
            return None
        gen = self._noise_generator("eve-noise", snr_db, generator)
        return (self._features(add_awgn(self.eve_cfr_band1, snr_db, gen), 1),
                self._features(add_awgn(self.eve_cfr_band2, snr_db, gen), 2))

    def evaluation_set(self, split: str, snr_db: float | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Normalised ``(x1, x2, eve_x2)`` of the ``"val"`` or ``"test"`` split (``eve_x2`` None without
        Eve); with ``snr_db``, AWGN on both bands and Eve's (repeatable, derived from the seed).

        ``"val"`` is cut from the training side (as trained on: its noise treatment included, unless
        ``snr_db`` asks for a noisy copy of its clean CFRs); ``"test"`` is the untouched test split.
        """
        self._check_ready()
        if split == "test":
            if snr_db is None:
                return self.test_x1, self.test_x2, self.eve_x2
            eve = self.noisy_eve_set(snr_db)
            return (*self.noisy_test_set(snr_db), None if eve is None else eve[1])
        if split != "val":
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        if snr_db is None:
            eve = None if self.val_eve_cfr is None else self._features(self.val_eve_cfr[1], 2)
            return self.val_x1, self.val_x2, eve
        gen = self._noise_generator("val-noise", snr_db, None)
        x1 = self._features(add_awgn(self.val_cfr_band1, snr_db, gen), 1)
        x2 = self._features(add_awgn(self.val_cfr_band2, snr_db, gen), 2)
        eve = None if self.val_eve_cfr is None else self._features(add_awgn(self.val_eve_cfr[1], snr_db, gen), 2)
        return x1, x2, eve

    # -- loaders -----------------------------------------------------------------------------

    def _loader(self, x1: torch.Tensor, x2: torch.Tensor, shuffle: bool) -> DataLoader:
        dataset = TensorDataset(x1, x2)
        base = (RandomSampler(dataset, generator=_derived_generator(self.seed, "shuffle"))
                if shuffle else SequentialSampler(dataset))
        # batch_size=None + a BatchSampler as sampler: each fetch indexes the tensors with a list
        # of indices, so a batch is one gather, not batch_size __getitem__ calls plus collation.
        return DataLoader(dataset, sampler=BatchSampler(base, self.batch_size, drop_last=False),
                          batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_x1, self.train_x2, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The validation split (from the training side; never the test split)."""
        return self._loader(self.val_x1, self.val_x2, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_x1, self.test_x2, shuffle=False)

    # -- checkpoint state --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        if self.normalizer is None:
            return {}
        return {"normalizer": self.normalizer.state_dict(), "feature_dim": self.normalizer.feature_dim}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        normalizer = MinMaxNormalizer.from_state_dict(state_dict["normalizer"])
        if self._loaded and normalizer.feature_dim != self.feature_dim:
            raise ValueError(f"checkpoint normaliser has feature_dim {normalizer.feature_dim}, the data "
                             f"has {self.feature_dim}")
        self.normalizer = normalizer


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated integers") from err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m datamodules.dualband",
                                     description="Build dual-band CFR files for KGNet (paper 002).")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="synthetic indoor room (embedded default)")
    gen.add_argument("--out", required=True, help="output HDF5 path, e.g. data/indoor.h5")
    gen.add_argument("--users", type=int, default=100_000, help="number of users (002: 100000)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--eve-distance-m", type=float, default=PAPER_002_EVE_DISTANCE_M)
    gen.add_argument("--chunk-size", type=int, default=8192)
    gen.add_argument("--overwrite", action="store_true", help="replace an existing file")
    dm = sub.add_parser("from-deepmimo", help="export two DeepMIMO 4 scenarios (e.g. I1 2.4/2.5 GHz)")
    dm.add_argument("--scenario-folder", required=True, help="folder holding <name>/params.json")
    dm.add_argument("--band1", required=True, help="Band1 (uplink) scenario, e.g. i1_2p4")
    dm.add_argument("--band2", required=True, help="Band2 (downlink) scenario, e.g. i1_2p5")
    dm.add_argument("--out", required=True)
    dm.add_argument("--max-users", type=int, default=100_000, help="first N users (0 = all; 002: 100000)")
    dm.add_argument("--tx-set", type=int, default=None, help="transmitter set id (default: first)")
    dm.add_argument("--tx-index", type=int, default=0, help="transmitter within the set (default 0)")
    dm.add_argument("--rx-sets", type=_int_list, default=None,
                    help="comma-separated receiver set ids (default: all receive-only sets)")
    dm.add_argument("--num-subcarriers", type=int, default=PAPER_002_NUM_SUBCARRIERS)
    dm.add_argument("--bandwidth-hz", type=float, default=PAPER_002_BANDWIDTH_HZ)
    dm.add_argument("--num-paths", type=int, default=PAPER_002_NUM_PATHS)
    dm.add_argument("--eve-distance-m", type=float, default=PAPER_002_EVE_DISTANCE_M)
    dm.add_argument("--no-eve", action="store_true", help="do not store Eve")
    dm.add_argument("--seed", type=int, default=0, help="seed of Eve's random directions")
    dm.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            out = generate_synthetic(args.out, users=args.users, seed=args.seed, overwrite=args.overwrite,
                                     eve_distance_m=args.eve_distance_m, chunk_size=args.chunk_size)
        else:
            out = export_deepmimo(
                args.scenario_folder, args.band1, args.band2, args.out, max_users=args.max_users,
                tx_set=args.tx_set, tx_index=args.tx_index, rx_sets=args.rx_sets,
                num_subcarriers=args.num_subcarriers, bandwidth_hz=args.bandwidth_hz,
                num_paths=args.num_paths, eve_distance_m=None if args.no_eve else args.eve_distance_m,
                seed=args.seed, overwrite=args.overwrite)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = read_dual_band(out)
    print(f"wrote {out}: {data.num_users} users x {data.num_subcarriers} subcarriers, "
          f"source {data.attrs['source']}, Eve {'stored' if data.has_eve else 'not stored'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
