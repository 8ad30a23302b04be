"""Calling the system C compiler (``$CC``, default ``cc``) with the C target's flags."""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from rsnn_compiler import progress
from rsnn_compiler.errors import RsnncError, UserInputError

from rsnn_compiler.backends.c.spec import C_SPEC, CSpec


class CCompileError(RsnncError):
    """The generated C did not compile: a backend bug (the message has the first error line)."""


def compiler(spec: CSpec = C_SPEC) -> list[str]:
    """The compiler command: ``$CC`` split like a shell word list, else ``cc``."""
    cmd = shlex.split(os.environ.get("CC", "") or spec.cc_default)
    if not cmd or shutil.which(cmd[0]) is None:
        raise UserInputError(
            f"no C compiler found ('{cmd[0] if cmd else ''}'); install gcc or clang, or set CC"
        )
    return cmd


@functools.lru_cache(maxsize=8)
def _version(cmd: tuple[str, ...]) -> str:
    try:
        res = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        return res.stdout.splitlines()[0] if res.stdout else ""
    except (OSError, subprocess.SubprocessError):
        return ""


HOST_VECTOR_FLAGS = ("-march=native",)  # the host's vector unit (AVX2 / AVX-512 / NEON ...)
#: gcc's -O2 vectorizes only loops it deems "very cheap" (no epilogue, no emulated ops); the
#: neuron and synapse loops need the "cheap" model: 0.67x CPU time on the bundled model's
#: simulator, 0.7-0.8x on the 1.79M-synapse network, records byte-identical (integer code)
HOST_VECTORIZE_FLAGS = ("-fvect-cost-model=cheap",)
NATIVE_ENV = "RSNNC_C_NATIVE"  # "0": build the simulator binary for the baseline ISA only


@functools.lru_cache(maxsize=8)
def _accepts(cmd: tuple[str, ...], flags: tuple[str, ...]) -> bool:
    """True when the compiler compiles a one-line C file with ``flags`` (detection, no guess)."""
    try:
        res = subprocess.run([*cmd, *flags, "-Werror", "-x", "c", "-c", "-o", os.devnull, "-"],
                             input="int rsnn_probe;\n",
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


def accepts(flags: tuple[str, ...], spec: CSpec = C_SPEC) -> bool:
    """Whether this machine's compiler takes ``flags`` without a warning (probed once)."""
    return _accepts(tuple(compiler(spec)), tuple(flags))


def simulator_flags(spec: CSpec = C_SPEC) -> tuple[str, ...]:
    """Flags added for the simulator binary that runs on this machine (``rsnn_run``): the host's
    vector unit when the compiler supports ``-march=native`` (clang and gcc do on x86-64 and
    arm64) and gcc's "cheap" vectorizer cost model where the compiler takes it without a warning,
    unless ``RSNNC_C_NATIVE=0``. The sources stay portable C99 (the Makefile and HLS flows use
    ``spec.cflags`` only); integer code gives the same results at any ISA and vectorization."""
    if os.environ.get(NATIVE_ENV, "1") == "0":
        return ()
    return tuple(f for group in (HOST_VECTOR_FLAGS, HOST_VECTORIZE_FLAGS) if accepts(group, spec) for f in group)


def toolchain_id(spec: CSpec = C_SPEC) -> str:
    """Identifies compiler, flags and host: a binary built under another id may not run here."""
    cmd = tuple(compiler(spec))
    flags = " ".join((*spec.cflags, *simulator_flags(spec)))
    return f"{' '.join(cmd)} | {_version(cmd)} | {flags} | {os.uname().machine}"


def first_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln:
            return ln.strip()
    return lines[0].strip() if lines else "(no compiler output)"


def compile_c(
    sources: list[str], output: str, cwd: Path, spec: CSpec = C_SPEC, extra_flags: tuple[str, ...] = (),
    timeout: float = 600,
) -> None:
    """Compile ``sources`` (paths relative to ``cwd``) into ``cwd/output``; raise CCompileError
    with the compiler's first error line on failure."""
    cmd = [*compiler(spec), *spec.cflags, *extra_flags, "-o", output, *sources]
    progress.step(f"c: compiling {output} ({' '.join(cmd[:1])})")
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise CCompileError(
            f"the generated C failed to compile (a C backend bug, please report it): {first_error(res.stderr)}"
        )


def sources_digest(folder: Path, names: list[str], spec: CSpec = C_SPEC) -> str:
    """Hash of the sources plus the toolchain id: the key of a binary built from them."""
    h = hashlib.sha256(toolchain_id(spec).encode())
    for name in names:
        h.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return h.hexdigest()
