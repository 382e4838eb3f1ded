"""The whole study: :func:`simulate_study` writes a BIDS-style folder and the ground truth it should yield.

It checks the arguments, derives each scan's seed from the study seed (:func:`scan_seed_for`),
runs :mod:`~lfpbold.simulate.signals` and :mod:`~lfpbold.simulate.lfp` scan by scan, writes the files
through :mod:`~lfpbold.simulate.writers`, and records in ``ground_truth.json`` what the analysis
should recover: the true and expected observed r, each implant's network, and which scans the
study's motion screening (:mod:`lfpbold.plugins.bold`) must exclude.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
from pathlib import Path

import numpy as np

from lfpbold import __version__
from lfpbold.constants import CLASSIC_BANDS, COLUMN_LIMITS, STATE_DESCRIPTIONS, STATES
from lfpbold.plugins.bold import fd_screening, framewise_displacement
from lfpbold.plugins.hrf import RODENT_P
from lfpbold.simulate.anatomy import Atlas, build_atlas
from lfpbold.simulate.artifacts import ARTIFACT_TO_LFP_RMS
from lfpbold.simulate.expected import METHOD as EXPECTED_METHOD
from lfpbold.simulate.expected import expected_after_preprocessing
from lfpbold.simulate.lfp import BAND_STOP_DB, BAND_TRANSITION, LfpStream
from lfpbold.simulate.signals import (
    BAND_COUPLING,
    BAND_RMS,
    DRIVE_BAND,
    POWER_DEPTH,
    POWER_STEP,
    expected_temporal_r,
    simulate_bold,
    simulate_latents,
    simulate_motion,
)
from lfpbold.simulate.sizes import SIZES, Size
from lfpbold.simulate.template import write_template
from lfpbold.simulate.writers import (
    BIDSIGNORE,
    DERIVATIVES_BIDSIGNORE,
    TEMPLATE,
    derivative_description,
    write_atlas,
    write_bidsignore,
    write_confounds,
    write_json,
    write_nifti,
    write_nwb,
    write_truth_maps,
    write_tsv,
)

#: Where the simulated study's derivatives live: the atlas (a template) and the head-motion estimates.
ATLAS_DERIVATIVE = "derivatives/atlas"
MOTION_DERIVATIVE = "derivatives/realign"

__all__ = ["simulate_study", "scan_seed_for", "per_state"]


def _check_args(subjects, sessions, scans, regions, states, true_temporal_r, cnr, size):
    for name, v in [("subjects", subjects), ("sessions", sessions), ("scans", scans)]:
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    if isinstance(regions, str) or not regions:
        raise ValueError(f"regions must be a non-empty sequence of region names; got {regions!r}")
    labels_ok = all(isinstance(r, str) and r.isalnum() and r.isascii() for r in regions)
    if len(set(regions)) != len(regions) or not labels_ok:
        raise ValueError(f"regions must be distinct alphanumeric labels (BIDS); got {list(regions)!r}")
    width = COLUMN_LIMITS["Region"]["region"]
    if any(len(r) > width for r in regions):
        raise ValueError(f"region labels hold at most {width} characters (the Region table's); got {list(regions)!r}")
    if isinstance(states, str) or not states or any(s not in STATES for s in states) or len(set(states)) != len(states):
        raise ValueError(f"states must be distinct values among {STATES}; got {states!r}")
    true_temporal_r = per_state(true_temporal_r, tuple(states), "true_temporal_r")
    cnr = per_state(cnr, tuple(states), "cnr")
    for state, v in true_temporal_r.items():
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"true_temporal_r must be in [0, 1]; got {v!r} for {state}")
    for state, v in cnr.items():
        if not v > 0 or not math.isfinite(v):
            raise ValueError(f"cnr must be a positive finite number; got {v!r} for {state}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    return true_temporal_r, cnr


def per_state(value, states, name: str) -> dict:
    """One number per state: ``value`` is a number (every state) or a ``{state: number}`` mapping.

    A mapping must name every simulated state and nothing else, so that a typo cannot silently
    fall back to a default.

    Examples
    --------
    >>> per_state(0.59, ("sedated", "awake"), "cnr")
    {'sedated': 0.59, 'awake': 0.59}
    >>> per_state({"awake": 0.4, "sedated": 0.59}, ("sedated", "awake"), "true_temporal_r")
    {'sedated': 0.59, 'awake': 0.4}
    """
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(states))
        missing = [s for s in states if s not in value]
        if unknown or missing:
            raise ValueError(
                f"{name} must give a value for each simulated state {list(states)}"
                + (f"; no such state: {unknown}" if unknown else "")
                + (f"; missing: {missing}" if missing else "")
            )
        out = {s: value[s] for s in states}
    else:
        out = {s: value for s in states}
    for s, v in out.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number or a {{state: number}} mapping; got {v!r} for {s}")
    return {s: float(v) for s, v in out.items()}


def _fd_rule() -> dict:
    """The FD screening the truth's ``excluded_expected`` follows: the plugin's defaults, the study's rule."""
    rule = {
        name: p.default for name, p in inspect.signature(fd_screening).parameters.items() if p.default is not p.empty
    }
    before, after = rule["neighbours"]
    return {
        "head_radius_mm": rule["radius_mm"],
        "threshold_mm": rule["threshold_mm"],
        "awake_max_scrubbed": rule["max_scrub_fraction"],
        "scrub_neighbours": before if before == after else [before, after],
    }


def _expected_r(true_temporal_r, cnr) -> dict:
    """The expected observed r, gamma and by band, as the truth records it (study-wide and per implant)."""
    return {
        "expected_observed_temporal_r": expected_temporal_r(true_temporal_r, cnr),
        "expected_observed_temporal_r_by_band": {
            b: expected_temporal_r(true_temporal_r, cnr, b) for b in CLASSIC_BANDS
        },
    }


def _cohort_expected(truth_scans: list, states) -> dict:
    """``{state: {band: mean expected r after preprocessing}}`` over kept scans and their implants."""
    out = {}
    for state in states:
        scans = [s for s in truth_scans if s["state"] == state]
        kept = [s for s in scans if not s["excluded_expected"]] or scans
        values = [imp["expected_after_preprocessing_r"] for s in kept for imp in s["implants"]]
        out[state] = {b: float(np.mean([v[b] for v in values])) for b in CLASSIC_BANDS}
    return out


def _implant_truth(region: str, atlas: Atlas, true_temporal_r, cnr) -> dict:
    """What the analysis of one implant should recover; the same in every scan of the study."""
    imp = atlas.implants[region]
    return {
        "region": region,
        "true_temporal_r": float(true_temporal_r),
        "cnr": float(cnr),
        **_expected_r(true_temporal_r, cnr),
        "network_pattern": f"truth/truth_desc-{region}_network.nii.gz",
        "roi": f"{ATLAS_DERIVATIVE}/tpl-{TEMPLATE}/anat/tpl-{TEMPLATE}_label-{region}_mask.nii.gz",
        "roi_voxels": int(atlas.rois[region].sum()),
        "hemisphere": imp["hemisphere"],
        "ap_mm": imp["ap"],
        "ml_mm": imp["ml"],
        "dv_mm": imp["dv"],
        "network_blobs": [
            {"ap_mm": b[0], "ml_mm": b[1], "dv_mm": b[2], "weight": b[3], "description": b[4]} for b in imp["connected"]
        ],
    }


def _bad_truth(stream: LfpStream, implant_index: int, n_per_implant: int) -> list:
    """The implant's bad contacts: channel within the implant (0 = tip) and kind."""
    lo = implant_index * n_per_implant
    return [
        {"channel": ch - lo, "kind": kind}
        for ch, kind in sorted(stream.bad_channels.items())
        if lo <= ch < lo + n_per_implant
    ]


def _model_truth(sz: Size, atlas: Atlas, artifact: bool) -> dict:
    """The generative model's settings, so that a study folder documents how it was made."""
    return {
        "drive_band_hz": list(DRIVE_BAND),
        "power_step_s": POWER_STEP,
        "hrf": "spm_hrf",
        "hrf_p": list(RODENT_P),
        "band_coupling": BAND_COUPLING,
        "power_depth": POWER_DEPTH,
        "band_rms_v": BAND_RMS,
        # Each band: white noise through a Kaiser-window linear-phase FIR band-pass whose
        # transitions (this fraction of the band's width) lie inside the band.
        "band_filter": {"design": "kaiser_fir", "transition_fraction": BAND_TRANSITION, "stop_db": BAND_STOP_DB},
        "lfp": {
            "fs": sz.fs,
            "channels_per_implant": sz.n_channels,
            "lead_s": sz.lead_s,
            "tail_s": sz.tail_s,
            "n_times": sz.n_times,
        },
        "artifact_rms_over_lfp_rms": ARTIFACT_TO_LFP_RMS if artifact else 0.0,
        "fd": _fd_rule(),
        "brain_voxels": int(atlas.brain.sum()),
    }


def _write_dataset_files(out: Path, seed, size) -> None:
    """The raw dataset's description, README, ``.bidsignore`` and the JSON that describes each TSV column."""
    write_json(
        out / "dataset_description.json",
        {
            "Name": f"lfpbold simulated study (seed {seed}, {size})",
            "BIDSVersion": "1.10.0",
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["lfpbold simulate"],
            "GeneratedBy": [{"Name": "lfpbold simulate", "Version": __version__}],
        },
    )
    (out / "README").write_text(
        f"Simulated simultaneous LFP + resting-state fMRI study (lfpbold simulate, seed {seed}, size {size}).\n"
        f"BOLD runs in sub-*/ses-*/func, NWB recordings in sub-*/ses-*/ecephys, the atlas in {ATLAS_DERIVATIVE},\n"
        f"head-motion estimates in {MOTION_DERIVATIVE}, the simulator's ground truth in ground_truth.json.\n"
    )
    write_bidsignore(out, BIDSIGNORE)
    write_json(
        out / "participants.json",
        {
            "species": {"Description": "species (binomial name)"},
            "strain": {"Description": "strain of the animal"},
            "sex": {"Description": "sex of the animal", "Levels": {"M": "male", "F": "female"}},
            "age": {"Description": "age at the first session", "Units": "d"},
            "weight": {"Description": "body weight at the first session", "Units": "g"},
        },
    )
    write_json(
        out / "sessions.json",
        {
            "acq_time": {"Description": "start of the session's first scan"},
            "state": {"Description": "brain state during the session", "Levels": dict(STATE_DESCRIPTIONS)},
        },
    )


def scan_seed_for(seed: int, subject_index: int, state: str, session_index: int, run: int) -> int:
    """The seed of one scan, derived from the study seed and the scan's place in the study.

    ``ground_truth.json`` records it per scan; :func:`~lfpbold.simulate.signals.simulate_latents`,
    :func:`~lfpbold.simulate.signals.simulate_motion`, :func:`~lfpbold.simulate.signals.simulate_bold`
    and :class:`~lfpbold.simulate.lfp.LfpStream` given it reproduce that scan's data.

    Examples
    --------
    >>> scan_seed_for(7, subject_index=1, state="sedated", session_index=1, run=1)
    1909589571
    """
    # The state's place in STATES is part of the seed: reordering STATES would change every study.
    ss = np.random.SeedSequence([int(seed), subject_index, STATES.index(state), session_index, run])
    return int(ss.generate_state(1, np.uint32)[0])


def simulate_study(
    out_dir,
    *,
    subjects=3,
    sessions=1,
    scans=2,
    regions=("ACC", "M1"),
    states=("sedated",),
    true_temporal_r=0.59,
    cnr=1.3,
    seed=0,
    size="small",
    artifact=None,
    motion=True,
    progress=None,
) -> Path:
    """Write a simulated simultaneous LFP + resting-state fMRI study with a known ground truth.

    Parameters
    ----------
    out_dir : path-like
        The study folder to create (must not exist or be empty).
    subjects : int, default 3
        Rats, labelled "01", "02", ...; every rat carries an implant in every region.
    sessions : int, default 1
        Sessions per state per rat ("sedated01", "awake01", ...).
    scans : int, default 2
        Runs per session (run-1, run-2, ...).
    regions : sequence of str, default ("ACC", "M1")
        Implant regions (see :func:`~lfpbold.simulate.anatomy.implant_coordinates`).
    states : sequence of {"sedated", "awake"}, default ("sedated",)
    true_temporal_r : float or dict, default 0.59
        Correlation between the HRF-convolved gamma-power drive and the network's BOLD signal:
        one number for every state, or one per state (``{"sedated": 0.59, "awake": 0.4}``).
    cnr : float or dict, default 1.3
        Contrast-to-noise ratio on both sides (LFP gamma power and ROI-mean BOLD), in 0.01-0.1 Hz;
        one number, or one per state.
    seed : int, default 0
        Everything (arrays, identifiers, dates) follows from it.
    size : {"small", "paper"}, default "small"
    artifact : bool or None
        MR gradient artifact in the LFP; None means on for "paper", off for "small".
    motion : bool, default True
        Realistic head motion (drift, jitter, awake spikes); False writes zero motion.
    progress : callable(str), optional
        Receives status lines.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = simulate_study(pathlib.Path(tempfile.mkdtemp()) / "study", subjects=1, scans=1, regions=("M1",))
    >>> truth = json.loads((d / "ground_truth.json").read_text())
    >>> truth["cnr"], round(truth["expected_observed_temporal_r"]["sedated"], 3)
    ({'sedated': 1.3}, 0.371)
    """
    true_r, cnrs = _check_args(subjects, sessions, scans, regions, states, true_temporal_r, cnr, size)
    regions = tuple(regions)
    states = tuple(states)
    sz = SIZES[size]
    artifact = (size == "paper") if artifact is None else bool(artifact)
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; simulate_study writes a new study folder")
    out.mkdir(parents=True, exist_ok=True)

    atlas = build_atlas(sz, regions, seed)
    anat = write_atlas(out / ATLAS_DERIVATIVE, atlas, version=__version__)
    write_template(anat, atlas, name=f"tpl-{TEMPLATE}_T2w.nii.gz")  # the image figures draw maps over
    write_truth_maps(out / "truth", atlas)
    _write_dataset_files(out, seed, size)
    motion_dir = out / MOTION_DERIVATIVE
    derivative_description(motion_dir, "head-motion estimates", "realignment parameters of every BOLD run", __version__)
    write_bidsignore(motion_dir, DERIVATIVES_BIDSIGNORE)
    sidecar = {
        "TaskName": "rest",
        "RepetitionTime": sz.t_r,
        "SliceTiming": sz.slice_timing,
        "EchoTime": 0.015,
        "MagneticFieldStrength": 7,
        "SliceEncodingDirection": "k",
    }
    write_json(out / "task-rest_bold.json", sidecar)
    meta_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 9]))
    weights = {f"{s:02d}": round(float(meta_rng.uniform(330, 420)), 1) for s in range(1, subjects + 1)}
    write_tsv(
        out / "participants.tsv",
        ["participant_id", "species", "strain", "sex", "age", "weight"],
        [[f"sub-{s}", "Rattus norvegicus", "Long-Evans", "M", 90, w] for s, w in weights.items()],
    )

    implants_truth = {
        state: {r: _implant_truth(r, atlas, true_r[state], cnrs[state]) for r in regions} for state in states
    }
    truth_scans = []
    base_date = _dt.datetime(2024, 3, 1, 10, 0, 0, tzinfo=_dt.UTC)
    n_total = subjects * len(states) * sessions * scans
    done = 0
    for si in range(1, subjects + 1):
        sub = f"{si:02d}"
        sub_dir = out / f"sub-{sub}"
        sub_dir.mkdir()
        ses_rows = []
        order = 0
        for state in states:
            for se in range(1, sessions + 1):
                ses = f"{state}{se:02d}"
                start = base_date + _dt.timedelta(days=(si - 1) + 7 * order)
                order += 1
                ses_rows.append([f"ses-{ses}", start.strftime("%Y-%m-%dT%H:%M:%S"), state])
                func = sub_dir / f"ses-{ses}" / "func"
                ecephys = sub_dir / f"ses-{ses}" / "ecephys"
                confounds = motion_dir / f"sub-{sub}" / f"ses-{ses}" / "func"
                func.mkdir(parents=True)
                ecephys.mkdir()
                confounds.mkdir(parents=True)
                for run in range(1, scans + 1):
                    stem = f"sub-{sub}_ses-{ses}_task-rest_run-{run}"
                    sseed = scan_seed_for(seed, si, state, se, run)
                    say(f"[{done + 1}/{n_total}] {stem}: BOLD")
                    c, cnr_s = true_r[state], cnrs[state]
                    lat = simulate_latents(sseed, size=sz, regions=regions, true_temporal_r=c, cnr=cnr_s)
                    mot = simulate_motion(sseed, state, sz.n_volumes) if motion else np.zeros((sz.n_volumes, 6))
                    bold = simulate_bold(atlas, lat, mot, sseed, cnr=cnr_s)
                    write_nifti(func / f"{stem}_bold.nii.gz", bold, atlas, t_r=sz.t_r)
                    after = expected_after_preprocessing(atlas, lat, mot, bold, state=state, cnr=cnr_s, scan_seed=sseed)
                    del bold
                    fd = framewise_displacement(mot, radius_mm=_fd_rule()["head_radius_mm"])
                    write_confounds(confounds / f"{stem}_desc-confounds_timeseries.tsv", mot, fd)
                    say(
                        f"[{done + 1}/{n_total}] {stem}: LFP ({sz.n_times} samples x "
                        f"{sz.n_channels * len(regions)} channels{', with gradient artifact' if artifact else ''})"
                    )
                    stream = LfpStream(lat, sz, sseed, artifact=artifact, motion=mot)
                    write_nwb(
                        ecephys / f"{stem}_ecephys.nwb",
                        stream=stream,
                        atlas=atlas,
                        subject=sub,
                        session=ses,
                        state=state,
                        run=run,
                        start=start,
                        weight_g=weights[sub],
                        scan_seed=sseed,
                        size=sz,
                    )
                    screened = fd_screening(mot, state=state)
                    truth_scans.append(
                        {
                            "subject": sub,
                            "session": ses,
                            "run": run,
                            "state": state,
                            "seed": sseed,
                            "true_temporal_r": c,
                            "cnr": cnr_s,
                            "implants": [
                                implants_truth[state][r]
                                | {
                                    "expected_after_preprocessing_r": after[r],
                                    "bad_channels": _bad_truth(stream, ri, sz.n_channels),
                                }
                                for ri, r in enumerate(regions)
                            ],
                            "artifact": artifact,
                            "excluded_expected": screened["excluded"],
                            "max_fd_mm": float(screened["fd"].max()),
                            "n_volumes": sz.n_volumes,
                            "bold": f"sub-{sub}/ses-{ses}/func/{stem}_bold.nii.gz",
                            "ecephys": f"sub-{sub}/ses-{ses}/ecephys/{stem}_ecephys.nwb",
                            "confounds": (
                                f"{MOTION_DERIVATIVE}/sub-{sub}/ses-{ses}/func/{stem}_desc-confounds_timeseries.tsv"
                            ),
                        }
                    )
                    done += 1
        write_tsv(sub_dir / f"sub-{sub}_sessions.tsv", ["session_id", "acq_time", "state"], ses_rows)

    write_json(
        out / "ground_truth.json",
        {
            "simulator": {
                "version": __version__,
                "seed": int(seed),
                "size": size,
                "options": {
                    "subjects": subjects,
                    "sessions": sessions,
                    "scans": scans,
                    "regions": list(regions),
                    "states": list(states),
                    "true_temporal_r": true_r,
                    "cnr": cnrs,
                    "artifact": artifact,
                    "motion": bool(motion),
                },
            },
            # Keyed by state: {"sedated": 0.59, "awake": 0.4}.
            "cnr": cnrs,
            "true_temporal_r": true_r,
            **{
                key: {state: _expected_r(true_r[state], cnrs[state])[key] for state in states}
                for key in ("expected_observed_temporal_r", "expected_observed_temporal_r_by_band")
            },
            # Cohort mean over the scans the FD screening keeps (all scans if it keeps none) and implants.
            "expected_after_preprocessing_r": _cohort_expected(truth_scans, states),
            "expected_after_preprocessing_method": EXPECTED_METHOD,
            "model": _model_truth(sz, atlas, artifact),
            "scans": truth_scans,
        },
    )
    say(f"wrote {n_total} scans to {out}")
    return out
