"""The files rows point to: where a stored path is on this machine, and whether it is still the file ingested.

Rows keep each NWB and BOLD file's path, SHA-256, size and modification time as ingest saw them.
Paths are stored relative to a **data root**: the folder the study folders sit in (``--data-root``,
else ``$LFPBOLD_DATA_ROOT``, else the study folder's parent at ingest). Each root an ingest used
is recorded (``acquisition.DataRoot``), so on the ingesting machine nothing needs setting; another
machine that mounts the data elsewhere sets ``LFPBOLD_DATA_ROOT`` (or ``--data-root``) to its
own mount. An absolute stored path (databases made before) is used as it is.

Before a ``make`` reads a file it calls :func:`verified_file`: the file's size and modification
time must be those recorded, or else its SHA-256 must be; with ``verify="full"``
(``populate --verify full``) the SHA-256 always is. A mismatch raises
:class:`FileIntegrityError` naming the file, so the key's job records the error and no row is
computed from another file. :func:`check` re-hashes every ingested file on demand.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FileIntegrityError",
    "VERIFY_MODES",
    "configure",
    "data_root",
    "ingest_root",
    "stored_path",
    "resolve",
    "verify_file",
    "verified_file",
    "check",
    "CheckReport",
]

#: stat: size and mtime, SHA-256 only when either differs; full: SHA-256 at every read
VERIFY_MODES = ("stat", "full")
ENV_DATA_ROOT = "LFPBOLD_DATA_ROOT"
_REPLACE_HINT = "ingest the new file with `lfpbold ingest --replace STUDY_DIR`, or put the ingested file back"

_settings = {"verify": "stat", "data_root": None}
# resolved path -> (stat signature, SHA-256) of the last hash this process took of it
_hashed: dict[str, tuple[tuple, str]] = {}


class FileIntegrityError(RuntimeError):
    """A file a row points to is missing, or is not the file that was ingested.

    Attributes
    ----------
    path : str
        The file, as resolved on this machine.
    reason : str
        What differs from what ingest recorded.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # picklable for multiprocessing populate
        return (type(self), (self.path, self.reason))


def configure(*, verify: str = "stat", data_root=None) -> None:
    """Set how this process's makes check their files (``populate`` calls it with its arguments).

    Parameters
    ----------
    verify : {"stat", "full"}
        ``"stat"``: compare size and modification time, and the SHA-256 when either differs.
        ``"full"``: the SHA-256 at every read.
    data_root : path, optional
        Where relative stored paths live on this machine (default ``$LFPBOLD_DATA_ROOT``, else
        the roots recorded at ingest).
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}; got {verify!r}")
    _settings["verify"] = verify
    _settings["data_root"] = None if data_root is None else os.fspath(data_root)


def data_root(explicit=None) -> Path | None:
    """The data root asked for: ``explicit``, else :func:`configure`'s, else ``$LFPBOLD_DATA_ROOT``; or None."""
    for value in (explicit, _settings["data_root"], os.environ.get(ENV_DATA_ROOT)):
        if value not in (None, ""):
            return Path(os.path.abspath(os.path.expanduser(os.fspath(value))))
    return None


def ingest_root(study_dir, explicit=None) -> Path:
    """The root an ingest stores paths against: the data root asked for, else the study folder's parent.

    Raises
    ------
    ValueError
        If the study folder does not lie inside the data root asked for.
    """
    study = Path(os.path.abspath(study_dir))
    root = data_root(explicit)
    if root is None:
        return study.parent
    if not study.is_relative_to(root):
        raise ValueError(
            f"{study}: not inside the data root {root}; paths are stored relative to it, so the study "
            f"folder must sit in it (set --data-root or {ENV_DATA_ROOT} to a folder that holds the study)"
        )
    return root


def stored_path(path, root: Path) -> str:
    """``path`` as a row stores it: relative to ``root`` (POSIX separators) when inside it, else absolute.

    Examples
    --------
    >>> stored_path("/data/study/sub-01/x.nwb", Path("/data"))
    'study/sub-01/x.nwb'
    >>> stored_path("/elsewhere/x.nwb", Path("/data"))
    '/elsewhere/x.nwb'
    """
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def resolve(stored: str, recorded_roots=(), explicit=None) -> Path:
    """Where a stored path is on this machine.

    An absolute path is used as is. A relative one is joined to the data root asked for
    (``explicit``, :func:`configure`, ``$LFPBOLD_DATA_ROOT``), or else to the first recorded root
    under which the file exists.

    Raises
    ------
    FileIntegrityError
        If the file is not there.
    """
    path = Path(stored)
    if path.is_absolute():
        if not path.is_file():
            raise FileIntegrityError(path, "missing (ingested from this path)")
        return path
    root = data_root(explicit)
    if root is not None:
        if not (root / path).is_file():
            raise FileIntegrityError(
                root / path,
                f"missing under the data root {root} (--data-root or {ENV_DATA_ROOT}); ingested as {stored}",
            )
        return root / path
    roots = [Path(r) for r in recorded_roots]
    for r in roots:
        if (r / path).is_file():
            return r / path
    where = ", ".join(str(r) for r in roots) or "none recorded"
    raise FileIntegrityError(
        stored,
        f"missing: not under any data root recorded at ingest ({where}); set {ENV_DATA_ROOT} or --data-root "
        "to the folder that holds the study folders on this machine",
    )


def _signature(st: os.stat_result) -> tuple:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _hash(path: Path) -> str:
    """SHA-256 of ``path``, refusing a file that changes while it is hashed; remembered by stat signature."""
    from lfpbold.ingest import sha256

    before = os.stat(path)
    digest = sha256(path)
    if _signature(os.stat(path)) != _signature(before):
        raise FileIntegrityError(path, "changed while it was being verified; something is writing to it")
    _hashed[str(path)] = (_signature(before), digest)
    return digest


def _when(mtime_ns) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime_ns / 1e9))


def verify_file(path, *, sha256: str, size=None, mtime_ns=None, verify: str | None = None, again: bool = False):
    """Check that the file at ``path`` is the one ingested; return its path.

    Parameters
    ----------
    path : path
        The file on this machine (see :func:`resolve`).
    sha256, size, mtime_ns
        What ingest recorded (``sha256`` is ``""`` after ``--no-checksums``; ``size`` and
        ``mtime_ns`` are None in databases made before they were kept).
    verify : {"stat", "full"}, optional
        Default: :func:`configure`'s (``"stat"``).
    again : bool
        A second check of a file this process verified moments ago (a tripartite make fetches
        twice): a hash this process took is reused while the file's stat is unchanged, even with
        ``"full"``.

    Raises
    ------
    FileIntegrityError
        If the content differs from what was ingested, or cannot be compared.
    """
    path = Path(path)
    mode = verify or _settings["verify"]
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {', '.join(VERIFY_MODES)}; got {mode!r}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileIntegrityError(path, "missing") from None
    same_stat = size is not None and mtime_ns is not None and (st.st_size, st.st_mtime_ns) == (size, mtime_ns)
    if same_stat and mode == "stat":
        return path
    if not sha256:
        if mode == "full":
            raise FileIntegrityError(
                path, "no SHA-256 was recorded (ingested with --no-checksums), so it cannot be verified in full"
            )
        if size is None or mtime_ns is None:
            return path  # an older row without checksum or stat: nothing to compare with
        raise FileIntegrityError(
            path,
            f"changed since it was ingested (size {size} -> {st.st_size} bytes, modified {_when(mtime_ns)} -> "
            f"{_when(st.st_mtime_ns)}), and no SHA-256 was recorded (--no-checksums) to show the content is the same; "
            + _REPLACE_HINT,
        )
    seen = _hashed.get(str(path))
    if seen is not None and seen[0] == _signature(st) and (mode == "stat" or again):
        actual = seen[1]
    else:
        actual = _hash(path)
    if actual != sha256:
        detail = f"size {size} -> {st.st_size} bytes, " if size is not None and size != st.st_size else ""
        raise FileIntegrityError(
            path,
            f"changed since it was ingested ({detail}SHA-256 {actual[:12]}... but {sha256[:12]}... was recorded), "
            f"so results computed from it would describe another file; {_REPLACE_HINT}",
        )
    return path


def _recorded_roots() -> list[str]:
    from lfpbold.schemas import acquisition

    return list(acquisition.DataRoot.to_arrays("data_root", order_by="recorded_at DESC"))


def verified_file(row, role: str) -> str:
    """The path of a row's ``<role>_path`` file on this machine, checked against what ingest recorded.

    Called from the makes' fetch step, e.g. ``verified_file(acquisition.FMRIRun & key, "bold")``.
    ``row`` is a restriction to one row with ``<role>_path`` and ``<role>_sha256`` (and, in
    databases made since they were kept, ``<role>_size`` and ``<role>_mtime_ns``).
    """
    names = row.heading.names
    attrs = [f"{role}_{a}" for a in ("path", "sha256", "size", "mtime_ns") if f"{role}_{a}" in names]
    values = row.proj(*attrs).fetch1()
    path = resolve(values[f"{role}_path"], _recorded_roots())
    verify_file(
        path,
        sha256=values[f"{role}_sha256"],
        size=values.get(f"{role}_size"),
        mtime_ns=values.get(f"{role}_mtime_ns"),
        again=row.connection.in_transaction,  # the tripartite make's second fetch, inside its transaction
    )
    return str(path)


@dataclass
class FileProblem:
    """One ingested file that changed or vanished."""

    table: str
    key: dict
    path: str
    problem: str

    def __str__(self) -> str:
        scan = " ".join(f"{k}={v}" for k, v in self.key.items())
        return f"{self.table} {scan}: {self.path}: {self.problem}"


@dataclass
class CheckReport:
    """What :func:`check` found: files re-hashed, bytes read, and every file that changed or vanished."""

    checked: int = 0
    n_bytes: int = 0
    seconds: float = 0.0
    problems: list[FileProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(*, data_root=None, echo: Callable[[str], None] | None = None) -> CheckReport:
    """Re-hash every ingested file (each scan's BOLD NIfTI and NWB) and report each one that changed or vanished.

    Parameters
    ----------
    data_root : path, optional
        Where relative stored paths live on this machine (default: as :func:`resolve`).
    echo : callable, optional
        Called with one line per problem as it is found.

    Examples
    --------
    >>> report = lfpbold.check()  # doctest: +SKIP
    >>> report.ok, report.checked  # doctest: +SKIP
    (True, 16)
    """
    from lfpbold.schemas import acquisition

    echo = echo or (lambda s: None)
    report = CheckReport()
    roots = _recorded_roots()
    t0 = time.perf_counter()
    for table, role in ((acquisition.FMRIRun, "bold"), (acquisition.LFPRecording, "nwb")):
        names = table.heading.names
        attrs = [f"{role}_{a}" for a in ("path", "sha256", "size", "mtime_ns") if f"{role}_{a}" in names]
        for row in table.proj(*attrs).to_dicts(order_by=table.primary_key):
            key = {k: row[k] for k in table.primary_key}
            stored = row[f"{role}_path"]
            try:
                path = resolve(stored, roots, explicit=data_root)
                report.n_bytes += os.stat(path).st_size
                verify_file(
                    path,
                    sha256=row[f"{role}_sha256"],
                    size=row.get(f"{role}_size"),
                    mtime_ns=row.get(f"{role}_mtime_ns"),
                    verify="full" if row[f"{role}_sha256"] else "stat",
                )
            except FileIntegrityError as err:
                problem = FileProblem(table.__name__, key, err.path, err.reason)
                report.problems.append(problem)
                echo(str(problem))
            report.checked += 1
    report.seconds = time.perf_counter() - t0
    return report
