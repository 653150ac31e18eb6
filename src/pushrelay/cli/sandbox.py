"""``pushrelay sandbox``: run the local APNs, FCM and Web Push sandboxes until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .._exceptions import CredentialsError
from ..sandbox.inbox import Inbox, InboxListenError, serve_inbox
from ..sandbox.stack import ListenError, SandboxStack

__all__ = ["sandbox"]


_ID_RE = re.compile(r"[A-Za-z0-9]+")
_BUNDLE_RE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def _check(
    pattern: re.Pattern[str], example: str
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None and not pattern.fullmatch(value):
            raise click.BadParameter(f"expected something like {example!r}, got {value!r}")
        return value

    return callback


def _existing_key(directory: Path, key_id: str | None) -> tuple[str, ec.EllipticCurvePublicKey] | None:
    """An AuthKey_<KEYID>.p8 already in ``directory`` to reuse, so pasted configuration stays valid."""
    if key_id is not None:
        candidates = [directory / f"AuthKey_{key_id}.p8"]
    else:
        candidates = sorted(directory.glob("AuthKey_*.p8"))
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise click.UsageError(
                f"--key-id: {directory} holds several keys ({names}); say which one to use"
            )
    if not candidates or not candidates[0].is_file():
        return None
    path = candidates[0]
    try:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise click.ClickException(
            f"{path}: not a readable PKCS#8 P-256 key ({exc.__class__.__name__})"
        ) from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise click.ClickException(f"{path}: expected a P-256 (ES256) key as Apple issues")
    return path.stem.removeprefix("AuthKey_"), private_key.public_key()


async def _serve(
    *,
    host: str,
    ports: tuple[int, int, int],
    directory: Path,
    environment: str,
    team_id: str,
    key_id: str | None,
    existing: tuple[str, ec.EllipticCurvePublicKey] | None,
    bundle_id: str,
    max_concurrent_streams: int,
    inbox_port: int | None,
    lenient: bool,
    other_port: int | None,
) -> None:
    serving = SandboxStack.serve(
        directory,
        host=host,
        ports=ports,
        environment=environment,
        max_concurrent_streams=max_concurrent_streams,
        team_id=team_id,
        key_id=key_id,
        existing_key=existing,
        bundle_id=bundle_id,
        lenient=lenient,
        other_port=other_port,
    )
    # entered by hand so that only the errors of starting become one-line messages
    try:
        stack = await serving.__aenter__()
    except ListenError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, CredentialsError) as exc:  # an unreadable key file left in DIR
        raise click.ClickException(f"--dir {directory}: {exc}") from None
    try:
        async with contextlib.AsyncExitStack() as inbox_stack:
            inbox_url = None
            if inbox_port is not None:
                try:
                    # local-only whatever --host says: the page scripts devices and shows payloads
                    inbox_url = await inbox_stack.enter_async_context(
                        serve_inbox(Inbox.for_stack(stack), host="127.0.0.1", port=inbox_port)
                    )
                except InboxListenError as exc:
                    raise click.ClickException(f"--inbox-port: {exc.strerror}") from None
            app = re.sub(r"[^a-z0-9_-]", "", bundle_id.rsplit(".", 1)[-1].lower()) or "myapp"
            # before the banner: whoever reads it may signal us at once
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
                    loop.add_signal_handler(signum, stop.set)
            _banner(stack, app, inbox_url)
            await stop.wait()
    finally:
        await serving.__aexit__(None, None, None)
    stats = stack.apns.stats
    rejected = sum(stats.rejected.values())
    fcm = sum(stack.fcm.stats.values())
    web = sum(stack.web.stats.values())
    click.echo(
        f"Stopped. APNs: {stats.requests} requests, {stats.accepted} accepted, {rejected} rejected; "
        f"FCM: {fcm} requests; Web Push: {web} requests."
    )


def _banner(stack: SandboxStack, app: str, inbox_url: str | None) -> None:
    apns, fcm, web = stack.apns, stack.fcm, stack.web
    click.echo(f"pushrelay APNs sandbox ({apns.environment}) listening on {apns.url}")
    click.echo(f"  CA certificate : {apns.ca_file}   (trust it; TLS verification stays on)")
    click.echo(f"  signing key    : {stack.key_file}   (team {stack.team_id}, key id {stack.key_id})")
    click.echo(f"  topic          : {stack.bundle_id}")
    click.echo(f"  control API    : {apns.url}/_sandbox/stats   (see docs/sandbox.md)")
    if apns.lenient:
        click.echo("  device tokens  : lenient: any 64+ hex digits, any topic, any environment")
    else:
        click.echo("  device tokens  : issued by the sandbox, bound to the topic and the environment:")
        click.echo(
            f'    curl --cacert {apns.ca_file} -d \'{{"topic": "{stack.bundle_id}", '
            f'"environment": "{apns.environment}"}}\' {apns.url}/_sandbox/devices'
        )
    other = stack.apns_other
    if other is not None:
        click.echo(f"pushrelay APNs sandbox ({other.environment}) listening on {other.url}")
        click.echo(f"  CA certificate : {other.ca_file}   (same key, topic and issued device tokens)")
    click.echo(f"pushrelay FCM sandbox listening on {fcm.url}   (OAuth token endpoint {fcm.token_uri})")
    click.echo(f"  CA certificate : {fcm.ca_file}")
    click.echo(f"  service account: {stack.service_account_file}   (project {stack.project_id})")
    click.echo(f"  control API    : {fcm.url}/_sandbox/received   (see docs/fcm.md)")
    click.echo(f"pushrelay Web Push sandbox listening on {web.url}")
    click.echo(f"  CA certificate : {web.ca_file}")
    click.echo(f"  VAPID key      : {stack.vapid_key_file}")
    click.echo(f"  public key     : {stack.vapid_public_key}   (applicationServerKey)")
    click.echo(f"  subscriptions  : POST {web.url}/_sandbox/subscriptions   (see docs/webpush.md)")
    if inbox_url is not None:
        click.echo("Inbox (every device and what it received, in your browser):")
        click.echo(inbox_url)
    click.echo("")
    click.echo("Configuration for pushrelay.toml:")
    click.echo("")
    click.echo(stack.app_toml(app).rstrip("\n"))
    click.echo("")
    click.echo("Press Ctrl-C to stop.")


def _ports(port: int, fcm_port: int | None, webpush_port: int | None) -> tuple[int, int, int]:
    """The FCM and Web Push sandboxes follow the APNs port (9443, 9444, 9445) unless given;
    with --port 0 every sandbox takes a free port."""
    follow = (lambda n: 0) if port == 0 else (lambda n: port + n)
    ports = (
        port,
        follow(1) if fcm_port is None else fcm_port,
        follow(2) if webpush_port is None else webpush_port,
    )
    if any(p > 65535 for p in ports):
        raise click.BadParameter(
            "the FCM and Web Push ports follow --port: give --fcm-port and --webpush-port"
        )
    return ports


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=9443, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option(
    "--dir",
    "directory",
    default="./pushrelay-sandbox",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the CAs and the sandbox app's keys (AuthKey_<KEYID>.p8, service account, VAPID key) go.",
)
@click.option(
    "--environment", type=click.Choice(["production", "development"]), default="production", show_default=True
)
@click.option(
    "--team-id",
    default="TEAM123456",
    show_default=True,
    callback=_check(_ID_RE, "TEAM123456"),
    help="Team whose key signs provider tokens.",
)
@click.option(
    "--key-id",
    default=None,
    callback=_check(_ID_RE, "ABC123DEFG"),
    help="Key id (default: the AuthKey_*.p8 already in DIR, or 10 new characters).",
)
@click.option(
    "--bundle-id",
    default="com.sample.myappname",
    show_default=True,
    callback=_check(_BUNDLE_RE, "com.sample.myappname"),
    help="App the team may push to.",
)
@click.option("--max-concurrent-streams", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--fcm-port", default=None, type=click.IntRange(0, 65535), help="FCM sandbox port [default: --port + 1]."
)
@click.option(
    "--webpush-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Web Push sandbox port [default: --port + 2].",
)
@click.option(
    "--inbox-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Port of the inbox web page on 127.0.0.1 [default: --port + 3].",
)
@click.option("--no-inbox", is_flag=True, help="Do not serve the inbox web page.")
@click.option(
    "--other-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Port of the APNs sandbox of the other environment [default: --port + 4].",
)
@click.option("--no-other", is_flag=True, help="Serve APNs in the --environment only.")
@click.option(
    "--lenient",
    is_flag=True,
    help="APNs: accept any well-formed device token on any topic (default: only tokens issued by "
    "POST /_sandbox/devices, for their app and environment, as Apple does).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every rejected request and scripted answer.")
def sandbox(
    host: str,
    port: int,
    directory: Path,
    environment: str,
    team_id: str,
    key_id: str | None,
    bundle_id: str,
    max_concurrent_streams: int,
    fcm_port: int | None,
    webpush_port: int | None,
    inbox_port: int | None,
    no_inbox: bool,
    other_port: int | None,
    no_other: bool,
    lenient: bool,
    verbose: bool,
) -> None:
    """Run local APNs, FCM (with its OAuth endpoint) and Web Push sandboxes over HTTPS.

    They check what Apple, Google and the browsers' push services check. DIR receives throw-away
    CAs and the credentials of a sandbox app (an APNs key, a Firebase service account, a VAPID
    key); the command prints the endpoints and the pushrelay.toml tables for that app, and serves
    until Ctrl-C or SIGTERM. Drive the sandboxes from tests with their /_sandbox control APIs.
    The inbox page (on 127.0.0.1 only) shows every device and what it received or was refused.
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    directory = directory.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"--dir {directory}: cannot create it ({exc.strerror or exc})") from None
    existing = _existing_key(directory, key_id)
    ports = _ports(port, fcm_port, webpush_port)
    if no_inbox:
        inbox_port = None
    elif inbox_port is None:
        inbox_port = 0 if port == 0 else port + 3
        if inbox_port > 65535:
            raise click.BadParameter("the inbox port follows --port: give --inbox-port (or --no-inbox)")
    if no_other:
        other_port = None
    elif other_port is None:
        other_port = 0 if port == 0 else port + 4
        if other_port > 65535:
            raise click.BadParameter("the other APNs port follows --port: give --other-port (or --no-other)")
    try:
        asyncio.run(
            _serve(
                host=host,
                ports=ports,
                directory=directory,
                environment=environment,
                team_id=team_id,
                key_id=key_id,
                existing=existing,
                bundle_id=bundle_id,
                max_concurrent_streams=max_concurrent_streams,
                inbox_port=inbox_port,
                lenient=lenient,
                other_port=other_port,
            )
        )
    except KeyboardInterrupt:  # only where signal handlers are unavailable
        click.echo("Stopped.")
