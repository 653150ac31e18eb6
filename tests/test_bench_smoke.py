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
