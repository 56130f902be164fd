"""RNNCell and RNN against torch.nn: outputs, h_n and every gradient, over a sampled configuration grid."""
import itertools
import math
import random
import warnings

import numpy as np
import pytest
import torch
from nn_torch_helpers import TORCH_DTYPE, assert_close, assert_grads_match, pair, torch_twin

import minigrad as mg
from minigrad import nn


def _grid():
    """A deterministic sample of the full grid, plus its corners (T = B = 1, all features on)."""
    full = list(itertools.product(
        [1, 2, 3],                       # num_layers
        [False, True],                   # bidirectional
        [False, True],                   # batch_first
        ["tanh", "relu"],                # nonlinearity
        [True, False],                   # bias
        [(1, 1), (5, 3), (7, 1), (1, 4), (4, 2)],  # (T, B)
        [False, True],                   # h0 given
        [np.float64, np.float32]))
    sample = random.Random(1234).sample(full, 40)
    corners = [(3, True, True, "relu", False, (1, 1), True, np.float64),
               (2, True, False, "tanh", True, (6, 5), True, np.float32),
               (1, False, False, "tanh", True, (1, 1), False, np.float32)]
    return sample + corners


def _run_pair(cfg, x_np, h0_np, lengths=None):
    """Run a minigrad RNN and its torch twin on the same data under a loss weighting every element
    differently; return (mg rnn, torch rnn, mg tensors, torch tensors, outputs)."""
    num_layers, bidir, batch_first, nonlin, bias, dtype, in_size, hidden = cfg
    rnn = nn.RNN(in_size, hidden, num_layers, nonlinearity=nonlin, bias=bias, batch_first=batch_first,
                 bidirectional=bidir, dtype=dtype)
    trnn = torch_twin(rnn, torch.nn.RNN(in_size, hidden, num_layers, nonlinearity=nonlin, bias=bias,
                                        batch_first=batch_first, bidirectional=bidir,
                                        dtype=TORCH_DTYPE[dtype]))
    x, tx = pair(x_np, requires_grad=True)
    h0 = th0 = None
    if h0_np is not None:
        h0, th0 = pair(h0_np, requires_grad=True)
    out, hn = rnn(x, h0, lengths=lengths)
    if lengths is None:
        tout, thn = trnn(tx, th0)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=False)
        tpacked, thn = trnn(packed, th0)
        tout, _ = torch.nn.utils.rnn.pad_packed_sequence(tpacked, batch_first=batch_first,
                                                         total_length=x_np.shape[1 if batch_first else 0])
    rng = np.random.default_rng(7)
    w_out = rng.standard_normal(out.shape).astype(dtype)
    w_hn = rng.standard_normal(hn.shape).astype(dtype)
    loss = (out * mg.tensor(w_out)).sum() + (hn * mg.tensor(w_hn)).sum()
    tloss = (tout * torch.from_numpy(w_out)).sum() + (thn * torch.from_numpy(w_hn)).sum()
    loss.backward()
    tloss.backward()
    return rnn, trnn, (x, h0, out, hn), (tx, th0, tout, thn)


@pytest.mark.parametrize("num_layers,bidir,batch_first,nonlin,bias,tb,given_h0,dtype", _grid())
def test_rnn_matches_torch(num_layers, bidir, batch_first, nonlin, bias, tb, given_h0, dtype):
    mg.manual_seed(num_layers * 100 + tb[0] * 10 + tb[1])
    seq_len, batch = tb
    in_size, hidden = 3, 5
    rng = np.random.default_rng(0)
    shape = (batch, seq_len, in_size) if batch_first else (seq_len, batch, in_size)
    x_np = rng.standard_normal(shape).astype(dtype)
    d = 2 if bidir else 1
    h0_np = rng.standard_normal((d * num_layers, batch, hidden)).astype(dtype) if given_h0 else None
    cfg = (num_layers, bidir, batch_first, nonlin, bias, dtype, in_size, hidden)
    rnn, trnn, (x, h0, out, hn), (tx, th0, tout, thn) = _run_pair(cfg, x_np, h0_np)
    assert out.dtype == dtype and hn.dtype == dtype
    assert_close(out, tout, dtype, "output")
    assert_close(hn, thn, dtype, "h_n")
    assert_close(x.grad, tx.grad, dtype, "input grad")
    if given_h0:
        assert_close(h0.grad, th0.grad, dtype, "h0 grad")
    assert_grads_match(rnn, trnn, dtype)


@pytest.mark.parametrize("bidir,batch_first,num_layers,dtype", [(True, False, 2, np.float64),
                                                                 (True, True, 1, np.float32),
                                                                 (False, True, 3, np.float64)])
def test_variable_lengths_match_packed_sequence(bidir, batch_first, num_layers, dtype):
    mg.manual_seed(3)
    seq_len, batch, in_size, hidden = 6, 4, 3, 4
    lengths = [4, 6, 1, 3]  # unsorted, as with enforce_sorted=False
    rng = np.random.default_rng(1)
    shape = (batch, seq_len, in_size) if batch_first else (seq_len, batch, in_size)
    x_np = rng.standard_normal(shape).astype(dtype)
    h0_np = rng.standard_normal(((2 if bidir else 1) * num_layers, batch, hidden)).astype(dtype)
    cfg = (num_layers, bidir, batch_first, "tanh", True, dtype, in_size, hidden)
    rnn, trnn, (x, h0, out, hn), (tx, th0, tout, thn) = _run_pair(cfg, x_np, h0_np, lengths)
    assert_close(out, tout, dtype, "output")
    assert_close(hn, thn, dtype, "h_n")
    assert_close(x.grad, tx.grad, dtype, "input grad")
    assert_close(h0.grad, th0.grad, dtype, "h0 grad")
    assert_grads_match(rnn, trnn, dtype)
    # Padding: zero output, zero gradient, and its values do not matter at all.
    time_axis = 1 if batch_first else 0
    for b, n in enumerate(lengths):
        pad = (slice(b, b + 1), slice(n, None)) if batch_first else (slice(n, None), slice(b, b + 1))
        assert not out.data[pad].any() and not x.grad.data[pad].any()
    x_np2 = x_np.copy()
    pad_mask = np.arange(seq_len)[:, None] >= np.array(lengths)[None, :]
    if batch_first:
        pad_mask = pad_mask.T
    x_np2[pad_mask] = np.nan
    out2, hn2 = rnn(mg.tensor(x_np2), mg.tensor(h0_np), lengths=lengths)
    np.testing.assert_array_equal(out2.data, out.data)
    np.testing.assert_array_equal(hn2.data, hn.data)
    assert out.shape[time_axis] == seq_len


@pytest.mark.parametrize("num_layers,dtype", [(1, np.float32), (1, np.float64), (2, np.float32),
                                              (2, np.float64)])
def test_bidirectional_steps_in_output_buffer_match_torch(num_layers, dtype):
    """Each step's state lies in its half of the layer's output buffer (written there by the step's kernel,
    read there by the next step and by the backward): with the per-step outputs consumed by different ops,
    and a second forward pass run before the first one's backward, still torch's outputs and gradients."""
    mg.manual_seed(6)
    seq_len, batch, in_size, hidden = 5, 3, 4, 64
    rnn = nn.RNN(in_size, hidden, num_layers, bidirectional=True, dtype=dtype)
    trnn = torch_twin(rnn, torch.nn.RNN(in_size, hidden, num_layers, bidirectional=True,
                                        dtype=TORCH_DTYPE[dtype]))
    rng = np.random.default_rng(9)
    x, tx = pair(rng.standard_normal((seq_len, batch, in_size)).astype(dtype), requires_grad=True)
    w = rng.standard_normal((seq_len, batch, 2 * hidden)).astype(dtype)

    def loss(out, hn, weights):
        total = (out * weights).sum() + hn.sum()
        for t in range(seq_len):  # each step's two halves through different ops
            fwd, rev = out[t][:, :hidden], out[t][:, hidden:]
            total = total + (fwd * fwd).sum() * (t + 1) + rev.tanh().sum()
        return total

    out, hn = rnn(x)
    tout, thn = trnn(tx)
    rnn(mg.tensor(rng.standard_normal((seq_len, batch, in_size)).astype(dtype)))  # new buffers, same weights
    loss(out, hn, mg.tensor(w)).backward()
    loss(tout, thn, torch.from_numpy(w)).backward()
    assert_close(out, tout, dtype, "output")
    assert_close(hn, thn, dtype, "h_n")
    assert_close(x.grad, tx.grad, dtype, "input grad")
    assert_grads_match(rnn, trnn, dtype)


def test_unbatched_input_shapes_and_values():
    mg.manual_seed(0)
    rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True, dtype=mg.float64)
    trnn = torch_twin(rnn, torch.nn.RNN(3, 4, 2, bidirectional=True, dtype=torch.float64))
    x, tx = pair(np.random.default_rng(0).standard_normal((5, 3)))
    h0, th0 = pair(np.random.default_rng(1).standard_normal((4, 4)))
    for args, targs in [((x,), (tx,)), ((x, h0), (tx, th0))]:
        out, hn = rnn(*args)
        tout, thn = trnn(*targs)
        assert out.shape == (5, 8) and hn.shape == (4, 4)
        assert_close(out, tout, np.float64, "output")
        assert_close(hn, thn, np.float64, "h_n")


def test_shapes_batch_first_and_reverse_final_state():
    rnn = nn.RNN(3, 4, num_layers=3, bidirectional=True, batch_first=True)
    out, hn = rnn(mg.randn(2, 7, 3))
    assert out.shape == (2, 7, 8) and hn.shape == (6, 2, 4)  # batch_first never applies to h_n
    np.testing.assert_array_equal(hn.data[-2], out.data[:, -1, :4])  # last layer, forward: last step
    np.testing.assert_array_equal(hn.data[-1], out.data[:, 0, 4:])  # last layer, reverse: step 0
    assert out.dtype == mg.float32 and hn.dtype == mg.float32


def test_parameter_names_shapes_order_and_init():
    mg.manual_seed(0)
    rnn = nn.RNN(3, 16, num_layers=2, bidirectional=True, bias=True)
    trnn = torch.nn.RNN(3, 16, 2, bidirectional=True)
    ours = [(n, tuple(p.shape)) for n, p in rnn.named_parameters()]
    theirs = [(n, tuple(p.shape)) for n, p in trnn.named_parameters()]
    assert ours == theirs
    bound = 1 / math.sqrt(16)
    values = np.concatenate([p.data.ravel() for p in rnn.parameters()])
    assert np.abs(values).max() <= bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.1 * bound  # uniform on [-k, k]
    assert [n for n, _ in nn.RNN(3, 4, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    cell = nn.RNNCell(3, 16)
    assert ([(n, tuple(p.shape)) for n, p in cell.named_parameters()]
            == [(n, tuple(p.shape)) for n, p in torch.nn.RNNCell(3, 16).named_parameters()])
    assert all(np.abs(p.data).max() <= bound for p in cell.parameters())


def test_all_weights_are_distinct_per_layer_and_direction():
    rnn = nn.RNN(2, 3, num_layers=2, bidirectional=True)
    ids = [id(p) for group in rnn.all_weights for p in group]
    assert len(ids) == len(set(ids)) == 16
    assert rnn.all_weights[1][0] is rnn.weight_ih_l0_reverse


@pytest.mark.parametrize("nonlin,bias,dtype", [("tanh", True, np.float64), ("relu", False, np.float32)])
def test_rnncell_matches_torch(nonlin, bias, dtype):
    mg.manual_seed(1)
    cell = nn.RNNCell(4, 3, bias=bias, nonlinearity=nonlin, dtype=dtype)
    tcell = torch_twin(cell, torch.nn.RNNCell(4, 3, bias=bias, nonlinearity=nonlin, dtype=TORCH_DTYPE[dtype]))
    rng = np.random.default_rng(2)
    x, tx = pair(rng.standard_normal((5, 4)).astype(dtype), requires_grad=True)
    h, th = pair(rng.standard_normal((5, 3)).astype(dtype), requires_grad=True)
    w = rng.standard_normal((5, 3)).astype(dtype)
    out, tout = cell(x, h), tcell(tx, th)
    (out * mg.tensor(w)).sum().backward()
    (tout * torch.from_numpy(w)).sum().backward()
    assert_close(out, tout, dtype, "h'")
    assert_close(x.grad, tx.grad, dtype, "x grad")
    assert_close(h.grad, th.grad, dtype, "h grad")
    assert_grads_match(cell, tcell, dtype)
    # default hx and unbatched input
    assert_close(cell(x), tcell(tx), dtype, "default hx")
    assert_close(cell(x[0]), tcell(tx[0]), dtype, "unbatched")
    assert_close(cell(x[0], h[0]), tcell(tx[0], th[0]), dtype, "unbatched with hx")
    assert cell(x[0]).shape == (3,)


def test_cell_loop_equals_rnn_and_shared_cell_accumulates():
    mg.manual_seed(5)
    cell = nn.RNNCell(3, 4, dtype=mg.float64)
    rnn = nn.RNN(3, 4, dtype=mg.float64)
    rnn.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    rng = np.random.default_rng(3)
    xs = [mg.tensor(rng.standard_normal((6, 2, 3))) for _ in range(2)]
    out, hn = rnn(xs[0])
    h = None
    steps = []
    for x_t in xs[0]:
        h = cell(x_t, h)
        steps.append(h)
    np.testing.assert_allclose(mg.stack(steps).data, out.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h.data, hn.data[0], rtol=1e-12, atol=1e-14)

    # One cell used by two sequences: its gradients are the sum over both (vs torch doing the same).
    tcell = torch_twin(cell, torch.nn.RNNCell(3, 4, dtype=torch.float64))
    total, ttotal = 0, 0
    for x in xs:
        h, th = None, None
        for x_t, tx_t in zip(x, torch.from_numpy(x.data.copy())):
            h, th = cell(x_t, h), tcell(tx_t, th)
        total = total + (h * h).sum()
        ttotal = ttotal + (th * th).sum()
    total.backward()
    ttotal.backward()
    assert_grads_match(cell, tcell, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequence_job_matches_torch_on_any_thread_count(dtype):
    """A tanh layer's steps run as one kernel job forward and backward (threads take whole rows of the batch
    through every step): on 1, 2 and 3 threads the bits of one thread and torch's outputs and gradients; every step
    is still its own addmm and tanh nodes, tagged with its layer, direction and step."""
    from minigrad import _backend
    seq_len, batch, in_size, hidden = 9, 32, 16, 128
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((seq_len, batch, in_size)).astype(dtype)
    w_np = rng.standard_normal((seq_len, batch, 2 * hidden)).astype(dtype)
    mg.manual_seed(4)
    rnn = nn.RNN(in_size, hidden, 2, bidirectional=True, dtype=dtype)
    trnn = torch_twin(rnn, torch.nn.RNN(in_size, hidden, 2, bidirectional=True, dtype=TORCH_DTYPE[dtype]))
    tx = torch.from_numpy(x_np).requires_grad_()
    tout, _ = trnn(tx)
    (tout * torch.from_numpy(w_np)).sum().backward()
    previous = _backend.get_num_threads()
    results = []
    try:
        for nt in (1, 2, 3):
            _backend.set_num_threads(nt)
            rnn.zero_grad()
            x = mg.tensor(x_np, requires_grad=True)
            out, _ = rnn(x)
            (out * mg.tensor(w_np)).sum().backward()
            results.append([out.numpy().copy(), x.grad.numpy().copy()]
                           + [p.grad.numpy().copy() for p in rnn.parameters()])
    finally:
        _backend.set_num_threads(previous)
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))
    assert_close(out, tout, dtype, "output")
    assert_close(x.grad, tx.grad, dtype, "input grad")
    assert_grads_match(rnn, trnn, dtype)
    node = out.grad_fn  # the last layer's output: the cat of its directions' stacks
    assert node.name() == "CatBackward"
    for direction, (stack, _) in enumerate(node.next_functions):
        assert stack.name() == "StackBackward" and len(stack.next_functions) == seq_len
        for t, (tanh, _) in enumerate(stack.next_functions):
            assert tanh.name() == "TanhBackward" and tanh.tag == (1, direction, t)
            assert tanh.next_functions[0][0].name() == "AddmmBackward"


def _sequence_layer(dtype, seq_len, batch, hidden, seed=11):
    """One tanh layer's steps recorded by _recurrent.sequence from fresh leaves, and the same in torch:
    (leaves, states, torch leaves, torch states)."""
    from minigrad.nn import _recurrent
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((seq_len, batch, 6)), rng.standard_normal((hidden, 6)) * 0.4,
              rng.standard_normal((hidden, hidden)) / hidden ** 0.5, rng.standard_normal(hidden) * 0.1,
              rng.standard_normal((batch, hidden)) * 0.5]
    arrays = [a.astype(dtype) for a in arrays]
    x, w_ih, w_hh, b, h0 = leaves = [mg.tensor(a, requires_grad=True) for a in arrays]
    xw = nn.functional.linear(x.reshape(seq_len * batch, 6), w_ih, b).reshape(seq_len, batch, hidden).unbind(0)
    buf = np.empty((seq_len, batch, hidden), dtype)
    states = _recurrent.sequence([xw], [h0], [_recurrent.ReusedOperand(w_hh.T)], [buf], [False], "tanh")[0]
    tx, tw_ih, tw_hh, tb, th0 = tleaves = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    txw = torch.nn.functional.linear(tx, tw_ih, tb)
    tstates, th = [], th0
    for t in range(seq_len):
        th = torch.tanh(txw[t] + th @ tw_hh.T)
        tstates.append(th)
    return leaves, states, tleaves, tstates


# The pure-Python engine (MINIGRAD_ENGINE=reference) runs every node's plain backward.
COMPILED_ENGINE = __import__("minigrad.autograd.engine", fromlist=["ENGINE"]).ENGINE == "compiled"


def _spy_fused(monkeypatch):
    """Count the calls of the fused backward kernel."""
    from minigrad import _backend
    calls = []
    real = _backend.tanh_seq_backward

    def spy(gs, ys, p, dzs):
        calls.append(len(dzs))
        return real(gs, ys, p, dzs)
    monkeypatch.setattr(_backend, "tanh_seq_backward", spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("used", ["all", "some"])
def test_sequence_backward_runs_as_one_job_with_the_nodes_bits(monkeypatch, dtype, used):
    """The backward of a tanh sequence runs as one kernel job (the steps' nodes still run, handing on the
    gradients it computed): the bits of the node-by-node backward (forced here by retain_grad on every
    state, which the fused job must not skip) and torch's gradients -- with every step's output in the loss,
    and with only a few (the other steps' state gradient is the product alone).  The job starts when the
    last step's gradients from elsewhere have all arrived, as from one stack of the states (nn.RNN's
    output); otherwise the nodes run one by one."""
    seq_len, batch, hidden = 12, 8, 16
    rng = np.random.default_rng(2)
    weights = rng.standard_normal((seq_len, batch, hidden)).astype(dtype)
    steps = range(seq_len) if used == "all" else (3, 7, seq_len - 1)
    results = []
    for plain in (False, True):
        calls = _spy_fused(monkeypatch)
        leaves, states, tleaves, tstates = _sequence_layer(dtype, seq_len, batch, hidden)
        if plain:
            for h in states:
                h.retain_grad()
        (mg.stack([states[t] for t in steps]) * mg.tensor(weights[list(steps)])).sum().backward()
        assert calls == ([] if plain or not COMPILED_ENGINE else [seq_len])
        results.append([leaf.grad.numpy().copy() for leaf in leaves])
    for fused, plain in zip(*results):
        assert np.array_equal(fused, plain)
    (torch.stack([tstates[t] for t in steps]) * torch.from_numpy(weights[list(steps)])).sum().backward()
    for leaf, tleaf in zip(leaves, tleaves):
        assert_close(leaf.grad, tleaf.grad, dtype, "gradient")


def test_sequence_backward_hook_splits_the_job(monkeypatch):
    """A hook on a middle state sees that state's whole gradient (torch's): the job stops above it and a
    second job runs from it down; every gradient is still torch's."""
    seq_len = 10
    calls = _spy_fused(monkeypatch)
    leaves, states, tleaves, tstates = _sequence_layer(np.float64, seq_len, 4, 8)
    seen = []
    states[4].register_hook(lambda g: seen.append(g.numpy().copy()))
    tstates[4].retain_grad()
    mg.stack(states).sum().backward()
    torch.stack(tstates).sum().backward()
    assert calls == ([seq_len - 5, 5] if COMPILED_ENGINE else [])
    np.testing.assert_allclose(seen[0], tstates[4].grad.numpy(), rtol=1e-12, atol=1e-14)
    for leaf, tleaf in zip(leaves, tleaves):
        assert_close(leaf.grad, tleaf.grad, np.float64, "gradient")


@pytest.mark.parametrize("layout", ["unbind", "separate", "reversed", "strided"])
def test_sequence_addends_in_any_layout(layout):
    """The addends are read as one array where they lie evenly spaced in one (unbind's steps) and stacked
    otherwise (separate tensors, steps out of order in memory, one step's rows a different distance apart):
    torch's states and gradients either way."""
    from minigrad.nn import _recurrent
    seq_len, batch, hidden = 6, 4, 8
    rng = np.random.default_rng(5)
    xw0 = rng.standard_normal((seq_len, batch, hidden))
    w_hh0 = rng.standard_normal((hidden, hidden)) / hidden ** 0.5
    h00 = rng.standard_normal((batch, hidden)) * 0.5
    xw, w_hh, h0 = leaves = [mg.tensor(a, requires_grad=True) for a in (xw0, w_hh0, h00)]
    if layout == "unbind":
        cs = list(xw.unbind(0))
    elif layout == "separate":
        cs = [xw[t] * 1.0 for t in range(seq_len)]
    elif layout == "reversed":
        cs = list(xw.flip(0).unbind(0))[::-1]
    else:  # the last step's rows twice as far apart (a view of a wider copy)
        wide = mg.cat([xw[-1], xw[-1]], dim=1)
        cs = list(xw.unbind(0))[:-1] + [wide[:, :hidden]]
    buf = np.empty((seq_len, batch, hidden))
    states = _recurrent.sequence([cs], [h0], [_recurrent.ReusedOperand(w_hh.T)], [buf], [False], "tanh")[0]
    mg.stack(states).sum().backward()
    txw, tw_hh, th0 = tleaves = [torch.from_numpy(a.copy()).requires_grad_() for a in (xw0, w_hh0, h00)]
    th, tstates = th0, []
    for t in range(seq_len):
        th = torch.tanh(txw[t] + th @ tw_hh.T)
        tstates.append(th)
    torch.stack(tstates).sum().backward()
    for h, th in zip(states, tstates):
        assert_close(h, th, np.float64, "state")
    for leaf, tleaf in zip(leaves, tleaves):
        assert_close(leaf.grad, tleaf.grad, np.float64, "gradient")


def test_sequence_rejects_addends_of_another_shape_or_dtype():
    from minigrad.nn import _recurrent
    h0 = mg.zeros(4, 8)
    r = _recurrent.ReusedOperand(mg.zeros(8, 8))
    good = [mg.zeros(4, 8) for _ in range(3)]
    buf = np.empty((3, 4, 8), np.float32)
    for bad in (mg.zeros(4, 9), mg.zeros(2, 4, 8), mg.zeros(4, 8, dtype=mg.float64)):
        with pytest.raises(ValueError, match="the addends of one direction need one shape and dtype"):
            _recurrent.sequence([good[:2] + [bad]], [h0], [r], [buf], [False], "tanh")


def test_sequence_backward_refuses_changed_saved_states():
    """A state changed in place after the forward (one step's, through a view) makes the backward raise
    torch's error, as the node-by-node backward does: the fused job never runs on changed values."""
    leaves, states, _, _ = _sequence_layer(np.float64, 8, 4, 8)
    loss = sum(h.sum() for h in states)
    with mg.no_grad():
        states[3].mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    leaves, states, _, _ = _sequence_layer(np.float64, 8, 4, 8)
    loss = sum(h.sum() for h in states)
    with mg.no_grad():
        leaves[2].add_(1.0)  # W_hh
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch_matches_torch(dtype):
    """A batch of 0 sequences (numpy gives such arrays zero strides): torch's shapes, and zero gradients for
    every parameter, through the sequence job forward and backward."""
    mg.manual_seed(5)
    rnn = nn.RNN(3, 4, 2, bidirectional=True, dtype=dtype)
    trnn = torch_twin(rnn, torch.nn.RNN(3, 4, 2, bidirectional=True, dtype=TORCH_DTYPE[dtype]))
    x, tx = pair(np.zeros((5, 0, 3), dtype), requires_grad=True)
    out, hn = rnn(x)
    tout, thn = trnn(tx)
    assert out.shape == tuple(tout.shape) and hn.shape == tuple(thn.shape)
    (out.sum() + hn.sum()).backward()
    (tout.sum() + thn.sum()).backward()
    assert x.grad.shape == tuple(tx.grad.shape)
    assert_grads_match(rnn, trnn, dtype)


def test_full_bptt_gradient_sums_over_time():
    """BPTT is just backward(): the gradient of the shared W_hh is the sum of the gradients that separate
    per-step copies of it would receive."""
    mg.manual_seed(2)
    rnn = nn.RNN(2, 3, dtype=mg.float64)
    x = mg.tensor(np.random.default_rng(4).standard_normal((5, 1, 2)))
    out, _ = rnn(x)
    out.sum().backward()
    copies = [nn.Parameter(rnn.weight_hh_l0.data) for _ in range(5)]
    h = mg.zeros(1, 3, dtype=mg.float64)
    outs = []
    for t in range(5):
        h = (x[t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ copies[t].T + rnn.bias_hh_l0).tanh()
        outs.append(h)
    mg.stack(outs).sum().backward()
    assert all(np.abs(c.grad.data).max() > 0 for c in copies[1:])  # step 0 multiplies h0 = 0
    np.testing.assert_allclose(sum(c.grad.data for c in copies), rnn.weight_hh_l0.grad.data,
                               rtol=1e-12, atol=1e-14)


def test_dropout_between_layers_train_only():
    mg.manual_seed(0)
    rnn = nn.RNN(3, 8, num_layers=2, dropout=0.5, dtype=mg.float64)
    trnn = torch_twin(rnn, torch.nn.RNN(3, 8, 2, dropout=0.5, dtype=torch.float64))
    x, tx = pair(np.random.default_rng(0).standard_normal((5, 2, 3)))
    rnn.eval()
    trnn.eval()
    assert_close(rnn(x)[0], trnn(tx)[0], np.float64, "eval output")
    np.testing.assert_array_equal(rnn(x)[0].data, rnn(x)[0].data)
    rnn.train()
    mg.manual_seed(11)
    a = rnn(x)
    mg.manual_seed(11)
    b = rnn(x)
    np.testing.assert_array_equal(a[0].data, b[0].data)  # the mask comes from minigrad's generator
    assert np.abs(a[0].data - rnn.eval()(x)[0].data).max() > 1e-3
    # Layer 0's h_n is untouched by dropout (it applies to its output, between the layers).
    assert_close(a[1][0], trnn(tx)[1][0], np.float64, "layer 0 h_n")


def test_gradcheck_two_layer_bidirectional():
    mg.manual_seed(4)
    rnn = nn.RNN(2, 2, num_layers=2, bidirectional=True, dtype=mg.float64)
    rng = np.random.default_rng(5)
    x = mg.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    h0 = mg.tensor(rng.standard_normal((4, 2, 2)), requires_grad=True)
    params = list(rnn.parameters())

    def fn(x, h0, *weights):  # gradcheck perturbs the weights in place, so rnn sees them
        return rnn(x, h0)

    assert mg.autograd.gradcheck(fn, [x, h0] + params, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_state_dict_round_trip_with_torch():
    mg.manual_seed(8)
    tr = torch.nn.RNN(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True, batch_first=True)
    rnn = nn.RNN(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True, batch_first=True)
    rnn.load_state_dict(tr.state_dict())  # torch -> minigrad (torch tensors are array-likes)
    x, tx = pair(np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32))
    assert_close(rnn(x)[0], tr(tx)[0], np.float32, "torch -> minigrad")
    rnn2 = nn.RNN(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True, batch_first=True)
    tr.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in rnn2.state_dict().items()})
    assert_close(rnn2(x)[1], tr(tx)[1], np.float32, "minigrad -> torch")


def test_rnn_errors():
    rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        rnn(mg.zeros(2, 3, 4, 3))
    with pytest.raises(ValueError, match="got 1D"):
        rnn(mg.zeros(3))
    with pytest.raises(RuntimeError, match="input_size. Expected 3, got 7"):
        rnn(mg.zeros(5, 2, 7))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(4, 2, 4\), got \[4, 3, 4\]"):
        rnn(mg.zeros(5, 2, 3), mg.zeros(4, 3, 4))
    with pytest.raises(RuntimeError, match="hx should also be 3-D"):
        rnn(mg.zeros(5, 2, 3), mg.zeros(4, 4))
    with pytest.raises(RuntimeError, match="hx should also be 2-D"):
        rnn(mg.zeros(5, 3), mg.zeros(4, 1, 4))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(4, 1, 4\)"):
        rnn(mg.zeros(5, 3), mg.zeros(3, 4))
    with pytest.raises(ValueError, match="dtype"):
        rnn(mg.zeros(5, 2, 3, dtype=mg.float64))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNNCell(3, 4, nonlinearity="gelu")
    for p in (1.5, -0.1, True):
        with pytest.raises(ValueError, match="dropout should be a number in range"):
            nn.RNN(3, 4, num_layers=2, dropout=p)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.RNN(3, 4, dropout=0.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.RNN(3, 0)
    with pytest.raises(TypeError, match="hidden_size should be of type int"):
        nn.RNN(3, 4.0)
    with pytest.raises(ValueError, match="lengths"):
        rnn(mg.zeros(5, 2, 3), lengths=[5, 6])
    with pytest.raises(ValueError, match="lengths"):
        rnn(mg.zeros(5, 2, 3), lengths=[5])
    cell = nn.RNNCell(3, 4)
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D, got 3D"):
        cell(mg.zeros(2, 2, 3))
    with pytest.raises(RuntimeError, match="inconsistent input_size: got 5 expected 3"):
        cell(mg.zeros(2, 5))
    with pytest.raises(RuntimeError, match="Input batch size 2 doesn't match hidden0 batch size 3"):
        cell(mg.zeros(2, 3), mg.zeros(3, 4))
    with pytest.raises(RuntimeError, match="hidden0 has inconsistent hidden_size: got 5, expected 4"):
        cell(mg.zeros(2, 3), mg.zeros(2, 5))


def test_repr_matches_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for args, kwargs in [((3, 4), {}), ((3, 4, 2), {"bidirectional": True}),
                             ((3, 4, 2), {"bias": False, "batch_first": True, "dropout": 0.1})]:
            assert repr(nn.RNN(*args, **kwargs)) == repr(torch.nn.RNN(*args, **kwargs))
    assert repr(nn.RNNCell(3, 4, bias=False)) == repr(torch.nn.RNNCell(3, 4, bias=False))
