"""Validated Python entry points to minigrad's C kernels.

Import this module only through ``minigrad._backend``.  Every argument is checked here (type, dtype, byte
order, ndim, shapes, writability, alignment, overlap) so that the C code can trust its inputs; the kernels
then run without the GIL.  Plain ``cnp`` macros rather than typed memoryviews keep a call near a microsecond.
"""
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_New
from libc.stdlib cimport free, malloc, qsort

import numpy as np

from kernels cimport *

cnp.import_array()

cdef extern from *:
    """
    #ifndef MINIGRAD_SOURCE_HASH
    #define MINIGRAD_SOURCE_HASH "unknown"
    #endif
    """
    const char *MINIGRAD_SOURCE_HASH

# mg_int must be numpy's npy_intp: then every numpy size and stride fits the kernels' index type unchecked.
if sizeof(mg_int) != sizeof(cnp.npy_intp):
    raise ImportError("minigrad._kernels: the kernels' index type does not match numpy's npy_intp")

ABI_VERSION = MG_ABI_VERSION
SOURCE_HASH = MINIGRAD_SOURCE_HASH.decode("ascii")

# Indexed by the C enum MG_ISA_*.
_ISA_NAMES = ("portable", "avx2", "avx512")

mg_set_isa(mg_best_isa())


# ---------------------------------------------------------------- validation helpers

# A batch of matrices as the kernels see it: shape (batch, rows, cols), strides in elements (0 on extent-1
# dims, so a missing or size-1 batch broadcasts), and the byte range it spans.
cdef struct Mat:
    char *data
    mg_int shape[3]
    mg_int strides[3]
    char *lo
    char *hi


cdef object _shape(cnp.ndarray arr):
    return (<object>arr).shape


cdef object _strides(cnp.ndarray arr):
    return (<object>arr).strides


cdef cnp.ndarray _float_array(object obj, str fn, str name):
    if not cnp.PyArray_Check(obj):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(obj).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>obj
    cdef int t = cnp.PyArray_TYPE(arr)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{fn}: {name} has dtype {arr.dtype.str}; "
                        "expected float32 or float64 in native byte order")
    return arr


cdef int _mat(cnp.ndarray arr, str fn, str name, Mat *m) except -1:
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef int i, off = 3 - nd
    cdef mg_int itemsize = cnp.PyArray_ITEMSIZE(arr), n, s
    if nd != 2 and nd != 3:
        raise ValueError(f"{fn}: {name} must be 2-D (rows, cols) or 3-D (batch, rows, cols), "
                         f"got shape {_shape(arr)}")
    m.data = <char *>cnp.PyArray_DATA(arr)
    m.lo = m.data
    m.hi = m.data + itemsize
    m.shape[0] = 1
    m.strides[0] = 0
    for i in range(nd):
        n = cnp.PyArray_DIMS(arr)[i]
        s = cnp.PyArray_STRIDES(arr)[i]
        if s % itemsize:
            raise ValueError(f"{fn}: {name} has strides {_strides(arr)}, "
                             f"not multiples of its itemsize {itemsize}")
        m.shape[off + i] = n
        m.strides[off + i] = s // itemsize if n > 1 else 0
        if n > 1 and s < 0:
            m.lo += (n - 1) * s
        elif n > 1:
            m.hi += (n - 1) * s
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{fn}: {name}'s data is not aligned to its itemsize")
    return 0


cdef bint _self_overlapping(const Mat *m):
    """Conservative: True unless each dim's stride clears the span of all shorter-stride dims."""
    cdef mg_int ext[3]
    cdef mg_int st[3]
    cdef int k = 0, i
    for i in range(3):
        if m.shape[i] == 0:
            return False
        if m.shape[i] > 1:
            ext[k] = m.shape[i]
            st[k] = m.strides[i] if m.strides[i] >= 0 else -m.strides[i]
            k += 1
    return _strides_overlap(st, ext, k, 1)


cdef bint _strides_overlap(mg_int *st, mg_int *ext, int k, mg_int span) noexcept:
    """For k dimensions of ext[i] > 1 elements st[i] >= 0 apart (sorted here by stride), the first element
    span wide: True unless each stride clears the span of the dimensions of shorter stride."""
    cdef int i, j
    cdef mg_int e, s
    for i in range(1, k):
        j = i
        while j > 0 and st[j - 1] > st[j]:
            e = ext[j]; ext[j] = ext[j - 1]; ext[j - 1] = e
            s = st[j]; st[j] = st[j - 1]; st[j - 1] = s
            j -= 1
    for i in range(k):
        if st[i] < span:
            return True
        span = st[i] * (ext[i] - 1) + span
    return False


cdef bint _shares_memory(cnp.ndarray x, char *xlo, char *xhi, cnp.ndarray y, char *ylo, char *yhi) except -1:
    """Byte ranges first (cheap), numpy's exact test only when they intersect."""
    if cnp.PyArray_SIZE(x) == 0 or cnp.PyArray_SIZE(y) == 0 or xhi <= ylo or yhi <= xlo:
        return False
    try:
        return np.shares_memory(x, y, max_work=10000)
    except np.exceptions.TooHardError:
        return True


cdef void _bounds(cnp.ndarray arr, char **lo, char **hi) noexcept:
    cdef int i
    cdef mg_int n, s
    lo[0] = <char *>cnp.PyArray_DATA(arr)
    hi[0] = lo[0] + cnp.PyArray_ITEMSIZE(arr)
    for i in range(cnp.PyArray_NDIM(arr)):
        n = cnp.PyArray_DIMS(arr)[i]
        s = cnp.PyArray_STRIDES(arr)[i]
        if n > 1 and s < 0:
            lo[0] += (n - 1) * s
        elif n > 1:
            hi[0] += (n - 1) * s


cdef int _check_writable_out(cnp.ndarray out, cnp.ndarray like, str fn) except -1:
    if cnp.PyArray_TYPE(out) != cnp.PyArray_TYPE(like):
        raise TypeError(f"{fn}: out has dtype {out.dtype}, expected {like.dtype}")
    if not cnp.PyArray_ISWRITEABLE(out):
        raise ValueError(f"{fn}: out is read-only")
    return 0


# ---------------------------------------------------------------- matmul

cdef object _PACK_TOKEN = object()


cdef class PackedMatrix:
    """A right-hand matmul operand ``b`` (K, N) packed once, for products that reuse it: ``pack(b)``.

    ``matmul(a, p)`` then skips the per-call packing of ``b`` (a transposed weight ``W.T``, say) and gives the
    same bits as ``matmul(a, b)`` on the kernel path the matrix was packed for (``isa``).  The packing is a
    snapshot: later writes to ``b`` are not seen, so re-pack after changing it (after an optimiser step).
    Immutable and safe to share between threads.
    """
    cdef readonly tuple shape
    cdef readonly object dtype
    cdef readonly str isa
    cdef cnp.ndarray _buf
    cdef mg_int _k, _n
    cdef int _isa, _typenum

    def __cinit__(self, token=None):
        if token is not _PACK_TOKEN:
            raise TypeError("PackedMatrix objects are made by pack(b)")

    @property
    def nbytes(self):
        """Bytes held by the packed copy."""
        return self._buf.nbytes

    def __repr__(self):
        return f"PackedMatrix(shape={self.shape}, dtype={self.dtype}, isa={self.isa!r})"

    def __reduce__(self):
        raise TypeError("PackedMatrix cannot be pickled; pickle the array and pack it again")


def pack(b):
    """Pack a 2-D float32/float64 array b (K, N), any strides, for reuse as matmul's right operand."""
    cdef cnp.ndarray B = _float_array(b, "pack", "b")
    cdef Mat mb
    cdef PackedMatrix p
    cdef int isa = mg_get_isa(), typenum = cnp.PyArray_TYPE(B)
    cdef mg_int length
    cdef cnp.npy_intp n
    if cnp.PyArray_NDIM(B) != 2:
        raise ValueError(f"pack: b must be 2-D (K, N), got shape {_shape(B)}")
    _mat(B, "pack", "b", &mb)
    if typenum == cnp.NPY_FLOAT32:
        length = mg_packed_len_f32(isa, mb.shape[1], mb.shape[2])
    else:
        length = mg_packed_len_f64(isa, mb.shape[1], mb.shape[2])
    n = length if length > 0 else 1
    p = PackedMatrix(_PACK_TOKEN)
    p._buf = cnp.PyArray_EMPTY(1, &n, typenum, 0)
    p._k = mb.shape[1]
    p._n = mb.shape[2]
    p._isa = isa
    p._typenum = typenum
    p.shape = (p._k, p._n)
    p.dtype = B.dtype
    p.isa = _ISA_NAMES[isa]
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            mg_pack_b_f32(isa, mb.shape[1], mb.shape[2], <const float *>mb.data, mb.strides[1], mb.strides[2],
                          <float *>cnp.PyArray_DATA(p._buf))
        else:
            mg_pack_b_f64(isa, mb.shape[1], mb.shape[2], <const double *>mb.data, mb.strides[1], mb.strides[2],
                          <double *>cnp.PyArray_DATA(p._buf))
    p._buf.flags.writeable = False
    return p


cdef cnp.ndarray _matmul_out(object out, cnp.ndarray A, int nd, cnp.npy_intp *dims, int typenum, bint acc,
                             object shape_b, Mat *mc, str fn="matmul"):
    """out validated for a product of shape dims[3 - nd:], or a new C-contiguous array."""
    cdef cnp.ndarray C
    if out is None:
        if acc:
            raise ValueError(f"{fn}: accumulate=True needs an out array to add into")
        C = cnp.PyArray_EMPTY(nd, dims + 3 - nd, typenum, 0)
        _mat(C, fn, "out", mc)
        return C
    C = _float_array(out, fn, "out")
    _check_writable_out(C, A, fn)
    if cnp.PyArray_NDIM(C) != nd or not cnp.PyArray_CompareLists(cnp.PyArray_DIMS(C), dims + 3 - nd, nd):
        expected = tuple(dims[i] for i in range(3 - nd, 3))
        raise ValueError(f"{fn}: out has shape {_shape(C)}, expected {expected} "
                         f"for a of shape {_shape(A)} and b of shape {shape_b}")
    _mat(C, fn, "out", mc)
    if _self_overlapping(mc):
        raise ValueError(f"{fn}: out's strides {_strides(C)} make its elements overlap")
    return C


cdef object _matmul_packed(cnp.ndarray A, PackedMatrix P, object out, bint acc):
    cdef Mat ma, mc
    cdef cnp.ndarray C
    cdef int typenum = cnp.PyArray_TYPE(A), rc, nd = cnp.PyArray_NDIM(A)
    cdef cnp.npy_intp dims[3]
    if typenum != P._typenum:
        raise TypeError(f"matmul: mixed dtypes {A.dtype} (a) and {P.dtype} (b); cast one of them")
    _mat(A, "matmul", "a", &ma)
    if ma.shape[2] != P._k:
        raise ValueError(f"matmul: inner dimensions differ: a has shape {_shape(A)}, b has shape {P.shape}")
    dims[0] = ma.shape[0]
    dims[1] = ma.shape[1]
    dims[2] = P._n
    C = _matmul_out(out, A, nd, dims, typenum, acc, P.shape, &mc)
    if out is not None and _shares_memory(C, mc.lo, mc.hi, A, ma.lo, ma.hi):
        raise ValueError("matmul: out shares memory with a or b; pass a separate array")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = mg_matmul_packed_f32(P._isa, dims[0], dims[1], dims[2], ma.shape[2],
                                      <const float *>ma.data, ma.strides[0], ma.strides[1], ma.strides[2],
                                      <const float *>cnp.PyArray_DATA(P._buf),
                                      <float *>mc.data, mc.strides[0], mc.strides[1], mc.strides[2], acc)
        else:
            rc = mg_matmul_packed_f64(P._isa, dims[0], dims[1], dims[2], ma.shape[2],
                                      <const double *>ma.data, ma.strides[0], ma.strides[1], ma.strides[2],
                                      <const double *>cnp.PyArray_DATA(P._buf),
                                      <double *>mc.data, mc.strides[0], mc.strides[1], mc.strides[2], acc)
    if rc:
        raise MemoryError("matmul: could not allocate packing buffers")
    return C


def matmul(a, b, out=None, accumulate=False):
    """a @ b for float32 or float64 arrays.

    a is (M, K) or (batch, M, K), b is (K, N) or (batch, K, N); a batch of 1 (or a 2-D operand) broadcasts.
    b may also be a PackedMatrix from pack() (one (K, N) matrix).  Any strides.  Returns ``out``: a new
    C-contiguous (M, N) / (batch, M, N) array when None, else the given array (exact shape and dtype,
    writable, not overlapping a or b), which ``accumulate=True`` adds into.
    """
    cdef cnp.ndarray A = _float_array(a, "matmul", "a")
    cdef cnp.ndarray B, C
    cdef Mat ma, mb, mc
    cdef int typenum = cnp.PyArray_TYPE(A), rc, nd
    cdef bint acc = accumulate
    cdef cnp.npy_intp dims[3]
    if type(b) is PackedMatrix:
        return _matmul_packed(A, <PackedMatrix>b, out, acc)
    B = _float_array(b, "matmul", "b")
    if cnp.PyArray_TYPE(B) != typenum:
        raise TypeError(f"matmul: mixed dtypes {A.dtype} (a) and {B.dtype} (b); cast one of them")
    _mat(A, "matmul", "a", &ma)
    _mat(B, "matmul", "b", &mb)
    if ma.shape[2] != mb.shape[1]:
        raise ValueError(f"matmul: inner dimensions differ: a has shape {_shape(A)}, b has shape {_shape(B)}")
    if ma.shape[0] != mb.shape[0] and ma.shape[0] != 1 and mb.shape[0] != 1:
        raise ValueError(f"matmul: batch sizes differ: a has shape {_shape(A)}, b has shape {_shape(B)}")
    dims[0] = mb.shape[0] if ma.shape[0] == 1 else ma.shape[0]
    dims[1] = ma.shape[1]
    dims[2] = mb.shape[2]
    nd = 3 if cnp.PyArray_NDIM(A) == 3 or cnp.PyArray_NDIM(B) == 3 else 2
    C = _matmul_out(out, A, nd, dims, typenum, acc, _shape(B), &mc)
    if out is not None and (_shares_memory(C, mc.lo, mc.hi, A, ma.lo, ma.hi)
                            or _shares_memory(C, mc.lo, mc.hi, B, mb.lo, mb.hi)):
        raise ValueError("matmul: out shares memory with a or b; pass a separate array")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = mg_matmul_f32(dims[0], dims[1], dims[2], ma.shape[2],
                               <const float *>ma.data, ma.strides[0], ma.strides[1], ma.strides[2],
                               <const float *>mb.data, mb.strides[0], mb.strides[1], mb.strides[2],
                               <float *>mc.data, mc.strides[0], mc.strides[1], mc.strides[2], acc)
        else:
            rc = mg_matmul_f64(dims[0], dims[1], dims[2], ma.shape[2],
                               <const double *>ma.data, ma.strides[0], ma.strides[1], ma.strides[2],
                               <const double *>mb.data, mb.strides[0], mb.strides[1], mb.strides[2],
                               <double *>mc.data, mc.strides[0], mc.strides[1], mc.strides[2], acc)
    if rc:
        raise MemoryError("matmul: could not allocate packing buffers")
    return C


cdef int _broadcast_mat(cnp.ndarray c, cnp.npy_intp *dims, Mat *m) except -1:
    """c (at most 2-D) as a (dims[0], dims[1]) matrix, broadcast by numpy's rules (zero strides)."""
    cdef int nd = cnp.PyArray_NDIM(c), i
    cdef mg_int itemsize = cnp.PyArray_ITEMSIZE(c), n, s
    if nd > 2:
        raise ValueError(f"addmm: c of shape {_shape(c)} does not broadcast to the product's shape "
                         f"{(dims[0], dims[1])}")
    m.data = <char *>cnp.PyArray_DATA(c)
    m.shape[0] = 1
    m.strides[0] = 0
    for i in range(2):
        m.shape[1 + i] = dims[i]
        m.strides[1 + i] = 0
        if i < 2 - nd:
            continue
        n = cnp.PyArray_DIMS(c)[i - 2 + nd]
        s = cnp.PyArray_STRIDES(c)[i - 2 + nd]
        if n != dims[i] and n != 1:
            raise ValueError(f"addmm: c of shape {_shape(c)} does not broadcast to the product's shape "
                             f"{(dims[0], dims[1])}")
        if s % itemsize:
            raise ValueError(f"addmm: c has strides {_strides(c)}, not multiples of its itemsize {itemsize}")
        if n > 1:
            m.strides[1 + i] = s // itemsize
    if not cnp.PyArray_ISALIGNED(c):
        raise ValueError("addmm: c's data is not aligned to its itemsize")
    return 0


cdef struct AddmmArgs:
    # one validated addmm: C = Cin + A @ B (B in place, or packed: pdata on path isa)
    int typenum, isa
    Mat ma, mi, mc
    const char *bdata
    const char *pdata
    mg_int sbk, sbn


cdef int _activation(object activation, str fn) except -1:
    if activation is None:
        return 0
    if isinstance(activation, str) and activation == "tanh":
        return 1
    raise ValueError(f"{fn}: activation must be None or 'tanh', got {activation!r}")


cdef cnp.ndarray _addmm_args(object c, object a, object b, object out, str fn, AddmmArgs *r):
    """Validate one addmm; fill r; return its output (``out``, or a new C-contiguous array)."""
    cdef cnp.ndarray A = _float_array(a, fn, "a")
    cdef cnp.ndarray B = None, C, Cin
    cdef PackedMatrix P = None
    cdef Mat mb
    cdef int typenum = cnp.PyArray_TYPE(A)
    cdef mg_int N
    cdef cnp.npy_intp dims[3]
    if cnp.PyArray_NDIM(A) != 2:
        raise ValueError(f"{fn}: a must be 2-D (M, K), got shape {_shape(A)}")
    _mat(A, fn, "a", &r.ma)
    r.typenum = typenum
    r.isa = 0
    r.bdata = r.pdata = NULL
    r.sbk = r.sbn = 0
    if type(b) is PackedMatrix:
        P = <PackedMatrix>b
        if P._typenum != typenum:
            raise TypeError(f"{fn}: mixed dtypes {A.dtype} (a) and {P.dtype} (b); cast one of them")
        shape_b = P.shape
        N = P._n
        r.isa = P._isa
        r.pdata = <const char *>cnp.PyArray_DATA(P._buf)
    else:
        B = _float_array(b, fn, "b")
        if cnp.PyArray_TYPE(B) != typenum:
            raise TypeError(f"{fn}: mixed dtypes {A.dtype} (a) and {B.dtype} (b); cast one of them")
        if cnp.PyArray_NDIM(B) != 2:
            raise ValueError(f"{fn}: b must be 2-D (K, N), got shape {_shape(B)}")
        _mat(B, fn, "b", &mb)
        shape_b = _shape(B)
        N = mb.shape[2]
        r.bdata, r.sbk, r.sbn = mb.data, mb.strides[1], mb.strides[2]
    if shape_b[0] != r.ma.shape[2]:
        raise ValueError(f"{fn}: inner dimensions differ: a has shape {_shape(A)}, b has shape {shape_b}")
    Cin = _float_array(c, fn, "c")
    if cnp.PyArray_TYPE(Cin) != typenum:
        raise TypeError(f"{fn}: c has dtype {Cin.dtype}, the product {A.dtype}; cast one of them")
    dims[0] = 1
    dims[1] = r.ma.shape[1]
    dims[2] = N
    _broadcast_mat(Cin, dims + 1, &r.mi)
    C = _matmul_out(out, A, 2, dims, typenum, False, shape_b, &r.mc, fn)
    _bounds(Cin, &r.mi.lo, &r.mi.hi)
    if out is not None:
        if (_shares_memory(C, r.mc.lo, r.mc.hi, A, r.ma.lo, r.ma.hi)
                or _shares_memory(C, r.mc.lo, r.mc.hi, Cin, r.mi.lo, r.mi.hi)
                or (B is not None and _shares_memory(C, r.mc.lo, r.mc.hi, B, mb.lo, mb.hi))):
            raise ValueError(f"{fn}: out shares memory with a, b or c; pass a separate array")
    return C


cdef int _addmm_run(AddmmArgs *r, int act) except -1:
    cdef int rc
    with nogil:
        if r.typenum == cnp.NPY_FLOAT32:
            rc = mg_addmm_f32(r.isa, r.mc.shape[1], r.mc.shape[2], r.ma.shape[2], <const float *>r.mi.data,
                              r.mi.strides[1], r.mi.strides[2], <const float *>r.ma.data, r.ma.strides[1],
                              r.ma.strides[2], <const float *>r.bdata, r.sbk, r.sbn, <const float *>r.pdata,
                              <float *>r.mc.data, r.mc.strides[1], r.mc.strides[2], act)
        else:
            rc = mg_addmm_f64(r.isa, r.mc.shape[1], r.mc.shape[2], r.ma.shape[2], <const double *>r.mi.data,
                              r.mi.strides[1], r.mi.strides[2], <const double *>r.ma.data, r.ma.strides[1],
                              r.ma.strides[2], <const double *>r.bdata, r.sbk, r.sbn, <const double *>r.pdata,
                              <double *>r.mc.data, r.mc.strides[1], r.mc.strides[2], act)
    if rc:
        raise MemoryError("addmm: could not allocate packing buffers")
    return 0


def addmm(c, a, b, activation=None, out=None):
    """``c + a @ b`` as a new C-contiguous (M, N) array (or in ``out``: exactly (M, N), the dtype, writable,
    any strides, sharing no memory with a, b or c), for a 2-D ``a`` (M, K) and ``b`` (K, N) (or a
    PackedMatrix), with ``c`` broadcastable to (M, N) (a bias row (N,), say): the product is added to ``c``
    as the kernel writes it, so there is no separate pass for the sum.  The same bits as
    ``matmul(a, b, out=broadcast copy of c, accumulate=True)``.  ``activation="tanh"`` returns
    ``tanh(c + a @ b)``, each block mapped while the product still has it in cache: the bits of ``tanh``
    applied to the sum afterwards (RNN step: one kernel call, shared by the threads, instead of two)."""
    cdef int act = _activation(activation, "addmm")
    cdef AddmmArgs r
    C = _addmm_args(c, a, b, out, "addmm", &r)
    _addmm_run(&r, act)
    return C


cdef bint _same_layout(AddmmArgs *x, AddmmArgs *y) noexcept:
    cdef int i
    if (x.typenum != y.typenum or x.isa != y.isa or x.pdata == NULL or y.pdata == NULL
            or x.ma.shape[2] != y.ma.shape[2]):
        return False
    for i in range(1, 3):
        if (x.mc.shape[i] != y.mc.shape[i] or x.ma.strides[i] != y.ma.strides[i]
                or x.mi.strides[i] != y.mi.strides[i] or x.mc.strides[i] != y.mc.strides[i]):
            return False
    return True


def addmm_many(cs, as_, bs, activation=None, outs=None):
    """``[addmm(cs[i], as_[i], bs[i], activation, outs[i]) for i ...]`` (each as addmm, the same bits), run
    as ONE parallel job when every b is a PackedMatrix of one path and every product has one shape and one
    set of strides: the threads share the tasks of all of them, one hand-off to the pool instead of one per
    product (the two directions of a bidirectional RNN's step).  No output may share memory with another
    product's operands or output (the products run at the same time).  Returns the list of outputs."""
    cdef int act = _activation(activation, "addmm_many")
    if not all(isinstance(v, (list, tuple)) for v in (cs, as_, bs)):
        raise TypeError("addmm_many: cs, as_ and bs must be lists or tuples of arrays")
    cdef Py_ssize_t n = len(cs), i, k
    if len(as_) != n or len(bs) != n or (outs is not None and len(outs) != n):
        raise ValueError(f"addmm_many: expected as many as, bs (and outs) as cs ({n}), got {len(as_)}, "
                         f"{len(bs)}" + ("" if outs is None else f", {len(outs)}"))
    if n == 0:
        return []
    cdef AddmmArgs *r = <AddmmArgs *>malloc(n * sizeof(AddmmArgs))
    cdef const void **ptrs = <const void **>malloc(4 * n * sizeof(void *))
    cdef list results = []
    cdef bint one_job = True
    cdef int rc = 0
    cdef cnp.ndarray ci, ck
    try:
        if r == NULL or ptrs == NULL:
            raise MemoryError("addmm_many: out of memory")
        for i in range(n):
            results.append(_addmm_args(cs[i], as_[i], bs[i], None if outs is None else outs[i],
                                       "addmm_many", &r[i]))
            one_job = one_job and _same_layout(&r[0], &r[i])
        for i in range(n):  # the products run at once: no output may be another's input or output
            ci = results[i]
            for k in range(n):
                if k == i:
                    continue
                ck = results[k]
                if (_shares_memory(ci, r[i].mc.lo, r[i].mc.hi, ck, r[k].mc.lo, r[k].mc.hi)
                        or _shares_memory(ci, r[i].mc.lo, r[i].mc.hi, as_[k], r[k].ma.lo, r[k].ma.hi)
                        or _shares_memory(ci, r[i].mc.lo, r[i].mc.hi, cs[k], r[k].mi.lo, r[k].mi.hi)):
                    raise ValueError(f"addmm_many: output {i} shares memory with an operand or the output of "
                                     f"product {k}; the products run at the same time")
        if not one_job:
            for i in range(n):
                _addmm_run(&r[i], act)
            return results
        for i in range(n):
            ptrs[i] = r[i].mi.data
            ptrs[n + i] = r[i].ma.data
            ptrs[2 * n + i] = r[i].pdata
            ptrs[3 * n + i] = r[i].mc.data
        with nogil:
            if r[0].typenum == cnp.NPY_FLOAT32:
                rc = mg_addmm_many_f32(r[0].isa, n, r[0].mc.shape[1], r[0].mc.shape[2], r[0].ma.shape[2],
                                       <const float *const *>ptrs, r[0].mi.strides[1], r[0].mi.strides[2],
                                       <const float *const *>(ptrs + n), r[0].ma.strides[1],
                                       r[0].ma.strides[2],
                                       <const float *const *>(ptrs + 2 * n), <float *const *>(ptrs + 3 * n),
                                       r[0].mc.strides[1], r[0].mc.strides[2], act)
            else:
                rc = mg_addmm_many_f64(r[0].isa, n, r[0].mc.shape[1], r[0].mc.shape[2], r[0].ma.shape[2],
                                       <const double *const *>ptrs, r[0].mi.strides[1], r[0].mi.strides[2],
                                       <const double *const *>(ptrs + n), r[0].ma.strides[1],
                                       r[0].ma.strides[2],
                                       <const double *const *>(ptrs + 2 * n), <double *const *>(ptrs + 3 * n),
                                       r[0].mc.strides[1], r[0].mc.strides[2], act)
        if rc:
            raise MemoryError("addmm_many: could not allocate packing buffers")
        return results
    finally:
        free(r)
        free(ptrs)


cdef bint _seq_layout(const Mat *m, const Mat *first) noexcept:
    """``m`` has unit column stride (or one column) and the strides of ``first``."""
    return (0 <= m.strides[2] <= 1 and m.strides[0] == first.strides[0] and m.strides[1] == first.strides[1]
            and m.strides[2] == first.strides[2])


cdef list _seq_operands(object arrays, int typenum, tuple shape, str fn, str name, Mat *mats):
    """``arrays`` (per direction) checked as ``shape`` and of the dtype, filling ``mats``; all copied to
    C order unless they share one set of strides with unit column stride (what addmm_seq reads)."""
    cdef Py_ssize_t i, n = len(arrays)
    cdef list arrs = []
    cdef bint uniform = True
    cdef cnp.ndarray arr
    for i in range(n):
        arr = _float_array(arrays[i], fn, f"{name}[{i}]")
        if cnp.PyArray_TYPE(arr) != typenum:
            raise TypeError(f"{fn}: {name}[{i}] has dtype {arr.dtype}, the products "
                            f"{cnp.PyArray_DescrFromType(typenum)}; cast one of them")
        if _shape(arr) != shape:
            raise ValueError(f"{fn}: {name}[{i}] has shape {_shape(arr)}, expected {shape}")
        _mat(arr, fn, f"{name}[{i}]", &mats[i])
        uniform = uniform and _seq_layout(&mats[i], &mats[0])
        arrs.append(arr)
    if not uniform:
        for i in range(n):
            arrs[i] = cnp.PyArray_NewCopy(arrs[i], cnp.NPY_CORDER)
            _mat(arrs[i], fn, f"{name}[{i}]", &mats[i])
    return arrs


cdef PackedMatrix _seq_weights(object bs, Py_ssize_t n, str fn):
    """``bs`` (a sequence job's per-direction packed weights) checked as PackedMatrix of one shape, dtype and
    path; returns bs[0]."""
    cdef Py_ssize_t i
    for i in range(n):
        if type(bs[i]) is not PackedMatrix:
            raise TypeError(f"{fn}: bs[{i}] must be a PackedMatrix (pack(b)), got {type(bs[i]).__name__}")
    cdef PackedMatrix P = <PackedMatrix>bs[0]
    for i in range(1, n):
        if (<PackedMatrix>bs[i]).shape != P.shape or (<PackedMatrix>bs[i])._typenum != P._typenum \
                or (<PackedMatrix>bs[i])._isa != P._isa:
            raise ValueError(f"{fn}: bs[{i}] is {bs[i]!r}, bs[0] {P!r}; expected one shape, dtype and path")
    return P


cdef int _seq_outputs(object outs, Py_ssize_t n, int typenum, tuple shape, str fn, Mat *mats) except -1:
    """A sequence job's per-direction outputs (L, M, H): writable, of ``shape`` and the dtype, unit column
    stride and the strides of outs[0], no element twice; fills ``mats``."""
    cdef Py_ssize_t i
    for i in range(n):
        arr = _float_array(outs[i], fn, f"outs[{i}]")
        if cnp.PyArray_TYPE(arr) != typenum or _shape(arr) != shape:
            raise ValueError(f"{fn}: outs[{i}] has shape {_shape(arr)} and dtype {arr.dtype}; the results have "
                             f"shape {shape} and dtype {cnp.PyArray_DescrFromType(typenum)}")
        if not cnp.PyArray_ISWRITEABLE(arr):
            raise ValueError(f"{fn}: outs[{i}] is read-only")
        _mat(arr, fn, f"outs[{i}]", &mats[i])
        if not _seq_layout(&mats[i], &mats[0]):
            raise ValueError(f"{fn}: outs[{i}] has strides {_strides(arr)}; expected unit column stride and the "
                             f"strides of outs[0], {_strides(outs[0])}")
        if _self_overlapping(&mats[i]):
            raise ValueError(f"{fn}: outs[{i}] has overlapping elements (strides {_strides(arr)})")
    return 0


cdef int _seq_apart(object outs, list operands, Py_ssize_t n, Mat *mats, str fn) except -1:
    """No output of a sequence job shares memory with another direction's output or any operand:
    ``operands`` are per-direction lists whose Mats follow the outputs' in ``mats``, n each."""
    cdef Py_ssize_t i, k, q
    for i in range(n):
        for k in range(n):
            if k != i and _shares_memory(outs[i], mats[i].lo, mats[i].hi, outs[k], mats[k].lo, mats[k].hi):
                raise ValueError(f"{fn}: outs[{i}] shares memory with an output or operand of direction {k}")
            for q in range(len(operands)):
                if _shares_memory(outs[i], mats[i].lo, mats[i].hi, operands[q][k], mats[(q + 1) * n + k].lo,
                                  mats[(q + 1) * n + k].hi):
                    raise ValueError(f"{fn}: outs[{i}] shares memory with an output or operand of direction {k}")
    return 0


def addmm_seq(cs, h0s, bs, outs, reverse, activation=None):
    """An Elman RNN layer's products over a whole sequence, as ONE parallel job: per direction i, for each
    step s of L, with t = s (L - 1 - s when ``reverse[i]``), ``outs[i][t] = activation(cs[i][t] + h @ bs[i])``,
    h being ``h0s[i]`` at the first step and then the step before's ``outs[i]``.  The same bits as that loop
    of addmm; each thread takes whole rows of the batch through every step (a batch of fewer row
    panels than threads: each step's columns, the threads meeting once per step) instead of a hand-off
    from the pool per product.

    ``cs[i]`` (L, M, N) and ``h0s[i]`` (M, N) are arrays (copied when their strides do not suit the kernel),
    ``bs[i]`` a PackedMatrix (N, N), all of one dtype and path; ``outs[i]`` (L, M, N) are writable arrays with
    unit column stride and one set of strides, sharing no memory with each other or with any operand.
    ``activation``: None or ``"tanh"``.  Returns ``outs``."""
    cdef int act = _activation(activation, "addmm_seq")
    if not all(isinstance(v, (list, tuple)) for v in (cs, h0s, bs, outs, reverse)):
        raise TypeError("addmm_seq: cs, h0s, bs, outs and reverse must be lists or tuples")
    cdef Py_ssize_t n = len(cs), i, k
    if n == 0 or len(h0s) != n or len(bs) != n or len(outs) != n or len(reverse) != n:
        raise ValueError(f"addmm_seq: expected as many h0s, bs, outs and reverse as cs (at least one), got "
                         f"{n}, {len(h0s)}, {len(bs)}, {len(outs)}, {len(reverse)}")
    cdef PackedMatrix P = _seq_weights(bs, n, "addmm_seq")
    cdef int typenum = P._typenum, isa = P._isa
    cdef mg_int N = P._n
    if P._k != N:
        raise ValueError(f"addmm_seq: bs[0] has shape {P.shape}; the state's product needs a square operand")
    cdef cnp.ndarray O0 = _float_array(outs[0], "addmm_seq", "outs[0]")
    if cnp.PyArray_NDIM(O0) != 3:
        raise ValueError(f"addmm_seq: outs[0] must be 3-D (L, M, N), got shape {_shape(O0)}")
    cdef mg_int L = cnp.PyArray_DIMS(O0)[0], M = cnp.PyArray_DIMS(O0)[1]
    shape = (L, M, N)
    cdef Mat *mats = <Mat *>malloc(4 * n * sizeof(Mat))
    cdef const void **ptrs = <const void **>malloc(4 * n * sizeof(void *))
    cdef int *rev = <int *>malloc(n * sizeof(int))
    cdef int rc = 0
    try:
        if mats == NULL or ptrs == NULL or rev == NULL:
            raise MemoryError("addmm_seq: out of memory")
        # outs: mats[0:n]; cs: mats[n:2n]; h0s (as (1, M, N)): mats[2n:3n]
        _seq_outputs(outs, n, typenum, shape, "addmm_seq", mats)
        c_arrs = _seq_operands(cs, typenum, shape, "addmm_seq", "cs", mats + n)
        h_arrs = _seq_operands(h0s, typenum, (M, N), "addmm_seq", "h0s", mats + 2 * n)
        _seq_apart(outs, [c_arrs, h_arrs], n, mats, "addmm_seq")
        if L == 0 or M == 0 or N == 0:
            return outs
        for i in range(n):
            ptrs[i] = mats[n + i].data
            ptrs[n + i] = mats[2 * n + i].data
            ptrs[2 * n + i] = cnp.PyArray_DATA((<PackedMatrix>bs[i])._buf)
            ptrs[3 * n + i] = mats[i].data
            rev[i] = 1 if reverse[i] else 0
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                rc = mg_addmm_seq_f32(isa, n, L, M, N, <const float *const *>ptrs, mats[n].strides[0],
                                      mats[n].strides[1], <const float *const *>(ptrs + n), mats[2 * n].strides[1],
                                      <const float *const *>(ptrs + 2 * n), <float *const *>(ptrs + 3 * n),
                                      mats[0].strides[0], mats[0].strides[1], rev, act)
            else:
                rc = mg_addmm_seq_f64(isa, n, L, M, N, <const double *const *>ptrs, mats[n].strides[0],
                                      mats[n].strides[1], <const double *const *>(ptrs + n),
                                      mats[2 * n].strides[1], <const double *const *>(ptrs + 2 * n),
                                      <double *const *>(ptrs + 3 * n), mats[0].strides[0], mats[0].strides[1],
                                      rev, act)
        if rc:
            raise MemoryError("addmm_seq: could not allocate scratch buffers")
        return outs
    finally:
        free(mats)
        free(ptrs)
        free(rev)


def lstm_seq(xgs, h0s, c0s, bs, outs, reverse):
    """An LSTM layer's forward over a whole sequence, as ONE parallel job: per direction i, for each step s
    of L, with t = s (L - 1 - s when ``reverse[i]``), ``gates = xgs[i][t] + h @ bs[i]`` and then
    ``lstm_forward(gates, c)`` with ``outs[i][t]`` as h', h and c being ``h0s[i]``, ``c0s[i]`` at the first
    step and then the step before's.  The same bits as that loop of addmm and lstm_forward; each thread
    takes whole rows of the batch through every step.

    ``xgs[i]`` (L, M, 4H), ``h0s[i]`` and ``c0s[i]`` (M, H) are arrays (copied when their strides do not suit
    the kernel), ``bs[i]`` a PackedMatrix (H, 4H), all of one dtype and path; ``outs[i]`` (L, M, H) are
    writable arrays with unit column stride and one set of strides, sharing no memory with each other or
    with any operand.  Returns per direction the new arrays (act, c, tanh_c) of every step, (L, M, 4H),
    (L, M, H), (L, M, H), as lstm_forward's (act holds the gates' activations i, f, g, o)."""
    if not all(isinstance(v, (list, tuple)) for v in (xgs, h0s, c0s, bs, outs, reverse)):
        raise TypeError("lstm_seq: xgs, h0s, c0s, bs, outs and reverse must be lists or tuples")
    return _gated_seq("lstm_seq", 4, xgs, h0s, c0s, bs, outs, reverse)


def gru_seq(xgs, bhs, h0s, bs, outs, reverse):
    """A GRU layer's forward over a whole sequence, as ONE parallel job: per direction i, for each step s of
    L, with t = s (L - 1 - s when ``reverse[i]``), ``hg = bhs[i] + h @ bs[i]`` and then
    ``gru_forward(xgs[i][t], hg, h)`` with ``outs[i][t]`` as h', h being ``h0s[i]`` at the first step and then
    the step before's.  The same bits as that loop of addmm and gru_forward; each thread takes whole rows of
    the batch through every step.

    ``xgs[i]`` (L, M, 3H) and ``bhs[i]`` (M, 3H: b_hh's rows, e.g. a broadcast view), ``h0s[i]`` (M, H) are
    arrays, ``bs[i]`` a PackedMatrix (H, 3H), ``outs[i]`` as lstm_seq's.  Returns per direction the new
    arrays (hg, act) of every step, both (L, M, 3H), as addmm's and gru_forward's."""
    if not all(isinstance(v, (list, tuple)) for v in (xgs, bhs, h0s, bs, outs, reverse)):
        raise TypeError("gru_seq: xgs, bhs, h0s, bs, outs and reverse must be lists or tuples")
    return _gated_seq("gru_seq", 3, xgs, h0s, bhs, bs, outs, reverse)


cdef tuple _gated_seq(str fn, int gates, object xgs, object h0s, object mids, object bs, object outs,
                      object reverse):
    """lstm_seq (``mids``: c0s) and gru_seq (``mids``: bhs): the checks, the new arrays, the kernel call."""
    cdef Py_ssize_t n = len(xgs), i, k
    mid = "c0s" if gates == 4 else "bhs"
    if n == 0 or not len(h0s) == len(mids) == len(bs) == len(outs) == len(reverse) == n:
        raise ValueError(f"{fn}: expected as many h0s, {mid}, bs, outs and reverse as xgs (at least one), got "
                         f"{n}, {len(h0s)}, {len(mids)}, {len(bs)}, {len(outs)}, {len(reverse)}")
    cdef PackedMatrix P = _seq_weights(bs, n, fn)
    cdef int typenum = P._typenum, isa = P._isa
    cdef mg_int H = P._k
    if P._n != gates * H:
        raise ValueError(f"{fn}: bs[0] has shape {P.shape}; the gates product needs (H, {gates} * H)")
    cdef cnp.ndarray O0 = _float_array(outs[0], fn, "outs[0]")
    if cnp.PyArray_NDIM(O0) != 3:
        raise ValueError(f"{fn}: outs[0] must be 3-D (L, M, H), got shape {_shape(O0)}")
    cdef mg_int L = cnp.PyArray_DIMS(O0)[0], M = cnp.PyArray_DIMS(O0)[1]
    shape = (L, M, H)
    dtype = P.dtype
    cdef Mat *mats = <Mat *>malloc(4 * n * sizeof(Mat))
    cdef const void **ptrs = <const void **>malloc(8 * n * sizeof(void *))
    cdef int *rev = <int *>malloc(n * sizeof(int))
    cdef int rc = 0
    try:
        if mats == NULL or ptrs == NULL or rev == NULL:
            raise MemoryError(f"{fn}: out of memory")
        # outs: mats[0:n]; xgs: mats[n:2n]; h0s: mats[2n:3n]; c0s / bhs: mats[3n:4n]
        _seq_outputs(outs, n, typenum, shape, fn, mats)
        x_arrs = _seq_operands(xgs, typenum, (L, M, gates * H), fn, "xgs", mats + n)
        h_arrs = _seq_operands(h0s, typenum, (M, H), fn, "h0s", mats + 2 * n)
        m_arrs = _seq_operands(mids, typenum, (M, H) if gates == 4 else (M, gates * H), fn, mid, mats + 3 * n)
        _seq_apart(outs, [x_arrs, h_arrs, m_arrs], n, mats, fn)
        # LSTM: act (L, M, 4H), c, tanh_c (L, M, H); GRU: hg, act (L, M, 3H)
        firsts = [np.empty((L, M, gates * H), dtype) for i in range(n)]
        seconds = [np.empty(shape if gates == 4 else (L, M, gates * H), dtype) for i in range(n)]
        thirds = [np.empty(shape, dtype) for i in range(n)] if gates == 4 else None
        result = (firsts, seconds, thirds) if gates == 4 else (firsts, seconds)
        if L == 0 or M == 0 or H == 0:
            return result
        for i in range(n):
            ptrs[i] = mats[n + i].data
            ptrs[n + i] = mats[2 * n + i].data
            ptrs[2 * n + i] = mats[3 * n + i].data
            ptrs[3 * n + i] = cnp.PyArray_DATA((<PackedMatrix>bs[i])._buf)
            ptrs[4 * n + i] = cnp.PyArray_DATA(<cnp.ndarray>firsts[i])
            ptrs[5 * n + i] = cnp.PyArray_DATA(<cnp.ndarray>seconds[i])
            ptrs[6 * n + i] = cnp.PyArray_DATA(<cnp.ndarray>thirds[i]) if gates == 4 else NULL
            ptrs[7 * n + i] = mats[i].data
            rev[i] = 1 if reverse[i] else 0
        with nogil:
            if gates == 4 and typenum == cnp.NPY_FLOAT32:
                rc = mg_lstm_seq_f32(isa, n, L, M, H, <const float *const *>ptrs, mats[n].strides[0],
                                     mats[n].strides[1], <const float *const *>(ptrs + n), mats[2 * n].strides[1],
                                     <const float *const *>(ptrs + 2 * n), mats[3 * n].strides[1],
                                     <const float *const *>(ptrs + 3 * n), <float *const *>(ptrs + 4 * n),
                                     <float *const *>(ptrs + 5 * n), <float *const *>(ptrs + 6 * n),
                                     <float *const *>(ptrs + 7 * n), mats[0].strides[0], mats[0].strides[1], rev)
            elif gates == 4:
                rc = mg_lstm_seq_f64(isa, n, L, M, H, <const double *const *>ptrs, mats[n].strides[0],
                                     mats[n].strides[1], <const double *const *>(ptrs + n),
                                     mats[2 * n].strides[1], <const double *const *>(ptrs + 2 * n),
                                     mats[3 * n].strides[1], <const double *const *>(ptrs + 3 * n),
                                     <double *const *>(ptrs + 4 * n), <double *const *>(ptrs + 5 * n),
                                     <double *const *>(ptrs + 6 * n), <double *const *>(ptrs + 7 * n),
                                     mats[0].strides[0], mats[0].strides[1], rev)
            elif typenum == cnp.NPY_FLOAT32:
                rc = mg_gru_seq_f32(isa, n, L, M, H, <const float *const *>ptrs, mats[n].strides[0],
                                    mats[n].strides[1], <const float *const *>(ptrs + 2 * n), mats[3 * n].strides[1],
                                    <const float *const *>(ptrs + n), mats[2 * n].strides[1],
                                    <const float *const *>(ptrs + 3 * n), <float *const *>(ptrs + 4 * n),
                                    <float *const *>(ptrs + 5 * n), <float *const *>(ptrs + 7 * n),
                                    mats[0].strides[0], mats[0].strides[1], rev)
            else:
                rc = mg_gru_seq_f64(isa, n, L, M, H, <const double *const *>ptrs, mats[n].strides[0],
                                    mats[n].strides[1], <const double *const *>(ptrs + 2 * n),
                                    mats[3 * n].strides[1], <const double *const *>(ptrs + n),
                                    mats[2 * n].strides[1], <const double *const *>(ptrs + 3 * n),
                                    <double *const *>(ptrs + 4 * n), <double *const *>(ptrs + 5 * n),
                                    <double *const *>(ptrs + 7 * n), mats[0].strides[0], mats[0].strides[1], rev)
        if rc:
            raise MemoryError(f"{fn}: could not allocate scratch buffers")
        return result
    finally:
        free(mats)
        free(ptrs)
        free(rev)


def _share_judge_trace(jobs):
    """Test hook: mg_share_trace on ``jobs``, a list of (idle gap, wall, caller's own tasks' time, tasks the
    caller ran, tasks[, woke]) -- times in ns, ``woke`` true when the job woke sleeping helpers (default
    false) -- from a fresh state; returns, after each job, how long sharing stays paused in ns (0: sharing)."""
    cdef Py_ssize_t n = len(jobs), k, i
    cdef long long *buf = <long long *>malloc(max(n, 1) * 7 * sizeof(long long))
    if buf == NULL:
        raise MemoryError("_share_judge_trace: out of memory")
    try:
        for k in range(n):
            if len(jobs[k]) not in (5, 6):
                raise ValueError(f"_share_judge_trace: jobs[{k}] must be (gap, wall, caller, mine, tasks[, woke])")
            for i in range(5):
                buf[6 * k + i] = jobs[k][i]
            buf[6 * k + 5] = 1 if len(jobs[k]) == 6 and jobs[k][5] else 0
        mg_share_trace(n, buf, buf + 6 * n)
        return [buf[6 * n + k] for k in range(n)]
    finally:
        free(buf)


def _distance_trace(samples):
    """Test hook: a fresh distance estimate (mg_distance_sample) fed ``samples``, hand-off latencies in ns;
    returns its verdict (True: far apart) after each."""
    cdef Py_ssize_t n = len(samples), k
    cdef long long *ns = <long long *>malloc(max(n, 1) * sizeof(long long))
    cdef int *far = <int *>malloc(max(n, 1) * sizeof(int))
    if ns == NULL or far == NULL:
        free(ns)
        free(far)
        raise MemoryError("_distance_trace: out of memory")
    try:
        for k in range(n):
            ns[k] = samples[k]
        mg_distance_trace(n, ns, far)
        return [bool(far[k]) for k in range(n)]
    finally:
        free(ns)
        free(far)


def threads_far():
    """Whether the pool's threads found their cores far apart in their last window of hand-offs (a
    cache line's round trip above about 200 ns, as when a VM's two vCPUs sit on separate L3 caches); small
    and short-K products then run on one thread.  False under OpenMP, and until the pool has measured."""
    return bool(mg_threads_far())


cdef struct _Span:
    char *lo
    char *hi
    Py_ssize_t idx   # into the list of arrays checked
    bint out


cdef int _span_order(const void *a, const void *b) noexcept nogil:
    cdef const _Span *x = <const _Span *>a
    cdef const _Span *y = <const _Span *>b
    return -1 if x.lo < y.lo else (1 if x.lo > y.lo else 0)


cdef int _check_outputs_apart(list arrays, Mat *mats, bint *out, Py_ssize_t n, str fn) except -1:
    """Raise unless every array marked ``out`` shares no memory with any other of the ``n`` arrays (inputs may
    share memory with each other): byte ranges sorted, numpy's exact test only where two ranges meet."""
    cdef _Span *spans = <_Span *>malloc(max(n, 1) * sizeof(_Span))
    cdef Py_ssize_t i, k
    if spans == NULL:
        raise MemoryError(f"{fn}: out of memory")
    try:
        for i in range(n):
            spans[i].lo, spans[i].hi, spans[i].idx, spans[i].out = mats[i].lo, mats[i].hi, i, out[i]
        qsort(spans, n, sizeof(_Span), _span_order)
        for i in range(n):
            k = i + 1
            while k < n and spans[k].lo < spans[i].hi:
                if ((spans[i].out or spans[k].out)
                        and _shares_memory(arrays[spans[i].idx], spans[i].lo, spans[i].hi,
                                           arrays[spans[k].idx], spans[k].lo, spans[k].hi)):
                    raise ValueError(f"{fn}: an output shares memory with another output or an operand")
                k += 1
    finally:
        free(spans)
    return 0


cdef cnp.ndarray _step_matrix(object obj, int typenum, mg_int M, mg_int N, str fn, str name, bint write,
                              Mat *m):
    """One step's (M, N) matrix for tanh_seq_backward: its dtype, shape, unit column stride, alignment (and
    for an output: writable, rows apart)."""
    cdef cnp.ndarray arr = _float_array(obj, fn, name)
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{fn}: {name} has dtype {arr.dtype}, the step's {cnp.PyArray_DescrFromType(typenum)}")
    if cnp.PyArray_NDIM(arr) != 2 or _shape(arr) != (M, N):
        raise ValueError(f"{fn}: {name} has shape {_shape(arr)}, expected {(M, N)}")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{fn}: {name} is not aligned to its itemsize")
    if write and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{fn}: {name} is read-only")
    _mat(arr, fn, name, m)
    if M == 0 or N == 0:
        return arr  # nothing to read or write: any strides
    if m.strides[2] != 1 and N > 1:
        raise ValueError(f"{fn}: {name} has strides {_strides(arr)}; expected unit column stride")
    if write and _self_overlapping(m):
        raise ValueError(f"{fn}: {name} has overlapping elements (strides {_strides(arr)})")
    return arr


cdef object _fresh_steps(object arrs, tuple shape, object dtype):
    """``arrs`` (a sequence job's per-step outputs, latest step first) with each None replaced by a step of
    one new (n, *shape) array, earliest step first: the steps' weight-gradient factors then lie as one
    array's rows in time order, which matmul_stacked_t reads in place."""
    cdef Py_ssize_t i, n = len(arrs)
    if not any(a is None for a in arrs):
        return arrs
    fresh = np.empty((n,) + shape, dtype)
    return [fresh[n - 1 - i] if arrs[i] is None else arrs[i] for i in range(n)]


def tanh_seq_backward(gs, ys, p, dzs):
    """The backward of ``n`` tanh steps of an Elman RNN layer (addmm_seq's), as ONE parallel job cut as addmm_seq's,
    in the order the backward meets them (the last step first): for s = 0 .. n-1,
    ``dzs[s][...] = tanh_backward(gs[s] + dzs[s-1] @ W, ys[s])``, the product left out at s = 0 and ``gs[s]``
    where it is None (s > 0).  ``ys[s]`` is step s's output, ``gs[s]`` the gradient that output gets from
    elsewhere (s = 0: its whole gradient), ``p`` = ``pack(W)`` (N, N), W being W_hh (the forward multiplies by
    W.T).  The same bits as ``addmm`` (or ``matmul`` without ``gs[s]``) then ``tanh_backward``, step by step.

    Every matrix is (M, N) of p's dtype with unit column stride, aligned; ``dzs`` are writable and share no
    memory with each other, a ``gs`` or a ``ys``; a None in ``dzs`` is a step of one new array (earliest step
    first, as ``lstm_seq_backward``'s).  Returns ``dzs`` (a list with those filled in, if there were any)."""
    fn = "tanh_seq_backward"
    if not all(isinstance(v, (list, tuple)) for v in (gs, ys, dzs)):
        raise TypeError(f"{fn}: gs, ys and dzs must be lists or tuples")
    cdef Py_ssize_t n = len(dzs), i, k
    if n == 0 or len(gs) != n or len(ys) != n:
        raise ValueError(f"{fn}: expected as many gs and ys as dzs (at least one), got {len(gs)}, {len(ys)}, {n}")
    if type(p) is not PackedMatrix:
        raise TypeError(f"{fn}: p must be a PackedMatrix (pack(W)), got {type(p).__name__}")
    cdef PackedMatrix P = <PackedMatrix>p
    if P._k != P._n:
        raise ValueError(f"{fn}: p has shape {P.shape}; the state's product needs a square operand")
    if gs[0] is None:
        raise ValueError(f"{fn}: gs[0] (the first step's whole gradient) must be an array, got None")
    cdef int typenum = P._typenum
    cdef mg_int N = P._n, M = -1
    fname = "dzs[0]" if dzs[0] is not None else "ys[0]"
    first = _float_array(dzs[0] if dzs[0] is not None else ys[0], fn, fname)
    if cnp.PyArray_NDIM(first) != 2:
        raise ValueError(f"{fn}: {fname} must be 2-D (M, N), got shape {_shape(first)}")
    M = cnp.PyArray_DIMS(first)[0]
    dzs = _fresh_steps(dzs, (M, N), P.dtype)
    cdef Mat *mats = <Mat *>malloc(3 * n * sizeof(Mat))
    cdef bint *outs = <bint *>malloc(3 * n * sizeof(bint))
    cdef const void **ptrs = <const void **>malloc(3 * n * sizeof(void *))
    cdef mg_int *strides = <mg_int *>malloc(3 * n * sizeof(mg_int))
    cdef int rc = 0, isa = P._isa
    cdef const void *pdata = cnp.PyArray_DATA(P._buf)
    arrays = []
    try:
        if mats == NULL or outs == NULL or ptrs == NULL or strides == NULL:
            raise MemoryError(f"{fn}: out of memory")
        k = 0  # dzs, then ys, then the gs given
        for i in range(n):
            arrays.append(_step_matrix(dzs[i], typenum, M, N, fn, f"dzs[{i}]", True, &mats[k]))
            outs[k] = True
            ptrs[i], strides[i] = mats[k].data, mats[k].strides[1]
            k += 1
        for i in range(n):
            arrays.append(_step_matrix(ys[i], typenum, M, N, fn, f"ys[{i}]", False, &mats[k]))
            outs[k] = False
            ptrs[n + i], strides[n + i] = mats[k].data, mats[k].strides[1]
            k += 1
        for i in range(n):
            if gs[i] is None:
                ptrs[2 * n + i], strides[2 * n + i] = NULL, 0
                continue
            arrays.append(_step_matrix(gs[i], typenum, M, N, fn, f"gs[{i}]", False, &mats[k]))
            outs[k] = False
            ptrs[2 * n + i], strides[2 * n + i] = mats[k].data, mats[k].strides[1]
            k += 1
        _check_outputs_apart(arrays, mats, outs, k, fn)
        if M == 0 or N == 0:
            return dzs
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                rc = mg_tanh_seq_backward_f32(isa, n, M, N, <const float *const *>(ptrs + 2 * n), strides + 2 * n,
                                              <const float *const *>(ptrs + n), strides + n, <const float *>pdata,
                                              <float *const *>ptrs, strides)
            else:
                rc = mg_tanh_seq_backward_f64(isa, n, M, N, <const double *const *>(ptrs + 2 * n),
                                              strides + 2 * n, <const double *const *>(ptrs + n), strides + n,
                                              <const double *>pdata, <double *const *>ptrs, strides)
        if rc:
            raise MemoryError(f"{fn}: could not allocate scratch buffers")
        return dzs
    finally:
        free(mats)
        free(outs)
        free(ptrs)
        free(strides)


def lstm_seq_backward(gs, dc, acts, c_prevs, tanh_cs, p, d_gates, dc_prev=None):
    """The backward of ``n`` steps of an LSTM layer (lstm_seq's), as ONE parallel job cut by batch rows as
    lstm_seq's, in the order the backward meets them (the last step first): for k = 0 .. n-1,
    ``dh = gs[k] + d_gates[k-1] @ W`` (the product left out at k = 0; ``gs[k]`` alone where it is None,
    k > 0) and ``d_gates[k], dc' = lstm_backward(dh, dc_k, acts[k], c_prevs[k], tanh_cs[k])``, with
    ``dc_k`` = ``dc`` (None: none) at k = 0 and then the step before's dc'.  The same bits as ``addmm`` (or
    ``matmul``) then ``lstm_backward``, step by step.  ``gs[k]``: the gradient step k's h gets from elsewhere
    (k = 0: its whole gradient); ``p`` = ``pack(W)`` (4H, H), W being W_hh.

    ``acts[k]`` and ``d_gates[k]`` are (M, 4H), the others (M, H), all of p's dtype with unit column stride,
    aligned; an output given as None is allocated.  The outputs (``d_gates``, ``dc_prev``) are writable and
    share no memory with each other or an operand.  Returns (``d_gates``, the last step's ``dc_prev``)."""
    fn = "lstm_seq_backward"
    if not all(isinstance(v, (list, tuple)) for v in (gs, acts, c_prevs, tanh_cs, d_gates)):
        raise TypeError(f"{fn}: gs, acts, c_prevs, tanh_cs and d_gates must be lists or tuples")
    return _gated_seq_backward(fn, 4, gs, dc, [("acts", acts, 4), ("c_prevs", c_prevs, 1), ("tanh_cs", tanh_cs, 1)],
                               p, [("d_gates", d_gates)], dc_prev, "dc_prev")


def gru_seq_backward(gs, acts, hns, h_prevs, p, d_xgs, d_hgs, dh_prev=None):
    """The backward of ``n`` steps of a GRU layer (gru_seq's), as ONE parallel job cut by batch rows, in the
    order the backward meets them (the last step first): for k = 0 .. n-1, with ``direct`` the step before's
    gradient of its h_prev through ``z * h``,
    ``dh = (gs[k] + direct) + d_hgs[k-1] @ W`` (``gs[0]`` at k = 0; ``direct + d_hgs[k-1] @ W`` where
    ``gs[k]`` is None) and ``d_xgs[k], d_hgs[k], direct' = gru_backward(dh, acts[k], hns[k], h_prevs[k])``:
    the bits of the engine's node-by-node backward, which sums a state's gradients in that order.
    ``p`` = ``pack(W)`` (3H, H), W being W_hh.

    ``acts``, ``d_xgs``, ``d_hgs`` are (M, 3H), the others (M, H), all of p's dtype with unit column stride,
    aligned; an output given as None is allocated.  The outputs (``d_xgs``, ``d_hgs``, ``dh_prev``) are
    writable and share no memory with each other or an operand.  Returns (``d_xgs``, ``d_hgs``, the last
    step's ``direct'``)."""
    fn = "gru_seq_backward"
    if not all(isinstance(v, (list, tuple)) for v in (gs, acts, hns, h_prevs, d_xgs, d_hgs)):
        raise TypeError(f"{fn}: gs, acts, hns, h_prevs, d_xgs and d_hgs must be lists or tuples")
    return _gated_seq_backward(fn, 3, gs, None, [("acts", acts, 3), ("hns", hns, 1), ("h_prevs", h_prevs, 1)], p,
                               [("d_xgs", d_xgs), ("d_hgs", d_hgs)], dh_prev, "dh_prev")


cdef tuple _gated_seq_backward(str fn, int gates, object gs, object dc, list ins, object p, list outs,
                               object last, str last_name):
    """lstm_seq_backward and gru_seq_backward: the checks, the outputs, the kernel call.  ``ins``: (name,
    arrays, width in H) of the saved operands, acts first; ``outs``: (name, arrays) of the gate gradients,
    each (M, gates * H); ``last``: the last step's (M, H) output."""
    acts = ins[0][1]
    cdef Py_ssize_t n = len(acts), i, k, q, g0
    if n == 0 or len(gs) != n or any(len(arrs) != n for _, arrs, _ in ins) or any(len(a) != n for _, a in outs):
        names = ", ".join(["gs"] + [x[0] for x in ins[1:]] + [x[0] for x in outs])
        raise ValueError(f"{fn}: expected as many {names} as acts (at least one), got "
                         f"{[len(gs)] + [len(x[1]) for x in ins[1:]] + [len(x[1]) for x in outs]} and {n}")
    if type(p) is not PackedMatrix:
        raise TypeError(f"{fn}: p must be a PackedMatrix (pack(W)), got {type(p).__name__}")
    cdef PackedMatrix P = <PackedMatrix>p
    cdef mg_int H = P._n
    if P._k != gates * H:
        raise ValueError(f"{fn}: p has shape {P.shape}; the state's product needs ({gates} * H, H)")
    if gs[0] is None:
        raise ValueError(f"{fn}: gs[0] (the first step's whole gradient) must be an array, got None")
    cdef int typenum = P._typenum
    first = _float_array(acts[0], fn, "acts[0]")
    if cnp.PyArray_NDIM(first) != 2:
        raise ValueError(f"{fn}: acts[0] must be 2-D (M, {gates}H), got shape {_shape(first)}")
    cdef mg_int M = cnp.PyArray_DIMS(first)[0]
    dtype = P.dtype
    outs = [(name, _fresh_steps(arrs, (M, gates * H), dtype)) for name, arrs in outs]
    if last is None:
        last = np.empty((M, H), dtype)
    cdef Py_ssize_t nptr = (len(ins) + len(outs) + 1) * n, total = nptr + 2
    cdef Mat *mats = <Mat *>malloc(total * sizeof(Mat))
    cdef bint *isout = <bint *>malloc(total * sizeof(bint))
    cdef const void **ptrs = <const void **>malloc(nptr * sizeof(void *))
    cdef mg_int *strides = <mg_int *>malloc(nptr * sizeof(mg_int))
    cdef int rc = 0, isa = P._isa
    cdef const void *pdata = cnp.PyArray_DATA(P._buf)
    cdef const void *dcdata = NULL
    cdef void *lastdata
    cdef mg_int dcs = 0, lasts
    arrays = []
    try:
        if mats == NULL or isout == NULL or ptrs == NULL or strides == NULL:
            raise MemoryError(f"{fn}: out of memory")
        # ptrs/strides, n each: the outputs, the saved operands, then gs
        groups = [(name, arrs, gates, True) for name, arrs in outs] + [(name, arrs, w, False) for name, arrs, w in ins]
        groups.append(("gs", gs, 1, False))
        k = 0
        for q, (name, arrs, width, write) in enumerate(groups):
            for i in range(n):
                if arrs[i] is None:
                    if name != "gs":
                        raise TypeError(f"{fn}: {name}[{i}] must be an array, got None")
                    ptrs[q * n + i], strides[q * n + i] = NULL, 0
                    continue
                arrays.append(_step_matrix(arrs[i], typenum, M, width * H, fn, f"{name}[{i}]", write, &mats[k]))
                isout[k] = write
                ptrs[q * n + i], strides[q * n + i] = mats[k].data, mats[k].strides[1]
                k += 1
        if dc is not None:
            arrays.append(_step_matrix(dc, typenum, M, H, fn, "dc", False, &mats[k]))
            isout[k] = False
            dcdata, dcs = mats[k].data, mats[k].strides[1]
            k += 1
        arrays.append(_step_matrix(last, typenum, M, H, fn, last_name, True, &mats[k]))
        isout[k] = True
        lastdata, lasts = mats[k].data, mats[k].strides[1]
        k += 1
        _check_outputs_apart(arrays, mats, isout, k, fn)
        result = tuple(arrs for _, arrs in outs) + (last,)
        if M == 0 or H == 0:
            return result
        g0 = len(groups) - 1  # gs's place in ptrs
        with nogil:
            if gates == 4 and typenum == cnp.NPY_FLOAT32:
                rc = mg_lstm_seq_backward_f32(isa, n, M, H, <const float *const *>(ptrs + g0 * n), strides + g0 * n,
                                              <const float *>dcdata, dcs, <const float *const *>(ptrs + n),
                                              strides + n, <const float *const *>(ptrs + 2 * n), strides + 2 * n,
                                              <const float *const *>(ptrs + 3 * n), strides + 3 * n,
                                              <const float *>pdata, <float *const *>ptrs, strides,
                                              <float *>lastdata, lasts)
            elif gates == 4:
                rc = mg_lstm_seq_backward_f64(isa, n, M, H, <const double *const *>(ptrs + g0 * n), strides + g0 * n,
                                              <const double *>dcdata, dcs, <const double *const *>(ptrs + n),
                                              strides + n, <const double *const *>(ptrs + 2 * n), strides + 2 * n,
                                              <const double *const *>(ptrs + 3 * n), strides + 3 * n,
                                              <const double *>pdata, <double *const *>ptrs, strides,
                                              <double *>lastdata, lasts)
            elif typenum == cnp.NPY_FLOAT32:
                rc = mg_gru_seq_backward_f32(isa, n, M, H, <const float *const *>(ptrs + g0 * n), strides + g0 * n,
                                             <const float *const *>(ptrs + 2 * n), strides + 2 * n,
                                             <const float *const *>(ptrs + 3 * n), strides + 3 * n,
                                             <const float *const *>(ptrs + 4 * n), strides + 4 * n,
                                             <const float *>pdata, <float *const *>ptrs, strides,
                                             <float *const *>(ptrs + n), strides + n, <float *>lastdata, lasts)
            else:
                rc = mg_gru_seq_backward_f64(isa, n, M, H, <const double *const *>(ptrs + g0 * n), strides + g0 * n,
                                             <const double *const *>(ptrs + 2 * n), strides + 2 * n,
                                             <const double *const *>(ptrs + 3 * n), strides + 3 * n,
                                             <const double *const *>(ptrs + 4 * n), strides + 4 * n,
                                             <const double *>pdata, <double *const *>ptrs, strides,
                                             <double *const *>(ptrs + n), strides + n, <double *>lastdata, lasts)
        if rc:
            raise MemoryError(f"{fn}: could not allocate scratch buffers")
        return result
    finally:
        free(mats)
        free(isout)
        free(ptrs)
        free(strides)


cdef cnp.ndarray _row_factor(object obj, str name, Py_ssize_t i, int typenum, mg_int width, str dim):
    """One factor of matmul_stacked_t, 2-D with `width` columns, its rows made contiguous if they are not."""
    cdef cnp.ndarray arr = _float_array(obj, "matmul_stacked_t", f"{name}[{i}]")
    if cnp.PyArray_NDIM(arr) != 2:
        raise ValueError(f"matmul_stacked_t: {name}[{i}] must be 2-D, got shape {_shape(arr)}")
    if typenum >= 0 and cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"matmul_stacked_t: {name}[{i}] has dtype {arr.dtype}, lefts[0] has "
                        f"{cnp.PyArray_DescrFromType(typenum)}; all factors need one dtype")
    if width >= 0 and cnp.PyArray_DIMS(arr)[1] != width:
        raise ValueError(f"matmul_stacked_t: {name}[{i}] has shape {_shape(arr)}, expected {width} columns "
                         f"({dim}, as {name}[0])")
    if ((cnp.PyArray_DIMS(arr)[1] > 1 and cnp.PyArray_STRIDES(arr)[1] != cnp.PyArray_ITEMSIZE(arr))
            or not cnp.PyArray_ISALIGNED(arr)):
        arr = cnp.PyArray_NewCopy(arr, cnp.NPY_CORDER)
    return arr


def matmul_stacked_t(lefts, rights):
    """``concatenate(lefts).T @ concatenate(rights)``, i.e. ``sum_i lefts[i].T @ rights[i]``, as ONE product
    read from the pieces in place (nothing is stacked): the same bits as that product.

    lefts[i] is (K_i, M) and rights[i] (K_i, N), float32 or float64 (all one dtype); the inner dimension is
    K = sum K_i.  Returns a new C-contiguous (M, N) array.  This is the weight gradient of a product used at
    many time steps (minigrad.autograd's ProductSum).
    """
    if not isinstance(lefts, (list, tuple)) or not isinstance(rights, (list, tuple)):
        raise TypeError(f"matmul_stacked_t: lefts and rights must be lists or tuples of arrays, got "
                        f"{type(lefts).__name__} and {type(rights).__name__}")
    cdef Py_ssize_t n = len(lefts), i, r, rows
    if n == 0 or len(rights) != n:
        raise ValueError(f"matmul_stacked_t: expected as many rights as lefts (at least one), got {n} lefts "
                         f"and {len(rights)} rights")
    cdef int typenum = -1, rc  # typenum, M and N come from the first pair
    cdef mg_int M = -1, N = -1, K = 0, ls, rs
    cdef list ls_ = [], rs_ = []
    cdef cnp.ndarray L, R
    for i in range(n):
        L = _row_factor(lefts[i], "lefts", i, typenum, M, "M")
        if i == 0:
            typenum = cnp.PyArray_TYPE(L)
            M = cnp.PyArray_DIMS(L)[1]
        R = _row_factor(rights[i], "rights", i, typenum, N, "N")
        if i == 0:
            N = cnp.PyArray_DIMS(R)[1]
        if cnp.PyArray_DIMS(L)[0] != cnp.PyArray_DIMS(R)[0]:
            raise ValueError(f"matmul_stacked_t: lefts[{i}] has shape {_shape(L)} but rights[{i}] has shape "
                             f"{_shape(R)}; a pair needs the same number of rows")
        ls_.append(L)
        rs_.append(R)
        K += cnp.PyArray_DIMS(L)[0]
    cdef cnp.npy_intp dims[2]
    dims[0] = M
    dims[1] = N
    cdef cnp.ndarray C = cnp.PyArray_EMPTY(2, dims, typenum, 0)
    cdef const char **arows = <const char **>malloc(max(K, 1) * sizeof(char *))
    cdef const char **brows = <const char **>malloc(max(K, 1) * sizeof(char *))
    cdef mg_int k = 0
    try:
        if arows == NULL or brows == NULL:
            raise MemoryError("matmul_stacked_t: could not allocate the row tables")
        for i in range(n):
            L = ls_[i]
            R = rs_[i]
            ls = cnp.PyArray_STRIDES(L)[0]
            rs = cnp.PyArray_STRIDES(R)[0]
            rows = cnp.PyArray_DIMS(L)[0]
            for r in range(rows):
                arows[k] = <const char *>cnp.PyArray_DATA(L) + r * ls
                brows[k] = <const char *>cnp.PyArray_DATA(R) + r * rs
                k += 1
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                rc = mg_matmul_rows_f32(M, N, K, <const float *const *>arows, <const float *const *>brows,
                                        <float *>cnp.PyArray_DATA(C), N, 0)
            else:
                rc = mg_matmul_rows_f64(M, N, K, <const double *const *>arows, <const double *const *>brows,
                                        <double *>cnp.PyArray_DATA(C), N, 0)
    finally:
        free(arows)
        free(brows)
    if rc:
        raise MemoryError("matmul_stacked_t: could not allocate the packing buffer")
    return C


# ---------------------------------------------------------------- elementwise

# Below this many elements an elementwise kernel runs without releasing the GIL: it takes about a
# microsecond, and releasing and re-taking the GIL would add a tenth of that.
cdef enum:
    _NOGIL_ELEMS = 8192


cdef int _check_pair(cnp.ndarray a, cnp.ndarray b, str fn, str an, str bn) except -1:
    """The two operands of an elementwise kernel: one dtype, one shape."""
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(b):
        raise TypeError(f"{fn}: mixed dtypes {a.dtype} ({an}) and {b.dtype} ({bn})")
    if (cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(b)
            or not cnp.PyArray_CompareLists(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b), cnp.PyArray_NDIM(a))):
        raise ValueError(f"{fn}: {an} has shape {_shape(a)} but {bn} has shape {_shape(b)}")
    return 0


cdef inline bint _contiguous(cnp.ndarray arr):
    return cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)


cdef inline bint _contiguous_rows(cnp.ndarray arr):
    """2-D, each row contiguous and aligned, rows any (non-negative) distance apart: a column block of a
    wider matrix, such as one direction's half of a bidirectional RNN's output at one step."""
    return (cnp.PyArray_NDIM(arr) == 2 and cnp.PyArray_ISALIGNED(arr)
            and cnp.PyArray_STRIDES(arr)[1] == cnp.PyArray_ITEMSIZE(arr) and cnp.PyArray_STRIDES(arr)[0] >= 0
            and cnp.PyArray_STRIDES(arr)[0] % cnp.PyArray_ITEMSIZE(arr) == 0)


cdef cnp.ndarray _elementwise_out(object out, cnp.ndarray like, str fn):
    """out validated against `like` (same shape and dtype, writable, no two elements at one address), or a new
    C-contiguous array."""
    if out is None:
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(like), cnp.PyArray_DIMS(like), cnp.PyArray_TYPE(like), 0)
    cdef cnp.ndarray o = _float_array(out, fn, "out")
    _check_writable_out(o, like, fn)
    cdef int nd = cnp.PyArray_NDIM(like)
    if (cnp.PyArray_NDIM(o) != nd
            or not cnp.PyArray_CompareLists(cnp.PyArray_DIMS(o), cnp.PyArray_DIMS(like), nd)):
        raise ValueError(f"{fn}: out has shape {_shape(o)}, expected {_shape(like)}")
    if _array_self_overlapping(o):
        # (its rows would be written by several threads at once, in no fixed order)
        raise ValueError(f"{fn}: out's strides {_strides(o)} make its elements overlap; pass an array whose "
                         "elements are distinct")
    return o


cdef bint _array_self_overlapping(cnp.ndarray a) noexcept:
    """_self_overlapping for an array of any number of dimensions, in bytes from its itemsize: a C-contiguous
    array and any slice or transpose of one pass."""
    if cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_SIZE(a) == 0:
        return False
    cdef int i, k = 0
    cdef mg_int st[64]
    cdef mg_int ext[64]
    cdef mg_int s
    for i in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIMS(a)[i] > 1:
            s = cnp.PyArray_STRIDES(a)[i]
            st[k] = s if s >= 0 else -s
            ext[k] = cnp.PyArray_DIMS(a)[i]
            k += 1
    return _strides_overlap(st, ext, k, cnp.PyArray_ITEMSIZE(a))


cdef int _check_alias(cnp.ndarray out, cnp.ndarray x, str fn, str name) except -1:
    """out may be x itself (in place) but must not otherwise share memory with it."""
    cdef char *olo
    cdef char *ohi
    cdef char *xlo
    cdef char *xhi
    cdef int nd = cnp.PyArray_NDIM(x)
    if (cnp.PyArray_DATA(out) == cnp.PyArray_DATA(x)
            and cnp.PyArray_CompareLists(cnp.PyArray_STRIDES(out), cnp.PyArray_STRIDES(x), nd)):
        return 0
    _bounds(out, &olo, &ohi)
    _bounds(x, &xlo, &xhi)
    if _shares_memory(out, olo, ohi, x, xlo, xhi):
        raise ValueError(f"{fn}: out partially overlaps {name}; "
                         f"pass {name} itself (in place) or a separate array")
    return 0


cdef inline void _tanh_call(int typenum, mg_int n, const void *x, void *y) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        mg_tanh_f32(n, <const float *>x, <float *>y)
    else:
        mg_tanh_f64(n, <const double *>x, <double *>y)


cdef void _unary_rows(bint is_sigmoid, int typenum, cnp.ndarray X, cnp.ndarray O) noexcept:
    """tanh or sigmoid of a 2-D ``X`` whose rows are contiguous but apart (a chunk of an LSTM's gates) into
    the C-contiguous ``O``: one call over the rows, no contiguous copy of ``X`` first."""
    cdef mg_int rows = cnp.PyArray_DIMS(X)[0], cols = cnp.PyArray_DIMS(X)[1], isz = cnp.PyArray_ITEMSIZE(X)
    cdef mg_int xs = cnp.PyArray_STRIDES(X)[0] // isz
    cdef const void *x = cnp.PyArray_DATA(X)
    cdef void *o = cnp.PyArray_DATA(O)
    if rows * cols >= _NOGIL_ELEMS:
        with nogil:
            _unary_rows_call(is_sigmoid, typenum, rows, cols, x, xs, o)
    else:
        _unary_rows_call(is_sigmoid, typenum, rows, cols, x, xs, o)


cdef inline void _unary_rows_call(bint is_sigmoid, int typenum, mg_int rows, mg_int cols, const void *x,
                                  mg_int xs, void *o) noexcept nogil:
    if is_sigmoid:
        if typenum == cnp.NPY_FLOAT32:
            mg_sigmoid_rows_f32(rows, cols, <const float *>x, xs, <float *>o, cols)
        else:
            mg_sigmoid_rows_f64(rows, cols, <const double *>x, xs, <double *>o, cols)
    elif typenum == cnp.NPY_FLOAT32:
        mg_tanh_rows_f32(rows, cols, <const float *>x, xs, <float *>o, cols)
    else:
        mg_tanh_rows_f64(rows, cols, <const double *>x, xs, <double *>o, cols)


def tanh(x, out=None):
    """Elementwise tanh of a float32/float64 array of any shape and strides (at most 2 ulp from exact)."""
    cdef cnp.ndarray X = _float_array(x, "tanh", "x")
    cdef cnp.ndarray O = _elementwise_out(out, X, "tanh")
    cdef cnp.ndarray src, dst
    cdef mg_int n = cnp.PyArray_SIZE(X)
    if out is not None:
        _check_alias(O, X, "tanh", "x")
    if not _contiguous(X) and _contiguous_rows(X) and _contiguous(O):
        _unary_rows(False, cnp.PyArray_TYPE(X), X, O)
        return O
    src = X if _contiguous(X) else cnp.PyArray_NewCopy(X, cnp.NPY_CORDER)
    dst = O if _contiguous(O) else cnp.PyArray_NewCopy(O, cnp.NPY_CORDER)
    if n >= _NOGIL_ELEMS:
        with nogil:
            _tanh_call(cnp.PyArray_TYPE(X), n, cnp.PyArray_DATA(src), cnp.PyArray_DATA(dst))
    else:
        _tanh_call(cnp.PyArray_TYPE(X), n, cnp.PyArray_DATA(src), cnp.PyArray_DATA(dst))
    if dst is not O:
        cnp.PyArray_CopyInto(O, dst)
    return O


cdef inline void _backward_rows(bint is_sigmoid, int typenum, mg_int rows, mg_int cols, const void *g, mg_int gs,
                                const void *y, mg_int ys, void *o, mg_int os) noexcept nogil:
    if rows == 1:  # one contiguous run: cut into tasks by elements
        if is_sigmoid:
            _sigmoid_backward_call(typenum, cols, g, y, o)
        elif typenum == cnp.NPY_FLOAT32:
            mg_tanh_backward_f32(cols, <const float *>g, <const float *>y, <float *>o)
        else:
            mg_tanh_backward_f64(cols, <const double *>g, <const double *>y, <double *>o)
    elif is_sigmoid:
        if typenum == cnp.NPY_FLOAT32:
            mg_sigmoid_backward_rows_f32(rows, cols, <const float *>g, gs, <const float *>y, ys, <float *>o, os)
        else:
            mg_sigmoid_backward_rows_f64(rows, cols, <const double *>g, gs, <const double *>y, ys, <double *>o, os)
    elif typenum == cnp.NPY_FLOAT32:
        mg_tanh_backward_rows_f32(rows, cols, <const float *>g, gs, <const float *>y, ys, <float *>o, os)
    else:
        mg_tanh_backward_rows_f64(rows, cols, <const double *>g, gs, <const double *>y, ys, <double *>o, os)


cdef void _backward_call(bint is_sigmoid, int typenum, mg_int rows, mg_int cols, const void *g, mg_int gs,
                         const void *y, mg_int ys, void *o, mg_int os) noexcept:
    """tanh's or sigmoid's backward over `rows` rows of `cols` (strides in elements), one call however many
    rows, releasing the GIL for large ones."""
    if rows * cols >= _NOGIL_ELEMS:
        with nogil:
            _backward_rows(is_sigmoid, typenum, rows, cols, g, gs, y, ys, o, os)
    else:
        _backward_rows(is_sigmoid, typenum, rows, cols, g, gs, y, ys, o, os)


cdef object _backward(bint is_sigmoid, object grad, object y, object out, str fn):
    """tanh_backward and sigmoid_backward: validation, then rows in place wherever they lie (one direction's
    half of a bidirectional RNN's state, an LSTM gate's chunk of the gates), else contiguous copies."""
    cdef cnp.ndarray G = _float_array(grad, fn, "grad")
    cdef cnp.ndarray Y = _float_array(y, fn, "y")
    cdef cnp.ndarray O, g, yy, dst
    cdef mg_int n = cnp.PyArray_SIZE(G)
    _check_pair(G, Y, fn, "grad", "y")
    O = _elementwise_out(out, G, fn)
    if out is not None:
        _check_alias(O, G, fn, "grad")
        _check_alias(O, Y, fn, "y")
    cdef mg_int isz = cnp.PyArray_ITEMSIZE(G)
    if (not (_contiguous(G) and _contiguous(Y) and _contiguous(O))
            and _contiguous_rows(G) and _contiguous_rows(Y) and _contiguous_rows(O)):
        _backward_call(is_sigmoid, cnp.PyArray_TYPE(G), cnp.PyArray_DIMS(G)[0], cnp.PyArray_DIMS(G)[1],
                       cnp.PyArray_DATA(G), cnp.PyArray_STRIDES(G)[0] // isz, cnp.PyArray_DATA(Y),
                       cnp.PyArray_STRIDES(Y)[0] // isz, cnp.PyArray_DATA(O), cnp.PyArray_STRIDES(O)[0] // isz)
        return O
    g = G if _contiguous(G) else cnp.PyArray_NewCopy(G, cnp.NPY_CORDER)
    yy = Y if _contiguous(Y) else cnp.PyArray_NewCopy(Y, cnp.NPY_CORDER)
    dst = O if _contiguous(O) else cnp.PyArray_NewCopy(O, cnp.NPY_CORDER)
    _backward_call(is_sigmoid, cnp.PyArray_TYPE(G), 1, n, cnp.PyArray_DATA(g), n, cnp.PyArray_DATA(yy), n,
                   cnp.PyArray_DATA(dst), n)
    if dst is not O:
        cnp.PyArray_CopyInto(O, dst)
    return O


def tanh_backward(grad, y, out=None):
    """grad * (1 - y*y): the gradient through tanh from its saved output y (same shape and dtype as grad)."""
    return _backward(False, grad, y, out, "tanh_backward")


cdef inline void _sigmoid_call(int typenum, mg_int n, const void *x, void *y) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        mg_sigmoid_f32(n, <const float *>x, <float *>y)
    else:
        mg_sigmoid_f64(n, <const double *>x, <double *>y)


def sigmoid(x, out=None):
    """Elementwise 1 / (1 + exp(-x)) of a float32/float64 array of any shape and strides (at most 2 ulp from
    exact, subnormal results included); out may be x itself."""
    cdef cnp.ndarray X = _float_array(x, "sigmoid", "x")
    cdef cnp.ndarray O = _elementwise_out(out, X, "sigmoid")
    cdef cnp.ndarray src, dst
    cdef mg_int n = cnp.PyArray_SIZE(X)
    if out is not None:
        _check_alias(O, X, "sigmoid", "x")
    if not _contiguous(X) and _contiguous_rows(X) and _contiguous(O):
        _unary_rows(True, cnp.PyArray_TYPE(X), X, O)
        return O
    src = X if _contiguous(X) else cnp.PyArray_NewCopy(X, cnp.NPY_CORDER)
    dst = O if _contiguous(O) else cnp.PyArray_NewCopy(O, cnp.NPY_CORDER)
    if n >= _NOGIL_ELEMS:
        with nogil:
            _sigmoid_call(cnp.PyArray_TYPE(X), n, cnp.PyArray_DATA(src), cnp.PyArray_DATA(dst))
    else:
        _sigmoid_call(cnp.PyArray_TYPE(X), n, cnp.PyArray_DATA(src), cnp.PyArray_DATA(dst))
    if dst is not O:
        cnp.PyArray_CopyInto(O, dst)
    return O


cdef inline void _sigmoid_backward_call(int typenum, mg_int n, const void *g, const void *y,
                                        void *o) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        mg_sigmoid_backward_f32(n, <const float *>g, <const float *>y, <float *>o)
    else:
        mg_sigmoid_backward_f64(n, <const double *>g, <const double *>y, <double *>o)


def sigmoid_backward(grad, y, out=None):
    """(grad * y) * (1 - y): the gradient through sigmoid from its saved output y (same shape and dtype as
    grad), the bits of numpy's grad * y * (1 - y); out may be grad or y itself."""
    return _backward(True, grad, y, out, "sigmoid_backward")


cdef dict _ARITH_OPS = {"add": MG_OP_ADD, "sub": MG_OP_SUB, "mul": MG_OP_MUL, "div": MG_OP_DIV}


cdef bint _whole(cnp.ndarray x, tuple shape):
    """x is C-contiguous (and aligned) with exactly ``shape``."""
    return _contiguous(x) and _shape(x) == shape


cdef bint _one_value(cnp.ndarray x):
    """x holds one value: one element, or a broadcast of one (every stride zero), aligned."""
    cdef int i
    if not cnp.PyArray_ISALIGNED(x) or cnp.PyArray_SIZE(x) == 0:
        return False
    for i in range(cnp.PyArray_NDIM(x)):
        if cnp.PyArray_DIMS(x)[i] > 1 and cnp.PyArray_STRIDES(x)[i] != 0:
            return False
    return True


def arith(op, a, b, out=None):
    """``a (op) b`` elementwise for op "add", "sub", "mul" or "div": numpy's bits (one IEEE operation per
    element), with a large array cut across the pool's threads.  a and b are float32/float64 arrays of one
    dtype whose shapes broadcast; each is C-contiguous with the result's shape or holds one value (one
    element, or every stride zero: a broadcast scalar), and at least one is C-contiguous.  Returns ``out``:
    a new C-contiguous array when None, else the given one (the result's shape and dtype, C-contiguous,
    writable), which may be a contiguous operand itself but must not otherwise share memory with a or b."""
    code = _ARITH_OPS.get(op) if type(op) is str else None
    if code is None:
        raise ValueError(f"arith: op must be one of 'add', 'sub', 'mul', 'div', got {op!r}")
    cdef cnp.ndarray A = _float_array(a, "arith", "a")
    cdef cnp.ndarray B = _float_array(b, "arith", "b")
    cdef cnp.ndarray O
    cdef int typenum = cnp.PyArray_TYPE(A), c = code, sa, sb
    cdef char *olo
    cdef char *ohi
    cdef char *xlo
    cdef char *xhi
    if cnp.PyArray_TYPE(B) != typenum:
        raise TypeError(f"arith: mixed dtypes {A.dtype} (a) and {B.dtype} (b)")
    try:
        shape = np.broadcast_shapes(_shape(A), _shape(B))
    except ValueError:
        raise ValueError(f"arith: shapes {_shape(A)} (a) and {_shape(B)} (b) do not broadcast") from None
    sa = _whole(A, shape)
    sb = _whole(B, shape)
    if not ((sa or _one_value(A)) and (sb or _one_value(B)) and (sa or sb)):
        raise ValueError(f"arith: a {_shape(A)} with strides {_strides(A)} and b {_shape(B)} with strides "
                         f"{_strides(B)}: each must be C-contiguous with the result's shape {shape} or hold one "
                         "value (one element, or every stride zero), and one of them C-contiguous")
    if out is None:
        O = np.empty(shape, dtype=A.dtype)
    else:
        O = _float_array(out, "arith", "out")
        _check_writable_out(O, A, "arith")
        if _shape(O) != shape or not _contiguous(O):
            raise ValueError(f"arith: out must be a C-contiguous array of shape {shape}, got shape "
                             f"{_shape(O)} with strides {_strides(O)}")
        _bounds(O, &olo, &ohi)
        for x, whole, name in ((A, sa, "a"), (B, sb, "b")):
            if whole and cnp.PyArray_DATA(<cnp.ndarray>x) == cnp.PyArray_DATA(O):
                continue  # in place
            _bounds(<cnp.ndarray>x, &xlo, &xhi)
            if _shares_memory(O, olo, ohi, <cnp.ndarray>x, xlo, xhi):
                raise ValueError(f"arith: out shares memory with {name}; pass {name} itself (when it is "
                                 "C-contiguous) or a separate array")
    cdef mg_int n = cnp.PyArray_SIZE(O)
    if n == 0:
        return O
    cdef const void *pa = cnp.PyArray_DATA(A)
    cdef const void *pb = cnp.PyArray_DATA(B)
    cdef void *po = cnp.PyArray_DATA(O)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            mg_arith_f32(c, n, <const float *>pa, sa, <const float *>pb, sb, <float *>po)
        else:
            mg_arith_f64(c, n, <const double *>pa, sa, <const double *>pb, sb, <double *>po)
    return O


# ops/fast.pyx's small elementwise ops call mg_arith_rows_* through this capsule (it is another extension
# module: it reaches these functions only by pointer).
cdef mg_arith_rows_api _arith_rows_api
_arith_rows_api.f32 = mg_arith_rows_f32
_arith_rows_api.f64 = mg_arith_rows_f64
arith_rows_api = PyCapsule_New(<void *>&_arith_rows_api, MG_ARITH_ROWS_CAPSULE, NULL)


# ---------------------------------------------------------------- gated cells (LSTM, GRU)

cdef enum:
    _GATE_MAX_ARGS = 8


cdef struct GateArgs:
    # the validated operands of one gated-cell call, inputs first: data, row stride (elements), byte range
    int n, n_in, typenum
    char *data[_GATE_MAX_ARGS]
    mg_int stride[_GATE_MAX_ARGS]
    char *lo[_GATE_MAX_ARGS]
    char *hi[_GATE_MAX_ARGS]


cdef cnp.ndarray _gate_arg(object obj, str fn, str name, GateArgs *g, mg_int B, mg_int W, bint out):
    """One (B, W) operand: float32/float64 of the call's dtype, rows contiguous and a non-negative number of
    elements apart (outputs: rows not overlapping each other); recorded in g."""
    cdef cnp.ndarray arr = _float_array(obj, fn, name)
    cdef int k = g.n
    cdef mg_int isz = cnp.PyArray_ITEMSIZE(arr), s0, s1
    if g.n == 0:
        g.typenum = cnp.PyArray_TYPE(arr)
    elif cnp.PyArray_TYPE(arr) != g.typenum:
        raise TypeError(f"{fn}: {name} has dtype {arr.dtype}, expected "
                        f"{'float32' if g.typenum == cnp.NPY_FLOAT32 else 'float64'} like the other operands")
    if cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_DIMS(arr)[0] != B or cnp.PyArray_DIMS(arr)[1] != W:
        raise ValueError(f"{fn}: {name} has shape {_shape(arr)}, expected {(B, W)}")
    if out and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{fn}: {name} is read-only")
    if not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{fn}: {name}'s data is not aligned to its itemsize")
    s0 = cnp.PyArray_STRIDES(arr)[0]
    s1 = cnp.PyArray_STRIDES(arr)[1]
    if B > 0 and W > 1 and s1 != isz:
        raise ValueError(f"{fn}: {name} has strides {_strides(arr)}; its rows must be contiguous")
    if W > 0 and B > 1 and (s0 < 0 or s0 % isz or (out and s0 < W * isz)):
        raise ValueError(f"{fn}: {name} has strides {_strides(arr)}; rows must lie a non-negative multiple of "
                         f"the itemsize apart{', without overlapping' if out else ''}")
    g.data[k] = <char *>cnp.PyArray_DATA(arr)
    g.stride[k] = s0 // isz if B > 1 else 0
    _bounds(arr, &g.lo[k], &g.hi[k])
    g.n += 1
    return arr


cdef int _gate_disjoint(GateArgs *g, list arrs, tuple names, str fn, int alias_out, int alias_in) except -1:
    """No output shares memory with an input or another output, except output alias_out with input alias_in
    when it is that very array (the same data and strides)."""
    cdef int o, k
    cdef cnp.ndarray a, b
    for o in range(g.n_in, g.n):
        for k in range(o):
            a = arrs[o]
            b = arrs[k]
            if (o == alias_out and k == alias_in and g.data[o] == g.data[k]
                    and cnp.PyArray_CompareLists(cnp.PyArray_STRIDES(a), cnp.PyArray_STRIDES(b), 2)):
                continue
            if _shares_memory(a, g.lo[o], g.hi[o], b, g.lo[k], g.hi[k]):
                what = "input" if k < g.n_in else "output"
                raise ValueError(f"{fn}: {names[o]} shares memory with the {what} {names[k]}; pass a separate "
                                 "array")
    return 0


cdef object _gate_out(object out, GateArgs *g, mg_int B, mg_int W):
    cdef cnp.npy_intp dims[2]
    if out is not None:
        return out
    dims[0] = B
    dims[1] = W
    return cnp.PyArray_EMPTY(2, dims, g.typenum, 0)


cdef mg_int _gate_hidden(object obj, str fn, str name, int sections):
    """H from an operand of shape (B, sections * H)."""
    cdef cnp.ndarray arr = _float_array(obj, fn, name)
    if cnp.PyArray_NDIM(arr) != 2 or cnp.PyArray_DIMS(arr)[1] % sections:
        raise ValueError(f"{fn}: {name} has shape {_shape(arr)}, expected (batch, {sections} * hidden_size)")
    return cnp.PyArray_DIMS(arr)[1] // sections


cdef void _lstm_forward_call(GateArgs *g, mg_int B, mg_int H) noexcept nogil:
    if g.typenum == cnp.NPY_FLOAT32:
        mg_lstm_forward_f32(B, H, <const float *>g.data[0], g.stride[0], <const float *>g.data[1], g.stride[1],
                            <float *>g.data[2], g.stride[2], <float *>g.data[3], g.stride[3],
                            <float *>g.data[4], g.stride[4], <float *>g.data[5], g.stride[5])
    else:
        mg_lstm_forward_f64(B, H, <const double *>g.data[0], g.stride[0], <const double *>g.data[1],
                            g.stride[1], <double *>g.data[2], g.stride[2], <double *>g.data[3], g.stride[3],
                            <double *>g.data[4], g.stride[4], <double *>g.data[5], g.stride[5])


cdef void _lstm_backward_call(GateArgs *g, mg_int B, mg_int H, char *dcp, mg_int dcs, int o) noexcept nogil:
    if g.typenum == cnp.NPY_FLOAT32:
        mg_lstm_backward_f32(B, H, <const float *>g.data[1], g.stride[1], <const float *>dcp, dcs,
                             <const float *>g.data[0], g.stride[0], <const float *>g.data[2], g.stride[2],
                             <const float *>g.data[3], g.stride[3], <float *>g.data[o], g.stride[o],
                             <float *>g.data[o + 1], g.stride[o + 1])
    else:
        mg_lstm_backward_f64(B, H, <const double *>g.data[1], g.stride[1], <const double *>dcp, dcs,
                             <const double *>g.data[0], g.stride[0], <const double *>g.data[2], g.stride[2],
                             <const double *>g.data[3], g.stride[3], <double *>g.data[o], g.stride[o],
                             <double *>g.data[o + 1], g.stride[o + 1])


cdef void _gru_forward_call(GateArgs *g, mg_int B, mg_int H) noexcept nogil:
    if g.typenum == cnp.NPY_FLOAT32:
        mg_gru_forward_f32(B, H, <const float *>g.data[0], g.stride[0], <const float *>g.data[1], g.stride[1],
                           <const float *>g.data[2], g.stride[2], <float *>g.data[3], g.stride[3],
                           <float *>g.data[4], g.stride[4])
    else:
        mg_gru_forward_f64(B, H, <const double *>g.data[0], g.stride[0], <const double *>g.data[1],
                           g.stride[1], <const double *>g.data[2], g.stride[2], <double *>g.data[3],
                           g.stride[3], <double *>g.data[4], g.stride[4])


cdef void _gru_backward_call(GateArgs *g, mg_int B, mg_int H) noexcept nogil:
    if g.typenum == cnp.NPY_FLOAT32:
        mg_gru_backward_f32(B, H, <const float *>g.data[0], g.stride[0], <const float *>g.data[1], g.stride[1],
                            <const float *>g.data[2], g.stride[2], <const float *>g.data[3], g.stride[3],
                            <float *>g.data[4], g.stride[4], <float *>g.data[5], g.stride[5],
                            <float *>g.data[6], g.stride[6])
    else:
        mg_gru_backward_f64(B, H, <const double *>g.data[0], g.stride[0], <const double *>g.data[1],
                            g.stride[1], <const double *>g.data[2], g.stride[2], <const double *>g.data[3],
                            g.stride[3], <double *>g.data[4], g.stride[4], <double *>g.data[5], g.stride[5],
                            <double *>g.data[6], g.stride[6])


def lstm_forward(gates, c_prev, act=None, c=None, tanh_c=None, h=None):
    """One LSTM step's elementwise part, torch's gate order (i, f, g, o): from the pre-activations ``gates``
    (B, 4H) and ``c_prev`` (B, H), ``act`` = [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)] (B, 4H),
    ``c`` = f*c_prev + i*g, ``tanh_c`` = tanh(c) and ``h`` = o*tanh_c (B, H); returns (act, c, tanh_c, h).

    Bitwise the plain ops on the current path (the sigmoid and tanh kernels, numpy's products and sums).
    Outputs are new arrays or the given ones; every operand has contiguous rows any distance apart (``h`` may
    be a step of a layer's output), one dtype; outputs share no memory with inputs or each other, except that
    ``act`` may be ``gates`` itself."""
    cdef GateArgs g
    cdef mg_int H = _gate_hidden(gates, "lstm_forward", "gates", 4), B
    B = cnp.PyArray_DIMS(<cnp.ndarray>gates)[0]
    g.n = 0
    names = ("gates", "c_prev", "act", "c", "tanh_c", "h")
    arrs = [_gate_arg(gates, "lstm_forward", "gates", &g, B, 4 * H, False),
            _gate_arg(c_prev, "lstm_forward", "c_prev", &g, B, H, False)]
    g.n_in = 2
    act = _gate_out(act, &g, B, 4 * H)
    c = _gate_out(c, &g, B, H)
    tanh_c = _gate_out(tanh_c, &g, B, H)
    h = _gate_out(h, &g, B, H)
    arrs += [_gate_arg(act, "lstm_forward", "act", &g, B, 4 * H, True),
             _gate_arg(c, "lstm_forward", "c", &g, B, H, True),
             _gate_arg(tanh_c, "lstm_forward", "tanh_c", &g, B, H, True),
             _gate_arg(h, "lstm_forward", "h", &g, B, H, True)]
    _gate_disjoint(&g, arrs, names, "lstm_forward", 2, 0)
    if 4 * B * H >= _NOGIL_ELEMS:
        with nogil:
            _lstm_forward_call(&g, B, H)
    else:
        _lstm_forward_call(&g, B, H)
    return act, c, tanh_c, h


def lstm_backward(dh, dc, act, c_prev, tanh_c, d_gates=None, dc_prev=None):
    """The gradient through lstm_forward: from ``dh`` and ``dc`` (B, H; ``dc`` None when no gradient reaches
    c from later steps) and the saved ``act`` (B, 4H), ``c_prev`` and ``tanh_c`` (B, H), the pre-activation
    gradient ``d_gates`` (B, 4H) and ``dc_prev`` (B, H); returns (d_gates, dc_prev).  With
    dct = dc + tanh_backward(dh*o, tanh_c): d_gates = [sigmoid_backward(dct*g, i),
    sigmoid_backward(dct*c_prev, f), tanh_backward(dct*i, g), sigmoid_backward(dh*tanh_c, o)] and
    dc_prev = dct*f, bitwise the plain ops' gradients on the current path.  Operands as lstm_forward's; the
    outputs share no memory with anything."""
    cdef GateArgs g
    cdef mg_int H = _gate_hidden(act, "lstm_backward", "act", 4), B
    cdef bint has_dc = dc is not None
    B = cnp.PyArray_DIMS(<cnp.ndarray>act)[0]
    g.n = 0
    arrs = [_gate_arg(act, "lstm_backward", "act", &g, B, 4 * H, False),
            _gate_arg(dh, "lstm_backward", "dh", &g, B, H, False),
            _gate_arg(c_prev, "lstm_backward", "c_prev", &g, B, H, False),
            _gate_arg(tanh_c, "lstm_backward", "tanh_c", &g, B, H, False)]
    names = ["act", "dh", "c_prev", "tanh_c"]
    if has_dc:
        arrs.append(_gate_arg(dc, "lstm_backward", "dc", &g, B, H, False))
        names.append("dc")
    g.n_in = g.n
    d_gates = _gate_out(d_gates, &g, B, 4 * H)
    dc_prev = _gate_out(dc_prev, &g, B, H)
    arrs += [_gate_arg(d_gates, "lstm_backward", "d_gates", &g, B, 4 * H, True),
             _gate_arg(dc_prev, "lstm_backward", "dc_prev", &g, B, H, True)]
    names += ["d_gates", "dc_prev"]
    _gate_disjoint(&g, arrs, tuple(names), "lstm_backward", -1, -1)
    cdef int o = g.n_in
    cdef char *dcp = g.data[4] if has_dc else NULL
    cdef mg_int dcs = g.stride[4] if has_dc else 0
    if 4 * B * H >= _NOGIL_ELEMS:
        with nogil:
            _lstm_backward_call(&g, B, H, dcp, dcs, o)
    else:
        _lstm_backward_call(&g, B, H, dcp, dcs, o)
    return d_gates, dc_prev


def gru_forward(xg, hg, h_prev, act=None, h=None):
    """One GRU step's elementwise part, torch's gate order (r, z, n): from the input gates ``xg`` (B, 3H,
    incl. b_ih), the hidden gates ``hg`` (B, 3H, incl. b_hh) and ``h_prev`` (B, H), ``act`` = [r, z, n]
    (B, 3H) with r = sigmoid(xg_r + hg_r), z = sigmoid(xg_z + hg_z), n = tanh(xg_n + r*hg_n), and
    ``h`` = (1 - z)*n + z*h_prev (B, H); returns (act, h).  Bitwise the plain ops on the current path;
    operands as lstm_forward's; the outputs share no memory with anything."""
    cdef GateArgs g
    cdef mg_int H = _gate_hidden(xg, "gru_forward", "xg", 3), B
    B = cnp.PyArray_DIMS(<cnp.ndarray>xg)[0]
    g.n = 0
    names = ("xg", "hg", "h_prev", "act", "h")
    arrs = [_gate_arg(xg, "gru_forward", "xg", &g, B, 3 * H, False),
            _gate_arg(hg, "gru_forward", "hg", &g, B, 3 * H, False),
            _gate_arg(h_prev, "gru_forward", "h_prev", &g, B, H, False)]
    g.n_in = 3
    act = _gate_out(act, &g, B, 3 * H)
    h = _gate_out(h, &g, B, H)
    arrs += [_gate_arg(act, "gru_forward", "act", &g, B, 3 * H, True),
             _gate_arg(h, "gru_forward", "h", &g, B, H, True)]
    _gate_disjoint(&g, arrs, names, "gru_forward", -1, -1)
    if 4 * B * H >= _NOGIL_ELEMS:
        with nogil:
            _gru_forward_call(&g, B, H)
    else:
        _gru_forward_call(&g, B, H)
    return act, h


def gru_backward(dh, act, hn, h_prev, d_xg=None, d_hg=None, dh_prev=None):
    """The gradient through gru_forward: from ``dh`` (B, H), the saved ``act`` (B, 3H), ``hn`` (B, H: hg's n
    section, e.g. ``hg[:, 2H:]``) and ``h_prev`` (B, H), the gradients ``d_xg`` and ``d_hg`` (B, 3H) of the
    input and hidden gates and ``dh_prev`` (B, H), the direct path's share of h_prev's gradient (the share
    through hg is the caller's product with W_hh); returns (d_xg, d_hg, dh_prev).  With
    dn = tanh_backward(dh*(1 - z), n): d_xg = [sigmoid_backward(dn*hn, r), sigmoid_backward(dh*h_prev - dh*n,
    z), dn], d_hg = [the same r and z sections, dn*r], dh_prev = dh*z, bitwise the plain ops' gradients on
    the current path.  Operands as lstm_forward's; the outputs share no memory with anything."""
    cdef GateArgs g
    cdef mg_int H = _gate_hidden(act, "gru_backward", "act", 3), B
    B = cnp.PyArray_DIMS(<cnp.ndarray>act)[0]
    g.n = 0
    names = ("dh", "act", "hn", "h_prev", "d_xg", "d_hg", "dh_prev")
    arrs = [_gate_arg(dh, "gru_backward", "dh", &g, B, H, False),
            _gate_arg(act, "gru_backward", "act", &g, B, 3 * H, False),
            _gate_arg(hn, "gru_backward", "hn", &g, B, H, False),
            _gate_arg(h_prev, "gru_backward", "h_prev", &g, B, H, False)]
    g.n_in = 4
    d_xg = _gate_out(d_xg, &g, B, 3 * H)
    d_hg = _gate_out(d_hg, &g, B, 3 * H)
    dh_prev = _gate_out(dh_prev, &g, B, H)
    arrs += [_gate_arg(d_xg, "gru_backward", "d_xg", &g, B, 3 * H, True),
             _gate_arg(d_hg, "gru_backward", "d_hg", &g, B, 3 * H, True),
             _gate_arg(dh_prev, "gru_backward", "dh_prev", &g, B, H, True)]
    _gate_disjoint(&g, arrs, names, "gru_backward", -1, -1)
    if 4 * B * H >= _NOGIL_ELEMS:
        with nogil:
            _gru_backward_call(&g, B, H)
    else:
        _gru_backward_call(&g, B, H)
    return d_xg, d_hg, dh_prev


# ---------------------------------------------------------------- squared error

def sub_sqsum(x, t):
    """``(x - t, sum((x - t)**2))`` in one pass: the difference as a new C-contiguous array of x's shape and
    dtype, the sum as a Python float accumulated in double precision (for float32 too), in an order that
    does not depend on the thread count.  x and t: float32 or float64 arrays of one shape and dtype.  The
    forward of mse_loss with reduction 'mean' or 'sum'."""
    cdef cnp.ndarray X = _float_array(x, "sub_sqsum", "x")
    cdef cnp.ndarray T = _float_array(t, "sub_sqsum", "t")
    cdef int nd = cnp.PyArray_NDIM(X), rc
    cdef double total = 0
    _check_pair(X, T, "sub_sqsum", "x", "t")
    cdef cnp.ndarray xs = X if _contiguous(X) else cnp.PyArray_NewCopy(X, cnp.NPY_CORDER)
    cdef cnp.ndarray ts = T if _contiguous(T) else cnp.PyArray_NewCopy(T, cnp.NPY_CORDER)
    cdef cnp.ndarray D = cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(X), cnp.PyArray_TYPE(X), 0)
    cdef mg_int n = cnp.PyArray_SIZE(X)
    with nogil:
        if cnp.PyArray_TYPE(X) == cnp.NPY_FLOAT32:
            rc = mg_sub_sqsum_f32(n, <const float *>cnp.PyArray_DATA(xs), <const float *>cnp.PyArray_DATA(ts),
                                  <float *>cnp.PyArray_DATA(D), &total)
        else:
            rc = mg_sub_sqsum_f64(n, <const double *>cnp.PyArray_DATA(xs),
                                  <const double *>cnp.PyArray_DATA(ts), <double *>cnp.PyArray_DATA(D), &total)
    if rc:
        raise MemoryError("sub_sqsum: could not allocate the partial sums")
    return D, total


# ---------------------------------------------------------------- column sums

def sum_rows(a):
    """``a.sum(axis=0)`` of a 2-D float32 or float64 array ``a`` (M, N), as a new (N,) array of a's dtype:
    the gradient of a bias broadcast down M rows.  Each column is summed in a fixed order -- blocks of 16 rows
    in the element type, their sums in double precision -- so the bits do not depend on the thread count or
    the kernel path; a float32 column carries about as much rounding error as numpy's pairwise sum.  Rows may
    lie any distance apart; columns that are not contiguous, and data not aligned to its itemsize, are copied
    first."""
    cdef cnp.ndarray A = _float_array(a, "sum_rows", "a")
    if cnp.PyArray_NDIM(A) != 2:
        raise ValueError(f"sum_rows: a must be 2-D (rows, cols), got shape {_shape(A)}")
    cdef mg_int itemsize = cnp.PyArray_ITEMSIZE(A)
    cdef mg_int M = cnp.PyArray_DIMS(A)[0], N = cnp.PyArray_DIMS(A)[1]
    cdef mg_int sm = cnp.PyArray_STRIDES(A)[0], sn = cnp.PyArray_STRIDES(A)[1]
    if N > 1 and sn != itemsize or M > 1 and (sm % itemsize or sm < 0) or not cnp.PyArray_ISALIGNED(A):
        A = cnp.PyArray_NewCopy(A, cnp.NPY_CORDER)
        sm = N * itemsize
    cdef mg_int sam = sm // itemsize if M > 1 else N
    cdef cnp.npy_intp dims[1]
    dims[0] = N
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, dims, cnp.PyArray_TYPE(A), 0)
    with nogil:
        if cnp.PyArray_TYPE(A) == cnp.NPY_FLOAT32:
            mg_sum_rows_f32(M, N, <const float *>cnp.PyArray_DATA(A), sam, <float *>cnp.PyArray_DATA(out))
        else:
            mg_sum_rows_f64(M, N, <const double *>cnp.PyArray_DATA(A), sam, <double *>cnp.PyArray_DATA(out))
    return out


# ---------------------------------------------------------------- kernel path and threads

def isa():
    """Name of the kernel path in use: 'avx512', 'avx2' or 'portable'."""
    return _ISA_NAMES[mg_get_isa()]


def available_isas():
    """Kernel paths this CPU supports, fastest first."""
    return [_ISA_NAMES[i] for i in range(MG_ISA_COUNT - 1, -1, -1) if mg_isa_supported(i)]


def set_isa(name):
    """Force a kernel path, process-wide: ValueError for an unknown name, RuntimeError if the CPU lacks it."""
    if not isinstance(name, str):
        raise TypeError(f"set_isa: expected a str, got {type(name).__name__}")
    if name not in _ISA_NAMES:
        raise ValueError(f"set_isa: unknown kernel path {name!r}; expected one of {', '.join(_ISA_NAMES)}")
    if mg_set_isa(_ISA_NAMES.index(name)):
        raise RuntimeError(f"set_isa: this CPU does not support {name!r}; "
                           f"available: {', '.join(available_isas())}")


def openmp():
    """True when the kernels can use several threads (minigrad's own thread pool; the name is historical)."""
    return bool(mg_openmp())


def get_num_threads():
    """Threads the kernels use for large calls (always 1 without thread support)."""
    return mg_get_num_threads()


def set_num_threads(n):
    """Threads for minigrad's kernels only (its own pool: numpy's, torch's and OpenMP settings are untouched).

    At most 64.  A large call is cut into tasks that the calling thread and up to n - 1 pool threads claim;
    the caller never waits for a pool thread that has not started yet, so on a busy machine a call is at
    worst about as fast as on one thread.  Results are bitwise identical for any n.
    """
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    n = n.__index__()
    if not 1 <= n <= 1 << 16:
        raise ValueError(f"set_num_threads: expected 1 <= n <= 65536, got {n}")
    # values above the pool's limit are clamped to it
    mg_set_num_threads(n)


# ---------------------------------------------------------------- caching allocator for numpy buffers

cdef extern from *:
    """
    static PyDataMem_Handler mg_cache_handler = {
        "minigrad_cache", 1,
        {NULL, mg_cache_malloc, mg_cache_calloc, mg_cache_realloc, mg_cache_free}
    };
    static PyObject *mg_cache_capsule(void)
    {
        return PyCapsule_New(&mg_cache_handler, "mem_handler", NULL);
    }
    """
    object mg_cache_capsule()
    object PyDataMem_SetHandler(object handler)


def install_allocator():
    """Make numpy allocate array data through minigrad's caching allocator in the current thread's context
    (numpy keeps its allocator in a context variable: other threads keep numpy's default).  An array always
    returns its memory to the allocator that made it, so switching back and forth is safe."""
    PyDataMem_SetHandler(mg_cache_capsule())


def allocator_installed():
    """True when numpy allocates through minigrad's caching allocator in the current context."""
    try:
        from numpy._core.multiarray import get_handler_name
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import get_handler_name
    return get_handler_name() == "minigrad_cache"


def cache_stats():
    """The caching allocator's counters: idle bytes and blocks kept for reuse, the idle limit, and the
    cached-size allocations served from the cache (hits) or from malloc (misses)."""
    cdef size_t idle, blocks, limit
    cdef unsigned long long hits, misses
    mg_cache_stats(&idle, &blocks, &limit, &hits, &misses)
    return {"idle_bytes": idle, "idle_blocks": blocks, "limit_bytes": limit, "hits": hits,
            "misses": misses}


def empty_cache():
    """Return every idle cached block to the system allocator."""
    mg_cache_empty()


def set_cache_limit(nbytes):
    """Keep at most nbytes of freed blocks for reuse (0: keep none; excess idle blocks are freed now)."""
    if isinstance(nbytes, bool) or not hasattr(nbytes, "__index__"):
        raise TypeError(f"set_cache_limit: expected an int number of bytes, got {type(nbytes).__name__}")
    nbytes = nbytes.__index__()
    if nbytes < 0:
        raise ValueError(f"set_cache_limit: expected a non-negative number of bytes, got {nbytes}")
    mg_cache_set_limit(<size_t>min(nbytes, 1 << 62))
