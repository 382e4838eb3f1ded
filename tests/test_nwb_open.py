"""The NWB sample readers open HDF5 in one place: the same error, naming the file, from each."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from lfpbold.ingest.errors import IngestError
from lfpbold.ingest.nwb import check_samples, read_lfp

SERIES = "acquisition/ElectricalSeries"


def _readers(path):
    return {
        "check_samples": lambda key=SERIES: check_samples(path, key),
        "read_lfp": lambda key=SERIES: read_lfp(path, series_path=key, channels=[0]),
    }


def _h5(path):
    with h5py.File(path, "w") as f:
        f.create_dataset(f"{SERIES}/data", data=np.zeros((20000, 4), dtype=np.float32))
    return path


@pytest.mark.parametrize(
    "make, field, reason",
    [
        (lambda p: p, "file", "^missing$"),
        (lambda p: p.write_bytes(b"not an HDF5 file at all") and p, "file", "^not readable as HDF5 "),
        (lambda p: p.write_bytes(_h5(p).read_bytes()[:4096]) and p, "file", "^truncated: 4,096 bytes on disk but"),
    ],
    ids=["missing", "not_hdf5", "truncated"],
)
def test_each_reader_says_the_same_about_a_bad_file(tmp_path, make, field, reason):
    path = tmp_path / "x_ecephys.nwb"
    make(path)
    seen = set()
    for name, read in _readers(path).items():
        with pytest.raises(IngestError) as err:
            read()
        assert err.value.abspath == path and err.value.field == field, name
        assert str(path) in str(err.value), name
        assert re.search(reason, err.value.reason), (name, err.value.reason)
        seen.add(err.value.reason)
    assert len(seen) == 1, seen


def test_each_reader_says_the_same_about_a_wrong_series_path(tmp_path):
    path = _h5(tmp_path / "x_ecephys.nwb")
    reasons = set()
    for name, read in _readers(path).items():
        with pytest.raises(IngestError) as err:
            read("processing/ecephys/LFP/ElectricalSeries")
        assert err.value.field == "processing/ecephys/LFP/ElectricalSeries", name
        reasons.add(err.value.reason)
    assert reasons == {"no series data at this path (the path stored must be the path read)"}
    assert read_lfp(path, series_path=SERIES, channels=[0], stop=10).shape == (1, 10)
