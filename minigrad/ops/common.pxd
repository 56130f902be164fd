from minigrad.tensor cimport Tensor

cdef object unbroadcast(object grad, tuple shape)
cdef tuple operands(object a, object b, bint promote=*)
cdef Tensor as_tensor(object x, object dtype=*)
cdef int norm_dim(object dim, int ndim) except -1
cdef tuple norm_dims(object dims, int ndim)
cdef bint is_float(Tensor t)
cdef object _result_type(object a, object b)
