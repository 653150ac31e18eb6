"""Typed reading of an app's ``[apps.X.webpush]`` table.

::

    [apps.myapp.webpush]
    vapid_private_key_file = "keys/vapid.pem"    # or: vapid_private_key = "<base64url>"
    vapid_subject = "mailto:ops@example.com"     # or an https:// URL
    allowed_hosts = ["fcm.googleapis.com", "updates.push.services.mozilla.com",
                     "*.push.apple.com", "*.notify.windows.com"]   # optional: these are the default
    ttl = 2419200                                # optional: seconds a message may wait (default 4 weeks)
    ca_file = "sandbox-ca.pem"                   # optional: trust only this CA (the sandbox)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError, CredentialsError
from .._toml_table import TableReader
from .allowlist import DEFAULT_ALLOWED_HOSTS, EndpointAllowList
from .client import WebPushClient
from .payload import DEFAULT_TTL
from .vapid import VapidKey

__all__ = ["WebPushSettings"]

_KNOWN = frozenset(
    {"vapid_private_key_file", "vapid_private_key", "vapid_subject", "allowed_hosts", "ttl", "ca_file"}
)


@dataclass(frozen=True, slots=True)
class WebPushSettings:
    vapid: VapidKey
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    ttl: int = DEFAULT_TTL
    ca_file: Path | None = None

    @classmethod
    def from_mapping(
        cls,
        d: Mapping[str, Any],
        *,
        file: str | Path | None = None,
        table: str = "webpush",
        base_dir: str | Path | None = None,
    ) -> WebPushSettings:
        """Read the table ``d`` found in ``file`` (named ``table`` in errors).

        Relative paths are resolved against ``base_dir``, else the folder of ``file``, else the
        working directory.
        """
        t = TableReader(d, table=table, file=file, base_dir=base_dir)
        t.refuse_unknown(_KNOWN)
        subject = d.get("vapid_subject")
        if not isinstance(subject, str) or not subject.startswith(("mailto:", "https://")):
            raise t.fail(
                "vapid_subject",
                "expected a mailto: address or an https:// URL the push services can contact you at, "
                f"got {subject!r}",
            )
        has_file, has_inline = "vapid_private_key_file" in t, "vapid_private_key" in t
        if has_file == has_inline:
            raise t.fail(
                "vapid_private_key_file",
                "give exactly one of vapid_private_key_file or vapid_private_key "
                "(create a key pair with `pushrelay keys vapid`)",
            )
        key = "vapid_private_key_file" if has_file else "vapid_private_key"
        try:
            if has_file:
                path = t.path(key)
                assert path is not None
                vapid = VapidKey.from_file(path, subject=subject)
            else:
                inline = d[key]
                if not isinstance(inline, str):
                    raise t.fail(key, "expected the base64url private key as text")
                vapid = VapidKey.from_string(inline, subject=subject)
        except CredentialsError as exc:
            where = f" in {t.file}" if t.file else ""
            raise CredentialsError(
                f"[{table}] {key}{where}: {exc}", field=f"{table}.{key}", file=exc.file or t.file
            ) from None
        allowed: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
        if "allowed_hosts" in t:
            value = d["allowed_hosts"]
            if not isinstance(value, list | tuple) or not value:
                raise t.fail("allowed_hosts", f"expected a non-empty list of host names, got {value!r}")
            try:
                EndpointAllowList(value)
            except ConfigurationError as exc:
                raise t.fail("allowed_hosts", str(exc)) from None
            allowed = tuple(value)
        ttl = int(t.seconds("ttl", DEFAULT_TTL, whole=True))
        return cls(vapid, allowed, ttl, t.path("ca_file"))

    def allow_list(self) -> EndpointAllowList:
        return EndpointAllowList(self.allowed_hosts)

    def client(self, **kwargs: Any) -> WebPushClient:
        """A :class:`WebPushClient` for these settings (extra keywords go to its constructor)."""
        return WebPushClient(
            self.vapid, allowed_hosts=self.allowed_hosts, ca_file=self.ca_file, default_ttl=self.ttl, **kwargs
        )
