"""lfpbold: a DataJoint platform for simultaneous resting-state fMRI and LFP studies.

Schemas in :mod:`lfpbold.schemas`, algorithms in :mod:`lfpbold.plugins`, readers in :mod:`lfpbold.ingest`.
"""

__version__ = "0.1.0"

from .db import connect  # noqa: E402
from .pipeline import ingest_study, populate  # noqa: E402
from .results import results  # noqa: E402

__all__ = ["connect", "ingest_study", "populate", "results", "__version__"]
