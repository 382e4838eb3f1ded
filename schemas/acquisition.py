"""What was recorded: subjects, sessions, probes, implants, the atlas, and each scan's files.

Filled by ``lfpbold ingest``. Raw samples stay in the lab's NWB and NIfTI files; rows keep the
path (relative to a data root, see :mod:`lfpbold.integrity`), the file's SHA-256, size and
modification time, and the metadata needed to read them back lazily.
"""

import datajoint as dj

from lfpbold.constants import COLUMN_LIMITS, STATE_DESCRIPTIONS

schema = dj.Schema()


def _width(table: str, column: str) -> int:
    # one place for the widths ingest checks values against (lfpbold.constants.COLUMN_LIMITS)
    return COLUMN_LIMITS[table][column]


@schema
class State(dj.Lookup):
    definition = """
    # brain state during a session
    state : varchar(16)
    ---
    state_description : varchar(255)
    """
    contents = [{"state": s, "state_description": d} for s, d in STATE_DESCRIPTIONS.items()]


@schema
class Region(dj.Lookup):
    definition = f"""
    # brain region targeted by an implant
    region : varchar({_width("Region", "region")})
    ---
    region_name : varchar({_width("Region", "region_name")})
    """
    contents = [
        {"region": "ACC", "region_name": "anterior cingulate cortex"},
        {"region": "M1", "region_name": "primary motor cortex"},
    ]


@schema
class Subject(dj.Manual):
    definition = f"""
    # one animal
    subject : varchar({_width("Subject", "subject")})
    ---
    species = 'Rattus norvegicus' : varchar({_width("Subject", "species")})
    strain = '' : varchar({_width("Subject", "strain")})
    sex = 'U' : varchar({_width("Subject", "sex")})
    age = '' : varchar({_width("Subject", "age")})              # ISO 8601 duration, e.g. P90D
    weight_g = null : float64
    """


@schema
class Session(dj.Manual):
    definition = f"""
    # one imaging session of one animal, in one brain state
    -> Subject
    session : varchar({_width("Session", "session")})
    ---
    -> State
    session_datetime : datetime
    session_dir : varchar({_width("Session", "session_dir")})         # folder holding the session's files
    """


@schema
class ProbeType(dj.Manual):
    definition = f"""
    # a model of recording probe
    probe_type : varchar({_width("ProbeType", "probe_type")})
    ---
    manufacturer = '' : varchar({_width("ProbeType", "manufacturer")})
    probe_description = '' : varchar({_width("ProbeType", "probe_description")})
    n_electrodes : int32
    """

    class Electrode(dj.Part):
        definition = """
        # one contact of the probe
        -> master
        electrode : int32              # index of the contact on the probe
        ---
        depth_um = null : float64      # position along the shank, when the file says
        """


@schema
class Implant(dj.Manual):
    definition = f"""
    # a probe implanted in one region of one animal
    -> Subject
    -> Region
    ---
    -> ProbeType
    hemisphere : varchar({_width("Implant", "hemisphere")})            # left | right
    ap_mm : float64                    # from bregma, anterior positive
    ml_mm : float64                    # from midline, right positive
    dv_mm : float64                    # from brain surface, ventral negative
    """


@schema
class Atlas(dj.Manual):
    definition = f"""
    # the template space every run is registered to, with its tissue masks
    atlas : varchar({_width("Atlas", "atlas")})
    ---
    shape : json                       # [X, Y, Z]
    voxel_size_mm : json               # [dx, dy, dz]
    affine : <blob>                    # 4x4 voxel-to-mm
    brain_mask : <blob>                # bool (X, Y, Z)
    wm_mask : <blob>                   # bool (X, Y, Z)
    ventricle_mask : <blob>            # bool (X, Y, Z)
    n_brain_voxels : int32
    atlas_dir : varchar({_width("Atlas", "atlas_dir")})
    template = null : <blob>           # float32 (X, Y, Z) anatomical image figures draw over; null: none
    """

    class ROI(dj.Part):
        definition = f"""
        # voxels around the electrode tip of one region
        -> master
        -> Region
        ---
        roi_mask : <blob>              # bool (X, Y, Z)
        n_voxels : int32
        roi_path : varchar({_width("Atlas.ROI", "roi_path")})
        """


@schema
class Scan(dj.Manual):
    definition = """
    # one simultaneous fMRI + LFP acquisition
    -> Session
    run : int32
    ---
    -> Atlas
    """


@schema
class FMRIRun(dj.Manual):
    definition = f"""
    # the scan's BOLD run; voxels stay in the NIfTI file
    -> Scan
    ---
    bold_path : varchar({_width("FMRIRun", "bold_path")})  # relative to the data root (absolute in older rows)
    bold_sha256 : char(64)
    bold_size = null : int64           # bytes at ingest (null in databases made before it was kept)
    bold_mtime_ns = null : int64       # modification time at ingest, ns since the epoch
    t_r : float64                      # seconds
    n_volumes : int32
    shape : json                       # [X, Y, Z, T]
    affine : <blob>                    # 4x4
    slice_timing = null : <blob>       # seconds from volume onset, one per slice
    motion : <blob>                    # (n_volumes, 6): trans x,y,z mm; rot x,y,z rad
    motion_path : varchar({_width("FMRIRun", "motion_path")})
    motion_source = null : json        # motion file as written: format, columns, units; the tool's own FD
    sidecar : json                     # the sidecar after BIDS inheritance
    """


@schema
class LFPRecording(dj.Manual):
    definition = f"""
    # the scan's raw LFP; samples stay in the NWB file
    -> Scan
    ---
    nwb_path : varchar({_width("LFPRecording", "nwb_path")})  # relative to the data root (absolute in older rows)
    nwb_sha256 : char(64)
    nwb_size = null : int64            # bytes at ingest (null in databases made before it was kept)
    nwb_mtime_ns = null : int64        # modification time at ingest, ns since the epoch
    series_path : varchar({_width("LFPRecording", "series_path")})  # e.g. acquisition/ElectricalSeries, or its group
    series_object_id : varchar({_width("LFPRecording", "series_object_id")})  # NWB object_id ("" if per probe)
    sampling_rate : float64            # Hz
    n_samples : int64
    n_channels : int32
    volume_triggers : <blob>           # s on the series' clock, one per volume
    slice_triggers : <blob>            # s on the series' clock, one per slice acquisition
    nwb_inspection = null : json       # NWB Inspector findings at ingest: importance, check, location, message
    """

    class Channel(dj.Part):
        definition = """
        # one column of the series and the implant it belongs to
        -> master
        channel : int32                # column index in the series (numbered across them if one per probe)
        ---
        -> Implant
        electrode : int32              # contact on the implant's probe
        """

    class ImplantSeries(dj.Part):
        definition = f"""
        # the series holding an implant's channels, in a file with one ElectricalSeries per probe
        # (no rows for a file with one series: then LFPRecording.series_path holds every channel)
        -> master
        -> Implant
        ---
        series_path : varchar({_width("LFPRecording", "series_path")})  # e.g. acquisition/ElectricalSeriesProbeA
        series_object_id : varchar({_width("LFPRecording", "series_object_id")})  # NWB object_id of that series
        first_channel : int32          # the recording's channel number of the series' column 0
        """


@schema
class DataRoot(dj.Manual):
    definition = """
    # a folder ingest stored paths relative to, as the ingesting machine saw it
    root_md5 : char(32)                # md5 of data_root (a path is too long for a MySQL key)
    ---
    data_root : varchar(1024)          # absolute
    recorded_at : datetime             # when an ingest last used it
    """
