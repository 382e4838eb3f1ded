"""A trivial computed table for the worker tests, and a worker process that serves it.

``python -m tests.worker_tables PREFIX START_AT LOG [PROCESSES]`` waits until the clock reads
START_AT (so several processes begin at the same instant), connects with lfpbold (declaring
lfpbold's schemas on a fresh prefix), declares this schema (its lookup rows too) and runs
``lfpbold.workers.worker`` over every lfpbold table and ``Square`` until nothing is left. Each
``make`` appends one line to LOG: the item, the process id and the BLAS threads it ran with.
"""

from __future__ import annotations

import os
import sys
import time

import datajoint as dj

N_ITEMS = 48
schema = dj.Schema()


@schema
class Item(dj.Lookup):
    definition = """
    item : int32
    """
    contents = [{"item": i} for i in range(N_ITEMS)]


@schema
class Square(dj.Computed):
    definition = """
    -> Item
    ---
    value : int64
    """

    def make(self, key):
        from threadpoolctl import threadpool_info

        blas = max((p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"), default=0)
        time.sleep(0.1)  # long enough for the workers to contend for keys
        with open(os.environ["WORKER_TEST_LOG"], "a") as f:
            f.write(f"{key['item']} {os.getpid()} {blas}\n")
        self.insert1(dict(key, value=key["item"] ** 2))


def activate(prefix: str, connection) -> None:
    """Bind the tables to ``prefix + 'workertest'``, declared under lfpbold's first-use lock."""
    from lfpbold.workers import schema_lock

    with schema_lock(connection, "schemas:" + prefix):
        schema.activate(prefix + "workertest", connection=connection)
        Square.jobs  # noqa: B018  (declared on first access)


def main(argv: list[str]) -> int:
    prefix, start_at, log = argv[0], float(argv[1]), argv[2]
    processes = int(argv[3]) if len(argv) > 3 else 1
    os.environ["WORKER_TEST_LOG"] = log
    import numpy  # noqa: F401  (BLAS loaded before the clock, so threadpoolctl sees it)

    import lfpbold
    from lfpbold.pipeline import computed_tables
    from lfpbold.workers import worker

    time.sleep(max(0.0, start_at - time.time()))
    db = lfpbold.connect(prefix=prefix)
    activate(prefix, db.connection)
    report = worker(tables=[*computed_tables(), Square], processes=processes, poll=0.2, exit_when_idle=True, echo=print)
    print(f"done={len(report.done)} failed={len(report.failed)} exit={report.exit_code}", flush=True)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
