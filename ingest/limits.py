"""Values checked against the widths of the columns they go into, before anything is inserted.

The widths are declared once, in :data:`lfpbold.constants.COLUMN_LIMITS`, which the acquisition
schema builds its definitions from; a value that does not fit is an :class:`IngestError` naming
the field and the limit, never a database error half-way through an insert.
"""

from __future__ import annotations

import numbers

from lfpbold.constants import COLUMN_LIMITS, INT32_MAX

from .errors import IngestError

__all__ = ["check_row", "check_value", "COLUMN_LIMITS"]


def check_value(table: str, column: str, value, path, *, field: str | None = None) -> None:
    """Raise :class:`IngestError` on ``path`` when ``value`` does not fit ``table.column``.

    ``field`` names the place in the file the value came from (default: the column).

    Examples
    --------
    >>> check_value("Region", "region", "ACC", "study/x.nwb")
    >>> try:
    ...     check_value("Region", "region", "AnteriorCingulateCtx", "/s/x.nwb", field="electrodes/location")
    ... except IngestError as err:
    ...     print(err)
    /s/x.nwb: electrodes/location: 'AnteriorCingulateCtx' is 20 characters; Region.region holds at most 16
    """
    limit = COLUMN_LIMITS[table][column]
    field = field or column
    if value is None:
        return
    if limit == "int32":
        if isinstance(value, numbers.Integral) and not -INT32_MAX - 1 <= int(value) <= INT32_MAX:
            raise IngestError(
                path, field, f"{value} does not fit {table}.{column} (a 32-bit integer: at most {INT32_MAX})"
            )
        return
    text = str(value)
    if len(text) > limit:
        raise IngestError(path, field, f"{text!r} is {len(text)} characters; {table}.{column} holds at most {limit}")


def check_row(table: str, row: dict, path, *, fields: dict | None = None) -> None:
    """Check every column of ``row`` that ``table`` limits; ``fields`` maps a column to its file field."""
    for column in COLUMN_LIMITS[table]:
        if column in row:
            check_value(table, column, row[column], path, field=(fields or {}).get(column))
