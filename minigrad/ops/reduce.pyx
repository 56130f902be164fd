"""Reductions and the softmax family.  Each op's backward sits right under its forward."""
from collections import namedtuple

import numpy as np

from minigrad.autograd.engine cimport Node
from minigrad.ops.common cimport as_tensor, norm_dim, norm_dims
from minigrad.tensor cimport Tensor, any_requires_grad, attach, wrap

MaxResult = namedtuple("MaxResult", ["values", "indices"])
MinResult = namedtuple("MinResult", ["values", "indices"])


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


cdef class SumBackward(Node):
    cdef tuple axes, in_shape
    cdef bint keepdim

    cpdef object backward(self, object g):
        return (_expand_back(g, self.axes, self.in_shape, self.keepdim),)


def sum(x, dim=None, keepdim=False):
    """Sum over ``dim`` (an int, a tuple, or None or () for all dimensions)."""
    cdef Tensor t = as_tensor(x)
    axes = _reduce_axes(dim, t._data.ndim)
    with np.errstate(all="ignore"):  # inf + -inf is nan, a value as in torch, not a warning
        out = np.asarray(t._data.sum(axis=axes, keepdims=keepdim))
    if not any_requires_grad((t,)):
        return wrap(out)
    cdef SumBackward node = SumBackward.__new__(SumBackward)
    node.axes = axes
    node.in_shape = t._data.shape
    node.keepdim = keepdim
    return attach(out, node, (t,))


cdef class MeanBackward(Node):
    cdef tuple axes, in_shape
    cdef bint keepdim
    cdef double count

    cpdef object backward(self, object g):
        return (_expand_back(g / self.count, self.axes, self.in_shape, self.keepdim),)


def mean(x, dim=None, keepdim=False):
    """Mean over ``dim`` (an int, a tuple, or None or () for all dimensions); nan for an empty reduction."""
    cdef Tensor t = as_tensor(x)
    axes = _reduce_axes(dim, t._data.ndim)
    count = 1
    for a in axes:
        count *= t._data.shape[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.asarray(t._data.sum(axis=axes, keepdims=keepdim) / t._data.dtype.type(count))
    if not any_requires_grad((t,)):
        return wrap(out)
    cdef MeanBackward node = MeanBackward.__new__(MeanBackward)
    node.axes = axes
    node.in_shape = t._data.shape
    node.keepdim = keepdim
    node.count = count
    return attach(out, node, (t,))


cdef class MaxAllBackward(Node):
    # saved = (x, max): ties share the gradient equally, as in torch; so do the nans when the max is nan
    cpdef object backward(self, object g):
        x, m = self.saved
        hit = np.isnan(x) if np.isnan(m) else x == m
        return (np.where(hit, g / hit.sum(), x.dtype.type(0)).astype(x.dtype, copy=False),)


cdef class MaxDimBackward(Node):
    # saved = (indices,): the gradient goes to the element each index picked
    cdef tuple in_shape
    cdef int axis
    cdef bint keepdim

    cpdef object backward(self, object g):
        idx = self.saved[0]
        if not self.keepdim:
            g = np.expand_dims(g, self.axis)
            idx = np.expand_dims(idx, self.axis)
        gx = np.zeros(self.in_shape, dtype=g.dtype)
        np.put_along_axis(gx, idx, g, axis=self.axis)
        return (gx,)


cdef object _extreme(x, dim, keepdim, bint is_max):
    cdef Tensor t = as_tensor(x)
    data = t._data
    name = "max" if is_max else "min"
    if dim is None:
        if data.size == 0:
            raise RuntimeError("%s(): expected a non-empty tensor (shape %s)" % (name, data.shape))
        out = np.asarray(data.max() if is_max else data.min())
        if not any_requires_grad((t,)):
            return wrap(out)
        all_node = MaxAllBackward.__new__(MaxAllBackward)
        all_node.saved = (data, out)
        return attach(out, all_node, (t,))
    axis = norm_dim(dim, data.ndim)
    result = MaxResult if is_max else MinResult
    if data.ndim == 0:
        from minigrad.ops.elementwise import clone
        return result(clone(t), np.zeros((), dtype=np.int64))
    if data.shape[axis] == 0:
        raise IndexError("%s(): cannot reduce over dimension %d of size 0" % (name, axis))
    idx = np.argmax(data, axis=axis, keepdims=True) if is_max else np.argmin(data, axis=axis, keepdims=True)
    values = np.take_along_axis(data, idx, axis=axis)
    if not keepdim:
        values = values.squeeze(axis)
        idx = idx.squeeze(axis)
    if not any_requires_grad((t,)):
        return result(wrap(values), idx)
    cdef MaxDimBackward node = MaxDimBackward.__new__(MaxDimBackward)
    node.in_shape = data.shape
    node.axis = axis
    node.keepdim = keepdim
    node.saved = (idx,)
    return result(attach(values, node, (t,)), idx)


def max(x, dim=None, keepdim=False):
    """Largest element; with ``dim``, ``(values, indices)`` along that dimension (indices: int64 array)."""
    return _extreme(x, dim, keepdim, True)


def min(x, dim=None, keepdim=False):
    """Smallest element; with ``dim``, ``(values, indices)`` along that dimension (indices: int64 array)."""
    return _extreme(x, dim, keepdim, False)


cdef object _row_max(object data, int axis):
    """max over ``axis`` (kept), with -inf for an empty axis and 0 where a whole row is -inf.

    Subtracting it keeps exp() from overflowing on large logits; a +inf or nan logit still makes its row
    nan, as in torch.
    """
    m = data.max(axis=axis, keepdims=True, initial=-np.inf)
    return np.where(m == -np.inf, data.dtype.type(0), m)


cdef class SoftmaxBackward(Node):
    # saved = (y,); dx = y * (g - sum(g * y))
    cdef int axis

    cpdef object backward(self, object g):
        y = self.saved[0]
        return (y * (g - (g * y).sum(axis=self.axis, keepdims=True)),)


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along ``dim``, computed stably."""
    cdef Tensor t = as_tensor(x)
    axis = norm_dim(dim, t._data.ndim)
    if t._data.ndim == 0:
        out = np.ones((), dtype=t._data.dtype)
    else:
        with np.errstate(all="ignore"):
            e = np.exp(t._data - _row_max(t._data, axis))
            out = e / e.sum(axis=axis, keepdims=True)
    if not any_requires_grad((t,)):
        return wrap(out)
    cdef SoftmaxBackward node = SoftmaxBackward.__new__(SoftmaxBackward)
    node.axis = axis if t._data.ndim else 0
    node.saved = (out,)
    return attach(out, node, (t,))


cdef class LogSoftmaxBackward(Node):
    # saved = (y,); dx = g - softmax * sum(g)
    cdef int axis

    cpdef object backward(self, object g):
        y = self.saved[0]
        return (g - np.exp(y) * g.sum(axis=self.axis, keepdims=True),)


def log_softmax(x, dim):
    """x - logsumexp(x) along ``dim``, computed stably (finite for logits of any size)."""
    cdef Tensor t = as_tensor(x)
    axis = norm_dim(dim, t._data.ndim)
    if t._data.ndim == 0:
        out = np.zeros((), dtype=t._data.dtype)
    else:
        with np.errstate(all="ignore"):
            s = t._data - _row_max(t._data, axis)
            out = s - np.log(np.exp(s).sum(axis=axis, keepdims=True))
    if not any_requires_grad((t,)):
        return wrap(out)
    cdef LogSoftmaxBackward node = LogSoftmaxBackward.__new__(LogSoftmaxBackward)
    node.axis = axis if t._data.ndim else 0
    node.saved = (out,)
    return attach(out, node, (t,))


cdef class LogsumexpBackward(Node):
    # saved = (x, out with kept dims); dx = g * exp(x - out)
    cdef tuple axes
    cdef bint keepdim

    cpdef object backward(self, object g):
        x, lse = self.saved
        if not self.keepdim:
            g = np.expand_dims(g, self.axes)
        return (g * np.exp(x - lse),)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) over ``dim`` (an int or a tuple; () for all dimensions), computed stably."""
    cdef Tensor t = as_tensor(x)
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
    if not any_requires_grad((t,)):
        return wrap(out)
    cdef LogsumexpBackward node = LogsumexpBackward.__new__(LogsumexpBackward)
    node.axes = axes
    node.keepdim = keepdim
    node.saved = (data, lse)
    return attach(out, node, (t,))
