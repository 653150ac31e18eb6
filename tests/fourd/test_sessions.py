"""Reading 4D session files and app folders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tokenshapes import fcm_token

from pushrelay.fourd import FourDFolderError, find_app_folders, read_app_folder
from pushrelay.fourd.sessions import (
    FourDSession,
    SessionFileError,
    iter_session_files,
    parse_session,
    read_session,
)

from .mobileapps import BUNDLE, TEAM, android_app_folder, ios_app_folder, session, write_session

HEX = "ab" * 32
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def parse(data: object) -> FourDSession:
    return parse_session(data, file=Path("/x/SESSION1"), modified=NOW)


def test_an_iphone_session() -> None:
    s = parse(session("Test@4d.com", HEX.upper()))
    assert s.platform == "ios" and s.token == HEX and not s.simulator
    assert s.email == "Test@4d.com" and s.language == "fr_FR" and s.app_version == "2.1"
    assert s.device_model == "iPhone 15" and s.os_version == "17.4" and s.modified == NOW
    info = s.device_info("myapp")
    assert info.app == "myapp" and info.seen_at == NOW and info.platform == "ios"


def test_platforms_from_device_os() -> None:
    assert parse(session("a@x.com", HEX, os_name="iPadOS")).platform == "ios"
    assert parse(session("a@x.com", fcm_token("x"), os_name="Android")).platform == "android"
    assert parse(session("a@x.com", HEX, os_name=None)).platform == "ios"


def test_simulators_are_ios_devices_flagged_simulator() -> None:
    udid = "A1B2C3D4-1111-2222-3333-444455556666"
    s = parse(session("a@x.com", udid, simulator=True))
    assert s.platform == "ios" and s.simulator and s.token == udid
    assert parse(session("a@x.com", "booted")).simulator


def test_sessions_without_push_token_or_email() -> None:
    assert parse(session("a@x.com", None)).token is None
    guest = parse(session("", HEX))
    assert guest.email is None
    odd = parse(session("not an address", HEX))
    assert odd.email is None and "not an e-mail address" in odd.notes[0]


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ([1, 2], None, "JSON object"),
        ({"device": "iPhone"}, "device", "must be an object"),
        (session("a@x.com", HEX, os_name="Symbian"), "device.os", "iOS, iPadOS or Android"),
        (session("a@x.com", "zz-not-a-token"), "device.token", "neither an APNs token"),
        ({**session("a@x.com", HEX), "email": 42}, "email", "must be a text"),
        ({"device": {"token": 123, "os": "iOS"}}, "device.token", "must be a text"),
    ],
)
def test_malformed_sessions_say_why(data: object, field: str | None, reason: str) -> None:
    with pytest.raises(SessionFileError, match=reason) as info:
        parse(data)
    assert info.value.field == field and info.value.file.name == "SESSION1"


def test_reading_files(tmp_path: Path) -> None:
    folder = ios_app_folder(tmp_path)
    write_session(folder, "GOOD", session("a@x.com", HEX), mtime=1_700_000_000)
    write_session(folder, "BROKEN", '{"email": "b@x.com", "device": {')
    (folder / "BINARY").write_bytes(b"\xff\xfe\x00garbage")
    (folder / ".DS_Store").write_bytes(b"\x00\x00")
    (folder / "notes.txt").write_text("not a session")
    assert [p.name for p in iter_session_files(folder)] == ["BINARY", "BROKEN", "GOOD"]
    good = read_session(folder / "GOOD")
    assert good.modified == datetime.fromtimestamp(1_700_000_000, UTC)
    with pytest.raises(SessionFileError, match=r"not valid JSON \(line 1"):
        read_session(folder / "BROKEN")
    with pytest.raises(SessionFileError, match="UTF-8"):
        read_session(folder / "BINARY")


def test_app_folders(tmp_path: Path) -> None:
    ios = ios_app_folder(tmp_path / "MobileApps")
    android = android_app_folder(tmp_path / "MobileApps")
    (tmp_path / "MobileApps" / "stray").mkdir()
    assert find_app_folders(tmp_path / "MobileApps") == sorted([ios, android])
    assert find_app_folders(ios) == [ios]
    app = read_app_folder(ios)
    assert (app.bundle_id, app.team_id, app.platform, app.app_id) == (BUNDLE, TEAM, "ios", f"{TEAM}.{BUNDLE}")
    assert app.auth_key == ios / "AuthKey_ABC123DEFG.p8" and app.short_name == "myappname"
    droid = read_app_folder(android)
    assert droid.platform == "android" and droid.team_id is None and droid.google_services is not None


def test_bad_app_folders_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FourDFolderError, match="holds no 4D app folder"):
        find_app_folders(tmp_path)
    folder = tmp_path / "X"
    folder.mkdir()
    (folder / "manifest.json").write_text("{nope")
    with pytest.raises(FourDFolderError, match="not valid JSON") as info:
        read_app_folder(folder)
    assert info.value.file == str(folder / "manifest.json")
    (folder / "manifest.json").write_text('{"team": {"id": "lowercase1"}}')
    with pytest.raises(FourDFolderError, match="Team ID") as info:
        read_app_folder(folder)
    assert info.value.field == "team.id"
