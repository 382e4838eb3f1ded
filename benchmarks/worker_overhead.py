"""Per-key cost of the job queue outside compute: ``lfpbold worker`` against DataJoint's own loop.

On the embedded PostgreSQL (or the server DJ_* names), declares a table whose ``make`` inserts
one row and computes nothing, then for N keys times, in one run and one process:

- DataJoint's ``populate(reserve_jobs=True)`` (one query for the pending keys, then per key:
  reserve, make in a transaction, complete);
- ``lfpbold.workers.worker(exit_when_idle=True)`` (per key as well: the liveness sweep and the
  queue refresh once per pass, then a reserve-make-complete restricted to that key, which lets
  it say which key it did and finish it on SIGTERM).

Prints milliseconds per key for each and their ratio; asserts nothing.

    python benchmarks/worker_overhead.py [--keys 200]
"""

from __future__ import annotations

import argparse
import time
import uuid

import datajoint as dj

schema = dj.Schema()


@schema
class Key(dj.Lookup):
    definition = """
    key_id : int32
    """


@schema
class Trivial(dj.Computed):
    definition = """
    -> Key
    ---
    value : int64
    """

    def make(self, key):
        self.insert1(dict(key, value=key["key_id"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    args = parser.parse_args()

    import lfpbold
    from lfpbold.workers import worker

    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    db = lfpbold.connect(prefix=prefix)
    schema.activate(prefix + "overhead", connection=db.connection)
    try:
        Key.insert([{"key_id": i} for i in range(args.keys)])
        Trivial.jobs.refresh(delay=-1)
        t0 = time.perf_counter()
        Trivial.populate(reserve_jobs=True)
        dj_s = time.perf_counter() - t0
        assert len(Trivial()) == args.keys
        (Trivial()).delete_quick()
        t0 = time.perf_counter()
        report = worker(tables=[Trivial], exit_when_idle=True, poll=0)
        ours_s = time.perf_counter() - t0
        assert len(report.done) == args.keys and len(Trivial()) == args.keys
    finally:
        schema.drop(prompt=False)
        from lfpbold.pipeline import drop

        drop(prefix, db.connection)
    backend = f"{db.backend}{' (embedded)' if db.embedded else ''}"
    print(f"{args.keys} keys, trivial make, {backend}")
    print(f"DataJoint populate(reserve_jobs=True): {1000 * dj_s / args.keys:6.1f} ms per key")
    print(f"lfpbold worker:                        {1000 * ours_s / args.keys:6.1f} ms per key")
    print(f"ratio worker / DataJoint:              {ours_s / dj_s:6.2f}")


if __name__ == "__main__":
    main()
