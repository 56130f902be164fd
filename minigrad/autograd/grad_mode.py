"""Grad-mode switches.  The flag itself is a C thread-local in the engine, so each thread has its own."""
import functools
import inspect

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
        return _decorate(fn, type(self))


def _decorate(fn, context):
    """``fn`` run inside ``context()``; for a generator function, each step of the generator runs inside it
    (and the caller's code between two steps does not), as torch's decorators do."""
    if not callable(fn):
        raise TypeError("expected a function to decorate, got %r" % (fn,))
    if not inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with context():
                return fn(*args, **kwargs)
        return wrapper

    @functools.wraps(fn)
    def generator(*args, **kwargs):
        with context():
            gen = fn(*args, **kwargs)
        resume, value = gen.send, None
        while True:
            with context():
                try:
                    out = resume(value)
                except StopIteration as stop:
                    return stop.value
            try:
                resume, value = gen.send, (yield out)
            except GeneratorExit:
                with context():
                    gen.close()
                raise
            except BaseException as exc:
                resume, value = gen.throw, exc
    return generator


class _Decorator(_GradMode):
    """A switch that also decorates without parentheses: ``@no_grad`` as well as ``@no_grad()``."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return _decorate(orig_func, cls)

    def __init__(self, orig_func=None):
        pass


class no_grad(_Decorator):
    """Ops run inside record no graph (inference, optimiser updates).  Also a decorator: ``@no_grad`` or
    ``@no_grad()``, on functions and generator functions alike."""

    mode = False


class enable_grad(_Decorator):
    """Turn recording back on inside a ``no_grad`` block.  Also a decorator, like ``no_grad``."""

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
        return _decorate(fn, lambda: _Switch(mode))


class _Switch(_GradMode):
    def __init__(self, mode):
        self.mode = mode


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
        return _decorate(fn, detect_anomaly)
