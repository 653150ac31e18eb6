"""APNs provider tokens minted for N ``pushrelay send`` runs within a minute (not a unit test).

Runs the APNs sandbox (in this process) and ``pushrelay send`` N times in a row, each in a process
of its own, to one iPhone. It prints, as JSON, for two set-ups measured in the same run:

- ``isolated``: every run has a database of its own, so no process can see another's token: what
  every run did before the provider state was shared (each minted its own token, and APNs answers
  429 TooManyProviderTokenUpdates to a new token within 20 minutes of the previous one);
- ``shared``: every run uses the same database (the default: one pushrelay.toml), as now.

For each: tokens minted (distinct provider tokens APNs saw), runs that delivered, 429s.

    .venv/bin/python bench/cli_token_mints.py --runs 5 [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pushrelay.registry import DeviceRegistry
from pushrelay.sandbox import ApnsSandbox

TEAM, BUNDLE = "TEAM123456", "com.sample.myappname"
PHONE = "ab" * 32


def config_file(directory: Path, sb: ApnsSandbox, key: Path, url: str) -> Path:
    config = directory / "pushrelay.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n[apps.myapp]\nbundle_id = "{BUNDLE}"\n'
        f'[apps.myapp.apns]\nteam_id = "{TEAM}"\nkey_file = "{key}"\nendpoint = "{sb.url}"\n'
        f'ca_file = "{sb.ca_file}"\n'
    )
    with DeviceRegistry(url) as registry:
        registry.register("myapp", PHONE, email="test@4d.com")
    return config


def measure(runs: int, *, shared: bool, database_url: str | None) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        ApnsSandbox.running(directory=Path(tmp_name) / "sb") as sb,
    ):
        tmp = Path(tmp_name)
        sb.add_topic(BUNDLE, TEAM)
        sb.issue_token(BUNDLE, token=PHONE)  # the strict sandbox knows issued tokens only
        key = sb.create_key(TEAM, "MINTSKEY01", tmp)
        delivered = 0
        started = time.monotonic()
        configs: list[Path] = []
        for i in range(runs):
            if shared and configs:
                config = configs[0]
            else:
                where = tmp / f"run{i}"
                where.mkdir()
                url = database_url if (shared and database_url) else f"sqlite:///{where / 'pushrelay.db'}"
                config = config_file(where, sb, key, url)
            configs.append(config)
            proc = subprocess.run(
                [sys.executable, "-m", "pushrelay", "send", "--config", str(config), "--to", "test@4d.com",
                 "--title", f"run {i}", "--json", "--timeout", "5"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if proc.returncode == 0 and json.loads(proc.stdout)["success"]:
                delivered += 1
        stats = sb.stats
        return {
            "runs": runs,
            "seconds": round(time.monotonic() - started, 1),
            "tokens_minted": stats.jwt_verifications,
            "runs_delivered": delivered,
            "too_many_provider_token_updates": stats.rejected.get("TooManyProviderTokenUpdates", 0),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--database-url", default=None, help="shared set-up only; default: a SQLite file")
    args = ap.parse_args()
    print(
        json.dumps(
            {
                "isolated": measure(args.runs, shared=False, database_url=None),
                "shared": measure(args.runs, shared=True, database_url=args.database_url),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
