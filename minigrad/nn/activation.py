"""Activation and reshaping modules: ``Tanh ReLU Sigmoid Softmax LogSoftmax Identity Flatten`` (torch's names,
arguments and reprs), each a thin wrapper over ``minigrad.nn.functional`` or a tensor method."""
from __future__ import annotations

from typing import Any

from minigrad.nn import functional as F
from minigrad.nn.module import Module
from minigrad.tensor import Tensor


class Tanh(Module):
    """Elementwise ``tanh``; any shape in, the same shape out."""

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Sigmoid(Module):
    """Elementwise logistic sigmoid ``1 / (1 + exp(-x))``; any shape in, the same shape out."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class ReLU(Module):
    """Elementwise ``max(x, 0)``; any shape in, the same shape out.  ``inplace=True`` overwrites the input."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Softmax(Module):
    """``exp(x) / sum(exp(x))`` along ``dim`` (stable for large logits).  ``dim=None`` picks torch's legacy
    implicit dimension (0 for 0-, 1- and 3-D input, else 1) with a warning."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        input = F._tensor_input(input, "Softmax")
        # stacklevel 4: the warning names the caller of the module, past forward and __call__
        return input.softmax(F._softmax_dim("softmax", input.ndim, 4) if self.dim is None else self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``x - logsumexp(x)`` along ``dim`` (stable for large logits); ``dim=None`` as in ``Softmax``."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        input = F._tensor_input(input, "LogSoftmax")
        return input.log_softmax(F._softmax_dim("log_softmax", input.ndim, 4) if self.dim is None else self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Identity(Module):
    """Returns its input unchanged; accepts (and ignores) any constructor arguments, as torch's does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Flatten(Module):
    """Flattens dims ``start_dim`` to ``end_dim`` into one: (N, C, H) -> (N, C*H) by default (the batch
    dimension is kept)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return F._tensor_input(input, "Flatten").flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
