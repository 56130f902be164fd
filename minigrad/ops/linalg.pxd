from minigrad.autograd.engine cimport Node


cdef class AddmmBackward(Node):
    cdef tuple c_shape
    cdef object b_transposed(self)
    cdef tuple _gradients(self, object g, object prev)
