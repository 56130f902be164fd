"""The gated layers' sequence jobs as the layers use them (the kernels: tests/test_gated_seq_kernels.py): the
nodes nn._recurrent records around K.lstm_seq / K.gru_seq (``lstm_sequence``, ``gru_sequence``) and the chains of
``LstmHeadBackward`` and ``GruHeadBackward`` that run K.lstm_seq_backward / K.gru_seq_backward, checked against
the node-by-node backward (bitwise) and torch: hooks, in-place edits and anomaly mode included."""
import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad import _backend
from minigrad.nn import _recurrent

from test_gated_seq_kernels import DTYPES, TOL, randn

# ---- the layer: lstm_sequence and the fused chain ------------------------------------------------------
@pytest.fixture
def seq_calls(monkeypatch):
    """The chain lengths K.lstm_seq_backward and K.gru_seq_backward ran (only the compiled engine runs the
    fused chains)."""
    calls = []
    for name in ("lstm_seq_backward", "gru_seq_backward"):
        real = getattr(_backend, name)

        def counted(*args, real=real):
            calls.append(len(args[0]))
            return real(*args)

        monkeypatch.setattr(_backend, name, counted)
    return calls


COMPILED = mg.autograd.engine_name() == "compiled"


def _layer(kind, dtype, layers=1, bidirectional=False, seed=3):
    mg.manual_seed(seed)
    model = getattr(mg.nn, kind)(3, 6, layers, bidirectional=bidirectional, dtype=dtype)
    twin = getattr(torch.nn, kind)(3, 6, layers, bidirectional=bidirectional,
                                   dtype=torch.float64 if dtype == np.float64 else torch.float32)
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    return model, twin


def _layer_loss(kind, model, leaves, weights):
    """A loss weighting every output element differently, plus h_n (and an LSTM's c_n, squared)."""
    if kind == "LSTM":
        out, (hn, cn) = model(leaves[0], (leaves[1], leaves[2]))
        return (out * weights).sum() + (hn * 0.5).sum() + (cn * cn).sum()
    out, hn = model(leaves[0], leaves[1])
    return (out * weights).sum() + (hn * hn).sum()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_layer_backward_runs_one_chain_per_direction_with_the_nodes_bits(kind, dtype, layers, bidirectional,
                                                                         seq_calls):
    """nn.LSTM's and nn.GRU's forward is one sequence job per layer and their backward one chain job per
    layer and direction: the gradients are bitwise those of the node-by-node backward (autograd.grad, which
    runs every node's own backward) and within tolerance of torch's."""
    steps, batch, hidden = 9, 5, 6
    model, twin = _layer(kind, dtype, layers, bidirectional)
    rng = np.random.default_rng(4)
    d = 2 if bidirectional else 1
    arrays = [randn(rng, s, dtype) for s in ((steps, batch, 3), (layers * d, batch, hidden),
                                            (layers * d, batch, hidden), (steps, batch, d * hidden))]
    n_leaves = 3 if kind == "LSTM" else 2
    leaves = [mg.tensor(a, requires_grad=True) for a in arrays[:n_leaves]]
    _layer_loss(kind, model, leaves, mg.tensor(arrays[3])).backward()
    fused = [t.grad.numpy() for t in leaves + list(model.parameters())]
    assert seq_calls == ([steps] * layers * d if COMPILED else [])
    leaves = [mg.tensor(a, requires_grad=True) for a in arrays[:n_leaves]]
    plain = [g.numpy() for g in mg.autograd.grad(_layer_loss(kind, model, leaves, mg.tensor(arrays[3])),
                                                 leaves + list(model.parameters()))]
    assert len(seq_calls) == (layers * d if COMPILED else 0)  # autograd.grad ran no chain
    for a, b in zip(fused, plain):
        assert np.array_equal(a, b)
    tleaves = [torch.tensor(a, requires_grad=True) for a in arrays[:n_leaves]]
    _layer_loss(kind, twin, tleaves, torch.from_numpy(arrays[3])).backward()
    tol = TOL[dtype]
    for a, b in zip(fused, [t.grad for t in tleaves] + [p.grad for p in twin.parameters()]):
        np.testing.assert_allclose(a, b.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_sequence_equals_the_step_loop(dtype):
    """_recurrent.lstm_sequence gives the loop of step and lstm_epilogue: the same values (bits), the same
    nodes in the same order with the same saved arrays, per direction."""
    rng = np.random.default_rng(5)
    steps, batch, hidden = 4, 3, 5
    xw = [mg.tensor(randn(rng, (steps, batch, 4 * hidden), dtype), requires_grad=True) for _ in range(2)]
    w = [mg.tensor(randn(rng, (4 * hidden, hidden), dtype), requires_grad=True) for _ in range(2)]
    h0 = [mg.tensor(randn(rng, (batch, hidden), dtype), requires_grad=True) for _ in range(2)]
    c0 = [mg.tensor(randn(rng, (batch, hidden), dtype), requires_grad=True) for _ in range(2)]
    rs = [_recurrent.ReusedOperand(x.T) for x in w]
    outs = [np.empty((steps, batch, hidden), dtype) for _ in range(2)]
    xs = [x.unbind(0) for x in xw]
    pairs = _recurrent.lstm_sequence(xs, [(h0[d], c0[d]) for d in range(2)], rs, outs, [False, True])
    loop = [[None] * steps for _ in range(2)]
    states = [(h0[d], c0[d]) for d in range(2)]
    for s in range(steps):
        for d in range(2):
            t = steps - 1 - s if d else s
            gates = _recurrent.step(xs[d][t], states[d][0], rs[d])
            states[d] = loop[d][t] = _recurrent.lstm_epilogue(gates, states[d][1])
    for d in range(2):
        for t in range(steps):
            for a, b in zip(pairs[d][t], loop[d][t]):
                assert np.array_equal(a.numpy(), b.numpy())
                assert a.grad_fn.name() == b.grad_fn.name()
            assert np.shares_memory(pairs[d][t][0].numpy(), outs[d])  # h' written into its place
    # the same graph: node names along a walk from the last outputs
    assert _graph_names([pairs[0][-1][0], pairs[1][0][0]]) == _graph_names([loop[0][-1][0], loop[1][0][0]])


def _graph_names(roots):
    seen, order, stack = set(), [], [t.grad_fn for t in roots]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        order.append(node.name())
        stack.extend(e[0] for e in node.next_functions if e is not None)
    return sorted(order)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_sequence_equals_the_step_loop(dtype):
    """_recurrent.gru_sequence gives the loop of step and gru_epilogue: the same values (bits) and nodes."""
    rng = np.random.default_rng(6)
    steps, batch, hidden = 4, 3, 5
    xw = [mg.tensor(randn(rng, (steps, batch, 3 * hidden), dtype), requires_grad=True) for _ in range(2)]
    w = [mg.tensor(randn(rng, (3 * hidden, hidden), dtype), requires_grad=True) for _ in range(2)]
    b = [mg.tensor(randn(rng, (3 * hidden,), dtype), requires_grad=True) for _ in range(2)]
    h0 = [mg.tensor(randn(rng, (batch, hidden), dtype), requires_grad=True) for _ in range(2)]
    addends = [mg.zeros(batch, 3 * hidden, dtype=dtype) + x for x in b]
    rs = [_recurrent.ReusedOperand(x.T) for x in w]
    outs = [np.empty((steps, batch, hidden), dtype) for _ in range(2)]
    xs = [x.unbind(0) for x in xw]
    hs = _recurrent.gru_sequence(xs, addends, h0, rs, outs, [False, True])
    loop = [[None] * steps for _ in range(2)]
    states = list(h0)
    for s in range(steps):
        for d in range(2):
            t = steps - 1 - s if d else s
            states[d] = loop[d][t] = _recurrent.gru_epilogue(xs[d][t], _recurrent.step(addends[d], states[d], rs[d]),
                                                             states[d])
    for d in range(2):
        for t in range(steps):
            assert np.array_equal(hs[d][t].numpy(), loop[d][t].numpy())
            assert hs[d][t].grad_fn.name() == loop[d][t].grad_fn.name()
            assert np.shares_memory(hs[d][t].numpy(), outs[d])
    assert _graph_names([hs[0][-1], hs[1][0]]) == _graph_names([loop[0][-1], loop[1][0]])


def _sequence(kind, dtype, steps, batch, hidden, seed=7):
    """One direction run by lstm_sequence / gru_sequence from leaves (input projection, W_hh, an LSTM's c0 or
    a GRU's b_hh, h0), and the same in torch: (leaves, per step h, per step c (LSTM) or None, torch leaves,
    torch per step h, torch per step c)."""
    rng = np.random.default_rng(seed)
    g = 4 if kind == "lstm" else 3
    arrays = [randn(rng, (steps, batch, g * hidden), dtype), randn(rng, (g * hidden, hidden), dtype, 0.4),
              randn(rng, (batch, hidden) if kind == "lstm" else (g * hidden,), dtype),
              randn(rng, (batch, hidden), dtype)]
    leaves = [mg.tensor(a, requires_grad=True) for a in arrays]
    xw, w, third, h0 = leaves
    outs = [np.empty((steps, batch, hidden), dtype)]
    if kind == "lstm":
        pairs = _recurrent.lstm_sequence([xw.unbind(0)], [(h0 * 1.0, third * 1.0)], [_recurrent.ReusedOperand(w.T)],
                                         outs, [False])[0]
        hs, cs = [h for h, _ in pairs], [c for _, c in pairs]
    else:
        addend = mg.zeros(batch, g * hidden, dtype=dtype) + third
        hs = _recurrent.gru_sequence([xw.unbind(0)], [addend], [h0 * 1.0], [_recurrent.ReusedOperand(w.T)], outs,
                                     [False])[0]
        cs = None
    tleaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    txw, tw, tthird, th = tleaves
    th, tc, ths, tcs = th * 1.0, tthird * 1.0, [], []
    for t in range(steps):
        if kind == "lstm":
            i, f, gg, o = (txw[t] + th @ tw.T).chunk(4, 1)
            tc = f.sigmoid() * tc + i.sigmoid() * gg.tanh()
            th = o.sigmoid() * tc.tanh()
            tcs.append(tc)
        else:
            x_r, x_z, x_n = txw[t].chunk(3, 1)
            h_r, h_z, h_n = (th @ tw.T + tthird).chunk(3, 1)
            r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
            th = (1 - z) * (x_n + r * h_n).tanh() + z * th
        ths.append(th)
    return leaves, hs, cs, tleaves, ths, (tcs if kind == "lstm" else None)


def _loss(stack, hs, cs, steps, weights):
    loss = (stack([hs[t] for t in steps]) * weights).sum()
    return loss + ((cs[-1] * cs[-1]).sum() if cs is not None else (hs[-1] * hs[-1]).sum())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("used", ["all", "some"])
def test_sequence_backward_runs_as_one_chain_with_the_nodes_bits(kind, dtype, used, seq_calls):
    """The backward of a sequence's steps runs as one chain job once the last step's gradients from
    elsewhere have all arrived (here from one stack of the states): the bits of the node-by-node backward
    (forced by retain_grad on every state, which the job must not skip) and torch's gradients, with every
    step's h in the loss and with only a few (the others' gradient is the product's alone), and the last
    c (LSTM) or h (GRU) in it a second time."""
    steps, batch, hidden = 12, 8, 16
    used_steps = list(range(steps)) if used == "all" else [3, 7, steps - 1]
    weights = np.random.default_rng(8).standard_normal((len(used_steps), batch, hidden)).astype(dtype)
    results = []
    for plain in (False, True):
        del seq_calls[:]
        leaves, hs, cs, _, _, _ = _sequence(kind, dtype, steps, batch, hidden)
        if plain:
            for h in hs:
                h.retain_grad()
        _loss(mg.stack, hs, cs, used_steps, mg.tensor(weights)).backward()
        assert seq_calls == ([] if plain or not COMPILED else [steps])
        results.append([leaf.grad.numpy().copy() for leaf in leaves])
    for fused, plain in zip(*results):
        assert np.array_equal(fused, plain)
    _, _, _, tleaves, ths, tcs = _sequence(kind, dtype, steps, batch, hidden)
    _loss(torch.stack, ths, tcs, used_steps, torch.from_numpy(weights)).backward()
    for got, leaf in zip(results[0], tleaves):
        np.testing.assert_allclose(got, leaf.grad.numpy(), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_hook_on_a_middle_state_splits_the_chain(kind, seq_calls):
    """A hook on a middle step's h sees that state's whole gradient (torch's): the chain stops above it, the
    hooked step runs its own nodes, and a second chain runs below it; every gradient is still torch's."""
    steps = 10
    leaves, hs, _, tleaves, ths, _ = _sequence(kind, np.float64, steps, 4, 8)
    seen = []
    hs[4].register_hook(lambda g: seen.append(g.numpy().copy()))
    ths[4].retain_grad()
    mg.stack(hs).sum().backward()
    torch.stack(ths).sum().backward()
    assert seq_calls == ([steps - 5, 4] if COMPILED else [])
    np.testing.assert_allclose(seen[0], ths[4].grad.numpy(), rtol=1e-12, atol=1e-14)
    for leaf, tleaf in zip(leaves, tleaves):
        np.testing.assert_allclose(leaf.grad.numpy(), tleaf.grad.numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kind,change", [("lstm", "c"), ("lstm", "h"), ("lstm", "w_hh"), ("gru", "h"),
                                         ("gru", "w_hh")])
def test_sequence_backward_refuses_changed_saved_states(kind, change):
    """A cell state, a state or W_hh changed in place after the forward makes the backward raise torch's
    error, as the node-by-node backward does: the fused chain never runs on changed values."""
    leaves, hs, cs, _, _, _ = _sequence(kind, np.float64, 8, 4, 8)
    loss = mg.stack(hs).sum()
    with mg.no_grad():
        {"c": lambda: cs[3], "h": lambda: hs[5], "w_hh": lambda: leaves[1]}[change]().mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_anomaly_mode_runs_the_plain_nodes(kind, seq_calls):
    """detect_anomaly acts node by node: no chain runs, and the gradients are the fused backward's."""
    leaves, hs, _, _, _, _ = _sequence(kind, np.float32, 6, 4, 8)
    mg.stack(hs).sum().backward()
    fused = [leaf.grad.numpy().copy() for leaf in leaves]
    assert len(seq_calls) == (1 if COMPILED else 0)
    leaves, hs, _, _, _, _ = _sequence(kind, np.float32, 6, 4, 8)
    with mg.autograd.detect_anomaly():
        mg.stack(hs).sum().backward()
    assert len(seq_calls) == (1 if COMPILED else 0)
    for a, leaf in zip(fused, leaves):  # (anomaly mode sums W_hh's steps one by one: other roundings)
        np.testing.assert_allclose(a, leaf.grad.numpy(), rtol=TOL[np.float32], atol=TOL[np.float32])
