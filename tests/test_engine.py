"""The engine's structure: accumulation, traversal order, freeing, grad modes, hooks, memory."""
import gc
import threading
import weakref

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.nn import _recurrent


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


def test_detect_anomaly_checks_a_weight_gradient_held_as_a_sum_of_products():
    """A weight used at several steps gets its gradient as products held unevaluated (ProductSum): anomaly
    mode evaluates and checks it (it used to fail with numpy's TypeError on the lazy object), the gradient
    is torch's, and an inf in it is named."""
    import torch
    rng = np.random.default_rng(5)
    x_np, w_np = rng.standard_normal((2, 3)), rng.standard_normal((3, 3))
    x, w = mg.tensor(x_np), mg.tensor(w_np, requires_grad=True)
    tw = torch.tensor(w_np, requires_grad=True)
    with mg.autograd.detect_anomaly():
        (((x @ w) @ w).tanh() @ w).sum().backward()
    (((torch.tensor(x_np) @ tw) @ tw).tanh() @ tw).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12, atol=1e-14)
    # finite forward (x @ w is 1e-10, times 1e300), infinite weight gradient (x.T @ 1e300 with x = 1e10)
    big = mg.tensor(np.full((2, 3), 1e10))
    small = mg.tensor(np.full((3, 3), 1e-20), requires_grad=True)
    with mg.autograd.detect_anomaly():
        loss = ((big @ small) * 1e300).sum()
        with pytest.raises(FloatingPointError, match=r"inf values in its 1th output"):
            loss.backward()


def test_zero_dim_gradient_accumulated_many_times():
    x = mg.tensor(0.5, requires_grad=True)
    (x + x + x + x * x).backward()
    assert x.grad.item() == 4.0


# ---- the graph and Python's cycle collector -------------------------------------------------------------
# Nodes are hidden from the collector while no node holds a user's object (autograd/collector.pyx).  These
# tests check that: the speed side (nodes untracked), and the safety side (every cycle a user can build
# through the graph is still found and freed by gc.collect(), however the hook and the graph were made).

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


def test_recorded_tuples_of_plain_data_are_untracked_at_once():
    """A node's shape, dtype, saved and input-shape tuples hold no container: they are born untracked, so
    the young-generation collections a long forward triggers do not walk them (they did: most of what each
    collection of an LSTM's forward traversed)."""
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    w = mg.tensor(np.ones((3, 4)), requires_grad=True)
    y = mg.addmm(mg.zeros(2, 4, dtype=x.dtype), x, w).sigmoid()
    parts = y.chunk(2, 1)
    for node in (y.grad_fn, y.grad_fn.next_functions[0][0], parts[0].grad_fn):
        for t in (node.shape, node.dtype, node.saved):
            assert not gc.is_tracked(t), (node.name(), t)
    addmm = y.grad_fn.next_functions[0][0]
    assert not gc.is_tracked(addmm.input_shapes)
    assert all(not gc.is_tracked(s) for s in parts[0].grad_fn.shape)


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


# ---- gradient places (Node.grad_place) ------------------------------------------------------------------
# An RNN step's tanh writes its input's gradient straight into the step's slice of the gradient unbind
# collects for xw: UnbindBackward hands each slice out once per backward pass, AddmmBackward forwards the
# question to its input edge, and unbind returns that array itself only when every slice's gradient lies
# exactly at its slice.  These tests take the ways a slice's gradient can differ from one tanh's (a second
# chain, another term, no gradient at all, a hook, a second, nested or aborted pass) and compare with torch.

_step, _ReusedOperand = _recurrent.step, _recurrent.ReusedOperand
_GP_T, _GP_N, _GP_F, _GP_H = 4, 3, 5, 6
_GP_TOL = {"rtol": 1e-12, "atol": 1e-14}
_GP_VARIANTS = {"every-step": {}, "slice-in-two-chains": {"second": (0, 2)},
                "slice-with-another-term": {"extra": (1, 3)}, "steps-left-out": {"steps": (1, 3)}}
_GP_FUSED = pytest.mark.parametrize("fused", [False, True], ids=["addmm-tanh", "recurrent-step-tanh"])


class _GpAbort(Exception):
    pass


def _gp_np(g):
    """A hook's gradient as an array (minigrad: the array itself, not a copy)."""
    return g.data if isinstance(g, mg.Tensor) else g.detach().numpy()


def _gp_leaves(lib, leaf_xw=False, dtype=np.float64):
    """x, w_ih, w_hh, h0 as leaves of ``lib`` (minigrad or torch); ``leaf_xw``: xw instead of x, w_ih."""
    rng = np.random.default_rng(11)
    arrays = {"x": rng.standard_normal((_GP_T * _GP_N, _GP_F)), "w_ih": rng.standard_normal((_GP_H, _GP_F)),
              "w_hh": rng.standard_normal((_GP_H, _GP_H)) * 0.4, "h0": rng.standard_normal((_GP_N, _GP_H))}
    if leaf_xw:
        arrays = {"xw": rng.standard_normal((_GP_T, _GP_N, _GP_H)),
                  "w_hh": arrays["w_hh"], "h0": arrays["h0"]}
    return {k: lib.tensor(v.astype(dtype), requires_grad=True) for k, v in arrays.items()}


def _gp_rnn(lib, p, fused=False, steps=None, second=(), extra=(), dim=0, dtype=np.float64):
    """An RNN layer's steps as nn.RNN runs them: xw = (x @ w_ih.T) unbound into steps (along ``dim`` of a
    permutation of it), h = tanh(addmm(xw[t], h, w_hh.T)) (``fused``: minigrad's _recurrent.step(...,
    activation="tanh")), loss = the states weighted by fixed random numbers.  ``steps``: the steps run (all
    by default); ``second``: steps whose slice also feeds a second chain, from h0; ``extra``: steps whose
    slice also gets the gradient of (xw[t] * c).sum().  Returns loss, xw (the tensor unbound), xs, states."""
    rng = np.random.default_rng(5)

    def const(shape=(_GP_N, _GP_H)):
        a = rng.standard_normal(shape).astype(dtype)
        return mg.tensor(a) if lib is mg else torch.tensor(a)

    if fused and lib is mg:
        w = _ReusedOperand(p["w_hh"].T)

        def step(c, h):
            return _step(c, h, w, activation="tanh")
    else:
        def step(c, h):
            return lib.addmm(c, h, p["w_hh"].T).tanh()

    if "xw" in p:
        xw = p["xw"]
    else:
        xw = (p["x"] @ p["w_ih"].T).reshape(_GP_T, _GP_N, _GP_H)
        xw = xw.permute(*[(0, 1, 2), (1, 0, 2), (1, 2, 0)][dim])
    xs = xw.unbind(dim)
    h, hs, loss = p["h0"], [], 0
    for t in range(_GP_T) if steps is None else steps:
        h = step(xs[t], h)
        hs.append(h)
        loss = loss + (h * const()).sum()
        if t in second:
            loss = loss + (step(xs[t], p["h0"]) * const()).sum()
    for t in extra:
        loss = loss + (xs[t] * const()).sum()
    return loss, xw, xs, hs


def _gp_run(lib, fused=False, leaf_xw=False, dtype=np.float64, **kw):
    """One backward pass: the leaves' gradients and xw's (d_xw, from a hook), copied."""
    p = _gp_leaves(lib, leaf_xw, dtype)
    loss, xw, _, _ = _gp_rnn(lib, p, fused, dtype=dtype, **kw)
    seen = {}
    xw.register_hook(lambda g: seen.__setitem__("d_xw", _gp_np(g).copy()))
    loss.backward()
    return dict(_gp_grads(p), **seen)


def _gp_grads(p):
    return {k: _gp_np(v.grad).copy() for k, v in p.items()}


def _gp_assert_grads(mine, theirs, scale=1.0):
    assert mine.keys() == theirs.keys()
    for k in mine:
        np.testing.assert_allclose(mine[k], scale * theirs[k], err_msg=k, **_GP_TOL)


@_GP_FUSED
def test_grad_place_rnn_steps_match_torch(fused):
    """1. tanh(addmm(xw[t], h, W_hh^T)) at every step of one unbind: torch's gradients, and every step's
    gradient was written in place (each slice's gradient lies in the very array unbind hands on)."""
    p = _gp_leaves(mg)
    loss, xw, xs, _ = _gp_rnn(mg, p, fused)
    seen = {}
    xw.register_hook(lambda g: seen.__setitem__("d_xw", _gp_np(g)))
    for t, s in enumerate(xs):
        s.register_hook(lambda g, t=t: seen.__setitem__(t, _gp_np(g)))
    loss.backward()
    if mg.autograd.engine_name() == "compiled":  # the reference engine runs the plain formulas: no places
        assert all(np.shares_memory(seen[t], seen["d_xw"]) for t in range(_GP_T))  # the protocol was exercised
    _gp_assert_grads(dict(_gp_grads(p), d_xw=seen["d_xw"]), _gp_run(torch))


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("use", ["each", "sum"])
def test_grad_place_zero_d_slices_match_torch(n, use):
    """Unbinding a 1-D tensor gives 0-d slices: their places are 0-d arrays (not numpy scalars) that tanh's
    backward writes into (a random graph of the fuzz test found this)."""
    def run(lib):
        x = lib.tensor(np.linspace(-0.7, 0.9, n), requires_grad=True)
        ys = [p.tanh() for p in x.unbind(0)]
        loss = ys[0] * 1.5
        for i, y in enumerate(ys[1:]):
            loss = loss + (y * (i + 2) if use == "each" else y)
        loss.backward()
        return _gp_np(x.grad)
    np.testing.assert_allclose(run(mg), run(torch), **_GP_TOL)


@pytest.mark.parametrize("dim", [1, 2])
@_GP_FUSED
def test_grad_place_strided_slices_match_torch(dim, fused):
    """Unbound along a later dimension, each step's place is a strided view of the gradient."""
    _gp_assert_grads(_gp_run(mg, fused, dim=dim), _gp_run(torch, dim=dim))


@pytest.mark.parametrize("variant", [v for v in _GP_VARIANTS if v != "every-step"])
@_GP_FUSED
def test_grad_place_slice_not_written_by_one_tanh_matches_torch(variant, fused):
    """2.-4. A slice feeding two tanh(addmm) chains (both tanh nodes ask for its place: one gets it), a slice
    whose gradient also has another term, and slices that get no gradient (their gradient is zero, not
    whatever the unwritten place held)."""
    kw = _GP_VARIANTS[variant]
    mine = _gp_run(mg, fused, **kw)
    _gp_assert_grads(mine, _gp_run(torch, **kw))
    if variant == "steps-left-out":
        assert not mine["d_xw"][[0, 2]].any()


@pytest.mark.parametrize("leaf_xw", [False, True], ids=["xw-computed", "xw-leaf"])
@pytest.mark.parametrize("variant", list(_GP_VARIANTS))
@_GP_FUSED
def test_grad_place_second_backward_leaves_first_gradients_alone(leaf_xw, variant, fused):
    """5. retain_graph=True, then backward again: the leaves get exactly twice torch's gradient, and the
    arrays the first pass handed to hooks (xw's gradient, the slices' and the leaf's, not copies) keep their
    values: the second pass writes its places into new arrays."""
    kw = _GP_VARIANTS[variant]
    p = _gp_leaves(mg, leaf_xw)
    loss, xw, xs, _ = _gp_rnn(mg, p, fused, **kw)
    caught = {}
    for name, t in [("xw", xw), ("h0", p["h0"])] + list(enumerate(xs)):
        t.register_hook(lambda g, name=name: caught.__setitem__(name, _gp_np(g)))
    loss.backward(retain_graph=True)
    first = dict(caught)
    kept = {k: a.copy() for k, a in first.items()}
    caught.clear()
    loss.backward()
    theirs = _gp_run(torch, leaf_xw=leaf_xw, **kw)
    _gp_assert_grads(_gp_grads(p), {k: v for k, v in theirs.items() if k != "d_xw"}, scale=2.0)
    np.testing.assert_allclose(kept["xw"], theirs["d_xw"], **_GP_TOL)
    assert caught.keys() == first.keys()
    for k, a in first.items():
        np.testing.assert_array_equal(a, kept[k], err_msg=str(k))
        assert not np.shares_memory(a, caught[k]), k
        np.testing.assert_allclose(caught[k], kept[k], err_msg=str(k), **_GP_TOL)


@pytest.mark.parametrize("where", ["state", "slice"])
@_GP_FUSED
def test_grad_place_after_an_aborted_backward(where, fused):
    """6. minigrad has neither autograd.grad nor backward(inputs=...): a hook raising aborts a first pass
    after tanh nodes took places but before unbind's backward ran (on a state: half the steps done; on a
    slice: unbind's own hook, every place handed out).  Then a pass that reaches unbind but no tanh, then a
    full one: torch's gradients for those two."""
    p = _gp_leaves(mg)
    loss, _, xs, hs = _gp_rnn(mg, p, fused)
    armed = [True]

    def abort(g):
        if armed:
            armed.clear()
            raise _GpAbort

    (hs[1] if where == "state" else xs[0]).register_hook(abort)
    with pytest.raises(_GpAbort):
        loss.backward(retain_graph=True)
    for v in p.values():
        v.grad = None
    c = np.random.default_rng(3).standard_normal((_GP_N, _GP_H))
    (xs[2] * mg.tensor(c)).sum().backward(retain_graph=True)
    loss.backward()
    tp = _gp_leaves(torch)
    tloss, _, txs, _ = _gp_rnn(torch, tp)
    (txs[2] * torch.tensor(c)).sum().backward(retain_graph=True)
    tloss.backward()
    _gp_assert_grads(_gp_grads(p), _gp_grads(tp))


@_GP_FUSED
def test_grad_place_backward_from_a_hook_inside_a_backward(fused):
    """A second pass over the same graph run from a hook halfway through the first (both take places from
    the one unbind): each is torch's, so the leaves get twice torch's gradient."""
    p = _gp_leaves(mg)
    loss, _, _, hs = _gp_rnn(mg, p, fused)
    armed = [True]

    def reenter(g):
        if armed:
            armed.clear()
            loss.backward(retain_graph=True)

    hs[1].register_hook(reenter)
    loss.backward(retain_graph=True)
    assert not armed
    theirs = _gp_run(torch)
    _gp_assert_grads(_gp_grads(p), {k: v for k, v in theirs.items() if k != "d_xw"}, scale=2.0)


@pytest.mark.parametrize("variant", list(_GP_VARIANTS))
@_GP_FUSED
def test_grad_place_hooks_on_slices_see_torch_values(variant, fused):
    """7. Hooks on the slices xw[t] see torch's gradients (torch calls a slice's hook with None when it gets
    no gradient); a hook replacing one slice's gradient (so it no longer lies at its place) is honoured."""
    kw = _GP_VARIANTS[variant]
    seen, grads = {}, {}
    for lib in (mg, torch):
        box = seen[lib] = {}
        p = _gp_leaves(lib)
        loss, _, xs, _ = _gp_rnn(lib, p, fused, **kw)
        for t, s in enumerate(xs):
            s.register_hook(lambda g, t=t, box=box: box.__setitem__(t, g if g is None else _gp_np(g).copy()))
        xs[1].register_hook(lambda g: g * 2.0)
        loss.backward()
        grads[lib] = _gp_grads(p)
    theirs = {t: g for t, g in seen[torch].items() if g is not None}
    assert sorted(seen[mg]) == sorted(theirs)
    for t, g in theirs.items():
        np.testing.assert_allclose(seen[mg][t], g, err_msg=str(t), **_GP_TOL)
    _gp_assert_grads(grads[mg], grads[torch])


@_GP_FUSED
def test_grad_place_dtypes(fused):
    """8. addmm does not promote (neither does torch's), so a place never meets a gradient of another dtype
    through addmm: float32 slices cast to float64 for the step get torch's gradients (the cast's node has no
    place to give); an all-float32 run matches torch's float32 run."""
    c32 = mg.tensor(np.ones((2, 3), np.float32))
    a, b = mg.tensor(np.ones((2, 2))), mg.tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match="dtype"):
        mg.addmm(c32, a, b)
    with pytest.raises(TypeError, match="dtype"):
        _step(c32, a, _ReusedOperand(b), activation="tanh")
    with pytest.raises(RuntimeError, match="dtype"):
        torch.addmm(torch.ones(2, 3), *(torch.ones(2, n, dtype=torch.float64) for n in (2, 3)))

    rng = np.random.default_rng(9)
    xw0 = rng.standard_normal((_GP_T, _GP_N, _GP_H)).astype(np.float32)
    w0, h0 = rng.standard_normal((_GP_H, _GP_H)) * 0.4, rng.standard_normal((_GP_N, _GP_H))
    cs = rng.standard_normal((_GP_T, _GP_N, _GP_H))
    grads = []
    for lib in (mg, torch):
        xw, w, h = (lib.tensor(v, requires_grad=True) for v in (xw0, w0, h0))
        leaves, xs, loss = (xw, w, h), (xw * 2.0).unbind(0), 0
        wt = _ReusedOperand(w.T) if lib is mg else None
        for t in range(_GP_T):
            if fused and lib is mg:
                h = _step(xs[t].double(), h, wt, activation="tanh")
            else:
                h = lib.addmm(xs[t].double(), h, w.T).tanh()
            loss = loss + (h * lib.tensor(cs[t])).sum()
        loss.backward()
        grads.append([_gp_np(v.grad) for v in leaves])
    assert grads[0][0].dtype == np.float32
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-6, atol=1e-7)
    for mine, theirs in zip(grads[0][1:], grads[1][1:]):
        np.testing.assert_allclose(mine, theirs, **_GP_TOL)

    mine, theirs = (_gp_run(lib, fused, dtype=np.float32) for lib in (mg, torch))
    for k in mine:
        assert mine[k].dtype == np.float32
        np.testing.assert_allclose(mine[k], theirs[k], rtol=2e-5, atol=2e-6, err_msg=k)


def _gp_tanh_of_slice(lib, xs, h, w, c):
    return [(xs[t].tanh() * c()).sum() for t in range(_GP_T)]  # tanh asks unbind itself


def _gp_two_tanh_of_one_addmm(lib, xs, h, w, c):
    terms = []
    for t in range(_GP_T):
        z = lib.addmm(xs[t], h, w)
        h = z.tanh()  # z's two tanh nodes ask the same addmm, so the same place
        terms += [(h * c()).sum(), (z.tanh() * c()).sum()]
    return terms


def _gp_addmm_of_addmm(lib, xs, h, w, c):
    terms = []
    for t in range(_GP_T):
        h = lib.addmm(lib.addmm(xs[t], h, w), h, w.T).tanh()  # the question forwarded twice
        terms.append((h * c()).sum())
    return terms


def _gp_slice_also_a_factor(lib, xs, h, w, c):
    # xw[t-1] is the step's addend and the next step's left factor: two gradients for one slice
    return [(lib.addmm(xs[t], xs[t - 1], w).tanh() * c()).sum() for t in range(1, _GP_T)]


def _gp_addmm_output_also_used(lib, xs, h, w, c):
    terms = []
    for t in range(_GP_T):
        z = lib.addmm(xs[t], h, w)
        h = z.tanh()
        terms += [(h * c()).sum(), (z * c()).sum()]  # the place is tanh's, addmm's gradient is a sum
    return terms


@pytest.mark.parametrize("graph", [_gp_tanh_of_slice, _gp_two_tanh_of_one_addmm, _gp_addmm_of_addmm,
                                   _gp_slice_also_a_factor, _gp_addmm_output_also_used],
                         ids=lambda f: f.__name__[4:])
def test_grad_place_other_graphs_asking_for_places_match_torch(graph):
    """Other graphs whose tanh nodes ask unbind for a place, directly or through one or two addmm."""
    grads = []
    for lib in (mg, torch):
        rng = np.random.default_rng(4)
        xw, w, h = (lib.tensor(rng.standard_normal(s), requires_grad=True)
                    for s in ((_GP_T, _GP_N, _GP_H), (_GP_H, _GP_H), (_GP_N, _GP_H)))

        def c(rng=rng, lib=lib):
            return lib.tensor(rng.standard_normal((_GP_N, _GP_H)))

        terms = graph(lib, (xw * 0.5).unbind(0), h, w * 0.4, c)
        loss = terms[0]
        for term in terms[1:]:
            loss = loss + term
        loss.backward()
        grads.append({k: v.grad if v.grad is None else _gp_np(v.grad)
                      for k, v in (("xw", xw), ("w", w), ("h", h))})
    for k, mine in grads[0].items():
        theirs = grads[1][k]
        assert (mine is None) == (theirs is None), k
        if mine is not None:
            np.testing.assert_allclose(mine, theirs, err_msg=k, **_GP_TOL)


def test_grad_place_rnn_module_backward_twice_matches_torch():
    """nn.RNN (whose layers run on the places: _recurrent.step(..., activation="tanh") on an unbind), two
    layers, both directions, retain_graph and a second backward: twice torch's gradients, and hooks on the
    input see torch's gradient in both passes, in separate arrays."""
    mg.manual_seed(0)
    rnn = mg.nn.RNN(3, 5, num_layers=2, bidirectional=True, dtype=np.float64)
    trnn = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
    trnn.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in rnn.state_dict().items()})
    rng = np.random.default_rng(6)
    x0, w_out = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 10))
    x, tx = mg.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(_gp_np(g)))
    loss = (rnn(x)[0] * mg.tensor(w_out)).sum()
    loss.backward(retain_graph=True)
    kept = seen[0].copy()
    loss.backward()
    (trnn(tx)[0] * torch.tensor(w_out)).sum().backward()
    np.testing.assert_array_equal(seen[0], kept)
    assert len(seen) == 2 and not np.shares_memory(seen[0], seen[1])
    for g in seen:
        np.testing.assert_allclose(g, tx.grad.numpy(), **_GP_TOL)
    np.testing.assert_allclose(x.grad.data, 2 * tx.grad.numpy(), **_GP_TOL)
    tparams = dict(trnn.named_parameters())
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(p.grad.data, 2 * tparams[name].grad.numpy(), err_msg=name, **_GP_TOL)


# ---- a weight's gradient as one product, adopted by its leaf -------------------------------------------
def _wt_step(lib, w0, x0s, h0):
    """tanh(x_t @ W.T + h_t) for a few steps, W used transposed (as an RNN's W_hh), loss = weighted sum."""
    w = lib.tensor(w0, requires_grad=True)
    loss = 0
    for t, x0 in enumerate(x0s):
        h = lib.tanh(lib.tensor(x0) @ w.T + lib.tensor(h0))
        loss = loss + (h * (t + 1)).sum()
    return w, loss


def test_transposed_weight_gradient_is_adopted_and_matches_torch():
    """W used as W.T at every step: its gradient reaches W.grad as one product, not a transposed copy
    (W.grad owns its C-contiguous data), equal to torch's; a second backward adds into it."""
    rng = np.random.default_rng(5)
    w0, h0 = rng.standard_normal((6, 4)), rng.standard_normal((3, 6))
    x0s = [rng.standard_normal((3, 4)) for _ in range(5)]
    w, loss = _wt_step(mg, w0, x0s, h0)
    tw, tloss = _wt_step(torch, w0, x0s, h0)
    loss.backward(retain_graph=True)
    tloss.backward(retain_graph=True)
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert w.grad.data.flags.c_contiguous and w.grad.data.flags.owndata
    first = w.grad.data.copy()
    loss.backward()
    np.testing.assert_allclose(w.grad.data, 2 * first, rtol=1e-12, atol=1e-14)


def test_leaf_hook_keeps_the_array_it_was_given():
    """A hook on the leaf that keeps the gradient it sees: a later backward accumulating into W.grad must
    not change the kept array (the engine adopts a gradient only when nothing else can refer to it)."""
    rng = np.random.default_rng(6)
    w0, h0 = rng.standard_normal((6, 4)), rng.standard_normal((3, 6))
    x0s = [rng.standard_normal((3, 4)) for _ in range(3)]
    w, loss = _wt_step(mg, w0, x0s, h0)
    kept = []
    w.register_hook(lambda g: kept.append(g.data if isinstance(g, mg.Tensor) else g))
    loss.backward(retain_graph=True)
    snapshot = np.array(kept[0], copy=True)
    loss.backward()
    np.testing.assert_array_equal(kept[0], snapshot)
    np.testing.assert_allclose(w.grad.data, 2 * snapshot, rtol=1e-12, atol=1e-14)


# ---- an RNN step's state gradient summed inside the kernel (engine.take_grad) -----------------------
def _tg_chain(lib, x0s, w0, h00, wout, hooks=None):
    """h_t = tanh(x_t + h_{t-1} @ W.T) with every state also in the loss, so each state's gradient is the
    output's plus the next step's; minigrad uses _recurrent.step (whose backward folds the two together)."""
    w = lib.tensor(w0, requires_grad=True)
    h = lib.tensor(h00, requires_grad=True)
    r = _recurrent.ReusedOperand(w.T) if lib is mg else None
    loss = 0
    for t, x0 in enumerate(x0s):
        x = lib.tensor(x0, requires_grad=True)
        h = _recurrent.step(x, h, r, "tanh") if lib is mg else torch.tanh(x + h @ w.T)
        if hooks is not None:
            h.register_hook(lambda g, t=t: hooks.__setitem__(t, np.array(g.data if lib is mg else g.numpy())))
        loss = loss + (h * lib.tensor(wout[t])).sum()
    return w, loss


def test_state_gradient_summed_in_the_kernel_matches_torch_and_hooks_see_the_sum():
    rng = np.random.default_rng(8)
    x0s = [rng.standard_normal((3, 5)) for _ in range(6)]
    w0, h00 = rng.standard_normal((5, 5)) * 0.5, rng.standard_normal((3, 5))
    wout = rng.standard_normal((6, 3, 5))
    seen, tseen = {}, {}
    w, loss = _tg_chain(mg, x0s, w0, h00, wout, seen)
    tw, tloss = _tg_chain(torch, x0s, w0, h00, wout, tseen)
    loss.backward(retain_graph=True)
    tloss.backward(retain_graph=True)
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-12, atol=1e-13)
    for t in range(6):  # each state's hook sees its total gradient (output's + next step's)
        np.testing.assert_allclose(seen[t], tseen[t], rtol=1e-12, atol=1e-13)
    loss.backward()
    np.testing.assert_allclose(w.grad.data, 2 * tw.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_a_node_run_by_hand_inside_a_pass_takes_nothing_from_it():
    """A hook that runs a step's AddmmBackward by hand (not the engine) while the pass is under way, when the
    previous state's gradient from the output is waiting in the engine: the pass still gets every gradient
    (take_grad serves only the node the engine is running)."""
    rng = np.random.default_rng(9)
    x0s = [rng.standard_normal((3, 5)) for _ in range(4)]
    w0, h00 = rng.standard_normal((5, 5)) * 0.5, rng.standard_normal((3, 5))
    wout = rng.standard_normal((4, 3, 5))
    w = mg.tensor(w0, requires_grad=True)
    r = _recurrent.ReusedOperand(w.T)
    h, states = mg.tensor(h00, requires_grad=True), []
    for x0 in x0s:
        h = _recurrent.step(mg.tensor(x0, requires_grad=True), h, r, "tanh")
        states.append(h)
    loss = (mg.stack(states) * mg.tensor(wout)).sum()  # every state's output gradient arrives first
    step2 = states[2].grad_fn.next_functions[0][0]  # AddmmBackward of step 2 (its state input: step 1's)
    assert step2.name() == "AddmmBackward"
    by_hand = []
    states[2].register_hook(lambda g: by_hand.append(step2.backward(np.ones((3, 5)))) and None)
    loss.backward(retain_graph=True)
    assert by_hand  # the hook ran, inside the pass
    tw, tloss = _tg_chain(torch, x0s, w0, h00, wout)
    tloss.backward()
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_input_of_two_linears_gets_the_sum_of_their_gradients_like_torch():
    """x feeding two linear layers (a bidirectional layer's input projections): the second addmm's
    backward adds its x-gradient to the first's inside the kernel; x.grad equals torch's."""
    rng = np.random.default_rng(10)
    x0, w0, w1 = rng.standard_normal((7, 5)), rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    b0, b1, c0, c1 = (rng.standard_normal(s) for s in ((4,), (3,), (7, 4), (7, 3)))
    grads = []
    for lib, F in ((mg, mg.nn.functional), (torch, torch.nn.functional)):
        x = lib.tensor(x0, requires_grad=True)
        x2 = x * 2  # the linears' shared input has a node of its own, which gets both gradients
        h, k = F.linear(x2, lib.tensor(w0), lib.tensor(b0)), F.linear(x2, lib.tensor(w1), lib.tensor(b1))
        ((h * lib.tensor(c0)).sum() + (k * lib.tensor(c1)).sum()).backward()
        grads.append(np.array(x.grad.data if lib is mg else x.grad.numpy()))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-13)


def test_backward_passes_in_two_threads_keep_their_own_gradients():
    """Two threads running backward at once (the kernels release the GIL mid-pass): each pass's fused sums
    (take_grad) and gradient places use only its own buffers; every result equals torch's."""
    rng = np.random.default_rng(11)
    cases = []
    for k in range(2):
        x0s = [rng.standard_normal((16, 64)) for _ in range(6)]
        w0, h00 = rng.standard_normal((64, 64)) * 0.1, rng.standard_normal((16, 64))
        wout = rng.standard_normal((6, 16, 64))
        tw, tloss = _tg_chain(torch, x0s, w0, h00, wout)
        tloss.backward()
        cases.append((x0s, w0, h00, wout, tw.grad.numpy()))
    errors = []

    def work(k):
        x0s, w0, h00, wout, want = cases[k]
        try:
            for _ in range(20):
                w, loss = _tg_chain(mg, x0s, w0, h00, wout)
                loss.backward()
                np.testing.assert_allclose(w.grad.data, want, rtol=1e-12, atol=1e-12)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
