"""Streaming file checksums, so that a row can say which exact file it was read from.

The same pass can hand every block to a checker (the NIfTI decoder of
:func:`lfpbold.ingest.nifti.check_bold_samples`), so a file is read once whether it is hashed,
checked, or both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

__all__ = ["sha256", "BLOCK_BYTES"]

BLOCK_BYTES = 8 << 20  # 8 MB: large enough for disk speed, small next to any scan


def sha256(path, *, each_block: Callable[[bytes], None] | None = None, digest: bool = True) -> str:
    """SHA-256 hex digest of a file, read in 8 MB blocks (never the whole file in memory).

    Parameters
    ----------
    path : path-like
    each_block : callable(bytes), optional
        Receives every block as it is read, in order (a checker riding on the same pass).
    digest : bool, default True
        False reads and hands on the blocks without hashing and returns ``""``.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> sha256(f.name)
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    >>> sizes = []
    >>> sha256(f.name, each_block=lambda b: sizes.append(len(b)), digest=False), sizes
    ('', [3])
    >>> os.unlink(f.name)
    """
    h = hashlib.sha256() if digest else None
    with open(path, "rb") as f:
        while block := f.read(BLOCK_BYTES):
            if h is not None:
                h.update(block)
            if each_block is not None:
                each_block(block)
    return h.hexdigest() if h is not None else ""
