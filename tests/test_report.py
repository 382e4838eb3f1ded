"""The HTML report, opened in a real headless browser (Debian's Chromium over the DevTools protocol)."""

from __future__ import annotations

import os
import re
import shutil

import pytest

import lfpbold
from tests.browser import find_chromium, open_page

pytestmark = pytest.mark.db

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium)"
)

CHECK = """(() => {
  const images = [...document.images];
  return {
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 60)),
    results_rows: document.querySelectorAll('table.results')[0]?.querySelectorAll('tbody tr').length ?? 0,
    headings: [...document.querySelectorAll('h2')].map(h => h.textContent),
    scans_rows: document.querySelectorAll('table.scans tbody tr').length,
    external: [...document.querySelectorAll('[src]')].filter(e => !e.getAttribute('src').startsWith('data:')).length,
  };
})()"""


@needs_chromium
def test_the_browser_check_sees_broken_images_and_console_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img alt="gone" src="missing.png">'
        '<script>console.error("boom")</script><script>undefined_call()</script></body></html>'
    )
    got = open_page(page, check_js=CHECK, screenshot=tmp_path / "bad.png")
    assert got["check"]["broken"] == ["gone"]
    text = " ".join(got["errors"])
    assert "boom" in text and "undefined_call" in text and "missing.png" in text


@needs_chromium
def test_report_opens_with_every_figure_the_table_and_no_console_error(populated_db, tmp_path):
    path = lfpbold.report(tmp_path / "report")
    html = path.read_text()
    n_img = len(re.findall(r"<img ", html))
    df = lfpbold.results()
    got = open_page(path, check_js=CHECK, screenshot=tmp_path / "report.png")
    shot = os.environ.get("LFPBOLD_SCREENSHOT_DIR")
    if shot:  # CI keeps the screenshot for a person to look at
        shutil.copy(tmp_path / "report.png", shot)
    check = got["check"]
    assert got["errors"] == []
    assert check["broken"] == [] and check["images"] == n_img
    # every figure kind drawn: 2 across cohorts, 4 per cohort, 6 for one scan; a cohort whose observed r
    # is beyond the model's reach has no noise ceiling, and the report says why in its place
    gamma = df[df.band == "gamma"]
    no_ceiling = gamma[gamma.inferred_true_r.isna()]
    assert n_img == 2 + 4 * len(gamma) + 6 - len(no_ceiling)
    assert html.count("not drawn") == len(no_ceiling)
    for _, row in no_ceiling.iterrows():
        assert f"No noise ceiling for state {row.state}, region {row.region}: observed r" in html
    assert check["results_rows"] == len(df) == 20
    assert check["scans_rows"] == 8 and check["external"] == 0  # self-contained
    assert {"Results", "Scans", "Parameter sets", "Software", "sedated · ACC", "awake · M1"} <= set(check["headings"])
    assert (tmp_path / "report.png").stat().st_size > 50_000
    for name in ("datajoint", "nilearn", "matplotlib", "RelationParams 0", "BoldParams 0"):
        assert name in html


def test_cli_report(populated_db, tmp_path):
    from click.testing import CliRunner

    from lfpbold.cli import main

    r = CliRunner().invoke(main, ["--prefix", populated_db.prefix, "report", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "index.html").stat().st_size > 100_000
    args = ["--prefix", populated_db.prefix, "report", str(tmp_path / "x"), "--bold-paramset", "7"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "No BoldParams set 7" in r.output, r.output
