"""The dual-band CFR file of KGNet (paper 002): its in-memory form, validation, reader and writers.

File layout (docs/architecture.md, "Data contracts"), one file per environment:

- ``/band1/cfr`` ``[N, K]`` complex64: Band1 (uplink, Bob -> Alice) CFR per user;
- ``/band2/cfr`` ``[N, K]`` complex64: Band2 (downlink, Alice -> Bob) CFR;
- ``/users/position_m`` ``[N, 3]`` float64;
- optional Eve: ``/eve/band1/cfr``, ``/eve/band2/cfr`` ``[N, K]`` complex64 and ``/eve/position_m``
  ``[N, 3]`` float64, row ``i`` being the eavesdropper next to user ``i`` (002 Sec. VII-C);
- attributes ``band1_carrier_hz``, ``band2_carrier_hz``, ``bandwidth_hz``, ``num_subcarriers``,
  ``source`` (``synthetic-indoor`` or ``deepmimo:<band1 scenario>+<band2 scenario>``),
  ``generator_version`` and ``seed``, plus free-form provenance attributes.

Files are written to a temporary file in the target folder and moved into place with
``os.replace`` only once complete, so an interrupted write never damages an existing file; an
existing file is only replaced with ``overwrite=True``. The generators live in
:mod:`channeldata.synthetic` and :mod:`channeldata.deepmimo`; the DataModule that reads these files in
:mod:`datamodules.dualband`.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

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


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    return is_int(value) or isinstance(value, (float, np.floating))


def validate_attrs(attrs: dict[str, Any], where: str, num_subcarriers: int | None = None) -> None:
    """Check the required attributes; ValueError naming the attribute and what is allowed."""
    for name in REQUIRED_ATTRS:
        if name not in attrs:
            raise ValueError(f"{where}: missing attribute '{name}' (required: {', '.join(REQUIRED_ATTRS)})")
    for name in ("band1_carrier_hz", "band2_carrier_hz", "bandwidth_hz"):
        value = attrs[name]
        if not (is_real(value) and math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"{where}: attribute '{name}'={value!r} must be a finite positive number (Hz)")
    k = attrs["num_subcarriers"]
    if not (is_int(k) and int(k) >= 1):
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
    if not is_int(attrs["seed"]):
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
        values = np.asarray(array)
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            raise ValueError(f"{where}: dataset {path} holds NaN or Inf (first at row {row})")
        if np.iscomplexobj(values) and values.size:
            big = np.maximum(np.abs(values.real), np.abs(values.imag)) > MAX_ABS_CFR
            if big.any():
                row = int(np.argwhere(big)[0][0])
                raise ValueError(f"{where}: dataset {path} holds values of magnitude above {MAX_ABS_CFR:g} (first at "
                                 f"row {row}); the min-max normalisation and powers would overflow float32")


#: largest |Re|, |Im| accepted in a CFR dataset: squares and min-max spans stay far inside float32
MAX_ABS_CFR = 1e15


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
    if path.is_dir():
        raise IsADirectoryError(f"dual-band file {where} is a directory; give the path of an HDF5 file")
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
        if not (is_int(num_users) and num_users >= 1):
            raise ValueError(f"num_users={num_users!r} must be a positive integer")
        validate_attrs(attrs, self.where, num_subcarriers=num_subcarriers)
        self.num_users, self.num_subcarriers = int(num_users), int(num_subcarriers)
        self.attrs, self.with_eve, self.overwrite = dict(attrs), with_eve, overwrite
        self.extra_datasets = dict(extra_datasets or {})
        self._written = np.zeros(self.num_users, dtype=bool)
        self._tmp: Path | None = None
        self._file: h5py.File | None = None

    def _refuse_existing(self) -> None:
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.where} is a directory; give a file name for the HDF5 output "
                                    "(a directory is never replaced, even with overwrite)")
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.where} already exists; pass overwrite=True (--overwrite on "
                                  "the command line) to replace it")

    def __enter__(self) -> DualBandWriter:
        self._refuse_existing()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
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

    def _remove_stale_temporaries(self) -> None:
        """Remove (and report) temporary files an interrupted or killed earlier write of this path left."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                stale.unlink()
            except OSError:
                continue
            print(f"warning: removed {stale}, a temporary file left by an interrupted earlier write of {self.where}",
                  file=sys.stderr)

    def write(self, start: int, **arrays: Any) -> None:
        """Write rows ``start:start+m`` of every dataset (keyword = :data:`DATASETS` field name or
        an extra dataset path); complex input is stored as complex64, positions as float64."""
        if self._file is None:
            raise RuntimeError("DualBandWriter.write called outside its 'with' block")
        _check_stop()
        expected = {name for name in DATASETS if self.with_eve or name not in _EVE_FIELDS}
        expected |= set(self.extra_datasets)
        if set(arrays) != expected:
            raise ValueError(f"write() needs exactly the datasets {sorted(expected)}, got {sorted(arrays)}")
        converted: dict[str, np.ndarray] = {}
        m = int(np.shape(arrays["cfr_band1"])[0])
        if not (is_int(start) and 0 <= start and start + m <= self.num_users):
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
            _check_stop()  # a stop request never ends in a committed file
            if not self._written.all():
                missing = int(np.flatnonzero(~self._written)[0])
                raise ValueError(f"{self.where}: rows from {missing} were never written; "
                                 "the file was not created")
            self._file.close()
            self._file = None
            self._refuse_existing()  # someone may have created it meanwhile
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(self._tmp, 0o666 & ~mask)  # mkstemp's 0600 -> what the user's umask gives a new file
            os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self._discard()
            raise
        return False


_STOP = threading.Event()


def request_stop() -> None:
    """Ask every writer to abandon its file at its next step (set from a signal handler: an exception
    raised by the handler itself can be swallowed when it lands inside a destructor or C callback)."""
    _STOP.set()


def clear_stop() -> None:
    """Forget a stop request (the command line calls it when its command ends, so the next command in
    the same process writes normally)."""
    _STOP.clear()


def _check_stop() -> None:
    if _STOP.is_set():
        raise KeyboardInterrupt("stop requested")


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


