"""KGNet FDD key generation (paper 002) as a key-agreement system.

The dual-band HDF5 users of the config's data module are the probes (the test split for the key run, the
validation split for calibration, as the config splits them). Alice's features are the band map of her Band-1
features (the trained KGNet: a checkpoint's module or a ``.pt2`` export; ``no_mapping``: her Band-1 features
themselves, FDD without mapping), Bob's his Band-2 features, Eve's her own Band-2 features (the data set's Eve,
0.15 m away); GDQG quantiser (002 Algorithm 1). No SKR closed form: the Gaussian mutual information
``I(x_a; x_b) - I(x_a; x_e)`` of the features' sample covariance is reported, and Eve's leak is a plug-in
estimate on quantised symbols.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from keygen.canonical import gaussian_mi_bits
from keygen.pipeline import Observations

from .system import System

__all__ = ["KGNetSystem", "band_map_from_export", "band_map_from_module", "check_kgnet_export"]

#: Alice's normalised Band-1 features ``[n, 2K]`` -> her estimate of the normalised Band-2 features
BandMap = Callable[[torch.Tensor], torch.Tensor]


def band_map_from_module(module: torch.nn.Module) -> BandMap:
    """The band map of a KGNet-family module whose weights are loaded (in chunks of 4096 users)."""
    module.eval()

    def run(x1: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([module.net(c.float()) for c in torch.split(x1, 4096)])

    return run


def band_map_from_export(program, datamodule) -> BandMap:
    """The band map of a KGNet ``.pt2`` export (raw Band-1 CFR in, raw Band-2 CFR out), wrapped in the data
    module's realisation and normalisation so that it maps normalised features as the module does."""
    net = program.module()

    def run(x1: torch.Tensor) -> torch.Tensor:
        norm = datamodule.normalizer
        f1 = norm.inverse_transform(x1.float(), 1)
        k = f1.shape[-1] // 2
        with torch.no_grad():
            h2 = torch.cat([net(c) for c in torch.split(torch.stack((f1[..., :k], f1[..., k:]), -1), 4096)])
        return norm.transform(torch.cat((h2[..., 0], h2[..., 1]), -1), 2)

    return run


def check_kgnet_export(meta: dict[str, Any], model, datamodule, path: str) -> None:
    """Refuse a ``.pt2`` that is not a band map of the config's net on the config's data (family, net class,
    subcarriers, carriers). One ValueError naming the file and both values."""
    net = type(model.net).__name__
    if meta.get("family") != "kgnet":
        what = meta.get("scenario") or meta.get("family")
        raise ValueError(f"--export {path!r} holds a {what!r} net; the config builds a KGNet-family band map ({net})")
    if meta.get("net") != net:
        raise ValueError(f"--export {path!r} holds a {meta.get('net')} band map; the config builds a {net}")
    k = datamodule.feature_dim // 2
    if meta.get("num_subcarriers") != k:
        raise ValueError(f"--export {path!r} maps {meta.get('num_subcarriers')} subcarriers; the config's data has {k}")
    if datamodule.h5_path is not None:
        import h5py

        with h5py.File(datamodule.h5_path, "r") as f:
            attrs = {key: f.attrs.get(key) for key in ("band1_carrier_hz", "band2_carrier_hz")}
        for key, here in attrs.items():
            saved = meta.get(key)
            if saved is not None and here is not None and float(saved) != float(here):
                raise ValueError(f"--export {path!r} was trained with {key} = {saved}; the config's data has {here}")


class KGNetSystem(System):
    """KGNet FDD key generation (002) on the config's dual-band data; each user is one probe.

    Args:
        datamodule: the config's :class:`datamodules.dualband.DualBandDataModule` (its file must exist; its seed
            and split fractions as in training). A checkpoint's training-split normaliser is loaded into it by the
            caller.
        design: ``"kgnet"`` (needs ``band_map``) or ``"no_mapping"`` (Alice uses her Band-1 features directly).
        band_map, source: the trained band map and where it came from (``{"checkpoint": path}`` or
            ``{"export": path}``).
        point: ``{"snr_db": value}``: AWGN on both bands and Eve's (``None`` = noise-free; default 30 dB).
    """

    name = "kgnet"
    DESIGNS = ("kgnet", "no_mapping")
    DEFAULT_DESIGN = "kgnet"
    POINT = {"snr_db": 30.0}
    default_quantiser = {"method": "gdqg", "levels": 2, "epsilon": 0.1, "code": "binary"}
    default_probes = None  # every user of the split

    @classmethod
    def check_point(cls, point: dict[str, Any] | None) -> dict[str, Any]:
        """The operating point: :attr:`POINT` overridden by ``point`` (fields: ``snr_db``, a number or None)."""
        point = dict(point or {})
        for k in point:
            if k not in cls.POINT:
                raise ValueError(f"unknown point field {k!r}; allowed: {', '.join(cls.POINT)}")
        snr = point.get("snr_db", cls.POINT["snr_db"])
        if snr is not None and (isinstance(snr, bool) or not isinstance(snr, (int, float)) or not math.isfinite(snr)):
            raise ValueError(f"point field snr_db = {snr!r} is not allowed; give a finite number (dB) or null "
                             "(noise-free)")
        return {"snr_db": None if snr is None else float(snr)}

    def __init__(self, datamodule, design: str = "kgnet", *, band_map: BandMap | None = None,
                 source: dict[str, Any] | None = None, point: dict[str, Any] | None = None):
        if design not in self.DESIGNS:
            raise ValueError(f"design = {design!r} is not allowed for kgnet; choose one of {self.DESIGNS}")
        if (design == "kgnet") != (band_map is not None):
            raise ValueError("design 'kgnet' needs a trained band map (--ckpt_path or --export), and only it")
        self.snr_db = self.check_point(point)["snr_db"]
        self.design, self.source, self.band_map = design, dict(source or {}), band_map
        self.data = datamodule.h5_path
        dm = datamodule
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "file used as it is": expected here
            dm.prepare_data()
            dm.setup("fit")
            dm.setup("test")
        self.sets = {}
        for split in ("val", "test"):
            x1, x2, xe = dm.evaluation_set(split, self.snr_db)
            if xe is None:
                raise ValueError(f"the data {self.data!r} has no Eve (/eve/...); the kgnet system needs Eve's CFRs")
            self.sets[split] = (x1, x2, xe)

    def _features(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x1, x2, xe = self.sets[split]
        xa = self.band_map(x1) if self.band_map is not None else x1
        return (xa.double().numpy(), x2.double().numpy(), xe.double().numpy())

    def split_size(self, split: str) -> int:
        return int(self.sets[split][0].shape[0])

    def observations(self, n: int, seed: int) -> Observations:
        """The first ``n`` users of the test split (``seed`` even) or of the validation split (``seed`` odd:
        calibration). Users are fixed, so ``n`` is capped at the split size."""
        split = "val" if seed % 2 else "test"
        a, b, e = self._features(split)
        if n > a.shape[0]:
            raise ValueError(f"{n} probes are more than the {a.shape[0]} users of the {split} split of {self.data}")
        return Observations(a[:n], b[:n], e[:n], {"method": "gdqg"})

    def skr_bound(self) -> dict[str, Any]:
        """Gaussian MI estimate ``I(x_a; x_b) - I(x_a; x_e)`` of the test split (no closed form), with the
        spread over 5 disjoint batches as its uncertainty. The features are real (real and imaginary parts of the
        CFR as separate coordinates), so the real-Gaussian formula applies: half the complex one (up to
        commit 82db855 the complex formula doubled this estimate)."""
        a, b, e = self._features("test")

        def gmi(x, y):
            z = np.concatenate([x, y], 1)
            z = z - z.mean(0)
            return gaussian_mi_bits(z.T @ z / z.shape[0], x.shape[1], y.shape[1], field="real")

        vals = [gmi(a[p], b[p]) - gmi(a[p], e[p]) for p in np.array_split(np.arange(a.shape[0]), 5)]
        return {"skr_bound_bits": float(np.mean(vals)), "skr_bound_std": float(np.std(vals, ddof=1) / math.sqrt(5)),
                "kind": "Gaussian MI estimate I(x_a;x_b) - I(x_a;x_e) from sample covariances (not a bound "
                        "for non-Gaussian features; batch-mean standard error given)"}

    def describe(self) -> dict[str, Any]:
        return {"system": "kgnet", "design": "kgnet" if self.design == "kgnet" else "no-mapping", "data": self.data,
                "checkpoint": self.source.get("checkpoint"),
                **({"export": self.source["export"]} if "export" in self.source else {}),
                "snr_db": self.snr_db, "test_users": self.split_size("test"),
                "calibration_users": self.split_size("val")}
