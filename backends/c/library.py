"""The compiled C model loaded into this process: the C executor's default path.

``harness.c`` also builds as a shared library (``librsnn_run.so``: the same ``harness.c`` and
``model.c``, the simulator binary's flags plus ``-fPIC -shared``) whose ``rsnn_run_buffers``
runs samples straight from a numpy input array into a numpy record array, through the same
``rsnn_run_memory`` the binary streams its files through (docs/c-backend.md "In-process runs").
No process start, no files: the full records of the bundled model (48 MB for T=68, B=256) cost
the simulator binary 3x its simulation time to write to and read back from a file; written in
memory they cost about half of it. The records are the binary's, value for value
(``tests/test_c_harness.py`` compares both on every record width, thread count and error).

The library is built once per source digest into the same cache as a rebuilt binary (the build
folder is never written) and loaded once per process; its weights are loaded from the cached
copy of ``weights.bin``. A crash in generated code would take this process with it, where the
binary's would be an exit status: ``RSNNC_C_INPROCESS=0`` runs the binary instead (same records).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from rsnn_compiler.errors import UserInputError

from rsnn_compiler.backends.c import blob as blob_mod
from rsnn_compiler.backends.c.backend import present_sources
from rsnn_compiler.backends.c.cache import cached_build, copy_sources, load_shared
from rsnn_compiler.backends.c.chunks import records_in_chunks
from rsnn_compiler.backends.c.spec import C_SPEC, CSpec
from rsnn_compiler.backends.c.toolchain import compile_c, simulator_flags, sources_digest

LIBRARY = "librsnn_run.so"
INPROCESS_ENV = "RSNNC_C_INPROCESS"  # "0": the executor runs the binary in a subprocess instead
SHARED_FLAGS = ("-fPIC", "-shared")

#: the statuses rsnn_run_buffers returns (the binary's exit statuses, docs/c-backend.md)
STATUS_TEXT = {
    2: "bad arguments (batch larger than the model's RSNN_MAX_BATCH?)",
    6: "a recorded value does not fit int32",
    7: "out of memory or cannot start a thread",
    8: "an input value is outside the range the model was compiled for (layout.json input.range);"
       " quantize the inputs as model.h says",
    9: "weights.bin is missing or not this model's",
}
_lock = threading.Lock()  # one thread loads a library's weights before any thread runs it
_ready: set[Path] = set()  # libraries whose weights are loaded


def inprocess_enabled() -> bool:
    return os.environ.get(INPROCESS_ENV, "1") != "0"


def build_library(folder: Path, spec: CSpec = C_SPEC) -> Path:
    """Compile ``folder``'s harness + model into ``folder/librsnn_run.so``."""
    compile_c(["harness.c", "model.c"], LIBRARY, folder, spec, (*simulator_flags(spec), *SHARED_FLAGS))
    return folder / LIBRARY


def ensure_library(cdir: Path) -> Path:
    """The shared library built from ``cdir``'s sources with this machine's toolchain (cached)."""
    names = present_sources(cdir)
    key = hashlib.sha256((sources_digest(cdir, names) + "|" + " ".join(SHARED_FLAGS)).encode()).hexdigest()
    return cached_build(key, LIBRARY, copy_sources(cdir, names), build_library)


def open_library(path: Path) -> ctypes.CDLL:
    """Load ``path`` once per process and load its weights (from ``weights.bin`` beside it)."""
    path = Path(path).resolve()
    with _lock:
        lib = load_shared(path)
        if path in _ready:
            return lib
        lib.rsnn_open.argtypes = [ctypes.c_char_p, ctypes.c_long]
        lib.rsnn_open.restype = ctypes.c_int
        lib.rsnn_run_buffers.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long,
                                         ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.rsnn_run_buffers.restype = ctypes.c_int
        weights = path.parent / blob_mod.FILE
        blob = weights.read_bytes() if weights.is_file() else b""
        status = lib.rsnn_open(blob, len(blob))
        if status != 0:
            raise UserInputError(f"the C model failed: {STATUS_TEXT.get(status, f'status {status}')}")
        _ready.add(path)
        return lib


_scratch = threading.local()
#: the largest record buffer a thread keeps for reuse (``scratch=True``)
SCRATCH_MAX_BYTES = 256 << 20


def _buffer(shape: tuple[int, ...], dtype, scratch: bool) -> np.ndarray:
    """A fresh array, or (``scratch``) this thread's reused one of that shape and dtype. Fresh
    multi-MB arrays are paid in page faults, and where the kernel compacts memory for huge pages
    on demand (THP defrag ``madvise``, numpy's large arrays) a fault can stall: the 1.79M-synapse
    bench's 76 MB of records took 0.087 s or 0.167 s depending on the process's memory history,
    0.13 s with 4 KB pages; written into a reused buffer they cost the writes alone."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not scratch or nbytes > SCRATCH_MAX_BYTES:
        return np.empty(shape, dtype)
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        _scratch.buf = buf = None  # release the old one before allocating
        _scratch.buf = buf = np.empty(shape, dtype)
    return buf


def run_records_inprocess(lib: ctypes.CDLL, ints: np.ndarray, record_len: int, n_out: int, max_batch: int,
                          out_only: bool = False, threads: int = 1, scratch: bool = False) -> np.ndarray:
    """``run_records`` (executor.py) through the loaded library: records (T, B, L) as int32 when
    every value fits, else int64 (L = ``n_out`` with ``out_only``, then always int64).

    ``scratch``: a single-chunk result is written into this thread's reused buffer, valid until
    the thread's next scratch call (the executor decodes it into new arrays at once)."""
    steps, batch = ints.shape[:2]
    single = batch <= max_batch
    length = n_out if out_only else record_len

    def run_part(part: np.ndarray, width: int):
        nb = part.shape[1]
        out = _buffer((steps, nb, length), np.int32 if width == 4 else np.int64, scratch and single)
        status = lib.rsnn_run_buffers(part.ctypes.data, out.ctypes.data, steps, nb, int(out_only), width,
                                      max(1, min(threads, nb)))
        return status, out, STATUS_TEXT.get(status, f"status {status}")

    return records_in_chunks(ints, max_batch, (8,) if out_only else (4, 8), run_part, length)
