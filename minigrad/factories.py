"""Tensor factories: ``tensor``, ``zeros``, ``ones``, ``randn``, ... with ``dtype=`` and ``requires_grad=``."""
import numpy as np

from minigrad.random import Generator, default_generator
from minigrad.tensor import (Tensor, _check_differentiable, check_dtype, check_float_dtype, get_default_dtype,
                             real_scalar)

__all__ = ["tensor", "as_tensor", "zeros", "ones", "full", "empty", "randn", "rand", "arange", "linspace",
           "eye", "zeros_like", "ones_like", "full_like", "empty_like", "randn_like", "rand_like", "randint",
           "randperm"]


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError("sizes must be ints, got %r" % (s,))
        if s < 0:
            raise ValueError("sizes must be non-negative, got %s" % (tuple(size),))
    return tuple(int(s) for s in size)


def _make(array, requires_grad):
    t = Tensor._from_array(array)
    if requires_grad:
        _check_differentiable(array, "Only")  # torch's wording for a factory's requires_grad=True
        t.requires_grad_(True)
    return t


def _generator(generator):
    if generator is None:
        return default_generator()
    if not isinstance(generator, Generator):
        raise TypeError("generator must be a minigrad.Generator, got %s" % type(generator).__name__)
    return generator


def _dtype(dtype):
    """Any minigrad dtype, the default float dtype for None."""
    return get_default_dtype() if dtype is None else check_dtype(dtype)


def _float_dtype(dtype):
    """A float dtype, the default one for None: for the random floats and linspace."""
    return get_default_dtype() if dtype is None else check_float_dtype(dtype)


def _scalar_dtype(value):
    """The dtype torch infers from a Python scalar: bool, int64 or the default float dtype."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    return get_default_dtype()


def tensor(data, dtype=None, requires_grad=False):
    """A new leaf tensor holding a copy of ``data`` (array-like)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def as_tensor(data, dtype=None):
    """``data`` itself if it is already a Tensor of that dtype, else a new tensor."""
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    return Tensor(data, dtype=dtype)


def zeros(*size, dtype=None, requires_grad=False):
    return _make(np.zeros(_size(size), dtype=_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _make(np.ones(_size(size), dtype=_dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    """``size`` filled with ``fill_value``; without ``dtype``, an int fills an int64 tensor and a bool a bool
    one, as in torch."""
    real_scalar(fill_value, "full")
    d = _scalar_dtype(fill_value) if dtype is None else check_dtype(dtype)
    return _make(np.full(_size((size,)), fill_value, dtype=d), requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    return _make(np.empty(_size(size), dtype=_dtype(dtype)), requires_grad)


def randn(*size, dtype=None, requires_grad=False, generator=None):
    """Standard normal samples."""
    g = _generator(generator)
    return _make(g.numpy_rng.standard_normal(_size(size)).astype(_float_dtype(dtype)), requires_grad)


def rand(*size, dtype=None, requires_grad=False, generator=None):
    """Uniform samples from [0, 1)."""
    g = _generator(generator)
    return _make(g.numpy_rng.random(_size(size)).astype(_float_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Evenly spaced values in [start, end): int64 when start, end and step are all ints (torch's rule),
    else the default float dtype."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if dtype is None and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                             for v in (start, end, step)):
        return _make(np.arange(start, end, step, dtype=np.int64), requires_grad)
    return _make(np.arange(start, end, step, dtype=np.float64).astype(_dtype(dtype)), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError("linspace: steps must be a non-negative int, got %r" % (steps,))
    return _make(np.linspace(start, end, steps).astype(_float_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _make(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def _like(t, dtype):
    if not isinstance(t, Tensor):
        raise TypeError("expected a Tensor, got %s" % type(t).__name__)
    return t.shape, (t.dtype if dtype is None else check_dtype(dtype))


def zeros_like(t, dtype=None, requires_grad=False):
    shape, d = _like(t, dtype)
    return _make(np.zeros(shape, dtype=d), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    shape, d = _like(t, dtype)
    return _make(np.ones(shape, dtype=d), requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    shape, d = _like(t, dtype)
    return _make(np.full(shape, real_scalar(fill_value, "full_like"), dtype=d), requires_grad)


def empty_like(t, dtype=None, requires_grad=False):
    shape, d = _like(t, dtype)
    return _make(np.empty(shape, dtype=d), requires_grad)


def randint(low=0, high=None, size=None, generator=None, dtype=None, requires_grad=False):
    """Uniform integers in [low, high): ``randint(high, size)`` or ``randint(low, high, size)``, as torch;
    int64 unless ``dtype`` says otherwise."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint() missing the required argument 'size' (a tuple of ints)")
        low, high, size = 0, low, high
    elif high is None:
        raise TypeError("randint() missing the required argument 'high'")
    for name, v in (("low", low), ("high", high)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError("randint(): argument '%s' must be int, not %s" % (name, type(v).__name__))
    if not isinstance(size, (tuple, list)):
        raise TypeError("randint(): argument 'size' must be a tuple of ints, not %s" % type(size).__name__)
    if low >= high:
        raise RuntimeError("random_ expects 'from' to be less than 'to', but got from=%d >= to=%d"
                           % (low, high))
    d = np.dtype(np.int64) if dtype is None else check_dtype(dtype)
    g = _generator(generator)
    return _make(g.numpy_rng.integers(low, high, size=_size(tuple(size)), dtype=np.int64).astype(d),
                 requires_grad)


def randperm(n, generator=None, dtype=None, requires_grad=False):
    """A random permutation of 0..n-1 (int64 unless ``dtype`` says otherwise)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError("randperm(): argument 'n' must be int, not %s" % type(n).__name__)
    if n < 0:
        raise RuntimeError("Trying to create tensor with negative dimension %d: [%d]" % (n, n))
    d = np.dtype(np.int64) if dtype is None else check_dtype(dtype)
    g = _generator(generator)
    return _make(g.numpy_rng.permutation(n).astype(d), requires_grad)


def randn_like(t, dtype=None, requires_grad=False, generator=None):
    shape, d = _like(t, dtype)
    return randn(*shape, dtype=d, requires_grad=requires_grad, generator=generator)


def rand_like(t, dtype=None, requires_grad=False, generator=None):
    shape, d = _like(t, dtype)
    return rand(*shape, dtype=d, requires_grad=requires_grad, generator=generator)
