"""The plugin layer's promise: every step registered, a contract per step, every method checked against it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lfpbold.cli import main
from lfpbold.plugins import PluginNotFoundError, _registered, available, contracts, get_plugin, register
from lfpbold.plugins.contracts import CONTRACTS, STEPS, check_all, check_function, check_method

PLUGINS_DIR = Path(__file__).parents[1] / "plugins"

#: The platform's own methods, as pyproject.toml declares them.
BUILTINS = {
    "lfp_cleaning": ["none", "template_regression"],
    "channel_combine": ["mean", "phase_aligned"],
    "band_power": ["spectrogram"],
    "hrf": ["spm"],
    "motion_screening": ["framewise_displacement"],
    "bold_preprocessing": ["bandpass", "study"],
    "correlation_map": ["mutual_information", "pearson", "spearman"],
    "temporal_metric": ["mutual_information", "pearson", "spearman"],
    "lagged_correlation": ["cross_correlation"],
    "lfp_removal": ["censor", "ols", "soft"],
}


@pytest.fixture
def registered():
    """Register methods in-process for one test; they are removed afterwards, whatever happens."""
    added = []

    def add(step, method, func):
        register(step, method)(func)
        added.append((step, method))
        return func

    yield add
    for key in added:
        _registered.pop(key, None)


# ---------------------------------------------------------------------------------------------
# Every step registered, with a contract


def test_every_step_has_a_contract_a_description_and_its_builtin_methods():
    assert list(STEPS) == list(CONTRACTS) == list(BUILTINS)
    installed = available()
    for step, methods in BUILTINS.items():
        assert set(methods) <= set(installed[step]), step
        assert STEPS[step] and "\n" not in STEPS[step]
        assert f"``{step}``" in CONTRACTS[step].__doc__


@pytest.mark.parametrize(
    ("step", "method", "qualname"),
    [
        ("correlation_map", "pearson", "lfpbold.plugins.maps.correlation_map"),
        ("correlation_map", "spearman", "lfpbold.plugins.maps.rank_correlation_map"),
        ("correlation_map", "mutual_information", "lfpbold.plugins.maps.mutual_information_map"),
        ("lagged_correlation", "cross_correlation", "lfpbold.plugins.temporal.lagged_xcorr"),
        ("motion_screening", "framewise_displacement", "lfpbold.plugins.bold.fd_screening"),
    ],
)
def test_new_entry_points_resolve_to_the_existing_functions(step, method, qualname):
    import importlib

    module, name = qualname.rsplit(".", 1)
    assert get_plugin(step, method) is getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------------------------------------
# Built-in methods conform


@pytest.mark.parametrize(("step", "method"), [(s, m) for s, ms in BUILTINS.items() for m in ms])
def test_builtin_method_conforms(step, method):
    assert check_method(step, method) == []


def test_check_all_covers_every_installed_method_in_pipeline_order():
    report = check_all()
    assert [k for k in report if k[0] in BUILTINS and k[1] in BUILTINS[k[0]]] == [
        (s, m) for s, ms in BUILTINS.items() for m in ms
    ]
    assert all(problems == [] for (s, m), problems in report.items() if m in BUILTINS.get(s, []))
    assert set(check_all("hrf")) == {("hrf", m) for m in available("hrf")["hrf"]}


# ---------------------------------------------------------------------------------------------
# Broken methods are reported, naming the problem


def _removal_short_keep(data, regressors):
    return data, np.ones(data.shape[0] - 1, dtype=bool)


def _removal_rows_not_kept(data, regressors):
    keep = np.arange(data.shape[0]) % 2 == 0
    return data, keep  # all rows, though only half are kept


def _metric_array(x, y):
    return np.corrcoef(x, y)[0, 1:]


def _hrf_nan(dt):
    return np.full(int(32 / dt) + 1, np.nan)


def _hrf_ignores_delay(dt, *, response_delay=4.0, undershoot_delay=12.0):
    return np.exp(-np.arange(0, 32, dt) / 3.0)


def _band_power_negative(lfp, sfreq, *, bands):
    times = np.arange(10) + 0.5
    return -np.ones((len(bands), times.size)), times


def _band_power_no_windows(lfp, sfreq, *, bands):
    return np.zeros((len(bands), 0)), np.zeros(0)


def _combine_float_lags(lfp, sfreq):
    return lfp.mean(axis=0), np.zeros(lfp.shape[0])


def _lagged_wrong_sign(x, y, *, t_r, max_lag_s):
    from lfpbold.plugins.temporal import lagged_xcorr

    lags, r = lagged_xcorr(x, y, t_r=t_r, max_lag_s=max_lag_s)
    return lags, r[::-1]  # negative lag = y lags x


def _map_not_a_correlation(seed, data):
    from lfpbold.plugins.maps import correlation_map

    return 3 * correlation_map(seed, data)


_map_not_a_correlation.output_range = (-1.0, 1.0)


def _map_covariance(seed, data):
    """Covariance is not a correlation and says so by declaring no range: no range check."""
    seed = np.atleast_2d(seed)
    out = (seed - seed.mean(1, keepdims=True)) @ (data - data.mean(0)) / (data.shape[0] - 1)
    return out[0] if out.shape[0] == 1 else out


def _metric_in_place(x, y):
    x -= x.mean()
    return float(x @ y)


def _cleaning_without_triggers(lfp, sfreq):
    return lfp


def _bold_ignores_sample_mask(bold, *, t_r, brain_mask, sample_mask, **ignored):
    return bold[brain_mask].T.astype(np.float32)


def _screening_without_reason(motion, *, state):
    n = motion.shape[0]
    return {"fd": np.zeros(n), "keep": np.ones(n, bool), "excluded": True, "reason": ""}


def _screening_as_tuple(motion, *, state):
    return np.zeros(motion.shape[0]), np.ones(motion.shape[0], bool)


@pytest.mark.parametrize(
    ("step", "func", "expected"),
    [
        ("lfp_removal", _removal_short_keep, "keep: expected shape (n_timepoints,) = (60,); got (59,)"),
        (
            "lfp_removal",
            _removal_rows_not_kept,
            "cleaned: expected shape (keep.sum(), n_voxels) = (30, 8); got (60, 8)",
        ),
        ("temporal_metric", _metric_array, "expected a float scalar (Python or numpy); got ndarray of shape (1,)"),
        ("hrf", _hrf_nan, "kernel at dt=0.1 s: expected finite values for finite input; got 321 NaN or inf"),
        ("hrf", _hrf_ignores_delay, "expected a later response_delay (6 s vs 3 s) to move the peak later"),
        ("band_power", _band_power_negative, "power: expected non-negative power"),
        ("band_power", _band_power_no_windows, "power: expected at least one window for a 40 s recording; got none"),
        ("channel_combine", _combine_float_lags, "lags: expected integers; got dtype float64"),
        ("lagged_correlation", _lagged_wrong_sign, "the peak belongs at +1.5 s; got -1.5 s"),
        ("correlation_map", _map_not_a_correlation, "maps: expected values in [-1, 1] (the method's output_range)"),
        ("temporal_metric", _metric_in_place, "modified its input x in place"),
        ("lfp_cleaning", _cleaning_without_triggers, "raised TypeError on valid input"),
        ("motion_screening", _screening_without_reason, "an excluded run needs a reason; got ''"),
        ("motion_screening", _screening_as_tuple, "expected a dict with fd, keep, excluded and reason; got tuple"),
        (
            "bold_preprocessing",
            _bold_ignores_sample_mask,
            "cleaned (sample_mask keeping 57 of 60 volumes): expected shape (n_kept, n_brain_voxels) = (57, 32)",
        ),
    ],
)
def test_broken_method_is_reported_by_name(registered, step, func, expected):
    registered(step, "broken", func)
    problems = check_method(step, "broken")
    assert any(expected in p for p in problems), problems
    report = check_all(step)
    assert report[(step, "broken")] == problems
    assert all(not p for (s, m), p in report.items() if m != "broken")


def test_output_that_trips_the_check_itself_is_a_problem_not_a_crash(monkeypatch):
    odd = check_function("band_power", lambda lfp, sfreq, *, bands: (np.ones((2, 3)),))
    assert odd == ["expected a tuple (power, times); got a tuple of 1"]

    def tripping_check(checker):
        raise RuntimeError("a corner of the output no check foresaw")

    monkeypatch.setitem(contracts._CHECKS, "hrf", tripping_check)
    assert check_method("hrf", "spm") == [
        "its output could not be checked: RuntimeError: a corner of the output no check foresaw"
    ]


def test_a_method_that_is_not_a_correlation_is_not_held_to_one(registered):
    registered("correlation_map", "covariance", _map_covariance)
    assert check_method("correlation_map", "covariance") == []


def test_params_reach_the_method():
    assert check_function("lfp_removal", get_plugin("lfp_removal", "censor"), params={"percentile": 50.0}) == []
    problems = check_function("lfp_removal", get_plugin("lfp_removal", "censor"), params={"percentile": -1.0})
    assert problems and "raised ValueError on valid input: percentile must lie in (0, 100]" in problems[0]


def test_unknown_step_or_method_or_unloadable_method(monkeypatch):
    with pytest.raises(ValueError, match="Expected one of the steps with a contract"):
        check_method("seizure_detection", "any")
    with pytest.raises(PluginNotFoundError):
        check_method("hrf", "no_such_hrf")

    def broken_entry_point(step, method):
        raise ImportError("No module named 'mylab'")

    monkeypatch.setattr(contracts, "get_plugin", broken_entry_point)
    assert check_method("hrf", "spm") == ["could not be loaded: ImportError: No module named 'mylab'"]


# ---------------------------------------------------------------------------------------------
# lfpbold plugins [--check]


def test_cli_lists_steps_with_descriptions():
    run = CliRunner().invoke(main, ["plugins"])
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert [line.split()[0] for line in lines] == list(STEPS)
    assert "cross_correlation" in lines[list(STEPS).index("lagged_correlation")]
    assert STEPS["hrf"] in lines[list(STEPS).index("hrf")]


def test_cli_check_passes_on_the_builtins():
    run = CliRunner().invoke(main, ["plugins", "--check"])
    assert run.exit_code == 0, run.output
    for step, methods in BUILTINS.items():
        for m in methods:
            assert any(line.split() == [step, m, "ok"] for line in run.output.splitlines()), (step, m)
    assert "0 failed" in run.output.splitlines()[-1]


def test_cli_check_fails_on_a_broken_method_and_names_it(registered):
    registered("lfp_removal", "broken", _removal_short_keep)
    run = CliRunner().invoke(main, ["plugins", "--check"])
    assert run.exit_code == 1, run.output
    line = next(line for line in run.output.splitlines() if line.split()[:2] == ["lfp_removal", "broken"])
    assert "keep: expected shape (n_timepoints,) = (60,); got (59,)" in line
    assert "1 failed" in run.output.splitlines()[-1]
    # one step only: the others are not run
    run = CliRunner().invoke(main, ["plugins", "--check", "--step", "hrf"])
    assert run.exit_code == 0 and "lfp_removal" not in run.output


def test_cli_check_of_an_unknown_step_says_which_steps_have_contracts():
    run = CliRunner().invoke(main, ["plugins", "--check", "--step", "seizure_detection"])
    assert run.exit_code == 2
    assert "is not a step" in run.output and "band_power" in run.output


def test_cli_leaves_a_lab_step_without_contract_unchecked(registered):
    registered("spike_sorting", "kilosort", lambda x: x)
    run = CliRunner().invoke(main, ["plugins", "--check"])
    assert run.exit_code == 0, run.output
    assert "not checked: step 'spike_sorting' has no contract" in run.output
    listing = CliRunner().invoke(main, ["plugins"]).output
    assert listing.splitlines()[-1].split()[:2] == ["spike_sorting", "kilosort"]


# ---------------------------------------------------------------------------------------------
# Nothing in plugins/ needs DataJoint


def test_importing_every_plugin_leaves_datajoint_unloaded():
    modules = sorted(p.stem for p in PLUGINS_DIR.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('lfpbold.plugins.' + m)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'datajoint'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
