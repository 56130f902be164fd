"""Module, Parameter and the two containers (ModuleList, Sequential).

A ``Module`` finds its parameters and submodules by attribute assignment, exactly like PyTorch: assigning a
``Parameter`` registers it under that name, assigning a ``Module`` registers a child, and ``named_parameters``
walks the tree giving torch's dotted names (``layers.0.weight``).  A state dict maps those names to arrays,
so the same dictionary loads into a minigrad model or, through ``torch.from_numpy``, into the equivalent torch
one.
"""
from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict, namedtuple
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable

import numpy as np

from minigrad.nn.utils import zero_grad_
from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that a ``Module`` registers as one of its parameters (``requires_grad=True`` by default).

    ``Parameter(data)`` copies ``data`` (array-like or Tensor) into new float32/float64 storage.
    """

    def __init__(self, data: Any, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``handle.remove()`` (or leaving a ``with handle:`` block)
    unregisters the hook.  It holds the hook table weakly, so a handle does not keep its module alive."""

    _ids = itertools.count()

    def __init__(self, hooks: OrderedDict) -> None:
        self.id = next(RemovableHandle._ids)
        self._hooks = weakref.ref(hooks)

    def remove(self) -> None:
        hooks = self._hooks()
        if hooks is not None:
            hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign their parameters and submodules as attributes and
    implement ``forward``; calling the module calls ``forward``.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        # id -> (hook, with_kwargs), in call order
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook, with_kwargs in list(self._forward_hooks.values()):
                out = hook(self, args, kwargs, result) if with_kwargs else hook(self, args, result)
                if out is not None:
                    result = out
        return result

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every ``forward`` of this module (with ``with_kwargs``:
        ``hook(module, args, kwargs, output)``); a hook that returns something other than None replaces the
        output.  Hooks run in registration order (``prepend`` puts this one first).  Returns a handle whose
        ``remove()`` unregisters it."""
        if not callable(hook):
            raise TypeError(f"forward hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = (hook, with_kwargs)
        if prepend:
            self._forward_hooks.move_to_end(handle.id, last=False)
        return handle

    # ---- registration ------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError("cannot assign attributes before Module.__init__() call")
        modules = self.__dict__["_modules"]
        buffers = self.__dict__["_buffers"]
        if isinstance(value, Parameter):
            self._forget(name, params)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, modules)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(minigrad.nn.Parameter or None expected)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(minigrad.nn.Module or None expected)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(minigrad.Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, i.e. for registered parameters and submodules.
        d = self.__dict__
        if "_parameters" in d and name in d["_parameters"]:
            return d["_parameters"][name]
        if "_modules" in d and name in d["_modules"]:
            return d["_modules"][name]
        if "_buffers" in d and name in d["_buffers"]:
            return d["_buffers"][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, a declared but absent parameter such as a disabled bias)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(minigrad.nn.Parameter or None required)")
        if "." in name or name == "":
            raise KeyError(f'parameter name must be a non-empty string without ".", got {name!r}')
        self._forget(name, self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register ``tensor`` as a buffer: state that is not a parameter (no gradient, not in
        ``parameters()``) but is converted by ``to()`` and, if ``persistent``, saved in ``state_dict()``."""
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        if name not in self._buffers and (name in self.__dict__ or name in self._parameters
                                          or name in self._modules or hasattr(type(self), name)):
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(minigrad Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as a child called ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if "." in name or name == "":
            raise KeyError(f'module name must be a non-empty string without ".", got {name!r}')
        self._forget(name, self._modules)
        self._modules[name] = module

    def _forget(self, name: str, keep: OrderedDict) -> None:
        """Drop ``name`` from every table but ``keep`` (where it is about to be (re)assigned, keeping its
        place in the order) before it is registered as something else."""
        self.__dict__.pop(name, None)
        for table in (self._parameters, self._modules, self._buffers):
            if table is not keep:
                table.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    # ---- traversal ---------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """Every module in the tree (this one first, then depth-first in registration order) with its dotted
        name; a module reachable by several paths is listed once unless ``remove_duplicate`` is False."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module.named_children()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in registration order; a shared parameter is listed once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (mod_name + "." + name if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs in registration order, persistent or not; a shared one is listed once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, module in modules:
            for name, b in module._buffers.items():
                if b is None or id(b) in seen:
                    continue
                seen.add(id(b))
                yield (mod_name + "." + name if mod_name else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on this module."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- dtype conversion --------------------------------------------------------------------------
    def to(self, dtype: Any) -> Module:
        """Convert every parameter, gradient and buffer to ``dtype`` (float32 or float64), in place; also
        ``to(tensor)`` (that tensor's dtype).  As in torch, each Parameter stays the same object and gets new
        storage (``p.data``), so optimisers built before keep updating it."""
        if isinstance(dtype, Tensor):
            dtype = dtype.dtype
        try:
            target = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"nn.Module.to expects a dtype (minigrad.float32 or minigrad.float64) or a "
                            f"Tensor, got {dtype!r}") from None
        if target.kind != "f":
            raise TypeError("nn.Module.to only accepts floating point or complex dtypes, but got desired "
                            f"dtype={target}")
        if target not in (np.float32, np.float64):
            raise TypeError(f"minigrad tensors are float32 or float64, got desired dtype={target}")
        for module in self.modules():
            for p in module._parameters.values():
                if p is None or p.dtype == target:
                    continue
                p.data = p.data.astype(target)
                if p.grad is not None:
                    p.grad.data = p.grad.data.astype(target)
            for name, b in module._buffers.items():
                if b is not None and b.dtype != target:
                    module._buffers[name] = b.to(target)
        return self

    def float(self) -> Module:
        """``to(minigrad.float32)``."""
        return self.to(np.float32)

    def double(self) -> Module:
        """``to(minigrad.float64)``."""
        return self.to(np.float64)

    # ---- modes and gradients -----------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active) on this module and all submodules."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")  # noqa: TRY004 (torch's type)
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: the same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None by default, else to zeros in place)."""
        zero_grad_(self.parameters(), set_to_none)

    # ---- state dict --------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """An ordered mapping from every parameter's and persistent buffer's dotted name to a detached tensor
        sharing its storage (per module: parameters, then buffers, then the submodules, as torch orders it).

        Shared parameters appear under each name that reaches them, as in torch.  ``np.asarray(v)`` or
        ``v.numpy()`` gives the array; ``torch.from_numpy(v.numpy())`` makes the torch value.
        """
        out = OrderedDict()
        for mod_name, module in self.named_modules(remove_duplicate=False):
            for name, p in module._parameters.items():
                if p is not None:
                    out[(mod_name + "." + name) if mod_name else name] = p.detach()
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers_set:
                    out[(mod_name + "." + name) if mod_name else name] = b.detach()
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into this module's parameters and persistent buffers (in place, cast
        to their dtype).

        Values may be minigrad tensors, numpy arrays, torch tensors or any array-like.  Every key's shape must
        match; with ``strict`` the key sets must also be equal.  Nothing is copied unless every check passes:
        the errors are collected into one ``RuntimeError``, as torch does.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            if unexpected:
                errors.append(f"Unexpected key(s) in state_dict: {_quoted(unexpected)}. ")
            if missing:
                errors.append(f"Missing key(s) in state_dict: {_quoted(missing)}. ")
        arrays = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            arr = _as_array(state_dict[key])
            if arr.dtype.kind not in "fiu":
                errors.append(f"value for {key} has dtype {arr.dtype}; expected a real numeric array")
            elif arr.shape != target.shape:
                errors.append(f"size mismatch for {key}: copying a param with shape {tuple(arr.shape)} from "
                              f"checkpoint, the shape in current model is {tuple(target.shape)}.")
            else:
                arrays[key] = arr
        if errors:
            details = "\n\t".join(errors)
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t{details}")
        for key, arr in arrays.items():
            np.copyto(own[key].data, arr, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ---- printing ----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr``; subclasses describe their configuration."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([extra] if extra else []) + lines
        return "{}(\n  {}\n)".format(type(self).__name__, "\n  ".join(body))


def _as_array(value: Any) -> np.ndarray:
    """A state-dict value as an array.  A torch tensor that requires grad (``model.named_parameters()``)
    refuses ``np.asarray``, so it is detached first (found by its ``detach`` method: no torch import)."""
    if isinstance(value, Tensor):
        return value.data
    detach = getattr(value, "detach", None)
    return np.asarray(value if detach is None else detach())


def _quoted(keys: list[str]) -> str:
    return ", ".join(f'"{k}"' for k in keys)


class ModuleList(Module):
    """A list of submodules, registered under the names ``"0"``, ``"1"``, ... (indexable like a list)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, idx: int) -> str:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        return str(idx % n)

    def __getitem__(self, idx: int | slice) -> Module | ModuleList:
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[self._index(idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(self._index(idx), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(items):
            self.add_module(str(i), m)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(); iterate over it and call its modules")


class Sequential(Module):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``.

    Built from positional modules (named ``"0"``, ``"1"``, ...) or from one ``OrderedDict`` of named modules.
    """

    def __init__(self, *modules: Module | dict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def __getitem__(self, idx: int | slice) -> Module | Sequential:
        items = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return items[idx]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x
