"""Sliced (multilevel) soft-decision reconciliation with irregular LDPC syndrome codes and retries.

Alice quantises each real component into ``K = 2^q`` equiprobable levels (:mod:`keygen.slicing`;
``q`` per component from its correlation by :func:`keygen.slicing.choose_bits`, a public rule) and
Bob keeps his continuous values. The ``q`` bit-slices are reconciled one *stage* at a time in the
public decoding order (multistage decoding): at each stage Bob computes the exact LLR of every
slice bit from his value and the slices already reconciled (:func:`keygen.slicing.slice_llrs`).

Per stage and component, from the exact conditional entropy ``H = H(S | Y, earlier slices)``:

* ``"disclose"`` -- when a code would have a rate below ``min_rate`` (``1 - efficiency * H <
  min_rate``, i.e. ``H`` near 1 bit), Alice sends the slice in the clear (``n`` disclosed bits);
* ``"code"`` (reported as ``"verify"`` when the frame needed no syndrome) -- otherwise the slice
  joins the stage's LDPC frame (all coded components of the stage together, one frame of ``N``
  bits). Alice sends the syndrome ``H a`` of ``m0 = ceil(efficiency * sum n H + backoff *
  sqrt(sum n V))`` bits (``V`` the slice channel's dispersion, the finite-length term of the normal
  approximation of Polyanskiy, Poor, Verdu, IEEE Trans. IT 56(5), 2010), the code being an
  irregular LDPC code designed for the frame's exact soft channel at rate ``1 - m0/N``
  (:func:`keygen.ldpc_codes.design_distribution`) and built by progressive edge growth
  (:func:`keygen.ldpc_codes.peg_parity_check_matrix`). When the expected number of Bob's
  hard-decision errors in the frame is below ``no_code_errors`` no
  syndrome is sent at first (hash only).

Bob decodes by belief propagation with his per-bit priors (``decoder="ldpc"``:
``ldpc.BpDecoder(H, error_channel=p, bp_method="product_sum", schedule="parallel")`` on the
error pattern relative to his hard decision ``b``, i.e. the syndrome ``H a xor H b`` and priors
``p_i = 1 / (1 + exp(|LLR_i|))``; ``decoder="numpy"``: :func:`keygen.ldpc_codes.syndrome_bp`, the
same updates, several times faster here). When BP satisfies the syndrome Alice sends a
``verify_bits`` Toeplitz hash of the frame under a fresh public seed; Bob compares. A frame that
does not converge or whose hash differs is retried with ``max(16, ceil(retry_step * sum n H + sqrt(sum n V) / 2))``
more syndrome bits (splitting that many checks, :func:`keygen.ldpc_codes.split_checks`), at most
``max_retries`` times; then the reconciliation fails and yields no key. Every syndrome bit, extra
bit, hash bit and outright-disclosed bit is counted on the :class:`~keygen.reconcile.PublicChannel`.

The stages of components with different ``q`` are aligned at the end of the decoding order (the
last stage of every component is the last global stage), so each global stage mixes slices of
similar role. Eve replays the public transcript with her own observation and correlation
(:meth:`SlicedReconciler.replay`): same LLR and decoder code path.

numpy/scipy and ``ldpc`` (imported on use); :class:`PublicChannel` comes from
:mod:`keygen.channel`, Toeplitz hashing from :mod:`keygen.privacy`, the plans and reports from
:mod:`keygen.sliced_report`.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from . import slicing as sl
from .channel import PublicChannel
from .ldpc_codes import DegreeDistribution, design_distribution, peg_parity_check_matrix, split_checks, syndrome_bp
from .privacy import toeplitz_hash, toeplitz_seed
from .sliced_report import ComponentPlan, EveReplay, SlicedResult, SliceReport, StagePlan

__all__ = ["ComponentPlan", "EveReplay", "SliceReport", "SlicedReconciler", "SlicedResult", "StagePlan"]

DECODERS = ("ldpc", "numpy")


def _check_real(value, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} = {value!r} is not allowed; it must be a finite number")
    v = float(value)
    if (v <= low if low_open else v < low) or (v >= high if high_open else v > high):
        lb = "(" if low_open else "["
        rb = ")" if high_open else "]"
        raise ValueError(f"{name} = {v!r} is not allowed; it must lie in {lb}{low}, {high}{rb}")
    return v


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} = {value!r} is not allowed; it must be an integer >= {low}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# plans and reports
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# code cache (codes are public and deterministic in their arguments)
# ---------------------------------------------------------------------------------------------

_CODES: OrderedDict[str, sp.csr_matrix] = OrderedDict()

_CODES_MAX = 24


def _code_key(N: int, m: int, dist: DegreeDistribution, girth: int, seed: int) -> str:
    lam = ",".join(f"{d}:{w:.10f}" for d, w in sorted(dist.variable.items()))
    return hashlib.sha256(f"peg-v2|{N}|{m}|{lam}|{girth}|{seed}".encode()).hexdigest()[:24]  # v2: PEG of this file


def _build_code(N: int, m: int, dist: DegreeDistribution, girth: int, seed: int, cache_dir: Path | None):
    key = _code_key(N, m, dist, girth, seed)
    H = _CODES.get(key)
    if H is not None:
        _CODES.move_to_end(key)
        return H
    path = cache_dir / f"peg_{key}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        z = np.load(path)
        H = sp.csr_matrix((np.ones(z["indices"].size, dtype=np.uint8), z["indices"], z["indptr"]), shape=(m, N))
    else:
        H = peg_parity_check_matrix(N, m, dist.variable_degrees(N), seed=seed, girth=girth)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, indices=H.indices.astype(np.int32), indptr=H.indptr.astype(np.int64))
    _CODES[key] = H
    while len(_CODES) > _CODES_MAX:
        _CODES.popitem(last=False)
    return H


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _syndrome(H: sp.csr_matrix, bits: np.ndarray) -> np.ndarray:
    return ((H @ bits.astype(np.int64)) & 1).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# the reconciler
# ---------------------------------------------------------------------------------------------


class SlicedReconciler:
    """Sliced soft-decision reconciliation (see the module docstring).

    Args:
        bits: bits per component (``int`` for all, or one per component); ``None`` applies
            :func:`keygen.slicing.choose_bits` with ``fraction`` and ``max_bits``.
        fraction, max_bits: the public rule for ``bits``.
        labelling: ``"natural"`` (default) or ``"gray"``.
        order: decoding order, ``"lsb_first"`` (default) or ``"msb_first"``.
        efficiency, backoff: initial syndrome length ``m0 = ceil(efficiency * sum n H + backoff *
            sqrt(sum n V))`` with ``V`` the slice channel's dispersion
            (:attr:`keygen.slicing.SliceChannel.dispersion`): the finite-length term of the normal
            approximation, which dominates for high-rate slices (``H`` of a few hundredths).
        min_rate: slices whose code rate ``1 - efficiency * H`` would be below this are disclosed.
        no_code_errors: a frame whose expected number of hard-decision errors is below this starts
            without syndrome (hash only).
        verify_bits: Toeplitz verification hash per attempt that converged (0: none; success is then
            BP convergence alone).
        max_retries, retry_step: incremental syndrome bits per retry
            ``max(16, ceil(retry_step * sum n H + sqrt(sum n V) / 2))``, at most ``max_retries`` retries.
        max_degree, girth, peg_order: code design (variable degrees 2..max_degree) and PEG settings.
        code_seed: seed of the public codes and splits.
        decoder: ``"ldpc"`` (``ldpc.BpDecoder``, product-sum, parallel) or ``"numpy"``
            (:func:`keygen.ldpc_codes.syndrome_bp`).
        max_iter: BP iteration limit per attempt.
        code_cache_dir: optional folder for built parity-check matrices (public; reused across runs).
    """

    def __init__(self, *, bits=None, fraction: float = 0.97, max_bits: int = 8, labelling: str = "natural",
                 order: str = "lsb_first", efficiency: float = 1.04, backoff: float = 2.0, min_rate: float = 0.02,
                 no_code_errors: float = 0.05, verify_bits: int = 64, max_retries: int = 8,
                 retry_step: float = 0.02, max_degree: int = 20, girth: int = 6, peg_order: str = "random",
                 code_seed: int = 0, decoder: str = "ldpc", max_iter: int = 300, code_cache_dir=None):
        if bits is not None:
            arr = np.atleast_1d(np.asarray(bits))
            if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1) or np.any(
                    arr > 12):
                raise ValueError(f"bits = {bits!r} is not allowed; it must be an integer in [1, 12] or one per "
                                 "component")
        self.bits = None if bits is None else np.atleast_1d(np.asarray(bits)).astype(np.int64)
        self.fraction = _check_real(fraction, "fraction", 0.0, 1.0, low_open=True, high_open=True)
        if isinstance(max_bits, bool) or not isinstance(max_bits, numbers.Integral) or not 1 <= max_bits <= 12:
            raise ValueError(f"max_bits = {max_bits!r} is not allowed; it must be an integer in [1, 12]")
        self.max_bits = int(max_bits)
        self.labelling = sl._check_choice(labelling, "labelling", sl.LABELLINGS)
        self.order = sl._check_choice(order, "order", sl.ORDERS)
        self.efficiency = _check_real(efficiency, "efficiency", 1.0, 10.0)
        self.backoff = _check_real(backoff, "backoff", 0.0, 100.0)
        self.min_rate = _check_real(min_rate, "min_rate", 0.0, 1.0, high_open=True)
        self.no_code_errors = _check_real(no_code_errors, "no_code_errors", 0.0, 1e6)
        self.verify_bits = _check_int(verify_bits, "verify_bits", 0)
        self.max_retries = _check_int(max_retries, "max_retries", 0)
        self.retry_step = _check_real(retry_step, "retry_step", 0.0, 1.0, low_open=True)
        self.max_degree = _check_int(max_degree, "max_degree", 3)
        if girth not in (6, 8):
            raise ValueError(f"girth = {girth!r} is not allowed; it must be 6 or 8")
        self.girth = int(girth)
        if peg_order not in ("random", "ascending"):
            raise ValueError(f"peg_order = {peg_order!r} is not allowed; it must be 'random' or 'ascending'")
        self.peg_order = peg_order
        self.code_seed = _check_int(code_seed, "code_seed", 0)
        self.decoder = sl._check_choice(decoder, "decoder", DECODERS)
        self.max_iter = _check_int(max_iter, "max_iter", 1)
        self.code_cache_dir = None if code_cache_dir is None else Path(code_cache_dir)

    # -- inputs ---------------------------------------------------------------------------------
    @staticmethod
    def _as_matrix(values, name: str) -> np.ndarray:
        arr = sl._as_finite(values, name)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"{name} has shape {arr.shape}, which is not allowed; it must be [n] or [n, d]")
        return arr

    @staticmethod
    def _rhos(rho, d: int, name: str = "rho") -> np.ndarray:
        try:
            r = np.atleast_1d(np.asarray(rho))
        except Exception as exc:  # ragged input
            raise ValueError(f"{name} = {rho!r} is not allowed; it must be a scalar or one value per component "
                             "in (-1, 1)") from exc
        if r.ndim != 1 or r.size not in (1, d):
            raise ValueError(f"{name} has shape {r.shape}, which is not allowed; it must be a scalar or one value "
                             f"per component (d = {d})")
        vals = [sl._check_rho(v.item() if isinstance(v, np.generic) else v, name if r.size == 1 else f"{name}[{i}]")
                for i, v in enumerate(r)]
        return np.array(vals * d if len(vals) == 1 else vals, dtype=np.float64)

    def component_bits(self, rho) -> np.ndarray:
        """Bits per component for correlations ``rho`` (``[d]``): the fixed ``bits`` or the public rule."""
        r = np.atleast_1d(np.asarray(rho, dtype=np.float64))
        if self.bits is not None:
            if self.bits.size not in (1, r.size):
                raise ValueError(f"bits has {self.bits.size} values but there are {r.size} components")
            return np.broadcast_to(self.bits, r.shape).copy()
        return np.array([sl.choose_bits(float(v), self.fraction, self.max_bits) for v in r], dtype=np.int64)

    # -- the public plan ------------------------------------------------------------------------
    def plan(self, rho, n: int) -> list[StagePlan]:
        """The stages for ``n`` symbols per component with correlations ``rho`` (scalar or ``[d]``):
        modes, exact entropies and initial syndrome lengths. Depends on public values only."""
        n = _check_int(n, "n", 1)
        r = self._rhos(rho, np.atleast_1d(np.asarray(rho)).size)
        q = self.component_bits(r)
        Q = int(q.max())
        f = self.efficiency
        stages = []
        for g in range(Q):
            comps = []
            for i in range(r.size):
                j = g - (Q - int(q[i]))
                if j < 0:
                    continue
                K = 1 << int(q[i])
                H = float(sl.slice_entropies(r[i], K, self.labelling, self.order)[j])
                ch = sl.slice_channel(r[i], K, j, self.labelling, self.order)
                mode = "disclose" if 1.0 - f * H < self.min_rate else "code"
                comps.append(ComponentPlan(i, float(r[i]), int(q[i]), j, sl.decoding_order(int(q[i]), self.order)[j],
                                           H, ch.error_rate, ch.dispersion, mode))
            coded = [c for c in comps if c.mode == "code"]
            ent = n * sum(c.entropy for c in coded)
            disp = n * sum(c.dispersion for c in coded)
            errs = n * sum(c.error_rate for c in coded)
            N = n * len(coded)
            m0 = 0 if (not coded or errs < self.no_code_errors) else min(
                N - 1, max(1, math.ceil(f * ent + self.backoff * math.sqrt(disp))))
            stages.append(StagePlan(g, tuple(comps), n, N, ent, errs, disp, m0, n * (len(comps) - len(coded))))
        return stages

    def _frame_channel(self, coded: list[ComponentPlan]):
        chans = [sl.slice_channel(c.rho, 1 << c.bits, c.stage, self.labelling, self.order) for c in coded]
        return chans[0] if len(chans) == 1 else sl.SliceChannel.mixture(chans, [1.0] * len(chans))

    def _code(self, coded: list[ComponentPlan], N: int, m: int, stage: int):
        # a column cannot have more ones than there are rows
        dist = design_distribution(self._frame_channel(coded), 1.0 - m / N, max_degree=max(3, min(self.max_degree, m)),
                                   checks=m)
        seed = _derived_seed(self.code_seed, stage, N, m)
        if self.peg_order != "random":
            H = peg_parity_check_matrix(N, m, dist.variable_degrees(N), seed=seed, girth=self.girth,
                                        order=self.peg_order)
        else:
            H = _build_code(N, m, dist, self.girth, seed, self.code_cache_dir)
        return H, dist, seed

    # -- decoding -------------------------------------------------------------------------------
    def _decode(self, H: sp.csr_matrix, llr: np.ndarray, syndrome: np.ndarray) -> tuple[np.ndarray, bool, int]:
        if self.decoder == "numpy":
            return syndrome_bp(H, llr, syndrome, max_iter=self.max_iter)
        from ldpc import BpDecoder

        hard = (llr < 0).astype(np.uint8)
        # syndrome form on the error pattern e = a xor hard: H e = s_A xor H hard, P(e_i = 1) = 1/(1+exp|L_i|)
        p = np.clip(expit(-np.abs(llr)), 1e-15, 0.5)
        target = (syndrome ^ _syndrome(H, hard)).astype(np.uint8)
        dec = BpDecoder(H, error_channel=p, max_iter=self.max_iter, bp_method="product_sum", schedule="parallel")
        e = np.asarray(dec.decode(target), dtype=np.uint8)
        return hard ^ e, bool(dec.converge), int(dec.iter)

    # -- the protocol ---------------------------------------------------------------------------
    def reconcile(self, x_alice, y_bob, rho, channel: PublicChannel | None = None, *,
                  seed: int | np.random.Generator = 0) -> SlicedResult:
        """Reconcile Alice's quantised ``x`` with Bob's continuous ``y``.

        Args:
            x_alice, y_bob: ``[n]`` or ``[n, d]`` real, finite, equal shapes (whitened: unit variance,
                zero mean; component ``i`` with correlation ``rho[i]``).
            rho: scalar or ``[d]`` in ``(-1, 1)``: the public correlation per component.
            channel: :class:`~keygen.reconcile.PublicChannel` to count on (a fresh one if ``None``).
            seed: integer >= 0 or numpy Generator for the public hash seeds.

        Returns:
            :class:`SlicedResult`; its ``key()`` raises when a stage failed.
        """
        t0 = time.perf_counter()
        X = self._as_matrix(x_alice, "x_alice")
        Y = self._as_matrix(y_bob, "y_bob")
        if X.shape != Y.shape:
            raise ValueError(f"x_alice has shape {X.shape} but y_bob has {Y.shape}; they must be equal")
        n, d = X.shape
        r = self._rhos(rho, d)
        if channel is not None and not isinstance(channel, PublicChannel):
            raise ValueError(f"channel = {channel!r} is not allowed; it must be a PublicChannel or None")
        if not isinstance(seed, np.random.Generator):
            _check_int(seed, "seed", 0)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        channel = PublicChannel() if channel is None else channel
        d0 = channel.disclosed_bits
        plan = self.plan(r, n)
        q = self.component_bits(r)
        alice_bits = [sl.slice_bits(sl.quantise(X[:, i], 1 << int(q[i])), 1 << int(q[i]), self.labelling)
                      for i in range(d)]
        logpost = [sl.level_log_posteriors(Y[:, i], r[i], 1 << int(q[i])) for i in range(d)]
        known: list[list[np.ndarray]] = [[] for _ in range(d)]  # reconciled slices per component (decoding order)
        reports: list[SliceReport] = []
        out_a: list[np.ndarray] = []
        out_b: list[np.ndarray] = []
        transcript: dict[str, Any] = {"n": n, "d": d, "bits": q.tolist(), "labelling": self.labelling,
                                      "order": self.order, "stages": []}
        code_time = 0.0
        success = True
        for st in plan:
            rec: dict[str, Any] = {"stage": st.stage, "disclosed": {},
                                   "components": [c.component for c in st.components]}
            a_parts, b_parts = [], []
            d_stage0 = channel.disclosed_bits
            coded = [c for c in st.components if c.mode == "code"]
            llrs, a_coded = [], []
            for c in st.components:
                a = alice_bits[c.component][:, c.slice]
                if c.mode == "disclose":
                    channel.disclose("slice_disclosed", n)
                    rec["disclosed"][c.component] = a.copy()
                    known[c.component].append(a)
                    a_parts.append(a)
                    b_parts.append(a.copy())
                    continue
                kb = np.stack(known[c.component], axis=1) if known[c.component] else None
                llrs.append(sl.slice_llrs(Y[:, c.component], c.rho, 1 << c.bits, c.stage, kb,
                                          labelling=self.labelling, order=self.order,
                                          log_posteriors=logpost[c.component]))
                a_coded.append(a)
            report = SliceReport(st.stage, tuple(c.component for c in st.components),
                                 tuple(c.mode for c in st.components), tuple(c.entropy for c in st.components),
                                 st.frame_bits, n * sum(c.entropy for c in st.components), st.designed_rate,
                                 st.syndrome_bits, 0, 0, st.disclosed_outright_bits, 0, float("nan"), 0, True)
            if coded:
                a_frame = np.concatenate(a_coded)
                llr = np.concatenate(llrs)
                b_frame, ok = self._reconcile_frame(st, coded, a_frame, llr, channel, rng, rec, report)
                code_time += report.code_time_s
                if report.syndrome_bits == 0 and report.extra_bits == 0:  # hash-only frame, no code was needed
                    report.modes = tuple("verify" if m == "code" else m for m in report.modes)
                if not ok:
                    success = False
                # Bob's view of the coded slices (equal to Alice's on success)
                pos = 0
                for c in coded:
                    known[c.component].append(b_frame[pos:pos + n] if not ok else a_frame[pos:pos + n])
                    pos += n
                a_parts.append(a_frame)
                b_parts.append(b_frame)
            report.disclosed_bits = channel.disclosed_bits - d_stage0
            report.efficiency = report.disclosed_bits / report.entropy_bits if report.entropy_bits > 0 else float("inf")
            reports.append(report)
            transcript["stages"].append(rec)
            out_a.extend(a_parts)
            out_b.extend(b_parts)
            if not success:
                break
        key_bits = n * int(q.sum())
        mi = n * sum(sl.gaussian_mutual_information(v) for v in r)
        qmi = n * sum(sl.quantised_mutual_information(v, 1 << int(b)) for v, b in zip(r, q, strict=True))
        return SlicedResult(success, n * d, q, reports, channel.disclosed_bits - d0, key_bits, mi, qmi,
                            time.perf_counter() - t0, code_time, transcript,
                            np.concatenate(out_a).astype(np.uint8) if success else None,
                            np.concatenate(out_b).astype(np.uint8) if success else None)

    def _verify(self, a: np.ndarray, b: np.ndarray, channel: PublicChannel, rng: np.random.Generator,
                rec: dict, report: SliceReport) -> bool:
        if self.verify_bits == 0:
            return True
        seed = toeplitz_seed(a.size, self.verify_bits, rng)
        ha = toeplitz_hash(a, seed, self.verify_bits)
        channel.announce("slice_verify_seed", seed.size, new_round=False)
        channel.disclose("slice_verify_hash", self.verify_bits)
        report.hash_bits += self.verify_bits
        rec.setdefault("hashes", []).append((seed, ha))
        return bool(np.array_equal(ha, toeplitz_hash(b, seed, self.verify_bits)))

    def _reconcile_frame(self, st: StagePlan, coded: list[ComponentPlan], a: np.ndarray, llr: np.ndarray,
                         channel: PublicChannel, rng: np.random.Generator, rec: dict, report: SliceReport):
        N = a.size
        step = max(16, math.ceil(self.retry_step * st.frame_entropy_bits + 0.5 * math.sqrt(st.frame_dispersion)))
        H = None
        s = None
        b = (llr < 0).astype(np.uint8)
        m = st.syndrome_bits
        for attempt in range(self.max_retries + 1):
            report.attempts = attempt + 1
            if attempt > 0 or m > 0:
                if H is None:
                    m = max(m, min(step, N - 1))
                    tc = time.perf_counter()
                    H, dist, seed = self._code(coded, N, m, st.stage)
                    report.code_time_s += time.perf_counter() - tc
                    report.code_margin = dist.margin
                    report.syndrome_bits = m
                    report.designed_rate = 1.0 - m / N
                    s = _syndrome(H, a)
                    channel.disclose("slice_syndrome", m)
                    rec["code"] = {"N": N, "m": m, "distribution": dist, "seed": seed, "syndrome": s.copy()}
                    rec["splits"] = []
                else:
                    extra = min(step, N - 1 - H.shape[0])
                    if extra <= 0:
                        break
                    split_seed = _derived_seed(self.code_seed, st.stage, attempt, 7)
                    H2, parents = split_checks(H, extra, seed=split_seed)
                    s_new = _syndrome(H2[H.shape[0]:], a)
                    s = s.copy()
                    s[parents] ^= s_new  # Bob: old bit xor the new half gives the kept half
                    s = np.concatenate([s, s_new])
                    H = H2
                    channel.disclose("slice_extra_syndrome", int(parents.size))
                    report.extra_bits += int(parents.size)
                    rec["splits"].append((split_seed, int(parents.size), s_new.copy()))
                td = time.perf_counter()
                b, conv, it = self._decode(H, llr, s)
                report.decode_time_s += time.perf_counter() - td
                report.bp_iterations.append(it)
                if not conv:
                    channel.rounds += 1  # Bob's request for more syndrome bits (key-independent length)
                    continue
            ok = self._verify(a, b, channel, rng, rec, report)
            if ok:
                report.success = True
                report.residual_errors = int(np.count_nonzero(a != b))
                return b, True
        report.success = False
        report.residual_errors = int(np.count_nonzero(a != b))
        return b, False

    # -- Eve ------------------------------------------------------------------------------------
    def replay(self, z_eve, rho_eve, transcript: dict[str, Any], *, alice_key=None) -> EveReplay:
        """Eve runs Bob's side with her own ``z`` (``[n]``/``[n, d]``) and correlations ``rho_eve`` to
        Alice's ``x``, using only the public transcript (final code of each stage, all syndrome bits,
        outright-disclosed slices). With ``alice_key`` (simulator) the per-stage bit error rates are filled."""
        Z = self._as_matrix(z_eve, "z_eve")
        n, d = transcript["n"], transcript["d"]
        if Z.shape != (n, d):
            raise ValueError(f"z_eve has shape {Z.shape}; the transcript is for ({n}, {d})")
        r = self._rhos(rho_eve, d, "rho_eve")
        q = np.asarray(transcript["bits"], dtype=np.int64)
        Q = int(q.max())
        logpost = [sl.level_log_posteriors(Z[:, i], r[i], 1 << int(q[i])) for i in range(d)]
        known: list[list[np.ndarray]] = [[] for _ in range(d)]
        pieces, bers, convs = [], [], []
        truth = None if alice_key is None else np.asarray(alice_key, dtype=np.uint8)
        pos = 0
        for rec in transcript["stages"]:
            g = rec["stage"]
            llrs, comps = [], []
            for i in rec["components"]:
                j = g - (Q - int(q[i]))
                if i in rec["disclosed"]:
                    continue
                kb = np.stack(known[i], axis=1) if known[i] else None
                llrs.append(sl.slice_llrs(Z[:, i], r[i], 1 << int(q[i]), j, kb, labelling=transcript["labelling"],
                                          order=transcript["order"], log_posteriors=logpost[i]))
                comps.append(i)
            est = {}
            conv = True
            if comps:
                llr = np.concatenate(llrs)
                if "code" in rec:
                    c = rec["code"]
                    H = _build_code(c["N"], c["m"], c["distribution"], self.girth, c["seed"], self.code_cache_dir) \
                        if self.peg_order == "random" else peg_parity_check_matrix(
                            c["N"], c["m"], c["distribution"].variable_degrees(c["N"]), seed=c["seed"],
                            girth=self.girth, order=self.peg_order)
                    s = c["syndrome"].copy()
                    for split_seed, cnt, s_new in rec["splits"]:
                        H2, parents = split_checks(H, cnt, seed=split_seed)
                        s[parents] ^= s_new
                        s = np.concatenate([s, s_new])
                        H = H2
                    frame, conv, _ = self._decode(H, llr, s)
                else:
                    frame = (llr < 0).astype(np.uint8)
                for k, i in enumerate(comps):
                    est[i] = frame[k * n:(k + 1) * n]
            stage_bits = []
            for i in rec["components"]:
                b = rec["disclosed"][i] if i in rec["disclosed"] else est[i]
                known[i].append(b)
            # the key layout puts the disclosed slices first, then the coded frame (component order)
            for i in rec["components"]:
                if i in rec["disclosed"]:
                    stage_bits.append(rec["disclosed"][i])
            for i in comps:
                stage_bits.append(est[i])
            sb = np.concatenate(stage_bits)
            if truth is not None:
                bers.append(float(np.mean(sb != truth[pos:pos + sb.size])))
            pos += sb.size
            pieces.append(sb)
            convs.append(bool(conv))
        return EveReplay(np.concatenate(pieces).astype(np.uint8), bers, convs)
