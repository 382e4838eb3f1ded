"""The simulator's truths, recovered by the populated pipeline: bad contacts recorded, every band's temporal r."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.db


def test_cleanlfp_records_the_simulated_bad_channels(populated_db, small_study):
    from lfpbold.schemas import acquisition, analysis

    truth = json.loads((small_study / "ground_truth.json").read_text())
    expected = {
        (s["subject"], s["session"], s["run"], imp["region"], b["channel"]): b["kind"]
        for s in truth["scans"]
        for imp in s["implants"]
        for b in imp["bad_channels"]
    }
    assert len(expected) >= 2, "the shared small study should carry bad contacts for this test to mean anything"
    rows = (analysis.CleanLFP.Channel * acquisition.LFPRecording.Channel).to_dicts()
    assert rows and all("excluded_reason" in r for r in rows)
    recorded = {
        (r["subject"], r["session"], r["run"], r["region"], r["electrode"]): r["excluded_reason"]
        for r in rows
        if r["excluded_reason"] is not None
    }
    assert recorded == expected
    # Every implant of every scan has its row per channel, bad ones with lag 0 (left out, not shifted).
    assert all(r["lag_samples"] == 0 for r in rows if r["excluded_reason"] is not None)


@pytest.fixture(scope="module")
def cnr_study(tmp_path_factory, lfpbold_home):
    """12 sedated small scans (4 rats x 3 runs) at the study's CNR 1.3, ingested and populated on their own prefix."""
    import uuid

    from lfpbold.pipeline import drop, ingest_study, populate
    from lfpbold.simulate import simulate_study
    from tests.conftest import connect_backend

    study = simulate_study(tmp_path_factory.mktemp("cnr") / "study", subjects=4, scans=3, cnr=1.3, seed=0, size="small")
    prefix = f"t{uuid.uuid4().hex[:8]}cnr_"
    database = connect_backend("embedded", lfpbold_home, prefix)
    assert not ingest_study(study).errors
    outcome = populate(display_progress=False)
    assert not any(r["error_list"] for r in outcome.values()), outcome
    yield study, prefix
    drop(prefix, database.connection)


def _bind(lfpbold_home, prefix):
    from tests.conftest import connect_backend

    return connect_backend("embedded", lfpbold_home, prefix)


def test_every_band_observed_r_matches_expected_after_preprocessing(cnr_study, lfpbold_home):
    """Mean observed per-scan temporal r of every classic band within 0.05 of the simulator's
    ``expected_after_preprocessing_r`` (the honest expected value), over the kept scans."""
    from lfpbold.schemas import relations

    study, prefix = cnr_study
    _bind(lfpbold_home, prefix)
    truth = json.loads((study / "ground_truth.json").read_text())
    expected = {
        (s["subject"], s["session"], s["run"], imp["region"]): imp["expected_after_preprocessing_r"]
        for s in truth["scans"]
        for imp in s["implants"]
    }
    rows = (relations.TemporalCorrelation.Metric & {"metric": "pearson"}).to_dicts()
    bands = ("delta", "theta", "alpha", "beta", "gamma")
    pairs = {b: [] for b in bands}
    for r in rows:
        if r["band"] in pairs:
            key = (r["subject"], r["session"], r["run"], r["region"])
            pairs[r["band"]].append((r["value"], expected[key][r["band"]]))
    gaps = {}
    for b in bands:
        observed, exp = np.array(pairs[b]).T
        assert observed.size >= 16, (b, observed.size)
        gaps[b] = float(observed.mean() - exp.mean())
    assert all(abs(g) <= 0.05 for g in gaps.values()), {b: round(g, 3) for b, g in gaps.items()}
    # The cohort mean stored at the top level is the mean of the per-scan values over kept scans.
    kept = [s for s in truth["scans"] if not s["excluded_expected"]]
    for band in bands:
        values = [imp["expected_after_preprocessing_r"][band] for s in kept for imp in s["implants"]]
        assert truth["expected_after_preprocessing_r"]["sedated"][band] == pytest.approx(np.mean(values))


def test_cnr_estimated_from_the_maps_is_the_simulated_one(cnr_study, lfpbold_home):
    """Small size, one seed, 12 sedated scans at CNR 1.3: the CNR Cohort estimates from the gamma
    maps (group-mean vs scan-wise spatial r, as the study did) is the simulated one, to the scatter
    of one 12-scan study (over seeds 0-2, benchmarks/truth_check.py: mean +0.02, worst -0.2; the
    estimate moves in steps of 0.1)."""
    from lfpbold.schemas import cohort

    _, prefix = cnr_study
    _bind(lfpbold_home, prefix)
    rows = (cohort.Cohort & {"state": "sedated"}).to_dicts()
    assert {r["region"] for r in rows} == {"ACC", "M1"}
    estimated = [(r["region"], r["cnr"]) for r in rows]
    assert all(abs(c - 1.3) <= 0.25 for _, c in estimated), estimated


def test_combine_result_accepts_two_or_three_values_and_checks_excluded():
    from lfpbold.plugins.contracts import check_function, combine_result

    combined, lags = np.zeros(5), np.zeros(3, dtype=int)
    assert combine_result((combined, lags), 3)[2] == {}
    assert combine_result((combined, lags, {np.int64(2): "flat"}), 3)[2] == {2: "flat"}
    with pytest.raises(ValueError, match="row 0..2"):
        combine_result((combined, lags, {3: "flat"}), 3)
    with pytest.raises(ValueError, match="non-empty string"):
        combine_result((combined, lags, {0: ""}), 3)
    with pytest.raises(TypeError, match="combined, lags"):
        combine_result((combined,), 3)

    def two(lfp, sfreq):  # a lab method of the old contract
        return lfp.mean(axis=0), np.zeros(lfp.shape[0], dtype=int)

    def bad_reason(lfp, sfreq):
        return lfp.mean(axis=0), np.zeros(lfp.shape[0], dtype=int), {0: 3}

    assert check_function("channel_combine", two) == []
    assert any("reason" in p for p in check_function("channel_combine", bad_reason))
