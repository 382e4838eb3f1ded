"""The study's shared vocabulary, declared once: frequency bands, brain states, motion columns.

Plugins, readers, schemas and the simulator all import these names from here, so a band's edges
or a state's spelling cannot drift apart between the places that use them. Nothing here imports
DataJoint.
"""

from __future__ import annotations

__all__ = [
    "CLASSIC_BANDS",
    "one_hz_bands",
    "STATES",
    "STATE_DESCRIPTIONS",
    "MOTION_COLUMNS",
    "BAND_FIGURES",
    "RODENT_P",
    "COLUMN_LIMITS",
    "INT32_MAX",
]

#: The five named LFP bands of the reference study (Hz), in display order.
CLASSIC_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 7.0),
    "alpha": (7.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (40.0, 100.0),
}


def one_hz_bands() -> dict[str, tuple[float, float]]:
    """Every 1-Hz band from 0.1 to 100 Hz (the study's fine-grained analysis), in order.

    Examples
    --------
    >>> bands = one_hz_bands()
    >>> len(bands), bands["0.1-1Hz"], bands["99-100Hz"]
    (100, (0.1, 1.0), (99.0, 100.0))
    """
    edges = [0.1] + list(range(1, 101))
    return {f"{lo:g}-{hi:g}Hz": (float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)}


#: Brain states of a session, and how the reference study induced them.
STATE_DESCRIPTIONS: dict[str, str] = {
    "sedated": "dexmedetomidine + 0.3% isoflurane",
    "awake": "restrained, acclimated",
}
STATES: tuple[str, ...] = tuple(STATE_DESCRIPTIONS)

#: Realignment parameters, in this order: translations (mm), then rotations (radians).
MOTION_COLUMNS: tuple[str, ...] = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")

#: The acquisition tables' text widths (characters) and integer columns, declared once:
#: ``schemas/acquisition.py`` builds its definitions from these numbers and ingest checks every
#: value against them before inserting, so an overlong label is an error naming the field and the
#: limit instead of a database traceback half-way through a study. ``"int32"`` marks an integer column.
COLUMN_LIMITS: dict[str, dict[str, int | str]] = {
    "Region": {"region": 16, "region_name": 128},
    "Subject": {"subject": 32, "species": 64, "strain": 64, "sex": 8, "age": 16},
    "Session": {"session": 32, "session_dir": 1024},
    "ProbeType": {"probe_type": 32, "manufacturer": 64, "probe_description": 255, "n_electrodes": "int32"},
    "ProbeType.Electrode": {"electrode": "int32"},
    "Implant": {"hemisphere": 8},
    "Atlas": {"atlas": 64, "atlas_dir": 1024},
    "Atlas.ROI": {"roi_path": 1024},
    "Scan": {"run": "int32"},
    "FMRIRun": {"bold_path": 1024, "motion_path": 1024},
    "LFPRecording": {"nwb_path": 1024, "series_path": 255, "series_object_id": 64, "n_channels": "int32"},
    "LFPRecording.Channel": {"channel": "int32", "electrode": "int32"},
}
INT32_MAX = 2**31 - 1

#: SPM ``spm_hrf`` parameters of the reference study (rodent, Tong et al. 2019): response peak near 3 s.
RODENT_P: tuple[float, ...] = (4.0, 4.0, 1.0, 1.0, 6.0, 0.0, 32.0)

#: A cohort's figures for one band, in the order the results table shows them (see
#: :func:`lfpbold.plugins.cohort.summarize_cohort` for their definitions).
BAND_FIGURES: tuple[str, ...] = (
    "spatial_r",
    "spatial_r2",
    "scanwise_spatial_r",
    "spatial_t",
    "spatial_p",
    "spatial_d",
    "spatial_ci_low",
    "spatial_ci_high",
    "temporal_r",
    "temporal_r_fisher",
    "temporal_t",
    "temporal_p",
    "temporal_d",
    "temporal_ci_low",
    "temporal_ci_high",
    "spatial_vs_temporal_t",
    "spatial_vs_temporal_p",
    "shuffled_r",
    "peak_lag_s",
    "inferred_true_r",
    "temporal_variance_explained",
)
