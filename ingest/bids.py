"""Readers for the BIDS text files of a study: dataset description, participants, sessions,
sidecars (with the inheritance principle) and the head-motion estimates (an fMRIPrep-style
confounds table in a derivatives dataset, or the older ``func/*_motion.tsv``).
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
    "read_confounds",
    "find_confounds",
    "label_error",
    "CONFOUNDS_SUFFIX",
    "MOTION_COLUMNS",
    "STATES",
]

_NA = {"", "n/a", "na", "nan", "none"}

#: How fMRIPrep (and this platform's simulator) names a run's confounds table in a derivatives dataset.
CONFOUNDS_SUFFIX = "_desc-confounds_timeseries.tsv"

#: A BIDS label: letters and digits only (the spec's ``[a-zA-Z0-9]+``).
_LABEL = re.compile(r"[A-Za-z0-9]+")

# Units participants.json may give for age (BIDS: years unless said otherwise), as ISO 8601 letters
_AGE_UNITS = {
    "year": "Y", "years": "Y", "y": "Y", "a": "Y",
    "month": "M", "months": "M", "mo": "M",
    "week": "W", "weeks": "W", "wk": "W",
    "day": "D", "days": "D", "d": "D",
}  # fmt: skip
_AGE_NAMES = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}
_WEIGHT_UNITS = {"g": 1.0, "gram": 1.0, "grams": 1.0, "kg": 1000.0, "kilogram": 1000.0, "kilograms": 1000.0}


def label_error(entity: str, label: str) -> str | None:
    """Why ``label`` is not a BIDS label of ``entity`` (None when it is one).

    Examples
    --------
    >>> label_error("sub", "01"), label_error("ses", "sedated_01")
    (None, "'sedated_01' is not a BIDS label (letters and digits only: ses-<label>)")
    """
    if _LABEL.fullmatch(label or ""):
        return None
    return f"{label!r} is not a BIDS label (letters and digits only: {entity}-<label>)"


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

    ``age`` is a number in the unit ``participants.json`` declares (``"Units"``; years when it
    says nothing, as BIDS has it) and is stored as an ISO 8601 duration (``90`` days -> ``P90D``);
    an ISO 8601 duration in the table is taken as it is. ``weight`` is in the unit
    ``participants.json`` declares (g or kg; required), the older ``weight_g`` in grams. Values
    the lab left ``n/a`` come back as None so that NWB metadata can fill them in.
    """
    path = study_dir / "participants.tsv"
    table = _read_tsv(path)
    if "participant_id" not in table.columns:
        raise IngestError(path, "participant_id", f"column missing (columns: {', '.join(table.columns)})")
    meta_path = study_dir / "participants.json"
    meta = _read_json(meta_path) if meta_path.exists() else {}
    age_unit = _unit(meta, "age", meta_path, _AGE_UNITS, "year")
    weight_col, weight_scale = None, 1.0
    if "weight" in table.columns:
        weight_col = "weight"
        weight_scale = _WEIGHT_UNITS[_unit(meta, "weight", meta_path, _WEIGHT_UNITS, None)]
    elif "weight_g" in table.columns:
        weight_col = "weight_g"
    subjects = {}
    for i, row in table.iterrows():
        label = _label(row["participant_id"], "sub-")
        if label_error("sub", label):
            why = label_error("sub", label)
            raise IngestError(path, "participant_id", f"row {i + 1}: {row['participant_id']!r}: {why}")
        if label in subjects:
            raise IngestError(path, "participant_id", f"sub-{label} listed twice")
        rec = {"subject": label}
        for col in ("species", "strain", "sex"):
            value = row.get(col)
            rec[col] = None if _na(value) else str(value).strip()
        rec["age"] = _age(row.get("age"), age_unit, path, label)
        weight = row.get(weight_col) if weight_col else None
        if _na(weight):
            rec["weight_g"] = None
        else:
            try:
                rec["weight_g"] = float(weight) * weight_scale
            except ValueError:
                raise IngestError(path, weight_col, f"sub-{label}: {weight!r} is not a number") from None
        subjects[label] = rec
    return subjects


def _unit(meta: dict, column: str, meta_path: Path, known: dict, default):
    """The ``Units`` participants.json gives a column, as a key of ``known`` (``default`` if none)."""
    unit = (meta.get(column) or {}).get("Units") if isinstance(meta.get(column), dict) else None
    if unit is None:
        if default is None:
            units = ", ".join(known)
            raise IngestError(meta_path, f"{column}/Units", f"missing: the unit of the {column} column ({units})")
        return default
    key = str(unit).strip().lower()
    if key not in known:
        raise IngestError(meta_path, f"{column}/Units", f"{unit!r} is not one of {', '.join(known)}")
    return key


def _age(value, unit: str, path: Path, label: str) -> str | None:
    if _na(value):
        return None
    text = str(value).strip()
    if re.fullmatch(r"P(?:\d+(?:\.\d+)?[YMWD])+", text):  # already an ISO 8601 duration (older layouts, NWB)
        return text
    try:
        number = float(text)
    except ValueError:
        raise IngestError(
            path,
            "age",
            f"sub-{label}: {text!r} is neither a number (of {_AGE_NAMES[_AGE_UNITS[unit]]}) nor an ISO 8601 duration",
        ) from None
    if not number >= 0 or not np.isfinite(number):
        raise IngestError(path, "age", f"sub-{label}: {text!r} is not a non-negative number")
    return f"P{np.format_float_positional(number, trim='-')}{_AGE_UNITS[unit]}"


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
        if label_error("ses", label):
            rec["error"] = IngestError(path, "session_id", label_error("ses", label))
        elif state not in STATES:
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
    """The older layout's ``func/*_motion.tsv`` (exactly the six columns): (n_volumes, 6) float64.

    BIDS reserves the ``_motion`` suffix for motion capture; new studies keep head-motion
    estimates in a derivatives confounds table (:func:`read_confounds`).
    """
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
    return _motion_values(path, table)


def find_confounds(study_dir: Path, sub: str, ses: str, prefix: str) -> tuple[Path | None, list[Path]]:
    """A run's head-motion estimates: (the file, every candidate found).

    Looked for as ``derivatives/<pipeline>/sub-<sub>/ses-<ses>/func/<prefix>_desc-confounds_timeseries.tsv``
    in every derivatives dataset (fMRIPrep's name), then as the older ``func/<prefix>_motion.tsv``
    next to the BOLD run. The file is None unless exactly one was found.
    """
    found = sorted((study_dir / "derivatives").glob(f"*/sub-{sub}/ses-{ses}/func/{prefix}{CONFOUNDS_SUFFIX}"))
    if not found:
        old = study_dir / f"sub-{sub}" / f"ses-{ses}" / "func" / f"{prefix}_motion.tsv"
        found = [old] if old.exists() else []
    return (found[0] if len(found) == 1 else None), found


def read_confounds(path: Path, n_volumes: int) -> np.ndarray:
    r"""Head-motion estimates from an fMRIPrep-style confounds table: (n_volumes, 6) float64.

    The table (tab-separated, one row per volume, ``n/a`` for missing values) must hold the
    columns ``trans_x trans_y trans_z`` (mm) and ``rot_x rot_y rot_z`` (radians), in any order;
    every other column (``framewise_displacement``, CompCor, ...) is allowed and not read.
    Returned in :data:`MOTION_COLUMNS` order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    >>> _ = p.write_text("framewise_displacement\ttrans_x\ttrans_y\ttrans_z\trot_x\trot_y\trot_z\n"
    ...                  "n/a\t0\t0\t0\t0\t0\t0\n0.1\t0.1\t0\t0\t0\t0\t0\n")
    >>> read_confounds(p, 2)[:, 0]
    array([0. , 0.1])
    """
    table = _read_tsv(path)
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in MOTION_COLUMNS if c not in table.columns]
    if missing:
        raise IngestError(
            path, "columns", f"missing {' '.join(missing)} (head-motion estimates need {' '.join(MOTION_COLUMNS)})"
        )
    if len(table) != n_volumes:
        raise IngestError(path, "rows", f"{len(table)} rows but the BOLD run has {n_volumes} volumes")
    return _motion_values(path, table)


def _motion_values(path: Path, table: pd.DataFrame) -> np.ndarray:
    out = np.empty((len(table), len(MOTION_COLUMNS)))
    for j, col in enumerate(MOTION_COLUMNS):
        values = pd.to_numeric(table[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            row = int(bad[0])
            raise IngestError(
                path, col, f"row {row + 1} (volume {row}): {table[col].iloc[row]!r} is not a finite number"
            )
        out[:, j] = values
    return out
