"""End to end on real databases: ingest a simulated study, populate everything, query the results."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from lfpbold.pipeline import computed_tables, ingest_study, populate

pytestmark = pytest.mark.db

CLASSIC = ["delta", "theta", "alpha", "beta", "gamma"]


def _counts():
    from lfpbold.schemas import acquisition as acq

    return {
        t.__name__: len(t())
        for t in (
            acq.Subject,
            acq.Session,
            acq.Implant,
            acq.Scan,
            acq.FMRIRun,
            acq.LFPRecording,
            acq.LFPRecording.Channel,
            acq.Atlas.ROI,
        )
    }


def test_ingest_populate_query_on_every_backend(db, small_study, tmp_path):
    from lfpbold.export import export_maps
    from lfpbold.query import results
    from lfpbold.schemas import analysis, cohort, relations

    truth = json.loads((small_study / "ground_truth.json").read_text())
    n_scans = len(truth["scans"])
    report = ingest_study(small_study)
    assert report.errors == []
    assert len(report.inserted) == n_scans
    counts = _counts()
    assert counts["Subject"] == 2 and counts["Session"] == 4 and counts["Implant"] == 4
    assert counts["Scan"] == counts["FMRIRun"] == counts["LFPRecording"] == n_scans
    from lfpbold.schemas import params

    assert len(params.AnalysisSelection & {"relation_paramset": 0, "bold_paramset": 0}) == n_scans  # the defaults

    again = ingest_study(small_study)  # idempotent: nothing new, nothing changed
    assert again.inserted == [] and len(again.skipped) == n_scans
    assert _counts() == counts

    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values()), outcome
    assert len(analysis.CleanLFP()) == n_scans * 2
    assert len(analysis.BandPower.Band()) == n_scans * 2 * 105
    assert len(analysis.PreprocessedBold()) == n_scans
    usable = len(analysis.PreprocessedBold & {"excluded": False})
    assert len(relations.SeedMap()) == usable * 2
    assert len(relations.SpatialSimilarity.Band()) == usable * 2 * 105
    # Pearson and Spearman on every band, mutual information on the five named bands (RelationParams set 0)
    assert len(relations.TemporalCorrelation.Metric()) == usable * 2 * (105 * 2 + 5)
    assert len(relations.TemporalCorrelation.Shuffle()) == usable * 2 * 5
    assert len(relations.LFPPowerMap.Map()) == usable * 2 * 105 * 3
    assert len(cohort.Cohort()) >= 2
    excluded = (analysis.PreprocessedBold & {"excluded": True}).to_dicts()
    assert all("FD" in r["exclusion_reason"] for r in excluded)
    truth_excluded = sum(s["excluded_expected"] for s in truth["scans"])
    assert len(excluded) == truth_excluded
    assert len(relations.LFPRemoval.Method()) == usable * 2 * 3
    assert all(r["success_count"] == 0 for r in populate(display_progress=False).values())  # nothing left

    df = results()
    expected_cols = {
        "state",
        "region",
        "band",
        "spatial_r",
        "scanwise_spatial_r",
        "temporal_r",
        "temporal_t",
        "temporal_p",
        "n_scans",
    }
    assert expected_cols <= set(df.columns)
    assert set(df["band"]) == set(CLASSIC)
    assert set(df["region"]) == {"ACC", "M1"}
    assert df["n_scans"].sum() == usable * 2 * 5
    by_subject = results(by=["subject", "state", "region", "band"])
    assert set(by_subject["subject"]) == {"01", "02"}
    assert by_subject["n_scans"].sum() == df["n_scans"].sum()

    # The stored cohort rows (what results() reads) and a summary of the stored per-scan rows now
    # are the same computation.
    for group, summary in cohort.summarize(cohort.gather(cohort.combination(cohort.Cohort.keys()[0]))):
        gamma = next(b for b in summary.bands if b["band"] == "gamma")
        live = df[(df.state == group["state"]) & (df.region == group["region"]) & (df.band == "gamma")].iloc[0]
        assert live.spatial_r == pytest.approx(gamma["spatial_r"], abs=1e-6)
        assert live.temporal_r == pytest.approx(gamma["temporal_r"], abs=1e-9)
        assert live.spearman == pytest.approx(gamma["metrics"]["spearman"], abs=1e-9)
        assert live.removal_soft_r == pytest.approx(summary.removal["soft"], abs=1e-6)

    written = export_maps(tmp_path / "maps")
    seeds = [p for p in written if p.parent.name == "func" and p.name.endswith("seed_statmap.nii.gz")]
    assert len(seeds) == usable * 2
    row = relations.SeedMap.to_dicts(limit=1)[0]
    stem = f"sub-{row['subject']}_ses-{row['session']}_task-rest_run-{row['run']}_space-"
    path = next(p for p in seeds if p.name.startswith(stem) and f"_desc-{row['region']}seed_" in p.name)
    img = nib.load(path)
    from lfpbold.schemas import acquisition

    brain = acquisition.Atlas.fetch1("brain_mask") if len(acquisition.Atlas()) == 1 else None
    vol = np.asarray(img.dataobj)
    np.testing.assert_allclose(vol[brain], row["seed_map"], rtol=1e-6)
    assert np.isnan(vol[~brain]).all()


@pytest.fixture(scope="module")
def sedated_study(tmp_path_factory):
    from lfpbold.simulate import simulate_study

    out = tmp_path_factory.mktemp("sedated") / "study"
    simulate_study(
        out,
        subjects=3,
        sessions=2,
        scans=3,
        regions=("ACC", "M1"),
        states=("sedated",),
        seed=11,
        size="small",
        true_temporal_r=0.59,
        cnr=1.3,
    )
    return out


def test_recovers_the_simulated_truth(embedded_db, sedated_study):
    from lfpbold.query import results
    from lfpbold.schemas import cohort, relations

    truth = json.loads((sedated_study / "ground_truth.json").read_text())
    assert not ingest_study(sedated_study).errors
    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values()), outcome
    df = results()
    gamma = df.query("band == 'gamma'")
    assert len(gamma) == 2
    assert (gamma["spatial_r"] >= 0.8).all(), gamma
    # The honest expected value: after the study's own preprocessing (nuisance regression incl. the
    # global signal lowers gamma's r at 300 volumes), not the raw attenuation formula (0.371 here).
    expected = truth["expected_after_preprocessing_r"]["sedated"]["gamma"]
    assert expected < truth["expected_observed_temporal_r"]["sedated"]
    assert np.abs(gamma["temporal_r"] - expected).max() <= 0.1, (gamma, expected)
    # The study's sign pattern: lower bands anti-correlated with the network, gamma positive.
    assert (df.query("band == 'delta'")["temporal_r"] < 0).all()
    assert (gamma["temporal_p"] < 0.001).all()
    assert (gamma["shuffled_r"].abs() < 0.05).all()  # the temporally shuffled control carries nothing
    # Removing the LFP-derived time courses barely changes the networks.
    for method in ("ols", "soft", "censor"):
        assert (gamma[f"removal_{method}_r"] >= 0.9).all(), gamma
    # BOLD lags gamma power by a few seconds (the simulated HRF peaks at 3 s).
    assert gamma["peak_lag_s"].between(1.0, 6.0).all(), gamma["peak_lag_s"]
    # The HRF sweep finds the simulated HRF's response delay (p[0] = 4 s).
    sweep = (relations.HRFSensitivity & {"region": "M1"}).to_dicts()
    mean_r = np.mean([s["temporal_r"] for s in sweep], axis=0)
    best = np.unravel_index(np.argmax(mean_r), mean_r.shape)
    assert abs(sweep[0]["response_delays"][best[0]] - 4.0) <= 1.0
    # The table holds the study's noise-ceiling simulation curves for each cohort...
    curves = (cohort.Cohort.NoiseCeiling & {"region": "M1"}).to_pandas()
    assert len(curves) == 50 and curves["mean_scan_r"].is_monotonic_increasing
    assert np.isfinite(gamma["cnr"]).all() and np.isfinite(gamma["inferred_true_r"]).all()
    # ...and the CNR estimated from the maps is the simulated one (one CNR for maps and time courses).
    assert np.abs(gamma["cnr"] - 1.3).max() <= 0.3, gamma["cnr"]
    # The inferred true r is the simulated 0.59: the noise ceiling divides the observed r by what
    # the nuisance regression leaves of an r at 300 volumes (about 0.87; without it, 0.41 here),
    # given the true CNR and as stored, with the CNR the maps give.
    from lfpbold.plugins.noise_ceiling import infer_true_r, nuisance_retention

    n = int(gamma["n_scans"].iloc[0])
    kept = nuisance_retention(300, t_r=1.0, n_confounds=9)
    inferred = [infer_true_r(r / kept, cnr=1.3, n_trials=n, n_timepoints=300)["true_r"] for r in gamma["temporal_r"]]
    assert all(x == pytest.approx(0.59, abs=0.1) for x in inferred), inferred
    assert np.abs(gamma["inferred_true_r"] - 0.59).max() <= 0.15, gamma["inferred_true_r"]


def test_failed_make_leaves_no_partial_rows_and_rerun_resumes(embedded_db, small_study, tmp_path):
    from lfpbold.schemas import acquisition, analysis

    study = tmp_path / "study"
    shutil.copytree(small_study, study)
    assert not ingest_study(study).errors
    victim = acquisition.LFPRecording.to_dicts(limit=1)[0]
    nwb = tmp_path / victim["nwb_path"]  # stored relative to the data root, the study folder's parent
    hidden = tmp_path / "hidden.nwb"
    shutil.move(nwb, hidden)
    outcome = populate(display_progress=False)
    errors = outcome["CleanLFP"]["error_list"]
    assert len(errors) == 2  # both implants of the scan whose file is gone
    key = {k: victim[k] for k in ("subject", "session", "run")}
    assert len(analysis.CleanLFP & key) == 0
    assert len(analysis.CleanLFP.Channel & key) == 0
    assert len(analysis.CleanLFP()) == (len(acquisition.Scan()) - 1) * 2
    shutil.move(hidden, nwb)
    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values())
    assert outcome["CleanLFP"]["success_count"] == 2
    assert len(analysis.CleanLFP()) == len(acquisition.Scan()) * 2


def test_bad_scan_is_reported_and_the_rest_inserted(embedded_db, small_study, tmp_path):
    from lfpbold.schemas import acquisition

    study = tmp_path / "study"
    shutil.copytree(small_study, study)
    # the simulator keeps the TR in the root sidecar only; one run gets a sidecar of its own with it
    kept = next(study.rglob("*run-1_bold.nii.gz"))
    own = kept.with_name(kept.name.replace(".nii.gz", ".json"))
    own.write_text(json.dumps({"RepetitionTime": 1.0}))
    root = study / "task-rest_bold.json"
    root_meta = json.loads(root.read_text())
    root_meta.pop("RepetitionTime", None)
    root.write_text(json.dumps(root_meta))
    report = ingest_study(study)
    assert any(getattr(e, "field", "") == "RepetitionTime" for e in report.errors)
    bad = {e.path for e in report.errors}
    assert any("run-2_bold.json" in str(p) for p in bad) and not any(own.name in str(p) for p in bad)
    # every run lost its TR with the root sidecar, except the one whose own sidecar has it
    assert [k["run"] for k in report.inserted] == [1]
    assert len(acquisition.Scan()) == len(report.inserted)
    assert len(acquisition.FMRIRun()) == len(acquisition.LFPRecording()) == len(report.inserted)


def test_parameter_sets_side_by_side(embedded_db, small_study):
    from lfpbold.pipeline import select
    from lfpbold.query import results
    from lfpbold.schemas import analysis, params

    assert not ingest_study(small_study).errors
    populate(display_progress=False)
    p = params.BoldParams.bandpass_params()
    number = params.BoldParams.insert_new_params(p, "band-pass only")
    assert number == 1
    assert params.BoldParams.insert_new_params(p, "same again") == 1  # same parameters, same number
    before = len(analysis.PreprocessedBold & {"bold_paramset": 0})
    populate(display_progress=False)  # a new set computes nothing until it is selected
    assert len(analysis.PreprocessedBold & {"bold_paramset": 1}) == 0
    assert select(bold_paramset=1) == before
    assert select(bold_paramset=1) == 0  # selecting again changes nothing
    populate(display_progress=False)
    assert len(analysis.PreprocessedBold & {"bold_paramset": 0}) == before
    assert len(analysis.PreprocessedBold & {"bold_paramset": 1}) == before
    assert len(analysis.CleanLFP()) == before * 2  # the LFP side is shared by both BOLD sets
    a, b = results(bold_paramset=0), results(bold_paramset=1)
    assert len(a) == len(b) == 20
    assert not np.allclose(a["temporal_r"], b["temporal_r"])
    with pytest.raises(Exception, match="method"):
        params.BoldParams.insert_new_params({"bold_preprocessing": {"method": "no-such-method"}})


def test_a_set_selected_for_one_subject_computes_that_subject_only(embedded_db, small_study):
    from lfpbold.pipeline import select
    from lfpbold.query import results
    from lfpbold.schemas import acquisition, analysis, cohort, params, relations

    assert not ingest_study(small_study).errors
    populate(display_progress=False)
    counts = {t.__name__: len(t()) for t in computed_tables()}
    p = params.BoldParams.default_params()
    p["bold_preprocessing"]["global_signal"] = False
    number = params.BoldParams.insert_new_params(p, "study, no global signal regression")
    assert select(bold_paramset=number, subject="01") == len(acquisition.Scan & {"subject": "01"})
    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values()), outcome
    new = analysis.PreprocessedBold & {"bold_paramset": number}
    assert len(new) == len(acquisition.Scan & {"subject": "01"}) > 0
    assert set(new.to_arrays("subject")) == {"01"}
    for table in (relations.SeedMap, relations.TemporalCorrelation, relations.LFPRemoval):
        rows = table & {"bold_paramset": number}
        assert set(rows.to_arrays("subject")) == {"01"}
        assert len(rows) == len(table & {"bold_paramset": 0, "subject": "01"})
    assert outcome["CleanLFP"]["success_count"] == outcome["BandPower"]["success_count"] == 0  # LFP side reused
    assert len(analysis.CleanLFP()) == counts["CleanLFP"]
    assert set((cohort.Cohort & {"bold_paramset": number}).to_arrays("n_subjects")) == {1}
    df = results(bold_paramset=number)
    assert (df["n_subjects"] == 1).all() and len(df) == 20
    with pytest.raises(ValueError, match="No BoldParams set 99"):
        select(bold_paramset=99)


def test_cohort_rows_follow_new_scans(embedded_db, tmp_path):
    from lfpbold.schemas import cohort
    from lfpbold.simulate import simulate_study

    study = simulate_study(
        tmp_path / "s", subjects=1, sessions=1, scans=3, regions=("ACC",), states=("sedated",), seed=3, size="small"
    )
    held_back = tmp_path / "held_back"
    held_back.mkdir()
    run3 = [p for p in study.rglob("*run-3_*") if p.is_file()]
    assert len(run3) >= 3
    for p in run3:
        shutil.move(p, held_back / p.name)
    assert not ingest_study(study).errors
    populate(display_progress=False)
    assert cohort.Cohort.fetch1("n_scans") == 2
    for p in run3:  # the third scan arrives later
        shutil.move(held_back / p.name, p)
    report = ingest_study(study)
    assert not report.errors and len(report.inserted) == 1
    populate(display_progress=False)
    assert cohort.Cohort.fetch1("n_scans") == 3


def test_parallel_workers_share_the_job_queue(embedded_db, small_study):
    from lfpbold.schemas import analysis

    assert not ingest_study(small_study).errors
    outcome = populate(processes=2, reserve_jobs=True, display_progress=False, orphan_timeout=3600)
    assert all(not r["error_list"] for r in outcome.values()), outcome
    assert len(analysis.CleanLFP()) == len(analysis.CleanLFP.key_source)
    jobs = analysis.CleanLFP.jobs
    assert set(jobs.to_arrays("status")) <= {"success"}


def test_cli_end_to_end(embedded_db, small_study, tmp_path):
    from click.testing import CliRunner

    from lfpbold.cli import main

    run = CliRunner().invoke
    prefix = embedded_db.prefix
    r = run(main, ["--prefix", prefix, "ingest", str(small_study)])
    assert r.exit_code == 0, r.output
    assert "inserted" in r.output
    r = run(main, ["--prefix", prefix, "populate"])
    assert r.exit_code == 0, r.output
    r = run(main, ["--prefix", prefix, "results", "--format", "csv"])
    assert r.exit_code == 0, r.output
    from io import StringIO

    df = pd.read_csv(StringIO(r.output))
    assert len(df) == 20 and "temporal_p" in df.columns
    r = run(main, ["--prefix", prefix, "results", "--by", "subject,band", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert {"subject", "state", "region", "band"} <= set(json.loads(r.output)[0])
    r = run(main, ["--prefix", prefix, "select", "--subject", "01"])  # the defaults: already selected at ingest
    assert r.exit_code == 0 and "0 scan(s) newly selected" in r.output, r.output
    r = run(main, ["--prefix", prefix, "select", "--bold-paramset", "9"])
    assert r.exit_code == 1 and "No BoldParams set 9" in r.output, r.output
    r = run(main, ["--prefix", prefix, "results", "--by", "animal"])
    assert r.exit_code != 0 and "animal" in r.output
    r = run(main, ["--prefix", prefix, "db"])
    assert r.exit_code == 0, r.output
    assert "postgresql (embedded)" in r.output and f"{prefix}analysis" in r.output
    r = run(main, ["--prefix", prefix, "export", "maps", str(tmp_path / "maps")])
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "maps").rglob("*_stat-r_desc-*gammapower_statmap.nii.gz"))


def test_every_computed_table_has_a_short_definition_comment(embedded_db):
    for table in computed_tables():
        assert table.definition.strip().startswith("#"), table.__name__
