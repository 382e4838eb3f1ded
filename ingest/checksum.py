"""Streaming file checksums, so that a row can say which exact file it was read from."""

from __future__ import annotations

import hashlib
import os

from .errors import IngestError

__all__ = ["sha256", "fingerprint"]


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


def fingerprint(path, *, checksum: bool = True) -> dict:
    """What identifies a file's content later: ``sha256`` (``""`` without ``checksum``), ``size`` and ``mtime_ns``.

    Size and modification time are taken before the file is hashed, and must be the same after:
    a file still being written is refused, so the recorded checksum is never of a half-written file.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> info = fingerprint(f.name)
    >>> info["size"], info["sha256"][:12]
    (3, 'ba7816bf8f01')
    >>> os.unlink(f.name)
    """
    before = os.stat(path)
    digest = sha256(path) if checksum else ""
    after = os.stat(path)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise IngestError(path, "file", "changed while it was being read; ingest again once nothing writes to it")
    return {"sha256": digest, "size": int(before.st_size), "mtime_ns": int(before.st_mtime_ns)}
