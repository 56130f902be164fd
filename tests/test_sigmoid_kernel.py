"""The sigmoid kernel (minigrad._backend.sigmoid / sigmoid_backward) on every kernel path this CPU has and
on the NumPy reference: ulp bounds against float64 / long double references, special values, layouts,
thread counts, and Tensor.sigmoid against torch."""
import numpy as np
import pytest
import torch

import minigrad as mg

DTYPES = [np.float32, np.float64]


def exact_sigmoid(x):
    """sigmoid in float64 for float32 x (exact to far below a float32 ulp), in long double for float64 x."""
    wide = np.float64 if x.dtype == np.float32 else np.longdouble
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x.astype(wide)))


def ulp_error(y, ref):
    """|y - ref| in units of the spacing of ref rounded to y's dtype (subnormal spacing where ref is)."""
    spacing = np.spacing(np.abs(ref.astype(y.dtype))).astype(ref.dtype)
    return np.abs(y.astype(ref.dtype) - ref) / spacing


def float32_sample():
    """Every 193rd positive float32 (subnormal inputs and both saturation regions included) plus dense runs
    where the formula changes regime: n = 0 / 1 (ln2/2), the worst cases seen (0.8705, 14.84), the last
    results above 0 (103.97) and below 1 (17.33), and the subnormal results (87.3)."""
    bits = np.arange(0, 0x7F800000, 193, dtype=np.uint32)
    near = [0.34657359, 0.870463, 14.844611, 103.972, 17.3287, 87.3365, 1.0]
    runs = [np.arange(np.float32(c).view(np.uint32) - 20000, np.float32(c).view(np.uint32) + 20000,
                      dtype=np.uint32) for c in near]
    return np.concatenate([bits] + runs).view(np.float32)


def test_sigmoid_float32_ulp(K):
    x = float32_sample()
    for xs in (x, -x):
        err = ulp_error(K.sigmoid(xs), exact_sigmoid(xs))
        assert err.max() <= 2.0, f"{err.max()} ulp at x={xs[np.argmax(err)]!r}"


def test_sigmoid_float64_ulp(K, rng):
    """Against long double: log-uniform magnitudes from subnormal inputs to past the zero threshold (745.1),
    dense in the range where the result is neither 1/2 nor 0 nor 1, and the subnormal results."""
    mags = [10.0 ** rng.uniform(-320, np.log10(760.0), 400_000), rng.uniform(0.0, 40.0, 400_000),
            rng.uniform(0.3, 0.4, 50_000), rng.uniform(700.0, 746.0, 50_000)]
    x = np.concatenate(mags)
    x = np.concatenate([x, -x])
    err = ulp_error(K.sigmoid(x), exact_sigmoid(x))
    assert err.max() <= 2.0, f"{err.max()} ulp at x={x[np.argmax(err)]!r}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_special_values(K, dtype):
    f = np.finfo(dtype)
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, f.smallest_subnormal, -f.smallest_subnormal,
                  f.max, -f.max], dtype)
    y = K.sigmoid(x)
    assert np.isnan(y[:2]).all()
    assert list(y[2:]) == [1.0, 0.0, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0]
    # Exactly 1 where the exact value rounds to 1, the largest value below 1 just before; exactly 0 where it
    # rounds to 0, subnormal results (correctly rounded within the bound) before that.
    one, zero = (17.34, 103.98) if dtype is np.float32 else (37.44, 745.14)
    below_one, tiny = (17.3, 103.9) if dtype is np.float32 else (37.4, 745.1)
    assert np.all(K.sigmoid(np.linspace(one, 1e4, 1000, dtype=dtype)) == 1.0)
    assert np.all(K.sigmoid(np.linspace(-zero, -1e4, 1000, dtype=dtype)) == 0.0)
    assert K.sigmoid(np.array([below_one], dtype))[0] == 1 - f.epsneg
    sub = -np.linspace(-np.log(f.smallest_normal) + 0.01, tiny, 5000).astype(dtype)
    ys = K.sigmoid(sub)
    assert np.all((ys > 0) & (ys < f.smallest_normal))
    assert ulp_error(ys, exact_sigmoid(sub)).max() <= 2.0


def test_sigmoid_saturates_like_numpy_and_torch(K):
    """Where numpy's 1 / (1 + exp(-x)) and torch give exactly 0 or 1 (far out), so does the kernel."""
    for dtype in DTYPES:
        x = np.concatenate([np.linspace(40, 1e30, 500), -np.linspace(800, 1e30, 500)]).astype(dtype)
        with np.errstate(over="ignore"):
            want = 1 / (1 + np.exp(-x))
        assert np.array_equal(K.sigmoid(x), want)
        assert np.array_equal(K.sigmoid(x), torch.sigmoid(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 7, 8, 15, 16, 17, 63, 65, 100, 70_001])
def test_sigmoid_lengths_and_tails(K, rng, dtype, n):
    x = rng.uniform(-20, 20, n).astype(dtype)
    assert ulp_error(K.sigmoid(x), exact_sigmoid(x)).max() <= 2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_layouts_and_out(K, rng, dtype):
    base = rng.uniform(-8, 8, (6, 40, 10)).astype(dtype)
    for x in (base, base[:, ::3, ::-2], base.transpose(2, 0, 1), np.asfortranarray(base), base[0, 0, 0, ...]):
        ref = exact_sigmoid(x)
        y = K.sigmoid(x)
        assert y.shape == x.shape and y.dtype == dtype and y.flags.c_contiguous
        assert ulp_error(y, ref).max() <= 2.0
        out = np.full((2,) + x.shape, np.nan, dtype)[1, ...]
        assert K.sigmoid(x, out=out) is out
        assert ulp_error(out, ref).max() <= 2.0
        strided = np.zeros(x.shape[::-1], dtype).T
        K.sigmoid(x, out=strided)
        assert ulp_error(strided, ref).max() <= 2.0
    x = base[:, ::2].copy(order="F")[:, ::-1]
    ref = exact_sigmoid(x)
    assert K.sigmoid(x, out=x) is x
    assert ulp_error(x, ref).max() <= 2.0
    assert K.sigmoid(np.empty((0, 3), dtype)).shape == (0, 3)


def test_sigmoid_does_not_depend_on_position(K, rng):
    """Each element gets the same bits wherever it sits: in a block of four vectors, a single vector, the
    tail or alone."""
    for dtype in DTYPES:
        x = (rng.standard_normal(64 * 40 + 23) * 8).astype(dtype)
        x[::7] *= 12  # some lanes saturated or subnormal
        whole = K.sigmoid(x)
        pieces = np.concatenate([K.sigmoid(x[i:i + 16].copy()) for i in range(0, len(x), 16)])
        alone = np.concatenate([K.sigmoid(x[i:i + 1].copy()) for i in range(0, len(x), 37)])
        assert np.array_equal(whole.view(np.uint8), pieces.view(np.uint8))
        assert np.array_equal(whole[::37].copy().view(np.uint8), alone.view(np.uint8))


def test_sigmoid_threads_bitwise_identical(C, threads, rng):
    for dtype in DTYPES:
        for n in (20_000, 200_003):
            x = rng.uniform(-30, 30, n).astype(dtype)
            g = rng.standard_normal(n).astype(dtype)
            y = exact_sigmoid(x).astype(dtype)
            threads(1)
            y1, b1 = C.sigmoid(x), C.sigmoid_backward(g, y)
            for nt in (2, 3):
                threads(nt)
                assert np.array_equal(C.sigmoid(x), y1) and np.array_equal(C.sigmoid_backward(g, y), b1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_subnormal_results_cost_no_more_than_normal_ones(C, threads, dtype):
    """Where every result is subnormal (a saturated LSTM gate), no floating-point operation may underflow:
    an Intel core takes a microcode assist for each such result, and the AVX-512 path once ran 26x slower
    there than on ordinary inputs.  The AVX2 path still multiplies (an assist per lane), so only AVX-512."""
    import time
    if C.isa() != "avx512":
        pytest.skip("the AVX2 and portable paths round subnormal results with a multiplication")
    threads(1)
    rng = np.random.default_rng(3)
    edge = 88.0 if dtype == np.float32 else 709.0  # past it every result is subnormal (or 0)
    tiny = -rng.uniform(edge, edge + 12, 1 << 16).astype(dtype)
    usual = rng.uniform(-6, 6, 1 << 16).astype(dtype)
    assert (C.sigmoid(tiny) < np.finfo(dtype).tiny).all()
    best = {}
    for _ in range(7):
        for name, x in (("tiny", tiny), ("usual", usual)):
            start = time.perf_counter()
            C.sigmoid(x)
            best[name] = min(best.get(name, 1.0), time.perf_counter() - start)
    assert best["tiny"] < 4 * best["usual"], best


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_backward_is_numpys_composition(K, rng, dtype):
    """(g * y) * (1 - y): IEEE products and a difference, the bits of numpy's g * y * (1 - y) on every path,
    also strided, in place and around the vector widths; within 2 roundings of torch's order."""
    y = np.concatenate([exact_sigmoid(rng.uniform(-20, 20, 50_001)), [0.0, 1.0, 0.5, 1e-40]]).astype(dtype)
    g = rng.standard_normal(y.shape).astype(dtype)
    want = g * y * (1 - y)
    assert np.array_equal(K.sigmoid_backward(g, y), want)
    assert np.array_equal(K.sigmoid_backward(g[::-3], y[::-3]), want[::-3])
    for n in (1, 7, 9, 17, 33):
        assert np.array_equal(K.sigmoid_backward(g[:n], y[:n]), want[:n])
    inplace = g.copy()
    assert K.sigmoid_backward(inplace, y, out=inplace) is inplace
    assert np.array_equal(inplace, want)
    theirs = torch.ops.aten.sigmoid_backward(torch.from_numpy(g), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(want, theirs, rtol=4 * np.finfo(dtype).eps, atol=0)


def test_sigmoid_rejects_bad_input(K):
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.sigmoid([0.5, 1.0])
    for bad in (np.int64, np.complex64, np.bool_, np.float16, object, ">f8"):
        with pytest.raises(TypeError, match="dtype"):
            K.sigmoid(np.zeros(3, bad))
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shape"):
        K.sigmoid(x, out=np.zeros((3, 2)))
    with pytest.raises(TypeError, match="dtype"):
        K.sigmoid(x, out=np.zeros((2, 3), np.float32))
    ro = np.zeros((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.sigmoid(x, out=ro)
    buf = np.zeros(10)
    with pytest.raises(ValueError, match="overlaps"):
        K.sigmoid(buf[:8], out=buf[2:])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        K.sigmoid_backward(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="float32.*float64"):
        K.sigmoid_backward(np.ones(3, np.float32), np.ones(3))
    with pytest.raises(TypeError, match="dtype"):
        K.sigmoid_backward(np.ones(3, np.int32), np.ones(3, np.int32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.sigmoid_backward([1.0], np.ones(1))
    with pytest.raises(ValueError, match="overlaps"):
        K.sigmoid_backward(buf[:8], np.ones(8), out=buf[1:9])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_sigmoid_matches_torch(dtype, rng):
    """Tensor.sigmoid and its gradient against torch, with saturated and subnormal-result elements."""
    x = np.concatenate([rng.uniform(-12, 12, 997), [-200.0, 200.0, -100.0, 0.0, -0.0, 40.0]])
    w = rng.standard_normal(x.shape)
    tx = torch.tensor(x, dtype=dtype, requires_grad=True)
    (torch.sigmoid(tx) * torch.tensor(w, dtype=dtype)).sum().backward()
    npd = np.float32 if dtype is torch.float32 else np.float64
    mx = mg.tensor(x.astype(npd), requires_grad=True)
    y = mx.sigmoid()
    (y * mg.tensor(w.astype(npd))).sum().backward()
    np.testing.assert_allclose(y.numpy(), torch.sigmoid(tx).detach().numpy(), rtol=4 * np.finfo(npd).eps,
                               atol=np.finfo(npd).tiny)
    # y (1 - y) amplifies y's relative error by up to y / (1 - y): bound the difference by 4 eps |w| y
    # (torch flushes sigmoid(-100) to 0 in float32, hence an absolute tiny)
    eps = np.finfo(npd).eps
    diff = np.abs(mx.grad.numpy().astype(np.float64) - tx.grad.numpy())
    assert np.all(diff <= 4 * eps * (np.abs(w) * y.numpy() + np.abs(tx.grad.numpy())) + np.finfo(npd).tiny)
    assert ulp_error(y.numpy(), exact_sigmoid(x.astype(npd))).max() <= 2.0
    yv = y.numpy()
    assert np.array_equal(mx.grad.numpy(), w.astype(npd) * yv * (1 - yv))
