"""Large constant arrays of the C target as binary data (``weights.bin``), not C text.

Parsing millions of initialiser literals dominated the C build (gcc: ~3 us per weight). Arrays of
at least ``CSpec.blob_min_values`` values are instead written to ``weights.bin``: each array's
values as little-endian integers of its C type's width, starting at a multiple of 8 bytes, in
emission order. ``model.c`` declares them as zero-initialised statics that
``<prefix>_load_weights(blob, n)`` fills once at start-up (the harness reads ``weights.bin`` next
to its binary, or ``-W FILE``); the load refuses a file whose length or Adler-32 differs from the
one the model was generated with.

HLS and microcontroller flows that need the weights as ``const`` arrays in ROM compile
``rsnn_bin2c.c`` (generated with the model, C99) and run ``./rsnn_bin2c weights.bin > weights.c``
(``make weights.c``), then compile ``model.c`` and ``weights.c`` with ``-DRSNN_CONST_WEIGHTS``:
the declarations become ``extern const`` and the load a no-op. Either way the integers are the
same, so results are bit-identical.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

CONST_MACRO = "RSNN_CONST_WEIGHTS"
FILE = "weights.bin"
BIN2C = "rsnn_bin2c.c"
ALIGN = 8

_NUMPY = {"int8_t": "<i1", "int16_t": "<i2", "int32_t": "<i4", "int64_t": "<i8",
          "uint8_t": "<u1", "uint16_t": "<u2", "uint32_t": "<u4", "uint64_t": "<u8"}


@dataclass(frozen=True)
class BlobArray:
    cname: str
    ctype: str
    offset: int  # bytes into weights.bin
    count: int

    @property
    def width(self) -> int:
        """Bytes per value."""
        return np.dtype(_NUMPY[self.ctype]).itemsize


@dataclass
class WeightBlob:
    """The arrays placed in ``weights.bin`` for one model (prefix ``prefix``)."""

    prefix: str
    arrays: list[BlobArray] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0

    def add(self, cname: str, ctype: str, flat: np.ndarray, what: str) -> str:
        """Place ``flat`` (int64 values fitting ``ctype``) in the blob; its declaration text."""
        data = np.ascontiguousarray(flat, dtype=_NUMPY[ctype]).tobytes()
        pad = -self.size % ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
        arr = BlobArray(cname, ctype, self.size + pad, int(flat.size))
        self.arrays.append(arr)
        self.chunks.append(data)
        self.size = arr.offset + len(data)
        return (f"/* {what} ({FILE} bytes {arr.offset}..{self.size}) */\n#ifdef {CONST_MACRO}\n"
                f"extern const {ctype} {cname}[{arr.count}];\n#else\nstatic {ctype} {cname}[{arr.count}];\n#endif\n")

    def data(self) -> bytes:
        return b"".join(self.chunks)

    def checksum(self) -> int:
        return zlib.adler32(self.data()) & 0xFFFFFFFF

    def header_text(self) -> str:
        """model.h lines: the blob size (0 when the weights are compiled in) and the loader."""
        p, m = self.prefix, self.prefix.upper()
        return (
            f"/* Bytes of {FILE} that {p}_load_weights expects (0: none needed). */\n"
            f"#ifdef {CONST_MACRO}\n#define {m}_WEIGHTS_BYTES 0L\n#else\n#define {m}_WEIGHTS_BYTES {self.size}L\n#endif\n"
            f"/* Fill the large weight arrays from {FILE}'s n bytes (once, before the first step);\n"
            f" * 0, or -1 when the length or the Adler-32 checksum is not this model's. */\n"
            f"int {p}_load_weights(const unsigned char *blob, long n);\n"
        )

    def loader_text(self) -> str:
        """model.c: ``<prefix>_load_weights`` (portable: bytes decoded, any host byte order)."""
        p, m = self.prefix, self.prefix.upper()
        fills = "".join(
            f"    for (i = 0; i < {a.count}L; ++i) {{\n"
            f"        {a.cname}[i] = ({a.ctype}){p}_blob_int(blob + {a.offset}L + {a.width}L * i, {a.width}, "
            f"{0 if a.ctype.startswith('u') else 1});\n    }}\n"
            for a in self.arrays
        )
        helper = f"""#ifndef {CONST_MACRO}
/* The little-endian integer of `bytes` bytes at p, sign-extended when `is_signed`. */
static int64_t {p}_blob_int(const unsigned char *p, int bytes, int is_signed)
{{
    uint64_t v = 0;
    int k;
    for (k = bytes - 1; k >= 0; --k) {{
        v = (v << 8) | p[k];
    }}
    if (is_signed && bytes < 8 && (v >> (8 * bytes - 1)) != 0) {{
        return -(int64_t)((~v) & ((UINT64_C(1) << (8 * bytes)) - 1)) - 1;
    }}
    return v > (uint64_t)INT64_MAX ? -(int64_t)(~v) - 1 : (int64_t)v;
}}
#endif

""" if self.arrays else ""
        return helper + f"""int {p}_load_weights(const unsigned char *blob, long n)
{{
#ifdef {CONST_MACRO}
    (void)blob;
    (void)n;
    return 0;
#else
    uint32_t a = 1, b = 0;
    long i, end;
    if (n != {m}_WEIGHTS_BYTES) {{
        return -1;
    }}
    for (i = 0; i < n;) {{ /* Adler-32, reduced every 5552 bytes (the most that cannot overflow b) */
        end = n - i > 5552 ? i + 5552 : n;
        for (; i < end; ++i) {{
            a += blob[i];
            b += a;
        }}
        a %= 65521u;
        b %= 65521u;
    }}
    if (((b << 16) | a) != UINT32_C({self.checksum()})) {{
        return -1;
    }}
{fills}    return 0;
#endif
}}
"""

    def bin2c_text(self) -> str:
        """rsnn_bin2c.c: prints weights.c (the blob's arrays as ``const`` C arrays) from weights.bin."""
        rows = "".join(f'    {{"{a.ctype}", "{a.cname}", {a.offset}L, {a.count}L, {a.width}, '
                       f'{0 if a.ctype.startswith("u") else 1}}},\n' for a in self.arrays)
        return f"""/* rsnn_bin2c.c -- writes weights.c, the arrays of {FILE} as const C arrays, for builds with
 * -D{CONST_MACRO} (HLS, microcontrollers). Generated by rsnnc. Usage: rsnn_bin2c {FILE} > weights.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct entry {{
    const char *ctype, *name;
    long offset, count;
    int bytes, is_signed;
}};

static const struct entry table[] = {{
{rows}    {{0, 0, 0L, 0L, 0, 0}}
}};

int main(int argc, char **argv)
{{
    FILE *f;
    unsigned char *blob;
    long n = {self.size}L, i, e;
    if (argc != 2 || (f = fopen(argv[1], "rb")) == 0) {{
        fputs("usage: rsnn_bin2c {FILE} > weights.c\\n", stderr);
        return 2;
    }}
    blob = (unsigned char *)malloc((size_t)n + 1);
    if (blob == 0 || fread(blob, 1, (size_t)n, f) != (size_t)n) {{
        fputs("rsnn_bin2c: cannot read the whole file\\n", stderr);
        return 2;
    }}
    fclose(f);
    printf("/* weights.c -- generated by rsnn_bin2c from {FILE} */\\n#include <stdint.h>\\n");
    for (e = 0; table[e].name != 0; ++e) {{
        const struct entry *t = &table[e];
        printf("\\nconst %s %s[%ld] = {{", t->ctype, t->name, t->count);
        for (i = 0; i < t->count; ++i) {{
            const unsigned char *p = blob + t->offset + (long)t->bytes * i;
            uint64_t v = 0;
            int k;
            for (k = t->bytes - 1; k >= 0; --k) {{
                v = (v << 8) | p[k];
            }}
            fputs(i == 0 ? "\\n    " : (i % 16 ? ", " : ",\\n    "), stdout);
            if (t->is_signed && (v >> (8 * t->bytes - 1)) != 0) {{ /* negative: minus its magnitude */
                uint64_t mag = (t->bytes < 8 ? ((~v) & ((UINT64_C(1) << (8 * t->bytes)) - 1)) : ~v) + 1;
                printf("(-%lluLL - 1)", (unsigned long long)(mag - 1));
            }} else {{
                printf("%lluULL", (unsigned long long)v);
            }}
        }}
        printf("\\n}};\\n");
    }}
    free(blob);
    return 0;
}}
"""
