from minigrad.autograd.engine cimport Node


cdef class Tensor:
    cdef object _data                  # numpy ndarray: float32, float64, int32, int64 or bool
    cdef Tensor _grad                  # Tensor or None (the `grad` property checks assignments)
    cdef Node _grad_fn                 # the node that produced this tensor; None for a leaf
    cdef int _output_nr
    cdef bint _requires_grad
    cdef public list _hooks            # leaf hooks: [(key, fn)], read by AccumulateGrad
    cdef tuple _leaf_edge              # (this leaf's AccumulateGrad node, 0): its grad_edge, made on first use
    cdef Tensor _base                  # the tensor this one is a view of (shape ops), else None
    cdef object __weakref__


cdef Tensor wrap(object array)
cdef tuple grad_edge(Tensor t)
cdef bint any_requires_grad(tuple inputs)
cdef Tensor _record(object out, type cls, tuple inputs, tuple saved, object meta)


cdef inline Tensor record(object out, type cls, tuple inputs, tuple saved=None, object meta=None):
    """``out`` (an op's result array) as a tensor, recorded as the output of a new ``cls`` node on
    ``inputs`` (tensors) when grad mode is on and one of them requires grad (tensor.pyx).  Inline: the
    no-grad path of every op costs one check, not a call."""
    if not any_requires_grad(inputs):
        return wrap(out)
    return _record(out, cls, inputs, saved, meta)
cdef tuple record_outputs(list arrays, type cls, tuple inputs, tuple saved=*, object meta=*)
cdef Tensor view_of(Tensor out, Tensor src)
cdef int zero_dim_side(object a, object b) except -2
