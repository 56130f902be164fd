"""Comparisons, logical and bitwise ops, floor division and the nan tests: never differentiable.

Comparisons and tests give bool tensors; both operands are first brought to ``torch.result_type``'s dtype
(``operands``), so an int tensor compares with 1.5 in float and a float32 tensor with a 0-d float64 one in
float32, as torch does.
"""
import numpy as np

from minigrad.ops.common cimport as_tensor, is_float, operands
from minigrad.tensor cimport Tensor, wrap


cdef object _pair(object a, object b):
    cdef Tensor x, y
    x, y = operands(a, b)
    return x._data, y._data


cdef object _broadcast_error(str name, object a, object b):
    return ValueError("%s: shapes %s and %s cannot be broadcast together" % (name, np.shape(a), np.shape(b)))


cdef Tensor _compare(object ufunc, str name, object a, object b):
    x, y = _pair(a, b)
    try:
        return wrap(ufunc(x, y))
    except ValueError:
        raise _broadcast_error(name, x, y) from None


def eq(a, b):
    """a == b elementwise (bool tensor)."""
    return _compare(np.equal, "eq", a, b)


def ne(a, b):
    """a != b elementwise (bool tensor)."""
    return _compare(np.not_equal, "ne", a, b)


def lt(a, b):
    """a < b elementwise (bool tensor)."""
    return _compare(np.less, "lt", a, b)


def le(a, b):
    """a <= b elementwise (bool tensor)."""
    return _compare(np.less_equal, "le", a, b)


def gt(a, b):
    """a > b elementwise (bool tensor)."""
    return _compare(np.greater, "gt", a, b)


def ge(a, b):
    """a >= b elementwise (bool tensor)."""
    return _compare(np.greater_equal, "ge", a, b)


# ---- bitwise (integers and bools) and logical (any dtype, nonzero is true) --------------------------------
cdef Tensor _bitwise(object ufunc, str name, object a, object b):
    x, y = _pair(a, b)
    if x.dtype.kind == "f":
        # torch's error: no bitwise ops on floats
        raise NotImplementedError('"%s_cpu" not implemented for \'%s\'' % (name, _torch_name(x.dtype)))
    try:
        return wrap(ufunc(x, y))
    except ValueError:
        raise _broadcast_error(name, x, y) from None


cdef str _torch_name(object dtype):
    return {"float32": "Float", "float64": "Double", "int32": "Int", "int64": "Long",
            "bool": "Bool"}[dtype.name]


def bitwise_and(a, b):
    """a & b: logical and for bool tensors, bitwise and for integer tensors."""
    return _bitwise(np.bitwise_and, "bitwise_and", a, b)


def bitwise_or(a, b):
    """a | b: logical or for bool tensors, bitwise or for integer tensors."""
    return _bitwise(np.bitwise_or, "bitwise_or", a, b)


def bitwise_xor(a, b):
    """a ^ b: logical xor for bool tensors, bitwise xor for integer tensors."""
    return _bitwise(np.bitwise_xor, "bitwise_xor", a, b)


def bitwise_not(x):
    """~x: logical not for bool tensors, bitwise not for integer tensors."""
    cdef Tensor t = as_tensor(x)
    if is_float(t):
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return wrap(np.invert(t._data))


cdef Tensor _logical(object ufunc, str name, object a, object b):
    cdef Tensor x = as_tensor(a), y = as_tensor(b)
    try:
        return wrap(ufunc(x._data, y._data))
    except ValueError:
        raise _broadcast_error(name, x._data, y._data) from None


def logical_and(a, b):
    """Elementwise ``a and b`` (nonzero counts as true); bool tensor."""
    return _logical(np.logical_and, "logical_and", a, b)


def logical_or(a, b):
    """Elementwise ``a or b`` (nonzero counts as true); bool tensor."""
    return _logical(np.logical_or, "logical_or", a, b)


def logical_xor(a, b):
    """Elementwise ``bool(a) != bool(b)``; bool tensor."""
    return _logical(np.logical_xor, "logical_xor", a, b)


def logical_not(x):
    """Elementwise ``not x`` (nonzero counts as true); bool tensor."""
    return wrap(np.logical_not(as_tensor(x)._data))


# ---- tests ----------------------------------------------------------------------------------------------
def isnan(x):
    """Where x is nan (bool tensor; all false for integer and bool tensors)."""
    cdef Tensor t = as_tensor(x)
    return wrap(np.isnan(t._data) if is_float(t) else np.zeros(t._data.shape, dtype=bool))


def isinf(x):
    """Where x is +inf or -inf (bool tensor)."""
    cdef Tensor t = as_tensor(x)
    return wrap(np.isinf(t._data) if is_float(t) else np.zeros(t._data.shape, dtype=bool))


def isfinite(x):
    """Where x is neither inf nor nan (bool tensor; all true for integer and bool tensors)."""
    cdef Tensor t = as_tensor(x)
    return wrap(np.isfinite(t._data) if is_float(t) else np.ones(t._data.shape, dtype=bool))


# ---- floor division -------------------------------------------------------------------------------------
def floor_divide(a, b):
    """a // b rounded toward -inf, as Python's ``//`` (torch's): integer tensors stay integer; an integer
    division by zero raises as in torch.  Not differentiable (torch's result does not require grad)."""
    x, y = _pair(a, b)
    if x.dtype.kind == "b":
        x, y = x.astype(np.int64), y.astype(np.int64)  # torch divides bools as int64
    if x.dtype.kind != "f" and (y == 0).any():
        raise RuntimeError("ZeroDivisionError")
    try:
        with np.errstate(all="ignore"):
            return wrap(np.floor_divide(x, y))
    except ValueError:
        raise _broadcast_error("floor_divide", x, y) from None

