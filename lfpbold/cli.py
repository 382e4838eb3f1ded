"""The ``lfpbold`` command: one way in for simulating, ingesting, populating and querying a study.

Every command is a thin layer over a Python function of the same name in :mod:`lfpbold`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import click

from lfpbold.validate import FiniteFloat, PerState, check_prefix

BY_CHOICES = ("subject", "session", "state", "region", "band")
#: set by --debug: errors show their traceback instead of one line
_SESSION: dict = {"debug": False, "db": None, "command": None}


def _connect(ctx):
    from lfpbold.db import connect

    if ctx.obj.get("db") is None:
        ctx.obj["db"] = connect(prefix=ctx.obj.get("prefix"))
        _SESSION["db"] = ctx.obj["db"]
    return ctx.obj["db"]


def _check_prefix(ctx, param, value):
    if value is None:
        return None
    try:
        return check_prefix(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx, param) from None


class _Main(click.Group):
    """The top-level group: every error is one line unless --debug asks for the traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from lfpbold.errors import describe, expected

        _SESSION.update(debug=False, db=None, command=None)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = 1
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.format_message(), err=True)
            code = err.exit_code
        except click.ClickException as err:
            click.echo(f"Error: {describe(err)}", err=True)
            code = err.exit_code
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as err:
            if _SESSION["debug"]:
                raise
            # a bad value or a lost server is said in full; anything else may want its traceback
            hint = "" if expected(err, _SESSION["db"]) else " (--debug: traceback)"
            click.echo(f"Error: {describe(err, _SESSION['db'], _SESSION['command'])}{hint}", err=True)
            code = 1
        else:
            code = rv if isinstance(rv, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--prefix",
    envvar="LFPBOLD_PREFIX",
    default=None,
    callback=_check_prefix,
    help="Schema-name prefix (default lfpbold_; ^[a-z][a-z0-9_]{0,39}$); several studies can share a server.",
)
@click.option("--debug", is_flag=True, envvar="LFPBOLD_DEBUG", help="Show the full traceback of an error.")
@click.version_option(package_name="lfpbold")
@click.pass_context
def main(ctx, prefix, debug):
    """Simultaneous resting-state fMRI + LFP studies on DataJoint.

    With no server configured (DJ_HOST or datajoint.json), lfpbold starts its own embedded
    PostgreSQL under $LFPBOLD_HOME (default: the user's data folder).
    """
    ctx.ensure_object(dict)
    ctx.obj["prefix"] = prefix
    _SESSION.update(debug=debug, command=ctx.invoked_subcommand)


@main.group(invoke_without_command=True)
@click.option("--stop", is_flag=True, help="Stop the embedded PostgreSQL server.")
@click.pass_context
def db(ctx, stop):
    """Where the data lives: backend, server, folders, and each table's row count."""
    from lfpbold.db import lfpbold_home, stop_embedded

    if ctx.invoked_subcommand is not None:
        return
    if stop:
        click.echo("stopped" if stop_embedded() else "no embedded server was running")
        return
    d = _connect(ctx)
    click.echo(f"backend:  {d.backend}{' (embedded)' if d.embedded else ''}")
    click.echo(f"server:   {d.server_version.splitlines()[0]}")
    click.echo(f"host:     {d.host}")
    if d.data_dir:
        click.echo(f"data:     {d.data_dir}")
    click.echo(f"home:     {lfpbold_home()}")
    click.echo(f"arrays:   {d.store_dir}")
    click.echo(f"prefix:   {d.prefix}")
    from lfpbold.db import usage

    used = usage(d)

    def size(n):
        return "not measured (not a local folder)" if n is None else _bytes(n)

    click.echo(f"database: {size(used.database_bytes)}, {_per_scan(used, used.database_bytes)}")
    click.echo(f"store:    {size(used.store_bytes)}, {_per_scan(used, used.store_bytes)}")
    from lfpbold.pipeline import tables_by_schema

    for schema_name, tables in tables_by_schema().items():
        click.echo(f"\n{schema_name}")
        for name, table in tables:
            click.echo(f"  {name:<32} {len(table()):>8}")


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


def _per_scan(used, n) -> str:
    each = used.per_scan(n)
    if each is None:
        return f"{used.scans} scans"
    return f"{_bytes(each)} per scan ({used.scans} scans)"


@db.command("grant")
@click.argument("user")
@click.option("--role", type=click.Choice(["viewer", "analyst"]), required=True, help="viewer: SELECT; analyst: DML.")
@click.option(
    "--password-env",
    default="LFPBOLD_GRANT_PASSWORD",
    show_default=True,
    help="Environment variable holding a new user's password (else it is asked for, hidden).",
)
@click.option("--host", "user_host", default="%", show_default=True, help="MySQL/MariaDB: the user's host part.")
@click.pass_context
def db_grant(ctx, user, role, password_env, user_host):
    """Let USER read (viewer) or change rows (analyst, no DDL) in this prefix's schemas on a lab server.

    Run it as the server's admin (DJ_USER/DJ_PASS or DataJoint's secrets). A missing USER is
    created with the password from --password-env (or a hidden prompt); it is never printed.
    """
    import os

    from lfpbold.grants import grant, user_exists
    from lfpbold.validate import check_identifier

    check_identifier(user, what="database user")
    d = _connect(ctx)
    password = os.environ.get(password_env) or None
    if password is None and not d.embedded and not user_exists(d, user) and sys.stdin.isatty():
        password = click.prompt(f"password for the new user {user}", hide_input=True, confirmation_prompt=True)
    for line in grant(d, user, role, password=password, host=user_host):
        click.echo(line)


@db.command("revoke")
@click.argument("user")
@click.option("--drop-user", is_flag=True, help="Also drop the login.")
@click.option("--host", "user_host", default="%", show_default=True, help="MySQL/MariaDB: the user's host part.")
@click.pass_context
def db_revoke(ctx, user, drop_user, user_host):
    """Take this prefix's viewer/analyst privileges from USER (and drop the login with --drop-user)."""
    from lfpbold.grants import revoke

    for line in revoke(_connect(ctx), user, drop_user=drop_user, host=user_host) or ["nothing to revoke"]:
        click.echo(line)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subjects", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--sessions", type=click.IntRange(min=1), default=1, show_default=True, help="Sessions per state per subject."
)
@click.option("--scans", type=click.IntRange(min=1), default=2, show_default=True, help="Runs per session.")
@click.option("--regions", default="ACC,M1", show_default=True)
@click.option("--states", default="sedated", show_default=True)
@click.option(
    "--true-temporal-r",
    default="0.59",
    show_default=True,
    type=PerState(-1.0, 1.0, what="a correlation"),
    help="In [-1, 1]; one number, or per state: sedated=0.59,awake=0.4.",
)
@click.option(
    "--cnr",
    default="1.3",
    show_default=True,
    type=PerState(0.0, math.inf, lo_open=True, what="a contrast-to-noise ratio"),
    help="Above 0; one number, or per state: sedated=1.3,awake=1.1.",
)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("--size", type=click.Choice(["small", "paper"]), default="small", show_default=True)
@click.option("--artifact/--no-artifact", default=None, help="MR gradient artifacts (default: on for paper size).")
def simulate(out_dir, subjects, sessions, scans, regions, states, true_temporal_r, cnr, seed, size, artifact):
    """Write a simulated study (BIDS + NWB) with a known ground truth to OUT_DIR."""
    from lfpbold.simulate import simulate_study
    from lfpbold.validate import check_simulation_fits

    regions, states = regions.split(","), states.split(",")
    check_simulation_fits(
        out_dir, subjects=subjects, sessions=sessions, scans=scans, regions=regions, states=states, size=size
    )
    t0 = time.perf_counter()
    path = simulate_study(
        out_dir,
        subjects=subjects,
        sessions=sessions,
        scans=scans,
        regions=tuple(regions),
        states=tuple(states),
        true_temporal_r=true_temporal_r,
        cnr=cnr,
        seed=seed,
        size=size,
        artifact=artifact,
        progress=click.echo,
    )
    click.echo(f"wrote {path} in {time.perf_counter() - t0:.1f} s")


class _Bar:
    """A tqdm progress bar (counts, rate, time remaining) on stderr, drawn only for a person watching.

    ``unit="B"`` counts bytes, shown scaled (MB, GB) with the read rate.
    """

    def __init__(self, desc: str, enabled: bool, unit: str = "scan"):
        self.desc, self.enabled, self.bar, self.unit = desc, enabled and sys.stderr.isatty(), None, unit

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            scaled = {"unit_scale": True, "unit_divisor": 1024} if self.unit == "B" else {}
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=False, **scaled)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _verbosity(quiet: bool, verbose: bool) -> int:
    if quiet and verbose:
        raise click.BadParameter("--quiet and --verbose exclude each other", param_hint="--quiet")
    return -1 if quiet else (1 if verbose else 0)


_quiet = click.option("-q", "--quiet", is_flag=True, help="Only the summary and errors; no progress bars.")
_verbose = click.option("-v", "--verbose", is_flag=True, help="Every table and scan, and each error in full.")


def _ingest(
    ctx,
    study_dir,
    checksums=True,
    replace=False,
    dry_run=False,
    data_root=None,
    verbosity=0,
    follow_symlinks=False,
    **layout,
):
    from lfpbold.pipeline import ingest_study

    _connect(ctx)
    bar = _Bar("ingest", enabled=verbosity >= 0, unit="B")  # bytes read: a paper-size scan is GBs
    try:
        report = ingest_study(
            study_dir,
            checksums=checksums,
            replace=replace,
            dry_run=dry_run,
            data_root=data_root,
            progress=bar,
            follow_symlinks=follow_symlinks,
            **layout,
        )
    finally:
        bar.close()
    if verbosity > 0:
        for key in report.inserted:
            click.echo(f"  inserted {key}")
        for key in report.skipped:
            click.echo(f"  already there {key}")
    if dry_run:
        click.echo(f"dry run of {study_dir} (paths relative to {report.data_root}); nothing inserted or deleted")
    for key, counts in report.replaced:
        scan = " ".join(f"{k}={v}" for k, v in key.items())
        detail = ", ".join(f"{table} {n}" for table, n in counts.items())
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"replace {scan}: {verb} {sum(counts.values())} row(s) ({detail})")
    if dry_run:
        for kind, items in report.planned.items():
            click.echo(f"would insert {len(items)} {kind[:-1] if len(items) == 1 else kind}")
            for item in items:
                click.echo(f"  {' '.join(f'{k}={v}' for k, v in item.items()) if isinstance(item, dict) else item}")
        click.echo(f"{len(report.skipped)} scan(s) already there and unchanged; {len(report.errors)} problem(s)")
    else:
        replaced = (
            f", {len(report.replaced)} replaced ({report.deleted_rows} row(s) deleted)" if report.replaced else ""
        )
        counts = f"{len(report.inserted)} scan(s) inserted{replaced}, {len(report.skipped)} already there"
        click.echo(f"ingest {study_dir}: {counts}")
    for err in report.errors:
        click.echo(f"error: {err}", err=True)
    return report


_DATA_ROOT_HELP = (
    "Folder the study folders sit in on this machine; stored paths are relative to it "
    "(default $LFPBOLD_DATA_ROOT, else: at ingest the study folder's parent, later the roots recorded at ingest)."
)


@main.command()
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-checksums", is_flag=True, help="Skip SHA-256 of each file (faster on huge files).")
@click.option(
    "--replace",
    is_flag=True,
    help="A scan whose file changed since it was ingested: delete its rows and every result derived from them, "
    "then ingest the new files.",
)
@click.option("--dry-run", is_flag=True, help="List what would be inserted and every problem; insert nothing.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_ROOT_HELP)
@click.option(
    "--layout",
    type=click.Choice(["bids", "rabies", "fmriprep"]),
    default=None,
    help="Where preprocessed BOLD comes from (default: detected): raw BIDS, RABIES or fMRIPrep outputs.",
)
@click.option(
    "--derivatives",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The RABIES/fMRIPrep output folder (default: STUDY_DIR/derivatives/rabies or .../fmriprep).",
)
@click.option(
    "--region-aliases",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TSV (region, alias) adding names for regions (default table + STUDY_DIR/code/region_aliases.tsv).",
)
@click.option(
    "--follow-symlinks", is_flag=True, help="Read files that are symbolic links out of STUDY_DIR (refused by default)."
)
@_quiet
@_verbose
@click.pass_context
def ingest(
    ctx,
    study_dir,
    no_checksums,
    replace,
    dry_run,
    data_root,
    layout,
    derivatives,
    region_aliases,
    follow_symlinks,
    quiet,
    verbose,
):
    """Validate STUDY_DIR and insert its subjects, sessions, implants and scans."""
    from lfpbold.ingest import IngestError

    verbosity = _verbosity(quiet, verbose)
    try:
        report = _ingest(
            ctx,
            study_dir,
            checksums=not no_checksums,
            replace=replace,
            dry_run=dry_run,
            data_root=data_root,
            layout=layout,
            derivatives=derivatives,
            region_aliases=region_aliases,
            verbosity=verbosity,
            follow_symlinks=follow_symlinks,
        )
    except IngestError as err:
        raise click.ClickException(str(err)) from None
    if report.errors:
        sys.exit(1)


def _populate(ctx, processes=1, reserve_jobs=False, orphan_timeout=None, verify="stat", data_root=None, verbosity=0):
    from lfpbold.pipeline import populate as run

    _connect(ctx)

    def echo(line: str) -> None:  # quiet: the failures only; the summary line follows
        if verbosity >= 0 or line.startswith("  "):
            click.echo(line)

    outcome = run(
        processes=processes,
        reserve_jobs=reserve_jobs,
        orphan_timeout=orphan_timeout,
        verify=verify,
        data_root=data_root,
        echo=echo,
        display_progress=sys.stderr.isatty() and verbosity >= 0,
    )  # DataJoint's tqdm bar per table (counts, time remaining), only for a person watching
    if verbosity > 0:
        for name, r in outcome.items():
            click.echo(f"{name}: {r['success_count']} done, {len(r['error_list'])} failed")
    from lfpbold.workers import EXIT_FAILED, EXIT_INCOMPLETE

    failed = sum(len(r["error_list"]) for r in outcome.values())
    done = sum(r["success_count"] for r in outcome.values())
    left = {name: r for name, r in outcome.items() if r.get("remaining")}
    click.echo(f"populate: {done} job(s) done, {failed} failed")
    for name, r in left.items():
        others = f", {r['reserved_by_others']} reserved by live workers" if r.get("reserved_by_others") else ""
        click.echo(f"populate: {name}: {r['remaining']} key(s) neither done nor failed{others}", err=True)
    if failed:
        return EXIT_FAILED
    if left:
        click.echo("populate: incomplete; run populate (or lfpbold worker) again to finish", err=True)
        return EXIT_INCOMPLETE
    return 0


@main.command()
@click.option(
    "--processes", type=click.IntRange(1, 1024), default=1, show_default=True, help="Worker processes per table."
)
@click.option("--reserve-jobs", is_flag=True, help="Coordinate workers (several machines) via DataJoint's job tables.")
@click.option(
    "--orphan-timeout",
    type=FiniteFloat(min=0, max=10 * 365 * 86400),
    default=None,
    help="With --reserve-jobs: requeue jobs reserved longer than this many seconds (killed workers).",
)
@click.option(
    "--verify",
    type=click.Choice(["stat", "full"]),
    default="stat",
    show_default=True,
    help="How each file is checked before it is read: size and mtime (SHA-256 when either differs), or SHA-256 always.",
)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_ROOT_HELP)
@_quiet
@_verbose
@click.pass_context
def populate(ctx, processes, reserve_jobs, orphan_timeout, verify, data_root, quiet, verbose):
    """Fill in every analysis for every ingested scan, upstream first.

    Exit status: 0 when every key is done, 1 when some key failed, 3 when keys remain neither
    done nor failed (e.g. reserved by other workers still running).
    """
    code = _populate(
        ctx,
        processes,
        reserve_jobs,
        orphan_timeout,
        verify=verify,
        data_root=data_root,
        verbosity=_verbosity(quiet, verbose),
    )
    if code:
        sys.exit(code)


@main.command()
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_ROOT_HELP)
@click.pass_context
def check(ctx, data_root):
    """Re-hash every ingested file (BOLD NIfTI, NWB) and report each one that changed or vanished; exit 1 if any."""
    from lfpbold.integrity import check as run

    _connect(ctx)
    report = run(data_root=data_root, echo=lambda line: click.echo(f"changed: {line}", err=True))
    rate = report.n_bytes / 1e6 / report.seconds if report.seconds else 0.0
    click.echo(
        f"check: {report.checked} file(s), {report.n_bytes / 1e6:.1f} MB in {report.seconds:.1f} s ({rate:.0f} MB/s): "
        f"{len(report.problems)} changed or missing"
    )
    if report.problems:
        sys.exit(1)


@main.command()
@click.option("--lfp-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--band-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--bold-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--relation-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--subject", default=None, help="Only this subject's scans.")
@click.option("--session", default=None, help="Only this session's scans.")
@click.option("--state", default=None, help="Only scans in this state (e.g. awake).")
@click.pass_context
def select(ctx, lfp_paramset, band_paramset, bold_paramset, relation_paramset, subject, session, state):
    """Select a combination of parameter sets for the matching scans (then run populate).

    Ingest selects the study's sets (all 0) for every new scan; this adds others side by side.
    Unnamed sets stay at 0.
    """
    from lfpbold.pipeline import select as run

    _connect(ctx)
    try:
        n = run(
            lfp_paramset=lfp_paramset,
            band_paramset=band_paramset,
            bold_paramset=bold_paramset,
            relation_paramset=relation_paramset,
            subject=subject,
            session=session,
            state=state,
        )
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    combo = f"lfp {lfp_paramset}, band {band_paramset}, bold {bold_paramset}, relation {relation_paramset}"
    click.echo(f"select: {n} scan(s) newly selected for {combo}")


#: what the terminal table shows unless --all-columns: the study's headline figures
HEADLINE = [
    "spatial_r",
    "scanwise_spatial_r",
    "temporal_r",
    "temporal_p",
    "inferred_true_r",
    "peak_lag_s",
    "removal_ols_r",
    "n_scans",
    "n_excluded",
]


def _print_results(df, fmt, all_columns=False):
    import pandas as pd

    from lfpbold.query import GROUPABLE

    if fmt == "table" and not all_columns:
        grouping = [c for c in df.columns if c in GROUPABLE]
        df = df[grouping + [c for c in HEADLINE if c in df.columns]]
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(json.loads(df.to_json(orient="records")), indent=2))
    else:
        with pd.option_context(
            "display.max_rows", None, "display.max_columns", None, "display.width", 200, "display.max_colwidth", 60
        ):
            click.echo(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


@main.command()
@click.option(
    "--by",
    default="state,region,band",
    show_default=True,
    help=f"Grouping, comma-separated from {', '.join(BY_CHOICES)}.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--band-set", type=click.Choice(["classic", "one_hz"]), default="classic", show_default=True)
@click.option("--lfp-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--band-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--bold-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--relation-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--all-columns", is_flag=True, help="Every column in the terminal table (csv and json always have all).")
@click.pass_context
def results(ctx, by, fmt, band_set, lfp_paramset, band_paramset, bold_paramset, relation_paramset, all_columns):
    """The paper-style table: spatial and temporal r per state, region and band."""
    from lfpbold.query import results as compute

    groups = [b.strip() for b in by.split(",") if b.strip()]
    bad = set(groups) - set(BY_CHOICES)
    if bad:
        raise click.BadParameter(f"{sorted(bad)}; choose from {', '.join(BY_CHOICES)}", param_hint="--by")
    _connect(ctx)
    df = compute(
        by=groups,
        band_set=band_set,
        lfp_paramset=lfp_paramset,
        band_paramset=band_paramset,
        bold_paramset=bold_paramset,
        relation_paramset=relation_paramset,
    )
    if df.empty:
        raise click.ClickException(
            f"no results for parameter sets lfp {lfp_paramset}, band {band_paramset}, bold {bold_paramset}, "
            f"relation {relation_paramset} under prefix {ctx.obj['db'].prefix}: nothing populated for them yet "
            "(lfpbold select, then lfpbold populate)"
        )
    _print_results(df, fmt, all_columns)


@main.group()
def export():
    """Write results out as files other tools read."""


def _paramset_options(*names):
    """The parameter-set options of an export command (the combination whose rows it writes)."""

    tables = {"lfp": "LFPParams", "band": "BandPowerParams", "bold": "BoldParams", "relation": "RelationParams"}

    def decorate(f):
        for name in reversed(names):
            f = click.option(
                f"--{name}-paramset",
                type=click.IntRange(min=0),
                default=0,
                show_default=True,
                help=f"The {tables[name]} set whose rows to write (0: the study's).",
            )(f)
        return f

    return decorate


_BAND_SET = click.option("--band-set", type=click.Choice(["classic", "one_hz"]), default="classic", show_default=True)


def _export(ctx, run, out_dir, what, **kwargs):
    _connect(ctx)
    try:
        paths = run(out_dir, **kwargs)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {len(paths)} {what} under {out_dir}")


@export.command("maps")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_BAND_SET
@_paramset_options("lfp", "band", "bold", "relation")
@click.pass_context
def export_maps_cmd(ctx, out_dir, band_set, **paramsets):
    """Seed maps, LFP power maps and group statistics as a BIDS derivatives dataset (NIfTI + JSON)."""
    from lfpbold.export import export_maps

    _export(ctx, export_maps, out_dir, "maps", band_set=band_set, **paramsets)


@export.command("results")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--by", default="state,region,band", show_default=True, help=f"Grouping, from {', '.join(BY_CHOICES)}.")
@_BAND_SET
@_paramset_options("lfp", "band", "bold", "relation")
@click.pass_context
def export_results_cmd(ctx, out_dir, by, band_set, **paramsets):
    """The results table and the per-scan values as TSV, each with a JSON data dictionary."""
    from lfpbold.export import export_results

    groups = [b.strip() for b in by.split(",") if b.strip()]
    bad = set(groups) - set(BY_CHOICES)
    if bad:
        raise click.BadParameter(f"{sorted(bad)}; choose from {', '.join(BY_CHOICES)}", param_hint="--by")
    _export(ctx, export_results, out_dir, "tables", by=groups, band_set=band_set, **paramsets)


@export.command("nwb")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_BAND_SET
@_paramset_options("lfp", "band")
@click.option("--subject", default=None, help="Only this subject's scans.")
@click.option("--session", default=None, help="Only this session's scans.")
@click.pass_context
def export_nwb_cmd(ctx, out_dir, band_set, subject, session, **paramsets):
    """Each scan's cleaned LFP and band power as NWB, linking (not copying) the raw ElectricalSeries."""
    from lfpbold.nwb_export import export_nwb

    where = {k: v for k, v in (("subject", subject), ("session", session)) if v is not None}
    _export(ctx, export_nwb, out_dir, "NWB files", band_set=band_set, restriction=where or None, **paramsets)


@main.command()
@click.option("--errors/--no-errors", default=True, show_default=True, help="List each error's key and first line.")
@click.pass_context
def status(ctx, errors):
    """Per computed table: keys done, pending, reserved (by a worker) and errored."""
    from lfpbold.progress import status as compute

    _connect(ctx)
    rows = compute()
    click.echo(f"{'table':<22} {'done':>7} {'pending':>8} {'reserved':>9} {'errored':>8}")
    for r in rows:
        click.echo(f"{r.table:<22} {r.done:>7} {r.pending:>8} {r.reserved:>9} {r.errored:>8}")
    if errors:
        for r in rows:
            for key, line in r.errors:
                click.echo(f"{r.table} {json.dumps(key, default=str)}: {line}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--lfp-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--band-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--bold-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--relation-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.pass_context
def report(ctx, out_dir, **combo):
    """Write one self-contained HTML report of every cohort (state x region) to OUT_DIR/index.html.

    The results table, every figure, the parameter sets, software versions, and the scans
    included and excluded with the reasons.
    """
    from lfpbold.reports import report as write

    _connect(ctx)
    try:
        path = write(out_dir, **combo)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {path}")


def _kinds_epilog() -> str:
    from lfpbold.plots import KINDS  # numpy only: matplotlib is imported when a figure is drawn

    return "\b\nKinds:\n" + "\n".join(f"  {k:<16} {v}" for k, v in KINDS.items())


@main.command(epilog=_kinds_epilog())
@click.argument("kind")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The figure file: .png, .svg or .pdf.",
)
@click.option("--subject", default=None)
@click.option("--session", default=None)
@click.option("--run", type=int, default=None)
@click.option("--region", default=None)
@click.option("--band", default=None, help="Default gamma.")
@click.option("--state", default=None)
@click.option("--lfp-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--band-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--bold-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--relation-paramset", type=click.IntRange(min=0), default=0, show_default=True)
@click.pass_context
def plot(ctx, kind, output, **selection):
    """Draw one of the study's figures from the stored rows into a file (KIND: see below).

    Whatever is not named (scan, region, band, state) is the first one stored.
    """
    from lfpbold.plots import FORMATS, KINDS
    from lfpbold.plots import plot as draw

    if kind not in KINDS:
        raise click.BadParameter(f"{kind!r}; choose from {', '.join(KINDS)}", param_hint="KIND")
    if output.suffix.lower().lstrip(".") not in FORMATS:
        raise click.BadParameter(f"{output.name}: use .png, .svg or .pdf", param_hint="--output")
    _connect(ctx)
    try:
        draw(kind, path=output, **selection)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {output}")


@main.command()
@click.option("--step", default=None, help="Only this step.")
@click.option(
    "--check", is_flag=True, help="Run every installed method through its step's contract; exit 1 if any fails."
)
def plugins(step, check):
    """The analysis methods installed, by step (entry-point groups lfpbold.<step>).

    With --check, every method (entry points of every installed package, and methods registered
    in this process) runs on small synthetic inputs against its step's contract
    (lfpbold.plugins.contracts): one line per method, ok or what is wrong.
    """
    from lfpbold.plugins import available
    from lfpbold.plugins.contracts import STEPS, check_all

    installed = available(step)
    if step is not None and step not in installed and step not in STEPS:
        raise click.BadParameter(
            f"{step!r} is not a step; steps: {', '.join(sorted(set(STEPS) | set(available())))}", param_hint="--step"
        )
    # the study's steps in pipeline order, then any step a lab added
    order = [s for s in STEPS if s in installed] + sorted(set(installed) - set(STEPS))
    if not check:
        for s in order:
            click.echo(f"{s:<20} {', '.join(installed[s]):<38} {STEPS.get(s, '(no contract)')}")
        return
    if step is not None and step not in STEPS:
        raise click.BadParameter(f"{step!r} has no contract; steps with one: {', '.join(STEPS)}", param_hint="--step")
    t0 = time.perf_counter()
    report = check_all(step)
    for (s, m), problems in report.items():
        click.echo(f"{s:<20} {m:<22} {'; '.join(problems) if problems else 'ok'}")
    for s in order:
        if s not in STEPS:
            for m in installed[s]:
                click.echo(f"{s:<20} {m:<22} not checked: step {s!r} has no contract")
    failed = sum(bool(p) for p in report.values())
    click.echo(
        f"{len(report)} method(s) checked in {time.perf_counter() - t0:.1f} s: "
        f"{len(report) - failed} ok, {failed} failed"
    )
    if failed:
        sys.exit(1)


@main.command()
@click.option(
    "--dir",
    "work_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the simulated study (default $LFPBOLD_HOME/demo).",
)
@click.option("--subjects", type=click.IntRange(1, 1000), default=3, show_default=True)
@click.option("--processes", type=click.IntRange(1, 1024), default=1, show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.pass_context
def demo(ctx, work_dir, subjects, processes, seed):
    """Simulate a small study (ACC + M1, sedated + awake), ingest, populate, print the results.

    Uses the schema prefix lfpbold_demo_ unless --prefix is given, so the demo stays apart from
    a real study on the same database.
    """
    from lfpbold.db import lfpbold_home
    from lfpbold.query import results as compute
    from lfpbold.simulate import simulate_study

    if ctx.obj.get("prefix") is None:
        ctx.obj["prefix"] = "lfpbold_demo_"
    t0 = time.perf_counter()
    work_dir = work_dir or lfpbold_home() / "demo"
    study = work_dir / "study"
    if not (study / "dataset_description.json").exists():
        click.echo(f"1/4 simulating {subjects} rats (ACC, M1; sedated, awake) into {study}")
        simulate_study(
            study,
            subjects=subjects,
            sessions=1,
            scans=2,
            regions=("ACC", "M1"),
            states=("sedated", "awake"),
            seed=seed,
            size="small",
        )
    else:
        click.echo(f"1/4 using the study already simulated in {study}")
    if work_dir == lfpbold_home() / "demo":  # under LFPBOLD_HOME: the user's alone, like the rest of it
        from lfpbold.private import private_tree

        private_tree(work_dir)
    click.echo("2/4 ingesting")
    report = _ingest(ctx, study)
    click.echo("3/4 populating")
    failed = _populate(ctx, processes=processes)
    click.echo("4/4 results (group-mean spatial r, mean temporal r across scans)\n")
    df = compute()
    _print_results(df, "table")
    d = ctx.obj["db"]
    click.echo(
        f"\ndatabase: {d.backend}{' (embedded)' if d.embedded else ''} at {d.data_dir or d.host}, schemas {d.prefix}*"
    )
    click.echo(f"arrays:   {d.store_dir}")
    click.echo(f"study:    {study}")
    click.echo(f"query it: lfpbold --prefix {d.prefix} results --by subject,state,region,band --all-columns")
    click.echo(f"demo finished in {time.perf_counter() - t0:.0f} s")
    if report.errors or failed:
        sys.exit(1)


@main.command()
@click.option(
    "--processes", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes on this machine."
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0, max=86400),
    default=30.0,
    show_default=True,
    help="Seconds between looks at an empty queue.",
)
@click.option("--exit-when-idle", is_flag=True, help="Leave once nothing is pending or reserved (SLURM jobs, tests).")
@click.option("--max-keys", type=click.IntRange(min=1), default=None, help="Leave after this many keys (per process).")
@click.pass_context
def worker(ctx, processes, poll, exit_when_idle, max_keys):
    """Work through the job queue of every analysis until stopped; run one on every machine.

    Workers share the database's job queue: each key goes to one worker, and the keys of a
    worker that was killed (its database connection gone) return to the queue by themselves.
    SIGTERM (or Ctrl-C) finishes the current key, then leaves. Exit status: 0 when every key is
    done, 1 when some key failed, 3 when keys remain neither done nor failed.
    """
    from lfpbold.workers import describe_remaining
    from lfpbold.workers import worker as run

    _connect(ctx)
    report = run(processes=processes, poll=poll, exit_when_idle=exit_when_idle, max_keys=max_keys, echo=click.echo)
    click.echo(
        f"worker: {len(report.done)} key(s) done, {len(report.failed)} failed, "
        f"{len(report.requeued)} returned to the queue from dead workers"
    )
    for line in describe_remaining(report.remaining):
        click.echo(f"worker: {line}", err=True)
    if report.exit_code:
        what = "some key failed" if report.failed else "incomplete: keys remain"
        click.echo(f"worker: {what}; exit status {report.exit_code}", err=True)
        sys.exit(report.exit_code)


@main.command("slurm-script")
@click.argument("out_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--workers", type=click.IntRange(min=1, max=10000), default=4, show_default=True, help="Array tasks.")
@click.option("--processes", type=click.IntRange(min=1, max=256), default=1, show_default=True, help="Per task.")
@click.option("--mem", default="4G", show_default=True, help="Memory per task (SLURM --mem).")
@click.option("--time", "time_limit", default="24:00:00", show_default=True, help="SLURM --time.")
@click.option("--partition", default=None, help="SLURM --partition.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Default: here.")
@click.option("--lfpbold", "exe", default=None, help="The lfpbold command on the nodes (default: this one).")
@click.pass_context
def slurm_script_cmd(ctx, out_file, workers, processes, mem, time_limit, partition, workdir, exe):
    """Write an sbatch job-array script running `lfpbold worker` on the lab server named by DJ_*.

    The script names the server (DJ_HOST, DJ_PORT, DJ_USER, DJ_BACKEND) but never the password:
    sbatch passes DJ_PASS from your environment, or DataJoint reads its secrets files.
    """
    from lfpbold.cluster import slurm_script

    try:
        text = slurm_script(
            workers=workers,
            processes=processes,
            mem=mem,
            time=time_limit,
            partition=partition,
            prefix=ctx.obj.get("prefix"),
            workdir=workdir,
            lfpbold=exe,
        )
    except (ValueError, RuntimeError) as err:
        raise click.ClickException(str(err)) from None
    out_file.write_text(text)
    out_file.chmod(0o750)
    log_dir = next(line for line in text.splitlines() if line.startswith("#SBATCH --output="))
    Path(log_dir.split("=", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"wrote {out_file}: {workers} array task(s); submit with: sbatch {out_file}")


if __name__ == "__main__":
    main()
