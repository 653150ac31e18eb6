"""One retry owner: against an APNs that keeps failing, every request APNs sees is an attempt the
outbox recorded, with APNs' own answer — no hidden retries in the client or the HTTP/2 pool."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pushrelay.db import Database
from pushrelay.queue.models import DeliveryRow

from .conftest import Stack, wait_until

N = {"title": "This is title", "body": "Here is the content of this notification"}


@pytest.mark.parametrize(("status", "reason"), [(500, "InternalServerError"), (503, "ServiceUnavailable")])
def test_provider_requests_equal_recorded_attempts(stack: Stack, status: int, reason: str) -> None:
    sb = stack.sandbox
    tokens = [f"{i:064x}" for i in range(1, 11)]
    sb.set_outage(status, reason)
    stack.service.start()
    db = Database(stack.db_url, migrate=False)
    D = DeliveryRow

    def rows() -> list[tuple[int, int | None, str | None]]:
        with db.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(D.attempts, D.status, D.reason)).all()]  # type: ignore[misc]

    try:
        with stack.client(stack.sender) as snd:
            r = snd.post(
                "/v1/notifications",
                json={"app": "myapp", "notification": N, "recipients": {"device_tokens": tokens}},
            )
            assert r.status_code == 202, r.text
        # a few rounds of the outbox's retries (base 0.2 s, cap 1 s in these tests)
        wait_until(
            lambda: len(got := rows()) == 10 and all(a >= 4 for a, _s, _r in got), 60, "4 attempts each"
        )
        assert stack.service.stop() == 0  # graceful: what was sent is recorded; then nothing is sent
        final = rows()
    finally:
        db.dispose()
    recorded = sum(a for a, _s, _r in final)
    stats = sb.stats
    assert stats.requests == recorded  # one provider request per recorded attempt, not more
    assert stats.rejected[reason] == recorded and stats.accepted == 0
    assert {(s, r) for _a, s, r in final} == {(status, reason)}  # APNs' real answer, not "no answer"
