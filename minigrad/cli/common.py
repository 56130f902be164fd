"""Pieces shared by the ``minigrad`` subcommands: the one-line error and argument checkers."""
from __future__ import annotations

import argparse
import math
from pathlib import Path


class CLIError(Exception):
    """A problem with the user's input: printed as one line on stderr, exit status 2, no traceback."""


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def writable_path(path: str, option: str) -> Path:
    """``path`` as a Path after checking that its directory exists, so a long run cannot fail at the end."""
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{option} {path}: is a directory; give a file name")
    if not p.parent.is_dir():
        raise CLIError(f"{option} {path}: directory {p.parent} does not exist")
    return p
