"""The direct reference (benchmarks/reference.py) agrees with lfpbold's pipeline on a tiny simulated scan.

A correctness test, no timing: each reference step, fed lfpbold's stored upstream result, must give
lfpbold's stored output to float32 rounding; end to end from the files (where the reference's
simpler LFP cleaning differs from lfpbold's) the gamma figures must still be close.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import reference  # noqa: E402
import run as bench_run  # noqa: E402


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from lfpbold.simulate import simulate_study

    out = tmp_path_factory.mktemp("bench") / "study"
    simulate_study(out, subjects=1, sessions=1, scans=1, regions=("M1",), states=("sedated",), seed=3, size="small")
    return out


@pytest.mark.db
def test_reference_agrees_with_lfpbold(embedded_db, tiny_study):
    from lfpbold.pipeline import ingest_study, populate

    assert not ingest_study(tiny_study).errors
    outcome = populate(display_progress=False)
    assert not any(r["error_list"] for r in outcome.values()), outcome

    theirs = bench_run.lfpbold_outputs(embedded_db.prefix)
    scan = reference.read_scan(tiny_study, "01", "sedated01", 1, "M1")
    assert not theirs["excluded"]
    alone = bench_run.reference_alone(scan, theirs)

    def rel(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        assert a.shape == b.shape
        return np.max(np.abs(a - b)) / np.max(np.abs(b))

    # Step by step on lfpbold's upstream results: the same computation, to float32 storage.
    for name in ("power", "regressor", "bold", "seed_map", "power_map"):
        assert rel(alone[name], theirs[name]) < 1e-5, name
    assert alone["spatial_r"] == pytest.approx(theirs["spatial_r"], abs=1e-6)
    assert alone["temporal_r"] == pytest.approx(theirs["temporal_r"], abs=1e-6)

    # End to end from the files: the reference's own motion screening, BOLD and seed map are
    # lfpbold's; its clean LFP (one average template, IIR notches, plain mean) is close, not equal.
    chain = reference.run_reference(scan)
    assert np.array_equal(chain["keep"], theirs["keep"])
    assert rel(chain["bold"], theirs["bold"]) < 1e-5
    assert rel(chain["seed_map"], theirs["seed_map"]) < 1e-5
    assert np.corrcoef(chain["combined"], theirs["combined"])[0, 1] > 0.99
    assert chain["spatial_r"] == pytest.approx(theirs["spatial_r"], abs=0.05)
    assert chain["temporal_r"] == pytest.approx(theirs["temporal_r"], abs=0.05)

    # The comparison report names every output and finds the step-alone ones in agreement.
    lines = bench_run.compare(alone, chain, theirs)
    assert not any("DIFFERS" in line or "DIFFERENT" in line for line in lines), lines


def test_bandpass_matches_mne_design():
    """The reference re-derives MNE's default band-pass in SciPy; it must give MNE's samples."""
    mne = pytest.importorskip("mne")
    x = np.random.default_rng(0).standard_normal(50_000)
    expected = mne.filter.filter_data(x, 1000.0, 0.1, 300.0, verbose=False)
    assert np.max(np.abs(reference.bandpass_like_mne(x, 1000.0) - expected)) < 1e-10


def test_spm_hrf_matches_lfpbold():
    from lfpbold.plugins.hrf import spm_hrf

    for dt in (0.1, 1.0):
        np.testing.assert_allclose(reference.spm_hrf(dt), spm_hrf(dt), rtol=1e-12, atol=1e-15)


def test_run_help():
    result = subprocess.run([sys.executable, str(BENCH / "run.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--size" in result.stdout and "--workdir" in result.stdout and "--keep" in result.stdout
    result = subprocess.run([sys.executable, str(BENCH / "reference.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
