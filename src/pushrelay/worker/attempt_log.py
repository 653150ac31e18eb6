"""Log lines an operator can act on: every failed attempt, without drowning in them.

* Each failed attempt logs one line: app, platform, the masked token (first 6 and last 4
  characters, never the whole token), status, reason and outcome::

      warning delivery.failed app=myapp platform=ios device=a1b2c3…7f8e status=400 reason=BadDeviceToken outcome=token_dead

  Transient ones (``retry``) at info level, final ones at warning level.
* Identical refusals (same app, platform, status, reason) are rate-limited: the first ``burst`` of
  each ``window`` (60 s) are logged in full, the rest counted and summed up in one line when the
  window ends::

      warning delivery.failed_repeated app=myapp platform=ios status=429 reason=TooManyProviderTokenUpdates suppressed=233000 window=60s

* An app whose attempts were all refused during a window (none delivered) says so once per
  window, at error level: ``error app.all_refused app=myapp refused=1200 window=60s ...``.

Nothing here blocks or touches the database: the worker calls :meth:`AttemptLog.result` for each
recorded result and :meth:`AttemptLog.flush` from its sweep loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..logs import event, mask_token
from ..outcome import DeliveryResult, Outcome

__all__ = ["AttemptLog"]


Key = tuple[str, str, int, str]  # app, platform, status, reason


@dataclass
class _Window:
    started: float
    logged: dict[Key, int] = field(default_factory=dict)
    suppressed: dict[Key, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # app -> refused attempts
    delivered: set[str] = field(default_factory=set)  # apps with at least one delivery


class AttemptLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        window: float = 60.0,
        burst: int = 3,
        clock: Callable[[], float] = time.monotonic,
        quiet: bool = False,
    ) -> None:
        """``quiet``: every line at debug level (a one-shot call reports its outcomes itself)."""
        self.logger = logger
        self.quiet = quiet
        self.window = window
        self.burst = burst
        self.clock = clock
        self._current = _Window(clock())

    def result(self, app: str, platform: str, res: DeliveryResult) -> None:
        """Take one recorded result: a failed attempt is logged (or counted), a delivery noted."""
        self._roll()
        w = self._current
        if res.outcome is Outcome.DELIVERED:
            w.delivered.add(app)
            return
        w.refused[app] = w.refused.get(app, 0) + 1
        reason = res.reason or res.outcome.value
        key = (app, platform, res.status, reason)
        logged = w.logged.get(key, 0)
        if logged >= self.burst:
            w.suppressed[key] = w.suppressed.get(key, 0) + 1
            return
        w.logged[key] = logged + 1
        level = logging.INFO if res.outcome is Outcome.RETRY else logging.WARNING
        event(self.logger, self._level(level), "delivery.failed", app=app, platform=platform,
              device=mask_token(res.token, head=6), status=res.status, reason=reason,
              outcome=res.outcome.value)  # fmt: skip

    def _level(self, level: int) -> int:
        return logging.DEBUG if self.quiet else level

    def flush(self) -> None:
        """End the window if its time is up: log its summaries. Called every few seconds."""
        self._roll()

    def _roll(self) -> None:
        now = self.clock()
        if now - self._current.started < self.window:
            return
        ended, self._current = self._current, _Window(now)
        span = f"{self.window:g}s"
        for (app, platform, status, reason), n in sorted(ended.suppressed.items()):
            event(self.logger, self._level(logging.WARNING), "delivery.failed_repeated", app=app, platform=platform,
                  status=status, reason=reason, suppressed=n, window=span)  # fmt: skip
        for app, n in sorted(ended.refused.items()):
            if app not in ended.delivered:
                top = max(
                    ((k, c + ended.suppressed.get(k, 0)) for k, c in ended.logged.items() if k[0] == app),
                    key=lambda kc: kc[1],
                )[0]
                event(self.logger, self._level(logging.ERROR), "app.all_refused", app=app, refused=n, window=span,
                      platform=top[1], status=top[2], reason=top[3],
                      hint="every attempt of this app was refused: check its credentials, "
                      "topic and tokens")  # fmt: skip
