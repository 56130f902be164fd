"""Elementwise ops.  Each op's backward sits right under its forward.

Binary ops broadcast like numpy; their backward sums each gradient back to its input's shape.
"""
import numpy as np

from minigrad import _backend as K
from minigrad.autograd.engine cimport GraphTask, Node, ShapedNode
from minigrad.ops.common cimport as_tensor, is_float, operands, unbroadcast
from minigrad.ops.fast cimport OP_ADD, OP_DIV, OP_MUL, OP_SUB, binary
from minigrad.tensor cimport Tensor, record, wrap
from minigrad.tensor import check_dtype, get_default_dtype, real_scalar


# the ufuncs of the general path, held in C globals (a module attribute lookup per op is measurable on
# small tensors)
cdef object _np_add = np.add, _np_subtract = np.subtract, _np_multiply = np.multiply
cdef object _np_true_divide = np.true_divide, _np_power = np.power


cdef object _broadcast(int op, ufunc, str name, Tensor x, Tensor y):
    out = binary(op, x._data, y._data) if op >= 0 else None
    if out is not None:
        return out
    try:
        with np.errstate(all="ignore"):  # inf and nan are values, as in torch: no warnings
            return ufunc(x._data, y._data)
    except ValueError:
        raise ValueError("%s: shapes %s and %s cannot be broadcast together"
                         % (name, x._data.shape, y._data.shape)) from None


cdef inline object _mul(object a, object b):
    out = binary(OP_MUL, a, b)
    return a * b if out is None else out


cdef Tensor _floating(Tensor t):
    """``t`` itself if it holds floats, else its values in the default float dtype: what torch's float
    functions (exp, log, true division, ...) compute in for integer and bool tensors."""
    return t if is_float(t) else wrap(t._data.astype(get_default_dtype()))


cdef inline bint _wants(Node node, int i):
    """Does input i of ``node`` need a gradient?"""
    return node.next_functions[i] is not None


# ---- add / sub ----------------------------------------------------------------------------------------
cdef class AddBackward(ShapedNode):
    cpdef object backward(self, object g):
        a_shape, b_shape = self.input_shapes
        return unbroadcast(g, a_shape), unbroadcast(g, b_shape)


def add(a, b):
    """a + b."""
    cdef Tensor x, y
    x, y = operands(a, b)
    return record(_broadcast(OP_ADD, _np_add, "add", x, y), AddBackward, (x, y))


cdef class SubBackward(ShapedNode):
    cpdef object backward(self, object g):
        a_shape, b_shape = self.input_shapes
        return unbroadcast(g, a_shape), unbroadcast(-g, b_shape) if _wants(self, 1) else None


def sub(a, b):
    """a - b."""
    cdef Tensor x, y
    x, y = operands(a, b)
    if x._data.dtype.kind == "b":
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the "
                           "`^` or `logical_xor()` operator instead.")
    return record(_broadcast(OP_SUB, _np_subtract, "sub", x, y), SubBackward, (x, y))


# ---- mul / div / pow ----------------------------------------------------------------------------------
cdef class MulBackward(Node):
    # saved = (a, b)
    cpdef object backward(self, object g):
        a, b = self.saved
        return (unbroadcast(_mul(g, b), a.shape) if _wants(self, 0) else None,
                unbroadcast(_mul(g, a), b.shape) if _wants(self, 1) else None)


def mul(a, b):
    """a * b."""
    cdef Tensor x, y
    x, y = operands(a, b)
    return record(_broadcast(OP_MUL, _np_multiply, "mul", x, y), MulBackward, (x, y), (x._data, y._data))


cdef class DivBackward(Node):
    # saved = (a, b, a / b)
    cpdef object backward(self, object g):
        a, b, y = self.saved
        ga = g / b
        return (unbroadcast(ga, a.shape) if _wants(self, 0) else None,
                unbroadcast(-ga * y, b.shape) if _wants(self, 1) else None)


def div(a, b):
    """a / b (true division: integer and bool operands divide in the default float dtype)."""
    cdef Tensor x, y
    x, y = operands(a, b)
    if not is_float(x):
        x, y = _floating(x), _floating(y)
    out = _broadcast(OP_DIV, _np_true_divide, "div", x, y)
    return record(out, DivBackward, (x, y), (x._data, y._data, out))


cdef object _scalar_pow(object x, double p):
    """x ** p as torch computes it: ** -0.5 is 1 / sqrt(x), so -0.0 gives -inf and -inf gives nan (C's pow
    gives +inf and 0); numpy already takes sqrt for ** 0.5."""
    if p == -0.5:
        return x.dtype.type(1) / np.sqrt(x)
    return x ** p


cdef class PowScalarBackward(Node):
    # x ** p for a constant p; saved = (x,), meta = p
    cpdef object backward(self, object g):
        (x,) = self.saved
        cdef double p = self.meta
        if p == 0.0:
            return (np.zeros_like(x),)
        return (g * (p * _scalar_pow(x, p - 1.0)),)


cdef class PowBackward(Node):
    # a ** b with tensors on both sides; saved = (a, b, a ** b)
    cpdef object backward(self, object g):
        a, b, y = self.saved
        ga = gb = None
        if _wants(self, 0):
            ga = unbroadcast(g * b * a ** (b - 1), a.shape)
        if _wants(self, 1):
            with np.errstate(divide="ignore", invalid="ignore"):
                # torch's convention: d(0 ** b)/db = 0 for b >= 0, not nan; the log in the result's dtype
                # (a float32 base with a float64 exponent gives a float64 gradient)
                dlog = np.where((a == 0) & (b >= 0), 0, y * np.log(a, dtype=y.dtype))
            gb = unbroadcast(g * dlog, b.shape)
        return ga, gb


def pow(a, b, mod=None):
    """a ** b; either side may be a Python number.  ``mod`` is the third argument of Python's ``pow``,
    which tensors do not support (as in torch)."""
    cdef Tensor x, y
    if mod is not None:
        raise TypeError("unsupported operand type(s) for ** or pow(): '%s', '%s', '%s'"
                        % (type(a).__name__, type(b).__name__, type(mod).__name__))
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        x = <Tensor>a
        if not is_float(x):
            if isinstance(b, float):
                return pow(_floating(x), b)
            if b < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
            return wrap(np.power(x._data, x._data.dtype.type(b)))
        with np.errstate(all="ignore"):
            out = _scalar_pow(x._data, float(b))  # a numpy float64 exponent is weak too, as in torch
        return record(out, PowScalarBackward, (x,), (x._data,), float(b))
    x, y = operands(a, b)
    out = _broadcast(-1, _np_power, "pow", x, y)
    return record(out, PowBackward, (x, y), (x._data, y._data, out))


# ---- unary --------------------------------------------------------------------------------------------
cdef class NegBackward(Node):
    cpdef object backward(self, object g):
        return (-g,)


def neg(x):
    """-x."""
    cdef Tensor t = as_tensor(x)
    if t._data.dtype.kind == "b":
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")
    return record(np.negative(t._data), NegBackward, (t,))


cdef class ExpBackward(Node):
    # saved = (exp(x),)
    cpdef object backward(self, object g):
        return (g * self.saved[0],)


def exp(x):
    """e ** x."""
    cdef Tensor t = _floating(as_tensor(x))
    with np.errstate(all="ignore"):
        out = np.exp(t._data)
    return record(out, ExpBackward, (t,), (out,))


cdef class LogBackward(Node):
    # saved = (x,)
    cpdef object backward(self, object g):
        return (g / self.saved[0],)


def log(x):
    """Natural logarithm (log(0) = -inf, log(negative) = nan, as in numpy and torch)."""
    cdef Tensor t = _floating(as_tensor(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(t._data)
    return record(out, LogBackward, (t,), (t._data,))


cdef class SqrtBackward(Node):
    # saved = (sqrt(x),)
    cpdef object backward(self, object g):
        with np.errstate(divide="ignore"):
            return (g / (2 * self.saved[0]),)


def sqrt(x):
    """Square root."""
    cdef Tensor t = _floating(as_tensor(x))
    with np.errstate(invalid="ignore"):
        out = np.sqrt(t._data)
    return record(out, SqrtBackward, (t,), (out,))


cdef class AbsBackward(Node):
    # saved = (x,); d|x|/dx = sign(x), 0 at 0 and at nan like torch (np.sign(nan) is nan)
    cpdef object backward(self, object g):
        x = self.saved[0]
        return (g * np.subtract(x > 0, x < 0, dtype=g.dtype),)


def abs(x):
    """|x|."""
    cdef Tensor t = as_tensor(x)
    return record(np.abs(t._data), AbsBackward, (t,), (t._data,))


cdef object _place(Node node, object y, GraphTask task):
    """Where the next node wants the gradient of ``node``'s single input (an array like ``y``), or None."""
    edge = node.next_functions[0]
    place = None if edge is None else (<Node>edge[0]).grad_place(task, edge[1])
    if place is not None and (place.shape != y.shape or place.dtype != y.dtype):
        return None
    return place


cdef class TanhBackward(Node):
    # saved = (y,) with y = tanh(x); d tanh/dx = 1 - y², computed by the C kernel
    cpdef object backward(self, object g):
        return (K.tanh_backward(g, self.saved[0]),)

    cpdef object apply(self, GraphTask task, object g):
        # written where the gradient is going if the next node has a place for it in this pass
        # (Node.grad_place: an RNN step's xw[t], a slice of the input projection's gradient)
        return (K.tanh_backward(g, self.saved[0], _place(self, self.saved[0], task)),)


def tanh(x):
    """Hyperbolic tangent (C kernel)."""
    cdef Tensor t = _floating(as_tensor(x))
    out = K.tanh(t._data)
    return record(out, TanhBackward, (t,), (out,))


cdef class SigmoidBackward(Node):
    # saved = (y,) with y = sigmoid(x); dy/dx = y (1 - y), computed by the C kernel
    cpdef object backward(self, object g):
        return (K.sigmoid_backward(g, self.saved[0]),)

    cpdef object apply(self, GraphTask task, object g):
        # written where the gradient is going if the next node has a place for it (Node.grad_place: an
        # LSTM gate's chunk of the gates' gradient)
        return (K.sigmoid_backward(g, self.saved[0], _place(self, self.saved[0], task)),)


def sigmoid(x):
    """1 / (1 + e ** -x) (C kernel)."""
    cdef Tensor t = _floating(as_tensor(x))
    out = K.sigmoid(t._data)
    return record(out, SigmoidBackward, (t,), (out,))


cdef class ReluBackward(Node):
    # saved = (y,); the gradient passes where y > 0 or y is nan (0 at x = 0, like torch)
    cpdef object backward(self, object g):
        return (g * (self.saved[0] != 0),)


def relu(x):
    """max(x, 0)."""
    cdef Tensor t = as_tensor(x)
    out = np.maximum(t._data, t._data.dtype.type(0))
    return record(out, ReluBackward, (t,), (out,))


cdef class ClampBackward(Node):
    # saved = (mask,): where min <= x <= max the gradient passes
    cpdef object backward(self, object g):
        return (g * self.saved[0],)


def clamp(x, min=None, max=None):
    """Limit x to [min, max] (either bound may be None)."""
    cdef Tensor t = as_tensor(x)
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if min is not None:
        min = real_scalar(min, "clamp")
    if max is not None:
        max = real_scalar(max, "clamp")
    data = t._data
    out = data
    mask = np.ones(data.shape, dtype=bool)
    if min is not None:
        out = np.maximum(out, min)
        mask &= data >= min
    if max is not None:
        out = np.minimum(out, max)
        mask &= data <= max
    return record(out.astype(data.dtype, copy=False), ClampBackward, (t,), (mask,))


# ---- selection ----------------------------------------------------------------------------------------
cdef object _mask(object cond):
    arr = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "iuf":
        return arr != 0
    raise TypeError("condition must be a bool array-like, got %s" % arr.dtype)


cdef class WhereBackward(ShapedNode):
    # saved = (cond,)
    cpdef object backward(self, object g):
        cond = self.saved[0]
        zero = g.dtype.type(0)
        a_shape, b_shape = self.input_shapes
        return (unbroadcast(np.where(cond, g, zero), a_shape) if _wants(self, 0) else None,
                unbroadcast(np.where(cond, zero, g), b_shape) if _wants(self, 1) else None)


def where(condition, a, b):
    """Elementwise ``a if condition else b`` with broadcasting; ``condition`` is a bool array-like."""
    cdef Tensor x, y
    x, y = operands(a, b)
    cond = _mask(condition)
    try:
        out = np.where(cond, x._data, y._data)
    except ValueError:
        raise ValueError("where: shapes %s (condition), %s and %s cannot be broadcast together"
                         % (cond.shape, x._data.shape, y._data.shape)) from None
    return record(out, WhereBackward, (x, y), (np.broadcast_to(cond, out.shape),))


cdef class MaskedFillBackward(Node):
    # saved = (mask,): filled positions get no gradient
    cpdef object backward(self, object g):
        return (np.where(self.saved[0], g.dtype.type(0), g),)


def masked_fill(x, mask, value):
    """A copy of x with ``value`` where ``mask`` (broadcastable to x) is true."""
    cdef Tensor t = as_tensor(x)
    m = _mask(mask)
    try:
        m = np.broadcast_to(m, t._data.shape)
    except ValueError:
        raise ValueError("masked_fill: mask of shape %s cannot be broadcast to the tensor's shape %s"
                         % (m.shape, t._data.shape)) from None
    value = real_scalar(value, "masked_fill")
    return record(np.where(m, t._data.dtype.type(value), t._data), MaskedFillBackward, (t,), (m,))


# ---- copies and casts ---------------------------------------------------------------------------------
cdef class CopyBackward(Node):
    # clone and dtype casts: the gradient passes unchanged (the engine casts it to the input's dtype)
    cpdef object backward(self, object g):
        return (g,)


def clone(x):
    """A copy with its own storage; gradients flow back to x."""
    cdef Tensor t = as_tensor(x)
    return record(np.array(t._data, copy=True), CopyBackward, (t,))


def to(x, dtype):
    """x converted to ``dtype``; differentiable from a float dtype to a float dtype only (a conversion to an
    integer or bool dtype truncates, as in torch, and records nothing)."""
    cdef Tensor t = as_tensor(x)
    d = check_dtype(dtype)
    if d == t._data.dtype:
        return t
    with np.errstate(invalid="ignore"):  # nan and inf to an integer: an unspecified value, as in torch
        out = t._data.astype(d)
    if d.kind != "f":
        return wrap(out)
    return record(out, CopyBackward, (t,))
