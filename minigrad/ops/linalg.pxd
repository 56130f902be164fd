from minigrad.autograd.engine cimport ShapedNode


cdef class AddmmBackward(ShapedNode):
    cdef object b_transposed(self)
    cdef tuple _gradients(self, object g, object prev)
