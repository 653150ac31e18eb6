"""The ``[service]`` table of pushrelay.toml, under the ``PUSHRELAY_*`` environment variables."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from pushrelay import ConfigurationError
from pushrelay.config import config_from_dict, load_config
from pushrelay.config.loader import _SERVICE_KEYS
from pushrelay.config.model import ServiceConfig
from pushrelay.server.service import ServiceSettings

from .conftest import Stack


def test_every_setting_has_a_reader() -> None:
    assert set(_SERVICE_KEYS) == {f.name for f in dataclasses.fields(ServiceConfig)}


def test_file_then_environment_then_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "pushrelay.toml"
    cfg.write_text(
        "[service]\nport = 9000\nrate_limit = 5\nrate_burst = 10\nworker_chunk = 100\n"
        'retry_base = 0.5\nwebhook_retention_days = 7\nhost = "::1"\n'
    )
    env = {
        "PUSHRELAY_RATE_BURST": "20",
        "PUSHRELAY_SERVICE__WORKER_CHUNK": "50",
        "PUSHRELAY_WORKER_POLL": "0.1",
    }
    settings = ServiceSettings.from_config(load_config(cfg, env=env).service)
    assert (settings.host, settings.port) == ("::1", 9000)
    assert (settings.rate, settings.burst) == (5.0, 20)  # the variable wins over the file
    assert (settings.worker.chunk, settings.worker.poll) == (50, 0.1)
    assert (settings.retry.base, settings.retry.cap) == (0.5, 300.0)  # cap: the default
    assert settings.webhooks.retention == timedelta(days=7)
    assert settings.max_body == 1_048_576 and settings.worker.concurrency == 4
    # without a file: the defaults and the variables
    assert ServiceSettings.from_env({"PUSHRELAY_MAX_BODY": "2048"}).max_body == 2048
    assert ServiceSettings.from_env({}) == ServiceSettings()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"prot": 80},
            "service.prot is not a known setting; expected one of: device_rate_burst, device_rate_limit, host",
        ),
        ({"port": 70000}, "service.port must be a TCP port between 0 (any free port) and 65535, got 70000"),
        ({"rate_limit": "fast"}, "service.rate_limit must be a number, got a text"),
        ({"worker_chunk": 0}, "service.worker_chunk must be greater than 0, got 0"),
        ({"worker_lease": True}, "service.worker_lease must be a number, got a boolean"),
        (
            {"retry_base": 10, "retry_cap": 1},
            "service.retry_base (10.0) must not be larger than service.retry_cap",
        ),
    ],
)
def test_mistakes_name_the_key_and_the_file(tmp_path: Path, table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as e:
        config_from_dict({"service": table}, source=tmp_path / "pushrelay.toml")
    assert str(e.value).startswith(f"{tmp_path / 'pushrelay.toml'}: {message}")
    assert e.value.field.startswith("service.")  # type: ignore[union-attr]


def test_a_bad_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError,
        match=re.escape(
            "environment variable PUSHRELAY_WORKER_CHUNK: service.worker_chunk must be a whole number, got 'lots'"
        ),
    ):
        load_config(env={"PUSHRELAY_WORKER_CHUNK": "lots"}, cwd=tmp_path)
    with pytest.raises(
        ConfigurationError,
        match=r"service.retry_cap = 0.1 is smaller than service.retry_base = 1.0 \(its default\); set both",
    ) as e:
        ServiceSettings.from_config(load_config(env={"PUSHRELAY_RETRY_CAP": "0.1"}, cwd=tmp_path).service)
    assert e.value.field == "service.retry_cap"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # nothing here depends on the database
def test_serve_takes_port_and_rate_limit_from_the_file(stack: Stack) -> None:
    """Rate limiting (429 + Retry-After) with the port and the limits from [service], and one of
    them overridden by its variable."""
    stack.write_config(
        stack.tmp / "AuthKey_ABC123DEFG.p8",
        extra=f'\n[service]\nhost = "127.0.0.1"\nport = {stack.service.port}\nrate_limit = 1\nrate_burst = 30\n',
    )
    stack.service.env["PUSHRELAY_RATE_BURST"] = "3"
    stack.service.start(port_from_config=True)
    with stack.client(stack.sender) as snd:
        codes = [snd.get("/v1/notifications").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 429
        r = snd.get("/v1/notifications")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
    assert stack.service.stop() == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # nothing here depends on the database
def test_register_keys_are_limited_per_client_address_and_per_device(stack: Stack) -> None:
    """The register key every installed app carries: a bucket per client address (not one for the
    fleet) and one per device; send keys keep their own bucket."""
    stack.write_config(
        stack.tmp / "AuthKey_ABC123DEFG.p8",
        extra="\n[service]\nregister_rate_limit = 0.01\nregister_rate_burst = 3\n"
        "device_rate_limit = 0.01\ndevice_rate_burst = 2\n",
    )
    stack.service.start()

    def client(address: str) -> httpx.Client:
        return httpx.Client(
            base_url=stack.service.url,
            headers={"Authorization": f"Bearer {stack.registrar}"},
            transport=httpx.HTTPTransport(local_address=address),
            timeout=30,
        )

    def register(c: httpx.Client, token: str) -> httpx.Response:
        return c.post("/v1/devices", json={"app": "myapp", "platform": "ios", "token": token})

    with client("127.0.0.2") as phone_a, client("127.0.0.3") as phone_b, client("127.0.0.4") as phone_c:
        codes = [register(phone_a, f"{i:064x}").status_code for i in range(4)]
        assert codes == [201, 201, 201, 429]
        r = register(phone_a, f"{9:064x}")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "client address" in r.json()["error"]["message"]
        # another address (another phone of the launch wave) is not throttled by the first
        assert register(phone_b, f"{5:064x}").status_code == 201
        # one device again and again: its own bucket (2 here), the error names the token
        token = f"{7:064x}"
        assert [register(phone_c, token).status_code for _ in range(2)] == [201, 200]
        r = register(phone_c, token)
        assert r.status_code == 429 and r.json()["error"]["field"] == "token"
        assert int(r.headers["retry-after"]) >= 1
    with stack.client(stack.sender) as snd:  # a send key is limited per key, untouched by the above
        assert snd.get("/v1/notifications").status_code == 200
    assert stack.service.stop() == 0


def test_refilled_buckets_are_dropped_so_a_fleet_costs_memory_only_while_active() -> None:
    from pushrelay.server.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    limiter._PRUNE_AT = 3  # type: ignore[misc]
    for device in ("a", "b", "c"):
        assert limiter.take(device) == 0
    assert len(limiter) == 3
    now[0] = 5.0  # every bucket has refilled: nothing worth keeping
    assert limiter.take("d") == 0 and len(limiter) == 1
    assert [limiter.take("d"), limiter.take("d")] == [0, 1]
