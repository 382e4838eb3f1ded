"""Integrity at every read: makes refuse a file that is not the one ingested; check, --replace, --dry-run, roots."""

from __future__ import annotations

import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from lfpbold import integrity
from lfpbold.integrity import FileIntegrityError, resolve, stored_path, verify_file
from lfpbold.pipeline import ingest_study, populate


@pytest.fixture(autouse=True)
def _default_settings():
    """populate(verify=..., data_root=...) sets them for the process: back to the defaults after each test."""
    yield
    integrity.configure()


# --- the check itself, on plain files -------------------------------------------------------------


@pytest.fixture
def plain_file(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"0123456789" * 100)
    st = os.stat(path)
    from lfpbold.ingest import sha256

    return path, {"sha256": sha256(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def test_same_stat_passes_without_hashing(plain_file, monkeypatch):
    path, rec = plain_file
    monkeypatch.setattr(integrity, "_hash", lambda p: pytest.fail("hashed although size and mtime match"))
    assert verify_file(path, **rec, verify="stat") == path


def test_touched_file_is_hashed_and_passes(plain_file):
    path, rec = plain_file
    os.utime(path, ns=(rec["mtime_ns"] + 5 * 10**9, rec["mtime_ns"] + 5 * 10**9))
    assert verify_file(path, **rec, verify="stat") == path


def test_rewritten_file_is_refused_naming_it(plain_file):
    path, rec = plain_file
    path.write_bytes(b"9876543210" * 100)  # same size, new mtime
    with pytest.raises(FileIntegrityError) as exc:
        verify_file(path, **rec, verify="stat")
    assert exc.value.path == str(path) and str(path) in str(exc.value)
    assert "changed since it was ingested" in str(exc.value) and "--replace" in str(exc.value)


def test_full_catches_what_stat_cannot(plain_file):
    path, rec = plain_file
    path.write_bytes(b"9876543210" * 100)
    os.utime(path, ns=(rec["mtime_ns"], rec["mtime_ns"]))  # same size and mtime, other content
    assert verify_file(path, **rec, verify="stat") == path  # what a stat check cannot see...
    with pytest.raises(FileIntegrityError, match="changed since it was ingested"):
        verify_file(path, **rec, verify="full")  # ...the full check does


def test_full_hashes_at_every_read_but_reuses_a_hash_within_one_make(plain_file, monkeypatch):
    path, rec = plain_file
    calls = []
    real = integrity._hash
    monkeypatch.setattr(integrity, "_hash", lambda p: calls.append(p) or real(p))
    verify_file(path, **rec, verify="full")
    verify_file(path, **rec, verify="full", again=True)  # a tripartite make's second fetch
    verify_file(path, **rec, verify="full")  # the next make
    assert len(calls) == 2


def test_missing_and_unverifiable_files(plain_file, tmp_path):
    path, rec = plain_file
    with pytest.raises(FileIntegrityError, match="missing"):
        verify_file(tmp_path / "gone.bin", **rec)
    no_sha = dict(rec, sha256="")
    assert verify_file(path, **no_sha, verify="stat") == path  # size and mtime as recorded
    with pytest.raises(FileIntegrityError, match="--no-checksums"):
        verify_file(path, **no_sha, verify="full")
    path.write_bytes(b"x")
    with pytest.raises(FileIntegrityError, match="no SHA-256 was recorded"):
        verify_file(path, **no_sha, verify="stat")
    with pytest.raises(ValueError, match="verify must be one of stat, full"):
        verify_file(path, **rec, verify="fast")


def test_paths_relative_to_a_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv(integrity.ENV_DATA_ROOT, raising=False)
    integrity.configure()
    study = tmp_path / "mnt" / "study"
    (study / "sub-01").mkdir(parents=True)
    (study / "sub-01" / "f.nwb").write_bytes(b"x")
    assert integrity.ingest_root(study) == tmp_path / "mnt"  # default: the study folder's parent
    assert stored_path(study / "sub-01" / "f.nwb", tmp_path / "mnt") == "study/sub-01/f.nwb"
    assert resolve("study/sub-01/f.nwb", [tmp_path / "old", tmp_path / "mnt"]) == study / "sub-01" / "f.nwb"
    assert resolve(str(study / "sub-01" / "f.nwb")) == study / "sub-01" / "f.nwb"  # absolute: as is
    with pytest.raises(FileIntegrityError, match="LFPBOLD_DATA_ROOT"):
        resolve("study/sub-01/f.nwb", [tmp_path / "old"])
    monkeypatch.setenv(integrity.ENV_DATA_ROOT, str(tmp_path / "mnt"))
    assert resolve("study/sub-01/f.nwb", [tmp_path / "old"]) == study / "sub-01" / "f.nwb"
    with pytest.raises(ValueError, match="not inside the data root"):
        integrity.ingest_root(tmp_path / "elsewhere" / "study")
    with pytest.raises(ValueError, match="verify must be one of"):
        integrity.configure(verify="sometimes")


def test_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(FileIntegrityError("/data/x.nwb", "missing")))
    assert isinstance(err, FileIntegrityError) and err.path == "/data/x.nwb" and str(err) == "/data/x.nwb: missing"


# --- on the databases ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """One awake rat, one ACC implant, two runs: the smallest study every table computes for."""
    from lfpbold.simulate import simulate_study

    out = tmp_path_factory.mktemp("tiny") / "study"
    simulate_study(out, subjects=1, sessions=1, scans=2, regions=("ACC",), states=("awake",), seed=0, size="small")
    return out


def _bold(study, run):
    return next(study.rglob(f"*_run-{run}_bold.nii.gz"))


def _rewrite_bold(path):
    """The same file name, other voxels (as a colleague re-exporting a run would)."""
    img = nib.load(path)
    data = np.roll(np.asarray(img.dataobj), 5, axis=3)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)


def _counts():
    from lfpbold.pipeline import tables_by_schema

    return {name: len(t()) for rows in tables_by_schema().values() for name, t in rows}


@pytest.mark.db
def test_rewritten_bold_errors_its_keys_and_touched_files_still_compute(db, tiny_study, tmp_path):
    from lfpbold.schemas import acquisition, analysis, params, relations

    root = tmp_path / "data"
    study = root / "study"
    shutil.copytree(tiny_study, study)
    report = ingest_study(study)
    assert report.errors == [] and len(report.inserted) == 2
    row = (acquisition.FMRIRun & {"run": 1}).fetch1()
    assert row["bold_path"] == _bold(study, 1).relative_to(root).as_posix()  # relative to the study's parent
    assert row["bold_size"] == _bold(study, 1).stat().st_size and row["bold_mtime_ns"] > 0

    _rewrite_bold(_bold(study, 1))
    for path in [_bold(study, 2), *study.rglob("*_run-2_ecephys.nwb")]:  # mtime only, same content
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 7 * 10**9))
    outcome = populate(display_progress=False)
    errors = outcome["PreprocessedBold"]["error_list"]
    assert len(errors) == 1
    key, message = errors[0]
    assert key["run"] == 1 and "FileIntegrityError" in message and str(_bold(study, 1)) in message
    assert "changed since it was ingested" in message
    assert not analysis.PreprocessedBold & {"run": 1}
    assert not relations.SeedMap & {"run": 1} and not relations.TemporalCorrelation & {"run": 1}
    assert len(analysis.PreprocessedBold & {"run": 2}) == 1 and len(relations.SeedMap & {"run": 2}) == 1
    assert len(analysis.CleanLFP()) == 2  # both NWB files are as ingested (run 2's only touched)
    assert all(not r["error_list"] for name, r in outcome.items() if name != "PreprocessedBold"), outcome

    # lfpbold check names the one changed file
    problems = integrity.check().problems
    assert [(p.table, p.key["run"]) for p in problems] == [("FMRIRun", 1)]
    assert problems[0].path == str(_bold(study, 1)) and "changed" in problems[0].problem

    # re-ingesting the changed scan needs --replace, which says what it deleted and keeps the selections
    again = ingest_study(study)
    assert again.inserted == [] and again.replaced == [] and len(again.errors) == 1
    assert "--replace" in str(again.errors[0]) and _bold(study, 1).name in str(again.errors[0])
    bandpass = params.BoldParams.insert_new_params(params.BoldParams.bandpass_params(), "band-pass only")
    params.AnalysisSelection.insert1({"subject": "01", "session": "awake01", "run": 1, **_combo(bold=bandpass)})
    before = _counts()
    replaced = ingest_study(study, replace=True)
    assert replaced.errors == [] and [k["run"] for k, _ in replaced.replaced] == [1]
    counts = replaced.replaced[0][1]
    assert counts["Scan"] == 1 and counts["FMRIRun"] == 1 and counts["CleanLFP"] == 1
    after = _counts()
    assert before["CleanLFP"] - after["CleanLFP"] == 1 and before["BandPower.Band"] - after["BandPower.Band"] == 105
    inserted = {"Scan": 1, "FMRIRun": 1, "LFPRecording": 1, "LFPRecording.Channel": 4, "AnalysisSelection": 2}
    assert replaced.deleted_rows == sum(before.values()) - sum(after.values()) + sum(inserted.values())
    assert len(params.AnalysisSelection & {"run": 1}) == 2  # the scan's two selections, kept
    assert (acquisition.FMRIRun & {"run": 1}).fetch1("bold_sha256") != row["bold_sha256"]
    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values()), outcome
    assert len(analysis.PreprocessedBold & {"run": 1, "bold_paramset": 0}) == 1
    assert integrity.check().ok


def _combo(bold=0):
    return {"lfp_paramset": 0, "band_paramset": 0, "bold_paramset": bold, "relation_paramset": 0}


@pytest.mark.db
def test_verify_full_catches_a_rewrite_with_the_same_size_and_mtime(embedded_db, tiny_study, tmp_path):
    from lfpbold.schemas import analysis

    study = tmp_path / "study"
    shutil.copytree(tiny_study, study)
    assert not ingest_study(study).errors
    nwb = next(study.rglob("*_run-1_ecephys.nwb"))
    st = nwb.stat()
    with open(nwb, "r+b") as f:  # one byte near the end, in place: same size
        f.seek(st.st_size - 1)
        last = f.read(1)
        f.seek(st.st_size - 1)
        f.write(bytes([last[0] ^ 0xFF]))
    os.utime(nwb, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the mtime put back
    outcome = populate(display_progress=False, verify="full")
    errors = outcome["CleanLFP"]["error_list"]
    assert len(errors) == 1 and str(nwb) in errors[0][1] and "changed since it was ingested" in errors[0][1]
    assert not analysis.CleanLFP & {"run": 1}


@pytest.mark.db
def test_dry_run_lists_everything_and_inserts_nothing(db, tiny_study, tmp_path):
    import json

    study = tmp_path / "study"
    shutil.copytree(tiny_study, study)
    bold2 = next(study.rglob("*_run-2_bold.nii.gz"))
    sidecar = bold2.with_name(bold2.name.replace(".nii.gz", ".json"))  # run 2's own, over the inherited one
    meta = json.loads((study / "task-rest_bold.json").read_text())
    meta["SliceTiming"] = [0.0]  # one value for ten slices: a problem with run 2
    sidecar.write_text(json.dumps(meta))
    before = _counts()
    report = ingest_study(study, dry_run=True)
    assert _counts() == before
    assert report.dry_run and report.inserted == []
    assert report.planned["subjects"] == [{"subject": "01"}]
    assert report.planned["sessions"] == [{"subject": "01", "session": "awake01"}]
    assert report.planned["scans"] == [{"subject": "01", "session": "awake01", "run": 1}]
    files = report.planned["files"]
    assert len(files) == 3 and all(f.startswith(("study/sub-01/", "study/derivatives/")) for f in files)
    assert any(getattr(e, "field", "") == "SliceTiming" for e in report.errors)

    assert ingest_study(study).inserted == [{"subject": "01", "session": "awake01", "run": 1}]
    _rewrite_bold(_bold(study, 1))
    before = _counts()
    report = ingest_study(study, dry_run=True, replace=True)
    assert _counts() == before
    assert report.planned["subjects"] == [] and report.planned["scans"] == [
        {"subject": "01", "session": "awake01", "run": 1}
    ]
    assert report.replaced[0][1]["FMRIRun"] == 1


@pytest.mark.db
def test_moved_study_populates_under_another_data_root(embedded_db, tiny_study, tmp_path, monkeypatch):
    from lfpbold.schemas import acquisition, analysis

    monkeypatch.delenv(integrity.ENV_DATA_ROOT, raising=False)
    first = tmp_path / "mount-a" / "study"
    shutil.copytree(tiny_study, first)
    assert not ingest_study(first).errors
    stored = acquisition.LFPRecording.to_arrays("nwb_path")
    assert all(not os.path.isabs(p) and p.startswith("study/") for p in stored)

    # another machine mounts the data elsewhere; copies get new modification times
    second = tmp_path / "mount-b" / "study"
    shutil.copytree(first, second, copy_function=shutil.copy)
    shutil.rmtree(first)
    outcome = populate(display_progress=False)  # the recorded root no longer holds it
    messages = [m for _, m in outcome["CleanLFP"]["error_list"]]
    assert len(messages) == 2 and all("LFPBOLD_DATA_ROOT" in m for m in messages)
    assert not integrity.check().ok
    assert integrity.check(data_root=tmp_path / "mount-b").ok
    monkeypatch.setenv(integrity.ENV_DATA_ROOT, str(tmp_path / "mount-b"))
    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values()), outcome
    assert len(analysis.CleanLFP()) == 2 and len(analysis.PreprocessedBold()) == 2


@pytest.mark.db
def test_older_databases_absolute_paths_and_no_size_or_mtime_still_work(embedded_db, tiny_study, tmp_path):
    from lfpbold.pipeline import activate
    from lfpbold.schemas import acquisition, analysis

    study = tmp_path / "data" / "study"
    shutil.copytree(tiny_study, study)
    assert not ingest_study(study).errors
    # as a database made before data roots, size and mtime: absolute paths, no such columns
    for table, role in ((acquisition.FMRIRun, "bold"), (acquisition.LFPRecording, "nwb")):
        for key in table.keys():
            path = (table & key).fetch1(f"{role}_path")
            table.update1(dict(key, **{f"{role}_path": str(tmp_path / "data" / path)}))
        embedded_db.connection.query(
            f"ALTER TABLE {table.full_table_name} DROP COLUMN {role}_size, DROP COLUMN {role}_mtime_ns"
        )
    acquisition.DataRoot.delete_quick()
    activate(embedded_db.prefix, embedded_db.connection)  # read the altered headings
    assert "bold_size" not in acquisition.FMRIRun.heading.names
    _rewrite_bold(_bold(study, 2))
    analysis.CleanLFP.populate()
    errors = analysis.PreprocessedBold.populate(suppress_errors=True)["error_list"]
    assert len(errors) == 1 and errors[0][0]["run"] == 2 and str(_bold(study, 2)) in errors[0][1]
    assert len(analysis.CleanLFP()) == 2 and len(analysis.PreprocessedBold()) == 1
    assert [p.key["run"] for p in integrity.check().problems] == [2]
    report = ingest_study(study, replace=True)  # inserts into the older tables too
    assert report.errors == [] and len(report.replaced) == 1
    assert analysis.PreprocessedBold.populate(suppress_errors=True)["error_list"] == []
    assert integrity.check().ok


@pytest.mark.db
def test_cli_check_replace_dry_run_and_data_root(embedded_db, tiny_study, tmp_path):
    from click.testing import CliRunner

    from lfpbold.cli import main

    run = CliRunner().invoke
    prefix = embedded_db.prefix
    study = tmp_path / "data" / "study"
    shutil.copytree(tiny_study, study)
    r = run(main, ["--prefix", prefix, "ingest", str(study), "--dry-run"])
    assert r.exit_code == 0 and "would insert 2 scans" in r.output and "nothing inserted" in r.output, r.output
    r = run(main, ["--prefix", prefix, "ingest", str(study), "--data-root", str(tmp_path / "elsewhere")])
    assert r.exit_code == 1 and "not inside the data root" in r.output, r.output
    r = run(main, ["--prefix", prefix, "ingest", str(study)])
    assert r.exit_code == 0 and "2 scan(s) inserted" in r.output, r.output
    r = run(main, ["--prefix", prefix, "check"])
    assert r.exit_code == 0 and "check: 4 file(s)" in r.output and "0 changed or missing" in r.output, r.output
    _rewrite_bold(_bold(study, 2))
    r = run(main, ["--prefix", prefix, "check"])
    assert r.exit_code == 1 and str(_bold(study, 2)) in r.output and "1 changed or missing" in r.output, r.output
    r = run(main, ["--prefix", prefix, "ingest", str(study)])
    assert r.exit_code == 1 and "--replace" in r.output, r.output
    r = run(main, ["--prefix", prefix, "ingest", str(study), "--replace"])
    assert r.exit_code == 0 and "replace subject=01 session=awake01 run=2: deleted 8 row(s)" in r.output, r.output
    r = run(main, ["--prefix", prefix, "populate", "--verify", "sometimes"])
    assert r.exit_code == 2 and "--verify" in r.output
    r = run(main, ["--prefix", prefix, "check", "--data-root", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "4 changed or missing" in r.output, r.output
