"""Text columns with no Python object per row, so that they can be memory-mapped.

A million stores held as Python strings cost ~350 MB per process, and every read of one
bumps a reference count, which copies the page it lives on into the reading process
(forked workers then each keep their own copy). These columns keep their text in flat
numpy arrays instead, saved as ``.npy`` and mapped read-only by every process that opens
the prebuilt index (``geo_index.prebuilt``): the OS page cache holds one copy.

- ``TextColumn``: variable-length UTF-8 in one byte buffer plus offsets (names, phones).
- ``SortedKeys``: distinct strings sorted, fixed width: exact vectorised lookup by value
  (store ids, merchant ids).
- ``CodedText``: per-row codes into one of those (time zones, opening hours, tags, ids).

Merchant edits never write the shared arrays: ``set`` keeps a small per-process overlay.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

#: Joins a store's tags in one stored string (the catalogue splits tags on | and ;).
TAG_SEPARATOR = "\x1f"


class _Text:
    """Reading by position, scalar or array, through a per-process overlay of edits."""

    def __init__(self) -> None:
        self.edits: dict[int, object] = {}

    def __len__(self) -> int:
        raise NotImplementedError

    def _one(self, pos: int):
        raise NotImplementedError

    def _many(self, pos: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, pos):
        if np.ndim(pos) == 0:
            p = int(pos)
            if p < 0:
                p += len(self)
            return self.edits[p] if p in self.edits else self._one(p)
        pos = np.asarray(pos)
        pos = np.flatnonzero(pos) if pos.dtype == bool else pos.astype(np.int64, copy=False)
        out = self._many(pos) if len(pos) else np.empty(0, dtype=object)
        if self.edits:
            edits = self.edits
            for i, p in enumerate(pos.tolist()):
                if p in edits:
                    out[i] = edits[p]
        return out

    def set(self, pos: int, value) -> None:
        """This process's value for one row from now on (the shared arrays stay as they are)."""
        self.edits[int(pos)] = value


class TextColumn(_Text):
    """Strings as UTF-8 in one buffer: row ``i`` is ``data[offsets[i]:offsets[i + 1]]``;
    an empty string reads as None (every optional text is None when empty)."""

    def __init__(self, offsets: np.ndarray, data: np.ndarray):
        super().__init__()
        self.offsets = offsets
        self.data = data
        self._buf = data.data  # a memoryview: slices decode without a copy

    @classmethod
    def of(cls, values: Iterable[str | None]) -> TextColumn:
        encoded = [(v or "").encode() for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.empty(0, np.uint8)
        return cls(offsets, data)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _one(self, pos: int) -> str | None:
        a, b = int(self.offsets[pos]), int(self.offsets[pos + 1])
        return str(self._buf[a:b], "utf-8") if b > a else None

    def _many(self, pos: np.ndarray) -> np.ndarray:
        buf, starts, ends = self._buf, self.offsets[pos].tolist(), self.offsets[pos + 1].tolist()
        return _objects([str(buf[a:b], "utf-8") if b > a else None for a, b in zip(starts, ends)])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"offsets": self.offsets, "data": self.data}


class SortedKeys(_Text):
    """Distinct strings in byte order, in one fixed-width array, for exact lookup by value.

    ``find`` is one ``searchsorted`` for any number of strings. The width is the longest
    key's UTF-8 length (the catalogue caps ids at 128 characters).
    """

    def __init__(self, keys: np.ndarray):
        super().__init__()
        self.keys = keys

    @classmethod
    def build(cls, values: Sequence[str]) -> tuple[SortedKeys, np.ndarray]:
        """The sorted distinct values, and each input's code (its index among them)."""
        encoded = [v.encode() for v in values]
        width = max((len(b) for b in encoded), default=1) or 1
        raw = np.array(encoded, dtype=f"S{width}") if encoded else np.empty(0, f"S{width}")
        keys, codes = np.unique(raw, return_inverse=True)
        return cls(keys), codes.astype(np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.keys)

    def _one(self, pos: int) -> str:
        return self.keys[pos].decode()

    def _many(self, pos: np.ndarray) -> np.ndarray:
        return _objects([b.decode() for b in self.keys[pos].tolist()])

    def _fits(self, encoded: bytes) -> bool:
        # A value wider than every key is not one (and must not be truncated into one);
        # numpy drops trailing NULs, so a value ending in one cannot be stored as itself.
        return len(encoded) <= self.keys.dtype.itemsize and not encoded.endswith(b"\0")

    def find(self, values: Sequence[str]) -> np.ndarray:
        """Each value's code, -1 where it is not a key."""
        encoded = [str(v).encode() for v in values]
        fits = np.fromiter((self._fits(b) for b in encoded), bool, len(encoded))
        if not len(self.keys) or not len(encoded):
            return np.full(len(encoded), -1, dtype=np.int64)
        query = np.array([b if f else b"" for b, f in zip(encoded, fits)], dtype=self.keys.dtype)
        at = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        return np.where(fits & (self.keys[at] == query), at, -1).astype(np.int64)

    def find_one(self, value: str) -> int:
        """``find`` for one value, without building arrays (the per-request path)."""
        b = value.encode()
        if not self._fits(b):
            return -1
        i = bisect.bisect_left(self.keys, b)
        return i if i < len(self.keys) and self.keys[i] == b else -1

    def arrays(self) -> dict[str, np.ndarray]:
        return {"keys": self.keys}


class CodedText(_Text):
    """Per-row codes into a column of distinct values (-1: None); ``convert`` turns a stored
    value into what readers get (tags: a tuple)."""

    def __init__(self, codes: np.ndarray, values: TextColumn | SortedKeys, convert: Callable | None = None):
        super().__init__()
        self.codes = codes
        self.values = values
        self.convert = convert

    @classmethod
    def of(cls, values: Sequence[str | None], convert: Callable | None = None) -> CodedText:
        codes, uniques = pd.factorize(pd.Series(_objects(list(values))), use_na_sentinel=True)
        return cls(codes.astype(np.int32), TextColumn.of(uniques.tolist()), convert)

    def __len__(self) -> int:
        return len(self.codes)

    def _one(self, pos: int):
        code = int(self.codes[pos])
        value = self.values._one(code) if code >= 0 else None
        return self.convert(value) if self.convert else value

    def _many(self, pos: np.ndarray) -> np.ndarray:
        codes = self.codes[pos]
        if len(codes) > 32:  # many rows, few distinct values (zones, hours): decode each once
            uniq, inverse = np.unique(codes, return_inverse=True)
            return self._decode(uniq)[inverse.reshape(-1)]
        return self._decode(codes)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        known = codes >= 0
        if known.all():
            out = self.values._many(codes)
        else:  # -1: None (and the values may be empty)
            out = np.full(len(codes), None, dtype=object)
            out[known] = self.values._many(codes[known])
        if self.convert:
            out = _objects([self.convert(v) for v in out.tolist()])
        return out

    def rows_with(self, code: int) -> np.ndarray:
        """Positions whose stored code is ``code`` (edits do not change keyed columns)."""
        return np.flatnonzero(self.codes == code)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"codes": self.codes, **{f"values.{k}": v for k, v in self.values.arrays().items()}}


def split_tags(value: str | None) -> tuple[str, ...]:
    return tuple(value.split(TAG_SEPARATOR)) if value else ()


def join_tags(tags: Iterable[str]) -> str | None:
    return TAG_SEPARATOR.join(tags) or None


def _objects(items: list) -> np.ndarray:
    """A 1-D object array (np.array would turn a list of tuples into a 2-D array)."""
    return np.fromiter(items, dtype=object, count=len(items))
