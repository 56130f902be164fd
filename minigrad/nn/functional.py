"""Stateless forms of the layers and losses (``import minigrad.nn.functional as F``), following torch's names.

Everything here is built from the core's differentiable tensor ops, so autograd needs nothing extra.
Class-index targets and embedding indices are integer numpy arrays, lists or ints, never Tensors.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import minigrad as mg
from minigrad.autograd.function import Function
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


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """Elementwise ``max(x, 0)`` (gradient 0 at 0, as torch).  ``inplace=True`` overwrites ``input``."""
    input = _tensor_input(input, "relu")
    if not inplace:
        return input.relu()
    # x * (x > 0) has relu's value and gradient; + 0.0 turns the -0.0 of negative x into relu's +0.0
    return input.mul_((input.data > 0).astype(input.dtype)).add_(0.0)


def tanh(input: Tensor) -> Tensor:
    """Elementwise hyperbolic tangent."""
    return _tensor_input(input, "tanh").tanh()


def sigmoid(input: Tensor) -> Tensor:
    """Elementwise logistic sigmoid ``1 / (1 + exp(-x))``."""
    return _tensor_input(input, "sigmoid").sigmoid()


def softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed stably for large logits (``dim=None``: see
    ``_softmax_dim``)."""
    input = _tensor_input(input, "softmax")
    return input.softmax(_softmax_dim("softmax", input.ndim, 3) if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None) -> Tensor:
    """x - logsumexp(x) along ``dim``, computed stably for large logits."""
    input = _tensor_input(input, "log_softmax")
    return input.log_softmax(_softmax_dim("log_softmax", input.ndim, 3) if dim is None else dim)


def _softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    """torch's deprecated implicit dimension: 0 for 0-, 1- and 3-D input, else 1, with its warning."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include "
                  "dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


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


def binary_cross_entropy(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities: ``-w * (y * log(x) + (1 - y) * log(1 - x))``.

    As torch: each log is clamped at -100 (a probability of exactly 0 or 1 gives a finite loss), input and
    target must lie in [0, 1] and have the same shape, ``weight`` (not differentiated) broadcasts to the
    input's shape, and the gradient is ``w * (x - y) / max(x * (1 - x), 1e-12)``.  The target is a Tensor of
    the input's dtype (it may require grad) or array-like.  Prefer ``binary_cross_entropy_with_logits``:
    it is stable where the sigmoid saturates.
    """
    _check_reduction(reduction)
    input = _tensor_input(input, "binary_cross_entropy")
    target = _bce_target(input, target, "binary_cross_entropy")
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size "
                         f"({input.shape}) is deprecated. Please ensure they have the same size.")
    if target.dtype != input.dtype:
        raise RuntimeError(f"Found dtype {_TORCH_NAMES[target.dtype]} but expected "
                           f"{_TORCH_NAMES[input.dtype]}")
    w = _bce_weight(weight, input, input.dtype, "binary_cross_entropy", "weight")
    if not ((input.data >= 0) & (input.data <= 1)).all():
        raise RuntimeError("all elements of input should be between 0 and 1")
    if not ((target.data >= 0) & (target.data <= 1)).all():
        raise RuntimeError("all elements of target should be between 0 and 1")
    return BinaryCrossEntropy.apply(input, target, w, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Tensor:
    """Binary cross-entropy of raw logits: ``-w * (p * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x)))``.

    Computed as torch does, ``(1 - y) * x - (1 + (p - 1) * y) * log_sigmoid(x)`` with the stable
    ``log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|))``: no overflow for any logit (|x| = 1e4 gives the exact
    loss |x| or 0).  ``pos_weight`` p (per class, broadcast to the input's shape) weights the positive
    term; ``weight`` w multiplies the loss; both broadcast to the input's shape (never enlarging it, as in
    torch) and neither is differentiated.  Input and target must have the same shape; mixed float32/float64 operands promote.
    """
    _check_reduction(reduction)
    input = _tensor_input(input, "binary_cross_entropy_with_logits")
    target = _bce_target(input, target, "binary_cross_entropy_with_logits")
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    dtype = np.result_type(input.dtype, target.dtype)
    w = _bce_weight(weight, input, dtype, "binary_cross_entropy_with_logits", "weight")
    pw = _bce_weight(pos_weight, input, dtype, "binary_cross_entropy_with_logits", "pos_weight")
    return BinaryCrossEntropyWithLogits.apply(input, target, w, pw, reduction)


# One graph node each, with torch's backward formulas.  Composed from elementwise ops instead, the logits
# form is 7 nodes, slightly slower (167 vs 137 us forward + backward on 1000x10) and without log1p's
# accuracy for large |x|; the probability form's clamped log would send a NaN gradient (0 * inf) at 0 and
# 1, where torch's formula gives its finite, 1e12-bounded value.
class BinaryCrossEntropy(Function):
    @staticmethod
    def forward(ctx, input, target, weight, reduction):
        x, y = input.data, target.data
        with np.errstate(divide="ignore"):
            loss = -(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log1p(-x), -100))
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(input, target)
        ctx.weight, ctx.reduction = weight, reduction
        return mg.tensor(_reduce_array(loss, reduction), dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        input, target = ctx.saved_tensors
        x, y = input.data, target.data
        g = _bce_grad_scale(grad.data, ctx.weight, ctx.reduction, x.size)
        gx = gy = None
        if ctx.needs_input_grad[0]:
            # torch's EPSILON is the float32 1e-12, in float64 too
            gx = g * (x - y) / np.maximum(x * (1 - x), x.dtype.type(np.float32(1e-12)))
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore"):
                gy = g * (np.log1p(-x) - np.log(x))  # -logit(x), unclamped as torch: +-inf at 0 and 1
        return gx, gy, None, None


class BinaryCrossEntropyWithLogits(Function):
    @staticmethod
    def forward(ctx, input, target, weight, pos_weight, reduction):
        x, y = _promoted(input.data, target.data)
        log_sig = _log_sigmoid(x)
        if pos_weight is None:
            loss = (1 - y) * x - log_sig
        else:
            loss = (1 - y) * x - (1 + (pos_weight - 1) * y) * log_sig
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(input, target)
        ctx.weight, ctx.pos_weight, ctx.reduction = weight, pos_weight, reduction
        return mg.tensor(_reduce_array(loss, reduction), dtype=loss.dtype)

    @staticmethod
    def backward(ctx, grad):
        input, target = ctx.saved_tensors
        (x, y), pw = _promoted(input.data, target.data), ctx.pos_weight
        g = _bce_grad_scale(grad.data, ctx.weight, ctx.reduction, x.size)
        log_sig = _log_sigmoid(x)
        gx = gy = None
        if ctx.needs_input_grad[0]:
            sig = np.exp(log_sig)
            gx = g * (sig - y if pw is None else (pw * y + 1 - y) * sig - pw * y)
        if ctx.needs_input_grad[1]:
            gy = g * (-x if pw is None else -x - (pw - 1) * log_sig)
        return gx, gy, None, None, None


_TORCH_NAMES = {np.dtype(np.float32): "Float", np.dtype(np.float64): "Double"}


def _promoted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays in their common dtype, so that a float64 operand makes every step float64."""
    dtype = np.result_type(x, y)
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)) without overflow: min(x, 0) - log1p(exp(-|x|))."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _reduce_array(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore"):  # the mean of no elements is nan, as in torch
        return total / loss.dtype.type(loss.size)


def _bce_grad_scale(grad: np.ndarray, weight: np.ndarray | None, reduction: str, size: int) -> np.ndarray:
    """The incoming gradient per element: times the weight, divided by the element count for 'mean'."""
    g = grad if weight is None else grad * weight
    return g / g.dtype.type(size) if reduction == "mean" else g


def _bce_target(input: Tensor, target: Any, what: str) -> Tensor:
    if isinstance(target, Tensor):
        return target
    arr = np.asarray(target)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{what}: target must be a Tensor or a real array-like, got dtype {arr.dtype}")
    return mg.tensor(arr, dtype=input.dtype)


def _bce_weight(weight: Any, input: Tensor, dtype: np.dtype, what: str, name: str) -> np.ndarray | None:
    """``weight`` as a constant array of ``dtype``, checked to broadcast to the input's shape."""
    if weight is None:
        return None
    if isinstance(weight, Tensor):
        if weight.requires_grad and mg.is_grad_enabled():
            raise RuntimeError(f"The function '{what}' is not differentiable with respect to argument "
                               f"'{name}'. This input cannot have requires_grad True.")
        weight = weight.data
    w = np.asarray(weight)
    if w.dtype.kind not in "fiub":
        raise TypeError(f"{what}: {name} must be real numbers, got dtype {w.dtype}")
    try:
        shape = np.broadcast_shapes(w.shape, input.shape)
    except ValueError:
        shape = None
    if shape != input.shape:
        raise RuntimeError(f"{what}: {name} of shape {w.shape} cannot be broadcast to the input's shape "
                           f"{input.shape}")
    return w.astype(dtype, copy=False)


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
