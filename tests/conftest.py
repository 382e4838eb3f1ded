"""Shared fixtures: the three databases the tests run against, and a small simulated study.

The embedded PostgreSQL is always tested. The PostgreSQL server (127.0.0.1:5432) and MariaDB
(127.0.0.1:3306) are tested when reachable; with LFPBOLD_REQUIRE_SERVERS=1 (as .ci/run sets) an
unreachable one fails instead of skipping. Each test gets its own schema prefix and drops it.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

SERVERS = {
    "postgres": dict(host="127.0.0.1", port=5432, user="postgres", password="", backend="postgresql"),
    "mariadb": dict(host="127.0.0.1", port=3306, user="root", password="", backend="mysql"),
}
BACKENDS = ["embedded", *SERVERS]


def _reachable(host, port) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def lfpbold_home(tmp_path_factory):
    """A private LFPBOLD_HOME for the whole run; its embedded server is stopped at the end.

    Made with :func:`tempfile.mkdtemp`, not under pytest's ``/tmp/pytest-of-<user>``: run as root,
    the embedded server runs as its own system user, which must pass through every parent folder,
    and pytest makes that folder 0700 again whenever another pytest run starts.
    """
    from lfpbold.db import stop_embedded

    home = Path(tempfile.mkdtemp(prefix="lfpbold_test_home_"))
    old = os.environ.get("LFPBOLD_HOME")
    os.environ["LFPBOLD_HOME"] = str(home)
    yield home
    stop_embedded(home)
    shutil.rmtree(home, ignore_errors=True)
    if old is None:
        os.environ.pop("LFPBOLD_HOME", None)
    else:
        os.environ["LFPBOLD_HOME"] = old


def connect_backend(backend: str, home: Path, prefix: str):
    from lfpbold.db import connect

    if backend == "embedded":
        return connect(prefix=prefix, home=home, embedded=True)
    cfg = SERVERS[backend]
    if not _reachable(cfg["host"], cfg["port"]):
        if os.environ.get("LFPBOLD_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{backend} server at {cfg['host']}:{cfg['port']} is required but unreachable")
        pytest.skip(f"{backend} server at {cfg['host']}:{cfg['port']} unreachable")
    return connect(prefix=prefix, home=home, embedded=False, **cfg)


@pytest.fixture(params=BACKENDS)
def db(request, lfpbold_home):
    """A connected, activated, empty pipeline under a fresh prefix on each backend; dropped after."""
    from lfpbold.pipeline import drop

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    database = connect_backend(request.param, lfpbold_home, prefix)
    yield database
    drop(prefix, database.connection)


@pytest.fixture
def embedded_db(lfpbold_home):
    """Like ``db`` but on the embedded server only (for tests about behaviour, not dialects)."""
    from lfpbold.pipeline import drop

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    database = connect_backend("embedded", lfpbold_home, prefix)
    yield database
    drop(prefix, database.connection)


@pytest.fixture(scope="session")
def small_study(tmp_path_factory):
    """A small simulated study shared by the pipeline tests (read-only: copy it to modify)."""
    from lfpbold.simulate import simulate_study

    out = tmp_path_factory.mktemp("study") / "study"
    simulate_study(
        out, subjects=2, sessions=1, scans=2, regions=("ACC", "M1"), states=("sedated", "awake"), seed=7, size="small"
    )
    return out


@pytest.fixture(scope="session")
def populated_prefix(lfpbold_home, small_study):
    """The small study ingested and populated once on the embedded server, under its own prefix.

    Read-only: tests that change rows make their own database. Other tests activate other
    prefixes, so use ``populated_db``, which binds the tables to this prefix again.
    """
    from lfpbold.pipeline import drop, ingest_study, populate

    prefix = f"t{uuid.uuid4().hex[:8]}pop_"
    connect_backend("embedded", lfpbold_home, prefix)
    assert not ingest_study(small_study).errors
    outcome = populate(display_progress=False)
    assert not any(r["error_list"] for r in outcome.values()), outcome
    yield prefix
    drop(prefix, connect_backend("embedded", lfpbold_home, prefix).connection)


@pytest.fixture
def populated_db(populated_prefix, lfpbold_home):
    """The populated small study (``populated_prefix``), its tables bound to it for this test."""
    return connect_backend("embedded", lfpbold_home, populated_prefix)
