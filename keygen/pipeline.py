"""The key-agreement pipeline: observations -> quantisation -> reconciliation -> privacy amplification -> report.

It knows no system. The caller (``python train.py agree``, :mod:`agreement`) simulates probing rounds of
some physical model and hands over real observation arrays of Alice, Bob and Eve, one probe per row and
columns aligned across the three (:class:`Observations`), twice: a calibration run and the key run, drawn
independently. It also states the numbers only the model knows: the SKR bound (``bound``) and, where it has
one, a closed-form upper bound on Eve's information per probe (``eve_leak_bits_per_probe``).

:func:`run_pipeline` then

1. calibrates (:func:`calibrate`): quantises the calibration run, estimates the min-entropy per key bit
   (SP 800-90B most-common-value on ``symbol_width``-bit symbols) and Eve's information per key bit (the
   stated bound divided by the key bits per probe, or a plug-in estimate on Eve's quantised symbols), and
   the disagreement rate the reconciler is set for (99.9 % Clopper-Pearson upper bound);
2. quantises the key run (guard-band exchange on the public channel), interleaves the streams with a public
   permutation and cuts them into frames of ``block_bits``;
3. per frame reconciles (Cascade or LDPC syndrome, with a verification hash), lets Eve replay the public
   transcript on her own string, and compresses Alice's, Bob's and Eve's strings with one public Toeplitz
   seed to the leftover-hash length (:func:`keygen.privacy.privacy_amplify`), or refuses the frame when
   the budget is not positive; a frame that fails verification yields no key;
4. reports (:class:`AgreementResult`): key rates, disagreement, disclosed bits, efficiency, the entropy
   budget, final-key agreement, Eve's bit agreement and the NIST SP 800-22 pass ratios of the final keys.

Deterministic for a given ``seed`` and observations (protocol randomness from ``np.random.default_rng(seed)``).
numpy/scipy only (plus ``ldpc`` for LDPC reconciliation and ``tqdm`` for the progress bar).
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .channel import PublicChannel
from .entropy import EntropyBudget, bits_to_symbols, mcv_min_entropy, plugin_mutual_information
from .privacy import BudgetNotPositive, check_eps, privacy_amplify
from .quantize import check_levels, quantise_eve, quantise_pair
from .randomness import nist_pass_ratios
from .reconcile import Cascade, LDPCSyndrome, binary_entropy

__all__ = ["METHODS", "QUANTISERS", "AgreementResult", "Observations", "calibrate", "check_settings",
           "quantiser_settings", "run_pipeline"]

METHODS = ("cascade", "ldpc")
QUANTISERS = ("equiprobable", "gdqg")


@dataclass
class Observations:
    """Per-probe real observations, one probe per row, columns aligned across the three parties.

    Attributes:
        alice, bob: ``[n, D]`` float64; eve: ``[n, D]`` or ``None`` (no Eve simulated).
        quantiser: per-run quantiser parameters the observations come with (``mean``/``std`` of the
            equiprobable quantiser when the caller has normalised them, e.g. ``{"mean": 0.0, "std": 1.0}``).
    """

    alice: np.ndarray
    bob: np.ndarray
    eve: np.ndarray | None
    quantiser: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("alice", "bob", "eve"):
            v = getattr(self, name)
            if v is None and name == "eve":
                continue
            arr = np.asarray(v)
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
                raise ValueError(f"{name}'s observations must be a real [n, D] array, got shape {arr.shape} "
                                 f"and dtype {arr.dtype}")
            setattr(self, name, arr)
        shapes = {self.alice.shape, self.bob.shape} | ({self.eve.shape} if self.eve is not None else set())
        if len(shapes) != 1:
            raise ValueError(f"Alice's, Bob's and Eve's observations must have one shape, got {sorted(shapes)}")

    @property
    def probes(self) -> int:
        return int(self.alice.shape[0])


@dataclass
class AgreementResult:
    """Output of :func:`run_pipeline`: the final keys (one per frame that yielded a key) and the report."""

    keys_alice: list[np.ndarray]
    keys_bob: list[np.ndarray]
    keys_eve: list[np.ndarray] | None
    report: dict[str, Any]


def quantiser_settings(default: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any]:
    """A system's default quantiser overridden by ``given``; keys of the other method dropped, defaults filled.

    ``method`` ``"equiprobable"`` (``levels``, ``guard``, ``code`` gray) or ``"gdqg"`` (002 Algorithm 1:
    ``levels``, ``epsilon``, ``code`` binary). Given another method than the default's, the default's
    parameters are not carried over.
    """
    default = dict(default or {})
    given = {} if given is None else dict(given)
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
        raise ValueError(f"quantiser method = {method!r} is not allowed; use one of {QUANTISERS}")
    q.setdefault("levels", 2)
    return q


def _positive_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise ValueError(f"{name} = {value!r} is not allowed; it must be an integer >= {low}")
    return int(value)


def check_settings(*, method: str = "cascade", block_bits: int | None = None, eps: float = 1e-10,
                   symbol_width: int = 8, seed: int = 0, quantiser: dict[str, Any] | None = None) -> None:
    """Refuse bad pipeline settings (a ValueError naming the value) before any observation is simulated."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r} is not allowed; use one of {METHODS}")
    if block_bits is not None:
        _positive_int(block_bits, "block_bits", 256)
    check_eps(eps)
    if not (isinstance(symbol_width, numbers.Integral) and not isinstance(symbol_width, bool)
            and 1 <= symbol_width <= 16):
        raise ValueError(f"symbol_width = {symbol_width!r} is not allowed; it must be an integer in 1..16")
    _positive_int(seed, "seed", 0)
    if quantiser is not None:
        q = quantiser_settings(None, quantiser)
        check_levels(q["levels"])


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


def calibrate(cal: Observations, q: dict[str, Any], width: int,
              eve_leak_bits_per_probe: float | None = None) -> tuple[EntropyBudget, float]:
    """Entropy budget per key bit and the disagreement-rate estimate for the reconciler, from a calibration run.

    Eve's information per key bit: ``eve_leak_bits_per_probe`` (a closed-form bound on I(Alice's observation;
    Eve's) per probe, stated by the caller) divided by the key bits per probe (data processing), else a plug-in
    estimate on 4-bit symbols of Alice's and Eve's quantised strings plus 3 standard errors, else 0 (no Eve).
    """
    ka, kb, ke, _ = _quantise(cal, q)
    a, _ = _stream(ka)
    b, _ = _stream(kb)
    if a.size < 64 * width:
        raise ValueError(f"calibration produced only {a.size} key bits; use more calibration probes")
    mcv = mcv_min_entropy(bits_to_symbols(a, width), width)
    per_probe = a.size / len(ka)
    if eve_leak_bits_per_probe is not None:
        leak = eve_leak_bits_per_probe / per_probe
        source = "closed form I(y_a; y_e) per probe / key bits per probe (data processing)"
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


def _progress(label: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the project
        def tqdm(x, **_):
            return x
    return lambda it: tqdm(it, desc=label, disable=not enabled)


def run_pipeline(observations: Observations, calibration: Observations, *, bound: dict[str, Any],
                 quantiser: dict[str, Any] | None = None, method: str = "cascade", block_bits: int | None = None,
                 eps: float = 1e-10, symbol_width: int = 8, eve_leak_bits_per_probe: float | None = None,
                 seed: int = 0, nist: bool = True, progress: bool = False, label: str = "") -> AgreementResult:
    """Run the whole key agreement on the observations; return the final keys and the report.

    Args:
        observations: the key run (Alice's, Bob's, Eve's arrays).
        calibration: an independent run of the same system (sets the entropy budget and the reconciler).
        bound: the SKR the caller states, at least ``{"skr_bound_bits": float, "kind": str}`` (bits per probe);
            reported as ``skr_bound_bits`` and, whole, as ``skr``.
        quantiser: full quantiser settings (:func:`quantiser_settings`).
        method: ``"cascade"`` or ``"ldpc"``. block_bits: frame length (default: Cascade the power of two
            ``>= max(4096, 16 k1)``, at most 65536; LDPC 2048).
        eps: leftover-hash security parameter in (0, 1). symbol_width: MCV symbol width in bits.
        eve_leak_bits_per_probe: closed-form bound on Eve's information per probe, or ``None`` (estimated).
        seed: protocol randomness (interleaver, reconciliation permutations, hash seeds).
        nist: run the NIST SP 800-22 tests on the initial and the final keys.
        progress, label: a progress bar over the frames and its label.

    Raises:
        ValueError: bad settings, too few calibration bits or probes for one frame, or a disagreement above
            what the reconciler corrects.
    """
    t0 = time.perf_counter()
    q = quantiser_settings(None, quantiser)
    check_settings(method=method, block_bits=block_bits, eps=eps, symbol_width=symbol_width, seed=seed, quantiser=q)
    eps = float(eps)
    if not isinstance(bound, dict) or not isinstance(bound.get("skr_bound_bits"), numbers.Real):
        raise ValueError(f"bound must be a dict with a number 'skr_bound_bits', got {bound!r}")
    rec = Cascade() if method == "cascade" else LDPCSyndrome()
    probes = observations.probes

    budget, e_est = calibrate(calibration, q, symbol_width, eve_leak_bits_per_probe)
    if block_bits is None:
        # Cascade needs frames well beyond its last-pass block (8 k1): at least 16 k1, a power of two >= 4096.
        k1 = rec.k1_factor / max(e_est, 1e-6) if method == "cascade" else 0
        block_bits = max(4096, 1 << math.ceil(math.log2(max(16 * k1, 1)))) if method == "cascade" else 2048
        block_bits = min(block_bits, 1 << 16)
    ka, kb, ke, tr = _quantise(observations, q)
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
                         "use more probes")
    keys_a, keys_b, keys_e = [], [], []
    stats = {"failed": 0, "refused": 0, "disclosed": 0, "rounds": 0, "time": 0.0, "eff_num": 0.0, "eff_den": 0.0,
             "residual_after_success": 0}
    frame_eff = []
    for i in _progress(label or f"{method} frames", progress)(range(frames)):
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
        entropy = block_bits * budget.secret_per_bit
        try:  # Alice draws the public seed and announces it; Bob and Eve hash with the same seed
            pa = privacy_amplify(res.key(), entropy_bits=entropy, disclosed_bits=res.disclosed_bits, eps=eps,
                                 rng=rng, channel=ch)
        except BudgetNotPositive:
            stats["refused"] += 1
            continue
        keys_a.append(pa.key)
        keys_b.append(privacy_amplify(res.bob_key(), entropy_bits=entropy, disclosed_bits=res.disclosed_bits,
                                      eps=eps, seed_bits=pa.seed_bits).key)
        if e is not None:
            keys_e.append(privacy_amplify(rec.replay(e[sl], res.transcript), entropy_bits=entropy,
                                          disclosed_bits=res.disclosed_bits, eps=eps, seed_bits=pa.seed_bits).key)

    final_bits = int(sum(k.size for k in keys_a))
    agree = [bool(np.array_equal(x, y)) for x, y in zip(keys_a, keys_b, strict=True)]
    used = frames * block_bits
    report: dict[str, Any] = {
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
        "skr_bound_bits": float(bound["skr_bound_bits"]),
        "skr": dict(bound),
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
    return AgreementResult(keys_a, keys_b, keys_e if e is not None else None, report)
