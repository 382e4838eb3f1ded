"""Readers and validators for a lab's study folder (BIDS-style, NIfTI BOLD + NWB LFP).

Each reader returns plain records (dicts named like the schema's attributes) that the schema
layer inserts; nothing here imports DataJoint. Problems raise :class:`IngestError` naming the
file and the field.
"""

from .checksum import fingerprint, sha256
from .errors import IngestError
from .nifti import read_bold
from .nwb import read_lfp
from .study import ScanRecords, StudyRecords, read_study

__all__ = ["IngestError", "read_study", "StudyRecords", "ScanRecords", "read_lfp", "read_bold", "sha256", "fingerprint"]
