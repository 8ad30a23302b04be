"""The per-user cache of C products built on this machine (a binary or shared library per source
digest): ``$XDG_CACHE_HOME/rsnnc/c`` (default ``~/.cache/rsnnc/c``), else a folder under the
system temporary folder. A build folder is never written, so its manifest hashes stay valid."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from rsnn_compiler.errors import UserInputError


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rsnnc" / "c"


def cached_build(cdir: Path, names: list[str], key: str, product: str, build: Callable[[Path], object]) -> Path:
    """``<cache>/<key[:32]>/<product>``, built once by ``build(folder)`` from copies of ``cdir``'s
    ``names`` (weights.bin too: the product reads it from its own folder). The build folder is
    never written, so its manifest hashes stay valid; concurrent builders keep one result."""
    for root in (_cache_root(), Path(tempfile.gettempdir()) / "rsnnc-c"):
        cached = root / key[:32] / product
        if cached.is_file():
            return cached
        try:
            root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        except OSError:
            continue
        for name in names:
            shutil.copyfile(cdir / name, work / name)
        build(work)
        try:
            os.replace(work, cached.parent)
        except OSError:  # another process won the race (or the folder exists): use theirs
            shutil.rmtree(work, ignore_errors=True)
        return cached
    raise UserInputError("cannot find a writable folder to rebuild the C model; set XDG_CACHE_HOME")
