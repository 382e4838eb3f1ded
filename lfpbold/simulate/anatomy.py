"""Simulated rat anatomy: implant coordinates, the BOLD grid's geometry and the atlas.

The brain is an ellipsoid of rat size; each implant region has a tip and a resting-state network
of Gaussian blobs (:data:`KNOWN_IMPLANTS`). :func:`build_atlas` turns these into masks, network
patterns and the spatial profiles the BOLD model needs, all on the grid of a :class:`Size`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from lfpbold.simulate.sizes import SIZES, Size

__all__ = ["BRAIN_CENTRE", "BRAIN_SEMI", "KNOWN_IMPLANTS", "implant_coordinates", "grid_affine", "Atlas", "build_atlas"]

# Brain ellipsoid (world mm): centre and semi-axes along (ML, AP, DV).
BRAIN_CENTRE = (0.0, -3.5, -5.5)
BRAIN_SEMI = (8.0, 10.0, 5.5)

# Implants of the study, and the distant blobs of each region's resting-state network
# ((AP, ML, DV) mm, weight, description). Other names: see :func:`implant_coordinates`.
KNOWN_IMPLANTS = {
    "ACC": {
        "hemisphere": "right",
        "ap": 1.5,
        "ml": 0.5,
        "dv": -2.8,
        "connected": [
            (1.5, -0.5, -2.8, 0.9, "left ACC (homotopic)"),
            (-5.5, 0.7, -1.8, 0.8, "right retrosplenial cortex"),
            (-5.5, -0.7, -1.8, 0.7, "left retrosplenial cortex"),
        ],
    },
    "M1": {
        "hemisphere": "left",
        "ap": 3.2,
        "ml": -3.0,
        "dv": -2.8,
        "connected": [
            (3.2, 3.0, -2.8, 0.9, "right M1 (homotopic)"),
            (-1.0, -4.5, -2.5, 0.7, "left S1"),
            (0.5, -3.5, -5.2, 0.6, "left caudate putamen"),
        ],
    },
    # Made up but plausible, for labs that implant elsewhere.
    "S1": {
        "hemisphere": "left",
        "ap": -1.0,
        "ml": -4.5,
        "dv": -2.5,
        "connected": [(-1.0, 4.5, -2.5, 0.9, "right S1 (homotopic)"), (3.2, -3.0, -2.8, 0.7, "left M1")],
    },
    "CPu": {
        "hemisphere": "left",
        "ap": 0.5,
        "ml": -3.5,
        "dv": -5.2,
        "connected": [(0.5, 3.5, -5.2, 0.9, "right CPu (homotopic)"), (3.2, -3.0, -2.8, 0.6, "left M1")],
    },
    "RSC": {
        "hemisphere": "right",
        "ap": -5.5,
        "ml": 0.7,
        "dv": -1.8,
        "connected": [(-5.5, -0.7, -1.8, 0.9, "left RSC (homotopic)"), (1.5, 0.5, -2.8, 0.7, "right ACC")],
    },
    "HPC": {
        "hemisphere": "left",
        "ap": -3.8,
        "ml": -2.5,
        "dv": -3.2,
        "connected": [
            (-3.8, 2.5, -3.2, 0.9, "right dorsal hippocampus (homotopic)"),
            (-5.5, -0.7, -1.8, 0.6, "left RSC"),
        ],
    },
    "V1": {
        "hemisphere": "left",
        "ap": -7.0,
        "ml": -3.5,
        "dv": -1.8,
        "connected": [
            (-7.0, 3.5, -1.8, 0.9, "right V1 (homotopic)"),
            (-3.8, -2.5, -3.2, 0.5, "left dorsal hippocampus"),
        ],
    },
}


def implant_coordinates(region: str) -> dict:
    """Implant tip (AP, ML, DV mm from bregma), hemisphere and network blobs of a region.

    ACC and M1 are the study's implants; S1, CPu, RSC, HPC and V1 have made-up plausible
    coordinates. Any other (alphanumeric) name gets a deterministic pseudo-random left-hemisphere
    site (AP -6..3, ML -4.5..-1.5, DV -5..-2 mm, from a CRC32 of the name) whose network is its
    homotopic site plus a blob 4 mm posterior.

    Examples
    --------
    >>> implant_coordinates("M1")["ml"]
    -3.0
    """
    if region in KNOWN_IMPLANTS:
        return dict(KNOWN_IMPLANTS[region])
    h = zlib.crc32(region.encode())
    frac = [((h >> s) & 0xFF) / 255.0 for s in (0, 8, 16)]
    ap = round(-6.0 + 9.0 * frac[0], 1)
    ml = round(-4.5 + 3.0 * frac[1], 1)
    dv = round(-5.0 + 3.0 * frac[2], 1)
    return {
        "hemisphere": "left",
        "ap": ap,
        "ml": ml,
        "dv": dv,
        "connected": [
            (ap, -ml, dv, 0.9, f"right {region} (homotopic)"),
            (ap - 4.0, ml, dv, 0.6, f"{region}, 4 mm posterior"),
        ],
    }


# --------------------------------------------------------------------------------------------
# Geometry and atlas


def grid_affine(size: Size) -> np.ndarray:
    """Voxel (i=ML, j=DV, k=AP) to world (x=ML, y=AP, z=DV) mm; coronal slices along k.

    Examples
    --------
    >>> from lfpbold.simulate.sizes import SIZES
    >>> grid_affine(SIZES["small"]) @ [0, 0, 1, 1]  # one slice (2 mm) further along AP
    array([-15.5, -10.5, -20. ,   1. ])
    """
    dx, dy, dz = size.voxel_mm
    ox, oy, oz = size.origin_mm
    return np.array([[dx, 0, 0, ox], [0, 0, dz, oy], [0, dy, 0, oz], [0, 0, 0, 1]], dtype=float)


def _world_coords(size: Size):
    i, j, k = np.meshgrid(*[np.arange(n) for n in size.grid], indexing="ij")
    aff = grid_affine(size)
    x = aff[0, 0] * i + aff[0, 3]
    y = aff[1, 2] * k + aff[1, 3]
    z = aff[2, 1] * j + aff[2, 3]
    return x, y, z  # ML, AP, DV


def _ellipsoid(x, y, z, centre, semi):
    (cx, cy, cz), (ax, ay, az) = centre, semi
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0


def _nonempty(mask, x, y, z, centre):
    """A mask that is empty at coarse resolution becomes the voxel nearest its centre."""
    if mask.any():
        return mask
    d = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
    out = np.zeros_like(mask)
    out[np.unravel_index(np.argmin(d), d.shape)] = True
    return out


@dataclass
class Atlas:
    """Masks, network patterns and BOLD spatial profiles of one study (all on the BOLD grid)."""

    size: Size
    affine: np.ndarray
    brain: np.ndarray
    wm: np.ndarray
    ventricles: np.ndarray
    rois: dict
    patterns: dict
    local: dict  # spatial profile of each region's local (non-LFP) BOLD noise
    global_profile: np.ndarray
    edge: np.ndarray  # where head motion leaves a signal
    s0: np.ndarray  # baseline EPI intensity
    implants: dict = field(default_factory=dict)


def build_atlas(size: Size | str, regions, seed: int = 0) -> Atlas:
    """Brain, white-matter, ventricle and ROI masks and each region's true network pattern.

    Patterns are soft unions of Gaussian blobs (tip blob plus the region's connected blobs),
    in [0, 1], zero outside grey matter (brain minus white matter and ventricles) and zero in
    any other region's ROI, so ROI means never mix two regions' signals.

    Parameters
    ----------
    size : Size or {"small", "paper"}
    regions : sequence of str
        Implant regions (:func:`implant_coordinates`); their ROIs must not overlap.
    seed : int, default 0
        Seeds the smooth baseline-intensity field ``s0`` (nothing else is random).

    Returns
    -------
    Atlas

    Examples
    --------
    >>> atlas = build_atlas("small", ("ACC", "M1"))
    >>> int(atlas.brain.sum()), {r: int(roi.sum()) for r, roi in atlas.rois.items()}
    (936, {'ACC': 7, 'M1': 5})
    """
    size = SIZES[size] if isinstance(size, str) else size
    x, y, z = _world_coords(size)
    brain = _ellipsoid(x, y, z, BRAIN_CENTRE, BRAIN_SEMI)
    dx, dy, dz = size.voxel_mm
    implants = {r: implant_coordinates(r) for r in regions}
    rois = {}
    for r, imp in implants.items():
        d = np.sqrt((x - imp["ml"]) ** 2 + (y - imp["ap"]) ** 2 + (z - imp["dv"]) ** 2)
        roi = (d <= size.roi_radius_mm + 1e-9) & brain
        if not roi.any():
            roi = np.zeros_like(brain)
            roi[np.unravel_index(np.argmin(np.where(brain, d, np.inf)), d.shape)] = True
        if not brain[roi].all() or not _ellipsoid(imp["ml"], imp["ap"], imp["dv"], BRAIN_CENTRE, BRAIN_SEMI):
            raise ValueError(f"implant {r!r} at AP {imp['ap']} ML {imp['ml']} DV {imp['dv']} lies outside the brain")
        rois[r] = roi
    names = list(rois)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if (rois[names[a]] & rois[names[b]]).any():
                raise ValueError(
                    f"the ROIs of {names[a]!r} and {names[b]!r} overlap at this resolution; "
                    "choose regions whose tips are further apart"
                )
    any_roi = np.zeros_like(brain)
    for roi in rois.values():
        any_roi |= roi
    keep_away = ndimage.binary_dilation(any_roi, iterations=1)

    def struct(centre, semi):
        semi = (max(semi[0], dx * 0.75), max(semi[1], dz * 0.75), max(semi[2], dy * 0.75))
        m = _ellipsoid(x, y, z, centre, semi) & brain & ~keep_away
        return _nonempty(m, np.where(brain & ~keep_away, x, 1e3), y, z, centre)

    # External capsule-like white matter and lateral ventricles, bilateral.
    wm = struct((-4.2, -2.0, -6.0), (0.6, 2.5, 1.0)) | struct((4.2, -2.0, -6.0), (0.6, 2.5, 1.0))
    ventricles = struct((-1.6, -1.0, -4.2), (0.4, 1.5, 0.9)) | struct((1.6, -1.0, -4.2), (0.4, 1.5, 0.9))
    ventricles &= ~wm
    grey = brain & ~wm & ~ventricles

    sigma = size.blob_sigma_mm

    def blob(ml, ap, dv):
        return np.exp(-((x - ml) ** 2 + (y - ap) ** 2 + (z - dv) ** 2) / (2 * sigma**2))

    patterns, local = {}, {}
    for r, imp in implants.items():
        tip = blob(imp["ml"], imp["ap"], imp["dv"])
        miss = 1.0 - tip
        for ap, ml, dv, weight, _ in imp["connected"]:
            miss *= 1.0 - weight * blob(ml, ap, dv)
        pattern = (1.0 - miss) * grey
        # Local noise: the same profile near the tip, fading over size.local_noise_mm (default a few
        # blob widths), so that
        # spatial smoothing scales signal and local noise alike in the ROI.
        d2 = (x - imp["ml"]) ** 2 + (y - imp["ap"]) ** 2 + (z - imp["dv"]) ** 2
        width = size.local_noise_mm or 2.5 * sigma
        loc = pattern * np.exp(-d2 / (2 * width**2))
        for other, roi in rois.items():
            if other != r:
                pattern = np.where(roi, 0.0, pattern)
                loc = np.where(roi, 0.0, loc)
        patterns[r] = pattern.astype(np.float32)
        local[r] = loc
    r0, r1 = size.global_free_mm
    dmin = np.full(brain.shape, np.inf)
    for imp in implants.values():
        dmin = np.minimum(dmin, np.sqrt((x - imp["ml"]) ** 2 + (y - imp["ap"]) ** 2 + (z - imp["dv"]) ** 2))
    ramp = np.clip((dmin - r0) / (r1 - r0), 0.0, 1.0)
    global_profile = np.sin(ramp * np.pi / 2) ** 2 * brain
    edge = (brain & ~ndimage.binary_erosion(brain)) * global_profile
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    field_ = ndimage.gaussian_filter(rng.standard_normal(brain.shape), sigma=[g / 4 for g in size.grid])
    field_ /= field_[brain].std() if field_[brain].std() > 0 else 1.0
    s0 = np.where(brain, 1000.0 * (1.0 + 0.05 * field_), 20.0)
    s0 = np.where(ventricles, 1250.0, np.where(wm, 900.0, s0))
    return Atlas(
        size=size,
        affine=grid_affine(size),
        brain=brain,
        wm=wm,
        ventricles=ventricles,
        rois=rois,
        patterns=patterns,
        local=local,
        global_profile=global_profile,
        edge=edge,
        s0=s0,
        implants=implants,
    )
