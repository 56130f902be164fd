"""Check minigrad's nn.RNN, nn.LSTM and nn.GRU against PyTorch's, forward and backward, over a grid.

The grid (``--cell`` picks one kind; all three by default): layers 1-2, one or two directions, batch_first,
with and without bias, float32/float64, and per kind tanh/relu (RNN) or with and without ``proj_size``
(LSTM, hidden // 2, when the hidden size allows one): 64 RNN, 64 LSTM and 32 GRU configurations.  Both
modules get the same weights, input and initial state (h0, and an LSTM's c0).  The outputs and final states
are compared, then a random upstream gradient is sent back through both and the gradients of the input, of
the initial state and of every parameter are compared.  The table shows each quantity's largest absolute
difference (for the weights, the largest over all layers and directions; "-" where a kind has no such
quantity).  A value passes when |minigrad - torch| <= atol +
rtol * |torch|: float64 rtol 1e-9, atol 1e-10; float32 rtol 2e-4, atol 2e-5.  Exit status 1 if any fails.
"""
from __future__ import annotations

import argparse
import itertools
import warnings
from typing import Any, NamedTuple

import numpy as np

import minigrad as mg
from minigrad.cli.common import CLIError, non_negative_int, positive_int_up_to

HELP = "compare nn.RNN, nn.LSTM and nn.GRU with torch's (outputs and every gradient) over 160 configurations"
CELLS = ("rnn", "lstm", "gru")
_TORCH_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}

TOLERANCES = {"float64": (1e-9, 1e-10), "float32": (2e-4, 2e-5)}  # (rtol, atol)
COLUMNS = ["output", "h_n", "c_n", "d input", "d h0", "d c0", "d W_ih", "d W_hh", "d b_ih", "d b_hh",
           "d W_hr"]
_PARAM_COLUMN = {"weight_ih": "d W_ih", "weight_hh": "d W_hh", "bias_ih": "d b_ih", "bias_hh": "d b_hh",
                 "weight_hr": "d W_hr"}


class Config(NamedTuple):
    layers: int
    bidirectional: bool
    batch_first: bool
    nonlinearity: str  # the RNN's; "-" for LSTM and GRU
    bias: bool
    dtype: str
    cell: str = "rnn"
    proj: bool = False  # an LSTM's proj_size = hidden // 2


# A check of correctness, not of scale: at the limits the whole grid takes about a minute and a few hundred
# MiB (each configuration's arrays exist in minigrad and in torch, with their gradients).
LIMITS = {"length": 64, "batch": 16, "input_size": 128, "hidden": 128}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=non_negative_int, metavar="N", default=0,
                        help="seed for weights, inputs and upstream gradients")
    for name, default, what in (("length", 5, "sequence length"), ("batch", 3, "batch size"),
                                ("input_size", 3, "input features"), ("hidden", 4, "hidden size")):
        parser.add_argument("--" + name.replace("_", "-"), type=positive_int_up_to(LIMITS[name]), metavar="N",
                            default=default, help=f"{what} (default {default}, at most {LIMITS[name]})")
    parser.add_argument("--cell", choices=(*CELLS, "all"), default="all",
                        help="which module to check (default all)")


def grid(cell: str = "all", hidden: int = 4) -> list[Config]:
    """The configurations of ``cell`` ("rnn", "lstm", "gru" or "all"); an LSTM projects only when
    ``hidden`` > 1 leaves room for a smaller proj_size."""
    shared = list(itertools.product((1, 2), (False, True), (False, True)))
    tail = list(itertools.product((True, False), ("float32", "float64")))
    configs = []
    for kind in CELLS if cell == "all" else (cell,):
        variants = {"rnn": [("tanh", False), ("relu", False)],
                    "lstm": [("-", False), ("-", True)] if hidden > 1 else [("-", False)],
                    "gru": [("-", False)]}[kind]
        configs += [Config(*s, act, *t, kind, proj) for s in shared for act, proj in variants for t in tail]
    return configs


def run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        raise CLIError("verify compares against PyTorch, which is not installed: pip install torch "
                       "(or pip install -e '.[test]' in a minigrad checkout)") from None
    rng = np.random.default_rng(args.seed)
    header = (f"{'cell':>4} {'layers':>6} {'dirs':>4} {'batch_first':>11} {'act':>4} {'proj':>4} {'bias':>5} "
              f"{'dtype':>7}  "
              + " ".join(f"{c:>8}" for c in COLUMNS) + "  result")
    print(f"minigrad {mg.__version__} ({mg.config()['backend']}, {mg.config()['isa']}) vs torch "
          f"{torch.__version__}: L={args.length} N={args.batch} input={args.input_size} H={args.hidden}")
    print(header)
    print("-" * len(header))
    failed = 0
    configs = grid(args.cell, args.hidden)
    for cfg in configs:
        errors = compare(cfg, rng, torch, args.length, args.batch, args.input_size, args.hidden)
        ok = all(passed for _, passed in errors.values())
        failed += not ok
        cells = []
        for column in COLUMNS:
            err, passed = errors.get(column, (None, True))
            text = "-" if err is None else f"{err:.1e}" if passed else f"!{err:.1e}"
            cells.append(f"{text:>8}")
        proj = args.hidden // 2 if cfg.proj else "-"
        print(f"{cfg.cell:>4} {cfg.layers:>6} {2 if cfg.bidirectional else 1:>4} {cfg.batch_first!s:>11} "
              f"{cfg.nonlinearity:>4} {proj:>4} {cfg.bias!s:>5} {cfg.dtype:>7}  " + " ".join(cells)
              + ("  ok" if ok else "  FAIL"))
    print("-" * len(header))
    tol = "; ".join(f"{d} rtol {r:g} atol {a:g}" for d, (r, a) in TOLERANCES.items())
    if failed:
        print(f"{failed} of {len(configs)} configurations differ from torch beyond tolerance ({tol}); "
              "'!' marks the failing values")
        return 1
    print(f"all {len(configs)} configurations agree with torch ({tol})")
    return 0


def compare(cfg: Config, rng: np.random.Generator, torch: Any, length: int, batch: int, input_size: int,
            hidden: int) -> dict[str, tuple[float, bool]]:
    """Run one configuration in both libraries; column -> (max abs difference, within tolerance)."""
    np_dtype = np.dtype(cfg.dtype)
    options = {"num_layers": cfg.layers, "bias": cfg.bias, "batch_first": cfg.batch_first,
               "bidirectional": cfg.bidirectional}
    if cfg.cell == "rnn":
        options["nonlinearity"] = cfg.nonlinearity
    if cfg.proj:
        options["proj_size"] = hidden // 2
    name = _TORCH_NAMES[cfg.cell]
    ours = getattr(mg.nn, name)(input_size, hidden, dtype=np_dtype.type, **options)
    theirs = getattr(torch.nn, name)(input_size, hidden, dtype=getattr(torch, cfg.dtype), **options)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(p.data.copy()))
    directions = 2 if cfg.bidirectional else 1
    x_shape = (batch, length, input_size) if cfg.batch_first else (length, batch, input_size)
    x = rng.standard_normal(x_shape).astype(np_dtype)
    rows = directions * cfg.layers
    states = [rng.standard_normal((rows, batch, options.get("proj_size", hidden))).astype(np_dtype)]
    if cfg.cell == "lstm":
        states.append(rng.standard_normal((rows, batch, hidden)).astype(np_dtype))

    mx, tx = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ms = [mg.tensor(s, requires_grad=True) for s in states]
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    out, final = ours(mx, tuple(ms) if cfg.cell == "lstm" else ms[0])
    with warnings.catch_warnings():  # torch's notice that its LSTM with proj_size runs without oneDNN
        warnings.filterwarnings("ignore", "LSTM with projections is not supported", UserWarning)
        t_out, t_final = theirs(tx, tuple(ts) if cfg.cell == "lstm" else ts[0])
    finals, t_finals = (list(final), list(t_final)) if cfg.cell == "lstm" else ([final], [t_final])
    ours_out, theirs_out = [out, *finals], [t_out, *t_finals]
    upstream = [rng.standard_normal(t.shape).astype(np_dtype) for t in ours_out]
    sum((t * mg.tensor(g)).sum() for t, g in zip(ours_out, upstream)).backward()
    torch.autograd.backward(theirs_out, [torch.from_numpy(g) for g in upstream])

    rtol, atol = TOLERANCES[cfg.dtype]
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"output": [(out.data, t_out.detach().numpy())],
                                                             "d input": [(mx.grad.data, tx.grad.numpy())]}
    for i, (m, t, ms_i, ts_i) in enumerate(zip(finals, t_finals, ms, ts)):
        pairs[("h_n", "c_n")[i]] = [(m.data, t.detach().numpy())]
        pairs[("d h0", "d c0")[i]] = [(ms_i.grad.data, ts_i.grad.numpy())]
    for name, p in ours.named_parameters():  # e.g. weight_hh_l1_reverse -> "d W_hh"
        column = _PARAM_COLUMN[name.rsplit("_l", 1)[0]]
        pairs.setdefault(column, []).append((p.grad.data, getattr(theirs, name).grad.numpy()))
    result = {}
    for column, items in pairs.items():
        if any(a.shape != b.shape for a, b in items):
            result[column] = (float("inf"), False)
            continue
        err = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in items)
        result[column] = (err, all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in items))
    return result
