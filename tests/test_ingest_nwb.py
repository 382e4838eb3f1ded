"""NWB as converters write it, and NWB checked down to the samples, through to the database.

One scan's NWB file is written as a lab's conversion script would: a synthetic recording in
SpikeInterface (int16 with per-channel gains, two probes), exported by NeuroConv's
``add_recording_to_nwbfile`` as LFP in ``processing/ecephys``, the scanner triggers added as a TTL
line. Bad files (truncated, no ElectricalSeries, NaN samples, NaN or backward triggers, one
trigger too few, a CRITICAL NWB Inspector finding) are each refused with a message naming file,
field and place, and nothing of that scan reaches the database.
"""

from __future__ import annotations

import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ingest_fixtures import IMPLANTS, make_study, write_nwb  # noqa: E402

from lfpbold.ingest import IngestError, read_lfp, read_study  # noqa: E402
from lfpbold.ingest.nwb import check_samples, inspect_nwb  # noqa: E402

SES = "sedated01"
N_VOLUMES, N_SLICES, T_R, RATE, LEAD = 12, 3, 1.0, 200.0, 2.0


def nwb_rel(run, sub="01"):
    return f"sub-{sub}/ses-{SES}/ecephys/sub-{sub}_ses-{SES}_task-rest_run-{run}_ecephys.nwb"


def write_with_neuroconv(path, *, sub="01", seed=3):
    """One scan written the NeuroConv way; returns the volts it holds (time x channel) and the triggers."""
    import spikeinterface.core as si
    from neuroconv.tools.spikeinterface import add_recording_to_nwbfile
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.file import Subject

    rng = np.random.default_rng(seed)
    n = int((LEAD + N_VOLUMES * T_R + 2.0) * RATE)
    raw = rng.integers(-2000, 2000, size=(n, 4)).astype(np.int16)
    gains_uv = np.array([0.195, 0.195, 0.39, 0.39])  # µV per bit, as an Intan or Open Ephys headstage says
    rec = si.NumpyRecording([raw], sampling_frequency=RATE)
    rec.set_channel_gains(gains_uv)
    rec.set_channel_offsets(np.zeros(4))
    regions = ["ACC", "ACC", "M1", "M1"]
    rec.set_property("brain_area", regions)  # NeuroConv writes it as the electrodes' location
    rec.set_property("group_name", ["probeACC", "probeACC", "probeM1", "probeM1"])
    for i, col in enumerate(("ap_mm", "ml_mm", "dv_mm")):
        rec.set_property(col, [IMPLANTS[r][i] for r in regions])
    rec.set_property("hemisphere", [IMPLANTS[r][3] for r in regions])
    nwb = NWBFile(
        session_description="rest scan",
        identifier=f"nc-{sub}-{path.name}",
        session_start_time=datetime(2024, 3, 1, 10, tzinfo=UTC),
        experimenter=["Lab, A."],
        institution="a lab",
    )
    nwb.subject = Subject(subject_id=sub, species="Rattus norvegicus", sex="M", age="P90D")
    # the probes as the lab's metadata YAML names them (same models as the other scans of the study)
    description = "NeuroNexus MRCM2-tiny 2-channel MR-compatible silicon probe"
    metadata = {
        "Ecephys": {
            "Device": [{"name": f"probe-{r}", "description": description} for r in ("ACC", "M1")],
            "ElectrodeGroup": [
                {"name": f"probe{r}", "description": f"{r} shank", "location": r, "device": f"probe-{r}"}
                for r in ("ACC", "M1")
            ],
        }
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        add_recording_to_nwbfile(rec, nwbfile=nwb, metadata=metadata, parent_container="processing/LFP")
    # the scanner's TTL lines, sampled at 1 kHz: high for 5 ms at each volume / slice
    vol = LEAD + np.arange(N_VOLUMES) * T_R
    sl = (vol[:, None] + np.arange(N_SLICES) * T_R / N_SLICES).reshape(-1)
    for name, times in (("scanner_volumes", vol), ("scanner_slices", sl)):
        line = np.zeros(int(n / RATE * 1000), dtype=np.uint8)
        for t in times:
            line[int(round(t * 1000)) : int(round(t * 1000)) + 5] = 1
        nwb.add_acquisition(TimeSeries(name=name, data=line, unit="V", rate=1000.0, description="scanner TTL line"))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return raw.astype(np.float64) * gains_uv * 1e-6, vol, sl


@pytest.fixture
def study(tmp_path):
    return tmp_path / "study"


def test_neuroconv_file_is_read_and_ingested(study, db):
    from lfpbold.pipeline import ingest_study
    from lfpbold.schemas import acquisition as acq

    make_study(study, subjects=("01",), runs=(1, 2), n_volumes=N_VOLUMES, n_slices=N_SLICES)
    volts, vol, sl = write_with_neuroconv(study / nwb_rel(2))
    records = read_study(study)
    assert records.errors == []
    scan = next(s for s in records.scans if s.key["run"] == 2)
    assert scan.lfp["series_path"] == "processing/ecephys/LFP/ElectricalSeriesLFP"  # NeuroConv's name
    with h5py.File(study / nwb_rel(2)) as f:  # the path stored is the path read
        assert f[scan.lfp["series_path"]]["data"].dtype == np.int16
    np.testing.assert_allclose(scan.lfp["volume_triggers"], vol, atol=1e-3)  # rising edges of the TTL line
    np.testing.assert_allclose(scan.lfp["slice_triggers"], sl, atol=1e-3)
    assert {c["region"] for c in scan.channels} == {"ACC", "M1"}
    got = read_lfp(study / nwb_rel(2), series_path=scan.lfp["series_path"], channels=[0, 3], start=0, stop=400)
    np.testing.assert_allclose(got, volts[:400, [0, 3]].T, rtol=1e-5)  # conversion and channel_conversion
    assert all(f["importance"] != "CRITICAL" for f in scan.lfp["nwb_inspection"])

    report = ingest_study(study)
    assert report.errors == [] and len(report.inserted) == 2
    row = (acq.LFPRecording & {"subject": "01", "run": 2}).fetch1()
    assert row["series_path"] == "processing/ecephys/LFP/ElectricalSeriesLFP"
    assert isinstance(row["nwb_inspection"], list)
    assert len(acq.LFPRecording.Channel & {"subject": "01", "run": 2}) == 4


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan_sample(path):
    with h5py.File(path, "r+") as f:
        f["acquisition/ElectricalSeries/data"][777, 1] = np.nan


def _nan_trigger(path):
    with h5py.File(path, "r+") as f:
        f["events/scanner_volumes/timestamp"][4] = np.nan


def _backward_trigger(path):
    with h5py.File(path, "r+") as f:
        ts = f["events/scanner_volumes/timestamp"]
        ts[5], ts[6] = ts[6], ts[5]


BAD = {
    "truncated": (_truncate, {}, "file", "truncated:"),
    "no series": (None, {"series": "none"}, "acquisition/ElectricalSeries", "no ElectricalSeries in acquisition"),
    "nan sample": (None, {}, "acquisition/ElectricalSeries/data", "non-finite sample (nan) at channel 1, sample 777"),
    "nan trigger": (_nan_trigger, {}, "scanner_volumes", "1 non-finite trigger time(s) in events/scanner_volumes"),
    "backward trigger": (_backward_trigger, {}, "scanner_volumes", "not strictly increasing: trigger 6"),
    "one trigger short": (None, {"n_volume_triggers": N_VOLUMES - 1}, "scanner_volumes", "11 triggers but"),
    "one trigger extra": (None, None, "scanner_volumes", "13 triggers but the BOLD run has 12 volumes"),
    "critical finding": (None, {"subject": False}, "nwbinspector", "CRITICAL check_subject_exists"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_nwb_is_refused_and_the_database_unchanged(study, embedded_db, case):
    from lfpbold.pipeline import ingest_study
    from lfpbold.schemas import acquisition as acq

    damage, options, field, reason = BAD[case]
    if case == "one trigger extra":  # 13 volumes of triggers, the BOLD run has 12
        options = {"n_volumes": N_VOLUMES + 1, "n_slice_triggers": N_VOLUMES * N_SLICES}
    make_study(study, subjects=("01",), runs=(1, 2), nwb_options={("01", 2): options})
    if case == "nan sample":
        _nan_sample(study / nwb_rel(2))
    elif damage is not None:
        damage(study / nwb_rel(2))
    report = ingest_study(study)
    assert [k["run"] for k in report.inserted] == [1]
    errors = [e for e in report.errors if isinstance(e, IngestError) and e.path == nwb_rel(2)]
    assert errors, [str(e) for e in report.errors]
    assert errors[0].field == field and reason in errors[0].reason, str(errors[0])
    assert not acq.Scan & {"subject": "01", "run": 2}
    assert not acq.LFPRecording & {"subject": "01", "run": 2}
    # a second ingest changes nothing either
    before = {t.__name__: len(t()) for t in (acq.Scan, acq.FMRIRun, acq.LFPRecording, acq.LFPRecording.Channel)}
    again = ingest_study(study)
    assert again.inserted == []
    assert before == {t.__name__: len(t()) for t in (acq.Scan, acq.FMRIRun, acq.LFPRecording, acq.LFPRecording.Channel)}


def test_sample_check_streams_in_blocks(tmp_path, monkeypatch):
    """Chunks through a filter the pass does not undo: h5py decodes them, whole chunks at a time."""
    from lfpbold.ingest import nwb as nwb_module

    path = tmp_path / "x.nwb"
    write_nwb(path, n_volumes=12, chunks="fletcher32")
    with h5py.File(path, "r+") as f:
        f["acquisition/ElectricalSeries/data"][3001, 2] = np.inf
        assert nwb_module._raw_layout(f["acquisition/ElectricalSeries/data"]) is None
    monkeypatch.setattr(nwb_module, "_BLOCK_BYTES", 4 * 4 * 100)  # 100 rows a read: rounded up to one chunk
    with pytest.raises(IngestError, match=r"channel 2, sample 3001 \(15.0050 s.*samples 2816..3071"):
        check_samples(path, "acquisition/ElectricalSeries", 200.0)


LAYOUTS = {
    "contiguous": None,
    "chunks of whole rows": (137, 4),
    "chunks of one channel": (200, 1),  # as lfpbold simulate writes (1 s x 1 channel)
    "edge chunks padded": (100, 3),  # 4 channels in chunks 3 wide: the last chunk column is padding
    "deflated": "gzip",  # as NeuroConv writes by default
    "deflated and shuffled": "gzip+shuffle",
    "another filter": "fletcher32",  # decoded by h5py, before the pass
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_samples_checked_in_the_pass_that_hashes(tmp_path, monkeypatch, layout):
    """One read of the file gives its SHA-256 and checks every sample, however the blocks fall:
    1001-byte blocks split float32 samples across blocks."""
    from lfpbold.ingest import checksum, sha256
    from lfpbold.ingest import nwb as nwb_module

    path = tmp_path / "x.nwb"
    write_nwb(path, n_volumes=12, chunks=LAYOUTS[layout])
    key = "acquisition/ElectricalSeries"
    with h5py.File(path) as f:
        raw = nwb_module._raw_layout(f[f"{key}/data"])
        assert (raw is None) == (layout == "another filter")
    reads = []
    real = checksum.sha256
    monkeypatch.setattr(nwb_module, "sha256", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    for block in (1001, 8 << 20):
        monkeypatch.setattr(checksum, "BLOCK_BYTES", block)
        got = check_samples(path, key, 200.0, checksum=True)
        assert got["sha256"] == sha256(path) and got["size"] == path.stat().st_size
    assert len(reads) == 2  # the file read once per check
    # one bad sample at a time: a rewritten deflated chunk may move to the end of the file, and the
    # pass reports the first it meets in file order
    for where, value, message in (
        ((2345, 3), np.nan, r"non-finite sample \(nan\) at channel 3, sample 2345 \(11.7250 s"),
        ((2999, 0), -np.inf, r"non-finite sample \(-inf\) at channel 0, sample 2999 \(14.9950 s"),
    ):
        with h5py.File(path, "r+") as f:
            good = f[f"{key}/data"][where]
            f[f"{key}/data"][where] = value
        for block in (1001, 8 << 20):
            monkeypatch.setattr(checksum, "BLOCK_BYTES", block)
            with pytest.raises(IngestError, match=message):
                check_samples(path, key, 200.0, checksum=True)
        with h5py.File(path, "r+") as f:
            f[f"{key}/data"][where] = good
    check_samples(path, key, 200.0, checksum=True)


def test_timestamps_checked_in_the_same_pass(tmp_path, monkeypatch):
    from pynwb import NWBHDF5IO

    from lfpbold.ingest import checksum

    path = tmp_path / "x.nwb"
    write_nwb(path, series="none")
    with NWBHDF5IO(str(path), "a") as io:
        nwb = io.read()
        from pynwb.ecephys import ElectricalSeries

        region = nwb.create_electrode_table_region([0, 1, 2, 3], "all")
        stamps = 0.5 + np.arange(5000) / 200.0
        stamps[3210] = stamps[3209]
        data = np.zeros((5000, 4), dtype=np.float32)
        nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data, electrodes=region, timestamps=stamps))
        io.write(nwb)
    monkeypatch.setattr(checksum, "BLOCK_BYTES", 999)
    with pytest.raises(IngestError, match=r"ElectricalSeries/timestamps: not increasing at sample 3210"):
        check_samples(path, "acquisition/ElectricalSeries", 200.0, checksum=True)


def test_series_outside_acquisition_and_processing_is_not_taken(tmp_path):
    from pynwb import NWBHDF5IO

    path = tmp_path / "x.nwb"
    write_nwb(path, series="none")
    with NWBHDF5IO(str(path), "a") as io:
        nwb = io.read()
        from pynwb.ecephys import ElectricalSeries

        region = nwb.create_electrode_table_region([0, 1], "two")
        nwb.add_analysis(ElectricalSeries(name="reref", data=np.zeros((10, 2)), electrodes=region, rate=200.0))
        io.write(nwb)
    from lfpbold.ingest.nwb import read_nwb

    with pytest.raises(IngestError, match=r"no ElectricalSeries in acquisition or processing .*analysis/reref"):
        read_nwb(path, regions=["ACC", "M1"], inspect=False)


def test_inspector_findings_are_returned(tmp_path):
    path = tmp_path / "x.nwb"
    write_nwb(path)
    findings = inspect_nwb(path)
    assert findings and {"importance", "check", "location", "message"} <= set(findings[0])
    assert any(f["check"] == "check_experimenter_exists" for f in findings)


def test_triggers_as_ndx_events_types(study):
    """Scanner triggers as ndx-events 0.2 ``Events`` (volumes) and ``TTLs`` with TTL codes (slices),
    in a processing module, as older conversion scripts wrote them."""
    from ndx_events import Events, TTLs
    from pynwb import NWBHDF5IO

    w = make_study(study, subjects=("01",), runs=(1,), nwb_options={("01", 1): {"triggers": "none"}})
    scan = w["scans"][("01", SES, 1)]
    with NWBHDF5IO(str(scan["nwb"]), "a") as io:
        nwb = io.read()
        module = nwb.create_processing_module("triggers", "scanner TTLs")
        module.add(Events(name="scanner_volumes", description="volume TTL", timestamps=scan["volume_triggers"]))
        codes = np.tile([3, 4, 5], len(scan["slice_triggers"]) // 3)  # one code per slice line
        module.add(
            TTLs(
                name="scanner_slices",
                description="slice TTLs",
                timestamps=scan["slice_triggers"],
                data=codes,
                labels=["", "", "", "slice0", "slice1", "slice2"],
            )
        )
        io.write(nwb)
    records = read_study(study)
    assert records.errors == [], [str(e) for e in records.errors]
    np.testing.assert_allclose(records.scans[0].lfp["volume_triggers"], scan["volume_triggers"])
    np.testing.assert_allclose(records.scans[0].lfp["slice_triggers"], scan["slice_triggers"])


def test_one_series_per_probe_is_read_per_implant(study):
    """SpikeInterface's and NeuroConv's multi-probe layout: one ElectricalSeries per probe, each
    with its own electrodes region; each implant resolved to the series holding its electrodes."""
    w = make_study(
        study,
        subjects=("01",),
        runs=(1, 2),
        nwb_options={("01", 1): {"series": "per_probe"}, ("01", 2): {"series": "per_probe_lfp", "chunks": (64, 2)}},
    )
    records = read_study(study)
    assert records.errors == [], [str(e) for e in records.errors]
    for scan in records.scans:
        folder = "acquisition" if scan.key["run"] == 1 else "processing/ecephys/LFP"
        assert scan.lfp["series_path"] == folder and scan.lfp["n_channels"] == 4
        series = {r["region"]: r for r in scan.series}
        assert series["ACC"]["series_path"] == f"{folder}/ElectricalSeriesProbeACC"
        assert series["M1"]["series_path"] == f"{folder}/ElectricalSeriesProbeM1"
        assert (series["ACC"]["first_channel"], series["M1"]["first_channel"]) == (0, 2)
        assert [c["region"] for c in scan.channels] == ["ACC", "ACC", "M1", "M1"]
        volts = w["scans"][("01", SES, scan.key["run"])]["volts"]
        path = scan.lfp["nwb_path"]
        got = read_lfp(path, series_path=series["M1"]["series_path"], channels=[1, 0], start=3, stop=9)
        np.testing.assert_array_equal(got, volts[3:9, [3, 2]].T)
        with h5py.File(path) as f:
            assert f[series["M1"]["series_path"]].attrs["object_id"] == series["M1"]["series_object_id"]


PROBE_CLOCKS = {
    "rate": (
        {"rate": 250.0},
        "ElectricalSeriesProbeM1/rate",
        "250.0 but acquisition/ElectricalSeriesProbeACC has 200.0",
    ),
    "starting_time": ({"starting_time": 0.25}, "ElectricalSeriesProbeM1/starting_time", "0.25 but"),
    "n_samples": ({"n_samples": 3000}, "ElectricalSeriesProbeM1/data", "3000 but"),
}


@pytest.mark.parametrize("field", list(PROBE_CLOCKS))
def test_series_per_probe_must_share_one_clock(study, field):
    change, where, reason = PROBE_CLOCKS[field]
    make_study(
        study, subjects=("01",), runs=(1,), nwb_options={("01", 1): {"series": "per_probe", "probe_series": change}}
    )
    records = read_study(study)
    assert records.scans == []
    (err,) = records.errors
    assert err.path == nwb_rel(1) and err.field == f"acquisition/{where}" and reason in err.reason, str(err)
    assert "must share n_samples, rate and starting_time" in err.reason


def test_series_per_probe_ingested_and_populated(study, embedded_db):
    """Run 1 holds one series, run 2 the same samples as one series per probe: the implants'
    cleaned LFP is the same."""
    from lfpbold.pipeline import ingest_study
    from lfpbold.schemas import acquisition as acq
    from lfpbold.schemas import analysis

    same = {"seed": 7}
    make_study(
        study, subjects=("01",), runs=(1, 2), nwb_options={("01", 1): same, ("01", 2): {**same, "series": "per_probe"}}
    )
    report = ingest_study(study)
    assert report.errors == [] and len(report.inserted) == 2
    rows = acq.LFPRecording.ImplantSeries.to_dicts(order_by="region")
    assert [(r["run"], r["region"], r["series_path"], r["first_channel"]) for r in rows] == [
        (2, "ACC", "acquisition/ElectricalSeriesProbeACC", 0),
        (2, "M1", "acquisition/ElectricalSeriesProbeM1", 2),
    ]
    assert (acq.LFPRecording & {"run": 2}).fetch1("series_path") == "acquisition"
    analysis.CleanLFP.populate(display_progress=False)
    assert len(analysis.CleanLFP()) == 4
    for region in ("ACC", "M1"):
        one, per_probe = ((analysis.CleanLFP & {"run": run, "region": region}).fetch1("combined") for run in (1, 2))
        np.testing.assert_array_equal(one, per_probe)


def test_series_behind_an_external_link_is_read_from_its_own_file(tmp_path):
    """The byte offsets HDF5 gives for a linked dataset are in the other file: h5py reads it."""
    target, linking = tmp_path / "raw.nwb", tmp_path / "derived.h5"
    write_nwb(target)
    with h5py.File(target, "r+") as f:
        f["acquisition/ElectricalSeries/data"][123, 2] = np.nan
    with h5py.File(linking, "w") as f:
        f.create_dataset("padding", data=np.zeros(100_000, dtype=np.float32))  # other bytes at that offset
        f["acquisition/ElectricalSeries"] = h5py.ExternalLink(target.name, "acquisition/ElectricalSeries")
    with pytest.raises(IngestError, match=r"non-finite sample \(nan\) at channel 2, sample 123"):
        check_samples(linking, "acquisition/ElectricalSeries", 200.0, checksum=True)
