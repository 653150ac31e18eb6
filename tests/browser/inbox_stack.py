"""The three sandboxes and their inbox page on an event loop in a background thread, plus senders
that deliver through them with pushrelay's own APNs, FCM and Web Push clients (real TLS, HTTP/2)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pushrelay import Notification
from pushrelay.apns import ApnsClient, TokenAuth
from pushrelay.fcm import FcmSettings
from pushrelay.outcome import DeliveryResult
from pushrelay.sandbox.inbox import Inbox, serve_inbox
from pushrelay.sandbox.stack import SandboxStack
from pushrelay.webpush import WebPushSettings

T = TypeVar("T")


class InboxStack:
    """Everything runs on ``self.loop`` (its own thread): call :meth:`run` from test code."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stack: SandboxStack, inbox: Inbox, url: str) -> None:
        self.loop, self.stack, self.inbox, self.url = loop, stack, inbox, url
        # one provider token for the module: APNs refuses a team's new token within 20 minutes
        self._auth = TokenAuth.from_file(stack.key_file, team_id=stack.team_id)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def on_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` on the sandboxes' loop (their state belongs to that thread)."""

        async def call() -> T:
            return fn(*args, **kwargs)

        return self.run(call())

    def apns_token(self) -> str:
        """A token the (strict) APNs sandbox issued for the stack's app, as Apple would."""
        return self.stack.apns.issue_token(self.stack.bundle_id)

    def fcm_token(self) -> str:
        # FCM registration tokens look like "<instance id>:APA91b<...>"
        return f"{secrets.token_urlsafe(16)}:APA91b{secrets.token_urlsafe(100)}"

    def subscription(self) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            return self.stack.web.new_subscription(application_server_key=self.stack.vapid_public_key)

        return self.run(make())

    def send_apns(self, notification: Notification, token: str) -> DeliveryResult:
        stack = self.stack

        async def send() -> DeliveryResult:
            async with ApnsClient(
                self._auth, topic=stack.bundle_id, endpoint=stack.apns.url, ca_file=stack.apns.ca_file
            ) as client:
                return await client.send(notification, token)

        return self.run(send())

    def send_fcm(
        self, notification: Notification, token: str, *, mapping: str = "standard"
    ) -> DeliveryResult:
        table = {**self.stack.app_tables("demo")["apps.demo.fcm"], "mapping": mapping}

        async def send() -> DeliveryResult:
            async with FcmSettings.from_mapping(table).client() as client:
                return await client.send(notification, token)

        return self.run(send())

    def send_web(self, notification: Notification, subscription: dict[str, Any]) -> DeliveryResult:
        table = self.stack.app_tables("demo")["apps.demo.webpush"]

        async def send() -> DeliveryResult:
            async with WebPushSettings.from_mapping(table).client() as client:
                return await client.send(notification, subscription)

        return self.run(send())


@contextlib.contextmanager
def inbox_stack(directory: Path, *, poll_seconds: float = 0.2) -> Iterator[InboxStack]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    failure: list[BaseException] = []
    holder: list[InboxStack] = []

    async def main() -> None:
        async with SandboxStack.serve(directory) as stack:
            inbox = Inbox.for_stack(stack, poll_seconds=poll_seconds)
            async with serve_inbox(inbox) as url:
                holder.append(InboxStack(loop, stack, inbox, url))
                started.set()
                await stop.wait()

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            failure.append(exc)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main, name="inbox-stack", daemon=True)
    thread.start()
    started.wait(60)
    if failure:
        raise failure[0]
    try:
        yield holder[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
