"""Fast paths for small elementwise ops.

numpy spends ~0.3-0.5 µs dispatching a ufunc before touching the data, which is most of an op's time on the
small tensors of an RNN step or a scalar expression.  These loops handle the common simple case -- two
C-contiguous arrays of the same float dtype with equal shapes, or one of them holding a single element --
and return None for everything else, which then takes the general numpy path.  Results are bitwise equal to
numpy's (one IEEE operation per element).
"""
cimport cython
cimport numpy as cnp

cnp.import_array()

# Past this size numpy's vectorised loops win and its dispatch cost no longer matters.
DEF FAST_MAX = 4096


cdef inline bint _plain(object a, int typenum):
    # the type number ignores byte order: a swapped (or misaligned) array must take numpy's path, even
    # though tensors never hold one (as_float_array converts them)
    return (type(a) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray>a))


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
    cdef cnp.npy_intp na = cnp.PyArray_SIZE(A), nb = cnp.PyArray_SIZE(B)
    cdef int nda = cnp.PyArray_NDIM(A), ndb = cnp.PyArray_NDIM(B)
    cdef cnp.ndarray shape_src
    # equal shapes, or one side 0-d (a scalar): the result has the other side's shape
    if nda == ndb and cnp.PyArray_CompareLists(cnp.PyArray_DIMS(A), cnp.PyArray_DIMS(B), nda):
        shape_src = A
    elif ndb == 0:
        shape_src = A
    elif nda == 0:
        shape_src = B
    else:
        return None
    cdef cnp.npy_intp n = cnp.PyArray_SIZE(shape_src)
    if n > FAST_MAX:
        return None
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(shape_src), cnp.PyArray_DIMS(shape_src),
                                             typenum, 0)
    cdef cnp.npy_intp sa = 1 if na == n else 0, sb = 1 if nb == n else 0
    if typenum == cnp.NPY_FLOAT64:
        _loop(op, n, <double*>cnp.PyArray_DATA(A), sa, <double*>cnp.PyArray_DATA(B), sb,
              <double*>cnp.PyArray_DATA(out))
    else:
        _loop(op, n, <float*>cnp.PyArray_DATA(A), sa, <float*>cnp.PyArray_DATA(B), sb,
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
