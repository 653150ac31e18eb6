"""``pushrelay demo``: the whole path on embedded defaults, with nothing to configure.

It starts the APNs, FCM and Web Push sandboxes, makes a demo app with generated credentials for all
three, registers four devices for test@4d.com (an iPhone, an iPad, an Android phone built by 4D and a
browser subscribed to the Web Push sandbox), starts the service (HTTP API + workers) on an SQLite
file, sends the 4D example through the HTTP API once, and prints what each device received — for
the browser, the payload the sandbox decrypted — and the delivery report.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..sandbox.inbox import Inbox, InboxListenError, serve_inbox
from ..sandbox.records import InboxLog, Platform
from ..sandbox.stack import SandboxStack
from ..server.runtime import run_service
from ..server.wiring import build_service

TEAM_ID, KEY_ID, BUNDLE_ID, APP = "TEAM123456", "DEMOKEY123", "com.sample.myappname", "myapp"
EMAIL = "test@4d.com"
_INBOX_PLATFORMS: dict[str, Platform] = {"ios": "apns", "android": "fcm", "web": "webpush"}
EXAMPLE = {"title": "This is title", "body": "Here is the content of this notification"}


@dataclass(frozen=True)
class DemoDevice:
    name: str
    platform: str
    token: str
    fields: dict[str, str]

    def registration(self) -> dict[str, Any]:
        return {"app": APP, "platform": self.platform, "token": self.token, "email": EMAIL, **self.fields}


def _devices(stack: SandboxStack) -> list[DemoDevice]:
    browser = stack.web.new_subscription(application_server_key=stack.vapid_public_key)
    # FCM registration tokens look like "<instance id>:APA91b<...>"
    android = f"{secrets.token_urlsafe(16)}:APA91b{secrets.token_urlsafe(100)}"
    return [
        DemoDevice("iPhone15,2", "ios", stack.apns.issue_token(stack.bundle_id), {"device_model": "iPhone15,2", "os": "iOS", "os_version": "18.1"}),
        DemoDevice("iPad13,4", "ios", stack.apns.issue_token(stack.bundle_id), {"device_model": "iPad13,4", "os": "iPadOS", "os_version": "18.1"}),
        DemoDevice("Pixel 8", "android", android, {"device_model": "Pixel 8", "os": "Android", "os_version": "15"}),
        DemoDevice(
            "Browser", "web", browser["endpoint"],
            {"web_p256dh": browser["keys"]["p256dh"], "web_auth": browser["keys"]["auth"], "os": "Web"},
        ),
    ]  # fmt: skip


def _received(stack: SandboxStack, device: DemoDevice) -> list[Any]:
    """What the device got: the APNs payload, the FCM data map (what the 4D app reads), the
    decrypted Web Push payload."""
    if device.platform == "ios":
        return [r.payload for r in stack.apns.received(device.token)]
    if device.platform == "android":
        return [r.data for r in stack.fcm.received(device.token)]
    return [r.json for r in stack.web.received(device.token)]


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the demo's files (config, keys, database) here instead of a temporary folder.",
)
@click.option("--port", type=int, default=0, show_default="a free port", help="HTTP API port.")
@click.option(
    "--keep-running", is_flag=True, help="Leave the service up and print a ready-to-paste curl command."
)
@click.option("--json", "as_json", is_flag=True, help="Print the delivery report as JSON only.")
@click.option(
    "--inbox-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default="a free port",
    help="Port of the sandbox inbox page (127.0.0.1) served with --keep-running.",
)
@click.option("--no-inbox", is_flag=True, help="Do not serve the sandbox inbox page.")
def demo(
    directory: Path | None, port: int, keep_running: bool, as_json: bool, inbox_port: int, no_inbox: bool
) -> None:
    """Run the whole service against local APNs, FCM and Web Push sandboxes and deliver the 4D
    example to an iPhone, an iPad, an Android phone and a browser."""
    owns = directory is None
    work = Path(tempfile.mkdtemp(prefix="pushrelay-demo-")) if directory is None else directory
    work.mkdir(parents=True, exist_ok=True)
    try:
        inbox = inbox_port if keep_running and not no_inbox else None
        report = asyncio.run(_demo(work.resolve(), port, keep_running, as_json, inbox))
    finally:
        if owns and not keep_running:
            shutil.rmtree(work, ignore_errors=True)
    if not report["success"]:
        raise SystemExit(1)


async def _demo(
    work: Path, port: int, keep_running: bool, as_json: bool, inbox_port: int | None = None
) -> dict[str, Any]:
    console = Console(stderr=as_json, highlight=False)
    with SandboxStack.running(
        work / "sandbox", team_id=TEAM_ID, key_id=KEY_ID, bundle_id=BUNDLE_ID, project_id="pushrelay-demo"
    ) as stack:
        config_file = work / "pushrelay.toml"
        database = json.dumps(f"sqlite:///{work / 'pushrelay.db'}")
        config_file.write_text(
            f"[database]\nurl = {database}\n\n"
            "# demo app: delivers to the local APNs, FCM and Web Push sandboxes\n" + stack.app_toml(APP)
        )
        for name, sandbox in (("APNs", stack.apns), ("FCM", stack.fcm), ("Web Push", stack.web)):
            console.print(f"[bold]{name} sandbox[/] listening on {sandbox.url}")
        inbox = Inbox.for_stack(stack) if inbox_port is not None else None
        config = load_config(config_file)
        service = build_service(config)
        service.use_config(config)  # each app's settings, as `pushrelay serve` does (the console shows them)
        _key, api_key = service.keys.create(["admin"], name="demo")
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        runner = asyncio.create_task(
            run_service(service, host="127.0.0.1", port=port, stop=stop, on_ready=ready.set_result)
        )
        try:
            url = await asyncio.wait_for(asyncio.shield(ready), 30)
            console.print(
                f"[bold]pushrelay[/] API on {url}, database {work / 'pushrelay.db'}", soft_wrap=True
            )
            report = await _exercise(url, api_key, stack, console, as_json, inbox.log if inbox else None)
            if keep_running:
                _print_keep_running(console, url, api_key, config_file)
                if inbox is not None and inbox_port is not None:
                    await _serve_inbox(console, inbox, inbox_port, stop)
                await stop.wait()
        finally:
            stop.set()
            await runner
            service.close()
    return report


async def _exercise(
    url: str,
    api_key: str,
    stack: SandboxStack,
    console: Console,
    as_json: bool,
    inbox: InboxLog | None = None,
) -> dict[str, Any]:
    devices = _devices(stack)
    if inbox is not None:  # the inbox page names the devices as this demo does
        for device in devices:
            platform = _INBOX_PLATFORMS[device.platform]
            inbox.add_device(platform, device.token.rsplit("/wp/", 1)[-1], device.name)
    headers = {"authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        for device in devices:
            r = await http.post("/v1/devices", json=device.registration())
            r.raise_for_status()
        names = ", ".join(f"{d.name} ({d.platform})" for d in devices)
        console.print(f"registered {len(devices)} devices for {EMAIL}: {names}", soft_wrap=True)
        body = {"app": APP, "notification": EXAMPLE, "recipients": {"emails": [EMAIL]}}
        console.print(f"POST /v1/notifications?wait=10  {json.dumps(body)}", soft_wrap=True)
        r = await http.post("/v1/notifications", params={"wait": 10}, json=body)
        r.raise_for_status()
        report: dict[str, Any] = r.json()
    received = {d.token: _received(stack, d) for d in devices}
    if as_json:
        click.echo(json.dumps({"report": report, "received": received}, indent=2))
        return report
    for device in devices:
        for payload in received[device.token] or [None]:
            what = json.dumps(payload) if payload is not None else "[red]nothing[/]"
            short = device.token[:8] if device.platform != "web" else device.token.rsplit("/", 1)[-1][:8]
            console.print(
                f"[bold]{device.name}[/] ({device.platform}, {short}…) received: {what}", soft_wrap=True
            )
    table = Table(title="delivery report")
    for col in ("platform", "token", "outcome", "status", "apns-id"):
        table.add_column(col)
    for d in report.get("deliveries", []):
        table.add_row(
            str(d.get("platform")), str(d.get("token", ""))[:12] + "…", str(d.get("outcome")),
            str(d.get("status", "")), str(d.get("apns_id") if d.get("platform") == "ios" else ""),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"success: {report.get('success')}  warnings: {report.get('warnings', [])}  errors: {report.get('errors', [])}"
    )
    return report


def _print_keep_running(console: Console, url: str, api_key: str, config_file: Path) -> None:
    payload = json.dumps({"app": APP, "notification": EXAMPLE, "recipients": {"emails": [EMAIL]}})
    console.print(
        f"\nThe service stays up at [bold]{url}[/] (config {config_file}); Ctrl-C stops it.", soft_wrap=True
    )
    # each URL whole on its own line, never wrapped (soft_wrap), even when not a terminal
    console.print("\nConsole (sign in with the admin API key below):", soft_wrap=True)
    console.print(f"{url}/console/", soft_wrap=True, markup=False)
    console.print("Admin API key:", soft_wrap=True)
    console.print(api_key, soft_wrap=True, markup=False)
    console.print("API documentation:", soft_wrap=True)
    console.print(f"{url}/docs", soft_wrap=True, markup=False)
    console.print("Send again with:\n", soft_wrap=True)
    console.print(
        f"curl -s -X POST '{url}/v1/notifications?wait=10' -H 'Authorization: Bearer {api_key}' "
        f"-H 'Content-Type: application/json' -d '{payload}'",
        soft_wrap=True,
    )


async def _serve_inbox(console: Console, inbox: Inbox, port: int, stop: asyncio.Event) -> None:
    """Serve the sandbox inbox until ``stop``; its URL whole on its own line."""
    try:
        async with serve_inbox(inbox, port=port) as inbox_url:
            console.print("\nSandbox inbox (every device and what it received):", soft_wrap=True)
            console.print(inbox_url, soft_wrap=True, markup=False)
            await stop.wait()
    except InboxListenError as exc:
        raise click.ClickException(f"--inbox-port: {exc.strerror}") from None
