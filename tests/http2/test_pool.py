"""Connection liveness: idle connections are PINGed; a connection whose PING goes unanswered is
dropped, and its requests come back as ``retry`` at once (the server may have processed them: only
the outbox retries)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pushrelay import Notification, Outcome
from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.sandbox import ApnsSandbox
from pushrelay.sandbox.tls import CertificateAuthority, server_ssl_context

TEAM, BUNDLE = "TEAM123456", "com.sample.myappname"
NOTE = Notification(title="t", body="b")


async def test_idle_connection_is_pinged_and_kept(tmp_path: Path) -> None:
    async with ApnsSandbox(directory=tmp_path / "sb") as sb:
        sb.add_topic(BUNDLE, TEAM)
        token = sb.issue_token(BUNDLE)
        auth = TokenAuth.from_file(sb.create_key(TEAM, "PINGKEY001", tmp_path), team_id=TEAM)
        async with ApnsClient(
            auth, topic=BUNDLE, endpoint=sb.url, ca_file=sb.ca_file, ping_interval=0.2
        ) as c:
            assert (await c.send(NOTE, token)).ok
            await asyncio.sleep(1.0)
            assert (await c.send(NOTE, token)).ok
            stats = c.pool.stats
        assert stats.pings >= 2 and stats.ping_timeouts == 0
        assert stats.connections_opened == 1


EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture(params=[False, True], ids=["silent", "settings-then-silent"])
async def black_hole(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, Path, bool]]:
    """A TLS server that speaks ALPN h2 and then answers nothing (or only its SETTINGS)."""
    greets = bool(request.param)
    ca = CertificateAuthority.generate()
    material = ca.write_server_material(tmp_path, ["127.0.0.1"])
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if greets:
            writer.write(EMPTY_SETTINGS)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0, ssl=server_ssl_context(material))
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}", material.ca_file, greets
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()


async def test_a_server_that_stops_answering_loses_nothing_silently(
    black_hole: tuple[str, Path, bool],
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    url, ca_file, greets = black_hole
    auth = TokenAuth(ec.generate_private_key(ec.SECP256R1()), key_id="PINGKEY002", team_id=TEAM)
    async with ApnsClient(
        auth,
        topic=BUNDLE,
        endpoint=url,
        ca_file=ca_file,
        ping_interval=0.2,
        request_timeout=30,
    ) as client:
        client.pool.ping_timeout = client.pool.connect_timeout = 0.2
        client.pool.backoff_base = 0.01
        result = await client.send(NOTE, "cd" * 32)
        stats = client.pool.stats
    assert (result.outcome, result.status) == (Outcome.RETRY, 0)
    if greets:
        # the request went out, the PING was never answered: dropped, and returned, not resent
        assert result.reason is not None and result.reason.startswith("ConnectionLostError")
        assert stats.ping_timeouts == 1 and stats.connections_opened == 1
        assert stats.resent_unprocessed == 0
    else:
        # no SETTINGS ever came: the request never left, and ends as a connect failure
        assert result.reason is not None and "sent no HTTP/2 SETTINGS" in result.reason
        assert stats.connect_failures == 4 and stats.ping_timeouts == 0
