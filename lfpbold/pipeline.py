"""The pipeline as a whole: activating the schemas, inserting a study, populating every analysis.

The CLI, notebooks and tests all go through these functions.
"""

from __future__ import annotations

import logging
import numbers
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

    schemas = {}
    in_table = arrays_in_table(connection)  # MariaDB: DataJoint 2.3 cannot hold store columns there
    for name, module in _modules().items():
        template = module.schema  # never activated: it only remembers the classes, in order
        active = dj.Schema(connection=connection)
        active.activate(prefix + name, connection=connection)
        for cls, context in template.declare_list:
            _set_definitions(cls, in_table)
            active(cls, context=context)
        module.active_schema = active
        schemas[name] = active
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
    ]


@dataclass
class IngestReport:
    inserted: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)


def ingest_study(study_dir: str | Path, *, checksums: bool = True, follow_symlinks: bool = False) -> IngestReport:
    """Validate a study folder and insert what is new; a bad scan is reported and not inserted.

    Running it twice inserts nothing the second time. A scan already in the database whose file
    checksum has changed is an error (the database would otherwise describe a different file).
    Every new scan is selected for the study's parameter sets (0), so ``populate`` computes the
    study's analysis for it; :func:`select` adds other combinations. Each scan goes in whole (in
    one transaction) or not at all, and a scan the database refuses is reported without stopping
    the scans after it. ``follow_symlinks`` reads files linked from outside the study folder.
    """
    from lfpbold.ingest import IngestError, read_study
    from lfpbold.schemas import acquisition as acq
    from lfpbold.schemas import params

    records = read_study(study_dir, checksums=checksums, follow_symlinks=follow_symlinks)
    report = IngestReport(errors=list(records.errors))
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
    for scan in records.scans:
        if acq.Scan & scan.key:
            stored = (acq.FMRIRun * acq.LFPRecording & scan.key).fetch1("bold_sha256", "nwb_sha256")
            now = (scan.fmri["bold_sha256"], scan.lfp["nwb_sha256"])
            paths = (scan.fmri["bold_path"], scan.lfp["nwb_path"])
            changed = [p for p, a, b in zip(paths, stored, now, strict=True) if a and b and a != b]
            if changed:
                report.errors.append(
                    IngestError(
                        changed[0],
                        "sha256",
                        "file changed since it was ingested; delete the scan's rows to ingest the new file",
                    )
                )
            else:
                report.skipped.append(scan.key)
            continue
        try:
            with conn.transaction:
                acq.Scan.insert1(scan.scan)
                acq.FMRIRun.insert1(scan.fmri)
                acq.LFPRecording.insert1(scan.lfp)
                acq.LFPRecording.Channel.insert(scan.channels)
                params.AnalysisSelection.insert1(dict(scan.key, **DEFAULT_COMBINATION))  # the study's analysis
        except Exception as exc:  # noqa: BLE001 - rolled back: none of the scan's rows stay; the next scan goes on
            report.errors.append(IngestError(scan.fmri["bold_path"], "database", f"scan not inserted ({exc})"))
            continue
        report.inserted.append(scan.key)
    return report


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

    combo = {
        "lfp_paramset": lfp_paramset,
        "band_paramset": band_paramset,
        "bold_paramset": bold_paramset,
        "relation_paramset": relation_paramset,
    }
    for table, name in (
        (params.LFPParams, "lfp_paramset"),
        (params.BandPowerParams, "band_paramset"),
        (params.BoldParams, "bold_paramset"),
        (params.RelationParams, "relation_paramset"),
    ):
        if not isinstance(combo[name], numbers.Integral) or isinstance(combo[name], bool):
            raise ValueError(f"{name} must be a parameter-set number; got {combo[name]!r}")
        combo[name] = int(combo[name])
        if not table & {name: combo[name]}:
            known = ", ".join(str(n) for n in table.to_arrays(name))
            raise ValueError(f"No {table.__name__} set {combo[name]}; the sets are: {known}")
    scans = acq.Scan.proj() * acq.Session.proj("state")
    for attr, value in (("subject", subject), ("session", session), ("run", run), ("state", state)):
        if value is not None:
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
) -> dict[str, dict]:
    """Fill every computed table, upstream first; one table's failures do not stop the others.

    Parameters
    ----------
    processes : int
        Worker processes per table (DataJoint's populate).
    reserve_jobs : bool
        Coordinate through DataJoint's job tables, so workers on several machines can share one
        server. With ``orphan_timeout``, jobs reserved longer ago than that many seconds (a worker
        killed with SIGKILL leaves its job reserved forever) are returned to the queue first.
    display_progress : bool
        A progress bar per table.

    Returns
    -------
    dict
        Per table name: ``{"success_count": n, "error_list": [(key, message), ...]}``.
    """
    from lfpbold.schemas import cohort

    echo = echo or (lambda s: None)
    outcome = {}
    for table in computed_tables():
        if table is cohort.Cohort:  # only now are the new scans' per-scan rows there to compare with
            stale = cohort.Cohort().stale()
            for key in stale:
                (cohort.Cohort & key).delete(prompt=False)
            if stale:
                echo(f"Cohort: {len(stale)} row(s) summarise an older set of scans; recomputing")
        if reserve_jobs and orphan_timeout is not None:
            table.jobs.refresh(orphan_timeout=orphan_timeout)
        todo = len(table.key_source - table.proj())
        if not todo:
            outcome[table.__name__] = {"success_count": 0, "error_list": []}
            continue
        result = table.populate(
            processes=processes, reserve_jobs=reserve_jobs, display_progress=display_progress, suppress_errors=True
        )
        outcome[table.__name__] = result
        echo(f"{table.__name__}: {result['success_count']} done, {len(result['error_list'])} failed")
        for key, message in result["error_list"]:
            echo(f"  {table.__name__} {dict(key)}: {message}")
    return outcome


def drop(prefix: str, connection: dj.Connection) -> None:
    """Drop every lfpbold schema with this prefix (tests; starting a study over)."""
    existing = set(dj.list_schemas(connection=connection))
    for name in reversed(SCHEMA_MODULES):
        if prefix + name in existing:
            schema = dj.Schema(connection=connection)
            schema.activate(prefix + name, connection=connection, create_schema=False)
            schema.drop(prompt=False)
