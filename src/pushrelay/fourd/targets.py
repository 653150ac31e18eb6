"""From recipients to the devices a notification goes to.

:func:`plan_send` applies 4D's recipient rules against the registry: every device of each e-mail
address, every raw token, filtered by the targets (platforms), retired devices skipped, each
token kept once however many ways it was reached. It returns the targets and the warnings to
report. :func:`plan_all` and :func:`stream_all` do the same for ``send_all``: every active device
of an app, page by page. The library's sends and the service's workers both use these rules.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from ..config.model import AppConfig
from ..registry.devices import DeviceRecord, DeviceRegistry
from ..registry.tokens import (
    InvalidDeviceError,
    guess_platform,
    is_simulator_id,
    mask_token,
    normalize_email,
    normalize_token,
)
from .messages import messages
from .recipients import Recipients

__all__ = [
    "Channel",
    "DeviceLookup",
    "Plan",
    "Target",
    "device_environment",
    "plan_all",
    "plan_send",
    "stream_all",
    "stream_refs",
]


class Channel(NamedTuple):
    """Devices that share one provider connection: same platform, APNs environment, simulator-ness."""

    platform: str
    environment: str | None
    simulator: bool


@dataclass(frozen=True, slots=True)
class Target:
    """One device to deliver to."""

    platform: str
    token: str = field(repr=False)
    email: str | None
    environment: str | None = None
    """APNs environment (iOS only): the device's own, else the app's."""
    simulator: bool = False
    registered: bool = True
    last_seen_at: datetime | None = None
    web_p256dh: str | None = field(default=None, repr=False)
    web_auth: str | None = field(default=None, repr=False)

    @property
    def channel(self) -> Channel:
        return Channel(self.platform, self.environment, self.simulator)

    def __repr__(self) -> str:
        return f"Target({self.platform}, {mask_token(self.token)}, email={self.email!r})"

    @classmethod
    def from_device(cls, device: DeviceRecord, app_environment: str) -> Target:
        return cls(
            platform=device.platform,
            token=device.token,
            email=device.email,
            environment=device_environment(device.platform, device.environment, app_environment),
            simulator=device.simulator,
            registered=True,
            last_seen_at=device.last_seen_at,
            web_p256dh=device.web_p256dh,
            web_auth=device.web_auth,
        )


@dataclass
class Plan:
    targets: list[Target] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def app_environment(app: AppConfig) -> str:
    return app.apns.environment if app.apns else "production"


def device_environment(platform: str, environment: str | None, app_environment: str) -> str | None:
    """The APNs environment to send to a device in: its own, else its app's (iOS only)."""
    return (environment or app_environment) if platform == "ios" else None


class DeviceLookup(Protocol):
    """What :func:`plan_send` reads from the registry (a :class:`DeviceRegistry`, or devices
    fetched beforehand for many sends at once)."""

    def for_emails(
        self, app: str, emails: Iterable[str], *, platforms: Collection[str] | None = None
    ) -> Iterator[DeviceRecord]: ...

    def find_tokens(self, app: str, tokens: Iterable[str]) -> dict[str, DeviceRecord]: ...


def plan_send(
    registry: DeviceLookup, app: AppConfig, recipients: Recipients, platforms: tuple[str, ...]
) -> Plan:
    """The devices ``recipients`` designate for ``app`` on ``platforms``, and the warnings."""
    plan = Plan()
    seen: set[tuple[str, str]] = set()
    env = app_environment(app)

    def add(target: Target) -> None:
        key = (target.platform, target.token)
        if key not in seen:
            seen.add(key)
            plan.targets.append(target)

    # All platforms are fetched so that "has devices, none on the targets" can be told apart
    # from "has no device at all".
    by_email: dict[str, list[DeviceRecord]] = {}
    for device in registry.for_emails(app.name, recipients.emails):
        by_email.setdefault(normalize_email(device.email or ""), []).append(device)
    for email in recipients.emails:
        devices = by_email.get(normalize_email(email), [])
        if not devices:
            plan.warnings.append(messages.no_session(email))
            continue
        on_targets = [d for d in devices if d.platform in platforms]
        if not on_targets:
            plan.warnings.append(messages.no_device_for_targets(email))
            continue
        for device in on_targets:
            if device.active:
                add(Target.from_device(device, env))
            else:
                plan.warnings.append(
                    messages.retired(email, device.token, device.retired_at, device.retired_reason)
                )

    found = registry.find_tokens(app.name, recipients.tokens) if recipients.tokens else {}
    for token in recipients.tokens:
        known = found.get(token)
        if known is not None:
            device = known
            if device.platform not in platforms:
                plan.warnings.append(messages.not_in_targets(token, device.platform, platforms))
            elif not device.active:
                plan.warnings.append(
                    messages.retired(device.email, device.token, device.retired_at, device.retired_reason)
                )
            else:
                add(Target.from_device(device, env))
            continue
        if app.registered_tokens_only:
            plan.warnings.append(messages.unregistered_refused(token, app.name))
            continue
        target = _raw_target(token, env, plan)
        if target is None:
            continue
        if target.platform not in platforms:
            plan.warnings.append(messages.not_in_targets(token, target.platform, platforms))
            continue
        plan.warnings.append(messages.unregistered_sent(token, app.name))
        add(target)
    return plan


def _raw_target(token: str, env: str, plan: Plan) -> Target | None:
    """A target for a token the registry does not know, or ``None`` (with a warning) when it
    cannot be addressed at all."""
    platform = guess_platform(token)
    if platform == "web":
        plan.warnings.append(
            f"The Web Push endpoint {mask_token(token)} is not registered: a browser subscription "
            "needs its p256dh and auth keys, register it first"
        )
        return None
    simulator = platform == "ios" and is_simulator_id(token)
    try:
        normalized = normalize_token(platform, token, simulator=simulator)
    except InvalidDeviceError as exc:
        plan.warnings.append(f"The device token {mask_token(token)} is not valid: {exc}")
        return None
    return Target(
        platform=platform,
        token=normalized,
        email=None,
        environment=env if platform == "ios" else None,
        simulator=simulator,
        registered=False,
    )


def plan_all(
    registry: DeviceRegistry, app: AppConfig, platforms: tuple[str, ...]
) -> tuple[int, Plan, list[str]]:
    """What ``send_all`` will reach, before streaming it: the number of active devices, a plan
    holding only the warnings (retired devices skipped), and the errors (nobody to send to)."""
    total = registry.count(app.name, platforms=platforms)
    if total == 0:
        return 0, Plan(), [messages.NO_RECIPIENT_FOUND]
    plan = Plan()
    retired = registry.count(app.name, platforms=platforms, include_retired=True) - total
    if retired > 0:
        plan.warnings.append(messages.retired_skipped(app.name, retired))
    return total, plan, []


def stream_refs(
    registry: DeviceRegistry, app: AppConfig, platforms: tuple[str, ...], *, after: int = 0, page: int = 1000
) -> Iterator[tuple[list[tuple[str, str, str | None, str | None]], int]]:
    """:func:`stream_all` for a send, page by page: ``(platform, token, environment, email)`` of
    each device, the same devices with the same environments, and the last device id of the page
    (to resume after it) without a :class:`Target` or a device record for each."""
    env = app_environment(app)
    for rows in registry.stream_columns(app.name, platforms=platforms, after=after, page_size=page):
        refs = [
            (platform, token, device_environment(platform, environment, env), email)
            for _id, platform, token, environment, email in rows
        ]
        yield refs, rows[-1][0]


def stream_all(
    registry: DeviceRegistry, app: AppConfig, platforms: tuple[str, ...], *, after: int = 0
) -> Iterator[tuple[int, Target]]:
    """Every active device of ``app`` on ``platforms`` as ``(device id, target)``, in id order,
    page by page; ``after`` resumes after a device id."""
    env = app_environment(app)
    for device in registry.stream(app.name, platforms=platforms, after=after):
        yield device.id, Target.from_device(device, env)
