"""The small-op path a user's own recurrent cell runs on (issue 16): selections of a hoisted input
projection, chunked gates, sigmoid/tanh and products on (B, 4H) tensors.  Gradients are compared with
torch's; the tests that count allocations fail if a backward goes back to one zero-filled array per op."""
import numpy as np
import pytest
import torch

import minigrad as mg


def _user_lstm(lib, x, w_ih, w_hh, b, wt, hoist):
    """A hand-written LSTM from core ops, in minigrad or torch (same code): the loss (out * wt).sum()."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    h = c = lib.zeros(B, H, dtype=x.dtype)
    if hoist:
        xw = (x.reshape(T * B, -1) @ w_ih.T + b).reshape(T, B, 4 * H)
    outs = []
    for t in range(T):
        gates = (xw[t] if hoist else x[t] @ w_ih.T + b) + h @ w_hh.T
        i, f, g, o = gates.chunk(4, 1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        outs.append(h)
    return (lib.stack(outs) * wt).sum()


@pytest.mark.parametrize("hoist", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_user_lstm_gradients_match_torch(hoist, dtype):
    rng = np.random.default_rng(3)
    T, B, I, H = 5, 3, 4, 6
    arrays = [rng.standard_normal(s).astype(dtype) * 0.5
              for s in [(T, B, I), (4 * H, I), (4 * H, H), (4 * H,), (T, B, H)]]
    mine = [mg.tensor(a, requires_grad=k in (0, 1, 2, 3)) for k, a in enumerate(arrays)]
    ref = [torch.tensor(a, requires_grad=k in (0, 1, 2, 3)) for k, a in enumerate(arrays)]
    _user_lstm(mg, *mine, hoist).backward()
    _user_lstm(torch, *ref, hoist).backward()
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    for m, r in zip(mine[:4], ref[:4]):
        np.testing.assert_allclose(m.grad.data, r.grad.numpy(), **tol)


def _count_zeros_of(monkeypatch, shape):
    """Count the np.zeros calls (made by the compiled ops too: they look it up at run time) of ``shape``."""
    calls = []
    real = np.zeros

    def counting(s, *args, **kwargs):
        if tuple(np.atleast_1d(s)) == shape:
            calls.append(s)
        return real(s, *args, **kwargs)
    monkeypatch.setattr(np, "zeros", counting)
    return calls


def test_selections_of_one_tensor_make_one_gradient_array(monkeypatch):
    # x[t] for every t: the backward writes the T gradients into one array, not a zero-filled copy of x
    # per selection summed by the engine
    T = 16
    x = mg.tensor(np.random.default_rng(0).standard_normal((T, 3, 4)), requires_grad=True)
    y = x * 2.0
    loss = sum(((y[t] * (t + 1)).sum() for t in range(T)), mg.tensor(0.0, dtype=mg.float64))
    calls = _count_zeros_of(monkeypatch, (T, 3, 4))
    loss.backward()
    assert len(calls) == 0
    expected = 2.0 * np.arange(1, T + 1, dtype=np.float64)[:, None, None] * np.ones((T, 3, 4))
    np.testing.assert_array_equal(x.grad.data, expected)


def test_overlapping_selections_add_up_like_torch():
    # selections that overlap, repeat, leave parts out or pick single elements: the one array gets the sum
    a = np.random.default_rng(1).standard_normal((4, 3, 5))
    indices = [0, 0, -1, (slice(None), 1), (1, 2, 3), (2, Ellipsis, 4), (slice(1, 3), None), np.int64(2),
               (Ellipsis,)]
    x, tx = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    for lib, t in ((mg, x), (torch, tx)):
        y = t * 1.5
        total = None
        for k, index in enumerate(indices):
            part = (y[index] * (k + 1.0)).sum()
            total = part if total is None else total + part
        total.backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)


def test_selection_gradient_reaches_hooks_and_autograd_grad():
    a = np.random.default_rng(2).standard_normal((3, 4))
    x = mg.tensor(a, requires_grad=True)
    y = x * 3.0
    seen = []
    y.register_hook(lambda g: seen.append(g.data.copy()))
    loss = (y[0] * 2.0).sum() + (y[1] * 5.0).sum() + y[2].sum() + y[1].sum()
    (gy,) = mg.autograd.grad(loss, [y], retain_graph=True)
    expected = np.array([[2.0] * 4, [6.0] * 4, [1.0] * 4])
    np.testing.assert_array_equal(gy.data, expected)
    loss.backward()
    np.testing.assert_array_equal(seen[-1], expected)
    np.testing.assert_array_equal(x.grad.data, 3.0 * expected)


def test_gate_chunks_gradient_is_one_array_written_in_place(monkeypatch):
    # sigmoid/tanh of gates.chunk(4, 1) write their gradients into their chunk of one array of the gates'
    # shape: no zero-filled (B, 4H) array per step, and the gradient still matches torch's
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 12))
    ws = [rng.standard_normal((5, 3)) for _ in range(4)]
    x, tx = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    losses = []
    for t in (x, tx):
        i, f, g, o = (t * 1.0).chunk(4, 1)
        acts = (i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid())
        losses.append(sum((act * float(k + 1) * (mg.tensor(w) if t is x else torch.tensor(w))).sum()
                          for k, (act, w) in enumerate(zip(acts, ws))))
    calls = _count_zeros_of(monkeypatch, (5, 12))
    losses[0].backward()
    assert len(calls) == 0
    losses[1].backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_chunks_used_twice_or_unused_still_sum_like_torch():
    # a chunk whose gradient is a sum (sigmoid and a product) or missing (unused): the in-place arena is
    # given up for the ordinary path
    a = np.random.default_rng(5).standard_normal((3, 8))
    x, tx = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    for t in (x, tx):
        i, f, g, _unused = (t * 2.0).chunk(4, 1)
        (i.sigmoid() * 3.0 + i * g.tanh() + f.sigmoid()).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_on_chunk_views_and_bias_rows_skip_numpy(monkeypatch, dtype):
    # the small-op fast path takes row-strided chunks and a bias row: numpy's ufuncs are not called, and
    # the results are numpy's (one IEEE operation per element)
    rng = np.random.default_rng(6)
    gates = mg.tensor(rng.standard_normal((4, 20)).astype(dtype))
    bias = mg.tensor(rng.standard_normal(20).astype(dtype))
    i, f, g, _ = gates.chunk(4, 1)
    ref = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}
    expected = {name: [fn(i.data, f.data), fn(g.data, 2.5), fn(gates.data, bias.data),
                       fn(bias.data, gates.data)]
                for name, fn in ref.items()}
    called = []
    for fn in ref.values():
        monkeypatch.setattr(np, fn.__name__, lambda *a, _fn=fn, **k: called.append(_fn) or _fn(*a, **k))
    for name in ref:
        op = getattr(mg, name)
        got = [op(i, f), op(g, 2.5), op(gates, bias), op(bias, gates)]
        for e, r in zip(expected[name], got):
            assert r.dtype == dtype and r.shape == e.shape
            np.testing.assert_array_equal(r.data, e)
    assert called == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_tanh_of_row_strided_views_equal_contiguous(dtype):
    # minigrad's own kernels: the row-by-row path gives the bits of the contiguous one
    from minigrad import _backend as K
    rng = np.random.default_rng(7)
    wide = (rng.standard_normal((6, 40)) * 4).astype(dtype)
    view, grad = wide[:, 10:27], rng.standard_normal((6, 17)).astype(dtype)
    for fn in (K.sigmoid, K.tanh):
        np.testing.assert_array_equal(fn(view), fn(np.ascontiguousarray(view)))
    y = K.sigmoid(view)
    out = np.zeros((6, 40), dtype)
    K.sigmoid_backward(grad, y, out[:, 3:20])
    np.testing.assert_array_equal(out[:, 3:20], K.sigmoid_backward(grad, y))
    assert not out[:, :3].any() and not out[:, 20:].any()


def test_matrix_transposes_are_views_with_torch_gradients():
    # the 2-D transpose's short path (W.T in every step of a cell) keeps transpose's semantics
    a = np.random.default_rng(8).standard_normal((3, 5))
    x, tx = mg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    weights = np.random.default_rng(9).standard_normal((5, 3))
    for lib, t in ((mg, x), (torch, tx)):
        w = lib.tensor(weights)
        total = (t.T * w).sum() + (t.transpose(1, 0) * w * 2.0).sum() + (t.transpose(-1, 0) * w * 3.0).sum()
        total.backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)
    y = x * 1.0
    yt = y.T
    assert np.shares_memory(yt.data, y.data) and yt.grad_fn.name() == "PermuteBackward"
    with pytest.raises(RuntimeError, match="in-place operation on a view"):
        yt.add_(1.0)
    with pytest.raises(IndexError, match="Dimension out of range"):
        y.transpose(0, 2)
