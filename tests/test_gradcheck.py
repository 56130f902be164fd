"""gradcheck on every differentiable op in float64, and gradcheck itself catching a wrong gradient."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import GradcheckError, gradcheck


def leaf(shape, seed, low=-1.5, high=1.5):
    return mg.tensor(np.random.default_rng(seed).uniform(low, high, size=shape), requires_grad=True)


CASES = {
    "add": (lambda a, b: a + b, [(2, 3), (3,)]),
    "sub": (lambda a, b: a - b, [(2, 1), (1, 3)]),
    "mul": (lambda a, b: a * b, [(2, 3), (2, 3)]),
    "div": (lambda a, b: a / (b * b + 1), [(2, 3), (3,)]),
    "pow": (lambda a, b: (a * a + 0.5) ** b, [(2, 3), (2, 3)]),
    "pow_scalar": (lambda a: a ** 3, [(4,)]),
    "exp": (lambda a: a.exp(), [(2, 3)]),
    "log": (lambda a: (a * a + 0.1).log(), [(2, 3)]),
    "sqrt": (lambda a: (a * a + 0.1).sqrt(), [(2, 3)]),
    "abs": (lambda a: (a + 0.05).abs(), [(5,)]),
    "tanh": (lambda a: a.tanh(), [(2, 3)]),
    "sigmoid": (lambda a: a.sigmoid(), [(2, 3)]),
    "relu": (lambda a: (a + 0.05).relu(), [(2, 3)]),
    "clamp": (lambda a: a.clamp(-0.7, 0.6), [(2, 3)]),
    "where": (lambda a, b: mg.where(a.data > 0, a, b), [(2, 3), (3,)]),
    "masked_fill": (lambda a: a.masked_fill(a.data > 0.5, 0.0), [(2, 3)]),
    "sum": (lambda a: a.sum(1), [(2, 3)]),
    "mean": (lambda a: a.mean((0, 2), keepdim=True), [(2, 3, 2)]),
    "max_dim": (lambda a: a.max(1).values, [(3, 4)]),
    "min_all": (lambda a: a.min(), [(3, 4)]),
    "softmax": (lambda a: a.softmax(-1), [(2, 4)]),
    "log_softmax": (lambda a: a.log_softmax(0), [(3, 2)]),
    "logsumexp": (lambda a: a.logsumexp(1), [(2, 4)]),
    "matmul": (lambda a, b: a @ b, [(2, 3), (3, 4)]),
    "matmul_batched": (lambda a, b: a @ b, [(2, 2, 3), (3, 2)]),
    "matmul_vec": (lambda a, b: a @ b, [(3,), (2, 3, 2)]),
    "reshape": (lambda a: a.reshape(3, 2) * mg.arange(6, dtype=mg.float64).reshape(3, 2), [(2, 3)]),
    "permute": (lambda a: a.permute(2, 0, 1) * mg.arange(12, dtype=mg.float64).reshape(2, 2, 3), [(2, 3, 2)]),
    "expand": (lambda a: a.expand(3, 2) * mg.arange(6, dtype=mg.float64).reshape(3, 2), [(1, 2)]),
    "flip": (lambda a: a.flip(0) * mg.arange(3, dtype=mg.float64), [(3,)]),
    "index": (lambda a: a[np.array([0, 2, 0]), 1:], [(3, 3)]),
    "gather": (lambda a: a.gather(1, np.array([[0, 0], [1, 0]])), [(2, 3)]),
    "stack": (lambda a, b: mg.stack([a, b], 1), [(2, 2), (2, 2)]),
    "cat": (lambda a, b: mg.cat([a, b], 0), [(1, 2), (2, 2)]),
    "split": (lambda a: a.split(1, 1)[0] * a.split(1, 1)[2], [(2, 3)]),
    "unbind": (lambda a: a.unbind(0)[1] - a.unbind(0)[0] ** 2, [(2, 3)]),
    "to32_and_back": (lambda a: a.float().double() * 2, [(2,)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_every_op(name):
    fn, shapes = CASES[name]
    if name == "to32_and_back":
        # float32 rounding inside the function: a larger step keeps the difference quotient meaningful
        assert gradcheck(fn, [leaf(s, i) for i, s in enumerate(shapes)], eps=1e-3, atol=1e-4)
        return
    inputs = [leaf(s, i) for i, s in enumerate(shapes)]
    assert gradcheck(fn, inputs)


def test_gradcheck_reports_a_wrong_gradient():
    x = leaf((3,), 0)

    def bad(t):
        # the value is t², but the detach trick adds t to the analytic gradient: 3t instead of 2t
        return t * t + (t - t.detach()) * t.detach()
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(bad, [x])
    assert gradcheck(bad, [x], raise_exception=False) is False


def test_gradcheck_wants_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda a: a * 2, [mg.ones(2, requires_grad=True)])


def test_gradcheck_leaves_every_grad_as_it_was_like_torch():
    """torch.autograd.gradcheck touches no .grad: not its inputs', not those of tensors the function
    captures, not those of inputs the output does not depend on."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    xv, wv, uv = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(2)
    gx, gw, gu = np.full(3, 7.0), np.full(3, -2.0), np.full(2, 5.0)

    tx, tw, tu = (torch.tensor(v, requires_grad=True) for v in (xv, wv, uv))
    tx.grad, tw.grad, tu.grad = (torch.tensor(g) for g in (gx, gw, gu))
    assert torch.autograd.gradcheck(lambda a, b: (a * tw).tanh(), (tx, tu))

    x, w, u = (mg.tensor(v, requires_grad=True) for v in (xv, wv, uv))
    x.grad, w.grad, u.grad = (mg.tensor(g) for g in (gx, gw, gu))
    before = [x.grad, w.grad, u.grad]
    assert gradcheck(lambda a, b: (a * w).tanh(), (x, u))
    assert [x.grad, w.grad, u.grad] == before  # the same tensors, not copies
    for ours, theirs in ((x, tx), (w, tw), (u, tu)):
        np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())

    # no .grad before: none after, in both
    tw.grad = None
    torch.autograd.gradcheck(lambda a: a * tw, (tx,))
    w.grad = None
    gradcheck(lambda a: a * w, (x,))
    assert tw.grad is None and w.grad is None


def test_gradcheck_ignores_a_stale_grad_of_an_unused_input():
    # u does not reach the output: its Jacobian block is zero whatever u.grad holds
    x, u = mg.tensor(np.ones(2), requires_grad=True), mg.tensor(np.ones(2), requires_grad=True)
    u.grad = mg.tensor(np.full(2, 3.0))
    assert gradcheck(lambda a, b: a * 2.0, (x, u))
