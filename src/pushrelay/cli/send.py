"""``pushrelay send``: send a notification to users (e-mail addresses), tokens, or every device.

The notification and its deliveries are recorded in the outbox (surface ``cli``: ``pushrelay
notifications list`` shows them) and delivered by this process through the worker's code; retries
wait within ``--timeout``. A device that a provider asked to leave alone for longer (Retry-After)
is reported deferred, with the time.

The exit code is 0 when at least one device accepted the notification (``success``), 1 otherwise.
``--json`` prints the result (4D shape plus deliveries) on stdout and nothing else; without it a
summary goes to stdout, warnings and errors to stderr, and a progress bar shows on a terminal.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..push import Progress, PushNotification, PushResult
from ..push.api import DEFAULT_TIMEOUT
from ._common import clean_errors, config_option, json_option, load, open_registry, print_json


def _user_info(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"orderId\": 42}'")
    return data


_FIELD_START = re.compile(r",\s*(?=(?:title|subtitle|body|url|image_url|imageUrl)=)")


def _localizations(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, dict[str, str]] | None:
    """``fr:title=Bonjour,body=Votre commande…`` (a comma inside a text is kept unless a field
    name and ``=`` follow it), or ``@file.json`` holding ``{"fr": {"title": …}, …}``."""
    out: dict[str, dict[str, str]] = {}
    for value in values:
        if value.startswith("@"):
            try:
                data = json.loads(Path(value[1:]).read_text(encoding="utf-8"))
            except OSError as exc:
                raise click.BadParameter(f"cannot read {value[1:]}: {exc.strerror}") from None
            except json.JSONDecodeError as exc:
                raise click.BadParameter(f"{value[1:]} is not valid JSON: {exc.msg}") from None
            if not isinstance(data, dict):
                raise click.BadParameter(f'{value[1:]} must hold an object like {{"fr": {{"title": "..."}}}}')
            for tag, texts in data.items():
                if not isinstance(texts, dict):
                    raise click.BadParameter(f"{value[1:]}: {tag} must be an object of texts")
                out.setdefault(tag, {}).update(texts)
            continue
        tag, sep, rest = value.partition(":")
        if not sep or not tag.strip() or not rest:
            raise click.BadParameter(f"expected LANG:FIELD=TEXT[,FIELD=TEXT...] or @FILE.json, got {value!r}")
        for part in _FIELD_START.split(rest):
            name, eq, text = part.partition("=")
            if not eq:
                raise click.BadParameter(f"expected FIELD=TEXT after {tag}:, got {part!r}")
            out.setdefault(tag.strip(), {})[name.strip()] = text
    return out or None


def _primary_key(text: str) -> Any:
    # 4D primary keys are numbers or texts: "42" is the number 42, "\"42\"" the text, "A-12" a text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else text


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("send", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@click.command("send")
@config_option
@click.option(
    "--app", "app_ref", default=None, help="App name, bundle id or TEAMID.bundle.id (default: the only app)."
)
@click.option("--to", "recipients", multiple=True, help="An e-mail address or a device token; repeatable.")
@click.option("--all", "send_all", is_flag=True, help="Every active device of the app.")
@click.option("--targets", default=None, help="Platforms, comma-separated: ios,android,web (default: all).")
@click.option("--title", default=None)
@click.option("--body", default=None)
@click.option("--subtitle", default=None)
@click.option("--badge", type=int, default=None)
@click.option("--sound", default=None, help="Sound name, or 'default'.")
@click.option("--category", default=None)
@click.option("--url", default=None)
@click.option("--image-url", default=None, help="Image shown with the notification (mutable-content on iOS).")
@click.option("--color", default=None, help="Android accent colour, #rrggbb.")
@click.option("--user-info", callback=_user_info, default=None, help="Extra data, a JSON object.")
@click.option(
    "--localization",
    "localizations",
    multiple=True,
    callback=_localizations,
    metavar="LANG:FIELD=TEXT,... | @FILE.json",
    help="Texts for devices of a language, e.g. 'fr:title=Bonjour,body=Votre commande'; or a JSON "
    'file {"fr": {"title": ...}}. Repeatable.',
)
@click.option("--data-class", default=None, help="Open this dataClass (list form) in the 4D app.")
@click.option("--primary-key", default=None, help="With --data-class: open this entity (detail form).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for final outcomes, retries included.",
)
@json_option
@clean_errors
def send(
    config_path: str | None,
    app_ref: str | None,
    recipients: tuple[str, ...],
    send_all: bool,
    targets: str | None,
    user_info: dict[str, Any] | None,
    localizations: dict[str, dict[str, str]] | None,
    data_class: str | None,
    primary_key: str | None,
    timeout: float,
    as_json: bool,
    **fields: Any,
) -> None:
    """Send a notification.

    \b
    pushrelay send --app myapp --to test@4d.com --title "Hello" --body "..."
    pushrelay send --app myapp --all --title "New version" --json
    pushrelay send --app myapp --all --title "New version" --localization "fr:title=Nouvelle version"
    """
    if send_all and recipients:
        raise click.UsageError("give either --to or --all, not both")
    if not send_all and not recipients:
        raise click.UsageError("give at least one --to (e-mail address or token), or --all")
    if primary_key is not None and data_class is None:
        raise click.UsageError("--primary-key needs --data-class")
    if send_all and data_class is not None:
        raise click.UsageError("--data-class opens a record for given recipients: use it with --to")
    notification = {k: v for k, v in fields.items() if v is not None}
    if user_info:
        notification["user_info"] = user_info
    if localizations:
        notification["localizations"] = localizations
    config = load(config_path)
    platforms = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    show_bar = not as_json and sys.stderr.isatty()
    with open_registry(config) as registry, _progress_bar(show_bar) as progress:
        push = PushNotification(app_ref, platforms, config=config, registry=registry, surface="cli")
        if send_all:
            result = push.send_all(notification, progress=progress, timeout=timeout)
        elif data_class is not None:
            target: Any = data_class if primary_key is None else (data_class, _primary_key(primary_key))
            result = push.open(target, notification, list(recipients), progress=progress, timeout=timeout)
        else:
            result = push.send(notification, list(recipients), progress=progress, timeout=timeout)
    if as_json:
        print_json({**result.to_dict(), "notification_id": result.notification_id})
    else:
        _report(result)
    sys.exit(0 if result.success else 1)


def _report(result: PushResult) -> None:
    counts = result.counts()
    total = sum(counts.values())
    delivered = counts.get("delivered", 0)
    details = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()) if outcome != "delivered")
    click.echo(f"delivered to {delivered} of {total} device(s)" + (f" ({details})" if details else ""))
    retired = sum(1 for d in result.deliveries if d.retired)
    if retired:
        click.echo(f"retired {retired} dead token(s)")
    for d in result.deliveries:
        if d.deferred_until is not None:
            when = d.deferred_until.strftime("%Y-%m-%d %H:%M:%S UTC")
            click.echo(f"deferred: {d.platform} {d.masked_token} until {when} ({d.reason}): not sent")
    if result.notification_id:
        click.echo(f"recorded as notification {result.notification_id}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
