"""minigrad.autograd.grad against torch.autograd.grad: values, .grad left alone, errors, hooks, freeing."""
import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.autograd import engine as _engine

ENGINES = pytest.mark.parametrize("engine", ["compiled", "reference"])


@pytest.fixture
def engine(request, monkeypatch):
    monkeypatch.setattr(_engine, "ENGINE", request.param)
    return request.param


def _values(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in n]


def _graph(lib, x0, w0, h0, c0):
    """A two-step recurrence with a weight used twice (a ProductSum in the compiled engine), a non-leaf
    state and an unbound sequence (a multi-output node)."""
    x = lib.tensor(x0, requires_grad=True)
    w = lib.tensor(w0, requires_grad=True)
    h = lib.tensor(h0, requires_grad=True)
    xs = x.unbind(0)
    h1 = (xs[0] + h @ w).tanh()
    h2 = (xs[1] + h1 @ w.T).tanh()
    out = h2 * lib.tensor(c0)
    return x, w, h, xs, h1, h2, out


def _np(t):
    return None if t is None else np.array(t.detach().numpy())


@pytest.mark.parametrize("engine", ["compiled", "reference"], indirect=True)
@pytest.mark.parametrize("which", [("w",), ("x", "w", "h"), ("h1",), ("h1", "w"), ("xs1", "h"), ("w", "w"),
                                   ("h2", "x")])
def test_grad_matches_torch_and_leaves_grad_untouched(engine, which):
    vals = _values([(2, 3, 4), (4, 4), (3, 4), (3, 4)], 1)
    seed = np.random.default_rng(2).standard_normal((3, 4))
    res = {}
    for lib in (mg, torch):
        x, w, h, xs, h1, h2, out = _graph(lib, *vals)
        named = {"x": x, "w": w, "h": h, "h1": h1, "h2": h2, "xs1": xs[1]}
        h.grad = lib.tensor(np.ones((3, 4)))  # an earlier gradient: it must stay as it is
        grads = lib.autograd.grad(out, [named[k] for k in which], grad_outputs=lib.tensor(seed))
        res[lib] = ([_np(g) for g in grads], _np(h.grad), x.grad, w.grad)
    for m, t in zip(res[mg][0], res[torch][0]):
        assert m.shape == t.shape
        np.testing.assert_allclose(m, t, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(res[mg][1], np.ones((3, 4)))
    assert res[mg][2:] == (None, None) == res[torch][2:]


@ENGINES
def test_several_outputs_and_default_grad_outputs(engine, monkeypatch):
    monkeypatch.setattr(_engine, "ENGINE", engine)
    vals = _values([(2, 3, 4), (4, 4), (3, 4), (3, 4)], 3)
    res = {}
    for lib in (mg, torch):
        x, w, h, xs, h1, h2, out = _graph(lib, *vals)
        grads = lib.autograd.grad([out.sum(), h1], [w, h], grad_outputs=[None, lib.tensor(vals[3])])
        res[lib] = [_np(g) for g in grads]
    for m, t in zip(res[mg], res[torch]):
        np.testing.assert_allclose(m, t, rtol=1e-12, atol=1e-14)


def test_returned_gradients_are_separate_arrays():
    """add hands the same gradient array to both inputs; each returned gradient is its own copy."""
    x, y = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0, 4.0], requires_grad=True)
    z = x + y
    gx, gy, gz = mg.autograd.grad((z * 2).sum(), [x, y, z])
    gx.data[0] = 100.0
    np.testing.assert_array_equal(gy.data, [2.0, 2.0])
    np.testing.assert_array_equal(gz.data, [2.0, 2.0])


@ENGINES
def test_unused_input_like_torch(engine, monkeypatch):
    monkeypatch.setattr(_engine, "ENGINE", engine)
    for lib in (mg, torch):
        x, y = lib.tensor([1.0, 2.0], requires_grad=True), lib.tensor([3.0], requires_grad=True)
        loss = (x * x).sum()
        with pytest.raises(RuntimeError, match=r"The differentiated Tensor at index 1 appears to not have "
                                               r"been used in the graph. Set allow_unused=True if this is "
                                               r"the desired behavior."):
            lib.autograd.grad(loss, [x, y], retain_graph=True)
        gx, gy = lib.autograd.grad(loss, [x, y], allow_unused=True)
        np.testing.assert_array_equal(_np(gx), [2.0, 4.0])
        assert gy is None


@pytest.mark.parametrize("case", ["input-no-grad", "empty-inputs", "output-no-grad", "non-scalar",
                                  "seed-shape"])
def test_bad_arguments_raise_torchs_errors(case):
    messages = []
    for lib in (mg, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        call = {"input-no-grad": lambda: lib.autograd.grad(x.sum(), [lib.tensor([1.0, 2.0])]),
                "empty-inputs": lambda: lib.autograd.grad(x.sum(), []),
                "output-no-grad": lambda: lib.autograd.grad(lib.tensor([1.0]), [x]),
                "non-scalar": lambda: lib.autograd.grad(x * 2, [x]),
                "seed-shape": lambda: lib.autograd.grad(x * 2, [x], grad_outputs=lib.tensor([1.0, 2.0, 3.0]))}
        with pytest.raises(RuntimeError) as info:
            call[case]()
        messages.append(str(info.value))
    if case == "seed-shape":  # torch writes torch.Size([3]), minigrad (3,)
        assert messages[0] == ("Mismatch in shape: grad_output[0] has a shape of (3,) and output[0] has a "
                               "shape of (2,).")
    else:
        assert messages[0] == messages[1]


def test_create_graph_is_refused_clearly():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"create_graph=True \(higher-order gradients\) is not supported"):
        mg.autograd.grad((x * x).sum(), [x], create_graph=True)


@ENGINES
@pytest.mark.parametrize("wrt", [("x", "h"), ("h",), ("x",)])
def test_hooks_and_retain_grad_like_torch(engine, wrt, monkeypatch):
    """torch runs the hooks and retain_grad of the tensors on the way (nothing off the way to the inputs) and
    captures an input's gradient after its hooks (a leaf's too: what would have been accumulated), except
    for a non-leaf whose producer runs as well (h when x is an input too): then before them."""
    monkeypatch.setattr(_engine, "ENGINE", engine)
    res = {}
    for lib in (mg, torch):
        ran = []
        x = lib.tensor(np.array([1.0, 2.0]), requires_grad=True)
        w = lib.tensor(np.array([0.5, -1.0]), requires_grad=True)
        x.register_hook(lambda g: g * 2)
        h = x * 3
        h.register_hook(lambda g: g * 10)
        h.retain_grad()
        u = w * 2  # off the way from the loss to x and h
        u.register_hook(lambda g: ran.append("u"))
        u.retain_grad()
        loss = (h * h * u).sum()
        grads = lib.autograd.grad(loss, [{"x": x, "h": h}[k] for k in wrt])
        res[lib] = ([_np(g) for g in grads], _np(h.grad), u.grad, ran, x.grad, w.grad)
    for m, t in zip(res[mg][0] + [res[mg][1]], res[torch][0] + [res[torch][1]]):
        np.testing.assert_allclose(m, t, rtol=1e-14)
    assert res[mg][2:] == res[torch][2:] == (None, [], None, None)


@ENGINES
def test_only_the_part_that_ran_is_freed_like_torch(engine, monkeypatch):
    """grad(z, h) runs (and frees) only the nodes between z and h: backward through h's producers still
    works; a second grad through the freed part raises torch's error."""
    monkeypatch.setattr(_engine, "ENGINE", engine)
    res = []
    for lib in (mg, torch):
        x = lib.tensor(np.array([0.3, -0.7]), requires_grad=True)
        h = x.tanh()
        z = (h * h).sum()
        gh, = lib.autograd.grad(z, [h])
        (h * 3).sum().backward()
        res.append((_np(gh), _np(x.grad)))
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
            lib.autograd.grad(z, [h])
    for m, t in zip(*res):
        np.testing.assert_allclose(m, t, rtol=1e-14)


@ENGINES
def test_grad_of_rnn_parameters_matches_torch(engine, monkeypatch):
    monkeypatch.setattr(_engine, "ENGINE", engine)
    mg.manual_seed(0)
    rnn = mg.nn.RNN(3, 5, num_layers=2, bidirectional=True, dtype=mg.float64)
    trnn = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
    trnn.load_state_dict({k: torch.tensor(np.array(v.data)) for k, v in rnn.state_dict().items()})
    x0 = np.random.default_rng(4).standard_normal((6, 2, 3))
    x, tx = mg.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    out, hn = rnn(x)
    tout, thn = trnn(tx)
    names = ["weight_hh_l0", "weight_ih_l1_reverse", "bias_hh_l1"]
    params = dict(rnn.named_parameters())
    tparams = dict(trnn.named_parameters())
    grads = mg.autograd.grad((out * out).sum() + hn.sum(), [x] + [params[n] for n in names])
    tgrads = torch.autograd.grad((tout * tout).sum() + thn.sum(), [tx] + [tparams[n] for n in names])
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(g.data, tg.numpy(), rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in rnn.parameters())


@ENGINES
def test_output_as_input_and_through_a_function_like_torch(engine, monkeypatch):
    """grad(y, y) is grad_outputs itself; a custom Function on the way is differentiated like any node."""
    monkeypatch.setattr(_engine, "ENGINE", engine)
    res = []
    for lib in (mg, torch):
        class Square(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return 2 * x * g
        x = lib.tensor(np.array([0.5, -2.0]), requires_grad=True)
        y = Square.apply(x.tanh())
        gy, = lib.autograd.grad(y, [y], grad_outputs=lib.tensor(np.array([3.0, 4.0])), retain_graph=True)
        gx, = lib.autograd.grad((y * y).sum(), [x])
        res.append((_np(gy), _np(gx), x.grad))
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-14)
    assert res[0][2] is None and res[1][2] is None
