"""Reductions, the softmax family, arg-reductions, cumsum, sort and topk.  Each op's backward sits right
under its forward; indices come back as int64 tensors, as in torch."""
from collections import namedtuple

import numpy as np

from minigrad import _backend as K
from minigrad.autograd.engine cimport Node, ShapedNode
from minigrad.ops.common cimport as_tensor, is_float, norm_dim, norm_dims
from minigrad.tensor cimport Tensor, record, wrap
from minigrad.tensor import get_default_dtype

MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])
SortResult = namedtuple("SortResult", ["values", "indices"])
TopkResult = namedtuple("TopkResult", ["values", "indices"])

_TORCH_NAMES = {"float32": "Float", "float64": "Double", "int32": "Int", "int64": "Long", "bool": "Bool"}


cdef void _need_float(Tensor t, str what) except *:
    """torch's error for a float-only reduction given an integer or bool tensor."""
    if not is_float(t):
        raise NotImplementedError('"%s" not implemented for \'%s\''
                                  % (what, _TORCH_NAMES[t._data.dtype.name]))


cdef object _expand_back(object g, tuple axes, tuple shape, bint keepdim):
    """Broadcast a reduced gradient back over the reduced axes (a read-only view, no copy)."""
    if not keepdim and axes:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


cdef tuple _reduce_axes(object dim, int ndim):
    """The axes a reduction over ``dim`` covers: an empty tuple or list means every dimension, as in torch
    (numpy's ``axis=()`` would reduce none)."""
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        return tuple(range(ndim))
    return norm_dims(dim, ndim)


cdef class SumBackward(ShapedNode):
    # meta = (axes, keepdim)
    cpdef object backward(self, object g):
        axes, keepdim = self.meta
        return (_expand_back(g, axes, self.input_shapes[0], keepdim),)


# From this many elements on, a float array's sum over all its dimensions is _sum_all's, not numpy's.
_SUM_ALL_MIN = 32768


cdef object _sum_all(object a):
    """The sum of every element of the C-contiguous float array ``a`` (at least _SUM_ALL_MIN of them), as a
    0-d array of a's dtype: the column sums of its (n // W, W) body by ``K.sum_rows`` (blocks of 16 rows in
    a's dtype, then double precision), the W sums and the n % W elements left over added in double, one
    rounding to a's dtype.  W depends on n alone, so the bits do not depend on the thread count; the error
    is at most about that of 16 roundings in a's dtype relative to the sum of |a| (numpy's pairwise sum:
    about 8 + log2(n / 8)).  numpy's float32 sum of a (64, 32, 128) RNN output took 57 us, this 20 us, on
    an Intel Xeon (family 6, model 207); 4M elements 984 -> 405 us (float64 1292 -> 743 us, its column sums
    on the pool's threads)."""
    flat = a.reshape(-1)
    cdef Py_ssize_t n = flat.shape[0]
    cdef Py_ssize_t width = 1024 if n >= 1024 * 64 else 256
    cdef Py_ssize_t body = n - n % width
    with np.errstate(all="ignore"):  # inf + -inf is nan, a value as in torch, not a warning
        total = K.sum_rows(flat[:body].reshape(-1, width)).astype(np.float64).sum()
        if body < n:
            total = total + flat[body:].astype(np.float64).sum()
        return np.asarray(total).astype(a.dtype)


cdef object _sum(object a, tuple axes, bint keepdim):
    """numpy's a.sum(axis=axes, keepdims=keepdim) as an array, by _sum_all when it is all of a big float
    array."""
    if (len(axes) == a.ndim and a.size >= _SUM_ALL_MIN and (a.dtype == np.float32 or a.dtype == np.float64)
            and a.dtype.isnative and a.flags.c_contiguous and a.flags.aligned):
        out = _sum_all(a)
        return out.reshape((1,) * a.ndim) if keepdim else out
    with np.errstate(all="ignore"):  # inf + -inf is nan, a value as in torch, not a warning
        return np.asarray(a.sum(axis=axes, keepdims=keepdim))


def sum(x, dim=None, keepdim=False):
    """Sum over ``dim`` (an int, a tuple, or None or () for all dimensions)."""
    cdef Tensor t = as_tensor(x)
    axes = _reduce_axes(dim, t._data.ndim)
    return record(_sum(t._data, axes, keepdim), SumBackward, (t,), saved=None, meta=(axes, keepdim))


cdef class MeanBackward(ShapedNode):
    # meta = (axes, keepdim, the number of elements averaged)
    cpdef object backward(self, object g):
        axes, keepdim, count = self.meta
        return (_expand_back(g / <double>count, axes, self.input_shapes[0], keepdim),)


def mean(x, dim=None, keepdim=False):
    """Mean over ``dim`` (an int, a tuple, or None or () for all dimensions); nan for an empty reduction."""
    cdef Tensor t = as_tensor(x)
    if not is_float(t):
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a floating "
                           "point or complex dtype. Got: %s" % _TORCH_NAMES[t._data.dtype.name])
    axes = _reduce_axes(dim, t._data.ndim)
    count = 1
    for a in axes:
        count *= t._data.shape[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.asarray(_sum(t._data, axes, keepdim) / t._data.dtype.type(count))
    return record(out, MeanBackward, (t,), saved=None, meta=(axes, keepdim, count))


cdef class MaxAllBackward(Node):
    # saved = (x, max): ties share the gradient equally, as in torch; so do the nans when the max is nan
    cpdef object backward(self, object g):
        x, m = self.saved
        hit = np.isnan(x) if np.isnan(m) else x == m
        return (np.where(hit, g / hit.sum(), x.dtype.type(0)).astype(x.dtype, copy=False),)


cdef class MaxDimBackward(ShapedNode):
    # saved = (indices,): the gradient goes to the element each index picked; meta = (axis, keepdim)
    cpdef object backward(self, object g):
        idx = self.saved[0]
        axis, keepdim = self.meta
        if not keepdim:
            g = np.expand_dims(g, axis)
            idx = np.expand_dims(idx, axis)
        gx = np.zeros(self.input_shapes[0], dtype=g.dtype)
        np.put_along_axis(gx, idx, g, axis=axis)
        return (gx,)


cdef object _extreme(x, dim, keepdim, bint is_max):
    cdef Tensor t = as_tensor(x)
    data = t._data
    name = "max" if is_max else "min"
    if dim is None:
        if data.size == 0:
            raise RuntimeError("%s(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
                               "reduction dim with the 'dim' argument." % name)
        out = np.asarray(data.max() if is_max else data.min())
        return record(out, MaxAllBackward, (t,), (data, out))
    axis = norm_dim(dim, data.ndim)
    result = MaxResult if is_max else MinResult
    if data.ndim == 0:
        from minigrad.ops.elementwise import clone
        return result(clone(t), wrap(np.zeros((), dtype=np.int64)))
    if data.shape[axis] == 0:
        raise IndexError("%s(): Expected reduction dim %d to have non-zero size." % (name, axis))
    idx = np.argmax(data, axis=axis, keepdims=True) if is_max else np.argmin(data, axis=axis, keepdims=True)
    values = np.take_along_axis(data, idx, axis=axis)
    if not keepdim:
        values = values.squeeze(axis)
        idx = idx.squeeze(axis)
    return result(record(values, MaxDimBackward, (t,), (idx,), (axis, keepdim)), wrap(idx))


def max(x, dim=None, keepdim=False):
    """Largest element; with ``dim``, ``(values, indices)`` along that dimension (indices: int64 tensor)."""
    return _extreme(x, dim, keepdim, True)


def min(x, dim=None, keepdim=False):
    """Smallest element; with ``dim``, ``(values, indices)`` along that dimension (indices: int64 tensor)."""
    return _extreme(x, dim, keepdim, False)


cdef object _row_max(object data, int axis):
    """max over ``axis`` (kept), with -inf for an empty axis and 0 where a whole row is -inf.

    Subtracting it keeps exp() from overflowing on large logits; a +inf or nan logit still makes its row
    nan, as in torch.
    """
    m = data.max(axis=axis, keepdims=True, initial=-np.inf)
    return np.where(m == -np.inf, data.dtype.type(0), m)


cdef class SoftmaxBackward(Node):
    # saved = (y,), meta = axis; dx = y * (g - sum(g * y))
    cpdef object backward(self, object g):
        y = self.saved[0]
        return (y * (g - (g * y).sum(axis=self.meta, keepdims=True)),)


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along ``dim``, computed stably."""
    cdef Tensor t = as_tensor(x)
    _need_float(t, "softmax_lastdim_kernel_impl")
    axis = norm_dim(dim, t._data.ndim)
    if t._data.ndim == 0:
        out = np.ones((), dtype=t._data.dtype)
    else:
        with np.errstate(all="ignore"):
            e = np.exp(t._data - _row_max(t._data, axis))
            out = e / e.sum(axis=axis, keepdims=True)
    return record(out, SoftmaxBackward, (t,), (out,), axis if t._data.ndim else 0)


cdef class LogSoftmaxBackward(Node):
    # saved = (y,), meta = axis; dx = g - softmax * sum(g)
    cpdef object backward(self, object g):
        y = self.saved[0]
        return (g - np.exp(y) * g.sum(axis=self.meta, keepdims=True),)


def log_softmax(x, dim):
    """x - logsumexp(x) along ``dim``, computed stably (finite for logits of any size)."""
    cdef Tensor t = as_tensor(x)
    _need_float(t, "log_softmax_lastdim_kernel_impl")
    axis = norm_dim(dim, t._data.ndim)
    if t._data.ndim == 0:
        out = np.zeros((), dtype=t._data.dtype)
    else:
        with np.errstate(all="ignore"):
            s = t._data - _row_max(t._data, axis)
            out = s - np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return record(out, LogSoftmaxBackward, (t,), (out,), axis if t._data.ndim else 0)


cdef class LogsumexpBackward(Node):
    # saved = (x, out with kept dims), meta = (axes, keepdim); dx = g * exp(x - out)
    cpdef object backward(self, object g):
        x, lse = self.saved
        axes, keepdim = self.meta
        if not keepdim:
            g = np.expand_dims(g, axes)
        return (g * np.exp(x - lse),)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) over ``dim`` (an int or a tuple; () for all dimensions), computed stably."""
    cdef Tensor t = as_tensor(x)
    if not is_float(t):
        t = wrap(t._data.astype(get_default_dtype()))  # torch computes it in the default float dtype
    data = t._data
    axes = _reduce_axes(dim, data.ndim)
    if data.ndim == 0:
        return t.clone()
    # torch's convention: an infinite max is not subtracted, so a +inf entry gives +inf, not nan
    m = data.max(axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isinf(m), data.dtype.type(0), m)
    with np.errstate(all="ignore"):
        lse = m + np.log(np.exp(data - m).sum(axis=axes, keepdims=True))
    out = lse if keepdim else lse.squeeze(axes)
    return record(out, LogsumexpBackward, (t,), (data, lse), (axes, keepdim))


# ---- any / all ---------------------------------------------------------------------------------------------
def all(x, dim=None, keepdim=False):
    """Whether every element (along ``dim``) is nonzero: a bool tensor."""
    cdef Tensor t = as_tensor(x)
    axes = None if dim is None else norm_dim(dim, t._data.ndim)
    return wrap(np.asarray(np.all(t._data, axis=axes, keepdims=keepdim and dim is not None)))


def any(x, dim=None, keepdim=False):
    """Whether some element (along ``dim``) is nonzero: a bool tensor."""
    cdef Tensor t = as_tensor(x)
    axes = None if dim is None else norm_dim(dim, t._data.ndim)
    return wrap(np.asarray(np.any(t._data, axis=axes, keepdims=keepdim and dim is not None)))


# ---- argmax / argmin ---------------------------------------------------------------------------------------
cdef object _arg_extreme(x, dim, bint keepdim, bint is_max):
    cdef Tensor t = as_tensor(x)
    data = t._data
    name = "argmax" if is_max else "argmin"
    find = np.argmax if is_max else np.argmin
    if dim is None:
        if data.size == 0:
            # torch's type differs from max()'s here: IndexError
            raise IndexError("%s(): Expected reduction dim to be specified for input.numel() == 0." % name)
        idx = np.asarray(find(data.reshape(-1)), dtype=np.int64)
        return wrap(idx.reshape((1,) * data.ndim) if keepdim else idx)
    axis = norm_dim(dim, data.ndim)
    if data.ndim == 0:
        return wrap(np.zeros((), dtype=np.int64))
    if data.shape[axis] == 0:
        raise IndexError("%s(): Expected reduction dim %d to have non-zero size." % (name, axis))
    return wrap(np.asarray(find(data, axis=axis, keepdims=keepdim), dtype=np.int64))


def argmax(x, dim=None, keepdim=False):
    """Index of the largest element (the first one on ties; a nan counts as the largest), over the
    flattened tensor when ``dim`` is None: an int64 tensor."""
    return _arg_extreme(x, dim, keepdim, True)


def argmin(x, dim=None, keepdim=False):
    """Index of the smallest element (the first one on ties; a nan counts as the smallest), over the
    flattened tensor when ``dim`` is None: an int64 tensor."""
    return _arg_extreme(x, dim, keepdim, False)


# ---- cumsum ------------------------------------------------------------------------------------------------
cdef class CumsumBackward(Node):
    # meta = axis; d out_j / d x_i = 1 for i <= j: the gradient is the reversed cumulative sum of g
    cpdef object backward(self, object g):
        axis = self.meta
        return (np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),)


def cumsum(x, dim, dtype=None):
    """Cumulative sum along ``dim``; integer and bool tensors sum in int64 (torch's rule)."""
    cdef Tensor t = as_tensor(x)
    axis = norm_dim(dim, t._data.ndim)
    data = t._data
    if dtype is not None:
        from minigrad.ops.elementwise import to
        t = to(t, dtype)
        data = t._data
    out_dtype = data.dtype if is_float(t) else np.dtype(np.int64)
    with np.errstate(all="ignore"):
        out = np.cumsum(data, axis=axis if data.ndim else None, dtype=out_dtype).reshape(data.shape)
    return record(out, CumsumBackward, (t,), saved=None, meta=axis if data.ndim else 0)


# ---- sort / argsort / topk ---------------------------------------------------------------------------------
cdef class TakeAlongBackward(ShapedNode):
    # saved = (indices,), meta = axis: each output element came from the input at its index along the axis
    cpdef object backward(self, object g):
        gx = np.zeros(self.input_shapes[0], dtype=g.dtype)
        np.put_along_axis(gx, self.saved[0], g, axis=self.meta)
        return (gx,)


cdef object _take_along(Tensor t, object idx, int axis):
    """The values of ``t`` at ``idx`` along ``axis`` (differentiable) and the indices as an int64 tensor."""
    values = np.take_along_axis(t._data, idx, axis=axis)
    return record(values, TakeAlongBackward, (t,), (idx,), axis), wrap(idx)


cdef object _order(object data, int axis, bint descending, bint stable):
    """Indices (int64) that sort ``data`` along ``axis``; nan sorts as the largest value, as in torch.
    Descending is the ascending stable sort of the reversed axis, reversed: ties keep their order."""
    if not descending:
        return np.argsort(data, axis=axis, kind="stable" if stable else None).astype(np.int64, copy=False)
    idx = np.argsort(np.flip(data, axis), axis=axis, kind="stable")
    return (data.shape[axis] - 1 - np.flip(idx, axis)).astype(np.int64, copy=False)


cdef tuple _sort_args(Tensor t, object dim):
    """(the data as at least 1-D, its axis) for sort, argsort and topk: a 0-d tensor sorts as one element."""
    data = t._data
    axis = norm_dim(dim, data.ndim)
    return data if data.ndim else data.reshape(1), axis


cdef tuple _zero_dim_sorted(Tensor t):
    """sort/topk of a 0-d tensor: itself (a differentiable copy) at index 0."""
    from minigrad.ops.elementwise import clone
    return clone(t), wrap(np.zeros((), dtype=np.int64))


def sort(x, dim=-1, descending=False, stable=False):
    """``(values, indices)`` sorted along ``dim``; values are differentiable, indices an int64 tensor."""
    cdef Tensor t = as_tensor(x)
    data, axis = _sort_args(t, dim)
    if t._data.ndim == 0:
        return SortResult(*_zero_dim_sorted(t))
    return SortResult(*_take_along(t, _order(data, axis, descending, stable), axis))


def argsort(x, dim=-1, descending=False, stable=False):
    """The int64 indices that sort ``x`` along ``dim``."""
    cdef Tensor t = as_tensor(x)
    data, axis = _sort_args(t, dim)
    return wrap(_order(data, axis, descending, stable).reshape(t._data.shape))


def topk(x, k, dim=-1, largest=True, sorted=True):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) elements along ``dim``,
    largest first; values are differentiable, indices an int64 tensor."""
    cdef Tensor t = as_tensor(x)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError("topk(): argument 'k' must be int, not %s" % type(k).__name__)
    data, axis = _sort_args(t, dim)
    if not 0 <= k <= data.shape[axis]:
        raise RuntimeError("selected index k out of range")
    if t._data.ndim == 0:  # torch gives the element for k = 0 too
        return TopkResult(*_zero_dim_sorted(t))
    idx = np.take(_order(data, axis, largest, True), np.arange(k), axis=axis)
    return TopkResult(*_take_along(t, idx, axis))
