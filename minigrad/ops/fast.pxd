# Small-array fast paths: plain C loops that skip numpy's ufunc dispatch, which dominates for tiny tensors.

cdef enum:
    OP_ADD = 0
    OP_SUB = 1
    OP_MUL = 2
    OP_DIV = 3

cdef object binary(int op, object a, object b)
cdef object scalar_array(double value, object like)
