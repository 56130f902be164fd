"""Truncated backpropagation through time (TBPTT) over a long series laid out as parallel streams.

Full BPTT needs nothing special: run the RNN over the whole sequence and call ``loss.backward()``; the engine
sums every step's contribution into the shared weights.  For a sequence too long for that, TBPTT cuts it:

1. ``batchify(data, B)`` lays the series out as B parallel streams, one per batch column: a series of length
   1000 with B = 2 becomes ``streams[:, 0] = data[0:500]`` and ``streams[:, 1] = data[500:1000]``, so each
   column reads on in time from one window to the next.
2. ``windows(streams, k)`` yields consecutive windows of k steps, each with its next-step targets.
3. Between windows the hidden state is carried over but detached (``h = h.detach()``; an LSTM's ``(h, c)``
   both, see ``detach_state``): the next window starts from its values, and no gradient flows back across the
   boundary, so memory stays O(window).

``run`` does all of this, plus the k1/k2 variant: update every k1 steps, backpropagating through the last
k2 >= k1 steps.  TBPTT(k, k) is the usual windowed training; TBPTT(T, T) over all T steps is full BPTT.
"""
from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np

import minigrad as mg
from minigrad.nn.utils import clip_grad_norm_
from minigrad.tensor import Tensor

Model = Callable[[Any, Any], tuple[Tensor, Any]]


def batchify(data: Any, batch_size: int) -> np.ndarray:
    """Lay ``data`` (length T, with any trailing feature dims) out as ``batch_size`` parallel streams.

    Returns a time-major array (T // batch_size, batch_size, *features) whose column b is
    ``data[b * L:(b + 1) * L]``; the last ``T % batch_size`` items are dropped.
    """
    arr = np.asarray(data)
    if arr.ndim == 0:
        raise ValueError("batchify: data must be a sequence, got a scalar")
    batch_size = _as_int(batch_size, "batchify: batch_size")
    if not 1 <= batch_size <= len(arr):
        raise ValueError(f"batchify: batch_size must be an int between 1 and len(data) = {len(arr)}, got "
                         f"{batch_size}")
    length = len(arr) // batch_size
    streams = arr[:length * batch_size].reshape((batch_size, length) + arr.shape[1:])
    return np.ascontiguousarray(streams.swapaxes(0, 1))


def windows(streams: Any, k: int) -> Iterator[tuple[Any, Any]]:
    """Consecutive windows ``(inputs, targets)`` of k steps (the last may be shorter) over time-major
    ``streams`` (L, B, ...): inputs are steps [i, i + k), targets the next steps [i + 1, i + k + 1).

    Float arrays come out as minigrad tensors, integer arrays (token ids, class targets) stay numpy arrays,
    and tensor streams are sliced as tensors.
    """
    k = _check_positive(k, "k")
    steps = len(streams) - 1
    for start in range(0, steps, k):
        stop = min(start + k, steps)
        yield _as_model_data(streams[start:stop]), _as_model_data(streams[start + 1:stop + 1])


def detach_state(h: Any) -> Any:
    """``h.detach()`` for a tensor, element by element for a tuple or list of them (e.g. an LSTM's (h, c)),
    nested or a namedtuple, which keep their type; None for None: the step that stops gradients at a window
    boundary."""
    if h is None:
        return None
    if isinstance(h, Tensor):
        return h.detach()
    if isinstance(h, (tuple, list)):
        items = [detach_state(x) for x in h]
        if isinstance(h, tuple) and hasattr(h, "_fields"):  # a namedtuple takes its fields as arguments
            return type(h)(*items)
        return type(h)(items)
    raise TypeError(f"detach_state expects a Tensor, None, or a tuple/list of them, got {type(h).__name__}")


def run(model: Model, loss_fn: Callable[[Tensor, Any], Tensor], streams: Any, k1: int, k2: int | None = None,
        *, optimizer: Any = None, h: Any = None, max_norm: float | None = None) -> tuple[list[float], Any]:
    """One pass of TBPTT(k1, k2) over ``streams``, predicting each step's successor.

    Every k1 new steps (the last update may have fewer) the window made of the new steps and the
    ``k2 - k1`` steps before them is run from the state saved at its start; the loss of the new steps'
    outputs is backpropagated through the whole window (k2 steps), and the optimiser takes a step.  The state
    where the next window starts is saved detached, so gradients never cross it.  With ``k2 == k1`` this is
    the usual windowed training (``windows`` plus ``h.detach()``); with ``k1 == k2 >= len(streams) - 1`` it
    is full BPTT.

    Args:
        model: ``model(inputs, h) -> (outputs, h_next)`` on time-major inputs (t, B, ...) with outputs
            (t, B, ...); ``h`` is None on the first call.  An ``nn.RNN`` or ``nn.GRU`` qualifies as is,
            and so does an ``nn.LSTM``, whose state ``(h, c)`` is carried and detached as a pair.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        streams: time-major (L, B, ...) array or tensor, e.g. from ``batchify``.
        k1: steps between updates.
        k2: steps backpropagated through at each update (default k1).
        optimizer: called as ``zero_grad()`` / ``step()`` around each update.  Without one, gradients of
            all updates accumulate in ``.grad`` (the truncated gradient of the whole pass).
        h: initial state (default: the model's own default, usually zeros).
        max_norm: clip the total gradient 2-norm to this before each step (``nn.utils.clip_grad_norm_``).

    Returns:
        (the loss of every update as floats, the final state detached) -- pass that state as ``h`` to
        continue with the next pass.
    """
    k1 = _check_positive(k1, "k1")
    k2 = k1 if k2 is None else _check_positive(k2, "k2")
    if k2 < k1:
        raise ValueError(f"run: k2 must be >= k1 (got k1={k1}, k2={k2})")
    if max_norm is not None and optimizer is None:
        raise ValueError("run: max_norm clips before an optimizer step; pass an optimizer too")
    steps = len(streams) - 1
    if steps < 1:
        raise ValueError("run: streams need at least 2 time steps to form next-step targets")
    losses = []
    start_state = detach_state(h)  # the state at the start of the current window
    history = k2 - k1  # steps before the new ones that each update also backpropagates through
    end = 0
    while end < steps:
        new = min(k1, steps - end)
        start = max(0, end - history)
        end += new
        next_start = max(0, end - history)
        # The window [start, end) runs as two calls so that the state at next_start can be saved.
        outputs, state = [], start_state
        if next_start > start:
            out, state = model(_as_model_data(streams[start:next_start]), state)
            outputs.append(out)
        saved = detach_state(state)
        if end > next_start:
            out, state = model(_as_model_data(streams[next_start:end]), state)
            outputs.append(out)
        output = outputs[0] if len(outputs) == 1 else mg.cat(outputs, dim=0)
        loss = loss_fn(output[end - new - start:], _as_model_data(streams[end - new + 1:end + 1]))
        if optimizer is not None:
            optimizer.zero_grad()
        loss.backward()
        if optimizer is not None:
            if max_norm is not None:
                clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_norm)
            optimizer.step()
        losses.append(loss.item())
        start_state = saved
    return losses, detach_state(state)


def _as_model_data(a: Any) -> Any:
    """Float numpy data becomes a tensor; integer data and tensors pass through."""
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return mg.tensor(a)
    return a


def _as_int(value: Any, name: str) -> int:
    """``value`` as an int: any integral type (numpy's too), but not a bool or a float."""
    if not isinstance(value, (bool, np.bool_)):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"{name} must be an int, got {value!r:.40} ({type(value).__name__})")


def _check_positive(k: Any, name: str) -> int:
    k = _as_int(k, name)
    if k < 1:
        raise ValueError(f"{name} must be a positive int, got {k}")
    return k
