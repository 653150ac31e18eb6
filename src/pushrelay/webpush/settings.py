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
        where = f" in {file}" if file else ""
        source = str(file) if file else None

        def fail(key: str, message: str) -> ConfigurationError:
            return ConfigurationError(
                f"[{table}] {key}{where}: {message}", field=f"{table}.{key}", file=source
            )

        unknown = sorted(set(d) - _KNOWN)
        if unknown:
            raise fail(unknown[0], f"unknown key; expected one of {', '.join(sorted(_KNOWN))}")
        base = Path(base_dir) if base_dir is not None else Path(file).parent if file else Path.cwd()

        def path(key: str) -> Path:
            value = d[key]
            if not isinstance(value, str) or not value:
                raise fail(key, f"expected a file path, got {value!r}")
            return Path(value) if Path(value).is_absolute() else (base / value).resolve()

        subject = d.get("vapid_subject")
        if not isinstance(subject, str) or not subject.startswith(("mailto:", "https://")):
            raise fail(
                "vapid_subject",
                "expected a mailto: address or an https:// URL the push services can contact you at, "
                f"got {subject!r}",
            )
        has_file, has_inline = "vapid_private_key_file" in d, "vapid_private_key" in d
        if has_file == has_inline:
            raise fail(
                "vapid_private_key_file",
                "give exactly one of vapid_private_key_file or vapid_private_key "
                "(create a key pair with `pushrelay vapid-keys`)",
            )
        try:
            if has_file:
                vapid = VapidKey.from_file(path("vapid_private_key_file"), subject=subject)
            else:
                inline = d["vapid_private_key"]
                if not isinstance(inline, str):
                    raise fail("vapid_private_key", "expected the base64url private key as text")
                vapid = VapidKey.from_string(inline, subject=subject)
        except CredentialsError as exc:
            key = "vapid_private_key_file" if has_file else "vapid_private_key"
            raise CredentialsError(
                f"[{table}] {key}{where}: {exc}", field=f"{table}.{key}", file=exc.file or source
            ) from None
        allowed: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
        if "allowed_hosts" in d:
            value = d["allowed_hosts"]
            if not isinstance(value, list | tuple) or not value:
                raise fail("allowed_hosts", f"expected a non-empty list of host names, got {value!r}")
            try:
                EndpointAllowList(value)
            except ConfigurationError as exc:
                raise fail("allowed_hosts", str(exc)) from None
            allowed = tuple(value)
        ttl = d.get("ttl", DEFAULT_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise fail("ttl", f"expected whole seconds >= 0, got {ttl!r}")
        ca_file = path("ca_file") if "ca_file" in d else None
        return cls(vapid, allowed, ttl, ca_file)

    def client(self, **kwargs: Any) -> WebPushClient:
        """A :class:`WebPushClient` for these settings (extra keywords go to its constructor)."""
        return WebPushClient(
            self.vapid, allowed_hosts=self.allowed_hosts, ca_file=self.ca_file, default_ttl=self.ttl, **kwargs
        )
