"""The completion race on PostgreSQL, both orders, with two real connections.

A notification whose last delivery is recorded while its expansion finishes used to stay
``sending`` forever: each transaction checked for open deliveries in a snapshot without the
other's uncommitted writes. Both paths now lock the notification row before checking (see
``SqlBase._complete``). Each test holds the first transaction open at the point that mattered,
runs the second one on another connection until it waits on that lock (seen in
``pg_stat_activity``, not guessed from timing), then commits the first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from pushrelay.outcome import DeliveryResult, Outcome
from pushrelay.queue import ClaimedDelivery, NotificationRequest, Recipients, SqlOutbox
from pushrelay.queue.models import utcnow

from .conftest import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(pg_url: str) -> str:
    """These races need PostgreSQL's row locks: conftest's ``outbox`` fixture runs on it here."""
    return pg_url


def _expanding_with_one_in_flight(ob: SqlOutbox) -> tuple[str, ClaimedDelivery]:
    """A notification still ``expanding`` (an ``all`` audience commits its deliveries chunk by
    chunk before it finishes) whose only delivery a worker has already claimed."""
    nid = ob.enqueue(NotificationRequest("a", {"title": "t"}, Recipients(all=True))).id
    assert len(ob.claim_expansions("expander", limit=1, lease=30)) == 1
    assert (
        ob.add_deliveries(nid, [("ios", "t1", None, None)], cursor="c", worker_id="expander", lease=30) == 1
    )
    (claimed,) = ob.claim("sender", limit=10, lease=30)
    return nid, claimed


class _Second(threading.Thread):
    """The second transaction, on its own connection."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # reported by the test
            self.error = exc


def _race(ob: SqlOutbox, first: Callable[[Any], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    with ob.engine.connect() as watcher, ob.engine.connect() as conn:
        tx = conn.begin()
        got_first = first(conn)
        other = _Second(second)
        other.start()

        def waiting_on_a_lock() -> bool:
            n = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            watcher.rollback()
            return bool(n) or not other.is_alive()

        # (without the lock, the second one runs to its end here, and the notification stays sending)
        wait_until(waiting_on_a_lock, 30, "the second transaction to wait on the notification row")
        tx.commit()
        other.join(30)
    assert not other.is_alive() and other.error is None, other.error
    return got_first, other.result


def test_expansion_finishes_first_then_the_last_delivery_is_recorded(outbox: SqlOutbox) -> None:
    nid, claimed = _expanding_with_one_in_flight(outbox)
    done = DeliveryResult("t1", Outcome.DELIVERED, 200)
    finished, recorded = _race(
        outbox,
        lambda conn: outbox._finish_expansion(conn, nid, warnings=[], errors=[]),
        lambda: outbox.record("sender", [(claimed, done)]),
    )
    assert finished == []  # its delivery was still in flight in the first one's view
    assert outbox.status(nid).state == "completed", "left sending"  # type: ignore[union-attr]
    assert recorded.completed == [nid]


def test_the_last_delivery_is_recorded_first_then_the_expansion_finishes(outbox: SqlOutbox) -> None:
    nid, claimed = _expanding_with_one_in_flight(outbox)
    done = DeliveryResult("t1", Outcome.DELIVERED, 200)
    recorded, finished = _race(
        outbox,
        lambda conn: outbox._record(conn, "sender", [(claimed, done)], utcnow()),
        lambda: outbox.finish_expansion(nid, warnings=[], errors=[]),
    )
    assert recorded.completed == []  # still expanding in the first one's view
    assert outbox.status(nid).state == "completed", "left sending"  # type: ignore[union-attr]
    assert finished == [nid]


def test_the_sweeper_completes_a_notification_left_sending(outbox: SqlOutbox) -> None:
    nid, _claimed = _expanding_with_one_in_flight(outbox)
    outbox.finish_expansion(nid, warnings=[], errors=[])
    with outbox.engine.begin() as conn:  # as if the completion had been skipped by a bug
        conn.execute(text("UPDATE outbox_deliveries SET state = 'done', outcome = 'delivered'"))
    assert outbox.status(nid).state == "sending"  # type: ignore[union-attr]
    assert outbox.complete_stragglers() == [nid]
    assert outbox.status(nid).state == "completed"  # type: ignore[union-attr]
    assert outbox.complete_stragglers() == []
