"""The three sandboxes together — APNs, FCM (with its OAuth token endpoint) and Web Push — plus the
credentials an app needs to use them, and the ``pushrelay.toml`` tables that point an app at them.

Used by ``pushrelay sandbox``, ``pushrelay demo`` and the service tests::

    with SandboxStack.running(tmp_path) as stack:          # background threads, for sync code
        config.write_text(stack.app_toml("myapp"))
        browser = stack.web.new_subscription(application_server_key=stack.vapid_public_key)

    async with SandboxStack.serve(directory, ports=(9443, 9444, 9445)) as stack:   # on this loop
        ...

Files in ``directory``: the APNs ``ca.pem`` and ``AuthKey_<KEYID>.p8``, ``fcm/ca.pem``,
``firebase-service-account.json``, ``webpush/ca.pem`` and ``vapid.pem``. A service-account file or
VAPID key already there is reused (and the APNs key when the caller passes it as ``existing_key``),
so a configuration pasted from an earlier run keeps working; the CAs are new at every start (same
file names).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..webpush.vapid import VapidKey
from .apns_sandbox import ApnsSandbox
from .fcm import FcmSandbox
from .records import InboxLog
from .webpush import WebPushSandbox

__all__ = ["ListenError", "SandboxStack"]

SERVICE_ACCOUNT_FILE = "firebase-service-account.json"
VAPID_KEY_FILE = "vapid.pem"
VAPID_SUBJECT = "mailto:pushrelay-sandbox@example.com"


class ListenError(Exception):
    """A sandbox could not listen on its port (the message names the sandbox and host:port)."""


class SandboxStack:
    """Running sandboxes (``apns``, ``fcm``, ``web``) and the app credentials registered with them."""

    def __init__(
        self,
        apns: ApnsSandbox,
        fcm: FcmSandbox,
        web: WebPushSandbox,
        directory: Path,
        *,
        team_id: str = "TEAM123456",
        key_id: str | None = None,
        existing_key: tuple[str, ec.EllipticCurvePublicKey] | None = None,
        bundle_id: str = "com.sample.myappname",
        project_id: str = "pushrelay-sandbox",
        apns_other: ApnsSandbox | None = None,
    ) -> None:
        self.apns, self.fcm, self.web = apns, fcm, web
        #: The APNs sandbox of the other environment (same key, topic and issued tokens), if served:
        #: a token issued for one environment is BadDeviceToken in the other, as with Apple.
        self.apns_other = apns_other
        self.directory = directory
        self.team_id, self.bundle_id = team_id, bundle_id
        if existing_key is not None:
            self.key_id = existing_key[0]
            apns.register_key(team_id, self.key_id, existing_key[1])
            self.key_file = directory / f"AuthKey_{self.key_id}.p8"
        else:
            self.key_file = apns.create_key(team_id, key_id, directory)
            self.key_id = self.key_file.stem.removeprefix("AuthKey_")
        apns.add_topic(bundle_id, team_id)
        if apns_other is not None:
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)  # written by create_key or checked by the CLI
            apns_other.register_key(team_id, self.key_id, key.public_key())
            apns_other.add_topic(bundle_id, team_id)
            # one ca_file for the app: both sandboxes' CAs (each makes its own at start)
            self.apns_ca_file = directory / "apns-ca-bundle.pem"
            self.apns_ca_file.write_bytes(apns.ca_file.read_bytes() + apns_other.ca_file.read_bytes())
        else:
            self.apns_ca_file = apns.ca_file

        self.service_account_file = directory / SERVICE_ACCOUNT_FILE
        if self.service_account_file.is_file():
            fcm.oauth.register_service_account(self.service_account_file)  # ValueError if unreadable
            self.project_id = str(json.loads(self.service_account_file.read_text())["project_id"])
        else:
            fcm.create_service_account(directory, project_id=project_id, filename=SERVICE_ACCOUNT_FILE)
            self.project_id = project_id

        self.vapid_key_file = directory / VAPID_KEY_FILE
        if self.vapid_key_file.is_file():
            vapid = VapidKey.from_file(self.vapid_key_file, subject=VAPID_SUBJECT)  # CredentialsError
        else:
            vapid = VapidKey.generate(subject=VAPID_SUBJECT)
            fd = os.open(self.vapid_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(vapid.private_pem())
        self.vapid_public_key = vapid.public_key_b64
        """The ``applicationServerKey`` a web page subscribes with."""

    # -- configuration -------------------------------------------------------------------------------
    def app_tables(self, app: str) -> dict[str, dict[str, Any]]:
        """The ``[apps.<app>...]`` tables (as data) that deliver through these sandboxes."""
        return {
            f"apps.{app}": {"bundle_id": self.bundle_id},
            f"apps.{app}.apns": {
                "team_id": self.team_id,
                "key_file": str(self.key_file),
                "environment": self.apns.environment,
                "endpoint": self.apns.url,
                **(
                    {f"{self.apns_other.environment}_endpoint": self.apns_other.url}
                    if self.apns_other is not None
                    else {}
                ),
                "ca_file": str(self.apns_ca_file),
            },
            f"apps.{app}.fcm": {
                "service_account_file": str(self.service_account_file),
                "mapping": "4d",
                "base_url": self.fcm.url,
                "token_uri": self.fcm.token_uri,  # the file's may be from an earlier run's port
                "ca_file": str(self.fcm.ca_file),
            },
            f"apps.{app}.webpush": {
                "vapid_private_key_file": str(self.vapid_key_file),
                "vapid_subject": VAPID_SUBJECT,
                "allowed_hosts": [self.web.allowed_host],
                "ca_file": str(self.web.ca_file),
            },
        }

    def app_toml(self, app: str, extra: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """:meth:`app_tables` as TOML; ``extra`` adds keys to a table (``{"fcm": {"quota_backoff": 1}}``)."""
        blocks = []
        for name, values in self.app_tables(app).items():
            section = name.removeprefix(f"apps.{app}").lstrip(".")
            merged = {**values, **(extra or {}).get(section, {})}
            # JSON texts, numbers, booleans and lists of texts are valid TOML values
            lines = [f"[{name}]", *(f"{key} = {json.dumps(value)}" for key, value in merged.items())]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + "\n"

    def attach_inbox(self, *, limit: int = 10_000) -> InboxLog:
        """A log of every request the three sandboxes answer, for the inbox page (newest ``limit``)."""
        log = InboxLog(limit)
        self.apns.attach_inbox(log)
        if self.apns_other is not None:
            self.apns_other.attach_inbox(log)
        self.fcm.service.inbox = log
        self.web.service.attach_inbox(log)
        return log

    # -- running ---------------------------------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def serve(
        cls,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        ports: tuple[int, int, int] = (0, 0, 0),
        environment: str = "production",
        max_concurrent_streams: int = 1000,
        lenient: bool = False,
        other_port: int | None = None,
        **credentials: Any,
    ) -> AsyncIterator[SandboxStack]:
        """Run the three sandboxes on the current event loop (APNs, FCM, Web Push ``ports``).

        ``other_port``: also serve APNs in the other environment there (0: any free port), sharing
        the issued device tokens.

        ``lenient``: the APNs sandbox takes any well-formed token (default: only issued ones), the FCM
        one any token of FCM's characters (default: only FCM-shaped ones).
        """
        async with contextlib.AsyncExitStack() as stack:
            apns = ApnsSandbox(
                "development" if environment == "development" else "production",
                host=host,
                port=ports[0],
                max_concurrent_streams=max_concurrent_streams,
                directory=directory,
                lenient=lenient,
            )
            fcm = FcmSandbox(host=host, port=ports[1], directory=directory / "fcm", lenient=lenient)
            other = None
            if other_port is not None:
                other = ApnsSandbox(
                    "production" if apns.environment == "development" else "development",
                    host=host,
                    port=other_port,
                    max_concurrent_streams=max_concurrent_streams,
                    directory=directory / "apns-other",
                    lenient=lenient,
                    devices=apns.devices,
                )
            web = WebPushSandbox(host=host, port=ports[2], directory=directory / "webpush")
            servers: list[tuple[str, Any, int]] = [
                ("APNs", apns, ports[0]),
                ("FCM", fcm, ports[1]),
                ("Web Push", web, ports[2]),
            ]
            if other is not None:
                servers.append((f"APNs {other.environment}", other, other.port))
            for name, sandbox, port in servers:
                try:
                    await stack.enter_async_context(sandbox)
                except OSError as exc:
                    raise ListenError(
                        f"cannot listen on {host}:{port} for the {name} sandbox: {exc.strerror or exc}"
                    ) from None
            yield cls(apns, fcm, web, directory, apns_other=other, **credentials)

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, directory: Path, *, host: str = "127.0.0.1", lenient: bool = False, **credentials: Any
    ) -> Iterator[SandboxStack]:
        """The three sandboxes, each in its own background thread, for synchronous code and tests.

        ``lenient``: the APNs sandbox takes any well-formed token (default: only issued ones), the FCM
        one any token of FCM's characters (default: only FCM-shaped ones).
        """
        with contextlib.ExitStack() as stack:
            apns = stack.enter_context(ApnsSandbox.running(host=host, directory=directory, lenient=lenient))
            fcm = stack.enter_context(
                FcmSandbox.running(host=host, directory=directory / "fcm", lenient=lenient)
            )
            web = stack.enter_context(WebPushSandbox.running(host=host, directory=directory / "webpush"))
            yield cls(apns, fcm, web, directory, **credentials)
