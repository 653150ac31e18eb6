"""Localised notifications in the library and the CLI, against the APNs sandbox: the variant
matching rules, ``PushNotification.send`` with ``localizations``, ``pushrelay send --localization``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pushrelay import NotificationError
from pushrelay.cli import cli
from pushrelay.config import load_config
from pushrelay.localization import best_tag, normalize_tag
from pushrelay.notification import Notification
from pushrelay.push import PushNotification
from pushrelay.registry import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox

from .conftest import BUNDLE, KEY_ID, TEAM, app_settings, tok

TAGS = {"fr": 1, "es-MX": 2, "es": 3}


@pytest.mark.parametrize(
    ("language", "tag"),
    [
        ("fr", "fr"),
        ("fr_FR", "fr"),  # 4D's spelling, base language
        ("FR-ca", "fr"),
        ("es-MX", "es-MX"),
        ("es_mx", "es-MX"),
        ("es-AR", "es"),
        ("es", "es"),
        ("de", None),
        ("", None),
        (None, None),
    ],
)
def test_best_tag(language: str | None, tag: str | None) -> None:
    assert best_tag(TAGS, language) == tag


def test_tags_are_normalised_and_checked() -> None:
    assert normalize_tag("es_mx") == "es-MX" and normalize_tag("ZH-hant-tw") == "zh-Hant-TW"
    n = Notification.from_dict({"title": "Hi", "localizations": {"es_mx": {"imageUrl": "https://x/y.png"}}})
    assert n.localizations == {"es-MX": {"image_url": "https://x/y.png"}}
    assert n.localized("es-MX").image_url == "https://x/y.png" and n.localized("es-MX").localizations == {}
    assert Notification.from_dict(n.to_dict()) == n  # stored in the outbox and read back
    with pytest.raises(NotificationError) as exc:
        Notification(title="Hi", localizations={"fr": {"badge": "3"}})
    assert exc.value.field == "localizations.fr.badge"
    with pytest.raises(NotificationError) as exc:
        Notification.from_dict({"title": "Hi", "localizations": {"fr": {"title": "a"}, "FR": {"title": "b"}}})
    assert exc.value.field == "localizations.FR"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ApnsSandbox]:
    with ApnsSandbox.running(directory=tmp_path / "sandbox") as sb:
        sb.add_topic(BUNDLE, TEAM)
        for n in (1, 2, 3):  # the strict sandbox knows only the tokens it issued
            sb.issue_token(BUNDLE, token=tok(n))
        yield sb


@pytest.fixture
def config_file(sandbox: ApnsSandbox, tmp_path: Path, database_url: str) -> Path:
    key = sandbox.create_key(TEAM, KEY_ID, tmp_path / "keys")
    settings = app_settings(sandbox, key)
    apns = settings["apns"]
    assert isinstance(apns, dict)
    file = tmp_path / "pushrelay.toml"
    file.write_text(
        f'[database]\nurl = "{database_url}"\n\n[apps.myapp]\nbundle_id = "{BUNDLE}"\n[apps.myapp.apns]\n'
        + "".join(f'{k} = "{v}"\n' for k, v in apns.items()),
        encoding="utf-8",
    )
    with DeviceRegistry(database_url) as registry:
        registry.register("myapp", tok(1), email="test@4d.com", language="fr_FR")  # as from a 4D session
        registry.register("myapp", tok(2), email="test@4d.com", language="es-MX")
        registry.register("myapp", tok(3), email="test@4d.com", language="ja")
    return file


def alert(sandbox: ApnsSandbox, n: int) -> object:
    return sandbox.received(tok(n))[-1].payload["aps"]["alert"]


def test_library_and_cli(sandbox: ApnsSandbox, config_file: Path, database_url: str, tmp_path: Path) -> None:

    config = load_config(config_file)
    with DeviceRegistry(database_url) as registry:
        push = PushNotification("myapp", config=config, registry=registry)
        note = {
            "title": "Hello",
            "body": "World",
            "localizations": {"fr": {"title": "Bonjour", "body": "le monde"}, "es-MX": {"body": "Mundo"}},
        }
        result = push.send(note, "test@4d.com")
        assert result.success and len(result.deliveries) == 3
        assert alert(sandbox, 1) == {"title": "Bonjour", "body": "le monde"}
        assert alert(sandbox, 2) == {"title": "Hello", "body": "Mundo"}  # a variant replaces what it gives
        assert alert(sandbox, 3) == {"title": "Hello", "body": "World"}

        too_big = {**note, "localizations": {"fr": {"body": "x" * 5000}}}
        with pytest.raises(NotificationError) as exc:
            push.send(too_big, "test@4d.com")
        assert exc.value.field == "localizations.fr" and "4096" in str(exc.value)
        assert len(sandbox.received(tok(1))) == 1

    c = str(config_file)
    sent = CliRunner().invoke(
        cli,
        ["send", "--config", c, "--app", "myapp", "--to", "test@4d.com", "--title", "Sale", "--body", "Today",
         "--localization", "fr:title=Soldes,body=Aujourd'hui, tout à -50 %", "--json"],
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert alert(sandbox, 1) == {"title": "Soldes", "body": "Aujourd'hui, tout à -50 %"}
    assert alert(sandbox, 2) == {"title": "Sale", "body": "Today"}

    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps({"es-MX": {"title": "Oferta"}, "ja": {"title": "セール"}}), encoding="utf-8")
    sent = CliRunner().invoke(
        cli, ["send", "--config", c, "--to", "test@4d.com", "--title", "Sale", "--localization", f"@{texts}"]
    )
    assert sent.exit_code == 0, sent.output
    assert [alert(sandbox, n) for n in (1, 2, 3)] == [
        {"title": "Sale"},
        {"title": "Oferta"},
        {"title": "セール"},
    ]

    bad = CliRunner().invoke(
        cli, ["send", "--config", c, "--to", "test@4d.com", "--title", "x", "--localization", "fr"]
    )
    assert bad.exit_code == 2 and "LANG:FIELD=TEXT" in bad.output
