"""Writers of the study folder's files: JSON and TSV sidecars, NIfTI images, the atlas, the
confounds tables and NWB recordings, each where BIDS puts it.

Each writer knows its format and the file's fixed metadata (NIfTI headers, atlas.json, the NWB
file's subject, probes and trigger tables); :func:`lfpbold.simulate.study.simulate_study` decides
which files there are and what data goes in, in the layout ``lfpbold ingest`` reads.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
import warnings
from pathlib import Path

import numpy as np
from hdmf.data_utils import GenericDataChunkIterator

from lfpbold.simulate.anatomy import Atlas
from lfpbold.simulate.lfp import LfpStream
from lfpbold.simulate.signals import slice_onsets, volume_onsets
from lfpbold.simulate.sizes import Size

__all__ = [
    "write_json",
    "write_tsv",
    "format_number",
    "write_nifti",
    "write_atlas",
    "write_truth_maps",
    "write_confounds",
    "write_bidsignore",
    "derivative_description",
    "write_nwb",
]


def write_json(path: Path, obj) -> None:
    """``obj`` as JSON, indented by 2, with a final newline."""
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_tsv(path: Path, header, rows) -> None:
    """A tab-separated table with a header line; values written with ``str``."""
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def format_number(x: float) -> str:
    """The shortest decimal that reads back as the same float (no exponent, no trailing zeros).

    Examples
    --------
    >>> format_number(0.1), format_number(-2.0), format_number(1.5e-08)
    ('0.1', '-2', '0.000000015')
    """
    return np.format_float_positional(float(x), unique=True, trim="-")


def write_nifti(path: Path, data, atlas: Atlas, *, t_r=None) -> None:
    """A NIfTI-1 image on the atlas grid: qform and sform set, mm and s; with ``t_r``, the slice timing too."""
    import nibabel as nib

    img = nib.Nifti1Image(data, atlas.affine)
    hdr = img.header
    hdr.set_qform(atlas.affine, code=1)
    hdr.set_sform(atlas.affine, code=2)
    hdr.set_xyzt_units("mm", "sec")
    if t_r is not None:
        hdr.set_zooms(tuple(atlas.size.voxel_mm) + (float(t_r),))
        hdr.set_dim_info(freq=0, phase=1, slice=2)
        hdr.set_slice_duration(t_r / atlas.size.n_slices)
        hdr.set_slice_times(atlas.size.slice_timing)
    nib.save(img, path)


#: The simulated atlas's template label: ``derivatives/atlas/tpl-simrat/anat/tpl-simrat_*``.
TEMPLATE = "simrat"
#: What the study's ``.bidsignore`` lists, and why (BIDS 1.11 has no rule for these files).
BIDSIGNORE = {
    "**/ecephys": "NWB recordings of the implants: microelectrode ephys is BEP032, not yet in BIDS",
    "ground_truth.json": "the simulator's ground truth (simulated studies only)",
    "truth": "the simulator's true network maps (simulated studies only)",
}
#: fMRIPrep's confounds tables have no rule in the BIDS derivatives schema yet.
DERIVATIVES_BIDSIGNORE = {"*_desc-confounds_timeseries.*": "fMRIPrep-style confounds tables (no BIDS rule yet)"}


def derivative_description(folder: Path, name: str, description: str, version: str) -> None:
    """A derivatives dataset's ``dataset_description.json``: DatasetType derivative, GeneratedBy lfpbold."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(
        folder / "dataset_description.json",
        {
            "Name": name,
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "lfpbold simulate", "Version": version, "Description": description}],
        },
    )


def write_bidsignore(folder: Path, patterns: dict) -> None:
    """A ``.bidsignore``: one pattern a line, each after a comment saying why."""
    lines = []
    for pattern, why in patterns.items():
        lines += [f"# {why}", pattern]
    (folder / ".bidsignore").write_text("\n".join(lines) + "\n")


def write_atlas(folder: Path, atlas: Atlas, *, version: str = "") -> Path:
    """The atlas as a TemplateFlow-style derivatives dataset; returns the template's ``anat/`` folder.

    ``folder/tpl-simrat/anat/tpl-simrat_desc-{brain,wm,ventricles}_mask.nii.gz`` (the brain mask's
    JSON sidecar gives the atlas name, voxel size and space) and one ``tpl-simrat_label-<REGION>_mask``
    per region.
    """
    u8 = lambda m: m.astype(np.uint8)  # noqa: E731
    derivative_description(folder, "lfpbold simulated rat atlas", "template space, tissue masks and ROIs", version)
    anat = folder / f"tpl-{TEMPLATE}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    stem = f"tpl-{TEMPLATE}"
    write_nifti(anat / f"{stem}_desc-brain_mask.nii.gz", u8(atlas.brain), atlas)
    write_nifti(anat / f"{stem}_desc-wm_mask.nii.gz", u8(atlas.wm), atlas)
    write_nifti(anat / f"{stem}_desc-ventricles_mask.nii.gz", u8(atlas.ventricles), atlas)
    for r in atlas.rois:
        write_nifti(anat / f"{stem}_label-{r}_mask.nii.gz", u8(atlas.rois[r]), atlas)
    write_json(
        anat / f"{stem}_desc-brain_mask.json",
        {
            "Name": "lfpbold simulated rat atlas",
            "VoxelSize": list(atlas.size.voxel_mm),
            "Space": "simulated rat stereotaxic: x = ML (right +), y = AP from bregma (anterior +), "
            "z = DV from the skull surface (dorsal +), mm; coronal slices along the third array axis",
            "BrainVoxels": int(atlas.brain.sum()),
        },
    )
    return anat


def write_truth_maps(folder: Path, atlas: Atlas) -> None:
    """Each region's true network pattern, ``folder/truth_desc-<REGION>_network.nii.gz``."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in atlas.rois:
        write_nifti(folder / f"truth_desc-{r}_network.nii.gz", atlas.patterns[r], atlas)


def write_confounds(path: Path, motion, fd) -> None:
    """A run's head-motion estimates as fMRIPrep writes them: ``*_desc-confounds_timeseries.tsv`` + JSON.

    Columns trans_x..rot_z (mm, radians) and framewise_displacement (mm; ``n/a`` for the first
    volume, as fMRIPrep has it).
    """
    from lfpbold.constants import MOTION_COLUMNS

    rows = [
        [format_number(v) for v in row] + ["n/a" if i == 0 else format_number(fd[i])]
        for i, row in enumerate(np.asarray(motion))
    ]
    write_tsv(path, [*MOTION_COLUMNS, "framewise_displacement"], rows)
    units = {c: ("mm" if c.startswith("trans") else "rad") for c in MOTION_COLUMNS}
    write_json(
        path.with_name(path.name.replace(".tsv", ".json")),
        {
            **{c: {"Description": f"head motion estimate, {c}", "Units": u} for c, u in units.items()},
            "framewise_displacement": {
                "Description": "framewise displacement (Power et al. 2012) on a sphere of the head radius",
                "Units": "mm",
            },
        },
    )


def write_nwb(
    path: Path,
    *,
    stream: LfpStream,
    atlas: Atlas,
    subject: str,
    session: str,
    state: str,
    run: int,
    start: _dt.datetime,
    weight_g: float,
    scan_seed: int,
    size: Size,
) -> None:
    """One scan's NWB file: subject, probes and electrodes, the raw LFP (streamed) and the scanner triggers.

    The identifier is a UUID derived from the scan's seed and place in the study, so a study
    re-simulated from one seed names its recordings the same. (The HDF5 object ids pynwb draws
    for each container are random.)
    """
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.device import Device, DeviceModel
    from pynwb.ecephys import ElectricalSeries
    from pynwb.event import EventsTable, TimestampVectorData
    from pynwb.file import Subject

    nwb = NWBFile(
        session_description=f"Simulated resting-state {state} scan, simultaneous LFP and fMRI (lfpbold simulate)",
        identifier=str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"lfpbold-sim/{scan_seed}/sub-{subject}/ses-{session}/run-{run}")
        ),
        session_start_time=start,
        file_create_date=[start],
        session_id=session,
        experiment_description="Simulated study after Tu, Cramer & Zhang (2024), eLife 13:RP95680.",
        lab="lfpbold simulator",
        institution="none (simulated)",
        subject=Subject(
            subject_id=subject,
            species="Rattus norvegicus",
            strain="Long-Evans",
            sex="M",
            age="P90D",
            weight=f"{weight_g / 1000:.3f} kg",
            description="Simulated adult male Long-Evans rat",
        ),
    )
    nch = size.n_channels
    model = DeviceModel(
        name=size.probe_model,
        manufacturer="NeuroNexus",
        description=(
            f"NeuroNexus {size.probe_model}: {nch}-channel MR-compatible silicon probe"
            + (" (simulated reduction of the MRCM16LP)" if nch != 16 else "")
        ),
    )
    nwb.add_device_model(model)
    for col, desc in [
        ("hemisphere", "implanted hemisphere (right/left)"),
        ("ap_mm", "implant tip AP from bregma, mm (anterior positive)"),
        ("ml_mm", "implant tip ML from midline, mm (right positive)"),
        ("dv_mm", "implant tip DV from the skull surface, mm (dorsal positive)"),
        ("probe_electrode", "index of the contact on the probe (0 = at the tip)"),
    ]:
        nwb.add_electrode_column(name=col, description=desc)
    for region in stream.regions:
        imp = atlas.implants[region]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            dev = Device(
                name=f"probe-{region}",
                manufacturer="NeuroNexus",
                model=model,
                description=(
                    "NeuroNexus MRCM16LP 16-channel MR-compatible silicon probe"
                    if nch == 16
                    else f"NeuroNexus {size.probe_model} {nch}-channel MR-compatible silicon probe (simulated)"
                ),
            )
        nwb.add_device(dev)
        group = nwb.create_electrode_group(
            name=region,
            location=region,
            device=dev,
            description=(
                f"{region} implant, {imp['hemisphere']} hemisphere, tip AP {imp['ap']} ML {imp['ml']} DV {imp['dv']} mm"
            ),
        )
        for k in range(nch):
            nwb.add_electrode(
                x=float(imp["ap"]),
                y=float(imp["ml"]),
                z=float(imp["dv"]),
                location=region,
                group=group,
                rel_x=0.0,
                rel_y=float(k * size.contact_spacing_um),
                hemisphere=imp["hemisphere"],
                ap_mm=float(imp["ap"]),
                ml_mm=float(imp["ml"]),
                dv_mm=float(imp["dv"]),
                probe_electrode=k,
                reference="cerebellum",
            )
    region_all = nwb.create_electrode_table_region(list(range(stream.n_channels)), "all channels")
    chunk = (min(int(round(size.fs)), stream.n_times), 1)
    buffer = (min(10 * chunk[0], stream.n_times), stream.n_channels)
    data = H5DataIO(_LfpIterator(stream, chunk_shape=chunk, buffer_shape=buffer))
    nwb.add_acquisition(
        ElectricalSeries(
            name="ElectricalSeries",
            data=data,
            electrodes=region_all,
            rate=float(size.fs),
            starting_time=0.0,
            conversion=1.0,
            filtering="none (raw, unfiltered; TDT RZ2 style)",
            description="Raw LFP, volts; channels ordered implant by implant, contact 0 (tip) first",
        )
    )
    vols = volume_onsets(size)
    slices = slice_onsets(size)
    res = 1.0 / size.fs
    nwb.add_events_table(
        EventsTable(
            name="scanner_volumes",
            description="Scanner TTL triggers: one per EPI volume (onset), seconds on the ElectricalSeries clock",
            source_description="MR scanner TTL output recorded by the acquisition system",
            columns=[TimestampVectorData(name="timestamp", description="volume onset (s)", data=vols, resolution=res)],
        )
    )
    nwb.add_events_table(
        EventsTable(
            name="scanner_slices",
            description="Scanner TTL triggers: one per slice acquisition, seconds on the ElectricalSeries clock",
            source_description="MR scanner TTL output recorded by the acquisition system",
            columns=[TimestampVectorData(name="timestamp", description="slice onset (s)", data=slices, resolution=res)],
        )
    )
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


class _LfpIterator(GenericDataChunkIterator):
    """Hands :class:`LfpStream` buffers (10 s, all channels) to HDF5; chunks are 1 s x 1 channel."""

    def __init__(self, stream: LfpStream, **kwargs):
        self._stream = stream
        super().__init__(**kwargs)

    def _get_data(self, selection):
        return self._stream.read(selection[0].start, selection[0].stop)[:, selection[1]]

    def _get_maxshape(self):
        return (self._stream.n_times, self._stream.n_channels)

    def _get_dtype(self):
        return np.dtype("float32")
