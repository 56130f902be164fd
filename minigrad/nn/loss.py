"""Loss modules: thin wrappers that keep a loss's options and call ``minigrad.nn.functional``."""
from __future__ import annotations

from typing import Any

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
