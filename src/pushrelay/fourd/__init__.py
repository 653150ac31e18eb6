"""The 4D Mobile App Server side: ``MobileApps`` folders, session files, recipient rules.

- :mod:`.folder`: app folders, ``manifest.json``, the ``AuthKey_<KEYID>.p8`` found there;
- :mod:`.sessions`: session files (one per signed-in device);
- :mod:`.recipients`: the recipients argument of ``send()`` (e-mail vs token);
- :mod:`.importer`: importing a ``MobileApps`` folder into the registry.
"""

from __future__ import annotations

from .folder import FourDApp, FourDFolderError, find_app_folders, read_app_folder
from .recipients import Recipients, parse_recipients

__all__ = [
    "FourDApp",
    "FourDFolderError",
    "Recipients",
    "find_app_folders",
    "parse_recipients",
    "read_app_folder",
]
