"""The gated cells' fused epilogues (minigrad._backend.lstm_forward / lstm_backward / gru_forward /
gru_backward) on every kernel path and on the NumPy reference: bitwise the composition of the sigmoid and
tanh kernels with numpy's products and sums, close to torch's cells and their autograd gradients, every
layout they accept, thread counts, and the errors for bad operands."""
import numpy as np
import pytest
import torch

from minigrad import _backend, _reference

DTYPES = [np.float32, np.float64]
SIZES = [(1, 1), (3, 5), (2, 16), (4, 17), (1, 33), (32, 128), (7, 100)]


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------- the compositions, op by op

def lstm_forward_ops(K, gates, c_prev):
    H = c_prev.shape[1]
    i, f, o = K.sigmoid(gates[:, :H]), K.sigmoid(gates[:, H:2 * H]), K.sigmoid(gates[:, 3 * H:])
    g = K.tanh(gates[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    tanh_c = K.tanh(c)
    return np.concatenate([i, f, g, o], axis=1), c, tanh_c, o * tanh_c


def lstm_backward_ops(K, dh, dc, act, c_prev, tanh_c):
    H = dh.shape[1]
    i, f, g, o = (act[:, k * H:(k + 1) * H] for k in range(4))
    dct = K.tanh_backward(dh * o, tanh_c)
    if dc is not None:
        dct = dc + dct
    d_gates = np.concatenate([K.sigmoid_backward(dct * g, i), K.sigmoid_backward(dct * c_prev, f),
                              K.tanh_backward(dct * i, g), K.sigmoid_backward(dh * tanh_c, o)], axis=1)
    return d_gates, dct * f


def gru_forward_ops(K, xg, hg, h_prev):
    H = h_prev.shape[1]
    r = K.sigmoid(xg[:, :H] + hg[:, :H])
    z = K.sigmoid(xg[:, H:2 * H] + hg[:, H:2 * H])
    n = K.tanh(xg[:, 2 * H:] + r * hg[:, 2 * H:])
    return np.concatenate([r, z, n], axis=1), (1 - z) * n + z * h_prev


def gru_backward_ops(K, dh, act, hn, h_prev):
    H = dh.shape[1]
    r, z, n = (act[:, k * H:(k + 1) * H] for k in range(3))
    dn = K.tanh_backward(dh * (1 - z), n)
    dr = K.sigmoid_backward(dn * hn, r)
    dz = K.sigmoid_backward(dh * h_prev + -(dh * n), z)
    return np.concatenate([dr, dz, dn], axis=1), np.concatenate([dr, dz, dn * r], axis=1), dh * z


def assert_same(got, want, K):
    """Bitwise on the kernel paths; within a few roundings on the NumPy reference (its own sigmoid)."""
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        if K is _reference:
            np.testing.assert_allclose(a, b, rtol=64 * np.finfo(a.dtype).eps, atol=16 * np.finfo(a.dtype).eps)
        else:
            assert np.array_equal(a.view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


def lstm_case(rng, B, H, dtype):
    gates = randn(rng, (B, 4 * H), dtype, 3.0)
    gates.reshape(-1)[::11] *= 8  # some gates saturated
    return gates, randn(rng, (B, H), dtype, 2.0)


def gru_case(rng, B, H, dtype):
    return randn(rng, (B, 3 * H), dtype, 2.0), randn(rng, (B, 3 * H), dtype, 2.0), randn(rng, (B, H), dtype)


# ---------------------------------------------------------------- bitwise the plain ops

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H", SIZES)
def test_lstm_is_the_composition(K, rng, dtype, B, H):
    gates, c_prev = lstm_case(rng, B, H, dtype)
    fwd = K.lstm_forward(gates, c_prev)
    assert_same(fwd, lstm_forward_ops(K, gates, c_prev), K)
    act, _, tanh_c, _ = fwd
    dh, dc = randn(rng, (B, H), dtype), randn(rng, (B, H), dtype)
    for d in (dc, None):
        assert_same(K.lstm_backward(dh, d, act, c_prev, tanh_c), lstm_backward_ops(K, dh, d, act, c_prev, tanh_c),
                    K)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H", SIZES)
def test_gru_is_the_composition(K, rng, dtype, B, H):
    xg, hg, h_prev = gru_case(rng, B, H, dtype)
    fwd = K.gru_forward(xg, hg, h_prev)
    assert_same(fwd, gru_forward_ops(K, xg, hg, h_prev), K)
    dh = randn(rng, (B, H), dtype)
    got = K.gru_backward(dh, fwd[0], hg[:, 2 * H:], h_prev)
    assert_same(got, gru_backward_ops(K, dh, fwd[0], hg[:, 2 * H:], h_prev), K)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gates_empty(K, dtype):
    for B, H in ((0, 4), (3, 0), (0, 0)):
        e = np.empty
        act, c, tanh_c, h = K.lstm_forward(e((B, 4 * H), dtype), e((B, H), dtype))
        assert act.shape == (B, 4 * H) and h.shape == (B, H) and h.dtype == dtype
        dg, dcp = K.lstm_backward(e((B, H), dtype), None, act, c, tanh_c)
        assert dg.shape == (B, 4 * H) and dcp.shape == (B, H)
        act, h = K.gru_forward(e((B, 3 * H), dtype), e((B, 3 * H), dtype), e((B, H), dtype))
        assert act.shape == (B, 3 * H) and h.shape == (B, H)
        got = K.gru_backward(e((B, H), dtype), act, e((B, H), dtype), e((B, H), dtype))
        assert [a.shape for a in got] == [(B, 3 * H), (B, 3 * H), (B, H)]


# ---------------------------------------------------------------- against torch

@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_matches_torch_autograd(K, rng, dtype):
    """Forward values and every gradient of torch's cell written from its ops (LSTMCell's formulas)."""
    B, H = 6, 21
    gates, c_prev = lstm_case(rng, B, H, dtype)
    dh, dc = randn(rng, (B, H), dtype), randn(rng, (B, H), dtype)
    tg = torch.tensor(gates, requires_grad=True)
    tc = torch.tensor(c_prev, requires_grad=True)
    i, f, g, o = tg.chunk(4, 1)
    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
    c = f * tc + i * g
    h = o * c.tanh()
    (h * torch.tensor(dh)).sum().add((c * torch.tensor(dc)).sum()).backward()
    act, c_m, tanh_c, h_m = K.lstm_forward(gates, c_prev)
    d_gates, dc_prev = K.lstm_backward(dh, dc, act, c_prev, tanh_c)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype is np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(act, torch.cat([i, f, g, o], 1).detach().numpy(), **tol)
    np.testing.assert_allclose(c_m, c.detach().numpy(), **tol)
    np.testing.assert_allclose(h_m, h.detach().numpy(), **tol)
    np.testing.assert_allclose(d_gates, tg.grad.numpy(), **tol)
    np.testing.assert_allclose(dc_prev, tc.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_matches_torch_gru_cell(K, rng, dtype):
    """h' of torch.nn.GRUCell and the gradients of its input, hidden state and weights (through the gate
    gradients: d W_ih = d_xg.T @ x, d W_hh = d_hg.T @ h, dh = dh_prev + d_hg @ W_hh)."""
    B, I, H = 5, 7, 19
    cell = torch.nn.GRUCell(I, H, dtype=torch.float64 if dtype is np.float64 else torch.float32)
    x = torch.tensor(randn(rng, (B, I), dtype), requires_grad=True)
    hx = torch.tensor(randn(rng, (B, H), dtype), requires_grad=True)
    dh = randn(rng, (B, H), dtype)
    out = cell(x, hx)
    (out * torch.tensor(dh)).sum().backward()
    w_ih, w_hh = cell.weight_ih.detach().numpy(), cell.weight_hh.detach().numpy()
    xn, hn_prev = x.detach().numpy(), hx.detach().numpy()
    xg = xn @ w_ih.T + cell.bias_ih.detach().numpy()
    hg = hn_prev @ w_hh.T + cell.bias_hh.detach().numpy()
    act, h = K.gru_forward(xg, hg, hn_prev)
    d_xg, d_hg, dh_prev = K.gru_backward(dh, act, hg[:, 2 * H:], hn_prev)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype is np.float32 else {"rtol": 1e-11, "atol": 1e-13}
    np.testing.assert_allclose(h, out.detach().numpy(), **tol)
    np.testing.assert_allclose(d_xg @ w_ih, x.grad.numpy(), **tol)
    np.testing.assert_allclose(dh_prev + d_hg @ w_hh, hx.grad.numpy(), **tol)
    np.testing.assert_allclose(d_xg.T @ xn, cell.weight_ih.grad.numpy(), **tol)
    np.testing.assert_allclose(d_hg.T @ hn_prev, cell.weight_hh.grad.numpy(), **tol)
    np.testing.assert_allclose(d_xg.sum(0), cell.bias_ih.grad.numpy(), **tol)
    np.testing.assert_allclose(d_hg.sum(0), cell.bias_hh.grad.numpy(), **tol)


# ---------------------------------------------------------------- layouts, aliasing, threads

@pytest.mark.parametrize("dtype", DTYPES)
def test_gates_row_strided_operands(K, rng, dtype):
    """Every operand a column block of a wider array (h a step's half of a bidirectional layer's output, hn
    hg's n section), act written over gates in place: the bits of the contiguous call, nothing else of the
    wide arrays touched."""
    B, H = 9, 13

    def block(arr, lead=3, trail=5):
        wide = np.full((arr.shape[0], lead + arr.shape[1] + trail), np.nan, dtype)
        wide[:, lead:lead + arr.shape[1]] = arr
        return wide, wide[:, lead:lead + arr.shape[1]]

    gates, c_prev = lstm_case(rng, B, H, dtype)
    want = K.lstm_forward(gates, c_prev)
    outs = [block(np.zeros_like(w)) for w in want]
    got = K.lstm_forward(block(gates)[1], block(c_prev)[1], *[o[1] for o in outs])
    for (wide, view), g, w in zip(outs, got, want):
        assert g is view and np.array_equal(view, w)
        assert np.isnan(wide[:, :3]).all() and np.isnan(wide[:, -5:]).all()
    inplace = gates.copy()
    act = K.lstm_forward(inplace, c_prev, act=inplace)[0]
    assert act is inplace and np.array_equal(act, want[0])
    dh, dc = randn(rng, (B, H), dtype), randn(rng, (B, H), dtype)
    want_b = K.lstm_backward(dh, dc, want[0], c_prev, want[2])
    outs = [block(np.zeros_like(w)) for w in want_b]
    K.lstm_backward(block(dh)[1], block(dc)[1], block(want[0])[1], block(c_prev)[1], block(want[2])[1],
                    *[o[1] for o in outs])
    for (wide, view), w in zip(outs, want_b):
        assert np.array_equal(view, w) and np.isnan(wide[:, :3]).all() and np.isnan(wide[:, -5:]).all()

    xg, hg, h_prev = gru_case(rng, B, H, dtype)
    want = K.gru_forward(xg, hg, h_prev)
    slab = np.full((B, 2, H), np.nan, dtype)  # (batch, direction, hidden): h is one direction's half
    act, h = K.gru_forward(block(xg)[1], block(hg)[1], block(h_prev)[1], h=slab[:, 1])
    assert np.array_equal(act, want[0]) and np.array_equal(h, want[1]) and np.isnan(slab[:, 0]).all()
    want_b = K.gru_backward(dh, want[0], hg[:, 2 * H:], h_prev)
    outs = [block(np.zeros_like(w)) for w in want_b]
    K.gru_backward(block(dh)[1], block(want[0])[1], block(hg)[1][:, 2 * H:], block(h_prev)[1],
                   *[o[1] for o in outs])
    for (wide, view), w in zip(outs, want_b):
        assert np.array_equal(view, w) and np.isnan(wide[:, :3]).all() and np.isnan(wide[:, -5:]).all()


@pytest.mark.skipif(_backend.name != "c", reason="C backend not selected")
@pytest.mark.parametrize("dtype", DTYPES)
def test_gates_threads_bitwise_identical(threads, rng, dtype):
    """Rows shared over 1, 2 and 3 threads (above and below the wake-up size) give the bits of one thread."""
    results = []
    for nt in (1, 2, 3):
        threads(nt)
        got = []
        for B, H in ((40, 128), (300, 200)):
            r = np.random.default_rng(B)
            gates, c_prev = lstm_case(r, B, H, dtype)
            act, c, tanh_c, h = _backend.lstm_forward(gates, c_prev)
            dh = randn(r, (B, H), dtype)
            got += [act, c, h, *_backend.lstm_backward(dh, dh, act, c_prev, tanh_c)]
            xg, hg, h_prev = gru_case(r, B, H, dtype)
            act, h = _backend.gru_forward(xg, hg, h_prev)
            got += [act, h, *_backend.gru_backward(dh, act, hg[:, 2 * H:], h_prev)]
        results.append(got)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------- bad operands

def test_gates_reject_bad_operands(K):
    B, H = 3, 4
    g4, g3, s = np.zeros((B, 4 * H)), np.zeros((B, 3 * H)), np.zeros((B, H))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.lstm_forward(g4.tolist(), s)
    with pytest.raises(ValueError, match=r"gates has shape \(3, 15\)"):
        K.lstm_forward(np.zeros((B, 15)), s)
    with pytest.raises(ValueError, match=r"c_prev has shape \(3, 5\), expected \(3, 4\)"):
        K.lstm_forward(g4, np.zeros((B, 5)))
    with pytest.raises(TypeError, match="c_prev has dtype float32, expected float64"):
        K.lstm_forward(g4, s.astype(np.float32))
    with pytest.raises(TypeError, match="dtype"):
        K.lstm_forward(g4.astype(np.int64), s)
    with pytest.raises(TypeError, match="h has dtype float32"):
        K.lstm_forward(g4, s, h=np.zeros((B, H), np.float32))
    with pytest.raises(ValueError, match="rows must be contiguous"):
        K.lstm_forward(np.zeros((B, 8 * H))[:, ::2], s)
    with pytest.raises(ValueError, match="rows must be contiguous"):
        K.gru_forward(g3, g3, np.asfortranarray(np.zeros((B, H))))
    with pytest.raises(ValueError, match="without overlapping"):
        K.lstm_forward(g4, s, h=np.lib.stride_tricks.as_strided(np.zeros(16), (B, H), (8, 8)))
    ro = np.zeros((B, H))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="c is read-only"):
        K.lstm_forward(g4, s, c=ro)
    with pytest.raises(ValueError, match="h shares memory with the input c_prev"):
        K.lstm_forward(g4, s, h=s)
    with pytest.raises(ValueError, match="tanh_c shares memory with the output c"):
        buf = np.zeros((B, H))
        K.lstm_forward(g4, s, c=buf, tanh_c=buf)
    with pytest.raises(ValueError, match="act shares memory with the input gates"):
        wide = np.zeros((B, 4 * H + 1))
        K.lstm_forward(wide[:, 1:], s, act=wide[:, :-1])
    act, c, tanh_c, _ = K.lstm_forward(g4, s)
    with pytest.raises(ValueError, match="d_gates shares memory with the input act"):
        K.lstm_backward(s, None, act, c, tanh_c, d_gates=act)
    with pytest.raises(ValueError, match="dc_prev shares memory with the input dc"):
        K.lstm_backward(s, c, act, s, tanh_c, dc_prev=c)
    with pytest.raises(ValueError, match=r"dh has shape \(2, 4\), expected \(3, 4\)"):
        K.lstm_backward(np.zeros((2, H)), None, act, c, tanh_c)
    with pytest.raises(ValueError, match=r"act has shape \(3, 10\), expected \(batch, 3 \* hidden_size\)"):
        K.gru_backward(s, np.zeros((B, 10)), s, s)
    with pytest.raises(ValueError, match=r"hn has shape \(3, 12\), expected \(3, 4\)"):
        K.gru_backward(s, g3, g3, s)
    with pytest.raises(ValueError, match="h shares memory with the input h_prev"):
        K.gru_forward(g3, g3, s, h=s)
    with pytest.raises(ValueError, match="d_hg shares memory with the output d_xg"):
        out = np.zeros((B, 3 * H))
        K.gru_backward(s, g3, s, s, d_xg=out, d_hg=out)
    with pytest.raises(ValueError, match="act shares memory with the input xg"):
        K.gru_forward(g3, np.ones((B, 3 * H)), s, act=g3)
