"""The worker's provider pool, with one addition: dropping an app's clients.

A client that a provider refused (APNs ``InvalidProviderToken``...) stops sending for good: it
would refuse every later delivery on its own. When the operator resumes the app, the worker
drops that app's clients and the next chunk opens new ones.
"""

from __future__ import annotations

import contextlib

from .providers import ProviderPool

__all__ = ["AppProviderPool"]


class AppProviderPool(ProviderPool):
    async def discard(self, app: str) -> int:
        """Close and forget every client of ``app``; returns how many."""
        # ProviderPool keys its clients by (app, platform, environment)
        keys = [key for key in self._clients if key[0] == app]
        for key in keys:
            client = self._clients.pop(key)
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            self._on_open(key[0], key[1], -1)
        return len(keys)
