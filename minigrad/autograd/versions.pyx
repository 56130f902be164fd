"""Version counters: how a backward knows that the arrays it saved were not changed in place since.

A node saves numpy arrays (an input, or its own output) for its backward.  If the user then changes one in
place -- ``y.detach().zero_()``, ``x[0] = 1``, an optimiser step before a second backward of a retained graph
-- the backward would compute a gradient from the wrong values.  Like torch, minigrad refuses instead:

* every in-place op (``add_``, ``+=``, ``fill_``, ``__setitem__``, ``copy_``, an optimiser's update, ...)
  calls ``bump(array)``, which counts one more version of the array's **storage** (the object that owns its
  memory).  Views, ``detach()``ed tensors and every tensor over the same memory therefore share one counter,
  as torch's views share their base's;
* a node remembers the epoch (the number of bumps so far, any storage) at which it was recorded, and the
  engine calls ``check_saved(node)`` before its backward: when nothing was bumped since (the usual case) that
  is one integer comparison; otherwise each saved array's storage is looked up, and a storage bumped after
  the node was recorded raises torch's error.

Writes through ``Tensor.data`` (the raw numpy array) are not tracked, as in torch.
"""
from bisect import bisect_right
import weakref

import numpy as np

cdef unsigned long long _epoch = 0
cdef dict _counters = {}        # id(storage) -> _Counter, while that storage is alive


cdef class _Counter:
    cdef list epochs            # the epoch of each bump of this storage, ascending
    cdef object ref             # weak reference to the storage; its callback removes this entry


cdef object storage_of(object array):
    """The object owning ``array``'s memory (numpy collapses chains of views onto it)."""
    owner = array
    base = array.base
    while base is not None:
        owner = base
        base = getattr(base, "base", None)  # bytes, mmap, ... end the chain
    return owner


cdef unsigned long long epoch() noexcept:
    return _epoch


cdef void bump(object array) except *:
    """``array`` (and every view of its storage) was changed in place: count a new version."""
    global _epoch
    storage = storage_of(array)
    key = id(storage)
    cdef _Counter c = _counters.get(key)
    if c is None:
        c = _Counter.__new__(_Counter)
        c.epochs = []
        try:
            c.ref = weakref.ref(storage, lambda _, key=key: _counters.pop(key, None))
        except TypeError:
            return  # memory owned by an object that cannot be referenced weakly (bytes): read-only anyway
        _counters[key] = c
    _epoch += 1
    c.epochs.append(_epoch)


def version(array):
    """How many times the storage of ``array`` has been changed in place (``Tensor._version``)."""
    cdef _Counter c = _counters.get(id(storage_of(array)))
    return 0 if c is None else len(c.epochs)


cdef void check_saved(object node, tuple saved, unsigned long long recorded) except *:
    """Raise torch's RuntimeError if an array in ``saved`` (``node``'s) was changed in place after
    ``recorded`` (the epoch at which ``node`` was recorded)."""
    cdef _Counter c
    if recorded == _epoch:
        return
    for a in saved:
        if type(a) is not np.ndarray:
            continue
        c = _counters.get(id(storage_of(a)))
        if c is not None and c.epochs[-1] > recorded:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                "operation: [%s tensor of shape %s], saved for %s's backward, is at version %d; expected "
                "version %d instead. Hint: the in-place change happened after the forward pass (an "
                "optimizer step, an in-place op such as add_ or +=, an assignment x[i] = ...); clone() the "
                "tensor before changing it, or run the change after backward."
                % (a.dtype, tuple(a.shape), node.name(), len(c.epochs), bisect_right(c.epochs, recorded)))


def bump_version(array):
    """Count an in-place change of ``array``'s storage made outside minigrad's ops (an optimiser's update
    of ``p.data``)."""
    bump(array)
