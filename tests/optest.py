"""One helper that checks any op's forward and backward against PyTorch.

``check_op(mg_fn, torch_fn, arrays, dtype)`` builds the same leaves in both libraries, optionally passes them
through the same view (transpose, strided slice) so the op sees non-contiguous data, runs the op, compares the
outputs, then backpropagates the same random upstream gradient (every output element weighted differently)
and compares every input's gradient.
"""
import numpy as np
import torch

import minigrad as mg

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}

VIEWS = {
    "plain": (lambda t: t, lambda t: t),
    # reverse every dimension's order twice over: a transposed (non-contiguous) view of the same values
    "transposed": (lambda t: t.permute(*reversed(range(t.ndim))) if t.ndim > 1 else t,
                   lambda t: t.permute(*reversed(range(t.ndim))) if t.ndim > 1 else t),
}


def leaves(arrays, dtype, view):
    """Leaves in both libraries; with view='transposed' the op receives transposed (strided) views."""
    mg_view, th_view = VIEWS[view]
    mg_leaves, th_leaves, mg_args, th_args = [], [], [], []
    for a in arrays:
        base = np.asarray(a, dtype=dtype)
        if view == "transposed" and base.ndim > 1:
            base = np.ascontiguousarray(base.transpose(*reversed(range(base.ndim))))
        m = mg.tensor(base, requires_grad=True)
        t = torch.tensor(base, requires_grad=True)
        mg_leaves.append(m)
        th_leaves.append(t)
        mg_args.append(mg_view(m))
        th_args.append(th_view(t))
    return mg_leaves, th_leaves, mg_args, th_args


def assert_close(mine, theirs, dtype, what="", scale=None):
    mine = np.asarray(mine)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert mine.shape == theirs.shape, "%s: shape %s != torch's %s" % (what, mine.shape, theirs.shape)
    tol = dict(TOL[np.dtype(dtype).type])
    if scale is not None:
        tol["atol"] = tol["atol"] * max(1.0, scale)
    np.testing.assert_allclose(mine, theirs, err_msg=what, equal_nan=True, **tol)


def check_op(mg_fn, torch_fn, arrays, dtype=np.float64, view="plain", seed=0, grad=True):
    """Compare forward and backward of ``mg_fn`` with ``torch_fn`` on ``arrays``."""
    mg_leaves, th_leaves, mg_args, th_args = leaves(arrays, dtype, view)
    out_mg = mg_fn(*mg_args)
    out_th = torch_fn(*th_args)
    assert isinstance(out_mg, mg.Tensor), "op returned %s" % type(out_mg).__name__
    assert out_mg.dtype == np.dtype(dtype), "output dtype %s, expected %s" % (out_mg.dtype, np.dtype(dtype))
    assert_close(out_mg.data, out_th, dtype, "forward")
    if not grad:
        return out_mg
    upstream = np.random.default_rng(seed).standard_normal(out_th.shape).astype(dtype)
    out_mg.backward(upstream)
    out_th.backward(torch.tensor(upstream))
    for i, (m, t) in enumerate(zip(mg_leaves, th_leaves)):
        if t.grad is None:
            assert m.grad is None or not np.any(m.grad.data), "input %d: torch has no gradient" % i
            continue
        assert m.grad is not None, "input %d got no gradient" % i
        assert m.grad.dtype == m.dtype
        assert_close(m.grad.data, t.grad, dtype, "gradient of input %d" % i)
    return out_mg
