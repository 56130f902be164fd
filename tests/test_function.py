"""minigrad.autograd.Function against torch.autograd.Function: the same class body in both libraries."""
import gc
import weakref

import numpy as np
import pytest
import torch

import minigrad as mg
from minigrad.autograd import engine as _engine


def _lib_tensor(lib, values, requires_grad=False):
    return lib.tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad)


def _cube(lib):
    """x**3 * k with k a Python number (not a tensor): backward returns None for it."""
    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            ctx.seen = lib.is_grad_enabled()
            return x * x * x * k

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            ctx.seen_in_backward = lib.is_grad_enabled()
            return g * 3 * x * x * ctx.k, None
    return Cube


def _grad(t):
    if t.grad is None:
        return None
    return np.array(t.grad.numpy() if isinstance(t, torch.Tensor) else t.grad.data)


def test_function_values_gradients_and_ctx_match_torch():
    x0 = [0.5, -1.5, 2.0]
    res = {}
    for lib in (mg, torch):
        x = _lib_tensor(lib, x0, requires_grad=True)
        y = _cube(lib).apply(x * 2, 1.5)
        (y * _lib_tensor(lib, [1.0, 2.0, 3.0])).sum().backward()
        fn = y.grad_fn
        res[lib] = (np.array(y.detach().numpy()), _grad(x), fn.needs_input_grad, fn.seen, fn.seen_in_backward,
                    type(fn).__name__, len(fn.next_functions), y.requires_grad)
    mine, theirs = res[mg], res[torch]
    np.testing.assert_allclose(mine[0], theirs[0], rtol=1e-14)
    np.testing.assert_allclose(mine[1], theirs[1], rtol=1e-14)
    assert mine[2:] == theirs[2:] == ((True, False), False, False, "CubeBackward", 1, True)


def test_gradcheck_on_a_function_like_torch():
    """minigrad's gradcheck accepts the Function and rejects a wrong backward, as torch's gradcheck does."""
    class Wrong(mg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            return x * x * x * k

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * 2 * x, None

    x0 = np.random.default_rng(0).standard_normal((2, 3))
    tx = torch.tensor(x0, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _cube(torch).apply(t, 0.7), (tx,))
    x = mg.tensor(x0, requires_grad=True)
    assert mg.autograd.gradcheck(lambda t: _cube(mg).apply(t, 0.7), (x,))
    with pytest.raises(mg.autograd.GradcheckError):
        mg.autograd.gradcheck(lambda t: Wrong.apply(t, 0.7), (x,))


def _two_outputs(lib, mark=False):
    class Two(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            a, b = x * y, x + y
            if mark:
                ctx.mark_non_differentiable(b)
            return a, b

        @staticmethod
        def backward(ctx, ga, gb):
            ctx.got = (np.array(ga.numpy()), np.array(gb.numpy()))
            return ga * 2 + gb, ga * 3 - gb
    return Two


@pytest.mark.parametrize("use", ["a", "b", "both"])
def test_multi_output_missing_gradients_are_zeros_like_torch(use):
    res = {}
    for lib in (mg, torch):
        x, y = _lib_tensor(lib, [1.0, 2.0], True), _lib_tensor(lib, [3.0, -1.0], True)
        a, b = _two_outputs(lib).apply(x, y)
        loss = {"a": (a * a).sum(), "b": (b * 5).sum(), "both": (a * b).sum()}[use]
        loss.backward()
        res[lib] = (_grad(x), _grad(y), a.grad_fn.got, a.grad_fn is b.grad_fn, b.output_nr)
    for m, t in zip(res[mg][:3], res[torch][:3]):
        np.testing.assert_allclose(m, t, rtol=1e-14)
    assert res[mg][3:] == res[torch][3:] == (True, 1)


def test_non_differentiable_output_like_torch():
    res = {}
    for lib in (mg, torch):
        x, y = _lib_tensor(lib, [1.0, 2.0], True), _lib_tensor(lib, [3.0, -1.0], True)
        a, b = _two_outputs(lib, mark=True).apply(x, y)
        (a * 4).sum().backward()
        res[lib] = (_grad(x), _grad(y), a.grad_fn.got, b.requires_grad, b.grad_fn is None, a.requires_grad)
    for m, t in zip(res[mg][:3], res[torch][:3]):
        np.testing.assert_allclose(m, t, rtol=1e-14)
    assert res[mg][3:] == res[torch][3:] == (False, True, True)


def test_none_gradient_for_an_input_that_requires_grad_like_torch():
    res = {}
    for lib in (mg, torch):
        class OnlyFirst(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, y):
                return x * y

            @staticmethod
            def backward(ctx, g):
                return g, None
        x, y = _lib_tensor(lib, [1.0, 2.0], True), _lib_tensor(lib, [3.0, -1.0], True)
        OnlyFirst.apply(x, y).sum().backward()
        res[lib] = (_grad(x), _grad(y))
    np.testing.assert_allclose(res[mg][0], res[torch][0])
    assert res[mg][1] is None and res[torch][1] is None


def test_no_input_requires_grad_records_nothing_like_torch():
    for lib in (mg, torch):
        y = _cube(lib).apply(_lib_tensor(lib, [1.0, 2.0]), 2.0)
        assert not y.requires_grad and y.grad_fn is None
        x = _lib_tensor(lib, [1.0, 2.0], True)
        with lib.no_grad():
            y = _cube(lib).apply(x, 2.0)
        assert not y.requires_grad and y.grad_fn is None


def _returning(lib, grads):
    class Bad(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return grads(lib, g)
    return Bad


def _torch_message(grads):
    with pytest.raises(RuntimeError) as info:
        _returning(torch, grads).apply(_lib_tensor(torch, [1.0, 2.0], True), 2.0).sum().backward()
    return str(info.value)


@pytest.mark.parametrize("grads", [
    lambda lib, g: g,                                   # one gradient for two inputs
    lambda lib, g: (g, g),                              # a gradient for the non-tensor k
    lambda lib, g: (g, None, g),                        # one too many, not None
    lambda lib, g: (_lib_tensor(lib, [1.0, 2.0, 3.0]), None),  # wrong shape
    lambda lib, g: (_lib_tensor(lib, 1.0), None),       # a scalar does not broadcast back to (2,)
], ids=["too-few", "non-tensor-input", "too-many", "shape", "scalar"])
def test_bad_backward_results_raise_torchs_errors(grads):
    x = _lib_tensor(mg, [1.0, 2.0], True)
    y = _returning(mg, grads).apply(x, 2.0).sum()
    with pytest.raises(RuntimeError) as info:
        y.backward()
    assert str(info.value) == _torch_message(grads).replace("torch.", "")
    assert x.grad is None


def test_backward_results_torch_accepts_are_accepted():
    """Extra trailing Nones, a gradient that broadcasts to the input (summed down), arrays and other
    dtypes (cast to the input's) are all fine in torch."""
    for grads in (lambda lib, g: (g, None, None),
                  lambda lib, g: (_lib_tensor(lib, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), None),
                  lambda lib, g: (_lib_tensor(lib, [[1.0], [2.0]]).expand(2, 2) * g, None),
                  lambda lib, g: ((g * 2).numpy() if lib is mg else g * 2, None),
                  lambda lib, g: (np.array([1, 2]) if lib is mg else torch.tensor([1, 2]), None)):
        res = []
        for lib in (mg, torch):
            x = lib.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
            _returning(lib, grads).apply(x, 2.0).sum().backward()
            res.append((np.array(_grad(x)), x.grad.dtype == x.dtype))
        np.testing.assert_allclose(res[0][0], res[1][0])
        assert res[0][1] and res[1][1]


def test_invalid_gradient_type_raises():
    x = _lib_tensor(mg, [1.0, 2.0], True)
    with pytest.raises(RuntimeError, match=r"BadBackward returned an invalid gradient at index 0: .*float"):
        _returning(mg, lambda lib, g: (3.0, None)).apply(x, 2.0).sum().backward()


def test_save_for_backward_refuses_non_tensors_like_torch():
    for lib in (mg, torch):
        class Saves(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x, 3)
                return x * 1

            @staticmethod
            def backward(ctx, g):
                return g
        with pytest.raises(TypeError, match="save_for_backward can only save"):
            Saves.apply(_lib_tensor(lib, [1.0], True))


def test_saved_tensors_freed_after_backward_and_kept_with_retain_graph():
    for lib in (mg, torch):
        x = _lib_tensor(lib, [1.0, 2.0], True)
        y = _cube(lib).apply(x, 2.0)
        y.sum().backward(retain_graph=True)
        assert y.grad_fn.saved_tensors[0] is x
        y.sum().backward()
        np.testing.assert_allclose(_grad(x), [12.0, 48.0])
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
            y.grad_fn.saved_tensors
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
            y.sum().backward()


def _exp(lib):
    """Saves its own output, as torch's Exp example does."""
    class Exp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * y
    return Exp


def test_saved_output_gives_torchs_gradient_and_makes_no_cycle():
    res = []
    for lib in (mg, torch):
        x = _lib_tensor(lib, [0.5, -1.0], True)
        (_exp(lib).apply(x * 3) * _lib_tensor(lib, [2.0, 5.0])).sum().backward()
        res.append(_grad(x))
    np.testing.assert_allclose(res[0], res[1], rtol=1e-14)
    gc.disable()  # the node holds its output only weakly: reference counting alone frees the graph
    try:
        y = _exp(mg).apply(_lib_tensor(mg, [0.5], True))
        node = weakref.ref(y.grad_fn)
        del y
        assert node() is None
    finally:
        gc.enable()


class _VersionedTensor(mg.Tensor):
    """Stands in for the version counter in-place ops bump: set ``_version`` by hand."""
    _version = 0


def test_saved_tensor_modified_in_place_is_refused():
    x = _VersionedTensor(np.array([1.0, 2.0]), requires_grad=True)
    y = _cube(mg).apply(x, 2.0)
    x._version = 1
    with pytest.raises(RuntimeError, match=r"one of the variables needed for gradient computation has been "
                                           r"modified by an inplace operation: .*CubeBackward, is at "
                                           r"version 1; expected version 0 instead"):
        y.sum().backward()
    x._version = 0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 24.0])


def test_function_in_the_graph_under_both_engines_matches_torch(monkeypatch):
    rng = np.random.default_rng(5)
    x0, w0 = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    tx, tw = torch.tensor(x0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    a, b = _two_outputs(torch).apply(_exp(torch).apply(tx @ tw), tx)
    (a.tanh() * b).sum().backward()
    for engine in ("compiled", "reference"):
        monkeypatch.setattr(_engine, "ENGINE", engine)
        x, w = mg.tensor(x0, requires_grad=True), mg.tensor(w0, requires_grad=True)
        a, b = _two_outputs(mg).apply(_exp(mg).apply(x @ w), x)
        (a.tanh() * b).sum().backward()
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), rtol=1e-12)


def test_non_tensor_outputs_pass_through_like_torch():
    for lib in (mg, torch):
        class WithCount(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2, 5

            @staticmethod
            def backward(ctx, g, g_count):
                return g * 2
        x = _lib_tensor(lib, [1.0, 3.0], True)
        y, count = WithCount.apply(x)
        y.sum().backward()
        assert count == 5
        np.testing.assert_allclose(_grad(x), [2.0, 2.0])


def test_cycle_through_ctx_is_collected():
    """ctx may hold anything, here a tensor computed from the function's output: a reference cycle
    through hidden graph nodes, which gc.collect() must still find."""
    x = _lib_tensor(mg, [1.0, 2.0], True)
    y = _cube(mg).apply(x, 2.0)
    z = (y * 3).tanh()
    y.grad_fn.keep = z
    assert not _engine.graph_hidden()
    node = weakref.ref(y.grad_fn)
    del y, z
    gc.collect()
    assert node() is None
    assert _engine.graph_hidden()


def test_apply_on_function_itself_is_refused():
    with pytest.raises(TypeError, match="subclass of Function"):
        mg.autograd.Function.apply(_lib_tensor(mg, [1.0], True))
