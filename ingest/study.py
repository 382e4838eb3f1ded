"""Read and validate a whole study folder into plain records, one dict per table row.

Study-level problems raise; a bad scan is left out and its errors are collected.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bids import (
    CONFOUNDS_SUFFIX,
    find_confounds,
    label_error,
    parse_entities,
    read_dataset_description,
    read_participants,
    read_sessions,
    read_sidecar,
)
from .checksum import fingerprint
from .errors import IngestError
from .layouts import open_layout
from .limits import check_row, check_value
from .nifti import check_bold_samples, find_atlas, read_bold_header
from .nwb import read_nwb

__all__ = ["read_study", "StudyRecords", "ScanRecords"]

# Subject attributes and the table's defaults, used when neither participants.tsv nor NWB says
_SUBJECT_DEFAULTS = {"species": "Rattus norvegicus", "strain": "", "sex": "U", "age": "", "weight_g": None}
# NWB subject fields that must agree with participants.tsv when both give them (age and weight change)
_SUBJECT_FIXED = ("species", "strain", "sex")


@dataclass
class ScanRecords:
    """The rows of one validated scan; every dict carries the scan's key (subject, session, run)."""

    key: dict
    scan: dict
    fmri: dict
    lfp: dict
    channels: list[dict]
    #: LFPRecording.ImplantSeries rows, for a file with one ElectricalSeries per probe
    series: list[dict] = field(default_factory=list)


@dataclass
class StudyRecords:
    """The rows of a study folder, ready to insert table by table, and the scans left out."""

    study_dir: Path
    name: str
    subjects: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    probe_types: list[dict] = field(default_factory=list)
    electrodes: list[dict] = field(default_factory=list)
    implants: list[dict] = field(default_factory=list)
    atlas: dict = field(default_factory=dict)
    rois: list[dict] = field(default_factory=list)
    scans: list[ScanRecords] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)


def read_study(
    study_dir,
    *,
    checksums: bool = True,
    series_path: str | None = None,
    layout: str | None = None,
    derivatives=None,
    region_aliases=None,
    follow_symlinks: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> StudyRecords:
    """Read and validate a BIDS-style study folder (NIfTI BOLD + NWB LFP) into table rows.

    Everything is validated before returning. Problems that concern the whole study (no
    ``dataset_description.json`` or ``participants.tsv``, an unreadable atlas, a missing mask)
    raise :class:`IngestError`. A scan with any problem is left out of ``scans`` entirely and
    its errors are listed in ``errors``; a session or subject problem (no row in
    ``sub-XX_sessions.tsv``, a bad state, no row in ``participants.tsv``) leaves out all its scans
    with one error. Implants and probe types come from the good scans' NWB files.

    Parameters
    ----------
    study_dir : path
        The study folder (see the layout contract).
    checksums : bool
        Compute SHA-256 of every NWB and NIfTI file (streams the whole file: ~3 GB per paper-size
        scan). False leaves ``bold_sha256`` and ``nwb_sha256`` as ``""``. Every BOLD run is
        decoded to its last voxel either way (in the same pass as its checksum).
    series_path : str, optional
        HDF5 path of the raw ElectricalSeries when NWB files hold several candidates.
    layout : {"bids", "rabies", "fmriprep"}, optional
        Where the preprocessed BOLD, motion and atlas come from (:mod:`lfpbold.ingest.layouts`);
        detected when not given. Subjects, sessions and NWB files always come from ``study_dir``.
    derivatives : path, optional
        The RABIES or fMRIPrep output folder (default ``derivatives/rabies`` or ``derivatives/fmriprep``).
    region_aliases : path, optional
        A TSV (``region``, ``alias``) adding to the region alias table (:mod:`lfpbold.ingest.regions`).
    follow_symlinks : bool
        Read files that are symbolic links to places outside the study folder; by default each
        is an error of its scan (the rows would describe a file the study does not hold).
    progress : callable, optional
        ``progress(bytes_done, bytes_total)`` as the scans' BOLD and NWB files are read (block by
        block while they are hashed and decoded), ``bytes_total`` being the sum of their sizes; it
        reaches the total once every scan is read, whether or not the scan was good.

    Examples
    --------
    >>> records = read_study("/data/lfpbold-study")  # doctest: +SKIP
    >>> [str(e) for e in records.errors]  # doctest: +SKIP
    ['sub-02/.../sub-02_..._run-2_ecephys.nwb: scanner_volumes: 290 triggers but the BOLD run has 300 volumes']
    """
    study_dir = Path(study_dir).absolute()
    try:
        reader = open_layout(study_dir, layout, derivatives=derivatives, region_aliases=region_aliases)
        return _read_study(study_dir, checksums, series_path, reader, follow_symlinks, progress)
    except IngestError as err:
        raise err.reroot(study_dir) from None


class _BytesRead:
    """Ingest's progress in bytes: each block of a scan file as it is read, and the rest of a scan
    (files not read: an earlier error, no checksums) once the scan is done."""

    def __init__(self, total: int, progress):
        self.total, self.done, self.progress = total, 0, progress

    def block(self, data: bytes) -> None:
        self.done += len(data)
        self.progress(self.done, self.total)

    def scan_done(self, through: int) -> None:
        """Every scan up to this one is read: ``through`` bytes of files in all."""
        if through != self.done:
            self.done = through
            self.progress(self.done, self.total)


def _file_size(path) -> int:
    try:
        return os.stat(path).st_size if path is not None else 0
    except OSError:  # missing: the scan's error says so
        return 0


def _read_study(
    study_dir: Path, checksums: bool, series_path, reader, follow_symlinks: bool, progress=None
) -> StudyRecords:
    if not study_dir.is_dir():
        raise IngestError(study_dir, "file", "not a folder")
    inside = _Inside(study_dir, follow_symlinks, getattr(reader, "derivatives", None))
    for name in ("dataset_description.json", "participants.tsv", "participants.json"):
        inside.check(study_dir / name)
    desc = read_dataset_description(study_dir)
    participants = read_participants(study_dir)
    if reader.name == "bids":  # the other layouts' atlases sit in the pipeline's output folder
        atlas_dir, _ = find_atlas(study_dir)
        for path in sorted(atlas_dir.iterdir()):
            inside.check(path)
    atlas, rois = reader.atlas()
    regions = [r["region"] for r in rois]
    records = StudyRecords(study_dir=study_dir, name=str(desc["Name"]), atlas=atlas, rois=rois)
    errors = records.errors
    probes, implants, nwb_subjects = {}, {}, {}
    runs = []  # (subject, session, prefix, files, the session's runs taken), read after the walk

    for sub_dir in sorted(p for p in study_dir.glob("sub-*") if p.is_dir()):
        sub = sub_dir.name[len("sub-") :]
        if label_error("sub", sub):
            errors.append(IngestError(sub_dir, "sub", label_error("sub", sub)))
            continue
        try:
            check_value("Subject", "subject", sub, sub_dir, field="sub")
            inside.check(sub_dir / f"sub-{sub}_sessions.tsv")
        except IngestError as err:
            errors.append(err)
            continue
        if sub not in participants:
            errors.append(
                IngestError(
                    study_dir / "participants.tsv",
                    "participant_id",
                    f"no row for sub-{sub}, whose folder {sub_dir.name}/ holds data",
                )
            )
            continue
        try:
            sessions, sessions_tsv = read_sessions(sub_dir, sub)
        except IngestError as err:
            errors.append(err)
            continue
        for loose in ("func", "ecephys"):
            if (sub_dir / loose).is_dir():
                errors.append(IngestError(sub_dir / loose, "ses", "runs must sit in a ses-<label> folder"))
        for ses_dir in sorted(p for p in sub_dir.glob("ses-*") if p.is_dir()):
            ses = ses_dir.name[len("ses-") :]
            if label_error("ses", ses):
                errors.append(IngestError(ses_dir, "ses", label_error("ses", ses)))
                continue
            try:
                check_value("Session", "session", ses, ses_dir, field="ses")
                check_value("Session", "session_dir", str(ses_dir), ses_dir, field="folder")
            except IngestError as err:
                errors.append(err)
                continue
            if ses not in sessions:
                errors.append(IngestError(sessions_tsv, "session_id", f"no row for ses-{ses}, whose folder holds data"))
                continue
            if "error" in sessions[ses]:
                errors.append(sessions[ses]["error"])
                continue
            records.sessions.append(
                {
                    "subject": sub,
                    "session": ses,
                    "state": sessions[ses]["state"],
                    "session_datetime": sessions[ses]["session_datetime"],
                    "session_dir": str(ses_dir),
                }
            )
            taken = {}  # run -> prefix, per session
            for prefix, files in _with_layout_runs(reader, sub, ses, _runs(ses_dir, sub, ses, errors)):
                runs.append((sub, ses, prefix, reader.run_files(sub, ses, prefix, files), taken))

    # the scans' files are read only now, when their sizes give the progress its total
    sizes = [_file_size(files.get("bold")) + _file_size(files.get("ecephys")) for *_, files, _ in runs]
    read = _BytesRead(sum(sizes), progress) if progress is not None else None
    through = 0
    for (sub, ses, prefix, files, taken), size in zip(runs, sizes, strict=True):
        scan_errors = []
        result = _read_scan(
            study_dir,
            sub,
            ses,
            prefix,
            files,
            atlas,
            regions,
            checksums,
            series_path,
            scan_errors,
            reader,
            inside,
            read,
        )
        through += size
        if read is not None:
            read.scan_done(through)
        if result is not None:
            scan, nwb = result
            run = scan.key["run"]
            if run in taken:
                scan_errors.append(
                    IngestError(scan.fmri["bold_path"], "run", f"run {run} of ses-{ses} is also {taken[run]}")
                )
            else:
                _check_subject(sub, nwb, participants[sub], nwb_subjects.get(sub), scan_errors)
                if not scan_errors:
                    _merge(sub, nwb, probes, implants, scan_errors)
        if scan_errors:
            errors.extend(scan_errors)
            continue
        taken[run] = prefix
        nwb_subjects.setdefault(sub, nwb["subject"])
        records.scans.append(scan)

    for sub, row in participants.items():
        fallback = nwb_subjects.get(sub, {})
        for attr, default in _SUBJECT_DEFAULTS.items():
            if row.get(attr) is None:
                value = fallback.get(attr)
                row[attr] = default if value is None else value
        try:
            check_row("Subject", row, study_dir / "participants.tsv")
        except IngestError as err:
            # a subject row that cannot go in takes its sessions, scans and implants with it
            err.reason = f"sub-{sub}: {err.reason}"
            err.args = (err._message(),)
            errors.append(err)
            records.sessions = [r for r in records.sessions if r["subject"] != sub]
            records.scans = [r for r in records.scans if r.key["subject"] != sub]
            implants = {k: v for k, v in implants.items() if k[0] != sub}
            continue
        records.subjects.append(row)
    records.probe_types = [
        {k: p[k] for k in ("probe_type", "manufacturer", "probe_description", "n_electrodes")} for p in probes.values()
    ]
    records.electrodes = [
        {"probe_type": name, "electrode": e, "depth_um": d}
        for name, p in probes.items()
        for e, d in sorted(p["electrodes"].items())
    ]
    records.implants = list(implants.values())
    for err in errors:
        err.reroot(study_dir)
    return records


def _runs(ses_dir: Path, sub: str, ses: str, errors: list):
    """(prefix, {"bold"|"sidecar"|"motion"|"ecephys": path}) for every run with a BOLD or NWB file."""
    runs = {}
    candidates = [
        *ses_dir.glob("func/*_bold.nii"),
        *ses_dir.glob("func/*_bold.nii.gz"),
        *ses_dir.glob("func/*_bold.json"),
        *ses_dir.glob("func/*_motion.tsv"),
        *ses_dir.glob("ecephys/*_ecephys.nwb"),
    ]
    for path in sorted(candidates):
        ents, suffix, ext = parse_entities(path.name)
        if ents.get("sub") != sub or ents.get("ses") != ses:
            errors.append(IngestError(path, "file", f"name does not match its folder sub-{sub}/ses-{ses}/"))
            continue
        prefix = path.name[: path.name.rindex("_" + suffix)]
        kind = "sidecar" if (suffix, ext) == ("bold", ".json") else suffix
        runs.setdefault(prefix, {})[kind] = path
    for prefix, files in sorted(runs.items()):
        if "bold" in files or "ecephys" in files:
            yield prefix, files


def _with_layout_runs(reader, sub, ses, runs):
    """The raw folder's runs, then runs only the layout's outputs hold (they lack an NWB file)."""
    seen = set()
    for prefix, files in runs:
        seen.add(prefix)
        yield prefix, files
    for s, e, prefix in sorted(reader.runs()):
        if (s, e) == (sub, ses) and prefix not in seen:
            yield prefix, {}


def _read_scan(
    study_dir, sub, ses, prefix, files, atlas, regions, checksums, series_path, errors, reader, inside, read=None
):
    """(ScanRecords, NWB extras) for one run, or None with ``errors`` filled."""
    func, ecephys = (
        study_dir / f"sub-{sub}" / f"ses-{ses}" / "func",
        study_dir / f"sub-{sub}" / f"ses-{ses}" / "ecephys",
    )
    ents, _, _ = parse_entities(prefix + "_x")
    bold_path, nwb_path = files.get("bold"), files.get("ecephys")
    where = bold_path or nwb_path
    try:
        run = int(ents.get("run", "1"))
        check_value("Scan", "run", run, where, field="run")
    except IngestError as err:  # before ValueError, which it is
        errors.append(err)
        return None
    except ValueError:
        errors.append(IngestError(where, "run", f"{ents['run']!r} is not a run number"))
        return None
    key = {"subject": sub, "session": ses, "run": run}
    for kind, path in files.items():
        if kind in ("bold", "sidecar", "ecephys", "motion") or reader.name == "bids":
            try:
                inside.check(path)
            except IngestError as err:
                errors.append(err)
    if errors:
        return None

    sidecar = header = motion = motion_source = None
    bold_id = {}
    motion_path = files.get("motion")
    if bold_path is None:
        expected = files.get("bold_expected", func / f"{prefix}_bold.nii.gz")  # where the layout looked
        errors.append(IngestError(expected, "file", f"missing: {nwb_path.name} has no BOLD run"))
    else:
        t_r = None
        try:
            own = files.get("sidecar_derived") or files.get("sidecar", func / f"{prefix}_bold.json")
            sidecar, chain = read_sidecar(study_dir, own)
            for path in chain:
                inside.check(path)
            t_r = float(sidecar["RepetitionTime"])
        except IngestError as err:
            errors.append(err)
        try:
            header = read_bold_header(bold_path, atlas, t_r)
        except IngestError as err:
            errors.append(err)
        if sidecar is not None and header is not None:
            _check_slice_timing(sidecar, chain, header, t_r, errors)
        if header is not None:
            try:  # every voxel decoded, in the pass that hashes the file
                bold_id = _bold_identity(bold_path, atlas["brain_mask"], checksums, read)
            except IngestError as err:
                errors.append(err)
        ambiguous = False
        if motion_path is None:
            motion_path, candidates = find_confounds(study_dir, sub, ses, prefix)
            if len(candidates) > 1:
                names = ", ".join(p.relative_to(study_dir).as_posix() for p in candidates)
                reason = f"{len(candidates)} head-motion tables for one run: {names}"
                errors.append(IngestError(candidates[0], "file", reason))
                ambiguous = True
        if motion_path is None:
            if not ambiguous:
                expected = f"derivatives/<pipeline>/sub-{sub}/ses-{ses}/func/{prefix}{CONFOUNDS_SUFFIX}"
                errors.append(
                    IngestError(bold_path, "motion", f"missing: no head-motion estimates of this run ({expected})")
                )
        elif not Path(motion_path).exists():
            errors.append(IngestError(motion_path, "file", "missing (realignment parameters of the BOLD run)"))
        elif header is not None:
            try:
                inside.check(motion_path)
                motion, motion_source = reader.read_motion(motion_path, header["shape"][3], files)
            except IngestError as err:
                errors.append(err)

    nwb = None
    if nwb_path is None:
        errors.append(
            IngestError(ecephys / f"{prefix}_ecephys.nwb", "file", f"missing: {bold_path.name} has no NWB file")
        )
    else:
        try:
            nwb = read_nwb(
                nwb_path,
                regions=regions,
                series_path=series_path,
                aliases=reader.aliases,
                checksum=checksums,
                each_block=read.block if read is not None and checksums else None,
            )
        except IngestError as err:
            errors.append(err)
    if nwb is not None:
        nwb_sub = nwb["subject"].get("subject_id")
        if nwb_sub is not None and nwb_sub not in (sub, f"sub-{sub}"):
            errors.append(IngestError(nwb_path, "subject/subject_id", f"{nwb_sub!r} but the file sits in sub-{sub}/"))
        if header is not None:
            n_volumes, n_slices = header["shape"][3], header["shape"][2]
            vol, sl = nwb["lfp"]["volume_triggers"], nwb["lfp"]["slice_triggers"]
            if len(vol) != n_volumes:
                errors.append(
                    IngestError(
                        nwb_path, "scanner_volumes", f"{len(vol)} triggers but the BOLD run has {n_volumes} volumes"
                    )
                )
            if len(sl) != n_volumes * n_slices:
                errors.append(
                    IngestError(
                        nwb_path,
                        "scanner_slices",
                        f"{len(sl)} triggers but the BOLD run has {n_volumes} volumes x {n_slices} slices "
                        f"= {n_volumes * n_slices}",
                    )
                )
        _check_nwb_limits(nwb_path, nwb, errors)
    if errors:
        return None
    try:  # from the pass that checked the samples (read_nwb compares it to a stat taken first)
        nwb_id = nwb.get("identity") or _fingerprint("nwb", nwb_path, checksums, read)
    except IngestError as err:
        errors.append(err)
        return None

    fmri = {
        **key,
        "bold_path": str(bold_path),
        **bold_id,
        "t_r": float(sidecar["RepetitionTime"]),
        "n_volumes": header["shape"][3],
        "shape": header["shape"],
        "affine": header["affine"],
        "slice_timing": (
            np.asarray(sidecar["SliceTiming"], dtype=np.float64) if sidecar.get("SliceTiming") is not None else None
        ),
        "motion": motion,
        "motion_path": str(motion_path),
        "motion_source": motion_source,
        "sidecar": sidecar,
    }
    lfp = {**key, **nwb["lfp"], **nwb_id}
    channels = [{**key, "subject": sub, **c} for c in nwb["channels"]]
    try:
        check_row("FMRIRun", fmri, bold_path, fields={"bold_path": "file", "motion_path": "file"})
        check_row("LFPRecording", lfp, nwb_path, fields={"nwb_path": "file"})
    except IngestError as err:
        errors.append(err)
        return None
    series = [{**key, "region": region, **row} for region, row in nwb["implant_series"].items()]
    scan = ScanRecords(
        key=dict(key), scan={**key, "atlas": atlas["atlas"]}, fmri=fmri, lfp=lfp, channels=channels, series=series
    )
    return scan, nwb


def _bold_identity(bold_path, brain_mask, checksums: bool, read: _BytesRead | None = None) -> dict:
    """The BOLD run's SHA-256, size and mtime, taken in the one pass that decodes every voxel."""
    before = os.stat(bold_path)
    digest = check_bold_samples(
        bold_path, brain_mask, checksum=checksums, each_block=read.block if read is not None else None
    )
    after = os.stat(bold_path)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise IngestError(bold_path, "file", "changed while it was being read; ingest again once nothing writes to it")
    return {"bold_sha256": digest, "bold_size": int(before.st_size), "bold_mtime_ns": int(before.st_mtime_ns)}


def _fingerprint(role: str, path, checksums: bool, read: _BytesRead | None = None) -> dict:
    """``<role>_sha256``, ``<role>_size``, ``<role>_mtime_ns``: what populate checks the file against.

    Progress rides on the hashing pass; without checksums the file is not read for it.
    """
    each_block = read.block if read is not None and checksums else None
    return {f"{role}_{k}": v for k, v in fingerprint(path, checksum=checksums, each_block=each_block).items()}


def _check_nwb_limits(path, nwb, errors):
    """The NWB file's names and numbers against the columns they go into."""
    try:
        check_row("LFPRecording", nwb["lfp"], path)
        for c in nwb["channels"]:
            check_row("LFPRecording.Channel", c, path, fields={"channel": "ElectricalSeries/data"})
        for region, implant in nwb["implants"].items():
            check_value("Region", "region", region, path, field="electrodes/location")
            check_row("Implant", implant, path, fields={"hemisphere": "electrodes/hemisphere"})
        for name, probe in nwb["probe_types"].items():
            check_row("ProbeType", {**probe, "probe_type": name}, path, fields={"probe_type": "devices"})
            for e in probe["electrodes"]:
                check_value("ProbeType.Electrode", "electrode", e, path, field="electrodes")
    except IngestError as err:
        errors.append(err)


def _sex(value):
    text = str(value).strip()
    return {"male": "M", "m": "M", "female": "F", "f": "F"}.get(text.lower(), text)


def _check_subject(sub, nwb, row, first_nwb, errors):
    """An NWB file's subject must not contradict participants.tsv, nor the subject's earlier NWB files."""
    path = Path(nwb["lfp"]["nwb_path"])
    here = nwb["subject"]
    for attr in _SUBJECT_FIXED:
        value = here.get(attr)
        if value is None:
            continue
        norm = _sex if attr == "sex" else (lambda v: str(v).strip())
        if row.get(attr) is not None:
            other, source = row[attr], "participants.tsv says"
        elif first_nwb and first_nwb.get(attr) is not None:
            other, source = first_nwb[attr], "an earlier NWB file of the subject says"
        else:
            continue
        if norm(other) != norm(value):
            errors.append(IngestError(path, f"subject/{attr}", f"{value!r} here but {source} {other!r} for sub-{sub}"))


class _Inside:
    """Refuses files that are symbolic links out of the study folder (unless told to follow them)."""

    def __init__(self, study_dir: Path, follow: bool, *others: Path | None):
        self.root = study_dir.resolve()
        self.roots = [self.root, *(Path(p).resolve() for p in others if p is not None)]  # e.g. --derivatives
        self.follow = follow

    def check(self, path: Path) -> None:
        path = Path(path)
        if self.follow or not (path.exists() or path.is_symlink()):
            return
        target = path.resolve()
        if not any(target == root or root in target.parents for root in self.roots):
            raise IngestError(
                path,
                "file",
                f"a symbolic link to {target}, outside the study folder (and any --derivatives folder); "
                "ingest with --follow-symlinks (follow_symlinks=True) to read it",
            )


def _check_slice_timing(sidecar, chain, header, t_r, errors):
    timing = sidecar.get("SliceTiming")
    if timing is None:
        return
    origin = next((p for p in reversed(chain) if "SliceTiming" in _keys(p)), chain[-1])
    n_slices = header["shape"][2]
    try:
        values = np.asarray(timing, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        errors.append(IngestError(origin, "SliceTiming", "not a list of numbers"))
        return
    if values.size != n_slices:
        errors.append(
            IngestError(origin, "SliceTiming", f"{values.size} values but the BOLD run has {n_slices} slices")
        )
    elif not np.all((values >= 0) & (values < t_r)):
        errors.append(IngestError(origin, "SliceTiming", f"values must lie in [0, RepetitionTime = {t_r:g})"))


def _keys(path):
    import json

    with open(path) as f:
        return json.load(f).keys()


def _merge(sub, nwb, probes, implants, errors):
    """Fold one scan's implants and probe types into the study's, refusing contradictions."""
    path = Path(nwb["lfp"]["nwb_path"])
    for region, implant in nwb["implants"].items():
        row = {"subject": sub, **implant}
        known = implants.get((sub, region))
        if known is None:
            continue
        for attr in ("probe_type", "hemisphere", "ap_mm", "ml_mm", "dv_mm"):
            a, b = known[attr], row[attr]
            same = math.isclose(a, b, abs_tol=1e-6) if isinstance(a, float) else a == b
            if not same:
                errors.append(
                    IngestError(
                        path,
                        f"electrodes/{attr}",
                        f"sub-{sub} {region} implant: {b!r} here but {a!r} in an earlier scan",
                    )
                )
    if errors:
        return
    for region, implant in nwb["implants"].items():
        implants.setdefault((sub, region), {"subject": sub, **implant})
    for name, probe in nwb["probe_types"].items():
        known = probes.setdefault(name, {**probe, "electrodes": dict(probe["electrodes"])})
        known["n_electrodes"] = max(known["n_electrodes"], probe["n_electrodes"])
        for e, d in probe["electrodes"].items():
            known["electrodes"].setdefault(e, d)
