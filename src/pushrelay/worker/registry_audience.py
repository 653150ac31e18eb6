"""The worker's :class:`~.audience.Audience`: the library's recipient rules over the registry.

Nothing here decides who receives what: :func:`pushrelay.fourd.targets.plan_send` (e-mail
addresses and tokens, 4D's warning texts, each token once, retired devices skipped, unregistered
tokens sent or refused per ``registered_tokens_only``), :func:`~pushrelay.fourd.targets.plan_all`
and :func:`~pushrelay.fourd.targets.stream_all` (``all``), and
:func:`pushrelay.registry.hygiene.retire_dead_tokens` serve ``PushNotification`` and the service
alike. This module only turns their targets into delivery rows, chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime

from ..config.model import AppConfig
from ..fourd.messages import messages
from ..fourd.recipients import Recipients, parse_recipients
from ..fourd.targets import Target, plan_all, plan_send, stream_refs
from ..local_time import QuietHours
from ..outcome import DeliveryResult
from ..queue.interface import DeviceRef, ExpansionJob
from ..registry.devices import DeviceRecord, DeviceRegistry
from ..registry.hygiene import retire_dead_tokens
from ..registry.tokens import PLATFORMS, normalize_email
from .audience import Expansion

__all__ = ["RegistryAudience"]


def _ref(target: Target) -> DeviceRef:
    return (target.platform, target.token, target.environment, target.email)


def _parse(job: ExpansionJob) -> Recipients:
    return parse_recipients(
        {"mails": list(job.recipients.emails), "deviceTokens": list(job.recipients.device_tokens)}
    )


def _chunked(refs: list[DeviceRef], size: int) -> Iterator[tuple[list[DeviceRef], str | None]]:
    # explicit lists are bounded by the request size: no cursor needed to resume them
    for i in range(0, len(refs), size):
        yield refs[i : i + size], None


class _Prefetched:
    """The devices that many recipient lists of one app name, read once; answers
    :func:`plan_send`'s two questions (see :class:`~pushrelay.fourd.targets.DeviceLookup`)."""

    def __init__(self, registry: DeviceRegistry, app: str, emails: set[str], tokens: set[str]) -> None:
        self.app = app
        self._by_email = list(registry.for_emails(app, emails)) if emails else []
        self._by_token = registry.find_tokens(app, tokens) if tokens else {}

    def for_emails(
        self, app: str, emails: Iterable[str], *, platforms: Collection[str] | None = None
    ) -> Iterator[DeviceRecord]:
        assert app == self.app and platforms is None
        wanted = {normalize_email(e) for e in emails}
        return (d for d in self._by_email if normalize_email(d.email or "") in wanted)

    def find_tokens(self, app: str, tokens: Iterable[str]) -> dict[str, DeviceRecord]:
        assert app == self.app
        return {t: self._by_token[t] for t in tokens if t in self._by_token}


class RegistryAudience:
    """``app_config(name)`` gives the app's settings (its APNs environment, whether raw tokens
    must be registered)."""

    def __init__(self, registry: DeviceRegistry, app_config: Callable[[str], AppConfig]) -> None:
        self.registry = registry
        self.app_config = app_config

    def expand(self, job: ExpansionJob, *, chunk: int) -> Expansion:
        app = self.app_config(job.app)
        platforms = tuple(job.targets) or tuple(PLATFORMS)
        if job.recipients.all:
            _total, plan, errors = plan_all(self.registry, app, platforms)
            after = int(job.cursor) if job.cursor else 0  # resume a crashed expansion
            chunks = self._stream(app, platforms, after, chunk) if not errors else iter(())
            return Expansion(chunks, plan.warnings, errors)
        recipients = _parse(job)
        if recipients.empty:
            return Expansion(iter(()), errors=[messages.BOTH_EMPTY])
        plan = plan_send(self.registry, app, recipients, platforms)
        return Expansion(_chunked([_ref(t) for t in plan.targets], chunk), plan.warnings)

    def expand_many(self, jobs: Sequence[ExpansionJob], *, chunk: int) -> list[Expansion]:
        """:meth:`expand` for many explicit recipient lists at once: the devices they name are read
        in one query per app and kind (instead of a query or two per notification), then each
        list is planned by the same rules."""
        out: dict[str, Expansion] = {}
        by_app: dict[str, list[tuple[ExpansionJob, Recipients]]] = {}
        for job in jobs:
            if job.recipients.all:
                out[job.notification_id] = self.expand(job, chunk=chunk)
                continue
            parsed = _parse(job)
            if parsed.empty:
                out[job.notification_id] = Expansion(iter(()), errors=[messages.BOTH_EMPTY])
            else:
                by_app.setdefault(job.app, []).append((job, parsed))
        for app_name, items in by_app.items():
            lookup = _Prefetched(
                self.registry,
                app_name,
                {e for _, r in items for e in r.emails},
                {t for _, r in items for t in r.tokens},
            )
            app = self.app_config(app_name)
            for job, parsed in items:
                plan = plan_send(lookup, app, parsed, tuple(job.targets) or tuple(PLATFORMS))
                out[job.notification_id] = Expansion(
                    _chunked([_ref(t) for t in plan.targets], chunk), plan.warnings
                )
        return [out[job.notification_id] for job in jobs]

    def _stream(
        self, app: AppConfig, platforms: tuple[str, ...], after: int, chunk: int
    ) -> Iterator[tuple[list[DeviceRef], str | None]]:
        last = after
        for refs, last in stream_refs(self.registry, app, platforms, after=after, page=chunk):
            yield refs, str(last)
        yield [], str(last)

    def time_zones(self, app: str, tokens: Sequence[str]) -> dict[str, str]:
        found = self.registry.find_tokens(app, tokens)
        return {t: d.time_zone for t, d in found.items() if d.time_zone}

    def quiet_hours(self, app: str) -> QuietHours | None:
        return self.app_config(app).quiet_hours

    def languages(self, app: str, tokens: Sequence[str]) -> dict[str, str]:
        found = self.registry.find_tokens(app, tokens)
        return {t: d.language for t, d in found.items() if d.language}

    def retire(self, app: str, results: Iterable[DeliveryResult], *, sent_at: datetime) -> list[str]:
        return retire_dead_tokens(self.registry, app, results, sent_at=sent_at)
