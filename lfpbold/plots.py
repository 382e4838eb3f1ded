"""The study's figures, read from the database and never recomputed.

:func:`plot` is the one way in (``lfpbold plot KIND`` on the command line): it reads the stored rows
a figure needs and hands them to the drawing functions of :mod:`lfpbold.drawing`. Each kind names
its rows in :data:`KINDS`. A scan, region, band or state that is not given is the first one stored
(in key order); one that does not exist is an error that lists what does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["plot", "KINDS", "FORMATS", "plot_data", "diagram_svg"]

FORMATS = ("png", "svg", "pdf")

#: kind -> what it shows (the CLI's help lists these)
KINDS: dict[str, str] = {
    "group-seed-map": "a cohort's group-mean seed map over the template, cut through the implant (--state --region)",
    "seed-map": "one scan's seed map over the template (--subject --session --run --region)",
    "group-power-map": "a cohort's group-mean LFP power map of one band (--state --region --band)",
    "power-map": "one scan's LFP power map of one band (--subject --session --run --region --band)",
    "bars": "spatial vs temporal r per band, region and state, error bars across scans",
    "spectrogram": "one scan's band-power spectrogram with gamma power and the local BOLD (--subject ... --region)",
    "lag": "lagged cross-correlation of band power and local BOLD, per scan and mean (--state --region [--band])",
    "scatter": "scan-wise spatial r against temporal r of one band (--band; --state/--region to restrict)",
    "noise-ceiling": "observed r against CNR at the inferred true r, the observed r marked (--state --region)",
    "motion": "one scan's framewise displacement with the scrubbed volumes (--subject --session --run)",
    "lfp-spectrum": "one scan's LFP spectrum before and after artifact removal (--subject ... --region)",
    "hrf-sweep": "temporal and spatial r over the HRF delays, one scan (--subject ... --region)",
}

_PARAMSETS = ("lfp_paramset", "band_paramset", "bold_paramset", "relation_paramset")


def _combo(kw: dict) -> dict:
    return {k: int(kw.get(k) or 0) for k in _PARAMSETS}


def _pick(query, names: tuple[str, ...], given: dict, what: str) -> dict:
    """The first row of ``query`` (key order) matching the given values of ``names``; else a clear error."""
    restriction = {n: given[n] for n in names if given.get(n) is not None}
    query = query.proj(*[n for n in names if n not in query.primary_key])  # keys, and e.g. a joined state
    rows = (query & restriction).to_dicts(order_by=list(query.primary_key))
    if not rows:
        there = query.to_dicts(order_by=list(query.primary_key))
        options = sorted({", ".join(f"{n} {r[n]}" for n in names if n in r) for r in there})
        shown = "; ".join(options[:12]) + (" ..." if len(options) > 12 else "")
        asked = ", ".join(f"{k} {v}" for k, v in restriction.items()) or "anything"
        raise ValueError(f"No {what} for {asked}; stored: {shown or 'none (run lfpbold populate)'}")
    return rows[0]


def _label(key: dict) -> str:
    return " ".join(f"{e}-{key[k]}" for k, e in (("subject", "sub"), ("session", "ses"), ("run", "run")) if k in key)


def _atlas_for(key: dict) -> dict:
    from lfpbold.schemas import acquisition

    scan = (acquisition.Scan & key).to_dicts(limit=1)
    if not scan:
        raise ValueError(f"No scan for {key}")
    return (acquisition.Atlas & {"atlas": scan[0]["atlas"]}).fetch1()


def _implant_coords(atlas: dict) -> dict:
    """Region -> the centre of its ROI in mm (where cuts go and the implant is marked)."""
    from lfpbold.schemas import acquisition

    out = {}
    for roi in (acquisition.Atlas.ROI & {"atlas": atlas["atlas"]}).to_dicts(order_by="region"):
        ijk = np.argwhere(roi["roi_mask"]).mean(axis=0)
        out[roi["region"]] = tuple(float(v) for v in (atlas["affine"] @ np.r_[ijk, 1.0])[:3])
    return out


def _map_figure(values, atlas: dict, region: str, title: str, label: str):
    from lfpbold import drawing

    implants = _implant_coords(atlas)
    return drawing.brain_map(
        values,
        atlas["brain_mask"],
        atlas["affine"],
        template=atlas.get("template"),
        implants={region: implants[region]} if region in implants else implants,
        cut=implants.get(region),
        title=title,
        colorbar_label=label,
    )


def _band(kw: dict, default: str = "gamma") -> str:
    return kw.get("band") or default


def _primary_map(combo: dict) -> str:
    from lfpbold.schemas import params

    return params.RelationParams.get_params(combo)["maps"]["methods"][0]


def _primary_metric(combo: dict) -> str:
    from lfpbold.schemas import params

    return params.RelationParams.get_params(combo)["temporal"]["metrics"][0]


# --- one reader per kind: the stored rows, as the drawing functions' arguments --------------------


def _group_seed_map(kw):
    from lfpbold.schemas import acquisition, cohort

    combo = _combo(kw)
    key = _pick(cohort.Cohort & combo, ("state", "region"), kw, "cohort")
    row = (cohort.Cohort & key).fetch1()
    atlas = _atlas_for(acquisition.Session & {"state": key["state"]})
    title = f"group seed map · {key['state']} · {key['region']} (n = {row['n_scans']} scans)"
    return dict(values=row["group_seed_map"], atlas=atlas, region=key["region"], title=title, label="r")


def _seed_map(kw):
    from lfpbold.schemas import relations

    combo = _combo(kw)
    key = _pick(relations.SeedMap & combo, ("subject", "session", "run", "region"), kw, "seed map")
    values = (relations.SeedMap & key).fetch1("seed_map")
    title = f"seed map · {_label(key)} · {key['region']}"
    return dict(values=values, atlas=_atlas_for(key), region=key["region"], title=title, label="r")


def _group_power_map(kw):
    from lfpbold.schemas import acquisition, cohort

    combo = _combo(kw)
    kw = dict(kw, band=_band(kw))
    key = _pick(cohort.Cohort.Band & combo, ("state", "region", "band"), kw, "cohort band")
    values = (cohort.Cohort.Band & key).fetch1("group_power_map")
    atlas = _atlas_for(acquisition.Session & {"state": key["state"]})
    title = f"group {key['band']} power map · {key['state']} · {key['region']}"
    return dict(values=values, atlas=atlas, region=key["region"], title=title, label="r")


def _power_map(kw):
    from lfpbold.schemas import relations

    combo = _combo(kw)
    kw = dict(kw, band=_band(kw))
    query = relations.LFPPowerMap.Map & combo & {"map_method": _primary_map(combo)}
    key = _pick(query, ("subject", "session", "run", "region", "band"), kw, "power map")
    values = (relations.LFPPowerMap.Map & key).fetch1("power_map")
    title = f"{key['band']} power map ({key['map_method']}) · {_label(key)} · {key['region']}"
    return dict(values=values, atlas=_atlas_for(key), region=key["region"], title=title, label=key["map_method"])


def _scan_values(combo: dict, band_set: str = "classic", restriction=None):
    """Per scan and implant: (key, band) -> spatial r and primary temporal metric, with state."""
    from lfpbold.schemas import acquisition, params, relations

    bands = params.FrequencyBand & {"band_set": band_set}
    where = restriction or {}
    spatial = (relations.SpatialSimilarity.Band * acquisition.Session.proj("state") & combo & bands & where).proj(
        "r", "state"
    )
    metric = {"metric": _primary_metric(combo)}
    temporal = (relations.TemporalCorrelation.Metric & combo & bands & metric).proj(temporal="value")
    return (spatial * temporal).to_dicts()


def _bars(kw):
    from lfpbold.drawing import sem
    from lfpbold.query import results
    from lfpbold.schemas import params

    combo = _combo(kw)
    restriction = {k: kw[k] for k in ("state", "region") if kw.get(k)}
    df = results(**combo)
    for k, v in restriction.items():
        df = df[df[k] == v]
    if df.empty:
        where = f" for {restriction}" if restriction else ""
        raise ValueError(f"No cohort rows to plot{where} (run lfpbold populate)")
    order = params.FrequencyBand & {"band_set": "classic"}
    band_order = list(order.to_arrays("band", order_by="band_order"))
    per_scan = _scan_values(combo, restriction=restriction or None)
    panels = []
    for (state, region), rows in df.groupby(["state", "region"], sort=False):
        rows = rows.set_index("band").reindex([b for b in band_order if b in set(rows["band"])])
        scans = [r for r in per_scan if r["state"] == state and r["region"] == region]
        panels.append(
            dict(
                state=state,
                region=region,
                bands=list(rows.index),
                spatial=rows["scanwise_spatial_r"].astype(float).to_numpy(),
                temporal=rows["temporal_r"].astype(float).to_numpy(),
                spatial_err=[sem([r["r"] for r in scans if r["band"] == b]) for b in rows.index],
                temporal_err=[sem([r["temporal"] for r in scans if r["band"] == b]) for b in rows.index],
                n_scans=int(rows["n_scans"].iloc[0]),
            )
        )
    return dict(panels=panels, title="scan-wise spatial r (power map vs seed map) and temporal r (power vs local BOLD)")


def _scan_implant(table, kw, what):
    combo = _combo(kw)
    return _pick(table & combo, ("subject", "session", "run", "region"), kw, what)


def _spectrogram(kw):
    from lfpbold.schemas import analysis, params, relations

    key = _scan_implant(relations.SeedMap * analysis.BandPower.proj(), kw, "band power with a seed map")
    sets = params.BandPowerParams.get_params(key)["band_sets"]
    band_set = "one_hz" if "one_hz" in sets else sets[0]
    rows = (analysis.BandPower.Band * params.FrequencyBand & key & {"band_set": band_set}).to_dicts(
        order_by="band_order"
    )
    times, onsets = (analysis.BandPower & key).fetch1("times", "volume_onsets")
    overlay = _band(kw)
    gamma = (analysis.BandPower.Band & key & {"band": overlay}).fetch1("power")
    keep = (analysis.PreprocessedBold & key).fetch1("keep")
    seed = (relations.SeedMap & key).fetch1("seed_ts")
    return dict(
        times=times,
        freqs_low=[r["low_hz"] for r in rows],
        freqs_high=[r["high_hz"] for r in rows],
        power=np.stack([r["power"] for r in rows]),
        overlay_times=times,
        gamma=gamma,
        bold_times=np.asarray(onsets)[keep],
        bold=seed,
        band_label=overlay,
        title=f"band power · {_label(key)} · {key['region']}",
    )


def _lag(kw):
    from lfpbold.schemas import acquisition, params, relations

    combo = _combo(kw)
    query = relations.LagCorrelation.Band * acquisition.Session.proj("state") & combo
    key = _pick(query, ("state", "region"), kw, "lag curve")
    where = {"state": key["state"], "region": key["region"]}
    if kw.get("band"):
        where["band"] = kw["band"]
    rows = (query & where).proj("lags_s", "r").to_dicts()
    order = list((params.FrequencyBand & {"band_set": "classic"}).to_arrays("band", order_by="band_order"))
    bands = [b for b in order if any(r["band"] == b for r in rows)]
    curve = lambda r: (r["lags_s"], r["r"]) if r["lags_s"] is not None else None  # noqa: E731
    curves = {b: [curve(r) for r in rows if r["band"] == b] for b in bands}
    return dict(curves=curves, title=f"lagged cross-correlation · {key['state']} · {key['region']}")


def _scatter(kw):
    combo = _combo(kw)
    band = _band(kw)
    restriction = {k: kw[k] for k in ("state", "region", "subject") if kw.get(k)}
    rows = [r for r in _scan_values(combo, restriction=restriction or None) if r["band"] == band]
    if not rows:
        raise ValueError(f"No scan-wise spatial and temporal r for band {band!r} (run lfpbold populate)")
    points = [dict(spatial_r=r["r"], temporal_r=r["temporal"], state=r["state"], region=r["region"]) for r in rows]
    return dict(points=points, band=band, title=f"scan-wise spatial vs temporal r · {band}")


def _noise_ceiling(kw):
    from lfpbold.schemas import cohort, params

    combo = _combo(kw)
    key = _pick(cohort.Cohort & combo, ("state", "region"), kw, "cohort")
    band = params.RelationParams.get_params(combo)["noise_ceiling"]["band"]
    curve = (cohort.Cohort.NoiseCeiling & key).to_dicts(order_by="cnr_step")
    figures = (cohort.Cohort.Band & key & {"band": band}).fetch1("temporal_r", "inferred_true_r", "cnr", "missing")
    if not curve:  # the cohort says why (e.g. the observed r is beyond what the model reaches)
        why = figures[3].get("inferred_true_r") or "not stored"
        raise ValueError(f"No noise ceiling for state {key['state']}, region {key['region']}: {why}")
    return dict(
        cnr_values=[c["cnr_value"] for c in curve],
        mean_scan_r=[c["mean_scan_r"] for c in curve],
        averaged_r=[c["averaged_r"] for c in curve],
        true_r=figures[1],
        observed_r=figures[0],
        cnr=figures[2],
        title=f"noise ceiling · {band} · {key['state']} · {key['region']}",
    )


def _motion(kw):
    from lfpbold.schemas import acquisition, analysis, params

    combo = _combo(kw)
    key = _pick(analysis.PreprocessedBold & combo, ("subject", "session", "run"), kw, "preprocessed BOLD run")
    fd, keep, excluded, reason = (analysis.PreprocessedBold & key).fetch1("fd", "keep", "excluded", "exclusion_reason")
    if fd is None:
        raise ValueError(f"{_label(key)}: BoldParams set {key['bold_paramset']} does no motion screening (no FD)")
    t_r = (acquisition.FMRIRun & key).fetch1("t_r")
    screening = params.BoldParams.get_params(key).get("screening") or {}
    verdict = f"excluded: {reason}" if excluded else "included"
    return dict(
        fd=fd,
        keep=keep,
        t_r=t_r,
        threshold=screening.get("threshold_mm"),
        title=f"motion · {_label(key)} · {verdict}",
    )


def _lfp_spectrum(kw):
    from lfpbold.schemas import analysis

    key = _scan_implant(analysis.CleanLFP, kw, "clean LFP")
    freqs, raw, clean = (analysis.CleanLFP & key).fetch1("spectrum_hz", "raw_psd", "clean_psd")
    if freqs is None:
        raise ValueError(f"{_label(key)} {key['region']}: CleanLFP row has no spectra (computed before they were kept)")
    return dict(freqs=freqs, raw_psd=raw, clean_psd=clean, title=f"LFP spectrum · {_label(key)} · {key['region']}")


def _hrf_sweep(kw):
    from lfpbold.schemas import relations

    key = _scan_implant(relations.HRFSensitivity, kw, "HRF sweep")
    row = (relations.HRFSensitivity & key).fetch1()
    return dict(
        response_delays=row["response_delays"],
        undershoot_delays=row["undershoot_delays"],
        temporal_r=row["temporal_r"],
        spatial_r=row["spatial_r"],
        best=(row["best_response_delay"], row["best_undershoot_delay"]),
        title=f"HRF sweep · {row['band']} · {_label(key)} · {key['region']}",
    )


#: kind -> (reader, drawing function or its name in lfpbold.drawing, imported when drawn)
_READERS: dict[str, tuple[Callable, Callable | str]] = {
    "group-seed-map": (_group_seed_map, _map_figure),
    "seed-map": (_seed_map, _map_figure),
    "group-power-map": (_group_power_map, _map_figure),
    "power-map": (_power_map, _map_figure),
    "bars": (_bars, "spatial_temporal_bars"),
    "spectrogram": (_spectrogram, "spectrogram"),
    "lag": (_lag, "lag_curves"),
    "scatter": (_scatter, "scatter"),
    "noise-ceiling": (_noise_ceiling, "noise_ceiling"),
    "motion": (_motion, "motion_trace"),
    "lfp-spectrum": (_lfp_spectrum, "lfp_spectrum"),
    "hrf-sweep": (_hrf_sweep, "hrf_sweep"),
}


def plot_data(kind: str, **selection) -> dict:
    """The stored values a figure of ``kind`` draws (the drawing function's keyword arguments)."""
    if kind not in _READERS:
        raise ValueError(f"Unknown plot kind {kind!r}; the kinds: {', '.join(KINDS)}")
    return _READERS[kind][0](selection)


def plot(
    kind: str,
    *,
    subject: str | None = None,
    session: str | None = None,
    run: int | None = None,
    region: str | None = None,
    band: str | None = None,
    state: str | None = None,
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    bold_paramset: int = 0,
    relation_paramset: int = 0,
    path: str | Path | None = None,
    dpi: int = 120,
):
    """One of the study's figures, from the stored rows (see :data:`KINDS`).

    Parameters
    ----------
    kind : str
        A key of :data:`KINDS`, e.g. ``"bars"``, ``"group-seed-map"``, ``"motion"``.
    subject, session, run, region, band, state : optional
        Which scan, implant, band or cohort; unnamed ones are the first stored.
    lfp_paramset, band_paramset, bold_paramset, relation_paramset : int
        Which parameter sets' rows.
    path : path, optional
        Also save the figure there; the format follows the suffix (.png, .svg, .pdf).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import lfpbold
    >>> lfpbold.connect()                                          # doctest: +SKIP
    >>> fig = lfpbold.plot("bars", path="bars.png")                # doctest: +SKIP
    >>> fig = lfpbold.plot("group-seed-map", state="sedated", region="ACC")  # doctest: +SKIP
    """
    if path is not None:
        suffix = Path(path).suffix.lower().lstrip(".")
        if suffix not in FORMATS:
            raise ValueError(f"{path}: the figure format follows the suffix; choose from .{', .'.join(FORMATS)}")
    selection = dict(
        subject=subject,
        session=session,
        run=run,
        region=region,
        band=band,
        state=state,
        lfp_paramset=lfp_paramset,
        band_paramset=band_paramset,
        bold_paramset=bold_paramset,
        relation_paramset=relation_paramset,
    )
    data = plot_data(kind, **selection)
    draw = _READERS[kind][1]
    if isinstance(draw, str):
        from lfpbold import drawing

        draw = getattr(drawing, draw)
    fig = draw(**data)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def diagram_svg() -> str:
    """DataJoint's diagram of every lfpbold schema as SVG text (needs Graphviz's ``dot``).

    Schema names appear with the default prefix (``lfpbold_``) whatever prefix is active, so the
    README's copy (``docs/pipeline.svg``) does not depend on the database it was drawn from.
    """
    import datajoint as dj

    from lfpbold.db import DEFAULT_PREFIX
    from lfpbold.pipeline import SCHEMA_MODULES, _modules

    modules = _modules()
    # the tables by class name (DataJoint looks them up in this context; without it, in the caller's)
    context = {k: v for m in modules.values() for k, v in vars(m).items() if isinstance(v, type)}
    diagram = None
    for name in SCHEMA_MODULES:
        part = dj.Diagram(modules[name].active_schema, context=context)
        diagram = part if diagram is None else diagram + part
    svg = diagram.make_svg()
    text = svg.data if hasattr(svg, "data") else str(svg)
    prefix = modules["acquisition"].active_schema.database[: -len("acquisition")]
    for name in SCHEMA_MODULES:
        text = text.replace(prefix + name, DEFAULT_PREFIX + name)
    return text if text.endswith("\n") else text + "\n"
