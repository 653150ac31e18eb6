"""Per-language notifications through the HTTP API: each device of the APNs sandbox gets the texts
of its language (exact tag, then base language, then the notification's own), and a variant too
large for a push is refused at accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pushrelay.registry import DeviceRegistry

from .conftest import TEAM, Stack, wait_until
from .test_fourd_live import _live_config, ios_app_folder, session, write_session

FR, FR_4D, MX, ES, DE, NONE = ("a1" * 32, "a2" * 32, "b1" * 32, "b2" * 32, "c1" * 32, "c2" * 32)
LANGS = {FR: "fr", FR_4D: "fr_FR", MX: "es-MX", ES: "es-ES", DE: "de", NONE: None}
NOTE = {
    "title": "New order",
    "body": "Order 1042 is waiting",
    "badge": 1,
    "localizations": {
        "fr": {"title": "Nouvelle commande", "body": "La commande 1042 attend"},
        "es-MX": {"title": "Nuevo pedido", "body": "El pedido 1042 te espera, güey"},
        "es": {"title": "Nuevo pedido", "body": "El pedido 1042 está esperando"},
    },
}


def test_each_device_gets_its_language(stack: Stack) -> None:
    stack.service.start()
    sb = stack.sandbox
    with stack.client(stack.registrar) as reg, stack.client(stack.sender) as snd:
        for tok, lang in LANGS.items():
            body = {
                "app": "myapp",
                "token": tok,
                "email": "test@4d.com",
                **({"language": lang} if lang else {}),
            }
            assert reg.post("/v1/devices", json=body).status_code == 201
        r = snd.post(
            "/v1/notifications",
            params={"wait": 20},
            json={"app": "myapp", "notification": NOTE, "recipients": "test@4d.com"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["counts"] == {"total": 6, "delivered": 6}
        alerts = {tok: sb.received(tok)[-1].payload["aps"]["alert"] for tok in LANGS}
        assert (
            alerts[FR] == alerts[FR_4D] == {"title": "Nouvelle commande", "body": "La commande 1042 attend"}
        )
        assert alerts[MX] == {"title": "Nuevo pedido", "body": "El pedido 1042 te espera, güey"}  # exact tag
        assert alerts[ES] == {
            "title": "Nuevo pedido",
            "body": "El pedido 1042 está esperando",
        }  # base language
        assert alerts[DE] == alerts[NONE] == {"title": "New order", "body": "Order 1042 is waiting"}
        for tok in LANGS:  # what is not text is everybody's, and no device sees the other languages
            payload = sb.received(tok)[-1].payload
            assert payload["aps"]["badge"] == 1 and "localizations" not in payload
        # the record keeps the variants
        nid = r.json()["id"]
        assert snd.get(f"/v1/notifications/{nid}").json()["notification"]["localizations"]["es-MX"][
            "title"
        ] == ("Nuevo pedido")

        # apps that localise on the device keep their loc-keys
        keyed = {"title_loc_key": "ORDER_TITLE", "loc_key": "ORDER_BODY", "loc_args": ["1042"]}
        r = snd.post(
            "/v1/notifications",
            params={"wait": 20},
            json={"app": "myapp", "notification": keyed, "recipients": FR},
        )
        assert r.status_code == 200, r.text
        assert sb.received(FR)[-1].payload["aps"]["alert"] == {
            "title-loc-key": "ORDER_TITLE",
            "loc-key": "ORDER_BODY",
            "loc-args": ["1042"],
        }

        # the largest variant must fit: a French body of 5,000 bytes is refused before anything is sent
        big = {**NOTE, "localizations": {**NOTE["localizations"], "fr": {"body": "é" * 2500}}}  # type: ignore[dict-item]
        before = len(sb.received(FR))
        r = snd.post(
            "/v1/notifications", json={"app": "myapp", "notification": big, "recipients": "test@4d.com"}
        )
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["field"] == "notification.localizations.fr", err
        assert "bytes" in err["message"] and "4096" in err["message"], err
        assert len(sb.received(FR)) == before

        for bad, field in [
            ({"fr": "Bonjour"}, "notification.localizations.fr"),
            ({"fr": {"colour": "x"}}, "notification.localizations.fr.colour"),
            ({"not a tag": {"title": "x"}}, "notification.localizations.not a tag"),
            ({"fr": {"title": 3}}, "notification.localizations.fr.title"),
        ]:
            r = snd.post(
                "/v1/notifications",
                json={
                    "app": "myapp",
                    "notification": {**NOTE, "localizations": bad},
                    "recipients": "test@4d.com",
                },
            )
            assert r.status_code == 422, r.text
            assert r.json()["error"]["field"] == field, r.text


def test_a_4d_session_gives_language_and_time_zone(stack: Stack, tmp_path: Path) -> None:
    """A device known only from its 4D session file gets its texts in the session's language, at
    09:00 in the session's time zone."""
    folder = ios_app_folder(tmp_path / "MobileApps")
    stack.sandbox.create_key(TEAM, "ABC123DEFG", folder)
    mexican = session("ana@4d.com", MX)
    mexican["language"] = {"id": "es_MX", "code": "es", "region": "MX"}
    mexican["device"]["timeZone"] = "America/Mexico_City"
    write_session(folder, "S-ANA", mexican)
    write_session(folder, "S-LUC", session("luc@4d.com", FR))  # fr_FR, no zone
    _live_config(stack, folder)
    stack.service.start()
    registry = DeviceRegistry(stack.db_url)
    try:
        wait_until(lambda: registry.get("myapp", MX) is not None and registry.get("myapp", FR) is not None,
                   20, "the sessions")  # fmt: skip
        assert registry.get("myapp", MX).time_zone == "America/Mexico_City"  # type: ignore[union-attr]
    finally:
        registry.close()
    with stack.client(stack.sender) as snd:
        body = {"app": "myapp", "notification": NOTE, "recipients": ["ana@4d.com", "luc@4d.com"]}
        r = snd.post("/v1/notifications", params={"wait": 20}, json=body)
        assert r.status_code == 200, r.text
        assert stack.sandbox.received(MX)[-1].payload["aps"]["alert"]["title"] == "Nuevo pedido"
        assert stack.sandbox.received(FR)[-1].payload["aps"]["alert"]["title"] == "Nouvelle commande"

        r = snd.post("/v1/notifications", json={**body, "deliver_at_local": "09:00"})
        nid = r.json()["id"]
        wait_until(
            lambda: len(snd.get(f"/v1/notifications/{nid}/deliveries").json()["items"]) == 2, 20, "expansion"
        )
        items = {d["token"]: d for d in snd.get(f"/v1/notifications/{nid}/deliveries").json()["items"]}
    now = datetime.now(UTC)
    for tok, zone in ((MX, ZoneInfo("America/Mexico_City")), (FR, UTC)):
        local = now.astimezone(zone)
        nine = local.replace(hour=9, minute=0, second=0, microsecond=0)
        if nine < local.replace(second=0, microsecond=0):
            nine += timedelta(days=1)
        due = items[tok]["scheduled_for"]
        expected = nine.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert due == expected or (due is None and nine <= now + timedelta(minutes=1)), (tok, due, expected)
