"""lfpbold: a DataJoint platform for simultaneous resting-state fMRI and LFP studies.

Schemas in :mod:`lfpbold.schemas`, algorithms in :mod:`lfpbold.plugins`, readers in :mod:`lfpbold.ingest`.
"""

__version__ = "0.1.0"

import os as _os

from . import compat as _compat

# Before anything imports DataJoint: lfpbold finds its database itself (lfpbold.db), so
# DataJoint's hint about a missing datajoint.json would only confuse a new user.
_compat.hide_config_file_hint()

# In a source checkout, schemas/, plugins/ and ingest/ sit beside this folder (setuptools maps them
# in at install). When Python runs from the checkout's root, ./lfpbold shadows the installed
# package, so let the subpackages be found beside it as well.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "schemas")) and _os.path.isdir(_os.path.join(_root, "schemas")):
    __path__.append(_root)

__all__ = [
    "connect",
    "ingest_study",
    "select",
    "populate",
    "check",
    "results",
    "plot",
    "report",
    "status",
    "export_maps",
    "export_results",
    "export_nwb",
    "__version__",
]

_LAZY = {
    "connect": "db",
    "ingest_study": "pipeline",
    "select": "pipeline",
    "populate": "pipeline",
    "results": "query",
    "check": "integrity",
    "plot": "plots",
    "report": "reports",
    "status": "progress",
    "export_maps": "export",
    "export_results": "export",
    "export_nwb": "nwb_export",
}


def __getattr__(name):
    # Lazy, so that `import lfpbold.plugins` or `lfpbold.ingest` does not pull in DataJoint.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'lfpbold' has no attribute {name!r}")
