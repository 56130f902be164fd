"""Checkpoints: ``save(obj, path)`` and ``load(path)``.

What can be saved: tensors, numpy arrays and scalars, Python ``None``/bool/int/float/str, and any nesting of
dicts (str, int, float, bool or None keys), lists and tuples of those -- so a Module's ``state_dict()``, an
optimiser's ``state_dict()`` and a training config all fit, alone or in one dict.

The file is an ordinary ``.npz`` archive read with ``allow_pickle=False``: every array is one ``.npy`` member,
and the nesting is a JSON document in the member ``__minigrad__``.  Loading never runs code from the file.

Writing is atomic: the archive goes to a temporary file in the destination's directory, is flushed to disk,
and only then renamed over ``path``.  A crash or a full disk mid-save leaves the previous checkpoint intact
(a process killed outright may leave its ``.NAME.*.tmp`` file behind; nothing ever reads it).
Loading reads and CRC-checks every member before returning, so a truncated or corrupted file raises
``CheckpointError`` (naming the file and the problem) instead of giving a partial result; loading into a model
with ``load_state_dict`` therefore happens only once the whole file has been read.
"""
from __future__ import annotations

import json
import os
import secrets
from collections import OrderedDict
from typing import Any, Union

import numpy as np

from minigrad.tensor import Tensor

__all__ = ["CheckpointError", "load", "save"]

PathLike = Union[str, "os.PathLike[str]"]

_FORMAT = "minigrad-checkpoint"
_VERSION = 1
_STRUCTURE = "__minigrad__"
# numpy dtype kinds stored as they are: bool, signed and unsigned int, float, complex.
_ARRAY_KINDS = "biufc"
_KEY_TYPES = (str, int, float, bool, type(None))


class CheckpointError(ValueError):
    """A file that is not a readable minigrad checkpoint: truncated, corrupted, or written by something
    else."""


# ---- save ----------------------------------------------------------------------------------------------
def save(obj: Any, path: PathLike) -> None:
    """Write ``obj`` to ``path`` (exactly that name; no suffix is added) as an ``.npz`` checkpoint.

    Raises ``TypeError`` naming the offending entry (e.g. ``obj['state'][0]``) for anything that cannot be
    stored without pickling -- a Module, a set, an object array -- before touching the file system.
    """
    path = _check_path(path, "save")
    arrays: dict[str, np.ndarray] = {}
    root = _encode(obj, arrays, "obj", set())
    doc = json.dumps({"format": _FORMAT, "version": _VERSION, "root": root})
    arrays[_STRUCTURE] = np.array(doc)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: directory {directory!r} does not exist")
    # O_EXCL with a random name: never clobber another writer's temporary file; mode 0o666 lets the umask
    # decide the final permissions, as for any newly created file.
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); Windows cannot open directories and needs no such step."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str, active: set[int]) -> Any:
    """The JSON node for ``obj``; arrays go into ``arrays`` under fresh names.

    Scalars are stored as themselves; everything else is a dict whose ``"k"`` names its kind.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, Tensor):
        kind = "param" if _is_parameter(obj) else "tensor"
        return {"k": kind, "a": _add_array(obj.data, arrays, where), "grad": bool(obj.requires_grad)}
    if isinstance(obj, np.ndarray):
        return {"k": "array", "a": _add_array(obj, arrays, where)}
    if isinstance(obj, np.generic):
        return {"k": "scalar", "a": _add_array(np.asarray(obj), arrays, where)}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise ValueError(f"save: {where} contains itself; a checkpoint cannot hold a cycle")
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = []
                for key, value in obj.items():
                    if not isinstance(key, _KEY_TYPES) or isinstance(key, np.generic):
                        raise TypeError(f"save: {where} has a key of type {type(key).__name__}; keys must "
                                        "be str, int, float, bool or None")
                    items.append([key, _encode(value, arrays, f"{where}[{key!r}]", active)])
                return {"k": "odict" if isinstance(obj, OrderedDict) else "dict", "v": items}
            kind = "list" if isinstance(obj, list) else "tuple"
            return {"k": kind, "v": [_encode(v, arrays, f"{where}[{i}]", active) for i, v in enumerate(obj)]}
        finally:
            active.discard(id(obj))
    hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
    raise TypeError(f"save: cannot store {where} of type {type(obj).__name__} without pickling{hint}")


def _add_array(arr: np.ndarray, arrays: dict[str, np.ndarray], where: str) -> str:
    if arr.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(f"save: cannot store {where}: arrays of dtype {arr.dtype} need pickling; only bool, "
                        "integer, float and complex arrays are saved")
    name = f"a{len(arrays)}"
    arrays[name] = arr
    return name


def _is_parameter(t: Tensor) -> bool:
    from minigrad.nn import Parameter  # nn imports the core, not the other way round
    return isinstance(t, Parameter)


# ---- load ----------------------------------------------------------------------------------------------
def load(path: PathLike) -> Any:
    """Read a checkpoint written by ``save``: the same nesting, with tensors (Parameters stay Parameters),
    arrays and scalars restored with their dtypes and shapes.

    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` for a file that is truncated,
    corrupted, not an ``.npz`` archive, or an archive minigrad did not write.
    """
    path = _check_path(path, "load")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{path!r} is not a minigrad checkpoint: it holds a single .npy array, not "
                                  "an .npz archive")
        with npz:
            names = set(npz.files)
            if _STRUCTURE not in names:
                raise CheckpointError(f"{path!r} is an .npz archive but not a minigrad checkpoint (it has no "
                                      f"{_STRUCTURE!r} entry)")
            doc = _read_structure(npz[_STRUCTURE], path)
            # Read every member now: the CRC check happens while reading, so corruption surfaces here.
            arrays = {name: npz[name] for name in names - {_STRUCTURE}}
    except (FileNotFoundError, IsADirectoryError, PermissionError, CheckpointError):
        raise
    except Exception as e:  # a damaged file can fail anywhere in zipfile's or numpy's parsers
        raise CheckpointError(f"{path!r} is truncated, corrupted or not a minigrad checkpoint: "
                              f"{type(e).__name__}: {e}") from e
    used: set[str] = set()
    try:
        obj = _Decoder(arrays, used, path).decode(doc["root"])
    except RecursionError:
        raise CheckpointError(f"{path!r} is corrupted: its structure is nested too deeply") from None
    if used != set(arrays):
        raise CheckpointError(f"{path!r} is corrupted: its structure does not use the entries "
                              f"{sorted(set(arrays) - used)}")
    return obj


def _read_structure(entry: np.ndarray, path: str) -> dict[str, Any]:
    if entry.dtype.kind != "U" or entry.shape != ():
        raise CheckpointError(f"{path!r} is corrupted: its {_STRUCTURE!r} entry is not a JSON string")
    try:
        doc = json.loads(entry.item())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path!r} is corrupted: its structure is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or "root" not in doc:
        raise CheckpointError(f"{path!r} is not a minigrad checkpoint: unexpected structure header")
    version = doc.get("version")
    if not isinstance(version, int) or version > _VERSION:
        raise CheckpointError(f"{path!r} has checkpoint format version {version!r}; this minigrad reads "
                              f"versions up to {_VERSION}: upgrade minigrad")
    return doc


class _Decoder:
    """Rebuilds the saved object from its JSON nodes, refusing anything ``_encode`` could not have written."""

    def __init__(self, arrays: dict[str, np.ndarray], used: set[str], path: str) -> None:
        self.arrays = arrays
        self.used = used
        self.path = path

    def bad(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.path!r} is corrupted: {problem}")

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or "k" not in node:
            raise self.bad(f"unexpected structure node {node!r:.80}")
        kind = node["k"]
        if kind in ("list", "tuple"):
            items = [self.decode(v) for v in self._list(node)]
            return items if kind == "list" else tuple(items)
        if kind in ("dict", "odict"):
            out = OrderedDict() if kind == "odict" else {}
            for item in self._list(node):
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], _KEY_TYPES)):
                    raise self.bad(f"malformed dict item {item!r:.80}")
                out[item[0]] = self.decode(item[1])
            return out
        if kind in ("tensor", "param"):
            return self._tensor(node, kind)
        if kind == "array":
            return self._array(node)
        if kind == "scalar":
            arr = self._array(node)
            if arr.shape != ():
                raise self.bad(f"scalar entry {node['a']!r} has shape {arr.shape}")
            return arr[()]
        raise self.bad(f"unknown node kind {kind!r}")

    def _list(self, node: dict[str, Any]) -> list[Any]:
        items = node.get("v")
        if not isinstance(items, list):
            raise self.bad(f"{node['k']} node without a list of items")
        return items

    def _array(self, node: dict[str, Any]) -> np.ndarray:
        name = node.get("a")
        if not isinstance(name, str) or name not in self.arrays:
            raise self.bad(f"it refers to a missing array entry {name!r}")
        if name in self.used:
            raise self.bad(f"array entry {name!r} is referred to twice")
        self.used.add(name)
        arr = self.arrays[name]
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise self.bad(f"array entry {name!r} has dtype {arr.dtype}")
        return arr

    def _tensor(self, node: dict[str, Any], kind: str) -> Tensor:
        arr = self._array(node)
        if arr.dtype not in (np.float32, np.float64) or not arr.dtype.isnative:
            raise self.bad(f"tensor entry {node['a']!r} has dtype {arr.dtype}, not float32/float64")
        requires_grad = node.get("grad")
        if not isinstance(requires_grad, bool):
            raise self.bad(f"tensor entry {node['a']!r} lacks its requires_grad flag")
        if kind == "param":
            from minigrad.nn import Parameter
            return Parameter(arr, requires_grad=requires_grad)
        return Tensor._from_array(arr).requires_grad_(requires_grad)


def _check_path(path: Any, fn: str) -> str:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if fn == "save" and os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a directory")
    return path
