"""The reverse-mode engine: graph nodes, gradient accumulation and the backward traversal.

Every differentiable op that runs while grad mode is on records a ``Node``.  A node knows the nodes that
produced its inputs (``next_functions``) and keeps the arrays its backward needs (``saved``); it never holds
its own output tensor, so the recorded graph has no reference cycles and is released as soon as the last
tensor pointing into it goes away.

``run_backward`` walks the graph iteratively (no recursion, so a 100,000-step chain is fine):

1. count, for every reachable node, how many edges lead into it;
2. start from the roots and process a node once all its consumers have delivered their gradients, adding up
   the contributions of every use (a weight used at every time step gets the sum over all steps);
3. free each node's saved arrays right after its backward unless ``retain_graph`` is set.

Nodes are made and recorded by one function, ``minigrad.tensor.record``.  They are hidden from Python's
cycle collector by the hook in ``collector.pyx``, which says what that buys.
"""
import os
import threading
import traceback
import weakref

import numpy as np

cimport numpy as cnp

from minigrad.autograd.collector cimport holds_user_object, on_new_node, plain
from minigrad.autograd.collector import expose_graph, graph_hidden, live_nodes  # noqa: F401  (re-exported)
from minigrad.autograd.versions cimport bump, check_saved

cnp.import_array()

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object obj, int *overflow) except? -1
    Py_ssize_t PyTuple_GET_SIZE(object t)
    void *PyTuple_GET_ITEM(object t, Py_ssize_t i)

cdef extern from *:
    """
    #if defined(_MSC_VER)
    static __declspec(thread) int minigrad_grad_mode = 1;
    #else
    static __thread int minigrad_grad_mode = 1;
    #endif
    #if defined(_MSC_VER)
    static __declspec(thread) int minigrad_anomaly_mode = 0;
    #else
    static __thread int minigrad_anomaly_mode = 0;
    #endif
    """
    int minigrad_grad_mode
    int minigrad_anomaly_mode


cdef bint grad_enabled() noexcept nogil:
    return minigrad_grad_mode != 0


cdef void set_grad_enabled_c(bint mode) noexcept nogil:
    global minigrad_grad_mode
    minigrad_grad_mode = 1 if mode else 0


def is_grad_enabled():
    """True when ops record the graph in this thread."""
    return minigrad_grad_mode != 0


def _set_grad_mode(bint mode):
    """Set this thread's grad mode and return the previous one."""
    cdef bint prev = minigrad_grad_mode != 0
    set_grad_enabled_c(mode)
    return prev


cdef bint anomaly_enabled() noexcept nogil:
    return minigrad_anomaly_mode != 0


def is_anomaly_enabled():
    """True inside ``detect_anomaly()`` in this thread."""
    return minigrad_anomaly_mode != 0


def _set_anomaly_mode(bint mode):
    """Set this thread's anomaly mode and return the previous one."""
    global minigrad_anomaly_mode
    cdef bint prev = minigrad_anomaly_mode != 0
    minigrad_anomaly_mode = 1 if mode else 0
    return prev


cdef str _where(Node node):
    if node.trace is None:
        return ""
    return "\nThe op was created at (most recent call last):\n" + "".join(node.trace)


cdef void check_forward(Node node, object array) except *:
    """Anomaly mode: record where ``node`` was created and refuse a non-finite forward result."""
    node.trace = traceback.format_stack()  # compiled frames do not appear: the last entry is the caller
    if not np.isfinite(array).all():
        raise FloatingPointError("%s produced %s in its forward output (shape %s)%s"
                                 % (node.name().replace("Backward", ""), _bad_values(array),
                                    np.shape(array), _where(node)))


cdef str _bad_values(object array):
    arr = np.asarray(array)
    kinds = []
    if np.isnan(arr).any():
        kinds.append("nan")
    if np.isinf(arr).any():
        kinds.append("inf")
    return " and ".join(kinds)


cdef object _check_backward(Node node, object grads):
    """Anomaly mode: raise if any of ``node``'s gradients holds nan or inf; returns them, a gradient held
    lazily (a ProductSum) evaluated so that it is checked (and not computed a second time later)."""
    if grads is None:
        return grads
    checked = list(grads)
    for i, g in enumerate(checked):
        if isinstance(g, LazyGrad):
            g = checked[i] = (<LazyGrad>g).materialize()
        if g is not None and not np.isfinite(g).all():
            raise FloatingPointError("Function '%s' returned %s values in its %dth output%s"
                                     % (node.name(), _bad_values(g), i, _where(node)))
    return tuple(checked)


FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed). Saved intermediate values of the graph are freed when you call .backward(). "
    "Specify retain_graph=True if you need to backward through the graph a second time or if you need to "
    "access saved tensors after calling backward.")

cdef object _Tensor = None


cdef class LazyGrad:
    """A gradient held unevaluated until it is needed.  ``ops/linalg.pyx``'s ProductSum is one: a weight
    used at every time step receives one product ``x_t.T @ g_t`` per step, merged here and evaluated as ONE
    product when the weight's node runs.  The engine knows only this interface."""

    cpdef bint merge(self, LazyGrad other) except -1:
        """Add ``other`` into this one and say True, or say False when the two kinds cannot be merged (the
        engine then evaluates both and adds the arrays)."""
        return False

    cpdef LazyGrad transposed(self):
        """This gradient transposed, still unevaluated, or None when that is not possible."""
        return None

    cpdef object materialize(self):
        """The gradient as an array."""
        raise TypeError("%s must define materialize()" % type(self).__name__)


def new_accumulator(leaf):
    """The AccumulateGrad node of ``leaf`` (the tensor module caches it on the leaf)."""
    cdef AccumulateGrad acc = AccumulateGrad.__new__(AccumulateGrad)
    acc._leaf_ref = weakref.ref(leaf)
    acc._lock = threading.Lock()
    acc.next_functions = ()
    acc.shape = leaf.data.shape
    acc.dtype = leaf.data.dtype
    acc.n_outputs = 1
    on_new_node(acc)
    return acc


cdef object _wrap(object array):
    global _Tensor
    if _Tensor is None:
        from minigrad.tensor import Tensor as T
        _Tensor = T
    return _Tensor._from_array(array)


cdef int _hook_key = 0


cdef class Node:
    """A recorded operation.  Subclasses implement ``backward(grad) -> tuple of input gradients``."""

    @property
    def tag(self):
        """Free for tools (minigrad.viz stores (layer, direction, step) here); anything but plain data
        (numbers, strings, arrays, tuples of those) makes the graph visible to the cycle collector."""
        return self._tag

    @tag.setter
    def tag(self, value):
        if not plain(value):
            holds_user_object(self)
        self._tag = value

    def name(self):
        return type(self).__name__

    def __repr__(self):
        return "<%s>" % self.name()

    def __reduce__(self):
        # torch's error; a node holds raw pointers and arrays it shares with other nodes, never copied
        raise TypeError("cannot pickle %r object" % type(self).__name__)

    cdef tuple gc_edges(self):
        return self.next_functions

    cpdef object backward(self, object grad):
        raise NotImplementedError("%s has no backward" % type(self).__name__)

    cpdef object apply(self, GraphTask task, object grad):
        """backward(grad), run by the compiled engine in the pass ``task``.  A node with a fast path that
        needs the pass's state (gradient places, a gradient to fuse with) overrides this; its ``backward``
        stays the plain formula, which the reference engine runs."""
        return self.backward(grad)

    cpdef object lazy_backward(self, LazyGrad g):
        """backward(g) for a gradient still held lazily, without evaluating it, or None when this node needs
        the array (the default).  A transpose passes the transposed sum on, so a weight used as ``W.T``
        receives its gradient as one product that lands in ``W.grad`` as it is (no transposed copy)."""
        return None

    cpdef object grad_place(self, GraphTask task, int nr):
        """Where the gradient of output ``nr`` should be written in the pass ``task``, or None.

        A node whose backward collects its outputs' gradients into one array (unbind) hands out the slice
        of that array each gradient will be copied to; a node that passes a gradient on unchanged (addmm's
        ``input``) forwards the question.  The node computing the gradient (tanh) then writes it there,
        and the copy does not happen.  Each place is handed out once per pass; a gradient that does not
        end up exactly there (it was summed with another, say) is copied as before."""
        return None

    cdef void release(self):
        if self.saved is not None:
            self.saved = None
            self._freed = True

    @property
    def saved_arrays(self):
        """The arrays this node keeps for backward (read-only views), or None once freed."""
        if self.saved is None:
            return None
        return tuple(a for a in self.saved if isinstance(a, np.ndarray))

    def _register_pre_hook(self, int output_nr, fn):
        global _hook_key
        holds_user_object(self)  # fn may hold a tensor computed from this node's output: a graph cycle
        if self._pre_hooks is None:
            self._pre_hooks = {}
        hooks = self._pre_hooks.setdefault(output_nr, [])
        _hook_key += 1
        hooks.append((output_nr, _hook_key, fn))
        return RemovableHandle(hooks, _hook_key)

    def _retain(self, int output_nr, tensor):
        if self._retained is None:
            self._retained = {}
        self._retained[output_nr] = weakref.ref(tensor)

    # For the pure-Python engine (reference.py) and autograd.Function, which cannot reach cdef members.
    @property
    def pre_hooks(self):
        """The hooks on this node's outputs' gradients, [(output_nr, key, fn)] in registration order."""
        if self._pre_hooks is None:
            return []
        return sorted((e for hooks in self._pre_hooks.values() for e in hooks), key=lambda e: e[1])

    def retained(self, int output_nr):
        """The tensor that asked for retain_grad() on output ``output_nr`` (None if none or gone)."""
        ref = None if self._retained is None else self._retained.get(output_nr)
        return None if ref is None else ref()

    @property
    def freed(self):
        """True once a backward without retain_graph has released this node's saved arrays."""
        return self._freed

    def check_saved(self):
        """Raise torch's RuntimeError if an array saved for this node's backward was changed in place since
        the node was recorded (see versions.pyx); the engines call it right before ``backward``."""
        if self.saved is not None:
            check_saved(self, self.saved, self._epoch)

    def release_saved(self):
        """Free the saved arrays, as the engine does after this node's backward without retain_graph."""
        self.release()

    def hold_user_objects(self):
        """Declare that this node keeps objects a user gave it (autograd.Function's ctx), which may lead
        back to the graph: the graph becomes visible to the cycle collector (collector.pyx)."""
        holds_user_object(self)


cdef class ShapedNode(Node):
    """A node that keeps its inputs' shapes (``input_shapes``, set by ``minigrad.tensor.record``)."""


cdef class AccumulateGrad(Node):
    """Adds the incoming gradient into ``variable.grad`` (the leaf's hooks run first)."""

    @property
    def variable(self):
        """The leaf tensor this node accumulates into (None once that tensor is gone)."""
        return self._leaf_ref()

    cpdef object backward(self, object grad):
        return self._accept(grad, False)

    cpdef object apply(self, GraphTask task, object grad):
        return self._accept(grad, task.owns_grad)

    cdef object _accept(self, object grad, bint fresh):
        """backward(grad); ``fresh``: the engine made ``grad`` itself (a sum it allocated, a ProductSum it
        computed) and holds the only reference, so a first gradient can be adopted instead of copied."""
        leaf = self._leaf_ref()
        if leaf is None:
            return ()
        hooks = leaf._hooks
        if hooks:
            grad = _run_hooks([(0, k, fn) for k, fn in hooks], 0, grad)
            fresh = False  # a hook may have kept it
        with self._lock:  # another thread's pass may be adding into the same .grad (np.add drops the GIL)
            existing = leaf.grad
            if existing is None:
                if (fresh and type(grad) is np.ndarray and grad.dtype == self.dtype
                        and grad.flags.c_contiguous and grad.flags.writeable):
                    leaf.grad = _wrap(grad)
                else:
                    # A gradient may be shared (add returns the same array for both inputs): own a copy.
                    leaf.grad = _wrap(np.array(grad, dtype=self.dtype, copy=True, order="C"))
            else:
                buf = existing.data
                np.add(buf, grad, out=buf, casting="unsafe")
                bump(buf)  # .grad changed in place: a graph that saved it must not read the new values
        return ()


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, key):
        self._hooks = hooks
        self._key = key

    def remove(self):
        hooks = self._hooks
        for i, entry in enumerate(hooks):
            if entry[-2] == self._key:
                del hooks[i]
                return

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


cdef object _run_hooks(list hooks, int output_nr, object grad):
    """Call each hook on ``grad`` in turn; a hook may return a replacement of the same shape and dtype."""
    for entry in list(hooks):
        if entry[0] != output_nr:
            continue
        fn = entry[2]
        result = fn(_wrap(grad))
        if result is None:
            continue
        if isinstance(result, _Tensor):
            new = result.data
        elif isinstance(result, np.ndarray):
            new = result
        else:
            raise TypeError("hook %r returned %s; a hook returns a Tensor (the replacement gradient) or None"
                            % (fn, type(result).__name__))
        if new.shape != np.shape(grad):
            raise RuntimeError("hook %r has changed the size of value (was %s got %s)"
                               % (fn, np.shape(grad), new.shape))
        if new.dtype != grad.dtype:
            raise RuntimeError("hook %r has changed the type of value (was %s got %s)"
                               % (fn, grad.dtype, new.dtype))
        grad = new
    return grad


cdef bint has_shape(cnp.ndarray a, object shape) except -1:
    """``a.shape == shape``, read from the array's dimensions (no tuple made) when ``shape`` is a tuple of
    ints, as the recording path makes them."""
    if type(shape) is not tuple:
        return (<object>a).shape == shape
    cdef tuple s = <tuple>shape
    cdef int i, nd = cnp.PyArray_NDIM(a), overflow
    if PyTuple_GET_SIZE(s) != nd:
        return False
    for i in range(nd):
        item = <object>PyTuple_GET_ITEM(s, i)
        if type(item) is not int:
            return (<object>a).shape == shape
        if PyLong_AsLongLongAndOverflow(item, &overflow) != cnp.PyArray_DIMS(a)[i] or overflow:
            return False
    return True


cdef object _check_grad(Node node, int nr, object g):
    """Every gradient must have the shape of the tensor it belongs to; cast it to that tensor's dtype."""
    shape = node.shape[nr] if node.multi_output else node.shape
    dtype = node.dtype[nr] if node.multi_output else node.dtype
    if isinstance(g, LazyGrad):
        if (<LazyGrad>g).shape == shape and (<LazyGrad>g).dtype == dtype:
            return g
        g = (<LazyGrad>g).materialize()
    if type(g) is not np.ndarray:
        g = np.asarray(g)
    if not has_shape(<cnp.ndarray>g, shape):
        raise RuntimeError("%s: gradient of shape %s does not match the output's shape %s"
                           % (node.name(), g.shape, shape))
    # (the dtype objects of an op's output and of its gradient are usually the same object)
    if <object>cnp.PyArray_DESCR(<cnp.ndarray>g) is not dtype and g.dtype != dtype:
        g = g.astype(dtype)
    return g


# Which engine runs backward passes: this module's ("compiled") or the pure-Python one in reference.py,
# chosen by MINIGRAD_ENGINE when minigrad is imported.
ENGINE = os.environ.get("MINIGRAD_ENGINE") or "compiled"
if ENGINE not in ("compiled", "reference"):
    raise ValueError("MINIGRAD_ENGINE must be 'compiled' or 'reference', got %r" % ENGINE)


def run_backward(list roots not None, list grads not None, bint retain_graph, list capture=None):
    """Backpropagate ``grads`` from ``roots`` (a list of (node, output_nr)) through the recorded graph.

    With ``capture`` (a list of (node, output_nr), autograd.grad's inputs), return the total gradient that
    reaches each of those edges instead (None where none does): no AccumulateGrad runs, so no ``.grad``
    changes, and nodes that lead to no captured edge do not run (torch runs only what ``inputs`` need).
    """
    if len(grads) != len(roots):
        raise ValueError("run_backward: got %d roots but %d gradients" % (len(roots), len(grads)))
    for i, root in enumerate(roots):
        # the traversal trusts every node it meets: a None or foreign root would crash it
        if not (type(root) is tuple and len(root) == 2 and isinstance(root[0], Node)
                and type(root[1]) is int and 0 <= root[1] < (<Node>root[0]).n_outputs):
            raise TypeError("run_backward: roots[%d] must be a (Node, output_nr) pair with output_nr in "
                            "[0, n_outputs), got %r" % (i, root))
    # inf and nan in gradients are values, not warnings (as in torch); detect_anomaly is the tool to find them
    with np.errstate(all="ignore"):
        if ENGINE == "reference":
            from minigrad.autograd import reference
            return reference.run_backward(roots, grads, retain_graph, capture)
        return _run_backward(roots, grads, retain_graph, capture)


# ---- the backward pass ---------------------------------------------------------------------------------
cdef list _run_backward(list roots, list grads, bint retain_graph, list capture):
    """The main loop: count, seed, then run each node once all its consumers have handed over its
    gradients: hooks, backward, route the results to the nodes that produced its inputs, release."""
    cdef GraphTask task = GraphTask(roots, capture)
    cdef Node node
    cdef InputBuffer buffer
    for (node, nr), g in zip(roots, grads):
        if node in task.deps:
            task.buffer(node).add(nr, _check_grad(node, nr, g))
    for node in dict.fromkeys([root[0] for root in roots]):
        if task.deps.get(node) == 0:
            task.ready.append(node)
    while task.ready:
        node = task.ready.pop()
        buffer = task.buffers.pop(node, None)
        if node._freed and (task.runs is None or node in task.runs):
            raise RuntimeError(FREED_MESSAGE)
        if task.wanted is not None and node in task.wanted:
            _capture(node, buffer, task.wanted[node], task.captured, node in task.runs)
            if node not in task.runs:
                continue  # wanted for its gradient only: leads to no other captured edge
        input_grads = _run_node(task, node, buffer)
        if not retain_graph:
            node.release()
        task.route(node, input_grads)
    return task.captured


cdef object _run_node(GraphTask task, Node node, InputBuffer buffer):
    """``node``'s gradients for its inputs, given its outputs' (after their hooks), or None if it got none."""
    if buffer is None:
        return None
    if node.multi_output:
        outs = [None if g is None else _finish_output(node, i, _materialized(g))
                for i, g in enumerate(buffer.grads)]
        if all(g is None for g in outs):
            return None
        grad, task.owns_grad = tuple(outs), False
    else:
        g = buffer.grads[0]
        if g is None:
            return None
        if (isinstance(g, LazyGrad) and not node._pre_hooks and node._retained is None
                and not minigrad_anomaly_mode):
            passed_on = node.lazy_backward(<LazyGrad>g)  # e.g. a transpose passes the sum on, unevaluated
            if passed_on is not None:
                return passed_on
        array = _materialized(g)
        grad = _finish_output(node, 0, array)
        # made by the engine (a sum it allocated, a product it evaluated) and not kept by a hook
        task.owns_grad = (buffer.is_owned(0) or isinstance(g, LazyGrad)) and grad is array
    if node.saved is not None:
        check_saved(node, node.saved, node._epoch)
    input_grads = node.apply(task, grad)
    if minigrad_anomaly_mode:
        input_grads = _check_backward(node, input_grads)
    return input_grads


cdef inline object _materialized(object g):
    return (<LazyGrad>g).materialize() if isinstance(g, LazyGrad) else g


cdef object _finish_output(Node node, int nr, object g):
    """Run tensor hooks and retain_grad for one output's total gradient."""
    if node._pre_hooks:
        hooks = node._pre_hooks.get(nr)
        if hooks:
            g = _run_hooks(hooks, nr, g)
    if node._retained is not None and nr in node._retained:
        t = node._retained[nr]()
        if t is not None:
            if t.grad is None:
                t.grad = _wrap(np.array(g, copy=True))
            else:
                t.grad = _wrap(t.grad.data + g)
    return g


cdef class InputBuffer:
    """The gradients of one node's outputs, each summed over the uses of that output as they arrive."""

    def __cinit__(self, int n_outputs):
        self.grads = [None] * n_outputs
        self.owned = None  # no gradient the engine allocated yet: made with the first sum (most arrive once)

    cdef bint is_owned(self, int nr):
        return self.owned is not None and self.owned[nr]

    cdef void set_owned(self, int nr, bint owned) except *:
        if self.owned is None:
            if not owned:
                return
            self.owned = [False] * len(self.grads)
        self.owned[nr] = owned

    cdef void add(self, int nr, object g) except *:
        old = self.grads[nr]
        if old is None:
            self.grads[nr] = g
            return
        if isinstance(old, LazyGrad):
            if isinstance(g, LazyGrad) and (<LazyGrad>old).merge(<LazyGrad>g):
                return
            old = self.grads[nr] = (<LazyGrad>old).materialize()
            self.set_owned(nr, True)
        g = _materialized(g)
        if self.is_owned(nr):
            np.add(old, g, out=old)
        else:
            # Never write into an array the engine did not allocate: it may be a saved tensor or a user's.
            # (np.asarray: numpy turns a 0-d sum into a scalar, which cannot be added into later.)
            self.grads[nr] = np.asarray(old + g)
            self.set_owned(nr, True)


cdef class GraphTask:
    """One backward pass: how many consumers each node still waits for, the gradients collected so far, the
    ready nodes, and what nodes keep for the pass (unbind's gradient arena).  It is handed to every node
    the compiled engine runs (``Node.apply``); nothing about a pass lives outside it."""

    def __init__(self, list roots, list capture):
        self.deps = _count_consumers(roots)
        self.buffers = {}
        self.ready = []
        self.node_state = {}
        if capture is not None:
            self.deps, self.runs, self.wanted = _prune(roots, self.deps, capture)
            self.captured = [None] * len(capture)

    cdef InputBuffer buffer(self, Node node):
        cdef InputBuffer b = self.buffers.get(node)
        if b is None:
            b = self.buffers[node] = InputBuffer(node.n_outputs)
        return b

    cdef void route(self, Node node, object input_grads) except *:
        """Hand each input's gradient to the node that produced that input; a producer whose consumers have
        all run becomes ready."""
        cdef Node nxt
        cdef int i = 0, left
        for edge in node.next_functions:
            if edge is not None and (self.runs is None or edge[0] in self.deps):
                nxt = edge[0]
                if input_grads is not None:
                    g = input_grads[i]
                    if g is not None:
                        self.buffer(nxt).add(edge[1], _check_grad(nxt, edge[1], g))
                left = <int>self.deps[nxt] - 1
                self.deps[nxt] = left
                if left == 0:
                    self.ready.append(nxt)
            i += 1

    cdef object take_grad(self, Node node, int i):
        """For ``node``, while it runs: the gradient collected so far for its input ``i`` (an array), taken
        out of the pass, or None.  The node then returns that gradient plus its own contribution -- one
        fused step instead of a product and the engine's sum: an RNN step's ``h @ W_hh`` adds
        ``dz @ W_hh`` to the state's gradient from the output inside the kernel (ops/linalg.pyx)."""
        edge = node.next_functions[i]
        if edge is None:
            return None
        cdef InputBuffer b = self.buffers.get(edge[0])
        if b is None:
            return None
        g = b.grads[edge[1]]
        if type(g) is not np.ndarray:
            return None
        b.grads[edge[1]] = None
        return g


cdef dict _count_consumers(list roots):
    """How many edges lead into every node reachable from ``roots`` (iterative DFS: no recursion limit)."""
    cdef dict deps = {}
    cdef list stack = []
    cdef Node node
    for edge in roots:
        if edge[0] not in deps:
            deps[edge[0]] = 0
            stack.append(edge[0])
    while stack:
        node = stack.pop()
        for edge in node.next_functions:
            if edge is None:
                continue
            nxt = edge[0]
            count = deps.get(nxt)
            if count is None:
                deps[nxt] = 1
                stack.append(nxt)
            else:
                deps[nxt] = <int>count + 1
    return deps


cdef tuple _prune(list roots, dict deps, list capture):
    """autograd.grad: keep the nodes on a path from a root to a captured edge (torch's exec_info).

    Returns their dependency counts (edges from running nodes only), the nodes whose backward runs (those
    with a kept input) and, per captured node, {output_nr: [indices in capture]}."""
    cdef Node node
    cdef dict wanted = {}
    for k, (node, nr) in enumerate(capture):
        wanted.setdefault(node, {}).setdefault(nr, []).append(k)
    # consumers before producers (Kahn's order over the counts), then kept-ness from the inputs back up
    cdef dict left = dict(deps)
    cdef list order = []
    cdef list ready = [node for node in dict.fromkeys([edge[0] for edge in roots]) if left[node] == 0]
    while ready:
        node = ready.pop()
        order.append(node)
        for edge in node.next_functions:
            if edge is not None:
                left[edge[0]] -= 1
                if left[edge[0]] == 0:
                    ready.append(edge[0])
    cdef set kept = set()
    cdef set runs = set()
    for node in reversed(order):
        for edge in node.next_functions:
            if edge is not None and edge[0] in kept:
                runs.add(node)
                break
        if node in runs or node in wanted:
            kept.add(node)
    cdef dict counts = dict.fromkeys(kept, 0)
    for node in runs:
        for edge in node.next_functions:
            if edge is not None and edge[0] in kept:
                counts[edge[0]] += 1
    return counts, runs, wanted


cdef void _capture(Node node, InputBuffer buffer, dict where, list captured, bint runs) except *:
    """Store the total gradient of each captured output of ``node`` where torch takes it: for a node that
    runs, before its tensor hooks (they run with the node); for a node wanted only for its gradient, after
    them (its hooks and retain_grad still run), and for a leaf after the leaf's own hooks, as they would
    run before accumulation (its AccumulateGrad does not run)."""
    cdef int nr
    for nr in range(node.n_outputs):
        g = None if buffer is None else buffer.grads[nr]
        if g is None or (runs and nr not in where):
            continue
        if isinstance(g, LazyGrad):
            g = buffer.grads[nr] = (<LazyGrad>g).materialize()
            buffer.set_owned(nr, False)  # captured: the node's backward must not add into it
        if not runs:
            g = _finish_output(node, nr, g)
            leaf = (<AccumulateGrad>node)._leaf_ref() if type(node) is AccumulateGrad else None
            if leaf is not None and leaf._hooks:
                g = _run_hooks([(0, key, fn) for key, fn in leaf._hooks], 0, g)
        for k in where.get(nr, ()):
            captured[k] = g
