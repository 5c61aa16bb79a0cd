"""Argument validation shared by every system model, in one message style.

Every refusal is a ``ValueError`` that names the argument, shows the bad value and says what is allowed:

    ``"<name> must be <what is allowed>, got <the value>"``, e.g. ``"N_k must be an integer >= 1, got 0"``.

(The sentence form every physics message already had; tests and scripts match on it.) Values are shown with
:func:`short` (a repr cut to 80 characters, never a whole array). The helpers validate at the boundary, where a
user's value enters (constructors, public functions); in-graph code (design spaces, the ascent steps) checks
nothing per step. Domain checks that need the physics (a precoder's power, a feasible pilot covariance W, a
Hermitian PSD Lambda) live with the physics and call these helpers for their generic parts.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "as_real", "as_tensor", "check_broadcast", "trusted_inputs", "value_checks_on",
    "check_choice", "check_finite", "check_flag", "check_hermitian",
    "check_int", "check_range", "check_real", "check_semi_unitary", "check_shape", "is_real_scalar", "short",
]


_VALUE_CHECKS = contextvars.ContextVar("phykey_value_checks", default=True)


def value_checks_on() -> bool:
    """False inside :func:`trusted_inputs`: the checks that read tensor values back to the host are skipped."""
    return _VALUE_CHECKS.get()


@contextlib.contextmanager
def trusted_inputs() -> Iterator[None]:
    """Skip the data-dependent checks (finiteness, ranges, unit modulus, pilot power, budgets: each reads tensor
    values back to the host, one synchronisation per call on a GPU) inside this block. For inputs that are valid
    by construction: a training step's draws come from the scenario's own ``sample`` and its design from the
    design space's projection (``losses.skr.NegativeMeanSKR`` uses it). Shape and type checks still run, and
    every public function checks values as usual outside the block."""
    token = _VALUE_CHECKS.set(False)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def short(x) -> str:
    """``repr(x)`` cut to 80 characters (a message never carries the repr of a whole array)."""
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def is_real_scalar(x) -> bool:
    """A Python or numpy integer/real scalar (numpy scalars come from configs and sweeps); bools are not."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


def check_int(name: str, value, low: int = 1) -> int:
    """``value`` as an int; refused unless it is an integer >= ``low``.

    Integers (Python, numpy), integer-valued finite floats (``3.0`` from a config) and one-element real tensors
    are accepted; bools, ``2.5``, ``inf``, strings and None are not.
    """
    v = value
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"{name} must be one integer >= {low}, got a tensor of shape {tuple(v.shape)}")
        v = v.item()
    ok = not isinstance(v, bool | np.bool_) and (
        isinstance(v, numbers.Integral) or (isinstance(v, float | np.floating) and math.isfinite(v)
                                            and float(v).is_integer()))
    if not ok:
        raise ValueError(f"{name} must be an integer >= {low}, got {short(value)}")
    v = int(v)
    if v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v}")
    return v


def check_real(name: str, value, *, low: float | None = None, high: float | None = None,
               low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """``value`` as a finite float inside the stated bounds (Python/numpy reals, never bools)."""
    if not is_real_scalar(value):
        raise ValueError(f"{name} must be a real number, got {short(value)}")
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v >= low if low_inclusive else v > low
    if ok and high is not None:
        ok = v <= high if high_inclusive else v < high
    if not ok:
        left = "[" if low_inclusive and low is not None else "("
        right = "]" if high_inclusive and high is not None else ")"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be finite and lie in {interval}, got {short(value)}")
    return v


def check_range(name: str, *bounds, min_allowed: float | None = None, max_allowed: float | None = None,
                max_inclusive: bool = True) -> tuple[float, float]:
    """A ``[low, high]`` range, ``check_range(name, rng)`` or ``check_range(name, lo, hi)``, as two floats: two
    finite real numbers (numpy scalars too, never bools), low <= high, inside the allowed bounds."""
    if len(bounds) == 1:
        rng = bounds[0]
        if isinstance(rng, str | bytes) or not hasattr(rng, "__len__") or len(rng) != 2:
            raise ValueError(f"{name} must be a range [low, high] of two numbers, got {short(rng)}")
        bounds = tuple(rng)
    if len(bounds) != 2:
        raise ValueError(f"{name} must be a range [low, high] of two numbers, got {short(list(bounds))}")
    lo, hi = bounds
    if not (is_real_scalar(lo) and is_real_scalar(hi)):
        raise ValueError(f"{name} range must be two real numbers, got [{short(lo)}, {short(hi)}]")
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} range must be finite, got [{lo}, {hi}]")
    if lo > hi:
        raise ValueError(f"{name} range is inverted: low {lo} > high {hi}")
    if min_allowed is not None and lo < min_allowed:
        raise ValueError(f"{name} range must start at >= {min_allowed}, got {lo}")
    if max_allowed is not None and (hi > max_allowed or (not max_inclusive and hi >= max_allowed)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} range must end at {op} {max_allowed}, got {hi}")
    return lo, hi


def check_flag(name: str, value) -> bool:
    """``value`` as a bool; refused unless it is ``True`` or ``False`` (a YAML ``no`` string is not)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be true or false, got {short(value)}")
    return bool(value)


def check_choice(name: str, value, choices: tuple) -> object:
    """``value`` unless it is not one of ``choices``."""
    def same(c) -> bool:
        if isinstance(value, bool | np.bool_) != isinstance(c, bool):  # True is not the choice 1
            return False
        try:
            return bool(value == c)
        except (TypeError, ValueError, RuntimeError):  # an array or a tensor is no choice
            return False

    if not any(same(c) for c in choices):
        raise ValueError(f"{name} must be one of {tuple(choices)!r}, got {short(value)}")
    return value


def check_shape(name: str, shape) -> tuple[int, ...]:
    """A batch shape: a tuple (list, torch.Size) of integers >= 0."""
    ok = not isinstance(shape, str | bytes) and isinstance(shape, tuple | list | torch.Size)
    if ok:
        ok = all(not isinstance(d, bool) and isinstance(d, numbers.Integral) and d >= 0 for d in shape)
    if not ok:
        raise ValueError(f"{name} must be a tuple of integers >= 0 (the batch dimensions), got {short(shape)}")
    return tuple(int(d) for d in shape)


def as_real(name: str, x, *, like: torch.Tensor | None = None, what: str = "a real number or a real tensor",
            complex_note: str = "", finite: bool = False, positive: bool = False, nonneg: bool = False) -> torch.Tensor:
    """``x`` (a real number, array or tensor) as a float64 tensor, on ``like``'s device when given.

    Refused: strings, None, bools and complex values (a cast would drop the imaginary part silently); ``what``
    says what is allowed, ``complex_note`` is added to the refusal of a complex value. Python floats go straight
    to float64 (``torch.as_tensor`` alone would round them to float32 first). ``finite``, ``positive``,
    ``nonneg``: also :func:`check_finite` (finite, and > 0 or >= 0).
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{name} must be real{complex_note}, got a complex tensor (dtype {x.dtype})")
        if x.dtype == torch.bool:
            raise ValueError(f"{name} must be real numbers, got a bool tensor")
        t = x.to(torch.float64)
    elif isinstance(x, bool | np.bool_):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    else:
        try:
            t = None if isinstance(x, str | bytes) else torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            t = None
        if t is None or t.dtype == torch.bool:
            got = f"of dtype {t.dtype}" if t is not None and t.ndim else short(x)  # never the repr of an array
            raise ValueError(f"{name} must be {what}, got {type(x).__name__} {got}")
        if t.is_complex():
            raise ValueError(f"{name} must be real{complex_note}, got a complex value (dtype {t.dtype})")
        t = torch.as_tensor(x, dtype=torch.float64, device=like.device if like is not None else None)
    if like is not None and t.device != like.device:
        t = t.to(like.device)
    if finite or positive or nonneg:
        check_finite(name, t, positive=positive, nonneg=nonneg)
    return t


def as_tensor(name: str, X) -> torch.Tensor:
    """A tensor (returned as it is), or a numpy array / nested list as a float64 or complex128 tensor (integers
    too, not bools). Lists of Python numbers would default to float32 / complex64: rounding a rank-deficient
    covariance to single precision makes it indefinite by ~1e-8."""
    if isinstance(X, torch.Tensor):
        return X
    try:
        t = None if isinstance(X, str | bytes) else torch.as_tensor(X)
        if t is not None and t.dtype != torch.bool and not t.is_complex():
            t = torch.as_tensor(X, dtype=torch.float64)
        elif t is not None and t.is_complex():
            t = torch.as_tensor(X, dtype=torch.complex128)
    except (TypeError, ValueError, RuntimeError):
        t = None
    if t is None or not (t.is_floating_point() or t.is_complex()):
        raise ValueError(f"{name} must be a real or complex tensor (or array), got {type(X).__name__}"
                         + (f" of dtype {t.dtype}" if t is not None else ""))
    return t


def check_finite(name: str, t: torch.Tensor, *, positive: bool = False, nonneg: bool = False) -> None:
    """Refuse ``t`` (real or complex) unless every entry is finite (and > 0 / >= 0 when asked); the message
    shows the first non-finite entry or the smallest value. Skipped inside :func:`trusted_inputs`."""
    if not value_checks_on():
        return
    if not torch.all(torch.isfinite(t)):
        bad = t[~torch.isfinite(t)].reshape(-1)[0].item()
        raise ValueError(f"{name} must be finite, got {bad}")
    if positive and torch.any(t <= 0):
        raise ValueError(f"{name} must be > 0, got min {t.min().item():.6g}")
    if nonneg and torch.any(t < 0):
        raise ValueError(f"{name} must be >= 0, got min {t.min().item():.6g}")


def check_broadcast(**shapes) -> torch.Size:
    """The common batch shape of the named arguments; refused, naming every argument, unless they broadcast.

    ``shapes``: name -> batch shape, or name -> (layout, batch shape) where the layout says which trailing
    dimensions are not batch, e.g. ``W=("[..., N, N]", W.shape[:-2])``. Scalars (shape ``()``) always fit and are
    left out of the message.
    """
    parts = {nm: (v if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) else ("", v))
             for nm, v in shapes.items()}
    try:
        return torch.broadcast_shapes(*(torch.Size(shape) for _, shape in parts.values()))
    except RuntimeError:
        msg = ", ".join(f"{nm} {lay + ' ' if lay else ''}batch shape {tuple(shape)}"
                        for nm, (lay, shape) in parts.items() if len(shape))
        raise ValueError(f"batch dimensions do not broadcast: {msg}") from None


def check_hermitian(name: str, X: torch.Tensor, tol: float, symbol: str, word: str = "Hermitian",
                    adjoint: str = "H") -> torch.Tensor:
    """Refuse ``X [..., D, D]`` unless max |X - X^H| <= ``tol`` max |X| for every matrix; returns max |X| per
    matrix (the scale the callers' other relative checks use)."""
    scale = X.abs().amax((-1, -2)).clamp_min(1e-300)
    if not value_checks_on():
        return scale
    asym = (X - X.mH).abs().amax((-1, -2)) / scale
    if torch.any(asym > tol):
        raise ValueError(f"{name} must be {word}, got max |{symbol} - {symbol}^{adjoint}| / max |{symbol}| = "
                         f"{asym.max().item():.3g}")
    return scale


def check_semi_unitary(name: str, U: torch.Tensor, tol: float = 1e-6) -> None:
    """Refuse ``U [..., D, n]`` unless it is tall (1 <= n <= D), finite and U^H U = I within ``tol``."""
    if U.ndim < 2 or U.shape[-1] > U.shape[-2] or U.shape[-1] == 0:
        raise ValueError(f"{name} must be tall [..., D, n] with 1 <= n <= D, got shape {tuple(U.shape)}")
    check_finite(name, U)
    if U.numel() == 0 or not value_checks_on():  # an empty batch: nothing to check, the rate is empty too
        return
    eye = torch.eye(U.shape[-1], dtype=U.dtype, device=U.device)
    err = (U.mH @ U - eye).abs().amax().item()
    if err > tol:
        raise ValueError(f"{name} must be semi-unitary ({name}^H {name} = I), got max deviation {err:.3g}")
