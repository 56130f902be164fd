"""Reverse-mode autodiff: the engine (``engine.pyx``), grad-mode switches and gradient checking."""
from minigrad.autograd.engine import AccumulateGrad, Node, RemovableHandle, live_nodes  # noqa: F401
from minigrad.autograd.grad_mode import (detect_anomaly, enable_grad, is_anomaly_enabled, is_grad_enabled,  # noqa: F401
                                         no_grad, set_grad_enabled)
from minigrad.autograd.gradcheck import GradcheckError, gradcheck  # noqa: F401


def backward(tensors, grad_tensors=None, retain_graph=None):
    """Accumulate the gradients of ``tensors`` (weighted by ``grad_tensors``) into the leaves' ``.grad``."""
    from minigrad.tensor import backward as run  # the tensor module imports this package while loading
    run(tensors, grad_tensors, retain_graph)
