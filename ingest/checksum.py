"""Streaming file checksums, so that a row can say which exact file it was read from."""

from __future__ import annotations

import hashlib

__all__ = ["sha256"]


def sha256(path) -> str:
    """SHA-256 hex digest of a file, read in 8 MB blocks (never the whole file in memory).

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> sha256(f.name)
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    >>> os.unlink(f.name)
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()
