"""Streaming file checksums, so that a row can say which exact file it was read from.

The same pass can hand every block to a checker (the NIfTI decoder of
:func:`lfpbold.ingest.nifti.check_bold_samples`), so a file is read once whether it is hashed,
checked, or both.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable

from .errors import IngestError

__all__ = ["sha256", "fingerprint", "BLOCK_BYTES"]

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
        if each_block is None:
            while block := f.read(BLOCK_BYTES):
                if h is not None:
                    h.update(block)
        else:
            for block in _read_ahead(f, h):
                each_block(block)
    return h.hexdigest() if h is not None else ""


def _read_ahead(f, h, depth: int = 4):
    """The file's blocks, read (and hashed into ``h`` unless None) by a thread up to ``depth`` blocks
    ahead, so that reading from a cold disk and hashing overlap the checker's work (both release
    the GIL) instead of adding to it."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                block = f.read(BLOCK_BYTES)
                if h is not None:
                    h.update(block)
                q.put(block)
                if not block:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let a reader blocked on a full queue finish before the file closes
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def fingerprint(path, *, checksum: bool = True, each_block: Callable[[bytes], None] | None = None) -> dict:
    """What identifies a file's content later: ``sha256`` (``""`` without ``checksum``), ``size`` and ``mtime_ns``.

    Size and modification time are taken before the file is hashed, and must be the same after:
    a file still being written is refused, so the recorded checksum is never of a half-written file.
    ``each_block`` rides on the same read, as in :func:`sha256`.

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
    digest = sha256(path, each_block=each_block, digest=checksum) if checksum or each_block else ""
    after = os.stat(path)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise IngestError(path, "file", "changed while it was being read; ingest again once nothing writes to it")
    return {"sha256": digest, "size": int(before.st_size), "mtime_ns": int(before.st_mtime_ns)}
