"""Tests of lfpbold.ingest: records match what was written, every validation names file and field,
a bad scan is left out while the good ones come back, and the lazy readers return the right samples.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ingest_fixtures import (  # noqa: E402
    AFFINE,
    IMPLANTS,
    SHAPE,
    atlas_file,
    confounds_file,
    make_study,
    write_nifti,
    write_nwb,
)

from lfpbold.ingest import IngestError, read_bold, read_lfp, read_study, sha256  # noqa: E402
from lfpbold.ingest import nwb as nwb_module  # noqa: E402

SES = "sedated01"
ALL_KEYS = {("01", SES, 1), ("01", SES, 2), ("02", SES, 1), ("02", SES, 2)}


def rel(key, kind):
    sub, ses, run = key
    if kind == "motion.tsv":  # the run's head-motion estimates: a confounds table in derivatives/
        return confounds_file(sub, ses, run)
    prefix = f"sub-{sub}_ses-{ses}_task-rest_run-{run}"
    folder = "ecephys" if kind == "ecephys.nwb" else "func"
    return f"sub-{sub}/ses-{ses}/{folder}/{prefix}_{kind}"


def keys(records):
    return {(s.key["subject"], s.key["session"], s.key["run"]) for s in records.scans}


def only_bad(records, bad, path, field, reason=None):
    """The bad scans are left out, the others returned, and an error names ``path`` and ``field``."""
    assert keys(records) == ALL_KEYS - set(bad)
    found = [e for e in records.errors if e.path == path and e.field == field]
    assert found, f"no error for {path} / {field}; got {[str(e) for e in records.errors]}"
    if reason is not None:
        assert reason in found[0].reason, str(found[0])
    return found[0]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("good")
    written = make_study(root)
    return root, written, read_study(root)


@pytest.fixture
def study(tmp_path):
    return tmp_path / "study"


# ---------------------------------------------------------------- records match what was written


def test_good_study_has_every_scan_and_no_error(good):
    _, _, records = good
    assert records.errors == []
    assert keys(records) == ALL_KEYS
    assert records.name == "tiny study"


def test_subjects_sessions_from_tsv(good):
    root, _, records = good
    subjects = {s["subject"]: s for s in records.subjects}
    assert set(subjects) == {"01", "02"}
    assert subjects["02"] == {
        "subject": "02",
        "species": "Rattus norvegicus",
        "strain": "Long-Evans",
        "sex": "M",
        "age": "P91D",
        "weight_g": 351.0,
    }
    sessions = {(s["subject"], s["session"]): s for s in records.sessions}
    assert set(sessions) == {("01", SES), ("02", SES)}
    s = sessions[("01", SES)]
    assert s["state"] == "sedated"
    assert s["session_datetime"] == datetime(2024, 3, 1, 10, 0)
    assert s["session_dir"] == str(root / "sub-01" / f"ses-{SES}")


def test_fmri_records_match_files(good):
    _, written, records = good
    for scan in records.scans:
        w = written["scans"][tuple(scan.key.values())]
        f = scan.fmri
        assert {k: f[k] for k in ("subject", "session", "run")} == scan.key
        assert scan.scan == {**scan.key, "atlas": "tiny-atlas"}
        assert f["bold_path"] == str(w["bold"]) and Path(f["bold_path"]).is_absolute()
        assert f["bold_sha256"] == hashlib.sha256(w["bold"].read_bytes()).hexdigest()
        assert f["t_r"] == 1.0 and f["n_volumes"] == 12 and f["shape"] == [*SHAPE, 12]
        assert f["affine"].dtype == np.float64 and np.allclose(f["affine"], AFFINE)
        np.testing.assert_allclose(f["slice_timing"], [0, 1 / 3, 2 / 3])
        assert f["motion"].shape == (12, 6) and f["motion"].dtype == np.float64
        np.testing.assert_allclose(f["motion"], w["motion"], atol=1e-9)
        assert f["motion_path"] == str(w["motion_path"])
        assert f["sidecar"]["EchoTime"] == 0.015 and f["sidecar"]["TaskName"] == "rest"


def test_lfp_records_match_files(good):
    _, written, records = good
    for scan in records.scans:
        w = written["scans"][tuple(scan.key.values())]
        lfp = scan.lfp
        assert lfp["nwb_path"] == str(w["nwb"])
        assert lfp["nwb_sha256"] == hashlib.sha256(w["nwb"].read_bytes()).hexdigest()
        assert lfp["series_path"] == "acquisition/ElectricalSeries"
        assert len(lfp["series_object_id"]) == 36
        assert lfp["sampling_rate"] == 200.0
        assert (lfp["n_samples"], lfp["n_channels"]) == (w["n_samples"], 4)
        np.testing.assert_allclose(lfp["volume_triggers"], w["volume_triggers"])
        np.testing.assert_allclose(lfp["slice_triggers"], w["slice_triggers"])
        assert lfp["volume_triggers"].dtype == np.float64
        assert [(c["channel"], c["region"], c["electrode"]) for c in scan.channels] == [
            (0, "ACC", 0),
            (1, "ACC", 1),
            (2, "M1", 0),
            (3, "M1", 1),
        ]
        assert all(c["subject"] == scan.key["subject"] and c["run"] == scan.key["run"] for c in scan.channels)


def test_implants_probes_atlas(good):
    _, written, records = good
    implants = {(i["subject"], i["region"]): i for i in records.implants}
    assert set(implants) == {(s, r) for s in ("01", "02") for r in ("ACC", "M1")}
    for (_, region), row in implants.items():
        ap, ml, dv, hemi = IMPLANTS[region]
        assert (row["ap_mm"], row["ml_mm"], row["dv_mm"], row["hemisphere"]) == (ap, ml, dv, hemi)
        assert row["probe_type"] == "MRCM2-tiny"
    assert records.probe_types == [
        {
            "probe_type": "MRCM2-tiny",
            "manufacturer": "",
            "probe_description": "NeuroNexus MRCM2-tiny 2-channel MR-compatible silicon probe",
            "n_electrodes": 2,
        }
    ]
    assert records.electrodes == [
        {"probe_type": "MRCM2-tiny", "electrode": 0, "depth_um": 0.0},
        {"probe_type": "MRCM2-tiny", "electrode": 1, "depth_um": 50.0},
    ]
    a = records.atlas
    assert a["atlas"] == "tiny-atlas" and a["shape"] == list(SHAPE) and a["voxel_size_mm"] == [2.0, 2.0, 2.5]
    assert a["affine"].dtype == np.float64 and np.allclose(a["affine"], AFFINE)
    for attr, desc in (("brain_mask", "brain"), ("wm_mask", "wm"), ("ventricle_mask", "ventricles")):
        assert a[attr].dtype == bool and np.array_equal(a[attr], written["atlas"][desc])
    assert a["n_brain_voxels"] == written["atlas"]["brain"].sum()
    rois = {r["region"]: r for r in records.rois}
    assert set(rois) == {"ACC", "M1"}
    assert np.array_equal(rois["M1"]["roi_mask"], written["atlas"]["rois"]["M1"])
    assert rois["M1"]["n_voxels"] == 2 and rois["M1"]["atlas"] == "tiny-atlas"


def test_checksums_off(study):
    make_study(study, subjects=("01",), runs=(1,))
    records = read_study(study, checksums=False)
    assert records.scans[0].fmri["bold_sha256"] == "" and records.scans[0].lfp["nwb_sha256"] == ""


def test_uncompressed_nii_accepted(study):
    w = make_study(study)
    src = w["scans"][("01", SES, 1)]["bold"]
    img = nib.load(src)
    nib.save(img, str(src).replace(".nii.gz", ".nii"))
    src.unlink()
    records = read_study(study)
    assert records.errors == [] and keys(records) == ALL_KEYS
    scan = next(s for s in records.scans if s.key == {"subject": "01", "session": SES, "run": 1})
    assert scan.fmri["bold_path"].endswith("_bold.nii")


# ---------------------------------------------------------------- sidecar inheritance


def test_sidecar_inheritance(study):
    make_study(study)
    # subject level beats the root, the run's own beats both
    (study / "sub-01" / "sub-01_task-rest_bold.json").write_text(
        json.dumps({"MagneticFieldStrength": 9.4, "EchoTime": 0.02})
    )
    run1 = study / rel(("01", SES, 1), "bold.json")
    run1.write_text(json.dumps({**json.loads(run1.read_text()), "EchoTime": 0.03}))
    records = read_study(study)
    assert records.errors == []
    sidecars = {tuple(s.key.values()): s.fmri["sidecar"] for s in records.scans}
    assert sidecars[("01", SES, 1)]["EchoTime"] == 0.03
    assert sidecars[("01", SES, 2)]["EchoTime"] == 0.02
    assert sidecars[("02", SES, 1)]["EchoTime"] == 0.015
    assert sidecars[("01", SES, 2)]["MagneticFieldStrength"] == 9.4
    assert sidecars[("02", SES, 2)]["MagneticFieldStrength"] == 7
    assert all(sc["TaskName"] == "rest" for sc in sidecars.values())  # only in the root sidecar


def test_repetition_time_only_in_root(study):
    make_study(study, run_sidecar=False)
    records = read_study(study)
    assert records.errors == [] and keys(records) == ALL_KEYS
    assert all(s.fmri["t_r"] == 1.0 for s in records.scans)


def test_repetition_time_missing_everywhere(study):
    make_study(study)
    root = study / "task-rest_bold.json"
    root.write_text(json.dumps({k: v for k, v in json.loads(root.read_text()).items() if k != "RepetitionTime"}))
    bad = ("01", SES, 1)
    side = study / rel(bad, "bold.json")
    side.write_text(json.dumps({"SliceTiming": [0, 0.3, 0.6]}))
    records = read_study(study)
    err = only_bad(records, [bad], rel(bad, "bold.json"), "RepetitionTime")
    assert str(err) == (
        f"{rel(bad, 'bold.json')}: RepetitionTime: missing (also not in any inherited sidecar: task-rest_bold.json)"
    )


def test_repetition_time_differs_from_nifti(study):
    make_study(study)
    bad = ("02", SES, 2)
    side = study / rel(bad, "bold.json")
    side.write_text(json.dumps({"RepetitionTime": 2.0}))
    err = only_bad(read_study(study), [bad], rel(bad, "bold.nii.gz"), "RepetitionTime")
    assert "2 s" in err.reason and "1 s" in err.reason


def test_slice_timing_wrong_length(study):
    make_study(study)
    bad = ("01", SES, 2)
    (study / rel(bad, "bold.json")).write_text(json.dumps({"RepetitionTime": 1.0, "SliceTiming": [0, 0.5]}))
    only_bad(read_study(study), [bad], rel(bad, "bold.json"), "SliceTiming", "2 values")


# ---------------------------------------------------------------- BOLD problems


def test_bold_not_4d(study):
    make_study(study)
    bad = ("01", SES, 1)
    write_nifti(study / rel(bad, "bold.nii.gz"), np.zeros(SHAPE, np.float32))
    only_bad(read_study(study), [bad], rel(bad, "bold.nii.gz"), "shape", "4-D")


def test_bold_grid_not_atlas(study):
    make_study(study)
    bad_shape, bad_affine = ("01", SES, 1), ("02", SES, 1)
    write_nifti(study / rel(bad_shape, "bold.nii.gz"), np.zeros((4, 5, 4, 12), np.float32), t_r=1.0)
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.0
    write_nifti(study / rel(bad_affine, "bold.nii.gz"), np.zeros((*SHAPE, 12), np.float32), shifted, t_r=1.0)
    records = read_study(study)
    only_bad(records, [bad_shape, bad_affine], rel(bad_shape, "bold.nii.gz"), "shape", "atlas grid")
    only_bad(records, [bad_shape, bad_affine], rel(bad_affine, "bold.nii.gz"), "affine")


def test_bold_missing(study):
    make_study(study)
    bad = ("02", SES, 1)
    (study / rel(bad, "bold.nii.gz")).unlink()
    only_bad(read_study(study), [bad], rel(bad, "bold.nii.gz"), "file", "missing")


def test_motion_missing_wrong_columns_wrong_rows(study):
    make_study(study)
    missing, columns, rows = ("01", SES, 1), ("01", SES, 2), ("02", SES, 1)
    (study / rel(missing, "motion.tsv")).unlink()
    (study / rel(columns, "motion.tsv")).write_text(
        "trans_x\ttrans_y\ttrans_z\trot_x\trot_y\n" + "0\t0\t0\t0\t0\n" * 12
    )
    (study / rel(rows, "motion.tsv")).write_text(
        "trans_x\ttrans_y\ttrans_z\trot_x\trot_y\trot_z\n" + "0\t0\t0\t0\t0\t0\n" * 11
    )
    records = read_study(study)
    bad = [missing, columns, rows]
    only_bad(records, bad, rel(missing, "bold.nii.gz"), "motion", "missing: no head-motion estimates")
    only_bad(records, bad, rel(columns, "motion.tsv"), "columns", "missing rot_z")
    only_bad(records, bad, rel(rows, "motion.tsv"), "rows", "11 rows but the BOLD run has 12 volumes")


def test_motion_columns_in_other_order_are_reordered(study):
    w = make_study(study, subjects=("01",), runs=(1,))
    path = w["scans"][("01", SES, 1)]["motion_path"]
    motion = w["scans"][("01", SES, 1)]["motion"]
    order = [5, 4, 3, 2, 1, 0]
    names = np.array(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])[order]
    np.savetxt(path, motion[:, order], delimiter="\t", header="\t".join(names), comments="", fmt="%.6f")
    np.testing.assert_allclose(read_study(study).scans[0].fmri["motion"], motion)


# ---------------------------------------------------------------- NWB problems


def test_nwb_missing_and_bold_missing(study):
    make_study(study)
    no_nwb, no_bold = ("01", SES, 2), ("02", SES, 2)
    (study / rel(no_nwb, "ecephys.nwb")).unlink()
    for kind in ("bold.nii.gz", "bold.json", "motion.tsv"):
        (study / rel(no_bold, kind)).unlink()
    records = read_study(study)
    only_bad(records, [no_nwb, no_bold], rel(no_nwb, "ecephys.nwb"), "file", "missing")
    only_bad(records, [no_nwb, no_bold], rel(no_bold, "bold.nii.gz"), "file", "missing")


def test_nwb_without_electrical_series(study):
    bad = ("01", SES, 1)
    make_study(study, nwb_options={("01", 1): {"series": "none"}})
    only_bad(read_study(study), [bad], rel(bad, "ecephys.nwb"), "acquisition/ElectricalSeries")


def test_nwb_with_two_candidate_series(study):
    bad = ("02", SES, 2)
    make_study(study, nwb_options={("02", 2): {"series": "two"}})
    err = only_bad(read_study(study), [bad], rel(bad, "ecephys.nwb"), "acquisition/ElectricalSeries")
    assert "acquisition/raw_a" in err.reason and "acquisition/raw_b" in err.reason


@pytest.mark.filterwarnings("ignore:The linked table")
def test_series_found_in_any_layout(study):
    w = make_study(study, nwb_options={("01", 1): {"series": "renamed"}, ("02", 1): {"series": "lfp"}})
    records = read_study(study)
    assert records.errors == [] and keys(records) == ALL_KEYS
    paths = {tuple(s.key.values()): s.lfp["series_path"] for s in records.scans}
    assert paths[("01", SES, 1)] == "acquisition/raw"
    assert paths[("02", SES, 1)] == "processing/ecephys/LFP/ElectricalSeries"
    lfp = next(s.lfp for s in records.scans if s.key["subject"] == "02" and s.key["run"] == 1)
    x = read_lfp(lfp["nwb_path"], series_path=lfp["series_path"], channels=[1], start=5, stop=9)
    np.testing.assert_array_equal(x[0], w["scans"][("02", SES, 1)]["volts"][5:9, 1])


def test_electrodes_without_location(study):
    bad = ("02", SES, 1)
    make_study(study, nwb_options={("02", 1): {"location": {"M1": " "}}})
    only_bad(read_study(study), [bad], rel(bad, "ecephys.nwb"), "electrodes/location", "empty")


def test_location_not_an_atlas_roi(study):
    bad = ("01", SES, 2)
    make_study(study, nwb_options={("01", 2): {"location": {"ACC": "CA1"}}})
    err = only_bad(read_study(study), [bad], rel(bad, "ecephys.nwb"), "electrodes/location", "CA1")
    assert "ACC, M1" in err.reason


def test_location_matches_roi_case_insensitively(study):
    make_study(study, subjects=("01",), runs=(1,), nwb_options={("01", 1): {"location": {"ACC": "acc"}}})
    records = read_study(study)
    assert records.errors == [] and records.scans[0].channels[0]["region"] == "ACC"


@pytest.mark.parametrize(
    "option, field, reason",
    [
        ({"triggers": "none"}, "scanner_volumes", "missing"),
        ({"n_volume_triggers": 10}, "scanner_volumes", "10 triggers but the BOLD run has 12 volumes"),
        ({"n_slice_triggers": 35}, "scanner_slices", "35 triggers but the BOLD run has 12 volumes x 3 slices = 36"),
        ({"trigger_shift": 5.0}, "scanner_volumes", "outside the recording"),
    ],
)
def test_trigger_problems(study, option, field, reason):
    bad = ("02", SES, 2)
    make_study(study, nwb_options={("02", 2): option})
    only_bad(read_study(study), [bad], rel(bad, "ecephys.nwb"), field, reason)


def test_trigger_message_format(study):
    bad = ("01", SES, 1)
    make_study(study, nwb_options={("01", 1): {"n_volume_triggers": 10}})
    err = only_bad(read_study(study), [bad], rel(bad, "ecephys.nwb"), "scanner_volumes")
    assert str(err) == f"{rel(bad, 'ecephys.nwb')}: scanner_volumes: 10 triggers but the BOLD run has 12 volumes"


@pytest.mark.parametrize("style", ["timeseries", "intervals"])
def test_triggers_from_older_layouts(study, style):
    w = make_study(study, subjects=("01",), runs=(1,), nwb_options={("01", 1): {"triggers": style}})
    records = read_study(study)
    assert records.errors == []
    np.testing.assert_allclose(records.scans[0].lfp["volume_triggers"], w["scans"][("01", SES, 1)]["volume_triggers"])
    np.testing.assert_allclose(records.scans[0].lfp["slice_triggers"], w["scans"][("01", SES, 1)]["slice_triggers"])


def test_triggers_on_the_series_clock(study):
    # series starts 100 s into the session; triggers are stored on the session clock
    w = make_study(study, subjects=("01",), runs=(1,), nwb_options={("01", 1): {"starting_time": 100.0}})
    lfp = read_study(study).scans[0].lfp
    np.testing.assert_allclose(lfp["volume_triggers"], w["scans"][("01", SES, 1)]["volume_triggers"])
    assert lfp["volume_triggers"][0] == pytest.approx(2.0)


def test_nwb_subject_id_mismatch(study):
    bad = ("01", SES, 2)
    make_study(study, nwb_options={("01", 2): {"subject_id": "07"}})
    only_bad(read_study(study), [bad], rel(bad, "ecephys.nwb"), "subject/subject_id", "'07'")


def test_implant_coordinates_from_xyz_and_hemisphere_from_ml(study):
    opts = {"coords": "xyz", "hemisphere_column": False}
    make_study(study, subjects=("01",), runs=(1,), nwb_options={("01", 1): opts})
    implants = {i["region"]: i for i in read_study(study).implants}
    assert (implants["M1"]["ap_mm"], implants["M1"]["ml_mm"], implants["M1"]["hemisphere"]) == (3.2, -3.0, "left")
    assert implants["ACC"]["hemisphere"] == "right"


def test_implant_contradiction_between_scans(study):
    bad = ("01", SES, 2)
    make_study(study, nwb_options={("01", 2): {"ap_shift": 0.5}})
    records = read_study(study)
    only_bad(records, [bad], rel(bad, "ecephys.nwb"), "electrodes/ap_mm")
    assert {i["ap_mm"] for i in records.implants if i["region"] == "ACC"} == {1.5}


@pytest.mark.parametrize("device, expected", [("model_name", "TinyModel"), ("plain", "probe-ACC")])
def test_probe_type_from_device(study, device, expected):
    make_study(study, subjects=("01",), runs=(1,), regions=("ACC",), nwb_options={("01", 1): {"device": device}})
    records = read_study(study)
    assert [p["probe_type"] for p in records.probe_types] == [expected]
    assert records.implants[0]["probe_type"] == expected


# ---------------------------------------------------------------- subject / session problems


def test_subject_missing_from_participants(study):
    make_study(study)
    tsv = study / "participants.tsv"
    tsv.write_text("\n".join(line for line in tsv.read_text().splitlines() if not line.startswith("sub-02")))
    records = read_study(study)
    only_bad(records, [("02", SES, 1), ("02", SES, 2)], "participants.tsv", "participant_id", "sub-02")
    assert [s["subject"] for s in records.subjects] == ["01"]
    assert all(i["subject"] == "01" for i in records.implants)


def test_session_missing_from_sessions_tsv(study):
    make_study(study)
    (study / "sub-01" / "sub-01_sessions.tsv").write_text("session_id\tacq_time\tstate\n")
    records = read_study(study)
    only_bad(records, [("01", SES, 1), ("01", SES, 2)], "sub-01/sub-01_sessions.tsv", "session_id", f"ses-{SES}")
    assert [(s["subject"], s["session"]) for s in records.sessions] == [("02", SES)]


def test_session_state_not_known(study):
    make_study(study, state="anesthetized")
    records = read_study(study)
    assert records.scans == [] and records.sessions == []
    assert {(e.path, e.field) for e in records.errors} == {
        ("sub-01/sub-01_sessions.tsv", "state"),
        ("sub-02/sub-02_sessions.tsv", "state"),
    }


def test_participant_na_filled_from_nwb(study):
    make_study(study, subjects=("01",), runs=(1,))
    (study / "participants.tsv").write_text(
        "participant_id\tspecies\tstrain\tsex\tage\tweight_g\nsub-01\tRattus norvegicus\tn/a\tM\tP90D\tn/a\n"
    )
    subject = read_study(study).subjects[0]
    assert subject["strain"] == "Long-Evans" and subject["weight_g"] == pytest.approx(350.0)


# ---------------------------------------------------------------- study-level problems raise


def test_no_participants_raises(study):
    make_study(study, subjects=("01",), runs=(1,))
    (study / "participants.tsv").unlink()
    with pytest.raises(IngestError) as exc:
        read_study(study)
    assert (exc.value.path, exc.value.field) == ("participants.tsv", "file")


def test_missing_brain_mask_raises(study):
    make_study(study, subjects=("01",), runs=(1,))
    (study / atlas_file("brain")).unlink()
    with pytest.raises(IngestError) as exc:
        read_study(study)
    assert (exc.value.path, exc.value.field) == (atlas_file("brain"), "file")


def test_unreadable_atlas_raises(study):
    make_study(study, subjects=("01",), runs=(1,))
    (study / atlas_file("wm")).write_bytes(b"not a nifti")
    with pytest.raises(IngestError) as exc:
        read_study(study)
    assert (exc.value.path, exc.value.field) == (atlas_file("wm"), "file")
    assert "NIfTI" in exc.value.reason


# ---------------------------------------------------------------- lazy readers


@pytest.mark.parametrize("block_bytes", [32 << 20, 64])  # 64 bytes: many tiny blocks
def test_read_lfp_matches_pynwb(good, monkeypatch, block_bytes):
    from pynwb import NWBHDF5IO

    monkeypatch.setattr(nwb_module, "_BLOCK_BYTES", block_bytes)
    _, _, records = good
    lfp = records.scans[0].lfp
    with NWBHDF5IO(lfp["nwb_path"], "r") as io:
        expected = io.read().acquisition["ElectricalSeries"].data[:]
    got = read_lfp(lfp["nwb_path"], series_path=lfp["series_path"], channels=[3, 0, 0], start=17, stop=311)
    assert got.dtype == np.float32 and got.shape == (3, 294)
    np.testing.assert_array_equal(got, expected[17:311, [3, 0, 0]].T)
    whole = read_lfp(lfp["nwb_path"], series_path=lfp["series_path"], channels=[2])
    assert whole.shape == (1, lfp["n_samples"])
    np.testing.assert_array_equal(whole[0], expected[:, 2])


def test_read_lfp_applies_conversion(study):
    path = study.parent / "int.nwb"
    w = write_nwb(path, dtype="int16", conversion=1e-6, channel_conversion=[1.0, 2.0, 0.5, 1.0])
    got = read_lfp(path, series_path="acquisition/ElectricalSeries", channels=[1, 2], start=0, stop=50)
    expected = w["raw"][:50, [1, 2]].T.astype(np.float64) * 1e-6 * np.array([[2.0], [0.5]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_read_lfp_bad_request(good):
    _, _, records = good
    lfp = records.scans[0].lfp
    with pytest.raises(IngestError) as exc:
        read_lfp(lfp["nwb_path"], series_path=lfp["series_path"], channels=[4])
    assert exc.value.field == "channels" and exc.value.path == lfp["nwb_path"]
    with pytest.raises(IngestError) as exc:
        read_lfp(lfp["nwb_path"], series_path="acquisition/nothing", channels=[0])
    assert exc.value.field == "acquisition/nothing"


def test_read_bold(good):
    _, written, records = good
    scan = records.scans[0]
    data, affine = read_bold(scan.fmri["bold_path"])
    assert data.dtype == np.float32 and affine.dtype == np.float64
    np.testing.assert_array_equal(data, written["scans"][tuple(scan.key.values())]["bold_data"])
    np.testing.assert_allclose(affine, AFFINE)


def test_sha256_known_file(tmp_path):
    path = tmp_path / "abc.txt"
    path.write_bytes(b"abc")
    assert sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_ingest_error_paths_and_pickle(tmp_path):
    err = IngestError(tmp_path / "sub-01" / "x.json", "RepetitionTime", "missing", root=tmp_path)
    assert (err.path, err.field, err.reason) == ("sub-01/x.json", "RepetitionTime", "missing")
    assert str(err) == "sub-01/x.json: RepetitionTime: missing" and isinstance(err, ValueError)
    outside = IngestError("/elsewhere/y.nwb", "file", "missing", root=tmp_path)
    assert outside.path == "/elsewhere/y.nwb"
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.field, back.reason, str(back)) == (err.path, err.field, err.reason, str(err))


@pytest.mark.parametrize("chunks", [(1000, 1), None])
def test_read_lfp_memory_is_output_plus_a_block(tmp_path, monkeypatch, chunks):
    import tracemalloc

    import h5py

    path = tmp_path / "big.h5"
    data = np.random.default_rng(0).standard_normal((200_000, 16)).astype(np.float32)  # 12.8 MB
    with h5py.File(path, "w") as f:
        f.create_dataset("acquisition/ElectricalSeries/data", data=data, chunks=chunks)
    monkeypatch.setattr(nwb_module, "_BLOCK_BYTES", 1 << 20)
    tracemalloc.start()
    got = read_lfp(path, series_path="acquisition/ElectricalSeries", channels=[5])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(got[0], data[:, 5])
    assert peak < got.nbytes + 4 * (1 << 20), peak  # the whole dataset would be 12.8 MB


def test_simulated_study_reads_clean(small_study):
    """lfpbold.simulate writes the layout contract; ingest reads it back without a single error."""
    import h5py

    truth = json.loads((small_study / "ground_truth.json").read_text())
    lfp_truth = truth["model"]["lfp"]
    records = read_study(small_study)
    assert [str(e) for e in records.errors] == []
    assert keys(records) == {(s["subject"], s["session"], s["run"]) for s in truth["scans"]}
    states = {(s["subject"], s["session"]): s["state"] for s in truth["scans"]}
    assert {(s["subject"], s["session"]): s["state"] for s in records.sessions} == states
    regions = truth["simulator"]["options"]["regions"]
    by_key = {(s["subject"], s["session"], s["run"]): s for s in truth["scans"]}
    for scan in records.scans:
        t = by_key[tuple(scan.key.values())]
        assert scan.fmri["n_volumes"] == t["n_volumes"] == len(scan.lfp["volume_triggers"])
        n_slices = scan.fmri["shape"][2]
        assert len(scan.lfp["slice_triggers"]) == t["n_volumes"] * n_slices
        assert scan.lfp["volume_triggers"][0] == pytest.approx(lfp_truth["lead_s"])
        assert scan.lfp["sampling_rate"] == lfp_truth["fs"] and scan.lfp["n_samples"] == lfp_truth["n_times"]
        assert scan.lfp["n_channels"] == lfp_truth["channels_per_implant"] * len(regions)
        assert sorted({c["region"] for c in scan.channels}) == sorted(regions)
    assert records.atlas["n_brain_voxels"] == truth["model"]["brain_voxels"]
    assert [(p["probe_type"], p["n_electrodes"], p["manufacturer"]) for p in records.probe_types] == [
        ("MRCM4-sim", lfp_truth["channels_per_implant"], "NeuroNexus")
    ]
    for implant in records.implants:
        ap, ml, dv, hemi = IMPLANTS[implant["region"]]
        assert (implant["ap_mm"], implant["ml_mm"], implant["dv_mm"], implant["hemisphere"]) == (ap, ml, dv, hemi)
    scan = records.scans[-1]
    with h5py.File(scan.lfp["nwb_path"], "r") as f:
        expected = f[scan.lfp["series_path"]]["data"][1000:5000, :][:, [6, 1]].T
    got = read_lfp(scan.lfp["nwb_path"], series_path=scan.lfp["series_path"], channels=[6, 1], start=1000, stop=5000)
    np.testing.assert_array_equal(got, expected)
    data, affine = read_bold(scan.fmri["bold_path"])
    assert list(data.shape) == scan.fmri["shape"] and np.allclose(affine, records.atlas["affine"])


def test_older_layout_still_read(tmp_path):
    """Studies written before the BIDS-valid layout (atlas/, func/*_motion.tsv, age as P90D, weight_g)."""
    old = make_study(tmp_path / "old", subjects=("01",), runs=(1,), layout="old")
    new = make_study(tmp_path / "new", subjects=("01",), runs=(1,))
    a, b = read_study(tmp_path / "old"), read_study(tmp_path / "new")
    assert a.errors == [] and b.errors == []
    assert a.subjects == b.subjects and a.subjects[0]["age"] == "P90D" and a.subjects[0]["weight_g"] == 350.0
    assert a.scans[0].fmri["motion_path"].endswith("_motion.tsv")
    assert b.scans[0].fmri["motion_path"].endswith("_desc-confounds_timeseries.tsv")
    w = old["scans"][("01", SES, 1)]
    np.testing.assert_allclose(a.scans[0].fmri["motion"], w["motion"], atol=1e-9)
    np.testing.assert_allclose(b.scans[0].fmri["motion"], new["scans"][("01", SES, 1)]["motion"], atol=1e-9)
    for key in ("brain_mask", "wm_mask", "ventricle_mask"):
        assert np.array_equal(a.atlas[key], b.atlas[key])
    assert a.atlas["atlas"] == b.atlas["atlas"] == "tiny-atlas"
    assert [r["region"] for r in a.rois] == [r["region"] for r in b.rois] == ["ACC", "M1"]
