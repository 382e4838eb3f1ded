"""Parameter sets: which plugin each analysis step uses, and with which parameters.

Each family is a Lookup table seeded with the reference study's defaults; a lab adds its own with
``insert_new_params`` and gets a second set of rows side by side, never an overwrite.
"""

import hashlib
import json

import datajoint as dj

from lfpbold.plugins import get_plugin
from lfpbold.plugins.hrf import RODENT_P

schema = dj.Schema()

CLASSIC_BANDS = [
    ("delta", 1.0, 4.0),
    ("theta", 4.0, 7.0),
    ("alpha", 7.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 40.0, 100.0),
]


def _one_hz_bands():
    edges = [0.1] + list(range(1, 101))
    return [(f"{lo:g}-{hi:g}Hz", float(lo), float(hi)) for lo, hi in zip(edges[:-1], edges[1:])]


@schema
class FrequencyBand(dj.Lookup):
    definition = """
    # a band of LFP frequencies
    band : varchar(16)
    ---
    band_set : varchar(16)             # classic | one_hz
    low_hz : float64
    high_hz : float64
    band_order : int32                 # display order within its set
    """
    contents = [
        {"band": n, "band_set": band_set, "low_hz": lo, "high_hz": hi, "band_order": i}
        for band_set, bands in (("classic", CLASSIC_BANDS), ("one_hz", _one_hz_bands()))
        for i, (n, lo, hi) in enumerate(bands)
    ]


def params_hash(params: dict) -> str:
    """A stable digest of a parameter dict (key order does not matter)."""
    return hashlib.md5(json.dumps(params, sort_keys=True, default=float).encode()).hexdigest()


def _paramset(number: int, params: dict, description: str, key: str) -> dict:
    return {key: number, "params": params, "params_hash": params_hash(params), "paramset_description": description}


class _ParamSet:
    """Elements-style helpers shared by every parameter-set table."""

    #: plugin steps named in ``params`` as ``{step: {"method": name, ...}}``
    steps: tuple = ()

    @classmethod
    def check_params(cls, params: dict) -> None:
        """Raise if a step is missing or names a method no installed plugin provides."""
        for step in cls.steps:
            if step not in params or "method" not in params[step]:
                raise ValueError(f"{cls.__name__}: params need a '{step}' entry with a 'method'; got {sorted(params)}")
            get_plugin(step, params[step]["method"])

    @classmethod
    def insert_new_params(cls, params: dict, description: str = "", paramset: int | None = None) -> int:
        """Insert a parameter set unless the same parameters exist; return its number.

        Examples
        --------
        >>> from lfpbold.schemas.params import BoldParams          # doctest: +SKIP
        >>> p = BoldParams.default_params()                          # doctest: +SKIP
        >>> p["bold_preprocessing"]["global_signal"] = False         # doctest: +SKIP
        >>> BoldParams.insert_new_params(p, "study, no GSR")         # doctest: +SKIP
        2
        """
        cls.check_params(params)
        digest = params_hash(params)
        table = cls()
        existing = (table & {"params_hash": digest}).keys()
        if existing:
            return existing[0][table.primary_key[0]]
        if paramset is None:
            numbers = table.to_arrays(table.primary_key[0]) if len(table) else []
            paramset = int(max(numbers, default=-1)) + 1
        table.insert1(_paramset(paramset, params, description, table.primary_key[0]))
        return paramset

    @classmethod
    def get_params(cls, key) -> dict:
        return (cls() & key).fetch1("params")


@schema
class LFPParams(_ParamSet, dj.Lookup):
    definition = """
    # how raw LFP becomes one clean signal per implant
    lfp_paramset : int32
    ---
    params : json                      # {lfp_cleaning: {method, ...}, channel_combine: {method, ...}, output_rate_hz}
    params_hash : char(32)
    paramset_description : varchar(255)
    unique index (params_hash)
    """
    steps = ("lfp_cleaning", "channel_combine")

    @staticmethod
    def default_params() -> dict:
        return {
            "lfp_cleaning": {"method": "template_regression", "line_freq": 60.0, "notch_max_hz": 300.0},
            "channel_combine": {"method": "phase_aligned", "max_lag_s": 0.005, "fit_s": 60.0},
            "output_rate_hz": 1000.0,
            "keep_channels": True,
        }

    @staticmethod
    def artifact_free_params() -> dict:
        return {
            "lfp_cleaning": {"method": "none"},
            "channel_combine": {"method": "phase_aligned", "max_lag_s": 0.005, "fit_s": 60.0},
            "output_rate_hz": 1000.0,
            "keep_channels": True,
        }

    # One default per family, so a plain populate computes the study's analysis once; the
    # alternatives above are one insert_new_params() away.
    contents = [_paramset(0, default_params.__func__(), "study: template-regression MR artifact removal + "
                                                        "notches (Tu & Zhang 2022); phase-aligned mean", "lfp_paramset")]


@schema
class BandPowerParams(_ParamSet, dj.Lookup):
    definition = """
    # how band power and its HRF-convolved regressors are computed
    band_paramset : int32
    ---
    params : json                      # {band_power: {method, ...}, hrf: {method, p}, band_sets: [...]}
    params_hash : char(32)
    paramset_description : varchar(255)
    unique index (params_hash)
    """
    steps = ("band_power", "hrf")

    @staticmethod
    def default_params() -> dict:
        return {
            "band_power": {"method": "spectrogram", "window_s": 1.0, "step_s": 0.1, "l_freq": 0.1, "h_freq": 300.0},
            "hrf": {"method": "spm", "p": list(RODENT_P)},
            "band_sets": ["classic", "one_hz"],
        }

    contents = [_paramset(0, default_params.__func__(), "study: spectrogram 1 s / 0.1 s, bands classic + 1 Hz, "
                                                        "SPM HRF p=[4 4 1 1 6 0 32]", "band_paramset")]


@schema
class BoldParams(_ParamSet, dj.Lookup):
    definition = """
    # how a BOLD run is screened and preprocessed
    bold_paramset : int32
    ---
    params : json                      # {bold_preprocessing: {method, ...}, screening: {...} or null}
    params_hash : char(32)
    paramset_description : varchar(255)
    unique index (params_hash)
    """
    steps = ("bold_preprocessing",)

    @staticmethod
    def bandpass_params() -> dict:
        return {
            "bold_preprocessing": {"method": "bandpass", "high_pass": 0.01, "low_pass": 0.1},
            "screening": None,
        }

    @staticmethod
    def default_params() -> dict:
        return {
            "bold_preprocessing": {"method": "study", "fwhm": 0.75, "high_pass": 0.01, "low_pass": 0.1,
                                   "global_signal": True},
            "screening": {"threshold_mm": 0.1, "max_scrub_fraction": 0.25, "neighbours": [1, 1],
                          "radius_mm": 5.0},
        }

    contents = [_paramset(0, default_params.__func__(), "study: FD screening, FWHM 0.75 mm, motion/WM/ventricle/"
                                                        "global regression, band-pass 0.01-0.1 Hz", "bold_paramset")]


@schema
class RemovalMethod(dj.Lookup):
    definition = """
    # a way of removing LFP-derived time courses from BOLD (plugins of step lfp_removal)
    removal : varchar(16)
    ---
    removal_description : varchar(255)
    """
    contents = [
        {"removal": "ols", "removal_description": "OLS regression of HRF-convolved gamma power from every voxel"},
        {"removal": "soft", "removal_description": "each of the five bands' unique variance regressed out"},
        {"removal": "censor", "removal_description": "volumes above the scan's percentile of HRF-convolved gamma dropped"},
    ]


@schema
class RelationParams(_ParamSet, dj.Lookup):
    definition = """
    # settings of the LFP-BOLD relationship analyses: HRF sweep, lags, LFP removal, noise ceiling
    relation_paramset : int32
    ---
    params : json
    params_hash : char(32)
    paramset_description : varchar(255)
    unique index (params_hash)
    """
    steps = ()

    @classmethod
    def check_params(cls, params: dict) -> None:
        missing = {"hrf_sweep", "lag", "removal", "noise_ceiling"} - set(params)
        if missing:
            raise ValueError(f"RelationParams: params need {sorted(missing)}")
        cnr = params["noise_ceiling"].get("cnr", "estimate")
        if cnr != "estimate" and not (isinstance(cnr, (int, float)) and cnr > 0):
            raise ValueError(f"noise_ceiling cnr must be 'estimate' or a positive number; got {cnr!r}")
        for method in params["removal"].get("methods", []):
            get_plugin("lfp_removal", method)

    @staticmethod
    def default_params() -> dict:
        return {
            "hrf_sweep": {"band": "gamma", "response_delays": [2.0, 8.0, 0.25], "undershoot_delays": [2.0, 12.0, 0.5]},
            "lag": {"max_lag_s": 20.0},
            "removal": {"methods": ["ols", "soft", "censor"], "censor_percentile": 85.0},
            "noise_ceiling": {"cnr": "estimate", "band": "gamma", "cnr_grid": [0.1, 5.0, 0.1]},
        }

    contents = [_paramset(0, default_params.__func__(), "study: HRF sweep 2-8 s / 2-12 s, lags +-20 s, "
                                                        "OLS/soft/censor removal, CNR estimated from gamma maps",
                          "relation_paramset")]


def grid(spec) -> "np.ndarray":
    """``[start, stop, step]`` (stop included) as an array."""
    import numpy as np

    start, stop, step = spec
    return np.round(np.arange(start, stop + step / 2, step), 10)
