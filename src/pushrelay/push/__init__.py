"""The 4D-compatible push API: :class:`PushNotification` (blocking) and
:class:`AsyncPushNotification`, returning a :class:`PushResult`.

- :mod:`.api`: the two classes;
- :mod:`.apps`: which app and platforms the constructor arguments designate;
- :mod:`.targets`: recipients → devices, with 4D's warnings;
- :mod:`.dispatch` / :mod:`.providers`: delivery through one provider per platform and environment;
- :mod:`.deeplink`: ``open()``'s ``userInfo``;
- :mod:`.result`: :class:`PushResult`, :class:`Delivery` and the warning texts.
"""

from __future__ import annotations

from .api import AsyncPushNotification, Progress, PushNotification
from .providers import PROVIDERS, Provider, ProviderFactory, ProviderUnavailable
from .result import Delivery, PushResult

__all__ = [
    "PROVIDERS",
    "AsyncPushNotification",
    "Delivery",
    "Progress",
    "Provider",
    "ProviderFactory",
    "ProviderUnavailable",
    "PushNotification",
    "PushResult",
]
