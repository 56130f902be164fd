"""The benchmark cases: one definition shared by the pytest-benchmark suite (``bench/test_*.py``), the
ratio table (``bench/report.py``) and the CI smoke (``tests/test_bench_smoke.py``).

A ``Case`` is one comparison: the same computation on the same inputs by several implementations
("minigrad", "numpy", "torch", ...).  ``case.impls[name]()`` builds one implementation's inputs and returns
the zero-argument callable that is timed; ``case.check(name, fn())`` checks the result of its FIRST call
(against float64/longdouble numpy or float64 torch), so a fast wrong kernel cannot pass.  Build and call
inside ``harness.threads(case.threads)``.
"""
from __future__ import annotations

import math
import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import numpy as np
import torch

import minigrad as mg
from bench import jax_peer
from minigrad import nn as mnn
from minigrad import tbptt
from minigrad.nn import functional as mF

F32, F64 = np.float32, np.float64
DTYPES = {"f32": F32, "f64": F64}
TORCH_DTYPE = {F32: torch.float32, F64: torch.float64}
THREADS = (1, 2)


@dataclass
class Case:
    id: str                                   # unique, e.g. "matmul-f32-256x256@256x256-1t"
    family: str                               # matmul | tanh | engine | rnn | tbptt
    title: str                                # human-readable, also the pytest-benchmark group
    impls: dict[str, Callable[[], Callable[[], Any]]]
    check: Callable[[str, Any], None]
    threads: int | None = None                # None: every library at its default (all cores)
    work: float = 0.0                         # FLOP (matmul) or elements (tanh) per call
    unit: str = ""                            # "GFLOP/s" or "Gelem/s"; "" for no throughput
    per: int = 1                              # the time shown is per call / per (e.g. per graph node)
    per_what: str = "call"
    fixed_rounds: int | None = None           # stateful cases: exactly this many single calls, no calibration
    min_loops: int = 1                        # calls per timed block at least (a training loop's steps)
    meta: dict[str, Any] = field(default_factory=dict)


def as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, mg.Tensor):
        return np.asarray(x.data)
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([20240, *key])


# ---- matmul ------------------------------------------------------------------------------------------

def _matmul_inputs(m: int, k: int, n: int, transposed: bool, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A (m, k) and B (k, n); with ``transposed`` B is the transposed view of a C-contiguous (n, k) weight,
    as in an RNN step's ``h @ W_hh.T``."""
    rng = _rng(m, k, n, transposed, np.dtype(dtype).itemsize)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((n, k)).astype(dtype).T if transposed else rng.standard_normal((k, n)).astype(dtype)
    return a, b


@lru_cache(maxsize=2)  # cases come shape by shape: the 1- and 2-thread cases share one reference
def _matmul_reference(m, k, n, transposed, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The exact-ish product (long double, or float64 for the biggest) and the classical error bound of a
    K-term dot product, |error| <= K * eps * (|A| @ |B|)."""
    a, b = _matmul_inputs(m, k, n, transposed, dtype)
    ref = (a.astype(np.longdouble) @ b.astype(np.longdouble) if m * n * k <= 2 ** 24
           else a.astype(F64) @ b.astype(F64))
    bound = (k + 2) * np.finfo(dtype).eps * (np.abs(a).astype(F64) @ np.abs(b).astype(F64))
    return ref, bound


def _check_matmul(m, k, n, transposed, dtype) -> Callable[[str, Any], None]:
    def check(impl: str, result: Any) -> None:
        c = as_numpy(result)
        assert c.shape == (m, n) and c.dtype == dtype, f"{impl}: got {c.dtype}{c.shape}, want {dtype}({m}, {n})"
        ref, bound = _matmul_reference(m, k, n, transposed, dtype)
        err = np.abs(c.astype(ref.dtype) - ref)
        bad = err > bound
        assert not bad.any(), (f"{impl}: {int(bad.sum())} of {c.size} entries beyond K*eps*|A||B| "
                               f"(worst error {float(err.max()):.3g})")
    return check


def matmul_case(dtype, m: int, k: int, n: int, transposed: bool, nthreads: int) -> Case:
    name = {F32: "f32", F64: "f64"}[dtype]
    shape = f"{m}x{k}@{k}x{n}" + (" (B = W.T view)" if transposed else "")
    sid = f"{m}x{k}@{k}x{n}" + ("T" if transposed else "")

    def minigrad_impl():
        a, b = _matmul_inputs(m, k, n, transposed, dtype)
        x = mg.tensor(a)
        y = mg.tensor(np.ascontiguousarray(b.T)).T if transposed else mg.tensor(b)
        return lambda: x @ y

    def numpy_impl():
        a, b = _matmul_inputs(m, k, n, transposed, dtype)
        return lambda: a @ b

    def torch_impl():
        a, b = _matmul_inputs(m, k, n, transposed, dtype)
        x = torch.from_numpy(a)
        y = torch.from_numpy(np.ascontiguousarray(b.T)).T if transposed else torch.from_numpy(b)
        return lambda: x @ y

    return Case(id=f"matmul-{name}-{sid}-{nthreads}t", family="matmul",
                title=f"matmul {name} {shape}, {nthreads} thread{'s' * (nthreads > 1)}",
                impls={"minigrad": minigrad_impl, "numpy": numpy_impl, "torch": torch_impl},
                check=_check_matmul(m, k, n, transposed, dtype), threads=nthreads,
                work=2.0 * m * n * k, unit="GFLOP/s",
                meta={"dtype": name, "m": m, "k": k, "n": n, "transposed": transposed,
                      "square": m == k == n and not transposed, "shape": sid})


MATMUL_SHAPES = [(64, 64, 64, False), (256, 256, 256, False), (1024, 1024, 1024, False),
                 (32, 128, 128, False), (32, 128, 128, True), (64, 256, 256, False), (64, 256, 256, True)]
MATMUL_SHAPES_QUICK = [(64, 64, 64, False), (256, 256, 256, False), (32, 128, 128, True),
                       (64, 256, 256, True)]


MATMUL_SHAPES_SMOKE = [(64, 64, 64, False), (32, 128, 128, True)]


def matmul_cases(mode: str = "full") -> list[Case]:
    if mode == "smoke":
        return [matmul_case(F32, *shape, t) for shape in MATMUL_SHAPES_SMOKE for t in THREADS]
    if mode == "quick":  # n = 1024 in float32 only
        return [matmul_case(dtype, *shape, t) for dtype in (F32, F64)
                for shape in MATMUL_SHAPES_QUICK + [(1024, 1024, 1024, False)] * (dtype == F32) for t in THREADS]
    return [matmul_case(dtype, *shape, t) for dtype in (F32, F64) for shape in MATMUL_SHAPES for t in THREADS]


# ---- tanh --------------------------------------------------------------------------------------------

@lru_cache(maxsize=2)  # 4M normal draws take a while; every implementation reads the same (read-only) array
def _tanh_input(size: int, dtype) -> np.ndarray:
    # pre-activation-like values, spanning the polynomial range and the saturated tails
    return (_rng(size, np.dtype(dtype).itemsize).standard_normal(size) * 3).astype(dtype)


def ulp_error(y: np.ndarray, x: np.ndarray) -> float:
    """Largest error of ``y ≈ tanh(x)`` in units in the last place of y's dtype, against a long double
    tanh (checked on at most 65,536 evenly spaced elements)."""
    step = max(1, x.size // 65536)
    xs, ys = x[::step], y[::step]
    ref = np.tanh(xs.astype(np.longdouble))
    ulp = np.spacing(np.abs(ref.astype(ys.dtype))).astype(np.longdouble)
    return float(np.max(np.abs(ys.astype(np.longdouble) - ref) / ulp))


def _check_tanh(size: int, dtype) -> Callable[[str, Any], None]:
    def check(impl: str, result: Any) -> None:
        y = as_numpy(result)
        assert y.shape == (size,) and y.dtype == dtype, f"{impl}: got {y.dtype}{y.shape}"
        err = ulp_error(y, _tanh_input(size, dtype))
        limit = 2.0 if impl == "minigrad" else 4.0  # the bound for minigrad; peers: sanity only
        assert err <= limit, f"{impl}: tanh error {err:.2f} ulp > {limit}"
    return check


def tanh_case(dtype, size: int, nthreads: int) -> Case:
    name = {F32: "f32", F64: "f64"}[dtype]
    label = f"{size // 1024 ** 2}M" if size >= 1024 ** 2 else f"{size // 1024}K"

    def minigrad_impl():
        x = mg.tensor(_tanh_input(size, dtype))
        return x.tanh

    def numpy_impl():
        x = _tanh_input(size, dtype)
        return lambda: np.tanh(x)

    def torch_impl():
        x = torch.from_numpy(_tanh_input(size, dtype))
        return lambda: torch.tanh(x)

    return Case(id=f"tanh-{name}-{label}-{nthreads}t", family="tanh",
                title=f"tanh {name} {label} elements, {nthreads} thread{'s' * (nthreads > 1)}",
                impls={"minigrad": minigrad_impl, "numpy": numpy_impl, "torch": torch_impl},
                check=_check_tanh(size, dtype), threads=nthreads, work=float(size), unit="Gelem/s",
                meta={"dtype": name, "size": size, "label": label})


TANH_SIZES = [1 << 10, 1 << 14, 1 << 18, 1 << 22]


def tanh_cases(mode: str = "full") -> list[Case]:
    if mode == "smoke":
        return [tanh_case(F32, 1 << 14, t) for t in THREADS]
    sizes = [1 << 10, 1 << 18, 1 << 22] if mode == "quick" else TANH_SIZES
    return [tanh_case(dtype, s, t) for dtype in (F32, F64) for s in sizes for t in THREADS]


# ---- engine overhead ---------------------------------------------------------------------------------

CHAIN_PAIRS = 2000  # (mul by a scalar, tanh) pairs: 4,000 graph nodes
CHAIN_SCALE = 1.01


def _engine_add_case() -> Case:
    a0 = _rng(1, 4).standard_normal((1, 4)).astype(F32)
    b0 = _rng(4, 1).standard_normal((1, 4)).astype(F32)

    def minigrad_impl():
        a, b = mg.tensor(a0, requires_grad=True), mg.tensor(b0)
        return lambda: a + b

    def torch_impl():
        a, b = torch.tensor(a0, requires_grad=True), torch.tensor(b0)
        return lambda: a + b

    def check(impl: str, result: Any) -> None:
        assert result.requires_grad, f"{impl}: the sum of a tensor requiring grad must require grad"
        np.testing.assert_array_equal(as_numpy(result), a0 + b0, err_msg=impl)

    return Case(id="engine-add-1x4", family="engine", title="engine: forward add of two (1, 4) f32 tensors "
                "(one requires grad)", impls={"minigrad": minigrad_impl, "torch": torch_impl}, check=check,
                meta={"what": "add"})


def _chain_reference(x0: np.ndarray) -> np.ndarray:
    """d sum(y) / dx of y = tanh(c * ... tanh(c * x)), in float64."""
    y, grad = x0.astype(F64), np.ones_like(x0, dtype=F64)
    for _ in range(CHAIN_PAIRS):
        y = np.tanh(CHAIN_SCALE * y)
        grad *= CHAIN_SCALE * (1 - y * y)
    return grad


def _engine_chain_case() -> Case:
    x0 = _rng(2, 4).standard_normal((1, 4)).astype(F32)

    def chain_impl(make_leaf):
        """The same code on either library: only the leaf's constructor differs."""
        def build():
            x = make_leaf(x0)

            def run():
                x.grad = None
                y = x
                for _ in range(CHAIN_PAIRS):
                    y = (y * CHAIN_SCALE).tanh()
                y.sum().backward()
                return x.grad
            return run
        return build

    def check(impl: str, result: Any) -> None:
        np.testing.assert_allclose(as_numpy(result), _chain_reference(x0), rtol=1e-3, err_msg=impl)

    return Case(id="engine-chain-4000", family="engine",
                title=f"engine: forward+backward of a {2 * CHAIN_PAIRS}-node chain (mul by a scalar, tanh)",
                impls={"minigrad": chain_impl(lambda a: mg.tensor(a, requires_grad=True)),
                       "torch": chain_impl(lambda a: torch.tensor(a, requires_grad=True))}, check=check,
                per=2 * CHAIN_PAIRS, per_what="node", meta={"what": "chain"})


def engine_cases(mode: str = "full") -> list[Case]:
    return [_engine_add_case(), _engine_chain_case()]


# ---- recurrent training step (RNN, LSTM, GRU) ---------------------------------------------------------

@dataclass(frozen=True)
class RNNConfig:
    batch: int
    steps: int
    inputs: int
    hidden: int
    layers: int
    bidirectional: bool

    @property
    def label(self) -> str:
        kind = f"{self.layers} layer{'s' * (self.layers > 1)}" + (" bidirectional" if self.bidirectional else "")
        return f"B={self.batch} T={self.steps} I={self.inputs} H={self.hidden}, {kind}"

    @property
    def key(self) -> str:
        return (f"B{self.batch}T{self.steps}I{self.inputs}H{self.hidden}L{self.layers}"
                + ("bi" if self.bidirectional else ""))

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


RNN_CONFIGS = [RNNConfig(32, 64, 64, 128, 1, False), RNNConfig(32, 64, 64, 128, 2, True),
               RNNConfig(64, 128, 128, 256, 2, True)]
RNN_SMOKE_CONFIG = RNNConfig(4, 8, 8, 16, 1, False)
RNN_LR = 0.01
RNN_THREADS = 2          # every library, JAX included (bench/report.py limits the CPU affinity to match)
RNN_MIN_LOOPS = 10       # steps per timed block: waking threads and clocks amortised as in a training loop
RECURRENT = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}  # kind -> the class in torch.nn / minigrad.nn
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def step_flops(kind: str, cfg: RNNConfig) -> float:
    """Floating-point operations of the matrix products in one training step (2 per multiply-add);
    elementwise work (activations, biases, the loss, SGD) is left out, so the time they imply is a bound.

    For each layer and direction, with G = 4 H (LSTM), 3 H (GRU) or H gate columns and I the layer's input
    width: forward, the input projection of all T steps (T·B × I @ I × G) and T - 1 recurrent products
    (B × H @ H × G; the first step's state is zero); backward, W_ih's gradient (I × T·B @ T·B × G), the
    input's gradient (T·B × G @ G × I) except in the first layer (the data needs none), the state's gradient
    through W_hh and W_hh's gradient, T - 1 steps each.
    """
    g = GATES[kind] * cfg.hidden
    rows = cfg.steps * cfg.batch
    rec = (cfg.steps - 1) * cfg.batch
    total = 0.0
    for layer in range(cfg.layers):
        width = cfg.inputs if layer == 0 else cfg.directions * cfg.hidden
        projections = 2 if layer == 0 else 3       # forward, W_ih's gradient (and the input's)
        total += cfg.directions * (projections * 2.0 * rows * width * g + 3 * 2.0 * rec * cfg.hidden * g)
    return total


def _rnn_data(kind: str, cfg: RNNConfig) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Initial weights (torch's initialisation, seeded, float64), input (T, B, I) and the loss's weights w
    of ``(out * w).sum()``."""
    torch.manual_seed(cfg.hidden * 31 + cfg.layers + 7 * GATES[kind])
    ref = getattr(torch.nn, RECURRENT[kind])(cfg.inputs, cfg.hidden, cfg.layers,
                                             bidirectional=cfg.bidirectional, dtype=torch.float64)
    state = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    rng = _rng(cfg.batch, cfg.steps, cfg.hidden)
    x = rng.standard_normal((cfg.steps, cfg.batch, cfg.inputs))
    w = rng.standard_normal((cfg.steps, cfg.batch, cfg.directions * cfg.hidden)) * 0.01
    return state, x, w


# The loss on top of the output: the step must not depend on it (issue 16).  "wsum" weighs every element
# differently, so a gradient landing in the wrong place fails the check; "sum" feeds the backward a
# broadcast gradient of ones; "mse" is one fused node in both libraries.
LOSSES = {"wsum": "(out * w).sum()", "sum": "out.sum()", "mse": "mse_loss(out, target)"}
LOSS_VARIANTS = ("sum", "mse")           # timed besides "wsum" for LSTM and GRU at the first configuration


def _loss_operand(cfg: RNNConfig, loss: str, w: np.ndarray) -> np.ndarray:
    """The array the loss reads besides the output: w for "wsum", the target for "mse" (ignored by "sum")."""
    if loss == "mse":
        return _rng(cfg.batch, cfg.steps, cfg.hidden, 2).standard_normal(w.shape) * 0.5
    return w


def _loss(loss: str, mse_loss: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``loss(out, operand)`` written the same way in either library (``mse_loss`` is the library's)."""
    if loss == "sum":
        return lambda out, _: out.sum()
    if loss == "mse":
        return mse_loss
    return lambda out, w: (out * w).sum()


def _torch_rnn_step(kind: str, cfg: RNNConfig, dtype, loss: str = "wsum"):
    """A torch.nn.RNN/LSTM/GRU training step with the case's weights; returns (loss, named parameters)."""
    state, x0, w0 = _rnn_data(kind, cfg)
    td = TORCH_DTYPE[dtype]
    model = getattr(torch.nn, RECURRENT[kind])(cfg.inputs, cfg.hidden, cfg.layers,
                                               bidirectional=cfg.bidirectional, dtype=td)
    model.load_state_dict({k: torch.tensor(v, dtype=td) for k, v in state.items()})
    opt = torch.optim.SGD(model.parameters(), lr=RNN_LR)
    x, w = torch.tensor(x0, dtype=td), torch.tensor(_loss_operand(cfg, loss, w0), dtype=td)
    loss_fn = _loss(loss, torch.nn.functional.mse_loss)
    params = dict(model.named_parameters())

    def step():
        opt.zero_grad()
        out, _ = model(x)
        value = loss_fn(out, w)
        value.backward()
        opt.step()
        return value, params
    return step


CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def _torch_cell_step(kind: str, cfg: RNNConfig, dtype):
    """The same network as torch.nn.RNN / LSTM / GRU, unrolled by hand over torch's RNNCell / LSTMCell /
    GRUCell: one cell per (layer, direction), the per-step graph that minigrad records.  An LSTM cell
    carries (h, c); only h goes into the layer's output."""
    state, x0, w0 = _rnn_data(kind, cfg)
    td = TORCH_DTYPE[dtype]
    cells, params = [], {}
    for layer in range(cfg.layers):
        row = []
        for suffix in ("", "_reverse")[:cfg.directions]:
            width = cfg.inputs if layer == 0 else cfg.directions * cfg.hidden
            cell = CELLS[kind](width, cfg.hidden, dtype=td)
            for weight in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                name = f"{weight}_l{layer}{suffix}"
                with torch.no_grad():
                    getattr(cell, weight).copy_(torch.tensor(state[name]))
                params[name] = getattr(cell, weight)
            row.append(cell)
        cells.append(row)
    opt = torch.optim.SGD(list(params.values()), lr=RNN_LR)
    x, w = torch.tensor(x0, dtype=td), torch.tensor(w0, dtype=td)
    zeros = torch.zeros(cfg.batch, cfg.hidden, dtype=td)
    state0 = (zeros, zeros) if kind == "lstm" else zeros

    def step():
        opt.zero_grad()
        inp = x
        for row in cells:
            xs, outs = inp.unbind(0), []
            for direction, cell in enumerate(row):
                seq, hx = [None] * cfg.steps, state0
                for t in (range(cfg.steps - 1, -1, -1) if direction else range(cfg.steps)):
                    hx = cell(xs[t], hx)
                    seq[t] = hx[0] if kind == "lstm" else hx
                outs.append(torch.stack(seq))
            inp = torch.cat(outs, 2) if len(outs) == 2 else outs[0]
        loss = (inp * w).sum()
        loss.backward()
        opt.step()
        return loss, params
    return step


def _minigrad_rnn_step(kind: str, cfg: RNNConfig, dtype, loss: str = "wsum"):
    state, x0, w0 = _rnn_data(kind, cfg)
    model = getattr(mnn, RECURRENT[kind])(cfg.inputs, cfg.hidden, cfg.layers, bidirectional=cfg.bidirectional,
                                          dtype=dtype)
    model.load_state_dict(state)
    opt = mg.optim.SGD(model.parameters(), lr=RNN_LR)
    x, w = mg.tensor(x0.astype(dtype)), mg.tensor(_loss_operand(cfg, loss, w0).astype(dtype))
    loss_fn = _loss(loss, mF.mse_loss)
    params = dict(model.named_parameters())

    def step():
        opt.zero_grad()
        out, _ = model(x)
        value = loss_fn(out, w)
        value.backward()
        opt.step()
        return value, params
    return step


LSTM_PARAMETERS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def _core_ops_lstm_step(lib: str, cfg: RNNConfig, dtype):
    """A one-layer LSTM as a user writes it from core ops -- per step the gates product, ``chunk``, sigmoid,
    tanh, products and sums, then the outputs stacked -- with nn.LSTM's weights and parameter names, so its
    step checks against torch's nn.LSTM.  ``lib`` is "minigrad" or "torch": the same code runs on both,
    and in minigrad it takes no fused path (no nn.LSTM)."""
    if cfg.layers != 1 or cfg.bidirectional:
        raise ValueError(f"the core-ops LSTM has one unidirectional layer, not {cfg.label}")
    state, x0, w0 = _rnn_data("lstm", cfg)
    if lib == "minigrad":
        const, leaf, stack, sgd = mg.tensor, partial(mg.tensor, requires_grad=True), mg.stack, mg.optim.SGD
    else:
        const, leaf = torch.tensor, partial(torch.tensor, requires_grad=True)
        stack, sgd = torch.stack, torch.optim.SGD
    params = {name: leaf(state[name].astype(dtype)) for name in LSTM_PARAMETERS}
    w_ih, w_hh, b_ih, b_hh = params.values()
    opt = sgd(list(params.values()), lr=RNN_LR)
    x, w = const(x0.astype(dtype)), const(w0.astype(dtype))
    zeros = const(np.zeros((cfg.batch, cfg.hidden), dtype=dtype))

    def step():
        opt.zero_grad()
        h = c = zeros
        b = b_ih + b_hh
        outs = []
        for t in range(cfg.steps):
            gates = x[t] @ w_ih.T + h @ w_hh.T + b
            i, f, g, o = gates.chunk(4, dim=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
            outs.append(h)
        loss = (stack(outs) * w).sum()
        loss.backward()
        opt.step()
        return loss, params
    return step


def _jax_rnn_step(kind: str, cfg: RNNConfig, dtype):
    state, x0, w0 = _rnn_data(kind, cfg)
    return jax_peer.rnn_step(kind, cfg.layers, cfg.directions, state, x0, w0, RNN_LR, dtype)


_RNN_REFERENCE: dict[tuple[str, RNNConfig, str], tuple] = {}


@contextmanager
def _torch_one_thread() -> Iterator[None]:
    """References are computed on one thread: on a busy machine torch's idle OpenMP threads cost seconds."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def rnn_reference(kind: str, cfg: RNNConfig,
                  loss: str = "wsum") -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One float64 torch training step from the case's weights under ``loss``: (loss, gradients, updated
    weights)."""
    if (kind, cfg, loss) not in _RNN_REFERENCE:
        with _torch_one_thread():
            value, params = _torch_rnn_step(kind, cfg, F64, loss)()
        _RNN_REFERENCE[kind, cfg, loss] = (value.item(),
                                           {k: p.grad.numpy().copy() for k, p in params.items()},
                                           {k: p.detach().numpy().copy() for k, p in params.items()})
    return _RNN_REFERENCE[kind, cfg, loss]


def _close(actual, expected, dtype, what: str) -> None:
    actual, expected = np.asarray(actual, dtype=F64), np.asarray(expected, dtype=F64)
    # float32 against a float64 reference: relative 1e-3 of the array's scale; float64 (torch's own
    # tolerance for BPTT): 1e-9
    rtol, atol = (1e-3, 1e-4) if dtype == F32 else (1e-9, 1e-10)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def _check_rnn(kind: str, cfg: RNNConfig, dtype, loss: str = "wsum") -> Callable[[str, Any], None]:
    """Loss, every gradient and every updated weight against float64 torch: minigrad, torch, torch's cell
    loop, the core-ops LSTM and JAX pass the same check, so each peer is verified to compute what
    minigrad's step does before either is timed."""
    def check(impl: str, result: Any) -> None:
        if impl == "jax":  # (loss, gradients, updated weights) as JAX arrays
            value, grads, values = result
        else:
            value, params = result
            missing = [name for name, p in params.items() if p.grad is None]
            assert not missing, f"{impl}: no gradient for {missing}"
            grads = {name: p.grad for name, p in params.items()}
            values = params
        ref_loss, ref_grads, ref_values = rnn_reference(kind, cfg, loss)
        assert sorted(values) == sorted(ref_values), f"{impl}: parameters {sorted(values)}"
        _close(as_numpy(value), ref_loss, dtype, f"{impl}: loss")
        for name in ref_values:
            _close(as_numpy(grads[name]), ref_grads[name], dtype, f"{impl}: gradient of {name}")
            _close(as_numpy(values[name]), ref_values[name], dtype, f"{impl}: {name} after the SGD step")
    return check


def rnn_case(cfg: RNNConfig, dtype, kind: str = "rnn", loss: str = "wsum") -> Case:
    """One training step (zero_grad, forward, loss, backward, SGD) on every library, 2 threads each.
    The loss is ``(out * w).sum()``; another ``loss`` of ``LOSSES`` gives a case of minigrad and torch only
    (does the step's speed hold whatever loss sits on top?).  A recurrent layer minigrad does not have yet
    gives a case with no implementations and ``meta['unavailable']`` saying so; JAX's implementation is
    there when JAX is installed (``meta['jax_unavailable']`` says how to get it otherwise)."""
    name = {F32: "f32", F64: "f64"}[dtype]
    cls = RECURRENT[kind]
    meta = {"dtype": name, "kind": kind, "config": cfg.label, "hidden": cfg.hidden, "key": cfg.key,
            "loss": loss, "flops": step_flops(kind, cfg), "jax_unavailable": jax_peer.unavailable_reason(),
            "unavailable": None if hasattr(mnn, cls) else
            f"not available: minigrad.nn.{cls} does not exist yet"}
    impls: dict[str, Callable[[], Callable[[], Any]]] = {}
    if meta["unavailable"] is None:
        impls["minigrad"] = lambda: _minigrad_rnn_step(kind, cfg, dtype, loss)
        impls["torch"] = lambda: _torch_rnn_step(kind, cfg, dtype, loss)
        if loss == "wsum" and cfg.hidden <= 128:  # the issues compare with a cell loop at H <= 128
            impls["torch-cell"] = lambda: _torch_cell_step(kind, cfg, dtype)
        if loss == "wsum" and meta["jax_unavailable"] is None:
            impls["jax"] = lambda: _jax_rnn_step(kind, cfg, dtype)
    suffix = "" if loss == "wsum" else f"-{loss}"
    title = f"{cls} training step {name}, {cfg.label}" + ("" if loss == "wsum" else f", loss {LOSSES[loss]}")
    return Case(id=f"{kind}-{name}-{cfg.key}{suffix}", family="rnn", title=title, impls=impls,
                check=_check_rnn(kind, cfg, dtype, loss), threads=RNN_THREADS, work=meta["flops"],
                min_loops=RNN_MIN_LOOPS, meta=meta)


def core_ops_lstm_case(cfg: RNNConfig, dtype) -> Case:
    """The core-ops LSTM's training step (``_core_ops_lstm_step``, loss ``(out * w).sum()``) in minigrad,
    timed with torch's and minigrad's nn.LSTM on the same weights and the same code run by torch."""
    name = {F32: "f32", F64: "f64"}[dtype]
    meta = {"dtype": name, "kind": "core-ops-lstm", "config": cfg.label, "hidden": cfg.hidden, "key": cfg.key,
            "loss": "wsum", "flops": step_flops("lstm", cfg)}
    impls: dict[str, Callable[[], Callable[[], Any]]] = {
        "minigrad core ops": lambda: _core_ops_lstm_step("minigrad", cfg, dtype),
        "torch": lambda: _torch_rnn_step("lstm", cfg, dtype),
        "torch core ops": lambda: _core_ops_lstm_step("torch", cfg, dtype)}
    if hasattr(mnn, "LSTM"):
        impls["minigrad"] = lambda: _minigrad_rnn_step("lstm", cfg, dtype)
    return Case(id=f"corelstm-{name}-{cfg.key}", family="rnn",
                title=f"LSTM from core ops training step {name}, {cfg.label}", impls=impls,
                check=_check_rnn("lstm", cfg, dtype), threads=RNN_THREADS, work=meta["flops"],
                min_loops=RNN_MIN_LOOPS, meta=meta)


def rnn_cases(mode: str = "full") -> list[Case]:
    """Every kind at every configuration and dtype; at the first configuration also LSTM and GRU under the
    other losses and the core-ops LSTM.  ``quick``: the first configuration in float32; ``smoke``: the
    same cases on a tiny network."""
    configs, dtypes = {"smoke": ([RNN_SMOKE_CONFIG], (F32,)), "quick": (RNN_CONFIGS[:1], (F32,))}.get(
        mode, (RNN_CONFIGS, (F32, F64)))
    first = configs[0]
    out = [rnn_case(cfg, dtype, kind) for kind in RECURRENT for dtype in dtypes for cfg in configs]
    out += [rnn_case(first, dtype, kind, loss) for kind in ("lstm", "gru") for dtype in dtypes
            for loss in LOSS_VARIANTS]
    out += [core_ops_lstm_case(first, dtype) for dtype in dtypes]
    return out


# ---- truncated BPTT ----------------------------------------------------------------------------------

TBPTT = {"batch": 16, "inputs": 16, "hidden": 64, "window": 32, "data_windows": 16}
TBPTT_LATE = 200    # windows run before the "late" measurements start
TBPTT_LR = 0.01


def _tbptt_streams() -> np.ndarray:
    """(data_windows * window + 1, B, I) time-major streams: noisy sines of different phases and
    frequencies.  Window w reads data window w mod data_windows: history, not data, is what grows."""
    c = TBPTT
    steps = c["data_windows"] * c["window"] + 1
    rng = _rng(7, 7)
    t = np.arange(steps)[:, None, None]
    freq = rng.uniform(0.02, 0.2, (1, c["batch"], c["inputs"]))
    phase = rng.uniform(0, 2 * np.pi, (1, c["batch"], c["inputs"]))
    return (np.sin(freq * t + phase) + 0.1 * rng.standard_normal((steps, c["batch"], c["inputs"])))


def _tbptt_state() -> dict[str, np.ndarray]:
    torch.manual_seed(11)
    model = _TorchSeq(F64)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


class _MinigradSeq(mnn.Module):
    """RNN plus a linear read-out predicting the next step."""

    def __init__(self, dtype) -> None:
        super().__init__()
        self.rnn = mnn.RNN(TBPTT["inputs"], TBPTT["hidden"], dtype=dtype)
        self.head = mnn.Linear(TBPTT["hidden"], TBPTT["inputs"], dtype=dtype)

    def forward(self, x, h=None):
        out, h = self.rnn(x, h)
        return self.head(out), h


class _TorchSeq(torch.nn.Module):
    def __init__(self, dtype) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(TBPTT["inputs"], TBPTT["hidden"], dtype=TORCH_DTYPE[dtype])
        self.head = torch.nn.Linear(TBPTT["hidden"], TBPTT["inputs"], dtype=TORCH_DTYPE[dtype])

    def forward(self, x, h=None):
        out, h = self.rnn(x, h)
        return self.head(out), h


def _window_slice(streams: np.ndarray, w: int) -> np.ndarray:
    k = TBPTT["window"]
    start = (w % TBPTT["data_windows"]) * k
    return streams[start:start + k + 1]


class WindowRunner:
    """Each call trains on the next window and returns its loss; ``position`` counts the windows done.
    The hidden state is carried over, detached, from one call to the next."""

    def __init__(self, step: Callable[[np.ndarray | torch.Tensor, Any], tuple[float, Any]], streams) -> None:
        self._step, self._streams = step, streams
        self.position, self._h = 0, None

    def __call__(self) -> float:
        loss, self._h = self._step(_window_slice(self._streams, self.position), self._h)
        self.position += 1
        return loss

    def advance(self, windows: int) -> WindowRunner:
        """Run ``windows`` windows untimed; return self."""
        for _ in range(windows):
            self()
        return self


def minigrad_tbptt_runner(dtype=F32) -> WindowRunner:
    """Windows trained by ``minigrad.tbptt.run`` (k1 = k2 = window, one update per call)."""
    model = _MinigradSeq(dtype)
    model.load_state_dict(_tbptt_state())
    opt = mg.optim.SGD(model.parameters(), lr=TBPTT_LR)

    def step(data, h):
        losses, h = tbptt.run(model, mF.mse_loss, data, TBPTT["window"], optimizer=opt, h=h)
        return losses[0], h
    return WindowRunner(step, _tbptt_streams().astype(dtype))


def torch_tbptt_runner(dtype=F32) -> WindowRunner:
    """The same training written out in torch."""
    model = _TorchSeq(dtype)
    model.load_state_dict({k: torch.tensor(v) for k, v in _tbptt_state().items()})
    opt = torch.optim.SGD(model.parameters(), lr=TBPTT_LR)

    def step(data, h):
        out, h = model(data[:-1], h)
        loss = torch.nn.functional.mse_loss(out, data[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item(), h.detach()
    return WindowRunner(step, torch.tensor(_tbptt_streams(), dtype=TORCH_DTYPE[dtype]))


_TBPTT_REFERENCE: list[float] = []


def tbptt_reference(windows: int) -> list[float]:
    """Losses of the first ``windows`` windows, float64 torch (cached)."""
    if len(_TBPTT_REFERENCE) < windows:
        with _torch_one_thread():
            run = torch_tbptt_runner(F64)
            _TBPTT_REFERENCE[:] = [run() for _ in range(windows)]
    return _TBPTT_REFERENCE[:windows]


def tbptt_case(late: int = TBPTT_LATE, rounds: int = 12) -> Case:
    """Time per window at early positions (windows 1, 2, ...) and late ones (after ``late`` windows), for
    minigrad, plus torch's early windows for scale."""
    def check(impl: str, result: Any) -> None:
        position = late if impl == "minigrad late" else 1
        expected = tbptt_reference(position + 1)[position]
        assert math.isfinite(result), f"{impl}: loss {result}"
        np.testing.assert_allclose(result, expected, rtol=1e-3, err_msg=f"{impl}: loss of window {position}")

    c = TBPTT
    return Case(id="tbptt-window", family="tbptt",
                title=f"truncated BPTT f32: one window (k={c['window']}, B={c['batch']}, I={c['inputs']}, "
                      f"H={c['hidden']}), early vs after {late} windows",
                impls={"minigrad early": lambda: minigrad_tbptt_runner().advance(1),
                       "minigrad late": lambda: minigrad_tbptt_runner().advance(late),
                       "torch early": lambda: torch_tbptt_runner().advance(1)},
                check=check, fixed_rounds=rounds, per_what="window", meta={"late": late})


def tbptt_cases(mode: str = "full") -> list[Case]:
    late, rounds = {"smoke": (3, 2), "quick": (30, 6)}.get(mode, (TBPTT_LATE, 16))
    return [tbptt_case(late=late, rounds=rounds)]


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def tbptt_memory(late: int = TBPTT_LATE, windows: int = 5) -> dict[str, Any]:
    """Memory of TBPTT windows early (windows 1..) and late (after ``late`` windows), minigrad f32.

    For each measured window tracemalloc runs from the window's start to its end (numpy registers its
    buffers with it): ``peak`` is the most the window had allocated at once, ``retained`` what it left
    allocated.  A graph kept alive from window to window would show as retained memory and a peak that
    grows with the position.  The process RSS after each phase is recorded too.
    """
    run = minigrad_tbptt_runner()
    run()  # window 0: first-call caches
    phases = {}
    for phase, start in (("early", 1), ("late", late)):
        run.advance(start - run.position)
        peaks, retained = [], []
        for _ in range(windows):
            tracemalloc.start()
            run()
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            peaks.append(peak)
            retained.append(current)
        phases[phase] = {"first_window": start, "peak": int(np.median(peaks)),
                         "retained": int(np.median(retained)), "rss": _rss()}
    phases["windows"] = windows
    return phases


# ---- everything --------------------------------------------------------------------------------------

FAMILIES = {"matmul": matmul_cases, "tanh": tanh_cases, "engine": engine_cases, "rnn": rnn_cases,
            "tbptt": tbptt_cases}


def all_cases(mode: str = "full", families: list[str] | None = None) -> list[Case]:
    return [case for fam in (families or FAMILIES) for case in FAMILIES[fam](mode)]
