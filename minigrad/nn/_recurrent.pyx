"""The recurrent fast path: what an RNN layer runs at every time step, in one module.

Each function equals a plain expression of ordinary ops -- the same values (the same bits on the C backend),
the same graph and the same gradients -- and is only faster:

- ``ReusedOperand(b)``: ``b`` (an RNN's ``W_hh.T``) packed for the kernel once per forward call instead of
  at every step's product, and ``b.T`` once for the backward.
- ``step(c, a, r, activation, out)`` equals ``activation(c + a @ r.b)``: one kernel call (the product added
  into ``c`` as it is written, the activation applied by the same pass; the sum is never stored), recorded
  as addmm's node then the activation's.  The gradient of ``a`` (the previous state) from the next step is
  added by the kernel into this step's ``g @ b.T`` (``AddmmBackward.apply``), and the weight's gradient over
  all steps is one product (``ops.linalg.ProductSum``).
- ``steps(cs, as_, rs, activation, outs)`` equals ``[step(cs[i], as_[i], rs[i], activation, outs[i]) ...]``:
  the two directions of a bidirectional layer's step as one kernel job.
- ``stack_into(tensors, out)`` equals ``stack(tensors, 0)`` and ``stack_cat(groups, dim, out)`` equals
  ``cat([stack(g) for g in groups], dim)``: a layer's output, with the steps the kernel wrote in place not
  copied again.

An activation is an epilogue: the kernel's own (``K.addmm``'s ``activation``: tanh) or a ufunc applied in
place to the kernel's result (relu).  Either way the result's node saves only the result.  A gated cell's
step is the same shape: one product of the state with all its gates' weights, then an epilogue.
"""
import numpy as np

cimport numpy as cnp

cnp.import_array()

from minigrad import _backend as K
from minigrad.ops.common cimport norm_dim
from minigrad.ops.elementwise import ReluBackward, TanhBackward
from minigrad.ops.linalg cimport AddmmBackward
from minigrad.ops.shape cimport _cat_ends, _catted, _equal_shape, _lies_at, _stacked, _tensor_list
from minigrad.tensor cimport Tensor, record


# ---- the packed weight --------------------------------------------------------------------------------
cdef class _Packing:
    # The packed copies of one operand's array, shared by every step's node: a node holds this, never the
    # operand's tensor (a graph node refers to no tensor; see engine.pyx).
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


cdef class ReusedAddmmBackward(AddmmBackward):
    """addmm's node for ``c + a @ r.b`` (the same gradients and bits), taking ``b.T`` from ``r``'s packing.
    It saves ``r.b``'s array only so that the engine's version check covers the weight; meta = the
    packing."""

    cdef object b_transposed(self):
        return (<_Packing>self.meta).transposed()

    def name(self):
        return "AddmmBackward"


# ---- activation epilogues -----------------------------------------------------------------------------
cdef class _Epilogue:
    # An activation applied to a step's sum as it is produced: by the kernel (``kernel``, the name K.addmm
    # takes) or else by ``ufunc`` in place on the kernel's result (nothing else needs the sum).  ``node`` is
    # the activation's node; it saves (result,).
    cdef object kernel, ufunc
    cdef type node

    cdef object finish(self, object res):
        if self.ufunc is not None:
            self.ufunc(res, res.dtype.type(0), out=res)
        return res


cdef _Epilogue _make_epilogue(object kernel, object ufunc, object node):
    cdef _Epilogue e = _Epilogue.__new__(_Epilogue)
    e.kernel, e.ufunc, e.node = kernel, ufunc, node
    return e


# tanh: the kernel's epilogue; relu: np.maximum(z, 0), exactly ops.elementwise.relu's forward
cdef dict _EPILOGUES = {"tanh": _make_epilogue("tanh", None, TanhBackward),
                        "relu": _make_epilogue(None, np.maximum, ReluBackward)}


cdef _Epilogue _epilogue(object activation, str fn):
    """The epilogue of ``activation`` (a name, or None for none)."""
    if activation is None:
        return None
    cdef _Epilogue e = _EPILOGUES.get(activation) if isinstance(activation, str) else None
    if e is None:
        raise ValueError("%s: activation must be None, 'tanh' or 'relu', got %r" % (fn, activation))
    return e


# ---- one step -----------------------------------------------------------------------------------------
cdef Tensor _operands(object c, object a, ReusedOperand r, str fn):
    """``c`` checked as the addend of ``a @ r.b`` (exactly the product's shape and dtype), ``a`` as its 2-D
    left operand."""
    cdef Tensor z = c if isinstance(c, Tensor) else None
    if z is None:
        raise TypeError("%s: expected a minigrad Tensor for c, got %s" % (fn, type(c).__name__))
    cdef Tensor x = a if isinstance(a, Tensor) else None
    if x is None:
        raise TypeError("%s: expected a minigrad Tensor, got %s" % (fn, type(a).__name__))
    if r.b is None:  # made with ReusedOperand.__new__, never initialised
        raise TypeError("%s: the ReusedOperand was not initialised; make it with ReusedOperand(b)" % fn)
    xa, ya, ca = x._data, r.b._data, z._data
    if xa.ndim != 2 or xa.shape[1] != ya.shape[0]:
        raise ValueError("%s: shapes %s and %s are not aligned for a 2-D product" % (fn, xa.shape, ya.shape))
    if xa.dtype != ya.dtype:
        raise TypeError("%s: operands have different dtypes %s and %s" % (fn, xa.dtype, ya.dtype))
    if ca.shape != (xa.shape[0], ya.shape[1]):
        raise ValueError("%s: c has shape %s, the product has shape %s"
                         % (fn, ca.shape, (xa.shape[0], ya.shape[1])))
    if ca.dtype != ya.dtype:
        raise TypeError("%s: operands have different dtypes %s (c) and %s" % (fn, ca.dtype, ya.dtype))
    return z


cdef object _recorded(object res, Tensor z, Tensor x, ReusedOperand r, _Epilogue epi):
    """``res`` (the kernel's result, its epilogue applied) as a tensor, with the nodes of step."""
    cdef Tensor pre = record(res, ReusedAddmmBackward, (z, x, r.b), (x._data, r.b._data), r._packing)
    if epi is None or pre._grad_fn is None:
        return pre
    # The sum's tensor only carries the edge from the activation's node to addmm's (its node records the
    # shape and dtype, which res shares); it is dropped here, as the sum of the two-op form would be.
    return record(res, epi.node, (pre,), (res,))


def step(c, a, ReusedOperand r not None, activation=None, out=None):
    """Equals ``activation(c + a @ r.b)`` (``activation``: None, ``"tanh"`` or ``"relu"``), as torch's
    RNN records a step: addmm's node (``c`` has the product's shape and dtype), then the activation's.
    Computed by one kernel call that adds the product into ``c`` and applies the activation as it writes
    the result.

    ``out`` (optional) is a numpy array of the result's shape and dtype, sharing no memory with the operands,
    that becomes the result's storage: an RNN writes each step's state straight into its place in the layer's
    output this way (see ``stack_cat``)."""
    cdef _Epilogue epi = _epilogue(activation, "step")
    cdef Tensor z = _operands(c, a, r, "step")
    cdef Tensor x = <Tensor>a
    res = K.addmm(z._data, x._data, r._packing.packed, None if epi is None else epi.kernel, out)
    return _recorded(res if epi is None else epi.finish(res), z, x, r, epi)


def steps(cs, as_, rs, activation=None, outs=None):
    """Equals ``[step(cs[i], as_[i], rs[i], activation, outs[i]) for i ...]``: the same tensors, values and
    graph (each product its own nodes), but the products run as one parallel kernel job: the two directions
    of a bidirectional RNN's step share the threads in one hand-off instead of two.  The products must be
    independent (no output feeds another's operands)."""
    cdef _Epilogue epi = _epilogue(activation, "steps")
    if not (isinstance(cs, (list, tuple)) and isinstance(as_, (list, tuple))
            and isinstance(rs, (list, tuple))):
        raise TypeError("steps: cs, as_ and rs must be lists or tuples")
    cdef Py_ssize_t i, n = len(cs)
    if len(as_) != n or len(rs) != n or (outs is not None and len(outs) != n):
        raise ValueError("steps: expected as many as_, rs (and outs) as cs (%d)" % n)
    zs = []
    for i in range(n):
        if not isinstance(rs[i], ReusedOperand):
            raise TypeError("steps: rs[%d] must be a ReusedOperand, got %s" % (i, type(rs[i]).__name__))
        zs.append(_operands(cs[i], as_[i], rs[i], "steps"))
    kernel = None if epi is None else epi.kernel
    if n == 1:  # one direction: the plain kernel call, without the job's lists
        results = [K.addmm((<Tensor>zs[0])._data, (<Tensor>as_[0])._data,
                           (<ReusedOperand>rs[0])._packing.packed, kernel, None if outs is None else outs[0])]
    else:
        results = K.addmm_many([(<Tensor>z)._data for z in zs], [(<Tensor>a)._data for a in as_],
                               [(<ReusedOperand>r)._packing.packed for r in rs], kernel, outs)
    return [_recorded(results[i] if epi is None else epi.finish(results[i]), zs[i], as_[i], rs[i], epi)
            for i in range(n)]


# ---- the layer's output: the steps joined where they lie ----------------------------------------------
cdef void _byte_range(cnp.ndarray a, char **lo, char **hi) noexcept:
    cdef int i
    cdef Py_ssize_t n, s
    lo[0] = hi[0] = <char *>cnp.PyArray_DATA(a)
    if cnp.PyArray_SIZE(a) == 0:
        return
    hi[0] += cnp.PyArray_ITEMSIZE(a)
    for i in range(cnp.PyArray_NDIM(a)):
        n, s = cnp.PyArray_DIMS(a)[i], cnp.PyArray_STRIDES(a)[i]
        if s < 0:
            lo[0] += (n - 1) * s
        else:
            hi[0] += (n - 1) * s


cdef void _stack_into(list ts, cnp.ndarray view, cnp.ndarray out) except *:
    """view[i] = ts[i] for every tensor not already lying there (an RNN step written in place).  A tensor
    lying anywhere else in ``out`` is refused: copying the others could overwrite it (its own value)."""
    cdef Py_ssize_t i
    cdef cnp.ndarray place, data
    cdef char *olo
    cdef char *ohi
    cdef char *lo
    cdef char *hi
    _byte_range(out, &olo, &ohi)
    cdef list todo = []
    for i in range(len(ts)):
        data = (<Tensor>ts[i])._data
        place = view[i]
        if _lies_at(data, place):
            continue
        _byte_range(data, &lo, &hi)
        if lo < ohi and olo < hi and np.shares_memory(data, out):
            raise ValueError("stack: input %d is a part of out other than its place in the result; copying "
                             "the others into out would overwrite it" % i)
        todo.append(i)
    if len(todo) == len(ts):  # the usual case: one copy of them all
        np.stack([(<Tensor>t)._data for t in ts], axis=0, out=view)
    else:
        for i in todo:
            view[i] = (<Tensor>ts[i])._data


cdef cnp.ndarray _check_result_buffer(object out, tuple shape, object dtype, str fn):
    """``out`` if it is a writable numpy array of exactly ``shape`` and ``dtype``, else TypeError or
    ValueError."""
    if type(out) is not np.ndarray:
        raise TypeError("%s: out must be a numpy array, got %s" % (fn, type(out).__name__))
    if out.shape != shape or out.dtype != dtype:
        raise ValueError("%s: out has shape %s and dtype %s; the result has shape %s and dtype %s"
                         % (fn, out.shape, out.dtype, shape, dtype))
    cdef cnp.ndarray o = out
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError("%s: out is read-only" % fn)
    return o


def stack_into(tensors, out):
    """Equals ``stack(tensors, 0)``, with ``out`` (a numpy array of the result's shape and dtype) as the
    result's storage.  A tensor that already lies at its place in ``out`` (an RNN's step state, written there
    by ``step(..., out=out[t])``) is not copied again; the others are.  The same graph as ``stack``: one
    StackBackward."""
    ts = _tensor_list(tensors, "stack_into")
    shape = (len(ts),) + _equal_shape(ts, "")
    cdef cnp.ndarray o = _check_result_buffer(out, shape, (<Tensor>ts[0])._data.dtype, "stack_into")
    _stack_into(ts, o, o)
    return _stacked(o, tuple(ts), 0)


def stack_cat(groups, dim=-1, out=None):
    """Equals ``cat([stack(g) for g in groups], dim)``: the same values and the same graph (a StackBackward
    per group, then one CatBackward), but each tensor is copied once, straight into its place in the result,
    instead of once into its group's stack and again into the cat.  The output of a bidirectional RNN layer
    is this, with its two directions' steps as the groups.

    ``out`` (optional): a numpy array of the result's shape and dtype to be the result's storage; tensors
    that already lie at their place in it (the RNN writes each step's state there) are not copied at all."""
    if not isinstance(groups, (list, tuple)) or len(groups) == 0:
        raise TypeError("stack_cat expects a non-empty list of lists of tensors, got %r" % (groups,))
    sizes = []
    flat = []
    for g in groups:
        if isinstance(g, Tensor) or not isinstance(g, (list, tuple)) or len(g) == 0:
            raise TypeError("stack_cat expects each group to be a non-empty list or tuple of tensors")
        sizes.append(len(g))
        flat.extend(g)
    ts = _tensor_list(flat, "stack_cat")  # one dtype for all, as cat would promote
    lists, start = [], 0
    for n in sizes:
        lists.append(ts[start:start + n])
        start += n
    shapes = [(len(g),) + _equal_shape(g, " of group %d" % k) for k, g in enumerate(lists)]
    first = shapes[0]
    axis = norm_dim(dim, len(first))
    ends = _cat_ends(shapes, axis)
    shape = first[:axis] + (ends[-1],) + first[axis + 1:]
    dtype = (<Tensor>ts[0])._data.dtype
    if out is None:
        out = np.empty(shape, dtype=dtype)
    else:
        _check_result_buffer(out, shape, dtype, "stack_cat")
    stacked = []
    start = 0
    for g, end in zip(lists, ends):
        index = [slice(None)] * len(first)
        index[axis] = slice(start, end)
        view = out[tuple(index)]
        _stack_into(g, view, out)
        stacked.append(_stacked(view, tuple(g), 0))  # its tensor carries only the edge to the cat
        start = end
    return _catted(out, tuple(stacked), axis, ends)
