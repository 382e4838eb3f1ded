"""Writing results out for other tools: maps as a BIDS derivatives dataset, tables as TSV, NWB files.

- :func:`export_maps`: every seed map and LFP power map, the cohort group means and the voxel-wise
  group statistics, as NIfTI in atlas space with a JSON sidecar each (BIDS derivatives).
- :func:`export_results`: the results tables as TSV with a BIDS-style JSON data dictionary.
- :func:`export_nwb`: each scan's cleaned LFP and band power in an NWB file that links the raw
  ElectricalSeries of the lab's file instead of copying it (:mod:`lfpbold.nwb_export`).

Map names follow the statistical-derivatives proposal (BIDS BEP041, the convention of BIDS Stats
Models tools such as FitLins): ``[sub-<s>_ses-<s>_]task-rest[_run-<n>]_space-<atlas>_stat-<r|t|p...>
_desc-<what>_statmap.nii.gz``. Every other entity is one of released BIDS; ``stat`` and the
``statmap`` suffix are not in a released BIDS version yet, so the dataset's ``.bidsignore`` lists
them, which is how BIDS lets a derivative carry files its schema does not define yet.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

import nibabel as nib
import numpy as np

from lfpbold.nwb_export import export_nwb

__all__ = ["export_maps", "export_results", "export_nwb", "bids_label", "paramset_combination"]

BIDS_VERSION = "1.10.0"
#: files the BIDS schema does not define yet (BEP041 statistical maps)
BIDSIGNORE = (
    "# statistical maps (BIDS BEP041: stat- entity, statmap suffix), not yet in released BIDS\n"
    "*_statmap.nii.gz\n*_statmap.json\n"
)

#: stat label -> (NIfTI intent, what the value is, units)
_STATS = {
    "r": ("correlation", "Pearson correlation coefficient", "dimensionless"),
    "t": ("t test", "one-sample t statistic across scans (of Fisher z for correlation maps)", "dimensionless"),
    "p": ("p value", "two-sided p value, uncorrected", "dimensionless"),
    "pFDR": ("p value", "Benjamini-Hochberg FDR-adjusted p value over the brain voxels", "dimensionless"),
    "pFWE": ("p value", "family-wise-error p value, max-t over sign-flipping permutations", "dimensionless"),
    "pClusterFWE": (
        "p value",
        "family-wise-error p value of the size of the suprathreshold cluster the voxel belongs to "
        "(sign-flipping permutations); 1 outside clusters",
        "dimensionless",
    ),
}


def bids_label(text: str) -> str:
    """A BIDS label (letters and digits only) for a name such as an atlas, region or band.

    Examples
    --------
    >>> bids_label("Rat atlas (v1.2)"), bids_label("0.1-1Hz"), bids_label("gamma")
    ('Ratatlasv1p2', '0p1to1Hz', 'gamma')
    """
    text = re.sub(r"(?<=\d)-(?=\d)", "to", str(text)).replace(".", "p")
    label = re.sub(r"[^A-Za-z0-9]", "", text)
    if not label:
        raise ValueError(f"{text!r} has no letters or digits to make a BIDS label from")
    return label


def paramset_combination(lfp_paramset=0, band_paramset=0, bold_paramset=0, relation_paramset=0) -> dict:
    """The four parameter-set numbers as the key of one analysis combination (checked by the exports)."""
    return {
        "lfp_paramset": lfp_paramset,
        "band_paramset": band_paramset,
        "bold_paramset": bold_paramset,
        "relation_paramset": relation_paramset,
    }


def _generated_by() -> list[dict]:
    return [
        {
            "Name": "lfpbold",
            "Version": version("lfpbold"),
            "Description": "simultaneous resting-state fMRI + LFP analysis (Tu, Cramer & Zhang 2024 defaults)",
        }
    ]


def _write_dataset_description(out: Path, name: str, combo: dict, extra: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    description = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": _generated_by(),
        "lfpbold": {"parameter_sets": combo, **(extra or {})},
    }
    (out / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")


class _MapWriter:
    """Writes one 3-D map per call: NIfTI with intent, units and q/sform codes, plus its sidecar."""

    def __init__(self, out: Path, atlases: dict):
        self.out, self.atlases, self.written = out, atlases, []

    def __call__(self, relpath: str, values, atlas: str, stat: str, description: str, **metadata) -> Path:
        a = self.atlases[atlas]
        vol = np.full(a["brain_mask"].shape, np.nan, dtype=np.float32)
        vol[a["brain_mask"]] = np.asarray(values, dtype=np.float32)
        affine = np.asarray(a["affine"], dtype=float)
        img = nib.Nifti1Image(vol, affine)
        intent, meaning, units = _STATS[stat]
        dof = metadata.get("DegreesOfFreedom")
        with_dof = dof is not None and intent in ("correlation", "t test")
        img.header.set_intent(intent, (float(dof),) if with_dof else (), name=stat)
        img.header.set_xyzt_units("mm", "sec")
        img.set_qform(affine, code="aligned")  # registered to the atlas upstream
        img.set_sform(affine, code="aligned")
        path = self.out / f"{relpath}_statmap.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(img, path)
        sidecar = {
            "Description": description,
            "Statistic": stat,
            "StatisticDescription": meaning,
            "Units": units,
            "NIfTIIntent": nib.nifti1.intent_codes.niistring[intent],
            "Space": atlas,
            "OutsideBrain": "NaN",
            **{k: v for k, v in metadata.items() if v is not None},
        }
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar, indent=2) + "\n")
        self.written.append(path)
        return path


def export_maps(
    out_dir: str | Path,
    *,
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    bold_paramset: int = 0,
    relation_paramset: int = 0,
    band_set: str = "classic",
) -> list[Path]:
    """Write the maps of one parameter-set combination as a BIDS derivatives dataset.

    Per scan and implant (``sub-<s>/ses-<s>/func/``): the seed map (``stat-r_desc-<REGION>seed``)
    and each band's LFP power map with the primary map method (``stat-r_desc-<REGION><band>power``).
    Per cohort (state x region, at the top level): the group-mean maps the results table compares
    (``stat-r_desc-<state><REGION>seed`` / ``...<band>power``) and, where ``CohortMapStats`` has
    rows, the voxel-wise group tests: ``stat-t``, ``stat-p``, ``stat-pFDR``, ``stat-pFWE``,
    ``stat-pClusterFWE``. Voxels outside the brain are NaN. Returns the NIfTI paths written.

    Parameters
    ----------
    out_dir : path
        The derivatives folder (created; files already there are overwritten).
    lfp_paramset, band_paramset, bold_paramset, relation_paramset : int
        The combination whose maps to write.
    band_set : {"classic", "one_hz"}
        Which bands' power maps.

    Examples
    --------
    >>> lfpbold.export_maps("derivatives/lfpbold")             # doctest: +SKIP
    """
    from lfpbold.schemas import acquisition, analysis, cohort, params, relations

    combo = _check_combination(
        paramset_combination(lfp_paramset, band_paramset, bold_paramset, relation_paramset), band_set
    )
    out = Path(out_dir)
    relation = params.RelationParams.get_params(combo)
    map_method = relation["maps"]["methods"][0]
    _write_dataset_description(out, "lfpbold maps", combo, {"band_set": band_set, "map_method": map_method})
    (out / ".bidsignore").write_text(BIDSIGNORE)
    (out / "README.md").write_text(_MAPS_README)
    atlases = {a["atlas"]: a for a in acquisition.Atlas.proj("brain_mask", "affine").to_dicts()}
    save = _MapWriter(out, atlases)
    bands = {b["band"]: b for b in (params.FrequencyBand & {"band_set": band_set}).to_dicts()}
    space = {a: bids_label(a) for a in atlases}
    n_kept = {
        (r["subject"], r["session"], r["run"]): int(r["n_kept"])
        for r in (analysis.PreprocessedBold & {"bold_paramset": bold_paramset}).proj("n_kept").to_dicts()
    }

    def scan_stem(r):
        sub, ses = bids_label(r["subject"]), bids_label(r["session"])
        return f"sub-{sub}/ses-{ses}/func/sub-{sub}_ses-{ses}_task-rest_run-{int(r['run'])}_space-{space[r['atlas']]}"

    def dof(r):
        n = n_kept.get((r["subject"], r["session"], r["run"]))
        return n - 2 if n else None

    seed_restr = {"bold_paramset": bold_paramset, "relation_paramset": relation_paramset}
    for r in (relations.SeedMap * acquisition.Scan & seed_restr).to_dicts():
        save(
            f"{scan_stem(r)}_stat-r_desc-{bids_label(r['region'])}seed",
            r["seed_map"],
            r["atlas"],
            "r",
            f"seed map: Pearson r of the {r['region']} ROI-mean BOLD with every brain voxel",
            DegreesOfFreedom=dof(r),
            Region=r["region"],
        )
    primary = {"map_method": map_method}
    power_maps = relations.LFPPowerMap.Map * acquisition.Scan & combo & _bands(bands) & primary
    for r in power_maps.to_dicts():
        b = bands[r["band"]]
        save(
            f"{scan_stem(r)}_stat-r_desc-{bids_label(r['region'])}{bids_label(r['band'])}power",
            r["power_map"],
            r["atlas"],
            "r",
            f"LFP power map: {map_method} correlation of the HRF-convolved {r['band']} "
            f"({b['low_hz']:g}-{b['high_hz']:g} Hz) power of the {r['region']} implant with every brain voxel",
            DegreesOfFreedom=dof(r) if map_method == "pearson" else None,
            Region=r["region"],
            Band=r["band"],
            BandHz=[b["low_hz"], b["high_hz"]],
            MapMethod=map_method,
        )
    _export_group_maps(save, combo, bands, space, cohort, acquisition)
    return save.written


def _bands(bands: dict):
    return [{"band": b} for b in bands]


def _cohort_atlas(acquisition, state: str, region: str) -> str:
    scans = (acquisition.Scan * acquisition.Session) & {"state": state} & (acquisition.Implant & {"region": region})
    atlases = sorted(set(scans.to_arrays("atlas")))
    if len(atlases) != 1:
        raise ValueError(f"the {state} {region} scans span {len(atlases)} atlases {atlases}; expected one")
    return atlases[0]


#: stat label of each CohortMapStats array
_GROUP_STATS = (("t", "t"), ("p", "p"), ("pFDR", "p_fdr"), ("pFWE", "p_fwe"), ("pClusterFWE", "cluster_p_fwe"))


def _export_group_maps(save, combo, bands, space, cohort, acquisition):
    for c in (cohort.Cohort & combo).to_dicts():
        atlas = _cohort_atlas(acquisition, c["state"], c["region"])
        what = f"{bids_label(c['state'])}{bids_label(c['region'])}"
        stem = f"task-rest_space-{space[atlas]}"
        common = dict(State=c["state"], Region=c["region"], NumberOfScans=int(c["n_scans"]))
        save(
            f"{stem}_stat-r_desc-{what}seed",
            c["group_seed_map"],
            atlas,
            "r",
            f"group-mean seed map of the {c['state']} {c['region']} cohort (mean r over scans)",
            **common,
        )
        key = {k: c[k] for k in ("state", "region", *combo)}
        for b in (cohort.Cohort.Band & key & _bands(bands)).to_dicts():
            save(
                f"{stem}_stat-r_desc-{what}{bids_label(b['band'])}power",
                b["group_power_map"],
                atlas,
                "r",
                f"group-mean {b['band']} LFP power map of the {c['state']} {c['region']} cohort (mean r over scans)",
                Band=b["band"],
                **common,
            )
        stats = (cohort.CohortMapStats & key).to_dicts()
        if not stats:
            continue
        head = stats[0]
        settings = dict(
            NumberOfPermutations=int(head["n_permutations"]),
            ClusterFormingP=float(head["cluster_forming_p"]),
            ClusterFormingT=float(head["t_threshold"]),
            **common,
        )
        rows = [("seed", "seed map", r) for r in (cohort.CohortMapStats.Seed & key).to_dicts()]
        rows += [
            (f"{bids_label(r['band'])}power", f"{r['band']} LFP power map", r)
            for r in (cohort.CohortMapStats.Band & key & _bands(bands)).to_dicts()
        ]
        for suffix, name, r in rows:
            for stat, attr in _GROUP_STATS:
                if r[attr] is None:
                    continue
                save(
                    f"{stem}_stat-{stat}_desc-{what}{suffix}",
                    r[attr],
                    atlas,
                    stat,
                    f"voxel-wise one-sample test across scans of the {c['state']} {c['region']} cohort's {name}s",
                    DegreesOfFreedom=int(head["n_scans"]) - 1 if stat == "t" else None,
                    FisherZ=bool(r["fisher"]),
                    **settings,
                )


_MAPS_README = """# lfpbold maps

Seed maps and LFP power maps of a simultaneous resting-state fMRI + LFP study, written by
`lfpbold export maps`, in the atlas space the runs were registered to.

- `sub-*/ses-*/func/*_stat-r_desc-<REGION>seed_statmap.nii.gz`: one scan's seed map (Pearson r of
  the ROI-mean BOLD around the electrode tip with every brain voxel).
- `..._stat-r_desc-<REGION><band>power_statmap.nii.gz`: one scan's LFP power map (correlation of
  the HRF-convolved band power with every voxel).
- `task-rest_space-*_stat-<stat>_desc-<state><REGION>...`: per cohort (state x implant region),
  the group-mean maps (`stat-r`) and the voxel-wise one-sample tests across scans (`stat-t`,
  `stat-p`, `stat-pFDR`, `stat-pFWE`, `stat-pClusterFWE`).

Each map has a JSON sidecar saying what it is; voxels outside the brain are NaN. The `stat` entity
and `statmap` suffix follow the BIDS statistical-derivatives proposal (BEP041) and are listed in
`.bidsignore` until a BIDS release defines them.
"""


def _check_combination(combo: dict, band_set: str) -> dict:
    """``combo`` checked by :func:`lfpbold.schemas.params.check_paramsets`, and ``band_set``."""
    from lfpbold.schemas import params

    if band_set not in params.BAND_SETS:
        raise ValueError(f"band_set must be one of {list(params.BAND_SETS)}; got {band_set!r}")
    return params.check_paramsets(combo)


#: BIDS-style data dictionary of the results table: column -> (description, units or None)
RESULTS_COLUMNS = {
    "subject": ("subject label", None),
    "session": ("session label", None),
    "run": ("run number within the session", None),
    "state": ("brain state of the sessions (sedated: dexmedetomidine + 0.3% isoflurane; awake: restrained)", None),
    "region": ("implant region the LFP was recorded in and the seed ROI was placed at", None),
    "band": ("LFP frequency band", None),
    "spatial_r": ("group-mean LFP power map vs group-mean seed map, Pearson r over brain voxels", "dimensionless"),
    "spatial_r2": ("spatial_r squared: spatial variance explained", "dimensionless"),
    "scanwise_spatial_r": ("mean over scans of each scan's power map vs seed map r", "dimensionless"),
    "spatial_t": ("one-sample t statistic of the scan-wise spatial r across scans", "dimensionless"),
    "spatial_p": ("two-sided p value of spatial_t", "dimensionless"),
    "spatial_p_fdr": ("spatial_p adjusted by Benjamini-Hochberg FDR over the rows of this table", "dimensionless"),
    "spatial_d": ("Cohen's d of the scan-wise spatial r (mean / standard deviation across scans)", "dimensionless"),
    "spatial_ci_low": ("lower end of the t-based 95% confidence interval of scanwise_spatial_r", "dimensionless"),
    "spatial_ci_high": ("upper end of the t-based 95% confidence interval of scanwise_spatial_r", "dimensionless"),
    "temporal_r": (
        "mean over scans of the primary temporal metric (Pearson r of HRF-convolved band power with the local BOLD)",
        "dimensionless",
    ),
    "temporal_r_fisher": ("temporal r averaged as Fisher z and transformed back", "dimensionless"),
    "temporal_t": ("one-sample t statistic of the per-scan temporal r across scans", "dimensionless"),
    "temporal_p": ("two-sided p value of temporal_t", "dimensionless"),
    "temporal_p_fdr": ("temporal_p adjusted by Benjamini-Hochberg FDR over the rows of this table", "dimensionless"),
    "temporal_d": ("Cohen's d of the per-scan temporal r", "dimensionless"),
    "temporal_ci_low": ("lower end of the t-based 95% confidence interval of temporal_r", "dimensionless"),
    "temporal_ci_high": ("upper end of the t-based 95% confidence interval of temporal_r", "dimensionless"),
    "spatial_vs_temporal_t": ("paired t statistic of scan-wise spatial r against temporal r", "dimensionless"),
    "spatial_vs_temporal_p": ("two-sided p value of spatial_vs_temporal_t", "dimensionless"),
    "shuffled_r": ("control: mean r of circularly shifted band power with the local BOLD", "dimensionless"),
    "peak_lag_s": ("lag of the peak of the scan-averaged cross-correlation (positive: BOLD lags)", "s"),
    "inferred_true_r": ("noise ceiling: the true r the observed temporal_r implies at the CNR", "dimensionless"),
    "temporal_variance_explained": ("inferred_true_r squared", "dimensionless"),
    "cnr": ("single-scan contrast-to-noise ratio the noise ceiling used", "dimensionless"),
    "n_scans": ("scans summarised", None),
    "n_subjects": ("subjects among them", None),
    "n_excluded": ("scans left out by motion screening", None),
    "missing": ("why any figure of the row is empty", None),
    "spearman": ("mean over scans of the Spearman rank correlation with the local BOLD", "dimensionless"),
    "mutual_information": ("mean over scans of the k-NN mutual information with the local BOLD", "nat"),
}


def _describe(column: str) -> dict:
    if column in RESULTS_COLUMNS:
        text, units = RESULTS_COLUMNS[column]
    elif column.startswith("removal_") and column.endswith("_r"):
        method = column[len("removal_") : -2]
        text, units = (f"group-mean seed map after LFP removal by {method!r} vs the original, r", "dimensionless")
    else:  # a lab's own temporal metric
        text, units = (f"mean over scans of the temporal metric {column!r} with the local BOLD", None)
    return {"Description": text, **({"Units": units} if units else {})}


def _write_table(df, path: Path, overrides: dict | None = None) -> None:
    df.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    dictionary = {c: (overrides or {}).get(c) or _describe(c) for c in df.columns}
    path.with_suffix(".json").write_text(json.dumps(dictionary, indent=2) + "\n")


def export_results(
    out_dir: str | Path,
    *,
    by=("state", "region", "band"),
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    bold_paramset: int = 0,
    relation_paramset: int = 0,
    band_set: str = "classic",
) -> list[Path]:
    """Write the results table (:func:`lfpbold.results`) and the per-scan values as TSV + JSON.

    ``results.tsv`` has one row per group of ``by``; ``scans.tsv`` one row per scan, implant and
    band with the values the groups summarise. Each has a JSON data dictionary beside it (BIDS
    style: a ``Description`` and ``Units`` per column); empty cells are ``n/a``.

    Examples
    --------
    >>> lfpbold.export_results("results", by=["subject", "state", "region", "band"])   # doctest: +SKIP
    """
    import pandas as pd

    from lfpbold.query import results
    from lfpbold.schemas import cohort

    combo = _check_combination(
        paramset_combination(lfp_paramset, band_paramset, bold_paramset, relation_paramset), band_set
    )
    out = Path(out_dir)
    _write_dataset_description(out, "lfpbold results", combo, {"band_set": band_set, "by": list(by)})
    df = results(by=by, band_set=band_set, **combo)
    if df.empty:
        raise ValueError(f"No results for parameter sets {combo}: run lfpbold populate first")
    _write_table(df, out / "results.tsv")
    data = cohort.gather(combo, band_set=band_set)
    rows = []
    metric_names = data.relation["temporal"]["metrics"]
    for scan in data.scans.to_dict("records"):
        key = tuple(scan[c] for c in cohort.SCAN_IMPLANT)
        for band in data.bands:
            row = {**scan, "band": band, "spatial_r": data.spatial_r.get(key + (band,), np.nan)}
            for m in metric_names:
                row["temporal_r" if m == metric_names[0] else m] = data.metrics.get(key + (band, m), np.nan)
            row["shuffled_r"] = data.shuffled.get(key + (band,), np.nan)
            rows.append(row)
    per_scan = {
        "spatial_r": "this scan's LFP power map vs its seed map, Pearson r over brain voxels",
        "temporal_r": f"this scan's {metric_names[0]} correlation of HRF-convolved band power with the local BOLD",
        "shuffled_r": "this scan's mean r of circularly shifted band power with the local BOLD",
    }
    overrides = {c: {"Description": text, "Units": "dimensionless"} for c, text in per_scan.items()}
    _write_table(pd.DataFrame(rows), out / "scans.tsv", overrides)
    return [out / "results.tsv", out / "scans.tsv"]
