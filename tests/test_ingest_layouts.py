"""fMRI as labs preprocess it: RABIES and fMRIPrep outputs, SPM/FSL motion, atlas label images.

Each layout is built in miniature with the folder names, file names and columns those tools write
(RABIES: from its source, ``confound_correction_pkg/main_wf.py`` and ``preprocess_pkg/hmc.py``),
around a raw BIDS-like folder holding the NWB recordings, then read and ingested.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ingest_fixtures import SHAPE, make_study, write_nifti  # noqa: E402

from lfpbold.ingest import IngestError, read_study  # noqa: E402
from lfpbold.ingest.labels import read_lut  # noqa: E402
from lfpbold.ingest.layouts import detect_layout  # noqa: E402
from lfpbold.ingest.motion import read_motion_file  # noqa: E402
from lfpbold.ingest.regions import read_aliases  # noqa: E402

SES = "sedated01"
RUNS = (1, 2)
N_VOLUMES = 12
# trans_x..rot_z (mm, rad) of one volume, and the same motion as each tool writes it
TRUE = np.array([0.1, -0.2, 0.3, 0.01, -0.02, 0.03])


def prefix(run, sub="01"):
    return f"sub-{sub}_ses-{SES}_task-rest_run-{run}"


# ---------------------------------------------------------------- motion files


def _motion_rows(n=N_VOLUMES):
    return TRUE[None, :] * np.arange(1, n + 1)[:, None]


@pytest.mark.parametrize("kind", ["spm", "fsl", "fmriprep", "rabies"])
def test_motion_files_converted_to_trans_rot(tmp_path, kind):
    m = _motion_rows()
    if kind == "spm":  # x y z (mm), pitch roll yaw (rad)
        path = tmp_path / "rp_sub-01_task-rest_bold.txt"
        np.savetxt(path, m, fmt="%.8e")
    elif kind == "fsl":  # mcflirt: rotations (rad), then translations (mm)
        path = tmp_path / "sub-01_task-rest_bold_mcf.par"
        np.savetxt(path, m[:, [3, 4, 5, 0, 1, 2]], fmt="%.8f", delimiter="  ")
    elif kind == "fmriprep":
        path = tmp_path / "sub-01_task-rest_desc-confounds_timeseries.tsv"
        fd = ["n/a"] + ["0.5"] * (N_VOLUMES - 1)
        cols = ["global_signal", "csf", "white_matter", "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
        lines = ["\t".join([*cols, "framewise_displacement"])]
        lines += ["\t".join(["1", "2", "3", *map(str, row), f]) for row, f in zip(m, fd, strict=True)]
        path.write_text("\n".join(lines) + "\n")
    else:  # RABIES motion_params_csv: pandas index, then the 24 Friston parameters
        path = tmp_path / "sub-01_task-rest_bold_motion_params.csv"
        header = ["", "mov1", "mov2", "mov3", "rot1", "rot2", "rot3", "mov1_der", "mov2_der", "mov3_der"]
        lines = [",".join(header)]
        lines += [",".join([str(i), *map(str, row), "0", "0", "0"]) for i, row in enumerate(m)]
        path.write_text("\n".join(lines) + "\n")
    motion, source = read_motion_file(path, N_VOLUMES)
    np.testing.assert_allclose(motion, m, rtol=1e-6)
    assert source["format"] == kind and source["path"] == str(path)
    if kind == "fsl":
        assert source["columns"].startswith("rot_x") and source["units"].startswith("rad")
    if kind == "fmriprep":
        assert source["framewise_displacement"][:2] == [0.0, 0.5]


def test_motion_file_of_the_wrong_length(tmp_path):
    path = tmp_path / "rp_x_bold.txt"
    np.savetxt(path, _motion_rows(10))
    with pytest.raises(IngestError, match="10 rows but the BOLD run has 12 volumes"):
        read_motion_file(path, N_VOLUMES)


# ---------------------------------------------------------------- lookup tables and aliases

LUTS = {
    "atlas_dseg.tsv": "index\tname\tabbreviation\n1\tCingulate cortex area 1\tCg1\n2\tPrimary motor cortex\tM1\n",
    "freesurfer.lut": "# FreeSurfer colour table\n1  Cingulate_cortex_area_1  220 20 10 0\n"
    "2  Primary_motor_cortex 0 0 1 0\n",
    "fsleyes.lut": "1 0.8 0.1 0.1 Cingulate cortex area 1\n2 0.1 0.1 0.8 Primary motor cortex\n",
    "itksnap.txt": '# ITK-SNAP Label Description File\n    0     0    0    0        0  0  0    "Clear Label"\n'
    '    1   255    0    0        1  1  1    "Cingulate cortex area 1"\n'
    '    2     0  255    0        1  1  1    "Primary motor cortex"\n',
    "DSURQE_mapping.csv": "Structure,right label,left label\n"
    "Cingulate cortex area 1,1,101\nPrimary motor cortex,2,102\n",
}


@pytest.mark.parametrize("name", list(LUTS))
def test_lookup_tables_in_every_form(tmp_path, name):
    path = tmp_path / name
    path.write_text(LUTS[name])
    table = read_lut(path)
    aliases = read_aliases()
    assert aliases[_norm(table[1])] == "ACC" and aliases[_norm(table[2])] == "M1"
    if name.startswith("DSURQE"):
        assert table[101] == "Cingulate cortex area 1"


def _norm(name):
    from lfpbold.ingest.regions import normalise

    return normalise(name)


def test_lab_alias_table_extends_the_default(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "region_aliases.tsv").write_text("region\talias\nRSC\tRetrosplenial granular cortex\n")
    aliases = read_aliases(tmp_path)
    assert aliases["retrosplenial granular cortex"] == "RSC" and aliases["cg1"] == "ACC"
    bad = tmp_path / "bad.tsv"
    bad.write_text("region\talias\nthis-is-far-too-long-a-key\tx\n")
    with pytest.raises(IngestError, match="at most 16"):
        read_aliases(tmp_path, bad)


# ---------------------------------------------------------------- miniature layouts


def _labels(atlas):
    """A label image: ACC's ROI voxels as label 1, M1's as 2, the rest of the brain 7 (no region)."""
    labels = np.where(atlas["brain"], 7, 0).astype(np.int16)
    labels[atlas["rois"]["M1"]] = 2
    labels[atlas["rois"]["ACC"]] = 1
    return labels


LUT = "index\tname\n1\tCingulate cortex area 1\n2\tPrimary motor cortex\n7\tRest of brain\n"


def _raw_study(root, **kw):
    """The raw BIDS-like folder with the NWB files; the raw BOLD and motion are removed (the
    preprocessing tool's outputs replace them), the sidecars stay (RepetitionTime)."""
    written = make_study(root, subjects=("01",), runs=RUNS, n_volumes=N_VOLUMES, layout="old", **kw)
    for run in RUNS:
        func = root / "sub-01" / f"ses-{SES}" / "func"
        (func / f"{prefix(run)}_bold.nii.gz").unlink()
        (func / f"{prefix(run)}_motion.tsv").unlink()
    shutil.rmtree(root / "atlas")
    return written


def build_rabies(root, *, old=False):
    written = _raw_study(root)
    atlas = written["atlas"]
    out = root / "derivatives" / "rabies"
    sink = out / "bold_datasink"
    for target, data in (
        ("commonspace_mask", atlas["brain"]),
        ("commonspace_WM_mask", atlas["wm"]),
        ("commonspace_CSF_mask", atlas["ventricles"]),
        ("commonspace_labels", _labels(atlas)),
    ):
        folder = sink / target / "_scan_info_subject_id01.session1"
        folder.mkdir(parents=True)
        write_nifti(folder / f"sub-01_ses-{SES}_T1w_{target}.nii.gz", data.astype(np.uint8))
    (root / "code").mkdir(exist_ok=True)
    (root / "code" / "atlas_labels.tsv").write_text(LUT)
    motion_sink, fd_sink = (
        (("confounds_datasink", "confounds_csv"), "FD_csv")
        if old
        else (
            ("motion_datasink", "motion_params_csv"),
            "FD_csv",
        )
    )
    for run in RUNS:
        scan = f"{prefix(run)}_bold"
        split = f"_split_name_{scan}"
        bold_dir = sink / "commonspace_bold" / split
        bold_dir.mkdir(parents=True)
        w = written["scans"][("01", SES, run)]
        write_nifti(bold_dir / f"{scan}_RAS_combined.nii.gz", w["bold_data"], t_r=1.0)
        mdir = out / motion_sink[0] / motion_sink[1] / split
        mdir.mkdir(parents=True)
        m = _motion_rows() * run
        suffix = "_confounds.csv" if old else "_motion_params.csv"
        lines = [",".join(["", "mov1", "mov2", "mov3", "rot1", "rot2", "rot3"])]
        lines += [",".join([str(i), *map(str, row)]) for i, row in enumerate(m)]
        (mdir / f"{scan}{suffix}").write_text("\n".join(lines) + "\n")
        fdir = out / motion_sink[0] / fd_sink / split
        fdir.mkdir(parents=True)
        col = "Mean" if old else "MeanFD"
        fd = "\n".join(f"{0.01 * i},{0.02 * i}" for i in range(N_VOLUMES))
        (fdir / f"{scan}_FD_file.csv").write_text(f"{col},{'Max' if old else 'MaxFD'}\n{fd}\n")
    return written


def build_fmriprep(root):
    written = _raw_study(root, nwb_options={("01", 2): {"location": {"ACC": "anterior cingulate cortex"}}})
    atlas = written["atlas"]
    out = root / "derivatives" / "fmriprep"
    (out).mkdir(parents=True)
    (out / "dataset_description.json").write_text('{"Name": "fMRIPrep outputs", "DatasetType": "derivative"}')
    tpl = out / "tpl-tiny"
    tpl.mkdir()
    write_nifti(tpl / "tpl-tiny_res-1_desc-brain_mask.nii.gz", atlas["brain"].astype(np.uint8))
    write_nifti(tpl / "tpl-tiny_res-1_label-WM_probseg.nii.gz", atlas["wm"].astype(np.float32) * 0.9)
    write_nifti(tpl / "tpl-tiny_res-1_label-CSF_probseg.nii.gz", atlas["ventricles"].astype(np.float32) * 0.8)
    write_nifti(tpl / "tpl-tiny_res-1_atlas-tiny_dseg.nii.gz", _labels(atlas))
    (tpl / "tpl-tiny_res-1_atlas-tiny_dseg.tsv").write_text(LUT)
    func = out / "sub-01" / f"ses-{SES}" / "func"
    func.mkdir(parents=True)
    cols = ["global_signal", "csf", "white_matter", "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    for run in RUNS:
        w = written["scans"][("01", SES, run)]
        p = prefix(run)
        write_nifti(func / f"{p}_space-tiny_desc-preproc_bold.nii.gz", w["bold_data"], t_r=1.0)
        write_nifti(func / f"{p}_space-tiny_desc-brain_mask.nii.gz", atlas["brain"].astype(np.uint8))
        (func / f"{p}_space-tiny_desc-preproc_bold.json").write_text('{"RepetitionTime": 1.0}')
        m = _motion_rows() * run
        rows = ["\t".join([*cols, "framewise_displacement"])]
        rows += ["\t".join(["1", "2", "3", *map(str, r), "n/a" if i == 0 else "0.1"]) for i, r in enumerate(m)]
        (func / f"{p}_desc-confounds_timeseries.tsv").write_text("\n".join(rows) + "\n")
    return written


def _check(records, written, kind):
    assert records.errors == [], [str(e) for e in records.errors]
    assert sorted(s.key["run"] for s in records.scans) == list(RUNS)
    assert {r["region"] for r in records.rois} == {"ACC", "M1"}  # label 7 names no region
    rois = {r["region"]: r["roi_mask"] for r in records.rois}
    np.testing.assert_array_equal(rois["ACC"], written["atlas"]["rois"]["ACC"])
    np.testing.assert_array_equal(records.atlas["wm_mask"], written["atlas"]["wm"])
    for scan in records.scans:
        run = scan.key["run"]
        np.testing.assert_allclose(scan.fmri["motion"], _motion_rows() * run, rtol=1e-9)
        assert scan.fmri["motion_source"]["format"] == kind
        assert len(scan.fmri["motion_source"]["framewise_displacement"]) == N_VOLUMES
        assert {c["region"] for c in scan.channels} == {"ACC", "M1"}


@pytest.mark.parametrize("old", [False, True], ids=["rabies", "rabies-before-0.5"])
def test_rabies_outputs_are_read(tmp_path, old):
    root = tmp_path / "study"
    written = build_rabies(root, old=old)
    assert detect_layout(root) == "rabies"
    records = read_study(root)
    _check(records, written, "rabies")
    assert "commonspace_bold" in records.scans[0].fmri["bold_path"]
    assert records.scans[0].fmri["motion_source"]["framewise_displacement"][2] == pytest.approx(0.02)


def test_fmriprep_outputs_are_read(tmp_path):
    root = tmp_path / "study"
    written = build_fmriprep(root)
    assert detect_layout(root) == "fmriprep"
    records = read_study(root, layout="fmriprep")
    _check(records, written, "fmriprep")  # run 2's electrodes say "anterior cingulate cortex"
    assert records.atlas["atlas"] == "tpl-tiny"


def test_rabies_run_without_nwb_and_missing_lut(tmp_path):
    root = tmp_path / "study"
    build_rabies(root)
    (root / "sub-01" / f"ses-{SES}" / "ecephys" / f"{prefix(2)}_ecephys.nwb").unlink()
    records = read_study(root)
    assert [s.key["run"] for s in records.scans] == [1]
    assert any(e.field == "file" and "has no NWB file" in e.reason for e in records.errors)
    (root / "code" / "atlas_labels.tsv").unlink()
    with pytest.raises(IngestError, match="lookup table: missing"):
        read_study(root)


def test_spm_motion_in_a_bids_study(tmp_path):
    root = tmp_path / "study"
    make_study(root, subjects=("01",), runs=(1,), n_volumes=N_VOLUMES, layout="old")  # motion beside the BOLD
    func = root / "sub-01" / f"ses-{SES}" / "func"
    (func / f"{prefix(1)}_motion.tsv").unlink()
    np.savetxt(func / f"rp_{prefix(1)}_bold.txt", _motion_rows())
    records = read_study(root)
    assert records.errors == [] and detect_layout(root) == "bids"
    np.testing.assert_allclose(records.scans[0].fmri["motion"], _motion_rows())
    assert records.scans[0].fmri["motion_source"]["format"] == "spm"


def test_rabies_study_ingested(tmp_path, embedded_db):
    from lfpbold.pipeline import ingest_study
    from lfpbold.schemas import acquisition as acq

    root = tmp_path / "study"
    build_rabies(root)
    report = ingest_study(root, layout="rabies")
    assert report.errors == [] and len(report.inserted) == 2
    row = (acq.FMRIRun & {"subject": "01", "run": 2}).fetch1()
    assert row["motion_source"]["format"] == "rabies"
    np.testing.assert_allclose(row["motion"], _motion_rows() * 2)
    assert {r["region"] for r in acq.Atlas.ROI.to_dicts()} == {"ACC", "M1"}
    assert len(acq.LFPRecording.Channel()) == 8
    assert SHAPE == tuple(acq.Atlas.fetch1("shape"))

    # the BOLD side runs on RABIES's commonspace BOLD (the tiny LFP's 200 Hz is too slow for band power)
    from lfpbold.pipeline import populate
    from lfpbold.schemas import analysis

    populate(display_progress=False)
    assert len(analysis.PreprocessedBold()) == 2 and len(analysis.CleanLFP()) == 4


def test_fmriprep_brain_mask_from_the_runs_when_the_template_has_none(tmp_path):
    root = tmp_path / "study"
    written = build_fmriprep(root)
    (root / "derivatives" / "fmriprep" / "tpl-tiny" / "tpl-tiny_res-1_desc-brain_mask.nii.gz").unlink()
    records = read_study(root)
    assert records.errors == []
    np.testing.assert_array_equal(records.atlas["brain_mask"], written["atlas"]["brain"])
    assert records.atlas["voxel_size_mm"] == pytest.approx([2.0, 2.0, 2.5])


def test_cli_ingest_with_layout_and_derivatives(tmp_path, embedded_db):
    from click.testing import CliRunner

    from lfpbold.cli import main
    from lfpbold.schemas import acquisition as acq

    root = tmp_path / "study"
    build_fmriprep(root)
    elsewhere = tmp_path / "fmriprep-out"
    shutil.move(root / "derivatives" / "fmriprep", elsewhere)  # the outputs kept outside the study
    aliases = tmp_path / "lab_aliases.tsv"
    aliases.write_text("region\talias\nM1\tRest of brain\n")  # a lab's (odd) extra name for M1
    args = ["--prefix", embedded_db.prefix, "ingest", str(root), "--layout", "fmriprep"]
    r = CliRunner().invoke(main, [*args, "--derivatives", str(elsewhere), "--region-aliases", str(aliases)])
    assert r.exit_code == 0, r.output
    assert "2 scan(s) inserted" in r.output
    m1 = (acq.Atlas.ROI & {"region": "M1"}).fetch1()
    assert m1["roi_path"].endswith("#2,7")  # labels 2 and 7 joined into M1
    r = CliRunner().invoke(main, [*args])  # without --derivatives the default folder is missing
    assert r.exit_code != 0 and "derivatives/fmriprep: file: missing" in r.output, r.output


def _drop_rabies_bold(root):
    shutil.rmtree(
        root / "derivatives" / "rabies" / "bold_datasink" / "commonspace_bold" / f"_split_name_{prefix(2)}_bold"
    )


def _short_rabies_motion(root):
    path = next((root / "derivatives" / "rabies" / "motion_datasink").rglob(f"{prefix(2)}_bold_motion_params.csv"))
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")


def _rabies_fd_column(root):
    path = next((root / "derivatives" / "rabies" / "motion_datasink").rglob(f"{prefix(2)}_bold_FD_file.csv"))
    path.write_text(path.read_text().replace("MeanFD", "meanfd"))


def _fmriprep_no_rot(root):
    path = next((root / "derivatives" / "fmriprep").rglob(f"{prefix(2)}_desc-confounds_timeseries.tsv"))
    path.write_text(path.read_text().replace("rot_z", "rotz"))


BAD_RUNS = {
    "rabies run missing": (
        build_rabies,
        _drop_rabies_bold,
        f"derivatives/rabies/bold_datasink/commonspace_bold/{prefix(2)}_bold",
        "file",
        "has no BOLD run",
    ),
    "rabies motion short": (build_rabies, _short_rabies_motion, "_motion_params.csv", "rows", "11 rows but"),
    "rabies FD column": (build_rabies, _rabies_fd_column, "_FD_file.csv", "MeanFD", "column missing"),
    "fmriprep columns": (build_fmriprep, _fmriprep_no_rot, "_desc-confounds_timeseries.tsv", "columns", "rot_z"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_in_a_layout_is_left_out(tmp_path, case):
    build, damage, path_end, field, reason = BAD_RUNS[case]
    root = tmp_path / "study"
    build(root)
    damage(root)
    records = read_study(root)
    assert [s.key["run"] for s in records.scans] == [1]
    found = [e for e in records.errors if e.path.endswith(path_end) and e.field == field]
    assert found and reason in found[0].reason, [str(e) for e in records.errors]


def test_label_image_problems_stop_the_study(tmp_path):
    root = tmp_path / "study"
    written = build_rabies(root)
    (root / "code" / "atlas_labels.tsv").write_text(
        "index\tname\n1\tCingulate cortex area 1\n2\tPrimary motor cortex\n"
    )
    with pytest.raises(IngestError, match=r"labels \[7\] are in .* but not in the lookup table"):
        read_study(root)
    (root / "code" / "atlas_labels.tsv").write_text("index\tname\n1\tsomething\n2\telse\n7\tmore\n")
    with pytest.raises(IngestError, match="no label names a known region"):
        read_study(root)
    (root / "code" / "atlas_labels.tsv").write_text(LUT)
    labels = next((root / "derivatives" / "rabies" / "bold_datasink" / "commonspace_labels").rglob("*.nii.gz"))
    write_nifti(labels, np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(IngestError, match=r"shape: \[3, 3, 3\] but the brain mask is \[4, 5, 3\]"):
        read_study(root)
    assert written  # the raw folder is untouched by any of this
