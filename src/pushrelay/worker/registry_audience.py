"""The worker's :class:`~.audience.Audience` backed by the device registry.

It applies the recipient rules of SPEC §2 with 4D's texts: unknown e-mail addresses and retired
devices become warnings, a raw token that is not registered is still delivered (with a warning)
unless the app is ``registered_tokens_only``, and a token reachable through several addresses is
sent once. The registry helper's own resolver, once published, should replace the rules here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from ..queue.interface import ExpansionJob
from ..registry.devices import DeviceRegistry
from ..registry.tokens import guess_platform
from .audience import DeviceRef, Expansion

__all__ = ["RegistryAudience"]


class RegistryAudience:
    def __init__(
        self, registry: DeviceRegistry, *, registered_only: Callable[[str], bool] = lambda app: False
    ):
        self.registry = registry
        self.registered_only = registered_only

    def expand(self, job: ExpansionJob, *, chunk: int) -> Expansion:
        exp = Expansion(iter(()))
        platforms = list(job.targets) or None
        if job.recipients.all:
            exp.chunks = self._stream_all(job, platforms, chunk)
            return exp
        exp.chunks = self._explicit(job, platforms, chunk, exp)
        return exp

    def _stream_all(
        self, job: ExpansionJob, platforms: list[str] | None, chunk: int
    ) -> Iterator[tuple[list[DeviceRef], str | None]]:
        after = int(job.cursor) if job.cursor else 0  # resume a crashed expansion
        batch: list[DeviceRef] = []
        last = after
        for d in self.registry.stream(job.app, platforms=platforms, page_size=chunk):
            if d.id <= after:
                continue
            batch.append((d.platform, d.token, d.environment, d.email))
            last = d.id
            if len(batch) >= chunk:
                yield batch, str(last)
                batch = []
        yield batch, str(last)

    def _explicit(
        self, job: ExpansionJob, platforms: list[str] | None, chunk: int, exp: Expansion
    ) -> Iterator[tuple[list[DeviceRef], str | None]]:
        r = job.recipients
        if not r.emails and not r.device_tokens:
            exp.errors.append("No recipient given")
            return
        seen: set[str] = set()
        batch: list[DeviceRef] = []
        found_emails: set[str] = set()
        for d in self.registry.for_emails(job.app, r.emails, platforms=platforms):
            found_emails.add((d.email or "").lower())
            if not d.active:
                exp.warnings.append(f"Device {d.masked_token} of {d.email} is retired ({d.retired_reason})")
                continue
            if d.token in seen:
                continue
            seen.add(d.token)
            batch.append((d.platform, d.token, d.environment, d.email))
            if len(batch) >= chunk:
                yield batch, None
                batch = []
        for e in r.emails:
            if e.strip().lower() not in found_emails:
                exp.warnings.append(f"No session file was found for the following mail address : {e}")
        known = self.registry.find_tokens(job.app, r.device_tokens) if r.device_tokens else {}
        for t in r.device_tokens:
            rec = known.get(t)
            if rec is not None:
                d = rec
                if not d.active:
                    exp.warnings.append(f"Device token {d.masked_token} is retired ({d.retired_reason})")
                    continue
                if platforms is not None and d.platform not in platforms:
                    continue
                ref: DeviceRef = (d.platform, d.token, d.environment, d.email)
            else:
                if self.registered_only(job.app):
                    exp.warnings.append(f"Device token {t[:4]}… is not registered for {job.app}; not sent")
                    continue
                platform = guess_platform(t)
                if platforms is not None and platform not in platforms:
                    continue
                exp.warnings.append(f"Device token {t[:4]}… is not registered for {job.app}; sent anyway")
                ref = (platform, t, None, None)
            if ref[1] in seen:
                continue
            seen.add(ref[1])
            batch.append(ref)
            if len(batch) >= chunk:
                yield batch, None
                batch = []
        if batch:
            yield batch, None
        if not seen:
            exp.errors.append("No recipient found")

    def retire(self, app: str, token: str, reason: str, invalid_since_ms: int | None) -> bool:
        before = datetime.fromtimestamp(invalid_since_ms / 1000, UTC) if invalid_since_ms else None
        return self.registry.retire(app, token, reason, registered_before=before)
