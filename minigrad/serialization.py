"""Checkpoints: ``save(obj, path)`` and ``load(path)``.

What can be saved: tensors, numpy arrays and scalars, Python ``None``/bool/int/float/str, and any nesting of
dicts (str, int, float, bool or None keys), lists and tuples of those -- so a Module's ``state_dict()``, an
optimiser's ``state_dict()`` and a training config all fit, alone or in one dict.

The file is an ordinary ``.npz`` archive (``numpy.load`` reads it): every array is one ``.npy`` member, and
the nesting is a JSON document in the member ``__minigrad__``.  Loading accepts only bool, integer, float,
complex (and the structure's string) arrays, so it never unpickles or runs code from the file.

Writing is atomic: the archive goes to a temporary file in the destination's directory, is flushed to disk,
and only then renamed over the destination.  A crash or a full disk mid-save leaves the previous checkpoint
intact (a process killed outright may leave its ``.NAME.*.tmp`` file behind; nothing ever reads it).  The
destination is what ``path`` names after following every symbolic link, so a link such as ``latest.npz ->
ckpt_100.npz`` stays a link and its target is replaced; a file that already exists keeps its permission bits
(and, where the process may set them, its owner and group).  Anything there that is not a regular file -- a
directory, a named pipe, a socket, a device -- is refused before anything is written.  (A hard link to the
old file keeps the old contents, as with any atomic replace.)

Loading reads and CRC-checks every member before returning, so a truncated or corrupted file raises
``CheckpointError`` (naming the file and the problem) instead of giving a partial result; loading into a model
with ``load_state_dict`` therefore happens only once the whole file has been read.  Before memory is
allocated for a member, the sizes it declares (in the zip directory and in its ``.npy`` header) are checked
against the file, so a small crafted file cannot make ``load`` allocate gigabytes.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import stat
import zipfile
from collections import OrderedDict
from typing import Any, Union

import numpy as np

from minigrad.tensor import Tensor

__all__ = ["CheckpointError", "load", "save"]

PathLike = Union[str, "os.PathLike[str]"]

_FORMAT = "minigrad-checkpoint"
_VERSION = 1
_STRUCTURE = "__minigrad__"
_TENSOR_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.bool_))
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
    target, existing = _save_target(path)
    directory = os.path.dirname(target)
    # O_EXCL with a random name: never clobber another writer's temporary file; mode 0o666 lets the umask
    # decide the permissions of a new file, as for any newly created file.
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        if existing is not None:
            _copy_owner_and_mode(tmp, fd, existing)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _save_target(path: str) -> tuple[str, os.stat_result | None]:
    """The file ``save(obj, path)`` would replace and its current status (None if it does not exist yet).

    Symbolic links are followed to the end of their chain (a dangling link names the file to create).
    Raises -- without writing or opening anything, so a named pipe cannot block -- ``IsADirectoryError`` for
    a directory, ``OSError`` for any other file that is not a regular file, and ``FileNotFoundError`` when
    the directory it would go in does not exist.
    """
    target = os.path.realpath(path)
    via = "" if target == os.path.abspath(path) else f" (through symbolic links: {target!r})"
    try:
        st = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is None:
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"save: directory {directory!r} does not exist")
        return target, None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"save: {path!r} is a directory{via}")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"save: {path!r} is {file_kind(st.st_mode)}{via}; a checkpoint only replaces a regular "
                      "file, so nothing was written")
    return target, st


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, from its ``st_mode``: "a named pipe (FIFO)", ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _copy_owner_and_mode(tmp: str, fd: int, old: os.stat_result) -> None:
    """Give the new file the permission bits of the one it replaces (a 0600 checkpoint stays private), and
    its owner and group where this process may set them."""
    if hasattr(os, "fchown"):
        new = os.fstat(fd)
        if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
            try:
                os.fchown(fd, old.st_uid, old.st_gid)
            except PermissionError:  # only root may give a file away; the group may still be one of ours
                try:
                    os.fchown(fd, -1, old.st_gid)
                except PermissionError:
                    pass
    os.chmod(tmp, stat.S_IMODE(old.st_mode))  # after chown, which clears the set-id bits


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
# A deflate stream cannot expand by more than 1032:1 (a 258-byte match in two bits), plus one last match.
_DEFLATE_MAX_RATIO = 1032
_READ_CHUNK = 1 << 24  # read array data in pieces: no second full-size copy in a bytes object


def load(path: PathLike) -> Any:
    """Read a checkpoint written by ``save``: the same nesting, with tensors (Parameters stay Parameters),
    arrays and scalars restored with their dtypes and shapes.

    Raises ``FileNotFoundError`` for a missing file, ``CheckpointError`` for a file that is truncated,
    corrupted, not an ``.npz`` archive, or an archive minigrad did not write, and ``MemoryError`` naming the
    array and its size when a valid checkpoint does not fit in memory.  Every size the file declares (zip
    entries, array headers) is checked against the file before memory is allocated for it, so a small
    crafted file cannot make ``load`` allocate much more than the file could hold.
    """
    path = _check_path(path, "load")
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # opening a named pipe would block
            raise CheckpointError(f"{path!r} is not a minigrad checkpoint: it is {file_kind(mode)}")
        with open(path, "rb") as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
                raise CheckpointError(f"{path!r} is not a minigrad checkpoint: it holds a single .npy array, "
                                      "not an .npz archive")
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                reader = _Reader(archive, os.fstat(f.fileno()).st_size, path)
                if _STRUCTURE not in reader.members:
                    raise CheckpointError(f"{path!r} is an .npz archive but not a minigrad checkpoint (it "
                                          f"has no {_STRUCTURE!r} entry)")
                doc = _read_structure(reader.read(_STRUCTURE, "its structure entry", "biufcU"), path)
                # Decoding reads every entry the structure uses, CRC-checked, so corruption surfaces here.
                obj = _Decoder(reader, path).decode(doc["root"], "obj")
                unused = set(reader.members) - reader.used - {_STRUCTURE}
    except (FileNotFoundError, IsADirectoryError, PermissionError, CheckpointError):
        raise
    except MemoryError as e:
        if str(e):
            raise
        raise MemoryError(f"load: out of memory reading {path!r}") from None
    except RecursionError:
        raise CheckpointError(f"{path!r} is corrupted: its structure is nested too deeply") from None
    except Exception as e:  # a damaged file can fail anywhere in zipfile's or numpy's parsers
        raise CheckpointError(f"{path!r} is truncated, corrupted or not a minigrad checkpoint: "
                              f"{type(e).__name__}: {e}") from e
    if unused:
        raise CheckpointError(f"{path!r} is corrupted: its structure does not use the entries "
                              f"{sorted(unused)}")
    return obj


class _Reader:
    """The ``.npy`` entries of an open archive, read one at a time after checking their declared sizes."""

    def __init__(self, archive: zipfile.ZipFile, file_size: int, path: str) -> None:
        self.archive = archive
        self.file_size = file_size
        self.path = path
        self.members: dict[str, zipfile.ZipInfo] = {}
        self.used: set[str] = set()
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise self.bad(f"entry {info.filename!r} is not an .npy array")
            self.members[info.filename[:-4]] = info

    def bad(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.path!r} is corrupted: {problem}")

    def read(self, name: str, where: str, kinds: str = _ARRAY_KINDS) -> np.ndarray:
        """Entry ``name`` (the array at ``where`` in the saved object) as an array of one of ``kinds``."""
        info = self.members[name]
        self._check_entry_size(info, name)
        with self.archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise self.bad(f"entry {name!r} is in .npy format version {version}, which save never writes")
            if dtype.kind not in kinds:
                raise self.bad(f"array entry {name!r} has dtype {dtype}")
            if any(n < 0 for n in shape):
                raise self.bad(f"array entry {name!r} declares the shape {shape}")
            nbytes = math.prod(shape) * dtype.itemsize
            held = info.file_size - f.tell()
            if nbytes != held:
                raise self.bad(f"array entry {name!r} declares {_describe(shape, dtype, nbytes)}, but the "
                               f"entry holds {held:,} bytes of data")
            try:
                buf = np.empty(nbytes, np.uint8)
            except MemoryError:
                raise MemoryError(f"load: not enough memory for {where} in {self.path!r}: "
                                  f"{_describe(shape, dtype, nbytes)}") from None
            view = memoryview(buf)
            done = 0
            while done < nbytes:
                chunk = f.read(min(_READ_CHUNK, nbytes - done))
                if not chunk:
                    raise self.bad(f"array entry {name!r} ends after {done:,} of its {nbytes:,} bytes")
                view[done:done + len(chunk)] = chunk
                done += len(chunk)
            f.read()  # the end of the entry: zipfile checks its CRC here
        self.used.add(name)
        return buf.view(dtype).reshape(shape, order="F" if fortran else "C")

    def _check_entry_size(self, info: zipfile.ZipInfo, name: str) -> None:
        """The zip entry's declared sizes must fit in the file (and its compression) before any reading."""
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.bad(f"entry {name!r} uses zip compression method {info.compress_type}, which numpy "
                           "never writes")
        if info.header_offset + info.compress_size > self.file_size:
            raise self.bad(f"entry {name!r} declares {info.compress_size:,} bytes at offset "
                           f"{info.header_offset:,}, past the end of the {self.file_size:,}-byte file")
        if info.compress_type == zipfile.ZIP_STORED:
            limit = info.compress_size
        else:
            limit = info.compress_size * _DEFLATE_MAX_RATIO + 258
        if info.file_size > limit:
            raise self.bad(f"entry {name!r} declares {info.file_size:,} bytes of data, more than its "
                           f"{info.compress_size:,} stored bytes can hold")


def _describe(shape: tuple[int, ...], dtype: np.dtype, nbytes: int) -> str:
    return f"an array of shape {shape} and dtype {dtype} ({nbytes:,} bytes, {nbytes / 2**30:.3g} GiB)"


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
    """Rebuilds the saved object from its JSON nodes, refusing anything ``_encode`` could not have written.

    ``where`` names the node as ``_encode`` does (``obj['model']['rnn.weight_hh_l0']``) for error messages.
    """

    def __init__(self, reader: _Reader, path: str) -> None:
        self.reader = reader
        self.path = path

    def bad(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.path!r} is corrupted: {problem}")

    def decode(self, node: Any, where: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or "k" not in node:
            raise self.bad(f"unexpected structure node {node!r:.80}")
        kind = node["k"]
        if kind in ("list", "tuple"):
            items = [self.decode(v, f"{where}[{i}]") for i, v in enumerate(self._list(node))]
            return items if kind == "list" else tuple(items)
        if kind in ("dict", "odict"):
            out = OrderedDict() if kind == "odict" else {}
            for item in self._list(node):
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], _KEY_TYPES)):
                    raise self.bad(f"malformed dict item {item!r:.80}")
                out[item[0]] = self.decode(item[1], f"{where}[{item[0]!r}]")
            return out
        if kind in ("tensor", "param"):
            return self._tensor(node, kind, where)
        if kind == "array":
            return self._array(node, where)
        if kind == "scalar":
            arr = self._array(node, where)
            if arr.shape != ():
                raise self.bad(f"scalar entry {node['a']!r} has shape {arr.shape}")
            return arr[()]
        raise self.bad(f"unknown node kind {kind!r}")

    def _list(self, node: dict[str, Any]) -> list[Any]:
        items = node.get("v")
        if not isinstance(items, list):
            raise self.bad(f"{node['k']} node without a list of items")
        return items

    def _array(self, node: dict[str, Any], where: str) -> np.ndarray:
        name = node.get("a")
        if not isinstance(name, str) or name == _STRUCTURE or name not in self.reader.members:
            raise self.bad(f"it refers to a missing array entry {name!r}")
        if name in self.reader.used:
            raise self.bad(f"array entry {name!r} is referred to twice")
        return self.reader.read(name, where)

    def _tensor(self, node: dict[str, Any], kind: str, where: str) -> Tensor:
        arr = self._array(node, where)
        if arr.dtype not in _TENSOR_DTYPES or not arr.dtype.isnative:
            raise self.bad(f"tensor entry {node['a']!r} has dtype {arr.dtype}, not one of minigrad's "
                           "(float32, float64, int64, int32, bool)")
        requires_grad = node.get("grad")
        if not isinstance(requires_grad, bool) or (requires_grad and arr.dtype.kind != "f"):
            raise self.bad(f"tensor entry {node['a']!r} lacks a valid requires_grad flag")
        if kind == "param":
            from minigrad.nn import Parameter
            return Parameter(arr, requires_grad=requires_grad)
        return Tensor._from_array(arr).requires_grad_(requires_grad)


def _check_path(path: Any, fn: str) -> str:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)
