"""Feed-forward layers: Linear, Embedding, Dropout (torch's names, shapes and initialisation)."""
from __future__ import annotations

import math
from typing import Any

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor, check_float_dtype


def _uniform_parameter(shape: tuple, bound: float, dtype: Any) -> Parameter:
    """A new Parameter of ``shape`` drawn from U(-bound, bound) with minigrad's default generator."""
    p = Parameter(mg.empty(*shape, dtype=dtype))
    with mg.no_grad():
        p.uniform_(-bound, bound)
    return p


def _resolve_dtype(dtype: Any) -> Any:
    """A layer's parameter dtype: float32 or float64 (parameters need gradients)."""
    return mg.get_default_dtype() if dtype is None else check_float_dtype(dtype)


def _check_size(value: Any, name: str, allow_zero: bool = False) -> None:
    """An int size; zero only where torch builds the layer with it (Linear, Embedding, RNNCell, not RNN)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if allow_zero and value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    if not allow_zero and value <= 0:
        raise ValueError(f"{name} must be greater than zero")


def _init_bound(fan: int) -> float:
    """torch's 1/sqrt(fan) for uniform initialisation, 0 for a zero-size fan (no division by zero)."""
    return 1.0 / math.sqrt(fan) if fan > 0 else 0.0


class Linear(Module):
    """Affine map ``y = x W^T + b``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        dtype: parameter dtype (default: ``minigrad.get_default_dtype()``).

    Inputs: ``x`` of shape (*, in_features).
    Outputs: shape (*, out_features).

    Parameters: ``weight`` (out_features, in_features) and ``bias`` (out_features,), both initialised from
    U(-1/sqrt(in_features), 1/sqrt(in_features)) as in torch (the bias is zero when in_features is 0).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        _check_size(in_features, "in_features", allow_zero=True)
        _check_size(out_features, "out_features", allow_zero=True)
        self.in_features = in_features
        self.out_features = out_features
        dtype = _resolve_dtype(dtype)
        bound = _init_bound(in_features)
        self.weight = _uniform_parameter((out_features, in_features), bound, dtype)
        self.register_parameter("bias", _uniform_parameter((out_features,), bound, dtype) if bias else None)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Linear: input must be a minigrad Tensor, got {type(x).__name__}")
        if x.shape[-1:] != (self.in_features,):
            raise RuntimeError(f"Linear: expected input with last dimension {self.in_features}, got shape "
                               f"{tuple(x.shape)}")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table of learnable vectors, one row per token id.

    Args:
        num_embeddings: number of rows (vocabulary size).
        embedding_dim: size of each vector.
        padding_idx: optional id whose row receives no gradient (initialised to zeros, as in torch).
        dtype: parameter dtype (default: ``minigrad.get_default_dtype()``).

    Inputs: integer ids (an int64/int32 tensor, a numpy int array, a list or an int) of any shape (*).
    Outputs: shape (*, embedding_dim).

    Parameters: ``weight`` (num_embeddings, embedding_dim) initialised from N(0, 1).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        _check_size(num_embeddings, "num_embeddings", allow_zero=True)
        _check_size(embedding_dim, "embedding_dim", allow_zero=True)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(mg.empty(num_embeddings, embedding_dim, dtype=_resolve_dtype(dtype)))
        with mg.no_grad():
            self.weight.normal_(0.0, 1.0)
            if padding_idx is not None:
                self.weight.data[padding_idx] = 0

    def forward(self, ids: Any) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"


class Dropout(Module):
    """Inverted dropout: in training mode zero each element with probability ``p`` and scale the rest by
    1/(1-p); the identity in eval mode.

    Inputs: a tensor of any shape.  Outputs: the same shape.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        F._check_probability(p, "dropout probability")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
