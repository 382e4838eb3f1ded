"""One self-contained HTML report of a study's cohorts, for sharing with a collaborator.

:func:`report` writes ``OUT_DIR/index.html``: the results table, every figure kind of
:mod:`lfpbold.plots` (per state and region, and one example scan each for the per-scan kinds), the
parameter sets used, the software versions, and the scans included and excluded with the reasons.
Figures are embedded as base64 PNG, so the one file opens anywhere, offline.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["report", "SOFTWARE"]

#: distributions whose versions the report lists
SOFTWARE = ("lfpbold", "datajoint", "numpy", "scipy", "pandas", "nilearn", "nibabel", "mne", "pynwb", "matplotlib")

_HEADLINE = [
    "spatial_r",
    "scanwise_spatial_r",
    "spatial_p",
    "temporal_r",
    "temporal_p",
    "shuffled_r",
    "inferred_true_r",
    "peak_lag_s",
    "cnr",
    "removal_ols_r",
    "n_scans",
    "n_excluded",
]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1180px;
       color: #1d2733; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #d5dbe3; padding-bottom: .2rem; }
.meta { color: #5b6878; font-size: .9rem; }
table { border-collapse: collapse; font-size: .8rem; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d5dbe3; padding: .2rem .45rem; text-align: right; }
th { background: #eef2f7; } td:first-child, th:first-child { text-align: left; }
tr.excluded td { color: #9a3b3b; }
figure { margin: .6rem 0 1.2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e7ed; }
figcaption { font-size: .85rem; color: #5b6878; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: .5rem 1.2rem; }
pre { background: #f5f7fa; padding: .6rem; overflow-x: auto; font-size: .78rem; }
details { margin: .4rem 0; } .wide { overflow-x: auto; }
"""


def _png(fig, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_html(kind: str, selection: dict, caption: str, dpi: int) -> str:
    from lfpbold.plots import plot

    try:
        fig = plot(kind, **selection)
    except ValueError as err:  # nothing stored for this figure: say so in place of it
        return f"<figure><figcaption>{html.escape(caption)}: not drawn ({html.escape(str(err))})</figcaption></figure>"
    alt = html.escape(f"{kind}: {caption}")
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{_png(fig, dpi)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table(df, *, classes="results") -> str:
    table = df.to_html(index=False, classes=classes, border=0, na_rep="", float_format=lambda v: f"{v:.3g}")
    return f'<div class="wide">{table}</div>'  # a wide table scrolls instead of widening the page


def _versions() -> list[tuple[str, str]]:
    from lfpbold.schemas import acquisition

    conn = acquisition.Subject.connection
    server = "SELECT version()" if conn.adapter.backend == "postgresql" else "SELECT @@version"
    try:
        database = str(conn.query(server).fetchone()[0]).splitlines()[0]
    except Exception:  # the version is informative only
        database = "unknown"
    out = [("python", platform.python_version()), ("database server", database)]
    for dist in SOFTWARE:
        try:
            out.append((dist, version(dist)))
        except PackageNotFoundError:
            out.append((dist, "not installed"))
    return out


def _scans_table(combo: dict) -> str:
    """Every selected scan's BOLD run: included or excluded by motion screening, and why."""
    import pandas as pd

    from lfpbold.schemas import acquisition, analysis, params

    selected = params.AnalysisSelection & combo
    runs = (acquisition.FMRIRun.proj("n_volumes") * acquisition.Session.proj("state")) & selected
    done = analysis.PreprocessedBold.proj("excluded", "exclusion_reason", "n_kept") & combo
    rows = []
    for r in runs.to_dicts(order_by=["subject", "session", "run"]):
        key = {k: r[k] for k in ("subject", "session", "run")}
        d = (done & key).to_dicts()
        if not d:
            verdict, reason, kept = "not computed yet", "", None
        else:
            verdict = "excluded" if d[0]["excluded"] else "included"
            reason, kept = d[0]["exclusion_reason"], d[0]["n_kept"]
        row = {"state": r["state"], "scan": verdict, "volumes kept": kept, "of": r["n_volumes"], "reason": reason}
        rows.append({**key, **row})
    df = pd.DataFrame(rows)
    if df.empty:
        return "<p>No scans are selected for these parameter sets.</p>"
    body = _table(df, classes="scans")
    n_in, n_out = int((df["scan"] == "included").sum()), int((df["scan"] == "excluded").sum())
    return f"<p>{n_in} scan(s) included, {n_out} excluded by motion screening.</p>" + body


def _paramsets(combo: dict) -> str:
    from lfpbold.schemas import params

    parts = []
    for table, attr in (
        (params.LFPParams, "lfp_paramset"),
        (params.BandPowerParams, "band_paramset"),
        (params.BoldParams, "bold_paramset"),
        (params.RelationParams, "relation_paramset"),
    ):
        row = (table & {attr: combo[attr]}).to_dicts()
        if not row:
            continue
        row = row[0]
        described = next((row[k] for k in row if k.endswith("description") or k == "description"), "")
        text = json.dumps(row.get("params"), indent=2, default=str)
        parts.append(
            f"<details><summary><b>{table.__name__} {combo[attr]}</b> {html.escape(str(described))}</summary>"
            f"<pre>{html.escape(text)}</pre></details>"
        )
    return "".join(parts)


def report(
    out_dir: str | Path,
    *,
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    bold_paramset: int = 0,
    relation_paramset: int = 0,
    dpi: int = 90,
    progress=None,
) -> Path:
    """Write the study's report, one self-contained HTML file, as ``out_dir/index.html``.

    Parameters
    ----------
    out_dir : path
        Created if missing.
    lfp_paramset, band_paramset, bold_paramset, relation_paramset : int
        Which parameter sets' results (default the study's, 0).
    dpi : int
        Resolution of the embedded figures.
    progress : callable(str), optional
        Receives a line per figure.

    Returns
    -------
    pathlib.Path
        The report file.

    Examples
    --------
    >>> import lfpbold
    >>> lfpbold.connect()                               # doctest: +SKIP
    >>> lfpbold.report("report")                        # doctest: +SKIP
    PosixPath('report/index.html')
    """
    import lfpbold
    from lfpbold.query import results
    from lfpbold.schemas import cohort

    say = progress or (lambda line: None)
    combo = dict(
        lfp_paramset=lfp_paramset,
        band_paramset=band_paramset,
        bold_paramset=bold_paramset,
        relation_paramset=relation_paramset,
    )
    df = results(**combo)
    if df.empty:
        raise ValueError(f"No cohort results for parameter sets {combo} (run lfpbold populate first)")
    cohorts = (cohort.Cohort & combo).proj().to_dicts(order_by=["state", "region"])
    body = [
        "<h1>lfpbold report</h1>",
        f'<p class="meta">Generated {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M UTC} by lfpbold {lfpbold.__version__}; '
        f"parameter sets: {html.escape(', '.join(f'{k} {v}' for k, v in combo.items()))}.</p>",
        "<h2>Results</h2>",
        "<p>Per state, region and band: spatial r of the group-mean LFP power map against the group-mean "
        "seed map, and the scans' mean temporal r of HRF-convolved band power with the local BOLD "
        "(the full table, every column, below it).</p>",
        _table(df.reindex(columns=["state", "region", "band", *[c for c in _HEADLINE if c in df.columns]])),
        f"<details><summary>Every column</summary>{_table(df)}</details>",
        "<h2>Across cohorts</h2>",
        '<div class="grid">',
    ]
    for kind, caption in (
        ("bars", "scan-wise spatial and temporal r per band (mean ± s.e.m. across scans)"),
        ("scatter", "each scan's spatial against temporal r, gamma band"),
    ):
        say(f"figure {kind}")
        body.append(_figure_html(kind, combo, caption, dpi))
    body.append("</div>")
    for c in cohorts:
        where = {"state": c["state"], "region": c["region"]}
        body.append(f"<h2>{html.escape(c['state'])} · {html.escape(c['region'])}</h2>")
        body.append('<div class="grid">')
        for kind, caption in (
            ("group-seed-map", "group-mean seed map, cut through the implant (green cross)"),
            ("group-power-map", "group-mean gamma-power map"),
            ("noise-ceiling", "noise ceiling: observed r against CNR, at the inferred true r"),
            ("lag", "lagged cross-correlation of band power with the local BOLD"),
        ):
            say(f"figure {kind} {c['state']} {c['region']}")
            body.append(_figure_html(kind, {**combo, **where}, caption, dpi))
        body.append("</div>")
    body.append(
        "<h2>One scan</h2><p>The first stored scan and implant (<code>lfpbold plot KIND --subject "
        "--session --run --region</code> draws any other).</p>"
    )
    body.append('<div class="grid">')
    for kind, caption in (
        ("seed-map", "seed map of one scan"),
        ("power-map", "gamma-power map of one scan"),
        ("spectrogram", "band-power spectrogram, with gamma power and the local BOLD"),
        ("motion", "framewise displacement, scrubbed volumes shaded"),
        ("lfp-spectrum", "LFP spectrum before and after artifact removal"),
        ("hrf-sweep", "temporal and spatial r over the HRF's delays"),
    ):
        say(f"figure {kind}")
        body.append(_figure_html(kind, combo, caption, dpi))  # unnamed scan: the first stored
    body.append("</div>")
    body += [
        "<h2>Scans</h2>",
        _scans_table(combo),
        "<h2>Parameter sets</h2>",
        _paramsets(combo),
        "<h2>Software</h2>",
        '<table class="software"><tr><th>package</th><th>version</th></tr>'
        + "".join(f"<tr><td>{html.escape(n)}</td><td>{html.escape(v)}</td></tr>" for n, v in _versions())
        + "</table>",
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>lfpbold report</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
