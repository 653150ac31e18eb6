"""Typed reading of an app's ``[apps.X.fcm]`` table.

::

    [apps.myapp.fcm]
    service_account_file = "keys/myapp-firebase-adminsdk.json"   # relative to the config file
    project_id = "myapp-1234"            # optional: taken from the file
    mapping = "4d"                       # "4d" (4D for Android apps) or "standard"
    channel_id = "news"                  # standard mapping: default Android notification channel
    base_url = "https://fcm.googleapis.com"              # optional (tests, proxies)
    token_uri = "https://oauth2.googleapis.com/token"    # optional: taken from the file
    ca_file = "sandbox-ca.pem"           # optional: trust only this CA (the sandbox)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import ConfigurationError
from .client import DEFAULT_BASE_URL, FcmClient
from .credentials import ServiceAccount
from .mapping import MAPPINGS, AndroidOptions, MappingName

__all__ = ["FcmSettings"]

_TEXT_KEYS = ("project_id", "base_url", "token_uri", "channel_id", "icon", "restricted_package_name")
_PATH_KEYS = ("service_account_file", "ca_file")
_KNOWN = frozenset((*_TEXT_KEYS, *_PATH_KEYS, "mapping", "project"))
_LEGACY = ("serverKey", "server_key", "serverkey")


@dataclass(frozen=True, slots=True)
class FcmSettings:
    service_account_file: Path
    project_id: str | None = None
    base_url: str = DEFAULT_BASE_URL
    token_uri: str | None = None
    mapping: MappingName = "4d"
    ca_file: Path | None = None
    channel_id: str | None = None
    icon: str | None = None
    restricted_package_name: str | None = None

    @classmethod
    def from_mapping(
        cls,
        d: Mapping[str, Any],
        *,
        file: str | Path | None = None,
        table: str = "fcm",
        base_dir: str | Path | None = None,
    ) -> FcmSettings:
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

        for legacy in _LEGACY:
            if legacy in d:
                raise fail(
                    legacy,
                    "the legacy FCM server-key API was shut down by Google in 2024; give "
                    "service_account_file (a service-account JSON key from Firebase console > Project "
                    "settings > Service accounts) instead",
                )
        unknown = sorted(set(d) - _KNOWN)
        if unknown:
            raise fail(unknown[0], f"unknown key; expected one of {', '.join(sorted(_KNOWN))}")
        values: dict[str, Any] = {}
        for key in _TEXT_KEYS:
            if key in d:
                if not isinstance(d[key], str) or not d[key]:
                    raise fail(key, f"expected non-empty text, got {d[key]!r}")
                values[key] = d[key]
        if "project" in d:  # 4D's spelling
            if "project_id" in d:
                raise fail("project", "give project_id or project, not both")
            if not isinstance(d["project"], str) or not d["project"]:
                raise fail("project", f"expected non-empty text, got {d['project']!r}")
            values["project_id"] = d["project"]
        base = Path(base_dir) if base_dir is not None else Path(file).parent if file else Path.cwd()
        for key in _PATH_KEYS:
            if key in d:
                if not isinstance(d[key], str) or not d[key]:
                    raise fail(key, f"expected a file path, got {d[key]!r}")
                values[key] = (base / d[key]).resolve() if not Path(d[key]).is_absolute() else Path(d[key])
        if "service_account_file" not in values:
            raise fail("service_account_file", "missing: the path of the Firebase service-account JSON key")
        if "mapping" in d:
            if d["mapping"] not in MAPPINGS:
                raise fail("mapping", f"expected '4d' or 'standard', got {d['mapping']!r}")
            values["mapping"] = d["mapping"]
        for key in ("base_url", "token_uri"):
            # Plain http would send the bearer token / signed grant in clear text.
            if key in values and not values[key].startswith("https://"):
                raise fail(key, f"expected an https:// URL, got {values[key]!r}")
        return cls(**values)

    def service_account(self) -> ServiceAccount:
        return ServiceAccount.from_file(
            self.service_account_file, token_uri=self.token_uri, ca_file=self.ca_file
        )

    def android_options(self) -> AndroidOptions:
        return AndroidOptions(self.channel_id, self.icon, self.restricted_package_name)

    def client(self, **kwargs: Any) -> FcmClient:
        """An :class:`FcmClient` for these settings (extra keywords go to its constructor)."""
        return FcmClient(
            self.service_account(),
            project_id=self.project_id,
            base_url=self.base_url,
            mapping=self.mapping,
            android=self.android_options(),
            ca_file=self.ca_file,
            **kwargs,
        )
