"""bench/end_to_end.py runs, tiny, and reports every figure of its contract (no figure is asserted:
speed is measured by the benchmark, not by tests)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "end_to_end.py"
KEYS = (
    "raw_per_s",
    "e2e_per_s",
    "ratio",
    "register_per_s",
    "api_p50_ms",
    "api_p99_ms",
    "api_achieved_rps",
    "peak_rss_mb",
)


def test_end_to_end_benchmark_runs_tiny_on_sqlite() -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("the null APNs sink needs nginx (bash ../shared/bench/setup.sh installs it)")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--devices", "300", "--db", "sqlite", "--api-rps", "20", "--api-seconds", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode == 3:
        pytest.skip(f"the null APNs sink could not run: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"] is True and out["e2e_counts"]["delivered"] == 300 and out["api_undelivered"] == 0
    for key in KEYS:
        assert isinstance(out[key], (int, float)) and out[key] >= 0, key


def test_the_asyncio_h2_peer_sends_to_the_null_sink(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import end_to_end
    finally:
        sys.path.remove(str(BENCH.parent))
    try:
        sink, url, ca = end_to_end.start_sink(tmp_path)
    except end_to_end.SinkUnavailable as exc:
        pytest.skip(f"the null APNs sink could not run: {exc}")
    try:
        proc = subprocess.run(
            [sys.executable, str(BENCH.parent / "h2_peer.py"), "--n", "300", "--endpoint", url, "--ca-file", str(ca), "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        end_to_end.stop(sink)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["ok"] == out["sent"] == 300 and out["rate"] > 0


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_outbox_stages_benchmark_runs_tiny(db: str) -> None:
    bench = BENCH.parent / "outbox_stages.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--devices", "300", "--db", db, "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"] is True
    for key in ("stream", "insert", "claim", "record", "status"):
        assert isinstance(out[key], (int, float)) and out[key] >= 0, key
