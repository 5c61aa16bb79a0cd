"""The one seeding scheme of phykey: every random stream is a ``torch.Generator`` derived from keys.

``generator_for(seed, stream, ...)`` seeds a CPU generator from ``numpy.random.SeedSequence`` over
the keys; integer keys enter as they are, string and float keys (e.g. ``"split"``, an SNR in dB)
through a stable SHA-256 digest, so a stream depends on its keys only: the same on every machine,
process and DDP rank, and independent of any global RNG state.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

#: Stream keys of the scenario framework passed after the seed, one per consumer, so no two
#: consumers ever share draws.
STREAMS = {"train": 1, "val": 2, "test": 3, "baselines": 4, "optimum": 5}


def _key_to_int(key) -> int:
    if isinstance(key, bool):
        raise ValueError(f"seed keys must be integers, strings or floats, got {key!r}")
    if isinstance(key, int | np.integer):
        if key < 0:
            raise ValueError(f"integer seed keys must be >= 0, got {key}")
        return int(key)
    if isinstance(key, str | float):
        digest = hashlib.sha256(f"{type(key).__name__}:{key!r}".encode()).digest()
        return int.from_bytes(digest[:8], "little")
    raise ValueError(f"seed keys must be integers, strings or floats, got {type(key).__name__} {key!r}")


def check_generator(generator) -> torch.Generator:
    """Library draws take an explicit generator: ``None`` would fall back to torch's global RNG (not reproducible
    from the seed) and an integer seed is not a stream; both are refused with the way to get one."""
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator (e.g. physics.seeding.generator_for(seed)), got "
                         f"{type(generator).__name__} {generator!r}")
    return generator


def generator_for(*keys) -> torch.Generator:
    """A CPU generator seeded from keys (seed, stream, epoch, batch index, purpose, SNR, ...)."""
    if not keys:
        raise ValueError("generator_for needs at least one key")
    state = np.random.SeedSequence([_key_to_int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
