"""Every module that defines tables, imported in one place.

Alembic's ``env.py`` and :func:`pushrelay.db.upgrade` rely on :data:`pushrelay.db.Base.metadata`
knowing every table. A module that adds tables adds one import line here.
"""

from __future__ import annotations

from .fourd import models as _fourd_models
from .providers import models as _provider_models
from .queue import events as _queue_events
from .queue import models as _queue_models
from .registry import models as _registry_models

__all__ = ["_fourd_models", "_provider_models", "_queue_events", "_queue_models", "_registry_models"]
