"""A lab's own methods, from a package of its own, reach the results without a change to lfpbold.

A tiny package declaring a temporal metric (Kendall's tau) and an LFP-removal method that removes
nothing is built in a temporary folder and pip-installed into the running environment, as a lab
would install its package; a RelationParams set names both methods and is selected; ``populate``
and ``results`` then show them as columns.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lfpbold.pipeline import ingest_study, populate, select

pytestmark = pytest.mark.db

LAB = "lfpbold-testlab"

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "lfpbold-testlab"
version = "0.0.1"
dependencies = []

[project.entry-points."lfpbold.temporal_metric"]
kendall = "lfpbold_testlab:kendall"

[project.entry-points."lfpbold.lfp_removal"]
nothing = "lfpbold_testlab:nothing"

[tool.setuptools]
py-modules = ["lfpbold_testlab"]
"""

MODULE = '''
"""A lab's own lfpbold methods."""
import numpy as np
from scipy.stats import kendalltau


def kendall(x, y):
    """Kendall's tau between band power and BOLD."""
    return float(kendalltau(x, y).statistic)


def nothing(data, regressors):
    """Removes nothing: the BOLD unchanged, every volume kept."""
    return data, np.ones(data.shape[0], dtype=bool)
'''


def _pip(*args):
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def lab_package(tmp_path_factory):
    """The lab's package, pip-installed for this module's tests, uninstalled after."""
    src = tmp_path_factory.mktemp("lab")
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (src / "lfpbold_testlab.py").write_text(textwrap.dedent(MODULE))
    done = _pip("install", "--no-deps", "--quiet", str(src))
    assert done.returncode == 0, done.stdout + done.stderr
    importlib.invalidate_caches()
    yield
    _pip("uninstall", "--yes", "--quiet", LAB)
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def two_scans(tmp_path_factory):
    from lfpbold.simulate import simulate_study

    return simulate_study(
        tmp_path_factory.mktemp("lab_study") / "study",
        subjects=1,
        sessions=1,
        scans=2,
        regions=("ACC",),
        states=("sedated",),
        seed=5,
        size="small",
    )


def test_the_registry_finds_the_installed_methods(lab_package):
    from lfpbold.plugins import available, get_plugin

    assert "kendall" in available("temporal_metric")["temporal_metric"]
    assert "nothing" in available("lfp_removal")["lfp_removal"]
    assert get_plugin("temporal_metric", "kendall")([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)


def test_the_installed_methods_pass_their_contracts(lab_package):
    from click.testing import CliRunner

    from lfpbold.cli import main
    from lfpbold.plugins.contracts import check_method

    assert check_method("temporal_metric", "kendall") == []
    assert check_method("lfp_removal", "nothing") == []
    out = CliRunner().invoke(main, ["plugins", "--check"])
    assert out.exit_code == 0, out.output
    assert any(line.split()[:3] == ["temporal_metric", "kendall", "ok"] for line in out.output.splitlines())


def test_a_labs_metric_and_removal_method_become_result_columns(lab_package, embedded_db, two_scans):
    from click.testing import CliRunner
    from scipy.stats import kendalltau

    from lfpbold.cli import main
    from lfpbold.query import results
    from lfpbold.schemas import analysis, params, relations

    assert not ingest_study(two_scans).errors
    p = params.RelationParams.default_params()
    p["temporal"]["metrics"].append("kendall")
    p["removal"]["methods"].append("nothing")
    number = params.RelationParams.insert_new_params(p, "study + the lab's Kendall tau and no-op removal")
    assert select(relation_paramset=number) == 2
    outcome = populate(display_progress=False)
    assert all(not r["error_list"] for r in outcome.values()), outcome

    df = results(relation_paramset=number)
    assert {"kendall", "removal_nothing_r"} <= set(df.columns)
    assert df["kendall"].notna().all()
    np.testing.assert_allclose(df["removal_nothing_r"], 1.0, atol=1e-6)
    assert "kendall" not in results(relation_paramset=0).columns  # the study's set does not name it

    # The stored per-scan value is Kendall's tau of what the table correlated (an independent computation).
    key = {"relation_paramset": number, "band": "gamma"}
    row = (relations.TemporalCorrelation.Metric & key & {"metric": "kendall"}).to_dicts(limit=1)[0]
    scan = {
        k: row[k] for k in ("subject", "session", "run", "region", "lfp_paramset", "band_paramset", "bold_paramset")
    }
    regressor = (analysis.BandPower.Band & scan & key).fetch1("regressor")
    keep = (analysis.PreprocessedBold & scan).fetch1("keep")
    seed = (relations.SeedMap & scan & key).fetch1("seed_ts")
    assert row["value"] == pytest.approx(kendalltau(regressor[keep], seed).statistic, abs=1e-12)

    out = CliRunner().invoke(
        main, ["--prefix", embedded_db.prefix, "results", "--relation-paramset", str(number), "--all-columns"]
    )
    assert out.exit_code == 0, out.output
    header = out.output.splitlines()[0].split()
    assert "kendall" in header and "removal_nothing_r" in header
