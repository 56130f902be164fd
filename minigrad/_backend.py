"""The kernel backend: the only module that imports the compiled extension ``minigrad._kernels``.

Environment variables, read once at import:

* ``MINIGRAD_BACKEND``: ``c`` (default) for the compiled kernels, ``numpy`` for the NumPy reference.
* ``MINIGRAD_ISA``: ``avx512``, ``avx2`` or ``portable`` forces a kernel path (an error if the CPU lacks it).
* ``MINIGRAD_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the number of usable cores: threads for large
  kernel calls.  They come from minigrad's own pool (no OpenMP runtime), whose calls never wait for a pool
  thread that the OS has not scheduled yet: on a busy machine a parallel call degrades to about one thread's
  speed instead of stalling for a scheduler slice.

Public surface: ``name``, ``matmul``, ``pack``, ``PackedMatrix``, ``tanh``, ``tanh_backward``, ``isa``,
``available_isas``, ``set_isa``, ``openmp``, ``get_num_threads``, ``set_num_threads``, ``info``.

``pack(w)`` packs a right-hand operand once for products that reuse it -- an RNN multiplies by the same
``W_hh.T`` at every time step -- and ``matmul(x, packed)`` then skips packing it on every call (same bits as
``matmul(x, w)``).  The packed copy is a snapshot owned by the caller: it does not see later writes to ``w``,
so re-pack after the weight changes (after each optimiser step).
"""
import hashlib
import os
from glob import glob

__all__ = ["PackedMatrix", "available_isas", "get_num_threads", "info", "isa", "matmul", "name", "openmp",
           "pack", "set_isa", "set_num_threads", "tanh", "tanh_backward"]

# Must equal MG_ABI_VERSION in _ext/kernels.h.
ABI_VERSION = 2

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
pack = _impl.pack
PackedMatrix = _impl.PackedMatrix
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
