"""Stateless forms of the layers and losses (``import minigrad.nn.functional as F``), following torch's names.

Everything here is built from the core's differentiable tensor ops, so autograd needs nothing extra.
Class-index targets and embedding indices are integer numpy arrays, lists or ints, never Tensors.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import minigrad as mg
from minigrad.ops import loss as _loss
from minigrad.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _tensor_input(input: Any, what: str) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{what}: input must be a minigrad Tensor, got {type(input).__name__}")
    return input


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``; input (*, in), weight (out, in), bias (out,) -> (*, out)."""
    input = _tensor_input(input, "linear")
    if (bias is not None and isinstance(weight, Tensor) and isinstance(bias, Tensor) and input.ndim >= 2
            and weight.ndim == 2 and bias.ndim <= 1 and input.dtype == weight.dtype == bias.dtype
            and input.shape[-1] == weight.shape[1]):
        # one addmm node: the kernel adds the bias as it writes the product (no second pass over the output)
        if input.ndim == 2:
            return mg.addmm(bias, input, weight.T)
        lead = input.shape[:-1]
        out = mg.addmm(bias, input.reshape(int(np.prod(lead)), input.shape[-1]), weight.T)
        return out.reshape(*lead, out.shape[-1])
    out = input @ weight.T
    return out if bias is None else out + bias


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``input`` of any shape.

    Returns shape ``input.shape + (dim,)``.

    Entries equal to ``padding_idx`` (negative counts from the end) give their row's values but send no
    gradient to it.
    """
    idx = _integer_array(input, "embedding indices")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise IndexError("index out of range in self")
    out = weight[idx]
    if padding_idx is not None:
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= weight.shape[0]
        pad = (idx == padding_idx)[..., None]
        if pad.any():
            out = mg.where(pad, out.detach(), out)
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """(*, num_classes) int64 tensor with a 1 at each entry's class index of the int64 ``tensor`` (*);
    ``num_classes=-1`` takes one more than the largest index, as in torch."""
    if not isinstance(tensor, Tensor) or tensor.dtype != mg.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"one_hot(): argument 'num_classes' must be int, not {type(num_classes).__name__}")
    idx = tensor.data
    if num_classes == -1:
        if idx.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(idx.max()) + 1
    if idx.size and idx.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if idx.size and idx.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    if num_classes < 0:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return Tensor._from_array((idx[..., None] == np.arange(num_classes)).astype(np.int64))


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by 1/(1-p).

    Identity when ``training`` is False.  The mask comes from minigrad's default generator
    (``minigrad.manual_seed``), a fresh draw per call.
    """
    _tensor_input(input, "dropout")
    _check_probability(p, "dropout probability")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    keep = mg.rand(*input.shape, dtype=input.dtype).data >= p
    return input * mg.tensor(keep.astype(input.dtype) / (1 - p))


def softmax(input: Tensor, dim: int) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed stably for large logits."""
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    """x - logsumexp(x) along ``dim``, computed stably for large logits."""
    return input.log_softmax(dim)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target)**2`` reduced by ``'mean'`` (default), ``'sum'`` or ``'none'``.

    ``target`` is a Tensor or array-like (it receives gradient only if it is a Tensor that requires it).
    """
    _check_reduction(reduction)
    input = _tensor_input(input, "mse_loss")
    if not isinstance(target, Tensor):
        target = mg.tensor(np.asarray(target), dtype=input.dtype)
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=2)
    if target.shape != input.shape or target.dtype != input.dtype:
        # broadcasting or mixed dtypes: composed from elementwise ops, which unbroadcast and promote
        diff = input - target
        return _reduce(diff * diff, reduction)
    return _loss.mse_loss(input, target, reduction)


def nll_loss(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class-index targets given log-probabilities.

    Args:
        input: log-probabilities (N, C), (C,) or (N, C, d1, ...).
        target: class indices (int64/int32 tensor, integer array or list) (N,), () or (N, d1, ...);
            entries equal to ``ignore_index`` are skipped.
        weight: optional per-class weights (C,) (array-like; not differentiated).
        reduction: ``'mean'`` divides the weighted sum by the total weight of the counted targets (torch's
            rule), ``'sum'`` sums, ``'none'`` returns the per-target losses in the target's shape.
    """
    _check_reduction(reduction)
    t = _integer_array(target, "nll_loss/cross_entropy targets")
    logp, flat = _flatten_classes(input, t)
    n_classes = logp.shape[1]
    counted = flat != ignore_index
    bad = counted & ((flat < 0) | (flat >= n_classes))
    if bad.any():
        raise IndexError(f"Target {flat[bad][0]} is out of bounds.")
    rows = np.flatnonzero(counted)
    cols = flat[rows]
    w = None
    if weight is not None:
        class_w = np.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=input.dtype)
        if class_w.shape != (n_classes,):
            raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes or no "
                               f"classes but got weight tensor of shape: {list(class_w.shape)}")
        w = class_w[cols]
    losses = _loss.nll_loss(logp, rows, cols, w, reduction)
    return losses.reshape(*t.shape) if reduction == "none" else losses


def cross_entropy(input: Tensor, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of raw logits against class indices: ``nll_loss(log_softmax(input, 1), target)``.

    Shapes as in ``nll_loss``: logits (N, C), (C,) or (N, C, d1, ...); classes along dim 1 (dim 0 if 1-D).
    """
    if _tensor_input(input, "cross_entropy").ndim == 0:
        raise ValueError("cross_entropy: input must have at least 1 dimension (classes), got a 0-d tensor")
    return nll_loss(input.log_softmax(0 if input.ndim == 1 else 1), target, weight, ignore_index, reduction)


# ---- helpers ---------------------------------------------------------------------------------------------
def _flatten_classes(input: Tensor, t: np.ndarray):
    """(log-probs as (M, C), targets as (M,)) after checking that the target shape fits the input."""
    if input.ndim == 1:
        if t.ndim != 0:
            raise RuntimeError("for 1-D input (C,) the target must be a single class index, got shape "
                               f"{t.shape}")
        return input.unsqueeze(0), t.reshape(1)
    if input.ndim == 0:
        raise ValueError("Expected input with at least 1 dimension (C,) or (N, C), got a 0-d tensor")
    if t.ndim == 0 or input.shape[0] != t.shape[0]:
        target_batch = t.shape[0] if t.ndim else 0
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                         f"({target_batch}).")
    if input.ndim == 2:
        if t.ndim != 1:
            raise RuntimeError(f"for input (N, C) the target must be (N,), got shape {t.shape}")
        return input, t
    expected = input.shape[:1] + input.shape[2:]
    if t.shape != expected:
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(t.shape)}")
    # Classes to the last axis, then one row per target position.
    dims = (0,) + tuple(range(2, input.ndim)) + (1,)
    return input.permute(*dims).reshape(-1, input.shape[1]), t.reshape(-1)


def _integer_array(values: Any, what: str) -> np.ndarray:
    """int64 indices from an int64/int32 tensor, an integer numpy array, a list or an int."""
    arr = values.data if isinstance(values, Tensor) else np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _reduce(x: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_probability(p: float, what: str) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{what} has to be between 0 and 1, but got {p!r}")
