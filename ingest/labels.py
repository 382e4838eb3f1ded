"""An atlas as a label image and its lookup table (label number to name), turned into the Atlas row
and one ROI per region, the regions named through the alias table (:mod:`lfpbold.ingest.regions`).

Lookup tables are read in the forms labs have them:

- BIDS ``*_dseg.tsv``: a TSV with ``index`` and ``name`` columns (``abbreviation``, ``color`` ignored);
- FreeSurfer / FSL colour tables (``*.lut``, ``*.txt``): ``index name r g b [a]`` or FSLeyes' ``index r g b name``;
- ITK-SNAP label descriptions: ``index r g b a vis mesh "name"``;
- the DSURQE/RABIES mapping CSV: ``Structure,right label,left label`` (both hemispheres' labels name one structure).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import IngestError
from .nifti import AFFINE_ATOL, _load, _mask
from .regions import normalise

__all__ = ["read_lut", "read_label_atlas", "find_lut"]

_NUMBER = re.compile(r"^[-+]?\d+(\.\d*)?([eE][-+]?\d+)?$")


def find_lut(labels_path: Path, *, search=()) -> Path | None:
    """The lookup table of a label image: a file of the same stem beside it (``.tsv``, ``.csv``,
    ``.lut``, ``.txt``, ``_dseg.tsv`` for ``..._dseg.nii.gz``), else the first file of ``search`` that exists."""
    stem = labels_path.name.split(".nii")[0]
    for ext in (".tsv", ".csv", ".lut", ".txt"):
        candidate = labels_path.with_name(stem + ext)
        if candidate.exists():
            return candidate
    for candidate in search:
        if candidate is not None and Path(candidate).exists():
            return Path(candidate)
    return None


def read_lut(path) -> dict[int, str]:
    """Label number -> name from a lookup table in any of the forms above.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "atlas_dseg.tsv")
    >>> _ = open(p, "w").write("index\\tname\\n1\\tCingulate cortex area 1\\n2\\tPrimary motor cortex\\n")
    >>> read_lut(p)
    {1: 'Cingulate cortex area 1', 2: 'Primary motor cortex'}
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise IngestError(path, "file", "missing (the atlas lookup table)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(path, "file", f"not readable as text ({exc})") from None
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    header = [c.strip().lower() for c in re.split(r"[\t,]", first)]
    if "index" in header and "name" in header:
        table = _table(path, "\t" if "\t" in first else ",")
        return _pairs(path, table["index"], table["name"], "index")
    if "structure" in header and any("label" in c for c in header):
        table = _table(path, ",")
        names = {}
        for col in (c for c in table.columns if "label" in c.lower()):
            names.update(_pairs(path, table[col], table[table.columns[0]], col))
        return names
    return _colour_table(path, text)


def _table(path, sep) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except ValueError as exc:
        raise IngestError(path, "file", f"not readable as a table ({exc})") from None
    table.columns = [c.strip() for c in table.columns]
    return table.rename(columns={c: c.lower() for c in table.columns if c.lower() in ("index", "name")})


def _pairs(path, numbers, names, field) -> dict[int, str]:
    out = {}
    for i, (number, name) in enumerate(zip(numbers, names, strict=True)):
        try:
            label = int(float(str(number).strip()))
        except ValueError:
            raise IngestError(path, field, f"row {i + 1}: {number!r} is not a label number") from None
        out[label] = str(name).strip()
    return out


def _colour_table(path, text) -> dict[int, str]:
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        quoted = re.search(r'"([^"]*)"', line)
        tokens = line.split()
        if not _NUMBER.match(tokens[0]):
            raise IngestError(path, f"line {n}", f"{line[:60]!r} does not start with a label number")
        label = int(float(tokens[0]))
        if quoted:  # ITK-SNAP
            name = quoted.group(1)
        elif len(tokens) >= 5 and all(_NUMBER.match(t) for t in tokens[1:4]):  # FSLeyes: index r g b name
            name = " ".join(tokens[4:])
        elif len(tokens) >= 2:  # FreeSurfer: index name r g b a
            name = tokens[1]
        else:
            raise IngestError(path, f"line {n}", "a label number without a name")
        out[label] = name.strip()
    if not out:
        raise IngestError(path, "file", "no labels in the lookup table")
    return out


def _tissue(path: Path, shape=None, affine=None):
    """A mask as ``voxel > 0``; a probability map (``*_probseg``) as ``p >= 0.5``."""
    if "_probseg" not in path.name:
        return _mask(path, shape, affine)
    _, affine_read = _mask(path, shape, affine)  # grid and affine checks
    return np.asarray(_load(path).dataobj, dtype=np.float64) >= 0.5, affine_read


def read_label_atlas(
    name: str, *, labels, lut, aliases: dict[str, str], brain, wm, ventricles, atlas_dir=None
) -> tuple[dict, list[dict]]:
    """The Atlas row and its ROI rows from a label image, its lookup table and tissue masks.

    A label becomes (part of) a region's ROI when its name, through ``aliases``, names a region;
    several labels of one region (its two hemispheres, areas 1 and 2 of the cingulate cortex) are
    joined. Labels of no known region are left out (add them to the alias table to use them).
    Masks (brain, WM, ventricles/CSF) are read as ``voxel > 0`` (``*_probseg`` maps as p >= 0.5);
    ``brain`` may also be ``(mask, affine)``. Every image must share the brain mask's grid. The ROI
    rows keep ``roi_path`` as ``<labels image>#<label numbers>``.
    """
    labels, lut = Path(labels), Path(lut)
    if isinstance(brain, tuple):  # a mask made here (e.g. the runs' masks intersected) and its affine
        brain_mask, affine = brain
        zooms = [float(z) for z in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))]
        brain = labels
    else:
        brain_mask, affine = _tissue(Path(brain))
        zooms = [float(z) for z in _load(Path(brain)).header.get_zooms()[:3]]
    shape = brain_mask.shape
    wm_mask, _ = _tissue(Path(wm), shape, affine)
    vent_mask, _ = _tissue(Path(ventricles), shape, affine)
    img = _load(labels)
    if tuple(img.shape[:3]) != tuple(shape) or len(img.shape) > 3 and any(s != 1 for s in img.shape[3:]):
        raise IngestError(labels, "shape", f"{list(img.shape)} but the brain mask is {list(shape)}")
    if not np.allclose(img.affine, affine, atol=AFFINE_ATOL):
        raise IngestError(labels, "affine", "differs from the brain mask's affine")
    try:
        data = np.asarray(img.dataobj).reshape(shape)
    except Exception as exc:
        raise IngestError(labels, "file", f"voxels not readable ({exc})") from None
    if not np.all(np.isfinite(data)) or not np.allclose(data, np.round(data)):
        raise IngestError(labels, "voxels", "a label image holds whole label numbers only")
    data = np.round(data).astype(np.int64)
    table = read_lut(lut)
    present = set(np.unique(data).tolist()) - {0}
    unnamed = sorted(present - set(table))
    if unnamed:
        raise IngestError(lut, "index", f"labels {unnamed[:10]} are in {labels.name} but not in the lookup table")
    members: dict[str, list[int]] = {}
    for label, label_name in sorted(table.items()):
        region = aliases.get(normalise(label_name))
        if region is not None and label in present:
            members.setdefault(region, []).append(label)
    if not members:
        raise IngestError(lut, "name", "no label names a known region; add the lab's names to code/region_aliases.tsv")
    n_brain = int(brain_mask.sum())
    if n_brain == 0:
        raise IngestError(brain, "voxels", "the brain mask is empty")
    atlas = {
        "atlas": name[:64],
        "shape": [int(s) for s in shape],
        "voxel_size_mm": zooms,
        "affine": affine,
        "brain_mask": brain_mask,
        "wm_mask": wm_mask,
        "ventricle_mask": vent_mask,
        "n_brain_voxels": n_brain,
        "atlas_dir": str(atlas_dir if atlas_dir is not None else labels.parent),
    }
    rois = []
    for region, numbers in sorted(members.items()):
        roi = np.isin(data, numbers)
        rois.append(
            {
                "atlas": atlas["atlas"],
                "region": region,
                "roi_mask": roi,
                "n_voxels": int(roi.sum()),
                "roi_path": f"{labels}#{','.join(map(str, numbers))}"[:1024],
            }
        )
    return atlas, rois
