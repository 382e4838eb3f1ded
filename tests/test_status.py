"""lfpbold status: keys done, pending, reserved and errored per table; ingest/populate verbosity."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

import lfpbold
from lfpbold.cli import main
from lfpbold.pipeline import ingest_study

pytestmark = pytest.mark.db


def test_status_counts_done_pending_reserved_and_errored(embedded_db, small_study, tmp_path):
    from lfpbold.schemas import acquisition, analysis

    study = tmp_path / "study"
    shutil.copytree(small_study, study)
    assert not ingest_study(study).errors
    victim = acquisition.LFPRecording.to_dicts(limit=1, order_by=["subject", "session", "run"])[0]
    (tmp_path / "hidden").mkdir()
    shutil.move(tmp_path / victim["nwb_path"], tmp_path / "hidden")  # stored relative to the data root (tmp_path)
    # a worker's run of CleanLFP: the hidden file's two implants fail and are recorded
    analysis.CleanLFP.populate(reserve_jobs=True, suppress_errors=True, display_progress=False)
    # and another worker holds one BandPower key
    analysis.BandPower.jobs.refresh()
    held = analysis.BandPower.jobs.pending.keys(order_by=list(analysis.BandPower.primary_key))[0]
    assert analysis.BandPower.jobs.reserve(held)

    rows = {s.table: s for s in lfpbold.status()}
    n_scans = len(acquisition.Scan())
    clean = rows["CleanLFP"]
    assert (clean.done, clean.pending, clean.reserved, clean.errored) == (2 * n_scans - 2, 0, 0, 2)
    scan = {k: victim[k] for k in ("subject", "session", "run")}
    assert sorted(k["region"] for k, _ in clean.errors) == ["ACC", "M1"]
    assert all({**k, **scan} == k for k, _ in clean.errors)
    assert all(victim["nwb_path"].split("/")[-1] in line and "\n" not in line for _, line in clean.errors)
    band = rows["BandPower"]
    assert (band.done, band.pending, band.reserved, band.errored) == (0, 2 * n_scans - 3, 1, 0)
    assert (rows["PreprocessedBold"].done, rows["PreprocessedBold"].pending) == (0, n_scans)
    assert rows["Cohort"].pending == 0  # nothing to summarise yet

    r = CliRunner().invoke(main, ["--prefix", embedded_db.prefix, "status"])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("CleanLFP "))
    assert line.split() == ["CleanLFP", str(2 * n_scans - 2), "0", "0", "2"]
    assert f'"subject": "{victim["subject"]}"' in r.output and victim["nwb_path"].split("/")[-1] in r.output


def test_ingest_verbose_and_quiet(embedded_db, small_study):
    prefix = embedded_db.prefix
    r = CliRunner().invoke(main, ["--prefix", prefix, "ingest", "--verbose", str(small_study)])
    assert r.exit_code == 0, r.output
    assert r.output.count("  inserted {") == 8 and "8 scan(s) inserted" in r.output
    r = CliRunner().invoke(main, ["--prefix", prefix, "ingest", "-q", str(small_study)])
    assert r.exit_code == 0 and r.output.strip().endswith("0 scan(s) inserted, 8 already there"), r.output
    r = CliRunner().invoke(main, ["--prefix", prefix, "populate", "--quiet", "--verbose"])
    assert r.exit_code == 2 and "exclude each other" in r.output


def test_ingest_progress_callback_counts_every_scan(embedded_db, small_study):
    seen = []
    ingest_study(small_study, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 8) for i in range(1, 9)]


def test_status_shows_the_errors_of_a_populate_without_reserve_jobs(embedded_db, small_study, tmp_path, monkeypatch):
    from lfpbold import pipeline
    from lfpbold.schemas import acquisition, analysis

    study = tmp_path / "study"
    shutil.copytree(small_study, study)
    assert not ingest_study(study).errors
    victim = acquisition.LFPRecording.to_dicts(limit=1, order_by=["subject", "session", "run"])[0]
    (tmp_path / "hidden").mkdir()
    shutil.move(tmp_path / victim["nwb_path"], tmp_path / "hidden")
    monkeypatch.setattr(pipeline, "computed_tables", lambda: [analysis.CleanLFP])  # the first table is enough
    outcome = pipeline.populate(display_progress=False)  # direct: DataJoint itself keeps no job here
    assert len(outcome["CleanLFP"]["error_list"]) == 2
    n_scans = len(acquisition.Scan())
    clean = {s.table: s for s in lfpbold.status()}["CleanLFP"]
    assert (clean.done, clean.pending, clean.reserved, clean.errored) == (2 * n_scans - 2, 0, 0, 2)
    assert sorted(k["region"] for k, _ in clean.errors) == ["ACC", "M1"]
    name = victim["nwb_path"].split("/")[-1]
    assert all(name in line and "\n" not in line for _, line in clean.errors)
    job = (analysis.CleanLFP.jobs & "status = 'error'").to_dicts(limit=1)[0]
    assert job["host"] and job["pid"] and job["completed_time"] is not None
    r = CliRunner().invoke(main, ["--prefix", embedded_db.prefix, "status"])
    line = next(ln for ln in r.output.splitlines() if ln.startswith("CleanLFP "))
    assert line.split() == ["CleanLFP", str(2 * n_scans - 2), "0", "0", "2"]
    assert name in r.output
    # the file back: the next populate retries those keys, and their errors go
    shutil.move(tmp_path / "hidden" / name, tmp_path / victim["nwb_path"])
    outcome = pipeline.populate(display_progress=False)
    assert outcome["CleanLFP"] == {"success_count": 2, "error_list": []}
    clean = {s.table: s for s in lfpbold.status()}["CleanLFP"]
    assert (clean.done, clean.errored, clean.errors) == (2 * n_scans, 0, [])
    assert len(analysis.CleanLFP.jobs.errors) == 0
