"""What localised texts cost a send (not a unit test).

Registers N iPhones on the APNs sandbox (this process, a background thread) in five languages
(fr, es-MX, es-AR, de, none), then sends to all of them through ``PushNotification.send_all`` (the
outbox and the worker's code, as every surface), alternately with and without ``localizations``
(three variants). Each variant is rendered once, not once per device; the extra work is one
registry read of the devices' languages per chunk. Prints, as JSON, the median wall time of each
and the devices each device got the right text (checked on the sandbox).

    .venv/bin/python bench/localized_send.py --devices 3000 --repeat 3 [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pushrelay.config import config_from_dict
from pushrelay.push import PushNotification
from pushrelay.registry import DeviceInfo, DeviceRegistry
from pushrelay.sandbox import ApnsSandbox

TEAM, BUNDLE = "TEAM123456", "com.sample.myappname"
LANGS = ["fr", "es-MX", "es-AR", "de", None]
PLAIN = {"title": "Sale", "body": "Everything at -50 % today"}
LOCALISED = {
    **PLAIN,
    "localizations": {
        "fr": {"title": "Soldes", "body": "Tout à -50 % aujourd'hui"},
        "es-MX": {"title": "Ofertas", "body": "Todo a -50 % hoy"},
        "es": {"title": "Rebajas", "body": "Todo a -50 % hoy"},
    },
}
EXPECTED = {"fr": "Soldes", "es-MX": "Ofertas", "es-AR": "Rebajas", "de": "Sale", None: "Sale"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        ApnsSandbox.running(directory=Path(tmp_name) / "sb") as sb,
    ):
        tmp = Path(tmp_name)
        sb.add_topic(BUNDLE, TEAM)
        key = sb.create_key(TEAM, "LOCBENCH01", tmp)
        url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        apns = {"team_id": TEAM, "key_file": str(key), "endpoint": sb.url, "ca_file": str(sb.ca_file)}
        config = config_from_dict(
            {"database": {"url": url}, "apps": {"myapp": {"bundle_id": BUNDLE, "apns": apns}}}
        )
        tokens = {f"{i + 1:064x}": LANGS[i % len(LANGS)] for i in range(args.devices)}
        times: dict[str, list[float]] = {"plain": [], "localized": []}
        right = 0
        with DeviceRegistry(url) as registry:
            registry.register_many(
                DeviceInfo(app="myapp", token=t, language=lang) for t, lang in tokens.items()
            )
            push = PushNotification("myapp", config=config, registry=registry)
            for _ in range(args.repeat):
                for name, note in (("plain", PLAIN), ("localized", LOCALISED)):
                    started = time.perf_counter()
                    result = push.send_all(note, timeout=120)
                    times[name].append(time.perf_counter() - started)
                    assert result.counts() == {"delivered": args.devices}, result.counts()
            right = sum(
                1
                for t, lang in tokens.items()
                if sb.received(t)[-1].payload["aps"]["alert"]["title"] == EXPECTED[lang]
            )
        out: dict[str, Any] = {
            "devices": args.devices,
            "database": url.split(":", 1)[0],
            "repeat": args.repeat,
            **{f"{name}_median_s": round(statistics.median(v), 3) for name, v in times.items()},
            **{f"{name}_per_s": round(args.devices / statistics.median(v)) for name, v in times.items()},
            "right_text": f"{right}/{args.devices}",
        }
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
