"""The authenticated public channel between Alice and Bob, and its record (what Eve hears).

Every stage that talks in the clear (the quantiser's guard-band exchange, reconciliation's parities,
syndromes and verification hashes, privacy amplification's seed) writes onto one
:class:`PublicChannel`. Its counters split what was sent into *disclosed* bits (they depend on the key
strings and are subtracted in privacy amplification) and *public* bits (seeds and positions chosen
independently of the keys, which leak nothing); ``log`` is the transcript in order.

Its own module so that :mod:`keygen.reconcile` and :mod:`keygen.privacy` both use it without importing
each other. numpy-free, standard library only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

__all__ = ["PublicChannel", "check_channel"]


def _check_count(nbits, kind) -> None:
    # a negative count would lower the disclosed total and so lengthen the privacy-amplified key
    if isinstance(nbits, bool) or not isinstance(nbits, numbers.Integral) or nbits < 0:
        raise ValueError(f"nbits = {nbits!r} (message {kind!r}) is not allowed; it must be an integer >= 0")


@dataclass
class PublicChannel:
    """The authenticated public channel between Alice and Bob; Eve hears everything on it.

    Attributes:
        disclosed_bits: bits that depend on the key strings (Cascade parities, LDPC syndromes,
            verification hashes); these are subtracted in privacy amplification.
        public_bits: key-independent public bits (permutation and hash seeds, guard-band positions).
        rounds: message rounds (a request and its reply, or one one-way message, count as one).
        log: ``(kind, bits, disclosed?)`` per message, in order.
    """

    disclosed_bits: int = 0
    public_bits: int = 0
    rounds: int = 0
    log: list[tuple[str, int, bool]] = field(default_factory=list)

    def disclose(self, kind: str, nbits: int, *, new_round: bool = True) -> None:
        """Record ``nbits`` key-dependent bits sent in the clear (an integer ``>= 0``)."""
        _check_count(nbits, kind)
        self.disclosed_bits += int(nbits)
        self.rounds += int(new_round)
        self.log.append((kind, int(nbits), True))

    def announce(self, kind: str, nbits: int, *, new_round: bool = True) -> None:
        """Record ``nbits`` key-independent public bits (seeds, positions); an integer ``>= 0``."""
        _check_count(nbits, kind)
        self.public_bits += int(nbits)
        self.rounds += int(new_round)
        self.log.append((kind, int(nbits), False))


def check_channel(channel) -> None:
    """``channel`` is a :class:`PublicChannel` or ``None`` (the callers then open a fresh one)."""
    if channel is not None and not isinstance(channel, PublicChannel):
        raise ValueError(f"channel = {channel!r} is not allowed; it must be a keygen.channel.PublicChannel or None")
