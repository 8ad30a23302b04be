"""The batch-chunk loop both ways of running a compiled C model share: the binary in a subprocess
(``executor.run_records``) and the shared library in this process (``library.run_records_inprocess``)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from rsnn_compiler.errors import UserInputError

#: the status (exit status of the binary, return value of ``rsnn_run_buffers``) of a run whose
#: records were asked as int32 and hold a value that needs more: the chunk is repeated at 8 bytes
RECORD32_TOO_NARROW = 6

#: ``run_part(part, width) -> (status, records (T, nb, L) or None, message)``
RunPart = Callable[[np.ndarray, int], "tuple[int, np.ndarray | None, str]"]


def records_in_chunks(ints: np.ndarray, max_batch: int, widths: tuple[int, ...], run_part: RunPart,
                      record_len: int) -> np.ndarray:
    """Run ``ints`` (T, B, n_in) in chunks of at most ``max_batch`` samples (int32, C-contiguous),
    each asked for records of ``widths[0]`` bytes and repeated at the next width when it answers
    ``RECORD32_TOO_NARROW``; any other nonzero status is one line, ``the C model failed: <message>``
    (UserInputError). The chunks' records are joined along the batch axis (no chunk: (T, 0,
    ``record_len``) int64)."""
    steps, batch = ints.shape[:2]
    chunks = []
    for b0 in range(0, batch, max_batch):
        part = np.ascontiguousarray(ints[:, b0:b0 + max_batch], dtype=np.int32)
        for width in widths:
            status, records, message = run_part(part, width)
            if status != RECORD32_TOO_NARROW:
                break
        if status != 0:
            raise UserInputError(f"the C model failed: {message}")
        chunks.append(records)
    if not chunks:
        return np.zeros((steps, 0, record_len), np.int64)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)
