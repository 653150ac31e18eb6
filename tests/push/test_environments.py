"""Devices of both APNs environments, each sent to its environment's endpoint
(``development_endpoint`` / ``production_endpoint``), against two strict sandboxes sharing their
issued tokens: a token sent to the other environment would be BadDeviceToken."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pushrelay.config import config_from_dict
from pushrelay.push import PushNotification
from pushrelay.registry import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox

from .conftest import BUNDLE, KEY_ID, TEAM

NOTE = {"title": "Hello", "body": "both environments"}


def test_each_environment_goes_to_its_endpoint(tmp_path: Path, sqlite_url: str) -> None:
    with (
        ApnsSandbox.running(directory=tmp_path / "prod") as production,
        ApnsSandbox.running(
            "development", directory=tmp_path / "dev", devices=production.devices
        ) as development,
    ):
        key = production.create_key(TEAM, KEY_ID, tmp_path / "keys")
        development.register_key(TEAM, KEY_ID, _public_key(key))
        for sandbox in (production, development):
            sandbox.add_topic(BUNDLE, TEAM)
        cas = tmp_path / "cas.pem"
        cas.write_bytes(production.ca_file.read_bytes() + development.ca_file.read_bytes())
        apns = {
            "team_id": TEAM,
            "key_file": str(key),
            "endpoint": production.url,
            "development_endpoint": development.url,
            "ca_file": str(cas),
        }
        config = config_from_dict(
            {"database": {"url": sqlite_url}, "apps": {"myapp": {"bundle_id": BUNDLE, "apns": apns}}}
        )
        phone = production.issue_token(BUNDLE)  # an App Store build
        dev_phone = development.issue_token(BUNDLE)  # a build from Xcode
        with DeviceRegistry(sqlite_url) as registry:
            registry.register("myapp", phone, email="test@4d.com")
            registry.register("myapp", dev_phone, email="test@4d.com", environment="development")
            result = PushNotification("myapp", config=config, registry=registry).send(NOTE, "test@4d.com")
        assert result.success, result
        assert len(production.received(phone)) == 1 and len(development.received(dev_phone)) == 1
        assert production.stats.rejected == {} and development.stats.rejected == {}


def _public_key(key_file: Path) -> ec.EllipticCurvePublicKey:
    key = load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.public_key()
