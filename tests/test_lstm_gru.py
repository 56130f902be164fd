"""nn.LSTM, nn.GRU, LSTMCell and GRUCell against torch.nn: outputs, final states and every gradient over a
sampled configuration grid; cells in a hand loop; gradcheck; padded batches against packed sequences; state
dicts both ways; dropout; torch's errors for bad calls."""
import itertools
import math
import random
import threading
import warnings

import numpy as np
import pytest
import torch
from nn_torch_helpers import TORCH_DTYPE, assert_close, assert_grads_match, pair, to_torch_state, torch_twin

import minigrad as mg
from minigrad import nn

# torch's own notice that its LSTM with proj_size runs without oneDNN
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported:UserWarning")


def _grid():
    """A deterministic sample of LSTM/GRU x layers x directions x batch_first x bias x proj_size x (T, B) x
    states given x dtype, plus corners (T = B = 1; every option on)."""
    full = [c for c in itertools.product(
        ["LSTM", "GRU"],
        [1, 2, 3],                                 # num_layers
        [False, True],                             # bidirectional
        [False, True],                             # batch_first
        [True, False],                             # bias
        [0, 3],                                    # proj_size (LSTM only)
        [(1, 1), (5, 3), (7, 1), (1, 4), (4, 2)],  # (T, B)
        [False, True],                             # h0 (and c0) given
        [np.float64, np.float32]) if c[0] == "LSTM" or c[5] == 0]
    corners = [("LSTM", 3, True, True, False, 3, (1, 1), True, np.float64),
               ("GRU", 3, True, True, False, 0, (1, 1), True, np.float64),
               ("LSTM", 2, True, False, True, 3, (6, 5), True, np.float32),
               ("GRU", 2, True, True, True, 0, (6, 5), False, np.float32)]
    return random.Random(16).sample(full, 44) + corners


def _modules(kind, in_size, hidden, num_layers, proj, dtype, **options):
    """A minigrad LSTM/GRU and its torch twin with the same weights."""
    if proj:
        options["proj_size"] = proj
    ours = getattr(nn, kind)(in_size, hidden, num_layers, dtype=dtype, **options)
    theirs = getattr(torch.nn, kind)(in_size, hidden, num_layers, dtype=TORCH_DTYPE[dtype], **options)
    return ours, torch_twin(ours, theirs)


def _weighted_loss(tensors, torch_tensors, dtype, seed=7):
    """sum(w_i * t_i) over the given outputs with a different random weight for every element, in both
    libraries."""
    rng = np.random.default_rng(seed)
    loss, tloss = 0, 0
    for t, tt in zip(tensors, torch_tensors):
        w = rng.standard_normal(t.shape).astype(dtype)
        loss = loss + (t * mg.tensor(w)).sum()
        tloss = tloss + (tt * torch.from_numpy(w)).sum()
    return loss, tloss


def _run_pair(kind, ours, theirs, x_np, states_np, dtype, lengths=None):
    """Both modules on the same input and initial states (None, h0, or (h0, c0)) under a weighted loss;
    returns (leaf tensors, torch leaf tensors, outputs, torch outputs): outputs are [output, h_n(, c_n)]."""
    x, tx = pair(x_np, requires_grad=True)
    leaves, tleaves = [x], [tx]
    for s in states_np or ():
        a, b = pair(s, requires_grad=True)
        leaves.append(a)
        tleaves.append(b)
    state = tstate = None
    if states_np is not None:
        state, tstate = (tuple(leaves[1:]), tuple(tleaves[1:])) if kind == "LSTM" else (leaves[1], tleaves[1])
    out, final = ours(x, state, lengths=lengths)
    batch_first = ours.batch_first
    if lengths is None:
        tout, tfinal = theirs(tx, tstate)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=False)
        tpacked, tfinal = theirs(packed, tstate)
        tout, _ = torch.nn.utils.rnn.pad_packed_sequence(tpacked, batch_first=batch_first,
                                                         total_length=x_np.shape[1 if batch_first else 0])
    outs = [out, *final] if kind == "LSTM" else [out, final]
    touts = [tout, *tfinal] if kind == "LSTM" else [tout, tfinal]
    loss, tloss = _weighted_loss(outs, touts, dtype)
    loss.backward()
    tloss.backward()
    return leaves, tleaves, outs, touts


def _assert_pair(ours, theirs, leaves, tleaves, outs, touts, dtype):
    for name, a, b in zip(["output", "h_n", "c_n"], outs, touts):
        assert a.dtype == dtype
        assert_close(a, b, dtype, name)
    for name, a, b in zip(["input grad", "h0 grad", "c0 grad"], leaves, tleaves):
        assert_close(a.grad, b.grad, dtype, name)
    assert_grads_match(ours, theirs, dtype)


@pytest.mark.parametrize("kind,num_layers,bidir,batch_first,bias,proj,tb,given,dtype", _grid())
def test_matches_torch(kind, num_layers, bidir, batch_first, bias, proj, tb, given, dtype):
    mg.manual_seed(num_layers * 100 + tb[0] * 10 + tb[1])
    seq_len, batch = tb
    in_size, hidden = 3, 5
    ours, theirs = _modules(kind, in_size, hidden, num_layers, proj, dtype, bias=bias,
                            batch_first=batch_first, bidirectional=bidir)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((batch, seq_len, in_size) if batch_first else (seq_len, batch, in_size))
    states = None
    if given:
        rows = (2 if bidir else 1) * num_layers
        states = [rng.standard_normal((rows, batch, proj or hidden)).astype(dtype)]
        if kind == "LSTM":
            states.append(rng.standard_normal((rows, batch, hidden)).astype(dtype))
    results = _run_pair(kind, ours, theirs, x_np.astype(dtype), states, dtype)
    _assert_pair(ours, theirs, *results, dtype)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_threads_sharing_a_module_add_up_torchs_gradients(kind):
    """Threads training one module at once (two bidirectional layers: the fused sequence jobs, the shared
    packed weights, both threads' kernel jobs on the pool together): every parameter ends with the sum of
    torch's gradients for all of their passes, and each thread's outputs are torch's."""
    ours, theirs = _modules(kind, 6, 16, 2, 0, np.float64, bidirectional=True)
    rng = np.random.default_rng(19)
    xs = [rng.standard_normal((12, 8, 6)) for _ in range(4)]
    passes = 6
    errors, outs = [], {}

    def work(i):
        try:
            for _ in range(passes):
                out, _ = ours(mg.tensor(xs[i]))
                (out * out).sum().backward()
            outs[i] = out.data.copy()
        except Exception as e:  # reported below: an exception in a thread would not fail the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for i, x in enumerate(xs):
        tout, _ = theirs(torch.from_numpy(x))
        (tout * tout).sum().mul(passes).backward()
        assert_close(outs[i], tout, np.float64, f"thread {i}'s output")
    assert_grads_match(ours, theirs, np.float64)


@pytest.mark.parametrize("kind,bias,dtype", [("LSTM", True, np.float64), ("LSTM", False, np.float32),
                                             ("GRU", True, np.float32), ("GRU", False, np.float64)])
def test_cells_match_torch_in_a_hand_loop(kind, bias, dtype):
    mg.manual_seed(1)
    cell = getattr(nn, kind + "Cell")(4, 3, bias=bias, dtype=dtype)
    tcell = torch_twin(cell, getattr(torch.nn, kind + "Cell")(4, 3, bias=bias, dtype=TORCH_DTYPE[dtype]))
    rng = np.random.default_rng(2)
    xs, txs = pair(rng.standard_normal((6, 5, 4)).astype(dtype), requires_grad=True)
    h0, th0 = pair(rng.standard_normal((5, 3)).astype(dtype), requires_grad=True)
    c0, tc0 = pair(rng.standard_normal((5, 3)).astype(dtype), requires_grad=True)
    state, tstate = ((h0, c0), (th0, tc0)) if kind == "LSTM" else (h0, th0)
    outs, touts = [], []
    for t in range(6):  # one cell reused at every step: its gradients sum over the steps
        state, tstate = cell(xs[t], state), tcell(txs[t], tstate)
        outs.extend(state if kind == "LSTM" else [state])
        touts.extend(tstate if kind == "LSTM" else [tstate])
    loss, tloss = _weighted_loss(outs, touts, dtype)
    loss.backward()
    tloss.backward()
    for i, (a, b) in enumerate(zip(outs, touts)):
        assert_close(a, b, dtype, f"state {i}")
    assert_close(xs.grad, txs.grad, dtype, "x grad")
    assert_close(h0.grad, th0.grad, dtype, "h0 grad")
    if kind == "LSTM":
        assert_close(c0.grad, tc0.grad, dtype, "c0 grad")
    assert_grads_match(cell, tcell, dtype)
    # hx omitted (zeros), unbatched input with and without hx
    x0, tx0 = xs[0].detach(), txs[0].detach()
    unbatched = ((h0[0], c0[0]), (th0[0], tc0[0])) if kind == "LSTM" else (h0[0], th0[0])
    calls = [((x0,), (tx0,)), ((x0[0],), (tx0[0],)), ((x0[0], unbatched[0]), (tx0[0], unbatched[1]))]
    for args, targs in calls:
        got, want = cell(*args), tcell(*targs)
        for a, b in zip(got if kind == "LSTM" else [got], want if kind == "LSTM" else [want]):
            assert_close(a, b, dtype, f"{len(args)} argument(s), input {tuple(args[0].shape)}")


def test_cell_loop_equals_the_layer():
    """nn.LSTM / nn.GRU with one layer equals its cell looped over time (the same weights)."""
    mg.manual_seed(5)
    rng = np.random.default_rng(3)
    x = mg.tensor(rng.standard_normal((6, 2, 3)))
    for kind in ("LSTM", "GRU"):
        cell = getattr(nn, kind + "Cell")(3, 4, dtype=mg.float64)
        layer = getattr(nn, kind)(3, 4, dtype=mg.float64)
        layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
        out, final = layer(x)
        state, steps = None, []
        for x_t in x:
            state = cell(x_t, state)
            steps.append(state[0] if kind == "LSTM" else state)
        np.testing.assert_allclose(mg.stack(steps).data, out.data, rtol=1e-12, atol=1e-14)
        for a, b in zip(state if kind == "LSTM" else [state], final if kind == "LSTM" else [final]):
            np.testing.assert_allclose(a.data, b.data[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind,options", [("LSTM", {"bidirectional": True, "proj_size": 2}),
                                          ("LSTM", {"bias": False}),
                                          ("GRU", {"bidirectional": True}),
                                          ("GRU", {"bias": False})])
def test_gradcheck(kind, options):
    mg.manual_seed(4)
    module = getattr(nn, kind)(2, 3, num_layers=2, dtype=mg.float64, **options)
    rng = np.random.default_rng(5)
    rows = (2 if options.get("bidirectional") else 1) * 2
    x = mg.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    h0 = mg.tensor(rng.standard_normal((rows, 2, options.get("proj_size", 3))), requires_grad=True)
    c0 = mg.tensor(rng.standard_normal((rows, 2, 3)), requires_grad=True)
    inputs = [x, h0, c0] if kind == "LSTM" else [x, h0]

    def fn(x, h0, *rest):  # gradcheck perturbs the weights in place, so the module sees them
        if kind == "LSTM":
            out, (h_n, c_n) = module(x, (h0, rest[0]))
            return out.sum() + (h_n * h_n).sum() + (c_n * c_n).sum()
        out, h_n = module(x, h0)
        return out.sum() + (h_n * h_n).sum()

    assert mg.autograd.gradcheck(fn, inputs + list(module.parameters()), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("kind,bidir,batch_first,num_layers,proj,dtype", [
    ("LSTM", True, False, 2, 0, np.float64), ("LSTM", False, True, 1, 2, np.float32),
    ("LSTM", True, True, 2, 2, np.float64), ("GRU", True, True, 2, 0, np.float64),
    ("GRU", False, False, 3, 0, np.float32)])
def test_lengths_match_packed_sequences(kind, bidir, batch_first, num_layers, proj, dtype):
    mg.manual_seed(3)
    seq_len, batch, in_size, hidden = 6, 4, 3, 4
    lengths = [4, 6, 1, 3]  # unsorted, as with enforce_sorted=False
    ours, theirs = _modules(kind, in_size, hidden, num_layers, proj, dtype, batch_first=batch_first,
                            bidirectional=bidir)
    rng = np.random.default_rng(1)
    shape = (batch, seq_len, in_size) if batch_first else (seq_len, batch, in_size)
    x_np = rng.standard_normal(shape).astype(dtype)
    rows = (2 if bidir else 1) * num_layers
    states = [rng.standard_normal((rows, batch, proj or hidden)).astype(dtype)]
    if kind == "LSTM":
        states.append(rng.standard_normal((rows, batch, hidden)).astype(dtype))
    results = _run_pair(kind, ours, theirs, x_np, states, dtype, lengths)
    _assert_pair(ours, theirs, *results, dtype)
    # Padding: zero output, zero gradient, and its values do not matter at all.
    leaves, outs = results[0], results[2]
    pad_mask = np.arange(seq_len)[:, None] >= np.array(lengths)[None, :]
    if batch_first:
        pad_mask = pad_mask.T
    assert not outs[0].data[pad_mask].any() and not leaves[0].grad.data[pad_mask].any()
    x_nan = x_np.copy()
    x_nan[pad_mask] = np.nan
    state = tuple(mg.tensor(s) for s in states) if kind == "LSTM" else mg.tensor(states[0])
    again = ours(mg.tensor(x_nan), state, lengths=lengths)
    for a, b in zip([again[0], *again[1]] if kind == "LSTM" else again, outs):
        np.testing.assert_array_equal(a.data, b.data)


def test_unbatched_input():
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    x, tx = pair(rng.standard_normal((5, 3)))
    for kind, proj in (("LSTM", 0), ("LSTM", 2), ("GRU", 0)):
        ours, theirs = _modules(kind, 3, 4, 2, proj, np.float64, bidirectional=True)
        h0, th0 = pair(rng.standard_normal((4, proj or 4)))
        c0, tc0 = pair(rng.standard_normal((4, 4)))
        given = ((h0, c0), (th0, tc0)) if kind == "LSTM" else (h0, th0)
        for args, targs in [((x,), (tx,)), ((x, given[0]), (tx, given[1]))]:
            out, final = ours(*args)
            tout, tfinal = theirs(*targs)
            assert out.shape == (5, 2 * (proj or 4))
            assert_close(out, tout, np.float64, "output")
            for a, b in zip(final if kind == "LSTM" else [final], tfinal if kind == "LSTM" else [tfinal]):
                assert_close(a, b, np.float64, "final state")


def test_shapes_and_reverse_final_state():
    lstm = nn.LSTM(3, 4, num_layers=3, bidirectional=True, batch_first=True, proj_size=2)
    out, (h_n, c_n) = lstm(mg.randn(2, 7, 3))
    assert out.shape == (2, 7, 4) and h_n.shape == (6, 2, 2) and c_n.shape == (6, 2, 4)
    np.testing.assert_array_equal(h_n.data[-2], out.data[:, -1, :2])  # last layer, forward: last step
    np.testing.assert_array_equal(h_n.data[-1], out.data[:, 0, 2:])  # last layer, reverse: step 0
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    out, h_n = gru(mg.randn(7, 2, 3))
    assert out.shape == (7, 2, 8) and h_n.shape == (4, 2, 4) and out.dtype == mg.float32


def test_parameter_names_shapes_order_and_init():
    mg.manual_seed(0)
    hidden = 16
    bound = 1 / math.sqrt(hidden)
    configs = [("LSTM", (2,), {"bidirectional": True}),
               ("LSTM", (2,), {"proj_size": 5, "bidirectional": True}),
               ("LSTM", (), {"proj_size": 5, "bias": False}), ("GRU", (3,), {"bidirectional": True}),
               ("GRU", (), {"bias": False}), ("LSTMCell", (), {}), ("GRUCell", (), {"bias": False})]
    for kind, args, kwargs in configs:
        ours = getattr(nn, kind)(3, hidden, *args, **kwargs)
        theirs = getattr(torch.nn, kind)(3, hidden, *args, **kwargs)
        assert ([(n, tuple(p.shape)) for n, p in ours.named_parameters()]
                == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()])
        values = np.concatenate([p.data.ravel() for p in ours.parameters()])
        assert np.abs(values).max() <= bound
        assert abs(values.std() - bound / math.sqrt(3)) < 0.1 * bound  # uniform on [-k, k]
    lstm = nn.LSTM(2, 3, num_layers=2, bidirectional=True, proj_size=1)
    assert [len(w) for w in lstm.all_weights] == [5] * 4
    assert lstm.all_weights[3][4] is lstm.weight_hr_l1_reverse


def test_state_dicts_load_both_ways():
    mg.manual_seed(8)
    x, tx = pair(np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32))
    for kind, options in (("LSTM", {"proj_size": 2}), ("GRU", {})):
        make = getattr(nn, kind)
        tmodule = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True, **options)
        module = make(3, 4, num_layers=2, bidirectional=True, batch_first=True, **options)
        module.load_state_dict(tmodule.state_dict())  # torch -> minigrad (torch tensors are array-likes)
        assert_close(module(x)[0], tmodule(tx)[0], np.float32, "torch -> minigrad")
        module2 = make(3, 4, num_layers=2, bidirectional=True, batch_first=True, **options)
        # minigrad -> torch, with the README's one-liner
        tmodule.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in module2.state_dict().items()})
        assert_close(module2(x)[0], tmodule(tx)[0], np.float32, "minigrad -> torch")
    cell = nn.LSTMCell(3, 4)
    tcell = torch.nn.LSTMCell(3, 4)
    tcell.load_state_dict(to_torch_state(cell))
    assert_close(cell(x[0])[1], tcell(tx[0])[1], np.float32, "LSTMCell")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dropout_between_layers(kind):
    mg.manual_seed(0)
    p = 0.4
    ours, theirs = _modules(kind, 3, 8, 2, 0, np.float64, dropout=p)
    x, tx = pair(np.random.default_rng(0).standard_normal((5, 300, 3)))
    ours.eval()
    theirs.eval()
    assert_close(ours(x)[0], theirs(tx)[0], np.float64, "eval output")
    ours.train()
    mg.manual_seed(11)
    train_out, train_final = ours(x)
    assert np.abs(train_out.data - ours.eval()(x)[0].data).max() > 1e-3
    # Training mode is layer 1 run on dropout(layer 0's output), the mask drawn from minigrad's generator
    # (nothing else in the forward pass draws from it): rebuild it and check it and the output.
    first, second = getattr(nn, kind)(3, 8, dtype=mg.float64), getattr(nn, kind)(8, 8, dtype=mg.float64)
    state = ours.state_dict()
    first.load_state_dict({k: v for k, v in state.items() if k.endswith("_l0")})
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in state.items() if k.endswith("_l1")})
    hidden0 = first(x)[0]
    mg.manual_seed(11)
    mask = mg.nn.functional.dropout(mg.ones(*hidden0.shape, dtype=mg.float64), p, training=True).data
    assert abs((mask == 0).mean() - p) < 4 * math.sqrt(p * (1 - p) / mask.size)  # 4 sigma
    assert set(np.unique(mask)) == {0.0, 1 / (1 - p)}  # inverted dropout
    expected = second(hidden0 * mg.tensor(mask))
    np.testing.assert_allclose(train_out.data, expected[0].data, rtol=1e-12, atol=1e-14)
    # layer 0's final state is untouched by dropout (it applies to its output, between the layers)
    finals = [train_final[0], expected[1][0]] if kind == "LSTM" else [train_final, expected[1]]
    np.testing.assert_allclose(finals[0].data[1], finals[1].data[0], rtol=1e-12, atol=1e-14)
    # p = 0 in training mode is no dropout at all: torch's training-mode output
    plain, tplain = _modules(kind, 3, 8, 2, 0, np.float64, dropout=0.0)
    assert_close(plain.train()(x)[0], tplain.train()(tx)[0], np.float64, "p = 0 output")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_empty_batch_with_lengths_matches_torch(kind):
    """A batch of no sequences, with its (empty) lengths: an empty output and states, as torch's; the empty
    lengths list used to reach numpy's min() of an empty array."""
    ours, theirs = _modules(kind, 3, 4, 2, 0, np.float64, bidirectional=True)
    x = mg.zeros(5, 0, 3, dtype=mg.float64, requires_grad=True)
    out, _ = ours(x, lengths=[])
    t_out, _ = theirs(torch.zeros(5, 0, 3, dtype=torch.float64))
    assert out.shape == tuple(t_out.shape) == (5, 0, 8)
    out.sum().backward()
    assert x.grad.shape == (5, 0, 3)


def test_errors_match_torch():
    lstm = nn.LSTM(3, 4, num_layers=2)
    gru = nn.GRU(3, 4, num_layers=2)
    x = mg.zeros(5, 2, 3)
    cases = [
        (lambda: lstm(mg.zeros(2, 2, 3, 3)), ValueError, "LSTM: Expected input to be 2D or 3D, got 4D"),
        (lambda: gru(mg.zeros(3)), ValueError, "GRU: Expected input to be 2D or 3D, got 1D"),
        (lambda: lstm(mg.zeros(5, 2, 7)), RuntimeError, "input_size. Expected 3, got 7"),
        (lambda: lstm(x, mg.zeros(2, 2, 4)), TypeError, "hx must be a tuple"),
        (lambda: lstm(x, (mg.zeros(2, 2, 4),)), TypeError, "hx must be a tuple"),
        (lambda: lstm(x, (mg.zeros(2, 4), mg.zeros(2, 2, 4))), RuntimeError,
         r"For batched 3-D input, hx and cx should also be 3-D but got \(2-D, 3-D\) tensors"),
        (lambda: lstm(mg.zeros(5, 3), (mg.zeros(2, 1, 4), mg.zeros(2, 4))), RuntimeError,
         r"For unbatched 2-D input, hx and cx should also be 2-D but got \(3-D, 2-D\) tensors"),
        (lambda: lstm(x, (mg.zeros(2, 3, 4), mg.zeros(2, 2, 4))), RuntimeError,
         r"Expected hidden\[0\] size \(2, 2, 4\), got \[2, 3, 4\]"),
        (lambda: lstm(x, (mg.zeros(2, 2, 4), mg.zeros(2, 2, 5))), RuntimeError,
         r"Expected hidden\[1\] size \(2, 2, 4\), got \[2, 2, 5\]"),
        (lambda: nn.LSTM(3, 4, proj_size=2)(x, (mg.zeros(1, 2, 4), mg.zeros(1, 2, 4))), RuntimeError,
         r"Expected hidden\[0\] size \(1, 2, 2\), got \[1, 2, 4\]"),
        (lambda: lstm(x, (mg.zeros(2, 2, 4, dtype=mg.float64), mg.zeros(2, 2, 4))), RuntimeError, "dtype"),
        (lambda: gru(x, mg.zeros(2, 3, 4)), RuntimeError,
         r"Expected hidden size \(2, 2, 4\), got \[2, 3, 4\]"),
        (lambda: gru(x, mg.zeros(2, 4)), RuntimeError, "hx should also be 3-D"),
        (lambda: gru(mg.zeros(5, 2, 3, dtype=mg.float64)), ValueError, "dtype"),
        (lambda: gru(x, lengths=[5, 6]), ValueError, "GRU: lengths must be between 1 and the sequence length 5"),
        (lambda: gru(x, lengths=[5]), ValueError, "GRU: lengths must be 2 integers"),
        (lambda: lstm(x, lengths=[5, 0]), ValueError, "LSTM: lengths must be between 1 and the sequence length 5"),
        (lambda: lstm(x, lengths=[5.0, 2]), ValueError, "LSTM: lengths must be 2 integers"),
        (lambda: lstm(mg.zeros(5, 3), lengths=[5]), ValueError, "LSTM: lengths needs batched"),
        # an integer input gets no advice to build an integer model
        (lambda: lstm(mg.zeros(5, 2, 3, dtype=mg.int64)), ValueError,
         r"LSTM input dtype \(int64\) does not match weight dtype \(float32\). Convert input: "
         r"input.to\(minigrad.float32\)$"),
        (lambda: nn.LSTM(3, 4, proj_size=4), ValueError, "proj_size has to be smaller than hidden_size"),
        (lambda: nn.LSTM(3, 4, proj_size=-1), ValueError, "proj_size should be a positive integer or zero"),
        (lambda: nn.GRU(3, 0), ValueError, "hidden_size must be greater than zero"),
        (lambda: nn.LSTM(3, 4, num_layers=2, dropout=1.5), ValueError, "dropout should be a number in range"),
        (lambda: nn.LSTMCell(3, 4)(mg.zeros(2, 2, 3)), ValueError, "LSTMCell: Expected input to be 1D or 2D"),
        (lambda: nn.GRUCell(3, 4)(mg.zeros(2, 2, 3)), ValueError, "GRUCell: Expected input to be 1D or 2D"),
        (lambda: nn.LSTMCell(3, 4)(mg.zeros(2, 5)), RuntimeError,
         "inconsistent input_size: got 5 expected 3"),
        (lambda: nn.LSTMCell(3, 4)(mg.zeros(2, 3), mg.zeros(2, 4)), TypeError, "hx must be a tuple"),
        (lambda: nn.LSTMCell(3, 4)(mg.zeros(2, 3), (mg.zeros(3, 4), mg.zeros(3, 4))), RuntimeError,
         "Input batch size 2 doesn't match hidden0 batch size 3"),
        (lambda: nn.LSTMCell(3, 4)(mg.zeros(2, 3), (mg.zeros(2, 4), mg.zeros(2, 5))), RuntimeError,
         "hidden1 has inconsistent hidden_size: got 5, expected 4"),
        (lambda: nn.GRUCell(3, 4)(mg.zeros(2, 3), mg.zeros(2, 5)), RuntimeError,
         "hidden0 has inconsistent hidden_size: got 5, expected 4"),
    ]
    for call, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            call()
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.5)


def test_repr_matches_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind, args, kwargs in [("LSTM", (3, 4), {}),
                                   ("LSTM", (3, 4, 2), {"proj_size": 2, "bidirectional": True}),
                                   ("GRU", (3, 4, 2), {"bias": False, "batch_first": True, "dropout": 0.1})]:
            assert repr(getattr(nn, kind)(*args, **kwargs)) == repr(getattr(torch.nn, kind)(*args, **kwargs))
    assert repr(nn.LSTMCell(3, 4)) == repr(torch.nn.LSTMCell(3, 4))
    assert repr(nn.GRUCell(3, 4, bias=False)) == repr(torch.nn.GRUCell(3, 4, bias=False))
