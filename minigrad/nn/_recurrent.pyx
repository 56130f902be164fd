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
- ``sequence(cs, hs, rs, outs, reverse, activation)`` equals that loop of ``steps`` over whole sequences
  (each step its nodes), with all the products run as one kernel job (each thread takes whole rows of the
  batch through every step); its backward (``SeqTanhBackward``) is one kernel job the same way.
- ``stack_into(tensors, out)`` equals ``stack(tensors, 0)`` and ``stack_cat(groups, dim, out)`` equals
  ``cat([stack(g) for g in groups], dim)``: a layer's output, with the steps the kernel wrote in place not
  copied again.

An activation is an epilogue: the kernel's own (``K.addmm``'s ``activation``: tanh) or a ufunc applied in
place to the kernel's result (relu).  Either way the result's node saves only the result.  A gated cell's
step is the same shape: one product of the state with all its gates' weights, then an epilogue:

- ``lstm_epilogue(gates, c, h_out)`` equals ``i, f, g, o = gates.chunk(4, 1)``,
  ``c' = f.sigmoid() * c + i.sigmoid() * g.tanh()``, ``h' = o.sigmoid() * c'.tanh()`` and returns (h', c');
- ``gru_epilogue(gi, gh, h, h_out)`` equals ``r = (gi_r + gh_r).sigmoid()``, ``z = (gi_z + gh_z).sigmoid()``,
  ``n = (gi_n + r * gh_n).tanh()``, ``h' = (1 - z) * n + z * h`` (the chunks of gi and gh in order r, z, n).

Each is one K.lstm_forward / K.gru_forward call writing every output the ops would (``h_out``: h' straight
into the layer's output), then the ops' nodes recorded on those arrays, saving what the ops save.  Their
backward is one K.lstm_backward / K.gru_backward call when nothing needs the nodes run one by one (see
``LstmHeadBackward``); the nodes still all exist, and otherwise run their plain backward.

- ``lstm_sequence(xgs, states, rs, outs, reverse)`` equals the loop of ``step`` and ``lstm_epilogue`` over
  whole sequences, with every product and epilogue in one K.lstm_seq job (each thread its rows of the batch
  through every step); its backward runs a chain of steps as one K.lstm_seq_backward job (``_lstm_chain``).
  ``gru_sequence`` is the same for ``gru_epilogue`` (K.gru_seq).
"""
import numpy as np

cimport numpy as cnp

cnp.import_array()

from minigrad import _backend as K
from minigrad.autograd.engine cimport GraphTask, InputBuffer, Node, anomaly_enabled
from minigrad.autograd.versions cimport check_saved
from minigrad.ops.common cimport norm_dim
from minigrad.ops.fast cimport OP_SUB, binary, scalar_array
from minigrad.ops.elementwise import MulBackward, ReluBackward, SigmoidBackward, TanhBackward
from minigrad.ops.linalg cimport AddmmBackward
from minigrad.ops.linalg import ProductSum
from minigrad.ops.shape cimport _cat_ends, _catted, _equal_shape, _lies_at, _stacked, _tensor_list
from minigrad.tensor cimport Tensor, any_requires_grad, record, record_outputs, wrap


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


# ---- a sequence's backward ----------------------------------------------------------------------------
cdef class SeqAddmmBackward(ReusedAddmmBackward):
    """addmm's node of a step ``sequence`` recorded (AddmmBackward): after its step's tanh node ran the
    sequence's fused backward (``SeqTanhBackward``), the previous state's gradient is already where it goes,
    and this node hands on only c's and the weight's."""

    cpdef object apply(self, GraphTask task, object g):
        if task.node_state.pop(self, None) is None:
            return AddmmBackward.apply(self, task, g)
        wants = self.next_functions
        return (g if wants[0] is not None else None, None,
                ProductSum(self.saved[0], g) if wants[2] is not None else None)


cdef class SeqTanhBackward(Node):
    """tanh's node (TanhBackward, saved = (y,)) of a step ``sequence`` recorded.  The first of a sequence's
    tanh nodes the engine reaches (the last step's) runs the backward of every step below it whose gradient
    from elsewhere is complete (see ``_chain``) as one K.tanh_seq_backward job -- each thread takes whole rows
    of the batch through every step, so no step waits for another thread -- the bits of the nodes' own
    backward.  Each of those steps' tanh node then
    gets its gradient (dz, already in its place) as its buffer and hands it on; addmm's nodes hand on c's and
    the weight's gradients only."""

    cpdef object backward(self, object g):
        return (K.tanh_backward(g, self.saved[0]),)

    cpdef object apply(self, GraphTask task, object g):
        if task.node_state.pop(self, None) is not None:
            return (g,)  # the fused backward's dz for this step
        cdef list chain = _chain(task, self, g)
        if chain is None:
            return (K.tanh_backward(g, self.saved[0], _grad_place(task, self)),)
        cdef Py_ssize_t i, n = len(chain)
        cdef Node node
        ys = [(<Node>node).saved[0] for node in chain]
        gs = [_rows(g)]
        for i in range(1, n):
            b = task.buffers.get(chain[i])
            prev = None if b is None else (<InputBuffer>b).grads[0]
            gs.append(None if prev is None else _rows(prev))
        head_add = <Node>self.next_functions[0][0]
        # where no slice of the input projection's gradient takes a step's dz, the job makes one array
        dzs = K.tanh_seq_backward(gs, ys, (<_Packing>head_add.meta).transposed(),
                                  [_grad_place(task, node) for node in chain])
        for i in range(1, n):
            node = chain[i]
            b = task.buffer(node)
            (<InputBuffer>b).grads[0] = dzs[i]
            (<InputBuffer>b).set_owned(0, False)
            task.node_state[node] = True
            task.node_state[<Node>(<Node>chain[i - 1]).next_functions[0][0]] = True
        return (dzs[0],)

    def name(self):
        return "TanhBackward"


cdef object _grad_place(GraphTask task, Node tanh):
    """Where ``tanh``'s input gradient goes in this pass (the step's slice of the input projection's), if it
    fits the kernels' output (unit column stride, rows apart); else None."""
    edge = tanh.next_functions[0]
    if edge is None:
        return None
    y = tanh.saved[0]
    place = (<Node>edge[0]).grad_place(task, edge[1])
    if (place is None or place.shape != y.shape or place.dtype != y.dtype
            or (place.shape[1] > 1 and place.strides[1] != place.itemsize)
            or (place.shape[0] > 1 and place.strides[0] < place.shape[1] * place.itemsize)):
        return None
    return place


cdef list _chain(GraphTask task, SeqTanhBackward head, object g):
    """The tanh nodes from ``head`` down its sequence (head first) whose backward can run as one fused job
    now: below the head, each one's gradients from elsewhere have all arrived (only the next step's addmm is
    still to come) as plain arrays, no hook or retain_grad sees a gradient the job skips, nothing saved has
    changed in place (the plain nodes then raise torch's error, each its own), one weight throughout; no
    autograd.grad capture or anomaly mode (they act node by node).  None when fewer than two steps qualify."""
    if task.wanted is not None or anomaly_enabled() or type(g) is not np.ndarray:
        return None
    cdef list chain = [head]
    cdef Node node = head, add, prev
    edge = head.next_functions[0]
    if edge is None or type(edge[0]) is not SeqAddmmBackward:
        return None
    cdef object packing = (<Node>edge[0]).meta
    while True:
        add = <Node>node.next_functions[0][0]
        edge = add.next_functions[1]
        if (edge is None or type(edge[0]) is not SeqTanhBackward or add._pre_hooks or add._retained is not None
                or (<Node>add).meta is not packing):
            break
        try:
            check_saved(add, add.saved, add._epoch)
        except RuntimeError:
            break
        prev = <Node>edge[0]
        if task.deps.get(prev) != 1 or prev._pre_hooks or prev._retained is not None or prev.saved is None:
            break
        pedge = prev.next_functions[0]
        if pedge is None or type(pedge[0]) is not SeqAddmmBackward or (<Node>pedge[0]).meta is not packing:
            break
        b = task.buffers.get(prev)
        pg = None if b is None else (<InputBuffer>b).grads[0]
        if pg is not None and type(pg) is not np.ndarray:
            break  # held lazily: the plain nodes evaluate it
        try:
            check_saved(prev, prev.saved, prev._epoch)
        except RuntimeError:
            break
        chain.append(prev)
        node = prev
    return chain if len(chain) > 1 else None


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


cdef object _recorded(object res, Tensor z, Tensor x, ReusedOperand r, _Epilogue epi,
                      type add_node=ReusedAddmmBackward, type act_node=None):
    """``res`` (the kernel's result, its epilogue applied) as a tensor, with the nodes of step (``add_node``
    and ``act_node``: sequence's classes of them)."""
    cdef Tensor pre = record(res, add_node, (z, x, r.b), (x._data, r.b._data), r._packing)
    if epi is None or pre._grad_fn is None:
        return pre
    # The sum's tensor only carries the edge from the activation's node to addmm's (its node records the
    # shape and dtype, which res shares); it is dropped here, as the sum of the two-op form would be.
    return record(res, epi.node if act_node is None else act_node, (pre,), (res,))


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


cdef object _addends(object c, Py_ssize_t length, str fn):
    """The ``length`` addends ``c`` (tensors of one shape and dtype, in time order) as one (L, N, H) array
    for the kernel: a view when they lie evenly spaced in one array, as ``unbind(0)`` leaves them, else a
    copy."""
    if not isinstance(c, (list, tuple)) or len(c) != length:
        raise TypeError("%s: each cs[i] must be a list or tuple of %d tensors (one per step)" % (fn, length))
    cdef Py_ssize_t t
    for t in range(length):
        if not isinstance(c[t], Tensor):
            raise TypeError("%s: expected minigrad Tensors as addends, got %s" % (fn, type(c[t]).__name__))
    # (C-level comparisons of shapes, dtypes and strides: as Python tuples they cost ~0.7 us a step)
    cdef cnp.ndarray d, first = <cnp.ndarray>(<Tensor>c[0])._data
    cdef int nd = cnp.PyArray_NDIM(first)
    cdef char *p0 = <char *>cnp.PyArray_DATA(first)
    cdef Py_ssize_t step = 0
    if length > 1:
        step = <char *>cnp.PyArray_DATA(<cnp.ndarray>(<Tensor>c[1])._data) - p0
    cdef bint even = True
    for t in range(length):
        d = <cnp.ndarray>(<Tensor>c[t])._data
        if (cnp.PyArray_NDIM(d) != nd
                or not cnp.PyArray_CompareLists(cnp.PyArray_DIMS(d), cnp.PyArray_DIMS(first), nd)
                or (<void *>cnp.PyArray_DESCR(d) != <void *>cnp.PyArray_DESCR(first) and d.dtype != first.dtype)):
            raise ValueError("%s: the addends of one direction need one shape and dtype, got %s %s and %s %s"
                             % (fn, (<object>first).shape, first.dtype, (<object>d).shape, d.dtype))
        even = (even and cnp.PyArray_CompareLists(cnp.PyArray_STRIDES(d), cnp.PyArray_STRIDES(first), nd)
                and <char *>cnp.PyArray_DATA(d) == p0 + t * step)
    if even:
        return np.lib.stride_tricks.as_strided(first, (length,) + (<object>first).shape,
                                               (step,) + (<object>first).strides)
    return np.stack([(<Tensor>x)._data for x in c], axis=0)


def sequence(cs, hs, rs, outs, reverse, activation=None):
    """Equals the loop ``step`` would run over whole sequences: per direction i, from ``h = hs[i]``, for each
    step s with t = s (``L - 1 - s`` when ``reverse[i]``), ``h = step(cs[i][t], h, rs[i], activation,
    outs[i][t])``; returns per direction its L states in time order.  The same tensors, values and graph
    (each step its addmm and activation nodes, recorded in the loop's order, the directions of a step
    together), but all the sequence's products run as one kernel job (K.addmm_seq), each thread taking whole
    rows of the batch through every step, instead of one hand-off to the pool per step.

    ``cs[i]``: the L addends (N, H) in time order (``unbind(0)`` of the input projection); ``outs[i]``: an
    (L, N, H) array with unit column stride, sharing no memory with the operands, the states' storage.
    ``activation``: None or ``"tanh"`` (relu is applied after each product: run ``steps`` for it)."""
    cdef _Epilogue epi = _epilogue(activation, "sequence")
    if epi is not None and epi.kernel is None:
        raise ValueError("sequence: activation %r is not a kernel epilogue; run steps() for it" % (activation,))
    if not all(isinstance(v, (list, tuple)) for v in (cs, hs, rs, outs, reverse)):
        raise TypeError("sequence: cs, hs, rs, outs and reverse must be lists or tuples")
    cdef Py_ssize_t i, s, t, n = len(cs)
    if n == 0 or len(hs) != n or len(rs) != n or len(outs) != n or len(reverse) != n:
        raise ValueError("sequence: expected as many hs, rs, outs and reverse as cs (at least one)")
    cdef Py_ssize_t length = len(cs[0]) if isinstance(cs[0], (list, tuple)) else 0
    if length == 0:
        raise ValueError("sequence: cs[0] must be a non-empty list or tuple of tensors")
    addends = []
    for i in range(n):
        if not isinstance(rs[i], ReusedOperand):
            raise TypeError("sequence: rs[%d] must be a ReusedOperand, got %s" % (i, type(rs[i]).__name__))
        addends.append(_addends(cs[i], length, "sequence"))
        _operands(cs[i][0], hs[i], rs[i], "sequence")  # the first step's shapes and dtypes stand for all
    K.addmm_seq(addends, [(<Tensor>h)._data for h in hs], [(<ReusedOperand>r)._packing.packed for r in rs],
                outs, reverse, None if epi is None else epi.kernel)
    states = list(hs)
    results = [[None] * length for _ in range(n)]
    cdef type add_node = SeqAddmmBackward if epi is not None else ReusedAddmmBackward
    cdef type act_node = SeqTanhBackward if epi is not None else None
    for s in range(length):
        for i in range(n):
            t = length - 1 - s if reverse[i] else s
            states[i] = results[i][t] = _recorded(outs[i][t], cs[i][t], states[i], rs[i], epi, add_node,
                                                  act_node)
    return results


# ---- the gated cells' epilogues ------------------------------------------------------------------------
# The nodes of chunk, add and 1 - x for operands of one shape: the ops' classes keep their shapes in C
# fields this module cannot set, so these compute the same gradients (the same arrays) under the same names.
cdef class GateSplitBackward(Node):
    """chunk's node (SplitBackward) for ``n_outputs`` equal column sections of a 2-D tensor."""

    cpdef object backward(self, object grads):
        cdef Py_ssize_t k, width = self.shape[0][1]
        gx = None
        for k in range(self.n_outputs):
            g = grads[k]
            if g is None:
                continue
            if gx is None:
                gx = np.zeros((self.shape[0][0], width * self.n_outputs), dtype=g.dtype)
            gx[:, k * width:(k + 1) * width] = g
        return (gx,)

    cpdef object apply(self, GraphTask task, object grads):
        # a fused backward left the whole gradient (its sections are ``grads``) for this pass
        whole = task.node_state.pop(self, None)
        return self.backward(grads) if whole is None else (whole,)

    def name(self):
        return "SplitBackward"


cdef class GateAddBackward(Node):
    """add's node (AddBackward) for two operands of the result's shape."""

    cpdef object backward(self, object g):
        return g, g

    def name(self):
        return "AddBackward"


cdef class GateRsubBackward(Node):
    """The node (SubBackward) of ``1 - x``: the constant needs no gradient."""

    cpdef object backward(self, object g):
        return None, -g

    def name(self):
        return "SubBackward"


cdef tuple _mul_grads(Node node, object g):
    """mul's gradients (MulBackward's) for operands of the result's shape, saved = (a, b)."""
    a, b = node.saved
    return (np.multiply(g, b) if node.next_functions[0] is not None else None,
            np.multiply(g, a) if node.next_functions[1] is not None else None)


cdef class GateStateMulBackward(Node):
    """mul's node (MulBackward) of ``gate * state``, the product through which a gated step's previous state
    (an LSTM's c, a GRU's h) gets its gradient: after a fused backward it hands that gradient (its buffer)
    on to the state, as its backward would have computed it."""

    cpdef object backward(self, object g):
        return _mul_grads(self, g)

    cpdef object apply(self, GraphTask task, object g):
        if task.node_state.pop(self, None) is None:
            return _mul_grads(self, g)
        return None, g

    def name(self):
        return "MulBackward"


cdef Node _at(Node node, int i):
    """The node of ``node``'s input ``i`` (every edge of a fused group exists)."""
    return <Node>node.next_functions[i][0]


cdef bint _plain_nodes(list nodes):
    """No hook, retain_grad on any of ``nodes``: nothing sees the gradients a fused backward skips."""
    cdef Node n
    for n in nodes:
        if n._pre_hooks or n._retained is not None:
            return False
    return True


cdef object _rows(object g):
    """``g`` with contiguous rows any non-negative distance apart (the gate kernels' layout): a broadcast
    gradient (a sum's) copied."""
    if g.strides[1] == g.itemsize and g.strides[0] >= 0:
        return g
    return np.ascontiguousarray(g)


cdef bint _fusable(GraphTask task, Node head, tuple saved):
    """Can ``head``'s group run one fused backward in ``task``: no autograd.grad capture (its pruning and
    capture points are per node), no anomaly mode (it checks every node's gradient), and no saved array
    changed in place (the plain nodes then raise torch's error, each its own)."""
    if task.wanted is not None or anomaly_enabled():
        return False
    try:
        check_saved(head, saved, head._epoch)
    except RuntimeError:
        return False
    return True


cdef void _hand_to_split(GraphTask task, Node split, object whole, Py_ssize_t width) except *:
    """The gradients of ``split``'s sections (all the consumers of which are skipped) are ``whole``'s
    column sections: its buffer gets them and its backward returns ``whole``."""
    cdef InputBuffer b = task.buffer(split)
    cdef Py_ssize_t k
    for k in range(split.n_outputs):
        b.grads[k] = whole[:, k * width:(k + 1) * width]
    task.node_state[split] = whole


cdef object _place(GraphTask task, Node split, object shape, object dtype):
    """Where ``split``'s input gradient goes in this pass (an LSTM/GRU layer's input projection step), if it
    fits a gate kernel's output; else None."""
    edge = split.next_functions[0]
    if edge is None:
        return None
    place = (<Node>edge[0]).grad_place(task, edge[1])
    if (place is None or place.shape != shape or place.dtype != dtype or place.strides[1] != place.itemsize
            or place.strides[0] < place.shape[1] * place.itemsize):
        return None
    return place


cdef class LstmHeadBackward(Node):
    """The node (MulBackward) of an LSTM step's ``h' = sigmoid(o) * tanh(c')``, the first of the step's nodes
    the engine reaches.  When the step's other nodes need not run one by one (see ``_fusable``) and the
    gradient of c' from later steps is complete, it computes the gradients of the gates and of c with one
    K.lstm_backward call (bitwise the nodes' own) and hands them to the split and to ``f * c``'s node; the
    nodes in between then receive no gradient and do not run."""
    cdef object act, c_prev      # what K.lstm_backward reads besides saved = (sigmoid(o), tanh(c'))

    cdef void release(self):
        self.act = self.c_prev = None
        Node.release(self)

    cpdef object backward(self, object g):
        return _mul_grads(self, g)

    cpdef object apply(self, GraphTask task, object g):
        if task.node_state.pop(self, None) is not None:
            return None, None  # a sequence's fused backward computed this step (see _lstm_chain)
        cdef list nodes = _lstm_step_nodes(self)
        cdef Node add = nodes[2]
        cdef Node fc = nodes[3]
        cdef Node split = nodes[6]
        if (self.act is None or task.deps.get(add) != 1
                or not _fusable(task, self, (self.act, self.c_prev, self.saved[1])) or not _plain_nodes(nodes)):
            return _mul_grads(self, g)
        cdef InputBuffer b = task.buffers.get(add)
        dc = None
        if b is not None:
            dc = b.grads[0]
            if dc is not None and type(dc) is not np.ndarray:
                return _mul_grads(self, g)  # a gradient held lazily: the plain nodes evaluate it
            b.grads[0] = None  # c''s node then has no gradient to pass on
        act = self.act
        cdef list chain = _lstm_chain(task, self, g)
        if chain is not None:
            _run_lstm_chain(task, chain, _rows(g), None if dc is None else _rows(dc))
            return None, None
        d_gates, dc_prev = K.lstm_backward(_rows(g), None if dc is None else _rows(dc), act, self.c_prev,
                                           self.saved[1], _place(task, split, act.shape, act.dtype))
        _hand_to_split(task, split, d_gates, self.saved[1].shape[1])
        if fc.next_functions[1] is not None:
            task.buffer(fc).grads[0] = dc_prev
            task.node_state[fc] = True
        return None, None

    def name(self):
        return "MulBackward"


cdef list _lstm_step_nodes(Node head):
    """An LSTM step's nodes from its head (``LstmHeadBackward``) to its split, in lstm_epilogue's layout:
    [head, tanh(c'), c' (the add), f * c, i * g, sigmoid(o), the split, sigmoid(f), sigmoid(i), tanh(g)]."""
    cdef Node tanh_c = _at(head, 1)
    cdef Node add = _at(tanh_c, 0)
    cdef Node fc = _at(add, 0)
    cdef Node ig = _at(add, 1)
    cdef Node sig_o = _at(head, 0)
    return [head, tanh_c, add, fc, ig, sig_o, _at(sig_o, 0), _at(fc, 0), _at(ig, 0), _at(ig, 1)]


cdef Node _state_node_below(Node mm, object packing, type head_type):
    """The node (of type ``head_type``) of the state that ``mm``, a sequence step's state product, multiplies,
    if ``mm`` is such a product by the chain's packed weight, with no hook and nothing changed in place;
    else None."""
    edge = mm.next_functions[1]
    if (type(mm) is not SeqAddmmBackward or mm.meta is not packing or mm._pre_hooks or mm._retained is not None
            or edge is None or type(edge[0]) is not head_type):
        return None
    try:
        check_saved(mm, mm.saved, mm._epoch)
    except RuntimeError:
        return None
    return <Node>edge[0]


cdef bint _plain_buffer_and_saved(GraphTask task, Node node, tuple saved) except -1:
    """``node``'s gradient so far is None or an array (not held lazily: the plain nodes evaluate that), and
    nothing it saved (``saved``) has changed in place."""
    cdef InputBuffer b = task.buffers.get(node)
    if b is not None and b.grads[0] is not None and type(b.grads[0]) is not np.ndarray:
        return False
    try:
        check_saved(node, saved, node._epoch)
    except RuntimeError:
        return False
    return True


cdef list _lstm_chain(GraphTask task, LstmHeadBackward head, object g):
    """The LSTM steps from ``head`` (whose own step can run fused) down its sequence (lstm_sequence's: addmm
    nodes that share one packed weight), head first, whose backward can run as one K.lstm_seq_backward job
    now: below the head, each step's h has all its gradients but the next step's product's, its cell state
    has none yet (only its own tanh and the next step's ``f * c`` use it), and its nodes are plain and
    unchanged (as for the step's own fused backward).  None when fewer than two steps qualify."""
    if type(g) is not np.ndarray:
        return None
    cdef list chain = [head]
    cdef Node node = head, mm, prev, add, later_fc
    cdef list nodes
    cdef LstmHeadBackward lh
    cdef InputBuffer b
    mm = _at(_at(_at(head, 0), 0), 0)  # sig(o) -> the split -> the gates' addmm
    if type(mm) is not SeqAddmmBackward:
        return None
    packing = mm.meta
    while True:
        prev = _state_node_below(_at(_at(_at(node, 0), 0), 0), packing, LstmHeadBackward)
        if prev is None:
            break
        lh = <LstmHeadBackward>prev
        if task.deps.get(prev) != 1 or lh.act is None:
            break
        nodes = _lstm_step_nodes(prev)
        add = nodes[2]
        if not _plain_nodes(nodes):
            break
        later_fc = _at(_at(_at(node, 1), 0), 0)  # the step above's f * c, whose c is this step's
        if later_fc.next_functions[1] is None or _at(later_fc, 1) is not add or task.deps.get(add) != 2:
            break
        b = task.buffers.get(add)
        if b is not None and b.grads[0] is not None:
            break
        if not _plain_buffer_and_saved(task, prev, (lh.act, lh.c_prev, prev.saved[1])):
            break
        chain.append(prev)
        node = prev
    return chain if len(chain) > 1 else None


cdef void _run_lstm_chain(GraphTask task, list chain, object g, object dc) except *:
    """One K.lstm_seq_backward job for the steps of ``chain`` (``g``: the head's gradient, ``dc``: its cell
    state's), then each step's gate gradients handed to its split, its h's node and the product's gradient
    for the state below marked done, and the last step's cell-state gradient handed to its ``f * c``."""
    cdef Py_ssize_t k, n = len(chain)
    cdef LstmHeadBackward h
    cdef InputBuffer b
    cdef Node split, fc
    gs, acts, cps, tcs, places, splits = [g], [], [], [], [], []
    for k in range(n):
        h = <LstmHeadBackward>chain[k]
        if k > 0:
            b = task.buffers.get(h)
            gs.append(None if b is None or b.grads[0] is None else _rows(b.grads[0]))
        split = _at(_at(h, 0), 0)
        splits.append(split)
        acts.append(h.act)
        cps.append(h.c_prev)
        tcs.append(h.saved[1])
        places.append(_place(task, split, h.act.shape, h.act.dtype))
    mm = _at(<Node>splits[0], 0)
    d_gates, dc_prev = K.lstm_seq_backward(gs, dc, acts, cps, tcs, (<_Packing>(<Node>mm).meta).transposed(),
                                           places)
    width = cps[0].shape[1]
    for k in range(n):
        _hand_to_split(task, <Node>splits[k], d_gates[k], width)
        if k > 0:
            task.node_state[chain[k]] = True
            task.node_state[_at(<Node>splits[k - 1], 0)] = True  # its product's h gradient is in the job's
    fc = _at(_at(_at(<Node>chain[n - 1], 1), 0), 0)
    if fc.next_functions[1] is not None:
        task.buffer(fc).grads[0] = dc_prev
        task.node_state[fc] = True


cdef class GruHeadBackward(GateAddBackward):
    """The node (AddBackward) of a GRU step's ``h' = (1 - z) * n + z * h``, the first of the step's nodes
    the engine reaches: as ``LstmHeadBackward``, one K.gru_backward call gives the gradients of both gate
    products and of h (through ``z * h``'s node) when the nodes in between need not run one by one."""
    cdef object act, hn, h_prev  # what K.gru_backward reads

    cdef void release(self):
        self.act = self.hn = self.h_prev = None
        Node.release(self)

    cpdef object apply(self, GraphTask task, object g):
        if task.node_state.pop(self, None) is not None:
            return None, None  # a sequence's fused backward computed this step (see _gru_chain)
        cdef Node zh = _at(self, 1)
        cdef Node split_x = _at(_at(_at(_at(self, 0), 1), 0), 0)  # (1 - z) * n, tanh(n), gi_n + r * gh_n, split
        cdef Node split_h = _gru_split_h(self)
        if (self.act is None or not _fusable(task, self, (self.act, self.hn, self.h_prev))
                or not _plain_nodes(_gru_step_nodes(self))):
            return g, g
        cdef list chain = _gru_chain(task, self, g)
        if chain is not None:
            _run_gru_chain(task, chain, _rows(g))
            return None, None
        act = self.act
        shape = (act.shape[0], act.shape[1])
        d_xg, d_hg, dh_prev = K.gru_backward(_rows(g), act, self.hn, self.h_prev,
                                             _place(task, split_x, shape, act.dtype),
                                             _place(task, split_h, shape, act.dtype))
        width = self.hn.shape[1]
        _hand_to_split(task, split_x, d_xg, width)
        _hand_to_split(task, split_h, d_hg, width)
        if zh.next_functions[1] is not None:
            task.buffer(zh).grads[0] = dh_prev
            task.node_state[zh] = True
        return None, None

    def name(self):
        return "AddBackward"


cdef list _gru_step_nodes(Node head):
    """A GRU step's nodes from its head (``GruHeadBackward``) to its two splits, in gru_epilogue's layout."""
    cdef Node mul_a = _at(head, 0)
    cdef Node zh = _at(head, 1)
    cdef Node tanh_n = _at(mul_a, 1)
    cdef Node add_n = _at(tanh_n, 0)
    cdef Node rh = _at(add_n, 1)
    cdef Node sig_r = _at(rh, 0)
    cdef Node sig_z = _at(zh, 0)
    return [head, mul_a, zh, _at(mul_a, 0), tanh_n, add_n, rh, sig_r, sig_z, _at(sig_r, 0), _at(sig_z, 0),
            _at(add_n, 0), _at(rh, 1)]


cdef Node _gru_split_h(Node head):
    """The split of a GRU step's state product hg (r * gh_n's second input)."""
    return _at(_at(_at(_at(_at(head, 0), 1), 0), 1), 1)


cdef list _gru_chain(GraphTask task, GruHeadBackward head, object g):
    """As ``_lstm_chain``, for GRU steps recorded by ``gru_sequence``: below the head, each step's h has all
    its gradients but the two from the step above (its ``z * h`` and its product's), with plain, unchanged
    nodes, one packed weight throughout."""
    if type(g) is not np.ndarray:
        return None
    cdef list chain = [head]
    cdef Node node = head, mm, prev, zh
    cdef GruHeadBackward gh
    cdef InputBuffer b
    mm = _at(_gru_split_h(head), 0)
    if type(mm) is not SeqAddmmBackward:
        return None
    packing = mm.meta
    while True:
        prev = _state_node_below(_at(_gru_split_h(node), 0), packing, GruHeadBackward)
        if prev is None:
            break
        gh = <GruHeadBackward>prev
        zh = _at(node, 1)
        if (gh.act is None or task.deps.get(prev) != 2 or zh.next_functions[1] is None or _at(zh, 1) is not prev
                or not _plain_nodes(_gru_step_nodes(prev))):
            break
        if not _plain_buffer_and_saved(task, prev, (gh.act, gh.hn, gh.h_prev)):
            break
        chain.append(prev)
        node = prev
    return chain if len(chain) > 1 else None


cdef void _run_gru_chain(GraphTask task, list chain, object g) except *:
    """One K.gru_seq_backward job for the steps of ``chain``, then each step's gate gradients handed to its
    splits, its h's node and the product above it marked done, and the last step's gradient through
    ``z * h`` handed to that node."""
    cdef Py_ssize_t k, n = len(chain)
    cdef GruHeadBackward h
    cdef InputBuffer b
    cdef Node split_x, split_h, zh
    gs, acts, hns, hps, xplaces, hplaces, splits = [g], [], [], [], [], [], []
    for k in range(n):
        h = <GruHeadBackward>chain[k]
        if k > 0:
            b = task.buffers.get(h)
            gs.append(None if b is None or b.grads[0] is None else _rows(b.grads[0]))
        split_x = _at(_at(_at(_at(h, 0), 1), 0), 0)  # (1 - z) * n -> tanh(n) -> gi_n + r * gh_n -> split
        split_h = _gru_split_h(h)
        splits.append((split_x, split_h))
        acts.append(h.act)
        hns.append(h.hn)
        hps.append(h.h_prev)
        shape = (h.act.shape[0], h.act.shape[1])
        xplaces.append(_place(task, split_x, shape, h.act.dtype))
        hplaces.append(_place(task, split_h, shape, h.act.dtype))
    mm = _at(<Node>splits[0][1], 0)
    d_xgs, d_hgs, direct = K.gru_seq_backward(gs, acts, hns, hps, (<_Packing>(<Node>mm).meta).transposed(),
                                              xplaces, hplaces)
    width = hns[0].shape[1]
    for k in range(n):
        _hand_to_split(task, <Node>splits[k][0], d_xgs[k], width)
        _hand_to_split(task, <Node>splits[k][1], d_hgs[k], width)
        if k > 0:
            task.node_state[chain[k]] = True
            task.node_state[_at(<Node>splits[k - 1][1], 0)] = True  # its product's h gradient is in the job's
    zh = _at(<Node>chain[n - 1], 1)
    if zh.next_functions[1] is not None:
        task.buffer(zh).grads[0] = direct
        task.node_state[zh] = True


cdef Tensor _op(object cls, object array, tuple inputs, tuple saved):
    """``array`` (an op's result a kernel wrote) as that op's output: its node ``cls`` saving ``saved``,
    recorded on ``inputs`` when one of them requires grad, as the op itself records it."""
    return record(array, <type>cls, inputs, saved)


cdef tuple _chunks(Tensor t, Py_ssize_t n, Py_ssize_t width, list pieces=None):
    """``t.chunk(n, 1)`` of a 2-D ``t`` of ``n * width`` columns; ``pieces``: those views of ``t``'s array,
    when the caller has them already."""
    if pieces is None:
        data = t._data
        pieces = [data[:, k * width:(k + 1) * width] for k in range(n)]
    return record_outputs(pieces, GateSplitBackward, (t,))


cdef Tensor _gate_tensor(object obj, str name, str fn):
    if not isinstance(obj, Tensor):
        raise TypeError("%s: expected a minigrad Tensor for %s, got %s" % (fn, name, type(obj).__name__))
    cdef Tensor t = <Tensor>obj
    if t._data.ndim != 2 or t._data.dtype.kind != "f":
        raise ValueError("%s: %s must be a 2-D float32 or float64 tensor, got %s of shape %s"
                         % (fn, name, t._data.dtype, t._data.shape))
    return t


cdef void _check_gates(Tensor gates, str gname, Tensor state, str sname, int sections, str fn) except *:
    """``gates`` (B, sections * H) and ``state`` (B, H) of one dtype."""
    gs, ss = gates._data.shape, state._data.shape
    if gs != (ss[0], sections * ss[1]):
        raise ValueError("%s: %s has shape %s and %s has shape %s; expected (B, %d * H) and (B, H)"
                         % (fn, gname, gs, sname, ss, sections))
    if gates._data.dtype != state._data.dtype:
        raise TypeError("%s: %s has dtype %s and %s has dtype %s; expected one dtype"
                        % (fn, gname, gates._data.dtype, sname, state._data.dtype))


def lstm_epilogue(gates, c, h_out=None):
    """Equals ``i, f, g, o = gates.chunk(4, 1); c' = f.sigmoid() * c + i.sigmoid() * g.tanh();
    h' = o.sigmoid() * c'.tanh()`` and returns ``(h', c')``: the same bits, nodes and saved arrays, with
    every value computed by one K.lstm_forward call.  ``gates`` (B, 4H) and ``c`` (B, H) are 2-D tensors of
    one float dtype.  ``h_out`` (optional): a numpy array (B, H) with contiguous rows, sharing no memory with
    the operands, that becomes h''s storage (a step of an LSTM layer's output)."""
    cdef Tensor g = _gate_tensor(gates, "gates", "lstm_epilogue")
    cdef Tensor cp = _gate_tensor(c, "c", "lstm_epilogue")
    _check_gates(g, "gates", cp, "c", 4, "lstm_epilogue")
    act, c_arr, tanh_c, h_arr = K.lstm_forward(g._data, cp._data, None, None, None, h_out)
    return _lstm_recorded(g, cp, act, c_arr, tanh_c, h_arr)


cdef tuple _lstm_recorded(Tensor g, Tensor cp, object act, object c_arr, object tanh_c, object h_arr):
    """(h', c') of an LSTM step whose values K.lstm_forward (or K.lstm_seq) computed from the gates ``g`` and
    the cell state ``cp``, with the nodes of lstm_epilogue's ops recorded on them."""
    if not any_requires_grad((g, cp)):
        return wrap(h_arr), wrap(c_arr)
    cdef Py_ssize_t H = cp._data.shape[1]
    si, sf, tg, so = act[:, :H], act[:, H:2 * H], act[:, 2 * H:3 * H], act[:, 3 * H:]
    # The two products are not stored; their tensors carry edges only, on an array of their shape (anomaly
    # mode checks each op's values, so it gets them).
    fc = ig = c_arr
    if anomaly_enabled():
        fc, ig = sf * cp._data, si * tg
    # With the gates requiring grad every node of the step exists: its backward can run fused (the head)
    cdef bint group = g._requires_grad
    # In a sequence the gates tensor is carried on the activations' array: its chunks are the views above
    i, f, gg, o = _chunks(g, 4, H, [si, sf, tg, so] if g._data is act else None)
    f_c = _op(GateStateMulBackward if group else MulBackward, fc,
              (_op(SigmoidBackward, sf, (f,), (sf,)), cp), (sf, cp._data))
    i_t = _op(SigmoidBackward, si, (i,), (si,))
    i_g = _op(MulBackward, ig, (i_t, _op(TanhBackward, tg, (gg,), (tg,))), (si, tg))
    c_new = _op(GateAddBackward, c_arr, (f_c, i_g), None)
    o_t = _op(SigmoidBackward, so, (o,), (so,))
    h_new = _op(LstmHeadBackward if group else MulBackward, h_arr,
                (o_t, _op(TanhBackward, tanh_c, (c_new,), (tanh_c,))), (so, tanh_c))
    if group:
        (<LstmHeadBackward>h_new._grad_fn).act = act
        (<LstmHeadBackward>h_new._grad_fn).c_prev = cp._data
    return h_new, c_new


def lstm_sequence(xgs, states, rs, outs, reverse):
    """Equals the loop an LSTM layer runs over whole sequences: per direction i, from ``(h, c) = states[i]``,
    for each step s with t = s (``L - 1 - s`` when ``reverse[i]``), ``gates = step(xgs[i][t], h, rs[i])``
    and ``h, c = lstm_epilogue(gates, c, outs[i][t])``; returns per direction its L pairs (h, c) in time
    order.  The same tensors, values and graph (each step its addmm node and the epilogue's nodes, recorded in
    the loop's order, the directions of a step together), but every product and epilogue runs in one kernel
    job (K.lstm_seq), each thread taking whole rows of the batch through every step, instead of two hand-offs
    to the pool per step.  As with ``sequence``, a step's gates tensor (the product's sum) is not stored: it
    carries the edge from the split to addmm's node, on the array of the gates' activations.

    ``xgs[i]``: the L input projections (N, 4H) in time order (``unbind(0)`` of the layer's); ``states[i]``:
    (h0, c0) tensors (N, H); ``rs[i]``: ``ReusedOperand(W_hh.T)``; ``outs[i]``: an (L, N, H) array with unit
    column stride, sharing no memory with the operands, the storage of the states h."""
    if not all(isinstance(v, (list, tuple)) for v in (xgs, states, rs, outs, reverse)):
        raise TypeError("lstm_sequence: xgs, states, rs, outs and reverse must be lists or tuples")
    cdef Py_ssize_t i, s, t, n = len(xgs)
    if n == 0 or not len(states) == len(rs) == len(outs) == len(reverse) == n:
        raise ValueError("lstm_sequence: expected as many states, rs, outs and reverse as xgs (at least one)")
    cdef Py_ssize_t length = len(xgs[0]) if isinstance(xgs[0], (list, tuple)) else 0
    if length == 0:
        raise ValueError("lstm_sequence: xgs[0] must be a non-empty list or tuple of tensors")
    addends, hs, cs = [], [], []
    for i in range(n):
        if not isinstance(rs[i], ReusedOperand):
            raise TypeError("lstm_sequence: rs[%d] must be a ReusedOperand, got %s" % (i, type(rs[i]).__name__))
        if not isinstance(states[i], (list, tuple)) or len(states[i]) != 2:
            raise TypeError("lstm_sequence: states[%d] must be a pair (h, c) of tensors" % i)
        addends.append(_addends(xgs[i], length, "lstm_sequence"))
        _operands(xgs[i][0], states[i][0], rs[i], "lstm_sequence")  # the first step's shapes stand for all
        hs.append(states[i][0])
        cs.append(_gate_tensor(states[i][1], "c", "lstm_sequence"))
        _check_gates(<Tensor>xgs[i][0], "xgs[%d][0]" % i, <Tensor>cs[i], "c", 4, "lstm_sequence")
    acts, c_arrs, tanh_cs = K.lstm_seq(addends, [(<Tensor>h)._data for h in hs],
                                       [(<Tensor>c)._data for c in cs],
                                       [(<ReusedOperand>r)._packing.packed for r in rs], outs, reverse)
    results = [[None] * length for _ in range(n)]
    cdef Tensor gates
    for s in range(length):
        for i in range(n):
            t = length - 1 - s if reverse[i] else s
            act = acts[i][t]
            gates = _recorded(act, xgs[i][t], hs[i], rs[i], None, SeqAddmmBackward)
            hs[i], cs[i] = results[i][t] = _lstm_recorded(gates, cs[i], act, c_arrs[i][t], tanh_cs[i][t],
                                                          outs[i][t])
    return results


def gru_epilogue(gi, gh, h, h_out=None):
    """Equals, with ``gi`` and ``gh`` chunked into (r, z, n) sections, ``r = (gi_r + gh_r).sigmoid()``,
    ``z = (gi_z + gh_z).sigmoid()``, ``n = (gi_n + r * gh_n).tanh()`` and returns
    ``h' = (1 - z) * n + z * h``: the same bits, nodes and saved arrays, with every value computed by one
    K.gru_forward call.  ``gi``, ``gh`` (B, 3H) and ``h`` (B, H) are 2-D tensors of one float dtype; ``h_out``
    as ``lstm_epilogue``'s."""
    cdef Tensor xg = _gate_tensor(gi, "gi", "gru_epilogue")
    cdef Tensor hg = _gate_tensor(gh, "gh", "gru_epilogue")
    cdef Tensor hp = _gate_tensor(h, "h", "gru_epilogue")
    _check_gates(xg, "gi", hp, "h", 3, "gru_epilogue")
    _check_gates(hg, "gh", hp, "h", 3, "gru_epilogue")
    act, h_arr = K.gru_forward(xg._data, hg._data, hp._data, None, h_out)
    cdef Py_ssize_t H = hp._data.shape[1]
    one = act.dtype.type(1)
    return _gru_recorded(xg, hg, hp, act, h_arr, one - act[:, H:2 * H], wrap(np.asarray(one)))


cdef Tensor _gru_recorded(Tensor xg, Tensor hg, Tensor hp, object act, object h_arr, object omz_arr, Tensor one):
    """h' of a GRU step whose values K.gru_forward (or K.gru_seq) computed from ``xg``, ``hg`` and ``hp``, with
    the nodes of gru_epilogue's ops recorded on them.  ``omz_arr``: 1 - z, which the product (1 - z) * n
    saves, as the op saves it; ``one``: the constant 1 of that difference, a 0-d tensor of the step's dtype
    (no node keeps it).  A sequence makes both once for all its steps."""
    if not any_requires_grad((xg, hg, hp)):
        return wrap(h_arr)
    cdef Py_ssize_t H = hp._data.shape[1]
    r_arr, z_arr, n_arr = act[:, :H], act[:, H:2 * H], act[:, 2 * H:]
    # sums and products the kernel does not store: edge carriers (their values in anomaly mode)
    hn = hg._data[:, 2 * H:]
    s_r = s_z = r_hn = s_n = omz_n = z_h = h_arr
    if anomaly_enabled():
        with np.errstate(all="ignore"):
            s_r, s_z = xg._data[:, :H] + hg._data[:, :H], xg._data[:, H:2 * H] + hg._data[:, H:2 * H]
            r_hn = r_arr * hn
            s_n = xg._data[:, 2 * H:] + r_hn
            omz_n, z_h = omz_arr * n_arr, z_arr * hp._data
    i_r, i_z, i_n = _chunks(xg, 3, H)
    h_r, h_z, h_n = _chunks(hg, 3, H)
    r = _op(SigmoidBackward, r_arr, (_op(GateAddBackward, s_r, (i_r, h_r), None),), (r_arr,))
    z = _op(SigmoidBackward, z_arr, (_op(GateAddBackward, s_z, (i_z, h_z), None),), (z_arr,))
    s = _op(GateAddBackward, s_n, (i_n, _op(MulBackward, r_hn, (r, h_n), (r_arr, hn))), None)
    n = _op(TanhBackward, n_arr, (s,), (n_arr,))
    omz = _op(GateRsubBackward, omz_arr, (one, z), None)
    a = _op(MulBackward, omz_n, (omz, n), (omz_arr, n_arr))
    # With both gate products requiring grad every node of the step exists: its backward can run fused
    cdef bint group = xg._requires_grad and hg._requires_grad
    cdef Tensor out = _op(GruHeadBackward if group else GateAddBackward, h_arr,
                          (a, _op(GateStateMulBackward if group else MulBackward, z_h, (z, hp), (z_arr, hp._data))),
                          None)
    if group:
        (<GruHeadBackward>out._grad_fn).act = act
        (<GruHeadBackward>out._grad_fn).hn = hn
        (<GruHeadBackward>out._grad_fn).h_prev = hp._data
    return out


cdef object _one_minus_z(object act, Py_ssize_t H):
    """``1 - z`` of a GRU sequence's activations ``act`` (L, N, 3H) as one (L, N, H) array: the z sections
    taken as rows 3H apart by the small-op loop (ops/fast.pyx; numpy's buffered path copied them first)."""
    cdef Py_ssize_t L = act.shape[0], N = act.shape[1]
    out = binary(OP_SUB, scalar_array(1.0, act), act.reshape(L * N, 3 * H)[:, H:2 * H])
    if out is None:
        return act.dtype.type(1) - act[:, :, H:2 * H]
    return out.reshape(L, N, H)


def gru_sequence(xgs, addends, states, rs, outs, reverse):
    """Equals the loop a GRU layer runs over whole sequences: per direction i, from ``h = states[i]``, for
    each step s with t = s (``L - 1 - s`` when ``reverse[i]``), ``hg = step(addends[i], h, rs[i])`` and
    ``h = gru_epilogue(xgs[i][t], hg, h, outs[i][t])``; returns per direction its L states in time order.  The
    same tensors, values and graph (each step its addmm node and the epilogue's nodes, in the loop's order),
    but every product and epilogue runs in one kernel job (K.gru_seq), each thread taking whole rows of the
    batch through every step.

    ``xgs[i]``: the L input projections (N, 3H) in time order; ``addends[i]``: the (N, 3H) tensor every
    step's state product is added to (b_hh's rows); ``states[i]``: h0 (N, H); ``rs[i]``:
    ``ReusedOperand(W_hh.T)``; ``outs[i]`` as ``lstm_sequence``'s."""
    if not all(isinstance(v, (list, tuple)) for v in (xgs, addends, states, rs, outs, reverse)):
        raise TypeError("gru_sequence: xgs, addends, states, rs, outs and reverse must be lists or tuples")
    cdef Py_ssize_t i, s, t, n = len(xgs)
    if n == 0 or not len(addends) == len(states) == len(rs) == len(outs) == len(reverse) == n:
        raise ValueError("gru_sequence: expected as many addends, states, rs, outs and reverse as xgs (at least "
                         "one)")
    cdef Py_ssize_t length = len(xgs[0]) if isinstance(xgs[0], (list, tuple)) else 0
    if length == 0:
        raise ValueError("gru_sequence: xgs[0] must be a non-empty list or tuple of tensors")
    xarrays, hs = [], []
    for i in range(n):
        if not isinstance(rs[i], ReusedOperand):
            raise TypeError("gru_sequence: rs[%d] must be a ReusedOperand, got %s" % (i, type(rs[i]).__name__))
        xarrays.append(_addends(xgs[i], length, "gru_sequence"))
        _operands(addends[i], states[i], rs[i], "gru_sequence")
        hs.append(_gate_tensor(states[i], "h", "gru_sequence"))
        _check_gates(_gate_tensor(xgs[i][0], "xgs[%d][0]" % i, "gru_sequence"), "xgs[%d][0]" % i, <Tensor>hs[i], "h",
                     3, "gru_sequence")
    hgs, acts = K.gru_seq(xarrays, [(<Tensor>a)._data for a in addends], [(<Tensor>h)._data for h in hs],
                          [(<ReusedOperand>r)._packing.packed for r in rs], outs, reverse)
    results = [[None] * length for _ in range(n)]
    cdef Tensor hg
    # every step's 1 - z in one pass per direction (acts[i] is (L, N, 3H)): the same values, one numpy call
    cdef Py_ssize_t H = (<Tensor>hs[0])._data.shape[1]
    one = acts[0].dtype.type(1)
    cdef tuple operands = tuple(hs) + tuple(addends) + tuple([(<ReusedOperand>r).b for r in rs])
    for i in range(n):
        operands += tuple(xgs[i])
    omzs = [_one_minus_z(a, H) for a in acts] if any_requires_grad(operands) else [None] * n
    cdef Tensor one_t = wrap(np.asarray(one))
    for s in range(length):
        for i in range(n):
            t = length - 1 - s if reverse[i] else s
            hg = _recorded(hgs[i][t], addends[i], hs[i], rs[i], None, SeqAddmmBackward)
            hs[i] = results[i][t] = _gru_recorded(xgs[i][t], hg, hs[i], acts[i][t], outs[i][t],
                                                  None if omzs[i] is None else omzs[i][t], one_t)
    return results


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
