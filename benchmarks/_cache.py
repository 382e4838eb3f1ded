"""The page-cache helper the benchmark scripts share (run as ``python benchmarks/x.py``, they find
it beside them)."""

from __future__ import annotations

import os
from pathlib import Path


def drop_cache(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (``posix_fadvise(DONTNEED)``; no root needed), so
    that its next read comes from disk as far as an unprivileged process can make it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
