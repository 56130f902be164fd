"""Reverse-mode autodiff: the engine (``engine.pyx``; ``reference.py`` in plain Python), grad-mode switches,
custom differentiable functions (``Function``), ``backward``, ``grad`` and gradient checking."""
import numpy as np

from minigrad.autograd.engine import AccumulateGrad, Node, RemovableHandle, live_nodes  # noqa: F401
from minigrad.autograd.grad_mode import (detect_anomaly, enable_grad, is_anomaly_enabled,  # noqa: F401
                                         is_grad_enabled, no_grad, set_grad_enabled)
from minigrad.autograd.gradcheck import GradcheckError, gradcheck  # noqa: F401


def __getattr__(name):
    # function.py needs the Tensor class, and the tensor module imports this package while loading
    if name in ("Function", "FunctionCtx"):
        from minigrad.autograd import function
        return getattr(function, name)
    raise AttributeError("module 'minigrad.autograd' has no attribute %r" % name)


def engine_name():
    """Which engine runs backward passes: "compiled" (engine.pyx) or "reference" (reference.py), chosen by the
    environment variable MINIGRAD_ENGINE when minigrad is imported."""
    from minigrad.autograd import engine as compiled
    return compiled.ENGINE


def backward(tensors, grad_tensors=None, retain_graph=None):
    """Accumulate the gradients of ``tensors`` (weighted by ``grad_tensors``) into the leaves' ``.grad``."""
    from minigrad.tensor import backward as run  # the tensor module imports this package while loading
    run(tensors, grad_tensors, retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """The gradients of ``outputs`` (weighted by ``grad_outputs``) with respect to each of ``inputs``.

    Returns a tuple with one Tensor per input: the total gradient flowing into it (an input may be a
    non-leaf tensor).  No tensor's ``.grad`` changes; only the part of the graph between the outputs and the
    inputs runs, and its saved arrays are freed unless ``retain_graph``.  An input the outputs do not
    depend on is an error unless ``allow_unused``, which gives None for it.  ``create_graph=True``
    (higher-order gradients) is not supported: backward formulas work on numpy arrays, not on tensors.
    """
    from minigrad.autograd.engine import run_backward
    from minigrad.autograd.function import grad_edge
    from minigrad.tensor import Tensor, as_float_array
    if create_graph:
        raise ValueError("create_graph=True (higher-order gradients) is not supported by minigrad")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError("grad_outputs has %d entries but there are %d outputs"
                         % (len(grad_outputs), len(outputs)))
    roots, seeds = [], []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(out, Tensor):
            raise TypeError("grad: outputs must be Tensors, got %s" % type(out).__name__)
        edge = grad_edge(out)
        if edge is None:
            raise RuntimeError("element %d of tensors does not require grad and does not have a grad_fn" % i)
        if g is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = np.ones(out.shape, dtype=out.dtype)
        else:
            g = as_float_array(g, out.dtype)
            if g.shape != out.shape:
                raise RuntimeError("Mismatch in shape: grad_output[%d] has a shape of %s and output[%d] has "
                                   "a shape of %s." % (i, g.shape, i, out.shape))
        roots.append(edge)
        seeds.append(g)
    capture = []
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError("grad: inputs must be Tensors, got %s" % type(t).__name__)
        edge = grad_edge(t)
        if edge is None:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
        capture.append(edge)
    keep = create_graph if retain_graph is None else retain_graph
    grads = run_backward(roots, seeds, bool(keep), capture)
    result = []
    for i, (t, g) in enumerate(zip(inputs, grads)):
        if g is None and not allow_unused:
            raise RuntimeError("The differentiated Tensor at index %d appears to not have been used in the "
                               "graph. Set allow_unused=True if this is the desired behavior." % i)
        # a copy: the engine may hand the same array to several inputs, or one that a node still holds
        result.append(None if g is None else Tensor._from_array(np.array(g, dtype=t.dtype, order="C")))
    return tuple(result)

