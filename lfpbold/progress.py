"""Where a study's computation stands: per computed table, keys done, pending, reserved and errored.

Read from each table, its key source and DataJoint's job table (``~~<table>``): a job is
``reserved`` while a worker (``populate --reserve-jobs``) holds it and ``error`` when its make
failed. lfpbold's populate records its failures there with or without ``--reserve-jobs``
(:func:`lfpbold.pipeline.record_failures`), so both kinds of run show their errors here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["status", "TableStatus", "first_line"]


@dataclass
class TableStatus:
    """One computed table's keys by state."""

    table: str
    done: int  # rows in the table
    pending: int  # in the key source, not done, not reserved, not errored
    reserved: int  # held by a worker
    errored: int  # failed; see errors
    errors: list[tuple[dict, str]] = field(default_factory=list)  # (key, first line of the error)


def first_line(message: str) -> str:
    """The first non-empty line of an error message.

    Examples
    --------
    >>> first_line("\\nFileNotFoundError: sub-01.nwb\\nTraceback ...")
    'FileNotFoundError: sub-01.nwb'
    """
    return next((line.strip() for line in str(message).splitlines() if line.strip()), "")


def _job_table(table):
    """The table's DataJoint job table if it exists (reading status never declares one)."""
    from datajoint.jobs import Job

    jobs = Job(table())
    return jobs if jobs.is_declared else None


def status() -> list[TableStatus]:
    """Per computed table, upstream first: keys done, pending, reserved and errored, with the errors.

    Returns
    -------
    list of TableStatus

    Examples
    --------
    >>> import lfpbold
    >>> lfpbold.connect()                                # doctest: +SKIP
    >>> [(s.table, s.done, s.pending) for s in lfpbold.status()][:1]   # doctest: +SKIP
    [('CleanLFP', 16, 0)]
    """
    from lfpbold.pipeline import computed_tables

    out = []
    for table in computed_tables():
        done = len(table())
        pk = list(table().key_source.primary_key)
        as_tuple = lambda row, pk=pk: tuple(row[k] for k in pk)  # noqa: E731
        todo = {as_tuple(k) for k in (table().key_source - table().proj()).keys()}
        jobs = _job_table(table)
        held, failed = set(), {}
        if jobs is not None:
            # compared in Python: DataJoint will not join a job table with the key source (no lineage)
            rows = (jobs & "status in ('reserved', 'error')").proj("status", "error_message").to_dicts(order_by=pk)
            held = {as_tuple(r) for r in rows if r["status"] == "reserved"} & todo
            failed = {as_tuple(r): first_line(r["error_message"]) for r in rows if r["status"] == "error"}
            failed = {k: v for k, v in failed.items() if k in todo}
        out.append(
            TableStatus(
                table=table.__name__,
                done=done,
                pending=len(todo - held - set(failed)),
                reserved=len(held),
                errored=len(failed),
                errors=[(dict(zip(pk, k, strict=True)), line) for k, line in failed.items()],
            )
        )
    return out
