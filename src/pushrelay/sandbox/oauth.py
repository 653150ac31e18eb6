"""A fake Google OAuth2 token endpoint: the JWT-bearer grant of service accounts.

It checks what Google checks before handing out an access token for FCM: the grant type, a JWT
signed (RS256) with the private key of a service account it issued, ``iss`` = the account's email,
``aud`` = the token endpoint, a ``scope`` including ``firebase.messaging`` (or ``cloud-platform``),
and ``iat`` / ``exp`` at most an hour apart and around now. The tokens it mints are what the fake
FCM endpoint accepts as ``Authorization: Bearer``.

:class:`OAuthTokenService` is the protocol logic (mounted by :class:`~pushrelay.sandbox.fcm.FcmSandbox`
on its own port); :class:`OAuthSandbox` runs it alone over HTTPS (HTTP/1.1 or HTTP/2)::

    async with OAuthSandbox() as oauth:
        key_file = oauth.create_service_account(tmp_path, project_id="demo")
        ...  # ServiceAccount.from_file(key_file, ca_file=oauth.ca_file)
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .https_sandbox import HttpsSandbox
from .server import Handler, Request, Response

__all__ = ["FCM_SCOPES", "GOOGLE_TOKEN_AUDIENCE", "OAuthSandbox", "OAuthTokenService", "TokenGrant"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: google-auth always puts Google's own endpoint in ``aud``, whatever ``token_uri`` it posts to.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
FCM_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/firebase.messaging", "https://www.googleapis.com/auth/cloud-platform"}
)
_JSON = ("content-type", "application/json")
_MAX_ASSERTION_LIFETIME = 3600
_CLOCK_SKEW = 300


@dataclass(frozen=True, slots=True)
class _Account:
    email: str
    project_id: str
    key_id: str
    public_key: rsa.RSAPublicKey


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """An access token this endpoint minted."""

    client_email: str
    project_id: str
    scopes: frozenset[str]
    expires_at: float


class OAuthTokenService:
    """Service accounts, the token endpoint handler, and the check of ``Authorization: Bearer``."""

    def __init__(self, *, token_lifetime: int = 3600, clock: Callable[[], float] = time.time) -> None:
        self.token_lifetime = token_lifetime
        self._clock = clock
        self._accounts: dict[str, _Account] = {}
        self._tokens: dict[str, TokenGrant] = {}
        #: Token requests answered, refused ones included.
        self.requests = 0
        #: Access tokens minted.
        self.issued = 0
        #: Why each refused grant was refused, in order.
        self.refusals: list[str] = []

    # -- service accounts ------------------------------------------------------------------------
    def create_service_account(
        self,
        directory: str | Path,
        *,
        project_id: str,
        token_uri: str,
        name: str | None = None,
        filename: str | None = None,
    ) -> Path:
        """Write a service-account JSON key whose grants this endpoint accepts; return its path
        (``filename`` in ``directory``, default ``<project>-<key id>.json``).

        Every call makes a new account (``name``, default ``pushrelay``, ``pushrelay-2``...) with
        its own RSA key.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        base, n = name or "pushrelay", 1
        email = f"{base}@{project_id}.iam.gserviceaccount.com"
        while email in self._accounts:
            if name is not None:
                raise ValueError(f"name: the service account {email} exists already")
            n += 1
            email = f"{base}-{n}@{project_id}.iam.gserviceaccount.com"
        self._accounts[email] = _Account(email, project_id, key_id, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "universe_domain": "googleapis.com",
        }
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / (filename or f"{project_id}-{key_id[:12]}.json")
        path.write_text(json.dumps(info, indent=2))
        path.chmod(0o600)
        return path

    def register_service_account(self, path: str | Path) -> str:
        """Accept grants signed with the key of an existing service-account file (one this sandbox
        wrote in an earlier run, so that a pasted configuration keeps working); its email back.

        Raises ValueError naming the file when it is not a service-account key with an RSA key.
        """
        try:
            info = json.loads(Path(path).read_text(encoding="utf-8"))
            private_key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
            account = _Account(
                str(info["client_email"]),
                str(info["project_id"]),
                str(info["private_key_id"]),
                private_key.public_key(),  # type: ignore[arg-type]
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a readable service-account key ({type(exc).__name__})") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"{path}: the private_key is not an RSA key")
        self._accounts[account.email] = account
        return account.email

    def revoke_all(self, client_email: str | None = None) -> None:
        """Forget the tokens minted so far (as if revoked), of one account or of all: the next FCM
        request with one of them gets 401."""
        self._tokens = {
            token: grant
            for token, grant in self._tokens.items()
            if client_email is not None and grant.client_email != client_email
        }

    def reset_counters(self) -> None:
        """Zero ``requests``, ``issued`` and ``refusals`` (accounts and valid tokens stay)."""
        self.requests = self.issued = 0
        self.refusals = []

    def grants(self) -> list[TokenGrant]:
        return list(self._tokens.values())

    # -- the token endpoint ----------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        self.requests += 1
        if request.method != "POST":
            return _oauth_error(405, "invalid_request", "the token endpoint takes POST")
        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        grant_type = form.get("grant_type", [""])[0]
        assertion = form.get("assertion", [""])[0]
        if grant_type != JWT_BEARER:
            return self._refuse("unsupported_grant_type", f"grant_type must be {JWT_BEARER}")
        if not assertion:
            return self._refuse("invalid_request", "assertion is missing")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return self._refuse("invalid_grant", "Invalid JWT: the assertion is not a JWT")
        account = self._accounts.get(str(unverified.get("iss", "")))
        if account is None:
            return self._refuse("invalid_grant", "Invalid grant: account not found")
        if header.get("alg") != "RS256":
            return self._refuse("invalid_grant", "Invalid JWT: the assertion must be signed with RS256")
        if header.get("kid") not in (None, account.key_id):
            return self._refuse("invalid_grant", "Invalid JWT Signature.")
        try:
            claims = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                audience=[GOOGLE_TOKEN_AUDIENCE, *self._own_audiences(request)],
                options={"require": ["iss", "aud", "iat", "exp"], "verify_iat": False, "verify_exp": False},
            )
        except jwt.InvalidSignatureError:
            return self._refuse("invalid_grant", "Invalid JWT Signature.")
        except jwt.InvalidAudienceError:
            return self._refuse("invalid_grant", "Invalid JWT: aud must be the token endpoint")
        except jwt.PyJWTError as exc:
            return self._refuse("invalid_grant", f"Invalid JWT: {exc}")
        now = self._clock()
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            return self._refuse("invalid_grant", "Invalid JWT: iat and exp must be numbers")
        if exp - iat > _MAX_ASSERTION_LIFETIME or exp <= iat:
            return self._refuse("invalid_grant", "Invalid JWT: exp must be after iat, at most 1 hour later")
        if iat > now + _CLOCK_SKEW or exp < now - _CLOCK_SKEW:
            return self._refuse(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
            )
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes & FCM_SCOPES:
            return self._refuse(
                "invalid_scope", "the scope must include https://www.googleapis.com/auth/firebase.messaging"
            )
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        self._tokens[token] = TokenGrant(account.email, account.project_id, scopes, now + self.token_lifetime)
        self.issued += 1
        body = {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        return Response(200, [_JSON], json.dumps(body).encode())

    def check_bearer(self, authorization: str | None) -> TokenGrant | str:
        """The grant behind ``Authorization: Bearer <token>``, or why it is refused."""
        if not authorization or not authorization.startswith("Bearer "):
            return "Request is missing required authentication credential. Expected OAuth 2 access token."
        grant = self._tokens.get(authorization[len("Bearer ") :].strip())
        if grant is None:
            return "Request had invalid authentication credentials. Expected OAuth 2 access token."
        if grant.expires_at <= self._clock():
            return "Request had invalid authentication credentials: the access token expired."
        return grant

    @staticmethod
    def _own_audiences(request: Request) -> list[str]:
        host = request.header("host")  # HTTP/1.1 only; google-auth uses GOOGLE_TOKEN_AUDIENCE anyway
        return [f"https://{host}{request.path.split('?')[0]}"] if host else []

    def _refuse(self, error: str, description: str) -> Response:
        self.refusals.append(f"{error}: {description}")
        return _oauth_error(400 if error != "invalid_client" else 401, error, description)


def _oauth_error(status: int, error: str, description: str) -> Response:
    body = {"error": error, "error_description": description}
    return Response(status, [_JSON], json.dumps(body).encode())


class OAuthSandbox(HttpsSandbox):
    """The token endpoint alone, over HTTPS on 127.0.0.1 (``url`` + ``/token``)."""

    kind = "OAuth"

    def __init__(
        self,
        *,
        token_lifetime: int = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
        directory: str | Path | None = None,
    ) -> None:
        """``directory``: where the TLS material (``ca.pem``...) goes; a temporary one by default."""
        super().__init__(host=host, port=port, directory=directory)
        self.service = OAuthTokenService(token_lifetime=token_lifetime)

    def routes(self) -> dict[str, Handler]:
        return {"/token": self.service.handle}

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def create_service_account(self, directory: str | Path, *, project_id: str = "pushrelay-sandbox") -> Path:
        return self.service.create_service_account(directory, project_id=project_id, token_uri=self.token_uri)
