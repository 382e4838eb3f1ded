"""Realignment parameters as each preprocessing tool writes them, converted to one convention.

Every reader returns ``(motion, source)``: motion is (n_volumes, 6) float64 in
``MOTION_COLUMNS`` order (``trans_x trans_y trans_z`` in mm, ``rot_x rot_y rot_z`` in radians)
and source says what the file was (``format``, its ``columns`` and ``units`` as written, and
``path``), so every run records where its motion came from.

| tool | file | columns as written | units |
|---|---|---|---|
| BIDS/lfpbold | ``*_motion.tsv`` | trans_x..rot_z (any order) | mm, rad |
| fMRIPrep | ``*_desc-confounds_timeseries.tsv`` | trans_x..rot_z, framewise_displacement, ... | mm, rad |
| RABIES | ``*_motion_params.csv`` [1]_ | index, mov1 mov2 mov3 rot1 rot2 rot3, derivatives, squares | mm, rad |
| SPM | ``rp_*.txt`` | x y z pitch roll yaw, no header | mm, rad |
| FSL mcflirt | ``*.par`` | rot_x rot_y rot_z trans_x trans_y trans_z, no header | rad, mm |

.. [1] in ``motion_datasink/motion_params_csv/``; RABIES before 0.5 wrote ``*_confounds.csv`` in
   ``confounds_datasink/confounds_csv/`` with the same motion columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lfpbold.constants import MOTION_COLUMNS

from .errors import IngestError

__all__ = ["read_motion_file", "motion_format", "read_rabies_fd"]

_RABIES = ("mov1", "mov2", "mov3", "rot1", "rot2", "rot3")


def motion_format(path) -> str:
    """``spm``, ``fsl``, ``fmriprep``, ``rabies`` or ``bids``, from the file name.

    >>> motion_format("rp_sub-01_task-rest_bold.txt"), motion_format("bold_mcf.par")
    ('spm', 'fsl')
    """
    name = Path(path).name
    if name.startswith("rp_") and name.endswith(".txt"):
        return "spm"
    if name.endswith(".par"):
        return "fsl"
    if name.endswith("_desc-confounds_timeseries.tsv") or name.endswith("_desc-confounds_regressors.tsv"):
        return "fmriprep"
    if name.endswith("_motion_params.csv") or name.endswith("_confounds.csv"):
        return "rabies"
    if name.endswith(".tsv"):
        return "bids"
    raise IngestError(
        path,
        "file",
        "not a motion file lfpbold knows (rp_*.txt, *.par, *_desc-confounds_timeseries.tsv, "
        "*_motion_params.csv, *_confounds.csv, *_motion.tsv)",
    )


def read_motion_file(path, n_volumes: int) -> tuple[np.ndarray, dict]:
    """Motion of one run, converted to trans_x..rot_z (mm, rad), and what it was converted from.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "sub-01_bold_mcf.par")       # FSL: rotations (rad) first
    >>> _ = open(p, "w").write("0.01 0.02 0.03 1.0 2.0 3.0\\n0 0 0 0 0 0\\n")
    >>> motion, source = read_motion_file(p, 2)
    >>> motion[0].tolist(), source["format"]
    ([1.0, 2.0, 3.0, 0.01, 0.02, 0.03], 'fsl')
    """
    path = Path(path)
    if not path.exists():
        raise IngestError(path, "file", "missing (realignment parameters of the BOLD run)")
    kind = motion_format(path)
    if kind in ("spm", "fsl"):
        values = _plain_table(path)
        if kind == "spm":  # x y z (mm), pitch roll yaw (rad) = rotations about x, y, z
            motion, written, units = values, "x y z pitch roll yaw", "mm mm mm rad rad rad"
        else:  # mcflirt: 3 rotations (rad), then 3 translations (mm)
            motion, written, units = (
                values[:, [3, 4, 5, 0, 1, 2]],
                "rot_x rot_y rot_z trans_x trans_y trans_z",
                ("rad rad rad mm mm mm"),
            )
        fd = None
    else:
        sep = "," if path.suffix == ".csv" else "\t"
        try:
            table = pd.read_csv(path, sep=sep)
        except (OSError, ValueError) as exc:
            raise IngestError(path, "file", f"not readable as a table ({exc})") from None
        table.columns = [str(c).strip() for c in table.columns]
        wanted = _RABIES if kind == "rabies" else MOTION_COLUMNS
        missing = [c for c in wanted if c not in table.columns]
        if missing:
            raise IngestError(
                path, "columns", f"missing {' '.join(missing)} (found: {' '.join(table.columns[:12])}...)"
            )
        try:
            motion = table[list(wanted)].to_numpy(dtype=np.float64)
        except ValueError as exc:
            raise IngestError(path, "values", f"not all numbers ({exc})") from None
        written, units = " ".join(wanted), "mm mm mm rad rad rad"
        fd = None
        if kind == "fmriprep" and "framewise_displacement" in table.columns:
            fd = pd.to_numeric(table["framewise_displacement"], errors="coerce").to_numpy(dtype=np.float64, copy=True)
            fd[0] = 0.0 if not np.isfinite(fd[0]) else fd[0]  # fMRIPrep writes n/a for the first volume
    if motion.shape[0] != n_volumes:
        raise IngestError(path, "rows", f"{motion.shape[0]} rows but the BOLD run has {n_volumes} volumes")
    bad = np.argwhere(~np.isfinite(motion))
    if bad.size:
        row, col = bad[0]
        column = written.split()[col]
        raise IngestError(path, column, f"non-finite value (or n/a) at volume {row} (counting from 0)")
    source = {"format": kind, "columns": written, "units": units, "path": str(path)}
    if fd is not None:
        source["framewise_displacement"] = fd.tolist()
    return np.ascontiguousarray(motion), source


def read_rabies_fd(path, n_volumes: int) -> list[float]:
    """RABIES's framewise displacement (mm): ``MeanFD`` of ``*_FD_file.csv`` (``Mean`` before 0.5)."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise IngestError(path, "file", "missing") from None
    except (OSError, ValueError) as exc:
        raise IngestError(path, "file", f"not readable as CSV ({exc})") from None
    col = next((c for c in ("MeanFD", "Mean") if c in table.columns), None)
    if col is None:
        raise IngestError(path, "MeanFD", f"column missing (columns: {', '.join(map(str, table.columns))})")
    fd = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
    if fd.size != n_volumes:
        raise IngestError(path, col, f"{fd.size} rows but the BOLD run has {n_volumes} volumes")
    if not np.all(np.isfinite(fd)):
        raise IngestError(path, col, f"non-finite value at volume {int(np.flatnonzero(~np.isfinite(fd))[0])}")
    return fd.tolist()


def _plain_table(path: Path) -> np.ndarray:
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise IngestError(path, "values", f"not six numbers a row ({exc})") from None
    if values.shape[1] != 6:
        raise IngestError(path, "columns", f"expected 6 columns, found {values.shape[1]}")
    return values
