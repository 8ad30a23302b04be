"""Build directories: atomic writing, manifest, file hashes.

A build is assembled in a hidden sibling directory and renamed into place only when complete,
so a failed or interrupted build leaves nothing half-written (and an existing build at the same
path stays intact until the new one is complete).

``manifest.json`` is deterministic: two builds of one input with the same options are identical
byte for byte. Wall times, the only non-deterministic numbers, live in ``timings.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from rsnn_compiler.errors import UserInputError

MANIFEST = "manifest.json"
TIMINGS = "timings.json"
NOT_HASHED = {MANIFEST, TIMINGS}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative POSIX paths, sorted), manifest excluded."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in NOT_HASHED:
            out[rel] = sha256_file(path)
    return out


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserInputError(f"output path {target} exists and is not a directory; choose another -o")
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create output directory {parent}: {exc.strerror}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.replace(target, old / "build")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file via a temporary sibling and rename, so readers never see half a file; the file
    gets the mode a plain open() would give (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_manifest(build: Path) -> dict:
    build = Path(build)
    path = build / MANIFEST
    if not build.is_dir():
        raise UserInputError(f"{build} is not a build directory; create one with `rsnnc build MODEL -o {build}`")
    if not path.is_file():
        raise UserInputError(f"{build} has no {MANIFEST}; it is not an rsnnc build (rebuild it with `rsnnc build`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path} is corrupt ({exc.msg} at line {exc.lineno}); rebuild with `rsnnc build`") from None


def read_timings(build: Path) -> dict:
    path = Path(build) / TIMINGS
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
