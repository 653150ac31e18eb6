"""[apps.X.webpush] settings and the `pushrelay keys vapid` command."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pushrelay import ConfigurationError, CredentialsError, Notification
from pushrelay.cli import cli
from pushrelay.sandbox.webpush import WebPushSandbox
from pushrelay.webpush import DEFAULT_ALLOWED_HOSTS, VapidKey, WebPushSettings, generate_vapid_keys

SUBJECT = "mailto:ops@example.com"
S = {"vapid_subject": SUBJECT}
K = {**S, "vapid_private_key": "k"}  # "k" is replaced by a real key in the test


def test_inline_key_and_defaults(tmp_path: Path) -> None:
    pair = generate_vapid_keys()
    s = WebPushSettings.from_mapping(
        {"vapid_private_key": pair.private_key, "vapid_subject": SUBJECT}, file=tmp_path / "c.toml"
    )
    assert s.vapid.public_key_b64 == pair.public_key
    assert s.allowed_hosts == DEFAULT_ALLOWED_HOSTS and s.ca_file is None


def test_key_file_relative_to_the_config(tmp_path: Path) -> None:
    pair = generate_vapid_keys()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "vapid.pem").write_bytes(pair.private_pem)
    s = WebPushSettings.from_mapping(
        {
            "vapid_private_key_file": "keys/vapid.pem",
            "vapid_subject": SUBJECT,
            "allowed_hosts": ["push.example"],
        },
        file=tmp_path / "pushrelay.toml",
    )
    assert s.vapid.public_key_b64 == pair.public_key
    assert s.allowed_hosts == ("push.example",)


@pytest.mark.parametrize(
    ("table", "key", "fragment"),
    [
        ({"vapid_private_key": "x"}, "webpush.vapid_subject", "mailto:"),
        ({"vapid_subject": SUBJECT}, "webpush.vapid_private_key_file", "exactly one of"),
        ({**S, "vapid_private_key": "short"}, "webpush.vapid_private_key", "32-byte"),
        ({**S, "vapid_private_key_file": "missing.pem"}, "webpush.vapid_private_key_file", "does not exist"),
        ({**K, "allowed_hosts": "fcm.googleapis.com"}, "webpush.allowed_hosts", "list"),
        ({**K, "ttl": -1}, "webpush.ttl", "seconds"),
        ({**K, "gcm_key": "x"}, "webpush.gcm_key", "unknown key"),
    ],
)  # fmt: skip
def test_errors_name_the_key_and_file(
    tmp_path: Path, table: dict[str, object], key: str, fragment: str
) -> None:
    if table.get("vapid_private_key") == "k":
        table = {**table, "vapid_private_key": generate_vapid_keys().private_key}
    config = tmp_path / "pushrelay.toml"
    with pytest.raises(ConfigurationError) as info:
        WebPushSettings.from_mapping(table, file=config)
    assert info.value.field == key and fragment in str(info.value)
    assert str(config) in str(info.value) or isinstance(info.value, CredentialsError)


def test_secret_never_in_errors(tmp_path: Path) -> None:
    secret = generate_vapid_keys().private_key[:-2]  # wrong length
    with pytest.raises(ConfigurationError) as info:
        WebPushSettings.from_mapping(
            {"vapid_subject": SUBJECT, "vapid_private_key": secret}, file=tmp_path / "c"
        )
    assert secret not in str(info.value)


async def test_settings_build_a_working_client(tmp_path: Path) -> None:
    async with WebPushSandbox() as sb:
        s = WebPushSettings.from_mapping(
            {
                "vapid_private_key": generate_vapid_keys().private_key,
                "vapid_subject": SUBJECT,
                "allowed_hosts": [sb.allowed_host],
                "ca_file": str(sb.ca_file),
                "ttl": 3600,
            },
            file=tmp_path / "c.toml",
        )
        sub = sb.new_subscription()
        async with s.client() as client:
            assert (await client.send(Notification(title="hi"), sub)).ok
        assert sb.received(sub)[0].ttl == 3600


def test_vapid_keys_command_prints_a_usable_pair() -> None:
    result = CliRunner().invoke(cli, ["keys", "vapid", "--json"])
    assert result.exit_code == 0, result.output
    pair = json.loads(result.output)
    assert VapidKey.from_string(pair["private_key"], subject=SUBJECT).public_key_b64 == pair["public_key"]


def test_vapid_keys_command_writes_a_private_file(tmp_path: Path) -> None:
    out = tmp_path / "vapid.pem"
    runner = CliRunner()
    result = runner.invoke(cli, ["keys", "vapid", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = VapidKey.from_file(out, subject=SUBJECT)
    assert key.public_key_b64 in result.output
    assert key.private_key_b64 not in result.output
    again = runner.invoke(cli, ["keys", "vapid", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output


def test_the_old_name_is_a_hidden_alias() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["vapid-keys", "--json"])
    assert result.exit_code == 0, result.output
    assert "pushrelay keys vapid" in result.stderr
    assert set(json.loads(result.stdout)) == {"public_key", "private_key"}
    assert "vapid-keys" not in runner.invoke(cli, ["--help"]).output
