"""The kernel layer (minigrad._backend): every test runs on each kernel path this CPU has and on the NumPy
reference, and compares with float64 / longdouble NumPy results, never with minigrad's own output."""
import ast
import math
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

from minigrad import _backend, _reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = [np.float32, np.float64]
# Error bound relative to (|A| @ |B|): K roundings of eps each, with margin.
MATMUL_RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def layout(x, kind):
    """x's values in a given layout: C order, Fortran order, transposed, stepped or reversed view."""
    if kind == "c":
        return np.ascontiguousarray(x)
    if kind == "f":
        return np.asfortranarray(x)
    if kind == "t":
        return np.ascontiguousarray(x.swapaxes(-1, -2)).swapaxes(-1, -2)
    if kind == "step":
        big = np.full(x.shape[:-2] + (2 * x.shape[-2], 3 * x.shape[-1]), np.nan, x.dtype)
        big[..., ::2, ::3] = x
        return big[..., ::2, ::3]
    if kind == "neg":
        return x[..., ::-1, ::-1].copy()[..., ::-1, ::-1]
    raise AssertionError(kind)


def assert_matmul_close(c, a, b, base=None):
    """c == base + a @ b within the dtype's bound, relative to |base| + |a| @ |b| elementwise."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = np.matmul(a64, b64)
    scale = np.matmul(np.abs(a64), np.abs(b64))
    if base is not None:
        ref = ref + base
        scale = scale + np.abs(base)
    assert c.shape == ref.shape and c.dtype == a.dtype
    tol = MATMUL_RTOL[a.dtype.type] * scale + np.finfo(a.dtype).tiny
    err = np.abs(c.astype(np.float64) - ref)
    assert np.all(err <= tol), f"max error {np.max(err - tol)} above tolerance"


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- matmul: values

SIZES = [(1, 1, 1), (7, 7, 7), (63, 65, 257), (65, 63, 1), (257, 7, 63), (1, 257, 65), (6, 64, 2),
         (130, 300, 513)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SIZES)
def test_matmul_sizes(K, rng, dtype, m, n, k):
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    c = K.matmul(a, b)
    assert c.flags.c_contiguous
    assert_matmul_close(c, a, b)


# Blocking edges of every path: KC = 256; NC = 512 (AVX-512 float32), 256 (AVX-512 float64), 1024 / 512
# (AVX2, portable); MR = 6 (4 portable); NR = 64 / 32 / 16 / 8; a row-major B is read in place up to 64 rows
# of A (AVX-512).  Each size sits on, just under or just over some of them.
EDGES = [(64, 256, 512), (65, 257, 513), (63, 255, 511), (7, 513, 257), (6, 1, 64), (5, 2, 65), (1, 300, 33),
         (130, 256, 1025), (97, 512, 255), (12, 768, 8)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", EDGES)
@pytest.mark.parametrize("la,lb", [("c", "c"), ("f", "t"), ("t", "f"), ("step", "neg")])
def test_matmul_block_edges(K, rng, dtype, m, k, n, la, lb):
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    assert_matmul_close(K.matmul(layout(a, la), layout(b, lb)), a, b)
    base = randn(rng, (m, n), dtype)
    out = base.copy()
    K.matmul(layout(a, la), layout(b, lb), out=out, accumulate=True)
    assert_matmul_close(out, a, b, base)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("la", ["c", "f", "t", "step", "neg"])
@pytest.mark.parametrize("lb", ["c", "f", "t", "step", "neg"])
@pytest.mark.parametrize("m,k,n", [(67, 45, 71), (13, 600, 70)])
def test_matmul_layouts(K, rng, dtype, la, lb, m, k, n):
    """Both shapes cover packed and in-place operand paths; K = 600 spans two K blocks."""
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    assert_matmul_close(K.matmul(layout(a, la), layout(b, lb)), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 31, 64, 65, 128, 129, 200])
def test_matmul_long_column_a(K, rng, dtype, n):
    """A weight gradient's g.T @ x: A column-major with long columns (4 KiB apart in float32, 8 KiB in
    float64), read in place when N spans one or two B panels and packed from three on; K = 700 spans
    several K blocks and M = 1021 leaves a row tail."""
    g, x = randn(rng, (700, 1024), dtype), randn(rng, (700, n), dtype)
    assert_matmul_close(K.matmul(g.T, x), g.T, x)
    a = g[:, :1021]
    base = randn(rng, (1021, n), dtype)
    out = base.copy()
    K.matmul(a.T, x, out=out, accumulate=True)
    assert_matmul_close(out, a.T, x, base)


@pytest.mark.parametrize("dtype,m,k,ns", [(np.float32, 1021, 4200, (16, 128)),
                                          (np.float64, 509, 4200, (8, 64))])
def test_matmul_weight_gradient_from_memory(C, threads, rng, dtype, m, k, ns):
    """g.T @ x with g too big for the caches (at least 16 MiB) and x narrow: computed as (x.T @ g).T into
    scratch and copied out.  Every path, 1 to 3 threads, into a fresh C and added into a C whose rows are
    strided; the bits do not depend on the thread count.  M leaves a row tail, K a short last K block."""
    g = randn(rng, (k, 1024), dtype)
    a = g[:, :m].T  # column-major, columns 1024 elements apart
    for n in ns:
        x = randn(rng, (k, n), dtype)
        base = randn(rng, (m, n), dtype)
        results, sums = [], []
        for count in (1, 2, 3):
            threads(count)
            results.append(C.matmul(a, x))
            wide = np.zeros((m, n + 5), dtype)
            out = wide[:, 2:n + 2]
            out[...] = base
            C.matmul(a, x, out=out, accumulate=True)
            assert not wide[:, :2].any() and not wide[:, n + 2:].any()
            sums.append(out.copy())
        assert_matmul_close(results[0], a, x)
        assert_matmul_close(sums[0], a, x, base)
        for r, s in zip(results[1:], sums[1:]):
            assert np.array_equal(r, results[0]) and np.array_equal(s, sums[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape_a,shape_b", [
    ((3, 9, 13), (13, 70)),      # shared 2-D b (the batch folds into rows)
    ((3, 1, 13), (13, 70)),      # batched row vectors
    ((9, 13), (3, 13, 70)),      # shared 2-D a
    ((1, 9, 13), (3, 13, 70)),   # batch of 1 broadcasts
    ((3, 9, 13), (1, 13, 70)),
    ((3, 9, 13), (3, 13, 70)),
    ((1, 9, 13), (1, 13, 70)),
])
def test_matmul_batch(K, rng, dtype, shape_a, shape_b):
    a, b = randn(rng, shape_a, dtype), randn(rng, shape_b, dtype)
    assert_matmul_close(K.matmul(a, b), a, b)
    assert_matmul_close(K.matmul(layout(a, "t"), layout(b, "neg")), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_broadcast_views(K, rng, dtype):
    """np.broadcast_to gives a batch stride of 0; a stride-0 inner dim is a repeated row/column."""
    a, b = randn(rng, (9, 13), dtype), randn(rng, (4, 13, 70), dtype)
    a3 = np.broadcast_to(a, (4, 9, 13))
    assert_matmul_close(K.matmul(a3, b), a3, b)
    b3 = np.broadcast_to(b[1], (4, 13, 70))
    assert_matmul_close(K.matmul(a3, b3), a3, b3)
    row = np.broadcast_to(randn(rng, (1, 13), dtype), (5, 13))
    assert_matmul_close(K.matmul(row, b[0]), row, b[0])


GUARDED_B_SCRIPT = r"""
import ctypes, mmap
import numpy as np
import minigrad._backend as b
page = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
buf = mmap.mmap(-1, 4 * page)
base = np.frombuffer(buf, np.uint8)
start = base.ctypes.data
assert libc.mprotect(start + 3 * page, page, 0) == 0, ctypes.get_errno()   # the last page: no access
rng = np.random.default_rng(0)
for isa in b.available_isas():
    b.set_isa(isa)
    for dtype in (np.float32, np.float64):
        size = np.dtype(dtype).itemsize
        for m, k, n in [(1, 1, 1), (3, 5, 17), (6, 7, 9), (32, 3, 33), (64, 2, 63), (5, 40, 1)]:
            # B's last element ends where the unreadable page begins
            off = 3 * page - k * n * size
            bm = np.frombuffer(buf, dtype, count=k * n, offset=off).reshape(k, n)
            bm[...] = rng.standard_normal((k, n))
            a = rng.standard_normal((m, k)).astype(dtype)
            c = b.matmul(a, bm)
            ref = a.astype(np.float64) @ bm.astype(np.float64)
            assert np.allclose(c, ref, rtol=1e-5, atol=1e-5), (isa, dtype, m, k, n)
print("ok")
"""


@pytest.mark.skipif(_backend.name != "c" or not sys.platform.startswith("linux"),
                    reason="needs the C backend and Linux's mprotect")
def test_matmul_reads_no_element_past_the_end_of_b():
    """A row-major B read in place by the micro-kernel (a short A) must not load past its last element: B here
    ends where an unreadable page begins, on every kernel path (a load past it would end the process)."""
    r = run_backend({}, GUARDED_B_SCRIPT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (4, 0, 3), (0, 0, 0), (4, 5, 0)])
def test_matmul_empty(K, dtype, m, n, k):
    a, b = np.ones((m, k), dtype), np.ones((k, n), dtype)
    c = K.matmul(a, b)
    assert c.shape == (m, n) and c.dtype == dtype
    assert np.all(c == 0)
    out = np.full((m, n), 2.0, dtype)
    K.matmul(a, b, out=out, accumulate=True)
    assert np.all(out == 2.0)
    assert K.matmul(np.ones((0, m, k), dtype), b).shape == (0, m, n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["c", "f", "step", "neg"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_out(K, rng, dtype, kind, accumulate):
    """out= with any strides is written exactly on its elements; the rest of its buffer is untouched."""
    a, b = randn(rng, (37, 70), dtype), randn(rng, (70, 66), dtype)
    base = randn(rng, (37, 66), dtype)
    parent = np.full((3 * 37, 3 * 66), 7.0, dtype)
    views = {"c": parent[:37, :66], "f": np.asfortranarray(parent[:37, :66]), "step": parent[::3, ::3],
             "neg": parent[-1::-3, -1::-3]}
    out = views[kind]
    out[...] = base
    before = parent.copy()
    res = K.matmul(a, b, out=out, accumulate=accumulate)
    assert res is out
    assert_matmul_close(out, a, b, base if accumulate else None)
    if kind != "f":
        mask = np.ones(parent.shape, bool)
        mask[{"c": np.s_[:37, :66], "step": np.s_[::3, ::3], "neg": np.s_[-1::-3, -1::-3]}[kind]] = False
        assert np.array_equal(parent[mask], before[mask])


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_out_batched_accumulate(K, rng, dtype):
    a, b = randn(rng, (3, 20, 31), dtype), randn(rng, (31, 17), dtype)
    out = randn(rng, (3, 17, 20), dtype).swapaxes(1, 2)
    base = out.copy()
    K.matmul(a, b, out=out, accumulate=True)
    assert_matmul_close(out, a, b, base)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_threads_bitwise_identical(C, threads, rng, dtype):
    """K is never split, so one and two threads give the same bits (sizes leave M, N and K tails)."""
    a, b = randn(rng, (301, 263), dtype), randn(rng, (263, 517), dtype)
    ab, bb = randn(rng, (3, 97, 131), dtype), randn(rng, (131, 203), dtype)
    tall, wide = randn(rng, (1201, 129), dtype), randn(rng, (129, 33), dtype)
    # Split over M, each half is small enough to read B in place while the whole product packs it.
    rows, narrow = randn(rng, (100, 400), dtype), randn(rng, (400, 64), dtype)
    results = []
    for n in (1, 2):
        threads(n)
        results.append([C.matmul(a, b), C.matmul(ab.swapaxes(1, 2).copy().swapaxes(1, 2), bb),
                        C.matmul(layout(tall, "t"), wide), C.matmul(rows, narrow)])
    for one, two in zip(*results):
        assert np.array_equal(one, two)
    assert_matmul_close(results[1][0], a, b)
    assert_matmul_close(results[1][2], tall, wide)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_threads_task_splits(C, threads, rng, dtype):
    """Every way a product is cut into tasks -- along N into panel groups, along M when N has one panel,
    along N into one part per thread or along M when every task packs A (a weight gradient's x.T @ g), along
    M when every task packs A and B is small (h.T @ g with K the batch), along M into two slices per thread
    for a tall row-major A, whole products of a batch, packed B -- gives the bits of one thread."""
    cases = [(randn(rng, (300, 256), dtype), randn(rng, (256, 1000), dtype)),      # N panels
             (randn(rng, (1000, 300), dtype), randn(rng, (300, 30), dtype)),       # one panel: split M
             (randn(rng, (1030, 130), dtype).T, randn(rng, (1030, 200), dtype)),   # A packed, N >= M: split N
             (randn(rng, (1030, 200), dtype).T, randn(rng, (1030, 130), dtype)),   # A packed, N < M: split M
             (randn(rng, (32, 130), dtype).T, randn(rng, (32, 515), dtype)),       # A packed, small B: split M
             (randn(rng, (2101, 130), dtype), randn(rng, (130, 70), dtype)),       # tall A: 2 per thread
             (randn(rng, (5, 90, 200), dtype), randn(rng, (5, 200, 70), dtype)),   # batch of products
             (randn(rng, (3, 90, 200), dtype), randn(rng, (200, 70), dtype).T.copy().T)]
    packed = randn(rng, (400, 300), dtype)
    x = randn(rng, (256, 400), dtype)
    # small products are shared only with pool threads still awake from the large ones just before
    small = [(randn(rng, (40, 100), dtype), randn(rng, (130, 100), dtype).T), (randn(rng, (64, 64), dtype),) * 2]
    results = []
    for n in (1, 2, 3):
        threads(n)
        p = C.pack(packed.T.copy().T)
        results.append([C.matmul(a, b) for a, b in cases] + [C.matmul(a, b) for a, b in small]
                       + [C.matmul(x, p), C.matmul(x, packed)])
    for other in results[1:]:
        for one, two in zip(results[0], other):
            assert np.array_equal(one, two)
    assert np.array_equal(results[0][-1], results[0][-2])
    for (a, b), c in zip(cases, results[0]):
        assert_matmul_close(c, a, b)


def test_matmul_concurrent_callers(C, threads, rng):
    """Python threads calling the kernels at once (the pool runs one job; the others run theirs serially)."""
    threads(2)
    a, b = randn(rng, (200, 300), np.float32), randn(rng, (300, 400), np.float32)
    x = rng.uniform(-5, 5, 300_001).astype(np.float32)
    want_mm, want_tanh = C.matmul(a, b), C.tanh(x)
    results, errors = [], []

    def work():
        try:
            for _ in range(10):
                results.append((C.matmul(a, b), C.tanh(x)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and len(results) == 40
    assert all(np.array_equal(m, want_mm) and np.array_equal(t, want_tanh) for m, t in results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threads_after_fork(C, threads, rng):
    """A forked child has none of the parent's pool threads; its parallel calls must still finish."""
    threads(2)
    a, b = randn(rng, (300, 300), np.float64), randn(rng, (300, 300), np.float64)
    want = C.matmul(a, b)  # starts the pool in the parent
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = np.array_equal(C.matmul(a, b), want) and np.array_equal(C.tanh(a.ravel()), C.tanh(a.ravel()))
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:  # pragma: no cover - a hang is the failure
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in a parallel kernel call")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert np.array_equal(C.matmul(a, b), want)


# ---------------------------------------------------------------- addmm: c + a @ b in one pass

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c_shape", ["full", "full_t", "row", "row1", "col", "scalar"])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (32, 128, 128), (67, 300, 71), (2048, 64, 128), (5, 0, 4)])
def test_addmm_matches_matmul_into_c(K, rng, dtype, c_shape, m, k, n):
    """addmm(c, a, b) is c + a @ b for c broadcast to (M, N), and on the kernel paths the bits of copying c
    and accumulating the product into it, with b as an array in any layout or packed.  (c with contiguous
    rows is added by the micro-kernel, any other is copied into the result first: both are covered.)"""
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    c = randn(rng, {"full": (m, n), "full_t": (n, m), "row": (n,), "row1": (1, n), "col": (m, 1),
                    "scalar": ()}[c_shape], dtype)
    if c_shape == "full_t":
        c = c.T
    base = np.broadcast_to(c, (m, n))
    for right in (b, layout(b, "t"), layout(b, "neg"), K.pack(b)):
        got = K.addmm(c, layout(a, "f") if right is b else a, right)
        assert got.shape == (m, n) and got.dtype == dtype and got.flags.c_contiguous
        assert_matmul_close(got, a, b, base.astype(np.float64))
        want = np.array(base, order="C")
        K.matmul(a, right, out=want, accumulate=True)
        if K is not _reference:
            assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_addmm_threads_bitwise_identical(C, threads, rng, dtype):
    a, b, c = randn(rng, (2048, 64), dtype), randn(rng, (64, 128), dtype), randn(rng, (128,), dtype)
    h, w, x = randn(rng, (32, 128), dtype), randn(rng, (128, 128), dtype), randn(rng, (32, 128), dtype)
    results = []
    for n in (1, 2):
        threads(n)
        results.append([C.addmm(c, a, b), C.addmm(x, h, C.pack(w)), C.addmm(c, a.T.copy().T, b)])
    for one, two in zip(*results):
        assert np.array_equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (32, 128, 128), (67, 300, 71), (130, 70, 600), (5, 0, 4)])
def test_addmm_tanh_is_tanh_of_the_sum(K, threads, rng, dtype, m, k, n):
    """activation='tanh' maps each block as the product finishes it: the bits of tanh(addmm(...)) on the
    kernel paths, for 1 and 2 threads; within tanh's 2 ulp of float64 numpy everywhere."""
    a, b = randn(rng, (m, k), dtype) / 4, randn(rng, (k, n), dtype) / 4
    c = randn(rng, (n,), dtype)
    for nt in (1, 2):
        threads(nt)
        for right in (b, K.pack(b)):
            got = K.addmm(c, a, right, activation="tanh")
            assert got.shape == (m, n) and got.dtype == dtype and got.flags.c_contiguous
            if K is not _reference:
                assert np.array_equal(got, K.tanh(K.addmm(c, a, right)))
            # tanh is 1-Lipschitz: its error is at most the sum's, plus its own 2 ulp
            want = np.tanh(c.astype(np.float64) + a.astype(np.float64) @ b)
            scale = np.abs(c.astype(np.float64)) + np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
            tol = MATMUL_RTOL[dtype] * scale + 2 * np.finfo(dtype).eps
            assert np.all(np.abs(got - want) <= tol)


def test_addmm_rejects_bad_input(K):
    with pytest.raises(ValueError, match="activation must be None or 'tanh'"):
        K.addmm(np.ones(5), np.ones((3, 4)), np.ones((4, 5)), activation="relu")
    a, b = np.ones((3, 4)), np.ones((4, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        K.addmm(np.ones(4), a, b)
    with pytest.raises(ValueError, match="does not broadcast"):
        K.addmm(np.ones((2, 3, 5)), a, b)
    with pytest.raises(TypeError, match="c has dtype float32"):
        K.addmm(np.ones(5, np.float32), a, b)
    with pytest.raises(TypeError, match="mixed dtypes"):
        K.addmm(np.ones(5), a, b.astype(np.float32))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        K.addmm(np.ones(5), a, np.ones((3, 5)))
    with pytest.raises(ValueError, match="a must be 2-D"):
        K.addmm(np.ones(5), np.ones((2, 3, 4)), b)
    with pytest.raises(ValueError, match="b must be 2-D"):
        K.addmm(np.ones(5), a, np.ones(4))
    with pytest.raises(TypeError, match="must be a numpy.ndarray"):
        K.addmm([1.0] * 5, a, b)
    with pytest.raises(TypeError, match="float32 or float64"):
        K.addmm(np.ones(5, np.int64), a, b)


# ---------------------------------------------------------------- addmm: out=

def addmm_out_view(kind, m, n):
    """Where an (m, n) out lies in a (3m, 3n) parent: a column block of a wider array (one direction's half
    of a bidirectional RNN's output at a step), a stepped or a reversed view; None for the standalone
    kinds."""
    return {"block": np.s_[:m, n:2 * n], "step": np.s_[::3, ::3], "neg": np.s_[-1::-3, -1::-3]}.get(kind)


def assert_addmm_close(got, c, a, b, activation):
    """got == c + a @ b (or its tanh: 1-Lipschitz, so the sum's bound plus tanh's own 2 ulp)."""
    base = np.broadcast_to(c, got.shape).astype(np.float64)
    if activation is None:
        assert_matmul_close(got, a, b, base)
        return
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = np.tanh(base + a64 @ b64)
    tol = MATMUL_RTOL[a.dtype.type] * (np.abs(base) + np.abs(a64) @ np.abs(b64)) + 2 * np.finfo(a.dtype).eps
    assert got.dtype == a.dtype and np.all(np.abs(got - want) <= tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["c", "f", "block", "step", "neg"])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (32, 128, 128), (67, 300, 71), (5, 0, 4)])
def test_addmm_out(K, rng, dtype, kind, m, k, n):
    """addmm(..., out=out) writes c + a @ b (or its tanh) into out of any strides -- a column block of a
    wider array like big[:, 128:256], a stepped or reversed view, Fortran order -- on exactly its elements,
    and returns out: against float64 numpy, and the bits of the call without out, for b an array or packed
    and c a bias row or a full matrix."""
    a, b = randn(rng, (m, k), dtype) / 4, randn(rng, (k, n), dtype) / 4
    parent = np.empty((3 * m, 3 * n), dtype)
    place = addmm_out_view(kind, m, n)
    for c in (randn(rng, (n,), dtype), randn(rng, (m, n), dtype)):
        for right in (b, K.pack(b)):
            for activation in (None, "tanh"):
                parent[...] = np.nan
                if place is None:
                    out = np.full((m, n), np.nan, dtype, order="F" if kind == "f" else "C")
                else:
                    out = parent[place]
                assert K.addmm(c, a, right, activation, out=out) is out
                assert_addmm_close(out, c, a, b, activation)
                assert np.array_equal(out, K.addmm(c, a, right, activation))
                if place is not None:
                    outside = np.ones(parent.shape, bool)
                    outside[place] = False
                    assert np.isnan(parent[outside]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_addmm_out_threads_bitwise_identical(C, threads, rng, dtype):
    """A product large enough to be split across threads, written into a column block of a wider array and
    into a stepped view: the bits of one thread and of the call without out."""
    a, b, c = randn(rng, (2048, 64), dtype) / 4, randn(rng, (64, 128), dtype) / 4, randn(rng, (128,), dtype)
    results = []
    for nt in (1, 2, 3):
        threads(nt)
        wide = np.full((2048, 384), np.nan, dtype)
        stepped = np.full((2 * 2048, 2 * 128), np.nan, dtype)[::2, ::2]
        got = [C.addmm(c, a, b, "tanh", out=wide[:, 128:256]), C.addmm(c, a, C.pack(b), out=stepped)]
        assert np.isnan(wide[:, :128]).all() and np.isnan(wide[:, 256:]).all()
        results.append([g.copy() for g in got] + [C.addmm(c, a, b, "tanh"), C.addmm(c, a, b)])
    for other in results[1:]:
        for one, two in zip(results[0], other):
            assert np.array_equal(one, two)
    assert np.array_equal(results[0][0], results[0][2]) and np.array_equal(results[0][1], results[0][3])
    assert_addmm_close(results[0][0], c, a, b, "tanh")


def test_addmm_out_accepts_disjoint_blocks_of_one_array(K, rng):
    """a, c and out as interleaved but disjoint column blocks of one array (their byte ranges intersect,
    their elements do not), and out as the next step's rows of an RNN-like buffer: accepted."""
    big = randn(rng, (32, 384), np.float64)
    a, c, out = big[:, :128], big[:, 256:], big[:, 128:256]
    w = randn(rng, (128, 128), np.float64) / 16
    a0, c0 = a.copy(), c.copy()
    for right in (w, K.pack(w)):
        assert K.addmm(c, a, right, "tanh", out=out) is out
        assert np.array_equal(a, a0) and np.array_equal(c, c0)
        assert_addmm_close(out, c0, a0, w, "tanh")
    steps = np.zeros((3, 32, 256))
    steps[0, :, :128] = a0
    nxt = steps[1, :, :128]
    assert K.addmm(c0, steps[0, :, :128], w, "tanh", out=nxt) is nxt
    assert_addmm_close(steps[1, :, :128], c0, a0, w, "tanh")


def test_addmm_out_rejects_bad_out(K):
    a, b, c = np.ones((3, 4)), np.full((4, 5), 0.5), np.ones(5)
    packed = K.pack(b)
    for right in (b, packed):
        with pytest.raises(ValueError, match=r"out has shape \(5, 3\), expected \(3, 5\)"):
            K.addmm(c, a, right, out=np.empty((5, 3)))
        with pytest.raises(ValueError, match="out has shape"):
            K.addmm(c, a, right, out=np.empty((1, 3, 5)))
        with pytest.raises(ValueError, match="out has shape"):
            K.addmm(c, a, right, out=np.empty(15))
        with pytest.raises(TypeError, match="out has dtype float32, expected float64"):
            K.addmm(c, a, right, out=np.empty((3, 5), np.float32))
        with pytest.raises(TypeError, match="float32 or float64"):
            K.addmm(c, a, right, out=np.empty((3, 5), np.int64))
        with pytest.raises(TypeError, match="must be a numpy.ndarray"):
            K.addmm(c, a, right, out=[[0.0] * 5] * 3)
        ro = np.zeros((3, 5))
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            K.addmm(c, a, right, out=ro, activation="tanh")
        assert not ro.any()
        overlapping = np.lib.stride_tricks.as_strided(np.zeros(8), shape=(3, 5), strides=(8, 8))
        with pytest.raises(ValueError, match="overlap"):
            K.addmm(c, a, right, out=overlapping)
    with pytest.raises(TypeError, match="out has dtype float64, expected float32"):
        K.addmm(c.astype(np.float32), a.astype(np.float32), K.pack(b.astype(np.float32)),
                out=np.empty((3, 5)))


def test_addmm_out_rejects_overlap_with_operands(K):
    """out sharing any element with a, b or c is refused before anything is written."""
    sq = np.arange(9.0).reshape(3, 3)

    def fresh():
        return sq.copy(), sq.copy() / 10, sq.copy() / 100

    for who in ("a", "b", "c"):
        a, b, c = fresh()
        out = {"a": a, "b": b, "c": c}[who]
        with pytest.raises(ValueError, match="shares memory"):
            K.addmm(c, a, b, out=out)
        assert all(np.array_equal(x, y) for x, y in zip((a, b, c), fresh()))
    a, b, c = fresh()
    with pytest.raises(ValueError, match="shares memory"):
        K.addmm(c, a, K.pack(b), out=a)
    # partial overlaps: out one column over from a; a bias row c inside out; out a transposed view of b
    buf = np.zeros((3, 4))
    buf[:, :3] = sq
    with pytest.raises(ValueError, match="shares memory"):
        K.addmm(np.ones(3), buf[:, :3], sq, out=buf[:, 1:])
    buf = np.zeros((4, 3))
    with pytest.raises(ValueError, match="shares memory"):
        K.addmm(buf[2], sq, sq, out=buf[:3])
    with pytest.raises(ValueError, match="shares memory"):
        K.addmm(np.ones(3), sq, b, out=b.T)
    assert np.array_equal(b, sq / 10) and not buf.any()


# ---------------------------------------------------------------- addmm_many: several addmm as one job

def addmm_many_operands(rng, dtype, count, m, k, n):
    """count products' c (full), a and b, scaled so that tanh stays off saturation."""
    cs = [randn(rng, (m, n), dtype) for _ in range(count)]
    as_ = [randn(rng, (m, k), dtype) / 4 for _ in range(count)]
    bs = [randn(rng, (k, n), dtype) / 4 for _ in range(count)]
    return cs, as_, bs


def assert_addmm_many_is_addmm_of_each(K, got, cs, as_, bs, activation, outs=None):
    """got is [addmm(cs[i], as_[i], bs[i], activation)]: a list, the bits of the separate calls (the same
    function on the reference), each within tolerance of float64 numpy (bs given as arrays), each outs[i]
    itself when given, else a new C-contiguous array."""
    assert isinstance(got, list) and len(got) == len(cs)
    for i, (g, c, a, b) in enumerate(zip(got, cs, as_, bs)):
        want = K.addmm(c, a, b, activation)
        if outs is None or outs[i] is None:
            assert g.flags.c_contiguous and g.flags.owndata
        else:
            assert g is outs[i]
        assert g.shape == want.shape and g.dtype == want.dtype
        # minigrad's kernels guarantee the bits whatever the layout; numpy's BLAS may differ in the last bit
        # between layouts (OpenBLAS's SkylakeX kernels do), so the reference is held to the tolerance only
        if K is not _reference:
            assert np.array_equal(g, want), f"product {i} differs from addmm's bits"
        assert_addmm_close(g, c, a, b, activation)


ADDMM_MANY_SHAPES = [(32, 128, 128), (7, 13, 5), (1, 13, 5), (7, 1, 5), (7, 13, 1), (5, 0, 4), (0, 4, 6),
                     (4, 6, 0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("m,k,n", ADDMM_MANY_SHAPES)
def test_addmm_many_is_addmm_of_each(K, rng, dtype, count, m, k, n):
    """addmm_many(cs, as_, bs, activation) returns new C-contiguous arrays with the bits of addmm on each
    product, with and without tanh, for every b packed (one job) or every b an array (separate calls), c a
    full matrix or a bias row, given as lists or tuples; within tolerance of float64 numpy."""
    cs, as_, bs = addmm_many_operands(rng, dtype, count, m, k, n)
    packed = [K.pack(b) for b in bs]
    rows = [randn(rng, (n,), dtype) for _ in range(count)]
    for activation in (None, "tanh"):
        for c in (cs, rows):
            got = K.addmm_many(c, as_, packed, activation)
            assert_addmm_many_is_addmm_of_each(K, got, c, as_, bs, activation)
            for g, z, a, p in zip(got, c, as_, packed):
                assert np.array_equal(g, K.addmm(z, a, p, activation))
            got = K.addmm_many(tuple(c), tuple(as_), tuple(bs), activation=activation)
            assert_addmm_many_is_addmm_of_each(K, got, c, as_, bs, activation)
    assert K.addmm_many([], [], []) == [] and K.addmm_many((), (), (), "tanh", outs=[]) == []


def addmm_many_out_places(kind, count, m, n):
    """(the parent's shape, where each of count (m, n) outs lies in it): column blocks of one wide array
    (the directions' halves of a bidirectional RNN's output), interleaved columns, reversed column blocks,
    rows stepped through a tall array; None for the standalone kinds."""
    if kind in ("c", "f"):
        return None, None
    if kind == "block":  # one spare block at the end
        return (m, (count + 1) * n), [np.s_[:, i * n:(i + 1) * n] for i in range(count)]
    if kind == "interleaved":
        return (m, count * n), [np.s_[:, i::count] for i in range(count)]
    if kind == "neg":
        return (m, count * n), [np.s_[::-1, (i + 1) * n - 1:(i * n - 1 if i else None):-1]
                                for i in range(count)]
    if kind == "step":  # every other row left out
        return (2 * count * m, n), [np.s_[i::2 * count] for i in range(count)]
    raise AssertionError(kind)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["c", "f", "block", "interleaved", "neg", "step"])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("m,k,n", [(32, 128, 128), (7, 13, 5), (1, 1, 1), (5, 0, 4)])
def test_addmm_many_out(K, rng, dtype, kind, count, m, k, n):
    """outs=: each product written into its out -- C or Fortran order, or views of one parent array shared
    by all of them (column blocks, interleaved columns, reversed, stepped rows) -- on exactly its elements,
    returning the outs themselves, with the bits of addmm; also with some outs None."""
    cs, as_, bs = addmm_many_operands(rng, dtype, count, m, k, n)
    packed = [K.pack(b) for b in bs]
    shape, places = addmm_many_out_places(kind, count, m, n)
    parent = None if shape is None else np.empty(shape, dtype)
    for activation in (None, "tanh"):
        for right in (packed, bs):
            for first_none in (False, True):
                if places is None:
                    outs = [np.full((m, n), np.nan, dtype, order=kind.upper()) for _ in range(count)]
                else:
                    parent[...] = np.nan
                    outs = [parent[p] for p in places]
                if first_none:
                    outs[0] = None
                got = K.addmm_many(cs, as_, right, activation, outs=outs)
                assert_addmm_many_is_addmm_of_each(K, got, cs, as_, bs, activation, outs)
                if places is not None:
                    written = np.zeros(shape, bool)
                    for p, o in zip(places, outs):
                        written[p] = o is not None
                    assert np.isnan(parent[~written]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps", [1, 4, 5])
def test_addmm_many_bidirectional_rnn_buffer(K, rng, dtype, steps):
    """A bidirectional RNN layer through its (T, N, 2H) output buffer: at step t the forward direction
    writes tanh(xw_f[t] + buf[t-1, :, :H] @ W_f) into buf[t, :, :H] while the reverse one writes
    tanh(xw_r[T-1-t] + buf[T-t, :, H:] @ W_r) into buf[T-1-t, :, H:] -- in the middle step of an odd T
    both outs lie in one row block, interleaved with each other and the other's state -- the bits of two
    separate addmm calls, each step within tolerance of float64 numpy from its actual inputs."""
    batch, hidden = 32, 128
    xw = randn(rng, (2, steps, batch, hidden), dtype)
    w = randn(rng, (2, hidden, hidden), dtype) / 16
    h0 = randn(rng, (2, batch, hidden), dtype)
    packed = [K.pack(w[0]), K.pack(w[1])]
    buf = np.full((steps, batch, 2 * hidden), np.nan, dtype)
    want = np.full((steps, batch, 2 * hidden), np.nan, dtype)
    for t in range(steps):
        r = steps - 1 - t
        prev = [h0[0] if t == 0 else buf[t - 1, :, :hidden], h0[1] if t == 0 else buf[r + 1, :, hidden:]]
        outs = [buf[t, :, :hidden], buf[r, :, hidden:]]
        cs = [xw[0, t], xw[1, r]]
        ins = [x.copy() for x in prev]
        got = K.addmm_many(cs, prev, packed, "tanh", outs=outs)
        assert len(got) == 2 and got[0] is outs[0] and got[1] is outs[1]
        want_prev = [h0[0] if t == 0 else want[t - 1, :, :hidden],
                     h0[1] if t == 0 else want[r + 1, :, hidden:]]
        K.addmm(cs[0], want_prev[0], w[0], "tanh", out=want[t, :, :hidden])
        K.addmm(cs[1], want_prev[1], packed[1], "tanh", out=want[r, :, hidden:])
        for d in range(2):
            assert np.array_equal(prev[d], ins[d])  # a state read in the step is not written by the other
            assert_addmm_close(outs[d], cs[d], ins[d], w[d], "tanh")
    assert np.array_equal(buf, want)


def test_addmm_many_falls_back_for_mixed_layouts(K, rng):
    """Products that cannot share one job -- a b given as an array beside packed ones, a's, c's or outs of
    different strides, different shapes or dtypes -- run as separate calls: the same bits as addmm on each."""
    m, k, n = 16, 40, 24
    cs, as_, bs = addmm_many_operands(rng, np.float64, 3, m, k, n)
    p = [K.pack(b) for b in bs]
    a7, b7 = randn(rng, (7, 13), np.float32), randn(rng, (13, 5), np.float32)
    c7 = randn(rng, (5,), np.float32)
    wide = np.full((m, 3 * n), np.nan)
    f_out = np.full((m, n), np.nan, order="F")
    cases = [  # (cs, as_, bs as given, bs as arrays, outs)
        (cs, as_, [p[0], bs[1], p[2]], bs, None),
        (cs, as_, [p[0], layout(bs[1], "t"), layout(bs[2], "step")], bs,
         [wide[:, :n], None, wide[:, 2 * n:]]),
        (cs, [as_[0], layout(as_[1], "f"), layout(as_[2], "neg")], p, bs, None),
        ([cs[0], cs[1][0], layout(cs[2], "f")], as_, p, bs, None),
        (cs, as_, p, bs, [None, wide[:, n:2 * n], f_out]),
        ([cs[0], c7, cs[1]], [as_[0], a7, as_[1]], [p[0], K.pack(b7), p[1]], [bs[0], b7, bs[1]], None),
        ([c7, c7[:1]], [a7, a7[:1]], [K.pack(b7), K.pack(b7)], [b7, b7],
         [None, np.empty((1, 5), np.float32)]),
    ]
    for c, a, b, dense, outs in cases:
        for activation in (None, "tanh"):
            got = K.addmm_many(c, a, b, activation, outs=outs)
            assert_addmm_many_is_addmm_of_each(K, got, c, a, dense, activation, outs)
            assert all(np.array_equal(g, K.addmm(z, x, y, activation)) for g, z, x, y in zip(got, c, a, b))


def test_addmm_many_falls_back_for_packings_of_other_paths(C, rng):
    """bs packed on different kernel paths: separate calls, each on its packing's path, the bits of addmm."""
    cs, as_, bs = addmm_many_operands(rng, np.float32, 2, 32, 128, 128)
    first = C.pack(bs[0])  # on the fixture's path
    for other in C.available_isas():
        C.set_isa(other)
        packed = [first, C.pack(bs[1])]
        assert packed[0].isa == first.isa and packed[1].isa == other
        for activation in (None, "tanh"):
            got = C.addmm_many(cs, as_, packed, activation)
            for g, c, a, b in zip(got, cs, as_, packed):
                assert np.array_equal(g, C.addmm(c, a, b, activation))
            for g, c, a, b in zip(got, cs, as_, bs):
                assert_addmm_close(g, c, a, b, activation)


@pytest.mark.parametrize("dtype", DTYPES)
def test_addmm_many_threads_bitwise_identical(C, threads, rng, dtype):
    """One job on 1, 2 or 3 threads (2, 3 or 5 products: fewer products than threads are cut up, else each
    runs whole on one thread; an RNN step's buffer blocks, interleaved outs, the fallback of one b not
    packed): the bits of one thread and of separate addmm calls."""
    results = []
    ops = {count: addmm_many_operands(rng, dtype, count, 32, 128, 128) for count in (2, 3, 5)}
    big = addmm_many_operands(rng, dtype, 2, 300, 64, 200)
    for nt in (1, 2, 3):
        threads(nt)
        got = []
        for cs, as_, bs in list(ops.values()) + [big]:
            packed = [C.pack(b) for b in bs]
            for activation in (None, "tanh"):
                got += C.addmm_many(cs, as_, packed, activation)
                got += C.addmm_many(cs, as_, [packed[0]] + bs[1:], activation)
            count, (m, n) = len(cs), cs[0].shape
            wide = np.full((m, (count + 1) * n), np.nan, dtype)  # blocks, then spare columns
            blocks = [wide[:, i * n:(i + 1) * n] for i in range(count)]
            got += C.addmm_many(cs, as_, packed, "tanh", outs=blocks)
            interleaved = np.full((m, 2 * count * n), np.nan, dtype)
            got += C.addmm_many(cs, as_, packed, outs=[interleaved[:, i::2 * count] for i in range(count)])
            assert np.isnan(wide[:, count * n:]).all()
            assert all(np.isnan(interleaved[:, i::2 * count]).all() for i in range(count, 2 * count))
            got = [g.copy() for g in got]
        results.append(got)
    for other in results[1:]:
        assert len(other) == len(results[0])
        for one, two in zip(results[0], other):
            assert np.array_equal(one, two)
    threads(2)
    cs, as_, bs = ops[2]
    for g, c, a, b in zip(results[0][4:6], cs, as_, bs):
        assert np.array_equal(g, C.addmm(c, a, b, "tanh"))


def addmm_many_bad_items():
    """(what, product 1's c, a, b, out, error, match): each refused by addmm_many as addmm refuses it."""
    a, b, c = np.ones((3, 4)), np.full((4, 5), 0.5), np.ones(5)
    ro = np.zeros((3, 5))
    ro.flags.writeable = False
    sq = np.arange(9.0).reshape(3, 3)
    return [
        ("c no broadcast", np.ones(4), a, b, None, ValueError, "does not broadcast"),
        ("c 3-D", np.ones((2, 3, 5)), a, b, None, ValueError, "does not broadcast"),
        ("c dtype", np.ones(5, np.float32), a, b, None, TypeError, "c has dtype float32"),
        ("mixed dtypes", c, a, b.astype(np.float32), None, TypeError, "mixed dtypes"),
        ("inner", c, a, np.ones((3, 5)), None, ValueError, "inner dimensions differ"),
        ("a 3-D", c, np.ones((2, 3, 4)), b, None, ValueError, "a must be 2-D"),
        ("b 1-D", c, a, np.ones(4), None, ValueError, "b must be 2-D"),
        ("c list", [1.0] * 5, a, b, None, TypeError, "must be a numpy.ndarray"),
        ("c int", np.ones(5, np.int64), a, b, None, TypeError, "float32 or float64"),
        ("b list", c, a, [[1.0] * 5] * 4, None, TypeError, "must be a numpy.ndarray"),
        ("out shape", c, a, b, np.zeros((5, 3)), ValueError, r"out has shape \(5, 3\), expected \(3, 5\)"),
        ("out dtype", c, a, b, np.zeros((3, 5), np.float32), TypeError, "out has dtype float32"),
        ("out int", c, a, b, np.zeros((3, 5), np.int64), TypeError, "float32 or float64"),
        ("out list", c, a, b, [[0.0] * 5] * 3, TypeError, "must be a numpy.ndarray"),
        ("out read-only", c, a, b, ro, ValueError, "read-only"),
        ("out self-overlapping", c, a, b, np.lib.stride_tricks.as_strided(np.zeros(8), (3, 5), (8, 8)),
         ValueError, "overlap"),
        ("out is its a", np.ones(3), sq, sq / 10, sq, ValueError, "shares memory"),
        ("out is its c", sq, sq / 10, sq / 100, sq, ValueError, "shares memory"),
        ("out is its b", np.ones(3), sq / 10, sq, sq.T, ValueError, "shares memory"),
    ]


BAD_ITEMS = {item[0]: item[1:] for item in addmm_many_bad_items()}


@pytest.mark.parametrize("what", sorted(BAD_ITEMS))
def test_addmm_many_rejects_a_bad_item(K, what):
    """A product refused as addmm refuses it (error type and message) refuses the whole call, wherever it
    stands: before anything runs, so the other products' outs (and every operand) are left untouched."""
    c1, a1, b1, out1, error, match = BAD_ITEMS[what]
    with pytest.raises(error, match=match):  # addmm's own refusal
        K.addmm(c1, a1, b1, out=out1)
    m, n = (3, 3) if what.startswith("out is its") else (3, 5)
    k = 3 if what.startswith("out is its") else 4
    snapshot = [np.array(x, copy=True) for x in (c1, a1, b1, out1) if isinstance(x, np.ndarray)]
    good = (np.ones(n), np.ones((m, k)), np.ones((k, n)))
    for place in (0, 1, 2):
        for right in ("array", "packed"):
            items = [good, good, good]
            items[place] = (c1, a1, b1)
            if right == "packed" and isinstance(b1, np.ndarray) and b1.ndim == 2 and what != "out is its b":
                items = [(z, x, K.pack(y)) for z, x, y in items]
            outs = [np.full((m, n), np.nan), np.full((m, n), np.nan), np.full((m, n), np.nan)]
            outs[place] = out1
            for activation in (None, "tanh"):
                with pytest.raises(error, match=match):
                    K.addmm_many(*map(list, zip(*items)), activation=activation, outs=outs)
                assert all(np.isnan(o).all() for i, o in enumerate(outs) if i != place)
                now = [x for x in (c1, a1, b1, out1) if isinstance(x, np.ndarray)]
                assert all(np.array_equal(x, y) for x, y in zip(now, snapshot))
            if out1 is None:  # the bad product without outs: refused all the same
                with pytest.raises(error, match=match):
                    K.addmm_many(*map(list, zip(*items)))


def test_addmm_many_rejects_bad_lists(K):
    c, a, b = np.ones(5), np.ones((3, 4)), np.full((4, 5), 0.5)
    p = K.pack(b)
    out = np.full((3, 5), np.nan)
    for bad in ("relu", "TANH", 1, np.tanh):
        with pytest.raises(ValueError, match="activation must be None or 'tanh'"):
            K.addmm_many([c], [a], [p], activation=bad)
    with pytest.raises(ValueError, match="activation must be None or 'tanh'"):
        K.addmm_many([], [], [], "sigmoid")
    for cs, as_, bs in (([c, c], [a], [p, p]), ([c], [a, a], [p]), ([c, c], [a, a], [p]), ([], [a], [p])):
        with pytest.raises(ValueError, match="expected as many"):
            K.addmm_many(cs, as_, bs, outs=[out] * len(cs))
    for outs in ([out, None], [], [None, None, None]):
        with pytest.raises(ValueError, match="expected as many"):
            K.addmm_many([c], [a], [p], outs=outs)
    assert np.isnan(out).all()
    for cs, as_, bs in ((c, [a], [p]), ([c], a, [p]), ([c], [a], p), ([c], [a], b), (np.stack([c]), [a], [p]),
                        ([c], [a], None), ({0: c}, [a], [p]), ([c], (x for x in [a]), [p])):
        with pytest.raises(TypeError, match="must be lists or tuples"):
            K.addmm_many(cs, as_, bs)


def test_addmm_many_rejects_outputs_that_meet_other_products(K, rng):
    """The products run at the same time: an out sharing an element with another product's out, a or c is
    refused before anything is written; disjoint column blocks of one array (interleaved byte ranges) are
    accepted, as outs beside each other and beside the other products' inputs."""
    buf = randn(rng, (3, 12), np.float64)
    w = randn(rng, (3, 3), np.float64)

    def refuse(cs, as_, bs, outs):
        keep = buf.copy(), w.copy()
        for right in (bs, [K.pack(b) for b in bs]):
            for activation in (None, "tanh"):
                with pytest.raises(ValueError, match="shares memory.*the products run at the same time"):
                    K.addmm_many(cs, as_, right, activation, outs=outs)
                assert np.array_equal(buf, keep[0]) and np.array_equal(w, keep[1])

    x, y, z = buf[:, :3], buf[:, 3:6], buf[:, 6:9]
    out = np.full((3, 3), np.nan)
    refuse([x, x], [y, y], [w, w], [out, out])  # one out for both
    refuse([x, x], [y, y], [w, w], [buf[:, 9:], buf[:, 9:]])  # two views of one block
    refuse([x, x], [y, y], [w, w], [buf[:, 8:11], buf[:, 9:]])  # overlapping blocks
    refuse([x, x], [y, z], [w, w], [z, None])  # out 0 is product 1's a
    refuse([x, x], [z, y], [w, w], [None, z])  # out 1 is product 0's a
    refuse([x, z], [y, y], [w, w], [z, None])  # out 0 is product 1's c
    refuse([x, buf[0, 9:]], [y, y], [w, w], [buf[:, 9:], None])  # product 1's bias row lies in out 0
    refuse([x, x, x], [y, y, y], [w, w, w], [None, out, out.T])  # outs 1 and 2
    assert np.isnan(out).all()
    blocks = [buf[:, i:i + 3] for i in range(0, 12, 3)]
    outs = [blocks[0], blocks[1]]
    cs, as_ = [blocks[2], blocks[3]], [blocks[3], blocks[2]]  # inputs may share memory with each other
    keep = [v.copy() for v in cs]
    for right in ([w, w], [K.pack(w), K.pack(w)]):
        for activation in (None, "tanh"):
            got = K.addmm_many(cs, as_, right, activation, outs=outs)
            assert np.array_equal(blocks[2], keep[0]) and np.array_equal(blocks[3], keep[1])
            assert_addmm_many_is_addmm_of_each(K, got, cs, as_, [w, w], activation, outs)


# ---------------------------------------------------------------- addmm_seq: an RNN layer's products as one job

def addmm_seq_case(K, rng, dtype, steps, batch, hidden, count):
    """An RNN layer's products in its (L, N, count * H) output buffer: (cs, h0s, weights, packed, buf, outs,
    reverse), the second direction running backwards."""
    cs = [randn(rng, (steps, batch, hidden), dtype) for _ in range(count)]
    h0s = [randn(rng, (batch, hidden), dtype) for _ in range(count)]
    ws = [randn(rng, (hidden, hidden), dtype) / (2.0 * max(hidden, 1) ** 0.5) for _ in range(count)]
    buf = np.full((steps, batch, count * hidden), np.nan, dtype)
    outs = [buf[:, :, i * hidden:(i + 1) * hidden] for i in range(count)]
    return cs, h0s, ws, [K.pack(w) for w in ws], buf, outs, [i == 1 for i in range(count)]


def addmm_seq_loop(K, cs, h0s, bs, activation, reverse):
    """addmm_seq's results computed step by step with addmm."""
    results = []
    for c, h, b, rev in zip(cs, h0s, bs, reverse):
        out = np.empty(c.shape, c.dtype)
        for s in range(c.shape[0]):
            t = c.shape[0] - 1 - s if rev else s
            h = out[t] = K.addmm(c[t], h, b, activation)
        results.append(out)
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps,batch,hidden", [(6, 32, 128), (5, 3, 40), (3, 7, 1), (1, 1, 5), (4, 32, 256)])
@pytest.mark.parametrize("count", [1, 2])
def test_addmm_seq_is_addmm_step_by_step(K, rng, dtype, steps, batch, hidden, count):
    """addmm_seq runs an RNN layer's recurrence (the reverse direction backwards) into its output buffer:
    the bits of addmm step by step from the same inputs, each step within tolerance of float64 numpy from
    the state before; the operands are left unchanged and outs returned."""
    cs, h0s, ws, packed, _, outs, reverse = addmm_seq_case(K, rng, dtype, steps, batch, hidden, count)
    copies = [x.copy() for x in cs + h0s]
    for activation in ("tanh", None):
        assert K.addmm_seq(cs, h0s, packed, outs, reverse, activation) is outs
        want = addmm_seq_loop(K, cs, h0s, packed, activation, reverse)
        for i in range(count):
            if K is not _reference:
                assert np.array_equal(outs[i], want[i])
            for s in range(steps):
                t = steps - 1 - s if reverse[i] else s
                prev = h0s[i] if s == 0 else outs[i][t + 1 if reverse[i] else t - 1]
                assert_addmm_close(outs[i][t], cs[i][t], prev, ws[i], activation)
        assert all(np.array_equal(x, y) for x, y in zip(cs + h0s, copies))


def test_addmm_seq_copies_operands_it_cannot_read_in_place(K, rng):
    """Addends and initial states of other layouts (column-strided, transposed, strides that differ between
    the directions) are read from copies: the bits of the contiguous case."""
    cs, h0s, _, packed, _, outs, reverse = addmm_seq_case(K, rng, np.float64, 4, 5, 24, 2)
    want = addmm_seq_loop(K, cs, h0s, packed, "tanh", reverse)
    odd_cs = [np.asfortranarray(cs[0]), cs[1]]
    odd_h0s = [h0s[0], np.repeat(h0s[1], 2, axis=1)[:, ::2]]
    K.addmm_seq(odd_cs, odd_h0s, packed, outs, reverse, "tanh")
    assert all(np.array_equal(o, w) for o, w in zip(outs, want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_addmm_seq_threads_bitwise_identical(C, threads, rng, dtype):
    """On 1, 2 or 3 threads -- the batch's rows split between them, each thread its rows through every step,
    or with fewer row panels than threads (4 rows) every step's products cut into column blocks the threads
    claim -- the same bits as addmm step by step on one thread."""
    cases = [addmm_seq_case(C, rng, dtype, 9, batch, hidden, count)
             for batch, hidden in ((32, 128), (32, 256), (4, 512), (12, 200)) for count in (1, 2)]
    threads(1)
    wants = [addmm_seq_loop(C, cs, h0s, packed, "tanh", reverse) for cs, h0s, _, packed, _, _, reverse in cases]
    for nt in (1, 2, 3):
        threads(nt)
        for (cs, h0s, _, packed, buf, outs, reverse), want in zip(cases, wants):
            buf[...] = np.nan
            C.addmm_seq(cs, h0s, packed, outs, reverse, "tanh")
            assert all(np.array_equal(o, w) for o, w in zip(outs, want)), nt


def test_addmm_seq_bad_input(K, rng):
    """Wrong kinds, counts, shapes, dtypes, layouts or overlapping outputs: a clear error before any step."""
    cs, h0s, ws, packed, _, outs, reverse = addmm_seq_case(K, rng, np.float32, 3, 4, 8, 2)
    wide = np.empty((3, 4, 16), np.float32)  # operands laid out as outs, so that they are not copied
    cases = [
        (TypeError, "lists or tuples", (cs[0], h0s, packed, outs, reverse)),
        (ValueError, "as many", (cs, h0s[:1], packed, outs, reverse)),
        (ValueError, "as many", ([], [], [], [], [])),
        (TypeError, "PackedMatrix", (cs, h0s, ws, outs, reverse)),
        (ValueError, "square", ([cs[0][:, :, :5]], [h0s[0]], [K.pack(ws[0][:5])], [outs[0][:, :, :5]], [False])),
        (ValueError, "shape", (cs, h0s, packed, [outs[0], outs[1][:2]], reverse)),
        (ValueError, "shape", ([cs[0], cs[1][:, :3]], h0s, packed, outs, reverse)),
        (ValueError, "shape", (cs, [h0s[0], h0s[1][:3]], packed, outs, reverse)),
        (TypeError, "dtype", (cs, [h0s[0], h0s[1].astype(np.float64)], packed, outs, reverse)),
        (ValueError, "shares memory", (cs, h0s, packed, [outs[0], outs[0]], reverse)),
        (ValueError, "shares memory", (cs, [wide[0, :, :8], outs[1][0]], packed, outs, reverse)),
        (ValueError, "shares memory", ([wide[:, :, :8], outs[0]], h0s, packed, outs, reverse)),
        (ValueError, "activation", (cs, h0s, packed, outs, reverse, "relu")),
    ]
    if K is not _reference:  # the reference writes any layout; the kernel needs unit column stride
        cases.append((ValueError, "strides", (cs, h0s, packed, [wide[:, :, :8], wide[:, :, 8:][:, :, ::-1]],
                                              reverse)))
    for error, match, args in cases:
        with pytest.raises(error, match=match):
            K.addmm_seq(*args)
    readonly = np.zeros((3, 4, 8), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.addmm_seq(cs[:1], h0s[:1], packed[:1], [readonly], [False])


# ---------------------------------------------------------------- tanh_seq_backward: an RNN layer's backward chain

def tanh_seq_case(rng, dtype, n, batch, hidden, missing=()):
    """n steps' (gs, ys, w, dzs) as the backward meets them: gs[s] None for s in ``missing``; the outputs in
    one (n, M, N) array filled with nan."""
    ys = [np.tanh(randn(rng, (batch, hidden), dtype)) for _ in range(n)]
    gs = [None if s in missing else randn(rng, (batch, hidden), dtype) for s in range(n)]
    w = randn(rng, (hidden, hidden), dtype) / (2.0 * max(hidden, 1) ** 0.5)
    return gs, ys, w, list(np.full((n, batch, hidden), np.nan, dtype))


def tanh_seq_float64(gs, ys, w):
    """The chain in float64 numpy: dz[s] = (g[s] + dz[s-1] @ w) * (1 - y[s]^2)."""
    out = []
    for s, (g, y) in enumerate(zip(gs, ys)):
        total = np.zeros(y.shape) if g is None else g.astype(np.float64)
        if s:
            total = total + out[-1] @ w.astype(np.float64)
        out.append(total * (1 - y.astype(np.float64) ** 2))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,batch,hidden,missing", [(64, 32, 128, ()), (9, 32, 128, (2, 3, 8)), (5, 3, 40, (1,)),
                                                    (3, 7, 1, ()), (1, 1, 5, ()), (4, 4, 512, (2,)),
                                                    (6, 13, 300, (5,)), (3, 0, 5, ()), (2, 4, 0, ())])
def test_tanh_seq_backward_is_addmm_then_tanh_backward_step_by_step(K, rng, dtype, n, batch, hidden, missing):
    """tanh_seq_backward runs an RNN layer's backward through its tanh steps in one job: the bits of addmm
    (matmul where a step has no gradient from elsewhere) then tanh_backward, step by step, each step within
    tolerance of float64 numpy; the operands unchanged, dzs returned."""
    gs, ys, w, dzs = tanh_seq_case(rng, dtype, n, batch, hidden, missing)
    p = K.pack(w)
    copies = [x.copy() for x in ys + [g for g in gs if g is not None]]
    assert K.tanh_seq_backward(gs, ys, p, dzs) is dzs
    want = []
    for s in range(n):
        g = gs[s]
        if s:
            g = K.matmul(want[-1], p) if g is None else K.addmm(g, want[-1], p)
        want.append(K.tanh_backward(g, ys[s]))
    exact = tanh_seq_float64(gs, ys, w)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    for s in range(n):
        if K is not _reference:
            assert np.array_equal(dzs[s], want[s]), s
        np.testing.assert_allclose(dzs[s], exact[s], rtol=tol, atol=tol)
    assert all(np.array_equal(x, y) for x, y in zip(ys + [g for g in gs if g is not None], copies))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("given", [(), (1,), (0, 2, 3)])
def test_tanh_seq_backward_makes_missing_outputs(K, rng, dtype, given):
    """A None in dzs is a step of one new array, earliest step first (the layout a weight gradient reads
    as one array): the same values as outputs the caller gives."""
    gs, ys, w, dzs = tanh_seq_case(rng, dtype, 5, 6, 24, (2,))
    p = K.pack(w)
    want = K.tanh_seq_backward(gs, ys, p, dzs)
    got = K.tanh_seq_backward(gs, ys, p, [np.full_like(dzs[i], np.nan) if i in given else None
                                          for i in range(5)])
    for s in range(5):
        assert got[s].shape == want[s].shape and got[s].dtype == dtype
        np.testing.assert_array_equal(got[s], want[s])
    fresh = [s for s in range(5) if s not in given]
    base = got[fresh[0]].base
    assert all(got[s].base is base for s in fresh)
    addresses = [got[s].__array_interface__["data"][0] for s in fresh]
    assert addresses == sorted(addresses, reverse=True)  # the latest step (first in the list) is last


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_seq_backward_threads_bitwise_identical(C, threads, rng, dtype):
    """On 1, 2 or 3 threads -- the batch's rows split between them (32 rows), or with fewer row panels than
    threads each step's columns (4 rows, 512 wide) -- the same bits as on one thread; operands read where
    they lie (row-strided views of wider arrays, as a bidirectional layer's halves)."""
    cases = []
    for batch, hidden in ((32, 128), (32, 256), (4, 512), (12, 200)):
        gs, ys, w, dzs = tanh_seq_case(rng, dtype, 7, batch, hidden, (3,))
        wide = np.zeros((7, batch, 2 * hidden), dtype)
        wide[:, :, hidden:] = ys
        ys = list(wide[:, :, hidden:])
        cases.append((gs, ys, C.pack(w), dzs))
    threads(1)
    wants = [[d.copy() for d in C.tanh_seq_backward(gs, ys, p, dzs)] for gs, ys, p, dzs in cases]
    for nt in (2, 3):
        threads(nt)
        for (gs, ys, p, dzs), want in zip(cases, wants):
            for d in dzs:
                d[...] = np.nan
            C.tanh_seq_backward(gs, ys, p, dzs)
            assert all(np.array_equal(d, w) for d, w in zip(dzs, want)), nt


@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_rows_handed_between_threads_keep_the_bits(C, threads, rng, dtype):
    """addmm_seq and tanh_seq_backward with rows changing threads mid-sequence (see
    test_gated_seq_kernels.py's test_rows_handed_between_threads_keep_the_bits): the bits of one thread, on
    more threads than cores, many times over."""
    # (a step of 1 MFLOP or more is shared between threads)
    cs, h0s, _, packed, buf, outs, reverse = addmm_seq_case(C, rng, dtype, 12, 64, 96, 2)
    gs, ys, w, dzs = tanh_seq_case(rng, dtype, 12, 64, 96, (3,))
    p = C.pack(w)
    threads(1)
    want_f = addmm_seq_loop(C, cs, h0s, packed, "tanh", reverse)
    want_b = [d.copy() for d in C.tanh_seq_backward(gs, ys, p, dzs)]
    for nt in (2, 3, 4):
        threads(nt)
        for _ in range(25):
            buf[...] = np.nan
            C.addmm_seq(cs, h0s, packed, outs, reverse, "tanh")
            assert all(np.array_equal(o, w) for o, w in zip(outs, want_f)), nt
            for d in dzs:
                d[...] = np.nan
            C.tanh_seq_backward(gs, ys, p, dzs)
            assert all(np.array_equal(d, w) for d, w in zip(dzs, want_b)), nt


def test_tanh_seq_backward_bad_input(K, rng):
    """Wrong kinds, counts, shapes, dtypes, layouts, read-only or overlapping outputs: a clear error before
    any step runs."""
    gs, ys, w, dzs = tanh_seq_case(rng, np.float32, 3, 4, 8)
    p = K.pack(w)
    wide = np.zeros((4, 16), np.float32)
    cases = [
        (TypeError, "lists or tuples", (gs[0], ys, p, dzs)),
        (ValueError, "as many", (gs[:2], ys, p, dzs)),
        (ValueError, "as many", ([], [], p, [])),
        (TypeError, "PackedMatrix", (gs, ys, w, dzs)),
        (ValueError, "square", (gs, ys, K.pack(w[:5]), dzs)),
        (ValueError, "gs\\[0\\]", ([None] + gs[1:], ys, p, dzs)),
        (ValueError, "2-D", (gs, ys, p, [dzs[0][None]] + dzs[1:])),
        (ValueError, "shape", (gs, ys, p, [dzs[0], dzs[1][:3], dzs[2]])),
        (ValueError, "shape", (gs, [ys[0], ys[1][:, :4], ys[2]], p, dzs)),
        (TypeError, "dtype", ([gs[0].astype(np.float64)] + gs[1:], ys, p, dzs)),
        (TypeError, "float32 or float64", (gs, [ys[0].astype(np.int32)] + ys[1:], p, dzs)),
        (TypeError, "byte order", (gs, [ys[0].astype(ys[0].dtype.newbyteorder())] + ys[1:], p, dzs)),
        (ValueError, "shares memory", (gs, ys, p, [dzs[0], dzs[0], dzs[2]])),
        (ValueError, "shares memory", (gs, [dzs[2]] + ys[1:], p, dzs)),
        (ValueError, "shares memory", ([wide[:, :8]] + gs[1:], ys, p, [dzs[0], wide[:, 4:12], dzs[2]])),
    ]
    if K is not _reference:  # the reference writes any layout; the kernel needs unit column stride
        cases.append((ValueError, "strides", (gs, ys, p, [dzs[0], np.zeros((4, 16), np.float32)[:, ::2], dzs[2]])))
    for error, match, args in cases:
        with pytest.raises(error, match=match):
            K.tanh_seq_backward(*args)
        assert all(np.isnan(d).all() for d in dzs)
    # interleaved columns of one array share no element: allowed (a bidirectional layer's halves)
    K.tanh_seq_backward([wide[:, :8]] + gs[1:], ys, p, [dzs[0], wide[:, 8:], dzs[2]])
    readonly = np.zeros((4, 8), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.tanh_seq_backward(gs, ys, p, [dzs[0], readonly, dzs[2]])


# ---------------------------------------------------------------- matmul_stacked_t: a sum of products

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pieces,rows,m,n", [(64, 32, 128, 128), (3, 5, 7, 9), (1, 1, 1, 1), (10, 33, 130, 70),
                                             (7, 3, 300, 513), (2, 700, 6, 64)])
def test_matmul_stacked_t_matches_the_stacked_product(K, rng, dtype, pieces, rows, m, n):
    """sum_i lefts[i].T @ rights[i] with nothing stacked: the bits of the product of the stacked arrays on
    the kernel paths, whatever the pieces' layouts."""
    lefts = [randn(rng, (rows + i % 3, m), dtype) for i in range(pieces)]
    rights = [randn(rng, (rows + i % 3, n), dtype) for i in range(pieces)]
    kinds = ["c", "step", "neg", "f"]
    got = K.matmul_stacked_t([layout(x, kinds[i % 4]) for i, x in enumerate(lefts)],
                             tuple(layout(x, kinds[(i + 1) % 4]) for i, x in enumerate(rights)))
    a, b = np.concatenate(lefts).T, np.concatenate(rights)
    assert got.shape == (m, n) and got.dtype == dtype and got.flags.c_contiguous
    assert_matmul_close(got, a, b)
    if K is not _reference:
        assert np.array_equal(got, K.matmul(a, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["forward", "reversed", "gap", "one_row_each"])
def test_matmul_stacked_t_slices_of_one_array(K, rng, dtype, order):
    """Pieces that are consecutive slices of one array (an RNN's gradients over time) are read as that
    array; out of order or with a gap they are a table again.  Either way: the stacked product's bits."""
    g, x = randn(rng, (700, 512), dtype), randn(rng, (1400, 64), dtype)
    rows = 1 if order == "one_row_each" else 32
    starts = list(range(0, 640, rows))
    if order == "reversed":
        starts = starts[::-1]
    if order == "gap":
        starts = [s + (8 if i >= 7 else 0) for i, s in enumerate(starts)]
    lefts = [g[s:s + rows] for s in starts]
    rights = [x[2 * s:2 * s + 2 * rows:2] for s in starts]
    a, b = np.concatenate(lefts).T, np.concatenate(rights)
    got = K.matmul_stacked_t(lefts, rights)
    assert_matmul_close(got, a, b)
    if K is not _reference:
        assert np.array_equal(got, K.matmul(a, b))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_stacked_t_threads_bitwise_identical(C, threads, rng, dtype):
    lefts = [randn(rng, (32, 128), dtype) for _ in range(64)]
    rights = [randn(rng, (32, 128), dtype) for _ in range(64)]
    wide = [randn(rng, (20, 40), dtype) for _ in range(9)], [randn(rng, (20, 600), dtype) for _ in range(9)]
    results = []
    for n in (1, 2):
        threads(n)
        results.append([C.matmul_stacked_t(lefts, rights), C.matmul_stacked_t(*wide)])
    for one, two in zip(*results):
        assert np.array_equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(500, 200), (96, 129), (97, 300), (512, 256)])
def test_long_column_a_whose_columns_alias_in_l1(C, threads, rng, dtype, m, n):
    """A weight gradient's g.T whose columns lie a multiple of 2 KiB apart (an LSTM's dz.T: 4H = 512 floats)
    is packed several panels at a time (matmul_tmpl.h, a_grouped), also as a row table, with rows past a
    whole group: the bits of the product of the contiguous operands, at 1 and 2 threads."""
    width = 4096 // np.dtype(dtype).itemsize  # 4 KiB rows: the columns of g.T alias
    g, x = randn(rng, (640, width), dtype), randn(rng, (640, n), dtype)
    a = g[:, :m].T
    want = C.matmul(np.ascontiguousarray(a), x)
    assert_matmul_close(want, a, x)
    results = []
    for t in (1, 2):
        threads(t)
        results += [C.matmul(a, x), C.matmul_stacked_t([g[s:s + 32, :m] for s in range(0, 640, 32)],
                                                       [x[s:s + 32] for s in range(0, 640, 32)]),
                    C.matmul_stacked_t([g[s:s + 32, :m] for s in range(0, 640, 64)] * 2,
                                       [x[s:s + 32] for s in range(0, 640, 64)] * 2)]
    doubled = C.matmul(np.ascontiguousarray(np.concatenate([g[s:s + 32, :m] for s in range(0, 640, 64)] * 2).T),
                       np.concatenate([x[s:s + 32] for s in range(0, 640, 64)] * 2))
    for i, got in enumerate(results):
        assert np.array_equal(got, doubled if i % 3 == 2 else want), i


def test_matmul_stacked_t_empty_rows(K):
    got = K.matmul_stacked_t([np.ones((0, 3))], [np.ones((0, 4))])
    assert got.shape == (3, 4) and not got.any()


def test_matmul_stacked_t_rejects_bad_input(K):
    a, b = np.ones((4, 3)), np.ones((4, 5))
    with pytest.raises(TypeError, match="lists or tuples"):
        K.matmul_stacked_t(a, b)
    with pytest.raises(ValueError, match="as many rights as lefts"):
        K.matmul_stacked_t([a, a], [b])
    with pytest.raises(ValueError, match="as many rights as lefts"):
        K.matmul_stacked_t([], [])
    with pytest.raises(ValueError, match=r"lefts\[1\] has shape \(4, 2\), expected 3 columns"):
        K.matmul_stacked_t([a, np.ones((4, 2))], [b, b])
    with pytest.raises(ValueError, match=r"rights\[1\] has shape \(4, 6\), expected 5 columns"):
        K.matmul_stacked_t([a, a], [b, np.ones((4, 6))])
    with pytest.raises(ValueError, match="same number of rows"):
        K.matmul_stacked_t([a], [np.ones((3, 5))])
    with pytest.raises(TypeError, match=r"rights\[0\] has dtype float32"):
        K.matmul_stacked_t([a], [b.astype(np.float32)])
    with pytest.raises(ValueError, match="must be 2-D"):
        K.matmul_stacked_t([np.ones(4)], [b])
    with pytest.raises(TypeError, match="float32 or float64"):
        K.matmul_stacked_t([a.astype(np.int32)], [b])


# ---------------------------------------------------------------- matmul: a packed right operand

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lb", ["c", "f", "t", "step", "neg"])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (32, 128, 128), (67, 300, 71), (130, 257, 513)])
def test_pack_matches_matmul(K, rng, dtype, lb, m, k, n):
    """matmul(a, pack(b)) is matmul(a, b): bitwise on the kernel paths, for any layout of a and b."""
    a, b = randn(rng, (m, k), dtype), randn(rng, (k, n), dtype)
    bl = layout(b, lb)
    p = K.pack(bl)
    assert p.shape == (k, n) and p.dtype == dtype and p.isa == K.isa() and p.nbytes >= k * n * a.itemsize
    assert "PackedMatrix" in repr(p)
    a3 = randn(rng, (3, m, k), dtype)
    pairs = [(K.matmul(a, p), K.matmul(a, bl)), (K.matmul(layout(a, "f"), p), K.matmul(layout(a, "f"), bl)),
             (K.matmul(a3, p), K.matmul(a3, bl))]
    for got, want in pairs:
        assert got.shape == want.shape and got.dtype == dtype and got.flags.c_contiguous
        if K is not _reference:
            assert np.array_equal(got, want)
    assert_matmul_close(pairs[0][0], a, b)
    assert_matmul_close(pairs[2][0], a3, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["c", "f", "step"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_pack_out(K, rng, dtype, kind, accumulate):
    a, b = randn(rng, (37, 70), dtype), randn(rng, (70, 66), dtype)
    base = randn(rng, (37, 66), dtype)
    parent = np.full((3 * 37, 3 * 66), 7.0, dtype)
    out = {"c": parent[:37, :66], "f": np.asfortranarray(parent[:37, :66]), "step": parent[::3, ::3]}[kind]
    out[...] = base
    assert K.matmul(a, K.pack(b), out=out, accumulate=accumulate) is out
    assert_matmul_close(out, a, b, base if accumulate else None)


def test_pack_is_a_snapshot(K, rng):
    """Writes to b after packing are not seen: re-packing is the caller's job."""
    a, b = randn(rng, (9, 20), np.float64), randn(rng, (20, 30), np.float64)
    p = K.pack(b)
    want = K.matmul(a, b)
    b[...] = 0.0
    assert np.array_equal(K.matmul(a, p), want) or K is _reference and np.allclose(K.matmul(a, p), want)
    assert np.all(K.matmul(a, K.pack(b)) == 0.0)


def test_pack_keeps_its_path(C, rng):
    """A matrix packed on one kernel path is multiplied on that path, whatever the active one is later."""
    a, b = randn(rng, (40, 100), np.float32), randn(rng, (100, 90), np.float32)
    for isa in C.available_isas():
        C.set_isa(isa)
        p, want = C.pack(b), C.matmul(a, b)
        for other in C.available_isas():
            C.set_isa(other)
            assert p.isa == isa and np.array_equal(C.matmul(a, p), want)


def test_pack_rejects_bad_input(K):
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.pack([[1.0]])
    with pytest.raises(TypeError, match="dtype"):
        K.pack(np.ones((3, 3), np.int64))
    with pytest.raises(ValueError, match="2-D"):
        K.pack(np.ones((2, 3, 3)))
    p = K.pack(np.ones((3, 4)))
    with pytest.raises(TypeError, match="float32.*float64"):
        K.matmul(np.ones((2, 3), np.float32), p)
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(3, 4\)"):
        K.matmul(np.ones((2, 5)), p)
    with pytest.raises(ValueError, match="2-D"):
        K.matmul(np.ones(3), p)
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="shape"):
        K.matmul(a, p, out=np.empty((4, 2)))
    with pytest.raises(ValueError, match="accumulate"):
        K.matmul(a, p, accumulate=True)
    buf = np.ones((2, 8))
    with pytest.raises(ValueError, match="shares memory"):
        K.matmul(buf[:, :3], p, out=buf[:, 2:6])
    with pytest.raises(TypeError, match="pack"):
        K.PackedMatrix()
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(p)
    with pytest.raises((TypeError, ValueError)):
        K.matmul(p, np.ones((4, 2)))


# ---------------------------------------------------------------- matmul: bad input

def test_matmul_inner_mismatch_names_shapes(K):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        K.matmul(np.ones((3, 4)), np.ones((5, 6)))
    with pytest.raises(ValueError, match="batch"):
        K.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 6)))


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.complex128, np.bool_, object, np.float16, ">f8"])
def test_matmul_rejects_dtypes(K, bad):
    x = np.ones((3, 3), dtype=bad)
    with pytest.raises(TypeError, match="dtype"):
        K.matmul(x, np.ones((3, 3)))
    with pytest.raises(TypeError, match="dtype"):
        K.matmul(np.ones((3, 3)), x)


def test_matmul_rejects_mixed_dtypes(K):
    with pytest.raises(TypeError, match="float32.*float64"):
        K.matmul(np.ones((3, 3), np.float32), np.ones((3, 3), np.float64))


def test_matmul_rejects_non_arrays(K):
    """Lists and scalars are rejected rather than converted: the tensor layer always passes arrays."""
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.matmul([[1.0, 2.0]], np.ones((2, 2)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.matmul(np.ones((2, 2)), 3.0)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.matmul(np.ones((2, 2)), np.ones((2, 2)), out=[[0.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("shape_a,shape_b", [((3,), (3, 3)), ((3, 3), (3,)), ((1, 2, 3, 3), (3, 3)),
                                             ((), (3, 3))])
def test_matmul_rejects_ndim(K, shape_a, shape_b):
    with pytest.raises(ValueError, match="2-D"):
        K.matmul(np.ones(shape_a), np.ones(shape_b))


def test_matmul_rejects_bad_out(K):
    a, b = np.ones((4, 5)), np.ones((5, 6))
    with pytest.raises(ValueError, match=r"\(6, 4\).*\(4, 6\)"):
        K.matmul(a, b, out=np.empty((6, 4)))
    with pytest.raises(ValueError, match="shape"):
        K.matmul(a, b, out=np.empty((1, 4, 6)))
    with pytest.raises(TypeError, match="dtype"):
        K.matmul(a, b, out=np.empty((4, 6), np.float32))
    ro = np.empty((4, 6))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.matmul(a, b, out=ro)
    with pytest.raises(ValueError, match="accumulate"):
        K.matmul(a, b, accumulate=True)


def test_matmul_rejects_overlapping_out(K):
    buf = np.ones((8, 8))
    with pytest.raises(ValueError, match="shares memory"):
        K.matmul(buf[:4, :4], buf[:4, :4], out=buf[2:6, 2:6])
    sq = np.ones((4, 4))
    with pytest.raises(ValueError, match="shares memory"):
        K.matmul(sq, np.ones((4, 4)), out=sq)
    with pytest.raises(ValueError, match="shares memory"):
        K.matmul(np.ones((4, 4)), sq.T, out=sq)
    # Interleaved columns of one buffer do not share elements: allowed.
    buf = np.zeros((4, 8))
    buf[:, ::2] = 1.0
    K.matmul(buf[:, ::2], np.eye(4), out=buf[:, 1::2])
    assert np.all(buf == 1.0)
    # A writable view whose elements alias each other cannot be an output.
    alias = np.lib.stride_tricks.as_strided(np.zeros(8), shape=(4, 4), strides=(8, 8))
    with pytest.raises(ValueError, match="overlap"):
        K.matmul(np.ones((4, 3)), np.ones((3, 4)), out=alias)


def test_matmul_rejects_misaligned(K):
    raw = np.zeros(8 * 9 + 1, np.uint8)
    unaligned = raw[1:].view(np.float64).reshape(3, 3)
    with pytest.raises(ValueError, match="aligned"):
        K.matmul(unaligned, np.ones((3, 3)))
    odd = np.lib.stride_tricks.as_strided(np.zeros(64), shape=(3, 3), strides=(12, 8))
    with pytest.raises(ValueError, match="itemsize"):
        K.matmul(odd, np.ones((3, 3)))


# ---------------------------------------------------------------- tanh

def ulp_error(y, ref):
    """|y - ref| in units of the spacing of ref rounded to y's dtype (ref in a wider type)."""
    spacing = np.spacing(np.abs(ref.astype(y.dtype))).astype(ref.dtype)
    return np.abs(y.astype(ref.dtype) - ref) / spacing


def float32_sample():
    """Every 193rd positive float32 (subnormals and both saturation regions included), plus dense runs
    around the formula switch 0.75, the saturation threshold 9.01, the end of the n = 0 range ln2/4, and the
    worst cases found by an exhaustive scan (0.5081 on the SIMD paths, 0.8124 portable)."""
    bits = np.arange(0, 0x7F800000, 193, dtype=np.uint32)
    near = [np.float32(0.75), np.float32(9.0109), np.float32(0.17329), np.float32(0.508116364),
            np.float32(0.812385917), np.float32(0.125)]
    runs = [np.arange(c.view(np.uint32) - 20000, c.view(np.uint32) + 20000, dtype=np.uint32) for c in near]
    return np.concatenate([bits] + runs).view(np.float32)


def test_tanh_float32_ulp(K):
    x = float32_sample()
    for xs in (x, -x):
        y = K.tanh(xs)
        err = ulp_error(y, np.tanh(xs.astype(np.float64)))
        assert err.max() <= 2.0, f"{err.max()} ulp at x={xs[np.argmax(err)]!r}"


def test_tanh_float64_ulp(K, rng):
    """Against tanh in x87 long double, rounded: log-uniform magnitudes from subnormal to saturation,
    plus the branch point and the saturation threshold."""
    mags = [10.0 ** rng.uniform(-320, np.log10(25.0), 400_000), rng.uniform(0.7, 0.8, 100_000),
            rng.uniform(18.5, 19.5, 20_000), rng.uniform(0.0, 5.0, 200_000)]
    x = np.concatenate(mags)
    x = np.concatenate([x, -x])
    y = K.tanh(x)
    err = ulp_error(y, np.tanh(x.astype(np.longdouble)))
    assert err.max() <= 2.0, f"{err.max()} ulp at x={x[np.argmax(err)]!r}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_special_values(K, dtype):
    f = np.finfo(dtype)
    sat = 9.02 if dtype is np.float32 else 19.07
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, f.smallest_subnormal, -f.smallest_subnormal,
                  f.smallest_normal, 1e-20, -1e-30, 30.0, f.max, -f.max], dtype)
    y = K.tanh(x)
    assert np.isnan(y[:2]).all()
    assert list(y[2:4]) == [1.0, -1.0]
    assert y[4] == 0 and not np.signbit(y[4]) and y[5] == 0 and np.signbit(y[5])
    assert np.array_equal(y[6:11], x[6:11])  # tanh(x) rounds to x for tiny x
    assert list(y[11:]) == [1.0, 1.0, -1.0]
    # Exactly 1 from the saturation threshold on, below 1 just under it.  numpy's own float32 tanh is still
    # 1 ulp below 1 just past the threshold, so the reference is held to that only a little further out.
    just_below = np.array([8.9 if dtype is np.float32 else 18.9], dtype)
    assert K.tanh(just_below)[0] < 1.0
    if K is _reference:
        sat += 1.0
    beyond = np.linspace(sat, 60, 1000, dtype=dtype)
    assert np.all(K.tanh(beyond) == 1.0) and np.all(K.tanh(-beyond) == -1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 15, 16, 17, 100, 70_001])
def test_tanh_lengths_and_tails(K, rng, dtype, n):
    x = rng.uniform(-4, 4, n).astype(dtype)
    y = K.tanh(x)
    ref = np.tanh(x.astype(np.longdouble))
    assert ulp_error(y, ref).max() <= 2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_layouts_and_out(K, rng, dtype):
    base = rng.uniform(-3, 3, (6, 40, 10)).astype(dtype)
    for x in (base, base[:, ::3, ::-2], base.transpose(2, 0, 1), np.asfortranarray(base), base[0, 0, 0, ...]):
        ref = np.tanh(x.astype(np.longdouble))
        y = K.tanh(x)
        assert y.shape == x.shape and y.dtype == dtype and y.flags.c_contiguous
        assert ulp_error(y, ref).max() <= 2.0
        out = np.full((2,) + x.shape, np.nan, dtype)[1, ...]
        assert K.tanh(x, out=out) is out
        assert ulp_error(out, ref).max() <= 2.0
        strided = np.zeros(x.shape[::-1], dtype).T
        K.tanh(x, out=strided)
        assert ulp_error(strided, ref).max() <= 2.0
    x = base.copy()
    ref = np.tanh(x.astype(np.longdouble))
    assert K.tanh(x, out=x) is x
    assert ulp_error(x, ref).max() <= 2.0
    x = base[:, ::2].copy(order="F")[:, ::-1]
    ref = np.tanh(x.astype(np.longdouble))
    K.tanh(x, out=x)
    assert ulp_error(x, ref).max() <= 2.0
    assert K.tanh(np.empty((0, 3), dtype)).shape == (0, 3)


def test_tanh_threads_bitwise_identical(C, threads, rng):
    for dtype in DTYPES:
        x = rng.uniform(-10, 10, 200_003).astype(dtype)
        g = rng.standard_normal(x.shape).astype(dtype)
        threads(1)
        y1, b1 = C.tanh(x), C.tanh_backward(g, np.tanh(x))
        threads(2)
        y2, b2 = C.tanh(x), C.tanh_backward(g, np.tanh(x))
        assert np.array_equal(y1, y2) and np.array_equal(b1, b2)


def test_tanh_does_not_depend_on_position(K, rng):
    """Each element gets the same bits wherever it sits: in a block of four vectors, a single vector, the
    masked tail or alone (the paths interleave differently but run the same operations)."""
    for dtype in DTYPES:
        x = (rng.standard_normal(64 * 40 + 23) * 4).astype(dtype)
        x[::7] *= 3  # some lanes past the float32 saturation bound
        whole = K.tanh(x)
        pieces = np.concatenate([K.tanh(x[i:i + 16].copy()) for i in range(0, len(x), 16)])
        alone = np.concatenate([K.tanh(x[i:i + 1].copy()) for i in range(0, len(x), 37)])
        assert np.array_equal(whole.view(np.uint8), pieces.view(np.uint8))
        assert np.array_equal(whole[::37].copy().view(np.uint8), alone.view(np.uint8))


def test_tanh_rejects_bad_input(K):
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.tanh([0.5, 1.0])
    for bad in (np.int64, np.complex64, np.bool_, object):
        with pytest.raises(TypeError, match="dtype"):
            K.tanh(np.zeros(3, bad))
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shape"):
        K.tanh(x, out=np.zeros((3, 2)))
    with pytest.raises(TypeError, match="dtype"):
        K.tanh(x, out=np.zeros((2, 3), np.float32))
    ro = np.zeros((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.tanh(x, out=ro)
    buf = np.zeros(10)
    with pytest.raises(ValueError, match="overlaps"):
        K.tanh(buf[:8], out=buf[2:])


# ---------------------------------------------------------------- tanh_backward

@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_backward_matches_formula(K, rng, dtype):
    edges = [1.0, -1.0, 0.0, -0.0, 0.999999]
    y = np.concatenate([np.tanh(rng.uniform(-12, 12, 50_001)), edges]).astype(dtype)
    g = rng.standard_normal(y.shape).astype(dtype)
    gl, yl = g.astype(np.longdouble), y.astype(np.longdouble)
    ref = gl * (1 - yl * yl)
    eps = np.finfo(dtype).eps
    # Rounding y*y costs at most eps/2 absolute inside (1 - y*y); two more roundings are relative.
    tol = np.abs(gl) * (2 * eps * np.abs(1 - yl * yl) + eps)
    out = K.tanh_backward(g, y)
    assert out.flags.c_contiguous and out.dtype == dtype
    assert np.all(np.abs(out.astype(np.longdouble) - ref) <= tol)
    out = K.tanh_backward(g[::-1], y[::-1])[::-1]
    assert np.all(np.abs(out.astype(np.longdouble) - ref) <= tol)
    inplace = g.copy()
    assert K.tanh_backward(inplace, y, out=inplace) is inplace
    assert np.all(np.abs(inplace.astype(np.longdouble) - ref) <= tol)


def test_tanh_backward_rejects_bad_input(K):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        K.tanh_backward(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        K.tanh_backward(np.ones((2, 3)), np.ones((1, 3)))
    with pytest.raises(TypeError, match="float32.*float64"):
        K.tanh_backward(np.ones(3, np.float32), np.ones(3, np.float64))
    with pytest.raises(TypeError, match="dtype"):
        K.tanh_backward(np.ones(3, np.int32), np.ones(3, np.int32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.tanh_backward([1.0], np.ones(1))
    buf = np.ones(10)
    with pytest.raises(ValueError, match="overlaps"):
        K.tanh_backward(buf[:8], np.ones(8), out=buf[1:9])


def tanh_backward_bound(g, y):
    """grad * (1 - y*y) in long double and the bound of test_tanh_backward_matches_formula around it."""
    gl, yl = g.astype(np.longdouble), y.astype(np.longdouble)
    eps = np.finfo(g.dtype).eps
    return gl * (1 - yl * yl), np.abs(gl) * (2 * eps * np.abs(1 - yl * yl) + eps)


def column_block(rng, rows, cols, width, offset, dtype, fill=None):
    """(wide, block): a (rows, width) array of NaN whose columns [offset, offset + cols) are `fill` (or
    standard normal): rows contiguous, `width` elements apart."""
    wide = np.full((rows, width), np.nan, dtype)
    block = wide[:, offset:offset + cols]
    block[...] = randn(rng, (rows, cols), dtype) if fill is None else fill
    return wide, block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols,width", [(32, 128, 256), (600, 300, 700), (5, 33, 41)])
def test_tanh_backward_strided_rows(K, rng, dtype, rows, cols, width):
    """2-D operands whose rows are contiguous but lie any distance apart (big[:, :128]: one direction's half
    of a bidirectional RNN's state) are read and written in place: the bits of the call on contiguous copies
    and within the formula's bound of grad * (1 - y*y) in long double, for every mix of strided and
    contiguous grad, y and out, out=grad in place, and a broadcast y row; the wider arrays' other columns
    untouched.  600 x 300 is large enough to be split across threads."""
    y_vals = np.tanh(rng.uniform(-5, 5, (rows, cols))).astype(dtype)
    y_vals[0, :4] = [1.0, -1.0, 0.0, -0.0]
    gw, g = column_block(rng, rows, cols, width, 0, dtype)
    yw, y = column_block(rng, rows, cols, width, width - cols, dtype, y_vals)
    gc, yc = g.copy(), y.copy()
    want = K.tanh_backward(gc, yc)
    ref, tol = tanh_backward_bound(gc, yc)
    assert np.all(np.abs(want.astype(np.longdouble) - ref) <= tol)

    def fresh_out():
        return column_block(rng, rows, cols, width, 3, dtype)

    got = K.tanh_backward(g, y)
    assert got.flags.c_contiguous and np.array_equal(got, want)
    ow, out = fresh_out()
    assert K.tanh_backward(g, y, out=out) is out
    assert np.array_equal(out, want)
    assert np.isnan(ow[:, :3]).all() and np.isnan(ow[:, 3 + cols:]).all()
    assert np.array_equal(K.tanh_backward(gc, y), want)                 # grad contiguous, y strided
    ow, out = fresh_out()
    assert np.array_equal(K.tanh_backward(g, yc, out=out), want)      # y contiguous, grad and out strided
    ow, out = fresh_out()
    assert np.array_equal(K.tanh_backward(gc, yc, out=out), want)     # only out strided
    assert np.isnan(ow[:, :3]).all() and np.isnan(ow[:, 3 + cols:]).all()
    assert np.array_equal(g, gc) and np.array_equal(y, yc)
    assert np.isnan(gw[:, cols:]).all() and np.isnan(yw[:, :width - cols]).all()
    inplace_w, inplace = column_block(rng, rows, cols, width, 0, dtype, gc)
    assert K.tanh_backward(inplace, y, out=inplace) is inplace         # out=grad, in place
    assert np.array_equal(inplace, want) and np.isnan(inplace_w[:, cols:]).all()
    # y one row broadcast to all (rows zero elements apart)
    row = np.broadcast_to(y[1], (rows, cols))
    assert np.array_equal(K.tanh_backward(g, row), K.tanh_backward(gc, np.ascontiguousarray(row)))
    # rows in reverse order (negative row stride)
    assert np.array_equal(K.tanh_backward(g[::-1], y[::-1]), want[::-1])
    assert K.tanh_backward(g[:0], y[:0]).shape == (0, cols)
    assert K.tanh_backward(gw[:, :0], yw[:, :0]).shape == (rows, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_backward_strided_rows_threads_bitwise_identical(C, threads, rng, dtype):
    """A column block of 600 x 300 in a 600 x 700 array is split into blocks of rows across threads: the
    bits of one thread and of the contiguous call, for 1, 2 and 3 threads."""
    _, g = column_block(rng, 600, 300, 700, 400, dtype)
    _, y = column_block(rng, 600, 300, 700, 0, dtype, np.tanh(rng.uniform(-4, 4, (600, 300))))
    threads(1)
    want = C.tanh_backward(g.copy(), y.copy())
    ref, tol = tanh_backward_bound(g, y)
    assert np.all(np.abs(want.astype(np.longdouble) - ref) <= tol)
    for nt in (1, 2, 3):
        threads(nt)
        ow, out = column_block(rng, 600, 300, 700, 200, dtype)
        C.tanh_backward(g, y, out=out)
        assert np.array_equal(out, want) and np.array_equal(C.tanh_backward(g, y), want)
        assert np.isnan(ow[:, :200]).all() and np.isnan(ow[:, 500:]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["tanh", "sigmoid", "sigmoid_backward"])
@pytest.mark.parametrize("rows,cols,width", [(32, 128, 512), (600, 300, 700), (3, 17, 40)])
def test_gate_chunk_rows_in_one_call_on_any_thread_count(C, threads, rng, op, dtype, rows, cols, width):
    """tanh, sigmoid and sigmoid's backward of an LSTM gate's chunk (rows contiguous, `width` apart) run as
    one call over the rows, cut into blocks of rows for the threads when large (600 x 300): on 1, 2 and 3
    threads the results are those of the contiguous copies, tanh and sigmoid within 2 ulp of a long double
    reference and the backward numpy's g * y * (1 - y); the wider arrays' other columns stay untouched."""
    _, x = column_block(rng, rows, cols, width, width - cols, dtype, rng.uniform(-12, 12, (rows, cols)))
    gw, g = column_block(rng, rows, cols, width, 0, dtype)
    wide = np.longdouble
    if op == "tanh":
        run = lambda out=None: C.tanh(x, out=out)  # noqa: E731
        ref = np.tanh(x.astype(wide))
    elif op == "sigmoid":
        run = lambda out=None: C.sigmoid(x, out=out)  # noqa: E731
        ref = 1 / (1 + np.exp(-x.astype(wide)))
    else:
        y = np.ascontiguousarray(1 / (1 + np.exp(-x)))
        _, y = column_block(rng, rows, cols, width, width - cols, dtype, y)
        run = lambda out=None: C.sigmoid_backward(g, y, out=out)  # noqa: E731
        ref = g * y * (1 - y)
    for nt in (1, 2, 3):
        threads(nt)
        got = run()
        assert got.flags.c_contiguous and got.shape == (rows, cols)
        if op == "sigmoid_backward":
            assert np.array_equal(got, ref)
        else:
            assert ulp_error(got, ref).max() <= 2.0
        ow, out = column_block(rng, rows, cols, width, 1, dtype)
        assert run(out) is out and np.array_equal(out, got)
        assert np.isnan(ow[:, :1]).all() and np.isnan(ow[:, 1 + cols:]).all()
        if nt == 1:
            first = got
        assert np.array_equal(got, first)
    assert np.isnan(gw[:, cols:]).all()
    if op == "sigmoid_backward":  # grad written in place, and y one row broadcast down all (rows 0 apart)
        _, inplace = column_block(rng, rows, cols, width, 0, dtype, g)
        assert C.sigmoid_backward(inplace, y, out=inplace) is inplace and np.array_equal(inplace, ref)
        row = np.broadcast_to(y[1], (rows, cols))
        assert np.array_equal(C.sigmoid_backward(g, row), g * row * (1 - row))


@pytest.mark.parametrize("op", ["tanh", "sigmoid", "tanh_backward", "sigmoid_backward"])
def test_elementwise_out_whose_elements_overlap_is_refused(K, threads, rng, op):
    """An out whose rows overlap each other (as_strided, writeable) or repeat one row (stride 0) would have
    several threads write one address in no fixed order: every elementwise kernel refuses it with a
    ValueError naming the strides, as matmul does, on every path; outs whose elements are distinct (a column
    block, a transpose, rows reversed) are still written in place."""
    from numpy.lib.stride_tricks import as_strided
    x = randn(rng, (600, 300), np.float32)
    y = np.tanh(randn(rng, (600, 300), np.float32))
    run = {"tanh": lambda out: K.tanh(x, out=out), "sigmoid": lambda out: K.sigmoid(x, out=out),
           "tanh_backward": lambda out: K.tanh_backward(x, y, out=out),
           "sigmoid_backward": lambda out: K.sigmoid_backward(x, y, out=out)}[op]
    threads(2)
    want = run(None)
    buf = np.zeros(600 * 100 + 300, np.float32)
    for strides in ((400, 4), (0, 4), (4, 4)):
        bad = as_strided(buf, (600, 300), strides, writeable=True)
        with pytest.raises(ValueError, match="overlap"):
            run(bad)
    assert not buf.any()
    wide = np.zeros((600, 700), np.float32)
    for out in (wide[:, 100:400], np.zeros((300, 600), np.float32).T, np.zeros((600, 300), np.float32)[::-1]):
        assert run(out) is out and np.array_equal(out, want)


def test_tanh_backward_strided_rows_no_copies(C, threads, rng):
    """Contiguous rows lying apart are used where they are: no temporary copies of grad, y or out (numpy
    reports its allocations to tracemalloc), where rows with a column step still go through copies."""
    import tracemalloc
    threads(2)
    gw, g = column_block(rng, 600, 300, 700, 0, np.float64)
    yw, y = column_block(rng, 600, 300, 700, 400, np.float64, 0.5)
    _, out = column_block(rng, 600, 300, 700, 200, np.float64)
    stepped_out = np.zeros((600, 600))[:, ::2]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        C.tanh_backward(g, y, out=out)
        rows_peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        C.tanh_backward(gw[:, ::2][:, :300], yw[:, ::2][:, :300], out=stepped_out)
        stepped_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert rows_peak < 64 * 1024, f"{rows_peak} bytes allocated for strided rows"
    assert stepped_peak >= g.nbytes  # the measurement sees copies
    assert np.array_equal(out, 0.75 * g)


# ---------------------------------------------------------------- sub_sqsum (the forward of mse_loss)

SQSUM_SIZES = [0, 1, 7, 8, 9, 8191, 8192, 8193, 100_000, 600_000]
SQSUM_CHUNK = 8192


def same_bits(a, b):
    return a.dtype == b.dtype and np.array_equal(np.ravel(a).view(np.uint8), np.ravel(b).view(np.uint8))


def sqsum_call(K, x, t):
    """K.sub_sqsum(x, t) with every warning an error, checking it leaves x and t alone."""
    x0, t0 = x.copy(), t.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diff, total = K.sub_sqsum(x, t)
    assert np.array_equal(x, x0, equal_nan=True) and np.array_equal(t, t0, equal_nan=True)
    return diff, total


def assert_sqsum(K, x, t):
    """K.sub_sqsum(x, t): the difference a new C-contiguous array of x's shape and dtype, bitwise
    np.subtract(x, t); the sum a Python float within the bound of a double-precision sum in chunks of 8192
    (eight accumulators each, then the chunks in order) of the exact sum (math.fsum) of the float64 squares of
    that difference.  Returns (diff, sum)."""
    diff, total = sqsum_call(K, x, t)
    want = np.ascontiguousarray(np.subtract(x, t))
    assert isinstance(diff, np.ndarray) and diff.flags.c_contiguous
    assert diff.shape == x.shape and diff.dtype == x.dtype
    assert not np.shares_memory(diff, x) and not np.shares_memory(diff, t)
    assert same_bits(diff, want)
    assert type(total) is float
    d = want.astype(np.float64).ravel()
    exact = math.fsum(d * d)
    n = x.size
    # Sums of non-negative terms: (terms - 1) roundings of 2**-53 relative each, along the longest path
    # (an accumulator's share of a chunk, the tree of eight, the chunks), one more for each square; margin 2.
    terms = -(-min(n, SQSUM_CHUNK) // 8) + 3 + -(-n // SQSUM_CHUNK) + 1
    assert abs(total - exact) <= 2 * terms * 2.0 ** -53 * exact, (total, exact)
    return diff, total


def sqsum_operands(rng, shape, dtype):
    """x and t of standard normal values, every 5th element of x scaled up by 1e3 (a range of magnitudes)."""
    x, t = randn(rng, shape, dtype), randn(rng, shape, dtype)
    x.reshape(-1)[::5] *= 1000
    return x, t


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SQSUM_SIZES)
def test_sub_sqsum_sizes(K, rng, dtype, n):
    """Around the eight accumulators and the 8192-element chunks, and large enough to be split over
    threads (600000)."""
    x, t = sqsum_operands(rng, n, dtype)
    diff, total = assert_sqsum(K, x, t)
    if n == 0:
        assert diff.shape == (0,) and total == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sub_sqsum_strided_and_mixed_layouts(K, rng, dtype):
    """Strided slices (reversed too), one operand contiguous and the other not, broadcast and misaligned
    operands, and a stepped view of 600000 elements (copied, then split over threads)."""
    x, t = sqsum_operands(rng, (6, 40, 50), dtype)
    cases = [(x[:, ::3, ::-2], t[:, ::3, ::-2]), (x[::-1, 1:], t[::-1, :-1]), (x[..., 7], t[..., 7]),
             (x.transpose(2, 0, 1), np.ascontiguousarray(t.transpose(2, 0, 1))),
             (np.ascontiguousarray(x.T), t.T), (x[2:, ::2], t[:4, 1::2]),
             (x, np.broadcast_to(t[0], x.shape)), (x.reshape(-1)[:0], t.reshape(-1)[3:3])]
    for xs, ts in cases:
        assert_sqsum(K, xs, ts)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    unaligned = raw[1:].view(dtype).reshape(x.shape)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    assert np.array_equal(assert_sqsum(K, unaligned, t)[0], assert_sqsum(K, x, t)[0])
    big, bt = sqsum_operands(rng, (1_200_000,), dtype)
    assert_sqsum(K, big[::2], bt[1::2])
    assert_sqsum(K, big[::2], np.ascontiguousarray(bt[1::2]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["transposed", "fortran", "0-d"])
def test_sub_sqsum_result_is_c_contiguous(K, rng, dtype, kind):
    """Both operands in one non-C layout (transposed, Fortran order) or 0-d: the difference is still a new
    C-contiguous array of x's shape."""
    x, t = sqsum_operands(rng, (6, 40, 50), dtype)
    if kind == "transposed":
        x, t = x.transpose(2, 0, 1), t.transpose(2, 0, 1)
    elif kind == "fortran":
        x, t = np.asfortranarray(x[0]), np.asfortranarray(t[0])
    else:
        x, t = x[0, 0, 0, ...], t[0, 0, 0, ...]
    assert_sqsum(K, x, t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sub_sqsum_special_values(K, rng, dtype):
    """inf and nan are values (as in torch), without warnings: inf - finite gives an infinite sum, nan and
    inf - inf a nan one, in short arrays and anywhere in a long one (whatever its chunk or thread); the
    difference keeps its bits (signed zeros, nan, subnormals)."""
    inf, nan = np.inf, np.nan
    f = np.finfo(dtype)
    cases = [([inf], [1.0], inf), ([-inf], [1.0], inf), ([1.0], [inf], inf), ([1.0, 2.0], [-inf, 0.0], inf),
             ([nan], [1.0], nan), ([1.0], [nan], nan), ([inf], [inf], nan), ([-inf, 1.0], [-inf, 1.0], nan),
             ([inf, nan], [1.0, 1.0], nan), ([f.max], [-f.max], inf), ([-0.0, 0.0], [0.0, -0.0], 0.0)]
    for xs, ts, want in cases:
        x, t = np.array(xs, dtype), np.array(ts, dtype)
        diff, total = sqsum_call(K, x, t)
        with np.errstate(all="ignore"):
            assert same_bits(diff, np.subtract(x, t))
        assert (math.isnan(total) if math.isnan(want) else total == want), (xs, ts, total)
    x, t = sqsum_operands(rng, 600_000, dtype)
    for where in (0, 8191, 8192, 333_333, 599_999):
        for value, want in ((inf, inf), (-inf, inf), (nan, nan)):
            xv = x.copy()
            xv[where] = value
            diff, total = sqsum_call(K, xv, t)
            assert same_bits(diff[where], np.array(value, dtype))
            assert (math.isnan(total) if math.isnan(want) else total == want), (where, value, total)
        xv, tv = x.copy(), t.copy()
        xv[where] = tv[where] = inf
        assert math.isnan(sqsum_call(K, xv, tv)[1])
    # Squares and their sum in double: a float32 difference of 1e30, 1e-30, max or a subnormal is neither
    # inf nor 0 squared; a float64 one past 1e154 overflows to inf (quietly), one below 1e-162 to 0.
    wide = [1e200, -1e-200] if dtype is np.float64 else []
    for v in [1e30, 1e-30, -3e-38, f.smallest_subnormal, -2 * f.smallest_subnormal, f.max] + wide:
        x = np.array([v, 0.0], dtype)
        diff, total = sqsum_call(K, x, np.zeros(2, dtype))
        d = float(x[0])
        assert same_bits(diff, x) and total == d * d, (v, total)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sub_sqsum_threads_bitwise_identical(C, threads, rng, dtype):
    """The difference and the sum have the same bits on 1, 2 and 3 threads: below and above the size from
    which sleeping pool threads are woken, contiguous and strided."""
    x, t = sqsum_operands(rng, (1_200_000,), dtype)
    operands = [(x[:40_000], t[:40_000]), (x[:100_000], t[:100_000]), (x[:600_000], t[:600_000]),
                (x[::2], t[1::2]), (x, t)]
    threads(1)
    want = [assert_sqsum(C, a, b) for a, b in operands]
    for nt in (2, 3, 1):
        threads(nt)
        assert _backend.get_num_threads() == nt
        for (a, b), (diff, total) in zip(operands, want):
            got_diff, got_total = sqsum_call(C, a, b)
            assert same_bits(got_diff, diff)
            assert got_total.hex() == total.hex(), (nt, a.size)


def test_sub_sqsum_rejects_bad_input(K):
    x = np.ones((2, 3))
    for bad in ([[1.0] * 3] * 2, 1.0, None, np.ones((2, 3)).tolist()):
        with pytest.raises(TypeError, match="numpy.ndarray"):
            K.sub_sqsum(bad, x)
        with pytest.raises(TypeError, match="numpy.ndarray"):
            K.sub_sqsum(x, bad)
    for bad in (np.int64, np.int32, np.uint8, np.bool_, np.float16, np.complex128, object, ">f8", ">f4"):
        with pytest.raises(TypeError, match="dtype"):
            K.sub_sqsum(np.ones((2, 3), bad), np.ones((2, 3), bad))
        with pytest.raises(TypeError, match="dtype"):
            K.sub_sqsum(x, np.ones((2, 3), bad))
    with pytest.raises(TypeError, match="float64.*float32"):
        K.sub_sqsum(x, np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="float32.*float64"):
        K.sub_sqsum(np.ones(0, np.float32), np.ones(0))
    mismatched = [((2, 3), (3, 2)), ((2, 3), (3,)), ((3,), (3, 1)), ((), (1,)), ((6,), (2, 3)),
                  ((0,), (0, 0))]
    for a, b in mismatched:
        with pytest.raises(ValueError, match="shape"):
            K.sub_sqsum(np.ones(a), np.ones(b))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        K.sub_sqsum(x, np.ones((3, 2)))


# ---------------------------------------------------------------- sum_rows (a bias's gradient)

SUM_ROWS_SHAPES = [(0, 5), (5, 0), (1, 1), (1, 300), (15, 3), (16, 257), (17, 256), (255, 7), (256, 513),
                   (257, 1), (2048, 128), (3000, 600)]


def sum_rows_call(K, a):
    """K.sum_rows(a) with every warning an error, checking it leaves a alone and returns a new (N,) array."""
    a0 = a.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = K.sum_rows(a)
    assert np.array_equal(a, a0, equal_nan=True)
    assert isinstance(out, np.ndarray) and out.shape == (a.shape[1],) and out.dtype == a.dtype
    assert out.flags.c_contiguous and not np.shares_memory(out, a)
    return out


def assert_sum_rows(K, a):
    """K.sum_rows(a) within the error bound of a blocked or pairwise sum of each column's exact sum
    (math.fsum): (20 + log2 M) roundings of the element type relative to the column's sum of magnitudes,
    plus the final one.  A plain running sum in float32 breaks it (see test_sum_rows_is_not_a_running_sum)."""
    out = sum_rows_call(K, a)
    M, N = a.shape
    eps = float(np.finfo(a.dtype).eps)
    wide = a.astype(np.float64)
    for j in range(N):
        exact = math.fsum(wide[:, j])
        bound = (20 + math.log2(max(M, 1))) * eps * float(np.abs(wide[:, j]).sum()) + eps * abs(exact)
        assert abs(float(out[j]) - exact) <= bound, (a.shape, j, float(out[j]), exact)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SUM_ROWS_SHAPES)
def test_sum_rows_sizes(K, rng, dtype, shape):
    """Around the 16-row blocks, the 256-row groups and the 256-column tasks; empty sums are zeros."""
    a = randn(rng, shape, dtype)
    a.reshape(-1)[::7] *= 1000
    out = assert_sum_rows(K, a)
    if shape[0] == 0:
        assert same_bits(out, np.zeros(shape[1], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_rows_strided_and_odd_layouts(K, rng, dtype):
    """Rows any distance apart (stepped, reversed, broadcast with stride 0), columns that are not contiguous
    (stepped, Fortran order, a transpose), unaligned data: each as numpy's sum of the same values."""
    a = randn(rng, (600, 300), dtype)
    raw = np.zeros(a.nbytes + 1, np.uint8)
    unaligned = raw[1:].view(dtype).reshape(a.shape)
    unaligned[...] = a
    assert not unaligned.flags.aligned
    cases = [a[::3], a[::-1], a[1:, 5:], a[:, ::2], a[::2, ::-3], np.asfortranarray(a), a.T,
             np.broadcast_to(a[7], (500, 300)), unaligned]
    for view in cases:
        out = assert_sum_rows(K, view)
        assert same_bits(out, sum_rows_call(K, np.ascontiguousarray(view))) or K is _reference
    if K is not _reference:
        assert same_bits(sum_rows_call(K, unaligned), sum_rows_call(K, a))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_rows_special_values(K, dtype):
    """inf, nan and signed zeros are values, without warnings; float32 columns past the largest float32 are
    inf, not wrapped or nan.  (A column of -0.0 sums to -0.0 in the kernels, to a zero in numpy.)"""
    inf, nan, big = np.inf, np.nan, np.finfo(dtype).max
    cols = {"inf": ([1.0] * 40 + [inf] + [2.0] * 20, inf), "-inf": ([-inf] + [1.0] * 300, -inf),
            "nan": ([1.0] * 100 + [nan], nan), "inf-inf": ([inf] * 3 + [-inf], nan),
            "-0": ([-0.0] * 40, -0.0), "+0": ([0.0, -0.0] * 20, 0.0), "max": ([big] * 4, inf)}
    for name, (col, want) in cols.items():
        a = np.array(col, dtype)[:, None] * np.ones((1, 3), dtype)
        out = sum_rows_call(K, a)
        if math.isnan(want):
            assert np.isnan(out).all(), name
        elif K is _reference and name == "-0":
            assert (out == 0).all(), out
        else:
            assert same_bits(out, np.full(3, want, dtype)), (name, out)


def test_sum_rows_is_not_a_running_sum(K):
    """A float32 column of 1e8 then 10000 ones: a running float32 sum never moves off 1e8 (its ulp there is
    8), numpy's pairwise sum and minigrad's blocked one get within 16 of 100010000."""
    a = np.ones((10_001, 2), np.float32)
    a[0] = 1e8
    out = assert_sum_rows(K, a)
    assert abs(float(out[0]) - 100_010_000) <= 16


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_rows_bitwise_identical_across_threads_and_paths(C, threads, rng, dtype):
    """The order of the additions is fixed: the same bits on 1, 2 and 3 threads and on every kernel path,
    below and above the sizes from which pool threads share the work."""
    a = randn(rng, (3000, 1100), dtype)
    a.reshape(-1)[::11] *= 1e4
    views = [a[:20, :300], a[:100, :700], a, a[::2, 3:], a[:, :256]]
    threads(1)
    want = [sum_rows_call(C, v) for v in views]
    for nt in (2, 3, 1):
        threads(nt)
        for v, w in zip(views, want):
            assert same_bits(sum_rows_call(C, v), w), (nt, v.shape)
    previous = C.isa()
    try:
        for isa in C.available_isas():
            C.set_isa(isa)
            for v, w in zip(views, want):
                assert same_bits(sum_rows_call(C, v), w), (isa, v.shape)
    finally:
        C.set_isa(previous)


def test_sum_rows_rejects_bad_input(K):
    for bad in ([[1.0, 2.0]], 1.0, None):
        with pytest.raises(TypeError, match="numpy.ndarray"):
            K.sum_rows(bad)
    for bad in (np.int64, np.int32, np.uint8, np.bool_, np.float16, np.complex128, object, ">f8", ">f4"):
        with pytest.raises(TypeError, match="dtype"):
            K.sum_rows(np.ones((2, 3), bad))
    for shape in [(), (3,), (2, 3, 4), (1, 1, 1, 1)]:
        with pytest.raises(ValueError, match="2-D"):
            K.sum_rows(np.ones(shape))


# ---------------------------------------------------------------- paths, threads, backend selection

def test_isa_selection(K):
    isas = K.available_isas()
    assert K.isa() in isas
    with pytest.raises(ValueError, match="bogus"):
        K.set_isa("bogus")
    with pytest.raises(TypeError):
        K.set_isa(2)
    if K is _backend and _backend.name == "c":
        assert isas[-1] == "portable" and set(isas) <= {"avx512", "avx2", "portable"}


@pytest.mark.parametrize("impl", [_backend, _reference], ids=["backend", "reference"])
def test_num_threads(impl):
    previous = impl.get_num_threads()
    try:
        impl.set_num_threads(np.int64(1))
        assert impl.get_num_threads() == 1
        impl.set_num_threads(2)
        single = impl is _backend and _backend.name == "c" and not _backend.openmp()
        assert impl.get_num_threads() == (1 if single else 2)
        for bad in (0, -1):
            with pytest.raises(ValueError):
                impl.set_num_threads(bad)
        for bad in (1.5, "2", None, True):
            with pytest.raises(TypeError):
                impl.set_num_threads(bad)
    finally:
        impl.set_num_threads(previous)


def test_info():
    info = _backend.info()
    assert info["backend"] == _backend.name in ("c", "numpy")
    assert info["isa"] == _backend.isa() and info["num_threads"] == _backend.get_num_threads()
    assert info["parallel"] == ("pool" if _backend.openmp() else "none")
    assert info["abi_version"] == (_backend.ABI_VERSION if _backend.name == "c" else None)


@pytest.mark.skipif(not os.path.isfile(os.path.join(REPO, "setup.py")), reason="needs the source tree")
def test_source_patterns_match_setup():
    """_backend's staleness check must hash exactly the files setup.py hashes."""
    with open(os.path.join(REPO, "setup.py")) as f:
        tree = ast.parse(f.read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "source_files")
    pats = next(ast.literal_eval(n.value) for n in ast.walk(fn)
                if isinstance(n, ast.Assign) and n.targets[0].id == "pats")
    assert pats == _backend._SOURCE_PATTERNS


def test_source_hash_sees_edits(tmp_path):
    (tmp_path / "_ext").mkdir()
    (tmp_path / "_ext" / "k.c").write_text("int x;")
    (tmp_path / "_ext" / "_kernels.c").write_text("generated")
    h = _backend._source_hash(str(tmp_path))
    (tmp_path / "_ext" / "_kernels.c").write_text("regenerated")
    assert _backend._source_hash(str(tmp_path)) == h
    (tmp_path / "_ext" / "k.c").write_text("int y;")
    assert _backend._source_hash(str(tmp_path)) != h


def run_backend(env, code="import minigrad._backend as b; print(b.name, b.isa(), b.get_num_threads())"):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MINIGRAD_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, cwd=REPO,
                          check=False)


def test_environment_variables():
    r = run_backend({"MINIGRAD_BACKEND": "numpy", "MINIGRAD_NUM_THREADS": "3"})
    assert r.returncode == 0 and r.stdout.split() == ["numpy", "numpy-reference", "3"], r.stderr
    r = run_backend({"MINIGRAD_BACKEND": "bogus"})
    assert r.returncode != 0 and "MINIGRAD_BACKEND" in r.stderr
    r = run_backend({"MINIGRAD_BACKEND": "numpy", "MINIGRAD_NUM_THREADS": "zero"})
    assert r.returncode != 0 and "MINIGRAD_NUM_THREADS" in r.stderr
    if _backend.name == "c":
        r = run_backend({"MINIGRAD_ISA": "portable", "OMP_NUM_THREADS": "1,2"})
        assert r.returncode == 0 and r.stdout.split() == ["c", "portable", "1"], r.stderr
        r = run_backend({"MINIGRAD_ISA": "bogus"})
        assert r.returncode != 0 and "bogus" in r.stderr


def test_missing_extension_message():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'minigrad._kernels':\n"
            "            raise ImportError('blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import minigrad._backend\n")
    r = run_backend({"MINIGRAD_BACKEND": "c"}, code)
    assert r.returncode != 0 and "pip install -e ." in r.stderr and "MINIGRAD_BACKEND=numpy" in r.stderr
