"""The atlas's anatomical template: a T2-weighted-like image on the atlas grid, to draw maps over.

Kept apart from :mod:`lfpbold.simulate.writers` (which owns the study folder's layout): one
function builds the image from the atlas's tissue masks, one writes it beside the masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from lfpbold.simulate.anatomy import Atlas

__all__ = ["template_image", "write_template", "TEMPLATE_NAME"]

#: File name of the template in the atlas folder (BIDS suffix T2w).
TEMPLATE_NAME = "atlas_T2w.nii.gz"

# T2-weighted contrast at 7 T, relative to cerebrospinal fluid: CSF brightest, grey matter above
# white matter, the tissue outside the brain dim.
_T2 = {"csf": 1.0, "grey": 0.62, "white": 0.38, "outside": 0.12}


def template_image(atlas: Atlas) -> np.ndarray:
    """A T2-like anatomical image (float32, the atlas grid) from the atlas's tissue masks.

    Grey matter carries the atlas's smooth baseline-intensity field, so the brain is not flat;
    the image is smoothed by half a voxel so tissue borders look like an acquired image's.

    Examples
    --------
    >>> from lfpbold.simulate.anatomy import build_atlas
    >>> atlas = build_atlas("small", ("ACC", "M1"))
    >>> t2 = template_image(atlas)
    >>> t2.shape == atlas.brain.shape, bool(t2[atlas.ventricles].mean() > t2[atlas.wm].mean())
    (True, True)
    """
    grey = atlas.brain & ~atlas.wm & ~atlas.ventricles
    baseline = atlas.s0 / np.median(atlas.s0[grey]) if grey.any() else np.ones(atlas.brain.shape)
    image = np.full(atlas.brain.shape, _T2["outside"], dtype=np.float64)
    image[grey] = _T2["grey"] * baseline[grey]
    image[atlas.wm] = _T2["white"]
    image[atlas.ventricles] = _T2["csf"]
    return ndimage.gaussian_filter(image, sigma=0.5).astype(np.float32)


def write_template(folder: Path, atlas: Atlas, name: str = TEMPLATE_NAME) -> Path:
    """Write :func:`template_image` as ``folder/name`` on the atlas grid; returns the path."""
    from lfpbold.simulate.writers import write_json, write_nifti

    path = Path(folder) / name
    write_nifti(path, template_image(atlas), atlas)
    # BIDS requires SkullStripped of an anatomical template in a derivatives dataset
    write_json(path.with_name(name.split(".nii")[0] + ".json"), {"SkullStripped": False})
    return path
