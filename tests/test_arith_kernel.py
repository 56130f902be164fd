"""The large elementwise kernel (minigrad._backend.arith: add, sub, mul, div on the pool's threads) on every
kernel path this CPU has and on the NumPy reference: numpy's bits for every op, layout and thread count, the
operand rules and their errors, and the tensor ops that reach it (ops/fast.pyx) against numpy and torch."""
import threading

import numpy as np
import pytest

import minigrad as mg

DTYPES = [np.float32, np.float64]
OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}
# past a multiple of every vector width and task size, with a tail: the cut into tasks and the masked tails
SIZES = [1, 7, 16, 1000, 65536 + 13, 300_001]


def _operands(rng, n, dtype):
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    # values the IEEE rules decide: zeros of both signs, infinities, nan, subnormals
    f = np.finfo(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, f.smallest_subnormal, f.max], dtype)
    k = min(n, special.size)
    a[:k], b[:k] = special[:k], special[::-1][:k]
    return a, b


def _same_bits(x, y):
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(OPS))
def test_arith_bits_equal_numpys(K, rng, op, dtype):
    with np.errstate(all="ignore"):
        for n in SIZES:
            a, b = _operands(rng, n, dtype)
            _same_bits(K.arith(op, a, b), OPS[op](a, b))
            s = np.array(dtype(-1.75))
            _same_bits(K.arith(op, s, b), OPS[op](s, b))       # a 0-d value on the left
            _same_bits(K.arith(op, a, s), OPS[op](a, s))       # and on the right
            g = np.broadcast_to(dtype(0.3), (n,))              # a broadcast value, every stride zero
            _same_bits(K.arith(op, g, b), OPS[op](g, b))
            one = np.full((1, 1), dtype(2.5))                  # one element of another shape
            _same_bits(K.arith(op, a.reshape(1, n), one), OPS[op](a.reshape(1, n), one))


@pytest.mark.parametrize("dtype", DTYPES)
def test_arith_in_place_and_out(K, rng, dtype):
    a, b = _operands(rng, 200_003, dtype)
    with np.errstate(all="ignore"):
        expected = a * b
        out = np.empty_like(a)
        assert K.arith("mul", a, b, out) is out
        _same_bits(out, expected)
        x = a.copy()
        assert K.arith("mul", x, b, x) is x                     # in place, out = a
        _same_bits(x, expected)
        y = b.copy()
        assert K.arith("mul", a, y, y) is y                     # out = b
        _same_bits(y, expected)
    three = a.reshape(7, -1, 3) if a.size % 21 == 0 else a[:199_983].reshape(3, 7, -1)
    with np.errstate(all="ignore"):
        _same_bits(K.arith("add", three, three), three + three)  # any number of dimensions
    empty = np.empty((0, 5), dtype)
    assert K.arith("add", empty, empty).shape == (0, 5)


def test_arith_threads_bitwise_identical(C, threads, rng):
    for dtype in DTYPES:
        a, b = _operands(rng, 1_000_003, dtype)
        threads(1)
        ref = {op: C.arith(op, a, b) for op in OPS}
        for nt in (2, 3, 8):
            threads(nt)
            for op in OPS:
                _same_bits(C.arith(op, a, b), ref[op])


def test_arith_concurrent_callers(C, threads, rng):
    """Python threads calling the kernel at once (it releases the GIL) each get their own exact result."""
    threads(2)
    arrays = [_operands(rng, 400_000 + k, np.float32) for k in range(6)]
    results = [None] * len(arrays)

    def run(k):
        for _ in range(5):
            results[k] = C.arith("div", *arrays[k])

    workers = [threading.Thread(target=run, args=(k,)) for k in range(len(arrays))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    with np.errstate(all="ignore"):
        for (a, b), r in zip(arrays, results):
            _same_bits(r, a / b)


def test_arith_refuses_bad_operands(K, rng):
    a = rng.standard_normal(1000)
    b = rng.standard_normal(1000)
    with pytest.raises(ValueError, match="op must be one of"):
        K.arith("pow", a, b)
    with pytest.raises(ValueError, match="op must be one of"):
        K.arith(2, a, b)
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.arith("add", a, b.astype(np.float32))
    with pytest.raises(TypeError, match="native byte order"):
        K.arith("add", a.astype(">f8"), b)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.arith("add", a.astype(np.int64), b.astype(np.int64))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.arith("add", list(a), b)
    with pytest.raises(ValueError, match="do not broadcast"):
        K.arith("add", a, b[:999])
    with pytest.raises(ValueError, match="C-contiguous"):
        K.arith("add", a[::2], b[::2])                            # strided: neither contiguous nor one value
    with pytest.raises(ValueError, match="C-contiguous"):
        K.arith("add", a.reshape(1, 1000), b.reshape(1000, 1))     # broadcasting both ways
    with pytest.raises(ValueError, match="C-contiguous"):
        K.arith("add", np.broadcast_to(1.0, (1000,)), np.broadcast_to(2.0, (1000,)))  # no contiguous operand
    raw = np.zeros(8001, np.uint8)[1:].view(np.float64)            # misaligned
    with pytest.raises(ValueError, match="C-contiguous"):
        K.arith("add", raw, b[:1000])


def test_arith_refuses_bad_out(K, rng):
    a = rng.standard_normal(1000)
    b = rng.standard_normal(1000)
    with pytest.raises(ValueError, match="C-contiguous array of shape"):
        K.arith("add", a, b, np.empty(999))
    with pytest.raises(ValueError, match="C-contiguous array of shape"):
        K.arith("add", a, b, np.empty(2000)[::2])
    with pytest.raises(TypeError, match="dtype"):
        K.arith("add", a, b, np.empty(1000, np.float32))
    ro = np.empty(1000)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.arith("add", a, b, ro)
    big = rng.standard_normal(1001)
    with pytest.raises(ValueError, match="shares memory with a"):
        K.arith("add", big[1:], b, big[:1000])                    # shifted by one element: a race, refused
    scalar_inside = a.copy()
    with pytest.raises(ValueError, match="shares memory with b"):
        K.arith("mul", scalar_inside, scalar_inside[5:6], scalar_inside)  # the value would change under the op


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_tensor_ops_match_numpy_and_torch(rng, dtype):
    """The tensor ops that take the kernel (ops/fast.pyx: from 512 KiB an operand) give numpy's bits and
    torch's gradients, with contiguous operands, a scalar, and a sum's broadcast gradient."""
    import torch  # here, not at the top: the sanitizer runs (scripts/sanitize.sh) leave torch out
    shape = (64, 32, 128)
    x0, w0 = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    x, w = mg.tensor(x0, requires_grad=True), mg.tensor(w0)
    for got, want in ((x + w, x0 + w0), (x - w, x0 - w0), (x * w, x0 * w0), (x / w, x0 / w0),
                      (x * 3.0, x0 * dtype(3.0)), (2.0 - x, dtype(2.0) - x0),
                      # views the kernel refuses (not contiguous) take numpy's path
                      (x.transpose(0, 1) * w.transpose(0, 1), x0.transpose(1, 0, 2) * w0.transpose(1, 0, 2)),
                      (x[:, ::2] - w[:, 1::2], x0[:, ::2] - w0[:, 1::2])):
        _same_bits(got.numpy(), want)
    loss = (x * w).sum() + (x / 4.0).sum()
    loss.backward()
    tx = torch.tensor(x0, requires_grad=True)
    ((tx * torch.tensor(w0)).sum() + (tx / 4.0).sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-13)
    # the gradient of (x * w).sum() is exactly w (+ 1/4): ones times w, in either library
    _same_bits(x.grad.numpy(), w0 + dtype(0.25))


def test_large_tensor_ops_on_one_thread(threads, rng):
    """With one thread the ops keep numpy's path: the same bits either way."""
    x0 = rng.standard_normal(300_000).astype(np.float32)
    x = mg.tensor(x0)
    threads(2)
    two = (x * x).numpy()
    threads(1)
    one = (x * x).numpy()
    _same_bits(one, two)
    _same_bits(one, x0 * x0)



def _row_loop(dtype):
    """mg_arith_rows_f32 / _f64 from the capsule minigrad._kernels.arith_rows_api, callable from ctypes."""
    import ctypes
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    ptr = get(mg._backend.arith_rows_api, b"minigrad._kernels.arith_rows_api")

    class Api(ctypes.Structure):
        _fields_ = [("f32", ctypes.c_void_p), ("f64", ctypes.c_void_p)]
    api = Api.from_address(ptr)
    i, p = ctypes.c_ssize_t, ctypes.c_void_p
    fn = ctypes.CFUNCTYPE(None, ctypes.c_int, i, i, p, i, ctypes.c_int, p, i, ctypes.c_int, p)
    return fn(api.f32 if dtype == np.float32 else api.f64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 7), (5, 16), (32, 128), (9, 1000)])
def test_row_loop_bits_equal_numpys(C, rng, rows, cols, dtype):
    """The small tensor ops' loop (mg_arith_rows, on the forced path): rows apart in memory, one row for every
    row (a bias), one value (a scalar), in place -- numpy's bits for every op, special values included."""
    loop = _row_loop(dtype)
    flat_a, flat_b = _operands(rng, rows * (cols + 3), dtype)
    wa, wb = flat_a.reshape(rows, cols + 3), flat_b.reshape(rows, cols + 3)  # rows cols + 3 apart
    for code, (name, fn) in enumerate(OPS.items()):
        for a, ra, sa, b, rb, sb in ((wa[:, :cols], cols + 3, 1, wb[:, 3:], cols + 3, 1),
                                     (wa[:, :cols], cols + 3, 1, wb[0, :cols], 0, 1),   # a bias row
                                     (wb[0, :cols], 0, 1, wa[:, 2:cols + 2], cols + 3, 1),
                                     (wa[:, :cols], cols + 3, 1, wb[0:1, cols + 2:], 0, 0),  # a scalar
                                     (wb[0:1, cols + 2:], 0, 0, wa[:, 1:cols + 1], cols + 3, 1)):
            with np.errstate(all="ignore"):
                want = fn(a, b)
            out = np.full((rows, cols), 7.0, dtype)
            loop(code, rows, cols, a.ctypes.data, ra, sa, b.ctypes.data, rb, sb, out.ctypes.data)
            _same_bits(out, np.broadcast_to(want, (rows, cols)))
        # in place: out is a itself (contiguous)
        a = np.ascontiguousarray(wa[:, :cols])
        with np.errstate(all="ignore"):
            want = fn(a, wb[:, :cols])
        loop(code, rows, cols, a.ctypes.data, cols, 1, wb.ctypes.data, cols + 3, 1, a.ctypes.data)
        _same_bits(a, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 7), (32, 128), (64, 512), (300, 999)])
def test_tensor_ops_row_loop_gives_numpys_bits_on_every_path(C, monkeypatch, rng, rows, cols, dtype):
    """The small and mid-sized tensor ops run the kernels' row loop (ops/fast.pyx -> mg_arith_rows on the
    forced path, below 512 KiB an operand, and at any size for a bias row or row-strided views): numpy's
    bits, special values included, for contiguous operands, chunks of a wider matrix, a bias row on either
    side and a scalar -- and no numpy ufunc runs (past the old 16,384-element limit too)."""
    wide = rng.standard_normal((rows, 3 * cols)).astype(dtype)
    flat_a, flat_b = _operands(rng, rows * cols, dtype)
    a0, b0 = flat_a.reshape(rows, cols), flat_b.reshape(rows, cols)
    bias0 = rng.standard_normal(cols).astype(dtype)
    wt = mg.tensor(wide)
    a, b, bias = mg.tensor(a0), mg.tensor(b0), mg.tensor(bias0)
    p, q = wt[:, :cols], wt[:, 2 * cols:]  # row-strided views, as chunks of a gate matrix
    p0, q0 = wide[:, :cols], wide[:, 2 * cols:]
    cases = [((a, b), (a0, b0)), ((p, q), (p0, q0)), ((a, q), (a0, q0)), ((a, bias), (a0, bias0)),
             ((bias, p), (bias0, p0)), ((a, 2.5), (a0, dtype(2.5))), ((-1.5, q), (dtype(-1.5), q0))]
    with np.errstate(all="ignore"):
        expected = [[fn(x, y) for (_, (x, y)) in cases] for fn in OPS.values()]
    called = []
    for fn in OPS.values():
        monkeypatch.setattr(np, fn.__name__, lambda *a_, _fn=fn, **k: called.append(_fn) or _fn(*a_, **k))
    for name, want in zip(OPS, expected):
        op = getattr(mg, name)
        for ((x, y), _), w in zip(cases, want):
            _same_bits(op(x, y).numpy(), w)
    assert called == []
