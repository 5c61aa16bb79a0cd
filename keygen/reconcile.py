"""Information reconciliation: Cascade and LDPC syndrome decoding, with every disclosed bit counted.

Alice's string ``a`` is the reference (forward reconciliation); Bob corrects his string ``b`` to it.
Both methods share one interface::

    channel = PublicChannel()
    res = Cascade().reconcile(a, b, channel, error_rate=e_est, seed=1)     # or LDPCSyndrome()
    res.success, res.disclosed_bits, res.rounds, res.efficiency, res.key()  # key() raises on failure

* :class:`Cascade` -- the original four-pass protocol of Brassard and Salvail ("Secret-key
  reconciliation by public discussion", EUROCRYPT 1993), with the first block size
  ``k1 = ceil(0.73 / e)`` from the estimated disagreement rate ``e`` and ``k_i = 2 k_{i-1}``
  (as analysed by Martinez-Mateo, Pacher, Peev, Ciurana, Martin, "Demystifying the information
  reconciliation protocol Cascade", Quantum Inf. Comput. 15, 2015, arXiv:1407.3257). Every pass
  uses a public random permutation (announced as a seed). Binary searches in disjoint blocks run in
  parallel, one round per level; the cascade back-tracking is resolved pass by pass.
* :class:`LDPCSyndrome` -- Alice sends the syndrome ``H a`` of a random regular column-weight-3
  parity-check matrix ``H`` (``m x n``, built here, :func:`regular_parity_check_matrix`); Bob decodes
  the error pattern ``a xor b`` from ``H a xor H b`` with belief propagation + ordered-statistics
  decoding (``ldpc.BpOsdDecoder``, Roffe et al., the ``ldpc`` package, MIT). ``m`` is chosen as
  ``ceil(f_design n h(e))``.

After either method, Alice sends a ``verify_bits``-bit Toeplitz hash of her string under a fresh
public seed; Bob compares. A mismatch makes the result a failure: :meth:`ReconcileResult.key` then
raises, so no partial key is ever returned as final. The efficiency is
``f = disclosed / (n h(e))`` with ``e`` the actual disagreement rate and ``disclosed`` counting
every parity, syndrome and verification bit.

Eve's view: :meth:`Cascade.replay` and :meth:`LDPCSyndrome.replay` run Bob's side on Eve's own
string using only the public transcript (she cannot ask new questions).

numpy/scipy only, plus the ``ldpc`` package for :class:`LDPCSyndrome` (imported on use).
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from .channel import PublicChannel, check_channel
from .privacy import as_bits, toeplitz_hash, toeplitz_seed

__all__ = [
    "Cascade",
    "LDPCSyndrome",
    "ReconcileResult",
    "binary_entropy",
    "regular_parity_check_matrix",
]


def binary_entropy(p) -> np.ndarray | float:
    """``h(p) = -p log2 p - (1-p) log2(1-p)`` with ``h(0) = h(1) = 0``; scalar or array.

    ``p`` must be a probability: a real number (or array of them) in ``[0, 1]``; NaN and values outside
    the interval raise ``ValueError``.
    """
    try:
        arr = np.asarray(p)
    except Exception as exc:  # ragged lists and other objects numpy cannot turn into an array
        raise ValueError(f"p = {p!r} is not allowed; binary_entropy needs probabilities in [0, 1]") from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.iscomplexobj(arr):
        raise ValueError(f"p = {p!r} (dtype {arr.dtype}) is not allowed; binary_entropy needs real "
                         "probabilities in [0, 1]")
    q = arr.astype(np.float64)
    bad = ~((q >= 0.0) & (q <= 1.0))  # NaN fails both comparisons
    if np.any(bad):
        raise ValueError(f"p = {q[bad].flat[0].item()!r} is not allowed; binary_entropy needs probabilities in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log2(q), 0.0) - np.where(q < 1, (1 - q) * np.log2(1 - q), 0.0)
    return float(h) if np.ndim(h) == 0 else h


def _check_seed(seed, name: str, *, generator: bool = False) -> None:
    """Seeds are integers ``>= 0`` (bool refused); ``generator=True`` also allows a numpy Generator."""
    if generator and isinstance(seed, np.random.Generator):
        return
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        also = " or a numpy Generator" if generator else ""
        raise ValueError(f"{name} = {seed!r} is not allowed; it must be an integer >= 0{also}")


@dataclass
class ReconcileResult:
    """Outcome of one reconciliation frame.

    Attributes:
        method: ``"cascade"`` or ``"ldpc"``.
        success: the verification hashes agreed (and, in this simulator, no bit differs).
        n: frame length in bits.
        error_rate: actual disagreement rate of the frame before reconciliation.
        error_rate_estimate: the estimate the protocol was parametrised with.
        disclosed_bits: parities/syndrome bits plus verification-hash bits revealed in this frame.
        rounds: communication rounds used by this frame.
        time_s: wall-clock time of the frame.
        efficiency: ``disclosed_bits / (n h(error_rate))`` (``nan`` when ``error_rate == 0``).
        residual_errors: bits in which Bob's corrected string still differs from Alice's (simulator
            diagnostic; a real Bob does not know it).
        transcript: the public messages Eve sees (for :meth:`Cascade.replay` / :meth:`LDPCSyndrome.replay`).
    """

    method: str
    success: bool
    n: int
    error_rate: float
    error_rate_estimate: float
    disclosed_bits: int
    rounds: int
    time_s: float
    efficiency: float
    residual_errors: int
    transcript: dict[str, Any]
    _alice: np.ndarray | None = None
    _bob: np.ndarray | None = None

    def key(self) -> np.ndarray:
        """Alice's reconciled string (``[n]`` uint8); raises ``RuntimeError`` if the frame failed."""
        if not self.success:
            raise RuntimeError(f"{self.method} reconciliation failed verification; the frame yields no key")
        return self._alice

    def bob_key(self) -> np.ndarray:
        """Bob's corrected string (equal to :meth:`key` on success); raises if the frame failed."""
        if not self.success:
            raise RuntimeError(f"{self.method} reconciliation failed verification; the frame yields no key")
        return self._bob


def _check_pair(alice, bob) -> tuple[np.ndarray, np.ndarray]:
    a = as_bits(alice, "alice")
    b = as_bits(bob, "bob")
    if a.shape != b.shape:
        raise ValueError(f"alice has {a.size} bits but bob has {b.size}; reconciliation needs equal lengths")
    if a.size < 2:
        raise ValueError(f"the strings hold {a.size} bits; reconciliation needs n >= 2")
    return a, b


def _check_rate(error_rate, max_rate: float, method: str) -> float:
    if isinstance(error_rate, bool) or not isinstance(error_rate, numbers.Real) or not math.isfinite(error_rate):
        raise ValueError(f"error_rate = {error_rate!r} is not allowed; it must be a number in [0, {max_rate}]")
    e = float(error_rate)
    if e < 0.0:
        raise ValueError(f"error_rate = {e} is not allowed; it must lie in [0, {max_rate}]")
    if e > max_rate:
        raise ValueError(
            f"error_rate = {e:.4g} is above what {method} can correct here (max {max_rate:.4g}); "
            "lower the disagreement (wider guard bands, fewer levels, better estimates) first"
        )
    return e


def _verify(a: np.ndarray, b: np.ndarray, channel: PublicChannel, rng: np.random.Generator, bits: int,
            transcript: dict) -> bool:
    """Alice announces a Toeplitz seed and sends ``bits`` hash bits of her string; Bob compares."""
    if bits <= 0:
        return bool(np.array_equal(a, b))
    seed = toeplitz_seed(a.size, bits, rng)
    ha = toeplitz_hash(a, seed, bits)
    hb = toeplitz_hash(b, seed, bits)
    channel.announce("verify_seed", seed.size, new_round=False)
    channel.disclose("verify_hash", bits)
    transcript["verify_seed"] = seed
    transcript["verify_hash"] = ha
    return bool(np.array_equal(ha, hb))


def _efficiency(disclosed: int, n: int, e: float) -> float:
    h = binary_entropy(e)
    return float(disclosed / (n * h)) if h > 0 else float("nan")


# ---------------------------------------------------------------------------------------------
# Cascade
# ---------------------------------------------------------------------------------------------


class Cascade:
    """Original Cascade (Brassard & Salvail 1993): ``passes`` passes, ``k1 = ceil(k1_factor / e)``, doubling.

    Args:
        passes: number of passes (4 in the original protocol).
        k1_factor: first block size is ``ceil(k1_factor / e)`` (0.73 in the original protocol), capped
            at ``n``; with ``e = 0`` the whole frame is one block.
        verify_bits: length of the final verification hash (counted as disclosed).
        max_error_rate: estimates above this are refused (``ValueError``): at 15 % the original
            protocol already discloses about ``0.75 n`` bits and leaves little for privacy
            amplification.
    """

    name = "cascade"

    def __init__(self, passes: int = 4, k1_factor: float = 0.73, verify_bits: int = 64, max_error_rate: float = 0.15):
        if isinstance(passes, bool) or not isinstance(passes, numbers.Integral) or passes < 1:
            raise ValueError(f"passes = {passes!r} is not allowed; it must be an integer >= 1 (original: 4)")
        if (isinstance(k1_factor, bool) or not isinstance(k1_factor, numbers.Real) or not math.isfinite(k1_factor)
                or k1_factor <= 0):
            raise ValueError(f"k1_factor = {k1_factor!r} is not allowed; it must be a finite number > 0 "
                             "(original: 0.73)")
        if isinstance(verify_bits, bool) or not isinstance(verify_bits, numbers.Integral) or verify_bits < 0:
            raise ValueError(f"verify_bits = {verify_bits!r} is not allowed; it must be an integer >= 0")
        if not (isinstance(max_error_rate, numbers.Real) and 0 < max_error_rate < 0.5):
            raise ValueError(f"max_error_rate = {max_error_rate!r} is not allowed; it must lie in (0, 0.5)")
        self.passes = int(passes)
        self.k1_factor = float(k1_factor)
        self.verify_bits = int(verify_bits)
        self.max_error_rate = float(max_error_rate)

    def block_sizes(self, n: int, error_rate: float) -> list[int]:
        """Block size of each pass: ``k1 = ceil(k1_factor / e)`` (at least 2), ``k_i = 2 k_{i-1}``, capped at ``n``."""
        k1 = n if error_rate <= 0 else max(2, math.ceil(self.k1_factor / error_rate))
        return [int(min(n, k1 * 2**i)) for i in range(self.passes)]

    # -- the protocol, written once for Bob and for Eve's replay ------------------------------
    def _run(self, b: np.ndarray, ask, perms: list[np.ndarray], ks: list[int], on_round) -> np.ndarray:
        """Bob's side of Cascade on his string ``b`` (modified in place). ``ask(queries)`` returns
        Alice's parities (``-1`` where unknown, in Eve's replay) of ``(pass, start, stop)`` ranges of
        the pass's permuted order; ``on_round()`` is called once per parallel batch of queries."""
        n = b.size
        pos = [np.argsort(p) for p in perms]  # pos[p][bit] = place of bit in pass p's order
        odd: list[np.ndarray] = []
        known: list[np.ndarray] = []
        for i in range(self.passes):
            k = ks[i]
            starts = np.arange(0, n, k)
            stops = np.minimum(starts + k, n)
            ap = ask([(i, int(s), int(e)) for s, e in zip(starts, stops, strict=True)])
            on_round()
            bp = np.add.reduceat(b[perms[i]], starts) & 1
            known.append(ap >= 0)
            odd.append((ap >= 0) & (ap != bp))
            while True:
                j = next((q for q in range(i + 1) if odd[q].any()), None)
                if j is None:
                    break
                blocks = np.flatnonzero(odd[j])
                found = self._binary_search(b, perms[j], ks[j], blocks, j, ask, on_round)
                for blk, bit in zip(blocks, found, strict=True):
                    if bit < 0:  # Eve's replay: the transcript lacks a parity she needs
                        odd[j][blk] = False
                        known[j][blk] = False
                        continue
                    b[bit] ^= 1
                    for q in range(i + 1):
                        qb = pos[q][bit] // ks[q]
                        if known[q][qb]:
                            odd[q][qb] = not odd[q][qb]
        return b

    @staticmethod
    def _binary_search(b, perm, k, blocks, j, ask, on_round) -> np.ndarray:
        """Parallel binary search (BINARY of Brassard-Salvail) in the odd blocks of pass ``j``."""
        n = b.size
        s = blocks * k
        e = np.minimum(s + k, n)
        ok = np.ones(blocks.size, dtype=bool)
        while True:
            act = np.flatnonzero(ok & (e - s > 1))
            if act.size == 0:
                break
            mid = s[act] + (e[act] - s[act]) // 2
            ap = ask([(j, int(s_), int(m_)) for s_, m_ in zip(s[act], mid, strict=True)])
            on_round()
            bp = np.fromiter((int(b[perm[s_:m_]].sum()) & 1 for s_, m_ in zip(s[act], mid, strict=True)),
                             dtype=np.int64, count=act.size)
            unknown = ap < 0
            ok[act[unknown]] = False
            left = (ap != bp) & ~unknown
            right = (ap == bp) & ~unknown
            e[act[left]] = mid[left]
            s[act[right]] = mid[right]
        return np.where(ok, perm[np.minimum(s, n - 1)], -1)

    def reconcile(self, alice, bob, channel: PublicChannel | None = None, *, error_rate: float,
                  seed: int | np.random.Generator = 0) -> ReconcileResult:
        """Run Cascade on one frame.

        Args:
            alice, bob: ``[n]`` 0/1 strings (Alice's is the reference).
            channel: public channel on which disclosed bits and rounds are counted (a fresh one if ``None``).
            error_rate: Alice's and Bob's estimate of the disagreement rate (sets the block sizes).
            seed: integer >= 0 or numpy Generator for the public permutations and the verification seed.
        """
        t0 = time.perf_counter()
        a, b0 = _check_pair(alice, bob)
        e_est = _check_rate(error_rate, self.max_error_rate, "Cascade")
        check_channel(channel)
        _check_seed(seed, "seed", generator=True)
        channel = PublicChannel() if channel is None else channel
        d0, r0 = channel.disclosed_bits, channel.rounds
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n = a.size
        ks = self.block_sizes(n, e_est)
        perms = [rng.permutation(n) for _ in range(self.passes)]
        channel.announce("cascade_permutation_seed", 64, new_round=False)
        cums = [np.concatenate([[0], np.cumsum(a[p], dtype=np.int64)]) for p in perms]
        parities: dict[tuple[int, int, int], int] = {}

        def ask(queries):
            out = np.empty(len(queries), dtype=np.int64)
            new = 0
            for idx, key in enumerate(queries):
                val = parities.get(key)
                if val is None:
                    p, s_, e_ = key
                    val = int(cums[p][e_] - cums[p][s_]) & 1
                    parities[key] = val
                    new += 1
                out[idx] = val
            if new:
                channel.disclose("cascade_parity", new, new_round=False)
            return out

        def on_round():
            channel.rounds += 1

        b = self._run(b0.copy(), ask, perms, ks, on_round)
        transcript = {"method": self.name, "block_sizes": ks, "permutations": perms, "parities": parities}
        verified = _verify(a, b, channel, rng, self.verify_bits, transcript)
        residual = int(np.count_nonzero(a != b))
        disclosed = channel.disclosed_bits - d0
        e_true = float(np.count_nonzero(a != b0) / n)
        return ReconcileResult(
            self.name, verified, n, e_true, e_est, disclosed, channel.rounds - r0,
            time.perf_counter() - t0, _efficiency(disclosed, n, e_true), residual, transcript, a, b)

    def replay(self, eve, transcript: dict[str, Any]) -> np.ndarray:
        """Eve runs Bob's side on her own string with Alice's published parities only; ``[n]`` uint8."""
        x = as_bits(eve, "eve").copy()
        perms, ks, parities = transcript["permutations"], transcript["block_sizes"], transcript["parities"]
        if x.size != perms[0].size:
            raise ValueError(f"eve has {x.size} bits but the transcript is for n = {perms[0].size}")

        def ask(queries):
            return np.fromiter((parities.get(q, -1) for q in queries), dtype=np.int64, count=len(queries))

        return self._run(x, ask, perms, ks, lambda: None)


# ---------------------------------------------------------------------------------------------
# LDPC syndrome reconciliation
# ---------------------------------------------------------------------------------------------


def regular_parity_check_matrix(n: int, m: int, column_weight: int = 3, seed: int = 0) -> sp.csr_matrix:
    """Random ``m x n`` binary parity-check matrix with exactly ``column_weight`` ones per column.

    Columns are filled one by one, each picking ``column_weight`` distinct rows among those with the
    fewest ones so far (random tie-break), so row weights differ by at most one: a regular
    (column-weight-``w``) Gallager-type ensemble (Gallager, "Low-density parity-check codes", 1962).
    Short cycles are not removed. Cached per ``(n, m, column_weight, seed)``; the matrix is public.

    Returns:
        ``scipy.sparse.csr_matrix`` ``[m, n]`` uint8.
    """
    if not (isinstance(n, numbers.Integral) and isinstance(m, numbers.Integral)) or n < 2 or m < 1:
        raise ValueError(f"need integers n >= 2 and m >= 1, got n = {n!r}, m = {m!r}")
    if not (isinstance(column_weight, numbers.Integral) and 1 <= column_weight <= m):
        raise ValueError(f"column_weight = {column_weight!r} is not allowed; it must be an integer in [1, m = {m}]")
    _check_seed(seed, "seed")
    return _parity_check_matrix(int(n), int(m), int(column_weight), int(seed))


@lru_cache(maxsize=32)
def _parity_check_matrix(n: int, m: int, column_weight: int, seed: int) -> sp.csr_matrix:
    """The cached construction behind :func:`regular_parity_check_matrix` (arguments already checked)."""
    rng = np.random.default_rng(seed)
    deg = np.zeros(m, dtype=np.int64)
    rows = np.empty((n, column_weight), dtype=np.int64)
    for c in range(n):
        order = np.lexsort((rng.random(m), deg))
        pick = order[:column_weight]
        rows[c] = pick
        deg[pick] += 1
    data = np.ones(n * column_weight, dtype=np.uint8)
    H = sp.csr_matrix((data, (rows.reshape(-1), np.repeat(np.arange(n), column_weight))), shape=(m, n))
    return H


class LDPCSyndrome:
    """Syndrome-based one-way reconciliation with a regular LDPC code and BP+OSD decoding.

    Args:
        f_design: syndrome length ``m = ceil(f_design n h(e_est))`` (the design efficiency; short
            random column-weight-3 codes need about 2-3: measured at n = 2048, f = 2.6 decodes 60/60
            frames at 1 %, f = 2.0 only 53-56/60; see docs/keygen.md).
        column_weight: ones per column of ``H`` (3).
        min_error_rate: ``e_est`` used for the code design is at least this (an estimate of 0 would
            give an empty syndrome).
        verify_bits: verification hash length (counted as disclosed).
        max_iter, bp_method: belief propagation (``ldpc.BpDecoder``, serial schedule).
        osd_method, osd_order: ``None`` (default) decodes with BP only; ``"OSD_0"``/``"OSD_CS"`` adds
            ordered-statistics post-processing (``ldpc.BpOsdDecoder``) when BP does not converge. Measured
            here: OSD did not raise the success rate of these codes, and on a frame far beyond the code's
            capability (Eve's string) one OSD decode took minutes at n = 2048, so it is off by default.
        code_seed: seed of the public parity-check matrix.
    """

    name = "ldpc"

    def __init__(self, f_design: float = 2.5, column_weight: int = 3, min_error_rate: float = 0.005,
                 verify_bits: int = 64, max_iter: int = 100, osd_order: int = 0, osd_method: str | None = None,
                 bp_method: str = "product_sum", code_seed: int = 0):
        if (isinstance(f_design, bool) or not isinstance(f_design, numbers.Real) or not math.isfinite(f_design)
                or f_design < 1.0):
            raise ValueError(f"f_design = {f_design!r} is not allowed; it must be a finite number >= 1 "
                             "(the Shannon limit)")
        for name, value, low in (("column_weight", column_weight, 1), ("max_iter", max_iter, 1),
                                 ("osd_order", osd_order, 0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} = {value!r} is not allowed; it must be an integer >= {low}")
        _check_seed(code_seed, "code_seed")
        if isinstance(verify_bits, bool) or not isinstance(verify_bits, numbers.Integral) or verify_bits < 0:
            raise ValueError(f"verify_bits = {verify_bits!r} is not allowed; it must be an integer >= 0")
        if not (isinstance(min_error_rate, numbers.Real) and 0 < min_error_rate < 0.5):
            raise ValueError(f"min_error_rate = {min_error_rate!r} is not allowed; it must lie in (0, 0.5)")
        self.f_design = float(f_design)
        self.column_weight = int(column_weight)
        self.min_error_rate = float(min_error_rate)
        self.verify_bits = int(verify_bits)
        self.max_iter = int(max_iter)
        self.osd_order = int(osd_order)
        self.osd_method = osd_method
        self.bp_method = bp_method
        self.code_seed = int(code_seed)

    def syndrome_length(self, n: int, error_rate: float) -> int:
        """``m = ceil(f_design n h(max(e, min_error_rate)))``."""
        return int(math.ceil(self.f_design * n * binary_entropy(max(error_rate, self.min_error_rate))))

    def max_error_rate(self, n: int) -> float:
        """Largest estimate for which the syndrome (plus verification hash) is shorter than the frame."""
        lo, hi = 0.0, 0.5
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self.syndrome_length(n, mid) + self.verify_bits < n:
                lo = mid
            else:
                hi = mid
        return lo

    def _decoder(self, H: sp.csr_matrix, e: float):
        from ldpc import BpDecoder, BpOsdDecoder

        kw = dict(error_rate=float(min(max(e, self.min_error_rate), 0.45)), max_iter=self.max_iter,
                  bp_method=self.bp_method, ms_scaling_factor=0.75 if self.bp_method == "minimum_sum" else 1.0,
                  schedule="serial")
        if self.osd_method is None:
            return BpDecoder(H, **kw)
        return BpOsdDecoder(H, osd_method=self.osd_method, osd_order=self.osd_order, **kw)

    def reconcile(self, alice, bob, channel: PublicChannel | None = None, *, error_rate: float,
                  seed: int | np.random.Generator = 0) -> ReconcileResult:
        """Alice sends ``s_A = H a``; Bob decodes ``e_hat`` with ``H e_hat = s_A xor H b``; ``b xor e_hat``.

        Args as :meth:`Cascade.reconcile`. Raises ``ValueError`` if the estimate needs a syndrome at
        least as long as the frame (the code cannot correct that rate at this length).
        """
        t0 = time.perf_counter()
        a, b0 = _check_pair(alice, bob)
        n = a.size
        e_est = _check_rate(error_rate, self.max_error_rate(n), f"LDPC syndrome reconciliation (n = {n}, "
                            f"f_design = {self.f_design})")
        check_channel(channel)
        _check_seed(seed, "seed", generator=True)
        channel = PublicChannel() if channel is None else channel
        d0, r0 = channel.disclosed_bits, channel.rounds
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        m = self.syndrome_length(n, e_est)
        H = regular_parity_check_matrix(n, m, self.column_weight, self.code_seed)
        s_a = (H @ a.astype(np.int64)) % 2
        channel.disclose("ldpc_syndrome", m)
        s_b = (H @ b0.astype(np.int64)) % 2
        err = self._decoder(H, e_est).decode(((s_a ^ s_b) & 1).astype(np.uint8))
        b = b0 ^ np.asarray(err, dtype=np.uint8)
        transcript = {"method": self.name, "n": n, "m": m, "syndrome": s_a.astype(np.uint8),
                      "error_rate_estimate": e_est, "code_seed": self.code_seed}
        verified = _verify(a, b, channel, rng, self.verify_bits, transcript)
        residual = int(np.count_nonzero(a != b))
        disclosed = channel.disclosed_bits - d0
        e_true = float(np.count_nonzero(a != b0) / n)
        return ReconcileResult(
            self.name, verified, n, e_true, e_est, disclosed, channel.rounds - r0,
            time.perf_counter() - t0, _efficiency(disclosed, n, e_true), residual, transcript, a, b)

    def replay(self, eve, transcript: dict[str, Any]) -> np.ndarray:
        """Eve decodes with Alice's public syndrome against her own string; ``[n]`` uint8."""
        x = as_bits(eve, "eve")
        n = transcript.get("n")
        if n is None:
            raise ValueError("transcript has no frame length 'n'; pass the transcript of LDPCSyndrome.reconcile")
        if x.size != n:
            raise ValueError(f"eve has {x.size} bits but the transcript is for n = {n}")
        H = regular_parity_check_matrix(x.size, int(transcript["m"]), self.column_weight, int(transcript["code_seed"]))
        s = ((H @ x.astype(np.int64)) % 2).astype(np.uint8) ^ transcript["syndrome"]
        err = self._decoder(H, float(transcript["error_rate_estimate"])).decode(s.astype(np.uint8))
        return x ^ np.asarray(err, dtype=np.uint8)
