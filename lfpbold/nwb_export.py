"""Each scan's cleaned LFP and band power as an NWB file that links the lab's raw recording.

The raw ``ElectricalSeries`` is not copied: the new file's ``acquisition`` holds an HDF5 external
link to it in the raw NWB file (the path the database recorded at ingest), so the derived file is
small and the raw samples keep one home. What is new goes into ``processing/ecephys``: the cleaned,
decimated LFP of every implant (per channel, as an ``LFP`` container, when the parameter set kept
them; the combined signal as a ``TimeSeries``), the band power as a ``DecompositionSeries`` with
its band table, and the HRF-convolved band power at each fMRI volume.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import numpy as np

__all__ = ["export_nwb"]


def export_nwb(
    out_dir: str | Path,
    *,
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    band_set: str = "classic",
    restriction=None,
) -> list[Path]:
    """Write one NWB file per scan with its cleaned LFP and band power, linking the raw series.

    Files go to ``sub-<s>/ses-<s>/ecephys/sub-<s>_ses-<s>_task-rest_run-<n>_desc-lfpbold_ecephys.nwb``.

    Parameters
    ----------
    out_dir : path
        Where to write (created).
    lfp_paramset, band_paramset : int
        Which cleaning and band-power parameter sets' rows to write.
    band_set : {"classic", "one_hz"}
        Which bands' power.
    restriction : dict or list of dicts, optional
        Only these scans, e.g. ``{"subject": "01"}``.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> lfpbold.export_nwb("nwb", restriction={"subject": "01"})   # doctest: +SKIP
    """
    from lfpbold.export import _check_combination, _write_dataset_description, bids_label
    from lfpbold.schemas import acquisition, analysis

    combo = _check_combination({"lfp_paramset": lfp_paramset, "band_paramset": band_paramset}, band_set)
    out = Path(out_dir)
    _write_dataset_description(out, "lfpbold cleaned LFP and band power", combo, {"band_set": band_set})
    scans = (acquisition.LFPRecording & (analysis.BandPower & combo)).proj()
    if restriction is not None:
        scans &= restriction
    written = []
    for scan in scans.to_dicts(order_by="subject, session, run"):
        sub, ses = bids_label(scan["subject"]), bids_label(scan["session"])
        name = f"sub-{sub}_ses-{ses}_task-rest_run-{int(scan['run'])}_desc-lfpbold_ecephys.nwb"
        path = out / f"sub-{sub}" / f"ses-{ses}" / "ecephys" / name
        written.append(_write_scan(path, scan, combo, band_set))
    return written


def _fetch_scan(scan: dict, combo: dict, band_set: str) -> tuple[dict, list[dict]]:
    from lfpbold.schemas import acquisition, analysis, params

    rec = (acquisition.LFPRecording & scan).fetch1()
    implants = []
    bands = (params.FrequencyBand & {"band_set": band_set}).to_dicts(order_by="band_order")
    for clean in (analysis.CleanLFP & scan & combo).to_dicts(order_by="region"):
        key = {k: clean[k] for k in ("subject", "session", "run", "region", "lfp_paramset")}
        channels = (analysis.CleanLFP.Channel * acquisition.LFPRecording.Channel & key).to_dicts(order_by="channel")
        power = (analysis.BandPower & key & combo).fetch1()
        band_rows = {r["band"]: r for r in (analysis.BandPower.Band & key & combo).to_dicts()}
        present = [b for b in bands if b["band"] in band_rows]
        implants.append(
            {
                **clean,
                "channels": channels,
                "power": power,
                "bands": present,
                "band_power": np.stack([band_rows[b["band"]]["power"] for b in present], axis=-1) if present else None,
                "regressors": np.stack([band_rows[b["band"]]["regressor"] for b in present], axis=-1)
                if present
                else None,
            }
        )
    return rec, implants


def _write_scan(path: Path, scan: dict, combo: dict, band_set: str) -> Path:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries, get_manager
    from pynwb.ecephys import LFP, ElectricalSeries
    from pynwb.file import Subject
    from pynwb.misc import DecompositionSeries, FrequencyBandsTable

    from lfpbold.integrity import verified_file
    from lfpbold.schemas import acquisition as acq

    rec, implants = _fetch_scan(scan, combo, band_set)
    # stored relative to the data root: where it is on this machine, and that it is the file ingested
    raw_path = Path(verified_file(acq.LFPRecording & {k: scan[k] for k in ("subject", "session", "run")}, "nwb"))
    manager = get_manager()
    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(raw_path), "r", manager=manager) as raw_io:
        raw = raw_io.read()
        series_name = rec["series_path"].split("/")[-1]
        raw_series = raw.acquisition.get(series_name) or raw.processing["ecephys"][series_name]
        if raw_series.object_id != rec["series_object_id"]:
            raise ValueError(
                f"{raw_path}: {rec['series_path']}: object id {raw_series.object_id} is not the "
                f"{rec['series_object_id']} recorded at ingest (the file was rewritten?)"
            )
        subject = raw.subject
        nwb = NWBFile(
            session_description=f"{raw.session_description} -- cleaned LFP and band power (lfpbold)",
            identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"lfpbold/{raw.identifier}/{sorted(combo.items())}")),
            session_start_time=raw.session_start_time,
            session_id=raw.session_id,
            experiment_description=raw.experiment_description,
            lab=raw.lab,
            institution=raw.institution,
            source_script="lfpbold export nwb",
            keywords=["LFP", "resting-state fMRI", "band power", "simultaneous LFP-fMRI"],
            experimenter=list(raw.experimenter) if raw.experimenter else None,
            source_script_file_name="lfpbold/nwb_export.py",
            subject=Subject(
                subject_id=subject.subject_id,
                species=subject.species,
                strain=subject.strain,
                sex=subject.sex,
                age=subject.age,
                weight=subject.weight,
                description=subject.description,
            )
            if subject is not None
            else None,
        )
        with warnings.catch_warnings():
            # hdmf notes that the series' electrodes table lives in the other file: true, and
            # intended, since the whole series (with its electrodes region) stays there.
            warnings.filterwarnings("ignore", "The linked table for DynamicTableRegion", UserWarning)
            nwb.add_acquisition(raw_series)  # written as an external link: raw_series belongs to the raw file
        module = nwb.create_processing_module(
            "ecephys", f"LFP cleaned by lfpbold (LFPParams {combo['lfp_paramset']}) and its band power"
        )
        raw_electrodes = raw.electrodes.to_dataframe()
        devices, groups = {}, {}
        lfp = LFP(name="LFP")
        for imp in implants:
            region = imp["region"]
            if region not in groups:
                devices[region] = nwb.create_device(name=f"probe-{region}", description=f"probe implanted in {region}")
                groups[region] = nwb.create_electrode_group(
                    name=region, location=region, device=devices[region], description=f"{region} implant"
                )
            rows = []
            for ch in imp["channels"]:
                source = raw_electrodes.iloc[int(ch["channel"])]
                nwb.add_electrode(
                    location=str(source.get("location", region)),
                    group=groups[region],
                    x=float(source["x"]) if "x" in source and source["x"] is not None else None,
                    y=float(source["y"]) if "y" in source and source["y"] is not None else None,
                    z=float(source["z"]) if "z" in source and source["z"] is not None else None,
                )
                rows.append(len(nwb.electrodes) - 1)
            rate = float(imp["sampling_rate"])
            signals = [ch["signal"] for ch in imp["channels"]]
            if all(s is not None for s in signals) and signals:
                lfp.add_electrical_series(
                    ElectricalSeries(
                        name=f"CleanLFP{region}",
                        data=np.stack(signals, axis=1).astype(np.float32),
                        electrodes=nwb.create_electrode_table_region(rows, f"{region} channels"),
                        rate=rate,
                        starting_time=0.0,
                        conversion=1.0,
                        filtering="MR gradient artifact and line/slice-rate notch removal, decimated (lfpbold)",
                        description=f"{region} channels after cleaning, before combining; raw channels "
                        f"{[int(c['channel']) for c in imp['channels']]} of acquisition/{series_name}",
                    )
                )
            combined = TimeSeries(
                name=f"CombinedLFP{region}",
                data=np.asarray(imp["combined"], dtype=np.float32),
                unit="volts",
                rate=rate,
                starting_time=0.0,
                description=f"the {region} implant's channels phase-aligned and combined into one signal",
            )
            module.add(combined)
            if imp["band_power"] is None:
                continue
            bands = FrequencyBandsTable()
            for b in imp["bands"]:
                bands.add_band(band_name=b["band"], band_limits=[float(b["low_hz"]), float(b["high_hz"])])
            times = np.asarray(imp["power"]["times"], dtype=float)
            module.add(
                DecompositionSeries(
                    name=f"BandPower{region}",
                    data=imp["band_power"][:, None, :].astype(np.float32),
                    metric="power",
                    unit="V^2/Hz",
                    bands=bands,
                    source_timeseries=combined,
                    rate=float(imp["power"]["power_rate"]),
                    starting_time=float(times[0]),
                    description=f"{region} band power (BandPowerParams {combo['band_paramset']}), "
                    "one sample per spectrogram window centre",
                )
            )
            onsets = np.asarray(imp["power"]["volume_onsets"], dtype=float)
            step = np.diff(onsets)
            regular = len(onsets) > 1 and np.allclose(step, step.mean(), rtol=0, atol=1e-6)
            clock = {"timestamps": onsets}
            if regular:  # NWB best practice: a regular clock as start and rate
                clock = {"starting_time": float(onsets[0]), "rate": 1.0 / float(step.mean())}
            module.add(
                TimeSeries(
                    name=f"BandPowerRegressors{region}",
                    data=np.asarray(imp["regressors"], dtype=np.float64),
                    unit="V^2/Hz",
                    **clock,
                    description=f"{region} band power convolved with the HRF, one value per fMRI volume "
                    f"(columns: {', '.join(b['band'] for b in imp['bands'])})",
                    comments="times are the scanner's volume triggers on the ElectricalSeries clock",
                )
            )
        if lfp.electrical_series:
            module.add(lfp)
        with NWBHDF5IO(str(path), "w", manager=manager) as io:
            io.write(nwb, link_data=True)
    return path
