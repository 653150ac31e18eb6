"""The 4D-compatible push API: :class:`PushNotification` (blocking) and
:class:`AsyncPushNotification`, returning a :class:`PushResult`.

- :mod:`.api`: the two classes;
- :mod:`.apps`: which app and platforms the constructor arguments designate;
- recipients → devices, with 4D's warnings: :mod:`pushrelay.fourd.targets` (the worker uses the same rules);
- :mod:`.outbox`: the record every send leaves, and the durable mode (``enqueue``/``wait``);
  delivery itself is the worker's (:mod:`pushrelay.worker.inline`, :mod:`pushrelay.providers`);
- :mod:`.deeplink`: ``open()``'s ``userInfo``;
- :mod:`.result`: :class:`PushResult`, :class:`Delivery` and the warning texts.
"""

from __future__ import annotations

from ..providers.base import Provider, ProviderFactory, ProviderUnavailable
from .api import AsyncPushNotification, Progress, PushNotification
from .result import Delivery, PushResult

__all__ = [
    "AsyncPushNotification",
    "Delivery",
    "Progress",
    "Provider",
    "ProviderFactory",
    "ProviderUnavailable",
    "PushNotification",
    "PushResult",
]
