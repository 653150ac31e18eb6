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
    quota_backoff = 60                   # optional: seconds to wait at least after QUOTA_EXCEEDED
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._toml_table import TableReader
from .client import DEFAULT_BASE_URL, FcmClient
from .credentials import ServiceAccount
from .errors import MIN_QUOTA_BACKOFF
from .mapping import MAPPINGS, AndroidOptions, MappingName

__all__ = ["FcmSettings"]

_TEXT_KEYS = ("project_id", "channel_id", "icon", "restricted_package_name")
_URL_KEYS = ("base_url", "token_uri")
_PATH_KEYS = ("service_account_file", "ca_file")
_KNOWN = frozenset((*_TEXT_KEYS, *_URL_KEYS, *_PATH_KEYS, "mapping", "project", "quota_backoff"))
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
    quota_backoff: float = MIN_QUOTA_BACKOFF

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
        t = TableReader(d, table=table, file=file, base_dir=base_dir)
        for legacy in _LEGACY:
            if legacy in t:  # before the unknown-key check: say why, not just "unknown"
                raise t.fail(
                    legacy,
                    "the legacy FCM server-key API was shut down by Google in 2024; give "
                    "service_account_file (a service-account JSON key from Firebase console > Project "
                    "settings > Service accounts) instead",
                )
        t.refuse_unknown(_KNOWN)
        values: dict[str, Any] = {}
        for key in _TEXT_KEYS:
            if (text := t.text(key)) is not None:
                values[key] = text
        for key in _URL_KEYS:
            if (url := t.https_url(key)) is not None:
                values[key] = url
        if "project" in t:  # 4D's spelling
            if "project_id" in t:
                raise t.fail("project", "give project_id or project, not both")
            values["project_id"] = t.text("project")
        for key in _PATH_KEYS:
            if (path := t.path(key)) is not None:
                values[key] = path
        if "service_account_file" not in values:
            raise t.fail("service_account_file", "missing: the path of the Firebase service-account JSON key")
        if "mapping" in t:
            if d["mapping"] not in MAPPINGS:
                raise t.fail("mapping", f"expected '4d' or 'standard', got {d['mapping']!r}")
            values["mapping"] = d["mapping"]
        if "quota_backoff" in t:
            values["quota_backoff"] = t.seconds("quota_backoff", MIN_QUOTA_BACKOFF, minimum=0.001)
        return cls(**values)

    def service_account(self) -> ServiceAccount:
        return ServiceAccount.from_file(
            self.service_account_file, token_uri=self.token_uri, ca_file=self.ca_file
        )

    def android_options(self) -> AndroidOptions:
        return AndroidOptions(self.channel_id, self.icon, self.restricted_package_name)

    def client(self, *, credentials: ServiceAccount | None = None, **kwargs: Any) -> FcmClient:
        """An :class:`FcmClient` for these settings, with ``credentials`` (default: the service
        account loaded anew; pass a shared one to share its access token). Extra keywords go to
        the client's constructor."""
        return FcmClient(
            credentials or self.service_account(),
            project_id=self.project_id,
            base_url=self.base_url,
            mapping=self.mapping,
            android=self.android_options(),
            ca_file=self.ca_file,
            quota_backoff=self.quota_backoff,
            **kwargs,
        )
