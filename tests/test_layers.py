"""The layer rule (docs/architecture.md): imports point downward, protocol packages stay pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushrelay._tools import import_graph as ig


def test_no_upward_or_sideways_imports() -> None:
    bad = ig.violations()
    assert not bad, "layer violations:\n" + "\n".join(map(str, bad))


def test_protocol_packages_never_import_the_service_or_the_configuration() -> None:
    # no exception list applies to this rule
    bad = [
        v
        for v in ig.violations(known=True)
        if v.edge.source in ig.PROTOCOL_PACKAGES and v.edge.target in ig.PROTOCOL_FORBIDDEN
    ]
    assert not bad, "\n".join(map(str, bad))
    for source, _target in ig.KNOWN_EXCEPTIONS:
        assert ig._node(source) not in ig.PROTOCOL_PACKAGES


def test_known_exceptions_still_occur() -> None:
    """An exception that was fixed must leave the list, so that it cannot come back unnoticed."""
    occurring = {(e.module, e.target) for e in ig.edges()}
    stale = [key for key in ig.KNOWN_EXCEPTIONS if key not in occurring]
    assert not stale, f"remove from KNOWN_EXCEPTIONS: {stale}"


def test_every_package_has_a_place() -> None:
    placed = ig.ENTRY_POINTS | {m for _name, members in ig.LAYERS for m in members}
    assert set(ig.graph()) <= placed, sorted(set(ig.graph()) - placed)


def _tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pushrelay"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a protocol package reaching for the 4D-style API, even lazily inside a function
        (
            {"fcm/__init__.py": "", "fcm/p.py": "def f():\n    from ..push import api\n", "push/api.py": ""},
            "protocol package fcm/ must not import push/",
        ),
        ({"http2/__init__.py": "from pushrelay.config import model\n"}, "must not import config/"),
        ({"worker/__init__.py": "from ..server import metrics\n"}, "upward import: worker -> surfaces"),
        ({"queue/__init__.py": "from .. import providers\n", "providers/__init__.py": ""}, None),
        ({"providers/__init__.py": "from ..queue import models\n"}, "upward import: providers -> service"),
        ({"apns/__init__.py": "from ..fcm import client\n"}, "sideways import within the protocols layer"),
        ({"backoff.py": "from .http2 import pool\n"}, "upward import: core -> transport"),
        ({"queue/__init__.py": "from ..sandbox import server\n"}, "sandbox is an entry point"),
        ({"newpkg/__init__.py": "from ..outcome import Outcome\n"}, "newpkg is in no layer"),
    ],
)
def test_the_tool_finds_violations(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    found = ig.violations(_tree(tmp_path, files))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0].why, found


def test_the_graph_renders_as_text() -> None:
    text = ig.render()
    assert "[protocols]" in text and "  apns -> " in text
