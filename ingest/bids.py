"""Readers for the BIDS text files of a study: dataset description, participants, sessions,
sidecars (with the inheritance principle) and the realignment motion table.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from lfpbold.constants import MOTION_COLUMNS, STATES

from .errors import IngestError

__all__ = [
    "parse_entities",
    "read_dataset_description",
    "read_participants",
    "read_sessions",
    "read_sidecar",
    "read_motion",
    "MOTION_COLUMNS",
    "STATES",
]

_NA = {"", "n/a", "na", "nan", "none"}


def parse_entities(filename: str) -> tuple[dict[str, str], str, str]:
    """Split a BIDS file name into (entities, suffix, extension).

    >>> parse_entities("sub-01_ses-x_task-rest_run-1_bold.nii.gz")
    ({'sub': '01', 'ses': 'x', 'task': 'rest', 'run': '1'}, 'bold', '.nii.gz')
    """
    name = Path(filename).name
    stem, dot, ext = name.partition(".")
    parts = stem.split("_")
    entities = {}
    suffix = ""
    for i, part in enumerate(parts):
        key, dash, value = part.partition("-")
        if dash:
            entities[key] = value
        elif i == len(parts) - 1:
            suffix = part
    return entities, suffix, (dot + ext if dot else "")


def _read_json(path: Path) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
    except FileNotFoundError:
        raise IngestError(path, "file", "missing") from None
    except (OSError, ValueError) as exc:
        raise IngestError(path, "file", f"not readable as JSON ({exc})") from None
    if not isinstance(value, dict):
        raise IngestError(path, "file", f"expected a JSON object, found {type(value).__name__}")
    return value


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise IngestError(path, "file", "missing") from None
    except (OSError, ValueError) as exc:
        raise IngestError(path, "file", f"not readable as TSV ({exc})") from None


def _na(value) -> bool:
    return value is None or str(value).strip().lower() in _NA


def _label(value: str, prefix: str) -> str:
    value = str(value).strip()
    return value[len(prefix) :] if value.startswith(prefix) else value


def read_dataset_description(study_dir: Path) -> dict:
    """The study's ``dataset_description.json``; its ``Name`` is required."""
    path = study_dir / "dataset_description.json"
    desc = _read_json(path)
    if _na(desc.get("Name")):
        raise IngestError(path, "Name", "missing")
    return desc


def read_participants(study_dir: Path) -> dict[str, dict]:
    """Subject rows from ``participants.tsv``, keyed by label ("01" for sub-01).

    Values the lab left ``n/a`` come back as None so that NWB metadata can fill them in.
    """
    path = study_dir / "participants.tsv"
    table = _read_tsv(path)
    if "participant_id" not in table.columns:
        raise IngestError(path, "participant_id", f"column missing (columns: {', '.join(table.columns)})")
    subjects = {}
    for i, row in table.iterrows():
        label = _label(row["participant_id"], "sub-")
        if not re.fullmatch(r"[A-Za-z0-9]+", label):
            raise IngestError(path, "participant_id", f"row {i + 1}: {row['participant_id']!r} is not sub-<label>")
        if label in subjects:
            raise IngestError(path, "participant_id", f"sub-{label} listed twice")
        rec = {"subject": label}
        for col in ("species", "strain", "sex", "age"):
            value = row.get(col)
            rec[col] = None if _na(value) else str(value).strip()
        weight = row.get("weight_g")
        if _na(weight):
            rec["weight_g"] = None
        else:
            try:
                rec["weight_g"] = float(weight)
            except ValueError:
                raise IngestError(path, "weight_g", f"sub-{label}: {weight!r} is not a number") from None
        subjects[label] = rec
    return subjects


def read_sessions(subject_dir: Path, subject: str) -> tuple[dict[str, dict], Path]:
    """Rows of ``sub-XX_sessions.tsv`` keyed by session label: state and session_datetime.

    Rows with a bad state or time are returned with an ``"error"`` entry (an IngestError) instead,
    so that only that session's scans are left out.
    """
    path = subject_dir / f"sub-{subject}_sessions.tsv"
    table = _read_tsv(path)
    for col in ("session_id", "acq_time", "state"):
        if col not in table.columns:
            raise IngestError(path, col, f"column missing (columns: {', '.join(table.columns)})")
    sessions = {}
    for _, row in table.iterrows():
        label = _label(row["session_id"], "ses-")
        state = str(row["state"]).strip()
        rec = {"state": state}
        if state not in STATES:
            rec["error"] = IngestError(path, "state", f"ses-{label}: {state!r} is not one of {', '.join(STATES)}")
        else:
            try:
                stamp = datetime.fromisoformat(str(row["acq_time"]).strip())
                # wall-clock time as the lab wrote it; the schema's datetime has no zone
                rec["session_datetime"] = stamp.replace(tzinfo=None)
            except ValueError:
                rec["error"] = IngestError(
                    path, "acq_time", f"ses-{label}: {row['acq_time']!r} is not an ISO 8601 date-time"
                )
        sessions[label] = rec
    return sessions, path


def _sidecar_chain(study_dir: Path, run_json: Path) -> list[Path]:
    """Sidecars that apply to a run, farthest first, the run's own last (BIDS inheritance).

    A ``*_bold.json`` in the run's folder or any folder above it up to the study root applies
    when its entities are a subset of the run's (so ``task-rest_bold.json`` at the root,
    ``sub-01_task-rest_bold.json`` in ``sub-01/`` ...). Within one folder, fewer entities = farther.
    """
    entities, suffix, _ = parse_entities(run_json.name)
    folders = [run_json.parent]
    while folders[-1] != study_dir and study_dir in folders[-1].parents:
        folders.append(folders[-1].parent)
    chain = []
    for folder in reversed(folders):
        found = []
        for candidate in sorted(folder.glob(f"*{suffix}.json")):
            if candidate == run_json:
                continue
            ents, suf, ext = parse_entities(candidate.name)
            if suf != suffix or ext != ".json":
                continue
            if all(entities.get(k) == v for k, v in ents.items()):
                found.append((len(ents), candidate))
        chain.extend(c for _, c in sorted(found))
    if run_json.exists():
        chain.append(run_json)
    return chain


def read_sidecar(study_dir: Path, run_json: Path) -> tuple[dict, list[Path]]:
    """The run's sidecar after inheritance (nearer keys win) and the files it came from.

    ``RepetitionTime`` must be found somewhere in the chain and be a positive number.
    """
    chain = _sidecar_chain(study_dir, run_json)
    sidecar = {}
    for path in chain:
        sidecar.update(_read_json(path))
    inherited = [p.relative_to(study_dir).as_posix() for p in chain if p != run_json]
    if "RepetitionTime" not in sidecar:
        where = ", ".join(inherited) if inherited else "none found"
        own = "" if run_json.exists() else "the run has no sidecar of its own; "
        raise IngestError(run_json, "RepetitionTime", f"missing ({own}also not in any inherited sidecar: {where})")
    tr = sidecar["RepetitionTime"]
    origin = _origin(chain, "RepetitionTime")
    if isinstance(tr, bool) or not isinstance(tr, (int, float)) or not tr > 0:
        raise IngestError(origin, "RepetitionTime", f"{tr!r} is not a positive number of seconds")
    return sidecar, chain


def _origin(chain: list[Path], key: str) -> Path:
    """The file in the chain whose value of ``key`` won (for error messages)."""
    for path in reversed(chain):
        if key in _read_json(path):
            return path
    return chain[-1]


def read_motion(path: Path, n_volumes: int) -> np.ndarray:
    """The realignment parameters: (n_volumes, 6) float64, columns in ``MOTION_COLUMNS`` order."""
    table = _read_tsv(path)
    cols = [c.strip() for c in table.columns]
    if sorted(cols) != sorted(MOTION_COLUMNS):
        raise IngestError(
            path,
            "columns",
            f"expected the {len(MOTION_COLUMNS)} columns {' '.join(MOTION_COLUMNS)}, "
            f"found {len(cols)}: {' '.join(cols)}",
        )
    table.columns = cols
    if len(table) != n_volumes:
        raise IngestError(path, "rows", f"{len(table)} rows but the BOLD run has {n_volumes} volumes")
    try:
        motion = table[list(MOTION_COLUMNS)].astype(np.float64).to_numpy()
    except ValueError as exc:
        raise IngestError(path, "values", f"not all numbers ({exc})") from None
    if not np.all(np.isfinite(motion)):
        raise IngestError(path, "values", "contains n/a or non-finite values")
    return np.ascontiguousarray(motion)
