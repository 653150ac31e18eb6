"""``pushrelay demo``: the whole path on embedded defaults, with nothing to configure.

It starts the APNs sandbox, makes a demo app with a generated key, registers two devices for
test@4d.com, starts the service (HTTP API + workers) on an SQLite file, sends the 4D example through
the HTTP API, and prints what each sandbox device received and the delivery report.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..config.writer import render_app_table
from ..sandbox import ApnsSandbox
from ..server.runtime import run_service
from ..server.wiring import build_service

TEAM_ID, KEY_ID, BUNDLE_ID, APP = "TEAM123456", "DEMOKEY123", "com.sample.myappname", "myapp"
EMAIL = "test@4d.com"
EXAMPLE = {"title": "This is title", "body": "Here is the content of this notification"}
DEVICES = (
    {"device_model": "iPhone15,2", "os": "iOS", "os_version": "18.1"},
    {"device_model": "iPad13,4", "os": "iPadOS", "os_version": "18.1"},
)


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo's files (config, key, database) here instead of a temporary folder.")
@click.option("--port", type=int, default=0, show_default="a free port", help="HTTP API port.")
@click.option("--keep-running", is_flag=True, help="Leave the service up and print a ready-to-paste curl command.")
@click.option("--json", "as_json", is_flag=True, help="Print the delivery report as JSON only.")
def demo(directory: Path | None, port: int, keep_running: bool, as_json: bool) -> None:  # fmt: skip
    """Run the whole service against the local APNs sandbox and deliver the 4D example."""
    owns = directory is None
    work = Path(tempfile.mkdtemp(prefix="pushrelay-demo-")) if directory is None else directory
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(_demo(work.resolve(), port, keep_running, as_json))
    finally:
        if owns and not keep_running:
            shutil.rmtree(work, ignore_errors=True)
    if not report["success"]:
        raise SystemExit(1)


async def _demo(work: Path, port: int, keep_running: bool, as_json: bool) -> dict[str, Any]:
    console = Console(stderr=as_json, highlight=False)
    with ApnsSandbox.running(directory=work / "sandbox") as sb:
        key_file = sb.create_key(TEAM_ID, KEY_ID, work)
        sb.add_topic(BUNDLE_ID, TEAM_ID)
        config_file = work / "pushrelay.toml"
        config_file.write_text(
            f'[database]\nurl = "sqlite:///{work / "pushrelay.db"}"\n\n'
            + render_app_table(
                APP,
                {
                    "bundle_id": BUNDLE_ID,
                    "apns.team_id": TEAM_ID,
                    "apns.key_file": str(key_file),
                    "apns.environment": "production",
                    "apns.endpoint": sb.url,
                    "apns.ca_file": str(sb.ca_file),
                },
                comment="demo app: delivers to the local APNs sandbox",
            )
        )
        console.print(f"[bold]APNs sandbox[/] listening on {sb.url} (trusting its CA {sb.ca_file.name})")
        service = build_service(load_config(config_file))
        _key, api_key = service.keys.create(["admin"], name="demo")
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        runner = asyncio.create_task(
            run_service(service, host="127.0.0.1", port=port, stop=stop, on_ready=ready.set_result)
        )
        try:
            url = await asyncio.wait_for(asyncio.shield(ready), 30)
            console.print(f"[bold]pushrelay[/] API on {url}, database {work / 'pushrelay.db'}")
            report = await _exercise(url, api_key, sb, console, as_json)
            if keep_running:
                _print_keep_running(console, url, api_key, config_file)
                await stop.wait()
        finally:
            stop.set()
            await runner
            service.close()
    return report


async def _exercise(url: str, api_key: str, sb: ApnsSandbox, console: Console, as_json: bool) -> dict[str, Any]:
    tokens = [secrets.token_hex(32) for _ in DEVICES]
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {api_key}"}, timeout=30) as http:
        for token, device in zip(tokens, DEVICES, strict=True):
            r = await http.post("/v1/devices", json={"app": APP, "platform": "ios", "token": token, "email": EMAIL, **device})
            r.raise_for_status()
        console.print(f"registered {len(tokens)} devices for {EMAIL}: {', '.join(d['device_model'] for d in DEVICES)}")
        body = {"app": APP, "notification": EXAMPLE, "recipients": {"emails": [EMAIL]}}
        console.print(f"POST /v1/notifications?wait=10  {json.dumps(body)}", soft_wrap=True)
        r = await http.post("/v1/notifications", params={"wait": 10}, json=body)
        r.raise_for_status()
        report: dict[str, Any] = r.json()
    received = {t: [rec.payload for rec in sb.received(t)] for t in tokens}
    if as_json:
        click.echo(json.dumps({"report": report, "received": received}, indent=2))
        return report
    for token, device in zip(tokens, DEVICES, strict=True):
        for payload in received[token] or [None]:
            what = json.dumps(payload) if payload is not None else "[red]nothing[/]"
            console.print(f"[bold]{device['device_model']}[/] ({token[:8]}…) received: {what}", soft_wrap=True)
    table = Table(title="delivery report")
    for col in ("platform", "token", "outcome", "status", "apns-id"):
        table.add_column(col)
    for d in report.get("deliveries", []):
        table.add_row(
            str(d.get("platform")), str(d.get("token", ""))[:12] + "…", str(d.get("outcome")),
            str(d.get("status", "")), str(d.get("apns_id") or d.get("provider_id") or ""),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"success: {report.get('success')}  warnings: {report.get('warnings', [])}  errors: {report.get('errors', [])}"
    )
    return report


def _print_keep_running(console: Console, url: str, api_key: str, config_file: Path) -> None:
    payload = json.dumps({"app": APP, "notification": EXAMPLE, "recipients": {"emails": [EMAIL]}})
    console.print(f"\nThe service stays up at [bold]{url}[/] (config {config_file}); Ctrl-C stops it.")
    console.print("Send again with:\n")
    console.print(
        f"curl -s -X POST '{url}/v1/notifications?wait=10' -H 'Authorization: Bearer {api_key}' "
        f"-H 'Content-Type: application/json' -d '{payload}'",
        soft_wrap=True,
    )
