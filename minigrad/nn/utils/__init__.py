"""Gradient clipping, as in ``torch.nn.utils``: rescale or clamp ``p.grad`` in place before an optimiser step.

Exploding gradients are the classic failure of BPTT through long sequences; clipping the total norm keeps the
direction of the update and bounds its size.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Union

import numpy as np

import minigrad as mg
from minigrad.tensor import Tensor

Params = Union[Tensor, Iterable[Tensor]]


def _grads(parameters: Params) -> list[np.ndarray]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"expected minigrad Tensors (parameters), got {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad.data)
    return grads


def zero_grad_(parameters: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Reset each parameter's gradient: to None (default), or to zeros in place.  ``Module.zero_grad`` and
    ``Optimizer.zero_grad`` are this over their parameters."""
    for p in parameters:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.data[...] = 0


def clip_grad_norm_(parameters: Params, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their total ``norm_type``-norm is at most ``max_norm``.

    The total norm is the p-norm of the per-parameter p-norms (``norm_type`` may be any p, ``inf`` or
    ``-inf``), i.e. the norm of all gradients concatenated.  Every gradient is multiplied in place by
    ``min(1, max_norm / (total + 1e-6))``; parameters without a gradient are skipped.

    Returns:
        the total norm *before* clipping, as a 0-d tensor in the gradients' dtype.

    Raises:
        RuntimeError: if ``error_if_nonfinite`` and the total norm is nan or inf.
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return mg.tensor(0.0)
    dtype = np.result_type(*grads)
    with np.errstate(all="ignore"):  # a norm too large for the dtype is inf, as in torch: no warning
        norms = np.array([np.linalg.norm(g.reshape(-1), ord=norm_type) for g in grads], dtype=dtype)
        total = np.linalg.norm(norms, ord=norm_type).astype(dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                           "non-finite, so it cannot be clipped. To disable this error and scale the "
                           "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    with np.errstate(all="ignore"):  # an infinite norm gives nan gradients, as in torch
        coef = min(dtype.type(max_norm) / (total + dtype.type(1e-6)), dtype.type(1.0))
        for g in grads:
            g *= coef
    return mg.tensor(np.asarray(total))


def clip_grad_value_(parameters: Params, clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)
