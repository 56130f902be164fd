"""JAX as a peer for the recurrent rows: the same network as ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` written
as a ``lax.scan`` per layer and direction, and one training step -- ``jax.value_and_grad`` of the loss and
the SGD update -- compiled whole by ``jax.jit``.  XLA sees the entire step, which makes it the strongest
peer for this workload.

JAX is optional (``pip install -e ".[bench]"``) and imported only when a row needs it.  XLA runs its CPU
kernels on a thread pool sized from the process's CPU affinity (``XLA_FLAGS``' thread options do not change
it); ``bench/report.py`` limits the affinity before JAX loads so that JAX gets the threads the other
libraries get.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = 'pip install -e ".[bench]"'
_jax: Any = None


def unavailable_reason() -> str | None:
    """Why the JAX rows cannot run (None: they can)."""
    if importlib.util.find_spec("jax") is None:
        return f"JAX is not installed: {INSTALL_HINT} adds the JAX rows"
    return None


def loaded() -> bool:
    return _jax is not None


def _load() -> Any:
    global _jax
    if _jax is None:
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        import jax

        jax.config.update("jax_enable_x64", True)  # the float64 rows; float32 inputs stay float32
        jax.config.update("jax_platforms", "cpu")
        _jax = jax
    return _jax


def version() -> str:
    return _load().__version__


def xla_threads() -> int:
    """The threads of XLA's CPU pool (named tf_XLAEigen) once it exists; the usable CPUs before."""
    try:
        names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
    except OSError:  # a thread that ended while listing, or no /proc
        names = []
    count = names.count("tf_XLAEigen")
    return count or len(os.sched_getaffinity(0))


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _forward(kind: str, layers: int, directions: int, params: dict[str, Any], x: Any) -> Any:
    """torch's recurrent layer: input projection of all steps at once, then a scan over time."""
    jnp, lax = _jax.numpy, _jax.lax
    sig = _jax.nn.sigmoid
    batch, hidden = x.shape[1], params["weight_hh_l0"].shape[1]
    inp = x
    for layer in range(layers):
        outs = []
        for d in range(directions):
            sfx = f"l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = params[f"weight_ih_{sfx}"], params[f"weight_hh_{sfx}"]
            b_ih, b_hh = params[f"bias_ih_{sfx}"], params[f"bias_hh_{sfx}"]
            h0 = jnp.zeros((batch, hidden), x.dtype)
            if kind == "gru":  # b_hh's n part sits inside r * (...): it cannot join the projection
                xw = inp @ w_ih.T + b_ih

                def cell(h, xt, w_hh=w_hh, b_hh=b_hh):
                    xr, xz, xn = jnp.split(xt, 3, axis=-1)
                    hr, hz, hn = jnp.split(h @ w_hh.T + b_hh, 3, axis=-1)
                    r, z = sig(xr + hr), sig(xz + hz)
                    h = (1 - z) * jnp.tanh(xn + r * hn) + z * h
                    return h, h
                init = h0
            elif kind == "lstm":
                xw = inp @ w_ih.T + (b_ih + b_hh)

                def cell(hc, xt, w_hh=w_hh):
                    h, c = hc
                    i, f, g, o = jnp.split(xt + h @ w_hh.T, 4, axis=-1)
                    c = sig(f) * c + sig(i) * jnp.tanh(g)
                    h = sig(o) * jnp.tanh(c)
                    return (h, c), h
                init = (h0, h0)
            else:
                xw = inp @ w_ih.T + (b_ih + b_hh)

                def cell(h, xt, w_hh=w_hh):
                    h = jnp.tanh(xt + h @ w_hh.T)
                    return h, h
                init = h0
            outs.append(lax.scan(cell, init, xw, reverse=bool(d))[1])
        inp = jnp.concatenate(outs, axis=-1) if directions == 2 else outs[0]
    return inp


def rnn_step(kind: str, layers: int, directions: int, state: dict[str, np.ndarray], x: np.ndarray,
             w: np.ndarray, lr: float, dtype) -> Any:
    """A jitted training step, loss ``(out * w).sum()`` then SGD with ``lr``, from torch's state dict.
    The returned callable runs one step (advancing the weights) and returns (loss, gradients, new weights)
    once they are computed."""
    jax = _load()
    params = {k: jax.numpy.asarray(v.astype(dtype)) for k, v in state.items()}
    xj, wj = jax.numpy.asarray(x.astype(dtype)), jax.numpy.asarray(w.astype(dtype))

    def loss(p, x, w):
        return (_forward(kind, layers, directions, p, x) * w).sum()

    @jax.jit
    def train(p, x, w):
        value, grads = jax.value_and_grad(loss)(p, x, w)
        return value, grads, jax.tree_util.tree_map(lambda a, g: a - lr * g, p, grads)

    def step():
        nonlocal params
        value, grads, params = train(params, xj, wj)
        jax.block_until_ready(params)
        return value, grads, params
    return step
