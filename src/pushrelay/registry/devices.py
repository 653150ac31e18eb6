"""The device registry: register, look up, stream, retire and prune devices.

Every public method opens its own short transaction, and long reads (streaming every device of
an app) go page by page with keyset pagination (``WHERE id > last ORDER BY id LIMIT n``), each
page in its own transaction. Memory stays bounded by the page size, and no read transaction stays
open for minutes (on SQLite that would stop the WAL from being checkpointed; on PostgreSQL it
would hold back vacuum).

Results are plain frozen :class:`DeviceRecord` values, detached from any session. Their ``repr``
masks the token.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import Database
from . import bulk
from .models import TOKEN_PREFIX_LENGTH, Device
from .models import token_prefix as token_prefix_of
from .tokens import (
    ENVIRONMENTS,
    PLATFORMS,
    InvalidDeviceError,
    check_time_zone,
    is_apns_token,
    is_email,
    is_simulator_id,
    mask_token,
    normalize_email,
    normalize_token,
    token_hash,
    validate_web_keys,
)

__all__ = [
    "DeviceInfo",
    "DevicePage",
    "DeviceRecord",
    "DeviceRegistry",
    "Registration",
    "RegistrationStatus",
]

RegistrationStatus = Literal["created", "updated", "unchanged"]

# Values per IN (...) list. SQLite before 3.32 allows 999 bound parameters per statement;
# 500 leaves room for the other conditions and keeps PostgreSQL plans simple.
IN_CHUNK = 500
PAGE_SIZE = 1000

_TABLE = cast(sa.Table, Device.__table__)
_COLUMNS = _TABLE.c


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One registered device, as stored."""

    id: int
    app: str
    platform: str
    token: str = dataclasses.field(repr=False)
    environment: str | None
    email: str | None
    language: str | None
    time_zone: str | None
    app_version: str | None
    os: str | None
    os_version: str | None
    device_model: str | None
    device_id: str | None
    simulator: bool
    web_p256dh: str | None = dataclasses.field(repr=False)
    web_auth: str | None = dataclasses.field(repr=False)
    created_at: datetime
    last_seen_at: datetime
    active: bool
    retired_at: datetime | None
    retired_reason: str | None

    @property
    def masked_token(self) -> str:
        return mask_token(self.token)

    def __repr__(self) -> str:
        state = "active" if self.active else f"retired ({self.retired_reason})"
        return (
            f"DeviceRecord(id={self.id}, app={self.app!r}, platform={self.platform!r}, "
            f"token={self.masked_token!r}, email={self.email!r}, {state})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields. Includes the full token: for the device's owner, not for logs."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            d[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return d

    @classmethod
    def _from_row(cls, row: Row[Any]) -> DeviceRecord:
        return cls._from_mapping(row._mapping)

    @classmethod
    def _from_mapping(cls, m: Mapping[Any, Any]) -> DeviceRecord:
        return cls(**{f.name: m[f.name] for f in _RECORD_FIELDS})


_RECORD_FIELDS = dataclasses.fields(DeviceRecord)


@dataclass(frozen=True, slots=True)
class DevicePage:
    """One page of :meth:`DeviceRegistry.page`; ``next_after`` (the last id) asks for the next one,
    None when this page is the last."""

    items: list[DeviceRecord]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What one registration says about a device. :meth:`validated` checks and normalises it."""

    app: str
    token: str = dataclasses.field(repr=False)
    platform: str = "ios"
    email: str | None = None
    environment: str | None = None
    language: str | None = None
    time_zone: str | None = None
    """IANA time zone name (``Europe/Paris``), checked against the zone database."""
    app_version: str | None = None
    os: str | None = None
    os_version: str | None = None
    device_model: str | None = None
    device_id: str | None = None
    simulator: bool = False
    web_p256dh: str | None = dataclasses.field(default=None, repr=False)
    web_auth: str | None = dataclasses.field(default=None, repr=False)
    seen_at: datetime | None = None
    """When the device registered (defaults to now). An older registration than the one stored
    changes nothing: importing an old 4D session file cannot undo a newer registration."""

    def validated(self) -> DeviceInfo:
        if not isinstance(self.app, str) or not self.app.strip():
            raise InvalidDeviceError("app must be a non-empty name", field="app")
        if self.platform not in PLATFORMS:
            raise InvalidDeviceError(
                f"platform must be one of {', '.join(PLATFORMS)}, got {self.platform!r}", field="platform"
            )
        simulator = bool(self.simulator) or (self.platform == "ios" and is_simulator_id(self.token))
        token = normalize_token(self.platform, self.token, simulator=simulator)
        environment = self.environment
        if environment is not None:
            if self.platform != "ios":
                raise InvalidDeviceError(
                    "environment (APNs production/development) applies to iOS devices only",
                    field="environment",
                )
            if environment not in ENVIRONMENTS:
                raise InvalidDeviceError(
                    f"environment must be 'production' or 'development', got {environment!r}",
                    field="environment",
                )
        email = self.email.strip() if isinstance(self.email, str) else self.email
        if email == "":
            email = None
        if email is not None and not (isinstance(email, str) and is_email(email)):
            raise InvalidDeviceError(f"email is not an e-mail address: {email!r}", field="email")
        p256dh, auth = self.web_p256dh, self.web_auth
        if self.platform == "web":
            p256dh, auth = validate_web_keys(p256dh, auth)
        elif p256dh is not None or auth is not None:
            raise InvalidDeviceError("web_p256dh / web_auth apply to web devices only", field="web_p256dh")
        seen_at = self.seen_at
        if seen_at is not None and seen_at.tzinfo is None:
            raise InvalidDeviceError("seen_at must be timezone-aware", field="seen_at")
        time_zone = self.time_zone
        if time_zone is not None:
            time_zone = check_time_zone(time_zone)
        for name, limit in _TEXT_LIMITS.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise InvalidDeviceError(f"{name} must be a text of at most {limit} characters", field=name)
        return dataclasses.replace(
            self,
            app=self.app.strip(),
            token=token,
            email=email,
            time_zone=time_zone,
            simulator=simulator,
            web_p256dh=p256dh,
            web_auth=auth,
        )

    def _values(self) -> dict[str, Any]:
        """Column values for the descriptive fields (everything a registration replaces)."""
        return {
            "platform": self.platform,
            "environment": self.environment,
            "email": self.email,
            "email_norm": normalize_email(self.email) if self.email else None,
            "language": self.language,
            "time_zone": self.time_zone,
            "app_version": self.app_version,
            "os": self.os,
            "os_version": self.os_version,
            "device_model": self.device_model,
            "device_id": self.device_id,
            "simulator": self.simulator,
            "web_p256dh": self.web_p256dh,
            "web_auth": self.web_auth,
        }


_TEXT_LIMITS = {
    "language": 35,
    "time_zone": 64,
    "app_version": 64,
    "os": 32,
    "os_version": 64,
    "device_model": 128,
    "device_id": 128,
}


@dataclass(frozen=True, slots=True)
class Registration:
    """What :meth:`DeviceRegistry.register` did."""

    device: DeviceRecord
    status: RegistrationStatus
    reactivated: bool = False


def _lookup_forms(token: str) -> set[str]:
    """The stored forms a token given by a caller may have (APNs tokens are stored lower-case
    without decoration, simulator UDIDs upper-case)."""
    t = token.strip()
    forms = {t}
    if is_apns_token(t):
        forms.add(normalize_token("ios", t))
    if is_simulator_id(t):
        forms.add(normalize_token("ios", t, simulator=True))
    return forms


def _prefix_range(prefix: str) -> list[sa.ColumnElement[bool]]:
    """Conditions for "the token starts with ``prefix``" that the ``(app, token_prefix)`` index
    answers as a range (LIKE could not use it: case-insensitive on SQLite, collation-bound on
    PostgreSQL); the exact test follows for prefixes longer than the indexed part."""
    key = token_prefix_of(_COLUMNS.token)
    head = prefix[:TOKEN_PREFIX_LENGTH]
    conditions = [key >= head, _COLUMNS.token.startswith(prefix, autoescape=True)]
    if ord(head[-1]) < 0x10FFFF:  # the first string after every one that starts with head
        conditions.append(key < head[:-1] + chr(ord(head[-1]) + 1))
    return conditions


def _rowcount(session: Session, stmt: sa.Executable) -> int:
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class DeviceRegistry:
    """Devices of every app, in the database given as a :class:`~pushrelay.db.Database` or a URL
    (a URL opens, and migrates, a database owned by this registry: call :meth:`close`)."""

    def __init__(self, database: Database | str) -> None:
        self._owned = not isinstance(database, Database)
        self.db = Database(database) if isinstance(database, str) else database
        self._statistics_checked = False

    def close(self) -> None:
        if self._owned:
            self.db.dispose()

    def __enter__(self) -> DeviceRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registering ---------------------------------------------------------------------------
    def register(self, app: str, token: str, **fields: Any) -> Registration:
        """Register (or refresh) one device; see :class:`DeviceInfo` for the fields.

        The same token registered again for the same app updates the device: a registration
        states everything about the device (fields not given are cleared), the token moves to the
        e-mail address of the latest registration, and a retired device becomes active again.
        """
        return self.register_many([DeviceInfo(app=app, token=token, **fields)])[0]

    def register_many(self, infos: Iterable[DeviceInfo], *, chunk_size: int = IN_CHUNK) -> list[Registration]:
        """Register many devices, a chunk per transaction and a few statements per chunk
        (:mod:`.bulk`); results in input order.

        Every item is validated before its chunk touches the database: an invalid one raises
        :class:`InvalidDeviceError` and leaves the chunk unwritten.
        """
        results: list[Registration] = []
        for chunk in _chunks(infos, chunk_size):
            results.extend(self._register_valid([info.validated() for info in chunk]))
        return results

    def register_each(
        self, infos: Iterable[DeviceInfo], *, chunk_size: int = IN_CHUNK
    ) -> list[Registration | InvalidDeviceError]:
        """:meth:`register_many` where an invalid item does not stop the others: its place in the
        results holds its :class:`InvalidDeviceError` (what a batch endpoint answers per item)."""
        results: list[Registration | InvalidDeviceError] = []
        for chunk in _chunks(infos, chunk_size):
            checked: list[DeviceInfo | InvalidDeviceError] = []
            for info in chunk:
                try:
                    checked.append(info.validated())
                except InvalidDeviceError as exc:
                    checked.append(exc)
            done = iter(self._register_valid([c for c in checked if isinstance(c, DeviceInfo)]))
            results.extend(c if isinstance(c, InvalidDeviceError) else next(done) for c in checked)
        return results

    def _register_valid(self, infos: Sequence[DeviceInfo]) -> list[Registration]:
        if not infos:
            return []
        for attempt in range(5):
            try:
                with self.db.session() as session:
                    done = bulk.register_chunk(session, infos, _now())
                break
            except (bulk.RaceLost, IntegrityError):
                # Another process wrote one of these tokens between our SELECT and our INSERT:
                # run the chunk again; the row now exists and is updated instead.
                if attempt == 4:
                    raise
        if not self._statistics_checked:
            self._statistics_checked = True
            with self.db.session() as session:
                bulk.analyze_if_never(session)
        return [
            Registration(DeviceRecord._from_mapping(row), cast(RegistrationStatus, status), react)
            for row, status, react in done
        ]

    # -- reading -------------------------------------------------------------------------------
    def get(self, app: str, token: str) -> DeviceRecord | None:
        """The device of ``app`` with this token (in any of its accepted spellings)."""
        return self.find_tokens(app, [token]).get(token)

    def subscription_keys(self, app: str, endpoints: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """``{endpoint: (p256dh, auth)}`` of the registered Web Push subscriptions among ``endpoints``
        (what :class:`~pushrelay.providers.base.WebSubscriptionProvider` needs to encrypt)."""
        found = self.find_tokens(app, endpoints)
        return {endpoint: (d.web_p256dh, d.web_auth) for endpoint, d in found.items()}

    def find_tokens(self, app: str, tokens: Iterable[str]) -> dict[str, DeviceRecord]:
        """The registered devices among ``tokens``, keyed by the token text as given."""
        wanted: dict[str, list[str]] = {}
        for token in tokens:
            for form in _lookup_forms(token):
                wanted.setdefault(token_hash(form), []).append(token)
        found: dict[str, DeviceRecord] = {}
        for part in _chunks(wanted, IN_CHUNK):
            stmt = sa.select(_TABLE).where(_COLUMNS.app == app, _COLUMNS.token_hash.in_(part))
            with self.db.session() as session:
                for row in session.execute(stmt):
                    record = DeviceRecord._from_row(row)
                    for given in wanted[row.token_hash]:
                        found[given] = record
        return found

    def for_emails(
        self, app: str, emails: Iterable[str], *, platforms: Collection[str] | None = None
    ) -> Iterator[DeviceRecord]:
        """Every device (active or retired) registered by these e-mail addresses, compared
        case-insensitively, ordered by address then id, fetched ``IN_CHUNK`` addresses at a time."""
        norms = sorted({normalize_email(e) for e in emails if e and e.strip()})
        for part in _chunks(norms, IN_CHUNK):
            stmt = (
                sa.select(_TABLE)
                .where(_COLUMNS.app == app, _COLUMNS.email_norm.in_(part))
                .order_by(_COLUMNS.email_norm, _COLUMNS.id)
            )
            if platforms is not None:
                stmt = stmt.where(_COLUMNS.platform.in_(list(platforms)))
            with self.db.session() as session:
                rows = session.execute(stmt).all()
            yield from (DeviceRecord._from_row(r) for r in rows)

    def stream(
        self,
        app: str,
        *,
        platforms: Collection[str] | None = None,
        include_retired: bool = False,
        page_size: int = PAGE_SIZE,
        after: int = 0,
    ) -> Iterator[DeviceRecord]:
        """Every device of ``app`` in id order, one page (and one short transaction) at a time;
        ``after`` resumes after that device id (an interrupted fan-out)."""
        last_id = after
        while True:
            stmt = (
                sa.select(_TABLE)
                .where(_COLUMNS.app == app, _COLUMNS.id > last_id)
                .order_by(_COLUMNS.id)
                .limit(page_size)
            )
            if platforms is not None:
                stmt = stmt.where(_COLUMNS.platform.in_(list(platforms)))
            if not include_retired:
                stmt = stmt.where(_COLUMNS.active.is_(True))
            with self.db.session() as session:
                rows = session.execute(stmt).all()
            if not rows:
                return
            for row in rows:
                yield DeviceRecord._from_row(row)
            last_id = rows[-1].id

    def stream_columns(
        self,
        app: str,
        *,
        platforms: Collection[str] | None = None,
        page_size: int = PAGE_SIZE,
        after: int = 0,
    ) -> Iterator[list[tuple[int, str, str, str | None, str | None]]]:
        """:meth:`stream` of the active devices, but page by page, and of what a delivery needs only:
        ``(id, platform, token, environment, email)`` tuples. A send to every device reads the
        whole registry: making a :class:`DeviceRecord` of each row was the largest cost of the
        expansion after writing its deliveries."""
        last_id = after
        cols = (_COLUMNS.id, _COLUMNS.platform, _COLUMNS.token, _COLUMNS.environment, _COLUMNS.email)
        while True:
            stmt = (
                sa.select(*cols)
                .where(_COLUMNS.app == app, _COLUMNS.id > last_id, _COLUMNS.active.is_(True))
                .order_by(_COLUMNS.id)
                .limit(page_size)
            )
            if platforms is not None:
                stmt = stmt.where(_COLUMNS.platform.in_(list(platforms)))
            with self.db.engine.connect() as conn:
                rows = [tuple(r) for r in conn.execute(stmt)]
            if not rows:
                return
            yield rows
            last_id = rows[-1][0]

    def page(
        self,
        app: str,
        *,
        email: str | None = None,
        token_prefix: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> DevicePage:
        """One page of ``app``'s devices (active and retired) after the device ``after``, with
        keyset pagination so that a page deep into a million devices costs what the first one does.

        Without ``token_prefix``: in id order on ``(app, id)``; ``email`` is matched
        case-insensitively through ``(app, email_norm)``. With ``token_prefix`` (literal: ``%``
        and ``_`` are not wildcards): in token order, a range on the ``(app, token_prefix)``
        index, so that a prefix matching few of a million devices, or none, reads only those
        (in id order the database would walk every device of the app looking for them). The
        HTTP API's ``GET /v1/devices`` and the console's device search both read through here."""
        stmt = sa.select(_TABLE).where(_COLUMNS.app == app).limit(limit + 1)  # +1: is there more?
        if email is not None:
            stmt = stmt.where(_COLUMNS.email_norm == normalize_email(email))
        with self.db.session() as session:
            if token_prefix:
                key = token_prefix_of(_COLUMNS.token)
                stmt = stmt.where(*_prefix_range(token_prefix)).order_by(key, _COLUMNS.id)
                if after:
                    # the cursor is still a device id: continue after that device's (key, id)
                    last = session.execute(sa.select(key).where(_COLUMNS.id == after)).scalar()
                    if last is not None:
                        stmt = stmt.where(sa.tuple_(key, _COLUMNS.id) > sa.tuple_(last, after))
            else:
                stmt = stmt.where(_COLUMNS.id > after).order_by(_COLUMNS.id)
            rows = [DeviceRecord._from_row(r) for r in session.execute(stmt)]
        return DevicePage(rows[:limit], rows[limit - 1].id if len(rows) > limit else None)

    def count(
        self, app: str, *, platforms: Collection[str] | None = None, include_retired: bool = False
    ) -> int:
        stmt = sa.select(sa.func.count()).select_from(_TABLE).where(_COLUMNS.app == app)
        if platforms is not None:
            stmt = stmt.where(_COLUMNS.platform.in_(list(platforms)))
        if not include_retired:
            stmt = stmt.where(_COLUMNS.active.is_(True))
        with self.db.session() as session:
            return int(session.execute(stmt).scalar_one())

    def devices(
        self,
        *,
        app: str | None = None,
        email: str | None = None,
        include_retired: bool = True,
        limit: int | None = None,
    ) -> list[DeviceRecord]:
        """Devices for display, newest registration first."""
        stmt = sa.select(_TABLE).order_by(_COLUMNS.last_seen_at.desc(), _COLUMNS.id.desc())
        if app is not None:
            stmt = stmt.where(_COLUMNS.app == app)
        if email is not None:
            stmt = stmt.where(_COLUMNS.email_norm == normalize_email(email))
        if not include_retired:
            stmt = stmt.where(_COLUMNS.active.is_(True))
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.db.session() as session:
            return [DeviceRecord._from_row(r) for r in session.execute(stmt)]

    def apps(self) -> dict[str, int]:
        """Active device count per app name found in the registry."""
        stmt = (
            sa.select(_COLUMNS.app, sa.func.count())
            .where(_COLUMNS.active.is_(True))
            .group_by(_COLUMNS.app)
            .order_by(_COLUMNS.app)
        )
        with self.db.session() as session:
            return {app: int(n) for app, n in session.execute(stmt)}

    # -- retiring and removing -----------------------------------------------------------------
    def retire(
        self,
        app: str,
        token: str,
        reason: str,
        *,
        registered_before: datetime | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Mark a device dead: later sends skip it until it registers again.

        With ``registered_before``, a device that registered after that instant is left alone
        (it refreshed its token after the provider's verdict). Returns whether a device was retired.
        """
        return bool(self.retire_many(app, [(token, reason, registered_before)], at=at))

    def retire_many(
        self,
        app: str,
        items: Iterable[tuple[str, str, datetime | None]],
        *,
        at: datetime | None = None,
    ) -> list[str]:
        """Retire several devices of ``app`` in one transaction: ``(token, reason,
        registered_before)`` each. Returns the tokens (as given) whose device was retired."""
        when = at or _now()
        retired: list[str] = []
        with self.db.session() as session:
            for token, reason, registered_before in items:
                digests = [token_hash(f) for f in _lookup_forms(token)]
                stmt = (
                    sa.update(_TABLE)
                    .where(_COLUMNS.app == app, _COLUMNS.token_hash.in_(digests), _COLUMNS.active.is_(True))
                    .values(active=False, retired_at=when, retired_reason=reason[:200])
                )
                if registered_before is not None:
                    # in the UPDATE itself, so a registration racing with us is never clobbered
                    stmt = stmt.where(_COLUMNS.last_seen_at <= registered_before)
                if _rowcount(session, stmt):
                    retired.append(token)
        return retired

    def retire_hash(
        self, app: str, digest: str, reason: str, *, registered_before: datetime | None = None
    ) -> bool:
        """:meth:`retire` for a device known by its ``token_hash`` (what the 4D sync keeps)."""
        stmt = (
            sa.update(_TABLE)
            .where(_COLUMNS.app == app, _COLUMNS.token_hash == digest, _COLUMNS.active.is_(True))
            .values(active=False, retired_at=_now(), retired_reason=reason[:200])
        )
        if registered_before is not None:
            stmt = stmt.where(_COLUMNS.last_seen_at <= registered_before)
        with self.db.session() as session:
            return _rowcount(session, stmt) > 0

    def remove(self, app: str, token: str) -> bool:
        """Delete a device outright (e.g. the user signed out). Returns whether it existed."""
        digests = [token_hash(f) for f in _lookup_forms(token)]
        with self.db.session() as session:
            stmt = sa.delete(_TABLE).where(_COLUMNS.app == app, _COLUMNS.token_hash.in_(digests))
            return _rowcount(session, stmt) > 0

    def prune(self, older_than: timedelta, *, app: str | None = None, now: datetime | None = None) -> int:
        """Delete devices retired more than ``older_than`` ago, or not seen (registered) for that
        long. Returns how many were deleted."""
        if older_than <= timedelta(0):
            raise ValueError("older_than must be a positive duration")
        cutoff = (now or _now()) - older_than
        stmt = sa.delete(_TABLE).where(
            sa.or_(
                sa.and_(_COLUMNS.active.is_(False), _COLUMNS.retired_at < cutoff),
                _COLUMNS.last_seen_at < cutoff,
            )
        )
        if app is not None:
            stmt = stmt.where(_COLUMNS.app == app)
        with self.db.session() as session:
            return _rowcount(session, stmt)
