"""NumPy reference for every compiled kernel: same signatures, same argument checks, same errors.

Selected with ``MINIGRAD_BACKEND=numpy``; the tests run it beside the C kernels.
"""
import numpy as np

ABI_VERSION = None
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_num_threads = 1


def _float_array(obj, fn, name):
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(obj).__name__}")
    if obj.dtype not in _FLOATS or not obj.dtype.isnative:
        raise TypeError(f"{fn}: {name} has dtype {obj.dtype.str}; "
                        "expected float32 or float64 in native byte order")
    return obj


def _check_layout(arr, fn, name):
    if any(s % arr.itemsize for s in arr.strides):
        raise ValueError(f"{fn}: {name} has strides {arr.strides}, "
                         f"not multiples of its itemsize {arr.itemsize}")
    if not arr.flags.aligned:
        raise ValueError(f"{fn}: {name}'s data is not aligned to its itemsize")


def _check_out(out, like, shape, fn):
    _float_array(out, fn, "out")
    if out.dtype != like.dtype:
        raise TypeError(f"{fn}: out has dtype {out.dtype}, expected {like.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{fn}: out is read-only")
    return out.shape == shape


def _self_overlapping(arr):
    if arr.size == 0:
        return False
    span = 1
    for st, n in sorted((abs(s) // arr.itemsize, n) for s, n in zip(arr.strides, arr.shape) if n > 1):
        if st < span:
            return True
        span += st * (n - 1)
    return False


def _matmul(a, b, out=None):
    """np.matmul without numpy's floating-point warnings: inf and nan are values, as in the C kernels."""
    with np.errstate(all="ignore"):
        return np.matmul(a, b) if out is None else np.matmul(a, b, out=out)


def _shares_memory(x, y):
    try:
        return np.shares_memory(x, y, max_work=10000)
    except np.exceptions.TooHardError:
        return True


class PackedMatrix:
    """The reference's packed operand: a private copy of b (a snapshot, like the kernels' packing)."""
    __slots__ = ("_b", "isa")

    def __init__(self, b=None, token=None):
        if token is not _PACK_TOKEN:
            raise TypeError("PackedMatrix objects are made by pack(b)")
        self._b = np.array(b, order="C")
        self._b.flags.writeable = False
        self.isa = "numpy-reference"

    shape = property(lambda self: self._b.shape)
    dtype = property(lambda self: self._b.dtype)
    nbytes = property(lambda self: self._b.nbytes)

    def __repr__(self):
        return f"PackedMatrix(shape={self.shape}, dtype={self.dtype}, isa={self.isa!r})"

    def __reduce__(self):
        raise TypeError("PackedMatrix cannot be pickled; pickle the array and pack it again")


_PACK_TOKEN = object()


def pack(b):
    """A snapshot of the 2-D float array b (K, N) for reuse as matmul's right operand."""
    _float_array(b, "pack", "b")
    if b.ndim != 2:
        raise ValueError(f"pack: b must be 2-D (K, N), got shape {b.shape}")
    _check_layout(b, "pack", "b")
    return PackedMatrix(b, _PACK_TOKEN)


def matmul(a, b, out=None, accumulate=False):
    """a @ b for float32 or float64 arrays; see minigrad._kernels.matmul for the contract."""
    _float_array(a, "matmul", "a")
    if type(b) is PackedMatrix:
        b = b._b
    _float_array(b, "matmul", "b")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: mixed dtypes {a.dtype} (a) and {b.dtype} (b); cast one of them")
    for arr, name in ((a, "a"), (b, "b")):
        if arr.ndim not in (2, 3):
            raise ValueError(f"matmul: {name} must be 2-D (rows, cols) or 3-D (batch, rows, cols), "
                             f"got shape {arr.shape}")
        _check_layout(arr, "matmul", name)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ: a has shape {a.shape}, b has shape {b.shape}")
    ba = a.shape[0] if a.ndim == 3 else 1
    bb = b.shape[0] if b.ndim == 3 else 1
    if ba != bb and ba != 1 and bb != 1:
        raise ValueError(f"matmul: batch sizes differ: a has shape {a.shape}, b has shape {b.shape}")
    shape = (a.shape[-2], b.shape[-1])
    if a.ndim == 3 or b.ndim == 3:
        shape = (max(ba, bb),) + shape
    if out is None:
        if accumulate:
            raise ValueError("matmul: accumulate=True needs an out array to add into")
        return _matmul(a, b)
    if not _check_out(out, a, shape, "matmul"):
        raise ValueError(f"matmul: out has shape {out.shape}, expected {shape} "
                         f"for a of shape {a.shape} and b of shape {b.shape}")
    _check_layout(out, "matmul", "out")
    if _self_overlapping(out):
        raise ValueError(f"matmul: out's strides {out.strides} make its elements overlap")
    if _shares_memory(out, a) or _shares_memory(out, b):
        raise ValueError("matmul: out shares memory with a or b; pass a separate array")
    if accumulate:
        out += _matmul(a, b)
    else:
        _matmul(a, b, out=out)
    return out


def _elementwise_out(out, inputs, fn):
    like = inputs[0][0]
    if out is None:
        return np.empty(like.shape, like.dtype)
    if not _check_out(out, like, like.shape, fn):
        raise ValueError(f"{fn}: out has shape {out.shape}, expected {like.shape}")
    if _self_overlapping(out):
        raise ValueError(f"{fn}: out's strides {out.strides} make its elements overlap; pass an array whose "
                         "elements are distinct")
    for x, name in inputs:
        same_view = out.ctypes.data == x.ctypes.data and out.strides == x.strides
        if not same_view and _shares_memory(out, x):
            raise ValueError(f"{fn}: out partially overlaps {name}; pass {name} itself (in place) "
                             f"or a separate array")
    return out


def _activation(activation, fn):
    if not (activation is None or (isinstance(activation, str) and activation == "tanh")):
        raise ValueError(f"{fn}: activation must be None or 'tanh', got {activation!r}")


def _addmm_operands(c, a, b, out, fn):
    """One addmm validated as the kernels validate it: (c broadcast to the product's shape, b's array)."""
    _float_array(a, fn, "a")
    if a.ndim != 2:
        raise ValueError(f"{fn}: a must be 2-D (M, K), got shape {a.shape}")
    _check_layout(a, fn, "a")
    if type(b) is PackedMatrix:
        b = b._b
    else:
        _float_array(b, fn, "b")
    if b.dtype != a.dtype:
        raise TypeError(f"{fn}: mixed dtypes {a.dtype} (a) and {b.dtype} (b); cast one of them")
    if b.ndim != 2:
        raise ValueError(f"{fn}: b must be 2-D (K, N), got shape {b.shape}")
    _check_layout(b, fn, "b")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{fn}: inner dimensions differ: a has shape {a.shape}, b has shape {b.shape}")
    _float_array(c, fn, "c")
    if c.dtype != a.dtype:
        raise TypeError(f"{fn}: c has dtype {c.dtype}, the product {a.dtype}; cast one of them")
    shape = (a.shape[0], b.shape[1])
    try:
        cb = np.broadcast_to(c, shape)
    except ValueError:
        raise ValueError(f"{fn}: c of shape {c.shape} does not broadcast to the product's shape "
                         f"{shape}") from None
    _check_layout(cb, fn, "c")
    if out is not None:
        if not _check_out(out, a, shape, fn):
            raise ValueError(f"{fn}: out has shape {out.shape}, expected {shape} "
                             f"for a of shape {a.shape} and b of shape {b.shape}")
        _check_layout(out, fn, "out")
        if _self_overlapping(out):
            raise ValueError(f"{fn}: out's strides {out.strides} make its elements overlap")
        if _shares_memory(out, a) or _shares_memory(out, b) or _shares_memory(out, c):
            raise ValueError(f"{fn}: out shares memory with a, b or c; pass a separate array")
    return cb, b


def _addmm_run(cb, a, b, activation, out):
    s = np.array(cb, order="C", copy=True)
    s += _matmul(a, b)
    if activation == "tanh":
        tanh(s, out=s)
    if out is None:
        return s
    out[...] = s
    return out


def addmm(c, a, b, activation=None, out=None):
    """c + a @ b (or its tanh) as a new array or in out; see minigrad._kernels.addmm for the contract."""
    _activation(activation, "addmm")
    cb, b = _addmm_operands(c, a, b, out, "addmm")
    return _addmm_run(cb, a, b, activation, out)


def addmm_many(cs, as_, bs, activation=None, outs=None):
    """[addmm(...) for each product]; see minigrad._kernels.addmm_many for the contract."""
    _activation(activation, "addmm_many")
    if not all(isinstance(x, (list, tuple)) for x in (cs, as_, bs)):
        raise TypeError("addmm_many: cs, as_ and bs must be lists or tuples of arrays")
    n = len(cs)
    if len(as_) != n or len(bs) != n or (outs is not None and len(outs) != n):
        raise ValueError(f"addmm_many: expected as many as, bs (and outs) as cs ({n}), got {len(as_)}, "
                         f"{len(bs)}" + ("" if outs is None else f", {len(outs)}"))
    outs = [None] * n if outs is None else list(outs)
    # every product validated before any runs, as the kernels do
    operands = [_addmm_operands(cs[i], as_[i], bs[i], outs[i], "addmm_many") for i in range(n)]
    for i in range(n):
        if outs[i] is not None:
            for k in range(n):
                if k != i and any(_shares_memory(outs[i], x) for x in (as_[k], cs[k])
                                  + (() if outs[k] is None else (outs[k],))):
                    raise ValueError(f"addmm_many: output {i} shares memory with an operand or the output of "
                                     f"product {k}; the products run at the same time")
    return [_addmm_run(cb, as_[i], b, activation, outs[i]) for i, (cb, b) in enumerate(operands)]


def _seq_checks(fn, dtype, outs, operands, shape):
    """A sequence job's outputs (``shape``, writable) and per-direction ``operands`` ((name, arrays, shape)):
    float arrays of ``dtype`` and their shapes, no output sharing memory with another direction's output or
    any operand (the kernels' checks)."""
    for name, arrays, want in [("outs", outs, shape)] + operands:
        for i, arr in enumerate(arrays):
            _float_array(arr, fn, f"{name}[{i}]")
            if arr.dtype != dtype:
                raise (ValueError if name == "outs" else TypeError)(
                    f"{fn}: {name}[{i}] has dtype {arr.dtype}, the products {dtype}")
            if arr.shape != want:
                raise ValueError(f"{fn}: {name}[{i}] has shape {arr.shape}, expected {want}")
    for i, out in enumerate(outs):
        if not out.flags.writeable:
            raise ValueError(f"{fn}: outs[{i}] is read-only")
        for k in range(len(outs)):
            if (k != i and _shares_memory(out, outs[k])) or any(
                    _shares_memory(out, arrays[k]) for _, arrays, _ in operands):
                raise ValueError(f"{fn}: outs[{i}] shares memory with an output or operand of direction {k}")


def addmm_seq(cs, h0s, bs, outs, reverse, activation=None):
    """An RNN layer's products step by step; see minigrad._kernels.addmm_seq for the contract."""
    _activation(activation, "addmm_seq")
    if not all(isinstance(v, (list, tuple)) for v in (cs, h0s, bs, outs, reverse)):
        raise TypeError("addmm_seq: cs, h0s, bs, outs and reverse must be lists or tuples")
    n = len(cs)
    if n == 0 or len(h0s) != n or len(bs) != n or len(outs) != n or len(reverse) != n:
        raise ValueError(f"addmm_seq: expected as many h0s, bs, outs and reverse as cs (at least one), got "
                         f"{n}, {len(h0s)}, {len(bs)}, {len(outs)}, {len(reverse)}")
    for i in range(n):
        if type(bs[i]) is not PackedMatrix:
            raise TypeError(f"addmm_seq: bs[{i}] must be a PackedMatrix (pack(b)), got {type(bs[i]).__name__}")
    b0 = bs[0]
    if b0.shape[0] != b0.shape[1]:
        raise ValueError(f"addmm_seq: bs[0] has shape {b0.shape}; the state's product needs a square operand")
    if any(b.shape != b0.shape or b.dtype != b0.dtype for b in bs):
        raise ValueError("addmm_seq: expected one shape and dtype for all bs")
    _float_array(outs[0], "addmm_seq", "outs[0]")
    if outs[0].ndim != 3:
        raise ValueError(f"addmm_seq: outs[0] must be 3-D (L, M, N), got shape {outs[0].shape}")
    shape = outs[0].shape[:2] + (b0.shape[1],)
    _seq_checks("addmm_seq", b0.dtype, outs, [("cs", cs, shape), ("h0s", h0s, shape[1:])], shape)
    seq_len = shape[0]
    for s in range(seq_len):
        for i in range(n):
            t = seq_len - 1 - s if reverse[i] else s
            h = h0s[i] if s == 0 else outs[i][t + 1 if reverse[i] else t - 1]
            addmm(cs[i][t], h, bs[i], activation, outs[i][t])
    return outs


def lstm_seq(xgs, h0s, c0s, bs, outs, reverse):
    """An LSTM layer's forward step by step; see minigrad._kernels.lstm_seq for the contract."""
    if not all(isinstance(v, (list, tuple)) for v in (xgs, h0s, c0s, bs, outs, reverse)):
        raise TypeError("lstm_seq: xgs, h0s, c0s, bs, outs and reverse must be lists or tuples")
    return _gated_seq("lstm_seq", 4, xgs, h0s, c0s, bs, outs, reverse)


def gru_seq(xgs, bhs, h0s, bs, outs, reverse):
    """A GRU layer's forward step by step; see minigrad._kernels.gru_seq for the contract."""
    if not all(isinstance(v, (list, tuple)) for v in (xgs, bhs, h0s, bs, outs, reverse)):
        raise TypeError("gru_seq: xgs, bhs, h0s, bs, outs and reverse must be lists or tuples")
    return _gated_seq("gru_seq", 3, xgs, h0s, bhs, bs, outs, reverse)


def _gated_seq(fn, gates, xgs, h0s, mids, bs, outs, reverse):
    n = len(xgs)
    mid = "c0s" if gates == 4 else "bhs"
    if n == 0 or not len(h0s) == len(mids) == len(bs) == len(outs) == len(reverse) == n:
        raise ValueError(f"{fn}: expected as many h0s, {mid}, bs, outs and reverse as xgs (at least one), got "
                         f"{n}, {len(h0s)}, {len(mids)}, {len(bs)}, {len(outs)}, {len(reverse)}")
    for i in range(n):
        if type(bs[i]) is not PackedMatrix:
            raise TypeError(f"{fn}: bs[{i}] must be a PackedMatrix (pack(b)), got {type(bs[i]).__name__}")
    b0 = bs[0]
    H = b0.shape[0]
    if b0.shape[1] != gates * H:
        raise ValueError(f"{fn}: bs[0] has shape {b0.shape}; the gates product needs (H, {gates} * H)")
    if any(b.shape != b0.shape or b.dtype != b0.dtype for b in bs):
        raise ValueError(f"{fn}: bs[i] are {[b for b in bs]}; expected one shape, dtype and path")
    _float_array(outs[0], fn, "outs[0]")
    if outs[0].ndim != 3:
        raise ValueError(f"{fn}: outs[0] must be 3-D (L, M, H), got shape {outs[0].shape}")
    L, M = outs[0].shape[:2]
    _seq_checks(fn, b0.dtype, outs, [("xgs", xgs, (L, M, gates * H)), ("h0s", h0s, (M, H)),
                                     (mid, mids, (M, H) if gates == 4 else (M, gates * H))], (L, M, H))
    firsts = [np.empty((L, M, gates * H), b0.dtype) for _ in range(n)]
    seconds = [np.empty((L, M, H) if gates == 4 else (L, M, gates * H), b0.dtype) for _ in range(n)]
    thirds = [np.empty((L, M, H), b0.dtype) for _ in range(n)]
    for s in range(L):
        for i in range(n):
            t = L - 1 - s if reverse[i] else s
            prev = t + 1 if reverse[i] else t - 1
            h = h0s[i] if s == 0 else outs[i][prev]
            if gates == 4:
                c = mids[i] if s == 0 else seconds[i][prev]
                addmm(xgs[i][t], h, bs[i], None, firsts[i][t])
                lstm_forward(firsts[i][t], c, firsts[i][t], seconds[i][t], thirds[i][t], outs[i][t])
            else:
                addmm(mids[i], h, bs[i], None, firsts[i][t])
                gru_forward(xgs[i][t], firsts[i][t], h, seconds[i][t], outs[i][t])
    return (firsts, seconds, thirds) if gates == 4 else (firsts, seconds)


def lstm_seq_backward(gs, dc, acts, c_prevs, tanh_cs, p, d_gates, dc_prev=None):
    """The backward of an LSTM layer's steps, step by step; see minigrad._kernels.lstm_seq_backward for the
    contract."""
    fn = "lstm_seq_backward"
    if not all(isinstance(v, (list, tuple)) for v in (gs, acts, c_prevs, tanh_cs, d_gates)):
        raise TypeError(f"{fn}: gs, acts, c_prevs, tanh_cs and d_gates must be lists or tuples")
    (d_gates,), dc_prev = _seq_backward_operands(fn, 4, gs, dc, [("acts", acts, 4), ("c_prevs", c_prevs, 1),
                                                                 ("tanh_cs", tanh_cs, 1)], p,
                                                 [("d_gates", d_gates)], dc_prev, "dc_prev")
    dc_k = dc
    for k in range(len(acts)):
        dh = gs[0] if k == 0 else matmul(d_gates[k - 1], p) if gs[k] is None else addmm(gs[k], d_gates[k - 1], p)
        out_dc = dc_prev if k == len(acts) - 1 else None
        _, dc_k = lstm_backward(dh, dc_k, acts[k], c_prevs[k], tanh_cs[k], d_gates[k], out_dc)
    return d_gates, dc_prev


def gru_seq_backward(gs, acts, hns, h_prevs, p, d_xgs, d_hgs, dh_prev=None):
    """The backward of a GRU layer's steps, step by step; see minigrad._kernels.gru_seq_backward for the
    contract."""
    fn = "gru_seq_backward"
    if not all(isinstance(v, (list, tuple)) for v in (gs, acts, hns, h_prevs, d_xgs, d_hgs)):
        raise TypeError(f"{fn}: gs, acts, hns, h_prevs, d_xgs and d_hgs must be lists or tuples")
    (d_xgs, d_hgs), dh_prev = _seq_backward_operands(fn, 3, gs, None, [("acts", acts, 3), ("hns", hns, 1),
                                                                       ("h_prevs", h_prevs, 1)], p,
                                                     [("d_xgs", d_xgs), ("d_hgs", d_hgs)], dh_prev, "dh_prev")
    direct = None
    for k in range(len(acts)):
        if k == 0:
            dh = gs[0]
        else:
            dh = addmm(direct if gs[k] is None else gs[k] + direct, d_hgs[k - 1], p)
        out = dh_prev if k == len(acts) - 1 else None
        _, _, direct = gru_backward(dh, acts[k], hns[k], h_prevs[k], d_xgs[k], d_hgs[k], out)
    return d_xgs, d_hgs, dh_prev


def _seq_backward_operands(fn, gates, gs, dc, ins, p, outs, last, last_name):
    """The checks of lstm_seq_backward and gru_seq_backward (the kernels' own); returns (the gate gradients'
    lists, with None allocated, and the last step's (M, H) output)."""
    acts = ins[0][1]
    n = len(acts)
    if n == 0 or len(gs) != n or any(len(arrs) != n for _, arrs, _ in ins) or any(len(a) != n for _, a in outs):
        names = ", ".join(["gs"] + [x[0] for x in ins[1:]] + [x[0] for x in outs])
        raise ValueError(f"{fn}: expected as many {names} as acts (at least one), got "
                         f"{[len(gs)] + [len(x[1]) for x in ins[1:]] + [len(x[1]) for x in outs]} and {n}")
    if type(p) is not PackedMatrix:
        raise TypeError(f"{fn}: p must be a PackedMatrix (pack(W)), got {type(p).__name__}")
    H = p.shape[1]
    if p.shape[0] != gates * H:
        raise ValueError(f"{fn}: p has shape {p.shape}; the state's product needs ({gates} * H, H)")
    if gs[0] is None:
        raise ValueError(f"{fn}: gs[0] (the first step's whole gradient) must be an array, got None")
    _float_array(acts[0], fn, "acts[0]")
    if acts[0].ndim != 2:
        raise ValueError(f"{fn}: acts[0] must be 2-D (M, {gates}H), got shape {acts[0].shape}")
    M = acts[0].shape[0]
    outs = [(name, _fresh_steps(arrs, (M, gates * H), p.dtype)) for name, arrs in outs]
    if last is None:
        last = np.empty((M, H), p.dtype)
    arrays = []
    groups = [(name, arrs, gates, True) for name, arrs in outs] + [(name, arrs, w, False) for name, arrs, w in ins]
    for name, arrs, width, write in groups + [("gs", gs, 1, False)]:
        for i, arr in enumerate(arrs):
            if arr is None:
                if name != "gs":
                    raise TypeError(f"{fn}: {name}[{i}] must be an array, got None")
                continue
            _float_array(arr, fn, f"{name}[{i}]")
            if arr.dtype != p.dtype:
                raise TypeError(f"{fn}: {name}[{i}] has dtype {arr.dtype}, the step's {p.dtype}")
            if arr.ndim != 2:
                raise ValueError(f"{fn}: {name}[{i}] must be 2-D (M, {width}H), got shape {arr.shape}")
            if arr.shape != (M, width * H):
                raise ValueError(f"{fn}: {name}[{i}] has shape {arr.shape}, expected {(M, width * H)}")
            arrays.append((arr, write))
    for arr, name, write in ((dc, "dc", False), (last, last_name, True)):
        if arr is not None:
            _float_array(arr, fn, name)
            if arr.dtype != p.dtype:
                raise TypeError(f"{fn}: {name} has dtype {arr.dtype}, the step's {p.dtype}")
            if arr.shape != (M, H):
                raise ValueError(f"{fn}: {name} has shape {arr.shape}, expected {(M, H)}")
            arrays.append((arr, write))
    for a, (x, out) in enumerate(arrays):
        if out and not x.flags.writeable:
            raise ValueError(f"{fn}: an output is read-only")
        for b, (y, out_b) in enumerate(arrays):
            if a < b and (out or out_b) and _shares_memory(x, y):
                raise ValueError(f"{fn}: an output shares memory with another output or an operand")
    return [arrs for _, arrs in outs], last


def _fresh_steps(arrs, shape, dtype):
    """A sequence job's per-step outputs (latest step first) with each None a step of one new array, earliest
    step first; ``arrs`` itself when none is None (as minigrad._kernels)."""
    if not any(a is None for a in arrs):
        return arrs
    fresh = np.empty((len(arrs),) + shape, dtype)
    return [fresh[len(arrs) - 1 - i] if a is None else a for i, a in enumerate(arrs)]


def tanh_seq_backward(gs, ys, p, dzs):
    """The backward of an RNN layer's tanh steps, step by step; see minigrad._kernels.tanh_seq_backward for
    the contract."""
    fn = "tanh_seq_backward"
    if not all(isinstance(v, (list, tuple)) for v in (gs, ys, dzs)):
        raise TypeError(f"{fn}: gs, ys and dzs must be lists or tuples")
    n = len(dzs)
    if n == 0 or len(gs) != n or len(ys) != n:
        raise ValueError(f"{fn}: expected as many gs and ys as dzs (at least one), got {len(gs)}, {len(ys)}, {n}")
    if type(p) is not PackedMatrix:
        raise TypeError(f"{fn}: p must be a PackedMatrix (pack(W)), got {type(p).__name__}")
    if p.shape[0] != p.shape[1]:
        raise ValueError(f"{fn}: p has shape {p.shape}; the state's product needs a square operand")
    if gs[0] is None:
        raise ValueError(f"{fn}: gs[0] (the first step's whole gradient) must be an array, got None")
    fname, first = ("dzs[0]", dzs[0]) if dzs[0] is not None else ("ys[0]", ys[0])
    _float_array(first, fn, fname)
    if first.ndim != 2:
        raise ValueError(f"{fn}: {fname} must be 2-D (M, N), got shape {first.shape}")
    shape = (first.shape[0], p.shape[1])
    dzs = _fresh_steps(dzs, shape, p.dtype)
    for name, arrays in (("dzs", dzs), ("ys", ys), ("gs", gs)):
        for i, arr in enumerate(arrays):
            if arr is None and name == "gs":
                continue
            _float_array(arr, fn, f"{name}[{i}]")
            if arr.dtype != p.dtype:
                raise TypeError(f"{fn}: {name}[{i}] has dtype {arr.dtype}, the step's {p.dtype}")
            if arr.shape != shape:
                raise ValueError(f"{fn}: {name}[{i}] has shape {arr.shape}, expected {shape}")
            if name == "dzs" and not arr.flags.writeable:
                raise ValueError(f"{fn}: {name}[{i}] is read-only")
    others = list(dzs) + list(ys) + [g for g in gs if g is not None]
    for i, dz in enumerate(dzs):
        if any(k != i and _shares_memory(dz, x) for k, x in enumerate(others)):
            raise ValueError(f"{fn}: an output shares memory with another output or operand")
    for s in range(n):
        g = gs[s]
        if s > 0:
            g = matmul(dzs[s - 1], p) if g is None else addmm(g, dzs[s - 1], p)
        tanh_backward(g, ys[s], dzs[s])
    return dzs


def matmul_stacked_t(lefts, rights):
    """concatenate(lefts).T @ concatenate(rights); see minigrad._kernels.matmul_stacked_t for the contract."""
    if not isinstance(lefts, (list, tuple)) or not isinstance(rights, (list, tuple)):
        raise TypeError(f"matmul_stacked_t: lefts and rights must be lists or tuples of arrays, got "
                        f"{type(lefts).__name__} and {type(rights).__name__}")
    n = len(lefts)
    if n == 0 or len(rights) != n:
        raise ValueError(f"matmul_stacked_t: expected as many rights as lefts (at least one), got {n} lefts "
                         f"and {len(rights)} rights")
    dtype = _float_array(lefts[0], "matmul_stacked_t", "lefts[0]").dtype
    widths = {"lefts": None, "rights": None}
    for i in range(n):
        pair = []
        for name, dim, arr in (("lefts", "M", lefts[i]), ("rights", "N", rights[i])):
            _float_array(arr, "matmul_stacked_t", f"{name}[{i}]")
            if arr.ndim != 2:
                raise ValueError(f"matmul_stacked_t: {name}[{i}] must be 2-D, got shape {arr.shape}")
            if arr.dtype != dtype:
                raise TypeError(f"matmul_stacked_t: {name}[{i}] has dtype {arr.dtype}, lefts[0] has {dtype}; "
                                "all factors need one dtype")
            if widths[name] is None:
                widths[name] = arr.shape[1]
            elif arr.shape[1] != widths[name]:
                raise ValueError(f"matmul_stacked_t: {name}[{i}] has shape {arr.shape}, expected "
                                 f"{widths[name]} columns ({dim}, as {name}[0])")
            pair.append(arr)
        if pair[0].shape[0] != pair[1].shape[0]:
            raise ValueError(f"matmul_stacked_t: lefts[{i}] has shape {pair[0].shape} but rights[{i}] has "
                             f"shape {pair[1].shape}; a pair needs the same number of rows")
    return np.ascontiguousarray(_matmul(np.concatenate(lefts, axis=0).T, np.concatenate(rights, axis=0)))


def tanh(x, out=None):
    """Elementwise tanh of a float32/float64 array of any shape and strides."""
    _float_array(x, "tanh", "x")
    out = _elementwise_out(out, [(x, "x")], "tanh")
    np.tanh(x, out=out)
    return out


def _check_pair(a, b, fn, an, bn):
    """The two operands of an elementwise kernel: float arrays of one dtype and one shape."""
    _float_array(a, fn, an)
    _float_array(b, fn, bn)
    if a.dtype != b.dtype:
        raise TypeError(f"{fn}: mixed dtypes {a.dtype} ({an}) and {b.dtype} ({bn})")
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {an} has shape {a.shape} but {bn} has shape {b.shape}")


def sub_sqsum(x, t):
    """(x - t, sum((x - t)**2) in double precision); see minigrad._kernels.sub_sqsum for the contract."""
    _check_pair(x, t, "sub_sqsum", "x", "t")
    with np.errstate(all="ignore"):
        diff = np.empty(x.shape, x.dtype)  # C-contiguous, and an array for 0-d operands too
        np.subtract(x, t, out=diff)
        d = diff.astype(np.float64)
        return diff, float(np.sum(d * d))


def sum_rows(a):
    """a.sum(axis=0) of a 2-D float32/float64 array, accumulated in a wider type (float64, long double) and
    rounded once: numpy's own axis-0 sum is a running sum in the element type.  See minigrad._kernels.sum_rows
    for the contract."""
    a = _float_array(a, "sum_rows", "a")
    if a.ndim != 2:
        raise ValueError(f"sum_rows: a must be 2-D (rows, cols), got shape {a.shape}")
    wide = np.float64 if a.dtype == np.float32 else np.longdouble
    with np.errstate(all="ignore"):
        return np.add.reduce(a, axis=0, dtype=wide).astype(a.dtype)


def tanh_backward(grad, y, out=None):
    """grad * (1 - y*y): the gradient through tanh from its saved output y."""
    _check_pair(grad, y, "tanh_backward", "grad", "y")
    out = _elementwise_out(out, [(grad, "grad"), (y, "y")], "tanh_backward")
    np.multiply(grad, 1 - y * y, out=out)
    return out


def sigmoid(x, out=None):
    """Elementwise 1 / (1 + exp(-x)) of a float32/float64 array of any shape and strides, computed in
    float64 (float32) or long double (float64) and rounded once."""
    _float_array(x, "sigmoid", "x")
    out = _elementwise_out(out, [(x, "x")], "sigmoid")
    wide = np.float64 if x.dtype == np.float32 else np.longdouble
    with np.errstate(over="ignore"):
        np.divide(1, 1 + np.exp(-np.asarray(x, wide)), out=out, casting="same_kind")
    return out


def sigmoid_backward(grad, y, out=None):
    """(grad * y) * (1 - y): the gradient through sigmoid from its saved output y."""
    _check_pair(grad, y, "sigmoid_backward", "grad", "y")
    out = _elementwise_out(out, [(grad, "grad"), (y, "y")], "sigmoid_backward")
    np.multiply(grad * y, 1 - y, out=out)
    return out


_ARITH = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}


def _one_value(x):
    return x.flags.aligned and x.size > 0 and all(s == 0 for s, n in zip(x.strides, x.shape) if n > 1)


def arith(op, a, b, out=None):
    """a (op) b elementwise: numpy's ufunc, with the C kernel's operand rules."""
    ufunc = _ARITH.get(op) if type(op) is str else None
    if ufunc is None:
        raise ValueError(f"arith: op must be one of 'add', 'sub', 'mul', 'div', got {op!r}")
    _float_array(a, "arith", "a")
    _float_array(b, "arith", "b")
    if a.dtype != b.dtype:
        raise TypeError(f"arith: mixed dtypes {a.dtype} (a) and {b.dtype} (b)")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"arith: shapes {a.shape} (a) and {b.shape} (b) do not broadcast") from None
    whole_a = a.flags.c_contiguous and a.flags.aligned and a.shape == shape
    whole_b = b.flags.c_contiguous and b.flags.aligned and b.shape == shape
    if not ((whole_a or _one_value(a)) and (whole_b or _one_value(b)) and (whole_a or whole_b)):
        raise ValueError(f"arith: a {a.shape} with strides {a.strides} and b {b.shape} with strides "
                         f"{b.strides}: each must be C-contiguous with the result's shape {shape} or hold one "
                         "value (one element, or every stride zero), and one of them C-contiguous")
    if out is None:
        out = np.empty(shape, dtype=a.dtype)
    else:
        _check_out(out, a, shape, "arith")
        if out.shape != shape or not (out.flags.c_contiguous and out.flags.aligned):
            raise ValueError(f"arith: out must be a C-contiguous array of shape {shape}, got shape "
                             f"{out.shape} with strides {out.strides}")
        for x, whole, name in ((a, whole_a, "a"), (b, whole_b, "b")):
            in_place = whole and x.size and x.__array_interface__["data"][0] == out.__array_interface__["data"][0]
            if not in_place and _shares_memory(out, x):
                raise ValueError(f"arith: out shares memory with {name}; pass {name} itself (when it is "
                                 "C-contiguous) or a separate array")
    if out.size:
        with np.errstate(all="ignore"):
            ufunc(a, b, out=out)
    return out


def _gate_operands(fn, ins, outs, alias=None):
    """The gated cells' operands as the kernels check them: [(array or None, name, (B, W))] inputs and outputs
    of one float dtype and exact shapes, rows contiguous (any distance apart), outputs writable and disjoint
    from everything but the one allowed (output, input) alias.  Returns the outputs, new arrays for None."""
    dtype = None
    result = []
    for arrs, is_out in ((ins, False), (outs, True)):
        for arr, name, shape in arrs:
            if arr is None and is_out:
                arr = np.empty(shape, dtype)
            _float_array(arr, fn, name)
            if dtype is None:
                dtype = arr.dtype
            elif arr.dtype != dtype:
                raise TypeError(f"{fn}: {name} has dtype {arr.dtype}, expected {dtype} like the other operands")
            if arr.shape != shape:
                raise ValueError(f"{fn}: {name} has shape {arr.shape}, expected {shape}")
            if is_out and not arr.flags.writeable:
                raise ValueError(f"{fn}: {name} is read-only")
            if not arr.flags.aligned:
                raise ValueError(f"{fn}: {name}'s data is not aligned to its itemsize")
            if shape[0] > 0 and shape[1] > 1 and arr.strides[1] != arr.itemsize:
                raise ValueError(f"{fn}: {name} has strides {arr.strides}; its rows must be contiguous")
            if shape[1] > 0 and shape[0] > 1 and (arr.strides[0] < 0 or arr.strides[0] % arr.itemsize
                                 or (is_out and arr.strides[0] < shape[1] * arr.itemsize)):
                raise ValueError(f"{fn}: {name} has strides {arr.strides}; rows must lie a non-negative "
                                 f"multiple of the itemsize apart{', without overlapping' if is_out else ''}")
            if is_out:
                result.append(arr)
    named = [(a, n) for a, n, _ in ins] + [(a, n) for a, (_, n, _) in zip(result, outs)]
    for o in range(len(named) - len(outs), len(named)):
        for k in range(o):
            a, b = named[o][0], named[k][0]
            if alias == (named[o][1], named[k][1]) and a.ctypes.data == b.ctypes.data and a.strides == b.strides:
                continue
            if _shares_memory(a, b):
                what = "input" if k < len(named) - len(outs) else "output"
                raise ValueError(f"{fn}: {named[o][1]} shares memory with the {what} {named[k][1]}; "
                                 "pass a separate array")
    return result


def _gate_hidden(arr, fn, name, sections):
    _float_array(arr, fn, name)
    if arr.ndim != 2 or arr.shape[1] % sections:
        raise ValueError(f"{fn}: {name} has shape {arr.shape}, expected (batch, {sections} * hidden_size)")
    return arr.shape[0], arr.shape[1] // sections


def lstm_forward(gates, c_prev, act=None, c=None, tanh_c=None, h=None):
    """One LSTM step's elementwise part; see minigrad._kernels.lstm_forward for the contract."""
    B, H = _gate_hidden(gates, "lstm_forward", "gates", 4)
    act, c, tanh_c, h = _gate_operands(
        "lstm_forward", [(gates, "gates", (B, 4 * H)), (c_prev, "c_prev", (B, H))],
        [(act, "act", (B, 4 * H)), (c, "c", (B, H)), (tanh_c, "tanh_c", (B, H)), (h, "h", (B, H))],
        alias=("act", "gates"))
    sigmoid(gates[:, :2 * H], out=act[:, :2 * H])
    np.tanh(gates[:, 2 * H:3 * H], out=act[:, 2 * H:3 * H])
    sigmoid(gates[:, 3 * H:], out=act[:, 3 * H:])
    i, f, g, o = (act[:, k * H:(k + 1) * H] for k in range(4))
    np.add(f * c_prev, i * g, out=c)
    np.tanh(c, out=tanh_c)
    np.multiply(o, tanh_c, out=h)
    return act, c, tanh_c, h


def lstm_backward(dh, dc, act, c_prev, tanh_c, d_gates=None, dc_prev=None):
    """The gradient through lstm_forward; see minigrad._kernels.lstm_backward for the contract."""
    B, H = _gate_hidden(act, "lstm_backward", "act", 4)
    ins = [(act, "act", (B, 4 * H)), (dh, "dh", (B, H)), (c_prev, "c_prev", (B, H)), (tanh_c, "tanh_c", (B, H))]
    if dc is not None:
        ins.append((dc, "dc", (B, H)))
    d_gates, dc_prev = _gate_operands("lstm_backward", ins,
                                      [(d_gates, "d_gates", (B, 4 * H)), (dc_prev, "dc_prev", (B, H))])
    i, f, g, o = (act[:, k * H:(k + 1) * H] for k in range(4))
    dct = tanh_backward(dh * o, tanh_c)
    if dc is not None:
        dct = dc + dct
    sigmoid_backward(dct * g, i, out=d_gates[:, :H])
    sigmoid_backward(dct * c_prev, f, out=d_gates[:, H:2 * H])
    tanh_backward(dct * i, g, out=d_gates[:, 2 * H:3 * H])
    sigmoid_backward(dh * tanh_c, o, out=d_gates[:, 3 * H:])
    np.multiply(dct, f, out=dc_prev)
    return d_gates, dc_prev


def gru_forward(xg, hg, h_prev, act=None, h=None):
    """One GRU step's elementwise part; see minigrad._kernels.gru_forward for the contract."""
    B, H = _gate_hidden(xg, "gru_forward", "xg", 3)
    act, h = _gate_operands(
        "gru_forward", [(xg, "xg", (B, 3 * H)), (hg, "hg", (B, 3 * H)), (h_prev, "h_prev", (B, H))],
        [(act, "act", (B, 3 * H)), (h, "h", (B, H))])
    sigmoid(xg[:, :2 * H] + hg[:, :2 * H], out=act[:, :2 * H])
    r, z = act[:, :H], act[:, H:2 * H]
    np.tanh(xg[:, 2 * H:] + r * hg[:, 2 * H:], out=act[:, 2 * H:])
    np.add((1 - z) * act[:, 2 * H:], z * h_prev, out=h)
    return act, h


def gru_backward(dh, act, hn, h_prev, d_xg=None, d_hg=None, dh_prev=None):
    """The gradient through gru_forward; see minigrad._kernels.gru_backward for the contract."""
    B, H = _gate_hidden(act, "gru_backward", "act", 3)
    d_xg, d_hg, dh_prev = _gate_operands(
        "gru_backward", [(dh, "dh", (B, H)), (act, "act", (B, 3 * H)), (hn, "hn", (B, H)),
                         (h_prev, "h_prev", (B, H))],
        [(d_xg, "d_xg", (B, 3 * H)), (d_hg, "d_hg", (B, 3 * H)), (dh_prev, "dh_prev", (B, H))])
    r, z, n = (act[:, k * H:(k + 1) * H] for k in range(3))
    dn = tanh_backward(dh * (1 - z), n, out=d_xg[:, 2 * H:])
    np.multiply(dn, r, out=d_hg[:, 2 * H:])
    sigmoid_backward(dn * hn, r, out=d_xg[:, :H])
    sigmoid_backward(dh * h_prev - dh * n, z, out=d_xg[:, H:2 * H])
    d_hg[:, :2 * H] = d_xg[:, :2 * H]
    np.multiply(dh, z, out=dh_prev)
    return d_xg, d_hg, dh_prev


def isa():
    return "numpy-reference"


def available_isas():
    return ["numpy-reference"]


def set_isa(name):
    if not isinstance(name, str):
        raise TypeError(f"set_isa: expected a str, got {type(name).__name__}")
    if name != "numpy-reference":
        raise ValueError(f"set_isa: unknown kernel path {name!r}; "
                         "the numpy backend has only 'numpy-reference'")


def openmp():
    return False


def get_num_threads():
    """The stored setting; numpy itself threads only inside its BLAS."""
    return _num_threads


def set_num_threads(n):
    global _num_threads
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    n = n.__index__()
    if not 1 <= n <= 1 << 16:
        raise ValueError(f"set_num_threads: expected 1 <= n <= 65536, got {n}")
    _num_threads = n


# ---- the caching allocator: the C backend's alone; numpy keeps its own allocator here ----

def install_allocator():
    pass


def allocator_installed():
    return False


def cache_stats():
    return {"idle_bytes": 0, "idle_blocks": 0, "limit_bytes": 0, "hits": 0, "misses": 0}


def empty_cache():
    pass


def set_cache_limit(nbytes):
    """Validated like the kernels' setter; there is no cache to limit."""
    if isinstance(nbytes, bool) or not hasattr(nbytes, "__index__"):
        raise TypeError(f"set_cache_limit: expected an int number of bytes, got {type(nbytes).__name__}")
    if nbytes.__index__() < 0:
        raise ValueError(f"set_cache_limit: expected a non-negative number of bytes, got {nbytes}")
