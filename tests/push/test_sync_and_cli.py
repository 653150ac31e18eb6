"""The blocking API, the app argument (names, 4D auth objects) and ``pushrelay send`` / ``devices``,
against the sandbox served from a background thread."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pushrelay import ConfigurationError
from pushrelay.cli import cli
from pushrelay.config import Config, config_from_dict
from pushrelay.push import PushNotification
from pushrelay.registry import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox

from .conftest import BUNDLE, KEY_ID, TEAM, app_settings, issue_devices, tok

NOTE = {"title": "Hello", "body": "World"}


@pytest.fixture
def threaded_sandbox(tmp_path: Path) -> Iterator[ApnsSandbox]:
    with ApnsSandbox.running(directory=tmp_path / "sandbox") as sb:
        sb.add_topic(BUNDLE, TEAM)
        issue_devices(sb)
        yield sb


@pytest.fixture
def key(threaded_sandbox: ApnsSandbox, tmp_path: Path) -> Path:
    return threaded_sandbox.create_key(TEAM, KEY_ID, tmp_path / "keys")


@pytest.fixture
def setup(
    threaded_sandbox: ApnsSandbox, key: Path, sqlite_url: str
) -> Iterator[tuple[Config, DeviceRegistry]]:
    config = config_from_dict(
        {"database": {"url": sqlite_url}, "apps": {"myapp": app_settings(threaded_sandbox, key)}}
    )
    with DeviceRegistry(sqlite_url) as registry:
        registry.register("myapp", tok(1), email="test@4d.com")
        registry.register("myapp", tok(2), email="test@4d.com", os="iPadOS")
        yield config, registry


def test_blocking_api_like_4d(threaded_sandbox: ApnsSandbox, setup: tuple[Config, DeviceRegistry]) -> None:
    config, registry = setup
    push = PushNotification("myappname", config=config, registry=registry)  # 4D's short name
    result = push.send(NOTE, "test@4d.com")
    assert result.success and len(result.deliveries) == 2
    assert push.sendAll(NOTE).success
    assert len(threaded_sandbox.received(tok(1))) == 2
    assert "0000000000000000000000000000000000000000000000000000000000000001" not in repr(result.deliveries)


async def test_blocking_api_inside_a_running_event_loop(
    threaded_sandbox: ApnsSandbox, setup: tuple[Config, DeviceRegistry]
) -> None:
    config, registry = setup
    push = PushNotification(config=config, registry=registry)  # the only app
    result = push.send(NOTE, tok(1))  # runs on a worker thread's loop, not this one
    assert result.success
    asyncio.get_running_loop()  # still ours, untouched


def test_4d_auth_object(
    threaded_sandbox: ApnsSandbox, key: Path, setup: tuple[Config, DeviceRegistry]
) -> None:
    _, registry = setup
    empty = config_from_dict({})
    auth = {
        "bundleId": BUNDLE,
        "teamId": TEAM,
        "authKey": str(key),
        "isDevelopment": True,
        "endpoint": threaded_sandbox.url,
        "caFile": str(threaded_sandbox.ca_file),
    }
    push = PushNotification(auth, config=empty, registry=registry)
    assert (
        push.app.name == BUNDLE and push.app.apns is not None and push.app.apns.environment == "development"
    )
    result = push.send(NOTE, tok(7))  # a raw token: delivered, with a warning
    assert result.success and result.deliveries[0].environment == "development"

    # with a configured app of that bundle id, its devices and settings are used
    config, _ = setup
    merged = PushNotification({"bundleId": BUNDLE, "isDevelopment": True}, config=config, registry=registry)
    assert merged.app.name == "myapp" and merged.app.apns is not None
    assert merged.app.apns.environment == "development" and merged.app.apns.key_file == key


@pytest.mark.parametrize(
    ("auth", "field", "message"),
    [
        ({"bundleId": BUNDLE, "serverKey": "AAAA"}, "serverKey", "shut down.*service-account"),
        ({"teamId": TEAM}, "bundleId", "bundleId is required"),
        ({"bundleId": "com.unknown"}, "authKey", "authKey"),
        ({"bundleId": BUNDLE, "authKey": "/k/AuthKey_ABC123DEFG.p8"}, "teamId", "teamId is required"),
        ({"bundleId": BUNDLE, "isDevelopment": "yes"}, "isDevelopment", "true or false"),
        ({"bundleId": BUNDLE, "colour": 1}, "colour", "unknown auth key"),
    ],
)
def test_bad_auth_objects(auth: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        PushNotification(auth, config=config_from_dict({}), database_url="sqlite://")
    assert info.value.field == field


def test_app_and_targets_arguments() -> None:
    two = config_from_dict({"apps": {"a": {"bundle_id": "com.a"}, "b": {"bundle_id": "com.b"}}})
    assert PushNotification("com.b", config=two, database_url="sqlite://").app.name == "b"
    assert PushNotification("b", ["ios", "android"], config=two, database_url="sqlite://").targets == (
        "ios",
        "android",
    )
    with pytest.raises(ConfigurationError, match="several apps"):
        PushNotification(config=two, database_url="sqlite://")
    one = config_from_dict({"apps": {"a": {"bundle_id": "com.a"}}})
    assert PushNotification("android", config=one, database_url="sqlite://").targets == ("android",)
    with pytest.raises(ConfigurationError, match="targets") as info:
        PushNotification("a", "blackberry", config=one, database_url="sqlite://")
    assert info.value.field == "targets"


# -- the command line ---------------------------------------------------------------------------------
@pytest.fixture
def config_file(threaded_sandbox: ApnsSandbox, key: Path, tmp_path: Path, database_url: str) -> Path:
    file = tmp_path / "pushrelay.toml"
    file.write_text(
        f"""
[database]
url = "{database_url}"

[apps.myapp]
bundle_id = "{BUNDLE}"
[apps.myapp.apns]
team_id = "{TEAM}"
key_file = "{key}"
endpoint = "{threaded_sandbox.url}"
ca_file = "{threaded_sandbox.ca_file}"
""",
        encoding="utf-8",
    )
    return file


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def test_cli_devices_and_send(threaded_sandbox: ApnsSandbox, config_file: Path) -> None:
    c = str(config_file)
    added = CliRunner().invoke(cli, ["devices", "add", "--config", c, "--app", "myapp", "--email", "test@4d.com",
                                     "--token", tok(1)])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("created: myapp ios 000000…0001 test@4d.com")
    dev = CliRunner().invoke(cli, ["devices", "add", "--config", c, "--app", BUNDLE, "--email", "test@4d.com",
                                   "--token", tok(2), "--environment", "development", "--json"])  # fmt: skip
    assert dev.exit_code == 0 and json.loads(dev.stdout)["device"]["environment"] == "development"

    sent = CliRunner().invoke(cli, ["send", "--config", c, "--app", "myapp", "--to", "test@4d.com",
                                    "--title", "Hi", "--body", "there", "--badge", "3", "--json"])  # fmt: skip
    assert sent.exit_code == 0, sent.output
    data = json.loads(sent.stdout)  # stdout holds the JSON and nothing else
    assert data["success"] and len(data["deliveries"]) == 2 and data["errors"] == []
    assert threaded_sandbox.received(tok(1))[0].payload["aps"]["badge"] == 3

    human = CliRunner().invoke(cli, ["send", "--config", c, "--to", "test@4d.com", "--to", "nobody@4d.com",
                                     "--title", "Hi", "--data-class", "Employees",
                                     "--primary-key", "12"])  # fmt: skip
    assert human.exit_code == 0, human.output
    assert "delivered to 2 of 2 device(s)" in human.stdout
    expected = "warning: No session file was found for the following mail address : nobody@4d.com"
    assert expected in human.stderr
    assert threaded_sandbox.received(tok(1))[-1].payload["entity"] == {"primaryKey": 12}

    everyone = CliRunner().invoke(cli, ["send", "--config", c, "--all", "--body", "to all", "--json"])
    assert everyone.exit_code == 0 and len(json.loads(everyone.stdout)["deliveries"]) == 2

    listed = CliRunner().invoke(cli, ["devices", "list", "--config", c])
    assert listed.exit_code == 0 and "000000…0001" in listed.stdout and tok(1) not in listed.stdout

    threaded_sandbox.script(tok(1), "unregistered")
    threaded_sandbox.script(tok(2), "bad_token")
    failed = CliRunner().invoke(cli, ["send", "--config", c, "--to", "test@4d.com", "--title", "x", "--json"])
    assert failed.exit_code == 1 and not json.loads(failed.stdout)["success"]
    retired = CliRunner().invoke(cli, ["devices", "list", "--config", c, "--json"])
    assert {d["active"] for d in json.loads(retired.stdout)} == {False}

    pruned = CliRunner().invoke(cli, ["devices", "prune", "--config", c, "--older-than", "90d", "--json"])
    assert pruned.exit_code == 0 and json.loads(pruned.stdout) == {"removed": 0}
    assert (
        "removed 0"
        in CliRunner().invoke(cli, ["devices", "prune", "--config", c, "--older-than", "2w"]).stdout
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["send", "--to", "a@x.com", "--all", "--title", "x"], 2, "either --to or --all"),
        (["send", "--title", "x"], 2, "at least one --to"),
        (["send", "--to", "a@x.com", "--primary-key", "1", "--title", "x"], 2, "needs --data-class"),
        (["send", "--to", "a@x.com", "--user-info", "[1]", "--title", "x"], 2, "JSON object"),
        (["send", "--to", "a@x.com", "--color", "red"], 1, "color must be #rrggbb"),
        (["send", "--app", "nope", "--to", "a@x.com", "--title", "x"], 1, "no app 'nope'"),
        (["devices", "add", "--app", "myapp", "--token", "xyz"], 1, "hexadecimal"),
        (
            ["devices", "add", "--app", "myapp", "--token", tok(1), "--email", "bad"],
            1,
            "not an e-mail address",
        ),
        (["devices", "prune", "--older-than", "soon"], 2, "duration like 90d"),
    ],
)
def test_cli_errors_are_one_clear_line(config_file: Path, args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(cli, [*args, "--config", str(config_file)])
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.output and result.stdout == ""
