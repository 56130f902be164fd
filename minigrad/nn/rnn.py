"""Elman recurrent networks built from ordinary tensor ops: ``RNNCell`` (one step) and ``RNN`` (whole
sequences, stacked, optionally bidirectional).

The forward pass unrolls the recurrence

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

into graph nodes per step (addmm's, then the activation's), so the graph the engine records *is* the unrolled
network; each step runs as one kernel call (``nn._recurrent``: the same values and graph as the plain ops).
The weights of a (layer, direction) are the same Parameter at every step, so the engine adds up their
gradient over all steps: backpropagation through time is simply ``loss.backward()``.  For truncated BPTT
see ``minigrad.tbptt``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

import minigrad as mg
from minigrad.nn import _recurrent
from minigrad.nn import functional as F
from minigrad.nn.layers import _check_size, _init_bound, _resolve_dtype, _uniform_parameter
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor
from minigrad.viz import mark_step

_ACTIVATIONS = {"tanh": Tensor.tanh, "relu": Tensor.relu}


def _activation(nonlinearity: str):
    if nonlinearity not in _ACTIVATIONS:
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return _ACTIVATIONS[nonlinearity]


class RNNCell(Module):
    """One step of an Elman RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` with act = tanh or relu.

    Looping a cell over time by hand gives the same numbers as ``RNN`` with the same weights; reusing one cell
    for several sequences accumulates all their gradients into its parameters.

    Args:
        input_size: features of ``x``.
        hidden_size: features of ``h``.
        bias: use ``bias_ih`` and ``bias_hh`` (default True).
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.
        dtype: parameter dtype (default: ``minigrad.get_default_dtype()``).

    Inputs: ``input, hx``
        - input: (N, input_size) or unbatched (input_size,).
        - hx: (N, hidden_size) or unbatched (hidden_size,); zeros when omitted.

    Outputs: ``h'`` of shape (N, hidden_size) or unbatched (hidden_size,).

    Parameters (all initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as in torch):
        weight_ih (hidden_size, input_size), weight_hh (hidden_size, hidden_size),
        bias_ih (hidden_size,), bias_hh (hidden_size,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: Any = None) -> None:
        super().__init__()
        # torch builds a cell with zero-size input or hidden state (RNN refuses them)
        _check_size(input_size, "input_size", allow_zero=True)
        _check_size(hidden_size, "hidden_size", allow_zero=True)
        self._act = _activation(nonlinearity)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.nonlinearity = nonlinearity
        dtype = _resolve_dtype(dtype)
        k = _init_bound(hidden_size)
        self.weight_ih = _uniform_parameter((hidden_size, input_size), k, dtype)
        self.weight_hh = _uniform_parameter((hidden_size, hidden_size), k, dtype)
        self.register_parameter("bias_ih", _uniform_parameter((hidden_size,), k, dtype) if bias else None)
        self.register_parameter("bias_hh", _uniform_parameter((hidden_size,), k, dtype) if bias else None)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        if input.ndim not in (1, 2):
            raise ValueError(f"RNNCell: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            h = mg.zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        else:
            if hx.ndim != input.ndim:
                raise RuntimeError(f"RNNCell: Expected hidden to be {input.ndim}D for {input.ndim}D input, "
                                   f"got {hx.ndim}D instead")
            h = hx if batched else hx.unsqueeze(0)
            if h.shape[0] != x.shape[0]:
                raise RuntimeError(f"Input batch size {x.shape[0]} doesn't match hidden0 batch size "
                                   f"{h.shape[0]}")
            if h.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden0 has inconsistent hidden_size: got {h.shape[1]}, expected "
                                   f"{self.hidden_size}")
        pre = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        h_new = self._act(pre)
        return h_new if batched else h_new.squeeze(0)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity='{self.nonlinearity}'"
        return s


class RNN(Module):
    """A multi-layer Elman RNN, optionally bidirectional, applied to whole sequences.

    For each layer and direction, over time steps t:
    ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.  Layer k > 0 reads layer k-1's output (both
    directions concatenated, after dropout in training mode).  The reverse direction reads its input from the
    last step to the first; its outputs are put back in time order, so
    ``output[t] = cat(forward_h_t, reverse_h_t)``.

    Args:
        input_size: features of the input ``x_t``.
        hidden_size: features of the hidden state ``h_t``.
        num_layers: stacked layers (default 1).
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.
        bias: use ``b_ih`` and ``b_hh`` (default True).
        batch_first: input and output are (N, L, ·) instead of (L, N, ·); never applies to ``h0``/``h_n``.
        dropout: probability of dropout on the output of every layer but the last, in training mode only.
        bidirectional: add a reverse-direction RNN per layer (default False).
        dtype: parameter dtype (default: ``minigrad.get_default_dtype()``).

    Inputs: ``input, h0=None, lengths=None``
        - input: (L, N, input_size), or (N, L, input_size) with ``batch_first``, or unbatched
          (L, input_size).
        - h0: (D * num_layers, N, hidden_size), unbatched (D * num_layers, hidden_size); zeros when
          omitted.  D = 2 if bidirectional else 1.  Ordered ``[l0_fwd, l0_rev, l1_fwd, l1_rev, ...]``.
        - lengths: optional true length of each batch entry (N ints, 1 <= length <= L) for padded batches.
          Steps at or beyond an entry's length neither change its state nor receive gradient; their output is
          zero; its reverse direction starts at its own last step.  The results equal torch's
          ``pack_padded_sequence(input, lengths, enforce_sorted=False)`` (output padded back to length L).

    Outputs: ``output, h_n``
        - output: (L, N, D * hidden_size) (batch-first: (N, L, D * hidden_size); unbatched: (L, D *
          hidden_size)): the last layer's hidden state at every step.
        - h_n: (D * num_layers, N, hidden_size) (unbatched: (D * num_layers, hidden_size)): every layer's and
          direction's final state.  The reverse direction's final state is the one after step 0, so it equals
          ``output[0, :, hidden_size:]``, not ``output[-1]``.

    Parameters, registered layer by layer, forward before reverse (suffix ``_reverse``):
        ``weight_ih_l{k}`` (hidden_size, input_size for k = 0 else D * hidden_size),
        ``weight_hh_l{k}`` (hidden_size, hidden_size), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (hidden_size,).
        Every one is initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as in torch.  Weights are
        shared across the time steps of one (layer, direction), never across layers or directions.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: Any = None) -> None:
        super().__init__()
        _check_size(input_size, "input_size")
        _check_size(hidden_size, "hidden_size")
        _check_size(num_layers, "num_layers")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero "
                          f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=2)
        _activation(nonlinearity)  # an unknown name is refused here, as torch does
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        dtype = _resolve_dtype(dtype)
        num_directions = 2 if bidirectional else 1
        k = 1.0 / math.sqrt(hidden_size)
        self._weight_names: list[tuple[str, ...]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else num_directions * hidden_size
            for suffix in ("", "_reverse")[:num_directions]:
                kinds = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"][:4 if bias else 2]
                shapes = [(hidden_size, layer_input), (hidden_size, hidden_size), (hidden_size,),
                          (hidden_size,)]
                names = tuple(f"{kind}_l{layer}{suffix}" for kind in kinds)
                for name, shape in zip(names, shapes):
                    self.register_parameter(name, _uniform_parameter(shape, k, dtype))
                self._weight_names.append(names)

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """Per (layer, direction), in h_n order: ``[weight_ih, weight_hh, bias_ih, bias_hh]`` (no biases if
        ``bias=False``)."""
        return [[self._parameters[n] for n in names] for names in self._weight_names]

    def forward(self, input: Tensor, h0: Tensor | None = None,
                lengths: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        x, h0, batched = self._check_input(input, h0)
        seq_len, batch = x.shape[:2]
        valid = None
        if lengths is not None:
            valid = _valid_steps(lengths, seq_len, batch, batched)
            x = x.masked_fill(~valid, 0.0)  # padding never reaches a product, whatever its values
        if h0 is None:
            zeros = mg.zeros(batch, self.hidden_size, dtype=x.dtype)
            initial = [zeros] * len(self._weight_names)
        else:
            initial = h0.unbind(0)
        num_directions = 2 if self.bidirectional else 1
        weights = self.all_weights
        finals = []
        layer_input = x
        hidden = self.hidden_size
        for layer in range(self.num_layers):
            # Each step writes its state straight into its place in the layer's output, so joining the steps
            # (and the two directions) copies nothing; the graph is still that of stack (and cat).
            buf = np.empty((seq_len, batch, num_directions * hidden), dtype=x.dtype)
            first = layer * num_directions
            outputs, states = _run_layer(
                layer_input, initial[first:first + num_directions], weights[first:first + num_directions],
                self.nonlinearity, valid=valid, layer=layer,
                outs=[buf[:, :, d * hidden:(d + 1) * hidden] for d in range(num_directions)])
            finals.extend(states)
            layer_input = _recurrent.stack_cat(outputs, dim=2, out=buf) if num_directions == 2 else \
                _recurrent.stack_into(outputs[0], buf)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        output, h_n = layer_input, mg.stack(finals, dim=0)
        if not batched:
            return output.squeeze(1), h_n.squeeze(1)
        return (output.transpose(0, 1) if self.batch_first else output), h_n

    def _check_input(self, input: Tensor, h0: Tensor | None) -> tuple[Tensor, Tensor | None, bool]:
        """Validate the call; return (time-major 3-D input, 3-D h0 or None, whether the input was batched)."""
        if not isinstance(input, Tensor):
            raise TypeError(f"RNN: input must be a minigrad Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"RNN: Expected input to be 2D or 3D, got {input.ndim}D tensor instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                               f"{input.shape[-1]}")
        dtype = self.weight_ih_l0.dtype
        if input.dtype != dtype:
            raise ValueError(f"RNN input dtype ({input.dtype}) does not match weight dtype ({dtype}). "
                             f"Convert input: input.to(minigrad.{dtype}), or build the model with "
                             f"dtype=minigrad.{input.dtype}")
        batched = input.ndim == 3
        if not batched:
            x = input.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        if x.shape[0] == 0:
            raise ValueError("RNN: the input has no time steps")
        if h0 is None:
            return x, None, batched
        if not isinstance(h0, Tensor):
            raise TypeError(f"RNN: h0 must be a minigrad Tensor, got {type(h0).__name__}")
        if batched and h0.ndim != 3:
            raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {h0.ndim}-D tensor")
        if not batched:
            if h0.ndim != 2:
                raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {h0.ndim}-D "
                                   "tensor")
            h0 = h0.unsqueeze(1)
        expected = (len(self._weight_names), x.shape[1], self.hidden_size)
        if tuple(h0.shape) != expected:
            raise RuntimeError(f"Expected hidden size {expected}, got {list(h0.shape)}")
        if h0.dtype != dtype:
            raise RuntimeError(f"RNN: h0 dtype ({h0.dtype}) does not match weight dtype ({dtype})")
        return x, h0, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity='{self.nonlinearity}'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


def _run_layer(x: Tensor, hs: Sequence[Tensor], weights: Sequence[list[Parameter]], nonlinearity: str,
               valid: np.ndarray | None, layer: int = 0,
               outs: Sequence[np.ndarray] | None = None) -> tuple[list[list[Tensor]], list[Tensor]]:
    """Run one layer over ``x`` (L, N, F) in each of its directions (forward, then reverse if there are two
    states ``hs``, each (N, H), and two weight lists): per step and direction, as RNNCell,
    ``h = act(x_t W_ih^T + b_ih + b_hh + h W_hh^T)``.

    Returns (per direction, the L outputs (N, H) in time order; per direction, the final state (N, H)); the
    caller stacks the outputs.  With ``outs`` (per direction an (L, N, H) array, its part of the layer's
    output), each step's state is written straight into ``out[t]`` and is a view of it.  The steps of the
    two directions at one moment (forward step s, reverse step L-1-s) are independent and run as one kernel
    job (``_recurrent.steps``), each with its own nodes.
    ``valid`` (L, N, 1) marks the real steps of a padded batch; elsewhere the state is carried through
    unchanged and the output is zero.  Each step's ops are tagged (``viz.mark_step``) so that drawings of the
    graph cluster them by layer, direction, step.
    """
    seq_len, batch, features = x.shape
    x2 = x.reshape(seq_len * batch, features)
    xws, w_hh_ts = [], []
    for w in weights:
        # The input projection of every step is one matrix product; only h @ W_hh^T stays inside the loop.
        # With biases it is one addmm node: the kernel adds b_ih + b_hh as it writes the product.
        xw = F.linear(x2, w[0], w[2] + w[3]) if len(w) == 4 else x2 @ w[0].T
        xws.append(xw.reshape(seq_len, batch, w[0].shape[0]).unbind(0))
        # W_hh^T packed for the kernel once per call (and W_hh once for the backward), not at every step
        w_hh_ts.append(_recurrent.ReusedOperand(w[1].T))
    directions = range(len(weights))
    states = list(hs)
    outputs = [[None] * seq_len for _ in directions]
    if valid is not None:
        outs = None  # a padded batch's output is the state masked, not the state itself
    for s in range(seq_len):
        ts = (s, seq_len - 1 - s)  # the reverse direction runs backwards
        news = _recurrent.steps([xws[d][ts[d]] for d in directions], states, w_hh_ts, nonlinearity,
                                None if outs is None else [outs[d][ts[d]] for d in directions])
        for d in directions:
            t = ts[d]
            h_new = mark_step(news[d], t, layer, d)
            if valid is None:
                states[d] = outputs[d][t] = h_new
            else:
                states[d] = mark_step(mg.where(valid[t], h_new, states[d]), t, layer, d)
                outputs[d][t] = mark_step(h_new.masked_fill(~valid[t], 0.0), t, layer, d)
    return outputs, states


def _valid_steps(lengths: Sequence[int], seq_len: int, batch: int, batched: bool) -> np.ndarray:
    """(L, N, 1) bool mask, True where step t < lengths[n]."""
    if not batched:
        raise ValueError("RNN: lengths needs batched (3-D) input")
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu" or arr.shape != (batch,):
        raise ValueError(f"RNN: lengths must be {batch} integers (one per batch entry), got {lengths!r}")
    if arr.min() < 1 or arr.max() > seq_len:
        raise ValueError(f"RNN: lengths must be between 1 and the sequence length {seq_len}, got "
                         f"{arr.tolist()}")
    return (np.arange(seq_len)[:, None] < arr[None, :])[:, :, None]
