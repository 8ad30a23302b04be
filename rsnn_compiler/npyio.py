"""Reading ``.npz`` archives and ``.npy`` members from untrusted files, never unbounded.

Every member's ``.npy`` header (shape, dtype) is read and checked before its data: the dtype
must be a real number or boolean (no objects, no complex, no strings, no records), the declared
byte count must match the member's size, and it must fit the memory budget
(``rsnn_compiler.budget``) together with the members read before it. Compressed members that
inflate like a zip bomb are refused from their zip header, before any decompression. No pickle.
Every problem is one ``UserInputError`` line naming the file and member.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import IO, Iterable

import numpy as np
from numpy.lib import format as npformat

from rsnn_compiler.budget import require_plausible_inflation, require_within_budget
from rsnn_compiler.errors import UserInputError

NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float
NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 16
_KIND_NAMES = {"c": "complex", "O": "object", "U": "text", "S": "bytes", "V": "record",
               "M": "datetime", "m": "timedelta"}


def _header(fp: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            return npformat.read_array_header_1_0(fp, max_header_size=MAX_HEADER)
        if version in ((2, 0), (3, 0)):
            return npformat.read_array_header_2_0(fp, max_header_size=MAX_HEADER)
    except (ValueError, SyntaxError, TypeError, EOFError, OSError, zlib.error) as exc:
        raise UserInputError(f"{where}: not a valid .npy array ({str(exc).splitlines()[0][:120]});"
                             " write it with numpy.save / numpy.savez") from None
    raise UserInputError(f"{where}: .npy format version {version} is not supported; write it with numpy.save")


def check_numeric_dtype(dtype: np.dtype, where: str) -> None:
    """Only booleans and real numbers are data (complex values would lose their imaginary part)."""
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        kind = _KIND_NAMES.get(dtype.kind, str(dtype))
        raise UserInputError(f"{where} has dtype {dtype} ({kind}); store real numbers (float, int or bool)")


def read_npy(fp: IO[bytes], size: int, where: str, already: int = 0) -> np.ndarray:
    """One ``.npy`` array from ``fp`` whose total length is ``size`` bytes, checked before reading
    (``already``: bytes the caller holds from earlier members, counted against the budget)."""
    shape, fortran, dtype = _header(fp, where)
    check_numeric_dtype(dtype, where)
    count = math.prod(int(s) for s in shape)
    nbytes = count * dtype.itemsize
    header_len = fp.tell() if hasattr(fp, "tell") else None
    if header_len is not None and size - header_len != nbytes:
        raise UserInputError(
            f"{where}: header declares shape {tuple(shape)} of {dtype} ({nbytes} bytes) but the member holds"
            f" {size - header_len} bytes of data; the file is truncated or forged, write it again"
        )
    require_within_budget(already + nbytes, where if not already else f"{where} (with the arrays before it)")
    buf = bytearray(nbytes)
    try:
        got = fp.readinto(memoryview(buf)) if nbytes else 0
    except (zlib.error, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserInputError(f"{where}: corrupt compressed data ({str(exc)[:120]}); write the file again") from None
    if got != nbytes:
        raise UserInputError(f"{where}: data ends after {got} of {nbytes} bytes; the file is truncated")
    arr = np.frombuffer(buf, dtype=dtype)
    return arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)


class NpzReader:
    """An opened ``.npz`` (zip of ``.npy``) whose members are read under the memory budget."""

    def __init__(self, path: str | Path, what: str = "file"):
        self.path = Path(path)
        self.what = what
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(NPY_MAGIC))
            self.zf = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise UserInputError(f"{what} {self.path} not found") from None
        except IsADirectoryError:
            raise UserInputError(f"{what} {self.path} is a directory, not a file") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, OverflowError) as exc:
            hint = (" (it is a single .npy array: save with numpy.savez(file, x=...) instead of numpy.save)"
                    if head == NPY_MAGIC else "")
            raise UserInputError(f"{what} {self.path} is malformed or truncated: not a .npz (zip) archive{hint} ({str(exc)[:100]})") from None
        self.used = 0

    def __enter__(self) -> "NpzReader":
        return self

    def __exit__(self, *exc) -> None:
        self.zf.close()

    def members(self) -> list[str]:
        """Array names (member names without ``.npy``)."""
        return [n[:-4] if n.endswith(".npy") else n for n in self.zf.namelist()]

    def info(self, member: str) -> zipfile.ZipInfo | None:
        try:
            return self.zf.getinfo(member)
        except KeyError:
            return None

    def read_bytes(self, member: str, limit: int) -> bytes:
        """A small non-array member (e.g. JSON) of at most ``limit`` bytes."""
        where = f"{self.path}: {member}"
        info = self.info(member)
        if info is None:
            raise UserInputError(f"{self.path} has no member '{member}'; the file is not what it claims")
        if info.file_size > limit:
            raise UserInputError(f"{where} is {info.file_size} bytes, more than the {limit} allowed")
        try:
            with self.zf.open(info) as fp:
                return fp.read(limit + 1)[:limit]
        except (zlib.error, zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise UserInputError(f"{where}: corrupt compressed data ({str(exc)[:120]}); write the file again") from None

    def array(self, name: str) -> np.ndarray:
        """Member ``name`` (``name.npy`` or ``name``) as an array, checked before allocation."""
        info = self.info(name + ".npy") or self.info(name)
        where = f"{self.path}: '{name}'"
        if info is None:
            raise UserInputError(f"{self.path} has no array '{name}'")
        require_plausible_inflation(info.file_size, info.compress_size, where)
        require_within_budget(self.used + info.file_size, f"{self.path} (arrays read so far and '{name}')")
        try:
            with self.zf.open(info) as fp:
                arr = read_npy(fp, info.file_size, where, self.used)
        except UserInputError:
            raise
        except (zlib.error, zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
            raise UserInputError(f"{where}: unreadable ({type(exc).__name__}: {str(exc)[:120]}); write the file again") from None
        self.used += arr.nbytes
        return arr


def read_npz(path: str | Path, names: Iterable[str] | None = None, what: str = "file") -> dict[str, np.ndarray]:
    """The arrays ``names`` (all when None; missing ones are left out) of an ``.npz`` file."""
    with NpzReader(path, what) as z:
        present = z.members()
        wanted = present if names is None else [n for n in names if n in present]
        return {n: z.array(n) for n in wanted}
