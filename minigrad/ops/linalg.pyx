"""Matrix products on the C kernel, with numpy's matmul semantics (1-D operands, batched broadcasting)."""
import numpy as np

cimport numpy as cnp

from minigrad import _backend as K
from minigrad.autograd.engine cimport GraphTask, LazyGrad, Node, ShapedNode
from minigrad.ops.common cimport operands, unbroadcast
from minigrad.tensor cimport Tensor, record, wrap


# numpy dtype.char -> the C type names torch's mixed-dtype product error uses
_TORCH_NAMES = {"q": "long int", "l": "long int", "i": "int", "f": "float", "d": "double", "?": "bool"}


cnp.import_array()

cdef tuple _MATRICES = (False, False)  # matmul's meta (a_vec, b_vec) for two matrices


cdef Py_ssize_t _prod(tuple dims):
    cdef Py_ssize_t n = 1
    for d in dims:
        n *= d
    return n


cdef object _mm(object a, object b):
    """numpy.matmul(a, b) for arrays of at least 2 dimensions, computed by the kernel."""
    cdef Py_ssize_t m = a.shape[-2], n = b.shape[-1], k = a.shape[-1]
    if a.ndim == 2 and b.ndim == 2:
        return K.matmul(a, b)
    if b.ndim == 2:
        # (..., M, K) @ (K, N): fold the batch into the rows, one big product (and no per-batch calls)
        lead = a.shape[:-2]
        return K.matmul(a.reshape(_prod(lead) * m, k), b).reshape(lead + (m, n))
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    count = _prod(batch)
    a3 = np.broadcast_to(a, batch + (m, k)).reshape(count, m, k)
    b3 = np.broadcast_to(b, batch + (k, n)).reshape(count, k, n)
    return K.matmul(a3, b3).reshape(batch + (m, n))


cdef class ProductSum(LazyGrad):
    """A weight's gradient held as a sum of matrix products, ``sum_i lefts[i].T @ rights[i]``, until needed.

    matmul's backward hands the gradient of W in ``x @ W`` over as the product ``x.T @ g``.  A weight used
    at every time step receives one such product per step; the engine merges them (``merge``) and the sum
    is computed as ONE product of the stacked factors (inner dimension steps x batch, read where they lie by
    ``matmul_stacked_t``) when the weight's node runs: far faster than many thin products added one by
    one, and the graph stays the unrolled one."""
    cdef list lefts, rights

    def __init__(self, left, right):
        self.lefts = [left]
        self.rights = [right]
        self.shape = (left.shape[1], right.shape[1])
        self.dtype = right.dtype

    cpdef bint merge(self, LazyGrad other) except -1:
        if type(other) is not ProductSum:
            return False
        self.lefts.extend((<ProductSum>other).lefts)
        self.rights.extend((<ProductSum>other).rights)
        return True

    cpdef LazyGrad transposed(self):
        """(sum_i L_i.T @ R_i).T = sum_i R_i.T @ L_i, still unevaluated."""
        cdef ProductSum t = ProductSum.__new__(ProductSum)
        t.lefts, t.rights = list(self.rights), list(self.lefts)
        t.shape = (self.shape[1], self.shape[0])
        t.dtype = self.dtype
        return t

    cpdef object materialize(self):
        if len(self.lefts) == 1:
            return K.matmul(self.lefts[0].T, self.rights[0])
        # The kernel reads the factors from where they lie: no stacked copies of them.  The engine merged
        # them last step first; summed first step first, the steps' rows are in the order a sequence's
        # buffer holds them (the kernel then reads one strided array) and the bits are those of
        # x.reshape(T * B, I).T @ g.reshape(T * B, H), the product of the stacked sequence.
        return K.matmul_stacked_t(self.lefts[::-1], self.rights[::-1])


cdef class MatmulBackward(Node):
    # saved = (A, B) as 2+-D arrays (1-D operands promoted); meta = (a_vec, b_vec), which were promoted
    cpdef object backward(self, object g):
        a, b = self.saved
        cdef bint a_vec = self.meta[0], b_vec = self.meta[1]
        if a.ndim == 2 and b.ndim == 2 and not (a_vec or b_vec):
            # the common case (an RNN step, a Linear layer) without numpy's Python-level helpers
            return (K.matmul(g, b.T) if self.next_functions[0] is not None else None,
                    ProductSum(a, g) if self.next_functions[1] is not None else None)
        if b_vec:
            g = np.expand_dims(g, -1)
        if a_vec:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if self.next_functions[0] is not None:
            ga = unbroadcast(_mm(g, np.swapaxes(b, -1, -2)), a.shape)
            if a_vec:
                ga = ga.reshape(a.shape[-1])
        if self.next_functions[1] is not None:
            if b.ndim == 2 and not b_vec:
                # dL/dB = A.T @ G summed over all rows of A; handed to the engine unevaluated, so that a
                # weight used at every time step gets its gradient as one product (see ProductSum)
                rows = _prod(a.shape[:-1])
                gb = ProductSum(a.reshape(rows, a.shape[-1]), g.reshape(rows, g.shape[-1]))
            else:
                gb = unbroadcast(_mm(np.swapaxes(a, -1, -2), g), b.shape)
            if b_vec:
                gb = gb.reshape(b.shape[-2])
        return ga, gb


def matmul(a, b):
    """Matrix product with numpy's rules: 1-D operands are vectors, leading dimensions broadcast."""
    cdef Tensor x, y
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        # the common case, two float matrices of one dtype that align: straight to the kernel (the checks
        # below would pass; an RNN's per-step products and a user's small ones pay no more than they must)
        xa, ya = (<Tensor>a)._data, (<Tensor>b)._data
        if (cnp.PyArray_NDIM(xa) == 2 and cnp.PyArray_NDIM(ya) == 2
                and cnp.PyArray_TYPE(xa) == cnp.PyArray_TYPE(ya)
                and (cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT64)
                and cnp.PyArray_DIM(xa, 1) == cnp.PyArray_DIM(ya, 0)):
            return record(K.matmul(xa, ya), MatmulBackward, (a, b), (xa, ya), _MATRICES)
    x, y = operands(a, b, False)  # a product never promotes: mixed dtypes are refused below
    xa, ya = x._data, y._data
    if xa.ndim == 0 or ya.ndim == 0:
        raise ValueError("matmul: both arguments need at least 1 dimension, got shapes %s and %s"
                         % (xa.shape, ya.shape))
    if xa.dtype != ya.dtype and (xa.dtype.kind != "f" or ya.dtype.kind != "f"):
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: %s != %s"
                           % (_TORCH_NAMES[xa.dtype.char], _TORCH_NAMES[ya.dtype.char]))
    if xa.dtype != ya.dtype:
        # torch refuses mixed-precision products too; elementwise ops promote, a product does not
        raise TypeError("matmul: operands have different dtypes %s and %s; convert one with .float() or "
                        ".double()" % (xa.dtype, ya.dtype))
    a_vec, b_vec = xa.ndim == 1, ya.ndim == 1
    A = xa.reshape(1, -1) if a_vec else xa
    B = ya.reshape(-1, 1) if b_vec else ya
    if A.shape[-1] != B.shape[-2]:
        raise ValueError("matmul: shapes %s and %s are not aligned (%d != %d in the contracted dimension)"
                         % (xa.shape, ya.shape, A.shape[-1], B.shape[-2]))
    try:
        if A.ndim > 2 and B.ndim > 2:  # only batched operands have batch dimensions to reconcile
            np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError:
        raise ValueError("matmul: batch dimensions of shapes %s and %s cannot be broadcast together"
                         % (xa.shape, ya.shape)) from None
    if xa.dtype.kind == "b":  # torch has no boolean product; it names the kernel its dispatch reached
        kernel = "dot" if a_vec and b_vec else "bmm" if ya.ndim > 2 else "addmv_impl_cpu" if b_vec else \
            "addmm_impl_cpu_"
        raise NotImplementedError("\"%s\" not implemented for 'Bool'" % kernel)
    if xa.dtype.kind != "f":  # int64/int32 never require grad: numpy's exact product, wrapping as torch's
        return wrap(np.matmul(xa, ya))
    out = _mm(A, B)
    if a_vec:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if b_vec:
        out = out.reshape(out.shape[:-1])
    return record(out, MatmulBackward, (x, y), (A, B), (a_vec, b_vec))


cdef class AddmmBackward(ShapedNode):
    # out = c + a @ b; saved = (a, b).  Gradients: g summed to c's shape (the input shapes are kept),
    # g @ b.T for a, a.T @ g for b.  (nn._recurrent's step records a subclass that takes b.T from a
    # packing made once for every step, its meta.)

    cpdef object grad_place(self, GraphTask task, int nr):
        # c's gradient is the output's, unchanged, when c has the product's shape: its place is c's
        edge = self.next_functions[0]
        if edge is None or self.input_shapes[0] != self.shape:
            return None
        return (<Node>edge[0]).grad_place(task, edge[1])

    cpdef object backward(self, object g):
        return self._gradients(g, None)

    cpdef object apply(self, GraphTask task, object g):
        # The gradient mat1 already has, if any, is added by the kernel: an RNN step's state gets its
        # gradient from the output and from the next step; a layer's input, from the input projections of
        # both directions.  (The engine has checked it: mat1's shape and dtype.)
        return self._gradients(g, task.take_grad(self, 1) if self.next_functions[1] is not None else None)

    cdef object b_transposed(self):
        """b.T, the right operand of a's gradient g @ b.T."""
        return self.saved[1].T

    cdef tuple _gradients(self, object g, object prev):
        """The gradients of c, a and b; ``prev`` (or None) is added to a's."""
        wants = self.next_functions
        gc = ga = gb = None
        if wants[0] is not None:
            c_shape = self.input_shapes[0]
            gc = g if c_shape == self.shape else unbroadcast(g, c_shape)
        if wants[1] is not None:
            bt = self.b_transposed()
            ga = K.matmul(g, bt) if prev is None else K.addmm(prev, g, bt)
        if wants[2] is not None:
            gb = ProductSum(self.saved[0], g)
        return gc, ga, gb


def addmm(input, mat1, mat2):
    """``input + mat1 @ mat2`` as one node (torch.addmm with beta = alpha = 1): ``mat1`` (n, m) and ``mat2``
    (m, p) are 2-D, ``input`` broadcasts to (n, p) (a bias (p,), say).  The kernel adds the product into
    ``input`` as it writes the result: one pass over the output instead of two.  ``nn.functional.linear``
    uses it."""
    cdef Tensor z, x, y
    z, x = operands(input, mat1, False)  # mixed dtypes are refused below, a 0-d input's too
    y = operands(mat1, mat2, False)[1]
    za, xa, ya = z._data, x._data, y._data
    if xa.ndim != 2 or ya.ndim != 2:
        raise ValueError("addmm: mat1 and mat2 must be 2-D, got shapes %s and %s" % (xa.shape, ya.shape))
    if xa.shape[1] != ya.shape[0]:
        raise ValueError("addmm: mat1 and mat2 shapes cannot be multiplied (%dx%d and %dx%d)"
                         % (xa.shape[0], xa.shape[1], ya.shape[0], ya.shape[1]))
    if not (za.dtype == xa.dtype == ya.dtype):
        raise TypeError("addmm: expected one dtype, got %s (input), %s (mat1) and %s (mat2)"
                        % (za.dtype, xa.dtype, ya.dtype))
    shape = (xa.shape[0], ya.shape[1])
    if za.ndim > 2 or any(d != 1 and d != e for d, e in zip(za.shape[::-1], shape[::-1])):
        raise ValueError("addmm: input of shape %s does not broadcast to the product's shape %s"
                         % (za.shape, shape))
    out = K.addmm(za, xa, ya)
    return record(out, AddmmBackward, (z, x, y), (xa, ya))
