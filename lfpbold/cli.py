"""The ``lfpbold`` command: one way in for simulating, ingesting, populating and querying a study.

Every command is a thin layer over a Python function of the same name in :mod:`lfpbold`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

BY_CHOICES = ("subject", "session", "state", "region", "band")


def _connect(ctx):
    from lfpbold.db import connect

    if ctx.obj.get("db") is None:
        ctx.obj["db"] = connect(prefix=ctx.obj.get("prefix"))
    return ctx.obj["db"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--prefix",
    envvar="LFPBOLD_PREFIX",
    default=None,
    help="Schema-name prefix (default lfpbold_); several studies can share a server.",
)
@click.version_option(package_name="lfpbold")
@click.pass_context
def main(ctx, prefix):
    """Simultaneous resting-state fMRI + LFP studies on DataJoint.

    With no server configured (DJ_HOST or datajoint.json), lfpbold starts its own embedded
    PostgreSQL under $LFPBOLD_HOME (default: the user's data folder).
    """
    ctx.ensure_object(dict)
    ctx.obj["prefix"] = prefix


@main.command()
@click.option("--stop", is_flag=True, help="Stop the embedded PostgreSQL server.")
@click.pass_context
def db(ctx, stop):
    """Where the data lives: backend, server, folders, and each table's row count."""
    from lfpbold.db import lfpbold_home, stop_embedded

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
    from lfpbold.pipeline import tables_by_schema

    for schema_name, tables in tables_by_schema().items():
        click.echo(f"\n{schema_name}")
        for name, table in tables:
            click.echo(f"  {name:<32} {len(table()):>8}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subjects", default=3, show_default=True)
@click.option("--sessions", default=1, show_default=True, help="Sessions per state per subject.")
@click.option("--scans", default=2, show_default=True, help="Runs per session.")
@click.option("--regions", default="ACC,M1", show_default=True)
@click.option("--states", default="sedated", show_default=True)
@click.option("--true-temporal-r", default=0.59, show_default=True, type=float)
@click.option("--cnr", default=1.3, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True)
@click.option("--size", type=click.Choice(["small", "paper"]), default="small", show_default=True)
@click.option("--artifact/--no-artifact", default=None, help="MR gradient artifacts (default: on for paper size).")
def simulate(out_dir, subjects, sessions, scans, regions, states, true_temporal_r, cnr, seed, size, artifact):
    """Write a simulated study (BIDS + NWB) with a known ground truth to OUT_DIR."""
    from lfpbold.simulate import simulate_study

    t0 = time.perf_counter()
    path = simulate_study(
        out_dir,
        subjects=subjects,
        sessions=sessions,
        scans=scans,
        regions=tuple(regions.split(",")),
        states=tuple(states.split(",")),
        true_temporal_r=true_temporal_r,
        cnr=cnr,
        seed=seed,
        size=size,
        artifact=artifact,
        progress=click.echo,
    )
    click.echo(f"wrote {path} in {time.perf_counter() - t0:.1f} s")


def _ingest(ctx, study_dir, checksums=True, follow_symlinks=False):
    from lfpbold.pipeline import ingest_study

    _connect(ctx)
    report = ingest_study(study_dir, checksums=checksums, follow_symlinks=follow_symlinks)
    click.echo(f"ingest {study_dir}: {len(report.inserted)} scan(s) inserted, {len(report.skipped)} already there")
    for err in report.errors:
        click.echo(f"error: {err}", err=True)
    return report


@main.command()
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-checksums", is_flag=True, help="Skip SHA-256 of each file (faster on huge files).")
@click.option(
    "--follow-symlinks", is_flag=True, help="Read files that are symbolic links out of STUDY_DIR (refused by default)."
)
@click.pass_context
def ingest(ctx, study_dir, no_checksums, follow_symlinks):
    """Validate STUDY_DIR and insert its subjects, sessions, implants and scans."""
    from lfpbold.ingest import IngestError

    try:
        report = _ingest(ctx, study_dir, checksums=not no_checksums, follow_symlinks=follow_symlinks)
    except IngestError as err:
        raise click.ClickException(str(err)) from None
    if report.errors:
        sys.exit(1)


def _populate(ctx, processes=1, reserve_jobs=False, orphan_timeout=None):
    from lfpbold.pipeline import populate as run

    _connect(ctx)
    outcome = run(
        processes=processes,
        reserve_jobs=reserve_jobs,
        orphan_timeout=orphan_timeout,
        echo=click.echo,
        display_progress=sys.stderr.isatty(),
    )  # bars only for a person watching, not in logs
    failed = sum(len(r["error_list"]) for r in outcome.values())
    done = sum(r["success_count"] for r in outcome.values())
    click.echo(f"populate: {done} job(s) done, {failed} failed")
    return failed


@main.command()
@click.option("--processes", default=1, show_default=True, help="Worker processes per table.")
@click.option("--reserve-jobs", is_flag=True, help="Coordinate workers (several machines) via DataJoint's job tables.")
@click.option(
    "--orphan-timeout",
    type=float,
    default=None,
    help="With --reserve-jobs: requeue jobs reserved longer than this many seconds (killed workers).",
)
@click.pass_context
def populate(ctx, processes, reserve_jobs, orphan_timeout):
    """Fill in every analysis for every ingested scan, upstream first."""
    if _populate(ctx, processes, reserve_jobs, orphan_timeout):
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
@click.option("--lfp-paramset", default=0, show_default=True)
@click.option("--band-paramset", default=0, show_default=True)
@click.option("--bold-paramset", default=0, show_default=True)
@click.option("--relation-paramset", default=0, show_default=True)
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
    _print_results(
        compute(
            by=groups,
            band_set=band_set,
            lfp_paramset=lfp_paramset,
            band_paramset=band_paramset,
            bold_paramset=bold_paramset,
            relation_paramset=relation_paramset,
        ),
        fmt,
        all_columns,
    )


@main.group()
def export():
    """Write results out as files other tools read."""


@export.command("maps")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--band-set", type=click.Choice(["classic", "one_hz"]), default="classic", show_default=True)
@click.pass_context
def export_maps_cmd(ctx, out_dir, band_set):
    """Every seed map and LFP power map as NIfTI in atlas space (BIDS-derivatives names)."""
    from lfpbold.export import export_maps

    _connect(ctx)
    paths = export_maps(out_dir, band_set=band_set)
    click.echo(f"wrote {len(paths)} maps under {out_dir}")


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
@click.option("--subjects", default=3, show_default=True)
@click.option("--processes", default=1, show_default=True)
@click.option("--seed", default=0, show_default=True)
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
