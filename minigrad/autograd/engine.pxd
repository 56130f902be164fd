# The autograd engine's compiled interface, shared by the tensor core and the ops.
cimport numpy as cnp

from minigrad.autograd.collector cimport LiveNode

cdef class LazyGrad:
    # A gradient held unevaluated until it is needed (ops/linalg.pyx's ProductSum, a sum of matrix products):
    # the engine only merges two of them, asks a node to pass one on (Node.lazy_backward) or evaluates it.
    cdef public tuple shape
    cdef public object dtype
    cpdef bint merge(self, LazyGrad other) except -1
    cpdef LazyGrad transposed(self)
    cpdef object materialize(self)


cdef class GraphTask


cdef class Node(LiveNode):
    # One recorded operation.  next_functions[i] is (node, output_nr) for the i-th differentiable input, or
    # None when that input needs no gradient; backward() returns one gradient (or None) per input.
    cdef readonly tuple next_functions  # read-only from Python: a bad edge would crash the traversal
    cdef public tuple saved            # arrays kept for backward; None once the graph is freed
    cdef readonly object meta          # the op's own constants for its backward (axes, flags, ...)
    cdef public object shape           # output shape(s), checked against every incoming gradient
    cdef public object dtype
    cdef public int n_outputs
    cdef public bint multi_output      # split/unbind: backward takes a tuple with one gradient per output
    cdef bint _freed
    cdef public unsigned long long _epoch  # versions.epoch() when recorded: saved arrays changed in place
                                       # since then make the backward raise (versions.check_saved)
    cdef dict _pre_hooks               # output_nr -> [(output_nr, key, fn)], hooks on a non-leaf output's
                                       # gradient
    cdef dict _retained                # output_nr -> weakref of a tensor that asked for retain_grad()
    cdef public object trace           # where the op was created (recorded in anomaly mode only)
    cdef object _tag                   # free for tools (the `tag` property): minigrad.viz stores
                                       # (layer, direction, step) here
    cdef object __weakref__
    cpdef object backward(self, object grad)
    cpdef object apply(self, GraphTask task, object grad)
    cpdef object grad_place(self, GraphTask task, int nr)
    cpdef object lazy_backward(self, LazyGrad g)
    cdef void release(self)


cdef class ShapedNode(Node):
    # A node whose backward needs its inputs' shapes (to sum a broadcast gradient back, to make a zero
    # gradient of the input's shape): the recording path keeps them.
    cdef readonly tuple input_shapes


cdef class AccumulateGrad(Node):
    # The sink for a leaf tensor that requires grad: adds the incoming gradient into leaf.grad.  The leaf owns
    # its accumulator and the accumulator refers back weakly, so there is no cycle; a leaf nobody can reach
    # any more has no observable gradient, and its accumulator then does nothing.
    cdef object _leaf_ref
    cdef object _lock                  # threads running backward passes into one leaf add one at a time
    cdef object _accept(self, object grad, bint fresh)


cdef bint grad_enabled() noexcept nogil
cdef void set_grad_enabled_c(bint mode) noexcept nogil
cdef bint anomaly_enabled() noexcept nogil
cdef void check_forward(Node node, object array) except *
cdef bint has_shape(cnp.ndarray a, object shape) except -1


cdef class InputBuffer:
    # The gradients of one node's outputs, summed over their uses as they arrive (torch's InputBuffer).
    cdef list grads                    # per output: an array, a LazyGrad or None
    cdef list owned                    # per output: the engine allocated the array and may add into it
                                       # (None while none is)
    cdef bint is_owned(self, int nr)
    cdef void set_owned(self, int nr, bint owned) except *
    cdef void add(self, int nr, object g) except *


cdef class GraphTask:
    # The state of one backward pass (torch's GraphTask), handed to the nodes that keep some of their own.
    cdef dict deps                     # node -> how many of its consumers have still to run
    cdef dict buffers                  # node -> InputBuffer
    cdef list ready                    # nodes whose consumers have all run
    cdef bint owns_grad                # the gradient passed to the running node is the engine's own array
    cdef dict node_state               # per-pass state of a node (unbind's gradient arena)
    cdef set runs                      # autograd.grad: the nodes whose backward runs (None: all)
    cdef dict wanted                   # autograd.grad: node -> {output_nr: [indices into captured]}
    cdef list captured
    cdef InputBuffer buffer(self, Node node)
    cdef void route(self, Node node, object input_grads) except *
    cdef object take_grad(self, Node node, int i)
