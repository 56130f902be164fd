"""Random expression graphs, built op by op in minigrad and in PyTorch side by side, compared in float64.

Each example starts from a few leaves and applies a random sequence of ops to random earlier results, so
values are reused several times (diamonds, shared leaves), pass through views (transpose, permute, slices,
expand, flip, reshape), broadcast, get reduced, indexed, multiplied, normalised, joined and split.  Every
intermediate's forward value is compared with torch's, then all of them are backpropagated at once with
random upstream gradients and every leaf's gradient is compared.

Ops are only applied where both libraries must agree: no relu/abs/clamp near their kinks, no log/sqrt near
0, no max/min over near-ties, no results whose magnitude could overflow.

The default run is bounded (the ``ci`` hypothesis profile); a long campaign is

    MINIGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py
"""
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg

RTOL = 1e-9
MAX_NUMEL = 256
MAX_ABS = 1e4     # results beyond this are dropped, so no chain of ops can overflow
KINK = 1e-4       # the distance kept from non-differentiable points and from ties


class Graph:
    """Pairs (minigrad tensor, torch tensor) holding the same values, plus the draws that build them."""

    def __init__(self, data, seed):
        self.draw = data.draw
        self.rng = np.random.default_rng(seed)
        self.leaves = []
        self.pool = []

    def new_leaf(self, shape):
        values = self.rng.uniform(-2.0, 2.0, size=shape)
        pair = (mg.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True))
        self.leaves.append(pair)
        self.pool.append(pair)
        return pair

    def pick(self, accept=lambda t: True):
        """A random earlier result satisfying ``accept`` (given the minigrad tensor), or None."""
        choices = [p for p in self.pool if accept(p[0])]
        return self.draw(st.sampled_from(choices)) if choices else None

    def push(self, mine, theirs):
        """Keep a result for later ops unless it is too big to build on safely."""
        values = mine.numpy()
        if values.size <= MAX_NUMEL and (values.size == 0 or np.abs(values).max() < MAX_ABS):
            self.pool.append((mine, theirs))

    def axis(self, ndim):
        return self.draw(st.integers(-ndim, ndim - 1))


def _shape(draw, max_dims=3):
    return tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4, 1, 2, 3, 0]), max_size=max_dims)))


def _broadcastable_to(draw, shape):
    """A shape broadcasting against ``shape``: trailing dims kept or set to 1, leading ones maybe dropped."""
    keep = draw(st.integers(0, len(shape)))
    return tuple(draw(st.sampled_from([n, 1])) for n in shape[len(shape) - keep:])


def _broadcasts(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _far_from(values, points):
    """No value within KINK (relative to its size) of any of ``points``."""
    scale = max(1.0, float(np.abs(values).max())) if values.size else 1.0
    return all(values.size == 0 or np.abs(values - p).min() > KINK * scale for p in points)


def _positive(g, pair):
    """The pair itself when all its values are safely positive, else x * x + 0.5 built in both libraries."""
    mine, theirs = pair
    if mine.numel() == 0 or mine.numpy().min() > 0.05:
        return pair
    out = (mine * mine + 0.5, theirs * theirs + 0.5)
    g.push(*out)
    return out


def _no_ties(values, axis):
    """The largest and smallest entries along ``axis`` (None: overall) are unique by a clear margin."""
    if values.size == 0 or (axis is not None and values.shape[axis] == 0):
        return False
    s = np.sort(values.reshape(-1) if axis is None else np.moveaxis(values, axis, -1), axis=-1)
    if s.shape[-1] < 2:
        return True
    gap = KINK * max(1.0, float(np.abs(values).max()))
    return bool((s[..., 1] - s[..., 0]).min() > gap and (s[..., -1] - s[..., -2]).min() > gap)


# ---- the ops: each draws its operands and parameters and pushes its results -----------------------------
def op_binary(g):
    a, ta = g.pick()
    name = g.draw(st.sampled_from(["add", "sub", "mul", "div", "radd", "rsub", "rmul", "rdiv"]))
    if name.startswith("r"):  # Python scalar on the left
        c = g.draw(st.sampled_from([-1.5, 0.5, 2.0, 3]))
        if name == "rdiv":
            a, ta = _positive(g, (a, ta))
        fn = {"radd": lambda x: c + x, "rsub": lambda x: c - x, "rmul": lambda x: c * x,
              "rdiv": lambda x: c / x}[name]
        g.push(fn(a), fn(ta))
        return
    source = g.draw(st.sampled_from(["pool", "leaf", "scalar"]))
    if source == "scalar":
        b = tb = g.draw(st.sampled_from([-2.0, 0.5, 3]))
    elif source == "leaf":
        b, tb = g.new_leaf(_broadcastable_to(g.draw, a.shape))
    else:
        b, tb = g.pick(lambda t: _broadcasts(t.shape, a.shape))
    if name == "div":
        if source == "scalar":
            b = tb = 4.0
        else:
            b, tb = _positive(g, (b, tb))
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
          "div": lambda x, y: x / y}[name]
    g.push(fn(a, b), fn(ta, tb))


def op_unary(g):
    a, ta = g.pick()
    x = a.numpy()
    name = g.draw(st.sampled_from(["neg", "tanh", "sigmoid", "exp", "relu", "abs", "log", "sqrt", "square",
                                   "cube", "reciprocal", "pow_half", "clamp", "clone"]))
    if name in ("log", "sqrt", "pow_half"):
        a, ta = _positive(g, (a, ta))
    elif name == "reciprocal":
        if not _far_from(x, [0.0]) or (x.size and np.abs(x).min() < 0.1):
            return
    elif (name in ("relu", "abs") and not _far_from(x, [0.0])) or (name == "exp" and x.size and x.max() > 5):
        return
    if name == "clamp":
        lo = g.draw(st.sampled_from([None, -1.0, -0.3]))
        hi = g.draw(st.sampled_from([None, 0.2, 0.9]))
        if (lo is None and hi is None) or not _far_from(x, [v for v in (lo, hi) if v is not None]):
            return
        g.push(a.clamp(lo, hi), ta.clamp(lo, hi))
        return
    mine, theirs = {
        "neg": (lambda: -a, lambda: -ta), "tanh": (a.tanh, ta.tanh), "sigmoid": (a.sigmoid, ta.sigmoid),
        "exp": (a.exp, ta.exp), "relu": (a.relu, ta.relu), "abs": (a.abs, ta.abs), "log": (a.log, ta.log),
        "sqrt": (a.sqrt, ta.sqrt), "square": (lambda: a ** 2, lambda: ta ** 2),
        "cube": (lambda: a ** 3, lambda: ta ** 3), "reciprocal": (lambda: a ** -1, lambda: ta ** -1),
        "pow_half": (lambda: a ** 0.5, lambda: ta ** 0.5), "clone": (a.clone, ta.clone),
    }[name]
    g.push(mine(), theirs())


def op_select(g):
    """where / masked_fill with a mask computed from the forward values."""
    a, ta = g.pick()
    mask = np.asarray(a.numpy() > g.draw(st.sampled_from([-0.5, 0.0, 0.7])))
    if g.draw(st.booleans()):
        value = g.draw(st.sampled_from([0.0, -1.25]))
        g.push(a.masked_fill(mask, value), ta.masked_fill(torch.from_numpy(mask), value))
        return
    b, tb = g.pick(lambda t: _broadcasts(t.shape, a.shape))
    g.push(mg.where(mask, a, b), torch.where(torch.from_numpy(mask), ta, tb))


def op_reduce(g):
    a, ta = g.pick()
    name = g.draw(st.sampled_from(["sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax"]))
    keepdim = g.draw(st.booleans())
    if name in ("sum", "mean"):
        if a.ndim and g.draw(st.booleans()):
            dims = tuple(sorted(set(g.draw(st.lists(st.integers(0, a.ndim - 1), min_size=1)))))
            mine, theirs = getattr(a, name)(dims, keepdim), getattr(ta, name)(dims, keepdim=keepdim)
        else:
            mine, theirs = getattr(a, name)(), getattr(ta, name)()
        if name == "mean" and a.numel() == 0:
            return  # nan, and nan gradients: nothing to compare
        g.push(mine, theirs)
        return
    if a.ndim == 0 or a.numel() == 0:
        return
    dim = g.axis(a.ndim)
    if name in ("max", "min"):
        if g.draw(st.booleans()):
            if _no_ties(a.numpy(), None):
                g.push(getattr(a, name)(), getattr(ta, name)())
            return
        if not _no_ties(a.numpy(), dim):
            return
        (values, idx), (t_values, t_idx) = getattr(a, name)(dim, keepdim), getattr(ta, name)(dim, keepdim)
        np.testing.assert_array_equal(idx, t_idx.numpy())
        g.push(values, t_values)
    elif name == "logsumexp":
        g.push(a.logsumexp(dim, keepdim), ta.logsumexp(dim, keepdim=keepdim))
    else:
        g.push(getattr(a, name)(dim), getattr(ta, name)(dim))


def op_view(g):
    a, ta = g.pick()
    name = g.draw(st.sampled_from(["transpose", "permute", "flip", "slice", "unsqueeze", "squeeze", "reshape",
                                   "flatten", "expand", "T"]))
    n = a.ndim
    if name in ("transpose", "flip", "slice", "flatten", "T") and n == 0:
        return
    if name == "transpose":
        d0, d1 = g.axis(n), g.axis(n)
        g.push(a.transpose(d0, d1), ta.transpose(d0, d1))
    elif name == "permute":
        perm = g.draw(st.permutations(range(n)))
        g.push(a.permute(*perm), ta.permute(perm))
    elif name == "flip":
        dims = tuple(sorted(set(g.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n)))))
        g.push(a.flip(dims), ta.flip(dims))
    elif name == "slice":
        index = []
        for size in a.shape:
            kind = g.draw(st.sampled_from(["all", "range", "int", "none"]))
            if kind == "int" and size > 0:
                index.append(g.draw(st.integers(-size, size - 1)))
            elif kind == "range":
                bound = st.integers(-size - 1, size + 1)
                start, stop = g.draw(bound), g.draw(bound)
                index.append(slice(start, stop, g.draw(st.integers(1, 3))))
            elif kind == "none":
                index += [None, slice(None)]
            else:
                index.append(slice(None))
        index = tuple(index)
        g.push(a[index], ta[index])
    elif name == "unsqueeze":
        d = g.draw(st.integers(-n - 1, n))
        g.push(a.unsqueeze(d), ta.unsqueeze(d))
    elif name == "squeeze":
        if n and g.draw(st.booleans()):
            d = g.axis(n)
            g.push(a.squeeze(d), ta.squeeze(d))
        else:
            g.push(a.squeeze(), ta.squeeze())
    elif name == "reshape":
        shape = _factor(g.draw, a.numel()) if a.numel() else (0, g.draw(st.integers(1, 3)))
        g.push(a.reshape(*shape), ta.reshape(*shape))
    elif name == "flatten":
        s, e = sorted((g.axis(n) % n, g.axis(n) % n))
        g.push(a.flatten(s, e), ta.flatten(s, e))
    elif name == "expand":
        lead = tuple(g.draw(st.lists(st.integers(1, 3), max_size=2)))
        sizes = lead + tuple(g.draw(st.integers(1, 3)) if s == 1 else g.draw(st.sampled_from([s, -1]))
                             for s in a.shape)
        if math.prod(abs(s) for s in sizes) * max(1, a.numel()) <= MAX_NUMEL:
            g.push(a.expand(*sizes), ta.expand(sizes))
    elif n == 2:  # .T
        g.push(a.T, ta.T)


def _factor(draw, numel):
    """A random shape with ``numel`` elements, one size possibly given as -1."""
    shape, rest = [], numel
    while rest > 1 and len(shape) < 3:
        divisors = [d for d in range(2, rest + 1) if rest % d == 0]
        d = draw(st.sampled_from(divisors))
        shape.append(d)
        rest //= d
    shape.append(rest)
    if draw(st.booleans()):
        shape[draw(st.integers(0, len(shape) - 1))] = -1
    return tuple(shape)


def op_index(g):
    pair = g.pick(lambda t: t.ndim > 0 and t.numel() > 0)
    if pair is None:
        return
    a, ta = pair
    kind = g.draw(st.sampled_from(["int_array", "int_array_dim1", "two_arrays", "bool_mask", "gather"]))
    n0 = a.shape[0]
    if kind == "int_array":
        idx = np.array(g.draw(st.lists(st.integers(-n0, n0 - 1), max_size=5)), dtype=np.int64)
        g.push(a[idx], ta[torch.from_numpy(idx)])
    elif kind == "int_array_dim1" and a.ndim >= 2:
        n1 = a.shape[1]
        idx = np.array(g.draw(st.lists(st.integers(0, n1 - 1), min_size=1, max_size=5)), dtype=np.int64)
        g.push(a[:, idx], ta[:, torch.from_numpy(idx)])
    elif kind == "two_arrays" and a.ndim >= 2:
        k = g.draw(st.integers(1, 5))
        rows = g.rng.integers(0, n0, size=k)
        cols = g.rng.integers(0, a.shape[1], size=(1, k))  # broadcast against rows, repeats included
        g.push(a[rows, cols], ta[torch.from_numpy(rows), torch.from_numpy(cols)])
    elif kind == "bool_mask":
        mask = g.rng.random(a.shape) < 0.5
        g.push(a[mask], ta[torch.from_numpy(mask)])
    elif kind == "gather":
        dim = g.axis(a.ndim)
        shape = list(a.shape)
        shape[dim] = g.draw(st.integers(0, 4))
        index = g.rng.integers(0, a.shape[dim], size=shape)
        g.push(a.gather(dim, index), ta.gather(dim, torch.from_numpy(index)))


def op_matmul(g):
    pair = g.pick(lambda t: t.ndim > 0)
    if pair is None:
        return
    a, ta = pair
    if a.ndim >= 2 and g.draw(st.booleans()):
        # a value multiplied by its own transpose: one input used on both sides
        g.push(a @ a.transpose(-1, -2), ta @ ta.transpose(-1, -2))
        return
    if a.ndim == 1 and g.draw(st.booleans()):
        g.push(a @ a, ta @ ta)
        return
    k = a.shape[-1]
    n = g.draw(st.integers(1, 4))
    if g.draw(st.booleans()):
        shape = (k,)  # matrix-vector
    else:
        shape = _broadcastable_to(g.draw, a.shape[:-2] if a.ndim > 2 else (2,)) + (k, n)
    b, tb = g.new_leaf(shape)
    if g.draw(st.booleans()):
        g.push(a @ b, ta @ tb)
    elif b.ndim >= 2 and a.ndim >= 2:
        # the other order, through a transposed view
        g.push(b.transpose(-1, -2) @ a.transpose(-1, -2), tb.transpose(-1, -2) @ ta.transpose(-1, -2))


def op_join(g):
    a, ta = g.pick()
    same = [g.pick(lambda t: t.shape == a.shape) for _ in range(g.draw(st.integers(0, 2)))]
    mine, theirs = [a] + [p[0] for p in same], [ta] + [p[1] for p in same]
    if g.draw(st.booleans()) and a.ndim > 0:
        dim = g.axis(a.ndim)
        g.push(mg.cat(mine, dim), torch.cat(theirs, dim))
    else:
        dim = g.draw(st.integers(-a.ndim - 1, a.ndim))
        g.push(mg.stack(mine, dim), torch.stack(theirs, dim))


def op_split(g):
    pair = g.pick(lambda t: t.ndim > 0)
    if pair is None:
        return
    a, ta = pair
    dim = g.axis(a.ndim)
    name = g.draw(st.sampled_from(["split", "sections", "chunk", "unbind"]))
    size = a.shape[dim]
    if name == "split":
        k = g.draw(st.integers(1, 3))
        pieces, t_pieces = a.split(k, dim), ta.split(k, dim)
    elif name == "sections":
        cuts = sorted(g.draw(st.lists(st.integers(0, size), max_size=2)))
        sizes = [b - a_ for a_, b in zip([0] + cuts, cuts + [size])]
        pieces, t_pieces = a.split(sizes, dim), ta.split(sizes, dim)
    elif name == "chunk":
        k = g.draw(st.integers(1, 3))
        pieces, t_pieces = a.chunk(k, dim), ta.chunk(k, dim)
    else:
        pieces, t_pieces = a.unbind(dim), ta.unbind(dim)
    assert len(pieces) == len(t_pieces)
    # keep only some pieces, so that some outputs of the split receive no gradient at all
    for mine, theirs in zip(pieces, t_pieces):
        if g.draw(st.booleans()):
            g.push(mine, theirs)


OPS = [op_binary, op_unary, op_select, op_reduce, op_view, op_index, op_matmul, op_join, op_split]


def _close(mine, theirs, what):
    mine = np.asarray(mine)
    theirs = theirs.detach().numpy()
    assert mine.shape == theirs.shape, f"{what}: shape {mine.shape} != torch's {theirs.shape}"
    assert mine.dtype == np.float64, f"{what}: dtype {mine.dtype}"
    scale = max(1.0, float(np.abs(theirs).max())) if theirs.size else 1.0
    np.testing.assert_allclose(mine, theirs, rtol=RTOL, atol=RTOL * scale, err_msg=what)


# Each example is cheap: run 8x the profile's count (ci: 320, about 10 s; long: 16,000).
@settings(max_examples=8 * settings().max_examples, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), n_ops=st.integers(1, 25))
def test_random_graphs_match_torch(data, seed, n_ops):
    g = Graph(data, seed)
    for _ in range(data.draw(st.integers(1, 3))):
        g.new_leaf(_shape(data.draw))
    for _ in range(n_ops):
        data.draw(st.sampled_from(OPS))(g)
    results = [p for p in g.pool if not p[0].is_leaf]
    for i, (mine, theirs) in enumerate(results):
        _close(mine, theirs, f"forward of result {i} ({mine.grad_fn.name()})")
    if not results:
        return
    upstream = [g.rng.standard_normal(mine.shape) for mine, _ in results]
    mg.autograd.backward([m for m, _ in results], upstream)
    torch.autograd.backward([t for _, t in results], [torch.from_numpy(u) for u in upstream])
    for i, (leaf, t_leaf) in enumerate(g.leaves):
        if t_leaf.grad is None:
            assert leaf.grad is None or not leaf.grad.numpy().any(), f"leaf {i}: torch has no gradient"
        else:
            assert leaf.grad is not None, f"leaf {i} got no gradient"
            _close(leaf.grad.numpy(), t_leaf.grad, f"gradient of leaf {i} {tuple(leaf.shape)}")
