"""Bad input at ingest: each case gets a clear error naming file, field and place, and leaves the
database exactly as it was; a bad scan never stops the good scans after it.

Every case starts from the same tiny study (sub-01, runs 1 and 2), whose run 1 is already in the
database: the case breaks run 2 (or something every scan needs), ingests, and checks the message
and that no table gained or lost a row.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import connect_backend  # noqa: E402
from ingest_fixtures import SHAPE, atlas_file, confounds_file, write_nifti, write_nwb  # noqa: E402

from lfpbold.ingest import IngestError  # noqa: E402
from lfpbold.pipeline import drop, ingest_study, tables_by_schema  # noqa: E402

SES = "sedated01"
PREFIX = f"sub-01_ses-{SES}_task-rest_run-2"
FUNC = f"sub-01/ses-{SES}/func"
ECEPHYS = f"sub-01/ses-{SES}/ecephys"
BOLD2 = f"{FUNC}/{PREFIX}_bold.nii.gz"
JSON2 = f"{FUNC}/{PREFIX}_bold.json"
NWB2 = f"{ECEPHYS}/{PREFIX}_ecephys.nwb"
MOTION2 = confounds_file("01", SES, 2)
N_VOLUMES = 12


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The pristine tiny study, written once (copied by every case)."""
    from ingest_fixtures import make_study

    root = tmp_path_factory.mktemp("bad") / "base"
    make_study(root, subjects=("01",), runs=(1, 2), n_volumes=N_VOLUMES)
    return root


@pytest.fixture(scope="module")
def database(lfpbold_home, base, tmp_path_factory):
    """An embedded database holding the base study's run 1 (its run 2 is what the cases break)."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    db = connect_backend("embedded", lfpbold_home, prefix)
    first = tmp_path_factory.mktemp("first") / "study"
    shutil.copytree(base, first)
    for rel in (BOLD2, JSON2, NWB2, MOTION2):
        (first / rel).unlink()
    report = ingest_study(first)
    assert not report.errors and len(report.inserted) == 1
    yield db
    drop(prefix, db.connection)


def snapshot() -> dict:
    """Every acquisition and selection row, by table (what "unchanged" is checked against)."""
    out = {}
    for schema, tables in tables_by_schema().items():
        if schema.endswith(("acquisition", "params")):
            for name, table in tables:
                out[name] = sorted(map(str, table.proj().to_dicts()))
    return out


# ------------------------------------------------------------------------------- the breakages


def _rewrite_bold(study, data, **kw):
    write_nifti(study / BOLD2, data, t_r=kw.pop("t_r", 1.0), **kw)


def truncated_gzip(study):
    raw = (study / BOLD2).read_bytes()
    (study / BOLD2).write_bytes(raw[: len(raw) // 2])


def truncated_voxels(study):
    # a complete gzip stream whose NIfTI holds 7 of the 12 volumes the header declares
    raw = gzip.decompress((study / BOLD2).read_bytes())
    keep = len(raw) - 5 * int(np.prod(SHAPE)) * 4
    (study / BOLD2).write_bytes(gzip.compress(raw[:keep]))


def corrupt_gzip(study):
    raw = bytearray((study / BOLD2).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (study / BOLD2).write_bytes(bytes(raw))


def not_gzip(study):
    (study / BOLD2).write_bytes(b"this is not a NIfTI file at all")


def nan_in_brain(study):
    data = np.random.default_rng(0).standard_normal((*SHAPE, N_VOLUMES)).astype(np.float32)
    data[2, 3, 1, 4] = np.nan  # inside the tiny brain mask [1:3, 1:4, :]
    data[2, 2, 0, 4] = np.inf
    _rewrite_bold(study, data)


def tr_mismatch(study):
    (study / JSON2).write_text(json.dumps({"RepetitionTime": 2.0}))


def image_3d(study):
    write_nifti(study / BOLD2, np.zeros(SHAPE, np.float32))


def bold_other_grid(study):
    _rewrite_bold(study, np.zeros((4, 5, 4, N_VOLUMES), np.float32))


def motion_wrong_length(study):
    lines = (study / MOTION2).read_text().splitlines()
    (study / MOTION2).write_text("\n".join(lines[:-1]) + "\n")


def motion_na(study):
    lines = (study / MOTION2).read_text().splitlines()
    header = lines[0].split("\t")
    row = lines[4].split("\t")
    row[header.index("trans_x")] = "n/a"
    lines[4] = "\t".join(row)
    (study / MOTION2).write_text("\n".join(lines) + "\n")


def motion_missing_column(study):
    lines = [ln.split("\t") for ln in (study / MOTION2).read_text().splitlines()]
    j = lines[0].index("rot_z")
    (study / MOTION2).write_text("\n".join("\t".join(r[:j] + r[j + 1 :]) for r in lines) + "\n")


def motion_missing(study):
    (study / MOTION2).unlink()


def motion_twice(study):
    other = study / "derivatives" / "fmriprep" / Path(MOTION2).relative_to("derivatives/realign")
    other.parent.mkdir(parents=True)
    shutil.copy(study / MOTION2, other)


def triggers_off_by_one(study):
    write_nwb(study / NWB2, sub="01", ses=SES, n_volumes=N_VOLUMES, n_volume_triggers=N_VOLUMES - 1, seed=3)


def sex_conflict(study):
    tsv = study / "participants.tsv"
    tsv.write_text(tsv.read_text().replace("Long-Evans\tM\t", "Long-Evans\tF\t"))


def not_in_participants(study):
    _move_subject(study, "02")


def symlink_out(study):
    outside = study.parent / "elsewhere.nii.gz"
    shutil.move(study / BOLD2, outside)
    (study / BOLD2).symlink_to(outside)


def symlink_atlas_out(study):
    outside = study.parent / "wm.nii.gz"
    shutil.move(study / atlas_file("wm"), outside)
    (study / atlas_file("wm")).symlink_to(outside)


def long_region(study):
    roi = np.zeros(SHAPE, np.uint8)
    roi[2, 2, 2] = 1
    write_nifti(study / atlas_file("AnteriorCingulate20"), roi)


def _rename_run(study, new):
    for rel in (BOLD2, JSON2, NWB2, MOTION2):
        (study / rel).rename(study / rel.replace("run-2", new))


def huge_run(study):
    _rename_run(study, "run-99999999999")


def run_not_a_number(study):
    _rename_run(study, "run-two")


def _move_subject(study, label):
    src = study / "sub-01"
    for path in sorted(src.rglob("*"), reverse=True):
        if "sub-01" in path.name:
            path.rename(path.with_name(path.name.replace("sub-01", f"sub-{label}")))
    src.rename(study / f"sub-{label}")


def bad_subject_label(study):
    _move_subject(study, "0_1")


def long_subject_label(study):
    label = "a" * 33
    tsv = study / "participants.tsv"
    tsv.write_text(tsv.read_text() + f"sub-{label}\tRattus norvegicus\tLong-Evans\tM\t90\t350\n")
    _move_subject(study, label)


def _move_run_to_session(study, label):
    """Run 2 moves to a new session ``label`` (listed in sub-01_sessions.tsv)."""
    ses_tsv = study / "sub-01" / "sub-01_sessions.tsv"
    ses_tsv.write_text(ses_tsv.read_text() + f"ses-{label}\t2024-03-02T10:00:00\tsedated\n")
    for rel in (BOLD2, JSON2, NWB2, MOTION2):
        new = study / rel.replace(f"ses-{SES}", f"ses-{label}")
        new.parent.mkdir(parents=True, exist_ok=True)
        (study / rel).rename(new)


def bad_session_label(study):
    _move_run_to_session(study, "sedated_02")


def long_session_label(study):
    _move_run_to_session(study, "s" * 33)


def long_strain(study):
    tsv = study / "participants.tsv"
    tsv.write_text(tsv.read_text().replace("Long-Evans", "L" * 65))


def age_not_a_number(study):
    tsv = study / "participants.tsv"
    tsv.write_text(tsv.read_text().replace("\tM\t90\t", "\tM\tadult\t"))


def weight_without_unit(study):
    (study / "participants.json").write_text(json.dumps({"age": {"Units": "d"}}))


def mask_other_grid(study):
    write_nifti(study / atlas_file("wm"), np.zeros((4, 5, 4), np.uint8))


# (breakage, error path, field, words the reason must hold, whether the whole study is refused)
CASES = {
    "truncated_gzip": (truncated_gzip, BOLD2, "file", ["truncated", "volume"], False),
    "truncated_voxels": (truncated_voxels, BOLD2, "file", ["truncated", "volume 7 of 12"], False),
    "corrupt_gzip": (corrupt_gzip, BOLD2, "file", ["corrupt gzip"], False),
    "not_nifti": (not_gzip, BOLD2, "file", ["not readable as NIfTI"], False),
    "nan_in_brain": (nan_in_brain, BOLD2, "voxels", ["volume 4", "2 non-finite", "brain mask", "(2, 2, 0)"], False),
    "tr_mismatch": (tr_mismatch, BOLD2, "RepetitionTime", ["sidecar says 2 s", "header (zooms[3]) says 1 s"], False),
    "image_3d": (image_3d, BOLD2, "shape", ["4-D", "3-D"], False),
    "bold_other_grid": (bold_other_grid, BOLD2, "shape", ["[4, 5, 4]", "atlas grid [4, 5, 3]"], False),
    "motion_wrong_length": (motion_wrong_length, MOTION2, "rows", ["11 rows", "12 volumes"], False),
    "motion_na": (motion_na, MOTION2, "trans_x", ["row 4 (volume 3)", "'n/a'"], False),
    "motion_missing_column": (motion_missing_column, MOTION2, "columns", ["missing rot_z"], False),
    "motion_missing": (motion_missing, BOLD2, "motion", ["missing", "desc-confounds_timeseries.tsv"], False),
    "motion_twice": (
        motion_twice,
        confounds_file("01", SES, 2).replace("realign", "fmriprep"),
        "file",
        ["2 head-motion tables"],
        False,
    ),  # noqa: E501
    "triggers_off_by_one": (triggers_off_by_one, NWB2, "scanner_volumes", ["11 triggers", "12 volumes"], False),
    "sex_conflict": (
        sex_conflict,
        f"{ECEPHYS}/sub-01_ses-{SES}_task-rest_run-2_ecephys.nwb",
        "subject/sex",
        ["'M' here", "participants.tsv says 'F'"],
        False,
    ),  # noqa: E501
    "not_in_participants": (not_in_participants, "participants.tsv", "participant_id", ["no row for sub-02"], False),
    "symlink_out": (
        symlink_out,
        BOLD2,
        "file",
        ["symbolic link", "outside the study folder", "--follow-symlinks"],
        False,
    ),  # noqa: E501
    "symlink_atlas_out": (symlink_atlas_out, atlas_file("wm"), "file", ["symbolic link", "--follow-symlinks"], True),
    "long_region": (
        long_region,
        atlas_file("AnteriorCingulate20"),
        "label",
        ["19 characters", "Region.region holds at most 16"],
        True,
    ),  # noqa: E501
    "huge_run": (
        huge_run,
        BOLD2.replace("run-2", "run-99999999999"),
        "run",
        ["99999999999", "Scan.run", "32-bit"],
        False,
    ),  # noqa: E501
    "run_not_a_number": (
        run_not_a_number,
        BOLD2.replace("run-2", "run-two"),
        "run",
        ["'two' is not a run number"],
        False,
    ),  # noqa: E501
    "bad_subject_label": (bad_subject_label, "sub-0_1", "sub", ["'0_1' is not a BIDS label"], False),
    "long_subject_label": (
        long_subject_label,
        "sub-" + "a" * 33,
        "sub",
        ["33 characters", "Subject.subject holds at most 32"],
        False,
    ),  # noqa: E501
    "bad_session_label": (
        bad_session_label,
        "sub-01/ses-sedated_02",
        "ses",
        ["'sedated_02' is not a BIDS label"],
        False,
    ),  # noqa: E501
    "long_session_label": (
        long_session_label,
        "sub-01/ses-" + "s" * 33,
        "ses",
        ["Session.session holds at most 32"],
        False,
    ),  # noqa: E501
    "long_strain": (
        long_strain,
        "participants.tsv",
        "strain",
        ["sub-01", "65 characters", "Subject.strain holds at most 64"],
        False,
    ),  # noqa: E501
    "age_not_a_number": (age_not_a_number, "participants.tsv", "age", ["'adult'", "neither a number (of days)"], True),
    "weight_without_unit": (weight_without_unit, "participants.json", "weight/Units", ["missing", "g, gram"], True),
    "mask_other_grid": (mask_other_grid, atlas_file("wm"), "shape", ["[4, 5, 4]", "[4, 5, 3]"], True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, base, database, tmp_path):
    breakage, path, field, words, refused = CASES[case]
    study = tmp_path / "study"
    shutil.copytree(base, study, symlinks=True)
    breakage(study)
    before = snapshot()
    assert before["Scan"] == [str({"subject": "01", "session": SES, "run": 1})]  # no earlier case let run 2 in
    if refused:
        with pytest.raises(IngestError) as exc:
            ingest_study(study)
        errors = [exc.value]
    else:
        report = ingest_study(study)
        errors = report.errors
        assert report.inserted == []
    assert snapshot() == before, "the database changed"
    found = [e for e in errors if (e.path, e.field) == (path, field)]
    assert found, f"no error for {path} / {field}; got {[str(e) for e in errors]}"
    for word in words:
        assert word in found[0].reason, str(found[0])
    assert str(found[0]).startswith(f"{path}: {field}: ")


def test_cases_cover_the_scope():
    assert len(CASES) >= 25


def test_nan_outside_the_brain_is_accepted(base, database, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(base, study)
    data = np.random.default_rng(0).standard_normal((*SHAPE, N_VOLUMES)).astype(np.float32)
    data[0, 0, 0, :] = np.nan  # outside the brain mask
    _rewrite_bold(study, data)
    from lfpbold.ingest import read_study

    assert [str(e) for e in read_study(study).errors] == []


def test_symlink_followed_when_asked(base, tmp_path):
    from lfpbold.ingest import read_study

    study = tmp_path / "study"
    shutil.copytree(base, study)
    symlink_out(study)
    assert len(read_study(study).scans) == 1
    records = read_study(study, follow_symlinks=True)
    assert [str(e) for e in records.errors] == [] and len(records.scans) == 2
    inside = study / "sub-01" / "link"  # a link that stays in the study folder is fine
    inside.symlink_to(study / "sub-01" / "sub-01_sessions.tsv")
    assert len(read_study(study).scans) == 1


def test_a_failed_scan_leaves_no_rows_and_the_next_scans_go_in(embedded_db, tmp_path, monkeypatch):
    """Each scan goes in whole or not at all; a scan the database refuses does not stop the others."""
    from ingest_fixtures import make_study

    from lfpbold.schemas import acquisition as acq
    from lfpbold.schemas import params

    study = tmp_path / "study"
    make_study(study, subjects=("01",), runs=(1, 2, 3), n_volumes=N_VOLUMES)
    real = acq.LFPRecording.Channel.insert

    def insert(rows, **kw):
        rows = list(rows)
        if rows and rows[0]["run"] == 2:
            raise RuntimeError("the server went away")
        return real(rows, **kw)

    monkeypatch.setattr(acq.LFPRecording.Channel, "insert", staticmethod(insert))
    report = ingest_study(study)
    assert [k["run"] for k in report.inserted] == [1, 3], [str(e) for e in report.errors]
    (err,) = report.errors
    assert err.field == "database" and "the server went away" in err.reason and "run-2_bold" in err.path
    for table in (acq.Scan, acq.FMRIRun, acq.LFPRecording, acq.LFPRecording.Channel, params.AnalysisSelection):
        assert sorted({r["run"] for r in table.proj().to_dicts()}) == [1, 3], table.__name__


# ------------------------------------------------------------------------------- the one-pass check


@pytest.mark.parametrize("kind", ["nii.gz", "nii", "nifti2", "two gzip members", "int16 scaled"])
def test_one_pass_check_hashes_what_it_decodes(tmp_path, monkeypatch, kind):
    """The digest is the file's SHA-256, the file is opened and read once, and every layout decodes."""
    import builtins
    import hashlib

    import nibabel as nib

    from lfpbold.ingest.nifti import check_bold_samples

    data = np.random.default_rng(1).standard_normal((*SHAPE, 7)).astype(np.float32)
    path = tmp_path / ("bold.nii" if kind == "nii" else "bold.nii.gz")
    if kind == "nifti2":
        nib.save(nib.Nifti2Image(data, np.eye(4)), str(path))
    elif kind == "int16 scaled":
        img = nib.Nifti1Image((data * 100).astype(np.int16), np.eye(4))
        img.header.set_slope_inter(0.01, 0)
        nib.save(img, str(path))
    else:
        write_nifti(path, data, t_r=1.0)
    if kind == "two gzip members":  # as a parallel gzip (pigz -i, bgzip) writes it
        raw = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kw):
        if Path(file) == path:
            opened.append(file)
        return real_open(file, *args, **kw)

    monkeypatch.setattr(builtins, "open", counting_open)
    digest = check_bold_samples(path, np.ones(SHAPE, bool))
    monkeypatch.setattr(builtins, "open", real_open)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(opened) == 1
    assert check_bold_samples(path, None, checksum=False) == ""


def test_one_pass_check_names_the_first_bad_voxel(tmp_path):
    from lfpbold.ingest.nifti import check_bold_samples

    data = np.zeros((*SHAPE, 5), np.float32)
    data[1, 2, 0, 3] = -np.inf
    path = tmp_path / "bold.nii.gz"
    write_nifti(path, data, t_r=1.0)
    with pytest.raises(IngestError) as exc:
        check_bold_samples(path)
    assert exc.value.field == "voxels"
    assert exc.value.reason == "volume 3: 1 non-finite value(s), the first at voxel (1, 2, 0) = -inf"
