"""The cohort statistics as a pure function of arrays, against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lfpbold.plugins.cohort import BAND_FIGURES, summarize_cohort
from lfpbold.plugins.noise_ceiling import infer_true_r

NC = {"cnr": 1.3, "band": "gamma", "cnr_grid": [0.1, 5.0, 0.1]}


def _group(n_scans=6, n_voxels=400, seed=0):
    rng = np.random.default_rng(seed)
    pattern = rng.standard_normal(n_voxels)
    seeds = pattern + rng.standard_normal((n_scans, n_voxels))
    powers = {
        "delta": -0.3 * pattern + rng.standard_normal((n_scans, n_voxels)),
        "gamma": 0.6 * pattern + rng.standard_normal((n_scans, n_voxels)),
    }
    spatial = {b: np.array([np.corrcoef(p, s)[0, 1] for p, s in zip(m, seeds, strict=True)]) for b, m in powers.items()}
    pearson = {"delta": rng.uniform(-0.3, 0.0, n_scans), "gamma": rng.uniform(0.2, 0.5, n_scans)}
    spearman = {"delta": pearson["delta"] + 0.01, "gamma": None}
    return dict(
        subjects=[f"0{i % 3}" for i in range(n_scans)],
        seed_maps=seeds,
        bands=["delta", "gamma"],
        spatial_r=spatial,
        power_maps=powers,
        metrics={"pearson": pearson, "spearman": spearman},
        primary_metric="pearson",
        n_volumes=300,
        noise_ceiling=NC,
    )


def test_figures_match_independent_computations():
    g = _group()
    out = summarize_cohort(**g)
    assert out.group["n_scans"] == 6 and out.group["n_subjects"] == 3
    np.testing.assert_allclose(out.group_seed_map, g["seed_maps"].mean(axis=0))
    for b in out.bands:
        band = b["band"]
        r = g["spatial_r"][band]
        t = g["metrics"]["pearson"][band]
        assert b["spatial_r"] == pytest.approx(np.corrcoef(g["power_maps"][band].mean(0), g["seed_maps"].mean(0))[0, 1])
        assert b["spatial_r2"] == pytest.approx(b["spatial_r"] ** 2)
        assert b["scanwise_spatial_r"] == pytest.approx(r.mean())
        assert b["spatial_t"] == pytest.approx(stats.ttest_1samp(r, 0).statistic)
        assert b["temporal_p"] == pytest.approx(stats.ttest_1samp(t, 0).pvalue)
        assert b["spatial_vs_temporal_t"] == pytest.approx(stats.ttest_rel(r, t).statistic)
        assert b["temporal_r_fisher"] == pytest.approx(np.tanh(np.arctanh(t).mean()))
        assert b["inferred_true_r"] == pytest.approx(
            infer_true_r(t.mean(), cnr=1.3, n_trials=6, n_timepoints=300)["true_r"]
        )
        assert set(BAND_FIGURES) <= set(b)
    delta, gamma = out.bands
    assert delta["metrics"]["spearman"] == pytest.approx(g["metrics"]["spearman"]["delta"].mean())
    assert np.isnan(gamma["metrics"]["spearman"]) and "not computed" in gamma["missing"]["spearman"]
    assert out.noise_ceiling["true_r"] == pytest.approx(abs(gamma["inferred_true_r"]))
    assert len(out.noise_ceiling["cnr_grid"]) == 50


def test_every_missing_figure_has_a_reason():
    g = _group(n_scans=1)
    g["lag_curves"] = {"delta": [None], "gamma": None}
    g["removal_maps"] = {"ols": [None], "soft": [g["seed_maps"][0]]}
    out = summarize_cohort(**g)
    for b in out.bands:
        for figure in BAND_FIGURES:
            if not np.isfinite(b[figure]):
                assert figure in b["missing"], (b["band"], figure)
    delta, gamma = out.bands
    assert delta["missing"]["spatial_t"] == "fewer than 2 scans with a value"
    assert "unbroken series" in delta["missing"]["peak_lag_s"]
    assert "lag.band_sets" in gamma["missing"]["peak_lag_s"]
    assert "shuffle" in gamma["missing"]["shuffled_r"]
    assert np.isnan(out.removal["ols"]) and "removal_ols_r" in out.group["missing"]
    assert out.removal["soft"] == pytest.approx(1.0)


def test_estimated_cnr_and_its_failure_are_reported():
    g = _group(n_scans=8)
    g["noise_ceiling"] = {**NC, "cnr": "estimate"}
    out = summarize_cohort(**g)
    assert np.isfinite(out.group["cnr"]) and "cnr" not in out.group["missing"]
    g["bands"] = ["delta"]  # no gamma maps to estimate the CNR from
    out = summarize_cohort(**g)
    assert np.isnan(out.group["cnr"]) and "'gamma' is not in this band set" in out.group["missing"]["cnr"]
    assert out.bands[0]["missing"]["inferred_true_r"].startswith("no CNR")
    assert out.noise_ceiling is None


def test_bad_input_is_named():
    g = _group()
    with pytest.raises(ValueError, match="primary_metric 'kendall'"):
        summarize_cohort(**{**g, "primary_metric": "kendall"})
    with pytest.raises(ValueError, match="subjects has 2 entries"):
        summarize_cohort(**{**g, "subjects": ["01", "02"]})


# --- what a cohort row reads ----------------------------------------------------------------------


def test_gather_sets_reads_the_stored_rows_once_for_every_band_set(populated_db):
    """gather_sets: each band set gets its own bands and exactly the stored per-scan values."""
    from lfpbold.schemas import cohort, params, relations

    key = cohort.Cohort.keys(order_by="KEY")[0]
    combo = cohort.combination(key)
    where = {"state": key["state"], "region": key["region"]}
    band_sets = params.BandPowerParams.get_params(combo)["band_sets"]
    assert len(band_sets) >= 2  # the study's parameters: classic and one_hz
    together = cohort.gather_sets(combo, band_sets, restriction=where)
    assert list(together) == list(band_sets)
    for band_set, data in together.items():
        expected = (params.FrequencyBand & {"band_set": band_set}).to_arrays("band", order_by="band_order")
        assert data.bands == list(expected)
        alone = cohort.gather(combo, band_set=band_set, restriction=where)
        assert alone.bands == data.bands and alone.scans.equals(data.scans) and alone.n_volumes == data.n_volumes
        assert alone.computed <= data.computed
    data = together[band_sets[0]]
    assert len(data.scans) > 0
    method = data.relation["maps"]["methods"][0]
    for scan in data.scans.to_dict("records"):
        k = tuple(scan[c] for c in cohort.SCAN_IMPLANT)
        scan_key = {**combo, **{c: scan[c] for c in cohort.SCAN_IMPLANT}}
        np.testing.assert_array_equal(data.seed_maps[k], (relations.SeedMap & scan_key).fetch1("seed_map"))
        for band in data.bands:
            stored = (relations.LFPPowerMap.Map & scan_key & {"band": band, "map_method": method}).fetch1("power_map")
            np.testing.assert_array_equal(data.power_maps[k + (band,)], stored)
            r = (relations.SpatialSimilarity.Band & scan_key & {"band": band}).fetch1("r")
            assert data.spatial_r[k + (band,)] == pytest.approx(r)


def test_gather_sets_reads_only_the_parts_named(populated_db):
    from lfpbold.schemas import cohort, params

    key = cohort.Cohort.keys(order_by="KEY")[0]
    combo = cohort.combination(key)
    band_sets = params.BandPowerParams.get_params(combo)["band_sets"]
    where = {"state": key["state"], "region": key["region"]}
    only = cohort.gather_sets(combo, band_sets, restriction=where, parts=("seed_maps", "power_maps"))
    for data in only.values():
        assert data.seed_maps and data.power_maps
        assert not data.spatial_r and not data.metrics and not data.removal_maps and data.excluded is None
    with pytest.raises(ValueError, match="unknown parts"):
        cohort.gather_sets(combo, band_sets, parts=("seed_map",))
