"""Loss modules: thin wrappers that keep a loss's options and call ``minigrad.nn.functional``."""
from __future__ import annotations

from typing import Any

import numpy as np

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.nn.module import Module
from minigrad.tensor import Tensor


class MSELoss(Module):
    """Mean squared error. Inputs: ``input`` and ``target`` of the same shape. Output: a scalar (or the
    elementwise losses with ``reduction='none'``)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction(reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class NLLLoss(Module):
    """Negative log-likelihood of class indices given log-probabilities.

    Inputs: ``input`` (N, C), (C,) or (N, C, d1, ...) log-probabilities; ``target`` integer indices (N,), ()
    or (N, d1, ...).  Output: a scalar, or per-target losses with ``reduction='none'``.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction(reduction)
        self.weight = weight
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(NLLLoss):
    """Softmax cross-entropy of raw logits against class indices (``log_softmax`` + ``nll_loss``).

    Inputs: ``input`` (N, C), (C,) or (N, C, d1, ...) logits; ``target`` integer indices (N,), () or
    (N, d1, ...).  Output: a scalar, or per-target losses with ``reduction='none'``.
    """

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction)


def _weight_buffer(value: Any) -> Tensor | None:
    """A loss's weight as a Tensor buffer (integer arrays become the default float dtype)."""
    if value is None or isinstance(value, Tensor):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "iub":
        arr = arr.astype(mg.get_default_dtype())
    return mg.tensor(arr)


class BCELoss(Module):
    """Binary cross-entropy of probabilities in [0, 1] (see ``functional.binary_cross_entropy``).

    Inputs: ``input`` and ``target`` of the same shape.  Output: a scalar, or the elementwise losses with
    ``reduction='none'``.  ``weight`` (broadcast to the input's shape) is a buffer, as in torch.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction(reduction)
        self.register_buffer("weight", _weight_buffer(weight))
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy of raw logits, numerically stable (see
    ``functional.binary_cross_entropy_with_logits``).

    Inputs: ``input`` logits and ``target`` of the same shape.  Output: a scalar, or the elementwise losses
    with ``reduction='none'``.  ``weight`` and ``pos_weight`` (the positive examples' weight, per class
    along the last dimension) are buffers, as in torch.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__()
        F._check_reduction(reduction)
        self.register_buffer("weight", _weight_buffer(weight))
        self.register_buffer("pos_weight", _weight_buffer(pos_weight))
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                  pos_weight=self.pos_weight)
