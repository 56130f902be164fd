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
