"""The engine's structure: accumulation, traversal order, freeing, grad modes, hooks, memory."""
import gc
import threading
import weakref

import numpy as np
import pytest
import torch

import minigrad as mg


def test_shared_leaf_accumulates_every_use():
    w = mg.tensor([1.5, -2.0], requires_grad=True)
    x = mg.tensor([0.3, 0.7])
    y = (w * x + w * w + w.tanh()).sum()
    y.backward()
    tw = torch.tensor([1.5, -2.0], requires_grad=True)
    tx = torch.tensor([0.3, 0.7])
    (tw * tx + tw * tw + tw.tanh()).sum().backward()
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-6)


def test_diamond_graph():
    a = mg.tensor(0.7, dtype=mg.float64, requires_grad=True)
    b = a * 2
    c, d = b.exp(), b.tanh()
    (c * d).backward()
    ta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    tb = ta * 2
    (tb.exp() * tb.tanh()).backward()
    assert abs(a.grad.item() - ta.grad.item()) < 1e-12


def test_long_chain_is_iterative():
    x = mg.tensor([0.5], dtype=mg.float64, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0


def test_leaf_grad_accumulates_across_backward_calls_until_zeroed():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.data, [6.0, 6.0])
    w.grad = None
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.data, [2.0, 4.0])


def test_shared_gradient_arrays_are_not_aliased():
    """add returns the same gradient array for both inputs; the leaves must not share storage."""
    a = mg.tensor([1.0], requires_grad=True)
    b = mg.tensor([1.0], requires_grad=True)
    (a + b).sum().backward()
    (a * 5).sum().backward()
    assert a.grad.item() == 6.0 and b.grad.item() == 1.0


def test_non_leaf_grad_only_with_retain_grad():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    k = x * 3
    k.retain_grad()
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(k.grad.data, (x.data * 2))
    assert not h.is_leaf and x.is_leaf


def test_non_scalar_backward_needs_gradient():
    y = mg.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()
    y.backward(np.array([1.0, -1.0], dtype=np.float32))
    with pytest.raises(RuntimeError, match="shape"):
        (mg.tensor([1.0], requires_grad=True) * 2).backward(np.ones(3))


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.tensor([1.0]).sum().backward()


def test_second_backward_raises_and_names_retain_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.tanh() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = mg.tensor([1.0, 2.0], dtype=mg.float64, requires_grad=True)
    y = (x.tanh() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.data.copy()
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first)


def test_saved_arrays_freed_after_backward():
    x = mg.tensor(np.ones(3), requires_grad=True)
    y = x.exp()
    z = (y * 2).sum()
    assert y.grad_fn.saved_arrays
    z.backward()
    assert y.grad_fn.saved_arrays is None


def test_no_grad_context_decorator_and_restore():
    x = mg.tensor([1.0], requires_grad=True)
    with mg.no_grad():
        assert not mg.is_grad_enabled()
        assert (x * 2).grad_fn is None and not (x * 2).requires_grad
        with mg.enable_grad():
            assert (x * 2).requires_grad
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()

    @mg.no_grad()
    def f():
        return x * 2
    assert not f().requires_grad and mg.is_grad_enabled()
    with mg.set_grad_enabled(False):
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()


def test_grad_mode_is_thread_local():
    seen = []

    def worker():
        seen.append(mg.is_grad_enabled())
    with mg.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen == [True]


def test_detach_shares_storage_and_cuts_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    d = h.detach()
    assert d.grad_fn is None and not d.requires_grad
    assert np.shares_memory(d.data, h.data)
    y = (d * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.data, d.data)  # d is a constant: only the direct path counts


def test_requires_grad_only_changeable_on_leaves():
    x = mg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        (x * 2).requires_grad_(False)
    assert mg.tensor([1.0]).requires_grad_().requires_grad


def test_hooks_order_replacement_and_removal():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    calls = []
    h1 = h.register_hook(lambda g: calls.append(("first", g.data.copy())))
    h.register_hook(lambda g: g * 10)
    h.register_hook(lambda g: calls.append(("third", g.data.copy())))
    leaf_hook = x.register_hook(lambda g: calls.append(("leaf", g.data.copy())))
    h.sum().backward()
    assert [c[0] for c in calls] == ["first", "third", "leaf"]
    np.testing.assert_array_equal(calls[1][1], [10, 10])
    np.testing.assert_array_equal(x.grad.data, [20, 20])
    calls.clear()
    h1.remove()
    leaf_hook.remove()
    x.grad = None
    h2 = x * 2
    h2.register_hook(lambda g: calls.append("new"))
    h2.sum().backward()
    assert calls == ["new"]


def test_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        mg.tensor([1.0]).register_hook(lambda g: g)


def test_hooks_see_gradient_at_every_time_step():
    """The BPTT view: dL/dh_t for every step of a tiny recurrence, equal to torch's."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3)) * 0.5
    xs = rng.standard_normal((5, 3))
    mine, theirs = {}, {}
    W = mg.tensor(w, requires_grad=True)
    h = mg.zeros(3, dtype=mg.float64)
    for t in range(5):
        h = (W @ h + mg.tensor(xs[t])).tanh()
        h.register_hook(lambda g, t=t: mine.__setitem__(t, g.data.copy()))
    h.sum().backward()
    TW = torch.tensor(w, requires_grad=True)
    th = torch.zeros(3, dtype=torch.float64)
    for t in range(5):
        th = (TW @ th + torch.tensor(xs[t])).tanh()
        th.register_hook(lambda g, t=t: theirs.__setitem__(t, g.numpy().copy()))
    th.sum().backward()
    for t in range(5):
        np.testing.assert_allclose(mine[t], theirs[t], rtol=1e-12)
    np.testing.assert_allclose(W.grad.data, TW.grad.numpy(), rtol=1e-12)


def test_graph_released_without_garbage_collector():
    gc.disable()
    try:
        x = mg.tensor(np.ones(4), requires_grad=True)
        y = (x * 2).tanh()
        z = y.sum()
        node_ref = weakref.ref(y.grad_fn)
        acc = z.grad_fn.next_functions[0][0].next_functions[0][0].next_functions[0][0]
        acc_ref, leaf_ref = weakref.ref(acc), weakref.ref(x)
        del acc
        z.backward()
        del y, z
        assert node_ref() is None
        del x
        assert acc_ref() is None and leaf_ref() is None
    finally:
        gc.enable()


def test_walk_graph_by_hand():
    x = mg.tensor([1.0], requires_grad=True)
    y = (x * 2).tanh()
    assert y.grad_fn.name() == "TanhBackward"
    (mul, _), = y.grad_fn.next_functions
    assert mul.name() == "MulBackward"
    acc = mul.next_functions[0][0]
    assert acc.name() == "AccumulateGrad" and acc.variable is x
    assert mul.next_functions[1] is None  # the constant 2 needs no gradient


def test_detect_anomaly_forward_names_op_and_place():
    x = mg.tensor([1.0, -1.0], requires_grad=True)
    with mg.autograd.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"(?s)Sqrt produced nan.*test_engine\.py"):
            x.sqrt()
    assert not mg.autograd.is_anomaly_enabled()
    x.sqrt()  # outside the block nan is an ordinary value, as in numpy and torch


def test_detect_anomaly_backward():
    x = mg.tensor([0.0, 1.0], requires_grad=True)
    y = x.sqrt()          # finite forward, infinite derivative at 0
    with mg.autograd.detect_anomaly():
        z = (y * 2).sum()
        with pytest.raises(FloatingPointError, match="SqrtBackward.*inf.*0th output"):
            z.backward()


def test_zero_dim_gradient_accumulated_many_times():
    x = mg.tensor(0.5, requires_grad=True)
    (x + x + x + x * x).backward()
    assert x.grad.item() == 4.0


# ---- the graph and Python's cycle collector -------------------------------------------------------------
# Nodes are hidden from the collector while no node holds a user's object (engine.pyx).  These tests check
# that: the speed side (nodes untracked), and the safety side (every cycle a user can build through the
# graph is still found and freed by gc.collect(), however the hook and the graph were made).

from minigrad.autograd import engine as _engine  # noqa: E402


def _chain(x, n=3):
    y = x
    for _ in range(n):
        y = (y * 2.0).tanh()
    return y


def _collector_sees(node):
    return gc.is_tracked(node) and any(o is node for o in gc.get_objects())


def test_plain_graph_is_hidden_from_collector_and_listed_live():
    assert _engine.graph_hidden()
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    y = _chain(x)
    nodes = [y.grad_fn, y.grad_fn.next_functions[0][0]]
    live = _engine.live_nodes()
    for node in nodes:
        assert not gc.is_tracked(node) and not gc.is_tracked(node.next_functions)
        assert any(o is node for o in live)
    refs = [weakref.ref(node) for node in nodes]
    del nodes, live, y, node
    assert all(r() is None for r in refs)  # reference counting alone frees the hidden graph
    assert not any(type(o).__name__ == "TanhBackward" for o in _engine.live_nodes())


@pytest.mark.parametrize("hook_first", [True, False])
def test_cycle_through_a_tensor_hook_is_collected(hook_first):
    """A hook on a non-leaf tensor whose closure holds a tensor computed from it: a cycle through the graph.
    Registered before or after the downstream nodes exist, gc.collect() must free it."""
    x = mg.tensor(np.ones(3), requires_grad=True)
    h = x * 3.0
    box = {}
    if hook_first:
        h.register_hook(lambda g: box["z"])
        z = _chain(h)
    else:
        z = _chain(h)       # these nodes were made hidden
        h.register_hook(lambda g: box["z"])
    box["z"] = z
    assert not _engine.graph_hidden()
    assert _collector_sees(z.grad_fn) and _collector_sees(h.grad_fn)
    refs = [weakref.ref(z.grad_fn), weakref.ref(h.grad_fn)]
    del h, z, box
    gc.collect()
    assert all(r() is None for r in refs)
    assert _engine.graph_hidden()  # the last node holding a user object is gone: hiding resumes


def test_tag_that_is_not_plain_data_exposes_the_graph():
    x = mg.tensor(np.ones(3), requires_grad=True)
    y = _chain(x)
    y.grad_fn.tag = (0, 1, 2)  # plain data (what minigrad.viz stores): stays hidden
    assert _engine.graph_hidden() and not gc.is_tracked(y.grad_fn)

    class Label:
        pass

    label = Label()
    y.grad_fn.tag = label
    label.node = y.grad_fn  # a cycle: node -> tag -> node
    assert not _engine.graph_hidden() and gc.is_tracked(y.grad_fn)
    ref = weakref.ref(y.grad_fn)
    del y, label
    gc.collect()
    assert ref() is None and _engine.graph_hidden()


def test_backward_is_the_same_hidden_or_exposed():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 4))
    xs = rng.standard_normal((6, 2, 4))

    def run(expose):
        w = mg.tensor(w0, requires_grad=True)
        h = mg.zeros(2, 4, dtype=mg.float64)
        keep = []
        for t in range(6):
            h = (mg.tensor(xs[t]) + h @ w).tanh()
            if expose and t == 2:
                keep.append(h.register_hook(lambda g: None))
        assert _engine.graph_hidden() is not expose
        h.sum().backward()
        return w.grad.data

    tw = torch.tensor(w0, requires_grad=True)
    th = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(6):
        th = (torch.tensor(xs[t]) + th @ tw).tanh()
    th.sum().backward()
    for expose in (False, True):
        np.testing.assert_allclose(run(expose), tw.grad.numpy(), rtol=1e-12)
    assert _engine.graph_hidden()
