"""What an error that stopped one notification's work says about it, and whether to try again.

A notification whose expansion or rendering raises is *poison*: it must fail alone, with a
reason an operator can read, and never hold up the notifications claimed with it. A database that
is away is not poison: the work goes back to the queue and is tried again.
"""

from __future__ import annotations

import re

from sqlalchemy import exc as sa_exc

__all__ = ["describe_error", "is_transient"]

# long hex or base64url runs: device tokens, keys, signatures that an exception may quote
_LONG_SECRET = re.compile(r"[0-9A-Za-z_\-]{32,}")


def describe_error(exc: BaseException, limit: int = 200) -> str:
    """``Class: first line of the message``, for a recorded reason or a log line.

    SQLAlchemy's text of a failed statement adds the SQL and its parameters (e-mail addresses,
    tokens): only the driver's own error is kept. Long token-like runs are cut to their ends."""
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig is not None else exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    text = _LONG_SECRET.sub(lambda m: f"{m.group()[:6]}…{m.group()[-4:]}", text)
    described = f"{type(orig).__name__}: {text}" if text else type(orig).__name__
    return described[:limit]


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached or was busy (try again later),
    False when the work itself is at fault (fail it)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError | sa_exc.TimeoutError,
    )
