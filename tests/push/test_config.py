"""pushrelay.toml: resolution order, typed settings, errors naming key and file, env overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushrelay import ConfigurationError
from pushrelay.config import config_from_dict, find_config_file, load_config

FULL = """
[database]
url = "sqlite:///data/relay.db"

[apps.myapp]
bundle_id = "com.sample.myappname"
registered_tokens_only = true
webhook_url = "https://backend.example/hooks/push"
webhook_secret = "whsec-hunter3"

[apps.myapp.apns]
team_id = "TEAM123456"
key_file = "keys/AuthKey_ABC123DEFG.p8"
environment = "development"
endpoint = "https://127.0.0.1:9443"
ca_file = "extra-ca.pem"

[apps.myapp.fcm]
service_account_file = "firebase.json"

[apps.other]
bundle_id = "com.sample.other"
[apps.other.apns]
cert_file = "push.p12"
cert_passphrase = "hunter2"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_full_file_is_typed_and_paths_are_relative_to_it(tmp_path: Path) -> None:
    file = write(tmp_path / "conf" / "pushrelay.toml", FULL)
    config = load_config(file, env={}, cwd=tmp_path)
    assert config.source == file.resolve()
    assert config.database.url == f"sqlite:///{tmp_path / 'conf' / 'data' / 'relay.db'}"
    app = config.apps["myapp"]
    assert app.bundle_id == "com.sample.myappname" and app.registered_tokens_only
    assert app.apns is not None and app.apns.key_file == tmp_path / "conf" / "keys" / "AuthKey_ABC123DEFG.p8"
    assert app.apns.environment == "development" and app.apns.endpoint == "https://127.0.0.1:9443"
    assert app.app_id == "TEAM123456.com.sample.myappname"
    assert dict(app.fcm or {}) == {"service_account_file": "firebase.json"}  # passed through untouched
    assert app.webhook_url == "https://backend.example/hooks/push"
    other = config.apps["other"]
    assert other.apns is not None and other.apns.cert_file == tmp_path / "conf" / "push.p12"
    assert "hunter2" not in repr(config)


def test_resolution_order(tmp_path: Path) -> None:
    explicit = write(tmp_path / "a.toml", '[apps.a]\nbundle_id = "com.a"\n')
    from_env = write(tmp_path / "b.toml", '[apps.b]\nbundle_id = "com.b"\n')
    write(tmp_path / "pushrelay.toml", '[apps.c]\nbundle_id = "com.c"\n')
    env = {"PUSHRELAY_CONFIG": str(from_env)}
    assert find_config_file(explicit, env=env, cwd=tmp_path) == explicit.resolve()
    assert find_config_file(None, env=env, cwd=tmp_path) == from_env.resolve()
    assert find_config_file(None, env={}, cwd=tmp_path) == (tmp_path / "pushrelay.toml").resolve()
    empty = tmp_path / "empty"
    empty.mkdir()
    defaults = load_config(None, env={}, cwd=empty)
    assert defaults.source is None and dict(defaults.apps) == {}
    assert defaults.database.url == f"sqlite:///{empty / 'pushrelay.db'}"


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist") as info:
        load_config(tmp_path / "missing.toml", env={})
    assert info.value.file == str(tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError, match="PUSHRELAY_CONFIG"):
        load_config(None, env={"PUSHRELAY_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("toml", "key", "expected"),
    [
        ('[apps.x]\nbundle_id = "com.x"\ncolour = "red"\n', "apps.x.colour", "not a known setting"),
        ("[apps.x]\nbundle_id = 12\n", "apps.x.bundle_id", "must be a text, got an integer"),
        (
            '[apps.x]\nbundle_id = "com.x"\nregistered_tokens_only = "yes"\n',
            "apps.x.registered_tokens_only",
            "true or false",
        ),
        (
            '[apps.x]\nbundle_id = "com.x"\n[apps.x.apns]\nenvironment = "staging"\n',
            "apps.x.apns.environment",
            "production",
        ),
        (
            '[apps.x]\nbundle_id = "com.x"\n[apps.x.apns]\nendpoint = "http://insecure"\n',
            "apps.x.apns.endpoint",
            "https://",
        ),
        (
            '[apps.x]\nbundle_id = "com.x"\n[apps.x.apns]\nteam_id = "team"\n',
            "apps.x.apns.team_id",
            "Team ID",
        ),
        (
            '[apps.x]\nbundle_id = "com.x"\n[apps.x.apns]\nkey_file = "k.p8"\n',
            "apps.x.apns.team_id",
            "required",
        ),
        ('[apps.x]\n[apps.x.apns]\nteam_id = "TEAM123456"\n', "apps.x.bundle_id", "required"),
        ('[apps."my app"]\nbundle_id = "com.x"\n', "apps.my app", "not a valid app name"),
        ('[databse]\nurl = "sqlite:///x.db"\n', "databse", "not a known section"),
        ('[database]\nurl = "mysql://x/y"\n', "database.url", "postgresql://"),
        ('[apps.x]\nbundle_id = "com.x"\nfcm = "key.json"\n', "apps.x.fcm", "must be a table"),
    ],
)
def test_bad_settings_name_the_key_and_the_file(tmp_path: Path, toml: str, key: str, expected: str) -> None:
    file = write(tmp_path / "pushrelay.toml", toml)
    with pytest.raises(ConfigurationError, match=expected) as info:
        load_config(file, env={})
    assert info.value.field == key
    assert info.value.file == str(file.resolve())
    assert str(file.resolve()) in str(info.value) and key in str(info.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    file = write(tmp_path / "pushrelay.toml", "[apps\n")
    with pytest.raises(ConfigurationError, match="not valid TOML") as info:
        load_config(file, env={})
    assert info.value.file == str(file.resolve())


def test_environment_overrides_secrets(tmp_path: Path) -> None:
    file = write(tmp_path / "conf" / "pushrelay.toml", FULL)
    env = {
        "PUSHRELAY_APPS__MYAPP__APNS__KEY_FILE": "/secrets/AuthKey_ZZZ999YYYY.p8",
        "PUSHRELAY_APPS__OTHER__APNS__CERT_PASSPHRASE": "from-vault",
        "PUSHRELAY_APPS__MYAPP__REGISTERED_TOKENS_ONLY": "false",
        "PUSHRELAY_APPS__MYAPP__FCM__SERVICE_ACCOUNT_FILE": "/secrets/firebase.json",
        "PUSHRELAY_DATABASE_URL": "postgresql://relay@db/relay",
        "PUSHRELAY_TEST_PG": "not a setting (no double underscore)",
    }
    config = load_config(file, env=env, cwd=tmp_path)
    myapp, other = config.apps["myapp"], config.apps["other"]
    assert myapp.apns is not None and myapp.apns.key_file == Path("/secrets/AuthKey_ZZZ999YYYY.p8")
    assert myapp.apns.team_id == "TEAM123456"  # the rest of the table is kept
    assert not myapp.registered_tokens_only
    assert dict(myapp.fcm or {}) == {"service_account_file": "/secrets/firebase.json"}
    assert other.apns is not None and other.apns.cert_passphrase == "from-vault"
    assert config.database.url == "postgresql://relay@db/relay"


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("PUSHRELAY_APPS__NOPE__APNS__KEY_FILE", "not declared"),
        ("PUSHRELAY_APPS__MYAPP__APNS__KEYFILE", "not a known setting"),
        ("PUSHRELAY_APPS__MYAPP__APNS__ENVIRONMENT", "production"),
        ("PUSHRELAY_SERVRE__PORT", "not a setting"),
    ],
)
def test_bad_overrides_name_the_variable(tmp_path: Path, variable: str, expected: str) -> None:
    file = write(tmp_path / "pushrelay.toml", FULL)
    with pytest.raises(ConfigurationError, match=expected) as info:
        load_config(file, env={variable: "staging"})
    assert variable in str(info.value)


def test_apps_resolve_like_4d(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "pushrelay.toml", FULL), env={})
    for ref in ("myapp", "com.sample.myappname", "TEAM123456.com.sample.myappname", "myappname", "MYAPP"):
        assert config.app(ref).name == "myapp"
    with pytest.raises(ConfigurationError, match="several apps"):
        config.app(None)
    with pytest.raises(ConfigurationError, match=r"no app 'nope'.*myapp, other"):
        config.app("nope")
    single = config_from_dict({"apps": {"solo": {"bundle_id": "com.solo"}}})
    assert single.app(None).name == "solo"
    with pytest.raises(ConfigurationError, match="import-4d"):
        config_from_dict({}).app(None)


def test_fourd_folder_gives_bundle_team_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "MobileApps" / "TEAM123456.com.sample.myappname"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps(
            {"application": {"id": "com.sample.myappname", "name": "My App"}, "team": {"id": "TEAM123456"}}
        )
    )
    (folder / "AuthKey_ABC123DEFG.p8").write_text("not read at load time")
    file = write(tmp_path / "pushrelay.toml", f'[apps.myapp]\nfourd_folder = "{folder}"\n')
    app = load_config(file, env={}).apps["myapp"]
    assert app.bundle_id == "com.sample.myappname" and app.team_id == "TEAM123456"
    assert app.apns is not None and app.apns.key_file == folder / "AuthKey_ABC123DEFG.p8"
    assert app.fourd_folder == folder

    missing = write(tmp_path / "bad.toml", f'[apps.myapp]\nfourd_folder = "{tmp_path / "nowhere"}"\n')
    with pytest.raises(ConfigurationError, match="fourd_folder") as info:
        load_config(missing, env={})
    assert info.value.field == "apps.myapp.fourd_folder"
