from minigrad.autograd.engine cimport Node


cdef class Tensor:
    cdef object _data                  # numpy ndarray: float32, float64, int32, int64 or bool
    cdef Tensor _grad                  # Tensor or None (the `grad` property checks assignments)
    cdef Node _grad_fn                 # the node that produced this tensor; None for a leaf
    cdef int _output_nr
    cdef bint _requires_grad
    cdef public list _hooks            # leaf hooks: [(key, fn)], read by AccumulateGrad
    cdef object _accumulator           # this leaf's AccumulateGrad node, made on first use
    cdef Tensor _base                  # the tensor this one is a view of (shape ops), else None
    cdef object __weakref__


cdef Tensor wrap(object array)
cdef tuple grad_edge(Tensor t)
cdef Tensor attach(object array, Node node, tuple inputs)
cdef Tensor view_of(Tensor out, Tensor src)
cdef bint any_requires_grad(tuple inputs)
cdef int zero_dim_side(object a, object b) except -2
