"""``pushrelay serve`` delivers from a supervised child process (``service.worker_processes``):
a child killed with -9 is restarted and what it held is delivered, SIGTERM stops the API and the
child, a ``kill -9`` of serve takes the child along, and 0 keeps the worker in the API's process.
Real processes, the APNs sandbox over real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pushrelay._exceptions import ConfigurationError
from pushrelay.server.service import ServiceSettings
from pushrelay.server.worker_processes import WorkerProcesses, _Merged

from .conftest import Stack, notification_state, post_to_tokens, wait_until

N = {"title": "child", "body": "worker process"}


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return [c for c in found if alive(c)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; its parent has not reaped it yet


def _post(stack: Stack, tokens: list[str]) -> str:
    return post_to_tokens(stack, tokens, N)


_state = notification_state


def _worker_child(stack: Stack) -> int:
    assert stack.service.proc is not None
    pid = stack.service.proc.pid
    wait_until(lambda: len(children(pid)) == 1, 30, "one worker process")
    (child,) = children(pid)
    return child


def test_a_killed_worker_process_is_restarted_and_what_it_held_is_delivered(stack: Stack) -> None:
    sb = stack.sandbox
    slow = f"{1:064x}"
    sb.script(slow, "delay", times=1, seconds=4)  # held by the child when it is killed
    stack.service.env["PUSHRELAY_WORKER_LEASE"] = "1.5"
    stack.service.start()
    first = _worker_child(stack)
    nid = _post(stack, [slow, f"{2:064x}"])
    wait_until(lambda: len(sb.received(f"{2:064x}")) == 1, 30, "the quick delivery")
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not alive(first), 10, "the child to die")
    # restarted (after 1 s), and the slow delivery's lease runs out: sent again, recorded once
    wait_until(lambda: _state(stack, nid) == "completed", 60, "the delivery after the restart")
    second = _worker_child(stack)
    assert second != first
    with stack.client(stack.sender) as snd:
        st = snd.get(f"/v1/notifications/{nid}").json()
        assert st["counts"] == {"total": 2, "delivered": 2}
        # new work is delivered by the new child too, and its figures reach the API's /metrics
        nid2 = _post(stack, [f"{3:064x}"])
        wait_until(lambda: _state(stack, nid2) == "completed", 30, "a delivery by the new child")
        wait_until(
            lambda: (
                'pushrelay_deliveries_total{app="myapp",outcome="delivered",platform="ios",reason=""}'
                in snd.get("/metrics").text
            ),
            10,
            "the new child's metrics",
        )
    assert "worker_process.exited" in stack.service.log.read_text()


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_sigterm_stops_the_api_and_its_worker_process(stack: Stack) -> None:
    stack.service.start()
    child = _worker_child(stack)
    assert stack.service.proc is not None
    api = stack.service.proc.pid
    # delivery yields the cores to the API's requests (service.worker_nice, 10 by default)
    wait_until(lambda: niceness(child) - niceness(api) == 10, 10, "the child's nice")
    nid = _post(stack, [f"{4:064x}"])
    wait_until(lambda: _state(stack, nid) == "completed", 30, "the delivery")
    t0 = time.monotonic()
    assert stack.service.stop() == 0
    assert time.monotonic() - t0 < 15  # no longer than the worker's own graceful shutdown
    assert not alive(child)
    log = stack.service.log.read_text()
    assert "worker.stopped" in log and "worker_process.exited" not in log


def test_kill_9_of_serve_takes_its_worker_process_along(stack: Stack) -> None:
    stack.service.start()
    child = _worker_child(stack)
    stack.service.kill9()
    wait_until(lambda: not alive(child), 10, "the orphaned child to die")
    # a new service delivers as usual
    stack.service.start()
    nid = _post(stack, [f"{5:064x}"])
    wait_until(lambda: _state(stack, nid) == "completed", 30, "the delivery")


def test_worker_processes_0_keeps_the_worker_in_the_api_process(stack: Stack) -> None:
    stack.service.env["PUSHRELAY_WORKER_PROCESSES"] = "0"
    stack.service.start()
    assert stack.service.proc is not None
    nid = _post(stack, [f"{6:064x}"])
    wait_until(lambda: _state(stack, nid) == "completed", 30, "the delivery")
    assert children(stack.service.proc.pid) == []


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("PUSHRELAY_WORKER_PROCESSES", "65", "worker_processes"),
        ("PUSHRELAY_WORKER_NICE", "20", "worker_nice"),
    ],
)
def test_out_of_range_settings_name_the_key(variable: str, value: str, key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"service.{key}"):
        ServiceSettings.from_env({variable: value})
    assert ServiceSettings.from_env({variable: "0"}) != ServiceSettings()


def test_metrics_of_the_processes_merge() -> None:
    """Counters and per-process gauges add up; a gauge every process computes from the database
    is reported once."""
    texts = []
    for delivered, depth, clients in ((3, 7, 2), (4, 7, 5)):
        reg = CollectorRegistry()
        c = Counter("t_deliveries", "d", ["app"], registry=reg)
        c.labels("a").inc(delivered)
        Gauge("pushrelay_queue_depth", "q", registry=reg).set(depth)
        Gauge("pushrelay_provider_clients", "c", registry=reg).set(clients)
        texts.append(generate_latest(reg).decode())
    families = [f for t in texts for f in text_string_to_metric_families(t)]
    merged = generate_latest(_Merged(families)).decode()
    assert 't_deliveries_total{app="a"} 7.0' in merged
    assert "pushrelay_queue_depth 7.0" in merged
    assert "pushrelay_provider_clients 7.0" in merged
    assert merged.count("# TYPE t_deliveries_total counter") == 1


def test_a_killed_serves_socket_folder_is_removed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``kill -9`` of serve leaves its private folder behind; the next serve removes it, and only
    folders of processes that no longer run."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"pushrelay-workers-{dead.pid}-abc"
    stale.mkdir()
    (stale / "worker-0.sock").touch()
    live = tmp_path / f"pushrelay-workers-{os.getpid()}-def"
    live.mkdir()
    procs = WorkerProcesses(1, ["true"])
    assert not stale.exists()
    assert live.exists() and procs.sockets[0].parent.exists()
    assert procs.sockets[0].parent.name.startswith(f"pushrelay-workers-{os.getpid()}-")
