"""Readers for the NIfTI images of a study: the atlas with its masks and ROIs, and BOLD runs
(header checks at ingest, voxels read lazily by populate jobs).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from .bids import _read_json, parse_entities
from .errors import IngestError

__all__ = ["read_atlas", "read_bold_header", "read_bold", "find_nifti"]

_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
AFFINE_ATOL = 1e-4  # mm; header float32 round-off, far below any voxel size


def find_nifti(stem: Path) -> Path | None:
    """``stem.nii.gz`` or ``stem.nii``, whichever exists (``.nii.gz`` first)."""
    for ext in (".nii.gz", ".nii"):
        path = stem.with_name(stem.name + ext)
        if path.exists():
            return path
    return None


def _load(path: Path):
    try:
        return nib.load(str(path))
    except FileNotFoundError:
        raise IngestError(path, "file", "missing") from None
    except Exception as exc:  # nibabel raises several unrelated types for a bad file
        raise IngestError(path, "file", f"not readable as NIfTI ({exc})") from None


def _mask(path: Path, shape=None, affine=None) -> tuple[np.ndarray, np.ndarray]:
    img = _load(path)
    if len(img.shape) != 3:
        raise IngestError(path, "shape", f"expected a 3-D mask, found shape {list(img.shape)}")
    if shape is not None and tuple(img.shape) != tuple(shape):
        raise IngestError(path, "shape", f"{list(img.shape)} but the brain mask is {list(shape)}")
    if affine is not None and not np.allclose(img.affine, affine, atol=AFFINE_ATOL):
        raise IngestError(path, "affine", "differs from the brain mask's affine")
    try:
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise IngestError(path, "file", f"voxels not readable ({exc})") from None
    return data > 0, np.asarray(img.affine, dtype=np.float64)


def read_template(atlas_dir: Path, shape, affine) -> np.ndarray | None:
    """The atlas's anatomical template (``*_T2w.nii[.gz]`` or ``*_T1w.nii[.gz]``, optional), float32.

    Figures draw maps over it; a study without one gets figures over the brain mask. When
    present it must be a 3-D image on the brain mask's grid.
    """
    paths = sorted(atlas_dir.glob("*_T2w.nii*")) + sorted(atlas_dir.glob("*_T1w.nii*"))
    if not paths:
        return None
    img = _load(paths[0])
    if len(img.shape) != 3:
        raise IngestError(paths[0], "shape", f"expected a 3-D template image, found shape {list(img.shape)}")
    if tuple(img.shape) != tuple(shape):
        raise IngestError(paths[0], "shape", f"{list(img.shape)} but the brain mask is {list(shape)}")
    if not np.allclose(img.affine, affine, atol=AFFINE_ATOL):
        raise IngestError(paths[0], "affine", "differs from the brain mask's affine")
    return np.asarray(img.get_fdata(), dtype=np.float32)


def read_atlas(study_dir: Path) -> tuple[dict, list[dict]]:
    """The Atlas row and its ROI rows from ``atlas/``.

    ``atlas.json`` gives the name (``Name``) and voxel size (``VoxelSize``, checked against the
    brain mask's zooms; taken from them if absent). Masks are read as ``voxel > 0``.
    ROIs are ``atlas_desc-<REGION>_roi.nii[.gz]``. Any problem here concerns every scan, so it raises.
    """
    atlas_dir = study_dir / "atlas"
    if not atlas_dir.is_dir():
        raise IngestError(atlas_dir, "file", "missing (the atlas folder)")
    meta_path = atlas_dir / "atlas.json"
    meta = _read_json(meta_path)
    name = meta.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise IngestError(meta_path, "Name", "missing")
    masks = {}
    for desc, attr in (("brain", "brain_mask"), ("wm", "wm_mask"), ("ventricles", "ventricle_mask")):
        stem = atlas_dir / f"atlas_desc-{desc}_mask"
        path = find_nifti(stem)
        if path is None:
            raise IngestError(stem.with_name(stem.name + ".nii.gz"), "file", "missing")
        if attr == "brain_mask":
            brain_img = _load(path)
            masks[attr], affine = _mask(path)
            shape = masks[attr].shape
        else:
            masks[attr], _ = _mask(path, shape, affine)
    zooms = [float(z) for z in brain_img.header.get_zooms()[:3]]
    voxel_size = meta.get("VoxelSize")
    if voxel_size is None:
        voxel_size = zooms
    else:
        try:
            voxel_size = [float(v) for v in voxel_size]
        except (TypeError, ValueError):
            raise IngestError(meta_path, "VoxelSize", f"{voxel_size!r} is not three numbers") from None
        if len(voxel_size) != 3 or not np.allclose(voxel_size, zooms, rtol=1e-3):
            raise IngestError(meta_path, "VoxelSize", f"{voxel_size} but the brain mask's voxels are {zooms} mm")
    n_brain = int(masks["brain_mask"].sum())
    if n_brain == 0:
        raise IngestError(find_nifti(atlas_dir / "atlas_desc-brain_mask"), "voxels", "the brain mask is empty")
    atlas = {
        "atlas": name.strip(),
        "shape": [int(s) for s in shape],
        "voxel_size_mm": voxel_size,
        "affine": affine,
        **masks,
        "n_brain_voxels": n_brain,
        "atlas_dir": str(atlas_dir),
        "template": read_template(atlas_dir, shape, affine),
    }
    rois = []
    for path in sorted(atlas_dir.glob("atlas_desc-*_roi.nii*")):
        ents, suffix, ext = parse_entities(path.name)
        if suffix != "roi" or ext not in (".nii", ".nii.gz"):
            continue
        region = ents["desc"]
        if any(r["region"] == region for r in rois):
            raise IngestError(path, "file", f"a second ROI for region {region}")
        roi, _ = _mask(path, shape, affine)
        if not roi.any():
            raise IngestError(path, "voxels", f"the {region} ROI is empty")
        rois.append(
            {
                "atlas": atlas["atlas"],
                "region": region,
                "roi_mask": roi,
                "n_voxels": int(roi.sum()),
                "roi_path": str(path),
            }
        )
    return atlas, rois


def read_bold_header(path: Path, atlas: dict, t_r: float | None) -> dict:
    """Check a BOLD run's header against the atlas grid and the sidecar's TR (unless None),
    without reading voxels.

    Returns shape [X, Y, Z, T], affine (float64 4x4) and the file's own TR (None if unset).
    """
    img = _load(path)
    shape = [int(s) for s in img.shape]
    if len(shape) != 4:
        raise IngestError(path, "shape", f"expected a 4-D BOLD run, found {len(shape)}-D shape {shape}")
    if shape[3] < 1:
        raise IngestError(path, "shape", "no volumes")
    if shape[:3] != list(atlas["shape"]):
        raise IngestError(path, "shape", f"grid {shape[:3]} does not match the atlas grid {list(atlas['shape'])}")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.allclose(affine, atlas["affine"], atol=AFFINE_ATOL):
        worst = float(np.abs(affine - atlas["affine"]).max())
        raise IngestError(
            path,
            "affine",
            f"does not match the atlas affine (largest difference {worst:g} mm); register the run to the atlas first",
        )
    zoom_t = float(img.header.get_zooms()[3])
    file_tr = None
    if zoom_t > 0:
        _, unit = img.header.get_xyzt_units()
        file_tr = zoom_t * _TIME_UNITS.get(unit, 1.0)
        if t_r is not None and not np.isclose(file_tr, t_r, rtol=1e-3, atol=1e-6):
            raise IngestError(
                path, "RepetitionTime", f"the sidecar says {t_r:g} s but the NIfTI header (zooms[3]) says {file_tr:g} s"
            )
    return {"shape": shape, "affine": affine, "file_t_r": file_tr}


def read_bold(bold_path) -> tuple[np.ndarray, np.ndarray]:
    """The voxels of a BOLD run as float32 (X, Y, Z, T) and its affine (float64 4x4).

    Scaling (scl_slope/inter) is applied by nibabel.

    Examples
    --------
    >>> data, affine = read_bold(fmri["bold_path"])  # doctest: +SKIP
    >>> data.shape  # doctest: +SKIP
    (16, 16, 8, 300)
    """
    path = Path(bold_path)
    img = _load(path)
    if len(img.shape) != 4:
        raise IngestError(path, "shape", f"expected a 4-D BOLD run, found shape {list(img.shape)}")
    data = np.asarray(img.dataobj, dtype=np.float32)
    return data, np.asarray(img.affine, dtype=np.float64)
