"""Recurrent networks built from ordinary tensor ops: the Elman ``RNNCell``/``RNN``, ``LSTMCell``/``LSTM`` and
``GRUCell``/``GRU`` (one step, or whole sequences stacked and optionally bidirectional), as torch.nn has them.

The forward pass unrolls the recurrence, e.g. for the Elman RNN

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

into graph nodes per step (addmm's, then the activation's), so the graph the engine records *is* the unrolled
network; each Elman step runs as one kernel call (``nn._recurrent``: the same values and graph as the plain
ops).  A gated step is one product of the state with all its gates' weights (the same kernel call, without
the activation), then an elementwise epilogue (``_lstm_epilogue``, ``_gru_epilogue``: chunk, sigmoid, tanh,
products and sums, recorded as those ops but computed by one fused kernel call forward and one backward).
The weights of a (layer, direction) are the same Parameter at every step, so the engine
adds up their gradient over all steps: backpropagation through time is simply ``loss.backward()``.  For
truncated BPTT see ``minigrad.tbptt``.
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


def _cell_input(input: Tensor, input_size: int, name: str) -> tuple[Tensor, bool]:
    """A cell's input checked as torch checks it; returns (2-D input, whether it was batched)."""
    if input.ndim not in (1, 2):
        raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
    if input.shape[-1] != input_size:
        raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} expected {input_size}")
    batched = input.ndim == 2
    return (input if batched else input.unsqueeze(0)), batched


def _cell_state(hx: Tensor | None, x: Tensor, batched: bool, size: int, index: int, what: str) -> Tensor:
    """A cell's state ``hx`` (its part ``index`` of the state) as 2-D, zeros when None; torch's errors."""
    if hx is None:
        return mg.zeros(x.shape[0], size, dtype=x.dtype)
    if not isinstance(hx, Tensor):
        raise TypeError(f"expected a minigrad Tensor as the state, got {type(hx).__name__}")
    ndim = 2 if batched else 1
    if hx.ndim != ndim:
        raise RuntimeError(f"{what} to be {ndim}D for {ndim}D input, got {hx.ndim}D instead")
    h = hx if batched else hx.unsqueeze(0)
    if h.shape[0] != x.shape[0]:
        raise RuntimeError(f"Input batch size {x.shape[0]} doesn't match hidden{index} batch size "
                           f"{h.shape[0]}")
    if h.shape[1] != size:
        raise RuntimeError(f"hidden{index} has inconsistent hidden_size: got {h.shape[1]}, expected {size}")
    return h


def _state_pair(hx: Any, name: str) -> tuple[Any, Any]:
    """An LSTM's (h, c), refused with torch's TypeError when it is not a pair."""
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{name}: hx must be a tuple (h, c) of two Tensors, got {type(hx).__name__}")
    return hx[0], hx[1]


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
        x, batched = _cell_input(input, self.input_size, "RNNCell")
        h = _cell_state(hx, x, batched, self.hidden_size, 0, "RNNCell: Expected hidden")
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


class _GatedCell(Module):
    """The parameters and repr of LSTMCell and GRUCell: ``gates`` blocks of ``hidden_size`` rows each."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        _check_size(input_size, "input_size", allow_zero=True)
        _check_size(hidden_size, "hidden_size", allow_zero=True)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        dtype = _resolve_dtype(dtype)
        k = _init_bound(hidden_size)
        rows = self.gates * hidden_size
        self.weight_ih = _uniform_parameter((rows, input_size), k, dtype)
        self.weight_hh = _uniform_parameter((rows, hidden_size), k, dtype)
        self.register_parameter("bias_ih", _uniform_parameter((rows,), k, dtype) if bias else None)
        self.register_parameter("bias_hh", _uniform_parameter((rows,), k, dtype) if bias else None)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LSTMCell(_GatedCell):
    """One LSTM step: ``gates = x W_ih^T + b_ih + h W_hh^T + b_hh`` split in torch's order i, f, g, o;
    ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``, ``h' = sigmoid(o) * tanh(c')``.

    Args: ``input_size``, ``hidden_size``, ``bias=True``, ``dtype=None`` (as ``RNNCell``).

    Inputs: ``input, hx``
        - input: (N, input_size) or unbatched (input_size,).
        - hx: a tuple (h, c), each (N, hidden_size) or unbatched (hidden_size,); zeros when omitted.

    Outputs: ``(h', c')``, each (N, hidden_size) or unbatched (hidden_size,).

    Parameters (U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as in torch): weight_ih (4 * hidden_size,
    input_size), weight_hh (4 * hidden_size, hidden_size), bias_ih, bias_hh (4 * hidden_size,).
    """

    gates = 4

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        x, batched = _cell_input(input, self.input_size, "LSTMCell")
        h0, c0 = (None, None) if hx is None else _state_pair(hx, "LSTMCell")
        h = _cell_state(h0, x, batched, self.hidden_size, 0, "LSTMCell: Expected hx[0]")
        c = _cell_state(c0, x, batched, self.hidden_size, 1, "LSTMCell: Expected hx[1]")
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        h, c = _lstm_epilogue(gates, c)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_GatedCell):
    """One GRU step, with gates in torch's order r, z, n and ``b_hn`` inside the reset product:
    ``r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)``, ``z = sigmoid(... z ...)``,
    ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``, ``h' = (1 - z) * n + z * h``.

    Args: ``input_size``, ``hidden_size``, ``bias=True``, ``dtype=None`` (as ``RNNCell``).

    Inputs: ``input, hx``: input (N, input_size) or unbatched (input_size,); hx (N, hidden_size) or
    unbatched (hidden_size,), zeros when omitted.  Output: ``h'``, shaped as ``hx``.

    Parameters (U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as in torch): weight_ih (3 * hidden_size,
    input_size), weight_hh (3 * hidden_size, hidden_size), bias_ih, bias_hh (3 * hidden_size,).
    """

    gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = _cell_input(input, self.input_size, "GRUCell")
        h = _cell_state(hx, x, batched, self.hidden_size, 0, "GRUCell: Expected hidden")
        gi = F.linear(x, self.weight_ih, self.bias_ih)
        h = _gru_epilogue(gi, F.linear(h, self.weight_hh, self.bias_hh), h)
        return h if batched else h.squeeze(0)


def _lstm_epilogue(gates: Tensor, c: Tensor, h_out: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
    """An LSTM step after its gates product: ``gates`` (N, 4H) in the order i, f, g, o and the cell state
    ``c`` (N, H) give (h', c').  One fused kernel call (``_recurrent.lstm_epilogue``, the same values and
    graph as the plain ops below) when both are 2-D of one dtype; ``h_out`` as its."""
    if gates.ndim == c.ndim == 2 and gates.dtype == c.dtype and gates.shape[0] == c.shape[0]:
        return _recurrent.lstm_epilogue(gates, c, h_out)
    i, f, g, o = gates.chunk(4, 1)  # mixed dtypes or a broadcast state: the ops promote and broadcast
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c_new.tanh(), c_new


def _gru_epilogue(gi: Tensor, gh: Tensor, h: Tensor, h_out: np.ndarray | None = None) -> Tensor:
    """A GRU step after its products: ``gi = x W_ih^T + b_ih`` and ``gh = h W_hh^T + b_hh`` (N, 3H) in the
    order r, z, n, and the state ``h`` give h'.  One fused kernel call (``_recurrent.gru_epilogue``, the
    same values and graph as the plain ops below) when all are 2-D of one dtype; ``h_out`` as its."""
    if (gi.ndim == gh.ndim == h.ndim == 2 and gi.dtype == gh.dtype == h.dtype
            and gi.shape == gh.shape and gi.shape[0] == h.shape[0]):
        return _recurrent.gru_epilogue(gi, gh, h, h_out)
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return (1 - z) * n + z * h


class _RNNBase(Module):
    """What RNN, LSTM and GRU share: the parameters (``gates`` blocks of ``hidden_size`` rows per weight,
    an LSTM's projection), the checks of the call, dropout's settings and the repr."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool, batch_first: bool,
                 dropout: float, bidirectional: bool, proj_size: int, dtype: Any) -> None:
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
                          f"num_layers={num_layers}", stacklevel=3)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int):
            raise TypeError(f"proj_size should be of type int, got: {type(proj_size).__name__}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        dtype = _resolve_dtype(dtype)
        num_directions = 2 if bidirectional else 1
        out_size = proj_size or hidden_size  # features of h (c keeps hidden_size)
        rows = self.gates * hidden_size
        k = 1.0 / math.sqrt(hidden_size)
        self._weight_names: list[tuple[str, ...]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else num_directions * out_size
            for suffix in ("", "_reverse")[:num_directions]:
                shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, out_size)}
                if bias:
                    shapes.update(bias_ih=(rows,), bias_hh=(rows,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = tuple(f"{kind}_l{layer}{suffix}" for kind in shapes)
                for name, shape in zip(names, shapes.values()):
                    self.register_parameter(name, _uniform_parameter(shape, k, dtype))
                self._weight_names.append(names)

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """Per (layer, direction), in h_n order: ``[weight_ih, weight_hh, bias_ih, bias_hh]`` (no biases if
        ``bias=False``; an LSTM with ``proj_size`` adds ``weight_hr``)."""
        return [[self._parameters[n] for n in names] for names in self._weight_names]

    def _check_input(self, input: Tensor) -> tuple[Tensor, bool]:
        """Validate the input; return (it time-major and 3-D, whether it was batched)."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a minigrad Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                               f"{input.shape[-1]}")
        dtype = self.weight_ih_l0.dtype
        if input.dtype != dtype:
            # a model can be built in either float dtype, never an integer or bool one
            other = (f", or build the model with dtype=minigrad.{input.dtype}"
                     if input.dtype in (mg.float32, mg.float64) else "")
            raise ValueError(f"{name} input dtype ({input.dtype}) does not match weight dtype ({dtype}). "
                             f"Convert input: input.to(minigrad.{dtype}){other}")
        batched = input.ndim == 3
        if not batched:
            x = input.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        if x.shape[0] == 0:
            raise ValueError(f"{name}: the input has no time steps")
        return x, batched

    def _check_states(self, states: tuple[Any, ...], batched: bool, batch: int) -> list[Tensor]:
        """The initial states (``(h0,)``, or an LSTM's ``(h0, c0)``) checked as torch checks them and made
        3-D."""
        name = type(self).__name__
        labels = ("h0", "c0")
        for label, s in zip(labels, states):
            if not isinstance(s, Tensor):
                raise TypeError(f"{name}: {label} must be a minigrad Tensor, got {type(s).__name__}")
        pair = len(states) == 2
        what = "hx and cx" if pair else "hx"
        dims = (f"({states[0].ndim}-D, {states[1].ndim}-D) tensors" if pair
                else f"{states[0].ndim}-D tensor")
        ndim = 3 if batched else 2
        if any(s.ndim != ndim for s in states):
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RuntimeError(f"For {kind} input, {what} should also be {ndim}-D but got {dims}")
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)
        dtype = self.weight_ih_l0.dtype
        checked = []
        for i, s in enumerate(states):
            s = s if batched else s.unsqueeze(1)
            expected = (len(self._weight_names), batch, sizes[i])
            if tuple(s.shape) != expected:
                label = f"hidden[{i}]" if pair else "hidden"
                raise RuntimeError(f"Expected {label} size {expected}, got {list(s.shape)}")
            if s.dtype != dtype:
                raise RuntimeError(f"{name}: {labels[i]} dtype ({s.dtype}) does not match weight dtype "
                                   f"({dtype})")
            checked.append(s)
        return checked

    def _between_layers(self, output: Tensor, layer: int) -> Tensor:
        """A layer's output as the next layer's input: dropout in training mode, but not after the last."""
        if self.dropout > 0 and self.training and layer < self.num_layers - 1:
            return F.dropout(output, self.dropout, training=True)
        return output

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
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


class RNN(_RNNBase):
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
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         dtype)
        _activation(nonlinearity)  # an unknown name is refused here, as torch does
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, h0: Tensor | None = None,
                lengths: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._check_input(input)
        seq_len, batch = x.shape[:2]
        if h0 is not None:
            h0 = self._check_states((h0,), batched, batch)[0]
        valid = None
        if lengths is not None:
            valid = _valid_steps(lengths, seq_len, batch, batched, type(self).__name__)
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
            layer_input = self._between_layers(layer_input, layer)
        output, h_n = layer_input, mg.stack(finals, dim=0)
        if not batched:
            return output.squeeze(1), h_n.squeeze(1)
        return (output.transpose(0, 1) if self.batch_first else output), h_n


class LSTM(_RNNBase):
    """A multi-layer LSTM, optionally bidirectional, applied to whole sequences (torch.nn.LSTM).

    Per layer, direction and step: ``gates = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh`` split in the order
    i, f, g, o; ``c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)``, ``h_t = sigmoid(o) * tanh(c_t)``, and
    with ``proj_size`` P > 0, ``h_t = (sigmoid(o) * tanh(c_t)) W_hr^T``.  Layers, directions, dropout and
    ``lengths`` work as in ``RNN``.

    Args:
        input_size: features of the input ``x_t``.
        hidden_size: features of the hidden state ``h_t`` (and of an LSTM's cell state ``c_t``).
        num_layers: stacked layers (default 1).
        bias: use ``b_ih`` and ``b_hh`` (default True).
        batch_first: input and output are (N, L, ·) instead of (L, N, ·); never applies to the states.
        dropout: probability of dropout on the output of every layer but the last, in training mode only.
        bidirectional: add a reverse direction per layer (default False).
        proj_size: if > 0, project h to this many features (< hidden_size) with ``weight_hr_l{k}``.
        dtype: parameter dtype (default: ``minigrad.get_default_dtype()``).

    Inputs: ``input, hx=None, lengths=None``
        - input: (L, N, input_size), or (N, L, input_size) with ``batch_first``, or unbatched (L, input_size).
        - hx: a tuple (h0, c0): h0 (D * num_layers, N, H_out) and c0 (D * num_layers, N, hidden_size) (no N
          when unbatched); zeros when omitted.  H_out = proj_size or hidden_size, D = 2 if bidirectional.
        - lengths: as ``RNN``'s (torch's packed sequences).

    Outputs: ``output, (h_n, c_n)``: output (L, N, D * H_out) (batch-first (N, L, ·), unbatched (L, ·)),
    h_n (D * num_layers, N, H_out), c_n (D * num_layers, N, hidden_size), ordered as h0.

    Parameters per layer k and direction (suffix ``_reverse``), all from U(-1/sqrt(hidden_size),
    1/sqrt(hidden_size)): ``weight_ih_l{k}`` (4 * hidden_size, input_size or D * H_out), ``weight_hh_l{k}``
    (4 * hidden_size, H_out), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4 * hidden_size,), with ``proj_size``
    ``weight_hr_l{k}`` (proj_size, hidden_size).
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None,
                lengths: Sequence[int] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x, batched = self._check_input(input)
        batch = x.shape[1]
        if hx is None:
            h = mg.zeros(batch, self.proj_size or self.hidden_size, dtype=x.dtype)
            c = mg.zeros(batch, self.hidden_size, dtype=x.dtype)
            initial = [(h, c)] * len(self._weight_names)
        else:
            h0, c0 = self._check_states(_state_pair(hx, "LSTM"), batched, batch)
            initial = list(zip(h0.unbind(0), c0.unbind(0)))
        output, finals = _unroll(self, x, initial, lengths, batched)
        h_n = mg.stack([h for h, _ in finals], dim=0)
        c_n = mg.stack([c for _, c in finals], dim=0)
        if not batched:
            return output.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        return output, (h_n, c_n)


class GRU(_RNNBase):
    """A multi-layer GRU, optionally bidirectional, applied to whole sequences (torch.nn.GRU).

    Per layer, direction and step, with gates in the order r, z, n:
    ``r = sigmoid(x_t W_ir^T + b_ir + h W_hr^T + b_hr)``, ``z = sigmoid(... z ...)``,
    ``n = tanh(x_t W_in^T + b_in + r * (h W_hn^T + b_hn))``, ``h_t = (1 - z) * n + z * h_{t-1}``.  Layers,
    directions, dropout and ``lengths`` work as in ``RNN``.

    Args:
        input_size: features of the input ``x_t``.
        hidden_size: features of the hidden state ``h_t`` (and of an LSTM's cell state ``c_t``).
        num_layers: stacked layers (default 1).
        bias: use ``b_ih`` and ``b_hh`` (default True).
        batch_first: input and output are (N, L, ·) instead of (L, N, ·); never applies to the states.
        dropout: probability of dropout on the output of every layer but the last, in training mode only.
        bidirectional: add a reverse direction per layer (default False).
        dtype: parameter dtype (default: ``minigrad.get_default_dtype()``).

    Inputs and outputs: as ``RNN``'s (``gru(input, h0=None, lengths=None)`` -> ``(output, h_n)``).

    Parameters per layer k and direction (suffix ``_reverse``), all from U(-1/sqrt(hidden_size),
    1/sqrt(hidden_size)): ``weight_ih_l{k}`` (3 * hidden_size, input_size or D * hidden_size),
    ``weight_hh_l{k}`` (3 * hidden_size, hidden_size), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3 * hidden_size,).
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: Any = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         dtype)

    def forward(self, input: Tensor, h0: Tensor | None = None,
                lengths: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._check_input(input)
        batch = x.shape[1]
        if h0 is None:
            initial = [mg.zeros(batch, self.hidden_size, dtype=x.dtype)] * len(self._weight_names)
        else:
            initial = list(self._check_states((h0,), batched, batch)[0].unbind(0))
        output, finals = _unroll(self, x, initial, lengths, batched)
        h_n = mg.stack(finals, dim=0)
        if not batched:
            return output.squeeze(1), h_n.squeeze(1)
        return output, h_n


def _unroll(module: LSTM | GRU, x: Tensor, initial: list[Any], lengths: Sequence[int] | None,
            batched: bool) -> tuple[Tensor, list[Any]]:
    """A gated module's layers over the time-major ``x`` from the ``initial`` states (per layer and
    direction, in h_n order); returns (the last layer's output laid out as the input was, the final
    states)."""
    seq_len, batch = x.shape[:2]
    valid = None
    if lengths is not None:
        valid = _valid_steps(lengths, seq_len, batch, batched, type(module).__name__)
        x = x.masked_fill(~valid, 0.0)  # padding never reaches a product, whatever its values
    num_directions = 2 if module.bidirectional else 1
    weights = module.all_weights
    finals = []
    layer_input = x
    lstm = isinstance(module, LSTM)
    out_size = module.proj_size or module.hidden_size
    for layer in range(module.num_layers):
        first = layer * num_directions
        # As RNN's: each step's h' is written straight into its place in the layer's output (not through a
        # projection), so joining the steps copies nothing; the graph is still that of stack (and cat).
        buf = np.empty((seq_len, batch, num_directions * out_size), dtype=x.dtype)
        outs = None
        if valid is None and not (lstm and module.proj_size):
            outs = [buf[:, :, d * out_size:(d + 1) * out_size] for d in range(num_directions)]
        outputs, states = _run_gated_layer(
            lstm, layer_input, initial[first:first + num_directions], weights[first:first + num_directions],
            module.bias, valid, layer, outs)
        finals.extend(states)
        layer_input = _recurrent.stack_cat(outputs, dim=2, out=buf) if num_directions == 2 else \
            _recurrent.stack_into(outputs[0], buf)
        layer_input = module._between_layers(layer_input, layer)
    if batched and module.batch_first:
        layer_input = layer_input.transpose(0, 1)
    return layer_input, finals


def _run_gated_layer(lstm: bool, x: Tensor, states: Sequence[Any], weights: Sequence[list[Parameter]],
                     bias: bool, valid: np.ndarray | None, layer: int,
                     outs: Sequence[np.ndarray] | None = None) -> tuple[list[list[Tensor]], list[Any]]:
    """One LSTM (``lstm``) or GRU layer over ``x`` (L, N, F) in each of its directions (two when there are
    two ``states``: per direction an LSTM's (h, c) or a GRU's h).  Returns (per direction, its L outputs in
    time order; per direction, its final state).

    As ``_run_layer``: the input's products for all steps at once (with an LSTM's biases; a GRU's b_hh stays
    with the state's product, where r multiplies it), then per step one product of the state with W_hh^T for
    all the gates (``_recurrent.steps``, both directions as one kernel job) and the cell's epilogue; ``valid``
    carries padded steps' states through unchanged, with zero output.  With ``outs`` (per direction an
    (L, N, H) array), each step's h' is written into ``out[t]`` by the epilogue's kernel.
    """
    seq_len, batch, features = x.shape
    x2 = x.reshape(seq_len * batch, features)
    xws, w_hh_ts, addends, w_hr_ts = [], [], [], []
    for w in weights:
        rows = w[0].shape[0]
        if lstm:
            xw = F.linear(x2, w[0], w[2] + w[3]) if bias else x2 @ w[0].T
            w_hr_ts.append(w[-1].T if len(w) in (3, 5) else None)  # weight_hr follows the biases
        else:
            xw = F.linear(x2, w[0], w[2]) if bias else x2 @ w[0].T
            zeros = mg.zeros(batch, rows, dtype=x.dtype)
            addends.append(zeros + w[3] if bias else zeros)  # b_hh, added to every step's h W_hh^T
        xws.append(xw.reshape(seq_len, batch, rows).unbind(0))
        w_hh_ts.append(_recurrent.ReusedOperand(w[1].T))
    directions = range(len(weights))
    states = list(states)
    outputs = [[None] * seq_len for _ in directions]
    # the whole sequence is one kernel job (products and epilogues), its steps' nodes as below
    if lstm and outs is not None and valid is None and all(w is None for w in w_hr_ts):
        pairs = _recurrent.lstm_sequence(xws, states, w_hh_ts, outs, [d == 1 for d in directions])
        for s in range(seq_len):
            for d in directions:
                t = seq_len - 1 - s if d else s
                h_new, c_new = pairs[d][t]
                outputs[d][t] = mark_step(h_new, t, layer, d)
                mark_step(c_new, t, layer, d)
        return outputs, [(outputs[d][-1 if d == 0 else 0], pairs[d][-1 if d == 0 else 0][1]) for d in directions]
    if not lstm and outs is not None and valid is None:
        news = _recurrent.gru_sequence(xws, addends, states, w_hh_ts, outs, [d == 1 for d in directions])
        for s in range(seq_len):
            for d in directions:
                t = seq_len - 1 - s if d else s
                outputs[d][t] = mark_step(news[d][t], t, layer, d)
        return outputs, [outputs[d][-1 if d == 0 else 0] for d in directions]
    for s in range(seq_len):
        ts = (s, seq_len - 1 - s)  # the reverse direction runs backwards
        if lstm:
            products = _recurrent.steps([xws[d][ts[d]] for d in directions], [st[0] for st in states],
                                        w_hh_ts)
        else:
            products = _recurrent.steps(addends, states, w_hh_ts)
        for d in directions:
            t = ts[d]
            h_out = None if outs is None else outs[d][t]
            if lstm:
                h_new, c_new = _lstm_epilogue(products[d], states[d][1], h_out)
                if w_hr_ts[d] is not None:
                    h_new = h_new @ w_hr_ts[d]
                new = (mark_step(h_new, t, layer, d), mark_step(c_new, t, layer, d))
            else:
                h_new = new = mark_step(_gru_epilogue(xws[d][t], products[d], states[d], h_out), t, layer, d)
            if valid is None:
                states[d] = new
                outputs[d][t] = h_new
            else:
                if lstm:
                    states[d] = tuple(mark_step(mg.where(valid[t], a, b), t, layer, d)
                                      for a, b in zip(new, states[d]))
                else:
                    states[d] = mark_step(mg.where(valid[t], new, states[d]), t, layer, d)
                outputs[d][t] = mark_step(h_new.masked_fill(~valid[t], 0.0), t, layer, d)
    return outputs, states


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
    job (``_recurrent.steps``), each with its own nodes; with tanh and ``outs``, the whole sequence is one
    kernel job (``_recurrent.sequence``), each thread taking whole rows of the batch through every
    step, and so is its backward.
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
    if outs is not None and nonlinearity == "tanh":
        # tanh is the kernel's epilogue: the whole sequence is one kernel job, its steps' nodes as below
        news = _recurrent.sequence(xws, states, w_hh_ts, outs, [d == 1 for d in directions], nonlinearity)
        for s in range(seq_len):
            for d in directions:
                t = seq_len - 1 - s if d else s
                outputs[d][t] = mark_step(news[d][t], t, layer, d)
        return outputs, [outputs[d][-1 if d == 0 else 0] for d in directions]
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


def _valid_steps(lengths: Sequence[int], seq_len: int, batch: int, batched: bool, name: str) -> np.ndarray:
    """(L, N, 1) bool mask, True where step t < lengths[n]; ``name``: the module's, for the errors."""
    if not batched:
        raise ValueError(f"{name}: lengths needs batched (3-D) input")
    arr = np.asarray(lengths)
    if (arr.dtype.kind not in "iu" and arr.size) or arr.shape != (batch,):  # ([] is float64 to numpy)
        raise ValueError(f"{name}: lengths must be {batch} integers (one per batch entry), got {lengths!r}")
    if arr.size and (arr.min() < 1 or arr.max() > seq_len):
        raise ValueError(f"{name}: lengths must be between 1 and the sequence length {seq_len}, got "
                         f"{arr.tolist()}")
    return (np.arange(seq_len)[:, None] < arr[None, :])[:, :, None]
