"""Truncated BPTT: the stream layout, windows, the training helper against torch doing the same with detach(),
the k1/k2 variant, TBPTT(T, T) == full BPTT, and memory that stays flat over hundreds of windows."""
import collections
import gc
import tracemalloc

import numpy as np
import pytest
import torch
from nn_torch_helpers import assert_close, assert_grads_match, assert_params_match, torch_twin

import minigrad as mg
from minigrad import nn, optim, tbptt
from minigrad.autograd import live_nodes
from minigrad.nn import functional as F

VOCAB = 7


class CharLM(nn.Module):
    def __init__(self, hidden=6, cell="RNN"):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 4, dtype=mg.float64)
        self.rnn = getattr(nn, cell)(4, hidden, num_layers=2, dtype=mg.float64)
        self.head = nn.Linear(hidden, VOCAB, dtype=mg.float64)

    def forward(self, ids, h):
        out, h = self.rnn(self.emb(ids), h)
        return self.head(out), h


class TorchCharLM(torch.nn.Module):
    def __init__(self, hidden=6, cell="RNN"):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, 4, dtype=torch.float64)
        self.rnn = getattr(torch.nn, cell)(4, hidden, num_layers=2, dtype=torch.float64)
        self.head = torch.nn.Linear(hidden, VOCAB, dtype=torch.float64)

    def forward(self, ids, h):
        out, h = self.rnn(self.emb(ids), h)
        return self.head(out), h


def lm_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, VOCAB), np.asarray(targets).reshape(-1))


def torch_lm_loss(logits, targets):
    return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), torch.as_tensor(targets).reshape(-1))


def _models(seed=0, cell="RNN"):
    mg.manual_seed(seed)
    model = CharLM(cell=cell)
    return model, torch_twin(model, TorchCharLM(cell=cell))


def _torch_detach(h):
    """h.detach(), or an LSTM's (h.detach(), c.detach())."""
    return tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()


def _streams(n=101, batch=3):
    return tbptt.batchify(np.random.default_rng(0).integers(0, VOCAB, n), batch)


def test_batchify_layout_and_windows():
    streams = tbptt.batchify(np.arange(1000), 2)
    assert streams.shape == (500, 2)
    np.testing.assert_array_equal(streams[:, 0], np.arange(500))
    np.testing.assert_array_equal(streams[:, 1], np.arange(500, 1000))
    assert tbptt.batchify(np.arange(1001), 2).shape == (500, 2)  # the remainder is dropped
    feats = tbptt.batchify(np.arange(30.0).reshape(10, 3), 3)
    assert feats.shape == (3, 3, 3)
    np.testing.assert_array_equal(feats[:, 1], np.arange(30.0).reshape(10, 3)[3:6])
    wins = list(tbptt.windows(streams, 35))
    assert len(wins) == 15 and [len(x) for x, _ in wins] == [35] * 14 + [9]
    for i, (x, y) in enumerate(wins):
        np.testing.assert_array_equal(y, x + 1)  # next-step targets
        assert x[0, 0] == 35 * i and x[0, 1] == 500 + 35 * i
    assert isinstance(x, np.ndarray)  # integer data stays numpy (token ids / class targets)
    fx, fy = next(tbptt.windows(feats, 2))
    assert isinstance(fx, mg.Tensor) and fx.shape == (2, 3, 3) and fy.shape == (2, 3, 3)
    with pytest.raises(ValueError):
        tbptt.batchify(np.arange(5), 6)
    with pytest.raises(ValueError):
        tbptt.batchify(np.arange(5), 0)


def _torch_windowed(tmodel, streams, k, topt=None, max_norm=None):
    """The textbook loop in torch: windows of k steps, h.detach() at every boundary."""
    h, losses = None, []
    for i in range(0, len(streams) - 1, k):
        x, y = streams[i:i + k], streams[i + 1:i + k + 1]
        x = x[:len(y)]
        out, h = tmodel(torch.from_numpy(x), h)
        loss = torch_lm_loss(out, y)
        if topt is not None:
            topt.zero_grad()
        loss.backward()
        if topt is not None:
            torch.nn.utils.clip_grad_norm_(tmodel.parameters(), max_norm)
            topt.step()
        losses.append(loss.item())
        h = _torch_detach(h)
    return losses, h


def test_run_matches_torch_with_detach_training():
    model, tmodel = _models()
    streams = _streams()
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.5)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.5, momentum=0.5)
    losses, h = tbptt.run(model, lm_loss, streams, 5, optimizer=opt, max_norm=0.5)
    tlosses, th = _torch_windowed(tmodel, streams, 5, topt, max_norm=0.5)
    assert len(losses) == 7  # 32 steps in windows of 5: the last one has 2
    assert_close(losses, tlosses, np.float64, "window losses")
    assert_close(h, th, np.float64, "final state")
    assert_params_match(model, tmodel, np.float64)
    assert not h.requires_grad


def test_accumulated_truncated_gradient_matches_torch():
    model, tmodel = _models(1)
    streams = _streams()
    losses, _ = tbptt.run(model, lm_loss, streams, 4)  # no optimizer: the gradients of all windows add up
    tlosses, _ = _torch_windowed(tmodel, streams, 4)
    assert_close(losses, tlosses, np.float64, "window losses")
    assert_grads_match(model, tmodel, np.float64)


def test_tbptt_over_whole_sequence_is_full_bptt():
    model, tmodel = _models(2)
    streams = _streams()
    steps = len(streams) - 1
    losses, _ = tbptt.run(model, lm_loss, streams, steps)
    out, _ = tmodel(torch.from_numpy(streams[:-1]), None)
    tloss = torch_lm_loss(out, streams[1:])
    tloss.backward()
    assert len(losses) == 1
    assert_close(losses[0], tloss.item(), np.float64, "loss")
    assert_grads_match(model, tmodel, np.float64)


def _torch_k1_k2(tmodel, streams, k1, k2, topt):
    """TBPTT(k1, k2) written independently in torch: one step per call, every state remembered (detached) by
    position; each update reruns its k1 new steps and the k2 - k1 before them from the remembered state and
    scores the new ones."""
    steps = len(streams) - 1
    state_at = {0: None}
    losses, done = [], 0
    while done < steps:
        end = min(done + k1, steps)
        start = max(0, done - (k2 - k1))
        h = state_at[start]
        outs = []
        for t in range(start, end):
            out, h = tmodel(torch.from_numpy(streams[t:t + 1]), h)
            outs.append(out)
            state_at[t + 1] = _torch_detach(h)
        loss = torch_lm_loss(torch.cat(outs[len(outs) - (end - done):]), streams[done + 1:end + 1])
        topt.zero_grad()
        loss.backward()
        topt.step()
        losses.append(loss.item())
        done = end
    return losses


@pytest.mark.parametrize("k1,k2", [(3, 7), (4, 8), (5, 6), (2, 40)])
def test_k1_k2_truncation_matches_torch(k1, k2):
    model, tmodel = _models(3)
    streams = _streams(80, 3)  # 25 steps: the last update is partial for every (k1, k2) here
    opt = optim.SGD(model.parameters(), lr=0.3)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.3)
    losses, _ = tbptt.run(model, lm_loss, streams, k1, k2, optimizer=opt)
    tlosses = _torch_k1_k2(tmodel, streams, k1, k2, topt)
    assert len(losses) == -(-25 // k1)
    assert_close(losses, tlosses, np.float64, "update losses")
    assert_params_match(model, tmodel, np.float64)


@pytest.mark.parametrize("cell,k1,k2", [("LSTM", 3, 7), ("LSTM", 5, 5), ("GRU", 4, 8)])
def test_gated_cells_k1_k2_match_torch_detaching_the_state(cell, k1, k2):
    """An LSTM's state (h, c) is carried and detached as a pair (a GRU's h as a tensor): the same losses and
    weights as a torch loop that detaches both."""
    model, tmodel = _models(5, cell)
    streams = _streams(80, 3)
    opt = optim.SGD(model.parameters(), lr=0.3)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.3)
    losses, h = tbptt.run(model, lm_loss, streams, k1, k2, optimizer=opt)
    tlosses = _torch_k1_k2(tmodel, streams, k1, k2, topt)
    assert_close(losses, tlosses, np.float64, "update losses")
    assert_params_match(model, tmodel, np.float64)
    states = h if cell == "LSTM" else (h,)
    assert len(states) == (2 if cell == "LSTM" else 1)
    assert all(s.grad_fn is None and not s.requires_grad for s in states)
    # windowed training (k1 = k2) with accumulated gradients, against the textbook torch loop
    model, tmodel = _models(6, cell)
    tbptt.run(model, lm_loss, streams, 4)
    _torch_windowed(tmodel, streams, 4)
    assert_grads_match(model, tmodel, np.float64)


def test_k1_equal_k2_is_plain_windowed_training():
    model, tmodel = _models(4)
    streams = _streams()
    opt = optim.SGD(model.parameters(), lr=0.3)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.3)
    losses, _ = tbptt.run(model, lm_loss, streams, 6, 6, optimizer=opt)
    assert_close(losses, _torch_k1_k2(tmodel, streams, 6, 6, topt), np.float64, "losses")


def test_gradient_stops_at_window_boundary():
    mg.manual_seed(5)
    rnn = nn.RNN(1, 4, dtype=mg.float64)
    series = mg.tensor(tbptt.batchify(np.sin(np.arange(40.0) / 3)[:, None], 2), requires_grad=True)
    (x1, _), (x2, y2) = list(tbptt.windows(series, 5))[:2]
    for detach in (True, False):
        series.grad = None
        _, h = rnn(x1)
        out, _ = rnn(x2, tbptt.detach_state(h) if detach else h)
        F.mse_loss(out[:, :, :1], y2.detach()).backward()
        first = np.abs(series.grad.data[:5]).max()
        assert np.abs(series.grad.data[5:10]).max() > 0
        assert (first == 0) == detach  # with detach nothing reaches the first window
    assert tbptt.detach_state((h, [h]))[1][0].requires_grad is False


def test_memory_flat_over_500_windows():
    mg.manual_seed(6)
    model = CharLM(hidden=8)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    streams = tbptt.batchify(np.random.default_rng(1).integers(0, VOCAB, 2 * 4 * 520 + 2), 2)
    snapshots, live = {}, []

    def loss_fn(logits, targets):  # called once per window, while that window's graph is alive
        window = len(live) + 1
        live.append(None)
        if window in (150, 520):
            snapshots[window] = tracemalloc.take_snapshot()
        if window % 100 == 0:
            # No gc.collect(): the graph has no reference cycles, so reference counting alone must free it.
            # (Graph nodes are hidden from gc.get_objects(); live_nodes() lists every one.)
            kinds = [type(o) for o in gc.get_objects()]
            live[-1] = (sum(issubclass(k, mg.Tensor) for k in kinds), len(live_nodes()))
        return lm_loss(logits, targets)

    tracemalloc.start()
    try:
        losses, _ = tbptt.run(model, loss_fn, streams, 4, optimizer=opt, max_norm=1.0)
    finally:
        tracemalloc.stop()
    assert len(losses) == 520
    # The same number of live tensors and graph nodes at every check: each window's graph is freed.
    counts = [c for c in live if c is not None]
    assert len(counts) == 5 and len(set(counts)) == 1, counts
    # Array memory (numpy's tracemalloc domain) at the same point of window 520 as of window 150: keeping
    # even one array per window would add 370 arrays.  (Python's object memory is left out: its free lists
    # fill up over the first few hundred windows, and leaked tensors or nodes are counted above.)
    domain = [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]
    early, late = (sum(st.size for st in snapshots[w].filter_traces(domain).statistics("filename"))
                   for w in (150, 520))
    assert late - early < 2048, (early, late)


def test_run_errors():
    model, _ = _models()
    streams = _streams()
    with pytest.raises(ValueError, match="k2 must be >= k1"):
        tbptt.run(model, lm_loss, streams, 5, 3)
    with pytest.raises(ValueError, match="max_norm"):
        tbptt.run(model, lm_loss, streams, 5, max_norm=1.0)
    with pytest.raises(ValueError, match="positive int"):
        tbptt.run(model, lm_loss, streams, 0)
    with pytest.raises(ValueError, match="at least 2 time steps"):
        tbptt.run(model, lm_loss, streams[:1], 5)


State = collections.namedtuple("State", ["h", "extra"])


class NamedStateLM(nn.Module):
    """CharLM whose state is a namedtuple nesting a tuple and a list, as a user's LSTM-like model might."""

    def __init__(self):
        super().__init__()
        self.lm = CharLM()

    def forward(self, ids, state):
        out, h = self.lm(ids, None if state is None else state.h)
        return out, State(h, (h * 2.0, [h + 1.0]))


def test_detach_state_keeps_namedtuples_and_nesting():
    data = np.arange(6.0).reshape(2, 3)
    x = mg.tensor(data, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    state = State(x * 2.0, (x + 1.0, [x * x]))
    tstate = State(tx * 2.0, (tx + 1.0, [tx * tx]))
    out = tbptt.detach_state(state)
    assert type(out) is State and type(out.extra) is tuple and type(out.extra[1]) is list
    ours = [out.h, out.extra[0], out.extra[1][0]]
    theirs = [tstate.h.detach(), tstate.extra[0].detach(), tstate.extra[1][0].detach()]
    for a, b in zip(ours, theirs):
        assert not a.requires_grad and a.grad_fn is None and not b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_run_with_a_namedtuple_state_matches_torch():
    mg.manual_seed(4)
    model = NamedStateLM()
    tmodel = torch_twin(model.lm, TorchCharLM())
    streams = _streams()
    losses, state = tbptt.run(model, lm_loss, streams, 5)
    tlosses, th = _torch_windowed(tmodel, streams, 5)
    assert type(state) is State
    assert_close(losses, tlosses, np.float64, "window losses")
    assert_close(state.h, th, np.float64, "final state")
    assert_grads_match(model.lm, tmodel, np.float64)


@pytest.mark.parametrize("size", [np.int64(4), np.int32(4), np.uint8(4)])
def test_numpy_integer_sizes_are_accepted(size):
    data = np.arange(40)
    np.testing.assert_array_equal(tbptt.batchify(data, size), data.reshape(4, 10).T)  # numpy as the oracle
    streams = tbptt.batchify(data, 4)
    assert [len(x) for x, _ in tbptt.windows(streams, size)] == [4, 4, 1]
    model, tmodel = _models(3)
    streams = _streams()
    losses, _ = tbptt.run(model, lm_loss, streams, size, size)
    tlosses, _ = _torch_windowed(tmodel, streams, 4)
    assert_close(losses, tlosses, np.float64, "window losses")
    assert_grads_match(model, tmodel, np.float64)


@pytest.mark.parametrize("bad", [True, np.bool_(True), 4.0, np.float64(4.0), "4"])
def test_bool_float_and_other_sizes_are_a_type_error(bad):
    with pytest.raises(TypeError, match="batch_size must be an int"):
        tbptt.batchify(np.arange(40), bad)
    with pytest.raises(TypeError, match="k must be an int"):
        list(tbptt.windows(np.arange(40).reshape(10, 4), bad))
    model, _ = _models()
    with pytest.raises(TypeError, match="k1 must be an int"):
        tbptt.run(model, lm_loss, _streams(), bad)
    with pytest.raises(TypeError, match="k2 must be an int"):
        tbptt.run(model, lm_loss, _streams(), 4, bad)
