"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay (torch's rule)."""
from __future__ import annotations

import numpy as np

from minigrad.optim.optimizer import Optimizer, ParamsT


class SGD(Optimizer):
    """``p -= lr * d`` where, per step, with g = grad (+ weight_decay * p):

        buf = g (first step)  or  buf = momentum * buf + (1 - dampening) * g
        d = g + momentum * buf  (nesterov)  or  d = buf  (momentum > 0)  or  d = g

    Args: ``params`` (parameters or group dicts), ``lr=1e-3``, ``momentum=0``, ``dampening=0``,
    ``weight_decay=0``, ``nesterov=False``, ``maximize=False`` (ascend instead).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    def step(self) -> None:
        with np.errstate(all="ignore"):  # inf gradients make inf or nan parameters, as in torch: no warning
            self._step()

    def _step(self) -> None:
        for group, p, state in self._params_with_grad():
            momentum = group["momentum"]
            d = -p.grad.data if group["maximize"] else p.grad.data
            if group["weight_decay"] != 0:
                d = d + group["weight_decay"] * p.data
            if momentum != 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = d.copy()
                else:
                    buf *= momentum
                    buf += (1 - group["dampening"]) * d
                d = d + momentum * buf if group["nesterov"] else buf
            data = p.data
            data -= group["lr"] * d
