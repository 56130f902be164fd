"""Check minigrad's nn.RNN against PyTorch's torch.nn.RNN, forward and backward, over a grid of settings.

For each of the 64 configurations (layers 1-2, one or two directions, batch_first, tanh/relu, with and
without bias, float32/float64) both modules get the same weights, input and h0.  The outputs and h_n are
compared, then a random upstream gradient is sent back through both and the gradients of the input, of h0
and of every parameter are compared.  The table shows each quantity's largest absolute difference (for the
weights, the largest over all layers and directions).  A value passes when |minigrad - torch| <= atol +
rtol * |torch|: float64 rtol 1e-9, atol 1e-10; float32 rtol 2e-4, atol 2e-5.  Exit status 1 if any fails.
"""
from __future__ import annotations

import argparse
import itertools
from typing import Any, NamedTuple

import numpy as np

import minigrad as mg
from minigrad.cli.common import CLIError, non_negative_int, positive_int_up_to

HELP = "compare nn.RNN with torch.nn.RNN (outputs and every gradient) over 64 configurations"

TOLERANCES = {"float64": (1e-9, 1e-10), "float32": (2e-4, 2e-5)}  # (rtol, atol)
COLUMNS = ["output", "h_n", "d input", "d h0", "d W_ih", "d W_hh", "d b_ih", "d b_hh"]
_PARAM_COLUMN = {"weight_ih": "d W_ih", "weight_hh": "d W_hh", "bias_ih": "d b_ih", "bias_hh": "d b_hh"}


class Config(NamedTuple):
    layers: int
    bidirectional: bool
    batch_first: bool
    nonlinearity: str
    bias: bool
    dtype: str


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


def grid() -> list[Config]:
    return [Config(*c) for c in itertools.product((1, 2), (False, True), (False, True), ("tanh", "relu"),
                                                  (True, False), ("float32", "float64"))]


def run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        raise CLIError("verify compares against PyTorch, which is not installed: pip install torch "
                       "(or pip install -e '.[test]' in a minigrad checkout)") from None
    rng = np.random.default_rng(args.seed)
    header = (f"{'layers':>6} {'dirs':>4} {'batch_first':>11} {'act':>4} {'bias':>5} {'dtype':>7}  "
              + " ".join(f"{c:>8}" for c in COLUMNS) + "  result")
    print(f"minigrad {mg.__version__} ({mg.config()['backend']}, {mg.config()['isa']}) vs torch "
          f"{torch.__version__}: L={args.length} N={args.batch} input={args.input_size} H={args.hidden}")
    print(header)
    print("-" * len(header))
    failed = 0
    configs = grid()
    for cfg in configs:
        errors = compare(cfg, rng, torch, args.length, args.batch, args.input_size, args.hidden)
        ok = all(passed for _, passed in errors.values())
        failed += not ok
        cells = []
        for column in COLUMNS:
            err, passed = errors.get(column, (None, True))
            text = "-" if err is None else f"{err:.1e}" if passed else f"!{err:.1e}"
            cells.append(f"{text:>8}")
        print(f"{cfg.layers:>6} {2 if cfg.bidirectional else 1:>4} {cfg.batch_first!s:>11} "
              f"{cfg.nonlinearity:>4} {cfg.bias!s:>5} {cfg.dtype:>7}  " + " ".join(cells)
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
    options = {"num_layers": cfg.layers, "nonlinearity": cfg.nonlinearity, "bias": cfg.bias,
               "batch_first": cfg.batch_first, "bidirectional": cfg.bidirectional}
    ours = mg.nn.RNN(input_size, hidden, dtype=np_dtype.type, **options)
    theirs = torch.nn.RNN(input_size, hidden, dtype=getattr(torch, cfg.dtype), **options)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(p.data.copy()))
    directions = 2 if cfg.bidirectional else 1
    x_shape = (batch, length, input_size) if cfg.batch_first else (length, batch, input_size)
    x = rng.standard_normal(x_shape).astype(np_dtype)
    h0 = rng.standard_normal((directions * cfg.layers, batch, hidden)).astype(np_dtype)

    mx, mh0 = mg.tensor(x, requires_grad=True), mg.tensor(h0, requires_grad=True)
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, h_n = ours(mx, mh0)
    t_out, t_h_n = theirs(tx, th0)
    g_out = rng.standard_normal(out.shape).astype(np_dtype)
    g_h = rng.standard_normal(h_n.shape).astype(np_dtype)
    ((out * mg.tensor(g_out)).sum() + (h_n * mg.tensor(g_h)).sum()).backward()
    torch.autograd.backward([t_out, t_h_n], [torch.from_numpy(g_out), torch.from_numpy(g_h)])

    rtol, atol = TOLERANCES[cfg.dtype]
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        "output": [(out.data, t_out.detach().numpy())],
        "h_n": [(h_n.data, t_h_n.detach().numpy())],
        "d input": [(mx.grad.data, tx.grad.numpy())],
        "d h0": [(mh0.grad.data, th0.grad.numpy())],
    }
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
