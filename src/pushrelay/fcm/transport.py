"""The HTTP seam of the FCM client: ``post(path, headers, body) -> HttpResponse``.

The client needs nothing more from HTTP, so any multiplexing HTTP/2 client can sit behind
:class:`Transport`. :class:`Http2Transport` (pushrelay's own HTTP/2 pool, the default) multiplexes
hundreds of streams per connection; :class:`HttpxTransport` is the portable alternative (HTTP/2 or
1.1 through httpx, much slower under load). Both raise only pushrelay's :class:`TransportError`
tree, which the client turns into ``retry`` outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from .._exceptions import ConnectError, ConnectionLostError, ProtocolError, RequestTimeout, TransportError
from ..http2 import Http2Pool
from ..tls import client_ssl_context

__all__ = ["Http2Transport", "HttpResponse", "HttpxTransport", "Transport"]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class Transport(Protocol):
    """One origin, many concurrent requests."""

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> HttpResponse: ...

    async def aclose(self) -> None: ...


class Http2Transport:
    """pushrelay's HTTP/2 pool: multiplexed streams, more connections when the streams run out."""

    # Sent on every request with the same value: worth a slot in the HPACK dynamic table.
    _INDEXABLE = frozenset({b":authority", b":path", b"authorization", b"content-type"})

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str | Path | None = None,
        timeout: float = 10.0,
        connections: int = 4,
    ) -> None:
        self._pool = Http2Pool(
            base_url,
            client_ssl_context(ca_file=ca_file, alpn=("h2",)),
            connections=connections,
            indexable_headers=self._INDEXABLE,
            request_timeout=timeout,
        )
        self._static = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", self._pool.authority)]

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> HttpResponse:
        request_headers = [*self._static, (b":path", path.encode())]
        request_headers.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
        request_headers.append((b"content-length", str(len(body)).encode()))
        response = await self._pool.request(request_headers, body)
        return HttpResponse(
            response.status,
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers},
            response.body,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()  # waits for the TLS close exchange of every connection


class HttpxTransport:
    """httpx over HTTP/2 (multiplexed streams on few connections), TLS verification always on."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str | Path | None = None,
        http2: bool = True,
        timeout: float = 10.0,
        max_connections: int = 10,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            http2=http2,
            verify=client_ssl_context(ca_file=ca_file, alpn=()),  # httpx sets ALPN itself
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> HttpResponse:
        try:
            response = await self._client.post(path, headers=headers, content=body)
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"no answer from FCM in time ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            raise ConnectError(f"cannot connect to FCM: {exc}") from None
        except httpx.RemoteProtocolError as exc:
            raise ProtocolError(f"FCM broke HTTP: {exc}") from None
        except (httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
            raise ConnectionLostError(f"the connection to FCM was lost: {exc}") from None
        except httpx.TransportError as exc:
            raise TransportError(f"{type(exc).__name__} talking to FCM: {exc}") from None
        return HttpResponse(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        await self._client.aclose()
