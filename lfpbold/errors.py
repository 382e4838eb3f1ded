"""One clear line for an error: what the CLI prints unless ``--debug`` asks for the traceback.

A lost database connection (the server stopped, the network went away) is recognised through
the whole chain of exceptions a driver and DataJoint raise, and said as such: a failed make rolls
back its transaction, so nothing partial is kept and populate can simply run again.
"""

from __future__ import annotations

__all__ = ["describe", "expected", "lost_connection", "first_line"]

# PyMySQL's client error codes for a server that went away or cannot be reached
_MYSQL_LOST = {2003, 2006, 2013, 2055}


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def lost_connection(err: BaseException) -> bool:
    """True when ``err`` (or an exception it came from) says the database connection is gone."""
    for e in _chain(err):
        module = type(e).__module__ or ""
        name = type(e).__name__
        if name == "LostConnectionError" and module.startswith("datajoint"):
            return True
        if module.startswith("psycopg2") and name in {"OperationalError", "InterfaceError"}:
            return True
        if module.startswith("pymysql") and name in {"OperationalError", "InterfaceError"}:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            if name == "InterfaceError" or code in _MYSQL_LOST:
                return True
        if isinstance(e, (ConnectionError, BrokenPipeError)):
            return True
    return False


def _driver_error(err: BaseException) -> bool:
    return any(
        (type(e).__module__ or "").startswith(("pymysql", "psycopg2")) and type(e).__name__ == "OperationalError"
        for e in _chain(err)
    )


def expected(err: BaseException, db=None) -> bool:
    """True for errors whose one line says it all (bad values, a lost or refused server)."""
    if isinstance(err, (ValueError, TypeError, OSError)) or lost_connection(err):
        return True
    return db is None and _driver_error(err)


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (driver messages often run over several)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def describe(err: BaseException, db=None, command: str | None = None) -> str:
    """``err`` as one line: its message, or the lost-connection sentence.

    Parameters
    ----------
    err : BaseException
    db : lfpbold.db.Database, optional
        What the command had connected to, named in the lost-connection sentence; None when the
        connection was never made (then the error is that it could not be).
    command : str, optional
        The command to run again (default ``populate``).
    """
    import click

    if isinstance(err, click.ClickException):
        return first_line(err.format_message())
    message = first_line(str(err))
    if db is None and _driver_error(err):  # the login itself failed (refused, wrong password)
        return f"could not connect to the database server: {message or type(err).__name__}"
    if lost_connection(err):
        if db is None:
            return f"could not connect to the database server: {message or type(err).__name__}"
        where = f"the {'embedded ' if db.embedded else ''}{db.backend} server at {db.data_dir or db.host}"
        return f"lost the connection to {where}; nothing partial was kept; run {command or 'populate'} again"
    kind = type(err).__name__
    if isinstance(err, (ValueError, TypeError, FileExistsError, FileNotFoundError, PermissionError)) and message:
        return message
    return f"{kind}: {message}" if message else kind
