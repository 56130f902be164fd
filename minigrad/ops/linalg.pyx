"""Matrix products on the C kernel, with numpy's matmul semantics (1-D operands, batched broadcasting)."""
import numpy as np

from minigrad import _backend as K
from minigrad.autograd.engine cimport GraphTask, LazyGrad, Node
from minigrad.ops.elementwise import TanhBackward
from minigrad.ops.common cimport operands, unbroadcast
from minigrad.tensor cimport Tensor, any_requires_grad, attach, wrap


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
        # the kernel packs the factors from where they lie: no stacked copies of them
        return K.matmul_stacked_t(self.lefts, self.rights)


cdef class MatmulBackward(Node):
    # saved = (A, B) as 2+-D arrays (1-D operands promoted), with flags to undo the promotion
    cdef bint a_vec, b_vec

    cdef object b_transposed(self, object b):
        """B.T as the right operand of the 2-D backward product g @ B.T."""
        return b.T

    cpdef object backward(self, object g):
        a, b = self.saved
        if a.ndim == 2 and b.ndim == 2 and not (self.a_vec or self.b_vec):
            # the common case (an RNN step, a Linear layer) without numpy's Python-level helpers
            return (K.matmul(g, self.b_transposed(b)) if self.next_functions[0] is not None else None,
                    ProductSum(a, g) if self.next_functions[1] is not None else None)
        if self.b_vec:
            g = np.expand_dims(g, -1)
        if self.a_vec:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if self.next_functions[0] is not None:
            ga = unbroadcast(_mm(g, np.swapaxes(b, -1, -2)), a.shape)
            if self.a_vec:
                ga = ga.reshape(a.shape[-1])
        if self.next_functions[1] is not None:
            if b.ndim == 2 and not self.b_vec:
                # dL/dB = A.T @ G summed over all rows of A; handed to the engine unevaluated, so that a weight
                # used at every time step gets its gradient as one product (see ProductSum)
                rows = _prod(a.shape[:-1])
                gb = ProductSum(a.reshape(rows, a.shape[-1]), g.reshape(rows, g.shape[-1]))
            else:
                gb = unbroadcast(_mm(np.swapaxes(a, -1, -2), g), b.shape)
            if self.b_vec:
                gb = gb.reshape(b.shape[-2])
        return ga, gb


def matmul(a, b):
    """Matrix product with numpy's rules: 1-D operands are vectors, leading dimensions broadcast."""
    cdef Tensor x, y
    x, y = operands(a, b)
    xa, ya = x._data, y._data
    if xa.ndim == 0 or ya.ndim == 0:
        raise ValueError("matmul: both arguments need at least 1 dimension, got shapes %s and %s"
                         % (xa.shape, ya.shape))
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
    out = _mm(A, B)
    if a_vec:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if b_vec:
        out = out.reshape(out.shape[:-1])
    if not any_requires_grad((x, y)):
        return wrap(out)
    cdef MatmulBackward node = MatmulBackward.__new__(MatmulBackward)
    node.a_vec = a_vec
    node.b_vec = b_vec
    node.saved = (A, B)
    return attach(out, node, (x, y))


cdef class _Packing:
    # The packed copies of one operand's array, shared by every product node that uses them: a node holds
    # this, never the operand's tensor (a graph node refers to no tensor; see engine.pyx).
    cdef object data, packed, packed_t

    cdef object transposed(self):
        if self.packed_t is None:
            self.packed_t = K.pack(self.data.T)
        return self.packed_t


cdef class ReusedOperand:
    """A right operand ``b`` (a 2-D tensor) of many products, packed for the kernel once: ``b`` now for the
    forward products, ``b.T`` at the first backward product that needs it (an RNN multiplies every step's
    state by the same ``W_hh.T``, and its backward every step's gradient by ``W_hh``).  A snapshot: make a
    new one after ``b`` changes (the RNN makes one per forward call)."""
    cdef readonly Tensor b
    cdef _Packing _packing

    def __init__(self, b):
        cdef Tensor t = b if isinstance(b, Tensor) else None
        if t is None or t._data.ndim != 2:
            raise TypeError("ReusedOperand: expected a 2-D minigrad Tensor, got %r" % (b,))
        self.b = t
        self._packing = _Packing.__new__(_Packing)
        self._packing.data = t._data
        self._packing.packed = K.pack(t._data)

    @property
    def packed(self):
        """pack(b), made when this operand was."""
        return self._packing.packed

    @property
    def packed_transposed(self):
        """pack(b.T), made by the first backward product that needed it (None before)."""
        return self._packing.packed_t


cdef class ReusedMatmulBackward(MatmulBackward):
    """matmul's backward for ``x @ r.b`` (same gradients and bits), taking ``g @ b.T`` from ``r``'s packing."""
    cdef _Packing packing

    cdef object b_transposed(self, object b):
        return self.packing.transposed()

    def name(self):
        return "MatmulBackward"


cdef Tensor _reused_left(object a, ReusedOperand r, str fn):
    """``a`` checked as the 2-D left operand of a product with ``r.b``."""
    cdef Tensor x = a if isinstance(a, Tensor) else None
    if x is None:
        raise TypeError("%s: expected a minigrad Tensor, got %s" % (fn, type(a).__name__))
    if r.b is None:  # made with ReusedOperand.__new__, never initialised
        raise TypeError("%s: the ReusedOperand was not initialised; make it with ReusedOperand(b)" % fn)
    xa, ya = x._data, r.b._data
    if xa.ndim != 2 or xa.shape[1] != ya.shape[0]:
        raise ValueError("%s: shapes %s and %s are not aligned for a 2-D product" % (fn, xa.shape, ya.shape))
    if xa.dtype != ya.dtype:
        raise TypeError("%s: operands have different dtypes %s and %s" % (fn, xa.dtype, ya.dtype))
    return x


def matmul_reused(a, ReusedOperand r not None):
    """``a @ r.b`` for a 2-D tensor ``a``, with ``r.b`` packed once for every such product (see
    ReusedOperand): the same values, bits and gradients as ``matmul(a, r.b)``."""
    cdef Tensor x = _reused_left(a, r, "matmul_reused")
    xa, ya = x._data, r.b._data
    out = K.matmul(xa, r._packing.packed)
    if not any_requires_grad((x, r.b)):
        return wrap(out)
    cdef ReusedMatmulBackward node = ReusedMatmulBackward.__new__(ReusedMatmulBackward)
    node.saved = (xa, ya)
    node.packing = r._packing
    return attach(out, node, (x, r.b))


cdef class AddmmBackward(Node):
    # out = c + a @ b; saved = (a, b) (with b's packing kept, addmm_reused, b is there only to be
    # version-checked).  Gradients: g summed
    # to c's shape (c_shape None: c has the product's shape), g @ b.T for a, a.T @ g for b.
    cdef _Packing packing
    cdef tuple c_shape

    cpdef object grad_place(self, GraphTask task, int nr):
        # c's gradient is the output's, unchanged, when c has the product's shape: its place is c's
        edge = self.next_functions[0]
        if edge is None or self.c_shape is not None:
            return None
        return (<Node>edge[0]).grad_place(task, edge[1])

    cpdef object backward(self, object g):
        return self._gradients(g, None)

    cpdef object apply(self, GraphTask task, object g):
        # The gradient mat1 already has, if any, is added by the kernel: an RNN step's state gets its
        # gradient from the output and from the next step; a layer's input, from the input projections of
        # both directions.  (The engine has checked it: mat1's shape and dtype.)
        return self._gradients(g, task.take_grad(self, 1) if self.next_functions[1] is not None else None)

    cdef tuple _gradients(self, object g, object prev):
        """The gradients of c, a and b; ``prev`` (or None) is added to a's."""
        wants = self.next_functions
        gc = ga = gb = None
        if wants[0] is not None:
            gc = g if self.c_shape is None else unbroadcast(g, self.c_shape)
        if wants[1] is not None:
            bt = self.packing.transposed() if self.packing is not None else self.saved[1].T
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
    if not any_requires_grad((z, x, y)):
        return wrap(out)
    cdef AddmmBackward node = AddmmBackward.__new__(AddmmBackward)
    node.saved = (xa, ya)
    node.c_shape = None if za.shape == shape else za.shape
    return attach(out, node, (z, x, y))


def addmm_reused(c, a, ReusedOperand r not None, activation=None, out=None):
    """``c + a @ r.b`` as one node, as torch's addmm (and its RNN's step) records it: ``c`` has the product's
    shape and dtype, the product is added to it as the kernel writes the result.  One op and one pass over
    the step's state fewer than ``c + matmul_reused(a, r)``, with the same gradients.

    ``activation="tanh"`` gives ``tanh(c + a @ r.b)``, recorded as the same two nodes as
    ``addmm_reused(c, a, r).tanh()`` (AddmmBackward, then TanhBackward) with the same values and gradients,
    but computed by one kernel call: the sum itself is never stored (nothing needs it), and the threads
    that share the product share the tanh too.

    ``out`` (optional) is a numpy array of the result's shape and dtype, sharing no memory with the operands,
    that the kernel writes the result into, and the result's storage: an RNN writes each step's state
    straight into its place in the layer's output this way (see ``ops.shape.stack_cat``)."""
    _check_activation(activation, "addmm_reused")
    cdef Tensor z = _reused_addend(c, a, r, "addmm_reused")
    cdef Tensor x = <Tensor>a
    return _addmm_reused_result(K.addmm(z._data, x._data, r._packing.packed, activation, out), z, x, r,
                                activation)


cdef void _check_activation(object activation, str fn) except *:
    if activation is not None and activation != "tanh":
        raise ValueError("%s: activation must be None or 'tanh', got %r" % (fn, activation))


cdef Tensor _reused_addend(object c, object a, ReusedOperand r, str fn):
    """``c`` checked as the addend of ``a @ r.b`` (its exact shape and dtype), after ``a`` itself."""
    cdef Tensor z = c if isinstance(c, Tensor) else None
    if z is None:
        raise TypeError("%s: expected a minigrad Tensor for c, got %s" % (fn, type(c).__name__))
    cdef Tensor x = _reused_left(a, r, fn)
    xa, ya, ca = x._data, r.b._data, z._data
    if ca.shape != (xa.shape[0], ya.shape[1]):
        raise ValueError("%s: c has shape %s, the product has shape %s"
                         % (fn, ca.shape, (xa.shape[0], ya.shape[1])))
    if ca.dtype != ya.dtype:
        raise TypeError("%s: operands have different dtypes %s (c) and %s" % (fn, ca.dtype, ya.dtype))
    return z


cdef object _addmm_reused_result(object out, Tensor z, Tensor x, ReusedOperand r, object activation):
    """``out`` (the kernel's result) as a tensor, with the nodes of addmm_reused."""
    if not any_requires_grad((z, x, r.b)):
        return wrap(out)
    cdef AddmmBackward node = AddmmBackward.__new__(AddmmBackward)
    node.saved = (x._data, r.b._data)  # b itself only for its version: the backward reads the packing
    node.packing = r._packing
    if activation is None:
        return attach(out, node, (z, x, r.b))
    # The sum's tensor only carries the edge from the tanh node to the addmm node (its node records the
    # shape and dtype, which out shares); it is dropped here, as the sum of the two-op form would be.
    cdef Tensor pre = attach(out, node, (z, x, r.b))
    cdef Node act = TanhBackward.__new__(TanhBackward)
    act.saved = (out,)
    return attach(out, act, (pre,))


def addmm_reused_many(cs, as_, rs, activation=None, outs=None):
    """``[addmm_reused(cs[i], as_[i], rs[i], activation, outs[i]) for i ...]``: the same tensors, values and
    graph (each product its own nodes), but the products run as one parallel job (``addmm_many``): the
    two directions of a bidirectional RNN's step share the threads in one hand-off instead of two.  The
    products must be independent (no output feeds another's operands)."""
    _check_activation(activation, "addmm_reused_many")
    if not all(isinstance(v, (list, tuple)) for v in (cs, as_, rs)):
        raise TypeError("addmm_reused_many: cs, as_ and rs must be lists or tuples")
    n = len(cs)
    if len(as_) != n or len(rs) != n or (outs is not None and len(outs) != n):
        raise ValueError("addmm_reused_many: expected as many as_, rs (and outs) as cs (%d)" % n)
    zs = []
    for i in range(n):
        if not isinstance(rs[i], ReusedOperand):
            raise TypeError("addmm_reused_many: rs[%d] must be a ReusedOperand, got %s"
                            % (i, type(rs[i]).__name__))
        zs.append(_reused_addend(cs[i], as_[i], rs[i], "addmm_reused_many"))
    results = K.addmm_many([(<Tensor>z)._data for z in zs], [(<Tensor>a)._data for a in as_],
                           [(<ReusedOperand>r)._packing.packed for r in rs], activation, outs)
    return [_addmm_reused_result(results[i], zs[i], as_[i], rs[i], activation) for i in range(n)]
