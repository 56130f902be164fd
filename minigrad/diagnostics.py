"""Gradient through time: how much of the loss's gradient reaches each step of a recurrence.

Backpropagation through time sends dL/dh_t back along h_t -> h_{t-1} -> ..., multiplying at every step by the
step's Jacobian ``diag(act'(a_t)) W_hh``.  Repeated products shrink geometrically when W_hh is small
(vanishing gradients: early steps learn nothing) and grow when it is large (exploding gradients: one update
can wreck the weights).  ``gradient_through_time`` measures both sides of this:

- ``dh_norms[t]`` = ||dL/dh_t||, recorded by a hook on each hidden state as backward passes it (and for an
  LSTM ``dc_norms[t]`` = ||dL/dc_t||, the cell state's: its additive path ``c_t = f * c_{t-1} + ...`` is what
  lets an LSTM's gradient travel further back than an Elman RNN's);
- ``dw_norms[t]`` = ||step t's share of dL/dW_hh||.  The recurrent weight is used at every step and its
  gradient is the sum of one term per step; the probe gives each step its own copy of W_hh, so the engine
  hands back each term separately (their sum is exactly what the shared weight would receive).

``plot_gradient_through_time`` draws them (matplotlib, ``pip install 'minigrad[viz]'``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

import minigrad as mg
from minigrad.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, _gru_epilogue, _lstm_epilogue
from minigrad.tensor import Tensor

__all__ = ["GradientThroughTime", "gradient_through_time", "plot_gradient_through_time", "require_matplotlib"]


@dataclass(frozen=True)
class GradientThroughTime:
    """What one backward pass through T steps sent to each step (arrays indexed by t = 0 .. T-1).

    Attributes:
        dh_norms: ||dL/dh_t||, the total gradient reaching h_t over every path (Frobenius norm over the
            batch).
        dw_norms: ||G_t||, where G_t is step t's term of dL/dW_hh.
        step_grads: the terms G_t themselves, each shaped as W_hh (gates * H, H); ``step_grads.sum(0)``
            is dL/dW_hh.
        grad_norm: the total 2-norm of the gradients of all the cell's parameters -- what
            ``nn.utils.clip_grad_norm_`` measures and returns.
        loss: the loss value.
        clip_coef: the factor clipping applied to the parameter gradients (1.0 when not clipped).
        dc_norms: for an LSTM, ||dL/dc_t|| (the cell state's gradient, as ``dh_norms``); None otherwise.
    """

    dh_norms: np.ndarray
    dw_norms: np.ndarray
    step_grads: np.ndarray
    grad_norm: float
    loss: float
    clip_coef: float = 1.0
    dc_norms: np.ndarray | None = None

    @property
    def weight_hh_grad(self) -> np.ndarray:
        """dL/dW_hh: the sum of every step's term."""
        return self.step_grads.sum(axis=0)

    def clipped(self, max_norm: float) -> GradientThroughTime:
        """The parameter gradients after ``clip_grad_norm_(params, max_norm)``.

        Clipping rescales every parameter gradient by ``min(1, max_norm / (grad_norm + 1e-6))``: each step's
        term keeps its direction and relative size and only the total shrinks.  It cannot revive vanished
        early steps, and it leaves dL/dh_t and dL/dc_t (not parameter gradients) untouched.
        """
        coef = min(1.0, max_norm / (self.grad_norm + 1e-6))
        return replace(self, dw_norms=self.dw_norms * coef, step_grads=self.step_grads * coef,
                       grad_norm=self.grad_norm * coef, clip_coef=self.clip_coef * coef)


def gradient_through_time(rnn: RNNCell | RNN | LSTMCell | LSTM | GRUCell | GRU, inputs: Tensor | np.ndarray,
                          loss_fn: Callable[[Tensor], Tensor] | None = None,
                          h0: Any = None) -> GradientThroughTime:
    """Run ``rnn``'s recurrence over ``inputs`` on a float64 copy of its weights and measure the gradient
    reaching every step.  The module itself (and its ``.grad``) is left untouched.

    Args:
        rnn: an ``nn.RNNCell``, ``nn.LSTMCell`` or ``nn.GRUCell``, or an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``
            with one layer and one direction.
        inputs: (T, N, input_size) or unbatched (T, input_size).
        loss_fn: maps the hidden states, stacked as (T, N, hidden_size), to a scalar.  Default: the mean of
            the last state, ``hs[-1].mean()`` -- the loss sits at the end, so the gradient's journey back is
            the whole story.
        h0: initial state (N, hidden_size), or (hidden_size,) for unbatched inputs; zeros by default.  For
            an LSTM a pair (h0, c0) (h0 has proj_size features if it projects).
    """
    kind, (w_ih, w_hh, b_ih, b_hh, w_hr), act = _cell_weights(rnn)
    x = np.asarray(inputs.data if isinstance(inputs, Tensor) else inputs, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[2] != w_ih.shape[1] or x.shape[0] == 0:
        raise ValueError(f"inputs must be (T, N, {w_ih.shape[1]}) or (T, {w_ih.shape[1]}) with T >= 1, got "
                         f"shape {np.shape(inputs)}")
    steps, batch = x.shape[:2]
    hidden = w_hh.shape[1]  # h's features (an LSTM's proj_size if it projects)
    if kind == "lstm":
        h0, c0 = (None, None) if h0 is None else _state_pair(h0)
        c = _initial_state(c0, batch, w_hh.shape[0] // 4, "c0")
    h = _initial_state(h0, batch, hidden, "h0")
    weight_ih = mg.tensor(w_ih, requires_grad=True)
    biases = [mg.tensor(b, requires_grad=True) for b in (b_ih, b_hh) if b is not None]
    weight_hr = None if w_hr is None else mg.tensor(w_hr, requires_grad=True)
    bias_x, bias_h = 0.0, 0.0  # added to the input's and to the state's product
    if biases and kind == "gru":  # b_hh stays with the state's product (r multiplies it)
        bias_x, bias_h = biases
    elif biases:
        bias_x = biases[0] + biases[1]
    dh_norms, dc_norms = np.zeros(steps), (np.zeros(steps) if kind == "lstm" else None)
    w_steps, hs = [], []
    for t in range(steps):
        w_t = mg.tensor(w_hh, requires_grad=True)  # step t's own copy of W_hh: its .grad is step t's term
        gx = mg.tensor(x[t]) @ weight_ih.T + bias_x
        gh = h @ w_t.T + bias_h
        if kind == "rnn":
            h = act(gx + gh)
        elif kind == "gru":
            h = _gru_epilogue(gx, gh, h)
        else:
            h, c = _lstm_epilogue(gx + gh, c)
            c.register_hook(_store_norm(dc_norms, t))
            if weight_hr is not None:
                h = h @ weight_hr.T
        h.register_hook(_store_norm(dh_norms, t))
        w_steps.append(w_t)
        hs.append(h)
    loss = (loss_fn or _last_state_mean)(mg.stack(hs))
    loss.backward()
    step_grads = np.stack([np.zeros_like(w_hh) if w.grad is None else w.grad.data for w in w_steps])
    # What clip_grad_norm_ would measure: every parameter's gradient, W_hh's being the sum of the terms.
    params = [weight_ih, *biases] + ([] if weight_hr is None else [weight_hr])
    grads = [p.grad.data for p in params if p.grad is not None] + [step_grads.sum(0)]
    grad_norm = float(np.sqrt(sum(np.vdot(g, g) for g in grads)))
    dw_norms = np.linalg.norm(step_grads.reshape(steps, -1), axis=1)
    return GradientThroughTime(dh_norms=dh_norms, dw_norms=dw_norms, step_grads=step_grads,
                               grad_norm=grad_norm, loss=loss.item(), dc_norms=dc_norms)


def _state_pair(state: Any) -> tuple[Any, Any]:
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(f"an LSTM's h0 is a pair (h0, c0), got {type(state).__name__}")
    return state[0], state[1]


def _initial_state(state: Any, batch: int, size: int, name: str) -> Tensor:
    """A float64 (batch, size) copy of ``state`` (an unbatched (size,) state is (1, size)); zeros for None."""
    if state is None:
        return mg.zeros(batch, size, dtype=mg.float64)
    arr = np.asarray(state.data if isinstance(state, Tensor) else state, dtype=np.float64)
    if arr.shape != (batch, size) and not (batch == 1 and arr.shape == (size,)):
        raise ValueError(f"{name} must be ({batch}, {size}), got shape {arr.shape}")
    return mg.tensor(arr.reshape(batch, size))


def _store_norm(out: np.ndarray, t: int) -> Callable[[Tensor], None]:
    def hook(grad: Tensor) -> None:
        out[t] = np.linalg.norm(grad.data)
    return hook


def _last_state_mean(hs: Tensor) -> Tensor:
    return hs[-1].mean()


def _cell_weights(rnn: Any):
    """(kind 'rnn' / 'lstm' / 'gru', float64 arrays [W_ih, W_hh, b_ih, b_hh, W_hr] with None for those it
    lacks, the Elman activation) from a cell or a 1-layer, 1-direction module."""
    if isinstance(rnn, (RNNCell, LSTMCell, GRUCell)):
        params = [rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh, None]
    elif isinstance(rnn, (RNN, LSTM, GRU)):
        if rnn.num_layers != 1 or rnn.bidirectional:
            raise ValueError("gradient_through_time follows one recurrence: pass a cell, or an RNN, LSTM or "
                             "GRU with num_layers=1 and bidirectional=False")
        named = dict(rnn.named_parameters())
        params = [named.get(f"{k}_l0") for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")]
    else:
        raise TypeError(f"expected an nn.RNNCell, nn.LSTMCell, nn.GRUCell, nn.RNN, nn.LSTM or nn.GRU, got "
                        f"{type(rnn).__name__}")
    kind = ("lstm" if isinstance(rnn, (LSTM, LSTMCell)) else "gru" if isinstance(rnn, (GRU, GRUCell))
            else "rnn")
    arrays = [None if p is None else np.array(p.data, dtype=np.float64) for p in params]
    act = {"tanh": Tensor.tanh, "relu": Tensor.relu}[rnn.nonlinearity] if kind == "rnn" else None
    return kind, arrays, act


def _positive(values: np.ndarray) -> np.ndarray:
    """Zeros (e.g. step 0's W_hh term when h0 = 0) left out of a log plot instead of diving off the axis."""
    return np.where(values > 0, values, np.nan)


def require_matplotlib():
    """matplotlib's ``Figure`` class, or a ModuleNotFoundError that says how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ModuleNotFoundError("plotting needs matplotlib: pip install matplotlib "
                                  "(or pip install 'minigrad[viz]')") from None
    return Figure


def plot_gradient_through_time(results: Mapping[str, GradientThroughTime], path: str | Path | None = None, *,
                               clip: float | None = None, axes: Sequence[Any] | None = None,
                               title: str | None = None) -> Path | None:
    """Plot ||dL/dh_t|| (and an LSTM's ||dL/dc_t||, dotted) and each step's share of ||dL/dW_hh|| against
    t, one line per labelled result.

    Args:
        results: label -> ``gradient_through_time`` result (e.g. one per recurrent-weight scale).
        path: PNG (or any format matplotlib writes) to save; None with ``axes`` to draw only.
        clip: also draw, dashed, each result's per-step terms after ``clip_grad_norm_(max_norm=clip)``.
        axes: two matplotlib axes to draw into (for a figure of your own); by default a new figure.
        title: figure title.

    Returns the path written, or None when drawing into ``axes``.
    """
    if axes is None:
        if path is None:
            raise ValueError("give a path to save the figure, or axes to draw into")
        fig = require_matplotlib()(figsize=(11, 4.2), layout="constrained")
        axes = fig.subplots(1, 2)
    else:
        fig = None
    ax_h, ax_w = axes[0], axes[1]
    for i, (label, r) in enumerate(results.items()):
        colour = f"C{i}"
        t = np.arange(len(r.dh_norms))
        ax_h.semilogy(t, _positive(r.dh_norms), colour, marker=".", label=label)
        if r.dc_norms is not None:
            ax_h.semilogy(t, _positive(r.dc_norms), colour, linestyle=":", label=f"{label}: ||dL/dc_t||")
        ax_w.semilogy(t, _positive(r.dw_norms), colour, marker=".", label=label)
        if clip is not None:
            c = r.clipped(clip)
            if c.clip_coef < 1.0:
                ax_w.semilogy(t, _positive(c.dw_norms), colour, linestyle="--",
                              label=f"{label}, clipped to {clip:g}")
    ax_h.set(xlabel="time step t", ylabel="||dL/dh_t||", title="gradient reaching each hidden state")
    ax_w.set(xlabel="time step t", ylabel="||step t's term of dL/dW_hh||",
             title="each step's contribution to the shared W_hh")
    for ax in (ax_h, ax_w):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    if fig is None:
        return None
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
