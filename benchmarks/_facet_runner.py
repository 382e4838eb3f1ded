"""Run facetpy (FASTR-style AAS, optionally + PCA/OBS) on one .npz recording; write the corrected data.

Runs under the Python that has facetpy installed (it pins numpy 2.1 and mne 1.10, so it lives in
its own virtual environment): ``python _facet_runner.py IN.npz OUT.npz SETTING``, SETTING one of
``aas``, ``aas_obs`` (slice triggers), ``vol_aas`` or ``vol_aas_obs`` (every
``slices_per_volume``-th trigger: volume epochs, so each slice position has its own template
part). IN holds ``data`` (n_channels, n_times) volts, ``sfreq``, ``triggers``
(slice trigger samples). OUT holds ``data`` and ``seconds`` (correction time, all channels).
"""

import sys
import time

import mne
import numpy as np
from facet import AASCorrection, ProcessingContext
from facet.correction import PCACorrection
from facet.preprocessing import DownSample, SliceAligner, SubsampleAligner, UpSample


def main(src, dst, setting):
    z = np.load(src)
    data, sfreq, triggers = z["data"], float(z["sfreq"]), z["triggers"].astype(np.int64)
    if setting.startswith("vol_"):
        triggers = triggers[:: int(z["slices_per_volume"])]
    info = mne.create_info([f"ch{i}" for i in range(data.shape[0])], sfreq, ch_types="eeg")
    raw = mne.io.RawArray(data, info, verbose="ERROR")
    ctx = ProcessingContext(raw).with_trigger_samples(triggers, artifact_length=int(np.median(np.diff(triggers))))
    steps = [UpSample(factor=10), SliceAligner(ref_trigger_index=0), SubsampleAligner(ref_trigger_index=0)]
    steps.append(AASCorrection(window_size=30, correlation_threshold=0.975))
    if setting.endswith("_obs"):
        steps.append(PCACorrection(n_components=0.95, hp_freq=1.0))
    steps.append(DownSample(factor=10))
    t0 = time.perf_counter()
    for step in steps:
        ctx = step.execute(ctx)
    seconds = time.perf_counter() - t0
    out = ctx.get_raw().get_data()
    np.savez(dst, data=out, seconds=seconds)


if __name__ == "__main__":
    main(*sys.argv[1:4])
