"""Pieces shared by the ``minigrad`` subcommands: the one-line error and argument checkers."""
from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable
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


def positive_int_up_to(high: int) -> Callable[[str], int]:
    """An argparse type: a positive integer no larger than ``high`` (a size that would need far more memory
    than a machine has is refused up front instead of failing deep inside numpy)."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"expected a positive integer up to {high}, got {value}")
        return value
    return parse


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


def writable_path(path: str, option: str, *, replace: bool = False) -> Path:
    """``path`` as a Path after checking that it can be written, so that a long run cannot fail at the end.

    Symbolic links are followed (the file they lead to is written).  Refused: a directory, anything else that
    is not a regular file (a named pipe would block the writer), a directory that does not exist or cannot be
    written to (``replace``: a new file is always made there and renamed over the old one, as checkpoints
    are), an existing file that cannot be written.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as e:  # a loop of symbolic links
        raise CLIError(f"{option} {path}: {e.strerror}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise CLIError(f"{option} {path}: is a directory; give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise CLIError(f"{option} {path}: is not a regular file (a named pipe, socket or device); give a "
                       "file name")
    directory = target.parent
    if not directory.is_dir():
        blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise CLIError(f"{option} {path}: {blocker} is not a directory")
        raise CLIError(f"{option} {path}: directory {directory} does not exist")
    if (replace or mode is None) and not os.access(directory, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {path}: directory {directory} is not writable")
    if mode is not None and not os.access(target, os.W_OK) and not replace:
        raise CLIError(f"{option} {path}: the file is not writable")
    return Path(path)
