"""A fake ``xcrun`` put on PATH, so simulator delivery runs for real on any machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Records its arguments and the payload file's content, then behaves like simctl: an unknown device
# is refused on stderr with exit 148, as Xcode's simctl does.
FAKE_XCRUN = """#!{python}
import json, pathlib, sys
log = pathlib.Path({log!r})
args = sys.argv[1:]
payload = pathlib.Path(args[-1]).read_text() if len(args) == 5 else None
with log.open("a") as fh:
    fh.write(json.dumps({{"args": args, "payload": payload}}) + "\\n")
if args[2] == "00000000-0000-0000-0000-000000000000":
    print("An error was encountered processing the command (code=404):", file=sys.stderr)
    print("Invalid device: 00000000-0000-0000-0000-000000000000", file=sys.stderr)
    sys.exit(148)
print("Notification sent to '{{}}'".format(args[3]))
"""


@pytest.fixture
def fake_xcrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "xcrun.log"
    script = bin_dir / "xcrun"
    script.write_text(FAKE_XCRUN.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}")
    return log
