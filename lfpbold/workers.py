"""Workers that never strand work: liveness of reservations, the worker loop, locks at first use.

DataJoint's job tables (one ``~~table`` per computed table) record, with each reservation, the
worker's host, process id and database connection id. A worker killed with SIGKILL (or a machine
that died) leaves its reservation behind forever. :func:`requeue_dead_reservations` asks the
database server which connections exist (``pg_stat_activity`` on PostgreSQL,
``information_schema.PROCESSLIST`` on MySQL/MariaDB) and returns to the queue exactly the
reservations whose connection is gone, or that were made before the server last started: no
timeout, and a live worker on another machine is never touched, because its connection is
still there. Every ``populate --reserve-jobs`` and every :func:`worker` pass runs it first.

:func:`schema_lock` serializes declaring the schemas and seeding their lookup rows with a
server-side advisory lock, so any number of workers and ingests can start together on a new
prefix. :func:`worker` is the loop behind ``lfpbold worker``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

logger = logging.getLogger("lfpbold")

__all__ = [
    "schema_lock",
    "live_connection_ids",
    "requeue_dead_reservations",
    "remaining",
    "one_blas_thread",
    "worker",
    "WorkerReport",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
]

#: exit status of ``populate``/``worker`` when some key failed (the error is on its job)
EXIT_FAILED = 1
#: exit status when no key failed but some remain neither done nor errored
EXIT_INCOMPLETE = 3

LOCK_TIMEOUT_S = 600  # MySQL GET_LOCK: how long to wait for another process's declaration


# --- advisory locks --------------------------------------------------------------------------------


def _lock_name(name: str) -> str:
    # MySQL lock names are at most 64 characters; a hash keeps any prefix within that
    return "lfpbold:" + hashlib.sha256(name.encode()).hexdigest()[:40]


def _pg_lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def schema_lock(connection, name: str) -> Iterator[None]:
    """Hold a server-side advisory lock named ``name`` for the block (session-level, re-entrant).

    PostgreSQL ``pg_advisory_lock`` (the embedded server too) or MySQL/MariaDB ``GET_LOCK``.
    Processes that take the same lock, on any machine, run the block one at a time; the lock
    goes with the session, so a killed process never keeps it.

    Parameters
    ----------
    connection : datajoint.Connection
    name : str
        E.g. ``"schemas:" + prefix``.
    """
    if connection.adapter.backend == "postgresql":
        key = _pg_lock_key(name)
        connection.query("SELECT pg_advisory_lock(%s)", args=(key,))
        try:
            yield
        finally:
            connection.query("SELECT pg_advisory_unlock(%s)", args=(key,))
        return
    lock = _lock_name(name)
    got = connection.query("SELECT GET_LOCK(%s, %s)", args=(lock, LOCK_TIMEOUT_S)).fetchone()[0]
    if got != 1:
        raise RuntimeError(
            f"waited {LOCK_TIMEOUT_S} s for another lfpbold process declaring the schemas ({name}); is one stuck?"
        )
    try:
        yield
    finally:
        connection.query("SELECT RELEASE_LOCK(%s)", args=(lock,))


# --- which connections are alive --------------------------------------------------------------------


@dataclass(frozen=True)
class Liveness:
    """What the server says about its sessions, at one moment."""

    ids: frozenset[int]  # connection ids that exist now
    sees_all: bool  # False on MySQL without PROCESS: only our own account's sessions are listed
    user: str  # our user as the job tables record it ('user@host')
    uptime_s: float  # seconds since the server started


def _mysql_sees_all(connection) -> bool:
    grants = [row[0] for row in connection.query("SHOW GRANTS FOR CURRENT_USER()").fetchall()]
    for grant in grants:
        head = grant.upper().split(" TO ")[0]
        if " ON *.*" in head and ("ALL PRIVILEGES" in head or "PROCESS" in head):
            return True
    return False


def live_connection_ids(connection) -> Liveness:
    """The server's current sessions (``pg_stat_activity`` / ``information_schema.PROCESSLIST``).

    Parameters
    ----------
    connection : datajoint.Connection
    """
    if connection.adapter.backend == "postgresql":
        ids = {row[0] for row in connection.query("SELECT pid FROM pg_stat_activity").fetchall()}
        sees_all = True  # every role sees every backend's pid in pg_stat_activity
    else:
        ids = {row[0] for row in connection.query("SELECT ID FROM information_schema.PROCESSLIST").fetchall()}
        sees_all = _mysql_sees_all(connection)
    return Liveness(frozenset(int(i) for i in ids), sees_all, connection.get_user(), server_uptime(connection))


def server_uptime(connection) -> float:
    """Seconds since the database server started."""
    if connection.adapter.backend == "postgresql":
        sql = "SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())"
        return float(connection.query(sql).fetchone()[0])
    return float(connection.query("SHOW GLOBAL STATUS LIKE 'Uptime'").fetchone()[1])


def _where_key(adapter, key: dict) -> tuple[str, list]:
    qi = adapter.quote_identifier
    return " AND ".join(f"{qi(k)}=%s" for k in key), list(key.values())


def requeue_dead_reservations(tables: Iterable, connection=None, echo: Callable[[str], None] | None = None) -> list:
    """Return to the queue every reservation whose worker's database connection is gone.

    A reservation is dead when the connection id it recorded is not among the server's sessions
    now, or when it was made before the server started (ids are reused after a restart). Rows
    with no recorded connection (id 0) are left alone unless they predate the server's start.
    On MySQL without the PROCESS privilege the server lists only our own account's sessions, so
    only reservations made by our own account are judged. Each requeue is one conditional
    UPDATE (still reserved, same connection), so a key a live worker just took is never touched,
    and two sweepers at once do no harm.

    Parameters
    ----------
    tables : iterable of DataJoint computed tables
    connection : datajoint.Connection, optional
        Default: the first table's.
    echo : callable, optional
        Told one line per requeued key.

    Returns
    -------
    list of dict
        Per requeued key: table, key, host, pid, connection_id.
    """
    tables = list(tables)
    if not tables:
        return []
    connection = connection or tables[0].connection
    # a whole second or two earlier than the true start, so no reservation made since is judged dead
    since = connection.adapter.interval_expr(int(server_uptime(connection)) + 2, "second")
    started = f"CURRENT_TIMESTAMP(3) - {since}"
    cols = ["connection_id", "host", "pid", "user"]
    # The reservations first, the server's sessions after: a worker that reserved a key before we
    # looked at the sessions is among them, so a key taken just now is never judged dead.
    reserved = [
        (t, t.jobs, t.jobs.reserved.proj(*cols, before_start=f"reserved_time < {started}").to_dicts()) for t in tables
    ]
    if not any(rows for _, _, rows in reserved):
        return []
    live = live_connection_ids(connection)
    requeued = []
    for table, jobs, rows in reserved:
        for row in rows:
            key = {k: row[k] for k in jobs.primary_key}
            cid = int(row["connection_id"] or 0)
            if not row["before_start"]:
                if cid == 0 or cid in live.ids:
                    continue  # alive, or not ours to judge
                if not live.sees_all and row["user"] != live.user:
                    continue  # another account's session: this server does not show it to us
            where, args = _where_key(connection.adapter, key)
            qi = connection.adapter.quote_identifier
            cursor = connection.query(
                f"UPDATE {jobs.full_table_name} SET {qi('status')}='pending', {qi('connection_id')}=0, "
                f"{qi('reserved_time')}=NULL WHERE {where} AND {qi('status')}='reserved' "
                f"AND {qi('connection_id')}=%s",
                args=[*args, row["connection_id"]],
            )
            if cursor.rowcount == 1:
                item = dict(table=table.__name__, key=key, host=row["host"], pid=row["pid"], connection_id=cid)
                requeued.append(item)
                if echo:
                    echo(
                        f"{table.__name__} {key}: returned to the queue (its worker, pid {row['pid']} on "
                        f"{row['host']}, database connection {cid}, is gone)"
                    )
    return requeued


# --- what is left -----------------------------------------------------------------------------------


def _key_tuple(key: dict, names) -> tuple:
    return tuple(key[n] for n in names)


def remaining(tables: Iterable, failed: Iterable[tuple[str, dict]] = ()) -> dict[str, dict]:
    """Keys neither done nor errored, per table: ``{"n": ..., "reserved": [(host, pid), ...]}``.

    A key is errored when its job says so, or when it is in ``failed`` (``(table name, key)``
    pairs from a populate without job reservation). Only tables with something left appear.
    """
    failed_by_table: dict[str, list] = {}
    for name, key in failed:
        failed_by_table.setdefault(name, []).append(dict(key))
    out = {}
    for table in tables:
        todo = (table.key_source - table.proj()).proj()
        names = todo.primary_key
        keys = {_key_tuple(k, names) for k in todo.keys()}
        if not keys:
            continue
        jobs = table.jobs
        done_badly = jobs & "status in ('error', 'ignore')"
        jnames = jobs.primary_key
        bad = {_key_tuple(k, jnames) for k in done_badly.keys()} if jnames == names else set()
        bad |= {_key_tuple(k, names) for k in failed_by_table.get(table.__name__, [])}
        left = keys - bad
        if left:
            reserved = [(r["host"], r["pid"]) for r in jobs.reserved.proj("host", "pid").to_dicts()]
            out[table.__name__] = {"n": len(left), "reserved": reserved}
    return out


def describe_remaining(left: dict[str, dict]) -> list[str]:
    """One line per table with keys left."""
    lines = []
    for name, info in left.items():
        line = f"{name}: {info['n']} key(s) neither done nor failed"
        if info["reserved"]:
            who = sorted({f"pid {p} on {h}" for h, p in info["reserved"]})
            line += f"; {len(info['reserved'])} reserved by live workers ({', '.join(who[:4])})"
        lines.append(line)
    return lines


# --- BLAS threads -----------------------------------------------------------------------------------


@contextmanager
def one_blas_thread(enabled: bool = True) -> Iterator[None]:
    """One BLAS/OpenMP thread in this process (and in processes forked inside the block).

    With several worker processes on a machine, each process's OpenBLAS would otherwise start a
    thread per core, and the processes fight over the cores. threadpoolctl limits the libraries
    loaded now (numpy's and scipy's OpenBLAS are loaded first, as makes use both); the
    ``*_NUM_THREADS`` variables reach any library loaded later inside the block.
    """
    if not enabled:
        yield
        return
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401  (scipy bundles an OpenBLAS of its own)
    from threadpoolctl import threadpool_limits

    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


# --- the worker loop --------------------------------------------------------------------------------


@dataclass
class WorkerReport:
    """What a :func:`worker` did."""

    done: list[tuple[str, dict]] = field(default_factory=list)
    failed: list[tuple[str, dict, str]] = field(default_factory=list)
    requeued: list[dict] = field(default_factory=list)
    remaining: dict[str, dict] = field(default_factory=dict)
    stopped_by_signal: bool = False

    @property
    def exit_code(self) -> int:
        """0 when everything is done; :data:`EXIT_FAILED` if a key failed; else
        :data:`EXIT_INCOMPLETE` if keys remain."""
        if self.failed:
            return EXIT_FAILED
        if self.remaining:
            return EXIT_INCOMPLETE
        return 0


class _Stop:
    """Set by SIGTERM (and SIGINT): finish the current key, then leave."""

    def __init__(self):
        self.requested = False
        self.signum = None

    def __call__(self, signum, frame):
        self.requested = True
        self.signum = signum


def _pending_keys(table) -> list[dict]:
    pending = table.jobs.pending & "scheduled_time <= CURRENT_TIMESTAMP(3)"
    return pending.keys(order_by="priority ASC, scheduled_time ASC")


def _anything_in_flight(tables) -> bool:
    """A key reserved by some worker, or pending and still to do (a pending job whose key has left
    the key source waits for DataJoint's stale-job cleanup, and is no work)."""
    for t in tables:
        jobs = t().jobs
        if len(jobs.reserved) or len(jobs.pending.restrict(t.key_source.proj(), semantic_check=False)):
            return True
    return False


def _serve(
    tables: list, *, poll: float, exit_when_idle: bool, max_keys: int | None, echo: Callable[[str], None]
) -> WorkerReport:
    from lfpbold.compat import deferred_sigterm, populate_one

    report = WorkerReport()
    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    who = f"worker pid {os.getpid()}"
    try:
        while not stop.requested:
            worked = False
            for table in tables:
                if stop.requested or (max_keys is not None and len(report.done) + len(report.failed) >= max_keys):
                    break
                _before_table(table, echo)
                report.requeued += requeue_dead_reservations([table], echo=echo)
                instance = table()  # one instance per pass: DataJoint builds a job table object per instance
                instance.jobs.refresh(delay=-1)
                for key in _pending_keys(instance):
                    if stop.requested or (max_keys is not None and len(report.done) + len(report.failed) >= max_keys):
                        break
                    t0 = time.perf_counter()
                    with deferred_sigterm():  # SIGTERM waits until the key is committed
                        status = populate_one(instance, key)
                    if status is True:
                        worked = True
                        report.done.append((table.__name__, key))
                        echo(f"{table.__name__} {key}: done in {time.perf_counter() - t0:.1f} s ({who})")
                    elif isinstance(status, tuple):
                        err_key, message = status
                        worked = True
                        report.failed.append((table.__name__, dict(err_key), message))
                        echo(f"{table.__name__} {dict(err_key)}: failed: {message} ({who})")
            if worked or stop.requested:
                continue
            if max_keys is not None and len(report.done) + len(report.failed) >= max_keys:
                break
            if exit_when_idle and not _anything_in_flight(tables):
                break  # nothing pending, nothing any live worker could still unlock downstream
            deadline = time.monotonic() + poll
            while not stop.requested and time.monotonic() < deadline:
                time.sleep(min(0.2, poll))
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    report.stopped_by_signal = stop.requested
    if stop.requested:
        echo(f"{who}: stopped by signal {stop.signum} after finishing its current key")
    return report


def _before_table(table, echo) -> None:
    from lfpbold.schemas import cohort

    if table is cohort.Cohort:
        from lfpbold.pipeline import refresh_stale_cohorts

        refresh_stale_cohorts(echo)


def _child(tables, options, out_path) -> None:
    import pickle

    conn = tables[0].connection
    conn.connect()  # a session of its own (lfpbold.compat records its id for the liveness sweep)
    with one_blas_thread():
        report = _serve(tables, **options)
    with open(out_path, "wb") as f:
        pickle.dump((report.done, report.failed, report.requeued, report.stopped_by_signal), f)


def worker(
    *,
    tables: list | None = None,
    processes: int = 1,
    poll: float = 30.0,
    exit_when_idle: bool = False,
    max_keys: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> WorkerReport:
    """Work through every computed table's job queue until stopped (or idle, if asked).

    Each pass goes over the tables upstream first: returns dead workers' reservations to the
    queue (:func:`requeue_dead_reservations`), adds the new keys, and computes each pending key
    it manages to reserve. When a pass finds nothing to do, the worker sleeps ``poll`` seconds,
    or, with ``exit_when_idle``, leaves once no key is pending or reserved by anyone (a key
    another worker holds may still unlock work downstream). SIGTERM or SIGINT: the current key
    is finished and committed, then the worker leaves.

    Parameters
    ----------
    tables : list, optional
        Default: every lfpbold computed table (:func:`lfpbold.pipeline.computed_tables`).
    processes : int
        Worker processes on this machine, each with its own database session and one BLAS thread.
    poll : float
        Seconds between looks at an empty queue.
    exit_when_idle : bool
        Leave when there is nothing left to do (SLURM jobs, tests) instead of waiting for more.
    max_keys : int, optional
        Leave after this many keys (per process).
    echo : callable, optional
        Told one line per key.

    Returns
    -------
    WorkerReport
        ``exit_code`` is 0 when everything is done, 1 when a key failed, 3 when keys remain.
    """
    from lfpbold.pipeline import computed_tables

    if processes < 1:
        raise ValueError(f"processes must be at least 1; got {processes}")
    if poll < 0:
        raise ValueError(f"poll must be >= 0 seconds; got {poll}")
    tables = list(tables) if tables is not None else computed_tables()
    echo = echo or (lambda s: None)
    options = dict(poll=poll, exit_when_idle=exit_when_idle, max_keys=max_keys, echo=echo)
    if processes == 1:
        report = _serve(tables, **options)
    else:
        report = _serve_processes(tables, processes, options)
    report.remaining = remaining(tables, [(n, k) for n, k, _ in report.failed])
    return report


def _serve_processes(tables, processes, options) -> WorkerReport:
    import multiprocessing as mp
    import pickle
    import tempfile
    from pathlib import Path

    ctx = mp.get_context("fork")  # the tables and their connection object carry over; each child reconnects
    out_dir = Path(tempfile.mkdtemp(prefix="lfpbold-worker-"))
    outs = [out_dir / f"{i}.pickle" for i in range(processes)]
    conn = tables[0].connection
    conn.close()
    children = [ctx.Process(target=_child, args=(tables, options, out)) for out in outs]
    for child in children:
        child.start()
    conn.connect()

    def forward(signum, frame):
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    report = WorkerReport()
    try:
        for child in children:
            child.join()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    for out in outs:
        if out.exists():
            done, failed, requeued, stopped = pickle.loads(out.read_bytes())
            out.unlink()
            report.done += done
            report.failed += failed
            report.requeued += requeued
            report.stopped_by_signal |= stopped
    if not any(out_dir.iterdir()):
        out_dir.rmdir()
    lost = [c.pid for c in children if c.exitcode not in (0, None)]
    for pid in lost:
        report.failed.append(("worker", {"pid": pid}, "worker process exited abnormally"))
    return report
