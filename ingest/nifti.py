"""Readers for the NIfTI images of a study: the atlas with its masks and ROIs, and BOLD runs
(header checks and one streaming pass over the voxels at ingest, voxels read lazily by populate jobs).
"""

from __future__ import annotations

import io
from pathlib import Path

import nibabel as nib
import numpy as np

from .bids import _read_json, parse_entities
from .checksum import sha256
from .errors import IngestError
from .limits import check_value

try:  # ISA-L's inflate, about twice zlib's speed: the one-pass BOLD check is bound by it
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same bytes, slower
    import zlib as _zlib

__all__ = ["find_atlas", "read_atlas", "read_bold_header", "read_bold", "find_nifti", "check_bold_samples"]

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


def find_atlas(study_dir: Path) -> tuple[Path, str]:
    """The study's atlas folder and how its files are named: ``(folder, stem)``.

    A BIDS-valid study keeps its template in a derivatives dataset, TemplateFlow-style:
    ``derivatives/<pipeline>/tpl-<label>/anat/tpl-<label>_desc-brain_mask.nii.gz`` (stem
    ``tpl-<label>``). Older studies have ``atlas/atlas_desc-brain_mask.nii.gz`` (stem ``atlas``).
    """
    found = sorted(p for p in (study_dir / "derivatives").glob("*/tpl-*/anat") if p.is_dir())
    if len(found) > 1:
        names = ", ".join(p.relative_to(study_dir).as_posix() for p in found)
        raise IngestError(study_dir / "derivatives", "tpl", f"{len(found)} templates, expected one: {names}")
    if found:
        return found[0], found[0].parent.name
    if (study_dir / "atlas").is_dir():
        return study_dir / "atlas", "atlas"
    raise IngestError(
        study_dir / "derivatives",
        "file",
        "missing: no atlas (derivatives/<pipeline>/tpl-<label>/anat/tpl-<label>_desc-brain_mask.nii.gz)",
    )


def read_atlas(study_dir: Path) -> tuple[dict, list[dict]]:
    """The Atlas row and its ROI rows (see :func:`find_atlas` for where they live).

    The brain mask's JSON sidecar (``atlas.json`` in older studies) gives the name (``Name``;
    default: the template label) and voxel size (``VoxelSize``, checked against the brain mask's
    zooms; taken from them if absent). Masks are ``<stem>_desc-{brain,wm,ventricles}_mask`` read
    as ``voxel > 0``; ROIs are ``<stem>_label-<REGION>_mask`` (older: ``atlas_desc-<REGION>_roi``).
    Any problem here concerns every scan, so it raises.
    """
    atlas_dir, stem = find_atlas(study_dir)
    old = stem == "atlas"
    meta_path = atlas_dir / ("atlas.json" if old else f"{stem}_desc-brain_mask.json")
    if old or meta_path.exists():
        meta = _read_json(meta_path)
        name = meta.get("Name")
    else:
        meta, name = {}, stem[len("tpl-") :]
    if not isinstance(name, str) or not name.strip():
        raise IngestError(meta_path, "Name", "missing")
    check_value("Atlas", "atlas", name.strip(), meta_path, field="Name")
    masks = {}
    for desc, attr in (("brain", "brain_mask"), ("wm", "wm_mask"), ("ventricles", "ventricle_mask")):
        mask_stem = atlas_dir / f"{stem}_desc-{desc}_mask"
        path = find_nifti(mask_stem)
        if path is None:
            raise IngestError(mask_stem.with_name(mask_stem.name + ".nii.gz"), "file", "missing")
        if attr == "brain_mask":
            brain_img = _load(path)
            brain_path = path
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
        raise IngestError(brain_path, "voxels", "the brain mask is empty")
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
    check_value("Atlas", "atlas_dir", atlas["atlas_dir"], atlas_dir, field="folder")
    rois = []
    pattern, entity, suffix_wanted = (
        ("atlas_desc-*_roi.nii*", "desc", "roi") if old else (f"{stem}_label-*_mask.nii*", "label", "mask")
    )
    for path in sorted(atlas_dir.glob(pattern)):
        ents, suffix, ext = parse_entities(path.name)
        if suffix != suffix_wanted or ext not in (".nii", ".nii.gz") or entity not in ents:
            continue
        region = ents[entity]
        check_value("Region", "region", region, path, field=entity)
        if any(r["region"] == region for r in rois):
            raise IngestError(path, "file", f"a second ROI for region {region}")
        roi, _ = _mask(path, shape, affine)
        if not roi.any():
            raise IngestError(path, "voxels", f"the {region} ROI is empty")
        check_value("Atlas.ROI", "roi_path", str(path), path, field="file")
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


def check_bold_samples(path, brain_mask=None, *, checksum: bool = True, each_block=None) -> str:
    """Decode every volume of a BOLD run while hashing it, in one pass over the file.

    The file is read once (:func:`~lfpbold.ingest.checksum.sha256` hands each block on); a
    ``.nii.gz`` goes through a streaming gzip decoder, the NIfTI header is parsed from the first
    decoded bytes, and each volume is checked as soon as it is complete, so memory stays at one
    volume plus a block.

    Raises :class:`IngestError` naming the file and where: ``file`` for a corrupt or truncated
    gzip stream or fewer voxels than the header declares (with the volume the data end in),
    ``voxels`` for a non-finite value inside ``brain_mask`` (with the volume, the voxel and the
    count in that volume). Non-finite values outside the mask are allowed.

    Parameters
    ----------
    path : path-like
        A ``.nii`` or ``.nii.gz`` file, NIfTI-1 or NIfTI-2.
    brain_mask : bool array (X, Y, Z), optional
        Where voxels must be finite; None checks every voxel.
    checksum : bool, default True
        Also compute the file's SHA-256 (the same pass); False returns ``""``.
    each_block : callable(bytes), optional
        Also receives every block of the file as read (ingest's progress in bytes).

    Returns
    -------
    str
        The SHA-256 hex digest of the file (``""`` without ``checksum``).
    """
    path = Path(path)
    decoder = _VolumeDecoder(path, brain_mask)
    feed = _gunzip(path, decoder.feed) if path.name.endswith(".gz") else decoder.feed
    if each_block is None:
        consume = feed
    else:

        def consume(block):
            feed(block)
            each_block(block)

    try:
        digest = sha256(path, each_block=consume, digest=checksum)
    except FileNotFoundError:
        raise IngestError(path, "file", "missing") from None
    except OSError as exc:
        raise IngestError(path, "file", f"not readable ({exc})") from None
    decoder.finish()  # first: where the voxels end says more than a missing gzip trailer
    if path.name.endswith(".gz"):
        feed(None)
    return digest


def _gunzip(path: Path, out):
    """A block consumer that decodes gzip (several members too) and hands the bytes to ``out``.

    Called with None at the end of the file, it checks that the last member was complete.
    """
    state = {"d": None, "in": 0}
    limit = 32 << 20  # decoded bytes per call: a block of zeros must not expand in memory 1000-fold

    def feed(block):
        if block is None:
            if state["d"] is not None and not state["d"].eof:
                raise IngestError(
                    path, "file", f"truncated gzip stream: it ends after {state['in']} compressed bytes, mid-stream"
                )
            return
        state["in"] += len(block)
        data = block
        while data:
            if state["d"] is None or state["d"].eof:
                state["d"] = _zlib.decompressobj(wbits=31)
            d = state["d"]
            try:
                out(d.decompress(data, limit))
                while d.unconsumed_tail:
                    out(d.decompress(d.unconsumed_tail, limit))
            except _zlib.error as exc:
                at = state["in"] - len(block)
                raise IngestError(path, "file", f"corrupt gzip stream (block at byte {at}): {exc}") from None
            data = d.unused_data if d.eof else b""

    return feed


class _VolumeDecoder:
    """Takes the decoded bytes of a NIfTI file in pieces; checks each volume once it is complete."""

    def __init__(self, path: Path, brain_mask):
        self.path = path
        self.mask = None if brain_mask is None else np.asarray(brain_mask, dtype=bool)
        self.buf = bytearray()
        self.header = None
        self.volume = 0
        self.skip = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        if self.header is None:
            if not self._parse_header():
                return
        if self.skip:
            n = min(self.skip, len(self.buf))
            del self.buf[:n]
            self.skip -= n
            if self.skip:
                return
        while self.volume < self.n_volumes and len(self.buf) >= self.volume_bytes:
            vol = np.frombuffer(self.buf, dtype=self.dtype, count=self.n_voxels)
            self._check(vol)
            del vol
            del self.buf[: self.volume_bytes]
            self.volume += 1
        if self.volume >= self.n_volumes:
            self.buf.clear()  # trailing bytes (extensions padding) are not voxels

    def _parse_header(self) -> bool:
        if len(self.buf) < 4:
            return False
        size = int.from_bytes(self.buf[:4], "little")
        if size not in (348, 540):
            size = int.from_bytes(self.buf[:4], "big")
        if size not in (348, 540):
            raise IngestError(self.path, "file", "not a NIfTI file (header size is neither 348 nor 540 bytes)")
        if len(self.buf) < size:
            return False
        klass = nib.Nifti1Header if size == 348 else nib.Nifti2Header
        try:
            hdr = klass.from_fileobj(io.BytesIO(bytes(self.buf[:size])), check=False)
            shape = tuple(int(s) for s in hdr.get_data_shape())
            self.dtype = hdr.get_data_dtype()
            offset = int(hdr.get_data_offset())
        except Exception as exc:  # nibabel raises several unrelated types for a bad header
            raise IngestError(self.path, "file", f"NIfTI header not readable ({exc})") from None
        if len(shape) < 3:
            raise IngestError(self.path, "shape", f"expected a 4-D BOLD run, found shape {list(shape)}")
        self.header = hdr
        self.shape = shape
        self.n_voxels = int(np.prod(shape[:3]))
        self.n_volumes = int(np.prod(shape[3:])) if len(shape) > 3 else 1
        self.volume_bytes = self.n_voxels * self.dtype.itemsize
        self.float = np.issubdtype(self.dtype, np.floating)
        if self.mask is not None and self.mask.shape != shape[:3]:
            self.mask = None  # the header check reports the grid; here every voxel must be finite
        self.flat_mask = None if self.mask is None else self.mask.reshape(-1, order="F")
        self.skip = max(offset, size)
        return True

    def _check(self, vol: np.ndarray) -> None:
        if not self.float:
            return
        finite = np.isfinite(vol)
        if finite.all():
            return
        bad = ~finite if self.flat_mask is None else (~finite & self.flat_mask)
        if not bad.any():
            return
        first = int(np.flatnonzero(bad)[0])
        ijk = tuple(int(i) for i in np.unravel_index(first, self.shape[:3], order="F"))
        where = "" if self.flat_mask is None else " inside the brain mask"
        raise IngestError(
            self.path,
            "voxels",
            f"volume {self.volume}: {int(bad.sum())} non-finite value(s){where}, "
            f"the first at voxel {ijk} = {float(vol[first])}",
        )

    def finish(self) -> None:
        if self.header is None:
            raise IngestError(self.path, "file", "truncated: the file ends inside the NIfTI header")
        if self.skip or self.volume < self.n_volumes:
            got = self.volume * self.volume_bytes + len(self.buf)
            raise IngestError(
                self.path,
                "file",
                f"truncated: the voxel data end in volume {self.volume} of {self.n_volumes} "
                f"({got} of {self.n_volumes * self.volume_bytes} bytes after the header)",
            )
