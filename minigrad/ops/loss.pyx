"""Losses fused into one graph node each, as torch records them (``MseLossBackward``): the forward makes one
difference array instead of three tensors, and the backward is one pass over it."""
import numpy as np

from minigrad.autograd.engine cimport Node
from minigrad.tensor cimport Tensor, any_requires_grad, attach, wrap


cdef class MseLossBackward(Node):
    # saved = (diff,), diff = input - target; d loss / d input = 2 diff g (/ n for 'mean')
    cdef bint mean, elementwise

    cpdef object backward(self, object g):
        diff, = self.saved
        dtype = diff.dtype.type
        if self.elementwise:  # reduction 'none': g has diff's shape
            gx = diff * (g * dtype(2))
        else:
            scale = dtype(2) * dtype(g)
            if self.mean:
                scale = scale / dtype(diff.size)
            gx = diff * scale
        return (gx if self.next_functions[0] is not None else None,
                np.negative(gx) if self.next_functions[1] is not None else None)


def mse_loss(Tensor input, Tensor target, str reduction):
    """``(input - target)**2`` reduced by 'mean', 'sum' or 'none', for tensors of one shape and dtype (the
    caller, ``nn.functional.mse_loss``, checks the arguments and handles broadcasting)."""
    x, t = input._data, target._data
    with np.errstate(all="ignore"):  # inf and nan are values, as in torch
        diff = np.subtract(x, t)
        sq = np.multiply(diff, diff)
        if reduction == "none":
            out = sq
        elif reduction == "sum":
            out = np.asarray(sq.sum())
        else:
            out = np.asarray(sq.sum() / x.dtype.type(x.size))
    if not any_requires_grad((input, target)):
        return wrap(out)
    cdef MseLossBackward node = MseLossBackward.__new__(MseLossBackward)
    node.saved = (diff,)
    node.mean = reduction == "mean"
    node.elementwise = reduction == "none"
    return attach(out, node, (input, target))
