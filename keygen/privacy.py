"""Privacy amplification: Toeplitz universal hashing with the leftover hash lemma, and a SHAKE extractor.

After reconciliation Alice and Bob hold the same ``n``-bit string ``X``; Eve holds side information
``E`` (her own channel observation and everything sent on the public channel). Privacy amplification
compresses ``X`` to ``ell`` bits with a function drawn from a 2-universal family, the choice (seed)
being announced publicly. The leftover hash lemma (Impagliazzo, Levin, Luby 1989; Bennett, Brassard,
Crepeau, Maurer, "Generalized privacy amplification", IEEE Trans. IT 41(6), 1995; in the form of
Tomamichel et al., "Leftover hashing against quantum side information", IEEE Trans. IT 57(8), 2011)
says the output is ``eps``-close to uniform and independent of ``(E, seed)`` if

    ell <= H_min(X | E) - leak - 2 log2(1/eps),

``leak`` being the bits disclosed during reconciliation (parities, syndromes, verification hashes).
:func:`leftover_hash_length` applies that formula and refuses a non-positive budget.

Family used: binary Toeplitz matrices ``T`` (``ell x n``, ``T[i, j] = s[i - j + n - 1]``, seed ``s``
of ``n + ell - 1`` uniform bits), which is 2-universal: for any ``x != x'``,
``Pr_s[T x = T x'] = 2^-ell`` (Mansour, Nisan, Tiwari, STOC 1990; Krawczyk, CRYPTO 1994). ``T x`` is
a linear convolution of ``s`` and ``x`` and is applied by FFT in ``O((n + ell) log(n + ell))``.

:func:`shake_extract` (SHAKE-256, FIPS 202) is offered as a labelled alternative: it is a
computational extractor in the random-oracle sense, not an information-theoretic one, so the leftover
hash lemma does not apply to it.

numpy only (plus :mod:`hashlib`).
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass

import numpy as np

from .channel import check_channel

__all__ = [
    "BudgetNotPositive",
    "PrivacyResult",
    "as_bits",
    "check_eps",
    "leftover_hash_length",
    "privacy_amplify",
    "shake_extract",
    "toeplitz_hash",
    "toeplitz_seed",
]


def as_bits(bits, name: str = "bits", *, ndim: int | None = 1) -> np.ndarray:
    """Validate a 0/1 array (any integer, bool or whole-valued float dtype) and return it as ``uint8``.

    Raises ``ValueError`` on non-binary values, non-numeric dtypes or the wrong number of dimensions.
    """
    arr = np.asarray(bits)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D 0/1 array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric 0/1, got dtype {arr.dtype}")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        bad = arr[(arr != 0) & (arr != 1)].flat[0].item()
        raise ValueError(f"{name} must be binary (only 0 and 1 allowed), found {bad!r}")
    return arr.astype(np.uint8)


class BudgetNotPositive(ValueError):
    """The leftover-hash budget ``H - leak - 2 log2(1/eps)`` is not positive: no key may be output.

    A ``ValueError`` (bad input to the caller); its own type so that a pipeline can refuse one frame
    and go on, while any other error still stops it.
    """


def check_eps(eps) -> float:
    """Security parameter ``eps`` of the leftover hash lemma; must be a real number in (0, 1)."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (0.0 < float(eps) < 1.0):
        raise ValueError(f"eps = {eps!r} is not allowed; the security parameter must lie in (0, 1), e.g. 1e-10")
    return float(eps)


def _check_length(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} = {value!r} is not allowed; it must be an integer >= {minimum}")
    return int(value)


def toeplitz_seed(n: int, out_len: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform seed of a ``out_len x n`` Toeplitz matrix: ``n + out_len - 1`` bits, ``uint8``.

    The seed is announced on the public channel; it is independent of the key, so it leaks nothing.
    """
    n = _check_length(n, "n")
    out_len = _check_length(out_len, "out_len")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng.integers(0, 2, size=n + out_len - 1, dtype=np.uint8)


def toeplitz_hash(bits, seed_bits, out_len: int) -> np.ndarray:
    """``T x mod 2`` for the ``out_len x n`` binary Toeplitz matrix ``T[i, j] = seed[i - j + n - 1]``.

    Applied as a linear convolution by real FFT (exact: every convolution value is an integer
    ``<= n``, far below float64's 2^53). Batched: ``bits`` may be ``[..., n]``; every row is hashed
    with the same matrix.

    Args:
        bits: ``[..., n]`` 0/1.
        seed_bits: ``[n + out_len - 1]`` 0/1 (:func:`toeplitz_seed`).
        out_len: output length ``ell >= 1``; need not be ``<= n`` but compression needs it.

    Returns:
        ``[..., out_len]`` uint8.
    """
    x = as_bits(bits, "bits", ndim=None)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"bits must have shape [..., n] with n >= 1, got shape {x.shape}")
    out_len = _check_length(out_len, "out_len")
    n = x.shape[-1]
    s = as_bits(seed_bits, "seed_bits")
    if s.size != n + out_len - 1:
        raise ValueError(
            f"seed_bits has {s.size} bits; a {out_len} x {n} Toeplitz matrix needs n + out_len - 1 = "
            f"{n + out_len - 1}"
        )
    size = n + s.size - 1
    nfft = 1 << (size - 1).bit_length()
    conv = np.fft.irfft(np.fft.rfft(x.astype(np.float64), nfft) * np.fft.rfft(s.astype(np.float64), nfft), nfft)
    # (T x)_i = sum_j s[i - j + n - 1] x_j = conv[i + n - 1]
    vals = np.rint(conv[..., n - 1: n - 1 + out_len]).astype(np.int64)
    return (vals & 1).astype(np.uint8)


def leftover_hash_length(entropy_bits: float, disclosed_bits: float, eps: float) -> int:
    """Output length of the leftover hash lemma: ``floor(H - leak - 2 log2(1/eps))``.

    Args:
        entropy_bits: (smooth) min-entropy of the reconciled string given Eve's observation, in bits
            (see :mod:`keygen.entropy` for how the pipeline estimates it).
        disclosed_bits: bits revealed during reconciliation (parities, syndromes, verification hashes).
        eps: security parameter in (0, 1): distance of the output from a uniform key independent of Eve.

    Raises:
        BudgetNotPositive: when the budget is not positive (no key may be output).
        ValueError: on bad input.
    """
    eps = check_eps(eps)
    for name, v in (("entropy_bits", entropy_bits), ("disclosed_bits", disclosed_bits)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) or v < 0:
            raise ValueError(f"{name} = {v!r} is not allowed; it must be a finite number >= 0")
    cost = 2.0 * math.log2(1.0 / eps)
    budget = float(entropy_bits) - float(disclosed_bits) - cost
    ell = math.floor(budget)
    if ell <= 0:
        raise BudgetNotPositive(
            f"privacy-amplification budget is not positive: entropy {float(entropy_bits):.1f} - disclosed "
            f"{float(disclosed_bits):.1f} - 2 log2(1/eps) {cost:.1f} = {budget:.1f} bits; no key can be "
            "output (use a longer block, a larger eps or a more efficient reconciliation)"
        )
    return int(ell)


@dataclass(frozen=True)
class PrivacyResult:
    """Output of :func:`privacy_amplify`.

    Attributes:
        key: ``[out_len]`` uint8 final key.
        seed_bits: public Toeplitz seed (``n + out_len - 1`` bits; ``None`` for SHAKE).
        out_len: final key length ``ell``.
        method: ``"toeplitz"`` (information-theoretic, leftover hash lemma) or ``"shake256"``
            (computational, not covered by the lemma).
        entropy_bits, disclosed_bits, eps: the budget the length was derived from.
    """

    key: np.ndarray
    seed_bits: np.ndarray | None
    out_len: int
    method: str
    entropy_bits: float
    disclosed_bits: float
    eps: float


def privacy_amplify(bits, *, entropy_bits: float, disclosed_bits: float, eps: float = 1e-10,
                    seed_bits=None, rng: np.random.Generator | None = None, method: str = "toeplitz",
                    channel=None) -> PrivacyResult:
    """Compress a reconciled string to a final key of leftover-hash-lemma length.

    Alice draws the seed (``rng``) and announces it (recorded on ``channel`` as public,
    key-independent bits); Bob calls this again with the same ``seed_bits`` and gets the same key
    from the same string.

    Args:
        bits: ``[n]`` 0/1 reconciled string.
        entropy_bits, disclosed_bits, eps: see :func:`leftover_hash_length`; raises if the budget is
            not positive.
        seed_bits: the public seed (Bob's side); if ``None`` a fresh one is drawn from ``rng``.
        rng: numpy Generator for the seed (Alice's side).
        method: ``"toeplitz"`` (default) or ``"shake256"`` (labelled computational alternative; the
            same output length is used, but its security rests on SHAKE-256, not on the lemma).
        channel: optional :class:`keygen.channel.PublicChannel` on which the seed is announced.
    """
    check_channel(channel)
    x = as_bits(bits)
    if x.size == 0:
        raise ValueError("bits is empty; privacy amplification needs a reconciled string of n >= 1 bits")
    ell = leftover_hash_length(entropy_bits, disclosed_bits, eps)
    if ell >= x.size:
        raise ValueError(
            f"the leftover-hash budget ({ell} bits) is not below the string length n = {x.size}; "
            "the entropy estimate exceeds the string length, which is inconsistent"
        )
    if method == "toeplitz":
        if seed_bits is None:
            if rng is None:
                raise ValueError("give seed_bits (Bob) or rng (Alice draws the public seed)")
            seed_bits = toeplitz_seed(x.size, ell, rng)
        seed = as_bits(seed_bits, "seed_bits")
        if channel is not None:
            channel.announce("toeplitz_seed", seed.size)
        key = toeplitz_hash(x, seed, ell)
        return PrivacyResult(key, seed, ell, "toeplitz", float(entropy_bits), float(disclosed_bits), float(eps))
    if method == "shake256":
        return PrivacyResult(shake_extract(x, ell), None, ell, "shake256", float(entropy_bits),
                             float(disclosed_bits), float(eps))
    raise ValueError(f"method = {method!r} is not allowed; use 'toeplitz' or 'shake256'")


def shake_extract(bits, out_len: int, *, context: bytes | str = b"phykey-pa") -> np.ndarray:
    """SHAKE-256 (FIPS 202) of the packed bits, truncated to ``out_len`` bits: a *computational* extractor.

    Labelled alternative to Toeplitz hashing: its output is indistinguishable from uniform only under
    the assumption that SHAKE-256 behaves as a random oracle; the leftover hash lemma does not cover it.
    The bit length and a context string are hashed in front so strings of different length never collide
    trivially. ``context`` is ``bytes`` (or ``bytearray``); a ``str`` is encoded as UTF-8 first.
    """
    if isinstance(context, str):
        context = context.encode("utf-8")
    elif not isinstance(context, (bytes, bytearray)):
        raise ValueError(f"context = {context!r} is not allowed; it must be bytes or a str (encoded as UTF-8)")
    x = as_bits(bits)
    out_len = _check_length(out_len, "out_len")
    h = hashlib.shake_256()
    h.update(bytes(context) + b"|" + str(x.size).encode() + b"|")
    h.update(np.packbits(x).tobytes())
    digest = np.frombuffer(h.digest((out_len + 7) // 8), dtype=np.uint8)
    return np.unpackbits(digest)[:out_len].astype(np.uint8)
