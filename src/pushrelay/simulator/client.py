"""Deliver to an iOS simulator with ``xcrun simctl push <udid> <bundle-id> <payload-file>``.

4D registers a simulator with its UDID (or ``booted``) in place of an APNs token; APNs cannot reach
simulators, Xcode's ``simctl`` can. Where ``xcrun`` is not on PATH (Linux, a Mac without Xcode) the
delivery fails with a clear reason instead of being silently dropped. The payload is the same JSON
APNs would get (:func:`pushrelay.apns.payload.render`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from .._batching import BatchClient
from .._exceptions import ConfigurationError
from ..apns.payload import render
from ..notification import Notification
from ..outcome import DeliveryResult, Outcome

__all__ = ["SimulatorClient", "is_simulator_token"]

_UDID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_BUNDLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")


def is_simulator_token(token: str) -> bool:
    """A simulator UDID (``8-4-4-4-12`` hex) or ``booted``, as 4D stores for simulator sessions."""
    return token == "booted" or _UDID.fullmatch(token) is not None  # noqa: S105 (not a password)


def _write_payload(body: bytes) -> Path:
    """The payload file simctl reads (private to this user, removed after the push)."""
    fd, name = tempfile.mkstemp(prefix="pushrelay-simulator-", suffix=".apns")
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    return Path(name)


class SimulatorClient(BatchClient[str]):
    """Push to simulators on this Mac for one app (``bundle_id``)."""

    def __init__(
        self, bundle_id: str, *, xcrun: str | None = None, concurrency: int = 4, timeout: float = 30.0
    ) -> None:
        if not isinstance(bundle_id, str) or not _BUNDLE.fullmatch(bundle_id):
            raise ConfigurationError(
                f"bundle_id must be a bundle identifier such as com.sample.myappname, got {bundle_id!r}",
                field="bundle_id",
            )
        self.bundle_id = bundle_id
        self._xcrun = xcrun
        self.concurrency = concurrency
        self.timeout = timeout

    async def send(self, notification: Notification, token: str) -> DeliveryResult:
        request = render(notification, topic=self.bundle_id)
        if not isinstance(token, str) or not is_simulator_token(token):
            # Never hand an arbitrary text to a command line (an option such as --help, say).
            return DeliveryResult(
                str(token), Outcome.FAILED, reason="not a simulator UDID (8-4-4-4-12 hex) nor 'booted'"
            )
        xcrun = self._xcrun or shutil.which("xcrun")
        if xcrun is None:
            return DeliveryResult(
                token,
                Outcome.FAILED,
                reason="xcrun is not on PATH: iOS simulator delivery needs Xcode on this machine (macOS)",
            )
        path = await asyncio.to_thread(_write_payload, request.body)
        try:
            return await self._run(xcrun, token, path)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def _run(self, xcrun: str, token: str, payload: Path) -> DeliveryResult:
        try:
            process = await asyncio.create_subprocess_exec(
                xcrun,
                "simctl",
                "push",
                token,
                self.bundle_id,
                str(payload),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return DeliveryResult(token, Outcome.FAILED, reason=f"cannot run {xcrun}: {exc.strerror}")
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            return DeliveryResult(
                token, Outcome.FAILED, reason=f"xcrun simctl push gave no answer in {self.timeout:g} s"
            )
        if process.returncode == 0:
            return DeliveryResult(token, Outcome.DELIVERED)
        lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        detail = lines[-1].strip()[:300] if lines else "no error text"
        return DeliveryResult(
            token, Outcome.FAILED, reason=f"xcrun simctl push failed (exit {process.returncode}): {detail}"
        )
