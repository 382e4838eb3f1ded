"""Where the data lives: DataJoint's settings name a server, else the embedded PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from lfpbold.db import connect, embedded_server, stop_embedded
from lfpbold.pipeline import drop
from tests.conftest import SERVERS, _reachable


def test_datajoint_settings_choose_the_server(monkeypatch, lfpbold_home):
    cfg = SERVERS["postgres"]
    if not _reachable(cfg["host"], cfg["port"]):
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    monkeypatch.setenv("DJ_HOST", cfg["host"])
    monkeypatch.setenv("DJ_USER", cfg["user"])
    monkeypatch.setenv("DJ_PASS", "")
    monkeypatch.setenv("DJ_BACKEND", "postgresql")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    db = connect(prefix=prefix, home=lfpbold_home)
    try:
        assert not db.embedded and db.host == "127.0.0.1" and db.backend == "postgresql"
        assert db.server_version.startswith("PostgreSQL")
    finally:
        drop(prefix, db.connection)


def test_embedded_server_is_reused_and_stops(tmp_path):
    home = tmp_path / "home"
    first = embedded_server(home)
    pid = first.get_pid()
    db = connect(prefix="reuse_", home=home, embedded=True)
    assert db.embedded and db.data_dir == home / "pgdata"
    assert embedded_server(home).get_pid() == pid  # one folder, one server
    drop("reuse_", db.connection)
    db.connection.close()
    assert stop_embedded(home) is True
    assert stop_embedded(home) is False


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


def test_store_writes_of_identical_content_do_not_race(tmp_path):
    """Two populate workers storing the same bytes (same hash path) must both succeed."""
    import datajoint.utils

    import lfpbold.db  # noqa: F401  (installs the store write)

    for attempt in range(5):
        paths, blob = _write_concurrently(datajoint.utils.safe_write, tmp_path / str(attempt))
        assert all(p.read_bytes() == blob for p in paths)
    assert not list(tmp_path.rglob("*.saving"))
