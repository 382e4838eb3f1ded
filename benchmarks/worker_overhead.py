"""Per-key cost of the job queue outside compute: ``lfpbold worker`` against DataJoint's own loop.

On the embedded PostgreSQL (or the server DJ_* names), declares a table whose ``make`` inserts
one row and computes nothing, then for N keys times, in one run and one process:

- DataJoint's ``populate(reserve_jobs=True, refresh=True)`` (adds the jobs, one query for the
  pending keys, then per key: reserve, make in a transaction, complete);
- ``lfpbold.workers.worker(exit_when_idle=True)``: per pass the liveness sweep, the queue
  refresh and one query for the pending keys; per key the same reserve-make-complete
  (:func:`lfpbold.compat.populate_one`), which lets it say which key it did and finish it on
  SIGTERM; a last pass finds nothing and leaves;
- the same worker as it was before (a whole ``populate(key, max_calls=1)`` per key, which reads
  the pending jobs again for each key).

Every loop starts from the same state (no rows, no jobs), and the loops alternate for
``--rounds`` rounds.

Prints milliseconds per key for each and their ratio; asserts nothing.

With ``--cohort-prefix`` (a study already ingested and populated under that prefix), also times
the per-key ``make`` of ``Cohort`` and ``CohortMapStats`` (each key made again with its inserts
only collected, so nothing is written) and, separately, their reads
(:func:`lfpbold.schemas.cohort.gather_sets` with the parts each reads).

With ``--cohort-before FILE`` (an earlier revision's ``schemas/cohort.py``, e.g.
``git show d3395ab:schemas/cohort.py > /tmp/cohort_before.py``), that revision's reads (its
``gather``, once per band set, as its ``make`` called it) are timed in the same run, alternating
with today's.

    python benchmarks/worker_overhead.py [--keys 200] [--cohort-prefix stor_ [--cohort-before FILE]]
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
    parser.add_argument("--rounds", type=int, default=2, help="each loop runs this many times, alternating")
    parser.add_argument("--cohort-prefix", default=None, help="a populated study's prefix: time Cohort's make too")
    parser.add_argument("--cohort-before", default=None, help="an earlier schemas/cohort.py to time beside")
    args = parser.parse_args()
    if args.cohort_prefix:
        cohort_makes(args.cohort_prefix, args.cohort_before)

    import lfpbold
    from lfpbold.workers import worker

    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    db = lfpbold.connect(prefix=prefix)
    schema.activate(prefix + "overhead", connection=db.connection)
    from lfpbold import compat

    def datajoint():
        # from an empty queue, as the worker starts: populate's own refresh adds the jobs
        t0 = time.perf_counter()
        Trivial.populate(reserve_jobs=True, refresh=True)
        return time.perf_counter() - t0

    def ours():
        t0 = time.perf_counter()
        report = worker(tables=[Trivial], exit_when_idle=True, poll=0)
        took = time.perf_counter() - t0
        assert len(report.done) == args.keys
        return took

    def ours_before():
        # the worker as it was before this change: a whole populate(key, max_calls=1) per key,
        # which reads the pending jobs again for every key
        current = compat.populate_one

        def per_key(table, key):
            result = table.populate(
                key, reserve_jobs=True, refresh=False, max_calls=1, suppress_errors=True, display_progress=False
            )
            return tuple(result["error_list"][0]) if result["error_list"] else bool(result["success_count"])

        compat.populate_one = per_key
        try:
            return ours()
        finally:
            compat.populate_one = current

    runs = {
        "DataJoint populate(reserve_jobs=True)": datajoint,
        "lfpbold worker, before (populate per key)": ours_before,
        "lfpbold worker": ours,
    }
    spent = dict.fromkeys(runs, 0.0)
    try:
        Key.insert([{"key_id": i} for i in range(args.keys)])
        for _ in range(args.rounds):  # alternating, so a change of load hits each alike
            for name, run in runs.items():
                Trivial().delete_quick()
                Trivial.jobs.delete_quick()  # every loop starts with no rows and no jobs
                spent[name] += run()
                assert len(Trivial()) == args.keys
    finally:
        schema.drop(prompt=False)
        from lfpbold.pipeline import drop

        drop(prefix, db.connection)
    backend = f"{db.backend}{' (embedded)' if db.embedded else ''}"
    n = args.keys * args.rounds
    print(f"{args.keys} keys x {args.rounds} rounds, trivial make, {backend}")
    for name, s in spent.items():
        print(f"{name + ':':<44} {1000 * s / n:6.1f} ms per key")
    dj_s = spent["DataJoint populate(reserve_jobs=True)"]
    print(f"{'ratio worker / DataJoint:':<44} {spent['lfpbold worker'] / dj_s:6.2f}")
    print(f"{'ratio worker before / DataJoint:':<44} {spent['lfpbold worker, before (populate per key)'] / dj_s:6.2f}")


def _remake_ms(table, keys, reps: int = 3) -> float:
    """Milliseconds per key of ``table.make`` for keys already made, its inserts not sent.

    ``insert``/``insert1`` only collect the rows while it runs (no encoding, no writes), so this
    is the make's reads and computation.
    """
    instance = table()
    saved = dj.Table.insert, dj.Table.insert1
    dj.Table.insert = lambda self, rows, **kw: list(rows)
    dj.Table.insert1 = lambda self, row, **kw: dict(row)
    try:
        t0 = time.perf_counter()
        for _ in range(reps):
            for key in keys:
                instance.make(dict(key))
        return 1000 * (time.perf_counter() - t0) / (reps * len(keys))
    finally:
        dj.Table.insert, dj.Table.insert1 = saved


def _load_before(path: str):
    """An earlier revision of ``schemas/cohort.py`` as a module beside today's (its tables unbound)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("lfpbold.schemas._cohort_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cohort_makes(prefix: str, before: str | None = None) -> None:
    """Per-key time of Cohort's and CohortMapStats' make, and of their reads alone."""
    import lfpbold
    from lfpbold.schemas import cohort, params

    lfpbold.connect(prefix=prefix)
    old = _load_before(before) if before else None
    for table, parts in ((cohort.Cohort, cohort.GATHERED_PARTS), (cohort.CohortMapStats, ("seed_maps", "power_maps"))):
        keys = table.keys()
        if not keys:
            print(f"{table.__name__}: no rows under {prefix}; populate the study first")
            continue

        def args(key):
            combo = cohort.combination(key)
            return (
                combo,
                params.BandPowerParams.get_params(combo)["band_sets"],
                {k: key[k] for k in ("state", "region")},
            )

        def reads(key, parts=parts):
            combo, band_sets, where = args(key)
            cohort.gather_sets(combo, band_sets, restriction=where, parts=parts)

        def reads_before(key):
            combo, band_sets, where = args(key)
            for band_set in band_sets:
                old.gather(combo, band_set=band_set, restriction=where)

        timed = {"reads": reads, **({"reads before": reads_before} if old else {})}
        spent = dict.fromkeys(timed, 0.0)
        for f in timed.values():
            f(keys[0])  # warm the headings
        for _ in range(3):  # alternating, so a change of load hits both alike
            for name, f in timed.items():
                t0 = time.perf_counter()
                for key in keys:
                    f(key)
                spent[name] += time.perf_counter() - t0
        ms = {name: 1000 * t / (3 * len(keys)) for name, t in spent.items()}
        make_ms = _remake_ms(table, keys)
        line = f"{table.__name__}: make without its inserts {make_ms:6.0f} ms per key; reads {ms['reads']:6.0f} ms"
        if old:
            line += f", before {ms['reads before']:6.0f} ms ({ms['reads before'] / ms['reads']:.1f}x)"
        print(line)


if __name__ == "__main__":
    main()
