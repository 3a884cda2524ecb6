"""Truncation: cutting texts and pairs to a length limit (transformers' strategies), and the one warning a
call gives for everything it cut."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
# Frames inside these packages are not the caller a warning should point at (xlmlib's own calls, and
# torch's no_grad decorator wrapping the public functions).
_INTERNAL = (str(Path(__file__).resolve().parents[1]), str(Path(torch.__file__).resolve().parent))


class TruncationWarning(UserWarning):
    """Text was cut to fit a length limit (one warning per call, with how many sequences and to what length)."""


def caller_stacklevel() -> int:
    """The stacklevel, for a warnings.warn made by the function calling this one, of the first frame outside
    xlmlib and torch: the user's line, whatever wrappers sit between."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level


def warn_truncated(n_cut: int, n_total: int, length: int, where: str) -> None:
    """One warning for all the sequences a call cut, never one per sequence, pointing at the user's call."""
    if n_cut:
        warnings.warn(f"{where}: truncated {n_cut} of {n_total} sequences to {length} tokens "
                      "(truncation=False keeps them whole)", TruncationWarning, stacklevel=caller_stacklevel())


def truncate_pair(a: list, b: list | None, n_remove: int, strategy: str) -> tuple[list, list | None]:
    """Drop `n_remove` tokens from the end of a and/or b (each list holds per-token items)."""
    if n_remove <= 0:
        return a, b
    if strategy == "longest_first":
        if b is None:
            return a[: max(len(a) - n_remove, 0)], None
        la, lb = _longest_first(len(a), len(b), n_remove)
        return a[:la], b[:lb]
    target_is_b = strategy == "only_second"
    if target_is_b and b is None:
        raise ValueError("truncation='only_second' needs a text_pair")
    seq = b if target_is_b else a
    if n_remove > len(seq):
        raise ValueError(f"cannot truncate {n_remove} tokens with {strategy!r}: that sequence has {len(seq)}")
    seq = seq[: len(seq) - n_remove]
    return (a, seq) if target_is_b else (seq, b)


def _longest_first(la: int, lb: int, n: int) -> tuple[int, int]:
    """Lengths left after removing n tokens one at a time from the longer side, ties from the second.

    That is transformers' rule (tokenization_utils_base.truncate_sequences), in closed form: first
    even the two out, then take alternately, the second side first.
    """
    if n > la + lb:
        raise ValueError(f"cannot remove {n} tokens from sequences of {la} and {lb}")
    gap = min(n, abs(la - lb))
    la, lb = (la - gap, lb) if la > lb else (la, lb - gap)
    rest = n - gap
    return la - rest // 2, lb - (rest + 1) // 2


def resolve_truncation(truncation: bool | str) -> str | None:
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation is None:
        return None
    if truncation not in TRUNCATION_STRATEGIES:
        raise ValueError(f"truncation must be a bool or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
    return truncation
