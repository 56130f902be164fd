# The autograd engine's compiled interface, shared by the tensor core and the ops.
from cpython.object cimport PyObject

cdef class ProductSum:
    # A gradient kept as sum_i lefts[i].T @ rights[i] until it is needed (see engine.pyx).
    cdef public list lefts, rights
    cdef public tuple shape
    cdef public object dtype


cdef class Node:
    # One recorded operation.  next_functions[i] is (node, output_nr) for the i-th differentiable input, or
    # None when that input needs no gradient; backward() returns one gradient (or None) per input.
    cdef readonly tuple next_functions  # read-only from Python: a bad edge would crash the traversal
    cdef public tuple saved            # arrays kept for backward; None once the graph is freed
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
    cdef PyObject* _live_prev          # every live node is on one list (engine.pyx, "hidden from the
    cdef PyObject* _live_next          # cycle collector"); raw pointers, so the list owns nothing
    cdef bint _holds_user_object       # a pre-hook or a tag that is not plain data: see expose_graph
    cpdef object backward(self, object grad)
    cpdef object grad_place(self, int nr)
    cpdef object product_sum_backward(self, ProductSum g)
    cdef void release(self)


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
cdef void record(Node node)
cdef unsigned long long backward_run() noexcept
cdef object take_grad(Node node, int i)
