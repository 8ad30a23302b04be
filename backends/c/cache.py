"""The per-user cache of C products built on this machine (a binary or shared library per source
digest): ``$XDG_CACHE_HOME/rsnnc/c`` (default ``~/.cache/rsnnc/c``), else a folder under the
system temporary folder. A build folder is never written, so its manifest hashes stay valid.
Shared libraries from it are loaded once per process (``load_shared``)."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from rsnn_compiler.errors import UserInputError


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rsnnc" / "c"


def copy_sources(cdir: Path, names: list[str]) -> Callable[[Path], None]:
    """A ``fill`` for ``cached_build``: copies of ``cdir``'s ``names`` (weights.bin too: the
    product reads it from its own folder)."""
    def fill(work: Path) -> None:
        for name in names:
            shutil.copyfile(cdir / name, work / name)
    return fill


def cached_build(key: str, product: str, fill: Callable[[Path], None], build: Callable[[Path], object]) -> Path:
    """``<cache>/<key[:32]>/<product>``, made once: ``fill(folder)`` writes the sources into a new
    folder, ``build(folder)`` compiles them, and the folder takes its place atomically.
    Concurrent builders keep one result."""
    for root in (_cache_root(), Path(tempfile.gettempdir()) / "rsnnc-c"):
        cached = root / key[:32] / product
        if cached.is_file():
            return cached
        try:
            root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        except OSError:
            continue
        fill(work)
        build(work)
        try:
            os.replace(work, cached.parent)
        except OSError:  # another process won the race (or the folder exists): use theirs
            shutil.rmtree(work, ignore_errors=True)
        return cached
    raise UserInputError("cannot find a writable folder to rebuild the C model; set XDG_CACHE_HOME")


_loaded: dict[Path, ctypes.CDLL] = {}
_load_lock = threading.Lock()


def load_shared(path: Path) -> ctypes.CDLL:
    """The shared library at ``path`` loaded into this process, once."""
    path = Path(path).resolve()
    with _load_lock:
        if path not in _loaded:
            _loaded[path] = ctypes.CDLL(str(path))
        return _loaded[path]
