"""Provider tokens shared between processes through the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushrelay.apns import TokenAuth
from pushrelay.db import Database
from pushrelay.providers.state import SqlTokenStore

from .conftest import FakeClock

TEAM, KEY = "TEAM123456", "SHAREDKEY1"


@pytest.fixture
def store(database_url: str):  # type: ignore[no-untyped-def]
    db = Database(database_url)
    yield SqlTokenStore(db.engine)
    db.dispose()


def iat(header: str) -> int:
    return int(jwt.decode(header.removeprefix("bearer "), options={"verify_signature": False})["iat"])


def test_processes_share_one_token_and_refresh_it_once(store: SqlTokenStore) -> None:
    clock = FakeClock()
    key = ec.generate_private_key(ec.SECP256R1())
    a = TokenAuth(key, key_id=KEY, team_id=TEAM, clock=clock).shared(store)
    b = TokenAuth(key, key_id=KEY, team_id=TEAM, clock=clock).shared(store)  # a second worker
    first = a.authorization()
    clock.advance(30)
    assert b.authorization() == first and b.mints == 0  # adopted, not minted
    clock.advance(46 * 60)  # both due
    second = b.authorization()
    assert second != first and b.mints == 1
    clock.advance(5)
    assert a.authorization() == second and a.mints == 1  # a adopts b's refresh instead of minting
    assert iat(second) - iat(first) >= 20 * 60


def test_a_restarted_worker_adopts_the_stored_token(store: SqlTokenStore) -> None:
    clock = FakeClock()
    key = ec.generate_private_key(ec.SECP256R1())
    before = TokenAuth(key, key_id=KEY, team_id=TEAM, clock=clock).shared(store).authorization()
    clock.advance(10 * 60)  # crash and restart 10 minutes later: minting now would be a 429
    after = TokenAuth(key, key_id=KEY, team_id=TEAM, clock=clock).shared(store)
    assert after.authorization() == before and after.mints == 0


def test_compare_and_set_lets_one_process_win(store: SqlTokenStore) -> None:
    clock = FakeClock()
    key = ec.generate_private_key(ec.SECP256R1())
    a = TokenAuth(key, key_id=KEY, team_id=TEAM, clock=clock).shared(store)
    first = a.authorization()
    stored = store.load(TEAM, KEY)
    assert stored is not None and stored.header == first
    clock.advance(46 * 60)
    # two processes read the same stored token, both try to replace it: only one succeeds
    from pushrelay.apns.auth import StoredToken

    floor = clock.now - 20 * 60
    assert store.store(TEAM, KEY, StoredToken("bearer x", clock.now), replaces=first, not_after=floor)
    assert not store.store(TEAM, KEY, StoredToken("bearer y", clock.now), replaces=first, not_after=floor)
    # and never within min_interval of the stored one
    assert not store.store(
        TEAM, KEY, StoredToken("bearer z", clock.now), replaces="bearer x", not_after=floor
    )


def test_expired_token_forces_a_shared_refresh(store: SqlTokenStore) -> None:
    clock = FakeClock()
    key = ec.generate_private_key(ec.SECP256R1())
    a = TokenAuth(key, key_id=KEY, team_id=TEAM, clock=clock).shared(store)
    b = TokenAuth(key, key_id=KEY, team_id=TEAM, clock=clock).shared(store)
    old = a.authorization()
    assert b.authorization() == old
    clock.advance(60)
    assert a.token_rejected(old, "ExpiredProviderToken")  # forced: replaces the stored one at once
    new = a.authorization()
    assert new != old
    assert b.token_rejected(old, "ExpiredProviderToken")  # b held the old one too...
    assert b.authorization() == new and b.mints == 0  # ...and adopts a's replacement instead of minting
    stored = store.load(TEAM, KEY)
    assert stored is not None and stored.header == new
