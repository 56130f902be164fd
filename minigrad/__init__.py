"""minigrad: a small, fast, Cython-compiled, C-backed reverse-mode autograd engine.

Layers, bottom up: ``_ext/`` C kernels behind ``minigrad._backend``; ``minigrad.tensor`` (the Tensor);
``minigrad.autograd`` (graph nodes, the backward engine, grad modes, gradcheck); ``minigrad.ops`` (every
differentiable op with its backward); ``minigrad.nn`` and ``minigrad.optim`` (modules, losses, optimisers).
"""
import os as _os
import sys as _sys

try:
    from minigrad import _backend
except (ImportError, ValueError, RuntimeError) as _error:  # a bad MINIGRAD_* variable, a stale build
    # The `minigrad` command imports this package before any of its own code runs: there, say it in one
    # line as its other errors do (the library import raises as usual).
    _command = _os.path.basename(_sys.argv[0]) == "minigrad"
    if _command or getattr(_sys, "orig_argv", [])[1:3] == ["-m", "minigrad"]:
        _sys.stderr.write(f"minigrad: error: {_error}\n")
        raise SystemExit(2) from None
    raise
from minigrad.tensor import (Tensor, bool_, device, float32, float64, get_default_dtype, int32, int64,
                             set_default_dtype)
from minigrad import autograd  # noqa: E402
from minigrad.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from minigrad.factories import (arange, as_tensor, empty, empty_like, eye, full, full_like, linspace, ones,
                                ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros,
                                zeros_like)
from minigrad.ops.elementwise import (abs, add, clamp, clone, div, exp, log, masked_fill, mul, neg, pow, relu,
                                      sigmoid, sqrt, sub, tanh, where)
from minigrad.ops.linalg import addmm, matmul
from minigrad.ops.logic import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor, eq, floor_divide, ge, gt,
                                isfinite, isinf, isnan, le, logical_and, logical_not, logical_or, logical_xor,
                                lt, ne)
from minigrad.ops.reduce import (all, any, argmax, argmin, argsort, cumsum, log_softmax, logsumexp, max, mean,
                                 min, softmax, sort, sum, topk)
from minigrad.ops.common import promote_types, result_type
from minigrad.ops.shape import (cat, chunk, expand, flatten, flip, gather, permute, reshape, split, squeeze,
                                stack, transpose, unbind, unsqueeze)
from minigrad.random import Generator, bernoulli, manual_seed, multinomial
from minigrad import nn, optim, tbptt  # noqa: E402  (built on the core above)
from minigrad.serialization import load, save  # noqa: E402

__version__ = "0.1.0"


def config():
    """What this build of minigrad runs on: version, kernel backend, ISA path, threads, caching allocator,
    backward engine (``MINIGRAD_ENGINE``: compiled or reference)."""
    info = dict(_backend.info())
    info["engine"] = autograd.engine_name()
    info["version"] = __version__
    return info


def set_num_threads(n):
    """Threads for minigrad's C kernels (not numpy's or torch's)."""
    _backend.set_num_threads(n)


def get_num_threads():
    return _backend.get_num_threads()


def memory_stats():
    """The caching allocator behind numpy's array data (see ``MINIGRAD_CACHE_MB``): whether it is in use in
    this thread, the idle bytes and blocks it keeps for reuse, its limit, and its hits and misses."""
    return _backend.memory_stats()


def empty_cache():
    """Free the idle blocks the caching allocator keeps for reuse (as ``torch.cuda.empty_cache``)."""
    _backend.empty_cache()


def set_cache_limit(nbytes):
    """Keep at most ``nbytes`` of freed array memory for reuse; 0 keeps none."""
    _backend.set_cache_limit(nbytes)


# torch's dtype names; the builtins they shadow stay out of __all__ (`from minigrad import *` keeps them)
bool = bool_
int = int32
long = int64
float = float32
double = float64

__all__ = [name for name in dir() if not name.startswith("_") and name not in ("bool", "int", "float")]
