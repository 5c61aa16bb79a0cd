"""Plans and reports of the sliced reconciliation (:mod:`keygen.sliced_reconcile`): what is public before any
data is seen (the plan of each component and stage) and what a run disclosed, slice by slice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ComponentPlan:
    """One component's part of a stage: its own stage index, slice (bit) and exact channel figures."""

    component: int
    rho: float
    bits: int
    stage: int  # the component's own stage (position in its decoding order)
    slice: int  # bit position of the slice in the level label
    entropy: float  # H(S | Y, earlier slices), bits per symbol
    error_rate: float  # Bob's hard-decision error rate
    dispersion: float  # variance of the information density, bits^2 per symbol
    mode: str  # "code" or "disclose"


@dataclass(frozen=True)
class StagePlan:
    """A global stage: its components, the frame of the coded ones and its initial syndrome length."""

    stage: int
    components: tuple[ComponentPlan, ...]
    n: int  # symbols per component
    frame_bits: int  # coded bits N
    frame_entropy_bits: float  # sum over coded components of n H
    expected_errors: float  # sum over coded components of n * error_rate
    frame_dispersion: float  # sum over coded components of n V
    syndrome_bits: int  # m0 (0: hash only at first)
    disclosed_outright_bits: int

    @property
    def designed_rate(self) -> float:
        return 1.0 - self.syndrome_bits / self.frame_bits if self.frame_bits else float("nan")


@dataclass
class SliceReport:
    """Outcome of one global stage.

    ``efficiency`` is ``disclosed_bits / entropy_bits`` with ``entropy_bits`` the exact
    ``sum n H(S | Y, earlier slices)`` over every component of the stage (disclosed ones included).
    """

    stage: int
    components: tuple[int, ...]
    modes: tuple[str, ...]
    entropy_per_symbol: tuple[float, ...]
    frame_bits: int
    entropy_bits: float
    designed_rate: float
    syndrome_bits: int
    extra_bits: int
    hash_bits: int
    disclosed_outright_bits: int
    disclosed_bits: int
    efficiency: float
    attempts: int
    success: bool
    bp_iterations: list[int] = field(default_factory=list)
    decode_time_s: float = 0.0
    code_time_s: float = 0.0
    code_margin: float | None = None
    residual_errors: int = 0  # simulator diagnostic: Bob's frame vs Alice's after the last attempt


@dataclass
class SlicedResult:
    """Outcome of :meth:`SlicedReconciler.reconcile`.

    Attributes:
        success: every stage verified.
        n_symbols: real components reconciled (``n * d``).
        bits: ``[d]`` bits per component.
        slices: one :class:`SliceReport` per global stage (stages after a failure are absent).
        disclosed_bits: every key-dependent bit sent (syndromes, extra syndrome bits, hashes, outright slices).
        key_bits: length of the reconciled string (``n * sum bits``).
        net_bits: ``key_bits - disclosed_bits`` (the reconciled, disclosure-subtracted bits).
        mutual_information_bits: ``n * sum I(X; Y)`` (exact).
        quantised_information_bits: ``n * sum I(Q; Y)`` (exact).
        time_s: wall time of the reconciliation (code construction included, see ``code_time_s``).
        code_time_s: time spent designing and building codes (zero when cached).
        transcript: the public messages (for :meth:`SlicedReconciler.replay`).
    """

    success: bool
    n_symbols: int
    bits: np.ndarray
    slices: list[SliceReport]
    disclosed_bits: int
    key_bits: int
    mutual_information_bits: float
    quantised_information_bits: float
    time_s: float
    code_time_s: float
    transcript: dict[str, Any]
    _alice: np.ndarray | None = None
    _bob: np.ndarray | None = None

    @property
    def net_bits(self) -> int:
        return self.key_bits - self.disclosed_bits

    @property
    def net_bits_per_symbol(self) -> float:
        return self.net_bits / self.n_symbols

    @property
    def share_of_mutual_information(self) -> float:
        """``net_bits / (n sum I(X;Y))``: the reconciliation efficiency beta of CV-QKD."""
        return self.net_bits / self.mutual_information_bits if self.mutual_information_bits > 0 else float("nan")

    def key(self) -> np.ndarray:
        """Alice's reconciled string ``[key_bits]`` uint8 (stage-major); raises if reconciliation failed."""
        if not self.success:
            raise RuntimeError("sliced reconciliation failed (a stage exhausted its retries); the frame yields no key")
        return self._alice

    def bob_key(self) -> np.ndarray:
        """Bob's reconciled string (equal to :meth:`key` on success); raises if reconciliation failed."""
        if not self.success:
            raise RuntimeError("sliced reconciliation failed (a stage exhausted its retries); the frame yields no key")
        return self._bob


@dataclass
class EveReplay:
    """Eve's replay of a transcript: her estimate of Alice's string and its per-stage bit error rates."""

    estimate: np.ndarray
    stage_bit_error_rate: list[float]
    converged: list[bool]

    @property
    def bit_error_rate(self) -> float:
        return float(np.mean(self.stage_bit_error_rate)) if self.stage_bit_error_rate else float("nan")
