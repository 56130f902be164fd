"""The backward pass in plain Python: read this before ``engine.pyx``.

It runs the same nodes' backward formulas as the compiled engine, without its fast paths (docs/internals.md);
``MINIGRAD_ENGINE=reference`` makes every backward pass use it.  A node's ``next_functions[i]`` is the
(node, output_nr) that gets the gradient of its i-th input, or None; ``node.backward(grad)`` takes its
output's gradient (a tuple for a multi-output node) and returns one per input: an array, None, or a
``ProductSum`` (matrix products the compiled engine sums lazily; evaluated here at once).
"""
import numpy as np

from minigrad.autograd.engine import FREED_MESSAGE, AccumulateGrad, LazyGrad
from minigrad.autograd.grad_mode import is_anomaly_enabled
from minigrad.tensor import Tensor


def run_backward(roots, grads, retain_graph, capture=None):
    """Backpropagate ``grads`` from ``roots`` (a list of (node, output_nr)).  With ``capture`` (a list of
    (node, output_nr)), return the total gradient reaching each of those edges instead (None where none does):
    no AccumulateGrad runs, and neither does a node that leads to no captured edge."""
    deps = _count_edges(roots)
    deps, runs, wanted = (deps, None, None) if capture is None else _prune(roots, deps, capture)
    pending = {}  # (node, output_nr) -> the gradient summed so far over the uses of that output
    for (node, nr), g in zip(roots, grads):
        if node in deps:
            _add(pending, node, nr, g)
    ready = [node for node in dict.fromkeys(node for node, _ in roots) if deps.get(node) == 0]
    captured = [None] * len(capture or ())
    while ready:  # a node is ready once every consumer of its outputs has handed over its gradient
        node = ready.pop()
        if node.freed and (runs is None or node in runs):
            raise RuntimeError(FREED_MESSAGE)
        outs = [pending.pop((node, nr), None) for nr in range(node.n_outputs)]
        if wanted is not None and node in wanted:
            _capture(node, outs, wanted[node], captured, node in runs)
            if node not in runs:
                continue  # wanted for its gradient only
        outs = [None if g is None else _finish_output(node, nr, g) for nr, g in enumerate(outs)]
        ran = any(g is not None for g in outs)  # AccumulateGrad's backward adds into its leaf's .grad
        if ran:
            node.check_saved()  # nothing it saved was changed in place since the forward
        input_grads = node.backward(tuple(outs) if node.multi_output else outs[0]) if ran else None
        if ran and is_anomaly_enabled():
            _check_finite(node, input_grads)
        if not retain_graph:
            node.release_saved()
        for i, edge in enumerate(node.next_functions):
            if edge is not None and edge[0] in deps:
                if input_grads is not None and input_grads[i] is not None:
                    _add(pending, edge[0], edge[1], input_grads[i])
                deps[edge[0]] -= 1
                if deps[edge[0]] == 0:
                    ready.append(edge[0])
    return captured if capture is not None else None


def _count_edges(roots):
    """How many edges lead into every node reachable from ``roots`` (iterative DFS: no recursion limit)."""
    deps = {node: 0 for node, _ in roots}
    stack = list(deps)
    while stack:
        for edge in stack.pop().next_functions:
            if edge is not None:
                if edge[0] not in deps:
                    deps[edge[0]] = 0
                    stack.append(edge[0])
                deps[edge[0]] += 1
    return deps


def _prune(roots, deps, capture):
    """Keep the nodes on a path to a captured edge: their counts, the ones that run, {node: {nr: [k]}}."""
    wanted = {}
    for k, (node, nr) in enumerate(capture):
        wanted.setdefault(node, {}).setdefault(nr, []).append(k)
    left, order = dict(deps), []
    ready = [node for node in dict.fromkeys(node for node, _ in roots) if left[node] == 0]
    while ready:  # consumers before producers
        order.append(ready.pop())
        for edge in order[-1].next_functions:
            if edge is not None:
                left[edge[0]] -= 1
                if left[edge[0]] == 0:
                    ready.append(edge[0])
    kept, runs = set(), set()
    for node in reversed(order):  # producers first: a node runs if one of its inputs is kept
        if any(edge is not None and edge[0] in kept for edge in node.next_functions):
            runs.add(node)
        if node in runs or node in wanted:
            kept.add(node)
    counts = dict.fromkeys(kept, 0)
    for edge in (e for node in runs for e in node.next_functions if e is not None and e[0] in kept):
        counts[edge[0]] += 1
    return counts, runs, wanted


def _add(pending, node, nr, g):
    """Add ``g`` to the gradient of ``node``'s output ``nr``, checking its shape and casting its dtype."""
    g = g.materialize() if isinstance(g, LazyGrad) else np.asarray(g)
    shape, dtype = (node.shape[nr], node.dtype[nr]) if node.multi_output else (node.shape, node.dtype)
    if g.shape != shape:
        raise RuntimeError("%s: gradient of shape %s does not match the output's shape %s"
                           % (node.name(), g.shape, shape))
    g = g.astype(dtype, copy=False)
    old = pending.get((node, nr))
    # a new array for the sum: the ones handed over may be saved arrays or other gradients
    pending[(node, nr)] = g if old is None else np.asarray(old + g)


def _finish_output(node, nr, g):
    """The total gradient of one output: its tensor's hooks may replace it; retain_grad() keeps a copy."""
    g = _run_hooks([(key, fn) for out_nr, key, fn in node.pre_hooks if out_nr == nr], g)
    t = node.retained(nr)
    if t is not None:
        t.grad = Tensor._from_array(np.array(g, copy=True) if t.grad is None else t.grad.data + g)
    return g


def _capture(node, outs, where, captured, runs):
    """Store captured gradients where torch takes them: before a running node's tensor hooks, after those of
    a node wanted only for its gradient (and after a leaf's own hooks: they would run before accumulation)."""
    for nr, g in enumerate(outs):
        if g is not None and not runs:
            g = _finish_output(node, nr, g)
            leaf = node.variable if type(node) is AccumulateGrad else None
            g = _run_hooks(leaf._hooks, g) if leaf is not None and leaf._hooks else g
        for k in where.get(nr, ()):
            captured[k] = g


def _run_hooks(hooks, g):
    for _, fn in hooks:
        result = fn(Tensor._from_array(g))
        if result is not None:
            new = np.asarray(result.data if isinstance(result, Tensor) else result)
            if new.shape != g.shape or new.dtype != g.dtype:
                raise RuntimeError("hook %r has changed the size or type of value (was %s %s got %s %s)"
                                   % (fn, g.dtype, g.shape, new.dtype, new.shape))
            g = new
    return g


def _check_finite(node, grads):
    """Anomaly mode: refuse nan and inf in what a backward returns."""
    for i, g in enumerate(grads or ()):
        g = g.materialize() if isinstance(g, LazyGrad) else g
        if g is not None and not np.isfinite(g).all():
            bad = " and ".join(k for k, f in (("nan", np.isnan), ("inf", np.isinf)) if f(g).any())
            raise FloatingPointError("Function '%s' returned %s values in its %dth output"
                                     % (node.name(), bad, i))
