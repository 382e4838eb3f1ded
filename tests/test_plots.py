"""Figures from the database: every kind renders to png, svg and pdf, and draws the stored values."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.collections import PathCollection, QuadMesh
from matplotlib.container import BarContainer

import lfpbold
from lfpbold import drawing
from lfpbold.plots import KINDS, diagram_svg, plot_data

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parent.parent


def _check_file(path: Path):
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    elif path.suffix == ".pdf":
        assert data[:5] == b"%PDF-" and b"%%EOF" in data[-1024:]
    else:
        assert ET.fromstring(data).tag.endswith("svg")


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_renders_to_png_svg_and_pdf(populated_db, kind, tmp_path):
    for fmt in ("png", "svg", "pdf"):
        path = tmp_path / f"{kind}.{fmt}"
        fig = lfpbold.plot(kind, path=path)
        assert fig.axes, kind
        _check_file(path)


def test_cli_plot_writes_the_file_and_rejects_bad_input(populated_db, tmp_path):
    from lfpbold.cli import main

    run = lambda *a: CliRunner().invoke(main, ["--prefix", populated_db.prefix, "plot", *a])  # noqa: E731
    r = run("noise-ceiling", "--state", "sedated", "--region", "M1", "-o", str(tmp_path / "nc.svg"))
    assert r.exit_code == 0, r.output
    _check_file(tmp_path / "nc.svg")
    r = run("motion", "--subject", "99", "-o", str(tmp_path / "m.png"))
    assert r.exit_code == 1 and "No preprocessed BOLD run for subject 99; stored: subject 01" in r.output, r.output
    r = run("histogram", "-o", str(tmp_path / "h.png"))
    assert r.exit_code == 2 and "choose from group-seed-map" in r.output
    r = run("bars", "-o", str(tmp_path / "b.jpg"))
    assert r.exit_code == 2 and ".png, .svg or .pdf" in r.output


def test_bar_heights_and_error_bars_are_the_stored_results(populated_db):
    from lfpbold.schemas import acquisition, relations

    fig = lfpbold.plot("bars")
    df = lfpbold.results()
    panels = {ax.get_title().split(" (")[0]: ax for ax in fig.axes if ax.get_title()}
    assert len(panels) == len(df.groupby(["state", "region"]))
    per_scan = (relations.SpatialSimilarity.Band * acquisition.Session.proj("state")).to_pandas().reset_index()
    for (state, region), rows in df.groupby(["state", "region"]):
        ax = panels[f"{state} · {region}"]
        spatial, temporal = [c for c in ax.containers if isinstance(c, BarContainer)]  # in drawing order
        heights = lambda c: [p.get_height() for p in c.patches]  # noqa: E731
        np.testing.assert_allclose(heights(spatial), rows["scanwise_spatial_r"], rtol=1e-12)
        np.testing.assert_allclose(heights(temporal), rows["temporal_r"], rtol=1e-12)
        # the error bars: the standard error across this cohort's scans, computed here independently
        cohort = per_scan[(per_scan.state == state) & (per_scan.region == region)]
        want = [cohort[cohort.band == b]["r"].std(ddof=1) / np.sqrt((cohort.band == b).sum()) for b in rows["band"]]
        segments = spatial.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([(s[1, 1] - s[0, 1]) / 2 for s in segments], want, rtol=1e-9)


def test_scatter_points_are_the_stored_per_scan_rows(populated_db):
    from lfpbold.schemas import relations

    fig = lfpbold.plot("scatter", band="gamma")
    drawn = np.concatenate([c.get_offsets() for c in fig.axes[0].collections])
    spatial = (relations.SpatialSimilarity.Band & {"band": "gamma"}).to_pandas().reset_index()
    temporal = relations.TemporalCorrelation.Metric & {"band": "gamma", "metric": "pearson"}
    temporal = temporal.to_pandas().reset_index()
    both = spatial.merge(temporal, on=["subject", "session", "run", "region"])
    assert len(drawn) == len(both) == 16
    got = sorted(map(tuple, np.round(drawn, 12)))
    want = sorted(zip(np.round(both["r"], 12), np.round(both["value"], 12), strict=True))
    np.testing.assert_allclose(got, want)


def test_noise_ceiling_draws_the_stored_curve_and_the_observed_r(populated_db):
    from lfpbold.schemas import cohort

    key = {"state": "sedated", "region": "ACC"}
    fig = lfpbold.plot("noise-ceiling", **key)
    curve = (cohort.Cohort.NoiseCeiling & key).to_dicts(order_by="cnr_step")
    lines = fig.axes[0].lines
    np.testing.assert_allclose(lines[0].get_xdata(), [c["cnr_value"] for c in curve])
    np.testing.assert_allclose(lines[0].get_ydata(), [c["mean_scan_r"] for c in curve])
    np.testing.assert_allclose(lines[1].get_ydata(), [c["averaged_r"] for c in curve])
    r, true_r, cnr = (cohort.Cohort.Band & key & {"band": "gamma"}).fetch1("temporal_r", "inferred_true_r", "cnr")
    assert lines[2].get_ydata()[0] == pytest.approx(true_r)
    observed = next(ln for ln in lines if ln.get_marker() == "o")
    assert (observed.get_xdata()[0], observed.get_ydata()[0]) == pytest.approx((cnr, r))


def test_a_cohort_without_a_noise_ceiling_says_why(populated_db):
    df = lfpbold.results()
    missing = df[(df.band == "gamma") & df.inferred_true_r.isna()]
    if missing.empty:
        pytest.skip("every cohort of this study has a noise ceiling")
    row = missing.iloc[0]
    with pytest.raises(ValueError, match=f"No noise ceiling for state {row.state}, region {row.region}: observed r"):
        lfpbold.plot("noise-ceiling", state=row.state, region=row.region)


def test_quality_figures_draw_the_stored_arrays(populated_db):
    from lfpbold.schemas import analysis, relations

    key = {"subject": "01", "session": "awake01", "run": 1}
    fd, keep = (analysis.PreprocessedBold & key).fetch1("fd", "keep")
    fig = lfpbold.plot("motion", **key)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), fd)
    assert ax.lines[1].get_ydata()[0] == 0.1  # the screening threshold of BoldParams 0
    assert len(ax.patches) == int((~keep).sum()) > 0  # one shaded span per scrubbed volume (awake: some)

    implant = dict(key, region="M1")
    freqs, raw, clean = (analysis.CleanLFP & implant).fetch1("spectrum_hz", "raw_psd", "clean_psd")
    fig = lfpbold.plot("lfp-spectrum", **implant)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), raw[freqs > 0])
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), clean[freqs > 0])
    assert freqs[0] == 0 and np.allclose(np.diff(freqs), 1.0) and freqs[-1] <= 500

    sweep = (relations.HRFSensitivity & implant).fetch1()
    fig = lfpbold.plot("hrf-sweep", **implant)
    meshes = [c for ax in fig.axes for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_allclose(meshes[0].get_array().reshape(sweep["temporal_r"].shape), sweep["temporal_r"])
    np.testing.assert_allclose(meshes[1].get_array().reshape(sweep["spatial_r"].shape), sweep["spatial_r"])


def test_spectrogram_and_lag_curves_draw_the_stored_series(populated_db):
    from lfpbold.schemas import analysis, params, relations

    key = {"subject": "02", "session": "sedated01", "run": 2, "region": "ACC"}
    one_hz = (analysis.BandPower.Band * params.FrequencyBand & key & {"band_set": "one_hz"}).to_dicts(
        order_by="band_order"
    )
    fig = lfpbold.plot("spectrogram", **key)
    mesh = next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))
    want = np.log10(np.stack([b["power"] for b in one_hz]).astype(float))
    np.testing.assert_allclose(mesh.get_array().reshape(want.shape), want, rtol=1e-6)
    seed = (relations.SeedMap & key).fetch1("seed_ts")
    bold_line = fig.axes[1].lines[1]
    np.testing.assert_allclose(bold_line.get_ydata(), (seed - seed.mean()) / seed.std())

    fig = lfpbold.plot("lag", state="sedated", region="ACC", band="gamma")
    rows = (relations.LagCorrelation.Band & {"region": "ACC", "band": "gamma", "session": "sedated01"}).to_dicts()
    curves = [ln for ln in fig.axes[0].lines if ln.get_linewidth() == 0.5]  # one thin line per scan
    assert len(curves) == len(rows) == 4
    got = sorted(tuple(np.round(ln.get_ydata(), 12)) for ln in curves)
    assert got == sorted(tuple(np.round(r["r"], 12)) for r in rows)


def test_maps_show_the_stored_values_over_the_simulated_template(populated_db, small_study):
    from lfpbold.schemas import acquisition, cohort

    atlas = acquisition.Atlas.fetch1()
    written = nib.load(next(small_study.glob("derivatives/atlas/tpl-*/anat/tpl-*_T2w.nii.gz")))
    np.testing.assert_allclose(atlas["template"], written.get_fdata(), rtol=1e-6)
    assert atlas["template"][atlas["ventricle_mask"]].mean() > atlas["template"][atlas["wm_mask"]].mean()

    data = plot_data("group-seed-map", state="awake", region="M1")
    stored = (cohort.Cohort & {"state": "awake", "region": "M1"}).fetch1("group_seed_map")
    np.testing.assert_array_equal(data["values"], stored)
    assert data["atlas"]["template"] is not None
    # the cuts go through the implant, marked there: the centre of its ROI, in mm
    roi = (acquisition.Atlas.ROI & {"region": "M1"}).fetch1("roi_mask")
    centre = (atlas["affine"] @ np.r_[np.argwhere(roi).mean(axis=0), 1])[:3]
    fig = lfpbold.plot("group-seed-map", state="awake", region="M1")
    marks = [c.get_offsets() for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
    marks = [m for m in marks if len(m) == 1 and np.any(m)]  # the markers (not the images' placeholder offsets)
    assert len(marks) == 3  # one per cut
    for a, b in (m[0] for m in marks):
        assert min(abs(centre - a)) < 1e-6 and min(abs(centre - b)) < 1e-6
    data = plot_data("power-map", subject="01", session="sedated01", run=2, region="ACC", band="beta")
    assert data["title"] == "beta power map (pearson) · sub-01 ses-sedated01 run-2 · ACC"


def test_brain_map_without_a_template_draws_over_the_brain_mask():
    mask = np.zeros((6, 6, 4), dtype=bool)
    mask[1:5, 1:5, 1:3] = True
    values = np.linspace(-1, 1, int(mask.sum()))
    fig = drawing.brain_map(values, mask, np.eye(4), template=None, implants={"M1": (2.0, 2.0, 1.0)}, title="x")
    assert len([ax for ax in fig.axes if ax.images]) >= 3  # three cuts, each with the background image


def _diagram_content(svg: str) -> list[tuple]:
    """What the diagram says, not where Graphviz put it: each table (with its attributes) and each edge.

    The layout varies from run to run (DataJoint groups the tables in hash order); the content does not.
    """
    ns = {"svg": "http://www.w3.org/2000/svg", "xlink": "http://www.w3.org/1999/xlink"}
    out = []
    for g in ET.fromstring(svg).iter(f"{{{ns['svg']}}}g"):
        if g.get("class") in ("node", "edge", "cluster"):
            tips = [a.get(f"{{{ns['xlink']}}}title") for a in g.iter(f"{{{ns['svg']}}}a")]
            out.append((g.get("class"), g.findtext("svg:title", namespaces=ns), tuple(tips)))
    return sorted(out)


def test_readme_pipeline_diagram_is_current(populated_db):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    committed = ROOT / "docs" / "pipeline.svg"
    fresh = _diagram_content(diagram_svg())
    assert len(fresh) > 50 and any(t == "SeedMap" for _, t, _ in fresh)
    assert committed.exists() and _diagram_content(committed.read_text()) == fresh, (
        "docs/pipeline.svg is stale: regenerate it with python -c 'import lfpbold; lfpbold.connect(); "
        'from lfpbold.plots import diagram_svg; open("docs/pipeline.svg", "w").write(diagram_svg())\''
    )
