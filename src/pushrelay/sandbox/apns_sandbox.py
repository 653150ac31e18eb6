"""``ApnsSandbox``: the APNs sandbox as one object — server, TLS material, APNs rules, control API.

Use it as ``async with ApnsSandbox() as sb:`` in async code, or ``with ApnsSandbox.running() as sb:`` to
serve it from a background thread (sync code, the CLI). In the threaded form every method may be called
from any thread: calls are carried out on the sandbox's own loop, so reads are consistent snapshots.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import string
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .apns import ApnsService
from .apns_rules import Rejection, is_topic
from .control import ControlApi
from .devices import DeviceRegistry, IssuedDevice
from .dualstack import AlpnSelector, Http1Protocol
from .provider_tokens import RegisteredKey
from .records import InboxLog, Received
from .server import H2Server, Handler, Reply, Request, Response, ServerStats
from .tls import CertificateAuthority, Environment, ServerMaterial, server_ssl_context

__all__ = ["ApnsSandbox", "SandboxStats"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_ENVIRONMENTS = ("production", "development")
_ID_RE = re.compile(r"[A-Za-z0-9]+")
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}  # noqa: S104 - names to leave out of the certificate


@dataclass(frozen=True)
class SandboxStats:
    """Counters since the sandbox started."""

    connections: int = 0  # connections accepted
    requests: int = 0  # requests to APNs paths (control API excluded)
    accepted: int = 0  # answered 200 and recorded
    rejected: Counter[str] = field(default_factory=Counter)  # error answers, by reason
    goaways_sent: int = 0
    resets_sent: int = 0
    connections_dropped: int = 0
    max_streams_in_use: int = 0  # most streams open at once on one connection
    stream_limit_violations: int = 0  # streams opened beyond the advertised limit (refused)
    jwt_verifications: int = 0  # signature verifications (one per distinct provider token)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejected"] = dict(self.rejected)
        return data


def _generate_key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


def _check_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(f"{name}: expected letters and digits such as 'TEAM123456', got {value!r}")
    return value


class _LoopThread:
    """An event loop running in a daemon thread, for :meth:`ApnsSandbox.running`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="pushrelay-sandbox", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self) -> None:
        self._thread.start()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


class ApnsSandbox:
    """A local, faithful APNs: HTTP/2 over TLS, Apple's validation rules and answers, scripted devices.

    Args:
        environment: "production" or "development": the environment of the tokens it accepts, and of
            certificate and key checks.
        host, port: where to listen; port 0 picks a free port (see :attr:`url`).
        max_concurrent_streams: advertised once a request with valid credentials came in (before: 1).
        clock: seconds since the epoch; JWT age, token-refresh rules and record times use it.
        directory: where ``ca.pem`` and the server key go; a temporary directory (removed on exit) if None.
        lenient: accept any well-formed hex token on any topic (ad-hoc use). By default (strict) only
            tokens issued by :meth:`issue_token` (or ``POST /_sandbox/devices``) for this environment
            and the request's app are accepted: BadDeviceToken / DeviceTokenNotForTopic otherwise.
        devices: the registry of issued tokens, to share it with the sandbox of the other environment.
    """

    def __init__(
        self,
        environment: Environment = "production",
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrent_streams: int = 1000,
        clock: Callable[[], float] = time.time,
        directory: str | os.PathLike[str] | None = None,
        *,
        lenient: bool = False,
        devices: DeviceRegistry | None = None,
    ) -> None:
        if environment not in _ENVIRONMENTS:
            raise ValueError(f"environment: expected 'production' or 'development', got {environment!r}")
        if not isinstance(max_concurrent_streams, int) or max_concurrent_streams < 1:
            raise ValueError(
                f"max_concurrent_streams: expected an integer ≥ 1, got {max_concurrent_streams!r}"
            )
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port: expected 0..65535, got {port!r}")
        self.environment: Environment = environment
        self.host = host
        self.port = port
        self.max_concurrent_streams = max_concurrent_streams
        self._clock = clock
        self._requested_directory = Path(directory) if directory is not None else None
        self._directory: Path | None = None
        self._owns_directory = False
        self.lenient = lenient
        self.devices = devices if devices is not None else DeviceRegistry()
        self._service = ApnsService(
            environment=environment,
            clock=clock,
            max_concurrent_streams=max_concurrent_streams,
            devices=None if lenient else self.devices,
        )
        self._control = ControlApi(self)
        self._extra_routes: list[tuple[str, Handler]] = []
        self._server: H2Server | None = None
        self._transport_stats: ServerStats | None = None  # outlives the server, for stats after stop()
        self._ca: CertificateAuthority | None = None
        self._material: ServerMaterial | None = None
        self._runner: _LoopThread | None = None
        self._http1: set[Http1Protocol] = set()

    # -- life cycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> ApnsSandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("this sandbox is already running")
        if self._requested_directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="pushrelay-sandbox-"))
            self._owns_directory = True
        else:
            self._directory = self._requested_directory
            self._directory.mkdir(parents=True, exist_ok=True)
        hosts = ["127.0.0.1", "localhost", "::1"]
        if self.host not in _WILDCARD_HOSTS:
            hosts.append(self.host)
        self._ca = CertificateAuthority.generate()
        self._material = self._ca.write_server_material(self._directory, hosts)
        context = server_ssl_context(self._material)
        # APNs itself is HTTP/2 only; HTTP/1.1 is offered for the control API (plain curl).
        context.set_alpn_protocols(["h2", "http/1.1"])
        server = H2Server(context, initial_max_concurrent_streams=1)
        server.add_route("/", self._service.handle)
        server.add_route("/_sandbox/", self._control.handle)
        for prefix, handler in self._extra_routes:
            server.add_route(prefix, handler)
        try:
            self.port = await server.start(
                self.host,
                self.port,
                protocol_factory=lambda: AlpnSelector(
                    server.new_connection,
                    lambda: Http1Protocol(
                        server, self._http1, server.new_connection_id(), self._http1_handle
                    ),
                ),
            )
        except BaseException:
            self._remove_directory()
            raise
        self._server = server
        self._transport_stats = server.stats

    async def stop(self) -> None:
        server, self._server = self._server, None
        for connection in list(self._http1):
            connection.close()
        if server is not None:
            await server.close()
        self._remove_directory()

    def _http1_handle(self, request: Request) -> Reply:
        if request.path.startswith("/_sandbox/"):
            return self._control.handle(request)
        # Apple's API is HTTP/2 only: an HTTP/1.1 client never gets a device answer.
        return Response(
            505,
            [("content-type", "application/json")],
            b'{"error": "APNs requires HTTP/2; only the /_sandbox/ control API answers HTTP/1.1"}',
        )

    def _remove_directory(self) -> None:
        if self._owns_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._owns_directory = False

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        environment: Environment = "production",
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrent_streams: int = 1000,
        clock: Callable[[], float] = time.time,
        directory: str | os.PathLike[str] | None = None,
        *,
        lenient: bool = False,
        devices: DeviceRegistry | None = None,
    ) -> Iterator[ApnsSandbox]:
        """Serve the sandbox from a background thread with its own event loop."""
        sandbox = cls(
            environment,
            host,
            port,
            max_concurrent_streams,
            clock,
            directory,
            lenient=lenient,
            devices=devices,
        )
        runner = _LoopThread()
        runner.start()
        try:
            runner.run(sandbox.start())
            sandbox._runner = runner
            try:
                yield sandbox
            finally:
                sandbox._runner = None
                runner.run(sandbox.stop())
        finally:
            runner.stop()

    def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn`` on the sandbox's loop thread when the sandbox is served from one."""
        runner = self._runner
        if runner is None or runner.in_loop_thread():
            return fn(*args, **kwargs)
        return runner.call(fn, *args, **kwargs)

    # -- where it is -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``: the endpoint to configure instead of api.push.apple.com."""
        host = self.host
        if host in _WILDCARD_HOSTS:
            host = "127.0.0.1" if host != "::" else "::1"
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) clients must trust to reach this sandbox."""
        return self._running_material().ca_file

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise RuntimeError("the sandbox is not running: use 'async with ApnsSandbox() as sb'")
        return self._directory

    def _running_material(self) -> ServerMaterial:
        if self._material is None:
            raise RuntimeError("the sandbox is not running: use 'async with ApnsSandbox() as sb'")
        return self._material

    def add_route(self, prefix: str, handler: Handler) -> None:
        """Serve another protocol's paths (FCM, Web Push sandboxes) on the same port; see ``server.py``."""
        self._extra_routes.append((prefix, handler))
        if self._server is not None:
            self._call(self._server.add_route, prefix, handler)

    # -- credentials -------------------------------------------------------------------------------

    def create_key(
        self,
        team_id: str = "TEAM123456",
        key_id: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        *,
        environment: Environment | None = None,
    ) -> Path:
        """Write a new ``AuthKey_<key_id>.p8`` (PKCS#8 P-256) and register it for ``team_id``.

        ``key_id`` defaults to 10 random characters; ``directory`` to the sandbox directory. With
        ``environment`` the key only works there (403 BadEnvironmentKeyIdInToken elsewhere).
        """
        _check_id(team_id, "team_id")
        key_id = _check_id(key_id if key_id is not None else _generate_key_id(), "key_id")
        target = Path(directory) if directory is not None else self.directory
        target.mkdir(parents=True, exist_ok=True)
        private_key = ec.generate_private_key(ec.SECP256R1())
        path = target / f"AuthKey_{key_id}.p8"
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        self.register_key(team_id, key_id, private_key.public_key(), environment=environment)
        return path

    def register_key(
        self,
        team_id: str,
        key_id: str,
        public_key: ec.EllipticCurvePublicKey,
        *,
        environment: Environment | None = None,
    ) -> None:
        """Accept provider tokens signed by this key (kid ``key_id``, iss ``team_id``)."""
        _check_id(team_id, "team_id")
        _check_id(key_id, "key_id")
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise ValueError("public_key: expected a P-256 (ES256) EllipticCurvePublicKey")
        if environment is not None and environment not in _ENVIRONMENTS:
            raise ValueError(
                f"environment: expected 'production', 'development' or None, got {environment!r}"
            )
        self._call(self._service.tokens.register, RegisteredKey(team_id, key_id, public_key, environment))

    def add_topic(self, bundle_id: str, team_id: str) -> None:
        """Let ``team_id`` push to ``bundle_id`` (and its push-type topics: .voip, .complication, ...)."""
        if not isinstance(bundle_id, str) or not is_topic(bundle_id):
            raise ValueError(
                f"bundle_id: expected a bundle id such as 'com.sample.myappname', got {bundle_id!r}"
            )
        _check_id(team_id, "team_id")
        self._call(self._service.topics.__setitem__, bundle_id, team_id)

    def issue_client_certificate(
        self,
        bundle_id: str,
        directory: str | os.PathLike[str] | None = None,
        *,
        expired: bool = False,
        passphrase: str | None = None,
        format: Literal["p12", "pem"] = "p12",
        team_id: str | None = None,
        environments: Iterable[Environment] = ("production", "development"),
    ) -> tuple[Path, Path | None]:
        """An APNs provider certificate signed by the sandbox CA, for certificate authentication.

        Returns ``(p12 file, None)`` or, with ``format="pem"``, ``(certificate PEM, key PEM)``. The
        passphrase protects the .p12 (or the PEM key). Topics are the certificate's bundle id and its
        push-type variants; no ``add_topic`` needed. An expired certificate is refused in the TLS handshake.
        """
        if self._ca is None:
            raise RuntimeError("the sandbox is not running: its CA signs client certificates")
        if format not in ("p12", "pem"):
            raise ValueError(f"format: expected 'p12' or 'pem', got {format!r}")
        target = Path(directory) if directory is not None else self.directory
        return self._ca.write_push_client(
            bundle_id,
            target,
            team_id=team_id,
            expired=expired,
            passphrase=passphrase,
            fmt=format,
            environments=tuple(environments),
        )

    # -- devices -----------------------------------------------------------------------------------

    def issue_token(
        self, topic: str, environment: Environment | None = None, *, token: str | None = None
    ) -> str:
        """A device token (64 hex digits) of the app ``topic`` in ``environment`` (default: this one).

        As Apple's, the token is accepted only with that app's topics (``<bundle>``, ``<bundle>.voip``…)
        and in that environment. ``token`` binds a given well-formed token instead of a new one.
        """
        return self.issue_device(topic, environment, token=token).token

    def issue_device(
        self, topic: str, environment: Environment | None = None, *, token: str | None = None
    ) -> IssuedDevice:
        return self.devices.issue(topic, environment or self.environment, token=token)

    # -- device behaviour --------------------------------------------------------------------------

    def script(self, token: str, behaviour: str, *, times: int | None = None, **params: Any) -> None:
        """Make ``token`` misbehave: for its next ``times`` requests (None: always), then normally.

        Behaviours: unregistered, expired_token (410 + ``timestamp_ms``), bad_token, not_for_topic,
        rate_limited, unavailable, internal, shutdown, goaway (``reason``), reset, drop, delay (``seconds``).
        """
        self._call(self._service.scripts.add, token, behaviour, times, params)

    def clear_scripts(self, token: str | None = None) -> None:
        self._call(self._service.scripts.clear, token)

    def set_outage(self, status: int = 503, reason: str = "ServiceUnavailable") -> None:
        """Answer every device request with ``status`` and ``reason`` until :meth:`clear_outage`."""
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError(f"status: expected an HTTP error status 400..599, got {status!r}")
        if not isinstance(reason, str) or not reason:
            raise ValueError(
                f"reason: expected a non-empty APNs reason such as 'ServiceUnavailable', got {reason!r}"
            )
        self._call(setattr, self._service, "outage", Rejection(status, reason))

    def clear_outage(self) -> None:
        self._call(setattr, self._service, "outage", None)

    # -- what happened -----------------------------------------------------------------------------

    def received(self, token: str) -> list[Received]:
        """Notifications accepted for ``token`` (case-insensitive), oldest first."""
        return self._call(self._service.received.for_token, token.lower())

    def all_received(self) -> list[Received]:
        return self._call(self._service.received.everything)

    def clear_received(self) -> None:
        self._call(self._service.received.clear)

    def attach_inbox(self, inbox: InboxLog | None) -> None:
        """Report every answered request (accepted or refused) to ``inbox``, the inbox page's log,
        and every issued token as a device, before anything is sent to it."""
        self._call(setattr, self._service, "inbox", inbox)
        if inbox is not None:
            self.devices.watch(lambda device: inbox.add_device("apns", device.token))

    @property
    def stats(self) -> SandboxStats:
        return self._call(self._snapshot_stats)

    def _snapshot_stats(self) -> SandboxStats:
        service = self._service
        transport = self._transport_stats
        return SandboxStats(
            connections=transport.connections if transport else 0,
            requests=service.requests,
            accepted=service.accepted,
            rejected=Counter(service.rejected),
            goaways_sent=transport.goaways_sent if transport else 0,
            resets_sent=transport.resets_sent if transport else 0,
            connections_dropped=transport.connections_dropped if transport else 0,
            max_streams_in_use=transport.max_streams_in_use if transport else 0,
            stream_limit_violations=transport.stream_limit_violations if transport else 0,
            jwt_verifications=service.tokens.verifications,
        )

    def describe(self) -> dict[str, Any]:
        """Configuration summary for the control API (no key material)."""
        return self._call(
            lambda: {
                "environment": self.environment,
                "url": self.url,
                "lenient": self.lenient,
                "devices": len(self.devices),
                "max_concurrent_streams": self.max_concurrent_streams,
                "topics": dict(self._service.topics),
                "keys": self._service.tokens.describe(),
                "outage": self._service.outage._asdict() if self._service.outage else None,
                "scripts": self._service.scripts.snapshot(),
            }
        )
