"""Workers that never strand work, and safe concurrent first use, on real database servers.

- the liveness sweep: a reservation returns to the queue exactly when its connection is gone
  (or predates the server's start), never while its worker's session lives;
- kill -9 of a worker in the middle of a make, then a second worker finishes everything, with
  rows identical to an uninterrupted run;
- SIGTERM finishes the current key, and the worker says keys remain (exit 3);
- 4 workers started at the same instant on a fresh prefix, 48 keys, each computed exactly once;
- one BLAS thread per worker process;
- ``lfpbold slurm-script``: an array of 2 workers on a one-node SLURM cluster (``.ci/slurm-up``);
- ``docker/``: ``docker-compose config`` of both compose files, and the image's entry point.

The PostgreSQL server and MariaDB are used when reachable (skip otherwise; fail with
LFPBOLD_REQUIRE_SERVERS=1), like the other database tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SERVERS, _reachable, connect_backend

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[1]
LFPBOLD = str(Path(sys.executable).parent / "lfpbold")


def _server(name):
    cfg = SERVERS[name]
    if not _reachable(cfg["host"], cfg["port"]):
        if os.environ.get("LFPBOLD_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{name} server at {cfg['host']}:{cfg['port']} is required but unreachable")
        pytest.skip(f"{name} server at {cfg['host']}:{cfg['port']} unreachable")
    return cfg


def _env(name: str, home: Path, prefix: str, **extra) -> dict:
    """A worker process's environment: the server by DataJoint's DJ_* settings only."""
    cfg = _server(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    env.update(
        DJ_HOST=cfg["host"],
        DJ_PORT=str(cfg["port"]),
        DJ_USER=cfg["user"],
        DJ_PASS=cfg["password"],
        DJ_BACKEND=cfg["backend"],
        LFPBOLD_HOME=str(home),
        LFPBOLD_PREFIX=prefix,
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def _drop_prefix(name, prefix):
    import datajoint as dj

    from lfpbold.compat import quiet_mariadb_warning
    from lfpbold.pipeline import drop

    cfg = SERVERS[name]
    with quiet_mariadb_warning():
        conn = dj.Connection(cfg["host"], cfg["user"], cfg["password"], cfg["port"], backend=cfg["backend"])
    for schema in dj.list_schemas(connection=conn):
        if schema == prefix + "workertest":
            s = dj.Schema(connection=conn)
            s.activate(schema, connection=conn, create_schema=False)
            s.drop(prompt=False)
    drop(prefix, conn)
    conn.close()


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """Two scans of one implant: enough for one worker to be killed mid-make and another to finish."""
    from lfpbold.simulate import simulate_study

    out = tmp_path_factory.mktemp("workers") / "study"
    simulate_study(out, subjects=1, sessions=1, scans=2, regions=("ACC",), states=("sedated",), seed=3, size="small")
    return out


# --- the liveness sweep -----------------------------------------------------------------------------


@pytest.fixture(params=["embedded", *SERVERS])
def square_db(request, lfpbold_home):
    """lfpbold's schemas and the trivial Square table under a fresh prefix on each backend."""
    from tests import worker_tables

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    database = connect_backend(request.param, lfpbold_home, prefix)
    worker_tables.activate(prefix, database.connection)
    yield database
    worker_tables.schema.drop(prompt=False)
    from lfpbold.pipeline import drop

    drop(prefix, database.connection)


def _other_session(database):
    import datajoint as dj

    from lfpbold.compat import quiet_mariadb_warning

    c = database.connection
    with quiet_mariadb_warning():
        return dj.Connection(
            c.conn_info["host"],
            c.conn_info["user"],
            c.conn_info["passwd"] or "",
            c.conn_info["port"],
            backend=c.adapter.backend,
            use_tls=False if database.embedded else None,
        )


def _reserve_as(table, key, connection_id, host="elsewhere", user=None):
    """Mark ``key``'s job reserved by the session ``connection_id`` of a worker on ``host``."""
    jobs = table.jobs
    jobs.refresh(delay=-1)
    assert jobs.reserve(key)
    row = {**key, "connection_id": connection_id, "host": host, "pid": 4242}
    if user is not None:
        row["user"] = user
    jobs.update1(row)


def test_sweep_requeues_exactly_the_dead_reservations(square_db):
    from lfpbold.workers import live_connection_ids, requeue_dead_reservations
    from tests.worker_tables import Square

    keys = Square.key_source.keys(order_by="item")[:3]
    other = _other_session(square_db)
    gone = _other_session(square_db)
    gone_id = gone.connection_id
    _reserve_as(Square, keys[0], other.connection_id)  # a live worker on another machine
    _reserve_as(Square, keys[1], gone_id)
    _reserve_as(Square, keys[2], 0)  # nothing recorded: not ours to judge
    gone.close()
    for _ in range(100):  # the server ends the session a moment after the client goes
        if gone_id not in live_connection_ids(square_db.connection).ids:
            break
        time.sleep(0.1)
    requeued = requeue_dead_reservations([Square])
    assert [r["key"] for r in requeued] == [keys[1]]
    assert requeued[0]["connection_id"] == gone_id and requeued[0]["host"] == "elsewhere"
    status = {k["item"]: (Square.jobs & k).fetch1("status") for k in keys}
    assert status == {keys[0]["item"]: "reserved", keys[1]["item"]: "pending", keys[2]["item"]: "reserved"}
    assert requeue_dead_reservations([Square]) == []  # a second sweep finds nothing more
    other.close()


def test_sweep_requeues_reservations_older_than_the_server(square_db):
    from lfpbold.workers import requeue_dead_reservations
    from tests.worker_tables import Square

    key = Square.key_source.keys(order_by="item")[0]
    conn = square_db.connection
    _reserve_as(Square, key, conn.connection_id)  # our own live session's id, reused after a restart
    q = conn.adapter.quote_identifier
    conn.query(
        f"UPDATE {Square.jobs.full_table_name} SET {q('reserved_time')}=%s WHERE {q('item')}=%s",
        args=("2000-01-01 00:00:00", key["item"]),
    )
    assert [r["key"] for r in requeue_dead_reservations([Square])] == [key]


def test_reconnect_records_the_new_session_id(square_db):
    conn = square_db.connection
    conn.close()
    conn.connect()
    assert conn.connection_id == conn.adapter.get_connection_id(conn._conn)


def test_upstream_connect_keeps_the_old_connection_id(square_db):
    from lfpbold import compat

    conn = _other_session(square_db)
    first = conn.connection_id
    conn.close()
    compat.upstream_connect()(conn)
    now = conn.adapter.get_connection_id(conn._conn)
    assert now != first
    assert conn.connection_id == first, (
        "datajoint's Connection.connect now refreshes connection_id: the problem behind lfpbold.compat's "
        "'connection_id_refresh' workaround looks fixed; delete the workaround and its tests"
    )
    conn.close()


def test_upstream_sigterm_aborts_the_make(square_db):
    from tests.worker_tables import Square

    keys = Square.key_source.keys(order_by="item")[:1]
    original = Square.make

    def make(self, key):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        original(self, key)

    Square.make = make
    try:
        with pytest.raises(SystemExit):
            Square.populate(keys[0], reserve_jobs=True, max_calls=1, suppress_errors=True)
    finally:
        Square.make = original
    assert "SIGTERM" in (Square.jobs & keys[0]).fetch1("error_message"), (
        "DataJoint's distributed populate no longer aborts make() on SIGTERM: lfpbold.compat's "
        "'sigterm_aborts_make' workaround looks unneeded; delete it and its tests"
    )


def test_deferred_sigterm_lets_the_make_finish(square_db, tmp_path, monkeypatch):
    from lfpbold.compat import deferred_sigterm
    from tests.worker_tables import Square

    monkeypatch.setenv("WORKER_TEST_LOG", str(tmp_path / "log"))
    key = Square.key_source.keys(order_by="item")[0]
    original = Square.make
    got = []

    def make(self, key):
        os.kill(os.getpid(), signal.SIGTERM)
        original(self, key)

    old = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    Square.make = make
    try:
        with deferred_sigterm():
            result = Square.populate(key, reserve_jobs=True, max_calls=1, suppress_errors=True)
        assert got == [signal.SIGTERM]  # delivered once the block ended, to the caller's handler
    finally:
        Square.make = original
        signal.signal(signal.SIGTERM, old)
    assert result["success_count"] == 1 and not result["error_list"]
    assert len(Square & key) == 1


def test_upstream_populate_queries_the_queue_for_each_key(square_db, tmp_path, monkeypatch):
    """DataJoint's populate(key, max_calls=1) reads the pending jobs again on every call."""
    import datajoint as dj

    from tests.worker_tables import Square

    monkeypatch.setenv("WORKER_TEST_LOG", str(tmp_path / "log"))
    Square.jobs.refresh(delay=-1)
    key = Square.key_source.keys(order_by="item")[0]
    seen = []
    query = dj.Connection.query
    monkeypatch.setattr(
        dj.Connection, "query", lambda self, sql, *a, **k: seen.append(str(sql)) or query(self, sql, *a, **k)
    )
    Square().populate(key, reserve_jobs=True, refresh=False, max_calls=1, suppress_errors=True)
    monkeypatch.setattr(dj.Connection, "query", query)
    jobs = Square.jobs.full_table_name
    assert any(sql.lstrip().upper().startswith("SELECT") and jobs in sql for sql in seen), (
        "DataJoint's populate(key) no longer reads the job queue per key: lfpbold.compat's "
        "'populate_one_key' workaround may be unneeded; delete it and its tests"
    )


def test_populate_one_reserves_makes_completes_and_records_errors(square_db, tmp_path, monkeypatch):
    from lfpbold.compat import populate_one
    from tests.worker_tables import Square

    monkeypatch.setenv("WORKER_TEST_LOG", str(tmp_path / "log"))
    table = Square()
    table.jobs.refresh(delay=-1)
    first, second, third = table.key_source.keys(order_by="item")[:3]
    assert populate_one(table, first) is True
    assert (Square & first).fetch1("value") == first["item"] ** 2
    assert not len(table.jobs & first)  # completed jobs are deleted (keep_completed off)
    assert populate_one(table, first) is False  # nothing pending for it any more
    _reserve_as(Square, second, connection_id=12345)
    assert populate_one(table, second) is False and not len(Square & second)  # another worker holds it

    def fail(self, key):
        raise ValueError("no square today")

    monkeypatch.setattr(Square, "make", fail)
    status = populate_one(table, third)
    assert isinstance(status, tuple) and dict(status[0]) == third and "no square today" in status[1]
    assert (table.jobs & third).fetch1("status") == "error" and not len(Square & third)


def test_one_blas_thread_in_forked_processes():
    import multiprocessing as mp

    from threadpoolctl import threadpool_info

    from lfpbold.workers import one_blas_thread

    if not [p for p in threadpool_info() if p.get("user_api") == "blas"]:
        pytest.skip("no BLAS library loaded")

    def child(q):
        q.put([p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"])

    ctx = mp.get_context("fork")
    with one_blas_thread():
        q = ctx.SimpleQueue()
        p = ctx.Process(target=child, args=(q,))
        p.start()
        threads = q.get()
        p.join()
    assert threads and set(threads) == {1}


# --- four workers at the same instant on a fresh prefix ---------------------------------------------


@pytest.mark.parametrize("server", list(SERVERS))
def test_four_workers_start_together_on_a_fresh_prefix(server, lfpbold_home, tmp_path):
    from tests.worker_tables import N_ITEMS

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    logs = [tmp_path / f"makes-{i}.log" for i in range(4)]
    env = _env(server, lfpbold_home, prefix)
    env.pop("OMP_NUM_THREADS")
    env.pop("OPENBLAS_NUM_THREADS")  # the workers must bring BLAS to one thread themselves
    start_at = time.time() + 8  # every process imported and waiting on the clock before that
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.worker_tables", prefix, str(start_at), str(log), str(n)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for log, n in zip(logs, (1, 1, 1, 2), strict=True)  # the last with two worker processes
        ]
        outs = [p.communicate(timeout=600)[0] for p in procs]
        for p, out in zip(procs, outs, strict=True):
            assert p.returncode == 0, out
        per_worker = [[line.split() for line in log.read_text().splitlines()] if log.exists() else [] for log in logs]
        lines = [line for worker_lines in per_worker for line in worker_lines]
        items = sorted(int(item) for item, _, _ in lines)
        assert items == list(range(N_ITEMS)), "every key computed exactly once"
        # --processes 2: one BLAS thread in each process (a lone process keeps BLAS's default)
        assert per_worker[3] and {blas for _, _, blas in per_worker[3]} == {"1"}, per_worker[3]
        assert all("failed=0 exit=0" in out for out in outs), outs
        import datajoint as dj

        conn = connect_backend(server, lfpbold_home, prefix).connection
        vm = dj.virtual_schema(prefix + "workertest", connection=conn)
        assert len(vm.Square()) == N_ITEMS
        print(f"{server}: keys per worker process:", np.unique([pid for _, pid, _ in lines], return_counts=True)[1])
    finally:
        _drop_prefix(server, prefix)


# --- kill -9 in the middle of a make; SIGTERM finishes the key --------------------------------------


def _wait_reserved(table, proc, timeout=300):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "worker exited"
        rows = table.jobs.reserved.proj("connection_id").to_dicts()
        if rows:
            return rows[0]
        time.sleep(0.2)
    raise AssertionError("the worker never reserved a job")


def _snapshot():
    """Every computed table's rows (parts too), by primary key, fetched from the active prefix."""
    from lfpbold.pipeline import _parts, computed_tables

    out = {}
    for table in computed_tables():
        for t in [table, *_parts(table)]:
            rows = t().to_dicts(order_by=t.primary_key)
            out[t.__name__] = rows
    return out


def _assert_same(a, b, where="rows"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple) and not isinstance(a, str):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "fc":
            np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            assert a.shape == b.shape and (a == b).all(), where
    elif isinstance(a, float):
        assert a == b or (np.isnan(a) and np.isnan(b)), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("server", list(SERVERS))
def test_kill_9_mid_make_then_another_worker_finishes(server, tiny_study, lfpbold_home, tmp_path):
    from lfpbold.pipeline import computed_tables, ingest_study, populate
    from lfpbold.schemas import analysis
    from lfpbold.workers import one_blas_thread

    reference_prefix = f"t{uuid.uuid4().hex[:8]}_"
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    env = _env(server, lfpbold_home, prefix)
    try:
        connect_backend(server, lfpbold_home, reference_prefix)  # the uninterrupted run
        ingest_study(tiny_study)
        with one_blas_thread():  # as the workers run, so sums are taken in the same order
            populate(display_progress=False)
        reference = _snapshot()

        connect_backend(server, lfpbold_home, prefix)
        ingest_study(tiny_study)
        # The first worker's CleanLFP computation starts with a 5 s pause (a sitecustomize on its
        # path wraps clean_implant), so the kill lands inside the make whatever the machine's speed:
        # the make itself takes 0.4 s here, and a kill 1 s after the reservation once came too late.
        slow = tmp_path / "slow_make"
        slow.mkdir()
        (slow / "sitecustomize.py").write_text(
            "import time\nimport lfpbold.lfp as _lfp\n_clean = _lfp.clean_implant\n\n\n"
            "def _slow(*args, **kwargs):\n    time.sleep(5.0)\n    return _clean(*args, **kwargs)\n\n\n"
            "_lfp.clean_implant = _slow\n"
        )
        slow_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(slow), env.get("PYTHONPATH")]))}
        first = subprocess.Popen(
            [LFPBOLD, "worker", "--poll", "0.5"],
            env=slow_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        job = _wait_reserved(analysis.CleanLFP, first)
        time.sleep(1.0)  # inside CleanLFP's make: its computation is paused for 5 s
        first.send_signal(signal.SIGKILL)
        first.wait()
        key = {k: job[k] for k in analysis.CleanLFP.jobs.primary_key}
        assert not analysis.CleanLFP & key, "the killed make left no row"
        assert (analysis.CleanLFP.jobs & key).fetch1("status") == "reserved", "DataJoint alone strands it"

        second = subprocess.run(
            [LFPBOLD, "worker", "--exit-when-idle", "--poll", "0.5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "returned to the queue" in second.stdout
        assert "is gone" in second.stdout
        connect_backend(server, lfpbold_home, prefix)
        _assert_same(reference, _snapshot())
        assert sum(len(t.jobs) for t in computed_tables()) == 0  # nothing reserved, pending or failed
    finally:
        _drop_prefix(server, reference_prefix)
        _drop_prefix(server, prefix)


@pytest.mark.parametrize("server", list(SERVERS))
def test_sigterm_finishes_the_current_key(server, tiny_study, lfpbold_home):
    from lfpbold.pipeline import ingest_study
    from lfpbold.schemas import analysis

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    env = _env(server, lfpbold_home, prefix)
    try:
        connect_backend(server, lfpbold_home, prefix)
        ingest_study(tiny_study)
        proc = subprocess.Popen(
            [LFPBOLD, "worker", "--poll", "0.5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        job = _wait_reserved(analysis.CleanLFP, proc)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=300)[0]
        key = {k: job[k] for k in analysis.CleanLFP.jobs.primary_key}
        assert proc.returncode == 3, out  # stopped with keys left: says so, exits non-zero
        assert "stopped by signal 15 after finishing its current key" in out
        assert "neither done nor failed" in out and "incomplete" in out
        assert len(analysis.CleanLFP & key) == 1, out  # the key it was on is done
        assert not (analysis.CleanLFP.jobs & "status in ('error', 'reserved')"), out
        assert len(analysis.CleanLFP()) == 1, "and it took no other key"

        # populate leaves a key a live worker holds alone, and says the run is incomplete (exit 3)
        db = connect_backend(server, lfpbold_home, prefix)
        other = _other_session(db)
        held = (analysis.CleanLFP.key_source - analysis.CleanLFP.proj()).keys()[0]
        _reserve_as(analysis.CleanLFP, held, other.connection_id)
        pop = subprocess.run(
            [LFPBOLD, "populate", "--reserve-jobs"], env=env, capture_output=True, text=True, timeout=900
        )
        assert pop.returncode == 3, pop.stdout + pop.stderr
        assert "CleanLFP: 1 key(s) neither done nor failed, 1 reserved by live workers" in pop.stderr
        assert "incomplete" in pop.stderr
        assert not analysis.CleanLFP & held
        assert (analysis.CleanLFP.jobs & held).fetch1("status") == "reserved"
        other.close()
    finally:
        _drop_prefix(server, prefix)


# --- populate says when keys remain -----------------------------------------------------------------


def test_remaining_names_the_keys_live_workers_hold(square_db):
    """A key reserved by a live session is neither done nor failed, and the report says who holds it."""
    from lfpbold.pipeline import populate
    from lfpbold.workers import describe_remaining, remaining
    from tests.worker_tables import Square

    key = Square.key_source.keys(order_by="item")[0]
    other = _other_session(square_db)
    _reserve_as(Square, key, other.connection_id)
    populate(reserve_jobs=True, display_progress=False)  # lfpbold's own tables: nothing to do
    left = remaining([Square])
    assert left["Square"]["n"] == len(Square.key_source)
    assert left["Square"]["reserved"] == [("elsewhere", 4242)]
    assert "reserved by live workers (pid 4242 on elsewhere)" in describe_remaining(left)[0]
    other.close()


# --- SLURM ------------------------------------------------------------------------------------------


def test_slurm_script_never_holds_the_password(tmp_path):
    from lfpbold.cluster import slurm_script

    env = {"DJ_HOST": "db.lab", "DJ_USER": "ana", "DJ_PASS": "s3cret-Pass", "DJ_BACKEND": "postgresql"}
    text = slurm_script(workers=3, processes=2, environ=env, workdir=tmp_path, lfpbold="/opt/lfpbold")
    assert "s3cret-Pass" not in text and "DJ_PASS=" not in text
    assert "#SBATCH --array=1-3" in text and "#SBATCH --cpus-per-task=2" in text
    assert "export DJ_HOST=db.lab" in text and "worker --exit-when-idle --processes 2" in text
    with pytest.raises(ValueError, match="database server every node reaches"):
        slurm_script(environ={}, workdir=tmp_path, lfpbold="/opt/lfpbold")
    with pytest.raises(ValueError, match="time"):
        slurm_script(environ=env, time="tomorrow; rm -rf /", lfpbold="/opt/lfpbold")


def test_slurm_array_of_two_workers_populates_a_study(tiny_study, lfpbold_home, tmp_path):
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is absent: SLURM is not installed (.ci/slurm-up installs and starts a one-node cluster)")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        pytest.skip(f"slurmctld is not running ({ping.stdout.strip() or ping.stderr.strip()}); run .ci/slurm-up")
    from lfpbold.pipeline import computed_tables, ingest_study
    from lfpbold.schemas import analysis, cohort

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    env = _env("postgres", lfpbold_home, prefix)
    script = tmp_path / "workers.sbatch"
    try:
        connect_backend("postgres", lfpbold_home, prefix)
        ingest_study(tiny_study)
        made = subprocess.run(
            [LFPBOLD, "slurm-script", str(script), "--workers", "2", "--mem", "1G", "--time", "30:00"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        text = script.read_text()
        assert "DJ_PASS=" not in text and "export DJ_HOST=127.0.0.1" in text
        run = subprocess.run(["sbatch", "--wait", "--parsable", str(script)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=1200)  # fmt: skip
        logs = "".join(p.read_text() for p in sorted((tmp_path / "slurm-logs").glob("*.out")))
        assert run.returncode == 0, run.stdout + run.stderr + logs
        assert len(list((tmp_path / "slurm-logs").glob("lfpbold-worker-*_*.out"))) == 2, logs
        assert len(analysis.CleanLFP()) == 2 and len(cohort.Cohort()) == 1, logs
        assert all(not (t.jobs & "status in ('error', 'reserved', 'pending')") for t in computed_tables()), logs
    finally:
        _drop_prefix("postgres", prefix)


# --- Docker compose and the image's entry point -----------------------------------------------------


@pytest.mark.parametrize("compose", ["compose.postgres.yml", "compose.mysql.yml"])
def test_compose_files_are_valid(compose, tmp_path):
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is absent (Debian package docker-compose)")
    secret = tmp_path / "db_password"
    secret.write_text("not-in-any-file\n")
    env = dict(os.environ, LFPBOLD_DB_PASSWORD_FILE=str(secret), LFPBOLD_DATA=str(tmp_path / "data"))
    out = subprocess.run([exe, "-f", str(ROOT / "docker" / compose), "config"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "not-in-any-file" not in out.stdout  # the password stays in its file
    for needed in ("DJ_HOST", "DJ_BACKEND", "LFPBOLD_SECRETS_DIR", "database.password", "worker", "stop_grace_period"):
        assert needed in out.stdout, needed
    assert "DJ_PASS" not in out.stdout


def test_entrypoint_runs_a_worker_from_dj_settings_and_a_secrets_file(tiny_study, lfpbold_home, tmp_path):
    """docker/entrypoint.sh as the image runs it, without a container: DJ_* plus a secrets file."""
    _server("postgres")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    # the server trusts local connections, so any password works; it must never be printed
    (secrets / "database.password").write_text("entrypoint-Secret-42\n")
    env = _env("postgres", lfpbold_home, prefix, LFPBOLD_SECRETS_DIR=str(secrets))
    env.pop("DJ_PASS")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # the image's lfpbold and python
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "docker" / "entrypoint.sh"), "db"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "backend:  postgresql" in out.stdout and f"prefix:   {prefix}" in out.stdout
        assert "entrypoint-Secret-42" not in out.stdout + out.stderr
        idle = subprocess.run(
            ["bash", str(ROOT / "docker" / "entrypoint.sh"), "worker", "--exit-when-idle"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert idle.returncode == 0, idle.stdout + idle.stderr
        assert "worker: 0 key(s) done" in idle.stdout
    finally:
        _drop_prefix("postgres", prefix)
