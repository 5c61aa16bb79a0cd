"""Beam-domain multi-user PKG (paper 003) as a key-agreement system.

Probing rounds of :func:`physics.multiuser.simulate_probing` (pilot reuse) at one statistical-CSI point of the
config's :class:`physics.multiuser.MultiUserScenario` (default :meth:`MultiUserScenario.point`: separated
clusters, 10 dB per UT); Alice = the BS's uplink estimate for UT k, Bob = UT k's downlink estimate, Eve = a
curious other UT's downlink estimate (the UT sharing scatterers, else the one that learns most). Canonical pairs
from the public covariance as for ``irs``, minus the pairs another UT sees as well as Bob. SKR bound: 003 (30)
of the UT ((27) with shared scatterers); Eve's leak bound: Gaussian I(used canonical variables; z_e).
:func:`run_all_users` runs every UT on the same probes and sums.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from keygen.canonical import canonical_pairs, gaussian_mi_bits
from keygen.pipeline import Observations
from physics import multiuser as mu
from physics.seeding import generator_for

from .system import Learned, System, run_system

__all__ = ["MultiUserSystem", "run_all_users"]


def _mu_mixing(P, C, u, v):
    """Linear maps from the stacked path gains ``a [K N_P]`` to every UT's observations under pilot reuse.

    ``P [K, M, M_e]``, ``C [K, N_k, N_e]`` beam-domain designs; ``u [K, N_P, N_k]``, ``v [K, N_P, M]`` the
    beam-domain path vectors of :meth:`MultiUserScenario.paths`. Returns ``D, E [K, d, K N_P]`` with
    ``z_D,k = D_k a + n_D,k`` (UT k's downlink LS estimate, vec(Z^T) as :func:`physics.multiuser.simulate_probing`
    stacks it) and ``z_U,k = E_k a + n_U,k`` (the BS's uplink estimate for UT k), and the noise covariances
    ``nD = I kron C_k^H C_k``, ``nU = P_k^T P_k^* kron I`` ``[K, d, d]``; ``d = M_e N_e``. Written from 003
    (21)-(26) here (the module's own helper is private); tests check it against (30) and a Monte Carlo.
    """
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


def _mi(R: torch.Tensor, d1: int, d2: int) -> float:
    return gaussian_mi_bits(R.numpy(), d1, d2)


class MultiUserSystem(System):
    """Beam-domain multi-user PKG (003) at one statistical-CSI point; the BS keys with UT ``user``.

    One probe = one probing round of :func:`physics.multiuser.simulate_probing` (pilot reuse: random unitary
    pilots, noise, LS estimates; fresh Rayleigh path gains per round). Alice = the BS's uplink estimate
    ``z_U,k`` for UT k, Bob = UT k's downlink estimate ``z_D,k`` (``d = M_e N_e`` complex each), Eve = a
    curious other UT's own downlink estimate ``z_D,i``: the UT sharing scatterers with k where the scenario
    has them, else the other UT that learns most about Alice's used canonical variables (under pilot reuse,
    the one whose channel overlaps most with UT k's precoder). Alice and Bob apply the canonical-correlation
    transform of their observations computed from the public second-order statistics (the statistical CSI and
    the design are public); pairs with ``rho < rho_min`` are not used, nor pairs that another UT sees almost as
    well (``max_j I(u_i; z_D,j) > max_mode_leak * I(u_i; v_i)``: a shared scatterer); Eve forms the LMMSE
    estimate of Alice's canonical variables. Eve's leak bound: Gaussian ``I(u_used; z_D,i)`` of the used
    canonical variables (Alice's key bits are a function of them; data processing). SKR bound: 003 (30) of UT k
    (scenario closed form; equals ``I(z_U,k; z_D,k)``), or (27) over all curious UTs where UTs share scatterers.

    Args:
        scenario: the config's :class:`MultiUserScenario` (e.g. ``configs/pkgnet/multiuser.yaml``; with shared
            scatterers ``multiuser_shared.yaml``).
        design: ``beam_selection`` (Algorithm 1), ``strongest_overlapping`` (Fig. 8), ``eigen_beams``,
            ``optimal`` (per-instance projected ascent of the scenario's objective), ``random``, ``pkgnet``
            (needs ``learned``). ``theorem2`` is refused: its eigenvectors of the full Lambda are not a BS
            precoder times a UT combiner, so no probing round realises them; the report gives its rate as a
            ceiling.
        learned, source: the trained design and where it came from.
        user: the UT (0..K-1). :meth:`for_user` gives the same system for another UT (shared simulation).
        point: :meth:`MultiUserScenario.point` fields: ``snr_db`` (each UT's total path SNR, default 10 dB), ``gap``
            (default 0.24: separated clusters), ``rho`` (shared-scatterer gain correlation, default 0.9).
    """

    name = "multiuser"
    DESIGNS = ("beam_selection", "strongest_overlapping", "eigen_beams", "optimal", "random", "pkgnet", "theorem2")
    DEFAULT_DESIGN = "beam_selection"
    default_quantiser = {"method": "equiprobable", "levels": 2, "guard": 0.2, "code": "gray"}
    CHUNK = 4000

    @classmethod
    def check_design(cls, design: str) -> None:
        if design not in cls.DESIGNS:
            raise ValueError(f"design = {design!r} is not allowed for multiuser; choose one of {cls.DESIGNS}")
        if design == "theorem2":
            raise ValueError("design 'theorem2' is not allowed for multiuser probing: Theorem 2's optimum (the top "
                             "eigenvectors of the full Lambda_k) is not conj(P~) kron C~, so no BS precoder and UT "
                             "combiner realise it; its rate is reported as 'theorem2_ceiling_bits'; use 'optimal'")

    def __init__(self, scenario, design: str = "beam_selection", *, learned: Learned | None = None,
                 source: dict[str, Any] | None = None, user: int = 0, point: dict[str, Any] | None = None,
                 rho_min: float = 0.7, max_mode_leak: float = 0.25, design_seed: int = 0):
        if not isinstance(scenario, mu.MultiUserScenario):
            raise ValueError(f"the multiuser system needs a MultiUserScenario, got {type(scenario).__name__}")
        self.check_design(design)
        if (design == "pkgnet") != (learned is not None):
            raise ValueError("design 'pkgnet' needs a trained net (--ckpt_path or --export), and only it")
        if not 0.0 <= rho_min < 1.0:
            raise ValueError(f"rho_min = {rho_min!r} is not allowed; it must lie in [0, 1)")
        if not 0.0 <= max_mode_leak <= 1.0:
            raise ValueError(f"max_mode_leak = {max_mode_leak!r} is not allowed; it must lie in [0, 1]")
        self.design, self.source, self.rho_min = design, dict(source or {}), float(rho_min)
        self.max_mode_leak = float(max_mode_leak)
        self.scenario = sc = scenario
        self.shared = bool(sc.shared_paths)
        if sc.K < 2:
            raise ValueError(f"the multiuser system needs K >= 2 UTs (one is Eve), got K = {sc.K}")
        self.point_fields = dict(point or {})
        self.batch = sc.point(1, **self.point_fields)
        g = torch.Generator().manual_seed(int(design_seed))
        if design == "pkgnet":
            des = {k: v for k, v in learned(sc.features(self.batch)).items() if k in ("P", "C")}
            if not all(bool(torch.isfinite(t).all()) for t in des.values()):
                raise ValueError("the trained net gave non-finite outputs at this point (outside its feature ranges?)")
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
        other = copy.copy(self)
        other._set_user(user)
        return other

    def _joint(self, parts):
        """Covariance of the stacked observations ``[(kind, ut), ...]``, kind ``"U"`` (BS) or ``"D"`` (UT)."""
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
        K = self.scenario.K
        if not (isinstance(user, int) and 0 <= user < K):
            raise ValueError(f"user = {user!r} is not allowed; choose a UT in 0..{K - 1}")
        self.user = k = user
        d = self.P.shape[-1] * self.C.shape[-1]
        self.d = d
        joints = {i: self._joint([("U", k), ("D", k), ("D", i)]) for i in range(K) if i != k}
        C2 = next(iter(joints.values()))[:2 * d, :2 * d]  # Alice and Bob: the same in every joint
        A, B, rho = canonical_pairs(C2.numpy(), d)
        self.A, self.B, self.rho = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(rho)
        sel = list(range(d)) + list(range(2 * d, 3 * d))

        def leak(R, cols):  # I(u_cols; z_e), u = A^H z_U: Alice's key bits are a function of u_used
            if not cols:
                return 0.0
            T = torch.block_diag(self.A[:, cols].mH, torch.eye(d, dtype=R.dtype))
            return _mi(T @ R[sel][:, sel] @ T.mH, len(cols), d)

        strong = [i for i in range(d) if float(self.rho[i]) >= max(self.rho_min, 1e-6)]
        # A pair that some other UT sees as well as Bob does (a shared scatterer) only feeds Eve: keep pair i
        # only if max over the other UTs of I(u_i; z_D,j) <= max_mode_leak * I(u_i; v_i) (public statistics).
        self.mode_leak = {i: max(leak(R, [i]) for R in joints.values()) for i in strong}
        self.modes = [i for i in strong if self.mode_leak[i]
                      <= self.max_mode_leak * -math.log2(1.0 - float(self.rho[i]) ** 2)]
        # no mode: observations() refuses (run_all_users skips the UT)
        self.leaks = {i: leak(R, self.modes) for i, R in joints.items()}
        self.leaks_full = {i: _mi(R[sel][:, sel], d, d) for i, R in joints.items()}
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
        self.I_ab = _mi(self.C3, d, d)
        self.I_ae = self.leaks[self.eve]
        self.I_ae_full = self.leaks_full[self.eve]
        # I(z_U; z_D | z_e) = I(z_U; (z_D, z_e)) - I(z_U; z_e): an upper bound on the SKR against this Eve
        self.I_ab_given_e = max(0.0, _mi(self.C3, d, 2 * d) - self.I_ae_full)

    def _simulate(self, n: int, seed: int):
        key = (n, seed)
        if key not in self._cache:
            if len(self._cache) >= 2:  # calibration + key run; for_user views share this dict
                self._cache.pop(next(iter(self._cache)))
            g = generator_for(seed, "multiuser-probing")
            b = self.batch
            zD, zU = [], []
            for start in range(0, n, self.CHUNK):
                z = mu.simulate_probing(self.P, self.C, b["sin_aoa"][0], b["sin_aod"][0], self.G,
                                        min(self.CHUNK, n - start), g)
                zD.append(z["z_D"])
                zU.append(z["z_U"])
            self._cache[key] = (torch.cat(zD), torch.cat(zU))
        return self._cache[key]

    def observations(self, n: int, seed: int) -> Observations:
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

    def skr_bound(self) -> dict[str, Any]:
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
        return {"system": "multiuser", "design": self.design, "export": self.source.get("export"),
                **({"checkpoint": self.source["checkpoint"]} if "checkpoint" in self.source else {}),
                "user": self.user, "eve_ut": self.eve, "eve_rule": self.eve_rule,
                "eve_leak_by_ut": {str(i): v for i, v in self.leaks.items()},
                "eve_leak_all_of_alice_by_ut": {str(i): v for i, v in self.leaks_full.items()},
                "scenario": {k: sc.describe()[k] for k in ("scenario", "M", "K", "N_k", "N_P", "M_e", "N_e",
                                                           "objective", "budget", "shared_paths")},
                "point": {k: v.reshape(-1).tolist() for k, v in self.batch.items()},
                "canonical_correlations": [float(r) for r in self.rho], "modes_used": self.modes,
                "mode_leak_bits": {str(i): v for i, v in self.mode_leak.items()}, "max_mode_leak": self.max_mode_leak}


def run_all_users(system: MultiUserSystem, users: Sequence[int] | None = None, **kw) -> dict[str, Any]:
    """:func:`agreement.system.run_system` for every UT in ``users`` (default all) on the same probing rounds; the
    report holds ``per_user`` reports and pooled totals (bits and bounds summed over UTs, agreements pooled over
    blocks and bits, NIST ratios pooled over 128-bit blocks / rank groups). A UT that yields no key (no
    canonical pair above ``rho_min``, or a disagreement above what the reconciler corrects) is listed in
    ``users_without_key`` with the reason; it adds 0 secret bits and its SKR bound still counts."""
    t0 = time.perf_counter()
    users = list(range(system.scenario.K)) if users is None else list(users)
    reps, skipped = [], []
    for k in users:
        try:
            reps.append(run_system(system.for_user(k), **kw))
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
