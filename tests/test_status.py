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


def test_ingest_progress_counts_the_bytes_read(embedded_db, small_study, tmp_path):
    from lfpbold.schemas import acquisition

    seen = []
    ingest_study(small_study, progress=lambda done, total: seen.append((done, total)))
    assert len(acquisition.Scan()) == 8
    # the files read are the BOLD runs and NWB files ingest recorded, sizes and all
    total = int(sum(acquisition.FMRIRun.to_arrays("bold_size")) + sum(acquisition.LFPRecording.to_arrays("nwb_size")))
    assert {t for _, t in seen} == {total} and seen[-1] == (total, total)
    done = [d for d, _ in seen]
    assert done == sorted(done) and len(set(done)) >= 16  # a step at least per file (8 BOLD, 8 NWB), never back
    # without checksums the NWB files are not hashed, and a scan that fails still counts its bytes
    study = tmp_path / "study"
    shutil.copytree(small_study, study)
    nwb = sorted(study.rglob("*_ecephys.nwb"))[0]
    cut = nwb.stat().st_size - 4096
    nwb.write_bytes(nwb.read_bytes()[:4096])
    seen = []
    report = ingest_study(study, checksums=False, progress=lambda done, total: seen.append((done, total)))
    assert len(report.errors) == 1 and nwb.name in str(report.errors[0])
    assert seen[-1] == (total - cut, total - cut)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
