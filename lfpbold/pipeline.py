"""The pipeline as a whole: activating the schemas, inserting a study, populating every analysis.

The CLI, notebooks and tests all go through these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datajoint as dj

logger = logging.getLogger("lfpbold")

#: schema module name -> database schema suffix, in dependency order
SCHEMA_MODULES = ("acquisition", "params", "analysis", "relations", "cohort")


def _modules():
    from lfpbold.schemas import acquisition, analysis, cohort, params, relations

    return {
        "acquisition": acquisition,
        "params": params,
        "analysis": analysis,
        "relations": relations,
        "cohort": cohort,
    }


def activate(prefix: str, connection: dj.Connection) -> dict[str, dj.Schema]:
    """Bind every lfpbold table to ``prefix + <module>`` schemas on ``connection``.

    The table classes are defined once at module level; each call binds them to a fresh
    :class:`datajoint.Schema`, so one process can switch between prefixes or servers (tests do).
    """
    from lfpbold.compat import arrays_in_table
    from lfpbold.validate import check_prefix
    from lfpbold.workers import schema_lock

    check_prefix(prefix)
    schemas = {}
    in_table = arrays_in_table(connection)  # MariaDB: DataJoint 2.3 cannot hold store columns there
    # Declaring tables, their job tables and the lookup rows, one process at a time per prefix:
    # workers and ingests started together on a new prefix would otherwise race on CREATE.
    with schema_lock(connection, "schemas:" + prefix):
        for name, module in _modules().items():
            template = module.schema  # never activated: it only remembers the classes, in order
            active = dj.Schema(connection=connection)
            active.activate(prefix + name, connection=connection)
            for cls, context in template.declare_list:
                _set_definitions(cls, in_table)
                active(cls, context=context)
            module.active_schema = active
            schemas[name] = active
        for table in computed_tables():
            try:
                table.jobs  # declared on first access  # noqa: B018
            except dj.errors.AccessError:
                break  # a role without CREATE (a viewer) uses the job tables a writer declared
    return schemas


def _parts(cls) -> list:
    """The Part tables declared inside a master table class."""
    import inspect

    return [p for p in vars(cls).values() if inspect.isclass(p) and issubclass(p, dj.Part)]


def _set_definitions(cls, in_table: bool) -> None:
    """Give ``cls`` and its parts their definitions as written, or with arrays in the table."""
    from lfpbold.compat import store_in_table

    for table in [cls, *_parts(cls)]:
        # the class is bound again at each activate, so keep the definition as written
        original = table.__dict__.get("_store_definition", table.definition)
        table._store_definition = original
        table.definition = store_in_table(original) if in_table else original


def tables_by_schema() -> dict[str, list[tuple[str, type]]]:
    """The activated schemas' tables (parts as ``Master.Part``), in declaration order."""
    out = {}
    for module in _modules().values():
        rows = []
        for cls, _ in module.schema.declare_list:
            rows.append((cls.__name__, cls))
            rows += [(f"{cls.__name__}.{p.__name__}", p) for p in _parts(cls)]
        out[module.active_schema.database] = rows
    return out


def computed_tables() -> list:
    """Every computed table, upstream first."""
    from lfpbold.schemas import analysis, cohort, relations

    return [
        analysis.CleanLFP,
        analysis.BandPower,
        analysis.PreprocessedBold,
        relations.SeedMap,
        relations.LFPPowerMap,
        relations.TemporalCorrelation,
        relations.SpatialSimilarity,
        relations.HRFSensitivity,
        relations.LagCorrelation,
        relations.LFPRemoval,
        cohort.Cohort,
        cohort.CohortMapStats,
    ]


@dataclass
class IngestReport:
    inserted: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    #: scans whose files changed, replaced with ``replace=True``: key -> {table: rows deleted}
    replaced: list[tuple[dict, dict[str, int]]] = field(default_factory=list)
    #: with ``dry_run=True``: what would be inserted, per kind (subjects, sessions, scans, files)
    planned: dict[str, list] = field(default_factory=dict)
    data_root: Path | None = None
    dry_run: bool = False

    @property
    def deleted_rows(self) -> int:
        return sum(sum(counts.values()) for _, counts in self.replaced)


def ingest_study(
    study_dir: str | Path,
    *,
    checksums: bool = True,
    replace: bool = False,
    dry_run: bool = False,
    data_root: str | Path | None = None,
    layout: str | None = None,
    derivatives: str | Path | None = None,
    region_aliases: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    follow_symlinks: bool = False,
) -> IngestReport:
    """Validate a study folder and insert what is new; a bad scan is reported and not inserted.

    Running it twice inserts nothing the second time. A scan already in the database whose file
    has changed (SHA-256 or size) is an error (the database would otherwise describe a different
    file), unless ``replace``: then the scan's rows and every row derived from them are deleted
    and the new files ingested, in one transaction (the scan's parameter-set selections are kept).
    Every new scan is selected for the study's parameter sets (0), so ``populate`` computes the
    study's analysis for it; :func:`select` adds other combinations. Each scan goes in whole (in
    one transaction) or not at all, and a scan the database refuses is reported without stopping
    the scans after it.

    Parameters
    ----------
    dry_run : bool
        Validate and report what would be inserted (``IngestReport.planned``) and every problem,
        inserting and deleting nothing.
    data_root : path, optional
        Paths are stored relative to it (see :mod:`lfpbold.integrity`); default
        ``$LFPBOLD_DATA_ROOT``, else the study folder's parent. The study folder must lie inside it.
    layout, derivatives, region_aliases
        Where preprocessed BOLD comes from (see :func:`lfpbold.ingest.read_study`).
    progress : callable, optional
        ``progress(bytes_done, bytes_total)`` as the scans' BOLD and NWB files are read, hashed and
        decoded (most of an ingest's time), block by block; ``bytes_total`` is the sum of their
        sizes (the CLI draws a progress bar with it). Inserting the rows that follow is quick.
    follow_symlinks : bool
        Read files linked from outside the study folder (refused by default).
    """
    from lfpbold import integrity
    from lfpbold.ingest import IngestError, read_study
    from lfpbold.schemas import acquisition as acq
    from lfpbold.schemas import params

    try:
        root = integrity.ingest_root(study_dir, data_root)
    except ValueError as err:
        raise IngestError(study_dir, "data root", str(err).split(": ", 1)[1]) from None
    records = read_study(
        study_dir,
        checksums=checksums,
        layout=layout,
        derivatives=derivatives,
        region_aliases=region_aliases,
        follow_symlinks=follow_symlinks,
        progress=progress,
    )
    _store_relative(records, root)
    report = IngestReport(errors=list(records.errors), data_root=root, dry_run=dry_run)
    new, changed = [], []  # (identity below: records hold arrays, so == would compare them)
    for scan in records.scans:
        if not acq.Scan & scan.key:
            new.append(scan)
            continue
        path = _changed_file(scan)
        if path is None:
            report.skipped.append(scan.key)
        elif replace:
            changed.append(scan)
        else:
            report.errors.append(
                IngestError(
                    root / path,  # stored relative to the data root
                    "sha256",
                    "file changed since it was ingested; `lfpbold ingest --replace` deletes the scan's rows "
                    "(and every result computed from them) and ingests the new file",
                    root=records.study_dir,
                )
            )
    if dry_run:
        report.planned = _plan(records, new + changed)
        report.replaced = [(scan.key, _cascade_counts(scan.key)) for scan in changed]
        return report
    conn = acq.Subject.connection
    with conn.transaction:
        regions = {r["region"] for r in records.implants} | {r["region"] for r in records.rois}
        acq.Region.insert(({"region": r, "region_name": r} for r in sorted(regions)), skip_duplicates=True)
        acq.Subject.insert(records.subjects, skip_duplicates=True)
        acq.Session.insert(records.sessions, skip_duplicates=True)
        acq.ProbeType.insert(records.probe_types, skip_duplicates=True)
        acq.ProbeType.Electrode.insert((_nan_to_null(e) for e in records.electrodes), skip_duplicates=True)
        acq.Implant.insert(records.implants, skip_duplicates=True)
        acq.Atlas.insert1(records.atlas, skip_duplicates=True)
        acq.Atlas.ROI.insert(records.rois, skip_duplicates=True)
        if new or changed:  # a root is worth remembering only once a scan's paths are relative to it
            _record_root(root)
    replacing = {id(scan) for scan in changed}
    for scan in new + changed:
        try:
            with conn.transaction:
                selections = [dict(DEFAULT_COMBINATION)]
                if id(scan) in replacing:
                    selections = (params.AnalysisSelection & scan.key).proj().to_dicts()
                    counts = _cascade_counts(scan.key)
                    (acq.Scan & scan.key).delete(prompt=False)  # inside this transaction: undone if the insert fails
                acq.Scan.insert1(scan.scan)
                # databases made before size and mtime were kept lack those columns; SHA-256 alone checks their files
                acq.FMRIRun.insert1(scan.fmri, ignore_extra_fields=True)
                acq.LFPRecording.insert1(scan.lfp, ignore_extra_fields=True)
                acq.LFPRecording.Channel.insert(scan.channels)
                acq.LFPRecording.ImplantSeries.insert(scan.series)
                params.AnalysisSelection.insert(
                    [dict(s, **scan.key) for s in selections] or [dict(scan.key, **DEFAULT_COMBINATION)]
                )
        except Exception as exc:  # noqa: BLE001 - rolled back: none of the scan's rows stay; the next scan goes on
            report.errors.append(IngestError(scan.fmri["bold_path"], "database", f"scan not inserted ({exc})"))
            continue
        if id(scan) in replacing:
            report.replaced.append((scan.key, counts))
        if id(scan) not in replacing:
            report.inserted.append(scan.key)
    return report


def _store_relative(records, root: Path) -> None:
    """Every path the records keep, relative to the data root (in place)."""
    from lfpbold.integrity import stored_path

    for row in records.sessions:
        row["session_dir"] = stored_path(row["session_dir"], root)
    if records.atlas:
        records.atlas["atlas_dir"] = stored_path(records.atlas["atlas_dir"], root)
    for row in records.rois:
        row["roi_path"] = stored_path(row["roi_path"], root)
    for scan in records.scans:
        for row, attr in ((scan.fmri, "bold_path"), (scan.fmri, "motion_path"), (scan.lfp, "nwb_path")):
            row[attr] = stored_path(row[attr], root)


def _changed_file(scan) -> str | None:
    """The ingested file of a scan already in the database that differs from the one read now (its path)."""
    from lfpbold.schemas import acquisition as acq

    for table, row, role in ((acq.FMRIRun, scan.fmri, "bold"), (acq.LFPRecording, scan.lfp, "nwb")):
        attrs = [f"{role}_{a}" for a in ("sha256", "size") if f"{role}_{a}" in table.heading.names]
        stored = (table & scan.key).proj(*attrs).fetch1()
        for attr, was in ((a, stored[a]) for a in attrs):
            now = row.get(attr)
            if was not in (None, "") and now not in (None, "") and was != now:
                return row[f"{role}_path"]
    return None


def _cascade_counts(key: dict) -> dict[str, int]:
    """Rows a delete of the scan would remove, per table (the scan's own rows included)."""
    from lfpbold.schemas import acquisition as acq

    names = {cls.full_table_name: name for rows in tables_by_schema().values() for name, cls in rows}
    counts = dj.Diagram.cascade(acq.Scan & key).counts()
    return {names.get(table, table): n for table, n in counts.items() if n}


def _plan(records, scans) -> dict[str, list]:
    """What an ingest of ``records`` would insert: new subjects, sessions, and the scans and files given."""
    from lfpbold.schemas import acquisition as acq

    def key(row, attrs):
        return {a: row[a] for a in attrs}

    return {
        "subjects": [key(r, ["subject"]) for r in records.subjects if not acq.Subject & key(r, ["subject"])],
        "sessions": [
            key(r, ["subject", "session"]) for r in records.sessions if not acq.Session & key(r, ["subject", "session"])
        ],
        "scans": [scan.key for scan in scans],
        "files": [
            p for scan in scans for p in (scan.fmri["bold_path"], scan.fmri["motion_path"], scan.lfp["nwb_path"])
        ],
    }


def _record_root(root: Path) -> None:
    import datetime
    import hashlib

    from lfpbold.schemas import acquisition as acq

    row = {
        "root_md5": hashlib.md5(str(root).encode()).hexdigest(),
        "data_root": str(root),
        "recorded_at": datetime.datetime.now().replace(microsecond=0),
    }
    if acq.DataRoot & {"root_md5": row["root_md5"]}:
        (acq.DataRoot & {"root_md5": row["root_md5"]}).delete_quick()
    acq.DataRoot.insert1(row)


#: The study's parameter sets: what ingest selects for every new scan.
DEFAULT_COMBINATION = {"lfp_paramset": 0, "band_paramset": 0, "bold_paramset": 0, "relation_paramset": 0}


def select(
    *,
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    bold_paramset: int = 0,
    relation_paramset: int = 0,
    subject: str | None = None,
    session: str | None = None,
    run: int | None = None,
    state: str | None = None,
) -> int:
    """Select a combination of parameter sets for the matching scans; ``populate`` then computes it.

    Unnamed parameter sets stay at the study's defaults (0). Scans are matched by any of
    ``subject``, ``session``, ``run`` and ``state``; with none given, every scan. Selecting what
    is already selected changes nothing.

    Returns
    -------
    int
        Scans newly selected.

    Examples
    --------
    >>> from lfpbold.schemas.params import BoldParams                          # doctest: +SKIP
    >>> n = BoldParams.insert_new_params(BoldParams.bandpass_params(), "band-pass only")   # doctest: +SKIP
    >>> select(bold_paramset=n, subject="01")                                  # doctest: +SKIP
    4
    """
    from lfpbold.schemas import acquisition as acq
    from lfpbold.schemas import params
    from lfpbold.validate import check_label

    combo = {
        "lfp_paramset": lfp_paramset,
        "band_paramset": band_paramset,
        "bold_paramset": bold_paramset,
        "relation_paramset": relation_paramset,
    }
    combo = params.check_paramsets(combo)
    scans = acq.Scan.proj() * acq.Session.proj("state")
    for attr, value in (("subject", subject), ("session", session), ("run", run), ("state", state)):
        if value is not None:
            value = check_label(attr, value)
            if attr == "run" and not isinstance(value, int):
                raise TypeError(f"run must be an integer; got {value!r}")
            scans &= {attr: value}  # a dict restriction: values are quoted by DataJoint, never SQL text
    rows = [dict(k, **combo) for k in scans.proj().keys()]
    before = len(params.AnalysisSelection & combo)
    params.AnalysisSelection.insert(rows, skip_duplicates=True)
    return len(params.AnalysisSelection & combo) - before


def _nan_to_null(row: dict) -> dict:
    # MySQL has no NaN; an unknown value is NULL on every backend.
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def populate(
    *,
    processes: int = 1,
    reserve_jobs: bool = False,
    display_progress: bool = True,
    orphan_timeout: float | None = None,
    echo: Callable[[str], None] | None = None,
    verify: str = "stat",
    data_root: str | Path | None = None,
) -> dict[str, dict]:
    """Fill every computed table, upstream first; one table's failures do not stop the others.

    Parameters
    ----------
    processes : int
        Worker processes. One: each table in turn, DataJoint's populate. More: that many
        forked processes of the worker loop (:func:`lfpbold.workers.worker`), each with one BLAS
        thread, each going over every table upstream first and reserving keys through the job
        tables; a process that finds a table's keys all taken moves on to whatever is ready
        downstream instead of waiting for that table's slowest key (DataJoint's pool per table
        waits). Without ``reserve_jobs`` the errors recorded by an earlier run are cleared first,
        as in one process, so every key not done is tried. No progress bars.
    reserve_jobs : bool
        Coordinate through DataJoint's job tables, so workers on several machines can share one
        server. Reservations whose worker's database connection no longer exists (a worker killed
        with SIGKILL, a lost machine) are returned to the queue first
        (:func:`lfpbold.workers.requeue_dead_reservations`). With ``orphan_timeout``, so are
        reservations older than that many seconds, live or not (a worker that hangs). Without
        ``reserve_jobs``, every key not done is tried, and the keys that fail are recorded as
        ``error`` jobs all the same (:func:`record_failures`), so ``lfpbold status`` lists them.
    display_progress : bool
        A progress bar per table.
    verify : {"stat", "full"}
        How each make checks the files it reads against what ingest recorded: ``"stat"`` compares
        size and modification time, and the SHA-256 when either differs; ``"full"`` the SHA-256
        always. A changed file fails its keys with an error naming it (:mod:`lfpbold.integrity`).
    data_root : path, optional
        Where the study folders are on this machine, for paths stored relative to a data root
        (default ``$LFPBOLD_DATA_ROOT``, else the roots recorded at ingest).

    Returns
    -------
    dict
        Per table name: ``{"success_count": n, "error_list": [(key, message), ...]}``, plus
        ``"remaining"`` (keys neither done nor failed) and ``"reserved_by_others"`` for the tables
        where keys are left.
    """
    from lfpbold import integrity
    from lfpbold.schemas import cohort
    from lfpbold.workers import one_blas_thread, remaining, requeue_dead_reservations

    integrity.configure(verify=verify, data_root=data_root)  # read by the makes of this process and its workers
    echo = echo or (lambda s: None)
    if processes > 1:
        return _populate_with_workers(processes, reserve_jobs, orphan_timeout, echo)
    outcome = {}
    for table in computed_tables():
        if table is cohort.Cohort:  # only now are the new scans' per-scan rows there to compare with
            refresh_stale_cohorts(echo)
        if reserve_jobs:
            # jobs of workers whose database connection is gone (killed, crashed, machine lost)
            requeue_dead_reservations([table], echo=echo)
            if orphan_timeout is not None:  # and, if asked, of live workers stuck that long
                table.jobs.refresh(orphan_timeout=orphan_timeout)
        todo = len(table.key_source - table.proj())
        if not todo:
            outcome[table.__name__] = {"success_count": 0, "error_list": []}
            continue
        if not reserve_jobs:
            # this run retries every key not done, so the errors recorded by an earlier run are now stale
            table.jobs.errors.delete_quick()
        with one_blas_thread(processes > 1):  # forked worker processes inherit one BLAS thread each
            result = table.populate(
                processes=processes, reserve_jobs=reserve_jobs, display_progress=display_progress, suppress_errors=True
            )
        if not reserve_jobs:
            record_failures(table, result["error_list"])
        outcome[table.__name__] = result
        echo(f"{table.__name__}: {result['success_count']} done, {len(result['error_list'])} failed")
        for key, message in result["error_list"]:
            echo(f"  {table.__name__} {dict(key)}: {message}")
    failed = [(name, key) for name, r in outcome.items() for key, _ in r["error_list"]]
    for name, info in remaining(computed_tables(), failed).items():
        outcome.setdefault(name, {"success_count": 0, "error_list": []})["remaining"] = info["n"]
        outcome[name]["reserved_by_others"] = len(info["reserved"])
    return outcome


def _populate_with_workers(processes: int, reserve_jobs: bool, orphan_timeout, echo) -> dict[str, dict]:
    """:func:`populate` with more than one process: the worker loop until nothing is left."""
    from lfpbold.workers import worker

    tables = computed_tables()
    for table in tables:
        if not reserve_jobs:
            table.jobs.errors.delete_quick()  # this run retries every key not done
        elif orphan_timeout is not None:
            table.jobs.refresh(orphan_timeout=orphan_timeout)
    report = worker(tables=tables, processes=processes, poll=0.2, exit_when_idle=True, echo=echo)
    outcome = {t.__name__: {"success_count": 0, "error_list": []} for t in tables}
    for name, _key in report.done:
        outcome[name]["success_count"] += 1
    for name, key, message in report.failed:
        outcome.setdefault(name, {"success_count": 0, "error_list": []})["error_list"].append((key, message))
    for t in tables:
        r = outcome[t.__name__]
        echo(f"{t.__name__}: {r['success_count']} done, {len(r['error_list'])} failed")
    for name, info in report.remaining.items():  # what the workers left: keys neither done nor failed
        outcome[name]["remaining"] = info["n"]
        outcome[name]["reserved_by_others"] = len(info["reserved"])
    return outcome


def record_failures(table, error_list) -> None:
    """Write a populate's failures into the table's job table, where ``lfpbold status`` reads them.

    DataJoint records a failed make in the job table only when it populates with ``reserve_jobs``;
    lfpbold's :func:`populate` calls this after a populate without it, so ``status`` lists the
    errors of either kind of run. Each failed key gets an ``error`` job with the message, the host
    and process that ran it; a later :func:`populate` without ``reserve_jobs`` retries those keys
    (and clears their errors first), as before.

    Parameters
    ----------
    table : DataJoint computed or imported table class
    error_list : list of (key, message)
        As DataJoint's ``populate(suppress_errors=True)`` returns them.
    """
    import os
    import platform

    from datajoint.jobs import ERROR_MESSAGE_LENGTH, TRUNCATION_APPENDIX

    if not error_list:
        return
    jobs = table.jobs
    conn = table.connection
    now = conn.query("SELECT CURRENT_TIMESTAMP(3)").fetchone()[0]  # server time, as DataJoint's jobs write
    ran_by = {"host": platform.node()[:255], "pid": os.getpid(), "user": conn.get_user()[:255]}
    for key, message in error_list:
        pk = {name: key[name] for name in jobs.primary_key}
        message = str(message)
        if len(message) > ERROR_MESSAGE_LENGTH:
            message = message[: ERROR_MESSAGE_LENGTH - len(TRUNCATION_APPENDIX)] + TRUNCATION_APPENDIX
        (jobs & pk).delete_quick()  # inserted as an error at once: never pending, so no worker can take it
        jobs.insert1(
            {
                **pk,
                "status": "error",
                "priority": conn._config.jobs.default_priority,
                "completed_time": now,
                "error_message": message,
                **ran_by,
            }
        )


def refresh_stale_cohorts(echo: Callable[[str], None] | None = None) -> int:
    """Delete the Cohort rows that summarise an older set of scans (populate recomputes them)."""
    from lfpbold.schemas import cohort

    stale = cohort.Cohort().stale()
    for key in stale:
        (cohort.Cohort & key).delete(prompt=False)
    if stale and echo:
        echo(f"Cohort: {len(stale)} row(s) summarise an older set of scans; recomputing")
    return len(stale)


def drop(prefix: str, connection: dj.Connection) -> None:
    """Drop every lfpbold schema with this prefix (tests; starting a study over)."""
    from lfpbold.validate import check_prefix

    check_prefix(prefix)
    existing = set(dj.list_schemas(connection=connection))
    for name in reversed(SCHEMA_MODULES):
        if prefix + name in existing:
            schema = dj.Schema(connection=connection)
            schema.activate(prefix + name, connection=connection, create_schema=False)
            schema.drop(prompt=False)
