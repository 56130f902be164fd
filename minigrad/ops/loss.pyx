"""Losses fused into one graph node each, as torch records them (``MseLossBackward``): the forward makes one
difference array instead of three tensors, and the backward is one pass over it."""
import numpy as np

from minigrad import _backend as K
from minigrad.autograd.engine cimport Node, ShapedNode
from minigrad.tensor cimport Tensor, record


cdef class MseLossBackward(Node):
    # saved = (diff,), diff = input - target; meta = the reduction
    # d loss / d input = 2 diff g (/ n for 'mean')
    cpdef object backward(self, object g):
        diff, = self.saved
        dtype = diff.dtype.type
        if self.meta == "none":  # g has diff's shape  # reduction 'none': g has diff's shape
            gx = diff * (g * dtype(2))
        else:
            scale = dtype(2) * dtype(g)
            if self.meta == "mean":
                scale = scale / dtype(diff.size)
            gx = diff * scale
        return (gx if self.next_functions[0] is not None else None,
                np.negative(gx) if self.next_functions[1] is not None else None)


def mse_loss(Tensor input not None, Tensor target not None, str reduction not None):
    """``(input - target)**2`` reduced by 'mean', 'sum' or 'none', for tensors of one shape and dtype (the
    caller, ``nn.functional.mse_loss``, checks the arguments and handles broadcasting)."""
    x, t = input._data, target._data
    dtype = x.dtype.type
    with np.errstate(all="ignore"):  # inf and nan are values, as in torch
        if reduction == "none":
            diff = np.subtract(x, t)
            out = np.multiply(diff, diff)
        else:
            # one pass (the kernel): the difference, kept for backward, and the sum of its squares in double
            diff, total = K.sub_sqsum(x, t)
            if reduction == "mean":
                total = total / x.size if x.size else float("nan")  # torch: the mean of nothing is nan
            out = np.asarray(dtype(total))
    return record(out, MseLossBackward, (input, target), (diff,), reduction)


cdef class NllLossBackward(ShapedNode):
    # saved = (rows, cols, coef): only the counted targets' log-probabilities get a gradient, coef * g each,
    # so an ignored row's -inf or nan never meets a zero weight (0 * inf = nan)
    # meta = the reduction
    cpdef object backward(self, object g):
        rows, cols, coef = self.saved
        gx = np.zeros(self.input_shapes[0], dtype=coef.dtype)
        gx[rows, cols] = coef * (g[rows] if self.meta == "none" else g)
        return (gx,)


def nll_loss(Tensor input, object rows, object cols, object weight, str reduction):
    """The loss of targets ``cols`` at rows ``rows`` of log-probabilities ``input`` (M, C), each weighted by
    ``weight`` (an array like ``rows``, or None for 1); rows not listed are ignored.  'none' gives the M
    per-row losses (0 where ignored); 'mean' divides the sum by the total weight, as torch does.  The
    caller, ``nn.functional.nll_loss``, checks the targets and computes the weights."""
    x = input._data
    dtype = x.dtype.type
    picked = x[rows, cols]
    with np.errstate(all="ignore"):  # inf and nan are values, as in torch
        losses = np.negative(picked) if weight is None else np.negative(picked * weight)
        if reduction == "none":
            out = np.zeros(x.shape[0], dtype=x.dtype)
            out[rows] = losses
        else:
            total = dtype(rows.size if weight is None else weight.sum())
            out = np.asarray(dtype(losses.sum()))
            if reduction == "mean":
                out = np.asarray(out / total)  # nothing counted: 0 / 0 = nan, as in torch
    # the backward's coefficients (one small array: made whether or not the loss is recorded)
    coef = np.full(rows.size, dtype(-1)) if weight is None else np.negative(weight)
    if reduction == "mean":
        # torch's rule: counted targets of total weight 0 get nan, but with nothing counted (an all-padding
        # batch) nothing gets it: the gradient is zero
        with np.errstate(all="ignore"):
            coef = coef / total
    return record(out, NllLossBackward, (input,), (rows, cols, coef), reduction)
