"""The one recording path (minigrad.tensor.record) and the collector hook it calls for every node
(minigrad.autograd.collector)."""
import gc
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.autograd import collector

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_MESSAGE = ("one of the variables needed for gradient computation has been modified by an inplace "
                 "operation")


# One op from each of three op modules, each saving a different kind of array: its output (exp, log_softmax
# over a dimension) or its inputs (matmul).  ``changed`` picks the tensor whose storage is then changed.
CASES = {
    "exp": (lambda x: x.exp(), lambda x, y: y, "ExpBackward"),
    "matmul": (lambda x: x @ x, lambda x, y: x, "MatmulBackward"),
    "log_softmax": (lambda x: x.log_softmax(1), lambda x, y: y, "LogSoftmaxBackward"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_saved_array_changed_in_place_raises_torchs_error(name):
    f, changed, node_name = CASES[name]
    data = np.random.default_rng(0).standard_normal((3, 3))
    x, tx = mg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    y, ty = f(x), f(tx)
    changed(x, y).detach().add_(1.0)
    changed(tx, ty).detach().add_(1.0)
    with pytest.raises(RuntimeError, match=TORCH_MESSAGE):
        ty.sum().backward()
    with pytest.raises(RuntimeError, match=TORCH_MESSAGE) as ours:
        y.sum().backward()
    assert f"[float64 tensor of shape (3, 3)], saved for {node_name}'s backward" in str(ours.value)


@pytest.mark.parametrize("grad_mode, requires_grad", [(False, True), (True, False)])
def test_no_node_when_nothing_is_recorded(grad_mode, requires_grad):
    before = len(collector.live_nodes())
    x = mg.tensor(np.ones((2, 3)), requires_grad=requires_grad)
    with mg.set_grad_enabled(grad_mode):
        outs = [x + 1.0, x.sum(0), x.reshape(3, 2), *x.unbind(0), x @ x.T]
    assert all(o.grad_fn is None and not o.requires_grad for o in outs)
    assert len(collector.live_nodes()) == before  # not even x's accumulator


def test_recorded_node_holds_edges_saved_arrays_and_shapes():
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    b = mg.tensor(np.ones(3))
    y = x + b
    node = y.grad_fn
    assert node.next_functions[0][0].variable is x and node.next_functions[1] is None
    assert node.input_shapes == ((2, 3), (3,)) and node.saved is None
    z = y.exp()
    assert z.grad_fn.saved_arrays[0] is z.data and z.grad_fn.next_functions == ((node, 0),)
    pieces = z.unbind(1)
    assert {p.grad_fn for p in pieces} == {pieces[0].grad_fn} and [p.output_nr for p in pieces] == [0, 1, 2]
    # the gradients through them, against torch
    (pieces[0] * 2 + pieces[2]).sum().backward()
    tx = torch.ones((2, 3), dtype=torch.float64, requires_grad=True)
    tp = (tx + torch.ones(3, dtype=torch.float64)).exp().unbind(1)
    (tp[0] * 2 + tp[2]).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)


def test_recorded_shapes_are_the_arrays_shapes_for_every_rank_and_arity():
    """A ShapedNode's input shapes and a node's output shape are built from the arrays' dimensions: equal to
    numpy's shapes for 0-d to 3-d operands and for addmm's three inputs, shared by inputs of one shape,
    hidden from the cycle collector; the gradients that read them match torch's."""
    rng = np.random.default_rng(7)
    cases = [((), (2, 1, 3)), ((2, 1, 3), ()), ((4,), (3, 4)), ((3, 4), (3, 4)), ((0, 2), (2,)), ((1,), ())]
    for sa, sb in cases:
        a0, b0 = rng.standard_normal(sa), rng.standard_normal(sb)
        a, b = mg.tensor(a0, requires_grad=True), mg.tensor(b0, requires_grad=True)
        y = a + b
        node = y.grad_fn
        assert node.input_shapes == (sa, sb) and y.shape == np.broadcast_shapes(sa, sb)
        assert all(not gc.is_tracked(s) for s in node.input_shapes) and not gc.is_tracked(node.input_shapes)
        if sa == sb:
            assert node.input_shapes[0] is node.input_shapes[1]
        w = rng.standard_normal(y.shape)
        (y * mg.tensor(w)).sum().backward()
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a0, b0))
        ((ta + tb) * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-12, err_msg=str((sa, sb)))
        np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-12, err_msg=str((sa, sb)))
    bias0, m0, n0 = rng.standard_normal(5), rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    bias, m, n = (mg.tensor(v, requires_grad=True) for v in (bias0, m0, n0))
    z = mg.addmm(bias, m, n)
    assert z.grad_fn.input_shapes == ((5,), (3, 4), (4, 5))
    z.sum().backward()
    tbias, tm, tn = (torch.tensor(v, requires_grad=True) for v in (bias0, m0, n0))
    torch.addmm(tbias, tm, tn).sum().backward()
    for mine, theirs in ((bias, tbias), (m, tm), (n, tn)):
        np.testing.assert_allclose(mine.grad.data, theirs.grad.numpy(), rtol=1e-12)


def test_inplace_op_keeps_a_copy_of_the_values_it_overwrites():
    """y *= x saves the old y for x's gradient: the recording path keeps a copy, not y's storage."""
    data = np.array([0.5, -1.5, 2.0])
    x = mg.tensor(data, requires_grad=True)
    y = x * 3.0
    y *= x
    y.sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    ty = tx * 3.0
    ty *= tx
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)


def _collector_lists(node):
    return gc.is_tracked(node) and any(o is node for o in gc.get_objects())


def test_hidden_nodes_are_not_listed_by_the_collector_but_are_live():
    assert collector.graph_hidden()
    x = mg.tensor(np.ones(3), requires_grad=True)
    y = (x * 2.0).tanh()
    for node in (y.grad_fn, y.grad_fn.next_functions[0][0]):
        assert not _collector_lists(node) and any(o is node for o in collector.live_nodes())


def test_set_hiding_off_tracks_every_node_and_on_hides_new_ones():
    x = mg.tensor(np.ones(3), requires_grad=True)
    hidden = (x * 2.0).tanh()
    prev = collector.set_hiding(False)
    try:
        assert prev and not collector.graph_hidden()
        assert _collector_lists(hidden.grad_fn)  # exposed when the hiding was turned off
        y = hidden * 3.0
        assert _collector_lists(y.grad_fn)
        g = (x.tanh() * 2.0).sum()
        g.backward()
        np.testing.assert_allclose(x.grad.data, 2 * (1 - np.tanh(1.0) ** 2), rtol=1e-12)
    finally:
        collector.set_hiding(prev)
    assert collector.graph_hidden()
    assert not gc.is_tracked((x * 5.0).grad_fn)


def test_environment_switch_turns_the_hiding_off():
    code = ("import gc, numpy as np, minigrad as mg\n"
            "from minigrad.autograd import collector\n"
            "x = mg.tensor(np.ones(3), requires_grad=True)\n"
            "y = x * 2.0\n"
            "assert not collector.graph_hidden() and gc.is_tracked(y.grad_fn)\n"
            "print('tracked')\n")
    env = dict(os.environ, PYTHONPATH=REPO, MINIGRAD_GC_HIDING="0")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0 and run.stdout == "tracked\n", run.stderr[-2000:]


def test_cycle_through_a_hook_closure_is_still_collected():
    x = mg.tensor(np.ones(3), requires_grad=True)
    h = x * 3.0
    box = {}
    h.register_hook(lambda g, box=box: box["z"])
    z = (h * 2.0).tanh()
    box["z"] = z  # h's node -> hook -> closure -> box -> z -> z's node -> h's node
    refs = [weakref.ref(z.grad_fn), weakref.ref(h.grad_fn)]
    assert _collector_lists(z.grad_fn)
    del h, z, box
    gc.collect()
    assert all(r() is None for r in refs) and collector.graph_hidden()
