"""Text for character-level models: the default corpus, checked file reading and a character vocabulary.

The default corpus is the Python standard library's own source code, found at run time through
``sysconfig`` -- every Python installation carries several megabytes of it, so the demo trains on real text
with nothing downloaded and nothing shipped.
"""
from __future__ import annotations

import os
import stat
import sysconfig
import zlib
from pathlib import Path

import numpy as np

from minigrad.serialization import file_kind

__all__ = ["CharVocab", "read_text", "split_interleaved", "stdlib_corpus"]


def stdlib_corpus(max_chars: int = 2_000_000) -> str:
    """Up to ``max_chars`` characters of the standard library's top-level ``*.py`` files.

    The files come in a fixed pseudo-random order (by the CRC-32 of their names), so a prefix samples the
    whole library rather than the modules starting with "a" to "l".  Only pure-ASCII files are used, which
    keeps the vocabulary to about 100 characters; generated modules (``_sysconfigdata*``) are skipped.

    Raises:
        FileNotFoundError: when this Python ships no standard-library sources (some minimal or frozen
            installations keep only ``.pyc`` files).
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.glob("*.py"), key=lambda p: (zlib.crc32(p.name.encode()), p.name)):
        if path.name.startswith("_sysconfigdata") or total >= max_chars:
            continue
        try:
            text = path.read_bytes().decode("ascii")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(text)
        total += len(text)
    if not parts:
        raise FileNotFoundError(f"no Python standard-library sources found in {root}; "
                                "pass a text file instead")
    return "".join(parts)[:max_chars]


# Larger texts are refused: the demo holds the whole text, its ids and its vocabulary in memory.
MAX_TEXT_BYTES = 1 << 30



def read_text(path: str | os.PathLike) -> str:
    """The contents of a UTF-8 text file, with one-line errors for what is not one.

    The file is opened without blocking and checked once open (so it cannot be swapped in between): a named
    pipe would block the open for ever and a device such as /dev/zero never ends, so only regular files are
    read, and only up to ``MAX_TEXT_BYTES``.

    Raises:
        FileNotFoundError: the file does not exist (or is a dangling symbolic link).
        ValueError: it is a directory, not a regular file, larger than ``MAX_TEXT_BYTES``, empty, binary
            (contains NUL bytes) or not valid UTF-8.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if p.is_dir():
        raise ValueError(f"{path} is a directory, not a text file")
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is {file_kind(st.st_mode)}, not a text file")
        if st.st_size > MAX_TEXT_BYTES:
            raise ValueError(f"{path} has {st.st_size:,} bytes; texts of at most {MAX_TEXT_BYTES:,} bytes are "
                             "read (the whole text is held in memory)")
        data = f.read(MAX_TEXT_BYTES + 1)  # a file that grows while it is read stops at the limit too
    if len(data) > MAX_TEXT_BYTES:
        raise ValueError(f"{path} grew past {MAX_TEXT_BYTES:,} bytes while it was read")
    if not data:
        raise ValueError(f"{path} is empty")
    if b"\0" in data:
        raise ValueError(f"{path} looks like a binary file (it contains NUL bytes); expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (invalid byte at offset {e.start})") from None


def split_interleaved(ids: np.ndarray, fraction: float, blocks: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(train, held out): cut ``ids`` into ``blocks`` equal blocks and hold out the last ``fraction`` of each.

    Held-out text drawn from all over the corpus measures the model on text like what it trains on; the
    corpus's last 10% alone could be one unusual file.
    """
    bounds = np.linspace(0, len(ids), blocks + 1).astype(int)
    train, held = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        cut = b - int((b - a) * fraction)
        train.append(ids[a:cut])
        held.append(ids[cut:b])
    return np.concatenate(train), np.concatenate(held)


class CharVocab:
    """The sorted distinct characters of a text, with ``encode`` (str -> int ids) and ``decode``."""

    def __init__(self, chars: str) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError("CharVocab: characters must be distinct")
        self.chars = chars
        self._codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)
        self._order = np.argsort(self._codes)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int64 ids of ``text``; raises ValueError naming the first character that is not in the vocab."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        pos = np.searchsorted(self._codes, codes, sorter=self._order)
        pos = np.minimum(pos, len(self._codes) - 1)
        ids = self._order[pos]
        unknown = self._codes[ids] != codes
        if unknown.any():
            bad = chr(codes[np.argmax(unknown)])
            raise ValueError(f"character {bad!r} is not in the vocabulary ({len(self)} characters)")
        return ids.astype(np.int64)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        return "".join(self.chars[i] for i in np.asarray(ids).reshape(-1))

    def to_array(self) -> np.ndarray:
        """The characters as uint32 code points, for storing in a checkpoint without pickle."""
        return self._codes.copy()

    @classmethod
    def from_array(cls, codes: np.ndarray) -> CharVocab:
        return cls("".join(chr(c) for c in np.asarray(codes, dtype=np.uint32)))
