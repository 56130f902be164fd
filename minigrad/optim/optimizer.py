"""The Optimizer base: parameter groups, per-parameter state, ``zero_grad`` and state dicts (torch's layout).

An optimiser reads ``p.grad`` and updates ``p.data`` (the numpy storage) in place, so an update is never
recorded in the autograd graph; each update counts as an in-place change of ``p`` (its version goes up), so
a retained graph that saved ``p`` refuses to backward through the old values.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

import numpy as np

from minigrad.autograd.versions import bump_version
from minigrad.nn.utils import zero_grad_
from minigrad.tensor import Tensor

ParamsT = Union[Iterable[Tensor], Iterable[dict[str, Any]]]


class Optimizer:
    """Base class: keeps ``param_groups`` (dicts of ``params`` plus hyper-parameters, missing ones taken from
    ``defaults``) and ``state`` (a dict per parameter).  Subclasses implement ``step``."""

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, (Tensor, set, frozenset)):
            # a set's order changes between runs, and a state dict refers to parameters by position
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or "
                            f"dicts, but got {type(params).__name__}")
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, with its own hyper-parameters where given."""
        params = param_group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the "
                            "ordering of tensors in sets will change between runs. Please use a list "
                            "instead.")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError("some parameters appear more than once (in one group or in several groups)")
        group = dict(self.defaults)
        group.update(param_group)
        group["params"] = params
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default) or to zeros in place."""
        zero_grad_((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define step()")

    def _params_with_grad(self):
        """(group, parameter, its state dict) for every parameter that has a gradient; once the step has
        updated a parameter (when the loop asks for the next one), its version is bumped."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self.state.setdefault(p, {})
                    bump_version(p.data)

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as
        ``{'state': {index: {name: value}}, 'param_groups': [{hyper-parameters, 'params': [index, ...]}]}``.

        Parameters are referred to by their position across all groups, as in torch; arrays are copies.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict`` (arrays may be any array-likes)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        by_index = {}
        for group, saved in zip(self.param_groups, saved_groups):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                                 "of optimizer's group")
            by_index.update(zip(saved["params"], group["params"]))
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, entries in state_dict["state"].items():
            if idx not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {idx!r}, which no group lists")
            p = by_index[idx]
            new_state[p] = {k: _restore_value(k, v, p) for k, v in entries.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        lines.append(")")
        return "\n".join(lines)


def _restore_value(key: str, value: Any, p: Tensor) -> Any:
    """A state entry as this optimiser keeps it: ``step`` an int, buffers arrays shaped and typed like
    ``p``."""
    if value is None:
        return None
    if key == "step":
        return int(float(np.asarray(value)))
    arr = np.array(value.data if isinstance(value, Tensor) else np.asarray(value), dtype=p.dtype)
    if arr.shape != p.shape:
        raise ValueError(f"state {key!r} has shape {arr.shape} but its parameter has shape {p.shape}")
    return arr
