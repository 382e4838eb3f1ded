"""Least privilege on a lab server: read-only viewers and analysts who change rows but not tables.

``viewer``: SELECT on every schema of the prefix. ``analyst``: SELECT, INSERT, UPDATE and DELETE
(populate, select, ingest into existing tables), but no DDL: no CREATE, ALTER, DROP or REFERENCES.
On PostgreSQL each is a role (``<prefix>viewer``, ``<prefix>analyst``; NOLOGIN) with default
privileges on tables made later, granted to the user; on MySQL/MariaDB the privileges are granted
on the prefix's databases (``<schema>.*``, which covers tables made later too) to ``user@host``.

Names reach the SQL only as checked identifiers (:mod:`lfpbold.validate`), the password only as a
bound value; nothing here prints or returns it.
"""

from __future__ import annotations

__all__ = ["ROLES", "grant", "revoke", "user_exists"]

#: role -> privileges on the prefix's tables
ROLES = {"viewer": ("SELECT",), "analyst": ("SELECT", "INSERT", "UPDATE", "DELETE")}


def _schemas(db) -> list[str]:
    import datajoint as dj

    from lfpbold.pipeline import SCHEMA_MODULES

    existing = set(dj.list_schemas(connection=db.connection))
    names = [db.prefix + m for m in SCHEMA_MODULES if db.prefix + m in existing]
    if not names:
        raise ValueError(f"no lfpbold schemas with prefix {db.prefix} on this server")
    return names


def _q(db, name: str) -> str:
    return db.connection.adapter.quote_identifier(name)


def user_exists(db, user: str) -> bool:
    """True when the server has a login (PostgreSQL role, MySQL user) named ``user``."""
    if db.backend == "postgresql":
        sql = "SELECT 1 FROM pg_roles WHERE rolname = %s"
    else:
        sql = "SELECT 1 FROM mysql.user WHERE user = %s"
    return db.connection.query(sql, args=(user,)).fetchone() is not None


def grant(db, user: str, role: str, password: str | None = None, host: str = "%") -> list[str]:
    """Give ``user`` the ``role`` on the prefix's schemas; create the user if missing.

    Parameters
    ----------
    db : lfpbold.db.Database
        Connected as an account that may create users and grant (the server's admin).
    user : str
        The login, ``^[a-z][a-z0-9_]{0,31}$``.
    role : {"viewer", "analyst"}
    password : str, optional
        Needed only when the user does not exist yet.
    host : str
        MySQL/MariaDB: the host part of ``user@host``.

    Returns
    -------
    list of str
        What was done, one line each (never the password).
    """
    from lfpbold.validate import check_identifier

    check_identifier(user, what="database user")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if db.embedded:
        raise ValueError("the embedded database is private to its user; grants are for a lab server")
    schemas = _schemas(db)
    privileges = ", ".join(ROLES[role])
    conn = db.connection
    done = []
    if not user_exists(db, user):
        if not password:
            raise ValueError(f"user {user} does not exist; give a password to create it")
        if db.backend == "postgresql":
            conn.query(f"CREATE ROLE {_q(db, user)} LOGIN PASSWORD %s", args=(password,))
        else:
            conn.query("CREATE USER %s@%s IDENTIFIED BY %s", args=(user, host, password))
        done.append(f"created user {user}")
    if db.backend == "postgresql":
        group = db.prefix + role
        if not user_exists(db, group):
            conn.query(f"CREATE ROLE {_q(db, group)} NOLOGIN")
            done.append(f"created role {group}")
        to = _q(db, group)
        for s in schemas:
            conn.query(f"GRANT USAGE ON SCHEMA {_q(db, s)} TO {to}")
            conn.query(f"GRANT {privileges} ON ALL TABLES IN SCHEMA {_q(db, s)} TO {to}")
            conn.query(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_q(db, s)} GRANT {privileges} ON TABLES TO {to}")
            if role == "analyst":
                conn.query(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {_q(db, s)} TO {to}")
        conn.query(f"GRANT {_q(db, group)} TO {_q(db, user)}")
        done.append(f"granted role {group} ({privileges} on {', '.join(schemas)}) to {user}")
    else:
        for s in schemas:
            conn.query(f"GRANT {privileges} ON {_q(db, s)}.* TO %s@%s", args=(user, host))
        done.append(f"granted {privileges} on {', '.join(s + '.*' for s in schemas)} to {user}@{host}")
    return done


def revoke(db, user: str, *, drop_user: bool = False, host: str = "%") -> list[str]:
    """Take every lfpbold role of the prefix from ``user`` (and drop the login with ``drop_user``)."""
    from lfpbold.validate import check_identifier

    check_identifier(user, what="database user")
    conn = db.connection
    done = []
    if not user_exists(db, user):
        return done
    if db.backend == "postgresql":
        for role in ROLES:
            group = db.prefix + role
            if user_exists(db, group):
                conn.query(f"REVOKE {_q(db, group)} FROM {_q(db, user)}")
                done.append(f"revoked role {group} from {user}")
        if drop_user:
            conn.query(f"DROP ROLE {_q(db, user)}")
            done.append(f"dropped user {user}")
    else:
        for s in _schemas(db):
            grants = conn.query("SHOW GRANTS FOR %s@%s", args=(user, host)).fetchall()
            if any(s in str(g[0]) for g in grants):
                conn.query(f"REVOKE ALL PRIVILEGES ON {_q(db, s)}.* FROM %s@%s", args=(user, host))
                done.append(f"revoked privileges on {s}.* from {user}@{host}")
        if drop_user:
            conn.query("DROP USER %s@%s", args=(user, host))
            done.append(f"dropped user {user}@{host}")
    return done


def drop_roles(db) -> None:
    """PostgreSQL: drop the prefix's roles and what they were granted (tests; retiring a prefix)."""
    if db.backend != "postgresql":
        return
    for role in ROLES:
        group = db.prefix + role
        if user_exists(db, group):
            db.connection.query(f"DROP OWNED BY {_q(db, group)}")
            db.connection.query(f"DROP ROLE {_q(db, group)}")
