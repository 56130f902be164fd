"""The kernel backend: the only module that imports the compiled extension ``minigrad._kernels``.

Environment variables, read once at import:

* ``MINIGRAD_BACKEND``: ``c`` (default) for the compiled kernels, ``numpy`` for the NumPy reference.
* ``MINIGRAD_ISA``: ``avx512``, ``avx2`` or ``portable`` forces a kernel path (an error if the CPU lacks it).
* ``MINIGRAD_THREADING``: ``pool`` (default) or ``openmp``, the runtime that runs parallel kernel calls
  (``set_threading`` changes it later).  minigrad's own pool never waits for a pool thread that the OS has not
  scheduled yet: on a busy machine a parallel call degrades to about one thread's speed instead of stalling
  for a scheduler slice.  OpenMP (libgomp, when the build has it) ends every call at a barrier that waits for
  each thread of the team; its threads spin after a call for as long as ``OMP_WAIT_POLICY`` /
  ``GOMP_SPINCOUNT`` say, which libgomp reads when it loads (minigrad leaves them to the user).  A process
  forked from one that used OpenMP runs its calls on the pool (libgomp's threads do not survive a fork).
* ``MINIGRAD_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the number of usable cores: threads for large
  kernel calls, on either runtime.  The pool has at most ``MAX_THREADS`` (64) threads: a
  larger ``MINIGRAD_NUM_THREADS`` is clamped to it with a RuntimeWarning, a larger ``OMP_NUM_THREADS`` or
  core count silently (that variable is set for other libraries too).  ``MINIGRAD_NUM_THREADS`` that is not
  a positive integer raises ValueError; an unreadable ``OMP_NUM_THREADS`` (it may be a list such as ``4,2``,
  whose first entry counts) is ignored.
* ``MINIGRAD_CACHE_MB`` (default 512): idle memory the caching allocator may keep, in MiB; ``0`` leaves
  numpy's own allocator in place.  With the C backend, importing minigrad makes numpy allocate array data
  (in the importing thread's context) through a caching allocator that keeps freed blocks of 4 KiB and more
  for reuse: a training step frees and re-allocates the same large arrays every iteration, and fresh pages
  from the OS cost a page fault per 4 KiB.  ``empty_cache()`` returns the idle blocks, ``memory_stats()``
  counts them.

Public surface: ``name``, ``matmul``, ``addmm``, ``arith``, ``addmm_many``, ``addmm_seq``, ``matmul_stacked_t``,
``pack``, ``PackedMatrix``, ``tanh``, ``tanh_backward``, ``tanh_seq_backward``, ``sigmoid``, ``sigmoid_backward``,
``lstm_forward``, ``lstm_backward``, ``lstm_seq``, ``lstm_seq_backward``, ``gru_forward``, ``gru_backward``,
``gru_seq``, ``gru_seq_backward``, ``sub_sqsum``, ``sum_rows``, ``isa``, ``available_isas``, ``set_isa``, ``openmp`` (whether
kernels can run in parallel; the name is historical), ``threading_backend``, ``set_threading``,
``available_threadings``, ``get_num_threads``, ``set_num_threads``, ``memory_stats``, ``empty_cache``,
``set_cache_limit``, ``info``.

When threadpoolctl is installed, importing the C backend registers a controller for it: ``threadpool_info()``
lists minigrad's pool (user_api and internal_api ``"minigrad"``) and ``threadpool_limits(n)`` (or
``limits={"minigrad": n}``) sets its thread count for the block.  ``user_api="openmp"`` or ``"blas"`` leaves
it alone, also when minigrad's calls run on OpenMP: their team size is minigrad's thread count.

``pack(w)`` packs a right-hand operand once for products that reuse it -- an RNN multiplies by the same
``W_hh.T`` at every time step -- and ``matmul(x, packed)`` then skips packing it on every call (same bits as
``matmul(x, w)``).  The packed copy is a snapshot owned by the caller: it does not see later writes to ``w``,
so re-pack after the weight changes (after each optimiser step).
"""
import hashlib
import os
import warnings
from glob import glob

__all__ = ["addmm", "addmm_many", "addmm_seq", "arith", "available_isas", "available_threadings", "empty_cache",
           "get_num_threads", "gru_backward", "gru_forward", "gru_seq", "gru_seq_backward", "info", "isa",
           "lstm_backward", "lstm_forward", "lstm_seq", "lstm_seq_backward", "matmul", "matmul_stacked_t",
           "memory_stats", "name", "openmp", "pack", "PackedMatrix", "set_cache_limit", "set_isa", "set_num_threads",
           "set_threading", "sigmoid", "sigmoid_backward", "sub_sqsum", "sum_rows", "tanh", "tanh_backward", "tanh_seq_backward",
           "threading_backend"]

# Must equal MG_ABI_VERSION in _ext/kernels.h.
ABI_VERSION = 5
# Must equal MG_MAX_THREADS in _ext/mg_internal.h: set_num_threads clamps larger counts to it.
MAX_THREADS = 64

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
        if int(value) > MAX_THREADS:
            warnings.warn(f"MINIGRAD_NUM_THREADS={value} is more than minigrad's maximum of {MAX_THREADS} "
                          f"threads; using {MAX_THREADS}", RuntimeWarning, stacklevel=2)
        return min(int(value), MAX_THREADS)
    # OMP_NUM_THREADS may be a list ("4,2"); its first entry is the outer level.  Other libraries own this
    # variable too, so a value we cannot read is ignored rather than fatal.
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) >= 1:
        return min(int(value), MAX_THREADS)
    try:
        return min(len(os.sched_getaffinity(0)), MAX_THREADS)
    except AttributeError:
        return min(os.cpu_count() or 1, MAX_THREADS)


name = os.environ.get("MINIGRAD_BACKEND", "c").strip().lower() or "c"
if name == "c":
    _impl = _load_kernels()
elif name == "numpy":
    from minigrad import _reference as _impl
else:
    raise ValueError(f"MINIGRAD_BACKEND must be 'c' or 'numpy', got {name!r}")

matmul = _impl.matmul
addmm = _impl.addmm
addmm_many = _impl.addmm_many
addmm_seq = _impl.addmm_seq
lstm_seq = _impl.lstm_seq
gru_seq = _impl.gru_seq
gru_seq_backward = _impl.gru_seq_backward
lstm_seq_backward = _impl.lstm_seq_backward
tanh_seq_backward = _impl.tanh_seq_backward
matmul_stacked_t = _impl.matmul_stacked_t
pack = _impl.pack
PackedMatrix = _impl.PackedMatrix
tanh = _impl.tanh
tanh_backward = _impl.tanh_backward
sigmoid = _impl.sigmoid
sigmoid_backward = _impl.sigmoid_backward
arith = _impl.arith
# the C functions behind ops/fast.pyx's small elementwise ops (a capsule; None on the NumPy reference)
arith_rows_api = getattr(_impl, "arith_rows_api", None)
lstm_forward = _impl.lstm_forward
lstm_backward = _impl.lstm_backward
gru_forward = _impl.gru_forward
gru_backward = _impl.gru_backward
sub_sqsum = _impl.sub_sqsum
sum_rows = _impl.sum_rows
isa = _impl.isa
available_isas = _impl.available_isas
set_isa = _impl.set_isa
openmp = _impl.openmp
get_num_threads = _impl.get_num_threads
set_num_threads = _impl.set_num_threads

set_num_threads(_default_threads())
if os.environ.get("MINIGRAD_ISA", "").strip():
    set_isa(os.environ["MINIGRAD_ISA"].strip().lower())

# The runtimes of mg_parallel_for, in the order of the kernels' MG_THREADING_* constants (mg_internal.h).
_THREADINGS = ("pool", "openmp")
# By measurement (bench/cotenancy.py, a loaded 2-core Zen 4): OpenMP with libgomp's default wait policy ran
# the RNN step at 0.48-0.71x the pool's speed; with OMP_WAIT_POLICY=passive it tied the pool there.
DEFAULT_THREADING = "pool"


def _threading_lib():
    """The kernels module's C symbols (the module already loaded: dlopen hands back the same copy)."""
    import ctypes
    lib = ctypes.CDLL(_impl.__file__)
    lib.mg_set_threading.argtypes = [ctypes.c_int]
    return lib


_threading_c = _threading_lib() if name == "c" else None


def available_threadings():
    """The runtimes this build can run parallel kernel calls on: "pool", and "openmp" if built with it."""
    if _threading_c is None or not openmp():
        return []
    return [t for t in _THREADINGS if t == "pool" or _threading_c.mg_omp_built()]


def threading_backend():
    """The runtime that runs parallel kernel calls now: "pool", "openmp", or "none" (no threads)."""
    if _threading_c is None or not openmp():
        return "none"
    return _THREADINGS[_threading_c.mg_get_threading()]


def set_threading(kind):
    """Run parallel kernel calls on ``kind`` ("pool" or "openmp"), process-wide, from the next call on:
    ValueError for an unknown name, RuntimeError if this build lacks it."""
    if not isinstance(kind, str):
        raise TypeError(f"set_threading: expected a str, got {type(kind).__name__}")
    if kind not in _THREADINGS:
        raise ValueError(f"set_threading: unknown threading runtime {kind!r}; expected one of "
                         f"{', '.join(_THREADINGS)}")
    if kind not in available_threadings():
        raise RuntimeError(f"set_threading: this build of minigrad has no {kind!r} runtime; available: "
                           f"{', '.join(available_threadings()) or 'none'}"
                           + (" (rebuild with a compiler that takes -fopenmp)" if kind == "openmp" else ""))
    _threading_c.mg_set_threading(_THREADINGS.index(kind))


def _threading_from_env():
    value = os.environ.get("MINIGRAD_THREADING", "").strip().lower()
    if value and value not in _THREADINGS:
        raise ValueError(f"MINIGRAD_THREADING must be one of {', '.join(_THREADINGS)}, got {value!r}")
    return value or DEFAULT_THREADING


_threading_env = _threading_from_env()
if name == "c" and openmp():
    set_threading(_threading_env)


def _register_threadpool_controller():
    """Let threadpoolctl, an optional dependency, see and limit the pool of the C kernels."""
    try:
        import threadpoolctl
    except ImportError:
        return
    if not hasattr(threadpoolctl, "register"):  # before 3.2 it took no controllers of other libraries
        return

    class MinigradController(threadpoolctl.LibController):
        """The pool of the kernels module loaded here; its thread count goes through the validating wrappers."""
        user_api = "minigrad"
        internal_api = "minigrad"
        # threadpoolctl matches loaded libraries by (lower-case) file name; the symbols rule out a namesake.
        filename_prefixes = (os.path.basename(os.path.realpath(_impl.__file__)).lower(),)
        check_symbols = ("mg_get_num_threads", "mg_set_num_threads")

        def get_num_threads(self):
            return get_num_threads()

        def set_num_threads(self, num_threads):
            set_num_threads(num_threads)

        def get_version(self):
            import minigrad
            return minigrad.__version__

    threadpoolctl.register(MinigradController)


if name == "c":
    _register_threadpool_controller()


def _cache_limit_mb():
    value = os.environ.get("MINIGRAD_CACHE_MB", "").strip()
    if not value:
        return 512
    if not value.isdigit():
        raise ValueError(f"MINIGRAD_CACHE_MB must be a non-negative integer (MiB), got {value!r}")
    return int(value)


_cache_mb = _cache_limit_mb()
_impl.set_cache_limit(_cache_mb << 20)
if _cache_mb > 0:
    _impl.install_allocator()
_cache_enabled = _impl.allocator_installed()  # False on the numpy backend, which has no cache
empty_cache = _impl.empty_cache
set_cache_limit = _impl.set_cache_limit


def memory_stats():
    """The caching allocator: {'enabled', 'idle_bytes', 'idle_blocks', 'limit_bytes', 'hits', 'misses'}.

    ``enabled`` is whether numpy allocates through it in the calling thread's context; hits and misses count
    allocations of cached sizes (4 KiB and more) served from idle blocks or from the system allocator."""
    return {"enabled": _impl.allocator_installed(), **_impl.cache_stats()}


def info():
    """The backend in use: {'backend', 'isa', 'available_isas', 'parallel', 'num_threads',
    'caching_allocator', 'abi_version'}; 'parallel' is "pool" when kernels run on minigrad's thread pool,
    else "none"."""
    return {
        "backend": name,
        "isa": isa(),
        "available_isas": available_isas(),
        "parallel": threading_backend(),
        "available_parallel": available_threadings(),
        "num_threads": get_num_threads(),
        "caching_allocator": _cache_enabled,
        "abi_version": _impl.ABI_VERSION,
    }
