"""pushrelay's configuration: ``pushrelay.toml``, environment overrides, typed settings.

    from pushrelay.config import load_config
    config = load_config()                 # --config / PUSHRELAY_CONFIG / ./pushrelay.toml / defaults
    app = config.app("myapp")              # name, bundle id, TEAM.bundle id or 4D short name
    auth = app.apns.load_auth(app=app.name)

See :mod:`pushrelay.config.loader` for the resolution order and the environment variables.
"""

from __future__ import annotations

from .loader import CONFIG_ENV, DEFAULT_CONFIG_NAME, config_from_dict, find_config_file, load_config
from .model import ApnsSettings, AppConfig, Config, DatabaseSettings, Environment

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "ApnsSettings",
    "AppConfig",
    "Config",
    "DatabaseSettings",
    "Environment",
    "config_from_dict",
    "find_config_file",
    "load_config",
]
