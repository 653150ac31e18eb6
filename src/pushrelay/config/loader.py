"""Finding, reading and checking ``pushrelay.toml``, and applying environment overrides.

Where the settings come from, first match wins:

1. the path given explicitly (``--config PATH`` on the command line);
2. the ``PUSHRELAY_CONFIG`` environment variable;
3. ``pushrelay.toml`` in the current directory;
4. built-in defaults: ``sqlite:///pushrelay.db`` and no app.

Then environment variables override single settings, so that secrets need not sit in the file:
``PUSHRELAY_<PATH>`` where ``<PATH>`` is the setting's dotted path in upper case with ``__``
between the parts, e.g. ``PUSHRELAY_APPS__MYAPP__APNS__KEY_FILE`` for ``apps.myapp.apns.key_file``
(app names compare case-insensitively, ``-`` written as ``_``). ``PUSHRELAY_DATABASE_URL`` is
accepted as a shorter spelling of ``PUSHRELAY_DATABASE__URL``. An override may only name an app
that the file declares. The ``[service]`` settings have short spellings too, ``PUSHRELAY_<KEY>``
(``PUSHRELAY_RATE_LIMIT`` for ``service.rate_limit``): those are read, over this configuration,
by :meth:`pushrelay.server.service.ServiceSettings.from_config`.

Relative paths in the file are relative to the file's folder; in environment variables, to the
current directory. Unknown keys and wrong types raise :class:`ConfigurationError` naming the key
and the file (or the variable).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .._exceptions import ConfigurationError
from ..db import DEFAULT_DATABASE_URL, normalize_url
from ..fourd.folder import FourDFolderError, read_app_folder
from ..local_time import QuietHours, parse_local_time
from .model import ApnsSettings, AppConfig, Config, DatabaseSettings, ServiceConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "ENV_PREFIX",
    "EXTRA_SECTIONS",
    "config_from_dict",
    "find_config_file",
    "load_config",
    "service_env_overrides",
]

CONFIG_ENV = "PUSHRELAY_CONFIG"
ENV_PREFIX = "PUSHRELAY_"
DEFAULT_CONFIG_NAME = "pushrelay.toml"

EXTRA_SECTIONS: frozenset[str] = frozenset()
"""Top-level tables owned by other parts of pushrelay (``[server]``...). Their contents are passed
through untouched in :attr:`Config.sections`; a part that adds one lists its name here."""

# Variables that start with the prefix but are not settings.
_NOT_SETTINGS = {CONFIG_ENV, "PUSHRELAY_DATABASE_URL"}

_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_BUNDLE_ID = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_TEAM_ID = re.compile(r"[A-Z0-9]{10}")


# -- small typed readers ------------------------------------------------------------------------
class _Source:
    """Where values come from, for error messages: a file, or an environment variable."""

    def __init__(self, file: Path | None, base_dir: Path, variable: str | None = None) -> None:
        self.file = file
        self.base_dir = base_dir
        self.variable = variable

    def error(self, key: str, message: str) -> ConfigurationError:
        where = (
            f"environment variable {self.variable}"
            if self.variable
            else (str(self.file) if self.file else "defaults")
        )
        return ConfigurationError(
            f"{where}: {key} {message}",
            field=key,
            file=str(self.file) if self.file and not self.variable else None,
        )


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a text", dict: "a table",
            list: "an array"}.get(type(value), type(value).__name__)  # fmt: skip


def _text(value: Any, key: str, src: _Source) -> str:
    if not isinstance(value, str):
        raise src.error(key, f"must be a text, got {_type_name(value)}")
    if not value.strip():
        raise src.error(key, "must not be empty")
    return value.strip()


def _bool(value: Any, key: str, src: _Source) -> bool:
    if isinstance(value, str) and src.variable:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    if not isinstance(value, bool):
        raise src.error(key, f"must be true or false, got {_type_name(value)}")
    return value


def _path(value: Any, key: str, src: _Source) -> Path:
    text = _text(value, key, src)
    path = Path(text).expanduser()
    return path if path.is_absolute() else (src.base_dir / path)


def _https_url(value: Any, key: str, src: _Source) -> str:
    text = _text(value, key, src)
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise src.error(key, f"must be an https:// URL, got {text!r}")
    return text.rstrip("/")


def _http_url(value: Any, key: str, src: _Source) -> str:
    text = _text(value, key, src)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise src.error(key, f"must be an http:// or https:// URL, got {text!r}")
    return text


def _environment(value: Any, key: str, src: _Source) -> str:
    text = _text(value, key, src)
    if text not in ("production", "development"):
        raise src.error(key, f'must be "production" or "development", got {text!r}')
    return text


def _team_id(value: Any, key: str, src: _Source) -> str:
    text = _text(value, key, src)
    if not _TEAM_ID.fullmatch(text):
        raise src.error(key, f"must be the 10-character Apple Team ID (e.g. ABCDE12345), got {text!r}")
    return text


def _bundle_id(value: Any, key: str, src: _Source) -> str:
    text = _text(value, key, src)
    if not _BUNDLE_ID.fullmatch(text):
        raise src.error(key, f"must be a bundle id / package name like com.sample.myapp, got {text!r}")
    return text


def _number(value: Any, key: str, src: _Source, *, integer: bool) -> int | float:
    """A number from the file, or from an environment variable's text."""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, str) and src.variable:
        try:
            value = int(value.strip()) if integer else float(value.strip())
        except ValueError:
            raise src.error(key, f"must be {kind}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise src.error(key, f"must be {kind}, got {_type_name(value)}")
    return value


def _positive_int(value: Any, key: str, src: _Source) -> int:
    number = int(_number(value, key, src, integer=True))
    if number <= 0:
        raise src.error(key, f"must be greater than 0, got {number}")
    return number


def _worker_processes(value: Any, key: str, src: _Source) -> int:
    number = int(_number(value, key, src, integer=True))
    if not 0 <= number <= 64:
        raise src.error(
            key, f"must be a whole number from 0 (the worker runs in the API's process) to 64, got {number}"
        )
    return number


def _nice(value: Any, key: str, src: _Source) -> int:
    number = int(_number(value, key, src, integer=True))
    if not 0 <= number <= 19:
        raise src.error(key, f"must be a niceness from 0 (as the API) to 19, got {number}")
    return number


def _positive_number(value: Any, key: str, src: _Source) -> float:
    number = float(_number(value, key, src, integer=False))
    if not number > 0 or number == float("inf"):
        raise src.error(key, f"must be a number greater than 0, got {number}")
    return number


def _port(value: Any, key: str, src: _Source) -> int:
    number = int(_number(value, key, src, integer=True))
    if not 0 <= number <= 65535:
        raise src.error(key, f"must be a TCP port between 0 (any free port) and 65535, got {number}")
    return number


def _table(value: Any, key: str, src: _Source) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise src.error(key, f"must be a table, got {_type_name(value)}")
    return value


def _passthrough(value: Any, key: str, src: _Source) -> Mapping[str, Any]:
    return MappingProxyType(dict(_table(value, key, src)))


def _quiet_hours(value: Any, key: str, src: _Source) -> QuietHours:
    table = _table(value, key, src)
    for name in table:
        if name not in ("start", "end"):
            raise src.error(f"{key}.{name}", 'is not a known setting; expected start and end, e.g. "22:00"')
    times = {}
    for name in ("start", "end"):
        if name not in table:
            raise src.error(f"{key}.{name}", 'is required (a local time such as "22:00")')
        try:
            times[name] = parse_local_time(table[name], f"{key}.{name}")
        except ValueError:
            raise src.error(f"{key}.{name}", f"must be a local time HH:MM, got {table[name]!r}") from None
    return QuietHours(times["start"], times["end"])


Reader = Callable[[Any, str, _Source], Any]

_APNS_KEYS: dict[str, Reader] = {
    "team_id": _team_id,
    "key_file": _path,
    "key_id": _text,
    "cert_file": _path,
    "cert_key_file": _path,
    "cert_passphrase": _text,
    "environment": _environment,
    "endpoint": _https_url,
    "development_endpoint": _https_url,
    "production_endpoint": _https_url,
    "ca_file": _path,
    "max_in_flight": _positive_int,
}
_APP_KEYS: dict[str, Reader] = {
    "bundle_id": _bundle_id,
    "fourd_folder": _path,
    "registered_tokens_only": _bool,
    "webhook_url": _http_url,
    "webhook_secret": _text,
    "webhook_unsigned": _bool,
    "quiet_hours": _quiet_hours,
    "apns": _table,
    "fcm": _passthrough,
    "webpush": _passthrough,
}
_DATABASE_KEYS: dict[str, Reader] = {"url": _text}
_SERVICE_KEYS: dict[str, Reader] = {
    "host": _text,
    "port": _port,
    "max_body": _positive_int,
    "rate_limit": _positive_number,
    "rate_burst": _positive_int,
    "register_rate_limit": _positive_number,
    "register_rate_burst": _positive_int,
    "device_rate_limit": _positive_number,
    "device_rate_burst": _positive_int,
    "wait_max": _positive_number,
    "retry_base": _positive_number,
    "retry_cap": _positive_number,
    "worker_chunk": _positive_int,
    "worker_lease": _positive_number,
    "worker_concurrency": _positive_int,
    "worker_poll": _positive_number,
    "worker_idle_max": _positive_number,
    "worker_listen": _bool,
    "worker_processes": _worker_processes,
    "worker_nice": _nice,
    "sweep_every": _positive_number,
    "webhook_retry_base": _positive_number,
    "webhook_retry_cap": _positive_number,
    "webhook_retention_days": _positive_number,
}


def _check_keys(table: Mapping[str, Any], allowed: Mapping[str, Reader], prefix: str, src: _Source) -> None:
    for key in table:
        if key not in allowed:
            raise src.error(
                f"{prefix}{key}", f"is not a known setting; expected one of: {', '.join(sorted(allowed))}"
            )


# -- building the typed config ------------------------------------------------------------------
def _database(table: Mapping[str, Any], src: _Source) -> DatabaseSettings:
    _check_keys(table, _DATABASE_KEYS, "database.", src)
    url = _text(table["url"], "database.url", src) if "url" in table else DEFAULT_DATABASE_URL
    try:
        parsed = normalize_url(url)
    except ConfigurationError as exc:
        raise src.error("database.url", str(exc).removeprefix("database.url ")) from None
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        db_path = Path(database).expanduser()
        if not db_path.is_absolute():
            # relative to the config file's folder, not to wherever the process was started
            url = parsed.set(database=str(src.base_dir / db_path)).render_as_string(hide_password=False)
    return DatabaseSettings(url=url)


def _service(table: Mapping[str, Any], src: _Source, base: ServiceConfig | None = None) -> ServiceConfig:
    """``[service]`` (or one environment override of it, applied on ``base``)."""
    _check_keys(table, _SERVICE_KEYS, "service.", src)
    values = {key: _SERVICE_KEYS[key](value, "service." + key, src) for key, value in table.items()}
    merged = {**(base.given() if base else {}), **values}
    for low, high in (("retry_base", "retry_cap"), ("webhook_retry_base", "webhook_retry_cap")):
        if low in merged and high in merged and merged[low] > merged[high]:
            if low in values:
                raise src.error(
                    f"service.{low}",
                    f"({merged[low]}) must not be larger than service.{high} ({merged[high]})",
                )
            raise src.error(
                f"service.{high}", f"({merged[high]}) must not be smaller than service.{low} ({merged[low]})"
            )
    return dataclasses.replace(base, **values) if base else ServiceConfig(**values)


def _apns(table: Mapping[str, Any], prefix: str, src: _Source) -> dict[str, Any]:
    _check_keys(table, _APNS_KEYS, prefix, src)
    return {key: _APNS_KEYS[key](value, prefix + key, src) for key, value in table.items()}


def _app(name: str, table: Mapping[str, Any], src: _Source) -> AppConfig:
    prefix = f"apps.{name}."
    if not _APP_NAME.fullmatch(name):
        raise src.error(
            f"apps.{name}", "is not a valid app name: use letters, digits, '_' and '-' (at most 100)"
        )
    _check_keys(table, _APP_KEYS, prefix, src)
    values = {key: _APP_KEYS[key](value, prefix + key, src) for key, value in table.items()}
    apns_values = _apns(values.pop("apns"), prefix + "apns.", src) if "apns" in values else None

    folder = values.get("fourd_folder")
    if folder is not None:
        # 4D's way: bundle id and team from manifest.json, the key from AuthKey_<KEYID>.p8 there.
        try:
            fourd = read_app_folder(folder)
        except FourDFolderError as exc:
            raise src.error(prefix + "fourd_folder", f"cannot be used: {exc}") from None
        values.setdefault("bundle_id", fourd.bundle_id)
        if fourd.team_id or fourd.auth_key:
            apns_values = apns_values or {}
            if fourd.team_id:
                apns_values.setdefault("team_id", fourd.team_id)
            if fourd.auth_key and "cert_file" not in apns_values:
                apns_values.setdefault("key_file", fourd.auth_key)
    if "bundle_id" not in values:
        raise src.error(prefix + "bundle_id", "is required (or give fourd_folder, a 4D app folder)")
    apns = ApnsSettings(**apns_values) if apns_values is not None else None
    if apns is not None and apns.key_file is not None and apns.cert_file is not None:
        raise src.error(prefix + "apns", "has both key_file and cert_file: choose token or certificate auth")
    if apns is not None and apns.key_file is not None and not apns.team_id:
        raise src.error(prefix + "apns.team_id", "is required with key_file (token authentication)")
    app = AppConfig(name=name, apns=apns, base_dir=src.base_dir, **values)
    problem = app.webhook_problem()
    if problem is not None:
        raise src.error(prefix + "webhook_secret", problem.removeprefix(prefix + "webhook_secret "))
    return app


def config_from_dict(
    data: Mapping[str, Any], *, source: Path | None = None, base_dir: Path | None = None
) -> Config:
    """Build a :class:`Config` from parsed TOML (or any mapping of the same shape)."""
    base = base_dir or (source.parent if source else Path.cwd())
    src = _Source(source, base)
    allowed_top = {"database", "apps", "service", *EXTRA_SECTIONS}
    for key in data:
        if key not in allowed_top:
            raise src.error(key, f"is not a known section; expected one of: {', '.join(sorted(allowed_top))}")
    database = _database(_table(data.get("database", {}), "database", src), src)
    apps_table = _table(data.get("apps", {}), "apps", src)
    apps = {name: _app(name, _table(table, f"apps.{name}", src), src) for name, table in apps_table.items()}
    service = _service(_table(data.get("service", {}), "service", src), src)
    sections = {
        name: MappingProxyType(dict(_table(data[name], name, src))) for name in EXTRA_SECTIONS if name in data
    }
    return Config(
        database=database,
        apps=MappingProxyType(apps),
        source=source,
        sections=MappingProxyType(sections),
        service=service,
    )


# -- finding and reading the file ---------------------------------------------------------------
def find_config_file(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The configuration file to use (see the module docstring), or ``None`` for the defaults.
    A path given explicitly or through ``PUSHRELAY_CONFIG`` must exist."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    for given, how in ((path, "--config"), (env.get(CONFIG_ENV), CONFIG_ENV)):
        if given:
            candidate = Path(given).expanduser()
            candidate = candidate if candidate.is_absolute() else cwd / candidate
            if not candidate.is_file():
                raise ConfigurationError(
                    f"configuration file {candidate} (from {how}) does not exist",
                    field=how,
                    file=str(candidate),
                )
            return candidate.resolve()
    default = cwd / DEFAULT_CONFIG_NAME
    return default.resolve() if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}", file=str(path)) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}", file=str(path)) from None


def _env_overrides(data: Mapping[str, Any], env: Mapping[str, str]) -> list[tuple[str, list[str], str]]:
    """Collect ``(variable, path, value)`` overrides, app segments matched to the file's apps."""
    overrides: list[tuple[str, list[str], str]] = []
    if env.get("PUSHRELAY_DATABASE_URL"):
        overrides.append(("PUSHRELAY_DATABASE_URL", ["database", "url"], env["PUSHRELAY_DATABASE_URL"]))
    raw_apps = data.get("apps")
    apps: dict[str, Any] = raw_apps if isinstance(raw_apps, dict) else {}
    for variable, value in sorted(env.items()):
        if not variable.startswith(ENV_PREFIX) or variable in _NOT_SETTINGS or "__" not in variable:
            continue
        parts = [p.lower() for p in variable[len(ENV_PREFIX) :].split("__")]
        if parts[0] == "apps" and len(parts) >= 3:
            wanted = parts[1].replace("-", "_")
            match = [name for name in apps if name.lower().replace("-", "_") == wanted]
            if not match:
                raise ConfigurationError(
                    f"environment variable {variable} overrides a setting of app {parts[1]!r}, "
                    f"which is not declared (declared apps: {', '.join(sorted(apps)) or 'none'})",
                    field=".".join(parts),
                )
            parts[1] = match[0]
        overrides.append((variable, parts, value))
    return overrides


def _apply_override(config: Config, variable: str, parts: list[str], value: str, cwd: Path) -> Config:
    src = _Source(config.source, cwd, variable)
    key = ".".join(parts)
    if parts == ["database", "url"]:
        return _replace(config, database=_database({"url": value}, src))
    if parts[0] == "apps" and len(parts) in (3, 4):
        app = config.apps[parts[1]]
        if len(parts) == 3:
            name = parts[2]
            if name not in _APP_KEYS or name in ("apns", "fcm", "webpush"):
                raise src.error(key, "is not a setting that an environment variable can override")
            if name == "fourd_folder":
                raise src.error(key, "cannot be overridden from the environment; edit the file")
            return _with_app(config, app.replace(**{name: _APP_KEYS[name](value, key, src)}))
        section, name = parts[2], parts[3]
        if section == "apns":
            if name not in _APNS_KEYS:
                raise src.error(
                    key, f"is not a known setting; expected one of: {', '.join(sorted(_APNS_KEYS))}"
                )
            apns = (app.apns or ApnsSettings()).replace(**{name: _APNS_KEYS[name](value, key, src)})
            return _with_app(config, app.replace(apns=apns))
        if section in ("fcm", "webpush"):
            table = dict(getattr(app, section) or {})
            table[name] = value
            return _with_app(config, app.replace(**{section: MappingProxyType(table)}))
    if parts[0] == "service" and len(parts) == 2:
        return _replace(config, service=_service({parts[1]: value}, src, config.service))
    if parts[0] in EXTRA_SECTIONS and len(parts) == 2:
        sections = dict(config.sections)
        sections[parts[0]] = MappingProxyType({**sections.get(parts[0], {}), parts[1]: value})
        return _replace(config, sections=MappingProxyType(sections))
    raise src.error(key, "is not a setting pushrelay knows")


def _replace(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(config, **changes)


def _with_app(config: Config, app: AppConfig) -> Config:
    return _replace(config, apps=MappingProxyType({**config.apps, app.name: app}))


def service_env_overrides(
    service: ServiceConfig, env: Mapping[str, str], cwd: Path | None = None
) -> ServiceConfig:
    """Apply the short ``PUSHRELAY_<KEY>`` spellings of the ``[service]`` settings
    (``PUSHRELAY_RATE_LIMIT``...) on ``service``; they win over the file and over
    ``PUSHRELAY_SERVICE__<KEY>``."""
    for key in _SERVICE_KEYS:
        variable = ENV_PREFIX + key.upper()
        value = env.get(variable)
        if value is not None and value.strip():
            service = _service({key: value}, _Source(None, cwd or Path.cwd(), variable), service)
    return service


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Find, read, check and return the configuration (see the module docstring)."""
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    file = find_config_file(path, env=env, cwd=cwd)
    data = _read_toml(file) if file else {}
    config = config_from_dict(data, source=file, base_dir=file.parent if file else cwd)
    for variable, parts, value in _env_overrides(data, env):
        config = _apply_override(config, variable, parts, value, cwd)
    return _replace(config, service=service_env_overrides(config.service, env, cwd))
