"""Which hosts pushrelay will POST Web Push messages to (the SSRF guard).

Subscriptions come from browsers, so their endpoints are attacker-controlled text: without a check,
registering ``https://10.0.0.5/admin`` as a "subscription" would make pushrelay a request forwarder
into the private network. Only the known push services are allowed by default; a deployment can
replace the list (``allowed_hosts`` in ``[apps.X.webpush]``).

Entries: ``"host"``, ``"*.domain"`` (any subdomain, not the domain itself), optionally with
``":port"``; without a port only 443 is allowed. Only ``https://`` endpoints are ever allowed.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

from .._exceptions import ConfigurationError

__all__ = ["DEFAULT_ALLOWED_HOSTS", "EndpointAllowList"]

#: The push services of the browsers in use (2024-2025).
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = (
    "fcm.googleapis.com",  # Chrome, Edge on Android, Opera, Samsung Internet, Brave
    "updates.push.services.mozilla.com",  # Firefox
    "*.push.apple.com",  # Safari (web.push.apple.com)
    "*.notify.windows.com",  # Edge on Windows (WNS)
)

_ENTRY = re.compile(
    r"^(\*\.)?([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$"
)


class EndpointAllowList:
    def __init__(
        self, entries: Iterable[str] = DEFAULT_ALLOWED_HOSTS, *, field: str = "allowed_hosts"
    ) -> None:
        self._exact: set[tuple[str, int]] = set()
        self._suffixes: set[tuple[str, int]] = set()
        self.entries: tuple[str, ...] = tuple(entries)
        if isinstance(entries, str):
            raise ConfigurationError(f"{field} must be a list of host names, not one text", field=field)
        for entry in self.entries:
            if not isinstance(entry, str):
                raise ConfigurationError(f"{field} entries must be text, got {entry!r}", field=field)
            match = _ENTRY.match(entry.strip().lower())
            if match is None:
                raise ConfigurationError(
                    f"{field} entry {entry!r} is not 'host', '*.domain' or either with ':port'", field=field
                )
            wildcard, host, port = match.groups()
            key = (host.strip("[]"), int(port) if port else 443)
            (self._suffixes if wildcard else self._exact).add(key)

    def reason_refused(
        self, endpoint: str, *, where: str = "the Web Push allow-list (allowed_hosts)"
    ) -> str | None:
        """Why ``endpoint`` may not be used, or None when it may (the endpoint is never quoted, it is
        a bearer capability; ``where`` names the list in the message)."""
        try:
            parts = urllib.parse.urlsplit(endpoint)
            port = parts.port or 443
        except ValueError:
            return "the endpoint is not a valid URL"
        if parts.scheme != "https":
            return "only https:// push endpoints are allowed"
        host = (parts.hostname or "").lower().rstrip(".")
        if (host, port) in self._exact:
            return None
        for suffix, allowed_port in self._suffixes:
            if port == allowed_port and host.endswith("." + suffix):
                return None
        shown = host if port == 443 else f"{host}:{port}"
        return f"push endpoint host {shown} is not in {where}: not an allowed push service"

    def allows(self, endpoint: str) -> bool:
        return self.reason_refused(endpoint) is None
