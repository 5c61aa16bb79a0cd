"""Argument parsing and small helpers shared by the scripts in ``experiments/`` and ``benchmarks/``.

:class:`Parser` prints one line ``error: ...`` on stderr and exits with status 2 (no usage block), and
the ``type=`` validators refuse 0, negative, non-integer and non-finite values instead of letting a
script fall back to a default (``args.x or default`` is never used: 0 is an error, not "default").
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line: ``error: <message>`` and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def fail(message: str) -> None:
    """A user error found after parsing: one line ``error: <message>`` on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_out_folder(out: Path, record: str, overwrite: bool) -> None:
    """Check a script's ``--out`` before any work: a folder (or a new name) whose parent exists, and not one that
    already holds this script's ``record`` file (``results.md``, ``sweep.json``) unless ``overwrite``: a smoke
    run or a stray command must not replace published results."""
    if out.exists() and not out.is_dir():
        fail(f"--out {str(out)!r} exists and is not a folder")
    if not out.parent.exists():
        fail(f"--out: parent folder {str(out.parent)!r} does not exist")
    if (out / record).exists() and not overwrite:
        fail(f"--out {str(out)!r} already holds results ({record}); pass --overwrite to replace them, or give "
             "another --out")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``type=`` for counts: an integer >= 1 (``0``, ``-1``, ``2.5`` and ``abc`` are refused)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """``type=`` for seeds: an integer >= 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """``type=`` for rates and durations: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def open_fraction(text: str) -> float:
    """``type=`` for fractions: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def checkpoint_arg(path: Path, flag: str) -> dict:
    """The checkpoint given as ``--<flag>``, read safely (:func:`models.checkpoints.load_checkpoint`); a missing
    or unreadable file is a one-line error naming the flag and the path."""
    from models.checkpoints import load_checkpoint

    if not path.is_file():
        fail(f"--{flag} {str(path)!r} is not a file")
    try:
        return load_checkpoint(path)
    except ValueError as e:
        fail(f"--{flag}: {e}")


def best_time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls of ``fn()`` after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
