"""The import graph of pushrelay's packages, read from the source with :mod:`ast` (nothing is imported).

A node is a top-level package (``apns``, ``queue``...) or a top-level module (``notification``,
``outcome``...). Every ``import`` counts, including those inside functions and ``TYPE_CHECKING``
blocks: a lazy import is still a dependency, and hiding one is how cycles crept in before.

``python -m pushrelay._tools.import_graph`` prints the graph and the layer violations (exit 1 when
there are any); ``tests/test_layers.py`` holds the rule.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LAYERS",
    "PROTOCOL_FORBIDDEN",
    "PROTOCOL_PACKAGES",
    "Edge",
    "Violation",
    "edges",
    "graph",
    "layer_of",
    "render",
    "violations",
]

ROOT = Path(__file__).resolve().parent.parent
"""The ``pushrelay`` package directory."""

# Bottom to top. A node may import its own layer's members only when listed in SAME_LAYER_OK, and
# any layer below it. Nodes not listed here are entry points (see ENTRY_POINTS) or a test failure.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "core",
        frozenset(
            {
                "notification",
                "localization",
                "local_time",
                "outcome",
                "_exceptions",
                "backoff",
                "metrics",
                "logs",
                "_pem",
                "_toml_table",
                "_batching",
            }
        ),
    ),
    ("transport", frozenset({"http2", "tls"})),
    ("protocols", frozenset({"apns", "fcm", "webpush", "simulator"})),
    ("configuration", frozenset({"config", "db"})),
    ("providers", frozenset({"providers"})),
    ("service", frozenset({"queue", "registry", "webhooks", "fourd"})),
    ("worker", frozenset({"worker"})),
    ("surfaces", frozenset({"cli", "push", "server", "console"})),
)
"""The layers, bottom first (docs/architecture.md draws the same picture)."""

ENTRY_POINTS = frozenset({"__init__", "__main__", "migrations", "models_index", "sandbox", "_tools"})
"""Nodes above every layer: the package's public re-exports, ``python -m pushrelay``, Alembic's
scripts, the table index Alembic reads, the sandboxes (a separate product that shares the
protocol packages' rules, never the sender's code) and these tools. Nothing in a layer may import
them (except ``sandbox``, which ``cli`` starts)."""

SAME_LAYER_OK: Mapping[str, frozenset[str]] = {
    # core modules are leaves but may lean on one another (the exception base class, the PEM reader)
    "core": LAYERS[0][1],
    "transport": frozenset({"tls"}),
    "protocols": frozenset({"apns"}),  # simulators take APNs payloads (``xcrun simctl push``)
    "configuration": frozenset({"db"}),
    "service": frozenset({"queue", "registry"}),
    # the library's recipient rules; ``pushrelay serve``; the console's pages, which
    # ``server.app`` mounts next to the API it shares the checks of
    "surfaces": frozenset({"push", "server", "console"}),
}
"""Within a layer, which nodes others of that layer may import."""

PROTOCOL_PACKAGES = frozenset({"apns", "fcm", "webpush", "simulator", "http2"})
PROTOCOL_FORBIDDEN = frozenset({"push", "server", "worker", "queue", "config", "cli", "console"})
"""The protocol packages (and the transport) take plain settings objects: they never import the
surfaces, the worker, the outbox or the configuration loaders."""

ENTRY_POINT_USERS: Mapping[str, frozenset[str]] = {
    "sandbox": frozenset({"cli"}),  # ``pushrelay sandbox`` and the demo start it
    "__init__": frozenset({"cli", "server"}),  # ``__version__``
}

KNOWN_EXCEPTIONS: Mapping[tuple[str, str], str] = {
    ("pushrelay.config.loader", "fourd"): "the loader reads a 4D app folder (fourd.folder, a pure parser)",
}
"""``(importing module, imported node) -> why``: upward edges that exist today, each to be removed.
tests/test_layers.py fails on any other violation, and on an entry here that no longer occurs."""


@dataclass(frozen=True)
class Edge:
    source: str  # node
    target: str  # node
    module: str  # the importing module, dotted
    line: int


@dataclass(frozen=True)
class Violation:
    edge: Edge
    why: str

    def __str__(self) -> str:
        e = self.edge
        return f"{e.module}:{e.line}: {e.source} -> {e.target}: {self.why}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(["pushrelay", *parts])


def _node(dotted: str) -> str | None:
    """``pushrelay.apns.client`` -> ``apns``; ``pushrelay`` -> ``__init__``; anything else -> None."""
    parts = dotted.split(".")
    if parts[0] != "pushrelay":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _submodule_or_package(root: Path, package: str, name: str) -> str:
    folder = root.joinpath(*package.split(".")[1:])
    if (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists():
        return f"{package}.{name}"
    return package


def _imports(path: Path, root: Path) -> Iterator[tuple[str, int]]:
    """The dotted pushrelay modules imported by ``path`` (relative imports resolved)."""
    module = _module_name(path, root)
    package = module if _is_package(path) else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                yield alias.name, stmt.lineno
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                base = package.split(".")
                if stmt.level > 1:
                    base = base[: len(base) - (stmt.level - 1)]
                prefix = ".".join(base)
                if stmt.module:
                    yield f"{prefix}.{stmt.module}", stmt.lineno
                else:  # ``from . import x``: x is a submodule or a name of the package
                    for alias in stmt.names:
                        yield _submodule_or_package(root, prefix, alias.name), stmt.lineno
            elif stmt.module:
                yield stmt.module, stmt.lineno


def edges(root: Path = ROOT) -> list[Edge]:
    """Every import between two different nodes of the package under ``root``."""
    found: list[Edge] = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        source = _node(module)
        if path.parent == root and path.stem == "__init__":
            source = "__init__"
        assert source is not None
        for imported, line in _imports(path, root):
            target = _node(imported)
            if target is None or target == source:
                continue
            found.append(Edge(source, target, module, line))
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``node -> nodes it imports``."""
    out: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        node = _node(_module_name(path, root))
        if node is not None:
            out.setdefault(node, set())
    for edge in edges(root):
        out.setdefault(edge.source, set()).add(edge.target)
    return out


def layer_of(node: str) -> int | None:
    for rank, (_name, members) in enumerate(LAYERS):
        if node in members:
            return rank
    return None


def violations(root: Path = ROOT, *, known: bool = False) -> list[Violation]:
    """Edges that break the layer rule; ``known=True`` includes KNOWN_EXCEPTIONS."""
    found: list[Violation] = []
    for edge in edges(root):
        why = _why(edge)
        if why is not None and (known or (edge.module, edge.target) not in KNOWN_EXCEPTIONS):
            found.append(Violation(edge, why))
    return found


def _why(edge: Edge) -> str | None:
    source, target = edge.source, edge.target
    if source in PROTOCOL_PACKAGES and target in PROTOCOL_FORBIDDEN:
        return f"protocol package {source}/ must not import {target}/"
    if source in ENTRY_POINTS:
        return None
    if target in ENTRY_POINTS:
        if source in ENTRY_POINT_USERS.get(target, frozenset()):
            return None
        return f"{target} is an entry point: nothing in a layer imports it"
    src_rank, dst_rank = layer_of(source), layer_of(target)
    if src_rank is None:
        return f"{source} is in no layer (add it to LAYERS in pushrelay._tools.import_graph)"
    if dst_rank is None:
        return f"{target} is in no layer (add it to LAYERS in pushrelay._tools.import_graph)"
    if dst_rank > src_rank:
        return f"upward import: {LAYERS[src_rank][0]} -> {LAYERS[dst_rank][0]}"
    if dst_rank == src_rank and target not in SAME_LAYER_OK.get(LAYERS[src_rank][0], frozenset()):
        return f"sideways import within the {LAYERS[src_rank][0]} layer"
    return None


def render(root: Path = ROOT) -> str:
    """The graph as text, layer by layer, top first."""
    g = graph(root)
    lines: list[str] = []
    groups = [("entry points", ENTRY_POINTS), *reversed(LAYERS)]
    for name, members in groups:
        present = sorted(m for m in members if m in g)
        if not present:
            continue
        lines.append(f"[{name}]")
        for node in present:
            lines.append(f"  {node} -> {', '.join(sorted(g[node])) or '(nothing)'}")
    unplaced = sorted(set(g) - ENTRY_POINTS - {m for _n, ms in LAYERS for m in ms})
    if unplaced:
        lines.append("[in no layer]")
        lines.extend(f"  {node} -> {', '.join(sorted(g[node]))}" for node in unplaced)
    return "\n".join(lines)


def main() -> int:
    print(render())
    bad = violations()
    known = [v for v in violations(known=True) if v not in bad]
    if known:
        print(f"\n{len(known)} known exception(s) (KNOWN_EXCEPTIONS):")
        for v in known:
            print(f"  {v}")
    if bad:
        print(f"\n{len(bad)} layer violation(s):")
        for v in bad:
            print(f"  {v}")
        return 1
    print("\nno layer violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
