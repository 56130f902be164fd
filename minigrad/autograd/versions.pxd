# Version counters of array storages (see versions.pyx).
cdef unsigned long long epoch() noexcept
cdef void bump(object array) except *
cdef void check_saved(object node, tuple saved, unsigned long long recorded) except *
cdef object storage_of(object array)
