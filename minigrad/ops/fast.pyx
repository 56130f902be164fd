"""Fast paths for elementwise ops: small ones without numpy's dispatch, large ones on several threads.

numpy spends ~0.3-0.5 µs dispatching a ufunc before touching the data, which is most of an op's time on the
small tensors of an RNN step or a scalar expression.  These loops handle the common simple cases -- two
arrays of the same float dtype with equal shapes, or one of them holding a single element, or one of them a
row broadcast to every row of the other (a bias); each C-contiguous or, in 2-D, with contiguous rows any
distance apart (a chunk of an LSTM's gates) -- and return None for everything else, which then takes the
general numpy path.  Results are bitwise equal to numpy's (one IEEE operation per element).

The loop itself is the compiled kernels' (``mg_arith_rows_*`` in _ext/arith.c, reached through the capsule
``K.arith_rows_api``), on the CPU's widest vector path, at any size: Cython compiles this module for the
baseline x86-64 (SSE2).  Measured on a Zen 4 (AVX-512), one op at a time, alternating processes with
the build before (which sent ops past 16,384 elements to numpy): on (64, 512) tensors float32 x * y 6.7 ->
3.9 µs, x + a bias row 7.7-9.8 -> 2.9 µs, the product of two chunks of a (64, 2048) matrix 12.3-15.8 ->
4.0 µs; float64 10.7-12.8 -> 9.0-9.4, 14.2-16.3 -> 7.0-7.5 and 23.7-25.4 -> 8.1-9.0 µs.  (32, 128) ops
were within the noise of before (0.6-1.5 µs either way).  With the NumPy reference backend (no kernels)
the Cython loops below run instead, up to 16,384 elements.

At the other end, from 512 KiB an operand (LARGE_BYTES), numpy's ufunc runs on one thread where torch uses
all of its own: such an op, with each operand contiguous or one value (a scalar, or a gradient broadcast
from one, as a sum's backward hands on), runs on the pool's threads instead (K.arith, the same bits).  A loss
such as ``(out * w).sum()`` over an RNN's whole output, and its backward, is two of them per training step.
"""
cimport cython
cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer

# _ext/kernels.pxd (on every extension's include path): the kernels module's C declarations
from kernels cimport MG_ARITH_ROWS_CAPSULE, mg_arith_rows_api

from minigrad import _backend as K

cnp.import_array()

# The compiled kernels' row loop (arith.c, on the CPU's widest vector path), or NULL with the NumPy
# reference backend: the loops below, compiled for the baseline x86-64 (SSE2), then do the work.
cdef const mg_arith_rows_api *_kernel_rows = NULL
if K.arith_rows_api is not None:
    _kernel_rows = <const mg_arith_rows_api *>PyCapsule_GetPointer(K.arith_rows_api, MG_ARITH_ROWS_CAPSULE)

# Without the kernels' loop: past this size numpy's vectorised loops win over the Cython loops below and its
# dispatch cost no longer matters (at 16384 elements, an LSTM's (32, 512) gates, these loops still take
# half the time of numpy's path with its errstate).
DEF FAST_MAX = 16384
# From this many bytes an operand's op runs on the pool's threads (K.arith, the same bits): numpy's ufunc
# uses one.  Measured, two threads against numpy, float32 x * y: 262,144 elements 20.7 against 32.5 us,
# 4M elements 0.93 against 1.62 ms; float64 65,536 elements 10.6 against 16.7 us (at 256 KiB, float32
# 65,536 elements, it was about even).
DEF LARGE_BYTES = 512 * 1024


cdef inline bint _plain(object a, int typenum):
    # the type number ignores byte order: a swapped (or misaligned) array must take numpy's path, even
    # though tensors never hold one (as_float_array converts them)
    return (type(a) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray>a))


cdef inline cnp.npy_intp _row_stride(cnp.ndarray a, cnp.npy_intp cols):
    """The distance in elements between the rows of ``a`` taken as rows of ``cols`` contiguous elements:
    ``cols`` for a C-contiguous array, the row stride of a 2-D array whose rows are contiguous (a chunk of a
    wider matrix: an LSTM's gates), else -1 (numpy's path)."""
    if cnp.PyArray_IS_C_CONTIGUOUS(a):
        return cols
    cdef cnp.npy_intp item = cnp.PyArray_ITEMSIZE(a)
    if (cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_STRIDES(a)[1] == item and cnp.PyArray_STRIDES(a)[0] >= 0
            and cnp.PyArray_STRIDES(a)[0] % item == 0):
        return cnp.PyArray_STRIDES(a)[0] // item
    return -1


cdef tuple _ARITH_NAMES = ("add", "sub", "mul", "div")


cdef object _large(int op, cnp.ndarray A, cnp.ndarray B):
    """A large ``A (op) B`` on the pool's threads (K.arith) when each operand is contiguous or one value,
    else None (numpy's single-threaded ufunc)."""
    if K.get_num_threads() < 2:
        return None
    try:
        return K.arith(_ARITH_NAMES[op], A, B)
    except ValueError:  # another layout (the kernel's rules refuse it before any work): numpy's path
        return None


cdef object binary(int op, object a, object b):
    """``a (op) b`` for the simple case, else None."""
    if type(a) is not cnp.ndarray:
        return None
    cdef cnp.ndarray A = <cnp.ndarray>a
    cdef int typenum = cnp.PyArray_TYPE(A)
    if typenum != cnp.NPY_FLOAT64 and typenum != cnp.NPY_FLOAT32:
        return None
    if not (_plain(a, typenum) and _plain(b, typenum)):
        return None
    cdef cnp.ndarray B = <cnp.ndarray>b
    cdef int nda = cnp.PyArray_NDIM(A), ndb = cnp.PyArray_NDIM(B)
    cdef cnp.ndarray shape_src
    # Operands as rows of `cols` elements: element stride 1 (0 for a scalar), row stride in elements (0 for
    # a scalar or for one row broadcast to every row: a bias).
    cdef cnp.npy_intp ea = 1, eb = 1, ra, rb
    cdef bint row_a = False, row_b = False
    if nda == ndb and cnp.PyArray_CompareLists(cnp.PyArray_DIMS(A), cnp.PyArray_DIMS(B), nda):
        shape_src = A
    elif ndb == 0:
        shape_src, eb = A, 0
    elif nda == 0:
        shape_src, ea = B, 0
    elif ndb == 1 and cnp.PyArray_DIMS(B)[0] == cnp.PyArray_DIMS(A)[nda - 1]:
        shape_src, row_b = A, True
    elif nda == 1 and cnp.PyArray_DIMS(A)[0] == cnp.PyArray_DIMS(B)[ndb - 1]:
        shape_src, row_a = B, True
    else:
        return None
    cdef int nd = cnp.PyArray_NDIM(shape_src)
    cdef cnp.npy_intp n = cnp.PyArray_SIZE(shape_src)
    if not (row_a or row_b) and n * cnp.PyArray_ITEMSIZE(A) >= LARGE_BYTES:
        out = _large(op, A, B)
        if out is not None or _kernel_rows == NULL:
            return out
    if n == 0 or (n > FAST_MAX and _kernel_rows == NULL):
        return None
    cdef cnp.npy_intp cols = cnp.PyArray_DIMS(shape_src)[nd - 1] if nd else 1
    cdef cnp.npy_intp rows = n // cols
    ra = 0 if ea == 0 or row_a else _row_stride(A, cols)
    rb = 0 if eb == 0 or row_b else _row_stride(B, cols)
    if ra < 0 or rb < 0 or (row_a and not cnp.PyArray_IS_C_CONTIGUOUS(A)) \
            or (row_b and not cnp.PyArray_IS_C_CONTIGUOUS(B)):
        return None
    if ra == cols and rb == cols or ra == cols and eb == 0 or ea == 0 and rb == cols:
        cols, rows = n, 1  # contiguous throughout: one run, the longest loop
    out = cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(shape_src), typenum, 0)
    if _kernel_rows != NULL:
        if typenum == cnp.NPY_FLOAT64:
            _kernel_rows.f64(op, rows, cols, <double*>cnp.PyArray_DATA(A), ra, ea, <double*>cnp.PyArray_DATA(B),
                             rb, eb, <double*>cnp.PyArray_DATA(out))
        else:
            _kernel_rows.f32(op, rows, cols, <float*>cnp.PyArray_DATA(A), ra, ea, <float*>cnp.PyArray_DATA(B),
                             rb, eb, <float*>cnp.PyArray_DATA(out))
        return out
    if typenum == cnp.NPY_FLOAT64:
        _rows(op, rows, cols, <double*>cnp.PyArray_DATA(A), ra, ea, <double*>cnp.PyArray_DATA(B), rb, eb,
              <double*>cnp.PyArray_DATA(out))
    else:
        _rows(op, rows, cols, <float*>cnp.PyArray_DATA(A), ra, ea, <float*>cnp.PyArray_DATA(B), rb, eb,
              <float*>cnp.PyArray_DATA(out))
    return out


ctypedef fused real:
    float
    double


@cython.cdivision(True)  # IEEE division: x / 0 is inf or nan, as in numpy, never a Python exception
cdef inline real _apply(int op, real x, real y) noexcept nogil:
    if op == OP_ADD:
        return x + y
    if op == OP_SUB:
        return x - y
    if op == OP_MUL:
        return x * y
    return x / y


cdef void _rows(int op, cnp.npy_intp rows, cnp.npy_intp cols, real* a, cnp.npy_intp ra, cnp.npy_intp ea,
                real* b, cnp.npy_intp rb, cnp.npy_intp eb, real* out) noexcept nogil:
    cdef cnp.npy_intp r
    for r in range(rows):
        _loop(op, cols, a + r * ra, ea, b + r * rb, eb, out + r * cols)


cdef void _loop(int op, cnp.npy_intp n, real* a, cnp.npy_intp sa, real* b, cnp.npy_intp sb,
                real* out) noexcept nogil:
    # Unit strides and a hoisted scalar let the C compiler vectorise (and unswitch on op) each loop.
    cdef cnp.npy_intp i
    cdef real s
    if sa == 1 and sb == 1:
        for i in range(n):
            out[i] = _apply(op, a[i], b[i])
    elif sb == 1:
        s = a[0]
        for i in range(n):
            out[i] = _apply(op, s, b[i])
    else:
        s = b[0]
        for i in range(n):
            out[i] = _apply(op, a[i], s)


cdef object scalar_array(double value, object like):
    """A 0-d array holding ``value`` in the dtype of the array ``like`` (a Python scalar operand)."""
    cdef cnp.ndarray L = <cnp.ndarray>like
    cdef int typenum = cnp.PyArray_TYPE(L)
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(0, NULL, typenum, 0)
    if typenum == cnp.NPY_FLOAT32:
        (<float*>cnp.PyArray_DATA(out))[0] = <float>value
    else:
        (<double*>cnp.PyArray_DATA(out))[0] = value
    return out
