"""Finite-difference gradient checking: the analytic Jacobian against float64 central differences."""
import numpy as np

from minigrad.autograd.grad_mode import no_grad

__all__ = ["GradcheckError", "gradcheck"]


class GradcheckError(RuntimeError):
    pass


def _outputs(fn, inputs):
    from minigrad.tensor import Tensor
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor)]


def _graph_leaves(tensors):
    """The leaves among ``tensors`` and every leaf a backward pass from them accumulates into: the inputs and
    whatever ``fn`` captured (a module's parameters, say)."""
    from minigrad.autograd.engine import AccumulateGrad
    leaves = {}
    nodes = []
    for t in tensors:
        if t.grad_fn is not None:
            nodes.append(t.grad_fn)
        elif t.requires_grad:
            leaves[id(t)] = t
    seen = set()
    while nodes:
        node = nodes.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            leaf = node.variable
            if leaf is not None:
                leaves[id(leaf)] = leaf
        nodes.extend(edge[0] for edge in node.next_functions if edge is not None)
    return list(leaves.values())


def _flat_values(fn, inputs):
    with no_grad():
        values = [o.data.astype(np.float64).ravel() for o in _outputs(fn, inputs)]
        return np.concatenate(values or [np.zeros(0)])


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Check the gradients of ``fn(*inputs)`` for every input that requires grad.

    Each such input must be float64.  The analytic Jacobian (one backward pass per output element) is compared
    with central differences ``(f(x + eps) - f(x - eps)) / (2 eps)``; every entry must satisfy
    ``|analytic - numerical| <= atol + rtol * |numerical|``.  On failure a ``GradcheckError`` reports the
    worst entry (or False is returned with ``raise_exception=False``).

    Like torch's, it has no side effects on gradients: the ``.grad`` of the inputs and of every tensor ``fn``
    captures is what it was before the call.
    """
    from minigrad.tensor import Tensor  # imported here: the tensor module loads the engine, not vice versa
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    diff = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad")
    for i in diff:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64 "
                            "inputs")
        if not inputs[i].is_leaf:
            raise ValueError(f"gradcheck: input {i} is not a leaf tensor")

    outs = _outputs(fn, inputs)
    if not outs:
        raise TypeError("gradcheck: fn returned no minigrad Tensor, so there is nothing to check")
    sizes = [o.data.size for o in outs]
    n_out = sum(sizes)

    # analytic: row r of the Jacobian is the gradient of output element r.  Each pass starts from no .grad
    # anywhere in the graph, and every leaf gets its own .grad tensor (untouched: the passes made new ones)
    # back at the end.
    leaves = _graph_leaves(outs + [inputs[i] for i in diff])
    saved = [(t, t.grad) for t in leaves]
    analytic = {i: np.zeros((n_out, inputs[i].data.size)) for i in diff}
    try:
        r = 0
        for o, size in zip(outs, sizes):
            if not o.requires_grad:
                r += size
                continue
            for k in range(size):
                for t in leaves:
                    t.grad = None
                seed = np.zeros(o.data.size, dtype=o.dtype)
                seed[k] = 1
                o.backward(seed.reshape(o.shape), retain_graph=True)
                for i in diff:
                    g = inputs[i].grad
                    if g is not None:
                        analytic[i][r] = g.data.ravel()
                r += 1
    finally:
        for t, grad in saved:
            t.grad = grad

    # numerical: column c is the change of every output under a perturbation of input element c
    worst = None
    for i in diff:
        data = inputs[i].data
        flat = data.reshape(-1) if data.flags.c_contiguous else None
        if flat is None:
            raise ValueError(f"gradcheck: input {i} must be contiguous")
        numerical = np.zeros_like(analytic[i])
        for c in range(flat.size):
            orig = flat[c]
            flat[c] = orig + eps
            plus = _flat_values(fn, inputs)
            flat[c] = orig - eps
            minus = _flat_values(fn, inputs)
            flat[c] = orig
            numerical[:, c] = (plus - minus) / (2 * eps)
        err = np.abs(analytic[i] - numerical) - (atol + rtol * np.abs(numerical))
        if err.size and (worst is None or err.max() > worst[0]):
            r_, c_ = np.unravel_index(np.argmax(err), err.shape)
            worst = (err.max(), i, r_, c_, analytic[i][r_, c_], numerical[r_, c_])
    if worst is not None and (worst[0] > 0 or not np.isfinite(worst[0])):
        _, i, r_, c_, a, n = worst
        where = tuple(int(j) for j in np.unravel_index(c_, inputs[i].shape))
        msg = (f"gradcheck failed for input {i}: d(output element {r_})/d(input element {where}) is "
               f"{float(a)!r} analytically but {float(n)!r} numerically "
               f"(|diff| {abs(a - n):.3g} > atol {atol:g} + rtol {rtol:g} * |numerical|)")
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True
