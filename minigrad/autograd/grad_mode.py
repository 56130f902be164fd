"""Grad-mode switches.  The flag itself is a C thread-local in the engine, so each thread has its own."""
import functools

import numpy as np

from minigrad.autograd.engine import _set_anomaly_mode, _set_grad_mode, is_anomaly_enabled, is_grad_enabled

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "detect_anomaly",
           "is_anomaly_enabled"]


class _GradMode:
    """Base for the switches: a context manager that restores the previous mode, and a decorator."""

    mode = True

    def __enter__(self):
        self._prev = _set_grad_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Ops run inside record no graph (inference, optimiser updates).  Also usable as ``@no_grad()``."""

    mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` block.  Also usable as ``@enable_grad()``."""

    mode = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` sets the mode now; as a context manager it restores the previous one."""

    def __init__(self, mode):
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError("set_grad_enabled expects a bool, got %r" % (mode,))
        self.mode = bool(mode)
        self._prev = _set_grad_mode(self.mode)

    def __enter__(self):
        return self

    def __call__(self, fn):
        mode = self.mode
        _set_grad_mode(self._prev)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = _set_grad_mode(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _set_grad_mode(prev)
        return wrapper


class detect_anomaly:
    """Raise at the first op whose forward output or backward gradient holds nan or inf.

    Inside the block every recorded op also remembers where it was created, and the error names the op
    and prints that stack.  It costs a finiteness check per op: use it to debug, not to train.  Also usable
    as ``@detect_anomaly()``.
    """

    def __enter__(self):
        self._prev = _set_anomaly_mode(True)
        return self

    def __exit__(self, *exc):
        _set_anomaly_mode(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly():
                return fn(*args, **kwargs)
        return wrapper
