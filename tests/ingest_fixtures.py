"""Tiny study folders for the ingest tests, written with pynwb/nibabel to the layout contract,
with knobs for every bad-input variant the readers must catch.

``make_study`` writes the BIDS-valid layout (atlas as a template in ``derivatives/atlas``, head
motion as fMRIPrep-style confounds in ``derivatives/realign``) or, with ``layout="old"``, the
layout lfpbold wrote before (``atlas/``, ``func/*_motion.tsv``), which ingest still reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (4, 5, 3)  # X, Y, Z (3 slices)
AFFINE = np.array([[2.0, 0, 0, -4.0], [0, 2.0, 0, -5.0], [0, 0, 2.5, -3.0], [0, 0, 0, 1]])
IMPLANTS = {"ACC": (1.5, 0.5, -2.8, "right"), "M1": (3.2, -3.0, -2.8, "left")}
MOTION_HEADER = "trans_x\ttrans_y\ttrans_z\trot_x\trot_y\trot_z"
TEMPLATE = "tiny"
ATLAS_DIR = f"derivatives/atlas/tpl-{TEMPLATE}/anat"
CONFOUNDS = "_desc-confounds_timeseries.tsv"


def atlas_file(kind: str, layout: str = "bids") -> str:
    """Study-relative path of an atlas file: kind is "brain", "wm", "ventricles" or a region."""
    if layout == "old":
        tissue = kind in ("brain", "wm", "ventricles")
        return f"atlas/atlas_desc-{kind}_mask.nii.gz" if tissue else f"atlas/atlas_desc-{kind}_roi.nii.gz"
    if kind in ("brain", "wm", "ventricles"):
        return f"{ATLAS_DIR}/tpl-{TEMPLATE}_desc-{kind}_mask.nii.gz"
    return f"{ATLAS_DIR}/tpl-{TEMPLATE}_label-{kind}_mask.nii.gz"


def confounds_file(sub: str, ses: str, run: int) -> str:
    """Study-relative path of a run's confounds table."""
    return f"derivatives/realign/sub-{sub}/ses-{ses}/func/sub-{sub}_ses-{ses}_task-rest_run-{run}{CONFOUNDS}"


def derivative(root: Path, name: str) -> Path:
    folder = root / "derivatives" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_description.json").write_text(
        json.dumps(
            {"Name": name, "BIDSVersion": "1.10.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "tests"}]}
        )
    )
    return folder


def write_nifti(path, data, affine=AFFINE, t_r=None):
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.header.set_xyzt_units("mm", "sec")
    if t_r is not None:
        img.header.set_zooms(img.header.get_zooms()[:3] + (t_r,))
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    nib.save(img, str(path))


def write_atlas(root: Path, regions=("ACC", "M1"), name="tiny-atlas", ext=".nii.gz", layout="bids"):
    meta = json.dumps({"Name": name, "VoxelSize": [2.0, 2.0, 2.5], "Space": "tiny"})
    if layout == "old":
        atlas = root / "atlas"
        atlas.mkdir(parents=True, exist_ok=True)
        (atlas / "atlas.json").write_text(meta)
    else:
        derivative(root, "atlas")
        atlas = root / ATLAS_DIR
        atlas.mkdir(parents=True, exist_ok=True)
        (atlas / f"tpl-{TEMPLATE}_desc-brain_mask.json").write_text(meta)
    brain = np.zeros(SHAPE, np.uint8)
    brain[1:3, 1:4, :] = 1
    wm = np.zeros(SHAPE, np.uint8)
    wm[1, 1, 0] = 1
    vent = np.zeros(SHAPE, np.uint8)
    vent[2, 2, 1] = 1
    masks = {"brain": brain, "wm": wm, "ventricles": vent}
    for desc, m in masks.items():
        write_nifti(root / atlas_file(desc, layout).replace(".nii.gz", ext), m)
    rois = {}
    for i, region in enumerate(regions):
        roi = np.zeros(SHAPE, np.uint8)
        roi[1 + i % 2, 1:3, 1] = 1
        write_nifti(root / atlas_file(region, layout).replace(".nii.gz", ext), roi)
        rois[region] = roi.astype(bool)
    return {"brain": brain.astype(bool), "wm": wm.astype(bool), "ventricles": vent.astype(bool), "rois": rois}


def write_nwb(
    path,
    *,
    sub="01",
    ses="sedated01",
    regions=("ACC", "M1"),
    n_volumes=12,
    n_slices=3,
    t_r=1.0,
    rate=200.0,
    lead_s=2.0,
    tail_s=2.0,
    ch_per_implant=2,
    seed=0,
    session_start=datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
    triggers="events",
    n_volume_triggers=None,
    n_slice_triggers=None,
    trigger_shift=0.0,
    series="acquisition",
    location=None,
    subject_id="default",
    coords="custom",
    hemisphere_column=True,
    device="description",
    dtype="float32",
    conversion=1.0,
    channel_conversion=None,
    starting_time=0.0,
    subject=True,
    ap_shift=0.0,
    probe_series=None,
    chunks=None,
):
    """Write one scan's NWB file; returns what was written (data, triggers on the series' clock).

    series: "acquisition" (acquisition/ElectricalSeries), "renamed" (acquisition/raw),
    "lfp" (processing/ecephys/LFP/ElectricalSeries), "two" (two candidates), "none";
    "per_probe" (acquisition/ElectricalSeriesProbe<region>, one series per implant, as SpikeInterface
    writes a multi-probe recording), "per_probe_lfp" (the same in processing/ecephys/LFP).
    probe_series: with a per-probe layout, fields of the last series to change (``rate``,
    ``starting_time``, ``n_samples``), to write series that disagree.
    chunks: HDF5 chunk shape of the samples, or ``"gzip"``, ``"gzip+shuffle"``, ``"fletcher32"`` for
    chunks of 256 rows through those HDF5 filters (contiguous if None).
    triggers: "events" (EventsTable), "timeseries", "intervals" (TimeIntervals in acquisition), "none".
    """
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ecephys import LFP, ElectricalSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.event import EventsTable
    from pynwb.file import Subject

    rng = np.random.default_rng(seed)
    nwb = NWBFile(
        session_description="tiny scan",
        identifier=f"{sub}-{ses}-{path.name}",
        session_start_time=session_start,
        session_id=ses,
    )
    if subject:
        nwb.subject = Subject(
            subject_id=sub if subject_id == "default" else subject_id,
            species="Rattus norvegicus",
            strain="Long-Evans",
            sex="M",
            age="P90D",
            weight="0.35 kg",
            description="tiny rat",
        )
    for col, desc in (
        ("hemisphere", "left or right"),
        ("ap_mm", "AP"),
        ("ml_mm", "ML"),
        ("dv_mm", "DV"),
        ("probe_electrode", "contact index"),
    ):
        if col == "hemisphere" and not hemisphere_column:
            continue
        if col in ("ap_mm", "ml_mm", "dv_mm") and coords != "custom":
            continue
        nwb.add_electrode_column(name=col, description=desc)
    for region in regions:
        ap, ml, dv, hemi = IMPLANTS[region]
        ap += ap_shift
        kw = {
            "name": f"probe-{region}",
            "description": f"NeuroNexus MRCM{ch_per_implant}-tiny {ch_per_implant}-channel MR-compatible silicon probe",
        }
        if device == "model_name":
            kw["model_name"] = "TinyModel"
        if device == "plain":
            kw["description"] = "a silicon probe"
        dev = nwb.create_device(**kw)
        group = nwb.create_electrode_group(
            name=region, description=f"{region}, {hemi} hemisphere", location=region, device=dev
        )
        for e in range(ch_per_implant):
            row = {
                "group": group,
                "location": (location or {}).get(region, region),
                "x": ap,
                "y": ml,
                "z": dv,
                "rel_x": 0.0,
                "rel_y": 50.0 * e,
                "probe_electrode": e,
            }
            if hemisphere_column:
                row["hemisphere"] = hemi
            if coords == "custom":
                row.update(ap_mm=ap, ml_mm=ml, dv_mm=dv)
            nwb.add_electrode(**row)
    n_ch = len(nwb.electrodes)
    n_samples = int(round((lead_s + n_volumes * t_r + tail_s) * rate))
    volts = (rng.standard_normal((n_samples, n_ch)) * 1e-4).astype(np.float32)
    if dtype == "int16":
        raw = np.round(volts / conversion).astype(np.int16)
    else:
        raw = (volts / conversion).astype(np.float32)
    region_all = nwb.create_electrode_table_region(list(range(n_ch)), "all channels")
    if chunks is not None:
        from hdmf.backends.hdf5.h5_utils import H5DataIO

        filters = {
            "gzip": {"compression": "gzip"},
            "gzip+shuffle": {"compression": "gzip", "shuffle": True},
            "fletcher32": {"fletcher32": True},
        }

        def wrap(a):
            if isinstance(chunks, str):
                return H5DataIO(a, chunks=(min(256, a.shape[0]), a.shape[1]), **filters[chunks])
            return H5DataIO(a, chunks=tuple(min(c, n) for c, n in zip(chunks, a.shape, strict=True)))

    else:
        wrap = None
    es_kw = {
        "data": raw if wrap is None else wrap(raw),
        "electrodes": region_all,
        "rate": rate,
        "starting_time": starting_time,
        "conversion": conversion,
    }
    if channel_conversion is not None:
        es_kw["channel_conversion"] = list(channel_conversion)
    if series == "acquisition":
        nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", **es_kw))
    elif series == "renamed":
        nwb.add_acquisition(ElectricalSeries(name="raw", **es_kw))
    elif series == "lfp":
        mod = nwb.create_processing_module("ecephys", "lfp")
        mod.add(LFP(electrical_series=ElectricalSeries(name="ElectricalSeries", **es_kw)))
    elif series == "two":
        nwb.add_acquisition(ElectricalSeries(name="raw_a", **es_kw))
        nwb.add_acquisition(ElectricalSeries(name="raw_b", **es_kw))
    elif series in ("per_probe", "per_probe_lfp"):
        holder = None
        if series == "per_probe_lfp":
            holder = LFP()
            nwb.create_processing_module("ecephys", "lfp").add(holder)
        for i, region in enumerate(regions):
            cols = list(range(i * ch_per_implant, (i + 1) * ch_per_implant))
            kw = {**es_kw, "data": raw[:, cols] if wrap is None else wrap(raw[:, cols])}
            kw["electrodes"] = nwb.create_electrode_table_region(cols, f"the {region} probe")
            if channel_conversion is not None:
                kw["channel_conversion"] = [channel_conversion[c] for c in cols]
            if i == len(regions) - 1 and probe_series:
                change = dict(probe_series)
                if "n_samples" in change:
                    kw["data"] = raw[: change.pop("n_samples"), cols]
                kw.update(change)
            one = ElectricalSeries(name=f"ElectricalSeriesProbe{region}", **kw)
            if holder is None:
                nwb.add_acquisition(one)
            else:
                holder.add_electrical_series(one)

    vol = lead_s + np.arange(n_volumes) * t_r + trigger_shift
    sl = (vol[:, None] + np.arange(n_slices)[None, :] * t_r / n_slices).reshape(-1)
    if n_volume_triggers is not None:
        vol = vol[:n_volume_triggers]
    if n_slice_triggers is not None:
        sl = sl[:n_slice_triggers]
    for name, times in (("scanner_volumes", vol), ("scanner_slices", sl)):
        session_times = times + starting_time  # files store session-clock times
        if triggers == "events":
            table = EventsTable(name=name, description="scanner TTL triggers")
            for t in session_times:
                table.add_event(timestamp=float(t))
            nwb.add_events_table(table)
        elif triggers == "timeseries":
            nwb.add_acquisition(
                TimeSeries(name=name, data=np.ones(len(times)), unit="n/a", timestamps=session_times, description="TTL")
            )
        elif triggers == "intervals":
            ti = TimeIntervals(name=name, description="TTL")
            for t in session_times:
                ti.add_interval(start_time=float(t), stop_time=float(t) + 0.01)
            nwb.add_acquisition(ti)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return {
        "volts": volts,
        "raw": raw,
        "volume_triggers": vol,
        "slice_triggers": sl,
        "n_samples": n_samples,
        "n_channels": n_ch,
    }


def make_study(
    root,
    *,
    subjects=("01", "02"),
    session="sedated01",
    state="sedated",
    runs=(1, 2),
    regions=("ACC", "M1"),
    n_volumes=12,
    t_r=1.0,
    n_slices=3,
    run_sidecar=True,
    nwb_options=None,
    layout="bids",
):
    """A complete tiny study under ``root``; returns {(sub, ses, run): what was written}.

    ``nwb_options`` maps (sub, run) to extra keyword arguments of :func:`write_nwb`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "tiny study", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
    )
    if layout == "old":
        lines = ["participant_id\tspecies\tstrain\tsex\tage\tweight_g"]
        for i, sub in enumerate(subjects):
            lines.append(f"sub-{sub}\tRattus norvegicus\tLong-Evans\tM\tP9{i}D\t{350 + i}")
    else:
        lines = ["participant_id\tspecies\tstrain\tsex\tage\tweight"]
        for i, sub in enumerate(subjects):
            lines.append(f"sub-{sub}\tRattus norvegicus\tLong-Evans\tM\t9{i}\t{350 + i}")
        (root / "participants.json").write_text(
            json.dumps({"age": {"Description": "age", "Units": "d"}, "weight": {"Description": "weight", "Units": "g"}})
        )
        derivative(root, "realign")
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    slice_timing = [i * t_r / n_slices for i in range(n_slices)]
    (root / "task-rest_bold.json").write_text(
        json.dumps(
            {
                "TaskName": "rest",
                "RepetitionTime": t_r,
                "SliceTiming": slice_timing,
                "EchoTime": 0.015,
                "MagneticFieldStrength": 7,
            }
        )
    )
    atlas = write_atlas(root, regions, layout=layout)
    written = {"atlas": atlas, "scans": {}}
    rng = np.random.default_rng(1)
    for sub in subjects:
        sdir = root / f"sub-{sub}"
        sdir.mkdir(exist_ok=True)
        (sdir / f"sub-{sub}_sessions.tsv").write_text(
            f"session_id\tacq_time\tstate\nses-{session}\t2024-03-01T10:00:00\t{state}\n"
        )
        func = sdir / f"ses-{session}" / "func"
        ecephys = sdir / f"ses-{session}" / "ecephys"
        func.mkdir(parents=True, exist_ok=True)
        ecephys.mkdir(parents=True, exist_ok=True)
        for run in runs:
            prefix = f"sub-{sub}_ses-{session}_task-rest_run-{run}"
            bold = rng.standard_normal((*SHAPE, n_volumes)).astype(np.float32)
            write_nifti(func / f"{prefix}_bold.nii.gz", bold, t_r=t_r)
            if run_sidecar:
                (func / f"{prefix}_bold.json").write_text(
                    json.dumps({"RepetitionTime": t_r, "SliceTiming": slice_timing})
                )
            motion = rng.standard_normal((n_volumes, 6)) * 0.01
            if layout == "old":
                motion_path = func / f"{prefix}_motion.tsv"
                header = MOTION_HEADER
                table = motion
            else:
                motion_path = root / confounds_file(sub, session, run)
                motion_path.parent.mkdir(parents=True, exist_ok=True)
                header = "global_signal\t" + MOTION_HEADER + "\tframewise_displacement"
                table = np.column_stack([rng.standard_normal(n_volumes), motion, np.abs(motion).sum(axis=1)])
            np.savetxt(motion_path, table, delimiter="\t", header=header, comments="", fmt="%.6f")
            if layout != "old":  # fMRIPrep writes n/a for the first volume's FD
                lines = motion_path.read_text().splitlines()
                lines[1] = "\t".join(lines[1].split("\t")[:-1] + ["n/a"])
                motion_path.write_text("\n".join(lines) + "\n")
            opts = dict(
                sub=sub,
                ses=session,
                regions=regions,
                n_volumes=n_volumes,
                n_slices=n_slices,
                t_r=t_r,
                seed=run + 10 * int(sub),
            )
            opts.update((nwb_options or {}).get((sub, run), {}))
            nwb = write_nwb(ecephys / f"{prefix}_ecephys.nwb", **opts)
            written["scans"][(sub, session, run)] = {
                "prefix": prefix,
                "bold": func / f"{prefix}_bold.nii.gz",
                "bold_data": bold,
                "motion": np.round(motion, 6),
                "motion_path": motion_path,
                "sidecar": func / f"{prefix}_bold.json",
                "nwb": ecephys / f"{prefix}_ecephys.nwb",
                **nwb,
            }
    return written
