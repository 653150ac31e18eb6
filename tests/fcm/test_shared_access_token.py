"""FCM access tokens shared through the database: two processes (two ServiceAccount objects over
one database) mint one token between them; a token FCM refused is never adopted again."""

from __future__ import annotations

from pathlib import Path

from tokenshapes import fcm_token

from pushrelay.db import Database
from pushrelay.fcm import FcmClient, ServiceAccount
from pushrelay.notification import Notification
from pushrelay.providers.state import SqlAccessTokenStore
from pushrelay.sandbox.fcm import FcmSandbox


def account(sb: FcmSandbox, key: Path, db: Database) -> ServiceAccount:
    return ServiceAccount.from_file(key, ca_file=sb.ca_file).shared(SqlAccessTokenStore(db.engine))


async def test_two_processes_share_one_access_token(
    fcm_sandbox: FcmSandbox, tmp_path: Path, database_url: str
) -> None:
    key = fcm_sandbox.create_service_account(tmp_path, project_id="demo-project")
    db = Database(database_url)
    try:
        first, second = account(fcm_sandbox, key, db), account(fcm_sandbox, key, db)
        note = Notification(title="hi")
        for acc in (first, second):
            async with FcmClient(acc, base_url=fcm_sandbox.url, ca_file=fcm_sandbox.ca_file) as client:
                assert (await client.send(note, fcm_token("an-android-phone"))).ok
        assert (first.refresh_count, second.refresh_count, second.adopted_count) == (1, 0, 1)
        assert fcm_sandbox.oauth.issued == 1

        # FCM refused the shared token (revoked): whoever is told mints anew, nobody adopts it again
        token = await second.access_token()
        second.invalidate(token)
        assert await second.access_token() != token and second.refresh_count == 1
        third = account(fcm_sandbox, key, db)
        assert await third.access_token() == await second.access_token() and third.refresh_count == 0
        assert "token" not in repr(third) and token not in repr(
            SqlAccessTokenStore(db.engine).load(third.client_email, third.token_uri)
        )
    finally:
        db.dispose()
