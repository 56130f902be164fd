"""Shape ops, indexing, joining and splitting.  Each op's backward sits right under its forward.

Forward results are numpy views wherever numpy gives one (reshape, transpose, basic slicing), so they share
storage with their input just as torch views do.
"""
import numpy as np

cimport numpy as cnp

cnp.import_array()

from minigrad.autograd.engine cimport GraphTask, LazyGrad, Node, ShapedNode, anomaly_enabled
from minigrad.ops.common cimport as_tensor, norm_dim, norm_dims, unbroadcast
from minigrad.ops.common import promote_types
from minigrad.tensor cimport Tensor, record, record_outputs, view_of, wrap


cdef tuple _shape_arg(tuple shape):
    """Accept f(2, 3) and f((2, 3)) alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError("sizes must be ints, got %s" % type(s).__name__)
    return shape


# ---- reshape ------------------------------------------------------------------------------------------
cdef class ReshapeBackward(ShapedNode):
    cpdef object backward(self, object g):
        return (g.reshape(self.input_shapes[0]),)


cdef object _reshaped(Tensor t, tuple shape, str name):
    try:
        out = t._data.reshape(shape)
    except ValueError:
        raise ValueError("%s: shape %s is invalid for input of shape %s (%d elements)"
                         % (name, shape, t._data.shape, t._data.size)) from None
    return view_of(record(out, ReshapeBackward, (t,)), t)


def reshape(x, *shape):
    """The same elements in a new shape (one size may be -1); a view when the layout allows."""
    shape = _shape_arg(shape)
    for s in shape:
        if s < -1:
            raise ValueError("reshape: invalid shape dimension %d in %s" % (s, shape))
    return _reshaped(as_tensor(x), shape, "reshape")


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one."""
    cdef Tensor t = as_tensor(x)
    shape = t._data.shape
    if t._data.ndim == 0:
        return _reshaped(t, (1,), "flatten")
    s = norm_dim(start_dim, t._data.ndim)
    e = norm_dim(end_dim, t._data.ndim)
    if s > e:
        raise ValueError("flatten: start_dim %d comes after end_dim %d" % (start_dim, end_dim))
    merged = 1
    for d in shape[s:e + 1]:
        merged *= d
    return _reshaped(t, shape[:s] + (merged,) + shape[e + 1:], "flatten")


def unsqueeze(x, dim):
    """Insert a dimension of size 1 at ``dim`` (in [-ndim-1, ndim])."""
    cdef Tensor t = as_tensor(x)
    d = norm_dim(dim, t._data.ndim + 1)
    shape = t._data.shape
    return _reshaped(t, shape[:d] + (1,) + shape[d:], "unsqueeze")


def squeeze(x, dim=None):
    """Drop dimensions of size 1 (all of them, or only ``dim`` if it has size 1)."""
    cdef Tensor t = as_tensor(x)
    shape = t._data.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = norm_dims(dim, t._data.ndim) if t._data.ndim else ()
        new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
    return _reshaped(t, new, "squeeze")


# ---- transpose / permute / flip -----------------------------------------------------------------------
cdef inline object _axis_first(object a, int axis):
    """``np.moveaxis(a, axis, 0)``, without its argument handling for the usual axis 0 (an RNN's time)."""
    return a if axis == 0 else np.moveaxis(a, axis, 0)


cdef class PermuteBackward(Node):
    # meta = the permutation
    cpdef object backward(self, object g):
        return (np.transpose(g, np.argsort(self.meta)),)

    cpdef object lazy_backward(self, LazyGrad g):
        if self.meta != (1, 0):  # a matrix's transpose (its own inverse)
            return None
        t = g.transposed()
        return None if t is None else (t,)


def permute(x, *dims):
    """Reorder the dimensions (a view)."""
    cdef Tensor t = as_tensor(x)
    dims = _shape_arg(dims)
    n = t._data.ndim
    if len(dims) != n:
        raise ValueError("permute: got %d dims %s for a %d-D tensor" % (len(dims), dims, n))
    perm = tuple(norm_dim(d, n) for d in dims)
    if sorted(perm) != list(range(n)):
        raise ValueError("permute: %s is not a permutation of the dimensions" % (dims,))
    return view_of(record(np.transpose(t._data, perm), PermuteBackward, (t,), saved=None, meta=perm), t)


def transpose(x, dim0, dim1):
    """Swap two dimensions (a view)."""
    cdef Tensor t = as_tensor(x)
    n = t._data.ndim
    if n == 0:
        return permute(t)
    a, b = norm_dim(dim0, n), norm_dim(dim1, n)
    if n == 2 and a != b:
        # a matrix's transpose (W.T in every step of a user's cell): no permutation to check
        return view_of(record(t._data.T, PermuteBackward, (t,), saved=None, meta=(1, 0)), t)
    perm = list(range(n))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(t, *perm)


cdef class FlipBackward(Node):
    # meta = the flipped axes
    cpdef object backward(self, object g):
        return (np.flip(g, self.meta),)


def flip(x, dims):
    """Reverse the order of elements along ``dims`` (a view)."""
    cdef Tensor t = as_tensor(x)
    axes = norm_dims(dims, t._data.ndim)
    return view_of(record(np.flip(t._data, axes), FlipBackward, (t,), saved=None, meta=axes), t)


cdef class ExpandBackward(ShapedNode):
    cpdef object backward(self, object g):
        return (unbroadcast(g, self.input_shapes[0]),)


def expand(x, *sizes):
    """Broadcast to ``sizes`` without copying (-1 keeps a dimension); the gradient sums back."""
    cdef Tensor t = as_tensor(x)
    sizes = _shape_arg(sizes)
    shape = t._data.shape
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise ValueError("expand: the number of sizes (%d) must be at least the tensor's ndim (%d)"
                         % (len(sizes), len(shape)))
    target = tuple(shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    try:
        out = np.broadcast_to(t._data, target)
    except ValueError:
        raise ValueError("expand: shape %s cannot be expanded to %s" % (shape, sizes)) from None
    return view_of(record(out, ExpandBackward, (t,)), t)


# ---- indexing -----------------------------------------------------------------------------------------
def plain_index(index):
    """``index`` for numpy: integer and bool tensors become their arrays (float tensors are refused, as in
    torch); numpy int/bool arrays and lists pass through."""
    if isinstance(index, Tensor):
        return _index_array(<Tensor>index)
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if isinstance(it, float):
            raise TypeError("indices must be integers, slices, None, Ellipsis or int/bool arrays, not float")
    if isinstance(index, tuple) and any(isinstance(it, Tensor) for it in index):
        return tuple([_index_array(<Tensor>it) if isinstance(it, Tensor) else it for it in index])
    return index


cdef object _index_array(Tensor t):
    if t._data.dtype.kind not in "biu":
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    return t._data


cdef bint _is_basic(object index):
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if not (isinstance(it, (int, np.integer, slice)) or it is None or it is Ellipsis) \
                or isinstance(it, bool):
            return False
    return True


cdef class SliceGrads(LazyGrad):
    """The gradient of a tensor whose basic-indexing selections have gradients, held as (index, gradient)
    pairs until needed and then written into ONE array.  A loop reading ``xw[t]`` from a hoisted input
    projection otherwise makes a zero-filled array of the whole tensor per step, and the engine sums them:
    T times the memory traffic of the gradient itself."""
    cdef list indices, grads

    cpdef bint merge(self, LazyGrad other) except -1:
        if type(other) is not SliceGrads:
            return False
        self.indices.extend((<SliceGrads>other).indices)
        self.grads.extend((<SliceGrads>other).grads)
        return True

    cpdef object materialize(self):
        if self._tiles():
            # every selection is one whole distinct slice along the first axis, together all of them
            gx = np.empty(self.shape, dtype=self.dtype)
            for index, g in zip(self.indices, self.grads):
                gx[index] = g
            return gx
        gx = np.zeros(self.shape, dtype=self.dtype)
        for index, g in zip(self.indices, self.grads):
            part = gx[index]
            if type(part) is np.ndarray:  # a view: selections may overlap, so add
                np.add(part, g, out=part)
            else:  # one element (numpy gives a scalar, not a view)
                gx[index] += g
        return gx

    cdef bint _tiles(self):
        """Whether the indices are ints that name each position of the first axis exactly once."""
        if not self.shape or len(self.indices) != self.shape[0]:
            return False
        cdef Py_ssize_t n = self.shape[0]
        seen = bytearray(n)
        for index in self.indices:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                return False
            i = index % n
            if seen[i]:
                return False
            seen[i] = 1
        return True


cdef class IndexBackward(ShapedNode):
    # meta = the index: basic indexing writes the gradient into place; integer arrays accumulate repeated
    # indices
    cpdef object backward(self, object g):
        index = self.meta
        gx = np.zeros(self.input_shapes[0], dtype=g.dtype)
        if _is_basic(index):
            gx[index] = g
        else:
            np.add.at(gx, index, g)
        return (gx,)

    cpdef object apply(self, GraphTask task, object g):
        # basic indexing: the gradient goes out unevaluated, merged with the other selections' (SliceGrads)
        if anomaly_enabled() or not _is_basic(self.meta):
            return self.backward(g)
        cdef SliceGrads lazy = SliceGrads.__new__(SliceGrads)
        lazy.indices = [self.meta]
        lazy.grads = [g]
        lazy.shape = self.input_shapes[0]
        lazy.dtype = g.dtype
        return (lazy,)


def getitem(x, index):
    """x[index]: ints, slices, None, Ellipsis, integer arrays/lists and bool masks, as numpy does."""
    cdef Tensor t = as_tensor(x)
    index = plain_index(index)
    if isinstance(index, list):
        index = np.asarray(index)
        if index.dtype.kind not in "biu":
            raise TypeError("list indices must hold integers or bools, got %s" % index.dtype)
    out = t._data[index]
    if not isinstance(out, np.ndarray):
        out = np.asarray(out)
    return view_of(record(out, IndexBackward, (t,), saved=None, meta=index), t)


cdef class IndexPutBackward(ShapedNode):
    # meta = the index
    cpdef object backward(self, object g):
        gx = gv = None
        if self.next_functions[0] is not None:
            gx = np.array(g, copy=True)
            gx[self.meta] = 0  # the values written over receive no gradient
        if self.next_functions[1] is not None:
            gv = unbroadcast(np.asarray(g[self.meta]), self.input_shapes[1])
        return gx, gv


def index_put(x, index, value):
    """A copy of ``x`` with ``value`` written at ``index`` (torch's index_put, out of place).
    ``x[index] = value`` is this op done in place (see Tensor.__setitem__); ``value`` broadcasts to
    ``x[index]``'s shape, and its gradient is the output's at ``index``."""
    cdef Tensor t = as_tensor(x)
    cdef Tensor v = as_tensor(value, t._data.dtype)
    index = plain_index(index)
    if isinstance(index, list):
        index = np.asarray(index)
    out = np.array(t._data, copy=True)
    try:
        out[index] = v._data
    except ValueError:
        raise ValueError("index_put: a value of shape %s cannot be written to a selection of shape %s"
                         % (v._data.shape, np.shape(t._data[index]))) from None
    return record(out, IndexPutBackward, (t, v), saved=None, meta=index)


cdef class GatherBackward(ShapedNode):
    # meta = the index as a tuple of arrays
    cpdef object backward(self, object g):
        gx = np.zeros(self.input_shapes[0], dtype=g.dtype)
        np.add.at(gx, self.meta, g)
        return (gx,)


def gather(x, dim, index):
    """out[i][j][k] = x[index[i][j][k]][j][k] (for dim 0), as torch.gather; ``index`` is an int array."""
    cdef Tensor t = as_tensor(x)
    idx = np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError("gather: index must hold integers, got %s" % idx.dtype)
    data = t._data
    d = norm_dim(dim, data.ndim)
    if idx.ndim != data.ndim:
        raise ValueError("gather: index has %d dims but the tensor has %d" % (idx.ndim, data.ndim))
    for i in range(data.ndim):
        if i != d and idx.shape[i] > data.shape[i]:
            raise ValueError("gather: index shape %s exceeds the tensor's shape %s in dim %d"
                             % (idx.shape, data.shape, i))
    size = data.shape[d]
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        # torch's error: a negative index does not count from the end here
        bad = idx[(idx < 0) | (idx >= size)][0]
        raise RuntimeError("index %d is out of bounds for dimension %d with size %d" % (bad, d, size))
    grids = list(np.ogrid[tuple(slice(0, s) for s in idx.shape)]) if idx.ndim else []
    grids[d] = idx
    index_tuple = tuple(grids)
    return record(data[index_tuple], GatherBackward, (t,), saved=None, meta=index_tuple)


# ---- joining ------------------------------------------------------------------------------------------
cdef list _tensor_list(object seq, str name):
    if isinstance(seq, Tensor) or not isinstance(seq, (list, tuple)):
        raise TypeError("%s expects a list or tuple of tensors, got %s" % (name, type(seq).__name__))
    if len(seq) == 0:
        raise ValueError("%s expects a non-empty list of tensors" % name)
    ts = [as_tensor(s) for s in seq]
    dtype = (<Tensor>ts[0])._data.dtype
    for t in ts:
        dtype = promote_types(dtype, (<Tensor>t)._data.dtype)  # torch's rule (int64 with float32 is float32)
    return [t if (<Tensor>t)._data.dtype == dtype else t.to(dtype) for t in ts]


cdef class StackBackward(Node):
    # meta = the new axis
    cpdef object backward(self, object g):
        return tuple(_axis_first(g, self.meta))


cdef tuple _equal_shape(list ts, str where):
    """The shape all of ``ts`` share (a stack's inputs), else ValueError."""
    shape = (<Tensor>ts[0])._data.shape
    for i, t in enumerate(ts):
        if (<Tensor>t)._data.shape != shape:
            raise ValueError("stack expects each tensor to be equal size, but got %s at entry 0 and %s at "
                             "entry %d%s" % (shape, (<Tensor>t)._data.shape, i, where))
    return shape


cdef object _stacked(object out, tuple inputs, int axis):
    """``out`` (the inputs stacked along ``axis``) as a tensor, with its StackBackward when one is needed."""
    return record(out, StackBackward, inputs, saved=None, meta=axis)


def stack(tensors, dim=0):
    """Join equally shaped tensors along a new dimension ``dim``."""
    ts = _tensor_list(tensors, "stack")
    axis = norm_dim(dim, len(_equal_shape(ts, "")) + 1)
    return _stacked(np.stack([(<Tensor>t)._data for t in ts], axis=axis), tuple(ts), axis)


cdef bint _lies_at(cnp.ndarray piece, cnp.ndarray place):
    """Whether ``piece`` is the very memory of ``place`` (same address, shape and strides)."""
    cdef int nd = cnp.PyArray_NDIM(place)
    return (cnp.PyArray_DATA(piece) == cnp.PyArray_DATA(place) and cnp.PyArray_NDIM(piece) == nd
            and cnp.PyArray_CompareLists(cnp.PyArray_DIMS(piece), cnp.PyArray_DIMS(place), nd)
            and cnp.PyArray_CompareLists(cnp.PyArray_STRIDES(piece), cnp.PyArray_STRIDES(place), nd))


cdef class CatBackward(Node):
    # meta = (axis, where every piece but the last ends)
    cpdef object backward(self, object g):
        axis, bounds = self.meta
        return tuple(np.split(g, bounds, axis=axis))


cdef list _cat_ends(list shapes, int axis):
    """Where each piece of a cat along ``axis`` ends, after checking the other dimensions match."""
    first = shapes[0]
    ends = []
    total = 0
    for i, s in enumerate(shapes):
        if len(s) != len(first) or s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise ValueError("cat: sizes of tensors must match except in dimension %d; got %s at entry 0 and "
                             "%s at entry %d" % (axis, first, s, i))
        total += s[axis]
        ends.append(total)
    return ends


cdef object _catted(object out, tuple inputs, int axis, list ends):
    """``out`` (the inputs joined along ``axis``) as a tensor, with its CatBackward when one is needed."""
    return record(out, CatBackward, inputs, saved=None, meta=(axis, ends[:-1]))


def cat(tensors, dim=0):
    """Join tensors along an existing dimension ``dim``; the other dimensions must match."""
    ts = _tensor_list(tensors, "cat")
    first = (<Tensor>ts[0])._data
    if first.ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated")
    axis = norm_dim(dim, first.ndim)
    ends = _cat_ends([(<Tensor>t)._data.shape for t in ts], axis)
    return _catted(np.concatenate([(<Tensor>t)._data for t in ts], axis=axis), tuple(ts), axis, ends)


# ---- splitting: one node with several outputs, so the backward writes each piece once -------------------
cdef class SplitBackward(ShapedNode):
    # meta = (axis, where each piece starts)
    cdef tuple _piece(self, int nr):
        """The index of piece ``nr`` in the input."""
        axis, starts = self.meta
        start = starts[nr]
        return (slice(None),) * axis + (slice(start, start + self.shape[nr][axis]),)

    cpdef object grad_place(self, GraphTask task, int nr):
        # The pieces' gradients are collected in one array of the input's shape (the arena): piece nr's
        # place is handed out once, to the node that will compute its gradient (an LSTM gate's sigmoid or
        # tanh), which writes it there: no separate gradient per piece copied in afterwards.
        state = task.node_state.get(self)
        if state is None:
            arena = np.empty(self.input_shapes[0], dtype=self.dtype[0])
            state = task.node_state[self] = (arena, bytearray(self.n_outputs))
        handed = <bytearray>state[1]
        if handed[nr]:
            return None
        handed[nr] = 1
        return state[0][self._piece(nr)]

    cpdef object apply(self, GraphTask task, object grads):
        state = task.node_state.pop(self, None)
        if state is not None:
            # every piece's gradient written in its place already: the arena is the input's gradient
            arena = state[0]
            for i, g in enumerate(grads):
                if g is None or not _lies_at(g, arena[self._piece(i)]):
                    break
            else:
                return (arena,)
        return self.backward(grads)

    cpdef object backward(self, object grads):
        gx = None
        complete = True  # every piece has a gradient (a cell's gates): no need to zero the result first
        for g in grads:
            if g is None:
                complete = False
                break
        for i, g in enumerate(grads):
            if g is None:
                continue
            if gx is None:
                gx = (np.empty if complete else np.zeros)(self.input_shapes[0], dtype=g.dtype)
            gx[self._piece(i)] = g
        return (gx,)


cdef object _split_at(Tensor t, int axis, list sizes):
    data = t._data
    pieces = []
    starts = []
    start = 0
    for n in sizes:
        index = [slice(None)] * data.ndim
        index[axis] = slice(start, start + n)
        pieces.append(data[tuple(index)])
        starts.append(start)
        start += n
    outs = record_outputs(pieces, SplitBackward, (t,), saved=None, meta=(axis, starts))
    return tuple([view_of(out, t) for out in outs])


def split(x, split_size_or_sections, dim=0):
    """Split into pieces of ``split_size`` (the last may be smaller) or of the listed sizes (views)."""
    cdef Tensor t = as_tensor(x)
    if t._data.ndim == 0:
        raise ValueError("split: a 0-d tensor cannot be split")
    axis = norm_dim(dim, t._data.ndim)
    n = t._data.shape[axis]
    if isinstance(split_size_or_sections, bool) or not isinstance(split_size_or_sections,
                                                                  (int, np.integer, list, tuple)):
        raise TypeError("split: split_size_or_sections must be an int or a list of ints, got %r"
                        % (split_size_or_sections,))
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError("split: split_size must be positive, got %d" % size)
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        if n == 0:
            sizes = [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError("split: sizes %s do not add up to %d (the size of dimension %d)"
                             % (sizes, n, axis))
    return _split_at(t, axis, sizes)


def chunk(x, chunks, dim=0):
    """Split into ``chunks`` pieces of ceil(size / chunks) (fewer when the size is small), like torch."""
    cdef Tensor t = as_tensor(x)
    if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ValueError("chunk: chunks must be a positive int, got %r" % (chunks,))
    if t._data.ndim == 0:
        raise ValueError("chunk: a 0-d tensor cannot be chunked")
    axis = norm_dim(dim, t._data.ndim)
    n = t._data.shape[axis]
    if n == 0:
        return _split_at(t, axis, [0] * chunks)  # torch: `chunks` empty pieces
    return split(t, -(-n // chunks), axis)


cdef class UnbindBackward(ShapedNode):
    # meta = the axis
    cpdef object grad_place(self, GraphTask task, int nr):
        # The pass collects the slices' gradients in one array (the arena): slice nr's place is handed out
        # once, to the node that will compute that gradient (an RNN step's tanh).
        state = task.node_state.get(self)
        if state is None:
            arena = np.empty(self.input_shapes[0], dtype=self.dtype[0])
            state = task.node_state[self] = (arena, _axis_first(arena, self.meta), bytearray(self.n_outputs))
        handed = <bytearray>state[2]
        if handed[nr]:
            return None  # two gradients cannot both be written to one place
        handed[nr] = 1
        return state[1][nr, ...]  # (an array even for a 0-d output, not a numpy scalar)

    cpdef object apply(self, GraphTask task, object grads):
        state = task.node_state.pop(self, None)
        if state is not None:
            # Every slice's gradient written in place already (an RNN's steps, by tanh's backward): done.
            # Otherwise a fresh array: a place handed out may still hold a gradient others refer to.
            arena, moved = state[0], state[1]
            for i, g in enumerate(grads):
                if g is None or not _lies_at(g, moved[i, ...]):
                    break
            else:
                return (arena,)
        return self.backward(grads)

    cpdef object backward(self, object grads):
        gx = moved = None
        # Every slice has a gradient in the common case (an RNN's steps): no need to zero the result first.
        complete = True
        for g in grads:
            if g is None:
                complete = False
                break
        for i, g in enumerate(grads):
            if g is None:
                continue
            if gx is None:
                gx = (np.empty if complete else np.zeros)(self.input_shapes[0], dtype=g.dtype)
                moved = _axis_first(gx, self.meta)
            moved[i] = g
        return (gx,)


def unbind(x, dim=0):
    """The slices along ``dim`` as a tuple of tensors (views), e.g. the time steps of a sequence."""
    cdef Tensor t = as_tensor(x)
    if t._data.ndim == 0:
        raise ValueError("unbind: a 0-d tensor cannot be unbound")
    axis = norm_dim(dim, t._data.ndim)
    moved = _axis_first(t._data, axis)
    pieces = [moved[i] for i in range(moved.shape[0])]
    outs = record_outputs(pieces, UnbindBackward, (t,), saved=None, meta=axis)
    return tuple([view_of(out, t) for out in outs])
