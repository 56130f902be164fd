"""The Tensor: a numpy array plus what autograd needs to know about it.

Storage is a numpy ``ndarray`` of float32, float64, int32, int64 or bool (``Tensor.data``); only float
tensors take part in autograd.  A tensor produced by a
differentiable op while grad mode is on points at the ``Node`` that produced it (``grad_fn``); a leaf that
``requires_grad`` collects its gradient in ``.grad``.  The ops themselves live in ``minigrad.ops``; the
methods here only forward to them so that ``x.tanh()`` and ``minigrad.tanh(x)`` are the same call.
"""
import copy
import itertools
import weakref

import numpy as np

cimport numpy as cnp

from cpython.long cimport PyLong_FromSsize_t
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

cdef extern from "Python.h":
    int PyObject_IS_GC(PyObject *op)
    int PyObject_GC_IsTracked(PyObject *op)
    void PyObject_GC_UnTrack(void *op)

from minigrad.autograd.collector cimport on_new_node
from minigrad.autograd.engine cimport Node, ShapedNode, anomaly_enabled, check_forward, grad_enabled
from minigrad.autograd.engine import new_accumulator, run_backward
from minigrad.autograd.versions cimport bump, epoch, storage_of
from minigrad.autograd.versions import version as _storage_version

cnp.import_array()

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
cdef tuple _dtypes = (float32, float64, int32, int64, bool_)
cdef object _default_dtype = float32
cdef object _hook_keys = itertools.count()


class _device_type:
    """Where a tensor lives: always the CPU.  ``t.device == "cpu"`` holds, as does ``str(t.device)``."""
    __slots__ = ("type",)

    def __init__(self, type="cpu"):
        type = str(type)
        if type != "cpu":
            raise RuntimeError("minigrad tensors live on the CPU only; got device %r" % type)
        self.type = type

    def __eq__(self, other):
        return isinstance(other, (_device_type, str)) and str(other) == "cpu"

    def __hash__(self):
        return hash("cpu")

    def __str__(self):
        return "cpu"

    def __repr__(self):
        return "device(type='cpu')"


cdef object _cpu = _device_type()
cdef dict _TORCH_NAMES = {"float32": "Float", "float64": "Double", "int32": "Int", "int64": "Long",
                          "bool": "Bool"}
device = _device_type


def get_default_dtype():
    """The dtype of tensors made from Python floats and float lists (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype):
    global _default_dtype
    _default_dtype = check_float_dtype(dtype)


def check_float_dtype(dtype):
    """numpy dtype for ``dtype`` if it is float32 or float64, else TypeError."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError("dtype must be minigrad.float32 or minigrad.float64, got %r" % (dtype,)) from None
    if d != float32 and d != float64:
        raise TypeError("expected a float dtype (float32 or float64); got dtype %s" % d)
    return d


def check_dtype(dtype):
    """numpy dtype for ``dtype`` if minigrad supports it (float32, float64, int32, int64, bool), else
    TypeError."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError("dtype must be a minigrad dtype (float32, float64, int32, int64, bool), got %r"
                        % (dtype,)) from None
    if d not in _dtypes:
        raise TypeError("minigrad tensors are float32, float64, int32, int64 or bool; got dtype %s" % d)
    return d


def as_float_array(data, dtype=None, copy=False):
    """``as_array`` restricted to float32/float64 results (gradients): TypeError for anything else."""
    arr = as_array(data, dtype, copy)
    if arr.dtype.kind != "f":
        raise TypeError("expected float32 or float64 data, got a %s array; pass dtype=minigrad.float32 "
                        "(or float64) to convert it" % arr.dtype)
    return arr


def as_array(data, dtype=None, copy=False):
    """Convert array-like ``data`` to an ndarray of a minigrad dtype, with a clear TypeError for anything
    else.

    As in torch: numpy float32/float64, int32/int64 and bool arrays keep their dtype; Python floats get the
    default dtype, Python ints int64 and Python bools bool.  numpy's other integer widths (int8, int16,
    uint8, uint16, uint32, uint64) become int64, which minigrad supports in their place (uint64 values
    past int64's range are refused); float16, complex and object data need an explicit float ``dtype`` or
    are refused.

    The result is always in native byte order and aligned (the one rule every tensor's array follows, so
    the kernels and fast paths can rely on it): a big-endian or misaligned array (a structured array's
    field, a buffer at an odd offset) is copied, even with ``copy=False``.  torch refuses a non-native byte
    order; converting loses nothing, so minigrad converts.
    """
    if isinstance(data, Tensor):
        data = (<Tensor>data)._data
    elif not isinstance(data, (np.ndarray, np.generic)) and hasattr(data, "__array__"):
        data = np.asarray(data)  # torch tensors and other array-likes
    if isinstance(data, (np.ndarray, np.generic)):
        arr = data
        from_python = False
    else:
        try:
            arr = np.asarray(data)
        except ValueError as e:
            raise ValueError("cannot make a tensor from %s: %s" % (type(data).__name__, e)) from None
        from_python = True
    kind = arr.dtype.kind
    if from_python and (kind == "O" or kind in "uf" and arr.size and _past_int64(arr)):
        # numpy makes an object, uint64 or (mixed with small ints: lossy) float64 array of such ints
        big = _out_of_range_int(arr if kind == "O" else np.array(data, dtype=object))
        if big is not None:
            return _from_big_ints(data, big, dtype)
    if kind in "cOSUVMm" or (kind == "f" and arr.dtype.itemsize > 8):
        raise TypeError("cannot make a minigrad tensor from %s data (%s); minigrad tensors are float32, "
                        "float64, int32, int64 or bool" % (arr.dtype, type(data).__name__))
    if dtype is not None:
        target = check_dtype(dtype)
    elif kind == "b":
        target = bool_
    elif kind in "iu":
        target = int32 if (kind == "i" and arr.dtype.itemsize == 4 and not from_python) else int64
        if kind == "u" and arr.dtype.itemsize == 8 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError("cannot make a tensor from a uint64 array holding %d: it is out of the int64 "
                             "range (minigrad's integer tensors are int32 or int64)" % arr.max())
    elif from_python:
        target = _default_dtype
    elif kind == "f" and arr.dtype.itemsize >= 4:
        target = float64 if arr.dtype.itemsize == 8 else float32  # native order, whatever arr's is
    else:
        raise TypeError("minigrad tensors are float32, float64, int32, int64 or bool, got a %s array; pass "
                        "dtype=minigrad.float32 (or float64) to convert it" % arr.dtype)
    if isinstance(arr, np.ndarray) and not arr.flags.aligned:
        copy = True
    return np.array(arr, dtype=target, copy=True if copy else None)


cdef bint _past_int64(object arr):
    with np.errstate(invalid="ignore"):
        # (nan compares False: an all-nan array is not out of range, and says nothing about it)
        return bool(np.any(np.abs(arr) >= 2.0 ** 63)) if arr.dtype.kind == "f" else arr.max() >= 2 ** 63


cdef object _out_of_range_int(object arr):
    """The first int outside the 64-bit range in an object array of Python numbers (numpy makes one for
    such an int), or None when the array holds anything else."""
    big = None
    for v in arr.flat:
        if type(v) is int:
            if big is None and not -2 ** 63 <= v < 2 ** 63:
                big = v
        elif type(v) is not float and type(v) is not bool:
            return None
    return big


cdef object _from_big_ints(object data, object big, object dtype):
    """Python data holding an int outside the 64-bit range: as torch, refused without a dtype (ValueError)
    and converted to ``dtype`` with one (OverflowError past the float range)."""
    digits = str(big)
    shown = digits if len(digits) <= 30 else "%s... (%d digits)" % (digits[:12], len(digits))
    if dtype is None:
        raise ValueError("cannot make a tensor from the integer %s: it is out of the 64-bit integer range; "
                         "pass dtype=minigrad.float32 (or float64) to convert it to a float" % shown)
    target = check_float_dtype(dtype)
    try:
        with np.errstate(over="ignore"):  # past float32's range it becomes inf, as in torch
            return np.array(data, dtype=target)
    except OverflowError:
        raise OverflowError("cannot make a tensor from the integer %s: it is too large for a float" % shown) \
            from None


def _check_generator(generator):
    from minigrad.random import Generator, default_generator
    if generator is None:
        return default_generator()
    if not isinstance(generator, Generator):
        raise TypeError("generator must be a minigrad.Generator, got %s" % type(generator).__name__)
    return generator


def real_scalar(value, what):
    """``value`` as a Python float if it is a real number (or a one-element array/tensor), else TypeError."""
    if isinstance(value, Tensor):
        value = (<Tensor>value)._data
    if isinstance(value, (bool, int, float)) and not isinstance(value, complex):
        return float(value)
    if isinstance(value, (np.ndarray, np.generic)) and value.size == 1 and value.dtype.kind in "biuf":
        return float(value)
    raise TypeError("%s: expected a real number, got %r (%s)" % (what, value, type(value).__name__))


cdef int zero_dim_side(object a, object b) except -2:
    """For float arrays ``a`` and ``b`` that meet in an op: 0 if ``a`` must first take ``b``'s dtype, 1 if
    ``b`` must take ``a``'s, -1 if numpy's promotion already gives torch's result dtype.

    torch: a dimensioned operand's dtype wins over a 0-d one's (float32 ``x`` + 0-d float64 ``s`` is
    float32, computed in float32); operands of one kind promote (float32 with float64 is float64).  numpy
    promotes a 0-d float64 array with a float32 one to float64, so the 0-d side is cast first.
    """
    if a.dtype == b.dtype or (a.ndim == 0) == (b.ndim == 0):
        return -1
    return 0 if a.ndim == 0 else 1


def _check_differentiable(object arr, str first_word):
    """torch's error for asking an integer or bool tensor to require gradients (its two wordings: "Only" when
    a tensor is made with requires_grad=True, "only" for requires_grad_())."""
    if arr.dtype.kind != "f":
        if first_word == "Only":
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        raise RuntimeError("only Tensors of floating point dtype can require gradients")


def _rebuild_tensor(cls, data, requires_grad):
    """A leaf of class ``cls`` (Tensor, Parameter) holding ``data``: what pickle and copy rebuild."""
    cdef Tensor t = cls.__new__(cls)
    t._data = as_array(data)  # the boundary's rule: a pickle from a big-endian machine is converted
    t._requires_grad = bool(requires_grad)
    return t


cdef Tensor wrap(object array):
    """A Tensor around ``array`` with no copy and no checks: for arrays the ops made themselves."""
    cdef Tensor t = Tensor.__new__(Tensor)
    # numpy ufuncs turn 0-d results into numpy scalars; a tensor always holds an ndarray
    t._data = array if type(array) is cnp.ndarray else np.asarray(array)
    return t


cdef bint any_requires_grad(tuple inputs):
    if not grad_enabled():
        return False
    for t in inputs:
        if (<Tensor>t)._requires_grad:
            return True
    return False


cdef tuple grad_edge(Tensor t):
    """(node, output_nr) that receives ``t``'s gradient, or None when ``t`` needs none."""
    if t._grad_fn is not None:
        return (t._grad_fn, t._output_nr)
    if not t._requires_grad:
        return None
    if t._leaf_edge is None:
        t._leaf_edge = (new_accumulator(t), 0)
    return t._leaf_edge


def _grad_edge(Tensor t not None):
    """``grad_edge`` for Python callers (autograd.Function)."""
    return grad_edge(t)


# ---- the one recording path ----------------------------------------------------------------------------
# Every differentiable op ends with ``return record(out, XBackward, inputs, saved, meta)``: when grad mode is
# on and an input requires grad, a node of class XBackward becomes the grad_fn of the op's result; else the
# result is a plain tensor and no node is made.

cdef tuple _no_args = ()


cdef void _untrack_leaf_tuple(object t) noexcept:
    """Hide ``t`` from the cycle collector when it is a tuple that cannot be part of a cycle: no item is a
    container, or a tuple that is still tracked.  CPython's collector untracks such a tuple itself, but only
    after traversing it in a collection: a node's shape, dtype and saved tuples (several per node, alive
    until the backward) made most of what every young-generation collection of an RNN's forward walked."""
    if type(t) is not tuple:
        return
    cdef PyObject *item
    for obj in <tuple>t:
        item = <PyObject *>obj
        if PyObject_IS_GC(item) and (type(obj) is not tuple or PyObject_GC_IsTracked(item)):
            return
    PyObject_GC_UnTrack(<PyObject *>t)


cdef tuple _shape_of(cnp.ndarray a):
    """``a.shape`` built from its dimensions (no attribute lookup), hidden from the cycle collector: a tuple of
    ints cannot be part of a cycle."""
    cdef int nd = cnp.PyArray_NDIM(a), i
    cdef tuple shape = PyTuple_New(nd)
    for i in range(nd):
        dim = PyLong_FromSsize_t(cnp.PyArray_DIMS(a)[i])
        Py_INCREF(dim)
        PyTuple_SET_ITEM(shape, i, dim)
    PyObject_GC_UnTrack(<PyObject *>shape)
    return shape


cdef tuple _shape_like(object array, tuple shape):
    """``array.shape``, as the tuple ``shape`` itself when it is equal (no new tuple)."""
    cdef cnp.ndarray a = <cnp.ndarray>array
    cdef int nd = cnp.PyArray_NDIM(a), i
    if shape is not None and len(shape) == nd:
        for i in range(nd):
            if <cnp.npy_intp>(<object>shape[i]) != cnp.PyArray_DIMS(a)[i]:
                break
        else:
            return shape
    return _shape_of(a)


cdef tuple _input_shapes(tuple inputs):
    """The inputs' shapes, for a ShapedNode: an input of the same shape as the one before shares its tuple."""
    cdef Py_ssize_t i, n = len(inputs)
    cdef tuple shapes = PyTuple_New(n), shape = None
    for i in range(n):
        shape = _shape_like((<Tensor>inputs[i])._data, shape)
        Py_INCREF(shape)
        PyTuple_SET_ITEM(shapes, i, shape)
    PyObject_GC_UnTrack(<PyObject *>shapes)  # its items are untracked tuples of ints
    return shapes


cdef Node _new_node(type cls, tuple inputs, tuple saved, object meta):
    """A node of class ``cls`` (a Node subclass) recorded on ``inputs``: its edges, the arrays it saves
    (checked against in-place changes from this epoch on: versions.pyx), the op's constants (``meta``)
    and, for a ShapedNode, the inputs' shapes."""
    cdef Node node = <Node>(<PyTypeObject*>cls).tp_new(cls, <PyObject*>_no_args, NULL)
    cdef Py_ssize_t n = len(inputs)
    if n == 1:
        node.next_functions = (grad_edge(<Tensor>inputs[0]),)
    elif n == 2:
        node.next_functions = (grad_edge(<Tensor>inputs[0]), grad_edge(<Tensor>inputs[1]))
    else:
        node.next_functions = tuple([grad_edge(<Tensor>t) for t in inputs])
    node.saved = saved
    node.meta = meta
    _untrack_leaf_tuple(saved)
    if isinstance(node, ShapedNode):
        (<ShapedNode>node).input_shapes = _input_shapes(inputs)
    node._epoch = epoch()
    return node


cdef Tensor _output(object array, Node node, int nr):
    cdef Tensor out = wrap(array)
    out._grad_fn = node
    out._output_nr = nr
    out._requires_grad = True
    return out


cdef Tensor _record(object out, type cls, tuple inputs, tuple saved, object meta):
    """``record`` (tensor.pxd) once it knows a node is needed.  ``saved``: the arrays the backward reads
    (``node.saved``); ``meta``: anything else it needs (``node.meta``).  Call ``record`` with ``saved=``
    and ``meta=`` named, or positionally (a cdef function's optional arguments cannot be skipped)."""
    if type(out) is not cnp.ndarray:  # a ufunc's 0-d result is a numpy scalar; a tensor holds an ndarray
        out = np.asarray(out)
    cdef Node node = _new_node(cls, inputs, saved, meta)
    # the result's shape, as the tuple of an input's when equal (a ShapedNode's first input's)
    node.shape = _shape_like(out, (<ShapedNode>node).input_shapes[0] if isinstance(node, ShapedNode) else None)
    node.dtype = <object>cnp.PyArray_DESCR(<cnp.ndarray>out)
    node.n_outputs = 1
    on_new_node(node)
    if anomaly_enabled():
        check_forward(node, out)
    return _output(out, node, 0)


cdef tuple record_outputs(list arrays, type cls, tuple inputs, tuple saved=None, object meta=None):
    """``record`` for an op with several results (split, unbind): one node whose backward takes a tuple
    with one gradient (or None) per result."""
    if not any_requires_grad(inputs):
        return tuple([wrap(a) for a in arrays])
    return tuple(_record_outputs(arrays, _new_node(cls, inputs, saved, meta)))


cdef list _record_outputs(list arrays, Node node):
    node.shape = shapes = tuple([a.shape for a in arrays])
    for shape in shapes:
        _untrack_leaf_tuple(shape)
    _untrack_leaf_tuple(shapes)
    node.dtype = dtypes = tuple([a.dtype for a in arrays])
    _untrack_leaf_tuple(dtypes)
    node.n_outputs = len(arrays)
    node.multi_output = True
    on_new_node(node)
    if anomaly_enabled():
        for a in arrays:
            check_forward(node, a)
    return [_output(a, node, i) for i, a in enumerate(arrays)]


def record_node(list arrays not None, Node node not None, tuple inputs not None):
    """``record_outputs`` for a node made by its caller (autograd.Function's ctx, which keeps its saved
    tensors itself): ``node`` recorded on ``inputs`` as the producer of ``arrays``; returns their
    tensors."""
    node.next_functions = tuple([grad_edge(<Tensor?>t) for t in inputs])
    node._epoch = epoch()
    return _record_outputs(arrays, node)


cdef void save_copies(Node node, object storage) except *:
    """The in-place path: ``storage`` is about to be overwritten, so the arrays over it that ``node`` (just
    recorded on the old values) saved are replaced by copies."""
    if node.saved is not None:
        node.saved = tuple([a.copy() if type(a) is np.ndarray and storage_of(a) is storage else a
                            for a in node.saved])


cdef Tensor view_of(Tensor out, Tensor src):
    """Mark ``out`` (a shape op's result on ``src``) as a view of ``src``'s base when it shares its memory
    (numpy's reshape, say, may have copied): an in-place op on it while recording is refused."""
    if out._data.base is not None and storage_of(out._data) is storage_of(src._data):
        out._base = src if src._base is None else src._base
    return out


cdef class Tensor:
    """An n-dimensional float32/float64/int32/int64/bool array; float tensors record the operations
    applied to them.

    ``Tensor(data, dtype=None, requires_grad=False)`` is the same as ``minigrad.tensor(...)``: it copies
    ``data``.
    """
    __array_priority__ = 1000
    __array_ufunc__ = None     # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, data, dtype=None, requires_grad=False):
        self._data = as_array(data, dtype, copy=True)
        if requires_grad:
            _check_differentiable(self._data, "Only")
            self._requires_grad = True

    @staticmethod
    def _from_array(array):
        return wrap(array)

    # ---- pickling and copying -------------------------------------------------------------------------
    def __reduce__(self):
        """pickle and copy.copy keep the values (copy.copy shares them) and requires_grad, as torch's do:
        not the graph (a non-leaf comes back as a leaf that requires grad), the gradient or the hooks."""
        return _rebuild_tensor, (type(self), self._data, self._requires_grad), getattr(self, "__dict__", None)

    def __deepcopy__(self, memo):
        """A leaf's copy: its own values, gradient and (a Parameter's) attributes, as torch's."""
        if self._grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the "
                               "deepcopy protocol at the moment.")
        cdef Tensor new = _rebuild_tensor(type(self), copy.deepcopy(self._data, memo), self._requires_grad)
        memo[id(self)] = new
        if self._grad is not None:
            new._grad = copy.deepcopy(self._grad, memo)
        state = getattr(self, "__dict__", None)
        if state:
            new.__dict__.update(copy.deepcopy(state, memo))
        return new

    # ---- storage and metadata -------------------------------------------------------------------------
    @property
    def data(self):
        """The numpy array holding this tensor's values (shared, not copied)."""
        return self._data

    @data.setter
    def data(self, value):
        """Share ``value``'s array (a Tensor's, or an ndarray of a minigrad dtype as given, read-only ones
        too: the in-place methods then refuse to write); a big-endian or misaligned array is copied, as in
        ``as_array``; other data is converted to this tensor's dtype."""
        if isinstance(value, Tensor):
            arr = (<Tensor>value)._data
        elif isinstance(value, np.ndarray):
            check_dtype(value.dtype.newbyteorder("="))
            arr = as_array(value)
        else:
            arr = as_array(value, self._data.dtype)
        if self._requires_grad:
            _check_differentiable(arr, "Only")
        self._data = arr
        self._leaf_edge = None

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        return _cpu

    def is_floating_point(self):
        return self._data.dtype.kind == "f"

    def cpu(self):
        return self

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    def size(self, dim=None):
        if dim is None:
            return self._data.shape
        return self._data.shape[dim]

    def numel(self):
        return self._data.size

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def numpy(self):
        """The values as a numpy array (shares memory; works on tensors that require grad)."""
        return self._data

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return np.array(self._data, copy=True) if copy else self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError("a Tensor with %d elements cannot be converted to a Python scalar"
                             % self._data.size)
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "ib" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._data.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.item())

    def __hash__(self):
        return id(self)

    def __repr__(self):
        body = np.array2string(self._data, separator=", ", prefix="tensor(", precision=4)
        extra = []
        if self._data.dtype != _default_dtype and self._data.dtype != int64 and self._data.dtype != bool_:
            extra.append("dtype=minigrad.%s" % self._data.dtype.name)
        if self._grad_fn is not None:
            extra.append("grad_fn=<%s>" % self._grad_fn.name())
        elif self._requires_grad:
            extra.append("requires_grad=True")
        return "tensor(%s%s)" % (body, "".join(", " + e for e in extra))

    # ---- autograd -------------------------------------------------------------------------------------
    @property
    def grad(self):
        """The accumulated gradient (a Tensor of this tensor's shape and dtype), or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        if not isinstance(value, Tensor):
            raise TypeError("assigned grad must be a minigrad Tensor or None, got %s" % type(value).__name__)
        cdef Tensor g = value
        if g is self:
            raise RuntimeError("can't assign Variable as its own grad")
        if g._data.shape != self._data.shape:
            raise RuntimeError("attempting to assign a gradient of shape %s to a tensor of shape %s"
                               % (g._data.shape, self._data.shape))
        if g._data.dtype != self._data.dtype:
            raise TypeError("assigned grad has dtype %s, but the tensor is %s" % (g._data.dtype, self._data.dtype))
        self._grad = g

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        """Set whether a leaf records gradients (in place); returns self."""
        if self._grad_fn is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                               "a computed variable in a subgraph that doesn't require differentiation use "
                               "var_no_grad = var.detach().")
        if requires_grad:
            _check_differentiable(self._data, "only")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self):
        return self._grad_fn is None

    @property
    def grad_fn(self):
        """The Node that produced this tensor (None for leaves): walk ``grad_fn.next_functions`` by hand."""
        return self._grad_fn

    @property
    def output_nr(self):
        return self._output_nr

    def backward(self, gradient=None, retain_graph=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see ``minigrad.autograd.backward``)."""
        backward([self], None if gradient is None else [gradient], retain_graph)

    def detach(self):
        """A new tensor sharing this one's storage, cut from the graph (the truncated-BPTT idiom)."""
        return wrap(self._data)

    def detach_(self):
        self._grad_fn = None
        self._requires_grad = False
        return self

    def register_hook(self, fn):
        """Call ``fn(grad)`` when this tensor's gradient is computed; it may return a replacement.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if not callable(fn):
            raise TypeError("register_hook expects a callable, got %s" % type(fn).__name__)
        if self._grad_fn is not None:
            return self._grad_fn._register_pre_hook(self._output_nr, fn)
        from minigrad.autograd.engine import RemovableHandle
        if self._hooks is None:
            self._hooks = []
        key = next(_hook_keys)
        self._hooks.append((key, fn))
        return RemovableHandle(self._hooks, key)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep theirs)."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._grad_fn is not None:
            self._grad_fn._retain(self._output_nr, self)

    # ---- in place ---------------------------------------------------------------------------------------
    # Every in-place change bumps the version of the tensor's storage (see autograd/versions.pyx), so a
    # backward that saved the old values raises instead of using the new ones.  While the graph is being
    # recorded, the change is recorded too: the tensor's history is rebased onto the op (``y = x * 2;
    # y += 1`` differentiates as ``y = x * 2 + 1``), as in torch.
    @property
    def _version(self):
        """How many in-place changes this tensor's storage has had (shared with its views and detach())."""
        return _storage_version(self._data)

    def zero_(self):
        return _fill(self, 0.0, "zero_")

    def fill_(self, value):
        return _fill(self, real_scalar(value, "fill_"), "fill_")

    def copy_(self, src):
        if isinstance(src, Tensor):
            if (<Tensor>src)._data.dtype.kind not in "fiub":
                raise TypeError("copy_: cannot copy %s data into a float tensor" % (<Tensor>src)._data.dtype)
            return _apply_inplace(self, _ops.shape.index_put, (Ellipsis, src), "copy_")
        arr = np.asarray(src)
        if arr.dtype.kind not in "fiub":
            raise TypeError("copy_: cannot copy %s data into a float tensor" % arr.dtype)
        return _apply_inplace(self, _ops.shape.index_put, (Ellipsis, arr.astype(self._data.dtype, copy=False)),
                              "copy_")

    def uniform_(self, a=0.0, b=1.0, generator=None):
        g = _check_generator(generator)
        return _fill(self, g.numpy_rng.uniform(a, b, size=self._data.shape), "uniform_")

    def normal_(self, mean=0.0, std=1.0, generator=None):
        g = _check_generator(generator)
        return _fill(self, g.numpy_rng.normal(mean, std, size=self._data.shape), "normal_")

    def add_(self, other, alpha=1):
        return _apply_inplace(self, _add, (other if alpha == 1 else other * alpha,), "add_")

    def sub_(self, other, alpha=1):
        return _apply_inplace(self, _sub, (other if alpha == 1 else other * alpha,), "sub_")

    def mul_(self, other):
        return _apply_inplace(self, _mul, (other,), "mul_")

    def div_(self, other):
        return _apply_inplace(self, _div, (other,), "div_")

    def clamp_(self, min=None, max=None):
        return _apply_inplace(self, _ops.elementwise.clamp, (min, max), "clamp_")

    def __iadd__(self, other):
        return _apply_inplace(self, _add, (other,), "add_")

    def __isub__(self, other):
        return _apply_inplace(self, _sub, (other,), "sub_")

    def __imul__(self, other):
        return _apply_inplace(self, _mul, (other,), "mul_")

    def __itruediv__(self, other):
        return _apply_inplace(self, _div, (other,), "div_")

    def __setitem__(self, index, value):
        if _recording(self, value):
            _apply_inplace(self, _ops.shape.index_put, (index, value), "__setitem__")
            return
        _check_inplace(self, False, "__setitem__")
        if isinstance(value, Tensor):
            value = (<Tensor>value)._data
        elif not isinstance(value, np.ndarray):
            value = as_array(value, self._data.dtype)
        self._data[_ops.shape.plain_index(index)] = value
        bump(self._data)

    # ---- arithmetic -----------------------------------------------------------------------------------
    def __add__(self, other):
        return _add(self, other)

    def __radd__(self, other):
        return _add(other, self)

    def __sub__(self, other):
        return _sub(self, other)

    def __rsub__(self, other):
        return _sub(other, self)

    def __mul__(self, other):
        return _mul(self, other)

    def __rmul__(self, other):
        return _mul(other, self)

    def __truediv__(self, other):
        return _div(self, other)

    def __rtruediv__(self, other):
        return _div(other, self)

    def __pow__(self, other, mod):
        return _ops.elementwise.pow(self, other, mod)

    def __rpow__(self, other, mod):
        return _ops.elementwise.pow(other, self, mod)

    def __matmul__(self, other):
        return _matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.linalg.matmul(other, self)

    def __neg__(self):
        return _ops.elementwise.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.elementwise.abs(self)

    # Comparisons give bool tensors: masks, never differentiable.
    def __lt__(self, other):
        return _ops.logic.lt(self, other)

    def __le__(self, other):
        return _ops.logic.le(self, other)

    def __gt__(self, other):
        return _ops.logic.gt(self, other)

    def __ge__(self, other):
        return _ops.logic.ge(self, other)

    def __eq__(self, other):
        if not _comparable(other):
            return NotImplemented  # Python falls back to identity: t == None is False
        return _ops.logic.eq(self, other)

    def __ne__(self, other):
        if not _comparable(other):
            return NotImplemented
        return _ops.logic.ne(self, other)

    def __floordiv__(self, other):
        return _ops.logic.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops.logic.floor_divide(other, self)

    def __and__(self, other):
        return _ops.logic.bitwise_and(self, other)

    def __rand__(self, other):
        return _ops.logic.bitwise_and(other, self)

    def __or__(self, other):
        return _ops.logic.bitwise_or(self, other)

    def __ror__(self, other):
        return _ops.logic.bitwise_or(other, self)

    def __xor__(self, other):
        return _ops.logic.bitwise_xor(self, other)

    def __rxor__(self, other):
        return _ops.logic.bitwise_xor(other, self)

    def __invert__(self):
        return _ops.logic.bitwise_not(self)

    def eq(self, other):
        return _ops.logic.eq(self, other)

    def ne(self, other):
        return _ops.logic.ne(self, other)

    def lt(self, other):
        return _ops.logic.lt(self, other)

    def le(self, other):
        return _ops.logic.le(self, other)

    def gt(self, other):
        return _ops.logic.gt(self, other)

    def ge(self, other):
        return _ops.logic.ge(self, other)

    def logical_and(self, other):
        return _ops.logic.logical_and(self, other)

    def logical_or(self, other):
        return _ops.logic.logical_or(self, other)

    def logical_xor(self, other):
        return _ops.logic.logical_xor(self, other)

    def logical_not(self):
        return _ops.logic.logical_not(self)

    def isnan(self):
        return _ops.logic.isnan(self)

    def isinf(self):
        return _ops.logic.isinf(self)

    def isfinite(self):
        return _ops.logic.isfinite(self)

    def floor_divide(self, other):
        return _ops.logic.floor_divide(self, other)

    def all(self, dim=None, keepdim=False):
        return _ops.reduce.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return _ops.reduce.any(self, dim, keepdim)

    def add(self, other):
        return _ops.elementwise.add(self, other)

    def sub(self, other):
        return _ops.elementwise.sub(self, other)

    def mul(self, other):
        return _ops.elementwise.mul(self, other)

    def div(self, other):
        return _ops.elementwise.div(self, other)

    def pow(self, exponent):
        return _ops.elementwise.pow(self, exponent)

    def neg(self):
        return _ops.elementwise.neg(self)

    def exp(self):
        return _ops.elementwise.exp(self)

    def log(self):
        return _ops.elementwise.log(self)

    def sqrt(self):
        return _ops.elementwise.sqrt(self)

    def abs(self):
        return _ops.elementwise.abs(self)

    def tanh(self):
        return _tanh(self)

    def sigmoid(self):
        return _sigmoid(self)

    def relu(self):
        return _ops.elementwise.relu(self)

    def clamp(self, min=None, max=None):
        return _ops.elementwise.clamp(self, min, max)

    def masked_fill(self, mask, value):
        return _ops.elementwise.masked_fill(self, mask, value)

    def to(self, *args, dtype=None, device=None, copy=False):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other_tensor)``, as torch: only the
        CPU exists; a float-to-float conversion is differentiable, one to or from an integer or bool dtype
        is not."""
        for a in args:
            if isinstance(a, Tensor):
                dtype = (<Tensor>a)._data.dtype
            elif isinstance(a, (str, _device_type)):
                device = a
            else:
                dtype = a
        if device is not None:
            _device_type(device)
        out = self if dtype is None else _ops.elementwise.to(self, dtype)
        return _ops.elementwise.clone(out) if copy and out is self else out

    def type(self, dtype=None):
        if dtype is None:
            return "minigrad.%s" % self._data.dtype.name
        return _ops.elementwise.to(self, dtype)

    def float(self):
        return _ops.elementwise.to(self, float32)

    def double(self):
        return _ops.elementwise.to(self, float64)

    def long(self):
        return _ops.elementwise.to(self, int64)

    def int(self):
        return _ops.elementwise.to(self, int32)

    def bool(self):
        return _ops.elementwise.to(self, bool_)

    def clone(self):
        return _ops.elementwise.clone(self)

    # ---- reductions -----------------------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return _ops.reduce.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return _ops.reduce.mean(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return _ops.reduce.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _ops.reduce.min(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _ops.reduce.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _ops.reduce.argmin(self, dim, keepdim)

    def cumsum(self, dim, dtype=None):
        return _ops.reduce.cumsum(self, dim, dtype)

    def sort(self, dim=-1, descending=False, stable=False):
        return _ops.reduce.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return _ops.reduce.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        return _ops.reduce.topk(self, k, dim, largest, sorted)

    def softmax(self, dim):
        return _ops.reduce.softmax(self, dim)

    def multinomial(self, num_samples, replacement=False, generator=None):
        from minigrad.random import multinomial
        return multinomial(self, num_samples, replacement, generator)

    def bernoulli(self, generator=None):
        from minigrad.random import bernoulli
        return bernoulli(self, generator)

    def log_softmax(self, dim):
        return _ops.reduce.log_softmax(self, dim)

    def logsumexp(self, dim, keepdim=False):
        return _ops.reduce.logsumexp(self, dim, keepdim)

    # ---- linear algebra -------------------------------------------------------------------------------
    def matmul(self, other):
        return _ops.linalg.matmul(self, other)

    # ---- shapes, views and indexing -------------------------------------------------------------------
    def reshape(self, *shape):
        return _ops.shape.reshape(self, *shape)

    def view(self, *shape):
        return _ops.shape.reshape(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.shape.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return _ops.shape.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return _ops.shape.permute(self, *dims)

    @property
    def T(self):
        if self._data.ndim != 2:
            raise ValueError(".T expects a 2-D tensor, got %d-D; use permute or transpose" % self._data.ndim)
        return _ops.shape.transpose(self, 0, 1)

    def t(self):
        return self.T

    def unsqueeze(self, dim):
        return _ops.shape.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return _ops.shape.squeeze(self, dim)

    def expand(self, *sizes):
        return _ops.shape.expand(self, *sizes)

    def contiguous(self):
        return self if self._data.flags.c_contiguous else _ops.elementwise.clone(self)

    def flip(self, dims):
        return _ops.shape.flip(self, dims)

    def split(self, split_size_or_sections, dim=0):
        return _ops.shape.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _ops.shape.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return _ops.shape.unbind(self, dim)

    def gather(self, dim, index):
        return _ops.shape.gather(self, dim, index)

    def __getitem__(self, index):
        return _ops.shape.getitem(self, index)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(_ops.shape.unbind(self, 0))


cdef bint _recording(Tensor t, object other):
    """Does an in-place op on ``t`` with operand ``other`` have to be recorded in the graph?"""
    return grad_enabled() and (t._requires_grad
                               or isinstance(other, Tensor) and (<Tensor>other)._requires_grad)


cdef void _check_inplace(Tensor t, bint recording, str name) except *:
    """torch's rules for changing ``t`` in place."""
    if t._grad_fn is None and t._requires_grad and grad_enabled():
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    if t._base is not None and recording:
        if t._base._grad_fn is None and t._base._requires_grad:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        # torch rewrites the base's history here (CopySlices); minigrad does not, and refuses rather than
        # leave the base with a history that no longer describes its values
        raise RuntimeError("%s: an in-place operation on a view (of a tensor of shape %s) that has to be "
                           "recorded in the graph is not supported; compute the new value out of place "
                           "(cat, where, index_put) or change the base tensor itself"
                           % (name, t._base._data.shape))
    if not t._data.flags.writeable:
        raise RuntimeError(_read_only_message(t._data, name))


cdef Tensor _apply_inplace(Tensor self, object fn, tuple args, str name):
    """``self`` <- ``fn(self, *args)``, written into ``self``'s storage (its aliases see the change), and,
    while recording, ``self`` rebased onto the recorded op."""
    cdef Tensor old, result
    recording = _recording(self, args[0]) or (len(args) > 1 and _recording(self, args[1]))
    _check_inplace(self, recording, name)
    if not recording:
        result = fn(self, *args)
    else:
        old = wrap(self._data)  # the value before the change, with the history it had
        old._grad_fn, old._output_nr, old._requires_grad = self._grad_fn, self._output_nr, self._requires_grad
        result = fn(old, *args)
        if result._grad_fn is not None:
            save_copies(result._grad_fn, storage_of(self._data))
    out = result._data
    if out.shape != self._data.shape:
        raise RuntimeError("%s: output with shape %s doesn't match the broadcast shape %s"
                           % (name, self._data.shape, out.shape))
    if out is not self._data:
        if not np.can_cast(out.dtype, self._data.dtype, casting="same_kind"):
            # torch's error (an int tensor += a float)
            raise RuntimeError("result type %s can't be cast to the desired output type %s"
                               % (_TORCH_NAMES[out.dtype.name], _TORCH_NAMES[self._data.dtype.name]))
        np.copyto(self._data, out, casting="same_kind")
    if recording:
        self._grad_fn, self._output_nr, self._requires_grad = result._grad_fn, result._output_nr, True
    bump(self._data)
    return self


cdef Tensor _fill(Tensor self, object value, str name):
    """``self`` filled with ``value`` (a number or an array of its shape), in place: no gradient flows to
    the old values."""
    if grad_enabled() and self._requires_grad:
        return _apply_inplace(self, _ops.shape.index_put, (Ellipsis, value), name)
    _check_inplace(self, False, name)
    self._data[...] = value
    bump(self._data)
    return self


cdef str _read_only_message(object arr, str what):
    if any(s == 0 and n > 1 for s, n in zip(arr.strides, arr.shape)):
        # torch's wording for writing into an expanded tensor (numpy says "destination is read-only")
        return ("%s: unsupported operation: the tensor is a broadcast view (expand()), in which more than "
                "one element refers to a single memory location. Please clone() the tensor before writing to "
                "it." % what)
    return ("%s: the tensor's array is read-only (a view of an expanded tensor, or a non-writeable numpy "
            "array given to .data); clone() the tensor, or assign a writeable array to .data" % what)


cdef bint _comparable(object other):
    return isinstance(other, (Tensor, np.ndarray, np.generic, int, float, list, tuple))


def backward(tensors, grad_tensors=None, retain_graph=None):
    """Compute the gradients of ``tensors`` with respect to the graph leaves.

    ``grad_tensors`` gives d(loss)/d(tensor) for each tensor; it may be omitted for scalar tensors.  Leaf
    gradients accumulate into ``.grad``.  The graph's saved arrays are freed unless ``retain_graph`` is true.
    """
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    tensors = list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif isinstance(grad_tensors, Tensor) or isinstance(grad_tensors, np.ndarray):
        grad_tensors = [grad_tensors]
    grad_tensors = list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError("got %d tensors but %d gradients" % (len(tensors), len(grad_tensors)))
    roots = []
    grads = []
    cdef Tensor t
    for i, (obj, g) in enumerate(zip(tensors, grad_tensors)):
        if not isinstance(obj, Tensor):
            raise TypeError("backward expects Tensors, got %s" % type(obj).__name__)
        t = obj
        edge = grad_edge(t)
        if edge is None:
            raise RuntimeError("element %d of tensors does not require grad and does not have a grad_fn" % i)
        if g is None:
            if t._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs (got shape %s); "
                                   "pass gradient= with that shape" % (t._data.shape,))
            g = np.ones(t._data.shape, dtype=t._data.dtype)
        else:
            g = as_float_array(g, t._data.dtype)
            if g.shape != t._data.shape:
                raise RuntimeError("gradient has shape %s but the tensor has shape %s"
                                   % (g.shape, t._data.shape))
        roots.append(edge)
        grads.append(g)
    run_backward(roots, grads, bool(retain_graph))


import minigrad.ops as _ops  # noqa: E402  (the ops cimport Tensor, so they load after it)

# the hottest methods call these directly instead of looking them up through the modules each time
_add = _ops.elementwise.add
_sub = _ops.elementwise.sub
_mul = _ops.elementwise.mul
_div = _ops.elementwise.div
_tanh = _ops.elementwise.tanh
_sigmoid = _ops.elementwise.sigmoid
_matmul = _ops.linalg.matmul
