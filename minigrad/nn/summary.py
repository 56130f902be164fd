"""``minigrad.nn.summary``: a Keras/torchinfo-style table of a model's layers, output shapes and
parameter counts."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import minigrad as mg
from minigrad.nn.module import Module
from minigrad.tensor import Tensor


class ModelSummary(str):
    """The table as a string, with the counts as attributes: ``total_params``, ``trainable_params``,
    ``non_trainable_params`` and ``layers``, a list of ``(name, class name, output shape(s), params)``."""

    total_params: int
    trainable_params: int
    non_trainable_params: int
    layers: list


def summary(model: Module, input_size: Sequence[int] | Sequence[Sequence[int]], dtype: Any = None,
            batch_dim: int = 0, verbose: bool = True) -> ModelSummary:
    """Print and return a table of ``model``: every module (dotted path and class, the model first), its
    output shape with None for the batch dimension, its parameter count (with its submodules'); then the
    totals (total / trainable / non-trainable; buffers are not parameters and are not counted).

    The model runs forward on zeros of ``input_size`` (the full shape of one input including the batch
    dimension ``batch_dim``, or a list of shapes for several inputs) under ``no_grad``, twice, the second
    time with one more batch entry: the output dimensions that change are the batch dimensions.  Outputs are
    captured by forward hooks; a tuple output such as an RNN's ``(output, h_n)`` shows every shape (h_n
    keeps its batch at dimension 1).  ``dtype`` is the inputs' dtype (default: the model's first parameter's,
    else minigrad's default); an integer numpy dtype passes int arrays, for a model that starts with an
    ``Embedding``.  A module that never ran shows "--".  The default generator's state is restored
    afterwards (dropout draws from it), so a summary changes no later random number.

    Parameter counts are torch's (``sum(p.numel() for p in model.parameters())``).  They can differ from
    Keras's for the same layer: Keras's ``SimpleRNN(32)`` on 64 features has 64*32 + 32*32 + 32 = 3104
    parameters, while ``nn.RNN(64, 32)`` here and in torch has 3136, because it keeps two biases, b_ih and
    b_hh (their sum acts as Keras's one).
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a minigrad.nn.Module, got {type(model).__name__}")
    shapes = _input_shapes(input_size)
    if dtype is None:
        first = next(model.parameters(), None)
        dtype = mg.get_default_dtype() if first is None else first.dtype
    dtype = np.dtype(dtype)
    for shape in shapes:
        if not -len(shape) <= batch_dim < len(shape):
            raise ValueError(f"summary: batch_dim {batch_dim} is out of range for an input of shape {shape}")
    bigger = [s[:batch_dim % len(s)] + (s[batch_dim] + 1,) + s[batch_dim % len(s) + 1:] for s in shapes]
    modules = list(model.named_modules())
    first_run, second_run = _capture(model, modules, shapes, dtype), _capture(model, modules, bigger, dtype)
    layers = []
    for name, module in modules:
        out = first_run.get(id(module))
        shape = None if out is None else _batchless(out, second_run[id(module)])
        count = sum(p.numel() for p in module.parameters())
        layers.append((name, type(module).__name__, shape, count))
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    result = ModelSummary(_table(type(model).__name__, layers, total, trainable))
    result.total_params, result.trainable_params = total, trainable
    result.non_trainable_params, result.layers = total - trainable, layers
    if verbose:
        print(result)
    return result


def _input_shapes(input_size: Any) -> list[tuple[int, ...]]:
    if not isinstance(input_size, (list, tuple)) or not input_size:
        raise TypeError(f"summary: input_size must be a shape (a tuple of ints) or a list of shapes, got "
                        f"{input_size!r}")
    shapes = [input_size] if all(isinstance(n, int) for n in input_size) else list(input_size)
    for s in shapes:
        if (not isinstance(s, (list, tuple)) or not s
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in s)):
            raise TypeError(f"summary: each input shape must be a non-empty tuple of positive ints, got {s!r}")
    return [tuple(s) for s in shapes]


def _capture(model: Module, modules: list, shapes: list, dtype: np.dtype) -> dict[int, Any]:
    """Run ``model`` on zeros of ``shapes``; return each module's output shape(s) by ``id(module)``."""
    outputs = {}

    def hook(module, args, output):
        outputs.setdefault(id(module), _shapes(output))

    handles = [m.register_forward_hook(hook) for _, m in modules]
    inputs = [np.zeros(s, dtype=dtype) if dtype.kind in "iu" else mg.zeros(*s, dtype=dtype) for s in shapes]
    # dropout draws from the default generator: put its state back so a summary changes no later result
    rng = mg.random.default_generator().numpy_rng.bit_generator
    state = rng.state
    try:
        with mg.no_grad():
            model(*inputs)
    finally:
        rng.state = state
        for h in handles:
            h.remove()
    return outputs


def _shapes(output: Any) -> Any:
    if isinstance(output, Tensor):
        return tuple(output.shape)
    if isinstance(output, (list, tuple)):
        return [_shapes(o) for o in output]
    return None


def _batchless(first: Any, second: Any) -> Any:
    """``first`` with None where it differs from ``second`` (the run with the larger batch)."""
    if isinstance(first, tuple):
        return tuple(None if a != b else a for a, b in zip(first, second))
    if isinstance(first, list):
        return [_batchless(a, b) for a, b in zip(first, second)]
    return None


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "--"
    if isinstance(shape, list):
        return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _table(model_name: str, layers: list, total: int, trainable: int) -> str:
    rows = [(f"{name} ({cls})" if name else cls, _format_shape(shape), f"{count:,}")
            for name, cls, shape, count in layers]
    header = ("Layer (type)", "Output Shape", "Param #")
    w0 = max(len(r[0]) for r in [header, *rows]) + 2
    w1 = max(len(r[1]) for r in [header, *rows]) + 2
    width = w0 + w1 + max(len(r[2]) for r in [header, *rows])
    lines = [f'Model: "{model_name}"', "_" * width, f"{header[0]:<{w0}}{header[1]:<{w1}}{header[2]}",
             "=" * width]
    lines += [f"{a:<{w0}}{b:<{w1}}{c}" for a, b, c in rows]
    lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * width]
    return "\n".join(lines)
