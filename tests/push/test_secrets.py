"""No secret in a repr, a log line or an error: inline VAPID private keys, APNs .p8 keys, FCM
service-account keys, API keys, webhook secrets, database passwords, certificate passphrases.
And a webhook URL without a secret is a configuration error naming the key."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushrelay import ConfigurationError
from pushrelay.apns.auth import TokenAuth
from pushrelay.config import config_from_dict
from pushrelay.db import Database
from pushrelay.fcm.credentials import ServiceAccount
from pushrelay.server.apikeys import ApiKeyStore
from pushrelay.server.wiring import build_service
from pushrelay.webpush.vapid import generate_vapid_keys


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _body(pem: str) -> str:
    """A line of the key's base64 body: what would show if any part of the key leaked."""
    return pem.splitlines()[1]


def _config(tmp_path: Path, **app: object) -> tuple[dict[str, object], dict[str, str]]:
    vapid = generate_vapid_keys()
    p8 = _pem(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "AuthKey_ABC123DEFG.p8").write_text(p8)
    secrets = {"vapid": vapid.private_key, "p8": _body(p8), "hook": "whsec-0123456789abcdef",
               "db": "pg-pass-0123456789", "p12": "p12-pass-0123456789"}  # fmt: skip
    data: dict[str, object] = {
        "database": {"url": f"postgresql+psycopg://u:{secrets['db']}@127.0.0.1:1/x"},
        "apps": {
            "myapp": {
                "bundle_id": "com.x.app",
                "webhook_url": "https://backend.example/hook",
                "webhook_secret": secrets["hook"],
                "apns": {"team_id": "TEAM123456", "key_file": str(tmp_path / "AuthKey_ABC123DEFG.p8")},
                "webpush": {"vapid_private_key": vapid.private_key, "vapid_subject": "mailto:a@b.co"},
                **app,
            },
            "cert": {"bundle_id": "com.x.cert",
                     "apns": {"cert_file": str(tmp_path / "c.p12"), "cert_passphrase": secrets["p12"]}},
        },
    }  # fmt: skip
    return data, secrets


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


def test_config_reprs_show_no_secret(tmp_path: Path) -> None:
    data, secrets = _config(tmp_path)
    config = config_from_dict(data, base_dir=tmp_path)
    for shown in (repr(config), str(config), repr(config.apps["myapp"]), repr(config.apps["cert"])):
        assert _leaks(shown, secrets) == [], shown
    assert "vapid_private_key" in repr(config.apps["myapp"])  # the key is named, its value is not
    auth = config.apps["myapp"].apns.load_auth(app="myapp")  # type: ignore[union-attr]
    assert isinstance(auth, TokenAuth) and _leaks(repr(auth), secrets) == []


def test_fcm_service_account_errors_and_reprs_show_no_key(tmp_path: Path) -> None:
    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    account = {"type": "service_account", "project_id": "p", "client_email": "a@p.iam.gserviceaccount.com",
               "token_uri": "https://oauth2.googleapis.com/token", "private_key": pem}  # fmt: skip
    good = tmp_path / "sa.json"
    good.write_text(json.dumps(account))
    assert _body(pem) not in repr(ServiceAccount.from_file(good))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**account, "private_key": pem.replace("\n", "\n#", 3)}))
    with pytest.raises(ConfigurationError) as info:
        ServiceAccount.from_file(broken)
    assert _body(pem) not in str(info.value) and "private_key" in str(info.value)


def test_api_key_records_show_no_secret(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        key, secret = ApiKeyStore(db.engine).create(["send"], ["myapp"])
        assert secret not in repr(key) and secret not in str(key)
    finally:
        db.dispose()


def test_building_the_service_logs_no_secret(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, secrets = _config(tmp_path)
    data["database"] = {"url": sqlite_url}
    del data["apps"]["cert"]  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    service = build_service(config_from_dict(data, base_dir=tmp_path), with_worker=False)
    try:
        logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
        assert _leaks(logged, secrets) == []
    finally:
        service.close()


def test_a_webhook_without_a_secret_is_a_configuration_error(tmp_path: Path) -> None:
    data, _ = _config(tmp_path)
    del data["apps"]["myapp"]["webhook_secret"]  # type: ignore[index]
    with pytest.raises(ConfigurationError) as info:
        config_from_dict(data, base_dir=tmp_path)
    assert info.value.field == "apps.myapp.webhook_secret"
    assert "webhook_unsigned = true" in str(info.value)
    # explicitly unsigned is allowed
    data["apps"]["myapp"]["webhook_unsigned"] = True  # type: ignore[index]
    app = config_from_dict(data, base_dir=tmp_path).apps["myapp"]
    assert app.webhook_unsigned and app.webhook_secret is None
    # a configuration built in code gets the same check when the service starts
    config = config_from_dict(data, base_dir=tmp_path)
    bad = config.apps["myapp"].replace(webhook_unsigned=False)
    assert bad.webhook_problem() is not None and "apps.myapp.webhook_secret" in bad.webhook_problem()  # type: ignore[operator]
