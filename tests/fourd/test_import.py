"""Importing a MobileApps folder built from the documented format, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tokenshapes import fcm_token

from pushrelay.cli import cli
from pushrelay.config import config_from_dict, load_config
from pushrelay.fourd.importer import import_mobile_apps
from pushrelay.registry import DeviceRegistry

from .mobileapps import BUNDLE, TEAM, android_app_folder, ios_app_folder, session, write_session

IPHONE, IPAD, OTHER = "a1" * 32, "b2" * 32, "c3" * 32
UDID = "A1B2C3D4-1111-2222-3333-444455556666"
PIXEL = fcm_token("pixel")


@pytest.fixture
def mobile_apps(tmp_path: Path) -> Path:
    root = tmp_path / "MobileApps"
    ios = ios_app_folder(root)
    write_session(ios, "S-IPHONE", session("Test@4d.com", IPHONE), mtime=1_700_000_000)
    write_session(ios, "S-IPAD", session("test@4d.com", IPAD, os_name="iPadOS", description="iPad Pro"))
    write_session(ios, "S-OTHER", session("other@4d.com", OTHER))
    write_session(ios, "S-SIM", session("dev@4d.com", UDID, simulator=True, description="Simulator"))
    write_session(ios, "S-NOPUSH", session("nopush@4d.com", None))
    write_session(ios, "S-BROKEN", '{"email": "broken@4d.com", "device": {"token": "')
    write_session(ios, "S-WRONGOS", session("x@4d.com", IPHONE, os_name="Windows Phone"))
    (ios / "readme.txt").write_text("not a session")
    droid = android_app_folder(root)
    write_session(droid, "S-PIXEL", session("test@4d.com", PIXEL, os_name="Android"))
    return root


@pytest.fixture
def registry(database_url: str) -> Iterator[DeviceRegistry]:
    with DeviceRegistry(database_url) as reg:
        yield reg


def test_import_reads_every_good_session_and_reports_the_rest(
    mobile_apps: Path, registry: DeviceRegistry
) -> None:
    report = import_mobile_apps(mobile_apps, registry, config=config_from_dict({}))
    ios, droid = report.apps  # the iOS folder first, then the Android one of the same bundle id
    assert (ios.name, ios.platform, ios.new, droid.name, droid.new) == (
        "myappname",
        "ios",
        True,
        "myappname",
        False,
    )
    assert (ios.created, ios.without_token, droid.created) == (4, 1, 1)
    assert sorted(name for name, _ in ios.skipped) == ["S-BROKEN", "S-WRONGOS"]
    reasons = dict(ios.skipped)
    assert "not valid JSON" in reasons["S-BROKEN"] and "iOS, iPadOS or Android" in reasons["S-WRONGOS"]

    devices = {d.token: d for d in registry.stream("myappname")}
    assert set(devices) == {IPHONE, IPAD, OTHER, UDID, PIXEL}
    assert devices[UDID].simulator and devices[UDID].platform == "ios"
    assert devices[PIXEL].platform == "android"
    assert devices[IPAD].os == "iPadOS" and devices[IPAD].device_model == "iPad Pro"
    assert devices[IPHONE].last_seen_at.timestamp() == 1_700_000_000  # the file's modification time
    assert {d.token for d in registry.for_emails("myappname", ["TEST@4d.com"])} == {
        IPHONE,
        IPAD,
        PIXEL,
    }

    # the new app is proposed with its 4D folder, so credentials keep coming from there
    assert list(report.new_config_tables) == ["myappname"]
    assert f'fourd_folder = "{mobile_apps / f"{TEAM}.{BUNDLE}"}"' in report.new_config_tables["myappname"]


def test_importing_twice_changes_nothing(mobile_apps: Path, registry: DeviceRegistry) -> None:
    import_mobile_apps(mobile_apps, registry)
    before = [d.to_dict() for d in registry.stream("myappname", include_retired=True)]
    again = import_mobile_apps(mobile_apps, registry)
    assert again.totals["created"] == again.totals["updated"] == 0 and again.totals["unchanged"] == 5
    assert [d.to_dict() for d in registry.stream("myappname", include_retired=True)] == before


def test_a_configured_app_keeps_its_name(mobile_apps: Path, registry: DeviceRegistry) -> None:
    config = config_from_dict({"apps": {"shop": {"bundle_id": BUNDLE}}})
    report = import_mobile_apps(mobile_apps, registry, config=config)
    assert {a.name for a in report.apps} == {"shop"} and report.new_config_tables == {}
    assert registry.count("shop") == 5


def test_cli_import_writes_the_config_and_the_devices(
    mobile_apps: Path, tmp_path: Path, database_url: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config_file = work / "pushrelay.toml"
    config_file.write_text(f'# my settings\n[database]\nurl = "{database_url}"\n', encoding="utf-8")
    runner = CliRunner()

    dry = runner.invoke(
        cli, ["import-4d", str(mobile_apps), "--config", str(config_file), "--dry-run", "--json"]
    )
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["totals"]["importable"] == 5
    assert "fourd_folder" not in config_file.read_text()

    result = runner.invoke(cli, ["import-4d", str(mobile_apps), "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert "myappname (com.sample.myappname, ios" in result.stdout
    assert "S-BROKEN skipped" in result.stderr and "added 1 app(s)" in result.stdout
    text = config_file.read_text()
    assert text.startswith("# my settings\n") and "[apps.myappname]" in text

    config = load_config(config_file, env={})
    app = config.app("TEAM123456.com.sample.myappname")
    assert app.name == "myappname" and app.apns is not None and app.apns.key_file is not None
    assert app.apns.key_file.name == "AuthKey_ABC123DEFG.p8"

    again = runner.invoke(cli, ["import-4d", str(mobile_apps), "--config", str(config_file), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["config_added"] == [] and data["totals"]["unchanged"] == 5
    assert config_file.read_text() == text

    listed = runner.invoke(
        cli, ["devices", "list", "--config", str(config_file), "--email", "test@4d.com", "--json"]
    )
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 3


def test_cli_import_of_a_folder_without_apps_fails_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "pushrelay.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n')
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["import-4d", str(tmp_path / "empty"), "--config", str(config)])
    assert result.exit_code == 1
    assert "holds no 4D app folder" in result.stderr and "Traceback" not in result.output
    missing = CliRunner().invoke(
        cli, ["import-4d", str(tmp_path / "empty"), "--config", str(tmp_path / "no.toml")]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_cli_import_without_a_config_file_creates_one(
    mobile_apps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "fresh"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("PUSHRELAY_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["import-4d", str(mobile_apps)])
    assert result.exit_code == 0, result.output
    assert "[apps.myappname]" in (work / "pushrelay.toml").read_text()
    config = load_config(None, env={}, cwd=work)
    assert config.app(None).name == "myappname"
    with DeviceRegistry(config.database.url) as registry:  # ./pushrelay.db, the default
        assert config.database.url == f"sqlite:///{work / 'pushrelay.db'}"
        assert registry.count("myappname") == 5
