"""The kernel backend: the only module that imports the compiled extension ``minigrad._kernels``.

Environment variables, read once at import:

* ``MINIGRAD_BACKEND``: ``c`` (default) for the compiled kernels, ``numpy`` for the NumPy reference.
* ``MINIGRAD_ISA``: ``avx512``, ``avx2`` or ``portable`` forces a kernel path (an error if the CPU lacks it).
* ``MINIGRAD_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the number of usable cores: threads for large
  kernel calls.
* ``OMP_WAIT_POLICY`` defaults to ``passive`` here (unless set): with OpenMP's spinning waits, a worker
  that loses its core to another process stalls every parallel region for a scheduler slice (measured:
  `minigrad demo` 8x slower per step on a busy 2-core machine).

Public surface: ``name``, ``matmul``, ``tanh``, ``tanh_backward``, ``isa``, ``available_isas``, ``set_isa``,
``openmp``, ``get_num_threads``, ``set_num_threads``, ``info``.
"""
import hashlib
import os
from glob import glob

# Before the extension (and with it the OpenMP runtime) is loaded: see the module docstring.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

__all__ = ["available_isas", "get_num_threads", "info", "isa", "matmul", "name", "openmp", "set_isa",
           "set_num_threads", "tanh", "tanh_backward"]

# Must equal MG_ABI_VERSION in _ext/kernels.h.
ABI_VERSION = 1

# Must equal setup.py's source_files() patterns: the build embeds the hash of these files.
_SOURCE_PATTERNS = ["_ext/*.c", "_ext/*.h", "_ext/*.pyx", "_ext/*.pxd",
                    "minigrad/**/*.pyx", "minigrad/**/*.pxd"]
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BUILD_HINT = "run `pip install -e .` (or `pip install .`) from the minigrad source tree"


def _source_hash(root):
    """The hash setup.py's source_hash() embeds: sha256 over sorted (relative path, content), 16 hex chars,
    leaving out Cython's generated _ext/_kernels.c."""
    files = []
    for pat in _SOURCE_PATTERNS:
        files += glob(os.path.join(root, pat), recursive=True)
    generated = os.path.join(root, "_ext", "_kernels.c")
    h = hashlib.sha256()
    for path in sorted(f for f in files if f != generated):
        h.update(os.path.relpath(path, root).replace(os.sep, "/").encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _load_kernels():
    try:
        from minigrad import _kernels
    except ImportError as e:
        raise ImportError(f"minigrad's compiled kernels (minigrad._kernels) are missing or failed to load "
                          f"({e}); "
                          f"{_BUILD_HINT}, or set MINIGRAD_BACKEND=numpy for the slow NumPy reference") from e
    if getattr(_kernels, "ABI_VERSION", None) != ABI_VERSION:
        raise ImportError(f"minigrad._kernels has ABI version {getattr(_kernels, 'ABI_VERSION', None)}, "
                          f"expected {ABI_VERSION}: stale build, rebuild with pip install -e .")
    # In a source checkout (editable install) the sources beside the package must match the build.
    in_source_tree = (os.path.isdir(os.path.join(_REPO, "_ext"))
                      and os.path.isfile(os.path.join(_REPO, "setup.py")))
    if in_source_tree and _source_hash(_REPO) != _kernels.SOURCE_HASH:
        raise ImportError(f"minigrad._kernels was built from other sources than those in {_REPO}: "
                          "stale build, rebuild with pip install -e .")
    return _kernels


def _default_threads():
    value = os.environ.get("MINIGRAD_NUM_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"MINIGRAD_NUM_THREADS must be a positive integer, got {value!r}")
        return int(value)
    # OMP_NUM_THREADS may be a list ("4,2"); its first entry is the outer level.  Other libraries own this
    # variable too, so a value we cannot read is ignored rather than fatal.
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) >= 1:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


name = os.environ.get("MINIGRAD_BACKEND", "c").strip().lower() or "c"
if name == "c":
    _impl = _load_kernels()
elif name == "numpy":
    from minigrad import _reference as _impl
else:
    raise ValueError(f"MINIGRAD_BACKEND must be 'c' or 'numpy', got {name!r}")

matmul = _impl.matmul
tanh = _impl.tanh
tanh_backward = _impl.tanh_backward
isa = _impl.isa
available_isas = _impl.available_isas
set_isa = _impl.set_isa
openmp = _impl.openmp
get_num_threads = _impl.get_num_threads
set_num_threads = _impl.set_num_threads

set_num_threads(_default_threads())
if os.environ.get("MINIGRAD_ISA", "").strip():
    set_isa(os.environ["MINIGRAD_ISA"].strip().lower())


def info():
    """The backend in use: {'backend', 'isa', 'available_isas', 'openmp', 'num_threads', 'abi_version'}."""
    return {
        "backend": name,
        "isa": isa(),
        "available_isas": available_isas(),
        "openmp": openmp(),
        "num_threads": get_num_threads(),
        "abi_version": _impl.ABI_VERSION,
    }
