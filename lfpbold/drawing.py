"""The figures' drawing: plain functions on arrays that return a matplotlib Figure, no DataJoint.

:mod:`lfpbold.plots` reads the stored rows and calls these; a notebook can call them on its own
arrays. Every function takes what it draws as arguments and computes nothing but the display
(an unmasked volume, a mean and its standard error across scans).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "brain_map",
    "spatial_temporal_bars",
    "spectrogram",
    "lag_curves",
    "scatter",
    "noise_ceiling",
    "motion_trace",
    "lfp_spectrum",
    "hrf_sweep",
    "sem",
]

SPATIAL_COLOUR = "#3b6ea8"
TEMPORAL_COLOUR = "#d4793a"
REGION_COLOURS = ("#3b6ea8", "#d4793a", "#4f9a5b", "#a0509b", "#8c6d31")
STATE_MARKERS = ("o", "s", "^", "D", "v")


def sem(values) -> float:
    """Standard error of the mean over the finite values (NaN below two).

    Examples
    --------
    >>> round(sem([1.0, 2.0, 3.0, np.nan]), 4)
    0.5774
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


def _figure(width=7.0, height=4.0, layout="constrained") -> Figure:
    # a Figure not registered with pyplot: nothing is kept alive between calls, no GUI backend needed
    return Figure(figsize=(width, height), layout=layout)


def brain_map(
    values,
    brain_mask,
    affine,
    *,
    template=None,
    implants=None,
    cut=None,
    title="",
    colorbar_label="r",
    vmax=None,
    threshold=None,
) -> Figure:
    """A map of brain-voxel values over the anatomy, nilearn ``plot_stat_map`` style.

    Parameters
    ----------
    values : array of shape (n_brain_voxels,)
        One value per voxel of ``brain_mask`` (the order of the stored maps).
    brain_mask : bool array (X, Y, Z)
    affine : array (4, 4)
        Voxel to mm.
    template : array (X, Y, Z), optional
        The anatomical image to draw over; without one, the brain mask.
    implants : dict, optional
        Region -> (x, y, z) mm: each implant is marked.
    cut : (x, y, z) mm, optional
        Where the three orthogonal cuts go (default the first implant).
    threshold : float, optional
        |values| below it are not coloured (default: a tenth of the colour range).
    """
    import nibabel as nib
    from nilearn import plotting

    mask = np.asarray(brain_mask, dtype=bool)
    volume = np.zeros(mask.shape, dtype=np.float32)
    volume[mask] = np.nan_to_num(np.asarray(values, dtype=np.float32))
    stat = nib.Nifti1Image(volume, np.asarray(affine, dtype=float))
    bg = np.asarray(template, dtype=np.float32) if template is not None else mask.astype(np.float32)
    bg_img = nib.Nifti1Image(bg, np.asarray(affine, dtype=float))
    implants = dict(implants or {})
    if cut is None:
        cut = next(iter(implants.values()), None)
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    vmax = float(vmax) if vmax is not None else (float(np.abs(finite).max()) if finite.size else 1.0) or 1.0
    fig = _figure(9.0, 3.4, layout=None)  # nilearn places its own axes
    display = plotting.plot_stat_map(
        stat,
        bg_img=bg_img,
        cut_coords=tuple(float(c) for c in cut) if cut is not None else None,
        display_mode="ortho",
        threshold=vmax / 10 if threshold is None else threshold,
        vmax=vmax,
        cmap="RdBu_r",
        colorbar=True,
        black_bg=True,
        dim=-0.3,
        draw_cross=False,
        annotate=True,
        title=title or None,
        figure=fig,
    )
    if implants:
        coords = [tuple(float(c) for c in xyz) for xyz in implants.values()]
        display.add_markers(coords, marker_color="#2ca02c", marker_size=60, marker="x", linewidths=2.5)
    fig.patch.set_facecolor("black")
    return fig


def spatial_temporal_bars(panels: list[dict], *, title="") -> Figure:
    """The study's bar chart: mean spatial and temporal r per band, one panel per state and region.

    Parameters
    ----------
    panels : list of dict
        ``state``, ``region``, ``bands`` (names), ``spatial`` and ``temporal`` (bar heights),
        ``spatial_err`` and ``temporal_err`` (error bars, e.g. the standard error across scans),
        ``n_scans``.
    """
    states = list(dict.fromkeys(p["state"] for p in panels))
    regions = list(dict.fromkeys(p["region"] for p in panels))
    fig = _figure(3.4 * len(regions) + 0.6, 2.8 * len(states) + 0.4)
    axes = fig.subplots(len(states), len(regions), squeeze=False, sharey=True)
    for p in panels:
        ax = axes[states.index(p["state"]), regions.index(p["region"])]
        x = np.arange(len(p["bands"]))
        w = 0.38
        ax.bar(x - w / 2, p["spatial"], w, yerr=p["spatial_err"], capsize=2, color=SPATIAL_COLOUR, label="spatial r")
        ax.bar(
            x + w / 2, p["temporal"], w, yerr=p["temporal_err"], capsize=2, color=TEMPORAL_COLOUR, label="temporal r"
        )
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(x, p["bands"], rotation=30)
        ax.set_title(f"{p['state']} · {p['region']} (n = {p['n_scans']} scans)", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("r (mean ± s.e.m. across scans)")
    axes[0, -1].legend(fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def spectrogram(
    times, freqs_low, freqs_high, power, *, overlay_times, gamma, bold_times, bold, band_label="gamma", title=""
) -> Figure:
    """One scan's band-power spectrogram, with one band's power and the local BOLD below it.

    Parameters
    ----------
    times : array (n_times,)
        s, the band-power windows' centres.
    freqs_low, freqs_high : arrays (n_bands,)
        Each band's edges (Hz); contiguous bands are drawn on a frequency axis.
    power : array (n_bands, n_times)
        Band power (drawn as log10).
    overlay_times, gamma : arrays
        The overlaid band's power series.
    bold_times, bold : arrays
        The local (ROI-mean) BOLD at its kept volumes.
    """
    fig = _figure(8.0, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    power = np.asarray(power, dtype=float)
    log_power = np.log10(np.where(power > 0, power, np.nan))
    low, high = np.asarray(freqs_low, float), np.asarray(freqs_high, float)
    if len(low) > 1 and np.allclose(low[1:], high[:-1]):
        edges = np.r_[low, high[-1]]
        ylabel = "frequency (Hz)"
    else:
        edges = np.arange(len(low) + 1) - 0.5
        ylabel = "band"
    t = np.asarray(times, dtype=float)
    dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    t_edges = np.r_[t - dt / 2, t[-1] + dt / 2]
    mesh = top.pcolormesh(t_edges, edges, log_power, shading="flat", cmap="magma", rasterized=True)
    fig.colorbar(mesh, ax=top, label="log10 power (V²/Hz)")
    top.set_ylabel(ylabel)
    if ylabel == "band":
        top.set_yticks(np.arange(len(low)), [f"{lo:g}-{hi:g}" for lo, hi in zip(low, high, strict=True)])
    z = lambda v: (np.asarray(v, float) - np.nanmean(v)) / (np.nanstd(v) or 1.0)  # noqa: E731
    bottom.plot(overlay_times, z(gamma), color=TEMPORAL_COLOUR, lw=0.6, label=f"{band_label} power")
    bottom.plot(bold_times, z(bold), color=SPATIAL_COLOUR, lw=1.2, label="local BOLD")
    bottom.set_ylabel("z-score")
    bottom.set_xlabel("time (s)")
    bottom.legend(fontsize=8, frameon=False, loc="upper right", ncols=2)
    fig.colorbar(mesh, ax=bottom).remove()  # keep the two panels' time axes aligned
    fig.suptitle(title, fontsize=10)
    return fig


def lag_curves(curves: dict, *, title="") -> Figure:
    """Lagged cross-correlation of band power and the local BOLD: per band, each scan and the mean.

    Parameters
    ----------
    curves : dict
        Band -> list of (lags_s, r), one per scan (None for a scan without a curve).
    """
    fig = _figure(6.4, 3.8)
    ax = fig.subplots()
    for i, (band, per_scan) in enumerate(curves.items()):
        per_scan = [c for c in per_scan if c is not None]
        if not per_scan:
            continue
        colour = REGION_COLOURS[i % len(REGION_COLOURS)]
        lags = np.asarray(per_scan[0][0], float)
        for lg, r in per_scan:
            ax.plot(lg, r, color=colour, lw=0.5, alpha=0.35)
        mean = np.nanmean(np.stack([np.asarray(r, float) for _, r in per_scan]), axis=0)
        ax.plot(lags, mean, color=colour, lw=2, label=f"{band} (n = {len(per_scan)})")
    ax.axhline(0, color="0.3", lw=0.6)
    ax.axvline(0, color="0.3", lw=0.6, ls=":")
    ax.set_xlabel("lag (s; positive: BOLD lags the LFP)")
    ax.set_ylabel("r")
    if ax.lines and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no scan has a lag curve", transform=ax.transAxes, ha="center")
    fig.suptitle(title, fontsize=10)
    return fig


def scatter(points: list[dict], *, band="", title="") -> Figure:
    """Scan-wise spatial r against temporal r, one point per scan and implant.

    Parameters
    ----------
    points : list of dict
        ``spatial_r``, ``temporal_r``, ``state``, ``region``.
    """
    fig = _figure(4.8, 4.4)
    ax = fig.subplots()
    states = list(dict.fromkeys(p["state"] for p in points))
    regions = list(dict.fromkeys(p["region"] for p in points))
    for s in states:
        for r in regions:
            pts = [p for p in points if p["state"] == s and p["region"] == r]
            if pts:
                ax.scatter(
                    [p["spatial_r"] for p in pts],
                    [p["temporal_r"] for p in pts],
                    color=REGION_COLOURS[regions.index(r) % len(REGION_COLOURS)],
                    marker=STATE_MARKERS[states.index(s) % len(STATE_MARKERS)],
                    label=f"{s} · {r}",
                    s=30,
                )
    ax.plot([-1, 1], [-1, 1], color="0.5", lw=0.6, ls="--")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(f"spatial r ({band} power map vs seed map)")
    ax.set_ylabel(f"temporal r ({band} power vs local BOLD)")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def noise_ceiling(cnr_values, mean_scan_r, averaged_r, *, true_r, observed_r, cnr, title="") -> Figure:
    """The noise ceiling: the r one observes against CNR at the inferred true r, the observed r marked."""
    fig = _figure(5.6, 3.8)
    ax = fig.subplots()
    ax.plot(cnr_values, mean_scan_r, color=TEMPORAL_COLOUR, lw=1.8, label="per-scan r the model predicts")
    ax.plot(cnr_values, averaged_r, color=SPATIAL_COLOUR, lw=1.8, label="r of scan-averaged signals")
    if true_r is not None and np.isfinite(true_r):
        ax.axhline(true_r, color="0.25", lw=1, ls="--", label=f"inferred true r = {true_r:.2f}")
    if observed_r is not None and cnr is not None and np.isfinite(observed_r) and np.isfinite(cnr):
        ax.plot([cnr], [observed_r], "o", color="k", ms=7, label=f"observed r = {observed_r:.2f} at CNR {cnr:.2f}")
        ax.axvline(cnr, color="0.6", lw=0.6, ls=":")
    ax.set_xlabel("contrast-to-noise ratio")
    ax.set_ylabel("r")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def motion_trace(fd, keep, *, t_r, threshold=None, title="") -> Figure:
    """Framewise displacement per volume, scrubbed volumes shaded, the screening threshold drawn."""
    fd = np.asarray(fd, dtype=float)
    keep = np.asarray(keep, dtype=bool)
    t = np.arange(fd.size) * float(t_r)
    fig = _figure(7.0, 2.8)
    ax = fig.subplots()
    for i in np.flatnonzero(~keep):
        ax.axvspan(t[i] - t_r / 2, t[i] + t_r / 2, color="#e6a0a0", lw=0)
    ax.plot(t, fd, color="0.15", lw=0.8, label="framewise displacement")
    if threshold is not None:
        ax.axhline(threshold, color="#c0392b", lw=1, ls="--", label=f"threshold {threshold:g} mm")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("FD (mm)")
    ax.set_xlim(t[0] if t.size else 0, t[-1] if t.size else 1)
    n_scrubbed = int((~keep).sum())
    ax.legend(fontsize=8, frameon=False, loc="upper right", title=f"{n_scrubbed} volume(s) scrubbed (shaded)")
    fig.suptitle(title, fontsize=10)
    return fig


def lfp_spectrum(freqs, raw_psd, clean_psd, *, title="") -> Figure:
    """The LFP's power spectral density before and after artifact removal."""
    freqs = np.asarray(freqs, dtype=float)
    fig = _figure(6.4, 3.8)
    ax = fig.subplots()
    f = freqs > 0
    ax.semilogy(freqs[f], np.asarray(raw_psd)[f], color="0.55", lw=0.9, label="raw")
    ax.semilogy(freqs[f], np.asarray(clean_psd)[f], color=SPATIAL_COLOUR, lw=0.9, label="after artifact removal")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power spectral density (V²/Hz)")
    ax.set_xlim(0, freqs.max() if freqs.size else 1)
    ax.legend(fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def hrf_sweep(response_delays, undershoot_delays, temporal_r, spatial_r, *, best=None, title="") -> Figure:
    """Temporal and spatial r over the HRF's response and undershoot delays, as two heat maps."""
    fig = _figure(8.4, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    rd, ud = np.asarray(response_delays, float), np.asarray(undershoot_delays, float)
    for ax, grid, name in zip(axes, (temporal_r, spatial_r), ("temporal r", "spatial r"), strict=True):
        mesh = ax.pcolormesh(ud, rd, np.asarray(grid, float), shading="nearest", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=name)
        if best is not None:
            ax.plot([best[1]], [best[0]], "x", color="w", ms=9, mew=2)
        ax.set_xlabel("undershoot delay (s)")
        ax.set_title(name, fontsize=9)
    axes[0].set_ylabel("response delay (s)")
    fig.suptitle(title, fontsize=10)
    return fig
