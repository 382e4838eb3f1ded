"""Where a study's computation stands: per computed table, keys done, pending, reserved and errored.

Read from each table, its key source and DataJoint's job table (``~~<table>``): a job is
``reserved`` while a worker (``populate --reserve-jobs``) holds it and ``error`` when its make
failed there. A populate without ``--reserve-jobs`` keeps no job table; its failures are printed
by ``populate`` and show here as pending.
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
        todo = table().key_source - table().proj()
        jobs = _job_table(table)
        reserved = errored = 0
        errors = []
        if jobs is not None:
            pk = list(table().key_source.primary_key)
            held = jobs & "status = 'reserved'"
            failed = jobs & "status = 'error'"
            reserved = len(todo & held.proj())
            errored = len(todo & failed.proj())
            for row in (failed & todo.proj()).proj("error_message").to_dicts(order_by=pk):
                errors.append(({k: row[k] for k in pk}, first_line(row["error_message"])))
            todo = todo - held.proj() - failed.proj()
        out.append(
            TableStatus(
                table=table.__name__, done=done, pending=len(todo), reserved=reserved, errored=errored, errors=errors
            )
        )
    return out
