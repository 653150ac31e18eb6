"""The API key cache the request path reads on the event loop: a hit needs the right secret, and a
miss (never seen, expired, wrong secret) is left to :meth:`ApiKeyStore.authenticate`."""

from __future__ import annotations

from pushrelay.db import Database
from pushrelay.server.apikeys import ApiKeyStore


def test_cached_answers_only_a_verified_key_with_its_secret(database_url: str) -> None:
    db = Database(database_url)
    try:
        store = ApiKeyStore(db.engine, cache_seconds=60)
        key, text = store.create(["send"])
        assert store.cached(text) is None  # never verified: the caller must read the database
        assert store.authenticate(text) == key
        assert store.cached(text) == key
        kid = text.split("_")[1]
        assert store.cached(f"pr_{kid}_not-the-secret") is None
        assert store.cached("not a key") is None
        assert store.revoke(key.id)
        assert store.cached(text) is None  # revoked here: forgotten at once
        assert store.authenticate(text) is None
    finally:
        db.dispose()


def test_an_expired_entry_is_a_miss(database_url: str) -> None:
    db = Database(database_url)
    try:
        store = ApiKeyStore(db.engine, cache_seconds=0)
        _key, text = store.create(["admin"])
        assert store.authenticate(text) is not None
        assert store.cached(text) is None
    finally:
        db.dispose()
