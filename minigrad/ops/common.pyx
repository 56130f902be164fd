"""Helpers every op module shares: operand conversion, dtype promotion, and summing broadcast gradients."""
cimport numpy as cnp
import numpy as np

from minigrad.ops.fast cimport scalar_array
from minigrad.tensor cimport Tensor, grad_edge, wrap, zero_dim_side
from minigrad.tensor import as_float_array

cnp.import_array()


cdef object unbroadcast(object grad, tuple shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, so it gets back ``shape``."""
    if grad.shape == shape:
        return grad
    cdef int lead = grad.ndim - len(shape)
    axes = list(range(lead))
    for i, n in enumerate(shape):
        if n == 1 and grad.shape[lead + i] != 1:
            axes.append(lead + i)
    if axes:
        grad = grad.sum(axis=tuple(axes))
    return grad.reshape(shape)


cdef Tensor as_tensor(object x, object dtype=None):
    """``x`` itself if it is a Tensor, else a constant tensor made from it (``dtype`` for non-float data)."""
    if isinstance(x, Tensor):
        return <Tensor>x
    if isinstance(x, (bool, int, float)) and dtype is not None:
        return wrap(np.array(x, dtype=dtype))
    if isinstance(x, (list, tuple, bool, int, float)):
        # Python data is weak like a Python scalar: the other operand's dtype, else the default dtype
        return wrap(as_float_array(x, dtype))
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if dtype is not None and arr.dtype.kind in "biu":
        return wrap(arr.astype(dtype))
    return wrap(as_float_array(arr, None if arr.dtype.kind == "f" else dtype))


cdef tuple operands(object a, object b, bint promote=True):
    """Both operands of a binary op as Tensors.

    Python scalars and integer arrays take the other operand's dtype (they are "weak", as in torch); float32
    and float64 tensors together promote to float64, like torch, except that a 0-d tensor (or array) takes
    the dtype of a dimensioned one (torch's rule; see ``zero_dim_side``).  ``promote=False`` leaves both
    dtypes as they are, for an op that refuses mixed dtypes.
    """
    cdef Tensor ta, tb
    if isinstance(a, Tensor):
        ta = <Tensor>a
        if type(b) is float or type(b) is int:
            return ta, wrap(scalar_array(b, ta._data))
        tb = as_tensor(b, ta._data.dtype)
    elif isinstance(b, Tensor):
        tb = <Tensor>b
        if type(a) is float or type(a) is int:
            return wrap(scalar_array(a, tb._data)), tb
        ta = as_tensor(a, tb._data.dtype)
    else:
        raise TypeError("expected at least one minigrad Tensor, got %s and %s"
                        % (type(a).__name__, type(b).__name__))
    # (a tensor's array is always a native float32/float64 ndarray: the type numbers compare its dtype)
    if promote and cnp.PyArray_TYPE(<cnp.ndarray>ta._data) != cnp.PyArray_TYPE(<cnp.ndarray>tb._data):
        side = zero_dim_side(ta._data, tb._data)
        if side == 0:
            ta = _cast_operand(ta, tb._data.dtype)
        elif side == 1:
            tb = _cast_operand(tb, ta._data.dtype)
    return ta, tb


cdef Tensor _cast_operand(Tensor t, object dtype):
    """``t``'s values in ``dtype`` as the operand an op computes with, on ``t``'s own graph edge: its
    gradient reaches ``t`` (``t``'s node, or its leaf accumulator), cast back to ``t``'s dtype by the engine.
    The op sees the cast values only, as torch computes in the result's dtype."""
    cdef Tensor c = wrap(t._data.astype(dtype))
    c._requires_grad = t._requires_grad
    c._grad_fn = t._grad_fn
    c._output_nr = t._output_nr
    if t._requires_grad and t._grad_fn is None:
        grad_edge(t)  # makes t's accumulator, which c then shares
        c._accumulator = t._accumulator
    return c


cdef int norm_dim(object dim, int ndim) except -1:
    """A dimension index in [0, ndim) (negative counts from the end), or IndexError like torch."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError("dim must be an int, got %s" % type(dim).__name__)
    cdef int d = dim
    cdef int n = ndim if ndim > 0 else 1
    if d < -n or d >= n:
        raise IndexError("Dimension out of range (expected to be in range of [%d, %d], but got %d)"
                         % (-n, n - 1, d))
    return d + n if d < 0 else d


cdef tuple norm_dims(object dims, int ndim):
    """Sorted unique dimension indices; None means all dimensions."""
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, (int, np.integer)):
        dims = (dims,)
    elif not isinstance(dims, (tuple, list)):
        raise TypeError("dim must be an int or a tuple of ints, got %s" % type(dims).__name__)
    out = sorted(set(norm_dim(d, ndim) for d in dims))
    if len(out) != len(tuple(dims)):
        raise ValueError("dim %s has a repeated dimension" % (tuple(dims),))
    return tuple(out)
