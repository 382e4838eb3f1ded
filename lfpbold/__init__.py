"""lfpbold: a DataJoint platform for simultaneous resting-state fMRI and LFP studies.

Schemas in :mod:`lfpbold.schemas`, algorithms in :mod:`lfpbold.plugins`, readers in :mod:`lfpbold.ingest`.
"""

__version__ = "0.1.0"

__all__ = ["connect", "ingest_study", "populate", "results", "__version__"]

_LAZY = {"connect": "db", "ingest_study": "pipeline", "populate": "pipeline", "results": "query"}


def __getattr__(name):
    # Lazy, so that `import lfpbold.plugins` or `lfpbold.ingest` does not pull in DataJoint.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lfpbold' has no attribute {name!r}")
