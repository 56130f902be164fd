"""Every differentiable op, forward and backward, against PyTorch over shapes drawn by hypothesis."""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import minigrad as mg
from minigrad.nn import _recurrent
from optest import assert_close, check_op

ReusedOperand = _recurrent.ReusedOperand
DTYPES = [np.float64, np.float32]
VIEWS = ["plain", "transposed"]


def values(shape, seed, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def positive(shape, seed):
    return np.random.default_rng(seed).uniform(0.3, 2.0, size=shape)


pair_shapes = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=4)
shapes = array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
nonempty = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
seeds = st.integers(0, 2**16)

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b),
    "where": (lambda a, b: mg.where(a.data > 0.5, a, b), lambda a, b: torch.where(a > 0.5, a, b)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", DTYPES)
@given(shapes=pair_shapes, seed=seeds)
def test_binary_broadcasting(name, dtype, shapes, seed):
    a_shape, b_shape = shapes.input_shapes
    a = positive(a_shape, seed) if name == "pow" else values(a_shape, seed)
    b = positive(b_shape, seed + 1) if name in ("div", "pow") else values(b_shape, seed + 1)
    check_op(*BINARY[name], [a, b], dtype)


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("view", VIEWS)
def test_binary_noncontiguous(name, view):
    a = positive((3, 4, 5), 1)
    b = positive((3, 4, 5), 2)
    check_op(*BINARY[name], [a, b], np.float64, view=view)


SCALAR = {
    "add": (lambda a: a + 2.5, lambda a: a + 2.5),
    "radd": (lambda a: 2.5 + a, lambda a: 2.5 + a),
    "rsub": (lambda a: 1.5 - a, lambda a: 1.5 - a),
    "rmul": (lambda a: -3 * a, lambda a: -3 * a),
    "rdiv": (lambda a: 2.0 / a, lambda a: 2.0 / a),
    "pow2": (lambda a: a ** 2, lambda a: a ** 2),
    "pow_half": (lambda a: a ** 0.5, lambda a: a ** 0.5),
    "pow0": (lambda a: a ** 0, lambda a: a ** 0),
    "rpow": (lambda a: 2.0 ** a, lambda a: 2.0 ** a),
    "neg": (lambda a: -a, lambda a: -a),
}


@pytest.mark.parametrize("name", sorted(SCALAR))
@pytest.mark.parametrize("dtype", DTYPES)
def test_python_scalars(name, dtype):
    out = check_op(*SCALAR[name], [positive((4, 3), 7)], dtype)
    assert out.dtype == np.dtype(dtype)  # Python scalars never promote


UNARY = {
    "exp": (mg.exp, torch.exp, values),
    "log": (mg.log, torch.log, positive),
    "sqrt": (mg.sqrt, torch.sqrt, positive),
    "abs": (mg.abs, torch.abs, values),
    "tanh": (mg.tanh, torch.tanh, values),
    "sigmoid": (mg.sigmoid, torch.sigmoid, values),
    "relu": (mg.relu, torch.relu, values),
    "neg": (mg.neg, torch.neg, values),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), values),
    "clamp_min": (lambda x: x.clamp(min=0.1), lambda x: x.clamp(min=0.1), values),
    "masked_fill": (lambda x: x.masked_fill(x.data > 0.3, 2.0), lambda x: x.masked_fill(x > 0.3, 2.0), values),
    "clone": (lambda x: x.clone(), lambda x: x.clone(), values),
    "to64": (lambda x: x.double() * 1.5, lambda x: x.double() * 1.5, values),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes, seed=seeds)
def test_unary(name, dtype, shape, seed):
    fm, ft, gen = UNARY[name]
    if name == "to64":
        mg_leaves = mg.tensor(gen(shape, seed).astype(dtype), requires_grad=True)
        th_leaves = torch.tensor(gen(shape, seed).astype(dtype), requires_grad=True)
        out = fm(mg_leaves)
        ref = ft(th_leaves)
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-7)
        g = np.random.default_rng(seed).standard_normal(shape)
        out.backward(g)
        ref.backward(torch.tensor(g))
        assert mg_leaves.grad.dtype == np.dtype(dtype)
        np.testing.assert_allclose(mg_leaves.grad.data, th_leaves.grad.numpy(), rtol=1e-6)
        return
    check_op(fm, ft, [gen(shape, seed)], dtype)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_noncontiguous(name):
    fm, ft, gen = UNARY[name]
    if name == "to64":
        return
    check_op(fm, ft, [gen((4, 3, 2), 3)], np.float64, view="transposed")
    check_op(lambda x: fm(x[::2, 1:]), lambda x: ft(x[::2, 1:]), [gen((5, 4), 4)], np.float64)


def reduce_dims(shape):
    return st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1) if shape else st.none(),
                     st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)
                     .map(tuple) if shape else st.none())


@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), shape=shapes, seed=seeds, keepdim=st.booleans())
def test_sum_mean(op, dtype, data, shape, seed, keepdim):
    dim = data.draw(reduce_dims(shape))
    if op == "mean" and 0 in shape:
        return  # mean over an empty set is nan in both; gradients are empty
    if dim is None:
        check_op(lambda x: getattr(x, op)(), lambda x: getattr(x, op)(), [values(shape, seed)], dtype)
    else:
        check_op(lambda x: getattr(x, op)(dim, keepdim=keepdim),
                 lambda x: getattr(x, op)(dim, keepdim=keepdim), [values(shape, seed)], dtype)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), shape=nonempty, seed=seeds, keepdim=st.booleans())
def test_max_min(op, dtype, data, shape, seed, keepdim):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = values(shape, seed)
    check_op(lambda t: getattr(t, op)(dim, keepdim)[0], lambda t: getattr(t, op)(dim, keepdim)[0], [x], dtype)
    check_op(lambda t: getattr(t, op)(), lambda t: getattr(t, op)(), [x], dtype)
    idx = getattr(mg.tensor(x), op)(dim, keepdim).indices
    np.testing.assert_array_equal(idx, getattr(torch.tensor(x), op)(dim, keepdim).indices.numpy())


def test_max_ties_share_gradient():
    x = np.array([1.0, 3.0, 3.0, 2.0])
    check_op(lambda t: t.max() * 1.0, lambda t: t.max() * 1.0, [x])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), shape=nonempty, seed=seeds)
def test_softmax_family(op, dtype, data, shape, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_op(lambda t: getattr(t, op)(dim), lambda t: getattr(t, op)(dim), [values(shape, seed, -5, 5)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp(dtype):
    x = values((3, 4, 5), 0, -4, 4)
    for dim, keep in [(0, False), (1, True), (-1, False)]:
        check_op(lambda t: t.logsumexp(dim, keep), lambda t: t.logsumexp(dim, keep), [x], dtype)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_stable_for_large_logits(op, dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [3e4, 3e4 - 1, 3e4 - 2]])
    out = check_op(lambda t: getattr(t, op)(1), lambda t: getattr(t, op)(1), [x], dtype)
    assert np.all(np.isfinite(out.data))


MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4,)), ((4,), (4, 2)), ((3, 4), (4,)), ((2, 3, 4), (4, 5)),
                 ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
                 ((1, 1), (1, 1)), ((0, 3), (3, 2)), ((3, 0), (0, 2)), ((7, 63), (63, 65))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul(shapes, dtype):
    a, b = values(shapes[0], 1), values(shapes[1], 2)
    check_op(lambda x, y: x @ y, lambda x, y: x @ y, [a, b], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_views(dtype):
    a, b = values((6, 5), 1), values((4, 6), 2)
    # a.T (5, 6) @ b.T (6, 4): both operands transposed views
    check_op(lambda x, y: x.T @ y.T, lambda x, y: x.T @ y.T, [a, b], dtype)
    check_op(lambda x, y: x[::2] @ y[:, ::-1][:5], lambda x, y: x[::2] @ y.flip(1)[:5],
             [values((6, 5), 3), values((5, 4), 4)], dtype)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((32, 128), (128, 128)), ((6, 65), (65, 33))], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_recurrent_step(shapes, dtype):
    """The RNN step's c + h @ W.T as one node: values and all three gradients against torch.addmm, alone,
    chained over steps sharing the packing, and with only some inputs requiring grad."""
    (m, k), (_, n) = shapes
    c, a, w = values((m, n), 0), values((m, k), 1), values((n, k), 2) / np.sqrt(k)
    check_op(lambda z, x, y: _recurrent.step(z, x, ReusedOperand(y.T)),
             lambda z, x, y: torch.addmm(z, x, y.T), [c, a, w], dtype)

    def steps(z, x, y):  # three steps through one packing; the state is cut to k columns between steps
        r, h = ReusedOperand(y.T), x
        for _ in range(3):
            h = _recurrent.step(z, h, r).tanh()
            h = h[:, :k] if n >= k else h
        return h

    def steps_torch(z, x, y):
        h = x
        for _ in range(3):
            h = torch.addmm(z, h, y.T).tanh()
            h = h[:, :k] if n >= k else h
        return h

    if n >= k and dtype == np.float64:
        check_op(steps, steps_torch, [c, a, w], dtype)
    # gradients only where asked: c and W constant, then h constant
    z, x = mg.tensor(c.astype(dtype)), mg.tensor(a.astype(dtype), requires_grad=True)
    r = ReusedOperand(mg.tensor(w.astype(dtype)).T)
    out = _recurrent.step(z, x, r)
    assert out.grad_fn.name() == "AddmmBackward"
    assert r.packed_transposed is None  # packed by the first backward product that needs it
    out.sum().backward()
    assert r.packed_transposed is not None and r.packed_transposed.shape == r.b.shape[::-1]
    tx = torch.tensor(a.astype(dtype), requires_grad=True)
    torch.addmm(torch.tensor(c.astype(dtype)), tx, torch.tensor(w.astype(dtype)).T).sum().backward()
    assert_close(x.grad.data, tx.grad, dtype, "gradient of h")
    if mg._backend.name == "c":  # the kernels promise the bits of unpacked operands; numpy's reference not
        x2 = mg.tensor(a.astype(dtype), requires_grad=True)
        plain = mg.addmm(z, x2, mg.tensor(w.astype(dtype)).T)
        plain.sum().backward()
        assert np.array_equal(out.data, plain.data)
        assert np.array_equal(x.grad.data, x2.grad.data)  # g @ W from the backward's packing
    assert z.grad is None
    with mg.no_grad():
        assert _recurrent.step(z, x, r).grad_fn is None


@pytest.mark.parametrize("c_shape", ["full", "row", "row1", "col", "scalar"])
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_addmm(c_shape, view, dtype):
    """mg.addmm(input, mat1, mat2) against torch.addmm, input broadcast as a bias row, a column or a scalar:
    values and the gradients of all three (input's summed over the broadcast dimensions)."""
    m, k, n = 6, 65, 33
    c = values({"full": (m, n), "row": (n,), "row1": (1, n), "col": (m, 1), "scalar": ()}[c_shape], 0)
    check_op(mg.addmm, torch.addmm, [c, values((m, k), 1), values((k, n), 2)], dtype, view)
    out = mg.addmm(mg.tensor(c, dtype=dtype), mg.randn(m, k, requires_grad=True, dtype=dtype),
                   mg.randn(k, n, dtype=dtype))
    assert out.grad_fn.name() == "AddmmBackward"


def test_addmm_gradcheck():
    from minigrad.autograd.gradcheck import gradcheck
    rng = np.random.default_rng(3)
    args = [mg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((5,), (4, 3), (3, 5))]
    assert gradcheck(mg.addmm, args)


def test_linear_is_one_addmm_node():
    """nn.functional.linear with a bias records one AddmmBackward (as torch does) for 2-D and N-D inputs,
    and matches torch's linear; without a bias or with mixed dtypes it is a product and an add."""
    import torch.nn.functional as TF

    from minigrad.nn import functional as F
    for shape in ((4, 3), (2, 4, 3), (0, 3), (2, 0, 3)):
        check_op(F.linear, TF.linear, [values(shape, 0), values((5, 3), 1), values((5,), 2)])
    x, w, b = mg.randn(4, 3), mg.randn(5, 3, requires_grad=True), mg.randn(5, requires_grad=True)
    assert F.linear(x, w, b).grad_fn.name() == "AddmmBackward"
    assert F.linear(x.reshape(2, 2, 3), w, b).grad_fn.name() == "ReshapeBackward"
    assert F.linear(x, w).grad_fn.name() == "MatmulBackward"
    assert F.linear(x, w, b.double()).dtype == np.float64  # mixed dtypes promote, as before
    with pytest.raises(ValueError, match="does not broadcast"):
        F.linear(x, w, mg.randn(4))


def test_addmm_rejects_bad_operands():
    with pytest.raises(ValueError, match="must be 2-D"):
        mg.addmm(mg.randn(5), mg.randn(2, 4, 3), mg.randn(3, 5))
    with pytest.raises(ValueError, match="must be 2-D"):
        mg.addmm(mg.randn(5), mg.randn(4, 3), mg.randn(3))
    with pytest.raises(ValueError, match=r"cannot be multiplied \(4x3 and 2x5\)"):
        mg.addmm(mg.randn(5), mg.randn(4, 3), mg.randn(2, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        mg.addmm(mg.randn(4), mg.randn(4, 3), mg.randn(3, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        mg.addmm(mg.randn(1, 4, 5), mg.randn(4, 3), mg.randn(3, 5))
    with pytest.raises(TypeError, match="expected one dtype"):
        mg.addmm(mg.randn(5).double(), mg.randn(4, 3), mg.randn(3, 5))
    with pytest.raises(TypeError, match="expected one dtype"):
        mg.addmm(mg.randn(5), mg.randn(4, 3), mg.randn(3, 5).double())
    with pytest.raises(TypeError):
        mg.addmm("bias", mg.randn(4, 3), mg.randn(3, 5))


# (float32 at the RNN step's size sums 32 rows per weight gradient: beyond check_op's absolute tolerance on
# some kernel paths, so it runs in float64 only)
@pytest.mark.parametrize("shapes,dtype", [(((3, 4), (4, 5)), np.float32), (((3, 4), (4, 5)), np.float64),
                                          (((32, 128), (128, 128)), np.float64)], ids=str)
def test_recurrent_step_tanh(shapes, dtype):
    """activation='tanh': tanh(c + h @ W.T) from one kernel call, recorded as AddmmBackward then TanhBackward
    (the graph of the two-op form), against torch over three chained steps."""
    from minigrad import _backend
    (m, k), (_, n) = shapes
    c, a, w = values((m, n), 0), values((m, k), 1), values((n, k), 2) / np.sqrt(k)
    check_op(lambda z, x, y: _recurrent.step(z, x, ReusedOperand(y.T), activation="tanh"),
             lambda z, x, y: torch.addmm(z, x, y.T).tanh(), [c, a, w], dtype)

    def steps(z, x, y):
        r, h = ReusedOperand(y.T), x
        for _ in range(3):
            h = _recurrent.step(z, h, r, activation="tanh")[:, :k]
        return h

    def steps_torch(z, x, y):
        h = x
        for _ in range(3):
            h = torch.addmm(z, h, y.T).tanh()[:, :k]
        return h

    if n >= k and dtype == np.float64:
        check_op(steps, steps_torch, [c, a, w], dtype)
    z, x = mg.tensor(c.astype(dtype), requires_grad=True), mg.tensor(a.astype(dtype), requires_grad=True)
    r = ReusedOperand(mg.tensor(w.astype(dtype), requires_grad=True).T)
    out = _recurrent.step(z, x, r, activation="tanh")
    assert out.grad_fn.name() == "TanhBackward"
    (inner, _), = out.grad_fn.next_functions
    assert inner.name() == "AddmmBackward"
    if _backend.name == "c":  # the same bits as the two ops
        assert np.array_equal(out.data, _recurrent.step(z, x, r).tanh().data)
    with mg.no_grad():
        assert _recurrent.step(z, x, r, activation="tanh").grad_fn is None
    with pytest.raises(ValueError, match="activation must be None, 'tanh' or 'relu'"):
        _recurrent.step(z, x, r, activation="sigmoid")


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_cat_is_cat_of_stacks(dim, dtype):
    """stack_cat(groups, dim) is cat([stack(g) for g in groups], dim): values and gradients against torch,
    recorded as the same nodes (CatBackward over one StackBackward per group)."""
    from minigrad.nn._recurrent import stack_cat
    # groups of 3 and 3 steps of (2, 4): cat along any dim of the (3, 2, 4) stacks; along 0 the groups may
    # differ in length
    arrays = [values((2, 4), i) for i in range(6 if dim != 0 else 7)]
    split = 3

    def mine(*ts):
        return stack_cat([list(ts[:split]), list(ts[split:])], dim)

    def theirs(*ts):
        return torch.cat([torch.stack(ts[:split]), torch.stack(ts[split:])], dim)

    out = check_op(mine, theirs, arrays, dtype)
    assert out.grad_fn.name() == "CatBackward"
    assert [e[0].name() for e in out.grad_fn.next_functions] == ["StackBackward", "StackBackward"]


def test_stack_cat_promotes_and_rejects():
    from minigrad.nn._recurrent import stack_cat
    a, b = mg.randn(2, 3), mg.randn(2, 3).double()
    assert stack_cat([[a, a], [b, b]], -1).dtype == np.float64
    assert stack_cat([[a], [a]], 1).grad_fn is None
    with pytest.raises(ValueError, match="equal size"):
        stack_cat([[a, mg.randn(3, 2)], [a, a]], 2)
    with pytest.raises(ValueError, match="must match except in dimension"):
        stack_cat([[a, a], [a]], 2)
    with pytest.raises(TypeError):
        stack_cat([a, a], 0)
    with pytest.raises(TypeError):
        stack_cat([], 0)
    with pytest.raises(TypeError):
        stack_cat([[a], []], 0)


def test_recurrent_step_rejects_bad_operands():
    r = ReusedOperand(mg.randn(3, 4))
    with pytest.raises(ValueError, match="c has shape"):
        _recurrent.step(mg.randn(2, 3), mg.randn(2, 3), r)
    with pytest.raises(ValueError, match="c has shape"):
        _recurrent.step(mg.randn(4), mg.randn(2, 3), r)  # no broadcasting: c is the product's shape
    with pytest.raises(ValueError, match="not aligned"):
        _recurrent.step(mg.randn(2, 4), mg.randn(2, 4), r)
    with pytest.raises(TypeError, match="different dtypes"):
        _recurrent.step(mg.randn(2, 4).double(), mg.randn(2, 3), r)
    with pytest.raises(TypeError, match="different dtypes"):
        _recurrent.step(mg.randn(2, 4), mg.randn(2, 3).double(), r)
    with pytest.raises(TypeError, match="expected a minigrad Tensor for c"):
        _recurrent.step(np.zeros((2, 4), np.float32), mg.randn(2, 3), r)
    with pytest.raises(TypeError, match="expected a minigrad Tensor"):
        _recurrent.step(mg.randn(2, 4), np.zeros((2, 3), np.float32), r)
    with pytest.raises(TypeError):
        _recurrent.step(mg.randn(2, 4), mg.randn(2, 3), mg.randn(3, 4))


# ---- out=: results written straight into a given buffer (an RNN layer's output) -------------------------

# the node a recurrent step's result carries, per activation (its addmm node comes before it)
_STEP_NODE = {"tanh": "TanhBackward", "relu": "ReluBackward", None: "AddmmBackward"}


def same_storage(arr, out):
    """Whether ``arr`` is ``out``'s very memory: same address, shape and strides."""
    return (arr.__array_interface__["data"][0] == out.__array_interface__["data"][0]
            and arr.shape == out.shape and arr.strides == out.strides)


@pytest.mark.parametrize("shapes,dtype", [(((3, 4), (4, 5)), np.float32), (((3, 4), (4, 5)), np.float64),
                                          (((32, 128), (128, 128)), np.float64)], ids=str)
@pytest.mark.parametrize("activation", ["tanh", "relu", None])
def test_recurrent_step_out(shapes, dtype, activation):
    """out=: the result's storage is out itself -- here a column block of a wider array, one direction's
    half of a bidirectional RNN's output -- with torch's values and gradients of tanh(c + a @ W.T) (or
    c + a @ W.T) and the same graph; the rest of the wider array untouched."""
    (m, k), (_, n) = shapes
    c, a, w = values((m, n), 0), values((m, k), 1), values((n, k), 2) / np.sqrt(k)
    wide = np.full((m, 3 * n), np.nan, dtype)
    out = wide[:, n:2 * n]
    results = []

    def mine(z, x, y):
        results.append(_recurrent.step(z, x, ReusedOperand(y.T), activation=activation, out=out))
        return results[-1]

    def theirs(z, x, y):
        s = torch.addmm(z, x, y.T)
        return getattr(s, activation)() if activation else s

    check_op(mine, theirs, [c, a, w], dtype)
    res, = results
    assert np.shares_memory(res.data, out) and same_storage(res.data, out)
    assert res.grad_fn.name() == _STEP_NODE[activation]
    assert np.isnan(wide[:, :n]).all() and np.isnan(wide[:, 2 * n:]).all()
    with mg.no_grad():
        plain = np.empty((m, n), dtype)
        t = _recurrent.step(mg.tensor(c, dtype=dtype), mg.tensor(a, dtype=dtype),
                         ReusedOperand(mg.tensor(w, dtype=dtype).T), activation=activation, out=plain)
    assert t.grad_fn is None and same_storage(t.data, plain)
    assert_close(plain, theirs(*(torch.tensor(v.astype(dtype)) for v in (c, a, w))), dtype, "no grad")


def test_recurrent_step_out_rejects_bad_out():
    r = ReusedOperand(mg.randn(3, 3))
    z, x = mg.randn(2, 3), mg.randn(2, 3)
    with pytest.raises(ValueError, match="out has shape"):
        _recurrent.step(z, x, r, out=np.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _recurrent.step(z, x, r, activation="tanh", out=np.empty((2, 3)))
    ro = np.zeros((2, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _recurrent.step(z, x, r, out=ro)
    with pytest.raises(TypeError):
        _recurrent.step(z, x, r, out=[[0.0] * 3] * 2)
    before = (z.data.copy(), x.data.copy())
    for operand in (z, x):
        with pytest.raises(ValueError, match="shares memory"):
            _recurrent.step(z, x, r, activation="tanh", out=operand.data)
    assert np.array_equal(z.data, before[0]) and np.array_equal(x.data, before[1])


# ---- _recurrent.steps: the two directions of a bidirectional RNN's step as one kernel job ---------------

def two_directions(shapes, seed=0):
    """c, a and w (n, k) of two products: the forward and reverse directions' step."""
    (m, k), (_, n) = shapes
    return [values((m, n), seed), values((m, k), seed + 1), values((n, k), seed + 2) / np.sqrt(k),
            values((m, n), seed + 3), values((m, k), seed + 4), values((n, k), seed + 5) / np.sqrt(k)]


@pytest.mark.parametrize("shapes,dtype", [(((3, 4), (4, 5)), np.float32), (((3, 4), (4, 5)), np.float64),
                                          (((32, 128), (128, 128)), np.float64)], ids=str)
@pytest.mark.parametrize("activation", ["tanh", "relu", None])
def test_recurrent_steps(shapes, dtype, activation):
    """_recurrent.steps for the two directions: torch's values and the gradients of both c's, a's and
    weights (alone, over three chained steps, with one weight -- or one ReusedOperand -- shared by both
    products); each product its own nodes, those of _recurrent.step, and (C backend) the bits of two
    _recurrent.step calls."""
    (m, k), (_, n) = shapes

    def act(s):
        return getattr(s, activation)() if activation else s

    def mine(c0, a0, w0, c1, a1, w1):
        return mg.stack(_recurrent.steps([c0, c1], [a0, a1], [ReusedOperand(w0.T), ReusedOperand(w1.T)],
                                          activation))

    def theirs(c0, a0, w0, c1, a1, w1):
        return torch.stack([act(torch.addmm(c0, a0, w0.T)), act(torch.addmm(c1, a1, w1.T))])

    arrays = two_directions(shapes)
    check_op(mine, theirs, arrays, dtype)
    check_op(lambda c0, a0, w, c1, a1: mine(c0, a0, w, c1, a1, w),
             lambda c0, a0, w, c1, a1: theirs(c0, a0, w, c1, a1, w), arrays[:5], dtype)

    def one_operand(c0, a0, w, c1, a1):  # one ReusedOperand (one packing) for both products
        r = ReusedOperand(w.T)
        return mg.stack(_recurrent.steps([c0, c1], [a0, a1], [r, r], activation))

    check_op(one_operand, lambda c0, a0, w, c1, a1: theirs(c0, a0, w, c1, a1, w), arrays[:5], dtype)

    def steps(c0, a0, w0, c1, a1, w1):  # three steps through one packing per direction, states cut to k
        rs, hs = [ReusedOperand(w0.T), ReusedOperand(w1.T)], [a0, a1]
        for _ in range(3):
            hs = [h[:, :k] for h in _recurrent.steps([c0, c1], hs, rs, activation)]
        return mg.stack(hs)

    def steps_torch(c0, a0, w0, c1, a1, w1):
        hs = [a0, a1]
        for _ in range(3):
            hs = [act(torch.addmm(c, h, w.T))[:, :k] for c, h, w in zip((c0, c1), hs, (w0, w1))]
        return torch.stack(hs)

    if n >= k and dtype == np.float64:
        check_op(steps, steps_torch, arrays, dtype)
    leaves = [mg.tensor(v.astype(dtype), requires_grad=True) for v in arrays]
    cs, as_ = [leaves[0], leaves[3]], [leaves[1], leaves[4]]
    rs = [ReusedOperand(leaves[2].T), ReusedOperand(leaves[5].T)]
    got = _recurrent.steps(cs, as_, rs, activation)
    assert isinstance(got, list) and len(got) == 2
    for i in range(2):
        want = _recurrent.step(cs[i], as_[i], rs[i], activation)
        assert got[i].shape == (m, n) and got[i].dtype == np.dtype(dtype)
        node, other = got[i].grad_fn, got[1 - i].grad_fn
        assert node.name() == want.grad_fn.name() == _STEP_NODE[activation]
        if activation:
            (node, _), = node.next_functions
            (other, _), = other.next_functions
            assert node.name() == "AddmmBackward"
        assert node is not other
        assert [type(f).__name__ for f, _ in node.next_functions] == \
            [type(f).__name__ for f, _ in (want.grad_fn.next_functions[0][0] if activation else
                                           want.grad_fn).next_functions]
        if mg._backend.name == "c":  # the same bits as _recurrent.step
            assert np.array_equal(got[i].data, want.data)
    # each product's gradients reach its own leaves only
    got[1].sum().backward()
    assert leaves[0].grad is None and leaves[1].grad is None and leaves[2].grad is None
    assert all(leaves[j].grad is not None for j in (3, 4, 5))
    with mg.no_grad():
        assert all(y.grad_fn is None for y in _recurrent.steps(cs, as_, rs, activation))
    plain = [mg.tensor(v.astype(dtype)) for v in arrays]
    assert all(y.grad_fn is None and not y.requires_grad
               for y in _recurrent.steps([plain[0], plain[3]], [plain[1], plain[4]],
                                          [ReusedOperand(plain[2].T), ReusedOperand(plain[5].T)], activation))


@pytest.mark.parametrize("shapes,dtype", [(((3, 4), (4, 5)), np.float32), (((3, 4), (4, 5)), np.float64),
                                          (((32, 128), (128, 128)), np.float64)], ids=str)
@pytest.mark.parametrize("activation", ["tanh", "relu", None])
def test_recurrent_steps_out(shapes, dtype, activation):
    """outs=: each result's storage is its out -- the two directions' column blocks of one wider array --
    with torch's values and gradients and the same graph; the rest of the wider array untouched."""
    m, n = shapes[0][0], shapes[1][1]
    wide = np.full((m, 3 * n), np.nan, dtype)
    outs = [wide[:, :n], wide[:, 2 * n:]]
    results = []

    def mine(c0, a0, w0, c1, a1, w1):
        results.append(_recurrent.steps([c0, c1], [a0, a1], [ReusedOperand(w0.T), ReusedOperand(w1.T)],
                                         activation, outs=outs))
        return mg.stack(results[-1])

    def theirs(c0, a0, w0, c1, a1, w1):
        ys = [torch.addmm(c0, a0, w0.T), torch.addmm(c1, a1, w1.T)]
        return torch.stack([getattr(y, activation)() for y in ys] if activation else ys)

    check_op(mine, theirs, two_directions(shapes), dtype)
    got, = results
    for y, out in zip(got, outs):
        assert same_storage(y.data, out)
        assert y.grad_fn.name() == _STEP_NODE[activation]
    assert np.isnan(wide[:, n:2 * n]).all()
    # one out None: that product gets a new array
    arrays = [mg.tensor(v.astype(dtype)) for v in two_directions(shapes, 7)]
    rs = [ReusedOperand(arrays[2].T), ReusedOperand(arrays[5].T)]
    a, b = _recurrent.steps([arrays[0], arrays[3]], [arrays[1], arrays[4]], rs, activation,
                             outs=[None, outs[1]])
    assert same_storage(b.data, outs[1]) and not np.shares_memory(a.data, wide)
    assert_close(a.data, theirs(*(torch.tensor(v.data) for v in arrays))[0], dtype, "no out")


@pytest.mark.parametrize("steps", [3, 4])
def test_recurrent_steps_bidirectional_buffer(steps):
    """A bidirectional recurrence through one (T, N, 2H) buffer, each step's two states written by one call
    (forward at t into buf[t, :, :H], reverse at T-1-t into buf[T-1-t, :, H:]; the middle step of an odd T
    puts both in one row block), read back as the next step's operands: torch's values and the gradients
    of every input."""
    batch, hidden = 3, 5

    def mine(x0, x1, h0, h1, w0, w1):
        buf = np.full((steps, batch, 2 * hidden), np.nan)
        rs, hs, out = [ReusedOperand(w0.T), ReusedOperand(w1.T)], [h0, h1], [[None] * steps, [None] * steps]
        for t in range(steps):
            r = steps - 1 - t
            places = [buf[t, :, :hidden], buf[r, :, hidden:]]
            hs = _recurrent.steps([x0[t], x1[r]], hs, rs, "tanh", outs=places)
            out[0][t], out[1][r] = hs
            assert same_storage(hs[0].data, places[0]) and same_storage(hs[1].data, places[1])
        assert np.isfinite(buf).all()
        return mg.cat([mg.stack(out[0]), mg.stack(out[1])], 2)

    def theirs(x0, x1, h0, h1, w0, w1):
        hs, out = [h0, h1], [[None] * steps, [None] * steps]
        for t in range(steps):
            r = steps - 1 - t
            hs = [torch.addmm(x0[t], hs[0], w0.T).tanh(), torch.addmm(x1[r], hs[1], w1.T).tanh()]
            out[0][t], out[1][r] = hs
        return torch.cat([torch.stack(out[0]), torch.stack(out[1])], 2)

    arrays = [values((steps, batch, hidden), 0), values((steps, batch, hidden), 1),
              values((batch, hidden), 2), values((batch, hidden), 3),
              values((hidden, hidden), 4) / 2, values((hidden, hidden), 5) / 2]
    check_op(mine, theirs, arrays, np.float64)


def test_recurrent_steps_rejects_bad_operands():
    r = ReusedOperand(mg.randn(3, 4))
    z, x = mg.randn(2, 4), mg.randn(2, 3)
    for bad in (mg.randn(3, 4), mg.randn(3, 4).data, None):
        with pytest.raises(TypeError, match=r"rs\[1\] must be a ReusedOperand"):
            _recurrent.steps([z, z], [x, x], [r, bad])
    for cs, as_, rs in (([z, z], [x], [r, r]), ([z], [x, x], [r]), ([z, z], [x, x], [r]), ([], [x], [r])):
        with pytest.raises(ValueError, match="expected as many"):
            _recurrent.steps(cs, as_, rs)
    out = np.full((2, 4), np.nan, np.float32)
    for outs in ([out], [out, None, None], []):
        with pytest.raises(ValueError, match="expected as many"):
            _recurrent.steps([z, z], [x, x], [r, r], outs=outs)
    for cs, as_, rs in ((z, [x], [r]), ([z], x, [r]), ([z], [x], r), ([z], [x], None)):
        with pytest.raises(TypeError, match="must be lists or tuples"):
            _recurrent.steps(cs, as_, rs)
    with pytest.raises(ValueError, match="activation must be None, 'tanh' or 'relu'"):
        _recurrent.steps([z], [x], [r], activation="sigmoid")
    # each product checked as _recurrent.step checks it, wherever it stands
    with pytest.raises(ValueError, match="c has shape"):
        _recurrent.steps([z, mg.randn(4)], [x, x], [r, r])
    with pytest.raises(ValueError, match="not aligned"):
        _recurrent.steps([z, z], [x, mg.randn(2, 4)], [r, r])
    with pytest.raises(TypeError, match="different dtypes"):
        _recurrent.steps([z.double(), z], [x, x], [r, r])
    with pytest.raises(TypeError, match="expected a minigrad Tensor for c"):
        _recurrent.steps([z, z.data], [x, x], [r, r])
    with pytest.raises(TypeError, match="expected a minigrad Tensor"):
        _recurrent.steps([z, z], [x, x.data], [r, r])
    # outs meeting another product's: refused before anything is written
    other = np.full((2, 4), np.nan, np.float32)
    with pytest.raises(ValueError, match="the products run at the same time"):
        _recurrent.steps([z, z], [x, x], [r, r], "tanh", outs=[other, other])
    with pytest.raises(ValueError, match="the products run at the same time"):
        _recurrent.steps([z, mg.randn(2, 4)], [x, x], [r, r], outs=[other, z.data])
    assert np.isnan(other).all()
    assert _recurrent.steps([], [], []) == []


def test_recurrent_steps_bad_out_writes_nothing():
    """A product's bad out (shape, dtype, read-only, its own operand) refuses the call before any product
    runs: the other products' outs stay untouched."""
    r = ReusedOperand(mg.randn(3, 4))
    z, x = mg.randn(2, 4), mg.randn(2, 3)
    ro = np.zeros((2, 4), np.float32)
    ro.flags.writeable = False
    for bad, error, match in ((np.empty((4, 2), np.float32), ValueError, "out has shape"),
                              (np.empty((2, 4)), TypeError, "dtype"), (ro, ValueError, "read-only"),
                              (z.data, ValueError, "shares memory")):
        first = np.full((2, 4), np.nan, np.float32)
        with pytest.raises(error, match=match):
            _recurrent.steps([z, z], [x, x], [r, r], "tanh", outs=[first, bad])
        assert np.isnan(first).all()


STEPS_PLACED = {"none": (), "all": (0, 1, 2, 3), "first": (0,), "alternate": (1, 3),
                "all_but_first": (1, 2, 3)}


@pytest.mark.parametrize("placed", sorted(STEPS_PLACED))
@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_into_steps_written_in_place(placed, dtype):
    """stack_into(steps, out) with an RNN's steps h_t = tanh(c_t + h_{t-1} @ W.T), some written straight
    into out[t] by _recurrent.step(..., out=out[t]) (not copied again), the others computed apart (copied):
    out becomes the result's storage, with torch.stack's values and the gradients of every c_t, h_0 and W."""
    from minigrad.nn._recurrent import stack_into
    steps, m, n = 4, 3, 5
    in_place = STEPS_PLACED[placed]
    arrays = [values((m, n), t) for t in range(steps)] + [values((m, n), 10), values((n, n), 11) / np.sqrt(n)]
    seen = {}

    def mine(*ts):
        *cs, h, w = ts
        r, out, pieces = ReusedOperand(w.T), np.full((steps, m, n), np.nan, dtype), []
        for t, c in enumerate(cs):
            h = _recurrent.step(c, h, r, activation="tanh", out=out[t] if t in in_place else None)
            pieces.append(h)
        seen.update(out=out, pieces=pieces)
        return stack_into(pieces, out)

    def theirs(*ts):
        *cs, h, w = ts
        pieces = []
        for c in cs:
            h = torch.tanh(c + h @ w.T)
            pieces.append(h)
        return torch.stack(pieces)

    res = check_op(mine, theirs, arrays, dtype)
    assert same_storage(res.data, seen["out"]) and res.grad_fn.name() == "StackBackward"
    for t, piece in enumerate(seen["pieces"]):
        assert same_storage(piece.data, seen["out"][t]) == (t in in_place)


@pytest.mark.parametrize("layout", ["c", "f", "strided"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_into_copies_other_tensors(layout, dtype):
    """Tensors lying elsewhere are copied into out (of any strides), which becomes the result's storage:
    torch.stack's values and gradients, the rest of a wider buffer untouched; no graph without grads."""
    from minigrad.nn._recurrent import stack_into
    arrays = [values((2, 3), i) for i in range(3)]
    wide = np.full((3, 2, 6), np.nan, dtype)
    out = {"c": np.empty((3, 2, 3), dtype), "f": np.empty((3, 2, 3), dtype, order="F"),
           "strided": wide[:, :, ::2]}[layout]
    res = check_op(lambda *ts: stack_into(list(ts), out), lambda *ts: torch.stack(ts), arrays, dtype)
    assert same_storage(res.data, out) and res.grad_fn.name() == "StackBackward"
    if layout == "strided":
        assert np.isnan(wide[:, :, 1::2]).all()
    plain = np.empty((3, 2, 3), dtype)
    t = stack_into([mg.tensor(a, dtype=dtype) for a in arrays], plain)
    assert t.grad_fn is None and same_storage(t.data, plain)
    np.testing.assert_array_equal(plain, torch.stack([torch.tensor(a.astype(dtype)) for a in arrays]).numpy())


DIRECTIONS_PLACED = {"none": (), "all": tuple((d, t) for d in range(2) for t in range(3)),
                     "some": ((0, 1), (0, 2), (1, 0))}


@pytest.mark.parametrize("placed", sorted(DIRECTIONS_PLACED))
@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_cat_out_bidirectional_layer(placed, dtype):
    """stack_cat([forward steps, reverse steps], dim=2, out=buf), as a bidirectional RNN layer builds its
    output: each direction's steps computed into its half of buf[t] by _recurrent.step(..., out=) (not copied)
    or apart (copied; in "some", a group's first step is in place and the other's is not); buf becomes the
    storage, with torch.cat([stack(fwd), stack(rev)], 2)'s values and every gradient."""
    from minigrad.nn._recurrent import stack_cat
    steps, m, n = 3, 2, 4
    in_place = DIRECTIONS_PLACED[placed]
    arrays = ([values((m, n), s) for s in range(2 * steps)] + [values((m, n), 10)]
              + [values((n, n), 11 + d) / np.sqrt(n) for d in range(2)])
    seen = {}

    def layer(ts, step, buf=None):
        h0, ws = ts[2 * steps], ts[2 * steps + 1:]
        groups = []
        for d in range(2):
            h, outs = h0, [None] * steps
            for t in (range(steps) if d == 0 else range(steps - 1, -1, -1)):
                h = outs[t] = step(ts[d * steps + t], h, ws[d], None if buf is None or (d, t) not in in_place
                                   else buf[t, :, d * n:(d + 1) * n])
            groups.append(outs)
        return groups

    def mine(*ts):
        buf = np.full((steps, m, 2 * n), np.nan, dtype)
        groups = layer(ts, lambda c, h, w, out: _recurrent.step(c, h, ReusedOperand(w.T), "tanh", out), buf)
        seen.update(buf=buf, groups=groups)
        return stack_cat(groups, dim=2, out=buf)

    def theirs(*ts):
        groups = layer(ts, lambda c, h, w, out: torch.tanh(c + h @ w.T))
        return torch.cat([torch.stack(g) for g in groups], 2)

    res = check_op(mine, theirs, arrays, dtype)
    buf = seen["buf"]
    assert same_storage(res.data, buf) and res.grad_fn.name() == "CatBackward"
    assert [e[0].name() for e in res.grad_fn.next_functions] == ["StackBackward", "StackBackward"]
    for d, group in enumerate(seen["groups"]):
        for t, piece in enumerate(group):
            assert same_storage(piece.data, buf[t, :, d * n:(d + 1) * n]) == ((d, t) in in_place)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_cat_out_any_dim(dim, dtype):
    """stack_cat(groups, dim, out=) with tensors lying elsewhere (all copied): torch's cat of stacks, and
    out the result's storage."""
    from minigrad.nn._recurrent import stack_cat
    arrays = [values((2, 4), i) for i in range(6 if dim != 0 else 7)]
    shape = {0: (7, 2, 4), 1: (3, 4, 4), 2: (3, 2, 8), -1: (3, 2, 8)}[dim]
    out = np.full(shape, np.nan, dtype)
    res = check_op(lambda *ts: stack_cat([list(ts[:3]), list(ts[3:])], dim, out=out),
                   lambda *ts: torch.cat([torch.stack(ts[:3]), torch.stack(ts[3:])], dim), arrays, dtype)
    assert same_storage(res.data, out)


def test_stack_into_and_stack_cat_reject_bad_out():
    from minigrad.nn._recurrent import stack_cat, stack_into
    a = mg.randn(2, 3)
    ro = np.zeros((2, 2, 3), np.float32)
    ro.flags.writeable = False
    for join in (lambda out: stack_into([a, a], out), lambda out: stack_cat([[a], [a]], 0, out=out)):
        for not_numpy in ([[[0.0] * 3] * 2] * 2, mg.zeros(2, 2, 3), torch.zeros(2, 2, 3)):
            with pytest.raises(TypeError, match="out must be a numpy array"):
                join(not_numpy)
        with pytest.raises(ValueError, match="shape"):
            join(np.zeros((3, 2, 3), np.float32))
        with pytest.raises(ValueError, match="shape"):
            join(np.zeros((2, 3, 2), np.float32))
        with pytest.raises(ValueError, match="dtype"):
            join(np.zeros((2, 2, 3), np.float64))
        with pytest.raises(ValueError, match="read-only"):
            join(ro)
    # the result's dtype is the promoted one
    with pytest.raises(ValueError, match="dtype"):
        stack_cat([[a], [a.double()]], 0, out=np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        stack_into([a, a.double()], np.zeros((2, 2, 3), np.float32))
    out = np.zeros((2, 2, 3))
    assert same_storage(stack_into([a, a.double()], out).data, out)
    np.testing.assert_array_equal(out, np.stack([a.data, a.data]).astype(np.float64))


def test_stack_into_piece_lying_at_another_place_of_out():
    """Two steps written into each other's places of out: copying either would overwrite the other (its
    own value, saved for its backward), so the call is refused, as torch.stack(..., out=) refuses
    overlapping inputs; and the pieces keep their values."""
    from minigrad.nn._recurrent import stack_cat, stack_into
    c0, c1, h, w = values((2, 3), 0), values((2, 3), 1), values((2, 3), 2), values((3, 3), 3)
    r = ReusedOperand(mg.tensor(w, dtype=np.float64).T)
    out = np.empty((2, 2, 3))
    p0 = _recurrent.step(mg.tensor(c0, dtype=np.float64), mg.tensor(h, dtype=np.float64), r, "tanh", out[1])
    p1 = _recurrent.step(mg.tensor(c1, dtype=np.float64), mg.tensor(h, dtype=np.float64), r, "tanh", out[0])
    want = [torch.tanh(torch.tensor(c) + torch.tensor(h) @ torch.tensor(w).T) for c in (c0, c1)]
    with pytest.raises(ValueError, match="other than its place"):
        stack_into([p0, p1], out)
    with pytest.raises(ValueError, match="other than its place"):
        stack_cat([[p0], [p1]], 0, out=out)
    assert_close(p0.data, want[0], np.float64, "the first piece's own values")
    assert_close(p1.data, want[1], np.float64, "the second piece's own values")


def test_reused_operand_rejects_bad_operands():
    with pytest.raises(TypeError, match="2-D minigrad Tensor"):
        ReusedOperand(np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="2-D minigrad Tensor"):
        ReusedOperand(mg.randn(3))
    r = ReusedOperand(mg.randn(3, 4))
    with pytest.raises(ValueError, match="not aligned"):
        _recurrent.step(mg.randn(2, 4), mg.randn(2, 2, 3), r)
    with pytest.raises(TypeError):
        _recurrent.step(mg.randn(2, 4), mg.randn(2, 3), mg.randn(3, 4))


def test_mixed_dtypes():
    """Elementwise ops promote float32 with float64 like torch; matmul refuses them like torch."""
    a32 = values((2, 3), 1).astype(np.float32)
    b64 = values((2, 3), 2)
    ma, mb = mg.tensor(a32, requires_grad=True), mg.tensor(b64, requires_grad=True)
    ta, tb = torch.tensor(a32, requires_grad=True), torch.tensor(b64, requires_grad=True)
    out, ref = ma * mb + ma, ta * tb + ta
    assert out.dtype == np.float64 and ref.dtype == torch.float64
    out.sum().backward()
    ref.sum().backward()
    assert ma.grad.dtype == np.float32 and mb.grad.dtype == np.float64
    np.testing.assert_allclose(ma.grad.data, ta.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(mb.grad.data, tb.grad.numpy(), rtol=1e-12)
    with pytest.raises(TypeError, match="float32 and float64"):
        ma @ mb.T


SHAPE_OPS = {
    "reshape": (lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
    "view_tuple": (lambda x: x.view((2, 12)), lambda x: x.reshape((2, 12))),
    "transpose": (lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    "unsqueeze": (lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1)),
    "squeeze": (lambda x: x[:, :1].squeeze(1), lambda x: x[:, :1].squeeze(1)),
    "expand": (lambda x: x[:, :1].expand(2, 5, 4), lambda x: x[:, :1].expand(2, 5, 4)),
    "expand_lead": (lambda x: x.expand(3, -1, -1, -1), lambda x: x.expand(3, -1, -1, -1)),
    "flatten": (lambda x: x.flatten(1), lambda x: x.flatten(1)),
    "flip": (lambda x: x.flip((0, 2)), lambda x: x.flip((0, 2))),
    "slice": (lambda x: x[1:, ::2, -1], lambda x: x[1:, ::2, -1]),
    "ellipsis_none": (lambda x: x[..., None, 1], lambda x: x[..., None, 1]),
    "int_array": (lambda x: x[np.array([0, 1, 1, 0])], lambda x: x[torch.tensor([0, 1, 1, 0])]),
    "int_list_dim1": (lambda x: x[:, [2, 0, 2]], lambda x: x[:, [2, 0, 2]]),
    "bool_mask": (lambda x: x[x.data > 0], lambda x: x[x > 0]),
    "gather": (lambda x: x.gather(1, np.array([[[0, 1, 0, 2]], [[2, 2, 2, 2]]])),
               lambda x: x.gather(1, torch.tensor([[[0, 1, 0, 2]], [[2, 2, 2, 2]]]))),
    "chunk_last": (lambda x: x.chunk(2, 1)[1], lambda x: x.chunk(2, 1)[1]),
    "split_sizes": (lambda x: x.split([1, 3], dim=2)[1] * x.split([1, 3], dim=2)[1],
                    lambda x: x.split([1, 3], dim=2)[1] * x.split([1, 3], dim=2)[1]),
    "unbind_some": (lambda x: x.unbind(1)[0] + 2 * x.unbind(1)[2],
                    lambda x: x.unbind(1)[0] + 2 * x.unbind(1)[2]),
    "iterate": (lambda x: mg.stack([r * (i + 1) for i, r in enumerate(x)], 2),
                lambda x: torch.stack([r * (i + 1) for i, r in enumerate(x)], 2)),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_ops(name, view, dtype):
    check_op(*SHAPE_OPS[name], [values((2, 3, 4), 5)], dtype, view=view)


@pytest.mark.parametrize("dim", [0, 1, -1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_cat(dim, dtype):
    a, b, c = values((2, 3), 1), values((2, 3), 2), values((2, 3), 3)
    check_op(lambda *t: mg.stack(list(t), dim), lambda *t: torch.stack(list(t), dim), [a, b, c], dtype)
    if dim < 2:
        c2 = values((2, 5) if dim in (1, -1) else (4, 3), 4)
        check_op(lambda *t: mg.cat(list(t), dim), lambda *t: torch.cat(list(t), dim), [a, c2], dtype)


def test_split_chunk_unbind_shapes_match_torch():
    x = values((7, 5), 0)
    for mine, theirs in [(mg.tensor(x).split(3), torch.tensor(x).split(3)),
                         (mg.tensor(x).chunk(3), torch.tensor(x).chunk(3)),
                         (mg.tensor(x).chunk(4, 1), torch.tensor(x).chunk(4, 1)),
                         (mg.tensor(x).unbind(1), torch.tensor(x).unbind(1))]:
        assert [m.shape for m in mine] == [tuple(t.shape) for t in theirs]
        for m, t in zip(mine, theirs):
            np.testing.assert_array_equal(m.data, t.numpy())


def test_all_split_outputs_used():
    x = values((6, 3), 9)
    check_op(lambda t: mg.cat([p * (i + 1) for i, p in enumerate(t.split(2))], 0),
             lambda t: torch.cat([p * (i + 1) for i, p in enumerate(t.split(2))], 0), [x])


@given(shape=nonempty, seed=seeds)
def test_repeated_integer_indices_accumulate(shape, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, shape[0], size=7)
    check_op(lambda t: t[idx], lambda t: t[torch.tensor(idx)], [values(shape, seed)])


def test_composite_expression_reuses_inputs():
    a, b = values((3, 4), 1), values((4,), 2)

    def f(lib):
        def run(x, y):
            h = (x * y).tanh() + x
            return (h @ y.unsqueeze(1) if lib == "mg" else h @ y.unsqueeze(1)).sum() * h.mean() - (x / (1 + y * y)).sum()
        return run
    check_op(f("mg"), f("torch"), [a, b])


@pytest.mark.parametrize("op", ["unbind", "split", "chunk"])
def test_single_piece_split(op):
    """A split that yields one piece is still a multi-output node."""
    fn = {"unbind": lambda t: t.unbind(0)[0], "split": lambda t: t.split(1, 0)[0],
          "chunk": lambda t: t.chunk(1, 0)[0]}[op]
    check_op(fn, fn, [values((1, 3), 2)])


@pytest.mark.parametrize("b_shape", [(2,), (1, 2), (1, 1, 2)])
def test_bias_gradient_over_many_rows_is_not_a_running_float32_sum(b_shape):
    """A bias broadcast down 10001 rows gets the sum of their gradients.  With a first gradient of 1e8 and
    10000 ones after it, a running float32 sum (numpy's axis-0 reduction) never moves off 1e8 -- its ulp there
    is 8 -- while minigrad's (K.sum_rows) is within 16 of 100010000 and torch's cascade sum within 64 (32)."""
    g = np.ones((10_001, 2), np.float32)
    g[0] = 1e8
    lead = (10_001,) if len(b_shape) < 3 else (73, 137)
    g = g.reshape(lead + (2,))
    x = mg.tensor(np.zeros(g.shape, np.float32))
    b = mg.tensor(np.zeros(b_shape, np.float32), requires_grad=True)
    (x + b).backward(mg.tensor(g))
    tb = torch.zeros(b_shape, requires_grad=True)
    (torch.zeros(g.shape) + tb).backward(torch.from_numpy(g))
    assert b.grad.shape == b_shape and b.grad.dtype == np.float32
    got, want = b.grad.numpy().reshape(-1), tb.grad.numpy().reshape(-1)
    assert np.all(np.abs(got.astype(np.float64) - 100_010_000) <= 16), got
    assert np.all(np.abs(want.astype(np.float64) - 100_010_000) <= 64), want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [32_768, 65_535, 65_536, 262_144 + 77, 1_000_003])
def test_sum_and_mean_of_a_big_array(threads, dtype, n):
    """A big float array's sum over every dimension runs on K.sum_rows (column sums of an (n // W, W) view,
    the rest in double precision): against the exact sum (math.fsum) within 16 roundings of the dtype
    relative to sum |x|, closer than numpy's pairwise float32 sum in every case here; the same bits on 1 and
    2 threads; mean, keepdim and the gradients against torch."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) + 0.25).astype(dtype)
    exact = math.fsum(x.astype(np.float64))
    bound = 16 * np.finfo(dtype).eps * float(np.abs(x.astype(np.float64)).sum())
    sums = []
    for count in (1, 2):
        threads(count)
        sums.append(mg.tensor(x.reshape(-1, 1)).sum().numpy())
    assert sums[0].dtype == dtype and sums[0].shape == ()
    assert np.array_equal(sums[0], sums[1])
    assert abs(float(sums[0]) - exact) <= bound
    if dtype == np.float32:
        assert abs(float(sums[0]) - exact) <= abs(float(x.sum()) - exact) + np.spacing(np.float32(exact))
    t = mg.tensor(x.reshape(1, -1), requires_grad=True)
    tt = torch.tensor(x.reshape(1, -1), requires_grad=True)
    (t.mean(dim=(0, 1), keepdim=True) * 3).sum().backward()
    (tt.mean(dim=(0, 1), keepdim=True) * 3).sum().backward()
    assert t.mean(dim=(0, 1), keepdim=True).shape == (1, 1)
    np.testing.assert_allclose(t.mean().numpy(), tt.mean().detach().numpy(),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_of_a_big_array_special_values_and_layouts(dtype):
    """nan and inf propagate (inf + -inf is nan, without a warning), a sum past the dtype's range is inf, as
    torch's; zeros of either sign sum to +0 as in numpy and torch; views that are not contiguous (numpy's
    sum) agree with the contiguous tensor's."""
    n = 50_000
    cases = {"nan": np.r_[np.nan, np.ones(n)], "inf": np.r_[np.ones(n), np.inf],
             "inf - inf": np.r_[np.inf, np.ones(n), -np.inf], "-0": np.full(n, -0.0),
             "overflow": np.full(n, np.finfo(dtype).max / 4)}
    for name, v in cases.items():
        v = v.astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = mg.tensor(v).sum().numpy()
        want = torch.tensor(v).sum().numpy()
        same = got == want and np.signbit(got) == np.signbit(want)
        assert (np.isnan(got) and np.isnan(want)) or same, name
    t = mg.tensor(np.random.default_rng(7).standard_normal((400, 300)).astype(dtype))
    base = float(t.sum())
    for view in (t.T, t.flip(0), t[:, ::2], t.T[::-1]):
        want = float(view.numpy().astype(np.float64).sum())
        np.testing.assert_allclose(float(view.sum()), want, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(float(t.T.sum()), base, rtol=1e-5 if dtype == np.float32 else 1e-12)
