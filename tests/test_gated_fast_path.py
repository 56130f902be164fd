"""The gated cells' fast path (nn._recurrent.lstm_epilogue / gru_epilogue): one fused kernel call, then the
nodes the plain ops record.  Checked bitwise against the plain ops written here (values, graph, saved arrays,
gradients, hooks, retain_grad, autograd.grad, version checks, anomaly mode) and against torch's formulas."""
import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.nn import _recurrent

DTYPES = [np.float32, np.float64]


def plain_lstm(gates, c):
    i, f, g, o = gates.chunk(4, 1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c_new.tanh(), c_new


def plain_gru(gi, gh, h):
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return (1 - z) * n + z * h


def torch_lstm(gates, c):
    i, f, g, o = gates.chunk(4, 1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c_new.tanh(), c_new


def torch_gru(gi, gh, h):
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return (1 - z) * n + z * h


def _arrays(rng, dtype, shapes):
    # wide pre-activations: saturated and linear regions of sigmoid and tanh both occur
    return [(rng.standard_normal(s) * 3).astype(dtype) for s in shapes]


def _leaves(arrays, wants):
    """Leaf tensors, and the same values again as the results of an op (non-leaf inputs, as in a layer)."""
    leaves = [mg.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    return leaves, [t * 1.0 if t.requires_grad else t for t in leaves]


def _graph(roots):
    """Every node reachable from ``roots`` in a fixed order, each as (name, shape, dtype, edges, saved), the
    edges as (index of the input's node in this list or its name for a leaf, output_nr)."""
    order, index, stack = [], {}, [t.grad_fn for t in reversed(roots)]
    while stack:
        node = stack.pop()
        if node in index:
            continue
        index[node] = len(order)
        order.append(node)
        for edge in reversed(node.next_functions):
            if edge is not None and edge[0].name() != "AccumulateGrad":
                stack.append(edge[0])

    def edge_of(edge):
        if edge is None:
            return None
        return (edge[0].name() if edge[0].name() == "AccumulateGrad" else index[edge[0]], edge[1])

    return [(n.name(), n.shape, n.dtype, [edge_of(e) for e in n.next_functions], n.saved_arrays or ())
            for n in order]


def _assert_same_graph(ours, plain):
    a, b = _graph(ours), _graph(plain)
    assert [x[:4] for x in a] == [x[:4] for x in b]
    for x, y in zip(a, b):
        assert len(x[4]) == len(y[4]), x[0]
        for s, t in zip(x[4], y[4]):
            assert s.shape == t.shape and s.dtype == t.dtype
            np.testing.assert_array_equal(s, t)


def _assert_bitwise(a, b):
    a, b = (np.asarray(x.data if isinstance(x, mg.Tensor) else x) for x in (a, b))
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _backward(outs, rng):
    """A loss that weights every element of every output differently."""
    loss = sum((o * mg.tensor(rng.standard_normal(o.shape).astype(o.dtype))).sum() for o in outs)
    loss.backward()


CASES = [(1, 1), (3, 5), (32, 128), (7, 33)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,hidden", CASES)
@pytest.mark.parametrize("wants", [(True, True), (True, False), (False, True)])
def test_lstm_epilogue_is_the_plain_ops_bitwise(dtype, batch, hidden, wants):
    rng = np.random.default_rng(batch * 100 + hidden)
    arrays = _arrays(rng, dtype, [(batch, 4 * hidden), (batch, hidden)])
    ours_leaves, ours_in = _leaves(arrays, wants)
    plain_leaves, plain_in = _leaves(arrays, wants)
    ours = _recurrent.lstm_epilogue(*ours_in)
    plain = plain_lstm(*plain_in)
    for a, b in zip(ours, plain):
        _assert_bitwise(a, b)
    _assert_same_graph(list(ours), list(plain))
    _backward(ours, np.random.default_rng(1))
    _backward(plain, np.random.default_rng(1))
    for a, b in zip(ours_leaves, plain_leaves):
        assert (a.grad is None) == (b.grad is None) == (not a.requires_grad)
        if a.grad is not None:
            _assert_bitwise(a.grad, b.grad)
    # and the formula is torch's
    t_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    t_out = torch_lstm(*t_in)
    _backward_torch(t_out, np.random.default_rng(1))
    for a, b in zip(ours, t_out):
        np.testing.assert_allclose(a.data, b.detach().numpy(), **_tol(dtype))
    for a, b in zip(ours_leaves, t_in):
        if a.requires_grad:
            np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,hidden", CASES)
@pytest.mark.parametrize("wants", [(True, True, True), (False, True, False), (False, False, True),
                                   (True, False, False)])
def test_gru_epilogue_is_the_plain_ops_bitwise(dtype, batch, hidden, wants):
    rng = np.random.default_rng(batch * 100 + hidden + 1)
    arrays = _arrays(rng, dtype, [(batch, 3 * hidden), (batch, 3 * hidden), (batch, hidden)])
    ours_leaves, ours_in = _leaves(arrays, wants)
    plain_leaves, plain_in = _leaves(arrays, wants)
    ours = _recurrent.gru_epilogue(*ours_in)
    plain = plain_gru(*plain_in)
    _assert_bitwise(ours, plain)
    _assert_same_graph([ours], [plain])
    _backward([ours], np.random.default_rng(2))
    _backward([plain], np.random.default_rng(2))
    for a, b in zip(ours_leaves, plain_leaves):
        assert (a.grad is None) == (b.grad is None) == (not a.requires_grad)
        if a.grad is not None:
            _assert_bitwise(a.grad, b.grad)
    t_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    t_out = torch_gru(*t_in)
    _backward_torch([t_out], np.random.default_rng(2))
    np.testing.assert_allclose(ours.data, t_out.detach().numpy(), **_tol(dtype))
    for a, b in zip(ours_leaves, t_in):
        if a.requires_grad:
            np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **_tol(dtype))


def _backward_torch(outs, rng):
    loss = sum((o * torch.tensor(rng.standard_normal(tuple(o.shape)).astype(o.detach().numpy().dtype))).sum()
               for o in outs)
    loss.backward()


def _tol(dtype):
    return {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.parametrize("dtype", DTYPES)
def test_without_grad_only_the_kernel_and_h_out_is_the_storage(dtype):
    rng = np.random.default_rng(3)
    gates, c = _arrays(rng, dtype, [(4, 12), (4, 3)])
    gi, gh, h = _arrays(rng, dtype, [(4, 9), (4, 9), (4, 3)])
    slab = np.full((2, 4, 6), np.nan, dtype=dtype)
    with mg.no_grad():
        ours = _recurrent.lstm_epilogue(mg.tensor(gates, requires_grad=True), mg.tensor(c),
                                        h_out=slab[0, :, :3])
        plain = plain_lstm(mg.tensor(gates), mg.tensor(c))
        g_ours = _recurrent.gru_epilogue(mg.tensor(gi), mg.tensor(gh), mg.tensor(h), h_out=slab[1, :, 3:])
        g_plain = plain_gru(mg.tensor(gi), mg.tensor(gh), mg.tensor(h))
    assert all(t.grad_fn is None and not t.requires_grad for t in (*ours, g_ours))
    for a, b in zip((*ours, g_ours), (*plain, g_plain)):
        _assert_bitwise(a, b)
    assert np.shares_memory(ours[0].data, slab) and np.shares_memory(g_ours.data, slab)
    _assert_bitwise(slab[0, :, :3], plain[0])
    _assert_bitwise(slab[1, :, 3:], g_plain)
    assert np.isnan(slab[0, :, 3:]).all() and np.isnan(slab[1, :, :3]).all()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_hooks_retain_grad_and_autograd_grad_see_the_plain_gradients(kind):
    rng = np.random.default_rng(4)
    dtype = np.float64
    shapes = [(5, 16), (5, 4)] if kind == "lstm" else [(5, 12), (5, 12), (5, 4)]
    arrays = _arrays(rng, dtype, shapes)
    fused = _recurrent.lstm_epilogue if kind == "lstm" else _recurrent.gru_epilogue
    plain = plain_lstm if kind == "lstm" else plain_gru
    results = []
    for fn in (fused, plain):
        leaves, inputs = _leaves(arrays, [True] * len(arrays))
        outs = fn(*inputs)
        outs = list(outs) if kind == "lstm" else [outs]
        seen = []
        outs[0].register_hook(lambda g, seen=seen: seen.append(g.data.copy()) or g * 2.0)
        outs[-1].retain_grad()
        inputs[-1].retain_grad()
        # autograd.grad capturing the state input (a non-leaf), then a full backward
        captured = mg.autograd.grad([o.sum() * 3.0 for o in outs], [inputs[-1]], retain_graph=True)[0]
        seen.clear()
        _backward(outs, np.random.default_rng(5))
        results.append([captured, *seen, outs[-1].grad, inputs[-1].grad, *[t.grad for t in leaves]])
    for a, b in zip(*results):
        _assert_bitwise(a, b)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_state_changed_in_place_is_refused_as_by_the_plain_ops(kind):
    rng = np.random.default_rng(6)
    shapes = [(2, 8), (2, 2)] if kind == "lstm" else [(2, 6), (2, 6), (2, 2)]
    arrays = _arrays(rng, np.float64, shapes)
    fused = _recurrent.lstm_epilogue if kind == "lstm" else _recurrent.gru_epilogue
    plain = plain_lstm if kind == "lstm" else plain_gru
    messages = []
    for fn in (fused, plain):
        _, inputs = _leaves(arrays, [True] * len(arrays))
        outs = fn(*inputs)
        inputs[-1].add_(1.0)  # the state, saved by a product
        with pytest.raises(RuntimeError) as err:
            _backward(list(outs) if kind == "lstm" else [outs], rng)
        messages.append(str(err.value).split(";")[0])
    assert messages[0] == messages[1] and "modified by an inplace operation" in messages[0]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_anomaly_mode_names_the_same_op(kind):
    # a cell state of inf: f * c is inf in the LSTM; an inf state makes the GRU's z * h inf
    shapes = [(2, 8), (2, 2)] if kind == "lstm" else [(2, 6), (2, 6), (2, 2)]
    arrays = _arrays(np.random.default_rng(7), np.float32, shapes)
    arrays[-1][0, 0] = np.inf
    fused = _recurrent.lstm_epilogue if kind == "lstm" else _recurrent.gru_epilogue
    plain = plain_lstm if kind == "lstm" else plain_gru
    messages = []
    for fn in (fused, plain):
        _, inputs = _leaves(arrays, [True] * len(arrays))
        with mg.autograd.detect_anomaly(), pytest.raises(FloatingPointError) as err:
            fn(*inputs)
        messages.append(str(err.value).split(" (")[0])
    assert messages[0] == messages[1] and messages[0].startswith("Mul produced inf")


def test_bad_operands_are_refused_with_clear_errors():
    g = mg.zeros(2, 8)
    c = mg.zeros(2, 2)
    with pytest.raises(TypeError, match="lstm_epilogue: expected a minigrad Tensor for c"):
        _recurrent.lstm_epilogue(g, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"lstm_epilogue: gates has shape \(2, 8\) and c has shape \(2, 3\)"):
        _recurrent.lstm_epilogue(g, mg.zeros(2, 3))
    with pytest.raises(ValueError, match="gates must be a 2-D float32 or float64 tensor"):
        _recurrent.lstm_epilogue(mg.zeros(8), c)
    with pytest.raises(TypeError, match="gates has dtype float32 and c has dtype float64"):
        _recurrent.lstm_epilogue(g, mg.zeros(2, 2, dtype=mg.float64))
    with pytest.raises(ValueError, match="gru_epilogue: gh has shape"):
        _recurrent.gru_epilogue(mg.zeros(2, 6), mg.zeros(2, 9), c)
    with pytest.raises(ValueError, match="h is read-only|shares memory"):
        _recurrent.lstm_epilogue(g, c, h_out=c.data)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_layer_records_the_plain_ops_per_step(kind):
    seq_len, batch, hidden = 5, 3, 4
    model = getattr(mg.nn, kind)(2, hidden, bidirectional=True, dtype=np.float64)
    out, _ = model(mg.tensor(np.random.default_rng(8).standard_normal((seq_len, batch, 2))))
    names = [x[0] for x in _graph([out])]
    steps = 2 * seq_len
    sigmoids, tanhs = (3, 2) if kind == "LSTM" else (2, 1)
    assert names.count("SigmoidBackward") == sigmoids * steps
    assert names.count("TanhBackward") == tanhs * steps
    assert names.count("SplitBackward") == (1 if kind == "LSTM" else 2) * steps
    assert out.grad_fn.name() == "CatBackward"  # stack_cat's graph: the directions' stacks joined


# ---- the fused backward --------------------------------------------------------------------------------
@pytest.fixture
def kernel_calls(monkeypatch):
    """How many times each fused backward kernel ran (``fused``: the engine runs them at all; the reference
    engine runs each node's plain backward)."""
    from minigrad import _backend as K
    calls = {"lstm": 0, "gru": 0}
    for kind in list(calls):
        real = getattr(K, kind + "_backward")

        def counted(*args, kind=kind, real=real):
            calls[kind] += 1
            return real(*args)

        monkeypatch.setattr(K, kind + "_backward", counted)
    calls["fused"] = mg.autograd.engine_name() == "compiled"
    return calls


def _unrolled(kind, fused, arrays, steps, loss):
    """A hand-unrolled gated layer: the input and state products as in nn.LSTM / nn.GRU, each step's
    epilogue fused or the plain ops; returns the leaves after ``loss`` backward."""
    x, w_ih, w_hh, b, h0, c0 = (mg.tensor(a, requires_grad=True) for a in arrays)
    h, c = h0 * 1.0, c0 * 1.0  # non-leaf states, as a layer's
    xw = (x.reshape(-1, x.shape[-1]) @ w_ih.T + b).reshape(x.shape[0], x.shape[1], -1).unbind(0)
    outs = []
    for t in range(steps):
        if kind == "lstm":
            gates = xw[t] + h @ w_hh.T
            h, c = (_recurrent.lstm_epilogue if fused else plain_lstm)(gates, c)
        else:
            h = (_recurrent.gru_epilogue if fused else plain_gru)(xw[t], h @ w_hh.T + b, h)
        outs.append(h)
    out = mg.stack(outs)
    total = out.sum() if loss == "sum" else ((out - 0.5) ** 2).mean()
    if kind == "lstm":
        total = total + (c * 0.25).sum()  # c_n in the loss: the last step's c gets a gradient of its own
    total.backward()
    return x, w_ih, w_hh, b, h0, c0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["sum", "mse"])
def test_fused_backward_is_the_plain_backward_bitwise(kind, dtype, loss, kernel_calls):
    steps, batch, feat, hidden = 6, 5, 3, 7
    gates = 4 if kind == "lstm" else 3
    rng = np.random.default_rng(9)
    arrays = [a.astype(dtype) for a in (rng.standard_normal((steps, batch, feat)),
                                        rng.standard_normal((gates * hidden, feat)),
                                        rng.standard_normal((gates * hidden, hidden)) * 0.5,
                                        rng.standard_normal(gates * hidden),
                                        rng.standard_normal((batch, hidden)),
                                        rng.standard_normal((batch, hidden)))]
    fused = _unrolled(kind, True, arrays, steps, loss)
    calls = steps if kernel_calls["fused"] else 0
    assert kernel_calls[kind] == calls  # every step's nodes ran as one kernel call
    plain = _unrolled(kind, False, arrays, steps, loss)
    assert kernel_calls[kind] == calls
    used = fused if kind == "lstm" else fused[:5]
    for a, b in zip(used, plain):
        _assert_bitwise(a.grad, b.grad)
    # and torch's gradients
    tx, tw_ih, tw_hh, tb, th, tc = (torch.tensor(a, requires_grad=True) for a in arrays)
    xw = (tx @ tw_ih.T + tb).unbind(0)
    h, c, outs = th * 1.0, tc * 1.0, []
    for t in range(steps):
        if kind == "lstm":
            h, c = torch_lstm(xw[t] + h @ tw_hh.T, c)
        else:
            h = torch_gru(xw[t], h @ tw_hh.T + tb, h)
        outs.append(h)
    out = torch.stack(outs)
    total = out.sum() if loss == "sum" else ((out - 0.5) ** 2).mean()
    if kind == "lstm":
        total = total + (c * 0.25).sum()
    total.backward()
    for a, b in zip(used, (tx, tw_ih, tw_hh, tb, th, tc)):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **_tol(dtype))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_backward_runs_twice_on_a_retained_graph_and_leaves_state_hooks_alone(kind, kernel_calls):
    shapes = [(4, 20), (4, 5)] if kind == "lstm" else [(4, 15), (4, 15), (4, 5)]
    arrays = _arrays(np.random.default_rng(10), np.float64, shapes)
    fused = _recurrent.lstm_epilogue if kind == "lstm" else _recurrent.gru_epilogue
    plain = plain_lstm if kind == "lstm" else plain_gru
    grads = []
    for fn in (fused, plain):
        leaves, inputs = _leaves(arrays, [True] * len(arrays))
        seen = []
        inputs[-1].register_hook(lambda g, seen=seen: seen.append(g.data.copy()))  # outside the step's nodes
        outs = fn(*inputs)
        outs = list(outs) if kind == "lstm" else [outs]
        loss = sum((o * (k + 2.0)).sum() for k, o in enumerate(outs))
        loss.backward(retain_graph=True)
        loss.backward()
        grads.append([*seen, *[t.grad for t in leaves]])
    assert kernel_calls[kind] == (2 if kernel_calls["fused"] else 0)
    for a, b in zip(*grads):
        _assert_bitwise(a, b)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_backward_steps_aside_for_hooks_capture_and_anomaly_mode(kind, kernel_calls):
    shapes = [(3, 8), (3, 2)] if kind == "lstm" else [(3, 6), (3, 6), (3, 2)]
    arrays = _arrays(np.random.default_rng(11), np.float64, shapes)
    fused = _recurrent.lstm_epilogue if kind == "lstm" else _recurrent.gru_epilogue

    def run(hook=False):
        _, inputs = _leaves(arrays, [True] * len(arrays))
        outs = fused(*inputs)
        outs = list(outs) if kind == "lstm" else [outs]
        if hook:
            outs[-1].register_hook(lambda g: g * 3.0)
        return inputs, outs

    _, outs = run(hook=True)
    sum(o.sum() for o in outs).backward()
    inputs, outs = run()
    mg.autograd.grad([o.sum() for o in outs], inputs)
    _, outs = run()
    with mg.autograd.detect_anomaly():
        sum(o.sum() for o in outs).backward()
    assert kernel_calls[kind] == 0
