"""Live sync of 4D ``MobileApps`` folders with the device registry.

A running 4D server keeps writing its app folders: a session file appears when a user signs in
from the app, changes (status ``pending`` → ``accepted``, a new push token) and disappears when
the session is dropped. :class:`FourDSync` keeps the registry in step:

- a new or changed session file registers or updates its device (seen at the file's time);
- a session file that disappears deactivates its device with the reason ``"4D session removed"``
  (unless another session file still holds the same token, or the device registered again
  since, through the API);
- a ``pending`` session is not used until 4D accepts it;
- a file that cannot be read is reported once (a log line, a metric) and skipped;
- a full pass (at start, then every ``resync_every`` seconds) catches up with what changed while
  nobody watched; between passes, file-system events (``watchfiles``: inotify, FSEvents...) bring
  each change within a fraction of a second.

Every session file seen is a row of ``fourd_sessions`` (see :mod:`.models`). A file whose size and
modification time match its row is not even read, so a pass over an unchanged folder costs one
query and a ``stat`` per file. Rows change through conditional statements: when several processes
watch the same folder, each change is applied by whichever gets there first and seen as done by
the others, so nothing is reported twice and nothing flaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..config.model import Config
from ..logs import event, get_logger
from ..registry.devices import DeviceInfo, DeviceRegistry, Registration
from ..registry.tokens import InvalidDeviceError, token_hash
from .models import FourDFolderRow, FourDSessionRow
from .sessions import (
    MAX_SESSION_FILE_SIZE,
    FourDSession,
    SessionFileError,
    is_session_file,
    parse_session_bytes,
)

__all__ = [
    "SESSION_PENDING",
    "SESSION_REMOVED",
    "SESSION_WITHOUT_TOKEN",
    "TOKEN_REPLACED",
    "FolderSync",
    "FourDSync",
    "WatchedFolder",
    "record_folder",
    "recorded_folders",
    "sync_for_config",
    "watched_folders",
]

log = get_logger("fourd")

SESSION_REMOVED = "4D session removed"
SESSION_PENDING = "4D session pending"
SESSION_WITHOUT_TOKEN = "4D session without push token"  # noqa: S105 - a reason, not a secret
TOKEN_REPLACED = "4D session token replaced"  # noqa: S105

_SESSIONS = cast(sa.Table, FourDSessionRow.__table__)
_FOLDERS = cast(sa.Table, FourDFolderRow.__table__)
_S = _SESSIONS.c


@dataclass(frozen=True, slots=True)
class WatchedFolder:
    """One 4D app folder and the pushrelay app its sessions belong to."""

    app: str
    folder: Path
    bundle_id: str | None = None
    """When known, session files of another bundle id are refused (a file copied by mistake)."""


@dataclass
class FolderSync:
    """What one pass over (part of) a folder found."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    pending: int = 0
    without_token: int = 0
    removed: int = 0
    deactivated: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(file name, reason)`` of every unusable file seen in this pass."""
    reported: list[tuple[str, str]] = field(default_factory=list)
    """The unusable files this process reported (first seen broken, in this content)."""
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def registered(self) -> int:
        return self.created + self.updated + self.unchanged


class _Row(NamedTuple):
    path: str
    mtime_ns: int
    size: int
    digest: str
    state: str
    token_hash: str | None
    seen_at: datetime
    error: str | None


@dataclass
class _Read:
    """A session file read in this pass, and what to store about it."""

    name: str
    mtime_ns: int
    size: int
    digest: str
    seen_at: datetime
    state: str = "broken"
    session: FourDSession | None = None
    info: DeviceInfo | None = None
    error: str | None = None
    token_hash: str | None = None


def _rowcount(session: Session, stmt: sa.Executable) -> int:
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def _folder_hash(folder: Path) -> str:
    return hashlib.sha256(str(folder).encode()).hexdigest()


def record_folder(registry: DeviceRegistry, app: str, folder: Path) -> None:
    """Remember that ``folder`` feeds ``app`` (``import-4d``), so ``serve`` watches it."""
    folder = folder.resolve()
    values = {"app": app, "folder": str(folder), "folder_hash": _folder_hash(folder)}
    with contextlib.suppress(IntegrityError), registry.db.session() as session:
        exists = session.execute(
            sa.select(_FOLDERS.c.id).where(
                _FOLDERS.c.app == app, _FOLDERS.c.folder_hash == values["folder_hash"]
            )
        ).first()
        if exists is None:
            session.execute(sa.insert(_FOLDERS).values(**values, added_at=datetime.now(UTC)))


def recorded_folders(registry: DeviceRegistry) -> list[tuple[str, Path]]:
    """``(app, folder)`` of every folder recorded by :func:`record_folder`."""
    with registry.db.session() as session:
        rows = session.execute(sa.select(_FOLDERS.c.app, _FOLDERS.c.folder).order_by(_FOLDERS.c.id)).all()
    return [(app, Path(folder)) for app, folder in rows]


class FourDSync:
    """Keeps the registry in step with 4D app folders (see the module docstring).

    The blocking methods (:meth:`reconcile`, :meth:`sync_folder`) may be called from any thread;
    :meth:`run` watches until stopped. It is also a Prometheus collector of its counters.
    """

    def __init__(
        self, registry: DeviceRegistry, folders: Iterable[WatchedFolder], *, resync_every: float = 300.0
    ) -> None:
        self.registry = registry
        self.db = registry.db
        self.folders: dict[Path, WatchedFolder] = {}
        for wf in folders:
            resolved = wf.folder.expanduser().resolve()
            self.folders.setdefault(resolved, WatchedFolder(wf.app, resolved, wf.bundle_id))
        self.resync_every = resync_every
        self.counts: dict[tuple[str, str], int] = {}
        """``(app, result)`` → files, since this process started: registered, removed, pending,
        broken (reported by this process), deactivated."""
        self.passes = 0
        self.watching = False

    # -- one pass -----------------------------------------------------------------------------
    def reconcile(self) -> dict[Path, FolderSync]:
        """A full pass over every folder: what appeared, changed or vanished since the last one."""
        return {folder: self.sync_folder(wf) for folder, wf in self.folders.items()}

    def sync_folder(self, wf: WatchedFolder, names: Iterable[str] | None = None) -> FolderSync:
        """Bring the session files ``names`` of ``wf`` (all of them, and every row whose file
        vanished, when ``names`` is None) into the registry."""
        result = FolderSync()
        prefix = wf.folder.name + "/"
        wanted = None if names is None else sorted({n for n in names if is_session_file(n)})
        rows = self._rows(wf.app, prefix, wanted)
        if wanted is None:
            try:
                listed = [e.name for e in os.scandir(wf.folder) if is_session_file(e.name)]
            except OSError as exc:
                # an unmounted share must not read as "every session removed"
                event(log, logging.ERROR, "fourd.folder_unreadable", app=wf.app, folder=str(wf.folder),
                      error=exc.strerror or str(exc))  # fmt: skip
                return result
            wanted = sorted(set(listed) | set(rows))
        reads: list[_Read] = []
        for name in wanted:
            read = self._look(wf, name, rows.get(name), result)
            if read is not None:
                reads.append(read)
        self._register(wf, reads, result)
        inserted = self._insert_new(wf, [r for r in reads if r.name not in rows])
        for read in reads:
            self._store(wf, read, rows.get(read.name), result, inserted=read.name in inserted)
        self.passes += 1
        for key, n in (("registered", result.created + result.updated), ("removed", result.removed),
                       ("deactivated", result.deactivated), ("broken", len(result.reported))):  # fmt: skip
            if n:
                self.counts[(wf.app, key)] = self.counts.get((wf.app, key), 0) + n
        return result

    def apply_changes(self, paths: Iterable[str | Path]) -> FolderSync:
        """Sync the files named by file-system events (changed, added or deleted)."""
        by_folder: dict[Path, set[str]] = {}
        for p in paths:
            path = Path(p)
            if path.parent in self.folders:
                by_folder.setdefault(path.parent, set()).add(path.name)
        total = FolderSync()
        for folder, names in by_folder.items():
            part = self.sync_folder(self.folders[folder], names)
            for name in (
                "created",
                "updated",
                "unchanged",
                "pending",
                "without_token",
                "removed",
                "deactivated",
            ):
                setattr(total, name, getattr(total, name) + getattr(part, name))
            total.skipped += part.skipped
            total.reported += part.reported
            total.notes += part.notes
        return total

    def _rows(self, app: str, prefix: str, names: list[str] | None) -> dict[str, _Row]:
        cols = [_S.path, _S.mtime_ns, _S.size, _S.digest, _S.state, _S.token_hash, _S.seen_at, _S.error]
        found: dict[str, _Row] = {}
        with self.db.session() as session:
            if names is None:
                # LIKE would need escaping of the folder name: compare the prefix instead
                stmt = sa.select(*cols).where(
                    _S.app == app, sa.func.substr(_S.path, 1, len(prefix)) == prefix
                )
                batches: Iterator[Any] = iter([session.execute(stmt).all()])
            else:
                batches = (
                    session.execute(
                        sa.select(*cols).where(
                            _S.app == app, _S.path.in_([prefix + n for n in names[i : i + 500]])
                        )
                    ).all()
                    for i in range(0, len(names), 500)
                )
            for batch in batches:
                for r in batch:
                    found[r.path[len(prefix) :]] = _Row(*r)
        return found

    def _look(self, wf: WatchedFolder, name: str, row: _Row | None, result: FolderSync) -> _Read | None:
        """Stat (and when it changed, read and parse) one file; handle vanished files at once."""
        path = wf.folder / name
        try:
            st = path.stat()
        except FileNotFoundError:
            st = None
        except OSError as exc:
            result.skipped.append((name, f"cannot be read: {exc.strerror or exc}"))
            return None
        if st is None or not stat.S_ISREG(st.st_mode):
            if row is not None:
                self._remove(wf, row, result)
            return None
        if row is not None and (row.mtime_ns, row.size) == (st.st_mtime_ns, st.st_size):
            self._count_known(row, name, result)
            return None
        try:
            with path.open("rb") as fh:  # one byte over the limit is enough to refuse the file
                raw = fh.read(MAX_SESSION_FILE_SIZE + 1)
        except FileNotFoundError:
            if row is not None:
                self._remove(wf, row, result)
            return None
        except OSError as exc:
            result.skipped.append((name, f"cannot be read: {exc.strerror or exc}"))
            return None
        digest = hashlib.sha256(raw).hexdigest()
        seen_at = datetime.fromtimestamp(st.st_mtime, UTC)
        if row is not None and row.digest == digest:
            # touched, not changed (a copy, a backup restore): remember the new stat only
            with self.db.session() as session:
                session.execute(
                    sa.update(_SESSIONS)
                    .where(_S.app == wf.app, _S.path == row.path)
                    .values(mtime_ns=st.st_mtime_ns, size=st.st_size)
                )
            self._count_known(row, name, result)
            return None
        read = _Read(name, st.st_mtime_ns, st.st_size, digest, seen_at)
        try:
            fourd = parse_session_bytes(raw, file=path, modified=seen_at)
            if wf.bundle_id and fourd.bundle_id and fourd.bundle_id != wf.bundle_id:
                raise SessionFileError(path, f"belongs to app {fourd.bundle_id}, not {wf.bundle_id}")
            read.session = fourd
            if fourd.token is None:
                read.state = "no_token"
            elif fourd.pending:
                read.state = "pending"
            else:
                read.info = fourd.device_info(wf.app).validated()
                read.state = "registered"
        except SessionFileError as exc:
            read.error = exc.reason
        except InvalidDeviceError as exc:
            read.error = f"{exc.field}: {exc}"
        if read.session is not None and read.state != "broken":
            result.notes.extend((name, note) for note in read.session.notes)
        return read

    @staticmethod
    def _count_known(row: _Row, name: str, result: FolderSync) -> None:
        if row.state == "registered":
            result.unchanged += 1
        elif row.state == "pending":
            result.pending += 1
        elif row.state == "no_token":
            result.without_token += 1
        else:
            result.skipped.append((name, row.error or "unusable"))

    def _register(self, wf: WatchedFolder, reads: list[_Read], result: FolderSync) -> None:
        todo = [r for r in reads if r.info is not None]
        for start in range(0, len(todo), 500):
            chunk = todo[start : start + 500]
            done: list[tuple[_Read, Registration]] = []
            try:
                done = list(
                    zip(chunk, self.registry.register_many([r.info for r in chunk if r.info]), strict=True)
                )
            except InvalidDeviceError:
                for r in chunk:  # validated above, so rare (a field too long): skip only the culprit
                    assert r.info is not None
                    try:
                        done.append((r, self.registry.register_many([r.info])[0]))
                    except InvalidDeviceError as exc:
                        r.state, r.info, r.error = "broken", None, f"{exc.field}: {exc}"
            for r, reg in done:
                r.token_hash = token_hash(reg.device.token)
                if reg.status == "created":
                    result.created += 1
                elif reg.status == "updated":
                    result.updated += 1
                else:
                    result.unchanged += 1

    @staticmethod
    def _values(read: _Read, row: _Row | None) -> dict[str, Any]:
        token = read.token_hash
        if read.state == "broken" and row is not None:
            token = row.token_hash  # keep the device it registered: removing the file retires it
        return {
            "mtime_ns": read.mtime_ns,
            "size": read.size,
            "digest": read.digest,
            "state": read.state,
            "token_hash": token,
            "seen_at": read.seen_at,
            "error": (read.error or "")[:300] or None,
        }

    def _insert_new(self, wf: WatchedFolder, reads: list[_Read]) -> set[str]:
        """Rows of files seen for the first time, 500 per transaction (a first import, a restart
        after a busy night). A chunk another process stored meanwhile is left to :meth:`_store`."""
        done: set[str] = set()
        prefix = wf.folder.name + "/"
        for start in range(0, len(reads), 500):
            chunk = reads[start : start + 500]
            rows = [{"app": wf.app, "path": prefix + r.name, **self._values(r, None)} for r in chunk]
            try:
                with self.db.session() as session:
                    session.execute(sa.insert(_SESSIONS), rows)
            except IntegrityError:
                continue
            done.update(r.name for r in chunk)
        return done

    def _store(
        self, wf: WatchedFolder, read: _Read, row: _Row | None, result: FolderSync, *, inserted: bool = False
    ) -> None:
        """Write the row of one file read in this pass; report what this process changed first."""
        path = wf.folder.name + "/" + read.name
        values = self._values(read, row)
        mine = inserted
        for _ in range(0 if inserted else 3):
            with self.db.session() as session:
                if row is None:
                    try:
                        with session.begin_nested():
                            session.execute(sa.insert(_SESSIONS).values(app=wf.app, path=path, **values))
                        mine = True
                    except IntegrityError:
                        pass  # another process stored it first: compare with what it stored
                else:
                    stmt = (
                        sa.update(_SESSIONS)
                        .where(
                            _S.app == wf.app, _S.path == path, _S.digest == row.digest, _S.state == row.state
                        )
                        .values(**values)
                    )
                    mine = _rowcount(session, stmt) > 0
            if mine:
                break
            now = self._rows(wf.app, wf.folder.name + "/", [read.name]).get(read.name)
            if now is not None and now.digest == read.digest:
                break  # the same content, stored by another process: its report, not ours
            row = now
        if read.state == "registered":
            pass
        elif read.state == "pending":
            result.pending += 1
        elif read.state == "no_token":
            result.without_token += 1
        else:
            result.skipped.append((read.name, read.error or "unusable"))
            if mine:
                result.reported.append((read.name, read.error or "unusable"))
                event(log, logging.WARNING, "fourd.session_skipped", app=wf.app, file=path, reason=read.error)
        if not mine or row is None or row.token_hash is None:
            return
        # the device this file registered before, when the file no longer stands for it
        if read.state == "pending":
            self._release(wf.app, row.token_hash, path, SESSION_PENDING, row.seen_at, result)
        elif read.state == "no_token":
            self._release(wf.app, row.token_hash, path, SESSION_WITHOUT_TOKEN, row.seen_at, result)
        elif read.state == "registered" and read.token_hash != row.token_hash:
            self._release(wf.app, row.token_hash, path, TOKEN_REPLACED, row.seen_at, result)

    def _remove(self, wf: WatchedFolder, row: _Row, result: FolderSync) -> None:
        # deactivate first, then forget the file: a crash in between is redone by the next pass
        if row.token_hash is not None:
            self._release(wf.app, row.token_hash, row.path, SESSION_REMOVED, row.seen_at, result)
        with self.db.session() as session:
            gone = _rowcount(
                session,
                sa.delete(_SESSIONS).where(_S.app == wf.app, _S.path == row.path, _S.digest == row.digest),
            )
        if gone:
            result.removed += 1
            event(log, logging.INFO, "fourd.session_removed", app=wf.app, file=row.path)

    def _release(
        self, app: str, digest: str, path: str, reason: str, seen_at: datetime, result: FolderSync
    ) -> None:
        """Deactivate the device ``digest`` unless another session file of the app still holds
        it; a device registered again since ``seen_at`` (the API, a newer file) is left alone."""
        with self.db.session() as session:
            other = session.execute(
                sa.select(_S.id)
                .where(_S.app == app, _S.token_hash == digest, _S.path != path, _S.state == "registered")
                .limit(1)
            ).first()
        if other is not None:
            return
        if self.registry.retire_hash(app, digest, reason, registered_before=seen_at):
            result.deactivated += 1
            event(log, logging.INFO, "fourd.device_deactivated", app=app, file=path, reason=reason)

    # -- watching ------------------------------------------------------------------------------
    def _filter(self, _change: Any, path: str) -> bool:
        p = Path(path)
        return p.parent in self.folders and is_session_file(p.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every folder, then follow their changes until ``stop`` is set.

        Errors (the database gone for a while) are logged and retried at the next change or
        pass; they never end the service."""
        from watchfiles import awatch

        if not self.folders:
            return
        folders = [f for f in self.folders if f.is_dir()]
        for missing in set(self.folders) - set(folders):
            event(
                log, logging.ERROR, "fourd.folder_missing", app=self.folders[missing].app, folder=str(missing)
            )
        if not folders:
            return
        halt = asyncio.Event()  # awatch sets its stop event itself when cancelled: keep ours apart
        changes = awatch(
            *folders, watch_filter=self._filter, stop_event=halt, recursive=False, debounce=1000, step=50
        )

        async def next_changes() -> set[tuple[Any, str]]:
            return await anext(changes)

        nxt = asyncio.create_task(next_changes())
        # Let that task take its first step: it creates the watcher synchronously before it first
        # waits, so a file written during the initial pass below is seen by one or the other.
        await asyncio.sleep(0)
        self.watching = True
        await self._safely(self.reconcile, "reconcile")
        event(log, logging.INFO, "fourd.watching", folders=len(folders))
        stopping = asyncio.ensure_future(stop.wait())
        loop = asyncio.get_running_loop()
        next_pass = loop.time() + self.resync_every
        try:
            while not stop.is_set():
                done, _ = await asyncio.wait(
                    {nxt, stopping},
                    timeout=max(0.0, next_pass - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if nxt in done:
                    try:
                        batch = nxt.result()
                    except StopAsyncIteration:
                        break
                    nxt = asyncio.create_task(next_changes())
                    await self._safely(partial(self.apply_changes, [p for _, p in batch]), "changes")
                elif not done:
                    await self._safely(self.reconcile, "reconcile")
                    next_pass = loop.time() + self.resync_every
        finally:
            self.watching = False
            halt.set()
            stopping.cancel()
            with contextlib.suppress(StopAsyncIteration, asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(nxt, timeout=5)
            await changes.aclose()

    async def _safely(self, fn: Any, what: str) -> None:
        try:
            await asyncio.to_thread(fn)
        except (SQLAlchemyError, OSError) as exc:
            event(
                log, logging.ERROR, "fourd.sync_failed", step=what, error=f"{type(exc).__name__}: {exc}"[:300]
            )

    # -- metrics -------------------------------------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        files = CounterMetricFamily(
            "pushrelay_fourd_session_files",
            "4D session files handled by this process (registered, removed, broken, deactivated)",
            labels=["app", "result"],
        )
        for (app, result), n in sorted(self.counts.items()):
            files.add_metric([app, result], n)
        yield files
        watched = GaugeMetricFamily("pushrelay_fourd_folders_watched", "4D app folders watched")
        watched.add_metric([], len(self.folders) if self.watching else 0)
        yield watched


def sync_for_config(config: Config, registry: DeviceRegistry, *, resync_every: float = 300.0) -> FourDSync:
    """The sync of every 4D folder the service should watch (see :func:`watched_folders`)."""
    apps = {name: (app.bundle_id, app.fourd_folder) for name, app in config.apps.items()}
    return FourDSync(registry, watched_folders(apps, recorded_folders(registry)), resync_every=resync_every)


def watched_folders(
    apps: Mapping[str, tuple[str, Path | None]], recorded: Iterable[tuple[str, Path]]
) -> list[WatchedFolder]:
    """The folders to watch: each app's ``fourd_folder`` (``apps`` maps name → (bundle id,
    folder)), and the folders ``import-4d`` recorded for configured apps."""
    found: dict[Path, WatchedFolder] = {}
    for name, (bundle, folder) in apps.items():
        if folder is not None:
            found.setdefault(folder.resolve(), WatchedFolder(name, folder.resolve(), bundle))
    for name, folder in recorded:
        if name in apps:
            found.setdefault(folder.resolve(), WatchedFolder(name, folder.resolve(), apps[name][0]))
    return list(found.values())
