"""``pushrelay sandbox``: run the local APNs sandbox until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..sandbox import ApnsSandbox

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


def _toml_snippet(app: str, sb: ApnsSandbox, bundle_id: str, team_id: str, key_file: Path) -> str:
    # json.dumps gives TOML-compatible basic strings (quotes and backslashes escaped).
    return "\n".join(
        [
            f"[apps.{app}]",
            f"bundle_id = {json.dumps(bundle_id)}",
            "",
            f"[apps.{app}.apns]",
            f"team_id = {json.dumps(team_id)}",
            f"key_file = {json.dumps(str(key_file))}",
            f"environment = {json.dumps(sb.environment)}",
            f"endpoint = {json.dumps(sb.url)}",
            f"ca_file = {json.dumps(str(sb.ca_file))}",
        ]
    )


async def _serve(
    *,
    host: str,
    port: int,
    directory: Path,
    environment: str,
    team_id: str,
    key_id: str | None,
    existing: tuple[str, ec.EllipticCurvePublicKey] | None,
    bundle_id: str,
    max_concurrent_streams: int,
) -> None:
    sb = ApnsSandbox(
        environment="development" if environment == "development" else "production",
        host=host,
        port=port,
        max_concurrent_streams=max_concurrent_streams,
        directory=directory,
    )
    try:
        await sb.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        if existing is not None:
            key_id, public_key = existing
            sb.register_key(team_id, key_id, public_key)
            key_file = directory / f"AuthKey_{key_id}.p8"
        else:
            key_file = sb.create_key(team_id, key_id, directory)
            key_id = key_file.stem.removeprefix("AuthKey_")
        sb.add_topic(bundle_id, team_id)
        app = re.sub(r"[^a-z0-9_-]", "", bundle_id.rsplit(".", 1)[-1].lower()) or "myapp"

        # before the banner: whoever reads it may signal us at once
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
                loop.add_signal_handler(signum, stop.set)
        click.echo(f"pushrelay APNs sandbox ({sb.environment}) listening on {sb.url}")
        click.echo(f"  CA certificate : {sb.ca_file}   (trust it; TLS verification stays on)")
        click.echo(f"  signing key    : {key_file}   (team {team_id}, key id {key_id})")
        click.echo(f"  topic          : {bundle_id}")
        click.echo(f"  control API    : {sb.url}/_sandbox/stats   (see docs/sandbox.md)")
        click.echo("")
        click.echo("Configuration for pushrelay.toml:")
        click.echo("")
        click.echo(_toml_snippet(app, sb, bundle_id, team_id, key_file))
        click.echo("")
        click.echo("Press Ctrl-C to stop.")

        await stop.wait()
    finally:
        await sb.stop()
    stats = sb.stats
    rejected = sum(stats.rejected.values())
    click.echo(f"Stopped. {stats.requests} requests: {stats.accepted} accepted, {rejected} rejected.")


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
    help="Where ca.pem and AuthKey_<KEYID>.p8 are written.",
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
    verbose: bool,
) -> None:
    """Run a local APNs-compatible server (HTTP/2 over TLS) with Apple's validation rules.

    It writes a throw-away CA and a signing key into DIR, prints the endpoint and a configuration
    snippet, and serves until Ctrl-C or SIGTERM. Drive it from tests with the /_sandbox control API.
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    directory = directory.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"--dir {directory}: cannot create it ({exc.strerror or exc})") from None
    existing = _existing_key(directory, key_id)
    try:
        asyncio.run(
            _serve(
                host=host,
                port=port,
                directory=directory,
                environment=environment,
                team_id=team_id,
                key_id=key_id,
                existing=existing,
                bundle_id=bundle_id,
                max_concurrent_streams=max_concurrent_streams,
            )
        )
    except KeyboardInterrupt:  # only where signal handlers are unavailable
        click.echo("Stopped.")
