"""Build directories: atomic writing, manifest, file hashes.

A build is assembled in a hidden sibling directory and renamed into place only when complete,
so a failed or interrupted build leaves nothing half-written (and an existing build at the same
path stays intact until the new one is complete).

``manifest.json`` is deterministic: two builds of one input with the same options are identical
byte for byte. Wall times, the only non-deterministic numbers, live in ``timings.json``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import signal
import tempfile
import threading
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


BUILD_FORMAT_PREFIX = "rsnnc-build/"
MAX_MANIFEST_BYTES = 256 << 20
TEMP_TAG = "rsnnc-tmp"  # hidden sibling folders: .<name>.rsnnc-tmp-<pid>-<random>


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) arrived: unwind like Ctrl-C so temporary folders are removed."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM and SIGHUP raise ``Terminated``, so
    ``finally`` blocks clean up; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise Terminated(signum)

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def is_build(folder: Path) -> bool:
    """True when ``folder`` holds an rsnnc build (a manifest with the build format)."""
    try:
        path = Path(folder) / MANIFEST
        if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
            return False
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and str(data.get("format", "")).startswith(BUILD_FORMAT_PREFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def remove_stale_temporaries(parent: Path, name: str) -> list[Path]:
    """Remove ``.<name>.rsnnc-tmp-<pid>-*`` folders whose process is gone (a build killed by
    SIGKILL or a power cut); returns what was removed."""
    removed = []
    prefix = f".{name}.{TEMP_TAG}-"
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


# renameat2(2) flags (Linux >= 3.15, glibc >= 2.28)
_AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False when the system has no renameat2 (or the file system
    does not support the flag), raises OSError for every other failure."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def swap_into_place(tmp: Path, target: Path) -> None:
    """Make ``tmp`` the folder at ``target`` in one atomic step; the previous folder (if any)
    ends up at ``tmp`` (the caller removes it). On Linux: renameat2 RENAME_NOREPLACE, or
    RENAME_EXCHANGE when ``target`` exists, so ``target`` is never missing and concurrent builds
    each land whole. Elsewhere (no renameat2): two renames, with a moment where ``target`` is
    missing."""
    for _ in range(100):
        try:
            if _renameat2(tmp, target, RENAME_NOREPLACE):
                return
            break  # no renameat2 here: portable fallback below
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        try:
            if _renameat2(tmp, target, RENAME_EXCHANGE):
                return
            break
        except FileNotFoundError:
            continue  # target vanished between the two calls (another build's swap): retry
    if not target.exists():
        os.replace(tmp, target)
        return
    old = tmp.with_name(tmp.name + "-old")
    os.replace(target, old)
    os.replace(tmp, target)
    os.replace(old, tmp)


def output_path(target: Path) -> Path:
    """The absolute, symlink-free path a build goes to (``-o .`` names the working folder)."""
    target = Path(os.path.realpath(os.path.abspath(target)))
    if target == target.parent or not target.name:
        raise UserInputError(f"cannot build into {target}; choose a folder below it with -o")
    return target


def check_output_folder(target: Path, force: bool) -> None:
    """``-o`` may name a new path, an empty folder or an earlier build; anything else would
    lose files, so it is refused unless ``force``."""
    if target.is_symlink() and not target.exists():
        raise UserInputError(f"output path {target} is a dangling symbolic link; remove it or choose another -o")
    if not target.exists():
        return
    if not target.is_dir():
        raise UserInputError(f"output path {target} exists and is not a directory; choose another -o")
    if force or is_build(target):
        return
    try:
        content = sorted(p.name for p in target.iterdir())
    except OSError as exc:
        raise UserInputError(f"cannot read output folder {target}: {exc.strerror}") from None
    if content:
        shown = ", ".join(content[:3]) + (", ..." if len(content) > 3 else "")
        raise UserInputError(
            f"output folder {target} exists and is not an rsnnc build (it holds {shown}); building would"
            " replace it: choose another -o, or pass --force to replace it"
        )


@contextlib.contextmanager
def atomic_directory(target: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` in one atomic step only if the block
    succeeds (``swap_into_place``). ``target`` must be new, an empty folder or an rsnnc build
    (``check_output_folder``). The temporary folder is removed on every exit path, including
    SIGTERM/SIGHUP (``signals_unwind``); one left by SIGKILL is removed by the next build into
    the same parent folder (``remove_stale_temporaries``)."""
    target = output_path(target)
    parent = target.parent
    check_output_folder(target, force)
    created = [p for p in (parent, *parent.parents) if not p.exists()]  # removed again on failure
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create output directory {parent}: {exc.strerror}") from None
    remove_stale_temporaries(parent, target.name)
    done = False
    with signals_unwind():
        try:
            try:
                tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{TEMP_TAG}-{os.getpid()}-", dir=parent))
            except OSError as exc:
                raise UserInputError(f"cannot write into {parent}: {exc.strerror}") from None
            try:
                os.chmod(tmp, 0o777 & ~current_umask())
                yield tmp
                check_output_folder(target, force)  # it may have changed while we built
                swap_into_place(tmp, target)
                done = True
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            if not done:
                for folder in created:  # innermost first; only if still empty
                    with contextlib.suppress(OSError):
                        folder.rmdir()


def check_writable_file(path: Path) -> Path:
    """Refuse (one line, exit 2) an output file path that is a folder or lies in a missing
    folder; returns the folder it will be written into."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserInputError(f"cannot write {path}: it is a directory; give a file name")
    if not parent.is_dir():
        raise UserInputError(f"cannot write {path}: folder {parent} does not exist; create it first")
    return parent


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write the whole file into; renamed over ``path`` when
    the block ends normally, removed on every other exit, so readers never see half a file and a
    failed write leaves nothing. It gets the mode a plain open() would give (0666 less the
    umask), not mkstemp's 0600."""
    path = Path(path)
    parent = check_writable_file(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    except OSError as exc:
        raise UserInputError(f"cannot write into {parent}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file in one step (``atomic_file``)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def _manifest_problem(m) -> str | None:
    """What is wrong with a parsed manifest's structure (None: the parts rsnnc reads are sound)."""
    if not isinstance(m, dict):
        return "it is not a JSON object"
    if not str(m.get("format", "")).startswith(BUILD_FORMAT_PREFIX):
        return f"its format is {str(m.get('format'))[:40]!r}, not {BUILD_FORMAT_PREFIX}N"
    files = m.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in files.items()):
        return "'files' must map each file to its SHA-256"
    graphs = m.get("graphs")
    if not isinstance(graphs, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("file"), str) for v in graphs.values()):
        return "'graphs' must map each graph key to {file, hash}"
    targets = m.get("targets", {})
    if not isinstance(targets, dict) or not all(
            isinstance(v, dict) and (v.get("profile") is None or isinstance(v.get("profile"), str))
            and isinstance(v.get("details", []), list) and all(isinstance(t, str) for t in v.get("details", []))
            and isinstance(v.get("files", []), list) and all(isinstance(t, str) for t in v.get("files", []))
            for v in targets.values()):
        return "'targets' must map each target to {profile, files, summary, details}"
    steps = m.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        return f"'steps' is {str(steps)[:20]!r}, not a positive integer"
    for key in ("pipeline", "options", "input", "compiler"):
        if key in m and not isinstance(m[key], dict):
            return f"'{key}' is not an object"
    if not all(isinstance(v, list) and all(isinstance(t, str) for t in v) for v in m.get("pipeline", {}).values()):
        return "'pipeline' must map each graph key to a list of step names"
    if m.get("accuracy") is not None and not _accuracy_ok(m["accuracy"]):
        return "'accuracy' is not an accuracy record ({data, float_model, steps, tolerance, notes})"
    if "passes" in m and not (isinstance(m["passes"], list) and all(_report_ok(p) for p in m["passes"])):
        return "'passes' is not a list of reports ({name, reason, notes, warnings, metrics})"
    if not (isinstance(m.get("warnings", []), list) and all(isinstance(w, str) for w in m.get("warnings", []))):
        return "'warnings' is not a list of texts"
    return None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _accuracy_ok(rec) -> bool:
    """The manifest's accuracy block as ``reports.accuracy_lines`` reads it."""
    if not (isinstance(rec, dict) and isinstance(rec.get("data"), str) and _number(rec.get("tolerance", 0))
            and (rec.get("float_model") is None or _number(rec["float_model"]))
            and isinstance(rec.get("steps", []), list) and isinstance(rec.get("notes", []), list)
            and all(isinstance(n, str) for n in rec.get("notes", []))):
        return False
    return all(isinstance(st, dict) and isinstance(st.get("step"), str) and _number(st.get("accuracy"))
               and (st.get("drop") is None or _number(st["drop"])) for st in rec.get("steps", []))


def _report_ok(rep) -> bool:
    """A pass report as the report renderers read it."""
    return (isinstance(rep, dict) and isinstance(rep.get("name"), str) and isinstance(rep.get("reason", ""), str)
            and isinstance(rep.get("metrics", {}), dict)
            and all(isinstance(rep.get(k, []), list) and all(isinstance(t, str) for t in rep.get(k, []))
                    for k in ("notes", "warnings")))


def read_manifest(build: Path) -> dict:
    """The build's manifest, structurally checked (the hashes of the files a command uses are
    checked by ``verify_build_files`` before it uses them)."""
    build = Path(build)
    path = build / MANIFEST
    if not build.is_dir():
        raise UserInputError(f"{build} is not a build directory; create one with `rsnnc build MODEL -o {build}`")
    if not path.is_file():
        raise UserInputError(f"{build} has no {MANIFEST}; it is not an rsnnc build (rebuild it with `rsnnc build`)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise UserInputError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes; it is not an rsnnc manifest")
    try:
        manifest = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path} is corrupt ({exc.msg} at line {exc.lineno}); rebuild with `rsnnc build`") from None
    except (UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise UserInputError(f"{path} is corrupt ({type(exc).__name__}); rebuild with `rsnnc build`") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise UserInputError(f"{path} is not a valid rsnnc manifest: {problem}; rebuild with `rsnnc build`")
    return manifest


def build_file(build: Path, manifest: dict, rel: str) -> Path:
    """``build/rel`` for a file the manifest lists, after checking its SHA-256: a build whose
    file was replaced or damaged is refused before anything of it is read or run."""
    verify_build_files(build, manifest, [rel])
    return Path(build) / rel


def verify_build_files(build: Path, manifest: dict, rels) -> None:
    """Check that each relative path in ``rels`` is listed in the manifest, stays inside the
    build, is a regular file and has the recorded SHA-256; one-line UserInputError otherwise."""
    build = Path(build)
    files = manifest.get("files", {})
    root = os.path.realpath(build)
    for rel in rels:
        where = f"build {build}: {rel}"
        expected = files.get(rel)
        path = build / rel
        if expected is None or rel.startswith("/") or ".." in Path(rel).parts:
            raise UserInputError(f"{where} is not among the files its manifest lists; the build was modified, rebuild it with `rsnnc build`")
        real = os.path.realpath(path)
        if not real.startswith(root + os.sep) or not os.path.isfile(real) or os.path.islink(path):
            raise UserInputError(f"{where} is missing or not a plain file inside the build; rebuild it with `rsnnc build`")
        if sha256_file(path) != expected:
            raise UserInputError(
                f"{where} does not match the SHA-256 in its manifest (the file was replaced or damaged);"
                " refusing to use it: rebuild with `rsnnc build`"
            )


def verify_target_files(build: Path, manifest: dict, target: str) -> None:
    """``verify_build_files`` for every file the manifest lists under ``<target>/``."""
    rels = [rel for rel in manifest.get("files", {}) if rel.startswith(f"{target}/")]
    if not rels:
        raise UserInputError(f"build {build} lists no files for target '{target}'; rebuild with --target {target}")
    verify_build_files(build, manifest, rels)


def read_timings(build: Path) -> dict:
    """``timings.json`` (wall times, not hashed): {} when missing, unreadable or malformed."""
    path = Path(build) / TIMINGS
    try:
        data = json.loads(path.read_bytes()) if path.is_file() and path.stat().st_size < MAX_MANIFEST_BYTES else {}
    except (ValueError, OSError, RecursionError):
        return {}
    passes = data.get("passes") if isinstance(data, dict) else None
    if not (isinstance(passes, list) and all(isinstance(p, dict) for p in passes)):
        return {}
    for p in passes:  # the wall times are shown as numbers: anything else is dropped, not printed
        w = p.get("wall_time_s")
        if w is not None and not (_number(w) and math.isfinite(w) and w >= 0):
            p["wall_time_s"] = None
    return data
