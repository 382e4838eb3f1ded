"""Exports other tools read, checked with the field's own validators, and the group map statistics.

One populated study (the shared small one) serves every test here: BIDS derivatives maps judged
by bids-validator-deno, results tables with their data dictionary, NWB files judged by the NWB
Inspector, the CLI's export group, and CohortMapStats.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

pytestmark = pytest.mark.db

CLASSIC = ["delta", "theta", "alpha", "beta", "gamma"]


@pytest.fixture(scope="module")
def populated(lfpbold_home, small_study):
    from lfpbold.pipeline import drop, ingest_study, populate
    from tests.conftest import connect_backend

    prefix = f"x{uuid.uuid4().hex[:8]}_"
    database = connect_backend("embedded", lfpbold_home, prefix)
    ingest_study(small_study)
    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values()), outcome
    yield database
    drop(prefix, database.connection)


def _validator() -> str:
    exe = shutil.which("bids-validator-deno") or str(Path(sys.executable).with_name("bids-validator-deno"))
    if not Path(exe).exists():
        pytest.skip("bids-validator-deno is not installed (pip install bids-validator-deno)")
    return exe


def test_export_maps_is_a_valid_bids_derivative(populated, tmp_path):
    from lfpbold.export import export_maps
    from lfpbold.schemas import acquisition, cohort, relations

    out = tmp_path / "maps"
    written = export_maps(out)
    assert written and all(" " not in str(p.relative_to(out)) for p in written)
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "lfpbold"

    run = subprocess.run([_validator(), str(out), "--json"], capture_output=True, text=True, timeout=600)
    report = json.loads(run.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert run.returncode != 16 and not errors, errors

    n_seed = len(relations.SeedMap())
    scan_maps = [p for p in written if p.parent.name == "func" and "_stat-r_desc-" in p.name]
    seeds = [p for p in scan_maps if p.name.endswith("seed_statmap.nii.gz")]
    assert len(seeds) == n_seed
    powers = [p for p in scan_maps if p.name.endswith("power_statmap.nii.gz")]
    assert len(powers) == n_seed * len(CLASSIC)
    n_cohorts = len(cohort.Cohort())
    for stat in ("t", "p", "pFDR", "pFWE", "pClusterFWE"):
        assert len([p for p in written if f"_stat-{stat}_" in p.name]) == n_cohorts * (1 + len(CLASSIC)), stat

    # one scan's seed map: the stored values at brain voxels, NaN outside, intent r with its dof
    row = relations.SeedMap.to_dicts(limit=1)[0]
    stem = f"sub-{row['subject']}_ses-{row['session']}_task-rest_run-{row['run']}_space-"
    path = next(p for p in seeds if p.name.startswith(stem) and f"_desc-{row['region']}seed_" in p.name)
    img = nib.load(path)
    brain = (acquisition.Atlas & (acquisition.Scan & row)).fetch1("brain_mask")
    vol = np.asarray(img.dataobj)
    np.testing.assert_allclose(vol[brain], row["seed_map"], rtol=1e-6)
    assert np.isnan(vol[~brain]).all()
    hdr = img.header
    assert hdr.get_intent()[0] == "correlation" and hdr.get_intent()[1][0] > 0
    assert hdr["qform_code"] > 0 and hdr["sform_code"] > 0
    assert hdr.get_xyzt_units() == ("mm", "sec")
    sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["Statistic"] == "r" and sidecar["Units"] == "dimensionless" and "seed map" in sidecar["Description"]
    # a group t map and a p map carry their intents
    t_map = next(p for p in written if "_stat-t_" in p.name)
    assert nib.load(t_map).header.get_intent()[0] == "t test"
    p_map = next(p for p in written if "_stat-pFDR_" in p.name)
    assert nib.load(p_map).header.get_intent()[0] == "p value"


def test_atlas_display_names_become_bids_labels():
    from lfpbold.export import bids_label

    assert bids_label("Long Evans rat (small)") == "LongEvansratsmall"
    assert bids_label("12-13Hz") == "12to13Hz"
    with pytest.raises(ValueError, match="no letters or digits"):
        bids_label(" - ")


def test_export_results_tsv_and_data_dictionary(populated, tmp_path):
    from lfpbold.export import export_results
    from lfpbold.query import results

    written = export_results(tmp_path / "res")
    table = pd.read_csv(written[0], sep="\t", na_values="n/a")
    live = results()
    assert list(table.columns) == list(live.columns) and len(table) == len(live)
    np.testing.assert_allclose(table["temporal_r"], live["temporal_r"], rtol=1e-5)
    dictionary = json.loads(written[0].with_suffix(".json").read_text())
    assert set(dictionary) == set(table.columns)
    assert all(d["Description"] for d in dictionary.values())
    assert dictionary["peak_lag_s"]["Units"] == "s"
    scans = pd.read_csv(written[1], sep="\t", na_values="n/a", dtype={"subject": str})
    assert {"subject", "session", "run", "region", "band", "spatial_r", "temporal_r"} <= set(scans.columns)
    # the table's mean temporal r is the mean of the per-scan values exported beside it
    for _, r in live.iterrows():
        rows = scans[(scans.state == r.state) & (scans.region == r.region) & (scans.band == r.band)]
        assert rows["temporal_r"].mean() == pytest.approx(r.temporal_r, abs=1e-5)


def test_export_nwb_links_the_raw_series_and_passes_the_inspector(populated, tmp_path):
    import h5py
    from nwbinspector import Importance, inspect_nwbfile
    from pynwb import NWBHDF5IO

    from lfpbold.integrity import verified_file
    from lfpbold.nwb_export import export_nwb
    from lfpbold.schemas import acquisition, analysis

    first = acquisition.LFPRecording.to_dicts(limit=1, order_by="subject, session, run")[0]
    scan_key = {k: first[k] for k in ("subject", "session", "run")}
    raw = Path(verified_file(acquisition.LFPRecording & scan_key, "nwb"))  # stored relative to the data root
    written = export_nwb(tmp_path / "nwb", restriction={"subject": first["subject"], "session": first["session"]})
    assert written
    path = written[0]
    with h5py.File(path, "r") as f:
        link = f.get("acquisition/ElectricalSeries", getlink=True)
        assert isinstance(link, h5py.ExternalLink), type(link)
        # relative to the derived file, so the two folders can move together
        assert (path.parent / link.filename).resolve() == raw.resolve()
    assert path.stat().st_size < raw.stat().st_size  # nothing raw was copied
    key = {k: first[k] for k in ("subject", "session", "run")}
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert nwb.acquisition["ElectricalSeries"].object_id == first["series_object_id"]
        module = nwb.processing["ecephys"]
        for region in (analysis.CleanLFP & key).to_arrays("region"):
            power = module[f"BandPower{region}"]
            assert list(power.bands["band_name"][:]) == CLASSIC
            stored = (analysis.BandPower.Band & key & {"region": region, "band": "gamma"}).fetch1("power")
            np.testing.assert_allclose(power.data[:, 0, CLASSIC.index("gamma")], stored, rtol=1e-6)
            combined = (analysis.CleanLFP & key & {"region": region}).fetch1("combined")
            np.testing.assert_allclose(module[f"CombinedLFP{region}"].data[:], combined, rtol=1e-6)
    messages = list(inspect_nwbfile(nwbfile_path=str(path)))
    critical = [m for m in messages if m.importance == Importance.CRITICAL]
    assert not critical, [f"{m.check_function_name}: {m.message}" for m in critical]


def test_cohort_map_stats_recover_the_network(populated):
    from lfpbold.schemas import cohort

    rows = cohort.CohortMapStats().to_dicts()
    assert len(rows) == len(cohort.Cohort & "n_scans >= 2")
    assert len(cohort.CohortMapStats.Band()) == len(rows) * len(CLASSIC)
    for r in rows:
        key = {k: r[k] for k in cohort.Cohort.primary_key}
        seed = (cohort.CohortMapStats.Seed & key).fetch1()
        n_vox = len((cohort.Cohort & key).fetch1("group_seed_map"))
        assert seed["t"].shape == seed["p_fdr"].shape == seed["p_fwe"].shape == (n_vox,)
        assert seed["n_fwe"] <= seed["n_fdr"] <= seed["n_p"]
        # sign flips of n scans give at most 2**n distinct statistics: no FWE p below 1 / 2**n
        assert np.nanmin(seed["p_fwe"]) >= 0.5 / 2 ** r["n_scans"]
        # independent check of the voxel t: scipy on the Fisher z of the stored scan maps
        data = cohort.gather(cohort.combination(key), restriction={"state": key["state"], "region": key["region"]})
        z = np.arctanh(np.clip(np.stack(list(data.seed_maps.values())), -0.9999999, 0.9999999))
        np.testing.assert_allclose(seed["t"], stats.ttest_1samp(z, 0.0, axis=0).statistic, rtol=1e-3, atol=1e-3)


def test_results_effect_sizes_intervals_and_fdr(populated):
    from lfpbold.query import results
    from lfpbold.schemas import cohort

    df = results()
    for column in ("spatial_p_fdr", "temporal_p_fdr", "temporal_d", "temporal_ci_low", "temporal_ci_high"):
        assert column in df.columns
    ok = df["temporal_p"].notna()
    np.testing.assert_allclose(df.loc[ok, "temporal_p_fdr"], stats.false_discovery_control(df.loc[ok, "temporal_p"]))
    r = df[ok].iloc[0]
    combo = {k: 0 for k in ("lfp_paramset", "band_paramset", "bold_paramset", "relation_paramset")}
    data = cohort.gather(combo, restriction={"state": r.state, "region": r.region})
    primary = data.relation["temporal"]["metrics"][0]
    values = np.array([v for (*_, band, m), v in data.metrics.items() if band == r.band and m == primary])
    assert r.temporal_d == pytest.approx(values.mean() / values.std(ddof=1), rel=1e-6)
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert (r.temporal_ci_low, r.temporal_ci_high) == pytest.approx((ci.low, ci.high), rel=1e-6)


def test_cli_export_group(populated, tmp_path):
    from click.testing import CliRunner

    from lfpbold.cli import main

    run = CliRunner().invoke
    prefix = populated.prefix
    r = run(main, ["--prefix", prefix, "export", "maps", str(tmp_path / "m"), "--relation-paramset", "0"])
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "m").rglob("*_stat-r_desc-*gammapower_statmap.nii.gz"))
    r = run(main, ["--prefix", prefix, "export", "results", str(tmp_path / "r"), "--by", "subject,band"])
    assert r.exit_code == 0, r.output
    assert "subject" in pd.read_csv(tmp_path / "r" / "results.tsv", sep="\t").columns
    r = run(main, ["--prefix", prefix, "export", "results", str(tmp_path / "r"), "--bold-paramset", "7"])
    assert r.exit_code == 1 and "No BoldParams set 7" in r.output, r.output
    r = run(main, ["--prefix", prefix, "export", "nwb", str(tmp_path / "n"), "--subject", "01", "--lfp-paramset", "0"])
    assert r.exit_code == 0, r.output
    assert list((tmp_path / "n").rglob("sub-01_*_ecephys.nwb"))
