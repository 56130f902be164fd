# Graph nodes hidden from Python's cycle collector (see collector.pyx).
from cpython.object cimport PyObject


cdef class LiveNode:
    # What the hiding keeps on every graph node (Node derives from this): its links on the list of live
    # nodes (raw pointers, so the list owns nothing) and whether it holds an object a user gave it.
    cdef PyObject* _live_prev
    cdef PyObject* _live_next
    cdef bint _holds_user_object
    cdef tuple gc_edges(self)


cdef void on_new_node(LiveNode node) except *
cdef void holds_user_object(LiveNode node) except *
cdef bint plain(object v)
