"""Writing results out for other tools: seed maps and LFP power maps as NIfTI in atlas space.

File names follow BIDS-derivatives conventions so any neuroimaging tool can open and sort them.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np


def _unmask(values, brain_mask):
    vol = np.full(brain_mask.shape, np.nan, dtype=np.float32)
    vol[brain_mask] = values
    return vol


def export_maps(
    out_dir: str | Path,
    *,
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    bold_paramset: int = 0,
    relation_paramset: int = 0,
    band_set: str = "classic",
) -> list[Path]:
    """Write every seed map and LFP power map (and the cohort group means) as NIfTI.

    Scan maps go to ``sub-<s>/ses-<s>/func/sub-<s>_ses-<s>_task-rest_run-<n>_space-<atlas>_seed-<region>
    [_band-<band>]_desc-<seedmap|lfppowermap>_statmap.nii.gz``; cohort group means to
    ``group/state-<state>_seed-<region>[_band-<band>]_space-<atlas>_desc-<group...>_statmap.nii.gz``.
    Voxels outside the brain are NaN. Returns the written paths.
    """
    from lfpbold.schemas import acquisition, cohort, params, relations

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "lfpbold maps",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "lfpbold"}],
                "lfpbold": {
                    "lfp_paramset": lfp_paramset,
                    "band_paramset": band_paramset,
                    "bold_paramset": bold_paramset,
                    "relation_paramset": relation_paramset,
                },
            },
            indent=2,
        )
    )
    atlases = {a["atlas"]: a for a in acquisition.Atlas.proj("brain_mask", "affine").to_dicts()}
    written = []

    def save(values, atlas, path):
        a = atlases[atlas]
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(_unmask(values, a["brain_mask"]), a["affine"]), path)
        written.append(path)

    def scan_stem(r):
        return (
            f"sub-{r['subject']}/ses-{r['session']}/func/sub-{r['subject']}_ses-{r['session']}_task-rest_"
            f"run-{r['run']}_space-{r['atlas']}_seed-{r['region']}"
        )

    restr = {
        "lfp_paramset": lfp_paramset,
        "band_paramset": band_paramset,
        "bold_paramset": bold_paramset,
        "relation_paramset": relation_paramset,
    }
    relation = params.RelationParams.get_params(restr)
    primary = {"map_method": relation["maps"]["methods"][0]}
    seed_restr = {"bold_paramset": bold_paramset, "relation_paramset": relation_paramset}
    for r in (relations.SeedMap * acquisition.Scan & seed_restr).to_dicts():
        save(r["seed_map"], r["atlas"], out / f"{scan_stem(r)}_desc-seedmap_statmap.nii.gz")
    bands = params.FrequencyBand & {"band_set": band_set}
    for r in (relations.LFPPowerMap.Map * acquisition.Scan & restr & bands & primary).to_dicts():
        save(r["power_map"], r["atlas"], out / f"{scan_stem(r)}_band-{r['band']}_desc-lfppowermap_statmap.nii.gz")
    atlas_of = {}
    group_seed = {(c["state"], c["region"]): c["group_seed_map"] for c in (cohort.Cohort & restr).to_dicts()}
    for r in (cohort.Cohort.Band & restr & bands).to_dicts():
        key = (r["state"], r["region"])
        if key not in atlas_of:
            scans = acquisition.Scan * acquisition.Session & {"state": r["state"]}
            atlas_of[key] = sorted(set(scans.to_arrays("atlas")))[0]
        atlas = atlas_of[key]
        stem = out / "group" / f"state-{r['state']}_seed-{r['region']}"
        save(group_seed[key], atlas, Path(f"{stem}_band-{r['band']}_space-{atlas}_desc-groupseedmap_statmap.nii.gz"))
        save(
            r["group_power_map"],
            atlas,
            Path(f"{stem}_band-{r['band']}_space-{atlas}_desc-grouplfppowermap_statmap.nii.gz"),
        )
    return written
