cimport numpy as cnp

# The joining helpers nn._recurrent's stack_into / stack_cat build on (the same checks and nodes as stack
# and cat).
cdef list _tensor_list(object seq, str name)
cdef tuple _equal_shape(list ts, str where)
cdef object _stacked(object out, tuple inputs, int axis)
cdef list _cat_ends(list shapes, int axis)
cdef object _catted(object out, tuple inputs, int axis, list ends)
cdef bint _lies_at(cnp.ndarray piece, cnp.ndarray place)
