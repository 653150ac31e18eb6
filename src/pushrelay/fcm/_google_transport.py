"""A ``google.auth.transport.Request`` over httpx, so google-auth needs neither requests nor urllib3.

google-auth calls it synchronously from its token refresh (which pushrelay runs in a worker thread);
it speaks HTTP/1.1 to the token endpoint with TLS verification always on.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import httpx
from google.auth import exceptions as google_exceptions
from google.auth import transport as google_transport

__all__ = ["HttpxRequest"]


class _Response(google_transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(google_transport.Request):
    """Make one HTTP request for google-auth; transport failures become its TransportError."""

    def __init__(self, verify: ssl.SSLContext, *, timeout: float = 30.0) -> None:
        self._verify = verify
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        try:
            with httpx.Client(verify=self._verify, timeout=timeout or self._timeout) as client:
                response = client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # The URL is the token endpoint (no secret in it); the body (the signed grant) is never shown.
            raise google_exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"{type(exc).__name__} calling the OAuth token endpoint {url}: {exc}"
            ) from None
        return _Response(response)
