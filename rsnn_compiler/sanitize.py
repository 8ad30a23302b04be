"""The one safe form of a name that came from an input (a model file, a checkpoint, a factory).

Names (graph names, node names, record keys) reach generated C, Lava and netx files, NIR
exports, Markdown and file names. Every emitter passes them through ``safe_name`` first:

    safe_name(text) = text with every character outside [A-Za-z0-9_.-] replaced by '_',
                      cut to ``max_len`` characters, prefixed with '_' when empty or when it
                      starts with '.' or '-'.

Its alphabet holds no character that means anything inside a C comment or string literal
(no '*', '/', '\\', '?', quotes, newlines), a C preprocessor line, a path (no '/', never '.'
or '..'), an HDF5 key, a Markdown code span or a shell word; so a name can neither close a
comment nor splice a line (``*\\<newline>/``), nor form a trigraph (``??/``). ``c_identifier``
and ``c_comment`` derive the C forms from it.
"""

from __future__ import annotations

import re

SAFE_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
MAX_LEN = 64


def safe_name(text: object, max_len: int = MAX_LEN) -> str:
    """``text`` over the alphabet [A-Za-z0-9_.-] (see the module docstring); never empty."""
    clean = SAFE_CHARS.sub("_", str(text))[:max_len]
    if not clean or clean[0] in ".-":
        clean = "_" + clean[: max_len - 1]
    return clean


def c_identifier(text: object, index: int, max_len: int = 40) -> str:
    """A unique C identifier ``n<index>_<name>`` for item ``index`` named ``text``."""
    return f"n{int(index)}_" + safe_name(text, max_len).replace(".", "_").replace("-", "_")


def c_comment(text: str) -> str:
    """Generated text (which may embed ``safe_name`` forms) made safe inside ``/* ... */``:
    printable ASCII only, no backslash, no '??' (trigraphs), no '/*' or '*/'."""
    out = "".join(c if " " <= c <= "~" and c != "\\" else "_" for c in str(text))
    while "??" in out:
        out = out.replace("??", "?_")
    while "*/" in out or "/*" in out:
        out = out.replace("*/", "* /").replace("/*", "/ *")
    return out


def unique_safe_names(names, max_len: int = MAX_LEN) -> dict[str, str]:
    """``safe_name`` of each name, made unique with a ``_<k>`` suffix (first come keeps it)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = safe_name(name, max_len)
        cand, k = base, 1
        while cand in taken:
            k += 1
            cand = f"{base}_{k}"
        taken.add(cand)
        out[name] = cand
    return out


def terminal_text(text: object, keep: str = "\n\t") -> str:
    """``text`` without terminal control: every control character not in ``keep`` (escape
    sequences from names in model, data or manifest files) written as a Python escape."""
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in str(text))
