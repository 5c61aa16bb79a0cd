"""End-to-end key agreement: observations -> quantisation -> reconciliation -> privacy amplification -> report.

``python -m keygen.agree --system irs --design water_filling --probes 20000 --json report.json``

A *system adapter* (:class:`System`) turns a physical model into per-probe observations of Alice, Bob
and Eve and states the SKR bound; everything after that (:func:`run_agreement`) is the same for every
system and uses only the numpy/scipy stages of :mod:`keygen` (quantise, reconcile, entropy, privacy).
The adapters themselves may use torch and the physics/model code (simulation side only).

Adapters:

* ``irs`` (:class:`IRSSystem`, papers 000/001): Monte-Carlo channels of :mod:`physics.montecarlo`
  at one operating point (001 Sec. VII-B: Bob (10, 10, 0) m, Eve half a wavelength from Bob,
  P_max 25 dBm, eta 0.4, kappa 1), design = PKG-Net export (``.pt2``), water-filling, exact,
  identity or random. Alice and Bob apply the canonical-correlation transform of their observations
  (computed from the public second-order statistics, 001 (59)-(72)) so each probe gives ``M``
  independent complex pairs with correlations ``rho_i`` (``sum_i -log2(1 - rho_i^2) = I(y_a; y_b)``);
  Eve forms the linear MMSE estimate of Alice's canonical variables from her own observation.
  Eve's leak is bounded by the closed form ``I(y_a; y_e)`` (001 Theorem 1); SKR bound = 001 (32).
* ``kgnet`` (:class:`KGNetSystem`, paper 002): dual-band HDF5 users as probes; Alice's features are
  the KGNet map of her Band1 features, Bob's his Band2 features, Eve's her own Band2 features (0.15 m
  away); GDQG quantiser (002 Algorithm 1). No SKR closed form: the Gaussian mutual information
  ``I(x_a; x_b) - I(x_a; x_e)`` of the features' sample covariance is reported, and Eve's leak is a
  plug-in estimate on quantised symbols.
* ``nearfield`` (:class:`NearFieldSystem`, paper 004): :func:`physics.nearfield.probe` at 004 Fig. 3's
  point; SKR bound (23); Eve's leak bounded by the Gaussian ``I(z_a; z_ae)`` of the model.
* ``multiuser`` (:class:`MultiUserSystem`, paper 003): probing rounds of
  :func:`physics.multiuser.simulate_probing` (pilot reuse) at one statistical-CSI point of
  :class:`physics.multiuser.MultiUserScenario` (default: separated clusters, 20 dB per UT); Alice = the BS's
  uplink estimate for UT k, Bob = UT k's downlink estimate, Eve = a curious other UT's downlink estimate
  (the UT sharing scatterers, else the one that learns most). Canonical-correlation transform from the
  public covariance as for ``irs``, minus the pairs another UT sees as well as Bob. SKR bound: 003 (30) of
  the UT ((27) with shared scatterers); Eve's leak bound: Gaussian I(used canonical variables; z_e).
  ``--user all`` (default) runs every UT on the same probes (:func:`run_multiuser_agreement`) and sums.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .entropy import EntropyBudget, bits_to_symbols, mcv_min_entropy, plugin_mutual_information
from .privacy import check_eps, leftover_hash_length, toeplitz_hash, toeplitz_seed
from .quantize import check_levels, quantise_eve, quantise_pair
from .randomness import nist_pass_ratios
from .reconcile import Cascade, LDPCSyndrome, PublicChannel, binary_entropy

__all__ = ["IRSSystem", "KGNetSystem", "MultiUserSystem", "NearFieldSystem", "Observations", "System", "main",
           "make_system", "run_agreement", "run_multiuser_agreement"]

SYSTEMS = ("irs", "kgnet", "nearfield", "multiuser")


@dataclass
class Observations:
    """Per-probe real observations, one probe per row, columns aligned across the three parties.

    Attributes:
        alice, bob: ``[n, D]`` float64; eve: ``[n, D]`` or ``None``.
        quantiser: defaults for :func:`keygen.quantize.quantise_pair` (``method``, ``mean``/``std``
            per party for the equiprobable quantiser).
    """

    alice: np.ndarray
    bob: np.ndarray
    eve: np.ndarray | None
    quantiser: dict[str, Any] = field(default_factory=dict)


class System:
    """Adapter contract: sample observations for the chosen design, state the SKR bound and Eve's leak.

    ``observations(n, seed)`` -> :class:`Observations`; ``skr_bound()`` -> ``dict`` with at least
    ``skr_bound_bits`` (bits per probe); ``eve_leak_bits_per_probe()`` -> a closed-form upper bound
    on ``I(Alice's observation; Eve's observation)`` per probe, or ``None`` (then the pipeline
    estimates it); ``describe()`` -> plain-type description; ``default_quantiser`` -> dict.
    """

    name = "system"
    default_quantiser: dict[str, Any] = {}

    def observations(self, n: int, seed: int) -> Observations:
        raise NotImplementedError

    def skr_bound(self) -> dict[str, float]:
        raise NotImplementedError

    def eve_leak_bits_per_probe(self) -> float | None:
        return None

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# IRS (000/001)
# ---------------------------------------------------------------------------------------------


def _cca(C, M: int):
    """Complex canonical correlation analysis of the ``[2M(+M), ...]`` joint covariance ``E{y y^H}``.

    Returns ``A, B`` (``[M, M]``) and ``rho`` (``[M]``, descending) with ``A^H C_aa A = I`` (on the
    range of ``C_aa``; directions a singular precoder removes get ``rho = 0``),
    ``B^H C_bb B = I``, ``A^H C_ab B = diag(rho)``; canonical variables ``u = A^H y_a``, ``v = B^H y_b``.
    """
    import torch

    def inv_sqrt(X):  # pseudo-inverse square root: a singular precoder leaves Alice fewer dimensions
        lam, U = torch.linalg.eigh(0.5 * (X + X.mH))
        keep = lam > 1e-9 * lam.max()
        inv = torch.where(keep, 1.0 / lam.clamp_min(1e-300).sqrt(), torch.zeros_like(lam))
        return (U * inv[None, :]) @ U.mH

    Caa, Cbb, Cab = C[:M, :M], C[M:2 * M, M:2 * M], C[:M, M:2 * M]
    Wa, Wb = inv_sqrt(Caa), inv_sqrt(Cbb)
    U, S, Vh = torch.linalg.svd(Wa @ Cab @ Wb)
    return Wa @ U, Wb @ Vh.mH, S


class IRSSystem(System):
    """IRS-assisted PKG (000/001) at one operating point; see the module docstring.

    Args:
        design: ``"pkgnet"`` (needs ``export``), ``"water_filling"``, ``"exact"``, ``"identity"``, ``"random"``.
        export: path of a PKG-Net ``.pt2`` export (``train.py export``); its scenario setting decides
            which features it is fed (case 1: 6, case 2: 9).
        setting: ``"case2"`` (Eve's statistics known, default) or ``"case1"`` (no Eve: Eve's observation
            is simulated anyway at the same place, and the SKR bound is 001 (38)).
        M, L_H, L_V: array sizes (001: 4, 6, 6). point: overrides of :meth:`IRSScenario.point`
            (``P_max_dbm``, ``eta``, ``kappa``, ``bob_m``, ``eve_m``).
        rho_min: canonical pairs with correlation below this are not used for keys (default 0.7: a pair
            at rho = 0.7 already disagrees on about 20 % of its sign bits; weaker pairs would push the
            frame's disagreement past what Cascade corrects).
        design_seed: seed of the random design.
    """

    name = "irs"
    DESIGNS = ("pkgnet", "water_filling", "exact", "identity", "random")
    # Sweep at the default point (water-filling, 8000 probes, Cascade), final secret bits per probe:
    # K=2 guard 0/0.1/0.2/0.3/0.4: 1.42/2.73/3.23/3.26/2.28; K=4 guard 0.3/0.5: 2.45/1.61; K=8: budget <= 0.
    default_quantiser = {"method": "equiprobable", "levels": 2, "guard": 0.2, "code": "gray"}

    def __init__(self, design: str = "water_filling", *, export: str | None = None, setting: str = "case2",
                 M: int = 4, L_H: int = 6, L_V: int = 6, point: dict[str, Any] | None = None,
                 rho_min: float = 0.7, design_seed: int = 0):
        import torch

        from physics import irs
        from physics.scenarios import IRSScenario

        if design not in self.DESIGNS:
            raise ValueError(f"design = {design!r} is not allowed for irs; choose one of {self.DESIGNS}")
        if design == "pkgnet" and export is None:
            raise ValueError("design 'pkgnet' needs --export PATH.pt2 (python train.py export ...)")
        if not 0.0 <= rho_min < 1.0:
            raise ValueError(f"rho_min = {rho_min!r} is not allowed; it must lie in [0, 1)")
        self.design, self.export, self.setting = design, export, setting
        self.rho_min = float(rho_min)
        self.scenario = IRSScenario(setting="case2", M=M, L_H=L_H, L_V=L_V)
        self.point = self.scenario.point(1, **({} if point is None else point))
        self.stats = self.scenario.stats(self.point)
        P_max = self.scenario.P_max_w(self.point)
        if design == "pkgnet":
            self.P, self.theta = self._pkgnet(export, {} if point is None else point)
        else:
            st = self.stats
            if design == "water_filling":
                d = irs.water_filling_design(st, P_max, 2 if setting == "case2" else 1)
            elif design == "exact":
                d = irs.exact_design(st, P_max, 2 if setting == "case2" else 1)
            elif design == "identity":
                d = irs.identity_design(st, P_max)
            else:
                g = torch.Generator().manual_seed(int(design_seed))
                d = irs.random_design(st, P_max, g)
            self.P, self.theta = d.P.reshape(M, M).to(torch.complex128), d.theta.reshape(-1).to(torch.complex128)
        C = irs.joint_covariance_kronecker(self.P, self.theta, self.stats)
        self.C = C.reshape(C.shape[-2:])
        self.A, self.B, self.rho = _cca(self.C, M)
        self.modes = [i for i in range(M) if float(self.rho[i]) >= self.rho_min]
        if not self.modes:
            raise ValueError(f"no canonical pair reaches rho_min = {rho_min}; largest rho = {float(self.rho[0]):.3f}")
        # Eve's linear MMSE estimate of Alice's canonical variables u = A^H y_a from y_e.
        Cae, Cee = self.C[:M, 2 * M:], self.C[2 * M:, 2 * M:]
        self.E = torch.linalg.solve(Cee, Cae.mH @ self.A)  # u_hat = E^H y_e  ([M, M])
        self.eve_var = torch.real(torch.diagonal(self.E.mH @ Cee @ self.E)).clamp_min(1e-300)
        parts = irs.skr_case2_parts(self.P, self.theta, self.stats)
        self.parts = {k: float(v.reshape(())) for k, v in parts.items()}

    def _pkgnet(self, export: str, point: dict[str, Any]):
        import torch

        from models.export import load_metadata
        from physics.scenarios import IRSScenario

        path = Path(export)
        if not path.is_file():
            raise ValueError(f"--export {export!r}: no such file (a .pt2 from python train.py export)")
        meta = load_metadata(path)
        if meta.get("setting") not in IRSScenario.SETTINGS or int(meta.get("M", -1)) != self.scenario.M \
                or int(meta.get("L", -1)) != self.scenario.L:
            raise ValueError(f"--export {export!r} is for scenario {meta.get('scenario')!r} (M = {meta.get('M')}, "
                             f"L = {meta.get('L')}); the irs system needs an IRS export with M = {self.scenario.M}, "
                             f"L = {self.scenario.L}")
        sc = IRSScenario(setting=meta["setting"], M=self.scenario.M, L_H=self.scenario.L_H, L_V=self.scenario.L_V)
        x = sc.features(sc.point(1, **point)).to(torch.float32)
        net = torch.export.load(path).module()
        with torch.no_grad():
            outs = dict(zip(meta["outputs_order"], net(x), strict=True))
        P = torch.view_as_complex(outs["P"].to(torch.float64).contiguous()).reshape(sc.M, sc.M)
        theta = torch.view_as_complex(outs["theta"].to(torch.float64).contiguous()).reshape(-1)
        return P, theta

    def observations(self, n: int, seed: int) -> Observations:
        import torch

        from physics.montecarlo import draw_nlos_channels, observations
        from physics.seeding import generator_for

        g = generator_for(seed, "irs-observations")
        noise = math.sqrt(float(self.stats.noise_power.reshape(())))
        modes = torch.tensor(self.modes)
        out = {"a": [], "b": [], "e": []}
        for start in range(0, n, 20000):
            m = min(20000, n - start)
            ch = draw_nlos_channels(self.stats, m, g)
            y = observations(ch, self.P, self.theta, self.stats, g)
            u = (y["y_a"] / noise) @ self.A.conj()
            v = (y["y_b"] / noise) @ self.B.conj()
            w = (y["y_e"] / noise) @ self.E.conj() / self.eve_var.sqrt()
            for key, z in (("a", u), ("b", v), ("e", w)):
                z = z[:, modes] * math.sqrt(2.0)  # unit-variance real and imaginary parts
                out[key].append(torch.cat([z.real, z.imag], -1).numpy())
        a, b, e = (np.concatenate(out[k]) for k in "abe")
        return Observations(a, b, e, {"method": "equiprobable", "mean": 0.0, "std": 1.0})

    def skr_bound(self) -> dict[str, float]:
        key = "R_sk" if self.setting == "case2" else "I_ab"
        p = self.parts
        return {"skr_bound_bits": max(p["R1"], p["R2"]) if key == "R_sk" else p["I_ab"], "I_ab": p["I_ab"],
                "I_ae": p["I_ae"], "I_be": p["I_be"], "R1_forward": p["R1"], "R2_reverse": p["R2"],
                "kind": "001 (32) R_sk = max(R1, R2)" if key == "R_sk" else "001 (38) I(y_a; y_b)"}

    def eve_leak_bits_per_probe(self) -> float:
        return self.parts["I_ae"]

    def describe(self) -> dict[str, Any]:
        pt = {k: v.reshape(-1).tolist() for k, v in self.point.items()}
        return {"system": "irs", "design": self.design, "export": self.export, "setting": self.setting,
                "M": self.scenario.M, "L": self.scenario.L, "point": pt,
                "canonical_correlations": [float(r) for r in self.rho], "modes_used": self.modes}


# ---------------------------------------------------------------------------------------------
# KGNet (002)
# ---------------------------------------------------------------------------------------------


class KGNetSystem(System):
    """KGNet FDD key generation (002) on a dual-band HDF5 file; each test user is one probe.

    Args:
        data: the HDF5 file the net was trained on (same seed and split fractions as training).
        checkpoint: KGNet Lightning checkpoint (``last.ckpt``); its ``net.*`` weights are loaded into
            ``models.kgnet.KGNet`` (``hidden`` as trained). ``mapping="none"`` uses Alice's Band1
            features directly (FDD without mapping, for comparison) and needs no checkpoint.
        snr_db: AWGN on both bands and Eve's (``None`` = noise-free).
        seed, train_fraction: the data module's split (as in the training config).
    """

    name = "kgnet"
    default_quantiser = {"method": "gdqg", "levels": 2, "epsilon": 0.1, "code": "binary"}

    def __init__(self, data: str, checkpoint: str | None = None, *, mapping: str = "kgnet", snr_db: float | None = 30.0,
                 seed: int = 0, train_fraction: float = 0.8, hidden: Sequence[int] = (512, 1024, 1024, 512)):
        import torch

        if mapping not in ("kgnet", "none"):
            raise ValueError(f"mapping = {mapping!r} is not allowed; use 'kgnet' or 'none'")
        if not Path(data).is_file():
            raise ValueError(f"--data {data!r}: no such file (a dual-band HDF5, e.g. data/indoor.h5)")
        if mapping == "kgnet" and (checkpoint is None or not Path(checkpoint).is_file()):
            raise ValueError(f"--checkpoint {checkpoint!r}: a KGNet checkpoint file is needed for mapping 'kgnet'")
        import warnings

        from datamodules.dualband import DualBandDataModule

        self.data, self.checkpoint, self.mapping, self.snr_db = data, checkpoint, mapping, snr_db
        dm = DualBandDataModule(h5_path=data, generate_if_missing=False, seed=seed, train_fraction=train_fraction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "file used as it is": expected here
            dm.prepare_data()
            dm.setup("fit")
            dm.setup("test")
        self.sets = {}
        for split in ("val", "test"):
            x1, x2, xe = dm.evaluation_set(split, snr_db)
            if xe is None:
                raise ValueError(f"--data {data!r} has no Eve (/eve/...); the kgnet system needs Eve's CFRs")
            self.sets[split] = (x1, x2, xe)
        self.net = None
        if mapping == "kgnet":
            from models.kgnet import KGNet

            state = torch.load(checkpoint, map_location="cpu", weights_only=False)
            sd = {k[len("net."):]: v for k, v in state["state_dict"].items() if k.startswith("net.")}
            d = self.sets["test"][0].shape[1]
            self.net = KGNet(in_dim=d, out_dim=d, hidden=tuple(hidden))
            try:
                self.net.load_state_dict(sd)
            except RuntimeError as exc:
                raise ValueError(f"--checkpoint {checkpoint!r} does not hold a KGNet with hidden "
                                 f"{tuple(hidden)}: {exc}") from None
            self.net.eval()
        self._gauss = None

    def _features(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        x1, x2, xe = self.sets[split]
        if self.net is not None:
            with torch.no_grad():
                xa = torch.cat([self.net(c.float()) for c in torch.split(x1, 4096)])
        else:
            xa = x1
        return (xa.double().numpy(), x2.double().numpy(), xe.double().numpy())

    def observations(self, n: int, seed: int) -> Observations:
        """The first ``n`` users of the test split (``seed`` even) or of the validation split (``seed`` odd:
        calibration). Users are fixed, so ``n`` is capped at the split size."""
        split = "val" if seed % 2 else "test"
        a, b, e = self._features(split)
        if n > a.shape[0]:
            raise ValueError(f"--probes {n} is more than the {a.shape[0]} users of the {split} split of {self.data}")
        return Observations(a[:n], b[:n], e[:n], {"method": "gdqg"})

    def skr_bound(self) -> dict[str, float]:
        """Gaussian MI estimate ``I(x_a; x_b) - I(x_a; x_e)`` of the test split (no closed form), with the
        spread over 5 disjoint batches as its uncertainty."""
        a, b, e = self._features("test")

        def gmi(x, y):
            z = np.concatenate([x, y], 1)
            z = z - z.mean(0)
            C = z.T @ z / z.shape[0]
            d = x.shape[1]

            def ld(S):
                return np.linalg.slogdet(S)[1]

            return float((ld(C[:d, :d]) + ld(C[d:, d:]) - ld(C)) / math.log(2))

        vals = [gmi(a[p], b[p]) - gmi(a[p], e[p]) for p in np.array_split(np.arange(a.shape[0]), 5)]
        return {"skr_bound_bits": float(np.mean(vals)), "skr_bound_std": float(np.std(vals, ddof=1) / math.sqrt(5)),
                "kind": "Gaussian MI estimate I(x_a;x_b) - I(x_a;x_e) from sample covariances (not a bound "
                        "for non-Gaussian features; batch-mean standard error given)"}

    def describe(self) -> dict[str, Any]:
        return {"system": "kgnet", "design": "kgnet" if self.mapping == "kgnet" else "no-mapping", "data": self.data,
                "checkpoint": self.checkpoint, "snr_db": self.snr_db,
                "test_users": int(self.sets["test"][0].shape[0]),
                "calibration_users": int(self.sets["val"][0].shape[0])}


# ---------------------------------------------------------------------------------------------
# Near-field XL-MIMO (004)
# ---------------------------------------------------------------------------------------------


class NearFieldSystem(System):
    """Near-field XL-MIMO PKG (004) at Fig. 3's point; one complex observation per probe and party.

    Designs: the scenario's baselines (e.g. ``optimal``, ``mrc``, ``svd``, ``dinkelbach``) or
    ``pkgnet`` (``export``). Alice, Bob and Eve observe ``z_a, z_b, z_ae`` of
    :func:`physics.nearfield.probe`; each is scaled to unit variance (public model statistics).
    SKR bound: 004 (23) ``I(z_a; z_b | z_ae)``; Eve's leak bound: Gaussian ``I(z_a; z_ae)``.
    """

    name = "nearfield"
    # 004's point has a very high SNR (SKR ~15 bits per probe): 64 levels per real component
    default_quantiser = {"method": "equiprobable", "levels": 64, "guard": 0.2, "code": "gray"}

    def __init__(self, design: str = "optimal_beam", *, export: str | None = None, point: dict[str, Any] | None = None):
        import torch

        from physics import nearfield as nf

        self.nf = nf
        self.scenario = nf.NearFieldScenario()
        self.point = self.scenario.point(1, **({} if point is None else point))
        g = torch.Generator().manual_seed(0)
        if design == "pkgnet":
            if export is None or not Path(export).is_file():
                raise ValueError(f"design 'pkgnet' needs --export PATH.pt2, got {export!r}")
            from models.export import load_program

            program, meta = load_program(export)  # one read of the archive: program and its output order
            with torch.no_grad():
                outs = program.module()(self.scenario.features(self.point).to(torch.float32))
            names = meta["outputs_order"]
            des = {k: v.to(torch.float64) for k, v in zip(names, outs, strict=True)}
        else:
            base = self.scenario.baselines(self.point, g)
            if design not in base:
                raise ValueError(f"design = {design!r} is not allowed for nearfield; choose one of "
                                 f"{tuple(base) + ('pkgnet',)}")
            des = base[design]
        self.design, self.export = design, export
        self.design_real = des
        self.bound = float(self.scenario.skr(self.point, des).reshape(-1)[0])
        self.W = nf.design_matrix(des).reshape(self.scenario.N, self.scenario.N)
        f, h = self.scenario.channels(self.point)
        self.f, self.h = f.reshape(-1), h.reshape(-1)
        na, nb, ne = (float(t.reshape(-1)[0]) for t in self.scenario.noises_w(self.point))
        self.noise_w = (na, nb, ne)
        # Model second-order statistics (public): var z_b = f^H W f + n_b, var z_a = f^H W f + n_a (the
        # Gaussian uplink form below), var z_ae = h^H W h + n_e, E{z_a z_ae^*} = f^H W h.
        Wc = self.W.to(torch.complex128)
        sB = float((self.f.conj() @ Wc @ self.f).real)
        sE = float((self.h.conj() @ Wc @ self.h).real)
        sAE = complex(self.f.conj() @ Wc @ self.h)
        self.var = np.array([sB + na, sB + nb, sE + ne])
        self.I_ae = max(0.0, math.log2(self.var[0] * self.var[2] / (self.var[0] * self.var[2] - abs(sAE) ** 2)))

    def _probe(self, n: int, seed: int) -> dict[str, np.ndarray]:
        from physics.seeding import generator_for

        na, nb, ne = self.noise_w
        # (11)'s effective noise_a = sigma_a^2 Tr W / P_b: noises_w already gives the effective variance,
        # so the Gaussian form of the uplink noise is used (literal_uplink=False) with P_b = Tr W.
        tr = float(self.W.diagonal().real.sum())
        out = self.nf.probe(self.W, self.f, self.h, na, nb, ne, tr, n, generator_for(seed, "nearfield-probe"),
                            literal_uplink=False)
        return {k: v.numpy() for k, v in out.items()}

    def observations(self, n: int, seed: int) -> Observations:
        z = self._probe(n, seed)
        cols = []
        for k, var in zip(("z_a", "z_b", "z_ae"), self.var, strict=True):
            s = z[k] / math.sqrt(var / 2.0)
            cols.append(np.stack([s.real, s.imag], 1))
        return Observations(cols[0], cols[1], cols[2], {"method": "equiprobable", "mean": 0.0, "std": 1.0})

    def skr_bound(self) -> dict[str, float]:
        return {"skr_bound_bits": self.bound, "I_ae": self.I_ae, "kind": "004 (23) I(z_a; z_b | z_ae)"}

    def eve_leak_bits_per_probe(self) -> float:
        return self.I_ae

    def describe(self) -> dict[str, Any]:
        return {"system": "nearfield", "design": self.design, "export": self.export,
                "point": {k: v.reshape(-1).tolist() for k, v in self.point.items()}}


# ---------------------------------------------------------------------------------------------
# Beam-domain multi-user (003)
# ---------------------------------------------------------------------------------------------


def _mu_mixing(P, C, u, v):
    """Linear maps from the stacked path gains ``a [K N_P]`` to every UT's observations under pilot reuse.

    ``P [K, M, M_e]``, ``C [K, N_k, N_e]`` beam-domain designs; ``u [K, N_P, N_k]``, ``v [K, N_P, M]`` the
    beam-domain path vectors of :meth:`MultiUserScenario.paths`. Returns ``D, E [K, d, K N_P]`` with
    ``z_D,k = D_k a + n_D,k`` (UT k's downlink LS estimate, vec(Z^T) as :func:`physics.multiuser.simulate_probing`
    stacks it) and ``z_U,k = E_k a + n_U,k`` (the BS's uplink estimate for UT k), and the noise covariances
    ``nD = I kron C_k^H C_k``, ``nU = P_k^T P_k^* kron I`` ``[K, d, d]``; ``d = M_e N_e``. Written from 003
    (21)-(26) here (the module's own helper is private); tests check it against (30) and a Monte Carlo.
    """
    import torch

    K, Np = u.shape[0], u.shape[1]
    Me, Ne = P.shape[-1], C.shape[-1]
    d = Me * Ne
    Q = P.sum(0)  # every precoded pilot reaches every UT through its own channel
    cu = torch.einsum("jnf,jpn->jpf", C.conj(), u)  # C_j^H u_jp          [K, Np, Ne]
    qv = torch.einsum("me,kpm->kpe", Q, v.conj())  # Q^T conj(v_kp)       [K, Np, Me]
    pv = torch.einsum("kme,jpm->kjpe", P, v.conj())  # P_k^T conj(v_jp)   [K, K, Np, Me]
    D = torch.zeros(K, d, K * Np, dtype=torch.complex128)
    for k in range(K):
        D[k, :, k * Np:(k + 1) * Np] = (qv[k][:, :, None] * cu[k][:, None, :]).reshape(Np, d).T
    E = (pv[..., :, None] * cu[None, :, :, None, :]).reshape(K, K * Np, d).mT
    eye_e, eye_n = torch.eye(Me, dtype=torch.complex128), torch.eye(Ne, dtype=torch.complex128)
    nD = torch.stack([torch.kron(eye_e, C[k].mH @ C[k]) for k in range(K)])
    nU = torch.stack([torch.kron(P[k].mT @ P[k].conj(), eye_n) for k in range(K)])
    return D, E, nD, nU


def _gauss_mi_bits(R, d1: int, d2: int) -> float:
    """I(x; y) in bits of a circular Gaussian pair with joint covariance ``R [d1 + d2, d1 + d2]``."""
    import torch

    def ld(S):
        return float(torch.linalg.slogdet(0.5 * (S + S.mH))[1])

    return max(0.0, (ld(R[:d1, :d1]) + ld(R[d1:d1 + d2, d1:d1 + d2]) - ld(R[:d1 + d2, :d1 + d2])) / math.log(2))


class MultiUserSystem(System):
    """Beam-domain multi-user PKG (003) at one statistical-CSI point; the BS keys with UT ``user``.

    One probe = one probing round of :func:`physics.multiuser.simulate_probing` (pilot reuse: random unitary
    pilots, noise, LS estimates; fresh Rayleigh path gains per round). Alice = the BS's uplink estimate
    ``z_U,k`` for UT k, Bob = UT k's downlink estimate ``z_D,k`` (``d = M_e N_e`` complex each), Eve = a
    curious other UT's own downlink estimate ``z_D,i``: the UT sharing scatterers with k where the scenario
    has them, else the other UT that learns most about Alice's used canonical variables (under pilot reuse,
    the one whose channel overlaps most with UT k's precoder). Alice and Bob apply the canonical-correlation
    transform of their observations computed from the public second-order statistics (the statistical CSI and the design
    are public); pairs with ``rho < rho_min`` are not used, nor pairs that another UT sees almost as well
    (``max_j I(u_i; z_D,j) > max_mode_leak * I(u_i; v_i)``: a shared scatterer); Eve forms the LMMSE
    estimate of Alice's canonical variables. Eve's leak bound: Gaussian ``I(u_used; z_D,i)`` of the used
    canonical variables (Alice's key bits are a function of them; data processing). SKR bound: 003 (30) of UT k
    (scenario closed form; equals ``I(z_U,k; z_D,k)``), or (27) over all curious UTs where UTs share scatterers.

    Args:
        design: ``beam_selection`` (Algorithm 1), ``strongest_overlapping`` (Fig. 8), ``eigen_beams``,
            ``optimal`` (per-instance projected ascent of the scenario's objective), ``random``, ``pkgnet``
            (``export``: a ``train.py export`` of ``configs/pkgnet/multiuser*.yaml``; its scenario is used).
            ``theorem2`` is refused: its eigenvectors of the full Lambda are not a BS precoder times a UT
            combiner, so no probing round realises them; the report gives its rate as a ceiling.
        user: the UT (0..K-1). :meth:`for_user` gives the same system for another UT (shared simulation).
        shared: use ``configs/pkgnet/multiuser_shared.yaml``'s scenario (UT pairs share 2 scatterers).
        point: :meth:`MultiUserScenario.point` fields: ``snr_db`` (each UT's total path SNR; default 20 dB here,
            the SNR at which 003 states its Fig. 7, 8 and 10 results; the scenario's own default is 10), ``gap``
            (default 0.24: separated clusters), ``rho`` (shared-scatterer gain correlation, default 0.9).
        scenario_kw: overrides of :class:`MultiUserScenario` arguments (e.g. ``M``, ``K`` for small tests).
    """

    name = "multiuser"
    DESIGNS = ("beam_selection", "strongest_overlapping", "eigen_beams", "optimal", "random", "pkgnet", "theorem2")
    default_quantiser = {"method": "equiprobable", "levels": 2, "guard": 0.2, "code": "gray"}
    CHUNK = 4000

    def __init__(self, design: str = "beam_selection", *, export: str | None = None, user: int = 0,
                 shared: bool = False, point: dict[str, Any] | None = None, rho_min: float = 0.7,
                 max_mode_leak: float = 0.25, design_seed: int = 0, scenario_kw: dict[str, Any] | None = None):
        import torch

        from physics.multiuser import MultiUserScenario

        if design not in self.DESIGNS:
            raise ValueError(f"design = {design!r} is not allowed for multiuser; choose one of {self.DESIGNS}")
        if design == "theorem2":
            raise ValueError("design 'theorem2' is not allowed for multiuser probing: Theorem 2's optimum (the top "
                             "eigenvectors of the full Lambda_k) is not conj(P~) kron C~, so no BS precoder and UT "
                             "combiner realise it; its rate is reported as 'theorem2_ceiling_bits'; use 'optimal'")
        if design == "pkgnet" and (export is None or not Path(export).is_file()):
            raise ValueError(f"design 'pkgnet' needs --export PATH.pt2 (python train.py export --config "
                             f"configs/pkgnet/multiuser.yaml ...), got {export!r}")
        if not 0.0 <= rho_min < 1.0:
            raise ValueError(f"rho_min = {rho_min!r} is not allowed; it must lie in [0, 1)")
        if not 0.0 <= max_mode_leak <= 1.0:
            raise ValueError(f"max_mode_leak = {max_mode_leak!r} is not allowed; it must lie in [0, 1]")
        self.design, self.export, self.shared, self.rho_min = design, export, bool(shared), float(rho_min)
        self.max_mode_leak = float(max_mode_leak)
        meta = None
        if design == "pkgnet":
            from models.export import load_metadata

            meta = load_metadata(export)
            try:
                self.scenario = MultiUserScenario.from_description(meta)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"--export {export!r} is not a 003 multi-user export ({exc})") from None
            self.shared = bool(self.scenario.shared_paths)
        else:
            kw: dict[str, Any] = {}
            if shared:
                kw.update(objective="leakage", p_overlapping=1.0, shared_paths=2)
            kw.update(scenario_kw or {})
            self.scenario = MultiUserScenario(**kw)
        sc = self.scenario
        if sc.K < 2:
            raise ValueError(f"the multiuser system needs K >= 2 UTs (one is Eve), got K = {sc.K}")
        self.point_fields = {"snr_db": 20.0, **(point or {})}  # 003 states its Fig. 7, 8, 10 results at 20 dB
        self.batch = sc.point(1, **self.point_fields)
        g = torch.Generator().manual_seed(int(design_seed))
        if design == "pkgnet":
            net = torch.export.load(export).module()
            with torch.no_grad():
                outs = dict(zip(meta["outputs_order"], net(sc.features(self.batch).to(torch.float32)), strict=True))
            des = {k: outs[k].to(torch.float64) for k in ("P", "C")}
            if not all(bool(torch.isfinite(t).all()) for t in des.values()):
                raise ValueError(f"--export {export!r} gave non-finite outputs at this point (outside its ranges?)")
        elif design == "optimal":
            des = sc.optimum(self.batch, g)
        else:
            des = sc.baselines(self.batch, g)["random_semi_unitary" if design == "random" else design]
        self.P = torch.view_as_complex(des["P"][0].to(torch.float64).contiguous())  # [K, M, M_e]
        self.C = torch.view_as_complex(des["C"][0].to(torch.float64).contiguous())  # [K, N_k, N_e]
        pth = sc.paths(self.batch)
        self.G = pth["G"][0]
        self.mix = _mu_mixing(self.P, self.C, pth["u"][0], pth["v"][0])
        self.rates = {"reuse_30": sc.rates(self.batch, self.P[None], self.C[None], "reuse")[0],
                      "leakage_27": sc.rates(self.batch, self.P[None], self.C[None], "leakage_exact")[0],
                      "theorem2": sc.theorem2_rates(self.batch)[0]}
        self._cache: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._set_user(user)

    def for_user(self, user: int) -> MultiUserSystem:
        """The same design, channels and simulation cache, keyed with UT ``user``."""
        import copy

        other = copy.copy(self)
        other._set_user(user)
        return other

    def _joint(self, parts):
        """Covariance of the stacked observations ``[(kind, ut), ...]``, kind ``"U"`` (BS) or ``"D"`` (UT)."""
        import torch

        D, E, nD, nU = self.mix
        X = torch.cat([(E if kind == "U" else D)[j] for kind, j in parts])
        R = X @ self.G.to(torch.complex128) @ X.mH
        d = D.shape[1]
        for a, (ka, ja) in enumerate(parts):
            for b, (kb, jb) in enumerate(parts):
                if ka == kb == "D" and ja == jb:
                    R[a * d:(a + 1) * d, b * d:(b + 1) * d] += nD[ja]
                elif ka == kb == "U":  # the BS's estimates share its receiver noise: Cov = P_a^T P_b^* kron I
                    Pa, Pb = self.P[ja], self.P[jb]
                    R[a * d:(a + 1) * d, b * d:(b + 1) * d] += torch.kron(
                        Pa.mT @ Pb.conj(), torch.eye(self.C.shape[-1], dtype=torch.complex128))
        return R

    def _set_user(self, user: int) -> None:
        import torch

        K = self.scenario.K
        if not (isinstance(user, int) and 0 <= user < K):
            raise ValueError(f"user = {user!r} is not allowed; choose a UT in 0..{K - 1}")
        self.user = k = user
        d = self.P.shape[-1] * self.C.shape[-1]
        self.d = d
        joints = {i: self._joint([("U", k), ("D", k), ("D", i)]) for i in range(K) if i != k}
        C2 = next(iter(joints.values()))[:2 * d, :2 * d]  # Alice and Bob: the same in every joint
        self.A, self.B, self.rho = _cca(C2, d)
        sel = list(range(d)) + list(range(2 * d, 3 * d))

        def leak(R, cols):  # I(u_cols; z_e), u = A^H z_U: Alice's key bits are a function of u_used
            if not cols:
                return 0.0
            T = torch.block_diag(self.A[:, cols].mH, torch.eye(d, dtype=R.dtype))
            return _gauss_mi_bits(T @ R[sel][:, sel] @ T.mH, len(cols), d)

        strong = [i for i in range(d) if float(self.rho[i]) >= max(self.rho_min, 1e-6)]
        # A pair that some other UT sees as well as Bob does (a shared scatterer) only feeds Eve: keep pair i
        # only if max over the other UTs of I(u_i; z_D,j) <= max_mode_leak * I(u_i; v_i) (public statistics).
        self.mode_leak = {i: max(leak(R, [i]) for R in joints.values()) for i in strong}
        self.modes = [i for i in strong if self.mode_leak[i]
                      <= self.max_mode_leak * -math.log2(1.0 - float(self.rho[i]) ** 2)]
        # no mode: observations() refuses (run_multiuser_agreement skips the UT)
        self.leaks = {i: leak(R, self.modes) for i, R in joints.items()}
        self.leaks_full = {i: _gauss_mi_bits(R[[*range(d), *range(2 * d, 3 * d)]][:, [*range(d), *range(2 * d, 3 * d)]],
                                             d, d) for i, R in joints.items()}
        partner = self.scenario.curious()[k]
        if partner:
            self.eve, self.eve_rule = partner[0], "shares scatterers with the user"
        else:
            self.eve = max(self.leaks, key=lambda i: (self.leaks[i], -i))
            self.eve_rule = "the other UT that learns most about Alice's used canonical variables (largest leak)"
        self.C3 = joints[self.eve]
        Cae, Cee = self.C3[:d, 2 * d:], self.C3[2 * d:, 2 * d:]
        self.E = torch.linalg.solve(Cee, Cae.mH @ self.A)
        self.eve_var = torch.real(torch.diagonal(self.E.mH @ Cee @ self.E)).clamp_min(1e-300)
        self.I_ab = _gauss_mi_bits(self.C3, d, d)
        self.I_ae = self.leaks[self.eve]
        self.I_ae_full = self.leaks_full[self.eve]
        # I(z_U; z_D | z_e) = I(z_U; (z_D, z_e)) - I(z_U; z_e): an upper bound on the SKR against this Eve
        self.I_ab_given_e = max(0.0, _gauss_mi_bits(self.C3, d, 2 * d) - self.I_ae_full)

    def _simulate(self, n: int, seed: int):
        import torch

        from physics.multiuser import simulate_probing
        from physics.seeding import generator_for

        key = (n, seed)
        if key not in self._cache:
            if len(self._cache) >= 2:  # calibration + key run; for_user views share this dict
                self._cache.pop(next(iter(self._cache)))
            g = generator_for(seed, "multiuser-probing")
            b = self.batch
            zD, zU = [], []
            for start in range(0, n, self.CHUNK):
                z = simulate_probing(self.P, self.C, b["sin_aoa"][0], b["sin_aod"][0], self.G,
                                     min(self.CHUNK, n - start), g)
                zD.append(z["z_D"])
                zU.append(z["z_U"])
            self._cache[key] = (torch.cat(zD), torch.cat(zU))
        return self._cache[key]

    def observations(self, n: int, seed: int) -> Observations:
        import torch

        if not self.modes:
            raise ValueError(f"no canonical pair of UT {self.user} reaches rho_min = {self.rho_min} with another UT's "
                             f"leak <= {self.max_mode_leak} of its information; largest rho = {float(self.rho[0]):.3f} "
                             f"(no key with this UT under design {self.design!r})")
        zD, zU = self._simulate(n, seed)
        k, modes = self.user, torch.tensor(self.modes)
        u = zU[:, k] @ self.A.conj()
        v = zD[:, k] @ self.B.conj()
        w = zD[:, self.eve] @ self.E.conj() / self.eve_var.sqrt()
        out = []
        for z in (u, v, w):
            z = z[:, modes] * math.sqrt(2.0)  # unit-variance real and imaginary parts
            out.append(torch.cat([z.real, z.imag], -1).numpy())
        return Observations(out[0], out[1], out[2], {"method": "equiprobable", "mean": 0.0, "std": 1.0})

    def skr_bound(self) -> dict[str, float]:
        k = self.user
        r30, r27 = float(self.rates["reuse_30"][k]), float(self.rates["leakage_27"][k])
        bound = r27 if self.shared else r30
        kind = ("003 (27) of the UT: min over curious UTs of I(z_D,k; z_U,k | z_D,i) (UTs share scatterers)"
                if self.shared else "003 (30) of the UT (pilot reuse): I(z_D,k; z_U,k)")
        return {"skr_bound_bits": bound, "skr_30_bits": r30, "skr_27_bits": r27, "I_ab": self.I_ab,
                "I_ae": self.I_ae, "I_ae_all_of_alice": self.I_ae_full, "I_ab_given_eve": self.I_ab_given_e,
                "theorem2_ceiling_bits": float(self.rates["theorem2"][k]),
                "sum_skr_30_bits": float(self.rates["reuse_30"].sum()),
                "sum_skr_27_bits": float(self.rates["leakage_27"].sum()), "kind": kind}

    def eve_leak_bits_per_probe(self) -> float:
        return self.I_ae

    def describe(self) -> dict[str, Any]:
        sc = self.scenario
        return {"system": "multiuser", "design": self.design, "export": self.export, "user": self.user,
                "eve_ut": self.eve, "eve_rule": self.eve_rule,
                "eve_leak_by_ut": {str(i): v for i, v in self.leaks.items()},
                "eve_leak_all_of_alice_by_ut": {str(i): v for i, v in self.leaks_full.items()},
                "scenario": {k: sc.describe()[k] for k in ("scenario", "M", "K", "N_k", "N_P", "M_e", "N_e",
                                                           "objective", "budget", "shared_paths")},
                "point": {k: v.reshape(-1).tolist() for k, v in self.batch.items()},
                "canonical_correlations": [float(r) for r in self.rho], "modes_used": self.modes,
                "mode_leak_bits": {str(i): v for i, v in self.mode_leak.items()}, "max_mode_leak": self.max_mode_leak}


def run_multiuser_agreement(system: MultiUserSystem, users: Sequence[int] | None = None,
                            **kw) -> dict[str, Any]:
    """:func:`run_agreement` for every UT in ``users`` (default all) on the same probing rounds; the report
    holds ``per_user`` reports and pooled totals (bits and bounds summed over UTs, agreements pooled over
    blocks and bits, NIST ratios pooled over 128-bit blocks / rank groups). A UT that yields no key (no
    canonical pair above ``rho_min``, or a disagreement above what the reconciler corrects) is listed in
    ``users_without_key`` with the reason; it adds 0 secret bits and its SKR bound still counts."""
    t0 = time.perf_counter()
    users = list(range(system.scenario.K)) if users is None else list(users)
    reps, skipped = [], []
    for k in users:
        try:
            reps.append(run_agreement(system.for_user(k), **kw))
        except ValueError as exc:  # this UT yields no key (no usable pair, disagreement too high): 0 bits
            skipped.append({"user": k, "reason": str(exc).splitlines()[0],
                            "skr_bound_bits": system.for_user(k).skr_bound()["skr_bound_bits"]})
    if not reps:
        raise ValueError(f"no UT yields a key: {skipped[0]['reason']}")

    def wsum(key, weight):
        num = sum(r[key] * r[weight] for r in reps if r[key] is not None and r[weight])
        den = sum(r[weight] for r in reps if r[key] is not None and r[weight])
        return float(num / den) if den else float("nan")

    nist: dict[str, float] = {}
    for name in reps[0]["nist_pass_ratio"]:
        w = "nist_rank_groups" if name == "rank" else "nist_blocks"
        pairs = [(r["nist_pass_ratio"][name], r.get(w, 0)) for r in reps if name in r["nist_pass_ratio"]]
        den = sum(n for _, n in pairs)
        nist[name] = float(sum(v * n for v, n in pairs if n) / den) if den else float("nan")
    frames = sum(r["reconciliation"]["frames"] for r in reps)
    shannon = sum(r["disclosed_bits"] / r["reconciliation"]["efficiency"] for r in reps
                  if r["reconciliation"]["efficiency"] > 0)
    desc = dict(system.describe())
    desc["user"] = "all" if len(users) == system.scenario.K else users
    for key in ("eve_ut", "eve_leak_by_ut", "eve_leak_all_of_alice_by_ut", "canonical_correlations", "modes_used",
                "mode_leak_bits"):
        desc.pop(key, None)
    return {
        "system": desc, "design": system.design, "users": users, "probes": reps[0]["probes"], "seed": reps[0]["seed"],
        "per_user": reps, "users_without_key": skipped,
        "initial_key_bits_per_probe": float(sum(r["initial_key_bits_per_probe"] for r in reps)),
        "initial_kdr": wsum("initial_kdr", "initial_key_bits_per_probe"),
        "eve_initial_bit_agreement": wsum("eve_initial_bit_agreement", "initial_key_bits_per_probe"),
        "reconciliation": {
            "method": reps[0]["reconciliation"]["method"], "frames": frames,
            "frame_success_rate": float(sum(r["reconciliation"]["frame_success_rate"] * r["reconciliation"]["frames"]
                                            for r in reps) / frames),
            "efficiency": float(sum(r["disclosed_bits"] for r in reps) / shannon) if shannon else float("nan")},
        "disclosed_bits": int(sum(r["disclosed_bits"] for r in reps)),
        "final_key_bits": int(sum(r["final_key_bits"] for r in reps)),
        "final_keys": int(sum(r["final_keys"] for r in reps)),
        "block_success_rate": float(sum(r["final_keys"] for r in reps) / frames),
        "final_key_agreement": wsum("final_key_agreement", "final_keys"),
        "eve_bit_agreement": wsum("eve_bit_agreement", "final_key_bits"),
        "secret_bits_per_probe": float(sum(r["secret_bits_per_probe"] for r in reps)),
        "skr_bound_bits": float(sum(r["skr_bound_bits"] for r in reps) + sum(r["skr_bound_bits"] for r in skipped)),
        "skr": {"kind": "sum over the UTs of " + reps[0]["skr"]["kind"],
                "sum_skr_30_bits": reps[0]["skr"]["sum_skr_30_bits"],
                "sum_skr_27_bits": reps[0]["skr"]["sum_skr_27_bits"],
                "sum_theorem2_ceiling_bits": float(system.rates["theorem2"][users].sum())},
        "nist_pass_ratio": nist, "nist_blocks": int(sum(r["nist_blocks"] for r in reps)),
        "time_s": time.perf_counter() - t0,
    }


def make_system(name: str, **kw) -> System:
    """Build the adapter of ``name`` (one of :data:`SYSTEMS`)."""
    design = kw.get("design")
    if name == "irs":
        return IRSSystem("water_filling" if design is None else design, export=kw.get("export"),
                         setting=kw.get("setting", "case2"), point=kw.get("point"), rho_min=kw.get("rho_min", 0.7))
    if name == "kgnet":
        snr = kw.get("snr_db")
        return KGNetSystem(kw["data"], kw.get("checkpoint"), mapping=kw.get("mapping", "kgnet"),
                           snr_db=30.0 if snr is None else snr)
    if name == "nearfield":
        try:
            return NearFieldSystem("optimal_beam" if design is None else design, export=kw.get("export"),
                                   point=kw.get("point"))
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"system 'nearfield' is not yet available: physics.nearfield lacks what the adapter "
                             f"needs ({exc})") from None
    if name == "multiuser":
        return MultiUserSystem("beam_selection" if design is None else design, export=kw.get("export"),
                               user=kw.get("user") or 0, shared=kw.get("shared", False), point=kw.get("point"),
                               rho_min=kw.get("rho_min", 0.7), max_mode_leak=kw.get("max_mode_leak", 0.25),
                               scenario_kw=kw.get("scenario_kw"))
    raise ValueError(f"system = {name!r} is not allowed; choose one of {SYSTEMS}")


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


def _quantiser_settings(system: System, quantiser: dict[str, Any] | None) -> dict[str, Any]:
    """The system's default quantiser overridden by ``quantiser``; keys of the other method dropped."""
    default = dict(system.default_quantiser)
    given = {} if quantiser is None else dict(quantiser)
    method = given.get("method", default.get("method", "equiprobable"))
    q = default if method == default.get("method") else {"method": method}
    q.update(given)
    if method == "gdqg":
        for k in ("guard", "mean", "std"):
            q.pop(k, None)
        q.setdefault("epsilon", 0.1)
        q.setdefault("code", "binary")
    elif method == "equiprobable":
        for k in ("epsilon", "strict_epsilon"):
            q.pop(k, None)
        q.setdefault("guard", 0.2)
        q.setdefault("code", "gray")
    else:
        raise ValueError(f"quantiser method = {method!r} is not allowed; use 'equiprobable' or 'gdqg'")
    q.setdefault("levels", 2)
    return q


def _quantise(obs: Observations, q: dict[str, Any]):
    kw = dict(q)
    if kw["method"] == "equiprobable":
        kw.update({k: v for k, v in obs.quantiser.items() if k in ("mean", "std")})
    method = kw.pop("method")
    ka, kb, tr = quantise_pair(obs.alice, obs.bob, method, **kw)
    ke = quantise_eve(obs.eve, tr) if obs.eve is not None else None
    return ka, kb, ke, tr


def _stream(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([k.size for k in keys])
    probe = np.repeat(np.arange(len(keys)), lengths)
    return (np.concatenate(keys) if keys else np.zeros(0, np.uint8)), probe


def entropy_budget(system: System, cal: Observations, q: dict[str, Any], width: int) -> tuple[EntropyBudget, float]:
    """Entropy budget per key bit and the disagreement-rate estimate, from a calibration run."""
    ka, kb, ke, _ = _quantise(cal, q)
    a, _ = _stream(ka)
    b, _ = _stream(kb)
    if a.size < 64 * width:
        raise ValueError(f"calibration produced only {a.size} key bits; use more --calibration-probes")
    mcv = mcv_min_entropy(bits_to_symbols(a, width), width)
    per_probe = a.size / len(ka)
    bound = system.eve_leak_bits_per_probe()
    if bound is not None:
        leak, source = bound / per_probe, "closed form I(y_a; y_e) per probe / key bits per probe (data processing)"
    elif ke is not None:
        e, _ = _stream(ke)
        w = 4
        mi, se = plugin_mutual_information(bits_to_symbols(a, w), bits_to_symbols(e, w))
        leak, source = (mi + 3 * se) / w, "plug-in I(X_A; X_E) on 4-bit symbols + 3 standard errors (estimate)"
    else:
        leak, source = 0.0, "no Eve simulated"
    # Disagreement-rate estimate for the reconciler: the 99.9 % Clopper-Pearson upper bound of the
    # calibration KDR (an estimate of 0 would make Cascade's first block the whole frame).
    from scipy.stats import beta

    k = int(np.count_nonzero(a != b))
    kdr = float(beta.ppf(0.999, k + 1, a.size - k))
    return EntropyBudget(mcv.h_bit, float(leak), source, mcv, float(per_probe)), kdr


def run_agreement(system: System, *, probes: int = 20000, calibration_probes: int = 20000, seed: int = 0,
                  method: str = "cascade", block_bits: int | None = None, eps: float = 1e-10,
                  quantiser: dict[str, Any] | None = None, symbol_width: int = 8, progress: bool = False,
                  nist: bool = True) -> dict[str, Any]:
    """Simulate ``probes`` probing rounds and run the whole key agreement; return the report dict.

    Steps: (1) calibration run (independent seed) -> disagreement-rate estimate for the reconciler and
    the entropy budget per bit (:func:`entropy_budget`); (2) the run: quantise (guard-band exchange),
    cut Alice's and Bob's initial-key streams into frames of ``block_bits``; per frame reconcile
    (Cascade or LDPC, verification hash), let Eve replay the transcript on her string, hash all three
    with one public Toeplitz seed to ``ell = floor(n h_secret - disclosed - 2 log2(1/eps))`` bits, or
    refuse the frame when that is not positive. A frame whose verification fails yields no key.

    Deterministic for a given ``seed`` (physics draws from ``generator_for(seed, ...)``, protocol
    randomness from ``np.random.default_rng(seed)``).
    """
    t0 = time.perf_counter()
    eps = check_eps(eps)
    if method not in ("cascade", "ldpc"):
        raise ValueError(f"method = {method!r} is not allowed; use 'cascade' or 'ldpc'")
    q = _quantiser_settings(system, quantiser)
    check_levels(q.get("levels", 2))
    rec = Cascade() if method == "cascade" else LDPCSyndrome()
    if block_bits is not None and block_bits < 256:
        raise ValueError(f"block_bits = {block_bits} is not allowed; it must be >= 256")

    cal = system.observations(calibration_probes, 2 * seed + 1)
    budget, e_est = entropy_budget(system, cal, q, symbol_width)
    if block_bits is None:
        # Cascade needs frames well beyond its last-pass block (8 k1): at least 16 k1, a power of two >= 4096.
        k1 = rec.k1_factor / max(e_est, 1e-6) if method == "cascade" else 0
        block_bits = max(4096, 1 << math.ceil(math.log2(max(16 * k1, 1)))) if method == "cascade" else 2048
        block_bits = min(block_bits, 1 << 16)
    obs = system.observations(probes, 2 * seed)
    ka, kb, ke, tr = _quantise(obs, q)
    a, _ = _stream(ka)
    b, _ = _stream(kb)
    e = _stream(ke)[0] if ke is not None else None
    initial_nist = nist_pass_ratios(ka) if nist and a.size >= 128 else {}
    rng = np.random.default_rng(seed)
    # Public interleaver over the whole stream: errors cluster in bad probes (and in neighbouring
    # subcarriers), Cascade's block sizes assume them spread at the average rate.
    inter = rng.permutation(a.size)
    a, b = a[inter], b[inter]
    e = e[inter] if e is not None else None
    frames = a.size // block_bits
    if frames == 0:
        raise ValueError(f"{probes} probes gave {a.size} initial-key bits, fewer than one frame of {block_bits}; "
                         "use more --probes")
    keys_a, keys_b, keys_e = [], [], []
    stats = {"failed": 0, "refused": 0, "disclosed": 0, "rounds": 0, "time": 0.0, "eff_num": 0.0, "eff_den": 0.0,
             "residual_after_success": 0}
    frame_eff = []
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the project
        def tqdm(x, **_):
            return x
    for i in tqdm(range(frames), desc=f"{system.name} {method} frames", disable=not progress):
        sl = slice(i * block_bits, (i + 1) * block_bits)
        ch = PublicChannel()
        res = rec.reconcile(a[sl], b[sl], ch, error_rate=e_est, seed=rng)
        stats["disclosed"] += res.disclosed_bits
        stats["rounds"] += res.rounds
        stats["time"] += res.time_s
        stats["eff_num"] += res.disclosed_bits
        stats["eff_den"] += block_bits * binary_entropy(res.error_rate)
        frame_eff.append(res.efficiency)
        if not res.success:
            stats["failed"] += 1
            continue
        stats["residual_after_success"] += res.residual_errors
        try:
            ell = leftover_hash_length(block_bits * budget.secret_per_bit, res.disclosed_bits, eps)
        except ValueError:
            stats["refused"] += 1
            continue
        seed_bits = toeplitz_seed(block_bits, ell, rng)
        keys_a.append(toeplitz_hash(res.key(), seed_bits, ell))
        keys_b.append(toeplitz_hash(res.bob_key(), seed_bits, ell))
        if e is not None:
            keys_e.append(toeplitz_hash(rec.replay(e[sl], res.transcript), seed_bits, ell))

    final_bits = int(sum(k.size for k in keys_a))
    agree = [bool(np.array_equal(x, y)) for x, y in zip(keys_a, keys_b, strict=True)]
    used = frames * block_bits
    report: dict[str, Any] = {
        "system": system.describe(),
        "design": system.describe().get("design"),
        "probes": int(probes),
        "seed": int(seed),
        "quantiser": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in q.items()},
        "initial_key_bits_per_probe": float(a.size / probes),
        "initial_kdr": float(np.mean(a != b)),
        "eve_initial_bit_agreement": float(np.mean(a == e)) if e is not None else None,
        "kdr_estimate_calibration": e_est,  # 99.9 % upper bound, used to set the reconciler
        "guard_band_public_bits": int(tr.public_bits),
        "reconciliation": {
            "method": method, "frame_bits": int(block_bits), "frames": int(frames),
            "frame_success_rate": float(1 - stats["failed"] / frames),
            "efficiency": float(stats["eff_num"] / stats["eff_den"]) if stats["eff_den"] > 0 else float("nan"),
            "efficiency_without_verification": (float((stats["eff_num"] - frames * rec.verify_bits) / stats["eff_den"])
                                                if stats["eff_den"] > 0 else float("nan")),
            "verify_bits_per_frame": int(rec.verify_bits),
            "efficiency_mean_per_frame": float(np.nanmean(frame_eff)) if np.any(np.isfinite(frame_eff)) else None,
            "rounds_per_frame": float(stats["rounds"] / frames),
            "time_per_frame_s": float(stats["time"] / frames),
            "residual_errors_after_success": int(stats["residual_after_success"]),
        },
        "disclosed_bits": int(stats["disclosed"]),
        "disclosed_bits_per_probe": float(stats["disclosed"] / probes),
        "entropy_budget": {
            "h_min_per_bit": budget.h_min_per_bit, "mcv_p_upper": budget.mcv.p_upper, "mcv_symbol_bits": symbol_width,
            "mcv_symbols": budget.mcv.n, "eve_leak_per_bit": budget.eve_leak_per_bit,
            "eve_leak_source": budget.eve_leak_source, "secret_per_bit": budget.secret_per_bit,
        },
        "privacy_amplification": {"method": "toeplitz", "eps": eps, "lhl_cost_bits_per_frame": 2 * math.log2(1 / eps),
                                  "frames_refused": int(stats["refused"])},
        "final_key_bits": final_bits,
        "final_keys": len(keys_a),
        "block_success_rate": float(len(keys_a) / frames),
        "final_key_agreement": float(np.mean(agree)) if agree else float("nan"),
        "eve_bit_agreement": (float(np.mean(np.concatenate(keys_e) == np.concatenate(keys_a)))
                              if keys_e else None),
        "eve_exact_keys": (int(sum(np.array_equal(x, y) for x, y in zip(keys_a, keys_e, strict=True)))
                           if keys_e else None),
        "secret_bits_per_probe": float(final_bits / probes),  # the tail shorter than a frame counts as lost
        "unused_tail_bits": int(a.size - used),
        **{k: v for k, v in system.skr_bound().items() if k == "skr_bound_bits"},
        "skr": system.skr_bound(),
    }
    if nist and final_bits >= 128:
        report["nist_pass_ratio"] = nist_pass_ratios(keys_a)
        report["nist_blocks"] = final_bits // 128
        report["nist_rank_groups"] = final_bits // (38 * 1024)
    else:
        report["nist_pass_ratio"] = {}
        report["nist_blocks"] = 0
    report["initial_nist_pass_ratio"] = initial_nist  # Alice's initial keys, before reconciliation and hashing
    report["time_s"] = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2, no usage dump, no traceback
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m keygen.agree", description="End-to-end key agreement report (docs/keygen.md).")
    p.add_argument("--system", required=True, choices=SYSTEMS)
    p.add_argument("--design", default=None, help="irs: pkgnet|water_filling|exact|identity|random (default "
                   "water_filling); nearfield: a scenario baseline name or pkgnet (default optimal_beam); "
                   "multiuser: beam_selection|strongest_overlapping|eigen_beams|optimal|random|pkgnet "
                   "(default beam_selection)")
    p.add_argument("--export", default=None, help="PKG-Net .pt2 for --design pkgnet")
    p.add_argument("--setting", default="case2", choices=("case1", "case2"), help="irs: SKR bound of 001 case 1 or 2")
    p.add_argument("--data", default=None, help="kgnet: dual-band HDF5 file")
    p.add_argument("--checkpoint", default=None, help="kgnet: KGNet checkpoint (last.ckpt)")
    p.add_argument("--mapping", default="kgnet", choices=("kgnet", "none"))
    p.add_argument("--snr-db", type=float, default=None,
                   help="kgnet: AWGN SNR in dB (default 30); multiuser: total per-UT SNR of the point (default 20)")
    p.add_argument("--user", default="all", help="multiuser: the UT the BS keys with (0..K-1) or 'all' (default: "
                   "every UT, report per UT and summed)")
    p.add_argument("--gap", type=float, default=None, help="multiuser: spacing of the UTs' cluster centres in "
                   "sin(AoD) (default 0.24: separated; e.g. 0.05: overlapping)")
    p.add_argument("--shared", action="store_true", help="multiuser: UT pairs share two scatterers "
                   "(configs/pkgnet/multiuser_shared.yaml's scenario; SKR bound (27))")
    p.add_argument("--max-mode-leak", type=float, default=None, help="multiuser: drop a canonical pair when another "
                   "UT's information about it exceeds this fraction of Alice-Bob's (default 0.25)")
    p.add_argument("--bs-antennas", type=int, default=None, help="multiuser: M (default 128)")
    p.add_argument("--num-users", type=int, default=None, help="multiuser: K (default 6)")
    p.add_argument("--probes", type=int, default=20000)
    p.add_argument("--calibration-probes", type=int, default=20000)
    p.add_argument("--method", default="cascade", choices=("cascade", "ldpc"))
    p.add_argument("--block-bits", type=int, default=None,
                   help="frame length (default: cascade the power of two >= max(4096, 16 k1), "
                        "at most 65536; ldpc 2048)")
    p.add_argument("--quantiser", default=None, choices=("equiprobable", "gdqg"))
    p.add_argument("--levels", type=int, default=None, help="K (power of two >= 2)")
    p.add_argument("--guard", type=float, default=None, help="equiprobable guard probability in [0, 1)")
    p.add_argument("--epsilon", type=float, default=None, help="GDQG guard epsilon")
    p.add_argument("--eps", type=float, default=1e-10, help="leftover-hash security parameter in (0, 1)")
    p.add_argument("--symbol-bits", type=int, default=8, help="MCV symbol width in bits (1..16)")
    p.add_argument("--rho-min", type=float, default=0.7,
                   help="irs, multiuser: minimum canonical correlation of a used pair")
    p.add_argument("--p-max-dbm", type=float, default=None, help="irs: P_max in dBm (default 25, 001 Sec. VII-B)")
    p.add_argument("--eta", type=float, default=None, help="irs: BS correlation eta in [0, 1) (default 0.4)")
    p.add_argument("--kappa", type=float, default=None, help="irs: Rician factor kappa >= 0 (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the report as JSON here")
    p.add_argument("--no-progress", action="store_true")
    return p


def _validate(p: argparse.ArgumentParser, args) -> None:
    if args.probes < 100:
        p.error(f"--probes {args.probes} is not allowed; need an integer >= 100")
    if args.calibration_probes < 100:
        p.error(f"--calibration-probes {args.calibration_probes} is not allowed; need an integer >= 100")
    if args.block_bits is not None and args.block_bits < 256:
        p.error(f"--block-bits {args.block_bits} is not allowed; need an integer >= 256")
    if not 0.0 < args.eps < 1.0:
        p.error(f"--eps {args.eps} is not allowed; the security parameter must lie in (0, 1)")
    if args.levels is not None and (args.levels < 2 or args.levels & (args.levels - 1)):
        p.error(f"--levels {args.levels} is not allowed; K must be a power of two >= 2")
    if args.guard is not None and not 0.0 <= args.guard < 1.0:
        p.error(f"--guard {args.guard} is not allowed; it must lie in [0, 1)")
    if args.epsilon is not None and not 0.0 < args.epsilon < 0.5:
        p.error(f"--epsilon {args.epsilon} is not allowed; it must lie in (0, 0.5)")
    if not 1 <= args.symbol_bits <= 16:
        p.error(f"--symbol-bits {args.symbol_bits} is not allowed; it must lie in 1..16")
    if args.seed < 0:
        p.error(f"--seed {args.seed} is not allowed; need an integer >= 0")
    if not 0.0 <= args.rho_min < 1.0:
        p.error(f"--rho-min {args.rho_min} is not allowed; it must lie in [0, 1)")
    if args.system == "kgnet" and args.data is None:
        p.error("--data is required for --system kgnet (a dual-band HDF5 file, e.g. data/indoor.h5)")
    if args.eta is not None and not 0.0 <= args.eta < 1.0:
        p.error(f"--eta {args.eta} is not allowed; it must lie in [0, 1)")
    if args.kappa is not None and not (math.isfinite(args.kappa) and args.kappa >= 0.0):
        p.error(f"--kappa {args.kappa} is not allowed; it must be a finite number >= 0")
    if args.p_max_dbm is not None and not math.isfinite(args.p_max_dbm):
        p.error(f"--p-max-dbm {args.p_max_dbm} is not allowed; it must be finite")
    if args.system != "irs" and (args.eta is not None or args.kappa is not None or args.p_max_dbm is not None):
        p.error("--p-max-dbm/--eta/--kappa apply to --system irs only")
    mu_only = {"--user": args.user != "all", "--gap": args.gap is not None, "--shared": args.shared,
               "--bs-antennas": args.bs_antennas is not None, "--num-users": args.num_users is not None,
               "--max-mode-leak": args.max_mode_leak is not None}
    if args.max_mode_leak is not None and not 0.0 <= args.max_mode_leak <= 1.0:
        p.error(f"--max-mode-leak {args.max_mode_leak} is not allowed; it must lie in [0, 1]")
    if args.system != "multiuser" and any(mu_only.values()):
        p.error(f"{', '.join(k for k, v in mu_only.items() if v)} apply to --system multiuser only")
    if args.system not in ("kgnet", "multiuser") and args.snr_db is not None:
        p.error("--snr-db applies to --system kgnet and multiuser only")
    if args.snr_db is not None and not math.isfinite(args.snr_db):
        p.error(f"--snr-db {args.snr_db} is not allowed; it must be finite")
    if args.user != "all" and not (args.user.isdigit()):
        p.error(f"--user {args.user} is not allowed; give a UT index >= 0 or 'all'")
    for flag, val, low in (("--bs-antennas", args.bs_antennas, 2), ("--num-users", args.num_users, 2)):
        if val is not None and val < low:
            p.error(f"{flag} {val} is not allowed; need an integer >= {low}")
    if args.json is not None and not Path(args.json).parent.is_dir():
        p.error(f"--json {args.json!r}: folder {str(Path(args.json).parent)!r} does not exist")
    if args.export is not None and args.design != "pkgnet":
        p.error(f"--export given but --design is {args.design!r}; use --design pkgnet")


def format_report(r: dict[str, Any]) -> str:
    """The printed table."""
    rc, eb = r["reconciliation"], r["entropy_budget"]
    rows = [
        ("system / design", f"{r['system']['system']} / {r['design']}"),
        ("probes", f"{r['probes']}"),
        ("initial key rate (bits/probe)", f"{r['initial_key_bits_per_probe']:.3f}"),
        ("initial KDR (Alice-Bob)", f"{r['initial_kdr']:.4f}"),
        ("Eve initial bit agreement", "-" if r["eve_initial_bit_agreement"] is None
         else f"{r['eve_initial_bit_agreement']:.4f}"),
        (f"reconciliation ({rc['method']}, {rc['frame_bits']}-bit frames)",
         f"{rc['frames']} frames, success {rc['frame_success_rate']:.4f}, efficiency {rc['efficiency']:.3f}, "
         f"{rc['rounds_per_frame']:.1f} rounds, {1e3 * rc['time_per_frame_s']:.1f} ms/frame"),
        ("disclosed bits (total / per probe)", f"{r['disclosed_bits']} / {r['disclosed_bits_per_probe']:.3f}"),
        ("entropy budget (bits/key bit)", f"h_min {eb['h_min_per_bit']:.4f} - Eve {eb['eve_leak_per_bit']:.4f} "
                                          f"= {eb['secret_per_bit']:.4f}"),
        ("final key bits / keys", f"{r['final_key_bits']} / {r['final_keys']} "
                                  f"(refused {r['privacy_amplification']['frames_refused']})"),
        ("final secret bits per probe", f"{r['secret_bits_per_probe']:.3f}"),
        ("SKR bound (bits/probe)", f"{r['skr_bound_bits']:.3f}  [{r['skr']['kind']}]"),
        ("final key agreement (blocks)", f"{r['final_key_agreement']:.4f}"),
        ("Eve bit agreement (final keys)", "-" if r["eve_bit_agreement"] is None else f"{r['eve_bit_agreement']:.4f}"),
    ]
    init = r.get("initial_nist_pass_ratio", {})
    for k, v in r["nist_pass_ratio"].items():
        before = f"   (initial keys: {init[k]:.4f})" if k in init and init[k] == init[k] else ""
        rows.append((f"NIST {k}", ("nan" if v != v else f"{v:.4f}") + before))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def format_multiuser_report(r: dict[str, Any]) -> str:
    """The printed table of :func:`run_multiuser_agreement`: one row per UT, then the pooled totals."""
    head = (f"{'UT':>3} {'Eve':>4} {'modes':>5} {'init b/p':>8} {'KDR':>7} {'eff':>6} {'secret b/p':>10} "
            f"{'bound':>7} {'agree':>6} {'Eve agr':>7}")
    lines = [f"system / design: multiuser / {r['design']}, {r['probes']} probes, SKR bound: {r['skr']['kind']}", head]
    for u in r["per_user"]:
        s, rc = u["system"], u["reconciliation"]
        lines.append(f"{s['user']:>3} {s['eve_ut']:>4} {len(s['modes_used']):>5} "
                     f"{u['initial_key_bits_per_probe']:>8.3f} "
                     f"{u['initial_kdr']:>7.4f} {rc['efficiency']:>6.3f} {u['secret_bits_per_probe']:>10.3f} "
                     f"{u['skr_bound_bits']:>7.3f} {u['final_key_agreement']:>6.4f} "
                     f"{(u['eve_bit_agreement'] if u['eve_bit_agreement'] is not None else float('nan')):>7.4f}")
    for u in r.get("users_without_key", []):
        lines.append(f"{u['user']:>3}  no key (bound {u['skr_bound_bits']:.3f}): {u['reason']}")
    rc = r["reconciliation"]
    lines += [f"total: final secret bits per probe {r['secret_bits_per_probe']:.3f} vs SKR bound "
              f"{r['skr_bound_bits']:.3f}; final key agreement {r['final_key_agreement']:.4f} "
              f"({r['final_keys']} keys); Eve bit agreement {r['eve_bit_agreement']:.4f}; efficiency "
              f"{rc['efficiency']:.3f}; frames {rc['frames']}, success {rc['frame_success_rate']:.4f}"]
    for k, v in r["nist_pass_ratio"].items():
        lines.append(f"NIST {k} {'nan' if v != v else f'{v:.4f}'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    _validate(p, args)
    point = {}
    for key, val in (("P_max_dbm", args.p_max_dbm), ("eta", args.eta), ("kappa", args.kappa)):
        if val is not None:
            point[key] = val
    if args.system == "multiuser":
        for key, val in (("snr_db", args.snr_db), ("gap", args.gap)):
            if val is not None:
                point[key] = val
    scenario_kw = {k: v for k, v in (("M", args.bs_antennas), ("K", args.num_users)) if v is not None}
    user = None if args.user == "all" else int(args.user)
    try:
        system = make_system(args.system, design=args.design, export=args.export, setting=args.setting,
                             data=args.data, checkpoint=args.checkpoint, mapping=args.mapping, snr_db=args.snr_db,
                             point=point, rho_min=args.rho_min, user=user, shared=args.shared,
                             max_mode_leak=0.25 if args.max_mode_leak is None else args.max_mode_leak,
                             scenario_kw=scenario_kw or None)
        q = {}
        if args.quantiser is not None:
            q["method"] = args.quantiser
        if args.levels is not None:
            q["levels"] = args.levels
        if args.guard is not None:
            q["guard"] = args.guard
        if args.epsilon is not None:
            q["epsilon"] = args.epsilon
        kw = dict(probes=args.probes, calibration_probes=args.calibration_probes, seed=args.seed, method=args.method,
                  block_bits=args.block_bits, eps=args.eps, quantiser=q, symbol_width=args.symbol_bits,
                  progress=not args.no_progress)
        if args.system == "multiuser" and user is None:
            report = run_multiuser_agreement(system, **kw)
        else:
            report = run_agreement(system, **kw)
    except ValueError as exc:
        p.error(str(exc).splitlines()[0])
    print(format_multiuser_report(report) if "per_user" in report else format_report(report))
    if args.json is not None:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
