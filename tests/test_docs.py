"""The complete examples of docs/ run as written (snippets that need the reader's own key files are
not listed here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
RUNNABLE = [
    ("apns.md", 0),
    ("credentials.md", 3),
    ("fcm.md", 2),
    ("webpush.md", 1),
    ("sandbox.md", 2),
    ("localization.md", 0),
]


def block(name: str, index: int) -> str:
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(encoding="utf-8"), re.S)[index]


@pytest.mark.parametrize(("name", "index"), RUNNABLE, ids=[f"{n}#{i}" for n, i in RUNNABLE])
def test_example_runs(name: str, index: int, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", block(name, index)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_4d_http_calls_shown() -> None:
    """docs/4d-migration.md shows the 4D calls whose requests clients/4d/requests.json keeps (and
    tests/service/test_fourd_http.py replays)."""
    import json

    fixture = json.loads((DOCS.parent / "clients" / "4d" / "requests.json").read_text(encoding="utf-8"))
    doc = (DOCS / "4d-migration.md").read_text(encoding="utf-8")
    for line in [fixture["setup"], fixture["notification"], *(c["call"] for c in fixture["requests"])]:
        assert line in doc, line
    assert json.dumps(fixture["requests"][0]["body"], ensure_ascii=False) in doc


@pytest.mark.parametrize("name", ["localization.md", "local-time.md"])
def test_example_prints_what_it_says(name: str, tmp_path: Path) -> None:
    """The ``# ...`` lines of these examples are their output, checked."""
    code = block(name, 0)
    said = [line.strip()[2:] for line in code.splitlines() if line.strip().startswith("# ")]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == said
