"""Parameter sets, and the selection of which combination of them runs on which scans.

Each family is a Lookup table seeded with the reference study's defaults as set 0; a lab adds its
own with ``insert_new_params`` and gets a second set of rows side by side, never an overwrite. A
parameter set names, for each analysis step, the plugin method that does it (looked up in the
entry-point registry, :mod:`lfpbold.plugins`) and that method's arguments; nothing in the schemas
names a method. :class:`AnalysisSelection` says which combination of sets is computed on which
scans: ``populate`` computes what is selected, nothing else.
"""

import hashlib
import json

import datajoint as dj

from lfpbold.constants import CLASSIC_BANDS, RODENT_P, one_hz_bands
from lfpbold.plugins import get_plugin

from . import acquisition  # noqa: F401  (AnalysisSelection's definition refers to acquisition.Scan)

schema = dj.Schema()

#: The band sets of FrequencyBand, in display order.
BAND_SETS = {"classic": CLASSIC_BANDS, "one_hz": one_hz_bands()}
#: The parameter-set tables' key attributes, in the order of the pipeline.
PARAMSET_KEYS = ("lfp_paramset", "band_paramset", "bold_paramset", "relation_paramset")


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
        {"band": name, "band_set": band_set, "low_hz": lo, "high_hz": hi, "band_order": i}
        for band_set, bands in BAND_SETS.items()
        for i, (name, (lo, hi)) in enumerate(bands.items())
    ]


def params_hash(params: dict) -> str:
    """A stable digest of a parameter dict (key order does not matter)."""
    return hashlib.md5(json.dumps(params, sort_keys=True, default=float).encode()).hexdigest()


def _paramset(number: int, params: dict, description: str, key: str) -> dict:
    return {key: number, "params": params, "params_hash": params_hash(params), "paramset_description": description}


def method_and_kwargs(step_params: dict, where: str = "params") -> tuple[str, dict]:
    """Split ``{"method": name, **kwargs}`` into the method's name and its keyword arguments."""
    if not isinstance(step_params, dict) or "method" not in step_params:
        raise ValueError(f"{where} must be a dict with a 'method' key; got {step_params!r}")
    kwargs = dict(step_params)
    return kwargs.pop("method"), kwargs


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
        1
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
            "lfp_cleaning": {"method": "subsample_template_regression", "line_freq": 60.0, "notch_max_hz": 300.0},
            "channel_combine": {"method": "phase_aligned", "max_lag_s": 0.005, "fit_s": 60.0},
            "output_rate_hz": 1000.0,
            "keep_channels": True,
        }

    # One default per family, so a plain populate computes the study's analysis once; a lab's
    # alternative (say {"lfp_cleaning": {"method": "none"}, ...}) is one insert_new_params() away.
    contents = [
        _paramset(
            0,
            default_params.__func__(),
            "study: template-regression MR artifact removal + notches (Tu & Zhang 2022); phase-aligned mean",
            "lfp_paramset",
        )
    ]


@schema
class BandPowerParams(_ParamSet, dj.Lookup):
    definition = """
    # how band power and its HRF-convolved regressors are computed
    band_paramset : int32
    ---
    params : json                      # {band_power: {method, ...}, hrf: {method, ...}, band_sets: [...]}
    params_hash : char(32)
    paramset_description : varchar(255)
    unique index (params_hash)
    """
    steps = ("band_power", "hrf")

    @classmethod
    def check_params(cls, params: dict) -> None:
        super().check_params(params)
        unknown = set(params.get("band_sets", [])) - set(BAND_SETS)
        if unknown or not params.get("band_sets"):
            raise ValueError(
                f"BandPowerParams: band_sets must be a non-empty list from {list(BAND_SETS)}; "
                f"got {params.get('band_sets')!r}"
            )

    @staticmethod
    def default_params() -> dict:
        return {
            "band_power": {"method": "spectrogram", "window_s": 1.0, "step_s": 0.1, "l_freq": 0.1, "h_freq": 300.0},
            "hrf": {"method": "spm", "p": list(RODENT_P)},
            "band_sets": ["classic", "one_hz"],
        }

    contents = [
        _paramset(
            0,
            default_params.__func__(),
            "study: spectrogram 1 s / 0.1 s, bands classic + 1 Hz, SPM HRF p=[4 4 1 1 6 0 32]",
            "band_paramset",
        )
    ]


@schema
class BoldParams(_ParamSet, dj.Lookup):
    definition = """
    # how a BOLD run is screened and preprocessed
    bold_paramset : int32
    ---
    params : json                      # {screening: {method, ...} or null, bold_preprocessing: {method, ...}}
    params_hash : char(32)
    paramset_description : varchar(255)
    unique index (params_hash)
    """
    steps = ("bold_preprocessing",)

    @classmethod
    def check_params(cls, params: dict) -> None:
        super().check_params(params)
        screening = params.get("screening")
        if screening is not None:
            get_plugin("motion_screening", method_and_kwargs(screening, "BoldParams screening")[0])

    @staticmethod
    def bandpass_params() -> dict:
        return {
            "bold_preprocessing": {"method": "bandpass", "high_pass": 0.01, "low_pass": 0.1},
            "screening": None,
        }

    @staticmethod
    def default_params() -> dict:
        return {
            "bold_preprocessing": {
                "method": "study",
                "fwhm": 0.75,
                "high_pass": 0.01,
                "low_pass": 0.1,
                "global_signal": True,
            },
            "screening": {
                "method": "framewise_displacement",
                "threshold_mm": 0.1,
                "max_scrub_fraction": 0.25,
                "neighbours": [1, 1],
                "radius_mm": 5.0,
            },
        }

    contents = [
        _paramset(
            0,
            default_params.__func__(),
            "study: FD screening, FWHM 0.75 mm, motion/WM/ventricle/global regression, band-pass 0.01-0.1 Hz",
            "bold_paramset",
        )
    ]


def _band_sets_of(section: dict, name: str, where: str) -> None:
    sets = section.get(name)
    if sets is not None and (not isinstance(sets, list) or set(sets) - set(BAND_SETS)):
        raise ValueError(f"RelationParams: {where} must be a list from {list(BAND_SETS)}; got {sets!r}")


@schema
class RelationParams(_ParamSet, dj.Lookup):
    definition = """
    # how LFP and BOLD are related: maps, temporal metrics, HRF sweep, lags, LFP removal, noise ceiling
    relation_paramset : int32
    ---
    params : json
    params_hash : char(32)
    paramset_description : varchar(255)
    unique index (params_hash)
    """

    #: section -> (plugin step, key holding the method names or name)
    method_lists = {
        "maps": ("correlation_map", "methods"),
        "temporal": ("temporal_metric", "metrics"),
        "removal": ("lfp_removal", "methods"),
        "lag": ("lagged_correlation", "method"),
    }

    @classmethod
    def check_params(cls, params: dict) -> None:
        from lfpbold.plugins.cohort import spaced

        missing = {"maps", "temporal", "hrf_sweep", "lag", "removal", "noise_ceiling"} - set(params)
        if missing:
            raise ValueError(f"RelationParams: params need {sorted(missing)}")
        for section, (step, key) in cls.method_lists.items():
            names = params[section].get(key)
            names = [names] if isinstance(names, str) else names
            if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
                raise ValueError(
                    f"RelationParams: {section}.{key} must name one or more distinct '{step}' methods; "
                    f"got {params[section].get(key)!r}"
                )
            for name in names:
                get_plugin(step, name)
            extra = set(params[section].get("method_params", {})) - set(names)
            if extra:
                raise ValueError(
                    f"RelationParams: {section}.method_params names methods not in {section}.{key}: {sorted(extra)}"
                )
        temporal = params["temporal"]
        for metric in temporal.get("band_sets", {}):
            _band_sets_of(temporal["band_sets"], metric, f"temporal.band_sets[{metric!r}]")
        shuffle = temporal.get("shuffle")
        if shuffle is not None:
            get_plugin("temporal_metric", shuffle["metric"])
            _band_sets_of(shuffle, "band_sets", "temporal.shuffle.band_sets")
        _band_sets_of(params["lag"], "band_sets", "lag.band_sets")
        bands = params["removal"].get("bands")
        if not bands or not isinstance(bands, list):
            raise ValueError(
                f"RelationParams: removal.bands must list the bands whose regressors the removal "
                f"methods get, in order; got {bands!r}"
            )
        for where, spec in (
            ("hrf_sweep.response_delays", params["hrf_sweep"]["response_delays"]),
            ("hrf_sweep.undershoot_delays", params["hrf_sweep"]["undershoot_delays"]),
            ("noise_ceiling.cnr_grid", params["noise_ceiling"]["cnr_grid"]),
        ):
            try:
                spaced(spec)
            except (TypeError, ValueError) as err:
                raise ValueError(f"RelationParams: {where}: {err}") from None
        group_maps = params.get("group_maps", {})
        _band_sets_of(group_maps, "band_sets", "group_maps.band_sets")
        n_perm = group_maps.get("n_permutations", 0)
        if not isinstance(n_perm, int) or n_perm < 0:
            raise ValueError(f"RelationParams: group_maps.n_permutations must be an integer >= 0; got {n_perm!r}")
        for name in ("cluster_forming_p", "alpha"):
            value = group_maps.get(name, 0.05)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"RelationParams: group_maps.{name} must lie in (0, 1); got {value!r}")
        cnr = params["noise_ceiling"].get("cnr", "estimate")
        if cnr != "estimate" and not (isinstance(cnr, (int, float)) and cnr > 0):
            raise ValueError(f"noise_ceiling cnr must be 'estimate' or a positive number; got {cnr!r}")

    @staticmethod
    def default_params() -> dict:
        """The study's relationship analyses.

        ``maps.methods`` and ``temporal.metrics`` list plugin methods; the first of each is the
        primary one: seed maps, spatial similarity and the maps after LFP removal use the first map
        method, and ``temporal_r`` with its tests and the noise ceiling is the first metric. Every
        other metric gets a column of its own name in the results.
        """
        return {
            "maps": {"methods": ["pearson", "spearman", "mutual_information"]},
            "temporal": {
                "metrics": ["pearson", "spearman", "mutual_information"],
                # the slower estimates only where the study reports them
                "band_sets": {"mutual_information": ["classic"]},
                "shuffle": {"metric": "pearson", "n_shuffles": 1000, "min_shift_s": 30.0, "band_sets": ["classic"]},
            },
            "hrf_sweep": {"band": "gamma", "response_delays": [2.0, 8.0, 0.25], "undershoot_delays": [2.0, 12.0, 0.5]},
            "lag": {"method": "cross_correlation", "max_lag_s": 20.0, "band_sets": ["classic"]},
            "removal": {
                "methods": ["ols", "soft", "censor"],
                "bands": list(CLASSIC_BANDS),
                "method_params": {"censor": {"percentile": 85.0}},
            },
            "noise_ceiling": {"cnr": "estimate", "band": "gamma", "cnr_grid": [0.1, 5.0, 0.1]},
            # voxel-wise group tests of the cohort maps (CohortMapStats)
            "group_maps": {"n_permutations": 1000, "cluster_forming_p": 0.001, "alpha": 0.05, "band_sets": ["classic"]},
        }

    contents = [
        _paramset(
            0,
            default_params.__func__(),
            "study: Pearson/Spearman/MI maps and metrics, HRF sweep "
            "2-8 s / 2-12 s, lags +-20 s, OLS/soft/censor removal, "
            "CNR estimated from gamma maps; voxel-wise group tests with 1000 sign flips",
            "relation_paramset",
        )
    ]


@schema
class AnalysisSelection(dj.Manual):
    definition = """
    # one scan selected for one combination of parameter sets: populate computes what is selected
    -> acquisition.Scan
    -> LFPParams
    -> BandPowerParams
    -> BoldParams
    -> RelationParams
    """


def selected(query):
    """``query`` restricted to what some selection asks for (on the parameter sets it shares)."""
    return query & AnalysisSelection.proj()


_PARAMSET_TABLES = {
    "lfp_paramset": LFPParams,
    "band_paramset": BandPowerParams,
    "bold_paramset": BoldParams,
    "relation_paramset": RelationParams,
}


def check_paramsets(combo: dict) -> dict:
    """``combo`` with each parameter-set number checked to be an integer that exists.

    The one check every entry point (``select``, ``results``, the exports) runs on the parameter
    sets it is given: a value that is not an integer is a TypeError, a set that does not exist a
    ValueError naming the set, its table and the sets that do exist.

    Parameters
    ----------
    combo : dict
        Any of :data:`PARAMSET_KEYS` -> parameter-set number.

    Returns
    -------
    dict
        The same keys, the numbers as plain ``int``.

    Examples
    --------
    >>> check_paramsets({"bold_paramset": 99})                    # doctest: +SKIP
    Traceback (most recent call last):
    ...
    ValueError: No BoldParams set 99 (bold_paramset in table "lfpbold_params"."#bold_params"); the sets that exist: 0, 1
    """
    import numbers

    checked = {}
    for name, value in combo.items():
        if name not in _PARAMSET_TABLES:
            raise ValueError(f"{name!r} is not a parameter-set key; use {list(PARAMSET_KEYS)}")
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"{name} must be a parameter-set number (an integer); got {value!r}")
        table = _PARAMSET_TABLES[name]
        checked[name] = int(value)
        if not table & {name: checked[name]}:
            known = ", ".join(str(int(n)) for n in sorted(table.to_arrays(name))) or "none"
            raise ValueError(
                f"No {table.__name__} set {checked[name]} ({name} in table {table.full_table_name}); "
                f"the sets that exist: {known}"
            )
    return checked
